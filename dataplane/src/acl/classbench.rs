//! ClassBench rule and trace files, the input of DPDK's `dpdk-test-acl`,
//! so that our classifier and rte_acl can be run on the same data.
//!
//! Rule file, one IPv4 rule a line, fields separated by white space
//! (the generator writes tabs):
//!
//! ```text
//! @src/len  dst/len  sport_lo : sport_hi  dport_lo : dport_hi  proto/mask  flags/mask
//! @10.0.0.0/8   192.168.1.1/32   0 : 65535   80 : 80   0x06/0xFF   0x0000/0x0000
//! ```
//!
//! - The line order is the priority (first rule = index 0, highest).
//! - Host bits beyond the prefix length are cleared.
//! - `proto/mask`: mask `0xFF` matches exactly that protocol, mask `0x00`
//!   any protocol; other masks are rejected (a [`Rule`] has no partial
//!   protocol mask).
//! - `flags/mask` (a 16-bit value/mask the generator emits) is checked for
//!   form but ignored for matching: DPDK's `dpdk-test-acl` does not read it
//!   either, so both sides classify on the same five fields. Rules come
//!   out with `tcp_mask == 0` and action [`Action::Permit`].
//!
//! Trace file, one packet a line, numbers in decimal (`0x` hex accepted):
//!
//! ```text
//! src_ip dst_ip sport dport proto [flags [rule]]
//! ```
//!
//! `flags` is ignored as above (keys carry `tcp_flags == 0`); `rule` is
//! the generator's rule, 1-based, informational only (0 when absent):
//! check results against [`linear`](super::linear) instead.
//!
//! In both files blank lines and lines starting with `#` are skipped (as
//! `dpdk-test-acl` does); errors name the 1-based line number of the file.
//! Nothing here panics on bad input.

use super::{Action, Key, Prefix, Range, Rule};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Where the shared ClassBench sets live: `shared/` sits beside the
/// repository (as CI places it), i.e. two levels above this crate.
pub const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/classbench");

/// Parses a ClassBench rule file (see the module docs).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    lines(text).map(|(n, l)| parse_rule(l).map_err(|e| format!("line {n}: {e}: {:?}", l.trim()))).collect()
}

/// Parses a ClassBench trace file: each packet's key and the generator's
/// rule (1-based, 0 when the column is absent; informational).
pub fn parse_trace(text: &str) -> Result<Vec<(Key, u32)>, String> {
    lines(text).map(|(n, l)| parse_packet(l).map_err(|e| format!("line {n}: {e}: {:?}", l.trim()))).collect()
}

/// Loads the set `name` (e.g. `acl1_8k`) from [`DATA_DIR`]: its rules and
/// its trace's keys.
pub fn load(name: &str) -> Result<(Vec<Rule>, Vec<Key>), String> {
    let (rules_path, trace_path) = paths(name);
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let rules = parse_rules(&read(&rules_path)?).map_err(|e| format!("{}: {e}", rules_path.display()))?;
    let trace = parse_trace(&read(&trace_path)?).map_err(|e| format!("{}: {e}", trace_path.display()))?;
    Ok((rules, trace.into_iter().map(|(k, _)| k).collect()))
}

/// The rule and trace files of set `name` in [`DATA_DIR`].
pub fn paths(name: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(DATA_DIR);
    (dir.join(format!("{name}.rules")), dir.join(format!("{name}.trace")))
}

/// The lines that carry data, with their 1-based line numbers.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    })
}

fn parse_rule(line: &str) -> Result<Rule, String> {
    let body = line.trim_start().strip_prefix('@').ok_or("a rule starts with '@'")?;
    let f: Vec<&str> = body.split_whitespace().collect();
    // src dst lo : hi lo : hi proto/mask [flags/mask]
    if f.len() != 9 && f.len() != 10 {
        return Err(format!("expected 9 or 10 fields, found {}", f.len()));
    }
    let src = parse_prefix(f[0]).map_err(|e| format!("source {e}"))?;
    let dst = parse_prefix(f[1]).map_err(|e| format!("destination {e}"))?;
    let sport = parse_range(f[2], f[3], f[4]).map_err(|e| format!("source port {e}"))?;
    let dport = parse_range(f[5], f[6], f[7]).map_err(|e| format!("destination port {e}"))?;
    let (proto, mask) = parse_value_mask(f[8], u8::MAX.into()).map_err(|e| format!("protocol {e}"))?;
    let proto = match mask {
        0xff => Some(proto as u8),
        0 => None,
        m => return Err(format!("protocol mask {m:#04x} unsupported (only 0xFF or 0x00)")),
    };
    if let Some(flags) = f.get(9) {
        parse_value_mask(flags, u16::MAX.into()).map_err(|e| format!("flags {e}"))?;
    }
    Ok(Rule { src, dst, sport, dport, proto, tcp_flags: 0, tcp_mask: 0, action: Action::Permit })
}

fn parse_packet(line: &str) -> Result<(Key, u32), String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if !(5..=7).contains(&f.len()) {
        return Err(format!("expected 5 to 7 fields, found {}", f.len()));
    }
    let field = |i: usize, what: &str, max: u64| parse_num(f[i], max).map_err(|e| format!("{what}: {e}"));
    let src = field(0, "source address", u32::MAX.into())?;
    let dst = field(1, "destination address", u32::MAX.into())?;
    let sport = field(2, "source port", u16::MAX.into())?;
    let dport = field(3, "destination port", u16::MAX.into())?;
    let proto = field(4, "protocol", u8::MAX.into())?;
    if f.len() > 5 {
        field(5, "flags", u32::MAX.into())?;
    }
    let rule = if f.len() > 6 { field(6, "rule", u32::MAX.into())? } else { 0 };
    // The casts cannot truncate: parse_num checked each value against its
    // field's maximum.
    let key = Key {
        src: src.into(),
        dst: dst.into(),
        sport: sport as u16,
        dport: dport as u16,
        proto: proto as u8,
        tcp_flags: 0,
        v6: false,
    };
    Ok((key, rule as u32))
}

/// `a.b.c.d/len`, host bits cleared.
fn parse_prefix(s: &str) -> Result<Prefix, String> {
    let (a, l) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected address/length"))?;
    let a: Ipv4Addr = a.parse().map_err(|_| format!("{a:?}: not an IPv4 address"))?;
    let len: u8 = l.parse().ok().filter(|&l| l <= 32).ok_or_else(|| format!("{l:?}: length must be 0..=32"))?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ok(Prefix { addr: (u32::from(a) & mask).into(), len, v6: false })
}

/// `lo : hi` (three fields), `lo <= hi`.
fn parse_range(lo: &str, colon: &str, hi: &str) -> Result<Range, String> {
    if colon != ":" {
        return Err(format!("{colon:?}: expected \"lo : hi\""));
    }
    let lo = parse_num(lo, u16::MAX.into())? as u16;
    let hi = parse_num(hi, u16::MAX.into())? as u16;
    if lo > hi {
        return Err(format!("{lo} : {hi} is empty"));
    }
    Ok(Range { lo, hi })
}

/// `value/mask`, both at most `max`.
fn parse_value_mask(s: &str, max: u64) -> Result<(u64, u64), String> {
    let (v, m) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected value/mask"))?;
    Ok((parse_num(v, max)?, parse_num(m, max)?))
}

/// A decimal or `0x` hexadecimal number no greater than `max`.
fn parse_num(s: &str, max: u64) -> Result<u64, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    v.ok().filter(|&v| v <= max).ok_or_else(|| format!("{s:?}: not a number in 0..={max}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "\
@136.107.241.86/32\t123.222.236.2/32\t0 : 65535\t1521 : 1521\t0x06/0xFF\t0x0000/0x0200\t
# a comment, then a blank line

@10.1.2.3/8\t0.0.0.0/0\t53 : 53\t1024 : 65535\t0x00/0x00\t0x0000/0x0000
  @1.2.3.4/31 5.6.7.8/24 0 : 0 7 : 9 17/255
";

    #[test]
    fn rules_parse() {
        let r = parse_rules(RULES).expect("valid rules");
        assert_eq!(r.len(), 3);
        let p = |a: [u8; 4], len| Prefix { addr: u32::from(Ipv4Addr::from(a)).into(), len, v6: false };
        assert_eq!(
            r[0],
            Rule {
                src: p([136, 107, 241, 86], 32),
                dst: p([123, 222, 236, 2], 32),
                sport: Range::ANY,
                dport: Range::one(1521),
                proto: Some(6),
                tcp_flags: 0,
                tcp_mask: 0,
                action: Action::Permit,
            }
        );
        // Host bits cleared, wildcard protocol.
        assert_eq!(r[1].src, p([10, 0, 0, 0], 8));
        assert_eq!(r[1].dst, Prefix::any(false));
        assert_eq!((r[1].sport, r[1].dport), (Range::one(53), Range { lo: 1024, hi: 65535 }));
        assert_eq!(r[1].proto, None);
        // Spaces instead of tabs, decimal protocol, no flags column.
        assert_eq!((r[2].src, r[2].dst), (p([1, 2, 3, 4], 31), p([5, 6, 7, 0], 24)));
        assert_eq!((r[2].sport, r[2].dport, r[2].proto), (Range::one(0), Range { lo: 7, hi: 9 }, Some(17)));
    }

    #[test]
    fn empty_files_are_empty_sets() {
        assert_eq!(parse_rules(""), Ok(vec![]));
        assert_eq!(parse_rules("\n# nothing\n   \n"), Ok(vec![]));
        assert_eq!(parse_trace(""), Ok(vec![]));
    }

    /// Each malformed rule, on line 2 after a good one: the error names
    /// line 2 and what is wrong.
    #[test]
    fn malformed_rules_are_rejected_with_their_line() {
        let good = "@1.1.1.1/32\t2.2.2.2/32\t0 : 65535\t80 : 80\t0x06/0xFF\t0x0000/0x0000\n";
        let cases = [
            ("1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF", "'@'"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1", "fields"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF 0x0/0x0 extra", "fields"),
            ("@1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF", "not an IPv4 address"),
            ("@1.1.1.1 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF", "address/length"),
            ("@1.1.1.1/33 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF", "0..=32"),
            ("@1.1.1.1/32 2.2.2.2/-1 0 : 1 0 : 1 0x06/0xFF", "0..=32"),
            ("@1.1.1.1/32 2.2.2.256/32 0 : 1 0 : 1 0x06/0xFF", "destination"),
            ("@1.1.1.1/32 2.2.2.2/32 0 - 1 0 : 1 0x06/0xFF", "lo : hi"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 65536 0 : 1 0x06/0xFF", "source port"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 9 : 8 0x06/0xFF", "empty"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : x 0x06/0xFF", "destination port"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06/0x0F", "unsupported"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x106/0xFF", "protocol"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06", "value/mask"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF 0x10000/0x0", "flags"),
            ("@1.1.1.1/32 2.2.2.2/32 0 : 1 0 : 1 0x06/0xFF 0xzz/0x0", "flags"),
            ("@", "fields"),
        ];
        for (bad, why) in cases {
            let e = parse_rules(&format!("{good}{bad}\n{good}")).expect_err(bad);
            assert!(e.starts_with("line 2: "), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e} (wanted {why:?})");
        }
    }

    #[test]
    fn traces_parse() {
        let t = "1290770343\t3514257408\t0\t65535\t6\t4294967295\t890\n\n\
                 # comment\n2288775438 2288777000 65535 7599 6\n0x0a000001 1 2 3 0xff 0\n";
        let t = parse_trace(t).expect("valid trace");
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            (Key { src: 1290770343, dst: 3514257408, sport: 0, dport: 65535, proto: 6, tcp_flags: 0, v6: false }, 890)
        );
        assert_eq!((t[1].0.sport, t[1].0.dport, t[1].1), (65535, 7599, 0));
        assert_eq!((t[2].0.src, t[2].0.proto), (0x0a00_0001, 255));
    }

    #[test]
    fn malformed_traces_are_rejected_with_their_line() {
        let good = "1 2 3 4 6 0 1\n";
        let cases = [
            ("1 2 3 4", "fields"),
            ("1 2 3 4 6 0 1 9", "fields"),
            ("4294967296 2 3 4 6", "source address"),
            ("1 -2 3 4 6", "destination address"),
            ("1 2 65536 4 6", "source port"),
            ("1 2 3 4x 6", "destination port"),
            ("1 2 3 4 256", "protocol"),
            ("1 2 3 4 6 4294967296", "flags"),
            ("1 2 3 4 6 0 r", "rule"),
            ("1.2.3.4 2 3 4 6", "source address"),
        ];
        for (bad, why) in cases {
            let e = parse_trace(&format!("{good}# c\n{bad}\n{good}")).expect_err(bad);
            assert!(e.starts_with("line 3: "), "{bad}: {e}");
            assert!(e.contains(why), "{bad}: {e} (wanted {why:?})");
        }
    }

    #[test]
    fn missing_set_is_an_error_naming_the_file() {
        let e = load("no_such_set").expect_err("missing files");
        assert!(e.contains("no_such_set.rules"), "{e}");
    }
}
