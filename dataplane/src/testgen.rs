//! A built-in traffic source and sink, for the demo, tests and benchmarks.
//!
//! The generator sits on the far end of `mem` wires: it transmits IPv4/UDP
//! flows into one wire and receives what the router forwards from another.
//! Each frame carries a magic number (u32), a sequence number (u32) and a
//! TSC timestamp (u64) in its payload, so the sink can tell forwarded test traffic from
//! anything else and measure latency through the router.

use crate::tsc;
use crate::wire::checksum;
use ports::counter::Counter;
use ports::{MacAddr, PagePool, PktBurst, PoolBinding, RxQueue, TxQueue};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Marks generator payloads.
pub const MAGIC: u32 = 0x7672_7467; // "vrtg"
const ETH: usize = 14;
const IP: usize = 20;
const UDP: usize = 8;
const PAYLOAD_OFF: usize = ETH + IP + UDP;
/// Smallest frame: 60 bytes (64 on the wire with the FCS); it holds the
/// headers, magic, sequence and timestamp (58 bytes) and padding.
pub const MIN_FRAME: usize = 60;
const SEQ_OFF: usize = PAYLOAD_OFF + 4;
const TS_OFF: usize = PAYLOAD_OFF + 8;
const MARK_END: usize = PAYLOAD_OFF + 16;

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Distinct flows: source address and port vary per flow.
    pub flows: u32,
    /// Frame length without FCS (60..=1514).
    pub frame_len: usize,
    /// Packets per second; 0 sends as fast as the wire takes them.
    pub rate_pps: u64,
    pub burst: usize,
    pub src_mac: MacAddr,
    /// The router's MAC on the source port.
    pub dst_mac: MacAddr,
    /// First source address; flow `f` uses `src_ip + f % 65536`.
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    pub ttl: u8,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            flows: 256,
            frame_len: 60,
            rate_pps: 0,
            burst: 32,
            src_mac: MacAddr([0x02, 0x47, 0x45, 0x4e, 0, 1]),
            dst_mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 1, 0, 1),
            dst_port: 9,
            ttl: 64,
        }
    }
}

impl GenConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_FRAME..=1514).contains(&self.frame_len) {
            return Err(format!("generator frame_len {} out of range {MIN_FRAME}..=1514", self.frame_len));
        }
        if self.flows == 0 || self.flows > 1 << 20 {
            return Err(format!("generator flows {} out of range 1..=1048576", self.flows));
        }
        if self.burst == 0 || self.burst > ports::MAX_BURST {
            return Err(format!("generator burst {} out of range 1..={}", self.burst, ports::MAX_BURST));
        }
        if self.ttl < 2 {
            return Err("generator ttl must be >= 2 so the router can forward".into());
        }
        Ok(())
    }
}

/// Builds the frame of flow `f` (sequence and timestamp left zero).
pub fn build_frame(cfg: &GenConfig, f: u32) -> Vec<u8> {
    let mut b = vec![0u8; cfg.frame_len];
    b[0..6].copy_from_slice(&cfg.dst_mac.0);
    b[6..12].copy_from_slice(&cfg.src_mac.0);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut b[ETH..ETH + IP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((cfg.frame_len - ETH) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(f as u16).to_be_bytes());
    ip[8] = cfg.ttl;
    ip[9] = 17;
    let src = u32::from(cfg.src_ip).wrapping_add(f % 65536);
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&cfg.dst_ip.octets());
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut b[ETH + IP..PAYLOAD_OFF];
    udp[0..2].copy_from_slice(&(1024 + (f % 60000) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&cfg.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((cfg.frame_len - ETH - IP) as u16).to_be_bytes());
    b[PAYLOAD_OFF..PAYLOAD_OFF + 4].copy_from_slice(&MAGIC.to_be_bytes());
    b
}

/// Counters of the generator (written by its thread only).
#[derive(Default)]
pub struct GenStats {
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Not sent: the wire had no room.
    pub tx_full: Counter,
    /// Not built: the source pool was empty.
    pub tx_no_buffer: Counter,
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    /// Received generator frames, forwarded correctly (TTL decremented).
    pub rx_valid: Counter,
    /// Received frames that are not generator frames or were not
    /// forwarded correctly.
    pub rx_invalid: Counter,
    /// Sum and maximum of the TSC ticks from build to receive.
    pub latency_sum: Counter,
    pub latency_max: Counter,
}

/// The source side: a TX queue and the pool to build frames from.
pub struct Source {
    pub tx: Box<dyn TxQueue>,
    pub pool: PagePool,
}

/// A running generator.
pub struct TrafficGen {
    stop: Arc<AtomicBool>,
    stats: Arc<GenStats>,
    thread: Option<JoinHandle<()>>,
}

impl TrafficGen {
    /// Starts the generator thread. Either side may be absent.
    pub fn spawn(
        cfg: GenConfig,
        source: Option<Source>,
        sink: Option<Box<dyn RxQueue>>,
        core: Option<usize>,
    ) -> Result<TrafficGen, String> {
        cfg.validate()?;
        if let Some(c) = core {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if c >= n {
                return Err(format!("generator core {c} does not exist (this machine has cores 0..{n})"));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(GenStats::default());
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("vr-testgen".into())
                .spawn(move || {
                    if let Some(c) = core {
                        // Best effort: an unpinned generator still works.
                        let _ = crate::worker::pin_to(c);
                    }
                    gen_loop(cfg, source, sink, stop, stats)
                })
                .map_err(|e| format!("cannot start generator thread: {e}"))?
        };
        Ok(TrafficGen { stop, stats, thread: Some(thread) })
    }

    pub fn stats(&self) -> &Arc<GenStats> {
        &self.stats
    }

    /// Stops the generator; its buffers are back in their pools on return.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TrafficGen {
    fn drop(&mut self) {
        self.halt();
    }
}

fn gen_loop(
    cfg: GenConfig,
    mut source: Option<Source>,
    mut sink: Option<Box<dyn RxQueue>>,
    stop: Arc<AtomicBool>,
    st: Arc<GenStats>,
) {
    let _src_bind = source.as_ref().and_then(|s| PoolBinding::new(&s.pool).ok());
    let _sink_bind = sink.as_ref().and_then(|s| PoolBinding::new(s.pool()).ok());
    crate::worker::set_timer_slack_1us();
    let templates: Vec<Vec<u8>> = (0..cfg.flows).map(|f| build_frame(&cfg, f)).collect();
    let hz = tsc::hz();
    let start = tsc::now();
    let mut seq: u64 = 0;
    let mut flow = 0usize;
    let mut out = PktBurst::new();
    let mut inb = PktBurst::new();
    inb.set_limit(ports::MAX_BURST);
    let want_ttl = cfg.ttl - 1;
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        if let Some(src) = source.as_mut() {
            let mut n = cfg.burst;
            if cfg.rate_pps > 0 {
                let elapsed = tsc::now().wrapping_sub(start) as u128;
                let due = (elapsed * cfg.rate_pps as u128 / hz as u128) as u64;
                n = n.min(due.saturating_sub(seq) as usize);
            }
            for _ in 0..n {
                let Some(mut p) = src.pool.alloc() else {
                    st.tx_no_buffer.inc();
                    break;
                };
                p.copy_from(&templates[flow]);
                let d = p.data_mut();
                d[SEQ_OFF..TS_OFF].copy_from_slice(&(seq as u32).to_be_bytes());
                d[TS_OFF..MARK_END].copy_from_slice(&tsc::now().to_be_bytes());
                seq += 1;
                flow += 1;
                if flow == templates.len() {
                    flow = 0;
                }
                let _ = out.push(p);
            }
            if !out.is_empty() {
                busy = true;
                let len = out.len();
                let sent = src.tx.tx_burst(&mut out);
                st.tx_packets.add(sent as u64);
                st.tx_bytes.add((sent * cfg.frame_len) as u64);
                st.tx_full.add((len - sent) as u64);
                out.clear();
            }
        }
        if let Some(rx) = sink.as_mut() {
            let n = rx.rx_burst(&mut inb);
            if n > 0 {
                busy = true;
                let now = tsc::now();
                let (mut bytes, mut valid, mut lat_sum, mut lat_max) = (0u64, 0u64, 0u64, st.latency_max.get());
                for p in inb.as_slice() {
                    let d = p.data();
                    bytes += d.len() as u64;
                    if let Some(ts) = check(d, want_ttl) {
                        valid += 1;
                        let l = now.saturating_sub(ts);
                        lat_sum += l;
                        lat_max = lat_max.max(l);
                    }
                }
                inb.clear();
                st.rx_packets.add(n as u64);
                st.rx_bytes.add(bytes);
                st.rx_valid.add(valid);
                st.rx_invalid.add(n as u64 - valid);
                st.latency_sum.add(lat_sum);
                if lat_max > st.latency_max.get() {
                    st.latency_max.add(lat_max - st.latency_max.get());
                }
            }
        }
        if !busy {
            if cfg.rate_pps > 0 {
                std::thread::sleep(Duration::from_micros(10));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Checks a received frame; returns its timestamp if it is a generator
/// frame that was forwarded (TTL decremented, IPv4 checksum still right).
#[inline]
fn check(d: &[u8], want_ttl: u8) -> Option<u64> {
    let hdr = d.get(..MARK_END)?;
    if hdr[12..14] != [0x08, 0x00] || hdr[ETH + 8] != want_ttl || hdr[ETH + 9] != 17 {
        return None;
    }
    if !checksum::verify(&hdr[ETH..ETH + IP]) {
        return None;
    }
    if hdr[PAYLOAD_OFF..SEQ_OFF] != MAGIC.to_be_bytes() {
        return None;
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&hdr[TS_OFF..MARK_END]);
    Some(u64::from_be_bytes(ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_frame, L3Kind};

    #[test]
    fn frames_parse_and_flows_differ() {
        let cfg = GenConfig { frame_len: 128, ..Default::default() };
        let a = build_frame(&cfg, 0);
        let b = build_frame(&cfg, 1);
        assert_eq!(a.len(), 128);
        let l = parse_frame(&a, true).expect("valid frame");
        assert_eq!(l.l3, L3Kind::Ipv4);
        assert_eq!(l.l4_proto, 17);
        assert_eq!(l.l3_len, 114);
        assert_ne!(a[26..30], b[26..30], "source address differs per flow");
        assert_ne!(a[34..36], b[34..36], "source port differs per flow");
        // The sink refuses an unforwarded frame (TTL not decremented) and
        // accepts it once the TTL and checksum are updated.
        assert_eq!(check(&a, 63), None);
        let mut f = a.clone();
        f[22] = 63;
        let c = checksum::update16(u16::from_be_bytes([f[24], f[25]]), 0x4011, 0x3f11);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(check(&f, 63), Some(0));
        assert_eq!(check(&f[..57], 63), None);
        assert!(GenConfig { frame_len: 60, ..Default::default() }.validate().is_ok());
    }

    #[test]
    fn config_is_validated() {
        assert!(GenConfig::default().validate().is_ok());
        assert!(GenConfig { frame_len: 59, ..Default::default() }.validate().is_err());
        assert!(GenConfig { flows: 0, ..Default::default() }.validate().is_err());
        assert!(GenConfig { ttl: 1, ..Default::default() }.validate().is_err());
        assert!(GenConfig { burst: 0, ..Default::default() }.validate().is_err());
    }
}
