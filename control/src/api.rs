//! The daemon's read-only gRPC control API (`vrouter.v1.Vrouter`, see
//! `proto/vrouter/v1/vrouter.proto`) and its Unix-socket listener.
//!
//! * [`ApiService`] implements the generated [`Vrouter`] trait over a
//!   [`SnapshotSource`], so it can be tested without a running dataplane.
//! * [`bind_unix`] + [`serve`] (or [`serve_unix`] for both at once) listen on
//!   a Unix domain socket with mode 0600, next to the standard gRPC health
//!   service. Control traffic is never accepted from a dataplane port: the
//!   API is only reachable through this socket.
//! * [`default_socket_path`] is where `vrouterd` listens and `vrouterctl`
//!   connects unless told otherwise.

use dataplane::runtime::{PortSnapshot, StatsSnapshot, WorkerSnapshot};
use ports::{MacAddr, PoolStats, QueueStats, RxQueueStats};
use proto::vrouter::v1::vrouter_server::{Vrouter, VrouterServer};
use proto::vrouter::v1::{
    CapabilitiesRequest, CapabilitiesResponse, DriverCounter, DropCounter, GetCountersRequest, GetCountersResponse,
    ListPortsRequest, ListPortsResponse, NatCounters, PagePoolCounters, PortCounters, PortInfo, QueueCounters,
    WorkerCounters,
};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

/// Optional features this daemon reports in `CapabilitiesResponse.features`.
pub const FEATURES: &[&str] = &["counters", "page_pool", "ports"];

/// Socket file name used under `$XDG_RUNTIME_DIR` and `/run/vrouter`.
const SOCKET_NAME: &str = "vrouterd.sock";

/// How long in-flight calls may take to finish once shutdown is requested
/// before the server is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where the daemon listens by default: `/run/vrouter/vrouterd.sock` for
/// root, else `$XDG_RUNTIME_DIR/vrouterd.sock` (if set to an absolute path),
/// else `/tmp/vrouterd-$UID.sock`.
pub fn default_socket_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/vrouter").join(SOCKET_NAME);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join(SOCKET_NAME),
        _ => PathBuf::from(format!("/tmp/vrouterd-{uid}.sock")),
    }
}

/// Where [`ApiService`] gets its counters from.
///
/// `None` means the dataplane is gone (e.g. the daemon is stopping); calls
/// then fail with `UNAVAILABLE`.
pub trait SnapshotSource: Send + Sync + 'static {
    fn snapshot(&self) -> Option<StatsSnapshot>;
}

impl<F> SnapshotSource for F
where
    F: Fn() -> Option<StatsSnapshot> + Send + Sync + 'static,
{
    fn snapshot(&self) -> Option<StatsSnapshot> {
        self()
    }
}

/// The read-only `vrouter.v1.Vrouter` service.
#[derive(Clone)]
pub struct ApiService {
    source: Arc<dyn SnapshotSource>,
    drivers: Vec<String>,
    daemon_version: String,
}

impl fmt::Debug for ApiService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiService")
            .field("drivers", &self.drivers)
            .field("daemon_version", &self.daemon_version)
            .finish_non_exhaustive()
    }
}

impl ApiService {
    /// A service reporting this crate's version and the drivers compiled into
    /// `ports`.
    pub fn new(source: impl SnapshotSource) -> ApiService {
        ApiService {
            source: Arc::new(source),
            drivers: ports::driver_names().into_iter().map(String::from).collect(),
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn snapshot(&self) -> Result<(StatsSnapshot, u64), Status> {
        let snap = self.source.snapshot().ok_or_else(|| Status::unavailable("the dataplane is not running"))?;
        Ok((snap, unix_nanos(SystemTime::now())))
    }

    /// The capabilities this service reports.
    pub fn capabilities(&self) -> CapabilitiesResponse {
        CapabilitiesResponse {
            api_version: proto::API_VERSION.to_string(),
            daemon_version: self.daemon_version.clone(),
            port_drivers: self.drivers.clone(),
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
        }
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn mac_string(mac: MacAddr) -> String {
    if mac == MacAddr::default() {
        String::new()
    } else {
        mac.to_string()
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Page-pool counters; `None` for a queue without a pool (a driver that does
/// not use one reports an all-default `PoolStats`).
pub fn pool_counters(p: &PoolStats) -> Option<PagePoolCounters> {
    if *p == PoolStats::default() {
        return None;
    }
    Some(PagePoolCounters {
        fast_alloc: p.fast_allocs,
        slow_alloc: p.slow_allocs,
        recycle_direct: p.recycle_direct,
        recycle_ring: p.recycle_ring,
        empty: p.empty,
        in_use: p.in_use,
        size: u64::from(p.buffers),
    })
}

/// A queue pair's named driver counters, drops first.
fn driver_counters(rx: Option<&QueueStats>, tx: Option<&QueueStats>) -> Vec<DriverCounter> {
    let mut v = Vec::new();
    for (dir, q) in [("rx", rx), ("tx", tx)] {
        let Some(q) = q else { continue };
        for (list, drop) in [(&q.drops, true), (&q.counters, false)] {
            v.extend(list.iter().map(|(n, c)| DriverCounter { name: format!("{dir}.{n}"), value: *c, drop }));
        }
    }
    v
}

/// Counters of queue pair `id` (RX and/or TX may be missing).
fn queue_counters(id: usize, rx: Option<&RxQueueStats>, tx: Option<&QueueStats>) -> QueueCounters {
    QueueCounters {
        queue_id: to_u32(id),
        rx_packets: rx.map_or(0, |r| r.queue.packets),
        rx_bytes: rx.map_or(0, |r| r.queue.bytes),
        tx_packets: tx.map_or(0, |t| t.packets),
        tx_bytes: tx.map_or(0, |t| t.bytes),
        rx_drops: rx.map_or(0, |r| r.queue.dropped()),
        tx_drops: tx.map_or(0, QueueStats::dropped),
        page_pool: rx.and_then(|r| pool_counters(&r.pool)),
        driver: driver_counters(rx.map(|r| &r.queue), tx),
    }
}

/// Maps one port of a snapshot onto `PortCounters`: RX queue `i` and TX
/// queue `i` form queue pair `i`.
pub fn port_counters(p: &PortSnapshot) -> PortCounters {
    let n = p.rx.len().max(p.tx.len());
    PortCounters {
        name: p.info.name.clone(),
        driver: p.info.driver.to_string(),
        link_up: p.link.up,
        mac: mac_string(p.info.mac),
        mtu: u32::from(p.info.mtu),
        queues: (0..n).map(|i| queue_counters(i, p.rx.get(i), p.tx.get(i))).collect(),
    }
}

/// Maps one worker of a snapshot onto `WorkerCounters` (zero drop counts are
/// left out).
pub fn worker_counters(w: &WorkerSnapshot) -> WorkerCounters {
    WorkerCounters {
        id: to_u32(w.id),
        core: w.core.map(to_u32),
        rx_packets: w.rx_packets,
        tx_packets: w.tx_packets,
        busy_cycles: w.busy_cycles,
        drops: w
            .drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, count)| DropCounter { reason: reason.to_string(), count: *count })
            .collect(),
    }
}

/// Maps one port of a snapshot onto `PortInfo`.
pub fn port_info(p: &PortSnapshot) -> PortInfo {
    PortInfo {
        name: p.info.name.clone(),
        driver: p.info.driver.to_string(),
        link_up: p.link.up,
        mac: mac_string(p.info.mac),
        mtu: u32::from(p.info.mtu),
        rx_queues: u32::from(p.info.rx_queues),
        tx_queues: u32::from(p.info.tx_queues),
    }
}

/// The `GetCounters` answer for `snap`, limited to the ports named in
/// `wanted` (all if empty). A name that matches no port is `NOT_FOUND`.
pub fn counters_response(
    snap: &StatsSnapshot,
    wanted: &[String],
    timestamp: u64,
) -> Result<GetCountersResponse, Status> {
    if let Some(unknown) = wanted.iter().find(|w| !snap.ports.iter().any(|p| &p.info.name == *w)) {
        let known: Vec<&str> = snap.ports.iter().map(|p| p.info.name.as_str()).collect();
        return Err(Status::not_found(format!("no port named {unknown:?} (ports: {})", known.join(", "))));
    }
    Ok(GetCountersResponse {
        ports: snap
            .ports
            .iter()
            .filter(|p| wanted.is_empty() || wanted.contains(&p.info.name))
            .map(port_counters)
            .collect(),
        workers: snap.workers.iter().map(worker_counters).collect(),
        timestamp_unix_nanos: timestamp,
        nat: snap.nat.as_ref().map(|n| NatCounters {
            live_sessions: n.live_sessions as u64,
            capacity: n.capacity as u64,
            bytes_per_session: n.bytes_per_session as u64,
            counters: n
                .counters
                .iter()
                .map(|(name, value)| DriverCounter { name: name.to_string(), value: *value, drop: false })
                .collect(),
        }),
    })
}

#[tonic::async_trait]
impl Vrouter for ApiService {
    async fn capabilities(&self, _: Request<CapabilitiesRequest>) -> Result<Response<CapabilitiesResponse>, Status> {
        Ok(Response::new(self.capabilities()))
    }

    async fn get_counters(
        &self,
        request: Request<GetCountersRequest>,
    ) -> Result<Response<GetCountersResponse>, Status> {
        let wanted = request.into_inner().ports;
        let (snap, timestamp) = self.snapshot()?;
        counters_response(&snap, &wanted, timestamp).map(Response::new)
    }

    async fn list_ports(&self, _: Request<ListPortsRequest>) -> Result<Response<ListPortsResponse>, Status> {
        let (snap, _) = self.snapshot()?;
        Ok(Response::new(ListPortsResponse { ports: snap.ports.iter().map(port_info).collect() }))
    }
}

/// Why the API could not be started or stopped.
#[derive(Debug)]
pub enum ApiError {
    /// Another process accepts connections on the socket path.
    AlreadyListening(PathBuf),
    /// The path exists and is not a socket: it is not ours to remove.
    NotASocket(PathBuf),
    /// A system call failed; `what` says which step, on which path.
    Io { what: String, err: io::Error },
    /// The gRPC server failed.
    Server(tonic::transport::Error),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::AlreadyListening(p) => {
                write!(f, "another vrouterd is listening on {} (stop it or choose another --socket)", p.display())
            }
            ApiError::NotASocket(p) => {
                write!(
                    f,
                    "{} exists and is not a socket; refusing to replace it (remove it or choose another --socket)",
                    p.display()
                )
            }
            ApiError::Io { what, err } => write!(f, "{what}: {err}"),
            ApiError::Server(e) => {
                write!(f, "gRPC server failed: {e}")?;
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    write!(f, ": {s}")?;
                    src = s.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ApiError {}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ApiError {
    let what = what.into();
    move |err| ApiError::Io { what, err }
}

/// The socket file this process created; removed on drop unless it has been
/// replaced by another file in the meantime.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.dev_ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    warn!(socket = %self.path.display(), "cannot remove the API socket: {e}");
                } else {
                    debug!(socket = %self.path.display(), "API socket removed");
                }
            }
            Ok(_) => warn!(socket = %self.path.display(), "API socket was replaced by another file; leaving it"),
            Err(_) => {}
        }
    }
}

/// A bound (not yet serving) API socket. Dropping it removes the socket file.
#[derive(Debug)]
pub struct ApiSocket {
    listener: StdUnixListener,
    file: SocketFile,
}

impl ApiSocket {
    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

/// Creates the parent directory of `path` (mode 0700) if it is missing.
fn ensure_parent_dir(path: &Path) -> Result<(), ApiError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(format!("cannot create socket directory {}", dir.display())))
}

/// Removes a stale socket at `path` (a socket nobody listens on). Fails if
/// something listens there or the path is not a socket.
fn remove_stale_socket(path: &Path) -> Result<(), ApiError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("cannot inspect {}", path.display()))(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ApiError::NotASocket(path.to_owned()));
    }
    match StdUnixStream::connect(path) {
        Ok(_) => Err(ApiError::AlreadyListening(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            warn!(socket = %path.display(), "removing stale API socket (nobody listens on it)");
            std::fs::remove_file(path).map_err(io_err(format!("cannot remove stale socket {}", path.display())))
        }
        Err(e) => Err(io_err(format!("cannot check whether {} is in use", path.display()))(e)),
    }
}

/// Binds the API socket at `path` with mode 0600: creates the parent
/// directory (0700) if missing, and replaces a stale socket file, but refuses
/// to start if another process is listening there.
///
/// The socket is created under a umask of 0177 so that it is never
/// accessible to others, even briefly; the process umask is restored right
/// after.
pub fn bind_unix(path: impl AsRef<Path>) -> Result<ApiSocket, ApiError> {
    let path = path.as_ref();
    ensure_parent_dir(path)?;
    remove_stale_socket(path)?;
    // SAFETY: umask only swaps the process file-mode mask and cannot fail.
    // Other threads creating files in this window get stricter modes, never
    // looser ones.
    let old_mask = unsafe { libc::umask(0o177) };
    let bound = StdUnixListener::bind(path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old_mask) };
    let listener = bound.map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            // Lost a race with another daemon starting at the same time.
            ApiError::AlreadyListening(path.to_owned())
        } else {
            io_err(format!("cannot listen on {}", path.display()))(e)
        }
    })?;
    let meta = std::fs::symlink_metadata(path).map_err(io_err(format!("cannot inspect {}", path.display())))?;
    let file = SocketFile { path: path.to_owned(), dev_ino: (meta.dev(), meta.ino()) };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("cannot set the mode of {}", path.display())))?;
    listener.set_nonblocking(true).map_err(io_err(format!("cannot make {} non-blocking", path.display())))?;
    Ok(ApiSocket { listener, file })
}

/// Serves `service` and the gRPC health service (`grpc.health.v1.Health`,
/// reporting both `""` and `vrouter.v1.Vrouter` as SERVING) on `socket`
/// until `shutdown` completes, then lets in-flight calls finish (for up to
/// two seconds) and removes the socket file. Must run within a tokio
/// runtime.
pub async fn serve(socket: ApiSocket, service: ApiService, shutdown: impl Future<Output = ()>) -> Result<(), ApiError> {
    let ApiSocket { listener, file } = socket;
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(io_err(format!("cannot register {} with the runtime", file.path.display())))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<VrouterServer<ApiService>>().await;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(VrouterServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tokio::pin!(shutdown);

    let result = tokio::select! {
        r = &mut server => r.map_err(ApiError::Server),
        () = &mut shutdown => {
            health.set_not_serving::<VrouterServer<ApiService>>().await;
            health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            let _ = stop_tx.send(());
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(r) => r.map_err(ApiError::Server),
                Err(_) => {
                    warn!("API calls still running after {SHUTDOWN_GRACE:?}; closing their connections");
                    Ok(())
                }
            }
        }
    };
    drop(file);
    result
}

/// [`bind_unix`] then [`serve`].
pub async fn serve_unix(
    path: impl AsRef<Path>,
    service: ApiService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    serve(bind_unix(path)?, service, shutdown).await
}
