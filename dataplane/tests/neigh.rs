//! Neighbours: the state machine, learning from golden ARP / ND frames,
//! the solicitations the fast path builds (byte-exact, and cross-checked
//! with scapy), the cross-worker solicitation rate limit, and the pending
//! queue (limits, order, expiry, every buffer back in its pool).

use dataplane::neigh::*;
use dataplane::rcu::Rcu;
use dataplane::wire::{self, checksum, Layers};
use ports::{HugepagePolicy, MacAddr, PagePool, Pkt, PoolConfig, PortId};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// The fake clock: 1000 ticks per second, so times below are milliseconds.
const HZ: u64 = 1000;
const P0: PortId = PortId(0);
const R_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const H_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xaa]);
const H2_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xbb]);

fn r4() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 254)
}
fn h4() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1)
}
fn r6() -> Ipv6Addr {
    "2001:db8::fe".parse().expect("a")
}
fn h6() -> Ipv6Addr {
    "2001:db8::1".parse().expect("a")
}
fn ip(s: &str) -> IpAddr {
    s.parse().expect("addr")
}
/// The router's addresses on port 0.
fn own() -> Vec<IpAddr> {
    vec![IpAddr::V4(r4()), IpAddr::V6(r6())]
}

fn cfg(capacity: u32) -> NeighConfig {
    NeighConfig {
        capacity,
        reachable_time: Duration::from_secs(30),
        gc_time: Duration::from_secs(60),
        max_probes: 3,
        solicit_interval: Duration::from_secs(1),
        rcu_timeout: Duration::from_millis(20),
    }
}

fn table(capacity: u32) -> NeighTable {
    NeighTable::with_hz(cfg(capacity), Rcu::new(), HZ).expect("table")
}

fn pool(buffers: u32) -> PagePool {
    PagePool::new(&PoolConfig {
        name: "neigh-test".into(),
        buffers,
        buf_size: 2048,
        headroom: 128,
        cache_size: 8,
        refill: 4,
        hugepages: HugepagePolicy::Never,
    })
    .expect("pool")
}

/// A packet whose first byte is `tag`.
fn tagged(pool: &PagePool, tag: u8) -> Pkt {
    let mut p = pool.alloc().expect("buffer");
    assert!(p.copy_from(&[tag; 64]));
    p
}

fn state(t: &NeighTable, port: PortId, a: IpAddr) -> Option<NeighState> {
    t.get(port, a).map(|i| i.state)
}

// ---------------------------------------------------------------------------
// Golden frames, by hand
// ---------------------------------------------------------------------------

/// Host 10.0.0.1 (02:..:aa) asks who has 10.0.0.254 (the router).
const ARP_REQUEST: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x06, // Ethernet
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet/IPv4, request
    2, 0, 0, 0, 0, 0xaa, 10, 0, 0, 1, // sender
    0, 0, 0, 0, 0, 0, 10, 0, 0, 254, // target
];

/// Host 10.0.0.1 answers the router's request.
const ARP_REPLY: [u8; 42] = [
    2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x06, // Ethernet
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, // Ethernet/IPv4, reply
    2, 0, 0, 0, 0, 0xaa, 10, 0, 0, 1, // sender
    2, 0, 0, 0, 0, 1, 10, 0, 0, 254, // target
];

/// Host 2001:db8::1 solicits 2001:db8::fe (the router), with its
/// source link-layer address. ICMPv6 checksum 0x1986 computed outside.
const NS: [u8; 86] = [
    0x33, 0x33, 0xff, 0x00, 0x00, 0xfe, 2, 0, 0, 0, 0, 0xaa, 0x86, 0xdd, // Ethernet
    0x60, 0, 0, 0, 0, 32, 58, 255, // IPv6: payload 32, ICMPv6, hop limit 255
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src 2001:db8::1
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0xfe, // dst ff02::1:ff00:fe
    135, 0, 0x19, 0x86, 0, 0, 0, 0, // NS
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, // target 2001:db8::fe
    1, 1, 2, 0, 0, 0, 0, 0xaa, // source link-layer address
];

/// Host 2001:db8::1 answers the router's NS: solicited + override, with
/// its target link-layer address. Checksum 0x88ce computed outside.
const NA: [u8; 86] = [
    2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x86, 0xdd, // Ethernet
    0x60, 0, 0, 0, 0, 32, 58, 255, // IPv6
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, // dst 2001:db8::fe
    136, 0, 0x88, 0xce, 0x60, 0, 0, 0, // NA, S|O
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // target 2001:db8::1
    2, 1, 2, 0, 0, 0, 0, 0xaa, // target link-layer address
];

/// Unsolicited NA (override) to all-nodes ff02::1. Checksum 0xf881.
const NA_UNSOLICITED: [u8; 86] = [
    0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x86, 0xdd, // Ethernet
    0x60, 0, 0, 0, 0, 32, 58, 255, // IPv6
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src 2001:db8::1
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst ff02::1
    136, 0, 0xf8, 0x81, 0x20, 0, 0, 0, // NA, O
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // target 2001:db8::1
    2, 1, 2, 0, 0, 0, 0, 0xaa, // target link-layer address
];

/// What the router must send to resolve 10.0.0.1: broadcast, padded to 60.
const EXPECTED_ARP_REQUEST: [u8; 60] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet/IPv4, request
    2, 0, 0, 0, 0, 1, 10, 0, 0, 254, // sender: the router
    0, 0, 0, 0, 0, 0, 10, 0, 0, 1, // target
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
];

/// What the router must send to resolve 2001:db8::1. Checksum 0x1b2c.
const EXPECTED_NS: [u8; 86] = [
    0x33, 0x33, 0xff, 0x00, 0x00, 0x01, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, // Ethernet
    0x60, 0, 0, 0, 0, 32, 58, 255, // IPv6
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, // src 2001:db8::fe
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x01, // dst ff02::1:ff00:1
    135, 0, 0x1b, 0x2c, 0, 0, 0, 0, // NS
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // target 2001:db8::1
    1, 1, 2, 0, 0, 0, 0, 1, // source link-layer address
];

fn layers(f: &[u8]) -> Layers {
    wire::parse_frame(f, true).expect("golden frame parses")
}

/// Runs `observe` on `f` (parsed) and returns the event it queued.
fn observed(f: &[u8]) -> Option<NeighEvent> {
    let ev = NeighEvents::new(8);
    let Ok(l) = wire::parse_frame(f, true) else { return None };
    let pushed = observe(f, &l, 0, &own(), &ev);
    let got = ev.pop();
    assert_eq!(pushed, got.is_some());
    assert!(ev.pop().is_none(), "at most one event per frame");
    got
}

/// Recomputes the ICMPv6 checksum of an 86-byte ND frame after a mutation.
fn fix_nd_checksum(f: &mut [u8]) {
    let (src, dst): ([u8; 16], [u8; 16]) = (f[22..38].try_into().expect("16"), f[38..54].try_into().expect("16"));
    let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
    f[56..58].fill(0);
    let c = checksum::l4_checksum_v6(src, dst, 58, &f[54..54 + plen]);
    f[56..58].copy_from_slice(&c.to_be_bytes());
}

// ---------------------------------------------------------------------------
// State machine
// ---------------------------------------------------------------------------

#[test]
fn incomplete_becomes_reachable_on_reply() {
    let mut t = table(16);
    let id = t.resolve_slot(P0, IpAddr::V4(h4())).expect("slot");
    let sh = t.shared().clone();
    assert_eq!(sh.lookup(id), NeighLookup::Incomplete);
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Incomplete));
    assert_eq!(sh.index().find_v4(P0, h4()), Some(id), "published in the index");
    assert_eq!(t.resolve_slot(P0, IpAddr::V4(h4())), Ok(id), "same entry, pinned twice");
    assert_eq!(t.get(P0, IpAddr::V4(h4())).expect("e").pinned, 2);

    assert_eq!(t.learn(P0, IpAddr::V4(h4()), H_MAC, Learned::ArpReply, 100), Ok(Some(id)));
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H_MAC, probe: false });
    assert_eq!(sh.state(id), Some(NeighState::Reachable));
    let info = t.get(P0, IpAddr::V4(h4())).expect("entry");
    assert_eq!((info.state, info.mac, info.since), (NeighState::Reachable, Some(H_MAC), 100));
}

#[test]
fn reachable_goes_stale_then_is_collected_unless_pinned() {
    let mut t = table(16);
    let sh = t.shared().clone();
    let a = t.learn(P0, ip("10.0.0.1"), H_MAC, Learned::ArpReply, 0).expect("ok").expect("created");
    let b = t.learn(P0, ip("10.0.0.2"), H2_MAC, Learned::ArpReply, 0).expect("ok").expect("created");
    assert_eq!(t.resolve_slot(P0, ip("10.0.0.2")), Ok(b), "b is used by a next hop");

    t.age(29_999);
    assert_eq!(sh.lookup(a), NeighLookup::Mac { mac: H_MAC, probe: false });
    t.age(30_000);
    assert_eq!(state(&t, P0, ip("10.0.0.1")), Some(NeighState::Stale));
    assert_eq!(sh.lookup(a), NeighLookup::Mac { mac: H_MAC, probe: true }, "still forwards, re-confirms");
    assert_eq!(sh.lookup(b), NeighLookup::Mac { mac: H2_MAC, probe: true });

    t.age(89_999);
    assert!(t.get(P0, ip("10.0.0.1")).is_some());
    t.age(90_000);
    assert_eq!(t.get(P0, ip("10.0.0.1")), None, "unpinned stale entry collected after gc_time");
    assert_eq!(sh.index().find(P0, ip("10.0.0.1")), None, "and unpublished");
    assert_eq!(sh.lookup(a), NeighLookup::Failed, "a freed slot drops, never forwards");
    assert_eq!(state(&t, P0, ip("10.0.0.2")), Some(NeighState::Stale), "pinned: kept");
    t.age(1_000_000);
    assert_eq!(state(&t, P0, ip("10.0.0.2")), Some(NeighState::Stale));

    // Unpinned, it goes too.
    t.release(b).expect("release");
    t.age(1_000_001);
    assert_eq!(t.get(P0, ip("10.0.0.2")), None);
    assert_eq!(t.stats().removed, 2);
    assert_eq!(t.release(b), Err(NeighError::UnknownId(b)));
}

#[test]
fn stale_entry_is_reconfirmed_by_answer_or_fails() {
    let mut t = table(16);
    let sh = t.shared().clone();
    let id = t.learn(P0, IpAddr::V4(h4()), H_MAC, Learned::ArpReply, 0).expect("ok").expect("new");
    t.age(30_000);
    // Traffic to a stale entry: the worker probes (rate limited).
    assert!(sh.should_solicit(id, 30_001, 1000));
    t.learn(P0, IpAddr::V4(h4()), H_MAC, Learned::ArpReply, 30_010).expect("ok");
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Reachable));
    t.age(60_010);
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Stale));
    for k in 0..3 {
        assert!(sh.should_solicit(id, 61_000 + k * 1000, 1000));
    }
    t.age(63_500);
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Stale), "last probe still has time");
    t.age(64_000);
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Failed));
    assert_eq!(sh.lookup(id), NeighLookup::Failed);
}

#[test]
fn static_entries_never_age_and_ignore_learning() {
    let mut t = table(16);
    let id = t.add_static(P0, IpAddr::V4(h4()), H_MAC).expect("static");
    let sh = t.shared().clone();
    for now in [0, 30_000, 1_000_000, u64::MAX / 2] {
        t.age(now);
    }
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H_MAC, probe: false });
    assert_eq!(t.learn(P0, IpAddr::V4(h4()), H2_MAC, Learned::ArpReply, 5), Ok(None));
    let na = Learned::NeighborAdvert { solicited: true, overrides: true };
    assert_eq!(t.learn(P0, IpAddr::V4(h4()), H2_MAC, na, 5), Ok(None));
    assert_eq!(sh.mac(id), Some(H_MAC));
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Static));
    // Re-adding changes the MAC in place.
    assert_eq!(t.add_static(P0, IpAddr::V4(h4()), H2_MAC), Ok(id));
    assert_eq!(sh.mac(id), Some(H2_MAC));
    assert_eq!(t.add_static(P0, ip("224.0.0.1"), H_MAC), Err(NeighError::InvalidAddress(ip("224.0.0.1"))));
    assert_eq!(t.add_static(P0, ip("10.0.0.9"), MacAddr::BROADCAST), Err(NeighError::InvalidMac(MacAddr::BROADCAST)));
    assert_eq!(t.add_static(P0, ip("10.0.0.9"), MacAddr([0; 6])), Err(NeighError::InvalidMac(MacAddr([0; 6]))));
}

#[test]
fn azure_gateways_are_static_at_the_platform_mac() {
    assert_eq!(AZURE_GATEWAY_MAC, "12:34:56:78:9a:bc".parse::<MacAddr>().expect("mac"));
    assert_eq!(AZURE_GATEWAY_V6, "fe80::1234:5678:9abc".parse::<Ipv6Addr>().expect("v6"));
    let mut t = table(16);
    let (g4, g6) = t.set_azure_gateways(PortId(1), Ipv4Addr::new(10, 1, 0, 1)).expect("gw");
    let sh = t.shared().clone();
    assert_eq!(sh.lookup(g4), NeighLookup::Mac { mac: AZURE_GATEWAY_MAC, probe: false });
    assert_eq!(sh.lookup(g6), NeighLookup::Mac { mac: AZURE_GATEWAY_MAC, probe: false });
    assert_eq!(sh.index().find_v6(PortId(1), AZURE_GATEWAY_V6), Some(g6));
    assert_eq!(sh.index().find_v6(PortId(0), AZURE_GATEWAY_V6), None, "per port");
    // A next hop via the gateway takes the same slot.
    assert_eq!(t.resolve_slot(PortId(1), IpAddr::V6(AZURE_GATEWAY_V6)), Ok(g6));
    t.age(u64::MAX / 2);
    assert_eq!(state(&t, PortId(1), ip("10.1.0.1")), Some(NeighState::Static));
}

#[test]
fn incomplete_fails_after_max_probes_and_recovers_on_answer() {
    let mut t = table(16);
    let id = t.resolve_slot(P0, IpAddr::V6(h6())).expect("slot");
    let sh = t.shared().clone();
    let iv = sh.solicit_interval();
    assert_eq!(iv, 1000, "1 s at the fake 1 kHz clock");
    assert!(sh.should_solicit(id, 1, iv));
    assert!(!sh.should_solicit(id, 999, iv), "rate limited");
    assert!(sh.should_solicit(id, 1001, iv));
    assert!(sh.should_solicit(id, 2001, iv));
    assert_eq!(sh.probes(id), 3);
    t.age(2500);
    assert_eq!(state(&t, P0, IpAddr::V6(h6())), Some(NeighState::Incomplete), "third probe not timed out yet");
    t.age(3001);
    assert_eq!(state(&t, P0, IpAddr::V6(h6())), Some(NeighState::Failed));
    assert_eq!(sh.lookup(id), NeighLookup::Failed);
    assert_eq!(t.stats().failed, 1);
    // Pinned: never collected while failed.
    t.age(1_000_000);
    assert_eq!(state(&t, P0, IpAddr::V6(h6())), Some(NeighState::Failed));
    // The worker keeps retrying under traffic; an answer brings it back.
    assert!(sh.should_solicit(id, 1_000_500, iv));
    let na = Learned::NeighborAdvert { solicited: true, overrides: true };
    assert_eq!(t.learn(P0, IpAddr::V6(h6()), H_MAC, na, 1_000_510), Ok(Some(id)));
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H_MAC, probe: false });
}

#[test]
fn unpinned_unused_entries_are_collected() {
    let mut t = table(16);
    let ev = NeighEvents::new(8);
    assert!(ev.push(NeighEvent::Miss { port: P0, ip: ip("10.0.0.7") }));
    assert_eq!(t.drain_events(&ev, 10), 1);
    let id = t.id_of(P0, ip("10.0.0.7")).expect("miss created an entry");
    assert_eq!(t.shared().index().find(P0, ip("10.0.0.7")), Some(id));
    assert_eq!(t.get(P0, ip("10.0.0.7")).expect("e").pinned, 0);
    // A solicitation at 500 counts as activity; nothing answers.
    assert!(t.shared().should_solicit(id, 500, 1000));
    t.age(60_009);
    assert!(t.get(P0, ip("10.0.0.7")).is_some(), "active 60 s ago at most");
    t.age(60_500);
    assert_eq!(t.get(P0, ip("10.0.0.7")), None);
}

#[test]
fn failed_unpinned_entries_are_collected() {
    let mut t = table(16);
    let ev = NeighEvents::new(2);
    assert!(ev.push(NeighEvent::Miss { port: P0, ip: ip("10.0.0.7") }));
    t.drain_events(&ev, 0);
    let id = t.id_of(P0, ip("10.0.0.7")).expect("entry");
    for k in 0..3 {
        assert!(t.shared().should_solicit(id, 1 + k * 1000, 1000));
    }
    t.age(3001);
    assert_eq!(state(&t, P0, ip("10.0.0.7")), Some(NeighState::Failed));
    t.age(63_000);
    assert!(t.get(P0, ip("10.0.0.7")).is_some(), "failed at 3001: kept for gc_time");
    t.age(63_001);
    assert_eq!(t.get(P0, ip("10.0.0.7")), None);
}

#[test]
fn full_table_is_an_error() {
    let mut t = table(2);
    t.resolve_slot(P0, ip("10.0.0.1")).expect("1");
    t.add_static(P0, ip("10.0.0.2"), H_MAC).expect("2");
    assert_eq!(t.resolve_slot(P0, ip("10.0.0.3")), Err(NeighError::Full { capacity: 2 }));
    assert_eq!(t.add_static(P0, ip("10.0.0.3"), H_MAC), Err(NeighError::Full { capacity: 2 }));
    assert_eq!(t.learn(P0, ip("10.0.0.3"), H_MAC, Learned::ArpReply, 0), Err(NeighError::Full { capacity: 2 }));
    // Existing entries still work.
    assert!(t.learn(P0, ip("10.0.0.1"), H_MAC, Learned::ArpReply, 0).expect("ok").is_some());
    assert_eq!(t.stats().full, 3);
    assert_eq!(t.len(), 2);
    assert_eq!(t.remove(P0, ip("10.0.0.9")), Err(NeighError::NotFound { port: P0, ip: ip("10.0.0.9") }));
    assert_eq!(t.resolve_slot(P0, ip("0.0.0.0")), Err(NeighError::InvalidAddress(ip("0.0.0.0"))));
    assert_eq!(t.resolve_slot(P0, ip("ff02::1")), Err(NeighError::InvalidAddress(ip("ff02::1"))));
    assert!(NeighTable::with_hz(NeighConfig { capacity: 0, ..cfg(1) }, Rcu::new(), HZ).is_err());
}

#[test]
fn freed_slot_is_reused_only_after_a_grace_period() {
    let rcu = Rcu::new();
    let mut t = NeighTable::with_hz(cfg(2), rcu.clone(), HZ).expect("table");
    let worker = rcu.register(); // a worker in the middle of a loop
    let a = t.add_static(P0, ip("10.0.0.1"), H_MAC).expect("a");
    t.add_static(P0, ip("10.0.0.2"), H_MAC).expect("b");
    let gen_a = t.shared().generation(a).expect("gen");
    t.remove(P0, ip("10.0.0.1")).expect("remove");
    assert_eq!(t.shared().lookup(a), NeighLookup::Failed);
    assert_ne!(t.shared().generation(a), Some(gen_a), "generation changes on free");

    // The worker may still hold `a` this loop: its slot cannot be reused.
    assert_eq!(t.add_static(P0, ip("10.0.0.3"), H2_MAC), Err(NeighError::Full { capacity: 2 }));
    assert_eq!(t.stats().rcu_timeouts, 1);
    // A failed grace period is not retried before the next age().
    assert_eq!(t.add_static(P0, ip("10.0.0.3"), H2_MAC), Err(NeighError::Full { capacity: 2 }));
    assert_eq!(t.stats().rcu_timeouts, 1);

    // The worker passes quiescent points (here: a thread, as in a real loop).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let th = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                worker.quiescent();
                std::thread::yield_now();
            }
        })
    };
    t.age(1); // reclaims
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    th.join().expect("worker");
    let c = t.add_static(P0, ip("10.0.0.3"), H2_MAC).expect("reused");
    assert_eq!(c, a, "the freed slot, after the grace period");
    assert_ne!(t.shared().generation(c), Some(gen_a));
    assert_eq!(t.shared().mac(c), Some(H2_MAC));
}

#[test]
fn removing_a_pinned_entry_keeps_its_slot_and_resolves_again() {
    let mut t = table(4);
    let id = t.add_static(P0, ip("10.0.0.1"), H_MAC).expect("static");
    assert_eq!(t.resolve_slot(P0, ip("10.0.0.1")), Ok(id));
    t.remove(P0, ip("10.0.0.1")).expect("remove");
    assert_eq!(t.id_of(P0, ip("10.0.0.1")), Some(id));
    assert_eq!(t.shared().lookup(id), NeighLookup::Incomplete);
    t.learn(P0, ip("10.0.0.1"), H2_MAC, Learned::ArpReply, 1).expect("ok");
    assert_eq!(t.shared().mac(id), Some(H2_MAC));
}

#[test]
fn arp_learning_follows_rfc_826() {
    let mut t = table(16);
    let sh = t.shared().clone();
    // A request for someone else from an unknown sender: nothing created.
    assert_eq!(t.learn(P0, ip("10.0.0.5"), H_MAC, Learned::ArpRequest { for_us: false }, 0), Ok(None));
    assert_eq!(t.len(), 0);
    // A request for us: created, stale (heard from, not confirmed).
    let id = t.learn(P0, ip("10.0.0.5"), H_MAC, Learned::ArpRequest { for_us: true }, 0).expect("ok").expect("new");
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H_MAC, probe: true });
    // A request for someone else updates an existing entry's MAC.
    assert_eq!(t.learn(P0, ip("10.0.0.5"), H2_MAC, Learned::ArpRequest { for_us: false }, 1), Ok(Some(id)));
    assert_eq!(sh.mac(id), Some(H2_MAC));
    // A reply confirms.
    t.learn(P0, ip("10.0.0.5"), H2_MAC, Learned::ArpReply, 2).expect("ok");
    assert_eq!(state(&t, P0, ip("10.0.0.5")), Some(NeighState::Reachable));
    // The same MAC again in a request: no change (stays reachable).
    assert_eq!(t.learn(P0, ip("10.0.0.5"), H2_MAC, Learned::ArpRequest { for_us: true }, 3), Ok(None));
    assert_eq!(state(&t, P0, ip("10.0.0.5")), Some(NeighState::Reachable));
    // An unsolicited reply creates (RFC 826 merges replies too).
    assert!(t.learn(P0, ip("10.0.0.6"), H_MAC, Learned::ArpReply, 3).expect("ok").is_some());
    // An incomplete entry is resolved by a request from it.
    let inc = t.resolve_slot(P0, ip("10.0.0.7")).expect("slot");
    t.learn(P0, ip("10.0.0.7"), H_MAC, Learned::ArpRequest { for_us: false }, 4).expect("ok");
    assert_eq!(sh.lookup(inc), NeighLookup::Mac { mac: H_MAC, probe: true });
    // Never a multicast MAC or a bad sender address.
    assert_eq!(t.learn(P0, ip("10.0.0.8"), MacAddr([1, 0, 0x5e, 0, 0, 1]), Learned::ArpReply, 5), Ok(None));
    assert_eq!(t.learn(P0, ip("255.255.255.255"), H_MAC, Learned::ArpReply, 5), Ok(None));
}

#[test]
fn na_learning_follows_rfc_4861_7_2_5() {
    let mut t = table(16);
    let sh = t.shared().clone();
    let na = |solicited, overrides| Learned::NeighborAdvert { solicited, overrides };
    let h = IpAddr::V6(h6());
    // No entry: an NA creates nothing.
    assert_eq!(t.learn(P0, h, H_MAC, na(true, true), 0), Ok(None));
    // Incomplete: solicited → reachable, unsolicited → stale.
    let id = t.resolve_slot(P0, h).expect("slot");
    t.learn(P0, h, H_MAC, na(false, false), 1).expect("ok");
    assert_eq!(state(&t, P0, h), Some(NeighState::Stale));
    t.learn(P0, h, H_MAC, na(true, false), 2).expect("ok");
    assert_eq!(state(&t, P0, h), Some(NeighState::Reachable));
    // Reachable, override clear, other MAC: stale, MAC kept.
    t.learn(P0, h, H2_MAC, na(true, false), 3).expect("ok");
    assert_eq!(state(&t, P0, h), Some(NeighState::Stale));
    assert_eq!(sh.mac(id), Some(H_MAC));
    // Stale, override clear, other MAC: ignored.
    assert_eq!(t.learn(P0, h, H2_MAC, na(true, false), 4), Ok(None));
    assert_eq!(sh.mac(id), Some(H_MAC));
    // Override set, solicited: new MAC, reachable.
    t.learn(P0, h, H2_MAC, na(true, true), 5).expect("ok");
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H2_MAC, probe: false });
    // Override set, unsolicited, other MAC: new MAC, stale.
    t.learn(P0, h, H_MAC, na(false, true), 6).expect("ok");
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H_MAC, probe: true });
    // Unsolicited, same MAC: nothing changes.
    assert_eq!(t.learn(P0, h, H_MAC, na(false, true), 7), Ok(None));
    // Solicited, same MAC, no override: confirms.
    t.learn(P0, h, H_MAC, na(true, false), 8).expect("ok");
    assert_eq!(state(&t, P0, h), Some(NeighState::Reachable));
    // NS from the neighbour with another MAC: stale with the new MAC.
    t.learn(P0, h, H2_MAC, Learned::NeighborSolicit, 9).expect("ok");
    assert_eq!(sh.lookup(id), NeighLookup::Mac { mac: H2_MAC, probe: true });
}

#[test]
fn entries_show_every_state() {
    let mut t = table(16);
    t.add_static(P0, ip("10.0.0.1"), H_MAC).expect("s");
    t.resolve_slot(P0, ip("10.0.0.2")).expect("i");
    t.learn(P0, ip("10.0.0.3"), H_MAC, Learned::ArpReply, 0).expect("r");
    let e = t.entries();
    let find = |a: &str| e.iter().find(|i| i.ip == ip(a)).expect("listed").clone();
    assert_eq!(e.len(), 3);
    assert_eq!((find("10.0.0.1").state, find("10.0.0.1").mac), (NeighState::Static, Some(H_MAC)));
    assert_eq!((find("10.0.0.2").state, find("10.0.0.2").pinned), (NeighState::Incomplete, 1));
    assert_eq!(find("10.0.0.3").state, NeighState::Reachable);
    assert_eq!(NeighState::Stale.to_string(), "stale");
}

// ---------------------------------------------------------------------------
// Events and observe
// ---------------------------------------------------------------------------

#[test]
fn observe_golden_arp_request_and_reply() {
    assert_eq!(
        observed(&ARP_REQUEST),
        Some(NeighEvent::Seen {
            port: P0,
            ip: IpAddr::V4(h4()),
            mac: H_MAC,
            how: Learned::ArpRequest { for_us: true }
        })
    );
    assert_eq!(
        observed(&ARP_REPLY),
        Some(NeighEvent::Seen { port: P0, ip: IpAddr::V4(h4()), mac: H_MAC, how: Learned::ArpReply })
    );
    // Padded to 60 bytes: the same.
    let mut padded = ARP_REPLY.to_vec();
    padded.resize(60, 0);
    assert!(observed(&padded).is_some());
    // A request for another host: update-only event.
    let mut other = ARP_REQUEST;
    other[41] = 77;
    assert_eq!(
        observed(&other),
        Some(NeighEvent::Seen {
            port: P0,
            ip: IpAddr::V4(h4()),
            mac: H_MAC,
            how: Learned::ArpRequest { for_us: false }
        })
    );
    // Gratuitous ARP (sender = target): not for us.
    let mut garp = ARP_REQUEST;
    garp[38..42].copy_from_slice(&[10, 0, 0, 1]);
    assert!(matches!(observed(&garp), Some(NeighEvent::Seen { how: Learned::ArpRequest { for_us: false }, .. })));
}

#[test]
fn observe_rejects_bad_arp() {
    let cases: [(&str, usize, u8); 7] = [
        ("oper 3", 21, 3),
        ("htype 6", 15, 6),
        ("multicast sender MAC", 22, 0x01),
        ("sender 0.0.0.0 (probe)", 28, 0),
        ("sender 224.x", 28, 224),
        ("sender 255.x", 28, 255),
        ("sender 127.x", 28, 127),
    ];
    for (what, at, v) in cases {
        let mut f = ARP_REQUEST;
        f[at] = v;
        if what.starts_with("sender 0.0.0.0") || what.starts_with("sender 255") {
            f[28..32].fill(v);
        }
        assert_eq!(observed(&f), None, "{what}");
    }
    // From one of our own addresses (a conflict, or our own frame).
    let mut f = ARP_REPLY;
    f[28..32].copy_from_slice(&r4().octets());
    assert_eq!(observed(&f), None, "own sender address");
    // Zero sender MAC.
    let mut f = ARP_REPLY;
    f[22..28].fill(0);
    assert_eq!(observed(&f), None, "zero MAC");
}

#[test]
fn observe_golden_ns_and_na() {
    assert!(checksum::verify_l4_v6(
        NS[22..38].try_into().expect("16"),
        NS[38..54].try_into().expect("16"),
        58,
        &NS[54..]
    ));
    assert_eq!(
        observed(&NS),
        Some(NeighEvent::Seen { port: P0, ip: IpAddr::V6(h6()), mac: H_MAC, how: Learned::NeighborSolicit })
    );
    assert_eq!(
        observed(&NA),
        Some(NeighEvent::Seen {
            port: P0,
            ip: IpAddr::V6(h6()),
            mac: H_MAC,
            how: Learned::NeighborAdvert { solicited: true, overrides: true }
        })
    );
    assert_eq!(
        observed(&NA_UNSOLICITED),
        Some(NeighEvent::Seen {
            port: P0,
            ip: IpAddr::V6(h6()),
            mac: H_MAC,
            how: Learned::NeighborAdvert { solicited: false, overrides: true }
        })
    );
}

#[test]
fn observe_rejects_bad_nd() {
    // (what, frame, mutation, fix the checksum afterwards)
    type Mutation = fn(&mut [u8]);
    let cases: Vec<(&str, [u8; 86], Mutation, bool)> = vec![
        ("hop limit 254", NS, |f| f[21] = 254, false),
        ("bad checksum", NS, |f| f[57] ^= 1, false),
        ("code 1", NS, |f| f[55] = 1, true),
        ("option length 0", NS, |f| f[79] = 0, true),
        ("option past the end", NS, |f| f[79] = 2, true),
        ("no source link-layer option", NS, |f| f[78] = 14, true),
        ("multicast source MAC option", NS, |f| f[80] = 0x33, true),
        ("target not ours", NS, |f| f[77] = 0x77, true),
        ("DAD: unspecified source", NS, |f| f[22..38].fill(0), true),
        ("multicast target", NS, |f| f[62] = 0xff, true),
        ("no target link-layer option", NA, |f| f[78] = 1, true),
        ("NA for our own address", NA, |f| f[77] = 0xfe, true),
        ("solicited NA to multicast", NA_UNSOLICITED, |f| f[58] = 0x60, true),
        ("router solicitation", NS, |f| f[54] = 133, true),
    ];
    for (what, frame, mutate, fix) in cases {
        let mut f = frame;
        mutate(&mut f);
        if fix {
            fix_nd_checksum(&mut f);
        }
        assert_eq!(observed(&f), None, "{what}");
    }
    // ND behind a fragment header is not ND.
    let l = Layers { frag: wire::Frag::First, ..layers(&NS) };
    assert!(!observe(&NS, &l, 0, &own(), &NeighEvents::new(2)));
}

#[test]
fn observe_never_panics_on_truncated_frames_or_wrong_layers() {
    let ev = NeighEvents::new(4096);
    for golden in [&ARP_REQUEST[..], &ARP_REPLY[..], &NS[..], &NA[..], &NA_UNSOLICITED[..]] {
        let full = layers(golden);
        for n in 0..golden.len() {
            let cut = &golden[..n];
            // The layers of the full frame on a truncated one: no event.
            assert!(!observe(cut, &full, 0, &own(), &ev), "cut at {n}");
            // And whatever the parser says about the truncated frame.
            if let Ok(l) = wire::parse_frame(cut, true) {
                assert!(!observe(cut, &l, 0, &own(), &ev), "parsed cut at {n}");
            }
        }
    }
    assert_eq!(ev.len(), 0);
}

proptest! {
    #[test]
    fn observe_is_total(
        frame in proptest::collection::vec(any::<u8>(), 0..200),
        l3 in 0u8..4, l3_off in any::<u16>(), l3_len in any::<u16>(), l4_off in any::<u16>(), proto in any::<u8>(),
    ) {
        let ev = NeighEvents::new(4);
        let l3 = [wire::L3Kind::Other, wire::L3Kind::Ipv4, wire::L3Kind::Ipv6, wire::L3Kind::Arp][l3 as usize];
        let l = Layers { l3, l3_off, l3_len, l4_off, l4_proto: proto, ..Layers::default() };
        let _ = observe(&frame, &l, 0, &own(), &ev);
        if let Ok(l) = wire::parse_frame(&frame, false) {
            let _ = observe(&frame, &l, 0, &own(), &ev);
        }
    }

    #[test]
    fn observe_survives_mutated_golden_frames(which in 0usize..4, at in 0usize..86, v in any::<u8>()) {
        let mut f = [&ARP_REQUEST[..], &ARP_REPLY[..], &NS[..], &NA[..]][which].to_vec();
        let at = at % f.len();
        f[at] = v;
        let ev = NeighEvents::new(4);
        if let Ok(l) = wire::parse_frame(&f, true) {
            let _ = observe(&f, &l, 0, &own(), &ev);
        }
    }
}

#[test]
fn event_queue_is_bounded_and_counts_drops() {
    let ev = NeighEvents::new(2);
    let l = layers(&ARP_REPLY);
    assert!(observe(&ARP_REPLY, &l, 0, &own(), &ev));
    assert!(observe(&ARP_REPLY, &l, 0, &own(), &ev));
    assert!(!observe(&ARP_REPLY, &l, 0, &own(), &ev), "full");
    assert_eq!((ev.len(), ev.dropped()), (2, 1));
    let mut t = table(16);
    assert_eq!(t.drain_events(&ev, 5), 2);
    assert!(ev.is_empty());
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Reachable));
}

#[test]
fn observed_frames_drive_the_table() {
    let mut t = table(16);
    let id = t.resolve_slot(P0, IpAddr::V6(h6())).expect("slot");
    let ev = NeighEvents::new(16);
    for f in [&NA[..], &ARP_REQUEST[..]] {
        assert!(observe(f, &layers(f), 0, &own(), &ev));
    }
    assert!(ev.push(NeighEvent::Miss { port: PortId(1), ip: ip("192.0.2.9") }));
    assert!(ev.push(NeighEvent::Miss { port: PortId(1), ip: ip("192.0.2.9") }), "idempotent");
    assert!(ev.push(NeighEvent::Miss { port: PortId(1), ip: ip("224.0.0.5") }), "never an entry");
    assert_eq!(t.drain_events(&ev, 100), 5);
    assert_eq!(t.shared().lookup(id), NeighLookup::Mac { mac: H_MAC, probe: false });
    assert_eq!(state(&t, P0, IpAddr::V4(h4())), Some(NeighState::Stale), "request for us");
    assert_eq!(state(&t, PortId(1), ip("192.0.2.9")), Some(NeighState::Incomplete));
    assert_eq!(t.len(), 3);
}

// ---------------------------------------------------------------------------
// Building solicitations
// ---------------------------------------------------------------------------

#[test]
fn arp_request_is_byte_exact() {
    let pool = pool(4);
    let seed = pool.alloc().expect("buffer");
    let mut p = seed.alloc_sibling().expect("sibling");
    assert!(p.copy_from(&[0xee; 300]), "old contents are replaced");
    assert!(build_arp_request(&mut p, R_MAC, r4(), h4()));
    assert_eq!(p.data(), &EXPECTED_ARP_REQUEST[..]);
    let l = layers(p.data());
    assert_eq!(l.l3, wire::L3Kind::Arp);

    let mut u = pool.alloc().expect("buffer");
    assert!(build_arp_probe(&mut u, H_MAC, R_MAC, r4(), h4()));
    let mut expected = EXPECTED_ARP_REQUEST;
    expected[0..6].copy_from_slice(&H_MAC.0);
    assert_eq!(u.data(), &expected[..], "unicast poll: only the destination differs");
    drop((seed, p, u));
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn neighbor_solicit_is_byte_exact_with_a_valid_checksum() {
    let pool = pool(4);
    let mut p = pool.alloc().expect("buffer");
    assert!(build_neighbor_solicit(&mut p, R_MAC, r6(), h6()));
    let d = p.data();
    assert_eq!(d, &EXPECTED_NS[..]);
    let (src, dst): ([u8; 16], [u8; 16]) = (d[22..38].try_into().expect("16"), d[38..54].try_into().expect("16"));
    assert!(checksum::verify_l4_v6(src, dst, 58, &d[54..]));
    assert_eq!(solicited_node(h6()), "ff02::1:ff00:1".parse::<Ipv6Addr>().expect("a"));
    let l = layers(d);
    assert_eq!((l.l3, l.l4_proto, l.l4_off), (wire::L3Kind::Ipv6, 58, 54));

    // The host would learn us from it: observe it with the host's addresses.
    let ev = NeighEvents::new(2);
    assert!(observe(d, &l, 3, &[IpAddr::V6(h6())], &ev));
    assert_eq!(
        ev.pop(),
        Some(NeighEvent::Seen { port: PortId(3), ip: IpAddr::V6(r6()), mac: R_MAC, how: Learned::NeighborSolicit })
    );

    // Unicast probe: to the target itself at its MAC.
    let mut u = pool.alloc().expect("buffer");
    assert!(build_neighbor_probe(&mut u, H_MAC, R_MAC, r6(), h6()));
    let d = u.data();
    assert_eq!(&d[0..6], &H_MAC.0);
    assert_eq!(&d[38..54], &h6().octets());
    assert_eq!(&d[56..58], &[0xeb, 0x77], "checksum computed outside");
    assert!(checksum::verify_l4_v6(r6().octets(), h6().octets(), 58, &d[54..]));
    assert_eq!(&d[54..56], &EXPECTED_NS[54..56]);
    assert_eq!(&d[58..], &EXPECTED_NS[58..]);
    drop((p, u));
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn build_solicit_picks_frame_and_source_from_the_slot() {
    let pool = pool(8);
    let mut t = table(16);
    let a4 = t.resolve_slot(P0, IpAddr::V4(h4())).expect("v4");
    let a6 = t.resolve_slot(P0, IpAddr::V6(h6())).expect("v6");
    let sh = t.shared().clone();
    assert_eq!((sh.addr(a4), sh.addr(a6)), (Some(IpAddr::V4(h4())), Some(IpAddr::V6(h6()))));
    let own = [ip("2001:db8::fe"), ip("fe80::1"), ip("10.0.0.254"), ip("10.9.9.9")];
    let mut p = pool.alloc().expect("buffer");
    // Unresolved: broadcast ARP / multicast NS, from the first address of the family.
    assert!(build_solicit(&mut p, &sh, a4, R_MAC, &own));
    assert_eq!(p.data(), &EXPECTED_ARP_REQUEST[..]);
    assert!(build_solicit(&mut p, &sh, a6, R_MAC, &own));
    assert_eq!(p.data(), &EXPECTED_NS[..]);
    // Stale: unicast to the known MAC.
    t.learn(P0, IpAddr::V4(h4()), H_MAC, Learned::ArpRequest { for_us: true }, 1).expect("ok");
    assert!(build_solicit(&mut p, &sh, a4, R_MAC, &own));
    assert_eq!(&p.data()[0..6], &H_MAC.0);
    assert_eq!(&p.data()[6..], &EXPECTED_ARP_REQUEST[6..]);
    // A link-local neighbour is solicited from a link-local source.
    let ll = t.resolve_slot(P0, ip("fe80::77")).expect("ll");
    assert!(build_solicit(&mut p, &sh, ll, R_MAC, &own));
    assert_eq!(&p.data()[22..38], &ip6("fe80::1").octets());
    let d = p.data();
    assert!(checksum::verify_l4_v6(d[22..38].try_into().expect("16"), d[38..54].try_into().expect("16"), 58, &d[54..]));
    // No source of the family, or a free slot: nothing to send.
    assert!(!build_solicit(&mut p, &sh, a4, R_MAC, &[IpAddr::V6(r6())]));
    assert!(!build_solicit(&mut p, &sh, NeighId(15), R_MAC, &own));
    assert_eq!(sh.addr(NeighId(15)), None);
    drop(p);
    assert_eq!(pool.in_use(), 0);
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("v6")
}

#[test]
fn builders_refuse_a_buffer_too_small() {
    let pool = pool(2);
    let mut p = pool.alloc().expect("buffer");
    // Move the data start near the end of the buffer: 30 bytes of room.
    let room = p.len() + p.tailroom();
    assert!(p.set_len(room));
    assert!(p.adj(room - 30));
    assert!(!build_arp_request(&mut p, R_MAC, r4(), h4()));
    assert!(!build_neighbor_solicit(&mut p, R_MAC, r6(), h6()));
    drop(p);
    assert_eq!(pool.in_use(), 0);
}

/// Cross-checks the built frames with an independent parser. Needs
/// Debian's python3-scapy: fails (does not skip) when it is missing.
#[test]
fn scapy_agrees_with_built_frames() {
    let probe = std::process::Command::new("/usr/bin/python3").args(["-c", "import scapy.all"]).output();
    let detail = match &probe {
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("cannot run /usr/bin/python3: {e}"),
    };
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "scapy is required for this test: apt-get install -y python3-scapy ({detail})"
    );
    let pool = pool(4);
    let (mut a, mut n) = (pool.alloc().expect("b"), pool.alloc().expect("b"));
    assert!(build_arp_request(&mut a, R_MAC, r4(), h4()));
    assert!(build_neighbor_solicit(&mut n, R_MAC, r6(), h6()));
    let dir = std::env::temp_dir().join(format!("neigh-scapy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (fa, fn_) = (dir.join("arp.bin"), dir.join("ns.bin"));
    std::fs::write(&fa, a.data()).expect("write");
    std::fs::write(&fn_, n.data()).expect("write");
    let script = r#"
import sys
from scapy.all import Ether, ARP, IPv6, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, raw
def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: scapy says {got!r}, expected {want!r}")
a = Ether(open(sys.argv[1], 'rb').read())
check("arp eth dst", a.dst, "ff:ff:ff:ff:ff:ff")
check("arp eth src", a.src, "02:00:00:00:00:01")
check("arp layer", bool(a.haslayer(ARP)), True)
r = a[ARP]
check("arp op", r.op, 1)
check("arp hwtype", r.hwtype, 1)
check("arp ptype", r.ptype, 0x0800)
check("arp hwsrc", r.hwsrc, "02:00:00:00:00:01")
check("arp psrc", r.psrc, "10.0.0.254")
check("arp hwdst", r.hwdst, "00:00:00:00:00:00")
check("arp pdst", r.pdst, "10.0.0.1")
n = Ether(open(sys.argv[2], 'rb').read())
check("ns eth dst", n.dst, "33:33:ff:00:00:01")
check("ns eth src", n.src, "02:00:00:00:00:01")
i = n[IPv6]
check("ns ip src", i.src, "2001:db8::fe")
check("ns ip dst", i.dst, "ff02::1:ff00:1")
check("ns hlim", i.hlim, 255)
check("ns plen", i.plen, 32)
check("ns nh", i.nh, 58)
check("ns layer", bool(n.haslayer(ICMPv6ND_NS)), True)
s = n[ICMPv6ND_NS]
check("ns type", s.type, 135)
check("ns code", s.code, 0)
check("ns target", s.tgt, "2001:db8::1")
check("ns slla", n[ICMPv6NDOptSrcLLAddr].lladdr, "02:00:00:00:00:01")
got = s.cksum
s.cksum = None
check("ns checksum (recomputed by scapy)", Ether(raw(n))[ICMPv6ND_NS].cksum, got)
print("ok")
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(&fa)
        .arg(&fn_)
        .output()
        .expect("run python3");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "scapy disagrees: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop((a, n));
    assert_eq!(pool.in_use(), 0);
}

// ---------------------------------------------------------------------------
// Solicitation rate limit across workers
// ---------------------------------------------------------------------------

#[test]
fn should_solicit_has_one_winner_per_interval_across_threads() {
    let mut t = table(16);
    let id = t.resolve_slot(P0, IpAddr::V4(h4())).expect("slot");
    let sh = t.shared().clone();
    const ROUNDS: u64 = 2000;
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (sh, barrier) = (sh.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut won = Vec::with_capacity(ROUNDS as usize);
                for r in 0..ROUNDS {
                    barrier.wait();
                    // Round r happens at time 10 r (+1, so never 0): every
                    // round is a new interval of 10; within a round both
                    // threads also try again 5 ticks later (same interval).
                    let now = 1 + r * 10;
                    let a = sh.should_solicit(id, now, 10);
                    let b = sh.should_solicit(id, now + 5, 10);
                    won.push(u32::from(a) + u32::from(b));
                }
                won
            })
        })
        .collect();
    let wins: Vec<Vec<u32>> = threads.into_iter().map(|t| t.join().expect("thread")).collect();
    for (r, (a, b)) in wins[0].iter().zip(&wins[1]).enumerate() {
        assert_eq!(a + b, 1, "round {r}: exactly one winner");
    }
    assert_eq!(sh.probes(id), ROUNDS as u32, "each win counts as a probe");

    // Free running on the real clock: never more than one per interval.
    let hz = dataplane::tsc::hz();
    let interval = hz / 200; // 5 ms
    let t0 = dataplane::tsc::now();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let sh = sh.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                let end = std::time::Instant::now() + Duration::from_millis(60);
                while std::time::Instant::now() < end {
                    n += u64::from(sh.should_solicit(id, dataplane::tsc::now(), interval));
                }
                n
            })
        })
        .collect();
    let total: u64 = runs.into_iter().map(|t| t.join().expect("thread")).sum();
    let elapsed = dataplane::tsc::now() - t0;
    assert!(total >= 1 && total <= elapsed / interval + 1, "{total} wins in {elapsed} ticks, interval {interval}");
}

// ---------------------------------------------------------------------------
// Pending queue
// ---------------------------------------------------------------------------

/// A table with neighbours A, B, C on port 0 (incomplete, pinned).
fn three() -> (NeighTable, [NeighId; 3]) {
    let mut t = table(16);
    let ids = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(|a| t.resolve_slot(P0, ip(a)).expect("slot"));
    (t, ids)
}

#[test]
fn pending_queue_limits_total_and_per_neighbour() {
    let pool = pool(16);
    let (t, [a, b, c]) = three();
    let sh = t.shared().clone();
    let mut q = PendingQueue::new(4, 2);
    assert!(q.push(&sh, a, tagged(&pool, 1), PortId(1), 0).is_ok());
    assert!(q.push(&sh, a, tagged(&pool, 2), PortId(1), 0).is_ok());
    let back = q.push(&sh, a, tagged(&pool, 3), PortId(1), 0).expect_err("per-neighbour limit");
    assert_eq!(back.data()[0], 3, "the caller gets its packet back to drop and count");
    drop(back);
    assert!(q.push(&sh, b, tagged(&pool, 4), PortId(1), 0).is_ok());
    assert!(q.push(&sh, b, tagged(&pool, 5), PortId(1), 0).is_ok());
    assert!(q.push(&sh, c, tagged(&pool, 6), PortId(1), 0).is_err(), "total limit");
    assert!(q.push(&sh, NeighId(999), tagged(&pool, 7), PortId(1), 0).is_err(), "unknown id");
    assert_eq!((q.len(), q.queued_for(&sh, a), q.queued_for(&sh, c)), (4, 2, 0));
    assert_eq!(pool.in_use(), 4);
    assert_eq!(q.clear(), 4);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn pending_queue_releases_in_order_per_neighbour() {
    let pool = pool(16);
    let (mut t, [a, b, c]) = three();
    let sh = t.shared().clone();
    let mut q = PendingQueue::new(16, 4);
    for (id, tag) in [(a, 1), (b, 2), (a, 3), (c, 4), (b, 5), (a, 6)] {
        q.push(&sh, id, tagged(&pool, tag), PortId(id.0 as u16 + 1), 0).expect("room");
    }
    let mut out = Vec::new();
    let mut send = |p: Pkt, port: PortId, mac: MacAddr| -> Result<(), Pkt> {
        out.push((p.data()[0], port, mac));
        Ok(())
    };
    assert_eq!(q.drain_resolved(&sh, &mut send), 0, "nothing resolved yet");
    t.learn(P0, ip("10.0.0.2"), H2_MAC, Learned::ArpReply, 1).expect("ok");
    assert_eq!(q.drain_resolved(&sh, &mut send), 2);
    t.learn(P0, ip("10.0.0.1"), H_MAC, Learned::ArpReply, 1).expect("ok");
    assert_eq!(q.drain_resolved(&sh, &mut send), 3);
    let pb = PortId(b.0 as u16 + 1);
    let pa = PortId(a.0 as u16 + 1);
    assert_eq!(
        out,
        vec![(2, pb, H2_MAC), (5, pb, H2_MAC), (1, pa, H_MAC), (3, pa, H_MAC), (6, pa, H_MAC)],
        "per neighbour in arrival order, with the out port and the MAC"
    );
    assert_eq!(q.len(), 1, "c still waits");
    drop(out);
    assert_eq!(pool.in_use(), 1);
    drop(q);
    assert_eq!(pool.in_use(), 0, "dropping the queue returns its buffers");
}

#[test]
fn pending_queue_keeps_order_when_the_sender_refuses() {
    let pool = pool(16);
    let (mut t, [a, b, _]) = three();
    let sh = t.shared().clone();
    let mut q = PendingQueue::new(16, 8);
    for (id, tag) in [(a, 1), (b, 2), (a, 3), (b, 4)] {
        q.push(&sh, id, tagged(&pool, tag), PortId(0), 0).expect("room");
    }
    t.learn(P0, ip("10.0.0.1"), H_MAC, Learned::ArpReply, 1).expect("ok");
    t.learn(P0, ip("10.0.0.2"), H2_MAC, Learned::ArpReply, 1).expect("ok");
    let mut sent = Vec::new();
    // Room for two packets only (a TX burst filling up).
    let n = q.drain_resolved(&sh, |p, _, _| {
        if sent.len() == 2 {
            return Err(p);
        }
        sent.push(p.data()[0]);
        Ok(())
    });
    assert_eq!((n, sent.clone()), (2, vec![1, 2]));
    let n = q.drain_resolved(&sh, |p, _, _| {
        sent.push(p.data()[0]);
        Ok(())
    });
    assert_eq!((n, sent), (2, vec![1, 2, 3, 4]));
    assert!(q.is_empty());
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn pending_queue_expires_old_and_failed() {
    let pool = pool(16);
    let (mut t, [a, b, c]) = three();
    let sh = t.shared().clone();
    let mut q = PendingQueue::default();
    q.push(&sh, a, tagged(&pool, 1), PortId(0), 0).expect("room");
    q.push(&sh, b, tagged(&pool, 2), PortId(0), 2000).expect("room");
    q.push(&sh, c, tagged(&pool, 3), PortId(0), 2000).expect("room");
    q.push(&sh, a, tagged(&pool, 4), PortId(0), 2500).expect("room");
    assert_eq!(q.expire(&sh, 3000, 3000), Expired::default(), "nothing older than 3 s");
    // c fails after three unanswered probes.
    for k in 0..3 {
        assert!(sh.should_solicit(c, 1 + k * 1000, 1000));
    }
    t.age(3001);
    assert_eq!(sh.lookup(c), NeighLookup::Failed);
    let e = q.expire(&sh, 3001, 3000);
    assert_eq!(e, Expired { timed_out: 1, failed: 1 });
    assert_eq!(e.total(), 2);
    assert_eq!((q.len(), pool.in_use()), (2, 2));
    assert_eq!(q.expire(&sh, 5501, 3000), Expired { timed_out: 2, failed: 0 });
    assert!(q.is_empty());
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn pending_packets_never_reach_a_reused_slot() {
    let pool = pool(8);
    let rcu = Rcu::new();
    let mut t = NeighTable::with_hz(cfg(1), rcu, HZ).expect("table");
    let ev = NeighEvents::new(2);
    ev.push(NeighEvent::Miss { port: P0, ip: ip("10.0.0.1") });
    t.drain_events(&ev, 0);
    let id = t.id_of(P0, ip("10.0.0.1")).expect("entry");
    let sh = t.shared().clone();
    let mut q = PendingQueue::default();
    q.push(&sh, id, tagged(&pool, 1), PortId(0), 59_000).expect("room");
    // Never answered, never used again: collected; the slot goes to someone else.
    t.age(60_000);
    assert_eq!(t.len(), 0);
    let other = t.add_static(P0, ip("10.0.0.99"), H2_MAC).expect("reuses the only slot");
    assert_eq!(other, id);
    let mut sent = 0;
    q.drain_resolved(&sh, |_, _, _| {
        sent += 1;
        Ok(())
    });
    assert_eq!(sent, 0, "never sent to the new occupant of the slot");
    assert_eq!(q.expire(&sh, 60_001, 3000), Expired { timed_out: 0, failed: 1 });
    assert_eq!(pool.in_use(), 0);
}
