//! Fuzz `parse_frame` and the header views.
//!
//! * `parse_frame` must never panic, with or without the IPv4 checksum
//!   check, and the two modes must agree except for that check;
//! * when it succeeds, the detailed views built at the reported offsets
//!   must accept the same bytes (the fast parser and the views agree), and
//!   every accessor must run without panicking;
//! * every view accepted by `new_checked` on the raw input must be readable
//!   in full, and its slice accessors must stay panic-free after setters
//!   break its length fields.

#![no_main]

use std::hint::black_box;

use dataplane::wire::{
    arp, ethernet, icmpv4, icmpv6, ip_proto, ipv4, ipv6, parse_frame, tcp, udp, Frag, L3Kind, Layers, WireError,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = parse_frame(data, true);
    let lax = parse_frame(data, false);
    match strict {
        Ok(layers) => {
            assert_eq!(lax, Ok(layers));
            inspect(data, &layers);
        }
        Err(WireError::Ipv4BadChecksum) => match lax {
            Ok(layers) => inspect(data, &layers),
            // Without the checksum check, parsing goes on to the L4 checks.
            Err(e) => assert!(matches!(
                e,
                WireError::TcpTruncated
                    | WireError::TcpBadDataOffset
                    | WireError::UdpTruncated
                    | WireError::UdpBadLength
                    | WireError::Icmpv4Truncated
            )),
        },
        Err(e) => {
            assert_eq!(lax, Err(e));
            assert!(!e.name().is_empty());
        }
    }
    raw_views(data);
    mutated_views(data);
});

/// Check a successful parse against the views at the reported offsets.
fn inspect(frame: &[u8], l: &Layers) {
    let eth = ethernet::Frame::new_checked(frame).expect("parse_frame accepted the Ethernet header");
    read_ethernet(&eth);
    if l.vlan_tci.is_some() {
        let tag = ethernet::VlanTag::new_checked(eth.payload()).expect("VLAN tag");
        assert_eq!(Some(tag.tci()), l.vlan_tci);
        read_vlan(&tag);
    }

    let l3_off = usize::from(l.l3_off);
    let l3_end = l3_off + usize::from(l.l3_len);
    assert!(l3_end <= frame.len());
    let l3 = &frame[l3_off..];
    let v6 = l.l3 == L3Kind::Ipv6;
    match l.l3 {
        L3Kind::Ipv4 => {
            let ip = ipv4::Packet::new_checked(l3).expect("IPv4");
            assert_eq!(ip.total_len(), l.l3_len);
            assert_eq!(ip.protocol(), l.l4_proto);
            assert_eq!(ip.is_fragment(), l.frag != Frag::None);
            assert_eq!(ip.is_first_fragment(), l.frag == Frag::First);
            read_ipv4(&ip);
        }
        L3Kind::Ipv6 => {
            let ip = ipv6::Packet::new_checked(l3).expect("IPv6");
            assert_eq!(40 + usize::from(ip.payload_len()), usize::from(l.l3_len));
            let chain = ip.walk_ext().expect("IPv6 extension headers");
            assert_eq!(chain.upper_proto, l.l4_proto);
            let walked: Vec<_> = ip.ext_headers().collect::<Result<_, _>>().expect("ext iterator agrees");
            assert_eq!(walked.len(), usize::from(chain.count));
            read_ipv6(&ip);
        }
        L3Kind::Arp => {
            assert_eq!(l.l3_len, 28);
            let p = arp::Packet::new_checked(l3).expect("ARP");
            read_arp(&p);
        }
        L3Kind::Other => {
            assert_eq!((l.l3_len, l.l4_off, l.l4_proto, l.frag), (0, 0, 0, Frag::None));
            return;
        }
    }
    if l.l4_off == 0 {
        assert!(l.l3 == L3Kind::Arp || l.frag == Frag::Later);
        return;
    }
    let l4_off = usize::from(l.l4_off);
    assert!(l4_off >= l3_off && l4_off <= l3_end);
    assert_eq!(usize::from(l.l4_len()), l3_end - l4_off);
    let l4 = &frame[l4_off..l3_end];
    match l.l4_proto {
        ip_proto::TCP => read_tcp(&tcp::Packet::new_checked(l4).expect("TCP")),
        ip_proto::UDP => match udp::Packet::new_checked(l4) {
            Ok(p) => read_udp(&p),
            // Only a first fragment may carry a UDP length beyond its payload.
            Err(e) => assert!(l.frag == Frag::First && e == WireError::UdpBadLength),
        },
        ip_proto::ICMP if !v6 => read_icmpv4(&icmpv4::Packet::new_checked(l4).expect("ICMPv4")),
        ip_proto::ICMPV6 if v6 => read_icmpv6(&icmpv6::Packet::new_checked(l4).expect("ICMPv6")),
        _ => {}
    }
}

/// Every view that accepts the raw input must be fully readable.
fn raw_views(data: &[u8]) {
    if let Ok(p) = ethernet::Frame::new_checked(data) {
        read_ethernet(&p);
    }
    if let Ok(p) = ethernet::VlanTag::new_checked(data) {
        read_vlan(&p);
    }
    if let Ok(p) = arp::Packet::new_checked(data) {
        read_arp(&p);
    }
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        read_ipv4(&p);
    }
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        read_ipv6(&p);
    }
    if let Ok(p) = tcp::Packet::new_checked(data) {
        read_tcp(&p);
    }
    if let Ok(p) = udp::Packet::new_checked(data) {
        read_udp(&p);
    }
    if let Ok(p) = icmpv4::Packet::new_checked(data) {
        read_icmpv4(&p);
    }
    if let Ok(p) = icmpv6::Packet::new_checked(data) {
        read_icmpv6(&p);
    }
    if let Some((&first, rest)) = data.split_first() {
        black_box(ipv6::walk_ext(first, rest).ok());
        for h in ipv6::ExtIter::new(first, rest).flatten() {
            black_box((h.kind, h.next_header, h.offset, h.data, h.body(), h.fragment()));
        }
    }
}

/// After `new_checked`, setters may break the length fields; the slice
/// accessors must clamp rather than panic.
fn mutated_views(data: &[u8]) {
    let (&knob, rest) = match data.split_last() {
        Some(x) => x,
        None => return,
    };
    let mut buf = rest.to_vec();
    let wild = u16::from(knob) * 257;
    if let Ok(mut p) = ipv4::Packet::new_checked(&mut buf[..]) {
        p.set_header_len(knob & 0x3c);
        p.set_total_len(wild);
        black_box(p.options_mut().len());
        black_box(p.payload_mut().len());
        p.fill_checksum();
        black_box(p.decrement_ttl());
        let q = ipv4::Packet::new_unchecked(&buf[..]);
        black_box((q.header(), q.options(), q.payload(), q.verify_checksum()));
    }
    let mut buf = rest.to_vec();
    if let Ok(mut p) = ipv6::Packet::new_checked(&mut buf[..]) {
        p.set_payload_len(wild);
        black_box(p.payload_mut().len());
        let q = ipv6::Packet::new_unchecked(&buf[..]);
        black_box((q.payload(), q.walk_ext().ok(), q.ext_headers().count()));
    }
    let mut buf = rest.to_vec();
    if let Ok(mut p) = tcp::Packet::new_checked(&mut buf[..]) {
        p.set_data_offset(knob >> 4);
        black_box(p.options_mut().len());
        black_box(p.payload_mut().len());
        p.fill_checksum_v4([1, 2, 3, 4], [5, 6, 7, 8]);
        let q = tcp::Packet::new_unchecked(&buf[..]);
        black_box((q.options(), q.payload(), q.option_iter().count()));
    }
    let mut buf = rest.to_vec();
    if let Ok(mut p) = udp::Packet::new_checked(&mut buf[..]) {
        p.set_len(wild);
        black_box(p.payload_mut().len());
        p.fill_checksum_v6([1; 16], [2; 16]);
        let q = udp::Packet::new_unchecked(&buf[..]);
        black_box((q.payload(), q.verify_checksum_v4([0; 4], [0; 4])));
    }
    let mut buf = rest.to_vec();
    if let Ok(mut p) = icmpv6::Packet::new_checked(&mut buf[..]) {
        p.set_msg_type(knob);
        black_box(p.set_target_addr(std::net::Ipv6Addr::LOCALHOST));
        let q = icmpv6::Packet::new_unchecked(&buf[..]);
        black_box((q.target_addr(), q.nd_options(), q.embedded()));
    }
}

fn read_ethernet(p: &ethernet::Frame<&[u8]>) {
    black_box((p.dst_addr(), p.src_addr(), p.ethertype(), p.payload()));
    let a = p.src_addr();
    black_box((a.is_broadcast(), a.is_multicast(), a.is_unicast(), a.is_local(), a.to_string()));
    black_box(ethernet::Repr::parse(p));
}

fn read_vlan(p: &ethernet::VlanTag<&[u8]>) {
    black_box((p.tci(), p.pcp(), p.dei(), p.vid(), p.ethertype(), p.payload()));
}

fn read_arp(p: &arp::Packet<&[u8]>) {
    black_box((p.htype(), p.ptype(), p.hlen(), p.plen(), p.oper()));
    black_box((p.sha(), p.spa(), p.tha(), p.tpa()));
    black_box(arp::Repr::parse(p));
}

fn read_ipv4(p: &ipv4::Packet<&[u8]>) {
    black_box((p.version(), p.ihl(), p.header_len(), p.dscp(), p.ecn(), p.total_len(), p.ident()));
    black_box((p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment(), p.is_first_fragment()));
    black_box((p.ttl(), p.protocol(), p.checksum(), p.verify_checksum()));
    black_box((p.src_addr(), p.dst_addr(), p.src_octets(), p.dst_octets()));
    black_box((p.header(), p.options(), p.payload()));
    black_box(ipv4::Repr::parse(p, true).ok());
}

fn read_ipv6(p: &ipv6::Packet<&[u8]>) {
    black_box((p.version(), p.traffic_class(), p.dscp(), p.ecn(), p.flow_label(), p.payload_len()));
    black_box((p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.src_octets(), p.dst_octets()));
    black_box(p.payload());
    black_box(p.walk_ext().ok());
    for h in p.ext_headers().flatten() {
        black_box((h.kind, h.next_header, h.offset, h.data, h.body(), h.fragment()));
    }
    black_box(ipv6::Repr::parse(p));
}

fn read_tcp(p: &tcp::Packet<&[u8]>) {
    black_box((p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.data_offset(), p.header_len()));
    black_box((p.flags(), p.fin(), p.syn(), p.rst(), p.psh(), p.ack(), p.urg(), p.ece(), p.cwr(), p.ns()));
    black_box((p.window_len(), p.checksum(), p.urgent_at(), p.options(), p.payload()));
    black_box((p.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]), p.verify_checksum_v6([1; 16], [2; 16])));
    for o in p.option_iter() {
        black_box((o.kind, o.data));
    }
}

fn read_udp(p: &udp::Packet<&[u8]>) {
    black_box((p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload()));
    black_box((p.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]), p.verify_checksum_v6([1; 16], [2; 16])));
    black_box(udp::Repr::parse(p));
}

fn read_icmpv4(p: &icmpv4::Packet<&[u8]>) {
    black_box((p.msg_type(), p.msg_code(), p.checksum(), p.rest_of_header(), p.echo_ident(), p.echo_seq_no()));
    black_box((p.next_hop_mtu(), p.pointer(), p.gateway(), p.is_error(), p.verify_checksum()));
    black_box((p.payload(), p.embedded()));
}

fn read_icmpv6(p: &icmpv6::Packet<&[u8]>) {
    black_box((p.msg_type(), p.msg_code(), p.checksum(), p.rest_of_header(), p.echo_ident(), p.echo_seq_no()));
    black_box((p.mtu(), p.pointer(), p.is_error(), p.has_target(), p.target_addr()));
    black_box((p.na_router(), p.na_solicited(), p.na_override(), p.verify_checksum([1; 16], [2; 16])));
    black_box((p.payload(), p.embedded(), p.nd_options()));
}
