//! IPv6 fixed header (RFC 8200) and a bounded extension-header walker.

use std::net::Ipv6Addr;

use super::{clamped, clamped_mut, ip_proto, read_16, read_u16, read_u32, write_u16, write_u32, Field, WireError};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Most extension headers the walker follows; one more is
/// `Ipv6TooManyExt`.
pub const MAX_EXT_HEADERS: usize = 8;
/// Length of a Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// A read/write view of an IPv6 packet.
///
/// The buffer may be longer than `40 + payload length` (Ethernet padding):
/// [`Packet::payload`] stops at the payload length.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::Field;

    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checks; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer after [`Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validate the fixed header: `Ipv6Truncated` if shorter than 40 bytes,
    /// `Ipv6BadVersion` if the version is not 6, `Ipv6BadPayloadLen` if the
    /// payload length runs past the buffer. Extension headers are checked by
    /// [`Packet::walk_ext`].
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Ipv6Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::Ipv6BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > data.len() {
            return Err(WireError::Ipv6BadPayloadLen);
        }
        Ok(())
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Differentiated Services Code Point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// Explicit Congestion Notification.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Next header (the first extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address octets.
    #[inline]
    pub fn src_octets(&self) -> [u8; 16] {
        read_16(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address octets.
    #[inline]
    pub fn dst_octets(&self) -> [u8; 16] {
        read_16(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_octets())
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_octets())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (extension headers included), bounded by the payload
    /// length (link padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        clamped(self.buffer.as_ref(), HEADER_LEN, end)
    }

    /// Iterate over the extension headers of the payload.
    #[inline]
    pub fn ext_headers(&self) -> ExtIter<'a> {
        ExtIter::new(self.next_header(), self.payload())
    }

    /// Walk the extension headers to the upper layer (see [`walk_ext`]).
    #[inline]
    pub fn walk_ext(&self) -> Result<ExtChain, WireError> {
        walk_ext(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_ver_tc_flow(&mut self, mask: u32, bits: u32) {
        let raw = self.ver_tc_flow();
        write_u32(&mut self.buffer.as_mut()[field::VER_TC_FLOW], (raw & !mask) | (bits & mask))
    }

    /// Set the version nibble.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        self.set_ver_tc_flow(0xf000_0000, u32::from(value) << 28)
    }

    /// Set the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        self.set_ver_tc_flow(0x0ff0_0000, u32::from(value) << 20)
    }

    /// Set the flow label (low 20 bits of `value`).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        self.set_ver_tc_flow(0x000f_ffff, value)
    }

    /// Set the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value)
    }

    /// Set the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = value
    }

    /// Set the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// Mutable payload (up to the payload length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Whether `next_header` names an extension header the walker skips:
/// Hop-by-Hop (0), Routing (43), Fragment (44), AH (51), Destination
/// Options (60). Anything else (ESP and No Next Header included) ends the
/// chain.
#[inline(always)]
pub const fn is_ext_header(next_header: u8) -> bool {
    matches!(
        next_header,
        ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_FRAG | ip_proto::AH | ip_proto::IPV6_OPTS
    )
}

/// The fields of a Fragment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More Fragments flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
    /// Next header (the first header of the fragmentable part).
    pub next_header: u8,
}

/// One extension header found by [`ExtIter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader<'a> {
    /// Which header this is (its protocol number).
    pub kind: u8,
    /// Its Next Header field.
    pub next_header: u8,
    /// Its offset in the IPv6 payload.
    pub offset: usize,
    /// All its bytes.
    pub data: &'a [u8],
}

impl ExtHeader<'_> {
    /// The fragment fields, if this is a Fragment header.
    #[inline]
    pub fn fragment(&self) -> Option<FragmentInfo> {
        match (self.kind, self.data) {
            (ip_proto::IPV6_FRAG, [next, _, o0, o1, i0, i1, i2, i3, ..]) => {
                let raw = u16::from_be_bytes([*o0, *o1]);
                Some(FragmentInfo {
                    offset: raw & 0xfff8,
                    more: raw & 0x0001 != 0,
                    ident: u32::from_be_bytes([*i0, *i1, *i2, *i3]),
                    next_header: *next,
                })
            }
            _ => None,
        }
    }

    /// The header body after Next Header and the length byte (options of
    /// Hop-by-Hop / Destination Options, type-specific data of Routing).
    #[inline]
    pub fn body(&self) -> &[u8] {
        self.data.get(2..).unwrap_or(&[])
    }
}

/// Read the extension header of kind `kind` at `offset` of `payload`.
#[inline(always)]
fn ext_header_at(payload: &[u8], kind: u8, offset: usize) -> Result<ExtHeader<'_>, WireError> {
    let (next_header, len_byte) = match payload.get(offset..) {
        Some([next, len, ..]) => (*next, usize::from(*len)),
        _ => return Err(WireError::Ipv6ExtTruncated),
    };
    let len = match kind {
        ip_proto::IPV6_FRAG => FRAGMENT_HEADER_LEN,
        // AH: length in 4-octet units, minus 2 (RFC 4302).
        ip_proto::AH => (len_byte + 2) * 4,
        // Generic format: length in 8-octet units, not counting the first.
        _ => (len_byte + 1) * 8,
    };
    match payload.get(offset..offset + len) {
        Some(data) => Ok(ExtHeader { kind, next_header, offset, data }),
        None => Err(WireError::Ipv6ExtTruncated),
    }
}

/// Where an extension-header chain ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtChain {
    /// The upper-layer protocol (or 59, No Next Header). For a later
    /// fragment, the next header of the Fragment header.
    pub upper_proto: u8,
    /// Offset of the upper-layer header in the IPv6 payload (for a later
    /// fragment: of the fragment data, which is no header).
    pub upper_off: usize,
    /// The Fragment header, if one was found.
    pub fragment: Option<FragmentInfo>,
    /// How many extension headers were skipped.
    pub count: u8,
}

/// Walk the extension headers of an IPv6 `payload` whose first header is
/// `next_header`, to the upper layer.
///
/// Skips Hop-by-Hop, Routing and Destination Options (8 + 8·len bytes),
/// Fragment (8 bytes) and AH (4·(len + 2) bytes); stops at any other
/// protocol (No Next Header included) or after a Fragment header with a
/// non-zero offset, whose following bytes are no header. Errors:
/// `Ipv6ExtTruncated` if a header runs past the payload,
/// `Ipv6TooManyExt` past [`MAX_EXT_HEADERS`] headers.
#[inline]
pub fn walk_ext(next_header: u8, payload: &[u8]) -> Result<ExtChain, WireError> {
    let mut chain = ExtChain { upper_proto: next_header, ..ExtChain::default() };
    while is_ext_header(chain.upper_proto) {
        if usize::from(chain.count) == MAX_EXT_HEADERS {
            return Err(WireError::Ipv6TooManyExt);
        }
        let header = ext_header_at(payload, chain.upper_proto, chain.upper_off)?;
        chain.count += 1;
        chain.upper_off += header.data.len();
        chain.upper_proto = header.next_header;
        if let Some(frag) = header.fragment() {
            chain.fragment = Some(frag);
            if frag.offset != 0 {
                break;
            }
        }
    }
    Ok(chain)
}

/// Iterator over the extension headers of an IPv6 payload, with the same
/// rules as [`walk_ext`]. Yields each header, or one error and then ends.
#[derive(Clone, Debug)]
pub struct ExtIter<'a> {
    payload: &'a [u8],
    next: u8,
    offset: usize,
    count: usize,
    done: bool,
}

impl<'a> ExtIter<'a> {
    /// Iterate over `payload`, whose first header is `next_header`.
    #[inline]
    pub fn new(next_header: u8, payload: &'a [u8]) -> ExtIter<'a> {
        ExtIter { payload, next: next_header, offset: 0, count: 0, done: false }
    }

    /// The protocol after the headers yielded so far.
    #[inline]
    pub fn upper_proto(&self) -> u8 {
        self.next
    }

    /// The offset after the headers yielded so far.
    #[inline]
    pub fn upper_off(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = Result<ExtHeader<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || !is_ext_header(self.next) {
            return None;
        }
        if self.count == MAX_EXT_HEADERS {
            self.done = true;
            return Some(Err(WireError::Ipv6TooManyExt));
        }
        match ext_header_at(self.payload, self.next, self.offset) {
            Ok(header) => {
                self.count += 1;
                self.offset += header.data.len();
                self.next = header.next_header;
                if header.fragment().is_some_and(|f| f.offset != 0) {
                    self.done = true;
                }
                Some(Ok(header))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The fields of an IPv6 fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label.
    pub flow_label: u32,
    /// Payload length.
    pub payload_len: u16,
}

impl Repr {
    /// Read a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
            payload_len: packet.payload_len(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the fixed header (`Ipv6Truncated` if the buffer is short).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Ipv6Truncated);
        }
        packet.set_ver_tc_flow(0xffff_ffff, 6 << 28);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::super::golden::*;
    use super::*;

    const L3: usize = 14;

    fn ip(frame: &[u8]) -> Packet<&[u8]> {
        Packet::new_checked(&frame[L3..]).unwrap()
    }

    /// An IPv6 packet whose payload is the given extension headers (each a
    /// (kind, bytes) pair whose next-header byte is patched) and `upper`.
    fn build(headers: &[(u8, Vec<u8>)], upper_proto: u8, upper: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, (_, bytes)) in headers.iter().enumerate() {
            let mut b = bytes.clone();
            b[0] = headers.get(i + 1).map_or(upper_proto, |h| h.0);
            payload.extend_from_slice(&b);
        }
        payload.extend_from_slice(upper);
        let mut pkt = IPV6_ICMPV6_ECHO[L3..L3 + HEADER_LEN].to_vec();
        pkt[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        pkt[6] = headers.first().map_or(upper_proto, |h| h.0);
        pkt.extend_from_slice(&payload);
        pkt
    }

    fn opts(len_units: u8) -> Vec<u8> {
        let mut v = vec![0u8; 8 * (usize::from(len_units) + 1)];
        v[1] = len_units;
        v
    }

    fn frag(offset: u16, more: bool, ident: u32) -> Vec<u8> {
        let mut v = vec![0u8; 8];
        v[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
        v[4..8].copy_from_slice(&ident.to_be_bytes());
        v
    }

    #[test]
    fn golden_hbh_frag_udp() {
        let p = ip(&IPV6_HBH_FRAG_UDP);
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!((p.dscp(), p.ecn()), (46, 0));
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 48);
        assert_eq!(p.next_header(), ip_proto::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.src_octets()[15], 1);
        assert_eq!(p.dst_octets()[15], 2);
        assert_eq!(p.payload().len(), 48);

        let headers: Vec<_> = p.ext_headers().collect::<Result<_, _>>().unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!((headers[0].kind, headers[0].next_header, headers[0].offset), (0, 44, 0));
        assert_eq!(headers[0].data, &[0x2c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(headers[0].body(), &[0x01, 0x04, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(headers[0].fragment(), None);
        assert_eq!((headers[1].kind, headers[1].next_header, headers[1].offset), (44, 17, 8));
        let f = FragmentInfo { offset: 0, more: true, ident: 0xdeadbeef, next_header: 17 };
        assert_eq!(headers[1].fragment(), Some(f));

        let chain = p.walk_ext().unwrap();
        assert_eq!(chain, ExtChain { upper_proto: 17, upper_off: 16, fragment: Some(f), count: 2 });
        assert_eq!(p.payload()[16..18], [0x0f, 0xa0]);
        let mut it = p.ext_headers();
        it.by_ref().for_each(drop);
        assert_eq!((it.upper_proto(), it.upper_off()), (17, 16));
    }

    #[test]
    fn golden_icmpv6_ns() {
        let p = ip(&IPV6_ICMPV6_NS);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.next_header(), ip_proto::ICMPV6);
        assert_eq!(p.src_addr(), "fe80::a00:27ff:fed4:1a9c".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload_len(), 32);
        let chain = p.walk_ext().unwrap();
        assert_eq!((chain.upper_proto, chain.upper_off, chain.count), (58, 0, 0));
        assert_eq!(p.ext_headers().count(), 0);
    }

    #[test]
    fn setters_and_repr_round_trip() {
        let p = ip(&QINQ_IPV6_TCP[8..]);
        let repr = Repr::parse(&p);
        assert_eq!(repr.hop_limit, 63);
        assert_eq!(repr.payload_len, 31);
        assert_eq!(repr.next_header, 6);
        let mut out = [0u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out[..], QINQ_IPV6_TCP[L3 + 8..L3 + 8 + 40]);
        assert_eq!(repr.buffer_len(), 40);
        let mut short = [0u8; 39];
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut short[..])), Err(WireError::Ipv6Truncated));

        let mut b = [0u8; 48];
        let mut q = Packet::new_unchecked(&mut b[..]);
        q.set_version(6);
        q.set_traffic_class(0xff);
        q.set_flow_label(0xfffff);
        q.set_traffic_class(0x12);
        q.set_flow_label(0xabcde);
        q.set_payload_len(8);
        q.set_next_header(59);
        q.set_hop_limit(1);
        q.set_src_addr(Ipv6Addr::LOCALHOST);
        q.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        q.payload_mut().copy_from_slice(&[9; 8]);
        assert_eq!(q.check_len(), Ok(()));
        assert_eq!((q.version(), q.traffic_class(), q.flow_label()), (6, 0x12, 0xabcde));
        assert_eq!((q.payload_len(), q.next_header(), q.hop_limit()), (8, 59, 1));
        assert_eq!((q.src_addr(), q.dst_addr()), (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED));
        let q = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(q.payload(), &[9; 8]);
        let chain = q.walk_ext().unwrap();
        assert_eq!((chain.upper_proto, chain.upper_off), (59, 0));
    }

    #[test]
    fn every_prefix_fixed_header() {
        let pkt = &IPV6_ICMPV6_ECHO[L3..];
        for len in 0..=pkt.len() {
            let want = match len {
                0..=39 => Err(WireError::Ipv6Truncated),
                40..=52 => Err(WireError::Ipv6BadPayloadLen),
                _ => Ok(()),
            };
            assert_eq!(Packet::new_checked(&pkt[..len]).map(|_| ()), want, "len {len}");
        }
    }

    #[test]
    fn bad_version() {
        let mut b = IPV6_ICMPV6_ECHO;
        b[L3] = 0x45;
        assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv6BadVersion));
    }

    #[test]
    fn padding_is_fine() {
        let mut b = IPV6_ICMPV6_ECHO.to_vec();
        b.extend_from_slice(&[0xee; 20]);
        let p = Packet::new_checked(&b[L3..]).unwrap();
        assert_eq!(p.payload().len(), 13);
    }

    #[test]
    fn ext_chain_truncated_at_every_length() {
        // Shrink the payload length through the golden chain: every cut
        // inside an extension header is Ipv6ExtTruncated, cuts after it are
        // fine for the walker.
        let full = &IPV6_HBH_FRAG_UDP[L3..];
        for plen in 0..=48u16 {
            let mut b = full.to_vec();
            b[4..6].copy_from_slice(&plen.to_be_bytes());
            let p = Packet::new_checked(&b[..]).unwrap();
            let want = if plen < 16 { Err(WireError::Ipv6ExtTruncated) } else { Ok(16) };
            assert_eq!(p.walk_ext().map(|c| c.upper_off), want, "plen {plen}");
            let errors = p.ext_headers().filter(Result::is_err).count();
            assert_eq!(errors, usize::from(plen < 16));
        }
    }

    #[test]
    fn ext_chain_limits() {
        let eight: Vec<_> = (0..8).map(|_| (ip_proto::IPV6_OPTS, opts(0))).collect();
        let p = build(&eight, ip_proto::UDP, &[0; 8]);
        let chain = walk_ext(p[6], &p[HEADER_LEN..]).unwrap();
        assert_eq!((chain.count, chain.upper_proto, chain.upper_off), (8, 17, 64));
        assert_eq!(ExtIter::new(p[6], &p[HEADER_LEN..]).count(), 8);

        let nine: Vec<_> = (0..9).map(|_| (ip_proto::IPV6_OPTS, opts(0))).collect();
        let p = build(&nine, ip_proto::UDP, &[0; 8]);
        assert_eq!(walk_ext(p[6], &p[HEADER_LEN..]), Err(WireError::Ipv6TooManyExt));
        let items: Vec<_> = ExtIter::new(p[6], &p[HEADER_LEN..]).collect();
        assert_eq!(items.len(), 9);
        assert_eq!(items[8], Err(WireError::Ipv6TooManyExt));
    }

    #[test]
    fn routing_ah_and_long_options() {
        let mut ah = vec![0u8; 24]; // len field 4: (4 + 2) * 4 = 24
        ah[1] = 4;
        let chain_hdrs = vec![
            (ip_proto::HOPOPT, opts(1)),
            (ip_proto::IPV6_ROUTE, opts(2)),
            (ip_proto::AH, ah),
            (ip_proto::IPV6_OPTS, opts(0)),
        ];
        let p = build(&chain_hdrs, ip_proto::TCP, &[0; 20]);
        let pkt = Packet::new_checked(&p[..]).unwrap();
        let chain = pkt.walk_ext().unwrap();
        assert_eq!((chain.count, chain.upper_proto, chain.upper_off), (4, 6, 16 + 24 + 24 + 8));
        let offsets: Vec<_> = pkt.ext_headers().map(|h| h.unwrap().offset).collect();
        assert_eq!(offsets, [0, 16, 40, 64]);
        // Cut the AH short.
        let mut cut = p.clone();
        let plen = (16 + 24 + 10) as u16;
        cut[4..6].copy_from_slice(&plen.to_be_bytes());
        let pkt = Packet::new_checked(&cut[..]).unwrap();
        assert_eq!(pkt.walk_ext(), Err(WireError::Ipv6ExtTruncated));
    }

    #[test]
    fn no_next_header_and_esp_end_the_chain() {
        let p = build(&[(ip_proto::HOPOPT, opts(0))], ip_proto::IPV6_NONXT, &[1, 2, 3]);
        let chain = walk_ext(p[6], &p[HEADER_LEN..]).unwrap();
        assert_eq!((chain.upper_proto, chain.upper_off), (59, 8));
        let p = build(&[], ip_proto::ESP, &[0; 16]);
        assert_eq!(walk_ext(p[6], &p[HEADER_LEN..]).map(|c| c.count), Ok(0));
        // A Hop-by-Hop header cut to one byte.
        assert_eq!(walk_ext(0, &[17]), Err(WireError::Ipv6ExtTruncated));
        assert_eq!(walk_ext(0, &[]), Err(WireError::Ipv6ExtTruncated));
        assert_eq!(walk_ext(17, &[]).map(|c| c.upper_off), Ok(0));
    }

    #[test]
    fn later_fragment_stops_the_walk() {
        // The bytes after a later fragment's header look like an
        // extension header but must not be parsed.
        let p = build(&[(ip_proto::IPV6_FRAG, frag(1232, true, 7))], ip_proto::HOPOPT, &[0, 200, 0, 0]);
        let chain = walk_ext(p[6], &p[HEADER_LEN..]).unwrap();
        assert_eq!(chain.upper_proto, 0);
        assert_eq!(chain.upper_off, 8);
        assert_eq!(chain.fragment, Some(FragmentInfo { offset: 1232, more: true, ident: 7, next_header: 0 }));
        assert_eq!(ExtIter::new(p[6], &p[HEADER_LEN..]).count(), 1);
        // An atomic fragment (offset 0, M=0) continues to the upper layer.
        let p = build(&[(ip_proto::IPV6_FRAG, frag(0, false, 9))], ip_proto::UDP, &[0; 8]);
        let chain = walk_ext(p[6], &p[HEADER_LEN..]).unwrap();
        assert_eq!((chain.upper_proto, chain.upper_off), (17, 8));
        assert_eq!(chain.fragment.map(|f| (f.offset, f.more)), Some((0, false)));
        // A truncated Fragment header.
        let mut short = frag(0, true, 1);
        short.truncate(7);
        assert_eq!(walk_ext(ip_proto::IPV6_FRAG, &short), Err(WireError::Ipv6ExtTruncated));
    }

    #[test]
    fn iterator_stops_after_error() {
        let mut it = ExtIter::new(0, &[6, 5, 0, 0]);
        assert_eq!(it.next(), Some(Err(WireError::Ipv6ExtTruncated)));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }
}
