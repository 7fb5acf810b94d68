//! The gRPC control API: `ApiService` + `serve_unix` against a fake snapshot
//! source, and the real `vrouterd` / `vrouterctl` binaries end to end.

use control::api::{self, ApiError, ApiService};
use dataplane::runtime::{PortSnapshot, StatsSnapshot, WorkerSnapshot};
use ports::{Capabilities, LinkState, MacAddr, PoolStats, PortId, PortInfo, QueueStats, RxQueueStats};
use proto::vrouter::v1::vrouter_client::VrouterClient;
use proto::vrouter::v1::{
    CapabilitiesRequest, DriverCounter, DropCounter, GetCountersRequest, GetCountersResponse, ListPortsRequest,
    PagePoolCounters, PortCounters, QueueCounters, WorkerCounters,
};
use std::error::Error;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

type TestResult = Result<(), Box<dyn Error>>;

fn pool(name: &str, n: u64) -> PoolStats {
    PoolStats {
        name: name.into(),
        buffers: 4096,
        buf_size: 2048,
        hugepages: false,
        fast_allocs: 100 + n,
        slow_allocs: 3 + n,
        recycle_direct: 90 + n,
        recycle_ring: 7 + n,
        empty: 1 + n,
        in_use: 6 + n,
    }
}

fn info(id: u16, name: &str, mac: MacAddr, queues: u16) -> PortInfo {
    PortInfo {
        id: PortId(id),
        name: name.into(),
        driver: "mem",
        mac,
        mtu: 1500,
        rx_queues: queues,
        tx_queues: queues,
        capabilities: Capabilities::default(),
    }
}

/// Two ports (p0 with two queue pairs and page pools, p1 with one queue pair,
/// no pool and no MAC) and two workers.
fn sample_snapshot() -> StatsSnapshot {
    StatsSnapshot {
        nat: None,
        ports: vec![
            PortSnapshot {
                info: info(0, "p0", MacAddr([2, 0, 0, 0, 0, 1]), 2),
                link: LinkState { up: true, speed_mbps: 0 },
                rx: vec![
                    RxQueueStats {
                        queue: QueueStats {
                            packets: 10,
                            bytes: 600,
                            drops: vec![("no_buffer", 2), ("oversize", 1)],
                            counters: vec![],
                        },
                        pool: pool("p0-rx0", 0),
                    },
                    RxQueueStats {
                        queue: QueueStats { packets: 20, bytes: 1200, drops: vec![("no_buffer", 0)], counters: vec![] },
                        pool: pool("p0-rx1", 1000),
                    },
                ],
                tx: vec![
                    QueueStats { packets: 5, bytes: 300, drops: vec![("ring_full", 4)], counters: vec![] },
                    QueueStats { packets: 6, bytes: 360, drops: vec![], counters: vec![] },
                ],
            },
            PortSnapshot {
                info: info(1, "p1", MacAddr::default(), 1),
                link: LinkState { up: false, speed_mbps: 0 },
                rx: vec![RxQueueStats {
                    queue: QueueStats { packets: 1, bytes: 64, drops: vec![], counters: vec![] },
                    pool: PoolStats::default(),
                }],
                tx: vec![QueueStats { packets: u64::MAX, bytes: 7, drops: vec![], counters: vec![] }],
            },
        ],
        workers: vec![
            WorkerSnapshot {
                id: 0,
                core: Some(0),
                rx_packets: 31,
                rx_bytes: 1864,
                tx_packets: 29,
                tx_bytes: 1700,
                polls: 1000,
                busy_polls: 10,
                busy_cycles: 123_456,
                drops: vec![("no_route", 1), ("ttl_exceeded", 0), ("malformed", 3)],
                punts: vec![("local", 2)],
                local: vec![("echo_reply", 2)],
            },
            WorkerSnapshot { id: 1, core: None, ..Default::default() },
        ],
        generator: None,
    }
}

/// What `GetCounters` must answer for `sample_snapshot()` (timestamp aside).
fn expected_counters() -> GetCountersResponse {
    let pool = |n: u64| PagePoolCounters {
        fast_alloc: 100 + n,
        slow_alloc: 3 + n,
        recycle_direct: 90 + n,
        recycle_ring: 7 + n,
        empty: 1 + n,
        in_use: 6 + n,
        size: 4096,
    };
    GetCountersResponse {
        nat: None,
        ports: vec![
            PortCounters {
                name: "p0".into(),
                driver: "mem".into(),
                link_up: true,
                mac: "02:00:00:00:00:01".into(),
                mtu: 1500,
                queues: vec![
                    QueueCounters {
                        queue_id: 0,
                        rx_packets: 10,
                        rx_bytes: 600,
                        tx_packets: 5,
                        tx_bytes: 300,
                        rx_drops: 3,
                        tx_drops: 4,
                        page_pool: Some(pool(0)),
                        driver: vec![
                            dc("rx.no_buffer", 2, true),
                            dc("rx.oversize", 1, true),
                            dc("tx.ring_full", 4, true),
                        ],
                    },
                    QueueCounters {
                        queue_id: 1,
                        rx_packets: 20,
                        rx_bytes: 1200,
                        tx_packets: 6,
                        tx_bytes: 360,
                        rx_drops: 0,
                        tx_drops: 0,
                        page_pool: Some(pool(1000)),
                        driver: vec![dc("rx.no_buffer", 0, true)],
                    },
                ],
            },
            PortCounters {
                name: "p1".into(),
                driver: "mem".into(),
                link_up: false,
                mac: String::new(),
                mtu: 1500,
                queues: vec![QueueCounters {
                    queue_id: 0,
                    rx_packets: 1,
                    rx_bytes: 64,
                    tx_packets: u64::MAX,
                    tx_bytes: 7,
                    rx_drops: 0,
                    tx_drops: 0,
                    page_pool: None,
                    driver: vec![],
                }],
            },
        ],
        workers: vec![
            WorkerCounters {
                id: 0,
                core: Some(0),
                rx_packets: 31,
                tx_packets: 29,
                busy_cycles: 123_456,
                drops: vec![
                    DropCounter { reason: "no_route".into(), count: 1 },
                    DropCounter { reason: "malformed".into(), count: 3 },
                ],
            },
            WorkerCounters { id: 1, core: None, rx_packets: 0, tx_packets: 0, busy_cycles: 0, drops: vec![] },
        ],
        timestamp_unix_nanos: 0,
    }
}

/// A snapshot source the test can switch off (as when the dataplane stops).
type Shared = Arc<Mutex<Option<StatsSnapshot>>>;

fn fake_service() -> (ApiService, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Some(sample_snapshot())));
    let src = shared.clone();
    (ApiService::new(move || src.lock().ok().and_then(|s| s.clone())), shared)
}

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ApiError>>,
}

impl Server {
    async fn shutdown(self) -> Result<(), Box<dyn Error>> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// Starts `serve_unix` at `path` and waits until it accepts connections (a
/// stale socket file may be there before).
async fn start(path: &Path, service: ApiService) -> Result<Server, Box<dyn Error>> {
    let (stop, stopped) = oneshot::channel::<()>();
    let p = path.to_owned();
    let task = tokio::spawn(async move {
        api::serve_unix(p, service, async {
            let _ = stopped.await;
        })
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        if task.is_finished() {
            task.await??;
            return Err("server stopped before binding".into());
        }
        if Instant::now() > deadline {
            return Err("server did not bind in time".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Server { stop, task })
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[tokio::test]
async fn serves_capabilities_counters_ports_and_health() -> TestResult {
    let dir = tempfile::tempdir()?;
    // The parent directory does not exist yet: it is created with mode 0700.
    let path = dir.path().join("run").join("vrouterd.sock");
    let (service, shared) = fake_service();
    let server = start(&path, service).await?;

    let sock_mode = std::fs::symlink_metadata(&path)?.permissions().mode() & 0o777;
    assert_eq!(sock_mode, 0o600, "socket mode {sock_mode:o}");
    let dir_mode = std::fs::metadata(dir.path().join("run"))?.permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "socket dir mode {dir_mode:o}");

    let channel = proto::connect_unix(&path).await?;
    let mut client = VrouterClient::new(channel.clone());

    let caps = client.capabilities(CapabilitiesRequest {}).await?.into_inner();
    assert_eq!(caps.api_version, proto::API_VERSION);
    assert_eq!(caps.daemon_version, env!("CARGO_PKG_VERSION"));
    let drivers: Vec<String> = ports::driver_names().into_iter().map(String::from).collect();
    assert_eq!(caps.port_drivers, drivers);
    assert!(caps.port_drivers.iter().any(|d| d == "mem"));
    assert!(caps.features.iter().any(|f| f == "counters"), "{:?}", caps.features);

    // Every field of the snapshot is mapped.
    let before = now_nanos();
    let mut counters = client.get_counters(GetCountersRequest { ports: vec![] }).await?.into_inner();
    let after = now_nanos();
    assert!((before..=after).contains(&counters.timestamp_unix_nanos), "timestamp {}", counters.timestamp_unix_nanos);
    counters.timestamp_unix_nanos = 0;
    assert_eq!(counters, expected_counters());

    // Port filter: only the named ports, workers in full.
    let only_p1 = client.get_counters(GetCountersRequest { ports: vec!["p1".into()] }).await?.into_inner();
    assert_eq!(only_p1.ports, vec![expected_counters().ports[1].clone()]);
    assert_eq!(only_p1.workers, expected_counters().workers);
    let both = client.get_counters(GetCountersRequest { ports: vec!["p1".into(), "p0".into()] }).await?.into_inner();
    let names: Vec<&str> = both.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p0", "p1"], "daemon port order is kept");

    let err = client
        .get_counters(GetCountersRequest { ports: vec!["p0".into(), "eth9".into()] })
        .await
        .err()
        .ok_or("unknown port accepted")?;
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("\"eth9\""), "{}", err.message());
    assert!(err.message().contains("p0, p1"), "{}", err.message());

    let ports = client.list_ports(ListPortsRequest {}).await?.into_inner().ports;
    assert_eq!(ports.len(), 2);
    assert_eq!(
        (ports[0].name.as_str(), ports[0].driver.as_str(), ports[0].link_up, ports[0].mac.as_str()),
        ("p0", "mem", true, "02:00:00:00:00:01")
    );
    assert_eq!((ports[0].mtu, ports[0].rx_queues, ports[0].tx_queues), (1500, 2, 2));
    assert_eq!((ports[1].name.as_str(), ports[1].link_up, ports[1].mac.as_str()), ("p1", false, ""));

    let mut health = HealthClient::new(channel);
    for service in ["", proto::SERVICE_NAME] {
        let h = health.check(HealthCheckRequest { service: service.into() }).await?.into_inner();
        assert_eq!(h.status(), ServingStatus::Serving, "service {service:?}");
    }

    // A dataplane that has gone away is UNAVAILABLE, not a crash.
    *shared.lock().map_err(|_| "poisoned")? = None;
    let err = client.list_ports(ListPortsRequest {}).await.err().ok_or("no dataplane but ListPorts succeeded")?;
    assert_eq!(err.code(), tonic::Code::Unavailable);

    drop(client);
    drop(health);
    server.shutdown().await?;
    assert!(!path.exists(), "socket file left behind");
    Ok(())
}

#[tokio::test]
async fn refuses_a_live_socket_and_replaces_a_stale_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.sock");

    // Stale: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&path)?);
    assert!(path.exists());
    let first = start(&path, fake_service().0).await?;
    let mut client = VrouterClient::new(proto::connect_unix(&path).await?);
    client.capabilities(CapabilitiesRequest {}).await?;

    // Live: a second server on the same path fails clearly and leaves the
    // first one alone.
    let err = api::serve_unix(&path, fake_service().0, async {}).await.err().ok_or("second server started")?;
    assert!(matches!(err, ApiError::AlreadyListening(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("another vrouterd is listening on {}", path.display())), "{msg}");
    assert!(path.exists());
    client.capabilities(CapabilitiesRequest {}).await?;
    let mut fresh = VrouterClient::new(proto::connect_unix(&path).await?);
    fresh.capabilities(CapabilitiesRequest {}).await?;

    drop(client);
    drop(fresh);
    first.shutdown().await?;
    assert!(!path.exists());
    Ok(())
}

#[tokio::test]
async fn refuses_to_replace_a_file_that_is_not_a_socket() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("important.txt");
    std::fs::write(&path, "keep me")?;
    let err = api::serve_unix(&path, fake_service().0, async {}).await.err().ok_or("regular file replaced")?;
    assert!(matches!(err, ApiError::NotASocket(_)), "{err:?}");
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path)?, "keep me");
    Ok(())
}

#[test]
fn default_socket_path_is_absolute() {
    let p = api::default_socket_path();
    assert!(p.is_absolute(), "{}", p.display());
    assert!(p.to_string_lossy().contains("vrouterd"), "{}", p.display());
}

// ---- end to end: the real binaries ----

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Kills the daemon if the test fails half-way.
struct Daemon(Option<std::process::Child>);

impl Daemon {
    /// Starts `vrouterd --config <repo>/config --duration secs --socket sock`
    /// and waits (at most 20 s) for its socket.
    fn start(config: &str, secs: u32, sock: &std::path::Path) -> Result<Daemon, Box<dyn Error>> {
        let cfg = repo_root().join(config);
        let mut daemon = Daemon(Some(
            std::process::Command::new(env!("CARGO_BIN_EXE_vrouterd"))
                .args(["--config", cfg.to_str().ok_or("repo path is not UTF-8")?])
                .args(["--duration", &secs.to_string(), "--socket", sock.to_str().ok_or("temp path is not UTF-8")?])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?,
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sock.exists() {
            if let Some(c) = daemon.0.as_mut() {
                if let Some(st) = c.try_wait()? {
                    return Err(format!("vrouterd exited early with {st}").into());
                }
            }
            if Instant::now() > deadline {
                return Err("vrouterd did not create its socket".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ctl(args: &[&str]) -> Result<Out, Box<dyn Error>> {
    let o =
        std::process::Command::new(env!("CARGO_BIN_EXE_vrouterctl")).args(args).current_dir(repo_root()).output()?;
    Ok(Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

fn port_sum(counters: &serde_json::Value, port: &str, field: &str) -> u64 {
    counters["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == port)
        .flat_map(|p| p["queues"].as_array().into_iter().flatten())
        .filter_map(|q| q[field].as_u64())
        .sum()
}

#[test]
fn end_to_end_vrouterd_and_vrouterctl() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("s.sock");
    let sock_s = sock.to_str().ok_or("temp path is not UTF-8")?;
    let demo = repo_root().join("configs/demo.toml");
    let mut daemon = Daemon::start("configs/demo.toml", 6, &sock)?;

    // Packets move: rx on p0 and tx on p1 (retry while the generator warms up).
    let deadline = Instant::now() + Duration::from_secs(4);
    let counters = loop {
        let o = ctl(&["--socket", sock_s, "--json", "show", "counters"])?;
        assert_eq!(o.code, Some(0), "show counters --json failed: {}", o.stderr);
        let counters: serde_json::Value = serde_json::from_str(&o.stdout)?;
        let moving = port_sum(&counters, "p0", "rx_packets") > 0 && port_sum(&counters, "p1", "tx_packets") > 0;
        if moving || Instant::now() > deadline {
            break counters;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(port_sum(&counters, "p0", "rx_packets") > 0, "no rx on p0: {counters}");
    assert!(port_sum(&counters, "p1", "tx_packets") > 0, "no tx on p1: {counters}");
    assert!(counters["workers"][0]["rx_packets"].as_u64().unwrap_or(0) > 0, "{counters}");
    assert!(counters["ports"][0]["queues"][0]["page_pool"]["size"].as_u64().unwrap_or(0) > 0, "{counters}");
    assert!(counters["timestamp_unix_nanos"].as_u64().unwrap_or(0) > 0, "{counters}");

    let text = ctl(&["--socket", sock_s, "show", "counters"])?;
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    for needle in ["PORT", "RX PKTS", "p0", "p1", "FAST ALLOC", "WORKER", "CYCLES/PKT"] {
        assert!(text.stdout.contains(needle), "{needle:?} missing from:\n{}", text.stdout);
    }
    let p1_line = text.stdout.lines().find(|l| l.starts_with("p1 ")).ok_or("no p1 row")?;
    let tx_pkts: u64 = p1_line.split_whitespace().nth(6).ok_or("short p1 row")?.parse()?;
    assert!(tx_pkts > 0, "{p1_line}");

    // `--json` after the subcommand works too; the filter keeps one port.
    let one = ctl(&["--socket", sock_s, "show", "counters", "--port", "p1", "--json"])?;
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    let one: serde_json::Value = serde_json::from_str(&one.stdout)?;
    assert_eq!(one["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["ports"][0]["name"], "p1");

    let missing = ctl(&["--socket", sock_s, "show", "counters", "--port", "nope"])?;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("NOT_FOUND") && missing.stderr.contains("\"nope\""), "{}", missing.stderr);

    let caps = ctl(&["--socket", sock_s, "capabilities"])?;
    assert_eq!(caps.code, Some(0), "{}", caps.stderr);
    assert!(caps.stdout.contains(proto::API_VERSION), "{}", caps.stdout);
    assert!(caps.stdout.contains("mem"), "{}", caps.stdout);
    let caps_json: serde_json::Value =
        serde_json::from_str(&ctl(&["--socket", sock_s, "--json", "capabilities"])?.stdout)?;
    assert_eq!(caps_json["api_version"], proto::API_VERSION);

    let ports = ctl(&["--socket", sock_s, "show", "ports"])?;
    assert_eq!(ports.code, Some(0), "{}", ports.stderr);
    assert!(
        ports.stdout.contains("02:00:00:00:00:01") && ports.stdout.contains("02:00:00:00:01:01"),
        "{}",
        ports.stdout
    );

    // A second daemon on the same socket refuses to start.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_vrouterd"))
        .args(["--config", demo.to_str().ok_or("repo path is not UTF-8")?, "--duration", "1", "--socket", sock_s])
        .output()?;
    assert!(!second.status.success());
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(second_err.contains("another vrouterd is listening on"), "{second_err}");
    assert!(sock.exists(), "the second daemon removed the live socket");

    // The daemon stops by itself after --duration and removes its socket.
    let mut child = daemon.0.take().ok_or("daemon gone")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("vrouterd did not stop after --duration".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vrouterd failed: {stderr}");
    assert!(stderr.contains("control API listening"), "{stderr}");
    assert!(!sock.exists(), "socket left behind");
    Ok(())
}

#[test]
fn vrouterctl_config_check_and_connect_errors() -> TestResult {
    let ok = ctl(&["config", "check", "configs/demo.toml"])?;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert_eq!(ok.stdout.trim(), "configs/demo.toml: ok (2 ports, 1 workers, 1 routes)");

    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[port]]\nname = \"p0\"\ndriver = \"mem\"\nargs = { wire = \"w\" }\n\n\
         [[route]]\nprefix = \"10.1.0.0/16\"\nport = \"p9\"\nneighbor_mac = \"02:00:00:00:00:02\"\n",
    )?;
    let bad = ctl(&["config", "check", broken.to_str().ok_or("temp path is not UTF-8")?])?;
    assert_eq!(bad.code, Some(1), "{}", bad.stdout);
    assert!(bad.stderr.contains("broken.toml") && bad.stderr.contains("unknown port \"p9\""), "{}", bad.stderr);

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[[port]]\nname = \"p0\"\ndrivr = \"mem\"\n")?;
    let bad = ctl(&["config", "check", typo.to_str().ok_or("temp path is not UTF-8")?])?;
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("drivr"), "{}", bad.stderr);

    let absent = ctl(&["--socket", "/nonexistent/x.sock", "show", "ports"])?;
    assert_eq!(absent.code, Some(1));
    assert!(
        absent.stderr.contains("cannot connect to vrouterd at /nonexistent/x.sock")
            && absent.stderr.contains("is vrouterd running? use --socket"),
        "{}",
        absent.stderr
    );
    Ok(())
}

fn dc(name: &str, value: u64, drop: bool) -> DriverCounter {
    DriverCounter { name: name.into(), value, drop }
}

#[test]
fn nat_sessions_and_counters_through_vrouterctl() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("s.sock");
    let sock_s = sock.to_str().ok_or("temp path is not UTF-8")?;
    let mut daemon = Daemon::start("configs/nat.toml", 8, &sock)?;
    // The generator's 1024 flows each get a session; the maintenance
    // thread's count catches up within a pass.
    let deadline = Instant::now() + Duration::from_secs(6);
    let nat = loop {
        let o = ctl(&["--socket", sock_s, "--json", "show", "counters"])?;
        assert_eq!(o.code, Some(0), "{}", o.stderr);
        let c: serde_json::Value = serde_json::from_str(&o.stdout)?;
        let nat = c["nat"].clone();
        if nat["live_sessions"].as_u64() == Some(1024) || Instant::now() > deadline {
            break nat;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(nat["live_sessions"].as_u64(), Some(1024), "{nat}");
    assert_eq!(nat["capacity"].as_u64(), Some(262_144), "{nat}");
    assert!(nat["bytes_per_session"].as_u64().is_some_and(|b| (64..=200).contains(&b)), "{nat}");
    assert_eq!(nat["counters"]["sessions_created"].as_u64(), Some(1024), "{nat}");
    assert!(nat["counters"]["translated"].as_u64().unwrap_or(0) > 0, "{nat}");
    let text = ctl(&["--socket", sock_s, "show", "counters"])?;
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    for needle in ["NAT", "live_sessions", "sessions_created"] {
        assert!(text.stdout.contains(needle), "{needle:?} missing from:\n{}", text.stdout);
    }
    let child = daemon.0.take().ok_or("daemon gone")?;
    let _ = child.wait_with_output()?;
    Ok(())
}
