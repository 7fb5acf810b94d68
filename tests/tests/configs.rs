//! Config files: every example in configs/ loads and starts; broken
//! configs are refused with an error that names the problem.

use control::config::Config;
use dataplane::runtime::Runtime;
use std::time::Duration;

#[test]
fn every_example_config_is_valid() {
    let dir = vrouter_tests::repo_root().join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("configs dir") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "toml") {
            let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cfg.to_spec().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1, "no configs found in {}", dir.display());
}

#[test]
fn demo_config_forwards_generator_traffic() {
    let cfg = Config::load(&vrouter_tests::repo_root().join("configs/demo.toml")).expect("demo");
    let mut spec = cfg.to_spec().expect("spec");
    // The demo pins its worker to core 0; keep that (core 0 always exists).
    spec.generator.as_mut().expect("demo has a generator").config.rate_pps = 100_000;
    let rt = Runtime::start(&spec).expect("start");
    // Wait for 50k packets (0.5 s at the configured rate; longer on a
    // loaded machine with an unoptimised build), at most 20 s.
    let t0 = std::time::Instant::now();
    let mut s = rt.snapshot();
    while t0.elapsed() < Duration::from_secs(20)
        && (s.ports[1].tx_packets() <= 50_000 || s.generator.as_ref().is_some_and(|g| g.rx_valid <= 50_000))
    {
        std::thread::sleep(Duration::from_millis(100));
        s = rt.snapshot();
    }
    let report = rt.stop().expect("stop");
    let (p0, p1) = (&s.ports[0], &s.ports[1]);
    assert!(p0.link.up && p1.link.up, "links: p0 {:?}, p1 {:?}", p0.link, p1.link);
    assert!(p0.rx_packets() > 50_000, "p0 received {}", p0.rx_packets());
    assert!(p1.tx_packets() > 50_000, "p1 sent {}", p1.tx_packets());
    let g = report.final_stats.generator.clone().expect("gen");
    assert!(g.rx_valid > 50_000 && g.rx_invalid == 0, "{g:?}");
    assert!(report.leaks().is_empty(), "{:?}", report.leaks());
}

#[test]
fn firewall_config_admits_generator_flows_statefully() {
    let cfg = Config::load(&vrouter_tests::repo_root().join("configs/firewall.toml")).expect("firewall");
    let mut spec = cfg.to_spec().expect("spec");
    let gen = spec.generator.as_mut().expect("the firewall example has a generator");
    gen.config.rate_pps = 100_000;
    let (flows, frame) = (gen.config.flows as u64, gen.config.frame_len as u64);
    assert_eq!(spec.acl.bindings.len(), 2, "{:?}", spec.acl.bindings);
    let rt = Runtime::start(&spec).expect("start");
    let t0 = std::time::Instant::now();
    let rx_valid = |rt: &Runtime| rt.snapshot().generator.map_or(0, |g| g.rx_valid);
    while t0.elapsed() < Duration::from_secs(20) && rx_valid(&rt) <= 20_000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let hits = rt.acl().get("inside").expect("ACL inside").rule_hits();
    let now = dataplane::tsc::secs(dataplane::tsc::now());
    let sessions = rt.acl().sessions().expect("a stateful rule made the session table").len(now);
    let report = rt.stop().expect("stop");
    let g = report.final_stats.generator.clone().expect("gen");
    assert!(g.rx_valid > 20_000 && g.rx_invalid == 0, "{g:?}");
    // The first packet of each flow matched the permit-stateful rule and
    // opened a session; the flow's later packets passed on the session.
    assert_eq!(hits[0], (flows, flows * frame), "{hits:?}");
    assert!(hits[1..].iter().all(|h| h.0 == 0), "{hits:?}");
    assert_eq!(sessions, flows as usize);
    let acl_drops: Vec<_> =
        report.final_stats.workers.iter().flat_map(|w| &w.drops).filter(|d| d.0.starts_with("acl_")).collect();
    assert!(acl_drops.is_empty(), "{acl_drops:?}");
    assert!(report.leaks().is_empty(), "{:?}", report.leaks());
}

fn error_of(toml: &str) -> String {
    match Config::parse(toml).and_then(|c| c.to_spec()) {
        Ok(_) => panic!("config was accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

const PORTS: &str = r#"
[[port]]
name = "p0"
driver = "mem"
args = { wire = "w0" }
[[port]]
name = "p1"
driver = "mem"
args = { wire = "w1" }
"#;

#[test]
fn broken_configs_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("[dataplane]\nburts = 32\n", "unknown field `burts`"),
        ("[dataplane]\nburst = 0\n", "dataplane.burst 0 out of range"),
        ("# standalone: no ports\n", "no [[port]] sections"),
        ("[[port]]\nname = \"a b\"\ndriver = \"mem\"\n", "names may use"),
        ("[[port]]\nname = \"p0\"\ndriver = \"mem\"\nmac = \"zz:00\"\n", "invalid MAC address"),
        ("[[port]]\nname = \"p0\"\ndriver = \"mem\"\n[[port]]\nname = \"p0\"\ndriver = \"mem\"\n", "defined twice"),
        ("[[port]]\nname = \"p0\"\ndriver = \"mem\"\naddresses = [\"10.0.0.1\"]\n", "not an address/prefix-length"),
        (
            "[[route]]\nprefix = \"10.1.0.1/16\"\nport = \"p1\"\nneighbor_mac = \"02:00:00:00:00:09\"\n",
            "host bits are set (did you mean 10.1.0.0/16?)",
        ),
        ("[[route]]\nprefix = \"10.1.0.0/33\"\nport = \"p1\"\n", "not a prefix"),
        (
            "[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"p9\"\nneighbor_mac = \"02:00:00:00:00:09\"\n",
            "unknown port \"p9\"",
        ),
        ("[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"p1\"\n", "needs via (a gateway address) or neighbor_mac"),
        (
            "[[route]]\nprefix = \"10.1.0.0/16\"\naction = \"drop\"\nport = \"p1\"\n",
            "a drop or unreachable route takes no port, via or neighbor_mac",
        ),
        ("[[route]]\nprefix = \"10.1.0.0/16\"\naction = \"explode\"\n", "unknown variant `explode`"),
        ("[[worker]]\nrx = [\"p0\"]\n", "is not \"port:queue\""),
        ("[generator]\nsource_wire = \"nowhere\"\n", "no mem or mana port of the router is on wire \"nowhere\""),
        ("[generator]\nsource_wire = \"w0\"\nframe_len = 20\n", "frame_len 20 out of range"),
        ("[generator]\n", "give a source_wire, a sink_wire or both"),
        (
            "[[route]]\nprefix = \"10.1.0.0/16\"\nport = \"p1\"\nvia = \"10.2.0.2\"\nneighbor_mac = \"02:00:00:00:00:09\"\n",
            "give via or neighbor_mac, not both",
        ),
        ("[[route]]\nprefix = \"2001:db8::/32\"\nport = \"p1\"\nvia = \"10.2.0.2\"\n", "cannot go via the IPv4 address"),
        ("[[neighbor]]\nport = \"p9\"\nip = \"10.2.0.2\"\nmac = \"02:00:00:00:00:09\"\n", "unknown port"),
        ("[[neighbor]]\nport = \"p1\"\nip = \"10.2.0.2\"\nmac = \"nope\"\n", "invalid MAC address"),
        // ACLs and their bindings.
        (
            "[[port]]\nname = \"p0\"\ndriver = \"mem\"\nacl_in = \"nope\"\n",
            "port \"p0\": acl_in: no [[acl]] named \"nope\"",
        ),
        (
            "[[port]]\nname = \"p0\"\ndriver = \"mem\"\nacl_out_default = \"permit\"\n",
            "port \"p0\": acl_out_default is set but acl_out is not",
        ),
        (
            "[[port]]\nname = \"p0\"\ndriver = \"mem\"\nacl_in = \"a\"\nacl_in_default = \"permit-stateful\"\n[[acl]]\nname = \"a\"\n",
            "unknown variant `permit-stateful`, expected `permit` or `deny`",
        ),
        ("[[acl]]\nname = \"a\"\nrules = [ { action = \"allow\" } ]\n", "unknown variant `allow`"),
        ("[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", dprot = 53 } ]\n", "unknown field `dprot`"),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", src = \"10.0.0.0/33\" } ]\n",
            "acl \"a\" rule 0: src \"10.0.0.0/33\" is not a prefix like 10.0.0.0/8 or an address",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", dst = \"10.1.2.3/16\" } ]\n",
            "acl \"a\" rule 0: dst \"10.1.2.3/16\": host bits are set (did you mean 10.1.0.0/16?)",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"permit\" }, { action = \"deny\", proto = \"tcp\", icmp_type = 8 } ]\n",
            "acl \"a\" rule 1: icmp_type needs proto = \"icmp\" or \"icmpv6\"",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", proto = \"udp\", dport = \"9-3\" } ]\n",
            "acl \"a\" rule 0: dport \"9-3\": the low end is above the high end",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", proto = \"udp\", sport = 70000 } ]\n",
            "acl \"a\" rule 0: sport 70000 out of range 0..=65535",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", dport = 53 } ]\n",
            "acl \"a\" rule 0: dport needs proto = \"tcp\", \"udp\" or \"sctp\"",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", src = \"10.0.0.0/8\", dst = \"2001:db8::/32\" } ]\n",
            "acl \"a\" rule 0: src is IPv4 but dst is IPv6",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", family = \"ipv6\", proto = \"icmp\" } ]\n",
            "acl \"a\" rule 0: proto \"icmp\" in an IPv6 rule (use \"icmpv6\")",
        ),
        (
            "[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", proto = \"tcp\", tcp_flags = \"syn,!akc\" } ]\n",
            "acl \"a\" rule 0: tcp_flags \"syn,!akc\": unknown flag \"akc\"",
        ),
        ("[[acl]]\nname = \"a\"\nrules = [ { action = \"deny\", proto = \"gre\" } ]\n", "proto \"gre\": use"),
        ("[[acl]]\nname = \"a\"\n[[acl]]\nname = \"a\"\n", "acl \"a\": defined twice"),
        ("[sessions]\ncapacity = 0\n", "sessions.capacity 0 out of range"),
        ("[sessions]\nudp = 0\n", "sessions.udp: a timeout must be at least 1 second"),
        ("[sessions]\nudp_timeout = 5\n", "unknown field `udp_timeout`"),
        // NAT.
        ("[nat]\ninside = [\"p9\"]\n", "nat: no port named \"p9\""),
        ("[nat]\ninside = [\"p0\"]\noutside = [\"p0\"]\n", "nat: port \"p0\" is both inside and outside"),
        ("[nat]\nmapping = \"full-cone\"\n", "nat.mapping: \"full-cone\""),
        ("[nat]\nudp_ports = \"9-3\"\n", "nat.udp_ports: \"9-3\" is not a range"),
        ("[nat]\ncapacity = 0\n", "nat.capacity 0 out of range"),
        ("[nat.timeouts]\nudp = 0\n", "nat.timeouts.udp: a timeout must be at least 1 second"),
        ("[nat]\nexempt = [\"nonsense\"]\n", "nat.exempt: \"nonsense\" is not an IPv4 address or prefix"),
        ("[[nat.snat]]\nsrc = \"10.0.0.0/8\"\n", "nat.snat[0]: needs to = \"interface\" or a pool"),
        ("[[nat.snat]]\nsrc = \"10.0.0.0/8\"\nto = \"wan\"\n", "nat.snat[0].to: \"wan\""),
        (
            "[[nat.snat]]\nsrc = \"10.0.0.0/8\"\nto = \"interface\"\npool = [\"192.0.2.1\"]\n",
            "nat.snat[0]: `to` and `pool` are exclusive",
        ),
        ("[[nat.dnat]]\nexternal = \"192.0.2.1\"\nproto = \"gre\"\nbackends = []\n", "nat.dnat[0].proto: \"gre\""),
        (
            "[[nat.dnat]]\nexternal = \"192.0.2.1\"\nproto = \"tcp\"\nport = 80\nbackends = [\"10.0.0.1:x\"]\n",
            "nat.dnat[0].backends: \"10.0.0.1:x\": bad port",
        ),
        (
            "[nat]\ninside = [\"p0\"]\noutside = [\"p1\"]\n[[nat.dnat]]\nexternal = \"192.0.2.1\"\nproto = \"tcp\"\nbackends = [\"10.0.0.1\"]\n",
            "nat: dnat rule 0: a protocol needs a port",
        ),
        (
            "[nat]\ninside = [\"p0\"]\noutside = [\"p1\"]\n[[nat.snat]]\nsrc = \"10.0.0.0/8\"\nto = \"interface\"\n",
            "no IPv4 address to masquerade as",
        ),
    ];
    for (extra, want) in cases {
        let text = if extra.contains("[[port]]") || extra.starts_with("# standalone") {
            extra.to_string()
        } else {
            format!("{PORTS}{extra}")
        };
        let e = error_of(&text);
        assert!(e.contains(want), "config:\n{text}\nerror: {e}\nwanted: {want}");
    }
}

#[test]
fn runtime_refuses_bad_plans_and_closes_what_it_opened() {
    let base = PORTS.to_string();
    let start_err = |extra: &str| {
        let spec = Config::parse(&format!("{base}{extra}")).and_then(|c| c.to_spec()).expect("parses");
        match Runtime::start(&spec) {
            Ok(_) => panic!("started with {extra}"),
            Err(e) => e.to_string(),
        }
    };
    assert!(start_err("[[worker]]\nrx = [\"p0:0\"]\n").contains("RX queue p1:0 is not polled by any worker"));
    assert!(start_err("[[worker]]\nrx = [\"p0:0\", \"p1:0\", \"p0:0\"]\n").contains("assigned to two workers"));
    assert!(start_err("[[worker]]\nrx = [\"p0:0\", \"p1:3\"]\n").contains("port p1 has no RX queue 3"));
    assert!(start_err("[[worker]]\nrx = [\"p0:0\", \"p1:0\", \"px:0\"]\n").contains("unknown port \"px\""));
    assert!(start_err("[dataplane]\ncores = [4096]\n").contains("core 4096 does not exist"));
    // Everything opened by the failed starts was closed: the wires are free.
    let spec = Config::parse(&base).and_then(|c| c.to_spec()).expect("parses");
    let rt = Runtime::start(&spec).expect("wires were released");
    rt.stop().expect("stop");
    let mut bad = Config::parse(&base).and_then(|c| c.to_spec()).expect("parses");
    bad.ports[1].config.driver = "warp".into();
    // Azure gateway needs an IPv4 subnet on the port.
    let azure = Config::parse(&base)
        .and_then(|mut c| {
            c.ports[0].azure_gateway = true;
            c.to_spec()
        })
        .expect("parses");
    let e = Runtime::start(&azure).err().expect("no subnet").to_string();
    assert!(e.contains("azure_gateway needs an IPv4 address"), "{e}");
    let e = Runtime::start(&bad).err().expect("unknown driver").to_string();
    assert!(e.contains("port p1: unknown port driver \"warp\""), "{e}");
}

#[test]
fn gateways_static_neighbours_vrfs_and_azure_load_and_start() {
    let text = r#"
[[port]]
name = "p0"
driver = "mem"
addresses = ["10.0.0.4/24", "2001:db8::4/64"]
azure_gateway = true
args = { wire = "cfg-az-0" }
[[port]]
name = "p1"
driver = "mem"
vrf = 1
addresses = ["10.2.0.1/24"]
args = { wire = "cfg-az-1" }
[[neighbor]]
port = "p1"
ip = "10.2.0.2"
mac = "02:00:00:00:02:02"
[[route]]
prefix = "0.0.0.0/0"
port = "p0"
via = "10.0.0.1"
[[route]]
vrf = 1
prefix = "10.1.0.0/16"
port = "p1"
via = "10.2.0.2"
[[route]]
prefix = "192.0.2.0/24"
action = "unreachable"
"#;
    let spec = Config::parse(text).and_then(|c| c.to_spec()).expect("valid");
    let rt = Runtime::start(&spec).expect("start");
    {
        let n = rt.neigh();
        let gw = n.get(ports::PortId(0), "10.0.0.1".parse().expect("a")).expect("azure gateway");
        assert_eq!(gw.mac, Some(dataplane::neigh::AZURE_GATEWAY_MAC));
        let v6 = n.get(ports::PortId(0), std::net::IpAddr::V6(dataplane::neigh::AZURE_GATEWAY_V6)).expect("v6 gw");
        assert_eq!(v6.mac, Some(dataplane::neigh::AZURE_GATEWAY_MAC));
        let st = n.get(ports::PortId(1), "10.2.0.2".parse().expect("a")).expect("static");
        assert_eq!(st.state, dataplane::neigh::NeighState::Static);
    }
    let l3 = rt.l3();
    assert_eq!(l3.port_vrf(ports::PortId(1)), Some(dataplane::l3::VrfId(1)));
    // VRF 0: default, unreachable, connected + local of p0 (v4 and v6).
    assert_eq!(l3.route_count(dataplane::l3::VrfId(0)), Some((4, 2)));
    // VRF 1: the gateway route and p1's connected + local.
    assert_eq!(l3.route_count(dataplane::l3::VrfId(1)), Some((3, 0)));
    drop(l3);
    rt.stop().expect("stop");
}

#[test]
fn nat_config_translates_generator_flows() {
    let cfg = Config::load(&vrouter_tests::repo_root().join("configs/nat.toml")).expect("nat");
    let mut spec = cfg.to_spec().expect("spec");
    let gen = spec.generator.as_mut().expect("the NAT example has a generator");
    gen.config.rate_pps = 100_000;
    let flows = gen.config.flows as usize;
    assert_eq!(spec.nat.inside, vec!["p0".to_string()]);
    let rt = Runtime::start(&spec).expect("start");
    let t0 = std::time::Instant::now();
    let rx_valid = |rt: &Runtime| rt.snapshot().generator.map_or(0, |g| g.rx_valid);
    while t0.elapsed() < Duration::from_secs(20) && rx_valid(&rt) <= 20_000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = dataplane::tsc::secs(dataplane::tsc::now()) as u32;
    let (sessions, counters, by_src) = {
        let nat = rt.nat();
        let t = nat.table().expect("NAT on");
        let mut srcs = std::collections::BTreeSet::new();
        t.for_each(now, |s| {
            srcs.insert(std::net::Ipv4Addr::from(s.reply.dst));
        });
        (t.len(now), nat.counters(), srcs)
    };
    let report = rt.stop().expect("stop");
    let g = report.final_stats.generator.clone().expect("gen");
    // Translated frames still carry valid IPv4 checksums (the sink checks).
    assert!(g.rx_valid > 20_000 && g.rx_invalid == 0, "{g:?}");
    assert_eq!(sessions, flows, "one session per generator flow");
    let created = counters.iter().find(|c| c.0 == "sessions_created").map(|c| c.1);
    assert_eq!(created, Some(flows as u64), "{counters:?}");
    // Every flow leaves as p1's address.
    assert_eq!(by_src.into_iter().collect::<Vec<_>>(), vec![std::net::Ipv4Addr::new(192, 0, 2, 1)]);
    let nat_drops: Vec<_> =
        report.final_stats.workers.iter().flat_map(|w| &w.drops).filter(|d| d.0.starts_with("nat_")).collect();
    assert!(nat_drops.is_empty(), "{nat_drops:?}");
    assert!(report.leaks().is_empty(), "{:?}", report.leaks());
}
