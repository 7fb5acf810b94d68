//! ACLs through real workers and mem ports: ingress and egress filtering,
//! default deny, per-rule hit counters, stateful sessions admitting
//! replies, ACL updates while traffic flows, and IPv6 rules.
//!
//! Frames are injected on the far end of a router port's wire and read on
//! the far end of the other; drops are read from the workers' counters.
//! Every wait is bounded.

use dataplane::acl::control::{AclBindSpec, AclConfig, AclError, AclSpec};
use dataplane::acl::session::SessionConfig;
use dataplane::acl::stage::Direction;
use dataplane::acl::{Action, Prefix, Range, Rule};
use dataplane::runtime::{RouteSpec, RouteTarget, Runtime, RuntimeSpec};
use dataplane::testgen::GenConfig;
use dataplane::wire::checksum;
use ports::MacAddr;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};
use vrouter_tests::*;

/// The MAC of the peer on p0's wire.
const PEER0: MacAddr = MacAddr([2, 7, 7, 7, 7, 1]);
const TCP: u8 = 6;
const UDP: u8 = 17;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// Polls `f` until it holds, at most [`PATIENCE`].
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A drop counter summed over the workers.
fn drops(rt: &Runtime, reason: &str) -> u64 {
    rt.snapshot().workers.iter().flat_map(|w| &w.drops).filter(|d| d.0 == reason).map(|d| d.1).sum()
}

/// Waits for the drop counter `reason` to reach `want`, then checks it
/// goes no further.
fn expect_drops(rt: &Runtime, reason: &str, want: u64) {
    wait_until(&format!("{want} {reason} drops"), || drops(rt, reason) >= want);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(drops(rt, reason), want, "{reason}");
}

fn eth(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 frame carrying `l4` (padded to the 60-byte minimum).
fn ipv4(dst_mac: MacAddr, src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(dst_mac, PEER0, 0x0800);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f.resize(f.len().max(60), 0);
    f
}

/// An IPv6 frame carrying `l4`.
fn ipv6(dst_mac: MacAddr, src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(dst_mac, PEER0, 0x86dd);
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    ip[6] = proto;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().expect("v6 literal").octets());
    ip[24..40].copy_from_slice(&dst.parse::<Ipv6Addr>().expect("v6 literal").octets());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

/// A UDP header and `payload` zero bytes (checksum 0: none).
fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 8 + payload];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    h
}

/// A TCP header (no options) with `flags`.
fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&1024u16.to_be_bytes());
    h
}

/// (source address, destination address, source port, destination port)
/// of an IPv4 frame with ports.
fn tuple4(f: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
    let a = |o: usize| [f[o], f[o + 1], f[o + 2], f[o + 3]];
    let p = |o: usize| u16::from_be_bytes([f[o], f[o + 1]]);
    (a(26), a(30), p(34), p(36))
}

fn v4(a: [u8; 4], len: u8) -> Prefix {
    Prefix { addr: u32::from_be_bytes(a) as u128, len, v6: false }
}

fn v6(a: &str, len: u8) -> Prefix {
    Prefix { addr: u128::from(a.parse::<Ipv6Addr>().expect("v6 literal")), len, v6: true }
}

fn acl(name: &str, rules: Vec<Rule>) -> AclSpec {
    AclSpec { name: name.into(), rules }
}

fn bind(port: &str, dir: Direction, acl: &str, default: Action) -> AclBindSpec {
    AclBindSpec { port: port.into(), dir, acl: acl.into(), default }
}

/// Two mem ports on `{tag}-in` / `{tag}-out` (one worker) with the ACLs,
/// and a small session table.
fn spec(tag: &str, acls: Vec<AclSpec>, bindings: Vec<AclBindSpec>) -> RuntimeSpec {
    let mut s = two_port_spec(tag, 1, 1, None);
    s.acl = AclConfig { acls, bindings, sessions: SessionConfig { capacity: 4096, ..SessionConfig::default() } };
    s
}

/// A route to `10.0.0.0/16` back out of p0, to the peer there.
fn return_route() -> RouteSpec {
    RouteSpec {
        vrf: 0,
        addr: "10.0.0.0".parse().expect("literal"),
        len: 16,
        target: RouteTarget::Forward { port: "p0".into(), mac: PEER0 },
    }
}

fn bytes(frames: &[&Vec<u8>]) -> u64 {
    frames.iter().map(|f| f.len() as u64).sum()
}

fn stop(rt: Runtime) {
    let r = rt.stop().expect("stop");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
}

#[test]
fn ingress_deny_drops_matching_packets_and_counts_hits() {
    // Deny DNS over UDP from 10.0.0.0/16 arriving on p0; permit the rest.
    let dns =
        Rule { src: v4([10, 0, 0, 0], 16), proto: Some(UDP), dport: Range::one(53), ..Rule::any(false, Action::Deny) };
    let spec = spec("acl-deny", vec![acl("in", vec![dns])], vec![bind("p0", Direction::Ingress, "in", Action::Permit)]);
    let rt = Runtime::start(&spec).expect("start");
    let src = Peer::open("src", "acl-deny-in", PEER0);
    let dst = Peer::open("dst", "acl-deny-out", SINK_MAC);

    // Denied: five of different lengths, so the byte count is checked.
    let denied: Vec<Vec<u8>> = (0..5u8)
        .map(|i| ipv4(R0_MAC, [10, 0, i, 1], [10, 1, 0, 9], UDP, &udp(1000 + i as u16, 53, 40 * i as usize)))
        .collect();
    let passed: Vec<Vec<u8>> = vec![
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(1000, 80, 0)), // another port
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(1000, 52, 0)),
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(1000, 54, 0)),
        ipv4(R0_MAC, [10, 2, 0, 1], [10, 1, 0, 9], UDP, &udp(1000, 53, 0)), // outside 10.0.0.0/16
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], TCP, &tcp(1000, 53, SYN)), // not UDP
    ];
    // Interleaved, in one go.
    let mut all = Vec::new();
    for i in 0..denied.len().max(passed.len()) {
        all.extend(denied.get(i).cloned());
        all.extend(passed.get(i).cloned());
    }
    src.send(&all);
    let got = dst.expect(passed.len());
    expect_drops(&rt, "acl_deny", denied.len() as u64);
    for f in &got {
        let (s, _, _, dport) = tuple4(f);
        assert!(!(s[0..2] == [10, 0] && dport == 53 && f[23] == UDP), "a denied packet got through: {f:02x?}");
    }
    let hits = rt.acl().get("in").expect("acl in").rule_hits();
    assert_eq!(hits, vec![(denied.len() as u64, bytes(&denied.iter().collect::<Vec<_>>()))]);
    assert_eq!(drops(&rt, "acl_default_deny"), 0);
    stop(rt);
}

#[test]
fn default_deny_counts_packets_no_rule_matches() {
    let web = Rule { proto: Some(UDP), dport: Range { lo: 80, hi: 81 }, ..Rule::any(false, Action::Permit) };
    let spec =
        spec("acl-default", vec![acl("in", vec![web])], vec![bind("p0", Direction::Ingress, "in", Action::Deny)]);
    let rt = Runtime::start(&spec).expect("start");
    let src = Peer::open("src", "acl-default-in", PEER0);
    let dst = Peer::open("dst", "acl-default-out", SINK_MAC);
    let permitted: Vec<Vec<u8>> =
        (0..3u16).map(|i| ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(2000 + i, 80 + i % 2, 10))).collect();
    let unmatched: Vec<Vec<u8>> = vec![
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(2000, 82, 0)),
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(2000, 79, 0)),
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], TCP, &tcp(2000, 80, SYN)),
        ipv6(R0_MAC, "2001:db8::1", "2001:db8:1::9", UDP, &udp(2000, 80, 0)), // an IPv4 rule
    ];
    src.send(&[permitted.clone(), unmatched.clone()].concat());
    let got = dst.expect(permitted.len());
    expect_drops(&rt, "acl_default_deny", unmatched.len() as u64);
    assert_eq!(drops(&rt, "acl_deny"), 0);
    for f in &got {
        assert!((80..=81).contains(&tuple4(f).3));
    }
    let hits = rt.acl().get("in").expect("acl in").rule_hits();
    assert_eq!(hits, vec![(3, bytes(&permitted.iter().collect::<Vec<_>>()))]);
    stop(rt);
}

#[test]
fn egress_acl_filters_after_the_route_lookup() {
    // New SSH connections into 10.1.0.0/24 may not leave by p1.
    let ssh = Rule {
        dst: v4([10, 1, 0, 0], 24),
        proto: Some(TCP),
        dport: Range::one(22),
        tcp_flags: SYN,
        tcp_mask: SYN | ACK,
        ..Rule::any(false, Action::Deny)
    };
    let mut spec =
        spec("acl-egress", vec![acl("out", vec![ssh])], vec![bind("p1", Direction::Egress, "out", Action::Permit)]);
    spec.routes.push(return_route());
    let rt = Runtime::start(&spec).expect("start");
    let a = Peer::open("a", "acl-egress-in", PEER0);
    let b = Peer::open("b", "acl-egress-out", SINK_MAC);
    let syn = ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 5], TCP, &tcp(3000, 22, SYN));
    let passed = vec![
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 5], TCP, &tcp(3000, 22, ACK)), // not a SYN
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 5], TCP, &tcp(3000, 22, SYN | ACK)), // SYN-ACK
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 1, 5], TCP, &tcp(3000, 22, SYN)), // outside the /24
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 5], UDP, &udp(3000, 22, 0)),   // not TCP
        ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 5], TCP, &tcp(3000, 23, SYN)), // another port
    ];
    a.send(&[vec![syn.clone()], passed.clone()].concat());
    let got = b.expect(passed.len());
    expect_drops(&rt, "acl_deny", 1);
    assert!(got.iter().all(|f| !(tuple4(f).1 == [10, 1, 0, 5] && f[47] == SYN && f[23] == TCP && tuple4(f).3 == 22)));
    // The egress ACL of p1 does not filter what p1 receives: the same
    // SYN the other way (to 10.0.0.0/16, out of p0) passes.
    let back = ipv4(R1_MAC, [10, 1, 0, 5], [10, 0, 0, 1], TCP, &tcp(3000, 22, SYN));
    b.send(&[back]);
    a.expect(1);
    assert_eq!(rt.acl().get("out").expect("acl out").rule_hits(), vec![(1, syn.len() as u64)]);
    assert_eq!(drops(&rt, "acl_deny"), 1);
    stop(rt);
}

#[test]
fn stateful_rule_admits_replies_only_after_the_forward_packet() {
    // p0 (inside): UDP from 10.0.0.0/16 to 10.1.0.0/16 opens sessions,
    // all else denied. p1 (outside): no rules, default deny.
    let out = Rule {
        src: v4([10, 0, 0, 0], 16),
        dst: v4([10, 1, 0, 0], 16),
        proto: Some(UDP),
        ..Rule::any(false, Action::PermitStateful)
    };
    let mut spec = spec(
        "acl-state",
        vec![acl("inside", vec![out]), acl("outside", vec![])],
        vec![
            bind("p0", Direction::Ingress, "inside", Action::Deny),
            bind("p1", Direction::Ingress, "outside", Action::Deny),
        ],
    );
    spec.routes.push(return_route());
    let rt = Runtime::start(&spec).expect("start");
    let a = Peer::open("a", "acl-state-in", PEER0);
    let b = Peer::open("b", "acl-state-out", SINK_MAC);
    let fwd = ipv4(R0_MAC, [10, 0, 0, 5], [10, 1, 0, 9], UDP, &udp(4000, 5000, 0));
    let reply = ipv4(R1_MAC, [10, 1, 0, 9], [10, 0, 0, 5], UDP, &udp(5000, 4000, 0));

    // A "reply" before the flow exists is just a packet from outside.
    b.send(std::slice::from_ref(&reply));
    expect_drops(&rt, "acl_default_deny", 1);
    a.expect(0);

    // The forward packet creates the session...
    a.send(std::slice::from_ref(&fwd));
    b.expect(1);
    let now = dataplane::tsc::secs(dataplane::tsc::now());
    assert_eq!(rt.acl().sessions().expect("a stateful rule made the session table").len(now), 1, "one session");
    // ...which admits the reply, and more of the forward direction
    // without consulting the rules again.
    b.send(std::slice::from_ref(&reply));
    let got = a.expect(1);
    assert_eq!(tuple4(&got[0]), ([10, 1, 0, 9], [10, 0, 0, 5], 5000, 4000));
    a.send(std::slice::from_ref(&fwd));
    b.expect(1);
    assert_eq!(rt.acl().get("inside").expect("inside").rule_hits(), vec![(1, fwd.len() as u64)]);

    // Unrelated packets from outside: another port, another address,
    // another protocol with the same addresses and ports.
    let unrelated = vec![
        ipv4(R1_MAC, [10, 1, 0, 9], [10, 0, 0, 5], UDP, &udp(5000, 4001, 0)),
        ipv4(R1_MAC, [10, 1, 0, 8], [10, 0, 0, 5], UDP, &udp(5000, 4000, 0)),
        ipv4(R1_MAC, [10, 1, 0, 9], [10, 0, 0, 5], TCP, &tcp(5000, 4000, SYN)),
    ];
    b.send(&unrelated);
    expect_drops(&rt, "acl_default_deny", 1 + unrelated.len() as u64);
    a.expect(0);
    // The inside may not open flows the rule does not allow.
    a.send(&[ipv4(R0_MAC, [10, 0, 0, 5], [10, 1, 0, 9], TCP, &tcp(4000, 5000, SYN))]);
    expect_drops(&rt, "acl_default_deny", 2 + unrelated.len() as u64);
    b.expect(0);
    assert_eq!(drops(&rt, "acl_deny"), 0);
    assert_eq!(drops(&rt, "acl_session_full"), 0);
    stop(rt);
}

#[test]
fn acl_updates_apply_under_traffic_and_failed_updates_change_nothing() {
    let gen = GenConfig { rate_pps: 20_000, flows: 64, ..Default::default() };
    let mut spec = two_port_spec("acl-update", 1, 1, Some(gen));
    spec.acl = AclConfig {
        acls: vec![acl("gate", vec![Rule::any(false, Action::Deny)])],
        bindings: vec![bind("p0", Direction::Ingress, "gate", Action::Deny)],
        sessions: SessionConfig { capacity: 4096, ..SessionConfig::default() },
    };
    let rt = Runtime::start(&spec).expect("start");
    let rx_valid = |rt: &Runtime| rt.snapshot().generator.map_or(0, |g| g.rx_valid);
    let worker_rx = |rt: &Runtime| rt.snapshot().workers.iter().map(|w| w.rx_packets).collect::<Vec<_>>();

    wait_until("the deny-all ACL to drop 500 packets", || drops(&rt, "acl_deny") >= 500);
    assert_eq!(rx_valid(&rt), 0, "nothing passes deny-all");

    // Failed updates: each changes the ACL first, then fails; nothing of
    // it may be published or kept.
    let generation = rt.tables().current().generation;
    let e = rt.acl_update(|c| {
        c.set("gate", &[Rule::any(false, Action::Permit)])?;
        c.bind("p9", Direction::Ingress, Some(("gate", Action::Permit)))
    });
    assert_eq!(e, Err(AclError::NoSuchPort("p9".into())));
    let backwards = Rule { dport: Range { lo: 9, hi: 3 }, ..Rule::any(false, Action::Permit) };
    let e = rt.acl_update(|c| c.set("gate", &[backwards]));
    assert!(matches!(e, Err(AclError::Invalid(_))), "{e:?}");
    let e = rt.acl_update(|c| c.bind("p0", Direction::Ingress, Some(("nope", Action::Permit))));
    assert_eq!(e, Err(AclError::NoSuchAcl("nope".into())));
    assert_eq!(rt.tables().current().generation, generation, "a failed update published tables");
    assert_eq!(rt.acl().get("gate").expect("gate").rules(), &[Rule::any(false, Action::Deny)]);
    // Packets keep the old behaviour.
    let (denied, before) = (drops(&rt, "acl_deny"), worker_rx(&rt));
    wait_until("more denials after the failed updates", || drops(&rt, "acl_deny") >= denied + 500);
    assert_eq!(rx_valid(&rt), 0, "a failed update let packets through");
    let hits = rt.acl().get("gate").expect("gate").rule_hits();
    assert!(hits[0].0 >= denied + 500, "the same ACL keeps counting: {hits:?}");

    // deny-all → permit-all, while the generator sends.
    rt.acl_update(|c| c.set("gate", &[Rule::any(false, Action::Permit)])).expect("valid update");
    wait_until("permitted traffic to reach the sink", || rx_valid(&rt) >= 500);
    let settled = drops(&rt, "acl_deny");
    std::thread::sleep(QUIET);
    assert_eq!(drops(&rt, "acl_deny"), settled, "packets denied after the switch");
    // The same workers, never restarted: their counters only grew.
    let after = worker_rx(&rt);
    assert_eq!(after.len(), before.len());
    assert!(after.iter().zip(&before).all(|(a, b)| a > b), "{before:?} -> {after:?}");
    // The replaced ACL's counters start from zero and count the permits:
    // every packet received is either one of those or was denied.
    let hits = rt.acl().get("gate").expect("gate").rule_hits();
    let received: u64 = worker_rx(&rt).iter().sum();
    assert!(hits[0].0 >= 500 && hits[0].0 + settled <= received, "{hits:?}, denied {settled}, received {received}");

    let r = rt.stop().expect("stop");
    let g = r.final_stats.generator.clone().expect("generator");
    assert!(g.rx_valid >= 500 && g.rx_invalid == 0, "{g:?}");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
}

#[test]
fn ipv6_rules_match_ipv6_packets_only() {
    let dns6 = Rule {
        src: v6("2001:db8:0:1::", 64),
        dst: v6("2001:db8:1::", 48),
        proto: Some(UDP),
        dport: Range::one(53),
        ..Rule::any(true, Action::Deny)
    };
    let rest6 = Rule::any(true, Action::Permit);
    let mut spec =
        spec("acl-v6", vec![acl("in", vec![dns6, rest6])], vec![bind("p0", Direction::Ingress, "in", Action::Deny)]);
    spec.routes.push(RouteSpec {
        vrf: 0,
        addr: "2001:db8:1::".parse().expect("literal"),
        len: 48,
        target: RouteTarget::Forward { port: "p1".into(), mac: SINK_MAC },
    });
    let rt = Runtime::start(&spec).expect("start");
    let src = Peer::open("src", "acl-v6-in", PEER0);
    let dst = Peer::open("dst", "acl-v6-out", SINK_MAC);
    let denied = ipv6(R0_MAC, "2001:db8:0:1::5", "2001:db8:1::9", UDP, &udp(5353, 53, 20));
    let permitted = vec![
        ipv6(R0_MAC, "2001:db8:0:2::5", "2001:db8:1::9", UDP, &udp(5353, 53, 0)), // another source
        ipv6(R0_MAC, "2001:db8:0:1::5", "2001:db8:1::9", UDP, &udp(5353, 54, 0)), // another port
        ipv6(R0_MAC, "2001:db8:0:1::5", "2001:db8:1::9", TCP, &tcp(5353, 53, SYN)), // TCP
    ];
    // IPv4 matches neither rule (both are IPv6): the default denies it.
    let v4 = ipv4(R0_MAC, [10, 0, 0, 1], [10, 1, 0, 9], UDP, &udp(5353, 53, 0));
    src.send(&[vec![denied.clone(), v4], permitted.clone()].concat());
    let got = dst.expect(permitted.len());
    expect_drops(&rt, "acl_deny", 1);
    expect_drops(&rt, "acl_default_deny", 1);
    for f in &got {
        assert_eq!(u16::from_be_bytes([f[12], f[13]]), 0x86dd);
        assert_eq!(f[21], 63, "hop limit decremented");
    }
    let hits = rt.acl().get("in").expect("acl in").rule_hits();
    assert_eq!(hits, vec![(1, denied.len() as u64), (3, bytes(&permitted.iter().collect::<Vec<_>>()))]);
    stop(rt);
}
