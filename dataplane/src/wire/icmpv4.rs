//! ICMP for IPv4 (RFC 792).

use std::net::Ipv4Addr;

use super::{checksum, read_4, read_u16, read_u32, write_u16, write_u32, Field, Rest, WireError};

/// Length of the ICMP header: type, code, checksum, 4-byte rest of header.
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// Codes of destination unreachable.
pub mod unreachable {
    /// Net unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (carries the next-hop MTU).
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Whether `msg_type` is an error message that embeds the original
/// datagram's header after the 8-byte ICMP header.
#[inline]
pub const fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg_type::DEST_UNREACHABLE
            | msg_type::SOURCE_QUENCH
            | msg_type::REDIRECT
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAM_PROBLEM
    )
}

/// A read/write view of an ICMPv4 message. For the checksum functions the
/// buffer must be exactly the message (the IP payload).
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
    pub const MTU: Field = 6..8;
    pub const POINTER: usize = 4;
    pub const PAYLOAD: Rest = 8..;
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

    /// `Icmpv4Truncated` if shorter than the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Icmpv4Truncated)
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

    /// Next-hop MTU (destination unreachable, fragmentation needed).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::MTU])
    }

    /// Pointer to the offending octet (parameter problem).
    #[inline]
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// Gateway address (redirect).
    #[inline]
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(&self.buffer.as_ref()[field::REST]))
    }

    /// Whether this is an error message (see [`is_error`]).
    #[inline]
    pub fn is_error(&self) -> bool {
        is_error(self.msg_type())
    }

    /// Whether the checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the 8-byte header (echo data, or the embedded
    /// original datagram of an error).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// For an error message, the embedded original IP header and leading
    /// payload bytes (usually 20 + 8 bytes, possibly more, possibly cut).
    #[inline]
    pub fn embedded(&self) -> Option<&'a [u8]> {
        if self.is_error() {
            Some(self.payload())
        } else {
            None
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

    /// Set the 4-byte rest of header.
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

    /// Set the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::MTU], value)
    }

    /// Compute and store the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
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
    use super::super::{ipv4, udp};
    use super::*;

    const L4: usize = 14 + 20;

    #[test]
    fn golden_echo_request() {
        let p = Packet::new_checked(&IPV4_ICMP_ECHO[L4..]).unwrap();
        assert_eq!(p.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0xf3c8);
        assert!(p.verify_checksum());
        assert_eq!(p.rest_of_header(), 0x1234_0001);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert!(!p.is_error());
        assert_eq!(p.embedded(), None);
        assert_eq!(p.payload().len(), 32);
        assert_eq!(p.payload()[0], 0x10);
    }

    #[test]
    fn golden_time_exceeded() {
        let p = Packet::new_checked(&IPV4_ICMP_TIME_EXCEEDED[L4..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (msg_type::TIME_EXCEEDED, 0));
        assert_eq!(p.checksum(), 0x2b6f);
        assert!(p.verify_checksum());
        assert_eq!(p.rest_of_header(), 0);
        assert!(p.is_error());
        let emb = p.embedded().unwrap();
        assert_eq!(emb.len(), 28);
        // The embedded header is cut: its total length (40) exceeds what
        // is there, so read it with new_unchecked after checking 20 bytes.
        let inner = ipv4::Packet::new_unchecked(emb);
        assert_eq!(ipv4::Packet::new_checked(emb).err(), Some(WireError::Ipv4BadTotalLen));
        assert_eq!(inner.src_addr(), Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!((inner.ttl(), inner.protocol(), inner.ident()), (1, 17, 0xbeef));
        assert_eq!(inner.checksum(), 0xc48c);
        assert!(inner.verify_checksum());
        let udp = udp::Packet::new_unchecked(&emb[20..]);
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len()), (33434, 33435, 20));
        assert_eq!(udp.checksum(), 0xc446);
    }

    #[test]
    fn other_error_fields() {
        let mut b = [0u8; 36];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(msg_type::DEST_UNREACHABLE);
        p.set_msg_code(unreachable::FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        p.payload_mut()[0] = 0x45;
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(p.rest_of_header(), 1400);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.embedded().map(|e| e[0]), Some(0x45));

        let mut b = [0u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(msg_type::PARAM_PROBLEM);
        p.set_rest_of_header(0x1400_0000);
        assert_eq!(p.pointer(), 20);
        p.set_msg_type(msg_type::REDIRECT);
        p.set_rest_of_header(0xc0a8_0101);
        assert_eq!(p.gateway(), Ipv4Addr::new(192, 168, 1, 1));
        assert!(p.is_error());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.embedded(), Some(&[][..]));
        for t in 0..=255u8 {
            assert_eq!(is_error(t), matches!(t, 3 | 4 | 5 | 11 | 12));
        }
    }

    #[test]
    fn setters_round_trip() {
        let mut b = [0u8; 40];
        b.copy_from_slice(&IPV4_ICMP_ECHO[L4..]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(msg_type::ECHO_REPLY);
        p.set_echo_ident(0xbeef);
        p.set_echo_seq_no(0xcafe);
        p.set_checksum(1);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!((p.msg_type(), p.echo_ident(), p.echo_seq_no()), (0, 0xbeef, 0xcafe));
        // Turning a request into a reply by the incremental update gives the
        // same checksum as recomputation.
        let c = checksum::update16(0xf3c8, 0x0800, 0x0000);
        let mut r = [0u8; 40];
        r.copy_from_slice(&IPV4_ICMP_ECHO[L4..]);
        let mut q = Packet::new_unchecked(&mut r[..]);
        q.set_msg_type(0);
        q.fill_checksum();
        assert_eq!(q.checksum(), c);
        assert_eq!(q.into_inner().len(), 40);
    }

    #[test]
    fn every_prefix() {
        for len in 0..=40 {
            let r = Packet::new_checked(&IPV4_ICMP_ECHO[L4..L4 + len]).map(|_| ());
            let want = if len < 8 { Err(WireError::Icmpv4Truncated) } else { Ok(()) };
            assert_eq!(r, want);
        }
    }
}
