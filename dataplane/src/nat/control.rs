//! The control side of NAT: checks a [`NatConfig`], owns the session table
//! and the counters (both outlive configuration changes), and compiles the
//! [`NatView`] workers read.

use super::stage::{DnatC, NatCounters, NatView, SnatAddr, SnatC};
use super::table::{NatTable, NatTableStats};
use super::{NatConfig, Role, SnatTo};
use crate::wire::ip_proto;
use crossbeam_utils::CachePadded;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// A NAT configuration that cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatError(pub String);

impl fmt::Display for NatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NatError {}

fn err<T>(s: impl Into<String>) -> Result<T, NatError> {
    Err(NatError(s.into()))
}

/// A port as NAT needs to know it.
#[derive(Clone, Debug)]
pub struct NatPort {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

pub struct NatControl {
    ports: Vec<NatPort>,
    cfg: NatConfig,
    table: Option<Arc<NatTable>>,
    counters: Arc<[CachePadded<NatCounters>]>,
    workers: usize,
}

impl NatControl {
    /// Checks `cfg` against the ports; creates the session table (of
    /// `cfg.table.capacity` sessions, shared by `workers` workers) if NAT
    /// is enabled.
    pub fn new(ports: &[NatPort], workers: usize, cfg: &NatConfig) -> Result<NatControl, NatError> {
        let workers = workers.max(1);
        let mut c = NatControl {
            ports: ports.to_vec(),
            cfg: NatConfig::default(),
            table: None,
            counters: (0..workers).map(|_| CachePadded::new(NatCounters::default())).collect(),
            workers,
        };
        c.set(cfg.clone())?;
        Ok(c)
    }

    /// Replaces the rules. The session table is kept (its capacity and
    /// timeouts are fixed at start: a different `table` is refused), so
    /// established flows keep their translations.
    pub fn set(&mut self, cfg: NatConfig) -> Result<(), NatError> {
        validate(&self.ports, self.workers, &cfg)?;
        if let Some(t) = &self.table {
            if t.config().capacity != cfg.table.capacity.max(self.workers).div_ceil(self.workers) * self.workers
                || t.config().timeouts != cfg.table.timeouts
            {
                return err("the session table's capacity and timeouts cannot change while the router runs");
            }
        } else if cfg.enabled() {
            let mut tc = cfg.table;
            tc.workers = self.workers;
            self.table = Some(Arc::new(NatTable::new(tc)));
        }
        if let Some(t) = &self.table {
            t.set_host_limit(cfg.max_sessions_per_host);
        }
        self.cfg = cfg;
        Ok(())
    }

    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    pub fn table(&self) -> Option<&Arc<NatTable>> {
        self.table.as_ref()
    }

    /// Counters by name, summed over workers.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<(&'static str, u64)> = Vec::new();
        for c in self.counters.iter() {
            for (i, (n, x)) in c.by_name().into_iter().enumerate() {
                match v.get_mut(i) {
                    Some(s) => s.1 += x,
                    None => v.push((n, x)),
                }
            }
        }
        v
    }

    /// Session table occupancy (`now`: seconds of the workers' clock).
    pub fn stats(&self, now: u32) -> Option<NatTableStats> {
        self.table.as_ref().map(|t| t.stats(now))
    }

    fn port(&self, name: &str) -> Result<usize, NatError> {
        port_index(&self.ports, name)
    }

    /// The compiled rules for the workers; `None` while NAT is off.
    pub fn view(&self) -> Option<Arc<NatView>> {
        let table = self.table.clone()?;
        if !self.cfg.enabled() {
            return None;
        }
        let cfg = &self.cfg;
        let mut role = vec![Role::None; self.ports.len()];
        for (i, p) in self.ports.iter().enumerate() {
            if cfg.inside.contains(&p.name) {
                role[i] = Role::Inside;
            } else if cfg.outside.contains(&p.name) {
                role[i] = Role::Outside;
            }
        }
        let iface_addr: Vec<Option<u32>> = self
            .ports
            .iter()
            .map(|p| {
                p.addrs.iter().find_map(|a| match a {
                    IpAddr::V4(a) => Some(u32::from(*a)),
                    _ => None,
                })
            })
            .collect();
        let mut external: HashSet<u32> = HashSet::new();
        for (i, r) in role.iter().enumerate() {
            if *r == Role::Outside {
                external.extend(self.ports[i].addrs.iter().filter_map(|a| match a {
                    IpAddr::V4(a) => Some(u32::from(*a)),
                    _ => None,
                }));
            }
        }
        let snat = cfg
            .snat
            .iter()
            .map(|r| {
                let mask = u32::from(r.src.netmask());
                let to = match &r.to {
                    SnatTo::Interface => SnatAddr::Interface,
                    SnatTo::Pool(p) => {
                        external.extend(p.iter().map(|a| u32::from(*a)));
                        SnatAddr::Pool(p.iter().map(|a| u32::from(*a)).collect())
                    }
                };
                SnatC {
                    net: u32::from(r.src.network()) & mask,
                    mask,
                    out_port: r.out_port.as_ref().and_then(|p| self.port(p).ok()).map(|p| p as u16),
                    to,
                }
            })
            .collect();
        let mut dnat = Vec::new();
        let mut dnat_port = HashMap::new();
        let mut dnat_addr = HashMap::new();
        let mut static_snat = HashMap::new();
        for r in &cfg.dnat {
            let ext = u32::from(r.external);
            external.insert(ext);
            let i = dnat.len();
            dnat.push(DnatC { backends: r.backends.iter().map(|(a, p)| (u32::from(*a), p.unwrap_or(0))).collect() });
            match (r.proto, r.port) {
                (Some(proto), Some(port)) => {
                    dnat_port.insert((ext, proto, port), i);
                }
                _ => {
                    dnat_addr.insert(ext, i);
                    if let [(b, _)] = r.backends.as_slice() {
                        static_snat.insert(u32::from(*b), ext);
                    }
                }
            }
        }
        let exempt = cfg
            .exempt
            .iter()
            .map(|n| {
                let m = u32::from(n.netmask());
                (u32::from(n.network()) & m, m)
            })
            .collect();
        Some(Arc::new(NatView {
            role,
            iface_addr,
            snat,
            dnat,
            dnat_port,
            dnat_addr,
            static_snat,
            external,
            exempt,
            mapping: cfg.mapping,
            tcp_ports: cfg.tcp_ports,
            udp_ports: cfg.udp_ports,
            icmp_ids: cfg.icmp_ids,
            table,
            counters: self.counters.clone(),
        }))
    }
}

fn port_index(ports: &[NatPort], name: &str) -> Result<usize, NatError> {
    ports.iter().position(|p| p.name == name).ok_or_else(|| NatError(format!("no port named {name:?}")))
}

/// Checks `cfg` against the ports and the worker count without
/// allocating anything (what [`NatControl::new`] and [`NatControl::set`]
/// refuse).
pub fn validate(ports: &[NatPort], workers: usize, cfg: &NatConfig) -> Result<(), NatError> {
    let workers = workers.max(1);
    for n in cfg.inside.iter().chain(&cfg.outside) {
        port_index(ports, n)?;
    }
    if let Some(n) = cfg.inside.iter().find(|n| cfg.outside.contains(n)) {
        return err(format!("port {n:?} is both inside and outside"));
    }
    for (what, r) in [("tcp_ports", cfg.tcp_ports), ("udp_ports", cfg.udp_ports), ("icmp_ids", cfg.icmp_ids)] {
        if r.is_empty() {
            return err(format!("{what}: empty range {}-{}", r.lo, r.hi));
        }
        if (r.len() as usize) < workers {
            return err(format!("{what}: {} ports cannot be shared by {} workers", r.len(), workers));
        }
    }
    if cfg.enabled() && cfg.table.capacity < workers {
        return err(format!("session capacity {} is below the worker count {}", cfg.table.capacity, workers));
    }
    for (i, r) in cfg.snat.iter().enumerate() {
        if let Some(p) = &r.out_port {
            let pi = port_index(ports, p).map_err(|e| NatError(format!("snat rule {i}: {e}")))?;
            if !cfg.outside.contains(&ports[pi].name) {
                return err(format!("snat rule {i}: port {p:?} is not an outside port"));
            }
        }
        match &r.to {
            SnatTo::Pool(p) if p.is_empty() => return err(format!("snat rule {i}: empty pool")),
            SnatTo::Interface => {
                // Every outside port this rule can apply to needs an
                // IPv4 address.
                for o in cfg.outside.iter().filter(|o| r.out_port.as_ref().is_none_or(|p| p == *o)) {
                    let pi = port_index(ports, o)?;
                    if !ports[pi].addrs.iter().any(IpAddr::is_ipv4) {
                        return err(format!("snat rule {i}: outside port {o:?} has no IPv4 address to masquerade as"));
                    }
                }
            }
            _ => {}
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in cfg.dnat.iter().enumerate() {
        if r.backends.is_empty() {
            return err(format!("dnat rule {i}: no backend"));
        }
        match (r.proto, r.port) {
            (Some(ip_proto::TCP | ip_proto::UDP), Some(_)) | (None, None) => {}
            (Some(p), Some(_)) => return err(format!("dnat rule {i}: protocol {p} has no ports (tcp or udp)")),
            (Some(_), None) => return err(format!("dnat rule {i}: a protocol needs a port")),
            (None, Some(_)) => return err(format!("dnat rule {i}: a port needs a protocol (tcp or udp)")),
        }
        if r.port.is_none() && r.backends.iter().any(|b| b.1.is_some()) {
            return err(format!("dnat rule {i}: a 1:1 mapping has no backend ports"));
        }
        if !seen.insert((r.external, r.proto, r.port)) {
            return err(format!(
                "dnat rule {i}: {}{} is mapped twice",
                r.external,
                r.port.map(|p| format!(":{p}")).unwrap_or_default()
            ));
        }
    }
    Ok(())
}
