//! IPv4 FIB benchmark on `dpdk-test-fib`'s own input files, so that our
//! DIR-24-8 and DPDK's rte_lpm / rte_fib see exactly the same routes and
//! the same addresses in the same order.
//!
//! Usage: fib_bench --routes FILE --lookups FILE [--tbl8 N] [--passes N]
//!
//! - routes file: `a.b.c.d/len next-hop` per line (`dpdk-test-fib -w`);
//! - lookups file: one address per line (`dpdk-test-fib -u`).
//!
//! Reports the insert rate, memory per route, and cycles per lookup for
//! single lookups and for `lookup_bulk`, timed as `dpdk-test-fib` times
//! rte_lpm: bursts of 64 addresses, each bracketed by a fenced TSC read
//! (`rte_rdtsc_precise`), summed over a pass of the whole lookup file. It
//! runs several passes and prints the median. Every lookup result is
//! checked against the reference (single, bulk and reference must agree),
//! so a wrong table cannot post a good number. Ends with `key=value` lines
//! for tests/bench/lpm_vs_dpdk.sh.

use dataplane::fib::reference::Reference;
use dataplane::fib::v4::{Fib4, Fib4Config, Fib4Reader, NO_ROUTE};
use dataplane::rcu::Rcu;
use dataplane::tsc;
use ports::HugepagePolicy;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Instant;

/// `dpdk-test-fib`'s BURST_SZ.
const BURST: usize = 64;

fn parse_routes(text: &str) -> Result<Vec<(u32, u8, u32)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let mut f = l.split_whitespace();
            let (p, len) = f.next().and_then(|x| x.split_once('/')).ok_or(format!("line {}: no prefix", n + 1))?;
            let p: Ipv4Addr = p.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
            let len: u8 = len.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
            let nh: u32 = f
                .next()
                .ok_or(format!("line {}: no next hop", n + 1))?
                .parse()
                .map_err(|e| format!("line {}: {e}", n + 1))?;
            Ok((u32::from(p), len, nh))
        })
        .collect()
}

fn parse_addrs(text: &str) -> Result<Vec<u32>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| l.trim().parse::<Ipv4Addr>().map(u32::from).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// `rte_rdtsc_precise()`: MFENCE, then the TSC. (Rust's SeqCst fence is a
/// locked instruction, which does not keep RDTSC from running early.)
#[inline(always)]
fn precise_now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: MFENCE has no preconditions (SSE2 is baseline on x86_64).
    unsafe {
        core::arch::x86_64::_mm_mfence()
    };
    #[cfg(not(target_arch = "x86_64"))]
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    tsc::now()
}

/// One burst of single lookups (a function of its own, as rte_lpm's bulk
/// lookup is, so the loop keeps its pointers in registers).
#[inline(never)]
fn single_burst(r: &Fib4Reader, addrs: &[u32], out: &mut [u32; BURST]) {
    for (x, y) in addrs.iter().zip(out.iter_mut()) {
        *y = r.lookup(*x).unwrap_or(NO_ROUTE);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let get = |n: &str| args.iter().position(|a| a == n).and_then(|i| args.get(i + 1)).cloned();
    let usage = "usage: fib_bench --routes FILE --lookups FILE [--tbl8 N] [--passes N]";
    let routes_file = get("--routes").ok_or(usage)?;
    let lookups_file = get("--lookups").ok_or(usage)?;
    let tbl8: u32 = get("--tbl8").map_or(Ok(1 << 17), |v| v.parse()).map_err(|e| format!("--tbl8: {e}"))?;
    let passes: usize = get("--passes").map_or(Ok(5), |v| v.parse()).map_err(|e| format!("--passes: {e}"))?;

    let read = |f: &str| std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"));
    let routes = parse_routes(&read(&routes_file)?)?;
    let addrs = parse_addrs(&read(&lookups_file)?)?;
    if addrs.len() < BURST {
        return Err(format!("{lookups_file}: need at least {BURST} addresses"));
    }
    // Whole bursts only, as dpdk-test-fib (its file sizes are multiples of 64).
    let addrs = &addrs[..addrs.len() / BURST * BURST];
    let hz = tsc::hz();

    // --- build ---
    let cfg = Fib4Config { tbl8_groups: tbl8, hugepages: HugepagePolicy::Prefer };
    let mut fib = Fib4::new(&cfg, Rcu::new()).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let c0 = tsc::now();
    for &(p, len, nh) in &routes {
        fib.insert(p, len, nh).map_err(|e| format!("insert {}/{len} -> {nh}: {e}", Ipv4Addr::from(p)))?;
    }
    let build_cycles = tsc::now() - c0;
    let build = t0.elapsed();
    let n = fib.len().max(1);
    println!(
        "built {} routes ({} lines) in {:.3} s: {:.0} cycles/route, {:.2} M routes/s; tables on {:?} pages",
        fib.len(),
        routes.len(),
        build.as_secs_f64(),
        build_cycles as f64 / routes.len().max(1) as f64,
        routes.len() as f64 / build.as_secs_f64() / 1e6,
        fib.page_kind()
    );
    println!(
        "memory: {} MiB total ({:.0} B/route), lookup tables in use {} MiB ({:.0} B/route), tbl8 groups {}/{}",
        fib.memory_bytes() >> 20,
        fib.memory_bytes() as f64 / n as f64,
        fib.table_bytes() >> 20,
        fib.table_bytes() as f64 / n as f64,
        fib.tbl8_in_use(),
        fib.tbl8_groups()
    );

    // --- lookups: passes alternate single and bulk so drift hits both ---
    // Results go to a 64-entry buffer, as in dpdk-test-fib (a large output
    // array would add its own cache misses to the timed region); they are
    // copied out for the check after the burst's timestamp.
    let r = fib.reader();
    let mut out = vec![0u32; addrs.len()];
    let mut bulk_out = vec![0u32; addrs.len()];
    let mut buf = [0u32; BURST];
    let (mut single, mut bulk, mut stream) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..passes {
        let mut acc = 0u64;
        for (a, o) in addrs.chunks_exact(BURST).zip(out.chunks_exact_mut(BURST)) {
            let t = precise_now();
            single_burst(&r, a, &mut buf);
            acc += precise_now() - t;
            o.copy_from_slice(&buf);
        }
        single.push(acc as f64 / addrs.len() as f64);

        let mut acc = 0u64;
        for (a, o) in addrs.chunks_exact(BURST).zip(bulk_out.chunks_exact_mut(BURST)) {
            let t = precise_now();
            r.lookup_bulk(a, &mut buf);
            acc += precise_now() - t;
            o.copy_from_slice(&buf);
        }
        bulk.push(acc as f64 / addrs.len() as f64);

        // Back-to-back bursts without fences: consecutive bursts overlap,
        // as in a worker's steady state.
        let t = precise_now();
        for a in addrs.chunks_exact(BURST) {
            r.lookup_bulk(a, &mut buf);
            std::hint::black_box(&buf);
        }
        stream.push((precise_now() - t) as f64 / addrs.len() as f64);
    }
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" ");
    println!(
        "cycles/lookup per pass: single [{}] bulk [{}] bulk-unfenced [{}]",
        fmt(&single),
        fmt(&bulk),
        fmt(&stream)
    );

    // --- check every result against the reference ---
    let mut reference = Reference::new();
    for &(p, len, nh) in &routes {
        reference.insert(p, len, nh);
    }
    let mut bad = 0usize;
    let mut no_route = 0usize;
    for ((&a, &s), &b) in addrs.iter().zip(&out).zip(&bulk_out) {
        let want = reference.lookup_by_length(a).unwrap_or(NO_ROUTE);
        if s != want || b != want {
            if bad < 5 {
                eprintln!("MISMATCH {}: single {s} bulk {b} reference {want}", Ipv4Addr::from(a));
            }
            bad += 1;
        }
        no_route += usize::from(want == NO_ROUTE);
    }
    println!("checked {} lookups against the reference: {bad} mismatches, {no_route} without a route", addrs.len());
    if bad > 0 {
        return Err(format!("{bad} lookups disagree with the reference"));
    }

    println!("tsc_ghz={:.3}", hz as f64 / 1e9);
    println!("routes={}", fib.len());
    println!("insert_cycles_per_route={:.0}", build_cycles as f64 / routes.len().max(1) as f64);
    println!("insert_mroutes_per_s={:.2}", routes.len() as f64 / build.as_secs_f64() / 1e6);
    println!("memory_bytes_per_route={:.0}", fib.memory_bytes() as f64 / n as f64);
    println!("table_bytes_per_route={:.0}", fib.table_bytes() as f64 / n as f64);
    println!("single_cycles={:.1}", median(&mut single));
    println!("bulk_unfenced_cycles={:.1}", median(&mut stream));
    println!("bulk_cycles={:.1}", median(&mut bulk));
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fib_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
