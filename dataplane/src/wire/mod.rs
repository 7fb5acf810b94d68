//! Zero-copy views of the packet headers the dataplane handles, and the fast
//! summary parser of the hot path.
//!
//! Each protocol module offers a `Packet<T: AsRef<[u8]>>` (or `Frame`) view
//! in the smoltcp style: `new_unchecked` wraps any buffer (accessors may then
//! panic on a short buffer), `new_checked` validates the buffer once, after
//! which no accessor can panic; getters need `T: AsRef<[u8]>`, setters
//! `T: AsMut<[u8]>`. Field offsets are named ranges in a private `mod field`.
//! Accessors that return a variable-length slice (options, payload) clamp
//! their range to the buffer, so they stay panic-free even after a setter
//! changed a length field.
//!
//! [`parse_frame`] validates a whole frame in one pass and returns a
//! [`Layers`] summary (offsets, kinds, fragment state) for the graph nodes;
//! every failure is a [`WireError`] value that maps to a drop counter.
//!
//! This module depends on `core`/`std` only.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod golden;

use core::fmt;

pub use arp::Packet as ArpPacket;
pub use ethernet::{
    ethertype, AddressParseError, EthernetAddress, Frame as EthernetFrame, Repr as EthernetRepr, VlanTag,
};
pub use icmpv4::Packet as Icmpv4Packet;
pub use icmpv6::Packet as Icmpv6Packet;
pub use ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{
    ExtChain as Ipv6ExtChain, ExtHeader as Ipv6ExtHeader, ExtIter as Ipv6ExtIter, FragmentInfo as Ipv6FragmentInfo,
    Packet as Ipv6Packet, Repr as Ipv6Repr,
};
pub use tcp::Packet as TcpPacket;
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next header`) used here.
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options header.
    pub const HOPOPT: u8 = 0;
    /// Internet Control Message Protocol (IPv4).
    pub const ICMP: u8 = 1;
    /// Internet Group Management Protocol.
    pub const IGMP: u8 = 2;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// IPv6 Routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload (an upper layer for the walker).
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options header.
    pub const IPV6_OPTS: u8 = 60;
}

/// A byte range of a header field.
type Field = core::ops::Range<usize>;
/// The bytes from an offset to the end of the buffer.
type Rest = core::ops::RangeFrom<usize>;

/// Read a big-endian `u16` from the first two bytes of `b`.
/// Callers pass a slice of a field validated by `check_len`.
#[inline(always)]
fn read_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Read a big-endian `u32` from the first four bytes of `b`.
#[inline(always)]
fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Write `v` big-endian into the first two bytes of `b`.
#[inline(always)]
fn write_u16(b: &mut [u8], v: u16) {
    b[..2].copy_from_slice(&v.to_be_bytes());
}

/// Write `v` big-endian into the first four bytes of `b`.
#[inline(always)]
fn write_u32(b: &mut [u8], v: u32) {
    b[..4].copy_from_slice(&v.to_be_bytes());
}

/// Read four bytes of `b` as an array.
#[inline(always)]
fn read_4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// Read sixteen bytes of `b` as an array.
#[inline(always)]
fn read_16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

/// `&data[start..end]` with both bounds clamped to the buffer: never panics.
#[inline(always)]
fn clamped(data: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(data.len());
    let start = start.min(end);
    &data[start..end]
}

/// Mutable variant of [`clamped`].
#[inline(always)]
fn clamped_mut(data: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(data.len());
    let start = start.min(end);
    &mut data[start..end]
}

/// Defines [`WireError`], its [`WireError::ALL`] table, [`WireError::COUNT`]
/// and [`WireError::name`] from one list, so they cannot drift apart.
macro_rules! wire_errors {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Why a frame or header was rejected. Each variant names one
        /// invariant and maps to one drop counter (see [`WireError::name`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum WireError {
            $($(#[$doc])* $variant,)*
        }

        impl WireError {
            /// Number of variants.
            pub const COUNT: usize = [$($name),*].len();

            /// Every variant, in discriminant order (`ALL[e as usize] == e`).
            pub const ALL: [WireError; Self::COUNT] = [$(WireError::$variant),*];

            /// The snake_case name of the invariant, used as the drop
            /// counter name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(WireError::$variant => $name,)*
                }
            }
        }
    };
}

wire_errors! {
    /// The frame is longer than 65535 bytes, so its offsets do not fit the
    /// `u16` fields of [`Layers`].
    FrameTooLong => "frame_too_long",
    /// Shorter than the 14-byte Ethernet II header.
    EthTruncated => "eth_truncated",
    /// A VLAN TPID is not followed by a full 4-byte tag.
    VlanTruncated => "vlan_truncated",
    /// More than two stacked VLAN tags.
    TooManyVlanTags => "too_many_vlan_tags",
    /// Shorter than the fixed ARP header or the 28-byte Ethernet/IPv4 body.
    ArpTruncated => "arp_truncated",
    /// ARP for other than IPv4 over Ethernet (hlen 6, plen 4, ptype 0x0800).
    ArpUnsupported => "arp_unsupported",
    /// Shorter than the 20-byte IPv4 header.
    Ipv4Truncated => "ipv4_truncated",
    /// IPv4 version nibble is not 4.
    Ipv4BadVersion => "ipv4_bad_version",
    /// IHL below 5, or a header length beyond the buffer.
    Ipv4BadIhl => "ipv4_bad_ihl",
    /// Total length below the header length or beyond the buffer.
    Ipv4BadTotalLen => "ipv4_bad_total_len",
    /// IPv4 header checksum does not verify.
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// Shorter than the 40-byte IPv6 header.
    Ipv6Truncated => "ipv6_truncated",
    /// IPv6 version nibble is not 6.
    Ipv6BadVersion => "ipv6_bad_version",
    /// Payload length beyond the buffer.
    Ipv6BadPayloadLen => "ipv6_bad_payload_len",
    /// An extension header runs past the IPv6 payload.
    Ipv6ExtTruncated => "ipv6_ext_truncated",
    /// More than [`ipv6::MAX_EXT_HEADERS`] extension headers.
    Ipv6TooManyExt => "ipv6_too_many_ext",
    /// Shorter than the 20-byte TCP header.
    TcpTruncated => "tcp_truncated",
    /// TCP data offset below 5 or beyond the segment.
    TcpBadDataOffset => "tcp_bad_data_offset",
    /// Shorter than the 8-byte UDP header.
    UdpTruncated => "udp_truncated",
    /// UDP length below 8 or beyond the IP payload.
    UdpBadLength => "udp_bad_length",
    /// Shorter than the 8-byte ICMPv4 header.
    Icmpv4Truncated => "icmpv4_truncated",
    /// Shorter than the 8-byte ICMPv6 header.
    Icmpv6Truncated => "icmpv6_truncated",
}

impl WireError {
    /// The index of this variant in [`WireError::ALL`] (its discriminant),
    /// e.g. to index a `[u64; WireError::COUNT]` counter array.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for WireError {}

/// The kind of network-layer header found after the Ethernet/VLAN headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum L3Kind {
    /// An ethertype this parser does not know; not an error.
    #[default]
    Other,
    /// IPv4, validated.
    Ipv4,
    /// IPv6, validated including its extension headers.
    Ipv6,
    /// Ethernet/IPv4 ARP, validated.
    Arp,
}

/// Fragmentation state of an IP packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Frag {
    /// Not fragmented (also an IPv6 atomic fragment: offset 0, M=0).
    #[default]
    None,
    /// First fragment (offset 0, more fragments follow): has the L4 header.
    First,
    /// A later fragment (offset > 0): no L4 header.
    Later,
}

/// Summary of a validated frame, as returned by [`parse_frame`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layers {
    /// TCI of the outer 802.1Q/802.1ad tag, if any (at most 2 tags allowed).
    pub vlan_tci: Option<u16>,
    /// The ethertype after any VLAN tags.
    pub ethertype: u16,
    /// Offset of the L3 header in the frame.
    pub l3_off: u16,
    /// What the L3 header is.
    pub l3: L3Kind,
    /// IPv4 total length / 40 + IPv6 payload length / ARP 28; 0 for `Other`.
    /// `frame[l3_off..l3_off + l3_len]` is the L3 packet without padding.
    pub l3_len: u16,
    /// IP protocol after the IPv6 extension headers (0 if not IP). For a
    /// later fragment, the protocol of the fragmented datagram.
    pub l4_proto: u8,
    /// Offset of the L4 header (0 if not IP, or a later fragment).
    pub l4_off: u16,
    /// Fragmentation state.
    pub frag: Frag,
}

impl Layers {
    /// Length of the L4 segment in the frame (`l3_off + l3_len - l4_off`),
    /// or 0 if there is no L4 header.
    #[inline]
    pub const fn l4_len(&self) -> u16 {
        if self.l4_off == 0 {
            0
        } else {
            // `parse_frame` guarantees l4_off <= l3_off + l3_len <= 65535.
            (self.l3_off + self.l3_len).saturating_sub(self.l4_off)
        }
    }
}

/// Largest frame [`parse_frame`] accepts, so that offsets fit in `u16`.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Minimum ICMPv4/ICMPv6 message `parse_frame` accepts: type, code, checksum
/// and the 4-byte rest of header that every defined message has.
pub const ICMP_MIN_LEN: usize = 8;

/// `data[off..]`, or an empty slice if `off` is past the end.
#[inline(always)]
fn tail(data: &[u8], off: usize) -> &[u8] {
    data.get(off..).unwrap_or(&[])
}

/// Validate a frame and summarise its layers.
///
/// Checks, in order: the Ethernet header; at most two VLAN tags (802.1Q or
/// 802.1ad TPIDs, in any order); then by ethertype
/// * ARP: Ethernet/IPv4 format and 28 bytes;
/// * IPv4: version, IHL, total length (the frame may be longer: padding),
///   and the header checksum if `verify_ipv4_checksum`;
/// * IPv6: version, payload length, the extension header chain
///   (see [`ipv6::walk_ext`]);
///
/// and, for unfragmented packets and first fragments, the L4 header within
/// the IP payload (bounded by the IP length, not the frame):
/// * TCP: 20 bytes and a data offset in `5..=len/4`;
/// * UDP: 8 bytes and a length field >= 8 and, unless a first fragment,
///   <= the IP payload length;
/// * ICMP (IPv4 protocol 1) / ICMPv6 (IPv6 next header 58):
///   [`ICMP_MIN_LEN`] (8) bytes.
///
/// Unknown ethertypes give `L3Kind::Other`; unknown IP protocols are not
/// checked. Never panics, never allocates.
#[inline]
pub fn parse_frame(frame: &[u8], verify_ipv4_checksum: bool) -> Result<Layers, WireError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(WireError::FrameTooLong);
    }
    let eth = ethernet::Frame::new_checked(frame)?;
    let mut layers = Layers { ethertype: eth.ethertype(), ..Layers::default() };
    let mut off = ethernet::HEADER_LEN;

    if ethernet::is_vlan_tpid(layers.ethertype) {
        let outer = ethernet::VlanTag::new_checked(tail(frame, off))?;
        layers.vlan_tci = Some(outer.tci());
        layers.ethertype = outer.ethertype();
        off += ethernet::VLAN_TAG_LEN;
        if ethernet::is_vlan_tpid(layers.ethertype) {
            let inner = ethernet::VlanTag::new_checked(tail(frame, off))?;
            layers.ethertype = inner.ethertype();
            off += ethernet::VLAN_TAG_LEN;
            if ethernet::is_vlan_tpid(layers.ethertype) {
                return Err(WireError::TooManyVlanTags);
            }
        }
    }
    // off <= min(22, frame.len()) here, and frame.len() <= u16::MAX, so every
    // offset and length below fits in u16.
    layers.l3_off = off as u16;
    let l3 = tail(frame, off);

    match layers.ethertype {
        ethertype::IPV4 => parse_ipv4(l3, off, verify_ipv4_checksum, &mut layers)?,
        ethertype::IPV6 => parse_ipv6(l3, off, &mut layers)?,
        ethertype::ARP => {
            arp::Packet::new_checked(l3)?;
            layers.l3 = L3Kind::Arp;
            layers.l3_len = arp::PACKET_LEN as u16;
        }
        _ => {}
    }
    Ok(layers)
}

#[inline(always)]
fn parse_ipv4(l3: &[u8], off: usize, verify: bool, layers: &mut Layers) -> Result<(), WireError> {
    let ip = ipv4::Packet::new_checked(l3)?;
    if verify && !ip.verify_checksum() {
        return Err(WireError::Ipv4BadChecksum);
    }
    let total_len = ip.total_len();
    let header_len = usize::from(ip.header_len());
    layers.l3 = L3Kind::Ipv4;
    layers.l3_len = total_len;
    layers.l4_proto = ip.protocol();
    layers.frag = if ip.frag_offset() != 0 {
        Frag::Later
    } else if ip.more_frags() {
        Frag::First
    } else {
        Frag::None
    };
    if layers.frag != Frag::Later {
        layers.l4_off = (off + header_len) as u16;
        // header_len <= total_len <= l3.len() was checked by new_checked.
        let l4 = l3.get(header_len..usize::from(total_len)).unwrap_or(&[]);
        check_l4(layers.l4_proto, l4, layers.frag == Frag::First, false)?;
    }
    Ok(())
}

#[inline(always)]
fn parse_ipv6(l3: &[u8], off: usize, layers: &mut Layers) -> Result<(), WireError> {
    let ip = ipv6::Packet::new_checked(l3)?;
    let payload = ip.payload();
    let chain = ipv6::walk_ext(ip.next_header(), payload)?;
    layers.l3 = L3Kind::Ipv6;
    layers.l3_len = (ipv6::HEADER_LEN + payload.len()) as u16;
    layers.l4_proto = chain.upper_proto;
    layers.frag = match chain.fragment {
        Some(f) if f.offset != 0 => Frag::Later,
        Some(f) if f.more => Frag::First,
        _ => Frag::None,
    };
    if layers.frag != Frag::Later {
        layers.l4_off = (off + ipv6::HEADER_LEN + chain.upper_off) as u16;
        let l4 = tail(payload, chain.upper_off);
        check_l4(layers.l4_proto, l4, layers.frag == Frag::First, true)?;
    }
    Ok(())
}

/// Minimum checks of the L4 header in `l4` (the IP payload from the L4
/// header on, without link padding).
#[inline(always)]
fn check_l4(proto: u8, l4: &[u8], first_fragment: bool, v6: bool) -> Result<(), WireError> {
    match proto {
        ip_proto::TCP => {
            tcp::Packet::new_checked(l4)?;
        }
        ip_proto::UDP => {
            if l4.len() < udp::HEADER_LEN {
                return Err(WireError::UdpTruncated);
            }
            let len = usize::from(udp::Packet::new_unchecked(l4).len());
            // A first fragment carries only part of the datagram the UDP
            // length covers, so only the lower bound applies.
            if len < udp::HEADER_LEN || (!first_fragment && len > l4.len()) {
                return Err(WireError::UdpBadLength);
            }
        }
        ip_proto::ICMP if !v6 && l4.len() < ICMP_MIN_LEN => return Err(WireError::Icmpv4Truncated),
        ip_proto::ICMPV6 if v6 && l4.len() < ICMP_MIN_LEN => return Err(WireError::Icmpv6Truncated),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
