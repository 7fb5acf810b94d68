//! vrouter ports: packet buffers, per-queue page pools, the [`Port`]
//! interface and its drivers.
//!
//! Drivers are chosen by name ([`open_port`]); each registers one entry in
//! [`DRIVERS`].

pub mod afpacket;
pub mod afpacket_port;
pub mod buf;
pub mod counter;
pub mod frameio;
pub mod mana;
pub mod mem;
mod netdev;
pub mod pcap;
pub mod pool;
pub mod port;
pub mod region;
pub mod rss;
pub mod tap;

pub use buf::{Offload, Pkt, PktBurst, PktMeta, RssType, MAX_BURST};
pub use pool::{PagePool, PoolBinding, PoolConfig, PoolError, PoolStats};
pub use port::{
    Capabilities, LinkState, MacAddr, Port, PortConfig, PortError, PortId, PortInfo, QueueId, QueueStats, RssConfig,
    RxQueue, RxQueueStats, TxQueue,
};
pub use region::{HugepagePolicy, MemRegion, PageKind};

/// Locks a mutex, recovering from poisoning: the driver-side state behind
/// these locks is updated in short sections that leave it consistent at
/// every step, so a panic elsewhere cannot leave it half written.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A driver's constructor.
pub type OpenFn = fn(&PortConfig) -> Result<Box<dyn Port>, PortError>;

/// Every driver, by the name used in configs.
pub const DRIVERS: &[(&str, OpenFn)] = &[
    (mem::DRIVER, mem::open),
    (mana::DRIVER, mana::open),
    (tap::DRIVER, tap::open),
    (afpacket_port::DRIVER, afpacket_port::open),
];

/// Names of the available drivers.
pub fn driver_names() -> Vec<&'static str> {
    DRIVERS.iter().map(|d| d.0).collect()
}

/// Opens a port with the driver named in `cfg.driver`.
pub fn open_port(cfg: &PortConfig) -> Result<Box<dyn Port>, PortError> {
    match DRIVERS.iter().find(|d| d.0 == cfg.driver) {
        Some((_, open)) => open(cfg),
        None => Err(PortError::UnknownDriver(cfg.driver.clone())),
    }
}
