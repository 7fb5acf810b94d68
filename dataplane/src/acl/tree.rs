//! The classifier: a decision tree over the five fields (HiCuts-style
//! equal-size cuts, one field per node, with redundancy removal).
//!
//! Each node covers an aligned power-of-two block of every field and cuts
//! one field into 2^k equal parts, so a lookup is a shift and a mask per
//! level. The field and the number of cuts are chosen per node: the field
//! whose cuts leave the smallest largest child, with as many cuts as keep
//! the rules copied into children within `SPACE_FACTOR` times the node's
//! own. Below a node, a rule that covers the whole block hides every
//! lower-priority rule, which are then dropped (redundancy removal: it
//! keeps wildcard-heavy sets from exploding). Leaves hold at most
//! `LEAF_RULES` rules in priority order, checked one by one; the first
//! match wins. IPv4 and IPv6 rules get separate trees.
//!
//! Why this algorithm: a lookup reads a handful of small nodes and one
//! short leaf — no per-field tables to combine as with RFC or bit vectors,
//! no dozens of hash probes as with tuple-space search — and building it
//! for the 8k-rule ClassBench sets takes milliseconds. See BENCHMARKS.md
//! for the measurements next to DPDK's rte_acl.

use super::{Key, Rule, NO_MATCH};

/// Most rules in a leaf.
const LEAF_RULES: usize = 8;
/// Children may hold at most this many times the node's rules in total.
const SPACE_FACTOR: usize = 4;
/// Most cut bits per node (256 children).
const MAX_CUT_BITS: u32 = 8;
/// Deepest node; below it a leaf takes every remaining rule.
const MAX_DEPTH: usize = 32;

/// Rule groups smaller than 1/this of a family's rules are merged.
const MERGE_DIVISOR: usize = 8;

const LEAF: u32 = 1 << 31;
const DIMS: usize = 5;

/// A rule as per-field ranges, for leaves.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Compact {
    src_lo: u128,
    src_hi: u128,
    dst_lo: u128,
    dst_hi: u128,
    sport_lo: u16,
    sport_hi: u16,
    dport_lo: u16,
    dport_hi: u16,
    proto_lo: u8,
    proto_hi: u8,
    flags: u8,
    mask: u8,
    index: u32,
}

impl Compact {
    fn of(r: &Rule, index: u32) -> Compact {
        let (src_lo, src_hi) = r.src.range();
        let (dst_lo, dst_hi) = r.dst.range();
        let (proto_lo, proto_hi) = r.proto.map_or((0, 255), |p| (p, p));
        Compact {
            src_lo,
            src_hi,
            dst_lo,
            dst_hi,
            sport_lo: r.sport.lo,
            sport_hi: r.sport.hi,
            dport_lo: r.dport.lo,
            dport_hi: r.dport.hi,
            proto_lo,
            proto_hi,
            flags: r.tcp_flags & r.tcp_mask,
            mask: r.tcp_mask,
            index,
        }
    }

    fn range(&self, d: usize) -> (u128, u128) {
        match d {
            0 => (self.src_lo, self.src_hi),
            1 => (self.dst_lo, self.dst_hi),
            2 => (self.sport_lo as u128, self.sport_hi as u128),
            3 => (self.dport_lo as u128, self.dport_hi as u128),
            _ => (self.proto_lo as u128, self.proto_hi as u128),
        }
    }

    #[inline(always)]
    fn matches(&self, k: &Key) -> bool {
        self.src_lo <= k.src
            && k.src <= self.src_hi
            && self.dst_lo <= k.dst
            && k.dst <= self.dst_hi
            && self.sport_lo <= k.sport
            && k.sport <= self.sport_hi
            && self.dport_lo <= k.dport
            && k.dport <= self.dport_hi
            && self.proto_lo <= k.proto
            && k.proto <= self.proto_hi
            && k.tcp_flags & self.mask == self.flags
    }
}

/// An IPv4 rule in 32 bytes (two per cache line), for IPv4 leaves.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Compact4 {
    src_lo: u32,
    src_hi: u32,
    dst_lo: u32,
    dst_hi: u32,
    sport_lo: u16,
    sport_hi: u16,
    dport_lo: u16,
    dport_hi: u16,
    index: u32,
    proto_lo: u8,
    proto_hi: u8,
    flags: u8,
    mask: u8,
}

impl Compact4 {
    fn of(c: &Compact) -> Compact4 {
        Compact4 {
            src_lo: c.src_lo as u32,
            src_hi: c.src_hi as u32,
            dst_lo: c.dst_lo as u32,
            dst_hi: c.dst_hi as u32,
            sport_lo: c.sport_lo,
            sport_hi: c.sport_hi,
            dport_lo: c.dport_lo,
            dport_hi: c.dport_hi,
            index: c.index,
            proto_lo: c.proto_lo,
            proto_hi: c.proto_hi,
            flags: c.flags,
            mask: c.mask,
        }
    }

    #[inline(always)]
    fn matches(&self, k: &Key, src: u32, dst: u32) -> bool {
        self.src_lo <= src
            && src <= self.src_hi
            && self.dst_lo <= dst
            && dst <= self.dst_hi
            && self.sport_lo <= k.sport
            && k.sport <= self.sport_hi
            && self.dport_lo <= k.dport
            && k.dport <= self.dport_hi
            && self.proto_lo <= k.proto
            && k.proto <= self.proto_hi
            && k.tcp_flags & self.mask == self.flags
    }
}

/// An inner node: cut field `dim` of the key by `(v >> shift) & mask`.
#[derive(Clone, Copy, Debug)]
struct Node {
    dim: u8,
    shift: u8,
    mask: u32,
    /// First child in `children`.
    base: u32,
}

/// One family's tree.
#[derive(Default)]
struct Tree {
    nodes: Vec<Node>,
    /// Node index, or `LEAF | leaf index`.
    children: Vec<u32>,
    /// Leaves: (first rule in `rules`, count).
    leaves: Vec<(u32, u32)>,
    /// Leaf rules (IPv6 trees).
    rules: Vec<Compact>,
    /// Leaf rules (IPv4 trees).
    rules4: Vec<Compact4>,
    /// The root: node index or `LEAF | leaf`.
    root: u32,
    v6: bool,
}

/// A node's block: per field, its lowest value and size in bits.
#[derive(Clone, Copy)]
struct Block {
    lo: [u128; DIMS],
    bits: [u32; DIMS],
}

impl Block {
    fn hi(&self, d: usize) -> u128 {
        let b = self.bits[d];
        if b >= 128 {
            u128::MAX
        } else {
            self.lo[d] + ((1u128 << b) - 1)
        }
    }

    fn covered_by(&self, r: &Compact) -> bool {
        (0..DIMS).all(|d| {
            let (lo, hi) = r.range(d);
            lo <= self.lo[d] && hi >= self.hi(d)
        })
    }
}

/// A key at the low corner of every field of `r`.
fn corner(r: &Rule) -> Key {
    Key {
        src: r.src.range().0,
        dst: r.dst.range().0,
        sport: r.sport.lo,
        dport: r.dport.lo,
        proto: r.proto.unwrap_or(0),
        tcp_flags: r.tcp_flags & r.tcp_mask,
        v6: r.src.v6,
    }
}

/// Build statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub nodes: usize,
    pub leaves: usize,
    /// Rule copies held in leaves.
    pub leaf_rules: usize,
    pub max_depth: usize,
    /// Bytes of nodes, child pointers, leaves and leaf rules.
    pub bytes: usize,
    /// Trees (rule groups) over both families.
    pub trees: usize,
}

struct Builder<'a> {
    all: &'a [Compact],
    t: Tree,
    empty_leaf: u32,
    depth: usize,
}

impl Builder<'_> {
    fn leaf(&mut self, rules: &[u32]) -> u32 {
        if rules.is_empty() {
            return self.empty_leaf;
        }
        let start = if self.t.v6 {
            let s = self.t.rules.len() as u32;
            self.t.rules.extend(rules.iter().map(|&i| self.all[i as usize]));
            s
        } else {
            let s = self.t.rules4.len() as u32;
            self.t.rules4.extend(rules.iter().map(|&i| Compact4::of(&self.all[i as usize])));
            s
        };
        self.t.leaves.push((start, rules.len() as u32));
        LEAF | (self.t.leaves.len() as u32 - 1)
    }

    /// Children rule counts for cutting `d` into 2^`cb` parts: (max, sum).
    fn cost(&self, rules: &[u32], blk: &Block, d: usize, cb: u32) -> (usize, usize) {
        let shift = blk.bits[d] - cb;
        let n = 1usize << cb;
        let mut counts = [0u32; 1 << MAX_CUT_BITS];
        let mut sum = 0usize;
        let (blo, bhi) = (blk.lo[d], blk.hi(d));
        for &i in rules {
            let (lo, hi) = self.all[i as usize].range(d);
            let (lo, hi) = (lo.max(blo), hi.min(bhi));
            let a = ((lo - blo) >> shift) as usize;
            let b = ((hi - blo) >> shift) as usize;
            for c in &mut counts[a..=b.min(n - 1)] {
                *c += 1;
            }
            sum += b - a + 1;
        }
        (counts[..n].iter().copied().max().unwrap_or(0) as usize, sum)
    }

    /// Rules of `rules` that can still match inside `blk`, in priority
    /// order, cut after the first rule covering the whole block.
    fn prune(&self, rules: &[u32], blk: &Block) -> Vec<u32> {
        let mut out = Vec::with_capacity(rules.len());
        for &i in rules {
            let r = &self.all[i as usize];
            let overlaps = (0..DIMS).all(|d| {
                let (lo, hi) = r.range(d);
                hi >= blk.lo[d] && lo <= blk.hi(d)
            });
            if !overlaps {
                continue;
            }
            out.push(i);
            if r.mask == 0 && blk.covered_by(r) {
                break;
            }
        }
        out
    }

    fn build(&mut self, rules: Vec<u32>, blk: Block, depth: usize) -> u32 {
        let rules = self.prune(&rules, &blk);
        self.depth = self.depth.max(depth);
        if rules.len() <= LEAF_RULES || depth >= MAX_DEPTH {
            return self.leaf(&rules);
        }
        // Choose the field and cut count.
        let mut best: Option<(usize, u32, usize, usize)> = None; // (dim, cut bits, max, sum)
        for d in 0..DIMS {
            if blk.bits[d] == 0 {
                continue;
            }
            let mut choice = None;
            for cb in 1..=MAX_CUT_BITS.min(blk.bits[d]) {
                let (max, sum) = self.cost(&rules, &blk, d, cb);
                if cb > 1 && sum > SPACE_FACTOR * rules.len() {
                    break;
                }
                choice = Some((d, cb, max, sum));
                if max <= LEAF_RULES {
                    break;
                }
            }
            if let Some(c) = choice {
                let better = match best {
                    None => true,
                    Some(b) => (c.2, c.3) < (b.2, b.3),
                };
                if better {
                    best = Some(c);
                }
            }
        }
        let Some((d, cb, max, _)) = best else { return self.leaf(&rules) };
        if max >= rules.len() {
            // No cut separates anything: a (long) leaf.
            return self.leaf(&rules);
        }
        let n = 1u32 << cb;
        let shift = blk.bits[d] - cb;
        let idx = self.t.nodes.len() as u32;
        let base = self.t.children.len() as u32;
        self.t.nodes.push(Node { dim: d as u8, shift: shift as u8, mask: n - 1, base });
        self.t.children.extend(std::iter::repeat_n(self.empty_leaf, n as usize));
        // Children with the same rules share one subtree when their blocks
        // are adjacent and the subtree does not look at this field's bits
        // below the cut: build each distinct list once per run.
        let mut prev: Option<(Vec<u32>, u32)> = None;
        for c in 0..n {
            let mut cb_blk = blk;
            cb_blk.lo[d] = blk.lo[d] + ((c as u128) << shift);
            cb_blk.bits[d] = shift;
            let child_rules = self.prune(&rules, &cb_blk);
            let id = match &prev {
                Some((r, id)) if *r == child_rules && child_rules.len() <= LEAF_RULES => *id,
                _ => {
                    let id = self.build(child_rules.clone(), cb_blk, depth + 1);
                    prev = Some((child_rules, id));
                    id
                }
            };
            self.t.children[(base + c) as usize] = id;
        }
        idx
    }
}

impl Tree {
    fn build(all: &[Compact], ids: Vec<u32>, v6: bool) -> (Tree, usize) {
        let addr_bits = if v6 { 128 } else { 32 };
        let blk = Block { lo: [0; DIMS], bits: [addr_bits, addr_bits, 16, 16, 8] };
        let mut b = Builder { all, t: Tree { v6, ..Tree::default() }, empty_leaf: 0, depth: 0 };
        b.t.leaves.push((0, 0));
        b.empty_leaf = LEAF;
        b.t.root = b.build(ids, blk, 0);
        (b.t, b.depth)
    }

    /// As [`Tree::classify`], also counting nodes walked and leaf rules
    /// checked.
    fn classify_counting(&self, k: &Key, best: u32) -> (u32, u64) {
        let mut at = self.root;
        let mut steps = 0u64;
        while at & LEAF == 0 {
            let n = self.nodes[at as usize];
            let v = match n.dim {
                0 => k.src,
                1 => k.dst,
                2 => k.sport as u128,
                3 => k.dport as u128,
                _ => k.proto as u128,
            };
            at = self.children[(n.base + (((v >> n.shift) as u32) & n.mask)) as usize];
            steps += 1;
        }
        let (start, len) = self.leaves[(at & !LEAF) as usize];
        let (start, end) = (start as usize, (start + len) as usize);
        // Leaf rules are in priority order: scan until a match or `best`.
        let idx: Vec<(u32, bool)> = if self.v6 {
            self.rules[start..end].iter().map(|r| (r.index, r.matches(k))).collect()
        } else {
            let (src, dst) = (k.src as u32, k.dst as u32);
            self.rules4[start..end].iter().map(|r| (r.index, r.matches(k, src, dst))).collect()
        };
        for (index, hit) in idx {
            steps += 1;
            if index >= best {
                break;
            }
            if hit {
                return (index, steps);
            }
        }
        (best, steps)
    }

    /// The first rule of this tree matching `k` that beats `best` (leaf
    /// rules are in priority order, so the scan stops at `best`).
    #[inline(always)]
    fn classify(&self, k: &Key, best: u32) -> u32 {
        let mut at = self.root;
        while at & LEAF == 0 {
            // Node and child indices come from the builder and are in
            // range; the bounds checks stay (cheap, never taken).
            let n = self.nodes[at as usize];
            let v = match n.dim {
                0 => k.src,
                1 => k.dst,
                2 => k.sport as u128,
                3 => k.dport as u128,
                _ => k.proto as u128,
            };
            let c = ((v >> n.shift) as u32) & n.mask;
            at = self.children[(n.base + c) as usize];
        }
        let (start, len) = self.leaves[(at & !LEAF) as usize];
        let (start, end) = (start as usize, (start + len) as usize);
        if self.v6 {
            for r in &self.rules[start..end] {
                if r.index >= best {
                    break;
                }
                if r.matches(k) {
                    return r.index;
                }
            }
        } else {
            let (src, dst) = (k.src as u32, k.dst as u32);
            for r in &self.rules4[start..end] {
                if r.index >= best {
                    break;
                }
                if r.matches(k, src, dst) {
                    return r.index;
                }
            }
        }
        best
    }

    fn bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>()
            + self.children.len() * 4
            + self.leaves.len() * 8
            + self.rules.len() * std::mem::size_of::<Compact>()
            + self.rules4.len() * std::mem::size_of::<Compact4>()
    }
}

/// Which fields of a rule are "large" (cover much of their space): rules
/// are split into groups by this pattern, one tree each, so a few
/// wildcard rules are not copied into every corner of the others' trees
/// (the separability idea of EffiCuts).
/// `ports`: also split by wide port ranges (more, smaller trees).
fn group_of(r: &Rule, ports: bool) -> usize {
    let wide_ip = |p: &super::Prefix| p.len < if p.v6 { 64 } else { 16 };
    let wide_port = |x: &super::Range| (x.hi - x.lo) >= 0x8000;
    let ip = (wide_ip(&r.src) as usize) | ((wide_ip(&r.dst) as usize) << 1);
    if ports {
        ip | ((wide_port(&r.sport) as usize) << 2) | ((wide_port(&r.dport) as usize) << 3)
    } else {
        ip
    }
}

/// One group's tree and the best (lowest) rule index in it.
struct Group {
    first: u32,
    tree: Tree,
}

/// A built classifier: immutable, shared by every worker.
pub struct Classifier {
    rules: Vec<Rule>,
    /// Per family (IPv4, IPv6): groups in order of their best rule.
    groups: [Vec<Group>; 2],
    stats: TreeStats,
}

impl Classifier {
    /// Builds a classifier for `rules` (priority = index).
    ///
    /// Two splits into groups are built — by wide addresses and ports, and
    /// by wide addresses only — and the one that costs fewer steps (nodes
    /// walked plus leaf rules checked) over a probe key at the corner of
    /// every rule is kept: which is cheaper depends on the rule set.
    pub fn build(rules: &[Rule]) -> Classifier {
        let a = Self::build_split(rules, true);
        let b = Self::build_split(rules, false);
        let probes: Vec<Key> = rules.iter().map(corner).collect();
        if b.cost(&probes) < a.cost(&probes) {
            b
        } else {
            a
        }
    }

    /// Steps a classification of `keys` takes (the build's cost model).
    fn cost(&self, keys: &[Key]) -> u64 {
        keys.iter()
            .map(|k| {
                let mut best = NO_MATCH;
                let mut steps = 0u64;
                for g in &self.groups[k.v6 as usize] {
                    if g.first >= best {
                        break;
                    }
                    let (r, s) = g.tree.classify_counting(k, best);
                    best = r;
                    steps += s;
                }
                steps
            })
            .sum()
    }

    fn build_split(rules: &[Rule], ports: bool) -> Classifier {
        let all: Vec<Compact> = rules.iter().enumerate().map(|(i, r)| Compact::of(r, i as u32)).collect();
        let mut stats = TreeStats::default();
        let mut groups: [Vec<Group>; 2] = [Vec::new(), Vec::new()];
        for (fam, out) in groups.iter_mut().enumerate() {
            let v6 = fam == 1;
            let mut ids: Vec<Vec<u32>> = vec![Vec::new(); 16];
            for (i, r) in rules.iter().enumerate() {
                if r.src.v6 == v6 {
                    ids[group_of(r, ports)].push(i as u32);
                }
            }
            // Small groups cost a tree walk each for few rules: merge each
            // into a bigger group that is wide in every field it is wide in
            // (its rules then cannot be copied across that group's cuts),
            // with the fewest extra wide fields. Any partition classifies
            // correctly; this one keeps trees few and small.
            let total: usize = ids.iter().map(Vec::len).sum();
            let small = (total / MERGE_DIVISOR).max(LEAF_RULES * 4);
            let mut order: Vec<usize> = (0..ids.len()).filter(|&g| !ids[g].is_empty()).collect();
            order.sort_by_key(|&g| std::cmp::Reverse(ids[g].len()));
            let mut kept: Vec<(usize, Vec<u32>)> = Vec::new();
            for g in order {
                let rules = std::mem::take(&mut ids[g]);
                let target = if rules.len() < small {
                    kept.iter_mut().filter(|(p, _)| p & g == g).min_by_key(|(p, _)| (p ^ g).count_ones())
                } else {
                    None
                };
                match target {
                    Some((_, into)) => into.extend(rules),
                    None => kept.push((g, rules)),
                }
            }
            let keep: Vec<Vec<u32>> = kept
                .into_iter()
                .map(|(_, mut r)| {
                    r.sort_unstable();
                    r
                })
                .collect();
            for g in keep {
                let first = g[0];
                let (tree, depth) = Tree::build(&all, g, v6);
                stats.nodes += tree.nodes.len();
                stats.leaves += tree.leaves.len();
                stats.leaf_rules += tree.rules.len() + tree.rules4.len();
                stats.max_depth = stats.max_depth.max(depth);
                stats.bytes += tree.bytes();
                out.push(Group { first, tree });
            }
            out.sort_by_key(|g| g.first);
        }
        stats.trees = groups[0].len() + groups[1].len();
        Classifier { rules: rules.to_vec(), groups, stats }
    }

    /// Classifies `keys`: `out[i]` is the first matching rule of `keys[i]`
    /// or [`NO_MATCH`].
    #[inline]
    pub fn classify_batch(&self, keys: &[Key], out: &mut [u32]) {
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            *o = self.classify(k);
        }
    }

    /// The first matching rule of `k`, or [`NO_MATCH`].
    #[inline]
    pub fn classify(&self, k: &Key) -> u32 {
        let mut best = NO_MATCH;
        for g in &self.groups[k.v6 as usize] {
            // Groups are in order of their best rule: once a match beats
            // a group's best, no later group can win.
            if g.first >= best {
                break;
            }
            best = g.tree.classify(k, best);
        }
        best
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn stats(&self) -> TreeStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::super::{linear, Action, Prefix, Range};
    use super::*;

    fn v4(a: u32, len: u8) -> Prefix {
        Prefix { addr: a as u128, len, v6: false }
    }

    #[test]
    fn matches_the_linear_scan_on_a_small_set() {
        let mut rules = Vec::new();
        for i in 0..200u32 {
            rules.push(Rule {
                src: v4(0x0a00_0000 | (i << 8), 24),
                dst: v4(0xc0a8_0000 | (i % 7), 32 - (i % 5) as u8),
                sport: Range::ANY,
                dport: Range { lo: (i * 10) as u16, hi: (i * 10 + 20) as u16 },
                proto: if i % 3 == 0 { None } else { Some(6) },
                tcp_flags: 0,
                tcp_mask: 0,
                action: Action::Permit,
            });
        }
        rules.push(Rule::any(false, Action::Deny));
        let c = Classifier::build(&rules);
        let mut x = 7u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let i = (x >> 40) as u32 % 220;
            let k = Key {
                src: (0x0a00_0000 | (i << 8) | (x as u32 & 0xff)) as u128,
                dst: (0xc0a8_0000 | ((x >> 8) as u32 & 7)) as u128,
                sport: (x >> 16) as u16,
                dport: ((x >> 32) as u16) % 2100,
                proto: if x & 1 == 0 { 6 } else { 17 },
                tcp_flags: 0,
                v6: false,
            };
            assert_eq!(c.classify(&k), linear::classify(&rules, &k), "{k:?}");
        }
        assert!(c.stats().nodes > 0);
    }
}
