//! The TOML configuration file.
//!
//! Unknown keys are errors (a typo must not silently change behaviour), and
//! every error names the file and the offending entry. See
//! `configs/demo.toml` for an annotated example.

use dataplane::fib::v4::Fib4Config;
use dataplane::l3::L3Config;
use dataplane::runtime::{auto_plan, GenSpec, NeighborSpec, PortSpec, RouteSpec, RouteTarget, RuntimeSpec, WorkerPlan};
use dataplane::testgen::GenConfig;
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
        })
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
