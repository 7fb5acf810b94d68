//! Stateful ACL sessions: a `permit-stateful` rule creates a session, and
//! the session admits the flow's replies (and further packets of the
//! direction that opened it) before any rule is consulted.
//!
//! # Shape
//!
//! [`SessionTable`] is one fixed-capacity hash table shared by every worker
//! (the two directions of a flow may arrive on different cores). It is
//! allocated once; lookups and inserts never allocate, lock, or panic.
//!
//! - Slots are 64-byte entries (`Slot`: one control word, the key in five
//!   words, the creation time), grouped in buckets of 16.
//! - Every bucket has a 64-byte line of 32-bit tags (a fingerprint of the
//!   key last written into each slot). A lookup reads the tag lines of the
//!   flow's two buckets and then only the slots whose tag matches: a miss
//!   costs two cache lines, a hit two or three.
//!   [`SessionTable::lookup_batch`] issues these loads for up to [`BATCH`]
//!   keys together so their cache misses overlap.
//! - Two-choice placement: a flow lives in its primary or its secondary
//!   bucket (both from one hash). An insert uses the primary while it is
//!   less than half full, else whichever of the two has fewer live slots.
//!   This fills ~85% of the table before the first bucket overflows, where
//!   one bucket (or a linear window of 16) overflows at ~40%.
//!
//! # Keys and directions
//!
//! A session stores the key of the packet that created it (the *forward*
//! orientation). A packet matching it as-is is [`Lookup::Forward`]; one
//! matching its reverse (addresses and ports swapped) is [`Lookup::Reply`].
//! Both directions hash alike: the hash is taken over the *canonical*
//! orientation, the smaller of the key and its reverse (as word arrays).
//! `tcp_flags` is not part of the key.
//!
//! ICMP and ICMPv6 keys carry the type in `sport` and the code in `dport`.
//! Only query messages have replies: echo (8/0, ICMPv6 128/129), timestamp
//! (13/14), information (15/16), address mask (17/18) and ICMPv6 node
//! information (139/140). The reverse of a reply is the request it answers
//! (addresses swapped, reply type mapped to request type, same code), and
//! the canonical orientation of an ICMP query is the request's. So a
//! session opened by an echo request from A to B admits echo replies from
//! B to A and further requests from A, but not requests from B. Other ICMP
//! types (errors, or a session opened by a reply type) have no reverse:
//! such a session admits only its forward direction. Simplification: `Key`
//! has no ICMP identifier, so ICMP sessions are keyed per address pair,
//! family, type and code, not per echo identifier — all pings between the
//! same two hosts share one session. ICMP errors about a session's flow
//! ("related" traffic) are not admitted by it.
//!
//! # Time
//!
//! Time is passed in by the caller as `now: u64` seconds of a monotonic
//! clock of its choosing (the workers use [`crate::tsc::secs`] of the TSC,
//! taken once per burst), so tests control it. Seconds are fine-grained
//! enough for firewall timeouts and let a busy session write its control
//! word at most once per second. The table keeps the low 32 bits and
//! compares ages as signed 32-bit differences, so the clock may wrap, and
//! a worker whose clock lags another's by a little never takes a session
//! stamped "in the future" for expired; timeouts above `i32::MAX` seconds
//! never expire. Expired sessions are treated as absent and their slots
//! are reused by inserts; [`SessionTable::expire`] clears them in bulk
//! (control side, optional).
//!
//! # States and timeouts (defaults of [`SessionConfig`])
//!
//! | state            | entered when                                          | timeout        |
//! |------------------|-------------------------------------------------------|----------------|
//! | `TcpSynSent`     | created by a TCP packet                               | 30 s opening   |
//! | `TcpSynRecv`     | a reply with SYN (SYN-ACK, or simultaneous open)      | 30 s opening   |
//! | `TcpEstablished` | then a forward ACK without SYN; or, from `TcpSynSent`, a reply without SYN (a flow picked up mid-stream) | 7440 s |
//! | `TcpFinWait`     | a FIN from one side                                   | 120 s half-closed |
//! | `TcpClosed`      | FINs from both sides, or an RST from either           | 10 s closing   |
//! | `UdpNew` / `UdpReplied` | created / a reply seen                         | 30 s / 120 s   |
//! | `IcmpNew` / `IcmpReplied` | created / a reply seen                       | 30 s           |
//! | `OtherNew` / `OtherReplied` | other protocols                            | 600 s          |
//!
//! A forward SYN (without ACK) on a `TcpClosed` session starts it over as
//! `TcpSynSent` (port reuse). Sequence numbers are not tracked, so an RST
//! with the right 5-tuple closes a session whatever its sequence number.
//! A closed session still admits packets until its short timeout ends.
//!
//! # When the buckets are full
//!
//! An insert first reuses an empty or expired slot. When both buckets hold
//! only live sessions, it evicts the oldest *unassured* session among them
//! (`TcpSynSent`, `TcpSynRecv`, `TcpClosed`, or UDP / ICMP / other never
//! replied to — Linux conntrack's "early drop"), so a flood of new flows
//! displaces half-open ones but never an established session. If there is
//! none, the insert fails with [`InsertError::Full`] and the caller drops
//! the packet as `session_table_full`.
//!
//! # Concurrency
//!
//! Each slot's control word `ctl` packs a 24-bit version, the state byte,
//! and 32 low bits: the last-seen time, or the claimer's fingerprint while
//! the version is odd ("busy"). It works as a seqlock:
//!
//! - A writer claims a slot with a compare-exchange from the value it
//!   examined (empty, expired, or an eviction victim) to `version + 1`
//!   (odd), writes its tag, issues a `SeqCst` fence (which is also the
//!   seqlock's release fence), writes the key words, and publishes with a
//!   `Release` store of `version + 2` and the initial state.
//! - A reader loads `ctl` (`Acquire`), skips busy or empty slots, reads the
//!   key words, issues an `Acquire` fence and re-reads `ctl`: the key is
//!   whole if the version did not change. It never sees a half-written key.
//! - Refreshing the time and advancing the state is a compare-exchange on
//!   `ctl` that keeps the version, so it fails (and the session is treated
//!   as gone) if the slot was reclaimed meanwhile. Clearing and expiring
//!   are compare-exchanges to the empty state with the same version.
//!
//! No duplicates: two workers inserting the same flow at once each claim a
//! slot, write the tag, fence, then scan the flow's buckets for another
//! claim or copy. The `SeqCst` fences guarantee at least one of them sees
//! the other (store-buffering with fences). A claimer that finds a live
//! copy, or a busy claim with the flow's fingerprint at an earlier position
//! in the probe order, gives its slot back empty and starts over, which
//! finds the survivor. A claimer that finds a later busy claim waits for it
//! to publish or yield, and so does an insert that meets a busy claim with
//! its flow's fingerprint before claiming. Claimers wait only for later
//! positions, so there is no cycle; waits spin a bounded number of times
//! (a stalled claimer, e.g. a preempted thread, ends in
//! [`InsertError::Busy`], never in a duplicate). An expired copy of the
//! flow met on the way is retired, so a worker whose clock lags cannot
//! revive it next to the new one. The 24-bit version
//! can in theory wrap under a reader stalled across 2^23 reuses of one
//! slot; this is ignored.
//!
//! # Counters
//!
//! The table keeps no counters (no shared atomics written per packet).
//! Lookups count nothing (the ACL stage counts its verdicts); each worker
//! feeds its inserts' results to its own [`SessionCounters`]
//! (single-writer [`Counter`]s). [`SessionTable::stats`] scans the table
//! for occupancy.

use super::Key;
use crate::ctlword::{Ctl, CODE_MASK};
use crate::wire::ip_proto;
use crate::wire::tcp::flags as tcpf;
use ports::counter::Counter;
use std::hash::BuildHasher;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Slots per bucket (one 64-byte line of 32-bit tags).
const BUCKET: usize = 16;
/// Smallest table: one bucket.
pub const MIN_CAPACITY: usize = BUCKET;
/// Largest table (64 M sessions, 4 GiB of slots).
pub const MAX_CAPACITY: usize = 1 << 26;

/// Keys whose loads [`SessionTable::lookup_batch`] interleaves.
pub const BATCH: usize = 16;
/// Times an insert starts over after yielding to a concurrent insert.
const MAX_ATTEMPTS: usize = 4;
/// Spins waiting for another worker's claim to be published.
const SPIN: u32 = 1 << 12;
/// Re-reads of a slot whose version changed under the reader.
const READ_RETRIES: usize = 8;
/// Compare-exchange attempts to refresh a session under contention; after
/// that the refresh is skipped (another worker just wrote a near-equal one).
const TOUCH_RETRIES: usize = 16;

const FIN: u8 = tcpf::FIN as u8;
const SYN: u8 = tcpf::SYN as u8;
const RST: u8 = tcpf::RST as u8;
const ACK: u8 = tcpf::ACK as u8;

// The state byte: a code in the low four bits, and FIN-seen bits.
const EMPTY: u8 = 0;
const TCP_SYN_SENT: u8 = 1;
const TCP_SYN_RECV: u8 = 2;
const TCP_ESTABLISHED: u8 = 3;
const TCP_FIN_WAIT: u8 = 4;
const TCP_CLOSED: u8 = 5;
const UDP_NEW: u8 = 6;
const UDP_REPLIED: u8 = 7;
const ICMP_NEW: u8 = 8;
const ICMP_REPLIED: u8 = 9;
const OTHER_NEW: u8 = 10;
const OTHER_REPLIED: u8 = 11;
/// A FIN was seen from the side that opened the session.
const FIN_FWD: u8 = 0x10;
/// A FIN was seen from the replying side.
const FIN_REV: u8 = 0x20;

const M1: u64 = 0x9E37_79B9_7F4A_7C15;
const M2: u64 = 0xBF58_476D_1CE4_E5B9;

/// Timeouts (seconds) and size of a [`SessionTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Slots; rounded up to a power of two within
    /// [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]. 64 bytes each, plus 4 of tags.
    pub capacity: usize,
    /// TCP before the handshake completes (`TcpSynSent`, `TcpSynRecv`).
    pub tcp_opening: u32,
    /// TCP established.
    pub tcp_established: u32,
    /// TCP after a FIN from one side.
    pub tcp_half_closed: u32,
    /// TCP after FINs from both sides or an RST.
    pub tcp_closing: u32,
    /// UDP with no reply seen yet.
    pub udp_unreplied: u32,
    /// UDP after a reply.
    pub udp: u32,
    /// ICMP / ICMPv6 queries.
    pub icmp: u32,
    /// Any other protocol.
    pub other: u32,
    /// Hash seed; `None` picks a random one (keeps crafted collisions out).
    pub hash_seed: Option<u64>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            capacity: 1 << 20,
            tcp_opening: 30,
            tcp_established: 7440,
            tcp_half_closed: 120,
            tcp_closing: 10,
            udp_unreplied: 30,
            udp: 120,
            icmp: 30,
            other: 600,
            hash_seed: None,
        }
    }
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// No live session: classify with the rules.
    None,
    /// The direction that opened the session.
    Forward,
    /// The reply direction.
    Reply,
}

/// What a successful insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Inserted {
    /// A new session in a free slot.
    Created,
    /// A new session in the slot of an expired one.
    Reclaimed,
    /// A new session that evicted a live unassured one (the buckets were
    /// full).
    Evicted,
    /// The flow already had a live session (in either direction); it was
    /// refreshed as a lookup would.
    Existed,
}

/// Why an insert failed. The packet is dropped (or, for `Busy`, may be
/// admitted: its rule permitted it, and the session is being created).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InsertError {
    /// Both buckets of the flow hold only live, assured sessions.
    Full,
    /// Another worker was creating a session with this flow's fingerprint
    /// and did not finish within the spin budget (it was preempted, or the
    /// race repeated [`MAX_ATTEMPTS`] times).
    Busy,
}

impl InsertError {
    /// The drop-counter name.
    pub fn name(self) -> &'static str {
        match self {
            InsertError::Full => "session_table_full",
            InsertError::Busy => "session_insert_busy",
        }
    }
}

/// A session's state, for reading the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    TcpSynSent,
    TcpSynRecv,
    TcpEstablished,
    TcpFinWait,
    TcpClosed,
    UdpNew,
    UdpReplied,
    IcmpNew,
    IcmpReplied,
    OtherNew,
    OtherReplied,
}

impl SessionState {
    pub const COUNT: usize = 11;
    pub const ALL: [SessionState; SessionState::COUNT] = [
        SessionState::TcpSynSent,
        SessionState::TcpSynRecv,
        SessionState::TcpEstablished,
        SessionState::TcpFinWait,
        SessionState::TcpClosed,
        SessionState::UdpNew,
        SessionState::UdpReplied,
        SessionState::IcmpNew,
        SessionState::IcmpReplied,
        SessionState::OtherNew,
        SessionState::OtherReplied,
    ];

    fn of_code(code: u8) -> Option<SessionState> {
        (code as usize).checked_sub(1).and_then(|i| SessionState::ALL.get(i)).copied()
    }

    /// Dense index (for per-state counts).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            SessionState::TcpSynSent => "tcp_syn_sent",
            SessionState::TcpSynRecv => "tcp_syn_recv",
            SessionState::TcpEstablished => "tcp_established",
            SessionState::TcpFinWait => "tcp_fin_wait",
            SessionState::TcpClosed => "tcp_closed",
            SessionState::UdpNew => "udp_new",
            SessionState::UdpReplied => "udp_replied",
            SessionState::IcmpNew => "icmp_new",
            SessionState::IcmpReplied => "icmp_replied",
            SessionState::OtherNew => "other_new",
            SessionState::OtherReplied => "other_replied",
        }
    }
}

/// One live session, as read by [`SessionTable::for_each`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The key of the packet that opened it (`tcp_flags` is 0).
    pub key: Key,
    pub state: SessionState,
    /// A FIN was seen from the opener / from the replier.
    pub fin_forward: bool,
    pub fin_reply: bool,
    /// Creation and last-seen times (the caller's seconds).
    pub created: u32,
    pub last_seen: u32,
    /// Seconds left before it expires, if nothing refreshes it.
    pub expires_in: u32,
}

/// Per-worker insert counters: only the owning worker writes them
/// ([`SessionCounters::record`] each insert's result).
#[derive(Debug, Default)]
pub struct SessionCounters {
    /// New sessions (including reclaimed and evicting ones).
    pub created: Counter,
    /// Inserts that found the flow's session already there.
    pub existed: Counter,
    /// Inserts that failed with [`InsertError::Full`] (`session_table_full`).
    pub table_full: Counter,
    /// Inserts that failed with [`InsertError::Busy`].
    pub insert_busy: Counter,
    /// New sessions placed in the slot of an expired one (expirations seen).
    pub reclaimed: Counter,
    /// New sessions that evicted a live unassured one.
    pub evicted: Counter,
}

impl SessionCounters {
    /// Counts the result of one [`SessionTable::insert`].
    #[inline]
    pub fn record(&self, r: Result<Inserted, InsertError>) {
        match r {
            Ok(Inserted::Existed) => self.existed.inc(),
            Ok(new) => {
                self.created.inc();
                match new {
                    Inserted::Reclaimed => self.reclaimed.inc(),
                    Inserted::Evicted => self.evicted.inc(),
                    _ => {}
                }
            }
            Err(InsertError::Full) => self.table_full.inc(),
            Err(InsertError::Busy) => self.insert_busy.inc(),
        }
    }

    /// Every counter by name.
    pub fn by_name(&self) -> [(&'static str, u64); 6] {
        [
            ("session_created", self.created.get()),
            ("session_existed", self.existed.get()),
            (InsertError::Full.name(), self.table_full.get()),
            (InsertError::Busy.name(), self.insert_busy.get()),
            ("session_reclaimed", self.reclaimed.get()),
            ("session_evicted", self.evicted.get()),
        ]
    }
}

/// Occupancy of the table at one time (a scan; control side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub capacity: usize,
    /// Live sessions.
    pub live: usize,
    /// Slots holding an expired session not yet reused or cleared.
    pub expired: usize,
    /// Live sessions per [`SessionState::index`].
    pub by_state: [usize; SessionState::COUNT],
}

/// One session slot: one cache line.
#[repr(C, align(64))]
#[derive(Default)]
struct Slot {
    ctl: AtomicU64,
    /// src (low, high), dst (low, high), ports | proto | family.
    key: [AtomicU64; 5],
    created: AtomicU32,
}

/// A bucket's fingerprints: one cache line. Hints only (0: never used);
/// written only by the slot's claimer while the slot is busy.
#[repr(C, align(64))]
#[derive(Default)]
struct Tags([AtomicU32; BUCKET]);

const _: () = assert!(std::mem::size_of::<Slot>() == 64);
const _: () = assert!(std::mem::size_of::<Tags>() == 64);

type Words = [u64; 5];

#[inline(always)]
fn words(k: &Key) -> Words {
    [
        k.src as u64,
        (k.src >> 64) as u64,
        k.dst as u64,
        (k.dst >> 64) as u64,
        k.sport as u64 | (k.dport as u64) << 16 | (k.proto as u64) << 32 | (k.v6 as u64) << 40,
    ]
}

fn key_of(w: &Words) -> Key {
    Key {
        src: w[0] as u128 | (w[1] as u128) << 64,
        dst: w[2] as u128 | (w[3] as u128) << 64,
        sport: w[4] as u16,
        dport: (w[4] >> 16) as u16,
        proto: (w[4] >> 32) as u8,
        tcp_flags: 0,
        v6: (w[4] >> 40) & 1 == 1,
    }
}

#[inline(always)]
fn is_icmp(k: &Key) -> bool {
    if k.v6 {
        k.proto == ip_proto::ICMPV6
    } else {
        k.proto == ip_proto::ICMP
    }
}

/// The request type an ICMP reply type answers.
#[inline(always)]
fn icmp_request_of(v6: bool, ty: u16) -> Option<u16> {
    match (v6, ty) {
        (false, 0) => Some(8),
        (false, 14) => Some(13),
        (false, 16) => Some(15),
        (false, 18) => Some(17),
        (true, 129) => Some(128),
        (true, 140) => Some(139),
        _ => None,
    }
}

/// The key of the forward packet `k` would be a reply to, if any.
#[inline(always)]
fn reverse(k: &Key) -> Option<Key> {
    if is_icmp(k) {
        let ty = icmp_request_of(k.v6, k.sport)?;
        Some(Key { src: k.dst, dst: k.src, sport: ty, ..*k })
    } else {
        Some(Key { src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, ..*k })
    }
}

/// Multiply-xorshift over the key words, then a finaliser.
#[inline(always)]
fn hash(w: &Words, seed: u64) -> u64 {
    let mut h = seed;
    for &x in w {
        h = (h ^ x).wrapping_mul(M1);
        h ^= h >> 32;
    }
    h = h.wrapping_mul(M2);
    h ^ (h >> 31)
}

/// The state a session starts in, created by `k`.
fn initial_state(k: &Key) -> u8 {
    if k.proto == ip_proto::TCP {
        tcp_next(TCP_SYN_SENT, false, k.tcp_flags)
    } else if k.proto == ip_proto::UDP {
        UDP_NEW
    } else if is_icmp(k) {
        ICMP_NEW
    } else {
        OTHER_NEW
    }
}

/// The state after a packet in direction `reply` with TCP `flags`.
#[inline]
fn next_state(s: u8, reply: bool, flags: u8) -> u8 {
    match s & CODE_MASK {
        UDP_NEW | ICMP_NEW | OTHER_NEW if reply => (s & CODE_MASK) + 1,
        TCP_SYN_SENT..=TCP_CLOSED => tcp_next(s, reply, flags),
        _ => s,
    }
}

fn tcp_next(s: u8, reply: bool, flags: u8) -> u8 {
    let code = s & CODE_MASK;
    let mut fins = s & (FIN_FWD | FIN_REV);
    if flags & RST != 0 {
        return TCP_CLOSED | fins;
    }
    if code == TCP_CLOSED {
        // The opener starting over on the same 5-tuple (port reuse).
        if !reply && flags & (SYN | ACK) == SYN {
            return TCP_SYN_SENT;
        }
        return s;
    }
    if flags & FIN != 0 {
        fins |= if reply { FIN_REV } else { FIN_FWD };
    }
    if fins == FIN_FWD | FIN_REV {
        return TCP_CLOSED | fins;
    }
    if fins != 0 {
        return TCP_FIN_WAIT | fins;
    }
    match code {
        TCP_SYN_SENT if reply && flags & SYN != 0 => TCP_SYN_RECV,
        TCP_SYN_SENT if reply => TCP_ESTABLISHED,
        TCP_SYN_RECV if !reply && flags & (SYN | ACK) == ACK => TCP_ESTABLISHED,
        c => c,
    }
}

/// Sessions an insert may evict when the buckets are full.
#[inline]
fn unassured(code: u8) -> bool {
    matches!(code, TCP_SYN_SENT | TCP_SYN_RECV | TCP_CLOSED | UDP_NEW | ICMP_NEW | OTHER_NEW)
}

/// Signed age of a time stamp: negative when it is ahead of `now`.
#[inline(always)]
fn age(now: u32, then: u32) -> i64 {
    now.wrapping_sub(then) as i32 as i64
}

/// A key prepared for the table: both orientations, fingerprint, buckets.
struct Query {
    fwd: Words,
    rev: Words,
    has_rev: bool,
    fp: u32,
    buckets: [usize; 2],
    nbuckets: usize,
}

impl Query {
    /// `Some(reply?)` when stored words `w` are this flow.
    #[inline(always)]
    fn matches(&self, w: &Words) -> Option<bool> {
        if *w == self.fwd {
            Some(false)
        } else if self.has_rev && *w == self.rev {
            Some(true)
        } else {
            None
        }
    }

    /// (position in probe order, slot index) over the flow's buckets.
    #[inline(always)]
    fn slots(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.buckets[..self.nbuckets]
            .iter()
            .enumerate()
            .flat_map(|(n, &b)| (0..BUCKET).map(move |j| (n * BUCKET + j, b * BUCKET + j)))
    }
}

/// A consistent read of a slot.
enum Read {
    Empty,
    Busy(Ctl),
    Published(Ctl, Words),
    /// The version kept changing under the reader.
    Unstable,
}

/// A slot examined by an insert, after waiting out a claim of this flow.
enum Settled {
    /// Empty, another flow, or a claim with another fingerprint.
    Other,
    /// This flow's published session (reply orientation if `true`).
    Match(Ctl, bool),
    /// A busy claim with this flow's fingerprint (only when not waiting).
    Claimed,
    /// The claim did not settle within the spin budget.
    Timeout,
}

/// The outcome of checking a fresh claim against concurrent inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    /// No other claim or live copy of the flow: publish.
    Clear,
    /// An earlier claim or a live copy exists: give the slot back, retry.
    Yield,
    /// A later claim did not settle in time: give the slot back, fail.
    Timeout,
}

/// The stateful session table. Shared (`&self`) by every worker.
pub struct SessionTable {
    slots: Box<[Slot]>,
    tags: Box<[Tags]>,
    bucket_mask: usize,
    seed: u64,
    /// Per state code.
    timeouts: [u32; 16],
    cfg: SessionConfig,
}

impl std::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable").field("capacity", &self.slots.len()).field("cfg", &self.cfg).finish()
    }
}

impl SessionTable {
    /// Allocates the table (all of it, once).
    pub fn new(cfg: SessionConfig) -> SessionTable {
        let capacity = cfg.capacity.clamp(MIN_CAPACITY, MAX_CAPACITY).next_power_of_two();
        let nbuckets = capacity / BUCKET;
        let seed = cfg.hash_seed.unwrap_or_else(|| std::collections::hash_map::RandomState::new().hash_one(M2));
        let mut timeouts = [0u32; 16];
        timeouts[TCP_SYN_SENT as usize] = cfg.tcp_opening;
        timeouts[TCP_SYN_RECV as usize] = cfg.tcp_opening;
        timeouts[TCP_ESTABLISHED as usize] = cfg.tcp_established;
        timeouts[TCP_FIN_WAIT as usize] = cfg.tcp_half_closed;
        timeouts[TCP_CLOSED as usize] = cfg.tcp_closing;
        timeouts[UDP_NEW as usize] = cfg.udp_unreplied;
        timeouts[UDP_REPLIED as usize] = cfg.udp;
        timeouts[ICMP_NEW as usize] = cfg.icmp;
        timeouts[ICMP_REPLIED as usize] = cfg.icmp;
        timeouts[OTHER_NEW as usize] = cfg.other;
        timeouts[OTHER_REPLIED as usize] = cfg.other;
        SessionTable {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            tags: (0..nbuckets).map(|_| Tags::default()).collect(),
            bucket_mask: nbuckets - 1,
            seed,
            timeouts,
            cfg: SessionConfig { capacity, hash_seed: Some(seed), ..cfg },
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The configuration in effect (capacity rounded, seed chosen).
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    #[inline(always)]
    fn query(&self, k: &Key) -> Query {
        let fwd = words(k);
        let (rev, has_rev) = match reverse(k) {
            Some(r) => (words(&r), true),
            None => (fwd, false),
        };
        // ICMP queries hash in the request's orientation; the rest in the
        // smaller of the two.
        let canon = if has_rev && (is_icmp(k) || rev < fwd) { &rev } else { &fwd };
        let h = hash(canon, self.seed);
        let fp = (h >> 32) as u32 | 1;
        let b1 = h as usize & self.bucket_mask;
        let alt = ((fp as u64).wrapping_mul(M1) >> 32) as usize | 1;
        let b2 = (b1 ^ alt) & self.bucket_mask;
        Query { fwd, rev, has_rev, fp, buckets: [b1, b2], nbuckets: if b2 == b1 { 1 } else { 2 } }
    }

    #[inline(always)]
    fn tag(&self, i: usize) -> &AtomicU32 {
        &self.tags[i / BUCKET].0[i % BUCKET]
    }

    #[inline(always)]
    fn expired(&self, c: Ctl, now: u32) -> bool {
        age(now, c.low()) > self.timeouts[c.code() as usize] as i64
    }

    /// Seqlock read of slot `i`.
    #[inline(always)]
    fn read(&self, i: usize) -> Read {
        let s = &self.slots[i];
        for _ in 0..READ_RETRIES {
            let c1 = Ctl(s.ctl.load(Ordering::Acquire));
            if c1.busy() {
                return Read::Busy(c1);
            }
            if c1.code() == EMPTY {
                return Read::Empty;
            }
            let w = [
                s.key[0].load(Ordering::Relaxed),
                s.key[1].load(Ordering::Relaxed),
                s.key[2].load(Ordering::Relaxed),
                s.key[3].load(Ordering::Relaxed),
                s.key[4].load(Ordering::Relaxed),
            ];
            fence(Ordering::Acquire);
            let c2 = Ctl(s.ctl.load(Ordering::Relaxed));
            if c2.ver() == c1.ver() {
                // Same version: the key is whole. The state and time may
                // have moved on (refreshes, or cleared).
                return if c2.code() == EMPTY { Read::Empty } else { Read::Published(c2, w) };
            }
        }
        Read::Unstable
    }

    /// Refreshes session `i` (read as `cur`) for a packet: time and state.
    /// `false` if the session expired or left the slot meanwhile.
    #[inline]
    fn touch(&self, i: usize, mut cur: Ctl, reply: bool, flags: u8, now: u32) -> bool {
        let ver = cur.ver();
        let ctl = &self.slots[i].ctl;
        for _ in 0..TOUCH_RETRIES {
            if cur.ver() != ver || cur.code() == EMPTY || self.expired(cur, now) {
                return false;
            }
            let last = if age(now, cur.low()) > 0 { now } else { cur.low() };
            let new = Ctl::new(ver, next_state(cur.state(), reply, flags), last);
            if new == cur {
                return true;
            }
            // Relaxed: state and time guard no other data, and an RMW
            // continues the release sequence of the publishing store.
            match ctl.compare_exchange_weak(cur.0, new.0, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(x) => cur = Ctl(x),
            }
        }
        true
    }

    /// Looks `k` up at time `now`; on a hit, refreshes the session and
    /// advances its state with `k.tcp_flags`.
    #[inline]
    pub fn lookup(&self, k: &Key, now: u64) -> Lookup {
        self.lookup_query(&self.query(k), k.tcp_flags, now as u32)
    }

    /// [`lookup`](Self::lookup) for a batch: `out[i]` is the result for
    /// `keys[i]` (up to the shorter of the two). The table loads of up to
    /// [`BATCH`] keys are issued together so their cache misses overlap:
    /// hashes and tag lines first, then the candidate slots, then the
    /// compares (which then hit the cache).
    pub fn lookup_batch(&self, keys: &[Key], now: u64, out: &mut [Lookup]) {
        let now = now as u32;
        for (keys, out) in keys.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let mut qs: [Option<Query>; BATCH] = Default::default();
            let mut warm = 0u32;
            for (q, k) in qs.iter_mut().zip(keys) {
                let x = self.query(k);
                // Touch both tag lines now; the loads overlap.
                warm ^= self.tags[x.buckets[0]].0[0].load(Ordering::Relaxed);
                warm ^= self.tags[x.buckets[1]].0[0].load(Ordering::Relaxed);
                *q = Some(x);
            }
            // A key whose tags all differ is a miss already.
            let mut candidate = [false; BATCH];
            for (q, c) in qs.iter().flatten().zip(candidate.iter_mut()) {
                if let Some((_, i)) = q.slots().find(|&(_, i)| self.tag(i).load(Ordering::Relaxed) == q.fp) {
                    warm ^= self.slots[i].ctl.load(Ordering::Relaxed) as u32;
                    *c = true;
                }
            }
            std::hint::black_box(warm);
            for (((q, k), o), c) in qs.iter().zip(keys).zip(out.iter_mut()).zip(candidate) {
                if let Some(q) = q {
                    *o = if c { self.lookup_query(q, k.tcp_flags, now) } else { Lookup::None };
                }
            }
        }
    }

    #[inline(always)]
    fn lookup_query(&self, q: &Query, tcp_flags: u8, now: u32) -> Lookup {
        for &b in &q.buckets[..q.nbuckets] {
            for (j, t) in self.tags[b].0.iter().enumerate() {
                if t.load(Ordering::Relaxed) != q.fp {
                    continue;
                }
                let i = b * BUCKET + j;
                let Read::Published(c, w) = self.read(i) else { continue };
                let Some(reply) = q.matches(&w) else { continue };
                if self.touch(i, c, reply, tcp_flags, now) {
                    return if reply { Lookup::Reply } else { Lookup::Forward };
                }
            }
        }
        Lookup::None
    }

    /// Examines slot `i` for the flow of `q`. A busy claim with the flow's
    /// fingerprint is waited for, unless `wait` is false.
    fn settle(&self, i: usize, q: &Query, wait: bool) -> Settled {
        for _ in 0..SPIN {
            match self.read(i) {
                Read::Busy(c) if c.low() == q.fp => {
                    if !wait {
                        return Settled::Claimed;
                    }
                }
                Read::Unstable => {}
                Read::Published(c, w) => {
                    return match q.matches(&w) {
                        Some(reply) => Settled::Match(c, reply),
                        None => Settled::Other,
                    }
                }
                Read::Busy(_) | Read::Empty => return Settled::Other,
            }
            std::hint::spin_loop();
        }
        Settled::Timeout
    }

    /// A slot for a new session: (slot, its control word as examined,
    /// evicting a live session?). `None` when the buckets are full.
    fn pick(&self, q: &Query, now: u32) -> Option<(usize, Ctl, bool)> {
        // (live slots in the bucket, first reusable slot, its ctl)
        let mut best: Option<(usize, usize, Ctl)> = None;
        // (age, slot, ctl) of the oldest unassured session
        let mut victim: Option<(i64, usize, Ctl)> = None;
        for (n, &b) in q.buckets[..q.nbuckets].iter().enumerate() {
            let mut live = 0;
            let mut first = None;
            for j in 0..BUCKET {
                let i = b * BUCKET + j;
                let c = Ctl(self.slots[i].ctl.load(Ordering::Acquire));
                if c.busy() {
                    live += 1;
                } else if c.code() == EMPTY || self.expired(c, now) {
                    first = first.or(Some((i, c)));
                } else {
                    live += 1;
                    let a = age(now, c.low());
                    if unassured(c.code()) && victim.is_none_or(|v| a > v.0) {
                        victim = Some((a, i, c));
                    }
                }
            }
            if let Some((i, c)) = first {
                if n == 0 && live < BUCKET / 2 {
                    return Some((i, c, false));
                }
                if best.is_none_or(|b| live < b.0) {
                    best = Some((live, i, c));
                }
            }
        }
        match (best, victim) {
            (Some((_, i, c)), _) => Some((i, c, false)),
            (None, Some((_, i, c))) => Some((i, c, true)),
            (None, None) => None,
        }
    }

    /// After claiming the slot at probe position `mine`: is another claim
    /// or copy of the flow in the way? See "No duplicates" above.
    fn verify(&self, q: &Query, mine: usize, now: u32) -> Verify {
        for (pos, i) in q.slots() {
            if pos == mine || self.tag(i).load(Ordering::Acquire) != q.fp {
                continue;
            }
            match self.settle(i, q, pos > mine) {
                Settled::Other => {}
                // An earlier claim of the flow wins.
                Settled::Claimed => return Verify::Yield,
                Settled::Timeout => return Verify::Timeout,
                Settled::Match(c, _) if !self.expired(c, now) => return Verify::Yield,
                Settled::Match(c, _) => {
                    // An expired copy: retire it, so a worker whose clock
                    // lags cannot revive it next to ours.
                    let dead = Ctl::new(c.ver(), EMPTY, 0);
                    if self.slots[i].ctl.compare_exchange(c.0, dead.0, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                        return Verify::Yield;
                    }
                }
            }
        }
        Verify::Clear
    }

    /// Creates a session for `k` (the packet a `permit-stateful` rule
    /// admitted) at time `now`, oriented as `k`. Idempotent: if the flow
    /// has a live session in either direction, it is refreshed instead.
    pub fn insert(&self, k: &Key, now: u64) -> Result<Inserted, InsertError> {
        let now = now as u32;
        let q = self.query(k);
        'attempt: for _ in 0..MAX_ATTEMPTS {
            // An existing copy: a live one is the answer; the slot of an
            // expired one is the place for the new session.
            let mut reuse = None;
            for (_, i) in q.slots() {
                if self.tag(i).load(Ordering::Acquire) != q.fp {
                    continue;
                }
                match self.settle(i, &q, true) {
                    Settled::Other | Settled::Claimed => {}
                    Settled::Timeout => break 'attempt,
                    Settled::Match(c, reply) if !self.expired(c, now) => {
                        if self.touch(i, c, reply, k.tcp_flags, now) {
                            return Ok(Inserted::Existed);
                        }
                        continue 'attempt;
                    }
                    Settled::Match(c, _) => reuse = reuse.or(Some((i, c, false))),
                }
            }
            let Some((i, seen, evict)) = reuse.or_else(|| self.pick(&q, now)) else {
                return Err(InsertError::Full);
            };
            // Claim: busy, with our fingerprint in the low bits.
            let slot = &self.slots[i];
            let busy = Ctl::new(seen.ver() + 1, seen.state(), q.fp);
            if slot.ctl.compare_exchange(seen.0, busy.0, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                continue;
            }
            self.tag(i).store(q.fp, Ordering::Release);
            // Orders the tag before the scan below (no two racing claimers
            // both miss each other) and the claim before the key writes
            // (the seqlock's release fence).
            fence(Ordering::SeqCst);
            let mine = q.slots().find(|&(_, s)| s == i).map_or(0, |(pos, _)| pos);
            match self.verify(&q, mine, now) {
                Verify::Clear => {}
                fail => {
                    // Give the slot back, empty. (Restoring an eviction
                    // victim could duplicate it: its flow may have been
                    // re-inserted elsewhere while the slot was busy. It
                    // was unassured and about to go anyway.) After
                    // yielding, the next attempt finds (or waits for) the
                    // other copy.
                    slot.ctl.store(Ctl::new(busy.ver() + 1, EMPTY, 0).0, Ordering::Release);
                    if fail == Verify::Timeout {
                        break 'attempt;
                    }
                    continue 'attempt;
                }
            }
            for (dst, w) in slot.key.iter().zip(q.fwd) {
                dst.store(w, Ordering::Relaxed);
            }
            slot.created.store(now, Ordering::Relaxed);
            slot.ctl.store(Ctl::new(busy.ver() + 1, initial_state(k), now).0, Ordering::Release);
            return Ok(if seen.code() == EMPTY {
                Inserted::Created
            } else if evict {
                Inserted::Evicted
            } else {
                Inserted::Reclaimed
            });
        }
        Err(InsertError::Busy)
    }

    /// Removes the flow's session (either direction). `true` if there was
    /// a live one.
    pub fn remove(&self, k: &Key, now: u64) -> bool {
        let now = now as u32;
        let q = self.query(k);
        for (_, i) in q.slots() {
            if self.tag(i).load(Ordering::Acquire) != q.fp {
                continue;
            }
            if let Read::Published(c, w) = self.read(i) {
                if q.matches(&w).is_some() && !self.expired(c, now) {
                    let dead = Ctl::new(c.ver(), EMPTY, 0);
                    if self.slots[i].ctl.compare_exchange(c.0, dead.0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Empties every slot for which `pred(ctl)` holds; returns how many.
    /// Slots being written at that moment are left alone.
    fn empty_where(&self, pred: impl Fn(Ctl) -> bool) -> usize {
        let mut n = 0;
        for s in self.slots.iter() {
            let mut c = Ctl(s.ctl.load(Ordering::Acquire));
            while !c.busy() && c.code() != EMPTY && pred(c) {
                let dead = Ctl::new(c.ver(), EMPTY, 0);
                match s.ctl.compare_exchange(c.0, dead.0, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        n += 1;
                        break;
                    }
                    Err(x) => c = Ctl(x),
                }
            }
        }
        n
    }

    /// Removes every session. Sessions inserted concurrently may survive.
    pub fn clear(&self) -> usize {
        self.empty_where(|_| true)
    }

    /// Empties the slots of sessions expired at `now`; returns how many.
    /// Optional (inserts reuse expired slots anyway); a full scan, for the
    /// control side.
    pub fn expire(&self, now: u64) -> usize {
        let now = now as u32;
        self.empty_where(|c| self.expired(c, now))
    }

    /// Calls `f` for every session live at `now` (a scan; control side).
    pub fn for_each(&self, now: u64, mut f: impl FnMut(&SessionInfo)) {
        let now = now as u32;
        for i in 0..self.slots.len() {
            let Read::Published(c, w) = self.read(i) else { continue };
            if self.expired(c, now) {
                continue;
            }
            let Some(state) = SessionState::of_code(c.code()) else { continue };
            let timeout = self.timeouts[c.code() as usize] as i64;
            f(&SessionInfo {
                key: key_of(&w),
                state,
                fin_forward: c.state() & FIN_FWD != 0,
                fin_reply: c.state() & FIN_REV != 0,
                created: self.slots[i].created.load(Ordering::Relaxed),
                last_seen: c.low(),
                expires_in: (timeout - age(now, c.low()).max(0)).clamp(0, u32::MAX as i64) as u32,
            });
        }
    }

    /// Occupancy at `now` (a scan; control side).
    pub fn stats(&self, now: u64) -> TableStats {
        let now = now as u32;
        let mut st = TableStats { capacity: self.capacity(), ..TableStats::default() };
        for s in self.slots.iter() {
            let c = Ctl(s.ctl.load(Ordering::Acquire));
            if c.busy() || c.code() == EMPTY {
                continue;
            }
            if self.expired(c, now) {
                st.expired += 1;
            } else if let Some(state) = SessionState::of_code(c.code()) {
                st.live += 1;
                st.by_state[state.index()] += 1;
            }
        }
        st
    }

    /// Live sessions at `now` (a scan; control side).
    pub fn len(&self, now: u64) -> usize {
        self.stats(now).live
    }

    /// No live session at `now`.
    pub fn is_empty(&self, now: u64) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TCP: u8 = ip_proto::TCP;
    const UDP: u8 = ip_proto::UDP;

    fn table(capacity: usize) -> SessionTable {
        SessionTable::new(SessionConfig { capacity, hash_seed: Some(7), ..SessionConfig::default() })
    }

    fn v4(src: u32, sport: u16, dst: u32, dport: u16, proto: u8) -> Key {
        Key { src: src as u128, dst: dst as u128, sport, dport, proto, tcp_flags: 0, v6: false }
    }

    fn tcp(src: u32, sport: u16, dst: u32, dport: u16, flags: u8) -> Key {
        Key { tcp_flags: flags, ..v4(src, sport, dst, dport, TCP) }
    }

    /// The other direction (ports swapped, flags kept).
    fn back(k: &Key) -> Key {
        Key { src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, ..*k }
    }

    fn with(k: &Key, flags: u8) -> Key {
        Key { tcp_flags: flags, ..*k }
    }

    fn icmp(v6: bool, src: u128, dst: u128, ty: u16, code: u16) -> Key {
        let proto = if v6 { ip_proto::ICMPV6 } else { ip_proto::ICMP };
        Key { src, dst, sport: ty, dport: code, proto, tcp_flags: 0, v6 }
    }

    /// The session of `k`'s flow (either orientation), read without
    /// refreshing it.
    fn info(t: &SessionTable, k: &Key, now: u64) -> Option<SessionInfo> {
        let want = [with(k, 0), with(&back(k), 0)];
        let mut found = None;
        t.for_each(now, |s| {
            if want.contains(&s.key) {
                assert!(found.is_none(), "two sessions for {k:?}");
                found = Some(*s);
            }
        });
        found
    }

    fn state(t: &SessionTable, k: &Key, now: u64) -> Option<SessionState> {
        info(t, k, now).map(|s| s.state)
    }

    #[test]
    fn layout_is_one_cache_line_per_slot() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        assert_eq!(std::mem::size_of::<Tags>(), 64);
    }

    #[test]
    fn capacity_is_rounded_up_and_clamped() {
        assert_eq!(table(0).capacity(), MIN_CAPACITY);
        assert_eq!(table(17).capacity(), 32);
        assert_eq!(table(100).capacity(), 128);
        assert_eq!(table(4096).capacity(), 4096);
        assert_eq!(table(4096).config().capacity, 4096);
        assert_eq!(table(64).config().hash_seed, Some(7));
        let random = SessionTable::new(SessionConfig { capacity: 16, ..SessionConfig::default() });
        assert!(random.config().hash_seed.is_some());
    }

    #[test]
    fn replies_and_the_same_direction_are_admitted_an_unrelated_flow_is_not() {
        let t = table(1024);
        let k = v4(0x0a00_0001, 40000, 0xc0a8_0001, 53, UDP);
        assert_eq!(t.lookup(&k, 100), Lookup::None);
        assert_eq!(t.insert(&k, 100), Ok(Inserted::Created));
        assert_eq!(t.lookup(&k, 101), Lookup::Forward);
        assert_eq!(t.lookup(&back(&k), 101), Lookup::Reply);
        // The server opening a flow of its own to the client's port, or
        // another client port: not admitted.
        assert_eq!(t.lookup(&v4(0xc0a8_0001, 53, 0x0a00_0001, 40001, UDP), 101), Lookup::None);
        assert_eq!(t.lookup(&v4(0x0a00_0001, 40001, 0xc0a8_0001, 53, UDP), 101), Lookup::None);
        assert_eq!(t.lookup(&v4(0x0a00_0002, 40000, 0xc0a8_0001, 53, UDP), 101), Lookup::None);
        assert_eq!(t.len(101), 1);
    }

    #[test]
    fn insert_is_idempotent_in_both_directions() {
        let t = table(1024);
        let c = SessionCounters::default();
        let k = tcp(1, 1000, 2, 80, SYN);
        for (key, want) in
            [(k, Inserted::Created), (k, Inserted::Existed), (back(&with(&k, SYN | ACK)), Inserted::Existed)]
        {
            let r = t.insert(&key, 5);
            c.record(r);
            assert_eq!(r, Ok(want));
        }
        assert_eq!(t.len(5), 1);
        assert_eq!((c.created.get(), c.existed.get()), (1, 2));
        // The existing session was advanced as a lookup would have.
        assert_eq!(state(&t, &k, 5), Some(SessionState::TcpSynRecv));
        assert_eq!(info(&t, &k, 5).map(|s| s.key), Some(with(&k, 0)), "the opener's orientation is kept");
    }

    #[test]
    fn a_key_differing_in_any_single_field_does_not_match() {
        let t = table(1024);
        let k = Key {
            src: 0x2001_0db8_0000_0000_0000_0000_0000_0001,
            dst: 0x2001_0db8_0000_0000_0000_0000_0000_0002,
            sport: 1234,
            dport: 443,
            proto: TCP,
            tcp_flags: 0,
            v6: true,
        };
        assert_eq!(t.insert(&k, 0), Ok(Inserted::Created));
        let variants = [
            ("src", Key { src: k.src ^ 1, ..k }),
            ("src high word", Key { src: k.src ^ (1 << 100), ..k }),
            ("dst", Key { dst: k.dst ^ 1, ..k }),
            ("dst high word", Key { dst: k.dst ^ (1 << 127), ..k }),
            ("sport", Key { sport: k.sport + 1, ..k }),
            ("dport", Key { dport: k.dport + 1, ..k }),
            ("proto", Key { proto: UDP, ..k }),
            ("family", Key { v6: false, ..k }),
        ];
        for (what, v) in variants {
            assert_eq!(t.lookup(&v, 1), Lookup::None, "{what}");
            assert_eq!(t.lookup(&back(&v), 1), Lookup::None, "{what} (reverse)");
        }
        // Only the flow itself, and its flags do not matter.
        assert_eq!(t.lookup(&with(&k, ACK), 1), Lookup::Forward);
        assert_eq!(t.lookup(&with(&back(&k), ACK), 1), Lookup::Reply);
        // The same numbers as IPv4 are another flow.
        let k4 = Key { src: 1, dst: 2, v6: false, ..k };
        let k6 = Key { v6: true, ..k4 };
        assert_eq!(t.insert(&k4, 1), Ok(Inserted::Created));
        assert_eq!(t.lookup(&k6, 1), Lookup::None);
        assert_eq!(t.lookup(&back(&k6), 1), Lookup::None);
    }

    #[test]
    fn tcp_handshake_reaches_established_and_expires_after_its_timeout() {
        let t = table(1024);
        let syn = tcp(0x0a00_0001, 50000, 0x0a00_0002, 22, SYN);
        assert_eq!(t.insert(&syn, 1000), Ok(Inserted::Created));
        assert_eq!(state(&t, &syn, 1000), Some(SessionState::TcpSynSent));
        assert_eq!(t.lookup(&back(&with(&syn, SYN | ACK)), 1001), Lookup::Reply);
        assert_eq!(state(&t, &syn, 1001), Some(SessionState::TcpSynRecv));
        assert_eq!(t.lookup(&with(&syn, ACK), 1002), Lookup::Forward);
        assert_eq!(state(&t, &syn, 1002), Some(SessionState::TcpEstablished));
        let s = info(&t, &syn, 1002).expect("session");
        assert_eq!((s.created, s.last_seen, s.expires_in), (1000, 1002, 7440));
        // Idle: alive up to the established timeout, gone after it.
        assert_eq!(t.len(1002 + 7440), 1);
        assert_eq!(t.len(1002 + 7441), 0);
        assert_eq!(t.lookup(&back(&with(&syn, ACK)), 1002 + 7441), Lookup::None);
        assert_eq!(t.lookup(&with(&syn, ACK), 1002 + 7441), Lookup::None);
    }

    #[test]
    fn tcp_unanswered_syn_expires_after_the_opening_timeout() {
        let t = table(1024);
        let syn = tcp(1, 1, 2, 2, SYN);
        assert!(t.insert(&syn, 0).is_ok());
        assert_eq!(t.len(30), 1);
        assert_eq!(t.len(31), 0);
        assert_eq!(t.stats(31).expired, 1);
        assert_eq!(t.lookup(&back(&with(&syn, SYN | ACK)), 31), Lookup::None);
    }

    fn established(t: &SessionTable, now: u64) -> Key {
        let syn = tcp(0x0a00_0001, 50000, 0x0a00_0002, 80, SYN);
        assert!(t.insert(&syn, now).is_ok());
        assert_eq!(t.lookup(&back(&with(&syn, SYN | ACK)), now), Lookup::Reply);
        assert_eq!(t.lookup(&with(&syn, ACK), now), Lookup::Forward);
        assert_eq!(state(t, &syn, now), Some(SessionState::TcpEstablished));
        with(&syn, ACK)
    }

    #[test]
    fn tcp_fin_from_both_sides_closes_with_a_short_timeout() {
        let t = table(1024);
        let k = established(&t, 0);
        assert_eq!(t.lookup(&with(&k, FIN | ACK), 10), Lookup::Forward);
        let s = info(&t, &k, 10).expect("session");
        assert_eq!((s.state, s.fin_forward, s.fin_reply), (SessionState::TcpFinWait, true, false));
        // Half-closed: the other side may still send for a while.
        assert_eq!(t.len(10 + 120), 1);
        assert_eq!(t.lookup(&back(&k), 100), Lookup::Reply);
        assert_eq!(t.lookup(&back(&with(&k, FIN | ACK)), 101), Lookup::Reply);
        let s = info(&t, &k, 101).expect("session");
        assert_eq!((s.state, s.fin_forward, s.fin_reply), (SessionState::TcpClosed, true, true));
        // The last ACK still passes; then the closing timeout.
        assert_eq!(t.lookup(&k, 102), Lookup::Forward);
        assert_eq!(t.len(112), 1);
        assert_eq!(t.len(113), 0);
    }

    #[test]
    fn tcp_half_close_expires_after_its_timeout() {
        let t = table(1024);
        let k = established(&t, 0);
        assert_eq!(t.lookup(&back(&with(&k, FIN | ACK)), 0), Lookup::Reply);
        assert_eq!(t.len(120), 1);
        assert_eq!(t.len(121), 0);
    }

    #[test]
    fn tcp_rst_closes_and_a_new_syn_reopens() {
        let t = table(1024);
        let k = established(&t, 0);
        assert_eq!(t.lookup(&back(&with(&k, RST)), 50), Lookup::Reply);
        assert_eq!(state(&t, &k, 50), Some(SessionState::TcpClosed));
        assert_eq!(t.len(60), 1);
        assert_eq!(t.len(61), 0);
        // Before it expires, the opener reuses the 5-tuple.
        let t = table(1024);
        let k = established(&t, 0);
        assert_eq!(t.lookup(&with(&k, RST), 1), Lookup::Forward);
        assert_eq!(t.lookup(&with(&k, SYN), 2), Lookup::Forward);
        assert_eq!(state(&t, &k, 2), Some(SessionState::TcpSynSent));
        // A SYN from the other side does not reopen it.
        assert_eq!(t.lookup(&with(&k, RST), 3), Lookup::Forward);
        assert_eq!(t.lookup(&back(&with(&k, SYN)), 4), Lookup::Reply);
        assert_eq!(state(&t, &k, 4), Some(SessionState::TcpClosed));
    }

    #[test]
    fn tcp_flow_picked_up_mid_stream_becomes_established_on_a_reply() {
        let t = table(1024);
        let k = tcp(3, 3333, 4, 4444, ACK);
        assert!(t.insert(&k, 0).is_ok());
        assert_eq!(state(&t, &k, 0), Some(SessionState::TcpSynSent));
        assert_eq!(t.lookup(&back(&k), 1), Lookup::Reply);
        assert_eq!(state(&t, &k, 1), Some(SessionState::TcpEstablished));
    }

    #[test]
    fn tcp_state_machine() {
        use SessionState as S;
        let st = |s: u8| SessionState::of_code(s & CODE_MASK);
        let cases: [(u8, bool, u8, S); 14] = [
            (TCP_SYN_SENT, false, SYN, S::TcpSynSent),
            (TCP_SYN_SENT, true, SYN | ACK, S::TcpSynRecv),
            (TCP_SYN_SENT, true, SYN, S::TcpSynRecv),
            (TCP_SYN_SENT, true, ACK, S::TcpEstablished),
            (TCP_SYN_SENT, true, RST | ACK, S::TcpClosed),
            (TCP_SYN_RECV, false, ACK, S::TcpEstablished),
            (TCP_SYN_RECV, false, SYN, S::TcpSynRecv),
            (TCP_SYN_RECV, true, ACK, S::TcpSynRecv),
            (TCP_ESTABLISHED, true, SYN, S::TcpEstablished),
            (TCP_ESTABLISHED, false, FIN | ACK, S::TcpFinWait),
            (TCP_FIN_WAIT | FIN_FWD, false, FIN | ACK, S::TcpFinWait),
            (TCP_FIN_WAIT | FIN_FWD, true, FIN | ACK, S::TcpClosed),
            (TCP_CLOSED, false, SYN | ACK, S::TcpClosed),
            (TCP_CLOSED, false, SYN, S::TcpSynSent),
        ];
        for (from, reply, flags, to) in cases {
            assert_eq!(st(next_state(from, reply, flags)), Some(to), "{from:#x} reply={reply} flags={flags:#x}");
        }
        // Non-TCP: a reply marks the session replied, nothing else moves it.
        assert_eq!(next_state(UDP_NEW, false, 0), UDP_NEW);
        assert_eq!(next_state(UDP_NEW, true, 0), UDP_REPLIED);
        assert_eq!(next_state(UDP_REPLIED, true, 0xff), UDP_REPLIED);
        assert_eq!(next_state(ICMP_NEW, true, 0), ICMP_REPLIED);
        assert_eq!(next_state(OTHER_NEW, true, 0), OTHER_REPLIED);
    }

    #[test]
    fn udp_sessions_expire_when_idle() {
        let t = table(1024);
        let k = v4(1, 5000, 2, 514, UDP);
        assert!(t.insert(&k, 0).is_ok());
        assert_eq!(state(&t, &k, 0), Some(SessionState::UdpNew));
        // Forward traffic alone keeps it open for the unreplied timeout.
        assert_eq!(t.lookup(&k, 20), Lookup::Forward);
        assert_eq!(t.len(50), 1);
        assert_eq!(t.len(51), 0);
        // A reply: the longer timeout, counted from the last packet.
        let k = v4(1, 5001, 2, 53, UDP);
        assert!(t.insert(&k, 100).is_ok());
        assert_eq!(t.lookup(&back(&k), 101), Lookup::Reply);
        assert_eq!(state(&t, &k, 101), Some(SessionState::UdpReplied));
        assert_eq!(t.lookup(&k, 200), Lookup::Forward);
        assert_eq!(t.len(320), 1);
        assert_eq!(t.len(321), 0);
        assert_eq!(t.lookup(&back(&k), 321), Lookup::None);
    }

    #[test]
    fn icmp_echo_sessions_admit_replies_only() {
        let t = table(1024);
        let (a, b) = (0x0a00_0001, 0x0808_0808);
        let req = icmp(false, a, b, 8, 0);
        assert_eq!(t.insert(&req, 0), Ok(Inserted::Created));
        assert_eq!(t.lookup(&icmp(false, b, a, 0, 0), 1), Lookup::Reply);
        assert_eq!(state(&t, &req, 1), Some(SessionState::IcmpReplied));
        assert_eq!(t.lookup(&req, 1), Lookup::Forward);
        // Not: B pinging A, A "replying" to B, errors, other codes.
        for k in [
            icmp(false, b, a, 8, 0),
            icmp(false, a, b, 0, 0),
            icmp(false, b, a, 3, 1),
            icmp(false, b, a, 0, 1),
            icmp(false, b, a, 14, 0),
        ] {
            assert_eq!(t.lookup(&k, 1), Lookup::None, "{k:?}");
        }
        // Idle timeout.
        assert_eq!(t.len(31), 1);
        assert_eq!(t.len(32), 0);
        // A session opened by something other than a query admits only
        // its own direction.
        for first in [icmp(false, a, b, 3, 1), icmp(false, a, b, 0, 0)] {
            assert_eq!(t.insert(&first, 100), Ok(Inserted::Created));
            assert_eq!(t.lookup(&first, 101), Lookup::Forward);
            assert_eq!(t.lookup(&icmp(false, b, a, first.sport, first.dport), 101), Lookup::None);
            assert_eq!(t.lookup(&icmp(false, b, a, 8, 0), 101), Lookup::None);
        }
        // Timestamp request / reply pair.
        let ts = icmp(false, a, b, 13, 0);
        assert!(t.insert(&ts, 100).is_ok());
        assert_eq!(t.lookup(&icmp(false, b, a, 14, 0), 101), Lookup::Reply);
    }

    #[test]
    fn ipv6_sessions() {
        let t = table(1024);
        let a = 0x2001_0db8_0000_0000_0000_0000_0000_0001u128;
        let b = 0xfd00_0000_0000_0000_0000_0000_0000_00ffu128;
        let k = Key { src: a, dst: b, sport: 40000, dport: 443, proto: TCP, tcp_flags: SYN, v6: true };
        assert_eq!(t.insert(&k, 0), Ok(Inserted::Created));
        assert_eq!(t.lookup(&back(&with(&k, SYN | ACK)), 1), Lookup::Reply);
        assert_eq!(t.lookup(&with(&k, ACK), 1), Lookup::Forward);
        assert_eq!(state(&t, &k, 1), Some(SessionState::TcpEstablished));
        // ICMPv6 echo 128 / 129.
        let req = icmp(true, a, b, 128, 0);
        assert_eq!(t.insert(&req, 2), Ok(Inserted::Created));
        assert_eq!(t.lookup(&icmp(true, b, a, 129, 0), 3), Lookup::Reply);
        assert_eq!(t.lookup(&icmp(true, b, a, 128, 0), 3), Lookup::None);
        // ICMPv4 type numbers mean nothing in IPv6, and proto 1 in IPv6 is
        // not ICMP.
        assert_eq!(t.lookup(&icmp(true, b, a, 0, 0), 3), Lookup::None);
        let odd = Key { proto: ip_proto::ICMP, ..icmp(true, a, b, 8, 0) };
        assert_eq!(t.insert(&odd, 3), Ok(Inserted::Created));
        assert_eq!(t.lookup(&back(&odd), 3), Lookup::Reply, "ports swapped, as any other protocol");
        assert_eq!(t.len(3), 3);
        // Other protocols: long generic timeout.
        let gre = Key { src: a, dst: b, sport: 0, dport: 0, proto: 47, tcp_flags: 0, v6: true };
        assert!(t.insert(&gre, 10).is_ok());
        assert_eq!(t.lookup(&back(&gre), 11), Lookup::Reply);
        assert_eq!(state(&t, &gre, 11), Some(SessionState::OtherReplied));
        assert!(info(&t, &gre, 611).is_some());
        assert!(info(&t, &gre, 612).is_none());
    }

    #[test]
    fn batch_lookup_matches_single_lookups() {
        let t = table(1024);
        let fl = flows(30);
        for k in fl.iter().step_by(2) {
            assert!(t.insert(k, 0).is_ok());
        }
        // Forward, reply and missing keys, across more than one chunk.
        let keys: Vec<Key> = fl.iter().flat_map(|k| [*k, back(k)]).collect();
        assert!(keys.len() > BATCH * 2);
        let mut out = vec![Lookup::Forward; keys.len()];
        t.lookup_batch(&keys, 1, &mut out);
        let single: Vec<Lookup> = keys.iter().map(|k| t.lookup(k, 1)).collect();
        assert_eq!(out, single);
        assert_eq!(out.iter().filter(|&&o| o == Lookup::None).count(), 30);
        assert_eq!(out.iter().filter(|&&o| o == Lookup::Reply).count(), 15);
        // A shorter output: only that many keys are looked up.
        let mut short = [Lookup::Reply; 3];
        t.lookup_batch(&keys, 1, &mut short);
        assert_eq!(short, [Lookup::Forward, Lookup::Reply, Lookup::None]);
        // Refreshing works as in `lookup`.
        t.lookup_batch(&keys[..2], 29, &mut out);
        assert_eq!(info(&t, &fl[0], 29).map(|s| s.last_seen), Some(29));
        assert_eq!(info(&t, &fl[2], 29).map(|s| s.last_seen), Some(1));
    }

    /// `n` distinct UDP flows.
    fn flows(n: u32) -> Vec<Key> {
        (0..n).map(|i| v4(0x0a00_0000 + i, 1000 + i as u16, 0xc0a8_0001, 53, UDP)).collect()
    }

    #[test]
    fn a_full_table_of_assured_sessions_refuses_new_ones() {
        let t = table(16); // one bucket
        let c = SessionCounters::default();
        for k in flows(16) {
            assert_eq!(t.insert(&k, 0), Ok(Inserted::Created));
            assert_eq!(t.lookup(&back(&k), 0), Lookup::Reply);
        }
        let extra = v4(0x0b00_0000, 9, 0xc0a8_0001, 53, UDP);
        let r = t.insert(&extra, 1);
        c.record(r);
        assert_eq!(r, Err(InsertError::Full));
        assert_eq!(c.table_full.get(), 1);
        assert_eq!(InsertError::Full.name(), "session_table_full");
        assert_eq!(t.lookup(&extra, 1), Lookup::None);
        for k in flows(16) {
            assert_eq!(t.lookup(&k, 1), Lookup::Forward, "established sessions survive");
        }
        // Once they expire, their slots are reused.
        let r = t.insert(&extra, 1 + 121);
        c.record(r);
        assert_eq!(r, Ok(Inserted::Reclaimed));
        assert_eq!(c.reclaimed.get(), 1);
        assert_eq!(t.len(122), 1);
        assert_eq!(t.stats(122).expired, 15);
        assert_eq!(t.expire(122), 15);
        assert_eq!(
            t.stats(122),
            TableStats {
                capacity: 16,
                live: 1,
                expired: 0,
                by_state: {
                    let mut s = [0; SessionState::COUNT];
                    s[SessionState::UdpNew.index()] = 1;
                    s
                }
            }
        );
    }

    #[test]
    fn full_buckets_evict_the_oldest_unassured_session() {
        let t = table(16);
        let c = SessionCounters::default();
        let fl = flows(16);
        for (i, k) in fl.iter().enumerate() {
            assert_eq!(t.insert(k, i as u64), Ok(Inserted::Created));
            // Every other one gets a reply (assured).
            if i & 1 == 0 {
                assert_eq!(t.lookup(&back(k), i as u64), Lookup::Reply);
            }
        }
        // The oldest unreplied one is flow 1 (flow 0 was answered).
        let extra = v4(0x0b00_0000, 9, 0xc0a8_0001, 53, UDP);
        let r = t.insert(&extra, 20);
        c.record(r);
        assert_eq!(r, Ok(Inserted::Evicted));
        assert_eq!((c.created.get(), c.evicted.get()), (1, 1));
        assert_eq!(t.lookup(&back(&fl[1]), 20), Lookup::None);
        assert_eq!(t.lookup(&back(&fl[0]), 20), Lookup::Reply);
        assert_eq!(t.lookup(&back(&fl[3]), 20), Lookup::Reply);
        assert_eq!(t.lookup(&back(&extra), 20), Lookup::Reply);
        assert_eq!(t.len(20), 16);
        // Now the oldest unreplied is flow 5 (3 was just answered).
        let extra2 = v4(0x0b00_0001, 9, 0xc0a8_0001, 53, UDP);
        assert_eq!(t.insert(&extra2, 21), Ok(Inserted::Evicted));
        assert_eq!(t.lookup(&fl[5], 21), Lookup::None);
        assert_eq!(t.lookup(&fl[7], 21), Lookup::Forward);
    }

    #[test]
    fn two_buckets_share_the_load() {
        // 32 slots in two buckets: far more than 16 flows fit.
        let t = table(32);
        let mut ok = 0;
        for k in flows(32) {
            if let Ok(r) = t.insert(&k, 0) {
                assert_eq!(r, Inserted::Created);
                ok += 1;
            }
        }
        assert!(ok > 16, "{ok}");
        assert_eq!(t.len(0), ok);
        // Every stored flow is found from both sides.
        let mut found = 0;
        for k in flows(32) {
            if t.lookup(&k, 0) == Lookup::Forward {
                assert_eq!(t.lookup(&back(&k), 0), Lookup::Reply);
                found += 1;
            }
        }
        assert_eq!(found, ok);
    }

    #[test]
    fn clear_remove_and_for_each() {
        let t = table(256);
        let ks = flows(3);
        for k in &ks {
            assert!(t.insert(k, 7).is_ok());
        }
        let mut seen = Vec::new();
        t.for_each(8, |s| seen.push(*s));
        seen.sort_by_key(|s| s.key.src);
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[0],
            SessionInfo {
                key: ks[0],
                state: SessionState::UdpNew,
                fin_forward: false,
                fin_reply: false,
                created: 7,
                last_seen: 7,
                expires_in: 29,
            }
        );
        assert!(t.remove(&back(&ks[1]), 8));
        assert!(!t.remove(&back(&ks[1]), 8));
        assert_eq!(t.lookup(&ks[1], 8), Lookup::None);
        assert_eq!(t.clear(), 2);
        assert!(t.is_empty(8));
        assert_eq!(t.insert(&ks[1], 9), Ok(Inserted::Created));
    }

    #[test]
    fn a_lagging_clock_neither_expires_nor_rewinds_a_session() {
        let t = table(256);
        let k = v4(1, 1, 2, 2, UDP);
        assert!(t.insert(&k, 1000).is_ok());
        // Another worker's clock is a second behind.
        assert_eq!(t.lookup(&back(&k), 999), Lookup::Reply);
        assert_eq!(info(&t, &k, 1000).map(|s| s.last_seen), Some(1000));
        // The clock wraps (only 32 bits are kept).
        let t = table(256);
        let w = u32::MAX as u64 - 5;
        assert!(t.insert(&v4(3, 3, 4, 4, UDP), w).is_ok());
        assert_eq!(t.lookup(&v4(3, 3, 4, 4, UDP), w + 10), Lookup::Forward);
        assert_eq!(t.len(w + 10 + 30), 1);
        assert_eq!(t.len(w + 10 + 31), 0);
    }

    #[test]
    fn a_stalled_claim_of_the_same_flow_fails_busy_instead_of_duplicating() {
        let t = table(64);
        let k = v4(1, 1, 2, 2, UDP);
        let q = t.query(&k);
        let i = q.buckets[0] * BUCKET;
        // A worker claimed slot `i` for this flow and stopped.
        t.slots[i].ctl.store(Ctl::new(1, EMPTY, q.fp).0, Ordering::Release);
        t.tag(i).store(q.fp, Ordering::Release);
        assert_eq!(t.lookup(&k, 0), Lookup::None);
        let c = SessionCounters::default();
        let r = t.insert(&back(&k), 0);
        c.record(r);
        assert_eq!(r, Err(InsertError::Busy));
        assert_eq!(c.insert_busy.get(), 1);
        // Other flows are not held up.
        assert_eq!(t.insert(&v4(5, 5, 6, 6, UDP), 0), Ok(Inserted::Created));
        // It gives up its claim: the flow can be created.
        t.slots[i].ctl.store(Ctl::new(2, EMPTY, 0).0, Ordering::Release);
        assert_eq!(t.insert(&k, 0), Ok(Inserted::Created));
        assert_eq!(t.lookup(&back(&k), 0), Lookup::Reply);
    }

    #[test]
    fn a_claim_yields_to_an_earlier_claim_or_a_live_copy_and_retires_an_expired_copy() {
        let t = table(64);
        let k = v4(1, 1, 2, 2, UDP);
        let q = t.query(&k);
        assert_eq!(q.nbuckets, 2);
        let at: Vec<(usize, usize)> = q.slots().collect();
        let ((p0, i0), (p20, i20)) = (at[0], at[20]);
        let set = |i: usize, c: Ctl| {
            t.slots[i].ctl.store(c.0, Ordering::Release);
            t.tag(i).store(q.fp, Ordering::Release);
        };
        // Another worker's claim of the same flow at an earlier position
        // than ours (20): we yield.
        set(i0, Ctl::new(1, EMPTY, q.fp));
        assert_eq!(t.verify(&q, p20, 0), Verify::Yield);
        // At a later position (we hold 0): we wait for it; it never ends.
        set(i0, Ctl::new(2, EMPTY, 0));
        set(i20, Ctl::new(1, EMPTY, q.fp));
        assert_eq!(t.verify(&q, p0, 0), Verify::Timeout);
        // It published the flow (either orientation): we yield to it.
        for (dst, w) in t.slots[i20].key.iter().zip(q.rev) {
            dst.store(w, Ordering::Relaxed);
        }
        set(i20, Ctl::new(2, UDP_NEW, 0));
        assert_eq!(t.verify(&q, p0, 30), Verify::Yield);
        // Expired at our clock: retired, and we go ahead.
        assert_eq!(t.verify(&q, p0, 31), Verify::Clear);
        assert_eq!(Ctl(t.slots[i20].ctl.load(Ordering::Acquire)).code(), EMPTY);
        // Another flow under the same fingerprint is no obstacle.
        for (dst, w) in t.slots[i20].key.iter().zip(words(&v4(9, 9, 9, 9, UDP))) {
            dst.store(w, Ordering::Relaxed);
        }
        set(i20, Ctl::new(4, UDP_NEW, 31));
        assert_eq!(t.verify(&q, p0, 31), Verify::Clear);
        assert_eq!(t.lookup(&v4(9, 9, 9, 9, UDP), 31), Lookup::None, "tag is ours, key is not");
        // Inserting now finds the slots as they are and creates one session.
        assert_eq!(t.insert(&k, 31), Ok(Inserted::Created));
        assert_eq!(census(&t, 31).get(&k), Some(&1));
    }

    /// Sessions per flow (canonical orientation) at `now`.
    fn census(t: &SessionTable, now: u64) -> HashMap<Key, usize> {
        let mut m = HashMap::new();
        t.for_each(now, |s| {
            let k = s.key;
            let canon = if (k.src, k.sport) <= (k.dst, k.dport) { k } else { back(&k) };
            *m.entry(canon).or_insert(0) += 1;
        });
        m
    }

    /// Inserts until it is not `Busy` (a preempted racer on a loaded box).
    fn insert_retrying(t: &SessionTable, k: &Key, now: u64, c: &SessionCounters) -> Inserted {
        for _ in 0..100_000 {
            let r = t.insert(k, now);
            c.record(r);
            match r {
                Ok(x) => return x,
                Err(InsertError::Busy) => std::thread::yield_now(),
                Err(e) => unreachable!("{e:?}"),
            }
        }
        unreachable!("insert stayed busy")
    }

    #[test]
    fn concurrent_inserts_and_lookups_create_one_session_per_flow() {
        const THREADS: usize = 4;
        let t = table(4096);
        let fl = flows(600);
        let counters: Vec<SessionCounters> = (0..THREADS).map(|_| SessionCounters::default()).collect();
        std::thread::scope(|s| {
            for (w, c) in counters.iter().enumerate() {
                let (t, fl) = (&t, &fl);
                s.spawn(move || {
                    // Each worker walks the flows from its own offset,
                    // half of them from the other direction.
                    for n in 0..fl.len() {
                        let f = &fl[(n * 7 + w * 150) % fl.len()];
                        let k = if (n + w) & 1 == 0 { *f } else { back(f) };
                        if t.lookup(&k, 10) == Lookup::None {
                            insert_retrying(t, &k, 10, c);
                        }
                    }
                });
            }
        });
        let created: u64 = counters.iter().map(|c| c.created.get()).sum();
        assert_eq!(created, fl.len() as u64);
        assert_eq!(t.len(10), fl.len());
        let m = census(&t, 10);
        assert_eq!(m.len(), fl.len());
        assert!(m.values().all(|&n| n == 1));
        for f in &fl {
            assert_ne!(t.lookup(f, 10), Lookup::None);
            assert_ne!(t.lookup(&back(f), 10), Lookup::None);
        }
    }

    /// Rounds of `THREADS` workers inserting the same 24 flows at once,
    /// each from some direction, into a small table; between rounds
    /// `step` seconds pass, and worker `w`'s clock runs `w % 2` seconds
    /// behind when `skew`. Checks one session per flow after each round;
    /// returns the sessions created.
    fn race_rounds(step: u64, skew: bool) -> u64 {
        const THREADS: usize = 4;
        const ROUNDS: u64 = 200;
        let t = table(64);
        let fl = flows(24);
        let counters: Vec<SessionCounters> = (0..THREADS).map(|_| SessionCounters::default()).collect();
        // Rounds start on a spinning flag (a `Barrier` wakes threads too
        // far apart for them to race) and end on a count of finishers.
        let round = AtomicU64::new(0);
        let done = AtomicU64::new(0);
        std::thread::scope(|s| {
            for (w, c) in counters.iter().enumerate() {
                let (t, fl, round, done) = (&t, &fl, &round, &done);
                s.spawn(move || {
                    for r in 1..=ROUNDS {
                        let mut spins = 0u32;
                        while round.load(Ordering::Acquire) < r {
                            spins += 1;
                            if spins & 1023 == 0 {
                                std::thread::yield_now();
                            }
                            std::hint::spin_loop();
                        }
                        let now = r * step - if skew { (w % 2) as u64 } else { 0 };
                        for (n, f) in fl.iter().enumerate() {
                            let k = if (n + w + r as usize) & 1 == 0 { *f } else { back(f) };
                            insert_retrying(t, &k, now, c);
                        }
                        done.fetch_add(1, Ordering::AcqRel);
                    }
                });
            }
            for r in 1..=ROUNDS {
                round.store(r, Ordering::Release);
                while done.load(Ordering::Acquire) < r * THREADS as u64 {
                    std::thread::yield_now();
                }
                let m = census(&t, r * step);
                assert_eq!(m.len(), fl.len(), "round {r}");
                assert!(m.values().all(|&n| n == 1), "round {r}: {m:?}");
            }
        });
        counters.iter().map(|c| c.created.get()).sum()
    }

    #[test]
    fn concurrent_inserts_reusing_expired_slots_never_duplicate() {
        // Every round starts after the last one's sessions expired: all
        // inserts race for reused slots.
        assert_eq!(race_rounds(1000, false), 24 * 200);
    }

    #[test]
    fn concurrent_inserts_at_the_expiry_boundary_with_skewed_clocks_never_duplicate() {
        // Sessions are exactly at their timeout for half the workers and
        // one second past it for the others: some refresh, some reclaim.
        let created = race_rounds(31, true);
        assert!(created >= 24, "{created}");
    }

    fn any_key() -> impl Strategy<Value = Key> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<u16>(),
            any::<u16>(),
            prop::sample::select(vec![1u8, 6, 17, 47, 58]),
            any::<bool>(),
        )
            .prop_map(|(src, dst, sport, dport, proto, v6)| {
                let (src, dst) = if v6 { (src, dst) } else { (src & 0xffff_ffff, dst & 0xffff_ffff) };
                // ICMP types small enough to hit the query pairs often.
                let (sport, dport) = if proto == 1 || proto == 58 {
                    (sport % 20 + if v6 { 120 } else { 0 }, dport % 2)
                } else {
                    (sport, dport)
                };
                Key { src, dst, sport, dport, proto, tcp_flags: 0, v6 }
            })
    }

    proptest! {
        #[test]
        fn both_directions_hash_alike(k in any_key()) {
            let t = table(1 << 12);
            if let Some(r) = reverse(&k) {
                let (a, b) = (t.query(&k), t.query(&r));
                prop_assert_eq!((a.fp, a.buckets), (b.fp, b.buckets));
            }
        }

        #[test]
        fn an_inserted_flow_is_found_from_both_sides(k in any_key(), other in any_key()) {
            let t = table(1 << 10);
            prop_assert!(t.insert(&k, 0).is_ok());
            prop_assert_eq!(t.lookup(&k, 0), Lookup::Forward);
            if !is_icmp(&k) {
                prop_assert_eq!(t.lookup(&back(&k), 0), Lookup::Reply);
                prop_assert_eq!(t.insert(&back(&k), 0), Ok(Inserted::Existed));
            }
            let expect = if other == k {
                Lookup::Forward
            } else if reverse(&other) == Some(k) {
                Lookup::Reply
            } else {
                Lookup::None
            };
            prop_assert_eq!(t.lookup(&other, 0), expect);
        }
    }
}
