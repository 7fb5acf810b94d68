//! The MANA driver against the emulated device.

use ports::mana::format::*;
use ports::mana::{EmuDevice, Fault, Garbage, Geometry, ManaPort};
use ports::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static WIRE: AtomicU32 = AtomicU32::new(0);

fn cfg(name: &str, id: u16, wire: &str, geo: Geometry, queues: u16) -> PortConfig {
    let mut c = PortConfig {
        id: PortId(id),
        name: name.into(),
        driver: "mana".into(),
        rx_queues: queues,
        tx_queues: queues,
        rx_ring: geo.rx_ring,
        tx_ring: geo.tx_ring,
        mtu: geo.mtu,
        hugepages: HugepagePolicy::Never,
        ..Default::default()
    };
    c.args.insert("wire".into(), wire.into());
    c
}

struct Pair {
    a: ManaPort,
    b: ManaPort,
    da: Arc<EmuDevice>,
    db: Arc<EmuDevice>,
}

fn pair_with(geo: Geometry, queues: u16, tweak: impl Fn(&mut PortConfig)) -> Pair {
    let w = format!("test-{}", WIRE.fetch_add(1, Ordering::Relaxed));
    let mut ca = cfg("a", 0, &w, geo, queues);
    let mut cb = cfg("b", 1, &w, geo, queues);
    tweak(&mut ca);
    tweak(&mut cb);
    let da = ports::mana::emu_device(&ca).expect("ok");
    let db = ports::mana::emu_device(&cb).expect("ok");
    let a = ManaPort::open(&ca, da.clone()).expect("ok");
    let b = ManaPort::open(&cb, db.clone()).expect("ok");
    a.start().expect("ok");
    b.start().expect("ok");
    Pair { a, b, da, db }
}

fn pair(geo: Geometry) -> Pair {
    pair_with(geo, 1, |_| {})
}

fn geo(rx: u32, tx: u32) -> Geometry {
    Geometry { mtu: 1500, rx_ring: rx, tx_ring: tx }
}

fn gen_pool(n: u32) -> PagePool {
    PagePool::new(&PoolConfig {
        name: "gen".into(),
        buffers: n,
        buf_size: 2048 + 128,
        hugepages: HugepagePolicy::Never,
        ..Default::default()
    })
    .expect("ok")
}

/// A UDP/IPv4 frame with a valid IP header checksum and a sequence number.
fn frame(seq: u32, sport: u16, len: usize) -> Vec<u8> {
    let len = len.max(60);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12] = 0x08;
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 1, 2]);
    let mut s = 0u32;
    for w in ip.chunks(2) {
        s += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

fn seq_of(p: &Pkt) -> u32 {
    let d = p.data();
    u32::from_be_bytes([d[42], d[43], d[44], d[45]])
}

/// Sends `frames` on `tx`, retrying while the queue is full.
fn send(tx: &mut dyn TxQueue, pool: &PagePool, frames: &[Vec<u8>]) {
    let mut b = PktBurst::new();
    for f in frames {
        let mut p = pool.alloc().expect("generator pool");
        assert!(p.copy_from(f));
        b.push(p).expect("ok");
    }
    let t0 = Instant::now();
    while !b.is_empty() {
        tx.tx_burst(&mut b);
        assert!(t0.elapsed() < Duration::from_secs(5), "TX stuck");
    }
}

/// Receives until `want` packets came or the queue stays empty (the
/// emulated device completes synchronously, so an empty queue after a
/// send means nothing more is coming).
fn recv(rx: &mut dyn RxQueue, want: usize) -> Vec<Pkt> {
    let mut out = Vec::new();
    let mut b = PktBurst::new();
    let mut empty = 0;
    while out.len() < want && empty < 3 {
        if rx.rx_burst(&mut b) == 0 {
            empty += 1;
        }
        out.extend(b.drain());
    }
    out
}

fn stat(v: &[(&'static str, u64)], name: &str) -> u64 {
    v.iter().find(|x| x.0 == name).unwrap_or_else(|| unreachable!("no counter {name} in {v:?}")).1
}

#[test]
fn round_trip_at_every_ring_size() {
    let gen = gen_pool(4096);
    let _g = PoolBinding::new(&gen).expect("ok");
    for n in [64u32, 128, 256, 512, 1024, 2048, 4096, 8192] {
        let p = pair(geo(n, n));
        let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
        let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
        let _b = PoolBinding::new(rx.pool()).expect("ok");
        // Three ring's worth in bursts of up to 64: every slot is reused.
        let total = (3 * n) as usize;
        let mut got = 0usize;
        let mut seq = 0u32;
        while got < total {
            let k = 64.min(total - seq as usize);
            let frames: Vec<_> = (0..k as u32).map(|i| frame(seq + i, 1000, 60 + (i as usize % 7) * 100)).collect();
            send(tx.as_mut(), &gen, &frames);
            let pk = recv(rx.as_mut(), k);
            assert_eq!(pk.len(), k, "ring {n}");
            for (i, p) in pk.iter().enumerate() {
                assert_eq!(p.data(), &frames[i][..], "ring {n} frame {}", seq as usize + i);
                assert_eq!(p.port(), 1);
                assert!(p.offload().contains(Offload::RX_IP_CSUM_GOOD));
                assert_eq!(p.rss_type(), RssType::UdpIpv4);
            }
            seq += k as u32;
            got += k;
        }
        let rs = p.b.rx_stats(QueueId(0)).expect("ok");
        assert_eq!(rs.queue.packets, total as u64);
        assert_eq!(rs.queue.dropped(), 0, "{rs:?}");
        let ts = p.a.tx_stats(QueueId(0)).expect("ok");
        assert_eq!(ts.packets, total as u64);
        assert_eq!(ts.dropped(), 0, "{ts:?}");
        assert_eq!(p.db.stats().rx_no_wqe, 0);
        // The driver rang CQ doorbells often enough (hardware rule: < 8 wraps).
        assert!(p.db.stats().cq_doorbell_lag_max < 8 * n as u64, "{:?}", p.db.stats());
    }
}

#[test]
fn tx_wraps_at_every_offset_with_long_oob() {
    // vp_offset > 255 forces the 24-byte OOB: 2-BU WQEs whose SGE lands in
    // the next BU, so across 64-entry rings every wrap position is hit.
    let gen = gen_pool(4096);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair_with(geo(128, 64), 1, |c| {
        c.args.insert("vp_offset".into(), "300".into());
    });
    let mut tx = p.a.mana_tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    let mut seq = 0;
    for burst in 1..=67u32 {
        let frames: Vec<_> = (0..burst).map(|i| frame(seq + i, 7, 64)).collect();
        send(&mut tx, &gen, &frames);
        let got = recv(rx.as_mut(), burst as usize);
        assert_eq!(got.len(), burst as usize);
        for (i, p) in got.iter().enumerate() {
            assert_eq!(seq_of(p), seq + i as u32);
        }
        seq += burst;
    }
    let ts = p.a.tx_stats(QueueId(0)).expect("ok");
    assert_eq!(stat(&ts.counters, "long_oob"), seq as u64);
    assert_eq!(stat(&ts.counters, "short_oob"), 0);
    assert_eq!(ts.dropped(), 0, "{ts:?}");
}

#[test]
fn coalesced_completions_carry_up_to_four() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    for coalesce in [true, false] {
        let p = pair_with(geo(256, 256), 1, |c| {
            c.args.insert("coalesce".into(), coalesce.to_string());
        });
        let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
        let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
        let _b = PoolBinding::new(rx.pool()).expect("ok");
        let frames: Vec<_> = (0..40).map(|i| frame(i, 9, 100)).collect();
        send(tx.as_mut(), &gen, &frames);
        let got = recv(rx.as_mut(), 40);
        assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
        let c = p.b.rx_stats(QueueId(0)).expect("ok").queue.counters;
        if coalesce {
            assert_eq!(stat(&c, "cqe_coalesced_4"), 10, "{c:?}");
            assert_eq!(p.db.stats().rx_coalesced_cqes, 10);
        } else {
            assert_eq!(stat(&c, "cqe_1pkt"), 40, "{c:?}");
            assert_eq!(stat(&c, "cqe_coalesced_4"), 0);
        }
    }
}

#[test]
fn pool_exhaustion_drops_but_keeps_every_slot() {
    let gen = gen_pool(2048);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair_with(geo(64, 256), 1, |c| c.pool_buffers = 1);
    // pool_buffers is raised to ring + 64 = 128 buffers.
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    assert_eq!(rx.pool().capacity(), 128);
    let mut held = Vec::new();
    let mut seq = 0;
    // Hold everything received: after 64 deliveries the pool is empty.
    for _ in 0..6 {
        let frames: Vec<_> = (0..32).map(|i| frame(seq + i, 3, 60)).collect();
        seq += 32;
        send(tx.as_mut(), &gen, &frames);
        held.extend(recv(rx.as_mut(), 32));
        std::thread::sleep(Duration::from_millis(1));
        let mut b = PktBurst::new();
        rx.rx_burst(&mut b);
        held.extend(b.drain());
    }
    let rs = p.b.rx_stats(QueueId(0)).expect("ok");
    assert_eq!(held.len(), 64, "only the spare buffers could be delivered");
    assert_eq!(stat(&rs.queue.drops, "refill_failed"), 6 * 32 - 64);
    // Every slot is still posted, so nothing was lost by the device either.
    assert_eq!(p.db.stats().rx_no_wqe, 0);
    assert_eq!(p.b.rx_pool_in_use(QueueId(0)), Some(128));
    // Free the held packets: traffic flows again with no slot missing.
    held.clear();
    let frames: Vec<_> = (0..64).map(|i| frame(1000 + i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    let got = recv(rx.as_mut(), 64);
    assert_eq!(got.len(), 64);
    assert_eq!(p.db.stats().rx_no_wqe, 0);
}

#[test]
fn truncated_completions_are_dropped_and_counted() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    p.db.inject(Fault::Truncate { count: 3 });
    let frames: Vec<_> = (0..10).map(|i| frame(i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    let got = recv(rx.as_mut(), 7);
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), (3..10).collect::<Vec<_>>());
    let rs = p.b.rx_stats(QueueId(0)).expect("ok");
    assert_eq!(stat(&rs.queue.drops, "truncated"), 3);
    // Still a full ring: 200 more frames go through.
    let frames: Vec<_> = (0..200).map(|i| frame(i, 3, 60)).collect();
    for c in frames.chunks(50) {
        send(tx.as_mut(), &gen, c);
        assert_eq!(recv(rx.as_mut(), c.len()).len(), c.len());
    }
}

#[test]
fn frames_above_the_mtu_are_truncated_by_the_device() {
    let gen = gen_pool(256);
    let _g = PoolBinding::new(&gen).expect("ok");
    // The receiver's buffers hold mtu + 14 = 1014 bytes.
    let w = format!("test-mtu-{}", WIRE.fetch_add(1, Ordering::Relaxed));
    let ca = cfg("a", 0, &w, geo(64, 64), 1);
    let cb = cfg("b", 1, &w, Geometry { mtu: 1000, ..geo(64, 64) }, 1);
    let a = ManaPort::open(&ca, ports::mana::emu_device(&ca).expect("ok")).expect("ok");
    let b = ManaPort::open(&cb, ports::mana::emu_device(&cb).expect("ok")).expect("ok");
    a.start().expect("ok");
    b.start().expect("ok");
    let mut tx = a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    send(tx.as_mut(), &gen, &[frame(1, 1, 1014), frame(2, 1, 1015), frame(3, 1, 1514), frame(4, 1, 60)]);
    let got = recv(rx.as_mut(), 2);
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), vec![1, 4]);
    assert_eq!(stat(&b.rx_stats(QueueId(0)).expect("ok").queue.drops, "truncated"), 2);
}

#[test]
fn garbage_completions_are_dropped_and_counted() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    for g in [Garbage::WrongWqNum, Garbage::BadType, Garbage::BadClientType] {
        p.db.inject(Fault::Garbage(g));
    }
    // Each spurious CQE consumes no WQE: all 5 frames arrive.
    let frames: Vec<_> = (0..5).map(|i| frame(i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    assert_eq!(recv(rx.as_mut(), 5).iter().map(seq_of).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let d = p.b.rx_stats(QueueId(0)).expect("ok").queue.drops;
    assert_eq!(stat(&d, "bad_cqe"), 3, "{d:?}");
    // Lying lengths consume the WQE their frame used: that frame is lost.
    p.db.inject(Fault::Garbage(Garbage::LenBeyondBuffer));
    p.db.inject(Fault::Garbage(Garbage::Len0));
    let frames: Vec<_> = (10..15).map(|i| frame(i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    assert_eq!(recv(rx.as_mut(), 3).iter().map(seq_of).collect::<Vec<_>>(), vec![12, 13, 14]);
    let d = p.b.rx_stats(QueueId(0)).expect("ok").queue.drops;
    assert_eq!(stat(&d, "oversize"), 1);
    assert_eq!(stat(&d, "len0"), 1);
    // The ring is whole: a full ring's worth still gets through.
    let frames: Vec<_> = (0..64).map(|i| frame(100 + i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    assert_eq!(recv(rx.as_mut(), 64).len(), 64);
    assert_eq!(p.db.stats().rx_no_wqe, 0);
}

#[test]
fn tx_error_completions_free_every_buffer_even_when_suppressed() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(256, 256));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    // Errors on WQEs 0..5 of a 40-packet burst, most of which are
    // suppressed: their error CQEs still come.
    p.da.inject(Fault::TxError { cqe_type: CQE_TX_VPORT_DISABLED, count: 5 });
    let frames: Vec<_> = (0..40).map(|i| frame(i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    let got = recv(rx.as_mut(), 35);
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), (5..40).collect::<Vec<_>>());
    // The next burst reaps the completions.
    let mut empty = PktBurst::new();
    tx.tx_burst(&mut empty);
    let ts = p.a.tx_stats(QueueId(0)).expect("ok");
    assert_eq!(stat(&ts.drops, "tx_vport_disabled"), 5, "{ts:?}");
    assert_eq!(stat(&ts.drops, "bad_cqe"), 0);
    drop(got);
    assert_eq!(gen.in_use(), 0, "every TX buffer went back to its pool");
}

#[test]
fn dropped_doorbells_are_covered_by_the_next_one() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    p.da.inject(Fault::DropDoorbells { count: 1 });
    send(tx.as_mut(), &gen, &[frame(1, 1, 60), frame(2, 1, 60)]);
    assert!(recv(rx.as_mut(), 1).is_empty(), "the ignored doorbell sent nothing");
    send(tx.as_mut(), &gen, &[frame(3, 1, 60)]);
    let got = recv(rx.as_mut(), 3);
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(p.da.stats().doorbells_dropped, 1);
}

#[test]
fn multi_segment_send_and_checksum_offload() {
    let gen = gen_pool(256);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.mana_tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    let mut f = frame(77, 5, 300);
    let want = f.clone();
    // Zero the IP checksum and let the device fill it.
    f[24] = 0;
    f[25] = 0;
    let segs: Vec<Pkt> = [&f[..34], &f[34..100], &f[100..]]
        .iter()
        .map(|s| {
            let mut p = gen.alloc().expect("ok");
            assert!(p.copy_from(s));
            p
        })
        .collect();
    let mut segs = segs;
    segs[0].set_offload(Offload::TX_IP_CSUM);
    tx.tx_chain(segs).expect("ok");
    let got = recv(rx.as_mut(), 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data(), &want[..]);
    assert!(got[0].offload().contains(Offload::RX_IP_CSUM_GOOD));
}

#[test]
fn rss_spreads_flows_and_keeps_each_on_one_queue() {
    let gen = gen_pool(4096);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair_with(geo(1024, 1024), 4, |_| {});
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rxs: Vec<_> = (0..4).map(|q| p.b.rx_queue(QueueId(q)).expect("ok")).collect();
    let _binds: Vec<_> = rxs.iter().map(|r| PoolBinding::new(r.pool()).expect("ok")).collect();
    let frames: Vec<_> = (0..512u32).map(|i| frame(i, 1000 + (i % 64) as u16, 60)).collect();
    for c in frames.chunks(128) {
        send(tx.as_mut(), &gen, c);
    }
    let mut flows = std::collections::HashMap::new();
    let mut total = 0;
    let t = ports::rss::Toeplitz::new(&ports::rss::DEFAULT_KEY);
    for (q, rx) in rxs.iter_mut().enumerate() {
        let mut b = PktBurst::new();
        loop {
            if rx.rx_burst(&mut b) == 0 {
                break;
            }
            for p in b.drain() {
                let d = p.data();
                let sport = u16::from_be_bytes([d[34], d[35]]);
                assert_eq!(*flows.entry(sport).or_insert(q), q, "flow {sport} on two queues");
                let mut input = [0u8; 12];
                input[..8].copy_from_slice(&d[26..34]);
                input[8..12].copy_from_slice(&d[34..38]);
                assert_eq!(p.rss_hash(), t.hash(&input));
                assert_eq!(p.queue() as usize, q);
                total += 1;
            }
        }
    }
    assert_eq!(total, 512);
    let per_q: Vec<usize> = (0..4).map(|q| flows.values().filter(|v| **v == q).count()).collect();
    assert!(per_q.iter().all(|&n| n > 0), "64 flows over 4 queues: {per_q:?}");

    // A new indirection table takes effect on the live queues: all to 2.
    let mut cfg = p.b.rss();
    cfg.reta = vec![2; 64];
    p.b.set_rss(&cfg).expect("set_rss");
    send(tx.as_mut(), &gen, &frames[..64]);
    let got = recv(rxs[2].as_mut(), 64);
    assert_eq!(got.len(), 64);
    assert!(got.iter().all(|p| p.queue() == 2));
    cfg.reta = vec![4; 64];
    assert!(p.b.set_rss(&cfg).is_err(), "queue 4 does not exist");
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn reset_in_the_middle_of_traffic_recovers_and_accounts_every_buffer() {
    let gen = gen_pool(4096);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(256, 256));
    let pool_b = p.b.rx_pool(QueueId(0)).expect("ok");
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    let frames: Vec<_> = (0..100).map(|i| frame(i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames[..50]);
    // Take 20 of them; 30 stay completed in the ring.
    let mut first = PktBurst::new();
    first.set_limit(20);
    assert_eq!(rx.rx_burst(&mut first), 20);
    drop(first);
    // The receiver's device resets with frames still queued.
    p.db.inject(Fault::Reset);
    wait_for("reset handled", || p.b.events().iter().any(|e| e.0 == "resets" && e.1 == 1));
    wait_for("device back", || p.b.is_running());
    assert_eq!(p.b.events().iter().find(|e| e.0 == "returns").expect("ok").1, 1);
    // The handle drops its old ring at its next burst and takes the new one.
    let mut b = PktBurst::new();
    rx.rx_burst(&mut b);
    b.clear();
    assert!(p.b.link().up);
    send(tx.as_mut(), &gen, &frames[50..]);
    let got = recv(rx.as_mut(), 50);
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), (50..100).collect::<Vec<_>>());
    drop(got);
    // After teardown every buffer is home.
    drop(rx);
    drop(tx);
    drop(p);
    assert_eq!(pool_b.in_use(), 0);
    assert_eq!(gen.in_use(), 0);
}

#[test]
fn removal_and_return_without_restart() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    p.da.inject(Fault::Remove);
    wait_for("port a down", || !p.a.is_running());
    assert!(!p.a.link().up);
    assert_eq!(p.da.registrations(), 0);
    send(tx.as_mut(), &gen, &[frame(1, 1, 60)]);
    assert_eq!(stat(&p.a.tx_stats(QueueId(0)).expect("ok").drops, "link_down"), 1);
    assert_eq!(gen.in_use(), 0);
    p.da.inject(Fault::Restore);
    wait_for("port a back", || p.a.is_running());
    send(tx.as_mut(), &gen, &[frame(2, 1, 60), frame(3, 1, 60)]);
    assert_eq!(recv(rx.as_mut(), 2).iter().map(seq_of).collect::<Vec<_>>(), vec![2, 3]);
    assert!(p.da.registrations() > 0);
}

#[test]
fn reconfigure_fails_cleanly_when_memory_is_short() {
    let gen = gen_pool(1024);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair_with(geo(64, 64), 1, |c| {
        c.args.insert("pool_mem_limit_mb".into(), "16".into());
    });
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    // 9000-byte buffers for 8192 descriptors do not fit in 16 MiB.
    let e = p.b.reconfigure(Geometry { mtu: 9000, rx_ring: 8192, tx_ring: 64 }).expect_err("must fail");
    assert!(e.to_string().contains("port unchanged"), "{e}");
    assert_eq!(p.b.geometry(), geo(64, 64));
    send(tx.as_mut(), &gen, &[frame(1, 1, 60)]);
    assert_eq!(recv(rx.as_mut(), 1).len(), 1);
    // A change that fits works, and traffic flows at the new MTU.
    p.b.set_mtu(4000).expect("ok");
    p.a.set_mtu(4000).expect("ok");
    assert_eq!(p.b.info().mtu, 4000);
    send(tx.as_mut(), &gen, &[frame(2, 1, 1500)]);
    let got = recv(rx.as_mut(), 1);
    assert_eq!(got.len(), 1);
    assert_eq!(seq_of(&got[0]), 2);
    // The handle took over the new pool; after it and the port stop,
    // every buffer of the new pool is home, none stuck in a cache.
    let new_pool = p.b.rx_pool(QueueId(0)).expect("pool");
    assert!(new_pool.data_room() >= 4014);
    drop(got);
    drop(rx);
    p.b.stop().expect("stop");
    assert_eq!(new_pool.in_use(), 0);
    assert_eq!(new_pool.in_ring(), new_pool.capacity() as usize);
}

#[test]
fn bad_configs_get_clear_errors() {
    let d = ports::mana::emu_device(&cfg("x", 0, "cfgs", geo(64, 64), 1)).expect("ok");
    for (g, q, want) in [
        (geo(100, 64), 1, "power of two"),
        (geo(64, 16384), 1, "tx_ring"),
        (Geometry { mtu: 9500, ..geo(64, 64) }, 1, "MTU"),
        (geo(64, 64), 0, "rx_queues"),
    ] {
        let e = ManaPort::open(&cfg("x", 0, "cfgs", g, q), d.clone()).err().expect("must fail");
        assert!(e.to_string().contains(want), "{e}");
    }
    let mut c = cfg("x", 0, "cfgs2", geo(64, 64), 1);
    c.args.insert("bogus".into(), "1".into());
    let e = ports::open_port(&c).err().expect("ok");
    assert!(e.to_string().contains("unknown mana driver arg"), "{e}");
    c.args.remove("bogus");
    c.args.insert("device".into(), "nic".into());
    assert!(ports::open_port(&c).err().expect("ok").to_string().contains("emu or hw"));
}

#[test]
fn small_bursts_get_every_packet_of_a_coalesced_completion() {
    let gen = gen_pool(256);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    let frames: Vec<_> = (0..10).map(|i| frame(i, 3, 60)).collect();
    send(tx.as_mut(), &gen, &frames);
    let mut got = Vec::new();
    let mut b = PktBurst::new();
    b.set_limit(1);
    for _ in 0..20 {
        rx.rx_burst(&mut b);
        assert!(b.len() <= 1);
        got.extend(b.drain());
    }
    assert_eq!(got.iter().map(seq_of).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    let c = p.b.rx_stats(QueueId(0)).expect("ok").queue.counters;
    assert_eq!(stat(&c, "cqe_coalesced_4"), 2, "{c:?}");
}

#[test]
fn a_burst_cut_short_still_completes_its_last_wqe() {
    let gen = gen_pool(256);
    let _g = PoolBinding::new(&gen).expect("ok");
    let p = pair(geo(64, 64));
    let mut tx = p.a.tx_queue(QueueId(0)).expect("ok");
    let mut rx = p.b.rx_queue(QueueId(0)).expect("ok");
    let _b = PoolBinding::new(rx.pool()).expect("ok");
    // Two good frames, then one the port drops (above the MTU): the second
    // was posted as "not the last" (CQE suppressed) and must be switched
    // back before the doorbell, or both buffers would wait for more traffic.
    let mut b = PktBurst::new();
    for f in [frame(1, 1, 60), frame(2, 1, 60), vec![0u8; 1600]] {
        let mut pk = gen.alloc().expect("ok");
        assert!(pk.copy_from(&f));
        b.push(pk).expect("ok");
    }
    assert_eq!(tx.tx_burst(&mut b), 2);
    assert_eq!(recv(rx.as_mut(), 2).len(), 2);
    let mut empty = PktBurst::new();
    tx.tx_burst(&mut empty); // reaps
    assert_eq!(gen.in_use(), 0, "both TX buffers completed");
    assert_eq!(stat(&p.a.tx_stats(QueueId(0)).expect("ok").drops, "oversize"), 1);
}
