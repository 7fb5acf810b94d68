//! A single-producer single-consumer ring of frame slots.
//!
//! The `mem` wire carries frames as bytes, like a cable: the sender copies a
//! frame into a slot and its buffer completes at once; the receiver copies it
//! into a buffer of its own RX pool, as a NIC's DMA would. Producer and
//! consumer each publish their index once per burst.

use crate::region::{HugepagePolicy, MemRegion};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many slots ahead the producer and consumer prefetch.
const PREFETCH_AHEAD: usize = 4;

/// Each slot has an 8-byte descriptor in a dense array — length and tag
/// (u32: tag << 24 | length), RSS hash (u32) — and a frame area of its own,
/// so a 64-byte frame occupies exactly one cache line and eight descriptors
/// share one: the fewest lines cross between the two cores.
pub(crate) struct FrameRing {
    desc: MemRegion,
    mem: MemRegion,
    mask: usize,
    slot_size: usize,
    /// Next slot the producer writes (written by the producer only).
    head: CachePadded<AtomicUsize>,
    /// Next slot the consumer reads (written by the consumer only).
    tail: CachePadded<AtomicUsize>,
}

impl FrameRing {
    /// `slots` is rounded up to a power of two; each holds `max_frame` bytes.
    pub(crate) fn new(slots: usize, max_frame: usize) -> std::io::Result<FrameRing> {
        let slots = slots.max(2).next_power_of_two();
        let slot_size = max_frame.next_multiple_of(64);
        let mem = MemRegion::new(slots * slot_size, HugepagePolicy::Never)?;
        let desc = MemRegion::new(slots * 8, HugepagePolicy::Never)?;
        Ok(FrameRing {
            desc,
            mem,
            mask: slots - 1,
            slot_size,
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
        })
    }

    pub(crate) fn max_frame(&self) -> usize {
        self.slot_size
    }

    #[inline(always)]
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: (i & mask) < slots, so the slot lies inside `mem`.
        unsafe { self.mem.base().as_ptr().add((i & self.mask) * self.slot_size) }
    }

    #[inline(always)]
    fn desc(&self, i: usize) -> *mut u64 {
        // SAFETY: (i & mask) < slots, and `desc` holds 8 bytes per slot.
        unsafe { self.desc.base().as_ptr().cast::<u64>().add(i & self.mask) }
    }

    /// Hints the CPU to fetch slot `pos` (its descriptor and first frame
    /// line) for reading, or for writing when `write`.
    #[inline(always)]
    pub(crate) fn prefetch(&self, pos: usize, write: bool) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
            let (d, s) = (self.desc(pos).cast::<i8>(), self.slot(pos).cast::<i8>().cast_const());
            // SAFETY: prefetch is a hint; it never faults or changes memory,
            // and both addresses are inside our regions anyway.
            unsafe {
                if write {
                    _mm_prefetch::<_MM_HINT_ET0>(s);
                    _mm_prefetch::<_MM_HINT_ET0>(d);
                } else {
                    _mm_prefetch::<_MM_HINT_T0>(s);
                    _mm_prefetch::<_MM_HINT_T0>(d);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (pos, write);
    }

    /// Slots ahead of the current one worth prefetching.
    pub(crate) const PREFETCH_AHEAD: usize = PREFETCH_AHEAD;

    /// Starts a producer batch: returns (head, free slots).
    #[inline]
    pub(crate) fn producer_begin(&self) -> (usize, usize) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        (head, self.mask + 1 - head.wrapping_sub(tail))
    }

    /// Writes a frame at position `pos` (between `producer_begin`'s head and
    /// head + free).
    ///
    /// # Safety
    /// Only the ring's single producer may call this, for a position inside
    /// the free range it got from `producer_begin`, and `frame.len()` must be
    /// at most `max_frame()`.
    #[inline]
    pub(crate) unsafe fn write(&self, pos: usize, frame: &[u8], hash: u32, tag: u8) {
        let s = self.slot(pos);
        let d = ((hash as u64) << 32) | ((tag as u64) << 24) | frame.len() as u64;
        // SAFETY: the slot is free (the consumer is past it), owned by the
        // sole producer, and large enough for the frame; the descriptor is
        // an aligned u64 of the same slot.
        unsafe {
            self.desc(pos).write(d);
            std::ptr::copy_nonoverlapping(frame.as_ptr(), s, frame.len());
        }
    }

    /// Publishes everything written up to `new_head`.
    #[inline]
    pub(crate) fn producer_commit(&self, new_head: usize) {
        self.head.store(new_head, Ordering::Release);
    }

    /// Starts a consumer batch: returns (tail, frames available).
    #[inline]
    pub(crate) fn consumer_begin(&self) -> (usize, usize) {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        (tail, head.wrapping_sub(tail))
    }

    /// Reads the frame at `pos`: (bytes, hash, tag).
    ///
    /// # Safety
    /// Only the single consumer may call this, for a position inside the
    /// range it got from `consumer_begin`, and it must not keep the slice past
    /// `consumer_commit`.
    #[inline]
    pub(crate) unsafe fn read(&self, pos: usize) -> (&[u8], u32, u8) {
        let s = self.slot(pos);
        // SAFETY: the producer published this slot (Acquire in
        // consumer_begin) and will not touch it until we commit past it. The
        // length was written by our own producer, but clamp it anyway.
        unsafe {
            let d = self.desc(pos).read();
            let len = ((d & 0x00ff_ffff) as usize).min(self.max_frame());
            (std::slice::from_raw_parts(s, len), (d >> 32) as u32, (d >> 24) as u8)
        }
    }

    /// Releases everything read up to `new_tail`.
    #[inline]
    pub(crate) fn consumer_commit(&self, new_tail: usize) {
        self.tail.store(new_tail, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spsc_transfers_every_frame_in_order() {
        let r = std::sync::Arc::new(FrameRing::new(64, 128).expect("ring"));
        let total = 100_000u32;
        let prod = {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut next = 0u32;
                while next < total {
                    let (head, free) = r.producer_begin();
                    let n = free.min((total - next) as usize);
                    for k in 0..n {
                        let v = next + k as u32;
                        let frame = v.to_le_bytes();
                        // SAFETY: sole producer, inside the free range, 4 <= max_frame.
                        unsafe { r.write(head + k, &frame[..(v as usize % 4) + 1], v, (v % 7) as u8) };
                    }
                    r.producer_commit(head + n);
                    next += n as u32;
                }
            })
        };
        let mut got = 0u32;
        while got < total {
            let (tail, avail) = r.consumer_begin();
            for k in 0..avail {
                // SAFETY: sole consumer, inside the published range.
                let (f, h, tag) = unsafe { r.read(tail + k) };
                assert_eq!(h, got);
                assert_eq!(tag, (got % 7) as u8);
                assert_eq!(f.len(), (got as usize % 4) + 1);
                assert_eq!(f, &got.to_le_bytes()[..f.len()]);
                got += 1;
            }
            r.consumer_commit(tail + avail);
        }
        prod.join().expect("producer");
        assert_eq!(r.consumer_begin().1, 0);
    }

    #[test]
    fn full_ring_reports_no_space() {
        let r = FrameRing::new(4, 64).expect("ring");
        let (head, free) = r.producer_begin();
        assert_eq!(free, 4);
        for k in 0..4 {
            // SAFETY: sole producer in this test, inside the free range.
            unsafe { r.write(head + k, &[1, 2, 3], 0, 0) };
        }
        r.producer_commit(head + 4);
        assert_eq!(r.producer_begin().1, 0);
        let (tail, avail) = r.consumer_begin();
        assert_eq!(avail, 4);
        r.consumer_commit(tail + 1);
        assert_eq!(r.producer_begin().1, 1);
    }
}
