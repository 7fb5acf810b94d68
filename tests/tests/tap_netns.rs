//! The `tap` driver under a running router: the router's port `t0` is a
//! kernel TAP interface, which the test moves into a network namespace and
//! addresses there; the kernel in the namespace then pings the router's own
//! address, which the fast path answers (ARP and ICMP echo) back through
//! the TAP.
//!
//! These tests need root (namespaces, /dev/net/tun) and the tools `ip` and
//! `ping`; a missing one fails the test with its name (they never skip).
//! The namespace and the interface are named after the process id, and a
//! guard removes them even when the test fails.

use dataplane::runtime::Runtime;
use ports::MacAddr;
use std::time::{Duration, Instant};
use vrouter_tests::cmd::*;
use vrouter_tests::router::*;
use vrouter_tests::snap::*;
use vrouter_tests::PATIENCE;

/// The router's MAC on the TAP port (the kernel interface has its own).
const T0_MAC: MacAddr = MacAddr([0x02, 0x54, 0x41, 0x50, 0, 0x10]);

// ---------------------------------------------------------------------------
// Commands

// ---------------------------------------------------------------------------
// Topology

/// A network namespace with IPv6 off (no DAD, router solicitations or MLD
/// reports on the TAP once it arrives there), and the name of the TAP
/// interface the router will create. Dropping it deletes the namespace
/// (and with it the interface, if still there) and the interface in the
/// root namespace, if it never left.
struct Net {
    ns: String,
    tap: String,
}

impl Net {
    fn new(tag: char) -> Net {
        require("ip", "-V", "iproute2");
        assert!(
            std::path::Path::new("/dev/net/tun").exists(),
            "/dev/net/tun is missing: this test needs the tun module (modprobe tun) and root"
        );
        let pid = std::process::id();
        // Interface names are at most 15 bytes: "vrtap" + pid (≤ 7 digits) + tag.
        let net = Net { ns: format!("vrt-tap-{pid}-{tag}"), tap: format!("vrtap{pid}{tag}") };
        // The guard exists before the first step, so a failure half way
        // still removes what was made.
        let r = run("ip", &["netns", "add", &net.ns]);
        assert!(r.is_ok(), "creating a network namespace needs root: {}", r.err().unwrap_or_default());
        let r = in_ns(
            &net.ns,
            &["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"],
        );
        assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
        must("ip", &["-n", &net.ns, "link", "set", "lo", "up"]);
        net
    }

    /// Moves the router's TAP interface into the namespace as `addr`.
    /// Moving brings the interface down; it comes up again there.
    fn adopt_tap(&self, addr: &str) {
        must("ip", &["link", "set", "dev", &self.tap, "netns", &self.ns]);
        must("ip", &["-n", &self.ns, "addr", "add", addr, "dev", &self.tap]);
        must("ip", &["-n", &self.ns, "link", "set", "dev", &self.tap, "up"]);
    }

    /// `ip -o link show` of the TAP interface in `ns` (None: the root
    /// namespace), or None if it is not there.
    fn tap_link(&self, ns: Option<&str>) -> Option<String> {
        let out = match ns {
            Some(ns) => run("ip", &["-n", ns, "-o", "link", "show", "dev", &self.tap]),
            None => run("ip", &["-o", "link", "show", "dev", &self.tap]),
        };
        out.ok().map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.tap]);
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

// ---------------------------------------------------------------------------
// Router

// ---------------------------------------------------------------------------
// Tests

#[test]
fn kernel_in_a_namespace_pings_the_router_through_a_tap_port() {
    require("ping", "-V", "iputils-ping");
    let net = Net::new('p');
    let rt = Runtime::start(&light_spec(vec![iface_port("t0", "tap", &net.tap, T0_MAC, (1, 2), "10.77.0.1")], 2))
        .expect("start the router on a tap port (needs root and /dev/net/tun)");

    // The router made the interface here, up at the port's MTU.
    let link = net.tap_link(None).expect("the TAP interface exists in the root namespace");
    assert!(link.contains(",UP") && link.contains("mtu 1500"), "{link}");

    net.adopt_tap("10.77.0.2/24");
    // The links come up asynchronously (the kernel drops what is sent
    // before its link-state work has run): wait for a first answer, then
    // count.
    let t0 = Instant::now();
    while in_ns(&net.ns, &["ping", "-n", "-c", "1", "-W", "1", "10.77.0.1"]).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "10.77.0.1 never answered: {}", counters(&rt.snapshot()));
    }
    let r = in_ns(&net.ns, &["timeout", "30", "ping", "-n", "-c", "3", "-W", "1", "10.77.0.1"]);
    let out = match &r {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => e.clone(),
    };
    assert!(
        r.is_ok() && out.contains("3 packets transmitted, 3 received"),
        "ping 10.77.0.1 from {}: {out}\nrouter: {}",
        net.ns,
        counters(&rt.snapshot())
    );

    // The kernel learnt the router's MAC, not its own interface's.
    let neigh = must("ip", &["-n", &net.ns, "neigh", "show", "10.77.0.1", "dev", &net.tap]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains(&T0_MAC.to_string()), "neighbour entry for 10.77.0.1: {neigh}");

    let s = rt.snapshot();
    let t0 = port_named(&s, "t0");
    // At least one ARP request and three echo requests in; an ARP reply
    // and three echo replies out.
    assert!(t0.rx_packets() >= 4 && t0.tx_packets() >= 4, "t0 counters: {}", counters(&s));
    let rx_bytes: u64 = t0.rx.iter().map(|q| q.queue.bytes).sum();
    let tx_bytes: u64 = t0.tx.iter().map(|q| q.bytes).sum();
    // An echo of ping's default 56 data bytes is a 98-byte frame.
    assert!(rx_bytes >= 3 * 98 + 42 && tx_bytes >= 3 * 98 + 42, "bytes rx {rx_bytes} tx {tx_bytes}");
    assert!(local_count(&s, "arp_reply") >= 1, "ARP answered: {}", counters(&s));
    assert!(local_count(&s, "echo_reply") >= 3, "echo answered: {}", counters(&s));
    assert!(t0.link.up, "the port sees its interface up in the namespace: {}", counters(&s));
    assert_eq!(t0.driver_drops(), 0, "no driver drops: {}", counters(&s));

    let r = rt.stop().expect("stop");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
    // The port closed its descriptor: the interface is gone from the namespace.
    let deadline = Instant::now() + PATIENCE;
    while net.tap_link(Some(&net.ns)).is_some() {
        assert!(Instant::now() < deadline, "the TAP interface outlived the router by {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn router_with_a_tap_port_fails_to_start_on_an_interface_that_is_not_a_tap() {
    // A veth of that name exists: the tap driver refuses it, and the
    // runtime reports which port failed.
    let net = Net::new('v');
    let peer = format!("{}x", &net.tap[..net.tap.len().min(14)]);
    must("ip", &["link", "add", &net.tap, "type", "veth", "peer", "name", &peer, "netns", &net.ns]);
    let err = Runtime::start(&light_spec(vec![iface_port("t0", "tap", &net.tap, T0_MAC, (1, 2), "10.77.0.1")], 2))
        .err()
        .expect("a veth is not a TAP")
        .to_string();
    assert!(err.contains("port t0") && err.contains("TUNSETIFF") && err.contains(&net.tap), "{err}");
    assert!(net.tap_link(None).is_some_and(|l| l.contains(&net.tap)), "the veth is left alone");
}
