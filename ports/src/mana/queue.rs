//! Driver-side rings: work queues (SQ/RQ) and completion/event queues.
//!
//! A [`WorkQueue`] writes WQEs at its head in 32-byte basic units; only the
//! SGL of a WQE can cross the end of the ring and continues at offset 0
//! (MANA.md §2). A [`CompletionQueue`] reads 64-byte CQEs, an
//! [`EventQueue`] 16-byte EQEs, both with the owner-bit check (§4): the
//! device is not trusted, so an entry is copied out of the ring once and
//! only the copy is looked at.

use super::device::RingInfo;
use super::format::*;
use std::sync::atomic::{fence, Ordering};

/// A WQE did not fit in the free space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSpace;

/// An SQ or RQ: the producer side.
pub struct WorkQueue {
    base: *mut u8,
    size: u32,
    mask: u32,
    /// Producer position, in basic units (free-running).
    head: u32,
    /// Consumer position acknowledged by completions, in basic units.
    tail: u32,
    id: u32,
}

// SAFETY: the ring memory belongs to the device object the port keeps alive;
// one WorkQueue is used by one thread at a time (its queue handle).
unsafe impl Send for WorkQueue {}

impl WorkQueue {
    /// # Safety
    /// `ring` must describe memory that stays valid while this WorkQueue is
    /// used, and nothing else may write WQEs into it.
    pub unsafe fn new(ring: RingInfo) -> WorkQueue {
        debug_assert!(ring.size.is_power_of_two() && ring.size >= 4096);
        WorkQueue {
            base: ring.base.as_ptr(),
            size: ring.size as u32,
            mask: ring.size as u32 - 1,
            head: 0,
            tail: 0,
            id: ring.id,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Ring size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Bytes between the consumer and producer positions.
    #[inline]
    pub fn used_bytes(&self) -> u32 {
        self.head.wrapping_sub(self.tail).wrapping_mul(BU as u32)
    }

    #[inline]
    pub fn free_bytes(&self) -> u32 {
        self.size - self.used_bytes()
    }

    /// The producer position in basic units.
    #[inline]
    pub fn head(&self) -> u32 {
        self.head
    }

    /// The consumer position in basic units.
    #[inline]
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Byte offset in the ring of the WQE at basic unit `bu`.
    #[inline]
    pub fn offset_of(&self, bu: u32) -> u32 {
        bu.wrapping_mul(BU as u32) & self.mask
    }

    /// Doorbell `tail_ptr`: the producer position in bytes, wrapping at 2^32.
    #[inline]
    pub fn doorbell_tail(&self) -> u32 {
        self.head.wrapping_mul(BU as u32)
    }

    /// Writes one WQE (header, inline OOB, SGL) at the head and advances it.
    /// Returns the WQE's size in basic units.
    #[inline]
    pub fn post(&mut self, hdr: &WqeHeader, oob: &[u8], sges: &[Sge]) -> Result<u32, NoSpace> {
        debug_assert!(oob.len() == 8 || oob.len() == 24);
        let bytes = wqe_size(oob.len(), sges.len()) as u32;
        if bytes > self.free_bytes() {
            return Err(NoSpace);
        }
        let off = self.offset_of(self.head) as usize;
        // Header and OOB never exceed 32 bytes and the WQE starts on a basic
        // unit, so they never cross the ring end.
        let mut first = [0u8; 32];
        first[..8].copy_from_slice(&hdr.encode());
        first[8..8 + oob.len()].copy_from_slice(oob);
        let lead = 8 + oob.len();
        // SAFETY: off is BU-aligned and < size, so off + 32 <= size; the
        // ring is valid for writes (constructor contract).
        unsafe { std::ptr::copy_nonoverlapping(first.as_ptr(), self.base.add(off), lead) };
        for (i, s) in sges.iter().enumerate() {
            let so = (off + lead + i * SGE_SIZE) & self.mask as usize;
            // SAFETY: SGEs are 16 bytes at 8-byte-aligned offsets within a
            // power-of-two ring of at least 4 KiB whose size is a multiple
            // of 16, so an SGE never straddles the end: so + 16 <= size.
            unsafe { std::ptr::copy_nonoverlapping(s.encode().as_ptr(), self.base.add(so), SGE_SIZE) };
        }
        let bu = bytes / BU as u32;
        self.head = self.head.wrapping_add(bu);
        Ok(bu)
    }

    /// Clears `mask` in byte `byte` of the inline OOB of the WQE at ring
    /// offset `off` (before its doorbell is rung).
    pub fn clear_oob_bits(&mut self, off: u32, byte: usize, mask: u8) {
        let at = (off as usize + WQE_HEADER_SIZE + byte.min(23)) & self.mask as usize;
        // SAFETY: `at` is masked into the ring, which is valid for writes.
        unsafe {
            let p = self.base.add(at);
            p.write(p.read() & !mask);
        }
    }

    /// Frees `bu` basic units at the tail (a completed WQE).
    #[inline]
    pub fn complete(&mut self, bu: u32) {
        self.tail = self.tail.wrapping_add(bu);
    }
}

/// What polling a completion or event queue found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled<T> {
    Empty,
    Entry(T),
    /// The device wrote more entries than the queue holds: entries were
    /// lost and the queue must be recreated.
    Overflow,
}

/// Copies out the entry at `head` if its owner bits say it is valid.
///
/// # Safety
/// `base` must point at a ring of `n * N` valid bytes, `n` a power of two.
#[inline(always)]
unsafe fn poll_slot<const N: usize>(base: *const u8, n: u32, head: u64) -> Polled<[u8; N]> {
    let slot = (head & (n as u64 - 1)) as usize;
    // SAFETY: slot < n, so the entry lies inside the ring (contract).
    let p = unsafe { base.add(slot * N) };
    // The info dword (owner bits) is the entry's last dword; the device
    // writes it last with release ordering.
    // SAFETY: as above; read volatile because the device writes it.
    let info = unsafe { std::ptr::read_volatile(p.add(N - 4).cast::<u32>()) };
    match check_owner((u32::from_le(info) >> 29) as u8, head, n) {
        Slot::Empty => Polled::Empty,
        Slot::Overflow => Polled::Overflow,
        Slot::Valid => {
            fence(Ordering::Acquire);
            let mut out = [0u8; N];
            // SAFETY: as above; one copy, after which only `out` is used.
            unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), N) };
            Polled::Entry(out)
        }
    }
}

/// A CQ: the consumer side.
pub struct CompletionQueue {
    base: *const u8,
    n: u32,
    /// Consumed entries; starts at `n`.
    head: u64,
    /// `head` at the last doorbell.
    rung: u64,
    id: u32,
}

// SAFETY: as for WorkQueue.
unsafe impl Send for CompletionQueue {}

impl CompletionQueue {
    /// # Safety
    /// `ring` must stay valid while this queue is used; `ring.size` must be
    /// a power-of-two multiple of 64.
    pub unsafe fn new(ring: RingInfo) -> CompletionQueue {
        let n = (ring.size / CQE_SIZE) as u32;
        CompletionQueue { base: ring.base.as_ptr(), n, head: n as u64, rung: n as u64, id: ring.id }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn entries(&self) -> u32 {
        self.n
    }

    /// Reads the next CQE, if any.
    #[inline]
    pub fn poll(&mut self) -> Polled<[u8; CQE_SIZE]> {
        // SAFETY: the ring holds n 64-byte entries (constructor contract).
        let r = unsafe { poll_slot::<CQE_SIZE>(self.base, self.n, self.head) };
        if let Polled::Entry(_) = r {
            self.head += 1;
        }
        r
    }

    /// Entries consumed since the last doorbell.
    #[inline]
    pub fn since_doorbell(&self) -> u64 {
        self.head - self.rung
    }

    /// The doorbell value acknowledging everything consumed (`arm`: ask for
    /// an event on the next completion). The caller writes it.
    #[inline]
    pub fn doorbell(&mut self, arm: bool) -> u64 {
        self.rung = self.head;
        let tail = (self.head % (self.n as u64 * 8)) as u32;
        db_cq(self.id, tail, arm)
    }
}

/// An EQ: the consumer side (used by the port's service thread).
pub struct EventQueue {
    base: *const u8,
    n: u32,
    head: u64,
    id: u32,
}

// SAFETY: as for WorkQueue.
unsafe impl Send for EventQueue {}

impl EventQueue {
    /// # Safety
    /// As for [`CompletionQueue::new`], with 16-byte entries.
    pub unsafe fn new(ring: RingInfo) -> EventQueue {
        let n = (ring.size / EQE_SIZE) as u32;
        EventQueue { base: ring.base.as_ptr(), n, head: n as u64, id: ring.id }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn poll(&mut self) -> Polled<Eqe> {
        // SAFETY: the ring holds n 16-byte entries (constructor contract).
        match unsafe { poll_slot::<EQE_SIZE>(self.base, self.n, self.head) } {
            Polled::Entry(b) => {
                self.head += 1;
                Polled::Entry(Eqe::decode(&b))
            }
            Polled::Empty => Polled::Empty,
            Polled::Overflow => Polled::Overflow,
        }
    }

    pub fn doorbell(&self, arm: bool) -> u64 {
        db_eq(self.id, (self.head % (self.n as u64 * 8)) as u32, arm)
    }

    /// After an overflow: skips whole wraps until the slot at the head is
    /// in step with the device again (the events in between are lost).
    /// Returns false if it is not after 8 wraps.
    pub fn resync(&mut self) -> bool {
        for _ in 0..8 {
            self.head += self.n as u64;
            // SAFETY: as in poll.
            if !matches!(unsafe { poll_slot::<EQE_SIZE>(self.base, self.n, self.head) }, Polled::Overflow) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{HugepagePolicy, MemRegion};

    fn ring(size: usize) -> (MemRegion, RingInfo) {
        let m = MemRegion::new(size, HugepagePolicy::Never).expect("ok");
        let r = RingInfo { base: m.base(), size, id: 7 };
        (m, r)
    }

    fn read(r: &RingInfo, off: usize, len: usize) -> Vec<u8> {
        // SAFETY: test ring, within bounds.
        unsafe { std::slice::from_raw_parts(r.base.as_ptr().add(off), len).to_vec() }
    }

    #[test]
    fn rx_wqe_is_one_bu_and_space_is_accounted() {
        let (_m, r) = ring(4096);
        // SAFETY: the region outlives the queue.
        let mut wq = unsafe { WorkQueue::new(r) };
        let hdr = WqeHeader { num_sge: 1, inline_oob_size_div4: 2, ..Default::default() };
        let sge = Sge { address: 0x1000, mem_key: 9, size: 1514 };
        for i in 0..128u32 {
            assert_eq!(wq.post(&hdr, &[0; 8], &[sge]), Ok(1), "post {i}");
        }
        assert_eq!(wq.free_bytes(), 0);
        assert_eq!(wq.post(&hdr, &[0; 8], &[sge]), Err(NoSpace));
        wq.complete(1);
        assert_eq!(wq.free_bytes(), 32);
        assert_eq!(wq.post(&hdr, &[0; 8], &[sge]), Ok(1));
        assert_eq!(wq.doorbell_tail(), 129 * 32);
        // The 129th WQE landed at offset 0 again.
        assert_eq!(read(&r, 16, 16), sge.encode().to_vec());
    }

    #[test]
    fn sgl_wraps_to_offset_zero() {
        let (_m, r) = ring(4096);
        // SAFETY: the region outlives the queue.
        let mut wq = unsafe { WorkQueue::new(r) };
        let short = WqeHeader { num_sge: 1, inline_oob_size_div4: 2, ..Default::default() };
        for _ in 0..127 {
            wq.post(&short, &[0; 8], &[Sge::default()]).expect("ok");
            wq.complete(1);
        }
        // Long OOB (24 B) + 3 SGEs = 8 + 24 + 48 = 80 -> 96 bytes, starting
        // at 4064: header + OOB fill the last BU, the SGL wraps to 0.
        let long = WqeHeader { num_sge: 3, inline_oob_size_div4: 6, ..Default::default() };
        let sges = [1u64, 2, 3].map(|a| Sge { address: a, mem_key: 1, size: 100 });
        assert_eq!(wq.offset_of(wq.head()), 4064);
        assert_eq!(wq.post(&long, &[0xaa; 24], &sges), Ok(3));
        assert_eq!(read(&r, 4064, 8), long.encode().to_vec());
        assert_eq!(read(&r, 4072, 24), vec![0xaa; 24]);
        assert_eq!(read(&r, 0, 16), sges[0].encode().to_vec());
        assert_eq!(read(&r, 16, 16), sges[1].encode().to_vec());
        assert_eq!(read(&r, 32, 16), sges[2].encode().to_vec());
    }

    fn write_cqe(r: &RingInfo, p: u64, wq: u32) {
        let n = (r.size / 64) as u32;
        let info = CqeInfo { wq_num: wq, is_sq: false, owner_bits: owner_to_write(p, n) };
        let cqe = cqe_encode(&[p as u8; 60], info);
        let slot = (p % n as u64) as usize;
        // SAFETY: test ring, within bounds.
        unsafe { std::ptr::copy_nonoverlapping(cqe.as_ptr(), r.base.as_ptr().add(slot * 64), 64) };
    }

    #[test]
    fn cq_owner_bits_over_many_wraps() {
        let (_m, r) = ring(4096);
        // SAFETY: the region outlives the queue.
        let mut cq = unsafe { CompletionQueue::new(r) };
        let n = cq.entries() as u64;
        assert_eq!(cq.poll(), Polled::Empty);
        let mut p = 0u64;
        for round in 0..20 {
            let k = (round * 7 % n) + 1;
            for _ in 0..k {
                write_cqe(&r, p, 3);
                p += 1;
            }
            for j in 0..k {
                match cq.poll() {
                    Polled::Entry(e) => assert_eq!(e[0], (p - k + j) as u8),
                    other => unreachable!("round {round}: {other:?}"),
                }
            }
            assert_eq!(cq.poll(), Polled::Empty);
        }
        // The device laps the driver: overflow is seen, not a stale entry.
        for _ in 0..n + 1 {
            write_cqe(&r, p, 3);
            p += 1;
        }
        assert_eq!(cq.poll(), Polled::Overflow);
    }

    #[test]
    fn cq_doorbell_tail_is_head_mod_8n() {
        let (_m, r) = ring(4096);
        // SAFETY: the region outlives the queue.
        let mut cq = unsafe { CompletionQueue::new(r) };
        let n = cq.entries() as u64;
        let db = cq.doorbell(true);
        assert_eq!(decode_doorbell(DB_CQ, db), Some(Doorbell::Cq { qid: 7, tail: n as u32, arm: true }));
        for p in 0..(8 * n) {
            write_cqe(&r, p, 1);
            assert!(matches!(cq.poll(), Polled::Entry(_)));
        }
        assert_eq!(cq.since_doorbell(), 8 * n);
        let db = cq.doorbell(false);
        assert_eq!(decode_doorbell(DB_CQ, db), Some(Doorbell::Cq { qid: 7, tail: n as u32, arm: false }));
    }

    #[test]
    fn eq_resyncs_after_the_device_laps_it() {
        let (_m, r) = ring(4096);
        // SAFETY: the region outlives the queue.
        let mut eq = unsafe { EventQueue::new(r) };
        let n = eq.n as u64;
        let write = |p: u64| {
            let e =
                Eqe { eqe_type: EQE_COMPLETION, owner_bits: owner_to_write(p, n as u32), ..Eqe::completion(p as u32) };
            let slot = (p % n) as usize;
            // SAFETY: test ring, within bounds.
            unsafe { std::ptr::copy_nonoverlapping(e.encode().as_ptr(), r.base.as_ptr().add(slot * 16), 16) };
        };
        // The device writes two and a half wraps while nobody reads.
        let total = 2 * n + n / 2;
        for p in 0..total {
            write(p);
        }
        assert_eq!(eq.poll(), Polled::Overflow);
        assert!(eq.resync());
        // Reading resumes at the entries of the latest wrap.
        let mut seen = 0;
        while let Polled::Entry(e) = eq.poll() {
            assert_eq!(e.cq_id() as u64, 2 * n + seen);
            seen += 1;
        }
        assert_eq!(seen, n / 2);
    }
}
