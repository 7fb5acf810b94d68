//! IPv4 fragmentation (RFC 791 §3.2, RFC 1812 §5.2.6) for packets larger
//! than the egress MTU.
//!
//! [`fragment_ipv4`] splits one packet without heap allocation: the packet
//! itself becomes the first fragment (trimmed in place) and every other
//! fragment is a fresh buffer from the packet's own pool
//! ([`Pkt::alloc_sibling`]). All buffers are taken before anything is
//! written, so a failure leaves the packet and the output burst as they were;
//! every failure is a [`FragError`] value that maps to a counter.
//!
//! Fragments after the first carry the Ethernet header (VLAN tags included)
//! and a copy of the IPv4 header that keeps only the options with the copy
//! flag set (RFC 791 §3.1), padded with end-of-options to a 4-byte boundary.
//! The input may itself be a fragment: offsets stay relative to the original
//! datagram and MF is set on every piece if it was set on the input.
//!
//! The input header checksum is not checked here (`wire::parse_frame` does
//! that); every fragment gets a freshly computed one.

use core::fmt;

use crate::wire::{checksum, ip_proto, ipv4};
use ports::{Offload, Pkt, PktBurst, RssType};

/// Smallest MTU an IPv4 link may have: every module must forward a 68-byte
/// datagram without further fragmentation (RFC 791 §3.2).
pub const MIN_MTU: u16 = 68;

/// Most fragments (the first one included) one packet is split into.
///
/// 64 covers the largest IPv4 datagram (65535 bytes) on any link with an
/// MTU of 1100 or more, and keeps one packet from taking a quarter of a
/// burst and of a pool cache.
pub const MAX_FRAGMENTS: usize = 64;

/// Fragment offsets count 8-byte units; every payload but the last is a
/// multiple of this.
const FRAG_UNIT: usize = 8;

/// Largest IPv4 datagram: offset plus payload of any fragment must stay
/// below it (a datagram that would reassemble larger is malformed).
const MAX_DATAGRAM: usize = u16::MAX as usize;

/// IPv4 option type octets (RFC 791 §3.1).
mod option {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation.
    pub const NOP: u8 = 1;
    /// The copied flag: the option goes into every fragment.
    pub const COPIED: u8 = 0x80;
}

/// Why a packet was not fragmented. Each variant maps to one counter
/// (see [`FragError::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FragError {
    /// Larger than the MTU with the Don't Fragment flag set (the caller
    /// answers with ICMP fragmentation needed, RFC 1191).
    DontFragment,
    /// The pool ran out of buffers, or its buffers cannot hold a fragment.
    NoBuffer,
    /// More fragments than [`MAX_FRAGMENTS`] or than the output burst has
    /// room for.
    TooManyFragments,
    /// The IPv4 header, its options, `l3_off`/`l3_len`, or the fragment
    /// offset (reassembling past 65535 bytes) is invalid.
    Malformed,
    /// The MTU is below [`MIN_MTU`].
    MtuTooSmall,
}

impl FragError {
    /// Number of variants.
    pub const COUNT: usize = Self::ALL.len();

    /// Every variant, in discriminant order (`ALL[e as usize] == e`).
    pub const ALL: [FragError; 5] = [
        FragError::DontFragment,
        FragError::NoBuffer,
        FragError::TooManyFragments,
        FragError::Malformed,
        FragError::MtuTooSmall,
    ];

    /// The snake_case counter name.
    pub const fn name(self) -> &'static str {
        match self {
            FragError::DontFragment => "frag_dont_fragment",
            FragError::NoBuffer => "frag_no_buffer",
            FragError::TooManyFragments => "frag_too_many_fragments",
            FragError::Malformed => "frag_malformed",
            FragError::MtuTooSmall => "frag_mtu_too_small",
        }
    }

    /// Dense index (the discriminant), for counter arrays.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FragError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FragError::DontFragment => "packet exceeds the MTU and has DF set",
            FragError::NoBuffer => "no pool buffer for a fragment",
            FragError::TooManyFragments => "too many fragments",
            FragError::Malformed => "malformed IPv4 packet",
            FragError::MtuTooSmall => "MTU below 68",
        })
    }
}

impl std::error::Error for FragError {}

/// Splits the IPv4 packet in `pkt` (an Ethernet frame; L3 header at
/// `l3_off`, L3 length `l3_len` as given by `wire::parse_frame`) for an
/// egress `mtu` (L3 bytes).
///
/// `pkt` itself becomes the first fragment (trimmed in place, Ethernet
/// padding dropped); the other fragments are allocated with
/// [`Pkt::alloc_sibling`], get a copy of the Ethernet header, the IPv4
/// header with only the copied options, and the metadata of `pkt` (port,
/// queue, RSS, VLAN, offload flags), and are pushed into `out` in order.
/// Fragments after the first are also kept within what a pool buffer holds
/// (which only matters when `pkt` reaches into its headroom).
///
/// Returns the number of fragments pushed to `out` (excluding `pkt`): 0,
/// with nothing changed, when the packet already fits the MTU. On error
/// nothing is pushed and `pkt` is unchanged. Errors, in the order checked:
/// [`FragError::MtuTooSmall`], [`FragError::Malformed`] (lengths, header),
/// then, only for a packet larger than the MTU,
/// [`FragError::DontFragment`], [`FragError::Malformed`] (options, offset),
/// [`FragError::TooManyFragments`], [`FragError::NoBuffer`].
///
/// A request for the device to compute the TCP/UDP checksum
/// ([`Offload::TX_L4_CSUM`]) cannot apply to fragments: for an unfragmented
/// TCP or UDP datagram the checksum is computed here instead, and the flag
/// is cleared on every fragment.
///
/// Never panics, never allocates from the heap.
pub fn fragment_ipv4(
    pkt: &mut Pkt,
    l3_off: usize,
    l3_len: usize,
    mtu: u16,
    out: &mut PktBurst,
) -> Result<usize, FragError> {
    if mtu < MIN_MTU {
        return Err(FragError::MtuTooSmall);
    }
    let mtu = usize::from(mtu);
    let Some(mut dg) = Datagram::read(pkt, l3_off, l3_len, mtu)? else { return Ok(0) };

    // The first fragment keeps the whole header: mtu >= 68 and hlen <= 60
    // leave it at least one 8-byte unit, and l3_len > mtu leaves a rest.
    let first_plen = units(mtu.saturating_sub(dg.hlen));
    let rest = dg.plen.saturating_sub(first_plen);
    if rest == 0 {
        return Ok(0);
    }
    // Count against the MTU alone before taking any buffer.
    check_count(rest.div_ceil(units(mtu.saturating_sub(dg.later_len)).max(FRAG_UNIT)), out)?;

    // Take every buffer before writing anything. The first one tells how
    // much a pool buffer holds (all buffers of a pool are alike).
    let base = out.len();
    let probe = pkt.alloc_sibling().ok_or(FragError::NoBuffer)?;
    let later_mtu = mtu.min(probe.tailroom().saturating_sub(l3_off));
    let later_plen = units(later_mtu.saturating_sub(dg.later_len));
    if later_plen == 0 {
        return Err(FragError::NoBuffer);
    }
    let extra = rest.div_ceil(later_plen);
    check_count(extra, out)?;
    let mut next = Some(probe);
    for _ in 0..extra {
        let pushed = match next.take().or_else(|| pkt.alloc_sibling()) {
            // `check_count` left room below the burst limit, so this holds.
            Some(f) => out.push(f).map_err(|_| FragError::TooManyFragments),
            None => Err(FragError::NoBuffer),
        };
        if let Err(e) = pushed {
            rollback(out, base);
            return Err(e);
        }
    }

    // Fill the new fragments; `pkt` is only read until all are done, so the
    // (unreachable) failure below still leaves it untouched.
    let meta = Meta::of(pkt);
    let filled = match out.as_mut_slice().get_mut(base..) {
        Some(frags) => dg.fill(pkt.data(), frags, first_plen, later_plen, &meta),
        None => false,
    };
    if !filled {
        rollback(out, base);
        return Err(FragError::NoBuffer);
    }
    dg.finish_first(pkt, first_plen, meta.offload);
    Ok(extra)
}

/// What [`fragment_ipv4`] reads from the packet before changing anything.
///
/// Every offset and length here is at most the frame length (below 2^16),
/// so the sums of a few of them below cannot overflow.
struct Datagram {
    l3_off: usize,
    /// Header length of the input (and of the first fragment).
    hlen: usize,
    /// Payload length of the input.
    plen: usize,
    /// Fragment offset of the input, in bytes.
    base_off: usize,
    /// MF flag of the input.
    more: bool,
    /// The input header (`hlen` bytes used).
    first_hdr: [u8; ipv4::MAX_HEADER_LEN],
    /// The header of later fragments (`later_len` bytes used).
    later_hdr: [u8; ipv4::MAX_HEADER_LEN],
    later_len: usize,
    /// A TCP/UDP checksum to store on behalf of the device.
    l4_fix: Option<L4Fix>,
}

impl Datagram {
    /// Validates the packet; `None` if it fits the MTU.
    fn read(pkt: &Pkt, l3_off: usize, l3_len: usize, mtu: usize) -> Result<Option<Datagram>, FragError> {
        let l3_end = l3_off.checked_add(l3_len).ok_or(FragError::Malformed)?;
        let l3 = pkt.data().get(l3_off..l3_end).ok_or(FragError::Malformed)?;
        let ip = ipv4::Packet::new_checked(l3).map_err(|_| FragError::Malformed)?;
        if usize::from(ip.total_len()) != l3_len {
            return Err(FragError::Malformed);
        }
        if l3_len <= mtu {
            return Ok(None);
        }
        if ip.dont_frag() {
            return Err(FragError::DontFragment);
        }
        let header = ip.header();
        let mut dg = Datagram {
            l3_off,
            hlen: header.len(),
            // new_checked: header_len <= total_len == l3_len.
            plen: l3_len.saturating_sub(header.len()),
            base_off: usize::from(ip.frag_offset()),
            more: ip.more_frags(),
            first_hdr: [0; ipv4::MAX_HEADER_LEN],
            later_hdr: [0; ipv4::MAX_HEADER_LEN],
            later_len: 0,
            l4_fix: None,
        };
        dg.first_hdr.get_mut(..dg.hlen).ok_or(FragError::Malformed)?.copy_from_slice(header);
        dg.later_len = later_header(header, &mut dg.later_hdr)?;
        // Keeps every offset within the 13-bit field (at most 65528).
        if dg.base_off + dg.plen > MAX_DATAGRAM {
            return Err(FragError::Malformed);
        }
        if pkt.offload().contains(Offload::TX_L4_CSUM) && !ip.is_fragment() {
            dg.l4_fix = l4_checksum(ip.src_octets(), ip.dst_octets(), ip.protocol(), ip.payload());
        }
        Ok(Some(dg))
    }

    /// Writes the fragments after the first into `frags` (fresh buffers);
    /// false if something does not fit.
    fn fill(&mut self, frame: &[u8], frags: &mut [Pkt], first_plen: usize, later_plen: usize, meta: &Meta) -> bool {
        let payload_off = self.l3_off + self.hlen;
        let (Some(eth), Some(payload)) = (frame.get(..self.l3_off), frame.get(payload_off..payload_off + self.plen))
        else {
            return false;
        };
        let mut start = first_plen;
        for f in frags {
            let end = (start + later_plen).min(self.plen);
            let Some(chunk) = payload.get(start..end) else { return false };
            let more = self.more || end < self.plen;
            patch(&mut self.later_hdr, self.later_len + chunk.len(), self.base_off + start, more);
            let Some(hdr) = self.later_hdr.get(..self.later_len) else { return false };
            if !write_frame(f, [eth, hdr, chunk]) {
                return false;
            }
            if let Some(fix) = self.l4_fix.filter(|x| start <= x.off && x.off + 2 <= end) {
                let at = self.l3_off + self.later_len + fix.off - start;
                if let Some(dst) = f.data_mut().get_mut(at..at + 2) {
                    dst.copy_from_slice(&fix.value);
                }
            }
            meta.apply(f);
            start = end;
        }
        start == self.plen
    }

    /// Turns `pkt` into the first fragment.
    fn finish_first(&self, pkt: &mut Pkt, first_plen: usize, offload: Offload) {
        let mut hdr = self.first_hdr;
        patch(&mut hdr, self.hlen + first_plen, self.base_off, true);
        let payload_off = self.l3_off + self.hlen;
        let data = pkt.data_mut();
        // Both ranges were validated by `read` on this unchanged packet.
        if let (Some(dst), Some(src)) = (data.get_mut(self.l3_off..payload_off), hdr.get(..self.hlen)) {
            dst.copy_from_slice(src);
        }
        if let Some(fix) = self.l4_fix.filter(|x| x.off + 2 <= first_plen) {
            if let Some(dst) = data.get_mut(payload_off + fix.off..payload_off + fix.off + 2) {
                dst.copy_from_slice(&fix.value);
            }
        }
        pkt.set_offload(offload);
        pkt.set_len(payload_off + first_plen);
    }
}

/// Metadata copied from the packet to its fragments.
struct Meta {
    port: u16,
    queue: u16,
    rss_hash: u32,
    rss_type: RssType,
    vlan: Option<u16>,
    /// The packet's flags without [`Offload::TX_L4_CSUM`].
    offload: Offload,
}

impl Meta {
    fn of(p: &Pkt) -> Meta {
        Meta {
            port: p.port(),
            queue: p.queue(),
            rss_hash: p.rss_hash(),
            rss_type: p.rss_type(),
            vlan: p.vlan_tci(),
            offload: Offload(p.offload().0 & !Offload::TX_L4_CSUM.0),
        }
    }

    fn apply(&self, p: &mut Pkt) {
        p.set_port(self.port);
        p.set_queue(self.queue);
        p.set_rss(self.rss_hash, self.rss_type);
        p.set_offload(self.offload);
        p.set_vlan_tci(self.vlan);
    }
}

/// A TCP/UDP checksum computed for the whole datagram, to store at payload
/// offset `off` (even, within one 8-byte unit, so in exactly one fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct L4Fix {
    off: usize,
    value: [u8; 2],
}

/// The checksum of a whole TCP or UDP `segment` over IPv4, ignoring what its
/// checksum field holds; `None` for other protocols or a short segment.
fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> Option<L4Fix> {
    let off = match proto {
        ip_proto::TCP => 16,
        ip_proto::UDP => 6,
        _ => return None,
    };
    let before = segment.get(..off)?;
    let after = segment.get(off + 2..)?;
    let len = u16::try_from(segment.len()).ok()?;
    // `before` has an even length, so the two sums add up (RFC 1071).
    let sum = checksum::combine(checksum::sum(before), checksum::sum(after));
    let mut value = !checksum::combine(checksum::pseudo_header_v4(src, dst, proto, len), sum);
    if value == 0 && proto == ip_proto::UDP {
        // Zero means "no checksum" in UDP over IPv4 (RFC 768).
        value = 0xffff;
    }
    Some(L4Fix { off, value: value.to_be_bytes() })
}

/// Builds the header of later fragments from `header` (the input's, options
/// included): the fixed part and only the options with the copied flag,
/// padded with end-of-options to a 4-byte boundary. Returns its length.
fn later_header(header: &[u8], dst: &mut [u8; ipv4::MAX_HEADER_LEN]) -> Result<usize, FragError> {
    let (fixed, opts) = header.split_at_checked(ipv4::HEADER_LEN).ok_or(FragError::Malformed)?;
    dst[..ipv4::HEADER_LEN].copy_from_slice(fixed);
    let mut w = ipv4::HEADER_LEN;
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            option::EOL => break,
            option::NOP => i += 1,
            _ => {
                let len = opts.get(i + 1).map_or(0, |&l| usize::from(l));
                let opt = opts.get(i..i + len).filter(|_| len >= 2).ok_or(FragError::Malformed)?;
                if kind & option::COPIED != 0 {
                    // w - 20 <= i < 40: the copied options fit where they were.
                    dst.get_mut(w..w + len).ok_or(FragError::Malformed)?.copy_from_slice(opt);
                    w += len;
                }
                i += len;
            }
        }
    }
    // End-of-options padding (and nothing stale after it).
    if let Some(rest) = dst.get_mut(w..) {
        rest.fill(0);
    }
    let len = w.next_multiple_of(4);
    // len <= 60, so it fits the IHL nibble.
    ipv4::Packet::new_unchecked(&mut dst[..]).set_header_len(len as u8);
    Ok(len)
}

/// Sets the length, offset and MF of a header (in a full-size array, so no
/// accessor can go out of bounds) and recomputes its checksum.
fn patch(hdr: &mut [u8; ipv4::MAX_HEADER_LEN], total_len: usize, off: usize, more: bool) {
    let mut ip = ipv4::Packet::new_unchecked(&mut hdr[..]);
    // total_len <= mtu <= 65535; off <= 65528 (`Datagram::read`).
    ip.set_total_len(total_len as u16);
    ip.set_frag_offset(off as u16);
    ip.set_more_frags(more);
    ip.fill_checksum();
}

/// Sets a fresh buffer's contents to the concatenation of `parts`; false
/// (contents unspecified) if they do not fit.
fn write_frame(f: &mut Pkt, parts: [&[u8]; 3]) -> bool {
    let len = parts.iter().map(|p| p.len()).sum();
    if !f.set_len(0) {
        return false;
    }
    let Some(mut d) = f.append(len) else { return false };
    for p in parts {
        let Some((head, tail)) = d.split_at_mut_checked(p.len()) else { return false };
        head.copy_from_slice(p);
        d = tail;
    }
    true
}

/// Rounds down to whole 8-byte fragment units.
#[inline(always)]
const fn units(n: usize) -> usize {
    n & !(FRAG_UNIT - 1)
}

/// `extra` fragments (besides the first) are within [`MAX_FRAGMENTS`] and
/// the room left in `out`.
fn check_count(extra: usize, out: &PktBurst) -> Result<(), FragError> {
    if extra >= MAX_FRAGMENTS || extra > out.remaining() {
        return Err(FragError::TooManyFragments);
    }
    Ok(())
}

/// Drops (recycles) what was pushed to `out` past `base`.
fn rollback(out: &mut PktBurst, base: usize) {
    while out.len() > base && out.pop().is_some() {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good data
mod tests {
    use super::*;

    /// A 20-byte header (checksum not filled) followed by `opts`.
    fn header(opts: &[u8]) -> Vec<u8> {
        let hlen = ipv4::HEADER_LEN + opts.len();
        let mut h = vec![0x40 | (hlen / 4) as u8, 0, 0, 100, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        h.extend_from_slice(opts);
        h
    }

    fn later(opts: &[u8]) -> Result<Vec<u8>, FragError> {
        let mut dst = [0xaa; ipv4::MAX_HEADER_LEN];
        let len = later_header(&header(opts), &mut dst)?;
        Ok(dst[..len].to_vec())
    }

    #[test]
    fn later_header_keeps_only_copied_options() {
        // Record route (not copied), NOP, LSRR (copied), EOL.
        let rr = [7, 7, 4, 0, 0, 0, 0];
        let lsrr = [0x83, 7, 4, 192, 0, 2, 1];
        let opts = [&rr[..], &[1], &lsrr[..], &[0]].concat();
        let h = later(&opts).unwrap();
        assert_eq!(h.len(), 28);
        assert_eq!(h[0], 0x47, "IHL 7");
        assert_eq!(&h[1..20], &header(&opts)[1..20]);
        assert_eq!(&h[20..], &[0x83, 7, 4, 192, 0, 2, 1, 0]);
    }

    #[test]
    fn later_header_without_copied_options_is_bare() {
        assert_eq!(later(&[]).unwrap(), header(&[]));
        assert_eq!(later(&[1, 1, 1, 1]).unwrap(), header(&[]));
        assert_eq!(later(&[7, 3, 4, 0]).unwrap(), header(&[]));
    }

    #[test]
    fn later_header_stops_at_end_of_options() {
        // Garbage after EOL is not looked at.
        assert_eq!(later(&[0, 0x83, 200, 0]).unwrap(), header(&[]));
        // Router alert (copied) then EOL then garbage.
        assert_eq!(later(&[0x94, 4, 0, 0, 0, 0xff, 0xff, 0xff]).unwrap(), header(&[0x94, 4, 0, 0]));
    }

    #[test]
    fn later_header_pads_to_four_bytes() {
        // A 3-byte copied option (a made-up type with the copied flag).
        let h = later(&[0x99, 3, 7, 1]).unwrap();
        assert_eq!(&h[20..], &[0x99, 3, 7, 0]);
        // Copied options that fill all 40 bytes.
        let mut full = vec![0x83, 39, 4];
        full.extend([9; 36]);
        full.push(0);
        assert_eq!(later(&full).unwrap(), header(&full));
    }

    #[test]
    fn malformed_options_are_refused() {
        for opts in [
            &[7, 0, 0, 0][..],  // length 0
            &[7, 1, 0, 0],      // length 1
            &[7, 5, 0, 0],      // past the end
            &[1, 1, 1, 7],      // no length byte
            &[0x83, 200, 0, 0], // far past the end
        ] {
            assert_eq!(later(opts), Err(FragError::Malformed), "{opts:?}");
        }
        let mut dst = [0; ipv4::MAX_HEADER_LEN];
        assert_eq!(later_header(&[0x45; 19], &mut dst), Err(FragError::Malformed));
    }

    #[test]
    fn patch_sets_length_offset_and_flags() {
        let mut h = [0u8; ipv4::MAX_HEADER_LEN];
        h[..20].copy_from_slice(&header(&[]));
        h[6] = 0x80; // the reserved bit stays
        patch(&mut h, 1500, 65528, true);
        let ip = ipv4::Packet::new_unchecked(&h[..20]);
        assert_eq!((ip.total_len(), ip.frag_offset(), ip.more_frags(), ip.dont_frag()), (1500, 65528, true, false));
        assert_eq!(h[6] & 0x80, 0x80);
        assert!(ip.verify_checksum());
        patch(&mut h, 28, 8, false);
        let ip = ipv4::Packet::new_unchecked(&h[..20]);
        assert_eq!((ip.total_len(), ip.frag_offset(), ip.more_frags()), (28, 8, false));
        assert!(ip.verify_checksum());
    }

    #[test]
    fn l4_checksum_ignores_the_field_and_matches_the_reference() {
        let src = [192, 0, 2, 1];
        let dst = [198, 51, 100, 7];
        for (proto, at) in [(ip_proto::UDP, 6), (ip_proto::TCP, 16)] {
            for len in [at + 2, 21, 100, 1001] {
                let mut seg: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                seg[at..at + 2].copy_from_slice(&[0x12, 0x34]);
                let fix = l4_checksum(src, dst, proto, &seg).unwrap();
                assert_eq!(fix.off, at);
                seg[at..at + 2].fill(0);
                assert_eq!(fix.value, checksum::l4_checksum_v4(src, dst, proto, &seg).to_be_bytes());
                seg[at..at + 2].copy_from_slice(&fix.value);
                assert!(checksum::verify_l4_v4(src, dst, proto, &seg));
            }
            assert_eq!(l4_checksum(src, dst, proto, &[0; 5]), None, "too short");
        }
        assert_eq!(l4_checksum(src, dst, ip_proto::ICMP, &[0; 64]), None);
    }

    #[test]
    fn udp_checksum_zero_is_sent_as_all_ones() {
        // Pick the last two payload bytes so that the checksum comes out 0.
        let (src, dst) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut seg = vec![0x12, 0x34, 0x56, 0x78, 0, 10, 0, 0, 0, 0];
        let c = checksum::l4_checksum_v4(src, dst, ip_proto::UDP, &seg);
        seg[8..10].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum::l4_checksum_v4(src, dst, ip_proto::UDP, &seg), 0);
        assert_eq!(l4_checksum(src, dst, ip_proto::UDP, &seg).unwrap().value, [0xff, 0xff]);
    }

    #[test]
    fn units_round_down_to_eight() {
        assert_eq!([0, 7, 8, 15, 16, 1480, 1481].map(units), [0, 0, 8, 8, 16, 1480, 1480]);
    }

    #[test]
    fn errors_have_distinct_names_in_index_order() {
        for (i, e) in FragError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(e.name().starts_with("frag_"));
            assert!(FragError::ALL[..i].iter().all(|o| o.name() != e.name()));
        }
        assert_eq!(FragError::DontFragment.to_string(), "packet exceeds the MTU and has DF set");
    }
}
