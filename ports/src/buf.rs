//! Packet buffers and bursts.
//!
//! A [`Pkt`] owns one pool buffer: a 64-byte [`PktMeta`] header followed by
//! headroom and data room, inside its pool's memory region. It is one
//! pointer wide, so a burst of 256 packets is 2 KiB of pointers. Dropping a
//! `Pkt` returns the buffer to the pool it came from (see `pool`).

use crate::pool::PoolShared;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// Size of the metadata header in front of each buffer.
pub const META_SIZE: usize = 64;

/// Most packets a burst (and so a batch) can hold.
pub const MAX_BURST: usize = 256;

/// How the device computed [`Pkt::rss_hash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RssType {
    #[default]
    None = 0,
    Ipv4 = 1,
    TcpIpv4 = 2,
    UdpIpv4 = 3,
    Ipv6 = 4,
    TcpIpv6 = 5,
    UdpIpv6 = 6,
}

impl RssType {
    /// The type stored as `ty as u8` (unknown values: `None`).
    pub fn from_u8(v: u8) -> RssType {
        match v {
            1 => RssType::Ipv4,
            2 => RssType::TcpIpv4,
            3 => RssType::UdpIpv4,
            4 => RssType::Ipv6,
            5 => RssType::TcpIpv6,
            6 => RssType::UdpIpv6,
            _ => RssType::None,
        }
    }
}

/// Offload flags carried with a packet (`Pkt::offload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Offload(pub u8);

impl Offload {
    /// RX: the device verified the IPv4 header checksum.
    pub const RX_IP_CSUM_GOOD: Offload = Offload(1 << 0);
    /// RX: the device found the IPv4 header checksum wrong.
    pub const RX_IP_CSUM_BAD: Offload = Offload(1 << 1);
    /// RX: the device verified the TCP/UDP checksum.
    pub const RX_L4_CSUM_GOOD: Offload = Offload(1 << 2);
    /// RX: the device found the TCP/UDP checksum wrong.
    pub const RX_L4_CSUM_BAD: Offload = Offload(1 << 3);
    /// RX: the device removed an 802.1Q tag into `vlan_tci`.
    pub const RX_VLAN_STRIPPED: Offload = Offload(1 << 4);
    /// TX: ask the device to fill the IPv4 header checksum.
    pub const TX_IP_CSUM: Offload = Offload(1 << 5);
    /// TX: ask the device to fill the TCP/UDP checksum.
    pub const TX_L4_CSUM: Offload = Offload(1 << 6);

    #[inline]
    pub fn contains(self, o: Offload) -> bool {
        self.0 & o.0 == o.0
    }
}

impl std::ops::BitOr for Offload {
    type Output = Offload;
    fn bitor(self, o: Offload) -> Offload {
        Offload(self.0 | o.0)
    }
}

/// The header in front of every pool buffer.
#[repr(C, align(64))]
pub struct PktMeta {
    pool: *const PoolShared,
    index: u32,
    data_off: u16,
    data_len: u16,
    buf_len: u16,
    port: u16,
    queue: u16,
    vlan_tci: u16,
    rss_hash: u32,
    rss_type: u8,
    offload: u8,
}

const _: () = assert!(std::mem::size_of::<PktMeta>() == META_SIZE);

impl PktMeta {
    /// Writes a fresh header.
    ///
    /// # Safety
    /// `meta` must point at a free slot of `pool` at least
    /// `META_SIZE + buf_len` bytes long.
    pub(crate) unsafe fn init(meta: NonNull<PktMeta>, pool: *const PoolShared, index: u32, buf_len: u16) {
        // SAFETY: per the contract the slot is ours and large enough.
        unsafe {
            meta.as_ptr().write(PktMeta {
                pool,
                index,
                data_off: 0,
                data_len: 0,
                buf_len,
                port: u16::MAX,
                queue: 0,
                vlan_tci: 0,
                rss_hash: 0,
                rss_type: 0,
                offload: 0,
            })
        };
    }

    /// Resets per-packet fields for a new allocation.
    #[inline(always)]
    pub(crate) fn reset(&mut self, headroom: u16) {
        self.data_off = headroom;
        self.data_len = 0;
        self.port = u16::MAX;
        self.queue = 0;
        self.vlan_tci = 0;
        self.rss_hash = 0;
        self.rss_type = 0;
        self.offload = 0;
    }
}

/// An owned packet buffer. Dropping it recycles the buffer to its pool.
pub struct Pkt {
    meta: NonNull<PktMeta>,
}

// SAFETY: a Pkt is the unique owner of its buffer; moving it to another
// thread is fine, and its drop routes the buffer back through the pool's
// thread-safe return ring when that thread does not own the pool.
unsafe impl Send for Pkt {}

impl Drop for Pkt {
    #[inline]
    fn drop(&mut self) {
        let (pool, idx) = {
            let m = self.meta();
            (m.pool, m.index)
        };
        // SAFETY: pool pointers in headers stay valid while any buffer is out
        // (pool teardown leaks rather than frees under live buffers), and we
        // own this buffer and give it up here.
        unsafe { (*pool).free(idx, self.meta) };
    }
}

impl std::fmt::Debug for Pkt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkt")
            .field("len", &self.len())
            .field("port", &self.port())
            .field("queue", &self.queue())
            .finish()
    }
}

impl Pkt {
    /// # Safety
    /// `meta` must be an allocated buffer header that nothing else owns.
    #[inline(always)]
    pub(crate) unsafe fn from_meta(meta: NonNull<PktMeta>) -> Pkt {
        Pkt { meta }
    }

    /// Gives up the buffer as a raw pointer without recycling it (for
    /// drivers that park buffers in descriptor rings).
    #[inline]
    pub fn into_raw(self) -> NonNull<PktMeta> {
        let m = self.meta;
        std::mem::forget(self);
        m
    }

    /// Rebuilds a packet from [`Pkt::into_raw`].
    ///
    /// # Safety
    /// `raw` must come from `into_raw` and be used at most once.
    #[inline]
    pub unsafe fn from_raw(raw: NonNull<PktMeta>) -> Pkt {
        Pkt { meta: raw }
    }

    #[inline(always)]
    fn meta(&self) -> &PktMeta {
        // SAFETY: we own the buffer; its header is initialized.
        unsafe { self.meta.as_ref() }
    }

    #[inline(always)]
    fn meta_mut(&mut self) -> &mut PktMeta {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { self.meta.as_mut() }
    }

    #[inline(always)]
    fn buf_ptr(&self) -> *mut u8 {
        // SAFETY: the buffer follows the header within the same slot.
        unsafe { self.meta.as_ptr().cast::<u8>().add(META_SIZE) }
    }

    #[inline(always)]
    pub(crate) fn reset_meta(&mut self, headroom: u16) {
        self.meta_mut().reset(headroom);
    }

    pub(crate) fn pool_ptr(&self) -> *const PoolShared {
        self.meta().pool
    }

    /// Allocates a fresh buffer from the pool this packet came from (for
    /// fragments or generated packets): from the owner cache when called on
    /// the pool's owning thread, through the return ring otherwise.
    #[inline]
    pub fn alloc_sibling(&self) -> Option<Pkt> {
        // SAFETY: the pool outlives every buffer it handed out (see pool.rs).
        unsafe { (*self.meta().pool).alloc() }
    }

    /// The packet bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.meta();
        // SAFETY: data_off + data_len <= buf_len is kept by every mutator.
        unsafe { std::slice::from_raw_parts(self.buf_ptr().add(m.data_off as usize), m.data_len as usize) }
    }

    /// The packet bytes, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (off, len) = (self.meta().data_off as usize, self.meta().data_len as usize);
        // SAFETY: as in data(); &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.buf_ptr().add(off), len) }
    }

    /// Packet length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.meta().data_len as usize
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.meta().data_off as usize
    }

    /// Free bytes after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.meta();
        (m.buf_len - m.data_off - m.data_len) as usize
    }

    /// Grows the packet at the front by `n` bytes (into the headroom) and
    /// returns the new bytes; `None` (nothing changed) if there is no room.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.headroom() {
            return None;
        }
        let m = self.meta_mut();
        m.data_off -= n as u16;
        m.data_len += n as u16;
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front; false (nothing changed) if shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        let m = self.meta_mut();
        m.data_off += n as u16;
        m.data_len -= n as u16;
        true
    }

    /// Grows the packet at the end by `n` bytes and returns them.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.len();
        self.meta_mut().data_len += n as u16;
        Some(&mut self.data_mut()[old..])
    }

    /// Removes `n` bytes from the end; false (nothing changed) if shorter.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.meta_mut().data_len -= n as u16;
        true
    }

    /// Sets the length (keeping the start); false if it does not fit.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        let m = self.meta();
        if len > (m.buf_len - m.data_off) as usize {
            return false;
        }
        self.meta_mut().data_len = len as u16;
        true
    }

    /// Replaces the contents with `bytes` (keeping the headroom); false if
    /// they do not fit.
    #[inline]
    pub fn copy_from(&mut self, bytes: &[u8]) -> bool {
        if !self.set_len(bytes.len()) {
            return false;
        }
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// Input port id (`u16::MAX` when not received on a port).
    #[inline(always)]
    pub fn port(&self) -> u16 {
        self.meta().port
    }

    #[inline(always)]
    pub fn set_port(&mut self, p: u16) {
        self.meta_mut().port = p;
    }

    /// Input queue.
    #[inline(always)]
    pub fn queue(&self) -> u16 {
        self.meta().queue
    }

    #[inline(always)]
    pub fn set_queue(&mut self, q: u16) {
        self.meta_mut().queue = q;
    }

    /// RSS hash computed by the device (valid when `rss_type` is not None).
    #[inline(always)]
    pub fn rss_hash(&self) -> u32 {
        self.meta().rss_hash
    }

    #[inline(always)]
    pub fn rss_type(&self) -> RssType {
        RssType::from_u8(self.meta().rss_type)
    }

    #[inline(always)]
    pub fn set_rss(&mut self, hash: u32, ty: RssType) {
        let m = self.meta_mut();
        m.rss_hash = hash;
        m.rss_type = ty as u8;
    }

    #[inline(always)]
    pub fn offload(&self) -> Offload {
        Offload(self.meta().offload)
    }

    #[inline(always)]
    pub fn set_offload(&mut self, o: Offload) {
        self.meta_mut().offload = o.0;
    }

    /// VLAN TCI stripped by the device, if any.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        self.offload().contains(Offload::RX_VLAN_STRIPPED).then_some(self.meta().vlan_tci)
    }

    #[inline]
    pub fn set_vlan_tci(&mut self, tci: Option<u16>) {
        let m = self.meta_mut();
        match tci {
            Some(t) => {
                m.vlan_tci = t;
                m.offload |= Offload::RX_VLAN_STRIPPED.0;
            }
            None => {
                m.vlan_tci = 0;
                m.offload &= !Offload::RX_VLAN_STRIPPED.0;
            }
        }
    }

    /// Address of the first data byte, for device descriptors.
    #[inline]
    pub fn data_addr(&self) -> usize {
        self.data().as_ptr() as usize
    }

    /// The memory region of the pool this buffer belongs to (base, length),
    /// for drivers that register pool memory with a device.
    #[inline]
    pub fn pool_region(&self) -> (usize, usize) {
        // SAFETY: the pool outlives every buffer it handed out (see pool.rs).
        unsafe { (*self.meta().pool).span() }
    }

    /// Address of the start of the buffer (headroom included) and its length.
    #[inline]
    pub fn buf_addr(&self) -> (usize, usize) {
        (self.buf_ptr() as usize, self.meta().buf_len as usize)
    }
}

/// A fixed-capacity vector of packets ([`MAX_BURST`]), allocation-free.
pub struct PktBurst {
    len: usize,
    /// Drivers fill up to this many packets (see [`PktBurst::set_limit`]).
    limit: usize,
    pkts: [MaybeUninit<Pkt>; MAX_BURST],
}

impl Default for PktBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PktBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl PktBurst {
    pub const fn new() -> PktBurst {
        PktBurst { len: 0, limit: MAX_BURST, pkts: [const { MaybeUninit::uninit() }; MAX_BURST] }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the burst holds `limit` packets or more.
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len >= self.limit
    }

    /// Places left below the limit: how many packets a driver adds at most.
    #[inline(always)]
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.len)
    }

    /// Sets how many packets drivers put in the burst (clamped to
    /// 1..=[`MAX_BURST`]); `push` still accepts up to `MAX_BURST`.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.clamp(1, MAX_BURST);
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Appends `p`, or gives it back when full.
    #[inline(always)]
    pub fn push(&mut self, p: Pkt) -> Result<(), Pkt> {
        if self.len == MAX_BURST {
            return Err(p);
        }
        self.pkts[self.len].write(p);
        self.len += 1;
        Ok(())
    }

    #[inline]
    pub fn pop(&mut self) -> Option<Pkt> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slots below the old len are initialized; this one is now
        // outside len so it is read exactly once.
        Some(unsafe { self.pkts[self.len].assume_init_read() })
    }

    #[inline(always)]
    pub fn as_slice(&self) -> &[Pkt] {
        // SAFETY: the first len slots are initialized.
        unsafe { std::slice::from_raw_parts(self.pkts.as_ptr().cast::<Pkt>(), self.len) }
    }

    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [Pkt] {
        // SAFETY: as above, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.pkts.as_mut_ptr().cast::<Pkt>(), self.len) }
    }

    /// Drops (recycles) every packet.
    pub fn clear(&mut self) {
        let n = self.len;
        self.len = 0;
        for s in &mut self.pkts[..n] {
            // SAFETY: initialized, and len was reset first so each is dropped once.
            unsafe { s.assume_init_drop() };
        }
    }

    /// Keeps the packets for which `keep` returns true, in order; the others
    /// are dropped (recycled). Returns how many were dropped.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Pkt) -> bool) -> usize {
        let n = self.len;
        self.len = 0; // panic safety: leak rather than double-drop
        let mut w = 0;
        for r in 0..n {
            // SAFETY: slot r < n is initialized and not yet moved.
            let mut p = unsafe { self.pkts[r].assume_init_read() };
            if keep(&mut p) {
                self.pkts[w].write(p);
                w += 1;
            } else {
                drop(p);
            }
        }
        self.len = w;
        n - w
    }

    /// Offers each packet, in order, to `f`, which either takes it (returns
    /// `None`) or hands it back to be kept (`Some`). Kept packets stay in
    /// order.
    #[inline]
    pub fn take_each(&mut self, mut f: impl FnMut(Pkt) -> Option<Pkt>) {
        let n = self.len;
        self.len = 0; // panic safety: leak rather than double-drop
        let mut w = 0;
        for r in 0..n {
            // SAFETY: slot r < n is initialized and not yet moved.
            let p = unsafe { self.pkts[r].assume_init_read() };
            if let Some(p) = f(p) {
                self.pkts[w].write(p);
                w += 1;
            }
        }
        self.len = w;
    }

    /// Moves every packet out, in order, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let n = self.len;
        self.len = 0;
        Drain { burst: self, pos: 0, end: n }
    }
}

/// Iterator returned by [`PktBurst::drain`]; packets not taken are dropped.
pub struct Drain<'a> {
    burst: &'a mut PktBurst,
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Pkt;

    #[inline]
    fn next(&mut self) -> Option<Pkt> {
        if self.pos == self.end {
            return None;
        }
        let i = self.pos;
        self.pos += 1;
        // SAFETY: slots in pos..end are initialized and each is read once.
        Some(unsafe { self.burst.pkts[i].assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.end - self.pos, Some(self.end - self.pos))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PagePool, PoolConfig};
    use crate::region::HugepagePolicy;

    fn pool(n: u32) -> PagePool {
        PagePool::new(&PoolConfig {
            buffers: n,
            buf_size: 512,
            headroom: 64,
            hugepages: HugepagePolicy::Never,
            ..Default::default()
        })
        .expect("pool")
    }

    #[test]
    fn fresh_buffer_layout() {
        let p = pool(4);
        let b = p.alloc().expect("buf");
        assert_eq!(b.len(), 0);
        assert_eq!(b.headroom(), 64);
        assert_eq!(b.tailroom(), 512 - 64);
        assert_eq!(b.port(), u16::MAX);
        assert_eq!(b.rss_type(), RssType::None);
        assert_eq!(b.vlan_tci(), None);
        assert_eq!(b.data_addr() % 64, 0, "data is cache-line aligned");
    }

    #[test]
    fn grow_and_shrink_at_both_ends() {
        let p = pool(4);
        let mut b = p.alloc().expect("buf");
        assert!(b.copy_from(&[1, 2, 3, 4]));
        b.prepend(2).expect("headroom").copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4]);
        b.append(1).expect("tailroom")[0] = 5;
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4, 5]);
        assert!(b.adj(3));
        assert!(b.trim(1));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(!b.adj(4));
        assert!(!b.trim(4));
        assert!(b.prepend(1000).is_none());
        assert!(b.append(1000).is_none());
        assert!(!b.set_len(1000));
        assert!(!b.copy_from(&[0u8; 600]));
        assert_eq!(b.data(), &[2, 3, 4], "failed calls change nothing");
    }

    #[test]
    fn metadata_round_trips_and_resets_on_realloc() {
        let p = pool(1);
        let mut b = p.alloc().expect("buf");
        b.set_port(3);
        b.set_queue(2);
        b.set_rss(0xdead_beef, RssType::UdpIpv4);
        b.set_vlan_tci(Some(100));
        b.set_offload(b.offload() | Offload::RX_IP_CSUM_GOOD);
        assert_eq!((b.port(), b.queue(), b.rss_hash()), (3, 2, 0xdead_beef));
        assert_eq!(b.rss_type(), RssType::UdpIpv4);
        assert_eq!(b.vlan_tci(), Some(100));
        assert!(b.offload().contains(Offload::RX_IP_CSUM_GOOD));
        assert!(b.copy_from(&[1; 10]));
        drop(b);
        let b = p.alloc().expect("same buffer again");
        assert_eq!((b.port(), b.len(), b.rss_hash(), b.vlan_tci()), (u16::MAX, 0, 0, None));
        assert_eq!(b.offload(), Offload::default());
    }

    #[test]
    fn siblings_come_from_the_same_pool() {
        let p = pool(3);
        let a = p.alloc().expect("buf");
        let b = a.alloc_sibling().expect("sibling");
        assert!(p.owns(&b));
        let c = b.alloc_sibling().expect("sibling");
        assert!(a.alloc_sibling().is_none(), "pool of 3 is empty");
        drop((a, b, c));
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn raw_round_trip_keeps_the_buffer_out() {
        let p = pool(2);
        let b = p.alloc().expect("buf");
        let raw = b.into_raw();
        assert_eq!(p.in_use(), 1);
        // SAFETY: from into_raw, used once.
        let b = unsafe { Pkt::from_raw(raw) };
        drop(b);
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn burst_push_pop_retain_drain() {
        let p = pool(300);
        let mut burst = PktBurst::new();
        for i in 0..MAX_BURST {
            let mut b = p.alloc().expect("buf");
            b.set_port(i as u16);
            burst.push(b).expect("room");
        }
        assert!(burst.is_full());
        assert_eq!(burst.remaining(), 0);
        let extra = p.alloc().expect("buf");
        assert!(burst.push(extra).is_err());
        assert_eq!(p.in_use(), MAX_BURST as u64);
        let dropped = burst.retain(|b| b.port() % 2 == 0);
        assert_eq!(dropped, MAX_BURST / 2);
        assert_eq!(p.in_use(), (MAX_BURST / 2) as u64);
        assert!(burst.as_slice().windows(2).all(|w| w[0].port() + 2 == w[1].port()));
        let mut it = burst.drain();
        assert_eq!(it.next().map(|b| b.port()), Some(0));
        drop(it); // the rest are dropped
        assert!(burst.is_empty());
        assert_eq!(p.in_use(), 0);
        burst.push(p.alloc().expect("buf")).expect("room");
        assert_eq!(burst.pop().map(|b| b.len()), Some(0));
        burst.set_limit(32);
        assert_eq!(burst.remaining(), 32);
        burst.set_limit(0);
        assert_eq!(burst.limit(), 1);
        burst.push(p.alloc().expect("buf")).expect("room");
        drop(burst);
        assert_eq!(p.in_use(), 0);
    }
}
