//! The `Port` interface every NIC driver implements.
//!
//! A port has a control side ([`Port`]: start/stop, link, MAC, MTU, RSS,
//! capabilities, stats), used by the control plane, and per-queue data-side
//! handles ([`RxQueue`], [`TxQueue`]) that a worker takes and owns while it
//! polls them. Calls on queue handles move whole bursts, so the one dynamic
//! dispatch per call is amortised over up to [`crate::MAX_BURST`] packets.

use crate::buf::PktBurst;
use crate::pool::{PagePool, PoolError, PoolStats};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Index of a port in the router (dense, assigned from the config order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PortId(pub u16);

/// Index of a queue within a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QueueId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// A locally administered unicast address derived from `seed`.
    pub fn local(seed: u32) -> MacAddr {
        let b = seed.to_be_bytes();
        MacAddr([0x02, 0x76, b[0], b[1], b[2], b[3]])
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(format!("invalid MAC address {s:?}: expected six hex pairs like 02:00:00:00:00:01"));
            }
            out[n] =
                u8::from_str_radix(part, 16).map_err(|_| format!("invalid MAC address {s:?}: {part:?} is not hex"))?;
            n += 1;
        }
        if n != 6 {
            return Err(format!("invalid MAC address {s:?}: expected six hex pairs"));
        }
        Ok(MacAddr(out))
    }
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkState {
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
}

/// What the port's hardware can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// RX: reports IPv4 header checksum good/bad.
    pub rx_ip_csum: bool,
    /// RX: reports TCP/UDP checksum good/bad.
    pub rx_l4_csum: bool,
    /// TX: fills the IPv4 header checksum.
    pub tx_ip_csum: bool,
    /// TX: fills TCP/UDP checksums.
    pub tx_l4_csum: bool,
    /// RSS across RX queues.
    pub rss: bool,
    /// Largest MTU the port accepts.
    pub max_mtu: u16,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
}

/// Receive-side scaling configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// Toeplitz key.
    pub key: [u8; 40],
    /// Indirection table: hash bucket (low bits of the hash) → RX queue.
    pub reta: Vec<u16>,
    /// Hash over TCP/UDP ports as well as addresses.
    pub l4: bool,
}

impl RssConfig {
    /// The Microsoft default key, a 64-entry table spread over `queues`.
    pub fn spread(queues: u16) -> RssConfig {
        RssConfig {
            key: crate::rss::DEFAULT_KEY,
            reta: (0..crate::rss::RETA_SIZE as u16).map(|i| i % queues.max(1)).collect(),
            l4: true,
        }
    }

    /// Checks the table against a queue count.
    pub fn validate(&self, queues: u16) -> Result<(), PortError> {
        if self.reta.is_empty() || !self.reta.len().is_power_of_two() || self.reta.len() > 512 {
            return Err(PortError::InvalidConfig(format!(
                "RSS indirection table must have a power-of-two size up to 512, got {}",
                self.reta.len()
            )));
        }
        if let Some(q) = self.reta.iter().find(|&&q| q >= queues) {
            return Err(PortError::InvalidConfig(format!(
                "RSS indirection table names queue {q} but the port has {queues} RX queues"
            )));
        }
        Ok(())
    }
}

/// Per-queue counters. `drops` names each reason the driver itself drops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub packets: u64,
    pub bytes: u64,
    pub drops: Vec<(&'static str, u64)>,
    /// Other driver counters that are not drops (e.g. coalesced CQEs).
    pub counters: Vec<(&'static str, u64)>,
}

impl QueueStats {
    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|d| d.1).sum()
    }
}

/// Stats of one RX queue, with its page pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxQueueStats {
    pub queue: QueueStats,
    pub pool: PoolStats,
}

/// Static facts about a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub id: PortId,
    pub name: String,
    pub driver: &'static str,
    pub mac: MacAddr,
    pub mtu: u16,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub capabilities: Capabilities,
}

/// What a driver needs to open a port. Driver-specific settings are in
/// `args` (e.g. `wire` for `mem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub id: PortId,
    pub name: String,
    pub driver: String,
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// RX descriptors per queue.
    pub rx_ring: u32,
    /// TX descriptors per queue.
    pub tx_ring: u32,
    pub mtu: u16,
    /// MAC to use; drivers with a burned-in address may ignore it.
    pub mac: Option<MacAddr>,
    /// Buffers in each RX queue's page pool (0 = driver default).
    pub pool_buffers: u32,
    pub hugepages: crate::region::HugepagePolicy,
    pub args: BTreeMap<String, String>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            id: PortId(0),
            name: String::from("p0"),
            driver: String::from("mem"),
            rx_queues: 1,
            tx_queues: 1,
            rx_ring: 1024,
            tx_ring: 1024,
            mtu: 1500,
            mac: None,
            pool_buffers: 0,
            hugepages: crate::region::HugepagePolicy::Prefer,
            args: BTreeMap::new(),
        }
    }
}

/// Errors of the port interface.
#[derive(Debug)]
pub enum PortError {
    UnknownDriver(String),
    InvalidConfig(String),
    QueueOutOfRange {
        queue: QueueId,
        queues: u16,
    },
    /// A worker already holds this queue.
    QueueInUse(QueueId),
    MtuOutOfRange {
        mtu: u16,
        min: u16,
        max: u16,
    },
    Unsupported(&'static str),
    Pool(PoolError),
    Io(std::io::Error),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::UnknownDriver(d) => {
                write!(f, "unknown port driver {d:?} (available: {})", crate::driver_names().join(", "))
            }
            PortError::InvalidConfig(s) => write!(f, "invalid port config: {s}"),
            PortError::QueueOutOfRange { queue, queues } => {
                write!(f, "queue {queue} out of range (port has {queues})")
            }
            PortError::QueueInUse(q) => write!(f, "queue {q} is already taken by a worker"),
            PortError::MtuOutOfRange { mtu, min, max } => {
                write!(f, "MTU {mtu} out of range {min}..={max}")
            }
            PortError::Unsupported(s) => write!(f, "not supported by this port: {s}"),
            PortError::Pool(e) => write!(f, "{e}"),
            PortError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PortError {}

impl From<PoolError> for PortError {
    fn from(e: PoolError) -> Self {
        PortError::Pool(e)
    }
}

/// The control side of a port. Thread-safe: the control plane and stats
/// readers call it while workers poll the queue handles.
pub trait Port: Send + Sync {
    fn info(&self) -> PortInfo;
    /// Starts the port (RX and TX begin; link may come up).
    fn start(&self) -> Result<(), PortError>;
    /// Stops the port: RX returns nothing and TX drops (counted).
    fn stop(&self) -> Result<(), PortError>;
    fn is_started(&self) -> bool;
    fn link(&self) -> LinkState;
    fn set_mtu(&self, mtu: u16) -> Result<(), PortError>;
    fn rss(&self) -> RssConfig;
    fn set_rss(&self, cfg: &RssConfig) -> Result<(), PortError>;
    /// Takes the RX queue `q` for the calling worker. The queue is released
    /// when the handle is dropped.
    fn rx_queue(&self, q: QueueId) -> Result<Box<dyn RxQueue>, PortError>;
    /// Takes the TX queue `q` for the calling worker.
    fn tx_queue(&self, q: QueueId) -> Result<Box<dyn TxQueue>, PortError>;
    fn rx_stats(&self, q: QueueId) -> Option<RxQueueStats>;
    fn tx_stats(&self, q: QueueId) -> Option<QueueStats>;
    /// The page pool of RX queue `q`.
    fn rx_pool(&self, q: QueueId) -> Option<PagePool>;
}

/// A receive queue, owned by one worker.
pub trait RxQueue: Send {
    fn queue(&self) -> QueueId;
    /// Receives up to `out.remaining()` packets, appended to `out`; returns
    /// how many were added.
    fn rx_burst(&mut self, out: &mut PktBurst) -> usize;
    /// The pool receive buffers come from (the worker binds to it).
    fn pool(&self) -> &PagePool;
}

/// A transmit queue, owned by one worker.
pub trait TxQueue: Send {
    fn queue(&self) -> QueueId;
    /// Transmits packets from `pkts` in order and returns how many were
    /// sent. Sent packets leave `pkts` (their buffers return to their pools
    /// on TX completion). Packets the port can never send (oversize, link
    /// down) are dropped and counted by the driver; packets that found no
    /// room stay in `pkts`, in order, for the caller to retry or drop.
    fn tx_burst(&mut self, pkts: &mut PktBurst) -> usize;
}
