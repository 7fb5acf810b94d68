//! The native MANA (Microsoft Azure Network Adapter) port driver.
//!
//! [`driver`] writes the hardware's queue entries and reads its
//! completions (formats in [`format`], rings in [`queue`]); a [`Device`]
//! back-end supplies queues, memory keys and doorbells: the emulated device
//! ([`emu`], `device = "emu"`) or, with the `mana-hw` feature, real
//! hardware through rdma-core (`hw`, `device = "hw"`).
//!
//! Port args:
//! - `device`: `emu` (default) or `hw`.
//! - emulator: `wire` (back-to-back with the other port naming it),
//!   `afpacket` (a Linux interface), `pcap_in` / `pcap_out` (files);
//!   `coalesce` (`true`/`false`, default true), `rx_csum` (default true),
//!   `vp_offset` (default 42).
//! - hardware: the port's `mac` selects the vPort.
//! - both: `pool_mem_limit_mb` caps RX pool memory; `rx_buffers = "heap"`
//!   takes every RX buffer from the global allocator instead of the
//!   queue's page pool (for comparison only).

pub mod device;
pub mod driver;
pub mod emu;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "mana-hw")]
pub mod hw;
pub mod queue;

pub use device::{Device, DeviceError, DeviceEvent};
pub use driver::{Geometry, ManaPort, ManaRxQueue, ManaTxQueue, DRIVER};
pub use emu::{EmuConfig, EmuDevice, EmuLink, EmuStats, Fault, Garbage};

use crate::port::{MacAddr, Port, PortConfig, PortError};
use std::sync::Arc;

const ARGS: &[&str] = &[
    "device",
    "wire",
    "afpacket",
    "pcap_in",
    "pcap_out",
    "coalesce",
    "rx_csum",
    "vp_offset",
    "pool_mem_limit_mb",
    "rx_buffers",
];

fn flag(cfg: &PortConfig, k: &str, default: bool) -> Result<bool, PortError> {
    match cfg.args.get(k).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(PortError::InvalidConfig(format!("port {}: {k} must be true or false, got {v:?}", cfg.name))),
    }
}

/// Builds the emulated device a port config asks for.
pub fn emu_device(cfg: &PortConfig) -> Result<Arc<EmuDevice>, PortError> {
    let a = &cfg.args;
    let links = ["wire", "afpacket", "pcap_in", "pcap_out"].iter().filter(|k| a.contains_key(**k)).count();
    let link = if let Some(w) = a.get("wire") {
        EmuLink::Pair(w.clone())
    } else if let Some(ifname) = a.get("afpacket") {
        let io = crate::afpacket::AfPacket::open(ifname).map_err(PortError::Io)?;
        EmuLink::Io(Arc::new(io))
    } else if a.contains_key("pcap_in") || a.contains_key("pcap_out") {
        let io = crate::pcap::PcapIo::new(a.get("pcap_in").map(Into::into), a.get("pcap_out").map(Into::into))
            .map_err(PortError::Io)?;
        EmuLink::Io(Arc::new(io))
    } else {
        EmuLink::None
    };
    if links > 1 && !(links == 2 && a.contains_key("pcap_in") && a.contains_key("pcap_out")) {
        return Err(PortError::InvalidConfig(format!(
            "port {}: choose one emulated wire: wire, afpacket, or pcap_in/pcap_out",
            cfg.name
        )));
    }
    let vp_offset =
        match a.get("vp_offset") {
            None => 42,
            Some(v) => v.parse::<u16>().ok().filter(|v| *v < 4096).ok_or_else(|| {
                PortError::InvalidConfig(format!("port {}: vp_offset {v:?} must be 0..=4095", cfg.name))
            })?,
        };
    EmuDevice::new(EmuConfig {
        name: cfg.name.clone(),
        mac: cfg.mac.unwrap_or_else(|| MacAddr::local(0x4d41_0000 | cfg.id.0 as u32)),
        coalesce: flag(cfg, "coalesce", true)?,
        rx_csum: flag(cfg, "rx_csum", true)?,
        vp_offset,
        link,
        ..Default::default()
    })
    .map_err(|e| PortError::InvalidConfig(e.to_string()))
}

/// Opens a MANA port (driver registry entry).
pub fn open(cfg: &PortConfig) -> Result<Box<dyn Port>, PortError> {
    if let Some(k) = cfg.args.keys().find(|k| !ARGS.contains(&k.as_str())) {
        return Err(PortError::InvalidConfig(format!(
            "port {}: unknown mana driver arg {k:?} (known: {})",
            cfg.name,
            ARGS.join(", ")
        )));
    }
    let dev: Arc<dyn Device> = match cfg.args.get("device").map(String::as_str).unwrap_or("emu") {
        "emu" => emu_device(cfg)?,
        "hw" => hw_device(cfg)?,
        other => {
            return Err(PortError::InvalidConfig(format!(
                "port {}: mana device {other:?} unknown (emu or hw)",
                cfg.name
            )))
        }
    };
    Ok(Box::new(ManaPort::open(cfg, dev)?))
}

#[cfg(feature = "mana-hw")]
fn hw_device(cfg: &PortConfig) -> Result<Arc<dyn Device>, PortError> {
    let mac = cfg.mac.ok_or_else(|| {
        PortError::InvalidConfig(format!("port {}: device = \"hw\" needs the NIC's mac to select the vPort", cfg.name))
    })?;
    Ok(Arc::new(hw::HwDevice::open(mac).map_err(|e| PortError::InvalidConfig(format!("port {}: {e}", cfg.name)))?))
}

#[cfg(not(feature = "mana-hw"))]
fn hw_device(cfg: &PortConfig) -> Result<Arc<dyn Device>, PortError> {
    Err(PortError::InvalidConfig(format!(
        "port {}: device = \"hw\" needs vrouter built with the mana-hw feature (cargo build --features ports/mana-hw)",
        cfg.name
    )))
}
