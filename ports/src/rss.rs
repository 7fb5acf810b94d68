//! Toeplitz receive-side scaling hash.
//!
//! The hash of an input string is the XOR, for every set input bit *i*, of
//! the 32-bit window of the key starting at bit *i*. [`Toeplitz::new`]
//! precomputes, for each input byte position and byte value, the XOR of the
//! eight windows, so hashing is one table lookup and XOR per input byte
//! (36 for TCP over IPv6).

use crate::buf::RssType;

/// Size of the Toeplitz key.
pub const KEY_SIZE: usize = 40;
/// Default indirection table size (MANA, MANA.md §8).
pub const RETA_SIZE: usize = 64;
/// Longest hash input: IPv6 source + destination + two ports.
pub const MAX_INPUT: usize = 36;

/// The Microsoft default RSS key.
pub const DEFAULT_KEY: [u8; KEY_SIZE] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Precomputed Toeplitz tables for one key.
pub struct Toeplitz {
    table: Box<[[u32; 256]; MAX_INPUT]>,
}

impl Toeplitz {
    pub fn new(key: &[u8; KEY_SIZE]) -> Toeplitz {
        let mut table = Box::new([[0u32; 256]; MAX_INPUT]);
        let bit = |i: usize| -> u32 { ((key[i / 8] >> (7 - i % 8)) & 1) as u32 };
        // window(i) = key bits i..i+32 as a big-endian u32
        let window = |i: usize| -> u32 { (0..32).fold(0u32, |acc, k| (acc << 1) | bit(i + k)) };
        for (pos, row) in table.iter_mut().enumerate() {
            let wins: [u32; 8] = std::array::from_fn(|b| window(pos * 8 + b));
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = (0..8).filter(|b| v & (0x80 >> b) != 0).fold(0, |acc, b| acc ^ wins[b]);
            }
        }
        Toeplitz { table }
    }

    /// Hash of `input` (at most [`MAX_INPUT`] bytes; the rest is ignored).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input.iter().zip(self.table.iter()).fold(0, |acc, (&b, row)| acc ^ row[b as usize])
    }
}

/// A live RSS configuration in the form the receive path uses: the
/// Toeplitz table for the key, and the indirection table with its mask.
pub(crate) struct RssTable {
    pub(crate) toeplitz: Toeplitz,
    pub(crate) reta: Box<[u16]>,
    pub(crate) mask: u32,
    pub(crate) l4: bool,
}

impl RssTable {
    pub(crate) fn new(cfg: &crate::port::RssConfig) -> RssTable {
        RssTable {
            toeplitz: Toeplitz::new(&cfg.key),
            reta: cfg.reta.clone().into_boxed_slice(),
            mask: cfg.reta.len().max(1) as u32 - 1,
            l4: cfg.l4,
        }
    }
}

/// Extracts the RSS input (addresses, then ports when `l4`) of an Ethernet
/// frame into `out`; returns the input length and hash type. Unknown or
/// malformed frames give `(0, RssType::None)`.
#[inline]
pub fn flow_input(frame: &[u8], l4: bool, out: &mut [u8; MAX_INPUT]) -> (usize, RssType) {
    let mut off = 12;
    let mut et = match frame.get(off..off + 2) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => return (0, RssType::None),
    };
    if et == 0x8100 || et == 0x88a8 {
        off += 4;
        et = match frame.get(off..off + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => return (0, RssType::None),
        };
    }
    let l3 = off + 2;
    match et {
        0x0800 => {
            let Some(h) = frame.get(l3..l3 + 20) else { return (0, RssType::None) };
            let ihl = (h[0] & 0x0f) as usize * 4;
            out[..8].copy_from_slice(&h[12..20]);
            let fragmented = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            let proto = h[9];
            if l4 && !fragmented && (proto == 6 || proto == 17) && ihl >= 20 {
                if let Some(p) = frame.get(l3 + ihl..l3 + ihl + 4) {
                    out[8..12].copy_from_slice(p);
                    return (12, if proto == 6 { RssType::TcpIpv4 } else { RssType::UdpIpv4 });
                }
            }
            (8, RssType::Ipv4)
        }
        0x86dd => {
            let Some(h) = frame.get(l3..l3 + 40) else { return (0, RssType::None) };
            out[..32].copy_from_slice(&h[8..40]);
            let nh = h[6];
            if l4 && (nh == 6 || nh == 17) {
                if let Some(p) = frame.get(l3 + 40..l3 + 44) {
                    out[32..36].copy_from_slice(p);
                    return (36, if nh == 6 { RssType::TcpIpv6 } else { RssType::UdpIpv6 });
                }
            }
            (32, RssType::Ipv6)
        }
        _ => (0, RssType::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_v4(src: [u8; 4], dst: [u8; 4], ports: Option<(u16, u16)>) -> Vec<u8> {
        let mut v = [src, dst].concat();
        if let Some((s, d)) = ports {
            v.extend_from_slice(&s.to_be_bytes());
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    /// The verification suite published with the Microsoft RSS specification.
    #[test]
    fn microsoft_ipv4_verification_vectors() {
        let t = Toeplitz::new(&DEFAULT_KEY);
        let cases = [
            ([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766, 0x323e8fc2u32, 0x51ccc178u32),
            ([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739, 0xd718262a, 0xc626b0ea),
            ([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024, 0xd2d0a5de, 0x5c2b394a),
            ([38, 27, 205, 30], [209, 142, 163, 6], 48228, 2217, 0x82989176, 0xafc7327f),
            ([153, 39, 163, 191], [202, 188, 127, 2], 44251, 1303, 0x5d1809c5, 0x10e828a2),
        ];
        for (src, dst, sp, dp, h2, h4) in cases {
            assert_eq!(t.hash(&input_v4(src, dst, None)), h2, "{src:?}->{dst:?}");
            assert_eq!(t.hash(&input_v4(src, dst, Some((sp, dp)))), h4, "{src:?}->{dst:?} ports");
        }
    }

    #[test]
    fn microsoft_ipv6_verification_vector() {
        let t = Toeplitz::new(&DEFAULT_KEY);
        let src: std::net::Ipv6Addr = "3ffe:2501:200:1fff::7".parse().expect("addr");
        let dst: std::net::Ipv6Addr = "3ffe:2501:200:3::1".parse().expect("addr");
        let mut v = [src.octets(), dst.octets()].concat();
        assert_eq!(t.hash(&v), 0x2cc18cd5);
        v.extend_from_slice(&2794u16.to_be_bytes());
        v.extend_from_slice(&1766u16.to_be_bytes());
        assert_eq!(t.hash(&v), 0x40207d3d);
    }

    fn udp_frame(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[20..22].copy_from_slice(&frag.to_be_bytes());
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sp.to_be_bytes());
        f[36..38].copy_from_slice(&dp.to_be_bytes());
        f
    }

    #[test]
    fn flow_input_extracts_tuples() {
        let mut buf = [0u8; MAX_INPUT];
        let f = udp_frame([1, 2, 3, 4], [5, 6, 7, 8], 1000, 53, 0);
        assert_eq!(flow_input(&f, true, &mut buf), (12, RssType::UdpIpv4));
        assert_eq!(&buf[..12], &input_v4([1, 2, 3, 4], [5, 6, 7, 8], Some((1000, 53)))[..]);
        assert_eq!(flow_input(&f, false, &mut buf), (8, RssType::Ipv4));
        // Fragments hash on addresses only, so all fragments land together.
        let frag = udp_frame([1, 2, 3, 4], [5, 6, 7, 8], 1000, 53, 0x2000);
        assert_eq!(flow_input(&frag, true, &mut buf), (8, RssType::Ipv4));
        // Truncated and unknown frames do not panic.
        for n in 0..f.len() {
            let _ = flow_input(&f[..n], true, &mut buf);
        }
        assert_eq!(flow_input(&[0u8; 60], true, &mut buf), (0, RssType::None));
    }
}
