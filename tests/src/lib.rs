//! Helpers shared by vrouter's end-to-end tests and benchmarks.

use dataplane::runtime::{GenSpec, PortSpec, RouteSpec, RouteTarget, RuntimeSpec, WorkerPlan};
use dataplane::testgen::GenConfig;
use dataplane::IdlePolicy;
use ports::{HugepagePolicy, MacAddr, PortConfig, PortId};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The repository root (for configs/ and ../shared/data).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub const R0_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const R1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
pub const SINK_MAC: MacAddr = MacAddr([0x02, 0x47, 0x45, 0x4e, 0, 2]);

/// A mem port config on `wire`.
pub fn mem_port(name: &str, wire: &str, queues: u16, txq: u16, mac: Option<MacAddr>) -> PortConfig {
    let mut args = BTreeMap::new();
    args.insert("wire".into(), wire.into());
    PortConfig {
        id: PortId(0),
        name: name.into(),
        driver: "mem".into(),
        rx_queues: queues,
        tx_queues: txq,
        rx_ring: 1024,
        tx_ring: 1024,
        mtu: 1500,
        mac,
        pool_buffers: 2048,
        hugepages: HugepagePolicy::Prefer,
        args,
    }
}

/// Two mem ports (p0 on `{tag}-in`, p1 on `{tag}-out`), a route
/// 10.1.0.0/16 → p1, `workers` workers spread over `queues` RX queues per
/// port, and optionally the generator on the far ends.
pub fn two_port_spec(tag: &str, workers: usize, queues: u16, gen: Option<GenConfig>) -> RuntimeSpec {
    let (win, wout) = (format!("{tag}-in"), format!("{tag}-out"));
    let ports = vec![
        PortSpec {
            config: mem_port("p0", &win, queues, workers as u16, Some(R0_MAC)),
            addrs: vec![],
            vrf: 0,
            azure_gateway: false,
        },
        PortSpec {
            config: mem_port("p1", &wout, queues, workers as u16, Some(R1_MAC)),
            addrs: vec![],
            vrf: 0,
            azure_gateway: false,
        },
    ];
    let cores: Vec<Option<usize>> = vec![None; workers];
    let plans: Vec<WorkerPlan> = dataplane::runtime::auto_plan(&ports, &cores);
    let generator = gen.map(|config| GenSpec {
        source: Some(mem_port("gen-src", &win, 1, 1, Some(MacAddr([0x02, 0x47, 0x45, 0x4e, 0, 1])))),
        sink: Some(mem_port("gen-sink", &wout, 1, 1, Some(SINK_MAC))),
        config,
        target_port: Some("p0".into()),
        core: None,
    });
    RuntimeSpec {
        ports,
        workers: plans,
        routes: vec![RouteSpec {
            vrf: 0,
            addr: "10.1.0.0".parse().expect("literal"),
            len: 16,
            target: RouteTarget::Forward { port: "p1".into(), mac: SINK_MAC },
        }],
        burst: 32,
        idle: IdlePolicy::Poll,
        generator,
        l3: Default::default(),
        neighbors: Vec::new(),
        neigh: Default::default(),
        acl: Default::default(),
        nat: Default::default(),
    }
}

/// A `--name value` command-line option of a benchmark binary, or
/// `default`; exits with a message when the value does not parse.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) => v,
            None => {
                eprintln!("{name} needs a value");
                std::process::exit(2)
            }
        },
        None => default,
    }
}

/// How long tests wait for frames that should arrive.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long tests listen for frames that should not arrive.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(200);

/// The far end of a mem wire, playing a host next to the router.
pub struct Peer {
    pub port: Box<dyn ports::Port>,
}

impl Peer {
    /// `n` frames, waiting up to [`PATIENCE`].
    pub fn recv(&self, n: usize) -> Vec<Vec<u8>> {
        self.recv_until(n, PATIENCE)
    }

    pub fn open(name: &str, wire: &str, mac: MacAddr) -> Peer {
        let port = ports::open_port(&mem_port(name, wire, 1, 1, Some(mac))).expect("peer port");
        port.start().expect("start");
        Peer { port }
    }

    pub fn send(&self, frames: &[Vec<u8>]) {
        let pool = self.port.rx_pool(ports::QueueId(0)).expect("pool");
        let mut tx = self.port.tx_queue(ports::QueueId(0)).expect("txq");
        let mut b = ports::PktBurst::new();
        for f in frames {
            let mut p = pool.alloc().expect("buf");
            assert!(p.copy_from(f));
            b.push(p).expect("room");
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        while !b.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the wire took no frames for {PATIENCE:?}");
            tx.tx_burst(&mut b);
        }
    }

    /// Frames received until `n` arrived or `limit` passed.
    pub fn recv_until(&self, n: usize, limit: std::time::Duration) -> Vec<Vec<u8>> {
        let mut rx = self.port.rx_queue(ports::QueueId(0)).expect("rxq");
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + limit;
        let mut b = ports::PktBurst::new();
        while got.len() < n && std::time::Instant::now() < deadline {
            rx.rx_burst(&mut b);
            got.extend(b.drain().map(|p| p.data().to_vec()));
        }
        got
    }

    /// Exactly `n` frames (waiting up to [`PATIENCE`]), then nothing more
    /// for [`QUIET`].
    pub fn expect(&self, n: usize) -> Vec<Vec<u8>> {
        let got = self.recv_until(n, PATIENCE);
        assert_eq!(got.len(), n, "frames received");
        let more = self.recv_until(usize::MAX, QUIET);
        assert!(more.is_empty(), "{} unexpected frames, first {:02x?}", more.len(), more.first());
        got
    }
}

/// Running commands in tests (ip, ping, ethtool, ...): every failure
/// carries the command line, the exit status and the output.
pub mod cmd {
    use std::process::{Command, Output, Stdio};

    pub fn describe(cmd: &str, args: &[&str]) -> String {
        std::iter::once(cmd).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
    }

    /// Runs `cmd args`; Err carries the command line, exit status and output.
    pub fn run(cmd: &str, args: &[&str]) -> Result<Output, String> {
        let out = Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`{}`: cannot run {cmd}: {e}", describe(cmd, args)))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` failed ({}):\nstdout: {}\nstderr: {}",
                describe(cmd, args),
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out)
    }

    /// Runs `cmd args` and fails the test if it does not succeed.
    pub fn must(cmd: &str, args: &[&str]) -> Output {
        let r = run(cmd, args);
        assert!(r.is_ok(), "{}", r.as_ref().err().map_or("", String::as_str));
        r.expect("checked above")
    }

    /// Runs `args` inside namespace `ns`.
    pub fn in_ns(ns: &str, args: &[&str]) -> Result<Output, String> {
        let mut v = vec!["netns", "exec", ns];
        v.extend_from_slice(args);
        run("ip", &v)
    }

    pub fn must_in_ns(ns: &str, args: &[&str]) -> Output {
        let r = in_ns(ns, args);
        assert!(r.is_ok(), "{}", r.as_ref().err().map_or("", String::as_str));
        r.expect("checked above")
    }

    /// Fails with a clear message if `tool` cannot be run.
    pub fn require(tool: &str, version_arg: &str, package: &str) {
        let ok = Command::new(tool)
            .arg(version_arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(ok, "this test needs `{tool}` on PATH (Debian package {package}); tests/run-all.sh should install it");
    }
}

/// Reading a running router's counters in tests.
pub mod snap {
    use dataplane::runtime::{PortSnapshot, StatsSnapshot};

    /// Every port's and worker's counters on a few lines, for failure messages.
    pub fn counters(s: &StatsSnapshot) -> String {
        let mut out = String::new();
        for p in &s.ports {
            out += &format!(
                "\n  {}: rx {} tx {} driver drops {} link {}",
                p.info.name,
                p.rx_packets(),
                p.tx_packets(),
                p.driver_drops(),
                p.link.up
            );
            for (name, v) in p.rx.iter().flat_map(|q| &q.queue.drops).chain(p.tx.iter().flat_map(|q| &q.drops)) {
                if *v > 0 {
                    out += &format!(" {name}={v}");
                }
            }
        }
        for w in &s.workers {
            out += &format!("\n  worker {}: drops {:?} punts {:?} local {:?}", w.id, w.drops, w.punts, w.local);
        }
        out
    }

    pub fn port_named<'a>(s: &'a StatsSnapshot, name: &str) -> &'a PortSnapshot {
        s.ports.iter().find(|p| p.info.name == name).expect("port in the snapshot")
    }

    /// How often the fast path answered with `event` (e.g. "echo_reply").
    pub fn local_count(s: &StatsSnapshot, event: &str) -> u64 {
        s.workers.iter().flat_map(|w| &w.local).filter(|e| e.0 == event).map(|e| e.1).sum()
    }
}

/// Routers for the namespace tests.
pub mod router {
    use dataplane::runtime::{auto_plan, PortSpec, RuntimeSpec};
    use dataplane::IdlePolicy;
    use ports::{HugepagePolicy, MacAddr, PortConfig, PortId};
    use std::net::IpAddr;
    use std::time::Duration;

    /// A port of `driver` on Linux interface `ifname` (`tap`, `afpacket`)
    /// with (RX, TX) `queues` and the router's address `addr`/24.
    pub fn iface_port(
        name: &str,
        driver: &str,
        ifname: &str,
        mac: MacAddr,
        queues: (u16, u16),
        addr: &str,
    ) -> PortSpec {
        PortSpec {
            config: PortConfig {
                id: PortId(0),
                name: name.into(),
                driver: driver.into(),
                rx_queues: queues.0,
                tx_queues: queues.1,
                rx_ring: 1024,
                tx_ring: 512,
                mtu: 1500,
                mac: Some(mac),
                pool_buffers: 1024,
                hugepages: HugepagePolicy::Prefer,
                args: [("ifname".to_string(), ifname.to_string())].into_iter().collect(),
            },
            addrs: vec![(addr.parse::<IpAddr>().expect("address literal"), 24)],
            vrf: 0,
            azure_gateway: false,
        }
    }

    /// `workers` unpinned workers over the ports' RX queues, sleeping
    /// briefly when idle (several routers share a two-core machine with
    /// the kernel's own work in these tests); no routes.
    pub fn light_spec(ports: Vec<PortSpec>, workers: usize) -> RuntimeSpec {
        RuntimeSpec {
            workers: auto_plan(&ports, &vec![None; workers]),
            ports,
            routes: Vec::new(),
            burst: 32,
            idle: IdlePolicy::Sleep(Duration::from_micros(50)),
            generator: None,
            l3: Default::default(),
            neighbors: Vec::new(),
            neigh: Default::default(),
            acl: Default::default(),
            nat: Default::default(),
        }
    }
}
