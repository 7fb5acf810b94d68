//! The native MANA driver over its emulated device, on real wires: two
//! ports attached by AF_PACKET to veth pairs whose peers sit in network
//! namespaces (the kernel pings the router and through it, and a UDP
//! datagram crosses byte-exact), and one port replaying a pcap file and
//! recording the router's answers into another.
//!
//! These tests need root (namespaces, veth, AF_PACKET) and the tools `ip`,
//! `ethtool`, `ping` and `python3`; a missing one fails the test with its
//! name. Every namespace, interface and file is named after the process id
//! and the test, and removed by a guard even when the test fails.

use dataplane::runtime::{PortSpec, Runtime};
use ports::pcap::{PcapReader, PcapWriter};
use ports::{HugepagePolicy, MacAddr, PortConfig, PortId};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vrouter_tests::cmd::*;
use vrouter_tests::router::*;
use vrouter_tests::snap::*;

/// The router's MACs (locally administered; the AF_PACKET socket is
/// promiscuous, so they need not match the root-side veths).
const P0_MAC: MacAddr = MacAddr([0x02, 0x4d, 0x41, 0x4e, 0, 0x10]);
const P1_MAC: MacAddr = MacAddr([0x02, 0x4d, 0x41, 0x4e, 0, 0x11]);

// ---------------------------------------------------------------------------
// Commands

// ---------------------------------------------------------------------------
// Topology

/// Two namespaces, each reached from the root namespace by a veth pair:
/// `va0` (root) <-> `va1` (ns a, 10.50.1.2/24 via 10.50.1.1) and `vb0`
/// (root) <-> `vb1` (ns b, 10.50.2.2/24 via 10.50.2.1). The router's ports
/// attach to `va0` and `vb0`. Dropping it deletes everything it made.
struct Net {
    ns_a: String,
    ns_b: String,
    va0: String,
    va1: String,
    vb0: String,
    vb1: String,
}

impl Net {
    fn new(tag: char) -> Net {
        require("ip", "-V", "iproute2");
        require("ethtool", "--version", "ethtool");
        let pid = std::process::id();
        // Interface names are at most 15 bytes: "v" + pid (≤ 7 digits) + tag + 2.
        let net = Net {
            ns_a: format!("vrt-{pid}-{tag}-a"),
            ns_b: format!("vrt-{pid}-{tag}-b"),
            va0: format!("v{pid}{tag}a0"),
            va1: format!("v{pid}{tag}a1"),
            vb0: format!("v{pid}{tag}b0"),
            vb1: format!("v{pid}{tag}b1"),
        };
        // The guard exists before the first step, so a failure half way
        // still removes what was made.
        net.side(&net.ns_a, &net.va0, &net.va1, "10.50.1.2/24", "10.50.1.1");
        net.side(&net.ns_b, &net.vb0, &net.vb1, "10.50.2.2/24", "10.50.2.1");
        net
    }

    fn side(&self, ns: &str, root_if: &str, ns_if: &str, addr: &str, gw: &str) {
        let r = run("ip", &["netns", "add", ns]);
        assert!(r.is_ok(), "creating a network namespace needs root: {}", r.err().unwrap_or_default());
        // IPv6 off before any interface exists in the namespace: no DAD,
        // router solicitations or MLD reports on the wire.
        must_in_ns(
            ns,
            &["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"],
        );
        must("ip", &["link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", ns]);
        disable_ipv6_root(root_if);
        let off = ["tx", "off", "rx", "off", "gso", "off", "gro", "off", "tso", "off"];
        let mut args = vec!["-K", root_if];
        args.extend_from_slice(&off);
        must("ethtool", &args);
        let mut args = vec!["ethtool", "-K", ns_if];
        args.extend_from_slice(&off);
        must_in_ns(ns, &args);
        must("ip", &["link", "set", root_if, "up"]);
        must("ip", &["-n", ns, "link", "set", "lo", "up"]);
        must("ip", &["-n", ns, "addr", "add", addr, "dev", ns_if]);
        must("ip", &["-n", ns, "link", "set", ns_if, "up"]);
        must("ip", &["-n", ns, "route", "add", "default", "via", gw]);
    }

    /// `ping -c 3 -W 2 dst` from namespace `ns`; fails the test with ping's
    /// output and the router's counters if no echo reply came back.
    fn ping(&self, ns: &str, dst: &str, rt: &Runtime) {
        let r = in_ns(ns, &["ping", "-n", "-c", "3", "-W", "2", dst]);
        assert!(
            r.is_ok(),
            "ping {dst} from {ns}: {}\nrouter: {}",
            r.err().unwrap_or_default(),
            counters(&rt.snapshot())
        );
    }
}

/// Turns IPv6 off on a root-namespace interface (if the kernel has IPv6).
fn disable_ipv6_root(ifname: &str) {
    let p = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    if std::path::Path::new(&p).exists() {
        let r = std::fs::write(&p, "1");
        assert!(r.is_ok(), "{p}: {:?}", r.err());
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting one end of a veth deletes its peer; deleting a namespace
        // deletes what is left in it.
        for i in [&self.va0, &self.vb0] {
            let _ = run("ip", &["link", "del", i]);
        }
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

// ---------------------------------------------------------------------------
// Router

fn mana_port(name: &str, mac: MacAddr, args: &[(&str, &str)]) -> PortConfig {
    PortConfig {
        id: PortId(0),
        name: name.into(),
        driver: "mana".into(),
        rx_queues: 1,
        tx_queues: 1,
        rx_ring: 512,
        tx_ring: 512,
        mtu: 1500,
        mac: Some(mac),
        pool_buffers: 2048,
        hugepages: HugepagePolicy::Prefer,
        args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

fn port(config: PortConfig, addr: &str) -> PortSpec {
    PortSpec {
        config,
        addrs: vec![(addr.parse::<IpAddr>().expect("address literal"), 24)],
        vrf: 0,
        azure_gateway: false,
    }
}

/// The two-port router of the veth tests: p0 on `va0` (10.50.1.1/24), p1 on
/// `vb0` (10.50.2.1/24).
fn start_router(net: &Net) -> Runtime {
    let s = light_spec(
        vec![
            port(mana_port("p0", P0_MAC, &[("afpacket", &net.va0)]), "10.50.1.1"),
            port(mana_port("p1", P1_MAC, &[("afpacket", &net.vb0)]), "10.50.2.1"),
        ],
        1,
    );
    Runtime::start(&s).expect("start the router on emulated MANA ports over AF_PACKET")
}

// ---------------------------------------------------------------------------
// Tests over veth

#[test]
fn ping_through_emulated_mana_over_veth() {
    require("ping", "-V", "iputils-ping");
    let net = Net::new('p');
    let rt = start_router(&net);

    // The router's own address: ARP and echo answered by the router,
    // through the emulated device and AF_PACKET.
    net.ping(&net.ns_a, "10.50.1.1", &rt);
    // Through the router: it resolves 10.50.2.2 on p1 by ARP (glean), and
    // ns b resolves its gateway 10.50.2.1.
    net.ping(&net.ns_a, "10.50.2.2", &rt);

    let s = rt.snapshot();
    let (p0, p1) = (port_named(&s, "p0"), port_named(&s, "p1"));
    // p0: at least one ARP request and three echo requests to the router,
    // and one echo forwarded; answered by an ARP reply and three echo replies.
    assert!(p0.rx_packets() >= 5 && p0.tx_packets() >= 4, "p0 counters: {}", counters(&s));
    // p1: the router's ARP request and at least one forwarded echo out; the
    // ARP reply and at least one echo reply in.
    assert!(p1.rx_packets() >= 2 && p1.tx_packets() >= 2, "p1 counters: {}", counters(&s));
    assert!(p0.link.up && p1.link.up, "links up: {}", counters(&s));
    // ns a asked for 10.50.1.1; ns b learnt 10.50.2.1 from the router's
    // own request and need not ask.
    assert!(local_count(&s, "arp_reply") >= 1, "ARP answered: {}", counters(&s));
    assert!(local_count(&s, "echo_reply") >= 3, "echo answered: {}", counters(&s));
    assert!(local_count(&s, "neigh_solicit") >= 1, "router asked for 10.50.2.2: {}", counters(&s));
    assert_eq!(p0.driver_drops() + p1.driver_drops(), 0, "no driver drops: {}", counters(&s));

    let r = rt.stop().expect("stop");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
}

/// The payload of the UDP test: 1200 bytes that no offset repeats soon.
fn udp_payload() -> Vec<u8> {
    (0..1200u32).map(|i| (i.wrapping_mul(131).wrapping_add(i >> 8) % 251) as u8).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const LISTENER: &str = "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('10.50.2.2', 5555))
s.settimeout(10)
print('ready', flush=True)
d, a = s.recvfrom(65535)
print(a[0], d.hex(), flush=True)
";

/// Sends the datagram (argv[1], hex) five times 200 ms apart: the first may
/// meet a neighbour entry still being resolved.
const SENDER: &str = "
import socket, sys, time
d = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(d, ('10.50.2.2', 5555))
    time.sleep(0.2)
";

#[test]
fn udp_payload_survives_the_round_trip() {
    require("python3", "--version", "python3");
    require("ping", "-V", "iputils-ping");
    let net = Net::new('u');
    let rt = start_router(&net);
    // Resolve the neighbours on both sides first.
    net.ping(&net.ns_a, "10.50.2.2", &rt);

    let mut listener = Command::new("ip")
        .args(["netns", "exec", &net.ns_b, "timeout", "15", "python3", "-c", LISTENER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the UDP listener in ns b (ip netns exec ... python3)");
    let mut lines = BufReader::new(listener.stdout.take().expect("piped stdout")).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(ready, "ready", "listener did not start: {:?}", listener.wait_with_output().map(|o| o.stderr));

    let payload = udp_payload();
    let sent = in_ns(&net.ns_a, &["timeout", "10", "python3", "-c", SENDER, &hex(&payload)]);
    let got = lines.next().and_then(Result::ok).unwrap_or_default();
    let status = listener.wait().expect("listener exit");
    assert!(sent.is_ok(), "sender: {}", sent.err().unwrap_or_default());
    assert!(status.success(), "listener got nothing ({status}); router: {}", counters(&rt.snapshot()));

    let (from, data) = got.split_once(' ').expect("listener prints `source hex`");
    assert_eq!(from, "10.50.1.2", "routed, not rewritten");
    assert_eq!(data.len(), 2 * payload.len(), "payload length");
    assert!(data == hex(&payload), "payload differs:\nsent {}\ngot  {data}", hex(&payload));

    let s = rt.snapshot();
    // The full-size frame: 14 + 20 + 8 + 1200 bytes in on p0, out on p1.
    let big = 14 + 20 + 8 + payload.len() as u64;
    let (p0, p1) = (port_named(&s, "p0"), port_named(&s, "p1"));
    assert!(p0.rx.iter().map(|q| q.queue.bytes).sum::<u64>() >= big, "{}", counters(&s));
    assert!(p1.tx.iter().map(|q| q.bytes).sum::<u64>() >= big, "{}", counters(&s));
    assert_eq!(p0.driver_drops() + p1.driver_drops(), 0, "no driver drops: {}", counters(&s));
    let r = rt.stop().expect("stop");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
}

// ---------------------------------------------------------------------------
// pcap replay and record

/// Capture files under the temp dir, removed on drop.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The Internet checksum (RFC 1071) of `b`.
fn inet_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b.chunks(2).map(|c| (u32::from(c[0]) << 8) | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A broadcast ARP request from (`mac`, `ip`) for `target`.
fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = eth([0xff; 6], mac, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

/// An ICMP echo request with correct IPv4 and ICMP checksums.
fn echo_request(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = inet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&seq.to_be_bytes()); // identification
    ip.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]); // DF, TTL 64, ICMP, checksum 0
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn pcap_replay_and_record() {
    const ARPS: usize = 3;
    const ECHOES: usize = 5;
    let router_ip = [10, 60, 0, 1];
    let pid = std::process::id();
    let files = Files(vec![
        std::env::temp_dir().join(format!("vrt-mana-{pid}-in.pcap")),
        std::env::temp_dir().join(format!("vrt-mana-{pid}-out.pcap")),
    ]);
    let (pin, pout) = (&files.0[0], &files.0[1]);

    // Hosts 10.60.0.10.. ask for the router; hosts 10.60.0.20.. ping it,
    // with payloads of growing size (up to a full 1500-byte packet).
    let host_mac = |k: usize| [0x02, 0xaa, 0, 0, 0, k as u8];
    let arp_host = |k: usize| [10, 60, 0, 10 + k as u8];
    let echo_host = |k: usize| [10, 60, 0, 20 + k as u8];
    let echo_data = |k: usize| -> Vec<u8> {
        let len = [0, 56, 300, 1000, 1472][k % 5];
        (0..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(k as u8)).collect()
    };
    let (echo_id, echo_seq) = (|k: usize| 0x5600 + k as u16, |k: usize| 1 + k as u16);
    let mut sent = Vec::new();
    for k in 0..ARPS.max(ECHOES) {
        if k < ARPS {
            sent.push(arp_request(host_mac(k), arp_host(k), router_ip));
        }
        if k < ECHOES {
            let m = host_mac(0x10 + k);
            sent.push(echo_request(P0_MAC.0, m, echo_host(k), router_ip, echo_id(k), echo_seq(k), &echo_data(k)));
        }
    }
    {
        let w = PcapWriter::create(pin).expect("create the input capture");
        for f in &sent {
            w.write(f).expect("write a frame");
        }
        w.flush().expect("flush the input capture");
    }

    let (sin, sout) = (pin.display().to_string(), pout.display().to_string());
    let s = light_spec(vec![port(mana_port("p0", P0_MAC, &[("pcap_in", &sin), ("pcap_out", &sout)]), "10.60.0.1")], 1);
    let rt = Runtime::start(&s).expect("start the router on a pcap-backed emulated MANA port");
    let n = sent.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut snap = rt.snapshot();
    while (snap.ports[0].rx_packets() < n || snap.ports[0].tx_packets() < n) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        snap = rt.snapshot();
    }
    assert!(
        snap.ports[0].rx_packets() == n && snap.ports[0].tx_packets() == n,
        "{n} frames replayed and answered within 10 s: {}",
        counters(&snap)
    );
    let r = rt.stop().expect("stop");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
    // The runtime is gone: the device closed the output and flushed it.

    let mut rd = PcapReader::open(pout).expect("open the output capture");
    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    while let Some(len) = rd.next_frame(&mut buf).expect("read the output capture") {
        got.push(buf[..len].to_vec());
    }
    let arps: Vec<&Vec<u8>> = got.iter().filter(|f| f.len() >= 42 && f[12..14] == [8, 6]).collect();
    let echoes: Vec<&Vec<u8>> = got.iter().filter(|f| f.len() >= 42 && f[12..14] == [8, 0]).collect();
    assert_eq!((arps.len(), echoes.len(), got.len()), (ARPS, ECHOES, ARPS + ECHOES), "only the answers, all of them");

    for (k, f) in arps.iter().enumerate() {
        assert_eq!(f[0..6], host_mac(k), "ARP reply {k}: to the asker");
        assert_eq!(f[6..12], P0_MAC.0, "ARP reply {k}: from the port");
        assert_eq!(f[14..20], [0, 1, 8, 0, 6, 4], "ARP reply {k}: Ethernet/IPv4");
        assert_eq!(f[20..22], [0, 2], "ARP reply {k}: opcode 2");
        assert_eq!(f[22..28], P0_MAC.0, "ARP reply {k}: sender MAC");
        assert_eq!(f[28..32], router_ip, "ARP reply {k}: sender IP");
        assert_eq!(f[32..38], host_mac(k), "ARP reply {k}: target MAC");
        assert_eq!(f[38..42], arp_host(k), "ARP reply {k}: target IP");
    }
    for (k, f) in echoes.iter().enumerate() {
        let data = echo_data(k);
        assert_eq!(f.len(), 14 + 20 + 8 + data.len(), "echo reply {k}: length");
        assert_eq!(f[0..6], host_mac(0x10 + k), "echo reply {k}: to the sender");
        assert_eq!(f[6..12], P0_MAC.0, "echo reply {k}: from the port");
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, 20 + 8 + data.len(), "echo reply {k}: total length");
        assert_eq!(ip[9], 1, "echo reply {k}: ICMP");
        assert_eq!(ip[12..16], router_ip, "echo reply {k}: source");
        assert_eq!(ip[16..20], echo_host(k), "echo reply {k}: destination");
        assert_eq!(inet_checksum(ip), 0, "echo reply {k}: IPv4 header checksum");
        let icmp = &f[34..];
        assert_eq!(icmp[0..2], [0, 0], "echo reply {k}: type 0 code 0");
        assert_eq!(inet_checksum(icmp), 0, "echo reply {k}: ICMP checksum");
        assert_eq!(u16::from_be_bytes([icmp[4], icmp[5]]), echo_id(k), "echo reply {k}: id");
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), echo_seq(k), "echo reply {k}: seq");
        assert!(icmp[8..] == data[..], "echo reply {k}: payload");
    }
    let w = &r.final_stats.workers[0];
    assert!(w.local.iter().any(|e| e == &("arp_reply", ARPS as u64)), "{:?}", w.local);
    assert!(w.local.iter().any(|e| e == &("echo_reply", ECHOES as u64)), "{:?}", w.local);
}
