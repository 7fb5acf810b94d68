//! Quiescent-state-based reclamation (QSBR), for tables that workers read
//! without locks while the control side changes them in place.
//!
//! Each worker registers an [`RcuReader`] and calls
//! [`RcuReader::quiescent`] once per poll loop, at a point where it holds no
//! reference into any table. A writer that has unlinked a piece of memory
//! (so no *new* lookup can reach it) calls [`Rcu::synchronize`]: it returns
//! once every registered reader has passed a quiescent point after the
//! unlink, so no *old* lookup can still be using it either, and the memory
//! can be reused or freed. This is the scheme of DPDK's `rte_rcu_qsbr` and
//! of the Linux kernel's RCU for the data plane: readers pay one load and
//! one store per loop, never per packet.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A reader that is not reading (between loops, or stopped).
const OFFLINE: u64 = u64::MAX;

struct Slot {
    seen: CachePadded<AtomicU64>,
}

struct Inner {
    epoch: CachePadded<AtomicU64>,
    readers: Mutex<Vec<Arc<Slot>>>,
}

/// The writer side, shared by every table that uses it. Cheap to clone.
#[derive(Clone)]
pub struct Rcu {
    inner: Arc<Inner>,
}

impl Default for Rcu {
    fn default() -> Self {
        Self::new()
    }
}

/// One reader (a worker thread). Unregisters on drop.
pub struct RcuReader {
    slot: Arc<Slot>,
    inner: Arc<Inner>,
}

/// `synchronize` gave up waiting for a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RcuTimeout {
    pub waited: Duration,
}

impl std::fmt::Display for RcuTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a reader did not pass a quiescent point within {:?}", self.waited)
    }
}

impl std::error::Error for RcuTimeout {}

/// Locks a control-side mutex, recovering from poisoning: the data behind
/// these locks is only changed by methods that leave it consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The reader list stays consistent under any panic (push/retain only).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rcu {
    pub fn new() -> Rcu {
        Rcu { inner: Arc::new(Inner { epoch: CachePadded::new(AtomicU64::new(1)), readers: Mutex::new(Vec::new()) }) }
    }

    /// Registers a reader; it starts online at the current epoch.
    pub fn register(&self) -> RcuReader {
        let slot = Arc::new(Slot { seen: CachePadded::new(AtomicU64::new(self.inner.epoch.load(Ordering::SeqCst))) });
        lock(&self.inner.readers).push(slot.clone());
        RcuReader { slot, inner: self.inner.clone() }
    }

    /// Number of registered readers.
    pub fn readers(&self) -> usize {
        lock(&self.inner.readers).len()
    }

    /// Waits until every reader has been quiescent (or offline) since this
    /// call began. Call after unlinking memory and before reusing it.
    pub fn synchronize(&self) {
        // Without a deadline this cannot fail.
        let _ = self.synchronize_timeout(Duration::MAX);
    }

    /// As [`Rcu::synchronize`], but gives up after `limit` (a reader that
    /// is stuck: the caller must then keep the memory).
    pub fn synchronize_timeout(&self, limit: Duration) -> Result<(), RcuTimeout> {
        let target = self.inner.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let readers: Vec<Arc<Slot>> = lock(&self.inner.readers).clone();
        let start = Instant::now();
        let mut spins = 0u32;
        for r in &readers {
            loop {
                let s = r.seen.load(Ordering::SeqCst);
                if s >= target {
                    break; // quiescent since (OFFLINE is u64::MAX)
                }
                if start.elapsed() > limit {
                    return Err(RcuTimeout { waited: start.elapsed() });
                }
                spins += 1;
                if spins < 1000 {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        Ok(())
    }
}

impl RcuReader {
    /// Declares that this thread holds no reference into RCU-protected
    /// memory right now. Call once per poll loop.
    #[inline]
    pub fn quiescent(&self) {
        self.slot.seen.store(self.inner.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Marks the reader offline (e.g. before sleeping): writers stop waiting
    /// for it until [`RcuReader::online`].
    #[inline]
    pub fn offline(&self) {
        self.slot.seen.store(OFFLINE, Ordering::SeqCst);
    }

    /// Back online; the thread may read again after this returns.
    #[inline]
    pub fn online(&self) {
        self.quiescent();
    }
}

impl Drop for RcuReader {
    fn drop(&mut self) {
        self.offline();
        lock(&self.inner.readers).retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicPtr};

    #[test]
    fn synchronize_waits_for_a_reader_in_its_critical_section() {
        let rcu = Rcu::new();
        let r = rcu.register();
        // The reader has not been quiescent since: synchronize must wait.
        assert!(rcu.synchronize_timeout(Duration::from_millis(50)).is_err());
        r.quiescent();
        // Quiescent before the call started does not count...
        assert!(rcu.synchronize_timeout(Duration::from_millis(50)).is_err());
        // ...offline does.
        r.offline();
        assert!(rcu.synchronize_timeout(Duration::from_millis(50)).is_ok());
        r.online();
        drop(r);
        assert_eq!(rcu.readers(), 0);
        rcu.synchronize();
    }

    /// Readers chase a pointer that a writer swaps and frees after
    /// synchronize: a reader never sees freed (poisoned) memory.
    #[test]
    fn freed_memory_is_never_read() {
        let rcu = Rcu::new();
        let ptr = Arc::new(AtomicPtr::new(Box::into_raw(Box::new([7u64; 8]))));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (r, ptr, stop) = (rcu.register(), ptr.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..16 {
                            let p = ptr.load(Ordering::Acquire);
                            // SAFETY: p is only freed after a synchronize
                            // that waits for our next quiescent().
                            let v = unsafe { (*p)[reads as usize % 8] };
                            assert_eq!(v, 7, "read freed memory");
                            reads += 1;
                        }
                        r.quiescent();
                    }
                    reads
                })
            })
            .collect();
        for _ in 0..2000 {
            let new = Box::into_raw(Box::new([7u64; 8]));
            let old = ptr.swap(new, Ordering::AcqRel);
            rcu.synchronize();
            // SAFETY: unlinked and every reader has been quiescent since.
            unsafe {
                (*old) = [0xdead; 8];
                drop(Box::from_raw(old));
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().expect("reader") > 0);
        }
        // SAFETY: all readers are gone.
        drop(unsafe { Box::from_raw(ptr.load(Ordering::Acquire)) });
    }
}
