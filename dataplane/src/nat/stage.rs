//! NAT in the pipeline: the compiled rules workers read ([`NatView`]) and
//! the stage ([`NatStage`]) that runs twice per batch — `nat_in` before the
//! route lookup and `nat_out` after it.
//!
//! `nat_in`, for IPv4 packets received on an inside or outside port:
//! - looks the packet's tuple up in the session table (the whole burst at
//!   once); a packet of a known flow, either direction, is rewritten to
//!   its translated tuple there and then (addresses, ports, checksums), so
//!   the route lookup sees its real destination;
//! - ICMP errors are looked up by the packet they carry; one about a
//!   translated flow has the embedded packet, and the outer addresses,
//!   translated back;
//! - later fragments follow their first fragment (a fragment-follow entry
//!   keyed by addresses, protocol and IP identification);
//! - an unknown flow matching a DNAT rule gets its destination rewritten
//!   (backend chosen by flow hash); its session is created by `nat_out`,
//!   once the route is known.
//!
//! `nat_out`, for the flows `nat_in` did not know, once the L3 stage chose
//! the egress port:
//! - source translation applies to packets from an inside port leaving by
//!   an outside port whose source matches an SNAT rule, and to hairpinned
//!   packets (an inside host reaching another inside host through a DNAT
//!   address: the source becomes the DNAT address, so the reply comes back
//!   through the router);
//! - the session (both tuples) is created, with a port allocated from the
//!   worker's share of the protocol's range.
//!
//! Packets that neither match a session nor a rule pass untranslated and
//! create nothing (routing between inside networks, exempt traffic,
//! traffic to the router itself).

use super::table::{CreateError, Dir, Hit, NatTable, State};
use super::xlate::{self, Flow};
use super::{Mapping, PortRange, Role, Tuple, KIND_FLOW, KIND_MAPPING};
use crate::batch::{Batch, Verdict};
use crate::counters::DropReason;
use crate::stage::Ctx;
use crate::wire::{ip_proto, Frag, L3Kind};
use crossbeam_utils::CachePadded;
use ports::counter::Counter;
use ports::MAX_BURST;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Consecutive ports tried (each in use towards the flow's remote) before
/// a new flow is dropped as `nat_port_exhausted`.
pub const MAX_PORT_TRIES: u32 = 64;

/// Per-worker NAT counters (drops are in the worker's drop counters).
#[derive(Default)]
pub struct NatCounters {
    /// Sessions created (not counting fragment-follow entries or
    /// endpoint-independent mappings).
    pub sessions_created: Counter,
    /// Packets translated through an existing session.
    pub translated: Counter,
    /// Packets translated when their session was created.
    pub translated_new: Counter,
    /// ICMP errors whose embedded packet was translated.
    pub icmp_errors: Counter,
    /// Later fragments translated by following their first fragment.
    pub fragments: Counter,
    /// Sessions created for hairpinned flows.
    pub hairpin: Counter,
    /// Ports found in use while allocating (each try after the first).
    pub port_retries: Counter,
    /// Expired sessions freed by this worker's sweeps.
    pub expired: Counter,
}

impl NatCounters {
    pub fn by_name(&self) -> [(&'static str, u64); 8] {
        [
            ("sessions_created", self.sessions_created.get()),
            ("translated", self.translated.get()),
            ("translated_new", self.translated_new.get()),
            ("icmp_errors", self.icmp_errors.get()),
            ("fragments", self.fragments.get()),
            ("hairpin", self.hairpin.get()),
            ("port_retries", self.port_retries.get()),
            ("expired", self.expired.get()),
        ]
    }
}

/// Where a compiled SNAT rule takes its address.
#[derive(Clone, Debug)]
pub(crate) enum SnatAddr {
    Interface,
    Pool(Box<[u32]>),
}

#[derive(Clone, Debug)]
pub(crate) struct SnatC {
    pub net: u32,
    pub mask: u32,
    pub out_port: Option<u16>,
    pub to: SnatAddr,
}

#[derive(Clone, Debug)]
pub(crate) struct DnatC {
    /// (address, port; 0 keeps the packet's port)
    pub backends: Box<[(u32, u16)]>,
}

/// The NAT rules and state workers read, compiled by
/// [`super::control::NatControl`].
pub struct NatView {
    /// Indexed by port id.
    pub(crate) role: Vec<Role>,
    /// First IPv4 address of each port (masquerade), host order.
    pub(crate) iface_addr: Vec<Option<u32>>,
    pub(crate) snat: Vec<SnatC>,
    pub(crate) dnat: Vec<DnatC>,
    /// (external, proto, port) → DNAT rule index (port forwarding).
    pub(crate) dnat_port: HashMap<(u32, u8, u16), usize>,
    /// external → DNAT rule index (1:1).
    pub(crate) dnat_addr: HashMap<u32, usize>,
    /// Backend → external address of 1:1 rules (outbound static SNAT).
    pub(crate) static_snat: HashMap<u32, u32>,
    /// Every address NAT answers for on the outside.
    pub(crate) external: HashSet<u32>,
    /// (network, mask)
    pub(crate) exempt: Vec<(u32, u32)>,
    pub(crate) mapping: Mapping,
    pub(crate) tcp_ports: PortRange,
    pub(crate) udp_ports: PortRange,
    pub(crate) icmp_ids: PortRange,
    pub table: Arc<NatTable>,
    pub counters: Arc<[CachePadded<NatCounters>]>,
}

impl std::fmt::Debug for NatView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatView")
            .field("snat", &self.snat.len())
            .field("dnat", &self.dnat.len())
            .field("capacity", &self.table.capacity())
            .finish()
    }
}

/// MurmurHash3's 64-bit finaliser: every input bit reaches every output
/// bit (the low bits too, which pick backends and ports).
#[inline(always)]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    fmix(a ^ fmix(b ^ 0x9e37_79b9_7f4a_7c15))
}

#[inline(always)]
fn flow_hash(t: &Tuple) -> u64 {
    let (a, b) = t.words();
    mix(a, b)
}

impl NatView {
    #[inline(always)]
    fn role(&self, port: u16) -> Role {
        self.role.get(port as usize).copied().unwrap_or(Role::None)
    }

    #[inline]
    fn exempt(&self, a: u32) -> bool {
        self.exempt.iter().any(|&(n, m)| a & m == n)
    }

    /// The DNAT target of an unknown flow's first packet, if a rule
    /// matches: the translated tuple.
    #[inline]
    fn dnat_of(&self, t: &Tuple) -> Option<Tuple> {
        if self.dnat.is_empty() {
            return None;
        }
        let rule = match t.proto {
            ip_proto::TCP | ip_proto::UDP => self.dnat_port.get(&(t.dst, t.proto, t.dport)),
            _ => None,
        }
        .or_else(|| self.dnat_addr.get(&t.dst))?;
        let r = self.dnat.get(*rule)?;
        let n = r.backends.len() as u64;
        if n == 0 {
            return None;
        }
        let (addr, port) = r.backends[(flow_hash(t) % n) as usize];
        let mut to = *t;
        to.dst = addr;
        if port != 0 && t.proto != ip_proto::ICMP {
            to.dport = port;
        }
        Some(to)
    }

    /// The external address for a flow from `src` leaving by `out`, if an
    /// SNAT rule (or a 1:1 mapping) applies.
    #[inline]
    fn snat_addr(&self, src: u32, out: u16) -> Option<u32> {
        if let Some(e) = self.static_snat.get(&src) {
            return Some(*e);
        }
        for r in &self.snat {
            if src & r.mask != r.net || r.out_port.is_some_and(|p| p != out) {
                continue;
            }
            return match &r.to {
                SnatAddr::Interface => self.iface_addr.get(out as usize).copied().flatten(),
                SnatAddr::Pool(p) if !p.is_empty() => Some(p[(mix(src as u64, 0) % p.len() as u64) as usize]),
                SnatAddr::Pool(_) => None,
            };
        }
        None
    }

    fn range(&self, proto: u8) -> PortRange {
        match proto {
            ip_proto::TCP => self.tcp_ports,
            ip_proto::UDP => self.udp_ports,
            _ => self.icmp_ids,
        }
    }
}

/// The state a new session starts in.
#[inline]
fn initial_state(proto: u8) -> State {
    match proto {
        ip_proto::TCP => State::TcpTransitory,
        ip_proto::UDP => State::Udp,
        _ => State::Icmp,
    }
}

/// The tuple of a packet `t` once its source is `addr:port` (for ICMP
/// queries the identifier, in both port fields).
#[inline(always)]
fn with_source(t: &Tuple, addr: u32, port: u16) -> Tuple {
    let mut o = *t;
    o.src = addr;
    o.sport = port;
    if t.proto == ip_proto::ICMP {
        o.dport = port;
    }
    o
}

/// What `nat_in` left for `nat_out`, per packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Pend {
    #[default]
    None,
    /// Unknown flow from a port with a role: `nat_out` decides on SNAT.
    New,
    /// Unknown flow, destination already translated by a DNAT rule.
    Dnat,
    /// A later fragment nothing knows: dropped if it would need SNAT.
    LaterFrag,
    /// A protocol NAT cannot translate: dropped if it would need SNAT.
    Other,
}

/// What the looked-up key of a packet stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum What {
    #[default]
    Transport,
    IcmpError,
    LaterFrag,
}

/// The NAT stage's scratch space (per worker).
pub struct NatStage {
    keys: Box<[Tuple; MAX_BURST]>,
    what: Box<[What; MAX_BURST]>,
    at: Box<[u16; MAX_BURST]>,
    hits: Box<[Option<Hit>; MAX_BURST]>,
    pend: Box<[Pend; MAX_BURST]>,
    /// The packet's tuple as received (`New`, `Dnat`), or its outer tuple
    /// (ICMP errors).
    orig: Box<[Tuple; MAX_BURST]>,
    /// The tuple after DNAT (`Dnat`; equal to `orig` otherwise).
    cur: Box<[Tuple; MAX_BURST]>,
    flags: Box<[u8; MAX_BURST]>,
    /// `nat_out`'s decisions: the SNAT address, and whether hairpinned.
    ext: Box<[Option<u32>; MAX_BURST]>,
    hair: Box<[bool; MAX_BURST]>,
    /// Translated by `nat_in` (a session hit or DNAT).
    xl: Box<[bool; MAX_BURST]>,
    /// Translated by `nat_in`, then dropped by the route lookup for a
    /// reason the local stage answers with an ICMP error.
    err: Box<[bool; MAX_BURST]>,
}

impl Default for NatStage {
    fn default() -> Self {
        NatStage {
            keys: Box::new([Tuple::default(); MAX_BURST]),
            what: Box::new([What::Transport; MAX_BURST]),
            at: Box::new([0; MAX_BURST]),
            hits: Box::new([None; MAX_BURST]),
            pend: Box::new([Pend::None; MAX_BURST]),
            orig: Box::new([Tuple::default(); MAX_BURST]),
            cur: Box::new([Tuple::default(); MAX_BURST]),
            flags: Box::new([0; MAX_BURST]),
            ext: Box::new([None; MAX_BURST]),
            hair: Box::new([false; MAX_BURST]),
            xl: Box::new([false; MAX_BURST]),
            err: Box::new([false; MAX_BURST]),
        }
    }
}

/// Sessions a worker's sweep examines per burst: a 1M-session share is
/// walked in 250k bursts (about a second at full load). Expired sessions
/// are invisible before they are swept; a worker that runs out of free
/// sessions sweeps more on the spot.
const SWEEP_PER_BURST: usize = 4;
/// Most keys per table lookup batch.
const LOOKUP_CHUNK: usize = 64;

impl NatStage {
    /// Before the route lookup: translate known flows, DNAT new ones.
    #[inline]
    pub fn process_in(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let Some(nat) = cx.tables.nat.as_deref() else { return };
        let n = b.len();
        self.pend[..n].fill(Pend::None);
        self.xl[..n].fill(false);
        let now = cx.now_secs as u32;
        let mut m = 0;
        for i in 0..n {
            if b.verdict[i] != Verdict::Pending || b.layers[i].l3 != L3Kind::Ipv4 {
                continue;
            }
            let p = &b.pkts.as_slice()[i];
            if nat.role(p.port()) == Role::None {
                continue;
            }
            let (key, what) = match xlate::classify(p.data(), &b.layers[i]) {
                Flow::Transport { t, tcp_flags, .. } => {
                    self.flags[i] = tcp_flags;
                    self.orig[i] = t;
                    (t, What::Transport)
                }
                Flow::IcmpError { outer, inner } => {
                    self.orig[i] = outer;
                    (inner.reverse(), What::IcmpError)
                }
                Flow::LaterFragment { t } => {
                    self.orig[i] = t;
                    (t, What::LaterFrag)
                }
                Flow::Other { t } => {
                    self.orig[i] = t;
                    self.cur[i] = t;
                    self.pend[i] = Pend::Other;
                    continue;
                }
                Flow::NotIpv4 => continue,
            };
            self.keys[m] = key;
            self.what[m] = what;
            self.at[m] = i as u16;
            m += 1;
        }
        let mut s = 0;
        while s < m {
            let e = (s + LOOKUP_CHUNK).min(m);
            nat.table.lookup_batch(&self.keys[s..e], now, &mut self.hits[s..e]);
            s = e;
        }
        let ctr = nat.counters.get(cx.worker);
        for q in 0..m {
            let i = self.at[q] as usize;
            let l = b.layers[i];
            let in_port = b.pkts.as_slice()[i].port();
            let data = b.pkts.as_mut_slice()[i].data_mut();
            match (self.what[q], self.hits[q]) {
                (What::Transport, Some(h)) => {
                    if xlate::rewrite(data, &l, &h.to) {
                        self.xl[i] = true;
                        nat.table.touch(&h, self.flags[i], now);
                        if l.frag == Frag::First {
                            follow_fragments(nat, cx.worker, &self.orig[i], &h.to, data, &l, now);
                        }
                        if let Some(c) = ctr {
                            c.translated.inc();
                        }
                    }
                }
                (What::Transport, None) => {
                    let t = self.orig[i];
                    self.cur[i] = t;
                    if nat.exempt(t.src) || nat.exempt(t.dst) {
                        continue;
                    }
                    if let Some(to) = nat.dnat_of(&t) {
                        if xlate::rewrite(data, &l, &to) {
                            self.cur[i] = to;
                            self.pend[i] = Pend::Dnat;
                            self.xl[i] = true;
                        }
                        continue;
                    }
                    let role = nat.role(in_port);
                    if role == Role::Outside && nat.mapping == Mapping::EndpointIndependent {
                        // Full cone: any remote may reach a live mapping.
                        match inbound_mapped(nat, cx.worker, &t, now) {
                            Ok(Some(h)) => {
                                if xlate::rewrite(data, &l, &h.to) {
                                    self.xl[i] = true;
                                    if let Some(c) = ctr {
                                        c.sessions_created.inc();
                                        c.translated_new.inc();
                                    }
                                }
                            }
                            Ok(None) => {}
                            Err(r) => b.verdict[i] = Verdict::Drop(r),
                        }
                        continue;
                    }
                    if role == Role::Inside {
                        self.pend[i] = Pend::New;
                    }
                }
                (What::IcmpError, Some(h)) => {
                    let outer = self.orig[i];
                    // The key is the embedded packet reversed: that
                    // reversed packet becomes `h.to`, so the embedded one
                    // becomes its reverse; the error's destination is the
                    // embedded packet's source.
                    let key = self.keys[q];
                    let osrc = if outer.src == key.src { h.to.src } else { outer.src };
                    if xlate::rewrite_icmp_error(data, &l, osrc, h.to.dst, &h.to.reverse()) {
                        if let Some(c) = ctr {
                            c.icmp_errors.inc();
                        }
                    }
                }
                (What::IcmpError, None) => {}
                (What::LaterFrag, Some(h)) if h.dir == Dir::Forward => {
                    if xlate::rewrite(data, &l, &h.to) {
                        if let Some(c) = ctr {
                            c.fragments.inc();
                        }
                    }
                }
                (What::LaterFrag, _) => {
                    let t = self.orig[i];
                    self.cur[i] = t;
                    if nat.role(in_port) == Role::Outside && nat.external.contains(&t.dst) {
                        b.verdict[i] = Verdict::Drop(DropReason::NatFragNoSession);
                    } else {
                        self.pend[i] = Pend::LaterFrag;
                    }
                }
            }
        }
    }

    /// After the route lookup: SNAT and session creation for new flows.
    #[inline]
    pub fn process_out(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let Some(nat) = cx.tables.nat.as_deref() else { return };
        let n = b.len();
        let now = cx.now_secs as u32;
        let ctr = nat.counters.get(cx.worker);
        for i in 0..n {
            self.err[i] = self.xl[i]
                && matches!(
                    b.verdict[i],
                    Verdict::Drop(
                        DropReason::TtlExceeded
                            | DropReason::MtuExceeded
                            | DropReason::NoRoute
                            | DropReason::Unreachable
                    )
                );
        }
        // Decide first, and prefetch the index buckets of each new
        // session's likely reply tuple: they are cold (a random place in a
        // large table), and the creates below then find them cached.
        let mut m = 0;
        for i in 0..n {
            let pend = self.pend[i];
            if pend == Pend::None {
                continue;
            }
            let out = match b.verdict[i] {
                Verdict::Tx(p) | Verdict::Fragment(p) | Verdict::Resolve { port: p, .. } => p.0,
                _ => continue,
            };
            let in_role = nat.role(b.pkts.as_slice()[i].port());
            let out_role = nat.role(out);
            let (orig, cur) = (self.orig[i], self.cur[i]);
            let hairpin = pend == Pend::Dnat && in_role == Role::Inside && out_role == Role::Inside;
            let snat = if hairpin {
                Some(orig.dst)
            } else if in_role == Role::Inside && out_role == Role::Outside && !nat.exempt(cur.dst) {
                nat.snat_addr(cur.src, out)
            } else {
                None
            };
            match (pend, snat) {
                (Pend::New | Pend::Dnat, Some(ext)) => {
                    if let Some(port) = first_port(nat, cx.worker, &orig, &cur) {
                        nat.table.prefetch(&with_source(&cur, ext, port).reverse());
                    }
                }
                (Pend::Dnat, None) => nat.table.prefetch(&cur.reverse()),
                _ => {}
            }
            self.at[m] = i as u16;
            self.ext[i] = snat;
            self.hair[i] = hairpin;
            m += 1;
        }
        for q in 0..m {
            let i = self.at[q] as usize;
            let (pend, snat, hairpin) = (self.pend[i], self.ext[i], self.hair[i]);
            let (orig, cur) = (self.orig[i], self.cur[i]);
            let l = b.layers[i];
            let data = b.pkts.as_mut_slice()[i].data_mut();
            let res = match (pend, snat) {
                (Pend::None | Pend::New | Pend::LaterFrag | Pend::Other, None) => continue,
                (Pend::LaterFrag, Some(_)) => Err(DropReason::NatFragNoSession),
                (Pend::Other, Some(_)) => Err(DropReason::NatUnsupportedProtocol),
                (Pend::Dnat, None) => {
                    match nat.table.create(cx.worker, &orig, &cur.reverse(), initial_state(orig.proto), now) {
                        Ok(h) => Ok(h),
                        Err(CreateError::ReplyInUse) => Err(DropReason::NatReplyClash),
                        Err(e) => Err(create_drop(e)),
                    }
                }
                (_, Some(ext)) => snat_create(nat, cx.worker, &orig, &cur, ext, now, ctr),
            };
            match res {
                Ok(h) => {
                    if cur != h.to {
                        xlate::rewrite(data, &l, &h.to);
                    }
                    nat.table.touch(&h, self.flags[i], now);
                    if l.frag == Frag::First {
                        follow_fragments(nat, cx.worker, &orig, &h.to, data, &l, now);
                    }
                    if let Some(c) = ctr {
                        c.sessions_created.inc();
                        c.translated_new.inc();
                        if hairpin {
                            c.hairpin.inc();
                        }
                    }
                }
                Err(r) => b.verdict[i] = Verdict::Drop(r),
            }
        }
        let freed = nat.table.sweep(cx.worker, now, SWEEP_PER_BURST);
        if let Some(c) = ctr {
            c.expired.add(freed as u64);
        }
    }
}

#[inline]
fn create_drop(e: CreateError) -> DropReason {
    match e {
        CreateError::Full | CreateError::IndexFull => DropReason::NatSessionFull,
        CreateError::ReplyInUse => DropReason::NatPortExhausted,
        CreateError::HostLimit => DropReason::NatHostLimit,
    }
}

impl NatStage {
    /// After the local stage: an ICMP error the router itself built about
    /// a packet `nat_in` had translated (TTL exceeded, fragmentation
    /// needed, unreachable) quotes the translated packet; translate it
    /// back like an error arriving from elsewhere, so the sender sees its
    /// own packet (and path MTU discovery works through NAT). Slow path:
    /// such errors are rate-limited.
    pub fn process_errors(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let Some(nat) = cx.tables.nat.as_deref() else { return };
        let n = b.len();
        let now = cx.now_secs as u32;
        for i in 0..n {
            if !self.err[i] || !matches!(b.verdict[i], Verdict::Tx(_)) {
                continue;
            }
            self.err[i] = false;
            let data = b.pkts.as_mut_slice()[i].data_mut();
            let Ok(l) = crate::wire::parse_frame(data, false) else { continue };
            let Flow::IcmpError { outer, inner } = xlate::classify(data, &l) else { continue };
            let key = inner.reverse();
            let done = match nat.table.lookup(&key, now) {
                Some(h) => {
                    let osrc = if outer.src == key.src { h.to.src } else { outer.src };
                    xlate::rewrite_icmp_error(data, &l, osrc, h.to.dst, &h.to.reverse())
                }
                // DNAT without a session yet (dropped before `nat_out`):
                // quote the packet as it arrived.
                None if self.pend[i] == Pend::Dnat => {
                    xlate::rewrite_icmp_error(data, &l, outer.src, outer.dst, &self.orig[i])
                }
                None => false,
            };
            if done {
                if let Some(c) = nat.counters.get(cx.worker) {
                    c.icmp_errors.inc();
                }
            }
        }
    }
}

/// Creates the session of a new flow translated to source `ext`: the
/// flow's mapping if endpoint-independent, else a port from the worker's
/// share of the range, trying consecutive ones from a hash of the flow.
fn snat_create(
    nat: &NatView,
    worker: usize,
    orig: &Tuple,
    cur: &Tuple,
    ext: u32,
    now: u32,
    ctr: Option<&CachePadded<NatCounters>>,
) -> Result<Hit, DropReason> {
    let state = initial_state(orig.proto);
    // 1:1 mappings keep the port when they can.
    let keep = nat.static_snat.get(&cur.src) == Some(&ext);
    if keep {
        let reply = with_source(cur, ext, cur.sport).reverse();
        match nat.table.create_for_host(worker, orig, &reply, state, now, cur.src) {
            Ok(h) => return Ok(h),
            Err(CreateError::ReplyInUse) => {}
            Err(e) => return Err(create_drop(e)),
        }
    }
    let eim = nat.mapping == Mapping::EndpointIndependent;
    let mkey = Tuple { src: cur.src, dst: 0, sport: cur.sport, dport: 0, proto: cur.proto, kind: KIND_MAPPING };
    if eim {
        if let Some(m) = nat.table.lookup(&mkey, now).filter(|m| m.dir == Dir::Forward) {
            let reply = with_source(cur, m.to.src, m.to.sport).reverse();
            match nat.table.create_for_host(worker, orig, &reply, state, now, cur.src) {
                Ok(h) => return Ok(h),
                Err(CreateError::ReplyInUse) => {}
                Err(e) => return Err(create_drop(e)),
            }
        }
    }
    let Some(PortShare { lo, w, workers, share, start }) = port_share(nat, worker, orig, cur) else {
        return Err(DropReason::NatPortExhausted);
    };
    for k in 0..MAX_PORT_TRIES.min(share) {
        if k > 0 {
            if let Some(c) = ctr {
                c.port_retries.inc();
            }
        }
        let idx = (start + k) % share;
        let port = (lo + w + idx * workers) as u16;
        if eim {
            let mreply = Tuple { src: 0, dst: ext, sport: 0, dport: port, proto: cur.proto, kind: KIND_MAPPING };
            match nat.table.create(worker, &mkey, &mreply, State::Mapping, now) {
                Ok(_) => {}
                Err(CreateError::ReplyInUse) => continue,
                Err(e) => return Err(create_drop(e)),
            }
        }
        let reply = with_source(cur, ext, port).reverse();
        // One lookup per port in use, not create's two.
        if k > 0 && nat.table.reply_in_use(&reply, now) {
            continue;
        }
        match nat.table.create_for_host(worker, orig, &reply, state, now, cur.src) {
            Ok(h) => return Ok(h),
            Err(CreateError::ReplyInUse) => continue,
            Err(e) => return Err(create_drop(e)),
        }
    }
    Err(DropReason::NatPortExhausted)
}

/// A worker's share of a protocol's port range, and where a flow's search
/// starts in it: the worker's ports are `lo + w + k × workers`.
struct PortShare {
    lo: u32,
    w: u32,
    workers: u32,
    share: u32,
    start: u32,
}

#[inline]
fn port_share(nat: &NatView, worker: usize, orig: &Tuple, cur: &Tuple) -> Option<PortShare> {
    let range = nat.range(cur.proto);
    let workers = nat.table.config().workers.max(1) as u32;
    let w = (worker as u32) % workers;
    let share = range.len() / workers + u32::from(range.len() % workers > w);
    if share == 0 {
        return None;
    }
    let start = (flow_hash(orig) % share as u64) as u32;
    Some(PortShare { lo: range.lo as u32, w, workers, share, start })
}

/// The first port [`snat_create`] tries for a flow.
#[inline]
fn first_port(nat: &NatView, worker: usize, orig: &Tuple, cur: &Tuple) -> Option<u16> {
    let s = port_share(nat, worker, orig, cur)?;
    Some((s.lo + s.w + s.start * s.workers) as u16)
}

/// Endpoint-independent filtering: an unknown flow from the outside to a
/// live mapping's external address:port gets a session to the mapping's
/// inside endpoint. `Ok(None)`: no mapping.
fn inbound_mapped(nat: &NatView, worker: usize, t: &Tuple, now: u32) -> Result<Option<Hit>, DropReason> {
    let mreply = Tuple { src: 0, dst: t.dst, sport: 0, dport: t.dport, proto: t.proto, kind: KIND_MAPPING };
    let Some(m) = nat.table.lookup(&mreply, now).filter(|m| m.dir == Dir::Reply) else { return Ok(None) };
    // m.to = (0 → inside addr:port)
    let mut to = *t;
    to.dst = m.to.dst;
    to.dport = m.to.dport;
    if t.proto == ip_proto::ICMP {
        to.sport = m.to.dport;
    }
    match nat.table.create(worker, t, &to.reverse(), initial_state(t.proto), now) {
        Ok(h) => Ok(Some(h)),
        Err(CreateError::ReplyInUse) => Err(DropReason::NatReplyClash),
        Err(e) => Err(create_drop(e)),
    }
}

/// After a first fragment was translated from `orig` to `to`, records how
/// (addresses only) so later fragments of the datagram follow it. The IP
/// identification is the packet's (NAT never changes it). Best effort: a
/// table without room leaves the later fragments to be dropped.
#[inline]
fn follow_fragments(
    nat: &NatView,
    worker: usize,
    orig: &Tuple,
    to: &Tuple,
    data: &[u8],
    l: &crate::wire::Layers,
    now: u32,
) {
    let Some(k) = xlate::frag_key(data, l) else { return };
    let fo = Tuple { src: orig.src, dst: orig.dst, ..k };
    let ft = Tuple { src: to.src, dst: to.dst, ..k };
    let _ = nat.table.create(worker, &fo, &ft.reverse(), State::Fragment, now);
}

/// True for tuples of ordinary flows (not fragment or mapping entries).
pub fn is_flow(t: &Tuple) -> bool {
    t.kind == KIND_FLOW
}
