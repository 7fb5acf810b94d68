//! Access control lists: 5-tuple rules in priority order, a classifier
//! built off the fast path, and stateful sessions.
//!
//! - [`Rule`]: source/destination prefix, port ranges, protocol, TCP flags
//!   (value/mask); for ICMP and ICMPv6 the source-port range matches the
//!   type and the destination-port range the code. The first matching rule
//!   (lowest index) wins.
//! - [`Classifier`]: built once from a rule list, immutable, classifies
//!   whole batches of [`Key`]s; one tree per address family.
//! - [`linear`]: the reference — a plain scan, used by tests.

pub mod classbench;
pub mod control;
pub mod linear;
pub mod session;
pub mod stage;
pub mod tree;

pub use tree::Classifier;

/// No rule matched.
pub const NO_MATCH: u32 = u32::MAX;

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Permit,
    Deny,
    /// Permit and create a session so the return traffic is admitted.
    PermitStateful,
}

/// An inclusive port (or ICMP type/code) range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Range {
    pub lo: u16,
    pub hi: u16,
}

impl Range {
    pub const ANY: Range = Range { lo: 0, hi: u16::MAX };

    pub fn one(v: u16) -> Range {
        Range { lo: v, hi: v }
    }

    #[inline(always)]
    pub fn contains(&self, v: u16) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// An address prefix of either family, as 128-bit numbers (IPv4 in the
/// low 32 bits; `v6` tells which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: u128,
    pub len: u8,
    pub v6: bool,
}

impl Prefix {
    pub fn any(v6: bool) -> Prefix {
        Prefix { addr: 0, len: 0, v6 }
    }

    /// Bits of the family (32 or 128).
    #[inline(always)]
    pub fn bits(&self) -> u32 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// The lowest and highest address covered.
    #[inline]
    pub fn range(&self) -> (u128, u128) {
        let bits = self.bits();
        let host = bits - self.len.min(bits as u8) as u32;
        let mask: u128 = if host >= 128 { u128::MAX } else { (1u128 << host) - 1 };
        let lo = self.addr & !mask;
        let top = if bits == 128 { u128::MAX } else { (1u128 << 32) - 1 };
        (lo & top, (lo | mask) & top)
    }

    #[inline(always)]
    pub fn contains(&self, a: u128) -> bool {
        let (lo, hi) = self.range();
        lo <= a && a <= hi
    }
}

impl From<ipnet::IpNet> for Prefix {
    fn from(n: ipnet::IpNet) -> Prefix {
        match n {
            ipnet::IpNet::V4(n) => Prefix { addr: u32::from(n.network()) as u128, len: n.prefix_len(), v6: false },
            ipnet::IpNet::V6(n) => Prefix { addr: u128::from(n.network()), len: n.prefix_len(), v6: true },
        }
    }
}

/// One ACL rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub src: Prefix,
    pub dst: Prefix,
    pub sport: Range,
    pub dport: Range,
    /// Protocol number; `None` matches any.
    pub proto: Option<u8>,
    /// TCP flags the packet must have under `mask` (`mask == 0`: any).
    pub tcp_flags: u8,
    pub tcp_mask: u8,
    pub action: Action,
}

impl Rule {
    /// A rule matching everything of a family.
    pub fn any(v6: bool, action: Action) -> Rule {
        Rule {
            src: Prefix::any(v6),
            dst: Prefix::any(v6),
            sport: Range::ANY,
            dport: Range::ANY,
            proto: None,
            tcp_flags: 0,
            tcp_mask: 0,
            action,
        }
    }

    /// Whether `k` matches (families must agree).
    #[inline]
    pub fn matches(&self, k: &Key) -> bool {
        self.src.v6 == k.v6
            && self.src.contains(k.src)
            && self.dst.contains(k.dst)
            && self.sport.contains(k.sport)
            && self.dport.contains(k.dport)
            && self.proto.is_none_or(|p| p == k.proto)
            && (k.tcp_flags & self.tcp_mask) == (self.tcp_flags & self.tcp_mask)
    }
}

/// The fields of a packet the classifier looks at. For ICMP/ICMPv6,
/// `sport` holds the type and `dport` the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Key {
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    pub v6: bool,
}
