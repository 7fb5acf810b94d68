//! Equal-cost multipath: weighted bucket tables and the flow hash that
//! picks a bucket.
//!
//! A group's members are expanded into a power-of-two table of buckets,
//! each naming one member, in proportion to the members' weights (VPP's
//! load-balance objects do the same). A packet's flow hash selects a
//! bucket, so one flow always takes one path, and a lookup is one masked
//! index. The hash covers the 5-tuple; the symmetric variant orders the
//! two endpoints first, so both directions of a flow take the same path
//! (what stateful middleboxes behind the router need).

use crate::wire::{ip_proto, Frag, L3Kind, Layers};

/// Most members a group can have.
pub const MAX_MEMBERS: usize = 64;
/// Buckets per group: enough for weights to be honoured within 1/1024.
pub const BUCKETS: usize = 1024;

/// Why a group was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EcmpError {
    Empty,
    TooManyMembers(usize),
    ZeroWeight,
}

impl std::fmt::Display for EcmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EcmpError::Empty => write!(f, "an ECMP group needs at least one member"),
            EcmpError::TooManyMembers(n) => write!(f, "{n} members exceed the maximum of {MAX_MEMBERS}"),
            EcmpError::ZeroWeight => write!(f, "member weights must be at least 1"),
        }
    }
}

impl std::error::Error for EcmpError {}

/// A group as the fast path sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcmpGroup {
    /// Next-hop index per bucket.
    buckets: Box<[u32]>,
    pub symmetric: bool,
}

impl EcmpGroup {
    /// Builds the bucket table for `(next hop, weight)` members.
    pub fn new(members: &[(u32, u32)], symmetric: bool) -> Result<EcmpGroup, EcmpError> {
        if members.is_empty() {
            return Err(EcmpError::Empty);
        }
        if members.len() > MAX_MEMBERS {
            return Err(EcmpError::TooManyMembers(members.len()));
        }
        if members.iter().any(|m| m.1 == 0) {
            return Err(EcmpError::ZeroWeight);
        }
        let total: u64 = members.iter().map(|m| m.1 as u64).sum();
        // Largest-remainder apportionment of BUCKETS over the weights.
        let mut counts: Vec<(usize, u64, u64)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let exact = m.1 as u64 * BUCKETS as u64;
                (i, exact / total, exact % total)
            })
            .collect();
        let given: u64 = counts.iter().map(|c| c.1).sum();
        let mut by_rem: Vec<usize> = (0..counts.len()).collect();
        by_rem.sort_by_key(|&i| std::cmp::Reverse((counts[i].2, std::cmp::Reverse(i))));
        for &i in by_rem.iter().take((BUCKETS as u64 - given) as usize) {
            counts[i].1 += 1;
        }
        // Interleave members over the buckets (not runs), so adding or
        // removing weight moves few flows and neighbours spread evenly.
        let mut buckets = vec![0u32; BUCKETS];
        let mut fill: Vec<(u64, usize)> = Vec::new();
        for (i, n, _) in &counts {
            for k in 0..*n {
                // Ideal position of the k-th bucket of member i.
                fill.push(((2 * k + 1) * BUCKETS as u64 / (2 * n.max(&1)), *i));
            }
        }
        fill.sort_unstable();
        for (slot, (_, i)) in buckets.iter_mut().zip(fill) {
            *slot = members[i].0;
        }
        Ok(EcmpGroup { buckets: buckets.into_boxed_slice(), symmetric })
    }

    /// The next hop for a flow hash.
    #[inline(always)]
    pub fn pick(&self, hash: u32) -> u32 {
        self.buckets[(hash as usize) & (BUCKETS - 1)]
    }

    /// Buckets per member next hop, for display and tests.
    pub fn shares(&self) -> Vec<(u32, usize)> {
        let mut v: Vec<(u32, usize)> = Vec::new();
        for &b in self.buckets.iter() {
            match v.iter_mut().find(|e| e.0 == b) {
                Some(e) => e.1 += 1,
                None => v.push((b, 1)),
            }
        }
        v
    }
}

#[inline(always)]
fn mix(mut h: u64) -> u32 {
    // splitmix64 finalizer: full avalanche, a few cycles.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h ^ (h >> 32)) as u32
}

#[inline(always)]
fn ports(d: &[u8], l: &Layers) -> (u16, u16) {
    if l.frag != Frag::None || l.l4_off == 0 || !matches!(l.l4_proto, ip_proto::TCP | ip_proto::UDP) {
        return (0, 0);
    }
    let o = l.l4_off as usize;
    match d.get(o..o + 4) {
        Some(p) => (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])),
        None => (0, 0),
    }
}

/// Hash of the 5-tuple of a parsed frame (addresses only for fragments and
/// protocols without ports). `symmetric`: both directions hash alike.
#[inline]
pub fn flow_hash(d: &[u8], l: &Layers, symmetric: bool) -> u32 {
    let o = l.l3_off as usize;
    let (sp, dp) = ports(d, l);
    let (a, b) = match l.l3 {
        L3Kind::Ipv4 => match d.get(o + 12..o + 20) {
            Some(x) => (
                u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as u64,
                u32::from_be_bytes([x[4], x[5], x[6], x[7]]) as u64,
            ),
            None => return 0,
        },
        L3Kind::Ipv6 => match d.get(o + 8..o + 40) {
            Some(x) => {
                let w = |i: usize| {
                    u64::from_be_bytes([x[i], x[i + 1], x[i + 2], x[i + 3], x[i + 4], x[i + 5], x[i + 6], x[i + 7]])
                };
                (w(0) ^ w(8).rotate_left(17), w(16) ^ w(24).rotate_left(17))
            }
            None => return 0,
        },
        _ => return 0,
    };
    let (ea, eb) = ((a << 16) | sp as u64, (b << 16) | dp as u64);
    let (x, y) = if symmetric && ea > eb { (eb, ea) } else { (ea, eb) };
    mix(x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ y.rotate_left(29) ^ ((l.l4_proto as u64) << 56))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_frame;

    fn udp4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        f[12] = 8;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&28u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sp.to_be_bytes());
        f[36..38].copy_from_slice(&dp.to_be_bytes());
        f[38..40].copy_from_slice(&8u16.to_be_bytes());
        let c = crate::wire::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn h(f: &[u8], sym: bool) -> u32 {
        let l = parse_frame(f, true).expect("valid");
        flow_hash(f, &l, sym)
    }

    #[test]
    fn weights_are_honoured_exactly() {
        let g = EcmpGroup::new(&[(7, 1), (8, 2), (9, 1)], false).expect("group");
        let mut s = g.shares();
        s.sort_unstable();
        assert_eq!(s, vec![(7, 256), (8, 512), (9, 256)]);
        let g = EcmpGroup::new(&[(1, 1), (2, 1), (3, 1)], false).expect("group");
        let s: Vec<usize> = g.shares().iter().map(|x| x.1).collect();
        assert_eq!(s.iter().sum::<usize>(), BUCKETS);
        assert!(s.iter().all(|&n| n == 341 || n == 342), "{s:?}");
    }

    #[test]
    fn bad_groups_are_refused() {
        assert_eq!(EcmpGroup::new(&[], false), Err(EcmpError::Empty));
        assert_eq!(EcmpGroup::new(&[(1, 0)], false), Err(EcmpError::ZeroWeight));
        let many: Vec<(u32, u32)> = (0..65).map(|i| (i, 1)).collect();
        assert_eq!(EcmpGroup::new(&many, false), Err(EcmpError::TooManyMembers(65)));
    }

    #[test]
    fn flows_spread_in_proportion_and_stick() {
        let g = EcmpGroup::new(&[(1, 1), (2, 3)], false).expect("group");
        let mut n = [0usize; 3];
        for i in 0..20_000u32 {
            let f = udp4([10, 0, (i >> 8) as u8, i as u8], [10, 1, 0, 1], 1024 + (i % 50000) as u16, 80);
            let a = g.pick(h(&f, false));
            assert_eq!(a, g.pick(h(&f, false)), "one flow, one path");
            n[a as usize] += 1;
        }
        let share = n[2] as f64 / 20_000.0;
        assert!((0.72..0.78).contains(&share), "weight 3 of 4 took {share}");
    }

    #[test]
    fn symmetric_hash_matches_both_directions() {
        let mut same = 0;
        for i in 0..1000u16 {
            let fwd = udp4([10, 0, 0, 1], [192, 0, 2, (i % 200) as u8], 1000 + i, 53);
            let rev = udp4([192, 0, 2, (i % 200) as u8], [10, 0, 0, 1], 53, 1000 + i);
            assert_eq!(h(&fwd, true), h(&rev, true));
            if h(&fwd, false) == h(&rev, false) {
                same += 1;
            }
        }
        assert!(same < 10, "the plain hash tells directions apart");
    }
}
