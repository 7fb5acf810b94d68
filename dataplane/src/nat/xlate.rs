//! NAT44 packet translation: classify an IPv4 packet into the tuple NAT
//! looks up, and rewrite its addresses and ports (or ICMP query identifier)
//! in place with incremental checksum updates (RFC 1624 eqn. 3).
//!
//! Every function here is pure, allocation-free and panic-free on any
//! packet content and any (even inconsistent) [`Layers`]: each read is a
//! checked `get`, and the rewriting functions validate every field they
//! touch before the first write, so a `false` result leaves the frame
//! untouched.
//!
//! All checksum deltas of one packet are accumulated in a `u64` and folded
//! once. For a checksum that was right before, this gives exactly what a
//! full recomputation gives: the covered data always holds another non-zero
//! word (the IPv4 version, the pseudo-header protocol, the ICMP type), so
//! the ones-complement sum never folds to the "negative zero" ambiguity.
//! Every changed field sits at an even offset of its checksummed region
//! (the embedded packet of an ICMP error starts at ICMP offset 8, and its
//! header length is a multiple of 4), so no byte swapping is needed.

use super::{Tuple, KIND_FLOW, KIND_FRAG};
use crate::wire::checksum::fold;
use crate::wire::icmpv4;
use crate::wire::ip_proto;
use crate::wire::{Frag, L3Kind, Layers};

/// What NAT sees of an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// TCP, UDP, or an ICMP query (echo request/reply 8/0, timestamp
    /// 13/14, information 15/16, address mask 17/18), unfragmented or a
    /// first fragment. For ICMP queries sport = dport = identifier.
    /// `tcp_flags` is the TCP flags byte (0 otherwise). `query_request` is
    /// true for ICMP request types (8, 13, 15, 17), false otherwise.
    Transport { t: Tuple, tcp_flags: u8, query_request: bool },
    /// An ICMP error (type 3 dest unreachable, 11 time exceeded, 12
    /// parameter problem; also 4 source quench, 5 redirect) carrying the
    /// start of a packet; `inner` is the tuple of the embedded packet as it
    /// is written there (IPv4 header + at least 8 bytes of L4 needed for
    /// TCP/UDP ports or the ICMP query id; the embedded packet must be TCP,
    /// UDP or an ICMP query, else Flow::Other). `outer` is the tuple of the
    /// error packet itself (src, dst, proto 1, sport = dport = 0).
    IcmpError { outer: Tuple, inner: Tuple },
    /// A later fragment (offset > 0): `t` = {src, dst, sport: IP
    /// identification, dport: 0, proto, kind: KIND_FRAG}.
    LaterFragment { t: Tuple },
    /// IPv4 but nothing NAT can translate by port: other protocols, other
    /// ICMP types, truncated inner packets. `t` has src/dst/proto, ports 0.
    Other { t: Tuple },
    /// Not IPv4 (also when `l` does not point at a readable IPv4 header).
    NotIpv4,
}

/// Fixed IPv4 header length (without options).
const IPV4_HDR: usize = 20;
/// TCP header length without options.
const TCP_HDR: usize = 20;
/// UDP header length.
const UDP_HDR: usize = 8;
/// ICMP header length (type, code, checksum, 4-byte rest of header).
const ICMP_HDR: usize = 8;
/// Bytes of the embedded packet's L4 header an ICMP error must quote.
const INNER_L4_MIN: usize = 8;

/// IPv4 header field offsets.
const IP_ID: usize = 4;
const IP_FRAG: usize = 6;
const IP_PROTO: usize = 9;
const IP_CSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;
/// Offset of the checksum in a TCP header.
const TCP_CSUM: usize = 16;
/// Offset of the flags byte in a TCP header.
const TCP_FLAGS: usize = 13;
/// Offset of the checksum in a UDP header.
const UDP_CSUM: usize = 6;
/// Offset of the checksum in an ICMP header.
const ICMP_CSUM: usize = 2;
/// Offset of the query identifier in an ICMP header.
const ICMP_IDENT: usize = 4;

/// Whether an ICMP type is a query (request or reply) with an identifier.
#[inline(always)]
const fn is_query(ty: u8) -> bool {
    matches!(ty, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// Whether an ICMP query type is the request.
#[inline(always)]
const fn is_request(ty: u8) -> bool {
    matches!(ty, 8 | 13 | 15 | 17)
}

/// Big-endian `u16` at `b[at..at + 2]`, if in range.
#[inline(always)]
fn rd16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

/// Big-endian `u32` at `b[at..at + 4]`, if in range.
#[inline(always)]
fn rd32(b: &[u8], at: usize) -> Option<u32> {
    match b.get(at..at.checked_add(4)?) {
        Some(&[w, x, y, z]) => Some(u32::from_be_bytes([w, x, y, z])),
        _ => None,
    }
}

/// Write `v` big-endian at `b[at..at + 2]`; a no-op if out of range
/// (callers validate the range first).
#[inline(always)]
fn wr16(b: &mut [u8], at: usize, v: u16) {
    if let Some([x, y]) = b.get_mut(at..at.wrapping_add(2)) {
        [*x, *y] = v.to_be_bytes();
    }
}

/// Write `v` big-endian at `b[at..at + 4]`; a no-op if out of range.
#[inline(always)]
fn wr32(b: &mut [u8], at: usize, v: u32) {
    if let Some([w, x, y, z]) = b.get_mut(at..at.wrapping_add(4)) {
        [*w, *x, *y, *z] = v.to_be_bytes();
    }
}

/// Ones-complement delta of a 16-bit word changing from `old` to `new`
/// (`~m + m'` of RFC 1624 eqn. 3), to be added to an accumulator.
#[inline(always)]
const fn d16(old: u16, new: u16) -> u64 {
    (!old) as u64 + new as u64
}

/// Delta of a 32-bit field changing from `old` to `new` (two words).
#[inline(always)]
const fn d32(old: u32, new: u32) -> u64 {
    d16((old >> 16) as u16, (new >> 16) as u16) + d16(old as u16, new as u16)
}

/// Apply an accumulated delta to a checksum: `HC' = ~(~HC + Σ(~m + m'))`.
#[inline(always)]
const fn adjust(csum: u16, delta: u64) -> u16 {
    !fold((!csum) as u64 + delta)
}

/// The IPv4 packet bounds `(l3, end)` of `l`: the header starts at `l3`,
/// the packet ends at `end` (clamped to the frame), and at least the fixed
/// header lies in between. None if `l` is not IPv4 or the header is not
/// there.
#[inline(always)]
fn ipv4_bounds(frame: &[u8], l: &Layers) -> Option<(usize, usize)> {
    if l.l3 != L3Kind::Ipv4 {
        return None;
    }
    let l3 = usize::from(l.l3_off);
    let end = frame.len().min(l3 + usize::from(l.l3_len));
    if l3 + IPV4_HDR > end {
        return None;
    }
    Some((l3, end))
}

/// `{src, dst, proto}` of the IPv4 header at `l3` (ports 0, KIND_FLOW) and
/// its identification.
#[inline(always)]
fn ip_tuple(frame: &[u8], l3: usize) -> Option<(Tuple, u16)> {
    let src = rd32(frame, l3 + IP_SRC)?;
    let dst = rd32(frame, l3 + IP_DST)?;
    let proto = *frame.get(l3 + IP_PROTO)?;
    let id = rd16(frame, l3 + IP_ID)?;
    Some((Tuple { src, dst, sport: 0, dport: 0, proto, kind: KIND_FLOW }, id))
}

/// The L4 offset of `l` if the L4 header is in this packet and after the
/// fixed IPv4 header at `l3`.
#[inline(always)]
fn l4_start(l: &Layers, l3: usize) -> Option<usize> {
    let l4 = usize::from(l.l4_off);
    if l.frag == Frag::Later || l4 < l3 + IPV4_HDR {
        return None;
    }
    Some(l4)
}

/// The embedded packet of an ICMP error, as found in the quoted bytes.
#[derive(Clone, Copy)]
struct Inner {
    /// Its tuple as written (ICMP query: sport = dport = identifier).
    t: Tuple,
    /// Its IPv4 header length in bytes (options included).
    hl: usize,
}

/// Parse the packet embedded in an ICMP error; `q` is the ICMP message
/// from offset 8 to the end of the outer packet. Needs a whole IPv4 header
/// (version 4, IHL >= 5, fragment offset 0) and 8 bytes of a TCP, UDP or
/// ICMP query header.
#[inline]
fn inner_packet(q: &[u8]) -> Option<Inner> {
    let &[vihl, ..] = q else { return None };
    let hl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || hl < IPV4_HDR || rd16(q, IP_FRAG)? & 0x1fff != 0 {
        return None;
    }
    let l4 = q.get(hl..hl + INNER_L4_MIN)?;
    let (mut t, _) = ip_tuple(q, 0)?;
    match t.proto {
        ip_proto::TCP | ip_proto::UDP => {
            t.sport = rd16(l4, 0)?;
            t.dport = rd16(l4, 2)?;
        }
        ip_proto::ICMP if l4.first().is_some_and(|&ty| is_query(ty)) => {
            t.sport = rd16(l4, ICMP_IDENT)?;
            t.dport = t.sport;
        }
        _ => return None,
    }
    Some(Inner { t, hl })
}

/// Classify an IPv4 packet for NAT (see [`Flow`]).
#[inline]
pub fn classify(frame: &[u8], l: &Layers) -> Flow {
    let Some((l3, end)) = ipv4_bounds(frame, l) else { return Flow::NotIpv4 };
    let Some((base, id)) = ip_tuple(frame, l3) else { return Flow::NotIpv4 };
    if l.frag == Frag::Later {
        return Flow::LaterFragment { t: Tuple { sport: id, kind: KIND_FRAG, ..base } };
    }
    let other = Flow::Other { t: base };
    let Some(seg) = l4_start(l, l3).and_then(|l4| frame.get(l4..end)) else { return other };
    match base.proto {
        ip_proto::TCP if seg.len() >= TCP_HDR => {
            let (Some(sport), Some(dport)) = (rd16(seg, 0), rd16(seg, 2)) else { return other };
            let tcp_flags = seg.get(TCP_FLAGS).copied().unwrap_or(0);
            Flow::Transport { t: Tuple { sport, dport, ..base }, tcp_flags, query_request: false }
        }
        ip_proto::UDP if seg.len() >= UDP_HDR => {
            let (Some(sport), Some(dport)) = (rd16(seg, 0), rd16(seg, 2)) else { return other };
            Flow::Transport { t: Tuple { sport, dport, ..base }, tcp_flags: 0, query_request: false }
        }
        ip_proto::ICMP if seg.len() >= ICMP_HDR => {
            let ty = seg.first().copied().unwrap_or(0xff);
            if is_query(ty) {
                let Some(ident) = rd16(seg, ICMP_IDENT) else { return other };
                Flow::Transport {
                    t: Tuple { sport: ident, dport: ident, ..base },
                    tcp_flags: 0,
                    query_request: is_request(ty),
                }
            } else if icmpv4::is_error(ty) {
                match seg.get(ICMP_HDR..).and_then(inner_packet) {
                    Some(inner) => Flow::IcmpError { outer: base, inner: inner.t },
                    None => other,
                }
            } else {
                other
            }
        }
        _ => other,
    }
}

/// For a first fragment (or a whole packet), the fragment-follow key:
/// {src, dst, sport: IP id, dport: 0, proto, kind: KIND_FRAG}; None if not
/// IPv4.
#[inline]
pub fn frag_key(frame: &[u8], l: &Layers) -> Option<Tuple> {
    let (l3, _) = ipv4_bounds(frame, l)?;
    let (base, id) = ip_tuple(frame, l3)?;
    Some(Tuple { sport: id, kind: KIND_FRAG, ..base })
}

/// What [`rewrite`] changes beyond the IPv4 addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L4Edit {
    /// Addresses only.
    None,
    /// TCP/UDP ports and the pseudo-header checksum at L4 offset `csum`;
    /// `udp`: a zero checksum means none, a computed zero is stored 0xffff.
    Ports { csum: usize, udp: bool },
    /// ICMP query identifier and the ICMP checksum (no pseudo header).
    Ident,
}

/// Rewrites src/dst addresses (and ports / ICMP query identifier) of a
/// Transport packet (or addresses only for LaterFragment/Other packets —
/// ports untouched) so its tuple becomes `to`, updating the IPv4 header
/// checksum and the L4 checksum incrementally (TCP always; UDP only if its
/// checksum is non-zero, and a result of 0x0000 is stored as 0xffff; ICMP
/// query: the ICMP checksum covers no pseudo-header, so only the identifier
/// change updates it; ICMP ident written from `to.sport`). The L4 checksum
/// is updated only when the L4 header is in this packet (not for later
/// fragments: their L4 checksum lives in the first fragment, which got the
/// same delta). Returns false (packet untouched) if the headers are not
/// where `l` says (never panics).
#[inline(always)]
pub fn rewrite(frame: &mut [u8], l: &Layers, to: &Tuple) -> bool {
    let Some((l3, end)) = ipv4_bounds(frame, l) else { return false };
    let Some(&proto) = frame.get(l3 + IP_PROTO) else { return false };
    // Decide, and validate, the L4 edit before the first write. A packet
    // with its L4 header must have it after the fixed IPv4 header.
    let (l4, edit) = match l4_start(l, l3) {
        None if l.frag == Frag::Later => (0, L4Edit::None),
        None => return false,
        Some(l4) => {
            let (need, edit) = match proto {
                ip_proto::TCP => (TCP_HDR, L4Edit::Ports { csum: TCP_CSUM, udp: false }),
                ip_proto::UDP => (UDP_HDR, L4Edit::Ports { csum: UDP_CSUM, udp: true }),
                ip_proto::ICMP if frame.get(l4).is_some_and(|&ty| is_query(ty)) => (ICMP_HDR, L4Edit::Ident),
                ip_proto::ICMP => (ICMP_HDR, L4Edit::None),
                _ => (0, L4Edit::None),
            };
            if l4 + need > end {
                return false;
            }
            (l4, edit)
        }
    };

    let Some(ip) = frame.get_mut(l3..l3 + IPV4_HDR) else { return false };
    let Ok(ip) = <&mut [u8; IPV4_HDR]>::try_from(ip) else { return false };
    let old_src = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let old_dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let ip_csum = u16::from_be_bytes([ip[10], ip[11]]);
    let d_addr = d32(old_src, to.src) + d32(old_dst, to.dst);
    ip[12..16].copy_from_slice(&to.src.to_be_bytes());
    ip[16..20].copy_from_slice(&to.dst.to_be_bytes());
    ip[10..12].copy_from_slice(&adjust(ip_csum, d_addr).to_be_bytes());

    match edit {
        L4Edit::None => {}
        L4Edit::Ports { csum, udp } => {
            let (Some(sport), Some(dport), Some(c)) = (rd16(frame, l4), rd16(frame, l4 + 2), rd16(frame, l4 + csum))
            else {
                return true;
            };
            wr16(frame, l4, to.sport);
            wr16(frame, l4 + 2, to.dport);
            if !(udp && c == 0) {
                let n = adjust(c, d_addr + d16(sport, to.sport) + d16(dport, to.dport));
                wr16(frame, l4 + csum, if udp && n == 0 { 0xffff } else { n });
            }
        }
        L4Edit::Ident => {
            let (Some(ident), Some(c)) = (rd16(frame, l4 + ICMP_IDENT), rd16(frame, l4 + ICMP_CSUM)) else {
                return true;
            };
            wr16(frame, l4 + ICMP_IDENT, to.sport);
            wr16(frame, l4 + ICMP_CSUM, adjust(c, d16(ident, to.sport)));
        }
    }
    true
}

/// Rewrites an ICMP error: outer src/dst become `outer_src`/`outer_dst`
/// (outer IP checksum updated), the embedded packet's tuple becomes
/// `inner_to` (inner IP addresses, inner ports or ICMP query id; inner IP
/// header checksum updated; the inner L4 checksum updated incrementally if
/// its field lies within the quoted bytes — UDP only if non-zero; for an
/// inner ICMP query its checksum at inner-L4 offset 2 for the id change),
/// and the outer ICMP checksum updated incrementally for every 16-bit word
/// changed in the ICMP message (inner addresses, inner checksums, inner
/// ports/id). Returns false (untouched) if malformed.
#[inline]
pub fn rewrite_icmp_error(frame: &mut [u8], l: &Layers, outer_src: u32, outer_dst: u32, inner_to: &Tuple) -> bool {
    let Some((l3, end)) = ipv4_bounds(frame, l) else { return false };
    let Some(icmp) = l4_start(l, l3) else { return false };
    if frame.get(l3 + IP_PROTO) != Some(&ip_proto::ICMP) {
        return false;
    }
    let Some(msg) = frame.get(icmp..end) else { return false };
    match msg.first() {
        Some(&ty) if icmpv4::is_error(ty) && msg.len() >= ICMP_HDR => {}
        _ => return false,
    }
    let Some(inner) = msg.get(ICMP_HDR..).and_then(inner_packet) else { return false };
    // Absolute offsets of the embedded IPv4 header and its L4 header; both
    // lie within `end` (checked by `inner_packet`).
    let q = icmp + ICMP_HDR;
    let il4 = q + inner.hl;
    let (Some(out_src), Some(out_dst), Some(out_csum), Some(icmp_csum), Some(in_csum)) = (
        rd32(frame, l3 + IP_SRC),
        rd32(frame, l3 + IP_DST),
        rd16(frame, l3 + IP_CSUM),
        rd16(frame, icmp + ICMP_CSUM),
        rd16(frame, q + IP_CSUM),
    ) else {
        return false;
    };

    // Outer IPv4 header.
    wr32(frame, l3 + IP_SRC, outer_src);
    wr32(frame, l3 + IP_DST, outer_dst);
    wr16(frame, l3 + IP_CSUM, adjust(out_csum, d32(out_src, outer_src) + d32(out_dst, outer_dst)));

    // Embedded IPv4 header; every word changed below is also a change of
    // the ICMP message, collected in `d_icmp`.
    let d_in_addr = d32(inner.t.src, inner_to.src) + d32(inner.t.dst, inner_to.dst);
    let new_in_csum = adjust(in_csum, d_in_addr);
    let mut d_icmp = d_in_addr + d16(in_csum, new_in_csum);
    wr32(frame, q + IP_SRC, inner_to.src);
    wr32(frame, q + IP_DST, inner_to.dst);
    wr16(frame, q + IP_CSUM, new_in_csum);

    // Embedded L4 header.
    if inner.t.proto == ip_proto::ICMP {
        let d_id = d16(inner.t.sport, inner_to.sport);
        if let Some(c) = rd16(frame, il4 + ICMP_CSUM) {
            let n = adjust(c, d_id);
            d_icmp += d_id + d16(c, n);
            wr16(frame, il4 + ICMP_IDENT, inner_to.sport);
            wr16(frame, il4 + ICMP_CSUM, n);
        }
    } else {
        let udp = inner.t.proto == ip_proto::UDP;
        let d_ports = d16(inner.t.sport, inner_to.sport) + d16(inner.t.dport, inner_to.dport);
        d_icmp += d_ports;
        wr16(frame, il4, inner_to.sport);
        wr16(frame, il4 + 2, inner_to.dport);
        let at = il4 + if udp { UDP_CSUM } else { TCP_CSUM };
        if at + 2 <= end {
            if let Some(c) = rd16(frame, at) {
                if !(udp && c == 0) {
                    let n = adjust(c, d_in_addr + d_ports);
                    let n = if udp && n == 0 { 0xffff } else { n };
                    d_icmp += d16(c, n);
                    wr16(frame, at, n);
                }
            }
        }
    }

    wr16(frame, icmp + ICMP_CSUM, adjust(icmp_csum, d_icmp));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{checksum, parse_frame};
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

    /// Inside host, its external (translated) address, a server, a router.
    const INSIDE: u32 = 0x0a00_0005; // 10.0.0.5
    const EXTERNAL: u32 = 0xcb00_7101; // 203.0.113.1
    const SERVER: u32 = 0xc633_6407; // 198.51.100.7
    const ROUTER: u32 = 0xc000_0201; // 192.0.2.1

    const ETH_HDR: usize = 14;

    // ---- builders ------------------------------------------------------

    /// An IPv4 packet with a correct header checksum. `frag` is the flags +
    /// fragment offset field; `opts` a multiple of 4 bytes.
    fn ip4(src: u32, dst: u32, proto: u8, id: u16, frag: u16, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        assert!(opts.len().is_multiple_of(4) && opts.len() <= 40);
        let hl = IPV4_HDR + opts.len();
        let total = hl + payload.len();
        let mut p = vec![0x40 | (hl / 4) as u8, 0];
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0]);
        p.extend_from_slice(&src.to_be_bytes());
        p.extend_from_slice(&dst.to_be_bytes());
        p.extend_from_slice(opts);
        let c = checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// A TCP segment (20-byte header) with a correct checksum.
    fn tcp(src: u32, dst: u32, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        s.extend_from_slice(&0x1122_3344u32.to_be_bytes());
        s.extend_from_slice(&0x5566_7788u32.to_be_bytes());
        s.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        s.extend_from_slice(payload);
        let c = checksum::l4_checksum_v4(src.to_be_bytes(), dst.to_be_bytes(), ip_proto::TCP, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }

    /// A UDP datagram with a correct checksum (or none if `!with_csum`).
    fn udp(src: u32, dst: u32, sport: u16, dport: u16, payload: &[u8], with_csum: bool) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        s.extend_from_slice(&((UDP_HDR + payload.len()) as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(payload);
        if with_csum {
            let c = checksum::l4_checksum_v4(src.to_be_bytes(), dst.to_be_bytes(), ip_proto::UDP, &s);
            s[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        }
        s
    }

    /// An ICMP message with a correct checksum.
    fn icmp(ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut m = vec![ty, code, 0, 0];
        m.extend_from_slice(&rest);
        m.extend_from_slice(payload);
        let c = checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    /// An ICMP query (echo, timestamp, ...) with identifier and sequence.
    fn query(ty: u8, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let [a, b] = ident.to_be_bytes();
        let [c, d] = seq.to_be_bytes();
        icmp(ty, 0, [a, b, c, d], payload)
    }

    fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn frame(ip: &[u8]) -> Vec<u8> {
        eth(0x0800, ip)
    }

    fn tcp_frame(t: &Tuple, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let s = tcp(t.src, t.dst, t.sport, t.dport, flags, payload);
        frame(&ip4(t.src, t.dst, ip_proto::TCP, 0x1234, 0x4000, opts, &s))
    }

    fn udp_frame(t: &Tuple, opts: &[u8], payload: &[u8], with_csum: bool) -> Vec<u8> {
        let s = udp(t.src, t.dst, t.sport, t.dport, payload, with_csum);
        frame(&ip4(t.src, t.dst, ip_proto::UDP, 0x1234, 0, opts, &s))
    }

    fn query_frame(t: &Tuple, ty: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let m = query(ty, t.sport, 7, payload);
        frame(&ip4(t.src, t.dst, ip_proto::ICMP, 0x1234, 0, opts, &m))
    }

    /// An ICMP error of `ty` from `src` to `dst` quoting the first `quote`
    /// bytes of the IPv4 packet `inner`.
    fn error_frame(ty: u8, src: u32, dst: u32, inner: &[u8], quote: usize) -> Vec<u8> {
        let q = &inner[..quote.min(inner.len())];
        frame(&ip4(src, dst, ip_proto::ICMP, 0x4321, 0, &[], &icmp(ty, 0, [0; 4], q)))
    }

    fn parse(f: &[u8]) -> Layers {
        parse_frame(f, true).expect("test frame parses")
    }

    fn tuple(src: u32, dst: u32, sport: u16, dport: u16, proto: u8) -> Tuple {
        Tuple { src, dst, sport, dport, proto, kind: KIND_FLOW }
    }

    /// The tuple of a `Flow::Transport`.
    fn transport(f: Flow) -> Option<Tuple> {
        match f {
            Flow::Transport { t, .. } => Some(t),
            _ => None,
        }
    }

    /// The IPv4 packet (without link padding) of a parsed frame.
    fn l3_bytes<'a>(f: &'a [u8], l: &Layers) -> &'a [u8] {
        &f[usize::from(l.l3_off)..usize::from(l.l3_off) + usize::from(l.l3_len)]
    }

    // ---- checksum oracles (full recomputation) -------------------------

    /// The IPv4 header checksum of the packet `ip` as a full recomputation
    /// gives it.
    fn full_ip_csum(ip: &[u8]) -> u16 {
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let mut h = ip[..hl].to_vec();
        h[10] = 0;
        h[11] = 0;
        checksum::checksum(&h)
    }

    fn stored(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Offset of the checksum in an L4 header of `proto`.
    fn csum_off(proto: u8) -> usize {
        match proto {
            ip_proto::TCP => TCP_CSUM,
            ip_proto::UDP => UDP_CSUM,
            _ => ICMP_CSUM,
        }
    }

    /// The L4 checksum of `seg` as a full recomputation gives it (UDP: a
    /// computed 0 is 0xffff; ICMP: no pseudo header).
    fn full_l4_csum(src: u32, dst: u32, proto: u8, seg: &[u8]) -> u16 {
        let mut s = seg.to_vec();
        let at = csum_off(proto);
        s[at] = 0;
        s[at + 1] = 0;
        match proto {
            ip_proto::ICMP => checksum::checksum(&s),
            _ => {
                let c = checksum::l4_checksum_v4(src.to_be_bytes(), dst.to_be_bytes(), proto, &s);
                if proto == ip_proto::UDP && c == 0 {
                    0xffff
                } else {
                    c
                }
            }
        }
    }

    /// Assert that the IPv4 packet `ip` (whole, not truncated) has exactly
    /// the header and L4 checksums a full recomputation gives (a zero UDP
    /// checksum stays "none").
    fn assert_checksums(ip: &[u8]) {
        assert_eq!(stored(ip, IP_CSUM), full_ip_csum(ip), "IPv4 header checksum");
        assert!(checksum::verify(&ip[..usize::from(ip[0] & 0x0f) * 4]));
        let hl = usize::from(ip[0] & 0x0f) * 4;
        let (src, dst, proto) = (rd32(ip, IP_SRC).expect("src"), rd32(ip, IP_DST).expect("dst"), ip[IP_PROTO]);
        let seg = &ip[hl..];
        let at = csum_off(proto);
        if proto == ip_proto::UDP && stored(seg, at) == 0 {
            return;
        }
        assert_eq!(stored(seg, at), full_l4_csum(src, dst, proto, seg), "L4 checksum of proto {proto}");
        if proto == ip_proto::ICMP {
            assert!(checksum::verify(seg));
        } else {
            assert!(checksum::verify_l4_v4(src.to_be_bytes(), dst.to_be_bytes(), proto, seg));
        }
    }

    /// Assert that an ICMP error frame is consistent after a rewrite:
    /// outer IPv4 and ICMP checksums equal full recomputation, the inner
    /// IPv4 header checksum verifies, and (if `full_quote`) so does the
    /// inner L4 checksum.
    fn assert_error_checksums(f: &[u8], full_quote: bool) {
        let l = parse(f);
        let ip = l3_bytes(f, &l);
        assert_checksums(ip);
        let msg = &ip[usize::from(l.l4_off - l.l3_off)..];
        let inner = &msg[ICMP_HDR..];
        assert_eq!(stored(inner, IP_CSUM), full_ip_csum(inner), "inner IPv4 header checksum");
        if full_quote {
            assert_checksums(inner);
        }
    }

    // ---- classify -------------------------------------------------------

    #[test]
    fn classify_tcp_udp() {
        let t = tuple(INSIDE, SERVER, 40000, 443, ip_proto::TCP);
        let f = tcp_frame(&t, 0x12, &[], b"hello");
        assert_eq!(classify(&f, &parse(&f)), Flow::Transport { t, tcp_flags: 0x12, query_request: false });

        let t = tuple(INSIDE, SERVER, 5353, 53, ip_proto::UDP);
        let f = udp_frame(&t, &[], b"query", true);
        assert_eq!(classify(&f, &parse(&f)), Flow::Transport { t, tcp_flags: 0, query_request: false });

        // With IP options.
        let f = udp_frame(&t, &[1, 1, 1, 0, 1, 1, 1, 0], b"q", false);
        assert_eq!(classify(&f, &parse(&f)), Flow::Transport { t, tcp_flags: 0, query_request: false });
    }

    #[test]
    fn classify_icmp_queries() {
        for (ty, request) in
            [(8, true), (0, false), (13, true), (14, false), (15, true), (16, false), (17, true), (18, false)]
        {
            let t = tuple(INSIDE, SERVER, 0x4242, 0x4242, ip_proto::ICMP);
            let f = query_frame(&t, ty, &[], &[0; 12]);
            assert_eq!(
                classify(&f, &parse(&f)),
                Flow::Transport { t, tcp_flags: 0, query_request: request },
                "ICMP type {ty}"
            );
        }
        // Neither query nor error: router advertisement.
        let f = frame(&ip4(ROUTER, INSIDE, ip_proto::ICMP, 1, 0, &[], &icmp(9, 0, [0; 4], &[0; 8])));
        assert_eq!(classify(&f, &parse(&f)), Flow::Other { t: tuple(ROUTER, INSIDE, 0, 0, ip_proto::ICMP) });
    }

    #[test]
    fn classify_icmp_errors() {
        let outer = tuple(ROUTER, EXTERNAL, 0, 0, ip_proto::ICMP);
        let opts = [1u8, 1, 1, 0];
        for opts in [&[][..], &opts[..]] {
            let u = tuple(EXTERNAL, SERVER, 40000, 53, ip_proto::UDP);
            let inner_udp = ip4(u.src, u.dst, ip_proto::UDP, 9, 0, opts, &udp(u.src, u.dst, 40000, 53, b"abc", true));
            let t = tuple(EXTERNAL, SERVER, 40001, 80, ip_proto::TCP);
            let inner_tcp = ip4(t.src, t.dst, ip_proto::TCP, 9, 0, opts, &tcp(t.src, t.dst, 40001, 80, 0x02, b""));
            let e = tuple(EXTERNAL, SERVER, 0x9999, 0x9999, ip_proto::ICMP);
            let inner_echo = ip4(e.src, e.dst, ip_proto::ICMP, 9, 0, opts, &query(8, 0x9999, 1, b"ping"));
            let hl = IPV4_HDR + opts.len();
            for (inner, want) in [(&inner_udp, u), (&inner_tcp, t), (&inner_echo, e)] {
                for ty in [3u8, 4, 5, 11, 12] {
                    for quote in [inner.len(), hl + 8] {
                        let f = error_frame(ty, ROUTER, EXTERNAL, inner, quote);
                        assert_eq!(classify(&f, &parse(&f)), Flow::IcmpError { outer, inner: want });
                    }
                }
                // Truncated: header + 7 bytes, or only part of the header.
                for quote in [hl + 7, hl, 12] {
                    let f = error_frame(11, ROUTER, EXTERNAL, inner, quote);
                    assert_eq!(classify(&f, &parse(&f)), Flow::Other { t: outer });
                }
            }
        }
        // The embedded packet is itself an ICMP error: not translatable.
        let inner = ip4(EXTERNAL, SERVER, ip_proto::ICMP, 9, 0, &[], &icmp(3, 3, [0; 4], &[0x45; 28]));
        let f = error_frame(11, ROUTER, EXTERNAL, &inner, inner.len());
        assert_eq!(classify(&f, &parse(&f)), Flow::Other { t: outer });
        // The embedded packet is GRE.
        let inner = ip4(EXTERNAL, SERVER, 47, 9, 0, &[], &[0; 8]);
        let f = error_frame(3, ROUTER, EXTERNAL, &inner, inner.len());
        assert_eq!(classify(&f, &parse(&f)), Flow::Other { t: outer });
        // The embedded packet is a later fragment.
        let inner = ip4(EXTERNAL, SERVER, ip_proto::UDP, 9, 0x0010, &[], &[0; 16]);
        let f = error_frame(3, ROUTER, EXTERNAL, &inner, inner.len());
        assert_eq!(classify(&f, &parse(&f)), Flow::Other { t: outer });
    }

    #[test]
    fn classify_fragments() {
        let seg = udp(INSIDE, SERVER, 1000, 2000, &[7; 32], true);
        // First fragment: UDP header + 16 bytes, MF set.
        let first = frame(&ip4(INSIDE, SERVER, ip_proto::UDP, 0xbeef, 0x2000, &[], &seg[..24]));
        let l = parse(&first);
        assert_eq!(l.frag, Frag::First);
        let t = tuple(INSIDE, SERVER, 1000, 2000, ip_proto::UDP);
        assert_eq!(classify(&first, &l), Flow::Transport { t, tcp_flags: 0, query_request: false });
        let key = Tuple { src: INSIDE, dst: SERVER, sport: 0xbeef, dport: 0, proto: ip_proto::UDP, kind: KIND_FRAG };
        assert_eq!(frag_key(&first, &l), Some(key));
        // Later fragment at offset 24 (3 units).
        let later = frame(&ip4(INSIDE, SERVER, ip_proto::UDP, 0xbeef, 3, &[], &seg[24..]));
        let l = parse(&later);
        assert_eq!(l.frag, Frag::Later);
        assert_eq!(classify(&later, &l), Flow::LaterFragment { t: key });
        assert_eq!(frag_key(&later, &l), Some(key));
    }

    #[test]
    fn classify_other_and_not_ipv4() {
        let f = frame(&ip4(INSIDE, SERVER, 47, 1, 0, &[], &[0; 12]));
        assert_eq!(classify(&f, &parse(&f)), Flow::Other { t: tuple(INSIDE, SERVER, 0, 0, 47) });

        // ARP request (Ethernet/IPv4).
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1];
        arp.extend_from_slice(&INSIDE.to_be_bytes());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&SERVER.to_be_bytes());
        let f = eth(0x0806, &arp);
        let l = parse(&f);
        assert_eq!(l.l3, L3Kind::Arp);
        assert_eq!(classify(&f, &l), Flow::NotIpv4);
        assert_eq!(frag_key(&f, &l), None);

        // IPv6 with no next header.
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        v6.extend_from_slice(&[0x20; 32]);
        let f = eth(0x86dd, &v6);
        let l = parse(&f);
        assert_eq!(l.l3, L3Kind::Ipv6);
        assert_eq!(classify(&f, &l), Flow::NotIpv4);
        assert_eq!(frag_key(&f, &l), None);
        assert!(!rewrite(&mut f.clone(), &l, &Tuple::default()));
    }

    // ---- rewrite --------------------------------------------------------

    /// Rewrite `f` to `to`, check checksums against full recomputation and
    /// the new tuple, and that nothing beyond the translated fields moved.
    fn rewrite_and_check(f: &[u8], to: &Tuple) -> Vec<u8> {
        let l = parse(f);
        let mut g = f.to_vec();
        assert!(rewrite(&mut g, &l, to));
        assert_checksums(l3_bytes(&g, &l));
        assert_eq!(transport(classify(&g, &l)), Some(*to));
        // Only addresses, ports/ident and checksums may differ.
        let l3 = usize::from(l.l3_off);
        let l4 = usize::from(l.l4_off);
        let allowed = |i: usize| {
            (l3 + IP_CSUM..l3 + IP_DST + 4).contains(&i)
                || (l4..l4 + 4).contains(&i)
                || (l4 + 4..l4 + 6).contains(&i) && f[l3 + IP_PROTO] == ip_proto::ICMP
                || (l4 + 6..l4 + 8).contains(&i) && f[l3 + IP_PROTO] == ip_proto::UDP
                || (l4 + 16..l4 + 18).contains(&i) && f[l3 + IP_PROTO] == ip_proto::TCP
        };
        for (i, (a, b)) in f.iter().zip(g.iter()).enumerate() {
            assert!(a == b || allowed(i), "byte {i} changed");
        }
        g
    }

    #[test]
    fn rewrite_tcp_udp() {
        let from = tuple(INSIDE, SERVER, 40000, 443, ip_proto::TCP);
        let to = tuple(EXTERNAL, SERVER, 1025, 443, ip_proto::TCP);
        for opts in [&[][..], &[1, 1, 1, 0, 0x94, 4, 0, 0][..]] {
            for payload in [&b""[..], b"x", b"odd-length payload"] {
                let f = tcp_frame(&from, 0x18, opts, payload);
                let g = rewrite_and_check(&f, &to);
                // And back (the reply direction uses the reverse tuples).
                assert_eq!(rewrite_and_check(&g, &from), f);
                let from = Tuple { proto: ip_proto::UDP, ..from };
                let to = Tuple { src: 0x0102_0304, dst: 0xfffe_fdfc, sport: 0, dport: 65535, ..from };
                let f = udp_frame(&from, opts, payload, true);
                let g = rewrite_and_check(&f, &to);
                assert_eq!(rewrite_and_check(&g, &from), f);
            }
        }
    }

    #[test]
    fn rewrite_udp_zero_checksum_stays_zero() {
        let from = tuple(INSIDE, SERVER, 5000, 53, ip_proto::UDP);
        let to = tuple(EXTERNAL, 0x0808_0808, 61000, 5353, ip_proto::UDP);
        let f = udp_frame(&from, &[], b"dns", false);
        let g = rewrite_and_check(&f, &to);
        let l = parse(&g);
        assert_eq!(stored(&g, usize::from(l.l4_off) + UDP_CSUM), 0);
    }

    #[test]
    fn rewrite_udp_checksum_becoming_zero_is_ffff() {
        let from = tuple(INSIDE, SERVER, 5000, 53, ip_proto::UDP);
        let f = udp_frame(&from, &[], b"some payload!", true);
        let l = parse(&f);
        let l4 = usize::from(l.l4_off);
        // Search the source port that makes the translated checksum 0.
        let mut seg = l3_bytes(&f, &l)[IPV4_HDR..].to_vec();
        let sport = (0..=u16::MAX)
            .find(|&p| {
                seg[0..2].copy_from_slice(&p.to_be_bytes());
                seg[6..8].copy_from_slice(&[0, 0]);
                checksum::l4_checksum_v4(EXTERNAL.to_be_bytes(), SERVER.to_be_bytes(), ip_proto::UDP, &seg) == 0
            })
            .expect("some port gives a zero checksum");
        let to = tuple(EXTERNAL, SERVER, sport, 53, ip_proto::UDP);
        let g = rewrite_and_check(&f, &to);
        assert_eq!(stored(&g, l4 + UDP_CSUM), 0xffff);
        // Translating back from 0xffff restores the original exactly.
        assert_eq!(rewrite_and_check(&g, &from), f);
    }

    #[test]
    fn rewrite_icmp_echo() {
        for ty in [8u8, 0, 13, 17] {
            let from = tuple(INSIDE, SERVER, 0x1111, 0x1111, ip_proto::ICMP);
            let to = tuple(EXTERNAL, SERVER, 0x9999, 0x9999, ip_proto::ICMP);
            let f = query_frame(&from, ty, &[], b"abcdefghijklmnopq");
            let g = rewrite_and_check(&f, &to);
            let l = parse(&g);
            assert!(checksum::verify(&l3_bytes(&g, &l)[IPV4_HDR..]));
            assert_eq!(rewrite_and_check(&g, &from), f);
        }
        // The identifier comes from `to.sport`.
        let from = tuple(INSIDE, SERVER, 7, 7, ip_proto::ICMP);
        let f = query_frame(&from, 8, &[], b"");
        let mut g = f.clone();
        let l = parse(&g);
        assert!(rewrite(&mut g, &l, &tuple(EXTERNAL, SERVER, 0x0102, 0x0304, ip_proto::ICMP)));
        assert_eq!(stored(&g, usize::from(l.l4_off) + ICMP_IDENT), 0x0102);
        assert_checksums(l3_bytes(&g, &l));
    }

    #[test]
    fn rewrite_fragments_keep_the_datagram_checksum() {
        for proto in [ip_proto::UDP, ip_proto::TCP] {
            let to = tuple(EXTERNAL, 0x0909_0909, 33333, 2000, proto);
            let seg = match proto {
                ip_proto::UDP => udp(INSIDE, SERVER, 1000, 2000, &[0xa5; 35], true),
                _ => tcp(INSIDE, SERVER, 1000, 2000, 0x10, &[0xa5; 35]),
            };
            let mut first = frame(&ip4(INSIDE, SERVER, proto, 77, 0x2000, &[], &seg[..32]));
            let mut later = frame(&ip4(INSIDE, SERVER, proto, 77, 4, &[], &seg[32..]));
            let lf = parse(&first);
            let ll = parse(&later);
            let later0 = later.clone();
            assert!(rewrite(&mut first, &lf, &to));
            assert!(rewrite(&mut later, &ll, &to));
            // Later fragment: addresses and header checksum only.
            assert_eq!(stored(&later, ETH_HDR + IP_CSUM), full_ip_csum(&later[ETH_HDR..]));
            assert_eq!(later[ETH_HDR + IPV4_HDR..], later0[ETH_HDR + IPV4_HDR..]);
            assert_eq!(
                classify(&later, &ll),
                Flow::LaterFragment { t: Tuple { sport: 77, dport: 0, kind: KIND_FRAG, ..to } }
            );
            assert_eq!(stored(&first, ETH_HDR + IP_CSUM), full_ip_csum(&first[ETH_HDR..]));
            assert_eq!(transport(classify(&first, &lf)), Some(to));
            // The reassembled datagram verifies with the new addresses.
            let mut whole = first[ETH_HDR + IPV4_HDR..].to_vec();
            whole.extend_from_slice(&later[ETH_HDR + IPV4_HDR..]);
            assert!(checksum::verify_l4_v4(to.src.to_be_bytes(), to.dst.to_be_bytes(), proto, &whole));
        }
    }

    #[test]
    fn rewrite_other_addresses_only() {
        let f = frame(&ip4(INSIDE, SERVER, 47, 1, 0, &[], &[0x55; 12]));
        let l = parse(&f);
        let mut g = f.clone();
        let to = tuple(EXTERNAL, 0x0a0a_0a0a, 1, 2, 47);
        assert!(rewrite(&mut g, &l, &to));
        assert_eq!(stored(&g, ETH_HDR + IP_CSUM), full_ip_csum(&g[ETH_HDR..]));
        assert_eq!(classify(&g, &l), Flow::Other { t: tuple(EXTERNAL, 0x0a0a_0a0a, 0, 0, 47) });
        assert_eq!(g[ETH_HDR + IPV4_HDR..], f[ETH_HDR + IPV4_HDR..]);
        // An ICMP error through `rewrite`: outer addresses only.
        let inner = ip4(EXTERNAL, SERVER, ip_proto::UDP, 9, 0, &[], &udp(EXTERNAL, SERVER, 1, 2, b"", true));
        let f = error_frame(3, ROUTER, EXTERNAL, &inner, inner.len());
        let l = parse(&f);
        let mut g = f.clone();
        assert!(rewrite(&mut g, &l, &tuple(ROUTER, INSIDE, 0, 0, 1)));
        assert_checksums(l3_bytes(&g, &l));
        assert_eq!(g[ETH_HDR + IPV4_HDR..], f[ETH_HDR + IPV4_HDR..]);
    }

    #[test]
    fn rewrite_rejects_inconsistent_layers() {
        let t = tuple(INSIDE, SERVER, 1, 2, ip_proto::TCP);
        let f = tcp_frame(&t, 0x02, &[], b"");
        let l = parse(&f);
        let to = tuple(EXTERNAL, SERVER, 3, 4, ip_proto::TCP);
        let bad = [
            Layers { l4_off: l.l4_off + 1, ..l },
            Layers { l4_off: l.l3_off + 4, ..l },
            Layers { l3_len: 19, ..l },
            Layers { l3_off: f.len() as u16, ..l },
            Layers { l3: L3Kind::Other, ..l },
        ];
        for b in bad {
            let mut g = f.clone();
            assert!(!rewrite(&mut g, &b, &to), "{b:?}");
            assert_eq!(g, f);
            assert!(!rewrite_icmp_error(&mut g, &b, 1, 2, &to));
            assert_eq!(g, f);
        }
        // Not an ICMP error.
        let mut g = f.clone();
        assert!(!rewrite_icmp_error(&mut g, &l, 1, 2, &to));
        assert_eq!(g, f);
        let e = query_frame(&tuple(INSIDE, SERVER, 5, 5, 1), 8, &[], b"");
        let mut g = e.clone();
        assert!(!rewrite_icmp_error(&mut g, &parse(&e), 1, 2, &to));
        assert_eq!(g, e);
    }

    // ---- rewrite_icmp_error ---------------------------------------------

    #[test]
    fn rewrite_icmp_errors() {
        // Inside host INSIDE:1234 was translated to EXTERNAL:40000 towards
        // SERVER; a router on the way sends time exceeded to EXTERNAL.
        let opts = [1u8, 1, 1, 0, 1, 1, 1, 0];
        for opts in [&[][..], &opts[..]] {
            let hl = IPV4_HDR + opts.len();
            let cases = [
                (
                    tuple(EXTERNAL, SERVER, 40000, 53, ip_proto::UDP),
                    tuple(INSIDE, SERVER, 1234, 53, ip_proto::UDP),
                    udp(EXTERNAL, SERVER, 40000, 53, b"query!", true),
                ),
                (
                    tuple(EXTERNAL, SERVER, 40000, 53, ip_proto::UDP),
                    tuple(INSIDE, SERVER, 1234, 53, ip_proto::UDP),
                    udp(EXTERNAL, SERVER, 40000, 53, b"query!", false),
                ),
                (
                    tuple(EXTERNAL, SERVER, 40000, 443, ip_proto::TCP),
                    tuple(INSIDE, SERVER, 1234, 443, ip_proto::TCP),
                    tcp(EXTERNAL, SERVER, 40000, 443, 0x02, b"syn data"),
                ),
                (
                    tuple(EXTERNAL, SERVER, 0x9999, 0x9999, ip_proto::ICMP),
                    tuple(INSIDE, SERVER, 0x1111, 0x1111, ip_proto::ICMP),
                    query(8, 0x9999, 3, b"ping payload"),
                ),
            ];
            for (was, inner_to, seg) in cases {
                let inner = ip4(was.src, was.dst, was.proto, 0x5555, 0, opts, &seg);
                for (quote, full) in [(inner.len(), true), (hl + 8, false)] {
                    let f = error_frame(11, ROUTER, EXTERNAL, &inner, quote);
                    let l = parse(&f);
                    let mut g = f.clone();
                    assert!(rewrite_icmp_error(&mut g, &l, ROUTER, INSIDE, &inner_to));
                    assert_error_checksums(&g, full);
                    let outer = tuple(ROUTER, INSIDE, 0, 0, ip_proto::ICMP);
                    assert_eq!(classify(&g, &l), Flow::IcmpError { outer, inner: inner_to });
                    // A zero inner UDP checksum stays zero.
                    if was.proto == ip_proto::UDP && stored(&seg, UDP_CSUM) == 0 {
                        assert_eq!(stored(&g, usize::from(l.l4_off) + ICMP_HDR + hl + UDP_CSUM), 0);
                    }
                    // And back.
                    assert!(rewrite_icmp_error(&mut g, &l, ROUTER, EXTERNAL, &was));
                    assert_eq!(g, f);
                }
            }
        }
    }

    // ---- properties -------------------------------------------------------

    /// Inner/outer packet kinds for the properties.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Tcp,
        Udp,
        UdpNoCsum,
        EchoRequest,
        EchoReply,
    }

    fn any_kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Tcp),
            Just(Kind::Udp),
            Just(Kind::UdpNoCsum),
            Just(Kind::EchoRequest),
            Just(Kind::EchoReply)
        ]
    }

    /// IP options of 0, 4 or 8 bytes (NOPs and EOL).
    fn any_opts() -> impl Strategy<Value = Vec<u8>> {
        (0usize..3).prop_map(|n| {
            let mut o = vec![1u8; n * 4];
            if let Some(last) = o.last_mut() {
                *last = 0;
            }
            o
        })
    }

    /// The tuple of `k` from these fields (ICMP: dport = sport = id).
    fn kind_tuple(k: Kind, src: u32, dst: u32, sport: u16, dport: u16) -> Tuple {
        match k {
            Kind::Tcp => tuple(src, dst, sport, dport, ip_proto::TCP),
            Kind::Udp | Kind::UdpNoCsum => tuple(src, dst, sport, dport, ip_proto::UDP),
            Kind::EchoRequest | Kind::EchoReply => tuple(src, dst, sport, sport, ip_proto::ICMP),
        }
    }

    /// The L4 segment of `k` for tuple `t`.
    fn kind_segment(k: Kind, t: &Tuple, payload: &[u8]) -> Vec<u8> {
        match k {
            Kind::Tcp => tcp(t.src, t.dst, t.sport, t.dport, 0x10, payload),
            Kind::Udp => udp(t.src, t.dst, t.sport, t.dport, payload, true),
            Kind::UdpNoCsum => udp(t.src, t.dst, t.sport, t.dport, payload, false),
            Kind::EchoRequest => query(8, t.sport, 1, payload),
            Kind::EchoReply => query(0, t.sport, 1, payload),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
            ..ProptestConfig::default()
        })]

        #[test]
        fn rewrite_round_trips(
            k in any_kind(),
            (src, dst, sport, dport) in any::<(u32, u32, u16, u16)>(),
            (nsrc, ndst, nsport, ndport) in any::<(u32, u32, u16, u16)>(),
            opts in any_opts(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let from = kind_tuple(k, src, dst, sport, dport);
            let to = kind_tuple(k, nsrc, ndst, nsport, ndport);
            let f = frame(&ip4(src, dst, from.proto, 42, 0, &opts, &kind_segment(k, &from, &payload)));
            let l = parse(&f);
            let mut g = f.clone();
            prop_assert!(rewrite(&mut g, &l, &to));
            assert_checksums(l3_bytes(&g, &l));
            prop_assert_eq!(transport(classify(&g, &l)), Some(to));
            // Rewritten to what a fresh build of the translated packet is.
            let want = frame(&ip4(nsrc, ndst, from.proto, 42, 0, &opts, &kind_segment(k, &to, &payload)));
            prop_assert_eq!(&g, &want);
            prop_assert!(rewrite(&mut g, &l, &from));
            prop_assert_eq!(g, f);
        }

        #[test]
        fn rewrite_icmp_error_round_trips(
            k in any_kind(),
            ty in prop_oneof![Just(3u8), Just(4), Just(5), Just(11), Just(12)],
            (osrc, odst, nosrc, nodst) in any::<(u32, u32, u32, u32)>(),
            (src, dst, sport, dport) in any::<(u32, u32, u16, u16)>(),
            (nsrc, ndst, nsport, ndport) in any::<(u32, u32, u16, u16)>(),
            opts in any_opts(),
            payload in proptest::collection::vec(any::<u8>(), 0..48),
            quote_extra in 8usize..80,
        ) {
            let was = kind_tuple(k, src, dst, sport, dport);
            let inner_to = kind_tuple(k, nsrc, ndst, nsport, ndport);
            let inner = ip4(src, dst, was.proto, 42, 0, &opts, &kind_segment(k, &was, &payload));
            let quote = IPV4_HDR + opts.len() + quote_extra;
            let f = error_frame(ty, osrc, odst, &inner, quote);
            let l = parse(&f);
            let mut g = f.clone();
            prop_assert!(rewrite_icmp_error(&mut g, &l, nosrc, nodst, &inner_to));
            assert_error_checksums(&g, quote >= inner.len());
            let outer = tuple(nosrc, nodst, 0, 0, ip_proto::ICMP);
            prop_assert_eq!(classify(&g, &l), Flow::IcmpError { outer, inner: inner_to });
            if quote >= inner.len() {
                // The quoted packet is what a fresh build of it would be.
                let want = ip4(nsrc, ndst, was.proto, 42, 0, &opts, &kind_segment(k, &inner_to, &payload));
                prop_assert_eq!(&g[ETH_HDR + IPV4_HDR + ICMP_HDR..], &want[..]);
            }
            prop_assert!(rewrite_icmp_error(&mut g, &l, osrc, odst, &was));
            prop_assert_eq!(g, f);
        }

        #[test]
        fn never_panics_on_random_bytes(
            data in proptest::collection::vec(any::<u8>(), 0..160),
            l in any_layers(),
            to in any_tuple(),
            (osrc, odst) in any::<(u32, u32)>(),
        ) {
            exercise(data, &l, &to, osrc, odst)?;
        }

        #[test]
        fn never_panics_on_damaged_frames(
            which in 0usize..8,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            l in any_layers(),
            to in any_tuple(),
            (osrc, odst) in any::<(u32, u32)>(),
        ) {
            let mut data = sample_frames().swap_remove(which);
            for (i, v) in edits {
                let i = i.index(data.len());
                data[i] = v;
            }
            // The real parse (offsets consistent, content damaged) ...
            if let Ok(real) = parse_frame(&data, false) {
                exercise(data.clone(), &real, &to, osrc, odst)?;
            }
            // ... arbitrary layers ...
            exercise(data.clone(), &l, &to, osrc, odst)?;
            // ... and a truncated buffer under the untruncated parse.
            if let Ok(real) = parse_frame(&data, false) {
                data.truncate(cut.index(data.len() + 1));
                exercise(data, &real, &to, osrc, odst)?;
            }
        }
    }

    fn any_layers() -> impl Strategy<Value = Layers> {
        (
            prop_oneof![0u16..64, any::<u16>()],
            prop_oneof![Just(L3Kind::Ipv4), Just(L3Kind::Ipv6), Just(L3Kind::Arp), Just(L3Kind::Other)],
            prop_oneof![0u16..200, any::<u16>()],
            prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()],
            prop_oneof![0u16..200, any::<u16>()],
            prop_oneof![Just(Frag::None), Just(Frag::First), Just(Frag::Later)],
        )
            .prop_map(|(l3_off, l3, l3_len, l4_proto, l4_off, frag)| Layers {
                vlan_tci: None,
                ethertype: 0x0800,
                l3_off,
                l3,
                l3_len,
                l4_proto,
                l4_off,
                frag,
            })
    }

    fn any_tuple() -> impl Strategy<Value = Tuple> {
        any::<(u32, u32, u16, u16, u8, u8)>().prop_map(|(src, dst, sport, dport, proto, kind)| Tuple {
            src,
            dst,
            sport,
            dport,
            proto,
            kind,
        })
    }

    /// Valid frames of every shape to damage.
    fn sample_frames() -> Vec<Vec<u8>> {
        let t = tuple(INSIDE, SERVER, 1, 2, ip_proto::TCP);
        let u = Tuple { proto: ip_proto::UDP, ..t };
        let e = tuple(INSIDE, SERVER, 3, 3, ip_proto::ICMP);
        let inner_udp = ip4(EXTERNAL, SERVER, 17, 9, 0, &[1, 1, 1, 0], &udp(EXTERNAL, SERVER, 1, 2, b"ab", true));
        let inner_echo = ip4(EXTERNAL, SERVER, 1, 9, 0, &[], &query(8, 5, 6, b"x"));
        vec![
            tcp_frame(&t, 0x02, &[], b"data"),
            udp_frame(&u, &[1, 1, 1, 0], b"data", true),
            query_frame(&e, 8, &[], b"echo"),
            error_frame(3, ROUTER, EXTERNAL, &inner_udp, inner_udp.len()),
            error_frame(11, ROUTER, EXTERNAL, &inner_udp, 32),
            error_frame(11, ROUTER, EXTERNAL, &inner_echo, inner_echo.len()),
            frame(&ip4(INSIDE, SERVER, 17, 7, 5, &[], &[1; 20])),
            frame(&ip4(INSIDE, SERVER, 47, 7, 0, &[], &[1; 20])),
        ]
    }

    /// Run every function on `data` with `l`; a rejected rewrite must leave
    /// the bytes untouched.
    fn exercise(mut data: Vec<u8>, l: &Layers, to: &Tuple, osrc: u32, odst: u32) -> Result<(), TestCaseError> {
        let orig = data.clone();
        let _ = classify(&data, l);
        let _ = frag_key(&data, l);
        if !rewrite(&mut data, l, to) {
            prop_assert_eq!(&data, &orig);
        }
        let before = data.clone();
        if !rewrite_icmp_error(&mut data, l, osrc, odst, to) {
            prop_assert_eq!(&data, &before);
        }
        prop_assert_eq!(data.len(), orig.len());
        Ok(())
    }
}
