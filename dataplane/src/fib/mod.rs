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
