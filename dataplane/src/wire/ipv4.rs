//! IPv4 headers (RFC 791), options included.

use std::net::Ipv4Addr;

use super::{checksum, clamped, clamped_mut, read_4, read_u16, write_u16, Field, WireError};

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Length of the longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// A read/write view of an IPv4 packet.
///
/// The buffer may be longer than the total length (Ethernet padding):
/// [`Packet::payload`] stops at the total length.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

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

    /// Validate the header framing, in this order:
    /// * `Ipv4Truncated`: shorter than 20 bytes;
    /// * `Ipv4BadVersion`: version is not 4 (nothing else means anything
    ///   then);
    /// * `Ipv4BadIhl`: IHL below 5, or the header longer than the buffer;
    /// * `Ipv4BadTotalLen`: total length below the header length or beyond
    ///   the buffer (a longer buffer is fine: link padding).
    ///
    /// The checksum is not verified here (see [`Packet::verify_checksum`]).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Ipv4Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Ipv4BadVersion);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > data.len() {
            return Err(WireError::Ipv4BadIhl);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len || total_len > data.len() {
            return Err(WireError::Ipv4BadTotalLen);
        }
        Ok(())
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Internet header length in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        self.ihl() * 4
    }

    /// Differentiated Services Code Point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit Congestion Notification.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::IDENT])
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Whether this is the first fragment of several (MF set, offset 0).
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & (FLAG_MF | OFFSET_MASK) == FLAG_MF
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`super::ip_proto`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address octets.
    #[inline]
    pub fn src_octets(&self) -> [u8; 4] {
        read_4(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address octets.
    #[inline]
    pub fn dst_octets(&self) -> [u8; 4] {
        read_4(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_octets())
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_octets())
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        checksum::verify(clamped(data, 0, usize::from(self.header_len())))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &'a [u8] {
        clamped(self.buffer.as_ref(), 0, usize::from(self.header_len()))
    }

    /// The options (empty if IHL is 5).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.header_len()))
    }

    /// The payload, from the end of the header to the total length (link
    /// padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let data = self.buffer.as_ref();
        clamped(data, usize::from(self.header_len()), usize::from(self.total_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version nibble.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Set the IHL in 32-bit words (low 4 bits of `value`).
    #[inline]
    pub fn set_ihl(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | (value & 0x0f);
    }

    /// Set the header length in bytes (a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        self.set_ihl(value / 4)
    }

    /// Set the DSCP (low 6 bits of `value`).
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Set the ECN (low 2 bits of `value`).
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (value & 0x03);
    }

    /// Set the total length.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value)
    }

    /// Set the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::IDENT], value)
    }

    fn set_flg_off(&mut self, mask: u16, bits: u16) {
        let raw = read_u16(&self.buffer.as_ref()[field::FLG_OFF]);
        write_u16(&mut self.buffer.as_mut()[field::FLG_OFF], (raw & !mask) | (bits & mask))
    }

    /// Set the Don't Fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flg_off(FLAG_DF, if value { FLAG_DF } else { 0 })
    }

    /// Set the More Fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flg_off(FLAG_MF, if value { FLAG_MF } else { 0 })
    }

    /// Set the fragment offset in bytes (a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        self.set_flg_off(OFFSET_MASK, value >> 3)
    }

    /// Set the time to live.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value
    }

    /// Set the protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value
    }

    /// Set the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value)
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets())
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets())
    }

    /// Compute and store the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let c = checksum::checksum(clamped(self.buffer.as_ref(), 0, header_len));
        self.set_checksum(c)
    }

    /// Decrement the TTL (saturating at 0) and update the checksum
    /// incrementally (RFC 1624). Returns the new TTL.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        let new_ttl = ttl.saturating_sub(1);
        let proto = self.protocol();
        let old_word = u16::from_be_bytes([ttl, proto]);
        let new_word = u16::from_be_bytes([new_ttl, proto]);
        let c = checksum::update16(self.checksum(), old_word, new_word);
        self.set_ttl(new_ttl);
        self.set_checksum(c);
        new_ttl
    }

    /// Mutable options.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, header_len)
    }

    /// Mutable payload (up to the total length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (usize::from(self.header_len()), usize::from(self.total_len()));
        clamped_mut(self.buffer.as_mut(), start, end)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an IPv4 header, options excepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// DSCP.
    pub dscp: u8,
    /// ECN.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
    /// Payload length (total length minus header length).
    pub payload_len: u16,
}

impl Repr {
    /// Read a checked packet; `Ipv4BadChecksum` if `verify_checksum` and the
    /// header checksum fails (pass `false` when the NIC verified it).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, verify_checksum: bool) -> Result<Repr, WireError> {
        if verify_checksum && !packet.verify_checksum() {
            return Err(WireError::Ipv4BadChecksum);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            payload_len: packet.total_len().saturating_sub(u16::from(packet.header_len())),
        })
    }

    /// Bytes [`Repr::emit`] writes (a header without options).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header; the checksum is filled if `fill_checksum`
    /// (pass `false` when the NIC computes it; the field is then 0).
    /// `Ipv4Truncated` if the buffer is shorter than 20 bytes,
    /// `Ipv4BadTotalLen` if `payload_len + 20` exceeds 65535.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        fill_checksum: bool,
    ) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Ipv4Truncated);
        }
        let total_len = self.payload_len.checked_add(HEADER_LEN as u16).ok_or(WireError::Ipv4BadTotalLen)?;
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        packet.set_total_len(total_len);
        packet.set_ident(self.ident);
        packet.set_flg_off(0xffff, 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if fill_checksum {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
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

    #[test]
    fn golden_udp_dns() {
        let p = ip(&IPV4_UDP_DNS);
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 5);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 57);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment() && !p.is_first_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), super::super::ip_proto::UDP);
        assert_eq!(p.checksum(), 0x065d);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 2, 3));
        assert_eq!(p.src_octets(), [10, 0, 2, 15]);
        assert_eq!(p.dst_octets(), [10, 0, 2, 3]);
        assert!(p.options().is_empty());
        assert_eq!(p.header().len(), 20);
        assert_eq!(p.payload().len(), 37);
        assert_eq!(p.payload()[..4], [0xcf, 0xdb, 0x00, 0x35]);
    }

    #[test]
    fn golden_options() {
        // IGMPv2 report with Router Alert, TOS 0xc0, padded frame.
        let p = ip(&IPV4_OPTIONS_IGMP);
        assert_eq!(p.ihl(), 6);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!((p.dscp(), p.ecn()), (48, 0));
        assert_eq!(p.total_len(), 32);
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), super::super::ip_proto::IGMP);
        assert_eq!(p.checksum(), 0x416a);
        assert!(p.verify_checksum());
        assert_eq!(p.dst_addr(), Ipv4Addr::new(224, 0, 0, 251));
        // The payload stops at the total length, not at the padding.
        assert_eq!(p.payload(), &[0x16, 0x00, 0x09, 0x04, 0xe0, 0x00, 0x00, 0xfb]);
        assert_eq!(p.as_ref().len(), 46);
    }

    #[test]
    fn golden_later_fragment() {
        let p = ip(&IPV4_LATER_FRAGMENT);
        assert_eq!(p.frag_offset(), 1480);
        assert!(!p.more_frags() && !p.dont_frag());
        assert!(p.is_fragment() && !p.is_first_fragment());
        assert_eq!(p.ident(), 0x1111);
        assert_eq!(p.checksum(), 0x50e1);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), b"tail of a fragmented datagram");
    }

    #[test]
    fn first_fragment_flags() {
        let mut b = IPV4_UDP_DNS;
        let mut p = Packet::new_checked(&mut b[L3..]).unwrap();
        p.set_more_frags(true);
        assert!(p.is_fragment() && p.is_first_fragment());
        p.set_frag_offset(8);
        assert!(p.is_fragment() && !p.is_first_fragment());
        assert!(p.dont_frag() && p.more_frags());
    }

    #[test]
    fn setters_round_trip() {
        let mut b = IPV4_TCP_SYN;
        let mut p = Packet::new_checked(&mut b[L3..]).unwrap();
        p.set_dscp(46);
        p.set_ecn(3);
        p.set_ident(0xabcd);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(65528);
        p.set_ttl(7);
        p.set_protocol(17);
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        p.set_total_len(40);
        assert_eq!((p.dscp(), p.ecn(), p.ident()), (46, 3, 0xabcd));
        assert!(!p.dont_frag() && p.more_frags());
        assert_eq!(p.frag_offset(), 65528);
        assert_eq!((p.ttl(), p.protocol(), p.total_len()), (7, 17, 40));
        assert_eq!(p.src_addr(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(5, 6, 7, 8));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut()[0] = 0xee;
        assert_eq!(p.payload_mut().len(), 20);
        p.set_version(6);
        assert_eq!(p.version(), 6);
        assert_eq!(p.check_len(), Err(WireError::Ipv4BadVersion));
        p.set_version(4);
        p.set_header_len(24);
        assert_eq!(p.ihl(), 6);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        assert_eq!(p.check_len(), Ok(()));
        let p = Packet::new_checked(&b[L3..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 16);
        assert_eq!(p.payload()[0], 0x8f);
    }

    #[test]
    fn accessors_never_panic_after_bad_setters() {
        // A setter can break what new_checked established; the slice
        // accessors clamp instead of panicking.
        let mut b = IPV4_UDP_DNS;
        let mut q = Packet::new_checked(&mut b[L3..]).unwrap();
        q.set_header_len(60);
        q.set_total_len(9000);
        assert_eq!(q.options_mut().len(), 37);
        assert!(q.payload_mut().is_empty());
        q.fill_checksum();
        let r = Packet::new_unchecked(&b[L3..]);
        assert_eq!(r.header().len(), 57);
        assert_eq!(r.options().len(), 37);
        assert!(r.payload().is_empty());
        assert!(r.verify_checksum());
        assert_eq!(r.check_len(), Err(WireError::Ipv4BadIhl));
    }

    #[test]
    fn decrement_ttl_keeps_checksum_valid() {
        let mut b = IPV4_OPTIONS_IGMP;
        let mut p = Packet::new_checked(&mut b[L3..]).unwrap();
        assert_eq!(p.decrement_ttl(), 0);
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), 0);
        assert!(p.verify_checksum());
        let mut b = IPV4_UDP_DNS;
        let mut p = Packet::new_checked(&mut b[L3..]).unwrap();
        for want in (0..64).rev() {
            assert_eq!(p.decrement_ttl(), want);
            assert!(p.verify_checksum());
        }
    }

    #[test]
    fn repr_round_trip() {
        let p = ip(&IPV4_UDP_DNS);
        let repr = Repr::parse(&p, true).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: Ipv4Addr::new(10, 0, 2, 15),
                dst_addr: Ipv4Addr::new(10, 0, 2, 3),
                protocol: 17,
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: 0x1c46,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                payload_len: 37,
            }
        );
        let mut out = [0u8; 20];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), true).unwrap();
        assert_eq!(out[..], IPV4_UDP_DNS[L3..L3 + 20]);
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), false).unwrap();
        assert_eq!(out[10..12], [0, 0]);
        assert_eq!(repr.buffer_len(), 20);

        let frag = Repr::parse(&ip(&IPV4_LATER_FRAGMENT), true).unwrap();
        let mut out = [0u8; 20];
        frag.emit(&mut Packet::new_unchecked(&mut out[..]), true).unwrap();
        assert_eq!(out[..], IPV4_LATER_FRAGMENT[L3..L3 + 20]);

        let mut short = [0u8; 19];
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut short[..]), true), Err(WireError::Ipv4Truncated));
        let huge = Repr { payload_len: 65516, ..repr };
        assert_eq!(huge.emit(&mut Packet::new_unchecked(&mut out[..]), true), Err(WireError::Ipv4BadTotalLen));
    }

    #[test]
    fn repr_bad_checksum() {
        let mut b = IPV4_UDP_DNS;
        b[L3 + 10] ^= 0x01;
        let p = Packet::new_checked(&b[L3..]).unwrap();
        assert_eq!(Repr::parse(&p, true), Err(WireError::Ipv4BadChecksum));
        assert!(Repr::parse(&p, false).is_ok());
    }

    #[test]
    fn every_prefix() {
        let pkt = &IPV4_OPTIONS_IGMP[L3..L3 + 32];
        for len in 0..=pkt.len() {
            let want = match len {
                0..=19 => Err(WireError::Ipv4Truncated),
                20..=23 => Err(WireError::Ipv4BadIhl),
                24..=31 => Err(WireError::Ipv4BadTotalLen),
                _ => Ok(()),
            };
            assert_eq!(Packet::new_checked(&pkt[..len]).map(|_| ()), want, "len {len}");
        }
    }

    #[test]
    fn ihl_below_five() {
        for ihl in 0..5u8 {
            let mut b = IPV4_UDP_DNS;
            b[L3] = 0x40 | ihl;
            assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadIhl), "ihl {ihl}");
        }
    }

    #[test]
    fn ihl_beyond_buffer() {
        let mut b = IPV4_UDP_DNS;
        b[L3] = 0x4f; // 60-byte header, 57-byte buffer
        assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadIhl));
    }

    #[test]
    fn total_len_below_header() {
        let mut b = IPV4_OPTIONS_IGMP;
        b[L3 + 2..L3 + 4].copy_from_slice(&23u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadTotalLen));
        b[L3 + 2..L3 + 4].copy_from_slice(&24u16.to_be_bytes());
        let p = Packet::new_checked(&b[L3..]).unwrap();
        assert!(p.payload().is_empty());
    }

    #[test]
    fn total_len_beyond_buffer() {
        let mut b = IPV4_UDP_DNS;
        b[L3 + 2..L3 + 4].copy_from_slice(&58u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadTotalLen));
        b[L3 + 2..L3 + 4].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadTotalLen));
    }

    #[test]
    fn padding_is_fine() {
        let mut b = [0u8; 100];
        b[..57].copy_from_slice(&IPV4_UDP_DNS[L3..]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 37);
        assert!(p.verify_checksum());
    }

    #[test]
    fn bad_version() {
        for v in [0u8, 1, 5, 6, 15] {
            let mut b = IPV4_UDP_DNS;
            b[L3] = (v << 4) | 5;
            assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadVersion));
        }
        // Version is judged before IHL.
        let mut b = IPV4_UDP_DNS;
        b[L3] = 0x60;
        assert_eq!(Packet::new_checked(&b[L3..]).err(), Some(WireError::Ipv4BadVersion));
    }

    #[test]
    fn checksum_detects_every_single_bit_flip() {
        for bit in 0..160 {
            let mut b = IPV4_UDP_DNS;
            b[L3 + bit / 8] ^= 1 << (bit % 8);
            let p = Packet::new_unchecked(&b[L3..]);
            assert!(!p.verify_checksum(), "bit {bit}");
        }
    }
}
