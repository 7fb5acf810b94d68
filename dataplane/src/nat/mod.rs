//! NAT44 with connection tracking.

pub mod control;
pub mod stage;
pub mod table;
pub mod xlate;

/// `Tuple::kind` of an ordinary flow.
pub const KIND_FLOW: u8 = 0;
/// `Tuple::kind` of a fragment-follow entry: `sport` is the IP
/// identification, `dport` 0.
pub const KIND_FRAG: u8 = 1;
/// `Tuple::kind` of an endpoint-independent mapping: the remote side is
/// zero.
pub const KIND_MAPPING: u8 = 2;

/// An IPv4 flow as NAT sees it, in the orientation of the packet it was
/// taken from. Addresses are host-order numbers. For ICMP queries (echo,
/// timestamp, ...) both `sport` and `dport` are the query identifier, so
/// a request and its reply are each other's reverse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub kind: u8,
}

impl Tuple {
    /// The same flow seen from the other end.
    #[inline(always)]
    pub const fn reverse(&self) -> Tuple {
        Tuple { src: self.dst, dst: self.src, sport: self.dport, dport: self.sport, proto: self.proto, kind: self.kind }
    }

    /// The tuple as two words (for hashing and comparing).
    #[inline(always)]
    pub const fn words(&self) -> (u64, u64) {
        (
            (self.src as u64) << 32 | self.dst as u64,
            (self.sport as u64) << 32 | (self.dport as u64) << 16 | (self.proto as u64) << 8 | self.kind as u64,
        )
    }
}

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// How outbound flows of one inside endpoint share external ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mapping {
    /// One external port per (inside endpoint, remote endpoint): a port is
    /// in use only towards the remote it was allocated for, and only that
    /// remote's replies get in (the default; what Linux masquerade and
    /// VPP's NAT44-ED do).
    #[default]
    EndpointDependent,
    /// One external address:port per inside address:port for every
    /// remote (RFC 4787 endpoint-independent mapping), and any remote may
    /// send to it while the mapping lives (endpoint-independent filtering,
    /// "full cone").
    EndpointIndependent,
}

/// An inclusive range of ports (or ICMP identifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        (self.hi as u32 + 1).saturating_sub(self.lo as u32)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where source translation takes its address from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnatTo {
    /// The first IPv4 address of the port the packet leaves by
    /// (masquerade).
    Interface,
    /// One of these addresses, chosen by a hash of the inside address (so
    /// an inside host keeps one external address: "paired" pooling).
    Pool(Vec<Ipv4Addr>),
}

/// Source translation for packets from `src` leaving by an outside port
/// (`out_port`, or any outside port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnatRule {
    pub src: Ipv4Net,
    pub out_port: Option<String>,
    pub to: SnatTo,
}

/// Destination translation of packets to `external` (and `port` of
/// `proto`): port forwarding when `proto`/`port` are set, a static 1:1
/// mapping of the whole address when they are not. Several backends share
/// the flows by a hash of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnatRule {
    pub external: Ipv4Addr,
    /// TCP (6) or UDP (17); `None` with `port: None` for a 1:1 mapping.
    pub proto: Option<u8>,
    pub port: Option<u16>,
    /// Inside address and port (`None`: the external port is kept).
    pub backends: Vec<(Ipv4Addr, Option<u16>)>,
}

/// What a port is to NAT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// NAT ignores packets arriving on this port.
    #[default]
    None,
    Inside,
    Outside,
}

/// The NAT configuration. NAT is off while no port is inside or outside.
#[derive(Clone, Debug, PartialEq)]
pub struct NatConfig {
    /// Port names.
    pub inside: Vec<String>,
    pub outside: Vec<String>,
    /// Tried in order; the first whose source prefix (and port) matches.
    pub snat: Vec<SnatRule>,
    pub dnat: Vec<DnatRule>,
    /// Traffic from or to these prefixes is never translated.
    pub exempt: Vec<Ipv4Net>,
    pub mapping: Mapping,
    pub tcp_ports: PortRange,
    pub udp_ports: PortRange,
    pub icmp_ids: PortRange,
    /// Most sessions one inside address may create (0: no limit).
    pub max_sessions_per_host: u32,
    pub table: table::NatTableConfig,
}

/// Azure's platform addresses (health probes, DHCP, DNS, metadata): never
/// translated.
pub fn default_exempt() -> Vec<Ipv4Net> {
    vec![
        Ipv4Net::new(Ipv4Addr::new(168, 63, 129, 16), 32).unwrap_or_default(),
        Ipv4Net::new(Ipv4Addr::new(169, 254, 169, 254), 32).unwrap_or_default(),
    ]
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            inside: Vec::new(),
            outside: Vec::new(),
            snat: Vec::new(),
            dnat: Vec::new(),
            exempt: default_exempt(),
            mapping: Mapping::EndpointDependent,
            tcp_ports: PortRange { lo: 1024, hi: 65535 },
            udp_ports: PortRange { lo: 1024, hi: 65535 },
            icmp_ids: PortRange { lo: 1, hi: 65535 },
            max_sessions_per_host: 0,
            table: table::NatTableConfig::default(),
        }
    }
}

impl NatConfig {
    pub fn enabled(&self) -> bool {
        !self.inside.is_empty() || !self.outside.is_empty()
    }
}
