//! The RX buffer cycle through the emulated MANA device, with each RX
//! queue's page pool versus every buffer taken from and given back to the
//! global allocator (`rx_buffers = "heap"`, what the page-pool patch
//! replaced).
//!
//! One thread plays both sides: the device receives a burst of frames from
//! its wire (writes them into posted buffers and completes them), the
//! driver polls the completions, refills each slot before delivering, and
//! then the packets are either dropped (`drop`) or transmitted and
//! completed (`tx`), which returns their buffers. So a cycle is: post,
//! receive, deliver, drop or TX-complete, recycle.
//!
//! Runs the variants alternately several times and prints the median
//! ns/packet of each; the last line is `speedup=<heap ns / pool ns>`.
//!
//! Usage: page_pool_bench [--packets N] [--runs N] [--frame N] [--burst N]

use ports::mana::{emu_device, ManaPort};
use ports::*;
use std::time::Instant;

use vrouter_tests::arg;

fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12] = 0x08;
    f[14] = 0x45;
    let ip_len = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 1, (i >> 8) as u8, i as u8]);
    f[34..36].copy_from_slice(&(1000 + (i % 64) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f
}

/// ns per packet for one variant and mode.
fn run(heap: bool, tx_mode: bool, packets: u64, frame_len: usize, burst: usize) -> f64 {
    let mut cfg = PortConfig {
        name: format!("pp-{}", if heap { "heap" } else { "pool" }),
        driver: "mana".into(),
        rx_ring: 1024,
        tx_ring: 1024,
        hugepages: HugepagePolicy::Prefer,
        ..Default::default()
    };
    if heap {
        cfg.args.insert("rx_buffers".into(), "heap".into());
    }
    // Checksum verification is device work that is the same in both
    // variants; leave it out so the buffer cycle stands out.
    cfg.args.insert("rx_csum".into(), "false".into());
    let dev = emu_device(&cfg).expect("device");
    let port = ManaPort::open(&cfg, dev.clone()).expect("port");
    port.start().expect("start");
    let mut rx = port.rx_queue(QueueId(0)).expect("rxq");
    let mut tx = port.tx_queue(QueueId(0)).expect("txq");
    let _bind = PoolBinding::new(rx.pool()).expect("bind");
    let frames: Vec<Vec<u8>> = (0..burst as u32).map(|i| frame(i, frame_len)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    let mut b = PktBurst::new();
    let mut cycle = |n: u64| {
        let mut done = 0u64;
        while done < n {
            dev.receive_many(&refs);
            let k = rx.rx_burst(&mut b);
            done += k as u64;
            if tx_mode {
                tx.tx_burst(&mut b);
            }
            b.clear();
        }
        done
    };
    cycle(packets / 10); // warm up caches, the allocator and the pool
    let t0 = Instant::now();
    let done = cycle(packets);
    let ns = t0.elapsed().as_nanos() as f64 / done as f64;
    let st = port.rx_stats(QueueId(0)).expect("stats");
    let dropped = st.queue.dropped();
    if dropped != 0 || dev.stats().rx_no_wqe != 0 {
        eprintln!("unexpected drops: {:?} no_wqe {}", st.queue.drops, dev.stats().rx_no_wqe);
        std::process::exit(1);
    }
    ns
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let packets: u64 = arg(&args, "--packets", 2_000_000);
    let runs: usize = arg(&args, "--runs", 5);
    let frame_len: usize = arg(&args, "--frame", 60);
    let burst: usize = arg(&args, "--burst", 32);
    let _ = ports::mana::DRIVER;
    println!(
        "RX buffer cycle through the emulated MANA device: {packets} packets per run, {runs} runs per variant, \
         {frame_len}-byte frames, bursts of {burst}, rx ring 1024"
    );
    let mut speedups = Vec::new();
    for (mode, tx_mode) in [("drop", false), ("tx", true)] {
        let (mut pool, mut heap) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            pool.push(run(false, tx_mode, packets, frame_len, burst));
            heap.push(run(true, tx_mode, packets, frame_len, burst));
        }
        let (p, h) = (median(pool.clone()), median(heap.clone()));
        println!(
            "{mode:>4}: page pool {p:.1} ns/packet (runs {:?}), global allocator {h:.1} ns/packet (runs {:?}), \
             ratio {:.2}",
            pool.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(),
            heap.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(),
            h / p
        );
        println!("{mode}_pool_ns={p:.1}");
        println!("{mode}_heap_ns={h:.1}");
        speedups.push(h / p);
    }
    // The headline is the drop cycle (the "drop or TX-complete":
    // both are printed above).
    println!("speedup={:.2}", speedups[0]);
}
