//! The `tap` driver: a Linux kernel TAP interface as a router port.
//!
//! The port is the far end of the kernel's "wire": every Ethernet frame the
//! kernel transmits on the TAP interface is received by the port, and every
//! frame the port transmits is received by the kernel on that interface, as
//! if it came from a NIC. Its main use is the punt path (packets for the
//! router's own addresses, or for anything the fast path does not handle,
//! go to the kernel's stack and its answers come back), but it is also an
//! ordinary port: move the interface into a network namespace or a bridge
//! and the router has a neighbour there.
//!
//! The driver opens `/dev/net/tun` (non-blocking) and creates the TAP
//! interface (`TUNSETIFF`, `IFF_TAP | IFF_NO_PI`) in the calling thread's
//! network namespace, or attaches to a persistent TAP of that name. The
//! interface is not persistent: it disappears when the port (and its queue
//! handles) are dropped. `start` sets the interface's MTU to the port's and
//! brings it up; `stop` brings it down. The kernel interface has its own
//! MAC address; the port's MAC (`mac`, or a locally administered one) is
//! the address of the router on the far end of the wire. The interface may
//! be moved to another namespace or renamed while the port is open: the
//! driver finds it by its file descriptor (`TUNGETIFF`, `TUNGETDEVNETNS`).
//!
//! Args: `ifname` (default: the port name), 1 to 15 bytes, without `/`,
//! `:`, whitespace or NUL; a `%d` in it lets the kernel pick a number.
//! `rx_ring` and `tx_ring` are ignored (the kernel queues up to the
//! interface's `txqueuelen` frames for the port).
//!
//! Queues: one RX queue (no multiqueue TAP, no RSS); up to 64 TX queues,
//! one per worker, all writing the one descriptor (a TAP write takes a
//! whole frame, so writers never interleave).
//!
//! Limits: no vnet
//! header and so no checksum or segmentation offloads (the kernel hands out
//! complete, MTU-sized frames with checksums filled in), and one system
//! call and one copy per packet in each direction (`read(2)` into, and
//! `write(2)` from, the packet's pool buffer). It is a slow path, not a
//! fast NIC.
//!
//! Driver drops: RX `no_buffer` (a burst stopped because the pool was empty
//! while a frame was waiting; the frame stays queued in the kernel, which
//! drops beyond `txqueuelen` and counts that on the interface), `oversize`
//! (a frame longer than MTU + 18 bytes), `runt` (shorter than 14 bytes),
//! `read_error`; TX `oversize`, `runt`, `link_down` (port stopped or the
//! interface deleted), `write_error`. TX counter `would_block`: bursts cut
//! short because the kernel took no more (the rest stay with the caller).

use crate::buf::PktBurst;
use crate::counter::Counter;
use crate::lock;
use crate::netdev::{
    check_ifname, errno, ifr_name, send_frames, zeroed_ifreq, TxCounters, ETH_HLEN, ETH_OVERHEAD, MIN_MTU,
};
use crate::pool::{PagePool, PoolConfig};
use crate::port::*;
use std::ffi::CStr;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub const DRIVER: &str = "tap";
/// RX queues of a tap port (one reader of the descriptor).
pub const MAX_QUEUES: u16 = 1;
/// TX queues a tap port offers: one per worker, all writing the one
/// descriptor (a TAP write is one whole frame, so writers never interleave).
pub const MAX_TX_QUEUES: u16 = 64;
/// Largest MTU a tap port accepts.
pub const MAX_MTU: u16 = crate::netdev::MAX_MTU;
/// Longest interface name (IFNAMSIZ less the NUL).
pub const MAX_IFNAME: usize = crate::netdev::MAX_IFNAME;
const HEADROOM: u16 = 128;
const DEFAULT_BUFFERS: u32 = 1024;
const ARGS: &[&str] = &["ifname"];
const TUN_PATH: &CStr = c"/dev/net/tun";

// linux/if_tun.h requests, in the asm-generic ioctl encoding (x86, arm,
// riscv, s390x, loongarch): dir << 30 | size << 16 | type << 8 | nr.
const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;
/// `_IOW('T', 202, int)`: create or attach to a TUN/TAP interface.
const TUNSETIFF: u32 = ioc(IOC_WRITE, b'T', 202, mem::size_of::<libc::c_int>());
/// `_IOR('T', 210, unsigned int)`: the attached interface's name and flags.
const TUNGETIFF: u32 = ioc(IOC_READ, b'T', 210, mem::size_of::<libc::c_uint>());
/// `_IO('T', 227)`: a descriptor of the interface's network namespace (Linux 5.2).
const TUNGETDEVNETNS: u32 = ioc(IOC_NONE, b'T', 227, 0);

/// What `open` checked and derived from a [`PortConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Params {
    ifname: String,
    max_mtu: u16,
    buffers: u32,
    tx_queues: u16,
}

/// Checks `cfg` without touching the system.
fn params(cfg: &PortConfig) -> Result<Params, PortError> {
    let invalid = |msg: String| PortError::InvalidConfig(format!("port {}: {msg}", cfg.name));
    if let Some(k) = cfg.args.keys().find(|k| !ARGS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown tap driver arg {k:?} (known: {})", ARGS.join(", "))));
    }
    let ifname = cfg.args.get("ifname").unwrap_or(&cfg.name);
    check_ifname(ifname).map_err(|why| invalid(format!("tap ifname {ifname:?} {why}")))?;
    if cfg.rx_queues > MAX_QUEUES {
        return Err(invalid(format!(
            "rx_queues must be {MAX_QUEUES} for a tap port (one receive queue; 0 means {MAX_QUEUES}), got {}",
            cfg.rx_queues
        )));
    }
    if cfg.tx_queues > MAX_TX_QUEUES {
        return Err(invalid(format!(
            "tx_queues must be 1..={MAX_TX_QUEUES} for a tap port (0 means 1), got {}",
            cfg.tx_queues
        )));
    }
    if !(MIN_MTU..=MAX_MTU).contains(&cfg.mtu) {
        return Err(PortError::MtuOutOfRange { mtu: cfg.mtu, min: MIN_MTU, max: MAX_MTU });
    }
    Ok(Params {
        ifname: ifname.clone(),
        max_mtu: cfg.mtu.max(1500),
        buffers: if cfg.pool_buffers == 0 { DEFAULT_BUFFERS } else { cfg.pool_buffers },
        tx_queues: cfg.tx_queues.max(1),
    })
}

/// `ifr_name` as a string (up to the first NUL).
fn name_of(name: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = name.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A new AF_INET datagram socket for interface ioctls, in the calling
/// thread's network namespace.
fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The network namespace the TAP interface of `tun` is in now: its
/// identity (device and inode of the nsfs file) and a descriptor of it.
fn device_netns(tun: &OwnedFd) -> io::Result<((u64, u64), OwnedFd)> {
    // SAFETY: TUNGETDEVNETNS takes no argument and returns a new descriptor.
    let raw = unsafe { libc::ioctl(tun.as_raw_fd(), TUNGETDEVNETNS as _) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let ns = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: stat holds only integers; all-zero is a valid value.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is a writable struct stat.
    if unsafe { libc::fstat(ns.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(((st.st_dev as u64, st.st_ino as u64), ns))
}

/// An interface-ioctl socket in the network namespace `ns`, made by a
/// short-lived thread that enters it (sockets stay in the namespace they
/// were made in, whichever thread uses them later).
fn socket_in(ns: OwnedFd) -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("tap-netns".into())
        .spawn(move || {
            // SAFETY: `ns` is an open namespace descriptor; setns moves only
            // this thread, which ends right after making the socket.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            inet_socket()
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace helper thread panicked"))?
}

/// Whether a frame is waiting on `fd` (a zero-timeout poll).
fn readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: `pfd` is one valid pollfd and nfds is 1.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents & libc::POLLIN != 0
}

/// A failed step: what was tried, and the OS error.
type StepError = (&'static str, io::Error);

/// The socket interface ioctls go through, and the namespace it is in.
struct Ctl {
    /// Identity of the namespace `sock` was made in, when the kernel can
    /// tell (`TUNGETDEVNETNS`, Linux 5.2).
    ns: Option<(u64, u64)>,
    sock: OwnedFd,
}

struct RxShared {
    taken: AtomicBool,
    pool: PagePool,
    packets: Counter,
    bytes: Counter,
    no_buffer: Counter,
    oversize: Counter,
    runt: Counter,
    read_error: Counter,
}

struct TxShared {
    taken: AtomicBool,
    c: TxCounters,
}

struct Shared {
    id: PortId,
    name: String,
    /// The interface name the kernel gave at open.
    ifname: String,
    mac: MacAddr,
    mtu: AtomicU16,
    max_mtu: u16,
    started: AtomicBool,
    /// The interface was deleted under the open descriptor (`EBADFD`).
    gone: AtomicBool,
    tun: OwnedFd,
    ctl: Mutex<Ctl>,
    rss: Mutex<RssConfig>,
    rx: RxShared,
    /// One per TX queue.
    tx: Box<[TxShared]>,
}

impl Shared {
    /// The interface's name now (it follows renames).
    fn current_name(&self) -> Result<[libc::c_char; libc::IFNAMSIZ], StepError> {
        let mut ifr = zeroed_ifreq();
        // SAFETY: TUNGETIFF writes one struct ifreq, which `ifr` is.
        let r = unsafe { libc::ioctl(self.tun.as_raw_fd(), TUNGETIFF as _, &mut ifr as *mut libc::ifreq) };
        if r < 0 {
            return Err(("TUNGETIFF", io::Error::last_os_error()));
        }
        Ok(ifr.ifr_name)
    }

    /// The ioctl socket, moved into the interface's namespace if the
    /// interface has changed namespace since the socket was made.
    fn ctl(&self) -> Result<MutexGuard<'_, Ctl>, StepError> {
        let mut ctl = lock(&self.ctl);
        match device_netns(&self.tun) {
            Ok((ns, fd)) => {
                if ctl.ns != Some(ns) {
                    ctl.sock = socket_in(fd).map_err(|e| ("socket in the interface's network namespace", e))?;
                    ctl.ns = Some(ns);
                }
            }
            // Before Linux 5.2, or not allowed: the namespace of open.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL | libc::EPERM)) => {}
            Err(e) => return Err(("TUNGETDEVNETNS", e)),
        }
        Ok(ctl)
    }

    /// An interface ioctl (`SIOC*IF*`) on the interface, wherever it is now.
    fn if_ioctl(&self, req: libc::c_ulong, what: &'static str, ifr: &mut libc::ifreq) -> Result<(), StepError> {
        ifr.ifr_name = self.current_name()?;
        let ctl = self.ctl()?;
        // SAFETY: every request passed here reads and writes one `struct ifreq`, which `ifr` is.
        let r = unsafe { libc::ioctl(ctl.sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) };
        if r < 0 {
            return Err((what, io::Error::last_os_error()));
        }
        Ok(())
    }

    fn flags(&self) -> Result<libc::c_short, StepError> {
        let mut ifr = zeroed_ifreq();
        self.if_ioctl(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel filled in `ifru_flags`.
        Ok(unsafe { ifr.ifr_ifru.ifru_flags })
    }

    fn set_up(&self, up: bool) -> Result<(), StepError> {
        let flags = self.flags()?;
        let want = if up { flags | libc::IFF_UP as libc::c_short } else { flags & !(libc::IFF_UP as libc::c_short) };
        if want == flags {
            return Ok(());
        }
        let mut ifr = zeroed_ifreq();
        ifr.ifr_ifru.ifru_flags = want;
        self.if_ioctl(libc::SIOCSIFFLAGS, "SIOCSIFFLAGS", &mut ifr)
    }

    fn set_kernel_mtu(&self, mtu: u16) -> Result<(), StepError> {
        let mut ifr = zeroed_ifreq();
        ifr.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        self.if_ioctl(libc::SIOCSIFMTU, "SIOCSIFMTU", &mut ifr)
    }

    /// A step's error as a port error naming the port and the interface.
    fn err(&self, (what, e): StepError) -> PortError {
        if e.raw_os_error() == Some(libc::EBADFD) {
            self.gone.store(true, Ordering::Relaxed);
        }
        PortError::Io(io::Error::new(e.kind(), format!("tap port {} ({}): {what}: {e}", self.name, self.ifname)))
    }
}

/// Whether `e` says the interface no longer exists.
fn is_gone(e: &StepError) -> bool {
    matches!(e.1.raw_os_error(), Some(libc::EBADFD | libc::ENODEV))
}

/// A `tap` port: a kernel TAP interface.
pub struct TapPort {
    sh: Arc<Shared>,
}

impl TapPort {
    /// Creates the TAP interface `cfg.args["ifname"]` (default: the port
    /// name) in the calling thread's network namespace, or attaches to a
    /// persistent TAP of that name.
    pub fn open(cfg: &PortConfig) -> Result<TapPort, PortError> {
        let p = params(cfg)?;
        let fail = |what: &str, e: io::Error, hint: &str| {
            PortError::Io(io::Error::new(e.kind(), format!("tap port {} ({}): {what}: {e}{hint}", cfg.name, p.ifname)))
        };
        let buf_size = (HEADROOM as usize + ETH_OVERHEAD + p.max_mtu as usize).next_multiple_of(64);
        let pool = PagePool::new(&PoolConfig {
            name: format!("{}/rx0", cfg.name),
            buffers: p.buffers,
            buf_size: buf_size as u16,
            headroom: HEADROOM,
            hugepages: cfg.hugepages,
            ..Default::default()
        })?;

        // SAFETY: TUN_PATH is NUL-terminated; open() takes no other pointer.
        let raw = unsafe { libc::open(TUN_PATH.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::ENOENT) => {
                    " (the kernel needs the tun module: modprobe tun; in a container, the device node: \
                     mknod /dev/net/tun c 10 200)"
                }
                Some(libc::ENODEV) | Some(libc::ENXIO) => " (the kernel has no TUN/TAP support: modprobe tun)",
                Some(libc::EACCES) | Some(libc::EPERM) => " (needs read-write access to /dev/net/tun)",
                _ => "",
            };
            return Err(fail("open /dev/net/tun", e, hint));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let tun = unsafe { OwnedFd::from_raw_fd(raw) };

        let mut ifr = zeroed_ifreq();
        ifr.ifr_name = ifr_name(&p.ifname);
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `ifr` is.
        if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut ifr as *mut libc::ifreq) } < 0 {
            let e = io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) => " (creating or attaching a TAP interface needs CAP_NET_ADMIN)",
                Some(libc::EBUSY) => {
                    " (the TAP interface is already attached to another descriptor: another port or process \
                     uses it)"
                }
                Some(libc::EINVAL) => {
                    " (an interface of that name exists and is not a single-queue TAP, or the name is not valid)"
                }
                _ => "",
            };
            return Err(fail("TUNSETIFF", e, hint));
        }
        // The kernel wrote back the name it used (it expands a `%d`).
        let ifname = name_of(&ifr.ifr_name);
        let ctl = Ctl {
            ns: device_netns(&tun).ok().map(|(ns, _)| ns),
            sock: inet_socket().map_err(|e| fail("socket(AF_INET)", e, ""))?,
        };
        let counter = Counter::new;
        Ok(TapPort {
            sh: Arc::new(Shared {
                id: cfg.id,
                name: cfg.name.clone(),
                ifname,
                mac: cfg.mac.unwrap_or_else(|| MacAddr::local(0x5441_0000 | cfg.id.0 as u32)),
                mtu: AtomicU16::new(cfg.mtu),
                max_mtu: p.max_mtu,
                started: AtomicBool::new(false),
                gone: AtomicBool::new(false),
                tun,
                ctl: Mutex::new(ctl),
                rss: Mutex::new(RssConfig::spread(1)),
                rx: RxShared {
                    taken: AtomicBool::new(false),
                    pool,
                    packets: counter(),
                    bytes: counter(),
                    no_buffer: counter(),
                    oversize: counter(),
                    runt: counter(),
                    read_error: counter(),
                },
                tx: (0..p.tx_queues)
                    .map(|_| TxShared { taken: AtomicBool::new(false), c: TxCounters::default() })
                    .collect(),
            }),
        })
    }

    /// The kernel interface's name now (it follows renames); the name it
    /// was created with if it was deleted.
    pub fn ifname(&self) -> String {
        self.sh.current_name().map(|n| name_of(&n)).unwrap_or_else(|_| self.sh.ifname.clone())
    }
}

impl Drop for TapPort {
    fn drop(&mut self) {
        // Closing the descriptor (with the last queue handle) deletes the
        // interface; a persistent one that was attached to is left down.
        if self.is_started() {
            let _ = self.stop();
        }
    }
}

impl Port for TapPort {
    fn info(&self) -> PortInfo {
        let s = &self.sh;
        PortInfo {
            id: s.id,
            name: s.name.clone(),
            driver: DRIVER,
            mac: s.mac,
            mtu: s.mtu.load(Ordering::Relaxed),
            rx_queues: MAX_QUEUES,
            tx_queues: s.tx.len() as u16,
            capabilities: Capabilities {
                max_mtu: s.max_mtu,
                max_rx_queues: MAX_QUEUES,
                max_tx_queues: MAX_TX_QUEUES,
                ..Default::default()
            },
        }
    }

    fn start(&self) -> Result<(), PortError> {
        let s = &self.sh;
        s.set_kernel_mtu(s.mtu.load(Ordering::Relaxed)).map_err(|e| s.err(e))?;
        s.set_up(true).map_err(|e| s.err(e))?;
        s.started.store(true, Ordering::Release);
        Ok(())
    }

    fn stop(&self) -> Result<(), PortError> {
        let s = &self.sh;
        s.started.store(false, Ordering::Release);
        match s.set_up(false) {
            // Nothing left to bring down.
            Err(e) if is_gone(&e) => Ok(()),
            r => r.map_err(|e| s.err(e)),
        }
    }

    fn is_started(&self) -> bool {
        self.sh.started.load(Ordering::Acquire)
    }

    fn link(&self) -> LinkState {
        let s = &self.sh;
        let running = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let up =
            self.is_started() && !s.gone.load(Ordering::Relaxed) && s.flags().is_ok_and(|f| f & running == running);
        LinkState { up, speed_mbps: 0 }
    }

    fn set_mtu(&self, mtu: u16) -> Result<(), PortError> {
        let s = &self.sh;
        if !(MIN_MTU..=s.max_mtu).contains(&mtu) {
            return Err(PortError::MtuOutOfRange { mtu, min: MIN_MTU, max: s.max_mtu });
        }
        // Applied to the interface now when started, otherwise at start.
        if self.is_started() {
            s.set_kernel_mtu(mtu).map_err(|e| s.err(e))?;
        }
        s.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    fn rss(&self) -> RssConfig {
        lock(&self.sh.rss).clone()
    }

    fn set_rss(&self, cfg: &RssConfig) -> Result<(), PortError> {
        // One RX queue: a valid table can only name queue 0.
        cfg.validate(MAX_QUEUES)?;
        *lock(&self.sh.rss) = cfg.clone();
        Ok(())
    }

    fn rx_queue(&self, q: QueueId) -> Result<Box<dyn RxQueue>, PortError> {
        if q.0 >= MAX_QUEUES {
            return Err(PortError::QueueOutOfRange { queue: q, queues: MAX_QUEUES });
        }
        if self.sh.rx.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        Ok(Box::new(TapRxQueue { sh: self.sh.clone(), pool: self.sh.rx.pool.clone() }))
    }

    fn tx_queue(&self, q: QueueId) -> Result<Box<dyn TxQueue>, PortError> {
        let Some(t) = self.sh.tx.get(q.0 as usize) else {
            return Err(PortError::QueueOutOfRange { queue: q, queues: self.sh.tx.len() as u16 });
        };
        if t.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        Ok(Box::new(TapTxQueue { sh: self.sh.clone(), q: q.0 as usize }))
    }

    fn rx_stats(&self, q: QueueId) -> Option<RxQueueStats> {
        if q.0 >= MAX_QUEUES {
            return None;
        }
        let r = &self.sh.rx;
        Some(RxQueueStats {
            queue: QueueStats {
                packets: r.packets.get(),
                bytes: r.bytes.get(),
                drops: vec![
                    ("no_buffer", r.no_buffer.get()),
                    ("oversize", r.oversize.get()),
                    ("runt", r.runt.get()),
                    ("read_error", r.read_error.get()),
                ],
                counters: vec![],
            },
            pool: r.pool.stats(),
        })
    }

    fn tx_stats(&self, q: QueueId) -> Option<QueueStats> {
        let t = self.sh.tx.get(q.0 as usize)?;
        Some(QueueStats {
            packets: t.c.packets.get(),
            bytes: t.c.bytes.get(),
            drops: t.c.drops(),
            counters: vec![("would_block", t.c.would_block.get())],
        })
    }

    fn rx_pool(&self, q: QueueId) -> Option<PagePool> {
        (q.0 < MAX_QUEUES).then(|| self.sh.rx.pool.clone())
    }
}

struct TapRxQueue {
    sh: Arc<Shared>,
    pool: PagePool,
}

impl Drop for TapRxQueue {
    fn drop(&mut self) {
        self.sh.rx.taken.store(false, Ordering::Release);
    }
}

impl RxQueue for TapRxQueue {
    fn queue(&self) -> QueueId {
        QueueId(0)
    }

    fn pool(&self) -> &PagePool {
        &self.pool
    }

    fn rx_burst(&mut self, out: &mut PktBurst) -> usize {
        let sh = &*self.sh;
        if !sh.started.load(Ordering::Acquire) || sh.gone.load(Ordering::Relaxed) {
            return 0;
        }
        let q = &sh.rx;
        let fd = sh.tun.as_raw_fd();
        let max_frame = sh.mtu.load(Ordering::Relaxed) as usize + ETH_OVERHEAD;
        let before = out.len();
        let (mut pkts, mut bytes) = (0u64, 0u64);
        // One read per place in the burst at most, dropped frames included,
        // so a burst always ends.
        for _ in 0..out.remaining() {
            let Some(mut p) = self.pool.alloc() else {
                // The frame (if any) stays in the kernel's queue.
                if readable(fd) {
                    q.no_buffer.inc();
                }
                break;
            };
            // The whole buffer: a fresh packet starts after the headroom.
            let room = p.len() + p.tailroom();
            // Cannot fail: room is exactly what is left after the headroom.
            let _ = p.set_len(room);
            let buf = p.data_mut();
            // SAFETY: `buf` is writable for buf.len() bytes, and read()
            // writes at most that many.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                match errno() {
                    libc::EAGAIN => break,
                    libc::EINTR => continue,
                    libc::EBADFD => {
                        // The interface was deleted: nothing more will come.
                        sh.gone.store(true, Ordering::Relaxed);
                        q.read_error.inc();
                        break;
                    }
                    _ => {
                        q.read_error.inc();
                        break;
                    }
                }
            }
            // A TAP read returns the frame's full length, also when it was
            // cut to fit the buffer.
            let len = n as usize;
            if len > max_frame || len > room {
                q.oversize.inc();
                continue;
            }
            if len < ETH_HLEN {
                q.runt.inc();
                continue;
            }
            // Cannot fail: len <= room.
            let _ = p.set_len(len);
            p.set_port(sh.id.0);
            p.set_queue(0);
            pkts += 1;
            bytes += len as u64;
            // Cannot fail: at most out.remaining() packets are added.
            let _ = out.push(p);
        }
        q.packets.add(pkts);
        q.bytes.add(bytes);
        out.len() - before
    }
}

struct TapTxQueue {
    sh: Arc<Shared>,
    /// Index into `sh.tx` (checked when the queue was handed out).
    q: usize,
}

impl Drop for TapTxQueue {
    fn drop(&mut self) {
        if let Some(t) = self.sh.tx.get(self.q) {
            t.taken.store(false, Ordering::Release);
        }
    }
}

impl TxQueue for TapTxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.q as u16)
    }

    fn tx_burst(&mut self, pkts: &mut PktBurst) -> usize {
        let sh = &*self.sh;
        let Some(t) = sh.tx.get(self.q) else {
            pkts.clear();
            return 0;
        };
        if !sh.started.load(Ordering::Acquire) || sh.gone.load(Ordering::Relaxed) {
            return t.c.drop_all(pkts);
        }
        let fd = sh.tun.as_raw_fd();
        let max_frame = sh.mtu.load(Ordering::Relaxed) as usize + ETH_OVERHEAD;
        let write = |d: &[u8]| {
            // SAFETY: `d` is readable for d.len() bytes.
            let n = unsafe { libc::write(fd, d.as_ptr().cast(), d.len()) };
            usize::try_from(n).map_err(|_| errno())
        };
        // EBADFD: the interface was deleted under the descriptor.
        let gone = |e: i32| {
            let g = e == libc::EBADFD;
            if g {
                sh.gone.store(true, Ordering::Relaxed);
            }
            g
        };
        send_frames(pkts, max_frame, &t.c, write, gone)
    }
}

/// Opens a tap port (driver registry entry).
pub fn open(cfg: &PortConfig) -> Result<Box<dyn Port>, PortError> {
    Ok(Box::new(TapPort::open(cfg)?))
}

#[cfg(test)]
mod tests {
    //! The tests that open ports need root and /dev/net/tun; they fail (never
    //! skip) without them. Every interface and namespace is named after the
    //! process id and the test, and removed even when a test fails.

    use super::*;
    use crate::afpacket::AfPacket;
    use crate::buf::Pkt;
    use crate::frameio::FrameIo;
    use crate::netdev::testing::*;
    use crate::region::HugepagePolicy;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// The local experimental ethertype; stray kernel frames never use it.
    const MARKER: u16 = 0x88b5;
    const PORT_MAC: MacAddr = MacAddr([0x02, 0x54, 0x41, 0x50, 0, 1]);
    /// How long a test waits for something that should happen.
    const PATIENCE: Duration = Duration::from_secs(5);

    fn cfg(name: &str, args: &[(&str, &str)]) -> PortConfig {
        PortConfig {
            name: name.into(),
            driver: DRIVER.into(),
            mac: Some(PORT_MAC),
            pool_buffers: 256,
            hugepages: HugepagePolicy::Never,
            args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    /// The error `open` gives for `c`.
    fn open_err(c: &PortConfig) -> PortError {
        TapPort::open(c).err().expect("open must fail")
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(TUNSETIFF as libc::Ioctl, libc::TUNSETIFF);
        assert_eq!(TUNGETIFF as libc::Ioctl, libc::TUNGETIFF);
        assert_eq!(TUNGETDEVNETNS as libc::Ioctl, libc::TUNGETDEVNETNS);
        #[cfg(target_arch = "x86_64")]
        assert_eq!((TUNSETIFF, TUNGETIFF, TUNGETDEVNETNS), (0x400454ca, 0x800454d2, 0x54e3));
    }

    #[test]
    fn args_are_checked_before_anything_is_opened() {
        let e = invalid(open_err(&cfg("t0", &[("ifname", "sixteen-chars-ab")])));
        assert!(e.contains("\"sixteen-chars-ab\"") && e.contains("16 bytes") && e.contains("at most 15"), "{e}");
        // The default name is the port's.
        let e = invalid(open_err(&cfg("a-port-name-of-20-b", &[])));
        assert!(e.contains("ifname \"a-port-name-of-20-b\"") && e.contains("at most 15"), "{e}");
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "tab\tx", "nul\0x"] {
            let e = invalid(open_err(&cfg("t0", &[("ifname", bad)])));
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let e = invalid(open_err(&cfg("t0", &[("wire", "w")])));
        assert!(e.contains("unknown tap driver arg \"wire\"") && e.contains("ifname"), "{e}");
        for (rx, tx, want) in [
            (2, 1, "rx_queues must be 1 for a tap port"),
            (16, 16, "rx_queues must be 1 for a tap port"),
            (1, 65, "tx_queues must be 1..=64 for a tap port"),
        ] {
            let c = PortConfig { rx_queues: rx, tx_queues: tx, ..cfg("t0", &[]) };
            let e = invalid(open_err(&c));
            assert!(e.contains(want) && e.contains("port t0"), "{e}");
        }
        for mtu in [0, 67, 9001, u16::MAX] {
            let e = open_err(&PortConfig { mtu, ..cfg("t0", &[]) });
            assert!(matches!(e, PortError::MtuOutOfRange { min: 68, max: 9000, .. }), "{e:?}");
        }
    }

    #[test]
    fn params_default_and_accept_zero_queues() {
        let p = params(&PortConfig { rx_queues: 0, tx_queues: 0, ..cfg("t0", &[]) }).expect("valid");
        assert_eq!(p, Params { ifname: "t0".into(), max_mtu: 1500, buffers: 256, tx_queues: 1 });
        let c = PortConfig { mtu: 9000, pool_buffers: 0, ..cfg("t0", &[("ifname", "fifteen-chars-a")]) };
        let p = params(&c).expect("valid");
        assert_eq!(
            p,
            Params { ifname: "fifteen-chars-a".into(), max_mtu: 9000, buffers: DEFAULT_BUFFERS, tx_queues: 1 }
        );
        assert!(params(&cfg("t0", &[("ifname", "tap%d")])).is_ok());
    }

    // -----------------------------------------------------------------------
    // With root and /dev/net/tun

    fn require_tun() {
        assert!(
            std::path::Path::new("/dev/net/tun").exists(),
            "/dev/net/tun is missing: the tap tests need the tun module (modprobe tun) and root; they do not skip"
        );
    }

    /// A unique interface name for this process and `tag`.
    fn ifname(tag: char) -> String {
        format!("vtu{}{tag}", std::process::id())
    }

    /// (up, mtu) of `ifname` as `ip -o link` shows it, or None if absent.
    fn link_show(ns: Option<&str>, ifname: &str) -> Option<(bool, u32)> {
        let out = match ns {
            Some(ns) => ip(&["-n", ns, "-o", "link", "show", "dev", ifname]),
            None => ip(&["-o", "link", "show", "dev", ifname]),
        }
        .ok()?;
        let words: Vec<&str> = out.split_whitespace().collect();
        let flags = words.iter().find(|w| w.starts_with('<')).expect("flags shown");
        let up = flags.trim_matches(|c| c == '<' || c == '>').split(',').any(|f| f == "UP");
        let mtu = words.iter().position(|w| *w == "mtu").map(|i| words[i + 1]).expect("mtu shown");
        Some((up, mtu.parse().expect("mtu number")))
    }

    /// Waits up to [`PATIENCE`] for `ifname` to be gone.
    fn wait_gone(ns: Option<&str>, ifname: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while link_show(ns, ifname).is_some() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Opens a tap port on `ifname` with IPv6 off (no DAD or router
    /// solicitations: the kernel then sends nothing by itself).
    fn open_quiet(c: &PortConfig) -> TapPort {
        require_tun();
        let port = TapPort::open(c).expect("open a tap port (needs root and /dev/net/tun)");
        let p = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", port.ifname());
        if std::path::Path::new(&p).exists() {
            std::fs::write(&p, "1").expect("disable IPv6 on the tap interface");
        }
        port
    }

    /// An Ethernet frame of `len` bytes with ethertype [`MARKER`].
    fn frame(dst: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        f.extend_from_slice(&MARKER.to_be_bytes());
        f.extend((0..len - 14).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
        f
    }

    fn is_marked(f: &[u8]) -> bool {
        f.len() >= 14 && f[12..14] == MARKER.to_be_bytes()
    }

    /// The next marked frame the port receives, within [`PATIENCE`].
    fn rx_marked(rx: &mut dyn RxQueue) -> Option<Vec<u8>> {
        let deadline = Instant::now() + PATIENCE;
        let mut b = PktBurst::new();
        while Instant::now() < deadline {
            rx.rx_burst(&mut b);
            if let Some(p) = b.drain().find(|p| is_marked(p.data())) {
                return Some(p.data().to_vec());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    fn kernel_marked(io: &AfPacket) -> Option<Vec<u8>> {
        recv_marked(io, is_marked)
    }

    #[test]
    fn open_start_stop_and_close_manage_the_interface() {
        let name = ifname('o');
        let port = open_quiet(&PortConfig { mtu: 1400, ..cfg("t0", &[("ifname", &name)]) });
        assert_eq!(port.ifname(), name);
        assert_eq!(link_show(None, &name), Some((false, 1500)), "created down, at the kernel's default MTU");
        let info = port.info();
        assert_eq!((info.driver, info.mac, info.mtu, info.rx_queues, info.tx_queues), (DRIVER, PORT_MAC, 1400, 1, 1));
        assert_eq!(info.capabilities.max_mtu, 1500);
        assert!(!port.is_started() && !port.link().up);

        port.start().expect("start");
        assert_eq!(link_show(None, &name), Some((true, 1400)), "up at the port's MTU");
        assert!(port.is_started() && port.link().up, "{:?}", port.link());

        let rx = port.rx_queue(QueueId(0)).expect("rx queue");
        assert!(matches!(port.rx_queue(QueueId(0)), Err(PortError::QueueInUse(_))));
        assert!(matches!(port.rx_queue(QueueId(1)), Err(PortError::QueueOutOfRange { queues: 1, .. })));
        assert!(matches!(port.tx_queue(QueueId(1)), Err(PortError::QueueOutOfRange { queues: 1, .. })));
        assert!(PagePool::ptr_eq(rx.pool(), &port.rx_pool(QueueId(0)).expect("pool")));
        assert!(port.rx_pool(QueueId(1)).is_none() && port.rx_stats(QueueId(1)).is_none());
        drop(rx);
        assert!(port.rx_queue(QueueId(0)).is_ok(), "released with its handle");

        port.set_mtu(1200).expect("set MTU while started");
        assert_eq!(link_show(None, &name), Some((true, 1200)));
        assert!(matches!(port.set_mtu(1501), Err(PortError::MtuOutOfRange { max: 1500, .. })));
        assert!(matches!(port.set_mtu(67), Err(PortError::MtuOutOfRange { .. })));
        assert!(port.set_rss(&RssConfig::spread(1)).is_ok());
        assert!(port.set_rss(&RssConfig::spread(2)).is_err(), "a table naming queue 1");

        port.stop().expect("stop");
        assert_eq!(link_show(None, &name), Some((false, 1200)), "down after stop");
        assert!(!port.link().up);
        port.set_mtu(1300).expect("set MTU while stopped");
        assert_eq!(link_show(None, &name), Some((false, 1200)), "applied at the next start");
        port.start().expect("start again");
        assert_eq!(link_show(None, &name), Some((true, 1300)));

        drop(port);
        assert!(wait_gone(None, &name), "the interface goes with the port");
    }

    #[test]
    fn frames_cross_both_ways_byte_exact() {
        let name = ifname('x');
        let port = open_quiet(&cfg("t0", &[("ifname", &name)]));
        port.start().expect("start");
        let kernel = AfPacket::open(&name).expect("AF_PACKET on the tap interface");
        let mut rx = port.rx_queue(QueueId(0)).expect("rx queue");
        let mut tx = port.tx_queue(QueueId(0)).expect("tx queue");
        let pool = port.rx_pool(QueueId(0)).expect("pool");

        // Kernel -> port: the kernel transmits on the interface.
        for len in [60, 200, 1514] {
            let out = frame(PORT_MAC.0, len, len as u8);
            kernel.send(&out).expect("send on the tap interface");
            let got = rx_marked(&mut *rx).expect("the port receives the kernel's frame");
            assert!(got == out, "{len}-byte frame differs");
        }

        // Port -> kernel: the kernel receives on the interface.
        for len in [14, 60, 1514, 1518] {
            let out = frame([0xff; 6], len, len as u8);
            let mut b = burst_of(&pool, std::slice::from_ref(&out));
            assert_eq!(tx.tx_burst(&mut b), 1, "{len}-byte frame sent");
            assert!(b.is_empty(), "a sent packet leaves the burst");
            let got = kernel_marked(&kernel).expect("the kernel receives the port's frame");
            assert!(got == out, "{len}-byte frame differs");
        }

        let (r, t) = (port.rx_stats(QueueId(0)).expect("rx"), port.tx_stats(QueueId(0)).expect("tx"));
        assert!(r.queue.packets >= 3 && r.queue.bytes >= 60 + 200 + 1514, "{r:?}");
        assert_eq!((t.packets, t.bytes), (4, 14 + 60 + 1514 + 1518), "{t:?}");
        assert_eq!(r.queue.dropped() + t.dropped(), 0, "{r:?} {t:?}");
        drop((rx, tx));
        assert_eq!(pool.in_use(), 0, "every buffer back in the pool");
    }

    #[test]
    fn every_worker_gets_its_own_tx_queue_on_the_one_descriptor() {
        let name = ifname('m');
        let port = open_quiet(&PortConfig { tx_queues: 3, ..cfg("t0", &[("ifname", &name)]) });
        assert_eq!(port.info().tx_queues, 3);
        port.start().expect("start");
        let kernel = AfPacket::open(&name).expect("AF_PACKET on the tap interface");
        let pool = port.rx_pool(QueueId(0)).expect("pool");
        let mut txs: Vec<_> = (0..3).map(|q| port.tx_queue(QueueId(q)).expect("tx queue")).collect();
        assert!(matches!(port.tx_queue(QueueId(1)), Err(PortError::QueueInUse(_))));
        assert!(matches!(port.tx_queue(QueueId(3)), Err(PortError::QueueOutOfRange { queues: 3, .. })));
        for (q, tx) in txs.iter_mut().enumerate() {
            assert_eq!(tx.queue(), QueueId(q as u16));
            let out = frame([0xff; 6], 100 + q, q as u8);
            let mut b = burst_of(&pool, std::slice::from_ref(&out));
            assert_eq!(tx.tx_burst(&mut b), 1);
            let got = kernel_marked(&kernel).expect("the kernel receives the frame");
            assert!(got == out, "queue {q}: frame differs");
        }
        for q in 0..3u16 {
            let t = port.tx_stats(QueueId(q)).expect("tx stats");
            assert_eq!((t.packets, t.bytes), (1, 100 + q as u64), "queue {q}: {t:?}");
        }
        assert!(port.tx_stats(QueueId(3)).is_none());
    }

    #[test]
    fn rx_drops_oversize_and_leaves_frames_in_the_kernel_without_buffers() {
        let name = ifname('r');
        let port = open_quiet(&PortConfig { mtu: 576, pool_buffers: 64, ..cfg("t0", &[("ifname", &name)]) });
        port.start().expect("start");
        // The kernel may send more than the port's MTU once someone raises it.
        ip(&["link", "set", "dev", &name, "mtu", "1500"]).expect("raise the interface MTU");
        let kernel = AfPacket::open(&name).expect("AF_PACKET on the tap interface");
        let mut rx = port.rx_queue(QueueId(0)).expect("rx queue");
        let stats = || port.rx_stats(QueueId(0)).expect("rx stats").queue;

        kernel.send(&frame(PORT_MAC.0, 1000, 1)).expect("send 1000 bytes");
        let ok = frame(PORT_MAC.0, 576 + 18, 2);
        kernel.send(&ok).expect("send MTU + 18 bytes");
        assert!(rx_marked(&mut *rx) == Some(ok), "the MTU + 18 byte frame passes");
        assert_eq!(drop_count(&stats().drops, "oversize"), 1, "{:?}", stats());

        // Every buffer taken: the frame waits in the kernel.
        let pool = port.rx_pool(QueueId(0)).expect("pool");
        let held: Vec<Pkt> = std::iter::from_fn(|| pool.alloc()).collect();
        assert_eq!(held.len(), 64);
        let waiting = frame(PORT_MAC.0, 100, 3);
        kernel.send(&waiting).expect("send");
        let deadline = Instant::now() + PATIENCE;
        let mut b = PktBurst::new();
        while drop_count(&stats().drops, "no_buffer") == 0 && Instant::now() < deadline {
            assert_eq!(rx.rx_burst(&mut b), 0, "nothing received without buffers");
        }
        assert!(drop_count(&stats().drops, "no_buffer") >= 1, "{:?}", stats());
        drop(held);
        assert!(rx_marked(&mut *rx) == Some(waiting), "the waiting frame comes once buffers are free");
        let s = stats();
        assert_eq!((drop_count(&s.drops, "runt"), drop_count(&s.drops, "read_error")), (0, 0), "{s:?}");
    }

    #[test]
    fn tx_drops_runts_oversize_and_everything_while_stopped() {
        let name = ifname('t');
        let port = open_quiet(&cfg("t0", &[("ifname", &name)]));
        let pool = port.rx_pool(QueueId(0)).expect("pool");
        let mut tx = port.tx_queue(QueueId(0)).expect("tx queue");
        let stats = || port.tx_stats(QueueId(0)).expect("tx stats");

        let mut b = burst_of(&pool, &[frame([0xff; 6], 60, 1), frame([0xff; 6], 60, 2)]);
        assert_eq!(tx.tx_burst(&mut b), 0, "stopped: nothing sent");
        assert!(b.is_empty(), "stopped: the packets are dropped, not kept");
        assert_eq!(drop_count(&stats().drops, "link_down"), 2);

        port.start().expect("start");
        let runt = vec![0xffu8; 13];
        let big = frame([0xff; 6], 1500 + 19, 3);
        let mut b = burst_of(&pool, &[runt, frame([0xff; 6], 60, 4), big, frame([0xff; 6], 100, 5)]);
        assert_eq!(tx.tx_burst(&mut b), 2);
        assert!(b.is_empty());
        let s = stats();
        assert_eq!((s.packets, s.bytes), (2, 160), "{s:?}");
        let counts: Vec<u64> =
            ["oversize", "runt", "link_down", "write_error"].iter().map(|d| drop_count(&s.drops, d)).collect();
        assert_eq!(counts, [1, 1, 2, 0], "{s:?}");
        assert_eq!(s.counters, [("would_block", 0)]);
        drop(tx);
        assert_eq!(pool.in_use(), 0, "every buffer back in the pool");
    }

    #[test]
    fn open_errors_name_the_interface_and_the_cause() {
        require_tun();
        let e = open_err(&cfg("t0", &[("ifname", "lo")])).to_string();
        assert!(
            e.contains("tap port t0 (lo)") && e.contains("TUNSETIFF") && e.contains("not a single-queue TAP"),
            "{e}"
        );

        let name = ifname('e');
        let first = open_quiet(&cfg("t0", &[("ifname", &name)]));
        let e = open_err(&cfg("t1", &[("ifname", &name)])).to_string();
        assert!(e.contains(&format!("tap port t1 ({name})")) && e.contains("already attached"), "{e}");
        drop(first);
        assert!(wait_gone(None, &name));
    }

    #[test]
    fn a_name_pattern_gets_a_number_from_the_kernel() {
        let pattern = format!("vtu{}n%d", std::process::id());
        let port = open_quiet(&cfg("t0", &[("ifname", &pattern)]));
        let name = port.ifname();
        assert!(name.starts_with(&pattern[..pattern.len() - 2]) && !name.contains('%'), "{name}");
        assert!(link_show(None, &name).is_some(), "{name} exists");
        drop(port);
        assert!(wait_gone(None, &name));
    }

    /// A network namespace, deleted on drop.
    struct Netns(String);

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = ip(&["netns", "del", &self.0]);
        }
    }

    #[test]
    fn follows_the_interface_into_another_namespace_and_through_renames() {
        let name = ifname('n');
        let renamed = ifname('m');
        let ns = Netns(format!("vrt-tapunit-{}", std::process::id()));
        ip(&["netns", "add", &ns.0]).expect("create a network namespace (needs root)");
        let port = open_quiet(&cfg("t0", &[("ifname", &name)]));
        port.start().expect("start");
        ip(&["link", "set", "dev", &name, "netns", &ns.0]).expect("move the interface");
        assert!(link_show(None, &name).is_none(), "moved out of this namespace");
        assert_eq!(link_show(Some(&ns.0), &name), Some((false, 1500)), "moving brings it down");
        assert!(!port.link().up, "down in its new namespace");
        ip(&["-n", &ns.0, "link", "set", "dev", &name, "up"]).expect("bring it up there");
        assert!(port.link().up, "seen up in its new namespace");

        port.stop().expect("stop brings it down where it is");
        assert_eq!(link_show(Some(&ns.0), &name), Some((false, 1500)));
        ip(&["-n", &ns.0, "link", "set", "dev", &name, "name", &renamed]).expect("rename");
        assert_eq!(port.ifname(), renamed);
        port.set_mtu(1280).expect("set MTU");
        port.start().expect("start after the rename");
        assert_eq!(link_show(Some(&ns.0), &renamed), Some((true, 1280)));
        assert!(port.link().up);

        drop(port);
        assert!(wait_gone(Some(&ns.0), &renamed), "the interface goes with the port");
    }

    #[test]
    fn deleting_the_namespace_deletes_the_interface_and_stops_the_traffic() {
        let name = ifname('d');
        let ns = Netns(format!("vrt-tapdel-{}", std::process::id()));
        ip(&["netns", "add", &ns.0]).expect("create a network namespace (needs root)");
        let port = open_quiet(&cfg("t0", &[("ifname", &name)]));
        port.start().expect("start");
        let pool = port.rx_pool(QueueId(0)).expect("pool");
        let mut rx = port.rx_queue(QueueId(0)).expect("rx queue");
        let mut tx = port.tx_queue(QueueId(0)).expect("tx queue");
        ip(&["link", "set", "dev", &name, "netns", &ns.0]).expect("move the interface");
        ip(&["netns", "del", &ns.0]).expect("delete the namespace");
        // The kernel deletes the interface with its namespace, asynchronously.
        let deadline = Instant::now() + PATIENCE;
        let mut b = PktBurst::new();
        while port.link().up || !port.sh.gone.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "the port never noticed: {:?}", port.link());
            rx.rx_burst(&mut b);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rx.rx_burst(&mut b), 0);
        let mut out = burst_of(&pool, &[frame([0xff; 6], 60, 1)]);
        assert_eq!(tx.tx_burst(&mut out), 0);
        assert!(out.is_empty());
        assert_eq!(drop_count(&port.tx_stats(QueueId(0)).expect("tx").drops, "link_down"), 1);
        port.stop().expect("stopping a port whose interface is gone is fine");
        drop((rx, tx, b, out));
        assert_eq!(pool.in_use(), 0);
    }
}
