//! The IPv6 FIB against a linear-scan reference: the full LINX table,
//! property-tested update sequences (with group exhaustion), bulk against
//! single lookups, and the LINX routes churned while readers look up.

use dataplane::fib::v6::{Fib6, Fib6Config, Fib6Reader, NO_ROUTE, POISON_NEXT_HOP};
use dataplane::fib::FibError;
use dataplane::rcu::Rcu;
use ports::HugepagePolicy;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// --- helpers ----------------------------------------------------------------

/// splitmix64: a small deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

fn last(prefix: u128, len: u8) -> u128 {
    prefix | !mask(len)
}

fn fib(groups: u32) -> Fib6 {
    Fib6::new(&Fib6Config { tbl8_groups: groups, hugepages: HugepagePolicy::Never }, Rcu::new()).expect("fib")
}

fn show(a: u128) -> Ipv6Addr {
    Ipv6Addr::from(a)
}

/// The reference: the routes in a list, scanned in full, longest match wins.
#[derive(Default, Clone)]
struct Linear {
    routes: Vec<(u128, u8, u32)>,
}

impl Linear {
    fn lookup(&self, a: u128) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for &(p, l, nh) in &self.routes {
            if a & mask(l) == p && !matches!(best, Some((bl, _)) if bl >= l) {
                best = Some((l, nh));
            }
        }
        best.map(|b| b.1)
    }
    fn find(&self, p: u128, l: u8) -> Option<usize> {
        self.routes.iter().position(|r| r.0 == p && r.1 == l)
    }
    /// Inserts or replaces; returns the replaced next hop.
    fn insert(&mut self, p: u128, l: u8, nh: u32) -> Option<u32> {
        match self.find(p, l) {
            Some(i) => Some(std::mem::replace(&mut self.routes[i].2, nh)),
            None => {
                self.routes.push((p, l, nh));
                None
            }
        }
    }
    fn remove(&mut self, p: u128, l: u8) -> Option<u32> {
        self.find(p, l).map(|i| self.routes.swap_remove(i).2)
    }
}

/// The same answer as [`Linear`] for large tables: one exact-match map per
/// length, probed longest first (checked against `Linear` below).
#[derive(Default)]
struct ByLength {
    maps: Vec<HashMap<u128, u32>>,
}

impl ByLength {
    fn new(routes: &[(u128, u8, u32)]) -> ByLength {
        let mut maps: Vec<HashMap<u128, u32>> = vec![HashMap::new(); 129];
        for &(p, l, nh) in routes {
            maps[usize::from(l)].insert(p, nh);
        }
        ByLength { maps }
    }
    fn lookup(&self, a: u128) -> Option<u32> {
        (0..=128u8).rev().find_map(|l| self.maps[usize::from(l)].get(&(a & mask(l))).copied())
    }
}

/// Groups a route set needs: one per (level, prefix above the level) on
/// the path of every route longer than /24.
fn groups_needed<'a>(routes: impl Iterator<Item = &'a (u128, u8, u32)>) -> usize {
    let mut keys = HashSet::new();
    for &(p, l, _) in routes {
        if l > 24 {
            let levels = (usize::from(l) - 24).div_ceil(8);
            for k in 1..=levels {
                let bits = 16 + 8 * k as u32;
                keys.insert((k, p >> (128 - bits)));
            }
        }
    }
    keys.len()
}

fn linx_path() -> PathBuf {
    // <repo>/../shared/data/routes, repo = this crate's parent.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/routes/linx-rib-ipv6-2014.txt")
}

/// The LINX IPv6 table as (prefix, len, next hop index); next-hop
/// addresses are numbered in order of appearance.
fn linx() -> Vec<(u128, u8, u32)> {
    read_linx().expect("the LINX IPv6 table (shared/ must be beside the repository)")
}

fn read_linx() -> Result<Vec<(u128, u8, u32)>, String> {
    let path = linx_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut nhs: HashMap<&str, u32> = HashMap::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("{}:{}: {what}: {line}", path.display(), n + 1);
        let mut it = line.split_whitespace();
        let (Some(pfx), Some(nh)) = (it.next(), it.next()) else {
            continue;
        };
        let (p, l) = pfx.split_once('/').ok_or_else(|| bad("no prefix length"))?;
        let p: Ipv6Addr = p.parse().map_err(|_| bad("bad prefix"))?;
        let l: u8 = l.parse().map_err(|_| bad("bad length"))?;
        let next = nhs.len() as u32;
        let nh = *nhs.entry(nh).or_insert(next);
        out.push((u128::from(p), l, nh));
    }
    if out.len() < 20_000 {
        return Err(format!("{}: only {} routes", path.display(), out.len()));
    }
    Ok(out)
}

/// Addresses that probe every route's edges: first, last, just outside.
fn edges(routes: &[(u128, u8, u32)]) -> Vec<u128> {
    let mut v = Vec::with_capacity(routes.len() * 4);
    for &(p, l, _) in routes {
        let e = last(p, l);
        v.extend([p, e, p.wrapping_sub(1), e.wrapping_add(1)]);
    }
    v
}

/// Single, bulk (AVX2 when present) and scalar bulk lookups all equal `want`.
fn check_all(r: &Fib6Reader, addrs: &[u128], want: impl Fn(u128) -> Option<u32>) {
    let mut out = vec![0; addrs.len()];
    let mut out_s = vec![0; addrs.len()];
    r.lookup_bulk(addrs, &mut out);
    r.lookup_bulk_scalar(addrs, &mut out_s);
    for (i, &a) in addrs.iter().enumerate() {
        let w = want(a);
        assert_eq!(r.lookup(a), w, "lookup {}", show(a));
        assert_eq!(out[i], w.unwrap_or(NO_ROUTE), "bulk lookup {} (position {i})", show(a));
        assert_eq!(out_s[i], w.unwrap_or(NO_ROUTE), "scalar bulk lookup {} (position {i})", show(a));
    }
}

// --- the LINX table ---------------------------------------------------------

#[test]
fn by_length_reference_agrees_with_the_linear_scan() {
    let routes = linx();
    let lin = Linear { routes: routes.clone() };
    let by = ByLength::new(&routes);
    let mut rng = Rng(7);
    let mut addrs = edges(&routes[..300]);
    for _ in 0..300 {
        let (p, l, _) = routes[rng.below(routes.len() as u64) as usize];
        addrs.push(p | (rng.u128() & !mask(l)));
        addrs.push(rng.u128());
    }
    for a in addrs {
        assert_eq!(by.lookup(a), lin.lookup(a), "{}", show(a));
    }
}

#[test]
fn linx_table_matches_the_reference() {
    let routes = linx();
    let mut f = fib(1 << 14);
    for &(p, l, nh) in &routes {
        assert_eq!(f.insert(p, l, nh), Ok(None), "{}/{l}", show(p));
    }
    assert_eq!(f.len(), routes.len());
    assert_eq!(f.tbl8_in_use() as usize, groups_needed(routes.iter()));
    let reference = ByLength::new(&routes);
    let r = f.reader();
    let mut rng = Rng(0x6_1b);
    let mut addrs = edges(&routes);
    for _ in 0..50_000 {
        let (p, l, _) = routes[rng.below(routes.len() as u64) as usize];
        addrs.push(p | (rng.u128() & !mask(l)));
        // Anywhere, and anywhere in 2000::/3 (where the routes are).
        addrs.push(rng.u128());
        addrs.push((rng.u128() >> 3) | (1 << 125));
    }
    check_all(&r, &addrs, |a| reference.lookup(a));
    let hits = addrs.iter().filter(|&&a| reference.lookup(a).is_some()).count();
    assert!(hits > addrs.len() / 3, "only {hits} of {} addresses have a route", addrs.len());

    // Every route removed in random order: the table empties completely.
    let mut order: Vec<usize> = (0..routes.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (k, &i) in order.iter().enumerate() {
        let (p, l, nh) = routes[i];
        assert_eq!(f.remove(p, l), Ok(nh));
        if k == routes.len() / 2 {
            let rest: Vec<_> = order[k + 1..].iter().map(|&j| routes[j]).collect();
            let reference = ByLength::new(&rest);
            check_all(&r, &edges(&routes), |a| reference.lookup(a));
            assert_eq!(f.tbl8_in_use() as usize, groups_needed(rest.iter()));
        }
    }
    assert!(f.is_empty());
    assert_eq!(f.tbl8_in_use(), 0);
    f.reclaim();
    check_all(&r, &addrs[..4096], |_| None);
}

// --- property tests -----------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Insert(u128, u8, u32),
    /// Replace the next hop of an existing route.
    Replace(prop::sample::Index, u32),
    Remove(prop::sample::Index),
    RemoveMissing(u128, u8),
    Reclaim,
}

/// Lengths 0..=128, mostly 16..=64, some /128.
fn len() -> impl Strategy<Value = u8> + Clone {
    prop_oneof![1 => 0..=128u8, 6 => 16..=64u8, 1 => Just(128u8), 1 => 40..=48u8]
}

/// Routes crowded around two bases so that they nest: a prefix is a base
/// with a random tail of random length flipped, then masked.
fn op(bases: [u128; 2]) -> impl Strategy<Value = Op> {
    let prefix = move |k: usize, x: u128, shift: u32, l: u8| (bases[k] ^ (x >> shift)) & mask(l);
    let addr = (0..2usize, any::<u128>(), 16..128u32, len());
    prop_oneof![
        6 => (addr.clone(), 0..6u32).prop_map(move |((k, x, s, l), nh)| Op::Insert(prefix(k, x, s, l), l, nh)),
        2 => (any::<prop::sample::Index>(), 0..6u32).prop_map(|(i, nh)| Op::Replace(i, nh)),
        4 => any::<prop::sample::Index>().prop_map(Op::Remove),
        1 => addr.prop_map(move |(k, x, s, l)| Op::RemoveMissing(prefix(k, x, s, l), l)),
        1 => Just(Op::Reclaim),
    ]
}

fn probes(reference: &Linear, bases: [u128; 2], extra: &[u128]) -> Vec<u128> {
    let mut v = edges(&reference.routes);
    v.extend(bases);
    v.extend(bases.iter().map(|b| b ^ 1));
    v.extend(bases.iter().map(|b| b ^ (1 << 100)));
    v.extend(extra);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn update_sequences_match_the_reference(
        (bases, ops) in (any::<[u128; 2]>(), 0u8..2)
            .prop_flat_map(|(b, same)| {
                // Sometimes the two bases share their top 24 bits.
                let b = if same == 1 { [b[0], (b[0] & mask(24)) | (b[1] & !mask(24))] } else { b };
                (Just(b), prop::collection::vec(op(b), 1..60))
            }),
        groups in prop_oneof![Just(4u32), Just(12u32), Just(64u32)],
        extra in prop::collection::vec(any::<u128>(), 8),
    ) {
        let mut f = fib(groups);
        let r = f.reader();
        let mut reference = Linear::default();
        for op in ops {
            match op {
                Op::Insert(p, l, nh) => {
                    let needed = groups_needed(reference.routes.iter().chain(std::iter::once(&(p, l, nh))));
                    match f.insert(p, l, nh) {
                        Ok(old) => prop_assert_eq!(old, reference.insert(p, l, nh)),
                        Err(FibError::OutOfTbl8 { groups: g }) => {
                            prop_assert_eq!(g, groups);
                            prop_assert!(needed > groups as usize, "spurious exhaustion: {} needed", needed);
                        }
                        Err(e) => prop_assert!(false, "unexpected error {}", e),
                    }
                }
                Op::Replace(i, nh) => {
                    if reference.routes.is_empty() {
                        continue;
                    }
                    let (p, l, old) = reference.routes[i.index(reference.routes.len())];
                    prop_assert_eq!(f.insert(p, l, nh), Ok(Some(old)));
                    reference.insert(p, l, nh);
                    prop_assert_eq!(f.get(p, l), Some(nh));
                }
                Op::Remove(i) => {
                    if reference.routes.is_empty() {
                        continue;
                    }
                    let (p, l, nh) = reference.routes[i.index(reference.routes.len())];
                    prop_assert_eq!(f.remove(p, l), Ok(nh));
                    reference.remove(p, l);
                }
                Op::RemoveMissing(p, l) => {
                    if reference.find(p, l).is_none() {
                        let missing = matches!(f.remove(p, l), Err(FibError::NotFound { .. }));
                        prop_assert!(missing, "removing a missing route");
                    }
                }
                Op::Reclaim => {
                    f.reclaim();
                    prop_assert_eq!(f.tbl8_pending(), 0);
                }
            }
            prop_assert_eq!(f.len(), reference.routes.len());
            prop_assert_eq!(f.tbl8_in_use() as usize, groups_needed(reference.routes.iter()));
            let addrs = probes(&reference, bases, &extra);
            let mut out = vec![0; addrs.len()];
            let mut out_s = vec![0; addrs.len()];
            r.lookup_bulk(&addrs, &mut out);
            r.lookup_bulk_scalar(&addrs, &mut out_s);
            for (i, &a) in addrs.iter().enumerate() {
                let want = reference.lookup(a);
                prop_assert_eq!(r.lookup(a), want, "lookup {}", show(a));
                prop_assert_eq!(out[i], want.unwrap_or(NO_ROUTE), "bulk lookup {}", show(a));
                prop_assert_eq!(out_s[i], want.unwrap_or(NO_ROUTE), "scalar bulk lookup {}", show(a));
            }
        }
    }
}

#[test]
fn removing_a_covering_route_under_many_more_specifics() {
    let mut f = fib(4096);
    let r = f.reader();
    let mut reference = Linear::default();
    let base: u128 = u128::from("2a02:1000::".parse::<Ipv6Addr>().expect("a"));
    let mut rng = Rng(3);
    // A /20 with 200 routes of /32../128 below it.
    f.insert(base, 20, 1).expect("cover");
    reference.insert(base, 20, 1);
    for i in 0..200u32 {
        let l = [24u8, 29, 32, 36, 40, 44, 48, 56, 64, 127, 128][rng.below(11) as usize];
        let p = (base | (rng.u128() >> 20)) & mask(l);
        if reference.find(p, l).is_none() {
            f.insert(p, l, 10 + i).expect("more-specific");
            reference.insert(p, l, 10 + i);
        }
    }
    let addrs = probes(&reference, [base, base], &[]);
    check_all(&r, &addrs, |a| reference.lookup(a));
    assert_eq!(f.remove(base, 20), Ok(1));
    reference.remove(base, 20);
    check_all(&r, &addrs, |a| reference.lookup(a));
    // And back, with another next hop, then replaced.
    f.insert(base, 20, 2).expect("re-add");
    reference.insert(base, 20, 2);
    assert_eq!(f.insert(base, 20, 3), Ok(Some(2)));
    reference.insert(base, 20, 3);
    check_all(&r, &addrs, |a| reference.lookup(a));
    assert_eq!(f.tbl8_in_use() as usize, groups_needed(reference.routes.iter()));
}

#[test]
fn exhaustion_leaves_the_table_unchanged() {
    let routes = linx();
    // Fewer groups than the table needs: some inserts must fail.
    let mut f = fib(2000);
    let r = f.reader();
    let mut reference = Linear::default();
    let mut failed = 0;
    for &(p, l, nh) in routes.iter().take(6000) {
        match f.insert(p, l, nh) {
            Ok(None) => {
                reference.insert(p, l, nh);
            }
            Err(FibError::OutOfTbl8 { groups: 2000 }) => failed += 1,
            other => assert_eq!(other, Ok(None), "{}/{l}", show(p)),
        }
    }
    assert!(failed > 0, "2000 groups were enough for 6000 LINX routes?");
    assert_eq!(f.len(), reference.routes.len());
    assert_eq!(f.tbl8_in_use() as usize, groups_needed(reference.routes.iter()));
    let by = ByLength::new(&reference.routes);
    check_all(&r, &edges(&routes[..6000]), |a| by.lookup(a));
}

// --- churn while reading ----------------------------------------------------

/// One writer removes and re-inserts half of the LINX routes over and over
/// (reclaiming groups every few hundred updates, so groups are poisoned
/// and reused), while two readers look up: addresses that only unchanging
/// routes cover must get exactly the reference's answer, the others one of
/// the next hops of the routes covering them or no route, and never the
/// poison of a reclaimed group.
#[test]
fn churn_while_reading() {
    let mut routes = linx();
    // Unique next hops, so an answer names the route that gave it.
    for (i, r) in routes.iter_mut().enumerate() {
        r.2 = i as u32;
    }
    let (stable, churn): (Vec<_>, Vec<_>) = routes.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let stable: Vec<_> = stable.into_iter().map(|(_, r)| *r).collect();
    let churn: Vec<_> = churn.into_iter().map(|(_, r)| *r).collect();
    let by_stable = ByLength::new(&stable);
    let by_churn = ByLength::new(&churn);

    // (address, exact answer) for addresses no churn route covers, and
    // (address, acceptable answers) for the others.
    let mut rng = Rng(11);
    let mut exact: Vec<(u128, u32)> = Vec::new();
    let mut loose: Vec<(u128, Vec<u32>)> = Vec::new();
    let all = Linear { routes: routes.clone() };
    for &(p, l, _) in routes.iter().step_by(3) {
        for a in [p | (rng.u128() & !mask(l)), last(p, l).wrapping_add(1), (rng.u128() >> 3) | (1 << 125)] {
            if by_churn.lookup(a).is_none() {
                exact.push((a, by_stable.lookup(a).unwrap_or(NO_ROUTE)));
            } else if loose.len() < 2000 {
                let ok: Vec<u32> = all.routes.iter().filter(|r| a & mask(r.1) == r.0).map(|r| r.2).collect();
                loose.push((a, ok));
            }
        }
    }
    assert!(exact.len() > 5000 && loose.len() > 1000, "{} exact, {} loose", exact.len(), loose.len());
    let exact = Arc::new(exact);
    let loose = Arc::new(loose);

    let rcu = Rcu::new();
    // About what the table needs: reinserts must reuse reclaimed groups.
    let mut f =
        Fib6::new(&Fib6Config { tbl8_groups: 9000, hugepages: HugepagePolicy::Never }, rcu.clone()).expect("fib");
    for &(p, l, nh) in &routes {
        f.insert(p, l, nh).expect("initial load");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let (reader, r, stop, lookups, exact, loose) =
                (rcu.register(), f.reader(), stop.clone(), lookups.clone(), exact.clone(), loose.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(100 + t);
                let mut addrs = [0u128; 64];
                let mut out = [0u32; 64];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Bulk: a mix of exact and loose addresses.
                    // (is exact, index into exact or loose)
                    let mut want = [(false, 0usize); 64];
                    for (k, (a, w)) in addrs.iter_mut().zip(want.iter_mut()).enumerate() {
                        if k % 4 == 0 {
                            let j = rng.below(loose.len() as u64) as usize;
                            *a = loose[j].0;
                            *w = (false, j);
                        } else {
                            let j = rng.below(exact.len() as u64) as usize;
                            *a = exact[j].0;
                            *w = (true, j);
                        }
                    }
                    let len = 1 + rng.below(64) as usize;
                    r.lookup_bulk(&addrs[..len], &mut out[..len]);
                    for k in 0..len {
                        let o = out[k];
                        assert_ne!(o, POISON_NEXT_HOP, "read a reclaimed group");
                        match want[k] {
                            (true, j) => assert_eq!(o, exact[j].1, "bulk {}", show(addrs[k])),
                            (false, j) => {
                                let ok = &loose[j].1;
                                assert!(o == NO_ROUTE || ok.contains(&o), "bulk {} -> {o}", show(addrs[k]));
                            }
                        }
                    }
                    // Single lookups.
                    for _ in 0..192 {
                        let j = rng.below(exact.len() as u64) as usize;
                        let got = r.lookup(exact[j].0).unwrap_or(NO_ROUTE);
                        assert_ne!(got, POISON_NEXT_HOP, "read a reclaimed group");
                        assert_eq!(got, exact[j].1, "lookup {}", show(exact[j].0));
                    }
                    n += len as u64 + 192;
                    reader.quiescent();
                }
                reader.offline();
                lookups.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    let t0 = Instant::now();
    let mut rounds = 0;
    let mut updates = 0u64;
    while rounds < 2 || (rounds < 6 && t0.elapsed() < Duration::from_secs(4)) {
        // Every other round reclaims after every few removals: a group is
        // then poisoned right after its unlink, while readers may still be
        // inside a lookup that loaded the old link (what RCU must cover).
        let every = if rounds % 2 == 0 { 500 } else { 3 };
        for (k, &(p, l, nh)) in churn.iter().enumerate() {
            assert_eq!(f.remove(p, l), Ok(nh));
            if k % every == every - 1 {
                f.reclaim();
            }
        }
        for &(p, l, nh) in &churn {
            assert_eq!(f.insert(p, l, nh), Ok(None));
        }
        updates += 2 * churn.len() as u64;
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        t.join().expect("reader");
    }
    assert!(f.tbl8_reclaimed() > 1000, "only {} groups reclaimed", f.tbl8_reclaimed());
    assert!(lookups.load(Ordering::Relaxed) > 10_000, "{} lookups", lookups.load(Ordering::Relaxed));
    eprintln!(
        "churn: {rounds} rounds, {updates} updates, {} lookups, {} groups reclaimed, {} synchronizes",
        lookups.load(Ordering::Relaxed),
        f.tbl8_reclaimed(),
        f.synchronizes()
    );
    // Afterwards the table is the full LINX table again.
    let by = ByLength::new(&routes);
    check_all(&f.reader(), &edges(&routes), |a| by.lookup(a));
}
