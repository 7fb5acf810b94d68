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
        forward_without_allocating(driver);
    }
}

fn forward_without_allocating(driver: &str) {
    let gen = dataplane::testgen::GenConfig { rate_pps: 0, flows: 512, ..Default::default() };
    let mut spec = vrouter_tests::two_port_spec(&format!("zalloc-{driver}"), 1, 1, Some(gen));
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
    let (a0, p0, r0) = (ALLOCS.load(Ordering::SeqCst), w.tx_packets.get(), g.rx_valid.get());
    std::thread::sleep(Duration::from_secs(2));
    let (a1, p1, r1) = (ALLOCS.load(Ordering::SeqCst), w.tx_packets.get(), g.rx_valid.get());
    let report = rt.stop().expect("stop");
    let forwarded = p1 - p0;
    assert!(forwarded > 10_000, "{driver}: traffic flowed in the window: {forwarded} packets");
    assert!(r1 - r0 > 10_000, "{driver}: and arrived intact at the sink: {}", r1 - r0);
    assert_eq!(a1 - a0, 0, "{driver}: heap allocations while forwarding {forwarded} packets");
    assert!(report.leaks().is_empty(), "{driver}: {:?}", report.leaks());
}
