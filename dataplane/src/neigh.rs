//! Neighbours: ARP (RFC 826) for IPv4 and Neighbor Discovery (RFC 4861)
//! for IPv6.
//!
//! # Shape
//!
//! - [`NeighShared`]: a fixed array of slots shared by the control side and
//!   every worker. A slot is addressed by a [`NeighId`]; its `mac` word
//!   (valid/failed/probe bits + 48-bit MAC) is what a worker reads, with one
//!   Acquire load per packet ([`NeighShared::lookup`]). Slots also carry the
//!   time of the last solicitation (so workers agree, with one
//!   compare-exchange, on who sends the next ARP request / NS:
//!   [`NeighShared::should_solicit`]), a probe count, and a generation that
//!   changes whenever the slot is freed or reused.
//! - [`NeighIndex`]: an immutable open-addressing hash `(port, ip) → NeighId`
//!   that the control side rebuilds and publishes (arc-swap) after changes.
//!   Workers need it only for destinations on connected subnets, whose next
//!   hop is the destination itself; next hops via a gateway carry their
//!   `NeighId` directly ([`NeighTable::resolve_slot`]).
//! - [`NeighTable`]: the control side (single writer): the state machine,
//!   static entries, aging, garbage collection, and slot reuse after an RCU
//!   grace period ([`crate::rcu::Rcu::synchronize`]).
//! - [`NeighEvents`]: a bounded lock-free queue from workers to the control
//!   side. Workers push what they learn from ARP / NS / NA frames
//!   ([`observe`]) and destinations on connected subnets that have no entry
//!   yet ([`NeighEvent::Miss`], rate limited by a per-worker [`MissFilter`]).
//! - Fast-path helpers: [`build_arp_request`] / [`build_neighbor_solicit`]
//!   (and unicast variants for re-confirming stale entries), and
//!   [`PendingQueue`], a per-worker fixed-capacity queue of packets waiting
//!   for resolution.
//!
//! Nothing a worker calls allocates, locks, logs or dispatches dynamically.
//!
//! # States (what the worker sees)
//!
//! | state        | `lookup`                 | worker does                                   |
//! |--------------|--------------------------|-----------------------------------------------|
//! | `Static`     | `Mac { probe: false }`   | forward                                       |
//! | `Reachable`  | `Mac { probe: false }`   | forward                                       |
//! | `Stale`      | `Mac { probe: true }`    | forward; re-confirm (rate-limited unicast solicitation) |
//! | `Incomplete` | `Incomplete`             | queue ([`PendingQueue`]); solicit (rate limited) |
//! | `Failed`     | `Failed`                 | drop as `neigh_unresolved`; solicit (rate limited) to retry |
//!
//! # Transitions (control side)
//!
//! - New entries: `Incomplete` from [`NeighTable::resolve_slot`] (pinned by
//!   a next hop) or a [`NeighEvent::Miss`] (unpinned); from ARP / ND as below.
//! - `Reachable` → `Stale` after `reachable_time` without confirmation.
//! - `Incomplete` / `Stale` → `Failed` once the workers sent `max_probes`
//!   solicitations and the last one had `solicit_interval` to be answered.
//! - Unpinned, non-static `Incomplete` / `Stale` / `Failed` entries with no
//!   activity (state change or solicitation) for `gc_time` are removed.
//! - A removed slot is marked failed at once and reused only after an RCU
//!   grace period; its generation changes, so packets still queued for it in
//!   a worker's [`PendingQueue`] are dropped, never sent to the new occupant.
//!
//! # What learning implements (RFC 826, RFC 4861 §7.2.3–7.2.5, loosely)
//!
//! Static entries never change by learning. Otherwise:
//! - ARP reply: create or update → `Reachable` with the sender's MAC.
//! - ARP request whose target is one of our addresses: create or update the
//!   sender (RFC 826 "merge", then "am I the target? add"). A new entry, a
//!   changed MAC, or an `Incomplete`/`Failed` entry becomes `Stale` (heard
//!   from, reachability not confirmed — as Linux does).
//! - ARP request for another target: update an existing entry only (same
//!   rules); never create one.
//! - NS for one of our addresses with a source link-layer option: as an ARP
//!   request for us (RFC 4861 §7.2.3).
//! - NA (needs a target link-layer option; one without is ignored):
//!   no entry → ignored; `Incomplete`/`Failed` → `Reachable` if solicited
//!   else `Stale`; otherwise with Override clear and a different MAC: a
//!   `Reachable` entry becomes `Stale` keeping its MAC, others unchanged;
//!   with Override set or the same MAC: the MAC is taken and the entry
//!   becomes `Reachable` if solicited, `Stale` if the MAC changed, else
//!   unchanged (§7.2.5). The Router flag is not tracked (no default-router
//!   list here).
//!
//! Frames from our own addresses (address conflicts, reflected frames),
//! from unspecified / multicast / broadcast senders, or with a multicast or
//! zero MAC are never learned.

use crate::rcu::Rcu;
use crate::tsc;
use crate::wire::{checksum, ip_proto, Frag, L3Kind, Layers};
use arc_swap::{ArcSwap, Guard};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use ports::{MacAddr, Pkt, PortId};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The MAC address Azure answers every ARP request and NS with.
pub const AZURE_GATEWAY_MAC: MacAddr = MacAddr([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]);

/// Azure's IPv6 default gateway (reached at [`AZURE_GATEWAY_MAC`]).
pub const AZURE_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0x1234, 0x5678, 0x9abc);

/// Length of a built ARP request: 42 bytes padded to the 60-byte Ethernet
/// minimum (without FCS), so no driver has to pad it.
pub const ARP_FRAME_LEN: usize = 60;

/// Length of a built NS: Ethernet 14 + IPv6 40 + NS 24 + source
/// link-layer address option 8.
pub const NS_FRAME_LEN: usize = 86;

/// An index into the neighbour slots ([`NeighShared`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighId(pub u32);

impl fmt::Display for NeighId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

// ---------------------------------------------------------------------------
// Shared slots
// ---------------------------------------------------------------------------

/// The slot holds a usable MAC.
const W_VALID: u64 = 1 << 63;
/// Resolution failed (or the slot was freed): drop, do not queue.
const W_FAILED: u64 = 1 << 62;
/// The entry is stale: forward, and re-confirm it.
const W_PROBE: u64 = 1 << 61;
const W_MAC: u64 = (1 << 48) - 1;

#[inline(always)]
fn mac_bits(m: MacAddr) -> u64 {
    let b = m.0;
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

#[inline(always)]
fn bits_mac(w: u64) -> MacAddr {
    let b = (w & W_MAC).to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The state of an entry, as shown to operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NeighState {
    /// Being resolved; packets wait in the workers' pending queues.
    Incomplete = 1,
    /// Confirmed within `reachable_time`.
    Reachable = 2,
    /// Not confirmed recently; still used, re-confirmed on use.
    Stale = 3,
    /// No answer to `max_probes` solicitations; packets are dropped.
    Failed = 4,
    /// Configured; never ages, never changes by learning.
    Static = 5,
}

impl NeighState {
    pub fn name(self) -> &'static str {
        match self {
            NeighState::Incomplete => "incomplete",
            NeighState::Reachable => "reachable",
            NeighState::Stale => "stale",
            NeighState::Failed => "failed",
            NeighState::Static => "static",
        }
    }

    fn from_u8(v: u8) -> Option<NeighState> {
        Some(match v {
            1 => NeighState::Incomplete,
            2 => NeighState::Reachable,
            3 => NeighState::Stale,
            4 => NeighState::Failed,
            5 => NeighState::Static,
            _ => return None,
        })
    }
}

impl fmt::Display for NeighState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a worker learns about a neighbour from one load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighLookup {
    /// Forward to `mac`. `probe`: the entry is stale; if
    /// [`NeighShared::should_solicit`] agrees, also send a unicast
    /// solicitation ([`build_arp_probe`] / [`build_neighbor_probe`]).
    Mac { mac: MacAddr, probe: bool },
    /// Not resolved yet: queue the packet and solicit (rate limited).
    Incomplete,
    /// Resolution failed, the entry was removed, or the id is unknown: drop
    /// the packet (`neigh_unresolved`); soliciting (rate limited) retries.
    Failed,
}

/// One neighbour slot. 32 bytes, so two share a cache line and none
/// straddles one.
#[repr(C, align(32))]
struct Slot {
    /// `W_VALID | W_FAILED | W_PROBE | mac`. Written by the control side
    /// (Release), read by workers (Acquire).
    mac: AtomicU64,
    /// TSC time of the last solicitation any worker sent (0: never).
    last_solicit: AtomicU64,
    /// Changes when the slot is freed and when it is reused.
    gen: AtomicU32,
    /// Solicitations sent since the control side last reset it.
    probes: AtomicU32,
    /// `NeighState as u8`, 0 when free. For display and debugging only.
    state: AtomicU8,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

impl Slot {
    fn new() -> Slot {
        Slot {
            mac: AtomicU64::new(W_FAILED),
            last_solicit: AtomicU64::new(0),
            gen: AtomicU32::new(0),
            probes: AtomicU32::new(0),
            state: AtomicU8::new(0),
        }
    }
}

/// A slot's neighbour address: written by the control side before the slot
/// is published, constant while it is allocated. Kept apart from the hot
/// slots: only the solicitation path reads it.
struct SlotAddr {
    hi: AtomicU64,
    lo: AtomicU64,
    v6: AtomicU8,
}

impl SlotAddr {
    fn new() -> SlotAddr {
        SlotAddr { hi: AtomicU64::new(0), lo: AtomicU64::new(0), v6: AtomicU8::new(0) }
    }
}

/// A worker's view of the `(port, ip) → NeighId` index for one burst.
pub type NeighIndexGuard = Guard<Arc<NeighIndex>>;

/// The neighbour slots shared by the control side and every worker.
pub struct NeighShared {
    slots: Box<[Slot]>,
    addrs: Box<[SlotAddr]>,
    index: ArcSwap<NeighIndex>,
    solicit_interval: u64,
    hz: u64,
}

impl NeighShared {
    fn new(capacity: usize, solicit_interval: u64, hz: u64) -> NeighShared {
        NeighShared {
            slots: (0..capacity).map(|_| Slot::new()).collect(),
            addrs: (0..capacity).map(|_| SlotAddr::new()).collect(),
            index: ArcSwap::from_pointee(NeighIndex::empty()),
            solicit_interval,
            hz,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The configured interval between solicitations for one neighbour, in
    /// TSC ticks (pass it to [`NeighShared::should_solicit`]).
    #[inline]
    pub fn solicit_interval(&self) -> u64 {
        self.solicit_interval
    }

    /// TSC ticks per second the table was built with.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// `d` in ticks of the table's clock (e.g. the pending queue's maximum
    /// age, computed once at worker start).
    pub fn ticks(&self, d: Duration) -> u64 {
        ticks(d, self.hz)
    }

    /// The resolution state of `id`: one Acquire load.
    #[inline(always)]
    pub fn lookup(&self, id: NeighId) -> NeighLookup {
        let Some(s) = self.slots.get(id.0 as usize) else { return NeighLookup::Failed };
        let w = s.mac.load(Ordering::Acquire);
        if w & W_VALID != 0 {
            NeighLookup::Mac { mac: bits_mac(w), probe: w & W_PROBE != 0 }
        } else if w & W_FAILED != 0 {
            NeighLookup::Failed
        } else {
            NeighLookup::Incomplete
        }
    }

    /// The MAC of `id` if it is usable.
    #[inline(always)]
    pub fn mac(&self, id: NeighId) -> Option<MacAddr> {
        match self.lookup(id) {
            NeighLookup::Mac { mac, .. } => Some(mac),
            _ => None,
        }
    }

    /// Whether the caller should send a solicitation for `id` now (TSC time
    /// `now`): true for at most one caller, across all workers, per
    /// `interval` ticks. The winner's solicitation is counted as a probe.
    #[inline]
    pub fn should_solicit(&self, id: NeighId, now: u64, interval: u64) -> bool {
        let Some(s) = self.slots.get(id.0 as usize) else { return false };
        let last = s.last_solicit.load(Ordering::Relaxed);
        // `now <= last` (another core's TSC slightly ahead) counts as recent.
        if last != 0 && now.saturating_sub(last) < interval {
            return false;
        }
        // 0 means "never": store at least 1.
        if s.last_solicit.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return false; // another worker won this interval
        }
        s.probes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The slot's generation (changes when it is freed or reused), or
    /// `None` for an id beyond the capacity.
    #[inline(always)]
    pub fn generation(&self, id: NeighId) -> Option<u32> {
        self.slots.get(id.0 as usize).map(|s| s.gen.load(Ordering::Acquire))
    }

    /// The displayed state of a slot (`None`: free or out of range).
    pub fn state(&self, id: NeighId) -> Option<NeighState> {
        self.slots.get(id.0 as usize).and_then(|s| NeighState::from_u8(s.state.load(Ordering::Relaxed)))
    }

    /// The neighbour address of `id` (`None`: free or out of range). Read
    /// it after a [`NeighShared::lookup`] (Acquire) of the same id, in the
    /// loop that obtained the id.
    pub fn addr(&self, id: NeighId) -> Option<IpAddr> {
        let (s, a) = (self.slots.get(id.0 as usize)?, self.addrs.get(id.0 as usize)?);
        if s.state.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let v = (u128::from(a.hi.load(Ordering::Relaxed)) << 64) | u128::from(a.lo.load(Ordering::Relaxed));
        Some(if a.v6.load(Ordering::Relaxed) != 0 {
            IpAddr::V6(Ipv6Addr::from(v))
        } else {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        })
    }

    /// Solicitations counted for `id` since its last state change.
    pub fn probes(&self, id: NeighId) -> u32 {
        self.slots.get(id.0 as usize).map_or(0, |s| s.probes.load(Ordering::Relaxed))
    }

    /// The current `(port, ip) → NeighId` index. Workers: once per burst
    /// (an arc-swap load: no lock, no allocation), dropped before the RCU
    /// quiescent point of the loop.
    #[inline]
    pub fn index(&self) -> NeighIndexGuard {
        self.index.load()
    }
}

// ---------------------------------------------------------------------------
// (port, ip) index
// ---------------------------------------------------------------------------

const EMPTY: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Bucket {
    ip: u128,
    /// Port in bits 0..16, bit 16 set for IPv6.
    tag: u32,
    id: u32,
}

/// An immutable open-addressing hash `(port, ip) → NeighId` (load at most
/// 1/2, linear probing), rebuilt and republished by the control side.
pub struct NeighIndex {
    buckets: Box<[Bucket]>,
    mask: usize,
    len: usize,
}

#[inline(always)]
fn key_of(port: PortId, ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), u32::from(port.0)),
        IpAddr::V6(a) => (u128::from(a), u32::from(port.0) | 1 << 16),
    }
}

#[inline(always)]
fn hash_key(ip: u128, tag: u32) -> u64 {
    let h = (ip as u64 ^ ((ip >> 64) as u64).rotate_left(29) ^ u64::from(tag).rotate_left(47))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

impl NeighIndex {
    fn empty() -> NeighIndex {
        NeighIndex::build(std::iter::empty(), 0)
    }

    fn build(items: impl Iterator<Item = ((PortId, IpAddr), u32)>, n: usize) -> NeighIndex {
        let size = (n * 2).next_power_of_two().max(16);
        let mut buckets = vec![Bucket { ip: 0, tag: 0, id: EMPTY }; size].into_boxed_slice();
        let mask = size - 1;
        let mut len = 0;
        for ((port, ip), id) in items {
            let (k, tag) = key_of(port, ip);
            let mut i = hash_key(k, tag) as usize & mask;
            // At most n < size / 2 items: an empty bucket is always found.
            while buckets[i].id != EMPTY {
                i = (i + 1) & mask;
            }
            buckets[i] = Bucket { ip: k, tag, id };
            len += 1;
        }
        NeighIndex { buckets, mask, len }
    }

    /// The entry for `ip` on `port`, if the control side has one.
    #[inline]
    pub fn find(&self, port: PortId, ip: IpAddr) -> Option<NeighId> {
        let (k, tag) = key_of(port, ip);
        let mut i = hash_key(k, tag) as usize & self.mask;
        // Load <= 1/2 guarantees an empty bucket; the bound is belt and braces.
        for _ in 0..self.buckets.len() {
            let b = &self.buckets[i];
            if b.id == EMPTY {
                return None;
            }
            if b.ip == k && b.tag == tag {
                return Some(NeighId(b.id));
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    #[inline]
    pub fn find_v4(&self, port: PortId, ip: Ipv4Addr) -> Option<NeighId> {
        self.find(port, IpAddr::V4(ip))
    }

    #[inline]
    pub fn find_v6(&self, port: PortId, ip: Ipv6Addr) -> Option<NeighId> {
        self.find(port, IpAddr::V6(ip))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

// ---------------------------------------------------------------------------
// Events from workers
// ---------------------------------------------------------------------------

/// How a neighbour's address was heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Learned {
    /// An ARP reply from the neighbour.
    ArpReply,
    /// An ARP request from the neighbour; `for_us`: its target is one of our
    /// addresses on the port it came in on.
    ArpRequest { for_us: bool },
    /// An NA for the neighbour's address, with its link-layer address.
    NeighborAdvert { solicited: bool, overrides: bool },
    /// An NS from the neighbour for one of our addresses, with its
    /// source link-layer address.
    NeighborSolicit,
}

/// What a worker tells the control side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighEvent {
    /// `ip` on `port` is at `mac`, as heard in an ARP / ND message.
    Seen { port: PortId, ip: IpAddr, mac: MacAddr, how: Learned },
    /// A packet had to go to `ip` on `port` (a connected destination) and
    /// there is no entry: create one and start resolving.
    Miss { port: PortId, ip: IpAddr },
}

/// The bounded lock-free queue from workers to the control side.
pub struct NeighEvents {
    q: ArrayQueue<NeighEvent>,
    dropped: CachePadded<AtomicU64>,
}

impl NeighEvents {
    /// A queue of `capacity` events (at least 1).
    pub fn new(capacity: usize) -> NeighEvents {
        NeighEvents { q: ArrayQueue::new(capacity.max(1)), dropped: CachePadded::new(AtomicU64::new(0)) }
    }

    /// Queues an event; false (and counted in [`NeighEvents::dropped`]) if
    /// the queue is full. Lock-free; never allocates.
    #[inline]
    pub fn push(&self, ev: NeighEvent) -> bool {
        if self.q.push(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Takes the oldest event (control side).
    pub fn pop(&self) -> Option<NeighEvent> {
        self.q.pop()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.q.capacity()
    }
}

/// Per-worker filter for [`NeighEvent::Miss`]: reports a `(port, ip)` at
/// most once per interval, so a flood of packets to an unresolved
/// connected destination costs one event, not one per packet. Direct
/// mapped: a collision only means an extra (harmless, idempotent) event.
pub struct MissFilter {
    slots: Box<[(u64, u64)]>,
    mask: usize,
}

impl Default for MissFilter {
    fn default() -> Self {
        MissFilter::new(256)
    }
}

impl MissFilter {
    /// A filter with `size` entries (rounded up to a power of two).
    pub fn new(size: usize) -> MissFilter {
        let n = size.max(1).next_power_of_two();
        MissFilter { slots: vec![(0, 0); n].into_boxed_slice(), mask: n - 1 }
    }

    /// Whether a miss for `ip` on `port` at TSC time `now` should be
    /// reported (not reported within `interval` ticks).
    #[inline]
    pub fn report(&mut self, port: PortId, ip: IpAddr, now: u64, interval: u64) -> bool {
        let (k, tag) = key_of(port, ip);
        let h = hash_key(k, tag) | 1; // 0 marks an empty slot
        let s = &mut self.slots[h as usize & self.mask];
        if s.0 == h && now.saturating_sub(s.1) < interval {
            return false;
        }
        *s = (h, now);
        true
    }
}

// ---------------------------------------------------------------------------
// Recognising ARP / ND on the fast path
// ---------------------------------------------------------------------------

#[inline(always)]
fn unicast_mac(m: &[u8]) -> Option<MacAddr> {
    let m: [u8; 6] = m.try_into().ok()?;
    (m[0] & 1 == 0 && m != [0; 6]).then_some(MacAddr(m))
}

#[inline(always)]
fn neighbour_v4(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

#[inline(always)]
fn neighbour_v6(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_loopback())
}

fn neighbour_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => neighbour_v4(a),
        IpAddr::V6(a) => neighbour_v6(a),
    }
}

/// Looks at a frame the parser validated and, if it is an ARP request or
/// reply, or an NS (for one of `own`, with a source link-layer address
/// option) or NA (with a target link-layer address option), pushes what it
/// teaches to `events`. `own` is the router's addresses on `in_port`
/// (`PortEntry::addrs`). Returns whether an event was queued.
///
/// Call it before any stage rewrites the frame in place (the local stage
/// turns requests into replies). Never panics, never allocates: every
/// offset is re-checked against the frame, so an inconsistent `layers`
/// only means no event.
///
/// Checks (RFC 4861 §7.1): hop limit 255 (so the message was not
/// forwarded: it comes from the link), code 0, ICMP length >= 24, target
/// not multicast, no zero-length option, NA to a multicast destination not
/// solicited, and the ICMPv6 checksum. The checksum is not needed for
/// safety — a forger can compute it, and ARP has none — but the RFC
/// requires it and it costs a few dozen ns on messages that are rare, so it
/// is verified rather than trusted to the Ethernet FCS.
#[inline]
pub fn observe(frame: &[u8], layers: &Layers, in_port: u16, own: &[IpAddr], events: &NeighEvents) -> bool {
    let seen = match layers.l3 {
        L3Kind::Arp => parse_arp(frame, layers.l3_off as usize, own),
        L3Kind::Ipv6 if layers.l4_proto == ip_proto::ICMPV6 => parse_nd(frame, layers, own),
        _ => None,
    };
    match seen {
        Some((ip, mac, how)) => events.push(NeighEvent::Seen { port: PortId(in_port), ip, mac, how }),
        None => false,
    }
}

fn parse_arp(frame: &[u8], o: usize, own: &[IpAddr]) -> Option<(IpAddr, MacAddr, Learned)> {
    let a = frame.get(o..o.checked_add(28)?)?;
    // Ethernet / IPv4, hlen 6, plen 4.
    if a[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let oper = u16::from_be_bytes([a[6], a[7]]);
    let mac = unicast_mac(&a[8..14])?;
    let spa = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let tpa = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    if !neighbour_v4(spa) || own.contains(&IpAddr::V4(spa)) {
        return None;
    }
    let how = match oper {
        1 => Learned::ArpRequest { for_us: own.contains(&IpAddr::V4(tpa)) },
        2 => Learned::ArpReply,
        _ => return None,
    };
    Some((IpAddr::V4(spa), mac, how))
}

/// ND option types.
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// The first link-layer address option of type `want`; `Err` if the
/// options are malformed (a zero length or one running past the end).
fn nd_lladdr(mut opts: &[u8], want: u8) -> Result<Option<MacAddr>, ()> {
    let mut found = None;
    while !opts.is_empty() {
        let (&ty, &len) = (opts.first().ok_or(())?, opts.get(1).ok_or(())?);
        let len = usize::from(len) * 8;
        if len == 0 || len > opts.len() {
            return Err(());
        }
        if ty == want && found.is_none() && len == 8 {
            found = Some(opts.get(2..8).ok_or(())?);
        }
        opts = &opts[len..];
    }
    Ok(found.and_then(unicast_mac))
}

fn parse_nd(frame: &[u8], l: &Layers, own: &[IpAddr]) -> Option<(IpAddr, MacAddr, Learned)> {
    if l.frag != Frag::None || l.l4_off == 0 {
        return None;
    }
    let o = l.l3_off as usize;
    let ip = frame.get(o..o + 40)?;
    if ip[7] != 255 {
        return None;
    }
    let src: [u8; 16] = ip[8..24].try_into().ok()?;
    let dst: [u8; 16] = ip[24..40].try_into().ok()?;
    let msg = frame.get(l.l4_off as usize..o + l.l3_len as usize)?;
    if msg.len() < 24 || msg[1] != 0 || !matches!(msg[0], 135 | 136) {
        return None;
    }
    if !checksum::verify_l4_v6(src, dst, ip_proto::ICMPV6, msg) {
        return None;
    }
    let target: [u8; 16] = msg[8..24].try_into().ok()?;
    let target = Ipv6Addr::from(target);
    if target.is_multicast() || target.is_unspecified() {
        return None;
    }
    let opts = &msg[24..];
    if msg[0] == 135 {
        // NS: learn the sender, if it asks for one of our addresses and is
        // not doing duplicate address detection (unspecified source).
        let src = Ipv6Addr::from(src);
        if !neighbour_v6(src) || !own.contains(&IpAddr::V6(target)) || own.contains(&IpAddr::V6(src)) {
            return None;
        }
        let mac = nd_lladdr(opts, OPT_SOURCE_LL).ok()??;
        Some((IpAddr::V6(src), mac, Learned::NeighborSolicit))
    } else {
        let flags = msg[4];
        let (solicited, overrides) = (flags & 0x40 != 0, flags & 0x20 != 0);
        if solicited && dst[0] == 0xff {
            return None;
        }
        if own.contains(&IpAddr::V6(target)) {
            return None; // someone else claims our address: not a neighbour
        }
        let mac = nd_lladdr(opts, OPT_TARGET_LL).ok()??;
        Some((IpAddr::V6(target), mac, Learned::NeighborAdvert { solicited, overrides }))
    }
}

// ---------------------------------------------------------------------------
// Building solicitations
// ---------------------------------------------------------------------------

/// Writes a broadcast ARP request "who has `target`? tell `src_ip`" into
/// `buf` (replacing its contents; [`ARP_FRAME_LEN`] bytes, zero padded).
/// False (buffer unchanged in content) if it does not fit.
pub fn build_arp_request(buf: &mut Pkt, src_mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr) -> bool {
    write_arp_request(buf, MacAddr::BROADCAST, src_mac, src_ip, target)
}

/// As [`build_arp_request`], but sent to `dst_mac` only: the unicast poll
/// (RFC 1122 §2.3.2.1) that re-confirms a stale entry.
pub fn build_arp_probe(buf: &mut Pkt, dst_mac: MacAddr, src_mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr) -> bool {
    write_arp_request(buf, dst_mac, src_mac, src_ip, target)
}

fn write_arp_request(buf: &mut Pkt, dst: MacAddr, src_mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr) -> bool {
    if !buf.set_len(ARP_FRAME_LEN) {
        return false;
    }
    let f = buf.data_mut();
    f.fill(0);
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&src_mac.0);
    f[28..32].copy_from_slice(&src_ip.octets());
    // f[32..38]: target hardware address, unknown: zero.
    f[38..42].copy_from_slice(&target.octets());
    true
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let t = a.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]])
}

/// Writes an NS for `target` into `buf` (replacing its contents;
/// [`NS_FRAME_LEN`] bytes): to the solicited-node multicast address and its
/// MAC 33:33:ff:XX:XX:XX, hop limit 255, with a source link-layer address
/// option and the ICMPv6 checksum. False if it does not fit.
pub fn build_neighbor_solicit(buf: &mut Pkt, src_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> bool {
    let t = target.octets();
    let dst_mac = MacAddr([0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    write_ns(buf, dst_mac, solicited_node(target), src_mac, src_ip, target)
}

/// As [`build_neighbor_solicit`], but unicast to `target` at `dst_mac`:
/// the probe that re-confirms a stale entry (RFC 4861 §7.3.3).
pub fn build_neighbor_probe(
    buf: &mut Pkt,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> bool {
    write_ns(buf, dst_mac, target, src_mac, src_ip, target)
}

/// Builds the solicitation the worker owes for `id` into `buf` (from
/// `pkt.alloc_sibling()`), after [`NeighShared::should_solicit`] said so:
/// for an entry with a known MAC (stale: re-confirmation) a unicast ARP
/// request / NS to that MAC, otherwise a broadcast ARP request / NS to the
/// solicited-node address. The source is the first of `own` (the out
/// port's addresses) in the neighbour's family; for IPv6 a link-local one
/// when the neighbour is link-local, if there is one. False (nothing to
/// send) if the slot is free, `own` has no usable source, or `buf` is too
/// small.
pub fn build_solicit(buf: &mut Pkt, shared: &NeighShared, id: NeighId, src_mac: MacAddr, own: &[IpAddr]) -> bool {
    let known = match shared.lookup(id) {
        NeighLookup::Mac { mac, .. } => Some(mac),
        _ => None,
    };
    match shared.addr(id) {
        Some(IpAddr::V4(target)) => {
            let src = own.iter().find_map(|a| match a {
                IpAddr::V4(v) if neighbour_v4(*v) => Some(*v),
                _ => None,
            });
            match (src, known) {
                (Some(src), Some(mac)) => build_arp_probe(buf, mac, src_mac, src, target),
                (Some(src), None) => build_arp_request(buf, src_mac, src, target),
                (None, _) => false,
            }
        }
        Some(IpAddr::V6(target)) => {
            let v6 = || {
                own.iter().filter_map(|a| match a {
                    IpAddr::V6(v) if neighbour_v6(*v) => Some(*v),
                    _ => None,
                })
            };
            let link_local = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
            let src = if link_local(&target) { v6().find(link_local).or_else(|| v6().next()) } else { v6().next() };
            match (src, known) {
                (Some(src), Some(mac)) => build_neighbor_probe(buf, mac, src_mac, src, target),
                (Some(src), None) => build_neighbor_solicit(buf, src_mac, src, target),
                (None, _) => false,
            }
        }
        None => false,
    }
}

fn write_ns(buf: &mut Pkt, dst_mac: MacAddr, dst: Ipv6Addr, src_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> bool {
    if !buf.set_len(NS_FRAME_LEN) {
        return false;
    }
    let f = buf.data_mut();
    f[0..6].copy_from_slice(&dst_mac.0);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    // Version 6, no traffic class / flow label, payload 32, ICMPv6, hop limit 255.
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 32, ip_proto::ICMPV6, 255]);
    f[22..38].copy_from_slice(&src.octets());
    f[38..54].copy_from_slice(&dst.octets());
    let ns = &mut f[54..86];
    ns[..8].copy_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    ns[8..24].copy_from_slice(&target.octets());
    ns[24..26].copy_from_slice(&[OPT_SOURCE_LL, 1]);
    ns[26..32].copy_from_slice(&src_mac.0);
    let c = checksum::l4_checksum_v6(src.octets(), dst.octets(), ip_proto::ICMPV6, ns);
    ns[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

// ---------------------------------------------------------------------------
// Packets waiting for resolution (per worker)
// ---------------------------------------------------------------------------

/// What [`PendingQueue::expire`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Waited longer than the maximum age.
    pub timed_out: usize,
    /// The neighbour failed or was removed.
    pub failed: usize,
}

impl Expired {
    pub fn total(&self) -> usize {
        self.timed_out + self.failed
    }
}

/// Packets waiting for their neighbour, per worker: a fixed array kept in
/// arrival order (structure of arrays), compacted in place. Nothing
/// allocates after [`PendingQueue::new`]; every operation is O(len) with
/// len <= capacity (default 256), and free when the queue is empty.
pub struct PendingQueue {
    ids: Box<[u32]>,
    gens: Box<[u32]>,
    ports: Box<[PortId]>,
    since: Box<[u64]>,
    pkts: Box<[Option<Pkt>]>,
    len: usize,
    per_neigh: usize,
}

impl Default for PendingQueue {
    fn default() -> Self {
        PendingQueue::new(256, 16)
    }
}

impl PendingQueue {
    /// Room for `capacity` packets in all, at most `per_neigh` per neighbour.
    pub fn new(capacity: usize, per_neigh: usize) -> PendingQueue {
        let n = capacity.max(1);
        PendingQueue {
            ids: vec![0; n].into_boxed_slice(),
            gens: vec![0; n].into_boxed_slice(),
            ports: vec![PortId(0); n].into_boxed_slice(),
            since: vec![0; n].into_boxed_slice(),
            pkts: (0..n).map(|_| None).collect(),
            len: 0,
            per_neigh: per_neigh.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.pkts.len()
    }

    /// Packets queued for `id` (in its current generation).
    pub fn queued_for(&self, shared: &NeighShared, id: NeighId) -> usize {
        let Some(gen) = shared.generation(id) else { return 0 };
        self.count(id.0, gen)
    }

    #[inline]
    fn count(&self, id: u32, gen: u32) -> usize {
        self.ids[..self.len].iter().zip(&self.gens[..self.len]).filter(|&(&i, &g)| i == id && g == gen).count()
    }

    /// Queues `pkt` (to leave by `out_port`) until `id` resolves. Gives the
    /// packet back if the queue, or this neighbour's share of it, is full
    /// (the caller drops it as `neigh_queue_full`), or `id` is unknown.
    #[inline]
    pub fn push(&mut self, shared: &NeighShared, id: NeighId, pkt: Pkt, out_port: PortId, now: u64) -> Result<(), Pkt> {
        let i = self.len;
        if i >= self.pkts.len() {
            return Err(pkt);
        }
        let Some(gen) = shared.generation(id) else { return Err(pkt) };
        if i >= self.per_neigh && self.count(id.0, gen) >= self.per_neigh {
            return Err(pkt);
        }
        self.ids[i] = id.0;
        self.gens[i] = gen;
        self.ports[i] = out_port;
        self.since[i] = now;
        self.pkts[i] = Some(pkt);
        self.len = i + 1;
        Ok(())
    }

    #[inline(always)]
    fn keep(&mut self, from: usize, to: usize) {
        if from != to {
            self.ids[to] = self.ids[from];
            self.gens[to] = self.gens[from];
            self.ports[to] = self.ports[from];
            self.since[to] = self.since[from];
            self.pkts[to] = self.pkts[from].take();
        }
    }

    /// Hands every packet whose neighbour now has a MAC to `send(pkt,
    /// out_port, mac)`, in arrival order. If `send` gives a packet back
    /// (e.g. the TX burst is full) it stays queued with everything after
    /// it, so a neighbour's packets never overtake each other. Returns the
    /// number of packets handed over.
    pub fn drain_resolved<F>(&mut self, shared: &NeighShared, mut send: F) -> usize
    where
        F: FnMut(Pkt, PortId, MacAddr) -> Result<(), Pkt>,
    {
        let (mut w, mut sent) = (0, 0);
        let mut stopped = false;
        // Bit (id % 64) set: a packet of that neighbour stayed queued in
        // this pass, so later ones of the same neighbour must stay too (a
        // neighbour that resolves during the pass must not reorder).
        let mut held: u64 = 0;
        for r in 0..self.len {
            let id = self.ids[r];
            let bit = 1u64 << (id % 64);
            let mac = if stopped || held & bit != 0 {
                None
            } else {
                // The MAC first, then the generation: `alloc` bumps the
                // generation before it publishes a new occupant's MAC
                // (Release), so a MAC seen here (Acquire) with the queued
                // generation is the MAC of the neighbour the packet was
                // queued for, never of a later occupant of the slot.
                shared.mac(NeighId(id)).filter(|_| shared.generation(NeighId(id)) == Some(self.gens[r]))
            };
            if let Some(mac) = mac {
                if let Some(p) = self.pkts[r].take() {
                    match send(p, self.ports[r], mac) {
                        Ok(()) => {
                            sent += 1;
                            continue;
                        }
                        Err(p) => {
                            self.pkts[r] = Some(p);
                            stopped = true;
                        }
                    }
                }
            }
            held |= bit;
            self.keep(r, w);
            w += 1;
        }
        self.len = w;
        sent
    }

    /// Drops packets that waited more than `max_age` ticks at TSC time
    /// `now`, and those whose neighbour failed or was removed. The buffers
    /// go back to their pools here.
    pub fn expire(&mut self, shared: &NeighShared, now: u64, max_age: u64) -> Expired {
        let mut out = Expired::default();
        let mut w = 0;
        for r in 0..self.len {
            let id = NeighId(self.ids[r]);
            if now.saturating_sub(self.since[r]) > max_age {
                out.timed_out += 1;
                self.pkts[r] = None;
            } else if shared.generation(id) != Some(self.gens[r]) || shared.lookup(id) == NeighLookup::Failed {
                out.failed += 1;
                self.pkts[r] = None;
            } else {
                self.keep(r, w);
                w += 1;
            }
        }
        self.len = w;
        out
    }

    /// Drops every queued packet; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        self.pkts[..n].iter_mut().for_each(|p| *p = None);
        self.len = 0;
        n
    }
}

// ---------------------------------------------------------------------------
// Control side
// ---------------------------------------------------------------------------

/// Neighbour table parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighConfig {
    /// Number of slots (entries of all states).
    pub capacity: u32,
    /// How long a confirmation keeps an entry `Reachable`.
    pub reachable_time: Duration,
    /// Unpinned entries not `Reachable` and idle this long are removed.
    pub gc_time: Duration,
    /// Solicitations without answer before an entry is `Failed`.
    pub max_probes: u32,
    /// At most one solicitation per neighbour per interval (all workers).
    pub solicit_interval: Duration,
    /// How long reusing a freed slot may wait for the workers' grace
    /// period before the table reports itself full.
    pub rcu_timeout: Duration,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig {
            capacity: 16384,
            reachable_time: Duration::from_secs(30),
            gc_time: Duration::from_secs(60),
            max_probes: 3,
            solicit_interval: Duration::from_secs(1),
            rcu_timeout: Duration::from_secs(1),
        }
    }
}

/// Why a neighbour operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NeighError {
    /// Every slot is in use (or freed slots are still in their RCU grace
    /// period and it did not end within `rcu_timeout`).
    Full { capacity: u32 },
    /// No entry for this port and address.
    NotFound { port: PortId, ip: IpAddr },
    /// The id names no entry.
    UnknownId(NeighId),
    /// Not an address a neighbour can have (unspecified, multicast,
    /// broadcast, loopback).
    InvalidAddress(IpAddr),
    /// A zero or multicast MAC for a static entry.
    InvalidMac(MacAddr),
    /// A configuration value out of range; the string says which.
    InvalidConfig(&'static str),
}

impl fmt::Display for NeighError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeighError::Full { capacity } => write!(f, "neighbour table full ({capacity} entries)"),
            NeighError::NotFound { port, ip } => write!(f, "no neighbour {ip} on port {port}"),
            NeighError::UnknownId(id) => write!(f, "neighbour id {id} does not exist"),
            NeighError::InvalidAddress(ip) => write!(f, "{ip} cannot be a neighbour address"),
            NeighError::InvalidMac(m) => write!(f, "{m} cannot be a neighbour MAC address"),
            NeighError::InvalidConfig(s) => write!(f, "invalid neighbour config: {s}"),
        }
    }
}

impl std::error::Error for NeighError {}

/// An entry, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighInfo {
    pub id: NeighId,
    pub port: PortId,
    pub ip: IpAddr,
    /// The MAC in use (or last known, for a failed entry).
    pub mac: Option<MacAddr>,
    pub state: NeighState,
    /// Next hops using the entry (it is not garbage collected while > 0).
    pub pinned: u32,
    /// Solicitations sent since the last state change.
    pub probes: u32,
    /// TSC time of the last state change.
    pub since: u64,
}

/// Control-side counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighStats {
    pub created: u64,
    pub removed: u64,
    /// Learned information that changed an entry.
    pub updated: u64,
    /// Learned information ignored by the rules (static entry, NA for an
    /// unknown neighbour, request for someone else from an unknown sender).
    pub ignored: u64,
    /// Entries that could not be created: table full.
    pub full: u64,
    /// Transitions to `Failed`.
    pub failed: u64,
    /// Grace periods that did not end within `rcu_timeout`.
    pub rcu_timeouts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Static,
    Incomplete { since: u64 },
    Reachable { confirmed: u64 },
    Stale { since: u64 },
    Failed { since: u64 },
}

impl State {
    fn public(self) -> NeighState {
        match self {
            State::Static => NeighState::Static,
            State::Incomplete { .. } => NeighState::Incomplete,
            State::Reachable { .. } => NeighState::Reachable,
            State::Stale { .. } => NeighState::Stale,
            State::Failed { .. } => NeighState::Failed,
        }
    }

    fn since(self) -> u64 {
        match self {
            State::Static => 0,
            State::Incomplete { since } | State::Stale { since } | State::Failed { since } => since,
            State::Reachable { confirmed } => confirmed,
        }
    }

    /// The worker-visible word for this state.
    fn word(self, mac: Option<MacAddr>) -> u64 {
        match (self, mac) {
            (State::Static | State::Reachable { .. }, Some(m)) => W_VALID | mac_bits(m),
            (State::Stale { .. }, Some(m)) => W_VALID | W_PROBE | mac_bits(m),
            (State::Failed { .. }, _) => W_FAILED,
            // Incomplete, or a usable state without a MAC (not constructed).
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    port: PortId,
    ip: IpAddr,
    mac: Option<MacAddr>,
    state: State,
    pins: u32,
}

fn ticks(d: Duration, hz: u64) -> u64 {
    u64::try_from(d.as_nanos().saturating_mul(u128::from(hz)) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// The control side of the neighbour table: one writer.
///
/// Invariant for the indexing below: `entries`, `shared.slots` and
/// `shared.addrs` all have
/// `capacity` elements, and every id in `map`, `free` and `limbo` comes
/// from `0..capacity` (the initial free list), so `[id as usize]` cannot
/// go out of bounds.
pub struct NeighTable {
    shared: Arc<NeighShared>,
    rcu: Rcu,
    cfg: NeighConfig,
    reachable: u64,
    gc: u64,
    interval: u64,
    map: HashMap<(PortId, IpAddr), u32>,
    entries: Vec<Option<Entry>>,
    /// Slots that may be used now (popped from the end).
    free: Vec<u32>,
    /// Freed slots waiting for a grace period.
    limbo: Vec<u32>,
    index_dirty: bool,
    /// A grace period timed out: do not wait again before the next `age`.
    reclaim_blocked: bool,
    /// Times come from `tsc::now()` (else only from callers: a fake clock).
    real_clock: bool,
    /// The latest time a caller passed in.
    last_now: u64,
    stats: NeighStats,
}

impl NeighTable {
    /// A table whose times are TSC ticks ([`crate::tsc::now`]).
    pub fn new(cfg: NeighConfig, rcu: Rcu) -> Result<NeighTable, NeighError> {
        let mut t = NeighTable::with_hz(cfg, rcu, tsc::hz())?;
        t.real_clock = true;
        Ok(t)
    }

    /// A table whose clock runs at `hz` ticks per second and is known only
    /// from the `now` arguments (tests use a fake one): calls without a
    /// `now` use the latest one passed in. Workers must use the same clock
    /// for `should_solicit` and the `PendingQueue`.
    pub fn with_hz(cfg: NeighConfig, rcu: Rcu, hz: u64) -> Result<NeighTable, NeighError> {
        if cfg.capacity == 0 || cfg.capacity == u32::MAX {
            return Err(NeighError::InvalidConfig("capacity must be in 1..u32::MAX"));
        }
        if cfg.max_probes == 0 {
            return Err(NeighError::InvalidConfig("max_probes must be > 0"));
        }
        if hz == 0 {
            return Err(NeighError::InvalidConfig("clock rate must be > 0"));
        }
        let n = cfg.capacity as usize;
        let interval = ticks(cfg.solicit_interval, hz);
        Ok(NeighTable {
            shared: Arc::new(NeighShared::new(n, interval, hz)),
            rcu,
            reachable: ticks(cfg.reachable_time, hz),
            gc: ticks(cfg.gc_time, hz),
            interval,
            cfg,
            map: HashMap::with_capacity(n),
            entries: vec![None; n],
            free: (0..n as u32).rev().collect(),
            limbo: Vec::new(),
            index_dirty: false,
            reclaim_blocked: false,
            real_clock: false,
            last_now: 0,
            stats: NeighStats::default(),
        })
    }

    /// The table's time: the TSC, or the latest `now` passed in.
    fn now(&self) -> u64 {
        if self.real_clock {
            tsc::now()
        } else {
            self.last_now
        }
    }

    fn tick(&mut self, now: u64) {
        self.last_now = self.last_now.max(now);
    }

    /// The slots, for workers.
    pub fn shared(&self) -> &Arc<NeighShared> {
        &self.shared
    }

    pub fn config(&self) -> &NeighConfig {
        &self.cfg
    }

    pub fn stats(&self) -> NeighStats {
        self.stats
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The id of the entry for `ip` on `port`, if any.
    pub fn id_of(&self, port: PortId, ip: IpAddr) -> Option<NeighId> {
        self.map.get(&(port, ip)).map(|&i| NeighId(i))
    }

    /// The entry for `ip` on `port`.
    pub fn get(&self, port: PortId, ip: IpAddr) -> Option<NeighInfo> {
        self.id_of(port, ip).and_then(|id| self.info(id.0))
    }

    /// Every entry, by id.
    pub fn entries(&self) -> Vec<NeighInfo> {
        (0..self.entries.len() as u32).filter_map(|i| self.info(i)).collect()
    }

    fn info(&self, i: u32) -> Option<NeighInfo> {
        let e = self.entries.get(i as usize)?.as_ref()?;
        Some(NeighInfo {
            id: NeighId(i),
            port: e.port,
            ip: e.ip,
            mac: e.mac,
            state: e.state.public(),
            pinned: e.pins,
            probes: self.shared.probes(NeighId(i)),
            since: e.state.since(),
        })
    }

    /// The slot id for `ip` on `port`, for a next hop: creates an
    /// `Incomplete` entry if there is none (the first packets resolve it),
    /// and pins it (no garbage collection) until [`NeighTable::release`].
    pub fn resolve_slot(&mut self, port: PortId, ip: IpAddr) -> Result<NeighId, NeighError> {
        let now = self.now();
        if !neighbour_ip(ip) {
            return Err(NeighError::InvalidAddress(ip));
        }
        let id = match self.map.get(&(port, ip)) {
            Some(&i) => i,
            None => self.alloc(Entry { port, ip, mac: None, state: State::Incomplete { since: now }, pins: 0 })?,
        };
        if let Some(Some(e)) = self.entries.get_mut(id as usize) {
            e.pins = e.pins.saturating_add(1);
        }
        self.flush();
        Ok(NeighId(id))
    }

    /// Drops one pin taken by [`NeighTable::resolve_slot`]. Call it after
    /// the tables that no longer use the next hop have been published.
    pub fn release(&mut self, id: NeighId) -> Result<(), NeighError> {
        match self.entries.get_mut(id.0 as usize) {
            Some(Some(e)) => {
                e.pins = e.pins.saturating_sub(1);
                Ok(())
            }
            _ => Err(NeighError::UnknownId(id)),
        }
    }

    /// Adds (or turns an existing entry into) a static entry: `ip` on
    /// `port` is at `mac`, forever. Keeps the slot (and its pins).
    pub fn add_static(&mut self, port: PortId, ip: IpAddr, mac: MacAddr) -> Result<NeighId, NeighError> {
        if !neighbour_ip(ip) {
            return Err(NeighError::InvalidAddress(ip));
        }
        if unicast_mac(&mac.0).is_none() {
            return Err(NeighError::InvalidMac(mac));
        }
        let id = match self.map.get(&(port, ip)) {
            Some(&i) => {
                self.set(i, State::Static, Some(mac));
                i
            }
            None => self.alloc(Entry { port, ip, mac: Some(mac), state: State::Static, pins: 0 })?,
        };
        self.flush();
        Ok(NeighId(id))
    }

    /// A gateway with a fixed MAC (Azure: [`AZURE_GATEWAY_MAC`]): a static
    /// entry.
    pub fn set_gateway(&mut self, port: PortId, ip: IpAddr, mac: MacAddr) -> Result<NeighId, NeighError> {
        self.add_static(port, ip, mac)
    }

    /// Azure's gateways on `port`: `gw4` (the subnet's `.1`) and
    /// [`AZURE_GATEWAY_V6`], both at [`AZURE_GATEWAY_MAC`].
    pub fn set_azure_gateways(&mut self, port: PortId, gw4: Ipv4Addr) -> Result<(NeighId, NeighId), NeighError> {
        let v4 = self.set_gateway(port, IpAddr::V4(gw4), AZURE_GATEWAY_MAC)?;
        let v6 = self.set_gateway(port, IpAddr::V6(AZURE_GATEWAY_V6), AZURE_GATEWAY_MAC)?;
        Ok((v4, v6))
    }

    /// Removes the entry for `ip` on `port`. An entry still pinned by next
    /// hops keeps its slot and becomes `Incomplete` (resolved again
    /// dynamically); any other is freed (its slot reused after a grace
    /// period).
    pub fn remove(&mut self, port: PortId, ip: IpAddr) -> Result<(), NeighError> {
        let Some(&id) = self.map.get(&(port, ip)) else { return Err(NeighError::NotFound { port, ip }) };
        let pinned = self.entries.get(id as usize).and_then(|e| e.as_ref()).is_some_and(|e| e.pins > 0);
        if pinned {
            let now = self.now();
            self.set(id, State::Incomplete { since: now }, None);
        } else {
            self.free_slot(id);
        }
        self.flush();
        Ok(())
    }

    /// Applies what was heard about `ip` on `port` at time `now` (see the
    /// module docs for the rules). `Ok(None)`: ignored by the rules;
    /// `Err(Full)`: an entry was due but the table is full.
    pub fn learn(
        &mut self,
        port: PortId,
        ip: IpAddr,
        mac: MacAddr,
        how: Learned,
        now: u64,
    ) -> Result<Option<NeighId>, NeighError> {
        self.tick(now);
        let r = self.learn_inner(port, ip, mac, how, now);
        self.flush();
        r
    }

    fn learn_inner(
        &mut self,
        port: PortId,
        ip: IpAddr,
        mac: MacAddr,
        how: Learned,
        now: u64,
    ) -> Result<Option<NeighId>, NeighError> {
        if !neighbour_ip(ip) || unicast_mac(&mac.0).is_none() {
            self.stats.ignored += 1;
            return Ok(None);
        }
        let Some(&id) = self.map.get(&(port, ip)) else {
            let state = match how {
                Learned::ArpReply => State::Reachable { confirmed: now },
                Learned::ArpRequest { for_us: true } | Learned::NeighborSolicit => State::Stale { since: now },
                Learned::ArpRequest { for_us: false } | Learned::NeighborAdvert { .. } => {
                    self.stats.ignored += 1;
                    return Ok(None);
                }
            };
            return self.alloc(Entry { port, ip, mac: Some(mac), state, pins: 0 }).map(|i| Some(NeighId(i)));
        };
        let Some(e) = self.entries.get(id as usize).copied().flatten() else { return Ok(None) };
        let same = e.mac == Some(mac);
        let unresolved = matches!(e.state, State::Incomplete { .. } | State::Failed { .. });
        let next = match (e.state, how) {
            (State::Static, _) => None,
            (_, Learned::ArpReply) => Some((State::Reachable { confirmed: now }, mac)),
            (_, Learned::ArpRequest { .. } | Learned::NeighborSolicit) => {
                (unresolved || !same).then_some((State::Stale { since: now }, mac))
            }
            (_, Learned::NeighborAdvert { solicited, .. }) if unresolved => {
                let s = if solicited { State::Reachable { confirmed: now } } else { State::Stale { since: now } };
                Some((s, mac))
            }
            (s, Learned::NeighborAdvert { overrides: false, .. }) if !same => match (s, e.mac) {
                (State::Reachable { .. }, Some(old)) => Some((State::Stale { since: now }, old)),
                _ => None,
            },
            (_, Learned::NeighborAdvert { solicited: true, .. }) => Some((State::Reachable { confirmed: now }, mac)),
            (_, Learned::NeighborAdvert { .. }) => (!same).then_some((State::Stale { since: now }, mac)),
        };
        match next {
            Some((state, mac)) => {
                self.set(id, state, Some(mac));
                self.stats.updated += 1;
                Ok(Some(NeighId(id)))
            }
            None => {
                self.stats.ignored += 1;
                Ok(None)
            }
        }
    }

    /// Applies every queued event (at most the queue's capacity per call,
    /// so a busy producer cannot keep the control side here) at time `now`,
    /// then publishes the index once. Returns the number of events taken.
    pub fn drain_events(&mut self, events: &NeighEvents, now: u64) -> usize {
        self.tick(now);
        let mut n = 0;
        while n < events.capacity() {
            let Some(ev) = events.pop() else { break };
            n += 1;
            match ev {
                NeighEvent::Seen { port, ip, mac, how } => {
                    // Full is counted in stats; nothing else to do here.
                    let _ = self.learn_inner(port, ip, mac, how, now);
                }
                NeighEvent::Miss { port, ip } => {
                    if neighbour_ip(ip) && !self.map.contains_key(&(port, ip)) {
                        let e = Entry { port, ip, mac: None, state: State::Incomplete { since: now }, pins: 0 };
                        let _ = self.alloc(e);
                    }
                }
            }
        }
        self.flush();
        n
    }

    /// Ages every entry at time `now` (call it periodically, e.g. every
    /// 100 ms to 1 s): `Reachable` → `Stale` after `reachable_time`;
    /// `Incomplete` / `Stale` → `Failed` after `max_probes` unanswered
    /// solicitations; unpinned idle entries removed after `gc_time`. Then
    /// publishes the index and reclaims freed slots (one grace period).
    pub fn age(&mut self, now: u64) {
        self.tick(now);
        self.reclaim_blocked = false;
        for i in 0..self.entries.len() as u32 {
            let Some(e) = self.entries[i as usize] else { continue };
            let slot = &self.shared.slots[i as usize];
            let probes = slot.probes.load(Ordering::Relaxed);
            let last = slot.last_solicit.load(Ordering::Relaxed);
            match e.state {
                State::Static => {}
                State::Reachable { confirmed } => {
                    if now.saturating_sub(confirmed) >= self.reachable {
                        self.set(i, State::Stale { since: now }, e.mac);
                    }
                }
                State::Incomplete { since } | State::Stale { since } => {
                    if probes >= self.cfg.max_probes && now.saturating_sub(last) >= self.interval {
                        self.set(i, State::Failed { since: now }, e.mac);
                        self.stats.failed += 1;
                    } else if e.pins == 0 && now.saturating_sub(since.max(last)) >= self.gc {
                        self.free_slot(i);
                    }
                }
                State::Failed { since } => {
                    if e.pins == 0 && now.saturating_sub(since.max(last)) >= self.gc {
                        self.free_slot(i);
                    }
                }
            }
        }
        self.flush();
        if !self.limbo.is_empty() {
            self.reclaim();
        }
    }

    /// Moves freed slots to the free list once every worker has passed a
    /// quiescent point (none can still hold their ids). The index that no
    /// longer names them is published first.
    fn reclaim(&mut self) -> bool {
        self.flush();
        if self.rcu.synchronize_timeout(self.cfg.rcu_timeout).is_err() {
            self.stats.rcu_timeouts += 1;
            self.reclaim_blocked = true;
            return false;
        }
        self.free.append(&mut self.limbo);
        true
    }

    fn alloc(&mut self, e: Entry) -> Result<u32, NeighError> {
        if self.free.is_empty() && !self.limbo.is_empty() && !self.reclaim_blocked {
            self.reclaim();
        }
        let Some(id) = self.free.pop() else {
            self.stats.full += 1;
            return Err(NeighError::Full { capacity: self.cfg.capacity });
        };
        let s = &self.shared.slots[id as usize];
        // The generation changes before the new MAC is published (Release
        // below): see `PendingQueue::drain_resolved`.
        s.gen.fetch_add(1, Ordering::AcqRel);
        let a = &self.shared.addrs[id as usize];
        let (v, v6) = match e.ip {
            IpAddr::V4(x) => (u128::from(u32::from(x)), 0),
            IpAddr::V6(x) => (u128::from(x), 1),
        };
        a.hi.store((v >> 64) as u64, Ordering::Relaxed);
        a.lo.store(v as u64, Ordering::Relaxed);
        a.v6.store(v6, Ordering::Relaxed);
        s.probes.store(0, Ordering::Relaxed);
        s.last_solicit.store(0, Ordering::Relaxed);
        s.state.store(e.state.public() as u8, Ordering::Relaxed);
        s.mac.store(e.state.word(e.mac), Ordering::Release);
        self.entries[id as usize] = Some(e);
        self.map.insert((e.port, e.ip), id);
        self.index_dirty = true;
        self.stats.created += 1;
        Ok(id)
    }

    fn free_slot(&mut self, id: u32) {
        let Some(e) = self.entries.get_mut(id as usize).and_then(Option::take) else { return };
        self.map.remove(&(e.port, e.ip));
        let s = &self.shared.slots[id as usize];
        // Workers that still hold the id this loop drop instead of queueing;
        // packets already queued see the new generation and are dropped.
        s.mac.store(W_FAILED, Ordering::Release);
        s.gen.fetch_add(1, Ordering::AcqRel);
        s.state.store(0, Ordering::Relaxed);
        self.limbo.push(id);
        self.index_dirty = true;
        self.stats.removed += 1;
    }

    /// Changes an entry's state and MAC and publishes the word workers read.
    fn set(&mut self, id: u32, state: State, mac: Option<MacAddr>) {
        let Some(Some(e)) = self.entries.get_mut(id as usize) else { return };
        let old = e.state.public();
        e.state = state;
        e.mac = mac;
        let s = &self.shared.slots[id as usize];
        if state.public() != old || matches!(state, State::Reachable { .. }) {
            // A new state (or a fresh confirmation) starts a new probe count.
            s.probes.store(0, Ordering::Relaxed);
        }
        s.state.store(state.public() as u8, Ordering::Relaxed);
        s.mac.store(state.word(mac), Ordering::Release);
    }

    /// Publishes the index if entries were added or removed.
    fn flush(&mut self) {
        if !self.index_dirty {
            return;
        }
        let idx = NeighIndex::build(self.map.iter().map(|(&k, &v)| (k, v)), self.map.len());
        self.shared.index.store(Arc::new(idx));
        self.index_dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn mac_word_round_trips() {
        let m = MacAddr([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]);
        assert_eq!(mac_bits(m), 0x1234_5678_9abc);
        assert_eq!(bits_mac(W_VALID | W_PROBE | mac_bits(m)), m);
        assert_eq!(State::Static.word(Some(m)), W_VALID | 0x1234_5678_9abc);
        assert_eq!(State::Stale { since: 0 }.word(Some(m)), W_VALID | W_PROBE | 0x1234_5678_9abc);
        assert_eq!(State::Incomplete { since: 0 }.word(None), 0);
        assert_eq!(State::Failed { since: 0 }.word(Some(m)), W_FAILED);
    }

    #[test]
    fn index_finds_every_key_and_separates_ports_and_families() {
        let mut items = Vec::new();
        for i in 0..1000u32 {
            items.push(((PortId((i % 3) as u16), IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))), i));
            items.push(((PortId(0), IpAddr::V6(Ipv6Addr::from(u128::from(i) | 0xfe80 << 112))), 10_000 + i));
        }
        let idx = NeighIndex::build(items.iter().copied(), items.len());
        assert_eq!(idx.len(), 2000);
        for ((p, ip), id) in &items {
            assert_eq!(idx.find(*p, *ip), Some(NeighId(*id)), "{p:?} {ip}");
        }
        assert_eq!(idx.find(PortId(1), v4("10.0.0.0")), None, "10.0.0.0 is on port 0");
        assert_eq!(idx.find(PortId(0), v4("10.0.0.0")), Some(NeighId(0)));
        // ::a00:0 (v6) is not 10.0.0.0 (v4).
        assert_eq!(idx.find(PortId(0), IpAddr::V6(Ipv6Addr::from(0x0a00_0000u128))), None);
        assert_eq!(NeighIndex::empty().find(PortId(0), v4("10.0.0.1")), None);
    }

    #[test]
    fn nd_options_are_walked_strictly() {
        let mac = [2, 0, 0, 0, 0, 9];
        let mut o = vec![OPT_SOURCE_LL, 1];
        o.extend_from_slice(&mac);
        assert_eq!(nd_lladdr(&o, OPT_SOURCE_LL), Ok(Some(MacAddr(mac))));
        assert_eq!(nd_lladdr(&o, OPT_TARGET_LL), Ok(None));
        // A nonce option (type 14, 8 bytes) before it is skipped.
        let mut n = vec![14, 1, 1, 2, 3, 4, 5, 6];
        n.extend_from_slice(&o);
        assert_eq!(nd_lladdr(&n, OPT_SOURCE_LL), Ok(Some(MacAddr(mac))));
        assert_eq!(nd_lladdr(&[1, 0, 0, 0, 0, 0, 0, 0], OPT_SOURCE_LL), Err(()), "zero length");
        assert_eq!(nd_lladdr(&[1, 2, 0, 0, 0, 0, 0, 0], OPT_SOURCE_LL), Err(()), "past the end");
        assert_eq!(nd_lladdr(&[1], OPT_SOURCE_LL), Err(()), "one byte");
        assert_eq!(nd_lladdr(&[1, 1, 1, 0, 0, 0, 0, 0], OPT_SOURCE_LL), Ok(None), "multicast MAC");
        assert_eq!(nd_lladdr(&[], OPT_SOURCE_LL), Ok(None));
    }

    #[test]
    fn miss_filter_reports_once_per_interval() {
        let mut f = MissFilter::new(16);
        let (p, ip) = (PortId(1), v4("10.0.0.7"));
        assert!(f.report(p, ip, 1000, 100));
        assert!(!f.report(p, ip, 1050, 100));
        assert!(f.report(PortId(2), ip, 1050, 100), "another port is another key");
        assert!(f.report(p, ip, 1100, 100), "the interval has passed");
        assert!(!f.report(p, ip, 1100, 100));
    }

    #[test]
    fn solicited_node_address() {
        let a: Ipv6Addr = "2001:db8::abcd:ef12:3456".parse().expect("a");
        assert_eq!(solicited_node(a), "ff02::1:ff12:3456".parse::<Ipv6Addr>().expect("a"));
    }

    #[test]
    fn ticks_convert_without_overflow() {
        assert_eq!(ticks(Duration::from_secs(30), 1000), 30_000);
        assert_eq!(ticks(Duration::from_millis(1), 3_000_000_000), 3_000_000);
        assert_eq!(ticks(Duration::MAX, u64::MAX), u64::MAX);
    }
}
