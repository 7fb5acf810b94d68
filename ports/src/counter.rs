//! Counters for the fast path.
//!
//! Fast-path counters have exactly one writer (the worker or queue owner)
//! and any number of readers (stats, control plane). A single-writer counter
//! is updated with a relaxed load and a relaxed store, which compiles to a
//! plain memory add on x86 — no locked instruction, no shared cache line
//! contention between writers — while readers still see a torn-free value.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter with one writer. Calling [`Counter::add`] from two threads at
/// once loses updates (never memory safety); use [`SharedCounter`] there.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds `n`. Only the counter's single writer may call this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn inc(&self) {
        self.add(1)
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter written from several threads (slow paths only).
#[derive(Debug, Default)]
pub struct SharedCounter(AtomicU64);

impl SharedCounter {
    pub const fn new() -> Self {
        SharedCounter(AtomicU64::new(0))
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_writer_counter_adds() {
        let c = Counter::new();
        c.add(5);
        c.inc();
        assert_eq!(c.get(), 6);
    }

    #[test]
    fn shared_counter_is_exact_across_threads() {
        let c = std::sync::Arc::new(SharedCounter::new());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.inc()
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        assert_eq!(c.get(), 40_000);
    }
}
