//! The ACL classifier against the linear reference: the ClassBench sets
//! that `dpdk-test-acl` runs (every packet of every trace), property tests
//! on random mixed-family rule sets with keys on the rules' boundaries,
//! and named edge cases.

use dataplane::acl::{classbench, linear, Action, Classifier, Key, Prefix, Range, Rule, NO_MATCH};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

// --- reporting ------------------------------------------------------------------

fn fmt_addr(a: u128, v6: bool) -> String {
    if v6 {
        Ipv6Addr::from(a).to_string()
    } else {
        Ipv4Addr::from(a as u32).to_string()
    }
}

fn fmt_key(k: &Key) -> String {
    format!(
        "{} -> {} sport {} dport {} proto {} flags {:#04x}",
        fmt_addr(k.src, k.v6),
        fmt_addr(k.dst, k.v6),
        k.sport,
        k.dport,
        k.proto,
        k.tcp_flags
    )
}

/// Rule `i` of `rules` (or "none") and whether it matches `k`.
fn fmt_rule(rules: &[Rule], i: u32, k: &Key) -> String {
    match rules.get(i as usize) {
        None if i == NO_MATCH => "none".into(),
        None => format!("#{i} (out of range: {} rules)", rules.len()),
        Some(r) => {
            let proto = r.proto.map_or("any".into(), |p| p.to_string());
            format!(
                "#{i} {}/{} -> {}/{} sport {}:{} dport {}:{} proto {proto} flags {:#04x}/{:#04x} (matches key: {})",
                fmt_addr(r.src.addr, r.src.v6),
                r.src.len,
                fmt_addr(r.dst.addr, r.dst.v6),
                r.dst.len,
                r.sport.lo,
                r.sport.hi,
                r.dport.lo,
                r.dport.hi,
                r.tcp_flags,
                r.tcp_mask,
                r.matches(k)
            )
        }
    }
}

/// Asserts `got[i] == want[i]` for every key; on mismatch shows the first
/// few keys with both answers and the rules they name.
fn assert_same(what: &str, rules: &[Rule], keys: &[Key], got: &[u32], want: &[u32]) {
    assert_eq!(got.len(), keys.len(), "{what}: answer count");
    let bad: Vec<usize> = (0..keys.len()).filter(|&i| got[i] != want[i]).collect();
    assert!(bad.is_empty(), "{}", mismatch_report(what, rules, keys, got, want, &bad));
}

fn mismatch_report(what: &str, rules: &[Rule], keys: &[Key], got: &[u32], want: &[u32], bad: &[usize]) -> String {
    let mut msg = format!("{what}: {} of {} keys disagree with the linear scan\n", bad.len(), keys.len());
    for &i in bad.iter().take(5) {
        let k = &keys[i];
        let _ = writeln!(msg, "  key {i}: {}", fmt_key(k));
        let _ = writeln!(msg, "    classifier {}", fmt_rule(rules, got[i], k));
        let _ = writeln!(msg, "    linear     {}", fmt_rule(rules, want[i], k));
    }
    msg
}

/// The classifier's answers for `keys`, in batches of `batch` keys (the
/// last one shorter).
fn classify_in(c: &Classifier, keys: &[Key], batch: usize) -> Vec<u32> {
    let mut out = vec![0xdead_beef; keys.len()];
    for (k, o) in keys.chunks(batch.max(1)).zip(out.chunks_mut(batch.max(1))) {
        c.classify_batch(k, o);
    }
    out
}

/// Builds the classifier and checks it against `linear::classify` on
/// `keys` in batches of 32, `odd` and all at once.
fn assert_agrees(rules: &[Rule], keys: &[Key], odd: usize) {
    let want: Vec<u32> = keys.iter().map(|k| linear::classify(rules, k)).collect();
    assert_agrees_with(rules, keys, &want, odd);
}

fn assert_agrees_with(rules: &[Rule], keys: &[Key], want: &[u32], odd: usize) {
    let c = Classifier::build(rules);
    for batch in [32, odd, keys.len()] {
        let got = classify_in(&c, keys, batch);
        assert_same(&format!("{} rules, batches of {batch}", rules.len()), rules, keys, &got, want);
    }
}

// --- ClassBench sets --------------------------------------------------------------

/// An exact linear scan over IPv4 rules as precomputed ranges, with early
/// exit: the same answer as `linear::classify` (checked on the 1k sets)
/// but fast enough to be the reference for 8k rules in debug builds. It
/// shares no code with the classifier under test.
struct FlatV4 {
    /// Per rule: src lo/hi, dst lo/hi, sport lo/hi, dport lo/hi, proto lo/hi.
    r: Vec<[u32; 10]>,
    /// Per rule: TCP flags value and mask.
    tcp: Vec<(u8, u8)>,
}

impl FlatV4 {
    fn new(rules: &[Rule]) -> FlatV4 {
        let mut r = Vec::with_capacity(rules.len());
        for x in rules {
            assert!(!x.src.v6 && !x.dst.v6, "FlatV4 takes IPv4 rules only");
            let (s, d) = (x.src.range(), x.dst.range());
            let (plo, phi) = x.proto.map_or((0, 255), |p| (u32::from(p), u32::from(p)));
            r.push([
                s.0 as u32,
                s.1 as u32,
                d.0 as u32,
                d.1 as u32,
                x.sport.lo.into(),
                x.sport.hi.into(),
                x.dport.lo.into(),
                x.dport.hi.into(),
                plo,
                phi,
            ]);
        }
        FlatV4 { r, tcp: rules.iter().map(|x| (x.tcp_flags & x.tcp_mask, x.tcp_mask)).collect() }
    }

    fn classify(&self, k: &Key) -> u32 {
        if k.v6 {
            return NO_MATCH;
        }
        let v = [k.src as u32, k.dst as u32, k.sport.into(), k.dport.into(), k.proto.into()];
        for (i, (r, &(flags, mask))) in self.r.iter().zip(&self.tcp).enumerate() {
            if v[0] >= r[0]
                && v[0] <= r[1]
                && v[1] >= r[2]
                && v[1] <= r[3]
                && v[2] >= r[4]
                && v[2] <= r[5]
                && v[3] >= r[6]
                && v[3] <= r[7]
                && v[4] >= r[8]
                && v[4] <= r[9]
                && k.tcp_flags & mask == flags
            {
                return i as u32;
            }
        }
        NO_MATCH
    }
}

/// Every packet of a ClassBench trace: classifier == linear scan, and the
/// trace does what it was generated for (nearly every packet matches, and
/// the first match is never after the generator's rule when that rule
/// matches).
fn classbench_set(name: &str) {
    let (rules, keys) = classbench::load(name).expect("ClassBench set (../shared/data/classbench beside the repo)");
    let (_, trace_path) = classbench::paths(name);
    let text = std::fs::read_to_string(&trace_path).expect("trace file");
    let generated: Vec<u32> = classbench::parse_trace(&text).expect("trace").into_iter().map(|(_, g)| g).collect();
    assert!(rules.len() > 500 && keys.len() > 500, "{name}: {} rules, {} packets", rules.len(), keys.len());

    let flat = FlatV4::new(&rules);
    let want: Vec<u32> = keys.iter().map(|k| flat.classify(k)).collect();
    if rules.len() < 2000 {
        // The fast reference is the plain scan.
        let slow: Vec<u32> = keys.iter().map(|k| linear::classify(&rules, k)).collect();
        assert_same(&format!("{name}: FlatV4 reference"), &rules, &keys, &want, &slow);
    }

    let matched = want.iter().filter(|&&w| w != NO_MATCH).count();
    assert!(matched * 100 >= keys.len() * 95, "{name}: only {matched} of {} packets match a rule", keys.len());
    for ((k, &w), &g) in keys.iter().zip(&want).zip(&generated) {
        let gen = g.checked_sub(1).and_then(|g| rules.get(g as usize));
        if gen.is_some_and(|r| r.matches(k)) {
            assert!(w < g, "{name}: {} matches generator rule {g} but the scan says {w}", fmt_key(k));
        }
    }

    assert_agrees_with(&rules, &keys, &want, 64);
}

#[test]
fn classbench_acl1_1k() {
    classbench_set("acl1_1k");
}

#[test]
fn classbench_acl1_8k() {
    classbench_set("acl1_8k");
}

#[test]
fn classbench_fw1_1k() {
    classbench_set("fw1_1k");
}

#[test]
fn classbench_fw1_8k() {
    classbench_set("fw1_8k");
}

#[test]
fn classbench_ipc1_1k() {
    classbench_set("ipc1_1k");
}

#[test]
fn classbench_ipc1_8k() {
    classbench_set("ipc1_8k");
}

// --- random rule sets ---------------------------------------------------------------

/// Ports around which ranges start and end.
const PORTS: [u16; 14] = [0, 1, 20, 53, 79, 80, 81, 443, 1023, 1024, 1025, 8080, 65534, 65535];

fn top(v6: bool) -> u128 {
    if v6 {
        u128::MAX
    } else {
        u32::MAX.into()
    }
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![3 => prop::sample::select(PORTS.to_vec()), 1 => any::<u16>()]
}

fn range() -> impl Strategy<Value = Range> {
    prop_oneof![
        1 => Just(Range::ANY),
        2 => port().prop_map(Range::one),
        3 => (port(), port()).prop_map(|(a, b)| Range { lo: a.min(b), hi: a.max(b) }),
    ]
}

/// A prefix near one of `bases`: same base with some low bits flipped
/// (siblings and cousins) and a length biased to /0, the full length and
/// long prefixes, so that prefixes nest and overlap.
fn prefix(v6: bool, bases: Vec<u128>) -> impl Strategy<Value = Prefix> {
    let bits = if v6 { 128u8 } else { 32 };
    let len = prop_oneof![
        1 => Just(0u8),
        1 => Just(bits),
        2 => 0..=bits,
        3 => (bits - 12)..=bits,
    ];
    (prop::sample::select(bases), len, any::<u128>(), 0u32..16).prop_map(move |(base, len, noise, flip)| {
        let addr = (base ^ (noise & ((1u128 << flip) - 1))) & top(v6);
        Prefix { addr, len, v6 }
    })
}

fn rule(bases4: Vec<u128>, bases6: Vec<u128>) -> impl Strategy<Value = Rule> {
    let proto = prop_oneof![
        3 => Just(None),
        2 => Just(Some(6u8)),
        2 => Just(Some(17u8)),
        1 => Just(Some(1u8)),
        1 => Just(Some(58u8)),
        1 => any::<u8>().prop_map(Some),
    ];
    let tcp = prop_oneof![
        4 => Just((0u8, 0u8)),
        1 => Just((0x02, 0x12)), // SYN without ACK
        1 => Just((0x10, 0x10)), // ACK
        1 => Just((0x00, 0x04)), // not RST
        1 => (any::<u8>(), any::<u8>()),
    ];
    let action = prop::sample::select(vec![Action::Permit, Action::Deny, Action::PermitStateful]);
    (0u8..4).prop_flat_map(move |fam| {
        let v6 = fam == 0; // a quarter of the rules are IPv6
        let bases = if v6 { bases6.clone() } else { bases4.clone() };
        (prefix(v6, bases.clone()), prefix(v6, bases), range(), range(), proto.clone(), tcp.clone(), action.clone())
            .prop_map(|(src, dst, sport, dport, proto, (tcp_flags, tcp_mask), action)| Rule {
                src,
                dst,
                sport,
                dport,
                proto,
                tcp_flags,
                tcp_mask,
                action,
            })
    })
}

/// How a key is made from one of the rules: every field inside the rule
/// (at its low end, its high end or in between), then at most one field
/// moved just outside (or anywhere), so each key tests one boundary.
#[derive(Clone, Copy, Debug)]
struct Pick {
    rule: prop::sample::Index,
    /// Per field (src, dst, sport, dport, proto, flags): lo, hi or inside.
    at: [u8; 6],
    /// The field moved out (0..6), or none (6..12: half the keys).
    moved: u8,
    /// Moved to: below lo, above hi, or a random value.
    to: u8,
    noise: [u128; 3],
    /// 1 in 12 keys is of the other family than its rule.
    flip_family: bool,
}

fn pick() -> impl Strategy<Value = Pick> {
    (
        any::<prop::sample::Index>(),
        any::<[u8; 6]>(),
        0u8..12,
        0u8..3,
        any::<[u128; 3]>(),
        prop::bool::weighted(1.0 / 12.0),
    )
        .prop_map(|(rule, at, moved, to, noise, flip_family)| Pick { rule, at, moved, to, noise, flip_family })
}

/// A value of `[lo, hi]` (`at`: lo, hi, inside) or, when `out`, one just
/// below or above it or anywhere in `0..=top` (`to`).
fn around(lo: u128, hi: u128, top: u128, at: u8, out: Option<u8>, noise: u128) -> u128 {
    match out {
        Some(0) => lo.wrapping_sub(1) & top,
        Some(1) => hi.wrapping_add(1) & top,
        Some(_) => noise & top,
        None => match at % 3 {
            0 => lo,
            1 => hi,
            _ => match (hi - lo).checked_add(1) {
                Some(n) => lo + noise % n,
                None => noise,
            },
        },
    }
}

fn key_for(rules: &[Rule], p: &Pick) -> Key {
    let r = rules[p.rule.index(rules.len())];
    let out = |field: u8| (p.moved == field).then_some(p.to);
    let v6 = r.src.v6 != p.flip_family;
    let (t, rt) = (top(v6), top(r.src.v6));
    let (s, d) = (r.src.range(), r.dst.range());
    let src = around(s.0, s.1, rt, p.at[0], out(0), p.noise[0]) & t;
    let dst = around(d.0, d.1, rt, p.at[1], out(1), p.noise[1]) & t;
    let n = p.noise[2];
    let port = |rg: Range, at: u8, out: Option<u8>, noise: u128| {
        around(rg.lo.into(), rg.hi.into(), 0xffff, at, out, noise) as u16
    };
    let sport = port(r.sport, p.at[2], out(2), n);
    let dport = port(r.dport, p.at[3], out(3), n >> 16);
    let random_proto = (n >> 32) as u8;
    let proto = match (out(4), r.proto) {
        (None, Some(x)) => x,
        (Some(0), Some(x)) => x.wrapping_sub(1),
        (Some(1), Some(x)) => x.wrapping_add(1),
        _ => random_proto,
    };
    let random_flags = (n >> 40) as u8;
    let good_flags = (r.tcp_flags & r.tcp_mask) | (random_flags & !r.tcp_mask);
    let tcp_flags = match out(5) {
        None => good_flags,
        // the lowest masked bit wrong (none when there is no mask)
        Some(0 | 1) => good_flags ^ (r.tcp_mask & r.tcp_mask.wrapping_neg()),
        Some(_) => random_flags,
    };
    Key { src, dst, sport, dport, proto, tcp_flags, v6 }
}

fn rule_set() -> impl Strategy<Value = (Vec<Rule>, Vec<Pick>)> {
    let bases4 = prop::collection::vec(any::<u32>().prop_map(u128::from), 1..5);
    let bases6 = prop::collection::vec(any::<u128>(), 1..4);
    (bases4, bases6)
        .prop_flat_map(|(b4, b6)| (prop::collection::vec(rule(b4, b6), 1..300), prop::collection::vec(pick(), 1..400)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_rule_sets_match_the_linear_scan((rules, picks) in rule_set(), odd in 1usize..=64) {
        let keys: Vec<Key> = picks.iter().map(|p| key_for(&rules, p)).collect();
        assert_agrees(&rules, &keys, odd);
    }

    /// Keys of one family never match rules of the other: the same
    /// numbers with the family flipped.
    #[test]
    fn families_never_cross((rules, picks) in rule_set()) {
        let c = Classifier::build(&rules);
        let keys: Vec<Key> = picks.iter().map(|p| key_for(&rules, p)).collect();
        let flipped: Vec<Key> = keys
            .iter()
            .map(|k| Key { v6: !k.v6, ..*k })
            .filter(|k| k.v6 || (k.src >> 32 == 0 && k.dst >> 32 == 0))
            .collect();
        let got = classify_in(&c, &flipped, 32);
        for (k, &g) in flipped.iter().zip(&got) {
            prop_assert!(g == NO_MATCH || rules[g as usize].src.v6 == k.v6, "{} matched {}", fmt_key(k), fmt_rule(&rules, g, k));
        }
        let want: Vec<u32> = flipped.iter().map(|k| linear::classify(&rules, k)).collect();
        assert_same("flipped families", &rules, &flipped, &got, &want);
    }
}

// --- edge cases --------------------------------------------------------------------

fn v4(a: [u8; 4], len: u8) -> Prefix {
    Prefix { addr: u32::from(Ipv4Addr::from(a)).into(), len, v6: false }
}

fn v6(a: &str, len: u8) -> Prefix {
    Prefix { addr: u128::from(a.parse::<Ipv6Addr>().expect("literal")), len, v6: true }
}

fn key4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8) -> Key {
    Key {
        src: u32::from(Ipv4Addr::from(src)).into(),
        dst: u32::from(Ipv4Addr::from(dst)).into(),
        sport,
        dport,
        proto,
        tcp_flags: 0,
        v6: false,
    }
}

fn key6(src: &str, dst: &str, sport: u16, dport: u16, proto: u8) -> Key {
    Key {
        src: u128::from(src.parse::<Ipv6Addr>().expect("literal")),
        dst: u128::from(dst.parse::<Ipv6Addr>().expect("literal")),
        sport,
        dport,
        proto,
        tcp_flags: 0,
        v6: true,
    }
}

/// The classifier's answers for `keys`, checked against the linear scan.
fn answers(rules: &[Rule], keys: &[Key]) -> Vec<u32> {
    assert_agrees(rules, keys, 3);
    classify_in(&Classifier::build(rules), keys, 32)
}

/// A spread of keys of both families, including the extremes.
fn assorted_keys() -> Vec<Key> {
    vec![
        key4([0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0),
        key4([255, 255, 255, 255], [255, 255, 255, 255], 65535, 65535, 255),
        key4([10, 1, 2, 3], [192, 168, 0, 1], 1234, 80, 6),
        key6("::", "::", 0, 0, 0),
        key6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535, 255),
        key6("2001:db8::1", "2001:db8::2", 1234, 443, 17),
    ]
}

#[test]
fn empty_rule_list_matches_nothing() {
    let keys = assorted_keys();
    assert_eq!(answers(&[], &keys), vec![NO_MATCH; keys.len()]);
    // An empty batch touches nothing.
    Classifier::build(&[]).classify_batch(&[], &mut []);
}

#[test]
fn a_single_any_rule_matches_its_family_only() {
    let keys = assorted_keys();
    let any4 = [Rule::any(false, Action::Permit)];
    assert_eq!(answers(&any4, &keys), [0, 0, 0, NO_MATCH, NO_MATCH, NO_MATCH]);
    let any6 = [Rule::any(true, Action::Deny)];
    assert_eq!(answers(&any6, &keys), [NO_MATCH, NO_MATCH, NO_MATCH, 0, 0, 0]);
    let both = [Rule::any(true, Action::Deny), Rule::any(false, Action::Permit)];
    assert_eq!(answers(&both, &keys), [1, 1, 1, 0, 0, 0]);
    // The first of two identical rules wins.
    let twice = [any4[0], any4[0]];
    assert_eq!(answers(&twice, &keys[..3]), [0, 0, 0]);
}

#[test]
fn host_prefixes_and_zero_length_prefixes() {
    let host = Rule {
        src: v4([10, 0, 0, 1], 32),
        dst: v4([192, 168, 1, 1], 0), // /0: the address is irrelevant
        ..Rule::any(false, Action::Permit)
    };
    let host6 = Rule { src: v6("::", 0), dst: v6("2001:db8::ffff", 128), ..Rule::any(true, Action::Permit) };
    let rules = [host, host6];
    let keys = [
        key4([10, 0, 0, 1], [1, 2, 3, 4], 1, 2, 6),
        key4([10, 0, 0, 0], [1, 2, 3, 4], 1, 2, 6),
        key4([10, 0, 0, 2], [1, 2, 3, 4], 1, 2, 6),
        key4([10, 0, 0, 1], [255, 255, 255, 255], 0, 0, 0),
        key6("1::", "2001:db8::ffff", 1, 2, 6),
        key6("1::", "2001:db8::fffe", 1, 2, 6),
        key6("1::", "2001:db8::1:0", 1, 2, 6),
        key6("ffff::", "2001:db8::ffff", 65535, 0, 255),
    ];
    assert_eq!(answers(&rules, &keys), [0, NO_MATCH, NO_MATCH, 0, 1, NO_MATCH, NO_MATCH, 1]);
}

#[test]
fn full_and_single_port_ranges() {
    let rules = [
        Rule { dport: Range::one(80), sport: Range::ANY, proto: Some(6), ..Rule::any(false, Action::Permit) },
        Rule { sport: Range::one(0), dport: Range::one(65535), ..Rule::any(false, Action::Deny) },
        Rule {
            sport: Range { lo: 0, hi: 65535 },
            dport: Range { lo: 1024, hi: 65535 },
            ..Rule::any(false, Action::Permit)
        },
    ];
    let k = |sport, dport, proto| key4([1, 1, 1, 1], [2, 2, 2, 2], sport, dport, proto);
    let keys = [
        k(0, 80, 6),
        k(65535, 80, 6),
        k(1, 79, 6),
        k(1, 81, 6),
        k(1, 80, 17),
        k(0, 65535, 17),
        k(1, 65535, 17),
        k(0, 65534, 17),
        k(65535, 1024, 1),
        k(65535, 1023, 1),
    ];
    assert_eq!(answers(&rules, &keys), [0, 0, NO_MATCH, NO_MATCH, NO_MATCH, 1, 2, 2, 2, NO_MATCH]);
}

#[test]
fn tcp_flag_masks() {
    // SYN without ACK, then anything with RST clear.
    let syn = Rule { proto: Some(6), tcp_flags: 0x02, tcp_mask: 0x12, ..Rule::any(false, Action::Deny) };
    let no_rst = Rule { tcp_flags: 0x00, tcp_mask: 0x04, ..Rule::any(false, Action::Permit) };
    let rules = [syn, no_rst];
    let k = |flags| Key { tcp_flags: flags, ..key4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 6) };
    let keys = [k(0x02), k(0x02 | 0x08), k(0x12), k(0x10), k(0x04), k(0x06), k(0x00)];
    assert_eq!(answers(&rules, &keys), [0, 0, 1, 1, NO_MATCH, 0, 1]);
}
