//! The `[nat]` section of the config file. See `configs/nat.toml`.

use crate::config::ConfigError;
use dataplane::nat::{DnatRule, Mapping, NatConfig, PortRange, SnatRule, SnatTo};
use dataplane::wire::ip_proto;
use ipnet::Ipv4Net;
use serde::Deserialize;
use std::net::Ipv4Addr;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// Port names on the inside (private) side.
    #[serde(default)]
    pub inside: Vec<String>,
    /// Port names on the outside (public) side.
    #[serde(default)]
    pub outside: Vec<String>,
    /// "endpoint-dependent" (default) or "endpoint-independent".
    pub mapping: Option<String>,
    /// "LO-HI" external ports for TCP, UDP; identifiers for ICMP queries.
    pub tcp_ports: Option<String>,
    pub udp_ports: Option<String>,
    pub icmp_ids: Option<String>,
    /// Most sessions one inside address may hold (0 or absent: no limit).
    pub max_sessions_per_host: Option<u32>,
    /// Prefixes never translated, from or to. Replaces the default list
    /// (Azure's 168.63.129.16/32 and 169.254.169.254/32).
    pub exempt: Option<Vec<String>>,
    /// Sessions the table holds, allocated at start (split evenly between
    /// the workers).
    pub capacity: Option<usize>,
    pub timeouts: Option<NatTimeouts>,
    #[serde(default)]
    pub snat: Vec<SnatSection>,
    #[serde(default)]
    pub dnat: Vec<DnatSection>,
}

/// Seconds.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NatTimeouts {
    pub tcp_established: Option<u32>,
    /// TCP opening (before both sides acknowledged), and after a FIN or RST.
    pub tcp_transitory: Option<u32>,
    pub udp: Option<u32>,
    pub icmp: Option<u32>,
    /// How long later fragments of a datagram may follow its first.
    pub fragment: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnatSection {
    /// Inside source prefix this rule translates.
    pub src: String,
    /// Only packets leaving by this outside port (default: any outside port).
    pub out_port: Option<String>,
    /// "interface": the outside port's first IPv4 address (masquerade).
    pub to: Option<String>,
    /// Or a pool: addresses or prefixes ("198.51.100.0/30" is 4 addresses).
    pub pool: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnatSection {
    /// The outside address.
    pub external: Ipv4Addr,
    /// "tcp" or "udp" with `port`; both absent: a 1:1 mapping of the address.
    pub proto: Option<String>,
    pub port: Option<u16>,
    /// "ADDR:PORT" (port forwarding) or "ADDR" (keep the port; 1:1).
    pub backends: Vec<String>,
}

fn err<T>(s: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(s.into()))
}

fn range(what: &str, s: &str) -> Result<PortRange, ConfigError> {
    let bad = || ConfigError(format!("nat.{what}: {s:?} is not a range LO-HI of numbers 1..65535"));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = a.trim().parse().map_err(|_| bad())?;
    let hi: u16 = b.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok(PortRange { lo, hi })
}

fn net(what: &str, s: &str) -> Result<Ipv4Net, ConfigError> {
    if let Ok(n) = s.parse::<Ipv4Net>() {
        return Ok(n);
    }
    match s.parse::<Ipv4Addr>() {
        Ok(a) => Ok(Ipv4Net::from(a)),
        Err(_) => err(format!("{what}: {s:?} is not an IPv4 address or prefix")),
    }
}

impl NatSection {
    pub fn to_config(&self) -> Result<NatConfig, ConfigError> {
        let mut c = NatConfig { inside: self.inside.clone(), outside: self.outside.clone(), ..NatConfig::default() };
        c.mapping = match self.mapping.as_deref() {
            None | Some("endpoint-dependent") => Mapping::EndpointDependent,
            Some("endpoint-independent") => Mapping::EndpointIndependent,
            Some(m) => return err(format!("nat.mapping: {m:?} (endpoint-dependent or endpoint-independent)")),
        };
        if let Some(s) = &self.tcp_ports {
            c.tcp_ports = range("tcp_ports", s)?;
        }
        if let Some(s) = &self.udp_ports {
            c.udp_ports = range("udp_ports", s)?;
        }
        if let Some(s) = &self.icmp_ids {
            c.icmp_ids = range("icmp_ids", s)?;
        }
        c.max_sessions_per_host = self.max_sessions_per_host.unwrap_or(0);
        if let Some(e) = &self.exempt {
            c.exempt = e.iter().map(|s| net("nat.exempt", s)).collect::<Result<_, _>>()?;
        }
        if let Some(n) = self.capacity {
            if !(1..=(1 << 26)).contains(&n) {
                return err(format!("nat.capacity {n} out of range 1..={}", 1u32 << 26));
            }
            c.table.capacity = n;
        }
        if let Some(t) = &self.timeouts {
            let to = &mut c.table.timeouts;
            let fields = [
                ("tcp_established", t.tcp_established, &mut to.tcp_established),
                ("tcp_transitory", t.tcp_transitory, &mut to.tcp_transitory),
                ("udp", t.udp, &mut to.udp),
                ("icmp", t.icmp, &mut to.icmp),
                ("fragment", t.fragment, &mut to.fragment),
            ];
            for (key, v, field) in fields {
                match v {
                    Some(0) => return err(format!("nat.timeouts.{key}: a timeout must be at least 1 second")),
                    Some(s) => *field = s,
                    None => {}
                }
            }
            to.mapping_tcp = to.tcp_established;
            to.mapping_udp = to.udp;
        }
        for (i, r) in self.snat.iter().enumerate() {
            let what = format!("nat.snat[{i}]");
            let src = net(&format!("{what}.src"), &r.src)?;
            let to = match (r.to.as_deref(), &r.pool) {
                (Some("interface"), None) => SnatTo::Interface,
                (None, Some(p)) => {
                    let mut addrs = Vec::new();
                    for s in p {
                        let n = net(&format!("{what}.pool"), s)?;
                        if n.prefix_len() < 16 {
                            return err(format!("{what}.pool: {s} is larger than a /16"));
                        }
                        let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                        addrs.extend((lo..=hi).map(Ipv4Addr::from));
                    }
                    addrs.sort_unstable();
                    addrs.dedup();
                    SnatTo::Pool(addrs)
                }
                (Some(t), None) => return err(format!("{what}.to: {t:?} (\"interface\", or give a pool)")),
                (Some(_), Some(_)) => return err(format!("{what}: `to` and `pool` are exclusive")),
                (None, None) => return err(format!("{what}: needs to = \"interface\" or a pool")),
            };
            c.snat.push(SnatRule { src, out_port: r.out_port.clone(), to });
        }
        for (i, r) in self.dnat.iter().enumerate() {
            let what = format!("nat.dnat[{i}]");
            let proto = match r.proto.as_deref() {
                None => None,
                Some("tcp") => Some(ip_proto::TCP),
                Some("udp") => Some(ip_proto::UDP),
                Some(p) => return err(format!("{what}.proto: {p:?} (tcp or udp)")),
            };
            let mut backends = Vec::new();
            for b in &r.backends {
                let (a, p) = match b.rsplit_once(':') {
                    Some((a, p)) => {
                        let p: u16 = p
                            .parse()
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| ConfigError(format!("{what}.backends: {b:?}: bad port")))?;
                        (a, Some(p))
                    }
                    None => (b.as_str(), None),
                };
                let a: Ipv4Addr =
                    a.parse().map_err(|_| ConfigError(format!("{what}.backends: {b:?} is not ADDR or ADDR:PORT")))?;
                backends.push((a, p));
            }
            c.dnat.push(DnatRule { external: r.external, proto, port: r.port, backends });
        }
        Ok(c)
    }
}
