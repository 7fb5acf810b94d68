//! Per-queue page pools for packet buffers.
//!
//! Modelled on the Linux `page_pool` that the MANA driver adopted in 2023
//! (one pool per RX queue, see MANA.md §7):
//!
//! - All buffers are carved out of one [`MemRegion`] allocated when the pool
//!   is created (2 MiB hugepages when available), so a device can register
//!   the whole pool once. A buffer's slot is a 64-byte metadata header
//!   followed by `buf_size` bytes (headroom + data room).
//! - The **owner** — the worker thread that polls the queue, bound with
//!   [`PagePool::bind_current_thread`] — allocates from and recycles into a
//!   small lock-free **cache** that no other thread touches (no atomics).
//! - Every other thread returns buffers through a bounded MPMC **return
//!   ring**. The ring is sized to hold every buffer of the pool, so a return
//!   can never fail. When the cache runs dry the owner refills it from the
//!   ring in bulk (a *slow* allocation); when the cache is full a recycle
//!   spills half of it to the ring.
//! - Each buffer's header points back to its pool (the `from_pool` idea), so
//!   dropping a [`Pkt`] anywhere returns it to where it came from: directly
//!   when dropped on the owning thread, through the ring otherwise.
//!
//! A pool is destroyed when its last [`PagePool`] handle goes; if buffers
//! are still out at that moment the memory is deliberately leaked (and
//! counted in [`leaked_pools`]) rather than freed under live packets.

use crate::buf::{Pkt, PktMeta, META_SIZE};
use crate::counter::{Counter, SharedCounter};
use crate::region::{HugepagePolicy, MemRegion, PageKind};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Pool parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Name shown in stats (e.g. `p0/rx0`).
    pub name: String,
    /// Number of buffers.
    pub buffers: u32,
    /// Bytes per buffer after the metadata header: headroom + data room.
    pub buf_size: u16,
    /// Headroom reserved in front of received data (for encapsulation).
    pub headroom: u16,
    /// Owner cache capacity (Linux page_pool: 128).
    pub cache_size: u32,
    /// Buffers moved from the ring to the cache per refill (Linux: 64).
    pub refill: u32,
    /// Page size policy for the backing memory.
    pub hugepages: HugepagePolicy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: String::from("pool"),
            buffers: 4096,
            buf_size: 2048,
            headroom: 128,
            cache_size: 128,
            refill: 64,
            hugepages: HugepagePolicy::Prefer,
        }
    }
}

/// Why a pool could not be created or (un)bound.
#[derive(Debug)]
pub enum PoolError {
    /// A parameter is out of range; the string says which.
    InvalidConfig(&'static str),
    /// The backing memory could not be mapped.
    NoMemory(std::io::Error),
    /// Another thread owns the pool.
    OwnedByAnotherThread,
    /// The calling thread does not own the pool.
    NotOwner,
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::InvalidConfig(s) => write!(f, "invalid pool config: {s}"),
            PoolError::NoMemory(e) => write!(f, "cannot allocate pool memory: {e}"),
            PoolError::OwnedByAnotherThread => write!(f, "pool is owned by another thread"),
            PoolError::NotOwner => write!(f, "calling thread does not own the pool"),
        }
    }
}

impl std::error::Error for PoolError {}

/// A snapshot of a pool's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub name: String,
    pub buffers: u32,
    pub buf_size: u16,
    pub hugepages: bool,
    /// Allocations served from the owner cache.
    pub fast_allocs: u64,
    /// Allocations that had to go to the return ring (cache refill, or a
    /// non-owner allocation).
    pub slow_allocs: u64,
    /// Buffers recycled into the owner cache on the owning thread.
    pub recycle_direct: u64,
    /// Buffers returned through the ring from another thread.
    pub recycle_ring: u64,
    /// Allocations that failed because the pool was empty.
    pub empty: u64,
    /// Buffers currently out of the pool.
    pub in_use: u64,
}

/// Index stored in the header of a heap-allocated buffer.
const HEAP_INDEX: u32 = u32::MAX;

static NEXT_TOKEN: AtomicU32 = AtomicU32::new(1);
static LEAKED_POOLS: SharedCounter = SharedCounter::new();

thread_local! {
    static TOKEN: Cell<u32> = const { Cell::new(0) };
}

/// A small nonzero id for the calling thread, never reused.
#[inline(always)]
fn thread_token() -> u32 {
    TOKEN.with(|t| {
        let v = t.get();
        if v != 0 {
            v
        } else {
            let n = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            t.set(n);
            n
        }
    })
}

/// Pools destroyed while buffers were still out (their memory was leaked).
pub fn leaked_pools() -> u64 {
    LEAKED_POOLS.get()
}

/// The owner-only cache: a stack of buffer indices.
struct Cache {
    idx: Box<[u32]>,
    len: usize,
}

/// Fields written on the owner's fast path, on their own cache line.
struct OwnerSide {
    cache: UnsafeCell<Cache>,
    fast_allocs: Counter,
    recycle_direct: Counter,
}

/// Fields written by any thread (slow paths only).
struct RemoteSide {
    slow_allocs: SharedCounter,
    recycle_ring: SharedCounter,
    empty: SharedCounter,
}

pub(crate) struct PoolShared {
    // Read-mostly fields first.
    owner: AtomicU32,
    base: NonNull<u8>,
    slot_size: usize,
    count: u32,
    buf_size: u16,
    headroom: u16,
    refill: u32,
    pub(crate) region: MemRegion,
    /// Comparison variant: every buffer comes from the global allocator.
    heap: bool,
    name: String,
    hot: CachePadded<OwnerSide>,
    remote: CachePadded<RemoteSide>,
    ring: ArrayQueue<u32>,
}

// SAFETY: the owner cache (the only non-Sync field) is touched only by the
// thread whose token is in `owner`, as every access below checks; the rest
// is atomics, immutable data, or the Sync ArrayQueue.
unsafe impl Sync for PoolShared {}
// SAFETY: as above; the raw base pointer is into `region`, owned here.
unsafe impl Send for PoolShared {}

impl PoolShared {
    #[inline(always)]
    fn is_owner(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_token()
    }

    #[inline(always)]
    fn meta_ptr(&self, idx: u32) -> NonNull<PktMeta> {
        // SAFETY: idx < count (indices only come from this pool's cache and
        // ring), so the offset stays inside `region`.
        unsafe { NonNull::new_unchecked(self.base.as_ptr().add(idx as usize * self.slot_size).cast()) }
    }

    #[inline(always)]
    fn make_pkt(&self, idx: u32) -> Pkt {
        let meta = self.meta_ptr(idx);
        // SAFETY: the buffer was free (in the cache or ring), so nothing else
        // references it; reset() touches only the header.
        unsafe { (*meta.as_ptr()).reset(self.headroom) };
        // SAFETY: the buffer is now exclusively owned by the new Pkt.
        unsafe { Pkt::from_meta(meta) }
    }

    /// Owner only: moves up to `self.refill` buffers from the ring into the cache.
    #[inline(never)]
    fn refill_cache(&self, cache: &mut Cache) -> usize {
        let want = (self.refill as usize).min(cache.idx.len() - cache.len);
        let mut n = 0;
        while n < want {
            match self.ring.pop() {
                Some(i) => {
                    cache.idx[cache.len] = i;
                    cache.len += 1;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Owner only: moves half of a full cache into the ring.
    #[inline(never)]
    fn spill_cache(&self, cache: &mut Cache) {
        let keep = cache.len / 2;
        for k in keep..cache.len {
            // Cannot fail: the ring holds every buffer of the pool.
            let _ = self.ring.push(cache.idx[k]);
        }
        cache.len = keep;
    }

    /// The memory buffers live in: the region, or everything for a heap pool.
    pub(crate) fn span(&self) -> (usize, usize) {
        if self.heap {
            (0, usize::MAX)
        } else {
            (self.region.base().as_ptr() as usize, self.region.len())
        }
    }

    #[inline(never)]
    fn alloc_heap(&self) -> Option<Pkt> {
        let Ok(layout) = std::alloc::Layout::from_size_align(self.slot_size, 64) else { return None };
        // SAFETY: the layout has a nonzero size (META_SIZE + buf_size).
        let p = unsafe { std::alloc::alloc(layout) };
        let Some(meta) = NonNull::new(p.cast::<PktMeta>()) else {
            self.remote.empty.inc();
            return None;
        };
        // SAFETY: a fresh allocation of slot_size bytes, owned here.
        unsafe { PktMeta::init(meta, self, HEAP_INDEX, self.buf_size) };
        if self.is_owner() {
            self.hot.fast_allocs.inc();
        } else {
            self.remote.slow_allocs.inc();
        }
        // SAFETY: the buffer is exclusively owned by the new Pkt.
        let mut pkt = unsafe { Pkt::from_meta(meta) };
        pkt.reset_meta(self.headroom);
        Some(pkt)
    }

    #[inline]
    pub(crate) fn alloc(&self) -> Option<Pkt> {
        if self.heap {
            return self.alloc_heap();
        }
        if self.is_owner() {
            // SAFETY: only the owner thread reaches here, and it never holds
            // another reference to the cache across this call.
            let cache = unsafe { &mut *self.hot.cache.get() };
            if cache.len > 0 {
                cache.len -= 1;
                let i = cache.idx[cache.len];
                self.hot.fast_allocs.inc();
                return Some(self.make_pkt(i));
            }
            if self.refill_cache(cache) == 0 {
                self.remote.empty.inc();
                return None;
            }
            cache.len -= 1;
            let i = cache.idx[cache.len];
            self.remote.slow_allocs.inc();
            Some(self.make_pkt(i))
        } else {
            match self.ring.pop() {
                Some(i) => {
                    self.remote.slow_allocs.inc();
                    Some(self.make_pkt(i))
                }
                None => {
                    self.remote.empty.inc();
                    None
                }
            }
        }
    }

    /// Returns a buffer to this pool.
    ///
    /// # Safety
    /// `idx` must be a buffer of this pool that is out of the pool, and the
    /// caller must give up every reference to it.
    #[inline]
    pub(crate) unsafe fn free(&self, idx: u32, meta: NonNull<PktMeta>) {
        if idx == HEAP_INDEX {
            if self.is_owner() {
                self.hot.recycle_direct.inc();
            } else {
                self.remote.recycle_ring.inc();
            }
            // SAFETY: heap buffers were allocated in alloc_heap with this
            // layout, and the caller gives the buffer up.
            unsafe {
                std::alloc::dealloc(
                    meta.as_ptr().cast(),
                    std::alloc::Layout::from_size_align_unchecked(self.slot_size, 64),
                )
            };
            return;
        }
        if self.is_owner() {
            // SAFETY: owner thread only (checked above).
            let cache = unsafe { &mut *self.hot.cache.get() };
            if cache.len == cache.idx.len() {
                self.spill_cache(cache);
            }
            cache.idx[cache.len] = idx;
            cache.len += 1;
            self.hot.recycle_direct.inc();
        } else {
            // Cannot fail: the ring holds every buffer of the pool. Counted
            // after the push so in_use() == 0 implies every push is complete.
            let _ = self.ring.push(idx);
            self.remote.recycle_ring.inc();
        }
    }

    fn in_use(&self) -> u64 {
        // Read frees before allocs: a concurrent alloc+free can then only
        // make the result larger, never falsely zero.
        let freed = self.hot.recycle_direct.get() + self.remote.recycle_ring.get();
        let allocs = self.hot.fast_allocs.get() + self.remote.slow_allocs.get();
        allocs.saturating_sub(freed)
    }
}

struct PoolOwner(NonNull<PoolShared>);

// SAFETY: PoolShared is Send + Sync; PoolOwner is only a pointer to it.
unsafe impl Send for PoolOwner {}
// SAFETY: as above.
unsafe impl Sync for PoolOwner {}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        // SAFETY: the pointer came from Box::into_raw and is freed only here.
        let shared = unsafe { self.0.as_ref() };
        if shared.in_use() == 0 {
            // SAFETY: no handle and no buffer refers to the pool any more.
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        } else {
            // Buffers are still out and point at this pool: keep its memory
            // alive for them rather than free it under them.
            LEAKED_POOLS.inc();
        }
    }
}

/// A handle to a page pool. Cheap to clone; the pool lives while any handle
/// does (and longer if buffers are still out, see the module docs).
#[derive(Clone)]
pub struct PagePool {
    inner: Arc<PoolOwner>,
}

impl fmt::Debug for PagePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagePool").field("stats", &self.stats()).finish()
    }
}

impl PagePool {
    /// Creates a pool, allocating and pre-faulting all of its memory now.
    pub fn new(cfg: &PoolConfig) -> Result<PagePool, PoolError> {
        Self::create(cfg, false)
    }

    /// A variant for comparison only: each allocation goes to the global
    /// allocator and each free gives the buffer back to it (what drivers
    /// did before page pools). Its memory is all of the address space
    /// (`memory()` is `(0, usize::MAX)`), as with a device-wide key.
    pub fn new_heap(cfg: &PoolConfig) -> Result<PagePool, PoolError> {
        Self::create(cfg, true)
    }

    fn create(cfg: &PoolConfig, heap: bool) -> Result<PagePool, PoolError> {
        if cfg.buffers == 0 {
            return Err(PoolError::InvalidConfig("buffers must be > 0"));
        }
        if cfg.buf_size < 256 {
            return Err(PoolError::InvalidConfig("buf_size must be >= 256"));
        }
        if cfg.headroom >= cfg.buf_size / 2 {
            return Err(PoolError::InvalidConfig("headroom must be < buf_size / 2"));
        }
        if cfg.cache_size == 0 || cfg.refill == 0 || cfg.refill > cfg.cache_size {
            return Err(PoolError::InvalidConfig("need 0 < refill <= cache_size"));
        }
        let slot_size = (META_SIZE + cfg.buf_size as usize).next_multiple_of(64);
        let total = slot_size.checked_mul(cfg.buffers as usize).ok_or(PoolError::InvalidConfig("pool too large"))?;
        let region =
            MemRegion::new(if heap { slot_size } else { total }, cfg.hugepages).map_err(PoolError::NoMemory)?;
        let base = region.base();
        let ring = ArrayQueue::new(cfg.buffers as usize);
        let shared = Box::new(PoolShared {
            owner: AtomicU32::new(0),
            base,
            slot_size,
            count: cfg.buffers,
            buf_size: cfg.buf_size,
            headroom: cfg.headroom,
            refill: cfg.refill,
            region,
            heap,
            name: cfg.name.clone(),
            hot: CachePadded::new(OwnerSide {
                cache: UnsafeCell::new(Cache { idx: vec![0u32; cfg.cache_size as usize].into_boxed_slice(), len: 0 }),
                fast_allocs: Counter::new(),
                recycle_direct: Counter::new(),
            }),
            remote: CachePadded::new(RemoteSide {
                slow_allocs: SharedCounter::new(),
                recycle_ring: SharedCounter::new(),
                empty: SharedCounter::new(),
            }),
            ring,
        });
        let ptr = NonNull::from(Box::leak(shared));
        // SAFETY: just created; no other reference exists yet.
        let s = unsafe { ptr.as_ref() };
        for i in 0..if heap { 0 } else { s.count } {
            // SAFETY: slot i is inside the region and not yet shared.
            unsafe { PktMeta::init(s.meta_ptr(i), ptr.as_ptr(), i, s.buf_size) };
            let _ = s.ring.push(i);
        }
        Ok(PagePool { inner: Arc::new(PoolOwner(ptr)) })
    }

    #[inline(always)]
    fn shared(&self) -> &PoolShared {
        // SAFETY: the PoolOwner keeps the PoolShared alive while we hold it.
        unsafe { self.inner.0.as_ref() }
    }

    /// Allocates a buffer; `None` when the pool is empty (counted).
    #[inline]
    pub fn alloc(&self) -> Option<Pkt> {
        self.shared().alloc()
    }

    /// Whether two handles name the same pool.
    pub fn ptr_eq(a: &PagePool, b: &PagePool) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// Makes the calling thread the pool's owner (its fast-path user).
    /// Binding again from the owner is a no-op.
    pub fn bind_current_thread(&self) -> Result<(), PoolError> {
        let me = thread_token();
        match self.shared().owner.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Ok(()),
            Err(cur) if cur == me => Ok(()),
            Err(_) => Err(PoolError::OwnedByAnotherThread),
        }
    }

    /// Gives up ownership: the cache is flushed into the ring so any thread
    /// can use every free buffer. Only the owner may call this.
    pub fn unbind(&self) -> Result<(), PoolError> {
        let s = self.shared();
        if !s.is_owner() {
            return Err(PoolError::NotOwner);
        }
        // SAFETY: we are the owner (checked above).
        let cache = unsafe { &mut *s.hot.cache.get() };
        for k in 0..cache.len {
            let _ = s.ring.push(cache.idx[k]);
        }
        cache.len = 0;
        s.owner.store(0, Ordering::Release);
        Ok(())
    }

    /// Whether the calling thread owns the pool.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.shared().is_owner()
    }

    /// Whether `pkt`'s buffer belongs to this pool.
    pub fn owns(&self, pkt: &Pkt) -> bool {
        std::ptr::eq(pkt.pool_ptr(), self.inner.0.as_ptr())
    }

    /// Buffers currently out of the pool.
    pub fn in_use(&self) -> u64 {
        self.shared().in_use()
    }

    /// Buffers sitting in the return ring (all free buffers once unbound).
    pub fn in_ring(&self) -> usize {
        self.shared().ring.len()
    }

    /// Number of buffers.
    pub fn capacity(&self) -> u32 {
        self.shared().count
    }

    /// Data bytes a buffer can hold after the headroom.
    pub fn data_room(&self) -> usize {
        let s = self.shared();
        (s.buf_size - s.headroom) as usize
    }

    /// The pool's memory as (base address, length), for device registration.
    pub fn memory(&self) -> (usize, usize) {
        self.shared().span()
    }

    /// Whether 2 MiB hugepages back the pool.
    pub fn hugepages(&self) -> bool {
        self.shared().region.page_kind() == PageKind::Huge2M
    }

    pub fn name(&self) -> &str {
        &self.shared().name
    }

    pub fn stats(&self) -> PoolStats {
        let s = self.shared();
        PoolStats {
            name: s.name.clone(),
            buffers: s.count,
            buf_size: s.buf_size,
            hugepages: self.hugepages(),
            fast_allocs: s.hot.fast_allocs.get(),
            slow_allocs: s.remote.slow_allocs.get(),
            recycle_direct: s.hot.recycle_direct.get(),
            recycle_ring: s.remote.recycle_ring.get(),
            empty: s.remote.empty.get(),
            in_use: s.in_use(),
        }
    }
}

/// Binds a pool to the current thread for the guard's lifetime.
pub struct PoolBinding {
    pool: PagePool,
}

impl PoolBinding {
    pub fn new(pool: &PagePool) -> Result<PoolBinding, PoolError> {
        pool.bind_current_thread()?;
        Ok(PoolBinding { pool: pool.clone() })
    }
}

impl Drop for PoolBinding {
    fn drop(&mut self) {
        let _ = self.pool.unbind();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: u32) -> PagePool {
        PagePool::new(&PoolConfig {
            name: "t".into(),
            buffers: n,
            buf_size: 512,
            headroom: 64,
            cache_size: 8,
            refill: 4,
            hugepages: HugepagePolicy::Never,
        })
        .expect("pool")
    }

    #[test]
    fn rejects_bad_configs() {
        for cfg in [
            PoolConfig { buffers: 0, ..Default::default() },
            PoolConfig { buf_size: 100, ..Default::default() },
            PoolConfig { headroom: 1024, ..Default::default() },
            PoolConfig { refill: 200, ..Default::default() },
        ] {
            assert!(matches!(PagePool::new(&cfg), Err(PoolError::InvalidConfig(_))));
        }
    }

    #[test]
    fn exhausts_counts_empty_and_recovers() {
        let p = small(16);
        p.bind_current_thread().expect("bind");
        let mut v: Vec<Pkt> = (0..16).map(|_| p.alloc().expect("buf")).collect();
        assert!(p.alloc().is_none());
        assert_eq!(p.stats().empty, 1);
        assert_eq!(p.in_use(), 16);
        // Distinct buffers.
        let mut addrs: Vec<usize> = v.iter().map(|b| b.data().as_ptr() as usize).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), 16);
        v.truncate(3);
        assert_eq!(p.in_use(), 3);
        drop(v);
        assert_eq!(p.in_use(), 0);
        let s = p.stats();
        assert_eq!(s.recycle_direct, 16);
        assert_eq!(s.recycle_ring, 0);
        assert_eq!(s.fast_allocs + s.slow_allocs, 16);
        p.unbind().expect("unbind");
        assert_eq!(p.in_ring(), 16);
    }

    #[test]
    fn owner_uses_cache_after_first_refill() {
        let p = small(64);
        p.bind_current_thread().expect("bind");
        for _ in 0..100 {
            let b = p.alloc().expect("buf");
            drop(b);
        }
        let s = p.stats();
        assert_eq!(s.slow_allocs, 1, "only the first alloc refills: {s:?}");
        assert_eq!(s.fast_allocs, 99);
        assert_eq!(s.recycle_direct, 100);
    }

    #[test]
    fn frees_from_another_thread_go_through_the_ring() {
        let p = small(32);
        p.bind_current_thread().expect("bind");
        let bufs: Vec<Pkt> = (0..10).map(|_| p.alloc().expect("buf")).collect();
        std::thread::spawn(move || drop(bufs)).join().expect("join");
        let s = p.stats();
        assert_eq!(s.recycle_ring, 10);
        assert_eq!(s.in_use, 0);
        // Another thread cannot bind or unbind while we own it.
        let p2 = p.clone();
        std::thread::spawn(move || {
            assert!(matches!(p2.bind_current_thread(), Err(PoolError::OwnedByAnotherThread)));
            assert!(matches!(p2.unbind(), Err(PoolError::NotOwner)));
            // A non-owner may still allocate, through the ring.
            assert!(p2.alloc().is_some());
        })
        .join()
        .expect("join");
        assert_eq!(p.in_use(), 0);
        p.unbind().expect("unbind");
        assert_eq!(p.in_ring(), 32);
    }

    #[test]
    fn cache_spills_when_full() {
        let p = small(64);
        p.bind_current_thread().expect("bind");
        let v: Vec<Pkt> = (0..40).map(|_| p.alloc().expect("buf")).collect();
        drop(v); // 40 direct recycles through an 8-entry cache
        assert_eq!(p.in_use(), 0);
        p.unbind().expect("unbind");
        assert_eq!(p.in_ring(), 64);
    }

    #[test]
    fn concurrent_owner_and_remote_frees_lose_nothing() {
        let p = small(256);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Pkt>(64);
        let owner = {
            let p = p.clone();
            std::thread::spawn(move || {
                let _b = PoolBinding::new(&p).expect("bind");
                let mut sent = 0;
                while sent < 50_000 {
                    if let Some(b) = p.alloc() {
                        if sent % 3 == 0 {
                            drop(b); // direct
                        } else {
                            tx.send(b).expect("send");
                        }
                        sent += 1;
                    }
                }
            })
        };
        let remote = std::thread::spawn(move || while rx.recv().is_ok() {});
        owner.join().expect("owner");
        remote.join().expect("remote");
        let s = p.stats();
        assert_eq!(s.in_use, 0, "{s:?}");
        assert_eq!(s.recycle_direct + s.recycle_ring, 50_000);
        assert_eq!(p.in_ring(), 256);
    }

    #[test]
    fn pool_dropped_with_buffers_out_stays_valid() {
        let before = leaked_pools();
        let p = small(4);
        let mut b = p.alloc().expect("buf");
        drop(p);
        assert_eq!(leaked_pools(), before + 1);
        // The buffer is still usable and its drop is safe.
        b.append(10).expect("room").fill(1);
        assert_eq!(b.data(), &[1u8; 10]);
        drop(b);
    }

    #[test]
    fn memory_covers_every_buffer() {
        let p = small(8);
        let (base, len) = p.memory();
        let v: Vec<Pkt> = (0..8).map(|_| p.alloc().expect("buf")).collect();
        for b in &v {
            let a = b.data().as_ptr() as usize;
            assert!(a >= base && a + p.data_room() <= base + len);
            assert!(p.owns(b));
        }
    }
}
