//! A longest-prefix-match table that is trivially correct, to test the real
//! FIBs against: a list of `(prefix, length, next hop)` scanned in full,
//! the longest matching prefix wins.
//!
//! [`Reference::lookup`] is the linear scan itself. Scanning every route for
//! every address is too slow for the large random tables and the churn test,
//! so [`Reference::lookup_by_length`] answers the same question by probing
//! one exact-match map per prefix length, longest first — just as simple,
//! and the tests check that the two agree.
//!
//! Generic over the address type: `u32` for IPv4, `u128` for IPv6.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// An address as an unsigned integer, most significant bit first.
pub trait PrefixAddr: Copy + Eq + Hash + Debug {
    /// Address width in bits (32 or 128).
    const BITS: u8;
    /// The network mask of a `/len` prefix (`len <= BITS`).
    fn mask(len: u8) -> Self;
    /// `self & other`.
    fn and(self, other: Self) -> Self;
}

impl PrefixAddr for u32 {
    const BITS: u8 = 32;
    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
    }
    fn and(self, other: u32) -> u32 {
        self & other
    }
}

impl PrefixAddr for u128 {
    const BITS: u8 = 128;
    fn mask(len: u8) -> u128 {
        u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
    }
    fn and(self, other: u128) -> u128 {
        self & other
    }
}

/// FNV-1a: deterministic and cheap, also in unoptimised test builds.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

type Map<A> = HashMap<A, usize, BuildHasherDefault<Fnv>>;

/// The reference table. Routes are unique per `(prefix, len)`.
#[derive(Clone, Debug)]
pub struct Reference<A: PrefixAddr> {
    routes: Vec<(A, u8, u32)>,
    /// Per length: prefix -> position in `routes`.
    by_len: Vec<Map<A>>,
}

impl<A: PrefixAddr> Default for Reference<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: PrefixAddr> Reference<A> {
    pub fn new() -> Self {
        Reference { routes: Vec::new(), by_len: (0..=A::BITS).map(|_| Map::default()).collect() }
    }

    /// Adds or replaces a route; returns the replaced next hop. Host bits
    /// of `prefix` are cleared; `len` is clamped to the address width.
    pub fn insert(&mut self, prefix: A, len: u8, nh: u32) -> Option<u32> {
        let len = len.min(A::BITS);
        let prefix = prefix.and(A::mask(len));
        match self.by_len[usize::from(len)].get(&prefix) {
            Some(&i) => Some(std::mem::replace(&mut self.routes[i].2, nh)),
            None => {
                self.by_len[usize::from(len)].insert(prefix, self.routes.len());
                self.routes.push((prefix, len, nh));
                None
            }
        }
    }

    /// Removes a route; returns its next hop.
    pub fn remove(&mut self, prefix: A, len: u8) -> Option<u32> {
        let len = len.min(A::BITS);
        let prefix = prefix.and(A::mask(len));
        let i = self.by_len[usize::from(len)].remove(&prefix)?;
        let (_, _, old) = self.routes.swap_remove(i);
        if let Some(&(p, l, _)) = self.routes.get(i) {
            self.by_len[usize::from(l)].insert(p, i);
        }
        Some(old)
    }

    /// The next hop of exactly this route.
    pub fn get(&self, prefix: A, len: u8) -> Option<u32> {
        let len = len.min(A::BITS);
        let i = *self.by_len[usize::from(len)].get(&prefix.and(A::mask(len)))?;
        Some(self.routes[i].2)
    }

    /// Longest-prefix match by scanning every route.
    pub fn lookup(&self, addr: A) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for &(p, l, nh) in &self.routes {
            let longer = match best {
                Some((bl, _)) => l > bl,
                None => true,
            };
            if longer && addr.and(A::mask(l)) == p {
                best = Some((l, nh));
            }
        }
        best.map(|(_, nh)| nh)
    }

    /// Longest-prefix match by probing each length, longest first.
    pub fn lookup_by_length(&self, addr: A) -> Option<u32> {
        self.matching_route(addr).map(|(_, _, nh)| nh)
    }

    /// The longest route covering `addr`, as `(prefix, len, nh)`.
    pub fn matching_route(&self, addr: A) -> Option<(A, u8, u32)> {
        (0..=A::BITS).rev().find_map(|l| {
            let m = &self.by_len[usize::from(l)];
            if m.is_empty() {
                return None;
            }
            let p = addr.and(A::mask(l));
            m.get(&p).map(|&i| self.routes[i])
        })
    }

    /// Every route (in insertion order until the first removal).
    pub fn routes(&self) -> &[(A, u8, u32)] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(u32::mask(0), 0);
        assert_eq!(u32::mask(8), 0xff00_0000);
        assert_eq!(u32::mask(32), u32::MAX);
        assert_eq!(u128::mask(0), 0);
        assert_eq!(u128::mask(1), 1 << 127);
        assert_eq!(u128::mask(128), u128::MAX);
    }

    #[test]
    fn longest_match_wins_and_both_lookups_agree() {
        let mut r = Reference::<u32>::new();
        assert_eq!(r.insert(0x0a00_0000, 8, 1), None);
        assert_eq!(r.insert(0x0a01_0000, 16, 2), None);
        assert_eq!(r.insert(0, 0, 3), None);
        assert_eq!(r.insert(0x0a01_0000, 16, 4), Some(2));
        for (a, want) in [(0x0a01_0203, Some(4)), (0x0a02_0000, Some(1)), (0x0b00_0000, Some(3))] {
            assert_eq!(r.lookup(a), want);
            assert_eq!(r.lookup_by_length(a), want);
        }
        assert_eq!(r.matching_route(0x0a01_0203), Some((0x0a01_0000, 16, 4)));
        assert_eq!(r.remove(0, 0), Some(3));
        assert_eq!(r.remove(0, 0), None);
        assert_eq!(r.lookup(0x0b00_0000), None);
        assert_eq!(r.lookup_by_length(0x0b00_0000), None);
        assert_eq!(r.len(), 2);
    }
}
