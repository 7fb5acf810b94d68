//! Steady-state forwarding through the worker loop performs no heap
//! allocation: a counting global allocator sees none while millions of
//! packets go through the generator, the ports and the worker — with mem
//! ports, and with MANA ports on emulated devices (driver and device).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_forwarding_allocates_nothing() {
    // The counter sees allocations (so a zero below means something).
    let before = ALLOCS.load(Ordering::SeqCst);
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(ALLOCS.load(Ordering::SeqCst) > before);
    drop(v);

    // One driver after the other: the counter is process-wide.
    for driver in ["mem", "mana"] {
        forward_without_allocating(driver, false);
    }
    // With NAT: so many flows that sessions are still being created (and
    // ports allocated) throughout the window, besides translations.
    forward_without_allocating("mem", true);
}

fn forward_without_allocating(driver: &str, nat: bool) {
    let flows = if nat { 1 << 18 } else { 512 };
    let gen = dataplane::testgen::GenConfig { rate_pps: 0, flows, ..Default::default() };
    let mut spec = vrouter_tests::two_port_spec(&format!("zalloc-{driver}-{nat}"), 1, 1, Some(gen));
    if nat {
        use dataplane::nat::{NatConfig, SnatRule, SnatTo};
        let pool = (0..64u8).map(|i| std::net::Ipv4Addr::new(203, 0, 113, i)).collect();
        spec.nat = NatConfig {
            inside: vec!["p0".into()],
            outside: vec!["p1".into()],
            snat: vec![SnatRule { src: "10.0.0.0/8".parse().expect("net"), out_port: None, to: SnatTo::Pool(pool) }],
            ..NatConfig::default()
        };
        spec.nat.table.capacity = 1 << 19;
    }
    for p in spec
        .ports
        .iter_mut()
        .map(|p| &mut p.config)
        .chain(spec.generator.iter_mut().flat_map(|g| g.source.iter_mut().chain(g.sink.iter_mut())))
    {
        p.driver = driver.into();
    }
    let rt = dataplane::runtime::Runtime::start(&spec).expect("start");
    let w = rt.workers()[0].stats().clone();
    let g = rt.generator_stats().expect("generator").clone();
    // Warm up: first-use allocations (thread-locals, arc-swap debt nodes).
    std::thread::sleep(Duration::from_millis(500));
    let created = || rt.nat().counters().iter().find(|c| c.0 == "sessions_created").map_or(0, |c| c.1);
    let c0 = created();
    let (a0, p0, r0) = (ALLOCS.load(Ordering::SeqCst), w.tx_packets.get(), g.rx_valid.get());
    std::thread::sleep(Duration::from_secs(2));
    let (a1, p1, r1) = (ALLOCS.load(Ordering::SeqCst), w.tx_packets.get(), g.rx_valid.get());
    let created = created() - c0;
    let report = rt.stop().expect("stop");
    let forwarded = p1 - p0;
    if nat {
        assert!(created > 10_000, "sessions created in the window: {created}");
        let drops: Vec<_> =
            report.final_stats.workers.iter().flat_map(|w| &w.drops).filter(|d| d.0.starts_with("nat_")).collect();
        assert!(drops.is_empty(), "{drops:?}");
    }
    assert!(forwarded > 10_000, "{driver}: traffic flowed in the window: {forwarded} packets");
    assert!(r1 - r0 > 10_000, "{driver}: and arrived intact at the sink: {}", r1 - r0);
    assert_eq!(a1 - a0, 0, "{driver}: heap allocations while forwarding {forwarded} packets");
    assert!(report.leaks().is_empty(), "{driver}: {:?}", report.leaks());
}
