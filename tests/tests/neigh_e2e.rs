//! Neighbour resolution through real workers: packets to an unresolved
//! gateway wait in the pending queue while the router sends ARP requests;
//! the peer's reply releases them in order. A destination in a connected
//! subnet goes through glean: the first packet reports a miss, the control
//! side creates the entry, and later packets resolve like a gateway's.

use dataplane::neigh::NeighState;
use dataplane::runtime::{RouteSpec, RouteTarget, Runtime};
use dataplane::testgen::{build_frame, GenConfig};
use ports::{MacAddr, PktBurst, Port, QueueId};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use vrouter_tests::*;

fn open(name: &str, wire: &str, mac: MacAddr) -> Box<dyn Port> {
    let p = ports::open_port(&mem_port(name, wire, 1, 1, Some(mac))).expect("peer");
    p.start().expect("start");
    p
}

fn send(p: &dyn Port, frames: &[Vec<u8>]) {
    let pool = p.rx_pool(QueueId(0)).expect("pool");
    let mut tx = p.tx_queue(QueueId(0)).expect("txq");
    let mut b = PktBurst::new();
    for f in frames {
        let mut k = pool.alloc().expect("buf");
        assert!(k.copy_from(f));
        b.push(k).expect("room");
    }
    while !b.is_empty() {
        tx.tx_burst(&mut b);
    }
}

/// Receives until `want` frames match `pred` (others are returned too).
fn recv_until(p: &dyn Port, want: usize, pred: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut rx = p.rx_queue(QueueId(0)).expect("rxq");
    let mut got: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = PktBurst::new();
    while got.iter().filter(|f| pred(f)).count() < want && Instant::now() < deadline {
        rx.rx_burst(&mut b);
        got.extend(b.drain().map(|k| k.data().to_vec()));
    }
    got
}

/// Receives whatever arrives within `d`.
fn recv_for(p: &dyn Port, d: Duration) -> Vec<Vec<u8>> {
    let mut rx = p.rx_queue(QueueId(0)).expect("rxq");
    let mut got = Vec::new();
    let end = Instant::now() + d;
    let mut b = PktBurst::new();
    while Instant::now() < end {
        rx.rx_burst(&mut b);
        got.extend(b.drain().map(|k| k.data().to_vec()));
    }
    got
}

fn is_arp_request_for(f: &[u8], target: [u8; 4]) -> bool {
    f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 1] && f[38..42] == target
}

fn arp_reply(from_mac: MacAddr, from_ip: [u8; 4], to_mac: MacAddr, to_ip: [u8; 4]) -> Vec<u8> {
    let mut f = to_mac.0.to_vec();
    f.extend_from_slice(&from_mac.0);
    f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&from_mac.0);
    f.extend_from_slice(&from_ip);
    f.extend_from_slice(&to_mac.0);
    f.extend_from_slice(&to_ip);
    f.resize(60, 0);
    f
}

fn to(dst: [u8; 4], flow: u32) -> Vec<u8> {
    let cfg = GenConfig { dst_mac: R0_MAC, dst_ip: dst.into(), ..Default::default() };
    build_frame(&cfg, flow)
}

#[test]
fn gateway_and_connected_neighbours_resolve_by_arp() {
    let mut spec = two_port_spec("neigh-e2e", 1, 1, None);
    spec.ports[1].addrs = vec![("10.2.0.1".parse::<IpAddr>().expect("a"), 24)];
    spec.routes = vec![RouteSpec {
        vrf: 0,
        addr: "10.1.0.0".parse().expect("a"),
        len: 16,
        target: RouteTarget::Gateway { port: "p1".into(), ip: "10.2.0.2".parse().expect("a") },
    }];
    let rt = Runtime::start(&spec).expect("start");
    let src = open("src", "neigh-e2e-in", MacAddr([2, 7, 7, 7, 7, 1]));
    let dst = open("dst", "neigh-e2e-out", SINK_MAC);

    // Five packets to an unresolved gateway: queued, and an ARP request.
    let frames: Vec<Vec<u8>> = (0..5).map(|i| to([10, 1, 0, 9], i)).collect();
    send(&*src, &frames);
    let got = recv_until(&*dst, 1, |f| is_arp_request_for(f, [10, 2, 0, 2]));
    let req = got.iter().find(|f| is_arp_request_for(f, [10, 2, 0, 2])).expect("ARP request for the gateway");
    assert_eq!(&req[0..6], &[0xff; 6], "broadcast");
    assert_eq!(&req[22..28], &R1_MAC.0, "sender MAC: the router's port");
    assert_eq!(&req[28..32], &[10, 2, 0, 1], "sender IP: the router's address on the port");
    assert!(got.iter().all(|f| f[12..14] == [8, 6]), "no data packet leaves before resolution");

    // The reply releases the queued packets, in order, to the right MAC.
    send(&*dst, &[arp_reply(SINK_MAC, [10, 2, 0, 2], R1_MAC, [10, 2, 0, 1])]);
    let got = recv_until(&*dst, 5, |f| f[12..14] == [8, 0]);
    let data: Vec<&Vec<u8>> = got.iter().filter(|f| f[12..14] == [8, 0]).collect();
    assert_eq!(data.len(), 5, "all queued packets released");
    for (k, f) in data.iter().enumerate() {
        assert_eq!(&f[0..6], &SINK_MAC.0);
        assert_eq!(&f[6..12], &R1_MAC.0);
        assert_eq!(f[22], 63);
        assert_eq!(f[34..36], frames[k][34..36], "in order");
    }
    let e = rt.neigh().get(ports::PortId(1), "10.2.0.2".parse().expect("a")).expect("entry");
    assert_eq!(e.state, NeighState::Reachable);

    // Connected subnet: 10.2.0.7 is unknown. The first packet reports a
    // miss; once the control side has created the entry, packets queue and
    // the router asks for 10.2.0.7.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut asked = Vec::new();
    while asked.is_empty() && Instant::now() < deadline {
        send(&*src, &[to([10, 2, 0, 7], 1)]);
        asked = recv_for(&*dst, Duration::from_millis(150))
            .into_iter()
            .filter(|f| is_arp_request_for(f, [10, 2, 0, 7]))
            .collect();
    }
    assert!(!asked.is_empty(), "ARP request for the connected host");
    send(&*dst, &[arp_reply(MacAddr([2, 0xc, 0, 0, 0, 7]), [10, 2, 0, 7], R1_MAC, [10, 2, 0, 1])]);
    send(&*src, &[to([10, 2, 0, 7], 2)]);
    let got = recv_until(&*dst, 1, |f| f[12..14] == [8, 0]);
    let host = got.iter().find(|f| f[12..14] == [8, 0]).expect("delivered to the connected host");
    assert_eq!(&host[0..6], &[2, 0xc, 0, 0, 0, 7]);

    let r = rt.stop().expect("stop");
    let w = &r.final_stats.workers[0];
    assert!(w.local.iter().any(|e| e.0 == "neigh_solicit" && e.1 >= 2), "{:?}", w.local);
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
}
