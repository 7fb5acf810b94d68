//! The `mem` driver: an in-process Ethernet wire between two ports.
//!
//! Two ports that name the same `wire` in their args are connected back to
//! back; whatever one end transmits, the other receives. The wire carries
//! frames as bytes in single-producer single-consumer rings, one for every
//! (sender TX queue, receiver RX queue) pair, so no two threads ever write
//! the same ring. The sender hashes each frame with the *receiver's* RSS
//! configuration (Toeplitz, indirection table) to choose the receiver's RX
//! queue, as the receiving NIC would, and the receiver copies the frame into
//! a buffer of that queue's page pool.
//!
//! Args: `wire` (required) names the wire; `max_mtu` (default: the port's
//! MTU, at least 1500) sizes the wire's frame slots.
//!
//! Carrier: frames move only while both ends are started. A frame sent
//! while the peer is stopped or absent is dropped and counted
//! (`link_down`). Driver drops: RX `no_buffer` (pool empty), `oversize`
//! (frame above the receiver's MTU); TX `oversize`, `runt` (< 14 bytes),
//! `link_down`.

mod ring;

use crate::buf::{PktBurst, RssType};
use crate::counter::Counter;
use crate::lock;
use crate::pool::{PagePool, PoolConfig};
use crate::port::*;
use crate::rss::{flow_input, RssTable, MAX_INPUT};
use arc_swap::{ArcSwap, ArcSwapOption};
use ring::FrameRing;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

pub const DRIVER: &str = "mem";
/// Most RX or TX queues a mem port can have.
pub const MAX_QUEUES: u16 = 16;
const ETH_OVERHEAD: usize = 18; // header + one VLAN tag
const HEADROOM: u16 = 128;

#[derive(Default)]
struct TxCounters {
    packets: Counter,
    bytes: Counter,
    oversize: Counter,
    runt: Counter,
    link_down: Counter,
}

struct RxQueueShared {
    taken: AtomicBool,
    pool: PagePool,
    packets: Counter,
    bytes: Counter,
    no_buffer: Counter,
    oversize: Counter,
}

struct TxQueueShared {
    taken: AtomicBool,
    c: TxCounters,
}

struct EndShared {
    id: PortId,
    name: String,
    mac: MacAddr,
    mtu: AtomicU16,
    max_mtu: u16,
    started: AtomicBool,
    rx_ring: u32,
    rss_cfg: Mutex<RssConfig>,
    rss: ArcSwap<RssTable>,
    rxq: Vec<RxQueueShared>,
    txq: Vec<TxQueueShared>,
}

/// The rings of a connected wire. `dirs[e][t][q]` carries frames from end
/// `e`'s TX queue `t` to the other end's RX queue `q`.
struct Link {
    ends: [Arc<EndShared>; 2],
    dirs: [Vec<Vec<FrameRing>>; 2],
}

struct Wire {
    name: String,
    ends: Mutex<[Option<Arc<EndShared>>; 2]>,
    link: ArcSwapOption<Link>,
}

static WIRES: Mutex<BTreeMap<String, Arc<Wire>>> = Mutex::new(BTreeMap::new());

/// A `mem` port: one end of a named in-process wire.
pub struct MemPort {
    wire: Arc<Wire>,
    end: usize,
    shared: Arc<EndShared>,
}

fn build_link(a: &Arc<EndShared>, b: &Arc<EndShared>) -> Result<Link, PortError> {
    let frame = ETH_OVERHEAD + a.max_mtu.max(b.max_mtu) as usize;
    let dir = |tx: &EndShared, rx: &EndShared| -> Result<Vec<Vec<FrameRing>>, PortError> {
        (0..tx.txq.len())
            .map(|_| {
                (0..rx.rxq.len()).map(|_| FrameRing::new(rx.rx_ring as usize, frame).map_err(PortError::Io)).collect()
            })
            .collect()
    };
    Ok(Link { ends: [a.clone(), b.clone()], dirs: [dir(a, b)?, dir(b, a)?] })
}

impl MemPort {
    /// Opens one end of the wire named in `cfg.args["wire"]`.
    pub fn open(cfg: &PortConfig) -> Result<MemPort, PortError> {
        let wire_name = cfg
            .args
            .get("wire")
            .ok_or_else(|| PortError::InvalidConfig(format!("port {}: mem driver needs a `wire` name", cfg.name)))?;
        for k in cfg.args.keys() {
            if k != "wire" && k != "max_mtu" {
                return Err(PortError::InvalidConfig(format!(
                    "port {}: unknown mem driver arg {k:?} (known: wire, max_mtu)",
                    cfg.name
                )));
            }
        }
        let max_mtu = match cfg.args.get("max_mtu") {
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| PortError::InvalidConfig(format!("port {}: max_mtu {v:?} is not a number", cfg.name)))?,
            None => cfg.mtu.max(1500),
        };
        if !(68..=9000).contains(&max_mtu) || cfg.mtu < 68 || cfg.mtu > max_mtu {
            return Err(PortError::MtuOutOfRange { mtu: cfg.mtu, min: 68, max: max_mtu.min(9000) });
        }
        for (what, n) in [("rx_queues", cfg.rx_queues), ("tx_queues", cfg.tx_queues)] {
            if n == 0 || n > MAX_QUEUES {
                return Err(PortError::InvalidConfig(format!(
                    "port {}: {what} must be 1..={MAX_QUEUES}, got {n}",
                    cfg.name
                )));
            }
        }
        if cfg.rx_ring < 32 || cfg.rx_ring > 32768 {
            return Err(PortError::InvalidConfig(format!(
                "port {}: rx_ring must be 32..=32768, got {}",
                cfg.name, cfg.rx_ring
            )));
        }
        let buf_size = (HEADROOM as usize + ETH_OVERHEAD + max_mtu as usize).next_multiple_of(64);
        let buffers = if cfg.pool_buffers == 0 { 2048 } else { cfg.pool_buffers };
        let rxq = (0..cfg.rx_queues)
            .map(|q| {
                let pool = PagePool::new(&PoolConfig {
                    name: format!("{}/rx{q}", cfg.name),
                    buffers,
                    buf_size: buf_size as u16,
                    headroom: HEADROOM,
                    hugepages: cfg.hugepages,
                    ..Default::default()
                })?;
                Ok(RxQueueShared {
                    taken: AtomicBool::new(false),
                    pool,
                    packets: Counter::new(),
                    bytes: Counter::new(),
                    no_buffer: Counter::new(),
                    oversize: Counter::new(),
                })
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        let txq = (0..cfg.tx_queues)
            .map(|_| TxQueueShared { taken: AtomicBool::new(false), c: TxCounters::default() })
            .collect();
        let rss_cfg = RssConfig::spread(cfg.rx_queues);
        let shared = Arc::new(EndShared {
            id: cfg.id,
            name: cfg.name.clone(),
            mac: cfg.mac.unwrap_or_else(|| MacAddr::local(0x4d45_0000 | cfg.id.0 as u32)),
            mtu: AtomicU16::new(cfg.mtu),
            max_mtu,
            started: AtomicBool::new(false),
            rx_ring: cfg.rx_ring,
            rss: ArcSwap::from_pointee(RssTable::new(&rss_cfg)),
            rss_cfg: Mutex::new(rss_cfg),
            rxq,
            txq,
        });

        let mut wires = lock(&WIRES);
        let wire = wires
            .entry(wire_name.clone())
            .or_insert_with(|| {
                Arc::new(Wire { name: wire_name.clone(), ends: Mutex::new([None, None]), link: ArcSwapOption::empty() })
            })
            .clone();
        let mut ends = lock(&wire.ends);
        let end = ends.iter().position(|e| e.is_none()).ok_or_else(|| {
            PortError::InvalidConfig(format!("port {}: mem wire {wire_name:?} already has two ends", cfg.name))
        })?;
        let other = ends[1 - end].clone();
        if let Some(peer) = &other {
            let (a, b) = if end == 0 { (&shared, peer) } else { (peer, &shared) };
            wire.link.store(Some(Arc::new(build_link(a, b)?)));
        }
        ends[end] = Some(shared.clone());
        drop(ends);
        Ok(MemPort { wire, end, shared })
    }

    /// The name of the wire this port is attached to.
    pub fn wire(&self) -> &str {
        &self.wire.name
    }
}

impl Drop for MemPort {
    fn drop(&mut self) {
        let mut wires = lock(&WIRES);
        let mut ends = lock(&self.wire.ends);
        ends[self.end] = None;
        self.wire.link.store(None);
        if ends.iter().all(|e| e.is_none()) {
            wires.remove(&self.wire.name);
        }
    }
}

impl Port for MemPort {
    fn info(&self) -> PortInfo {
        let s = &self.shared;
        PortInfo {
            id: s.id,
            name: s.name.clone(),
            driver: DRIVER,
            mac: s.mac,
            mtu: s.mtu.load(Ordering::Relaxed),
            rx_queues: s.rxq.len() as u16,
            tx_queues: s.txq.len() as u16,
            capabilities: Capabilities {
                rss: true,
                max_mtu: s.max_mtu,
                max_rx_queues: MAX_QUEUES,
                max_tx_queues: MAX_QUEUES,
                ..Default::default()
            },
        }
    }

    fn start(&self) -> Result<(), PortError> {
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    fn stop(&self) -> Result<(), PortError> {
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    fn is_started(&self) -> bool {
        self.shared.started.load(Ordering::Acquire)
    }

    fn link(&self) -> LinkState {
        let g = self.wire.link.load();
        let up = match g.as_ref() {
            Some(l) => l.ends.iter().all(|e| e.started.load(Ordering::Acquire)),
            None => false,
        };
        LinkState { up, speed_mbps: if up { 100_000 } else { 0 } }
    }

    fn set_mtu(&self, mtu: u16) -> Result<(), PortError> {
        if !(68..=self.shared.max_mtu).contains(&mtu) {
            return Err(PortError::MtuOutOfRange { mtu, min: 68, max: self.shared.max_mtu });
        }
        self.shared.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    fn rss(&self) -> RssConfig {
        lock(&self.shared.rss_cfg).clone()
    }

    fn set_rss(&self, cfg: &RssConfig) -> Result<(), PortError> {
        cfg.validate(self.shared.rxq.len() as u16)?;
        let mut cur = lock(&self.shared.rss_cfg);
        self.shared.rss.store(Arc::new(RssTable::new(cfg)));
        *cur = cfg.clone();
        Ok(())
    }

    fn rx_queue(&self, q: QueueId) -> Result<Box<dyn RxQueue>, PortError> {
        let qs = self
            .shared
            .rxq
            .get(q.0 as usize)
            .ok_or(PortError::QueueOutOfRange { queue: q, queues: self.shared.rxq.len() as u16 })?;
        if qs.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        Ok(Box::new(MemRxQueue {
            wire: self.wire.clone(),
            end: self.end,
            shared: self.shared.clone(),
            q: q.0 as usize,
            pool: qs.pool.clone(),
            next_ring: 0,
        }))
    }

    fn tx_queue(&self, q: QueueId) -> Result<Box<dyn TxQueue>, PortError> {
        let qs = self
            .shared
            .txq
            .get(q.0 as usize)
            .ok_or(PortError::QueueOutOfRange { queue: q, queues: self.shared.txq.len() as u16 })?;
        if qs.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        Ok(Box::new(MemTxQueue {
            wire: self.wire.clone(),
            end: self.end,
            shared: self.shared.clone(),
            q: q.0 as usize,
        }))
    }

    fn rx_stats(&self, q: QueueId) -> Option<RxQueueStats> {
        let r = self.shared.rxq.get(q.0 as usize)?;
        Some(RxQueueStats {
            queue: QueueStats {
                packets: r.packets.get(),
                bytes: r.bytes.get(),
                drops: vec![("no_buffer", r.no_buffer.get()), ("oversize", r.oversize.get())],
                counters: vec![],
            },
            pool: r.pool.stats(),
        })
    }

    fn tx_stats(&self, q: QueueId) -> Option<QueueStats> {
        let t = &self.shared.txq.get(q.0 as usize)?.c;
        Some(QueueStats {
            packets: t.packets.get(),
            bytes: t.bytes.get(),
            drops: vec![("oversize", t.oversize.get()), ("runt", t.runt.get()), ("link_down", t.link_down.get())],
            counters: vec![],
        })
    }

    fn rx_pool(&self, q: QueueId) -> Option<PagePool> {
        self.shared.rxq.get(q.0 as usize).map(|r| r.pool.clone())
    }
}

struct MemRxQueue {
    wire: Arc<Wire>,
    end: usize,
    shared: Arc<EndShared>,
    q: usize,
    pool: PagePool,
    next_ring: usize,
}

impl Drop for MemRxQueue {
    fn drop(&mut self) {
        self.shared.rxq[self.q].taken.store(false, Ordering::Release);
    }
}

impl RxQueue for MemRxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.q as u16)
    }

    fn pool(&self) -> &PagePool {
        &self.pool
    }

    fn rx_burst(&mut self, out: &mut PktBurst) -> usize {
        let g = self.wire.link.load();
        let Some(link) = g.as_ref() else { return 0 };
        let me = &link.ends[self.end];
        if !Arc::ptr_eq(me, &self.shared) || !me.started.load(Ordering::Acquire) {
            return 0;
        }
        let qs = &me.rxq[self.q];
        let max_frame = me.mtu.load(Ordering::Relaxed) as usize + ETH_OVERHEAD;
        let rings = &link.dirs[1 - self.end];
        let before = out.len();
        let (mut pkts, mut bytes) = (0u64, 0u64);
        let nrings = rings.len();
        for k in 0..nrings {
            let budget = out.remaining();
            if budget == 0 {
                break;
            }
            let ring = &rings[(self.next_ring + k) % nrings][self.q];
            let (tail, avail) = ring.consumer_begin();
            let n = avail.min(budget);
            for i in 0..n.min(FrameRing::PREFETCH_AHEAD) {
                ring.prefetch(tail + i, false);
            }
            for i in 0..n {
                if i + FrameRing::PREFETCH_AHEAD < n {
                    ring.prefetch(tail + i + FrameRing::PREFETCH_AHEAD, false);
                }
                // SAFETY: this handle is the ring's only consumer (the queue
                // is taken once), and tail+i is inside the published range.
                let (frame, hash, tag) = unsafe { ring.read(tail + i) };
                if frame.len() > max_frame {
                    qs.oversize.inc();
                    continue;
                }
                let Some(mut p) = self.pool.alloc() else {
                    qs.no_buffer.inc();
                    continue;
                };
                // Cannot fail: buffers hold max_mtu + overhead >= max_frame.
                if !p.copy_from(frame) {
                    qs.oversize.inc();
                    continue;
                }
                p.set_port(me.id.0);
                p.set_queue(self.q as u16);
                p.set_rss(hash, RssType::from_u8(tag));
                bytes += frame.len() as u64;
                pkts += 1;
                // Cannot fail: n <= budget = out.remaining().
                let _ = out.push(p);
            }
            ring.consumer_commit(tail + n);
        }
        self.next_ring = self.next_ring.wrapping_add(1);
        qs.packets.add(pkts);
        qs.bytes.add(bytes);
        out.len() - before
    }
}

struct MemTxQueue {
    wire: Arc<Wire>,
    end: usize,
    shared: Arc<EndShared>,
    q: usize,
}

impl Drop for MemTxQueue {
    fn drop(&mut self) {
        self.shared.txq[self.q].taken.store(false, Ordering::Release);
    }
}

impl TxQueue for MemTxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.q as u16)
    }

    fn tx_burst(&mut self, pkts: &mut PktBurst) -> usize {
        let c = &self.shared.txq[self.q].c;
        let g = self.wire.link.load();
        let link = match g.as_ref() {
            Some(l)
                if Arc::ptr_eq(&l.ends[self.end], &self.shared)
                    && l.ends.iter().all(|e| e.started.load(Ordering::Acquire)) =>
            {
                l
            }
            _ => {
                c.link_down.add(pkts.len() as u64);
                pkts.clear();
                return 0;
            }
        };
        let peer = &link.ends[1 - self.end];
        let rss = peer.rss.load();
        let rings = &link.dirs[self.end][self.q];
        let max_frame = (self.shared.mtu.load(Ordering::Relaxed) as usize + ETH_OVERHEAD)
            .min(rings.first().map_or(0, |r| r.max_frame()));
        // Per-ring producer state for this burst: begun, head, free.
        let mut begun = 0u32;
        let mut head = [0usize; MAX_QUEUES as usize];
        let mut free = [0usize; MAX_QUEUES as usize];
        let mut input = [0u8; MAX_INPUT];
        let (mut sent, mut bytes) = (0u64, 0u64);
        pkts.retain(|p| {
            let len = p.len();
            if len > max_frame {
                c.oversize.inc();
                return false;
            }
            if len < 14 {
                c.runt.inc();
                return false;
            }
            let (n, ty) = flow_input(p.data(), rss.l4, &mut input);
            let hash = if n > 0 { rss.toeplitz.hash(&input[..n]) } else { 0 };
            let q = (rss.reta[(hash & rss.mask) as usize] as usize).min(rings.len() - 1);
            let ring = &rings[q];
            if begun & (1 << q) == 0 {
                (head[q], free[q]) = ring.producer_begin();
                begun |= 1 << q;
                for k in 0..free[q].min(FrameRing::PREFETCH_AHEAD) {
                    ring.prefetch(head[q] + k, true);
                }
            }
            if free[q] == 0 {
                return true; // no room: stays with the caller
            }
            if free[q] > FrameRing::PREFETCH_AHEAD {
                ring.prefetch(head[q] + FrameRing::PREFETCH_AHEAD, true);
            }
            // SAFETY: this handle is the ring's only producer (the TX queue
            // is taken once), head[q] is inside the free range, and len <=
            // max_frame <= the ring's slot size.
            unsafe { ring.write(head[q], p.data(), hash, ty as u8) };
            head[q] += 1;
            free[q] -= 1;
            sent += 1;
            bytes += len as u64;
            false // sent: the buffer completes now and returns to its pool
        });
        for (q, ring) in rings.iter().enumerate() {
            if begun & (1 << q) != 0 {
                ring.producer_commit(head[q]);
            }
        }
        c.packets.add(sent);
        c.bytes.add(bytes);
        sent as usize
    }
}

/// Opens a mem port (driver registry entry).
pub fn open(cfg: &PortConfig) -> Result<Box<dyn Port>, PortError> {
    Ok(Box::new(MemPort::open(cfg)?))
}
