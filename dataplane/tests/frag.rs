//! IPv4 fragmentation: every fragment checked on its own, then reassembled
//! by a small reference reassembler and compared byte for byte with the
//! original datagram; errors leave the packet, the burst and the pool as
//! they were.

use dataplane::frag::{fragment_ipv4, FragError, MAX_FRAGMENTS, MIN_MTU};
use dataplane::wire::{checksum, parse_frame};
use ports::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const ETH: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
const VLAN_ETH: [u8; 18] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00];
const MF: u16 = 0x2000;
const DF: u16 = 0x4000;

/// IPv4 options of the test datagrams.
#[derive(Clone, Copy, Debug)]
enum Opts {
    None,
    /// Record route (not copied), NOP (not copied), loose source route
    /// (copied): 15 bytes, padded to 16.
    Mixed,
    /// Router alert (copied) only: 4 bytes.
    CopiedOnly,
    /// Record route only: nothing left in later fragments.
    NotCopiedOnly,
    /// 40 bytes: the longest header (60), leaving 8 payload bytes at MTU 68.
    Full,
}

const ALL_OPTS: [Opts; 5] = [Opts::None, Opts::Mixed, Opts::CopiedOnly, Opts::NotCopiedOnly, Opts::Full];

impl Opts {
    fn bytes(self) -> Vec<u8> {
        let rr = [7, 7, 4, 0, 0, 0, 0];
        let lsrr = [0x83, 7, 4, 192, 0, 2, 9];
        let mut o = match self {
            Opts::None => vec![],
            Opts::Mixed => [&rr[..], &[1], &lsrr[..]].concat(),
            Opts::CopiedOnly => vec![0x94, 4, 0, 0],
            Opts::NotCopiedOnly => rr.to_vec(),
            Opts::Full => {
                // Not copied timestamp (11 bytes), NOP, copied security (11),
                // copied LSRR (15), NOP, EOL.
                let ts = [68, 11, 5, 0, 0, 0, 0, 0, 0, 0, 0];
                let sec = [0x82, 11, 0xf1, 0x35, 0, 0, 0, 0, 0, 0, 0];
                let lsrr3 = [0x83, 15, 4, 10, 0, 0, 1, 10, 0, 0, 2, 10, 0, 0, 3];
                [&ts[..], &[1], &sec[..], &lsrr3[..], &[1, 0]].concat()
            }
        };
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }
}

/// Reference for the options of later fragments: the copied ones, padded.
fn copied_options(opts: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let len = usize::from(opts[i + 1]);
                if t & 0x80 != 0 {
                    out.extend_from_slice(&opts[i..i + len]);
                }
                i += len;
            }
        }
    }
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// An IPv4 datagram (valid checksum) with `plen` payload bytes.
fn datagram(plen: usize, opts: Opts, flags_off: u16, ident: u16, proto: u8) -> Vec<u8> {
    let o = opts.bytes();
    let hlen = 20 + o.len();
    let mut h = vec![0x40 | (hlen / 4) as u8, 0xb8, 0, 0];
    h.extend_from_slice(&ident.to_be_bytes());
    h.extend_from_slice(&flags_off.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 1, 2, 3]);
    h.extend_from_slice(&o);
    h[2..4].copy_from_slice(&((hlen + plen) as u16).to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend((0..plen).map(|i| (i * 7 + i / 251) as u8));
    h
}

fn pool(buffers: u32) -> PagePool {
    PagePool::new(&PoolConfig {
        buffers,
        buf_size: 8192,
        headroom: 128,
        hugepages: HugepagePolicy::Never,
        ..Default::default()
    })
    .expect("pool")
}

fn pkt_of(pool: &PagePool, frame: &[u8]) -> Pkt {
    let mut p = pool.alloc().expect("buf");
    assert!(p.copy_from(frame));
    p
}

fn frame(eth: &[u8], ip: &[u8], padding: usize) -> Vec<u8> {
    [eth, ip, &vec![0xee; padding]].concat()
}

/// The fragment count a correct splitter produces: the first fragment as
/// large as the MTU allows, the rest likewise with the shorter header.
fn expected_count(plen: usize, hlen: usize, later_hlen: usize, mtu: usize) -> usize {
    if hlen + plen <= mtu {
        return 1;
    }
    let first = (mtu - hlen) / 8 * 8;
    let later = (mtu - later_hlen) / 8 * 8;
    1 + (plen - first).div_ceil(later)
}

/// Checks every fragment on its own and against the original (`orig`, an
/// Ethernet frame without padding), then rebuilds the datagram and compares
/// it with the original byte for byte.
fn check_and_reassemble(frames: &[Vec<u8>], orig: &[u8], l3_off: usize, mtu: usize) {
    let oip = &orig[l3_off..];
    let ohlen = usize::from(oip[0] & 0x0f) * 4;
    let ofo = u16::from_be_bytes([oip[6], oip[7]]);
    let later_opts = copied_options(&oip[20..ohlen]);
    let mut next_off = usize::from(ofo & 0x1fff) * 8;
    let mut payload = vec![];
    for (i, f) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        assert_eq!(&f[..l3_off], &orig[..l3_off], "fragment {i}: Ethernet header copied");
        let ip = &f[l3_off..];
        let hlen = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(f.len(), l3_off + total, "fragment {i}: exact length, no padding");
        assert!(total <= mtu, "fragment {i}: {total} > mtu {mtu}");
        assert!(checksum::verify(&ip[..hlen]), "fragment {i}: header checksum");
        assert_eq!(ip[0] >> 4, 4);
        // Unchanged fields: TOS, ident, TTL, protocol, addresses.
        assert_eq!((ip[1], &ip[4..6], &ip[8..10], &ip[12..20]), (oip[1], &oip[4..6], &oip[8..10], &oip[12..20]));
        if i == 0 {
            assert_eq!(&ip[20..hlen], &oip[20..ohlen], "first fragment keeps every option");
        } else {
            assert_eq!(&ip[20..hlen], &later_opts[..], "fragment {i}: only copied options");
        }
        let fo = u16::from_be_bytes([ip[6], ip[7]]);
        assert_eq!(fo & DF, 0, "fragment {i}: DF clear");
        assert_eq!(fo & 0x8000, ofo & 0x8000, "fragment {i}: reserved bit kept");
        assert_eq!(usize::from(fo & 0x1fff) * 8, next_off, "fragment {i}: contiguous offset");
        let mf = fo & MF != 0;
        let piece = &ip[hlen..total];
        if last {
            assert_eq!(mf, ofo & MF != 0, "last fragment: MF of the original");
        } else {
            assert!(mf, "fragment {i}: MF");
            assert_eq!(piece.len() % 8, 0, "fragment {i}: payload a multiple of 8");
            assert!(!piece.is_empty());
        }
        next_off += piece.len();
        payload.extend_from_slice(piece);
    }
    // Rebuild from the first fragment's header with the original flags.
    let f0 = &frames[0][l3_off..];
    let mut dg = f0[..ohlen].to_vec();
    dg[2..4].copy_from_slice(&((ohlen + payload.len()) as u16).to_be_bytes());
    dg[6..8].copy_from_slice(&ofo.to_be_bytes());
    dg[10..12].fill(0);
    let c = checksum::checksum(&dg);
    dg[10..12].copy_from_slice(&c.to_be_bytes());
    dg.extend_from_slice(&payload);
    assert_eq!(dg, oip, "reassembled datagram equals the original");
}

/// Snapshot of what an error must leave alone.
fn snapshot(p: &Pkt) -> (Vec<u8>, u16, u16, u32, RssType, Option<u16>, Offload) {
    (p.data().to_vec(), p.port(), p.queue(), p.rss_hash(), p.rss_type(), p.vlan_tci(), p.offload())
}

/// The frames of the first fragment (`p`) and of those in `out`, in order.
fn frames_of(p: &Pkt, out: &PktBurst) -> Vec<Vec<u8>> {
    std::iter::once(p).chain(out.as_slice()).map(|f| f.data().to_vec()).collect()
}

/// Fragments `frame` and checks the result; returns the fragments.
fn run_ok(pool: &PagePool, fr: &[u8], l3_off: usize, padding: usize, mtu: u16) -> Vec<Vec<u8>> {
    let mut p = pkt_of(pool, fr);
    let mut out = PktBurst::new();
    let l3_len = fr.len() - l3_off - padding;
    let n = fragment_ipv4(&mut p, l3_off, l3_len, mtu, &mut out).expect("fragmented");
    assert_eq!(n, out.len());
    let frames = frames_of(&p, &out);
    check_and_reassemble(&frames, &fr[..fr.len() - padding], l3_off, usize::from(mtu));
    frames
}

fn hlens(opts: Opts) -> (usize, usize) {
    let o = opts.bytes();
    (20 + o.len(), 20 + copied_options(&o).len())
}

#[test]
fn round_trips_for_many_sizes_mtus_and_options() {
    let pool = pool(MAX_FRAGMENTS as u32 + 2);
    let mut runs = 0;
    for opts in [Opts::None, Opts::Mixed] {
        let (hlen, later_hlen) = hlens(opts);
        for mtu in [68u16, 576, 1000, 1280, 1500] {
            for plen in (1..=4000).step_by(37) {
                let ip = datagram(plen, opts, 0, plen as u16, 17);
                let padding = plen % 3;
                let fr = frame(&ETH, &ip, padding);
                let want = expected_count(plen, hlen, later_hlen, usize::from(mtu));
                let mut p = pkt_of(&pool, &fr);
                let mut out = PktBurst::new();
                let r = fragment_ipv4(&mut p, 14, ip.len(), mtu, &mut out);
                if want == 1 {
                    assert_eq!(r, Ok(0), "fits: {plen} at {mtu}");
                    assert_eq!(p.data(), &fr[..], "left alone, padding included");
                } else if want > MAX_FRAGMENTS {
                    assert_eq!(r, Err(FragError::TooManyFragments), "{plen} at {mtu}: {want}");
                    assert_eq!(p.data(), &fr[..]);
                    assert!(out.is_empty());
                } else {
                    assert_eq!(r, Ok(want - 1), "{opts:?} {plen} at {mtu}");
                    check_and_reassemble(&frames_of(&p, &out), &fr[..fr.len() - padding], 14, usize::from(mtu));
                    runs += 1;
                }
                drop((p, out));
                assert_eq!(pool.in_use(), 0, "every buffer back");
            }
        }
    }
    assert!(runs > 500, "{runs}");
}

#[test]
fn every_option_layout_round_trips() {
    let pool = pool(MAX_FRAGMENTS as u32 + 2);
    for opts in ALL_OPTS {
        let (hlen, later_hlen) = hlens(opts);
        for mtu in [68u16, 69, 75, 76, 100, 576, 1500] {
            for plen in [1, 7, 8, 9, 63, 64, 65, 500, 1472, 1473, 2000] {
                let ip = datagram(plen, opts, 0, 7, 6);
                let fr = frame(&ETH, &ip, 0);
                let want = expected_count(plen, hlen, later_hlen, usize::from(mtu));
                if want == 1 || want > MAX_FRAGMENTS {
                    continue;
                }
                let frames = run_ok(&pool, &fr, 14, 0, mtu);
                assert_eq!(frames.len(), want, "{opts:?} {plen} at {mtu}");
            }
        }
    }
}

#[test]
fn later_fragments_carry_only_copied_options() {
    let pool = pool(8);
    let ip = datagram(200, Opts::Mixed, 0, 0x4242, 17);
    assert_eq!(ip[0], 0x49, "36-byte header");
    let frames = run_ok(&pool, &frame(&ETH, &ip, 0), 14, 0, 120);
    assert_eq!(frames[0][14], 0x49);
    assert_eq!(&frames[0][34..50], &ip[20..36]);
    for f in &frames[1..] {
        assert_eq!(f[14], 0x47, "20 + 8-byte header");
        assert_eq!(&f[34..42], &[0x83, 7, 4, 192, 0, 2, 9, 0], "LSRR, then end-of-options padding");
    }
    // First: 36 + 80 (120 - 36 = 84, rounded down); later: 28 + 88.
    let sizes: Vec<usize> = frames.iter().map(|f| f.len() - 14).collect();
    assert_eq!(sizes, [116, 116, 60]);
}

#[test]
fn nothing_copied_gives_a_bare_header() {
    let pool = pool(8);
    let ip = datagram(300, Opts::NotCopiedOnly, 0, 1, 17);
    let frames = run_ok(&pool, &frame(&ETH, &ip, 0), 14, 0, 100);
    assert!(frames[1..].iter().all(|f| f[14] == 0x45));
}

#[test]
fn a_middle_fragment_is_split_relative_to_its_offset() {
    let pool = pool(16);
    for opts in [Opts::None, Opts::Mixed] {
        // Offset 1480, MF set: a middle piece of a larger datagram.
        let ip = datagram(1480, opts, MF | (1480 / 8), 0x1234, 17);
        let frames = run_ok(&pool, &frame(&ETH, &ip, 0), 14, 0, 576);
        assert!(frames.len() >= 3);
        for f in &frames {
            assert_ne!(u16::from_be_bytes([f[20], f[21]]) & MF, 0, "MF everywhere");
        }
        assert_eq!(u16::from_be_bytes([frames[0][20], frames[0][21]]) & 0x1fff, 1480 / 8);
        // The last piece of a datagram: MF only on the new pieces.
        let ip = datagram(1001, opts, 2960 / 8, 0x1234, 17);
        let frames = run_ok(&pool, &frame(&ETH, &ip, 0), 14, 0, 576);
        let last = frames.last().expect("some");
        assert_eq!(u16::from_be_bytes([last[20], last[21]]) & MF, 0);
    }
}

#[test]
fn vlan_tagged_frames_keep_their_tag() {
    let pool = pool(8);
    // An experimental protocol: the payload is no UDP header.
    let ip = datagram(1400, Opts::CopiedOnly, 0, 9, 253);
    let fr = frame(&VLAN_ETH, &ip, 0);
    let l = parse_frame(&fr, true).expect("valid");
    assert_eq!((l.l3_off, usize::from(l.l3_len)), (18, ip.len()));
    let frames = run_ok(&pool, &fr, 18, 0, 600);
    assert!(frames.iter().all(|f| f[..18] == VLAN_ETH));
    for f in &frames {
        parse_frame(f, true).expect("every fragment parses");
    }
}

#[test]
fn ethernet_padding_is_not_carried() {
    let pool = pool(8);
    let ip = datagram(100, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &ip, 40);
    // `check_and_reassemble` holds every fragment to its exact length.
    let frames = run_ok(&pool, &fr, 14, 40, 68);
    assert_eq!(frames[0].len(), 14 + 20 + 48);
    assert_eq!(frames.last().map(|f| f.len()), Some(14 + 20 + 4));
}

#[test]
fn fitting_packets_are_left_alone() {
    let pool = pool(4);
    let ip = datagram(1480, Opts::None, DF, 9, 17);
    let fr = frame(&ETH, &ip, 6);
    let mut p = pkt_of(&pool, &fr);
    let mut out = PktBurst::new();
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 1500, &mut out), Ok(0), "exactly the MTU, DF or not");
    assert_eq!(p.data(), &fr[..]);
    assert!(out.is_empty());
    assert_eq!(pool.in_use(), 1);
}

#[test]
fn dont_fragment_is_refused() {
    let pool = pool(8);
    let ip = datagram(1481, Opts::None, DF, 9, 17);
    let fr = frame(&ETH, &ip, 0);
    let mut p = pkt_of(&pool, &fr);
    let mut out = PktBurst::new();
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 1500, &mut out), Err(FragError::DontFragment));
    assert_eq!(p.data(), &fr[..]);
    assert!(out.is_empty());
    assert_eq!(pool.in_use(), 1);
}

#[test]
fn mtu_below_68_is_refused() {
    let pool = pool(8);
    let ip = datagram(100, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &ip, 0);
    let mut p = pkt_of(&pool, &fr);
    let mut out = PktBurst::new();
    for mtu in [0, 1, 20, 60, MIN_MTU - 1] {
        assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), mtu, &mut out), Err(FragError::MtuTooSmall));
        // Even for a packet that would fit.
        assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), mtu, &mut out).map_err(|e| e.name()), Err("frag_mtu_too_small"));
    }
    assert_eq!(p.data(), &fr[..]);
    assert!(out.is_empty());
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), MIN_MTU, &mut out), Ok(2));
}

#[test]
fn pool_exhaustion_changes_nothing() {
    let ip = datagram(4000, Opts::Mixed, 0, 9, 17);
    let fr = frame(&ETH, &ip, 3);
    let (hlen, later_hlen) = hlens(Opts::Mixed);
    let need = expected_count(4000, hlen, later_hlen, 1000) - 1;
    assert_eq!(need, 4);
    for spare in 0..need {
        let pool = pool(1 + spare as u32);
        let mut p = pkt_of(&pool, &fr);
        p.set_port(3);
        let before = snapshot(&p);
        let mut out = PktBurst::new();
        assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 1000, &mut out), Err(FragError::NoBuffer), "{spare}");
        assert_eq!(snapshot(&p), before);
        assert!(out.is_empty());
        assert_eq!(pool.in_use(), 1, "only the original is out");
        // The pool is whole again: the spare buffers can all be taken.
        let taken: Vec<Pkt> = (0..spare).map(|_| pool.alloc().expect("free again")).collect();
        assert!(pool.alloc().is_none());
        drop(taken);
    }
    let pool = pool(1 + need as u32);
    let mut p = pkt_of(&pool, &fr);
    let mut out = PktBurst::new();
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 1000, &mut out), Ok(need));
    assert_eq!(pool.in_use(), 1 + need as u64);
}

#[test]
fn too_many_fragments_for_the_cap_or_the_burst() {
    let pool = pool(MAX_FRAGMENTS as u32 + 8);
    // MTU 68 and a bare header: 48 bytes per fragment.
    let exactly = datagram(48 * MAX_FRAGMENTS, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &exactly, 0);
    let frames = run_ok(&pool, &fr, 14, 0, 68);
    assert_eq!(frames.len(), MAX_FRAGMENTS);
    let over = datagram(48 * MAX_FRAGMENTS + 1, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &over, 0);
    let mut p = pkt_of(&pool, &fr);
    let mut out = PktBurst::new();
    assert_eq!(fragment_ipv4(&mut p, 14, over.len(), 68, &mut out), Err(FragError::TooManyFragments));
    assert_eq!(p.data(), &fr[..]);
    assert_eq!(pool.in_use(), 1);
    drop(p);

    // The burst already holds two packets and has room for two more.
    let ip = datagram(2000, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &ip, 0);
    let mut p = pkt_of(&pool, &fr);
    let mut out = PktBurst::new();
    for port in [7, 8] {
        let mut q = pool.alloc().expect("buf");
        q.set_port(port);
        out.push(q).expect("room");
    }
    out.set_limit(4);
    // 2000 + 20 at MTU 576: four fragments, three of them new.
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 576, &mut out), Err(FragError::TooManyFragments));
    assert_eq!(p.data(), &fr[..]);
    assert_eq!(out.len(), 2);
    assert_eq!(pool.in_use(), 3);
    out.set_limit(5);
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 576, &mut out), Ok(3));
    let ports: Vec<u16> = out.as_slice().iter().map(|q| q.port()).collect();
    assert_eq!(ports[..2], [7, 8], "packets already there stay first");
    let frames: Vec<Vec<u8>> =
        std::iter::once(p.data().to_vec()).chain(out.as_slice()[2..].iter().map(|f| f.data().to_vec())).collect();
    check_and_reassemble(&frames, &fr, 14, 576);
}

#[test]
fn malformed_inputs_are_refused() {
    let pool = pool(8);
    let ip = datagram(1000, Opts::Mixed, 0, 9, 17);
    let fr = frame(&ETH, &ip, 4);
    let n = ip.len();
    let mut cases: Vec<(Vec<u8>, usize, usize)> = vec![
        (fr.clone(), 14, n + 5),     // past the frame
        (fr.clone(), 14, n + 4),     // l3_len is not the total length
        (fr.clone(), 14, n - 1),     // nor this
        (fr.clone(), usize::MAX, 2), // offset overflow
        (fr.clone(), 13, n),         // not at the header
        (fr.clone(), 14, 19),        // shorter than a header
        (fr[..30].to_vec(), 14, n),  // truncated frame
    ];
    let mut bad = |at: usize, v: u8| {
        let mut f = fr.clone();
        f[14 + at] = v;
        cases.push((f, 14, n));
    };
    // Options: record route at 0..7, NOP at 7, LSRR at 8..15, EOL at 15.
    bad(0, 0x69); // version 6
    bad(0, 0x44); // IHL 4
    bad(21, 1); // record route of length 1
    bad(21, 0); // ... of length 0
    bad(21, 17); // ... running past the options
    bad(29, 9); // LSRR from 8 to 17: past the options
    bad(27, 0x83); // the NOP turned into an LSRR of length 0x83

    // Reassembling past 65535 bytes.
    let far = datagram(1000, Opts::None, 65000 / 8, 9, 17);
    cases.push((frame(&ETH, &far, 0), 14, far.len()));
    for (i, (f, off, len)) in cases.iter().enumerate() {
        let mut p = pkt_of(&pool, f);
        let mut out = PktBurst::new();
        assert_eq!(fragment_ipv4(&mut p, *off, *len, 576, &mut out), Err(FragError::Malformed), "case {i}");
        assert_eq!(p.data(), &f[..]);
        assert!(out.is_empty());
        assert_eq!(pool.in_use(), 1);
    }
    // The last in-range offset still works.
    let edge = datagram(1000, Opts::None, (65535 - 1000) / 8, 9, 17);
    run_ok(&pool, &frame(&ETH, &edge, 0), 14, 0, 576);
}

#[test]
fn metadata_goes_with_every_fragment() {
    let pool = pool(8);
    let ip = datagram(3000, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &ip, 0);
    let mut p = pkt_of(&pool, &fr);
    p.set_port(5);
    p.set_queue(3);
    p.set_rss(0xfeed_f00d, RssType::UdpIpv4);
    p.set_offload(Offload::RX_IP_CSUM_GOOD | Offload::TX_IP_CSUM);
    p.set_vlan_tci(Some(0x0123));
    let offload = p.offload();
    let mut out = PktBurst::new();
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 1500, &mut out), Ok(2));
    for f in std::iter::once(&p).chain(out.as_slice()) {
        assert_eq!((f.port(), f.queue(), f.rss_hash(), f.rss_type()), (5, 3, 0xfeed_f00d, RssType::UdpIpv4));
        assert_eq!(f.vlan_tci(), Some(0x0123));
        assert_eq!(f.offload(), offload);
        assert!(pool.owns(f));
    }
}

/// Fragments a TCP or UDP datagram whose L4 checksum was left to the
/// device; returns the reassembled L4 segment.
fn l4_offload_case(proto: u8, opts: Opts, mtu: u16) -> (Vec<u8>, Vec<u8>) {
    let pool = pool(MAX_FRAGMENTS as u32 + 2);
    let mut ip = datagram(300, opts, 0, 9, proto);
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    let csum_at = hlen + if proto == 6 { 16 } else { 6 };
    ip[csum_at..csum_at + 2].copy_from_slice(&[0xab, 0xcd]); // whatever the stack left there
    let fr = frame(&ETH, &ip, 0);
    let mut p = pkt_of(&pool, &fr);
    p.set_offload(Offload::TX_L4_CSUM | Offload::TX_IP_CSUM);
    let mut out = PktBurst::new();
    let n = fragment_ipv4(&mut p, 14, ip.len(), mtu, &mut out).expect("ok");
    assert!(n >= 1);
    let frames = frames_of(&p, &out);
    let all: Vec<&Pkt> = std::iter::once(&p).chain(out.as_slice()).collect();
    for f in all {
        assert_eq!(f.offload(), Offload::TX_IP_CSUM, "the device must not touch fragment payloads");
    }
    // Reassemble the payload by hand (the header checks are elsewhere).
    let mut seg = vec![];
    for f in &frames {
        let h = usize::from(f[14] & 0x0f) * 4;
        seg.extend_from_slice(&f[14 + h..]);
    }
    (seg, ip[hlen..].to_vec())
}

#[test]
fn device_l4_checksum_is_computed_before_splitting() {
    let src = [10, 0, 0, 1];
    let dst = [10, 1, 2, 3];
    // UDP at 6..8 of the first fragment; TCP at 16..18 lands in the second
    // fragment when a 60-byte header leaves 8 bytes per fragment.
    for (proto, opts, mtu) in [(17, Opts::None, 200), (6, Opts::None, 200), (6, Opts::Full, 68), (17, Opts::Full, 68)] {
        let (seg, orig) = l4_offload_case(proto, opts, mtu);
        assert!(checksum::verify_l4_v4(src, dst, proto, &seg), "{proto} {opts:?} {mtu}");
        let at = if proto == 6 { 16 } else { 6 };
        let mut zeroed = orig.clone();
        zeroed[at..at + 2].fill(0);
        let want = checksum::l4_checksum_v4(src, dst, proto, &zeroed);
        assert_eq!(seg[at..at + 2], want.to_be_bytes());
        assert_eq!(seg[..at], orig[..at]);
        assert_eq!(seg[at + 2..], orig[at + 2..]);
    }
}

#[test]
fn later_fragments_fit_the_pool_buffers() {
    // 512-byte buffers with 250 bytes of headroom: a fresh buffer holds 262
    // bytes, but a packet that reaches into its headroom holds up to 512.
    let pool = PagePool::new(&PoolConfig {
        buffers: 8,
        buf_size: 512,
        headroom: 250,
        hugepages: HugepagePolicy::Never,
        ..Default::default()
    })
    .expect("pool");
    let ip = datagram(478, Opts::None, 0, 9, 17);
    let fr = frame(&ETH, &ip, 0);
    assert_eq!(fr.len(), 512);
    let mut p = pool.alloc().expect("buf");
    p.prepend(250).expect("headroom");
    assert!(p.copy_from(&fr));
    let mut out = PktBurst::new();
    // At MTU 270 the rest (230 bytes) would make a 264-byte frame; later
    // fragments are cut to 248 L3 bytes instead.
    assert_eq!(fragment_ipv4(&mut p, 14, ip.len(), 270, &mut out), Ok(2));
    let frames = frames_of(&p, &out);
    let sizes: Vec<usize> = frames.iter().map(|f| f.len()).collect();
    assert_eq!(sizes, [14 + 20 + 248, 14 + 20 + 224, 14 + 20 + 6]);
    check_and_reassemble(&frames, &fr, 14, 270);
}

thread_local! {
    static POOL: PagePool = pool(MAX_FRAGMENTS as u32 + 2);
}

fn opts_strategy() -> impl Strategy<Value = Opts> {
    (0..ALL_OPTS.len()).prop_map(|i| ALL_OPTS[i])
}

proptest! {
    // Failures are kept beside this file (frag.regressions).
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fragments_always_reassemble(
        plen in 0usize..6000,
        mtu in 68u16..=9000,
        opts in opts_strategy(),
        more in any::<bool>(),
        off_units in 0u16..2000,
        vlan in any::<bool>(),
        padding in 0usize..40,
        ident in any::<u16>(),
    ) {
        let flags_off = if more { MF } else { 0 } | off_units;
        let ip = datagram(plen, opts, flags_off, ident, 17);
        let (eth, l3_off): (&[u8], usize) = if vlan { (&VLAN_ETH, 18) } else { (&ETH, 14) };
        let fr = frame(eth, &ip, padding);
        let (hlen, later_hlen) = hlens(opts);
        let want = expected_count(plen, hlen, later_hlen, usize::from(mtu));
        POOL.with(|pool| {
            let mut p = pkt_of(pool, &fr);
            let mut out = PktBurst::new();
            let r = fragment_ipv4(&mut p, l3_off, ip.len(), mtu, &mut out);
            if want == 1 {
                prop_assert_eq!(r, Ok(0));
                prop_assert_eq!(p.data(), &fr[..]);
            } else if want > MAX_FRAGMENTS {
                prop_assert_eq!(r, Err(FragError::TooManyFragments));
                prop_assert_eq!(p.data(), &fr[..]);
            } else {
                prop_assert_eq!(r, Ok(want - 1));
                let frames = frames_of(&p, &out);
                check_and_reassemble(&frames, &fr[..fr.len() - padding], l3_off, usize::from(mtu));
            }
            drop((p, out));
            prop_assert_eq!(pool.in_use(), 0);
            Ok(())
        })?;
    }

    #[test]
    fn never_panics_on_random_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..1600),
        l3_off in 0usize..40,
        l3_len in any::<u16>(),
        mtu in any::<u16>(),
    ) {
        POOL.with(|pool| {
            let mut p = pkt_of(pool, &data);
            let mut out = PktBurst::new();
            match fragment_ipv4(&mut p, l3_off, usize::from(l3_len), mtu, &mut out) {
                Ok(n) => prop_assert_eq!(n, out.len()),
                Err(_) => {
                    prop_assert_eq!(p.data(), &data[..]);
                    prop_assert!(out.is_empty());
                }
            }
            drop((p, out));
            prop_assert_eq!(pool.in_use(), 0);
            Ok(())
        })?;
    }

    #[test]
    fn never_panics_on_mutated_headers(
        plen in 0usize..3000,
        opts in opts_strategy(),
        edits in proptest::collection::vec((0usize..60, any::<u8>()), 1..6),
        fix_checksum in any::<bool>(),
        mtu in 0u16..2000,
    ) {
        let mut ip = datagram(plen, opts, 0, 9, 17);
        for (at, v) in edits {
            let at = at % ip.len();
            ip[at] = v;
        }
        let hlen = usize::from(ip[0] & 0x0f) * 4;
        if fix_checksum && (20..=ip.len()).contains(&hlen) {
            ip[10..12].fill(0);
            let c = checksum::checksum(&ip[..hlen]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let fr = frame(&ETH, &ip, 0);
        POOL.with(|pool| {
            let mut p = pkt_of(pool, &fr);
            let mut out = PktBurst::new();
            match fragment_ipv4(&mut p, 14, ip.len(), mtu, &mut out) {
                Ok(0) => prop_assert_eq!(p.data(), &fr[..]),
                Ok(n) => {
                    prop_assert_eq!(n, out.len());
                    // Whatever came in, what goes out is well-formed.
                    for f in std::iter::once(&p).chain(out.as_slice()) {
                        let ip = &f.data()[14..];
                        let h = usize::from(ip[0] & 0x0f) * 4;
                        prop_assert!(checksum::verify(&ip[..h]));
                        prop_assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
                        prop_assert!(ip.len() <= usize::from(mtu));
                    }
                }
                Err(_) => {
                    prop_assert_eq!(p.data(), &fr[..]);
                    prop_assert!(out.is_empty());
                }
            }
            drop((p, out));
            prop_assert_eq!(pool.in_use(), 0);
            Ok(())
        })?;
    }
}
