//! The local stage: answers built in place (ARP, ND, echo) and ICMP errors,
//! checked byte by byte, with the rate limit and the RFC 1812 exclusions.

use dataplane::l3::{Adj, L3Config, L3Control, Target, VrfId};
use dataplane::local::{LocalEvent, LocalStage};
use dataplane::rcu::Rcu;
use dataplane::stage::{Ctx, L3Forward, ParseStage, Stage};
use dataplane::wire::checksum;
use dataplane::*;
use ports::*;
use std::net::{IpAddr, Ipv6Addr};

const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const HOST_MAC: [u8; 6] = [2, 9, 9, 9, 9, 9];
const NH_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const R4: [u8; 4] = [10, 0, 0, 254];
const HOST4: [u8; 4] = [10, 0, 0, 1];

fn r6() -> Ipv6Addr {
    "2001:db8::fe".parse().expect("a")
}
fn host6() -> Ipv6Addr {
    "2001:db8::1".parse().expect("a")
}

fn tables() -> Tables {
    let ports = vec![
        PortEntry {
            id: PortId(0),
            name: "p0".into(),
            mac: MacAddr(P0_MAC),
            mtu: 1500,
            addrs: vec![IpAddr::from(R4), IpAddr::V6(r6())],
        },
        PortEntry { id: PortId(1), name: "p1".into(), mac: MacAddr([2, 0, 0, 0, 1, 1]), mtu: 1000, addrs: vec![] },
    ];
    let h = TableHandle::new(Tables { ports, ..Default::default() });
    let cfg = L3Config {
        fib4: dataplane::fib::v4::Fib4Config { tbl8_groups: 16, hugepages: HugepagePolicy::Never },
        ..Default::default()
    };
    let mut l3 = L3Control::new(cfg, 2, Rcu::new()).expect("l3");
    l3.attach(h.clone());
    l3.add_interface_address(PortId(0), IpAddr::from(R4), 24).expect("addr");
    l3.add_interface_address(PortId(0), IpAddr::V6(r6()), 64).expect("addr");
    let nh = l3.adjacency(Adj::Fixed { port: PortId(1), mac: MacAddr(NH_MAC) }).expect("adj");
    let un = l3.adjacency(Adj::Unreachable).expect("adj");
    for (p, len, t) in [("10.1.0.0", 16, nh), ("2001:db8:1::", 48, nh), ("10.8.0.0", 16, un)] {
        l3.add_route(VrfId(0), p.parse().expect("a"), len, Target::Adj(t)).expect("route");
    }
    (*h.current()).clone()
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], ttl: u8, proto: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, if df { 0x40 } else { 0 }, 0, ttl, proto, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn udp(len: usize) -> Vec<u8> {
    let mut u = vec![0u8; len];
    u[0..2].copy_from_slice(&4000u16.to_be_bytes());
    u[2..4].copy_from_slice(&53u16.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    u
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hlim: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, hlim]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, mut msg: Vec<u8>) -> Vec<u8> {
    let c = checksum::l4_checksum_v6(src.octets(), dst.octets(), 58, &msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    msg
}

struct Out {
    verdicts: Vec<Verdict>,
    frames: Vec<Vec<u8>>,
    stats: WorkerStats,
}

fn run(frames: &[Vec<u8>], stage: &mut LocalStage) -> Out {
    let pool = PagePool::new(&PoolConfig { buffers: 512, hugepages: HugepagePolicy::Never, ..Default::default() })
        .expect("pool");
    let mut b = Batch::boxed();
    for f in frames {
        let mut p = pool.alloc().expect("buf");
        assert!(p.copy_from(f));
        p.set_port(0);
        b.pkts.push(p).expect("room");
    }
    let t = tables();
    let stats = WorkerStats::default();
    let cx = Ctx { tables: &t, stats: &stats, neigh: None, worker: 0, now_secs: 0 };
    ParseStage.process(&mut b, &cx);
    L3Forward::default().process(&mut b, &cx);
    stage.process(&mut b, &cx);
    let frames = b.pkts.as_slice().iter().map(|p| p.data().to_vec()).collect();
    Out { verdicts: b.verdict[..b.len()].to_vec(), frames, stats }
}

fn ev(s: &WorkerStats, e: LocalEvent) -> u64 {
    s.local[e as usize].get()
}

#[test]
fn time_exceeded_quotes_the_packet_and_checksums_verify() {
    let orig = eth(P0_MAC, 0x0800, &ipv4(HOST4, [10, 1, 0, 9], 1, 17, false, &udp(100)));
    let o = run(std::slice::from_ref(&orig), &mut LocalStage::default());
    assert_eq!(o.verdicts[0], Verdict::Tx(PortId(0)), "sent back out of the ingress port");
    let f = &o.frames[0];
    assert_eq!(&f[0..6], &HOST_MAC, "to the previous hop");
    assert_eq!(&f[6..12], &P0_MAC);
    assert_eq!(&f[12..14], &[8, 0]);
    let ip = &f[14..34];
    assert!(checksum::verify(ip));
    assert_eq!(ip[9], 1);
    assert_eq!(&ip[12..16], &R4, "from the router's address on the port");
    assert_eq!(&ip[16..20], &HOST4);
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, f.len() - 14);
    let icmp = &f[34..];
    assert_eq!((icmp[0], icmp[1]), (11, 0));
    assert!(checksum::verify(icmp));
    assert_eq!(&icmp[8..], &orig[14..], "the whole (short) original datagram is quoted");
    assert_eq!(ev(&o.stats, LocalEvent::IcmpTimeExceeded), 1);
    assert_eq!(o.stats.dropped(DropReason::TtlExceeded), 1, "the original is still counted as dropped");
}

#[test]
fn unreachable_and_frag_needed_carry_the_right_codes() {
    let frames = vec![
        eth(P0_MAC, 0x0800, &ipv4(HOST4, [192, 0, 2, 1], 64, 17, false, &udp(8))), // no route
        eth(P0_MAC, 0x0800, &ipv4(HOST4, [10, 8, 0, 1], 64, 17, false, &udp(8))),  // unreachable route
        eth(P0_MAC, 0x0800, &ipv4(HOST4, [10, 1, 0, 1], 64, 17, true, &udp(1200))), // DF, egress MTU 1000
        eth(P0_MAC, 0x0800, &ipv4(HOST4, [10, 1, 0, 1], 64, 17, false, &udp(1200))), // no DF: fragmented
    ];
    let o = run(&frames, &mut LocalStage::default());
    let codes: Vec<(u8, u8)> = o.frames[..3].iter().map(|f| (f[34], f[35])).collect();
    assert_eq!(codes, vec![(3, 0), (3, 1), (3, 4)]);
    assert_eq!(u16::from_be_bytes([o.frames[2][40], o.frames[2][41]]), 1000, "next-hop MTU");
    assert!(o.frames[2].len() - 14 <= 576, "quote limited to a 576-byte datagram");
    assert!(checksum::verify(&o.frames[2][34..]));
    assert_eq!(o.verdicts[3], Verdict::Fragment(PortId(1)), "DF clear: the worker fragments it");
    assert_eq!(ev(&o.stats, LocalEvent::IcmpUnreachable), 2);
    assert_eq!(ev(&o.stats, LocalEvent::IcmpFragNeeded), 1);
}

#[test]
fn icmpv6_errors_are_well_formed() {
    let dst: Ipv6Addr = "2001:db8:1::9".parse().expect("a");
    let frames = vec![
        eth(P0_MAC, 0x86dd, &ipv6(host6(), dst, 1, 17, &udp(40))),
        eth(P0_MAC, 0x86dd, &ipv6(host6(), "2001:db8:99::1".parse().expect("a"), 64, 17, &udp(40))),
        eth(P0_MAC, 0x86dd, &ipv6(host6(), dst, 64, 17, &udp(1300))),
    ];
    let o = run(&frames, &mut LocalStage::default());
    for (f, want) in o.frames.iter().zip([(3u8, 0u8), (1, 0), (2, 0)]) {
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(&f[22..38], &r6().octets());
        assert_eq!(&f[38..54], &host6().octets());
        let msg = &f[54..];
        assert_eq!((msg[0], msg[1]), want);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, msg.len());
        assert!(checksum::verify_l4_v6(r6().octets(), host6().octets(), 58, msg));
        assert!(f.len() - 14 <= 1280, "fits the IPv6 minimum MTU");
    }
    assert_eq!(u32::from_be_bytes([o.frames[2][58], o.frames[2][59], o.frames[2][60], o.frames[2][61]]), 1000);
}

#[test]
fn no_icmp_errors_about_errors_fragments_or_bad_sources() {
    let mut te = vec![11, 0, 0, 0, 0, 0, 0, 0];
    te.extend_from_slice(&[0u8; 28]);
    let c = checksum::checksum(&te);
    te[2..4].copy_from_slice(&c.to_be_bytes());
    let mut later_frag = ipv4(HOST4, [10, 1, 0, 1], 1, 17, false, &udp(8));
    later_frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    later_frag[10..12].fill(0);
    let c = checksum::checksum(&later_frag[..20]);
    later_frag[10..12].copy_from_slice(&c.to_be_bytes());
    let frames = vec![
        eth(P0_MAC, 0x0800, &ipv4(HOST4, [10, 1, 0, 1], 1, 1, false, &te)),
        eth(P0_MAC, 0x0800, &later_frag),
        eth(P0_MAC, 0x0800, &ipv4([0, 0, 0, 0], [10, 1, 0, 1], 1, 17, false, &udp(8))),
        eth(P0_MAC, 0x0800, &ipv4([127, 0, 0, 1], [10, 1, 0, 1], 1, 17, false, &udp(8))),
        eth(P0_MAC, 0x0800, &ipv4([224, 0, 0, 1], [10, 1, 0, 1], 1, 17, false, &udp(8))),
    ];
    let o = run(&frames, &mut LocalStage::default());
    assert!(o.verdicts.iter().all(|v| *v == Verdict::Drop(DropReason::TtlExceeded)), "{:?}", o.verdicts);
    assert_eq!(ev(&o.stats, LocalEvent::IcmpSuppressed), 5);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let frames: Vec<Vec<u8>> =
        (0..100).map(|i| eth(P0_MAC, 0x0800, &ipv4(HOST4, [10, 1, 0, i], 1, 17, false, &udp(8)))).collect();
    let o = run(&frames, &mut LocalStage::new(1000, 10));
    let sent = o.verdicts.iter().filter(|v| matches!(v, Verdict::Tx(_))).count();
    assert_eq!(sent, 10, "a burst of 10");
    assert_eq!(ev(&o.stats, LocalEvent::IcmpRateLimited), 90);
    let o = run(&frames, &mut LocalStage::new(0, 10));
    assert_eq!(ev(&o.stats, LocalEvent::IcmpRateLimited), 100, "rate 0 disables ICMP errors");
}

#[test]
fn echo_requests_to_our_addresses_are_answered() {
    let mut echo = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    echo.extend_from_slice(b"ping payload");
    let c = checksum::checksum(&echo);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    let mut echo6 = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
    echo6.extend_from_slice(b"ping6");
    let echo6 = icmp6(host6(), r6(), echo6);
    let frames = vec![
        eth(P0_MAC, 0x0800, &ipv4(HOST4, R4, 64, 1, false, &echo)),
        eth(P0_MAC, 0x86dd, &ipv6(host6(), r6(), 64, 58, &echo6)),
    ];
    let o = run(&frames, &mut LocalStage::default());
    assert_eq!(o.verdicts, vec![Verdict::Tx(PortId(0)), Verdict::Tx(PortId(0))]);
    let f = &o.frames[0];
    assert_eq!((&f[0..6], &f[6..12]), (&HOST_MAC[..], &P0_MAC[..]));
    assert_eq!((&f[26..30], &f[30..34]), (&R4[..], &HOST4[..]));
    assert!(checksum::verify(&f[14..34]));
    assert_eq!(f[34], 0);
    assert!(checksum::verify(&f[34..]));
    assert_eq!(&f[38..], &echo[4..], "id, sequence and data echoed");
    let f = &o.frames[1];
    assert_eq!(f[54], 129);
    assert_eq!((&f[22..38], &f[38..54]), (&r6().octets()[..], &host6().octets()[..]));
    assert!(checksum::verify_l4_v6(r6().octets(), host6().octets(), 58, &f[54..]));
    assert_eq!(ev(&o.stats, LocalEvent::EchoReply), 2);
}

#[test]
fn arp_and_neighbor_solicitations_for_our_addresses_are_answered() {
    let arp = |tpa: [u8; 4]| {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&HOST_MAC);
        a.extend_from_slice(&HOST4);
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&tpa);
        a.extend_from_slice(&[0; 18]);
        eth([0xff; 6], 0x0806, &a)
    };
    let sol = |target: Ipv6Addr, src: Ipv6Addr, hlim: u8| {
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&target.octets());
        ns.extend_from_slice(&[1, 1]);
        ns.extend_from_slice(&HOST_MAC);
        let snm: Ipv6Addr = "ff02::1:ff00:fe".parse().expect("a");
        let ns = icmp6(src, snm, ns);
        eth([0x33, 0x33, 0xff, 0, 0, 0xfe], 0x86dd, &ipv6(src, snm, hlim, 58, &ns))
    };
    let frames = vec![
        arp(R4),
        arp([10, 0, 0, 77]),
        sol(r6(), host6(), 255),
        sol(r6(), Ipv6Addr::UNSPECIFIED, 255),
        sol(r6(), host6(), 64),
        sol("2001:db8::77".parse().expect("a"), host6(), 255),
    ];
    let o = run(&frames, &mut LocalStage::default());
    assert_eq!(o.verdicts[0], Verdict::Tx(PortId(0)));
    let a = &o.frames[0];
    assert_eq!((&a[0..6], &a[6..12]), (&HOST_MAC[..], &P0_MAC[..]));
    assert_eq!(&a[20..22], &[0, 2], "reply");
    assert_eq!((&a[22..28], &a[28..32]), (&P0_MAC[..], &R4[..]));
    assert_eq!((&a[32..38], &a[38..42]), (&HOST_MAC[..], &HOST4[..]));
    assert_eq!(o.verdicts[1], Verdict::Punt(PuntReason::Arp), "not ours: left for the punt path");

    let na = &o.frames[2];
    assert_eq!(o.verdicts[2], Verdict::Tx(PortId(0)));
    assert_eq!(na.len(), 86);
    assert_eq!((&na[0..6], &na[6..12]), (&HOST_MAC[..], &P0_MAC[..]));
    assert_eq!(na[21], 255, "hop limit 255");
    assert_eq!((&na[22..38], &na[38..54]), (&r6().octets()[..], &host6().octets()[..]));
    assert_eq!((na[54], na[58]), (136, 0xe0), "router, solicited, override");
    assert_eq!(&na[62..78], &r6().octets());
    assert_eq!(&na[78..86], &[2, 1, 2, 0, 0, 0, 0, 1], "target link-layer address option");
    assert!(checksum::verify_l4_v6(r6().octets(), host6().octets(), 58, &na[54..]));
    let dad = &o.frames[3];
    assert_eq!(&dad[38..54], &"ff02::1".parse::<Ipv6Addr>().expect("a").octets(), "DAD: to all nodes");
    assert_eq!(dad[58], 0xa0, "DAD: not solicited");
    assert_eq!(o.verdicts[4], Verdict::Punt(PuntReason::Nd), "hop limit not 255: not answered");
    assert_eq!(o.verdicts[5], Verdict::Punt(PuntReason::Nd), "not our target");
    assert_eq!(ev(&o.stats, LocalEvent::ArpReply), 1);
    assert_eq!(ev(&o.stats, LocalEvent::NeighborAdvert), 2);
}
