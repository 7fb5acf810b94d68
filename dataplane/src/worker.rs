//! Worker threads: one per configured core, run to completion.
//!
//! A worker owns a set of RX queues (and the page pools behind them) and
//! one TX queue on every port. Each loop iteration polls every RX queue;
//! a non-empty burst takes one table snapshot, runs the whole pipeline,
//! sorts survivors by egress port, and transmits. Dropped packets go back
//! to their pool directly (the worker owns it). Nothing in the loop
//! allocates, locks or logs.

use crate::batch::{Batch, Verdict};
use crate::counters::{DropReason, WorkerStats};
use crate::local::LocalEvent;
use crate::neigh::{NeighEvents, NeighId, NeighShared, PendingQueue};
use crate::stage::{Ctx, NeighCtx, Pipeline};
use crate::tables::TableHandle;
use crate::tables::Tables;
use crate::tsc;
use ports::{PktBurst, PoolBinding, PortId, RxQueue, TxQueue, MAX_BURST};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a worker does when a poll round finds no packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Keep polling (lowest latency; the core shows 100% busy).
    #[default]
    Poll,
    /// Sleep this long before polling again.
    Sleep(Duration),
}

/// Everything a worker needs. The queue handles move into the worker and
/// come back from [`Worker::stop`].
pub struct WorkerSpec {
    pub id: usize,
    /// CPU to pin the thread to (`None`: not pinned).
    pub core: Option<usize>,
    pub rx: Vec<(PortId, Box<dyn RxQueue>)>,
    /// TX queue per port, indexed by `PortId`.
    pub tx: Vec<Option<Box<dyn TxQueue>>>,
    /// Packets per RX burst (1..=256).
    pub burst: usize,
    pub idle: IdlePolicy,
    /// RCU reader for tables updated in place (quiescent once per loop).
    pub rcu: Option<crate::rcu::RcuReader>,
    /// Neighbour resolution (absent: gateway/connected next hops drop).
    pub neigh: Option<NeighWorker>,
}

/// What a worker needs for neighbour resolution.
#[derive(Clone)]
pub struct NeighWorker {
    pub shared: Arc<NeighShared>,
    pub events: Arc<NeighEvents>,
}

/// How long a packet may wait for its neighbour.
const PENDING_MAX_AGE: Duration = Duration::from_secs(3);

/// The queue handles a stopped worker gives back.
pub struct WorkerQueues {
    pub rx: Vec<(PortId, Box<dyn RxQueue>)>,
    pub tx: Vec<Option<Box<dyn TxQueue>>>,
}

#[derive(Debug)]
pub enum WorkerError {
    InvalidBurst(usize),
    NoSuchCore {
        core: usize,
        cores: usize,
    },
    Pin {
        core: usize,
        err: std::io::Error,
    },
    /// Two workers were given queues of the same pool.
    PoolTaken(String),
    Spawn(std::io::Error),
    /// The worker thread panicked (a bug); its queues are lost.
    Panicked(usize),
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerError::InvalidBurst(b) => write!(f, "burst size {b} out of range 1..={MAX_BURST}"),
            WorkerError::NoSuchCore { core, cores } => {
                write!(f, "core {core} does not exist (this machine has cores 0..{cores})")
            }
            WorkerError::Pin { core, err } => write!(f, "cannot pin worker to core {core}: {err}"),
            WorkerError::PoolTaken(p) => write!(f, "page pool {p} is already owned by another worker"),
            WorkerError::Spawn(e) => write!(f, "cannot start worker thread: {e}"),
            WorkerError::Panicked(id) => write!(f, "worker {id} panicked"),
        }
    }
}

impl std::error::Error for WorkerError {}

/// A running worker.
pub struct Worker {
    id: usize,
    core: Option<usize>,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<WorkerQueues>>,
}

fn online_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins the calling thread to `core`.
pub fn pin_to(core: usize) -> Result<(), WorkerError> {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write only into it,
    // and sched_setaffinity(0, ..) reads it for the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(WorkerError::Pin { core, err: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Makes short sleeps short: the default 50 us timer slack would add up to
/// 50 us of latency to every idle sleep.
pub fn set_timer_slack_1us() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the
    // calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
}

impl Worker {
    /// Starts the worker thread; returns once it is polling (or failed to
    /// pin or bind its pools, in which case its queues are dropped).
    pub fn spawn(spec: WorkerSpec, tables: TableHandle) -> Result<Worker, WorkerError> {
        if spec.burst == 0 || spec.burst > MAX_BURST {
            return Err(WorkerError::InvalidBurst(spec.burst));
        }
        if let Some(c) = spec.core {
            let cores = online_cores();
            if c >= cores {
                return Err(WorkerError::NoSuchCore { core: c, cores });
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WorkerStats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), WorkerError>>(1);
        let (id, core) = (spec.id, spec.core);
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("vr-worker{id}"))
                .spawn(move || run(spec, tables, stop, stats, ready_tx))
                .map_err(WorkerError::Spawn)?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Worker { id, core, stop, stats, thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(WorkerError::Panicked(id))
            }
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn core(&self) -> Option<usize> {
        self.core
    }

    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// Asks the worker to finish its current burst and stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the worker and returns its queues. Every packet it held has
    /// been transmitted or returned to its pool when this returns.
    pub fn stop(mut self) -> Result<WorkerQueues, WorkerError> {
        self.request_stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(q)) => Ok(q),
            _ => Err(WorkerError::Panicked(self.id)),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

/// The per-worker loop state.
struct Engine {
    rx: Vec<(PortId, Box<dyn RxQueue>)>,
    tx: Vec<Option<Box<dyn TxQueue>>>,
    out: Vec<PktBurst>,
    /// Fragments of one packet, before they join its TX burst.
    scratch: PktBurst,
    batch: Box<Batch>,
    pipeline: Pipeline,
    tables: TableHandle,
    stats: Arc<WorkerStats>,
    neigh: Option<NeighWorker>,
    pending: PendingQueue,
    pending_max_age: u64,
    /// This worker's index (per-worker counter slots, e.g. ACL rule hits).
    id: usize,
}

impl Engine {
    /// Processes one received burst end to end.
    #[inline]
    fn process(&mut self) {
        let stats = &*self.stats;
        let n = self.batch.len();
        stats.rx_packets.add(n as u64);
        stats.rx_bytes.add(self.batch.pkts.as_slice().iter().map(|p| p.len() as u64).sum());
        let snap = self.tables.snapshot();
        let now = tsc::now();
        let index = self.neigh.as_ref().map(|n| n.shared.index());
        let nctx = match (&self.neigh, &index) {
            (Some(n), Some(i)) => Some(NeighCtx { shared: &n.shared, index: i, events: &n.events, now }),
            _ => None,
        };
        let cx = Ctx { tables: &snap, stats, neigh: nctx.as_ref(), worker: self.id, now_secs: tsc::secs(now) };
        self.pipeline.run(&mut self.batch, &cx);
        drop(index);

        let Batch { pkts, verdict, layers } = &mut *self.batch;
        for ((mut p, v), l) in pkts.drain().zip(verdict.iter()).zip(layers.iter()) {
            match *v {
                Verdict::Resolve { port, neigh } => match &self.neigh {
                    Some(n) => {
                        if let Err(p) = self.pending.push(&n.shared, NeighId(neigh), p, port, now) {
                            drop(p);
                            stats.drop(DropReason::NeighQueueFull);
                        }
                    }
                    None => stats.drop(DropReason::NeighUnresolved),
                },
                Verdict::Fragment(port) => {
                    let (Some(o), Some(Some(_)), Some(pe)) =
                        (self.out.get_mut(port.0 as usize), self.tx.get(port.0 as usize), snap.port(port.0))
                    else {
                        stats.drop(DropReason::TxNoQueue);
                        continue;
                    };
                    let frags = &mut self.scratch;
                    match crate::frag::fragment_ipv4(&mut p, l.l3_off as usize, l.l3_len as usize, pe.mtu, frags) {
                        // In order: the first fragment, then the rest.
                        Ok(_) => {
                            for f in std::iter::once(p).chain(frags.drain()) {
                                if o.push(f).is_err() {
                                    stats.drop(DropReason::TxFull);
                                }
                            }
                        }
                        Err(e) => stats.drop(DropReason::Frag(e)),
                    }
                }
                Verdict::Tx(port) => match (self.out.get_mut(port.0 as usize), self.tx.get(port.0 as usize)) {
                    // Cannot fail: out bursts hold MAX_BURST and a batch
                    // carries at most that many packets.
                    (Some(o), Some(Some(_))) => {
                        let _ = o.push(p);
                    }
                    _ => stats.drop(DropReason::TxNoQueue),
                },
                Verdict::Drop(r) => stats.drop(r),
                Verdict::Punt(r) => {
                    stats.punts[r as usize].inc();
                    stats.drop(DropReason::PuntNoPath);
                }
                Verdict::Pending => stats.drop(DropReason::NoVerdict),
            }
        }
        self.send_solicits(&snap, now);
        self.flush();
    }

    /// Sends the ARP requests / neighbour solicitations the forwarding
    /// stage asked for, at most one per neighbour per interval across all
    /// workers.
    fn send_solicits(&mut self, t: &Tables, now: u64) {
        let Some(n) = &self.neigh else { return };
        let f = &self.pipeline.forward;
        let iv = n.shared.solicit_interval();
        for &(id, port) in &f.solicits[..f.n_solicits] {
            let id = NeighId(id);
            if !n.shared.should_solicit(id, now, iv) {
                continue;
            }
            let (Some(pe), Some(o)) = (t.port(port), self.out.get_mut(port as usize)) else { continue };
            let Some(pool) = self.rx.first().map(|r| r.1.pool()) else { continue };
            match pool.alloc() {
                Some(mut s) => {
                    if crate::neigh::build_solicit(&mut s, &n.shared, id, pe.mac, &pe.addrs) && o.push(s).is_ok() {
                        self.stats.local[LocalEvent::NeighSolicit as usize].inc();
                    }
                }
                None => self.stats.local[LocalEvent::NeighSolicitNoBuffer as usize].inc(),
            }
        }
    }

    /// Releases packets whose neighbour resolved, and expires old ones.
    fn release_pending(&mut self) {
        let Some(n) = &self.neigh else { return };
        if self.pending.is_empty() {
            return;
        }
        let out = &mut self.out;
        let stats = &*self.stats;
        self.pending.drain_resolved(&n.shared, |mut p, port, mac| {
            let Some(o) = out.get_mut(port.0 as usize) else {
                stats.drop(DropReason::TxNoQueue);
                return Ok(());
            };
            if let Some(d) = p.data_mut().get_mut(0..6) {
                d.copy_from_slice(&mac.0);
            }
            o.push(p)
        });
        let e = self.pending.expire(&n.shared, tsc::now(), self.pending_max_age);
        stats.drops[DropReason::NeighUnresolved.index()].add(e.total() as u64);
        self.flush();
    }

    /// Transmits every non-empty output burst; what does not fit is dropped.
    fn flush(&mut self) {
        let stats = &*self.stats;
        for (o, q) in self.out.iter_mut().zip(self.tx.iter_mut()) {
            if o.is_empty() {
                continue;
            }
            let Some(q) = q else { continue };
            let bytes: u64 = o.as_slice().iter().map(|p| p.len() as u64).sum();
            let sent = q.tx_burst(o);
            let left: u64 = o.as_slice().iter().map(|p| p.len() as u64).sum();
            stats.tx_packets.add(sent as u64);
            stats.tx_bytes.add(bytes - left);
            if !o.is_empty() {
                stats.drops[DropReason::TxFull.index()].add(o.len() as u64);
                o.clear();
            }
        }
    }

    /// One poll round over every RX queue; returns packets received.
    #[inline]
    fn poll(&mut self) -> usize {
        let mut total = 0;
        for i in 0..self.rx.len() {
            // Busy cycles cover the RX burst (the driver's work) as well as
            // the pipeline and TX; empty polls are not counted.
            let t0 = tsc::now();
            let n = self.rx[i].1.rx_burst(&mut self.batch.pkts);
            if n == 0 {
                continue;
            }
            self.process();
            self.stats.busy_cycles.add(tsc::now().wrapping_sub(t0));
            total += n;
        }
        self.release_pending();
        self.stats.polls.inc();
        if total > 0 {
            self.stats.busy_polls.inc();
        }
        total
    }
}

fn run(
    spec: WorkerSpec,
    tables: TableHandle,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    ready: std::sync::mpsc::SyncSender<Result<(), WorkerError>>,
) -> WorkerQueues {
    let WorkerSpec { id, rx, tx, burst, idle, core, rcu, neigh, .. } = spec;
    let fail = |e, rx, tx| {
        let _ = ready.send(Err(e));
        WorkerQueues { rx, tx }
    };
    if let Some(c) = core {
        if let Err(e) = pin_to(c) {
            return fail(e, rx, tx);
        }
    }
    let mut bindings = Vec::with_capacity(rx.len());
    for (_, q) in &rx {
        match PoolBinding::new(q.pool()) {
            Ok(b) => bindings.push(b),
            Err(_) => {
                let name = q.pool().name().to_string();
                drop(bindings);
                return fail(WorkerError::PoolTaken(name), rx, tx);
            }
        }
    }
    let mut e = Engine {
        out: (0..tx.len()).map(|_| PktBurst::new()).collect(),
        scratch: PktBurst::new(),
        rx,
        tx,
        batch: Batch::boxed(),
        pipeline: Pipeline::default(),
        tables,
        stats,
        pending_max_age: neigh.as_ref().map_or(0, |n| n.shared.ticks(PENDING_MAX_AGE)),
        neigh,
        pending: PendingQueue::default(),
        id,
    };
    e.batch.pkts.set_limit(burst);
    if matches!(idle, IdlePolicy::Sleep(_)) {
        set_timer_slack_1us();
    }
    let _ = ready.send(Ok(()));

    while !stop.load(Ordering::Relaxed) {
        let got = e.poll();
        // No table reference survives a poll round.
        if let Some(r) = &rcu {
            r.quiescent();
        }
        if got == 0 {
            match idle {
                IdlePolicy::Poll => std::hint::spin_loop(),
                IdlePolicy::Sleep(d) => {
                    if let Some(r) = &rcu {
                        r.offline();
                    }
                    std::thread::sleep(d);
                    if let Some(r) = &rcu {
                        r.online();
                    }
                }
            }
        }
    }
    drop(rcu);
    // Return every packet to its pool while this thread still owns the
    // pools (direct recycle), then give the pools up.
    e.batch.pkts.clear();
    e.out.iter_mut().for_each(PktBurst::clear);
    e.pending.clear();
    drop(bindings);
    WorkerQueues { rx: e.rx, tx: e.tx }
}
