//! vrouterctl: the vrouter command-line client. Everything but `config
//! check` talks to vrouterd over its gRPC control API (a Unix socket).

use clap::{Parser, Subcommand};
use control::api;
use control::config::Config;
use proto::vrouter::v1::vrouter_client::VrouterClient;
use proto::vrouter::v1::{
    CapabilitiesRequest, CapabilitiesResponse, GetCountersRequest, GetCountersResponse, ListPortsRequest,
    ListPortsResponse, PagePoolCounters, PortCounters, PortInfo, QueueCounters, WorkerCounters,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::Channel;

/// How long one gRPC call (or the connection) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(name = "vrouterctl", version, about = "vrouter control client", propagate_version = true)]
struct Args {
    /// vrouterd's API socket [default: /run/vrouter/vrouterd.sock as root,
    /// else $XDG_RUNTIME_DIR/vrouterd.sock or /tmp/vrouterd-$UID.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the daemon's API version, version, drivers and features.
    Capabilities,
    /// Show daemon state.
    #[command(subcommand)]
    Show(Show),
    /// Work with configuration files (no daemon needed).
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Subcommand, Debug)]
enum Show {
    /// Ports: driver, link, MAC, MTU, queues.
    Ports,
    /// Per-port/queue and per-worker counters.
    Counters {
        /// Only this port (repeatable; default: all ports).
        #[arg(long = "port", value_name = "NAME")]
        ports: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Load and validate a configuration file.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// A failure, already phrased for the user.
struct Failure(String);

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Command::Config(ConfigCmd::Check { file }) => config_check(file, args.json),
        _ => run_remote(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("vrouterctl: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `config check FILE`.
fn config_check(file: &Path, json: bool) -> Result<(), Failure> {
    // `load` errors already name the file; `to_spec` errors do not.
    let cfg = Config::load(file).map_err(|e| Failure(e.0))?;
    let spec = cfg.to_spec().map_err(|e| Failure(format!("{}: {e}", file.display())))?;
    let (p, w, r) = (spec.ports.len(), spec.workers.len(), spec.routes.len());
    if json {
        print_json(&serde_json::json!({ "file": file, "ok": true, "ports": p, "workers": w, "routes": r }))
    } else {
        println!("{}: ok ({p} ports, {w} workers, {r} routes)", file.display());
        Ok(())
    }
}

fn run_remote(args: &Args) -> Result<(), Failure> {
    let socket = args.socket.clone().unwrap_or_else(api::default_socket_path);
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the async runtime: {e}")))?;
    tokio_rt.block_on(async {
        let channel = connect(&socket).await?;
        let mut client = VrouterClient::new(channel);
        match &args.command {
            Command::Capabilities => {
                let caps = call("Capabilities", client.capabilities(CapabilitiesRequest {})).await?;
                output(args.json, &CapabilitiesJson::from(&caps), || capabilities_text(&caps))
            }
            Command::Show(Show::Ports) => {
                let ports = call("ListPorts", client.list_ports(ListPortsRequest {})).await?;
                output(args.json, &PortsJson::from(&ports), || ports_text(&ports))
            }
            Command::Show(Show::Counters { ports }) => {
                let req = GetCountersRequest { ports: ports.clone() };
                let c = call("GetCounters", client.get_counters(req)).await?;
                output(args.json, &CountersJson::from(&c), || counters_text(&c))
            }
            Command::Config(_) => Ok(()),
        }
    })
}

/// "a: b: c" from an error and its sources (tonic's transport errors say
/// little at the top level).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            let _ = write!(s, ": {msg}");
        }
        src = inner.source();
    }
    s
}

async fn connect(socket: &Path) -> Result<Channel, Failure> {
    let fail = |why: String| {
        Failure(format!(
            "cannot connect to vrouterd at {}: {why} (is vrouterd running? use --socket)",
            socket.display()
        ))
    };
    match tokio::time::timeout(CALL_TIMEOUT, proto::connect_unix(socket)).await {
        Ok(Ok(channel)) => Ok(channel),
        // The top level only says "transport error"; the cause is the news.
        Ok(Err(e)) => Err(fail(std::error::Error::source(&e).map_or_else(|| e.to_string(), error_chain))),
        Err(_) => Err(fail(format!("no answer within {CALL_TIMEOUT:?}"))),
    }
}

/// The canonical upper-case name of a gRPC status code.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Runs one RPC with a timeout; errors become "RPC failed: CODE: message".
async fn call<T>(
    rpc: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => {
            let msg = if status.message().is_empty() { "(no message)" } else { status.message() };
            Err(Failure(format!("{rpc} failed: {}: {msg}", code_name(status.code()))))
        }
        Err(_) => Err(Failure(format!("{rpc} failed: no answer from vrouterd within {CALL_TIMEOUT:?}"))),
    }
}

fn print_json(v: &impl Serialize) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Failure(format!("cannot encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

fn output(json: bool, v: &impl Serialize, text: impl FnOnce() -> String) -> Result<(), Failure> {
    if json {
        print_json(v)
    } else {
        print!("{}", text());
        Ok(())
    }
}

// ---- text output ----

/// An aligned table; `align` has one letter per column: `l`eft (text) or
/// `r`ight (numbers).
fn table(header: &[&str], rows: &[Vec<String>], align: &str) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, ((c, w), a)) in r.iter().zip(&width).zip(align.chars().chain(std::iter::repeat('l'))).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if a == 'l' {
                let _ = write!(line, "{c:<w$}");
            } else {
                let _ = write!(line, "{c:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn link(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.into()
    }
}

fn capabilities_text(c: &CapabilitiesResponse) -> String {
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    format!(
        "api version     {}\ndaemon version  {}\nport drivers    {}\nfeatures        {}\n",
        c.api_version,
        c.daemon_version,
        list(&c.port_drivers),
        list(&c.features)
    )
}

fn ports_text(p: &ListPortsResponse) -> String {
    let rows: Vec<Vec<String>> = p
        .ports
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.driver.clone(),
                link(p.link_up).into(),
                or_dash(&p.mac),
                p.mtu.to_string(),
                p.rx_queues.to_string(),
                p.tx_queues.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "DRIVER", "LINK", "MAC", "MTU", "RXQ", "TXQ"], &rows, "llllrrr")
}

fn cycles_per_packet(w: &WorkerCounters) -> String {
    if w.rx_packets == 0 {
        "-".into()
    } else {
        format!("{:.0}", w.busy_cycles as f64 / w.rx_packets as f64)
    }
}

fn counters_text(c: &GetCountersResponse) -> String {
    let mut queues = Vec::new();
    let mut pools = Vec::new();
    let mut driver = Vec::new();
    for p in &c.ports {
        for q in &p.queues {
            for d in q.driver.iter().filter(|d| d.value != 0) {
                driver.push(vec![
                    p.name.clone(),
                    q.queue_id.to_string(),
                    d.name.clone(),
                    d.value.to_string(),
                    if d.drop { "drop".into() } else { String::new() },
                ]);
            }
            queues.push(vec![
                p.name.clone(),
                link(p.link_up).into(),
                q.queue_id.to_string(),
                q.rx_packets.to_string(),
                q.rx_bytes.to_string(),
                q.rx_drops.to_string(),
                q.tx_packets.to_string(),
                q.tx_bytes.to_string(),
                q.tx_drops.to_string(),
            ]);
            if let Some(pp) = &q.page_pool {
                pools.push(vec![
                    p.name.clone(),
                    q.queue_id.to_string(),
                    pp.fast_alloc.to_string(),
                    pp.slow_alloc.to_string(),
                    pp.recycle_direct.to_string(),
                    pp.recycle_ring.to_string(),
                    pp.empty.to_string(),
                    pp.in_use.to_string(),
                    pp.size.to_string(),
                ]);
            }
        }
    }
    let workers: Vec<Vec<String>> = c
        .workers
        .iter()
        .map(|w| {
            let drops: Vec<String> = w.drops.iter().map(|d| format!("{}={}", d.reason, d.count)).collect();
            vec![
                w.id.to_string(),
                w.core.map_or("-".into(), |c| c.to_string()),
                w.rx_packets.to_string(),
                w.tx_packets.to_string(),
                cycles_per_packet(w),
                if drops.is_empty() { "-".into() } else { drops.join(" ") },
            ]
        })
        .collect();
    let mut out = table(
        &["PORT", "LINK", "QUEUE", "RX PKTS", "RX BYTES", "RX DROPS", "TX PKTS", "TX BYTES", "TX DROPS"],
        &queues,
        "llrrrrrrr",
    );
    if !pools.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &["POOL", "QUEUE", "FAST ALLOC", "SLOW ALLOC", "RECYCLE DIRECT", "RECYCLE RING", "EMPTY", "IN USE", "SIZE"],
            &pools,
            "lrrrrrrrr",
        ));
    }
    if !driver.is_empty() {
        out.push('\n');
        out.push_str(&table(&["PORT", "QUEUE", "DRIVER COUNTER", "VALUE", ""], &driver, "lrlrl"));
    }
    out.push('\n');
    out.push_str(&table(&["WORKER", "CORE", "RX PKTS", "TX PKTS", "CYCLES/PKT", "DROPS"], &workers, "rrrrrl"));
    if let Some(n) = &c.nat {
        let mut rows = vec![
            vec!["live_sessions".to_string(), n.live_sessions.to_string()],
            vec!["capacity".to_string(), n.capacity.to_string()],
            vec!["bytes_per_session".to_string(), n.bytes_per_session.to_string()],
        ];
        rows.extend(n.counters.iter().map(|d| vec![d.name.clone(), d.value.to_string()]));
        out.push('\n');
        out.push_str(&table(&["NAT", "VALUE"], &rows, "lr"));
    }
    out
}

// ---- JSON output: serializable mirrors of the proto messages ----

#[derive(Serialize)]
struct CapabilitiesJson<'a> {
    api_version: &'a str,
    daemon_version: &'a str,
    port_drivers: &'a [String],
    features: &'a [String],
}

impl<'a> From<&'a CapabilitiesResponse> for CapabilitiesJson<'a> {
    fn from(c: &'a CapabilitiesResponse) -> Self {
        CapabilitiesJson {
            api_version: &c.api_version,
            daemon_version: &c.daemon_version,
            port_drivers: &c.port_drivers,
            features: &c.features,
        }
    }
}

#[derive(Serialize)]
struct PortInfoJson<'a> {
    name: &'a str,
    driver: &'a str,
    link_up: bool,
    mac: &'a str,
    mtu: u32,
    rx_queues: u32,
    tx_queues: u32,
}

impl<'a> From<&'a PortInfo> for PortInfoJson<'a> {
    fn from(p: &'a PortInfo) -> Self {
        PortInfoJson {
            name: &p.name,
            driver: &p.driver,
            link_up: p.link_up,
            mac: &p.mac,
            mtu: p.mtu,
            rx_queues: p.rx_queues,
            tx_queues: p.tx_queues,
        }
    }
}

#[derive(Serialize)]
struct PortsJson<'a> {
    ports: Vec<PortInfoJson<'a>>,
}

impl<'a> From<&'a ListPortsResponse> for PortsJson<'a> {
    fn from(r: &'a ListPortsResponse) -> Self {
        PortsJson { ports: r.ports.iter().map(PortInfoJson::from).collect() }
    }
}

#[derive(Serialize)]
struct PagePoolJson {
    fast_alloc: u64,
    slow_alloc: u64,
    recycle_direct: u64,
    recycle_ring: u64,
    empty: u64,
    in_use: u64,
    size: u64,
}

impl From<&PagePoolCounters> for PagePoolJson {
    fn from(p: &PagePoolCounters) -> Self {
        PagePoolJson {
            fast_alloc: p.fast_alloc,
            slow_alloc: p.slow_alloc,
            recycle_direct: p.recycle_direct,
            recycle_ring: p.recycle_ring,
            empty: p.empty,
            in_use: p.in_use,
            size: p.size,
        }
    }
}

#[derive(Serialize)]
struct QueueJson {
    queue_id: u32,
    rx_packets: u64,
    rx_bytes: u64,
    rx_drops: u64,
    tx_packets: u64,
    tx_bytes: u64,
    tx_drops: u64,
    page_pool: Option<PagePoolJson>,
}

impl From<&QueueCounters> for QueueJson {
    fn from(q: &QueueCounters) -> Self {
        QueueJson {
            queue_id: q.queue_id,
            rx_packets: q.rx_packets,
            rx_bytes: q.rx_bytes,
            rx_drops: q.rx_drops,
            tx_packets: q.tx_packets,
            tx_bytes: q.tx_bytes,
            tx_drops: q.tx_drops,
            page_pool: q.page_pool.as_ref().map(PagePoolJson::from),
        }
    }
}

#[derive(Serialize)]
struct PortCountersJson<'a> {
    name: &'a str,
    driver: &'a str,
    link_up: bool,
    mac: &'a str,
    mtu: u32,
    queues: Vec<QueueJson>,
}

impl<'a> From<&'a PortCounters> for PortCountersJson<'a> {
    fn from(p: &'a PortCounters) -> Self {
        PortCountersJson {
            name: &p.name,
            driver: &p.driver,
            link_up: p.link_up,
            mac: &p.mac,
            mtu: p.mtu,
            queues: p.queues.iter().map(QueueJson::from).collect(),
        }
    }
}

#[derive(Serialize)]
struct DropJson<'a> {
    reason: &'a str,
    count: u64,
}

#[derive(Serialize)]
struct WorkerJson<'a> {
    id: u32,
    core: Option<u32>,
    rx_packets: u64,
    tx_packets: u64,
    busy_cycles: u64,
    drops: Vec<DropJson<'a>>,
}

impl<'a> From<&'a WorkerCounters> for WorkerJson<'a> {
    fn from(w: &'a WorkerCounters) -> Self {
        WorkerJson {
            id: w.id,
            core: w.core,
            rx_packets: w.rx_packets,
            tx_packets: w.tx_packets,
            busy_cycles: w.busy_cycles,
            drops: w.drops.iter().map(|d| DropJson { reason: &d.reason, count: d.count }).collect(),
        }
    }
}

#[derive(Serialize)]
struct CountersJson<'a> {
    timestamp_unix_nanos: u64,
    ports: Vec<PortCountersJson<'a>>,
    workers: Vec<WorkerJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nat: Option<NatJson<'a>>,
}

#[derive(Serialize)]
struct NatJson<'a> {
    live_sessions: u64,
    capacity: u64,
    bytes_per_session: u64,
    counters: std::collections::BTreeMap<&'a str, u64>,
}

impl<'a> From<&'a GetCountersResponse> for CountersJson<'a> {
    fn from(c: &'a GetCountersResponse) -> Self {
        CountersJson {
            timestamp_unix_nanos: c.timestamp_unix_nanos,
            ports: c.ports.iter().map(PortCountersJson::from).collect(),
            workers: c.workers.iter().map(WorkerJson::from).collect(),
            nat: c.nat.as_ref().map(|n| NatJson {
                live_sessions: n.live_sessions,
                capacity: n.capacity,
                bytes_per_session: n.bytes_per_session,
                counters: n.counters.iter().map(|d| (d.name.as_str(), d.value)).collect(),
            }),
        }
    }
}
