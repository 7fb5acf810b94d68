//! NAT44 through the whole pipeline on crafted frames: SNAT (masquerade,
//! pools, 1:1), DNAT (port forwarding, several backends), hairpinning,
//! ICMP echo and ICMP errors, fragments, TCP state and expiry, port
//! exhaustion, exemptions, endpoint-independent mapping, limits, two
//! workers sharing the sessions, and a property test: a flow's translation
//! and the reverse translation of its reply give back the original.
//!
//! Layout: p0 (inside, 10.0.0.254) has hosts 10.0.0.0/16 behind a fixed
//! MAC; p1 (outside, 203.0.113.1) has the default route to a gateway.
//! 203.0.113.0/24 is the router's own (local): a packet NAT does not
//! translate that is addressed there is punted.

use dataplane::l3::{Adj, L3Config, L3Control, Target, VrfId};
use dataplane::nat::control::{NatControl, NatPort};
use dataplane::nat::table::{NatTableConfig, State, Timeouts};
use dataplane::nat::{DnatRule, Mapping, NatConfig, PortRange, SnatRule, SnatTo};
use dataplane::rcu::Rcu;
use dataplane::stage::{Ctx, Pipeline};
use dataplane::wire::checksum;
use dataplane::*;
use ports::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 3, 3];
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const GRE: u8 = 47;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

const INSIDE: PortId = PortId(0);
const OUTSIDE: PortId = PortId(1);
const MASQ: [u8; 4] = [203, 0, 113, 1];
const EXT: [u8; 4] = [203, 0, 113, 10];
const REMOTE: [u8; 4] = [198, 51, 100, 7];

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn net(s: &str) -> ipnet::Ipv4Net {
    s.parse().expect("prefix literal")
}

/// Masquerade of 10.0.0.0/16 out of p1, a port forward 203.0.113.10:80 →
/// 10.0.0.6:8080, UDP/TCP ports 1024-65535.
fn base_config() -> NatConfig {
    NatConfig {
        inside: vec!["p0".into()],
        outside: vec!["p1".into()],
        snat: vec![SnatRule { src: net("10.0.0.0/16"), out_port: None, to: SnatTo::Interface }],
        dnat: vec![DnatRule {
            external: ip(EXT),
            proto: Some(TCP),
            port: Some(80),
            backends: vec![(ip([10, 0, 0, 6]), Some(8080))],
        }],
        table: NatTableConfig { capacity: 4096, workers: 1, timeouts: Timeouts::default() },
        ..NatConfig::default()
    }
}

struct Router {
    tables: Tables,
    nat: NatControl,
    pool: PagePool,
    pipes: Vec<Pipeline>,
    stats: Vec<WorkerStats>,
}

impl Router {
    fn new(cfg: NatConfig) -> Router {
        Router::with_workers(cfg, 1)
    }

    fn with_workers(cfg: NatConfig, workers: usize) -> Router {
        let (ports, base) = base_tables();
        let nports: Vec<NatPort> =
            ports.iter().map(|p| NatPort { name: p.name.clone(), addrs: p.addrs.clone() }).collect();
        let nat = NatControl::new(&nports, workers, &cfg).expect("nat config");
        let mut tables = base.clone();
        tables.nat = nat.view();
        assert!(tables.nat.is_some(), "NAT is on");
        let pool = PagePool::new(&PoolConfig { buffers: 1024, hugepages: HugepagePolicy::Never, ..Default::default() })
            .expect("pool");
        Router {
            tables,
            nat,
            pool,
            pipes: (0..workers).map(|_| Pipeline::default()).collect(),
            stats: (0..workers).map(|_| WorkerStats::default()).collect(),
        }
    }
    /// Runs one burst on `worker` at time `now` (seconds).
    fn burst_on(&mut self, worker: usize, now: u64, frames: &[(PortId, Vec<u8>)]) -> Vec<(Verdict, Vec<u8>)> {
        let mut b = Batch::boxed();
        for (port, f) in frames {
            let mut p = self.pool.alloc().expect("buf");
            assert!(p.copy_from(f));
            p.set_port(port.0);
            b.pkts.push(p).expect("room");
        }
        let cx = Ctx { tables: &self.tables, stats: &self.stats[worker], neigh: None, worker, now_secs: now };
        self.pipes[worker].run(&mut b, &cx);
        (0..frames.len()).map(|i| (b.verdict[i], b.pkts.as_slice()[i].data().to_vec())).collect()
    }

    fn burst(&mut self, now: u64, frames: &[(PortId, Vec<u8>)]) -> Vec<(Verdict, Vec<u8>)> {
        self.burst_on(0, now, frames)
    }

    /// One frame; its verdict and bytes.
    fn one(&mut self, now: u64, port: PortId, f: Vec<u8>) -> (Verdict, Vec<u8>) {
        self.burst(now, &[(port, f)]).remove(0)
    }

    fn sessions(&self, now: u32) -> usize {
        self.nat.table().expect("table").len(now)
    }

    fn counter(&self, name: &str) -> u64 {
        self.nat.counters().into_iter().find(|c| c.0 == name).map(|c| c.1).expect("counter name")
    }
}

/// The ports and routes every test shares (built once: the FIB is large).
fn base_tables() -> &'static (Vec<PortEntry>, Tables) {
    static BASE: std::sync::OnceLock<(Vec<PortEntry>, Tables)> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let a = |s: &str| -> IpAddr { s.parse().expect("addr") };
        let ports = vec![
            PortEntry { id: INSIDE, name: "p0".into(), mac: MacAddr(P0_MAC), mtu: 1500, addrs: vec![a("10.0.0.254")] },
            PortEntry {
                id: OUTSIDE,
                name: "p1".into(),
                mac: MacAddr(P1_MAC),
                mtu: 1500,
                addrs: vec![a("203.0.113.1")],
            },
        ];
        let h = TableHandle::new(Tables { ports: ports.clone(), ..Default::default() });
        let l3cfg = L3Config {
            fib4: dataplane::fib::v4::Fib4Config { tbl8_groups: 16, hugepages: HugepagePolicy::Never },
            ..Default::default()
        };
        let mut l3 = L3Control::new(l3cfg, 2, Rcu::new()).expect("l3");
        l3.attach(h.clone());
        let host = l3.adjacency(Adj::Fixed { port: INSIDE, mac: MacAddr(HOST_MAC) }).expect("adj");
        let gw = l3.adjacency(Adj::Fixed { port: OUTSIDE, mac: MacAddr(GW_MAC) }).expect("adj");
        let local = l3.adjacency(Adj::Local).expect("adj");
        l3.add_route(VrfId(0), a("10.0.0.0"), 16, Target::Adj(host)).expect("route");
        l3.add_route(VrfId(0), a("0.0.0.0"), 0, Target::Adj(gw)).expect("route");
        l3.add_route(VrfId(0), a("203.0.113.0"), 24, Target::Adj(local)).expect("route");
        (ports, (*h.current()).clone())
    })
}

// ---------------------------------------------------------------- frames

fn to_mac(port: PortId) -> [u8; 6] {
    if port == INSIDE {
        P0_MAC
    } else {
        P1_MAC
    }
}

/// An IPv4 packet (header + `l4`), checksums right; `frag` is the flags
/// and offset word, `id` the identification.
fn ipv4_pkt(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8], id: u16, frag: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

fn frame(in_port: PortId, pkt: &[u8]) -> Vec<u8> {
    let mut f = to_mac(in_port).to_vec();
    f.extend_from_slice(&[2, 9, 9, 9, 9, 9]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(pkt);
    f
}

/// A UDP or TCP segment with a correct checksum.
fn l4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = if proto == TCP { vec![0u8; 20] } else { vec![0u8; 8] };
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        h[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        h[12] = 5 << 4;
        h[13] = flags;
        h[14..16].copy_from_slice(&4096u16.to_be_bytes());
    } else {
        h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    }
    h.extend_from_slice(payload);
    let c = checksum::l4_checksum_v4(src, dst, proto, &h);
    let at = if proto == TCP { 16 } else { 6 };
    h[at..at + 2].copy_from_slice(&c.to_be_bytes());
    h
}

fn pkt(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    ipv4_pkt(src, dst, proto, &l4(src, dst, proto, sport, dport, flags, b"payload!"), 0x1234, 0)
}

/// A frame arriving on `port`.
fn at(port: PortId, src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16, flags: u8) -> (PortId, Vec<u8>) {
    (port, frame(port, &pkt(src, dst, proto, sport, dport, flags)))
}

fn icmp_echo(ty: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"ping-data");
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ICMP error of `ty`/`code` quoting `quoted` (an IPv4 packet).
fn icmp_error(ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quoted);
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The IPv4 packet of a frame.
fn ip_of(f: &[u8]) -> &[u8] {
    &f[14..]
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct T {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
}

/// Addresses and ports of an IPv4 packet (ICMP: the identifier as both
/// ports for echo, 0 otherwise), after checking every checksum in it.
fn tuple(p: &[u8]) -> T {
    let a = |o: usize| [p[o], p[o + 1], p[o + 2], p[o + 3]];
    let ihl = (p[0] & 15) as usize * 4;
    assert!(checksum::verify(&p[..ihl]), "IPv4 header checksum");
    let tl = u16::from_be_bytes([p[2], p[3]]) as usize;
    let (src, dst) = (a(12), a(16));
    let frag = u16::from_be_bytes([p[6], p[7]]);
    let seg = &p[ihl..tl];
    if frag & 0x3fff != 0 {
        // A fragment: no L4 checksum to verify on its own.
        let (sport, dport) = if frag & 0x1fff == 0 {
            (u16::from_be_bytes([seg[0], seg[1]]), u16::from_be_bytes([seg[2], seg[3]]))
        } else {
            (0, 0)
        };
        return T { src, dst, sport, dport };
    }
    match p[9] {
        TCP | UDP => {
            let zero_udp = p[9] == UDP && seg[6..8] == [0, 0];
            assert!(zero_udp || checksum::verify_l4_v4(src, dst, p[9], seg), "L4 checksum of {p:02x?}");
            T { src, dst, sport: u16::from_be_bytes([seg[0], seg[1]]), dport: u16::from_be_bytes([seg[2], seg[3]]) }
        }
        ICMP => {
            assert!(checksum::verify(seg), "ICMP checksum");
            let id = if matches!(seg[0], 0 | 8) { u16::from_be_bytes([seg[4], seg[5]]) } else { 0 };
            T { src, dst, sport: id, dport: id }
        }
        _ => T { src, dst, sport: 0, dport: 0 },
    }
}

fn tx(v: &Verdict) -> PortId {
    let Verdict::Tx(p) = v else { unreachable!("expected a transmit verdict, got {v:?}") };
    *p
}

// ---------------------------------------------------------------- tests

#[test]
fn masquerade_udp_out_and_back() {
    let mut r = Router::new(base_config());
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0)).clone());
    assert_eq!(tx(&v), OUTSIDE);
    assert_eq!(&out[0..6], &GW_MAC);
    let t = tuple(ip_of(&out));
    assert_eq!((t.src, t.dst, t.dport), (MASQ, REMOTE, 53));
    assert!(t.sport >= 1024, "port from the range: {}", t.sport);
    assert_eq!(r.sessions(0), 1);

    // The reply comes back to the inside host, exactly the reverse.
    let (v, back) = r.one(1, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, UDP, 53, t.sport, 0)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(&back[0..6], &HOST_MAC);
    let b = tuple(ip_of(&back));
    assert_eq!(b, T { src: REMOTE, dst: [10, 0, 0, 5], sport: 53, dport: 1000 });
    // More packets of the flow use the same session and port.
    let (_, again) = r.one(2, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0)));
    assert_eq!(tuple(ip_of(&again)).sport, t.sport);
    assert_eq!(r.sessions(2), 1);
    assert_eq!(r.counter("sessions_created"), 1);
    assert_eq!(r.counter("translated"), 2);
    // A reply to a port nobody holds is not translated: it is for the
    // router itself.
    let (v, _) = r.one(2, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, UDP, 53, t.sport.wrapping_add(1), 0)));
    assert_eq!(v, Verdict::Punt(PuntReason::Local));
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let mut r = Router::new(base_config());
    let mut seg = l4([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0, b"abc");
    seg[6] = 0;
    seg[7] = 0;
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &ipv4_pkt([10, 0, 0, 5], REMOTE, UDP, &seg, 1, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    let p = ip_of(&out);
    assert_eq!(&p[26..28], &[0, 0], "no checksum stays no checksum");
    assert_eq!(tuple(p).src, MASQ);
}

#[test]
fn snat_pool_keeps_a_host_on_one_address() {
    let mut cfg = base_config();
    let pool: Vec<Ipv4Addr> = (20..24).map(|i| ip([203, 0, 113, i])).collect();
    cfg.snat = vec![SnatRule { src: net("10.0.0.0/16"), out_port: Some("p1".into()), to: SnatTo::Pool(pool.clone()) }];
    let mut r = Router::new(cfg);
    let mut used = std::collections::HashSet::new();
    for h in 1..=40u8 {
        let mut addr = None;
        for port in [1000u16, 2000, 3000] {
            let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 1, h], REMOTE, TCP, port, 443, SYN)));
            assert_eq!(tx(&v), OUTSIDE);
            let s = ip(tuple(ip_of(&out)).src);
            assert!(pool.contains(&s), "{s} from the pool");
            assert!(addr.is_none_or(|a| a == s), "host {h} moved from {addr:?} to {s}");
            addr = Some(s);
        }
        used.insert(addr);
    }
    assert!(used.len() >= 3, "40 hosts spread over the pool: {used:?}");
}

#[test]
fn tcp_states_follow_the_handshake_and_close() {
    let mut r = Router::new(base_config());
    let h = [10, 0, 0, 5];
    let (_, out) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, TCP, 40000, 443, SYN)));
    let p = tuple(ip_of(&out)).sport;
    let state = |r: &Router| {
        let mut s = Vec::new();
        r.nat.table().expect("table").for_each(10, |i| s.push(i.state));
        s
    };
    assert_eq!(state(&r), vec![State::TcpTransitory]);
    let (v, _) = r.one(0, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, TCP, 443, p, SYN | ACK)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(state(&r), vec![State::TcpTransitory], "not established before the third packet");
    r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, TCP, 40000, 443, ACK)));
    assert_eq!(state(&r), vec![State::TcpEstablished]);
    // Established sessions live 7440 s.
    assert_eq!(r.sessions(7000), 1);
    r.one(7000, INSIDE, frame(INSIDE, &pkt(h, REMOTE, TCP, 40000, 443, ACK)));
    assert_eq!(r.sessions(7000 + 7440), 1);
    assert_eq!(r.sessions(7000 + 7441), 0);
    // FIN: transitory timeout (240 s) from then on.
    r.one(7100, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, TCP, 443, p, FIN | ACK)));
    assert_eq!(state(&r), vec![State::TcpClosing]);
    assert_eq!(r.sessions(7100 + 240), 1);
    assert_eq!(r.sessions(7100 + 241), 0);
    let (v, _) = r.one(7100 + 241, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, TCP, 443, p, ACK)));
    assert_eq!(v, Verdict::Punt(PuntReason::Local), "an expired session translates nothing");
}

#[test]
fn tcp_rst_closes_and_a_new_syn_reopens() {
    let mut r = Router::new(base_config());
    let h = [10, 0, 0, 5];
    let (_, out) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, TCP, 40001, 443, SYN)));
    let p = tuple(ip_of(&out)).sport;
    r.one(0, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, TCP, 443, p, SYN | ACK)));
    r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, TCP, 40001, 443, ACK)));
    r.one(10, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, MASQ, TCP, 443, p, RST)));
    let states = |r: &Router, now| {
        let mut s = Vec::new();
        r.nat.table().expect("table").for_each(now, |i| s.push(i.state));
        s
    };
    assert_eq!(states(&r, 10), vec![State::TcpClosing]);
    assert_eq!(r.sessions(10 + 241), 0, "closed by RST: gone after the transitory timeout");
    // Port reuse: a SYN on the closed session starts it over.
    r.one(20, INSIDE, frame(INSIDE, &pkt(h, REMOTE, TCP, 40001, 443, SYN)));
    assert_eq!(states(&r, 20), vec![State::TcpTransitory]);
}

#[test]
fn udp_and_icmp_timeouts() {
    let mut r = Router::new(base_config());
    r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0)));
    r.one(0, INSIDE, frame(INSIDE, &ipv4_pkt([10, 0, 0, 5], REMOTE, ICMP, &icmp_echo(8, 7, 1), 1, 0)));
    assert_eq!(r.sessions(60), 2);
    assert_eq!(r.sessions(61), 1, "ICMP: 60 s");
    assert_eq!(r.sessions(300), 1);
    assert_eq!(r.sessions(301), 0, "UDP: 300 s");
    // Sweeps free them: the table is empty for any later time too, and
    // the worker counted what it freed.
    // Enough bursts for the sweep (4 records a burst) to go round.
    for _ in 0..1100 {
        r.burst(1000, &[]);
    }
    r.one(1000, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, [10, 0, 0, 5], UDP, 53, 1000, 0)));
    assert!(r.counter("expired") >= 2, "swept: {:?}", r.nat.counters());
}

#[test]
fn icmp_echo_identifier_is_translated_both_ways() {
    let mut r = Router::new(base_config());
    let h = [10, 0, 0, 5];
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &ipv4_pkt(h, REMOTE, ICMP, &icmp_echo(8, 77, 1), 1, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    let t = tuple(ip_of(&out));
    assert_eq!((t.src, t.dst), (MASQ, REMOTE));
    let id = t.sport;
    let (v, back) = r.one(0, OUTSIDE, frame(OUTSIDE, &ipv4_pkt(REMOTE, MASQ, ICMP, &icmp_echo(0, id, 1), 2, 0)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&back)), T { src: REMOTE, dst: h, sport: 77, dport: 77 });
    // Two hosts pinging the same remote with the same identifier get
    // different external identifiers.
    let (_, out2) = r.one(0, INSIDE, frame(INSIDE, &ipv4_pkt([10, 0, 0, 9], REMOTE, ICMP, &icmp_echo(8, 77, 1), 1, 0)));
    assert_ne!(tuple(ip_of(&out2)).sport, id);
}

#[test]
fn icmp_errors_about_a_translated_flow_are_translated_back() {
    let mut r = Router::new(base_config());
    let h = [10, 0, 0, 5];
    for proto in [UDP, TCP] {
        let (_, out) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, proto, 1000, 53, SYN)));
        let sent = ip_of(&out).to_vec();
        let p = tuple(&sent).sport;
        // Time exceeded from a router on the way, quoting the whole packet
        // (then only its first 28 bytes).
        for quoted in [&sent[..], &sent[..28]] {
            let router = [192, 0, 2, 1];
            let err = ipv4_pkt(router, MASQ, ICMP, &icmp_error(11, 0, quoted), 9, 0);
            let (v, back) = r.one(0, OUTSIDE, frame(OUTSIDE, &err));
            assert_eq!(tx(&v), INSIDE, "proto {proto}");
            let b = ip_of(&back);
            let o = tuple(b);
            assert_eq!((o.src, o.dst), (router, h));
            let inner = &b[28..];
            assert!(checksum::verify(&inner[..20]), "inner header checksum");
            let a = |o: usize| [inner[o], inner[o + 1], inner[o + 2], inner[o + 3]];
            assert_eq!((a(12), a(16)), (h, REMOTE), "the inner packet as the host sent it");
            assert_eq!(u16::from_be_bytes([inner[20], inner[21]]), 1000);
            assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), 53);
            if quoted.len() == sent.len() {
                // The whole packet is quoted: its L4 checksum is right again.
                assert!(checksum::verify_l4_v4(h, REMOTE, proto, &inner[20..]), "inner L4 checksum");
            }
        }
        // Port unreachable from the remote itself.
        let err = ipv4_pkt(REMOTE, MASQ, ICMP, &icmp_error(3, 3, &sent), 9, 0);
        let (v, back) = r.one(0, OUTSIDE, frame(OUTSIDE, &err));
        assert_eq!(tx(&v), INSIDE);
        let o = tuple(ip_of(&back));
        assert_eq!((o.src, o.dst), (REMOTE, h));
        let _ = p;
    }
    // Frag needed about an echo request.
    let (_, out) = r.one(0, INSIDE, frame(INSIDE, &ipv4_pkt(h, REMOTE, ICMP, &icmp_echo(8, 5, 1), 3, 0)));
    let sent = ip_of(&out).to_vec();
    let err = ipv4_pkt([192, 0, 2, 1], MASQ, ICMP, &icmp_error(3, 4, &sent), 9, 0);
    let (v, back) = r.one(0, OUTSIDE, frame(OUTSIDE, &err));
    assert_eq!(tx(&v), INSIDE);
    let inner = &ip_of(&back)[28..];
    assert_eq!(&inner[12..16], &h);
    assert_eq!(u16::from_be_bytes([inner[24], inner[25]]), 5, "echo identifier");
    // 2 protocols × (2 time exceeded + 1 port unreachable) + 1.
    assert_eq!(r.counter("icmp_errors"), 7);
    // An error about a flow NAT does not know is left alone (for the
    // router itself).
    let stray = pkt(MASQ, REMOTE, UDP, 999, 53, 0);
    let (v, _) = r.one(0, OUTSIDE, frame(OUTSIDE, &ipv4_pkt(REMOTE, MASQ, ICMP, &icmp_error(3, 3, &stray), 9, 0)));
    assert_eq!(v, Verdict::Punt(PuntReason::Local));
}

#[test]
fn port_forwarding_in_and_replies_out() {
    let mut r = Router::new(base_config());
    let (v, inb) = r.one(0, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, EXT, TCP, 4000, 80, SYN)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&inb)), T { src: REMOTE, dst: [10, 0, 0, 6], sport: 4000, dport: 8080 });
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 6], REMOTE, TCP, 8080, 4000, SYN | ACK)));
    assert_eq!(tx(&v), OUTSIDE);
    assert_eq!(tuple(ip_of(&out)), T { src: EXT, dst: REMOTE, sport: 80, dport: 4000 }, "not masqueraded");
    assert_eq!(r.sessions(0), 1);
    // Other ports of the external address are not forwarded.
    let (v, _) = r.one(0, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, EXT, TCP, 4000, 81, SYN)));
    assert_eq!(v, Verdict::Punt(PuntReason::Local));
}

#[test]
fn dnat_spreads_flows_over_backends_and_keeps_each_flow() {
    let mut cfg = base_config();
    cfg.dnat[0].backends = vec![(ip([10, 0, 0, 6]), Some(8080)), (ip([10, 0, 0, 7]), Some(8081))];
    let mut r = Router::new(cfg);
    let mut per = std::collections::HashMap::new();
    for sport in 0..200u16 {
        let f = frame(OUTSIDE, &pkt(REMOTE, EXT, TCP, 20000 + sport, 80, SYN));
        let (_, a) = r.one(0, OUTSIDE, f.clone());
        let (_, b) = r.one(1, OUTSIDE, f);
        let (ta, tb) = (tuple(ip_of(&a)), tuple(ip_of(&b)));
        assert_eq!(ta, tb, "a flow stays on its backend");
        assert!(matches!((ta.dst, ta.dport), ([10, 0, 0, 6], 8080) | ([10, 0, 0, 7], 8081)), "{ta:?}");
        *per.entry(ta.dst).or_insert(0) += 1;
    }
    assert_eq!(per.len(), 2);
    assert!(per.values().all(|n| *n > 50), "{per:?}");
}

#[test]
fn static_one_to_one_mapping_both_ways() {
    let mut cfg = base_config();
    let one = [203, 0, 113, 20];
    cfg.dnat.push(DnatRule { external: ip(one), proto: None, port: None, backends: vec![(ip([10, 0, 0, 8]), None)] });
    let mut r = Router::new(cfg);
    // Outbound from the mapped host: its address, its port.
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 8], REMOTE, UDP, 5353, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    assert_eq!(tuple(ip_of(&out)), T { src: one, dst: REMOTE, sport: 5353, dport: 53 });
    // Inbound to any port of the external address.
    let (v, inb) = r.one(0, OUTSIDE, frame(OUTSIDE, &pkt(REMOTE, one, TCP, 999, 22, SYN)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&inb)), T { src: REMOTE, dst: [10, 0, 0, 8], sport: 999, dport: 22 });
    // Ping to it too.
    let (v, inb) = r.one(0, OUTSIDE, frame(OUTSIDE, &ipv4_pkt(REMOTE, one, ICMP, &icmp_echo(8, 3, 1), 1, 0)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&inb)).dst, [10, 0, 0, 8]);
}

#[test]
fn hairpinning_reaches_an_inside_server_through_its_outside_address() {
    let mut r = Router::new(base_config());
    let client = [10, 0, 0, 5];
    let (v, to_server) = r.one(0, INSIDE, frame(INSIDE, &pkt(client, EXT, TCP, 5555, 80, SYN)));
    assert_eq!(tx(&v), INSIDE, "back out of the inside port");
    let t = tuple(ip_of(&to_server));
    assert_eq!((t.src, t.dst, t.dport), (EXT, [10, 0, 0, 6], 8080), "source translated so the reply returns");
    let (v, to_client) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 6], EXT, TCP, 8080, t.sport, SYN | ACK)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&to_client)), T { src: EXT, dst: client, sport: 80, dport: 5555 });
    assert_eq!(r.counter("hairpin"), 1);
}

#[test]
fn port_exhaustion_is_counted_and_ports_are_never_shared() {
    let mut cfg = base_config();
    cfg.udp_ports = PortRange { lo: 2000, hi: 2009 };
    let mut r = Router::new(cfg);
    let mut ports = std::collections::HashSet::new();
    for h in 1..=10u8 {
        let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 2, h], REMOTE, UDP, 1000, 53, 0)));
        assert_eq!(tx(&v), OUTSIDE);
        let p = tuple(ip_of(&out)).sport;
        assert!((2000..=2009).contains(&p));
        assert!(ports.insert(p), "port {p} handed out twice");
    }
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 2, 11], REMOTE, UDP, 1000, 53, 0)));
    assert_eq!(v, Verdict::Drop(DropReason::NatPortExhausted));
    // Endpoint-dependent: the same ports serve another remote.
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 2, 11], [198, 51, 100, 8], UDP, 1000, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    // Ports come back when their sessions expire.
    let (v, _) = r.one(400, INSIDE, frame(INSIDE, &pkt([10, 0, 2, 11], REMOTE, UDP, 1000, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
}

#[test]
fn thousands_of_flows_to_one_remote_get_distinct_ports() {
    let mut cfg = base_config();
    cfg.tcp_ports = PortRange { lo: 10000, hi: 14999 };
    let mut r = Router::new(cfg);
    let mut seen = std::collections::HashSet::new();
    let frames: Vec<(PortId, Vec<u8>)> =
        (0..3000u32).map(|i| at(INSIDE, [10, 0, (i >> 8) as u8, i as u8], REMOTE, TCP, 3000, 443, SYN)).collect();
    for chunk in frames.chunks(32) {
        for (v, out) in r.burst(0, chunk) {
            assert_eq!(tx(&v), OUTSIDE);
            assert!(seen.insert(tuple(ip_of(&out)).sport), "a port handed out twice");
        }
    }
    assert_eq!(r.sessions(0), 3000);
}

#[test]
fn exempt_destinations_are_never_translated() {
    let mut r = Router::new(base_config());
    let wire = [168, 63, 129, 16];
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], wire, TCP, 1000, 80, SYN)));
    assert_eq!(tx(&v), OUTSIDE);
    assert_eq!(tuple(ip_of(&out)).src, [10, 0, 0, 5]);
    // And probes from it reach the router untranslated.
    let (v, _) = r.one(0, OUTSIDE, frame(OUTSIDE, &pkt(wire, MASQ, TCP, 1000, 80, SYN)));
    assert_eq!(v, Verdict::Punt(PuntReason::Local));
    assert_eq!(r.sessions(0), 0);
    // Traffic between inside networks is not translated either.
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], [10, 0, 9, 9], UDP, 1, 2, 0)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&out)).src, [10, 0, 0, 5]);
    assert_eq!(r.sessions(0), 0);
}

#[test]
fn later_fragments_follow_their_first_fragment() {
    let mut r = Router::new(base_config());
    let h = [10, 0, 0, 5];
    // A UDP datagram of 8 + 24 bytes in two fragments (16 + 16 bytes).
    let seg = l4(h, REMOTE, UDP, 1000, 53, 0, &[7u8; 24]);
    let first = ipv4_pkt(h, REMOTE, UDP, &seg[..16], 0x4242, 0x2000);
    let later = ipv4_pkt(h, REMOTE, UDP, &seg[16..], 0x4242, 2);
    let (v1, o1) = r.one(0, INSIDE, frame(INSIDE, &first));
    let (v2, o2) = r.one(0, INSIDE, frame(INSIDE, &later));
    assert_eq!((tx(&v1), tx(&v2)), (OUTSIDE, OUTSIDE));
    let (a, b) = (tuple(ip_of(&o1)), tuple(ip_of(&o2)));
    assert_eq!((a.src, b.src), (MASQ, MASQ));
    // Reassembled, the datagram's checksum is right for the new addresses.
    let mut whole = ip_of(&o1)[20..36].to_vec();
    whole.extend_from_slice(&ip_of(&o2)[20..36]);
    assert!(checksum::verify_l4_v4(MASQ, REMOTE, UDP, &whole));
    assert_eq!(r.counter("fragments"), 1);
    // A later fragment of a datagram whose first fragment never came.
    let orphan = ipv4_pkt(h, REMOTE, UDP, &seg[16..], 0x4343, 2);
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &orphan));
    assert_eq!(v, Verdict::Drop(DropReason::NatFragNoSession));
    let (v, _) = r.one(0, OUTSIDE, frame(OUTSIDE, &ipv4_pkt(REMOTE, MASQ, UDP, &seg[16..], 0x4444, 2)));
    assert_eq!(v, Verdict::Drop(DropReason::NatFragNoSession));
}

#[test]
fn protocols_without_ports_are_dropped_only_where_they_would_need_snat() {
    let mut r = Router::new(base_config());
    let gre = ipv4_pkt([10, 0, 0, 5], REMOTE, GRE, &[0u8; 8], 1, 0);
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &gre));
    assert_eq!(v, Verdict::Drop(DropReason::NatUnsupportedProtocol));
    let inside = ipv4_pkt([10, 0, 0, 5], [10, 0, 3, 3], GRE, &[0u8; 8], 1, 0);
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &inside));
    assert_eq!(tx(&v), INSIDE);
}

#[test]
fn endpoint_independent_mapping_and_filtering() {
    let mut cfg = base_config();
    cfg.mapping = Mapping::EndpointIndependent;
    let mut r = Router::new(cfg);
    let h = [10, 0, 0, 5];
    let (_, a) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, UDP, 3478, 3478, 0)));
    let (_, b) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, [198, 51, 100, 99], UDP, 3478, 3478, 0)));
    let (ta, tb) = (tuple(ip_of(&a)), tuple(ip_of(&b)));
    assert_eq!((ta.src, ta.sport), (tb.src, tb.sport), "one mapping for every remote");
    // Any remote may now reach the mapping.
    let (v, inb) = r.one(0, OUTSIDE, frame(OUTSIDE, &pkt([192, 0, 2, 50], MASQ, UDP, 777, ta.sport, 0)));
    assert_eq!(tx(&v), INSIDE);
    assert_eq!(tuple(ip_of(&inb)), T { src: [192, 0, 2, 50], dst: h, sport: 777, dport: 3478 });
    // And the inside host's answer leaves from the mapping.
    let (v, out) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, [192, 0, 2, 50], UDP, 3478, 777, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    assert_eq!(tuple(ip_of(&out)).sport, ta.sport);
    // Another inside host gets another mapping.
    let (_, c) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 6], REMOTE, UDP, 3478, 3478, 0)));
    assert_ne!(tuple(ip_of(&c)).sport, ta.sport);
}

#[test]
fn per_host_session_limit() {
    let mut cfg = base_config();
    cfg.max_sessions_per_host = 3;
    let mut r = Router::new(cfg);
    for p in 0..3u16 {
        let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000 + p, 53, 0)));
        assert_eq!(tx(&v), OUTSIDE);
    }
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1003, 53, 0)));
    assert_eq!(v, Verdict::Drop(DropReason::NatHostLimit));
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 6], REMOTE, UDP, 1003, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE, "other hosts are not limited by it");
    // Existing flows still pass; after expiry the host may open new ones.
    let (v, _) = r.one(1, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    for _ in 0..1100 {
        r.burst(1000, &[]);
    }
    let (v, _) = r.one(1000, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1003, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
}

#[test]
fn a_full_table_drops_new_flows_and_keeps_old_ones() {
    let mut cfg = base_config();
    cfg.table.capacity = 8;
    let mut r = Router::new(cfg);
    for p in 0..8u16 {
        let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000 + p, 53, 0)));
        assert_eq!(tx(&v), OUTSIDE);
    }
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 2000, 53, 0)));
    assert_eq!(v, Verdict::Drop(DropReason::NatSessionFull));
    let (v, _) = r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    let (v, _) = r.one(301, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 2000, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE, "expired sessions make room");
}

#[test]
fn config_errors_are_clear() {
    let ports = vec![
        NatPort { name: "p0".into(), addrs: vec![] },
        NatPort { name: "p1".into(), addrs: vec!["203.0.113.1".parse().expect("addr")] },
    ];
    let bad = |f: &dyn Fn(&mut NatConfig), want: &str| {
        let mut c = base_config();
        f(&mut c);
        let e = NatControl::new(&ports, 1, &c).err().unwrap_or_else(|| unreachable!("accepted, expected {want:?}"));
        assert!(e.to_string().contains(want), "{e} does not say {want:?}");
    };
    bad(&|c| c.inside.push("p9".into()), "no port named \"p9\"");
    bad(&|c| c.inside.push("p1".into()), "both inside and outside");
    bad(&|c| c.dnat[0].backends.clear(), "no backend");
    bad(&|c| c.dnat[0].proto = Some(47), "has no ports");
    bad(&|c| c.dnat.push(c.dnat[0].clone()), "mapped twice");
    bad(&|c| c.snat[0].to = SnatTo::Pool(vec![]), "empty pool");
    bad(&|c| c.udp_ports = PortRange { lo: 9, hi: 8 }, "empty range");
    bad(
        &|c| {
            c.inside = vec!["p1".into()];
            c.outside = vec!["p0".into()];
        },
        "no IPv4 address to masquerade",
    );
    // Changing rules keeps the sessions; the table's size is fixed.
    let mut r = Router::new(base_config());
    r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000, 53, 0)));
    let mut c = base_config();
    c.dnat.clear();
    r.nat.set(c.clone()).expect("new rules");
    assert_eq!(r.sessions(0), 1);
    c.table.capacity = 8192;
    assert!(r.nat.set(c).is_err());
}

#[test]
fn two_workers_share_sessions_without_loss_or_duplicates() {
    // Flows whose first packets arrive on worker 0 and replies on worker 1
    // and the other way round, with both workers running at once.
    let mut cfg = base_config();
    cfg.table.capacity = 1 << 14;
    let r = Router::with_workers(cfg, 2);
    let flows = 2000u32;
    let r = std::sync::Mutex::new(r);
    // Each worker's Pipeline and stats are its own; the tables and the
    // session table are shared. Run the two workers on two threads.
    let (tables, pool) = {
        let g = r.lock().expect("lock");
        (g.tables.clone(), g.pool.clone())
    };
    let out: Vec<Vec<(u32, T)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2usize)
            .map(|w| {
                let tables = &tables;
                let pool = pool.clone();
                s.spawn(move || {
                    let mut pipe = Pipeline::default();
                    let stats = WorkerStats::default();
                    let mut got = Vec::new();
                    for c in (0..flows).filter(|i| (*i as usize) % 2 == w).collect::<Vec<_>>().chunks(16) {
                        let mut b = Batch::boxed();
                        for &i in c {
                            let src = [10, 0, 100 + (i >> 8) as u8, i as u8];
                            let mut p = pool.alloc().expect("buf");
                            assert!(p.copy_from(&frame(INSIDE, &pkt(src, REMOTE, UDP, 4000, 53, 0))));
                            p.set_port(INSIDE.0);
                            b.pkts.push(p).expect("room");
                        }
                        let cx = Ctx { tables, stats: &stats, neigh: None, worker: w, now_secs: 5 };
                        pipe.run(&mut b, &cx);
                        for (k, &i) in c.iter().enumerate() {
                            assert_eq!(b.verdict[k], Verdict::Tx(OUTSIDE));
                            got.push((i, tuple(ip_of(b.pkts.as_slice()[k].data()))));
                        }
                    }
                    got
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let sent: Vec<(u32, T)> = out.into_iter().flatten().collect();
    assert_eq!(sent.len(), flows as usize);
    let ports: std::collections::HashSet<u16> = sent.iter().map(|(_, t)| t.sport).collect();
    assert_eq!(ports.len(), flows as usize, "every flow its own port");
    // Replies, each on the worker that did NOT create the flow, again
    // concurrently.
    std::thread::scope(|s| {
        for w in 0..2usize {
            let tables = &tables;
            let pool = pool.clone();
            let sent = &sent;
            s.spawn(move || {
                let mut pipe = Pipeline::default();
                let stats = WorkerStats::default();
                let mine: Vec<&(u32, T)> = sent.iter().filter(|(i, _)| (*i as usize) % 2 != w).collect();
                for c in mine.chunks(16) {
                    let mut b = Batch::boxed();
                    for (_, t) in c {
                        let mut p = pool.alloc().expect("buf");
                        assert!(p.copy_from(&frame(OUTSIDE, &pkt(REMOTE, MASQ, UDP, 53, t.sport, 0))));
                        p.set_port(OUTSIDE.0);
                        b.pkts.push(p).expect("room");
                    }
                    let cx = Ctx { tables, stats: &stats, neigh: None, worker: w, now_secs: 6 };
                    pipe.run(&mut b, &cx);
                    for (k, (i, _)) in c.iter().enumerate() {
                        assert_eq!(b.verdict[k], Verdict::Tx(INSIDE), "reply of flow {i} lost");
                        let back = tuple(ip_of(b.pkts.as_slice()[k].data()));
                        assert_eq!(back.dst, [10, 0, 100 + (i >> 8) as u8, *i as u8]);
                        assert_eq!(back.dport, 4000);
                    }
                }
            });
        }
    });
    let g = r.lock().expect("lock");
    assert_eq!(g.sessions(6), flows as usize, "no session lost or duplicated");
    let mut origs = std::collections::HashSet::new();
    g.nat.table().expect("table").for_each(6, |s| assert!(origs.insert(s.orig), "duplicate session {:?}", s.orig));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A packet out and its reply back: the reply that reaches the inside
    /// host is exactly the original packet reversed (addresses, ports,
    /// identifiers, and valid checksums), for every protocol and path.
    #[test]
    fn reply_translation_inverts_the_forward_translation(
        host in 1u8..250,
        remote in any::<[u8; 4]>(),
        sport in 1u16..,
        dport in 1u16..,
        proto in prop::sample::select(vec![TCP, UDP, ICMP]),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        dnat in any::<bool>(),
    ) {
        prop_assume!(remote[0] != 10 && remote[0] != 203 && remote[0] != 168 && remote[0] != 169);
        prop_assume!(remote[0] != 0 && remote[0] < 224);
        let mut r = Router::new(base_config());
        let h = [10, 0, 3, host];
        if dnat && proto == TCP {
            // From the outside to the forwarded port.
            let p = ipv4_pkt(remote, EXT, TCP, &l4(remote, EXT, TCP, sport, 80, SYN, &payload), 1, 0);
            let (v, inb) = r.one(0, OUTSIDE, frame(OUTSIDE, &p));
            prop_assert_eq!(v, Verdict::Tx(INSIDE));
            let t = tuple(ip_of(&inb));
            let reply = ipv4_pkt(t.dst, t.src, TCP, &l4(t.dst, t.src, TCP, t.dport, t.sport, ACK, &payload), 2, 0);
            let (v, out) = r.one(0, INSIDE, frame(INSIDE, &reply));
            prop_assert_eq!(v, Verdict::Tx(OUTSIDE));
            prop_assert_eq!(tuple(ip_of(&out)), T { src: EXT, dst: remote, sport: 80, dport: sport });
            return Ok(());
        }
        type Answer = Box<dyn Fn(&T) -> Vec<u8>>;
        let (seg, rseg): (Vec<u8>, Answer) = match proto {
            ICMP => {
                let mut m = icmp_echo(8, sport, dport);
                m.extend_from_slice(&payload);
                m[2] = 0;
                m[3] = 0;
                let c = checksum::checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                let pl = payload.clone();
                (m, Box::new(move |t: &T| {
                    let mut m = icmp_echo(0, t.sport, dport);
                    m.extend_from_slice(&pl);
                    m[2] = 0;
                    m[3] = 0;
                    let c = checksum::checksum(&m);
                    m[2..4].copy_from_slice(&c.to_be_bytes());
                    m
                }))
            }
            _ => {
                let pl = payload.clone();
                (l4(h, remote, proto, sport, dport, SYN, &payload), Box::new(move |t: &T| {
                    l4(t.dst, t.src, proto, t.dport, t.sport, ACK, &pl)
                }))
            }
        };
        let (v, out) = r.one(0, INSIDE, frame(INSIDE, &ipv4_pkt(h, remote, proto, &seg, 7, 0)));
        prop_assert_eq!(v, Verdict::Tx(OUTSIDE));
        let t = tuple(ip_of(&out));
        prop_assert_eq!((t.src, t.dst), (MASQ, remote));
        if proto != ICMP {
            prop_assert_eq!(t.dport, dport);
        }
        // The remote answers the translated packet.
        let reply = ipv4_pkt(remote, MASQ, proto, &rseg(&t), 8, 0);
        let (v, back) = r.one(0, OUTSIDE, frame(OUTSIDE, &reply));
        prop_assert_eq!(v, Verdict::Tx(INSIDE));
        let b = tuple(ip_of(&back));
        if proto == ICMP {
            prop_assert_eq!(b, T { src: remote, dst: h, sport, dport: sport });
        } else {
            prop_assert_eq!(b, T { src: remote, dst: h, sport: dport, dport: sport });
        }
        // Byte for byte: the reply the host sees is what the remote would
        // have sent to the host directly (TTL aside).
        let direct = ipv4_pkt(remote, h, proto, &match proto {
            ICMP => {
                let mut m = icmp_echo(0, sport, dport);
                m.extend_from_slice(&payload);
                m[2] = 0;
                m[3] = 0;
                let c = checksum::checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                m
            }
            _ => l4(remote, h, proto, dport, sport, ACK, &payload),
        }, 8, 0);
        let mut got = ip_of(&back).to_vec();
        let mut want = direct;
        // Compare without TTL and header checksum (the router decremented
        // the TTL; both checksums were verified above).
        for p in [&mut got, &mut want] {
            p[8] = 0;
            p[10] = 0;
            p[11] = 0;
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn expired_sessions_give_back_host_counts_without_traffic() {
    let mut cfg = base_config();
    cfg.max_sessions_per_host = 2;
    let mut r = Router::new(cfg);
    for p in 0..2u16 {
        r.one(0, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 1000 + p, 53, 0)));
    }
    let t = r.nat.table().expect("table").clone();
    let host = u32::from_be_bytes([10, 0, 0, 5]);
    assert_eq!(t.host_sessions(host), 2);
    // The control side's periodic pass, no packet in between.
    assert_eq!(t.retire_expired(100, 1 << 16), 0, "nothing expired yet");
    assert_eq!(t.host_sessions(host), 2);
    assert_eq!(t.live_estimate(), 2, "a whole pass counted the live sessions");
    assert_eq!(t.retire_expired(301, 1 << 16), 2);
    assert_eq!(t.host_sessions(host), 0);
    assert_eq!(t.live_estimate(), 0);
    let (v, _) = r.one(301, INSIDE, frame(INSIDE, &pkt([10, 0, 0, 5], REMOTE, UDP, 2000, 53, 0)));
    assert_eq!(tx(&v), OUTSIDE);
    // The records themselves come back through the owner's sweeps, once.
    for _ in 0..1100 {
        r.burst(302, &[]);
    }
    assert_eq!(t.host_sessions(host), 1, "the retired sessions were not counted down twice");
    assert_eq!(r.sessions(302), 1);
}

/// `p` with TTL `ttl` (header checksum recomputed).
fn with_ttl(mut p: Vec<u8>, ttl: u8) -> Vec<u8> {
    p[8] = ttl;
    p[10] = 0;
    p[11] = 0;
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

#[test]
fn errors_the_router_sends_about_translated_packets_quote_them_untranslated() {
    let mut r = Router::new(base_config());
    let h = [10, 0, 0, 5];
    let (_, out) = r.one(0, INSIDE, frame(INSIDE, &pkt(h, REMOTE, UDP, 1000, 53, 0)));
    let p = tuple(ip_of(&out)).sport;
    // A reply that expires here: time exceeded goes back to the remote,
    // quoting the packet as the remote sent it (to the outside address).
    let late = with_ttl(pkt(REMOTE, MASQ, UDP, 53, p, 0), 1);
    let (v, err) = r.one(1, OUTSIDE, frame(OUTSIDE, &late));
    assert_eq!(tx(&v), OUTSIDE);
    let e = ip_of(&err);
    let o = tuple(e);
    assert_eq!((o.src, o.dst), (MASQ, REMOTE));
    assert_eq!(e[20], 11, "time exceeded");
    let inner = &e[28..];
    assert_eq!((&inner[12..16], &inner[16..20]), (&REMOTE[..], &MASQ[..]), "no inside address in the quote");
    assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), p);
    assert!(checksum::verify(&inner[..20]));
    // A packet of the flow from the inside that expires here: the error
    // goes to the inside host and quotes its own packet.
    let late = with_ttl(pkt(h, REMOTE, UDP, 1000, 53, 0), 1);
    let (v, err) = r.one(1, INSIDE, frame(INSIDE, &late));
    assert_eq!(tx(&v), INSIDE);
    let e = ip_of(&err);
    assert_eq!(tuple(e).dst, h);
    let inner = &e[28..];
    assert_eq!((&inner[12..16], &inner[16..20]), (&h[..], &REMOTE[..]));
    assert_eq!(u16::from_be_bytes([inner[20], inner[21]]), 1000);
    // A forwarded port whose packet expires before its session exists.
    let late = with_ttl(pkt(REMOTE, EXT, TCP, 4000, 80, SYN), 1);
    let (v, err) = r.one(1, OUTSIDE, frame(OUTSIDE, &late));
    assert_eq!(tx(&v), OUTSIDE);
    let inner = &ip_of(&err)[28..];
    assert_eq!(&inner[16..20], &EXT[..], "the backend's address is not revealed");
    assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), 80);
}
