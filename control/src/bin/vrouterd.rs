//! vrouterd: the vrouter daemon.

use clap::Parser;
use control::config::Config;
use control::stats;
use dataplane::runtime::Runtime;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(name = "vrouterd", version, about = "vrouter dataplane daemon")]
struct Args {
    /// TOML configuration file to apply at start.
    #[arg(short, long)]
    config: PathBuf,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds between stats lines (0: no stats lines).
    #[arg(long, default_value_t = 1.0)]
    stats_interval: f64,
    /// Log filter, e.g. "info" or "vrouterd=debug" (RUST_LOG also works).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Check the config and exit.
    #[arg(long)]
    check: bool,
}

fn init_logging(a: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&a.log_level));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if a.log_json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(&args);
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let cfg = Config::load(&args.config)?;
    let spec = cfg.to_spec()?;
    if args.check {
        println!(
            "{}: ok ({} ports, {} workers, {} routes)",
            args.config.display(),
            spec.ports.len(),
            spec.workers.len(),
            spec.routes.len()
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))?;
    }
    let rt = Runtime::start(&spec)?;
    for p in rt.ports() {
        let i = p.info();
        let pools: Vec<String> = (0..i.rx_queues)
            .filter_map(|q| p.rx_pool(ports::QueueId(q)))
            .map(|pl| format!("{} bufs{}", pl.capacity(), if pl.hugepages() { " on 2M hugepages" } else { "" }))
            .collect();
        info!(port = %i.name, driver = i.driver, mac = %i.mac, mtu = i.mtu, rxq = i.rx_queues, txq = i.tx_queues, pools = ?pools, "port started");
    }
    for w in rt.workers() {
        info!(worker = w.id(), core = ?w.core(), "worker polling");
    }
    info!(routes = rt.tables().snapshot().fib.len(), "tables published");
    if spec.generator.is_some() {
        info!("built-in traffic generator running");
    }

    let start = Instant::now();
    let interval = Duration::from_secs_f64(args.stats_interval.max(0.05));
    let mut prev = rt.snapshot();
    let mut last = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let done = stop.load(Ordering::Relaxed) || args.duration.is_some_and(|d| start.elapsed().as_secs_f64() >= d);
        if args.stats_interval > 0.0 && last.elapsed() >= interval {
            let cur = rt.snapshot();
            let secs = last.elapsed().as_secs_f64();
            println!("{}", stats::line(&prev, &cur, secs, start.elapsed().as_secs_f64()));
            prev = cur;
            last = Instant::now();
        }
        if done {
            break;
        }
    }
    info!("stopping");
    let report = rt.stop()?;
    println!("{}", stats::summary(&report, start.elapsed().as_secs_f64()));
    if !report.leaks().is_empty() {
        warn!("page pools did not get every buffer back");
        return Ok(std::process::ExitCode::from(1));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
