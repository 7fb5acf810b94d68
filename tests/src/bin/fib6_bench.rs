//! IPv6 FIB benchmark, side by side with DPDK's rte_fib6 (and rte_lpm6).
//!
//! Usage: fib6_bench [--routes FILE] [--lookup-file FILE] [--lookups N] [--random PCT]
//!                   [--write-routes FILE] [--write-lookups FILE] [--groups N] [--passes N]
//!                   [--dpdk] [--dpdk-core N] [--seed N]
//!
//! - `--routes`: `prefix/len next-hop` per line; the next hop is an index
//!   (`dpdk-test-fib`'s IPv6 input format) or an address (the LINX dumps,
//!   numbered in order of appearance). Default: the LINX 2014 IPv6 table in
//!   `<repo>/../shared/data/routes`.
//! - The lookup set: `--lookup-file` (one address per line, `dpdk-test-fib
//!   -t` format), or `--lookups N` addresses (default 2^20, rounded up to a
//!   multiple of 64), each a random address inside a route (taking the
//!   routes in turn, as `dpdk-test-fib` does) or, with probability
//!   `--random` percent (default 10), a random address anywhere.
//! - `--write-routes` / `--write-lookups` write both in `dpdk-test-fib`'s
//!   format, so the same set can feed it (`-f` / `-t`).
//! - `--dpdk`: after each of our passes, runs `dpdk-test-fib -6 -c` on the
//!   same routes and addresses (pinned to `--dpdk-core`, default 1,
//!   `--in-memory`: it needs ~300 MiB of hugepages) and reads its
//!   "AVG FIB lookup" (rte_fib6, trie) and "AVG LPM lookup" (rte_lpm6).
//!
//! Reports the insert rate, memory per route, and cycles per lookup (TSC,
//! as DPDK's) for single lookups, `lookup_bulk` (AVX2 when the CPU has it)
//! and the scalar batch, each timed as `dpdk-test-fib` times rte_fib6:
//! bursts of 64 addresses, each bracketed by a fenced TSC read, summed over
//! a pass of the whole set (median and best pass reported; in brackets,
//! the sum of each burst's fastest time over the passes, which leaves out
//! preemption — `dpdk-test-fib` only reports whole passes). Every pass's results are checked (bulk against
//! single, a sample against a linear scan), so a wrong table cannot post a
//! good number. Timings on a shared machine are noisy: run pinned (`taskset
//! -c 1`), with `--passes` of 5 or more, and read the medians. Ends with
//! `key=value` lines for scripts.

use dataplane::fib::v6::{Fib6, Fib6Config, NO_ROUTE};
use dataplane::rcu::Rcu;
use dataplane::tsc;
use ports::HugepagePolicy;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// `dpdk-test-fib`'s BURST_SZ.
const BURST: usize = 64;

type Route = (u128, u8, u32);

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Routes with next hops as indices, or as addresses numbered from 1 in
/// order of appearance.
fn parse_routes(text: &str) -> Result<Vec<Route>, String> {
    let mut nhs: HashMap<&str, u32> = HashMap::new();
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let mut f = l.split_whitespace();
        let (p, len) = f.next().and_then(|x| x.split_once('/')).ok_or(format!("line {}: no prefix", n + 1))?;
        let p: Ipv6Addr = p.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
        let len: u8 = len.parse().map_err(|e| format!("line {}: {e}", n + 1))?;
        let nh = f.next().ok_or(format!("line {}: no next hop", n + 1))?;
        let nh = match nh.parse::<u32>() {
            Ok(v) => v,
            Err(_) => {
                let next = nhs.len() as u32 + 1;
                *nhs.entry(nh).or_insert(next)
            }
        };
        out.push((u128::from(p), len, nh));
    }
    Ok(out)
}

fn parse_addrs(text: &str) -> Result<Vec<u128>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| l.trim().parse::<Ipv6Addr>().map(u128::from).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// The address in `dpdk-test-fib`'s dump format (8 groups of 4 digits).
fn full(a: u128) -> String {
    Ipv6Addr::from(a).segments().iter().map(|s| format!("{s:04x}")).collect::<Vec<_>>().join(":")
}

/// `rte_rdtsc_precise()`: a full fence, then the TSC.
#[inline(always)]
fn precise_now() -> u64 {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    tsc::now()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

/// Linear-scan longest-prefix match (the reference).
fn reference(routes: &[Route], a: u128) -> u32 {
    let mut best: Option<(u8, u32)> = None;
    for &(p, l, nh) in routes {
        if a & mask(l) == p && !matches!(best, Some((bl, _)) if bl >= l) {
            best = Some((l, nh));
        }
    }
    best.map_or(NO_ROUTE, |b| b.1)
}

/// Cycles per lookup over one pass, `f` resolving one burst; also keeps
/// each burst's fastest time over the passes in `best`.
fn time_pass(addrs: &[u128], out: &mut [u32], best: &mut [u64], mut f: impl FnMut(&[u128], &mut [u32])) -> f64 {
    let mut acc = 0u64;
    for ((a, o), b) in addrs.chunks(BURST).zip(out.chunks_mut(BURST)).zip(best.iter_mut()) {
        let t0 = precise_now();
        f(a, o);
        let dt = precise_now() - t0;
        acc += dt;
        *b = (*b).min(dt);
    }
    acc as f64 / addrs.len() as f64
}

/// Cycles per lookup from each burst's fastest pass: what a pass costs
/// without the time the thread spent preempted (the other threads of a
/// shared machine), with the caches as a full pass leaves them.
fn filtered(best: &[u64], n: usize) -> f64 {
    best.iter().sum::<u64>() as f64 / n as f64
}

/// One run of `dpdk-test-fib`: (rte_fib6 cycles/lookup, rte_lpm6
/// cycles/lookup, rte_fib6 cycles/insert).
fn run_dpdk(core: u32, routes: &str, lookups: &str) -> Result<(f64, f64, f64), String> {
    let prefix = format!("fib6bench{}", std::process::id());
    let args = [
        "--in-memory",
        "--file-prefix",
        &prefix,
        "-l",
        &core.to_string(),
        "--log-level=lib.eal:error",
        "--",
        "-6",
        "-c",
        "-f",
        routes,
        "-t",
        lookups,
    ]
    .map(String::from);
    let out =
        Command::new("dpdk-test-fib").args(&args).output().map_err(|e| format!("cannot run dpdk-test-fib: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let avg = |what: &str| -> Vec<f64> {
        text.lines().filter_map(|l| l.strip_prefix(what)).filter_map(|v| v.trim().parse().ok()).collect()
    };
    let (fib, lpm, add) = (avg("AVG FIB lookup"), avg("AVG LPM lookup"), avg("AVG FIB add"));
    if !out.status.success() || fib.is_empty() || !text.contains("FIB and LPM lookup returns same values") {
        return Err(format!(
            "dpdk-test-fib {} failed ({}):\n{text}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let add = add.iter().sum::<f64>() / add.len().max(1) as f64;
    Ok((fib[0], lpm.first().copied().unwrap_or(f64::NAN), add))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let get = |n: &str| args.iter().position(|a| a == n).and_then(|i| args.get(i + 1)).cloned();
    let has = |n: &str| args.iter().any(|a| a == n);
    let num = |n: &str, d: u64| get(n).map_or(Ok(d), |v| v.parse::<u64>()).map_err(|e| format!("{n}: {e}"));
    let default_routes = vrouter_tests::repo_root().join("../shared/data/routes/linx-rib-ipv6-2014.txt");
    let routes_file = get("--routes").unwrap_or_else(|| default_routes.display().to_string());
    let n_lookups = (num("--lookups", 1 << 20)? as usize).div_ceil(BURST) * BURST;
    let random_pct = num("--random", 10)?;
    let groups = num("--groups", 1 << 15)? as u32;
    let passes = num("--passes", 5)?.max(1) as usize;
    let dpdk_core = num("--dpdk-core", 1)? as u32;
    let mut rng = Rng(num("--seed", 1)?);
    let read = |f: &str| std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"));

    let routes = parse_routes(&read(&routes_file)?)?;
    if routes.is_empty() {
        return Err(format!("{routes_file}: no routes"));
    }
    let mut addrs = match get("--lookup-file") {
        Some(f) => parse_addrs(&read(&f)?)?,
        None => (0..n_lookups)
            .map(|i| {
                if rng.next() % 100 < random_pct {
                    rng.u128()
                } else {
                    let (p, l, _) = routes[i % routes.len()];
                    p | (rng.u128() & !mask(l))
                }
            })
            .collect(),
    };
    // Whole bursts only, as dpdk-test-fib reads (its sets are multiples of 64).
    addrs.truncate(addrs.len() / BURST * BURST);
    if addrs.is_empty() {
        return Err("fewer than 64 lookup addresses".into());
    }

    // The files for DPDK (also written to temporary files for --dpdk).
    let mut routes_txt = String::new();
    for &(p, l, nh) in &routes {
        let _ = writeln!(routes_txt, "{}/{l} {nh}", Ipv6Addr::from(p));
    }
    let mut lookups_txt = String::new();
    for &a in &addrs {
        let _ = writeln!(lookups_txt, "{}", full(a));
    }
    let tmp = std::env::temp_dir();
    let write = |f: &str, s: &str| std::fs::write(f, s).map_err(|e| format!("{f}: {e}"));
    let routes_out = get("--write-routes")
        .unwrap_or_else(|| tmp.join(format!("fib6_bench_{}.routes", std::process::id())).display().to_string());
    let lookups_out = get("--write-lookups")
        .unwrap_or_else(|| tmp.join(format!("fib6_bench_{}.lookups", std::process::id())).display().to_string());
    let want_files = has("--dpdk") || get("--write-routes").is_some() || get("--write-lookups").is_some();
    if want_files {
        write(&routes_out, &routes_txt)?;
        write(&lookups_out, &lookups_txt)?;
    }

    // Build.
    let hz = tsc::hz();
    let mut fib = Fib6::new(&Fib6Config { tbl8_groups: groups, hugepages: HugepagePolicy::Prefer }, Rcu::new())
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let c0 = tsc::now();
    for &(p, l, nh) in &routes {
        fib.insert(p, l, nh).map_err(|e| format!("{}/{l}: {e}", Ipv6Addr::from(p)))?;
    }
    let build_cycles = (tsc::now() - c0) as f64 / routes.len() as f64;
    let build_s = t0.elapsed().as_secs_f64();
    let r = fib.reader();
    let nr = fib.len().max(1);

    println!(
        "machine: TSC {:.2} GHz, AVX2 batch: {}, tables on {:?} pages",
        hz as f64 / 1e9,
        r.simd(),
        fib.page_kind()
    );
    println!(
        "routes: {} ({} lines) from {routes_file}; lookups: {} ({}% random)",
        fib.len(),
        routes.len(),
        addrs.len(),
        if get("--lookup-file").is_some() { "file, ?".to_string() } else { random_pct.to_string() }
    );
    println!(
        "insert: {:.0} cycles/route, {:.2} M routes/s; groups in use {} of {}",
        build_cycles,
        fib.len() as f64 / build_s / 1e6,
        fib.tbl8_in_use(),
        fib.tbl8_groups()
    );
    println!(
        "memory: tables {:.1} MiB ({:.0} B/route), all mapped + writer state {:.1} MiB ({:.0} B/route)",
        fib.table_bytes() as f64 / (1 << 20) as f64,
        fib.table_bytes() as f64 / nr as f64,
        fib.memory_bytes() as f64 / (1 << 20) as f64,
        fib.memory_bytes() as f64 / nr as f64
    );

    // Correctness: a sample against the linear scan, then every pass's
    // bulk results against single lookups.
    let mut single = vec![0u32; addrs.len()];
    for (a, o) in addrs.iter().zip(single.iter_mut()) {
        *o = r.lookup(*a).unwrap_or(NO_ROUTE);
    }
    let step = (addrs.len() / 2048).max(1);
    for i in (0..addrs.len()).step_by(step) {
        let want = reference(&routes, addrs[i]);
        if single[i] != want {
            return Err(format!("{}: FIB says {} but the reference {want}", Ipv6Addr::from(addrs[i]), single[i]));
        }
    }
    let hits = single.iter().filter(|&&o| o != NO_ROUTE).count();
    println!(
        "checked {} addresses against a linear scan; {hits} of {} lookups have a route",
        addrs.len() / step,
        addrs.len()
    );

    let mut out = vec![0u32; addrs.len()];
    let (mut t_single, mut t_bulk, mut t_scalar) = (Vec::new(), Vec::new(), Vec::new());
    let bursts = addrs.len() / BURST;
    let (mut b_single, mut b_bulk, mut b_scalar) =
        (vec![u64::MAX; bursts], vec![u64::MAX; bursts], vec![u64::MAX; bursts]);
    let (mut d_fib, mut d_lpm, mut d_add) = (Vec::new(), Vec::new(), Vec::new());
    for pass in 0..passes {
        t_single.push(time_pass(&addrs, &mut out, &mut b_single, |a, o| {
            for (x, y) in a.iter().zip(o.iter_mut()) {
                *y = r.lookup(*x).unwrap_or(NO_ROUTE);
            }
        }));
        if out != single {
            return Err("single lookups changed between passes".into());
        }
        out.fill(0);
        t_bulk.push(time_pass(&addrs, &mut out, &mut b_bulk, |a, o| r.lookup_bulk(a, o)));
        if out != single {
            return Err("lookup_bulk disagrees with single lookups".into());
        }
        out.fill(0);
        t_scalar.push(time_pass(&addrs, &mut out, &mut b_scalar, |a, o| r.lookup_bulk_scalar(a, o)));
        if out != single {
            return Err("lookup_bulk_scalar disagrees with single lookups".into());
        }
        let mut line = format!(
            "pass {pass}: ours single {:.1}, bulk {:.1}, scalar bulk {:.1}",
            t_single[pass], t_bulk[pass], t_scalar[pass]
        );
        if has("--dpdk") {
            let (f, l, a) = run_dpdk(dpdk_core, &routes_out, &lookups_out)?;
            d_fib.push(f);
            d_lpm.push(l);
            d_add.push(a);
            let _ = write!(line, " | rte_fib6 {f:.1}, rte_lpm6 {l:.1}");
        }
        println!("{line} cycles/lookup");
    }
    if has("--dpdk") && get("--write-routes").is_none() {
        let _ = std::fs::remove_file(&routes_out);
    }
    if has("--dpdk") && get("--write-lookups").is_none() {
        let _ = std::fs::remove_file(&lookups_out);
    }

    let n = addrs.len();
    let (f_single, f_bulk, f_scalar) = (filtered(&b_single, n), filtered(&b_bulk, n), filtered(&b_scalar, n));
    println!("cycles/lookup, median (best) of {passes} passes [each burst's fastest pass]:");
    println!("  fib6 single          {:6.1} ({:.1}) [{f_single:.1}]", median(&t_single), min(&t_single));
    println!("  fib6 bulk            {:6.1} ({:.1}) [{f_bulk:.1}]", median(&t_bulk), min(&t_bulk));
    println!("  fib6 scalar bulk     {:6.1} ({:.1}) [{f_scalar:.1}]", median(&t_scalar), min(&t_scalar));
    if has("--dpdk") {
        println!("  rte_fib6 trie bulk   {:6.1} ({:.1})", median(&d_fib), min(&d_fib));
        println!("  rte_lpm6 bulk        {:6.1} ({:.1})", median(&d_lpm), min(&d_lpm));
        println!("insert cycles/route: fib6 {build_cycles:.0}, rte_fib6 {:.0}", median(&d_add));
    }
    println!("fib6_routes={}", fib.len());
    println!("fib6_insert_cycles={build_cycles:.0}");
    println!("fib6_table_bytes_per_route={:.0}", fib.table_bytes() as f64 / nr as f64);
    println!("fib6_single_cycles={:.1}", median(&t_single));
    println!("fib6_bulk_cycles={:.1}", median(&t_bulk));
    println!("fib6_scalar_bulk_cycles={:.1}", median(&t_scalar));
    println!("fib6_bulk_cycles_filtered={f_bulk:.1}");
    if has("--dpdk") {
        println!("rte_fib6_cycles={:.1}", median(&d_fib));
        println!("rte_lpm6_cycles={:.1}", median(&d_lpm));
        println!("ratio_fib6={:.3}", median(&t_bulk) / median(&d_fib));
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fib6_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
