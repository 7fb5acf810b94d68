//! Behaviour of the `mem` driver through the Port interface.

use ports::*;
use std::collections::BTreeMap;

fn cfg(name: &str, wire: &str, id: u16, rxq: u16, txq: u16) -> PortConfig {
    let mut args = BTreeMap::new();
    args.insert("wire".to_string(), wire.to_string());
    PortConfig {
        id: PortId(id),
        name: name.into(),
        driver: "mem".into(),
        rx_queues: rxq,
        tx_queues: txq,
        rx_ring: 256,
        pool_buffers: 512,
        hugepages: HugepagePolicy::Never,
        args,
        ..Default::default()
    }
}

/// An Ethernet/IPv4/UDP frame of `len` bytes from 10.0.0.src:sport.
fn udp(src: u8, sport: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(42)];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    let tl = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&tl.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, src]);
    f[30..34].copy_from_slice(&[10, 1, 0, 1]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f
}

fn send(tx: &mut dyn TxQueue, pool: &PagePool, frames: &[Vec<u8>]) -> usize {
    let mut b = PktBurst::new();
    for f in frames {
        let mut p = pool.alloc().expect("buffer");
        assert!(p.copy_from(f));
        b.push(p).expect("room");
    }
    tx.tx_burst(&mut b)
}

#[test]
fn frames_cross_the_wire_intact_with_metadata() {
    let a = open_port(&cfg("a", "w-intact", 0, 1, 1)).expect("a");
    let b = open_port(&cfg("b", "w-intact", 1, 1, 1)).expect("b");
    assert!(!a.link().up);
    a.start().expect("start");
    assert!(!a.link().up, "link needs both ends");
    b.start().expect("start");
    assert!(a.link().up && b.link().up);
    let src_pool = a.rx_pool(QueueId(0)).expect("pool");
    let mut tx = a.tx_queue(QueueId(0)).expect("txq");
    let mut rx = b.rx_queue(QueueId(0)).expect("rxq");
    let frames: Vec<Vec<u8>> = (0..10).map(|i| udp(i, 1000 + i as u16, 60 + i as usize)).collect();
    assert_eq!(send(&mut *tx, &src_pool, &frames), 10);
    assert_eq!(src_pool.in_use(), 0, "TX completion returned every buffer");
    let mut got = PktBurst::new();
    assert_eq!(rx.rx_burst(&mut got), 10);
    for (p, f) in got.as_slice().iter().zip(&frames) {
        assert_eq!(p.data(), &f[..]);
        assert_eq!(p.port(), 1);
        assert_eq!(p.queue(), 0);
        assert_eq!(p.rss_type(), RssType::UdpIpv4);
        assert_ne!(p.rss_hash(), 0);
    }
    assert!(rx.pool().owns(&got.as_slice()[0]));
    let st = b.rx_stats(QueueId(0)).expect("stats");
    assert_eq!(st.queue.packets, 10);
    assert_eq!(st.queue.bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(a.tx_stats(QueueId(0)).expect("stats").packets, 10);
    drop(got);
    assert_eq!(b.rx_pool(QueueId(0)).expect("pool").in_use(), 0);
}

#[test]
fn rss_spreads_flows_and_keeps_each_flow_on_one_queue() {
    let a = open_port(&cfg("a", "w-rss", 0, 1, 1)).expect("a");
    let b = open_port(&cfg("b", "w-rss", 1, 4, 1)).expect("b");
    a.start().expect("start");
    b.start().expect("start");
    let pool = a.rx_pool(QueueId(0)).expect("pool");
    let mut tx = a.tx_queue(QueueId(0)).expect("txq");
    let mut rxs: Vec<_> = (0..4).map(|q| b.rx_queue(QueueId(q)).expect("rxq")).collect();
    let flows: Vec<Vec<u8>> = (0..64).map(|i| udp(i, 5000 + i as u16, 64)).collect();
    for _ in 0..2 {
        assert_eq!(send(&mut *tx, &pool, &flows), 64);
    }
    let t = rss::Toeplitz::new(&rss::DEFAULT_KEY);
    let reta = b.rss().reta;
    let mut per_queue = [0usize; 4];
    for (q, rx) in rxs.iter_mut().enumerate() {
        let mut got = PktBurst::new();
        rx.rx_burst(&mut got);
        per_queue[q] = got.len();
        for p in got.as_slice() {
            let mut input = [0u8; rss::MAX_INPUT];
            let (n, _) = rss::flow_input(p.data(), true, &mut input);
            let h = t.hash(&input[..n]);
            assert_eq!(p.rss_hash(), h);
            assert_eq!(reta[(h & 63) as usize] as usize, q, "packet on the queue its hash selects");
        }
    }
    assert_eq!(per_queue.iter().sum::<usize>(), 128);
    assert!(per_queue.iter().all(|&n| n > 0), "64 flows reach all 4 queues: {per_queue:?}");

    // Steer everything to queue 3.
    let mut c = b.rss();
    c.reta = vec![3; 64];
    b.set_rss(&c).expect("rss");
    assert_eq!(send(&mut *tx, &pool, &flows), 64);
    let mut got = PktBurst::new();
    assert_eq!(rxs[3].rx_burst(&mut got), 64);
    // Invalid tables are refused and change nothing.
    c.reta = vec![4; 64];
    assert!(matches!(b.set_rss(&c), Err(PortError::InvalidConfig(_))));
    c.reta = vec![0; 48];
    assert!(b.set_rss(&c).is_err());
    assert_eq!(b.rss().reta, vec![3; 64]);
}

#[test]
fn drops_are_counted_by_reason() {
    let a = open_port(&cfg("a", "w-drops", 0, 1, 1)).expect("a");
    let b = open_port(&cfg("b", "w-drops", 1, 1, 1)).expect("b");
    let pool = a.rx_pool(QueueId(0)).expect("pool");
    let mut tx = a.tx_queue(QueueId(0)).expect("txq");
    a.start().expect("start");
    // Peer stopped: link down.
    assert_eq!(send(&mut *tx, &pool, &[udp(1, 1, 64)]), 0);
    b.start().expect("start");
    // Oversize (MTU 1500 + 18) and runt.
    assert_eq!(send(&mut *tx, &pool, &[udp(1, 1, 1519), vec![0u8; 10], udp(1, 1, 1518)]), 1);
    let st = a.tx_stats(QueueId(0)).expect("stats");
    let drop = |n: &str| st.drops.iter().find(|d| d.0 == n).map(|d| d.1);
    assert_eq!((drop("link_down"), drop("oversize"), drop("runt")), (Some(1), Some(1), Some(1)));
    assert_eq!(pool.in_use(), 0, "dropped buffers went back");
    // Receiver MTU lowered: the 1518-byte frame in flight is now oversize.
    b.set_mtu(1000).expect("mtu");
    let mut rx = b.rx_queue(QueueId(0)).expect("rxq");
    let mut got = PktBurst::new();
    assert_eq!(rx.rx_burst(&mut got), 0);
    let st = b.rx_stats(QueueId(0)).expect("stats");
    assert_eq!(st.queue.drops.iter().find(|d| d.0 == "oversize").map(|d| d.1), Some(1));
    assert!(matches!(b.set_mtu(1501), Err(PortError::MtuOutOfRange { .. })));
}

#[test]
fn full_ring_leaves_packets_with_the_caller() {
    let a = open_port(&cfg("a", "w-full", 0, 1, 1)).expect("a");
    let b = open_port(&cfg("b", "w-full", 1, 1, 1)).expect("b");
    a.start().expect("start");
    b.start().expect("start");
    let pool = a.rx_pool(QueueId(0)).expect("pool");
    let mut tx = a.tx_queue(QueueId(0)).expect("txq");
    let mut sent = 0;
    let mut left = 0;
    for _ in 0..2 {
        let mut burst = PktBurst::new();
        for i in 0..200 {
            let mut p = pool.alloc().expect("buf");
            assert!(p.copy_from(&udp(1, i, 64)));
            burst.push(p).expect("room");
        }
        sent += tx.tx_burst(&mut burst);
        left += burst.len();
        // Unsent packets are in order.
        let sports: Vec<u16> =
            burst.as_slice().iter().map(|p| u16::from_be_bytes([p.data()[34], p.data()[35]])).collect();
        assert!(sports.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(sent, 256, "ring of 256 slots");
    assert_eq!(left, 144);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn queues_are_taken_once_and_errors_are_clear() {
    let a = open_port(&cfg("a", "w-err", 0, 2, 1)).expect("a");
    let _b = open_port(&cfg("b", "w-err", 1, 1, 1)).expect("b");
    let q0 = a.rx_queue(QueueId(0)).expect("q0");
    assert!(matches!(a.rx_queue(QueueId(0)), Err(PortError::QueueInUse(_))));
    drop(q0);
    assert!(a.rx_queue(QueueId(0)).is_ok(), "released on drop");
    assert!(matches!(a.rx_queue(QueueId(2)), Err(PortError::QueueOutOfRange { .. })));
    assert!(matches!(a.tx_queue(QueueId(1)), Err(PortError::QueueOutOfRange { .. })));
    let e = open_port(&cfg("c", "w-err", 2, 1, 1)).err().expect("third end");
    assert!(e.to_string().contains("already has two ends"), "{e}");
    let mut bad = cfg("d", "w-x", 3, 1, 1);
    bad.driver = "nope".into();
    let e = open_port(&bad).err().expect("unknown driver");
    assert!(e.to_string().contains("unknown port driver \"nope\"") && e.to_string().contains("mem"), "{e}");
    let mut bad = cfg("d", "w-x", 3, 0, 1);
    assert!(open_port(&bad).is_err());
    bad = cfg("d", "w-x", 3, 1, 1);
    bad.args.remove("wire");
    assert!(open_port(&bad).err().expect("no wire").to_string().contains("needs a `wire`"));
    bad = cfg("d", "w-x", 3, 1, 1);
    bad.args.insert("colour".into(), "red".into());
    assert!(open_port(&bad).err().expect("bad arg").to_string().contains("unknown mem driver arg"));
}

#[test]
fn wire_can_be_reconnected_after_an_end_closes() {
    let a = open_port(&cfg("a", "w-re", 0, 1, 1)).expect("a");
    {
        let b = open_port(&cfg("b", "w-re", 1, 1, 1)).expect("b");
        a.start().expect("start");
        b.start().expect("start");
        assert!(a.link().up);
    }
    assert!(!a.link().up, "peer closed");
    let b = open_port(&cfg("b2", "w-re", 1, 1, 1)).expect("b again");
    b.start().expect("start");
    assert!(a.link().up);
    let pool = a.rx_pool(QueueId(0)).expect("pool");
    let mut tx = a.tx_queue(QueueId(0)).expect("txq");
    assert_eq!(send(&mut *tx, &pool, &[udp(1, 1, 64)]), 1);
    let mut got = PktBurst::new();
    assert_eq!(b.rx_queue(QueueId(0)).expect("rxq").rx_burst(&mut got), 1);
}

#[test]
fn two_threads_forward_without_losing_buffers() {
    // a -> b on one thread, b's RX handed to another thread that drops.
    let a = open_port(&cfg("a", "w-mt", 0, 1, 1)).expect("a");
    let b = open_port(&cfg("b", "w-mt", 1, 1, 1)).expect("b");
    a.start().expect("start");
    b.start().expect("start");
    let mut rx = b.rx_queue(QueueId(0)).expect("rxq");
    let total = 50_000usize;
    let recv = std::thread::spawn(move || {
        let _bind = PoolBinding::new(rx.pool()).expect("bind");
        let mut n = 0;
        let mut burst = PktBurst::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while n < total && std::time::Instant::now() < deadline {
            n += rx.rx_burst(&mut burst);
            burst.clear();
        }
        n
    });
    let pool = a.rx_pool(QueueId(0)).expect("pool");
    let _bind = PoolBinding::new(&pool).expect("bind");
    let mut tx = a.tx_queue(QueueId(0)).expect("txq");
    let frame = udp(7, 7, 64);
    let mut sent = 0;
    while sent < total {
        let mut burst = PktBurst::new();
        for _ in 0..32.min(total - sent) {
            let mut p = pool.alloc().expect("buf");
            assert!(p.copy_from(&frame));
            burst.push(p).expect("room");
        }
        sent += tx.tx_burst(&mut burst);
    }
    assert_eq!(recv.join().expect("receiver"), total);
    assert_eq!(pool.in_use(), 0);
    let bp = b.rx_pool(QueueId(0)).expect("pool");
    assert_eq!(bp.in_use(), 0);
    let s = bp.stats();
    assert_eq!(s.recycle_direct as usize, total, "receiver recycled directly: {s:?}");
}
