//! Real MANA hardware through rdma-core (`mana-hw` cargo feature).
//!
//! [`HwDevice`] implements [`Device`] over libibverbs + libmana: it opens
//! the RDMA device that carries the vPort with a given MAC, creates RAW
//! packet queues whose ring memory we allocate ourselves, and hands the
//! rings, queue ids and the doorbell page to the driver, which then runs
//! the data path without rdma-core (as DPDK's mana PMD does).
//!
//! # Running on an Azure VM
//!
//! 1. **VM**: a size with Accelerated Networking on a MANA NIC (the data
//!    NIC's VF shows up as `lspci` "Microsoft Corporation Device 00ba"). Give
//!    the router its own NIC(s); keep the management NIC on the kernel.
//! 2. **Kernel ≥ 6.2** with `mana` and `mana_ib`: `modprobe mana_ib`;
//!    `ls /sys/class/infiniband` must list `mana_0`. Kernels before ~6.8
//!    limit every CQ (and a send queue's work requests) to 256 entries
//!    (`max_cqe` / `max_qp_wr`); larger requests fail with a message
//!    naming the limit.
//! 3. **rdma-core ≥ 44** (`libibverbs1`, `ibverbs-providers` with
//!    `libmana.so`; to build: `libibverbs-dev`, a C compiler), then build
//!    with `cargo build --release --features ports/mana-hw`.
//! 4. **Bring the data NIC's kernel netdevs down** — both the synthetic
//!    hv_netvsc one (`eth1`) and the VF one (`enP…`), which share the MAC.
//!    Only one Ethernet user per vPort is allowed; with either up, queue
//!    creation fails with EBUSY (the error names the netdevs):
//!    `ip link set eth1 down; ip link set enP30832s1 down`. Tell
//!    NetworkManager / netplan / cloud-init to leave that NIC alone, or it
//!    comes back up.
//! 5. **Select the vPort by MAC** (MANA ports are never chosen by PCI
//!    address), e.g.
//!    ```toml
//!    [[port]]
//!    name = "wan0"
//!    driver = "mana"
//!    mac = "00:0d:3a:12:34:56"   # the NIC's MAC, see `ip link` / the portal
//!    args = { device = "hw" }
//!    ```
//! 6. **Hugepages** for packet buffers: `echo 1024 >
//!    /proc/sys/vm/nr_hugepages` (2 MiB pages; pools fall back to normal
//!    pages when none are free).
//! 7. **Privileges**: run as root, or with `CAP_NET_RAW` (RAW packet QPs)
//!    and a memlock limit large enough for every pinned buffer and ring
//!    (`ulimit -l unlimited`, or `LimitMEMLOCK=infinity` in a systemd unit).
//!
//! # What rdma-core allows, and what it does not
//!
//! - **RSS**: the mana_ib kernel driver creates one hardware RX object per
//!   entry of the verbs indirection table and then repeats that table to
//!   fill the hardware's 64 entries. So the verbs table must list every RX
//!   queue exactly once, and an [`RssConfig`] is accepted only if its table
//!   is a repetition of a permutation of the `n` queues (as
//!   `RssConfig::spread(n)` is); `n` must be a power of two ≤ 64. The hash
//!   always covers IPv4/IPv6 addresses and TCP/UDP ports (mana_ib ignores
//!   the verbs hash-field mask); `RssConfig::l4` is passed on regardless.
//! - **`set_rss` on live queues is unsupported**: the RSS QP owns the
//!   hardware RX objects, and rdma-core cannot re-create it under existing
//!   WQs (their DMA regions were consumed by the first QP). Recreate the RX
//!   queues instead. A `set_rss` that changes nothing, or that is called
//!   with no RX queues, succeeds.
//! - **Order**: create the TX queues before the RX queues. The first TX
//!   queue configures the vPort (PD, doorbell) in the kernel, as both
//!   Linux and DPDK do before adding RX queues; `create_rx_queues` refuses
//!   to run first.
//! - No QP / WQ state changes (INIT/RTR/RTS, WQ RDY): DPDK makes none, and
//!   mana_ib rejects them for RAW QPs (EOPNOTSUPP). Queues are live when
//!   created.
//! - **No EQ**: [`Device::create_eq`] returns `None`; completions are
//!   polled. Servicing is reported through [`Device::poll_event`]: a fatal
//!   async event gives [`DeviceEvent::Removed`]. `DeviceEvent::Reset` is
//!   never reported (rdma-core has no separate signal for it).
//! - **Coming back**: after `Removed`, each `poll_event` call (at most once a
//!   second, first after [`REPROBE_FIRST_DELAY`]) tries to open the vPort
//!   with the same MAC again; when that works the new device replaces the
//!   old and `poll_event` reports [`DeviceEvent::Returned`]. A host
//!   servicing keeps the device away for at least ~10 s, and **re-probe can
//!   take over 100 s**. The driver must call [`Device::destroy_queues`]
//!   after `Removed` and re-register its memory and re-create its queues
//!   after `Returned`; memory keys from before `Returned` are void (the new
//!   device may hand out the same values), so they must not be
//!   deregistered afterwards. [`HwDevice::last_reopen_error`] tells why the
//!   latest attempt failed.

mod ffi;
mod sysfs;

pub use sysfs::PortMac;

use super::device::{Device, DeviceError, DeviceEvent, DeviceInfo, RingInfo, RxQueueRes, TxQueueRes};
use crate::port::{MacAddr, RssConfig};
use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Largest MTU MANA accepts.
pub const MAX_MTU: u16 = 9000;
/// Queues per vPort (and entries of the hardware indirection table).
pub const MAX_QUEUES: u16 = 64;
/// Smallest ring: one 4 KiB page.
const MIN_RING: usize = 4096;
/// Doorbell page size; writes beyond it are dropped.
const DB_PAGE_SIZE: u32 = 4096;
/// Bytes of one completion entry.
const CQE_SIZE: usize = 64;
/// The RSS key length mana_ib requires.
const RSS_KEY_LEN: usize = 40;
/// After `Removed`, the first re-open attempt waits this long (the host
/// keeps a serviced device away for at least ~10 s; opening it earlier can
/// find the dying instance).
pub const REPROBE_FIRST_DELAY: Duration = Duration::from_secs(10);
/// Later attempts: at most one per this interval, checked on each
/// `poll_event` call.
pub const REPROBE_INTERVAL: Duration = Duration::from_secs(1);

const NO_DEVICE: &str = "no MANA RDMA device found (is the mana_ib kernel module loaded? rdma-core >= 44 needed)";
const SYS_CLASS_NET: &str = "/sys/class/net";

// ---- ring memory handed to rdma-core -----------------------------------

/// The allocator rdma-core calls (through `manadv_set_context_attr`) for
/// every SQ, RQ and CQ buffer: page-aligned, zeroed, private anonymous
/// memory, excluded from fork. It remembers each live buffer's size so that
/// the rings can be checked against it and so that buffers still live when
/// the context closes (queues whose destroy failed on a dead device) are
/// released then.
struct RingAllocator {
    live: Mutex<HashMap<usize, usize>>,
}

impl RingAllocator {
    fn new() -> Box<RingAllocator> {
        Box::new(RingAllocator { live: Mutex::new(HashMap::new()) })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<usize, usize>> {
        crate::lock(&self.live)
    }

    fn alloc(&self, size: usize) -> *mut c_void {
        let Some(len) = size.max(1).checked_next_multiple_of(MIN_RING) else {
            return ptr::null_mut();
        };
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched. The result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        // SAFETY: `p..p+len` is the mapping just created. A child process
        // must not share (or copy-on-write) memory the device writes to;
        // failure only loses that protection, so the result is ignored.
        unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) };
        self.map().insert(p as usize, len);
        p
    }

    fn free(&self, p: *mut c_void) {
        if let Some(len) = self.map().remove(&(p as usize)) {
            // SAFETY: `p..p+len` is a mapping this allocator created and has
            // just forgotten, so it is unmapped exactly once.
            unsafe { libc::munmap(p, len) };
        }
    }

    /// The mapped length of the buffer starting at `p`.
    fn len_of(&self, p: *const c_void) -> Option<usize> {
        self.map().get(&(p as usize)).copied()
    }

    /// Unmaps everything still allocated. Only after the context is closed:
    /// the kernel has then released every queue that used these buffers.
    fn release_all(&self) {
        for (p, len) in self.map().drain() {
            // SAFETY: as in `free`; each entry is removed before unmapping.
            unsafe { libc::munmap(p as *mut c_void, len) };
        }
    }
}

/// rdma-core's allocation callback.
///
/// # Safety
/// `data` must be the `RingAllocator` registered with the context.
unsafe extern "C" fn ring_alloc(size: usize, data: *mut c_void) -> *mut c_void {
    // SAFETY: the caller (libmana) passes back the `data` pointer we set in
    // `manadv_set_context_attr`: a boxed RingAllocator that outlives the
    // context (it is dropped only after `ibv_close_device`).
    let a = unsafe { &*(data as *const RingAllocator) };
    a.alloc(size)
}

/// rdma-core's free callback.
///
/// # Safety
/// As for [`ring_alloc`].
unsafe extern "C" fn ring_free(p: *mut c_void, data: *mut c_void) {
    // SAFETY: as in `ring_alloc`.
    let a = unsafe { &*(data as *const RingAllocator) };
    a.free(p);
}

// ---- errors ----------------------------------------------------------------

/// errno of the last failed verbs call that returned a pointer.
fn last_errno() -> io::Error {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(0) | None => io::Error::other("unknown error (errno not set)"),
        _ => e,
    }
}

/// An errno value returned by a verbs call.
fn errno_value(rc: c_int) -> io::Error {
    io::Error::from_raw_os_error(rc.abs())
}

/// Turns a verbs failure into a `DeviceError`. `busy` is the advice for a
/// vPort still held by the kernel netdev.
fn verbs_error(what: &str, e: io::Error, busy: Option<&str>) -> DeviceError {
    match (e.raw_os_error(), busy) {
        (Some(libc::ENOMEM), _) => DeviceError::NoMemory(format!("{what}: {e}")),
        (Some(libc::EINVAL) | Some(libc::EOPNOTSUPP), _) => DeviceError::Invalid(format!("{what}: {e}")),
        (Some(libc::EPERM) | Some(libc::EACCES), _) => DeviceError::Io(io::Error::new(
            e.kind(),
            format!("{what}: {e} (RAW packet queues need root or CAP_NET_RAW, and a large enough memlock limit)"),
        )),
        (Some(libc::EBUSY), Some(hint)) => DeviceError::Io(io::Error::new(e.kind(), format!("{what}: {e}: {hint}"))),
        // mana_ib turns the netdev's EBUSY into ENODEV on some kernels.
        (Some(libc::ENODEV), Some(hint)) => DeviceError::Io(io::Error::new(
            e.kind(),
            format!("{what}: {e} (a vPort in use by the kernel is reported this way: {hint})"),
        )),
        _ => DeviceError::Io(io::Error::new(e.kind(), format!("{what}: {e}"))),
    }
}

fn invalid(msg: String) -> DeviceError {
    DeviceError::Invalid(msg)
}

// ---- pure sizing rules -------------------------------------------------------

/// rdma-core's WQE size for `sge` scatter entries with the short OOB:
/// header 8 + OOB 8 + 16 per SGE, in 32-byte units.
fn wqe_size(sge: u32) -> usize {
    (16 * sge as usize + 16).next_multiple_of(32)
}

/// `(max_wr, max_sge)` that make rdma-core allocate exactly `bytes` for a
/// work queue (it allocates `max_wr * wqe_size(max_sge)` rounded up to a
/// power of two), within the device limits. Fewer SGEs first; more only
/// when `bytes / 32` exceeds `max_qp_wr`. The SGE count is only a size
/// hint: the hardware reads each WQE's own header.
fn wq_caps(bytes: usize, max_qp_wr: i32, max_sge: i32, max_wqe: usize, what: &str) -> Result<(u32, u32), DeviceError> {
    if bytes < MIN_RING || !bytes.is_power_of_two() || bytes > u32::MAX as usize {
        return Err(invalid(format!("{what} of {bytes} bytes: must be a power of two from 4096 to 2^31")));
    }
    let max_sge = max_sge.max(1) as u32;
    for sge in [1u32, 3, 7, 15, 30] {
        let w = wqe_size(sge);
        if sge > max_sge || w > max_wqe || w > bytes {
            break;
        }
        let wr = bytes / w;
        if max_qp_wr <= 0 || wr <= max_qp_wr as usize {
            return Ok((wr as u32, sge));
        }
    }
    Err(invalid(format!(
        "{what} of {bytes} bytes needs more work requests than the device allows (max_qp_wr {max_qp_wr}, max_sge {max_sge})"
    )))
}

/// Checks a CQ size: a power of two of at least one page of 64-byte CQEs.
fn check_cq(entries: u32, max_cqe: i32, what: &str) -> Result<(), DeviceError> {
    if !entries.is_power_of_two() || (entries as usize) * CQE_SIZE < MIN_RING || entries > i32::MAX as u32 {
        return Err(invalid(format!("{what} of {entries} entries: must be a power of two of at least 64")));
    }
    if max_cqe > 0 && entries > max_cqe as u32 {
        return Err(invalid(format!(
            "{what} of {entries} entries: the device allows at most {max_cqe} (mana_ib's max_cqe; \
             older kernels report 256), use smaller queues"
        )));
    }
    Ok(())
}

/// The verbs indirection table for `n` RX queues: `rss.reta` must repeat a
/// permutation of `0..n` (see the module docs). Returns that permutation.
fn rss_plan(rss: &RssConfig, n: u16) -> Result<Vec<u16>, DeviceError> {
    let n_us = n as usize;
    if n == 0 || !n.is_power_of_two() || n > MAX_QUEUES {
        return Err(invalid(format!("{n} RX queues: MANA needs a power of two from 1 to {MAX_QUEUES}")));
    }
    let len = rss.reta.len();
    if len == 0 || !len.is_power_of_two() {
        return Err(invalid(format!("RSS indirection table of {len} entries: must be a power of two")));
    }
    if let Some(q) = rss.reta.iter().find(|&&q| q >= n) {
        return Err(invalid(format!("RSS indirection table names queue {q} but there are {n} RX queues")));
    }
    if len < n_us {
        return Err(invalid(format!(
            "RSS indirection table of {len} entries cannot reach all {n} RX queues \
             (MANA through rdma-core needs every RX queue in the table)"
        )));
    }
    let perm = rss.reta[..n_us].to_vec();
    let mut seen = vec![false; n_us];
    for &q in &perm {
        if std::mem::replace(&mut seen[q as usize], true) {
            return Err(invalid(format!(
                "RSS indirection table not supported by MANA through rdma-core: its first {n} entries {perm:?} \
                 must list each RX queue exactly once (the kernel repeats them to fill the 64-entry table)"
            )));
        }
    }
    if let Some(j) = (n_us..len).find(|&j| rss.reta[j] != rss.reta[j % n_us]) {
        return Err(invalid(format!(
            "RSS indirection table not supported by MANA through rdma-core: entry {j} is queue {} but the \
             hardware table repeats the first {n} entries, which gives queue {}",
            rss.reta[j],
            rss.reta[j % n_us]
        )));
    }
    Ok(perm)
}

/// The verbs hash fields for `rss` (mana_ib hashes the same either way).
fn rss_fields(rss: &RssConfig) -> u64 {
    let mut f =
        ffi::IBV_RX_HASH_SRC_IPV4 | ffi::IBV_RX_HASH_DST_IPV4 | ffi::IBV_RX_HASH_SRC_IPV6 | ffi::IBV_RX_HASH_DST_IPV6;
    if rss.l4 {
        f |= ffi::IBV_RX_HASH_SRC_PORT_TCP
            | ffi::IBV_RX_HASH_DST_PORT_TCP
            | ffi::IBV_RX_HASH_SRC_PORT_UDP
            | ffi::IBV_RX_HASH_DST_PORT_UDP;
    }
    f
}

/// A ring reported by `manadv_init_obj`, checked against our allocation.
fn ring(alloc: &RingAllocator, buf: *mut c_void, size: usize, id: u32, what: &str) -> Result<RingInfo, DeviceError> {
    let Some(base) = NonNull::new(buf.cast::<u8>()) else {
        return Err(invalid(format!("{what}: rdma-core returned no buffer")));
    };
    if size < MIN_RING || !size.is_power_of_two() {
        return Err(invalid(format!("{what}: rdma-core reports a ring of {size} bytes (not a power of two >= 4096)")));
    }
    match alloc.len_of(buf) {
        Some(len) if len >= size => Ok(RingInfo { base, size, id }),
        Some(len) => Err(invalid(format!("{what}: ring of {size} bytes but only {len} allocated"))),
        None => Err(invalid(format!("{what}: ring memory was not allocated through our allocator"))),
    }
}

// ---- the RDMA device list ------------------------------------------------------

/// `ibv_get_device_list`, freed on drop.
struct DeviceList {
    list: *mut *mut ffi::ibv_device,
    n: usize,
}

impl DeviceList {
    fn get() -> DeviceList {
        let mut n: c_int = 0;
        // SAFETY: `n` is a valid out-pointer; a null result (no uverbs
        // support at all) is handled as an empty list.
        let list = unsafe { ffi::ibv_get_device_list(&mut n) };
        DeviceList { list, n: if list.is_null() { 0 } else { n.max(0) as usize } }
    }

    /// `(device, name, ibdev_path)` of each entry.
    fn entries(&self) -> Vec<(*mut ffi::ibv_device, String, String)> {
        (0..self.n)
            .filter_map(|i| {
                // SAFETY: `list` holds `n` device pointers (null-terminated),
                // valid until `ibv_free_device_list`.
                let dev = unsafe { *self.list.add(i) };
                if dev.is_null() {
                    return None;
                }
                // SAFETY: `dev` points to a live `struct ibv_device`; its name
                // and path arrays are NUL-terminated C strings within bounds.
                let (name, path) = unsafe {
                    (
                        CStr::from_ptr((*dev).name.as_ptr()).to_string_lossy().into_owned(),
                        CStr::from_ptr((*dev).ibdev_path.as_ptr()).to_string_lossy().into_owned(),
                    )
                };
                Some((dev, name, path))
            })
            .collect()
    }
}

impl Drop for DeviceList {
    fn drop(&mut self) {
        if !self.list.is_null() {
            // SAFETY: the list came from `ibv_get_device_list` and is freed
            // once; opened contexts stay valid after the list is freed.
            unsafe { ffi::ibv_free_device_list(self.list) };
        }
    }
}

/// Finds the vPort with `mac` among `(device, name, ibdev_path)` entries.
/// `Ok((index, port))` or the user-facing error.
fn select_port(
    entries: &[(*mut ffi::ibv_device, String, String)],
    mac: MacAddr,
) -> Result<(usize, PortMac), DeviceError> {
    let mut seen = Vec::new();
    let mut others = Vec::new();
    let mut any_mana = false;
    for (i, (_, name, path)) in entries.iter().enumerate() {
        if !sysfs::is_mana_device(name, Path::new(path)) {
            others.push(name.clone());
            continue;
        }
        any_mana = true;
        for p in sysfs::port_macs(Path::new(path)) {
            if p.mac == mac {
                return Ok((i, p));
            }
            seen.push(format!("{} ({name} port {}, {})", p.mac, p.port, p.netdev));
        }
    }
    if !any_mana {
        let msg = if others.is_empty() {
            NO_DEVICE.to_string()
        } else {
            format!("{NO_DEVICE}; other RDMA devices present: {}", others.join(", "))
        };
        return Err(DeviceError::Io(io::Error::new(io::ErrorKind::NotFound, msg)));
    }
    let seen = if seen.is_empty() {
        "none (no netdevs under /sys/class/infiniband/mana*/device/net)".to_string()
    } else {
        seen.join(", ")
    };
    Err(DeviceError::Io(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no MANA vPort with MAC {mac}; MACs seen: {seen}"),
    )))
}

// ---- one open device ---------------------------------------------------------------

struct TxObjs {
    qp: *mut ffi::ibv_qp,
    cq: *mut ffi::ibv_cq,
}

/// The RX side: per-queue WQ + CQ, the indirection table and the RSS QP.
struct RxObjs {
    qp: *mut ffi::ibv_qp,
    table: *mut ffi::ibv_rwq_ind_table,
    wqs: Vec<*mut ffi::ibv_wq>,
    cqs: Vec<*mut ffi::ibv_cq>,
    /// What the hardware got: the queue permutation, key and L4 flag.
    perm: Vec<u16>,
    key: [u8; RSS_KEY_LEN],
    l4: bool,
}

/// Device limits from `ibv_query_device`.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_qp_wr: i32,
    max_cqe: i32,
    max_sge: i32,
    max_queues: u16,
}

/// One open verbs context on the vPort's device, with everything created
/// on it. Dropping it destroys all of that and closes the context.
struct Ctx {
    ctx: *mut ffi::ibv_context,
    pd: *mut ffi::ibv_pd,
    parent: *mut ffi::ibv_pd,
    port: u8,
    info: DeviceInfo,
    /// Kernel netdevs holding this vPort, for EBUSY advice.
    busy_hint: String,
    limits: Limits,
    async_fd: c_int,
    /// Ring memory; must outlive `ctx`.
    alloc: Box<RingAllocator>,
    tx: Vec<TxObjs>,
    rx: Option<RxObjs>,
    mrs: HashMap<u32, *mut ffi::ibv_mr>,
    /// The context's doorbell page (from `manadv_init_obj`), once known.
    db: *mut u8,
}

// SAFETY: the raw pointers are verbs objects of this context and ring memory
// it owns. rdma-core's control verbs may be called from any thread, and
// `HwDevice` serialises all use of a `Ctx` behind a mutex.
unsafe impl Send for Ctx {}

impl Ctx {
    fn open(mac: MacAddr) -> Result<Ctx, DeviceError> {
        let list = DeviceList::get();
        let entries = list.entries();
        let (index, pm) = select_port(&entries, mac)?;
        let (dev, dev_name, _) = &entries[index];

        // SAFETY: `dev` is an entry of the live device list.
        let ctx = unsafe { ffi::ibv_open_device(*dev) };
        if ctx.is_null() {
            return Err(verbs_error(&format!("opening RDMA device {dev_name}"), last_errno(), None));
        }
        let mut netdevs = sysfs::netdevs_with_mac(Path::new(SYS_CLASS_NET), mac);
        if !netdevs.contains(&pm.netdev) {
            netdevs.push(pm.netdev.clone());
        }
        let mut c = Ctx {
            ctx,
            pd: ptr::null_mut(),
            parent: ptr::null_mut(),
            port: pm.port,
            info: DeviceInfo { name: format!("{dev_name} port {}", pm.port), mac, max_queues: 1, max_mtu: MAX_MTU },
            busy_hint: sysfs::busy_hint(&netdevs),
            limits: Limits { max_qp_wr: 0, max_cqe: 0, max_sge: 1, max_queues: 1 },
            async_fd: -1,
            alloc: RingAllocator::new(),
            tx: Vec::new(),
            rx: None,
            mrs: HashMap::new(),
            db: ptr::null_mut(),
        };
        // From here on, dropping `c` releases whatever was set up.
        c.setup(dev_name)?;
        Ok(c)
    }

    fn setup(&mut self, dev_name: &str) -> Result<(), DeviceError> {
        let name = self.info.name.clone();

        // SAFETY: an all-zero `ibv_device_attr` is valid (integers and a
        // char array).
        let mut attr: ffi::ibv_device_attr = unsafe { std::mem::MaybeUninit::zeroed().assume_init() };
        // SAFETY: `ctx` is open; `attr` is a valid out-struct.
        let rc = unsafe { ffi::ibv_query_device(self.ctx, &mut attr) };
        if rc != 0 {
            return Err(verbs_error(&format!("querying {dev_name}"), errno_value(rc), None));
        }
        if attr.phys_port_cnt != 0 && self.port > attr.phys_port_cnt {
            return Err(invalid(format!(
                "{name}: sysfs names port {} but {dev_name} has {} ports",
                self.port, attr.phys_port_cnt
            )));
        }
        let max_queues = attr.max_qp.clamp(1, MAX_QUEUES as i32) as u16;
        self.limits =
            Limits { max_qp_wr: attr.max_qp_wr, max_cqe: attr.max_cqe, max_sge: attr.max_sge.max(1), max_queues };
        self.info.max_queues = max_queues;

        let mut pattr = ffi::ibv_port_attr::default();
        // SAFETY: `ctx` is open; `pattr` is a valid out-struct of the size
        // the shim's `ibv_query_port` expects (checked by the layout tests).
        let rc = unsafe { ffi::vr_ibv_query_port(self.ctx, self.port, &mut pattr) };
        if rc != 0 {
            return Err(verbs_error(&format!("querying {name}"), errno_value(rc), None));
        }
        if pattr.link_layer != 0 && pattr.link_layer != ffi::IBV_LINK_LAYER_ETHERNET {
            return Err(invalid(format!("{name} is not an Ethernet port (link layer {})", pattr.link_layer)));
        }

        // SAFETY: `ctx` is open.
        self.pd = unsafe { ffi::ibv_alloc_pd(self.ctx) };
        if self.pd.is_null() {
            return Err(verbs_error(&format!("allocating a protection domain on {dev_name}"), last_errno(), None));
        }
        // RAW QPs must be created on a parent domain whose context is the
        // port number.
        let mut pdattr = ffi::ibv_parent_domain_init_attr {
            pd: self.pd,
            td: ptr::null_mut(),
            comp_mask: ffi::IBV_PARENT_DOMAIN_INIT_ATTR_PD_CONTEXT,
            alloc: None,
            free: None,
            pd_context: self.port as usize as *mut c_void,
        };
        // SAFETY: `ctx` and `pd` are live; `pdattr` is fully initialised.
        self.parent = unsafe { ffi::vr_ibv_alloc_parent_domain(self.ctx, &mut pdattr) };
        if self.parent.is_null() {
            return Err(verbs_error(&format!("allocating a parent domain on {name}"), last_errno(), None));
        }

        let mut allocators = ffi::manadv_ctx_allocators {
            alloc: Some(ring_alloc),
            free: Some(ring_free),
            data: (&*self.alloc as *const RingAllocator).cast_mut().cast::<c_void>(),
        };
        // SAFETY: libmana copies the struct. `data` points to the boxed
        // allocator, which stays at the same address and is dropped only
        // after the context is closed (see `Drop for Ctx`).
        let rc = unsafe {
            ffi::manadv_set_context_attr(
                self.ctx,
                ffi::MANADV_CTX_ATTR_BUF_ALLOCATORS,
                (&mut allocators as *mut ffi::manadv_ctx_allocators).cast::<c_void>(),
            )
        };
        if rc != 0 {
            return Err(verbs_error(&format!("setting queue allocators on {dev_name}"), errno_value(rc), None));
        }

        // SAFETY: `ctx` is open; the shim reads one int field.
        self.async_fd = unsafe { ffi::vr_ibv_context_async_fd(self.ctx) };
        // SAFETY: fcntl on the context's own async fd, which stays open
        // while the context is.
        let ok = unsafe {
            let fl = libc::fcntl(self.async_fd, libc::F_GETFL);
            fl >= 0 && libc::fcntl(self.async_fd, libc::F_SETFL, fl | libc::O_NONBLOCK) == 0
        };
        if !ok {
            return Err(DeviceError::Io(io::Error::other(format!(
                "making the async event fd of {dev_name} non-blocking: {}",
                io::Error::last_os_error()
            ))));
        }
        Ok(())
    }

    /// `ibv_create_cq` with our ring memory.
    fn create_cq(&self, entries: u32, what: &str) -> Result<*mut ffi::ibv_cq, DeviceError> {
        // SAFETY: `ctx` is open; no completion channel, vector 0. The ring
        // comes from our allocator (set at open).
        let cq = unsafe { ffi::ibv_create_cq(self.ctx, entries as c_int, ptr::null_mut(), ptr::null_mut(), 0) };
        if cq.is_null() {
            return Err(verbs_error(
                &format!("{}: creating {what}", self.info.name),
                last_errno(),
                Some(&self.busy_hint),
            ));
        }
        Ok(cq)
    }

    fn create_tx_queue(&mut self, sq_bytes: usize, cq_entries: u32) -> Result<TxQueueRes, DeviceError> {
        let name = self.info.name.clone();
        let (wr, sge) = wq_caps(sq_bytes, self.limits.max_qp_wr, self.limits.max_sge, 512, "send queue")?;
        check_cq(cq_entries, self.limits.max_cqe, "TX completion queue")?;

        let cq = self.create_cq(cq_entries, "a TX completion queue")?;
        let mut attr = ffi::ibv_qp_init_attr_ex::zeroed();
        attr.send_cq = cq;
        attr.recv_cq = cq;
        attr.cap.max_send_wr = wr;
        attr.cap.max_send_sge = sge;
        attr.qp_type = ffi::IBV_QPT_RAW_PACKET;
        // PD only: libibverbs takes the plain `ibv_create_qp` path, which is
        // where libmana creates RAW send QPs.
        attr.comp_mask = ffi::IBV_QP_INIT_ATTR_PD;
        attr.pd = self.parent;
        // SAFETY: `ctx`, `parent` and `cq` are live; `attr` is initialised.
        let qp = unsafe { ffi::vr_ibv_create_qp_ex(self.ctx, &mut attr) };
        if qp.is_null() {
            let e = verbs_error(&format!("{name}: creating a TX queue"), last_errno(), Some(&self.busy_hint));
            // SAFETY: `cq` was created above and is used by nothing.
            unsafe { ffi::ibv_destroy_cq(cq) };
            return Err(e);
        }
        // Tracked from here on, so any failure below is cleaned up by
        // `destroy_queues`/`Drop`.
        self.tx.push(TxObjs { qp, cq });
        match self.tx_rings(qp, cq, &name) {
            Ok(res) => Ok(res),
            Err(e) => {
                if let Some(t) = self.tx.pop() {
                    destroy_tx(&t);
                }
                Err(e)
            }
        }
    }

    fn tx_rings(&mut self, qp: *mut ffi::ibv_qp, cq: *mut ffi::ibv_cq, name: &str) -> Result<TxQueueRes, DeviceError> {
        let mut dv_qp = ffi::manadv_qp::default();
        let mut dv_cq = ffi::manadv_cq::default();
        let mut obj = ffi::manadv_obj::empty();
        obj.qp.r#in = qp;
        obj.qp.out = &mut dv_qp;
        obj.cq.r#in = cq;
        obj.cq.out = &mut dv_cq;
        // SAFETY: `qp` and `cq` are live objects of this context; the out
        // structs outlive the call.
        let rc = unsafe { ffi::manadv_init_obj(&mut obj, ffi::MANADV_OBJ_QP | ffi::MANADV_OBJ_CQ) };
        if rc != 0 {
            return Err(verbs_error(&format!("{name}: manadv_init_obj (TX)"), errno_value(rc), None));
        }
        let sq = ring(&self.alloc, dv_qp.sq_buf, dv_qp.sq_size as usize, dv_qp.sq_id, "TX send queue")?;
        let cq = ring(&self.alloc, dv_cq.buf, dv_cq.count as usize * CQE_SIZE, dv_cq.cq_id, "TX completion queue")?;
        let vp_offset = u16::try_from(dv_qp.tx_vp_offset)
            .map_err(|_| invalid(format!("{name}: vPort offset {} out of range", dv_qp.tx_vp_offset)))?;
        self.set_db(dv_qp.db_page)?;
        Ok(TxQueueRes { sq, cq, vp_offset })
    }

    fn set_db(&mut self, db: *mut c_void) -> Result<(), DeviceError> {
        if db.is_null() {
            return Err(invalid(format!("{}: rdma-core returned no doorbell page", self.info.name)));
        }
        if !self.db.is_null() && self.db != db.cast::<u8>() {
            return Err(invalid(format!("{}: queues of one context report different doorbell pages", self.info.name)));
        }
        self.db = db.cast::<u8>();
        Ok(())
    }

    fn create_rx_queues(
        &mut self,
        n: u16,
        rq_bytes: usize,
        cq_entries: u32,
        rss: &RssConfig,
    ) -> Result<Vec<RxQueueRes>, DeviceError> {
        let name = self.info.name.clone();
        if self.rx.is_some() {
            return Err(invalid(format!("{name}: RX queues already exist (destroy_queues first)")));
        }
        if self.tx.is_empty() {
            return Err(invalid(format!(
                "{name}: create the TX queues before the RX queues (the first TX queue configures the vPort)"
            )));
        }
        if n > self.limits.max_queues {
            return Err(invalid(format!("{name}: {n} RX queues, the device allows {}", self.limits.max_queues)));
        }
        let perm = rss_plan(rss, n)?;
        // One SGE per receive WQE (32 bytes each). mana_ib sizes the
        // hardware RQ from the buffer and does not check `max_wr` against
        // `max_qp_wr` (that limit applies to send queues and CQs).
        let (wr, sge) = wq_caps(rq_bytes, 0, 1, 256, "receive queue")?;
        check_cq(cq_entries, self.limits.max_cqe, "RX completion queue")?;

        self.rx = Some(RxObjs {
            qp: ptr::null_mut(),
            table: ptr::null_mut(),
            wqs: Vec::with_capacity(n as usize),
            cqs: Vec::with_capacity(n as usize),
            perm: perm.clone(),
            key: rss.key,
            l4: rss.l4,
        });
        match self.build_rx(n, wr, sge, cq_entries, rss, &perm) {
            Ok(res) => Ok(res),
            Err(e) => {
                if let Some(rx) = self.rx.take() {
                    destroy_rx(&rx);
                }
                Err(e)
            }
        }
    }

    fn build_rx(
        &mut self,
        n: u16,
        wr: u32,
        sge: u32,
        cq_entries: u32,
        rss: &RssConfig,
        perm: &[u16],
    ) -> Result<Vec<RxQueueRes>, DeviceError> {
        let name = self.info.name.clone();
        for i in 0..n {
            let cq = self.create_cq(cq_entries, &format!("RX completion queue {i}"))?;
            if let Some(rx) = self.rx.as_mut() {
                rx.cqs.push(cq);
            }
            let mut wattr = ffi::ibv_wq_init_attr {
                wq_context: ptr::null_mut(),
                wq_type: ffi::IBV_WQT_RQ,
                max_wr: wr,
                max_sge: sge,
                pd: self.parent,
                cq,
                comp_mask: 0,
                create_flags: 0,
            };
            // SAFETY: `ctx`, `parent` and `cq` are live; `wattr` is
            // initialised. The ring comes from our allocator.
            let wq = unsafe { ffi::vr_ibv_create_wq(self.ctx, &mut wattr) };
            if wq.is_null() {
                return Err(verbs_error(
                    &format!("{name}: creating receive queue {i}"),
                    last_errno(),
                    Some(&self.busy_hint),
                ));
            }
            if let Some(rx) = self.rx.as_mut() {
                rx.wqs.push(wq);
            }
        }
        let wqs = self.rx.as_ref().map(|rx| rx.wqs.clone()).unwrap_or_default();
        let cqs = self.rx.as_ref().map(|rx| rx.cqs.clone()).unwrap_or_default();

        let mut table: Vec<*mut ffi::ibv_wq> = perm.iter().map(|&q| wqs[q as usize]).collect();
        let mut tattr = ffi::ibv_rwq_ind_table_init_attr {
            log_ind_tbl_size: n.trailing_zeros(),
            ind_tbl: table.as_mut_ptr(),
            comp_mask: 0,
        };
        // SAFETY: `table` holds 2^log_ind_tbl_size live WQs of this context
        // and outlives the call (libmana copies it).
        let t = unsafe { ffi::vr_ibv_create_rwq_ind_table(self.ctx, &mut tattr) };
        if t.is_null() {
            return Err(verbs_error(&format!("{name}: creating the RSS indirection table"), last_errno(), None));
        }
        if let Some(rx) = self.rx.as_mut() {
            rx.table = t;
        }

        let mut key = rss.key;
        let mut attr = ffi::ibv_qp_init_attr_ex::zeroed();
        attr.qp_type = ffi::IBV_QPT_RAW_PACKET;
        attr.comp_mask = ffi::IBV_QP_INIT_ATTR_PD | ffi::IBV_QP_INIT_ATTR_IND_TABLE | ffi::IBV_QP_INIT_ATTR_RX_HASH;
        attr.pd = self.parent;
        attr.rwq_ind_tbl = t;
        attr.rx_hash_conf.rx_hash_function = ffi::IBV_RX_HASH_FUNC_TOEPLITZ;
        attr.rx_hash_conf.rx_hash_key_len = RSS_KEY_LEN as u8;
        attr.rx_hash_conf.rx_hash_key = key.as_mut_ptr();
        attr.rx_hash_conf.rx_hash_fields_mask = rss_fields(rss);
        // SAFETY: all referenced objects are live; `key` outlives the call
        // (libmana copies it into the command).
        let qp = unsafe { ffi::vr_ibv_create_qp_ex(self.ctx, &mut attr) };
        if qp.is_null() {
            return Err(verbs_error(
                &format!("{name}: creating the RSS receive QP"),
                last_errno(),
                Some(&self.busy_hint),
            ));
        }
        if let Some(rx) = self.rx.as_mut() {
            rx.qp = qp;
        }

        // Queue ids exist only now: the RSS QP creates the hardware objects.
        let mut out = Vec::with_capacity(n as usize);
        for (i, (&wq, &cq)) in wqs.iter().zip(&cqs).enumerate() {
            let mut dv_wq = ffi::manadv_rwq::default();
            let mut dv_cq = ffi::manadv_cq::default();
            let mut obj = ffi::manadv_obj::empty();
            obj.rwq.r#in = wq;
            obj.rwq.out = &mut dv_wq;
            obj.cq.r#in = cq;
            obj.cq.out = &mut dv_cq;
            // SAFETY: `wq` and `cq` are live objects of this context; the
            // out structs outlive the call.
            let rc = unsafe { ffi::manadv_init_obj(&mut obj, ffi::MANADV_OBJ_RWQ | ffi::MANADV_OBJ_CQ) };
            if rc != 0 {
                return Err(verbs_error(&format!("{name}: manadv_init_obj (RX {i})"), errno_value(rc), None));
            }
            let rq = ring(&self.alloc, dv_wq.buf, dv_wq.size as usize, dv_wq.wq_id, "receive queue")?;
            let cq = ring(&self.alloc, dv_cq.buf, dv_cq.count as usize * CQE_SIZE, dv_cq.cq_id, "RX completion queue")?;
            self.set_db(dv_wq.db_page)?;
            out.push(RxQueueRes { rq, cq });
        }
        Ok(out)
    }

    fn set_rss(&self, rss: &RssConfig) -> Result<(), DeviceError> {
        let Some(rx) = &self.rx else {
            // No live RX queues: the next `create_rx_queues` takes its own.
            return Ok(());
        };
        let n = rx.perm.len() as u16;
        let same = rss_plan(rss, n).map(|p| p == rx.perm).unwrap_or(false) && rss.key == rx.key && rss.l4 == rx.l4;
        if same {
            return Ok(());
        }
        Err(DeviceError::Unsupported(
            "changing RSS on live RX queues: the rdma-core RSS QP owns the hardware RX objects and cannot be \
             re-created under them; recreate the RX queues (destroy_queues, create_rx_queues) with the new RSS",
        ))
    }

    fn destroy_queues(&mut self) {
        if let Some(rx) = self.rx.take() {
            destroy_rx(&rx);
        }
        // Each TX QP before its CQ; the last one unconfigures the vPort.
        for t in self.tx.drain(..) {
            destroy_tx(&t);
        }
        self.db = ptr::null_mut();
    }

    fn register_memory(&mut self, base: usize, len: usize) -> Result<u32, DeviceError> {
        if len == 0 || base == 0 {
            return Err(invalid(format!("registering {len} bytes at {base:#x}: empty or null range")));
        }
        // SAFETY: `pd` is live. The caller owns `base..base+len`; the kernel
        // pins it and checks that it is mapped.
        let mr = unsafe { ffi::vr_ibv_reg_mr(self.pd, base as *mut c_void, len, ffi::IBV_ACCESS_LOCAL_WRITE) };
        if mr.is_null() {
            return Err(verbs_error(
                &format!("{}: registering {len} bytes at {base:#x} (memlock limit?)", self.info.name),
                last_errno(),
                None,
            ));
        }
        // SAFETY: `mr` is a live `struct ibv_mr` returned just above.
        let lkey = unsafe { (*mr).lkey };
        if let Some(old) = self.mrs.insert(lkey, mr) {
            // A key is unique among live registrations; a stale entry can
            // only be a registration the device already dropped.
            // SAFETY: `old` came from `ibv_reg_mr` and is released once.
            unsafe { ffi::ibv_dereg_mr(old) };
        }
        Ok(lkey)
    }

    fn deregister_memory(&mut self, key: u32) {
        if let Some(mr) = self.mrs.remove(&key) {
            // SAFETY: `mr` came from `ibv_reg_mr` and is released once.
            unsafe { ffi::ibv_dereg_mr(mr) };
        }
    }

    /// Reads pending async events without blocking. `Some(true)` when the
    /// device is gone (fatal event, or the fd reports the device dead).
    fn device_gone(&self) -> bool {
        loop {
            let mut ev = ffi::ibv_async_event { element: ptr::null_mut(), event_type: -1 };
            // SAFETY: `ctx` is open and its async fd non-blocking; `ev` is a
            // valid out-struct.
            let rc = unsafe { ffi::ibv_get_async_event(self.ctx, &mut ev) };
            if rc != 0 {
                let e = io::Error::last_os_error().raw_os_error();
                return matches!(e, Some(libc::EIO) | Some(libc::ENODEV));
            }
            let fatal = ev.event_type == ffi::IBV_EVENT_DEVICE_FATAL;
            // SAFETY: `ev` was filled by `ibv_get_async_event`; every event is
            // acknowledged once (destroying a QP/CQ waits for that).
            unsafe { ffi::ibv_ack_async_event(&mut ev) };
            if fatal {
                return true;
            }
        }
    }

    fn has_queues(&self) -> bool {
        !self.tx.is_empty() || self.rx.is_some()
    }
}

fn destroy_rx(rx: &RxObjs) {
    // Reverse of creation: the RSS QP (it owns the hardware RX objects),
    // the indirection table, then each WQ and its CQ.
    // SAFETY (all calls below): each pointer is a live object of the same
    // context, destroyed once, after everything that references it. A
    // failure (dead device) leaves its ring to `RingAllocator::release_all`.
    if !rx.qp.is_null() {
        // SAFETY: see above.
        unsafe { ffi::ibv_destroy_qp(rx.qp) };
    }
    if !rx.table.is_null() {
        // SAFETY: see above.
        unsafe { ffi::vr_ibv_destroy_rwq_ind_table(rx.table) };
    }
    for &wq in &rx.wqs {
        // SAFETY: see above.
        unsafe { ffi::vr_ibv_destroy_wq(wq) };
    }
    for &cq in &rx.cqs {
        // SAFETY: see above.
        unsafe { ffi::ibv_destroy_cq(cq) };
    }
}

fn destroy_tx(t: &TxObjs) {
    // SAFETY: `qp` and then `cq` are live objects of one context, destroyed
    // once, the QP before the CQ it uses.
    unsafe {
        ffi::ibv_destroy_qp(t.qp);
        ffi::ibv_destroy_cq(t.cq);
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.destroy_queues();
        for (_, mr) in self.mrs.drain() {
            // SAFETY: each MR came from `ibv_reg_mr` and is released once.
            unsafe { ffi::ibv_dereg_mr(mr) };
        }
        // SAFETY: the parent domain, then the PD, then the context, each
        // released once (null ones were never created); nothing else uses
        // them any more.
        unsafe {
            if !self.parent.is_null() {
                ffi::ibv_dealloc_pd(self.parent);
            }
            if !self.pd.is_null() {
                ffi::ibv_dealloc_pd(self.pd);
            }
            if !self.ctx.is_null() {
                ffi::ibv_close_device(self.ctx);
            }
        }
        // The context is closed: no queue uses our ring memory any more.
        self.alloc.release_all();
    }
}

// ---- the Device ------------------------------------------------------------------

enum Health {
    Up,
    /// Gone since `since`; the last re-open attempt was at `tried`.
    Removed {
        since: Instant,
        tried: Option<Instant>,
    },
}

struct State {
    /// The current context (dead while `Removed`).
    cur: Ctx,
    /// Contexts replaced by a re-open whose queues the driver had not
    /// destroyed yet; closed by the next `destroy_queues` or on drop.
    retired: Vec<Ctx>,
    health: Health,
    /// Why the latest re-open attempt failed.
    reopen_error: Option<String>,
}

/// Names of the MANA RDMA devices libibverbs lists (`mana_0`, …).
pub fn mana_device_names() -> Vec<String> {
    DeviceList::get()
        .entries()
        .into_iter()
        .filter(|(_, name, path)| sysfs::is_mana_device(name, Path::new(path)))
        .map(|(_, name, _)| name)
        .collect()
}

/// A MANA vPort on real hardware, through rdma-core. See the module docs.
pub struct HwDevice {
    mac: MacAddr,
    state: Mutex<State>,
    /// The doorbell page of the current context; null while no queue exists
    /// or the device is gone, so that stray doorbells are dropped.
    db: AtomicPtr<u8>,
}

impl HwDevice {
    /// Opens the MANA vPort whose Ethernet MAC is `mac`.
    ///
    /// Errors name the problem: no MANA RDMA device at all, no vPort with
    /// that MAC (listing the MACs seen), or a verbs failure.
    pub fn open(mac: MacAddr) -> Result<HwDevice, DeviceError> {
        let cur = Ctx::open(mac)?;
        Ok(HwDevice {
            mac,
            state: Mutex::new(State { cur, retired: Vec::new(), health: Health::Up, reopen_error: None }),
            db: AtomicPtr::new(ptr::null_mut()),
        })
    }

    /// The MANA vPorts visible on this machine (device, port, MAC, netdev),
    /// for diagnostics and `--list` style commands.
    pub fn list_ports() -> Vec<(String, PortMac)> {
        let list = DeviceList::get();
        list.entries()
            .into_iter()
            .filter(|(_, name, path)| sysfs::is_mana_device(name, Path::new(path)))
            .flat_map(|(_, name, path)| sysfs::port_macs(Path::new(&path)).into_iter().map(move |p| (name.clone(), p)))
            .collect()
    }

    /// While the device is removed: why the latest attempt to open it
    /// again failed (e.g. "no MANA RDMA device found …" until the host
    /// brings it back).
    pub fn last_reopen_error(&self) -> Option<String> {
        self.lock().reopen_error.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    /// The state, or `Gone` while the device is removed.
    fn live(&self) -> Result<MutexGuard<'_, State>, DeviceError> {
        let st = self.lock();
        match st.health {
            Health::Up => Ok(st),
            Health::Removed { .. } => Err(DeviceError::Gone),
        }
    }

    fn publish_db(&self, st: &State) {
        self.db.store(st.cur.db, Ordering::Release);
    }
}

impl Device for HwDevice {
    fn info(&self) -> DeviceInfo {
        self.lock().cur.info.clone()
    }

    fn register_memory(&self, base: usize, len: usize) -> Result<u32, DeviceError> {
        self.live()?.cur.register_memory(base, len)
    }

    fn deregister_memory(&self, key: u32) {
        self.lock().cur.deregister_memory(key);
    }

    fn create_eq(&self, _entries: u32) -> Result<Option<RingInfo>, DeviceError> {
        // rdma-core does not expose an EQ: completions are polled, events
        // come through `poll_event`.
        Ok(None)
    }

    fn create_tx_queue(&self, sq_bytes: usize, cq_entries: u32, _eq: Option<u32>) -> Result<TxQueueRes, DeviceError> {
        let mut st = self.live()?;
        let res = st.cur.create_tx_queue(sq_bytes, cq_entries)?;
        self.publish_db(&st);
        Ok(res)
    }

    fn create_rx_queues(
        &self,
        n: u16,
        rq_bytes: usize,
        cq_entries: u32,
        rss: &RssConfig,
        _eq: Option<u32>,
    ) -> Result<Vec<RxQueueRes>, DeviceError> {
        let mut st = self.live()?;
        let res = st.cur.create_rx_queues(n, rq_bytes, cq_entries, rss)?;
        self.publish_db(&st);
        Ok(res)
    }

    fn set_rss(&self, rss: &RssConfig) -> Result<(), DeviceError> {
        self.live()?.cur.set_rss(rss)
    }

    fn destroy_queues(&self) {
        let mut st = self.lock();
        self.db.store(ptr::null_mut(), Ordering::Release);
        st.cur.destroy_queues();
        // The driver no longer touches any old ring: close replaced contexts.
        st.retired.clear();
    }

    fn doorbell(&self, offset: u32, value: u64) {
        let db = self.db.load(Ordering::Acquire);
        if db.is_null() || offset > DB_PAGE_SIZE - 8 || offset & 7 != 0 {
            return;
        }
        io_write_barrier();
        // SAFETY: `db` is the context's mapped 4 KiB doorbell page (it stays
        // mapped until the context closes, which happens only after the
        // pointer is cleared and the driver has destroyed its queues), and
        // `offset` is 8-aligned and inside it.
        unsafe { ptr::write_volatile(db.add(offset as usize).cast::<u64>(), value) };
    }

    fn poll_event(&self) -> Option<DeviceEvent> {
        let mut st = self.lock();
        match st.health {
            Health::Up => {
                if st.cur.device_gone() {
                    self.db.store(ptr::null_mut(), Ordering::Release);
                    st.health = Health::Removed { since: Instant::now(), tried: None };
                    return Some(DeviceEvent::Removed);
                }
                None
            }
            Health::Removed { since, tried } => {
                let now = Instant::now();
                let due = match tried {
                    None => now.duration_since(since) >= REPROBE_FIRST_DELAY,
                    Some(t) => now.duration_since(t) >= REPROBE_INTERVAL,
                };
                if !due {
                    return None;
                }
                st.health = Health::Removed { since, tried: Some(now) };
                let new = match Ctx::open(self.mac) {
                    Ok(c) => c,
                    Err(e) => {
                        st.reopen_error = Some(e.to_string());
                        return None;
                    }
                };
                st.reopen_error = None;
                let old = std::mem::replace(&mut st.cur, new);
                if old.has_queues() {
                    // The driver may still read those rings: keep them until
                    // its next `destroy_queues`.
                    st.retired.push(old);
                } else {
                    drop(old);
                }
                st.health = Health::Up;
                Some(DeviceEvent::Returned)
            }
        }
    }
}

impl Drop for HwDevice {
    fn drop(&mut self) {
        self.db.store(ptr::null_mut(), Ordering::Release);
        // `State` drops its contexts: queues, MRs, domains, then the context.
    }
}

/// Orders every earlier store (the WQEs) before the doorbell store that
/// follows, including towards the device: the doorbell page is mapped
/// write-combining. arm64: a store barrier over the outer shareable domain,
/// as rdma-core uses before MMIO doorbells.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn io_write_barrier() {
    // SAFETY: a barrier instruction; no memory is accessed.
    unsafe { std::arch::asm!("dmb oshst", options(nostack, preserves_flags)) };
}

/// Orders every earlier store (the WQEs) before the doorbell store that
/// follows, including towards the device: the doorbell page is mapped
/// write-combining. On x86-64 a SeqCst fence is `mfence`, which also orders
/// write-combining stores.
#[cfg(not(target_arch = "aarch64"))]
#[inline(always)]
fn io_write_barrier() {
    std::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss(reta: Vec<u16>) -> RssConfig {
        RssConfig { key: crate::rss::DEFAULT_KEY, reta, l4: true }
    }

    #[test]
    fn open_without_mana_device_says_so() {
        // Build and CI machines have no MANA RDMA device (libibverbs finds
        // none); on an Azure VM with one this test has nothing to check.
        if !mana_device_names().is_empty() {
            return;
        }
        let err = HwDevice::open(MacAddr([0x00, 0x0d, 0x3a, 0x12, 0x34, 0x56]))
            .err()
            .expect("no MANA device here, so open must fail");
        let msg = err.to_string();
        assert!(
            msg.starts_with("no MANA RDMA device found (is the mana_ib kernel module loaded? rdma-core >= 44 needed)"),
            "{msg}"
        );
        assert!(matches!(err, DeviceError::Io(ref e) if e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn select_port_matches_mac_and_lists_others() {
        let t = sysfs::tests::TempDir::new("select");
        let a = sysfs::tests::fake_ibdev(&t.0, "mana_0", &[("enP1s1", "0\n", "00:0d:3a:00:00:01\n")]);
        let b = sysfs::tests::fake_ibdev(
            &t.0,
            "mana_1",
            &[("enP2s1", "0\n", "00:0d:3a:00:00:02\n"), ("enP2s2", "1\n", "00:0d:3a:00:00:03\n")],
        );
        let m = sysfs::tests::fake_ibdev(&t.0, "mlx5_0", &[("ens1", "0\n", "00:0d:3a:00:00:04\n")]);
        let entries = vec![
            (ptr::null_mut(), "mlx5_0".to_string(), m.display().to_string()),
            (ptr::null_mut(), "mana_0".to_string(), a.display().to_string()),
            (ptr::null_mut(), "mana_1".to_string(), b.display().to_string()),
        ];
        let (i, p) = select_port(&entries, MacAddr([0, 0x0d, 0x3a, 0, 0, 3])).expect("found");
        assert_eq!(i, 2);
        assert_eq!(p.port, 2);
        assert_eq!(p.netdev, "enP2s2");

        // The non-MANA device's MAC is never selected.
        let err = select_port(&entries, MacAddr([0, 0x0d, 0x3a, 0, 0, 4])).expect_err("not MANA");
        let msg = err.to_string();
        assert!(msg.starts_with("no MANA vPort with MAC 00:0d:3a:00:00:04; MACs seen: "), "{msg}");
        assert!(msg.contains("00:0d:3a:00:00:01 (mana_0 port 1, enP1s1)"), "{msg}");
        assert!(msg.contains("00:0d:3a:00:00:03 (mana_1 port 2, enP2s2)"), "{msg}");
        assert!(!msg.contains("ens1"), "{msg}");
    }

    #[test]
    fn select_port_without_mana_devices() {
        let t = sysfs::tests::TempDir::new("nomana");
        let m = sysfs::tests::fake_ibdev(&t.0, "mlx5_0", &[]);
        let err = select_port(&[], MacAddr([2, 0, 0, 0, 0, 1])).expect_err("none");
        assert_eq!(err.to_string(), NO_DEVICE);
        let entries = vec![(ptr::null_mut(), "mlx5_0".to_string(), m.display().to_string())];
        let err = select_port(&entries, MacAddr([2, 0, 0, 0, 0, 1])).expect_err("none");
        assert_eq!(err.to_string(), format!("{NO_DEVICE}; other RDMA devices present: mlx5_0"));
    }

    #[test]
    fn select_port_on_mana_device_without_netdevs() {
        let t = sysfs::tests::TempDir::new("nonet");
        let a = sysfs::tests::fake_ibdev(&t.0, "mana_0", &[]);
        let entries = vec![(ptr::null_mut(), "mana_0".to_string(), a.display().to_string())];
        let msg = select_port(&entries, MacAddr([2, 0, 0, 0, 0, 1])).expect_err("none").to_string();
        assert!(msg.contains("MACs seen: none"), "{msg}");
    }

    #[test]
    fn wqe_sizes_follow_rdma_core() {
        assert_eq!(wqe_size(1), 32);
        assert_eq!(wqe_size(2), 64);
        assert_eq!(wqe_size(3), 64);
        assert_eq!(wqe_size(7), 128);
        assert_eq!(wqe_size(15), 256);
        assert_eq!(wqe_size(30), 512);
    }

    #[test]
    fn wq_caps_give_exact_ring_sizes() {
        assert_eq!(wq_caps(8192, 8192, 30, 512, "sq").expect("ok"), (256, 1));
        // Too many 32-byte WQEs for max_qp_wr: fewer, larger ones.
        assert_eq!(wq_caps(1 << 20, 16384, 30, 512, "sq").expect("ok"), (16384, 3));
        // Unknown limit (0): no cap.
        assert_eq!(wq_caps(4096, 0, 0, 256, "rq").expect("ok"), (128, 1));
        // RX: at most one SGE here, so no way around max_qp_wr.
        assert!(matches!(wq_caps(1 << 20, 1024, 1, 256, "rq"), Err(DeviceError::Invalid(_))));
        for bad in [0, 2048, 6144, 4097] {
            assert!(matches!(wq_caps(bad, 0, 1, 512, "sq"), Err(DeviceError::Invalid(_))), "{bad}");
        }
        // Every answer reproduces the requested size.
        for shift in 12..=24 {
            let bytes = 1usize << shift;
            let (wr, sge) = wq_caps(bytes, 32768, 30, 512, "sq").expect("ok");
            assert_eq!(wr as usize * wqe_size(sge), bytes);
        }
    }

    #[test]
    fn cq_sizes() {
        assert!(check_cq(64, 0, "cq").is_ok());
        assert!(check_cq(1024, 1024, "cq").is_ok());
        assert!(matches!(check_cq(32, 0, "cq"), Err(DeviceError::Invalid(_))));
        assert!(matches!(check_cq(100, 0, "cq"), Err(DeviceError::Invalid(_))));
        assert!(matches!(check_cq(2048, 1024, "cq"), Err(DeviceError::Invalid(_))));
    }

    #[test]
    fn rss_spread_maps_to_identity() {
        for n in [1u16, 2, 4, 8, 16, 64] {
            assert_eq!(rss_plan(&RssConfig::spread(n), n).expect("ok"), (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn rss_repeated_permutation_is_accepted() {
        let reta: Vec<u16> = (0..64).map(|i| [2, 0, 3, 1][i % 4]).collect();
        assert_eq!(rss_plan(&rss(reta), 4).expect("ok"), vec![2, 0, 3, 1]);
        // A table larger than the hardware's 64 entries, still periodic.
        let reta: Vec<u16> = (0..128).map(|i| (i % 2) as u16).collect();
        assert_eq!(rss_plan(&rss(reta), 2).expect("ok"), vec![0, 1]);
    }

    #[test]
    fn rss_tables_mana_cannot_express() {
        // Weighted: queue 0 twice in the first n entries.
        let msg = rss_plan(&rss(vec![0, 0, 1, 2]), 4).expect_err("dup").to_string();
        assert!(msg.contains("exactly once"), "{msg}");
        // Not periodic.
        let mut reta: Vec<u16> = (0..64).map(|i| (i % 4) as u16).collect();
        reta[10] = 3;
        let msg = rss_plan(&rss(reta), 4).expect_err("aperiodic").to_string();
        assert!(msg.contains("entry 10 is queue 3"), "{msg}");
        // Too short to name every queue.
        assert!(rss_plan(&rss(vec![0, 1]), 4).is_err());
        // Out of range, non power of two queue counts / sizes.
        assert!(rss_plan(&rss(vec![0, 4, 1, 2]), 4).is_err());
        assert!(rss_plan(&RssConfig::spread(3), 3).is_err());
        assert!(rss_plan(&rss(vec![0, 1, 0]), 2).is_err());
        assert!(rss_plan(&RssConfig::spread(128), 128).is_err());
        assert!(rss_plan(&rss(Vec::new()), 1).is_err());
    }

    #[test]
    fn rss_fields_cover_l3_and_optionally_l4() {
        let mut r = RssConfig::spread(2);
        assert_eq!(rss_fields(&r), 0xff);
        r.l4 = false;
        assert_eq!(rss_fields(&r), 0x0f);
    }

    #[test]
    fn ring_allocator_hands_out_zeroed_pages_and_checks_rings() {
        let a = RingAllocator::new();
        let data = (&*a as *const RingAllocator).cast_mut().cast::<c_void>();
        // SAFETY: `data` is the live allocator, as libmana would pass it.
        let p = unsafe { ring_alloc(5000, data) };
        assert!(!p.is_null());
        assert_eq!(p as usize % 4096, 0);
        assert_eq!(a.len_of(p), Some(8192));
        // SAFETY: `p` points to 8192 mapped bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), 8192) };
        assert!(bytes.iter().all(|&b| b == 0));

        let r = ring(&a, p, 8192, 7, "sq").expect("ring");
        assert_eq!((r.size, r.id), (8192, 7));
        assert!(matches!(ring(&a, p, 16384, 7, "sq"), Err(DeviceError::Invalid(_))));
        assert!(matches!(ring(&a, p, 6000, 7, "sq"), Err(DeviceError::Invalid(_))));
        assert!(matches!(ring(&a, ptr::null_mut(), 4096, 7, "sq"), Err(DeviceError::Invalid(_))));
        let mut other = [0u8; 16];
        assert!(matches!(ring(&a, other.as_mut_ptr().cast(), 4096, 7, "sq"), Err(DeviceError::Invalid(_))));

        // SAFETY: as above; `p` came from this allocator.
        unsafe { ring_free(p, data) };
        assert_eq!(a.len_of(p), None);
        // Freeing an unknown pointer is ignored.
        // SAFETY: as above.
        unsafe { ring_free(other.as_mut_ptr().cast(), data) };

        let q = a.alloc(4096);
        assert!(!q.is_null());
        a.release_all();
        assert_eq!(a.len_of(q), None);
    }

    #[test]
    fn errors_carry_the_netdev_advice() {
        let hint = sysfs::busy_hint(&["eth1".to_string()]);
        let e =
            verbs_error("mana_0 port 1: creating a TX queue", io::Error::from_raw_os_error(libc::EBUSY), Some(&hint));
        let msg = e.to_string();
        assert!(msg.contains("the kernel netdev eth1 must be down: ip link set eth1 down"), "{msg}");
        assert!(matches!(verbs_error("x", io::Error::from_raw_os_error(libc::ENOMEM), None), DeviceError::NoMemory(_)));
        assert!(matches!(verbs_error("x", io::Error::from_raw_os_error(libc::EINVAL), None), DeviceError::Invalid(_)));
        let msg = verbs_error("x", io::Error::from_raw_os_error(libc::ENODEV), Some(&hint)).to_string();
        assert!(msg.contains("ip link set eth1 down"), "{msg}");
    }
}
