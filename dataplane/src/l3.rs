//! L3 forwarding state: VRFs, adjacencies (next hops), ECMP groups, and the
//! control side that keeps them consistent while workers read.
//!
//! A FIB maps a destination to a `u32` *value*: an adjacency index, or an
//! ECMP group index with [`GROUP_BIT`] set. Adjacencies say what to do with
//! the packet ([`Adj`]); groups pick an adjacency by flow hash. Routes never
//! hold next-hop details, so changing a next hop never touches a route
//! (DESIGN.md, "Tables and updates").
//!
//! Consistency while forwarding: the FIBs change in place (single atomic
//! entry stores, RCU for freed memory); the adjacency and group arrays are
//! small and published whole in a new [`crate::tables::Tables`] version.
//! The control side orders its steps so a worker never meets an index that
//! is not valid in its snapshot:
//! - adding: publish the adjacency/group first, then insert the route;
//! - removing: remove the route first, `rcu.synchronize()` (no worker still
//!   holds the old FIB value), then free the adjacency/group.

use crate::ecmp::{EcmpError, EcmpGroup};
use crate::fib::v4::{Fib4, Fib4Config, Fib4Reader};
use crate::fib::v6::{Fib6, Fib6Config, Fib6Reader};
use crate::fib::FibError;
use crate::rcu::Rcu;
use crate::tables::TableHandle;
use ports::{MacAddr, PortId};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// FIB value flag: the rest is an ECMP group index.
pub const GROUP_BIT: u32 = 1 << 29;

/// A routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VrfId(pub u16);

/// An adjacency index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdjId(pub u32);

/// An ECMP group index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

/// What a route leads to, as the fast path sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adj {
    /// Out of `port` with a fixed destination MAC (a static neighbour, or
    /// the Azure gateway MAC that answers for every off-box next hop).
    Fixed { port: PortId, mac: MacAddr },
    /// Out of `port` to the neighbour in slot `neigh` (resolved by ARP/ND).
    Gateway { port: PortId, neigh: u32 },
    /// A connected subnet on `port`: the destination is the neighbour.
    Glean { port: PortId },
    /// One of the router's own addresses.
    Local,
    /// Discard silently.
    Drop,
    /// Discard and answer ICMP unreachable.
    Unreachable,
}

/// What a route points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Adj(AdjId),
    Group(GroupId),
}

impl Target {
    fn value(self) -> u32 {
        match self {
            Target::Adj(a) => a.0,
            Target::Group(g) => g.0 | GROUP_BIT,
        }
    }

    fn from_value(v: u32) -> Target {
        if v & GROUP_BIT != 0 {
            Target::Group(GroupId(v & !GROUP_BIT))
        } else {
            Target::Adj(AdjId(v))
        }
    }
}

/// One VRF's FIBs as workers read them.
#[derive(Clone, Debug)]
pub struct VrfView {
    pub fib4: Fib4Reader,
    pub fib6: Fib6Reader,
}

/// The L3 state a worker reads through its per-burst table snapshot.
#[derive(Clone, Debug, Default)]
pub struct L3View {
    pub adj: Vec<Adj>,
    pub groups: Vec<Option<Arc<EcmpGroup>>>,
    pub vrfs: Vec<VrfView>,
    /// VRF of each port, by `PortId`.
    pub port_vrf: Vec<u16>,
}

impl L3View {
    /// Resolves a FIB value to an adjacency, hashing into a group with
    /// `hash` (computed lazily: only groups need it).
    #[inline(always)]
    pub fn resolve(&self, value: u32, hash: impl FnOnce(bool) -> u32) -> Option<&Adj> {
        if value & GROUP_BIT != 0 {
            let g = self.groups.get((value & !GROUP_BIT) as usize)?.as_ref()?;
            self.adj.get(g.pick(hash(g.symmetric)) as usize)
        } else {
            self.adj.get(value as usize)
        }
    }

    #[inline(always)]
    pub fn vrf_of(&self, port: u16) -> Option<&VrfView> {
        self.vrfs.get(*self.port_vrf.get(port as usize)? as usize)
    }
}

/// Why the L3 control side refused a change. Nothing changed when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3Error {
    NoSuchVrf(VrfId),
    NoSuchPort(PortId),
    NoSuchAdj(AdjId),
    NoSuchGroup(GroupId),
    /// Still referenced by this many routes or groups.
    InUse {
        what: String,
        refs: u32,
    },
    RouteExists(String),
    NoSuchRoute(String),
    Fib(FibError),
    Ecmp(EcmpError),
    TooMany(&'static str),
}

impl fmt::Display for L3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L3Error::NoSuchVrf(v) => write!(f, "VRF {} does not exist", v.0),
            L3Error::NoSuchPort(p) => write!(f, "port {} does not exist", p.0),
            L3Error::NoSuchAdj(a) => write!(f, "next hop {} does not exist", a.0),
            L3Error::NoSuchGroup(g) => write!(f, "next-hop group {} does not exist", g.0),
            L3Error::InUse { what, refs } => write!(f, "{what} is still used by {refs} routes or groups"),
            L3Error::RouteExists(r) => write!(f, "route {r} already exists"),
            L3Error::NoSuchRoute(r) => write!(f, "route {r} does not exist"),
            L3Error::Fib(e) => write!(f, "{e}"),
            L3Error::Ecmp(e) => write!(f, "{e}"),
            L3Error::TooMany(what) => write!(f, "too many {what}"),
        }
    }
}

impl std::error::Error for L3Error {}

impl From<FibError> for L3Error {
    fn from(e: FibError) -> Self {
        L3Error::Fib(e)
    }
}

struct Vrf {
    fib4: Fib4,
    fib6: Fib6,
}

/// Sizes of the L3 tables.
#[derive(Clone, Copy, Debug)]
pub struct L3Config {
    pub vrfs: u16,
    pub fib4: Fib4Config,
    pub fib6: Fib6Config,
    pub max_adj: u32,
    pub max_groups: u32,
}

impl Default for L3Config {
    fn default() -> Self {
        L3Config {
            vrfs: 1,
            fib4: Fib4Config { tbl8_groups: 4096, ..Default::default() },
            fib6: Fib6Config::default(),
            max_adj: 1 << 20,
            max_groups: 1 << 16,
        }
    }
}

/// The control side of L3: the only writer. When it has a table handle it
/// publishes a new `Tables` version itself whenever an adjacency or group
/// appears or goes, or a port changes VRF — before any route can refer to
/// it, and after no worker can still use it.
pub struct L3Control {
    rcu: Rcu,
    tables: Option<TableHandle>,
    cfg: L3Config,
    vrfs: Vec<Vrf>,
    adj: Vec<Option<Adj>>,
    adj_refs: Vec<u32>,
    groups: Vec<Option<(Arc<EcmpGroup>, Vec<AdjId>)>>,
    group_refs: Vec<u32>,
    port_vrf: Vec<u16>,
    /// Adjacencies shared by equal definitions (e.g. every route via the
    /// same gateway uses one).
    adj_index: HashMap<AdjKey, AdjId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AdjKey {
    Fixed(u16, [u8; 6]),
    Gateway(u16, u32),
    Glean(u16),
    Local,
    Drop,
    Unreachable,
}

fn key(a: &Adj) -> AdjKey {
    match *a {
        Adj::Fixed { port, mac } => AdjKey::Fixed(port.0, mac.0),
        Adj::Gateway { port, neigh } => AdjKey::Gateway(port.0, neigh),
        Adj::Glean { port } => AdjKey::Glean(port.0),
        Adj::Local => AdjKey::Local,
        Adj::Drop => AdjKey::Drop,
        Adj::Unreachable => AdjKey::Unreachable,
    }
}

fn route_name(vrf: VrfId, addr: IpAddr, len: u8) -> String {
    format!("{addr}/{len} in VRF {}", vrf.0)
}

impl L3Control {
    /// Creates `cfg.vrfs` empty VRFs; every port starts in VRF 0.
    pub fn new(cfg: L3Config, ports: usize, rcu: Rcu) -> Result<L3Control, L3Error> {
        if cfg.vrfs == 0 {
            return Err(L3Error::TooMany("VRFs: need at least one"));
        }
        let mut vrfs = Vec::new();
        for _ in 0..cfg.vrfs {
            vrfs.push(Vrf { fib4: Fib4::new(&cfg.fib4, rcu.clone())?, fib6: Fib6::new(&cfg.fib6, rcu.clone())? });
        }
        Ok(L3Control {
            rcu,
            tables: None,
            cfg,
            vrfs,
            adj: Vec::new(),
            adj_refs: Vec::new(),
            groups: Vec::new(),
            group_refs: Vec::new(),
            port_vrf: vec![0; ports],
            adj_index: HashMap::new(),
        })
    }

    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }

    /// Publishes into `tables` from now on (and once right away).
    pub fn attach(&mut self, tables: TableHandle) {
        self.tables = Some(tables);
        self.publish();
    }

    /// Publishes the current view (a no-op without a table handle).
    pub fn publish(&self) {
        if let Some(h) = &self.tables {
            let mut t = (*h.current()).clone();
            t.l3 = self.view();
            h.publish(t);
        }
    }

    /// The fast-path view to publish.
    pub fn view(&self) -> L3View {
        L3View {
            adj: self.adj.iter().map(|a| a.unwrap_or(Adj::Drop)).collect(),
            groups: self.groups.iter().map(|g| g.as_ref().map(|g| g.0.clone())).collect(),
            vrfs: self.vrfs.iter().map(|v| VrfView { fib4: v.fib4.reader(), fib6: v.fib6.reader() }).collect(),
            port_vrf: self.port_vrf.clone(),
        }
    }

    /// Binds a port to a VRF (publish the view afterwards).
    pub fn bind_port(&mut self, port: PortId, vrf: VrfId) -> Result<(), L3Error> {
        if vrf.0 as usize >= self.vrfs.len() {
            return Err(L3Error::NoSuchVrf(vrf));
        }
        let slot = self.port_vrf.get_mut(port.0 as usize).ok_or(L3Error::NoSuchPort(port))?;
        *slot = vrf.0;
        self.publish();
        Ok(())
    }

    pub fn port_vrf(&self, port: PortId) -> Option<VrfId> {
        self.port_vrf.get(port.0 as usize).map(|v| VrfId(*v))
    }

    /// Finds or creates the adjacency (publish the view before routing to it).
    pub fn adjacency(&mut self, a: Adj) -> Result<AdjId, L3Error> {
        if let Some(id) = self.adj_index.get(&key(&a)) {
            return Ok(*id);
        }
        let port = match a {
            Adj::Fixed { port, .. } | Adj::Gateway { port, .. } | Adj::Glean { port } => Some(port),
            _ => None,
        };
        if let Some(p) = port {
            if p.0 as usize >= self.port_vrf.len() {
                return Err(L3Error::NoSuchPort(p));
            }
        }
        let id = match self.adj.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                if self.adj.len() as u32 >= self.cfg.max_adj.min(GROUP_BIT - 1) {
                    return Err(L3Error::TooMany("next hops"));
                }
                self.adj.push(None);
                self.adj_refs.push(0);
                self.adj.len() - 1
            }
        };
        self.adj[id] = Some(a);
        self.adj_refs[id] = 0;
        self.adj_index.insert(key(&a), AdjId(id as u32));
        self.publish();
        Ok(AdjId(id as u32))
    }

    pub fn adj(&self, id: AdjId) -> Option<Adj> {
        self.adj.get(id.0 as usize).copied().flatten()
    }

    /// Removes an adjacency nothing refers to.
    pub fn remove_adjacency(&mut self, id: AdjId) -> Result<(), L3Error> {
        let a = self.adj(id).ok_or(L3Error::NoSuchAdj(id))?;
        let refs = self.adj_refs[id.0 as usize];
        if refs > 0 {
            return Err(L3Error::InUse { what: format!("next hop {}", id.0), refs });
        }
        // A worker may still hold a FIB value read before the last route to
        // it went: wait until none can, then free the index for reuse.
        self.synchronize();
        self.adj_index.remove(&key(&a));
        self.adj[id.0 as usize] = None;
        self.publish();
        Ok(())
    }

    /// Creates an ECMP group over adjacencies with weights (publish the view
    /// before routing to it).
    pub fn add_group(&mut self, members: &[(AdjId, u32)], symmetric: bool) -> Result<GroupId, L3Error> {
        for (a, _) in members {
            self.adj(*a).ok_or(L3Error::NoSuchAdj(*a))?;
        }
        let g = EcmpGroup::new(&members.iter().map(|(a, w)| (a.0, *w)).collect::<Vec<_>>(), symmetric)
            .map_err(L3Error::Ecmp)?;
        let id = match self.groups.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                if self.groups.len() as u32 >= self.cfg.max_groups {
                    return Err(L3Error::TooMany("next-hop groups"));
                }
                self.groups.push(None);
                self.group_refs.push(0);
                self.groups.len() - 1
            }
        };
        let ids: Vec<AdjId> = members.iter().map(|m| m.0).collect();
        for a in &ids {
            self.adj_refs[a.0 as usize] += 1;
        }
        self.groups[id] = Some((Arc::new(g), ids));
        self.group_refs[id] = 0;
        self.publish();
        Ok(GroupId(id as u32))
    }

    /// Removes a group no route uses.
    pub fn remove_group(&mut self, id: GroupId) -> Result<(), L3Error> {
        let refs = *self.group_refs.get(id.0 as usize).ok_or(L3Error::NoSuchGroup(id))?;
        let Some((_, members)) = self.groups.get(id.0 as usize).and_then(Option::as_ref) else {
            return Err(L3Error::NoSuchGroup(id));
        };
        if refs > 0 {
            return Err(L3Error::InUse { what: format!("group {}", id.0), refs });
        }
        let members = members.clone();
        self.synchronize();
        for a in members {
            self.adj_refs[a.0 as usize] -= 1;
        }
        self.groups[id.0 as usize] = None;
        self.publish();
        Ok(())
    }

    fn check_target(&self, t: Target) -> Result<(), L3Error> {
        match t {
            Target::Adj(a) => self.adj(a).map(|_| ()).ok_or(L3Error::NoSuchAdj(a)),
            Target::Group(g) => {
                self.groups.get(g.0 as usize).and_then(Option::as_ref).map(|_| ()).ok_or(L3Error::NoSuchGroup(g))
            }
        }
    }

    fn add_ref(&mut self, t: Target, d: i32) {
        let r = match t {
            Target::Adj(a) => &mut self.adj_refs[a.0 as usize],
            Target::Group(g) => &mut self.group_refs[g.0 as usize],
        };
        *r = r.saturating_add_signed(d);
    }

    /// Adds a route. The target must be published already (see module docs).
    pub fn add_route(&mut self, vrf: VrfId, addr: IpAddr, len: u8, t: Target) -> Result<(), L3Error> {
        self.check_target(t)?;
        let v = self.vrfs.get_mut(vrf.0 as usize).ok_or(L3Error::NoSuchVrf(vrf))?;
        let exists = match addr {
            IpAddr::V4(a) => v.fib4.get(a, len).is_some(),
            IpAddr::V6(a) => v.fib6.get(a, len).is_some(),
        };
        if exists {
            return Err(L3Error::RouteExists(route_name(vrf, addr, len)));
        }
        match addr {
            IpAddr::V4(a) => v.fib4.insert(a, len, t.value())?,
            IpAddr::V6(a) => v.fib6.insert(a, len, t.value())?,
        };
        self.add_ref(t, 1);
        Ok(())
    }

    /// Points an existing route at a new target (atomic for lookups).
    pub fn replace_route(&mut self, vrf: VrfId, addr: IpAddr, len: u8, t: Target) -> Result<Target, L3Error> {
        self.check_target(t)?;
        let v = self.vrfs.get_mut(vrf.0 as usize).ok_or(L3Error::NoSuchVrf(vrf))?;
        let old = match addr {
            IpAddr::V4(a) => v.fib4.get(a, len),
            IpAddr::V6(a) => v.fib6.get(a, len),
        }
        .ok_or_else(|| L3Error::NoSuchRoute(route_name(vrf, addr, len)))?;
        match addr {
            IpAddr::V4(a) => v.fib4.insert(a, len, t.value())?,
            IpAddr::V6(a) => v.fib6.insert(a, len, t.value())?,
        };
        self.add_ref(t, 1);
        let old = Target::from_value(old);
        self.add_ref(old, -1);
        Ok(old)
    }

    /// Removes a route and returns its target. (Freeing the target later
    /// synchronizes with the workers: see `remove_adjacency`.)
    pub fn remove_route(&mut self, vrf: VrfId, addr: IpAddr, len: u8) -> Result<Target, L3Error> {
        let v = self.vrfs.get_mut(vrf.0 as usize).ok_or(L3Error::NoSuchVrf(vrf))?;
        let old = match addr {
            IpAddr::V4(a) => v.fib4.remove(a, len),
            IpAddr::V6(a) => v.fib6.remove(a, len),
        }
        .map_err(|e| match e {
            FibError::NotFound { .. } => L3Error::NoSuchRoute(route_name(vrf, addr, len)),
            e => L3Error::Fib(e),
        })?;
        let t = Target::from_value(old);
        self.add_ref(t, -1);
        Ok(t)
    }

    /// The route's target, if it exists.
    pub fn route(&self, vrf: VrfId, addr: IpAddr, len: u8) -> Option<Target> {
        let v = self.vrfs.get(vrf.0 as usize)?;
        match addr {
            IpAddr::V4(a) => v.fib4.get(a, len),
            IpAddr::V6(a) => v.fib6.get(a, len),
        }
        .map(Target::from_value)
    }

    /// Waits until no worker can still hold a FIB value read before now.
    pub fn synchronize(&self) {
        self.rcu.synchronize();
    }

    /// Number of routes in a VRF (IPv4, IPv6).
    pub fn route_count(&self, vrf: VrfId) -> Option<(usize, usize)> {
        self.vrfs.get(vrf.0 as usize).map(|v| (v.fib4.len(), v.fib6.len()))
    }

    /// References to an adjacency (routes and groups).
    pub fn adj_refs(&self, id: AdjId) -> Option<u32> {
        self.adj_refs.get(id.0 as usize).copied()
    }

    /// Adds the connected route (glean) and the local host route of an
    /// interface address `addr/len` on `port`.
    pub fn add_interface_address(&mut self, port: PortId, addr: IpAddr, len: u8) -> Result<(), L3Error> {
        let vrf = self.port_vrf(port).ok_or(L3Error::NoSuchPort(port))?;
        let net = ipnet_trunc(addr, len)?;
        let glean = self.adjacency(Adj::Glean { port })?;
        let local = self.adjacency(Adj::Local)?;
        let host = if addr.is_ipv4() { 32 } else { 128 };
        if len < host && self.route(vrf, net, len).is_none() {
            self.add_route(vrf, net, len, Target::Adj(glean))?;
        }
        if self.route(vrf, addr, host).is_none() {
            self.add_route(vrf, addr, host, Target::Adj(local))?;
        }
        Ok(())
    }
}

fn ipnet_trunc(addr: IpAddr, len: u8) -> Result<IpAddr, L3Error> {
    match addr {
        IpAddr::V4(a) if len <= 32 => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
            Ok(IpAddr::V4((u32::from(a) & m).into()))
        }
        IpAddr::V6(a) if len <= 128 => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - len as u32) };
            Ok(IpAddr::V6((u128::from(a) & m).into()))
        }
        _ => Err(L3Error::Fib(FibError::PrefixTooLong { len, max: if addr.is_ipv4() { 32 } else { 128 } })),
    }
}
