//! Checksum work the device does: RX verification flags and TX offload.

use super::super::format::{RxCompOob, TxOob};

fn sum(mut acc: u32, b: &[u8]) -> u32 {
    let mut it = b.chunks_exact(2);
    for w in &mut it {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [last] = it.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Where the IP header starts and its ethertype, past one VLAN tag.
fn l3(frame: &[u8]) -> Option<(usize, u16)> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if et == 0x8100 {
        return Some((18, u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?])));
    }
    Some((14, et))
}

/// IP layer facts: (L4 offset, L4 protocol, pseudo-header sum, L4 length,
/// IPv4 header range).
struct Ip {
    l4: usize,
    proto: u8,
    pseudo: u32,
    l4_len: usize,
    v4_hdr: Option<(usize, usize)>,
}

fn ip(frame: &[u8]) -> Option<Ip> {
    let (o, et) = l3(frame)?;
    match et {
        0x0800 => {
            let h = frame.get(o..o + 20)?;
            let ihl = (h[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || o + total > frame.len() {
                return None;
            }
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            let l4_len = total - ihl;
            let pseudo = sum(0, &h[12..20]) + h[9] as u32 + l4_len as u32;
            Some(Ip { l4: o + ihl, proto: if frag { 0 } else { h[9] }, pseudo, l4_len, v4_hdr: Some((o, ihl)) })
        }
        0x86dd => {
            let h = frame.get(o..o + 40)?;
            let l4_len = u16::from_be_bytes([h[4], h[5]]) as usize;
            if o + 40 + l4_len > frame.len() {
                return None;
            }
            let pseudo = sum(0, &h[8..40]) + h[6] as u32 + l4_len as u32;
            Some(Ip { l4: o + 40, proto: h[6], pseudo, l4_len, v4_hdr: None })
        }
        _ => None,
    }
}

/// Sets the RX checksum result flags for `frame`.
pub fn rx_flags(frame: &[u8], o: &mut RxCompOob) {
    let Some(ip) = ip(frame) else { return };
    if let Some((s, n)) = ip.v4_hdr {
        let ok = fold(sum(0, &frame[s..s + n])) == 0xffff;
        o.rx_iphdr_csum_succeed = ok;
        o.rx_iphdr_csum_fail = !ok;
    }
    let l4 = &frame[ip.l4..ip.l4 + ip.l4_len];
    match ip.proto {
        6 if l4.len() >= 20 => {
            let ok = fold(sum(ip.pseudo, l4)) == 0xffff;
            o.rx_tcp_csum_succeed = ok;
            o.rx_tcp_csum_fail = !ok;
        }
        17 if l4.len() >= 8 => {
            // A zero UDP checksum over IPv4 means "none".
            let ok = (ip.v4_hdr.is_some() && l4[6] == 0 && l4[7] == 0) || fold(sum(ip.pseudo, l4)) == 0xffff;
            o.rx_udp_csum_succeed = ok;
            o.rx_udp_csum_fail = !ok;
        }
        _ => {}
    }
}

/// Fills the checksums a TX OOB asks for. The TCP/UDP checksum field holds
/// the pseudo-header sum on entry (as drivers pre-seed it); like the
/// hardware, the device sums the L4 bytes from `trans_off` on top of it.
pub fn tx_offload(frame: &mut [u8], oob: &TxOob) {
    let Some(ip) = ip(frame) else { return };
    if oob.comp_iphdr_csum {
        if let Some((s, n)) = ip.v4_hdr {
            frame[s + 10] = 0;
            frame[s + 11] = 0;
            let c = !fold(sum(0, &frame[s..s + n]));
            frame[s + 10..s + 12].copy_from_slice(&c.to_be_bytes());
        }
    }
    let start = if oob.trans_off != 0 { oob.trans_off as usize } else { ip.l4 };
    let end = ip.l4 + ip.l4_len;
    if start >= end {
        return;
    }
    let field = match (oob.comp_tcp_csum, oob.comp_udp_csum) {
        (true, _) if end - start >= 20 => start + 16,
        (_, true) if end - start >= 8 => start + 6,
        _ => return,
    };
    // The seeded pseudo-header sum sits in the checksum field.
    let c = !fold(sum(0, &frame[start..end]));
    let c = if oob.comp_udp_csum && c == 0 { 0xffff } else { c };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(payload: &[u8], good: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = 20 + 8 + payload.len();
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = !fold(sum(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let ul = 8 + payload.len();
        let mut u = vec![0x12, 0x34, 0x00, 0x35, (ul >> 8) as u8, ul as u8, 0, 0];
        u.extend_from_slice(payload);
        let pseudo = sum(0, &ip[12..20]) + 17 + ul as u32;
        let mut c = !fold(sum(pseudo, &u));
        if !good {
            c ^= 1;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&u);
        f
    }

    #[test]
    fn rx_flags_report_good_and_bad() {
        let mut o = RxCompOob::default();
        rx_flags(&udp4(b"hello", true), &mut o);
        assert!(o.rx_iphdr_csum_succeed && o.rx_udp_csum_succeed && !o.rx_udp_csum_fail);
        let mut o = RxCompOob::default();
        rx_flags(&udp4(b"hello", false), &mut o);
        assert!(o.rx_iphdr_csum_succeed && o.rx_udp_csum_fail && !o.rx_udp_csum_succeed);
        let mut f = udp4(b"hello", true);
        f[14 + 8] ^= 1; // TTL changed, header checksum now wrong
        let mut o = RxCompOob::default();
        rx_flags(&f, &mut o);
        assert!(o.rx_iphdr_csum_fail);
    }

    #[test]
    fn tx_offload_fills_what_rx_verifies() {
        let mut f = udp4(b"offload me", true);
        let good = f.clone();
        // Zero the IP checksum, seed the UDP checksum with the pseudo sum.
        f[24] = 0;
        f[25] = 0;
        let ul = 8 + 10u32;
        let pseudo = fold(sum(0, &f[26..34]) + 17 + ul);
        f[40..42].copy_from_slice(&pseudo.to_be_bytes());
        let oob = TxOob { comp_iphdr_csum: true, comp_udp_csum: true, trans_off: 34, ..Default::default() };
        tx_offload(&mut f, &oob);
        assert_eq!(f, good);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 1u32;
        for len in 0..200 {
            let mut f: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                    (x >> 24) as u8
                })
                .collect();
            if len > 14 {
                f[12] = 0x08;
                f[13] = 0;
            }
            let mut o = RxCompOob::default();
            rx_flags(&f, &mut o);
            tx_offload(&mut f, &TxOob { comp_tcp_csum: true, comp_iphdr_csum: true, ..Default::default() });
        }
    }
}
