//! Tests of `parse_frame`, `Layers` and `WireError`.

#![allow(clippy::unwrap_used)] // tests unwrap known-good golden data

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::golden::*;
use super::*;

fn parse(frame: &[u8]) -> Result<Layers, WireError> {
    parse_frame(frame, true)
}

/// Recompute the IPv4 header checksum of the packet at `l3`.
fn fix_ipv4(frame: &mut [u8], l3: usize) {
    ipv4::Packet::new_unchecked(&mut frame[l3..]).fill_checksum();
}

fn set_u16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Set the IPv4 total length at `l3`, truncate the frame to it, fix the
/// checksum.
fn shrink_ipv4(frame: &[u8], l3: usize, total_len: u16) -> Vec<u8> {
    let mut f = frame[..l3 + usize::from(total_len)].to_vec();
    set_u16(&mut f, l3 + 2, total_len);
    fix_ipv4(&mut f, l3);
    f
}

#[test]
fn golden_layers() {
    let ipv4 = |l3_off, l3_len, l4_proto, l4_off| Layers {
        vlan_tci: None,
        ethertype: ethertype::IPV4,
        l3_off,
        l3: L3Kind::Ipv4,
        l3_len,
        l4_proto,
        l4_off,
        frag: Frag::None,
    };
    let ipv6 = |l3_len, l4_proto, l4_off| Layers {
        vlan_tci: None,
        ethertype: ethertype::IPV6,
        l3_off: 14,
        l3: L3Kind::Ipv6,
        l3_len,
        l4_proto,
        l4_off,
        frag: Frag::None,
    };
    let cases: [(&str, &[u8], Layers); 13] = [
        (
            "arp",
            &ARP_REQUEST,
            Layers { ethertype: ethertype::ARP, l3_off: 14, l3: L3Kind::Arp, l3_len: 28, ..Layers::default() },
        ),
        ("dns", &IPV4_UDP_DNS, ipv4(14, 57, 17, 34)),
        ("igmp", &IPV4_OPTIONS_IGMP, ipv4(14, 32, 2, 38)),
        ("v6 hbh frag", &IPV6_HBH_FRAG_UDP, Layers { frag: Frag::First, ..ipv6(88, 17, 70) }),
        ("syn", &IPV4_TCP_SYN, ipv4(14, 60, 6, 34)),
        ("echo", &IPV4_ICMP_ECHO, ipv4(14, 60, 1, 34)),
        ("time exceeded", &IPV4_ICMP_TIME_EXCEEDED, ipv4(14, 56, 1, 34)),
        ("ns", &IPV6_ICMPV6_NS, ipv6(72, 58, 54)),
        ("vlan", &VLAN_IPV4_UDP, Layers { vlan_tci: Some(0xa064), ..ipv4(18, 30, 17, 38) }),
        ("qinq", &QINQ_IPV6_TCP, Layers { vlan_tci: Some(200), l3_off: 22, ..ipv6(71, 6, 62) }),
        ("later fragment", &IPV4_LATER_FRAGMENT, Layers { frag: Frag::Later, ..ipv4(14, 49, 17, 0) }),
        ("ptb", &IPV6_ICMPV6_PTB, ipv6(108, 58, 54)),
        ("echo6", &IPV6_ICMPV6_ECHO, ipv6(53, 58, 54)),
    ];
    for (name, frame, want) in cases {
        assert_eq!(parse(frame), Ok(want), "{name}");
        assert_eq!(parse_frame(frame, false), Ok(want), "{name}");
        assert!(usize::from(want.l3_off + want.l3_len) <= frame.len());
    }
    assert_eq!(cases.len(), ALL_FRAMES.len());
}

#[test]
fn l4_len() {
    let l = parse(&IPV4_UDP_DNS).unwrap();
    assert_eq!(l.l4_len(), 37);
    let l = parse(&VLAN_IPV4_UDP).unwrap();
    assert_eq!(l.l4_len(), 10);
    let l = parse(&IPV4_LATER_FRAGMENT).unwrap();
    assert_eq!(l.l4_len(), 0);
    let l = parse(&ARP_REQUEST).unwrap();
    assert_eq!(l.l4_len(), 0);
}

/// What a prefix of a golden frame must give: the L3 length check fires
/// first, since the L4 header is bounded by the IP length.
fn expected_prefix(frame: &[u8], len: usize) -> Result<(), WireError> {
    let full = parse(frame).unwrap();
    let l3_off = usize::from(full.l3_off);
    if len < 14 {
        return Err(WireError::EthTruncated);
    }
    if len < l3_off {
        return Err(WireError::VlanTruncated);
    }
    let avail = len - l3_off;
    let need = usize::from(full.l3_len);
    match full.l3 {
        L3Kind::Arp if avail < need => Err(WireError::ArpTruncated),
        L3Kind::Ipv4 if avail < 20 => Err(WireError::Ipv4Truncated),
        L3Kind::Ipv4 if avail < usize::from(frame[l3_off] & 0x0f) * 4 => Err(WireError::Ipv4BadIhl),
        L3Kind::Ipv4 if avail < need => Err(WireError::Ipv4BadTotalLen),
        L3Kind::Ipv6 if avail < 40 => Err(WireError::Ipv6Truncated),
        L3Kind::Ipv6 if avail < need => Err(WireError::Ipv6BadPayloadLen),
        _ => Ok(()),
    }
}

#[test]
fn every_prefix_of_every_golden_frame() {
    for (name, frame) in ALL_FRAMES {
        let full = parse(frame).unwrap();
        for len in 0..=frame.len() {
            let got = parse(&frame[..len]);
            let want = expected_prefix(frame, len);
            assert_eq!(got.map(|_| ()), want, "{name} len {len}");
            if let Ok(l) = got {
                assert_eq!(l, full, "{name} len {len}: padding must not matter");
            }
        }
    }
}

#[test]
fn padding_is_not_payload() {
    let mut f = IPV4_UDP_DNS.to_vec();
    f.extend_from_slice(&[0xff; 100]);
    assert_eq!(parse(&f), parse(&IPV4_UDP_DNS));
    let mut f = IPV6_ICMPV6_ECHO.to_vec();
    f.extend_from_slice(&[0x00; 7]);
    assert_eq!(parse(&f), parse(&IPV6_ICMPV6_ECHO));
}

#[test]
fn ipv4_checksum_is_optional() {
    let mut f = IPV4_UDP_DNS;
    f[14 + 11] ^= 0x40;
    assert_eq!(parse_frame(&f, true), Err(WireError::Ipv4BadChecksum));
    assert_eq!(parse_frame(&f, false), parse_frame(&IPV4_UDP_DNS, false));
}

#[test]
fn vlan_tags() {
    // 802.1Q outer, 802.1Q inner: allowed.
    let mut f = QINQ_IPV6_TCP.to_vec();
    set_u16(&mut f, 12, ethertype::VLAN);
    assert_eq!(parse(&f).map(|l| (l.vlan_tci, l.l3_off)), Ok((Some(200), 22)));
    // 802.1Q outer, 802.1ad inner: allowed.
    set_u16(&mut f, 16, ethertype::QINQ);
    assert_eq!(parse(&f).map(|l| l.l3), Ok(L3Kind::Ipv6));

    // A third tag.
    let mut f = QINQ_IPV6_TCP[..18].to_vec();
    f.extend_from_slice(&[0x01, 0x2c, 0x81, 0x00]);
    f.extend_from_slice(&QINQ_IPV6_TCP[18..]);
    assert_eq!(parse(&f), Err(WireError::TooManyVlanTags));
    set_u16(&mut f, 20, ethertype::QINQ);
    assert_eq!(parse(&f), Err(WireError::TooManyVlanTags));
    // Even if the frame ends right after the third TPID.
    assert_eq!(parse(&f[..22]), Err(WireError::TooManyVlanTags));

    // Truncated tags.
    assert_eq!(parse(&VLAN_IPV4_UDP[..17]), Err(WireError::VlanTruncated));
    assert_eq!(parse(&QINQ_IPV6_TCP[..21]), Err(WireError::VlanTruncated));

    // A VLAN carrying an unknown ethertype.
    let mut f = VLAN_IPV4_UDP;
    set_u16(&mut f, 16, 0x88cc);
    let l = parse(&f).unwrap();
    assert_eq!((l.vlan_tci, l.ethertype, l.l3, l.l3_off), (Some(0xa064), 0x88cc, L3Kind::Other, 18));
}

#[test]
fn unknown_ethertypes_are_other() {
    for et in [0x88cc, 0x0026, 0x8847, 0x9100] {
        let mut f = IPV4_UDP_DNS;
        set_u16(&mut f, 12, et);
        let want = Layers { ethertype: et, l3_off: 14, ..Layers::default() };
        assert_eq!(parse(&f), Ok(want));
        assert_eq!(parse(&f[..14]), Ok(want));
    }
}

#[test]
fn arp_formats() {
    let mut f = ARP_REQUEST;
    f[14 + 4] = 8; // hlen
    assert_eq!(parse(&f), Err(WireError::ArpUnsupported));
    assert_eq!(parse(&ARP_REQUEST[..14 + 7]), Err(WireError::ArpTruncated));
    assert_eq!(parse(&ARP_REQUEST[..14 + 27]), Err(WireError::ArpTruncated));
}

#[test]
fn ipv4_framing_errors() {
    let l3 = 14;
    for ihl in 0..5 {
        let mut f = IPV4_UDP_DNS;
        f[l3] = 0x40 | ihl;
        fix_ipv4(&mut f, l3);
        assert_eq!(parse(&f), Err(WireError::Ipv4BadIhl), "ihl {ihl}");
    }
    // IHL beyond the buffer: 60-byte header in a 57-byte packet.
    let mut f = IPV4_UDP_DNS;
    f[l3] = 0x4f;
    assert_eq!(parse_frame(&f, false), Err(WireError::Ipv4BadIhl));
    // Total length below the header length.
    let mut f = IPV4_OPTIONS_IGMP;
    set_u16(&mut f, l3 + 2, 23);
    fix_ipv4(&mut f, l3);
    assert_eq!(parse(&f), Err(WireError::Ipv4BadTotalLen));
    // Total length beyond the buffer.
    let mut f = IPV4_UDP_DNS;
    set_u16(&mut f, l3 + 2, 58);
    fix_ipv4(&mut f, l3);
    assert_eq!(parse(&f), Err(WireError::Ipv4BadTotalLen));
    // Version.
    let mut f = IPV4_UDP_DNS;
    f[l3] = 0x65;
    assert_eq!(parse(&f), Err(WireError::Ipv4BadVersion));
    // IPv4 header only, no room for the UDP header.
    assert_eq!(parse(&shrink_ipv4(&IPV4_UDP_DNS, l3, 20)), Err(WireError::UdpTruncated));
    // The IGMP payload is not checked.
    assert!(parse(&shrink_ipv4(&IPV4_OPTIONS_IGMP, l3, 24)).is_ok());
}

#[test]
fn ipv4_fragments() {
    let l3 = 14;
    // First fragment: UDP length may exceed this fragment's payload.
    let mut f = IPV4_UDP_DNS;
    ipv4::Packet::new_unchecked(&mut f[l3..]).set_more_frags(true);
    set_u16(&mut f, 34 + 4, 1400);
    fix_ipv4(&mut f, l3);
    let l = parse(&f).unwrap();
    assert_eq!((l.frag, l.l4_off, l.l4_proto), (Frag::First, 34, 17));
    // ... but not be below 8.
    set_u16(&mut f, 34 + 4, 7);
    assert_eq!(parse(&f), Err(WireError::UdpBadLength));
    // Unfragmented: UDP length beyond the payload is an error.
    let mut f = IPV4_UDP_DNS;
    set_u16(&mut f, 34 + 4, 38);
    assert_eq!(parse(&f), Err(WireError::UdpBadLength));
    // A first fragment still needs the whole minimum L4 header.
    let mut f = shrink_ipv4(&IPV4_TCP_SYN, l3, 30);
    ipv4::Packet::new_unchecked(&mut f[l3..]).set_more_frags(true);
    fix_ipv4(&mut f, l3);
    assert_eq!(parse(&f), Err(WireError::TcpTruncated));
    // Later fragments are not looked into, even when tiny.
    let f = shrink_ipv4(&IPV4_LATER_FRAGMENT, l3, 20);
    let l = parse(&f).unwrap();
    assert_eq!((l.frag, l.l4_off, l.l4_proto, l.l4_len()), (Frag::Later, 0, 17, 0));
    let mut f = IPV4_LATER_FRAGMENT;
    ipv4::Packet::new_unchecked(&mut f[l3..]).set_more_frags(true);
    fix_ipv4(&mut f, l3);
    assert_eq!(parse(&f).map(|l| l.frag), Ok(Frag::Later));
}

#[test]
fn tcp_errors() {
    let l3 = 14;
    for total in 20..40 {
        assert_eq!(parse(&shrink_ipv4(&IPV4_TCP_SYN, l3, total)), Err(WireError::TcpTruncated));
    }
    for total in 40..60 {
        assert_eq!(parse(&shrink_ipv4(&IPV4_TCP_SYN, l3, total)), Err(WireError::TcpBadDataOffset));
    }
    for doff in 0..5u8 {
        let mut f = IPV4_TCP_SYN;
        f[34 + 12] = doff << 4;
        assert_eq!(parse(&f), Err(WireError::TcpBadDataOffset), "doff {doff}");
    }
    let mut f = IPV4_TCP_SYN;
    f[34 + 12] = 11 << 4;
    assert_eq!(parse(&f), Err(WireError::TcpBadDataOffset));
    // The TCP header must fit the IP payload, not the padded frame.
    let mut f = shrink_ipv4(&IPV4_TCP_SYN, l3, 50);
    f.extend_from_slice(&[0; 20]);
    assert_eq!(parse(&f), Err(WireError::TcpBadDataOffset));
    // IPv6 TCP with a bad data offset.
    let mut f = QINQ_IPV6_TCP;
    f[62 + 12] = 0x40;
    assert_eq!(parse(&f), Err(WireError::TcpBadDataOffset));
}

#[test]
fn udp_errors() {
    let l3 = 14;
    for total in 20..28 {
        assert_eq!(parse(&shrink_ipv4(&IPV4_UDP_DNS, l3, total)), Err(WireError::UdpTruncated));
    }
    for ulen in 0..8 {
        let mut f = IPV4_UDP_DNS;
        set_u16(&mut f, 34 + 4, ulen);
        assert_eq!(parse(&f), Err(WireError::UdpBadLength), "ulen {ulen}");
    }
    // UDP length shorter than the IP payload is accepted (trailing bytes).
    let mut f = IPV4_UDP_DNS;
    set_u16(&mut f, 34 + 4, 8);
    assert!(parse(&f).is_ok());
    // UDP length vs the IP payload, not the padded frame.
    let mut f = VLAN_IPV4_UDP;
    set_u16(&mut f, 38 + 4, 11);
    assert_eq!(parse(&f), Err(WireError::UdpBadLength));
    // IPv6: the UDP length of an unfragmented packet is checked too.
    let mut f = IPV6_HBH_FRAG_UDP;
    f[54 + 8 + 3] = 0; // clear M: now an atomic fragment
    assert_eq!(parse(&f).map(|l| l.frag), Ok(Frag::None));
    set_u16(&mut f, 70 + 4, 33);
    assert_eq!(parse(&f), Err(WireError::UdpBadLength));
    f[54 + 8 + 3] = 1; // first fragment again: only >= 8 matters
    assert_eq!(parse(&f).map(|l| l.frag), Ok(Frag::First));
}

#[test]
fn icmp_errors() {
    let l3 = 14;
    for total in 20..28 {
        assert_eq!(parse(&shrink_ipv4(&IPV4_ICMP_ECHO, l3, total)), Err(WireError::Icmpv4Truncated));
    }
    assert!(parse(&shrink_ipv4(&IPV4_ICMP_ECHO, l3, 28)).is_ok());
    for plen in 0..8u16 {
        let mut f = IPV6_ICMPV6_ECHO;
        set_u16(&mut f, 14 + 4, plen);
        assert_eq!(parse(&f), Err(WireError::Icmpv6Truncated), "plen {plen}");
    }
    // Protocol 1 in IPv6 and 58 in IPv4 are not ICMP of that family.
    let mut f = IPV6_ICMPV6_ECHO;
    f[14 + 6] = 1;
    set_u16(&mut f, 14 + 4, 0);
    assert_eq!(parse(&f).map(|l| l.l4_proto), Ok(1));
    let mut f = shrink_ipv4(&IPV4_ICMP_ECHO, l3, 20);
    f[l3 + 9] = 58;
    fix_ipv4(&mut f, l3);
    assert_eq!(parse(&f).map(|l| l.l4_proto), Ok(58));
}

#[test]
fn ipv6_framing_errors() {
    let mut f = IPV6_ICMPV6_ECHO;
    f[14] = 0x45;
    assert_eq!(parse(&f), Err(WireError::Ipv6BadVersion));
    let mut f = IPV6_ICMPV6_ECHO;
    set_u16(&mut f, 14 + 4, 14);
    assert_eq!(parse(&f), Err(WireError::Ipv6BadPayloadLen));
    assert_eq!(parse(&IPV6_ICMPV6_ECHO[..53]), Err(WireError::Ipv6Truncated));
}

/// An Ethernet/IPv6 frame whose payload is `payload`, first header `nh`.
fn v6_frame(nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = IPV6_ICMPV6_ECHO[..54].to_vec();
    set_u16(&mut f, 18, payload.len() as u16);
    f[20] = nh;
    f.extend_from_slice(payload);
    f
}

/// `n` Destination Options headers of 8 bytes, then `upper` (8 zero bytes).
fn dest_opts_chain(n: usize, upper: u8) -> Vec<u8> {
    let mut p = Vec::new();
    for i in 0..n {
        let next = if i + 1 == n { upper } else { ip_proto::IPV6_OPTS };
        p.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut udp = [0u8; 8];
    udp[5] = 8;
    p.extend_from_slice(&udp);
    p
}

#[test]
fn ipv6_ext_chains() {
    let f = v6_frame(ip_proto::IPV6_OPTS, &dest_opts_chain(8, ip_proto::UDP));
    let l = parse(&f).unwrap();
    assert_eq!((l.l4_proto, l.l4_off, l.l3_len, l.frag), (17, 54 + 64, 40 + 72, Frag::None));

    let f = v6_frame(ip_proto::IPV6_OPTS, &dest_opts_chain(9, ip_proto::UDP));
    assert_eq!(parse(&f), Err(WireError::Ipv6TooManyExt));

    // Truncated chain: cut the payload length inside each header.
    let chain = dest_opts_chain(3, ip_proto::UDP);
    for cut in 0..24 {
        let f = v6_frame(ip_proto::IPV6_OPTS, &chain[..cut]);
        assert_eq!(parse(&f), Err(WireError::Ipv6ExtTruncated), "cut {cut}");
    }
    for cut in 24..32 {
        let f = v6_frame(ip_proto::IPV6_OPTS, &chain[..cut]);
        assert_eq!(parse(&f), Err(WireError::UdpTruncated), "cut {cut}");
    }
    assert!(parse(&v6_frame(ip_proto::IPV6_OPTS, &chain)).is_ok());

    // No Next Header: nothing to check after it.
    let mut p = vec![ip_proto::IPV6_NONXT, 0, 1, 4, 0, 0, 0, 0];
    p.extend_from_slice(&[0xaa; 3]);
    let l = parse(&v6_frame(ip_proto::HOPOPT, &p)).unwrap();
    assert_eq!((l.l4_proto, l.l4_off), (59, 62));

    // A later fragment: no L4 header, and the walk stops.
    let mut p = vec![ip_proto::TCP, 0, 0x05, 0x00, 0, 0, 0, 1];
    p.extend_from_slice(&[0x3c; 5]);
    let l = parse(&v6_frame(ip_proto::IPV6_FRAG, &p)).unwrap();
    assert_eq!((l.frag, l.l4_proto, l.l4_off), (Frag::Later, 6, 0));

    // The golden first fragment, cut inside the Fragment header.
    let mut f = IPV6_HBH_FRAG_UDP;
    set_u16(&mut f, 18, 12);
    assert_eq!(parse(&f), Err(WireError::Ipv6ExtTruncated));
}

#[test]
fn frame_length_limit() {
    let mut f = vec![0u8; MAX_FRAME_LEN + 1];
    f[..IPV4_UDP_DNS.len()].copy_from_slice(&IPV4_UDP_DNS);
    assert_eq!(parse(&f), Err(WireError::FrameTooLong));
    f.pop();
    assert_eq!(parse(&f), parse(&IPV4_UDP_DNS));
    // A maximal IPv6 payload length in a maximal frame.
    let mut f = vec![0u8; MAX_FRAME_LEN];
    f[..54].copy_from_slice(&IPV6_ICMPV6_ECHO[..54]);
    f[20] = ip_proto::IPV6_NONXT;
    set_u16(&mut f, 18, (MAX_FRAME_LEN - 54) as u16);
    let l = parse(&f).unwrap();
    assert_eq!(usize::from(l.l3_off) + usize::from(l.l3_len), MAX_FRAME_LEN);
}

#[test]
fn wire_error_table() {
    assert_eq!(WireError::ALL.len(), WireError::COUNT);
    assert_eq!(WireError::COUNT, 22);
    let mut names = HashSet::new();
    for (i, e) in WireError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert_eq!(*e as u8 as usize, i);
        let name = e.name();
        assert!(!name.is_empty());
        assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'), "{name}");
        assert!(!name.starts_with('_') && !name.ends_with('_') && !name.contains("__"));
        assert!(names.insert(name), "duplicate {name}");
        assert_eq!(e.to_string(), name);
    }
    assert_eq!(WireError::Ipv4BadIhl.name(), "ipv4_bad_ihl");
    let _: &dyn std::error::Error = &WireError::EthTruncated;
}

/// What the fuzz target checks too: a successful parse is consistent with
/// the detailed views at the reported offsets.
fn assert_consistent(frame: &[u8], l: &Layers) {
    assert_eq!(parse_frame(frame, false).ok(), Some(*l));
    let l3_off = usize::from(l.l3_off);
    let l3_end = l3_off + usize::from(l.l3_len);
    assert!(l3_off <= frame.len() && l3_end <= frame.len());
    let l3 = &frame[l3_off..];
    match l.l3 {
        L3Kind::Ipv4 => {
            let ip = ipv4::Packet::new_checked(l3).unwrap();
            assert_eq!(ip.total_len(), l.l3_len);
            assert_eq!(ip.protocol(), l.l4_proto);
        }
        L3Kind::Ipv6 => {
            let ip = ipv6::Packet::new_checked(l3).unwrap();
            assert_eq!(usize::from(ip.payload_len()) + 40, usize::from(l.l3_len));
            let chain = ip.walk_ext().unwrap();
            assert_eq!(chain.upper_proto, l.l4_proto);
            let n = ip.ext_headers().count();
            assert_eq!(n, usize::from(chain.count));
        }
        L3Kind::Arp => {
            arp::Packet::new_checked(l3).unwrap();
        }
        L3Kind::Other => assert_eq!((l.l3_len, l.l4_off, l.l4_proto), (0, 0, 0)),
    }
    if l.l4_off != 0 {
        let l4 = &frame[usize::from(l.l4_off)..l3_end];
        let v6 = l.l3 == L3Kind::Ipv6;
        match l.l4_proto {
            ip_proto::TCP => assert!(tcp::Packet::new_checked(l4).is_ok()),
            ip_proto::UDP if l.frag == Frag::None => assert!(udp::Packet::new_checked(l4).is_ok()),
            ip_proto::ICMP if !v6 => assert!(icmpv4::Packet::new_checked(l4).is_ok()),
            ip_proto::ICMPV6 if v6 => assert!(icmpv6::Packet::new_checked(l4).is_ok()),
            _ => {}
        }
    } else {
        assert!(l.l3 == L3Kind::Arp || l.l3 == L3Kind::Other || l.frag == Frag::Later);
    }
}

#[test]
fn golden_frames_are_consistent() {
    for (_, frame) in ALL_FRAMES {
        assert_consistent(frame, &parse(frame).unwrap());
    }
}

fn golden_frame() -> impl Strategy<Value = Vec<u8>> {
    (0..ALL_FRAMES.len()).prop_map(|i| ALL_FRAMES[i].1.to_vec())
}

proptest! {
    // Failures are kept beside this file (tests.regressions).
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        for verify in [false, true] {
            if let Ok(l) = parse_frame(&data, verify) {
                assert_consistent(&data, &l);
            }
        }
    }

    #[test]
    fn never_panics_on_random_l3(
        ethertypes in proptest::collection::vec(
            prop_oneof![
                Just(ethertype::IPV4),
                Just(ethertype::IPV6),
                Just(ethertype::ARP),
                Just(ethertype::VLAN),
                Just(ethertype::QINQ),
            ],
            1..4,
        ),
        version in prop_oneof![Just(0x45u8), Just(0x46), Just(0x4f), Just(0x60), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        // Random bytes behind plausible Ethernet/VLAN headers, so that the
        // L3 and L4 checks see them.
        let mut f = vec![0u8; 12];
        for (i, et) in ethertypes.iter().enumerate() {
            f.extend_from_slice(&et.to_be_bytes());
            if i + 1 < ethertypes.len() {
                f.extend_from_slice(&[0, 1]);
            }
        }
        f.push(version);
        f.extend_from_slice(&body);
        for verify in [false, true] {
            if let Ok(l) = parse_frame(&f, verify) {
                assert_consistent(&f, &l);
            }
        }
    }

    #[test]
    fn never_panics_on_mutated_golden_frames(
        frame in golden_frame(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        fix_checksum in any::<bool>(),
    ) {
        let mut f = frame;
        for (at, v) in edits {
            let at = at % f.len();
            f[at] = v;
        }
        let cut = cut % (f.len() + 1);
        f.truncate(cut.max(f.len() / 2));
        if fix_checksum && f.len() >= 34 && f[12..14] == [0x08, 0x00] && f[14] >> 4 == 4 {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            if ihl >= 20 && 14 + ihl <= f.len() {
                fix_ipv4(&mut f, 14);
            }
        }
        let strict = parse_frame(&f, true);
        let lax = parse_frame(&f, false);
        match strict {
            Ok(l) => {
                prop_assert_eq!(lax, Ok(l));
                assert_consistent(&f, &l);
            }
            // Without the checksum check, parsing goes on to the L4 checks.
            Err(WireError::Ipv4BadChecksum) => prop_assert!(matches!(
                lax,
                Ok(_)
                    | Err(WireError::TcpTruncated)
                    | Err(WireError::TcpBadDataOffset)
                    | Err(WireError::UdpTruncated)
                    | Err(WireError::UdpBadLength)
                    | Err(WireError::Icmpv4Truncated)
            )),
            Err(e) => prop_assert_eq!(lax, Err(e)),
        }
    }

    #[test]
    fn vlan_and_ip_headers_in_any_combination(
        tags in proptest::collection::vec(prop_oneof![Just(ethertype::VLAN), Just(ethertype::QINQ)], 0..4),
        tci in any::<u16>(),
        frame in golden_frame(),
    ) {
        // Re-tag a golden frame with 0-3 tags.
        let (inner_et, inner) = {
            let l = parse(&frame).unwrap();
            (l.ethertype, frame[usize::from(l.l3_off)..].to_vec())
        };
        let mut f = frame[..12].to_vec();
        for t in &tags {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&inner_et.to_be_bytes());
        f.extend_from_slice(&inner);
        let r = parse(&f);
        if tags.len() > 2 {
            prop_assert_eq!(r, Err(WireError::TooManyVlanTags));
        } else {
            let l = r.unwrap();
            prop_assert_eq!(l.vlan_tci, if tags.is_empty() { None } else { Some(tci) });
            prop_assert_eq!(usize::from(l.l3_off), 14 + 4 * tags.len());
            prop_assert_eq!(l.ethertype, inner_et);
            assert_consistent(&f, &l);
        }
    }
}
