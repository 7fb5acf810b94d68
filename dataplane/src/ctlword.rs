//! The control word the session tables (stateful ACL, NAT) keep per slot
//! and use as a seqlock: a 24-bit version (odd while the slot is being
//! written), a state byte (a state code in the low four bits, flags above
//! it), and 32 low bits (a time stamp in seconds, or a claimer's
//! fingerprint while busy).

pub(crate) const CODE_MASK: u8 = 0x0f;
const STATE_SHIFT: u32 = 32;
const VER_SHIFT: u32 = 40;
const VER_MASK: u64 = (1 << 24) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ctl(pub(crate) u64);

impl Ctl {
    #[inline(always)]
    pub(crate) fn new(ver: u64, state: u8, low: u32) -> Ctl {
        Ctl(((ver & VER_MASK) << VER_SHIFT) | ((state as u64) << STATE_SHIFT) | low as u64)
    }

    #[inline(always)]
    pub(crate) fn ver(self) -> u64 {
        self.0 >> VER_SHIFT
    }

    /// Being written (odd version).
    #[inline(always)]
    pub(crate) fn busy(self) -> bool {
        self.ver() & 1 == 1
    }

    #[inline(always)]
    pub(crate) fn state(self) -> u8 {
        (self.0 >> STATE_SHIFT) as u8
    }

    /// The state code (the state byte without its flags).
    #[inline(always)]
    pub(crate) fn code(self) -> u8 {
        self.state() & CODE_MASK
    }

    /// The time stamp when published, the claimer's fingerprint when busy.
    #[inline(always)]
    pub(crate) fn low(self) -> u32 {
        self.0 as u32
    }
}

#[cfg(test)]
mod tests {
    use super::Ctl;

    #[test]
    fn fields_round_trip_and_the_version_wraps_at_24_bits() {
        let c = Ctl::new(0x12_3457, 0xa5, 0xdead_beef);
        assert_eq!((c.ver(), c.state(), c.code(), c.low()), (0x12_3457, 0xa5, 0x05, 0xdead_beef));
        assert!(c.busy());
        assert!(!Ctl::new(2, 0, 0).busy());
        assert_eq!(Ctl::new((1 << 24) + 4, 1, 1).ver(), 4);
    }
}
