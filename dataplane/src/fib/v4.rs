//! The IPv4 FIB: DIR-24-8, as DPDK's `rte_lpm` and `rte_fib` DIR24_8.
//!
//! # Layout
//!
//! - **tbl24**: 2^24 entries, one per /24, indexed by the top 24 bits of
//!   the address (64 MiB).
//! - **tbl8**: a pool of groups of 256 entries; a tbl24 entry whose /24
//!   holds a route longer than /24 points to one group, indexed by the last
//!   address byte (1 KiB per group).
//!
//! Both live in [`MemRegion`]s: pre-faulted, on 2 MiB hugepages when the
//! system has them (the tables are far larger than the caches, so every
//! lookup misses; hugepages keep the TLB from missing too).
//!
//! A lookup is one load from tbl24 and, for addresses under a route longer
//! than /24, one more from tbl8. [`Fib4Reader::lookup_bulk`] prefetches the
//! tbl24 lines of a whole vector of addresses before it reads any, and reads
//! the tbl8 entries the vector needs only once all tbl24 entries are in, as
//! independent loads, so the cache misses of many lookups overlap (the VPP /
//! `rte_lpm` habit); see there for what was measured.
//!
//! # Entries
//!
//! Every entry is an [`AtomicU32`]:
//!
//! ```text
//!  31     30      29 .............. 0
//! VALID  EXT     value (30 bits)
//! ```
//!
//! - `VALID`, not `EXT`: a route; the value is its next-hop index.
//! - `EXT` (tbl24 only): the value is a tbl8 group index.
//! - `0`: no route.
//!
//! Next-hop indices are therefore limited to 30 bits: [`MAX_NEXT_HOP`] is
//! `2^30 - 2`, because `2^30 - 1` ([`POISON_NEXT_HOP`]) is written into
//! every entry of a reclaimed tbl8 group, so a reader that ever read freed
//! memory would return it, and tests can tell.
//!
//! # Updates while workers read
//!
//! [`Fib4`] is the single writer. It keeps the routes themselves (one hash
//! map per prefix length) and, per entry, the length of the route that
//! wrote it (a shadow array, like the `depth` field of `rte_lpm` entries,
//! kept off the lookup path). An insert overwrites exactly the entries of
//! its range whose route is not longer; a delete hands exactly the entries
//! that its route wrote to the longest shorter route covering the prefix
//! (or to "no route").
//!
//! Every entry change is one atomic store, so a lookup running concurrently
//! sees, for its address, either the next hop before the update or the one
//! after it — never a mix. A new tbl8 group is filled completely before the
//! Release store of the tbl24 entry that links it. When a delete removes the
//! last route longer than /24 from a group, the group collapses: its (then
//! uniform) value is stored in the tbl24 entry, and only after that the
//! group goes on a *pending* list, because a lookup that loaded the old
//! tbl24 entry may still be about to read it.
//!
//! # Reclamation (RCU)
//!
//! Pending groups are reused only after [`Rcu::synchronize`]: every worker
//! has then passed a quiescent point (`RcuReader::quiescent`, once per poll
//! loop) since the unlink, so no lookup can still hold the old link. The
//! synchronize is batched: the writer reclaims all pending groups at once,
//! either when it needs a group and the free list is empty, or when the
//! control side calls [`Fib4::reclaim`] (e.g. after a batch of updates).
//! An insert that needs a group may therefore wait for the workers' next
//! quiescent points; if every group is still in use, it fails with
//! [`FibError::OutOfTbl8`] and changes nothing.
//!
//! # Memory ordering
//!
//! Writes are Release stores. A reader loads the tbl24 entry with Acquire:
//! if the entry links a group, the Acquire pairs with the Release store that
//! linked it, so the reader sees the group's initial contents (written
//! before that store) or later values — never what the group held before it
//! was (re)used. The tbl8 entry itself is loaded Relaxed: it is a leaf (no
//! further memory depends on its value), and every value it holds from the
//! link until the group is reused — which waits for this lookup to end —
//! was the address's next hop at some moment (a collapsed group keeps the
//! values it had when it was unlinked). On x86-64 both loads compile to a
//! plain `mov`.

use super::{map_region, prefetch, FibError};
pub use super::{MAX_NEXT_HOP, NO_ROUTE, POISON_NEXT_HOP};
use crate::rcu::Rcu;
use ports::{HugepagePolicy, MemRegion, PageKind};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The most tbl8 groups a table can have (16 GiB of tbl8).
pub const MAX_TBL8_GROUPS: u32 = 1 << 24;

const VALID: u32 = 1 << 31;
const EXT: u32 = 1 << 30;
const VALUE: u32 = EXT - 1;
const POISON: u32 = VALID | POISON_NEXT_HOP;

const TBL24_ENTRIES: usize = 1 << 24;
const GROUP: usize = 256;
/// Addresses resolved together by `lookup_bulk` (prefetch window).
const CHUNK: usize = 64;

/// Shadow "depth" of an entry: prefix length + 1 of the route that wrote
/// it, 0 for no route.
type Depth = u8;

#[inline(always)]
fn leaf(nh: u32) -> u32 {
    VALID | nh
}

#[inline(always)]
fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// Turns a leaf entry into the bulk result: the next hop, or [`NO_ROUTE`].
#[inline(always)]
fn resolve(e: u32) -> u32 {
    if e & VALID != 0 {
        e & VALUE
    } else {
        NO_ROUTE
    }
}

/// Writes `resolve(raw[i])` into `out[i]` and returns the bitmap of the
/// entries that link a tbl8 group (whose `out` must be overwritten).
/// `raw.len() == out.len() <= 64`.
#[inline(always)]
fn resolve_all(raw: &[u32], out: &mut [u32]) -> u64 {
    let n = raw.len().min(out.len()).min(64);
    let mut ext = 0u64;
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline; every 16-byte load
        // and store covers `j..j + 4 <= n`, inside both slices.
        unsafe {
            let value = _mm_set1_epi32(VALUE as i32);
            let ones = _mm_set1_epi32(-1);
            while j + 4 <= n {
                let v = _mm_loadu_si128(raw.as_ptr().add(j).cast());
                // EXT (bit 30) moved to the sign bit of each lane.
                let e = _mm_movemask_ps(_mm_castsi128_ps(_mm_slli_epi32(v, 1))) as u64;
                ext |= e << j;
                // VALID ? value : NO_ROUTE (all ones).
                let valid = _mm_srai_epi32(v, 31);
                let r = _mm_or_si128(_mm_and_si128(v, value), _mm_xor_si128(valid, ones));
                _mm_storeu_si128(out.as_mut_ptr().add(j).cast(), r);
                j += 4;
            }
        }
    }
    for (k, (&e, o)) in raw.iter().zip(out.iter_mut()).enumerate().take(n).skip(j) {
        ext |= u64::from((e & EXT) >> 30) << k;
        *o = resolve(e);
    }
    ext
}

/// How to build a [`Fib4`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fib4Config {
    /// Number of tbl8 groups (1 KiB each, mapped up front). Every /24 that
    /// holds a route longer than /24 uses one group.
    pub tbl8_groups: u32,
    /// Page size for tbl24 and the tbl8 pool.
    pub hugepages: HugepagePolicy,
}

impl Default for Fib4Config {
    fn default() -> Self {
        Fib4Config { tbl8_groups: 1 << 16, hugepages: HugepagePolicy::Prefer }
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
        // Fib4::new), page aligned, zero-initialised, lives as long as
        // `self`, and is only ever accessed through these atomics.
        unsafe { std::slice::from_raw_parts(self.tbl24.base().as_ptr().cast::<AtomicU32>(), TBL24_ENTRIES) }
    }

    fn tbl8(&self) -> &[AtomicU32] {
        // SAFETY: as for tbl24, with `groups * 256` entries.
        unsafe {
            std::slice::from_raw_parts(self.tbl8.base().as_ptr().cast::<AtomicU32>(), self.groups as usize * GROUP)
        }
    }
}

type PrefixMap = super::PrefixMap<u32>;

/// The IPv4 FIB, control side: the only writer of the tables.
pub struct Fib4 {
    mem: Arc<Tables>,
    rcu: Rcu,
    /// Routes by prefix length: prefix -> next hop.
    routes: Vec<PrefixMap>,
    n_routes: usize,
    /// Depth of each plain tbl24 entry (meaningless while it links a group).
    depth24: Vec<Depth>,
    /// Depth of each tbl8 entry, per group ever used.
    depth8: Vec<[Depth; GROUP]>,
    /// Routes longer than /24 in each group; the group collapses at 0.
    group_routes: Vec<u32>,
    /// Groups ready for reuse.
    free: Vec<u32>,
    /// Groups unlinked from tbl24 that readers may still be reading.
    pending: Vec<u32>,
    /// Groups `fresh..groups` have never been used.
    fresh: u32,
    in_use: u32,
    synchronizes: u64,
    reclaimed: u64,
}

/// A worker's handle on the tables: lock-free, allocation-free lookups.
///
/// Each worker thread also holds an [`crate::rcu::RcuReader`] registered
/// with the same [`Rcu`] as the FIB and calls `quiescent()` once per poll
/// loop, outside any lookup; that is what lets the writer reuse memory.
#[derive(Clone)]
pub struct Fib4Reader {
    tbl24: NonNull<AtomicU32>,
    tbl8: NonNull<AtomicU32>,
    _mem: Arc<Tables>,
}

// SAFETY: the pointers point into regions owned by `_mem` (kept alive by
// the Arc); every access through them is an atomic load.
unsafe impl Send for Fib4Reader {}
// SAFETY: as above; a shared reader only performs atomic loads.
unsafe impl Sync for Fib4Reader {}

impl fmt::Debug for Fib4Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib4Reader").field("tbl8_groups", &self._mem.groups).finish()
    }
}

impl fmt::Debug for Fib4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib4")
            .field("routes", &self.n_routes)
            .field("tbl8_in_use", &self.in_use)
            .field("tbl8_pending", &self.pending.len())
            .field("tbl8_groups", &self.mem.groups)
            .finish()
    }
}

fn check_prefix(prefix: u32, len: u8) -> Result<(), FibError> {
    if len > 32 {
        return Err(FibError::PrefixTooLong { len, max: 32 });
    }
    if prefix & !mask(len) != 0 {
        return Err(FibError::HostBitsSet { prefix: IpAddr::V4(Ipv4Addr::from(prefix)), len });
    }
    Ok(())
}

impl Fib4 {
    /// Maps the tables (64 MiB of tbl24 plus 1 KiB per tbl8 group, all
    /// pre-faulted). Reclamation waits for the readers of `rcu`.
    pub fn new(cfg: &Fib4Config, rcu: Rcu) -> Result<Fib4, FibError> {
        if cfg.tbl8_groups == 0 || cfg.tbl8_groups > MAX_TBL8_GROUPS {
            return Err(FibError::InvalidConfig { what: "tbl8_groups must be in 1..=2^24" });
        }
        let tbl24 = map_region(TBL24_ENTRIES * 4, cfg.hugepages)?;
        let tbl8 = map_region(cfg.tbl8_groups as usize * GROUP * 4, cfg.hugepages)?;
        if tbl24.len() < TBL24_ENTRIES * 4 || tbl8.len() < cfg.tbl8_groups as usize * GROUP * 4 {
            return Err(FibError::Memory { bytes: tbl24.len(), kind: std::io::ErrorKind::OutOfMemory });
        }
        Ok(Fib4 {
            mem: Arc::new(Tables { tbl24, tbl8, groups: cfg.tbl8_groups }),
            rcu,
            routes: (0..=32).map(|_| PrefixMap::default()).collect(),
            n_routes: 0,
            depth24: vec![0; TBL24_ENTRIES],
            depth8: Vec::new(),
            group_routes: Vec::new(),
            free: Vec::new(),
            pending: Vec::new(),
            fresh: 0,
            in_use: 0,
            synchronizes: 0,
            reclaimed: 0,
        })
    }

    /// A handle for a worker. Cheap; clone it freely.
    pub fn reader(&self) -> Fib4Reader {
        Fib4Reader { tbl24: self.mem.tbl24.base().cast(), tbl8: self.mem.tbl8.base().cast(), _mem: self.mem.clone() }
    }

    /// Adds a route, or replaces the next hop of an existing one (returned).
    ///
    /// Fails without changing anything on a bad prefix or next hop, or when
    /// the route needs a tbl8 group and none is free even after reclaiming
    /// the pending ones (which may wait for the readers: see the module doc).
    pub fn insert(&mut self, prefix: impl Into<u32>, len: u8, nh: u32) -> Result<Option<u32>, FibError> {
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
        if len <= 24 {
            let first = (prefix >> 8) as usize;
            for s in first..first + (1usize << (24 - len)) {
                let e = self.load24(s);
                if e & EXT != 0 {
                    self.fill8(e & VALUE, 0, GROUP, d, leaf(nh));
                } else if self.depth24[s] <= d {
                    self.depth24[s] = d;
                    self.store24(s, leaf(nh));
                }
            }
        } else {
            let s = (prefix >> 8) as usize;
            let e = self.load24(s);
            let (g, fresh) = if e & EXT != 0 {
                (e & VALUE, false)
            } else {
                // The only fallible step, taken before anything changes.
                let g = self.alloc_group()?;
                self.init_group(g, e, self.depth24[s]);
                (g, true)
            };
            self.fill8(g, (prefix & 0xff) as usize, 1 << (32 - len), d, leaf(nh));
            if old.is_none() {
                self.group_routes[g as usize] += 1;
            }
            if fresh {
                // The group is complete: link it (Release, see module doc).
                self.store24(s, EXT | g);
                self.in_use += 1;
            }
        }
        self.routes[usize::from(len)].insert(prefix, nh);
        if old.is_none() {
            self.n_routes += 1;
        }
        Ok(old)
    }

    /// Removes a route and returns its next hop. Addresses it covered fall
    /// to the longest shorter route covering them, or to no route.
    pub fn remove(&mut self, prefix: impl Into<u32>, len: u8) -> Result<u32, FibError> {
        let prefix = prefix.into();
        check_prefix(prefix, len)?;
        let Some(old) = self.routes[usize::from(len)].remove(&prefix) else {
            return Err(FibError::NotFound { prefix: IpAddr::V4(Ipv4Addr::from(prefix)), len });
        };
        self.n_routes -= 1;
        let (rv, rd) = self.covering(prefix, len);
        let d = len + 1;
        if len <= 24 {
            let first = (prefix >> 8) as usize;
            for s in first..first + (1usize << (24 - len)) {
                let e = self.load24(s);
                if e & EXT != 0 {
                    self.replace8(e & VALUE, 0, GROUP, d, rv, rd);
                } else if self.depth24[s] == d {
                    self.depth24[s] = rd;
                    self.store24(s, rv);
                }
            }
        } else {
            let s = (prefix >> 8) as usize;
            let e = self.load24(s);
            // Invariant: a /24 holding a route longer than /24 links a group.
            debug_assert!(e & EXT != 0, "route {prefix:#x}/{len} without its tbl8 group");
            if e & EXT != 0 {
                let g = e & VALUE;
                self.replace8(g, (prefix & 0xff) as usize, 1 << (32 - len), d, rv, rd);
                self.group_routes[g as usize] -= 1;
                if self.group_routes[g as usize] == 0 {
                    self.collapse(s, g);
                }
            }
        }
        Ok(old)
    }

    /// The next hop of exactly this route (not a longest-prefix match).
    pub fn get(&self, prefix: impl Into<u32>, len: u8) -> Option<u32> {
        self.routes.get(usize::from(len))?.get(&prefix.into()).copied()
    }

    /// Every route as `(prefix, len, next hop)`, in no particular order.
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        self.routes.iter().zip(0u8..).flat_map(|(m, len)| m.iter().map(move |(&p, &nh)| (Ipv4Addr::from(p), len, nh)))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.n_routes
    }

    pub fn is_empty(&self) -> bool {
        self.n_routes == 0
    }

    /// Longest-prefix match from the control side (same tables as readers).
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        self.reader().lookup(addr)
    }

    /// Groups linked from tbl24 now.
    pub fn tbl8_in_use(&self) -> u32 {
        self.in_use
    }

    /// Collapsed groups waiting for a grace period before reuse.
    pub fn tbl8_pending(&self) -> usize {
        self.pending.len()
    }

    /// Size of the tbl8 pool.
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

    /// Bytes of lookup table the current routes use: tbl24 plus the tbl8
    /// groups in use (what a worker's lookups can touch).
    pub fn table_bytes(&self) -> usize {
        TBL24_ENTRIES * 4 + self.in_use as usize * GROUP * 4
    }

    /// Bytes this FIB holds: both mapped regions (the whole tbl8 pool,
    /// mapped up front), the writer's shadow arrays, and an estimate of its
    /// route maps.
    pub fn memory_bytes(&self) -> usize {
        let maps: usize = self.routes.iter().map(|m| m.capacity() * (4 + 4 + 1)).sum();
        self.mem.tbl24.len()
            + self.mem.tbl8.len()
            + self.depth24.capacity()
            + self.depth8.capacity() * GROUP
            + self.group_routes.capacity() * 4
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
    //
    // Indexing below cannot panic: a tbl24 index is an address's top 24
    // bits (< 2^24), and every group index the writer handles came from
    // `alloc_group` (< groups, with its `depth8`/`group_routes` slots).

    #[inline]
    fn load24(&self, s: usize) -> u32 {
        // The writer reads back its own stores: Relaxed is enough.
        self.mem.tbl24()[s].load(Ordering::Relaxed)
    }

    #[inline]
    fn store24(&self, s: usize, v: u32) {
        self.mem.tbl24()[s].store(v, Ordering::Release);
    }

    /// The route that takes over when `prefix/len` goes: the longest one
    /// shorter than `len` covering it, as (entry, depth).
    fn covering(&self, prefix: u32, len: u8) -> (u32, Depth) {
        for l in (0..len).rev() {
            if let Some(&nh) = self.routes[usize::from(l)].get(&(prefix & mask(l))) {
                return (leaf(nh), l + 1);
            }
        }
        (0, 0)
    }

    /// Writes `v` at depth `d` into entries `off..off+n` of group `g`
    /// whose route is not longer.
    fn fill8(&mut self, g: u32, off: usize, n: usize, d: Depth, v: u32) {
        let base = g as usize * GROUP;
        let tbl8 = &self.mem.tbl8()[base + off..base + off + n];
        let depth = &mut self.depth8[g as usize][off..off + n];
        for (e, dd) in tbl8.iter().zip(depth) {
            if *dd <= d {
                *dd = d;
                e.store(v, Ordering::Release);
            }
        }
    }

    /// Hands the entries of `off..off+n` in group `g` written by the route
    /// at depth `d` to (`v`, `rd`).
    fn replace8(&mut self, g: u32, off: usize, n: usize, d: Depth, v: u32, rd: Depth) {
        let base = g as usize * GROUP;
        let tbl8 = &self.mem.tbl8()[base + off..base + off + n];
        let depth = &mut self.depth8[g as usize][off..off + n];
        for (e, dd) in tbl8.iter().zip(depth) {
            if *dd == d {
                *dd = rd;
                e.store(v, Ordering::Release);
            }
        }
    }

    /// Fills an unlinked group with the /24's current entry. No reader can
    /// see the group yet, so plain (Relaxed) stores suffice: the Release
    /// store that links it publishes them.
    fn init_group(&mut self, g: u32, e: u32, d: Depth) {
        let base = g as usize * GROUP;
        for x in &self.mem.tbl8()[base..base + GROUP] {
            x.store(e, Ordering::Relaxed);
        }
        self.depth8[g as usize] = [d; GROUP];
        self.group_routes[g as usize] = 0;
    }

    /// The last route longer than /24 left group `g` (linked from tbl24
    /// entry `s`): every entry now holds the same /24-or-shorter route.
    /// Store it in tbl24, then queue the group for reclamation.
    fn collapse(&mut self, s: usize, g: u32) {
        let base = g as usize * GROUP;
        let v = self.mem.tbl8()[base].load(Ordering::Relaxed);
        let d = self.depth8[g as usize][0];
        debug_assert!(
            self.mem.tbl8()[base..base + GROUP].iter().all(|e| e.load(Ordering::Relaxed) == v)
                && self.depth8[g as usize].iter().all(|&x| x == d),
            "collapsing a non-uniform group"
        );
        self.depth24[s] = d;
        self.store24(s, v);
        self.in_use -= 1;
        self.pending.push(g);
    }

    fn alloc_group(&mut self) -> Result<u32, FibError> {
        if let Some(g) = self.free.pop() {
            return Ok(g);
        }
        if self.fresh < self.mem.groups {
            let g = self.fresh;
            self.fresh += 1;
            self.depth8.push([0; GROUP]);
            self.group_routes.push(0);
            return Ok(g);
        }
        if self.reclaim() > 0 {
            if let Some(g) = self.free.pop() {
                return Ok(g);
            }
        }
        Err(FibError::OutOfTbl8 { groups: self.mem.groups })
    }
}

impl Fib4Reader {
    /// Longest-prefix match for `addr` (host byte order).
    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        let e = self.load24(addr);
        let e = if e & EXT != 0 { self.load8(e, addr) } else { e };
        if e & VALID != 0 {
            Some(e & VALUE)
        } else {
            None
        }
    }

    /// Looks up `addrs[i]` into `out[i]` (next-hop index, or [`NO_ROUTE`])
    /// for `i < min(addrs.len(), out.len())`.
    ///
    /// Works on vectors of 64 addresses, in four steps that keep as many
    /// cache misses in flight as the core allows:
    ///
    /// 1. prefetch the tbl24 line of every address;
    /// 2. read the 64 tbl24 entries in a loop that does nothing else (so
    ///    the reorder buffer holds as many outstanding loads as possible);
    /// 3. with SSE2, four entries at a time, turn them into results and
    ///    collect a bitmap of those that link a tbl8 group;
    /// 4. read the tbl8 entry of each set bit; these loads are independent
    ///    of one another, so they overlap too.
    ///
    /// The only branches that depend on table contents are the loop over
    /// the (few) set bits of the bitmap. On the 2-vCPU EPYC VM this was
    /// written on (every lookup misses to DRAM, ~450 cycles; the core keeps
    /// a few dozen misses in flight) the cost is set by how many tbl24
    /// misses overlap and by the one extra round trip the tbl8 reads add.
    /// Against the `rte_lpm` loop (load, branch on the extended bit, second
    /// load, per address) and variants that prefetch a fixed distance ahead,
    /// prefetch the tbl8 lines, compact indices instead of a bitmap, split
    /// the vector into 8/16/32, or use AVX2 gathers, this was the fastest
    /// at 100k and 1M routes. `tests/bench/lpm_vs_dpdk.sh` measures it next
    /// to DPDK.
    #[inline]
    pub fn lookup_bulk(&self, addrs: &[u32], out: &mut [u32]) {
        let n = addrs.len().min(out.len());
        for (a, o) in addrs[..n].chunks(CHUNK).zip(out[..n].chunks_mut(CHUNK)) {
            self.bulk_chunk(a, o);
        }
    }

    /// One vector: `addrs.len() == out.len() <= CHUNK`.
    #[inline(always)]
    fn bulk_chunk(&self, addrs: &[u32], out: &mut [u32]) {
        for &a in addrs {
            prefetch(self.tbl24_slot(a));
        }
        let mut raw = [0u32; CHUNK];
        for (&a, r) in addrs.iter().zip(raw.iter_mut()) {
            *r = self.load24(a);
        }
        let n = addrs.len().min(out.len()).min(CHUNK);
        let mut ext = resolve_all(&raw[..n], &mut out[..n]);
        while ext != 0 {
            let i = ext.trailing_zeros() as usize;
            ext &= ext - 1;
            if let (Some(o), Some(&a), Some(&e)) = (out.get_mut(i), addrs.get(i), raw.get(i)) {
                *o = resolve(self.load8(e, a));
            }
        }
    }

    #[inline(always)]
    fn tbl24_slot(&self, addr: u32) -> *const AtomicU32 {
        // `addr >> 8 < 2^24`: in bounds of tbl24 (wrapping_add: no UB even
        // if it were not; we never dereference out of bounds).
        self.tbl24.as_ptr().wrapping_add((addr >> 8) as usize)
    }

    #[inline(always)]
    fn tbl8_slot(&self, e: u32, addr: u32) -> *const AtomicU32 {
        self.tbl8.as_ptr().wrapping_add(((e & VALUE) as usize) << 8 | (addr & 0xff) as usize)
    }

    #[inline(always)]
    fn load24(&self, addr: u32) -> u32 {
        // SAFETY: tbl24 has 2^24 entries and `addr >> 8 < 2^24`; the memory
        // lives as long as `_mem`. Acquire: see the module doc.
        unsafe { (*self.tbl24_slot(addr)).load(Ordering::Acquire) }
    }

    /// Reads the tbl8 entry for `addr` in the group that tbl24 entry `e`
    /// (with EXT set) links.
    #[inline(always)]
    fn load8(&self, e: u32, addr: u32) -> u32 {
        // SAFETY: the writer only stores EXT entries whose value is a group
        // index below `groups`, so the index is below `groups * 256`, the
        // length of tbl8; the memory lives as long as `_mem`. Relaxed: see
        // the module doc.
        unsafe { (*self.tbl8_slot(e, addr)).load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().expect("literal address"))
    }

    fn fib(groups: u32) -> Fib4 {
        Fib4::new(&Fib4Config { tbl8_groups: groups, hugepages: HugepagePolicy::Never }, Rcu::new()).expect("fib")
    }

    #[test]
    fn empty_table_has_no_routes() {
        let f = fib(4);
        let r = f.reader();
        assert_eq!(r.lookup(0), None);
        assert_eq!(r.lookup(u32::MAX), None);
        let mut out = [0; 3];
        r.lookup_bulk(&[1, 2, 3], &mut out);
        assert_eq!(out, [NO_ROUTE; 3]);
        assert!(f.is_empty());
    }

    #[test]
    fn longest_prefix_wins_across_both_levels() {
        let mut f = fib(4);
        let r = f.reader();
        f.insert(a("0.0.0.0"), 0, 1).expect("default");
        f.insert(a("10.0.0.0"), 8, 2).expect("/8");
        f.insert(a("10.1.2.0"), 24, 3).expect("/24");
        f.insert(a("10.1.2.128"), 25, 4).expect("/25");
        f.insert(a("10.1.2.200"), 32, 5).expect("/32");
        assert_eq!(r.lookup(a("11.0.0.0")), Some(1));
        assert_eq!(r.lookup(a("10.9.9.9")), Some(2));
        assert_eq!(r.lookup(a("10.1.2.127")), Some(3));
        assert_eq!(r.lookup(a("10.1.2.128")), Some(4));
        assert_eq!(r.lookup(a("10.1.2.200")), Some(5));
        assert_eq!(r.lookup(a("10.1.2.201")), Some(4));
        assert_eq!(f.tbl8_in_use(), 1);
        assert_eq!(f.len(), 5);
        // A shorter route inserted later does not hide longer ones.
        f.insert(a("10.1.0.0"), 16, 6).expect("/16");
        assert_eq!(r.lookup(a("10.1.2.127")), Some(3));
        assert_eq!(r.lookup(a("10.1.2.200")), Some(5));
        assert_eq!(r.lookup(a("10.1.3.0")), Some(6));
        // Replacing the default route reaches entries inside the group too.
        f.insert(a("10.1.2.0"), 24, 7).expect("replace");
        assert_eq!(r.lookup(a("10.1.2.0")), Some(7));
        assert_eq!(f.get(a("10.1.2.0"), 24), Some(7));
    }

    #[test]
    fn delete_hands_over_to_the_covering_route_and_collapses_groups() {
        let mut f = fib(2);
        let r = f.reader();
        f.insert(a("192.168.0.0"), 16, 1).expect("/16");
        f.insert(a("192.168.1.0"), 26, 2).expect("/26");
        f.insert(a("192.168.1.64"), 26, 3).expect("/26");
        assert_eq!(f.tbl8_in_use(), 1);
        // Remove the covering route under the more-specifics.
        assert_eq!(f.remove(a("192.168.0.0"), 16), Ok(1));
        assert_eq!(r.lookup(a("192.168.1.1")), Some(2));
        assert_eq!(r.lookup(a("192.168.1.200")), None);
        assert_eq!(r.lookup(a("192.168.2.0")), None);
        f.insert(a("192.168.0.0"), 16, 4).expect("re-insert");
        assert_eq!(r.lookup(a("192.168.1.200")), Some(4));
        assert_eq!(f.remove(a("192.168.1.0"), 26), Ok(2));
        assert_eq!(r.lookup(a("192.168.1.1")), Some(4));
        assert_eq!(f.tbl8_in_use(), 1);
        assert_eq!(f.remove(a("192.168.1.64"), 26), Ok(3));
        // Collapsed: the group waits for a grace period, then is poisoned.
        assert_eq!((f.tbl8_in_use(), f.tbl8_pending()), (0, 1));
        assert_eq!(r.lookup(a("192.168.1.65")), Some(4));
        assert_eq!(f.reclaim(), 1);
        assert_eq!(f.tbl8_pending(), 0);
        assert!(f.mem.tbl8()[..GROUP].iter().all(|e| e.load(Ordering::Relaxed) == POISON));
        assert_eq!(r.lookup(a("192.168.1.65")), Some(4));
        assert_eq!(
            f.remove(a("192.168.1.64"), 26),
            Err(FibError::NotFound { prefix: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 64)), len: 26 })
        );
    }

    #[test]
    fn host_route_and_full_length_edges() {
        let mut f = fib(2);
        let r = f.reader();
        f.insert(a("255.255.255.255"), 32, 9).expect("/32");
        f.insert(a("0.0.0.0"), 32, 8).expect("/32");
        f.insert(a("128.0.0.0"), 1, 7).expect("/1");
        assert_eq!(r.lookup(u32::MAX), Some(9));
        assert_eq!(r.lookup(u32::MAX - 1), Some(7));
        assert_eq!(r.lookup(0), Some(8));
        assert_eq!(r.lookup(1), None);
        assert_eq!(f.insert(a("1.0.0.0"), 8, MAX_NEXT_HOP), Ok(None));
        assert_eq!(r.lookup(a("1.2.3.4")), Some(MAX_NEXT_HOP));
    }

    #[test]
    fn invalid_updates_are_refused() {
        let mut f = fib(1);
        assert_eq!(f.insert(0u32, 33, 1), Err(FibError::PrefixTooLong { len: 33, max: 32 }));
        assert_eq!(
            f.insert(a("10.1.2.3"), 16, 1),
            Err(FibError::HostBitsSet { prefix: "10.1.2.3".parse().expect("a"), len: 16 })
        );
        assert_eq!(
            f.insert(0u32, 0, MAX_NEXT_HOP + 1),
            Err(FibError::NextHopOutOfRange { nh: POISON_NEXT_HOP, max: MAX_NEXT_HOP })
        );
        assert!(matches!(
            Fib4::new(&Fib4Config { tbl8_groups: 0, ..Default::default() }, Rcu::new()),
            Err(FibError::InvalidConfig { .. })
        ));
        assert!(f.is_empty());
        let e = FibError::OutOfTbl8 { groups: 1 }.to_string();
        assert!(e.contains("resource exhausted"), "{e}");
    }

    #[test]
    fn out_of_groups_changes_nothing() {
        let mut f = fib(1);
        let r = f.reader();
        f.insert(a("10.0.0.0"), 8, 1).expect("/8");
        f.insert(a("10.0.0.0"), 25, 2).expect("first group");
        assert_eq!(f.insert(a("10.0.1.0"), 25, 3), Err(FibError::OutOfTbl8 { groups: 1 }));
        assert_eq!(r.lookup(a("10.0.1.0")), Some(1));
        assert_eq!(f.len(), 2);
        assert_eq!(f.get(a("10.0.1.0"), 25), None);
        // A second route in an existing group needs no new group.
        f.insert(a("10.0.0.128"), 25, 4).expect("same group");
        f.remove(a("10.0.0.0"), 25).expect("rm");
        f.remove(a("10.0.0.128"), 25).expect("rm");
        assert_eq!(f.tbl8_pending(), 1);
        // The insert reclaims the pending group itself (no readers: no wait).
        f.insert(a("10.0.1.0"), 25, 3).expect("reuses the group");
        assert_eq!(f.synchronizes(), 1);
        assert_eq!(r.lookup(a("10.0.1.0")), Some(3));
        assert_eq!(r.lookup(a("10.0.0.0")), Some(1));
    }

    #[test]
    fn bulk_equals_single_on_mixed_entries() {
        let mut f = fib(8);
        let r = f.reader();
        for i in 0..8u32 {
            f.insert(a("10.0.0.0") | (i << 8) | 0x80, 25, i).expect("/25");
        }
        f.insert(a("10.0.0.0"), 16, 100).expect("/16");
        let addrs: Vec<u32> = (0..1000u32).map(|i| a("10.0.0.0").wrapping_add(i.wrapping_mul(37))).collect();
        let mut out = vec![0; addrs.len() + 5];
        r.lookup_bulk(&addrs, &mut out);
        for (x, o) in addrs.iter().zip(&out) {
            assert_eq!(r.lookup(*x).unwrap_or(NO_ROUTE), *o, "{x:#x}");
        }
        assert_eq!(out[addrs.len()..], [0; 5], "only min(len) outputs are written");
    }

    #[test]
    fn memory_accounting() {
        let mut f = fib(4);
        assert_eq!(f.table_bytes(), 64 << 20);
        f.insert(a("1.1.1.1"), 32, 1).expect("/32");
        assert_eq!(f.table_bytes(), (64 << 20) + 1024);
        assert!(f.memory_bytes() >= (64 << 20) + 4 * 1024 + (16 << 20));
        assert_eq!(f.routes().collect::<Vec<_>>(), vec![(Ipv4Addr::new(1, 1, 1, 1), 32, 1)]);
    }
}
