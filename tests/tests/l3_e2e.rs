//! L3 behaviour through real workers and mem ports: fragmentation for a
//! smaller egress MTU, ICMP errors back to the sender, ECMP spreading
//! flows over next hops, and VRF separation.

use dataplane::l3::{Adj, Target, VrfId};
use dataplane::runtime::Runtime;
use dataplane::testgen::{build_frame, GenConfig};
use dataplane::wire::checksum;
use ports::MacAddr;
use std::time::Duration;
use vrouter_tests::*;

fn frame(len: usize, dst: [u8; 4], ttl: u8, df: bool) -> Vec<u8> {
    let cfg = GenConfig { dst_mac: R0_MAC, dst_ip: dst.into(), frame_len: len, ttl: ttl.max(2), ..Default::default() };
    let mut f = build_frame(&cfg, 7);
    f[20] = if df { 0x40 } else { 0 };
    f[22] = ttl;
    f[24..26].fill(0);
    let c = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn oversize_datagrams_are_fragmented_in_order() {
    let mut spec = two_port_spec("frag-e2e", 1, 1, None);
    spec.ports[1].config.mtu = 1000;
    let rt = Runtime::start(&spec).expect("start");
    let src = Peer::open("src", "frag-e2e-in", MacAddr([2, 7, 7, 7, 7, 1]));
    let dst = Peer::open("dst", "frag-e2e-out", SINK_MAC);
    let orig = frame(1400, [10, 1, 0, 9], 64, false);
    src.send(std::slice::from_ref(&orig));
    let got = dst.recv(2);
    assert_eq!(got.len(), 2, "two fragments");
    let mut payload = Vec::new();
    for (k, f) in got.iter().enumerate() {
        assert!(f.len() - 14 <= 1000, "fits the egress MTU");
        assert!(checksum::verify(&f[14..34]));
        assert_eq!(f[22], 63, "TTL decremented once");
        assert_eq!(&f[0..6], &SINK_MAC.0);
        let flags = u16::from_be_bytes([f[20], f[21]]);
        assert_eq!((flags & 0x1fff) as usize * 8, payload.len(), "fragment {k} in order");
        assert_eq!(flags & 0x2000 != 0, k == 0, "MF on all but the last");
        let tl = u16::from_be_bytes([f[16], f[17]]) as usize;
        payload.extend_from_slice(&f[34..14 + tl]);
    }
    assert_eq!(payload, orig[34..], "reassembles to the original payload");
    // DF set: dropped with ICMP (the port has no address: suppressed).
    src.send(&[frame(1400, [10, 1, 0, 9], 64, true)]);
    std::thread::sleep(Duration::from_millis(200));
    let r = rt.stop().expect("stop");
    let drops: u64 =
        r.final_stats.workers.iter().flat_map(|w| &w.drops).filter(|d| d.0 == "mtu_exceeded").map(|d| d.1).sum();
    assert_eq!(drops, 1);
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
}

#[test]
fn ecmp_spreads_flows_and_vrfs_are_separate() {
    let mut spec = two_port_spec("ecmp-e2e", 1, 1, None);
    spec.ports[1].vrf = 1; // p1 alone in VRF 1: traffic from p0 (VRF 0) may not reach its routes
    spec.routes.clear();
    let rt = Runtime::start(&spec).expect("start");
    let (a, b) = (MacAddr([2, 0xa, 0, 0, 0, 1]), MacAddr([2, 0xb, 0, 0, 0, 1]));
    {
        let mut l3 = rt.l3();
        let na = l3.adjacency(Adj::Fixed { port: ports::PortId(1), mac: a }).expect("adj");
        let nb = l3.adjacency(Adj::Fixed { port: ports::PortId(1), mac: b }).expect("adj");
        let g = l3.add_group(&[(na, 1), (nb, 1)], false).expect("group");
        l3.add_route(VrfId(0), "10.1.0.0".parse().expect("a"), 16, Target::Group(g)).expect("route");
        // The same prefix in VRF 1 is a blackhole: VRF 0 must not see it.
        let bh = l3.adjacency(Adj::Drop).expect("adj");
        l3.add_route(VrfId(1), "10.1.0.0".parse().expect("a"), 16, Target::Adj(bh)).expect("route");
    }
    let src = Peer::open("src", "ecmp-e2e-in", MacAddr([2, 7, 7, 7, 7, 1]));
    let dst = Peer::open("dst", "ecmp-e2e-out", SINK_MAC);
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|f| {
            let cfg = GenConfig { dst_mac: R0_MAC, dst_ip: [10, 1, 0, 9].into(), ..Default::default() };
            build_frame(&cfg, f)
        })
        .collect();
    src.send(&frames);
    let got = dst.recv(200);
    assert_eq!(got.len(), 200, "all forwarded in VRF 0 despite VRF 1's blackhole");
    let to_a = got.iter().filter(|f| f[0..6] == a.0).count();
    let to_b = got.iter().filter(|f| f[0..6] == b.0).count();
    assert_eq!(to_a + to_b, 200);
    assert!((60..=140).contains(&to_a), "200 flows split over 2 next hops: {to_a} / {to_b}");
    // The same flow always takes the same next hop.
    src.send(&frames[..20]);
    let again = dst.recv(20);
    for (x, y) in again.iter().zip(&got[..20]) {
        assert_eq!(x[0..6], y[0..6]);
    }
    rt.stop().expect("stop");
}
