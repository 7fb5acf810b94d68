//! The pipeline on crafted frames: forwarding rewrites, and the named
//! reason of every drop and punt.

use dataplane::l3::{Adj, AdjId, L3Config, L3Control, Target, VrfId};
use dataplane::rcu::Rcu;
use dataplane::stage::{Ctx, L3Forward, ParseStage, Pipeline, Stage};
use dataplane::wire::{checksum, WireError};
use dataplane::*;
use ports::*;
use std::net::IpAddr;

const P0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const P1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const NH_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];

fn a(s: &str) -> IpAddr {
    s.parse().expect("addr")
}

fn tables() -> Tables {
    let ports = vec![
        PortEntry {
            id: PortId(0),
            name: "p0".into(),
            mac: MacAddr(P0_MAC),
            mtu: 1500,
            addrs: vec![a("10.0.0.254"), a("2001:db8::fe")],
        },
        PortEntry { id: PortId(1), name: "p1".into(), mac: MacAddr(P1_MAC), mtu: 1000, addrs: vec![] },
    ];
    let h = TableHandle::new(Tables { ports, ..Default::default() });
    let mut l3 = L3Control::new(small_l3(), 2, Rcu::new()).expect("l3");
    l3.attach(h.clone());
    l3.add_interface_address(PortId(0), a("10.0.0.254"), 24).expect("addr");
    l3.add_interface_address(PortId(0), a("2001:db8::fe"), 64).expect("addr");
    let nh = l3.adjacency(Adj::Fixed { port: PortId(1), mac: MacAddr(NH_MAC) }).expect("adj");
    let bh = l3.adjacency(Adj::Drop).expect("adj");
    let unreach = l3.adjacency(Adj::Unreachable).expect("adj");
    let bad = l3.adjacency(Adj::Fixed { port: PortId(1), mac: MacAddr(NH_MAC) }).expect("adj");
    assert_eq!(bad, nh, "equal adjacencies are shared");
    let r = |l3: &mut L3Control, p: &str, len: u8, t: AdjId| {
        l3.add_route(VrfId(0), a(p), len, Target::Adj(t)).expect("route")
    };
    r(&mut l3, "10.1.0.0", 16, nh);
    r(&mut l3, "10.9.0.0", 16, bh);
    r(&mut l3, "10.8.0.0", 16, unreach);
    r(&mut l3, "2001:db8:1::", 48, nh);
    (*h.current()).clone()
}

fn small_l3() -> L3Config {
    L3Config {
        fib4: dataplane::fib::v4::Fib4Config { tbl8_groups: 16, hugepages: HugepagePolicy::Never },
        ..Default::default()
    }
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[2, 9, 9, 9, 9, 9]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(dst: [u8; 4], ttl: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, ttl, 17, 0, 0, 10, 0, 0, 1];
    h.extend_from_slice(&dst);
    let tl = (20 + payload_len) as u16;
    h[2..4].copy_from_slice(&tl.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = vec![0u8; payload_len];
    if payload_len >= 8 {
        udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        udp[2..4].copy_from_slice(&53u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    }
    h.extend_from_slice(&udp);
    h
}

fn ipv6(dst: &str, hlim: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.push(next);
    h.push(hlim);
    h.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().expect("a").octets());
    h.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().expect("a").octets());
    h.extend_from_slice(payload);
    h
}

fn udp8() -> Vec<u8> {
    vec![0x04, 0xd2, 0, 53, 0, 8, 0, 0]
}

/// Runs frames (all received on port 0) through parse and forward only:
/// the verdicts before the local stage answers anything.
fn run(frames: &[Vec<u8>]) -> (Vec<Verdict>, Vec<Vec<u8>>) {
    run_with(frames, false)
}

fn run_with(frames: &[Vec<u8>], full: bool) -> (Vec<Verdict>, Vec<Vec<u8>>) {
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
    if full {
        Pipeline::default().run(&mut b, &cx);
    } else {
        ParseStage.process(&mut b, &cx);
        L3Forward::default().process(&mut b, &cx);
    }
    let out = b.pkts.as_slice().iter().map(|p| p.data().to_vec()).collect();
    (b.verdict[..frames.len()].to_vec(), out)
}

#[test]
fn ipv4_forward_rewrites_macs_ttl_and_checksum() {
    let f = eth(P0_MAC, 0x0800, &ipv4([10, 1, 2, 3], 64, 8));
    let (v, out) = run(std::slice::from_ref(&f));
    assert_eq!(v[0], Verdict::Tx(PortId(1)));
    let o = &out[0];
    assert_eq!(&o[0..6], &NH_MAC);
    assert_eq!(&o[6..12], &P1_MAC);
    assert_eq!(o[22], 63, "TTL decremented");
    assert!(checksum::verify(&o[14..34]), "incrementally updated checksum verifies");
    let mut h = o[14..34].to_vec();
    h[10..12].fill(0);
    assert_eq!(u16::from_be_bytes([o[24], o[25]]), checksum::checksum(&h), "equals a full recomputation");
    assert_eq!(&o[34..], &f[34..], "payload untouched");
}

#[test]
fn ipv4_checksum_update_matches_recomputation_for_every_ttl() {
    let frames: Vec<Vec<u8>> = (2..=255u8).map(|ttl| eth(P0_MAC, 0x0800, &ipv4([10, 1, 0, ttl], ttl, 8))).collect();
    let (v, out) = run(&frames);
    for (i, f) in out.iter().enumerate() {
        assert_eq!(v[i], Verdict::Tx(PortId(1)));
        assert!(checksum::verify(&f[14..34]), "ttl {}", i + 2);
    }
}

#[test]
fn ipv6_forward_decrements_hop_limit() {
    let f = eth(P0_MAC, 0x86dd, &ipv6("2001:db8:1::5", 2, 17, &udp8()));
    let (v, out) = run(&[f]);
    assert_eq!(v[0], Verdict::Tx(PortId(1)));
    assert_eq!(out[0][14 + 7], 1);
    assert_eq!(&out[0][0..6], &NH_MAC);
}

#[test]
fn every_drop_and_punt_has_its_reason() {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&[2, 9, 9, 9, 9, 9, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 254]);
    let mut vlan = vec![0x00, 0x64, 0x08, 0x00];
    vlan.extend_from_slice(&ipv4([10, 1, 0, 1], 64, 8));
    let mut bad_csum = ipv4([10, 1, 0, 1], 64, 8);
    bad_csum[10] ^= 0xff;
    let mut bad_ihl = ipv4([10, 1, 0, 1], 64, 8);
    bad_ihl[0] = 0x44;
    let cases: Vec<(Vec<u8>, Verdict)> = vec![
        (vec![0u8; 10], Verdict::Drop(DropReason::Malformed(WireError::EthTruncated))),
        (eth(P0_MAC, 0x0800, &[0x45, 0, 0]), Verdict::Drop(DropReason::Malformed(WireError::Ipv4Truncated))),
        (eth(P0_MAC, 0x0800, &bad_csum), Verdict::Drop(DropReason::Malformed(WireError::Ipv4BadChecksum))),
        (eth(P0_MAC, 0x0800, &bad_ihl), Verdict::Drop(DropReason::Malformed(WireError::Ipv4BadIhl))),
        (eth(P0_MAC, 0x86dd, &[0x60, 0, 0]), Verdict::Drop(DropReason::Malformed(WireError::Ipv6Truncated))),
        (eth([2, 5, 5, 5, 5, 5], 0x0800, &ipv4([10, 1, 0, 1], 64, 8)), Verdict::Drop(DropReason::NotForUs)),
        (eth(P0_MAC, 0x88cc, &[0u8; 46]), Verdict::Drop(DropReason::UnsupportedEthertype)),
        (eth(P0_MAC, 0x8100, &vlan), Verdict::Drop(DropReason::VlanUnknown)),
        (eth(P0_MAC, 0x0800, &ipv4([192, 0, 2, 1], 64, 8)), Verdict::Drop(DropReason::NoRoute)),
        (eth(P0_MAC, 0x0800, &ipv4([10, 9, 0, 1], 64, 8)), Verdict::Drop(DropReason::Blackhole)),
        (eth(P0_MAC, 0x0800, &ipv4([10, 8, 0, 1], 64, 8)), Verdict::Drop(DropReason::Unreachable)),
        (eth(P0_MAC, 0x0800, &ipv4([10, 1, 0, 1], 1, 8)), Verdict::Drop(DropReason::TtlExceeded)),
        (eth(P0_MAC, 0x0800, &ipv4([10, 1, 0, 1], 64, 1200)), Verdict::Drop(DropReason::MtuExceeded)),
        (eth(P0_MAC, 0x86dd, &ipv6("2001:db8:1::5", 1, 17, &udp8())), Verdict::Drop(DropReason::TtlExceeded)),
        (eth(MacAddr::BROADCAST.0, 0x0806, &arp), Verdict::Punt(PuntReason::Arp)),
        (eth(P0_MAC, 0x0800, &ipv4([10, 0, 0, 254], 64, 8)), Verdict::Punt(PuntReason::Local)),
        (eth(P0_MAC, 0x0800, &ipv4([224, 0, 0, 5], 64, 8)), Verdict::Punt(PuntReason::Multicast)),
        (
            eth([0x33, 0x33, 0, 0, 0, 1], 0x86dd, &ipv6("ff02::1", 255, 58, &[135, 0, 0, 0, 0, 0, 0, 0])),
            Verdict::Punt(PuntReason::Nd),
        ),
        (eth(P0_MAC, 0x86dd, &ipv6("2001:db8::fe", 64, 17, &udp8())), Verdict::Punt(PuntReason::Local)),
        (eth(P0_MAC, 0x86dd, &ipv6("fe80::1", 64, 17, &udp8())), Verdict::Punt(PuntReason::Local)),
    ];
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.0.clone()).collect();
    let (v, _) = run(&frames);
    for (i, (_, want)) in cases.iter().enumerate() {
        assert_eq!(v[i], *want, "case {i}");
    }
}

#[test]
fn full_pipeline_answers_what_it_can() {
    // With the local stage, a TTL-expired packet from a host becomes an
    // ICMP time exceeded sent back out of port 0.
    let (v, out) = run_with(&[eth(P0_MAC, 0x0800, &ipv4([10, 1, 0, 1], 1, 8))], true);
    assert_eq!(v[0], Verdict::Tx(PortId(0)));
    assert_eq!((out[0][34], out[0][35]), (11, 0));
}

#[test]
fn device_verified_checksum_flags_are_honoured() {
    let pool = PagePool::new(&PoolConfig { buffers: 8, hugepages: HugepagePolicy::Never, ..Default::default() })
        .expect("pool");
    let mut bad = ipv4([10, 1, 0, 1], 64, 8);
    bad[10] ^= 0xff;
    let f = eth(P0_MAC, 0x0800, &bad);
    let t = tables();
    let stats = WorkerStats::default();
    let mut b = Batch::boxed();
    for ol in [Offload::RX_IP_CSUM_GOOD, Offload::RX_IP_CSUM_BAD] {
        let mut p = pool.alloc().expect("buf");
        assert!(p.copy_from(&f));
        p.set_port(0);
        p.set_offload(ol);
        b.pkts.push(p).expect("room");
    }
    Pipeline::default().run(&mut b, &Ctx { tables: &t, stats: &stats, neigh: None, worker: 0, now_secs: 0 });
    assert_eq!(b.verdict[0], Verdict::Tx(PortId(1)), "verified by the device: not re-checked");
    assert_eq!(b.verdict[1], Verdict::Drop(DropReason::Malformed(WireError::Ipv4BadChecksum)));
}

#[test]
fn truncations_of_a_valid_frame_never_panic_and_never_forward() {
    let f = eth(P0_MAC, 0x0800, &ipv4([10, 1, 0, 1], 64, 8));
    let frames: Vec<Vec<u8>> = (0..f.len()).map(|n| f[..n].to_vec()).collect();
    for chunk in frames.chunks(200) {
        let (v, _) = run(chunk);
        assert!(v.iter().all(|v| matches!(v, Verdict::Drop(DropReason::Malformed(_)))), "{v:?}");
    }
}
