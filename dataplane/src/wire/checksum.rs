//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are ones-complement sums of big-endian 16-bit words, folded to
//! 16 bits and *not* complemented; a checksum field holds the complement of
//! the sum over the covered bytes with the field zeroed. A packet verifies
//! when the sum over all its bytes (checksum field included) is `0xffff`.

/// Add `data`, as big-endian 16-bit words, to a 64-bit ones-complement
/// accumulator.
///
/// Reads 8-byte chunks as big-endian `u64`s: each holds four 16-bit words,
/// and folding the 64-bit ones-complement sum adds those lanes (2^16 = 1
/// modulo 0xffff). The end-around carry keeps the result exact for any
/// length.
#[inline]
fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, carry) = acc.overflowing_add(w);
        acc = s + u64::from(carry);
    }
    // The remainder (< 8 bytes) starts at an even offset; an odd last byte
    // is the high byte of a zero-padded word (RFC 1071).
    let mut rem = chunks.remainder();
    let mut tail: u64 = 0;
    if let [a, b, c, d, rest @ ..] = rem {
        tail += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        rem = rest;
    }
    if let [a, b, rest @ ..] = rem {
        tail += u64::from(u16::from_be_bytes([*a, *b]));
        rem = rest;
    }
    if let [a] = rem {
        tail += u64::from(*a) << 8;
    }
    let (s, carry) = acc.overflowing_add(tail);
    s + u64::from(carry)
}

/// Fold a 64-bit ones-complement accumulator to 16 bits (end-around carry).
#[inline]
pub const fn fold(sum: u64) -> u16 {
    let mut s = (sum & 0xffff_ffff) + (sum >> 32);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Ones-complement sum of `data` as big-endian 16-bit words (an odd trailing
/// byte is padded with a zero), folded, not complemented.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// Ones-complement addition of two folded sums.
#[inline]
pub const fn combine(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// The checksum to store for `data` (whose checksum field is zero):
/// the complement of its sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Whether `data`, including its checksum field, sums to `0xffff`.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// Sum of the IPv4 pseudo header (RFC 768/793): source, destination,
/// zero + protocol, and the L4 length.
#[inline]
pub const fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u16 {
    let s = u16::from_be_bytes([src[0], src[1]]) as u64
        + u16::from_be_bytes([src[2], src[3]]) as u64
        + u16::from_be_bytes([dst[0], dst[1]]) as u64
        + u16::from_be_bytes([dst[2], dst[3]]) as u64
        + proto as u64
        + len as u64;
    fold(s)
}

/// Sum of the IPv6 pseudo header (RFC 8200 §8.1): source, destination,
/// the 32-bit upper-layer length, zero + next header.
#[inline]
pub const fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, len: u32) -> u16 {
    let mut s: u64 = 0;
    let mut i = 0;
    while i < 16 {
        s += u16::from_be_bytes([src[i], src[i + 1]]) as u64;
        s += u16::from_be_bytes([dst[i], dst[i + 1]]) as u64;
        i += 2;
    }
    s += (len >> 16) as u64 + (len & 0xffff) as u64 + next_header as u64;
    fold(s)
}

/// The L4 checksum to store for `segment` (checksum field zeroed) over IPv4.
#[inline]
pub fn l4_checksum_v4(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    // Only lengths that fit the pseudo header make sense; a longer segment
    // cannot come from a valid IPv4 packet, and truncating is harmless.
    let ph = pseudo_header_v4(src, dst, proto, segment.len() as u16);
    !combine(ph, sum(segment))
}

/// Whether an IPv4 L4 `segment` (checksum field included) verifies.
#[inline]
pub fn verify_l4_v4(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> bool {
    let ph = pseudo_header_v4(src, dst, proto, segment.len() as u16);
    combine(ph, sum(segment)) == 0xffff
}

/// The L4 checksum to store for `segment` (checksum field zeroed) over IPv6.
#[inline]
pub fn l4_checksum_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, segment: &[u8]) -> u16 {
    let ph = pseudo_header_v6(src, dst, next_header, segment.len() as u32);
    !combine(ph, sum(segment))
}

/// Whether an IPv6 L4 `segment` (checksum field included) verifies.
#[inline]
pub fn verify_l4_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, segment: &[u8]) -> bool {
    let ph = pseudo_header_v6(src, dst, next_header, segment.len() as u32);
    combine(ph, sum(segment)) == 0xffff
}

/// RFC 1624 incremental update for one 16-bit word changing from `old` to
/// `new`: eqn. 3, `HC' = ~(~HC + ~m + m')`.
///
/// Unlike eqn. 2 this never turns a correct `0x0000` into `0xffff` (RFC 1624
/// §4). It equals full recomputation whenever the covered data has a
/// non-zero word besides the changed one, which holds for every IP, TCP,
/// UDP and ICMP header. For UDP over IPv4, a zero checksum means "none":
/// leave it alone, and store a computed `0x0000` as `0xffff`.
#[inline]
pub const fn update16(old_checksum: u16, old: u16, new: u16) -> u16 {
    !fold(!old_checksum as u64 + !old as u64 + new as u64)
}

/// RFC 1624 eqn. 3 for a 32-bit field (e.g. an IPv4 address) changing from
/// `old` to `new`; the same as two [`update16`] steps.
#[inline]
pub const fn update32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let s = !old_checksum as u64
        + !(old >> 16) as u16 as u64
        + !(old as u16) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(s)
}

/// RFC 1624 eqn. 3 for a run of bytes (e.g. an IPv6 address) changing from
/// `old` to `new`. Both must have the same length and start at an even
/// offset of the checksummed data.
#[inline]
pub fn update_bytes(old_checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    !fold(!old_checksum as u64 + !sum(old) as u64 + sum(new) as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward RFC 1071 reference: add big-endian words in u32.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        assert_eq!(sum(&data[..7]), reference_sum(&data[..7]));
    }

    #[test]
    fn golden_ipv4_header() {
        // The IPv4 header of the golden DNS query; its checksum is 0x065d.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x39, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x06, 0x5d, 0x0a, 0x00, 0x02, 0x0f, 0x0a, 0x00,
            0x02, 0x03,
        ];
        assert!(verify(&hdr));
        hdr[10] = 0;
        hdr[11] = 0;
        assert_eq!(checksum(&hdr), 0x065d);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[0xff; 2]), 0xffff);
        // Non-zero data never folds to 0x0000.
        assert_eq!(sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
    }

    #[test]
    fn fold_limits() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(combine(0xffff, 0x0001), 0x0001);
        assert_eq!(combine(0x8000, 0x8000), 0x0001);
    }

    #[test]
    fn pseudo_headers() {
        // 10.0.2.15 -> 10.0.2.3, UDP, 37 bytes, as in the golden DNS query.
        let ph = pseudo_header_v4([10, 0, 2, 15], [10, 0, 2, 3], 17, 37);
        let mut bytes = vec![10, 0, 2, 15, 10, 0, 2, 3, 0, 17, 0, 37];
        assert_eq!(ph, reference_sum(&bytes));
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 2];
        let ph6 = pseudo_header_v6(src, dst, 58, 0x0001_0020);
        bytes.clear();
        bytes.extend_from_slice(&src);
        bytes.extend_from_slice(&dst);
        bytes.extend_from_slice(&[0, 1, 0, 0x20, 0, 0, 0, 58]);
        assert_eq!(ph6, reference_sum(&bytes));
    }

    #[test]
    fn rfc1624_section4_example() {
        // HC = 0xdd2f, m = 0x5555 -> m' = 0x3285; the sum of the other
        // words is 0xcd7a. Recomputation gives ~(0xcd7a + 0x3285) = 0x0000;
        // eqn. 2 would wrongly give 0xffff, eqn. 3 must give 0x0000.
        assert_eq!(!combine(0xcd7a, 0x5555), 0xdd2f);
        assert_eq!(!combine(0xcd7a, 0x3285), 0x0000);
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        // And back again.
        assert_eq!(update16(0x0000, 0x3285, 0x5555), 0xdd2f);
        // Same through update32 with an unchanged high half.
        assert_eq!(update32(0xdd2f, 0x0000_5555, 0x0000_3285), 0x0000);
    }

    #[test]
    fn update_ttl_golden() {
        // Decrement the TTL of the golden IPv4 header (TTL 64, proto 17).
        let mut hdr = [
            0x45, 0x00, 0x00, 0x39, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x06, 0x5d, 0x0a, 0x00, 0x02, 0x0f, 0x0a, 0x00,
            0x02, 0x03,
        ];
        let new = update16(0x065d, 0x4011, 0x3f11);
        hdr[8] = 0x3f;
        hdr[10..12].copy_from_slice(&new.to_be_bytes());
        assert!(verify(&hdr));
        assert_eq!(new, 0x075d);
    }

    #[test]
    fn update_bytes_matches_update32() {
        let old = [10, 0, 2, 15];
        let new = [192, 168, 7, 9];
        assert_eq!(
            update_bytes(0x1234, &old, &new),
            update32(0x1234, u32::from_be_bytes(old), u32::from_be_bytes(new))
        );
    }

    fn data_with_checksum() -> impl Strategy<Value = Vec<u8>> {
        // Even length >= 8; word 0 is forced non-zero (like the IPv4
        // version nibble) and word 1 holds the checksum.
        (4usize..64).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 2))
    }

    fn seal(mut d: Vec<u8>) -> Vec<u8> {
        if d[0] == 0 && d[1] == 0 {
            d[0] = 0x45;
        }
        d[2] = 0;
        d[3] = 0;
        let c = checksum(&d);
        d[2..4].copy_from_slice(&c.to_be_bytes());
        d
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
            )),
            ..ProptestConfig::default()
        })]

        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
            for start in 0..data.len().min(9) {
                // Any even start offset keeps word alignment.
                if start % 2 == 0 {
                    prop_assert_eq!(sum(&data[start..]), reference_sum(&data[start..]));
                }
            }
        }

        #[test]
        fn update16_equals_recompute(d in data_with_checksum(), idx in 2usize..32, new in any::<u16>()) {
            let mut d = seal(d);
            let words = d.len() / 2;
            let w = 2 + idx % (words - 2);
            let old = u16::from_be_bytes([d[2 * w], d[2 * w + 1]]);
            let hc = u16::from_be_bytes([d[2], d[3]]);
            let inc = update16(hc, old, new);
            d[2 * w..2 * w + 2].copy_from_slice(&new.to_be_bytes());
            let full = seal(d.clone());
            prop_assert_eq!(inc, u16::from_be_bytes([full[2], full[3]]));
            d[2..4].copy_from_slice(&inc.to_be_bytes());
            prop_assert!(verify(&d));
        }

        #[test]
        fn update32_equals_recompute(d in data_with_checksum(), idx in 2usize..32, new in any::<u32>()) {
            let mut d = seal(d);
            let words = d.len() / 2;
            // A 32-bit field at an even word index >= 2, fully inside.
            let w = 2 + idx % (words - 3);
            let old = u32::from_be_bytes([d[2 * w], d[2 * w + 1], d[2 * w + 2], d[2 * w + 3]]);
            let hc = u16::from_be_bytes([d[2], d[3]]);
            let inc = update32(hc, old, new);
            d[2 * w..2 * w + 4].copy_from_slice(&new.to_be_bytes());
            let full = seal(d.clone());
            prop_assert_eq!(inc, u16::from_be_bytes([full[2], full[3]]));
            prop_assert_eq!(inc, update_bytes(hc, &old.to_be_bytes(), &new.to_be_bytes()));
        }

        #[test]
        fn update_chain_stays_valid(d in data_with_checksum(), edits in proptest::collection::vec((2usize..32, any::<u16>()), 1..20)) {
            // Many successive incremental updates never drift from the truth.
            let mut d = seal(d);
            let words = d.len() / 2;
            for (idx, new) in edits {
                let w = 2 + idx % (words - 2);
                let old = u16::from_be_bytes([d[2 * w], d[2 * w + 1]]);
                let hc = u16::from_be_bytes([d[2], d[3]]);
                let inc = update16(hc, old, new);
                d[2 * w..2 * w + 2].copy_from_slice(&new.to_be_bytes());
                d[2..4].copy_from_slice(&inc.to_be_bytes());
                prop_assert!(verify(&d));
                prop_assert_eq!(d.clone(), seal(d.clone()));
            }
        }
    }
}
