//! Answers the router gives from the fast path: ARP replies and IPv6
//! neighbour advertisements for its own addresses, echo replies, and ICMP /
//! ICMPv6 errors (time exceeded, destination unreachable, fragmentation
//! needed / packet too big) for packets it cannot forward.
//!
//! Every answer is built in place in the packet's own buffer (no
//! allocation) and sent back out of the port it came in on, to the L2
//! address it came from. ICMP errors are rate limited per worker by a token
//! bucket, and never sent about ICMP errors, later fragments, or packets
//! from unspecified, loopback, multicast or broadcast sources (RFC 1812
//! 4.3.2.7, RFC 4443 2.4). The packet that caused an error is still counted
//! under its drop reason; the answer is counted in [`LocalEvent`].

use crate::batch::{Batch, Verdict};
use crate::counters::{DropReason, PuntReason};
use crate::stage::{Ctx, Stage};
use crate::tables::{PortEntry, Tables};
use crate::tsc;
use crate::wire::{checksum, ip_proto, Frag, L3Kind, Layers};
use ports::{Pkt, PortId};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the stage did, counted per worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LocalEvent {
    ArpReply = 0,
    NeighborAdvert = 1,
    EchoReply = 2,
    IcmpTimeExceeded = 3,
    IcmpUnreachable = 4,
    IcmpFragNeeded = 5,
    /// An ICMP error was due but the token bucket was empty.
    IcmpRateLimited = 6,
    /// An ICMP error was not allowed (about an ICMP error, a later
    /// fragment, a bad source) or the port has no address to send it from.
    IcmpSuppressed = 7,
    /// ARP request / neighbour solicitation sent to resolve a next hop.
    NeighSolicit = 8,
    /// A solicitation was due but no buffer was free.
    NeighSolicitNoBuffer = 9,
}

impl LocalEvent {
    pub const COUNT: usize = 10;
    pub const ALL: [LocalEvent; 10] = [
        LocalEvent::ArpReply,
        LocalEvent::NeighborAdvert,
        LocalEvent::EchoReply,
        LocalEvent::IcmpTimeExceeded,
        LocalEvent::IcmpUnreachable,
        LocalEvent::IcmpFragNeeded,
        LocalEvent::IcmpRateLimited,
        LocalEvent::IcmpSuppressed,
        LocalEvent::NeighSolicit,
        LocalEvent::NeighSolicitNoBuffer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LocalEvent::ArpReply => "arp_reply",
            LocalEvent::NeighborAdvert => "nd_advert",
            LocalEvent::EchoReply => "echo_reply",
            LocalEvent::IcmpTimeExceeded => "icmp_time_exceeded",
            LocalEvent::IcmpUnreachable => "icmp_unreachable",
            LocalEvent::IcmpFragNeeded => "icmp_frag_needed",
            LocalEvent::IcmpRateLimited => "icmp_rate_limited",
            LocalEvent::IcmpSuppressed => "icmp_suppressed",
            LocalEvent::NeighSolicit => "neigh_solicit",
            LocalEvent::NeighSolicitNoBuffer => "neigh_solicit_no_buffer",
        }
    }
}

/// Token bucket for ICMP errors (per worker, so no sharing).
pub struct TokenBucket {
    per_sec: u64,
    burst: u64,
    tokens: u64,
    last: u64,
    ticks_per_token: u64,
}

impl TokenBucket {
    /// `per_sec` errors per second on average, bursts of up to `burst`.
    pub fn new(per_sec: u64, burst: u64) -> TokenBucket {
        let hz = tsc::hz().max(1);
        TokenBucket {
            per_sec,
            burst,
            tokens: burst,
            last: tsc::now(),
            ticks_per_token: hz.checked_div(per_sec).map_or(u64::MAX, |t| t.max(1)),
        }
    }

    /// Takes a token if one is available at TSC time `now`.
    #[inline]
    pub fn take(&mut self, now: u64) -> bool {
        if self.per_sec == 0 {
            return false;
        }
        let earned = now.saturating_sub(self.last) / self.ticks_per_token;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst);
            self.last += earned * self.ticks_per_token;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// The local-answers stage. Runs after forwarding.
pub struct LocalStage {
    bucket: TokenBucket,
}

impl Default for LocalStage {
    fn default() -> Self {
        LocalStage::new(1000, 100)
    }
}

impl LocalStage {
    /// ICMP errors limited to `per_sec` per second per worker, bursts of `burst`.
    pub fn new(per_sec: u64, burst: u64) -> LocalStage {
        LocalStage { bucket: TokenBucket::new(per_sec, burst) }
    }
}

#[derive(Clone, Copy)]
enum IcmpError {
    TimeExceeded,
    /// No route (net unreachable) or an unreachable route (host unreachable).
    Unreachable {
        host: bool,
    },
    /// IPv4 with DF set, or IPv6: the egress MTU.
    TooBig {
        mtu: u16,
    },
}

impl Stage for LocalStage {
    fn name(&self) -> &'static str {
        "local"
    }

    fn process(&mut self, b: &mut Batch, cx: &Ctx<'_>) {
        let t = cx.tables;
        let Batch { pkts, verdict, layers } = b;
        let mut now = 0;
        for ((p, v), l) in pkts.as_mut_slice().iter_mut().zip(verdict.iter_mut()).zip(layers.iter()) {
            let in_port = p.port();
            let Some(pe) = t.port(in_port) else { continue };
            let (answer, error) = match *v {
                Verdict::Punt(PuntReason::Arp) => (arp_reply(p, l, pe).then_some(LocalEvent::ArpReply), None),
                Verdict::Punt(PuntReason::Nd) => {
                    (neighbor_advert(p, l, pe).then_some(LocalEvent::NeighborAdvert), None)
                }
                Verdict::Punt(PuntReason::Local) => (echo_reply(p, l, pe).then_some(LocalEvent::EchoReply), None),
                Verdict::Drop(DropReason::TtlExceeded) => {
                    (None, Some((DropReason::TtlExceeded, IcmpError::TimeExceeded)))
                }
                Verdict::Drop(DropReason::NoRoute) => {
                    (None, Some((DropReason::NoRoute, IcmpError::Unreachable { host: false })))
                }
                Verdict::Drop(DropReason::Unreachable) => {
                    (None, Some((DropReason::Unreachable, IcmpError::Unreachable { host: true })))
                }
                Verdict::Drop(DropReason::MtuExceeded) => match mtu_of_failed_egress(t, p, l) {
                    Some(mtu) => (None, Some((DropReason::MtuExceeded, IcmpError::TooBig { mtu }))),
                    None => (None, None),
                },
                _ => (None, None),
            };
            if let Some(ev) = answer {
                cx.stats.local[ev as usize].inc();
                *v = Verdict::Tx(PortId(in_port));
                continue;
            }
            let Some((reason, err)) = error else { continue };
            let has_source = match l.l3 {
                L3Kind::Ipv4 => port_v4(pe).is_some(),
                _ => port_v6(pe).is_some(),
            };
            if !has_source || !icmp_error_allowed(p.data(), l) {
                cx.stats.local[LocalEvent::IcmpSuppressed as usize].inc();
                continue;
            }
            if now == 0 {
                now = tsc::now();
            }
            if !self.bucket.take(now) {
                cx.stats.local[LocalEvent::IcmpRateLimited as usize].inc();
                continue;
            }
            let ev = match err {
                IcmpError::TimeExceeded => LocalEvent::IcmpTimeExceeded,
                IcmpError::Unreachable { .. } => LocalEvent::IcmpUnreachable,
                IcmpError::TooBig { .. } => LocalEvent::IcmpFragNeeded,
            };
            if build_icmp_error(p, l, pe, err) {
                // The offending packet is still a drop for its reason.
                cx.stats.drop(reason);
                cx.stats.local[ev as usize].inc();
                *v = Verdict::Tx(PortId(in_port));
            } else {
                cx.stats.local[LocalEvent::IcmpSuppressed as usize].inc();
            }
        }
    }
}

/// The egress MTU a `MtuExceeded` packet failed against, if an ICMP error
/// is due: always for IPv6, only with DF for IPv4 (fragmenting instead is
/// not implemented: such packets stay dropped as `mtu_exceeded`).
fn mtu_of_failed_egress(t: &Tables, p: &Pkt, l: &Layers) -> Option<u16> {
    let d = p.data();
    if l.l3 == L3Kind::Ipv4 && d.get(l.l3_off as usize + 6)? & 0x40 == 0 {
        return None; // DF clear
    }
    t.egress_mtu(p.port(), crate::stage::dst_addr(d, l)?)
}

fn port_v4(pe: &PortEntry) -> Option<[u8; 4]> {
    pe.addrs.iter().find_map(|a| match a {
        IpAddr::V4(v) => Some(v.octets()),
        _ => None,
    })
}

fn port_v6(pe: &PortEntry) -> Option<[u8; 16]> {
    pe.addrs.iter().find_map(|a| match a {
        IpAddr::V6(v) if !v.is_multicast() => Some(v.octets()),
        _ => None,
    })
}

/// RFC 1812 4.3.2.7 / RFC 4443 2.4 (e): when an ICMP error may be sent.
fn icmp_error_allowed(d: &[u8], l: &Layers) -> bool {
    if l.l3_off != 14 || l.frag == Frag::Later || d.first().is_some_and(|b| b & 1 == 1) {
        return false;
    }
    let o = l.l3_off as usize;
    match l.l3 {
        L3Kind::Ipv4 => {
            let Some(s) = d.get(o + 12..o + 16) else { return false };
            let src = Ipv4Addr::new(s[0], s[1], s[2], s[3]);
            if src.is_unspecified() || src.is_loopback() || src.is_multicast() || src.is_broadcast() {
                return false;
            }
            if l.l4_proto == ip_proto::ICMP && l.l4_off != 0 {
                let ty = d.get(l.l4_off as usize).copied().unwrap_or(0);
                return !crate::wire::icmpv4::is_error(ty);
            }
            true
        }
        L3Kind::Ipv6 => {
            let Some(s) = d.get(o + 8..o + 24) else { return false };
            let mut a = [0u8; 16];
            a.copy_from_slice(s);
            let src = Ipv6Addr::from(a);
            if src.is_unspecified() || src.is_loopback() || src.is_multicast() {
                return false;
            }
            if l.l4_proto == ip_proto::ICMPV6 && l.l4_off != 0 {
                // ICMPv6 errors are types 0..=127.
                return d.get(l.l4_off as usize).is_some_and(|&ty| ty >= 128);
            }
            true
        }
        _ => false,
    }
}

/// Turns the packet into an ICMP/ICMPv6 error about itself.
fn build_icmp_error(p: &mut Pkt, l: &Layers, pe: &PortEntry, err: IcmpError) -> bool {
    let o = l.l3_off as usize; // 14: checked by icmp_error_allowed
    match l.l3 {
        L3Kind::Ipv4 => {
            let Some(src) = port_v4(pe) else { return false };
            let (ty, code, rest) = match err {
                IcmpError::TimeExceeded => (11u8, 0u8, 0u32),
                IcmpError::Unreachable { host } => (3, host as u8, 0),
                IcmpError::TooBig { mtu } => (3, 4, mtu as u32),
            };
            // RFC 1812: quote as much as fits in a 576-byte datagram.
            let quote = (l.l3_len as usize).min(576 - 28);
            encapsulate(p, o, quote, 28, |f| {
                let (eth, rest_) = f.split_at_mut(14);
                let (ip, tail) = rest_.split_at_mut(20);
                let dst: [u8; 4] = [tail[8 + 12], tail[8 + 13], tail[8 + 14], tail[8 + 15]];
                let total = (28 + quote) as u16;
                ip.copy_from_slice(&[0x45, 0xc0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip[12..16].copy_from_slice(&src);
                ip[16..20].copy_from_slice(&dst);
                let c = checksum::checksum(ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                tail[0] = ty;
                tail[1] = code;
                tail[2..4].fill(0);
                tail[4..8].copy_from_slice(&rest.to_be_bytes());
                let c = checksum::checksum(&tail[..8 + quote]);
                tail[2..4].copy_from_slice(&c.to_be_bytes());
                set_eth(eth, &pe.mac.0, 0x0800);
            })
        }
        L3Kind::Ipv6 => {
            let Some(src) = port_v6(pe) else { return false };
            let (ty, code, rest) = match err {
                IcmpError::TimeExceeded => (3u8, 0u8, 0u32),
                IcmpError::Unreachable { host } => (1, if host { 3 } else { 0 }, 0),
                IcmpError::TooBig { mtu } => (2, 0, mtu as u32),
            };
            // RFC 4443: as much as fits in the minimum MTU of 1280.
            let quote = (l.l3_len as usize).min(1280 - 48);
            encapsulate(p, o, quote, 48, |f| {
                let (eth, rest_) = f.split_at_mut(14);
                let (ip, tail) = rest_.split_at_mut(40);
                let mut dst = [0u8; 16];
                dst.copy_from_slice(&tail[8 + 8..8 + 24]);
                let plen = (8 + quote) as u16;
                ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, ip_proto::ICMPV6, 64]);
                ip[4..6].copy_from_slice(&plen.to_be_bytes());
                ip[8..24].copy_from_slice(&src);
                ip[24..40].copy_from_slice(&dst);
                tail[0] = ty;
                tail[1] = code;
                tail[2..4].fill(0);
                tail[4..8].copy_from_slice(&rest.to_be_bytes());
                let c = checksum::l4_checksum_v6(src, dst, ip_proto::ICMPV6, &tail[..8 + quote]);
                tail[2..4].copy_from_slice(&c.to_be_bytes());
                set_eth(eth, &pe.mac.0, 0x86dd);
            })
        }
        _ => false,
    }
}

/// Keeps `quote` bytes of the L3 packet at `o`, makes `hdr` bytes of room
/// in front of it (after a 14-byte Ethernet header that keeps the original
/// source MAC at [6..12]) and lets `fill` write the frame.
fn encapsulate(p: &mut Pkt, o: usize, quote: usize, hdr: usize, fill: impl FnOnce(&mut [u8])) -> bool {
    if p.len() < o + quote || p.headroom() < hdr || !p.set_len(o + quote) {
        return false;
    }
    if p.prepend(hdr).is_none() {
        return false;
    }
    let f = p.data_mut();
    // The old Ethernet header now sits at hdr..hdr+14: move it to the front.
    f.copy_within(hdr..hdr + 14, 0);
    fill(f);
    true
}

/// Answers to the frame's source: dst = old src, src = `mac`.
#[inline]
fn set_eth(eth: &mut [u8], mac: &[u8; 6], ethertype: u16) {
    eth.copy_within(6..12, 0);
    eth[6..12].copy_from_slice(mac);
    eth[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// ARP request for one of our addresses on the port → reply in place.
fn arp_reply(p: &mut Pkt, l: &Layers, pe: &PortEntry) -> bool {
    let o = l.l3_off as usize;
    let d = p.data_mut();
    let Some(a) = d.get_mut(o..o + 28) else { return false };
    if a[6..8] != [0, 1] {
        return false; // not a request
    }
    let tpa = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    if !pe.addrs.contains(&IpAddr::V4(tpa)) {
        return false;
    }
    let (sha, spa) = (<[u8; 6]>::try_from(&a[8..14]), <[u8; 4]>::try_from(&a[14..18]));
    let (Ok(sha), Ok(spa)) = (sha, spa) else { return false };
    a[7] = 2;
    a[8..14].copy_from_slice(&pe.mac.0);
    a[14..18].copy_from_slice(&tpa.octets());
    a[18..24].copy_from_slice(&sha);
    a[24..28].copy_from_slice(&spa);
    d[0..6].copy_from_slice(&sha);
    d[6..12].copy_from_slice(&pe.mac.0);
    true
}

/// Neighbour solicitation for one of our addresses → advertisement.
fn neighbor_advert(p: &mut Pkt, l: &Layers, pe: &PortEntry) -> bool {
    let o = l.l3_off as usize;
    if o != 14 || l.l4_proto != ip_proto::ICMPV6 || l.l4_off as usize != o + 40 {
        return false;
    }
    let d = p.data();
    let Some(ns) = d.get(o + 40..o + 64) else { return false };
    // RFC 4861 7.1.1: type 135, code 0, hop limit 255.
    if ns[0] != 135 || ns[1] != 0 || d.get(o + 7) != Some(&255) {
        return false;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&ns[8..24]);
    if !pe.addrs.contains(&IpAddr::V6(Ipv6Addr::from(target))) {
        return false;
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&d[o + 8..o + 24]);
    let dad = src == [0u8; 16];
    let (dst, dst_mac) = if dad {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
        (all_nodes, [0x33, 0x33, 0, 0, 0, 1])
    } else {
        let mut m = [0u8; 6];
        m.copy_from_slice(&d[6..12]);
        (src, m)
    };
    // 14 + 40 + 24 (NA) + 8 (target link-layer address option).
    if !p.set_len(86) {
        return false;
    }
    let f = p.data_mut();
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&pe.mac.0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 32, ip_proto::ICMPV6, 255]);
    f[22..38].copy_from_slice(&target);
    f[38..54].copy_from_slice(&dst);
    let na = &mut f[54..86];
    na[..8].copy_from_slice(&[136, 0, 0, 0, if dad { 0xa0 } else { 0xe0 }, 0, 0, 0]);
    na[8..24].copy_from_slice(&target);
    na[24..26].copy_from_slice(&[2, 1]);
    na[26..32].copy_from_slice(&pe.mac.0);
    let c = checksum::l4_checksum_v6(target, dst, ip_proto::ICMPV6, na);
    na[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Echo request to one of our addresses → echo reply in place.
fn echo_reply(p: &mut Pkt, l: &Layers, pe: &PortEntry) -> bool {
    let (o, l4) = (l.l3_off as usize, l.l4_off as usize);
    if l4 == 0 || l.frag != Frag::None {
        return false;
    }
    let mac = pe.mac.0;
    let d = p.data_mut();
    match l.l3 {
        L3Kind::Ipv4 if l.l4_proto == ip_proto::ICMP => {
            if d.get(l4..l4 + 2) != Some(&[8, 0]) {
                return false;
            }
            let c = u16::from_be_bytes([d[l4 + 2], d[l4 + 3]]);
            d[l4] = 0;
            d[l4 + 2..l4 + 4].copy_from_slice(&checksum::update16(c, 0x0800, 0x0000).to_be_bytes());
            let (mut s, mut t) = ([0u8; 4], [0u8; 4]);
            s.copy_from_slice(&d[o + 12..o + 16]);
            t.copy_from_slice(&d[o + 16..o + 20]);
            d[o + 12..o + 16].copy_from_slice(&t);
            d[o + 16..o + 20].copy_from_slice(&s);
            d[o + 8] = 64;
            d[o + 10..o + 12].fill(0);
            let ihl = (d[o] & 0x0f) as usize * 4;
            let c = checksum::checksum(&d[o..o + ihl]);
            d[o + 10..o + 12].copy_from_slice(&c.to_be_bytes());
        }
        L3Kind::Ipv6 if l.l4_proto == ip_proto::ICMPV6 => {
            if d.get(l4..l4 + 2) != Some(&[128, 0]) {
                return false;
            }
            let c = u16::from_be_bytes([d[l4 + 2], d[l4 + 3]]);
            d[l4] = 129;
            d[l4 + 2..l4 + 4].copy_from_slice(&checksum::update16(c, 0x8000, 0x8100).to_be_bytes());
            let mut s = [0u8; 16];
            s.copy_from_slice(&d[o + 8..o + 24]);
            d.copy_within(o + 24..o + 40, o + 8);
            d[o + 24..o + 40].copy_from_slice(&s);
            d[o + 7] = 64;
        }
        _ => return false,
    }
    d.copy_within(6..12, 0);
    d[6..12].copy_from_slice(&mac);
    true
}
