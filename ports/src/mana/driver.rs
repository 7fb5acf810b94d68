//! The MANA port: queues, descriptors, completions and buffers.
//!
//! **RX** — each RX queue keeps `rx_ring` one-SGE WQEs posted, each of
//! exactly `mtu + 14` bytes (MANA.md §6), in a circular descriptor array.
//! Refill-before-deliver (§7, as Linux): for every completed packet the
//! replacement buffer is taken from the queue's page pool first; if the
//! pool is empty the packet is dropped (`refill_failed`) and its own buffer
//! is posted again, so the ring never loses a slot. The RQ doorbell is rung
//! once per burst. Truncated, oversize (length beyond the posted buffer) and
//! zero-length completions are dropped and counted, their buffers reposted.
//! CQEs for another queue, of an unknown type or client, or completing more
//! WQEs than are posted are counted (`bad_cqe`) and ignored: the device is
//! not trusted.
//!
//! **TX** — one WQE per packet (short OOB unless the vPort offset needs the
//! long form), checksum offload from the packet's flags, CQE suppression on
//! all but every 32nd WQE and the last of each burst. A CQE completes every
//! earlier suppressed WQE and its own (matched by `tx_wqe_offset`); error
//! CQEs arrive even for suppressed WQEs, so each WQE is freed exactly once,
//! error or not, and the SQ tail advances by its size.
//!
//! **Pools** — one [`PagePool`] per RX queue, created before the queue and
//! registered with the device; a buffer goes back to its pool wherever it
//! is dropped. Reconfiguration (MTU, ring sizes) builds the new pools first
//! and fails without touching the running queues when memory is short.
//!
//! **Servicing** — a service thread per port watches the device's events
//! and EQ. On a reset request or removal it stops the queues (each queue
//! handle notices at its next burst, outside any ring access), returns all
//! buffers, destroys the device queues and reports the link down; when the
//! device returns it registers memory and creates the queues again. Queue
//! handles held by workers stay valid throughout, and nothing outside the
//! port is touched.

use super::device::*;
use super::format::*;
use super::queue::*;
use crate::buf::{Offload, Pkt, PktBurst, RssType};
use crate::counter::{Counter, SharedCounter};
use crate::lock;
use crate::pool::{PagePool, PoolConfig};
use crate::port::*;
use crate::region::HugepagePolicy;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const DRIVER: &str = "mana";
const HEADROOM: u16 = 128;
/// One TX CQE is requested at least every this many WQEs.
const TX_CQE_EVERY: u32 = 32;
/// `supress_txcqe_gen`: bit 7 of the OOB's first byte.
const TX_OOB_SUPPRESS_BIT: u8 = 1 << 7;
/// EQ entries (Linux: 2048).
const EQ_ENTRIES: u32 = 2048;

/// Queue and buffer geometry of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub mtu: u16,
    /// RX descriptors (= posted WQEs) per queue.
    pub rx_ring: u32,
    /// TX descriptors per queue.
    pub tx_ring: u32,
}

impl Geometry {
    fn validate(&self, max_mtu: u16) -> Result<(), PortError> {
        if !(68..=max_mtu).contains(&self.mtu) {
            return Err(PortError::MtuOutOfRange { mtu: self.mtu, min: 68, max: max_mtu });
        }
        for (what, n) in [("rx_ring", self.rx_ring), ("tx_ring", self.tx_ring)] {
            if !n.is_power_of_two() || !(64..=8192).contains(&n) {
                return Err(PortError::InvalidConfig(format!("{what} must be a power of two in 64..=8192, got {n}")));
            }
        }
        Ok(())
    }

    /// Bytes the device may fill per RX buffer.
    fn datasize(&self) -> u32 {
        self.mtu as u32 + 14
    }

    fn buf_size(&self) -> u16 {
        (HEADROOM as u32 + self.datasize()).next_multiple_of(64) as u16
    }
}

const RX_DROPS: [&str; 7] = ["refill_failed", "truncated", "oversize", "len0", "bad_cqe", "dma_error", "stopped"];
const RX_REFILL: usize = 0;
const RX_TRUNC: usize = 1;
const RX_OVERSIZE: usize = 2;
const RX_LEN0: usize = 3;
const RX_BAD_CQE: usize = 4;
const RX_DMA: usize = 5;

#[derive(Default)]
struct RxCounters {
    packets: Counter,
    bytes: Counter,
    drops: [Counter; RX_DROPS.len()],
    /// CQEs carrying 1..=4 packets.
    cqe_pkts: [Counter; 4],
    fences: Counter,
    cq_overflow: Counter,
}

const TX_ERR_TYPES: usize = 10; // CQE types 33..=41 and "other"
#[derive(Default)]
struct TxCounters {
    packets: Counter,
    bytes: Counter,
    oversize: Counter,
    runt: Counter,
    link_down: Counter,
    no_key: Counter,
    bad_cqe: Counter,
    cqe_err: [Counter; TX_ERR_TYPES],
    short_oob: Counter,
    long_oob: Counter,
    stop: Counter,
    wake: Counter,
    cq_overflow: Counter,
}

/// What a queue's handle and the service thread share about its ring.
struct QueueSlot<R> {
    /// A handle exists.
    taken: AtomicBool,
    /// Set by the handle while it works on its ring (see `Shared::teardown`).
    busy: AtomicBool,
    /// A ring built by the service thread (or handed back by a handle) for
    /// the next handle to take.
    next: Mutex<Option<Box<R>>>,
}

/// Rings know which queue set (epoch) they belong to.
trait Epoch {
    fn epoch(&self) -> u64;
}

impl<R: Epoch> QueueSlot<R> {
    fn new() -> Self {
        QueueSlot { taken: AtomicBool::new(false), busy: AtomicBool::new(false), next: Mutex::new(None) }
    }

    /// The ring published for `epoch`, if any.
    fn take(&self, epoch: u64) -> Option<Box<R>> {
        let mut next = lock(&self.next);
        if next.as_ref().is_some_and(|r| r.epoch() == epoch) {
            next.take()
        } else {
            None
        }
    }

    /// A handle goes: a ring of the live queue set is handed back so its
    /// buffers stay posted for the next taker; a stale one is dropped (its
    /// buffers return to their pools).
    fn release(&self, ring: Option<Box<R>>, epoch: &AtomicU64) {
        self.busy.swap(true, Ordering::SeqCst);
        if let Some(r) = ring {
            if r.epoch() == epoch.load(Ordering::SeqCst) {
                let mut next = lock(&self.next);
                if next.is_none() {
                    *next = Some(r);
                }
            }
        }
        self.busy.store(false, Ordering::SeqCst);
        self.taken.store(false, Ordering::Release);
    }
}

struct RxSlot {
    q: QueueSlot<RxRing>,
    pool: Mutex<PagePool>,
    c: RxCounters,
}

struct TxSlot {
    q: QueueSlot<TxRing>,
    c: TxCounters,
}

/// Port-level event counters.
#[derive(Default)]
struct Events {
    resets: SharedCounter,
    removals: SharedCounter,
    returns: SharedCounter,
    eq_completions: SharedCounter,
    eq_overflow: SharedCounter,
    recoveries: SharedCounter,
    build_failures: SharedCounter,
}

struct Ctl {
    geo: Geometry,
    /// Registrations: (base, len, key).
    keys: Vec<(usize, usize, u32)>,
    eq: Option<EventQueue>,
    /// Pools replaced by a reconfiguration, kept until the port goes (their
    /// buffers may still be in flight).
    retired: Vec<PagePool>,
    rss: RssConfig,
    /// The device is gone; wait for it to return.
    removed: bool,
}

struct Shared {
    dev: Arc<dyn Device>,
    id: PortId,
    name: String,
    mac: MacAddr,
    max_mtu: u16,
    mtu: AtomicU16,
    hugepages: HugepagePolicy,
    heap: bool,
    pool_buffers: u32,
    /// Upper bound on RX pool memory (bytes) a reconfiguration may use.
    pool_mem_limit: usize,
    started: AtomicBool,
    /// Queues exist on the device and rings are published.
    running: AtomicBool,
    /// Bumped on every change of the queue set.
    epoch: AtomicU64,
    /// A handle saw a CQ overflow: recreate the queues.
    recover: AtomicBool,
    ctl: Mutex<Ctl>,
    rxq: Vec<RxSlot>,
    txq: Vec<TxSlot>,
    ev: Events,
    stop: AtomicBool,
}

/// A native MANA port over a [`Device`].
pub struct ManaPort {
    sh: Arc<Shared>,
    service: Mutex<Option<JoinHandle<()>>>,
}

fn dev_err(e: DeviceError) -> PortError {
    match e {
        DeviceError::Io(e) => PortError::Io(e),
        DeviceError::Unsupported(s) => PortError::Unsupported(s),
        e => PortError::InvalidConfig(e.to_string()),
    }
}

fn make_pool(
    name: &str,
    q: u16,
    geo: &Geometry,
    buffers: u32,
    hp: HugepagePolicy,
    heap: bool,
) -> Result<PagePool, PortError> {
    let cfg = PoolConfig {
        name: format!("{name}/rx{q}"),
        buffers,
        buf_size: geo.buf_size(),
        headroom: HEADROOM,
        hugepages: hp,
        ..Default::default()
    };
    Ok(if heap { PagePool::new_heap(&cfg)? } else { PagePool::new(&cfg)? })
}

impl ManaPort {
    /// Opens a port on `dev`. `cfg.args` may set `pool_mem_limit_mb` and
    /// `rx_buffers` (`pool`, the default, or `heap`: every RX buffer from
    /// the global allocator, for comparison only).
    pub fn open(cfg: &PortConfig, dev: Arc<dyn Device>) -> Result<ManaPort, PortError> {
        let heap = match cfg.args.get("rx_buffers").map(String::as_str) {
            None | Some("pool") => false,
            Some("heap") => true,
            Some(v) => {
                return Err(PortError::InvalidConfig(format!(
                    "port {}: rx_buffers must be pool or heap, got {v:?}",
                    cfg.name
                )))
            }
        };
        let di = dev.info();
        let geo = Geometry { mtu: cfg.mtu, rx_ring: cfg.rx_ring, tx_ring: cfg.tx_ring };
        geo.validate(di.max_mtu)?;
        let maxq = di.max_queues.min(64);
        for (what, n) in [("rx_queues", cfg.rx_queues), ("tx_queues", cfg.tx_queues)] {
            if n == 0 || n > maxq {
                return Err(PortError::InvalidConfig(format!("port {}: {what} must be 1..={maxq}, got {n}", cfg.name)));
            }
        }
        let pool_mem_limit = match cfg.args.get("pool_mem_limit_mb") {
            None => usize::MAX,
            Some(v) => v.parse::<usize>().map(|m| m << 20).map_err(|_| {
                PortError::InvalidConfig(format!("port {}: pool_mem_limit_mb {v:?} is not a number", cfg.name))
            })?,
        };
        let pool_buffers = cfg.pool_buffers;
        let buffers = pool_size(pool_buffers, &geo);
        let need = pool_bytes(buffers, &geo) * cfg.rx_queues as usize;
        if need > pool_mem_limit {
            return Err(PortError::InvalidConfig(format!(
                "port {}: RX pools need {} MiB, over pool_mem_limit_mb {}",
                cfg.name,
                need >> 20,
                pool_mem_limit >> 20
            )));
        }
        let rxq = (0..cfg.rx_queues)
            .map(|q| {
                Ok(RxSlot {
                    q: QueueSlot::new(),
                    pool: Mutex::new(make_pool(&cfg.name, q, &geo, buffers, cfg.hugepages, heap)?),
                    c: RxCounters::default(),
                })
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        let txq = (0..cfg.tx_queues).map(|_| TxSlot { q: QueueSlot::new(), c: TxCounters::default() }).collect();
        let sh = Arc::new(Shared {
            id: cfg.id,
            name: cfg.name.clone(),
            mac: di.mac,
            max_mtu: di.max_mtu,
            mtu: AtomicU16::new(cfg.mtu),
            hugepages: cfg.hugepages,
            heap,
            pool_buffers,
            pool_mem_limit,
            started: AtomicBool::new(false),
            running: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            recover: AtomicBool::new(false),
            ctl: Mutex::new(Ctl {
                geo,
                keys: Vec::new(),
                eq: None,
                retired: Vec::new(),
                rss: RssConfig::spread(cfg.rx_queues),
                removed: false,
            }),
            rxq,
            txq,
            ev: Events::default(),
            stop: AtomicBool::new(false),
            dev,
        });
        {
            let mut ctl = lock(&sh.ctl);
            sh.build(&mut ctl).map_err(dev_err)?;
        }
        let s2 = sh.clone();
        let h = std::thread::Builder::new()
            .name(format!("mana-svc:{}", cfg.name))
            .spawn(move || s2.service_loop())
            .map_err(PortError::Io)?;
        Ok(ManaPort { sh, service: Mutex::new(Some(h)) })
    }

    /// The current queue geometry.
    pub fn geometry(&self) -> Geometry {
        lock(&self.sh.ctl).geo
    }

    /// Changes MTU and ring sizes. New pools are allocated first; if memory
    /// is short the call fails and the port keeps running as it was.
    pub fn reconfigure(&self, geo: Geometry) -> Result<(), PortError> {
        let sh = &self.sh;
        geo.validate(sh.max_mtu)?;
        let mut ctl = lock(&sh.ctl);
        if ctl.geo == geo {
            return Ok(());
        }
        let old = ctl.geo;
        // Buffers must change when the data size or the ring grows past
        // what the pools were sized for.
        let new_pools = if geo.buf_size() != old.buf_size()
            || pool_size(sh.pool_buffers, &geo) > pool_size(sh.pool_buffers, &old)
        {
            let buffers = pool_size(sh.pool_buffers, &geo);
            let need = pool_bytes(buffers, &geo) * sh.rxq.len();
            if need > sh.pool_mem_limit {
                return Err(PortError::Pool(crate::pool::PoolError::NoMemory(std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!(
                        "port {}: new RX buffers need {} MiB, over the {} MiB limit; port unchanged",
                        sh.name,
                        need >> 20,
                        sh.pool_mem_limit >> 20
                    ),
                ))));
            }
            let pools = (0..sh.rxq.len() as u16)
                .map(|q| make_pool(&sh.name, q, &geo, buffers, sh.hugepages, sh.heap))
                .collect::<Result<Vec<_>, PortError>>()?;
            Some(pools)
        } else {
            None
        };
        sh.teardown(&mut ctl);
        if let Some(pools) = new_pools {
            for (slot, p) in sh.rxq.iter().zip(pools) {
                let old = std::mem::replace(&mut *lock(&slot.pool), p);
                ctl.retired.push(old);
            }
        }
        ctl.geo = geo;
        sh.mtu.store(geo.mtu, Ordering::Relaxed);
        let r = sh.build(&mut ctl).map_err(dev_err);
        if r.is_err() {
            sh.ev.build_failures.inc();
        }
        r
    }

    /// Takes TX queue `q` as its concrete type (for multi-segment sends).
    pub fn mana_tx_queue(&self, q: QueueId) -> Result<ManaTxQueue, PortError> {
        let slot = self
            .sh
            .txq
            .get(q.0 as usize)
            .ok_or(PortError::QueueOutOfRange { queue: q, queues: self.sh.txq.len() as u16 })?;
        if slot.q.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        Ok(ManaTxQueue { sh: self.sh.clone(), q: q.0 as usize, epoch: u64::MAX, ring: None })
    }

    /// Port-level servicing counters: (name, value).
    pub fn events(&self) -> Vec<(&'static str, u64)> {
        let e = &self.sh.ev;
        vec![
            ("resets", e.resets.get()),
            ("removals", e.removals.get()),
            ("returns", e.returns.get()),
            ("eq_completions", e.eq_completions.get()),
            ("eq_overflow", e.eq_overflow.get()),
            ("recoveries", e.recoveries.get()),
            ("build_failures", e.build_failures.get()),
        ]
    }

    /// Whether the device queues exist (false while resetting or removed).
    pub fn is_running(&self) -> bool {
        self.sh.running.load(Ordering::Acquire)
    }

    /// Buffers posted to RX queue `q` right now (its ring, wherever it is).
    pub fn rx_pool_in_use(&self, q: QueueId) -> Option<u64> {
        self.sh.rxq.get(q.0 as usize).map(|s| lock(&s.pool).in_use())
    }
}

/// Pool size: the ring, plus room for buffers in flight through the
/// pipeline and other ports' TX rings.
fn pool_size(configured: u32, geo: &Geometry) -> u32 {
    if configured != 0 {
        configured.max(geo.rx_ring + 64)
    } else {
        geo.rx_ring * 2 + 2048
    }
}

fn pool_bytes(buffers: u32, geo: &Geometry) -> usize {
    buffers as usize * (crate::buf::META_SIZE + geo.buf_size() as usize).next_multiple_of(64)
}

impl Shared {
    /// Registration key for a memory region, registering it on first use.
    fn key_for(&self, ctl: &mut Ctl, base: usize, len: usize) -> Result<u32, DeviceError> {
        if let Some(k) = ctl.keys.iter().find(|k| k.0 == base && k.1 == len) {
            return Ok(k.2);
        }
        let key = self.dev.register_memory(base, len)?;
        ctl.keys.push((base, len, key));
        Ok(key)
    }

    /// Creates the device queues and publishes fresh rings. Called with the
    /// control lock held and no rings in use.
    fn build(&self, ctl: &mut Ctl) -> Result<(), DeviceError> {
        let geo = ctl.geo;
        let eq = self.dev.create_eq(EQ_ENTRIES)?;
        // SAFETY: the EQ ring stays valid until destroy_queues, which only
        // teardown calls, after dropping this EventQueue.
        ctl.eq = eq.map(|r| unsafe { EventQueue::new(r) });
        let eq_id = ctl.eq.as_ref().map(|e| e.id());
        if let Some(e) = &ctl.eq {
            self.dev.doorbell(DB_EQ, e.doorbell(true));
        }
        let epoch = self.epoch.load(Ordering::Acquire) + 1;
        let sq_bytes = (geo.tx_ring as usize * BU).max(4096);
        let mut tx = Vec::new();
        for _ in &self.txq {
            let res = match self.dev.create_tx_queue(sq_bytes, geo.tx_ring, eq_id) {
                Ok(r) => r,
                Err(e) => {
                    self.dev.destroy_queues();
                    ctl.eq = None;
                    return Err(e);
                }
            };
            tx.push(TxRing::new(res, geo, epoch));
        }
        let rq_bytes = (geo.rx_ring as usize * BU).max(4096);
        let rx = match self.dev.create_rx_queues(self.rxq.len() as u16, rq_bytes, geo.rx_ring, &ctl.rss, eq_id) {
            Ok(r) => r,
            Err(e) => {
                self.dev.destroy_queues();
                ctl.eq = None;
                return Err(e);
            }
        };
        let mut rings = Vec::new();
        for (q, res) in rx.into_iter().enumerate() {
            let pool = lock(&self.rxq[q].pool).clone();
            let (base, len) = pool.memory();
            let key = match self.key_for(ctl, base, len) {
                Ok(k) => k,
                Err(e) => {
                    self.dev.destroy_queues();
                    ctl.eq = None;
                    return Err(e);
                }
            };
            let mut r = RxRing::new(res, geo, key, pool, epoch, self.id.0, q as u16);
            r.top_up(&self.rxq[q].c);
            self.dev.doorbell(DB_RQ, db_rq(r.rq.id(), r.rq.doorbell_tail()));
            let db = r.cq.doorbell(true);
            self.dev.doorbell(DB_CQ, db);
            rings.push(r);
        }
        for (slot, r) in self.rxq.iter().zip(rings) {
            *lock(&slot.q.next) = Some(Box::new(r));
        }
        for (slot, r) in self.txq.iter().zip(tx) {
            *lock(&slot.q.next) = Some(Box::new(r));
        }
        self.epoch.store(epoch, Ordering::Release);
        self.running.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops every queue: bumps the epoch so handles let go of their rings,
    /// waits until no handle is inside a burst, drops unclaimed rings and
    /// destroys the device queues.
    fn teardown(&self, ctl: &mut Ctl) {
        self.running.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        // A handle sets `busy` (a full barrier) before reading the epoch, so
        // once `busy` is seen clear here any later burst sees the new epoch
        // and touches no ring.
        for b in self.rxq.iter().map(|s| &s.q.busy).chain(self.txq.iter().map(|s| &s.q.busy)) {
            while b.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
        for s in &self.rxq {
            lock(&s.q.next).take();
        }
        for s in &self.txq {
            lock(&s.q.next).take();
        }
        ctl.eq = None;
        self.dev.destroy_queues();
    }

    fn forget_keys(&self, ctl: &mut Ctl, device_alive: bool) {
        for (_, _, k) in ctl.keys.drain(..) {
            if device_alive {
                self.dev.deregister_memory(k);
            }
        }
    }

    fn service_loop(&self) {
        let mut last_try = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(2));
            let mut ctl = lock(&self.ctl);
            // EQ: completion events and servicing requests.
            let mut reset = false;
            let mut eq_db = None;
            if let Some(eq) = ctl.eq.as_mut() {
                let mut seen = 0;
                loop {
                    match eq.poll() {
                        Polled::Entry(e) => {
                            seen += 1;
                            match e.eqe_type {
                                EQE_COMPLETION => self.ev.eq_completions.inc(),
                                EQE_RESET_REQUEST | EQE_FPGA_RECONFIG => reset = true,
                                _ => {}
                            }
                        }
                        Polled::Empty => break,
                        Polled::Overflow => {
                            // Events are lost, completions are not: catch
                            // up with the device. Only an EQ that cannot be
                            // resynchronised makes the queues be rebuilt.
                            self.ev.eq_overflow.inc();
                            if !eq.resync() {
                                self.recover.store(true, Ordering::Release);
                                break;
                            }
                        }
                    }
                }
                if seen > 0 {
                    eq_db = Some(eq.doorbell(true));
                }
            }
            if let Some(db) = eq_db {
                if !reset {
                    self.dev.doorbell(DB_EQ, db);
                }
            }
            while let Some(ev) = self.dev.poll_event() {
                match ev {
                    DeviceEvent::Reset => reset = true,
                    DeviceEvent::Removed => {
                        self.ev.removals.inc();
                        self.teardown(&mut ctl);
                        self.forget_keys(&mut ctl, false);
                        ctl.removed = true;
                        reset = false;
                    }
                    DeviceEvent::Returned => {
                        self.ev.returns.inc();
                        ctl.removed = false;
                        if !self.running.load(Ordering::Acquire) && self.started.load(Ordering::Acquire) {
                            if self.build(&mut ctl).is_err() {
                                self.ev.build_failures.inc();
                            }
                            last_try = Instant::now();
                        }
                    }
                }
            }
            if reset && self.running.load(Ordering::Acquire) {
                self.ev.resets.inc();
                // Registrations die with the reset; the device returns once
                // its queues are destroyed (Returned event).
                self.teardown(&mut ctl);
                self.forget_keys(&mut ctl, false);
            }
            if self.recover.swap(false, Ordering::AcqRel) && self.running.load(Ordering::Acquire) {
                self.ev.recoveries.inc();
                self.teardown(&mut ctl);
                if self.build(&mut ctl).is_err() {
                    self.ev.build_failures.inc();
                }
            }
            // A build that failed (device busy, memory) is retried.
            if !ctl.removed
                && self.started.load(Ordering::Acquire)
                && !self.running.load(Ordering::Acquire)
                && last_try.elapsed() > Duration::from_secs(1)
            {
                last_try = Instant::now();
                if self.build(&mut ctl).is_err() {
                    self.ev.build_failures.inc();
                }
            }
        }
    }
}

impl Drop for ManaPort {
    fn drop(&mut self) {
        self.sh.stop.store(true, Ordering::Release);
        if let Some(h) = lock(&self.service).take() {
            let _ = h.join();
        }
        let sh = &self.sh;
        let mut ctl = lock(&sh.ctl);
        sh.teardown(&mut ctl);
        let alive = !ctl.removed;
        sh.forget_keys(&mut ctl, alive);
    }
}

impl Port for ManaPort {
    fn info(&self) -> PortInfo {
        let sh = &self.sh;
        PortInfo {
            id: sh.id,
            name: sh.name.clone(),
            driver: DRIVER,
            mac: sh.mac,
            mtu: sh.mtu.load(Ordering::Relaxed),
            rx_queues: sh.rxq.len() as u16,
            tx_queues: sh.txq.len() as u16,
            capabilities: Capabilities {
                rx_ip_csum: true,
                rx_l4_csum: true,
                tx_ip_csum: true,
                tx_l4_csum: true,
                rss: true,
                max_mtu: sh.max_mtu,
                max_rx_queues: sh.dev.info().max_queues.min(64),
                max_tx_queues: sh.dev.info().max_queues.min(64),
            },
        }
    }

    fn start(&self) -> Result<(), PortError> {
        let sh = &self.sh;
        let mut ctl = lock(&sh.ctl);
        if !sh.running.load(Ordering::Acquire) && !ctl.removed {
            sh.build(&mut ctl).map_err(dev_err)?;
        }
        sh.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops RX and TX and destroys the device queues: every posted and
    /// in-flight buffer goes back to its pool. `start` creates them again.
    fn stop(&self) -> Result<(), PortError> {
        let sh = &self.sh;
        let mut ctl = lock(&sh.ctl);
        sh.started.store(false, Ordering::Release);
        if sh.running.load(Ordering::Acquire) {
            sh.teardown(&mut ctl);
        }
        Ok(())
    }

    fn is_started(&self) -> bool {
        self.sh.started.load(Ordering::Acquire)
    }

    fn link(&self) -> LinkState {
        let sh = &self.sh;
        let up = sh.started.load(Ordering::Acquire) && sh.running.load(Ordering::Acquire) && sh.dev.link_up();
        LinkState { up, speed_mbps: if up { 200_000 } else { 0 } }
    }

    fn set_mtu(&self, mtu: u16) -> Result<(), PortError> {
        let g = self.geometry();
        self.reconfigure(Geometry { mtu, ..g })
    }

    fn rss(&self) -> RssConfig {
        lock(&self.sh.ctl).rss.clone()
    }

    fn set_rss(&self, cfg: &RssConfig) -> Result<(), PortError> {
        cfg.validate(self.sh.rxq.len() as u16)?;
        let mut ctl = lock(&self.sh.ctl);
        if self.sh.running.load(Ordering::Acquire) {
            self.sh.dev.set_rss(cfg).map_err(dev_err)?;
        }
        ctl.rss = cfg.clone();
        Ok(())
    }

    fn rx_queue(&self, q: QueueId) -> Result<Box<dyn RxQueue>, PortError> {
        let slot = self
            .sh
            .rxq
            .get(q.0 as usize)
            .ok_or(PortError::QueueOutOfRange { queue: q, queues: self.sh.rxq.len() as u16 })?;
        if slot.q.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        let pool = lock(&slot.pool).clone();
        Ok(Box::new(ManaRxQueue {
            sh: self.sh.clone(),
            q: q.0 as usize,
            epoch: u64::MAX,
            ring: None,
            pool,
            bound_here: false,
        }))
    }

    fn tx_queue(&self, q: QueueId) -> Result<Box<dyn TxQueue>, PortError> {
        Ok(Box::new(self.mana_tx_queue(q)?))
    }

    fn rx_stats(&self, q: QueueId) -> Option<RxQueueStats> {
        let s = self.sh.rxq.get(q.0 as usize)?;
        let c = &s.c;
        let mut drops: Vec<(&'static str, u64)> =
            RX_DROPS.iter().zip(c.drops.iter()).map(|(n, v)| (*n, v.get())).collect();
        drops.push(("cq_overflow", c.cq_overflow.get()));
        Some(RxQueueStats {
            queue: QueueStats {
                packets: c.packets.get(),
                bytes: c.bytes.get(),
                drops,
                counters: vec![
                    ("cqe_1pkt", c.cqe_pkts[0].get()),
                    ("cqe_coalesced_2", c.cqe_pkts[1].get()),
                    ("cqe_coalesced_3", c.cqe_pkts[2].get()),
                    ("cqe_coalesced_4", c.cqe_pkts[3].get()),
                    ("object_fence", c.fences.get()),
                ],
            },
            pool: lock(&s.pool).stats(),
        })
    }

    fn tx_stats(&self, q: QueueId) -> Option<QueueStats> {
        let c = &self.sh.txq.get(q.0 as usize)?.c;
        let mut drops = vec![
            ("oversize", c.oversize.get()),
            ("runt", c.runt.get()),
            ("link_down", c.link_down.get()),
            ("no_mem_key", c.no_key.get()),
            ("bad_cqe", c.bad_cqe.get()),
            ("cq_overflow", c.cq_overflow.get()),
        ];
        for (i, v) in c.cqe_err.iter().enumerate() {
            let name = if i < 9 { tx_cqe_type_name(CQE_TX_SA_DROP + i as u8) } else { "tx_err_other" };
            drops.push((name, v.get()));
        }
        Some(QueueStats {
            packets: c.packets.get(),
            bytes: c.bytes.get(),
            drops,
            counters: vec![
                ("short_oob", c.short_oob.get()),
                ("long_oob", c.long_oob.get()),
                ("queue_stop", c.stop.get()),
                ("queue_wake", c.wake.get()),
            ],
        })
    }

    fn rx_pool(&self, q: QueueId) -> Option<PagePool> {
        self.sh.rxq.get(q.0 as usize).map(|s| lock(&s.pool).clone())
    }
}

/// RX descriptor ring of one queue, owned by its handle while running.
struct RxRing {
    epoch: u64,
    rq: WorkQueue,
    cq: CompletionQueue,
    /// Posted buffers in WQE order: `desc[tail % n]` is the oldest.
    desc: Box<[Option<Pkt>]>,
    head: u32,
    tail: u32,
    mask: u32,
    key: u32,
    datasize: u32,
    pool: PagePool,
    port: u16,
    queue: u16,
    /// The CQ is armed (an event is requested on the next completion).
    armed: bool,
    /// Packets of a coalesced completion that did not fit in the caller's
    /// burst; delivered first next time.
    stash: [Option<Pkt>; 3],
    /// Next stashed packet to deliver, and how many were stashed.
    stash_pos: usize,
    stash_len: usize,
}

impl Epoch for RxRing {
    fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl RxRing {
    fn new(res: RxQueueRes, geo: Geometry, key: u32, pool: PagePool, epoch: u64, port: u16, queue: u16) -> RxRing {
        let n = geo.rx_ring;
        RxRing {
            epoch,
            // SAFETY: the rings stay valid until destroy_queues, which
            // teardown calls only after every handle has stopped using
            // them (epoch + busy protocol).
            rq: unsafe { WorkQueue::new(res.rq) },
            // SAFETY: as above.
            cq: unsafe { CompletionQueue::new(res.cq) },
            desc: (0..n).map(|_| None).collect(),
            head: 0,
            tail: 0,
            mask: n - 1,
            key,
            datasize: geo.datasize(),
            pool,
            port,
            queue,
            armed: true,
            stash: [None, None, None],
            stash_pos: 0,
            stash_len: 0,
        }
    }

    #[inline]
    fn outstanding(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }

    /// Posts `p` at the head.
    #[inline]
    fn post(&mut self, p: Pkt) -> bool {
        let sge = Sge { address: p.data_addr() as u64, mem_key: self.key, size: self.datasize };
        let hdr = WqeHeader { num_sge: 1, inline_oob_size_div4: 2, ..Default::default() };
        if self.rq.post(&hdr, &[0u8; 8], &[sge]).is_err() {
            return false;
        }
        self.desc[(self.head & self.mask) as usize] = Some(p);
        self.head = self.head.wrapping_add(1);
        true
    }

    /// Fills empty descriptors from the pool; returns how many were posted.
    fn top_up(&mut self, c: &RxCounters) -> u32 {
        let mut n = 0;
        while self.outstanding() <= self.mask {
            let Some(p) = self.pool.alloc() else {
                c.drops[RX_REFILL].add(0);
                break;
            };
            if !self.post(p) {
                break;
            }
            n += 1;
        }
        n
    }

    /// Completes the oldest WQE: returns its buffer.
    #[inline]
    fn take_oldest(&mut self) -> Option<Pkt> {
        if self.outstanding() == 0 {
            return None;
        }
        let p = self.desc[(self.tail & self.mask) as usize].take();
        self.tail = self.tail.wrapping_add(1);
        self.rq.complete(1);
        p
    }
}

fn rx_offload(o: &RxCompOob) -> Offload {
    let mut f = Offload::default();
    if o.rx_iphdr_csum_succeed {
        f = f | Offload::RX_IP_CSUM_GOOD;
    }
    if o.rx_iphdr_csum_fail {
        f = f | Offload::RX_IP_CSUM_BAD;
    }
    if o.rx_tcp_csum_succeed || o.rx_udp_csum_succeed {
        f = f | Offload::RX_L4_CSUM_GOOD;
    }
    if o.rx_tcp_csum_fail || o.rx_udp_csum_fail {
        f = f | Offload::RX_L4_CSUM_BAD;
    }
    f
}

fn rss_type(bits: u16) -> RssType {
    if bits & (HASH_TCP_IPV4) != 0 {
        RssType::TcpIpv4
    } else if bits & HASH_UDP_IPV4 != 0 {
        RssType::UdpIpv4
    } else if bits & (HASH_TCP_IPV6 | HASH_TCP_IPV6_EX) != 0 {
        RssType::TcpIpv6
    } else if bits & (HASH_UDP_IPV6 | HASH_UDP_IPV6_EX) != 0 {
        RssType::UdpIpv6
    } else if bits & HASH_IPV4 != 0 {
        RssType::Ipv4
    } else if bits & (HASH_IPV6 | HASH_IPV6_EX) != 0 {
        RssType::Ipv6
    } else {
        RssType::None
    }
}

/// An RX queue handle.
pub struct ManaRxQueue {
    sh: Arc<Shared>,
    q: usize,
    epoch: u64,
    ring: Option<Box<RxRing>>,
    pool: PagePool,
    /// This handle bound `pool` to its thread (after a pool swap).
    bound_here: bool,
}

impl Drop for ManaRxQueue {
    fn drop(&mut self) {
        self.sh.rxq[self.q].q.release(self.ring.take(), &self.sh.epoch);
        if self.bound_here {
            // The pool this handle took over after a reconfiguration: give
            // its cached buffers back before this thread goes away.
            let _ = self.pool.unbind();
        }
    }
}

impl ManaRxQueue {
    /// The queue set changed: let go of the old ring (its buffers go back
    /// to the pool) and take the new one, if any.
    #[cold]
    fn resync(&mut self, epoch: u64) {
        self.ring = None;
        self.epoch = epoch;
        self.ring = self.sh.rxq[self.q].q.take(epoch);
        if let Some(r) = &self.ring {
            if !PagePool::ptr_eq(&r.pool, &self.pool) {
                // A reconfiguration replaced the pool: this thread owns the
                // new one from now on.
                if self.bound_here {
                    let _ = self.pool.unbind();
                }
                self.pool = r.pool.clone();
                self.bound_here = self.pool.bind_current_thread().is_ok();
            }
        }
    }

    fn burst(&mut self, out: &mut PktBurst) -> usize {
        let epoch = self.sh.epoch.load(Ordering::SeqCst);
        if epoch != self.epoch {
            self.resync(epoch);
        }
        let sh = &*self.sh;
        let c = &sh.rxq[self.q].c;
        let Some(r) = self.ring.as_deref_mut() else { return 0 };
        if !sh.started.load(Ordering::Relaxed) {
            return 0;
        }
        let before = out.len();
        // Packets left over from a coalesced completion go first.
        while r.stash_pos < r.stash_len && out.remaining() > 0 {
            if let Some(p) = r.stash[r.stash_pos].take() {
                let _ = out.push(p);
            }
            r.stash_pos += 1;
        }
        if r.stash_pos < r.stash_len {
            return out.len() - before;
        }
        r.stash_pos = 0;
        r.stash_len = 0;
        let (mut pkts, mut bytes) = (0u64, 0u64);
        let mut reposted = false;
        let mut found = 0u32;
        while out.remaining() > 0 {
            let cqe = match r.cq.poll() {
                Polled::Entry(e) => e,
                Polled::Empty => break,
                Polled::Overflow => {
                    c.cq_overflow.inc();
                    sh.recover.store(true, Ordering::Release);
                    break;
                }
            };
            found += 1;
            let (data, info) = cqe_split(&cqe);
            if info.is_sq || info.wq_num != r.rq.id() {
                c.drops[RX_BAD_CQE].inc();
                continue;
            }
            let oob = RxCompOob::decode(data);
            if oob.client_type != CLIENT_TYPE_ETH {
                c.drops[RX_BAD_CQE].inc();
                continue;
            }
            let n = match oob.cqe_type {
                CQE_RX_OKAY => 1,
                CQE_RX_COALESCED_4 => 4,
                CQE_RX_TRUNCATED => {
                    // The WQE is consumed; its buffer goes back in place.
                    match r.take_oldest() {
                        Some(p) => {
                            c.drops[if oob.vendor_err != 0 { RX_DMA } else { RX_TRUNC }].inc();
                            reposted |= r.post(p);
                        }
                        None => c.drops[RX_BAD_CQE].inc(),
                    }
                    continue;
                }
                CQE_RX_OBJECT_FENCE => {
                    c.fences.inc();
                    continue;
                }
                _ => {
                    c.drops[RX_BAD_CQE].inc();
                    continue;
                }
            };
            let mut k = 0;
            for (i, pi) in oob.pkts.iter().take(n).enumerate() {
                let len = pi.pkt_len as u32;
                if len == 0 {
                    if i == 0 {
                        // An empty first slot is an error, and the WQE was
                        // used: drop and repost.
                        c.drops[RX_LEN0].inc();
                        if let Some(p) = r.take_oldest() {
                            reposted |= r.post(p);
                        }
                    }
                    break;
                }
                let Some(mut old) = r.take_oldest() else {
                    // More packets than posted WQEs: a lying completion.
                    c.drops[RX_BAD_CQE].inc();
                    break;
                };
                k += 1;
                if len > r.datasize {
                    c.drops[RX_OVERSIZE].inc();
                    reposted |= r.post(old);
                    continue;
                }
                // Refill before deliver: no replacement, no delivery.
                let Some(new) = r.pool.alloc() else {
                    c.drops[RX_REFILL].inc();
                    reposted |= r.post(old);
                    continue;
                };
                reposted |= r.post(new);
                old.set_len(len as usize);
                old.set_port(r.port);
                old.set_queue(r.queue);
                old.set_rss(pi.pkt_hash, rss_type(oob.rx_hashtype));
                old.set_offload(rx_offload(&oob));
                pkts += 1;
                bytes += len as u64;
                if out.remaining() > 0 {
                    let _ = out.push(old);
                } else {
                    // At most 3 of a CQE's 4 packets can miss the burst.
                    if let Some(slot) = r.stash.get_mut(r.stash_len) {
                        *slot = Some(old);
                        r.stash_len += 1;
                    }
                }
            }
            if k > 0 {
                c.cqe_pkts[k - 1].inc();
            }
        }
        if r.outstanding() <= r.mask {
            reposted |= r.top_up(c) > 0;
        }
        if reposted {
            sh.dev.doorbell(DB_RQ, db_rq(r.rq.id(), r.rq.doorbell_tail()));
        }
        // CQ doorbells: acknowledge at least every 4 wraps; arm when idle.
        if found == 0 && !r.armed {
            r.armed = true;
            let db = r.cq.doorbell(true);
            sh.dev.doorbell(DB_CQ, db);
        } else if found > 0 {
            r.armed = false;
            if r.cq.since_doorbell() >= 4 * r.cq.entries() as u64 {
                let db = r.cq.doorbell(false);
                sh.dev.doorbell(DB_CQ, db);
            }
        }
        c.packets.add(pkts);
        c.bytes.add(bytes);
        out.len() - before
    }
}

impl RxQueue for ManaRxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.q as u16)
    }

    fn pool(&self) -> &PagePool {
        &self.pool
    }

    fn rx_burst(&mut self, out: &mut PktBurst) -> usize {
        // A full barrier before the epoch is read (see Shared::teardown).
        self.sh.rxq[self.q].q.busy.swap(true, Ordering::SeqCst);
        let n = self.burst(out);
        self.sh.rxq[self.q].q.busy.store(false, Ordering::Release);
        n
    }
}

/// One in-flight TX WQE.
struct TxDesc {
    /// Held until the completion; dropping it returns the buffer.
    _pkt: Pkt,
    /// Further segments of a multi-segment packet.
    _more: Vec<Pkt>,
    bu: u32,
    off: u32,
    suppressed: bool,
}

/// TX ring of one queue.
struct TxRing {
    epoch: u64,
    sq: WorkQueue,
    cq: CompletionQueue,
    desc: Box<[Option<TxDesc>]>,
    head: u32,
    tail: u32,
    mask: u32,
    cq_id: u32,
    vp_offset: u16,
    /// Registered regions this queue has seen: (base, end, key).
    keys: Vec<(usize, usize, u32)>,
    since_cqe: u32,
    stopped: bool,
    armed: bool,
}

impl Epoch for TxRing {
    fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl TxRing {
    fn new(res: TxQueueRes, geo: Geometry, epoch: u64) -> TxRing {
        let n = geo.tx_ring;
        TxRing {
            epoch,
            // SAFETY: valid until destroy_queues; see RxRing::new.
            sq: unsafe { WorkQueue::new(res.sq) },
            // SAFETY: as above.
            cq: unsafe { CompletionQueue::new(res.cq) },
            desc: (0..n).map(|_| None).collect(),
            head: 0,
            tail: 0,
            mask: n - 1,
            cq_id: res.cq.id,
            vp_offset: res.vp_offset,
            keys: Vec::new(),
            since_cqe: 0,
            stopped: false,
            armed: false,
        }
    }

    #[inline]
    fn outstanding(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }
}

/// Where the L3 and L4 headers are, for TX checksum offload.
fn l4_info(f: &[u8]) -> Option<(bool, usize, u8)> {
    let mut o = 12;
    let mut et = u16::from_be_bytes([*f.get(o)?, *f.get(o + 1)?]);
    if et == 0x8100 {
        o += 4;
        et = u16::from_be_bytes([*f.get(o)?, *f.get(o + 1)?]);
    }
    let l3 = o + 2;
    match et {
        0x0800 => {
            let ihl = (*f.get(l3)? & 0x0f) as usize * 4;
            Some((true, l3 + ihl, *f.get(l3 + 9)?))
        }
        0x86dd => Some((false, l3 + 40, *f.get(l3 + 6)?)),
        _ => None,
    }
}

/// A TX queue handle.
pub struct ManaTxQueue {
    sh: Arc<Shared>,
    q: usize,
    epoch: u64,
    ring: Option<Box<TxRing>>,
}

impl Drop for ManaTxQueue {
    fn drop(&mut self) {
        self.sh.txq[self.q].q.release(self.ring.take(), &self.sh.epoch);
    }
}

impl ManaTxQueue {
    #[cold]
    fn resync(&mut self, epoch: u64) {
        self.ring = None;
        self.epoch = epoch;
        self.ring = self.sh.txq[self.q].q.take(epoch);
    }

    /// Reaps TX completions: frees buffers and advances the SQ tail.
    fn reap(&mut self) {
        let sh = &*self.sh;
        let c = &sh.txq[self.q].c;
        let Some(r) = self.ring.as_deref_mut() else { return };
        let mut found = 0;
        loop {
            let cqe = match r.cq.poll() {
                Polled::Entry(e) => e,
                Polled::Empty => break,
                Polled::Overflow => {
                    c.cq_overflow.inc();
                    sh.recover.store(true, Ordering::Release);
                    break;
                }
            };
            found += 1;
            let (data, info) = cqe_split(&cqe);
            let oob = TxCompOob::decode(data);
            if !info.is_sq || info.wq_num != r.sq.id() || oob.client_type != CLIENT_TYPE_ETH {
                c.bad_cqe.inc();
                continue;
            }
            // Find the WQE this CQE is for among the outstanding ones.
            let out = r.outstanding();
            let mut hit = None;
            for k in 0..out {
                let i = (r.tail.wrapping_add(k) & r.mask) as usize;
                match &r.desc[i] {
                    Some(d) if d.off == oob.tx_wqe_offset => {
                        hit = Some(k);
                        break;
                    }
                    Some(d) if d.suppressed => {}
                    // A non-suppressed WQE before the match: its CQE is
                    // missing, so this one cannot be trusted.
                    _ => break,
                }
            }
            let Some(k) = hit else {
                c.bad_cqe.inc();
                continue;
            };
            let ok = oob.cqe_type == CQE_TX_OKAY;
            if !ok {
                let t = oob.cqe_type.wrapping_sub(CQE_TX_SA_DROP) as usize;
                c.cqe_err[t.min(TX_ERR_TYPES - 1)].inc();
            }
            for j in 0..=k {
                let i = (r.tail & r.mask) as usize;
                if let Some(d) = r.desc[i].take() {
                    r.sq.complete(d.bu);
                    // Dropping the packets returns their buffers.
                    let _ = j;
                    drop(d);
                }
                r.tail = r.tail.wrapping_add(1);
            }
        }
        if found > 0 {
            r.armed = false;
            if r.cq.since_doorbell() >= 4 * r.cq.entries() as u64 {
                let db = r.cq.doorbell(false);
                sh.dev.doorbell(DB_CQ, db);
            }
        } else if !r.armed && r.outstanding() == 0 {
            r.armed = true;
            let db = r.cq.doorbell(true);
            sh.dev.doorbell(DB_CQ, db);
        }
    }

    /// Sends one packet made of several buffers (a header and payload
    /// segments, for example). All or nothing: on failure the segments are
    /// returned.
    pub fn tx_chain(&mut self, segs: Vec<Pkt>) -> Result<(), Vec<Pkt>> {
        self.sh.txq[self.q].q.busy.swap(true, Ordering::SeqCst);
        let r = self.chain_inner(segs);
        self.sh.txq[self.q].q.busy.store(false, Ordering::Release);
        r
    }

    fn chain_inner(&mut self, mut segs: Vec<Pkt>) -> Result<(), Vec<Pkt>> {
        let epoch = self.sh.epoch.load(Ordering::SeqCst);
        if epoch != self.epoch {
            self.resync(epoch);
        }
        self.reap();
        let sh = &*self.sh;
        let c = &sh.txq[self.q].c;
        let Some(r) = self.ring.as_deref_mut() else { return Err(segs) };
        if segs.is_empty() || segs.len() > MAX_TX_SGE || r.outstanding() > r.mask {
            return Err(segs);
        }
        let mut sges = [Sge::default(); MAX_TX_SGE];
        let mut total = 0;
        for (i, p) in segs.iter().enumerate() {
            let Some(key) = key_of(sh, r, p) else {
                c.no_key.inc();
                return Err(segs);
            };
            sges[i] = Sge { address: p.data_addr() as u64, mem_key: key, size: p.len() as u32 };
            total += p.len();
        }
        if total > sh.mtu.load(Ordering::Relaxed) as usize + 18 || total < 14 {
            return Err(segs);
        }
        let oob = tx_oob(r, segs[0].data(), segs[0].offload(), false, c);
        let hdr =
            WqeHeader { num_sge: segs.len() as u8, inline_oob_size_div4: (oob.len / 4) as u8, ..Default::default() };
        let off = r.sq.offset_of(r.sq.head());
        let Ok(bu) = r.sq.post(&hdr, oob.bytes(), &sges[..segs.len()]) else { return Err(segs) };
        let first = segs.remove(0);
        r.desc[(r.head & r.mask) as usize] = Some(TxDesc { _pkt: first, _more: segs, bu, off, suppressed: false });
        r.head = r.head.wrapping_add(1);
        r.since_cqe = 0;
        c.packets.inc();
        c.bytes.add(total as u64);
        sh.dev.doorbell(DB_SQ, db_sq(r.sq.id(), r.sq.doorbell_tail()));
        Ok(())
    }

    fn burst(&mut self, pkts: &mut PktBurst) -> usize {
        let epoch = self.sh.epoch.load(Ordering::SeqCst);
        if epoch != self.epoch {
            self.resync(epoch);
        }
        if self.ring.is_none() || !self.sh.started.load(Ordering::Relaxed) || !self.sh.dev.link_up() {
            self.sh.txq[self.q].c.link_down.add(pkts.len() as u64);
            pkts.clear();
            return 0;
        }
        self.reap();
        let sh = &*self.sh;
        let c = &sh.txq[self.q].c;
        let Some(r) = self.ring.as_deref_mut() else { return 0 };
        let max = sh.mtu.load(Ordering::Relaxed) as usize + 18;
        let total = pkts.len();
        let (mut sent, mut bytes) = (0u32, 0u64);
        let mut idx = 0usize;
        let mut full = false;
        pkts.take_each(|p| {
            idx += 1;
            if full {
                return Some(p);
            }
            let len = p.len();
            if len > max {
                c.oversize.inc();
                return None;
            }
            if len < 14 {
                c.runt.inc();
                return None;
            }
            if r.outstanding() > r.mask {
                full = true;
                return Some(p);
            }
            let Some(key) = key_of(sh, r, &p) else {
                c.no_key.inc();
                return None;
            };
            // Ask for a CQE at least every TX_CQE_EVERY WQEs and for the
            // last packet of the burst.
            let suppress = idx != total && r.since_cqe + 1 < TX_CQE_EVERY;
            let oob = tx_oob(r, p.data(), p.offload(), suppress, c);
            let hdr = WqeHeader { num_sge: 1, inline_oob_size_div4: (oob.len / 4) as u8, ..Default::default() };
            let sge = Sge { address: p.data_addr() as u64, mem_key: key, size: len as u32 };
            let off = r.sq.offset_of(r.sq.head());
            match r.sq.post(&hdr, oob.bytes(), &[sge]) {
                Ok(bu) => {
                    r.since_cqe = if suppress { r.since_cqe + 1 } else { 0 };
                    r.desc[(r.head & r.mask) as usize] =
                        Some(TxDesc { _pkt: p, _more: Vec::new(), bu, off, suppressed: suppress });
                    r.head = r.head.wrapping_add(1);
                    sent += 1;
                    bytes += len as u64;
                    None
                }
                Err(NoSpace) => {
                    full = true;
                    Some(p)
                }
            }
        });
        if full {
            c.stop.inc();
            r.stopped = true;
            // The WQE before the cut may have been suppressed: make sure a
            // CQE will come by not leaving the ring's last WQE suppressed.
            // (Suppressed WQEs are completed by the next CQE; the next
            // burst always ends with a CQE-requesting WQE.)
        } else if r.stopped {
            c.wake.inc();
            r.stopped = false;
        }
        if sent > 0 {
            // The last WQE posted must ask for a CQE, or it (and the
            // suppressed ones before it) would wait for later traffic. The
            // burst may have ended early (ring full, drops), so clear its
            // suppress bit now, before the device is told about it.
            let last = (r.head.wrapping_sub(1) & r.mask) as usize;
            if let Some(d) = r.desc[last].as_mut().filter(|d| d.suppressed) {
                d.suppressed = false;
                r.sq.clear_oob_bits(d.off, 0, TX_OOB_SUPPRESS_BIT);
                r.since_cqe = 0;
            }
            sh.dev.doorbell(DB_SQ, db_sq(r.sq.id(), r.sq.doorbell_tail()));
        }
        c.packets.add(sent as u64);
        c.bytes.add(bytes);
        sent as usize
    }
}

impl TxQueue for ManaTxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.q as u16)
    }

    fn tx_burst(&mut self, pkts: &mut PktBurst) -> usize {
        self.sh.txq[self.q].q.busy.swap(true, Ordering::SeqCst);
        let n = self.burst(pkts);
        self.sh.txq[self.q].q.busy.store(false, Ordering::Release);
        n
    }
}

/// The key of the registered region holding `p`, registering its pool's
/// memory on first use (once per pool and queue).
#[inline]
fn key_of(sh: &Shared, r: &mut TxRing, p: &Pkt) -> Option<u32> {
    let a = p.data_addr();
    if let Some(&(_, _, k)) = r.keys.iter().find(|k| a >= k.0 && a < k.1) {
        return Some(k);
    }
    let (base, len) = p.pool_region();
    let mut ctl = lock(&sh.ctl);
    let k = sh.key_for(&mut ctl, base, len).ok()?;
    r.keys.push((base, base + len, k));
    Some(k)
}

/// An encoded TX OOB (short: 8 bytes, long: 24).
struct Oob {
    buf: [u8; LONG_OOB_SIZE],
    len: usize,
}

impl Oob {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Builds the TX OOB for a frame from its offload flags.
#[inline]
fn tx_oob(r: &TxRing, frame: &[u8], off: Offload, suppress: bool, c: &TxCounters) -> Oob {
    let mut o = TxOob {
        pkt_fmt: PKT_FMT_SHORT,
        supress_txcqe_gen: suppress,
        vcq_num: r.cq_id,
        vsq_frame: ((r.sq.id() >> 10) & 0x3fff) as u16,
        ..Default::default()
    };
    if off.0 & (Offload::TX_IP_CSUM.0 | Offload::TX_L4_CSUM.0) != 0 {
        if let Some((v4, l4, proto)) = l4_info(frame) {
            o.is_outer_ipv4 = v4;
            o.is_outer_ipv6 = !v4;
            o.comp_iphdr_csum = v4 && off.contains(Offload::TX_IP_CSUM);
            if off.contains(Offload::TX_L4_CSUM) && l4 < 1024 {
                o.comp_tcp_csum = proto == 6;
                o.comp_udp_csum = proto == 17;
                o.trans_off = l4 as u16;
            }
        }
    }
    let mut buf = [0u8; LONG_OOB_SIZE];
    if r.vp_offset > 0xff {
        o.pkt_fmt = PKT_FMT_LONG;
        o.long_vp_offset = r.vp_offset;
        buf = o.encode_long();
        c.long_oob.inc();
        Oob { buf, len: LONG_OOB_SIZE }
    } else {
        o.short_vp_offset = r.vp_offset as u8;
        buf[..SHORT_OOB_SIZE].copy_from_slice(&o.encode_short());
        c.short_oob.inc();
        Oob { buf, len: SHORT_OOB_SIZE }
    }
}
