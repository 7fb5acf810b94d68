//! Starting and stopping a whole router: ports, tables, workers and the
//! optional built-in traffic generator.

use crate::counters::{PuntReason, WorkerStats};
use crate::l3::{Adj, L3Config, L3Control, Target, VrfId};
use crate::neigh::{NeighConfig, NeighEvents, NeighTable};
use crate::rcu::{lock, Rcu};
use crate::tables::{PortEntry, TableHandle, Tables};
use crate::testgen::{GenConfig, GenStats, Source, TrafficGen};
use crate::tsc;
use crate::worker::{IdlePolicy, NeighWorker, Worker, WorkerError, WorkerSpec};
use ports::{LinkState, MacAddr, PoolStats, Port, PortConfig, PortError, PortId, PortInfo, QueueId, QueueStats};
use ports::{RxQueueStats, TxQueue};
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A port of the router.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub config: PortConfig,
    /// The router's own addresses on the port, with prefix lengths: each
    /// adds a local host route and a connected route for its subnet.
    pub addrs: Vec<(IpAddr, u8)>,
    /// The VRF the port is bound to.
    pub vrf: u16,
    /// Azure: the subnet gateway (`.1` of the port's first IPv4 subnet,
    /// and fe80::1234:5678:9abc) answers with 12:34:56:78:9a:bc; install
    /// both as static neighbours.
    pub azure_gateway: bool,
}

/// Where a route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Out of the named port to the neighbour with this MAC.
    Forward { port: String, mac: MacAddr },
    /// Discard silently.
    Drop,
    /// Discard and answer ICMP unreachable.
    Unreachable,
    /// Through the gateway `ip` on the named port, resolved by ARP / ND
    /// (or a static neighbour entry).
    Gateway { port: String, ip: IpAddr },
}

/// A static neighbour entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSpec {
    pub port: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub vrf: u16,
    pub addr: IpAddr,
    pub len: u8,
    pub target: RouteTarget,
}

/// One worker: its core and the RX queues (port name, queue) it polls.
#[derive(Clone, Debug, Default)]
pub struct WorkerPlan {
    pub core: Option<usize>,
    pub rx: Vec<(String, u16)>,
}

/// The built-in generator: it opens its own ports (typically the far ends
/// of the router's `mem` wires).
#[derive(Clone, Debug)]
pub struct GenSpec {
    pub source: Option<PortConfig>,
    pub sink: Option<PortConfig>,
    pub config: GenConfig,
    /// The router port the source sends to: its MAC becomes the frames'
    /// destination (otherwise `config.dst_mac` is used as given).
    pub target_port: Option<String>,
    /// CPU to pin the generator thread to.
    pub core: Option<usize>,
}

/// Everything needed to start a router.
#[derive(Clone, Debug)]
pub struct RuntimeSpec {
    pub ports: Vec<PortSpec>,
    pub workers: Vec<WorkerPlan>,
    pub routes: Vec<RouteSpec>,
    pub burst: usize,
    pub idle: IdlePolicy,
    pub generator: Option<GenSpec>,
    /// FIB sizes (the VRF count follows from the ports and routes).
    pub l3: L3Config,
    pub neighbors: Vec<NeighborSpec>,
    pub neigh: NeighConfig,
    /// ACLs, their bindings and the session table.
    pub acl: crate::acl::control::AclConfig,
    /// NAT rules and the NAT session table.
    pub nat: crate::nat::NatConfig,
}

#[derive(Debug)]
pub enum RuntimeError {
    Config(String),
    Port { port: String, err: PortError },
    Worker { worker: usize, err: WorkerError },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Config(s) => f.write_str(s),
            RuntimeError::Port { port, err } => write!(f, "port {port}: {err}"),
            RuntimeError::Worker { worker, err } => write!(f, "worker {worker}: {err}"),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// Spreads every RX queue of `ports` over `cores` round-robin.
pub fn auto_plan(ports: &[PortSpec], cores: &[Option<usize>]) -> Vec<WorkerPlan> {
    let mut plans: Vec<WorkerPlan> = cores.iter().map(|&core| WorkerPlan { core, rx: Vec::new() }).collect();
    if plans.is_empty() {
        return plans;
    }
    let (mut w, n) = (0, plans.len());
    for p in ports {
        for q in 0..p.config.rx_queues {
            plans[w % n].rx.push((p.config.name.clone(), q));
            w += 1;
        }
    }
    plans
}

/// A counter snapshot of one worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    pub id: usize,
    pub core: Option<usize>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub polls: u64,
    pub busy_polls: u64,
    pub busy_cycles: u64,
    pub drops: Vec<(&'static str, u64)>,
    pub punts: Vec<(&'static str, u64)>,
    /// Answers given from the fast path (ARP, ND, echo, ICMP errors).
    pub local: Vec<(&'static str, u64)>,
}

impl WorkerSnapshot {
    fn of(id: usize, core: Option<usize>, s: &WorkerStats) -> WorkerSnapshot {
        WorkerSnapshot {
            id,
            core,
            rx_packets: s.rx_packets.get(),
            rx_bytes: s.rx_bytes.get(),
            tx_packets: s.tx_packets.get(),
            tx_bytes: s.tx_bytes.get(),
            polls: s.polls.get(),
            busy_polls: s.busy_polls.get(),
            busy_cycles: s.busy_cycles.get(),
            drops: s.drops_by_name(),
            punts: PuntReason::ALL.iter().map(|r| (r.name(), s.punts[*r as usize].get())).filter(|p| p.1 > 0).collect(),
            local: s.local_by_name(),
        }
    }
}

/// A counter snapshot of one port.
#[derive(Clone, Debug)]
pub struct PortSnapshot {
    pub info: PortInfo,
    pub link: LinkState,
    pub rx: Vec<RxQueueStats>,
    pub tx: Vec<QueueStats>,
}

impl PortSnapshot {
    pub fn rx_packets(&self) -> u64 {
        self.rx.iter().map(|q| q.queue.packets).sum()
    }

    pub fn tx_packets(&self) -> u64 {
        self.tx.iter().map(|q| q.packets).sum()
    }

    pub fn driver_drops(&self) -> u64 {
        self.rx.iter().map(|q| q.queue.dropped()).sum::<u64>() + self.tx.iter().map(QueueStats::dropped).sum::<u64>()
    }
}

/// Generator counters.
#[derive(Clone, Debug, Default)]
pub struct GenSnapshot {
    pub tx_packets: u64,
    pub tx_full: u64,
    pub tx_no_buffer: u64,
    pub rx_packets: u64,
    pub rx_valid: u64,
    pub rx_invalid: u64,
    pub latency_sum: u64,
    pub latency_max: u64,
}

impl GenSnapshot {
    fn of(s: &GenStats) -> GenSnapshot {
        GenSnapshot {
            tx_packets: s.tx_packets.get(),
            tx_full: s.tx_full.get(),
            tx_no_buffer: s.tx_no_buffer.get(),
            rx_packets: s.rx_packets.get(),
            rx_valid: s.rx_valid.get(),
            rx_invalid: s.rx_invalid.get(),
            latency_sum: s.latency_sum.get(),
            latency_max: s.latency_max.get(),
        }
    }
}

/// Everything countable, at one moment.
#[derive(Clone, Debug)]
pub struct StatsSnapshot {
    pub ports: Vec<PortSnapshot>,
    pub workers: Vec<WorkerSnapshot>,
    pub generator: Option<GenSnapshot>,
    /// NAT sessions and counters, if NAT is on.
    pub nat: Option<NatSnapshot>,
}

/// NAT occupancy and counters (summed over workers).
#[derive(Clone, Debug, Default)]
pub struct NatSnapshot {
    /// Live sessions as of the last pass of the maintenance thread.
    pub live_sessions: usize,
    pub capacity: usize,
    pub bytes_per_session: usize,
    pub counters: Vec<(&'static str, u64)>,
}

fn port_snapshot(p: &dyn Port) -> PortSnapshot {
    let info = p.info();
    PortSnapshot {
        link: p.link(),
        rx: (0..info.rx_queues).filter_map(|q| p.rx_stats(QueueId(q))).collect(),
        tx: (0..info.tx_queues).filter_map(|q| p.tx_stats(QueueId(q))).collect(),
        info,
    }
}

fn pool_stats(p: &dyn Port) -> Vec<(PoolStats, usize)> {
    (0..p.info().rx_queues).filter_map(|q| p.rx_pool(QueueId(q))).map(|pool| (pool.stats(), pool.in_ring())).collect()
}

/// What stop found: the state of every page pool after teardown.
#[derive(Clone, Debug)]
pub struct StopReport {
    /// (pool counters, buffers in the pool's ring); after a clean stop
    /// `in_use == 0` and the ring holds every buffer.
    pub pools: Vec<(PoolStats, usize)>,
    pub final_stats: StatsSnapshot,
}

impl StopReport {
    /// Pools with buffers unaccounted for.
    pub fn leaks(&self) -> Vec<String> {
        self.pools
            .iter()
            .filter(|(s, ring)| s.in_use != 0 || *ring != s.buffers as usize)
            .map(|(s, ring)| format!("{}: {} in use, {} of {} in the ring", s.name, s.in_use, ring, s.buffers))
            .collect()
    }
}

/// A running router.
pub struct Runtime {
    ports: Vec<Box<dyn Port>>,
    workers: Vec<Worker>,
    gen_ports: Vec<Box<dyn Port>>,
    gen: Option<TrafficGen>,
    tables: TableHandle,
    rcu: Rcu,
    l3: std::sync::Mutex<L3Control>,
    neigh: Arc<std::sync::Mutex<NeighTable>>,
    neigh_events: Arc<NeighEvents>,
    neigh_mgr: Option<NeighManager>,
    acl: std::sync::Mutex<crate::acl::control::AclControl>,
    nat: std::sync::Mutex<crate::nat::control::NatControl>,
}

/// The control-side thread that feeds the neighbour table: it drains what
/// workers saw (ARP/ND, misses) every 100 ms and ages entries every second.
/// It also retires expired NAT sessions (64k records a tick, so a table of
/// 1M sessions in under 2 s), giving back their per-host counts even
/// where a worker sees too little traffic to sweep its share quickly.
struct NeighManager {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NeighManager {
    fn spawn(
        table: Arc<std::sync::Mutex<NeighTable>>,
        events: Arc<NeighEvents>,
        nat: Option<Arc<crate::nat::table::NatTable>>,
    ) -> Result<NeighManager, RuntimeError> {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vr-neigh".into())
            .spawn(move || {
                let mut last_age = std::time::Instant::now();
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if let Some(n) = &nat {
                        n.retire_expired(tsc::secs(tsc::now()) as u32, 1 << 16);
                    }
                    let mut t = lock(&table);
                    t.drain_events(&events, tsc::now());
                    if last_age.elapsed() >= std::time::Duration::from_secs(1) {
                        t.age(tsc::now());
                        last_age = std::time::Instant::now();
                    }
                }
            })
            .map_err(|e| RuntimeError::Config(format!("cannot start the neighbour thread: {e}")))?;
        Ok(NeighManager { stop, thread: Some(thread) })
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NeighManager {
    fn drop(&mut self) {
        self.stop();
    }
}

fn build_l3(
    spec: &RuntimeSpec,
    ports: &[Box<dyn Port>],
    tables: &TableHandle,
    rcu: &Rcu,
    neigh: &mut NeighTable,
) -> Result<L3Control, RuntimeError> {
    let cerr = |s: String| RuntimeError::Config(s);
    let mut t = Tables::default();
    for (p, ps) in ports.iter().zip(&spec.ports) {
        let i = p.info();
        let addrs = ps.addrs.iter().map(|a| a.0).collect();
        t.ports.push(PortEntry { id: i.id, name: i.name, mac: i.mac, mtu: i.mtu, addrs });
    }
    let vrfs = spec.ports.iter().map(|p| p.vrf).chain(spec.routes.iter().map(|r| r.vrf)).max().unwrap_or(0) + 1;
    let cfg = L3Config { vrfs, ..spec.l3 };
    let mut l3 = L3Control::new(cfg, ports.len(), rcu.clone()).map_err(|e| cerr(format!("L3 tables: {e}")))?;
    tables.publish(t.clone());
    l3.attach(tables.clone());
    for (i, ps) in spec.ports.iter().enumerate() {
        let port = PortId(i as u16);
        l3.bind_port(port, VrfId(ps.vrf)).map_err(|e| cerr(format!("port {}: {e}", ps.config.name)))?;
        for (a, len) in &ps.addrs {
            l3.add_interface_address(port, *a, *len)
                .map_err(|e| cerr(format!("port {}: address {a}/{len}: {e}", ps.config.name)))?;
        }
        if ps.azure_gateway {
            let gw = ps.addrs.iter().find_map(|(a, len)| match a {
                IpAddr::V4(v) if *len <= 30 => Some(Ipv4Addr::from((u32::from(*v) & (u32::MAX << (32 - len))) | 1)),
                _ => None,
            });
            let gw = gw.ok_or_else(|| {
                cerr(format!(
                    "port {}: azure_gateway needs an IPv4 address with a subnet of /30 or larger",
                    ps.config.name
                ))
            })?;
            neigh.set_azure_gateways(port, gw).map_err(|e| cerr(format!("port {}: {e}", ps.config.name)))?;
        }
    }
    for n in &spec.neighbors {
        let pe = t
            .ports
            .iter()
            .find(|p| p.name == n.port)
            .ok_or_else(|| cerr(format!("neighbor {} on {:?}: unknown port", n.ip, n.port)))?;
        neigh.add_static(pe.id, n.ip, n.mac).map_err(|e| cerr(format!("neighbor {} on {}: {e}", n.ip, n.port)))?;
    }
    for r in &spec.routes {
        let ctx = |e: &dyn fmt::Display| cerr(format!("route {}/{} (VRF {}): {e}", r.addr, r.len, r.vrf));
        let adj = match &r.target {
            RouteTarget::Drop => Adj::Drop,
            RouteTarget::Unreachable => Adj::Unreachable,
            RouteTarget::Forward { port, mac } => {
                let pe =
                    t.ports.iter().find(|p| &p.name == port).ok_or_else(|| ctx(&format!("unknown port {port:?}")))?;
                Adj::Fixed { port: pe.id, mac: *mac }
            }
            RouteTarget::Gateway { port, ip } => {
                let pe =
                    t.ports.iter().find(|p| &p.name == port).ok_or_else(|| ctx(&format!("unknown port {port:?}")))?;
                let id = neigh.resolve_slot(pe.id, *ip).map_err(|e| ctx(&e))?;
                Adj::Gateway { port: pe.id, neigh: id.0 }
            }
        };
        let id = l3.adjacency(adj).map_err(|e| ctx(&e))?;
        l3.add_route(VrfId(r.vrf), r.addr, r.len, Target::Adj(id)).map_err(|e| ctx(&e))?;
    }
    Ok(l3)
}

impl Drop for Runtime {
    /// A runtime dropped without `stop` (or a failed start) still stops the
    /// generator and the workers before its ports close.
    fn drop(&mut self) {
        if let Some(g) = self.gen.take() {
            g.stop();
        }
        for w in self.workers.drain(..) {
            let _ = w.stop();
        }
    }
}

impl Runtime {
    /// Opens and starts every port, publishes the tables, and starts the
    /// workers and the generator. On error everything opened is closed.
    pub fn start(spec: &RuntimeSpec) -> Result<Runtime, RuntimeError> {
        if spec.workers.is_empty() {
            return Err(RuntimeError::Config("at least one worker is needed".into()));
        }
        let nworkers = spec.workers.len();
        // Ports, with ids in config order.
        let mut ports: Vec<Box<dyn Port>> = Vec::new();
        for (i, ps) in spec.ports.iter().enumerate() {
            let mut c = ps.config.clone();
            c.id = PortId(i as u16);
            if (c.tx_queues as usize) < nworkers {
                return Err(RuntimeError::Config(format!(
                    "port {}: {} TX queues for {nworkers} workers (each worker needs its own)",
                    c.name, c.tx_queues
                )));
            }
            if ports.iter().any(|p| p.info().name == c.name) {
                return Err(RuntimeError::Config(format!("port name {:?} used twice", c.name)));
            }
            ports.push(ports::open_port(&c).map_err(|err| RuntimeError::Port { port: c.name.clone(), err })?);
        }
        // Every RX queue is polled by exactly one worker.
        let mut seen = BTreeSet::new();
        for (w, plan) in spec.workers.iter().enumerate() {
            for (pn, q) in &plan.rx {
                let Some(p) = ports.iter().find(|p| &p.info().name == pn) else {
                    return Err(RuntimeError::Config(format!("worker {w}: unknown port {pn:?}")));
                };
                if *q >= p.info().rx_queues {
                    return Err(RuntimeError::Config(format!(
                        "worker {w}: port {pn} has no RX queue {q} (it has {})",
                        p.info().rx_queues
                    )));
                }
                if !seen.insert((pn.clone(), *q)) {
                    return Err(RuntimeError::Config(format!("RX queue {pn}:{q} is assigned to two workers")));
                }
            }
        }
        for p in &ports {
            let i = p.info();
            for q in 0..i.rx_queues {
                if !seen.contains(&(i.name.clone(), q)) {
                    return Err(RuntimeError::Config(format!(
                        "RX queue {}:{q} is not polled by any worker (its traffic would be lost)",
                        i.name
                    )));
                }
            }
        }
        let tables = TableHandle::new(Tables::default());
        let rcu = Rcu::new();
        let mut neigh = NeighTable::new(spec.neigh.clone(), rcu.clone())
            .map_err(|e| RuntimeError::Config(format!("neighbour table: {e}")))?;
        let l3 = build_l3(spec, &ports, &tables, &rcu, &mut neigh)?;
        let port_names: Vec<String> = ports.iter().map(|p| p.info().name).collect();
        let acl = crate::acl::control::AclControl::new(&port_names, nworkers, &spec.acl)
            .map_err(|e| RuntimeError::Config(format!("acl: {e}")))?;
        let nat_ports: Vec<crate::nat::control::NatPort> = spec
            .ports
            .iter()
            .map(|p| crate::nat::control::NatPort {
                name: p.config.name.clone(),
                addrs: p.addrs.iter().map(|a| a.0).collect(),
            })
            .collect();
        let nat = crate::nat::control::NatControl::new(&nat_ports, nworkers, &spec.nat)
            .map_err(|e| RuntimeError::Config(format!("nat: {e}")))?;
        {
            let mut t = (*tables.current()).clone();
            t.acl = acl.view();
            t.nat = nat.view();
            tables.publish(t);
        }
        let neigh = Arc::new(std::sync::Mutex::new(neigh));
        let neigh_events = Arc::new(NeighEvents::new(4096));
        for p in &ports {
            p.start().map_err(|err| RuntimeError::Port { port: p.info().name, err })?;
        }
        let mut rt = Runtime {
            ports,
            workers: Vec::new(),
            gen_ports: Vec::new(),
            gen: None,
            tables,
            rcu,
            l3: std::sync::Mutex::new(l3),
            neigh_mgr: Some(NeighManager::spawn(neigh.clone(), neigh_events.clone(), nat.table().cloned())?),
            neigh,
            neigh_events,
            acl: std::sync::Mutex::new(acl),
            nat: std::sync::Mutex::new(nat),
        };
        for (w, plan) in spec.workers.iter().enumerate() {
            let werr = |err| RuntimeError::Worker { worker: w, err };
            let perr = |p: &dyn Port, err| RuntimeError::Port { port: p.info().name, err };
            let mut rx = Vec::new();
            for (pn, q) in &plan.rx {
                // Checked above: the port exists.
                let Some(p) = rt.ports.iter().find(|p| &p.info().name == pn) else { continue };
                rx.push((p.info().id, p.rx_queue(QueueId(*q)).map_err(|e| perr(&**p, e))?));
            }
            let mut tx: Vec<Option<Box<dyn TxQueue>>> = Vec::new();
            for p in &rt.ports {
                tx.push(Some(p.tx_queue(QueueId(w as u16)).map_err(|e| perr(&**p, e))?));
            }
            let ws = WorkerSpec {
                id: w,
                core: plan.core,
                rx,
                tx,
                burst: spec.burst,
                idle: spec.idle,
                rcu: Some(rt.rcu.register()),
                neigh: Some(NeighWorker { shared: lock(&rt.neigh).shared().clone(), events: rt.neigh_events.clone() }),
            };
            rt.workers.push(Worker::spawn(ws, rt.tables.clone()).map_err(werr)?);
        }
        if let Some(g) = &spec.generator {
            rt.start_generator(g)?;
        }
        Ok(rt)
    }

    fn start_generator(&mut self, g: &GenSpec) -> Result<(), RuntimeError> {
        let open = |c: &PortConfig| -> Result<Box<dyn Port>, RuntimeError> {
            let p = ports::open_port(c).map_err(|err| RuntimeError::Port { port: c.name.clone(), err })?;
            p.start().map_err(|err| RuntimeError::Port { port: c.name.clone(), err })?;
            Ok(p)
        };
        let perr = |n: &str, err| RuntimeError::Port { port: n.to_string(), err };
        let mut source = None;
        if let Some(c) = &g.source {
            let p = open(c)?;
            let pool = p.rx_pool(QueueId(0)).ok_or_else(|| RuntimeError::Config(format!("{}: no pool", c.name)))?;
            source = Some(Source { tx: p.tx_queue(QueueId(0)).map_err(|e| perr(&c.name, e))?, pool });
            self.gen_ports.push(p);
        }
        let mut sink = None;
        if let Some(c) = &g.sink {
            let p = open(c)?;
            sink = Some(p.rx_queue(QueueId(0)).map_err(|e| perr(&c.name, e))?);
            self.gen_ports.push(p);
        }
        let mut cfg = g.config.clone();
        if let Some(t) = &g.target_port {
            let p = self
                .ports
                .iter()
                .find(|p| &p.info().name == t)
                .ok_or_else(|| RuntimeError::Config(format!("generator: unknown target port {t:?}")))?;
            cfg.dst_mac = p.info().mac;
        }
        self.gen = Some(TrafficGen::spawn(cfg, source, sink, g.core).map_err(RuntimeError::Config)?);
        Ok(())
    }

    pub fn tables(&self) -> &TableHandle {
        &self.tables
    }

    /// Changes the ACLs with `f` and, if it succeeds, publishes the result
    /// to the workers (every rebuilt classifier is complete before that).
    /// On error nothing changes. Takes the ACL lock, then the L3 lock (to
    /// serialise publishing): do not call it while holding [`Runtime::l3`].
    pub fn acl_update<T>(
        &self,
        f: impl FnOnce(&mut crate::acl::control::AclControl) -> Result<T, crate::acl::control::AclError>,
    ) -> Result<T, crate::acl::control::AclError> {
        let mut c = lock(&self.acl);
        let saved = c.snapshot();
        match f(&mut c) {
            Ok(v) => {
                // The L3 lock serialises every publish of the tables.
                let _l3 = lock(&self.l3);
                let mut t = (*self.tables.current()).clone();
                t.acl = c.view();
                self.tables.publish(t);
                Ok(v)
            }
            Err(e) => {
                c.restore(saved);
                Err(e)
            }
        }
    }

    /// Changes the NAT rules with `f` and, if it succeeds, publishes them
    /// (sessions are kept). On error nothing changes. Lock order as for
    /// [`Runtime::acl_update`].
    pub fn nat_update<T>(
        &self,
        f: impl FnOnce(&mut crate::nat::control::NatControl) -> Result<T, crate::nat::control::NatError>,
    ) -> Result<T, crate::nat::control::NatError> {
        let mut c = lock(&self.nat);
        let v = f(&mut c)?;
        let _l3 = lock(&self.l3);
        let mut t = (*self.tables.current()).clone();
        t.nat = c.view();
        self.tables.publish(t);
        Ok(v)
    }

    /// Reads the NAT state (counters, sessions).
    pub fn nat(&self) -> std::sync::MutexGuard<'_, crate::nat::control::NatControl> {
        lock(&self.nat)
    }

    /// Reads the ACL state (hit counters, sessions).
    pub fn acl(&self) -> std::sync::MutexGuard<'_, crate::acl::control::AclControl> {
        lock(&self.acl)
    }

    /// The RCU domain every worker reads in (for tables changed in place).
    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }

    /// The neighbour table (ARP / ND entries, static neighbours).
    pub fn neigh(&self) -> std::sync::MutexGuard<'_, NeighTable> {
        lock(&self.neigh)
    }

    /// The L3 control side (routes, next hops, groups, VRFs), for changes
    /// while forwarding. It publishes table versions itself.
    pub fn l3(&self) -> std::sync::MutexGuard<'_, L3Control> {
        // L3Control keeps its invariants across a panic in a caller's
        // closure only as far as its own methods completed; recover.
        lock(&self.l3)
    }

    pub fn ports(&self) -> &[Box<dyn Port>] {
        &self.ports
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    pub fn generator_stats(&self) -> Option<&Arc<GenStats>> {
        self.gen.as_ref().map(TrafficGen::stats)
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            ports: self.ports.iter().map(|p| port_snapshot(&**p)).collect(),
            workers: self.workers.iter().map(|w| WorkerSnapshot::of(w.id(), w.core(), w.stats())).collect(),
            generator: self.gen.as_ref().map(|g| GenSnapshot::of(g.stats())),
            nat: {
                let n = lock(&self.nat);
                n.table().map(|t| NatSnapshot {
                    live_sessions: t.live_estimate(),
                    capacity: t.capacity(),
                    bytes_per_session: t.bytes() / t.capacity().max(1),
                    counters: n.counters(),
                })
            },
        }
    }

    /// Stops the generator, the workers and the ports, in that order, and
    /// reports where every buffer is.
    pub fn stop(mut self) -> Result<StopReport, RuntimeError> {
        let gen_stats = self.gen.as_ref().map(|g| g.stats().clone());
        if let Some(g) = self.gen.take() {
            g.stop();
        }
        let mut first_err = None;
        let mut queues = Vec::new();
        let worker_stats: Vec<_> = self.workers.iter().map(|w| (w.id(), w.core(), w.stats().clone())).collect();
        for w in self.workers.drain(..) {
            let id = w.id();
            match w.stop() {
                Ok(q) => queues.push(q),
                Err(err) => {
                    first_err.get_or_insert(RuntimeError::Worker { worker: id, err });
                }
            }
        }
        drop(queues);
        if let Some(mut m) = self.neigh_mgr.take() {
            m.stop();
        }
        for p in self.ports.iter().chain(&self.gen_ports) {
            let _ = p.stop();
        }
        let mut final_stats = self.snapshot();
        final_stats.generator = gen_stats.map(|g| GenSnapshot::of(&g));
        final_stats.workers = worker_stats.iter().map(|(id, core, s)| WorkerSnapshot::of(*id, *core, s)).collect();
        let pools = self.ports.iter().chain(&self.gen_ports).flat_map(|p| pool_stats(&**p)).collect();
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(StopReport { pools, final_stats })
    }
}
