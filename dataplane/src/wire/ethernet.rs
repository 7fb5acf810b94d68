//! Ethernet II frames, MAC addresses and 802.1Q / 802.1ad VLAN tags.

use core::fmt;
use core::str::FromStr;

use super::{read_u16, write_u16, Field, Rest, WireError};

/// Ethertype values.
pub mod ethertype {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0800;
    /// Address Resolution Protocol.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (S-tag, "QinQ").
    pub const QINQ: u16 = 0x88a8;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x86dd;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag (TCI + encapsulated ethertype) after its TPID.
pub const VLAN_TAG_LEN: usize = 4;

/// Whether `ethertype` is a VLAN tag protocol identifier (802.1Q or 802.1ad).
#[inline(always)]
pub const fn is_vlan_tpid(ethertype: u16) -> bool {
    ethertype == ethertype::VLAN || ethertype == ethertype::QINQ
}

/// A six-octet Ethernet (MAC) address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The octets of the address.
    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        let a = self.0;
        a[0] & a[1] & a[2] & a[3] & a[4] & a[5] == 0xff
    }

    /// Whether the group bit is set (broadcast is multicast too).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether the group bit is clear.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally-administered bit is set.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(octets: [u8; 6]) -> Self {
        EthernetAddress(octets)
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", a[0], a[1], a[2], a[3], a[4], a[5])
    }
}

/// Error parsing an [`EthernetAddress`] from text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressParseError;

impl fmt::Display for AddressParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Ethernet address (expected aa:bb:cc:dd:ee:ff)")
    }
}

impl std::error::Error for AddressParseError {}

impl FromStr for EthernetAddress {
    type Err = AddressParseError;

    /// Parse six two-digit hex octets separated by `:` (or all by `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(AddressParseError);
        }
        let sep = b[2];
        if sep != b':' && sep != b'-' {
            return Err(AddressParseError);
        }
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && b[at - 1] != sep {
                return Err(AddressParseError);
            }
            let hi = hex_digit(b[at]).ok_or(AddressParseError)?;
            let lo = hex_digit(b[at + 1]).ok_or(AddressParseError)?;
            *octet = hi << 4 | lo;
        }
        Ok(EthernetAddress(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use super::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

fn read_mac(b: &[u8]) -> EthernetAddress {
    EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checks; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer after [`Frame::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensure the buffer holds the 14-byte header (`EthTruncated`).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::EthTruncated)
        } else {
            Ok(())
        }
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the header.
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        read_mac(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        read_mac(&self.buffer.as_ref()[field::SOURCE])
    }

    /// Ethertype (or the TPID of a VLAN tag).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ETHERTYPE])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// Everything after the 14-byte header (VLAN tags, payload, padding).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0)
    }

    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0)
    }

    /// Set the ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ETHERTYPE], value)
    }

    /// Mutable access to everything after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A read/write view of a 4-byte VLAN tag: the TCI and the encapsulated
/// ethertype, i.e. the bytes that follow an 802.1Q/802.1ad TPID.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

mod vlan_field {
    use super::{Field, Rest};

    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: Rest = 4..;
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wrap a buffer without checks; accessors panic if it is shorter than
    /// [`VLAN_TAG_LEN`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    /// Wrap a buffer after [`VlanTag::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<VlanTag<T>, WireError> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// Ensure the buffer holds the 4-byte tag (`VlanTruncated`).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(WireError::VlanTruncated)
        } else {
            Ok(())
        }
    }

    /// Release the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole Tag Control Information.
    #[inline]
    pub fn tci(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[vlan_field::TCI])
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The encapsulated ethertype (or the TPID of an inner tag).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[vlan_field::ETHERTYPE])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanTag<&'a T> {
    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[vlan_field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Set the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[vlan_field::TCI], value)
    }

    /// Set the priority code point (low 3 bits of `value`).
    #[inline]
    pub fn set_pcp(&mut self, value: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(value & 0x07) << 13);
        self.set_tci(tci)
    }

    /// Set the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, value: bool) {
        let tci = (self.tci() & !0x1000) | if value { 0x1000 } else { 0 };
        self.set_tci(tci)
    }

    /// Set the VLAN identifier (low 12 bits of `value`).
    #[inline]
    pub fn set_vid(&mut self, value: u16) {
        let tci = (self.tci() & 0xf000) | (value & 0x0fff);
        self.set_tci(tci)
    }

    /// Set the encapsulated ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[vlan_field::ETHERTYPE], value)
    }

    /// Mutable access to everything after the tag.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[vlan_field::PAYLOAD]
    }
}

/// The fields of an Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// Ethertype.
    pub ethertype: u16,
}

impl Repr {
    /// Read the header of a checked frame.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Repr {
        Repr { src_addr: frame.src_addr(), dst_addr: frame.dst_addr(), ethertype: frame.ethertype() }
    }

    /// Bytes [`Repr::emit`] writes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into `frame` (`EthTruncated` if it is too short).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<(), WireError> {
        frame.check_len()?;
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests unwrap known-good golden data
mod tests {
    use super::super::golden::*;
    use super::*;

    #[test]
    fn golden_arp_frame() {
        let frame = Frame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.src_addr(), EthernetAddress([0x00, 0x0c, 0x29, 0x3e, 0x5b, 0x7a]));
        assert_eq!(frame.ethertype(), ethertype::ARP);
        assert_eq!(frame.payload().len(), 46);
        assert_eq!(frame.payload()[..2], [0x00, 0x01]);
        assert_eq!(Frame::<&[u8]>::header_len(), 14);
    }

    #[test]
    fn setters_round_trip() {
        let mut bytes = IPV4_UDP_DNS;
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        let a: EthernetAddress = "02:11:22:33:44:55".parse().unwrap();
        let b: EthernetAddress = "0a:0b:0c:0d:0e:0f".parse().unwrap();
        frame.set_dst_addr(a);
        frame.set_src_addr(b);
        frame.set_ethertype(ethertype::IPV6);
        frame.payload_mut()[0] = 0x60;
        assert_eq!(frame.dst_addr(), a);
        assert_eq!(frame.src_addr(), b);
        assert_eq!(frame.ethertype(), ethertype::IPV6);
        assert_eq!(
            frame.into_inner()[..15],
            [2, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 11, 12, 13, 14, 15, 0x86, 0xdd, 0x60]
        );
    }

    #[test]
    fn repr_round_trip() {
        let frame = Frame::new_checked(&IPV4_TCP_SYN[..]).unwrap();
        let repr = Repr::parse(&frame);
        assert_eq!(repr.ethertype, ethertype::IPV4);
        assert_eq!(repr.dst_addr, EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x35, 0x02]));
        assert_eq!(repr.src_addr, EthernetAddress([0x08, 0x00, 0x27, 0xd4, 0x1a, 0x9c]));
        let mut out = [0u8; 14];
        repr.emit(&mut Frame::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out[..], IPV4_TCP_SYN[..14]);
        assert_eq!(repr.buffer_len(), 14);
        let mut short = [0u8; 13];
        assert_eq!(repr.emit(&mut Frame::new_unchecked(&mut short[..])), Err(WireError::EthTruncated));
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&ARP_REQUEST[..len]).err(), Some(WireError::EthTruncated));
        }
        let frame = Frame::new_checked(&ARP_REQUEST[..HEADER_LEN]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn vlan_tags() {
        let frame = Frame::new_checked(&VLAN_IPV4_UDP[..]).unwrap();
        assert_eq!(frame.ethertype(), ethertype::VLAN);
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!(tag.tci(), 0xa064);
        assert_eq!(tag.pcp(), 5);
        assert!(!tag.dei());
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.ethertype(), ethertype::IPV4);
        assert_eq!(tag.payload()[0], 0x45);

        let frame = Frame::new_checked(&QINQ_IPV6_TCP[..]).unwrap();
        assert_eq!(frame.ethertype(), ethertype::QINQ);
        let outer = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!((outer.vid(), outer.pcp(), outer.ethertype()), (200, 0, ethertype::VLAN));
        let inner = VlanTag::new_checked(outer.payload()).unwrap();
        assert_eq!((inner.vid(), inner.ethertype()), (300, ethertype::IPV6));
        assert!(is_vlan_tpid(outer.ethertype()) && !is_vlan_tpid(inner.ethertype()));

        for len in 0..VLAN_TAG_LEN {
            assert_eq!(VlanTag::new_checked(&[0u8; 4][..len]).err(), Some(WireError::VlanTruncated));
        }
    }

    #[test]
    fn vlan_setters() {
        let mut bytes = [0u8; 4];
        let mut tag = VlanTag::new_checked(&mut bytes[..]).unwrap();
        tag.set_vid(0xfff);
        tag.set_pcp(7);
        tag.set_dei(true);
        tag.set_ethertype(ethertype::ARP);
        assert_eq!((tag.vid(), tag.pcp(), tag.dei(), tag.tci()), (0xfff, 7, true, 0xffff));
        tag.set_vid(42);
        tag.set_pcp(1);
        tag.set_dei(false);
        assert_eq!((tag.vid(), tag.pcp(), tag.dei()), (42, 1, false));
        tag.set_tci(0x0123);
        assert_eq!(tag.vid(), 0x123);
        tag.payload_mut();
        assert_eq!(bytes, [0x01, 0x23, 0x08, 0x06]);
    }

    #[test]
    fn address_display_and_parse() {
        let a = EthernetAddress([0x00, 0x0c, 0x29, 0x3e, 0x5b, 0x7a]);
        assert_eq!(a.to_string(), "00:0c:29:3e:5b:7a");
        assert_eq!("00:0c:29:3e:5b:7a".parse::<EthernetAddress>(), Ok(a));
        assert_eq!("00-0C-29-3E-5B-7A".parse::<EthernetAddress>(), Ok(a));
        for bad in [
            "",
            "00:0c:29:3e:5b",
            "00:0c:29:3e:5b:7a:",
            "00:0c:29:3e:5b:7g",
            "00:0c-29:3e:5b:7a",
            "000c:29:3e:5b:7a:",
            "00:0c:29:3e:5b:7a0",
            "+0:0c:29:3e:5b:7a",
            "00.0c.29.3e.5b.7a",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(AddressParseError), "{bad}");
        }
        assert!(!AddressParseError.to_string().is_empty());
        assert_eq!(EthernetAddress::from([1, 2, 3, 4, 5, 6]).octets(), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn address_classes() {
        let bcast = EthernetAddress::BROADCAST;
        assert!(bcast.is_broadcast() && bcast.is_multicast() && !bcast.is_unicast());
        let mcast = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        assert!(!mcast.is_broadcast() && mcast.is_multicast() && !mcast.is_unicast());
        let v6mcast = EthernetAddress([0x33, 0x33, 0xff, 0x00, 0x00, 0x01]);
        assert!(v6mcast.is_multicast() && v6mcast.is_local());
        let ucast = EthernetAddress([0x08, 0x00, 0x27, 0xd4, 0x1a, 0x9c]);
        assert!(!ucast.is_broadcast() && !ucast.is_multicast() && ucast.is_unicast());
        assert!(!ucast.is_local());
        let almost = EthernetAddress([0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        assert!(!almost.is_broadcast() && almost.is_multicast());
    }
}
