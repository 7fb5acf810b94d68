//! The IPv6 FIB: a 24-bit first stage, then 8-bit strides (the shape of
//! DPDK's `rte_fib6` "trie"), fronted by a 2^16-entry summary, with a
//! batch lookup that walks 64 addresses level by level with AVX2 gathers.
//!
//! # Why this structure
//!
//! Real IPv6 tables are almost all /32../48 (the 2014 LINX table: 30% /32,
//! 43% /48, nothing longer than /48). With a 24-bit first stage and 8-bit
//! strides a /32 takes two loads and a /48 four, and every step of every
//! level is the same few instructions, so 8 addresses go through a level
//! with one `vpgatherdd`. Candidates measured on that table (prototypes,
//! this machine, TSC cycles per lookup over 1 Mi addresses inside the
//! table's prefixes, batch calls of 8192, best of repeated runs on a busy
//! 2-core VM): 24-8 strides with the AVX2 lock-step batch 14-17; the same
//! table with a scalar compacting batch 30-37, single lookups 47-50; a
//! 16-bit first stage + 8-bit strides 37-58 scalar batch (one more level
//! for every prefix, and the /48 chains are longer); Poptrie (16-, 18- or
//! 20-bit direct stage, 6-bit strides, popcount; hardware popcnt) 49-67
//! batched, 55-80 single. Poptrie is 40 times smaller (0.9 MB against
//! 76 MB) and its hot part fits L2, but a /48 takes five or six dependent
//! node steps of ~15 instructions each; here instruction count and level
//! count cost more than the footprint. `rte_fib6` on the same routes and
//! addresses: 38-45 (67-90 with 10% random addresses); figures with the
//! final code in `tests/src/bin/fib6_bench.rs`.
//!
//! Random destinations (scans, or the 10% of the benchmark's lookup set
//! drawn from the whole address space) each read a random tbl24 line: a
//! DRAM miss that also evicts the table's hot lines. The **top16** summary
//! stops them early: 2^16 entries (256 KiB, the part for 2000::/3 only
//! 32 KiB), one per /16, holding the /16's next hop when no route longer
//! than /16 lies inside it, else a link to tbl24. Measured: with 10%
//! random addresses the batch went from ~38 to ~23 cycles per lookup
//! (best pass), at no measurable cost without them.
//!
//! # Layout
//!
//! - **top16**: 2^16 entries indexed by address bits 0..16: a next hop, or
//!   "look in tbl24" (256 KiB).
//! - **tbl24**: 2^24 entries indexed by address bits 0..24 (64 MiB).
//! - **groups** ("tbl8"): a pool of groups of 256 entries. An entry whose
//!   prefix holds a longer route links a group indexed by the next address
//!   byte: level 1 by bits 24..32, level 2 by bits 32..40, ... level 13 by
//!   bits 120..128 (1 KiB per group).
//!
//! They live in two [`MemRegion`]s (top16 right after tbl24): pre-faulted,
//! on 2 MiB hugepages when the system has them (tbl24 alone is 64 MiB:
//! hugepages keep the TLB from missing on every lookup).
//!
//! # Entries
//!
//! Every entry is an [`AtomicU32`]:
//!
//! ```text
//!  31    30       29 .............. 0
//! EXT   VALID    value (30 bits)
//! ```
//!
//! - `EXT`: the value is a group index (the next level); in top16, "look
//!   in tbl24" (value unused).
//! - `VALID`: a route; the value is its next-hop index.
//! - `0`: no route.
//!
//! `EXT` is the sign bit so that a vector of entries is directly the mask
//! of the lanes that go on to the next level (`vpgatherdd` and
//! `vmovmskps` read sign bits). Next hops are below 2^30: [`MAX_NEXT_HOP`]
//! is `2^30 - 2`, because `2^30 - 1` ([`POISON_NEXT_HOP`]) is written into
//! every entry of a reclaimed group, so a reader that ever read freed
//! memory would return it and tests can tell.
//!
//! # Lookups
//!
//! [`Fib6Reader::lookup`] walks one address (one Acquire load per level).
//! [`Fib6Reader::lookup_bulk`] takes the addresses 64 at a time (8 AVX2
//! vectors of 8): it gathers the 64 top16 entries, then, level by level
//! (tbl24, then the groups), gathers the next entry of every lane that is
//! still on a link — masked gathers, which touch no memory for the lanes
//! already done — so the cache misses of 64 lookups overlap. The only
//! branch per level is "does any lane go on" (skipping vectors whose lanes
//! are all done measured slower: those branches mispredict and flush the
//! gathers in flight). The vector walk covers address bits 0..64
//! (tbl24 and levels 1..5, i.e. every prefix up to /64); the rare lane
//! under a longer prefix finishes with the scalar walk. Without AVX2 (chosen
//! once, in [`Fib6::new`]) the batch is scalar: the same level-by-level
//! walk over a compacted list of the lanes still descending, with
//! prefetches.
//!
//! # Updates while workers read
//!
//! [`Fib6`] is the single writer. It keeps the routes (one hash map per
//! prefix length) and, per entry, the length of the route that wrote it (a
//! shadow array, like the `depth` field of `rte_lpm` entries, off the
//! lookup path). An insert overwrites exactly the entries of its range
//! whose route is not longer (descending into the groups linked from that
//! range); a delete hands exactly the entries its route wrote to the
//! longest shorter route covering the prefix (or to "no route").
//!
//! Every entry change is one atomic store, so a lookup running concurrently
//! sees, for its address, either the next hop before the update or the one
//! after it — never a mix. When a route needs groups that do not exist
//! yet, the writer takes them all from the pool first (the only fallible
//! step: on failure nothing has changed), fills the whole new chain —
//! copies of the entry it replaces, links between the new groups, the
//! route's own entries — and only then links its top with one Release
//! store. Each group counts the routes that end in it plus the groups it
//! links; when a delete brings that to zero, every entry of the group holds
//! the same covering route, which is stored in the parent entry, and only
//! after that the group goes on a *pending* list (a lookup that loaded the
//! old parent entry may still be about to read it). The count then drops in
//! the parent group, which may collapse in turn.
//!
//! top16 follows tbl24: each /16 counts the routes longer than /16 inside
//! it; the first one stores the link to tbl24 (Release) after the route is
//! in tbl24 and the groups, and when the last one goes, once tbl24 is
//! updated, the /16's then uniform tbl24 value is stored back. A route of
//! /16 or shorter updates tbl24 (and the groups below) first, then the
//! top16 entries of the /16s in its range that hold no longer route.
//!
//! # Reclamation (RCU)
//!
//! Pending groups are reused only after [`Rcu::synchronize`]: every worker
//! has then passed a quiescent point (`RcuReader::quiescent`, once per poll
//! loop) since the unlink, so no lookup can still hold the old link. The
//! synchronize is batched: the writer reclaims all pending groups at once,
//! either when an insert needs groups that the free list does not have, or
//! when the control side calls [`Fib6::reclaim`] (e.g. after a batch of
//! updates). Reclaimed groups are poisoned before reuse.
//!
//! # Memory ordering
//!
//! Writes are Release stores. The scalar reader loads every entry with
//! Acquire: when an entry links a group, the Acquire pairs with the Release
//! store that linked it, so the reader sees the group's initial contents
//! (written before that store) or later values — never what the group held
//! before it was (re)used. On x86-64 an Acquire load is a plain `mov`.
//!
//! The AVX2 path reads entries with `vpgatherdd`, issued from inline
//! assembly: each element is a naturally aligned 4-byte load, which x86-64
//! performs single-copy atomically, and x86-64 (TSO) never lets a load pass
//! an earlier load — every load has Acquire semantics, so the gather of
//! level k+1 sees everything published before the link it read at level k.
//! That is the same guarantee, on the same instructions' memory accesses,
//! as the scalar path's Acquire loads; the assembly block is opaque to the
//! compiler, which must assume it reads any memory (so it is neither
//! merged, hoisted nor elided).

use super::{map_region, prefetch, FibError};
pub use super::{MAX_NEXT_HOP, NO_ROUTE, POISON_NEXT_HOP};
use crate::rcu::Rcu;
use ports::{HugepagePolicy, MemRegion, PageKind};
use std::fmt;

use std::net::{IpAddr, Ipv6Addr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The error type of [`Fib6`] updates: the FIBs' shared [`FibError`].
pub type Fib6Error = FibError;

/// The most groups a table can have (4 GiB of groups; keeps every
/// `group * 256 + byte` a positive `i32`, as the gather's index must be).
pub const MAX_TBL8_GROUPS: u32 = 1 << 22;

const EXT: u32 = 1 << 31;
const VALID: u32 = 1 << 30;
const VALUE: u32 = VALID - 1;
const POISON: u32 = VALID | POISON_NEXT_HOP;

const TBL24_ENTRIES: usize = 1 << 24;
const TOP16_ENTRIES: usize = 1 << 16;
const GROUP: usize = 256;
/// Group levels below tbl24: address bits 24..128, 8 at a time.
const LEVELS: usize = 13;
/// Addresses resolved together by `lookup_bulk`.
const CHUNK: usize = 64;

/// Shadow "depth" of an entry: prefix length + 1 of the route that wrote
/// it, 0 for no route.
type Depth = u8;

#[inline(always)]
fn leaf(nh: u32) -> u32 {
    VALID | nh
}

#[inline(always)]
fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Index into top16: address bits 0..16.
#[inline(always)]
fn top16(addr: u128) -> usize {
    (addr >> 112) as usize
}

/// Index into tbl24: address bits 0..24.
#[inline(always)]
fn top24(addr: u128) -> usize {
    (addr >> 104) as usize
}

/// Index into a group of level `k` (1..=13): address bits 16+8k..24+8k.
#[inline(always)]
fn byte_at(addr: u128, k: usize) -> usize {
    ((addr >> (104 - 8 * k)) & 0xff) as usize
}

/// The level of the group in which a route longer than /24 ends.
#[inline(always)]
fn final_level(len: u8) -> usize {
    (usize::from(len) - 24).div_ceil(8)
}

/// Turns a leaf entry into the bulk result: the next hop, or [`NO_ROUTE`].
#[inline(always)]
fn resolve(e: u32) -> u32 {
    if e & (EXT | VALID) == VALID {
        e & VALUE
    } else {
        NO_ROUTE
    }
}

/// How to build a [`Fib6`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fib6Config {
    /// Number of 256-entry groups (1 KiB each, mapped up front). Each /24
    /// that holds a longer route uses one, each /32 that holds a route
    /// longer than /32 another, and so on (the LINX table needs ~8,400).
    pub tbl8_groups: u32,
    /// Page size for tbl24 and the group pool.
    pub hugepages: HugepagePolicy,
}

impl Default for Fib6Config {
    fn default() -> Self {
        Fib6Config { tbl8_groups: 1 << 16, hugepages: HugepagePolicy::Prefer }
    }
}

/// The lookup tables, shared by the writer and every reader.
struct Tables {
    tbl24: MemRegion,
    tbl8: MemRegion,
    groups: u32,
}

impl Tables {
    fn tbl24(&self) -> &[AtomicU32] {
        // SAFETY: the region is at least 2^24 * 4 bytes (checked in
        // Fib6::new), page aligned, zero-initialised, lives as long as
        // `self`, and is only ever accessed through these atomics (or the
        // atomic-equivalent gathers described in the module doc).
        unsafe { std::slice::from_raw_parts(self.tbl24.base().as_ptr().cast::<AtomicU32>(), TBL24_ENTRIES) }
    }

    fn top16(&self) -> &[AtomicU32] {
        // SAFETY: the tbl24 region also holds the 2^16 top16 entries right
        // after tbl24's (checked in Fib6::new); as for tbl24 otherwise.
        unsafe {
            std::slice::from_raw_parts(self.tbl24.base().as_ptr().cast::<AtomicU32>().add(TBL24_ENTRIES), TOP16_ENTRIES)
        }
    }

    fn tbl8(&self) -> &[AtomicU32] {
        // SAFETY: as for tbl24, with `groups * 256` entries.
        unsafe {
            std::slice::from_raw_parts(self.tbl8.base().as_ptr().cast::<AtomicU32>(), self.groups as usize * GROUP)
        }
    }
}

type PrefixMap = super::PrefixMap<u128>;

/// Where an entry lives: tbl24, or entry `i` of group `g`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    T24(usize),
    G(u32, usize),
}

/// The IPv6 FIB, control side: the only writer of the tables.
pub struct Fib6 {
    mem: Arc<Tables>,
    rcu: Rcu,
    /// Routes by prefix length (0..=128): prefix -> next hop.
    routes: Vec<PrefixMap>,
    n_routes: usize,
    /// Depth of each plain tbl24 entry (meaningless while it links a group).
    depth24: Vec<Depth>,
    /// Per /16: routes longer than /16 inside it (top16 links tbl24 iff > 0).
    long16: Vec<u32>,
    /// Depth of each group entry, per group ever used.
    depth8: Vec<[Depth; GROUP]>,
    /// Per group: routes ending in it plus groups it links; collapses at 0.
    owned: Vec<u32>,
    /// Groups ready for reuse.
    free: Vec<u32>,
    /// Groups unlinked that readers may still be reading.
    pending: Vec<u32>,
    /// Groups `fresh..groups` have never been used.
    fresh: u32,
    in_use: u32,
    synchronizes: u64,
    reclaimed: u64,
    avx2: bool,
}

/// A worker's handle on the tables: lock-free, allocation-free lookups.
///
/// Each worker thread also holds an [`crate::rcu::RcuReader`] registered
/// with the same [`Rcu`] as the FIB and calls `quiescent()` once per poll
/// loop, outside any lookup; that is what lets the writer reuse memory.
#[derive(Clone)]
pub struct Fib6Reader {
    top16: NonNull<AtomicU32>,
    tbl24: NonNull<AtomicU32>,
    tbl8: NonNull<AtomicU32>,
    avx2: bool,
    _mem: Arc<Tables>,
}

// SAFETY: the pointers point into regions owned by `_mem` (kept alive by
// the Arc); every access through them is an atomic load (or a gather with
// the same guarantees, see the module doc).
unsafe impl Send for Fib6Reader {}
// SAFETY: as above; a shared reader only performs loads.
unsafe impl Sync for Fib6Reader {}

impl fmt::Debug for Fib6Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib6Reader").field("tbl8_groups", &self._mem.groups).field("avx2", &self.avx2).finish()
    }
}

impl fmt::Debug for Fib6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib6")
            .field("routes", &self.n_routes)
            .field("tbl8_in_use", &self.in_use)
            .field("tbl8_pending", &self.pending.len())
            .field("tbl8_groups", &self.mem.groups)
            .field("avx2", &self.avx2)
            .finish()
    }
}

fn check_prefix(prefix: u128, len: u8) -> Result<(), FibError> {
    if len > 128 {
        return Err(FibError::PrefixTooLong { len, max: 128 });
    }
    if prefix & !mask(len) != 0 {
        return Err(FibError::HostBitsSet { prefix: IpAddr::V6(Ipv6Addr::from(prefix)), len });
    }
    Ok(())
}

fn detect_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Fib6 {
    /// Maps the tables (64 MiB of tbl24 plus 1 KiB per group, all
    /// pre-faulted) and picks the batch lookup (AVX2 when the CPU has it).
    /// Reclamation waits for the readers of `rcu`.
    pub fn new(cfg: &Fib6Config, rcu: Rcu) -> Result<Fib6, FibError> {
        if cfg.tbl8_groups == 0 || cfg.tbl8_groups > MAX_TBL8_GROUPS {
            return Err(FibError::InvalidConfig { what: "tbl8_groups must be in 1..=2^22" });
        }
        let tbl24 = map_region((TBL24_ENTRIES + TOP16_ENTRIES) * 4, cfg.hugepages)?;
        let tbl8 = map_region(cfg.tbl8_groups as usize * GROUP * 4, cfg.hugepages)?;
        if tbl24.len() < (TBL24_ENTRIES + TOP16_ENTRIES) * 4 || tbl8.len() < cfg.tbl8_groups as usize * GROUP * 4 {
            return Err(FibError::Memory { bytes: tbl24.len(), kind: std::io::ErrorKind::OutOfMemory });
        }
        Ok(Fib6 {
            mem: Arc::new(Tables { tbl24, tbl8, groups: cfg.tbl8_groups }),
            rcu,
            routes: (0..=128).map(|_| PrefixMap::default()).collect(),
            n_routes: 0,
            depth24: vec![0; TBL24_ENTRIES],
            long16: vec![0; TOP16_ENTRIES],
            depth8: Vec::new(),
            owned: Vec::new(),
            free: Vec::new(),
            pending: Vec::new(),
            fresh: 0,
            in_use: 0,
            synchronizes: 0,
            reclaimed: 0,
            avx2: detect_avx2(),
        })
    }

    /// A handle for a worker. Cheap; clone it freely.
    pub fn reader(&self) -> Fib6Reader {
        let tbl24: NonNull<AtomicU32> = self.mem.tbl24.base().cast();
        Fib6Reader {
            // SAFETY: top16 starts 2^24 entries into the tbl24 region, which
            // holds both (see Tables::top16).
            top16: unsafe { tbl24.add(TBL24_ENTRIES) },
            tbl24,
            tbl8: self.mem.tbl8.base().cast(),
            avx2: self.avx2,
            _mem: self.mem.clone(),
        }
    }

    /// Adds a route, or replaces the next hop of an existing one (returned).
    ///
    /// Fails without changing anything on a bad prefix or next hop, or when
    /// the route needs groups and not enough are free even after
    /// reclaiming the pending ones (which may wait for the readers: see the
    /// module doc).
    pub fn insert(&mut self, prefix: impl Into<u128>, len: u8, nh: u32) -> Result<Option<u32>, FibError> {
        let prefix = prefix.into();
        check_prefix(prefix, len)?;
        if nh > MAX_NEXT_HOP {
            return Err(FibError::NextHopOutOfRange { nh, max: MAX_NEXT_HOP });
        }
        let old = self.routes[usize::from(len)].get(&prefix).copied();
        if old == Some(nh) {
            return Ok(old);
        }
        let d = len + 1;
        let v = leaf(nh);
        if len <= 24 {
            let first = top24(prefix);
            for s in first..first + (1usize << (24 - len)) {
                let e = self.load(Slot::T24(s));
                if e & EXT != 0 {
                    self.fill(e & VALUE, 0, GROUP, d, v);
                } else if self.depth24[s] <= d {
                    self.depth24[s] = d;
                    self.store(Slot::T24(s), v);
                }
            }
        } else {
            let last = final_level(len);
            let off = byte_at(prefix, last);
            let n = 1usize << (24 + 8 * last - usize::from(len));
            // Follow the existing links as far as they go.
            let mut slot = Slot::T24(top24(prefix));
            let mut level = 1;
            loop {
                let e = self.load(slot);
                if e & EXT == 0 {
                    break;
                }
                let g = e & VALUE;
                if level == last {
                    // The route's group exists: paint in place.
                    self.fill(g, off, n, d, v);
                    if old.is_none() {
                        self.owned[g as usize] += 1;
                    }
                    self.after_update(prefix, len, old.is_none(), false);
                    self.note_insert(prefix, len, nh, old);
                    return Ok(old);
                }
                slot = Slot::G(g, byte_at(prefix, level));
                level += 1;
            }
            // Groups `level..=last` are missing. Take them all first: the
            // only fallible step, before anything changes.
            self.ensure_groups(last - level + 1)?;
            let e = self.load(slot);
            let ed = self.depth(slot);
            let top = self.alloc_group()?;
            self.init_group(top, e, ed);
            let mut g = top;
            for lv in level + 1..=last {
                let child = self.alloc_group()?;
                self.init_group(child, e, ed);
                // Unlinked yet: published by the Release store below.
                self.mem.tbl8()[g as usize * GROUP + byte_at(prefix, lv - 1)].store(EXT | child, Ordering::Relaxed);
                self.owned[g as usize] += 1;
                g = child;
            }
            self.fill(g, off, n, d, v);
            self.owned[g as usize] += 1;
            // The chain is complete: link it (Release, see module doc).
            self.store(slot, EXT | top);
            if let Slot::G(parent, _) = slot {
                self.owned[parent as usize] += 1;
            }
        }
        self.after_update(prefix, len, old.is_none(), false);
        self.note_insert(prefix, len, nh, old);
        Ok(old)
    }

    /// Removes a route and returns its next hop. Addresses it covered fall
    /// to the longest shorter route covering them, or to no route.
    pub fn remove(&mut self, prefix: impl Into<u128>, len: u8) -> Result<u32, FibError> {
        let prefix = prefix.into();
        check_prefix(prefix, len)?;
        let Some(old) = self.routes[usize::from(len)].remove(&prefix) else {
            return Err(FibError::NotFound { prefix: IpAddr::V6(Ipv6Addr::from(prefix)), len });
        };
        self.n_routes -= 1;
        let (rv, rd) = self.covering(prefix, len);
        let d = len + 1;
        if len <= 24 {
            let first = top24(prefix);
            for s in first..first + (1usize << (24 - len)) {
                let e = self.load(Slot::T24(s));
                if e & EXT != 0 {
                    self.replace(e & VALUE, 0, GROUP, d, rv, rd);
                } else if self.depth24[s] == d {
                    self.depth24[s] = rd;
                    self.store(Slot::T24(s), rv);
                }
            }
            self.after_update(prefix, len, false, true);
            return Ok(old);
        }
        let last = final_level(len);
        // The chain of groups down to the route's: (slot linking g, g).
        let mut path = [(Slot::T24(0), 0u32); LEVELS];
        let mut slot = Slot::T24(top24(prefix));
        for (lv, p) in path.iter_mut().enumerate().take(last) {
            let e = self.load(slot);
            // Invariant: a route longer than a level's prefix has its chain.
            debug_assert!(e & EXT != 0, "route {prefix:#x}/{len} without its group at level {}", lv + 1);
            if e & EXT == 0 {
                self.after_update(prefix, len, false, true);
                return Ok(old);
            }
            *p = (slot, e & VALUE);
            slot = Slot::G(e & VALUE, byte_at(prefix, lv + 1));
        }
        let g = path[last - 1].1;
        let n = 1usize << (24 + 8 * last - usize::from(len));
        self.replace(g, byte_at(prefix, last), n, d, rv, rd);
        self.owned[g as usize] -= 1;
        // Collapse the groups left with nothing of their own, bottom up.
        for j in (0..last).rev() {
            let (slot, g) = path[j];
            if self.owned[g as usize] != 0 {
                break;
            }
            self.collapse(slot, g);
            if j > 0 {
                self.owned[path[j - 1].1 as usize] -= 1;
            }
        }
        self.after_update(prefix, len, false, true);
        Ok(old)
    }

    /// The next hop of exactly this route (not a longest-prefix match).
    pub fn get(&self, prefix: impl Into<u128>, len: u8) -> Option<u32> {
        self.routes.get(usize::from(len))?.get(&prefix.into()).copied()
    }

    /// Every route as `(prefix, len, next hop)`, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = (Ipv6Addr, u8, u32)> + '_ {
        self.routes.iter().zip(0u8..).flat_map(|(m, len)| m.iter().map(move |(&p, &nh)| (Ipv6Addr::from(p), len, nh)))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.n_routes
    }

    pub fn is_empty(&self) -> bool {
        self.n_routes == 0
    }

    /// Longest-prefix match from the control side (same tables as readers).
    pub fn lookup(&self, addr: u128) -> Option<u32> {
        self.reader().lookup(addr)
    }

    /// Groups linked now.
    pub fn tbl8_in_use(&self) -> u32 {
        self.in_use
    }

    /// Collapsed groups waiting for a grace period before reuse.
    pub fn tbl8_pending(&self) -> usize {
        self.pending.len()
    }

    /// Size of the group pool.
    pub fn tbl8_groups(&self) -> u32 {
        self.mem.groups
    }

    /// How many times the writer waited for the readers (`synchronize`).
    pub fn synchronizes(&self) -> u64 {
        self.synchronizes
    }

    /// Groups made reusable after a grace period, since creation.
    pub fn tbl8_reclaimed(&self) -> u64 {
        self.reclaimed
    }

    /// Page size backing the lookup tables.
    pub fn page_kind(&self) -> PageKind {
        self.mem.tbl24.page_kind()
    }

    /// Whether [`Fib6Reader::lookup_bulk`] uses the AVX2 gather path.
    pub fn simd(&self) -> bool {
        self.avx2
    }

    /// Bytes of lookup table the current routes use: tbl24 plus the groups
    /// in use (what a worker's lookups can touch).
    pub fn table_bytes(&self) -> usize {
        (TBL24_ENTRIES + TOP16_ENTRIES) * 4 + self.in_use as usize * GROUP * 4
    }

    /// Bytes this FIB holds: both mapped regions (the whole group pool,
    /// mapped up front), the writer's shadow arrays, and an estimate of its
    /// route maps.
    pub fn memory_bytes(&self) -> usize {
        let maps: usize = self.routes.iter().map(|m| m.capacity() * (16 + 4 + 1)).sum();
        self.mem.tbl24.len()
            + self.mem.tbl8.len()
            + self.depth24.capacity()
            + self.long16.capacity() * 4
            + self.depth8.capacity() * GROUP
            + self.owned.capacity() * 4
            + (self.free.capacity() + self.pending.capacity()) * 4
            + maps
    }

    /// Waits for a grace period and makes every pending group reusable.
    /// Returns how many were reclaimed. Call it after a batch of deletes,
    /// from the control thread; it blocks until each registered reader has
    /// passed a quiescent point.
    pub fn reclaim(&mut self) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        self.rcu.synchronize();
        self.synchronizes += 1;
        let n = self.pending.len();
        let tbl8 = self.mem.tbl8();
        for g in self.pending.drain(..) {
            // No reader can reach the group any more: poison it, so a bug
            // that reads freed groups shows up as POISON_NEXT_HOP.
            let base = g as usize * GROUP;
            for e in &tbl8[base..base + GROUP] {
                e.store(POISON, Ordering::Relaxed);
            }
            self.free.push(g);
        }
        self.reclaimed += n as u64;
        n
    }

    // --- writer internals -------------------------------------------------

    /// Brings top16 up to date once tbl24 and the groups hold the update
    /// (so a lookup that follows a top16 link sees them): a /16 links tbl24
    /// while it holds a route longer than /16, else it holds the leaf that
    /// all its 256 tbl24 entries then share.
    fn after_update(&mut self, prefix: u128, len: u8, added: bool, removed: bool) {
        let first = top16(prefix);
        if len > 16 {
            let c = &mut self.long16[first];
            *c = c.wrapping_add(u32::from(added)).wrapping_sub(u32::from(removed));
            if added && *c == 1 {
                self.mem.top16()[first].store(EXT, Ordering::Release);
            } else if removed && *c == 0 {
                self.refresh16(first);
            }
        } else {
            for j in first..first + (1usize << (16 - len)) {
                if self.long16[j] == 0 {
                    self.refresh16(j);
                }
            }
        }
    }

    /// Copies the (uniform) tbl24 entries of a /16 without longer routes
    /// into its top16 entry.
    fn refresh16(&self, j: usize) {
        let t24 = &self.mem.tbl24()[j << 8..(j + 1) << 8];
        let v = t24[0].load(Ordering::Relaxed);
        debug_assert!(
            v & EXT == 0 && t24.iter().all(|e| e.load(Ordering::Relaxed) == v),
            "/16 {j:#x} without longer routes is not uniform"
        );
        self.mem.top16()[j].store(v, Ordering::Release);
    }

    fn note_insert(&mut self, prefix: u128, len: u8, nh: u32, old: Option<u32>) {
        self.routes[usize::from(len)].insert(prefix, nh);
        if old.is_none() {
            self.n_routes += 1;
        }
    }

    fn entry(&self, s: Slot) -> &AtomicU32 {
        match s {
            Slot::T24(i) => &self.mem.tbl24()[i],
            Slot::G(g, i) => &self.mem.tbl8()[g as usize * GROUP + i],
        }
    }

    #[inline]
    fn load(&self, s: Slot) -> u32 {
        // The writer reads back its own stores: Relaxed is enough.
        self.entry(s).load(Ordering::Relaxed)
    }

    #[inline]
    fn store(&self, s: Slot, v: u32) {
        self.entry(s).store(v, Ordering::Release);
    }

    fn depth(&self, s: Slot) -> Depth {
        match s {
            Slot::T24(i) => self.depth24[i],
            Slot::G(g, i) => self.depth8[g as usize][i],
        }
    }

    fn set_depth(&mut self, s: Slot, d: Depth) {
        match s {
            Slot::T24(i) => self.depth24[i] = d,
            Slot::G(g, i) => self.depth8[g as usize][i] = d,
        }
    }

    /// The route that takes over when `prefix/len` goes: the longest one
    /// shorter than `len` covering it, as (entry, depth).
    fn covering(&self, prefix: u128, len: u8) -> (u32, Depth) {
        for l in (0..len).rev() {
            let m = &self.routes[usize::from(l)];
            if m.is_empty() {
                continue;
            }
            if let Some(&nh) = m.get(&(prefix & mask(l))) {
                return (leaf(nh), l + 1);
            }
        }
        (0, 0)
    }

    /// Writes `v` at depth `d` into the entries `off..off+n` of group `g`
    /// whose route is not longer, and into the groups they link.
    fn fill(&mut self, g: u32, off: usize, n: usize, d: Depth, v: u32) {
        for i in off..off + n {
            let s = Slot::G(g, i);
            let e = self.load(s);
            if e & EXT != 0 {
                self.fill(e & VALUE, 0, GROUP, d, v);
            } else if self.depth8[g as usize][i] <= d {
                self.depth8[g as usize][i] = d;
                self.store(s, v);
            }
        }
    }

    /// Hands the entries of `off..off+n` in group `g` (and the groups they
    /// link) written by the route at depth `d` to (`v`, `rd`).
    fn replace(&mut self, g: u32, off: usize, n: usize, d: Depth, v: u32, rd: Depth) {
        for i in off..off + n {
            let s = Slot::G(g, i);
            let e = self.load(s);
            if e & EXT != 0 {
                self.replace(e & VALUE, 0, GROUP, d, v, rd);
            } else if self.depth8[g as usize][i] == d {
                self.depth8[g as usize][i] = rd;
                self.store(s, v);
            }
        }
    }

    /// Fills an unlinked group with a copy of the entry it will replace. No
    /// reader can see the group yet, so plain (Relaxed) stores suffice: the
    /// Release store that links it publishes them.
    fn init_group(&mut self, g: u32, e: u32, d: Depth) {
        let base = g as usize * GROUP;
        for x in &self.mem.tbl8()[base..base + GROUP] {
            x.store(e, Ordering::Relaxed);
        }
        self.depth8[g as usize] = [d; GROUP];
        self.owned[g as usize] = 0;
    }

    /// Group `g` (linked from `slot`) has no route and no group of its own
    /// left: every entry holds the same covering route. Store it in the
    /// parent entry, then queue the group for reclamation.
    fn collapse(&mut self, slot: Slot, g: u32) {
        let base = g as usize * GROUP;
        let v = self.mem.tbl8()[base].load(Ordering::Relaxed);
        let d = self.depth8[g as usize][0];
        debug_assert!(
            self.mem.tbl8()[base..base + GROUP].iter().all(|e| e.load(Ordering::Relaxed) == v)
                && self.depth8[g as usize].iter().all(|&x| x == d),
            "collapsing a non-uniform group"
        );
        self.set_depth(slot, d);
        self.store(slot, v);
        self.in_use -= 1;
        self.pending.push(g);
    }

    fn available(&self) -> usize {
        self.free.len() + (self.mem.groups - self.fresh) as usize
    }

    /// Makes sure `need` groups can be allocated, reclaiming the pending
    /// ones if that is what it takes.
    fn ensure_groups(&mut self, need: usize) -> Result<(), FibError> {
        if self.available() < need && !self.pending.is_empty() {
            self.reclaim();
        }
        if self.available() < need {
            return Err(FibError::OutOfTbl8 { groups: self.mem.groups });
        }
        Ok(())
    }

    /// Takes a group; call [`Fib6::ensure_groups`] first (then it cannot fail).
    fn alloc_group(&mut self) -> Result<u32, FibError> {
        let g = if let Some(g) = self.free.pop() {
            g
        } else if self.fresh < self.mem.groups {
            let g = self.fresh;
            self.fresh += 1;
            self.depth8.push([0; GROUP]);
            self.owned.push(0);
            g
        } else {
            return Err(FibError::OutOfTbl8 { groups: self.mem.groups });
        };
        self.in_use += 1;
        Ok(g)
    }
}

impl Fib6Reader {
    /// Longest-prefix match for `addr` (the address as a big-endian
    /// integer, as `u128::from(Ipv6Addr)` gives it).
    #[inline]
    pub fn lookup(&self, addr: u128) -> Option<u32> {
        let e = self.load16(top16(addr));
        let e = if e & EXT != 0 { self.load24(top24(addr)) } else { e };
        let e = self.walk(e, addr, 1);
        match resolve(e) {
            NO_ROUTE => None,
            nh => Some(nh),
        }
    }

    /// Looks up `addrs[i]` into `out[i]` (next-hop index, or [`NO_ROUTE`])
    /// for `i < min(addrs.len(), out.len())`.
    ///
    /// 64 addresses at a time, level by level, so that their cache misses
    /// overlap: AVX2 gathers when the CPU has them, else the scalar batch
    /// ([`Fib6Reader::lookup_bulk_scalar`]). See the module doc.
    #[inline]
    pub fn lookup_bulk(&self, addrs: &[u128], out: &mut [u32]) {
        let n = addrs.len().min(out.len());
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is true only if the CPU has AVX2 (detected in
            // Fib6::new).
            unsafe { self.bulk_avx2(&addrs[..n], &mut out[..n]) };
            return;
        }
        self.lookup_bulk_scalar(&addrs[..n], &mut out[..n]);
    }

    /// The portable batch lookup (what [`Fib6Reader::lookup_bulk`] does
    /// without AVX2): per chunk of 64, prefetch and read the top16 entries,
    /// then level by level (tbl24, groups) prefetch and read the next entry
    /// of the lanes still on a link, kept in a compacted list.
    pub fn lookup_bulk_scalar(&self, addrs: &[u128], out: &mut [u32]) {
        let n = addrs.len().min(out.len());
        for (a, o) in addrs[..n].chunks(CHUNK).zip(out[..n].chunks_mut(CHUNK)) {
            self.scalar_chunk(a, o);
        }
    }

    /// Whether [`Fib6Reader::lookup_bulk`] uses the AVX2 gather path.
    pub fn simd(&self) -> bool {
        self.avx2
    }

    #[inline(always)]
    fn scalar_chunk(&self, addrs: &[u128], out: &mut [u32]) {
        for &a in addrs {
            prefetch(self.top16.as_ptr().wrapping_add(top16(a)));
        }
        // Positions (within the chunk) of lanes still on a link.
        let mut ext = [0u8; CHUNK];
        let mut k = 0usize;
        for (i, (&a, o)) in addrs.iter().zip(out.iter_mut()).enumerate() {
            let e = self.load16(top16(a));
            *o = e;
            // Branch-free compaction: always write, advance when EXT.
            ext[k & (CHUNK - 1)] = i as u8;
            k += (e >> 31) as usize;
        }
        // Level 0 (tbl24) for the lanes whose /16 links it, then the groups.
        let mut level = 0;
        while k > 0 && level <= LEVELS {
            let live = k.min(CHUNK);
            for &i in &ext[..live] {
                let i = usize::from(i);
                if let (Some(&e), Some(&a)) = (out.get(i), addrs.get(i)) {
                    prefetch(self.slot(e, a, level));
                }
            }
            let mut kk = 0usize;
            for j in 0..live {
                let i = usize::from(ext[j]);
                if let (Some(o), Some(&a)) = (out.get_mut(i), addrs.get(i)) {
                    let e = if level == 0 { self.load24(top24(a)) } else { self.load8(*o, byte_at(a, level)) };
                    *o = e;
                    ext[kk] = i as u8;
                    kk += (e >> 31) as usize;
                }
            }
            k = kk;
            level += 1;
        }
        for o in out.iter_mut() {
            *o = resolve(*o);
        }
    }

    /// Where the entry for `addr` at `level` lives (0: tbl24), `e` being
    /// the entry read at the level above.
    #[inline(always)]
    fn slot(&self, e: u32, addr: u128, level: usize) -> *const AtomicU32 {
        if level == 0 {
            self.tbl24.as_ptr().wrapping_add(top24(addr))
        } else {
            self.tbl8_slot(e, byte_at(addr, level))
        }
    }

    /// Goes down from entry `e` (read at level `level - 1`) while it links
    /// a group.
    #[inline(always)]
    fn walk(&self, mut e: u32, addr: u128, level: usize) -> u32 {
        let mut k = level;
        while e & EXT != 0 && k <= LEVELS {
            e = self.load8(e, byte_at(addr, k));
            k += 1;
        }
        e
    }

    #[inline(always)]
    fn tbl8_slot(&self, e: u32, byte: usize) -> *const AtomicU32 {
        self.tbl8.as_ptr().wrapping_add(((e & VALUE) as usize) << 8 | byte)
    }

    #[inline(always)]
    fn load16(&self, i: usize) -> u32 {
        debug_assert!(i < TOP16_ENTRIES);
        // SAFETY: callers pass `top16(addr) < 2^16`, and top16 has 2^16
        // entries; the memory lives as long as `_mem`. Acquire: see the
        // module doc.
        unsafe { (*self.top16.as_ptr().add(i)).load(Ordering::Acquire) }
    }

    #[inline(always)]
    fn load24(&self, i: usize) -> u32 {
        debug_assert!(i < TBL24_ENTRIES);
        // SAFETY: callers pass `top24(addr) < 2^24`, and tbl24 has 2^24
        // entries; the memory lives as long as `_mem`. Acquire: see the
        // module doc.
        unsafe { (*self.tbl24.as_ptr().add(i)).load(Ordering::Acquire) }
    }

    /// Reads entry `byte` of the group that entry `e` (with EXT set) links.
    #[inline(always)]
    fn load8(&self, e: u32, byte: usize) -> u32 {
        // SAFETY: the writer only stores EXT entries whose value is a group
        // index below `groups`, and `byte < 256`, so the index is below
        // `groups * 256`, the length of the pool; the memory lives as long
        // as `_mem`. Acquire: see the module doc.
        unsafe { (*self.tbl8_slot(e, byte)).load(Ordering::Acquire) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 batch: 8 addresses per vector, up to 8 vectors per chunk.

    use super::{Fib6Reader, CHUNK, EXT, NO_ROUTE, VALUE};
    use core::arch::asm;
    use core::arch::x86_64::*;
    use std::sync::atomic::AtomicU32;

    /// `vpgatherdd`: for each lane whose `mask` sign bit is set, loads
    /// `base[idx]`; other lanes keep `src` and touch no memory.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2, and for every lane selected by `mask`,
    /// `base + idx * 4` is a readable, 4-byte aligned `AtomicU32`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn gather(src: __m256i, base: *const AtomicU32, idx: __m256i, mask: __m256i) -> __m256i {
        let mut dst = src;
        // SAFETY: the caller guarantees the selected addresses are valid
        // entries; the instruction only reads them (each element is one
        // aligned 4-byte load, atomic on x86-64: see the module doc) and
        // clobbers nothing but `mask`, declared as an output.
        unsafe {
            asm!(
                "vpgatherdd {dst}, [{base} + {idx} * 4], {mask}",
                dst = inout(ymm_reg) dst,
                base = in(reg) base,
                idx = in(ymm_reg) idx,
                mask = inout(ymm_reg) mask => _,
                options(nostack, preserves_flags, readonly),
            );
        }
        dst
    }

    #[inline(always)]
    fn any_ext(v: __m256i) -> bool {
        // SAFETY: AVX is implied by the AVX2 target feature of every caller
        // (this is inlined only into them).
        unsafe { _mm256_movemask_ps(_mm256_castsi256_ps(v)) != 0 }
    }

    impl Fib6Reader {
        /// # Safety
        ///
        /// The CPU has AVX2; `addrs.len() == out.len()`.
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn bulk_avx2(&self, addrs: &[u128], out: &mut [u32]) {
            let n = addrs.len().min(out.len());
            let mut done = 0;
            while done < n {
                let len = (n - done).min(CHUNK);
                let a = &addrs[done..done + len];
                let o = &mut out[done..done + len];
                if len & 7 == 0 {
                    // SAFETY: AVX2 (caller); `a` and `o` hold `len` items.
                    unsafe { self.chunk(a, o) };
                } else {
                    // A ragged tail: pad to whole vectors (address 0 is a
                    // valid address; its results are dropped).
                    let mut ab = [0u128; CHUNK];
                    let mut ob = [0u32; CHUNK];
                    let padded = len.div_ceil(8) * 8;
                    ab[..len].copy_from_slice(a);
                    // SAFETY: AVX2 (caller); both buffers hold `padded` items.
                    unsafe { self.chunk(&ab[..padded], &mut ob[..padded]) };
                    o.copy_from_slice(&ob[..len]);
                }
                done += len;
            }
        }

        /// Resolves `addrs` (a multiple of 8, at most 64) into `out`.
        #[target_feature(enable = "avx2")]
        unsafe fn chunk(&self, addrs: &[u128], out: &mut [u32]) {
            let nv = (addrs.len() / 8).min(CHUNK / 8);
            let zero = _mm256_setzero_si256();
            let mut top = [zero; CHUNK / 8];
            let mut mid = [zero; CHUNK / 8];
            let mut e = [zero; CHUNK / 8];
            let all = _mm256_set1_epi32(-1);
            let ff = _mm256_set1_epi32(0xff);
            let value = _mm256_set1_epi32(VALUE as i32);
            // After vshufps the lanes come as addresses 0,2,4,6,1,3,5,7.
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            let t16 = self.top16.as_ptr().cast_const();
            let t24 = self.tbl24.as_ptr().cast_const();
            let t8 = self.tbl8.as_ptr().cast_const();
            let mut any = zero;
            for v in 0..nv {
                // Four loads of two addresses; 32-bit words 3 (bits 0..32)
                // and 2 (bits 32..64) of each, little-endian u128.
                let p = addrs[v * 8..v * 8 + 8].as_ptr().cast::<f32>();
                // SAFETY: `addrs` holds 8 addresses (128 bytes) from `p`.
                let (x0, x1, x2, x3) = unsafe {
                    (
                        _mm256_loadu_ps(p),
                        _mm256_loadu_ps(p.add(8)),
                        _mm256_loadu_ps(p.add(16)),
                        _mm256_loadu_ps(p.add(24)),
                    )
                };
                let h01 = _mm256_shuffle_ps::<0b11_10_11_10>(x0, x1);
                let h23 = _mm256_shuffle_ps::<0b11_10_11_10>(x2, x3);
                let t = _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(h01, h23));
                let m = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(h01, h23));
                top[v] = _mm256_permutevar8x32_epi32(t, order);
                mid[v] = _mm256_permutevar8x32_epi32(m, order);
                // SAFETY: bits 0..16 index top16's 2^16 entries.
                e[v] = unsafe { gather(zero, t16, _mm256_srli_epi32::<16>(top[v]), all) };
            }
            // Level 0: tbl24, for the lanes whose /16 links it (a masked
            // gather touches no memory for the other lanes).
            for v in 0..nv {
                // SAFETY: bits 0..24 index tbl24's 2^24 entries.
                e[v] = unsafe { gather(e[v], t24, _mm256_srli_epi32::<8>(top[v]), e[v]) };
                any = _mm256_or_si256(any, e[v]);
            }
            // Levels 1..=5: address bits 24..64.
            for level in 1..=5 {
                if !any_ext(any) {
                    break;
                }
                any = zero;
                let (src_is_top, sh) = if level == 1 { (true, 0) } else { (false, 8 * (5 - level)) };
                let shv = _mm_cvtsi32_si128(sh);
                for v in 0..nv {
                    let src = if src_is_top { top[v] } else { mid[v] };
                    let byte = _mm256_and_si256(_mm256_srl_epi32(src, shv), ff);
                    let idx = _mm256_or_si256(_mm256_slli_epi32::<8>(_mm256_and_si256(e[v], value)), byte);
                    // SAFETY: lanes with EXT set hold a group index below
                    // `groups` (writer invariant) and `byte < 256`, so the
                    // index is inside the pool (and below 2^30: a positive
                    // i32, as MAX_TBL8_GROUPS guarantees).
                    e[v] = unsafe { gather(e[v], t8, idx, e[v]) };
                    any = _mm256_or_si256(any, e[v]);
                }
            }
            let none = _mm256_set1_epi32(NO_ROUTE as i32);
            for v in 0..nv {
                // VALID (bit 30) shifted to the sign bit selects the value.
                let valid = _mm256_castsi256_ps(_mm256_slli_epi32::<1>(e[v]));
                let nh = _mm256_castsi256_ps(_mm256_and_si256(e[v], value));
                let r = _mm256_blendv_ps(_mm256_castsi256_ps(none), nh, valid);
                // SAFETY: `out` holds 8 results from `v * 8`.
                unsafe { _mm256_storeu_ps(out[v * 8..v * 8 + 8].as_mut_ptr().cast::<f32>(), r) };
                if any_ext(e[v]) {
                    // Under a prefix longer than /64: finish in scalar.
                    let mut lanes = [0u32; 8];
                    // SAFETY: `lanes` is 32 bytes.
                    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), e[v]) };
                    for (l, &x) in lanes.iter().enumerate() {
                        if x & EXT != 0 {
                            let i = v * 8 + l;
                            out[i] = super::resolve(self.walk(x, addrs[i], 6));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().expect("literal address"))
    }

    fn fib(groups: u32) -> Fib6 {
        Fib6::new(&Fib6Config { tbl8_groups: groups, hugepages: HugepagePolicy::Never }, Rcu::new()).expect("fib")
    }

    /// Both batch paths agree with single lookups, on every length 0..=n.
    fn check_bulk(r: &Fib6Reader, addrs: &[u128]) {
        for n in [0, 1, 7, 8, 9, 63, 64, 65, 130, addrs.len()] {
            let n = n.min(addrs.len());
            let mut out = vec![0; n + 3];
            let mut out_s = vec![0; n + 3];
            r.lookup_bulk(&addrs[..n], &mut out);
            r.lookup_bulk_scalar(&addrs[..n], &mut out_s);
            for (i, x) in addrs[..n].iter().enumerate() {
                let want = r.lookup(*x).unwrap_or(NO_ROUTE);
                assert_eq!(out[i], want, "bulk {x:#x}");
                assert_eq!(out_s[i], want, "scalar bulk {x:#x}");
            }
            assert_eq!(out[n..], [0; 3], "only min(len) outputs are written");
        }
    }

    #[test]
    fn empty_table_has_no_routes() {
        let f = fib(4);
        let r = f.reader();
        assert_eq!(r.lookup(0), None);
        assert_eq!(r.lookup(u128::MAX), None);
        let mut out = [0; 3];
        r.lookup_bulk(&[1, 2, 3], &mut out);
        assert_eq!(out, [NO_ROUTE; 3]);
        assert!(f.is_empty());
    }

    #[test]
    fn longest_prefix_wins_across_levels() {
        let mut f = fib(16);
        let r = f.reader();
        f.insert(0u128, 0, 1).expect("default");
        f.insert(a("2001:db8::"), 32, 2).expect("/32");
        f.insert(a("2001:db8:1::"), 48, 3).expect("/48");
        f.insert(a("2001:db8:1:2::"), 64, 4).expect("/64");
        f.insert(a("2001:db8:1:2::99"), 128, 5).expect("/128");
        f.insert(a("2001:db8:1:2::80"), 121, 6).expect("/121");
        assert_eq!(r.lookup(a("2002::1")), Some(1));
        assert_eq!(r.lookup(a("2001:db8:ffff::")), Some(2));
        assert_eq!(r.lookup(a("2001:db8:1:ffff::")), Some(3));
        assert_eq!(r.lookup(a("2001:db8:1:2:ffff::")), Some(4));
        assert_eq!(r.lookup(a("2001:db8:1:2::99")), Some(5));
        assert_eq!(r.lookup(a("2001:db8:1:2::98")), Some(6));
        assert_eq!(r.lookup(a("2001:db8:1:2::ff")), Some(6));
        assert_eq!(r.lookup(a("2001:db8:1:2::100")), Some(4));
        // 1 group for bits 24..32, then one per byte down to the /128.
        assert_eq!(f.tbl8_in_use(), 13);
        assert_eq!(f.len(), 6);
        // A shorter route inserted later does not hide longer ones.
        f.insert(a("2001:db8::"), 40, 7).expect("/40");
        assert_eq!(r.lookup(a("2001:db8:1:2::99")), Some(5));
        assert_eq!(r.lookup(a("2001:db8:1:ffff::")), Some(3));
        assert_eq!(r.lookup(a("2001:db8:2::")), Some(7));
        // Replacing the default route reaches entries inside the groups.
        f.insert(0u128, 0, 8).expect("replace");
        assert_eq!(r.lookup(a("3000::")), Some(8));
        assert_eq!(f.get(0u128, 0), Some(8));
        let addrs: Vec<u128> = [
            "::",
            "2001:db8::",
            "2001:db8:1::",
            "2001:db8:1:2::",
            "2001:db8:1:2::99",
            "2001:db8:1:2::80",
            "2001:db8:1:2::7f",
            "ffff::",
        ]
        .iter()
        .map(|s| a(s))
        .cycle()
        .take(150)
        .collect();
        check_bulk(&r, &addrs);
    }

    #[test]
    fn delete_hands_over_to_the_covering_route_and_collapses_groups() {
        let mut f = fib(8);
        let r = f.reader();
        f.insert(a("2a00::"), 12, 1).expect("/12");
        f.insert(a("2a00:1::"), 48, 2).expect("/48");
        f.insert(a("2a00:1:0:100::"), 56, 3).expect("/56");
        assert_eq!(f.tbl8_in_use(), 4);
        // Remove the covering route under the more-specifics.
        assert_eq!(f.remove(a("2a00::"), 12), Ok(1));
        assert_eq!(r.lookup(a("2a00:1::1")), Some(2));
        assert_eq!(r.lookup(a("2a00:1:0:1ff::")), Some(3));
        assert_eq!(r.lookup(a("2a00:2::")), None);
        f.insert(a("2a00::"), 12, 4).expect("re-insert");
        assert_eq!(r.lookup(a("2a00:2::")), Some(4));
        assert_eq!(f.remove(a("2a00:1::"), 48), Ok(2));
        assert_eq!(r.lookup(a("2a00:1::1")), Some(4));
        assert_eq!(r.lookup(a("2a00:1:0:100::1")), Some(3));
        assert_eq!(f.tbl8_in_use(), 4);
        assert_eq!(f.remove(a("2a00:1:0:100::"), 56), Ok(3));
        // All four collapse, bottom up; they wait for a grace period.
        assert_eq!((f.tbl8_in_use(), f.tbl8_pending()), (0, 4));
        assert_eq!(r.lookup(a("2a00:1:0:100::1")), Some(4));
        assert_eq!(f.reclaim(), 4);
        assert_eq!(f.tbl8_pending(), 0);
        assert!(f.mem.tbl8()[..4 * GROUP].iter().all(|e| e.load(Ordering::Relaxed) == POISON));
        assert_eq!(r.lookup(a("2a00:1:0:100::1")), Some(4));
        assert_eq!(
            f.remove(a("2a00:1:0:100::"), 56),
            Err(FibError::NotFound { prefix: "2a00:1:0:100::".parse().expect("a"), len: 56 })
        );
        // Groups come back from the free list.
        f.insert(a("2a00:1::"), 48, 5).expect("/48");
        assert_eq!(r.lookup(a("2a00:1::1")), Some(5));
        assert_eq!(f.tbl8_in_use(), 3);
    }

    #[test]
    fn partial_collapse_keeps_groups_with_routes() {
        let mut f = fib(8);
        let r = f.reader();
        f.insert(a("2001:db8::"), 48, 1).expect("/48");
        f.insert(a("2001:db8:0:1::"), 64, 2).expect("/64 under it");
        f.insert(a("2001:db9::"), 32, 3).expect("/32 next to it");
        // /24 group, /32 group, /40 group, /48..56 and 56..64 groups.
        assert_eq!(f.tbl8_in_use(), 5);
        f.remove(a("2001:db8:0:1::"), 64).expect("rm /64");
        // The two groups below the /48 go, the /48's own chain stays.
        assert_eq!((f.tbl8_in_use(), f.tbl8_pending()), (3, 2));
        assert_eq!(r.lookup(a("2001:db8:0:1::1")), Some(1));
        assert_eq!(r.lookup(a("2001:db9::1")), Some(3));
        f.remove(a("2001:db8::"), 48).expect("rm /48");
        // The /24 group still holds the /32.
        assert_eq!((f.tbl8_in_use(), f.tbl8_pending()), (1, 4));
        assert_eq!(r.lookup(a("2001:db8::1")), None);
        assert_eq!(r.lookup(a("2001:db9::1")), Some(3));
    }

    #[test]
    fn short_routes_span_many_tbl24_entries() {
        let mut f = fib(4);
        let r = f.reader();
        f.insert(a("2000::"), 3, 1).expect("/3");
        f.insert(a("2400::"), 20, 2).expect("/20");
        f.insert(a("2400:0:1::"), 48, 3).expect("/48");
        assert_eq!(r.lookup(a("3fff:ffff::")), Some(1));
        assert_eq!(r.lookup(a("2400:fff::")), Some(2));
        assert_eq!(r.lookup(a("2400:1000::")), Some(1));
        assert_eq!(r.lookup(a("2400:0:1::5")), Some(3));
        f.remove(a("2400::"), 20).expect("rm /20");
        assert_eq!(r.lookup(a("2400:fff::")), Some(1));
        assert_eq!(r.lookup(a("2400:0:2::")), Some(1));
        assert_eq!(r.lookup(a("2400:0:1::5")), Some(3));
        f.remove(a("2000::"), 3).expect("rm /3");
        assert_eq!(r.lookup(a("2400:0:2::")), None);
        assert_eq!(r.lookup(a("2400:0:1::5")), Some(3));
        assert_eq!(r.lookup(a("4000::")), None);
    }

    #[test]
    fn top16_links_tbl24_only_while_a_longer_route_is_inside() {
        let mut f = fib(8);
        let r = f.reader();
        let j = top16(a("2001::"));
        let top = |f: &Fib6, j: usize| f.mem.top16()[j].load(Ordering::Relaxed);
        f.insert(0u128, 0, 1).expect("default");
        assert_eq!((top(&f, j), top(&f, 0), top(&f, 0xffff)), (leaf(1), leaf(1), leaf(1)));
        f.insert(a("2001::"), 16, 2).expect("/16");
        assert_eq!(top(&f, j), leaf(2));
        f.insert(a("2001:8000::"), 17, 3).expect("/17");
        f.insert(a("2001:db8::"), 32, 4).expect("/32");
        assert_eq!(top(&f, j), EXT);
        assert_eq!(r.lookup(a("2001:1::")), Some(2));
        assert_eq!(r.lookup(a("2001:9000::")), Some(3));
        assert_eq!(r.lookup(a("2001:db8::1")), Some(4));
        // A shorter route changed under the link: the link stays.
        f.insert(0u128, 0, 5).expect("default again");
        assert_eq!((top(&f, j), top(&f, 0)), (EXT, leaf(5)));
        f.remove(a("2001:8000::"), 17).expect("rm /17");
        assert_eq!(top(&f, j), EXT);
        f.remove(a("2001:db8::"), 32).expect("rm /32");
        assert_eq!(top(&f, j), leaf(2));
        f.remove(a("2001::"), 16).expect("rm /16");
        assert_eq!(top(&f, j), leaf(5));
        f.remove(0u128, 0).expect("rm default");
        assert_eq!((top(&f, j), top(&f, 0)), (0, 0));
        assert_eq!(r.lookup(a("2001:db8::1")), None);
    }

    #[test]
    fn invalid_updates_are_refused() {
        let mut f = fib(1);
        assert_eq!(f.insert(0u128, 129, 1), Err(FibError::PrefixTooLong { len: 129, max: 128 }));
        assert_eq!(
            f.insert(a("2001:db8::1"), 64, 1),
            Err(FibError::HostBitsSet { prefix: "2001:db8::1".parse().expect("a"), len: 64 })
        );
        assert_eq!(
            f.insert(0u128, 0, MAX_NEXT_HOP + 1),
            Err(FibError::NextHopOutOfRange { nh: POISON_NEXT_HOP, max: MAX_NEXT_HOP })
        );
        assert_eq!(f.remove(0u128, 129), Err(FibError::PrefixTooLong { len: 129, max: 128 }));
        assert!(matches!(
            Fib6::new(&Fib6Config { tbl8_groups: 0, ..Default::default() }, Rcu::new()),
            Err(FibError::InvalidConfig { .. })
        ));
        assert!(matches!(
            Fib6::new(&Fib6Config { tbl8_groups: MAX_TBL8_GROUPS + 1, ..Default::default() }, Rcu::new()),
            Err(FibError::InvalidConfig { .. })
        ));
        assert!(f.is_empty());
    }

    #[test]
    fn out_of_groups_changes_nothing() {
        let mut f = fib(3);
        let r = f.reader();
        f.insert(a("2001:db8::"), 32, 1).expect("/32");
        f.insert(a("2001:db8::"), 48, 2).expect("needs 3 groups");
        assert_eq!(f.tbl8_in_use(), 3);
        // A /48 in another /24 needs 3 more: refused, nothing changes.
        assert_eq!(f.insert(a("2a00::"), 48, 3), Err(FibError::OutOfTbl8 { groups: 3 }));
        assert_eq!(r.lookup(a("2a00::")), None);
        assert_eq!(f.len(), 2);
        assert_eq!(f.get(a("2a00::"), 48), None);
        // A route in existing groups needs none.
        f.insert(a("2001:db8:0:1::"), 64, 4).expect_err("needs 2 more groups");
        f.insert(a("2001:db8:1::"), 48, 5).expect("same /40 group");
        assert_eq!(f.remove(a("2001:db8::"), 48), Ok(2));
        assert_eq!(f.remove(a("2001:db8:1::"), 48), Ok(5));
        assert_eq!(f.tbl8_pending(), 2);
        // Not enough even after reclaiming: still refused, but reclaimed.
        assert_eq!(f.insert(a("2a00::"), 48, 3), Err(FibError::OutOfTbl8 { groups: 3 }));
        assert_eq!((f.synchronizes(), f.tbl8_pending()), (1, 0));
        // One is enough for a /40 under the existing /32 group.
        f.insert(a("2001:dbf::"), 40, 6).expect("reuses the groups");
        assert_eq!(r.lookup(a("2001:dbf::")), Some(6));
        assert_eq!(r.lookup(a("2001:db8::")), Some(1));
    }

    #[test]
    fn bulk_equals_single_on_mixed_entries() {
        let mut f = fib(64);
        let r = f.reader();
        for i in 0..8u128 {
            f.insert(a("2001:db8::") | (i << 80), 48, i as u32).expect("/48");
            f.insert(a("2001:db8::") | (i << 80) | (1 << 60), 68, 10 + i as u32).expect("/68");
        }
        f.insert(a("2001::"), 16, 100).expect("/16");
        f.insert(a("2001:db8::8"), 125, 101).expect("/125");
        let addrs: Vec<u128> = (0..1000u128)
            .map(|i| a("2001:db8::").wrapping_add(i.wrapping_mul(0x0001_0000_0000_0000_0000_1234_5678_9abd)))
            .chain((0..16).map(|i| a("2001:db8::") + i))
            .collect();
        check_bulk(&r, &addrs);
    }

    #[test]
    fn memory_accounting() {
        let mut f = fib(4);
        assert_eq!(f.table_bytes(), (64 << 20) + (256 << 10));
        f.insert(a("2001:db8::"), 32, 1).expect("/32");
        assert_eq!(f.table_bytes(), (64 << 20) + (256 << 10) + 1024);
        assert!(f.memory_bytes() >= (64 << 20) + 4 * 1024 + (16 << 20));
        assert_eq!(f.routes().collect::<Vec<_>>(), vec![("2001:db8::".parse().expect("a"), 32, 1)]);
    }
}
