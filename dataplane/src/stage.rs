//! Pipeline stages.
//!
//! A stage works on a whole [`Batch`]: it looks at every packet whose
//! verdict is still `Pending` and either decides (transmit, drop with a
//! reason, punt) or leaves it for the next stage. Stages never touch a port
//! and never allocate; they are composed statically in [`Pipeline`], so the
//! compiler sees straight-line code with no dynamic dispatch.

use crate::batch::{Batch, Verdict};
use crate::counters::{DropReason, PuntReason, WorkerStats};
use crate::ecmp;
use crate::fib::v4::NO_ROUTE;
use crate::l3::Adj;
use crate::neigh::{MissFilter, NeighEvent, NeighEvents, NeighId, NeighIndex, NeighLookup, NeighShared};
use crate::tables::Tables;
use crate::wire::{self, checksum, L3Kind};
use ports::{Offload, PortId, MAX_BURST};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a stage may read while it runs.
pub struct Ctx<'a> {
    pub tables: &'a Tables,
    pub stats: &'a WorkerStats,
    /// Neighbour resolution (absent: gateway and connected next hops are
    /// unresolvable and dropped as `neigh_unresolved`).
    pub neigh: Option<&'a NeighCtx<'a>>,
    /// The worker's index (per-worker counter slots).
    pub worker: usize,
    /// Time of the burst in seconds (session timeouts).
    pub now_secs: u64,
}

/// The neighbour state a burst sees.
pub struct NeighCtx<'a> {
    pub shared: &'a NeighShared,
    pub index: &'a NeighIndex,
    pub events: &'a NeighEvents,
    /// TSC time of the burst.
    pub now: u64,
}

/// Most solicitations one burst asks the worker for.
pub const MAX_SOLICITS: usize = 32;

/// One step of the pipeline.
pub trait Stage {
    /// Name for stats and traces.
    fn name(&self) -> &'static str;
    /// Processes every `Pending` packet of the batch.
    fn process(&mut self, batch: &mut Batch, cx: &Ctx<'_>);
}

/// Validates headers (`wire::parse_frame`), checks the destination MAC, and
/// sends packets for the router itself to the punt path.
#[derive(Default)]
pub struct ParseStage;

impl Stage for ParseStage {
    fn name(&self) -> &'static str {
        "parse"
    }

    #[inline]
    fn process(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let Batch { pkts, verdict, layers } = b;
        for ((p, v), lay) in pkts.as_slice().iter().zip(verdict.iter_mut()).zip(layers.iter_mut()) {
            if *v != Verdict::Pending {
                continue;
            }
            let ol = p.offload();
            if ol.contains(Offload::RX_IP_CSUM_BAD) {
                *v = Verdict::Drop(DropReason::Malformed(wire::WireError::Ipv4BadChecksum));
                continue;
            }
            let data = p.data();
            let l = match wire::parse_frame(data, !ol.contains(Offload::RX_IP_CSUM_GOOD)) {
                Ok(l) => l,
                Err(e) => {
                    *v = Verdict::Drop(DropReason::Malformed(e));
                    continue;
                }
            };
            *lay = l;
            *v = classify(cx.tables, p.port(), data, &l, p.vlan_tci().is_some());
        }
    }
}

#[inline(always)]
fn classify(t: &Tables, in_port: u16, data: &[u8], l: &wire::Layers, stripped_vlan: bool) -> Verdict {
    // parse_frame guarantees at least the 14-byte Ethernet header.
    let dst_mac = &data[0..6];
    let group = dst_mac[0] & 1 == 1;
    match t.port(in_port) {
        Some(pe) if group || dst_mac == pe.mac.0 => {}
        _ => return Verdict::Drop(DropReason::NotForUs),
    }
    if l.vlan_tci.is_some() || stripped_vlan {
        return Verdict::Drop(DropReason::VlanUnknown);
    }
    let o = l.l3_off as usize;
    match l.l3 {
        L3Kind::Arp => Verdict::Punt(PuntReason::Arp),
        L3Kind::Other => Verdict::Drop(DropReason::UnsupportedEthertype),
        L3Kind::Ipv4 => {
            let Some(d) = data.get(o + 16..o + 20) else { return Verdict::Drop(DropReason::NoVerdict) };
            let dst = Ipv4Addr::new(d[0], d[1], d[2], d[3]);
            // The router's own addresses are local routes: the L3 stage
            // punts them (whichever port they belong to).
            if dst.is_multicast() || dst.is_broadcast() {
                Verdict::Punt(PuntReason::Multicast)
            } else {
                Verdict::Pending
            }
        }
        L3Kind::Ipv6 => {
            let Some(d) = data.get(o + 24..o + 40) else { return Verdict::Drop(DropReason::NoVerdict) };
            let mut a = [0u8; 16];
            a.copy_from_slice(d);
            let dst = Ipv6Addr::from(a);
            if dst.is_multicast() {
                if l.l4_proto == wire::ip_proto::ICMPV6 {
                    Verdict::Punt(PuntReason::Nd)
                } else {
                    Verdict::Punt(PuntReason::Multicast)
                }
            } else if a[0] == 0xfe && a[1] & 0xc0 == 0x80 {
                // Link-local unicast is never forwarded; global addresses
                // of ours are local routes, punted by the L3 stage.
                Verdict::Punt(PuntReason::Local)
            } else {
                Verdict::Pending
            }
        }
    }
}

/// Route lookup in the input port's VRF (batched: one bulk FIB lookup per
/// VRF and address family, so the table loads of a burst overlap), ECMP
/// member choice by flow hash, TTL / hop-limit decrement with an
/// incremental checksum update (RFC 1624), MTU check and Ethernet rewrite.
pub struct L3Forward {
    /// Neighbours to solicit (slot, port), for the worker after the burst.
    pub solicits: [(u32, u16); MAX_SOLICITS],
    pub n_solicits: usize,
    miss: MissFilter,
    idx: [u16; MAX_BURST],
    vrf: [u16; MAX_BURST],
    a4: [u32; MAX_BURST],
    a6: [u128; MAX_BURST],
    out: [u32; MAX_BURST],
}

impl Default for L3Forward {
    fn default() -> Self {
        L3Forward {
            solicits: [(0, 0); MAX_SOLICITS],
            n_solicits: 0,
            miss: MissFilter::default(),
            idx: [0; MAX_BURST],
            vrf: [0; MAX_BURST],
            a4: [0; MAX_BURST],
            a6: [0; MAX_BURST],
            out: [0; MAX_BURST],
        }
    }
}

const NOT_THIS_PASS: u16 = u16::MAX;

impl Stage for L3Forward {
    fn name(&self) -> &'static str {
        "l3-forward"
    }

    #[inline]
    fn process(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let t = cx.tables;
        let n = b.len();
        self.n_solicits = 0;
        for fam in [L3Kind::Ipv4, L3Kind::Ipv6] {
            // Which packets of this family are pending, and in which VRF.
            let mut left = 0;
            for i in 0..n {
                let p = &b.pkts.as_slice()[i];
                self.vrf[i] = match (b.verdict[i], b.layers[i].l3 == fam) {
                    (Verdict::Pending, true) => match t.l3.port_vrf.get(p.port() as usize) {
                        Some(v) => {
                            left += 1;
                            *v
                        }
                        None => {
                            b.verdict[i] = Verdict::Drop(DropReason::NoRoute);
                            NOT_THIS_PASS
                        }
                    },
                    _ => NOT_THIS_PASS,
                };
            }
            // One pass per VRF present in the burst (usually one).
            while left > 0 {
                let Some(cur) = self.vrf[..n].iter().copied().find(|v| *v != NOT_THIS_PASS) else { break };
                let mut m = 0;
                for i in 0..n {
                    if self.vrf[i] != cur {
                        continue;
                    }
                    self.vrf[i] = NOT_THIS_PASS;
                    let d = b.pkts.as_slice()[i].data();
                    let o = b.layers[i].l3_off as usize;
                    match fam {
                        L3Kind::Ipv4 => match d.get(o + 16..o + 20) {
                            Some(x) => self.a4[m] = u32::from_be_bytes([x[0], x[1], x[2], x[3]]),
                            None => continue,
                        },
                        _ => match d.get(o + 24..o + 40) {
                            Some(x) => {
                                let mut a = [0u8; 16];
                                a.copy_from_slice(x);
                                self.a6[m] = u128::from_be_bytes(a);
                            }
                            None => continue,
                        },
                    }
                    self.idx[m] = i as u16;
                    m += 1;
                }
                left -= m;
                let Some(vrf) = t.l3.vrfs.get(cur as usize) else {
                    for k in 0..m {
                        b.verdict[self.idx[k] as usize] = Verdict::Drop(DropReason::NoRoute);
                    }
                    continue;
                };
                match fam {
                    L3Kind::Ipv4 => vrf.fib4.lookup_bulk(&self.a4[..m], &mut self.out[..m]),
                    _ => vrf.fib6.lookup_bulk(&self.a6[..m], &mut self.out[..m]),
                }
                for k in 0..m {
                    let i = self.idx[k] as usize;
                    let l = b.layers[i];
                    let p = &mut b.pkts.as_mut_slice()[i];
                    b.verdict[i] = self.apply(cx, p.data_mut(), &l, self.out[k]);
                }
            }
        }
    }
}

impl L3Forward {
    #[inline(always)]
    fn apply(&mut self, cx: &Ctx<'_>, data: &mut [u8], l: &wire::Layers, value: u32) -> Verdict {
        let t = cx.tables;
        if value == NO_ROUTE {
            return Verdict::Drop(DropReason::NoRoute);
        }
        let adj = match t.l3.resolve(value, |sym| ecmp::flow_hash(data, l, sym)) {
            Some(a) => *a,
            None => return Verdict::Drop(DropReason::BadNextHop),
        };
        match adj {
            Adj::Fixed { port, mac } => rewrite(t, data, l, port, &mac.0),
            Adj::Gateway { port, neigh } => match cx.neigh {
                Some(n) => self.via_neigh(t, n, data, l, port, NeighId(neigh)),
                None => Verdict::Drop(DropReason::NeighUnresolved),
            },
            Adj::Glean { port } => {
                let Some(n) = cx.neigh else { return Verdict::Drop(DropReason::NeighUnresolved) };
                let Some(dst) = dst_addr(data, l) else { return Verdict::Drop(DropReason::NoVerdict) };
                match n.index.find(port, dst) {
                    Some(id) => self.via_neigh(t, n, data, l, port, id),
                    None => {
                        if self.miss.report(port, dst, n.now, n.shared.solicit_interval()) {
                            n.events.push(NeighEvent::Miss { port, ip: dst });
                        }
                        Verdict::Drop(DropReason::NeighUnresolved)
                    }
                }
            }
            Adj::Local => Verdict::Punt(PuntReason::Local),
            Adj::Drop => Verdict::Drop(DropReason::Blackhole),
            Adj::Unreachable => Verdict::Drop(DropReason::Unreachable),
        }
    }

    #[inline]
    fn via_neigh(
        &mut self,
        t: &Tables,
        n: &NeighCtx<'_>,
        data: &mut [u8],
        l: &wire::Layers,
        port: PortId,
        id: NeighId,
    ) -> Verdict {
        match n.shared.lookup(id) {
            NeighLookup::Mac { mac, probe } => {
                if probe {
                    self.solicit(id, port);
                }
                rewrite(t, data, l, port, &mac.0)
            }
            NeighLookup::Incomplete => {
                self.solicit(id, port);
                match rewrite(t, data, l, port, &[0; 6]) {
                    Verdict::Tx(p) => Verdict::Resolve { port: p, neigh: id.0 },
                    // Too big and unresolved: rare enough to drop.
                    Verdict::Fragment(_) => Verdict::Drop(DropReason::NeighUnresolved),
                    other => other,
                }
            }
            NeighLookup::Failed => {
                // Retried by traffic: a neighbour that comes back recovers.
                self.solicit(id, port);
                Verdict::Drop(DropReason::NeighUnresolved)
            }
        }
    }

    #[inline]
    fn solicit(&mut self, id: NeighId, port: PortId) {
        if self.n_solicits < MAX_SOLICITS && !self.solicits[..self.n_solicits].contains(&(id.0, port.0)) {
            self.solicits[self.n_solicits] = (id.0, port.0);
            self.n_solicits += 1;
        }
    }
}

/// The destination address of a parsed IPv4/IPv6 frame.
#[inline]
pub(crate) fn dst_addr(d: &[u8], l: &wire::Layers) -> Option<IpAddr> {
    let o = l.l3_off as usize;
    match l.l3 {
        L3Kind::Ipv4 => {
            let x = d.get(o + 16..o + 20)?;
            Some(IpAddr::V4(Ipv4Addr::new(x[0], x[1], x[2], x[3])))
        }
        L3Kind::Ipv6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(d.get(o + 24..o + 40)?);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// MTU check, TTL / hop-limit decrement, Ethernet rewrite towards `mac`.
#[inline(always)]
pub(crate) fn rewrite(t: &Tables, data: &mut [u8], l: &wire::Layers, port: PortId, mac: &[u8; 6]) -> Verdict {
    let o = l.l3_off as usize;
    let Some(out) = t.port(port.0) else { return Verdict::Drop(DropReason::BadNextHop) };
    let mut verdict = Verdict::Tx(port);
    if l.l3_len > out.mtu {
        // IPv4 without DF is fragmented by the worker after the rewrite;
        // everything else gets ICMP too-big from the local stage.
        let df = data.get(o + 6).is_some_and(|f| f & 0x40 != 0);
        if l.l3 != L3Kind::Ipv4 || df {
            return Verdict::Drop(DropReason::MtuExceeded);
        }
        verdict = Verdict::Fragment(port);
    }
    match l.l3 {
        L3Kind::Ipv4 => {
            let Some(h) = data.get_mut(o..o + 12) else { return Verdict::Drop(DropReason::NoVerdict) };
            let ttl = h[8];
            if ttl <= 1 {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            let old_word = u16::from_be_bytes([ttl, h[9]]);
            let new_word = u16::from_be_bytes([ttl - 1, h[9]]);
            let csum = checksum::update16(u16::from_be_bytes([h[10], h[11]]), old_word, new_word);
            h[8] = ttl - 1;
            h[10..12].copy_from_slice(&csum.to_be_bytes());
        }
        _ => {
            let Some(hl) = data.get_mut(o + 7) else { return Verdict::Drop(DropReason::NoVerdict) };
            if *hl <= 1 {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            *hl -= 1;
        }
    }
    data[0..6].copy_from_slice(mac);
    data[6..12].copy_from_slice(&out.mac.0);
    verdict
}

/// Feeds ARP and neighbour discovery seen by the fast path to the
/// neighbour table (before the local stage rewrites requests into replies).
fn learn(b: &Batch, t: &Tables, events: &NeighEvents) {
    for ((p, v), l) in b.pkts.as_slice().iter().zip(b.verdict.iter()).zip(b.layers.iter()) {
        let nd = l.l3 == L3Kind::Arp || (l.l3 == L3Kind::Ipv6 && l.l4_proto == wire::ip_proto::ICMPV6);
        if nd && matches!(v, Verdict::Punt(PuntReason::Arp | PuntReason::Nd | PuntReason::Local)) {
            if let Some(pe) = t.port(p.port()) {
                crate::neigh::observe(p.data(), l, p.port(), &pe.addrs, events);
            }
        }
    }
}

/// The stages in order. Composed statically: adding a stage is a field and a
/// call here, not a per-packet virtual call.
pub struct Pipeline {
    pub parse: ParseStage,
    pub acl_in: crate::acl::stage::AclStage,
    /// Runs as `nat_in` (before the route lookup) and `nat_out` (after).
    pub nat: crate::nat::stage::NatStage,
    pub forward: L3Forward,
    pub acl_out: crate::acl::stage::AclStage,
    pub local: crate::local::LocalStage,
}

impl Default for Pipeline {
    fn default() -> Self {
        use crate::acl::stage::{AclStage, Direction};
        Pipeline {
            parse: ParseStage,
            acl_in: AclStage::new(Direction::Ingress),
            nat: crate::nat::stage::NatStage::default(),
            forward: L3Forward::default(),
            acl_out: AclStage::new(Direction::Egress),
            local: crate::local::LocalStage::default(),
        }
    }
}

impl Pipeline {
    pub fn stage_names(&self) -> [&'static str; 7] {
        [self.parse.name(), "acl_in", "nat_in", self.forward.name(), "nat_out", "acl_out", self.local.name()]
    }

    /// Runs every stage over the batch; packets no stage decided on are
    /// marked `NoVerdict` drops.
    #[inline]
    pub fn run(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        b.reset_verdicts();
        self.parse.process(b, cx);
        self.acl_in.process(b, cx);
        self.nat.process_in(b, cx);
        self.forward.process(b, cx);
        self.nat.process_out(b, cx);
        self.acl_out.process(b, cx);
        if let Some(n) = cx.neigh {
            learn(b, cx.tables, n.events);
        }
        self.local.process(b, cx);
        self.nat.process_errors(b, cx);
        let n = b.len();
        for v in &mut b.verdict[..n] {
            if *v == Verdict::Pending {
                *v = Verdict::Drop(DropReason::NoVerdict);
            }
        }
    }
}
