//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! The view accepts only the Ethernet/IPv4 format (hardware length 6,
//! protocol length 4, protocol type 0x0800), so its address accessors have
//! fixed offsets. The hardware type is exposed, not checked: Ethernet is 1,
//! but some stacks send 6 (IEEE 802).

use std::net::Ipv4Addr;

use super::ethernet::{ethertype, EthernetAddress};
use super::{read_4, read_u16, write_u16, Field, WireError};

/// Length of an Ethernet/IPv4 ARP packet (without link padding).
pub const PACKET_LEN: usize = 28;
/// Length of the format-independent part (htype .. oper).
pub const FIXED_LEN: usize = 8;

/// The Ethernet hardware type.
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation codes.
pub mod operation {
    /// Request (who-has).
    pub const REQUEST: u16 = 1;
    /// Reply (is-at).
    pub const REPLY: u16 = 2;
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

fn read_mac(b: &[u8]) -> EthernetAddress {
    EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checks; accessors panic if it is shorter than
    /// [`PACKET_LEN`].
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

    /// Ensure the buffer holds an Ethernet/IPv4 ARP packet: `ArpTruncated`
    /// if shorter than the fixed 8 bytes, `ArpUnsupported` for another
    /// format, `ArpTruncated` if shorter than 28 bytes. Longer is fine
    /// (link padding).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < FIXED_LEN {
            return Err(WireError::ArpTruncated);
        }
        if data[field::HLEN] != 6 || data[field::PLEN] != 4 || read_u16(&data[field::PTYPE]) != ethertype::IPV4 {
            return Err(WireError::ArpUnsupported);
        }
        if data.len() < PACKET_LEN {
            return Err(WireError::ArpTruncated);
        }
        Ok(())
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 = Ethernet).
    #[inline]
    pub fn htype(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// Protocol type (0x0800 = IPv4).
    #[inline]
    pub fn ptype(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::PTYPE])
    }

    /// Hardware address length (6).
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4).
    #[inline]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation (see [`operation`]).
    #[inline]
    pub fn oper(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::OPER])
    }

    /// Sender hardware address.
    #[inline]
    pub fn sha(&self) -> EthernetAddress {
        read_mac(&self.buffer.as_ref()[field::SHA])
    }

    /// Sender protocol address.
    #[inline]
    pub fn spa(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(&self.buffer.as_ref()[field::SPA]))
    }

    /// Target hardware address.
    #[inline]
    pub fn tha(&self) -> EthernetAddress {
        read_mac(&self.buffer.as_ref()[field::THA])
    }

    /// Target protocol address.
    #[inline]
    pub fn tpa(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_4(&self.buffer.as_ref()[field::TPA]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the hardware type.
    #[inline]
    pub fn set_htype(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::HTYPE], value)
    }

    /// Set the protocol type.
    #[inline]
    pub fn set_ptype(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::PTYPE], value)
    }

    /// Set the hardware address length.
    #[inline]
    pub fn set_hlen(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value
    }

    /// Set the protocol address length.
    #[inline]
    pub fn set_plen(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value
    }

    /// Set the operation.
    #[inline]
    pub fn set_oper(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::OPER], value)
    }

    /// Set the sender hardware address.
    #[inline]
    pub fn set_sha(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0)
    }

    /// Set the sender protocol address.
    #[inline]
    pub fn set_spa(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets())
    }

    /// Set the target hardware address.
    #[inline]
    pub fn set_tha(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0)
    }

    /// Set the target protocol address.
    #[inline]
    pub fn set_tpa(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets())
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an Ethernet/IPv4 ARP packet that vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Operation.
    pub oper: u16,
    /// Sender hardware address.
    pub sha: EthernetAddress,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: EthernetAddress,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl Repr {
    /// Read a checked packet.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr { oper: packet.oper(), sha: packet.sha(), spa: packet.spa(), tha: packet.tha(), tpa: packet.tpa() }
    }

    /// Bytes [`Repr::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Write an Ethernet/IPv4 ARP packet (`ArpTruncated` if too short).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::ArpTruncated);
        }
        packet.set_htype(HTYPE_ETHERNET);
        packet.set_ptype(ethertype::IPV4);
        packet.set_hlen(6);
        packet.set_plen(4);
        packet.set_oper(self.oper);
        packet.set_sha(self.sha);
        packet.set_spa(self.spa);
        packet.set_tha(self.tha);
        packet.set_tpa(self.tpa);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::super::ethernet::HEADER_LEN;
    use super::super::golden::ARP_REQUEST;
    use super::*;

    fn body() -> &'static [u8] {
        &ARP_REQUEST[HEADER_LEN..]
    }

    #[test]
    fn golden_request() {
        let p = Packet::new_checked(body()).unwrap();
        assert_eq!(p.htype(), HTYPE_ETHERNET);
        assert_eq!(p.ptype(), 0x0800);
        assert_eq!(p.hlen(), 6);
        assert_eq!(p.plen(), 4);
        assert_eq!(p.oper(), operation::REQUEST);
        assert_eq!(p.sha(), EthernetAddress([0x00, 0x0c, 0x29, 0x3e, 0x5b, 0x7a]));
        assert_eq!(p.spa(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.tha(), EthernetAddress([0; 6]));
        assert_eq!(p.tpa(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(p.as_ref().len(), 46);
    }

    #[test]
    fn setters_round_trip_to_reply() {
        let mut bytes = [0u8; 46];
        bytes.copy_from_slice(body());
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        let me = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x35, 0x02]);
        let req = Repr::parse(&p);
        p.set_oper(operation::REPLY);
        p.set_tha(req.sha);
        p.set_tpa(req.spa);
        p.set_sha(me);
        p.set_spa(req.tpa);
        let rep = Repr::parse(&p);
        assert_eq!(
            rep,
            Repr {
                oper: operation::REPLY,
                sha: me,
                spa: Ipv4Addr::new(192, 168, 1, 1),
                tha: req.sha,
                tpa: Ipv4Addr::new(192, 168, 1, 10),
            }
        );
        p.set_htype(6);
        p.set_ptype(0x86dd);
        p.set_hlen(7);
        p.set_plen(16);
        assert_eq!((p.htype(), p.ptype(), p.hlen(), p.plen()), (6, 0x86dd, 7, 16));
        assert_eq!(p.check_len(), Err(WireError::ArpUnsupported));
    }

    #[test]
    fn repr_emit_matches_golden() {
        let repr = Repr::parse(&Packet::new_checked(body()).unwrap());
        let mut out = [0xaau8; PACKET_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out[..], body()[..PACKET_LEN]);
        assert_eq!(repr.buffer_len(), PACKET_LEN);
        let mut short = [0u8; PACKET_LEN - 1];
        assert_eq!(repr.emit(&mut Packet::new_unchecked(&mut short[..])), Err(WireError::ArpTruncated));
    }

    #[test]
    fn every_prefix() {
        for len in 0..=body().len() {
            let r = Packet::new_checked(&body()[..len]).map(|_| ());
            let want = if len < PACKET_LEN { Err(WireError::ArpTruncated) } else { Ok(()) };
            assert_eq!(r, want, "len {len}");
        }
    }

    #[test]
    fn unsupported_formats() {
        let cases: [(usize, u8); 4] = [(4, 8), (5, 16), (2, 0x86), (3, 0xdd)];
        for (at, v) in cases {
            let mut b = [0u8; 46];
            b.copy_from_slice(body());
            b[at] = v;
            assert_eq!(Packet::new_checked(&b[..]).err(), Some(WireError::ArpUnsupported), "byte {at}");
            // The format is judged before the full length.
            assert_eq!(Packet::new_checked(&b[..10]).err(), Some(WireError::ArpUnsupported));
        }
        // Hardware type is not checked.
        let mut b = [0u8; 46];
        b.copy_from_slice(body());
        b[1] = 6;
        assert!(Packet::new_checked(&b[..]).is_ok());
    }
}
