//! What the drivers on Linux network interfaces (`tap`, `afpacket`) share:
//! interface names and `struct ifreq`, and the transmit loop that hands
//! each frame to the kernel with one system call.

use crate::buf::PktBurst;
use crate::counter::Counter;
use std::io;
use std::mem;

/// Smallest MTU the drivers accept (IPv4's minimum).
pub(crate) const MIN_MTU: u16 = 68;
/// Largest MTU the drivers accept.
pub(crate) const MAX_MTU: u16 = 9000;
pub(crate) const ETH_HLEN: usize = 14;
/// Ethernet header plus one VLAN tag.
pub(crate) const ETH_OVERHEAD: usize = 18;
/// Longest interface name (IFNAMSIZ - 1).
pub(crate) const MAX_IFNAME: usize = libc::IFNAMSIZ - 1;

/// Why `name` cannot be a Linux interface name (the kernel's
/// `dev_valid_name`), if it cannot.
pub(crate) fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name == "." || name == ".." {
        return Err("is not allowed as an interface name".into());
    }
    if name.len() > MAX_IFNAME {
        return Err(format!("is {} bytes long; Linux interface names have at most {MAX_IFNAME}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | ':' | '\0') || c.is_whitespace()) {
        return Err(format!("contains {c:?}, which Linux does not allow in interface names"));
    }
    Ok(())
}

/// An interface name as a NUL-terminated `ifr_name` (checked before).
pub(crate) fn ifr_name(name: &str) -> [libc::c_char; libc::IFNAMSIZ] {
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (o, b) in out.iter_mut().zip(name.as_bytes().iter().take(MAX_IFNAME)) {
        *o = *b as libc::c_char;
    }
    out
}

pub(crate) fn zeroed_ifreq() -> libc::ifreq {
    // SAFETY: ifreq holds only integers, arrays and unions of them; all-zero is a valid value.
    unsafe { mem::zeroed() }
}

/// The errno of the last failed call (allocation-free).
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A TX queue's counters.
#[derive(Default)]
pub(crate) struct TxCounters {
    pub packets: Counter,
    pub bytes: Counter,
    pub oversize: Counter,
    pub runt: Counter,
    pub link_down: Counter,
    pub write_error: Counter,
    /// Bursts cut short because the kernel had no room (not a drop: the
    /// rest stays with the caller).
    pub would_block: Counter,
}

impl TxCounters {
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("oversize", self.oversize.get()),
            ("runt", self.runt.get()),
            ("link_down", self.link_down.get()),
            ("write_error", self.write_error.get()),
        ]
    }

    /// Drops every packet of `pkts` as `link_down` (port stopped, or its
    /// interface gone).
    pub fn drop_all(&self, pkts: &mut PktBurst) -> usize {
        self.link_down.add(pkts.len() as u64);
        pkts.clear();
        0
    }
}

/// Hands the frames of `pkts` to the kernel in order, one `send(frame)`
/// each (which returns the bytes taken, or the errno). Frames longer than
/// `max_frame` or shorter than an Ethernet header are dropped and counted;
/// on EAGAIN / ENOBUFS the burst stops and the rest stays in `pkts`, in
/// order (the TxQueue contract); every other packet leaves `pkts` (sent
/// ones return to their pool). ENETDOWN, ENXIO, ENODEV count as
/// `link_down`, EMSGSIZE as `oversize`, and `link_gone` names further
/// errnos that mean the interface is gone (it may record that). Returns
/// the number sent.
#[inline]
pub(crate) fn send_frames(
    pkts: &mut PktBurst,
    max_frame: usize,
    c: &TxCounters,
    mut send: impl FnMut(&[u8]) -> Result<usize, i32>,
    link_gone: impl Fn(i32) -> bool,
) -> usize {
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut full = false;
    pkts.retain(|p| {
        if full {
            return true; // no room: stays with the caller, in order
        }
        let len = p.len();
        if len > max_frame {
            c.oversize.inc();
            return false;
        }
        if len < ETH_HLEN {
            c.runt.inc();
            return false;
        }
        loop {
            match send(p.data()) {
                // A TAP or packet socket takes the whole frame or fails.
                Ok(n) if n == len => {
                    sent += 1;
                    bytes += len as u64;
                }
                Ok(_) => c.write_error.inc(),
                Err(libc::EINTR) => continue,
                Err(libc::EAGAIN | libc::ENOBUFS) => {
                    c.would_block.inc();
                    full = true;
                    return true;
                }
                Err(libc::ENETDOWN | libc::ENXIO | libc::ENODEV) => c.link_down.inc(),
                Err(libc::EMSGSIZE) => c.oversize.inc(),
                Err(e) if link_gone(e) => c.link_down.inc(),
                Err(_) => c.write_error.inc(),
            }
            return false; // done: the buffer returns to its pool
        }
    });
    c.packets.add(sent);
    c.bytes.add(bytes);
    sent as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        for ok in ["eth0", "veth-a.10", "fifteen-chars-a", "tap%d"] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "tab\tx", "nul\0x", "sixteen-chars-ab"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
        let n = ifr_name("eth0");
        assert_eq!((n[0], n[3], n[4]), (b'e' as libc::c_char, b'0' as libc::c_char, 0));
    }
}

/// Test support shared by the tap and afpacket driver tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::afpacket::AfPacket;
    use crate::frameio::FrameIo;
    use crate::{PagePool, PktBurst, PortError};
    use std::process::Command;
    use std::time::{Duration, Instant};

    pub fn invalid(e: PortError) -> String {
        match e {
            PortError::InvalidConfig(s) => s,
            other => unreachable!("expected InvalidConfig, got {other:?}"),
        }
    }

    /// Runs `ip` with `args`; Err carries the command and its stderr.
    pub fn ip(args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn burst_of(pool: &PagePool, frames: &[Vec<u8>]) -> PktBurst {
        let mut b = PktBurst::new();
        for f in frames {
            let mut p = pool.alloc().expect("a free buffer");
            assert!(p.copy_from(f), "frame of {} bytes fits", f.len());
            b.push(p).expect("room in the burst");
        }
        b
    }

    pub fn drop_count(drops: &[(&'static str, u64)], name: &str) -> u64 {
        drops.iter().find(|d| d.0 == name).map(|d| d.1).expect("drop reason listed")
    }

    /// The first frame `io` receives within 5 s that `is_marked`.
    /// The next marked frame the kernel shows on `io`, within [`PATIENCE`].
    pub fn recv_marked(io: &AfPacket, is_marked: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            while let Some(n) = io.recv(&mut buf).expect("recv") {
                if is_marked(&buf[..n.min(buf.len())]) {
                    return Some(buf[..n.min(buf.len())].to_vec());
                }
            }
            io.wait(Duration::from_millis(50)).expect("wait");
        }
        None
    }
}
