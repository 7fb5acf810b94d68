//! The TOML configuration file.
//!
//! Unknown keys are errors (a typo must not silently change behaviour), and
//! every error names the file and the offending entry. See
//! `configs/demo.toml` for an annotated example, and
//! `configs/firewall.toml` for ACLs and sessions, `configs/nat.toml` for
//! NAT.

use dataplane::acl::control::{AclBindSpec, AclConfig, AclSpec};
use dataplane::acl::session::{SessionConfig, MAX_CAPACITY, MIN_CAPACITY};
use dataplane::acl::stage::Direction;
use dataplane::acl::{Action, Prefix, Range, Rule};
use dataplane::fib::v4::Fib4Config;
use dataplane::l3::L3Config;
use dataplane::runtime::{auto_plan, GenSpec, NeighborSpec, PortSpec, RouteSpec, RouteTarget, RuntimeSpec, WorkerPlan};
use dataplane::testgen::GenConfig;
use dataplane::wire::ip_proto;
use dataplane::wire::tcp::flags as tcpf;
use dataplane::IdlePolicy;
use ipnet::IpNet;
use ports::{HugepagePolicy, MacAddr, PortConfig, PortId};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dataplane: DataplaneSection,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSection>,
    #[serde(default, rename = "worker")]
    pub workers: Vec<WorkerSection>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSection>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborSection>,
    pub generator: Option<GeneratorSection>,
    #[serde(default, rename = "acl")]
    pub acls: Vec<AclSection>,
    pub sessions: Option<SessionsSection>,
    /// NAT44: see `configs/nat.toml`.
    pub nat: Option<crate::natconf::NatSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// Packets per RX burst.
    #[serde(default = "default_burst")]
    pub burst: usize,
    /// One worker per entry, pinned to that core. Ignored when `[[worker]]`
    /// sections are given. Empty: one unpinned worker.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Microseconds a worker sleeps after an empty poll round (0: busy-poll).
    #[serde(default)]
    pub idle_sleep_us: u64,
    /// "prefer" (default), "require" or "never".
    #[serde(default)]
    pub hugepages: HugepagesSetting,
    /// Second-level IPv4 FIB groups (1 KiB each): one per /24 that holds
    /// routes longer than /24, per VRF.
    #[serde(default = "default_tbl8")]
    pub ipv4_tbl8_groups: u32,
}

fn default_tbl8() -> u32 {
    4096
}

fn default_burst() -> usize {
    32
}

impl Default for DataplaneSection {
    fn default() -> Self {
        DataplaneSection {
            burst: 32,
            cores: Vec::new(),
            idle_sleep_us: 0,
            hugepages: HugepagesSetting::Prefer,
            ipv4_tbl8_groups: default_tbl8(),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HugepagesSetting {
    #[default]
    Prefer,
    Require,
    Never,
}

impl From<HugepagesSetting> for HugepagePolicy {
    fn from(h: HugepagesSetting) -> Self {
        match h {
            HugepagesSetting::Prefer => HugepagePolicy::Prefer,
            HugepagesSetting::Require => HugepagePolicy::Require,
            HugepagesSetting::Never => HugepagePolicy::Never,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: String,
    /// Driver name, e.g. "mem".
    pub driver: String,
    pub mac: Option<String>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default = "one")]
    pub rx_queues: u16,
    /// Default: one per worker.
    pub tx_queues: Option<u16>,
    #[serde(default = "default_ring")]
    pub rx_ring: u32,
    #[serde(default = "default_ring")]
    pub tx_ring: u32,
    /// Buffers per RX queue page pool (0: driver default).
    #[serde(default)]
    pub pool_buffers: u32,
    /// The router's addresses on this port, with prefix length: each adds
    /// a local route and a connected route for its subnet.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The VRF (routing table) the port belongs to.
    #[serde(default)]
    pub vrf: u16,
    /// Azure: install the platform gateway (.1 of the first IPv4 subnet,
    /// and fe80::1234:5678:9abc) as static neighbours with MAC
    /// 12:34:56:78:9a:bc, as every Azure VNet answers.
    #[serde(default)]
    pub azure_gateway: bool,
    /// The `[[acl]]` that filters packets received on this port (before
    /// the route lookup).
    pub acl_in: Option<String>,
    /// For packets no rule of `acl_in` matches (default: deny).
    pub acl_in_default: Option<DefaultAction>,
    /// The `[[acl]]` that filters packets leaving by this port (after the
    /// route lookup).
    pub acl_out: Option<String>,
    /// For packets no rule of `acl_out` matches (default: deny).
    pub acl_out_default: Option<DefaultAction>,
    /// Driver-specific settings.
    #[serde(default)]
    pub args: BTreeMap<String, toml::Value>,
}

fn default_mtu() -> u16 {
    1500
}
fn one() -> u16 {
    1
}
fn default_ring() -> u32 {
    1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    pub core: Option<usize>,
    /// RX queues to poll, as "port:queue".
    pub rx: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// "10.1.0.0/16" or "2001:db8::/32".
    pub prefix: String,
    /// The VRF (routing table) the route belongs to.
    #[serde(default)]
    pub vrf: u16,
    /// Egress port (omit with action = "drop").
    pub port: Option<String>,
    /// The next hop's MAC address on that port (a fixed rewrite, no ARP).
    pub neighbor_mac: Option<String>,
    /// The next hop's address on that port, resolved by ARP / ND (or a
    /// `[[neighbor]]` entry). Use either `via` or `neighbor_mac`.
    pub via: Option<IpAddr>,
    /// "forward" (default), "drop" (silently) or "unreachable" (answered
    /// with ICMP unreachable).
    #[serde(default)]
    pub action: RouteAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborSection {
    pub port: String,
    pub ip: IpAddr,
    pub mac: String,
}

#[derive(Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RouteAction {
    #[default]
    Forward,
    Drop,
    Unreachable,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSection {
    /// The mem wire the generator transmits into (a router port's wire).
    pub source_wire: Option<String>,
    /// The mem wire the generator receives from.
    pub sink_wire: Option<String>,
    /// Packets per second (0: as fast as possible).
    #[serde(default)]
    pub rate_pps: u64,
    #[serde(default = "default_flows")]
    pub flows: u32,
    #[serde(default = "default_frame")]
    pub frame_len: usize,
    #[serde(default = "default_src")]
    pub src_ip: Ipv4Addr,
    #[serde(default = "default_dst")]
    pub dst_ip: Ipv4Addr,
    #[serde(default = "default_dport")]
    pub dst_port: u16,
    /// CPU to pin the generator thread to.
    pub core: Option<usize>,
}

fn default_flows() -> u32 {
    256
}
fn default_frame() -> usize {
    60
}
fn default_src() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1)
}
fn default_dst() -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, 1)
}
fn default_dport() -> u16 {
    9
}

/// An access control list: rules in priority order (the first rule that
/// matches decides), bound to ports by their `acl_in` / `acl_out`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSection {
    pub name: String,
    #[serde(default)]
    pub rules: Vec<AclRuleSection>,
}

/// One ACL rule. Every field but `action` is optional; an omitted field
/// matches anything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRuleSection {
    pub action: RuleAction,
    /// "ipv4" or "ipv6". Implied by `src` / `dst`; IPv4 when none is given.
    pub family: Option<Family>,
    /// Source prefix ("10.0.0.0/8"), or an address for one host.
    pub src: Option<String>,
    /// Destination prefix or address.
    pub dst: Option<String>,
    /// Source port (TCP, UDP, SCTP): a number or a range "1024-65535".
    pub sport: Option<NumberOrName>,
    /// Destination port, as `sport`.
    pub dport: Option<NumberOrName>,
    /// "tcp", "udp", "sctp", "icmp", "icmpv6" or a protocol number.
    pub proto: Option<NumberOrName>,
    /// TCP flags that must be set ("syn") or clear ("!ack"), separated by
    /// commas: "syn,!ack" matches connection openings.
    pub tcp_flags: Option<String>,
    /// ICMP / ICMPv6 type (the rule's source-port range in the dataplane).
    pub icmp_type: Option<u8>,
    /// ICMP / ICMPv6 code (the rule's destination-port range).
    pub icmp_code: Option<u8>,
}

/// What a rule does with the packets it matches.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    Permit,
    Deny,
    /// Permit, and admit the flow's replies (a session).
    PermitStateful,
}

impl From<RuleAction> for Action {
    fn from(a: RuleAction) -> Action {
        match a {
            RuleAction::Permit => Action::Permit,
            RuleAction::Deny => Action::Deny,
            RuleAction::PermitStateful => Action::PermitStateful,
        }
    }
}

/// What a binding does with packets no rule matches.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    Permit,
    #[default]
    Deny,
}

impl From<DefaultAction> for Action {
    fn from(a: DefaultAction) -> Action {
        match a {
            DefaultAction::Permit => Action::Permit,
            DefaultAction::Deny => Action::Deny,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// A TOML number or string (ports: `53` or `"1024-65535"`; protocols: `6`
/// or `"tcp"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberOrName {
    Number(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for NumberOrName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NumberOrName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumberOrName, E> {
                Ok(NumberOrName::Number(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumberOrName, E> {
                Ok(NumberOrName::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NumberOrName, E> {
                Ok(NumberOrName::Name(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for NumberOrName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NumberOrName::Number(n) => write!(f, "{n}"),
            NumberOrName::Name(s) => write!(f, "{s:?}"),
        }
    }
}

/// The stateful session table: its size and timeouts in seconds (omitted
/// keys keep the defaults of `dataplane::acl::session::SessionConfig`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionsSection {
    /// Sessions the table holds (rounded up to a power of two; 68 bytes
    /// each, allocated at start).
    pub capacity: Option<usize>,
    /// TCP before the handshake completes.
    pub tcp_opening: Option<u32>,
    pub tcp_established: Option<u32>,
    /// TCP after a FIN from one side.
    pub tcp_half_closed: Option<u32>,
    /// TCP after FINs from both sides or an RST.
    pub tcp_closing: Option<u32>,
    /// UDP with no reply seen yet.
    pub udp_unreplied: Option<u32>,
    /// UDP after a reply.
    pub udp: Option<u32>,
    pub icmp: Option<u32>,
    /// Any other protocol.
    pub other: Option<u32>,
}

impl SessionsSection {
    fn to_config(&self) -> Result<SessionConfig, ConfigError> {
        let mut c = SessionConfig::default();
        if let Some(n) = self.capacity {
            if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&n) {
                return err(format!("sessions.capacity {n} out of range {MIN_CAPACITY}..={MAX_CAPACITY}"));
            }
            c.capacity = n;
        }
        let timeouts = [
            ("tcp_opening", self.tcp_opening, &mut c.tcp_opening),
            ("tcp_established", self.tcp_established, &mut c.tcp_established),
            ("tcp_half_closed", self.tcp_half_closed, &mut c.tcp_half_closed),
            ("tcp_closing", self.tcp_closing, &mut c.tcp_closing),
            ("udp_unreplied", self.udp_unreplied, &mut c.udp_unreplied),
            ("udp", self.udp, &mut c.udp),
            ("icmp", self.icmp, &mut c.icmp),
            ("other", self.other, &mut c.other),
        ];
        for (key, v, field) in timeouts {
            match v {
                Some(0) => return err(format!("sessions.{key}: a timeout must be at least 1 second")),
                Some(s) => *field = s,
                None => {}
            }
        }
        Ok(c)
    }
}

impl AclRuleSection {
    /// The dataplane rule. The error names the field at fault (the caller
    /// adds the ACL and the rule index).
    pub fn to_rule(&self) -> Result<Rule, String> {
        let src = self.src.as_deref().map(|s| acl_prefix("src", s)).transpose()?;
        let dst = self.dst.as_deref().map(|s| acl_prefix("dst", s)).transpose()?;
        let fam = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
        let mut family: Option<(&str, bool)> = None;
        for (what, v6) in
            [("family", self.family.map(|f| f == Family::Ipv6)), ("src", src.map(|p| p.v6)), ("dst", dst.map(|p| p.v6))]
        {
            match (family, v6) {
                (Some((first, a)), Some(b)) if a != b => {
                    return Err(format!("{first} is {} but {what} is {}: a rule is of one family", fam(a), fam(b)))
                }
                (None, Some(b)) => family = Some((what, b)),
                _ => {}
            }
        }
        let v6 = family.is_some_and(|f| f.1);
        let proto = self.proto.as_ref().map(acl_proto).transpose()?;
        match proto {
            Some(ip_proto::ICMP) if v6 => return Err("proto \"icmp\" in an IPv6 rule (use \"icmpv6\")".into()),
            Some(ip_proto::ICMPV6) if !v6 => return Err("proto \"icmpv6\" in an IPv4 rule (use \"icmp\")".into()),
            _ => {}
        }
        let is_icmp = matches!(proto, Some(ip_proto::ICMP | ip_proto::ICMPV6));
        let has_ports = matches!(proto, Some(ip_proto::TCP | ip_proto::UDP | PROTO_SCTP));
        let mut rule = Rule::any(v6, self.action.into());
        rule.src = src.unwrap_or(rule.src);
        rule.dst = dst.unwrap_or(rule.dst);
        rule.proto = proto;
        for (what, v, range) in [("sport", &self.sport, &mut rule.sport), ("dport", &self.dport, &mut rule.dport)] {
            let Some(v) = v else { continue };
            if is_icmp {
                return Err(format!("{what} does not apply to ICMP: use icmp_type and icmp_code"));
            }
            if !has_ports {
                return Err(format!("{what} needs proto = \"tcp\", \"udp\" or \"sctp\""));
            }
            *range = port_range(what, v)?;
        }
        for (what, v, range) in
            [("icmp_type", self.icmp_type, &mut rule.sport), ("icmp_code", self.icmp_code, &mut rule.dport)]
        {
            let Some(v) = v else { continue };
            if !is_icmp {
                return Err(format!("{what} needs proto = \"icmp\" or \"icmpv6\""));
            }
            *range = Range::one(v as u16);
        }
        if let Some(f) = &self.tcp_flags {
            if proto != Some(ip_proto::TCP) {
                return Err("tcp_flags needs proto = \"tcp\"".into());
            }
            (rule.tcp_flags, rule.tcp_mask) = tcp_flags(f)?;
        }
        Ok(rule)
    }
}

/// SCTP (`dataplane::wire::ip_proto` has no constant for it; the ACL
/// stage reads its ports like TCP's and UDP's).
const PROTO_SCTP: u8 = 132;

/// A prefix, or an address standing for its host prefix.
fn acl_prefix(what: &str, s: &str) -> Result<Prefix, String> {
    let net: IpNet = match s.parse() {
        Ok(n) => n,
        Err(_) => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{what} {s:?} is not a prefix like 10.0.0.0/8 or an address"))?,
    };
    if net.trunc() != net {
        return Err(format!("{what} {s:?}: host bits are set (did you mean {}?)", net.trunc()));
    }
    Ok(Prefix::from(net))
}

fn acl_proto(p: &NumberOrName) -> Result<u8, String> {
    let n = match p {
        NumberOrName::Number(n) => *n,
        NumberOrName::Name(s) => match s.to_ascii_lowercase().as_str() {
            "tcp" => ip_proto::TCP as i64,
            "udp" => ip_proto::UDP as i64,
            "sctp" => PROTO_SCTP as i64,
            "icmp" => ip_proto::ICMP as i64,
            "icmpv6" | "ipv6-icmp" => ip_proto::ICMPV6 as i64,
            other => other.parse::<i64>().map_err(|_| {
                format!("proto {s:?}: use \"tcp\", \"udp\", \"sctp\", \"icmp\", \"icmpv6\" or a protocol number")
            })?,
        },
    };
    u8::try_from(n).map_err(|_| format!("proto {p} out of range 0..=255"))
}

/// A port (`53`, `"53"`) or an inclusive range (`"1024-65535"`).
fn port_range(what: &str, v: &NumberOrName) -> Result<Range, String> {
    match v {
        NumberOrName::Number(n) => {
            u16::try_from(*n).map(Range::one).map_err(|_| format!("{what} {n} out of range 0..=65535"))
        }
        NumberOrName::Name(s) => {
            let num = |t: &str| t.trim().parse::<u16>().ok();
            let (lo, hi) = match s.split_once('-') {
                Some((a, b)) => (num(a), num(b)),
                None => (num(s), num(s)),
            };
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo <= hi => Ok(Range { lo, hi }),
                (Some(_), Some(_)) => Err(format!("{what} {s:?}: the low end is above the high end")),
                _ => Err(format!("{what} {s:?} is not a port (0-65535) or a range like \"1024-65535\"")),
            }
        }
    }
}

/// "syn,!ack" → (value, mask).
fn tcp_flags(s: &str) -> Result<(u8, u8), String> {
    const NAMES: [(&str, u16); 8] = [
        ("fin", tcpf::FIN),
        ("syn", tcpf::SYN),
        ("rst", tcpf::RST),
        ("psh", tcpf::PSH),
        ("ack", tcpf::ACK),
        ("urg", tcpf::URG),
        ("ece", tcpf::ECE),
        ("cwr", tcpf::CWR),
    ];
    if s.trim().is_empty() {
        return Err("tcp_flags is empty (omit it to match any flags)".into());
    }
    let (mut value, mut mask) = (0u8, 0u8);
    for part in s.split(',') {
        let part = part.trim();
        let (set, name) = match part.strip_prefix('!') {
            Some(n) => (false, n.trim()),
            None => (true, part),
        };
        let Some(&(_, bit)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            return Err(format!(
                "tcp_flags {s:?}: unknown flag {name:?} (fin, syn, rst, psh, ack, urg, ece, cwr; \"!\" for clear)"
            ));
        };
        // The eight flags of the flags byte (NS, bit 8, is not matched).
        let bit = bit as u8;
        if mask & bit != 0 {
            return Err(format!("tcp_flags {s:?}: {name} given twice"));
        }
        mask |= bit;
        if set {
            value |= bit;
        }
    }
    Ok((value, mask))
}

/// A configuration error, with the context of where it was found.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(s: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(s.into()))
}

fn parse_mac(what: &str, s: &str) -> Result<MacAddr, ConfigError> {
    s.parse().map_err(|e| ConfigError(format!("{what}: {e}")))
}

impl Config {
    /// Reads and parses a config file (not yet validated: see `to_spec`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Validates the config and turns it into what the dataplane runs.
    pub fn to_spec(&self) -> Result<RuntimeSpec, ConfigError> {
        let d = &self.dataplane;
        if d.burst == 0 || d.burst > ports::MAX_BURST {
            return err(format!("dataplane.burst {} out of range 1..={}", d.burst, ports::MAX_BURST));
        }
        if self.ports.is_empty() {
            return err("no [[port]] sections: the router needs at least one port");
        }
        let nworkers = if self.workers.is_empty() { d.cores.len().max(1) } else { self.workers.len() };
        let mut ports = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let ctx = format!("port {:?}", p.name);
            if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return err(format!("{ctx}: names may use letters, digits, '-', '_' and '.'"));
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return err(format!("{ctx}: defined twice"));
            }
            let mac = p.mac.as_deref().map(|m| parse_mac(&format!("{ctx}: mac"), m)).transpose()?;
            let mut addrs = Vec::new();
            for a in &p.addresses {
                let net: IpNet = a
                    .parse()
                    .map_err(|_| ConfigError(format!("{ctx}: address {a:?} is not an address/prefix-length")))?;
                addrs.push((net.addr(), net.prefix_len()));
            }
            let mut args = BTreeMap::new();
            for (k, v) in &p.args {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => return err(format!("{ctx}: arg {k} must be a string, number or bool, got {other}")),
                };
                args.insert(k.clone(), s);
            }
            ports.push(PortSpec {
                config: PortConfig {
                    id: PortId(i as u16),
                    name: p.name.clone(),
                    driver: p.driver.clone(),
                    rx_queues: p.rx_queues,
                    tx_queues: p.tx_queues.unwrap_or(nworkers as u16),
                    rx_ring: p.rx_ring,
                    tx_ring: p.tx_ring,
                    mtu: p.mtu,
                    mac,
                    pool_buffers: p.pool_buffers,
                    hugepages: d.hugepages.into(),
                    args,
                },
                addrs,
                vrf: p.vrf,
                azure_gateway: p.azure_gateway,
            });
        }
        let workers = if self.workers.is_empty() {
            let cores: Vec<Option<usize>> =
                if d.cores.is_empty() { vec![None] } else { d.cores.iter().map(|&c| Some(c)).collect() };
            auto_plan(&ports, &cores)
        } else {
            let mut plans = Vec::new();
            for (w, ws) in self.workers.iter().enumerate() {
                let mut rx = Vec::new();
                for r in &ws.rx {
                    let (pn, q) =
                        r.rsplit_once(':')
                            .and_then(|(p, q)| Some((p.to_string(), q.parse::<u16>().ok()?)))
                            .ok_or_else(|| ConfigError(format!("worker {w}: rx entry {r:?} is not \"port:queue\"")))?;
                    rx.push((pn, q));
                }
                plans.push(WorkerPlan { core: ws.core, rx });
            }
            plans
        };
        let mut routes = Vec::new();
        for r in &self.routes {
            let ctx = format!("route {:?}", r.prefix);
            let net: IpNet =
                r.prefix.parse().map_err(|_| ConfigError(format!("{ctx}: not a prefix like 10.0.0.0/8")))?;
            if net.trunc() != net {
                return err(format!("{ctx}: host bits are set (did you mean {}?)", net.trunc()));
            }
            let target = match r.action {
                RouteAction::Drop | RouteAction::Unreachable => {
                    if r.port.is_some() || r.neighbor_mac.is_some() || r.via.is_some() {
                        return err(format!("{ctx}: a drop or unreachable route takes no port, via or neighbor_mac"));
                    }
                    if r.action == RouteAction::Drop {
                        RouteTarget::Drop
                    } else {
                        RouteTarget::Unreachable
                    }
                }
                RouteAction::Forward => {
                    let port = r.port.clone().ok_or_else(|| ConfigError(format!("{ctx}: needs a port")))?;
                    if !self.ports.iter().any(|p| p.name == port) {
                        return err(format!("{ctx}: unknown port {port:?}"));
                    }
                    match (r.via, r.neighbor_mac.as_deref()) {
                        (Some(_), Some(_)) => return err(format!("{ctx}: give via or neighbor_mac, not both")),
                        (Some(ip), None) => {
                            if net.addr().is_ipv6() && ip.is_ipv4() {
                                return err(format!("{ctx}: an IPv6 route cannot go via the IPv4 address {ip}"));
                            }
                            RouteTarget::Gateway { port, ip }
                        }
                        (None, Some(mac)) => {
                            RouteTarget::Forward { port, mac: parse_mac(&format!("{ctx}: neighbor_mac"), mac)? }
                        }
                        (None, None) => return err(format!("{ctx}: needs via (a gateway address) or neighbor_mac")),
                    }
                }
            };
            routes.push(RouteSpec { vrf: r.vrf, addr: net.addr(), len: net.prefix_len(), target });
        }
        let generator = self.generator.as_ref().map(|g| self.generator_spec(g, &ports)).transpose()?;
        let nat = self.nat.as_ref().map(|n| n.to_config()).transpose()?.unwrap_or_default();
        let nat_ports: Vec<dataplane::nat::control::NatPort> = ports
            .iter()
            .map(|p| dataplane::nat::control::NatPort {
                name: p.config.name.clone(),
                addrs: p.addrs.iter().map(|a| a.0).collect(),
            })
            .collect();
        dataplane::nat::control::validate(&nat_ports, workers.len(), &nat)
            .map_err(|e| ConfigError(format!("nat: {e}")))?;
        Ok(RuntimeSpec {
            ports,
            workers,
            routes,
            burst: d.burst,
            idle: if d.idle_sleep_us == 0 {
                IdlePolicy::Poll
            } else {
                IdlePolicy::Sleep(Duration::from_micros(d.idle_sleep_us))
            },
            generator,
            l3: L3Config {
                fib4: Fib4Config { tbl8_groups: d.ipv4_tbl8_groups, hugepages: d.hugepages.into() },
                ..Default::default()
            },
            neighbors: self
                .neighbors
                .iter()
                .map(|n| {
                    let ctx = format!("neighbor {} on {:?}", n.ip, n.port);
                    if !self.ports.iter().any(|p| p.name == n.port) {
                        return err(format!("{ctx}: unknown port"));
                    }
                    Ok(NeighborSpec { port: n.port.clone(), ip: n.ip, mac: parse_mac(&ctx, &n.mac)? })
                })
                .collect::<Result<_, _>>()?,
            neigh: Default::default(),
            acl: self.acl_spec()?,
            nat,
        })
    }

    /// The ACLs, their bindings (from the ports' `acl_in` / `acl_out`) and
    /// the session table.
    fn acl_spec(&self) -> Result<AclConfig, ConfigError> {
        let mut acls = Vec::new();
        for (i, a) in self.acls.iter().enumerate() {
            let ctx = format!("acl {:?}", a.name);
            if a.name.is_empty() || !a.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return err(format!("{ctx}: names may use letters, digits, '-', '_' and '.'"));
            }
            if self.acls[..i].iter().any(|b| b.name == a.name) {
                return err(format!("{ctx}: defined twice"));
            }
            let rules = a
                .rules
                .iter()
                .enumerate()
                .map(|(n, r)| r.to_rule().map_err(|e| ConfigError(format!("{ctx} rule {n}: {e}"))))
                .collect::<Result<_, _>>()?;
            acls.push(AclSpec { name: a.name.clone(), rules });
        }
        let mut bindings = Vec::new();
        for p in &self.ports {
            let dirs = [
                (Direction::Ingress, "acl_in", &p.acl_in, p.acl_in_default),
                (Direction::Egress, "acl_out", &p.acl_out, p.acl_out_default),
            ];
            for (dir, key, acl, default) in dirs {
                match acl {
                    Some(name) => {
                        if !self.acls.iter().any(|a| &a.name == name) {
                            return err(format!("port {:?}: {key}: no [[acl]] named {name:?}", p.name));
                        }
                        bindings.push(AclBindSpec {
                            port: p.name.clone(),
                            dir,
                            acl: name.clone(),
                            default: default.unwrap_or_default().into(),
                        });
                    }
                    None if default.is_some() => {
                        return err(format!("port {:?}: {key}_default is set but {key} is not", p.name));
                    }
                    None => {}
                }
            }
        }
        let sessions = self.sessions.as_ref().map(SessionsSection::to_config).transpose()?.unwrap_or_default();
        Ok(AclConfig { acls, bindings, sessions })
    }

    fn generator_spec(&self, g: &GeneratorSection, ports: &[PortSpec]) -> Result<GenSpec, ConfigError> {
        let on_wire = |w: &str| {
            ports.iter().find(|p| {
                matches!(p.config.driver.as_str(), "mem" | "mana")
                    && p.config.args.get("wire").map(String::as_str) == Some(w)
            })
        };
        let end = |name: &str, wire: &str| -> Result<PortConfig, ConfigError> {
            let Some(rp) = on_wire(wire) else {
                return err(format!("generator: no mem or mana port of the router is on wire {wire:?}"));
            };
            // The generator's end uses the same driver as the router's.
            let mut args = BTreeMap::new();
            args.insert("wire".to_string(), wire.to_string());
            if rp.config.driver == "mem" {
                args.insert("max_mtu".to_string(), rp.config.mtu.max(1500).to_string());
            }
            Ok(PortConfig {
                id: PortId(u16::MAX),
                name: name.into(),
                driver: rp.config.driver.clone(),
                rx_queues: 1,
                tx_queues: 1,
                rx_ring: 1024,
                tx_ring: 1024,
                mtu: rp.config.mtu,
                mac: Some(MacAddr([0x02, 0x47, 0x45, 0x4e, 0, if name.ends_with("src") { 1 } else { 2 }])),
                pool_buffers: 4096,
                hugepages: rp.config.hugepages,
                args,
            })
        };
        if g.source_wire.is_none() && g.sink_wire.is_none() {
            return err("generator: give a source_wire, a sink_wire or both");
        }
        let source = g.source_wire.as_deref().map(|w| end("gen-src", w)).transpose()?;
        let sink = g.sink_wire.as_deref().map(|w| end("gen-sink", w)).transpose()?;
        let target_port = g.source_wire.as_deref().and_then(on_wire).map(|p| p.config.name.clone());
        let config = GenConfig {
            flows: g.flows,
            frame_len: g.frame_len,
            rate_pps: g.rate_pps,
            src_ip: g.src_ip,
            dst_ip: g.dst_ip,
            dst_port: g.dst_port,
            ..Default::default()
        };
        config.validate().map_err(ConfigError)?;
        if IpAddr::V4(g.dst_ip).is_unspecified() {
            return err("generator: dst_ip must be set");
        }
        Ok(GenSpec { source, sink, config, target_port, core: g.core })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: &str = r#"
[[port]]
name = "p0"
driver = "mem"
acl_in = "a"
[[port]]
name = "p1"
driver = "mem"
acl_out = "a"
acl_out_default = "permit"
"#;

    fn acl(rules: &str) -> AclConfig {
        let text = format!("{PORTS}[[acl]]\nname = \"a\"\nrules = [\n{rules}\n]\n");
        Config::parse(&text).and_then(|c| c.to_spec()).expect("valid").acl
    }

    fn rule(r: &str) -> Rule {
        let c = acl(r);
        assert_eq!(c.acls[0].rules.len(), 1);
        c.acls[0].rules[0]
    }

    fn v4(a: [u8; 4], len: u8) -> Prefix {
        Prefix { addr: u32::from_be_bytes(a) as u128, len, v6: false }
    }

    #[test]
    fn omitted_fields_match_anything_of_ipv4() {
        assert_eq!(rule(r#"{ action = "deny" }"#), Rule::any(false, Action::Deny));
        assert_eq!(rule(r#"{ action = "permit", family = "ipv6" }"#), Rule::any(true, Action::Permit));
    }

    #[test]
    fn prefixes_ports_and_protocols() {
        let r = rule(
            r#"{ action = "permit-stateful", src = "10.0.0.0/8", dst = "10.1.2.3", proto = "udp", sport = "1024-65535", dport = "53" }"#,
        );
        assert_eq!(r.action, Action::PermitStateful);
        assert_eq!((r.src, r.dst), (v4([10, 0, 0, 0], 8), v4([10, 1, 2, 3], 32)));
        assert_eq!(r.proto, Some(17));
        assert_eq!((r.sport, r.dport), (Range { lo: 1024, hi: 65535 }, Range::one(53)));
        assert_eq!(rule(r#"{ action = "deny", proto = 132, dport = 9 }"#).dport, Range::one(9));
        assert_eq!(rule(r#"{ action = "deny", proto = "47" }"#).proto, Some(47));
        let r = rule(r#"{ action = "deny", dst = "2001:db8::/32", proto = "icmpv6", icmp_type = 128 }"#);
        assert!(r.src.v6 && r.dst.v6 && r.dst.len == 32);
        assert_eq!((r.proto, r.sport, r.dport), (Some(58), Range::one(128), Range::ANY));
    }

    #[test]
    fn icmp_type_and_code_are_the_port_ranges() {
        let r = rule(r#"{ action = "permit", proto = "icmp", icmp_type = 3, icmp_code = 4 }"#);
        assert_eq!((r.proto, r.sport, r.dport), (Some(1), Range::one(3), Range::one(4)));
        let r = rule(r#"{ action = "permit", proto = "icmp", icmp_code = 0 }"#);
        assert_eq!((r.sport, r.dport), (Range::ANY, Range::one(0)));
    }

    #[test]
    fn tcp_flags_set_and_clear() {
        let r = rule(r#"{ action = "deny", proto = "tcp", tcp_flags = "syn,!ack" }"#);
        assert_eq!((r.tcp_flags, r.tcp_mask), (0x02, 0x12));
        let r = rule(r#"{ action = "deny", proto = "tcp", tcp_flags = " RST " }"#);
        assert_eq!((r.tcp_flags, r.tcp_mask), (0x04, 0x04));
        let r = rule(r#"{ action = "deny", proto = "tcp", tcp_flags = "!fin, !syn, cwr" }"#);
        assert_eq!((r.tcp_flags, r.tcp_mask), (0x80, 0x83));
    }

    #[test]
    fn bindings_default_to_deny() {
        let c = acl(r#"{ action = "permit" }"#);
        assert_eq!(
            c.bindings,
            vec![
                AclBindSpec { port: "p0".into(), dir: Direction::Ingress, acl: "a".into(), default: Action::Deny },
                AclBindSpec { port: "p1".into(), dir: Direction::Egress, acl: "a".into(), default: Action::Permit },
            ]
        );
        assert_eq!(c.sessions, SessionConfig::default());
    }

    #[test]
    fn sessions_override_the_defaults() {
        let text =
            format!("{PORTS}[[acl]]\nname = \"a\"\n[sessions]\ncapacity = 4096\nudp = 60\ntcp_established = 3600\n");
        let c = Config::parse(&text).and_then(|c| c.to_spec()).expect("valid").acl;
        assert!(c.acls[0].rules.is_empty());
        let want = SessionConfig { capacity: 4096, udp: 60, tcp_established: 3600, ..SessionConfig::default() };
        assert_eq!(c.sessions, want);
    }

    #[test]
    fn rule_errors_name_the_field() {
        let e = |r: &str| {
            let text = format!("{PORTS}[[acl]]\nname = \"a\"\nrules = [ {{ action = \"deny\" }}, {r} ]\n");
            let res = Config::parse(&text).and_then(|c| c.to_spec());
            res.err().map(|e| e.0).unwrap_or_else(|| format!("<accepted {r}>"))
        };
        assert_eq!(
            e(r#"{ action = "deny", family = "ipv4", src = "2001:db8::/32" }"#),
            "acl \"a\" rule 1: family is IPv4 but src is IPv6: a rule is of one family"
        );
        assert_eq!(
            e(r#"{ action = "deny", proto = "icmpv6" }"#),
            "acl \"a\" rule 1: proto \"icmpv6\" in an IPv4 rule (use \"icmp\")"
        );
        assert_eq!(
            e(r#"{ action = "deny", proto = "icmp", sport = 8 }"#),
            "acl \"a\" rule 1: sport does not apply to ICMP: use icmp_type and icmp_code"
        );
        assert_eq!(
            e(r#"{ action = "deny", proto = "udp", tcp_flags = "syn" }"#),
            "acl \"a\" rule 1: tcp_flags needs proto = \"tcp\""
        );
        assert_eq!(
            e(r#"{ action = "deny", icmp_code = 1 }"#),
            "acl \"a\" rule 1: icmp_code needs proto = \"icmp\" or \"icmpv6\""
        );
        assert_eq!(e(r#"{ action = "deny", proto = 256 }"#), "acl \"a\" rule 1: proto 256 out of range 0..=255");
        assert_eq!(
            e(r#"{ action = "deny", proto = "tcp", sport = "http" }"#),
            "acl \"a\" rule 1: sport \"http\" is not a port (0-65535) or a range like \"1024-65535\""
        );
        assert_eq!(
            e(r#"{ action = "deny", proto = "tcp", tcp_flags = "syn,syn" }"#),
            "acl \"a\" rule 1: tcp_flags \"syn,syn\": syn given twice"
        );
        assert_eq!(
            e(r#"{ action = "deny", proto = "tcp", tcp_flags = "" }"#),
            "acl \"a\" rule 1: tcp_flags is empty (omit it to match any flags)"
        );
        assert!(e(r#"{ action = "deny", proto = "tcp", sport = 1.5 }"#).contains("expected a number or a string"));
    }
}
