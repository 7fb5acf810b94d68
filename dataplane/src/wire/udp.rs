//! UDP headers (RFC 768).

use super::{checksum, clamped, clamped_mut, ip_proto, read_u16, write_u16, Field, WireError};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram. The buffer may be longer than the
/// length field (padding): [`Packet::payload`] and the checksum functions
/// stop at the length field.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
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

    /// `UdpTruncated` if shorter than 8 bytes, `UdpBadLength` if the length
    /// field is below 8 or beyond the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::UdpTruncated);
        }
        let udp_len = usize::from(self.len());
        if udp_len < HEADER_LEN || udp_len > len {
            return Err(WireError::UdpBadLength);
        }
        Ok(())
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length field (header and payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum field (0 = no checksum, IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    fn datagram(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, usize::from(self.len()))
    }

    /// Whether the checksum verifies over IPv4 addresses; a zero checksum
    /// (none) verifies.
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        self.checksum() == 0 || checksum::verify_l4_v4(src, dst, ip_proto::UDP, self.datagram())
    }

    /// Whether the checksum verifies over IPv6 addresses (mandatory there:
    /// zero fails).
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        self.checksum() != 0 && checksum::verify_l4_v6(src, dst, ip_proto::UDP, self.datagram())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
    }
}

/// A computed UDP checksum of 0 is sent as 0xffff (0 means "none").
#[inline]
fn non_zero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value)
    }

    /// Set the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], value)
    }

    /// Set the length field.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value)
    }

    /// Set the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value)
    }

    /// Compute and store the checksum over IPv4 addresses.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v4(src, dst, ip_proto::UDP, self.datagram());
        self.set_checksum(non_zero(c))
    }

    /// Compute and store the checksum over IPv6 addresses.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let c = checksum::l4_checksum_v6(src, dst, ip_proto::UDP, self.datagram());
        self.set_checksum(non_zero(c))
    }

    /// Mutable payload, up to the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of a UDP header, checksum excepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length (length field minus 8).
    pub payload_len: u16,
}

impl Repr {
    /// Read a checked packet (checksums are verified by the caller, who
    /// knows the addresses and whether the NIC did it).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.len().saturating_sub(HEADER_LEN as u16),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header with a zero checksum; call `fill_checksum_v4/v6`
    /// after the payload is in place. `UdpTruncated` if the buffer is short,
    /// `UdpBadLength` if `payload_len + 8` exceeds 65535.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::UdpTruncated);
        }
        let len = self.payload_len.checked_add(HEADER_LEN as u16).ok_or(WireError::UdpBadLength)?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::super::golden::*;
    use super::*;

    fn dns() -> &'static [u8] {
        &IPV4_UDP_DNS[14 + 20..]
    }

    #[test]
    fn golden_dns() {
        let p = Packet::new_checked(dns()).unwrap();
        assert_eq!(p.src_port(), 53211);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.checksum(), 0x9c46);
        assert_eq!(p.payload().len(), 29);
        assert_eq!(p.payload()[..2], [0xab, 0xcd]);
        assert!(p.verify_checksum_v4([10, 0, 2, 15], [10, 0, 2, 3]));
        assert!(!p.verify_checksum_v4([10, 0, 2, 15], [10, 0, 2, 4]));
    }

    #[test]
    fn golden_padded_vlan_udp() {
        // 10-byte datagram in a 64-byte frame: the padding is ignored.
        let seg = &VLAN_IPV4_UDP[18 + 20..];
        let p = Packet::new_checked(seg).unwrap();
        assert_eq!(seg.len(), 26);
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (1234, 5678, 10));
        assert_eq!(p.payload(), b"hi");
        assert_eq!(p.checksum(), 0x686c);
        assert!(p.verify_checksum_v4([10, 1, 0, 1], [10, 1, 0, 2]));
    }

    #[test]
    fn golden_ipv6() {
        let ip = &IPV6_HBH_FRAG_UDP[14..];
        let p = Packet::new_checked(&ip[40 + 16..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (4000, 5000, 32));
        assert_eq!(p.checksum(), 0x77f6);
        assert_eq!(p.payload(), b"fragment-zero-data......");
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&ip[8..24]);
        dst.copy_from_slice(&ip[24..40]);
        assert!(p.verify_checksum_v6(src, dst));
    }

    #[test]
    fn zero_checksum() {
        let mut b = [0u8; 37];
        b.copy_from_slice(dns());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_checksum(0);
        assert!(p.verify_checksum_v4([1, 2, 3, 4], [5, 6, 7, 8]));
        assert!(!p.verify_checksum_v6([1; 16], [2; 16]));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Find a source port for which the checksum computes to 0.
        let mut b = [0u8; 8];
        let mut found = false;
        for port in 0..=u16::MAX {
            let mut p = Packet::new_unchecked(&mut b[..]);
            p.set_src_port(port);
            p.set_dst_port(53);
            p.set_len(8);
            p.set_checksum(0);
            let c = checksum::l4_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, &b);
            if c == 0 {
                let mut p = Packet::new_unchecked(&mut b[..]);
                p.fill_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]);
                assert_eq!(p.checksum(), 0xffff);
                assert!(p.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]));
                found = true;
                break;
            }
        }
        assert!(found);
    }

    #[test]
    fn setters_and_repr_round_trip() {
        let repr = Repr::parse(&Packet::new_checked(dns()).unwrap());
        assert_eq!(repr, Repr { src_port: 53211, dst_port: 53, payload_len: 29 });
        let mut b = [0u8; 37];
        let mut p = Packet::new_unchecked(&mut b[..]);
        repr.emit(&mut p).unwrap();
        p.payload_mut().copy_from_slice(&dns()[8..]);
        p.fill_checksum_v4([10, 0, 2, 15], [10, 0, 2, 3]);
        assert_eq!(b[..], dns()[..]);
        assert_eq!(repr.buffer_len(), 8);

        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_checksum_v6([3; 16], [4; 16]);
        assert!(p.verify_checksum_v6([3; 16], [4; 16]));
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(12);
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (1, 2, 12));
        assert_eq!(p.payload_mut().len(), 4);
        p.set_len(3);
        assert!(p.payload_mut().is_empty());
        p.set_len(9999);
        assert_eq!(p.payload_mut().len(), 29);

        let mut short = [0u8; 7];
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut short[..])), Err(WireError::UdpTruncated));
        let big = Repr { payload_len: 65528, ..repr };
        assert_eq!(big.emit(&mut Packet::new_unchecked(&mut b[..])), Err(WireError::UdpBadLength));
    }

    #[test]
    fn every_prefix() {
        for len in 0..=dns().len() {
            let want = match len {
                0..=7 => Err(WireError::UdpTruncated),
                8..=36 => Err(WireError::UdpBadLength),
                _ => Ok(()),
            };
            assert_eq!(Packet::new_checked(&dns()[..len]).map(|_| ()), want, "len {len}");
        }
    }

    #[test]
    fn length_below_eight() {
        for l in 0..8u16 {
            let mut b = [0u8; 37];
            b.copy_from_slice(dns());
            b[4..6].copy_from_slice(&l.to_be_bytes());
            assert_eq!(Packet::new_checked(&b[..]).err(), Some(WireError::UdpBadLength));
        }
    }

    #[test]
    fn length_beyond_buffer() {
        let mut b = [0u8; 37];
        b.copy_from_slice(dns());
        b[4..6].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).err(), Some(WireError::UdpBadLength));
        // Shorter than the buffer is fine: the rest is padding.
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.payload().is_empty());
    }
}
