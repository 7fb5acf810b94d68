//! ACLs in the pipeline: built ACLs, their bindings to ports per
//! direction, and the stage that applies them to whole batches.
//!
//! For each packet on a port with an ACL bound in the stage's direction:
//! the session table first (a packet of a flow a `permit-stateful` rule
//! admitted passes, in either direction); then the classifier, over the
//! batch's keys at once; then the first matching rule's action, or the
//! binding's default when no rule matches. Non-IP frames (ARP) pass.
//! Later fragments carry no ports: they are classified with ports 0.
//! Traffic the parse stage hands to the router's own stack before the
//! ACL (ARP, IPv4 broadcast and multicast, IPv6 multicast — including
//! neighbour solicitations — and IPv6 link-local) is not filtered.
//!
//! Hit counters count the packets a rule decided on; packets a session
//! admitted are not counted again against the rule that created it.
//!
//! Per-rule hit counters (packets, bytes) are per worker, single-writer,
//! summed when read.

use super::session::{InsertError, Lookup, SessionTable};
use super::{Action, Classifier, Key, Rule, NO_MATCH};
use crate::batch::{Batch, Verdict};
use crate::counters::DropReason;
use crate::stage::Ctx;
use crate::wire::{self, L3Kind};
use crossbeam_utils::CachePadded;
use ports::counter::Counter;
use ports::MAX_BURST;
use std::sync::Arc;

/// One worker's counters for every rule of an ACL.
struct WorkerHits {
    packets: Box<[Counter]>,
    bytes: Box<[Counter]>,
}

/// A built ACL: rules, classifier and per-worker hit counters. Immutable
/// once built; an update builds a new one off the fast path.
pub struct Acl {
    pub name: String,
    classifier: Classifier,
    hits: Box<[CachePadded<WorkerHits>]>,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl").field("name", &self.name).field("rules", &self.classifier.rules().len()).finish()
    }
}

impl Acl {
    /// Builds an ACL for up to `workers` workers' counters.
    pub fn build(name: &str, rules: &[Rule], workers: usize) -> Acl {
        let n = rules.len();
        let hits = (0..workers.max(1))
            .map(|_| {
                CachePadded::new(WorkerHits {
                    packets: (0..n).map(|_| Counter::new()).collect(),
                    bytes: (0..n).map(|_| Counter::new()).collect(),
                })
            })
            .collect();
        Acl { name: name.to_string(), classifier: Classifier::build(rules), hits }
    }

    pub fn rules(&self) -> &[Rule] {
        self.classifier.rules()
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// (packets, bytes) per rule, summed over workers.
    pub fn rule_hits(&self) -> Vec<(u64, u64)> {
        let mut v = vec![(0u64, 0u64); self.rules().len()];
        for w in self.hits.iter() {
            for (i, s) in v.iter_mut().enumerate() {
                s.0 += w.packets[i].get();
                s.1 += w.bytes[i].get();
            }
        }
        v
    }

    #[inline(always)]
    fn count(&self, worker: usize, rule: u32, bytes: usize) {
        if let Some(w) = self.hits.get(worker) {
            if let (Some(p), Some(b)) = (w.packets.get(rule as usize), w.bytes.get(rule as usize)) {
                p.inc();
                b.add(bytes as u64);
            }
        }
    }
}

/// An ACL bound to a port in one direction, with the action for packets
/// no rule matches.
#[derive(Clone, Debug)]
pub struct AclBinding {
    pub acl: Arc<Acl>,
    pub default: Action,
}

/// Which way a binding filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Packets received on the port (before the route lookup).
    Ingress,
    /// Packets leaving by the port (after the route lookup).
    Egress,
}

/// ACL state in the tables: bindings per port and direction, and the
/// session table shared by every worker (it outlives table versions).
#[derive(Clone, Debug, Default)]
pub struct AclTables {
    /// Indexed by port id.
    pub ingress: Vec<Option<AclBinding>>,
    pub egress: Vec<Option<AclBinding>>,
    pub sessions: Option<Arc<SessionTable>>,
}

impl AclTables {
    #[inline(always)]
    fn binding(&self, dir: Direction, port: u16) -> Option<&AclBinding> {
        let v = match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        };
        v.get(port as usize).and_then(Option::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.ingress.iter().chain(&self.egress).all(Option::is_none)
    }
}

/// The packet fields a rule looks at; `None` for non-IP frames.
#[inline]
pub fn key_of(frame: &[u8], l: &wire::Layers) -> Option<Key> {
    let l3 = l.l3_off as usize;
    let mut k = Key { proto: l.l4_proto, ..Key::default() };
    match l.l3 {
        L3Kind::Ipv4 => {
            let h = frame.get(l3..l3 + 20)?;
            k.src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]) as u128;
            k.dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]) as u128;
        }
        L3Kind::Ipv6 => {
            let h = frame.get(l3..l3 + 40)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[8..24]);
            k.src = u128::from_be_bytes(a);
            a.copy_from_slice(&h[24..40]);
            k.dst = u128::from_be_bytes(a);
            k.v6 = true;
        }
        _ => return None,
    }
    let l4 = l.l4_off as usize;
    if l4 != 0 {
        match l.l4_proto {
            6 | 17 | 132 => {
                if let Some(p) = frame.get(l4..l4 + 4) {
                    k.sport = u16::from_be_bytes([p[0], p[1]]);
                    k.dport = u16::from_be_bytes([p[2], p[3]]);
                }
                if l.l4_proto == 6 {
                    k.tcp_flags = frame.get(l4 + 13).copied().unwrap_or(0);
                }
            }
            1 | 58 => {
                if let Some(p) = frame.get(l4..l4 + 2) {
                    k.sport = p[0] as u16;
                    k.dport = p[1] as u16;
                }
            }
            _ => {}
        }
    }
    Some(k)
}

/// The ACL stage for one direction.
pub struct AclStage {
    dir: Direction,
    keys: Box<[Key; MAX_BURST]>,
    /// Batch index of each gathered key.
    at: Box<[u16; MAX_BURST]>,
    res: Box<[u32; MAX_BURST]>,
}

impl AclStage {
    pub fn new(dir: Direction) -> AclStage {
        AclStage {
            dir,
            keys: Box::new([Key::default(); MAX_BURST]),
            at: Box::new([0; MAX_BURST]),
            res: Box::new([0; MAX_BURST]),
        }
    }

    /// The port a packet is filtered on in this direction, if it is.
    #[inline(always)]
    fn port_of(&self, v: Verdict, in_port: u16) -> Option<u16> {
        match (self.dir, v) {
            (Direction::Ingress, Verdict::Pending) => Some(in_port),
            (Direction::Egress, Verdict::Tx(p) | Verdict::Fragment(p) | Verdict::Resolve { port: p, .. }) => Some(p.0),
            _ => None,
        }
    }

    pub fn process(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let acl = &cx.tables.acl;
        if acl.is_empty() {
            return;
        }
        let n = b.len();
        let now = cx.now_secs;
        let mut done = [false; MAX_BURST];
        for i in 0..n {
            if done[i] {
                continue;
            }
            let Some(port) = self.port_of(b.verdict[i], b.pkts.as_slice()[i].port()) else { continue };
            let Some(bind) = acl.binding(self.dir, port) else { continue };
            // This packet and every later one under the same ACL and
            // default: the common case is one binding for the whole burst.
            let mut m = 0;
            for (j, dj) in done.iter_mut().enumerate().take(n).skip(i) {
                if *dj {
                    continue;
                }
                let Some(pj) = self.port_of(b.verdict[j], b.pkts.as_slice()[j].port()) else { continue };
                let same = pj == port
                    || acl
                        .binding(self.dir, pj)
                        .is_some_and(|o| Arc::ptr_eq(&o.acl, &bind.acl) && o.default == bind.default);
                if !same {
                    continue;
                }
                *dj = true;
                let Some(k) = key_of(b.pkts.as_slice()[j].data(), &b.layers[j]) else {
                    continue; // not IP: passes
                };
                // Sessions first: a flow a stateful rule admitted passes.
                if let Some(s) = &acl.sessions {
                    if s.lookup(&k, now) != Lookup::None {
                        continue;
                    }
                }
                self.keys[m] = k;
                self.at[m] = j as u16;
                m += 1;
            }
            bind.acl.classifier().classify_batch(&self.keys[..m], &mut self.res[..m]);
            for q in 0..m {
                let j = self.at[q] as usize;
                let rule = self.res[q];
                let action = if rule == NO_MATCH {
                    bind.default
                } else {
                    bind.acl.count(cx.worker, rule, b.pkts.as_slice()[j].len());
                    bind.acl.rules()[rule as usize].action
                };
                match action {
                    Action::Permit => {}
                    Action::Deny => {
                        b.verdict[j] = Verdict::Drop(if rule == NO_MATCH {
                            DropReason::AclDefaultDeny
                        } else {
                            DropReason::AclDeny
                        });
                    }
                    Action::PermitStateful => {
                        // A table with no room for the session drops the
                        // packet; a session another worker is creating for
                        // the same flow (`Busy`) lets it pass.
                        if let Some(s) = &acl.sessions {
                            if s.insert(&self.keys[q], now) == Err(InsertError::Full) {
                                b.verdict[j] = Verdict::Drop(DropReason::AclSessionFull);
                            }
                        }
                    }
                }
            }
        }
    }
}
