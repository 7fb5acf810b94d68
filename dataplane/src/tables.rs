//! Forwarding tables and how workers see them.
//!
//! The control side builds a complete [`Tables`] value off the fast path
//! and publishes it with [`TableHandle::publish`]; workers take a snapshot
//! once per burst ([`TableHandle::snapshot`], an `arc-swap` load that
//! neither locks nor allocates), so every packet of a burst sees one
//! version of every table and a writer never waits for a worker.
//!
//! The FIB here is a small static route list (longest prefix first,
//! linear scan) that keeps packets flowing end to end; the L3 lookup stage
//! replaces it with a real LPM.

use arc_swap::{ArcSwap, Guard};
use ports::{MacAddr, PortId};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// Where a route sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Out of `port` to the neighbour with MAC `mac`.
    Forward { port: PortId, mac: MacAddr },
    /// Silently discard (counted as `blackhole`).
    Drop,
    /// Discard and answer ICMP host unreachable (counted as `unreachable`).
    Unreachable,
}

/// An index into [`Tables::next_hops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHopId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route4 {
    net: u32,
    mask: u32,
    nh: NextHopId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route6 {
    net: u128,
    mask: u128,
    nh: NextHopId,
}

/// Static routes, longest prefix first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticFib {
    v4: Vec<Route4>,
    v6: Vec<Route6>,
}

/// Why a route was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    PrefixLen { len: u8, max: u8 },
    HostBitsSet(String),
    UnknownNextHop(NextHopId),
    Duplicate(String),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::PrefixLen { len, max } => write!(f, "prefix length {len} exceeds {max}"),
            RouteError::HostBitsSet(p) => write!(f, "prefix {p} has host bits set"),
            RouteError::UnknownNextHop(n) => write!(f, "next hop {} does not exist", n.0),
            RouteError::Duplicate(p) => write!(f, "route {p} already exists"),
        }
    }
}

impl std::error::Error for RouteError {}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl StaticFib {
    /// Adds `addr/len → nh`.
    pub fn add(&mut self, addr: IpAddr, len: u8, nh: NextHopId) -> Result<(), RouteError> {
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(RouteError::PrefixLen { len, max: 32 });
                }
                let (net, mask) = (u32::from(a), mask4(len));
                if net & !mask != 0 {
                    return Err(RouteError::HostBitsSet(format!("{a}/{len}")));
                }
                if self.v4.iter().any(|r| r.net == net && r.mask == mask) {
                    return Err(RouteError::Duplicate(format!("{a}/{len}")));
                }
                self.v4.push(Route4 { net, mask, nh });
                self.v4.sort_by_key(|r| std::cmp::Reverse(r.mask.count_ones()));
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(RouteError::PrefixLen { len, max: 128 });
                }
                let (net, mask) = (u128::from(a), mask6(len));
                if net & !mask != 0 {
                    return Err(RouteError::HostBitsSet(format!("{a}/{len}")));
                }
                if self.v6.iter().any(|r| r.net == net && r.mask == mask) {
                    return Err(RouteError::Duplicate(format!("{a}/{len}")));
                }
                self.v6.push(Route6 { net, mask, nh });
                self.v6.sort_by_key(|r| std::cmp::Reverse(r.mask.count_ones()));
            }
        }
        Ok(())
    }

    #[inline]
    pub fn lookup_v4(&self, dst: u32) -> Option<NextHopId> {
        self.v4.iter().find(|r| dst & r.mask == r.net).map(|r| r.nh)
    }

    #[inline]
    pub fn lookup_v6(&self, dst: u128) -> Option<NextHopId> {
        self.v6.iter().find(|r| dst & r.mask == r.net).map(|r| r.nh)
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every table a worker reads, as one immutable version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Indexed by `PortId`.
    pub ports: Vec<PortEntry>,
    pub next_hops: Vec<NextHop>,
    pub fib: StaticFib,
    /// Bumped on every publish.
    pub generation: u64,
}

impl Tables {
    /// Adds a next hop and returns its id.
    pub fn add_next_hop(&mut self, nh: NextHop) -> NextHopId {
        self.next_hops.push(nh);
        NextHopId(self.next_hops.len() as u32 - 1)
    }

    /// Adds a route to an existing next hop.
    pub fn add_route(&mut self, addr: IpAddr, len: u8, nh: NextHopId) -> Result<(), RouteError> {
        if nh.0 as usize >= self.next_hops.len() {
            return Err(RouteError::UnknownNextHop(nh));
        }
        self.fib.add(addr, len, nh)
    }

    #[inline]
    pub fn port(&self, id: u16) -> Option<&PortEntry> {
        self.ports.get(id as usize)
    }

    #[inline]
    pub fn next_hop(&self, id: NextHopId) -> Option<&NextHop> {
        self.next_hops.get(id.0 as usize)
    }

    /// The MTU of the port the route for `dst` leaves by, if it forwards.
    pub fn egress_mtu(&self, dst: IpAddr) -> Option<u16> {
        let nh = match dst {
            IpAddr::V4(a) => self.fib.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.fib.lookup_v6(u128::from(a)),
        }?;
        match self.next_hop(nh)? {
            NextHop::Forward { port, .. } => self.port(port.0).map(|p| p.mtu),
            _ => None,
        }
    }

    /// Whether `a` is one of the router's own IPv4 addresses on `port`.
    #[inline]
    pub fn is_local_v4(&self, port: u16, a: Ipv4Addr) -> bool {
        self.port(port).is_some_and(|p| p.addrs.contains(&IpAddr::V4(a)))
    }

    #[inline]
    pub fn is_local_v6(&self, port: u16, a: Ipv6Addr) -> bool {
        self.port(port).is_some_and(|p| p.addrs.contains(&IpAddr::V6(a)))
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

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn longest_prefix_wins_regardless_of_insert_order() {
        let mut t = Tables::default();
        let a = t.add_next_hop(NextHop::Drop);
        let b = t.add_next_hop(NextHop::Drop);
        let c = t.add_next_hop(NextHop::Drop);
        t.add_route(v4("10.0.0.0"), 8, a).expect("route");
        t.add_route(v4("10.1.2.0"), 24, c).expect("route");
        t.add_route(v4("10.1.0.0"), 16, b).expect("route");
        t.add_route(v4("0.0.0.0"), 0, a).expect("route");
        let l = |s: &str| t.fib.lookup_v4(u32::from(s.parse::<Ipv4Addr>().expect("a")));
        assert_eq!(l("10.1.2.3"), Some(c));
        assert_eq!(l("10.1.3.3"), Some(b));
        assert_eq!(l("10.2.0.0"), Some(a));
        assert_eq!(l("192.0.2.1"), Some(a));
        t.add_route(v4("2001:db8::"), 32, b).expect("route6");
        assert_eq!(t.fib.lookup_v6(u128::from("2001:db8::1".parse::<Ipv6Addr>().expect("a"))), Some(b));
        assert_eq!(t.fib.lookup_v6(u128::from("2001:db9::1".parse::<Ipv6Addr>().expect("a"))), None);
    }

    #[test]
    fn bad_routes_are_refused_with_reasons() {
        let mut t = Tables::default();
        let a = t.add_next_hop(NextHop::Drop);
        assert_eq!(t.add_route(v4("10.0.0.1"), 8, a), Err(RouteError::HostBitsSet("10.0.0.1/8".into())));
        assert_eq!(t.add_route(v4("10.0.0.0"), 33, a), Err(RouteError::PrefixLen { len: 33, max: 32 }));
        assert_eq!(t.add_route(v4("10.0.0.0"), 8, NextHopId(9)), Err(RouteError::UnknownNextHop(NextHopId(9))));
        t.add_route(v4("10.0.0.0"), 8, a).expect("route");
        assert!(matches!(t.add_route(v4("10.0.0.0"), 8, a), Err(RouteError::Duplicate(_))));
        assert_eq!(t.fib.len(), 1, "refused routes change nothing");
    }

    #[test]
    fn publish_is_seen_by_new_snapshots_only() {
        let h = TableHandle::new(Tables::default());
        let old = h.snapshot();
        let mut t = (*h.current()).clone();
        let nh = t.add_next_hop(NextHop::Drop);
        t.add_route(v4("10.0.0.0"), 8, nh).expect("route");
        h.publish(t);
        assert_eq!(old.fib.len(), 0, "a snapshot never changes under its reader");
        assert_eq!(h.snapshot().fib.len(), 1);
        assert_eq!(h.snapshot().generation, 1);
    }
}
