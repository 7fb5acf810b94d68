//! The pipeline alone (parse, route lookup, TTL/checksum rewrite, MAC
//! rewrite) on batches already in memory: the router's own cost per
//! packet, without any port's I/O. Prints `pipeline_cycles_per_packet=` last.
//!
//! Usage: stage_bench [--batches N] [--burst N]

use dataplane::l3::{Adj, L3Config, L3Control, Target, VrfId};
use dataplane::rcu::Rcu;
use dataplane::stage::{Ctx, Pipeline};
use dataplane::testgen::{build_frame, GenConfig};
use dataplane::{Batch, PortEntry, TableHandle, Tables, Verdict, WorkerStats};
use ports::{HugepagePolicy, PagePool, PoolConfig, PortId};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |n: &str, d: usize| -> usize {
        args.iter().position(|a| a == n).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(d)
    };
    let batches = get("--batches", 2_000_000);
    let burst = get("--burst", 32).clamp(1, ports::MAX_BURST);

    let mut ports = Vec::new();
    for (i, mac) in [vrouter_tests::R0_MAC, vrouter_tests::R1_MAC].into_iter().enumerate() {
        ports.push(PortEntry { id: PortId(i as u16), name: format!("p{i}"), mac, mtu: 1500, addrs: vec![] });
    }
    let h = TableHandle::new(Tables { ports, ..Default::default() });
    let mut l3 = L3Control::new(L3Config::default(), 2, Rcu::new()).expect("l3");
    l3.attach(h.clone());
    let nh = l3.adjacency(Adj::Fixed { port: PortId(1), mac: vrouter_tests::SINK_MAC }).expect("adj");
    l3.add_route(VrfId(0), "10.1.0.0".parse().expect("literal"), 16, Target::Adj(nh)).expect("route");
    let t = (*h.current()).clone();
    let pool = PagePool::new(&PoolConfig { buffers: 1024, hugepages: HugepagePolicy::Prefer, ..Default::default() })
        .expect("pool");
    pool.bind_current_thread().expect("bind");
    let cfg = GenConfig { dst_mac: vrouter_tests::R0_MAC, ttl: 255, ..Default::default() };
    let frames: Vec<Vec<u8>> = (0..burst as u32).map(|f| build_frame(&cfg, f)).collect();
    let mut b = Batch::boxed();
    let refill = |b: &mut Batch| {
        b.pkts.clear();
        for f in &frames {
            let mut p = pool.alloc().expect("buf");
            p.copy_from(f);
            p.set_port(0);
            let _ = b.pkts.push(p);
        }
    };
    refill(&mut b);
    let stats = WorkerStats::default();
    let mut pipe = Pipeline::default();
    let hz = dataplane::tsc::hz();
    let (mut cycles, mut n) = (0u64, 0u64);
    for i in 0..batches {
        // TTL 255 allows 253 forwards; refill (outside the timing) before that.
        if i % 250 == 249 {
            refill(&mut b);
        }
        let t0 = dataplane::tsc::now();
        pipe.run(&mut b, &Ctx { tables: &t, stats: &stats, neigh: None, worker: 0, now_secs: 0 });
        cycles += dataplane::tsc::now() - t0;
        n += b.len() as u64;
    }
    assert!(b.verdict[..burst].iter().all(|v| *v == Verdict::Tx(PortId(1))), "packets were forwarded");
    let cpp = cycles as f64 / n as f64;
    println!("pipeline (parse + FIB lookup + rewrite + local), burst {burst}: {n} packets");
    println!("TSC {:.2} GHz, {:.1} Mpps per core for this stage", hz as f64 / 1e9, hz as f64 / cpp / 1e6);
    println!("pipeline_cycles_per_packet={cpp:.1}");
}
