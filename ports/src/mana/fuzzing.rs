//! Fuzzing entry point for the driver's completion handling: arbitrary
//! CQE bytes written into live RX and TX completion queues.

use super::emu::{EmuConfig, EmuDevice, EmuLink, Fault};
use super::format::CQE_SIZE;
use super::ManaPort;
use crate::buf::PktBurst;
use crate::pool::{PagePool, PoolBinding, PoolConfig};
use crate::port::{Port, PortConfig, QueueId};
use crate::region::HugepagePolicy;

/// Feeds `data` to a fresh port's completion path, 65 bytes per CQE: a
/// selector byte (bit 0: TX instead of RX; bit 1: write the owner bits as
/// given instead of valid ones) and the 64 CQE bytes. The driver must not
/// panic, touch memory out of bounds, or lose a buffer: afterwards every
/// buffer is back in its pool (checked with `assert!`, so a fuzzer sees a
/// leak or double free as a crash).
pub fn completions(data: &[u8]) {
    let Ok(dev) = EmuDevice::new(EmuConfig { name: "fuzz".into(), link: EmuLink::None, ..Default::default() }) else {
        return;
    };
    let cfg = PortConfig {
        name: "fuzz".into(),
        driver: super::DRIVER.into(),
        rx_ring: 64,
        tx_ring: 64,
        pool_buffers: 1,
        hugepages: HugepagePolicy::Never,
        ..Default::default()
    };
    let Ok(port) = ManaPort::open(&cfg, dev.clone()) else { return };
    if port.start().is_err() {
        return;
    }
    let gen = PagePool::new(&PoolConfig {
        name: "fuzz-gen".into(),
        buffers: 64,
        buf_size: 512,
        hugepages: HugepagePolicy::Never,
        ..Default::default()
    });
    let (Ok(gen), Ok(mut rx), Ok(mut tx)) = (gen, port.rx_queue(QueueId(0)), port.tx_queue(QueueId(0))) else {
        return;
    };
    let rx_pool = rx.pool().clone();
    let (Ok(_g1), Ok(_g2)) = (PoolBinding::new(&gen), PoolBinding::new(&rx_pool)) else { return };
    // The device ignores every SQ/RQ doorbell from here on, so the eight
    // TX WQEs below stay outstanding for fuzzed TX completions to name.
    dev.inject(Fault::DropDoorbells { count: u32::MAX });
    let mut b = PktBurst::new();
    for i in 0..8u8 {
        if let Some(mut p) = gen.alloc() {
            let mut f = [0u8; 60];
            f[12] = 0x08;
            f[59] = i;
            if p.copy_from(&f) {
                let _ = b.push(p);
            }
        }
    }
    tx.tx_burst(&mut b);
    b.clear();
    for chunk in data.chunks(CQE_SIZE + 1) {
        let Some((&sel, rest)) = chunk.split_first() else { continue };
        let mut raw = [0u8; CQE_SIZE];
        raw[..rest.len()].copy_from_slice(rest);
        let rx_side = sel & 1 == 0;
        dev.write_raw_cqe(rx_side, 0, &raw, sel & 2 != 0);
        if rx_side {
            rx.rx_burst(&mut b);
            for p in b.as_slice() {
                assert!(p.len() <= 1514, "delivered a packet longer than the posted buffer");
            }
            b.clear();
        } else {
            tx.tx_burst(&mut b);
        }
    }
    drop(rx);
    drop(tx);
    let _ = port.stop();
    drop(port);
    assert_eq!(gen.in_use(), 0, "a TX buffer was lost or freed twice");
    assert_eq!(rx_pool.in_use(), 0, "an RX buffer was lost or freed twice");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mana::format::*;

    #[test]
    fn pseudo_random_completions_keep_every_buffer() {
        let mut x = 0x2545_f491_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40 {
            let n = 1 + (next() % 24) as usize;
            let mut data = Vec::new();
            for _ in 0..n {
                let sel = (next() & 3) as u8;
                let mut cqe = [0u8; 64];
                for b in cqe.iter_mut() {
                    *b = next() as u8;
                }
                // Half the time, make it plausible so deeper paths run.
                if round % 2 == 0 {
                    cqe[0] = [CQE_RX_OKAY, CQE_RX_COALESCED_4, CQE_RX_TRUNCATED, CQE_TX_OKAY, 35][next() as usize % 5]
                        | (CLIENT_TYPE_ETH << 6);
                    // Queue ids of a fresh emulated port: EQ 1, TX CQ 2,
                    // SQ 3, RX CQ 4, RQ 5.
                    let info = if sel & 1 == 0 {
                        CqeInfo { wq_num: 5, is_sq: false, owner_bits: 0 }
                    } else {
                        CqeInfo { wq_num: 3, is_sq: true, owner_bits: 0 }
                    };
                    cqe[60..64].copy_from_slice(&info.encode().to_le_bytes());
                    let wqe_off = (next() % 10) as u32 * 32;
                    cqe[8..12].copy_from_slice(&(wqe_off << 5).to_le_bytes());
                    for k in 0..4 {
                        let len = (next() % 1600) as u16;
                        cqe[8 + 12 * k..10 + 12 * k].copy_from_slice(&len.to_le_bytes());
                    }
                }
                data.push(sel);
                data.extend_from_slice(&cqe);
            }
            completions(&data);
        }
    }
}
