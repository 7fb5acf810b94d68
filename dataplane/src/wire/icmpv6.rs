//! ICMP for IPv6 (RFC 4443) and the Neighbor Discovery fields the
//! dataplane reads (RFC 4861).

use std::net::Ipv6Addr;

use super::{checksum, ip_proto, read_16, read_u16, read_u32, write_u16, write_u32, Field, Rest, WireError};

/// Length of the ICMPv6 header: type, code, checksum, 4-byte rest of header.
pub const HEADER_LEN: usize = 8;
/// Length of a Neighbor Solicitation/Advertisement up to its target.
pub const ND_TARGET_END: usize = 24;

/// ICMPv6 message types.
pub mod msg_type {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
}

/// Neighbor Advertisement flags (high bits of the rest of header).
pub mod na_flags {
    /// Router flag.
    pub const ROUTER: u32 = 0x8000_0000;
    /// Solicited flag.
    pub const SOLICITED: u32 = 0x4000_0000;
    /// Override flag.
    pub const OVERRIDE: u32 = 0x2000_0000;
}

/// Whether `msg_type` is an error message (types 1-4) that embeds as much
/// of the invoking packet as fits.
#[inline]
pub const fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg_type::DEST_UNREACHABLE | msg_type::PACKET_TOO_BIG | msg_type::TIME_EXCEEDED | msg_type::PARAM_PROBLEM
    )
}

/// A read/write view of an ICMPv6 message. For the checksum functions the
/// buffer must be exactly the message (the upper-layer payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const PAYLOAD: Rest = 8..;
    pub const ND_TARGET: Field = 8..24;
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

    /// `Icmpv6Truncated` if shorter than the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Icmpv6Truncated)
        } else {
            Ok(())
        }
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type (see [`msg_type`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The 4-byte rest of header, whatever the type.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::REST])
    }

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// MTU (packet too big).
    #[inline]
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }

    /// Pointer to the offending octet (parameter problem).
    #[inline]
    pub fn pointer(&self) -> u32 {
        self.rest_of_header()
    }

    /// Whether this is an error message (see [`is_error`]).
    #[inline]
    pub fn is_error(&self) -> bool {
        is_error(self.msg_type())
    }

    /// Whether this is a neighbor solicitation/advertisement or a redirect,
    /// which carry a target address at bytes 8..24.
    #[inline]
    pub fn has_target(&self) -> bool {
        matches!(self.msg_type(), msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT | msg_type::REDIRECT)
    }

    /// Target address of a NS/NA/redirect, if the message is long enough.
    #[inline]
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        let data = self.buffer.as_ref();
        match data.get(field::ND_TARGET) {
            Some(t) if self.has_target() => Some(Ipv6Addr::from(read_16(t))),
            _ => None,
        }
    }

    /// Neighbor advertisement Router flag.
    #[inline]
    pub fn na_router(&self) -> bool {
        self.rest_of_header() & na_flags::ROUTER != 0
    }

    /// Neighbor advertisement Solicited flag.
    #[inline]
    pub fn na_solicited(&self) -> bool {
        self.rest_of_header() & na_flags::SOLICITED != 0
    }

    /// Neighbor advertisement Override flag.
    #[inline]
    pub fn na_override(&self) -> bool {
        self.rest_of_header() & na_flags::OVERRIDE != 0
    }

    /// Whether the checksum verifies over IPv6 addresses `src`, `dst`.
    #[inline]
    pub fn verify_checksum(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        checksum::verify_l4_v6(src, dst, ip_proto::ICMPV6, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// For an error message, the embedded invoking packet (its IPv6 header
    /// first, possibly cut).
    #[inline]
    pub fn embedded(&self) -> Option<&'a [u8]> {
        if self.is_error() {
            Some(self.payload())
        } else {
            None
        }
    }

    /// The Neighbor Discovery options of a NS/NA (after the target), if the
    /// message is long enough.
    #[inline]
    pub fn nd_options(&self) -> Option<&'a [u8]> {
        match self.msg_type() {
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT => self.buffer.as_ref().get(ND_TARGET_END..),
            _ => None,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value
    }

    /// Set the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value)
    }

    /// Set the 4-byte rest of header (MTU, pointer, NA flags...).
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::REST], value)
    }

    /// Set the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value)
    }

    /// Set the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value)
    }

    /// Set the target address; returns false (and writes nothing) if the
    /// buffer is shorter than 24 bytes.
    #[inline]
    pub fn set_target_addr(&mut self, value: Ipv6Addr) -> bool {
        match self.buffer.as_mut().get_mut(field::ND_TARGET) {
            Some(t) => {
                t.copy_from_slice(&value.octets());
                true
            }
            None => false,
        }
    }

    /// Compute and store the checksum over IPv6 addresses `src`, `dst`.
    #[inline]
    pub fn fill_checksum(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v6(src, dst, ip_proto::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c)
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::super::golden::*;
    use super::super::{ipv6, tcp};
    use super::*;

    const L4: usize = 14 + 40;

    fn addrs(frame: &[u8]) -> ([u8; 16], [u8; 16]) {
        let ip = ipv6::Packet::new_checked(&frame[14..]).unwrap();
        (ip.src_octets(), ip.dst_octets())
    }

    #[test]
    fn golden_neighbor_solicitation() {
        let p = Packet::new_checked(&IPV6_ICMPV6_NS[L4..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (msg_type::NEIGHBOR_SOLICIT, 0));
        assert_eq!(p.checksum(), 0xe6ba);
        let (src, dst) = addrs(&IPV6_ICMPV6_NS);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(dst, [0; 16]));
        assert_eq!(p.rest_of_header(), 0);
        assert!(p.has_target() && !p.is_error());
        assert_eq!(p.target_addr(), Some("fe80::1".parse().unwrap()));
        assert_eq!(p.nd_options(), Some(&[1, 1, 0x08, 0x00, 0x27, 0xd4, 0x1a, 0x9c][..]));
        assert_eq!(p.embedded(), None);
        assert_eq!(p.payload().len(), 24);
    }

    #[test]
    fn target_needs_length() {
        let ns = &IPV6_ICMPV6_NS[L4..];
        for len in 8..ns.len() {
            let p = Packet::new_checked(&ns[..len]).unwrap();
            assert_eq!(p.target_addr().is_some(), len >= 24, "len {len}");
            assert_eq!(p.nd_options().is_some(), len >= 24, "len {len}");
        }
        let mut short = [0u8; 23];
        let mut p = Packet::new_checked(&mut short[..]).unwrap();
        p.set_msg_type(msg_type::NEIGHBOR_ADVERT);
        assert!(!p.set_target_addr(Ipv6Addr::LOCALHOST));
        assert_eq!(p.target_addr(), None);
    }

    #[test]
    fn neighbor_advertisement_built_from_ns() {
        let mut b = [0u8; 32];
        b.copy_from_slice(&IPV6_ICMPV6_NS[L4..]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(msg_type::NEIGHBOR_ADVERT);
        p.set_rest_of_header(na_flags::SOLICITED | na_flags::OVERRIDE);
        assert!(p.set_target_addr("fe80::1".parse().unwrap()));
        p.payload_mut()[16] = 2; // target link-layer address option
        let (src, dst) = ([0xfe; 16], [0x20; 16]);
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
        assert!(!p.na_router() && p.na_solicited() && p.na_override());
        assert_eq!(p.target_addr(), Some("fe80::1".parse().unwrap()));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.nd_options().map(|o| o[0]), Some(2));
    }

    #[test]
    fn golden_packet_too_big() {
        let p = Packet::new_checked(&IPV6_ICMPV6_PTB[L4..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (msg_type::PACKET_TOO_BIG, 0));
        assert_eq!(p.checksum(), 0x9f7d);
        let (src, dst) = addrs(&IPV6_ICMPV6_PTB);
        assert!(p.verify_checksum(src, dst));
        assert_eq!(p.mtu(), 1280);
        assert!(p.is_error() && !p.has_target());
        assert_eq!(p.target_addr(), None);
        assert_eq!(p.nd_options(), None);
        let emb = p.embedded().unwrap();
        assert_eq!(emb.len(), 60);
        let inner = ipv6::Packet::new_unchecked(emb);
        assert_eq!(inner.payload_len(), 1452);
        assert_eq!(ipv6::Packet::new_checked(emb).err(), Some(WireError::Ipv6BadPayloadLen));
        assert_eq!(inner.dst_addr(), "2001:db8:ffff::9".parse::<Ipv6Addr>().unwrap());
        assert_eq!((inner.next_header(), inner.hop_limit()), (6, 60));
        let seg = tcp::Packet::new_checked(&emb[40..]).unwrap();
        assert_eq!((seg.src_port(), seg.dst_port()), (443, 50001));
    }

    #[test]
    fn golden_echo() {
        let p = Packet::new_checked(&IPV6_ICMPV6_ECHO[L4..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (msg_type::ECHO_REQUEST, 0));
        assert_eq!(p.checksum(), 0xcd28);
        let (src, dst) = addrs(&IPV6_ICMPV6_ECHO);
        assert!(p.verify_checksum(src, dst));
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x4242, 7));
        assert_eq!(p.payload(), b"ping6");
        assert_eq!(p.embedded(), None);

        // Echo reply via setters.
        let mut b = [0u8; 13];
        b.copy_from_slice(&IPV6_ICMPV6_ECHO[L4..]);
        let mut q = Packet::new_checked(&mut b[..]).unwrap();
        q.set_msg_type(msg_type::ECHO_REPLY);
        q.set_msg_code(0);
        q.set_echo_ident(1);
        q.set_echo_seq_no(2);
        q.fill_checksum(dst, src);
        assert!(q.verify_checksum(dst, src));
        assert_eq!((q.echo_ident(), q.echo_seq_no()), (1, 2));
        q.set_checksum(0);
        assert_eq!(q.checksum(), 0);
        assert_eq!(q.into_inner()[0], 129);
    }

    #[test]
    fn other_errors() {
        for t in 0..=255u8 {
            assert_eq!(is_error(t), (1..=4).contains(&t));
        }
        let mut b = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg_type::PARAM_PROBLEM);
        p.set_rest_of_header(42);
        assert_eq!(p.pointer(), 42);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.embedded(), Some(&[][..]));
    }

    #[test]
    fn every_prefix() {
        for len in 0..=32 {
            let r = Packet::new_checked(&IPV6_ICMPV6_NS[L4..L4 + len]).map(|_| ());
            let want = if len < 8 { Err(WireError::Icmpv6Truncated) } else { Ok(()) };
            assert_eq!(r, want);
        }
    }
}
