//! ACL classifier benchmark on a ClassBench set, the input `dpdk-test-acl`
//! reads, so our classifier and rte_acl see the same rules and the same
//! packets in the same order.
//!
//! Usage: acl_bench --set NAME [--reps N] [--batch N] [--dump FILE]
//!
//! - `--set`: a set of ../shared/data/classbench (`acl1_8k`, `fw1_1k`, ...);
//! - `--reps`: passes over the trace (default: as many as take about 1 s);
//! - `--batch`: keys per `classify_batch` call (default 64);
//! - `--dump`: writes each packet's result (0-based rule, 4294967295 for
//!   none), one a line, as `dpdk-test-acl --verbose=3` prints them.
//!
//! Timed as `dpdk-test-acl` times rte_acl: one TSC read before the first
//! pass and one after the last, divided by the packets classified. The
//! results of every batch feed a checksum, so the work cannot be optimised
//! away, and one pass is checked against the linear scan: a wrong
//! classifier cannot post a good number (exit status 1 on mismatch). Ends
//! with `key=value` lines for tests/bench/acl_vs_dpdk.sh, the last one
//! `cycles_per_packet=`.

use dataplane::acl::{classbench, linear, Classifier, Key, NO_MATCH};
use dataplane::tsc;
use std::process::ExitCode;
use std::time::Instant;
use vrouter_tests::arg;

/// One pass over `keys` in batches of `batch`; returns the checksum of the
/// results.
#[inline(never)]
fn pass(c: &Classifier, keys: &[Key], batch: usize, buf: &mut [u32]) -> u64 {
    let mut sum = 0u64;
    for k in keys.chunks(batch) {
        let out = &mut buf[..k.len()];
        c.classify_batch(k, out);
        sum = out.iter().fold(sum, |s, &r| s.wrapping_add(u64::from(r)));
    }
    sum
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: acl_bench --set NAME [--reps N] [--batch N] [--dump FILE]";
    let set: String = arg(&args, "--set", String::new());
    if set.is_empty() {
        return Err(usage.into());
    }
    let reps: usize = arg(&args, "--reps", 0);
    let batch: usize = arg(&args, "--batch", 64).max(1);
    let dump: String = arg(&args, "--dump", String::new());

    let (rules, keys) = classbench::load(&set)?;
    if keys.is_empty() {
        return Err(format!("{set}: empty trace"));
    }
    let hz = tsc::hz();

    // --- build ---
    let t0 = Instant::now();
    let c = Classifier::build(&rules);
    let build = t0.elapsed();
    let st = c.stats();
    println!(
        "{set}: {} rules, {} packets; built in {:.3} ms: {} nodes, {} leaves, {} leaf rules, depth {}, {:.2} MiB",
        rules.len(),
        keys.len(),
        build.as_secs_f64() * 1e3,
        st.nodes,
        st.leaves,
        st.leaf_rules,
        st.max_depth,
        st.bytes as f64 / (1u64 << 20) as f64
    );

    // --- check one pass against the linear scan ---
    let mut got = vec![0u32; keys.len()];
    for (k, o) in keys.chunks(batch).zip(got.chunks_mut(batch)) {
        c.classify_batch(k, o);
    }
    let t = Instant::now();
    let want: Vec<u32> = keys.iter().map(|k| linear::classify(&rules, k)).collect();
    let linear_cycles = t.elapsed().as_secs_f64() * hz as f64 / keys.len() as f64;
    let bad: Vec<usize> = (0..keys.len()).filter(|&i| got[i] != want[i]).collect();
    for &i in bad.iter().take(5) {
        eprintln!("MISMATCH packet {} {:?}: classifier {} linear {}", i + 1, keys[i], got[i], want[i]);
    }
    let matched = want.iter().filter(|&&w| w != NO_MATCH).count();
    println!(
        "checked {} packets against the linear scan ({linear_cycles:.0} cycles/packet): {} mismatches, {matched} match a rule",
        keys.len(),
        bad.len()
    );
    if !dump.is_empty() {
        let text: String = got.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&dump, text).map_err(|e| format!("{dump}: {e}"))?;
    }
    if !bad.is_empty() {
        return Err(format!("{} packets disagree with the linear scan", bad.len()));
    }

    // --- timed passes ---
    let mut buf = vec![0u32; batch];
    // Warm-up: passes for about 0.1 s, which also size the default run.
    let warm = pass(&c, &keys, batch, &mut buf);
    let (t, mut n) = (tsc::now(), 0u64);
    while tsc::now() - t < hz / 10 {
        pass(&c, &keys, batch, &mut buf);
        n += 1;
    }
    let one = ((tsc::now() - t) / n).max(1);
    let reps = if reps > 0 { reps } else { (hz / one).clamp(1, 1_000_000) as usize };
    let t = tsc::now();
    let mut sum = 0u64;
    for _ in 0..reps {
        sum = sum.wrapping_add(pass(&c, &keys, batch, &mut buf));
    }
    let cycles = tsc::now() - t;
    if sum != warm.wrapping_mul(reps as u64) {
        return Err("results changed between passes".into());
    }
    let packets = (reps * keys.len()) as f64;
    let secs = cycles as f64 / hz as f64;
    println!(
        "{reps} passes, {packets} packets in batches of {batch}: {cycles} cycles ({secs:.2} s), {:.2} Mpps",
        packets / secs / 1e6
    );

    println!("tsc_ghz={:.3}", hz as f64 / 1e9);
    println!("rules={}", rules.len());
    println!("packets={}", keys.len());
    println!("matched={matched}");
    println!("build_ms={:.3}", build.as_secs_f64() * 1e3);
    println!("memory_bytes={}", st.bytes);
    println!("checksum={sum:#018x}");
    println!("cycles_per_packet={:.2}", cycles as f64 / packets);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acl_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
