//! The NAT session table: every translated flow, shared by all workers
//! (the two directions of a flow may arrive on different cores).
//!
//! A session has two tuples: `orig`, the first packet's tuple as received,
//! and `reply`, the tuple its replies will carry (the reverse of the
//! translated first packet). A packet whose tuple is `orig` goes
//! [`Dir::Forward`] and is rewritten to `reply.reverse()`; one whose tuple
//! is `reply` goes [`Dir::Reply`] and is rewritten to `orig.reverse()`.
//!
//! # Layout
//!
//! Everything is allocated once by [`NatTable::new`]; lookups, creates,
//! touches and sweeps never allocate, lock, log or panic.
//!
//! - **Records**: `capacity` session records of one cache line each
//!   (`Record`): a control word `ctl`, the `orig` and `reply` tuples as two
//!   words each ([`Tuple::words`]), and padding. `ctl` packs a 24-bit
//!   version, a state byte (a state code in the low four bits, and the
//!   "ACK seen forward / reply" bits for TCP) and the last-seen second.
//! - **Index**: buckets of one cache line, 8 entries of 64 bits each:
//!   `record:31 | dir:1 | tag:32` (0 is empty). Every tuple hashes (one
//!   64-bit hash of its two words, with a per-table random seed) to a
//!   primary and a secondary bucket and a nonzero 32-bit tag. A session
//!   has two entries, its `orig` one (dir 0) and its `reply` one (dir 1).
//!   The bucket count is the power of two that makes the `2 × capacity`
//!   entries fill at most half of the index.
//! - A new entry goes to the emptier of its two buckets (ties: the
//!   primary). (Filling the primary first until it is full, then the
//!   secondary, overflows both buckets of some tuples at 50% load — about
//!   500 failures in 2 M inserts in a simulation — while the emptier-of-two
//!   rule never put more than 7 entries in a bucket up to 32 M entries.) If
//!   both buckets are full, the create fails with [`CreateError::IndexFull`].
//! - A lookup reads the 16 entries of the tuple's two buckets, picks the
//!   first whose tag matches (without branches: the tag is the entry's
//!   low half, so that is a load, a compare and a conditional move per
//!   entry) and verifies the whole tuple in its record; only if that fails
//!   (a tag collision, or a stale entry of an expired session with the same
//!   tuple) are the other matching entries tried. A hit costs three cache
//!   lines, a miss two. [`NatTable::lookup_batch`] overlaps these misses
//!   for a burst: hashes and bucket prefetches for every key first, then
//!   the tag scans and record prefetches, then the compares.
//! - Records and index are allocated before being touched and advised to
//!   the kernel as transparent-huge-page candidates (`madvise`), so the
//!   lookups' dependent loads do not wait for page walks.
//!
//! Cost (release build, 1 M sessions, random keys, a 2-vCPU KVM guest of
//! an AMD EPYC, `bench_lookup_batch_1m`): about 80 TSC cycles (2.45 GHz) a
//! lookup in bursts of 32, 60 when everything is cached; 140 for a loop of
//! single lookups. Touching three random lines per key the same way costs
//! 35 to 45 there.
//! - **Partitions**: the records are split evenly between the workers;
//!   worker `w` owns records `[w × per, (w + 1) × per)` and a free stack
//!   of their indices (atomics, written by the owner only) and a sweep
//!   cursor.
//!
//! Memory: 64 bytes of record, 4 of free stack and 32 to 64 of index
//! (depending on how far `capacity / 2` is from the power of two above it)
//! per session: 100 bytes at the default capacity of 2^20 (100 MiB).
//! [`NatTable::bytes`] reports it.
//!
//! # Concurrency
//!
//! `ctl` works as a seqlock: an odd version is "busy". Only the owner
//! writes a record's tuples: it claims a free record with a
//! compare-exchange to `version + 1`, issues a `Release` fence, writes the
//! four words and publishes with a `Release` store of `version + 2` and
//! the initial state. A reader loads `ctl` (`Acquire`), skips busy and
//! free records, reads the words, issues an `Acquire` fence and re-reads
//! `ctl`: the words are whole if the version did not change (the state and
//! time may have: refreshes and clears keep the version). Freeing bumps
//! the version, so a [`Hit`] (which carries the control word it saw)
//! never refreshes a reused record. The version has 24 bits; a reader
//! stalled across 2^22 reuses of one record could be fooled; this is
//! ignored.
//!
//! Index entries are written with compare-exchange only (empty → entry on
//! insert, exact entry → empty on removal) and read with `Acquire`, and a
//! record is published before its entries are inserted, so whoever sees an
//! entry sees the record it points to. A stale entry (its record freed or
//! reused) fails the tuple or version check.
//!
//! Ownership: only worker `w` calls [`NatTable::create`]`(w, ..)` and
//! [`NatTable::sweep`]`(w, ..)`. Breaking this contract cannot cause
//! undefined behaviour or a panic (everything is atomics and bounds-checked
//! accesses, and records are claimed by compare-exchange), only lost or
//! leaked records.
//!
//! # Duplicate freedom
//!
//! Two workers may create a session for the same `orig` at once (its first
//! packets arrived on two cores). A creator publishes its record, inserts
//! its `reply` entry, then its `orig` entry, issues a `SeqCst` fence, and
//! rescans the 16 positions of `orig`'s buckets in probe order (primary
//! slots 0..8, then secondary 0..8) for another `orig` entry whose record
//! is live with the same `orig`:
//!
//! - one at an earlier position than its own entry wins: the creator
//!   removes its own entries, frees its record and returns the winner's
//!   hit;
//! - one at a later position loses: the creator removes that entry
//!   (compare-exchange of the exact value to empty).
//!
//! Each creator's entry insertion precedes its fence, which precedes its
//! rescan; with `SeqCst` fences on both sides, at least one of two racing
//! creators sees the other's entry (the store-buffering pattern). Either
//! way the later entry is removed, by its own creator or by the other, so
//! at most one `orig` entry survives. A creator whose entry was removed by
//! the other without noticing has already returned its own hit and
//! translated its packet with its own `reply`; its record stays reachable
//! through its `reply` entry only (replies to that packet are translated
//! correctly) and expires normally: the right outcome for a packet already
//! sent.
//!
//! The creator's pre-check for an existing session, its rescan, and the
//! `reply` check retire (mark cleared) a record with the same tuple that is
//! expired at the creator's clock, so a worker whose clock lags a little
//! cannot revive it next to the new session.
//!
//! Reply tuples: for SNAT, the caller guarantees that only one worker ever
//! creates sessions with a given `reply` (ports are partitioned by worker),
//! so [`CreateError::ReplyInUse`] is a check-then-insert by a single
//! writer.
//!
//! # Time and expiry
//!
//! `now` is the low 32 bits of a monotonic seconds clock, passed in by the
//! caller. Ages are wrapping differences read as `i32`, so the clock may
//! wrap and a stamp slightly "in the future" (another worker's clock runs
//! ahead) counts as fresh. A session is live while its age is at most its
//! state's timeout; expired sessions are absent for every lookup. A touch
//! writes `ctl` only when the second or the state changes, never rewinds
//! the time, and does not revive an expired session.
//!
//! [`NatTable::sweep`] examines a bounded number of the worker's own
//! records round-robin and frees the expired and cleared ones: a
//! compare-exchange of `ctl` to free (bumping the version), removal of the
//! two index entries, and a push on the free stack. [`NatTable::create`]
//! sweeps up to 256 records itself when the free stack is empty.
//! [`NatTable::clear`] and [`NatTable::remove`] (control side) only mark
//! sessions cleared; the owners free them in their sweeps.
//!
//! # TCP
//!
//! Two bits record an ACK seen forward and an ACK seen in reply (with or
//! without SYN). `TcpTransitory` becomes `TcpEstablished` once both are
//! set. A FIN or an RST from either side moves to `TcpClosing`; a forward
//! SYN without ACK on a closing session starts it over as `TcpTransitory`
//! (port reuse), with the bits cleared. Other states are only refreshed.

use super::Tuple;
use crate::ctlword::{Ctl, CODE_MASK};
use crossbeam_utils::CachePadded;
use std::hash::BuildHasher;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Entries per index bucket (one cache line).
const BUCKET: usize = 8;
/// Positions of a tuple in the index (two buckets).
const PROBE: usize = 2 * BUCKET;
/// Largest capacity (record indices have 31 bits).
const MAX_CAPACITY: usize = 1 << 30;
/// Keys whose loads [`NatTable::lookup_batch`] interleaves.
const BATCH: usize = 64;
/// Records a create sweeps when its free stack is empty.
const CREATE_SWEEP: usize = 256;
/// Per-host session counts (by the host address's low 16 bits).
const HOST_SLOTS: usize = 1 << 16;
/// Compare-exchange attempts on one control word before giving up.
const CAS_RETRIES: usize = 16;

const M1: u64 = 0x9E37_79B9_7F4A_7C15;
const M2: u64 = 0xBF58_476D_1CE4_E5B9;

// TCP flag bits (as in the TCP header's low byte).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

// State codes (low four bits of the state byte).
const FREE: u8 = 0;
const TCP_TRANSITORY: u8 = 1;
const TCP_ESTABLISHED: u8 = 2;
const TCP_CLOSING: u8 = 3;
const UDP: u8 = 4;
const ICMP: u8 = 5;
const FRAGMENT: u8 = 6;
const MAPPING_TCP: u8 = 7;
const MAPPING_OTHER: u8 = 8;
/// Removed by the control side; freed by the owner's next sweep.
const CLEARED: u8 = 15;
/// An ACK was seen from the orig side / from the reply side.
const ACK_FWD: u8 = 0x10;
const ACK_REP: u8 = 0x20;

/// Idle timeouts in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_established: u32,
    /// TCP opening, and closing (after a FIN or RST).
    pub tcp_transitory: u32,
    pub udp: u32,
    pub icmp: u32,
    /// The life of a fragment-follow entry.
    pub fragment: u32,
    /// An endpoint-independent mapping of a TCP flow.
    pub mapping_tcp: u32,
    /// An endpoint-independent mapping of a UDP (or ICMP) flow.
    pub mapping_udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 7440,
            tcp_transitory: 240,
            udp: 300,
            icmp: 60,
            fragment: 2,
            mapping_tcp: 7440,
            mapping_udp: 300,
        }
    }
}

/// Size and timeouts of a [`NatTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatTableConfig {
    /// Sessions; rounded up to a multiple of `workers` (and at least
    /// `workers`).
    pub capacity: usize,
    /// Workers sharing the table (at least 1); each owns `capacity /
    /// workers` sessions.
    pub workers: usize,
    pub timeouts: Timeouts,
}

impl Default for NatTableConfig {
    fn default() -> Self {
        NatTableConfig { capacity: 1 << 20, workers: 1, timeouts: Timeouts::default() }
    }
}

/// Which of a session's tuples a packet matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The packet's tuple is the session's `orig`.
    Forward,
    /// The packet's tuple is the session's `reply`.
    Reply,
}

/// A session's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    TcpTransitory,
    TcpEstablished,
    TcpClosing,
    Udp,
    Icmp,
    Fragment,
    Mapping,
}

impl State {
    pub const ALL: [State; 7] = [
        State::TcpTransitory,
        State::TcpEstablished,
        State::TcpClosing,
        State::Udp,
        State::Icmp,
        State::Fragment,
        State::Mapping,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::TcpTransitory => "tcp_transitory",
            State::TcpEstablished => "tcp_established",
            State::TcpClosing => "tcp_closing",
            State::Udp => "udp",
            State::Icmp => "icmp",
            State::Fragment => "fragment",
            State::Mapping => "mapping",
        }
    }

    /// The state code of a session whose orig protocol is `proto`.
    fn code(self, proto: u8) -> u8 {
        match self {
            State::TcpTransitory => TCP_TRANSITORY,
            State::TcpEstablished => TCP_ESTABLISHED,
            State::TcpClosing => TCP_CLOSING,
            State::Udp => UDP,
            State::Icmp => ICMP,
            State::Fragment => FRAGMENT,
            State::Mapping if proto == 6 => MAPPING_TCP,
            State::Mapping => MAPPING_OTHER,
        }
    }

    /// The state of a session code (`None`: free or cleared).
    #[inline(always)]
    fn of_code(code: u8) -> Option<State> {
        const BY_CODE: [Option<State>; 16] = {
            let mut t = [None; 16];
            t[TCP_TRANSITORY as usize] = Some(State::TcpTransitory);
            t[TCP_ESTABLISHED as usize] = Some(State::TcpEstablished);
            t[TCP_CLOSING as usize] = Some(State::TcpClosing);
            t[UDP as usize] = Some(State::Udp);
            t[ICMP as usize] = Some(State::Icmp);
            t[FRAGMENT as usize] = Some(State::Fragment);
            t[MAPPING_TCP as usize] = Some(State::Mapping);
            t[MAPPING_OTHER as usize] = Some(State::Mapping);
            t
        };
        BY_CODE[(code & CODE_MASK) as usize]
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A live session found for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The session's record.
    pub id: u32,
    pub dir: Dir,
    /// The tuple the packet must be rewritten to.
    pub to: Tuple,
    pub state: State,
    /// The control word seen (for [`NatTable::touch`]).
    ctl: u64,
}

/// Why [`NatTable::create`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// The worker's partition has no free session.
    Full,
    /// A live session already has this reply tuple (the caller picks
    /// another port).
    ReplyInUse,
    /// The index buckets of one of the tuples are full.
    IndexFull,
    /// The inside host already holds its limit of sessions
    /// ([`NatTable::set_host_limit`]).
    HostLimit,
}

/// One live session, as read by [`NatTable::for_each`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: u32,
    pub orig: Tuple,
    pub reply: Tuple,
    pub state: State,
    /// Seconds since the last packet (0 if stamped ahead of `now`).
    pub idle_secs: u32,
    /// The worker owning the record.
    pub owner: usize,
}

/// Occupancy at one time (a scan; control side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatTableStats {
    pub capacity: usize,
    /// Live sessions.
    pub live: usize,
    /// Live sessions per state, in [`State::ALL`] order.
    pub by_state: [(State, usize); 7],
    /// Live sessions per owning worker.
    pub per_worker_live: Vec<usize>,
}

impl Ctl {
    /// A published session (live or expired, not cleared).
    #[inline(always)]
    fn in_use(self) -> bool {
        !self.busy() && self.code().wrapping_sub(TCP_TRANSITORY) < MAPPING_OTHER
    }

    /// The same session, marked cleared.
    #[inline(always)]
    fn cleared(self) -> Ctl {
        Ctl::new(self.ver(), CLEARED, self.low())
    }

    /// The record freed (a new version).
    #[inline(always)]
    fn freed(self) -> Ctl {
        Ctl::new(self.ver() + 2, FREE, 0)
    }
}

/// One session: one cache line.
#[repr(C, align(64))]
#[derive(Default)]
struct Record {
    ctl: AtomicU64,
    /// `orig.words()`, then `reply.words()`.
    words: [AtomicU64; 4],
    /// 1 + the host-count slot this session is counted in; 0: none.
    host: AtomicU32,
}

/// A line of index entries.
#[repr(C, align(64))]
#[derive(Default)]
struct Bucket([AtomicU64; BUCKET]);

const _: () = assert!(std::mem::size_of::<Record>() == 64);
const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// A worker's allocation state (written by that worker only).
#[derive(Default)]
struct Part {
    /// Entries in use on the free stack.
    top: AtomicUsize,
    /// Next record (offset in the partition) a sweep examines.
    cursor: AtomicUsize,
    /// A create's sweep found nothing to free at this second: no more
    /// such sweeps until the next one (a full table under a flood of new
    /// flows must not cost a 256-record sweep per packet).
    /// Holds that second + 1 (as u64, so never 0, which means never).
    dry_at: AtomicU64,
}

type Words = (u64, u64);

/// Where a tuple lives in the index.
#[derive(Clone, Copy, Default)]
struct Hashed {
    buckets: [usize; 2],
    tag: u32,
}

/// An index entry: record (31 bits) | dir (1) | tag (32). The tag is in
/// the low half so that comparing it needs no shift.
#[inline(always)]
fn entry(tag: u32, idx: usize, dir: Dir) -> u64 {
    (idx as u64 & 0x7fff_ffff) << 33 | ((dir == Dir::Reply) as u64) << 32 | tag as u64
}

#[inline(always)]
fn entry_tag(e: u64) -> u32 {
    e as u32
}

#[inline(always)]
fn entry_idx(e: u64) -> usize {
    (e >> 33) as usize
}

/// 0 for [`Dir::Forward`], 1 for [`Dir::Reply`].
#[inline(always)]
fn entry_dir_bit(e: u64) -> usize {
    (e >> 32) as usize & 1
}

#[inline(always)]
fn entry_dir(e: u64) -> Dir {
    if entry_dir_bit(e) == 0 {
        Dir::Forward
    } else {
        Dir::Reply
    }
}

fn tuple_of((a, b): Words) -> Tuple {
    Tuple {
        src: (a >> 32) as u32,
        dst: a as u32,
        sport: (b >> 32) as u16,
        dport: (b >> 16) as u16,
        proto: (b >> 8) as u8,
        kind: b as u8,
    }
}

/// Multiply-xorshift over the two words, then a finaliser.
#[inline(always)]
fn hash(seed: u64, (a, b): Words) -> u64 {
    let mut h = (seed ^ a).wrapping_mul(M1);
    h ^= h >> 32;
    h = (h ^ b).wrapping_mul(M1);
    h ^= h >> 32;
    h = h.wrapping_mul(M2);
    h ^ (h >> 31)
}

/// Signed age of a time stamp: negative when it is ahead of `now`.
#[inline(always)]
fn age(now: u32, then: u32) -> i64 {
    now.wrapping_sub(then) as i32 as i64
}

/// The state byte after a packet in `dir` with TCP `flags`.
#[inline]
fn next_state(s: u8, dir: Dir, flags: u8) -> u8 {
    let code = s & CODE_MASK;
    if !matches!(code, TCP_TRANSITORY | TCP_ESTABLISHED | TCP_CLOSING) {
        return s;
    }
    let seen = s & (ACK_FWD | ACK_REP);
    if flags & RST != 0 {
        return TCP_CLOSING | seen;
    }
    if code == TCP_CLOSING {
        // The client starting over on the same tuple (port reuse).
        if dir == Dir::Forward && flags & (SYN | ACK) == SYN {
            return TCP_TRANSITORY;
        }
        return s;
    }
    if flags & FIN != 0 {
        return TCP_CLOSING | seen;
    }
    let seen = if flags & ACK == 0 {
        seen
    } else if dir == Dir::Forward {
        seen | ACK_FWD
    } else {
        seen | ACK_REP
    };
    if code == TCP_TRANSITORY && seen == ACK_FWD | ACK_REP {
        TCP_ESTABLISHED | seen
    } else {
        code | seen
    }
}

/// Hints the CPU to fetch the cache line holding `p`.
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a prefetch is a hint: it never faults and changes no
        // memory (and `p` is a valid reference anyway).
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast::<i8>())
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `n` default `T`s in one allocation. On Linux the kernel is asked, before
/// the memory is first touched, to back its 2 MiB-aligned interior with
/// transparent huge pages: 1 M sessions span 25 K small pages, and a
/// lookup's dependent loads (bucket, then record) otherwise wait for page
/// walks (measured in a burst: ~160 → ~90 cycles a lookup, before the scan
/// was made branch-free). A no-op where THP is disabled.
fn alloc_table<T: Default>(n: usize) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 1 << 21;
        let p = v.as_ptr() as usize;
        let start = p.next_multiple_of(HUGE);
        let end = (p + n * std::mem::size_of::<T>()) & !(HUGE - 1);
        if end > start {
            // SAFETY: `[start, end)` lies inside `v`'s allocation, which
            // this function owns; MADV_HUGEPAGE only changes how the kernel
            // backs the range (not its contents or validity). A failure is
            // harmless and ignored.
            let _ = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    v.extend((0..n).map(|_| T::default()));
    v.into_boxed_slice()
}

/// The NAT session table. Shared (`&self`) by every worker.
pub struct NatTable {
    records: Box<[Record]>,
    buckets: Box<[Bucket]>,
    bucket_mask: usize,
    /// Free record indices: partition `w` uses `[w × per, (w + 1) × per)`.
    free: Box<[AtomicU32]>,
    parts: Box<[CachePadded<Part>]>,
    /// Records per worker.
    per: usize,
    seed: u64,
    /// Per state code.
    timeouts: [u32; 16],
    cfg: NatTableConfig,
    /// Sessions per inside host, by the host address's low 16 bits.
    hosts: Box<[AtomicU32]>,
    /// Most sessions per host slot (0: no limit).
    host_limit: AtomicU32,
    /// Where [`NatTable::retire_expired`] goes on.
    retire_cursor: AtomicUsize,
    /// Live sessions and records counted so far in the current pass of
    /// [`NatTable::retire_expired`], and the live count of the last whole
    /// pass.
    pass_live: AtomicUsize,
    pass_seen: AtomicUsize,
    last_live: AtomicUsize,
}

impl std::fmt::Debug for NatTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatTable").field("cfg", &self.cfg).field("buckets", &self.buckets.len()).finish()
    }
}

impl NatTable {
    /// Allocates the table (all of it, once).
    pub fn new(cfg: NatTableConfig) -> NatTable {
        let workers = cfg.workers.clamp(1, MAX_CAPACITY);
        let per = cfg.capacity.max(workers).div_ceil(workers).min(MAX_CAPACITY / workers);
        let capacity = per * workers;
        let nbuckets = capacity.div_ceil(2).next_power_of_two().max(2);
        let seed = std::collections::hash_map::RandomState::new().hash_one(M1);
        let t = cfg.timeouts;
        let mut timeouts = [0u32; 16];
        timeouts[TCP_TRANSITORY as usize] = t.tcp_transitory;
        timeouts[TCP_ESTABLISHED as usize] = t.tcp_established;
        timeouts[TCP_CLOSING as usize] = t.tcp_transitory;
        timeouts[UDP as usize] = t.udp;
        timeouts[ICMP as usize] = t.icmp;
        timeouts[FRAGMENT as usize] = t.fragment;
        timeouts[MAPPING_TCP as usize] = t.mapping_tcp;
        timeouts[MAPPING_OTHER as usize] = t.mapping_udp;
        // Each free stack pops its partition's records lowest first.
        let free = (0..capacity)
            .map(|i| {
                let (w, k) = (i / per, i % per);
                AtomicU32::new((w * per + per - 1 - k) as u32)
            })
            .collect();
        NatTable {
            records: alloc_table(capacity),
            buckets: alloc_table(nbuckets),
            bucket_mask: nbuckets - 1,
            free,
            parts: (0..workers)
                .map(|_| CachePadded::new(Part { top: AtomicUsize::new(per), ..Part::default() }))
                .collect(),
            per,
            seed,
            timeouts,
            cfg: NatTableConfig { capacity, workers, timeouts: cfg.timeouts },
            hosts: (0..HOST_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            host_limit: AtomicU32::new(0),
            retire_cursor: AtomicUsize::new(0),
            pass_live: AtomicUsize::new(0),
            pass_seen: AtomicUsize::new(0),
            last_live: AtomicUsize::new(0),
        }
    }

    /// The configuration in effect (capacity and workers rounded).
    pub fn config(&self) -> &NatTableConfig {
        &self.cfg
    }

    /// Sessions the table holds.
    pub fn capacity(&self) -> usize {
        self.records.len()
    }

    /// Memory allocated: records, index and free stacks.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.records)
            + std::mem::size_of_val(&*self.buckets)
            + std::mem::size_of_val(&*self.free)
            + std::mem::size_of_val(&*self.parts)
            + std::mem::size_of_val(&*self.hosts)
    }

    /// Limits the sessions created by [`NatTable::create_for_host`] per
    /// inside host (0: no limit). Hosts are counted by the low 16 bits of
    /// their address: exact for inside networks of up to a /16; hosts
    /// 65536 addresses apart share one count. Applies to new sessions
    /// only; sessions over a lowered limit stay.
    pub fn set_host_limit(&self, limit: u32) {
        self.host_limit.store(limit, Ordering::Relaxed);
    }

    /// Sessions counted for `host` (see [`NatTable::set_host_limit`]).
    pub fn host_sessions(&self, host: u32) -> u32 {
        self.hosts.get(host as usize & (HOST_SLOTS - 1)).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    #[inline(always)]
    fn hashed(&self, w: Words) -> Hashed {
        let h = hash(self.seed, w);
        let tag = (h >> 32) as u32;
        let tag = if tag == 0 { 1 } else { tag };
        let b1 = h as usize & self.bucket_mask;
        // Odd, so the secondary bucket always differs from the primary.
        let alt = ((tag as u64).wrapping_mul(M2) >> 32) as usize | 1;
        Hashed { buckets: [b1, (b1 ^ alt) & self.bucket_mask], tag }
    }

    /// The index entry at probe position `pos` (0..16) of `h`.
    #[inline(always)]
    fn slot(&self, h: &Hashed, pos: usize) -> &AtomicU64 {
        &self.buckets[h.buckets[(pos / BUCKET) & 1] & self.bucket_mask].0[pos % BUCKET]
    }

    #[inline(always)]
    fn live(&self, c: Ctl, now: u32) -> bool {
        c.in_use() && age(now, c.low()) <= self.timeouts[(c.code() & CODE_MASK) as usize] as i64
    }

    /// Seqlock read of record `idx`: its control word and tuple words, if
    /// it holds a published session (live or expired).
    #[inline(always)]
    fn read(&self, idx: usize) -> Option<(Ctl, [u64; 4])> {
        let r = self.records.get(idx)?;
        let c1 = Ctl(r.ctl.load(Ordering::Acquire));
        if !c1.in_use() {
            return None;
        }
        let w = [
            r.words[0].load(Ordering::Relaxed),
            r.words[1].load(Ordering::Relaxed),
            r.words[2].load(Ordering::Relaxed),
            r.words[3].load(Ordering::Relaxed),
        ];
        fence(Ordering::Acquire);
        let c2 = Ctl(r.ctl.load(Ordering::Relaxed));
        // Same version: the words are whole (the state and time may have
        // moved on, or the session been cleared).
        (c2.ver() == c1.ver() && c2.in_use()).then_some((c2, w))
    }

    /// Reads the record of index entry `e`: its control word and whether
    /// it holds tuple words `kw` in the entry's direction, with the hit
    /// such a packet would get.
    #[inline(always)]
    fn probe(&self, e: u64, kw: Words) -> Option<(Ctl, Hit)> {
        let idx = entry_idx(e);
        let dir = entry_dir(e);
        let (c, w) = self.read(idx)?;
        // Without a branch on the direction (bursts mix both).
        let d = entry_dir_bit(e) * 2;
        let (mine, other) = ((w[d], w[d + 1]), (w[2 - d], w[3 - d]));
        if mine != kw {
            return None;
        }
        let state = State::of_code(c.code())?;
        Some((c, Hit { id: idx as u32, dir, to: tuple_of(other).reverse(), state, ctl: c.0 }))
    }

    /// The hit of index entry `e` for a packet with tuple words `kw`, if
    /// its record holds them, live at `now`.
    #[inline(always)]
    fn verify(&self, e: u64, kw: Words, now: u32) -> Option<Hit> {
        self.probe(e, kw).and_then(|(c, hit)| self.live(c, now).then_some(hit))
    }

    /// The probe positions (bits 0..16) of `h`'s entries whose tag is
    /// `h.tag` (so not empty: tags are never 0). Without branches on the
    /// loaded data: those mispredict, and a burst's loads and prefetches
    /// behind them are squashed.
    #[inline(always)]
    fn tag_mask(&self, h: &Hashed) -> u32 {
        let mut m = 0;
        for (n, &b) in h.buckets.iter().enumerate() {
            let bucket = &self.buckets[b].0;
            for (j, e) in bucket.iter().enumerate() {
                m |= u32::from(entry_tag(e.load(Ordering::Relaxed)) == h.tag) << (n * BUCKET + j);
            }
        }
        m
    }

    /// The first entry of `h` in probe order whose tag is `h.tag` (0 if
    /// none), without branches on the loaded data.
    #[inline(always)]
    fn first_candidate(&self, h: &Hashed) -> u64 {
        let mut sel = 0;
        for &b in h.buckets.iter().rev() {
            for e in self.buckets[b].0.iter().rev() {
                let e = e.load(Ordering::Relaxed);
                sel = if entry_tag(e) == h.tag { e } else { sel };
            }
        }
        sel
    }

    /// The first live session reachable through `kw`'s entries (of
    /// direction `dir` only, if given), among the probe positions in `m`.
    #[inline(always)]
    fn find_in(&self, kw: Words, h: &Hashed, mut m: u32, now: u32, dir: Option<Dir>) -> Option<Hit> {
        while m != 0 {
            let pos = m.trailing_zeros() as usize;
            m &= m - 1;
            let e = self.slot(h, pos).load(Ordering::Acquire);
            if e == 0 || entry_tag(e) != h.tag || dir.is_some_and(|d| d != entry_dir(e)) {
                continue;
            }
            if let Some(hit) = self.verify(e, kw, now) {
                return Some(hit);
            }
        }
        None
    }

    /// The first live session reachable through `kw`'s entries (of
    /// direction `dir` only, if given), given the first candidate entry
    /// `e` (see [`Self::first_candidate`]).
    #[inline(always)]
    fn resolve(&self, kw: Words, h: &Hashed, e: u64, now: u32, dir: Option<Dir>) -> Option<Hit> {
        if entry_tag(e) != h.tag {
            return None;
        }
        // Pairs with the creator's release of the entry (`e` was loaded
        // relaxed): its record is published.
        fence(Ordering::Acquire);
        if dir.is_none_or(|d| d == entry_dir(e)) {
            if let Some(hit) = self.verify(e, kw, now) {
                return Some(hit);
            }
        }
        // Rare: a tag collision, a stale entry of an expired session with
        // the same tuple, another direction, or the entry changed.
        self.find_in(kw, h, self.tag_mask(h), now, dir)
    }

    /// The first live session reachable through `kw`'s entries (of
    /// direction `dir` only, if given).
    #[inline(always)]
    fn find(&self, kw: Words, h: &Hashed, now: u32, dir: Option<Dir>) -> Option<Hit> {
        self.resolve(kw, h, self.first_candidate(h), now, dir)
    }

    /// Looks up a packet's tuple at `now`. Does not refresh the session
    /// (see [`touch`](Self::touch)).
    #[inline]
    pub fn lookup(&self, t: &Tuple, now: u32) -> Option<Hit> {
        let kw = t.words();
        self.find(kw, &self.hashed(kw), now, None)
    }

    /// [`lookup`](Self::lookup) for a burst: `out[i]` is the result for
    /// `keys[i]` (up to the shorter of the two). The loads of up to 64
    /// keys at a time are overlapped: hashes and bucket prefetches for
    /// every key, then tag scans and record prefetches, then the compares
    /// (which then hit the cache).
    pub fn lookup_batch(&self, keys: &[Tuple], now: u32, out: &mut [Option<Hit>]) {
        let n = keys.len().min(out.len());
        for (keys, out) in keys[..n].chunks(BATCH).zip(out[..n].chunks_mut(BATCH)) {
            let mut kws = [(0u64, 0u64); BATCH];
            let mut hs = [Hashed::default(); BATCH];
            for ((k, kw), h) in keys.iter().zip(kws.iter_mut()).zip(hs.iter_mut()) {
                *kw = k.words();
                *h = self.hashed(*kw);
                prefetch(&self.buckets[h.buckets[0]]);
                prefetch(&self.buckets[h.buckets[1]]);
            }
            // Per key: the first entry whose tag matches (0 if none); its
            // record is prefetched (record 0 for none: harmless, and no
            // branch).
            let mut cand = [0u64; BATCH];
            for (h, c) in hs[..keys.len()].iter().zip(cand.iter_mut()) {
                *c = self.first_candidate(h);
                if let Some(r) = self.records.get(entry_idx(*c)) {
                    prefetch(r);
                }
            }
            for (((o, kw), h), e) in out.iter_mut().zip(&kws).zip(&hs).zip(cand) {
                *o = self.resolve(*kw, h, e, now, None);
            }
        }
    }

    /// Refreshes the session and advances its state from a packet in
    /// `hit.dir` with TCP `tcp_flags` (0 for non-TCP). Returns the new
    /// state. If the session was freed, reused, cleared or has expired
    /// meanwhile, does nothing (and returns `hit.state`).
    #[inline(always)]
    pub fn touch(&self, hit: &Hit, tcp_flags: u8, now: u32) -> State {
        // The common case, decided from the control word the lookup saw:
        // stamped this second, and not TCP (whose state may move).
        let seen = Ctl(hit.ctl);
        if seen.low() == now && !matches!(seen.code(), TCP_TRANSITORY | TCP_ESTABLISHED | TCP_CLOSING) {
            return hit.state;
        }
        self.touch_slow(hit, tcp_flags, now)
    }

    #[inline(never)]
    fn touch_slow(&self, hit: &Hit, tcp_flags: u8, now: u32) -> State {
        let Some(r) = self.records.get(hit.id as usize) else { return hit.state };
        let mut cur = Ctl(hit.ctl);
        let ver = cur.ver();
        for _ in 0..CAS_RETRIES {
            if cur.ver() != ver || !self.live(cur, now) {
                return hit.state;
            }
            let time = if age(now, cur.low()) > 0 { now } else { cur.low() };
            let new = Ctl::new(ver, next_state(cur.state(), hit.dir, tcp_flags), time);
            let state = State::of_code(new.code()).unwrap_or(hit.state);
            if new == cur {
                return state;
            }
            // Relaxed: state and time guard no other data.
            match r.ctl.compare_exchange_weak(cur.0, new.0, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return state,
                Err(x) => cur = Ctl(x),
            }
        }
        hit.state
    }

    /// Starts loading the index buckets of `t` into the cache (before a
    /// [`create`](Self::create) or [`lookup`](Self::lookup) of it).
    #[inline(always)]
    pub fn prefetch(&self, t: &Tuple) {
        let h = self.hashed(t.words());
        prefetch(&self.buckets[h.buckets[0] & self.bucket_mask]);
        prefetch(&self.buckets[h.buckets[1] & self.bucket_mask]);
    }

    /// `true` if a live session has `reply` as its reply tuple.
    pub fn reply_in_use(&self, reply: &Tuple, now: u32) -> bool {
        let kw = reply.words();
        self.find(kw, &self.hashed(kw), now, Some(Dir::Reply)).is_some()
    }

    /// The first live session holding `kw` in direction `dir` through the
    /// entries of `h`, retiring the expired ones met (see [`Self::examine`]).
    fn settle(&self, kw: Words, h: &Hashed, dir: Dir, now: u32) -> Option<Hit> {
        (0..PROBE).find_map(|pos| {
            let e = self.slot(h, pos).load(Ordering::Acquire);
            if e == 0 || entry_tag(e) != h.tag || entry_dir(e) != dir {
                return None;
            }
            self.examine(e, kw, now)
        })
    }

    /// The hit of entry `e` if it leads to a live session holding `kw`.
    /// An expired one is marked cleared, so that a worker whose clock lags
    /// cannot revive it next to the session being created.
    fn examine(&self, e: u64, kw: Words, now: u32) -> Option<Hit> {
        let r = self.records.get(entry_idx(e))?;
        for _ in 0..CAS_RETRIES {
            let (c, hit) = self.probe(e, kw)?;
            if self.live(c, now) {
                return Some(hit);
            }
            if r.ctl.compare_exchange(c.0, c.cleared().0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return None;
            }
        }
        None
    }

    /// Inserts index entry `e` into the emptier of `h`'s buckets (the
    /// primary on a tie), or the other if that one is full. Returns its
    /// probe position, `None` if both are full.
    fn insert_entry(&self, h: &Hashed, e: u64) -> Option<usize> {
        let used =
            |n: usize| (0..BUCKET).filter(|&j| self.slot(h, n * BUCKET + j).load(Ordering::Relaxed) != 0).count();
        let order = if used(1) < used(0) { [1, 0] } else { [0, 1] };
        for n in order {
            for j in 0..BUCKET {
                let pos = n * BUCKET + j;
                let s = self.slot(h, pos);
                if s.load(Ordering::Relaxed) == 0
                    && s.compare_exchange(0, e, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                {
                    return Some(pos);
                }
            }
        }
        None
    }

    /// Removes index entry `e` (this exact value) if it is still there.
    fn remove_entry(&self, h: &Hashed, e: u64) {
        for pos in 0..PROBE {
            let s = self.slot(h, pos);
            if s.load(Ordering::Relaxed) == e {
                let _ = s.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Partition of record `idx`'s owner.
    #[inline(always)]
    fn owner(&self, idx: usize) -> usize {
        idx / self.per
    }

    fn push(&self, worker: usize, idx: usize) {
        let Some(p) = self.parts.get(worker) else { return };
        let t = p.top.load(Ordering::Acquire);
        if t < self.per {
            if let Some(s) = self.free.get(worker * self.per + t) {
                s.store(idx as u32, Ordering::Relaxed);
                p.top.store(t + 1, Ordering::Release);
            }
        }
    }

    fn pop(&self, worker: usize) -> Option<usize> {
        let p = self.parts.get(worker)?;
        let t = p.top.load(Ordering::Acquire);
        let t = t.checked_sub(1)?.min(self.per - 1);
        p.top.store(t, Ordering::Release);
        self.free.get(worker * self.per + t).map(|s| s.load(Ordering::Relaxed) as usize)
    }

    /// Claims a free record of `worker`'s (sweeping if there is none):
    /// the record and its busy control word.
    fn alloc(&self, worker: usize, now: u32) -> Result<(usize, Ctl), CreateError> {
        let range = worker * self.per..(worker + 1) * self.per;
        let mut swept = false;
        loop {
            let Some(idx) = self.pop(worker) else {
                if swept {
                    return Err(CreateError::Full);
                }
                swept = true;
                let part = self.parts.get(worker);
                let dry = now as u64 + 1;
                if part.is_some_and(|p| p.dry_at.load(Ordering::Relaxed) == dry) {
                    return Err(CreateError::Full);
                }
                if self.sweep(worker, now, CREATE_SWEEP) == 0 {
                    if let Some(p) = part {
                        p.dry_at.store(dry, Ordering::Relaxed);
                    }
                }
                continue;
            };
            // A record not free here (only if the ownership contract was
            // broken) is skipped.
            let Some(r) = self.records.get(idx).filter(|_| range.contains(&idx)) else { continue };
            let c = Ctl(r.ctl.load(Ordering::Acquire));
            if c.busy() || c.code() != FREE {
                continue;
            }
            let busy = Ctl::new(c.ver() + 1, FREE, 0);
            if r.ctl.compare_exchange(c.0, busy.0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return Ok((idx, busy));
            }
        }
    }

    /// Frees record `idx`, last seen as `seen`: compare-exchange to free
    /// (retried while only its state or time change, unless that makes it
    /// live at `unless_live_at`), then removes its index entries and gives
    /// it back to its owner. `false` if it was not freed.
    fn free_record(&self, idx: usize, mut seen: Ctl, unless_live_at: Option<u32>) -> bool {
        let Some(r) = self.records.get(idx) else { return false };
        let ver = seen.ver();
        for _ in 0..CAS_RETRIES {
            if seen.ver() != ver
                || seen.busy()
                || seen.code() == FREE
                || unless_live_at.is_some_and(|now| self.live(seen, now))
            {
                return false;
            }
            match r.ctl.compare_exchange(seen.0, seen.freed().0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.release_host(r);
                    // The tuples are ours to read: only the owner writes them.
                    let w = [0, 1, 2, 3].map(|i| r.words[i].load(Ordering::Relaxed));
                    let (o, p) = ((w[0], w[1]), (w[2], w[3]));
                    let oh = self.hashed(o);
                    self.remove_entry(&oh, entry(oh.tag, idx, Dir::Forward));
                    let rh = self.hashed(p);
                    self.remove_entry(&rh, entry(rh.tag, idx, Dir::Reply));
                    self.push(self.owner(idx), idx);
                    return true;
                }
                Err(x) => seen = Ctl(x),
            }
        }
        false
    }

    /// Creates a session for a packet with tuple `orig` whose replies will
    /// carry `reply`, in `state`, owned by `worker` (only that worker may
    /// call this with its id). Returns the Forward hit for `orig` (`to` =
    /// `reply.reverse()`). If a live session with `orig` already exists
    /// (created meanwhile by another worker), returns its Forward hit
    /// without creating one.
    pub fn create(
        &self,
        worker: usize,
        orig: &Tuple,
        reply: &Tuple,
        state: State,
        now: u32,
    ) -> Result<Hit, CreateError> {
        self.create_with(worker, orig, reply, state, now, None)
    }

    /// [`create`](Self::create), counting the new session against inside
    /// host `host`'s limit ([`NatTable::set_host_limit`]):
    /// [`CreateError::HostLimit`] when it has no room.
    pub fn create_for_host(
        &self,
        worker: usize,
        orig: &Tuple,
        reply: &Tuple,
        state: State,
        now: u32,
        host: u32,
    ) -> Result<Hit, CreateError> {
        self.create_with(worker, orig, reply, state, now, Some(host))
    }

    fn create_with(
        &self,
        worker: usize,
        orig: &Tuple,
        reply: &Tuple,
        state: State,
        now: u32,
        host: Option<u32>,
    ) -> Result<Hit, CreateError> {
        if worker >= self.parts.len() {
            return Err(CreateError::Full);
        }
        let (ow, rw) = (orig.words(), reply.words());
        if let Some(hit) = self.settle(ow, &self.hashed(ow), Dir::Forward, now) {
            return Ok(hit);
        }
        if self.settle(rw, &self.hashed(rw), Dir::Reply, now).is_some() {
            return Err(CreateError::ReplyInUse);
        }
        // Counted before the record exists, so racing creators for one
        // host cannot both pass the limit; given back if the create fails
        // (or by the free of a record that lost a race).
        let slot = host.map(|h| h as usize & (HOST_SLOTS - 1));
        if let Some(c) = slot.and_then(|s| self.hosts.get(s)) {
            let limit = self.host_limit.load(Ordering::Relaxed);
            if c.fetch_add(1, Ordering::AcqRel) >= limit && limit != 0 {
                c.fetch_sub(1, Ordering::AcqRel);
                return Err(CreateError::HostLimit);
            }
        }
        let r = self.create_new(worker, orig, reply, state, now, slot);
        // `Full`: no record took the count. Every later failure frees a
        // record that carries it, which gives it back.
        if r == Err(CreateError::Full) {
            if let Some(c) = slot.and_then(|s| self.hosts.get(s)) {
                c.fetch_sub(1, Ordering::AcqRel);
            }
        }
        r
    }

    /// [`create`](Self::create) after its checks for an existing session:
    /// publishes the record, inserts its entries and settles a race with
    /// another creator of `orig` (see "Duplicate freedom").
    fn create_new(
        &self,
        worker: usize,
        orig: &Tuple,
        reply: &Tuple,
        state: State,
        now: u32,
        host_slot: Option<usize>,
    ) -> Result<Hit, CreateError> {
        let (ow, rw) = (orig.words(), reply.words());
        let (oh, rh) = (self.hashed(ow), self.hashed(rw));
        let (idx, busy) = self.alloc(worker, now)?;
        let r = &self.records[idx];
        // From here on the record carries the count: freeing it gives the
        // count back.
        r.host.store(host_slot.map_or(0, |s| s as u32 + 1), Ordering::Relaxed);
        // The seqlock's release fence: the busy mark before the words.
        fence(Ordering::Release);
        for (dst, w) in r.words.iter().zip([ow.0, ow.1, rw.0, rw.1]) {
            dst.store(w, Ordering::Relaxed);
        }
        let published = Ctl::new(busy.ver() + 1, state.code(orig.proto), now);
        r.ctl.store(published.0, Ordering::Release);

        let reply_entry = entry(rh.tag, idx, Dir::Reply);
        if self.insert_entry(&rh, reply_entry).is_none() {
            self.free_record(idx, published, None);
            return Err(CreateError::IndexFull);
        }
        let orig_entry = entry(oh.tag, idx, Dir::Forward);
        let Some(mine) = self.insert_entry(&oh, orig_entry) else {
            self.free_record(idx, published, None);
            return Err(CreateError::IndexFull);
        };
        // Orders our orig entry before the rescan (see "Duplicate
        // freedom" in the module doc).
        fence(Ordering::SeqCst);
        for pos in 0..PROBE {
            if pos == mine {
                continue;
            }
            let e = self.slot(&oh, pos).load(Ordering::Acquire);
            if e == 0 || entry_tag(e) != oh.tag || entry_dir(e) != Dir::Forward || entry_idx(e) == idx {
                continue;
            }
            let Some(hit) = self.examine(e, ow, now) else { continue };
            if pos < mine {
                // An earlier entry wins: give ours up.
                self.remove_entry(&oh, orig_entry);
                let seen = Ctl(r.ctl.load(Ordering::Acquire));
                self.free_record(idx, seen, None);
                return Ok(hit);
            }
            // A later one loses.
            let _ = self.slot(&oh, pos).compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        Ok(Hit { id: idx as u32, dir: Dir::Forward, to: reply.reverse(), state, ctl: published.0 })
    }

    /// Marks record `idx` cleared if it holds a session. `true` if it did.
    fn clear_one(&self, r: &Record) -> bool {
        let mut c = Ctl(r.ctl.load(Ordering::Acquire));
        for _ in 0..CAS_RETRIES {
            if !c.in_use() {
                return false;
            }
            match r.ctl.compare_exchange(c.0, c.cleared().0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.release_host(r);
                    return true;
                }
                Err(x) => c = Ctl(x),
            }
        }
        false
    }

    /// Gives back the per-host count record `r` holds, if any (once:
    /// whoever swaps the mark out releases it).
    #[inline]
    fn release_host(&self, r: &Record) {
        let hs = r.host.swap(0, Ordering::AcqRel);
        if let Some(c) = hs.checked_sub(1).and_then(|h| self.hosts.get(h as usize)) {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Control side, any thread, periodically: marks up to `max` records
    /// (round-robin over the whole table) that are expired at `now` as
    /// cleared, giving back their per-host counts at once. Their owners
    /// free them at their next sweep; without this, a worker that sees
    /// little traffic sweeps slowly, and its expired sessions would hold
    /// their hosts' counts until then. Returns how many it retired.
    pub fn retire_expired(&self, now: u32, max: usize) -> usize {
        let n = self.records.len();
        if n == 0 {
            return 0;
        }
        let max = max.min(n);
        let start = self.retire_cursor.fetch_add(max, Ordering::Relaxed) % n;
        let (mut retired, mut live) = (0, 0);
        for k in 0..max {
            let Some(r) = self.records.get((start + k) % n) else { continue };
            let c = Ctl(r.ctl.load(Ordering::Acquire));
            if !c.in_use() {
                continue;
            }
            if self.live(c, now) {
                live += 1;
            } else if self.retire(r, c) {
                retired += 1;
            }
        }
        // A whole pass over the table: its live count is the estimate.
        let live = self.pass_live.fetch_add(live, Ordering::Relaxed) + live;
        if self.pass_seen.fetch_add(max, Ordering::Relaxed) + max >= n {
            self.last_live.store(live, Ordering::Relaxed);
            self.pass_live.store(0, Ordering::Relaxed);
            self.pass_seen.store(0, Ordering::Relaxed);
        }
        retired
    }

    /// Live sessions counted by the last whole pass of
    /// [`NatTable::retire_expired`] (cheap to read: no scan; as old as one
    /// pass, under 2 s for 1M sessions in the runtime). [`NatTable::len`]
    /// counts exactly, by a scan.
    pub fn live_estimate(&self) -> usize {
        self.last_live.load(Ordering::Relaxed)
    }

    /// Marks `r`, last seen as expired `seen`, cleared (unless it changed).
    fn retire(&self, r: &Record, seen: Ctl) -> bool {
        if r.ctl.compare_exchange(seen.0, seen.cleared().0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.release_host(r);
            true
        } else {
            false
        }
    }

    /// Removes session `id` (control side): lookups stop seeing it at
    /// once, its owner frees it in a sweep. `true` if it held a session
    /// (possibly expired but not yet swept).
    pub fn remove(&self, id: u32) -> bool {
        self.records.get(id as usize).is_some_and(|r| self.clear_one(r))
    }

    /// Frees up to `max` of `worker`'s records that are expired at `now`
    /// or cleared, examining them round-robin (only that worker may call
    /// this with its id). Returns how many it freed.
    pub fn sweep(&self, worker: usize, now: u32, max: usize) -> usize {
        let Some(p) = self.parts.get(worker) else { return 0 };
        let base = worker * self.per;
        let mut cur = p.cursor.load(Ordering::Relaxed) % self.per;
        let mut freed = 0;
        for _ in 0..max.min(self.per) {
            let idx = base + cur;
            cur += 1;
            if cur == self.per {
                cur = 0;
            }
            let Some(r) = self.records.get(idx) else { continue };
            let c = Ctl(r.ctl.load(Ordering::Acquire));
            if c.busy() || c.code() == FREE || self.live(c, now) {
                continue;
            }
            // Expired or cleared. (A concurrent refresh from a lagging
            // clock makes the compare-exchange fail; it is then live, and
            // stays.)
            if self.free_record(idx, c, Some(now)) {
                freed += 1;
            }
        }
        p.cursor.store(cur, Ordering::Relaxed);
        freed
    }

    /// Removes every session (control side): lookups stop seeing them at
    /// once, their owners free them in their sweeps. Returns how many it
    /// marked, counting sessions expired but not yet swept. Sessions
    /// created concurrently may survive.
    pub fn clear(&self) -> usize {
        self.records.iter().filter(|r| self.clear_one(r)).count()
    }

    /// Calls `f` for every session live at `now` (a scan; control side).
    pub fn for_each(&self, now: u32, mut f: impl FnMut(&SessionInfo)) {
        for idx in 0..self.records.len() {
            let Some((c, w)) = self.read(idx) else { continue };
            if !self.live(c, now) {
                continue;
            }
            let Some(state) = State::of_code(c.code()) else { continue };
            f(&SessionInfo {
                id: idx as u32,
                orig: tuple_of((w[0], w[1])),
                reply: tuple_of((w[2], w[3])),
                state,
                idle_secs: age(now, c.low()).max(0) as u32,
                owner: self.owner(idx),
            });
        }
    }

    /// Occupancy at `now` (a scan; control side).
    pub fn stats(&self, now: u32) -> NatTableStats {
        let mut by_state = State::ALL.map(|s| (s, 0));
        let mut per_worker_live = vec![0; self.parts.len()];
        let mut live = 0;
        for (idx, r) in self.records.iter().enumerate() {
            let c = Ctl(r.ctl.load(Ordering::Relaxed));
            if !self.live(c, now) {
                continue;
            }
            let Some(s) = State::of_code(c.code()) else { continue };
            live += 1;
            if let Some(b) = by_state.get_mut(s.index()) {
                b.1 += 1;
            }
            if let Some(w) = per_worker_live.get_mut(self.owner(idx)) {
                *w += 1;
            }
        }
        NatTableStats { capacity: self.capacity(), live, by_state, per_worker_live }
    }

    /// Live sessions at `now` (a scan; control side).
    pub fn len(&self, now: u32) -> usize {
        self.records.iter().filter(|r| self.live(Ctl(r.ctl.load(Ordering::Relaxed)), now)).count()
    }

    /// No live session at `now`.
    pub fn is_empty(&self, now: u32) -> bool {
        self.len(now) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicBool;

    const TCP: u8 = 6;
    const UDPP: u8 = 17;
    const ICMPP: u8 = 1;

    fn table(capacity: usize, workers: usize) -> NatTable {
        NatTable::new(NatTableConfig { capacity, workers, timeouts: Timeouts::default() })
    }

    /// Small, distinct timeouts.
    fn short() -> Timeouts {
        Timeouts {
            tcp_established: 100,
            tcp_transitory: 10,
            udp: 20,
            icmp: 5,
            fragment: 2,
            mapping_tcp: 50,
            mapping_udp: 30,
        }
    }

    fn tuple(src: u32, sport: u16, dst: u32, dport: u16, proto: u8) -> Tuple {
        Tuple { src, dst, sport, dport, proto, kind: crate::nat::KIND_FLOW }
    }

    /// Client `i`'s flow to a server.
    fn orig(i: u32, proto: u8) -> Tuple {
        tuple(0x0a00_0000 + i, 1024 + (i % 50_000) as u16, 0x0808_0808 + (i >> 16), 443, proto)
    }

    /// The reply tuple of `o` translated to `public`:`port`.
    fn snat(o: &Tuple, public: u32, port: u16) -> Tuple {
        Tuple { src: o.dst, dst: public, sport: o.dport, dport: port, proto: o.proto, kind: o.kind }
    }

    const PUB: u32 = 0xc633_6401;

    /// Orig entries of `o` (in its buckets) leading to a live session with `o`.
    fn orig_reachable(t: &NatTable, o: &Tuple, now: u32) -> usize {
        let kw = o.words();
        let h = t.hashed(kw);
        (0..PROBE)
            .filter(|&pos| {
                let e = t.slot(&h, pos).load(Ordering::Acquire);
                e != 0 && entry_tag(e) == h.tag && entry_dir(e) == Dir::Forward && t.verify(e, kw, now).is_some()
            })
            .count()
    }

    fn infos(t: &NatTable, now: u32) -> Vec<SessionInfo> {
        let mut v = Vec::new();
        t.for_each(now, |s| v.push(*s));
        v
    }

    #[test]
    fn layout_and_memory() {
        assert_eq!(std::mem::size_of::<Record>(), 64);
        assert_eq!(std::mem::align_of::<Record>(), 64);
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        let t = table(1 << 16, 1);
        assert_eq!(t.capacity(), 1 << 16);
        assert_eq!(t.buckets.len(), 1 << 15);
        // 64 record + 32 index + 4 free stack, plus the partition line and
        // the per-host counts (2^16 × 4 bytes).
        assert_eq!(t.bytes(), 100 * (1 << 16) + 128 + (4 << 16));
        // Capacity rounded up to a multiple of the workers.
        let t = table(10, 3);
        assert_eq!((t.capacity(), t.config().capacity, t.config().workers, t.per), (12, 12, 3, 4));
        let t = table(1, 4);
        assert_eq!(t.capacity(), 4);
        let t = table(0, 0);
        assert_eq!((t.capacity(), t.config().workers, t.buckets.len()), (1, 1, 2));
        assert_eq!(NatTableConfig::default().capacity, 1 << 20);
        assert_eq!(Timeouts::default().tcp_established, 7440);
    }

    #[test]
    fn both_directions_are_found_and_rewritten() {
        let t = table(1024, 1);
        let o = orig(1, UDPP);
        let r = snat(&o, PUB, 40000);
        assert_eq!(t.lookup(&o, 5), None);
        let h = t.create(0, &o, &r, State::Udp, 5).expect("create");
        assert_eq!((h.dir, h.to, h.state), (Dir::Forward, r.reverse(), State::Udp));
        // What the first packet becomes: from the public address.
        assert_eq!((h.to.src, h.to.sport, h.to.dst, h.to.dport), (PUB, 40000, o.dst, o.dport));
        let f = t.lookup(&o, 6).expect("forward");
        assert_eq!((f.id, f.dir, f.to), (h.id, Dir::Forward, r.reverse()));
        let b = t.lookup(&r, 6).expect("reply");
        assert_eq!((b.id, b.dir, b.to), (h.id, Dir::Reply, o.reverse()));
        // The reply is rewritten back to the client.
        assert_eq!((b.to.src, b.to.sport, b.to.dst, b.to.dport), (o.dst, o.dport, o.src, o.sport));
        // Misses: unknown flows, the untranslated reverse, another kind.
        assert_eq!(t.lookup(&orig(2, UDPP), 6), None);
        assert_eq!(t.lookup(&o.reverse(), 6), None);
        assert_eq!(t.lookup(&r.reverse(), 6), None);
        assert_eq!(t.lookup(&Tuple { kind: crate::nat::KIND_FRAG, ..o }, 6), None);
        assert_eq!(t.lookup(&Tuple { proto: TCP, ..o }, 6), None);
        assert_eq!(t.lookup(&Tuple { dport: 40001, ..r }, 6), None);
        // Creating it again returns the existing session (whatever reply).
        let again = t.create(0, &o, &snat(&o, PUB, 40001), State::Udp, 7).expect("existing");
        assert_eq!((again.id, again.to), (h.id, r.reverse()));
        assert_eq!(t.len(7), 1);
        assert!(!t.is_empty(7));
    }

    #[test]
    fn icmp_query_tuples() {
        let t = table(64, 1);
        // Echo id 77 from a client, translated to id 9 on the public address.
        let o = tuple(0x0a00_0005, 77, 0x0101_0101, 77, ICMPP);
        let r = tuple(0x0101_0101, 9, PUB, 9, ICMPP);
        let h = t.create(0, &o, &r, State::Icmp, 0).expect("create");
        assert_eq!(h.to, tuple(PUB, 9, 0x0101_0101, 9, ICMPP));
        let b = t.lookup(&r, 1).expect("echo reply");
        assert_eq!((b.dir, b.to), (Dir::Reply, tuple(0x0101_0101, 77, 0x0a00_0005, 77, ICMPP)));
        assert_eq!(t.lookup(&tuple(0x0101_0101, 8, PUB, 8, ICMPP), 1), None);
        // The request again, and a request from the other side.
        assert_eq!(t.lookup(&o, 1).map(|h| h.dir), Some(Dir::Forward));
        assert_eq!(t.lookup(&o.reverse(), 1), None);
    }

    #[test]
    fn batch_lookup_matches_single_lookups() {
        let t = table(1024, 2);
        let mut keys = Vec::new();
        for i in 0..60 {
            let o = orig(i, UDPP);
            let r = snat(&o, PUB, 2000 + i as u16);
            if i % 3 != 0 {
                assert!(t.create((i % 2) as usize, &o, &r, State::Udp, 0).is_ok());
            }
            keys.extend([o, r, o.reverse()]);
        }
        assert!(keys.len() > 2 * BATCH);
        let mut out = vec![None; keys.len()];
        t.lookup_batch(&keys, 1, &mut out);
        let single: Vec<Option<Hit>> = keys.iter().map(|k| t.lookup(k, 1)).collect();
        assert_eq!(out, single);
        assert_eq!(out.iter().flatten().count(), 80);
        // A longer output: the rest is left alone.
        let stale = t.lookup(&keys[4], 1);
        assert!(stale.is_some());
        let mut long = vec![stale; 5];
        t.lookup_batch(&keys[..3], 1, &mut long);
        assert_eq!(long, vec![None, None, None, stale, stale]);
        // A shorter output: only that many keys.
        let mut short = vec![None; 2];
        t.lookup_batch(&keys[3..], 1, &mut short);
        assert_eq!(short, vec![t.lookup(&keys[3], 1), t.lookup(&keys[4], 1)]);
        // Expired sessions are absent in batches too.
        t.lookup_batch(&keys, 1 + 301, &mut out);
        assert!(out.iter().all(|o| o.is_none()));
    }

    #[test]
    fn each_state_expires_after_its_timeout() {
        let t = NatTable::new(NatTableConfig { capacity: 64, workers: 1, timeouts: short() });
        let cases = [
            (State::TcpTransitory, TCP, 10),
            (State::TcpEstablished, TCP, 100),
            (State::TcpClosing, TCP, 10),
            (State::Udp, UDPP, 20),
            (State::Icmp, ICMPP, 5),
            (State::Fragment, UDPP, 2),
            (State::Mapping, TCP, 50),
            (State::Mapping, UDPP, 30),
            (State::Mapping, ICMPP, 30),
        ];
        for (n, (state, proto, timeout)) in cases.into_iter().enumerate() {
            let o = orig(n as u32, proto);
            let r = snat(&o, PUB, 100 + n as u16);
            let h = t.create(0, &o, &r, state, 1000).expect("create");
            assert_eq!(h.state, state);
            assert_eq!(t.lookup(&r, 1000 + timeout).map(|h| h.state), Some(state), "{state:?} {proto}");
            assert_eq!(t.lookup(&o, 1000 + timeout + 1), None, "{state:?} {proto}");
            assert_eq!(t.lookup(&r, 1000 + timeout + 1), None, "{state:?} {proto}");
            assert!(!t.reply_in_use(&r, 1000 + timeout + 1));
            // A clock a little behind still sees it.
            assert!(t.lookup(&o, 999).is_some());
        }
        assert_eq!(t.len(1000), cases.len());
        assert_eq!(t.len(1003), cases.len() - 1);
        assert_eq!(t.len(1101), 0);
    }

    #[test]
    fn touch_refreshes_at_most_once_a_second_and_never_rewinds() {
        let t = NatTable::new(NatTableConfig { capacity: 64, workers: 1, timeouts: short() });
        let o = orig(1, UDPP);
        let r = snat(&o, PUB, 1);
        let h = t.create(0, &o, &r, State::Udp, 0).expect("create");
        let ctl = |t: &NatTable| t.records[h.id as usize].ctl.load(Ordering::Relaxed);
        let before = ctl(&t);
        assert_eq!(t.touch(&h, 0, 0), State::Udp);
        assert_eq!(ctl(&t), before, "same second: no write");
        let h = t.lookup(&r, 15).expect("hit");
        assert_eq!(t.touch(&h, 0, 15), State::Udp);
        assert_eq!(Ctl(ctl(&t)).low(), 15);
        // A lagging clock does not move it back.
        let h = t.lookup(&r, 12).expect("hit");
        t.touch(&h, 0, 12);
        assert_eq!(Ctl(ctl(&t)).low(), 15);
        assert!(t.lookup(&o, 35).is_some());
        assert!(t.lookup(&o, 36).is_none());
        // An expired session is not revived by a late touch.
        let h = t.lookup(&o, 35).expect("hit");
        assert_eq!(t.touch(&h, 0, 36), State::Udp);
        assert_eq!(Ctl(ctl(&t)).low(), 15);
        assert!(t.lookup(&o, 36).is_none());
        // Touching a session that was freed and reused does nothing.
        assert_eq!(t.sweep(0, 40, 64), 1);
        let o2 = orig(2, TCP);
        let h2 = t.create(0, &o2, &snat(&o2, PUB, 2), State::TcpEstablished, 40).expect("create");
        assert_eq!(h2.id, h.id, "the record is reused");
        let stale = Hit { ctl: Ctl::new(Ctl(h.ctl).ver(), TCP_ESTABLISHED, 40).0, ..h };
        assert_eq!(t.touch(&stale, RST, 40), State::Udp);
        assert_eq!(t.lookup(&o2, 40).map(|h| h.state), Some(State::TcpEstablished));
    }

    #[test]
    fn a_sweep_racing_a_refresh_keeps_the_session() {
        let t = NatTable::new(NatTableConfig { capacity: 8, workers: 1, timeouts: short() });
        let o = orig(1, UDPP);
        let h = t.create(0, &o, &snat(&o, PUB, 1), State::Udp, 0).expect("create");
        // The sweeper (clock 21) read the session expired; meanwhile a
        // worker whose clock lags (20) refreshed it.
        let stale = Ctl(h.ctl);
        assert!(!t.live(stale, 21));
        t.touch(&h, 0, 20);
        assert!(!t.free_record(h.id as usize, stale, Some(21)));
        assert_eq!(t.lookup(&o, 21).map(|x| x.id), Some(h.id));
        // Its own record a creator frees whatever the time.
        let seen = Ctl(t.records[h.id as usize].ctl.load(Ordering::Relaxed));
        assert!(t.free_record(h.id as usize, seen, None));
        assert_eq!(t.lookup(&o, 21), None);
        assert!(!t.free_record(h.id as usize, seen, None), "only once");
    }

    #[test]
    fn the_clock_may_wrap() {
        let t = NatTable::new(NatTableConfig { capacity: 64, workers: 1, timeouts: short() });
        let start = u32::MAX - 5;
        let o = orig(1, UDPP);
        let r = snat(&o, PUB, 1);
        assert!(t.create(0, &o, &r, State::Udp, start).is_ok());
        assert!(t.lookup(&o, start.wrapping_add(20)).is_some());
        assert!(t.lookup(&o, start.wrapping_add(21)).is_none());
        let h = t.lookup(&r, start.wrapping_add(10)).expect("hit");
        t.touch(&h, 0, start.wrapping_add(10));
        assert_eq!(t.len(start.wrapping_add(30)), 1);
        assert_eq!(t.len(start.wrapping_add(31)), 0);
        assert_eq!(t.sweep(0, start.wrapping_add(30), 64), 0);
        assert_eq!(t.sweep(0, start.wrapping_add(31), 64), 1);
    }

    #[test]
    fn sweep_frees_expired_sessions_and_records_are_reused() {
        let t = NatTable::new(NatTableConfig { capacity: 8, workers: 2, timeouts: short() });
        // Worker 0 owns records 0..4, worker 1 owns 4..8.
        let mut ids = Vec::new();
        for i in 0..4 {
            let o = orig(i, UDPP);
            ids.push(t.create(0, &o, &snat(&o, PUB, i as u16), State::Udp, 0).expect("create").id);
        }
        assert_eq!(ids, [0, 1, 2, 3]);
        let o = orig(4, UDPP);
        let r = snat(&o, PUB, 4);
        assert_eq!(t.create(0, &o, &r, State::Udp, 1), Err(CreateError::Full));
        assert_eq!(t.create(9, &o, &r, State::Udp, 1), Err(CreateError::Full), "no such worker");
        assert_eq!(t.create(1, &o, &r, State::Udp, 1).map(|h| h.id), Ok(4));
        let st = t.stats(1);
        assert_eq!((st.capacity, st.live, st.per_worker_live.clone()), (8, 5, vec![4, 1]));
        assert_eq!(st.by_state[State::Udp.index()], (State::Udp, 5));
        assert_eq!(infos(&t, 1).iter().map(|s| s.owner).collect::<Vec<_>>(), [0, 0, 0, 0, 1]);
        // Keep session 2 alive; the others expire.
        let h2 = t.lookup(&orig(2, UDPP), 15).expect("hit");
        t.touch(&h2, 0, 15);
        assert_eq!(t.sweep(0, 20, 100), 0, "none expired yet");
        assert_eq!(t.sweep(0, 21, 2), 2, "bounded by max");
        assert_eq!(t.sweep(0, 21, 100), 1);
        assert_eq!(t.sweep(0, 21, 100), 0);
        assert_eq!(t.sweep(1, 21, 100), 0, "created a second later");
        assert_eq!(t.sweep(1, 22, 100), 1);
        assert_eq!(t.len(22), 1);
        // The index entries went with them.
        let entries: usize =
            t.buckets.iter().map(|b| b.0.iter().filter(|e| e.load(Ordering::Relaxed) != 0).count()).sum();
        assert_eq!(entries, 2);
        // Three records free again for worker 0, then it is full.
        let mut again = Vec::new();
        for i in 10..13 {
            let o = orig(i, UDPP);
            again.push(t.create(0, &o, &snat(&o, PUB, i as u16), State::Udp, 22).expect("create").id);
        }
        again.sort_unstable();
        assert_eq!(again, [0, 1, 3]);
        let o = orig(20, UDPP);
        assert_eq!(t.create(0, &o, &snat(&o, PUB, 20), State::Udp, 22), Err(CreateError::Full));
        // A create with an empty free stack sweeps by itself.
        assert!(t.create(0, &o, &snat(&o, PUB, 20), State::Udp, 22 + 21).is_ok());
        assert_eq!(t.len(22 + 21), 1);
    }

    #[test]
    fn a_full_partition_sweeps_at_most_once_a_second_on_create() {
        let t = NatTable::new(NatTableConfig { capacity: 4, workers: 1, timeouts: Timeouts::default() });
        let ids: Vec<u32> = (0..4)
            .map(|i| {
                let o = orig(i, UDPP);
                t.create(0, &o, &snat(&o, PUB, i as u16), State::Udp, 5).expect("create").id
            })
            .collect();
        let o = orig(9, UDPP);
        let r = snat(&o, PUB, 9);
        assert_eq!(t.create(0, &o, &r, State::Udp, 5), Err(CreateError::Full), "all live: the sweep frees none");
        // A session removed in the same second: no second sweep this
        // second, so the record comes back only at the next one.
        assert!(t.remove(ids[1]));
        assert_eq!(t.create(0, &o, &r, State::Udp, 5), Err(CreateError::Full));
        assert_eq!(t.create(0, &o, &r, State::Udp, 6).map(|h| h.id), Ok(ids[1]));
    }

    #[test]
    fn reply_in_use_is_refused() {
        let t = NatTable::new(NatTableConfig { capacity: 64, workers: 1, timeouts: short() });
        let (o1, o2) = (orig(1, UDPP), orig(2, UDPP));
        let r = snat(&o1, PUB, 5000);
        assert!(!t.reply_in_use(&r, 0));
        let h1 = t.create(0, &o1, &r, State::Udp, 0).expect("create");
        assert!(t.reply_in_use(&r, 0));
        assert!(!t.reply_in_use(&o1, 0), "an orig tuple is not a reply");
        assert_eq!(t.create(0, &o2, &r, State::Udp, 1), Err(CreateError::ReplyInUse));
        assert_eq!(t.len(1), 1);
        // Once the first expires the reply is free; the old session is
        // retired, so a lagging clock cannot bring it back.
        assert!(!t.reply_in_use(&r, 21));
        let h2 = t.create(0, &o2, &r, State::Udp, 21).expect("create");
        assert_ne!(h2.id, h1.id);
        assert_eq!(t.lookup(&o1, 20), None);
        assert_eq!(t.lookup(&r, 20).map(|h| h.to), Some(o2.reverse()));
    }

    #[test]
    fn tcp_state_machine() {
        let t = table(64, 1);
        let o = orig(1, TCP);
        let r = snat(&o, PUB, 7);
        let syn = t.create(0, &o, &r, State::TcpTransitory, 0).expect("create");
        assert_eq!(t.touch(&syn, SYN, 0), State::TcpTransitory);
        let rep = |now| t.lookup(&r, now).expect("reply");
        let fwd = |now| t.lookup(&o, now).expect("forward");
        assert_eq!(t.touch(&rep(1), SYN | ACK, 1), State::TcpTransitory);
        assert_eq!(t.touch(&fwd(1), ACK, 1), State::TcpEstablished);
        assert_eq!(fwd(1).state, State::TcpEstablished);
        assert_eq!(t.touch(&rep(2), ACK, 2), State::TcpEstablished);
        // FIN from either side closes.
        assert_eq!(t.touch(&rep(3), FIN | ACK, 3), State::TcpClosing);
        assert_eq!(t.touch(&fwd(3), ACK, 3), State::TcpClosing);
        // A SYN from the reply side does not reopen; one with ACK neither.
        assert_eq!(t.touch(&rep(4), SYN, 4), State::TcpClosing);
        assert_eq!(t.touch(&fwd(4), SYN | ACK, 4), State::TcpClosing);
        // A forward SYN does (port reuse), with the ACK bits reset.
        assert_eq!(t.touch(&fwd(5), SYN, 5), State::TcpTransitory);
        assert_eq!(t.touch(&fwd(5), ACK, 5), State::TcpTransitory);
        assert_eq!(t.touch(&rep(6), SYN | ACK, 6), State::TcpEstablished);
        // RST from either side.
        assert_eq!(t.touch(&fwd(7), RST, 7), State::TcpClosing);
        assert_eq!(t.touch(&fwd(8), SYN, 8), State::TcpTransitory);
        assert_eq!(t.touch(&rep(9), RST | ACK, 9), State::TcpClosing);
        // Closing lives for the transitory timeout.
        assert!(t.lookup(&o, 9 + 240).is_some());
        assert!(t.lookup(&o, 9 + 241).is_none());
        // Non-TCP states ignore flags.
        let u = orig(2, UDPP);
        let h = t.create(0, &u, &snat(&u, PUB, 8), State::Udp, 0).expect("create");
        assert_eq!(t.touch(&h, RST | FIN, 1), State::Udp);
        let m = t.create(0, &orig(3, TCP), &snat(&orig(3, TCP), PUB, 9), State::Mapping, 0).expect("create");
        assert_eq!(t.touch(&m, RST, 1), State::Mapping);
        // The state byte's transitions directly.
        let cases: [(u8, Dir, u8, u8); 8] = [
            (TCP_TRANSITORY, Dir::Forward, ACK, TCP_TRANSITORY | ACK_FWD),
            (TCP_TRANSITORY | ACK_FWD, Dir::Reply, SYN | ACK, TCP_ESTABLISHED | ACK_FWD | ACK_REP),
            (TCP_TRANSITORY | ACK_REP, Dir::Reply, ACK, TCP_TRANSITORY | ACK_REP),
            (TCP_TRANSITORY, Dir::Forward, SYN, TCP_TRANSITORY),
            (TCP_ESTABLISHED | ACK_FWD | ACK_REP, Dir::Forward, FIN, TCP_CLOSING | ACK_FWD | ACK_REP),
            (TCP_TRANSITORY, Dir::Reply, RST, TCP_CLOSING),
            (TCP_CLOSING | ACK_FWD | ACK_REP, Dir::Forward, SYN, TCP_TRANSITORY),
            (UDP, Dir::Reply, ACK | FIN, UDP),
        ];
        for (from, dir, flags, to) in cases {
            assert_eq!(next_state(from, dir, flags), to, "{from:#x} {dir:?} {flags:#x}");
        }
    }

    #[test]
    fn clear_and_remove() {
        let t = NatTable::new(NatTableConfig { capacity: 16, workers: 1, timeouts: short() });
        let os: Vec<Tuple> = (0..3).map(|i| orig(i, UDPP)).collect();
        let hs: Vec<Hit> = os
            .iter()
            .enumerate()
            .map(|(i, o)| t.create(0, o, &snat(o, PUB, i as u16), State::Udp, 0).expect("create"))
            .collect();
        assert!(t.remove(hs[1].id));
        assert!(!t.remove(hs[1].id));
        assert!(!t.remove(15), "a free record");
        assert!(!t.remove(1000), "no such record");
        assert_eq!(t.lookup(&os[1], 0), None);
        assert_eq!(t.lookup(&snat(&os[1], PUB, 1), 0), None);
        assert_eq!(t.touch(&hs[1], 0, 5), State::Udp, "does nothing");
        assert_eq!(t.len(0), 2);
        assert_eq!(t.clear(), 2);
        assert_eq!(t.clear(), 0);
        assert!(t.is_empty(0));
        assert!(infos(&t, 0).is_empty());
        assert!(!t.reply_in_use(&snat(&os[0], PUB, 0), 0));
        // Not yet swept: the same orig can be created again at once.
        let h = t.create(0, &os[0], &snat(&os[0], PUB, 0), State::Udp, 1).expect("create");
        assert_ne!(h.id, hs[0].id);
        assert_eq!(t.sweep(0, 1, 16), 3);
        assert_eq!(t.len(1), 1);
        assert_eq!(t.lookup(&os[0], 1).map(|x| x.id), Some(h.id));
    }

    #[test]
    fn for_each_reports_live_sessions() {
        let t = NatTable::new(NatTableConfig { capacity: 16, workers: 2, timeouts: short() });
        let o = orig(1, TCP);
        let r = snat(&o, PUB, 1);
        let h = t.create(1, &o, &r, State::TcpEstablished, 10).expect("create");
        let u = orig(2, UDPP);
        t.create(0, &u, &snat(&u, PUB, 2), State::Udp, 10).expect("create");
        let v = infos(&t, 31);
        assert_eq!(
            v,
            [SessionInfo { id: h.id, orig: o, reply: r, state: State::TcpEstablished, idle_secs: 21, owner: 1 }]
        );
        assert_eq!(infos(&t, 5)[0].idle_secs, 0, "stamped ahead of now");
        let st = t.stats(10);
        assert_eq!(st.live, 2);
        assert_eq!(st.by_state.iter().map(|(s, _)| *s).collect::<Vec<_>>(), State::ALL);
        assert_eq!(st.by_state.iter().map(|(_, n)| *n).sum::<usize>(), 2);
        assert_eq!(
            State::ALL.map(State::name),
            ["tcp_transitory", "tcp_established", "tcp_closing", "udp", "icmp", "fragment", "mapping"]
        );
    }

    #[test]
    fn a_full_table_never_runs_out_of_index() {
        const N: u32 = 1 << 16;
        let t = table(N as usize, 1);
        for i in 0..N {
            let o = orig(i, UDPP);
            let r = snat(&o, PUB + (i >> 16), i as u16);
            let h = t.create(0, &o, &r, State::Udp, 0);
            assert!(h.is_ok(), "{i}: {h:?}");
        }
        let o = orig(N, UDPP);
        assert_eq!(t.create(0, &o, &snat(&o, PUB + 1, 0), State::Udp, 0), Err(CreateError::Full));
        assert_eq!(t.len(0), N as usize);
        let mut keys = Vec::with_capacity(2 * BATCH);
        let mut out = vec![None; 2 * BATCH];
        let mut found = 0;
        for i in 0..N {
            let o = orig(i, UDPP);
            keys.extend([o, snat(&o, PUB + (i >> 16), i as u16)]);
            if keys.len() == 2 * BATCH {
                t.lookup_batch(&keys, 1, &mut out);
                for (k, h) in keys.chunks(2).zip(out.chunks(2)) {
                    let (f, b) = (h[0].expect("forward"), h[1].expect("reply"));
                    assert_eq!((f.dir, f.to, b.dir, b.to), (Dir::Forward, k[1].reverse(), Dir::Reply, k[0].reverse()));
                    found += 2;
                }
                keys.clear();
            }
        }
        assert_eq!(found, 2 * N as usize);
    }

    /// A reply tuple for `o` on `public` whose buckets are not `o`'s (so
    /// that its entry does not move `o`'s).
    fn away(t: &NatTable, o: &Tuple, public: u32) -> Tuple {
        let ob = t.hashed(o.words()).buckets;
        (100..)
            .map(|port| snat(o, public, port))
            .find(|r| t.hashed(r.words()).buckets.iter().all(|b| !ob.contains(b)))
            .expect("a port")
    }

    #[test]
    fn racing_creators_of_one_orig_settle_on_the_earlier_entry() {
        let t = table(64, 2);
        let o = orig(1, UDPP);
        let (r0, r1) = (away(&t, &o, PUB), away(&t, &o, PUB + 1));
        // Both passed the check for an existing session; the first has
        // its entry in the primary bucket, the second then in the
        // secondary: the second gives up.
        let a = t.create_new(0, &o, &r0, State::Udp, 0, None).expect("a");
        let b = t.create_new(1, &o, &r1, State::Udp, 0, None).expect("b");
        assert_eq!((b.id, b.to), (a.id, r0.reverse()));
        assert_eq!(t.len(0), 1);
        assert!(!t.reply_in_use(&r1, 0));
        assert_eq!(orig_reachable(&t, &o, 0), 1);
        assert_eq!(t.stats(0).per_worker_live, [1, 0]);

        // Now the first lands in the secondary bucket (the primary holds
        // more entries), the second in the primary: the second wins and
        // removes the first's entry; the first stays reachable by its
        // reply only.
        let t = table(64, 2);
        let (r0, r1) = (away(&t, &o, PUB), away(&t, &o, PUB + 1));
        let h = t.hashed(o.words());
        let dummy = |idx| entry(h.tag ^ 1, idx, Dir::Forward);
        t.buckets[h.buckets[0]].0[0].store(dummy(60), Ordering::Relaxed);
        t.buckets[h.buckets[0]].0[1].store(dummy(61), Ordering::Relaxed);
        t.buckets[h.buckets[1]].0[0].store(dummy(62), Ordering::Relaxed);
        let a = t.create_new(0, &o, &r0, State::Udp, 0, None).expect("a");
        assert_eq!(t.slot(&h, 9).load(Ordering::Relaxed), entry(h.tag, a.id as usize, Dir::Forward));
        let b = t.create_new(1, &o, &r1, State::Udp, 0, None).expect("b");
        assert_ne!(b.id, a.id);
        assert_eq!(t.slot(&h, 2).load(Ordering::Relaxed), entry(h.tag, b.id as usize, Dir::Forward));
        assert_eq!(t.slot(&h, 9).load(Ordering::Relaxed), 0);
        assert_eq!(t.lookup(&o, 0).map(|x| (x.id, x.to)), Some((b.id, r1.reverse())));
        assert_eq!(t.lookup(&r0, 0).map(|x| (x.id, x.to)), Some((a.id, o.reverse())));
        assert_eq!(orig_reachable(&t, &o, 0), 1);
        // The orphan expires and is swept like any other session.
        assert_eq!(t.sweep(0, 301, 32), 1);
        assert_eq!(t.lookup(&r0, 301), None);
    }

    #[test]
    fn a_stale_expired_copy_is_retired_not_duplicated() {
        let t = NatTable::new(NatTableConfig { capacity: 16, workers: 2, timeouts: short() });
        let o = orig(1, UDPP);
        let (r0, r1) = (snat(&o, PUB, 1), snat(&o, PUB + 1, 1));
        let a = t.create(0, &o, &r0, State::Udp, 0).expect("a");
        // Expired at worker 1's clock: it creates anew and retires the copy.
        let b = t.create(1, &o, &r1, State::Udp, 21).expect("b");
        assert_ne!(a.id, b.id);
        // Worker 0's clock lags: it sees neither a revived copy nor two.
        assert_eq!(t.lookup(&o, 20).map(|x| x.id), Some(b.id));
        assert_eq!(t.touch(&a, 0, 20), State::Udp);
        assert_eq!(t.len(20), 1);
        assert_eq!(orig_reachable(&t, &o, 20), 1);
    }

    /// Worker `w`'s reply tuple for orig `i` of the race test.
    fn race_reply(w: usize, o: &Tuple, i: u32) -> Tuple {
        snat(o, PUB + w as u32, i as u16)
    }

    #[test]
    fn concurrent_creators_leave_one_session_per_orig() {
        const N: u32 = 20_000;
        const NOW: u32 = 50;
        let t = table(1 << 16, 2);
        let origs: Vec<Tuple> = (0..N).map(|i| orig(i, UDPP)).collect();
        let go = AtomicBool::new(false);
        let returned_other = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2usize)
                .map(|w| {
                    let (t, origs, go) = (&t, &origs, &go);
                    s.spawn(move || {
                        while !go.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                        let mut other = 0;
                        for n in 0..N {
                            let i = (n + 3 * w as u32) % N;
                            let o = &origs[i as usize];
                            let ok = [race_reply(0, o, i).reverse(), race_reply(1, o, i).reverse()];
                            let h = t.create(w, o, &race_reply(w, o, i), State::Udp, NOW).expect("create");
                            assert!(h.dir == Dir::Forward && ok.contains(&h.to), "{h:?}");
                            other += usize::from(h.to != ok[w]);
                            // Lookups of both directions around the racing spot.
                            let j = (i + 2) % N;
                            let oj = &origs[j as usize];
                            if let Some(h) = t.lookup(oj, NOW) {
                                let ok = [race_reply(0, oj, j).reverse(), race_reply(1, oj, j).reverse()];
                                assert!(h.dir == Dir::Forward && ok.contains(&h.to), "{h:?}");
                            }
                            if let Some(h) = t.lookup(&race_reply(1 - w, oj, j), NOW) {
                                assert!(h.dir == Dir::Reply && h.to == oj.reverse(), "{h:?}");
                            }
                        }
                        other
                    })
                })
                .collect();
            go.store(true, Ordering::Release);
            hs.into_iter().map(|h| h.join().expect("worker")).sum::<usize>()
        });
        // Most creates found the other worker's session.
        assert!(returned_other > 0);
        for (i, o) in origs.iter().enumerate() {
            assert_eq!(orig_reachable(&t, o, NOW), 1, "{i}");
            let h = t.lookup(o, NOW).expect("forward");
            let ok = [race_reply(0, o, i as u32).reverse(), race_reply(1, o, i as u32).reverse()];
            assert!(ok.contains(&h.to));
        }
        // Every live session is a creator's, found by its reply.
        let live = infos(&t, NOW);
        assert!(live.len() >= N as usize && live.len() <= 2 * N as usize);
        for s in &live {
            assert_eq!(s.reply, race_reply(s.owner, &s.orig, s.reply.dport as u32));
            assert_eq!(t.lookup(&s.reply, NOW).map(|h| h.to), Some(s.orig.reverse()));
        }
    }

    #[test]
    fn readers_never_see_a_wrong_translation_while_records_are_reused() {
        const UNIVERSE: u32 = 4096;
        const STEPS: u32 = 60_000;
        let t = NatTable::new(NatTableConfig { capacity: 1024, workers: 1, timeouts: Timeouts { udp: 2, ..short() } });
        let reply_of = |i: u32| snat(&orig(i, UDPP), PUB, i as u16);
        let clock = AtomicU32::new(0);
        let done = AtomicBool::new(false);
        let (hits, created) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut hits = 0usize;
                let mut x = 12345u32;
                let mut keys = [Tuple::default(); 32];
                let mut out = [None; 32];
                while !done.load(Ordering::Acquire) {
                    let now = clock.load(Ordering::Relaxed);
                    for k in keys.iter_mut() {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let i = x % UNIVERSE;
                        *k = if x & 1 << 20 == 0 { orig(i, UDPP) } else { reply_of(i) };
                    }
                    t.lookup_batch(&keys, now, &mut out);
                    for (k, h) in keys.iter().zip(out) {
                        let Some(h) = h else { continue };
                        hits += 1;
                        let i = k.src.wrapping_sub(0x0a00_0000);
                        if h.dir == Dir::Forward {
                            assert!(i < UNIVERSE && h.to == reply_of(i).reverse(), "{k:?} {h:?}");
                        } else {
                            let i = k.dport as u32;
                            assert!(h.to == orig(i, UDPP).reverse(), "{k:?} {h:?}");
                        }
                        t.touch(&h, 0, now);
                    }
                }
                hits
            });
            let mut created = 0;
            let mut x = 777u32;
            for step in 0..STEPS {
                let now = step / 200;
                clock.store(now, Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x % UNIVERSE;
                match t.create(0, &orig(i, UDPP), &reply_of(i), State::Udp, now) {
                    Ok(h) => {
                        assert_eq!(h.to, reply_of(i).reverse());
                        created += 1;
                    }
                    Err(e) => assert_eq!(e, CreateError::Full),
                }
                t.sweep(0, now, 8);
            }
            done.store(true, Ordering::Release);
            (reader.join().expect("reader"), created)
        });
        assert!(created > STEPS as usize / 2, "{created}");
        assert!(hits > 0);
    }

    /// The model's TCP rules (written out independently of `next_state`).
    fn model_tcp(state: State, acks: (bool, bool), dir: Dir, flags: u8) -> (State, (bool, bool)) {
        let tcp = matches!(state, State::TcpTransitory | State::TcpEstablished | State::TcpClosing);
        if !tcp {
            return (state, acks);
        }
        if flags & RST != 0 {
            return (State::TcpClosing, acks);
        }
        if state == State::TcpClosing {
            let reopen = dir == Dir::Forward && flags & SYN != 0 && flags & ACK == 0;
            return if reopen { (State::TcpTransitory, (false, false)) } else { (state, acks) };
        }
        if flags & FIN != 0 {
            return (State::TcpClosing, acks);
        }
        let mut acks = acks;
        if flags & ACK != 0 {
            match dir {
                Dir::Forward => acks.0 = true,
                Dir::Reply => acks.1 = true,
            }
        }
        if state == State::TcpTransitory && acks == (true, true) {
            (State::TcpEstablished, acks)
        } else {
            (state, acks)
        }
    }

    #[derive(Clone, Copy, Debug)]
    struct ModelSession {
        id: u32,
        orig: Tuple,
        reply: Tuple,
        state: State,
        acks: (bool, bool),
        last: u32,
    }

    fn model_timeout(s: &ModelSession) -> u32 {
        let t = short();
        match s.state {
            State::TcpTransitory | State::TcpClosing => t.tcp_transitory,
            State::TcpEstablished => t.tcp_established,
            State::Udp => t.udp,
            State::Icmp => t.icmp,
            State::Fragment => t.fragment,
            State::Mapping if s.orig.proto == TCP => t.mapping_tcp,
            State::Mapping => t.mapping_udp,
        }
    }

    fn model_live(s: &ModelSession, now: u32) -> bool {
        age(now, s.last) <= model_timeout(s) as i64
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create { worker: usize, orig: usize, reply: usize, state: usize },
        Lookup { key: usize },
        Touch { key: usize, flags: u8 },
        Sweep { worker: usize, max: usize },
        Advance { secs: u32 },
        Remove { key: usize },
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2usize, 0..8usize, 0..8usize, 0..7usize)
                .prop_map(|(worker, orig, reply, state)| Op::Create { worker, orig, reply, state }),
            3 => (0..24usize).prop_map(|key| Op::Lookup { key }),
            4 => (0..16usize, prop::sample::select(vec![0u8, SYN, SYN | ACK, ACK, FIN | ACK, RST, RST | ACK]))
                .prop_map(|(key, flags)| Op::Touch { key, flags }),
            2 => (0..2usize, 0..10usize).prop_map(|(worker, max)| Op::Sweep { worker, max }),
            3 => prop::sample::select(vec![0u32, 1, 1, 2, 3, 5, 9, 13, 41]).prop_map(|secs| Op::Advance { secs }),
            1 => (0..16usize).prop_map(|key| Op::Remove { key }),
            1 => Just(Op::Clear),
        ]
    }

    /// Eight origs (TCP, UDP, ICMP), eight replies, and eight tuples that
    /// are neither (the origs reversed).
    fn pool() -> Vec<Tuple> {
        let protos = [TCP, UDPP, ICMPP, TCP, UDPP, TCP, ICMPP, UDPP];
        let origs: Vec<Tuple> = (0..8u32).map(|i| orig(i, protos[i as usize])).collect();
        let replies: Vec<Tuple> =
            (0..8u32).map(|i| tuple(0x0808_0808, 443, PUB, 100 + i as u16, protos[i as usize])).collect();
        let others: Vec<Tuple> = origs.iter().map(Tuple::reverse).collect();
        [origs, replies, others].concat()
    }

    fn run_model(start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
        const PER: usize = 4;
        let t = NatTable::new(NatTableConfig { capacity: 2 * PER, workers: 2, timeouts: short() });
        let pool = pool();
        let mut now = start;
        let mut model: Vec<ModelSession> = Vec::new();
        // The second at which a worker's create found its partition full
        // of live sessions: until the next second its creates do not sweep
        // (so records cleared or expired meanwhile come back only then).
        let mut dry: [Option<u32>; 2] = [None; 2];
        for op in ops {
            model.retain(|s| model_live(s, now));
            let find = |model: &Vec<ModelSession>, k: &Tuple| -> Option<(usize, Dir)> {
                model
                    .iter()
                    .position(|s| s.orig == *k)
                    .map(|i| (i, Dir::Forward))
                    .or_else(|| model.iter().position(|s| s.reply == *k).map(|i| (i, Dir::Reply)))
            };
            match *op {
                Op::Create { worker, orig, reply, state } => {
                    let (o, r, st) = (pool[orig], pool[8 + reply], State::ALL[state]);
                    let got = t.create(worker, &o, &r, st, now);
                    if let Some(s) = model.iter().find(|s| s.orig == o) {
                        let h = got.expect("existing");
                        prop_assert_eq!((h.id, h.dir, h.to, h.state), (s.id, Dir::Forward, s.reply.reverse(), s.state));
                    } else if model.iter().any(|s| s.reply == r) {
                        prop_assert_eq!(got, Err(CreateError::ReplyInUse));
                    } else if model.iter().filter(|s| s.id as usize / PER == worker).count() == PER {
                        prop_assert_eq!(got, Err(CreateError::Full));
                        dry[worker] = Some(now);
                    } else if got == Err(CreateError::Full) && dry[worker] == Some(now) {
                        // Room only in records a sweep would free: not
                        // swept again within the second.
                    } else if got == Err(CreateError::IndexFull) {
                        // Only when the buckets of one of the tuples are full
                        // (but for the failed create's reply entry, removed).
                        let full = |k: &Tuple| {
                            let h = t.hashed(k.words());
                            (0..PROBE).filter(|&pos| t.slot(&h, pos).load(Ordering::Relaxed) == 0).count() <= 1
                        };
                        prop_assert!(full(&o) || full(&r));
                    } else {
                        let h = got.expect("created");
                        prop_assert_eq!((h.dir, h.to, h.state), (Dir::Forward, r.reverse(), st));
                        prop_assert_eq!(h.id as usize / PER, worker);
                        prop_assert!(model.iter().all(|s| s.id != h.id));
                        model.push(ModelSession {
                            id: h.id,
                            orig: o,
                            reply: r,
                            state: st,
                            acks: (false, false),
                            last: now,
                        });
                    }
                }
                Op::Lookup { key } => {
                    let k = pool[key];
                    let got = t.lookup(&k, now);
                    let mut batch = [None];
                    t.lookup_batch(&[k], now, &mut batch);
                    prop_assert_eq!(batch[0], got);
                    match find(&model, &k) {
                        None => prop_assert_eq!(got, None),
                        Some((i, dir)) => {
                            let s = &model[i];
                            let to = if dir == Dir::Forward { s.reply.reverse() } else { s.orig.reverse() };
                            let h = got.expect("hit");
                            prop_assert_eq!((h.id, h.dir, h.to, h.state), (s.id, dir, to, s.state));
                        }
                    }
                }
                Op::Touch { key, flags } => {
                    let k = pool[key];
                    let got = t.lookup(&k, now);
                    prop_assert_eq!(got.is_some(), find(&model, &k).is_some());
                    if let (Some(h), Some((i, dir))) = (got, find(&model, &k)) {
                        let s = &mut model[i];
                        let (state, acks) = model_tcp(s.state, s.acks, dir, flags);
                        prop_assert_eq!(t.touch(&h, flags, now), state);
                        s.state = state;
                        s.acks = acks;
                        if age(now, s.last) > 0 {
                            s.last = now;
                        }
                    }
                }
                Op::Sweep { worker, max } => {
                    prop_assert!(t.sweep(worker, now, max) <= max);
                }
                Op::Advance { secs } => now = now.wrapping_add(secs),
                Op::Remove { key } => {
                    if let Some(h) = t.lookup(&pool[key], now) {
                        prop_assert!(t.remove(h.id));
                        model.retain(|s| s.id != h.id);
                    }
                }
                Op::Clear => {
                    prop_assert!(t.clear() >= model.len());
                    model.clear();
                }
            }
            model.retain(|s| model_live(s, now));
            prop_assert_eq!(t.len(now), model.len());
            let mut seen: Vec<(u32, Tuple, Tuple, State)> =
                infos(&t, now).iter().map(|s| (s.id, s.orig, s.reply, s.state)).collect();
            let mut want: Vec<(u32, Tuple, Tuple, State)> =
                model.iter().map(|s| (s.id, s.orig, s.reply, s.state)).collect();
            seen.sort_by_key(|x| x.0);
            want.sort_by_key(|x| x.0);
            prop_assert_eq!(seen, want);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn matches_a_simple_model(start in prop::sample::select(vec![0u32, 1_000_000, u32::MAX - 60]),
                                  ops in prop::collection::vec(op(), 1..120)) {
            run_model(start, &ops)?;
        }
    }
}
