//! The IPv4 FIB against the linear-scan reference: random Internet-like
//! tables, property-tested update sequences, tbl8 exhaustion, and the LINX
//! update stream replayed while readers look up addresses.

use dataplane::fib::reference::Reference;
use dataplane::fib::v4::{Fib4, Fib4Config, Fib4Reader, NO_ROUTE, POISON_NEXT_HOP};
use dataplane::fib::FibError;
use dataplane::rcu::Rcu;
use ports::HugepagePolicy;
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

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
    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn last(prefix: u32, len: u8) -> u32 {
    prefix | !mask(len)
}

fn fib(groups: u32) -> Fib4 {
    Fib4::new(&Fib4Config { tbl8_groups: groups, hugepages: HugepagePolicy::Never }, Rcu::new()).expect("fib")
}

/// A prefix length drawn like the Internet's IPv4 table: mostly /24,
/// much of /16../23, some /25../32, a few short ones.
fn internet_len(rng: &mut Rng) -> u8 {
    // (length, weight in 1/10000)
    const W: [(u8, u64); 26] = [
        (0, 1),
        (4, 1),
        (7, 2),
        (8, 6),
        (10, 10),
        (12, 20),
        (13, 30),
        (14, 50),
        (15, 80),
        (16, 250),
        (17, 150),
        (18, 250),
        (19, 450),
        (20, 650),
        (21, 700),
        (22, 1100),
        (23, 900),
        (24, 4700),
        (25, 80),
        (26, 80),
        (27, 60),
        (28, 60),
        (29, 60),
        (30, 50),
        (31, 20),
        (32, 141),
    ];
    let total: u64 = W.iter().map(|w| w.1).sum();
    let mut x = rng.below(total);
    for (len, w) in W {
        if x < w {
            return len;
        }
        x -= w;
    }
    24
}

/// `n` distinct random routes with Internet-like lengths.
fn random_routes(rng: &mut Rng, n: usize) -> Vec<(u32, u8, u32)> {
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = internet_len(rng);
        let p = rng.u32() & mask(len);
        if seen.insert((p, len), ()).is_none() {
            out.push((p, len, rng.below(1 << 20) as u32));
        }
    }
    out
}

/// Addresses worth checking for a route set: each prefix's first and last
/// address and their neighbours, plus random addresses and random
/// addresses inside routes.
fn probes(rng: &mut Rng, routes: &[(u32, u8, u32)], random: usize) -> Vec<u32> {
    let mut v = Vec::with_capacity(routes.len() * 5 + random * 2);
    for &(p, l, _) in routes {
        let e = last(p, l);
        v.extend([p, e, p.wrapping_sub(1), e.wrapping_add(1), p | (rng.u32() & !mask(l))]);
    }
    for _ in 0..random {
        v.push(rng.u32());
        if !routes.is_empty() {
            let (p, l, _) = routes[rng.below(routes.len() as u64) as usize];
            v.push(p | (rng.u32() & !mask(l)));
        }
    }
    v
}

fn check_all(r: &Fib4Reader, reference: &Reference<u32>, addrs: &[u32]) {
    let mut out = vec![0; addrs.len()];
    r.lookup_bulk(addrs, &mut out);
    for (&a, &o) in addrs.iter().zip(&out) {
        let want = reference.lookup_by_length(a);
        assert_eq!(r.lookup(a), want, "lookup {}", Ipv4Addr::from(a));
        assert_eq!(o, want.unwrap_or(NO_ROUTE), "bulk lookup {}", Ipv4Addr::from(a));
    }
}

#[test]
fn random_tables_match_the_reference() {
    for seed in 1..=2u64 {
        let mut rng = Rng(seed);
        let routes = random_routes(&mut rng, 10_000);
        let mut f = fib(4096);
        let mut reference = Reference::new();
        for &(p, l, nh) in &routes {
            assert_eq!(f.insert(p, l, nh), Ok(None));
            reference.insert(p, l, nh);
        }
        assert_eq!(f.len(), routes.len());
        let addrs = probes(&mut rng, &routes, 50_000);
        // The fast reference agrees with the linear scan itself.
        for &a in addrs.iter().step_by(97) {
            assert_eq!(reference.lookup(a), reference.lookup_by_length(a));
        }
        let r = f.reader();
        check_all(&r, &reference, &addrs);

        // Remove half the routes in random order (covering routes under
        // more-specifics included), then re-insert them with new next hops.
        let mut order: Vec<usize> = (0..routes.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let gone = &order[..routes.len() / 2];
        for &i in gone {
            let (p, l, nh) = routes[i];
            assert_eq!(f.remove(p, l), Ok(nh));
            reference.remove(p, l);
        }
        f.reclaim();
        check_all(&r, &reference, &addrs);
        for &i in gone {
            let (p, l, nh) = routes[i];
            assert_eq!(f.insert(p, l, nh ^ 1), Ok(None));
            reference.insert(p, l, nh ^ 1);
        }
        // Replace every next hop once more.
        for &(p, l, nh) in routes.iter().step_by(3) {
            let cur = reference.get(p, l).expect("present");
            assert_eq!(f.insert(p, l, nh + 7), Ok(Some(cur)));
            reference.insert(p, l, nh + 7);
        }
        check_all(&r, &reference, &addrs);
        assert_eq!(f.len(), routes.len());
        // Every /24 with a route longer than /24 holds exactly one group.
        let groups: std::collections::HashSet<u32> = routes.iter().filter(|r| r.1 > 24).map(|r| r.0 >> 8).collect();
        assert_eq!(f.tbl8_in_use() as usize, groups.len());
    }
}

#[test]
fn bulk_lookup_equals_single_lookups() {
    let mut rng = Rng(7);
    let routes = random_routes(&mut rng, 5_000);
    let mut f = fib(1024);
    for &(p, l, nh) in &routes {
        f.insert(p, l, nh).expect("insert");
    }
    let r = f.reader();
    let addrs = probes(&mut rng, &routes, 10_000);
    for n in [0, 1, 2, 63, 64, 65, 127, 1000, addrs.len()] {
        let mut out = vec![0xdead_beef; n];
        r.lookup_bulk(&addrs[..n], &mut out);
        for (&a, &o) in addrs[..n].iter().zip(&out) {
            assert_eq!(o, r.lookup(a).unwrap_or(NO_ROUTE), "n={n} addr {}", Ipv4Addr::from(a));
        }
    }
    // A shorter output slice bounds the work.
    let mut out = vec![0; 10];
    r.lookup_bulk(&addrs[..100], &mut out);
    assert_eq!(out[9], r.lookup(addrs[9]).unwrap_or(NO_ROUTE));
}

#[test]
fn exhausted_tbl8_pool_fails_cleanly_and_recovers_after_reclaim() {
    let mut f = fib(2);
    let r = f.reader();
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    f.insert(base, 16, 1).expect("/16");
    f.insert(base | 0x0080, 25, 2).expect("group 1");
    f.insert(base | 0x0100, 30, 3).expect("group 2");
    let snapshot: Vec<Option<u32>> = (0..1u32 << 16).map(|i| r.lookup(base | i)).collect();
    let err = f.insert(base | 0x0200, 32, 4);
    assert_eq!(err, Err(FibError::OutOfTbl8 { groups: 2 }));
    assert!(err.expect_err("error").to_string().contains("unchanged"));
    // Nothing changed: routes, counters, and every lookup in the /16.
    assert_eq!((f.len(), f.get(base | 0x0200, 32), f.tbl8_in_use()), (3, None, 2));
    let now: Vec<Option<u32>> = (0..1u32 << 16).map(|i| r.lookup(base | i)).collect();
    assert!(now == snapshot, "a failed insert changed lookups");
    // Routes that need no new group still go in.
    f.insert(base | 0x00c0, 26, 5).expect("existing group");
    f.insert(base | 0x0300, 24, 6).expect("/24 needs no group");

    // Free one group: it collapses, waits as pending, and is reclaimed
    // explicitly after a grace period that waits for a registered reader.
    let rcu = Rcu::new();
    let mut f = Fib4::new(&Fib4Config { tbl8_groups: 1, hugepages: HugepagePolicy::Never }, rcu.clone()).expect("fib");
    let r = f.reader();
    f.insert(base | 0x0080, 25, 2).expect("group");
    assert_eq!(f.insert(base | 0x0100, 25, 3), Err(FibError::OutOfTbl8 { groups: 1 }));
    f.remove(base | 0x0080, 25).expect("remove");
    assert_eq!((f.tbl8_in_use(), f.tbl8_pending()), (0, 1));
    let reader = rcu.register();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        reader.quiescent();
        reader
    });
    let t0 = Instant::now();
    assert_eq!(f.reclaim(), 1);
    assert!(t0.elapsed() >= Duration::from_millis(90), "reclaim did not wait for the reader");
    drop(t.join().expect("reader thread"));
    assert_eq!(f.insert(base | 0x0100, 25, 3), Ok(None));
    assert_eq!(r.lookup(base | 0x0100), Some(3));
    assert_eq!(r.lookup(base | 0x0080), None);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u32, u8, u32),
    Remove(prop::sample::Index),
    RemoveMissing(u32, u8),
    Reclaim,
}

/// Updates crowded into 10.0.0.0/22 (four /24s) so that routes overlap,
/// tbl8 groups fill, collapse and get reused, and the 3-group pool runs out.
fn op() -> impl Strategy<Value = Op> {
    let len = prop::sample::select(vec![8u8, 12, 16, 20, 22, 23, 24, 24, 25, 26, 27, 28, 29, 30, 31, 32, 32]);
    let prefix = |x: u32, l: u8| (0x0a00_0000 | (x & 0x3ff)) & mask(l);
    prop_oneof![
        6 => (any::<u32>(), len.clone(), 0..6u32).prop_map(move |(x, l, nh)| Op::Insert(prefix(x, l), l, nh)),
        4 => any::<prop::sample::Index>().prop_map(Op::Remove),
        1 => (any::<u32>(), len).prop_map(move |(x, l)| Op::RemoveMissing(prefix(x, l), l)),
        1 => Just(Op::Reclaim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn update_sequences_match_the_reference(ops in prop::collection::vec(op(), 1..40)) {
        let mut f = fib(3);
        let r = f.reader();
        let mut reference = Reference::new();
        // Every address of the /22 and its neighbours, plus the /8's ends.
        let mut addrs: Vec<u32> = (0x0a00_0000 - 2..=0x0a00_0400 + 2).collect();
        addrs.extend([0x0a00_0000 - 0x10000, 0x0aff_ffff, 0x0b00_0000, 0x09ff_ffff]);
        for op in ops {
            match op {
                Op::Insert(p, l, nh) => {
                    let groups_needed: std::collections::HashSet<u32> = reference
                        .routes()
                        .iter()
                        .chain(std::iter::once(&(p, l, nh)))
                        .filter(|r| r.1 > 24)
                        .map(|r| r.0 >> 8)
                        .collect();
                    match f.insert(p, l, nh) {
                        Ok(old) => prop_assert_eq!(old, reference.insert(p, l, nh)),
                        Err(FibError::OutOfTbl8 { groups: 3 }) => {
                            prop_assert!(l > 24 && groups_needed.len() > 3, "spurious exhaustion");
                        }
                        Err(e) => prop_assert!(false, "unexpected error {}", e),
                    }
                }
                Op::Remove(i) => {
                    if reference.is_empty() {
                        continue;
                    }
                    let (p, l, nh) = reference.routes()[i.index(reference.len())];
                    prop_assert_eq!(f.remove(p, l), Ok(nh));
                    reference.remove(p, l);
                }
                Op::RemoveMissing(p, l) => {
                    if reference.get(p, l).is_none() {
                        let missing = matches!(f.remove(p, l), Err(FibError::NotFound { .. }));
                        prop_assert!(missing, "removing a missing route");
                    }
                }
                Op::Reclaim => {
                    f.reclaim();
                    prop_assert_eq!(f.tbl8_pending(), 0);
                }
            }
            prop_assert_eq!(f.len(), reference.len());
            let live: std::collections::HashSet<u32> =
                reference.routes().iter().filter(|r| r.1 > 24).map(|r| r.0 >> 8).collect();
            prop_assert_eq!(f.tbl8_in_use() as usize, live.len());
            let mut out = vec![0; addrs.len()];
            r.lookup_bulk(&addrs, &mut out);
            for (&a, &o) in addrs.iter().zip(&out) {
                let want = reference.lookup(a);
                prop_assert_eq!(r.lookup(a), want, "lookup {}", Ipv4Addr::from(a));
                prop_assert_eq!(o, want.unwrap_or(NO_ROUTE), "bulk lookup {}", Ipv4Addr::from(a));
            }
        }
    }
}

// --- route churn while reading ---------------------------------------------

/// `<repo>/../shared/data/routes/<name>`; CI clones the repository with
/// `shared/` beside it, as on the development machine.
fn shared_routes(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/routes").join(name);
    assert!(
        p.is_file(),
        "{} is missing: the shared data directory must sit beside the repository (../shared)",
        p.display()
    );
    p
}

/// One FIB mutation; version `i` of the table is the state after the
/// first `i` of them.
#[derive(Clone, Copy, Debug)]
enum Update {
    Insert(u32, u8, u32),
    Remove(u32, u8),
    /// A refused insert (out of tbl8 groups): the table did not change.
    Nothing,
}

/// A reader's observation: the sequence number before, the address, the
/// result, the sequence number after.
#[derive(Clone, Copy)]
struct Sample {
    before: u32,
    after: u32,
    addr: u32,
    got: u32,
}

#[derive(Default, Debug)]
struct Replay {
    announces: usize,
    withdraws: usize,
    unknown_withdraws: usize,
    replaced: usize,
    synthetic: usize,
    refused: usize,
}

/// Replays the LINX IPv4 update stream (2014) into a FIB while two reader
/// threads look up addresses in a tight loop, and proves every lookup
/// right.
///
/// **Versions.** Each FIB mutation is numbered `i = 1, 2, ...`; version
/// `i` is the table after mutation `i`. The writer publishes a sequence
/// number as a seqlock does: `2i-1` (Relaxed store, then a Release fence)
/// before it applies mutation `i`, `2i` (Release store) after. A reader
/// loads the sequence (Acquire), looks up, issues an Acquire fence and loads
/// the sequence again. If the lookup read any entry that mutation `j`
/// wrote, the writer's fence after `2j-1` synchronizes with the reader's
/// fence, so the second load sees at least `2j-1`; and everything mutation
/// `i` wrote before `2i` is visible to a reader whose first load saw `2i`.
/// So the result must be the reference answer at *some* version in
/// `[before / 2, ceil(after / 2)]` — usually one or two versions; longer
/// when the reader was preempted mid-lookup, which only widens what is
/// accepted to what was really possible.
///
/// **Checking.** Readers record their observations (every one, or on a
/// long run an evenly thinned subset of at most 2^19 per reader); after the
/// run the test replays the same mutations into the reference, version by
/// version, and checks each observation against the versions its window
/// covers. A `None` is accepted only where the reference had no route, so
/// nothing is dropped except what was really withdrawn. (The reference's
/// per-length lookup is checked against its linear scan in
/// `random_tables_match_the_reference`.)
///
/// **tbl8 churn.** LINX carries almost no routes longer than /24, so with
/// the announcements on every fourth line of the file the writer also adds
/// a more-specific (/25 to /32) inside the announced prefix, and withdraws
/// the oldest of them once more than 8 are live; with a 12-group
/// pool, groups are created, collapsed, reclaimed after `synchronize` (also
/// explicitly every 64 updates) and reused all through the run. Reclaimed
/// groups are poisoned ([`POISON_NEXT_HOP`]): a reader that ever read a
/// freed group would return that value, which the test rejects.
#[test]
fn linx_update_churn_while_reading() {
    let text = std::fs::read_to_string(shared_routes("linx-updates-ipv4-2014.txt")).expect("read LINX updates");
    // Parse: `unix-time a|w prefix/len next-hop`.
    let mut nh_ids: HashMap<Ipv4Addr, u32> = HashMap::new();
    let mut stream = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 4, "line {}: {line:?}", n + 1);
        let (p, l) = f[2].split_once('/').expect("prefix/len");
        let p = u32::from(p.parse::<Ipv4Addr>().expect("prefix"));
        let l: u8 = l.parse().expect("length");
        let nh_addr: Ipv4Addr = f[3].parse().expect("next hop");
        let next = nh_ids.len() as u32;
        let nh = *nh_ids.entry(nh_addr).or_insert(next);
        stream.push((f[1] == "a", p & mask(l), l, nh));
    }
    assert!(stream.len() > 20_000, "{} updates", stream.len());
    // Addresses the readers probe: inside the churned prefixes (half) and
    // anywhere (half).
    let churned: Arc<Vec<(u32, u8)>> = Arc::new(stream.iter().map(|&(_, p, l, _)| (p, l)).collect());

    let rcu = Rcu::new();
    let mut fib =
        Fib4::new(&Fib4Config { tbl8_groups: 12, hugepages: HugepagePolicy::Never }, rcu.clone()).expect("fib");
    let seq = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(3));
    // Samples kept per reader: when full, every other one is dropped and
    // the recording stride doubles, so they stay spread over the whole run.
    const MAX_SAMPLES: usize = 1 << 19;

    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let (r, reader, seq, done, start, churned) =
                (fib.reader(), rcu.register(), seq.clone(), done.clone(), start.clone(), churned.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x5eed + t);
                let mut samples = Vec::with_capacity(MAX_SAMPLES);
                let (mut lookups, mut poisoned, mut stride) = (0u64, 0u64, 1u64);
                start.wait();
                while !done.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let addr = if rng.next() & 1 == 0 {
                            let (p, l) = churned[rng.below(churned.len() as u64) as usize];
                            p | (rng.u32() & !mask(l))
                        } else {
                            rng.u32()
                        };
                        let before = seq.load(Ordering::Acquire);
                        let got = r.lookup(addr);
                        fence(Ordering::Acquire);
                        let after = seq.load(Ordering::Relaxed);
                        let got = got.unwrap_or(NO_ROUTE);
                        poisoned += u64::from(got == POISON_NEXT_HOP);
                        if lookups % stride == 0 {
                            if samples.len() == MAX_SAMPLES {
                                let mut keep = false;
                                samples.retain(|_| {
                                    keep = !keep;
                                    keep
                                });
                                stride *= 2;
                            }
                            samples.push(Sample { before: before as u32, after: after as u32, addr, got });
                        }
                        lookups += 1;
                    }
                    reader.quiescent();
                }
                (samples, lookups, poisoned)
            })
        })
        .collect();

    // The writer (this thread).
    start.wait();
    let mut log: Vec<Update> = Vec::new();
    let mut stats = Replay::default();
    let mut live_extra: VecDeque<(u32, u8)> = VecDeque::new();
    let mut rng = Rng(99);
    let mut version = 0u64;
    let mut apply = |fib: &mut Fib4, u: Update, log: &mut Vec<Update>| -> Update {
        version += 1;
        seq.store(2 * version - 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let done = match u {
            Update::Insert(p, l, nh) => match fib.insert(p, l, nh) {
                Ok(_) => u,
                Err(e) => {
                    assert!(matches!(e, FibError::OutOfTbl8 { .. }), "insert {}/{l}: {e}", Ipv4Addr::from(p));
                    Update::Nothing
                }
            },
            Update::Remove(p, l) => {
                fib.remove(p, l).expect("remove a known route");
                u
            }
            Update::Nothing => u,
        };
        seq.store(2 * version, Ordering::Release);
        log.push(done);
        done
    };
    let t0 = Instant::now();
    for (i, &(announce, p, l, nh)) in stream.iter().enumerate() {
        if announce {
            stats.announces += 1;
            if fib.get(p, l).is_some() {
                stats.replaced += 1;
            }
            if let Update::Nothing = apply(&mut fib, Update::Insert(p, l, nh), &mut log) {
                stats.refused += 1;
            }
            if i % 4 == 0 && l <= 24 {
                let xl = 25 + (rng.below(8) as u8);
                let xp = (p | (rng.u32() & !mask(l))) & mask(xl);
                if fib.get(xp, xl).is_none() {
                    stats.synthetic += 1;
                    if let Update::Nothing = apply(&mut fib, Update::Insert(xp, xl, nh), &mut log) {
                        stats.refused += 1;
                    } else {
                        live_extra.push_back((xp, xl));
                    }
                }
                if live_extra.len() > 8 {
                    if let Some((xp, xl)) = live_extra.pop_front() {
                        apply(&mut fib, Update::Remove(xp, xl), &mut log);
                    }
                }
            }
        } else {
            stats.withdraws += 1;
            if fib.get(p, l).is_some() {
                apply(&mut fib, Update::Remove(p, l), &mut log);
            } else {
                stats.unknown_withdraws += 1;
            }
        }
        if i % 64 == 63 {
            fib.reclaim();
        }
    }
    let writer_time = t0.elapsed();
    // Let the readers see the final state for a moment, then stop them.
    std::thread::sleep(Duration::from_millis(20));
    done.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    let (mut lookups, mut poisoned) = (0u64, 0u64);
    for t in readers {
        let (s, n, p) = t.join().expect("reader thread");
        samples.extend(s);
        lookups += n;
        poisoned += p;
    }
    assert_eq!(poisoned, 0, "a reader read a reclaimed tbl8 group");

    // Check every observation against the reference at the versions its
    // window allows.
    let versions = log.len() as u32;
    let window = |s: &Sample| (s.before / 2, s.after.div_ceil(2).min(versions));
    samples.sort_unstable_by_key(|s| window(s).0);
    let mut reference = Reference::<u32>::new();
    let mut active: Vec<Sample> = Vec::new();
    let mut next = 0usize;
    let (mut concurrent, mut failures) = (0usize, Vec::new());
    for v in 0..=versions {
        if v > 0 {
            match log[v as usize - 1] {
                Update::Insert(p, l, nh) => {
                    reference.insert(p, l, nh);
                }
                Update::Remove(p, l) => {
                    reference.remove(p, l);
                }
                Update::Nothing => {}
            }
        }
        while next < samples.len() && window(&samples[next]).0 == v {
            let s = samples[next];
            concurrent += usize::from(window(&s).1 > window(&s).0);
            active.push(s);
            next += 1;
        }
        active.retain(|s| {
            if reference.lookup_by_length(s.addr).unwrap_or(NO_ROUTE) == s.got {
                return false; // right for version v
            }
            if window(s).1 <= v {
                failures.push((*s, reference.lookup_by_length(s.addr)));
                return false;
            }
            true
        });
    }
    assert!(
        failures.is_empty(),
        "{} of {} lookups matched no version in their window; first: {:?}",
        failures.len(),
        samples.len(),
        failures
            .iter()
            .take(5)
            .map(|(s, want)| format!(
                "{} -> {} in seq [{}, {}], reference at end of window {want:?}",
                Ipv4Addr::from(s.addr),
                s.got,
                s.before,
                s.after
            ))
            .collect::<Vec<_>>()
    );
    // The final table equals the reference, everywhere it matters.
    let r = fib.reader();
    let mut rng = Rng(3);
    let addrs = probes(&mut rng, reference.routes(), 20_000);
    check_all(&r, &reference, &addrs);

    eprintln!(
        "LINX churn: {} updates ({stats:?}) -> {versions} versions in {writer_time:?}; {} groups reclaimed in \
         {} grace periods; readers: {lookups} lookups, {} checked, {concurrent} overlapping an update",
        stream.len(),
        fib.tbl8_reclaimed(),
        fib.synchronizes(),
        samples.len(),
    );
    assert!(stats.unknown_withdraws > 0 && stats.synthetic > 100, "{stats:?}");
    assert!(fib.synchronizes() > 10, "groups were reclaimed during the run");
    assert!(concurrent > 0, "no lookup overlapped an update");
}
