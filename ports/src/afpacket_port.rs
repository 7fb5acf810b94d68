//! The `afpacket` driver: any existing Linux network interface (a NIC, a
//! veth end, a bridge port, ...) as a router port, through AF_PACKET
//! sockets with TPACKET_V3 memory-mapped receive rings.
//!
//! Use it for interfaces no faster driver can drive: it needs nothing but
//! `CAP_NET_RAW` and `CAP_NET_ADMIN`, works on every interface type that
//! carries Ethernet frames, and is the fallback where AF_XDP cannot run
//! (old kernels, drivers without XDP, containers without BPF). It is not a
//! zero-copy driver: every received frame is copied once from the kernel's
//! ring into a buffer of the RX queue's page pool, and every transmitted
//! frame is copied once by `send(2)` into a kernel socket buffer.
//!
//! Args: `ifname` (required), the existing interface to bind to, in the
//! network namespace of the thread that opens the port (it must stay
//! there). The port's MAC is the interface's own; a `mac` in the config
//! that differs is set on the interface at open (`SIOCSIFHWADDR`), and open
//! fails if the kernel refuses it. The port's MTU may not exceed the
//! interface's, which the driver never changes; `set_mtu` moves the port's
//! MTU within that limit (at most 9000).
//!
//! RX: `rx_queues` (1 to 16) AF_PACKET sockets bound to the interface, each
//! with its own TPACKET_V3 ring (256 KiB blocks, `rx_ring` / 128 of them
//! clamped to 8..=16, a block handed to user space when full or after
//! 1 ms) and its own page pool. With more than one queue the sockets join
//! one `PACKET_FANOUT` group (`PACKET_FANOUT_HASH` with
//! `PACKET_FANOUT_FLAG_DEFRAG`, id derived from the process and port ids),
//! so the kernel spreads flows over the queues by its flow hash, as RSS
//! would (the port's RSS table is kept for the record but does not steer).
//! The sockets ignore the interface's outgoing frames
//! (`PACKET_IGNORE_OUTGOING`, Linux 4.20), so the port never receives its
//! own transmissions.
//!
//! TX: `tx_queues` (1 to 64, one per worker), each a socket of its own
//! bound to the interface (receiving nothing), sending one frame per
//! non-blocking `send(2)`. `tx_ring` is ignored.
//!
//! `start` brings the interface up (`IFF_UP`); `stop` only stops the port
//! (RX returns nothing, TX drops): the interface is not the port's, so it
//! stays up. The link is up while the port is started and the interface is
//! up and running (`IFF_UP | IFF_RUNNING`, e.g. a veth whose peer is up).
//!
//! Limits: the kernel's own stack still sees every frame that arrives on
//! the interface (give the interface no addresses, and no forwarding, if
//! the router alone should answer); frames queued in the ring while the
//! port is stopped are delivered after the next start; no checksum or
//! segmentation offloads, so a peer that hands the interface GSO/GRO
//! super-frames (TCP over veth) must turn them off (`ethtool -K peer tso
//! off gso off`) or they are dropped as oversize; a VLAN tag the kernel
//! stripped is put back into the frame.
//!
//! Driver drops: RX `no_buffer` (a burst stopped because the pool was empty
//! while a frame was waiting; the frame stays in the ring), `oversize` (a
//! frame longer than MTU + 18 bytes, or cut short by the ring),
//! `bad_frame` (a ring header that does not fit its block, or a frame
//! shorter than 14 bytes), `kernel_drops` (the kernel's `tp_drops` from
//! `PACKET_STATISTICS`, summed: frames it found no room for in the ring);
//! TX `oversize` (also a frame the kernel finds too long: more than
//! MTU + 14 bytes without a VLAN tag), `runt` (shorter than 14 bytes),
//! `link_down` (port stopped, interface down or gone), `write_error`. TX
//! counter `would_block`: bursts cut short because the kernel took no more
//! (the rest stay with the caller).

use crate::buf::PktBurst;
use crate::counter::{Counter, SharedCounter};
use crate::lock;
use crate::netdev::{
    check_ifname, errno, ifr_name, send_frames, zeroed_ifreq, TxCounters, ETH_HLEN, ETH_OVERHEAD, MIN_MTU,
};
use crate::pool::{PagePool, PoolConfig};
use crate::port::*;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub const DRIVER: &str = "afpacket";
/// Most RX queues (sockets with a ring, in one fanout group).
pub const MAX_RX_QUEUES: u16 = 16;
/// Most TX queues: one per worker.
pub const MAX_TX_QUEUES: u16 = 64;
/// Largest MTU an afpacket port accepts (the interface's may be lower).
pub const MAX_MTU: u16 = crate::netdev::MAX_MTU;
/// Longest interface name (IFNAMSIZ less the NUL).
pub const MAX_IFNAME: usize = crate::netdev::MAX_IFNAME;
const VLAN_HLEN: usize = 4;
const HEADROOM: u16 = 128;
const DEFAULT_BUFFERS: u32 = 1024;
const ARGS: &[&str] = &["ifname"];
const ON: libc::c_int = 1;

// Ring geometry.
/// Bytes per ring block (a multiple of the page size).
const BLOCK_SIZE: usize = 256 << 10;
/// The ring's nominal frame size: only sets how `rx_ring` maps to blocks
/// (TPACKET_V3 packs frames of any length into a block).
const FRAME_SIZE: usize = 2048;
const FRAMES_PER_BLOCK: u32 = (BLOCK_SIZE / FRAME_SIZE) as u32;
const MIN_BLOCKS: u32 = 8;
const MAX_BLOCKS: u32 = 16;
/// Milliseconds after which the kernel hands a partly filled block over.
const RETIRE_BLK_TOV_MS: u32 = 1;

// linux/if_packet.h layouts, read from the ring as bytes (checked against
// the libc definitions in the unit tests).
/// `struct tpacket_block_desc`: version, offset_to_priv, then
/// `tpacket_hdr_v1` (block_status, num_pkts, offset_to_first_pkt, ...).
const BLOCK_HDR_LEN: usize = 48;
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST_PKT: usize = 16;
/// `struct tpacket3_hdr`.
const PKT_HDR_LEN: usize = 48;
const PKT_NEXT: usize = 0;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_VLAN_TCI: usize = 32;
const PKT_VLAN_TPID: usize = 36;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const TPACKET_V3: libc::c_int = 2;
const ETH_P_8021Q: u16 = 0x8100;

/// Fanout group ids tried per port, when an id is taken by a group of
/// another interface.
const FANOUT_TRIES: u16 = 16;
/// Ports opened by this process so far (part of the fanout group id).
static FANOUT_SEQ: AtomicU16 = AtomicU16::new(0);

/// What `open` checked and derived from a [`PortConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Params {
    ifname: String,
    rx_queues: u16,
    tx_queues: u16,
    buffers: u32,
    blocks: u32,
}

/// Checks `cfg` without touching the system.
fn params(cfg: &PortConfig) -> Result<Params, PortError> {
    let invalid = |msg: String| PortError::InvalidConfig(format!("port {}: {msg}", cfg.name));
    if let Some(k) = cfg.args.keys().find(|k| !ARGS.contains(&k.as_str())) {
        return Err(invalid(format!("unknown afpacket driver arg {k:?} (known: {})", ARGS.join(", "))));
    }
    let Some(ifname) = cfg.args.get("ifname") else {
        return Err(invalid("the afpacket driver needs arg `ifname`, the interface to bind to".into()));
    };
    check_ifname(ifname).map_err(|why| invalid(format!("afpacket ifname {ifname:?} {why}")))?;
    if cfg.rx_queues > MAX_RX_QUEUES {
        return Err(invalid(format!(
            "rx_queues must be 1..={MAX_RX_QUEUES} for an afpacket port (0 means 1), got {}",
            cfg.rx_queues
        )));
    }
    if cfg.tx_queues > MAX_TX_QUEUES {
        return Err(invalid(format!(
            "tx_queues must be 1..={MAX_TX_QUEUES} for an afpacket port (0 means 1), got {}",
            cfg.tx_queues
        )));
    }
    if !(MIN_MTU..=MAX_MTU).contains(&cfg.mtu) {
        return Err(PortError::MtuOutOfRange { mtu: cfg.mtu, min: MIN_MTU, max: MAX_MTU });
    }
    if let Some(mac) = cfg.mac.filter(|m| m.is_multicast() || m.0 == [0; 6]) {
        return Err(invalid(format!("mac {mac} is not a unicast address")));
    }
    Ok(Params {
        ifname: ifname.clone(),
        rx_queues: cfg.rx_queues.max(1),
        tx_queues: cfg.tx_queues.max(1),
        buffers: if cfg.pool_buffers == 0 { DEFAULT_BUFFERS } else { cfg.pool_buffers },
        blocks: cfg.rx_ring.div_ceil(FRAMES_PER_BLOCK).clamp(MIN_BLOCKS, MAX_BLOCKS),
    })
}

/// A failed step: what was tried, and the OS error.
type StepError = (&'static str, io::Error);

fn last(what: &'static str) -> StepError {
    (what, io::Error::last_os_error())
}

/// A new socket; `Err` carries the OS error.
fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; the result is checked.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is readable for size_of::<T>() bytes, the length passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Binds an AF_PACKET socket to `ifindex`, receiving `protocol` (0: nothing).
fn bind_to(fd: &OwnedFd, ifindex: libc::c_int, protocol: u16) -> io::Result<()> {
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `n` bytes at `off` of `b`, if they are all inside it.
fn field<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    out.copy_from_slice(b.get(off..off.checked_add(N)?)?);
    Some(out)
}

fn rd32(b: &[u8], off: usize) -> Option<u32> {
    field(b, off).map(u32::from_ne_bytes)
}

fn rd16(b: &[u8], off: usize) -> Option<u16> {
    field(b, off).map(u16::from_ne_bytes)
}

/// One frame's `tpacket3_hdr`, checked against its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    /// Offset of the next frame from this one (0 for the last).
    next: u32,
    /// Where the frame's bytes start in the block.
    start: usize,
    /// Bytes in the ring.
    snaplen: usize,
    /// Bytes the frame had (more than `snaplen` if the ring cut it).
    len: usize,
    /// (TPID, TCI) of a VLAN tag the kernel took out of the frame.
    vlan: Option<(u16, u16)>,
}

/// The frame whose header is at `off` of block `b`; `None` if any part of
/// the header or of the frame's bytes lies outside the block.
fn parse_frame(b: &[u8], off: usize) -> Option<Frame> {
    if off < BLOCK_HDR_LEN || off.checked_add(PKT_HDR_LEN)? > b.len() {
        return None;
    }
    let mac = rd16(b, off + PKT_MAC)? as usize;
    let snaplen = rd32(b, off + PKT_SNAPLEN)? as usize;
    let start = off.checked_add(mac)?;
    if mac < PKT_HDR_LEN || start.checked_add(snaplen)? > b.len() {
        return None;
    }
    let status = rd32(b, off + PKT_STATUS)?;
    let vlan = if status & TP_STATUS_VLAN_VALID != 0 {
        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 { rd16(b, off + PKT_VLAN_TPID)? } else { ETH_P_8021Q };
        Some((tpid, rd32(b, off + PKT_VLAN_TCI)? as u16))
    } else {
        None
    };
    Some(Frame { next: rd32(b, off + PKT_NEXT)?, start, snaplen, len: rd32(b, off + PKT_LEN)? as usize, vlan })
}

/// A TPACKET_V3 receive ring mapped from its socket.
struct RxRing {
    fd: OwnedFd,
    map: NonNull<u8>,
    blocks: u32,
}

// SAFETY: the mapping is owned by the ring and freed only on drop; block
// contents are read only by the one holder of the RX queue while the block
// belongs to user space, and block status words are accessed atomically.
unsafe impl Send for RxRing {}
// SAFETY: as for Send; shared references only read status words atomically
// (and the socket's statistics).
unsafe impl Sync for RxRing {}

impl RxRing {
    /// An AF_PACKET socket on `ifindex` with a mapped ring of `blocks`
    /// blocks, receiving every protocol.
    fn open(ifindex: libc::c_int, blocks: u32) -> Result<RxRing, StepError> {
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK).map_err(|e| ("socket(AF_PACKET)", e))?;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3).map_err(|e| ("PACKET_VERSION", e))?;
        match setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &ON) {
            // Before Linux 4.20: the port also sees its own transmissions.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
            r => r.map_err(|e| ("PACKET_IGNORE_OUTGOING", e))?,
        }
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE as u32,
            tp_block_nr: blocks,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: blocks * FRAMES_PER_BLOCK,
            tp_retire_blk_tov: RETIRE_BLK_TOV_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req).map_err(|e| ("PACKET_RX_RING", e))?;
        let len = BLOCK_SIZE * blocks as usize;
        // SAFETY: a new shared mapping of the socket's ring, of the length
        // the ring was made with; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last("mmap of the RX ring"));
        }
        let Some(map) = NonNull::new(p.cast::<u8>()) else {
            return Err(("mmap of the RX ring", io::Error::other("mapped at address 0")));
        };
        let ring = RxRing { fd, map, blocks };
        bind_to(&ring.fd, ifindex, libc::ETH_P_ALL as u16).map_err(|e| ("bind", e))?;
        Ok(ring)
    }

    /// The first byte of block `i` (< blocks).
    fn block(&self, i: u32) -> *mut u8 {
        debug_assert!(i < self.blocks);
        // SAFETY: i < blocks, so the offset stays inside the mapping.
        unsafe { self.map.as_ptr().add(i as usize * BLOCK_SIZE) }
    }

    fn status(&self, i: u32) -> &AtomicU32 {
        // SAFETY: block_status is a 4-byte aligned u32 (blocks are page
        // aligned) inside the mapping, which lives as long as `self`; the
        // kernel and user space both update it as a whole word.
        unsafe { &*self.block(i).add(BLK_STATUS).cast::<AtomicU32>() }
    }

    /// Whether block `i` belongs to user space; its contents are visible
    /// after this (acquire) load.
    fn user_owns(&self, i: u32) -> bool {
        self.status(i).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Hands block `i` back to the kernel (after the last read of it).
    fn release(&self, i: u32) {
        self.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
    }

    /// Frames the kernel dropped since the last call (PACKET_STATISTICS
    /// resets on read).
    fn take_drops(&self) -> u64 {
        // struct tpacket_stats_v3: tp_packets, tp_drops, tp_freeze_q_cnt.
        let mut st = [0u32; 3];
        let mut len = mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` is writable for `len` bytes, and the kernel writes at most `len`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r != 0 {
            return 0;
        }
        st[1] as u64
    }

    /// Joins fanout group `id` (hash, defragmenting).
    fn join_fanout(&self, id: u16) -> io::Result<()> {
        let arg: u32 = id as u32 | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) << 16);
        setsockopt(&self.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in open, of this length; nothing refers to it any more.
        unsafe { libc::munmap(self.map.as_ptr().cast(), BLOCK_SIZE * self.blocks as usize) };
    }
}

/// Where an RX queue is in its ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cursor {
    /// The block to read next.
    block: u32,
    /// Frames of that block already taken.
    pkt: u32,
    /// Offset of the next frame's header in the block (0: the block's
    /// first frame, from its header).
    off: u32,
}

struct RxShared {
    taken: AtomicBool,
    pool: PagePool,
    ring: RxRing,
    /// The cursor of a queue handle that was dropped, for the next one.
    cursor: Mutex<Cursor>,
    packets: Counter,
    bytes: Counter,
    no_buffer: Counter,
    oversize: Counter,
    bad_frame: Counter,
    /// The kernel's drops, summed over PACKET_STATISTICS reads.
    kernel_drops: SharedCounter,
}

struct TxShared {
    taken: AtomicBool,
    sock: OwnedFd,
    c: TxCounters,
}

struct Shared {
    id: PortId,
    name: String,
    /// The interface name at open.
    ifname: String,
    ifindex: libc::c_int,
    mac: MacAddr,
    mtu: AtomicU16,
    max_mtu: u16,
    started: AtomicBool,
    /// AF_INET socket for interface ioctls.
    ctl: OwnedFd,
    rss: Mutex<RssConfig>,
    rx: Box<[RxShared]>,
    tx: Box<[TxShared]>,
}

/// Interface ioctls, by index (following renames) through `ctl`.
struct Iface<'a> {
    ctl: &'a OwnedFd,
    ifindex: libc::c_int,
}

impl Iface<'_> {
    fn ioctl(&self, req: libc::c_ulong, what: &'static str, ifr: &mut libc::ifreq) -> Result<(), StepError> {
        // SAFETY: every request passed here reads and writes one struct ifreq, which `ifr` is.
        if unsafe { libc::ioctl(self.ctl.as_raw_fd(), req as _, ifr as *mut libc::ifreq) } < 0 {
            return Err(last(what));
        }
        Ok(())
    }

    /// An ifreq naming the interface as it is called now.
    fn ifreq(&self) -> Result<libc::ifreq, StepError> {
        let mut ifr = zeroed_ifreq();
        ifr.ifr_ifru.ifru_ifindex = self.ifindex;
        self.ioctl(libc::SIOCGIFNAME, "SIOCGIFNAME", &mut ifr)?;
        let name = ifr.ifr_name;
        let mut ifr = zeroed_ifreq();
        ifr.ifr_name = name;
        Ok(ifr)
    }

    fn flags(&self) -> Result<libc::c_short, StepError> {
        let mut ifr = self.ifreq()?;
        self.ioctl(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel filled in ifru_flags.
        Ok(unsafe { ifr.ifr_ifru.ifru_flags })
    }

    fn set_up(&self) -> Result<(), StepError> {
        let flags = self.flags()?;
        let up = libc::IFF_UP as libc::c_short;
        if flags & up != 0 {
            return Ok(());
        }
        let mut ifr = self.ifreq()?;
        ifr.ifr_ifru.ifru_flags = flags | up;
        self.ioctl(libc::SIOCSIFFLAGS, "SIOCSIFFLAGS", &mut ifr)
    }

    fn mtu(&self) -> Result<u32, StepError> {
        let mut ifr = self.ifreq()?;
        self.ioctl(libc::SIOCGIFMTU, "SIOCGIFMTU", &mut ifr)?;
        // SAFETY: SIOCGIFMTU succeeded, so the kernel filled in ifru_mtu.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu }.max(0) as u32)
    }

    /// The hardware type (ARPHRD_*) and address.
    fn hwaddr(&self) -> Result<(u16, MacAddr), StepError> {
        let mut ifr = self.ifreq()?;
        self.ioctl(libc::SIOCGIFHWADDR, "SIOCGIFHWADDR", &mut ifr)?;
        // SAFETY: SIOCGIFHWADDR succeeded, so the kernel filled in ifru_hwaddr.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok((sa.sa_family, MacAddr(mac)))
    }

    fn set_hwaddr(&self, mac: MacAddr) -> Result<(), StepError> {
        let mut ifr = self.ifreq()?;
        // SAFETY: all-zero is a valid sockaddr (integers and an array).
        let mut sa: libc::sockaddr = unsafe { mem::zeroed() };
        sa.sa_family = libc::ARPHRD_ETHER;
        for (s, b) in sa.sa_data.iter_mut().zip(mac.0) {
            *s = b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_hwaddr = sa;
        self.ioctl(libc::SIOCSIFHWADDR, "SIOCSIFHWADDR", &mut ifr)
    }
}

impl Shared {
    fn iface(&self) -> Iface<'_> {
        Iface { ctl: &self.ctl, ifindex: self.ifindex }
    }

    /// A step's error as a port error naming the port and the interface.
    fn err(&self, (what, e): StepError) -> PortError {
        PortError::Io(io::Error::new(e.kind(), format!("afpacket port {} ({}): {what}: {e}", self.name, self.ifname)))
    }
}

/// An `afpacket` port: an existing Linux interface.
pub struct AfPacketPort {
    sh: Arc<Shared>,
}

impl AfPacketPort {
    /// Opens a port on the interface `cfg.args["ifname"]` of the calling
    /// thread's network namespace.
    pub fn open(cfg: &PortConfig) -> Result<AfPacketPort, PortError> {
        let p = params(cfg)?;
        let fail = |(what, e): StepError, hint: &str| {
            PortError::Io(io::Error::new(
                e.kind(),
                format!("afpacket port {} ({}): {what}: {e}{hint}", cfg.name, p.ifname),
            ))
        };
        let perm = |e: &io::Error| {
            if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                " (needs CAP_NET_RAW and CAP_NET_ADMIN)"
            } else {
                ""
            }
        };
        let ctl = socket(libc::AF_INET, libc::SOCK_DGRAM).map_err(|e| fail(("socket(AF_INET)", e), ""))?;
        let mut ifr = zeroed_ifreq();
        ifr.ifr_name = ifr_name(&p.ifname);
        // SAFETY: SIOCGIFINDEX reads and writes one struct ifreq, which `ifr` is.
        if unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut ifr as *mut libc::ifreq) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENODEV) {
                return Err(PortError::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "afpacket port {}: no interface {:?} in this network namespace (the afpacket driver \
                         binds to an existing interface)",
                        cfg.name, p.ifname
                    ),
                )));
            }
            return Err(fail(("SIOCGIFINDEX", e), ""));
        }
        // SAFETY: SIOCGIFINDEX succeeded, so the kernel filled in ifru_ifindex.
        let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };
        let iface = Iface { ctl: &ctl, ifindex };

        let (hatype, if_mac) = iface.hwaddr().map_err(|e| fail(e, ""))?;
        if hatype != libc::ARPHRD_ETHER {
            return Err(PortError::InvalidConfig(format!(
                "port {}: interface {} is not an Ethernet interface (ARPHRD type {hatype})",
                cfg.name, p.ifname
            )));
        }
        let if_mtu = iface.mtu().map_err(|e| fail(e, ""))?;
        if cfg.mtu as u32 > if_mtu {
            return Err(PortError::InvalidConfig(format!(
                "port {}: MTU {} is larger than the MTU of interface {} ({if_mtu}); the afpacket driver does not \
                 change the interface's MTU: raise it (ip link set dev {} mtu {}) or lower the port's",
                cfg.name, cfg.mtu, p.ifname, p.ifname, cfg.mtu
            )));
        }
        let max_mtu = if_mtu.min(MAX_MTU as u32) as u16;
        let mac = match cfg.mac {
            Some(m) if m != if_mac => {
                iface.set_hwaddr(m).map_err(|e| {
                    let hint = format!(
                        " (could not set the interface's MAC from {if_mac} to the configured {m}; leave `mac` \
                         unset to use the interface's own)"
                    );
                    fail(e, &hint)
                })?;
                m
            }
            _ => if_mac,
        };

        let buf_size = (HEADROOM as usize + ETH_OVERHEAD + max_mtu as usize).next_multiple_of(64);
        let mut rx = Vec::with_capacity(p.rx_queues as usize);
        for q in 0..p.rx_queues {
            let pool = PagePool::new(&PoolConfig {
                name: format!("{}/rx{q}", cfg.name),
                buffers: p.buffers,
                buf_size: buf_size as u16,
                headroom: HEADROOM,
                hugepages: cfg.hugepages,
                ..Default::default()
            })?;
            let ring = RxRing::open(ifindex, p.blocks).map_err(|e| {
                let hint = perm(&e.1);
                fail(e, hint)
            })?;
            rx.push(RxShared {
                taken: AtomicBool::new(false),
                pool,
                ring,
                cursor: Mutex::new(Cursor::default()),
                packets: Counter::new(),
                bytes: Counter::new(),
                no_buffer: Counter::new(),
                oversize: Counter::new(),
                bad_frame: Counter::new(),
                kernel_drops: SharedCounter::new(),
            });
        }
        if rx.len() > 1 {
            join_fanout(&rx, cfg.id).map_err(|e| fail(("PACKET_FANOUT", e), ""))?;
        }

        let mut tx = Vec::with_capacity(p.tx_queues as usize);
        for _ in 0..p.tx_queues {
            let sock = socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK).map_err(|e| {
                let hint = perm(&e);
                fail(("socket(AF_PACKET)", e), hint)
            })?;
            // Protocol 0: the socket sends only and never queues a frame.
            bind_to(&sock, ifindex, 0).map_err(|e| fail(("bind", e), ""))?;
            tx.push(TxShared { taken: AtomicBool::new(false), sock, c: TxCounters::default() });
        }

        Ok(AfPacketPort {
            sh: Arc::new(Shared {
                id: cfg.id,
                name: cfg.name.clone(),
                ifname: p.ifname.clone(),
                ifindex,
                mac,
                mtu: AtomicU16::new(cfg.mtu),
                max_mtu,
                started: AtomicBool::new(false),
                ctl,
                rss: Mutex::new(RssConfig::spread(p.rx_queues)),
                rx: rx.into_boxed_slice(),
                tx: tx.into_boxed_slice(),
            }),
        })
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.sh.ifindex as u32
    }
}

/// Puts every ring's socket into one new fanout group, with an id derived
/// from the process id, the port id and a per-process sequence number;
/// ids taken by another interface's group (`EINVAL`) are skipped.
fn join_fanout(rx: &[RxShared], port: PortId) -> io::Result<()> {
    let Some((first, rest)) = rx.split_first() else {
        return Ok(());
    };
    let seq = FANOUT_SEQ.fetch_add(1, Ordering::Relaxed);
    let base = (std::process::id() as u16).wrapping_mul(0x9e37) ^ port.0.wrapping_mul(0x0101) ^ seq.wrapping_mul(0x3b1);
    let mut tries = (0..FANOUT_TRIES).map(|i| base.wrapping_add(i.wrapping_mul(0x1f1)));
    let id = loop {
        let Some(id) = tries.next() else {
            return Err(io::Error::other(format!("{FANOUT_TRIES} fanout group ids tried, all taken")));
        };
        match first.ring.join_fanout(id) {
            Ok(()) => break id,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
            Err(e) => return Err(e),
        }
    };
    rest.iter().try_for_each(|r| r.ring.join_fanout(id))
}

impl Port for AfPacketPort {
    fn info(&self) -> PortInfo {
        let s = &self.sh;
        PortInfo {
            id: s.id,
            name: s.name.clone(),
            driver: DRIVER,
            mac: s.mac,
            mtu: s.mtu.load(Ordering::Relaxed),
            rx_queues: s.rx.len() as u16,
            tx_queues: s.tx.len() as u16,
            capabilities: Capabilities {
                max_mtu: s.max_mtu,
                max_rx_queues: MAX_RX_QUEUES,
                max_tx_queues: MAX_TX_QUEUES,
                ..Default::default()
            },
        }
    }

    fn start(&self) -> Result<(), PortError> {
        let s = &self.sh;
        s.iface().set_up().map_err(|e| s.err(e))?;
        s.started.store(true, Ordering::Release);
        Ok(())
    }

    fn stop(&self) -> Result<(), PortError> {
        // The interface is not the port's: it stays up.
        self.sh.started.store(false, Ordering::Release);
        Ok(())
    }

    fn is_started(&self) -> bool {
        self.sh.started.load(Ordering::Acquire)
    }

    fn link(&self) -> LinkState {
        let running = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let up = self.is_started() && self.sh.iface().flags().is_ok_and(|f| f & running == running);
        LinkState { up, speed_mbps: 0 }
    }

    fn set_mtu(&self, mtu: u16) -> Result<(), PortError> {
        let s = &self.sh;
        if !(MIN_MTU..=s.max_mtu).contains(&mtu) {
            return Err(PortError::MtuOutOfRange { mtu, min: MIN_MTU, max: s.max_mtu });
        }
        s.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    fn rss(&self) -> RssConfig {
        lock(&self.sh.rss).clone()
    }

    fn set_rss(&self, cfg: &RssConfig) -> Result<(), PortError> {
        // Kept for the record: the kernel's fanout hash steers, not the table.
        cfg.validate(self.sh.rx.len() as u16)?;
        *lock(&self.sh.rss) = cfg.clone();
        Ok(())
    }

    fn rx_queue(&self, q: QueueId) -> Result<Box<dyn RxQueue>, PortError> {
        let Some(r) = self.sh.rx.get(q.0 as usize) else {
            return Err(PortError::QueueOutOfRange { queue: q, queues: self.sh.rx.len() as u16 });
        };
        if r.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        let cur = *lock(&r.cursor);
        Ok(Box::new(AfPacketRxQueue {
            sh: self.sh.clone(),
            st: RxState { q: q.0 as usize, pool: r.pool.clone(), cur },
        }))
    }

    fn tx_queue(&self, q: QueueId) -> Result<Box<dyn TxQueue>, PortError> {
        let Some(t) = self.sh.tx.get(q.0 as usize) else {
            return Err(PortError::QueueOutOfRange { queue: q, queues: self.sh.tx.len() as u16 });
        };
        if t.taken.swap(true, Ordering::AcqRel) {
            return Err(PortError::QueueInUse(q));
        }
        Ok(Box::new(AfPacketTxQueue { sh: self.sh.clone(), q: q.0 as usize }))
    }

    fn rx_stats(&self, q: QueueId) -> Option<RxQueueStats> {
        let r = self.sh.rx.get(q.0 as usize)?;
        r.kernel_drops.add(r.ring.take_drops());
        Some(RxQueueStats {
            queue: QueueStats {
                packets: r.packets.get(),
                bytes: r.bytes.get(),
                drops: vec![
                    ("no_buffer", r.no_buffer.get()),
                    ("oversize", r.oversize.get()),
                    ("bad_frame", r.bad_frame.get()),
                    ("kernel_drops", r.kernel_drops.get()),
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
        self.sh.rx.get(q.0 as usize).map(|r| r.pool.clone())
    }
}

struct AfPacketRxQueue {
    sh: Arc<Shared>,
    st: RxState,
}

/// What an RX queue handle owns.
struct RxState {
    /// Index into `sh.rx` (checked when the queue was handed out).
    q: usize,
    pool: PagePool,
    cur: Cursor,
}

impl Drop for AfPacketRxQueue {
    fn drop(&mut self) {
        if let Some(r) = self.sh.rx.get(self.st.q) {
            *lock(&r.cursor) = self.st.cur;
            r.taken.store(false, Ordering::Release);
        }
    }
}

/// How a walk through a block ended.
enum Walk {
    /// Every frame of the block was taken (or the rest cannot be trusted):
    /// hand it back.
    Done,
    /// The burst is full or the pool empty: resume here next time.
    Stop,
}

impl RxState {
    /// Takes frames from block `b` (owned by user space) at the cursor into
    /// `out`, up to `out.remaining()`, as received on port `port`.
    fn walk(
        &mut self,
        port: u16,
        r: &RxShared,
        b: &[u8],
        out: &mut PktBurst,
        max_frame: usize,
        got: &mut (u64, u64),
    ) -> Walk {
        let (Some(num), Some(first)) = (rd32(b, BLK_NUM_PKTS), rd32(b, BLK_FIRST_PKT)) else {
            r.bad_frame.inc();
            return Walk::Done;
        };
        if self.cur.off == 0 {
            self.cur.off = first;
        }
        while self.cur.pkt < num {
            if out.remaining() == 0 {
                return Walk::Stop;
            }
            let Some(f) = parse_frame(b, self.cur.off as usize) else {
                // The rest of the block cannot be found without this header.
                r.bad_frame.inc();
                return Walk::Done;
            };
            let wire_len = f.snaplen + if f.vlan.is_some() { VLAN_HLEN } else { 0 };
            if f.len > f.snaplen || wire_len > max_frame {
                r.oversize.inc();
            } else if f.snaplen < ETH_HLEN {
                r.bad_frame.inc();
            } else {
                let Some(mut p) = self.pool.alloc() else {
                    // The frame stays in the ring for the next burst.
                    r.no_buffer.inc();
                    return Walk::Stop;
                };
                if !p.set_len(wire_len) {
                    // A pool buffer holds MTU + 18 bytes, so this does not happen.
                    r.oversize.inc();
                } else if let Some(src) = b.get(f.start..f.start + f.snaplen) {
                    let dst = p.data_mut();
                    match f.vlan {
                        None => dst.copy_from_slice(src),
                        Some((tpid, tci)) => {
                            // Put back the tag the kernel took out.
                            dst[..12].copy_from_slice(&src[..12]);
                            dst[12..14].copy_from_slice(&tpid.to_be_bytes());
                            dst[14..16].copy_from_slice(&tci.to_be_bytes());
                            dst[16..].copy_from_slice(&src[12..]);
                        }
                    }
                    p.set_port(port);
                    p.set_queue(self.q as u16);
                    got.0 += 1;
                    got.1 += wire_len as u64;
                    // Cannot fail: out.remaining() > 0 was checked above.
                    let _ = out.push(p);
                } else {
                    // parse_frame checked the bytes are in the block.
                    r.bad_frame.inc();
                }
            }
            self.cur.pkt += 1;
            if self.cur.pkt < num {
                match self.cur.off.checked_add(f.next) {
                    Some(next) if f.next != 0 => self.cur.off = next,
                    _ => {
                        r.bad_frame.inc();
                        return Walk::Done;
                    }
                }
            }
        }
        Walk::Done
    }
}

impl RxQueue for AfPacketRxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.st.q as u16)
    }

    fn pool(&self) -> &PagePool {
        &self.st.pool
    }

    fn rx_burst(&mut self, out: &mut PktBurst) -> usize {
        let sh = &*self.sh;
        let st = &mut self.st;
        let Some(r) = sh.rx.get(st.q) else {
            return 0;
        };
        if !sh.started.load(Ordering::Acquire) {
            return 0;
        }
        let max_frame = sh.mtu.load(Ordering::Relaxed) as usize + ETH_OVERHEAD;
        let before = out.len();
        let mut got = (0u64, 0u64);
        // At most one lap of the ring per burst, so a burst always ends.
        for _ in 0..r.ring.blocks {
            if out.remaining() == 0 || st.cur.block >= r.ring.blocks || !r.ring.user_owns(st.cur.block) {
                break;
            }
            // SAFETY: the block belongs to user space (TP_STATUS_USER, seen
            // by the acquire load above): the kernel writes none of it until
            // it is handed back by `release`, after the last use of `b`.
            let b = unsafe { std::slice::from_raw_parts(r.ring.block(st.cur.block), BLOCK_SIZE) };
            match st.walk(sh.id.0, r, b, out, max_frame, &mut got) {
                Walk::Stop => break,
                Walk::Done => {
                    r.ring.release(st.cur.block);
                    st.cur = Cursor { block: (st.cur.block + 1) % r.ring.blocks, pkt: 0, off: 0 };
                }
            }
        }
        r.packets.add(got.0);
        r.bytes.add(got.1);
        out.len() - before
    }
}

struct AfPacketTxQueue {
    sh: Arc<Shared>,
    /// Index into `sh.tx` (checked when the queue was handed out).
    q: usize,
}

impl Drop for AfPacketTxQueue {
    fn drop(&mut self) {
        if let Some(t) = self.sh.tx.get(self.q) {
            t.taken.store(false, Ordering::Release);
        }
    }
}

impl TxQueue for AfPacketTxQueue {
    fn queue(&self) -> QueueId {
        QueueId(self.q as u16)
    }

    fn tx_burst(&mut self, pkts: &mut PktBurst) -> usize {
        let sh = &*self.sh;
        let Some(t) = sh.tx.get(self.q) else {
            pkts.clear();
            return 0;
        };
        if !sh.started.load(Ordering::Acquire) {
            return t.c.drop_all(pkts);
        }
        let fd = t.sock.as_raw_fd();
        let max_frame = sh.mtu.load(Ordering::Relaxed) as usize + ETH_OVERHEAD;
        let send = |d: &[u8]| {
            // SAFETY: `d` is readable for d.len() bytes.
            let n = unsafe { libc::send(fd, d.as_ptr().cast(), d.len(), libc::MSG_DONTWAIT) };
            usize::try_from(n).map_err(|_| errno())
        };
        send_frames(pkts, max_frame, &t.c, send, |_| false)
    }
}

/// Opens an afpacket port (driver registry entry).
pub fn open(cfg: &PortConfig) -> Result<Box<dyn Port>, PortError> {
    Ok(Box::new(AfPacketPort::open(cfg)?))
}

#[cfg(test)]
mod tests {
    //! The tests that open ports need root: each builds a veth pair named
    //! after the process id and the test, removed even when the test fails;
    //! they fail (never skip) without root.

    use super::*;
    use crate::afpacket::AfPacket;
    use crate::buf::Pkt;
    use crate::frameio::FrameIo;
    use crate::netdev::testing::*;
    use crate::region::HugepagePolicy;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// UDP destination port of the tests' frames; stray frames never use it.
    const MARKER: u16 = 0x88b5;
    const PORT_MAC: MacAddr = MacAddr([0x02, 0x41, 0x46, 0x50, 0, 1]);
    /// How long a test waits for something that should happen.
    const PATIENCE: Duration = Duration::from_secs(5);

    fn cfg(name: &str, args: &[(&str, &str)]) -> PortConfig {
        PortConfig {
            name: name.into(),
            driver: DRIVER.into(),
            mac: Some(PORT_MAC),
            pool_buffers: 512,
            hugepages: HugepagePolicy::Never,
            args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    fn open_err(c: &PortConfig) -> PortError {
        AfPacketPort::open(c).err().expect("open must fail")
    }

    #[test]
    fn ring_layouts_match_the_kernel_headers() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<libc::tpacket_block_desc>(), BLOCK_HDR_LEN);
        assert_eq!(offset_of!(libc::tpacket_block_desc, hdr), 8);
        assert_eq!(offset_of!(libc::tpacket_hdr_v1, block_status), BLK_STATUS - 8);
        assert_eq!(offset_of!(libc::tpacket_hdr_v1, num_pkts), BLK_NUM_PKTS - 8);
        assert_eq!(offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt), BLK_FIRST_PKT - 8);
        assert_eq!(size_of::<libc::tpacket3_hdr>(), PKT_HDR_LEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_next_offset), PKT_NEXT);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_snaplen), PKT_SNAPLEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_len), PKT_LEN);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_status), PKT_STATUS);
        assert_eq!(offset_of!(libc::tpacket3_hdr, tp_mac), PKT_MAC);
        let hv1 = offset_of!(libc::tpacket3_hdr, hv1);
        assert_eq!(hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci), PKT_VLAN_TCI);
        assert_eq!(hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid), PKT_VLAN_TPID);
        assert_eq!(TPACKET_V3, libc::tpacket_versions::TPACKET_V3 as libc::c_int);
        assert_eq!((TP_STATUS_USER, TP_STATUS_KERNEL), (libc::TP_STATUS_USER, libc::TP_STATUS_KERNEL));
        assert_eq!(TP_STATUS_VLAN_VALID, libc::TP_STATUS_VLAN_VALID);
        assert_eq!(TP_STATUS_VLAN_TPID_VALID, libc::TP_STATUS_VLAN_TPID_VALID);
        assert_eq!(BLOCK_SIZE % 4096, 0);
    }

    /// A block with one frame header at `off`.
    fn block_with(off: usize, next: u32, mac: u16, snaplen: u32, len: u32, status: u32) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[off + PKT_NEXT..][..4].copy_from_slice(&next.to_ne_bytes());
        b[off + PKT_SNAPLEN..][..4].copy_from_slice(&snaplen.to_ne_bytes());
        b[off + PKT_LEN..][..4].copy_from_slice(&len.to_ne_bytes());
        b[off + PKT_STATUS..][..4].copy_from_slice(&status.to_ne_bytes());
        b[off + PKT_MAC..][..2].copy_from_slice(&mac.to_ne_bytes());
        b[off + PKT_VLAN_TCI..][..4].copy_from_slice(&0x0123u32.to_ne_bytes());
        b[off + PKT_VLAN_TPID..][..2].copy_from_slice(&0x88a8u16.to_ne_bytes());
        b
    }

    #[test]
    fn frame_headers_are_checked_against_the_block() {
        let b = block_with(48, 1600, 66, 1514, 1514, TP_STATUS_USER);
        let f = parse_frame(&b, 48).expect("a valid header");
        assert_eq!(f, Frame { next: 1600, start: 48 + 66, snaplen: 1514, len: 1514, vlan: None });
        let b = block_with(48, 0, 66, 60, 60, TP_STATUS_VLAN_VALID);
        assert_eq!(parse_frame(&b, 48).expect("valid").vlan, Some((ETH_P_8021Q, 0x0123)));
        let b = block_with(48, 0, 66, 60, 60, TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID);
        assert_eq!(parse_frame(&b, 48).expect("valid").vlan, Some((0x88a8, 0x0123)));
        // Bytes past the block, a MAC offset inside the header, a header
        // past the block or inside the block header: all refused.
        assert_eq!(parse_frame(&block_with(48, 0, 66, 4096 - 48 - 66 + 1, 60, 0), 48), None);
        assert!(parse_frame(&block_with(48, 0, 66, 4096 - 48 - 66, 60, 0), 48).is_some());
        assert_eq!(parse_frame(&block_with(48, 0, 20, 60, 60, 0), 48), None);
        assert_eq!(parse_frame(&block_with(4096 - 48, 0, 0, 0, 0, 0), 4096 - 40), None);
        assert_eq!(parse_frame(&block_with(48, 0, 66, 60, 60, 0), 8), None);
        assert_eq!(parse_frame(&block_with(48, 0, 66, u32::MAX, 60, 0), 48), None);
        assert_eq!(parse_frame(&b, usize::MAX - 10), None);
        // Garbage never panics.
        let mut x: u32 = 0x1234_5678;
        let mut junk = vec![0u8; 4096];
        for _ in 0..2000 {
            for byte in junk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            for off in [0, 48, 100, 4000, 4095, (x as usize) % 8192] {
                if let Some(f) = parse_frame(&junk, off) {
                    assert!(f.start + f.snaplen <= junk.len() && f.start >= off + PKT_HDR_LEN);
                }
            }
        }
    }

    #[test]
    fn args_are_checked_before_anything_is_opened() {
        let e = invalid(open_err(&cfg("p0", &[])));
        assert!(e.contains("port p0") && e.contains("needs arg `ifname`"), "{e}");
        let e = invalid(open_err(&cfg("p0", &[("ifname", "sixteen-chars-ab")])));
        assert!(e.contains("\"sixteen-chars-ab\"") && e.contains("at most 15"), "{e}");
        for bad in ["", "a/b", "a:b", "a b", "nul\0x"] {
            let e = invalid(open_err(&cfg("p0", &[("ifname", bad)])));
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        let e = invalid(open_err(&cfg("p0", &[("ifname", "eth0"), ("fanout", "7")])));
        assert!(e.contains("unknown afpacket driver arg \"fanout\"") && e.contains("ifname"), "{e}");
        for (rx, tx, want) in [
            (17, 1, "rx_queues must be 1..=16 for an afpacket port"),
            (1, 65, "tx_queues must be 1..=64 for an afpacket port"),
        ] {
            let c = PortConfig { rx_queues: rx, tx_queues: tx, ..cfg("p0", &[("ifname", "eth0")]) };
            let e = invalid(open_err(&c));
            assert!(e.contains(want) && e.contains("port p0"), "{e}");
        }
        for mtu in [0, 67, 9001, u16::MAX] {
            let e = open_err(&PortConfig { mtu, ..cfg("p0", &[("ifname", "eth0")]) });
            assert!(matches!(e, PortError::MtuOutOfRange { min: 68, max: 9000, .. }), "{e:?}");
        }
        for mac in [MacAddr::BROADCAST, MacAddr([0x01, 0, 0x5e, 0, 0, 1]), MacAddr([0; 6])] {
            let e = invalid(open_err(&PortConfig { mac: Some(mac), ..cfg("p0", &[("ifname", "eth0")]) }));
            assert!(e.contains(&format!("mac {mac} is not a unicast address")), "{e}");
        }
    }

    #[test]
    fn params_default_and_size_the_ring() {
        let c = PortConfig { rx_queues: 0, tx_queues: 0, pool_buffers: 0, ..cfg("p0", &[("ifname", "veth0")]) };
        let p = params(&c).expect("valid");
        assert_eq!(
            p,
            Params { ifname: "veth0".into(), rx_queues: 1, tx_queues: 1, buffers: DEFAULT_BUFFERS, blocks: 8 }
        );
        for (ring, blocks) in [(0, 8), (1024, 8), (1025, 9), (2048, 16), (1 << 20, 16)] {
            let c = PortConfig { rx_ring: ring, rx_queues: 16, tx_queues: 64, ..cfg("p0", &[("ifname", "v")]) };
            let p = params(&c).expect("valid");
            assert_eq!((p.blocks, p.rx_queues, p.tx_queues), (blocks, 16, 64), "rx_ring {ring}");
        }
        assert!(params(&PortConfig { mac: None, ..cfg("p0", &[("ifname", "v")]) }).is_ok());
    }

    // -----------------------------------------------------------------------
    // With root

    fn sysctl(path: &str, value: &str) {
        if std::path::Path::new(path).exists() {
            std::fs::write(path, value).expect("write a sysctl");
        }
    }

    /// A veth pair in this namespace: `a` for the port, `b` for the peer,
    /// both up, with IPv6 and IPv4 forwarding off (the kernel then sends
    /// nothing by itself and forwards none of the test frames). Dropping it
    /// deletes the pair, even when a test failed half way.
    struct Veth {
        a: String,
        b: String,
    }

    impl Veth {
        fn new(tag: char) -> Veth {
            let pid = std::process::id();
            let v = Veth { a: format!("vap{pid}{tag}"), b: format!("vbp{pid}{tag}") };
            ip(&["link", "add", &v.a, "type", "veth", "peer", "name", &v.b]).expect("add a veth pair (needs root)");
            for n in [&v.a, &v.b] {
                sysctl(&format!("/proc/sys/net/ipv6/conf/{n}/disable_ipv6"), "1");
                sysctl(&format!("/proc/sys/net/ipv4/conf/{n}/forwarding"), "0");
            }
            ip(&["link", "set", &v.b, "up"]).expect("set b up");
            v
        }

        /// Waits until both ends are operationally up: until then the
        /// kernel drops what is sent on them (the qdisc is only activated
        /// once the link-state work has run, up to a second after the
        /// second end comes up).
        fn wait_up(&self) {
            let deadline = Instant::now() + PATIENCE;
            let up = |n: &str| {
                std::fs::read_to_string(format!("/sys/class/net/{n}/operstate")).is_ok_and(|s| s.trim() == "up")
            };
            while !(up(&self.a) && up(&self.b)) {
                assert!(Instant::now() < deadline, "veth {} / {} not up", self.a, self.b);
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        /// (up, mtu, mac) of `a` as `ip -o link` shows it.
        fn a_link(&self) -> (bool, u32, String) {
            let out = ip(&["-o", "link", "show", "dev", &self.a]).expect("ip link show");
            let words: Vec<&str> = out.split_whitespace().collect();
            let flags = words.iter().find(|w| w.starts_with('<')).expect("flags shown");
            let up = flags.trim_matches(|c| c == '<' || c == '>').split(',').any(|f| f == "UP");
            let after = |k: &str| words.iter().position(|w| *w == k).map(|i| words[i + 1]).expect(k);
            (up, after("mtu").parse().expect("mtu number"), after("link/ether").to_string())
        }
    }

    impl Drop for Veth {
        fn drop(&mut self) {
            let _ = ip(&["link", "del", &self.a]);
        }
    }

    /// An Ethernet/IPv4/UDP frame of `len` bytes to UDP port [`MARKER`],
    /// whose addresses and source port make flow `flow`.
    fn frame(dst: MacAddr, len: usize, flow: u16) -> Vec<u8> {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
        let ip_len = (len - 14) as u16;
        let mut iph = [0u8; 20];
        iph[0] = 0x45;
        iph[2..4].copy_from_slice(&ip_len.to_be_bytes());
        iph[8] = 64;
        iph[9] = 17;
        iph[12..16].copy_from_slice(&[10, 99, (flow >> 8) as u8, flow as u8]);
        iph[16..20].copy_from_slice(&[10, 98, 0, 1]);
        let sum = iph.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]) as u32).sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        iph[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&iph);
        f.extend_from_slice(&(1024 + flow).to_be_bytes());
        f.extend_from_slice(&MARKER.to_be_bytes());
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend((0..len - 42).map(|i| (i as u8).wrapping_mul(7).wrapping_add(flow as u8)));
        f
    }

    fn is_marked(f: &[u8]) -> bool {
        f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == MARKER.to_be_bytes()
    }

    /// Sends `f` on `io`, retrying while the kernel has no room.
    fn send(io: &AfPacket, f: &[u8]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match io.send(f) {
                Ok(()) => return,
                Err(e)
                    if Instant::now() < deadline
                        && (e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)) =>
                {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => unreachable!("send: {e}"),
            }
        }
    }

    /// Marked frames the port's queues receive within `wait`, until `n`
    /// have come; per queue.
    fn rx_marked(rxs: &mut [Box<dyn RxQueue>], n: usize, wait: Duration) -> Vec<Vec<Vec<u8>>> {
        let deadline = Instant::now() + wait;
        let mut got = vec![Vec::new(); rxs.len()];
        let mut b = PktBurst::new();
        while got.iter().map(Vec::len).sum::<usize>() < n && Instant::now() < deadline {
            for (q, rx) in rxs.iter_mut().enumerate() {
                rx.rx_burst(&mut b);
                for p in b.drain() {
                    assert_eq!((p.port(), p.queue()), (0, q as u16));
                    if is_marked(p.data()) {
                        got[q].push(p.data().to_vec());
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        got
    }

    fn peer_marked(io: &AfPacket) -> Option<Vec<u8>> {
        recv_marked(io, is_marked)
    }

    #[test]
    fn flows_spread_over_the_fanout_queues_byte_exact() {
        let v = Veth::new('f');
        let c = PortConfig { rx_queues: 2, ..cfg("p0", &[("ifname", &v.a)]) };
        let port = crate::open_port(&c).expect("open through the driver registry (needs root)");
        let info = port.info();
        assert_eq!((info.driver, info.mac, info.rx_queues, info.tx_queues), (DRIVER, PORT_MAC, 2, 1));
        assert_eq!(info.capabilities.max_mtu, 1500, "the interface's MTU");
        assert_eq!(v.a_link().2, PORT_MAC.to_string(), "the configured MAC is set on the interface");
        assert!(!v.a_link().0 && !port.link().up, "down until start");
        port.start().expect("start");
        v.wait_up();
        assert!(v.a_link().0, "start brings the interface up");
        let deadline = Instant::now() + PATIENCE;
        while !port.link().up {
            assert!(Instant::now() < deadline, "link never came up");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut rxs: Vec<_> = (0..2).map(|q| port.rx_queue(QueueId(q)).expect("rx queue")).collect();
        assert!(matches!(port.rx_queue(QueueId(1)), Err(PortError::QueueInUse(_))));
        assert!(matches!(port.rx_queue(QueueId(2)), Err(PortError::QueueOutOfRange { queues: 2, .. })));
        let peer = AfPacket::open(&v.b).expect("AF_PACKET on the peer");

        let n = 256;
        let mut sent: Vec<Vec<u8>> = (0..n).map(|i| frame(PORT_MAC, 60 + (i as usize * 37) % 1455, i)).collect();
        for f in &sent {
            send(&peer, f);
        }
        let got = rx_marked(&mut rxs, n as usize, PATIENCE);
        let per_queue: Vec<usize> = got.iter().map(Vec::len).collect();
        assert!(per_queue.iter().all(|&k| k > 0), "both queues get flows: {per_queue:?}");
        let mut all: Vec<Vec<u8>> = got.into_iter().flatten().collect();
        all.sort();
        sent.sort();
        assert_eq!(all.len(), sent.len(), "every frame arrives once: {per_queue:?}");
        assert!(all == sent, "frames arrive byte-exact");

        let (mut pkts, mut bytes) = (0, 0);
        for q in 0..2 {
            let s = port.rx_stats(QueueId(q)).expect("rx stats");
            assert_eq!(s.queue.dropped(), 0, "queue {q}: {s:?}");
            pkts += s.queue.packets;
            bytes += s.queue.bytes;
        }
        let sent_bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
        assert!(pkts >= n as u64 && bytes >= sent_bytes, "{pkts} packets, {bytes} bytes");
        assert!(port.rx_stats(QueueId(2)).is_none() && port.rx_pool(QueueId(2)).is_none());
        drop(rxs);
        for q in 0..2 {
            assert_eq!(port.rx_pool(QueueId(q)).expect("pool").in_use(), 0, "queue {q}: buffers back");
        }
    }

    #[test]
    fn tx_reaches_the_peer_and_never_comes_back() {
        let v = Veth::new('t');
        let port = AfPacketPort::open(&PortConfig { tx_queues: 2, ..cfg("p0", &[("ifname", &v.a)]) })
            .expect("open (needs root)");
        let pool = port.rx_pool(QueueId(0)).expect("pool");
        let mut rx = vec![port.rx_queue(QueueId(0)).expect("rx queue")];
        let mut txs: Vec<_> = (0..2).map(|q| port.tx_queue(QueueId(q)).expect("tx queue")).collect();
        assert!(matches!(port.tx_queue(QueueId(0)), Err(PortError::QueueInUse(_))));
        assert!(matches!(port.tx_queue(QueueId(2)), Err(PortError::QueueOutOfRange { queues: 2, .. })));
        let stats = |q: u16| port.tx_stats(QueueId(q)).expect("tx stats");

        // Stopped: dropped and counted.
        let mut b = burst_of(&pool, &[frame(MacAddr::BROADCAST, 60, 1)]);
        assert_eq!(txs[0].tx_burst(&mut b), 0);
        assert!(b.is_empty());
        assert_eq!(drop_count(&stats(0).drops, "link_down"), 1);

        port.start().expect("start");
        v.wait_up();
        let peer = AfPacket::open(&v.b).expect("AF_PACKET on the peer");
        for (q, tx) in txs.iter_mut().enumerate() {
            for len in [60, 1514, 1518] {
                let out = frame(MacAddr::BROADCAST, len, (q * 10 + len) as u16);
                let mut b = burst_of(&pool, std::slice::from_ref(&out));
                assert_eq!(tx.tx_burst(&mut b), usize::from(len <= 1514), "queue {q}: {len}-byte frame");
                assert!(b.is_empty());
                // The 1518-byte frame is MTU + 18 without a VLAN tag: the
                // kernel refuses it (counted oversize, not sent).
                if len <= 1514 {
                    assert!(peer_marked(&peer) == Some(out), "queue {q}: {len}-byte frame differs");
                }
            }
        }
        let runt = vec![0xffu8; 13];
        let big = frame(MacAddr::BROADCAST, 1500 + 19, 3);
        let mut b = burst_of(&pool, &[runt, frame(MacAddr::BROADCAST, 100, 4), big]);
        assert_eq!(txs[1].tx_burst(&mut b), 1);
        assert!(peer_marked(&peer).is_some_and(|f| f.len() == 100));

        assert!(rx_marked(&mut rx, 1, Duration::from_millis(300))[0].is_empty(), "the port sees its own frames");
        let s0 = stats(0);
        assert_eq!((s0.packets, s0.bytes), (2, 60 + 1514), "{s0:?}");
        let s1 = stats(1);
        assert_eq!((s1.packets, s1.bytes), (3, 60 + 1514 + 100), "{s1:?}");
        let counts = |s: &QueueStats| -> Vec<u64> {
            ["oversize", "runt", "link_down", "write_error"].iter().map(|d| drop_count(&s.drops, d)).collect()
        };
        assert_eq!(counts(&s0), [1, 0, 1, 0], "{s0:?}");
        assert_eq!(counts(&s1), [2, 1, 0, 0], "{s1:?}");
        assert_eq!(s1.counters, [("would_block", 0)]);
        assert!(port.tx_stats(QueueId(2)).is_none());
        drop((rx, txs));
        assert_eq!(pool.in_use(), 0, "every buffer back in the pool");
    }

    #[test]
    fn rx_drops_oversize_and_leaves_frames_in_the_ring_without_buffers() {
        let v = Veth::new('r');
        let port = AfPacketPort::open(&PortConfig { mtu: 576, pool_buffers: 64, ..cfg("p0", &[("ifname", &v.a)]) })
            .expect("open (needs root)");
        port.start().expect("start");
        v.wait_up();
        let peer = AfPacket::open(&v.b).expect("AF_PACKET on the peer");
        let mut rx = vec![port.rx_queue(QueueId(0)).expect("rx queue")];
        let stats = || port.rx_stats(QueueId(0)).expect("rx stats").queue;

        send(&peer, &frame(PORT_MAC, 1000, 1));
        let ok = frame(PORT_MAC, 576 + 18, 2);
        send(&peer, &ok);
        assert!(rx_marked(&mut rx, 1, PATIENCE)[0] == [ok], "the MTU + 18 byte frame passes");
        assert_eq!(drop_count(&stats().drops, "oversize"), 1, "{:?}", stats());

        // Every buffer taken: the frame waits in the ring.
        let pool = port.rx_pool(QueueId(0)).expect("pool");
        let held: Vec<Pkt> = std::iter::from_fn(|| pool.alloc()).collect();
        assert_eq!(held.len(), 64);
        let waiting = frame(PORT_MAC, 100, 3);
        send(&peer, &waiting);
        let deadline = Instant::now() + PATIENCE;
        let mut b = PktBurst::new();
        while drop_count(&stats().drops, "no_buffer") == 0 {
            assert!(Instant::now() < deadline, "no no_buffer drop: {:?}", stats());
            assert_eq!(rx[0].rx_burst(&mut b), 0, "nothing received without buffers");
            std::thread::sleep(Duration::from_millis(1));
        }
        // A new queue handle resumes where the old one stopped.
        assert!(matches!(port.rx_queue(QueueId(0)), Err(PortError::QueueInUse(_))));
        drop(rx);
        let mut rx = vec![port.rx_queue(QueueId(0)).expect("taken again")];
        drop(held);
        assert!(rx_marked(&mut rx, 1, PATIENCE)[0] == [waiting], "the waiting frame comes once buffers are free");
        let s = stats();
        assert_eq!((drop_count(&s.drops, "bad_frame"), drop_count(&s.drops, "kernel_drops")), (0, 0), "{s:?}");
        assert_eq!(s.packets, 2, "{s:?}");
    }

    #[test]
    fn open_checks_the_interface() {
        let missing = format!("nxp{}q", std::process::id());
        let e = open_err(&cfg("p0", &[("ifname", &missing)])).to_string();
        assert!(e.contains("port p0") && e.contains(&format!("no interface {missing:?}")), "{e}");

        let v = Veth::new('o');
        let e = invalid(open_err(&PortConfig { mtu: 9000, ..cfg("p0", &[("ifname", &v.a)]) }));
        assert!(e.contains("MTU 9000") && e.contains(&format!("MTU of interface {} (1500)", v.a)), "{e}");
        assert_eq!(v.a_link().1, 1500, "the interface's MTU is left alone");

        // Without `mac`, the port takes the interface's.
        let before = v.a_link().2;
        let port = AfPacketPort::open(&PortConfig { mac: None, mtu: 1280, ..cfg("p0", &[("ifname", &v.a)]) })
            .expect("open (needs root)");
        assert_eq!(port.info().mac.to_string(), before);
        assert_eq!(port.info().mtu, 1280);
        assert!(matches!(port.set_mtu(1501), Err(PortError::MtuOutOfRange { max: 1500, .. })));
        port.set_mtu(1500).expect("up to the interface's MTU");
        assert!(port.set_rss(&RssConfig::spread(1)).is_ok() && port.set_rss(&RssConfig::spread(2)).is_err());
        port.start().expect("start");
        v.wait_up();
        port.stop().expect("stop");
        assert!(v.a_link().0 && !port.link().up, "stop leaves the interface up");

        let e = invalid(open_err(&cfg("p0", &[("ifname", "lo")])));
        assert!(e.contains("interface lo is not an Ethernet interface"), "{e}");
    }
}
