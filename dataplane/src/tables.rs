//! Forwarding tables and how workers see them.
//!
//! The control side builds a complete [`Tables`] value off the fast path
//! and publishes it with [`TableHandle::publish`]; workers take a snapshot
//! once per burst ([`TableHandle::snapshot`], an `arc-swap` load that
//! neither locks nor allocates), so every packet of a burst sees one
//! version of every table and a writer never waits for a worker.
//!
//! The FIBs inside [`crate::l3::L3View`] are the exception: they change in
//! place (atomic entry stores, RCU reclamation); see `l3` for the ordering
//! that keeps a burst's view consistent.

use crate::l3::{Adj, L3View};
use arc_swap::{ArcSwap, Guard};
use ports::{MacAddr, PortId};
use std::net::IpAddr;
use std::sync::Arc;

/// What the dataplane knows about a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEntry {
    pub id: PortId,
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
    /// The router's own addresses on this port.
    pub addrs: Vec<IpAddr>,
}

/// Every table a worker reads, as one immutable version.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// Indexed by `PortId`.
    pub ports: Vec<PortEntry>,
    /// VRFs, FIBs, adjacencies and ECMP groups.
    pub l3: L3View,
    /// ACL bindings and the session table.
    pub acl: crate::acl::stage::AclTables,
    /// NAT rules and the NAT session table (`None`: NAT off).
    pub nat: Option<std::sync::Arc<crate::nat::stage::NatView>>,
    /// Bumped on every publish.
    pub generation: u64,
}

impl Tables {
    #[inline]
    pub fn port(&self, id: u16) -> Option<&PortEntry> {
        self.ports.get(id as usize)
    }

    /// The FIB value for `dst` in the VRF of `in_port`.
    pub fn lookup(&self, in_port: u16, dst: IpAddr) -> Option<u32> {
        let v = self.l3.vrf_of(in_port)?;
        match dst {
            IpAddr::V4(a) => v.fib4.lookup(u32::from(a)),
            IpAddr::V6(a) => v.fib6.lookup(u128::from(a)),
        }
    }

    /// The MTU of the port the route for `dst` (seen from `in_port`) leaves
    /// by, if it forwards (for ICMP fragmentation-needed / packet-too-big).
    pub fn egress_mtu(&self, in_port: u16, dst: IpAddr) -> Option<u16> {
        let v = self.lookup(in_port, dst)?;
        let port = match self.l3.resolve(v, |_| 0)? {
            Adj::Fixed { port, .. } | Adj::Gateway { port, .. } | Adj::Glean { port } => *port,
            _ => return None,
        };
        self.port(port.0).map(|p| p.mtu)
    }
}

/// The published tables, shared by the control side and every worker.
#[derive(Clone)]
pub struct TableHandle {
    inner: Arc<ArcSwap<Tables>>,
}

/// A worker's view of the tables for one burst.
pub type Snapshot = Guard<Arc<Tables>>;

impl TableHandle {
    pub fn new(t: Tables) -> TableHandle {
        TableHandle { inner: Arc::new(ArcSwap::from_pointee(t)) }
    }

    /// The current version (workers: once per burst).
    #[inline]
    pub fn snapshot(&self) -> Snapshot {
        self.inner.load()
    }

    /// A full copy of the current version, to edit and publish.
    pub fn current(&self) -> Arc<Tables> {
        self.inner.load_full()
    }

    /// Makes `t` the version workers see from their next burst on.
    pub fn publish(&self, mut t: Tables) {
        t.generation = self.inner.load().generation + 1;
        self.inner.store(Arc::new(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_is_seen_by_new_snapshots_only() {
        let h = TableHandle::new(Tables::default());
        let old = h.snapshot();
        let mut t = (*h.current()).clone();
        t.ports.push(PortEntry { id: PortId(0), name: "p0".into(), mac: MacAddr::default(), mtu: 1500, addrs: vec![] });
        h.publish(t);
        assert_eq!(old.ports.len(), 0, "a snapshot never changes under its reader");
        assert_eq!(h.snapshot().ports.len(), 1);
        assert_eq!(h.snapshot().generation, 1);
    }
}
