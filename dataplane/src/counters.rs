//! Per-worker counters and the named reason of every drop.
//!
//! Each worker owns one [`WorkerStats`]; only that worker writes it (with
//! single-writer [`Counter`]s: no locked instructions on the fast path), and
//! the control side reads and sums them.

use crate::wire::WireError;
use ports::counter::Counter;

/// Why a packet was dropped. Malformed packets carry the parser's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The parser rejected the frame.
    Malformed(WireError),
    /// Fragmenting for a smaller egress MTU failed.
    Frag(crate::frag::FragError),
    /// Unicast to a MAC address that is not the input port's.
    NotForUs,
    /// An ethertype the router does not handle.
    UnsupportedEthertype,
    /// A VLAN-tagged frame on a port with no VLAN sub-interfaces.
    VlanUnknown,
    /// No route to the destination (answered with ICMP net unreachable).
    NoRoute,
    /// The route is a blackhole: discarded silently.
    Blackhole,
    /// The route is unreachable (answered with ICMP host unreachable).
    Unreachable,
    /// The next hop's link-layer address is not known (yet).
    NeighUnresolved,
    /// The queue of packets waiting for neighbour resolution was full.
    NeighQueueFull,
    /// TTL or hop limit would reach zero.
    TtlExceeded,
    /// Larger than the egress port's MTU.
    MtuExceeded,
    /// The route's next hop points at a port this router does not have.
    BadNextHop,
    /// The TX queue had no room.
    TxFull,
    /// This worker has no TX queue on the egress port.
    TxNoQueue,
    /// Meant for the router itself, and no punt path is configured.
    PuntNoPath,
    /// No stage decided what to do with the packet (a pipeline bug guard).
    NoVerdict,
    /// An ACL rule denied it.
    AclDeny,
    /// No ACL rule matched and the binding's default is deny.
    AclDefaultDeny,
    /// A permit-stateful rule matched but the session table had no room.
    AclSessionFull,
    /// A new flow needed a NAT session and the worker's share of the NAT
    /// session table (or the index) had no room.
    NatSessionFull,
    /// Every external port tried for a new flow was in use towards its
    /// remote end.
    NatPortExhausted,
    /// The inside host already has its maximum number of NAT sessions.
    NatHostLimit,
    /// A DNAT session's reply tuple is already another session's.
    NatReplyClash,
    /// A later fragment whose first fragment created no translation (it
    /// came first, or was dropped).
    NatFragNoSession,
    /// A protocol NAT cannot translate (not TCP, UDP or ICMP) would need
    /// source translation.
    NatUnsupportedProtocol,
}

const OWN: [(DropReason, &str); 24] = [
    (DropReason::NotForUs, "eth_not_for_us"),
    (DropReason::UnsupportedEthertype, "unsupported_ethertype"),
    (DropReason::VlanUnknown, "vlan_unknown"),
    (DropReason::NoRoute, "no_route"),
    (DropReason::TtlExceeded, "ttl_exceeded"),
    (DropReason::MtuExceeded, "mtu_exceeded"),
    (DropReason::BadNextHop, "bad_next_hop"),
    (DropReason::TxFull, "tx_full"),
    (DropReason::TxNoQueue, "tx_no_queue"),
    (DropReason::PuntNoPath, "punt_no_path"),
    (DropReason::NoVerdict, "no_verdict"),
    (DropReason::Blackhole, "blackhole"),
    (DropReason::Unreachable, "unreachable"),
    (DropReason::NeighUnresolved, "neigh_unresolved"),
    (DropReason::NeighQueueFull, "neigh_queue_full"),
    (DropReason::AclDeny, "acl_deny"),
    (DropReason::AclDefaultDeny, "acl_default_deny"),
    (DropReason::AclSessionFull, "acl_session_full"),
    (DropReason::NatSessionFull, "nat_session_full"),
    (DropReason::NatPortExhausted, "nat_port_exhausted"),
    (DropReason::NatHostLimit, "nat_host_limit"),
    (DropReason::NatReplyClash, "nat_reply_clash"),
    (DropReason::NatFragNoSession, "nat_frag_no_session"),
    (DropReason::NatUnsupportedProtocol, "nat_unsupported_protocol"),
];

impl DropReason {
    /// Number of distinct reasons.
    pub const COUNT: usize = WireError::COUNT + OWN.len() + crate::frag::FragError::COUNT;

    /// Dense index, for counter arrays.
    #[inline(always)]
    pub const fn index(self) -> usize {
        let own = match self {
            DropReason::Malformed(e) => return e.index(),
            DropReason::Frag(e) => return WireError::COUNT + OWN.len() + e.index(),
            DropReason::NotForUs => 0,
            DropReason::UnsupportedEthertype => 1,
            DropReason::VlanUnknown => 2,
            DropReason::NoRoute => 3,
            DropReason::TtlExceeded => 4,
            DropReason::MtuExceeded => 5,
            DropReason::BadNextHop => 6,
            DropReason::TxFull => 7,
            DropReason::TxNoQueue => 8,
            DropReason::PuntNoPath => 9,
            DropReason::NoVerdict => 10,
            DropReason::Blackhole => 11,
            DropReason::Unreachable => 12,
            DropReason::NeighUnresolved => 13,
            DropReason::NeighQueueFull => 14,
            DropReason::AclDeny => 15,
            DropReason::AclDefaultDeny => 16,
            DropReason::AclSessionFull => 17,
            DropReason::NatSessionFull => 18,
            DropReason::NatPortExhausted => 19,
            DropReason::NatHostLimit => 20,
            DropReason::NatReplyClash => 21,
            DropReason::NatFragNoSession => 22,
            DropReason::NatUnsupportedProtocol => 23,
        };
        WireError::COUNT + own
    }

    /// Every reason, in index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        WireError::ALL
            .into_iter()
            .map(DropReason::Malformed)
            .chain(OWN.iter().map(|o| o.0))
            .chain(crate::frag::FragError::ALL.into_iter().map(DropReason::Frag))
    }

    /// The counter name (malformed reasons are the parser's names).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed(e) => e.name(),
            DropReason::Frag(e) => e.name(),
            other => OWN[other.index() - WireError::COUNT].1,
        }
    }
}

/// Why a packet left the fast path for the router's own stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PuntReason {
    Arp = 0,
    /// IPv6 neighbour discovery and other link-local/multicast ICMPv6.
    Nd = 1,
    /// Addressed to one of the router's own addresses.
    Local = 2,
    /// IPv4 broadcast/multicast or IPv6 multicast.
    Multicast = 3,
}

impl PuntReason {
    pub const COUNT: usize = 4;
    pub const ALL: [PuntReason; 4] = [PuntReason::Arp, PuntReason::Nd, PuntReason::Local, PuntReason::Multicast];

    pub fn name(self) -> &'static str {
        match self {
            PuntReason::Arp => "arp",
            PuntReason::Nd => "nd",
            PuntReason::Local => "local",
            PuntReason::Multicast => "multicast",
        }
    }
}

/// Counters of one worker. Written only by that worker.
pub struct WorkerStats {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Loop iterations, and those that found packets.
    pub polls: Counter,
    pub busy_polls: Counter,
    /// TSC cycles spent on bursts that carried packets (RX to TX).
    pub busy_cycles: Counter,
    pub drops: [Counter; DropReason::COUNT],
    pub punts: [Counter; PuntReason::COUNT],
    /// Answers given from the fast path (see `local::LocalEvent`).
    pub local: [Counter; crate::local::LocalEvent::COUNT],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: Counter::new(),
            rx_bytes: Counter::new(),
            tx_packets: Counter::new(),
            tx_bytes: Counter::new(),
            polls: Counter::new(),
            busy_polls: Counter::new(),
            busy_cycles: Counter::new(),
            drops: std::array::from_fn(|_| Counter::new()),
            punts: std::array::from_fn(|_| Counter::new()),
            local: std::array::from_fn(|_| Counter::new()),
        }
    }
}

impl WorkerStats {
    #[inline(always)]
    pub fn drop(&self, r: DropReason) {
        self.drops[r.index()].inc();
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r.index()].get()
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }

    /// Non-zero local-answer counters by name.
    pub fn local_by_name(&self) -> Vec<(&'static str, u64)> {
        crate::local::LocalEvent::ALL
            .iter()
            .map(|e| (e.name(), self.local[*e as usize].get()))
            .filter(|x| x.1 > 0)
            .collect()
    }

    /// Non-zero drop counters by name.
    pub fn drops_by_name(&self) -> Vec<(&'static str, u64)> {
        DropReason::all().map(|r| (r.name(), self.dropped(r))).filter(|d| d.1 > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_unique_and_named() {
        let all: Vec<DropReason> = DropReason::all().collect();
        assert_eq!(all.len(), DropReason::COUNT);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let mut names: Vec<&str> = all.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT, "names are unique");
        assert_eq!(DropReason::NoRoute.name(), "no_route");
        assert_eq!(DropReason::Malformed(WireError::Ipv4BadIhl).name(), "ipv4_bad_ihl");
    }

    #[test]
    fn drops_by_name_lists_nonzero() {
        let s = WorkerStats::default();
        s.drop(DropReason::TtlExceeded);
        s.drop(DropReason::TtlExceeded);
        s.drop(DropReason::Malformed(WireError::EthTruncated));
        assert_eq!(s.drops_by_name(), vec![("eth_truncated", 1), ("ttl_exceeded", 2)]);
        assert_eq!(s.total_drops(), 3);
    }
}
