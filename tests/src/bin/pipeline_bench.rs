//! Forwarding benchmark: one worker on core 0 forwards the built-in
//! generator's traffic (on core 1) from mem port p0 to p1.
//!
//! Reports, over the measurement window: packets forwarded, the worker's
//! busy cycles per packet (RX burst + pipeline + TX, empty polls excluded),
//! and Mpps per core = TSC rate / cycles per packet — what one core would
//! forward if it were fed without pause. The last line is
//! `mpps_per_core=<value>`.
//!
//! `--driver mana` runs the same with emulated MANA ports (the device
//! emulation runs in the generator's and the worker's threads, as a NIC's
//! work would not).
//!
//! `--acl-rules N` binds an ingress ACL of N rules to p0: N - 1 rules
//! that do not match the generator's traffic (UDP between /24s of
//! 172.16.0.0/12), then one that permits it (`--stateful`: a
//! permit-stateful rule, so every packet also looks up its session).
//!
//! `--nat` translates the generator's flows (p0 inside, p1 outside, SNAT of
//! 10.0.0.0/8 to a pool of 64 addresses, endpoint-dependent) in a session
//! table of `--nat-capacity` sessions (default 2^21). The warm-up then
//! lasts until every flow has its session (at least `--warmup`), and the
//! rate at which the worker created them is reported as
//! `new_sessions_per_s_per_core` (busy cycles between 5% and 95% of the
//! flows created; every packet in that window opens a session; with at
//! least 100k flows), with the table's memory per session.
//!
//! Usage: pipeline_bench [--seconds S] [--warmup S] [--frame N] [--flows N] [--burst N] [--driver mem|mana]
//!                       [--acl-rules N [--stateful]] [--nat [--nat-capacity N]]

use dataplane::runtime::Runtime;
use dataplane::testgen::GenConfig;
use std::time::{Duration, Instant};

use vrouter_tests::arg;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = arg(&args, "--seconds", 5.0);
    let warmup: f64 = arg(&args, "--warmup", 1.0);
    let frame: usize = arg(&args, "--frame", 60);
    let flows: u32 = arg(&args, "--flows", 1024);
    let burst: usize = arg(&args, "--burst", 32);
    let driver: String = arg(&args, "--driver", String::from("mem"));
    let acl_rules: usize = arg(&args, "--acl-rules", 0);
    let stateful = args.iter().any(|a| a == "--stateful");
    let nat = args.iter().any(|a| a == "--nat");
    let nat_capacity: usize = arg(&args, "--nat-capacity", 1 << 21);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gen = GenConfig { rate_pps: 0, flows, frame_len: frame, burst: 32, ..Default::default() };
    let mut spec = vrouter_tests::two_port_spec("bench", 1, 1, Some(gen));
    spec.burst = burst;
    for p in spec
        .ports
        .iter_mut()
        .map(|p| &mut p.config)
        .chain(spec.generator.iter_mut().flat_map(|g| g.source.iter_mut().chain(g.sink.iter_mut())))
    {
        p.driver = driver.clone();
    }
    spec.workers[0].core = Some(0);
    if let Some(g) = spec.generator.as_mut() {
        g.core = if cores > 1 { Some(1) } else { None };
    }
    if acl_rules > 0 {
        spec.acl = bench_acl(acl_rules, stateful);
    }
    if nat {
        spec.nat = bench_nat(nat_capacity);
    }
    let rt = match Runtime::start(&spec) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1)
        }
    };
    let hz = dataplane::tsc::hz();
    let w = rt.workers()[0].stats().clone();
    let mut new_rate = None;
    // Creation is timed only when it lasts long enough to sample.
    if nat && flows >= 100_000 {
        new_rate = Some(session_rate(&rt, &w, flows as u64, hz));
    }
    std::thread::sleep(Duration::from_secs_f64(warmup));
    let g = rt.generator_stats().expect("generator configured").clone();
    let t0 = Instant::now();
    let (rx0, tx0, cyc0, polls0, busy0) =
        (w.rx_packets.get(), w.tx_packets.get(), w.busy_cycles.get(), w.polls.get(), w.busy_polls.get());
    let (gtx0, grx0) = (g.tx_packets.get(), g.rx_valid.get());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let dt = t0.elapsed().as_secs_f64();
    let (rx1, tx1, cyc1, polls1, busy1) =
        (w.rx_packets.get(), w.tx_packets.get(), w.busy_cycles.get(), w.polls.get(), w.busy_polls.get());
    let (gtx1, grx1) = (g.tx_packets.get(), g.rx_valid.get());
    let report_nat = nat_state(&rt);
    let report = rt.stop().expect("stop");
    let drops: Vec<_> = report.final_stats.workers.iter().flat_map(|w| w.drops.clone()).collect();

    let rx = rx1 - rx0;
    let cpp = (cyc1 - cyc0) as f64 / rx.max(1) as f64;
    let mpps_core = hz as f64 / cpp / 1e6;
    let busy_frac = (cyc1 - cyc0) as f64 / (hz as f64 * dt);
    println!("machine: {} cores, TSC {:.2} GHz", cores, hz as f64 / 1e9);
    println!(
        "config: {driver} ports, frame {frame} B, {flows} flows, burst {burst}, window {dt:.1} s after {warmup:.1} s warm-up"
    );
    println!(
        "generator offered {:.2} Mpps, received back {:.2} Mpps",
        (gtx1 - gtx0) as f64 / dt / 1e6,
        (grx1 - grx0) as f64 / dt / 1e6
    );
    println!(
        "worker: rx {:.2} Mpps, tx {:.2} Mpps, busy {:.0}% of the core, {:.1} packets per busy poll",
        rx as f64 / dt / 1e6,
        (tx1 - tx0) as f64 / dt / 1e6,
        busy_frac * 100.0,
        rx as f64 / (busy1 - busy0).max(1) as f64
    );
    println!("worker drops: {drops:?} (polls {})", polls1 - polls0);
    if nat {
        println!("nat: {}", rt_nat_summary(&report_nat));
    }
    if let Some((rate, cps)) = new_rate {
        println!("new sessions: {cps:.1} cycles each, {:.2} M/s per core", rate / 1e6);
        println!("new_sessions_per_s_per_core={rate:.0}");
    }
    println!("cycles_per_packet={cpp:.1}");
    if !report.leaks().is_empty() {
        eprintln!("page pools did not get every buffer back: {:?}", report.leaks());
        std::process::exit(1);
    }
    println!("mpps_per_core={mpps_core:.2}");
}

/// An ingress ACL on p0 whose last rule permits the generator's flows.
fn bench_acl(n: usize, stateful: bool) -> dataplane::acl::control::AclConfig {
    use dataplane::acl::control::{AclBindSpec, AclConfig, AclSpec};
    use dataplane::acl::stage::Direction;
    use dataplane::acl::{Action, Prefix, Range, Rule};
    let v4 = |a: u32, len: u8| Prefix { addr: a as u128, len, v6: false };
    let mut rules: Vec<Rule> = (0..n.saturating_sub(1) as u32)
        .map(|i| Rule {
            src: v4(0xac10_0000 | (((i * 7919) << 8) & 0x000f_ff00), 24),
            dst: v4(0xac10_0000 | (((i * 104_729) << 8) & 0x000f_ff00), 24),
            sport: Range::ANY,
            dport: Range { lo: (i % 60_000) as u16, hi: (i % 60_000) as u16 + 100 },
            proto: Some(17),
            tcp_flags: 0,
            tcp_mask: 0,
            action: Action::Deny,
        })
        .collect();
    rules.push(Rule {
        src: v4(0x0a00_0000, 16),
        dst: v4(0x0a01_0000, 16),
        sport: Range::ANY,
        dport: Range::ANY,
        proto: Some(17),
        tcp_flags: 0,
        tcp_mask: 0,
        action: if stateful { Action::PermitStateful } else { Action::Permit },
    });
    AclConfig {
        acls: vec![AclSpec { name: "bench".into(), rules }],
        bindings: vec![AclBindSpec {
            port: "p0".into(),
            dir: Direction::Ingress,
            acl: "bench".into(),
            default: Action::Deny,
        }],
        ..Default::default()
    }
}

/// SNAT of the generator's sources (10.0.0.0/8) out of p1 to a pool of 64
/// addresses: every flow goes to the same remote, so endpoint-dependent
/// mapping needs about 16 ports per address per thousand flows.
fn bench_nat(capacity: usize) -> dataplane::nat::NatConfig {
    use dataplane::nat::{NatConfig, SnatRule, SnatTo};
    let pool = (0..64u8).map(|i| std::net::Ipv4Addr::new(203, 0, 113, i)).collect();
    let mut c = NatConfig {
        inside: vec!["p0".into()],
        outside: vec!["p1".into()],
        snat: vec![SnatRule { src: "10.0.0.0/8".parse().expect("literal"), out_port: None, to: SnatTo::Pool(pool) }],
        ..NatConfig::default()
    };
    c.table.capacity = capacity;
    c
}

/// Waits until the worker created a session for every flow; returns the
/// creation rate (sessions per second of busy core) and cycles per
/// session, measured between 5% and 95% of the flows.
fn session_rate(rt: &Runtime, w: &dataplane::WorkerStats, flows: u64, hz: u64) -> (f64, f64) {
    let created = || rt.nat().counters().iter().find(|c| c.0 == "sessions_created").map_or(0, |c| c.1);
    let (lo, hi) = (flows / 20, flows - flows / 20);
    let t0 = Instant::now();
    let mut start = None;
    loop {
        let (n, cyc) = (created(), w.busy_cycles.get());
        if start.is_none() && n >= lo {
            start = Some((n, cyc));
        }
        if n >= hi {
            let (n0, c0) = start.unwrap_or((0, 0));
            let cps = (cyc - c0) as f64 / (n - n0).max(1) as f64;
            return (hz as f64 / cps, cps);
        }
        if t0.elapsed() > Duration::from_secs(120) {
            eprintln!("only {n} of {flows} sessions after 120 s");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct NatState {
    live: usize,
    capacity: usize,
    bytes: usize,
    counters: Vec<(&'static str, u64)>,
}

fn nat_state(rt: &Runtime) -> Option<NatState> {
    let n = rt.nat();
    let t = n.table()?;
    let now = dataplane::tsc::secs(dataplane::tsc::now()) as u32;
    Some(NatState { live: t.len(now), capacity: t.capacity(), bytes: t.bytes(), counters: n.counters() })
}

fn rt_nat_summary(s: &Option<NatState>) -> String {
    match s {
        Some(s) => format!(
            "{} live sessions of {} ({} bytes per session), counters {:?}",
            s.live,
            s.capacity,
            s.bytes / s.capacity.max(1),
            s.counters.iter().filter(|c| c.1 > 0).collect::<Vec<_>>()
        ),
        None => "off".into(),
    }
}
