//! AF_PACKET frame I/O: a raw socket bound to one Linux interface.
//!
//! [`AfPacket`] connects an emulated NIC's wire to a kernel interface, most
//! often one end of a veth pair whose peer sits in a network namespace. The
//! socket is non-blocking, sees every frame that arrives on the interface
//! (promiscuous membership, any ethertype) and none that it or anyone else
//! sends out of it (`PACKET_IGNORE_OUTGOING`).
//!
//! The socket belongs to the network namespace of the thread that opened it;
//! every later call, including [`AfPacket::mtu`] and [`AfPacket::mac`], asks
//! the kernel through this socket, so it may be used from any thread.
//!
//! Opening needs `CAP_NET_RAW`. Frames are whole Ethernet frames without FCS.
//! The kernel's segmentation offloads are not undone: on a veth whose peer
//! sends TCP, turn off GRO/TSO (`ethtool -K`) to see MTU-sized frames.

use crate::frameio::FrameIo;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Receive buffer asked for (`SO_RCVBUFFORCE`, or `SO_RCVBUF` within `rmem_max`).
const RCVBUF_BYTES: libc::c_int = 4 << 20;
/// Most frames discarded from the queue when the socket is opened.
const DRAIN_MAX: usize = 4096;
/// A boolean socket option's "on".
const ON: libc::c_int = 1;

/// A non-blocking AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct AfPacket {
    fd: OwnedFd,
    ifname: String,
    ifindex: libc::c_int,
}

impl AfPacket {
    /// Opens a raw socket on `ifname`, which must be an Ethernet interface of
    /// the calling thread's network namespace.
    pub fn open(ifname: &str) -> io::Result<AfPacket> {
        let name = ifr_name(ifname)?;
        // Protocol 0: the socket receives nothing until bind() names the
        // protocol and the interface, so no frame of another interface can
        // be queued in between.
        // SAFETY: socket() takes no pointers; the result is checked below.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let err = io::Error::last_os_error();
            let hint = if err.kind() == io::ErrorKind::PermissionDenied { " (needs CAP_NET_RAW)" } else { "" };
            return Err(io::Error::new(err.kind(), format!("afpacket {ifname}: socket(AF_PACKET): {err}{hint}")));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut sock = AfPacket { fd, ifname: ifname.to_owned(), ifindex: 0 };

        let mut ifr = ifreq_named(name);
        sock.ioctl(libc::SIOCGIFINDEX, &mut ifr, "SIOCGIFINDEX")?;
        // SAFETY: SIOCGIFINDEX succeeded, so the kernel filled in `ifru_ifindex`.
        sock.ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };

        let (hatype, _) = sock.hwaddr(name)?;
        if hatype != libc::ARPHRD_ETHER && hatype != libc::ARPHRD_LOOPBACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("afpacket {ifname}: not an Ethernet interface (ARPHRD type {hatype})"),
            ));
        }

        match sock.setsockopt(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &ON) {
            // Kernels before 4.20 lack the option; recv() filters outgoing frames anyway.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
            r => r.map_err(|e| sock.err("PACKET_IGNORE_OUTGOING", e))?,
        }
        if sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF_BYTES).is_err() {
            sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF_BYTES).map_err(|e| sock.err("SO_RCVBUF", e))?;
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: sock.ifindex,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        sock.setsockopt(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| sock.err("PACKET_ADD_MEMBERSHIP(PACKET_MR_PROMISC)", e))?;

        let sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as libc::c_ushort,
            sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
            sll_ifindex: sock.ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let r = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(sock.err("bind", io::Error::last_os_error()));
        }
        sock.drain()?;
        Ok(sock)
    }

    /// The interface name given to [`AfPacket::open`].
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface's index in its network namespace.
    pub fn ifindex(&self) -> u32 {
        self.ifindex as u32
    }

    /// The interface's MTU (SIOCGIFMTU), now.
    pub fn mtu(&self) -> io::Result<u32> {
        let mut ifr = ifreq_named(self.current_name()?);
        self.ioctl(libc::SIOCGIFMTU, &mut ifr, "SIOCGIFMTU")?;
        // SAFETY: SIOCGIFMTU succeeded, so the kernel filled in `ifru_mtu`.
        let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
        u32::try_from(mtu).map_err(|_| self.err("SIOCGIFMTU", io::Error::other(format!("negative MTU {mtu}"))))
    }

    /// The interface's MAC address (SIOCGIFHWADDR), now.
    pub fn mac(&self) -> io::Result<[u8; 6]> {
        self.hwaddr(self.current_name()?).map(|(_, mac)| mac)
    }

    /// Discards whatever was queued while the socket was being set up. With
    /// protocol 0 until bind() nothing should be, but a frame of another
    /// interface must never reach the caller. At most [`DRAIN_MAX`] frames,
    /// so a busy interface cannot hold `open` forever.
    fn drain(&self) -> io::Result<()> {
        let mut scratch = [0u8; 64];
        for _ in 0..DRAIN_MAX {
            if self.recv_any(&mut scratch)?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Receives the next frame of any kind; the caller filters.
    fn recv_any(&self, buf: &mut [u8]) -> io::Result<Option<(usize, libc::sockaddr_ll)>> {
        loop {
            // SAFETY: sockaddr_ll holds only integers and arrays; all-zero is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` is writable for buf.len() bytes and `from` for
            // `from_len` bytes; the kernel writes no more than these lengths
            // (MSG_TRUNC changes only the returned count).
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if n >= 0 {
                return Ok(Some((n as usize, from)));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(self.err("recvfrom", err)),
            }
        }
    }

    /// The interface's current name, asked by index through this socket: it
    /// follows renames and works from threads of another namespace.
    fn current_name(&self) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
        // SAFETY: ifreq holds only integers, arrays and unions of them; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
        ifr.ifr_ifru.ifru_ifindex = self.ifindex;
        self.ioctl(libc::SIOCGIFNAME, &mut ifr, "SIOCGIFNAME")?;
        Ok(ifr.ifr_name)
    }

    /// The hardware type (ARPHRD_*) and first six address bytes of `name`.
    fn hwaddr(&self, name: [libc::c_char; libc::IFNAMSIZ]) -> io::Result<(u16, [u8; 6])> {
        let mut ifr = ifreq_named(name);
        self.ioctl(libc::SIOCGIFHWADDR, &mut ifr, "SIOCGIFHWADDR")?;
        // SAFETY: SIOCGIFHWADDR succeeded, so the kernel filled in `ifru_hwaddr`.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok((sa.sa_family, mac))
    }

    fn ioctl(&self, request: libc::c_ulong, ifr: &mut libc::ifreq, what: &str) -> io::Result<()> {
        // SAFETY: every request passed here reads and writes one `struct ifreq`, which `ifr` is.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), request as _, ifr as *mut libc::ifreq) };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENODEV) {
                // Also after open: the interface was deleted.
                let msg = format!("afpacket {}: no such interface ({what})", self.ifname);
                return Err(io::Error::new(io::ErrorKind::NotFound, msg));
            }
            return Err(self.err(what, err));
        }
        Ok(())
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` is readable for size_of::<T>() bytes, the length passed.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
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

    /// `err` with the interface and the failed step in its message.
    fn err(&self, what: &str, err: io::Error) -> io::Error {
        io::Error::new(err.kind(), format!("afpacket {}: {what}: {err}", self.ifname))
    }
}

impl FrameIo for AfPacket {
    /// Sends one frame out of the interface. A full socket buffer or device
    /// queue (`WouldBlock`, `ENOBUFS`) drops the frame and returns the bare OS
    /// error, which allocates nothing; other errors name the interface.
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is readable for frame.len() bytes.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                if n as usize != frame.len() {
                    let msg = format!("short send: {n} of {} bytes", frame.len());
                    return Err(self.err("send", io::Error::other(msg)));
                }
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Err(err),
                _ if err.raw_os_error() == Some(libc::ENOBUFS) => return Err(err),
                _ => return Err(self.err("send", err)),
            }
        }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        while let Some((len, from)) = self.recv_any(buf)? {
            // Bound to one interface with outgoing frames ignored, neither
            // test ever fails; they guard older kernels.
            if from.sll_pkttype != libc::PACKET_OUTGOING && from.sll_ifindex == self.ifindex {
                return Ok(Some(len));
            }
        }
        Ok(None)
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd and nfds is 1.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms(timeout)) };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(true);
            }
            return Err(self.err("poll", err));
        }
        // POLLERR (e.g. the interface went down) also counts: recv() reports it.
        Ok(r > 0)
    }

    fn describe(&self) -> String {
        format!("afpacket:{}", self.ifname)
    }
}

/// `ifname` as a NUL-terminated `ifr_name`, or an error if it cannot be one.
fn ifr_name(ifname: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("afpacket {ifname:?}: not a valid interface name (1 to {} bytes, no NUL)", libc::IFNAMSIZ - 1),
        ));
    }
    let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
    for (n, b) in name.iter_mut().zip(bytes) {
        *n = *b as libc::c_char;
    }
    Ok(name)
}

fn ifreq_named(name: [libc::c_char; libc::IFNAMSIZ]) -> libc::ifreq {
    // SAFETY: ifreq holds only integers, arrays and unions of them; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    ifr.ifr_name = name;
    ifr
}

/// `timeout` in whole milliseconds for poll(), rounded up so that a short
/// wait does not become a busy poll, and capped at i32::MAX.
fn timeout_ms(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

#[cfg(test)]
mod tests {
    //! These tests need root: each builds a network namespace and a veth pair
    //! named after the process id, and removes them when done.

    use super::*;
    use std::fs::File;
    use std::process::Command;
    use std::time::Instant;

    /// The local experimental ethertype; stray kernel frames never use it.
    const MARKER: u16 = 0x88b5;

    /// Runs `ip` with `args`; Err carries the command and its stderr.
    fn ip(args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Turns IPv6 off on `ifname` in the calling thread's namespace, so the
    /// kernel sends no DAD or router solicitations; best effort, since the
    /// tests also filter on [`MARKER`].
    fn disable_ipv6(ifname: &str) {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"), "1");
    }

    /// A namespace holding `b`, the peer of veth `a` in the root namespace.
    /// Dropping it deletes both, even when a test failed half way.
    struct TestNet {
        ns: String,
        a: String,
        b: String,
    }

    impl TestNet {
        fn new(tag: char) -> TestNet {
            let pid = std::process::id();
            let net =
                TestNet { ns: format!("frameio-{pid}-{tag}"), a: format!("fa{pid}{tag}"), b: format!("fb{pid}{tag}") };
            ip(&["netns", "add", &net.ns]).expect("create netns (needs root)");
            ip(&["link", "add", &net.a, "type", "veth", "peer", "name", &net.b, "netns", &net.ns]).expect("add veth");
            disable_ipv6(&net.a);
            ip(&["link", "set", &net.a, "up"]).expect("set a up");
            ip(&["-n", &net.ns, "link", "set", &net.b, "up"]).expect("set b up");
            net
        }

        /// Opens `b` from a thread that entered the namespace; the socket
        /// stays in it when used from other threads.
        fn open_b(&self) -> AfPacket {
            let path = format!("/run/netns/{}", self.ns);
            let b = self.b.clone();
            std::thread::spawn(move || -> io::Result<AfPacket> {
                let ns = File::open(&path)?;
                // SAFETY: `ns` is an open namespace file; setns moves only
                // this thread, which ends right after.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                disable_ipv6(&b);
                AfPacket::open(&b)
            })
            .join()
            .expect("netns thread")
            .expect("open b in netns")
        }
    }

    impl Drop for TestNet {
        fn drop(&mut self) {
            let _ = ip(&["link", "del", &self.a]);
            let _ = ip(&["netns", "del", &self.ns]);
        }
    }

    /// An Ethernet frame of `len` bytes with ethertype [`MARKER`].
    fn frame(dst: [u8; 6], src: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
        let mut f = Vec::with_capacity(len);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&MARKER.to_be_bytes());
        f.extend((0..len - 14).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
        f
    }

    /// The next frame with ethertype [`MARKER`] within one second.
    fn recv_marked(io: &AfPacket, buf: &mut [u8]) -> Option<usize> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            while let Some(n) = io.recv(buf).expect("recv") {
                if n >= 14 && buf.len() >= 14 && buf[12..14] == MARKER.to_be_bytes() {
                    return Some(n);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            io.wait(left).expect("wait");
        }
    }

    /// (mtu, mac) of `ifname` as `ip -o link` shows it.
    fn ip_link(ns: Option<&str>, ifname: &str) -> (u32, [u8; 6]) {
        let out = match ns {
            Some(ns) => ip(&["-n", ns, "-o", "link", "show", "dev", ifname]),
            None => ip(&["-o", "link", "show", "dev", ifname]),
        }
        .expect("ip link show");
        let words: Vec<&str> = out.split_whitespace().collect();
        let after = |key: &str| words.iter().position(|w| *w == key).map(|i| words[i + 1]).expect(key);
        let mtu = after("mtu").parse().expect("mtu number");
        let mut mac = [0u8; 6];
        for (m, h) in mac.iter_mut().zip(after("link/ether").split(':')) {
            *m = u8::from_str_radix(h, 16).expect("mac hex");
        }
        (mtu, mac)
    }

    #[test]
    fn frames_cross_veth_byte_exact_and_never_echo() {
        let net = TestNet::new('x');
        let a = AfPacket::open(&net.a).expect("open a");
        // A second socket on the same interface: the kernel never echoes a
        // socket's own sends, but without PACKET_IGNORE_OUTGOING it would
        // show this one every frame sent out of `a`, by `a` or anyone else.
        let other = AfPacket::open(&net.a).expect("open a again");
        let b = net.open_b();
        assert_eq!(a.describe(), format!("afpacket:{}", net.a));
        let mut buf = [0u8; 2048];

        // To a MAC neither end has: arrives only through promiscuous mode.
        let out = frame([0x02, 0, 0, 0, 0, 0x01], a.mac().expect("mac a"), 200, 1);
        a.send(&out).expect("send a->b");
        let n = recv_marked(&b, &mut buf).expect("b receives a's frame");
        assert_eq!(&buf[..n], &out[..]);
        assert_eq!(recv_marked(&a, &mut buf), None, "a must not see its own frame");
        assert_eq!(recv_marked(&other, &mut buf), None, "no socket on a sees frames going out of a");

        let back = frame(a.mac().expect("mac a"), b.mac().expect("mac b"), 1514, 2);
        b.send(&back).expect("send b->a");
        let n = recv_marked(&a, &mut buf).expect("a receives b's frame");
        assert_eq!(&buf[..n], &back[..]);
        let n = recv_marked(&other, &mut buf).expect("the other socket on a receives b's frame");
        assert_eq!(&buf[..n], &back[..]);
        assert_eq!(recv_marked(&b, &mut buf), None, "b must not see its own frame");
    }

    #[test]
    fn recv_reports_real_length_of_truncated_frame() {
        let net = TestNet::new('t');
        let a = AfPacket::open(&net.a).expect("open a");
        let b = net.open_b();
        let out = frame([0xff; 6], a.mac().expect("mac a"), 300, 3);
        a.send(&out).expect("send");
        let mut small = [0u8; 20];
        assert_eq!(recv_marked(&b, &mut small), Some(300));
        assert_eq!(small, out[..20]);
    }

    #[test]
    fn wait_times_out_when_idle_and_wakes_for_a_frame() {
        let net = TestNet::new('w');
        let a = AfPacket::open(&net.a).expect("open a");
        let b = net.open_b();
        let mut buf = [0u8; 2048];
        while b.recv(&mut buf).expect("drain").is_some() {}
        let start = Instant::now();
        let ready = b.wait(Duration::from_millis(50)).expect("wait");
        if !ready {
            assert!(start.elapsed() >= Duration::from_millis(45), "wait returned early: {:?}", start.elapsed());
        }
        a.send(&frame([0xff; 6], [0x02, 0, 0, 0, 0, 0x02], 64, 4)).expect("send");
        assert!(b.wait(Duration::from_secs(1)).expect("wait"), "a frame is waiting");
        assert!(b.recv(&mut buf).expect("recv").is_some());
    }

    #[test]
    fn mtu_and_mac_match_ip_link() {
        let net = TestNet::new('m');
        ip(&["link", "set", &net.a, "mtu", "1400"]).expect("set mtu");
        ip(&["-n", &net.ns, "link", "set", &net.b, "address", "02:12:34:56:78:9a"]).expect("set mac");
        let a = AfPacket::open(&net.a).expect("open a");
        let b = net.open_b();
        assert_eq!((a.mtu().expect("mtu a"), a.mac().expect("mac a")), ip_link(None, &net.a));
        // `b` is asked from this thread, which is not in its namespace.
        assert_eq!((b.mtu().expect("mtu b"), b.mac().expect("mac b")), ip_link(Some(&net.ns), &net.b));
        assert_eq!(b.mac().expect("mac b"), [0x02, 0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert_eq!(a.mtu().expect("mtu a"), 1400);
        ip(&["link", "set", &net.a, "mtu", "1300"]).expect("change mtu");
        assert_eq!(a.mtu().expect("mtu a after change"), 1300);
    }

    #[test]
    fn promiscuous_while_open() {
        let net = TestNet::new('p');
        let promiscuity = || {
            let out = ip(&["-d", "-o", "link", "show", "dev", &net.a]).expect("ip -d link");
            let words: Vec<&str> = out.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "promiscuity").expect("promiscuity shown");
            words[i + 1].parse::<u32>().expect("promiscuity number")
        };
        assert_eq!(promiscuity(), 0);
        let a = AfPacket::open(&net.a).expect("open a");
        assert_eq!(promiscuity(), 1);
        drop(a);
        assert_eq!(promiscuity(), 0);
    }

    #[test]
    fn deleted_interface_gives_errors_not_panics() {
        let net = TestNet::new('d');
        let a = AfPacket::open(&net.a).expect("open a");
        ip(&["link", "del", &net.a]).expect("delete veth");
        let err = a.mtu().expect_err("mtu of a deleted interface");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains(&net.a), "{err}");
        assert!(a.mac().is_err());
        // The socket reports ENETDOWN once, then nothing.
        let mut buf = [0u8; 64];
        let first = a.recv(&mut buf);
        assert!(matches!(first, Ok(None) | Err(_)), "{first:?}");
        if let Err(err) = first {
            assert!(err.to_string().contains(&net.a), "{err}");
        }
        assert!(a.send(&[0u8; 60]).is_err(), "send on a deleted interface");
    }

    #[test]
    fn open_errors_name_the_interface() {
        let missing = format!("nx{}q", std::process::id());
        let err = AfPacket::open(&missing).expect_err("no such interface");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains(&missing), "{err}");

        for bad in ["", "sixteen-chars-ab", "nul\0name"] {
            let err = AfPacket::open(bad).expect_err("invalid name");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn timeout_rounds_up_and_saturates() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(7)), 7);
        assert_eq!(timeout_ms(Duration::from_secs(u64::MAX)), libc::c_int::MAX);
    }
}
