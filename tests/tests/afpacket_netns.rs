//! The `afpacket` driver under a running router: the router's port `a0` is
//! one end of a veth pair in the test's network namespace; the other end
//! sits in a namespace of its own as 10.78.0.2/24, and the kernel there
//! pings the router's address 10.78.0.1, which the fast path answers (ARP
//! and ICMP echo) through AF_PACKET sockets on the veth end.
//!
//! The test needs root (namespaces, veth, raw sockets) and the tools `ip`
//! and `ping`; a missing one fails the test with its name (it never
//! skips). The namespace and the veth pair are named after the process
//! id, and a guard removes them even when the test fails.

use dataplane::runtime::Runtime;
use ports::MacAddr;
use std::time::Duration;
use vrouter_tests::cmd::*;
use vrouter_tests::router::*;
use vrouter_tests::snap::*;

/// The MAC the router's port sets on its veth end.
const A0_MAC: MacAddr = MacAddr([0x02, 0x41, 0x46, 0x50, 0, 0x10]);

/// A namespace holding veth end `b` (10.78.0.2/24, up), whose peer `a` is
/// in the test's namespace for the router (up, no addresses, IPv6 and
/// IPv4 forwarding off, so the kernel there neither answers nor forwards
/// what the router gets). Dropping it deletes both.
struct Net {
    ns: String,
    a: String,
    b: String,
}

impl Net {
    fn new(tag: char) -> Net {
        require("ip", "-V", "iproute2");
        let pid = std::process::id();
        // Interface names are at most 15 bytes: "vrafa" + pid (≤ 7 digits) + tag.
        let net =
            Net { ns: format!("vrt-afp-{pid}-{tag}"), a: format!("vrafa{pid}{tag}"), b: format!("vrafb{pid}{tag}") };
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
        must("ip", &["link", "add", &net.a, "type", "veth", "peer", "name", &net.b, "netns", &net.ns]);
        for (key, value) in [("ipv6/conf", "disable_ipv6"), ("ipv4/conf", "forwarding")] {
            let path = format!("/proc/sys/net/{key}/{}/{value}", net.a);
            let v = if value == "disable_ipv6" { "1" } else { "0" };
            if std::path::Path::new(&path).exists() {
                std::fs::write(&path, v).expect("write a sysctl of the router's veth end");
            }
        }
        must("ip", &["-n", &net.ns, "addr", "add", "10.78.0.2/24", "dev", &net.b]);
        must("ip", &["-n", &net.ns, "link", "set", "dev", &net.b, "up"]);
        net
    }

    /// `ip -o link show` of the router's end.
    fn a_link(&self) -> String {
        String::from_utf8_lossy(&must("ip", &["-o", "link", "show", "dev", &self.a]).stdout).into_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.a]);
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

#[test]
fn kernel_in_a_namespace_pings_the_router_through_an_afpacket_port() {
    require("ping", "-V", "iputils-ping");
    let net = Net::new('p');
    let rt = Runtime::start(&light_spec(vec![iface_port("a0", "afpacket", &net.a, A0_MAC, (2, 2), "10.78.0.1")], 2))
        .expect("start the router on an afpacket port (needs root)");

    // The port brought its interface up with the configured MAC, at the
    // interface's MTU (which it never changes).
    let link = net.a_link();
    assert!(link.contains(",UP") && link.contains("mtu 1500") && link.contains(&A0_MAC.to_string()), "{link}");

    // The links come up asynchronously (the kernel drops what is sent
    // before its link-state work has run): wait for a first answer, then
    // count.
    let t0 = std::time::Instant::now();
    while in_ns(&net.ns, &["ping", "-n", "-c", "1", "-W", "1", "10.78.0.1"]).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "10.78.0.1 never answered: {}", counters(&rt.snapshot()));
    }
    let r = in_ns(&net.ns, &["timeout", "30", "ping", "-n", "-c", "3", "-W", "1", "10.78.0.1"]);
    let out = match &r {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => e.clone(),
    };
    assert!(
        r.is_ok() && out.contains("3 packets transmitted, 3 received"),
        "ping 10.78.0.1 from {}: {out}\nrouter: {}",
        net.ns,
        counters(&rt.snapshot())
    );

    let neigh = must("ip", &["-n", &net.ns, "neigh", "show", "10.78.0.1", "dev", &net.b]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains(&A0_MAC.to_string()), "neighbour entry for 10.78.0.1: {neigh}");

    let s = rt.snapshot();
    let a0 = port_named(&s, "a0");
    assert_eq!((a0.info.driver, a0.rx.len(), a0.tx.len()), ("afpacket", 2, 2), "{:?}", a0.info);
    // At least one ARP request and three echo requests in; an ARP reply
    // and three echo replies out.
    assert!(a0.rx_packets() >= 4 && a0.tx_packets() >= 4, "a0 counters: {}", counters(&s));
    let rx_bytes: u64 = a0.rx.iter().map(|q| q.queue.bytes).sum();
    let tx_bytes: u64 = a0.tx.iter().map(|q| q.bytes).sum();
    // An echo of ping's default 56 data bytes is a 98-byte frame.
    assert!(rx_bytes >= 3 * 98 + 42 && tx_bytes >= 3 * 98 + 42, "bytes rx {rx_bytes} tx {tx_bytes}");
    assert!(local_count(&s, "arp_reply") >= 1, "ARP answered: {}", counters(&s));
    assert!(local_count(&s, "echo_reply") >= 3, "echo answered: {}", counters(&s));
    assert!(a0.link.up, "the port sees its interface up and running: {}", counters(&s));
    assert_eq!(a0.driver_drops(), 0, "no driver drops: {}", counters(&s));

    let r = rt.stop().expect("stop");
    assert!(r.leaks().is_empty(), "{:?}", r.leaks());
    // The interface is not the port's: it outlives the router, still up.
    assert!(net.a_link().contains(",UP"), "{}", net.a_link());
}

#[test]
fn router_with_an_afpacket_port_fails_to_start_on_a_missing_interface() {
    let missing = format!("vrafx{}", std::process::id());
    let err = Runtime::start(&light_spec(vec![iface_port("a0", "afpacket", &missing, A0_MAC, (2, 2), "10.78.0.1")], 2))
        .err()
        .expect("no such interface")
        .to_string();
    assert!(err.contains("a0") && err.contains(&format!("no interface {missing:?}")), "{err}");
}
