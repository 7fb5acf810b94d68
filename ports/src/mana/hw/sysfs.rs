//! Port-to-MAC mapping through sysfs, as DPDK's mana driver does it.
//!
//! An RDMA device `mana_N` has its PCI function at
//! `/sys/class/infiniband/mana_N/device`; that function's Ethernet netdevs
//! (the VF netdevs, one per vPort) are listed under `device/net/<ifname>/`
//! with `address` (the MAC) and `dev_port` (0-based; the IB port is
//! `dev_port + 1`). MANA vPorts are chosen by MAC, never by PCI address.
//!
//! Everything here takes the directory to read from, so the tests run on
//! a fake tree.

use crate::port::MacAddr;
use std::fs;
use std::path::Path;

/// One Ethernet vPort of an RDMA device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMac {
    /// IB port number (1-based).
    pub port: u8,
    pub mac: MacAddr,
    /// The kernel netdev of this vPort (the VF's, e.g. `enP30832s1`).
    pub netdev: String,
}

/// Parses a sysfs MAC (`00:0d:3a:12:34:56\n`).
pub fn parse_mac(text: &str) -> Option<MacAddr> {
    text.trim().parse().ok()
}

/// Parses a sysfs decimal number (`0\n`).
fn parse_u32(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// Whether the RDMA device at `ibdev_path` (`/sys/class/infiniband/<name>`)
/// is a MANA device: its name starts with `mana`, or the driver of its PCI
/// function is `mana`.
pub fn is_mana_device(name: &str, ibdev_path: &Path) -> bool {
    if name.starts_with("mana") {
        return true;
    }
    fs::read_link(ibdev_path.join("device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|f| f == "mana"))
        .unwrap_or(false)
}

/// The Ethernet vPorts of the RDMA device at `ibdev_path`, by port number.
/// Netdevs without a readable `dev_port` or `address` are skipped.
pub fn port_macs(ibdev_path: &Path) -> Vec<PortMac> {
    let Ok(dir) = fs::read_dir(ibdev_path.join("device/net")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let netdev = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Some(dev_port) = fs::read_to_string(path.join("dev_port")).ok().and_then(|s| parse_u32(&s)) else {
            continue;
        };
        let Some(mac) = fs::read_to_string(path.join("address")).ok().and_then(|s| parse_mac(&s)) else {
            continue;
        };
        // Ethernet ports count from 0, IB ports from 1.
        let Ok(port) = u8::try_from(dev_port + 1) else {
            continue;
        };
        out.push(PortMac { port, mac, netdev });
    }
    out.sort_by(|a, b| (a.port, &a.netdev).cmp(&(b.port, &b.netdev)));
    out
}

/// Every kernel netdev in `class_net` (`/sys/class/net`) whose MAC is
/// `mac`: on Azure both the synthetic hv_netvsc netdev and the VF netdev
/// carry the vPort's MAC, and both must be down before the vPort can be
/// used through rdma-core.
pub fn netdevs_with_mac(class_net: &Path, mac: MacAddr) -> Vec<String> {
    let Ok(dir) = fs::read_dir(class_net) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter(|e| fs::read_to_string(e.path().join("address")).ok().and_then(|s| parse_mac(&s)) == Some(mac))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The advice for an EBUSY on queue creation: one `ip link set … down`
/// per netdev that holds the vPort.
pub fn busy_hint(netdevs: &[String]) -> String {
    if netdevs.is_empty() {
        return "the kernel netdev of this vPort must be down: ip link set <name> down \
                (both the hv_netvsc and the VF netdev with this MAC)"
            .to_string();
    }
    netdevs
        .iter()
        .map(|n| format!("the kernel netdev {n} must be down: ip link set {n} down"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A temporary directory removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "vr-mana-hw-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    /// A fake `/sys/class/infiniband/<ib>` whose PCI function has the
    /// netdevs `(name, dev_port, mac)`.
    pub(crate) fn fake_ibdev(root: &Path, ib: &str, netdevs: &[(&str, &str, &str)]) -> PathBuf {
        let ibdev = root.join("class/infiniband").join(ib);
        for (name, dev_port, mac) in netdevs {
            let nd = ibdev.join("device/net").join(name);
            write(&nd.join("dev_port"), dev_port);
            write(&nd.join("address"), mac);
        }
        fs::create_dir_all(&ibdev).expect("mkdir");
        ibdev
    }

    #[test]
    fn parse_mac_accepts_sysfs_format() {
        assert_eq!(parse_mac("00:0d:3a:12:34:56\n"), Some(MacAddr([0x00, 0x0d, 0x3a, 0x12, 0x34, 0x56])));
        assert_eq!(parse_mac("  60:45:BD:FF:00:01  "), Some(MacAddr([0x60, 0x45, 0xbd, 0xff, 0x00, 0x01])));
        assert_eq!(parse_mac(""), None);
        assert_eq!(parse_mac("00:0d:3a:12:34\n"), None);
        assert_eq!(parse_mac("00:0d:3a:12:34:zz\n"), None);
        assert_eq!(parse_mac("00:0d:3a:12:34:56:78\n"), None);
    }

    #[test]
    fn port_macs_maps_dev_port_to_ib_port() {
        let t = TempDir::new("ports");
        let ib = fake_ibdev(
            &t.0,
            "mana_0",
            &[
                ("enP30832s2", "1\n", "00:0d:3a:00:00:02\n"),
                ("enP30832s1", "0\n", "00:0d:3a:00:00:01\n"),
                // Broken entries are skipped, not fatal.
                ("junk1", "x\n", "00:0d:3a:00:00:03\n"),
                ("junk2", "2\n", "not-a-mac\n"),
            ],
        );
        let ports = port_macs(&ib);
        assert_eq!(
            ports,
            vec![
                PortMac { port: 1, mac: MacAddr([0, 0x0d, 0x3a, 0, 0, 1]), netdev: "enP30832s1".into() },
                PortMac { port: 2, mac: MacAddr([0, 0x0d, 0x3a, 0, 0, 2]), netdev: "enP30832s2".into() },
            ]
        );
    }

    #[test]
    fn port_macs_of_device_without_netdevs_is_empty() {
        let t = TempDir::new("empty");
        let ib = fake_ibdev(&t.0, "mana_1", &[]);
        assert!(port_macs(&ib).is_empty());
        assert!(port_macs(&t.0.join("does-not-exist")).is_empty());
    }

    #[test]
    fn mana_device_by_name_or_driver() {
        let t = TempDir::new("driver");
        let other = fake_ibdev(&t.0, "mlx5_0", &[]);
        assert!(is_mana_device("mana_0", &other));
        assert!(!is_mana_device("mlx5_0", &other));

        let renamed = fake_ibdev(&t.0, "rdma7", &[]);
        let drv = t.0.join("bus/pci/drivers/mana");
        fs::create_dir_all(&drv).expect("mkdir");
        fs::create_dir_all(renamed.join("device")).expect("mkdir");
        std::os::unix::fs::symlink(&drv, renamed.join("device/driver")).expect("symlink");
        assert!(is_mana_device("rdma7", &renamed));
    }

    #[test]
    fn netdevs_with_mac_finds_synthetic_and_vf() {
        let t = TempDir::new("net");
        let net = t.0.join("class/net");
        write(&net.join("eth1/address"), "00:0d:3a:00:00:01\n");
        write(&net.join("enP30832s1/address"), "00:0d:3a:00:00:01\n");
        write(&net.join("eth0/address"), "00:0d:3a:00:00:09\n");
        write(&net.join("lo/address"), "00:00:00:00:00:00\n");
        let mac = MacAddr([0, 0x0d, 0x3a, 0, 0, 1]);
        assert_eq!(netdevs_with_mac(&net, mac), vec!["enP30832s1".to_string(), "eth1".to_string()]);
        assert!(netdevs_with_mac(&t.0.join("missing"), mac).is_empty());
    }

    #[test]
    fn busy_hint_names_each_netdev() {
        let h = busy_hint(&["enP30832s1".to_string(), "eth1".to_string()]);
        assert_eq!(
            h,
            "the kernel netdev enP30832s1 must be down: ip link set enP30832s1 down; \
             the kernel netdev eth1 must be down: ip link set eth1 down"
        );
        assert!(busy_hint(&[]).contains("ip link set <name> down"));
    }
}
