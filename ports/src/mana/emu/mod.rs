//! The emulated MANA device: the hardware side of the data path, on the
//! same ring memory and byte formats the driver uses with real hardware.
//!
//! - Queues: the device allocates each ring (zeroed, page aligned) and
//!   hands it to the driver, as rdma-core's buffer allocator does.
//! - Doorbells are processed when they are rung, in the ringing thread: an
//!   SQ doorbell makes the device read every new WQE, gather its SGEs
//!   through the registered memory keys, put the frame on the wire and
//!   write TX CQEs; an RQ doorbell publishes new receive WQEs.
//! - Receive: a frame from the wire is hashed with Toeplitz over the
//!   device's RSS configuration to choose the RQ, written into the buffers
//!   of the oldest posted WQE, and completed with an RX CQE carrying the
//!   length, hash, hash type and checksum results. Consecutive frames for
//!   one RQ with the same flags share one RX_COALESCED_4 CQE when
//!   coalescing is on (it always is with rdma-core).
//! - Every SGE is resolved through a registered key; a wrong key or a range
//!   outside the registration completes the WQE with an error (TX:
//!   `TX_HDR_PROCESSING_ERROR`, RX: `RX_TRUNCATED`; `vendor_err` =
//!   [`VENDOR_ERR_DMA`]) and never touches memory.
//! - CQEs are written body first, then the info dword with release
//!   ordering; owner bits follow MANA.md §4.
//!
//! Wires: two devices that name the same pair wire are connected back to
//! back (frames go straight into the peer's receive buffers); a device can
//! instead be attached to a [`FrameIo`] (AF_PACKET socket, pcap files),
//! served by a receive thread.
//!
//! Fault injection ([`EmuDevice::inject`]): TX error completions,
//! truncation, dropped doorbells, garbage CQEs, reset, removal and return.

mod csum;

use super::device::*;
use super::format::*;
use crate::counter::SharedCounter;
use crate::frameio::FrameIo;
use crate::lock;
use crate::port::{MacAddr, RssConfig};
use crate::region::{HugepagePolicy, MemRegion};
use crate::rss::{flow_input, RssTable, MAX_INPUT};
use crate::RssType;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// `vendor_err` of a completion whose SGE failed key or range checks.
pub const VENDOR_ERR_DMA: u32 = 0xd3a;
/// `vendor_err` of a completion for a malformed WQE.
pub const VENDOR_ERR_WQE: u32 = 0xbad;

const UP: u8 = 0;
const RESETTING: u8 = 1;
const REMOVED: u8 = 2;

/// Frames handled per device batch (one SQ doorbell's work is cut into
/// batches of this size).
const BATCH: usize = 32;
/// Largest frame the device moves: 9000-byte MTU + header + VLAN tag.
const MAX_FRAME: usize = 9000 + 18;

/// Where the device's port is connected.
#[derive(Clone)]
pub enum EmuLink {
    /// A wire to nowhere (link up): transmitted frames are counted
    /// (`link_drops`) and dropped; frames arrive only through
    /// [`EmuDevice::receive`].
    None,
    /// Back to back with the other device naming the same wire.
    Pair(String),
    /// A frame I/O back-end (AF_PACKET, pcap), served by a receive thread.
    Io(Arc<dyn FrameIo>),
}

/// Emulated device parameters.
#[derive(Clone)]
pub struct EmuConfig {
    pub name: String,
    pub mac: MacAddr,
    pub max_queues: u16,
    pub max_mtu: u16,
    /// Coalesce up to four packets per RX CQE.
    pub coalesce: bool,
    /// Verify IPv4/TCP/UDP checksums of received frames and report them.
    pub rx_csum: bool,
    pub link: EmuLink,
    /// vPort offset reported for TX queues.
    pub vp_offset: u16,
}

impl Default for EmuConfig {
    fn default() -> Self {
        EmuConfig {
            name: String::from("emu"),
            mac: MacAddr::local(0x4d41_0000),
            max_queues: 64,
            max_mtu: 9000,
            coalesce: true,
            rx_csum: true,
            link: EmuLink::None,
            vp_offset: 0x2a,
        }
    }
}

/// A bogus completion the device writes instead of a good one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// An RX CQE naming another queue (no WQE consumed).
    WrongWqNum,
    /// An RX CQE with an undefined type (no WQE consumed).
    BadType,
    /// An RX_OKAY whose length exceeds the posted buffer (WQE consumed).
    LenBeyondBuffer,
    /// An RX_OKAY whose first length is 0 (WQE consumed).
    Len0,
    /// An RX CQE with client_type 0 (no WQE consumed).
    BadClientType,
}

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The next `count` TX WQEs complete with `cqe_type` (not sent).
    TxError { cqe_type: u8, count: u32 },
    /// The next `count` received frames complete as RX_TRUNCATED.
    Truncate { count: u32 },
    /// The next `count` SQ/RQ doorbells are ignored (their work is seen at
    /// the next doorbell, whose tail covers it).
    DropDoorbells { count: u32 },
    /// The next frame received makes the device write this garbage CQE.
    Garbage(Garbage),
    /// Servicing reset: RESET_REQUEST on the EQ; the device comes back
    /// when the driver has destroyed its queues.
    Reset,
    /// Hot removal: every queue and registration is gone.
    Remove,
    /// The removed device returns.
    Restore,
}

/// Device-side counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmuStats {
    pub tx_frames: u64,
    pub tx_errors: u64,
    pub rx_frames: u64,
    pub rx_cqes: u64,
    pub rx_coalesced_cqes: u64,
    /// Frames dropped because the RQ had no posted WQE.
    pub rx_no_wqe: u64,
    /// SGEs that failed key or range checks.
    pub dma_errors: u64,
    /// Frames dropped because the wire or the device was down.
    pub link_drops: u64,
    pub doorbells: u64,
    pub doorbells_dropped: u64,
    /// Doorbells for unknown queues or with bad fields.
    pub doorbells_bad: u64,
    /// Largest number of CQEs written beyond the driver's last CQ doorbell
    /// (the hardware rule: ring at least every 8 wraps).
    pub cq_doorbell_lag_max: u64,
    pub eqes: u64,
}

#[derive(Default)]
struct Counters {
    tx_frames: SharedCounter,
    tx_errors: SharedCounter,
    rx_frames: SharedCounter,
    rx_cqes: SharedCounter,
    rx_coalesced_cqes: SharedCounter,
    rx_no_wqe: SharedCounter,
    dma_errors: SharedCounter,
    link_drops: SharedCounter,
    doorbells: SharedCounter,
    doorbells_dropped: SharedCounter,
    doorbells_bad: SharedCounter,
    cq_doorbell_lag_max: AtomicU64,
    eqes: SharedCounter,
}

#[derive(Default)]
struct Faults {
    tx_err_type: AtomicU8,
    tx_err_count: AtomicU32,
    truncate: AtomicU32,
    drop_db: AtomicU32,
    garbage: Mutex<VecDeque<Garbage>>,
    any_garbage: AtomicBool,
}

/// Takes one from a fault budget.
fn take(c: &AtomicU32) -> bool {
    c.load(Ordering::Relaxed) != 0 && c.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| v.checked_sub(1)).is_ok()
}

/// A registered memory range.
#[derive(Clone, Copy)]
struct MemKey {
    key: u32,
    base: usize,
    len: usize,
}

/// A ring the device allocated.
struct Ring {
    mem: MemRegion,
    size: usize,
    id: u32,
}

impl Ring {
    fn new(size: usize, id: u32) -> Result<Ring, DeviceError> {
        let size = size.max(4096).next_power_of_two();
        let mem = MemRegion::new(size, HugepagePolicy::Never)
            .map_err(|e| DeviceError::NoMemory(format!("queue ring of {size} bytes: {e}")))?;
        Ok(Ring { mem, size, id })
    }

    fn info(&self) -> RingInfo {
        RingInfo { base: self.mem.base(), size: self.size, id: self.id }
    }

    fn ptr(&self, off: usize) -> *mut u8 {
        // SAFETY: callers pass offsets masked to the ring size.
        unsafe { self.mem.base().as_ptr().add(off & (self.size - 1)) }
    }

    fn read<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut b = [0u8; N];
        // SAFETY: N <= 32 and reads start at 8-byte aligned offsets of a
        // power-of-two ring >= 4 KiB, so they stay inside it.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(off), b.as_mut_ptr(), N) };
        b
    }
}

/// Writes entries with owner bits (CQs and EQs).
struct EntryWriter<const N: usize> {
    ring: Ring,
    n: u32,
    produced: u64,
}

impl<const N: usize> EntryWriter<N> {
    fn new(ring: Ring) -> Self {
        let n = (ring.size / N) as u32;
        EntryWriter { ring, n, produced: 0 }
    }

    /// Writes the body, then the info dword (owner bits set) with release.
    fn write(&mut self, body: &[u8], info_without_owner: u32) {
        let owner = owner_to_write(self.produced, self.n) as u32;
        let slot = (self.produced % self.n as u64) as usize * N;
        let p = self.ring.ptr(slot);
        // SAFETY: the slot lies inside the ring; body.len() == N - 4.
        unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), p, N - 4) };
        let info = (info_without_owner & !(7 << 29)) | (owner << 29);
        // SAFETY: slot + N - 4 is 4-byte aligned inside the ring; the driver
        // reads it with a volatile load, so an atomic store is the right
        // way to publish it.
        let a = unsafe { &*(p.add(N - 4) as *const AtomicU32) };
        a.store(info.to_le(), Ordering::Release);
        self.produced += 1;
    }
}

struct EqDev {
    w: Mutex<EntryWriter<EQE_SIZE>>,
    id: u32,
}

impl EqDev {
    fn post(&self, e: &Eqe) {
        let b = e.encode();
        let info = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        lock(&self.w).write(&b[..12], info);
    }
}

struct CqState {
    w: EntryWriter<CQE_SIZE>,
}

/// A CQ. Writers (the device side of one queue) hold `st`; doorbells are
/// lock-free so a driver polling its CQ never waits for a sender.
struct CqDev {
    st: Mutex<CqState>,
    id: u32,
    n: u64,
    eq: Option<Arc<EqDev>>,
    /// `tail_ptr` of the last CQ doorbell (head mod 8n).
    db_tail: AtomicU64,
    armed: AtomicBool,
    /// CQEs written (mirror of the writer's count, for doorbells).
    produced: AtomicU64,
}

impl CqDev {
    fn new(entries: u32, id: u32, eq: Option<Arc<EqDev>>) -> Result<CqDev, DeviceError> {
        let n = entries.max(64).next_power_of_two();
        let ring = Ring::new(n as usize * CQE_SIZE, id)?;
        Ok(CqDev {
            st: Mutex::new(CqState { w: EntryWriter::new(ring) }),
            id,
            n: n as u64,
            eq,
            db_tail: AtomicU64::new(n as u64),
            armed: AtomicBool::new(false),
            produced: AtomicU64::new(0),
        })
    }

    fn info(&self) -> RingInfo {
        lock(&self.st).w.ring.info()
    }

    /// The driver's consumed count (device numbering, from 0) at its last
    /// doorbell. Its head starts at n and is at most produced + n; by the
    /// doorbell rule it is within 8 wraps, so tail = head mod 8n pins it.
    fn db_consumed(&self, produced: u64) -> u64 {
        let n8 = self.n * 8;
        let tail = self.db_tail.load(Ordering::Acquire) % n8;
        let top = produced + self.n;
        let head = top.saturating_sub((top + n8 - tail) % n8);
        head.saturating_sub(self.n)
    }

    fn signal(&self, c: &Counters) {
        if self.armed.swap(false, Ordering::AcqRel) {
            if let Some(eq) = &self.eq {
                eq.post(&Eqe::completion(self.id));
                c.eqes.inc();
            }
        }
    }

    fn write(&self, st: &mut CqState, data: &[u8; 60], info: CqeInfo, c: &Counters) {
        st.w.write(data, info.encode());
        let p = st.w.produced;
        self.produced.store(p, Ordering::Release);
        let lag = p.saturating_sub(self.db_consumed(p));
        if lag > c.cq_doorbell_lag_max.load(Ordering::Relaxed) {
            c.cq_doorbell_lag_max.fetch_max(lag, Ordering::Relaxed);
        }
        if self.armed.load(Ordering::Relaxed) {
            self.signal(c);
        }
    }

    fn doorbell(&self, tail: u32, arm: bool, c: &Counters) {
        self.db_tail.store(tail as u64, Ordering::Release);
        if arm {
            self.armed.store(true, Ordering::SeqCst);
            let p = self.produced.load(Ordering::SeqCst);
            if p > self.db_consumed(p) {
                // Unconsumed completions are already there: signal now.
                self.signal(c);
            }
        }
    }
}

struct WqState {
    /// Bytes consumed (free-running).
    consumed: u32,
    /// Producer position from the last doorbell, in bytes.
    posted: u32,
}

/// An SQ's device state, with scratch space kept across doorbells.
struct SqState {
    wq: WqState,
    items: Vec<TxItem>,
    gather: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    frames: Vec<(*const u8, usize)>,
}

// SAFETY: the raw pointers in the scratch vectors are only meaningful
// during one doorbell's processing, under the SQ lock.
unsafe impl Send for SqState {}

struct SqDev {
    ring: Ring,
    st: Mutex<SqState>,
    cq: Arc<CqDev>,
    vp_offset: u16,
}

struct RqDev {
    ring: Ring,
    st: Mutex<WqState>,
    /// Producer position from the last RQ doorbell (lock-free).
    posted: AtomicU32,
    cq: Arc<CqDev>,
}

#[derive(Default)]
struct Queues {
    sq: HashMap<u32, Arc<SqDev>>,
    rq: HashMap<u32, Arc<RqDev>>,
    cq: HashMap<u32, Arc<CqDev>>,
    /// RX queues in RSS order.
    rx: Vec<Arc<RqDev>>,
    /// TX queues in creation order.
    tx: Vec<Arc<SqDev>>,
    eq: Option<Arc<EqDev>>,
}

struct Inner {
    cfg: EmuConfig,
    status: AtomicU8,
    events: Mutex<VecDeque<DeviceEvent>>,
    keys: ArcSwap<Vec<MemKey>>,
    keys_lock: Mutex<()>,
    next_key: AtomicU32,
    next_qid: AtomicU32,
    queues: ArcSwap<Queues>,
    queues_lock: Mutex<()>,
    rss: ArcSwap<RssTable>,
    peer: ArcSwapOption<Inner>,
    c: Counters,
    f: Faults,
    stop: AtomicBool,
}

/// An emulated MANA device (one vPort).
pub struct EmuDevice {
    inner: Arc<Inner>,
    rx_thread: Mutex<Option<JoinHandle<()>>>,
}

static PAIRS: Mutex<BTreeMap<String, [Option<Arc<Inner>>; 2]>> = Mutex::new(BTreeMap::new());

impl EmuDevice {
    /// Creates a device and attaches it to its link.
    pub fn new(cfg: EmuConfig) -> Result<Arc<EmuDevice>, DeviceError> {
        if cfg.max_queues == 0 || cfg.max_mtu < 68 || cfg.max_mtu > 9000 {
            return Err(DeviceError::Invalid(format!(
                "emulated device {}: max_queues must be > 0 and max_mtu 68..=9000",
                cfg.name
            )));
        }
        let inner = Arc::new(Inner {
            status: AtomicU8::new(UP),
            events: Mutex::new(VecDeque::new()),
            keys: ArcSwap::from_pointee(Vec::new()),
            keys_lock: Mutex::new(()),
            next_key: AtomicU32::new(0x100),
            next_qid: AtomicU32::new(1),
            queues: ArcSwap::from_pointee(Queues::default()),
            queues_lock: Mutex::new(()),
            rss: ArcSwap::from_pointee(RssTable::new(&RssConfig::spread(1))),
            peer: ArcSwapOption::empty(),
            c: Counters::default(),
            f: Faults::default(),
            stop: AtomicBool::new(false),
            cfg,
        });
        let dev = Arc::new(EmuDevice { inner: inner.clone(), rx_thread: Mutex::new(None) });
        match &inner.cfg.link {
            EmuLink::None => {}
            EmuLink::Pair(w) => {
                let mut pairs = lock(&PAIRS);
                let ends = pairs.entry(w.clone()).or_insert([None, None]);
                let Some(slot) = ends.iter().position(|e| e.is_none()) else {
                    return Err(DeviceError::Invalid(format!("emulated wire {w:?} already has two devices")));
                };
                if let Some(peer) = &ends[1 - slot] {
                    peer.peer.store(Some(inner.clone()));
                    inner.peer.store(Some(peer.clone()));
                }
                ends[slot] = Some(inner.clone());
            }
            EmuLink::Io(io) => {
                let io = io.clone();
                let me = inner.clone();
                let h = std::thread::Builder::new()
                    .name(format!("emu-rx:{}", inner.cfg.name))
                    .spawn(move || me.io_rx_loop(&*io))
                    .map_err(DeviceError::Io)?;
                *lock(&dev.rx_thread) = Some(h);
            }
        }
        Ok(dev)
    }

    /// Injects a fault.
    pub fn inject(&self, f: Fault) {
        let i = &self.inner;
        match f {
            Fault::TxError { cqe_type, count } => {
                i.f.tx_err_type.store(cqe_type, Ordering::Relaxed);
                i.f.tx_err_count.store(count, Ordering::Release);
            }
            Fault::Truncate { count } => i.f.truncate.store(count, Ordering::Release),
            Fault::DropDoorbells { count } => i.f.drop_db.store(count, Ordering::Release),
            Fault::Garbage(g) => {
                lock(&i.f.garbage).push_back(g);
                i.f.any_garbage.store(true, Ordering::Release);
            }
            Fault::Reset => {
                if i.status.compare_exchange(UP, RESETTING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    if let Some(eq) = &i.queues.load().eq {
                        let mut e = Eqe { eqe_type: EQE_RESET_REQUEST, ..Default::default() };
                        e.details[..4].copy_from_slice(&1u32.to_le_bytes());
                        eq.post(&e);
                        i.c.eqes.inc();
                    }
                    lock(&i.events).push_back(DeviceEvent::Reset);
                }
            }
            Fault::Remove => {
                // The device stops all DMA and forgets its registrations.
                // Ring memory stays mapped until the driver destroys the
                // queues (with rdma-core it is the driver's own memory).
                if i.status.swap(REMOVED, Ordering::AcqRel) != REMOVED {
                    let _g = lock(&i.keys_lock);
                    i.keys.store(Arc::new(Vec::new()));
                    lock(&i.events).push_back(DeviceEvent::Removed);
                }
            }
            Fault::Restore => {
                if i.status.compare_exchange(REMOVED, UP, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    lock(&i.events).push_back(DeviceEvent::Returned);
                }
            }
        }
    }

    /// A snapshot of the device-side counters.
    pub fn stats(&self) -> EmuStats {
        let c = &self.inner.c;
        EmuStats {
            tx_frames: c.tx_frames.get(),
            tx_errors: c.tx_errors.get(),
            rx_frames: c.rx_frames.get(),
            rx_cqes: c.rx_cqes.get(),
            rx_coalesced_cqes: c.rx_coalesced_cqes.get(),
            rx_no_wqe: c.rx_no_wqe.get(),
            dma_errors: c.dma_errors.get(),
            link_drops: c.link_drops.get(),
            doorbells: c.doorbells.get(),
            doorbells_dropped: c.doorbells_dropped.get(),
            doorbells_bad: c.doorbells_bad.get(),
            cq_doorbell_lag_max: c.cq_doorbell_lag_max.load(Ordering::Relaxed),
            eqes: c.eqes.get(),
        }
    }

    /// Receives `frame` from the wire as if it arrived on the port (for
    /// tests and generators without a peer device).
    pub fn receive(&self, frame: &[u8]) {
        self.inner.deliver(&[(frame.as_ptr(), frame.len())]);
    }

    /// Receives a batch of frames from the wire (up to 32 share the
    /// device's per-batch work, as a burst arriving at once would).
    pub fn receive_many(&self, frames: &[&[u8]]) {
        let mut v = [(std::ptr::null::<u8>(), 0usize); BATCH];
        for chunk in frames.chunks(BATCH) {
            for (d, f) in v.iter_mut().zip(chunk) {
                *d = (f.as_ptr(), f.len());
            }
            self.inner.deliver(&v[..chunk.len()]);
        }
    }

    /// Writes `raw` as the next CQE of RX queue `queue`'s CQ (`rx`) or TX
    /// queue `queue`'s CQ: with correct owner bits unless `raw_owner`, in
    /// which case the 64 bytes go in as they are. For fuzzing the driver's
    /// completion handling. Returns false if the queue does not exist.
    pub fn write_raw_cqe(&self, rx: bool, queue: usize, raw: &[u8; CQE_SIZE], raw_owner: bool) -> bool {
        let q = self.inner.queues.load();
        let cq = if rx { q.rx.get(queue).map(|r| &r.cq) } else { q.tx.get(queue).map(|s| &s.cq) };
        let Some(cq) = cq else { return false };
        let mut st = lock(&cq.st);
        let (body, info) = cqe_split(raw);
        if raw_owner {
            let slot = (st.w.produced % st.w.n as u64) as usize * CQE_SIZE;
            let p = st.w.ring.ptr(slot);
            // SAFETY: the slot lies inside the CQ ring.
            unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), p, CQE_SIZE) };
            st.w.produced += 1;
        } else {
            cq.write(&mut st, body, info, &self.inner.c);
        }
        true
    }

    /// Whether the device is up (not resetting or removed).
    pub fn is_up(&self) -> bool {
        self.inner.status.load(Ordering::Acquire) == UP
    }

    /// The number of memory registrations alive.
    pub fn registrations(&self) -> usize {
        self.inner.keys.load().len()
    }
}

impl Drop for EmuDevice {
    fn drop(&mut self) {
        let i = &self.inner;
        i.stop.store(true, Ordering::Release);
        if let Some(h) = lock(&self.rx_thread).take() {
            let _ = h.join();
        }
        if let EmuLink::Pair(w) = &i.cfg.link {
            let mut pairs = lock(&PAIRS);
            if let Some(ends) = pairs.get_mut(w) {
                for e in ends.iter_mut() {
                    if e.as_ref().is_some_and(|e| Arc::ptr_eq(e, i)) {
                        *e = None;
                    } else if let Some(other) = e {
                        other.peer.store(None);
                    }
                }
                if ends.iter().all(|e| e.is_none()) {
                    pairs.remove(w);
                }
            }
            i.peer.store(None);
        }
    }
}

/// Result of resolving an SGE.
fn resolve(keys: &[MemKey], sge: &Sge) -> Option<*mut u8> {
    let k = keys.iter().find(|k| k.key == sge.mem_key)?;
    let a = usize::try_from(sge.address).ok()?;
    let end = a.checked_add(sge.size as usize)?;
    if a < k.base || end > k.base + k.len {
        return None;
    }
    Some(a as *mut u8)
}

/// A frame of a TX batch: where its bytes are (registered memory or the
/// gather scratch) and the WQE it came from.
struct TxItem {
    ptr: *const u8,
    len: usize,
    wqe_off: u32,
    bu: u32,
    suppress: bool,
    /// 0 = sent; else the error CQE type.
    err: u8,
    vendor_err: u32,
}

impl Inner {
    fn up(&self) -> bool {
        self.status.load(Ordering::Acquire) == UP
    }

    fn new_qid(&self) -> u32 {
        self.next_qid.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff
    }

    fn publish(&self, f: impl FnOnce(&mut Queues)) {
        let _g = lock(&self.queues_lock);
        let cur = self.queues.load();
        let mut q = Queues {
            sq: cur.sq.clone(),
            rq: cur.rq.clone(),
            cq: cur.cq.clone(),
            rx: cur.rx.clone(),
            tx: cur.tx.clone(),
            eq: cur.eq.clone(),
        };
        f(&mut q);
        self.queues.store(Arc::new(q));
    }

    fn io_rx_loop(&self, io: &dyn FrameIo) {
        let mut buf = vec![0u8; MAX_FRAME];
        while !self.stop.load(Ordering::Acquire) {
            // Frames stay with the back-end until the driver has RX queues
            // with posted buffers: the thread starts with the device, before
            // the driver has built anything, and a pcap replay read now would
            // be lost (`link_drops`) before the port could ever see it.
            if !self.rx_ready() {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            match io.wait(Duration::from_millis(20)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            for _ in 0..BATCH {
                match io.recv(&mut buf) {
                    Ok(Some(n)) if n <= buf.len() => self.deliver(&[(buf.as_ptr(), n)]),
                    Ok(Some(_)) => self.c.link_drops.inc(),
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
        }
    }

    /// Whether received frames have somewhere to go: the device is up and
    /// every RX queue has had buffers posted by an RQ doorbell.
    fn rx_ready(&self) -> bool {
        let q = self.queues.load();
        self.up() && !q.rx.is_empty() && q.rx.iter().all(|rq| rq.posted.load(Ordering::Acquire) != 0)
    }

    /// Processes an SQ from its consumer position to the doorbell tail.
    fn run_sq(&self, sq: &SqDev, tail: u32) {
        let mut guard = lock(&sq.st);
        let st = &mut *guard;
        st.wq.posted = tail;
        let keys = self.keys.load();
        let mask = (sq.ring.size - 1) as u32;
        while st.wq.consumed != st.wq.posted {
            st.items.clear();
            st.gather.clear();
            st.ranges.clear();
            while st.wq.consumed != st.wq.posted && st.items.len() < BATCH {
                let off = st.wq.consumed & mask;
                let it = self.parse_tx_wqe(sq, off, &keys, &mut st.gather, &mut st.ranges);
                st.wq.consumed = st.wq.consumed.wrapping_add(it.bu * BU as u32);
                st.items.push(it);
            }
            // Point gathered frames into the scratch now that it no longer
            // grows.
            for (it, &(start, len)) in st.items.iter_mut().zip(st.ranges.iter()) {
                if start != usize::MAX {
                    it.ptr = st.gather[start..].as_ptr();
                    it.len = len;
                }
            }
            st.frames.clear();
            st.frames.extend(st.items.iter().filter(|i| i.err == 0).map(|i| (i.ptr, i.len)));
            self.transmit(&st.frames);
            let mut cq = lock(&sq.cq.st);
            for it in &st.items {
                if it.err != 0 {
                    self.c.tx_errors.inc();
                } else {
                    self.c.tx_frames.inc();
                }
                // Error completions are generated even when suppressed.
                if it.suppress && it.err == 0 {
                    continue;
                }
                let comp = TxCompOob {
                    cqe_type: if it.err == 0 { CQE_TX_OKAY } else { it.err },
                    client_type: CLIENT_TYPE_ETH,
                    vendor_err: it.vendor_err,
                    tx_data_offset: 0,
                    tx_sgl_offset: 0,
                    tx_wqe_offset: it.wqe_off,
                };
                let info = CqeInfo { wq_num: sq.ring.id, is_sq: true, owner_bits: 0 };
                sq.cq.write(&mut cq, &comp.encode(), info, &self.c);
            }
        }
    }

    /// Reads one TX WQE at `off`; gathers multi-SGE frames into `gather`.
    fn parse_tx_wqe(
        &self,
        sq: &SqDev,
        off: u32,
        keys: &[MemKey],
        gather: &mut Vec<u8>,
        ranges: &mut Vec<(usize, usize)>,
    ) -> TxItem {
        let hdr = WqeHeader::decode(&sq.ring.read::<8>(off as usize));
        let oob_len = hdr.inline_oob_size_div4 as usize * 4;
        let nsge = hdr.num_sge as usize;
        let mut it =
            TxItem { ptr: std::ptr::null(), len: 0, wqe_off: off, bu: 1, suppress: false, err: 0, vendor_err: 0 };
        ranges.push((usize::MAX, 0));
        if (oob_len != SHORT_OOB_SIZE && oob_len != LONG_OOB_SIZE) || nsge == 0 || nsge > MAX_TX_SGE {
            it.err = CQE_TX_INVALID_OOB;
            it.vendor_err = VENDOR_ERR_WQE;
            it.bu = if nsge > MAX_TX_SGE || oob_len > LONG_OOB_SIZE {
                1
            } else {
                (wqe_size(oob_len.max(8), nsge) / BU) as u32
            };
            return it;
        }
        it.bu = (wqe_size(oob_len, nsge) / BU) as u32;
        let oob = if oob_len == SHORT_OOB_SIZE {
            TxOob::decode_short(&sq.ring.read::<8>(off as usize + 8))
        } else {
            TxOob::decode_long(&sq.ring.read::<24>(off as usize + 8))
        };
        it.suppress = oob.supress_txcqe_gen;
        if let Some(e) = take_tx_fault(&self.f) {
            it.err = e;
            return it;
        }
        let vp = if oob.pkt_fmt == 1 { oob.long_vp_offset } else { oob.short_vp_offset as u16 };
        if oob.vcq_num != sq.cq.id || oob.vsq_frame != ((sq.ring.id >> 10) & 0x3fff) as u16 || oob.pkt_fmt > 1 {
            it.err = CQE_TX_INVALID_OOB;
            return it;
        }
        if vp != sq.vp_offset {
            it.err = CQE_TX_VPORT_IDX_OUT_OF_RANGE;
            return it;
        }
        let mut sges = [(std::ptr::null_mut::<u8>(), 0usize); MAX_TX_SGE];
        let mut total = 0usize;
        for (i, s) in sges.iter_mut().enumerate().take(nsge) {
            let so = off as usize + 8 + oob_len + i * SGE_SIZE;
            let sge = Sge::decode(&sq.ring.read::<16>(so));
            match resolve(keys, &sge) {
                Some(p) => *s = (p, sge.size as usize),
                None => {
                    self.c.dma_errors.inc();
                    it.err = CQE_TX_HDR_PROCESSING_ERROR;
                    it.vendor_err = VENDOR_ERR_DMA;
                    return it;
                }
            }
            total += sge.size as usize;
        }
        if total > self.cfg.max_mtu as usize + 18 {
            it.err = CQE_TX_MTU_DROP;
            return it;
        }
        if total < 14 {
            it.err = CQE_TX_INVALID_ETH_TYPE;
            return it;
        }
        let offload = oob.comp_iphdr_csum || oob.comp_tcp_csum || oob.comp_udp_csum;
        if nsge == 1 && !offload {
            it.ptr = sges[0].0;
            it.len = total;
            return it;
        }
        let start = gather.len();
        for &(p, n) in &sges[..nsge] {
            // SAFETY: (p, n) was resolved inside a registered range.
            gather.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
        }
        if offload {
            csum::tx_offload(&mut gather[start..], &oob);
        }
        *ranges.last_mut().expect("pushed above") = (start, total);
        it
    }

    /// Puts frames on the wire.
    fn transmit(&self, frames: &[(*const u8, usize)]) {
        if frames.is_empty() {
            return;
        }
        match &self.cfg.link {
            EmuLink::None => self.c.link_drops.add(frames.len() as u64),
            EmuLink::Pair(_) => match self.peer.load_full() {
                Some(peer) => peer.deliver(frames),
                None => self.c.link_drops.add(frames.len() as u64),
            },
            EmuLink::Io(io) => {
                for &(p, n) in frames {
                    // SAFETY: (p, n) is a resolved registered range or the
                    // gather scratch, alive for this call.
                    if io.send(unsafe { std::slice::from_raw_parts(p, n) }).is_err() {
                        self.c.link_drops.inc();
                    }
                }
            }
        }
    }

    /// Receives frames from the wire.
    fn deliver(&self, frames: &[(*const u8, usize)]) {
        if !self.up() {
            self.c.link_drops.add(frames.len() as u64);
            return;
        }
        let q = self.queues.load();
        if q.rx.is_empty() {
            self.c.link_drops.add(frames.len() as u64);
            return;
        }
        let rss = self.rss.load();
        let mut input = [0u8; MAX_INPUT];
        let mut i = 0;
        while i < frames.len() {
            // Group consecutive frames for the same RQ.
            let pick = |f: &(*const u8, usize), input: &mut [u8; MAX_INPUT]| {
                // SAFETY: frames are valid for their length during delivery.
                let b = unsafe { std::slice::from_raw_parts(f.0, f.1) };
                let (n, ty) = flow_input(b, rss.l4, input);
                let hash = if n > 0 { rss.toeplitz.hash(&input[..n]) } else { 0 };
                let rq = rss.reta.get((hash & rss.mask) as usize).copied().unwrap_or(0) as usize;
                (rq.min(q.rx.len() - 1), hash, ty)
            };
            let first = pick(&frames[i], &mut input);
            let mut group: [(usize, u32, RssType); BATCH] = [(0, 0, RssType::None); BATCH];
            let mut g = 0;
            group[0] = (i, first.1, first.2);
            g += 1;
            let mut j = i + 1;
            while j < frames.len() && g < BATCH {
                let p = pick(&frames[j], &mut input);
                if p.0 != first.0 {
                    break;
                }
                group[g] = (j, p.1, p.2);
                g += 1;
                j += 1;
            }
            self.rx_into(&q.rx[first.0], frames, &group[..g]);
            i = j;
        }
    }

    /// Writes frames into one RQ's posted buffers and completes them.
    fn rx_into(&self, rq: &RqDev, frames: &[(*const u8, usize)], group: &[(usize, u32, RssType)]) {
        let keys = self.keys.load();
        let mut st = lock(&rq.st);
        let posted = rq.posted.load(Ordering::Acquire);
        // The device never takes more than the ring holds: a doorbell
        // beyond that is ignored.
        if posted.wrapping_sub(st.consumed) <= rq.ring.size as u32 {
            st.posted = posted;
        } else {
            self.c.doorbells_bad.inc();
        }
        let mut cq = lock(&rq.cq.st);
        let mask = (rq.ring.size - 1) as u32;
        let mut open: Option<RxCompOob> = None;
        let mut open_n = 0;
        let flush = |open: &mut Option<RxCompOob>, open_n: &mut usize, cq: &mut CqState| {
            if let Some(mut o) = open.take() {
                if *open_n > 1 {
                    o.cqe_type = CQE_RX_COALESCED_4;
                    self.c.rx_coalesced_cqes.inc();
                }
                let info = CqeInfo { wq_num: rq.ring.id, is_sq: false, owner_bits: 0 };
                rq.cq.write(cq, &o.encode(), info, &self.c);
                self.c.rx_cqes.inc();
            }
            *open_n = 0;
        };
        for &(fi, hash, ty) in group {
            let (fp, flen) = frames[fi];
            if self.f.any_garbage.load(Ordering::Relaxed) {
                if let Some(g) = self.take_garbage() {
                    flush(&mut open, &mut open_n, &mut cq);
                    if !self.garbage_cqe(rq, &mut st, &mut cq, g) {
                        continue; // the frame went with the garbage
                    }
                }
            }
            if st.consumed == st.posted {
                self.c.rx_no_wqe.inc();
                continue;
            }
            let off = st.consumed & mask;
            let hdr = WqeHeader::decode(&rq.ring.read::<8>(off as usize));
            let nsge = hdr.num_sge as usize;
            let oob_len = hdr.inline_oob_size_div4 as usize * 4;
            let mut oob = RxCompOob { client_type: CLIENT_TYPE_ETH, rx_wqe_offset: off, ..Default::default() };
            if oob_len != RX_OOB_SIZE || nsge == 0 || nsge > MAX_RX_SGE {
                st.consumed = st.consumed.wrapping_add(BU as u32);
                flush(&mut open, &mut open_n, &mut cq);
                oob.cqe_type = CQE_RX_TRUNCATED;
                oob.vendor_err = VENDOR_ERR_WQE;
                open = Some(oob);
                open_n = 1;
                flush(&mut open, &mut open_n, &mut cq);
                continue;
            }
            st.consumed = st.consumed.wrapping_add(wqe_size(oob_len, nsge) as u32);
            // Resolve the SGL before writing anything.
            let mut sges = [(std::ptr::null_mut::<u8>(), 0usize); MAX_RX_SGE];
            let mut room = 0usize;
            let mut dma_ok = true;
            for (k, s) in sges.iter_mut().enumerate().take(nsge) {
                let sge = Sge::decode(&rq.ring.read::<16>(off as usize + 16 + k * SGE_SIZE));
                match resolve(&keys, &sge) {
                    Some(p) => *s = (p, sge.size as usize),
                    None => dma_ok = false,
                }
                room += sge.size as usize;
            }
            let truncate = take(&self.f.truncate);
            if !dma_ok || truncate || flen > room {
                if !dma_ok {
                    self.c.dma_errors.inc();
                    oob.vendor_err = VENDOR_ERR_DMA;
                }
                flush(&mut open, &mut open_n, &mut cq);
                oob.cqe_type = CQE_RX_TRUNCATED;
                open = Some(oob);
                open_n = 1;
                flush(&mut open, &mut open_n, &mut cq);
                continue;
            }
            // SAFETY: frames are valid for their length during delivery.
            let src = unsafe { std::slice::from_raw_parts(fp, flen) };
            let mut done = 0;
            for &(p, n) in &sges[..nsge] {
                let k = n.min(flen - done);
                // SAFETY: (p, n) lies in a registered range; k <= n.
                unsafe { std::ptr::copy_nonoverlapping(src[done..].as_ptr(), p, k) };
                done += k;
                if done == flen {
                    break;
                }
            }
            self.c.rx_frames.inc();
            let mut flags = RxCompOob { rx_hashtype: hash_bits(ty), ..Default::default() };
            if self.cfg.rx_csum {
                csum::rx_flags(src, &mut flags);
            }
            let same = open.as_ref().is_some_and(|o| {
                self.cfg.coalesce
                    && open_n < 4
                    && o.rx_hashtype == flags.rx_hashtype
                    && o.rx_iphdr_csum_succeed == flags.rx_iphdr_csum_succeed
                    && o.rx_iphdr_csum_fail == flags.rx_iphdr_csum_fail
                    && o.rx_tcp_csum_succeed == flags.rx_tcp_csum_succeed
                    && o.rx_tcp_csum_fail == flags.rx_tcp_csum_fail
                    && o.rx_udp_csum_succeed == flags.rx_udp_csum_succeed
                    && o.rx_udp_csum_fail == flags.rx_udp_csum_fail
            });
            if !same {
                flush(&mut open, &mut open_n, &mut cq);
                flags.cqe_type = CQE_RX_OKAY;
                flags.client_type = CLIENT_TYPE_ETH;
                flags.rx_wqe_offset = off;
                open = Some(flags);
            }
            let o = open.as_mut().expect("opened above");
            o.pkts[open_n] = RxPktInfo { pkt_len: flen as u16, pkt_hash: hash };
            open_n += 1;
            if !self.cfg.coalesce {
                flush(&mut open, &mut open_n, &mut cq);
            }
        }
        flush(&mut open, &mut open_n, &mut cq);
    }

    fn take_garbage(&self) -> Option<Garbage> {
        let mut g = lock(&self.f.garbage);
        let r = g.pop_front();
        if g.is_empty() {
            self.f.any_garbage.store(false, Ordering::Release);
        }
        r
    }

    /// Writes a garbage CQE; returns whether the frame should still be
    /// delivered normally.
    fn garbage_cqe(&self, rq: &RqDev, st: &mut WqState, cq: &mut CqState, g: Garbage) -> bool {
        let mut o = RxCompOob { cqe_type: CQE_RX_OKAY, client_type: CLIENT_TYPE_ETH, ..Default::default() };
        let mut wq = rq.ring.id;
        let consumes = matches!(g, Garbage::LenBeyondBuffer | Garbage::Len0);
        match g {
            Garbage::WrongWqNum => {
                wq ^= 0x5a5a;
                o.pkts[0].pkt_len = 60;
            }
            Garbage::BadType => {
                o.cqe_type = 17;
                o.pkts[0].pkt_len = 60;
            }
            Garbage::BadClientType => {
                o.client_type = 0;
                o.pkts[0].pkt_len = 60;
            }
            Garbage::LenBeyondBuffer => o.pkts[0].pkt_len = 9999,
            Garbage::Len0 => o.pkts[0].pkt_len = 0,
        }
        if consumes {
            if st.consumed == st.posted {
                self.c.rx_no_wqe.inc();
                return false;
            }
            st.consumed = st.consumed.wrapping_add(BU as u32);
        }
        let info = CqeInfo { wq_num: wq, is_sq: false, owner_bits: 0 };
        rq.cq.write(cq, &o.encode(), info, &self.c);
        !consumes
    }
}

fn take_tx_fault(f: &Faults) -> Option<u8> {
    if take(&f.tx_err_count) {
        Some(f.tx_err_type.load(Ordering::Relaxed))
    } else {
        None
    }
}

/// NDIS hash-type bits for an RSS type.
fn hash_bits(t: RssType) -> u16 {
    match t {
        RssType::None => 0,
        RssType::Ipv4 => HASH_IPV4,
        RssType::TcpIpv4 => HASH_TCP_IPV4,
        RssType::UdpIpv4 => HASH_UDP_IPV4,
        RssType::Ipv6 => HASH_IPV6,
        RssType::TcpIpv6 => HASH_TCP_IPV6,
        RssType::UdpIpv6 => HASH_UDP_IPV6,
    }
}

impl Device for EmuDevice {
    fn info(&self) -> DeviceInfo {
        let c = &self.inner.cfg;
        DeviceInfo { name: format!("emu:{}", c.name), mac: c.mac, max_queues: c.max_queues, max_mtu: c.max_mtu }
    }

    fn register_memory(&self, base: usize, len: usize) -> Result<u32, DeviceError> {
        let i = &self.inner;
        if !i.up() {
            return Err(DeviceError::Gone);
        }
        if len == 0 || base.checked_add(len).is_none() {
            return Err(DeviceError::Invalid(format!("cannot register {len} bytes at {base:#x}")));
        }
        let _g = lock(&i.keys_lock);
        let key = i.next_key.fetch_add(1, Ordering::Relaxed);
        let mut v = (**i.keys.load()).clone();
        v.push(MemKey { key, base, len });
        i.keys.store(Arc::new(v));
        Ok(key)
    }

    fn deregister_memory(&self, key: u32) {
        let i = &self.inner;
        let _g = lock(&i.keys_lock);
        let mut v = (**i.keys.load()).clone();
        v.retain(|k| k.key != key);
        i.keys.store(Arc::new(v));
    }

    fn create_eq(&self, entries: u32) -> Result<Option<RingInfo>, DeviceError> {
        let i = &self.inner;
        if !i.up() {
            return Err(DeviceError::Gone);
        }
        let id = i.new_qid();
        let n = entries.clamp(64, 1 << 16).next_power_of_two();
        let ring = Ring::new(n as usize * EQE_SIZE, id)?;
        let info = ring.info();
        let eq = Arc::new(EqDev { w: Mutex::new(EntryWriter::new(ring)), id });
        i.publish(|q| q.eq = Some(eq));
        Ok(Some(info))
    }

    fn create_tx_queue(&self, sq_bytes: usize, cq_entries: u32, eq: Option<u32>) -> Result<TxQueueRes, DeviceError> {
        let i = &self.inner;
        if !i.up() {
            return Err(DeviceError::Gone);
        }
        if !(4096..=1 << 20).contains(&sq_bytes) || !sq_bytes.is_power_of_two() {
            return Err(DeviceError::Invalid(format!("SQ size {sq_bytes} must be a power of two in 4 KiB..=1 MiB")));
        }
        let eqd = i.queues.load().eq.clone().filter(|e| Some(e.id) == eq);
        let cq = Arc::new(CqDev::new(cq_entries, i.new_qid(), eqd)?);
        let sq = Arc::new(SqDev {
            ring: Ring::new(sq_bytes, i.new_qid())?,
            st: Mutex::new(SqState {
                wq: WqState { consumed: 0, posted: 0 },
                items: Vec::with_capacity(BATCH),
                gather: Vec::with_capacity(BATCH * 2048),
                ranges: Vec::with_capacity(BATCH),
                frames: Vec::with_capacity(BATCH),
            }),
            cq: cq.clone(),
            vp_offset: i.cfg.vp_offset,
        });
        let res = TxQueueRes { sq: sq.ring.info(), cq: cq.info(), vp_offset: i.cfg.vp_offset };
        i.publish(|q| {
            q.cq.insert(cq.id, cq);
            q.tx.push(sq.clone());
            q.sq.insert(sq.ring.id, sq);
        });
        Ok(res)
    }

    fn create_rx_queues(
        &self,
        n: u16,
        rq_bytes: usize,
        cq_entries: u32,
        rss: &RssConfig,
        eq: Option<u32>,
    ) -> Result<Vec<RxQueueRes>, DeviceError> {
        let i = &self.inner;
        if !i.up() {
            return Err(DeviceError::Gone);
        }
        if n == 0 || n > i.cfg.max_queues {
            return Err(DeviceError::Invalid(format!("{n} RX queues (device has {})", i.cfg.max_queues)));
        }
        if !(4096..=1 << 20).contains(&rq_bytes) || !rq_bytes.is_power_of_two() {
            return Err(DeviceError::Invalid(format!("RQ size {rq_bytes} must be a power of two in 4 KiB..=1 MiB")));
        }
        rss.validate(n).map_err(|e| DeviceError::Invalid(e.to_string()))?;
        let eqd = i.queues.load().eq.clone().filter(|e| Some(e.id) == eq);
        let mut rqs = Vec::new();
        let mut res = Vec::new();
        for _ in 0..n {
            let cq = Arc::new(CqDev::new(cq_entries, i.new_qid(), eqd.clone())?);
            let rq = Arc::new(RqDev {
                ring: Ring::new(rq_bytes, i.new_qid())?,
                st: Mutex::new(WqState { consumed: 0, posted: 0 }),
                posted: AtomicU32::new(0),
                cq,
            });
            res.push(RxQueueRes { rq: rq.ring.info(), cq: rq.cq.info() });
            rqs.push(rq);
        }
        i.rss.store(Arc::new(RssTable::new(rss)));
        i.publish(|q| {
            for rq in &rqs {
                q.cq.insert(rq.cq.id, rq.cq.clone());
                q.rq.insert(rq.ring.id, rq.clone());
            }
            q.rx = rqs;
        });
        Ok(res)
    }

    fn set_rss(&self, rss: &RssConfig) -> Result<(), DeviceError> {
        let i = &self.inner;
        let n = i.queues.load().rx.len() as u16;
        if n > 0 {
            rss.validate(n).map_err(|e| DeviceError::Invalid(e.to_string()))?;
        }
        i.rss.store(Arc::new(RssTable::new(rss)));
        Ok(())
    }

    fn destroy_queues(&self) {
        let i = &self.inner;
        {
            let _g = lock(&i.queues_lock);
            i.queues.store(Arc::new(Queues::default()));
        }
        // A servicing reset completes once the driver has let go of its
        // queues: the device comes back with no queues or registrations.
        if i.status.compare_exchange(RESETTING, UP, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let _g = lock(&i.keys_lock);
            i.keys.store(Arc::new(Vec::new()));
            lock(&i.events).push_back(DeviceEvent::Returned);
        }
    }

    fn doorbell(&self, offset: u32, value: u64) {
        let i = &self.inner;
        i.c.doorbells.inc();
        if !i.up() {
            i.c.doorbells_dropped.inc();
            return;
        }
        let Some(db) = decode_doorbell(offset, value) else {
            i.c.doorbells_bad.inc();
            return;
        };
        let q = i.queues.load();
        match db {
            Doorbell::Sq { qid, tail } => {
                let Some(sq) = q.sq.get(&qid) else { return i.c.doorbells_bad.inc() };
                if take(&i.f.drop_db) {
                    return i.c.doorbells_dropped.inc();
                }
                i.run_sq(sq, tail);
            }
            Doorbell::Rq { qid, wqe_cnt, tail } => {
                let Some(rq) = q.rq.get(&qid) else { return i.c.doorbells_bad.inc() };
                if wqe_cnt != 0 {
                    return i.c.doorbells_bad.inc();
                }
                if take(&i.f.drop_db) {
                    return i.c.doorbells_dropped.inc();
                }
                rq.posted.store(tail, Ordering::Release);
            }
            Doorbell::Cq { qid, tail, arm } => match q.cq.get(&qid) {
                Some(cq) => cq.doorbell(tail, arm, &i.c),
                None => i.c.doorbells_bad.inc(),
            },
            Doorbell::Eq { qid, .. } => {
                if q.eq.as_ref().map(|e| e.id & 0xffff) != Some(qid) {
                    i.c.doorbells_bad.inc();
                }
            }
        }
    }

    fn poll_event(&self) -> Option<DeviceEvent> {
        lock(&self.inner.events).pop_front()
    }

    fn link_up(&self) -> bool {
        let i = &self.inner;
        i.up()
            && match &i.cfg.link {
                EmuLink::None => true,
                EmuLink::Pair(_) => i.peer.load().as_ref().is_some_and(|p| p.up()),
                EmuLink::Io(_) => true,
            }
    }
}
