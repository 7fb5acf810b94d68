//! NAT44 with connection tracking.
//!
//! # Where it runs
//!
//! Ports are inside, outside, or neither (NAT ignores packets arriving on
//! those). The pipeline is parse → ACL in → **nat_in** → route → **nat_out**
//! → ACL out → local, so ingress ACLs see packets as they arrived and
//! egress ACLs see them translated. See [`stage`] for what each half does.
//!
//! # Sessions
//!
//! A session holds the tuple of its first packet and the tuple its replies
//! carry; a packet matching either is rewritten (addresses, ports or ICMP
//! identifier, checksums updated incrementally: [`xlate`]). The table
//! ([`table`]) is shared by every worker, so the two directions of a flow
//! may arrive on different cores; it is allocated once (about 100 bytes a
//! session) and split evenly between the workers for creation. Timeouts
//! (seconds, configurable): TCP established 7440; TCP transitory (before
//! both sides acknowledged, and after a FIN or RST) 240; UDP 300; ICMP 60.
//! A SYN on a closed session reopens it (port reuse).
//!
//! **When the table is full**, a new flow is dropped and counted
//! (`nat_session_full`); existing sessions are never evicted, so an
//! established connection cannot be pushed out by a flood of new ones.
//! Expired sessions stop matching at once and their records are reused
//! (each worker sweeps its share a little every burst, and more when it
//! runs out — at most once a second while that finds nothing, so a flood
//! of new flows against a full table costs little; a control-side pass
//! retires expired sessions every 100 ms).
//!
//! # Source translation (SNAT)
//!
//! A new flow from an inside port leaving by an outside port is translated
//! by the first [`SnatRule`] whose source prefix (and port) matches: to the
//! outside port's address (masquerade) or to a pool address chosen by a
//! hash of the inside address (an inside host keeps one address). Ports
//! come from the protocol's range ([`NatConfig::tcp_ports`] …), split
//! between the workers so two workers never hand out the same one; a port
//! is never given to a flow whose reply tuple another live session holds.
//! With the default endpoint-dependent [`Mapping`], a port is in use only
//! towards the remote end it was allocated for; endpoint-independent
//! mapping keeps one external address:port per inside address:port and
//! admits any remote end to it (full cone). A flow whose 64 candidate
//! ports are all in use is dropped (`nat_port_exhausted`). With
//! [`NatConfig::max_sessions_per_host`], an inside host over its limit
//! cannot open more (`nat_host_limit`).
//!
//! # Destination translation (DNAT)
//!
//! [`DnatRule`]s forward an outside address:port to inside backends (one
//! chosen per flow by a hash of the flow), or map a whole address 1:1
//! (inbound to any port, and outbound from the backend with its ports
//! kept). DNAT applies before the route lookup, so the translated
//! destination is routed.
//!
//! # Hairpinning
//!
//! An inside host reaching an inside server through its DNAT address is
//! translated both ways: destination to the server, source to the DNAT
//! address, so the server's reply comes back through the router.
//!
//! # ICMP
//!
//! Echo (and the other query types) translate the identifier; only the
//! identifier and addresses are in the session key. ICMP errors (time
//! exceeded, unreachable including fragmentation needed, parameter
//! problem, source quench, redirect) about a translated flow are matched
//! by the packet they quote, and that packet's addresses, ports and
//! checksums are translated back along with the outer addresses. Errors
//! about flows NAT does not know pass untouched. Errors the router sends
//! itself about a packet it had already translated (TTL exceeded,
//! fragmentation needed, unreachable) quote the packet as its sender sent
//! it, so path MTU discovery works through NAT.
//!
//! # Fragments
//!
//! The first fragment (it carries the ports) is translated through its
//! flow's session like any packet, and records the translation for its
//! datagram (source, destination, protocol, IP identification) for
//! [`table::Timeouts::fragment`] seconds. Later fragments of that datagram
//! follow it, on any worker. A later fragment that arrives before its
//! first, or whose first fragment was dropped, is dropped
//! (`nat_frag_no_session`) when it would need translation: leaving from
//! the inside to the outside, or arriving from the outside for a NAT
//! address. The router does not reassemble.
//!
//! # Exemptions and other protocols
//!
//! Traffic from or to [`NatConfig::exempt`] prefixes is never translated
//! (by default Azure's platform address 168.63.129.16 and the metadata
//! service 169.254.169.254). Protocols without ports (GRE, ESP, …) are
//! not translated: such a packet that would need SNAT is dropped
//! (`nat_unsupported_protocol`); between inside networks it passes.
//!
//! # Known limits
//!
//! - IPv4 only (NAT44); IPv6 passes untranslated.
//! - TCP sequence numbers are not tracked: an RST with the right tuple
//!   closes a session whatever its sequence number.

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
