//! The boundary between the MANA driver and the device behind it.
//!
//! The driver (queues, descriptors, completions, buffers) is the same for
//! every back-end; a [`Device`] only does what the hardware's control path
//! does: create queues and hand out their ring memory, register buffer
//! memory for DMA, take doorbell writes, and report servicing events.
//!
//! Back-ends: the emulated device ([`super::emu`]) and, with the `mana-hw`
//! feature, real hardware through rdma-core ([`super::hw`]).

use crate::port::{MacAddr, RssConfig};
use std::fmt;
use std::ptr::NonNull;

/// One queue's ring as the device created it.
///
/// `base..base + size` stays mapped and valid until the queue is destroyed
/// ([`Device::destroy_queues`]) or the device object is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingInfo {
    pub base: NonNull<u8>,
    /// Bytes: a power of two, at least 4 KiB.
    pub size: usize,
    /// Queue id used in doorbells, CQE `wq_num` and OOB `vcq_num`.
    pub id: u32,
}

// SAFETY: RingInfo is a plain description of device-owned memory; the
// driver decides which thread touches which ring.
unsafe impl Send for RingInfo {}
// SAFETY: as above.
unsafe impl Sync for RingInfo {}

/// A TX queue: its send queue and completion queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxQueueRes {
    pub sq: RingInfo,
    pub cq: RingInfo,
    /// vPort offset for the TX OOB (`tx_vp_offset`).
    pub vp_offset: u16,
}

/// An RX queue: its receive queue and completion queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxQueueRes {
    pub rq: RingInfo,
    pub cq: RingInfo,
}

/// Static facts about a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// e.g. `emu:w0/a` or `mana_0 port 1`.
    pub name: String,
    pub mac: MacAddr,
    pub max_queues: u16,
    pub max_mtu: u16,
}

/// Out-of-band events (in addition to what the device writes to an EQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The host started a servicing reset: stop using every queue.
    Reset,
    /// The device is gone (hot removal, fatal error).
    Removed,
    /// The device is usable again after a reset or removal; queues and
    /// memory registrations must be created anew.
    Returned,
}

/// Errors of the device control path.
#[derive(Debug)]
pub enum DeviceError {
    /// The device is resetting or removed.
    Gone,
    /// The request is out of the device's limits; the string says how.
    Invalid(String),
    /// Out of device or host memory.
    NoMemory(String),
    /// The device or library does not support this.
    Unsupported(&'static str),
    /// A system or verbs call failed.
    Io(std::io::Error),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Gone => write!(f, "device is resetting or removed"),
            DeviceError::Invalid(s) => write!(f, "invalid device request: {s}"),
            DeviceError::NoMemory(s) => write!(f, "out of memory: {s}"),
            DeviceError::Unsupported(s) => write!(f, "not supported by the device: {s}"),
            DeviceError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// The control path of a MANA device (one vPort).
///
/// Thread-safe: queue handles on different workers ring doorbells
/// concurrently; the port's service thread polls events.
pub trait Device: Send + Sync {
    fn info(&self) -> DeviceInfo;

    /// Registers `base..base + len` for device access (local write) and
    /// returns the key SGEs must carry (`lkey`).
    fn register_memory(&self, base: usize, len: usize) -> Result<u32, DeviceError>;

    /// Forgets a registration. Unknown keys are ignored.
    fn deregister_memory(&self, key: u32);

    /// Creates the port's event queue of `entries` 16-byte EQEs, or returns
    /// `None` when the back-end reports events only through
    /// [`Device::poll_event`] (rdma-core does not expose an EQ).
    fn create_eq(&self, entries: u32) -> Result<Option<RingInfo>, DeviceError>;

    /// Creates one TX queue: an SQ of `sq_bytes` and a CQ of `cq_entries`
    /// 64-byte CQEs. `eq` is the EQ id armed CQs report to.
    fn create_tx_queue(&self, sq_bytes: usize, cq_entries: u32, eq: Option<u32>) -> Result<TxQueueRes, DeviceError>;

    /// Creates all `n` RX queues at once (one RQ of `rq_bytes` and one CQ of
    /// `cq_entries` each), spread by `rss`.
    fn create_rx_queues(
        &self,
        n: u16,
        rq_bytes: usize,
        cq_entries: u32,
        rss: &RssConfig,
        eq: Option<u32>,
    ) -> Result<Vec<RxQueueRes>, DeviceError>;

    /// Changes RSS on the live RX queues.
    fn set_rss(&self, rss: &RssConfig) -> Result<(), DeviceError>;

    /// Destroys every queue (TX, RX, EQ). Their ring memory is invalid
    /// afterwards. Memory registrations stay.
    fn destroy_queues(&self);

    /// One 64-bit doorbell write at `offset` of the doorbell page (SQ 0x000,
    /// RQ 0x400, CQ 0x800, EQ 0xFF8), after a write barrier.
    fn doorbell(&self, offset: u32, value: u64);

    /// The next out-of-band event, if any. Never blocks.
    fn poll_event(&self) -> Option<DeviceEvent>;

    /// Whether the wire behind the vPort carries frames (the emulator's
    /// peer is attached; real hardware reports its vPort link).
    fn link_up(&self) -> bool {
        true
    }
}
