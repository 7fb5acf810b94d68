//! Forwarding information bases: longest-prefix match from a destination
//! address to a next-hop *index*.
//!
//! - [`v4`]: IPv4, DIR-24-8 (one load from a 2^24-entry table, a second
//!   one for prefixes longer than /24), updated in place with single atomic
//!   entry stores while workers read, freed parts reclaimed through
//!   [`crate::rcu`].
//! - [`reference`]: a linear scan that is trivially correct, for tests.
//!
//! Each FIB has one writer (the control side, `&mut self` methods) and any
//! number of readers (workers, through a cloneable reader handle). Errors
//! are the shared [`FibError`].

use std::fmt;
use std::net::IpAddr;

pub mod reference;
pub mod v4;
pub mod v6;

/// Why a FIB refused an update. Cheap `Copy` values, one per invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FibError {
    /// The prefix length exceeds the address width.
    PrefixTooLong { len: u8, max: u8 },
    /// The prefix has bits set beyond its length (`10.1.2.3/16`).
    HostBitsSet { prefix: IpAddr, len: u8 },
    /// The next-hop index does not fit the table's entry format.
    NextHopOutOfRange { nh: u32, max: u32 },
    /// Every second-level group (tbl8) is in use: the update needs a new
    /// one and the table is left exactly as it was (RESOURCE_EXHAUSTED).
    OutOfTbl8 { groups: u32 },
    /// No route with exactly this prefix and length (NOT_FOUND).
    NotFound { prefix: IpAddr, len: u8 },
    /// The configuration is unusable (e.g. zero or too many tbl8 groups).
    InvalidConfig { what: &'static str },
    /// Mapping the table memory failed.
    Memory { bytes: usize, kind: std::io::ErrorKind },
}

impl fmt::Display for FibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FibError::PrefixTooLong { len, max } => write!(f, "prefix length /{len} exceeds the maximum /{max}"),
            FibError::HostBitsSet { prefix, len } => write!(f, "prefix {prefix}/{len} has host bits set"),
            FibError::NextHopOutOfRange { nh, max } => write!(f, "next-hop index {nh} exceeds the maximum {max}"),
            FibError::OutOfTbl8 { groups } => {
                write!(f, "all {groups} tbl8 groups are in use (resource exhausted); the FIB is unchanged")
            }
            FibError::NotFound { prefix, len } => write!(f, "no route {prefix}/{len}"),
            FibError::InvalidConfig { what } => write!(f, "invalid FIB configuration: {what}"),
            FibError::Memory { bytes, kind } => write!(f, "cannot map {bytes} bytes of table memory: {kind}"),
        }
    }
}

impl std::error::Error for FibError {}

/// Largest next-hop index a FIB entry holds (30 bits, one value reserved).
pub const MAX_NEXT_HOP: u32 = (1 << 30) - 2;
/// Written into reclaimed tables in tests and debug builds; a reader that
/// ever returns it has read freed memory.
pub const POISON_NEXT_HOP: u32 = (1 << 30) - 1;
/// `lookup_bulk` writes this where there is no route.
pub const NO_ROUTE: u32 = u32::MAX;

/// Hints the CPU to fetch the line holding `p`.
#[inline(always)]
pub(crate) fn prefetch(p: *const std::sync::atomic::AtomicU32) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a prefetch is a hint; it never faults, whatever the address.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

pub(crate) fn map_region(bytes: usize, policy: ports::HugepagePolicy) -> Result<ports::MemRegion, FibError> {
    ports::MemRegion::new(bytes, policy).map_err(|e| FibError::Memory { bytes, kind: e.kind() })
}

/// A fast hash for prefix keys (u32 or u128); the route maps are the
/// writers' only, off the lookup path.
#[derive(Default)]
pub(crate) struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the low (bucket) bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 << 32) ^ u64::from(v);
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
    }
}

/// Prefix → next hop, one map per prefix length.
pub(crate) type PrefixMap<K> = std::collections::HashMap<K, u32, std::hash::BuildHasherDefault<PrefixHasher>>;
