//! Frame I/O back-ends: where an emulated NIC's "wire" meets the outside.
//!
//! A back-end moves whole Ethernet frames (destination MAC first, no FCS)
//! one at a time. Two exist: [`crate::afpacket::AfPacket`], a raw socket
//! bound to a Linux interface, and [`crate::pcap::PcapIo`], which replays
//! one capture file and records into another.

/// A place frames go to and come from.
pub trait FrameIo: Send + Sync {
    /// Sends one Ethernet frame.
    fn send(&self, frame: &[u8]) -> std::io::Result<()>;
    /// Receives one frame into `buf` without blocking; Ok(None) when none is waiting. A frame longer than `buf` is
    /// truncated to buf.len() and the returned length is the frame's real length (so callers can detect truncation).
    fn recv(&self, buf: &mut [u8]) -> std::io::Result<Option<usize>>;
    /// Waits up to `timeout` for a frame to be receivable; Ok(true) if one is (or may be).
    fn wait(&self, timeout: std::time::Duration) -> std::io::Result<bool>;
    /// Short description, e.g. "afpacket:veth0" or "pcap:in.pcap>out.pcap".
    fn describe(&self) -> String;
}
