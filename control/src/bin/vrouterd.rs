//! vrouterd: the vrouter daemon.

use clap::Parser;
use control::api::{self, ApiService, ApiSocket};
use control::config::Config;
use control::stats;
use dataplane::runtime::Runtime;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
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
    /// Unix socket of the gRPC control API [default: /run/vrouter/vrouterd.sock
    /// as root, else $XDG_RUNTIME_DIR/vrouterd.sock or /tmp/vrouterd-$UID.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Do not serve the gRPC control API.
    #[arg(long, conflicts_with = "socket")]
    no_api: bool,
}

/// The gRPC control API, served by a single-threaded tokio runtime on its
/// own thread (the dataplane workers are plain threads and never touch it).
struct ApiThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl ApiThread {
    /// Serves the API on `socket`. The service only holds a `Weak` reference
    /// to the runtime, so once this thread has been stopped, `main` owns the
    /// runtime alone again and can stop it.
    fn start(socket: ApiSocket, rt: Weak<Runtime>) -> std::io::Result<ApiThread> {
        let tokio_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let service = ApiService::new(move || rt.upgrade().map(|rt| rt.snapshot()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        info!(socket = %socket.path().display(), "control API listening");
        let thread = std::thread::Builder::new().name("vrouterd-api".into()).spawn(move || {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = tokio_rt.block_on(api::serve(socket, service, shutdown)) {
                error!("control API stopped: {e}");
            }
        })?;
        Ok(ApiThread { stop, thread })
    }

    /// Stops serving (in-flight calls get a short grace period) and waits
    /// for the thread; the socket file is removed.
    fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            error!("control API thread panicked");
        }
    }
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
    // Bind first: refuse to start (before opening any port) if another
    // daemon already serves this socket.
    let api_socket = if args.no_api {
        None
    } else {
        Some(api::bind_unix(args.socket.clone().unwrap_or_else(api::default_socket_path))?)
    };
    let rt = Arc::new(Runtime::start(&spec)?);
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
    {
        let l3 = rt.l3();
        let (v4, v6) = l3.route_count(dataplane::l3::VrfId(0)).unwrap_or((0, 0));
        info!(ipv4_routes = v4, ipv6_routes = v6, "tables published (VRF 0, incl. connected and local routes)");
    }
    if let Some(t) = rt.nat().table() {
        info!(
            sessions = t.capacity(),
            mib = t.bytes() >> 20,
            inside = ?spec.nat.inside,
            outside = ?spec.nat.outside,
            "NAT on"
        );
    }
    if spec.generator.is_some() {
        info!("built-in traffic generator running");
    }
    let api = match api_socket.map(|s| ApiThread::start(s, Arc::downgrade(&rt))).transpose() {
        Ok(api) => api,
        Err(e) => {
            // Only a `Weak` was handed out, and the thread did not start.
            if let Ok(rt) = Arc::try_unwrap(rt) {
                let _ = rt.stop();
            }
            return Err(format!("cannot start the control API thread: {e}").into());
        }
    };

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
    if let Some(api) = api {
        api.stop();
    }
    // The API thread has been joined and only ever held a `Weak`, so this is
    // the last strong reference.
    let rt = Arc::try_unwrap(rt).map_err(|_| "internal error: the runtime is still shared after the API stopped")?;
    if let Some(l) = stats::nat_line(&rt) {
        println!("{l}");
    }
    let report = rt.stop()?;
    println!("{}", stats::summary(&report, start.elapsed().as_secs_f64()));
    if !report.leaks().is_empty() {
        warn!("page pools did not get every buffer back");
        return Ok(std::process::ExitCode::from(1));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
