//! NAT stage cost on one core, without ports: the whole pipeline runs over
//! bursts of crafted frames (copied into their buffers before each burst),
//! once with NAT and once without, and the difference is what NAT costs.
//!
//! - established: every packet belongs to one of N sessions (N = 1k or
//!   1M), half of them forward (inside → outside), half replies; flows are
//!   visited in a random order so the table is not walked sequentially;
//! - new sessions: every packet opens a session (fresh flows from the
//!   inside, masquerade with a pool so ports do not run out);
//! - memory per session.
//!
//! Figures are TSC cycles per packet (median of `--rounds` rounds) and the
//! Mpps one core would reach at the pipeline's cost with NAT.
//!
//! `--lookups` measures the session table alone instead: TSC cycles per
//! lookup over `--sessions` sessions, keys in random order, in bursts of
//! 32 (`lookup_batch`), one at a time (`lookup`), and in bursts over a few
//! hundred keys (all in the cache).
//!
//! Usage: nat_bench [--sessions N] [--rounds R] [--packets P] [--lookups]

use dataplane::l3::{Adj, L3Config, L3Control, Target, VrfId};
use dataplane::nat::control::{NatControl, NatPort};
use dataplane::nat::{NatConfig, SnatRule, SnatTo};
use dataplane::rcu::Rcu;
use dataplane::stage::{Ctx, Pipeline};
use dataplane::wire::checksum;
use dataplane::{tsc, Batch, PortEntry, TableHandle, Tables, Verdict, WorkerStats};
use ports::{HugepagePolicy, MacAddr, PagePool, PoolConfig, PortId};
use std::net::IpAddr;
use vrouter_tests::arg;

const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const REMOTE: [u8; 4] = [198, 51, 100, 7];
const BURST: usize = 32;

fn base() -> (Vec<PortEntry>, Tables) {
    let a = |s: &str| -> IpAddr { s.parse().expect("addr") };
    let ports = vec![
        PortEntry { id: PortId(0), name: "p0".into(), mac: MacAddr(P0_MAC), mtu: 1500, addrs: vec![a("10.0.0.254")] },
        PortEntry { id: PortId(1), name: "p1".into(), mac: MacAddr(P1_MAC), mtu: 1500, addrs: vec![a("203.0.113.1")] },
    ];
    let h = TableHandle::new(Tables { ports: ports.clone(), ..Default::default() });
    let mut l3 = L3Control::new(L3Config::default(), 2, Rcu::new()).expect("l3");
    l3.attach(h.clone());
    let host = l3.adjacency(Adj::Fixed { port: PortId(0), mac: MacAddr([2, 0, 0, 0, 2, 2]) }).expect("adj");
    let gw = l3.adjacency(Adj::Fixed { port: PortId(1), mac: MacAddr([2, 0, 0, 0, 3, 3]) }).expect("adj");
    l3.add_route(VrfId(0), a("10.0.0.0"), 8, Target::Adj(host)).expect("route");
    l3.add_route(VrfId(0), a("0.0.0.0"), 0, Target::Adj(gw)).expect("route");
    let t = (*h.current()).clone();
    (ports, t)
}

/// A UDP frame with correct checksums.
fn udp_frame(mac: [u8; 6], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = mac.to_vec();
    f.extend_from_slice(&[2, 9, 9, 9, 9, 9, 8, 0]);
    let mut ip = vec![0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut u = vec![0u8; 26];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&26u16.to_be_bytes());
    let c = checksum::l4_checksum_v4(src, dst, 17, &u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&u);
    f
}

fn host(i: u32) -> ([u8; 4], u16) {
    // 10.0.0.0/8 hosts, 16 flows each.
    let h = 0x0a00_0000 | ((i / 16) + 1);
    (h.to_be_bytes(), 1024 + (i % 16) as u16)
}

struct Bench {
    tables: Tables,
    pool: PagePool,
    pipe: Pipeline,
    stats: WorkerStats,
}

impl Bench {
    /// Runs `frames` in bursts at time `now`; TSC cycles spent in the
    /// pipeline (copies excluded) and the verdicts' transmit count.
    fn run(&mut self, frames: &[(u16, &[u8])], now: u64) -> (u64, usize) {
        let mut cycles = 0;
        let mut tx = 0;
        let mut b = Batch::boxed();
        for chunk in frames.chunks(BURST) {
            for (port, f) in chunk {
                let Some(mut p) = self.pool.alloc() else { continue };
                p.copy_from(f);
                p.set_port(*port);
                let _ = b.pkts.push(p);
            }
            let cx = Ctx { tables: &self.tables, stats: &self.stats, neigh: None, worker: 0, now_secs: now };
            let t0 = tsc::now();
            self.pipe.run(&mut b, &cx);
            cycles += tsc::now() - t0;
            tx += b.verdict[..b.len()].iter().filter(|v| matches!(v, Verdict::Tx(_))).count();
            b.pkts.clear();
        }
        (cycles, tx)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sessions: u32 = arg(&args, "--sessions", 1_000_000);
    let rounds: usize = arg(&args, "--rounds", 5);
    let packets: usize = arg(&args, "--packets", 2_000_000);
    let hz = tsc::hz() as f64;
    if args.iter().any(|a| a == "--lookups") {
        lookups(sessions, rounds.max(3));
        return;
    }

    let (ports, base) = base();
    let nports: Vec<NatPort> = ports.iter().map(|p| NatPort { name: p.name.clone(), addrs: p.addrs.clone() }).collect();
    let pool_addrs = (0..64u8).map(|i| std::net::Ipv4Addr::new(203, 0, 113, i)).collect();
    let mut cfg = NatConfig {
        inside: vec!["p0".into()],
        outside: vec!["p1".into()],
        snat: vec![SnatRule { src: "10.0.0.0/8".parse().expect("net"), out_port: None, to: SnatTo::Pool(pool_addrs) }],
        ..NatConfig::default()
    };
    cfg.table.capacity = (sessions as usize * 2).max(1 << 16);
    let nat = NatControl::new(&nports, 1, &cfg).expect("nat");
    let mut with = base.clone();
    with.nat = nat.view();
    let pool = PagePool::new(&PoolConfig { buffers: 4096, hugepages: HugepagePolicy::Prefer, ..Default::default() })
        .expect("pool");
    let mut on = Bench { tables: with, pool: pool.clone(), pipe: Pipeline::default(), stats: WorkerStats::default() };
    let mut off = Bench { tables: base, pool, pipe: Pipeline::default(), stats: WorkerStats::default() };

    // Create the sessions: one forward packet per flow (timed: every
    // packet opens a session).
    let fwd: Vec<Vec<u8>> = (0..sessions)
        .map(|i| {
            let (h, p) = host(i);
            udp_frame(P0_MAC, h, REMOTE, p, 53)
        })
        .collect();
    let fwd_refs: Vec<(u16, &[u8])> = fwd.iter().map(|f| (0u16, f.as_slice())).collect();
    let (c_new, tx_new) = on.run(&fwd_refs, 10);
    assert_eq!(tx_new, sessions as usize, "every new flow got a session");
    let (c_new_off, _) = off.run(&fwd_refs, 10);
    let table = nat.table().expect("table");
    assert_eq!(table.len(10), sessions as usize);

    // The replies, built from the sessions' reply tuples.
    let mut replies = Vec::with_capacity(sessions as usize);
    table.for_each(10, |s| {
        let r = s.reply;
        replies.push(udp_frame(P1_MAC, r.src.to_be_bytes(), r.dst.to_be_bytes(), r.sport, r.dport));
    });
    // Established traffic: forward and reply packets, flows in a random
    // order (a fixed LCG permutation), `packets` in all.
    let mut order: Vec<(u16, &[u8])> = Vec::with_capacity(packets);
    let mut x: u64 = 12345;
    for k in 0..packets {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let i = ((x >> 33) % sessions as u64) as usize;
        if k % 2 == 0 {
            order.push((0, fwd[i].as_slice()));
        } else {
            order.push((1, replies[i % replies.len()].as_slice()));
        }
    }
    let mut c_on = Vec::new();
    let mut c_off = Vec::new();
    for _ in 0..rounds {
        let (c, tx) = on.run(&order, 11);
        assert_eq!(tx, packets, "every established packet is translated and forwarded");
        c_on.push(c as f64 / packets as f64);
        // Without NAT the replies to pool addresses have no route back in
        // this layout: they go out of p1 by the default route, which costs
        // the same as forwarding them.
        let (c, _) = off.run(&order, 11);
        c_off.push(c as f64 / packets as f64);
    }
    let (on_cpp, off_cpp) = (median(c_on), median(c_off));
    let new_cpp = c_new as f64 / sessions as f64;
    let new_off_cpp = c_new_off as f64 / sessions as f64;
    let bytes = table.bytes() as f64 / table.capacity() as f64;
    println!(
        "machine: TSC {:.2} GHz; {} sessions (table of {}), bursts of {BURST}",
        hz / 1e9,
        sessions,
        table.capacity()
    );
    println!(
        "established: pipeline {on_cpp:.1} cycles/packet with NAT, {off_cpp:.1} without: NAT costs {:.1}; {:.2} Mpps per core",
        on_cpp - off_cpp,
        hz / on_cpp / 1e6
    );
    println!(
        "new sessions: pipeline {new_cpp:.1} cycles/packet ({new_off_cpp:.1} without NAT): {:.2} M sessions/s per core",
        hz / new_cpp / 1e6
    );
    println!("memory: {bytes:.0} bytes per session");
    println!("nat_cycles_per_packet={:.1}", on_cpp - off_cpp);
}

/// The session table alone: cycles per lookup, batched and single.
fn lookups(sessions: u32, rounds: usize) {
    use dataplane::nat::table::{NatTable, NatTableConfig, State};
    use dataplane::nat::{Tuple, KIND_FLOW};
    let t = NatTable::new(NatTableConfig { capacity: sessions as usize, ..NatTableConfig::default() });
    let key =
        |i: u32| Tuple { src: 0x0a00_0000 | i, dst: 0xc633_6407, sport: 1024, dport: 53, proto: 17, kind: KIND_FLOW };
    for i in 0..sessions {
        let o = key(i);
        let r =
            Tuple { src: o.dst, dst: 0xcb00_7100 | (i >> 16), sport: 53, dport: i as u16, proto: 17, kind: KIND_FLOW };
        t.create(0, &o, &r, State::Udp, 0).expect("room for every session");
    }
    let mut x = 99u32;
    let keys: Vec<Tuple> = (0..1 << 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            key(x % sessions)
        })
        .collect();
    let measure = |f: &mut dyn FnMut(usize)| {
        let per: Vec<f64> = (0..rounds)
            .map(|_| {
                let c0 = tsc::now();
                for b in 0..keys.len() / 32 {
                    f(b * 32);
                }
                (tsc::now() - c0) as f64 / keys.len() as f64
            })
            .collect();
        median(per)
    };
    let mut out = [None; 32];
    let mut hits = 0usize;
    let batch = measure(&mut |at| {
        t.lookup_batch(&keys[at..at + 32], 1, &mut out);
        hits += out.iter().flatten().count();
    });
    let hot = measure(&mut |at| {
        let at = at % 512;
        t.lookup_batch(&keys[at..at + 32], 1, &mut out);
        hits += out.iter().flatten().count();
    });
    let single = measure(&mut |at| {
        for k in &keys[at..at + 32] {
            hits += usize::from(t.lookup(k, 1).is_some());
        }
    });
    assert_eq!(hits, 3 * rounds * keys.len(), "every key is found");
    println!(
        "lookups at {sessions} sessions ({} MiB): batch of 32 {batch:.0} cycles, single {single:.0}, all cached {hot:.0}",
        t.bytes() >> 20
    );
    println!("lookup_cycles={batch:.1}");
}
