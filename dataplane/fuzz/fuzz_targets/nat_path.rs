//! Fuzz the NAT path: arbitrary frames through the whole pipeline with NAT
//! on (masquerade, a port forward, endpoint-independent mapping off or
//! on), arriving on the inside or the outside port, at moving times, so
//! sessions are created, hit, expired and swept. Nothing may panic, every
//! packet gets a verdict, and a packet NAT rewrote still parses.
//!
//! Input: a sequence of records `[ctl, len, bytes...]`. `ctl` bit 0: port
//! (inside/outside); bit 1: send `bytes` as a raw frame, or wrapped in an
//! Ethernet header and an IPv4 header made valid (version, length,
//! checksum) so most inputs reach the NAT stages; bits 2-4: seconds to
//! advance the clock (by powers of ten).

#![no_main]

use dataplane::l3::{Adj, L3Config, L3Control, Target, VrfId};
use dataplane::nat::control::{NatControl, NatPort};
use dataplane::nat::{DnatRule, Mapping, NatConfig, SnatRule, SnatTo};
use dataplane::rcu::Rcu;
use dataplane::stage::{Ctx, Pipeline};
use dataplane::wire::{checksum, parse_frame};
use dataplane::*;
use libfuzzer_sys::fuzz_target;
use ports::*;
use std::net::IpAddr;
use std::sync::OnceLock;

const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];

struct World {
    tables: [Tables; 2],
    pool: PagePool,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let a = |s: &str| -> IpAddr { s.parse().expect("addr") };
        let ports = vec![
            PortEntry { id: PortId(0), name: "p0".into(), mac: MacAddr(P0_MAC), mtu: 1500, addrs: vec![a("10.0.0.254")] },
            PortEntry { id: PortId(1), name: "p1".into(), mac: MacAddr(P1_MAC), mtu: 1500, addrs: vec![a("203.0.113.1")] },
        ];
        let h = TableHandle::new(Tables { ports: ports.clone(), ..Default::default() });
        let cfg = L3Config {
            fib4: dataplane::fib::v4::Fib4Config { tbl8_groups: 16, hugepages: HugepagePolicy::Never },
            ..Default::default()
        };
        let mut l3 = L3Control::new(cfg, 2, Rcu::new()).expect("l3");
        l3.attach(h.clone());
        let host = l3.adjacency(Adj::Fixed { port: PortId(0), mac: MacAddr([2, 0, 0, 0, 2, 2]) }).expect("adj");
        let gw = l3.adjacency(Adj::Fixed { port: PortId(1), mac: MacAddr([2, 0, 0, 0, 3, 3]) }).expect("adj");
        l3.add_route(VrfId(0), a("10.0.0.0"), 8, Target::Adj(host)).expect("route");
        l3.add_route(VrfId(0), a("0.0.0.0"), 0, Target::Adj(gw)).expect("route");
        let nports: Vec<NatPort> = ports.iter().map(|p| NatPort { name: p.name.clone(), addrs: p.addrs.clone() }).collect();
        let mk = |mapping| {
            let mut c = NatConfig {
                inside: vec!["p0".into()],
                outside: vec!["p1".into()],
                snat: vec![SnatRule { src: "10.0.0.0/8".parse().expect("net"), out_port: None, to: SnatTo::Interface }],
                dnat: vec![
                    DnatRule {
                        external: "203.0.113.10".parse().expect("addr"),
                        proto: Some(6),
                        port: Some(80),
                        backends: vec![("10.0.0.6".parse().expect("addr"), Some(8080))],
                    },
                    DnatRule {
                        external: "203.0.113.20".parse().expect("addr"),
                        proto: None,
                        port: None,
                        backends: vec![("10.0.0.8".parse().expect("addr"), None)],
                    },
                ],
                mapping,
                max_sessions_per_host: 64,
                ..NatConfig::default()
            };
            c.table.capacity = 256;
            c.udp_ports = dataplane::nat::PortRange { lo: 1024, hi: 1100 };
            let nat = NatControl::new(&nports, 1, &c).expect("nat");
            let mut t = (*h.current()).clone();
            t.nat = nat.view();
            t
        };
        World {
            tables: [mk(Mapping::EndpointDependent), mk(Mapping::EndpointIndependent)],
            pool: PagePool::new(&PoolConfig { buffers: 512, hugepages: HugepagePolicy::Never, ..Default::default() })
                .expect("pool"),
        }
    })
}

fn wrap(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut f = if port == 0 { P0_MAC.to_vec() } else { P1_MAC.to_vec() };
    f.extend_from_slice(&[2, 9, 9, 9, 9, 9, 0x08, 0x00]);
    let mut ip = bytes.to_vec();
    if ip.len() < 20 {
        ip.resize(20, 0);
    }
    ip[0] = 0x40 | (ip[0] & 0x0f).clamp(5, 15);
    let ihl = ((ip[0] & 15) as usize * 4).min(ip.len());
    let tl = ip.len().min(1500) as u16;
    ip.truncate(tl as usize);
    ip[2..4].copy_from_slice(&tl.to_be_bytes());
    ip[10] = 0;
    ip[11] = 0;
    let c = checksum::checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let t = &w.tables[data.first().map_or(0, |b| (b >> 7) as usize)];
    let stats = WorkerStats::default();
    let mut pipe = Pipeline::default();
    let mut now = 0u64;
    let mut rest = data.get(1..).unwrap_or(&[]);
    let mut b = Batch::boxed();
    while rest.len() >= 2 {
        let (ctl, len) = (rest[0], rest[1] as usize);
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        let port = (ctl & 1) as u16;
        let f = if ctl & 2 != 0 { wrap(port, body) } else { body.to_vec() };
        now += [0, 1, 10, 100, 1000, 10000, 0, 0][((ctl >> 2) & 7) as usize];
        let Some(mut p) = w.pool.alloc() else { return };
        if !p.copy_from(&f) {
            continue;
        }
        p.set_port(port);
        if b.pkts.push(p).is_err() {
            return;
        }
        if b.len() == 8 || rest.len() < 2 {
            let cx = Ctx { tables: t, stats: &stats, neigh: None, worker: 0, now_secs: now };
            pipe.run(&mut b, &cx);
            for i in 0..b.len() {
                assert_ne!(b.verdict[i], Verdict::Pending);
                if let Verdict::Tx(_) = b.verdict[i] {
                    // What the pipeline transmits still parses.
                    assert!(parse_frame(b.pkts.as_slice()[i].data(), true).is_ok());
                }
            }
            b.pkts.clear();
        }
    }
    b.pkts.clear();
});
