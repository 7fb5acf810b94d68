//! After start, forward and stop, every page-pool buffer is back — with
//! two workers, RSS over two queues per port, and traffic that takes every
//! kind of exit (forwarded, dropped for several reasons, punted, TX full).

use dataplane::runtime::Runtime;
use dataplane::testgen::GenConfig;
use ports::{MacAddr, PktBurst, QueueId};
use std::time::{Duration, Instant};
use vrouter_tests::*;

fn frame(dst_mac: MacAddr, dst: [u8; 4], ttl: u8, sport: u16) -> Vec<u8> {
    let mut cfg = GenConfig { dst_mac, dst_ip: dst.into(), ttl: 64, ..Default::default() };
    cfg.ttl = ttl.max(2);
    let mut f = dataplane::testgen::build_frame(&cfg, sport as u32);
    if ttl < 2 {
        // TTL 1 with a correct checksum.
        f[22] = ttl;
        f[24..26].fill(0);
        let c = dataplane::wire::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    f
}

#[test]
fn every_buffer_returns_after_mixed_traffic_on_two_workers() {
    // The test drives the router through its own peer ends of the wires.
    let spec = two_port_spec("acct2", 2, 2, None);
    let rt = Runtime::start(&spec).expect("start");
    let peer_in =
        ports::open_port(&mem_port("peer-in", "acct2-in", 1, 1, Some(MacAddr([2, 7, 7, 7, 7, 1])))).expect("peer");
    let peer_out = ports::open_port(&mem_port("peer-out", "acct2-out", 1, 1, Some(SINK_MAC))).expect("peer");
    peer_in.start().expect("start");
    peer_out.start().expect("start");
    let pool = peer_in.rx_pool(QueueId(0)).expect("pool");
    let mut tx = peer_in.tx_queue(QueueId(0)).expect("txq");
    let mut rx = peer_out.rx_queue(QueueId(0)).expect("rxq");

    let good = |i: u16| frame(R0_MAC, [10, 1, 0, (i % 200) as u8], 64, i);
    let mut kinds: Vec<Vec<u8>> = Vec::new();
    for i in 0..1000u16 {
        kinds.push(good(i));
    }
    for i in 0..100u16 {
        kinds.push(frame(R0_MAC, [192, 0, 2, 1], 64, i)); // no route
        kinds.push(frame(R0_MAC, [10, 1, 0, 1], 1, i)); // ttl exceeded
        kinds.push(frame(MacAddr([2, 1, 1, 1, 1, 1]), [10, 1, 0, 1], 64, i)); // not for us
        let mut m = good(i);
        m.truncate(20); // malformed
        kinds.push(m);
    }
    let mut sent = 0;
    for chunk in kinds.chunks(32) {
        let mut b = PktBurst::new();
        for f in chunk {
            let mut p = pool.alloc().expect("buf");
            assert!(p.copy_from(f));
            b.push(p).expect("room");
        }
        while !b.is_empty() {
            sent += tx.tx_burst(&mut b);
        }
    }
    assert_eq!(sent, 1400);
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = PktBurst::new();
    while got < 1000 && Instant::now() < deadline {
        got += rx.rx_burst(&mut b);
        b.clear();
    }
    assert_eq!(got, 1000, "every routable frame arrived");
    // Let the workers finish counting, then stop.
    std::thread::sleep(Duration::from_millis(100));
    let report = rt.stop().expect("stop");
    let w = &report.final_stats.workers;
    let sum = |name: &str| -> u64 { w.iter().flat_map(|w| &w.drops).filter(|d| d.0 == name).map(|d| d.1).sum() };
    assert_eq!(sum("no_route"), 100);
    assert_eq!(sum("ttl_exceeded"), 100);
    assert_eq!(sum("eth_not_for_us"), 100);
    assert_eq!(sum("ipv4_truncated") + sum("eth_truncated"), 100);
    assert_eq!(w.iter().map(|w| w.rx_packets).sum::<u64>(), 1400);
    assert_eq!(w.iter().map(|w| w.tx_packets).sum::<u64>(), 1000);
    assert!(w.iter().all(|w| w.rx_packets > 0), "RSS gave both workers traffic: {w:?}");
    assert!(report.leaks().is_empty(), "{:?}", report.leaks());
    assert_eq!(report.pools.len(), 4, "2 ports x 2 queues");
    for (s, ring) in &report.pools {
        assert_eq!(s.in_use, 0, "{s:?}");
        assert_eq!(*ring, s.buffers as usize, "{s:?}");
    }
    drop(tx);
    drop(rx);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn generator_traffic_through_two_workers_leaves_no_buffer_behind() {
    let spec = two_port_spec("acct3", 2, 2, Some(GenConfig { rate_pps: 0, flows: 1024, ..Default::default() }));
    let rt = Runtime::start(&spec).expect("start");
    std::thread::sleep(Duration::from_millis(1500));
    let report = rt.stop().expect("stop");
    let g = report.final_stats.generator.clone().expect("gen");
    assert!(g.rx_valid > 10_000, "{g:?}");
    assert_eq!(g.rx_invalid, 0);
    assert!(report.leaks().is_empty(), "{:?}", report.leaks());
    // Generator pools too: 4 router pools + source + sink.
    assert_eq!(report.pools.len(), 6);
}
