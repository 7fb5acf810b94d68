//! Byte-exact MANA data-path formats: work-queue entries (header, TX OOB,
//! SGE), doorbell words, completion-queue entries (TX and RX completion data,
//! the info dword), event-queue entries and the owner-bit arithmetic.
//!
//! Field names follow the Linux driver (`gdma.h`, `mana.h`). Everything is
//! little-endian. Encoders mask each field to its bit width and write
//! reserved bits as zero; decoders take fixed-size arrays, ignore reserved
//! bits, return unknown type codes as raw values and never panic.

/// Basic unit of SQ/RQ space, in bytes.
pub const BU: usize = 32;
pub const CQE_SIZE: usize = 64;
/// Client data bytes at the start of a CQE.
pub const CQE_DATA_SIZE: usize = 60;
pub const EQE_SIZE: usize = 16;
/// Detail bytes at the start of an EQE.
pub const EQE_DETAILS_SIZE: usize = 12;
pub const SGE_SIZE: usize = 16;
pub const WQE_HEADER_SIZE: usize = 8;
pub const SHORT_OOB_SIZE: usize = 8;
pub const LONG_OOB_SIZE: usize = 24;
/// The zero OOB of an RQ WQE.
pub const RX_OOB_SIZE: usize = 8;
pub const MAX_SQ_WQE: usize = 512;
pub const MAX_RQ_WQE: usize = 256;
pub const MAX_TX_SGE: usize = 30;
pub const MAX_RX_SGE: usize = 15;

/// `inline_oob_size_div4` of a short (8-byte) OOB.
pub const INLINE_OOB_SHORT_DIV4: u8 = 2;
/// `inline_oob_size_div4` of a long (24-byte) OOB.
pub const INLINE_OOB_LONG_DIV4: u8 = 6;
/// `pkt_fmt` of a short TX OOB.
pub const PKT_FMT_SHORT: u8 = 0;
/// `pkt_fmt` of a long TX OOB.
pub const PKT_FMT_LONG: u8 = 1;

pub const QTYPE_SQ: u8 = 1;
pub const QTYPE_RQ: u8 = 2;
pub const QTYPE_CQ: u8 = 3;
pub const QTYPE_EQ: u8 = 4;

/// Doorbell offsets within the doorbell page.
pub const DB_SQ: u32 = 0x000;
pub const DB_RQ: u32 = 0x400;
pub const DB_CQ: u32 = 0x800;
pub const DB_EQ: u32 = 0xFF8;

pub const CQE_INVALID: u8 = 0;
pub const CQE_RX_OKAY: u8 = 1;
pub const CQE_RX_COALESCED_4: u8 = 2;
pub const CQE_RX_OBJECT_FENCE: u8 = 3;
pub const CQE_RX_TRUNCATED: u8 = 4;
pub const CQE_TX_OKAY: u8 = 32;
pub const CQE_TX_SA_DROP: u8 = 33;
pub const CQE_TX_MTU_DROP: u8 = 34;
pub const CQE_TX_INVALID_OOB: u8 = 35;
pub const CQE_TX_INVALID_ETH_TYPE: u8 = 36;
pub const CQE_TX_HDR_PROCESSING_ERROR: u8 = 37;
pub const CQE_TX_VF_DISABLED: u8 = 38;
pub const CQE_TX_VPORT_IDX_OUT_OF_RANGE: u8 = 39;
pub const CQE_TX_VPORT_DISABLED: u8 = 40;
pub const CQE_TX_VLAN_TAGGING_VIOLATION: u8 = 41;

/// Counter name of a TX CQE type; `"unknown"` for anything else.
pub fn tx_cqe_type_name(t: u8) -> &'static str {
    match t {
        CQE_TX_OKAY => "tx_okay",
        CQE_TX_SA_DROP => "tx_sa_drop",
        CQE_TX_MTU_DROP => "tx_mtu_drop",
        CQE_TX_INVALID_OOB => "tx_invalid_oob",
        CQE_TX_INVALID_ETH_TYPE => "tx_invalid_eth_type",
        CQE_TX_HDR_PROCESSING_ERROR => "tx_hdr_processing_error",
        CQE_TX_VF_DISABLED => "tx_vf_disabled",
        CQE_TX_VPORT_IDX_OUT_OF_RANGE => "tx_vport_idx_out_of_range",
        CQE_TX_VPORT_DISABLED => "tx_vport_disabled",
        CQE_TX_VLAN_TAGGING_VIOLATION => "tx_vlan_tagging_violation",
        _ => "unknown",
    }
}

pub const EQE_COMPLETION: u8 = 3;
pub const EQE_TEST_EVENT: u8 = 64;
pub const EQE_FPGA_RECONFIG: u8 = 132;
pub const EQE_RESET_REQUEST: u8 = 135;

/// `rx_hashtype` bits (NDIS hash types).
pub const HASH_IPV4: u16 = 0x1;
pub const HASH_TCP_IPV4: u16 = 0x2;
pub const HASH_UDP_IPV4: u16 = 0x4;
pub const HASH_IPV6: u16 = 0x8;
pub const HASH_TCP_IPV6: u16 = 0x10;
pub const HASH_UDP_IPV6: u16 = 0x20;
pub const HASH_IPV6_EX: u16 = 0x40;
pub const HASH_TCP_IPV6_EX: u16 = 0x80;
pub const HASH_UDP_IPV6_EX: u16 = 0x100;

/// `client_type` of every Ethernet completion.
pub const CLIENT_TYPE_ETH: u8 = 1;

/// Bytes of a WQE with `oob` inline OOB bytes and `num_sge` SGEs:
/// `align_up(8 + oob + 16 * num_sge, 32)` (saturating, never panics).
pub const fn wqe_size(oob: usize, num_sge: usize) -> usize {
    let raw = WQE_HEADER_SIZE.saturating_add(oob).saturating_add(SGE_SIZE.saturating_mul(num_sge));
    raw.saturating_add(BU - 1) & !(BU - 1)
}

/// A bit range `lo .. lo + width` of a 32-bit word.
#[derive(Clone, Copy)]
struct Bits {
    lo: u32,
    width: u32,
}

impl Bits {
    const fn new(lo: u32, width: u32) -> Bits {
        Bits { lo, width }
    }

    fn mask(self) -> u32 {
        if self.width >= 32 {
            u32::MAX
        } else {
            (1u32 << self.width) - 1
        }
    }

    fn get(self, word: u32) -> u32 {
        word.wrapping_shr(self.lo) & self.mask()
    }

    fn put(self, value: u32) -> u32 {
        (value & self.mask()).wrapping_shl(self.lo)
    }
}

/// A single bit of a 32-bit word.
#[derive(Clone, Copy)]
struct Flag(u32);

impl Flag {
    fn get(self, word: u32) -> bool {
        word.wrapping_shr(self.0) & 1 != 0
    }

    fn put(self, on: bool) -> u32 {
        u32::from(on).wrapping_shl(self.0)
    }
}

/// `N` bytes of `b` from `at`; zeros where `b` is too short.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..at.saturating_add(N)) {
        for (d, s) in out.iter_mut().zip(src) {
            *d = *s;
        }
    }
    out
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes_at(b, at))
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, at))
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, at))
}

/// Copies `src` into `b` at `at`; bytes past the end of `b` are dropped.
fn put_bytes(b: &mut [u8], at: usize, src: &[u8]) {
    if let Some(dst) = b.get_mut(at..) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// A scatter-gather entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sge {
    pub address: u64,
    pub mem_key: u32,
    pub size: u32,
}

mod sge {
    pub const ADDRESS: usize = 0;
    pub const MEM_KEY: usize = 8;
    pub const SIZE: usize = 12;
}

impl Sge {
    pub fn encode(&self) -> [u8; SGE_SIZE] {
        let mut b = [0u8; SGE_SIZE];
        put_bytes(&mut b, sge::ADDRESS, &self.address.to_le_bytes());
        put_bytes(&mut b, sge::MEM_KEY, &self.mem_key.to_le_bytes());
        put_bytes(&mut b, sge::SIZE, &self.size.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; SGE_SIZE]) -> Sge {
        Sge { address: get_u64(b, sge::ADDRESS), mem_key: get_u32(b, sge::MEM_KEY), size: get_u32(b, sge::SIZE) }
    }
}

/// The 8-byte WQE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WqeHeader {
    /// LSO only: `sgl[0].size`.
    pub last_vbytes: u8,
    pub num_sge: u8,
    /// 3 bits: 2 for an 8-byte OOB, 6 for a 24-byte one.
    pub inline_oob_size_div4: u8,
    /// LSO only.
    pub client_oob_in_sgl: bool,
    /// 14 bits; SQ only (the MSS for LSO).
    pub client_data_unit: u16,
}

mod wqe_hdr {
    use super::{Bits, Flag};
    // dword 0
    pub const LAST_VBYTES: Bits = Bits::new(24, 8);
    // dword 1
    pub const NUM_SGE: Bits = Bits::new(0, 8);
    pub const INLINE_OOB_SIZE_DIV4: Bits = Bits::new(8, 3);
    pub const CLIENT_OOB_IN_SGL: Flag = Flag(11);
    pub const CLIENT_DATA_UNIT: Bits = Bits::new(16, 14);
}

impl WqeHeader {
    pub fn encode(&self) -> [u8; WQE_HEADER_SIZE] {
        let w0 = wqe_hdr::LAST_VBYTES.put(self.last_vbytes.into());
        let w1 = wqe_hdr::NUM_SGE.put(self.num_sge.into())
            | wqe_hdr::INLINE_OOB_SIZE_DIV4.put(self.inline_oob_size_div4.into())
            | wqe_hdr::CLIENT_OOB_IN_SGL.put(self.client_oob_in_sgl)
            | wqe_hdr::CLIENT_DATA_UNIT.put(self.client_data_unit.into());
        let mut b = [0u8; WQE_HEADER_SIZE];
        put_bytes(&mut b, 0, &w0.to_le_bytes());
        put_bytes(&mut b, 4, &w1.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; WQE_HEADER_SIZE]) -> WqeHeader {
        let w0 = get_u32(b, 0);
        let w1 = get_u32(b, 4);
        WqeHeader {
            last_vbytes: wqe_hdr::LAST_VBYTES.get(w0) as u8,
            num_sge: wqe_hdr::NUM_SGE.get(w1) as u8,
            inline_oob_size_div4: wqe_hdr::INLINE_OOB_SIZE_DIV4.get(w1) as u8,
            client_oob_in_sgl: wqe_hdr::CLIENT_OOB_IN_SGL.get(w1),
            client_data_unit: wqe_hdr::CLIENT_DATA_UNIT.get(w1) as u16,
        }
    }
}

/// The TX client OOB, short (8 bytes) or long (24 bytes) form.
///
/// `pkt_fmt` is encoded as given; set it to [`PKT_FMT_SHORT`] or
/// [`PKT_FMT_LONG`] to match the form written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxOob {
    /// 2 bits.
    pub pkt_fmt: u8,
    pub is_outer_ipv4: bool,
    pub is_outer_ipv6: bool,
    pub comp_iphdr_csum: bool,
    pub comp_tcp_csum: bool,
    pub comp_udp_csum: bool,
    pub supress_txcqe_gen: bool,
    /// 24 bits: the TX CQ id.
    pub vcq_num: u32,
    /// 10 bits: L4 header offset.
    pub trans_off: u16,
    /// 14 bits: bits 10–23 of the SQ id.
    pub vsq_frame: u16,
    pub short_vp_offset: u8,
    // Long form only.
    pub is_encap: bool,
    pub inner_is_ipv6: bool,
    pub inner_tcp_opt: bool,
    pub inject_vlan_pri_tag: bool,
    /// 3 bits.
    pub pcp: u8,
    pub dei: bool,
    /// 12 bits.
    pub vlan_id: u16,
    /// 10 bits.
    pub inner_frame_offset: u16,
    /// 6 bits.
    pub inner_ip_rel_offset: u8,
    /// 12 bits.
    pub long_vp_offset: u16,
}

mod tx_oob {
    use super::{Bits, Flag};
    // dword 0
    pub const PKT_FMT: Bits = Bits::new(0, 2);
    pub const IS_OUTER_IPV4: Flag = Flag(2);
    pub const IS_OUTER_IPV6: Flag = Flag(3);
    pub const COMP_IPHDR_CSUM: Flag = Flag(4);
    pub const COMP_TCP_CSUM: Flag = Flag(5);
    pub const COMP_UDP_CSUM: Flag = Flag(6);
    pub const SUPRESS_TXCQE_GEN: Flag = Flag(7);
    pub const VCQ_NUM: Bits = Bits::new(8, 24);
    // dword 1
    pub const TRANS_OFF: Bits = Bits::new(0, 10);
    pub const VSQ_FRAME: Bits = Bits::new(10, 14);
    pub const SHORT_VP_OFFSET: Bits = Bits::new(24, 8);
    // dword 2
    pub const IS_ENCAP: Flag = Flag(0);
    pub const INNER_IS_IPV6: Flag = Flag(1);
    pub const INNER_TCP_OPT: Flag = Flag(2);
    pub const INJECT_VLAN_PRI_TAG: Flag = Flag(3);
    pub const PCP: Bits = Bits::new(16, 3);
    pub const DEI: Flag = Flag(19);
    pub const VLAN_ID: Bits = Bits::new(20, 12);
    // dword 3
    pub const INNER_FRAME_OFFSET: Bits = Bits::new(0, 10);
    pub const INNER_IP_REL_OFFSET: Bits = Bits::new(10, 6);
    pub const LONG_VP_OFFSET: Bits = Bits::new(16, 12);
}

impl TxOob {
    fn short_dwords(&self) -> [u32; 2] {
        let w0 = tx_oob::PKT_FMT.put(self.pkt_fmt.into())
            | tx_oob::IS_OUTER_IPV4.put(self.is_outer_ipv4)
            | tx_oob::IS_OUTER_IPV6.put(self.is_outer_ipv6)
            | tx_oob::COMP_IPHDR_CSUM.put(self.comp_iphdr_csum)
            | tx_oob::COMP_TCP_CSUM.put(self.comp_tcp_csum)
            | tx_oob::COMP_UDP_CSUM.put(self.comp_udp_csum)
            | tx_oob::SUPRESS_TXCQE_GEN.put(self.supress_txcqe_gen)
            | tx_oob::VCQ_NUM.put(self.vcq_num);
        let w1 = tx_oob::TRANS_OFF.put(self.trans_off.into())
            | tx_oob::VSQ_FRAME.put(self.vsq_frame.into())
            | tx_oob::SHORT_VP_OFFSET.put(self.short_vp_offset.into());
        [w0, w1]
    }

    fn long_dwords(&self) -> [u32; 2] {
        let w2 = tx_oob::IS_ENCAP.put(self.is_encap)
            | tx_oob::INNER_IS_IPV6.put(self.inner_is_ipv6)
            | tx_oob::INNER_TCP_OPT.put(self.inner_tcp_opt)
            | tx_oob::INJECT_VLAN_PRI_TAG.put(self.inject_vlan_pri_tag)
            | tx_oob::PCP.put(self.pcp.into())
            | tx_oob::DEI.put(self.dei)
            | tx_oob::VLAN_ID.put(self.vlan_id.into());
        let w3 = tx_oob::INNER_FRAME_OFFSET.put(self.inner_frame_offset.into())
            | tx_oob::INNER_IP_REL_OFFSET.put(self.inner_ip_rel_offset.into())
            | tx_oob::LONG_VP_OFFSET.put(self.long_vp_offset.into());
        [w2, w3]
    }

    pub fn encode_short(&self) -> [u8; SHORT_OOB_SIZE] {
        let [w0, w1] = self.short_dwords();
        let mut b = [0u8; SHORT_OOB_SIZE];
        put_bytes(&mut b, 0, &w0.to_le_bytes());
        put_bytes(&mut b, 4, &w1.to_le_bytes());
        b
    }

    /// The long form; dwords 4–5 are zero.
    pub fn encode_long(&self) -> [u8; LONG_OOB_SIZE] {
        let [w0, w1] = self.short_dwords();
        let [w2, w3] = self.long_dwords();
        let mut b = [0u8; LONG_OOB_SIZE];
        for (i, w) in [w0, w1, w2, w3].into_iter().enumerate() {
            put_bytes(&mut b, 4 * i, &w.to_le_bytes());
        }
        b
    }

    /// The short form; long-only fields are left at their defaults.
    pub fn decode_short(b: &[u8; SHORT_OOB_SIZE]) -> TxOob {
        Self::from_dwords(get_u32(b, 0), get_u32(b, 4), 0, 0)
    }

    pub fn decode_long(b: &[u8; LONG_OOB_SIZE]) -> TxOob {
        Self::from_dwords(get_u32(b, 0), get_u32(b, 4), get_u32(b, 8), get_u32(b, 12))
    }

    fn from_dwords(w0: u32, w1: u32, w2: u32, w3: u32) -> TxOob {
        TxOob {
            pkt_fmt: tx_oob::PKT_FMT.get(w0) as u8,
            is_outer_ipv4: tx_oob::IS_OUTER_IPV4.get(w0),
            is_outer_ipv6: tx_oob::IS_OUTER_IPV6.get(w0),
            comp_iphdr_csum: tx_oob::COMP_IPHDR_CSUM.get(w0),
            comp_tcp_csum: tx_oob::COMP_TCP_CSUM.get(w0),
            comp_udp_csum: tx_oob::COMP_UDP_CSUM.get(w0),
            supress_txcqe_gen: tx_oob::SUPRESS_TXCQE_GEN.get(w0),
            vcq_num: tx_oob::VCQ_NUM.get(w0),
            trans_off: tx_oob::TRANS_OFF.get(w1) as u16,
            vsq_frame: tx_oob::VSQ_FRAME.get(w1) as u16,
            short_vp_offset: tx_oob::SHORT_VP_OFFSET.get(w1) as u8,
            is_encap: tx_oob::IS_ENCAP.get(w2),
            inner_is_ipv6: tx_oob::INNER_IS_IPV6.get(w2),
            inner_tcp_opt: tx_oob::INNER_TCP_OPT.get(w2),
            inject_vlan_pri_tag: tx_oob::INJECT_VLAN_PRI_TAG.get(w2),
            pcp: tx_oob::PCP.get(w2) as u8,
            dei: tx_oob::DEI.get(w2),
            vlan_id: tx_oob::VLAN_ID.get(w2) as u16,
            inner_frame_offset: tx_oob::INNER_FRAME_OFFSET.get(w3) as u16,
            inner_ip_rel_offset: tx_oob::INNER_IP_REL_OFFSET.get(w3) as u8,
            long_vp_offset: tx_oob::LONG_VP_OFFSET.get(w3) as u16,
        }
    }
}

const DB_QID_MASK: u64 = 0x00ff_ffff;
const DB_EQ_QID_MASK: u64 = 0xffff;
const DB_WQE_CNT_SHIFT: u32 = 24;
const DB_TAIL_SHIFT: u32 = 32;
const DB_CQ_TAIL_MASK: u32 = 0x7fff_ffff;
const DB_ARM: u64 = 1 << 63;

/// SQ doorbell: queue id (24 bits) and the producer position in bytes.
pub fn db_sq(qid: u32, tail_bytes: u32) -> u64 {
    (u64::from(qid) & DB_QID_MASK) | u64::from(tail_bytes) << DB_TAIL_SHIFT
}

/// RQ doorbell: as [`db_sq`], with `wqe_cnt` (bits 24–31) zero.
pub fn db_rq(qid: u32, tail_bytes: u32) -> u64 {
    (u64::from(qid) & DB_QID_MASK) | u64::from(tail_bytes) << DB_TAIL_SHIFT
}

fn db_cq_eq(qid: u64, head: u32, arm: bool) -> u64 {
    let arm = if arm { DB_ARM } else { 0 };
    qid | u64::from(head & DB_CQ_TAIL_MASK) << DB_TAIL_SHIFT | arm
}

/// CQ doorbell; `head` is already reduced mod `num_entries * 8`.
pub fn db_cq(qid: u32, head: u32, arm: bool) -> u64 {
    db_cq_eq(u64::from(qid) & DB_QID_MASK, head, arm)
}

/// EQ doorbell; the queue id occupies bits 0–15 only.
pub fn db_eq(qid: u32, head: u32, arm: bool) -> u64 {
    db_cq_eq(u64::from(qid) & DB_EQ_QID_MASK, head, arm)
}

/// A doorbell write, as the device sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doorbell {
    Sq { qid: u32, tail: u32 },
    Rq { qid: u32, wqe_cnt: u8, tail: u32 },
    Cq { qid: u32, tail: u32, arm: bool },
    Eq { qid: u32, tail: u32, arm: bool },
}

/// Decodes the 64-bit word written at `offset`; `None` for an unknown offset.
pub fn decode_doorbell(offset: u32, value: u64) -> Option<Doorbell> {
    let qid = (value & DB_QID_MASK) as u32;
    let tail = (value >> DB_TAIL_SHIFT) as u32;
    let arm = value & DB_ARM != 0;
    match offset {
        DB_SQ => Some(Doorbell::Sq { qid, tail }),
        DB_RQ => Some(Doorbell::Rq { qid, wqe_cnt: (value >> DB_WQE_CNT_SHIFT) as u8, tail }),
        DB_CQ => Some(Doorbell::Cq { qid, tail: tail & DB_CQ_TAIL_MASK, arm }),
        DB_EQ => Some(Doorbell::Eq { qid: (value & DB_EQ_QID_MASK) as u32, tail: tail & DB_CQ_TAIL_MASK, arm }),
        _ => None,
    }
}

/// The CQE info dword (bytes 60–63).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CqeInfo {
    /// 24 bits: the SQ or RQ id.
    pub wq_num: u32,
    pub is_sq: bool,
    /// 3 bits.
    pub owner_bits: u8,
}

mod cqe_info {
    use super::{Bits, Flag};
    pub const WQ_NUM: Bits = Bits::new(0, 24);
    pub const IS_SQ: Flag = Flag(24);
    pub const OWNER_BITS: Bits = Bits::new(29, 3);
}

impl CqeInfo {
    pub fn encode(&self) -> u32 {
        cqe_info::WQ_NUM.put(self.wq_num)
            | cqe_info::IS_SQ.put(self.is_sq)
            | cqe_info::OWNER_BITS.put(self.owner_bits.into())
    }

    pub fn decode(v: u32) -> CqeInfo {
        CqeInfo {
            wq_num: cqe_info::WQ_NUM.get(v),
            is_sq: cqe_info::IS_SQ.get(v),
            owner_bits: cqe_info::OWNER_BITS.get(v) as u8,
        }
    }
}

/// Dword 0 of every completion's client data.
mod comp {
    use super::Bits;
    pub const CQE_TYPE: Bits = Bits::new(0, 6);
    pub const CLIENT_TYPE: Bits = Bits::new(6, 2);
    pub const VENDOR_ERR: Bits = Bits::new(8, 24);

    pub fn header(cqe_type: u8, client_type: u8, vendor_err: u32) -> u32 {
        CQE_TYPE.put(cqe_type.into()) | CLIENT_TYPE.put(client_type.into()) | VENDOR_ERR.put(vendor_err)
    }
}

/// One RX packet-info slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxPktInfo {
    pub pkt_len: u16,
    pub pkt_hash: u32,
}

/// RX completion client data (60 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxCompOob {
    /// 6 bits.
    pub cqe_type: u8,
    /// 2 bits.
    pub client_type: u8,
    /// 24 bits.
    pub vendor_err: u32,
    /// 12 bits.
    pub rx_vlan_id: u16,
    pub rx_vlantag_present: bool,
    pub rx_outer_iphdr_csum_succeed: bool,
    pub rx_outer_iphdr_csum_fail: bool,
    /// 9 bits of `HASH_*`.
    pub rx_hashtype: u16,
    pub rx_iphdr_csum_succeed: bool,
    pub rx_iphdr_csum_fail: bool,
    pub rx_tcp_csum_succeed: bool,
    pub rx_tcp_csum_fail: bool,
    pub rx_udp_csum_succeed: bool,
    pub rx_udp_csum_fail: bool,
    pub pkts: [RxPktInfo; 4],
    pub rx_wqe_offset: u32,
}

mod rx_comp {
    use super::{Bits, Flag};
    // dword 1
    pub const RX_VLAN_ID: Bits = Bits::new(0, 12);
    pub const RX_VLANTAG_PRESENT: Flag = Flag(12);
    pub const RX_OUTER_IPHDR_CSUM_SUCCEED: Flag = Flag(13);
    pub const RX_OUTER_IPHDR_CSUM_FAIL: Flag = Flag(14);
    pub const RX_HASHTYPE: Bits = Bits::new(16, 9);
    pub const RX_IPHDR_CSUM_SUCCEED: Flag = Flag(25);
    pub const RX_IPHDR_CSUM_FAIL: Flag = Flag(26);
    pub const RX_TCP_CSUM_SUCCEED: Flag = Flag(27);
    pub const RX_TCP_CSUM_FAIL: Flag = Flag(28);
    pub const RX_UDP_CSUM_SUCCEED: Flag = Flag(29);
    pub const RX_UDP_CSUM_FAIL: Flag = Flag(30);
    // byte offsets
    pub const PKT_INFO: usize = 8;
    pub const PKT_INFO_SIZE: usize = 12;
    pub const PKT_LEN: usize = 0;
    pub const PKT_HASH: usize = 8;
    pub const RX_WQE_OFFSET: usize = 56;
}

impl RxCompOob {
    pub fn encode(&self) -> [u8; CQE_DATA_SIZE] {
        let w0 = comp::header(self.cqe_type, self.client_type, self.vendor_err);
        let w1 = rx_comp::RX_VLAN_ID.put(self.rx_vlan_id.into())
            | rx_comp::RX_VLANTAG_PRESENT.put(self.rx_vlantag_present)
            | rx_comp::RX_OUTER_IPHDR_CSUM_SUCCEED.put(self.rx_outer_iphdr_csum_succeed)
            | rx_comp::RX_OUTER_IPHDR_CSUM_FAIL.put(self.rx_outer_iphdr_csum_fail)
            | rx_comp::RX_HASHTYPE.put(self.rx_hashtype.into())
            | rx_comp::RX_IPHDR_CSUM_SUCCEED.put(self.rx_iphdr_csum_succeed)
            | rx_comp::RX_IPHDR_CSUM_FAIL.put(self.rx_iphdr_csum_fail)
            | rx_comp::RX_TCP_CSUM_SUCCEED.put(self.rx_tcp_csum_succeed)
            | rx_comp::RX_TCP_CSUM_FAIL.put(self.rx_tcp_csum_fail)
            | rx_comp::RX_UDP_CSUM_SUCCEED.put(self.rx_udp_csum_succeed)
            | rx_comp::RX_UDP_CSUM_FAIL.put(self.rx_udp_csum_fail);
        let mut b = [0u8; CQE_DATA_SIZE];
        put_bytes(&mut b, 0, &w0.to_le_bytes());
        put_bytes(&mut b, 4, &w1.to_le_bytes());
        for (i, pkt) in self.pkts.iter().enumerate() {
            let slot = rx_comp::PKT_INFO + i * rx_comp::PKT_INFO_SIZE;
            put_bytes(&mut b, slot + rx_comp::PKT_LEN, &pkt.pkt_len.to_le_bytes());
            put_bytes(&mut b, slot + rx_comp::PKT_HASH, &pkt.pkt_hash.to_le_bytes());
        }
        put_bytes(&mut b, rx_comp::RX_WQE_OFFSET, &self.rx_wqe_offset.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; CQE_DATA_SIZE]) -> RxCompOob {
        let w0 = get_u32(b, 0);
        let w1 = get_u32(b, 4);
        let mut pkts = [RxPktInfo::default(); 4];
        for (i, pkt) in pkts.iter_mut().enumerate() {
            let slot = rx_comp::PKT_INFO + i * rx_comp::PKT_INFO_SIZE;
            pkt.pkt_len = get_u16(b, slot + rx_comp::PKT_LEN);
            pkt.pkt_hash = get_u32(b, slot + rx_comp::PKT_HASH);
        }
        RxCompOob {
            cqe_type: comp::CQE_TYPE.get(w0) as u8,
            client_type: comp::CLIENT_TYPE.get(w0) as u8,
            vendor_err: comp::VENDOR_ERR.get(w0),
            rx_vlan_id: rx_comp::RX_VLAN_ID.get(w1) as u16,
            rx_vlantag_present: rx_comp::RX_VLANTAG_PRESENT.get(w1),
            rx_outer_iphdr_csum_succeed: rx_comp::RX_OUTER_IPHDR_CSUM_SUCCEED.get(w1),
            rx_outer_iphdr_csum_fail: rx_comp::RX_OUTER_IPHDR_CSUM_FAIL.get(w1),
            rx_hashtype: rx_comp::RX_HASHTYPE.get(w1) as u16,
            rx_iphdr_csum_succeed: rx_comp::RX_IPHDR_CSUM_SUCCEED.get(w1),
            rx_iphdr_csum_fail: rx_comp::RX_IPHDR_CSUM_FAIL.get(w1),
            rx_tcp_csum_succeed: rx_comp::RX_TCP_CSUM_SUCCEED.get(w1),
            rx_tcp_csum_fail: rx_comp::RX_TCP_CSUM_FAIL.get(w1),
            rx_udp_csum_succeed: rx_comp::RX_UDP_CSUM_SUCCEED.get(w1),
            rx_udp_csum_fail: rx_comp::RX_UDP_CSUM_FAIL.get(w1),
            pkts,
            rx_wqe_offset: get_u32(b, rx_comp::RX_WQE_OFFSET),
        }
    }
}

/// TX completion client data (the first 12 of 60 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxCompOob {
    /// 6 bits.
    pub cqe_type: u8,
    /// 2 bits.
    pub client_type: u8,
    /// 24 bits.
    pub vendor_err: u32,
    pub tx_data_offset: u32,
    /// 5 bits.
    pub tx_sgl_offset: u8,
    /// 27 bits.
    pub tx_wqe_offset: u32,
}

mod tx_comp {
    use super::Bits;
    pub const TX_DATA_OFFSET: usize = 4;
    // dword 2
    pub const TX_SGL_OFFSET: Bits = Bits::new(0, 5);
    pub const TX_WQE_OFFSET: Bits = Bits::new(5, 27);
}

impl TxCompOob {
    /// Bytes 12..60 are zero.
    pub fn encode(&self) -> [u8; CQE_DATA_SIZE] {
        let w0 = comp::header(self.cqe_type, self.client_type, self.vendor_err);
        let w2 = tx_comp::TX_SGL_OFFSET.put(self.tx_sgl_offset.into()) | tx_comp::TX_WQE_OFFSET.put(self.tx_wqe_offset);
        let mut b = [0u8; CQE_DATA_SIZE];
        put_bytes(&mut b, 0, &w0.to_le_bytes());
        put_bytes(&mut b, tx_comp::TX_DATA_OFFSET, &self.tx_data_offset.to_le_bytes());
        put_bytes(&mut b, 8, &w2.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; CQE_DATA_SIZE]) -> TxCompOob {
        let w0 = get_u32(b, 0);
        let w2 = get_u32(b, 8);
        TxCompOob {
            cqe_type: comp::CQE_TYPE.get(w0) as u8,
            client_type: comp::CLIENT_TYPE.get(w0) as u8,
            vendor_err: comp::VENDOR_ERR.get(w0),
            tx_data_offset: get_u32(b, tx_comp::TX_DATA_OFFSET),
            tx_sgl_offset: tx_comp::TX_SGL_OFFSET.get(w2) as u8,
            tx_wqe_offset: tx_comp::TX_WQE_OFFSET.get(w2),
        }
    }
}

/// A full 64-byte CQE: 60 bytes of client data + info dword.
pub fn cqe_encode(data: &[u8; CQE_DATA_SIZE], info: CqeInfo) -> [u8; CQE_SIZE] {
    let mut b = [0u8; CQE_SIZE];
    put_bytes(&mut b, 0, data);
    put_bytes(&mut b, CQE_DATA_SIZE, &info.encode().to_le_bytes());
    b
}

/// Splits a CQE into its client data and info dword.
pub fn cqe_split(b: &[u8; CQE_SIZE]) -> (&[u8; CQE_DATA_SIZE], CqeInfo) {
    let [data @ .., i0, i1, i2, i3] = b;
    (data, CqeInfo::decode(u32::from_le_bytes([*i0, *i1, *i2, *i3])))
}

/// An event-queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Eqe {
    pub details: [u8; EQE_DETAILS_SIZE],
    pub eqe_type: u8,
    /// 2 bits.
    pub client_id: u8,
    /// 3 bits.
    pub owner_bits: u8,
}

mod eqe {
    use super::Bits;
    // dword at byte 12
    pub const INFO: usize = 12;
    pub const TYPE: Bits = Bits::new(0, 8);
    pub const CLIENT_ID: Bits = Bits::new(16, 2);
    pub const OWNER_BITS: Bits = Bits::new(29, 3);
    // details dword 0 of a completion EQE
    pub const CQ_ID: Bits = Bits::new(0, 24);
}

impl Eqe {
    pub fn encode(&self) -> [u8; EQE_SIZE] {
        let info = eqe::TYPE.put(self.eqe_type.into())
            | eqe::CLIENT_ID.put(self.client_id.into())
            | eqe::OWNER_BITS.put(self.owner_bits.into());
        let mut b = [0u8; EQE_SIZE];
        put_bytes(&mut b, 0, &self.details);
        put_bytes(&mut b, eqe::INFO, &info.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; EQE_SIZE]) -> Eqe {
        let info = get_u32(b, eqe::INFO);
        Eqe {
            details: bytes_at(b, 0),
            eqe_type: eqe::TYPE.get(info) as u8,
            client_id: eqe::CLIENT_ID.get(info) as u8,
            owner_bits: eqe::OWNER_BITS.get(info) as u8,
        }
    }

    /// A completion event for CQ `cq_id` (24 bits); owner bits 0.
    pub fn completion(cq_id: u32) -> Eqe {
        let mut details = [0u8; EQE_DETAILS_SIZE];
        put_bytes(&mut details, 0, &eqe::CQ_ID.put(cq_id).to_le_bytes());
        Eqe { details, eqe_type: EQE_COMPLETION, ..Eqe::default() }
    }

    /// The CQ id of a completion event (low 24 bits of details dword 0).
    pub fn cq_id(&self) -> u32 {
        eqe::CQ_ID.get(get_u32(&self.details, 0))
    }
}

/// Owner bits the producer writes into entry `producer` (counted from 0) of
/// a queue of `n` entries: `((producer / n) + 1) & 7`. `n == 0` counts as 1.
pub fn owner_to_write(producer: u64, n: u32) -> u8 {
    let wraps = producer / u64::from(n.max(1));
    (wraps.wrapping_add(1) & 7) as u8
}

/// State of a CQ/EQ slot as seen by the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Not written yet.
    Empty,
    /// A new entry: consume it.
    Valid,
    /// The producer overran the consumer (or the owner bits are garbage).
    Overflow,
}

/// Checks the owner bits of slot `head mod n`, where `head` starts at `n`.
///
/// `old = (head / n - 1) & 7` means empty; anything but
/// `new = (head / n) & 7` is an overflow. `n == 0` counts as 1.
pub fn check_owner(owner_bits: u8, head: u64, n: u32) -> Slot {
    let wraps = head / u64::from(n.max(1));
    let old = (wraps.wrapping_sub(1) & 7) as u8;
    let new = (wraps & 7) as u8;
    if owner_bits == old {
        Slot::Empty
    } else if owner_bits != new {
        Slot::Overflow
    } else {
        Slot::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `N`-byte array, zero except for the listed `(offset, byte)` pairs.
    fn sparse<const N: usize>(nonzero: &[(usize, u8)]) -> [u8; N] {
        let mut b = [0u8; N];
        for &(at, v) in nonzero {
            b[at] = v;
        }
        b
    }

    /// xorshift64*: deterministic test input without external crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn u8(&mut self) -> u8 {
            self.next() as u8
        }
        fn u16(&mut self) -> u16 {
            self.next() as u16
        }
        fn u32(&mut self) -> u32 {
            self.next() as u32
        }
        fn bool(&mut self) -> bool {
            self.next() & 1 != 0
        }
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            let mut b = [0u8; N];
            for x in b.iter_mut() {
                *x = self.u8();
            }
            b
        }
    }

    fn and<const N: usize>(a: [u8; N], m: [u8; N]) -> [u8; N] {
        let mut out = a;
        for (o, m) in out.iter_mut().zip(m) {
            *o &= m;
        }
        out
    }

    const ROUNDS: usize = 2000;

    // ---- sizes ----

    #[test]
    fn wqe_sizes() {
        assert_eq!(wqe_size(RX_OOB_SIZE, 1), 32);
        assert_eq!(wqe_size(SHORT_OOB_SIZE, 1), 32);
        assert_eq!(wqe_size(LONG_OOB_SIZE, 1), 64);
        assert_eq!(wqe_size(SHORT_OOB_SIZE, 2), 64);
        assert_eq!(wqe_size(LONG_OOB_SIZE, 2), 64);
        assert_eq!(wqe_size(SHORT_OOB_SIZE, MAX_TX_SGE), MAX_SQ_WQE);
        assert_eq!(wqe_size(SHORT_OOB_SIZE, 30), 512);
        // MAX_TX_SGE is set by the long OOB: 8 + 24 + 16 * 30 = 512.
        assert_eq!(wqe_size(LONG_OOB_SIZE, MAX_TX_SGE), MAX_SQ_WQE);
        assert_eq!(wqe_size(LONG_OOB_SIZE, 31), 544);
        assert_eq!(wqe_size(RX_OOB_SIZE, MAX_RX_SGE), MAX_RQ_WQE);
        assert_eq!(wqe_size(RX_OOB_SIZE, 16), 288);
        assert_eq!(wqe_size(0, 0), 32);
        assert_eq!(wqe_size(usize::MAX, usize::MAX), usize::MAX & !31);
    }

    // ---- SGE ----

    #[test]
    fn sge_golden() {
        let cases: [(Sge, [u8; 16]); 4] = [
            (
                Sge { address: u64::MAX, ..Sge::default() },
                [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            (Sge { mem_key: u32::MAX, ..Sge::default() }, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
            (Sge { size: u32::MAX, ..Sge::default() }, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            (
                Sge { address: 0x0807_0605_0403_0201, mem_key: 0x0c0b_0a09, size: 0x100f_0e0d },
                [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            ),
        ];
        for (sge, bytes) in cases {
            assert_eq!(sge.encode(), bytes, "{sge:?}");
            assert_eq!(Sge::decode(&bytes), sge);
        }
    }

    #[test]
    fn sge_round_trip() {
        let mut rng = Rng(1);
        for _ in 0..ROUNDS {
            let b: [u8; 16] = rng.bytes();
            assert_eq!(Sge::decode(&b).encode(), b);
        }
    }

    // ---- WQE header ----

    #[test]
    fn wqe_header_golden() {
        let d = WqeHeader::default();
        let cases: [(WqeHeader, [u8; 8]); 6] = [
            (d, [0; 8]),
            (WqeHeader { last_vbytes: 0xff, ..d }, [0, 0, 0, 0xff, 0, 0, 0, 0]),
            (WqeHeader { num_sge: 0xff, ..d }, [0, 0, 0, 0, 0xff, 0, 0, 0]),
            (WqeHeader { inline_oob_size_div4: 0x7, ..d }, [0, 0, 0, 0, 0, 0x07, 0, 0]),
            (WqeHeader { client_oob_in_sgl: true, ..d }, [0, 0, 0, 0, 0, 0x08, 0, 0]),
            (WqeHeader { client_data_unit: 0x3fff, ..d }, [0, 0, 0, 0, 0, 0, 0xff, 0x3f]),
        ];
        for (h, bytes) in cases {
            assert_eq!(h.encode(), bytes, "{h:?}");
            assert_eq!(WqeHeader::decode(&bytes), h);
        }
    }

    #[test]
    fn wqe_header_typical() {
        // One-SGE TX WQE with a short OOB; MSS 1448 (0x5a8) for LSO.
        let h = WqeHeader { num_sge: 1, inline_oob_size_div4: INLINE_OOB_SHORT_DIV4, ..WqeHeader::default() };
        assert_eq!(h.encode(), [0, 0, 0, 0, 0x01, 0x02, 0, 0]);
        let h = WqeHeader {
            last_vbytes: 0x36,
            num_sge: 3,
            inline_oob_size_div4: INLINE_OOB_LONG_DIV4,
            client_oob_in_sgl: true,
            client_data_unit: 1448,
        };
        assert_eq!(h.encode(), [0, 0, 0, 0x36, 0x03, 0x0e, 0xa8, 0x05]);
    }

    #[test]
    fn wqe_header_masks() {
        let d = WqeHeader::default();
        assert_eq!(WqeHeader { inline_oob_size_div4: 0xff, ..d }.encode(), [0, 0, 0, 0, 0, 0x07, 0, 0]);
        assert_eq!(WqeHeader { client_data_unit: 0xffff, ..d }.encode(), [0, 0, 0, 0, 0, 0, 0xff, 0x3f]);
        // Reserved bits are ignored on decode.
        assert_eq!(WqeHeader::decode(&[0xff, 0xff, 0xff, 0, 0, 0xf0, 0, 0xc0]), d);
    }

    #[test]
    fn wqe_header_round_trip() {
        const USED: [u8; 8] = [0, 0, 0, 0xff, 0xff, 0x0f, 0xff, 0x3f];
        let mut rng = Rng(2);
        for _ in 0..ROUNDS {
            let b: [u8; 8] = rng.bytes();
            let h = WqeHeader::decode(&b);
            assert_eq!(h.encode(), and(b, USED));
            assert_eq!(WqeHeader::decode(&h.encode()), h);
            let raw = WqeHeader {
                last_vbytes: rng.u8(),
                num_sge: rng.u8(),
                inline_oob_size_div4: rng.u8(),
                client_oob_in_sgl: rng.bool(),
                client_data_unit: rng.u16(),
            };
            let masked = WqeHeader {
                inline_oob_size_div4: raw.inline_oob_size_div4 & 0x7,
                client_data_unit: raw.client_data_unit & 0x3fff,
                ..raw
            };
            assert_eq!(WqeHeader::decode(&raw.encode()), masked);
        }
    }

    // ---- TX OOB ----

    #[test]
    fn tx_oob_short_golden() {
        let d = TxOob::default();
        let cases: [(TxOob, [u8; 8]); 12] = [
            (d, [0; 8]),
            (TxOob { pkt_fmt: 0x3, ..d }, [0x03, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { is_outer_ipv4: true, ..d }, [0x04, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { is_outer_ipv6: true, ..d }, [0x08, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { comp_iphdr_csum: true, ..d }, [0x10, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { comp_tcp_csum: true, ..d }, [0x20, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { comp_udp_csum: true, ..d }, [0x40, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { supress_txcqe_gen: true, ..d }, [0x80, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { vcq_num: 0xff_ffff, ..d }, [0, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
            (TxOob { trans_off: 0x3ff, ..d }, [0, 0, 0, 0, 0xff, 0x03, 0, 0]),
            (TxOob { vsq_frame: 0x3fff, ..d }, [0, 0, 0, 0, 0, 0xfc, 0xff, 0]),
            (TxOob { short_vp_offset: 0xff, ..d }, [0, 0, 0, 0, 0, 0, 0, 0xff]),
        ];
        for (oob, bytes) in cases {
            assert_eq!(oob.encode_short(), bytes, "{oob:?}");
            assert_eq!(TxOob::decode_short(&bytes), oob);
            // The long form starts with the same 8 bytes, then 16 zero bytes.
            let long = oob.encode_long();
            assert_eq!(long[..8], bytes);
            assert_eq!(long[8..], [0; 16]);
            assert_eq!(TxOob::decode_long(&long), oob);
        }
    }

    #[test]
    fn tx_oob_long_golden() {
        let d = TxOob::default();
        let cases: [(TxOob, [u8; 24]); 10] = [
            (TxOob { is_encap: true, ..d }, sparse(&[(8, 0x01)])),
            (TxOob { inner_is_ipv6: true, ..d }, sparse(&[(8, 0x02)])),
            (TxOob { inner_tcp_opt: true, ..d }, sparse(&[(8, 0x04)])),
            (TxOob { inject_vlan_pri_tag: true, ..d }, sparse(&[(8, 0x08)])),
            (TxOob { pcp: 0x7, ..d }, sparse(&[(10, 0x07)])),
            (TxOob { dei: true, ..d }, sparse(&[(10, 0x08)])),
            (TxOob { vlan_id: 0xfff, ..d }, sparse(&[(10, 0xf0), (11, 0xff)])),
            (TxOob { inner_frame_offset: 0x3ff, ..d }, sparse(&[(12, 0xff), (13, 0x03)])),
            (TxOob { inner_ip_rel_offset: 0x3f, ..d }, sparse(&[(13, 0xfc)])),
            (TxOob { long_vp_offset: 0xfff, ..d }, sparse(&[(14, 0xff), (15, 0x0f)])),
        ];
        for (oob, bytes) in cases {
            assert_eq!(oob.encode_long(), bytes, "{oob:?}");
            assert_eq!(TxOob::decode_long(&bytes), oob);
            // Long-only fields never reach the short form.
            assert_eq!(oob.encode_short(), [0; 8]);
        }
    }

    #[test]
    fn tx_oob_typical() {
        // Long OOB: VLAN 100 (0x064) with PCP 5, vport 0x123, TX CQ 7, TCP checksum at 34.
        let oob = TxOob {
            pkt_fmt: PKT_FMT_LONG,
            is_outer_ipv4: true,
            comp_tcp_csum: true,
            vcq_num: 7,
            trans_off: 34,
            inject_vlan_pri_tag: true,
            pcp: 5,
            vlan_id: 100,
            long_vp_offset: 0x123,
            ..TxOob::default()
        };
        let expect: [u8; 24] = [
            0x25, 0x07, 0, 0, 0x22, 0, 0, 0, //
            0x08, 0, 0x45, 0x06, 0, 0, 0x23, 0x01, //
            0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(oob.encode_long(), expect);
        assert_eq!(TxOob::decode_long(&expect), oob);
    }

    #[test]
    fn tx_oob_masks() {
        let d = TxOob::default();
        let short: [(TxOob, [u8; 8]); 4] = [
            (TxOob { pkt_fmt: 0xff, ..d }, [0x03, 0, 0, 0, 0, 0, 0, 0]),
            (TxOob { vcq_num: u32::MAX, ..d }, [0, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
            (TxOob { trans_off: u16::MAX, ..d }, [0, 0, 0, 0, 0xff, 0x03, 0, 0]),
            (TxOob { vsq_frame: u16::MAX, ..d }, [0, 0, 0, 0, 0, 0xfc, 0xff, 0]),
        ];
        for (oob, bytes) in short {
            assert_eq!(oob.encode_short(), bytes, "{oob:?}");
        }
        let long: [(TxOob, [u8; 24]); 5] = [
            (TxOob { pcp: 0xff, ..d }, sparse(&[(10, 0x07)])),
            (TxOob { vlan_id: u16::MAX, ..d }, sparse(&[(10, 0xf0), (11, 0xff)])),
            (TxOob { inner_frame_offset: u16::MAX, ..d }, sparse(&[(12, 0xff), (13, 0x03)])),
            (TxOob { inner_ip_rel_offset: 0xff, ..d }, sparse(&[(13, 0xfc)])),
            (TxOob { long_vp_offset: u16::MAX, ..d }, sparse(&[(14, 0xff), (15, 0x0f)])),
        ];
        for (oob, bytes) in long {
            assert_eq!(oob.encode_long(), bytes, "{oob:?}");
        }
        // Reserved bits and dwords 4–5 are ignored on decode.
        let reserved: [u8; 24] = sparse(&[
            (8, 0xf0),
            (9, 0xff),
            (15, 0xf0),
            (16, 0xff),
            (17, 0xff),
            (18, 0xff),
            (19, 0xff),
            (20, 0xff),
            (21, 0xff),
            (22, 0xff),
            (23, 0xff),
        ]);
        assert_eq!(TxOob::decode_long(&reserved), d);
    }

    fn random_tx_oob(rng: &mut Rng) -> TxOob {
        TxOob {
            pkt_fmt: rng.u8(),
            is_outer_ipv4: rng.bool(),
            is_outer_ipv6: rng.bool(),
            comp_iphdr_csum: rng.bool(),
            comp_tcp_csum: rng.bool(),
            comp_udp_csum: rng.bool(),
            supress_txcqe_gen: rng.bool(),
            vcq_num: rng.u32(),
            trans_off: rng.u16(),
            vsq_frame: rng.u16(),
            short_vp_offset: rng.u8(),
            is_encap: rng.bool(),
            inner_is_ipv6: rng.bool(),
            inner_tcp_opt: rng.bool(),
            inject_vlan_pri_tag: rng.bool(),
            pcp: rng.u8(),
            dei: rng.bool(),
            vlan_id: rng.u16(),
            inner_frame_offset: rng.u16(),
            inner_ip_rel_offset: rng.u8(),
            long_vp_offset: rng.u16(),
        }
    }

    fn mask_tx_oob(o: TxOob) -> TxOob {
        TxOob {
            pkt_fmt: o.pkt_fmt & 0x3,
            vcq_num: o.vcq_num & 0xff_ffff,
            trans_off: o.trans_off & 0x3ff,
            vsq_frame: o.vsq_frame & 0x3fff,
            pcp: o.pcp & 0x7,
            vlan_id: o.vlan_id & 0xfff,
            inner_frame_offset: o.inner_frame_offset & 0x3ff,
            inner_ip_rel_offset: o.inner_ip_rel_offset & 0x3f,
            long_vp_offset: o.long_vp_offset & 0xfff,
            ..o
        }
    }

    fn short_part(o: TxOob) -> TxOob {
        TxOob {
            is_encap: false,
            inner_is_ipv6: false,
            inner_tcp_opt: false,
            inject_vlan_pri_tag: false,
            pcp: 0,
            dei: false,
            vlan_id: 0,
            inner_frame_offset: 0,
            inner_ip_rel_offset: 0,
            long_vp_offset: 0,
            ..o
        }
    }

    #[test]
    fn tx_oob_round_trip() {
        const USED_LONG: [u8; 24] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
            0x0f, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, //
            0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut rng = Rng(3);
        for _ in 0..ROUNDS {
            let b: [u8; 8] = rng.bytes();
            let o = TxOob::decode_short(&b);
            assert_eq!(o.encode_short(), b);
            let b: [u8; 24] = rng.bytes();
            let o = TxOob::decode_long(&b);
            assert_eq!(o.encode_long(), and(b, USED_LONG));
            assert_eq!(TxOob::decode_long(&o.encode_long()), o);

            let raw = random_tx_oob(&mut rng);
            assert_eq!(TxOob::decode_long(&raw.encode_long()), mask_tx_oob(raw));
            assert_eq!(TxOob::decode_short(&raw.encode_short()), short_part(mask_tx_oob(raw)));
        }
    }

    // ---- doorbells ----

    #[test]
    fn doorbell_golden() {
        assert_eq!(db_sq(0xff_ffff, 0), 0x0000_0000_00ff_ffff);
        assert_eq!(db_sq(0, u32::MAX), 0xffff_ffff_0000_0000);
        assert_eq!(db_sq(3, 0x1_0020), 0x0001_0020_0000_0003);
        assert_eq!(db_rq(5, 0x40), 0x0000_0040_0000_0005);
        assert_eq!(db_rq(0xff_ffff, 0), 0x0000_0000_00ff_ffff);
        assert_eq!(db_rq(0, u32::MAX), 0xffff_ffff_0000_0000);
        assert_eq!(db_cq(0xff_ffff, 0, false), 0x0000_0000_00ff_ffff);
        assert_eq!(db_cq(0, 0x7fff_ffff, false), 0x7fff_ffff_0000_0000);
        assert_eq!(db_cq(0, 0, true), 0x8000_0000_0000_0000);
        assert_eq!(db_cq(9, 0x123, true), 0x8000_0123_0000_0009);
        assert_eq!(db_eq(0xffff, 0, false), 0x0000_0000_0000_ffff);
        assert_eq!(db_eq(0, 0x7fff_ffff, false), 0x7fff_ffff_0000_0000);
        assert_eq!(db_eq(0, 0, true), 0x8000_0000_0000_0000);
        // As written to the doorbell page.
        assert_eq!(db_rq(5, 0x40).to_le_bytes(), [0x05, 0, 0, 0, 0x40, 0, 0, 0]);
        assert_eq!(db_cq(0x0a_0b0c, 0x10, true).to_le_bytes(), [0x0c, 0x0b, 0x0a, 0, 0x10, 0, 0, 0x80]);
    }

    #[test]
    fn doorbell_masks() {
        assert_eq!(db_sq(u32::MAX, 0), 0x0000_0000_00ff_ffff);
        assert_eq!(db_rq(u32::MAX, 0), 0x0000_0000_00ff_ffff);
        assert_eq!(db_cq(u32::MAX, 0, false), 0x0000_0000_00ff_ffff);
        assert_eq!(db_cq(0, u32::MAX, false), 0x7fff_ffff_0000_0000);
        assert_eq!(db_eq(u32::MAX, 0, false), 0x0000_0000_0000_ffff);
        assert_eq!(db_eq(0, u32::MAX, false), 0x7fff_ffff_0000_0000);
    }

    #[test]
    fn doorbell_decode() {
        assert_eq!(decode_doorbell(DB_SQ, 0x0000_0200_0000_0011), Some(Doorbell::Sq { qid: 0x11, tail: 0x200 }));
        assert_eq!(
            decode_doorbell(0x000, 0xffff_ffff_ffff_ffff),
            Some(Doorbell::Sq { qid: 0xff_ffff, tail: u32::MAX })
        );
        assert_eq!(
            decode_doorbell(DB_RQ, 0x0000_0040_0000_0005),
            Some(Doorbell::Rq { qid: 5, wqe_cnt: 0, tail: 0x40 })
        );
        assert_eq!(
            decode_doorbell(0x400, 0x8000_0001_ab12_3456),
            Some(Doorbell::Rq { qid: 0x12_3456, wqe_cnt: 0xab, tail: 0x8000_0001 })
        );
        assert_eq!(
            decode_doorbell(DB_CQ, 0x8000_0123_0000_0009),
            Some(Doorbell::Cq { qid: 9, tail: 0x123, arm: true })
        );
        assert_eq!(
            decode_doorbell(0x800, 0x7fff_ffff_ffff_ffff),
            Some(Doorbell::Cq { qid: 0xff_ffff, tail: 0x7fff_ffff, arm: false })
        );
        assert_eq!(
            decode_doorbell(DB_EQ, 0x8000_0010_00ff_ffff),
            Some(Doorbell::Eq { qid: 0xffff, tail: 0x10, arm: true })
        );
        assert_eq!(decode_doorbell(0xff8, 0x0000_0001_0000_0002), Some(Doorbell::Eq { qid: 2, tail: 1, arm: false }));
        for offset in [0x004, 0x3f8, 0x408, 0x7f8, 0x808, 0xc00, 0xff0, 0x1000, u32::MAX] {
            assert_eq!(decode_doorbell(offset, 0x0000_0040_0000_0005), None, "{offset:#x}");
        }
    }

    #[test]
    fn doorbell_round_trip() {
        let mut rng = Rng(4);
        for _ in 0..ROUNDS {
            let (qid, tail, arm) = (rng.u32(), rng.u32(), rng.bool());
            assert_eq!(decode_doorbell(DB_SQ, db_sq(qid, tail)), Some(Doorbell::Sq { qid: qid & 0xff_ffff, tail }));
            assert_eq!(
                decode_doorbell(DB_RQ, db_rq(qid, tail)),
                Some(Doorbell::Rq { qid: qid & 0xff_ffff, wqe_cnt: 0, tail })
            );
            assert_eq!(
                decode_doorbell(DB_CQ, db_cq(qid, tail, arm)),
                Some(Doorbell::Cq { qid: qid & 0xff_ffff, tail: tail & 0x7fff_ffff, arm })
            );
            assert_eq!(
                decode_doorbell(DB_EQ, db_eq(qid, tail, arm)),
                Some(Doorbell::Eq { qid: qid & 0xffff, tail: tail & 0x7fff_ffff, arm })
            );
        }
    }

    // ---- CQE ----

    #[test]
    fn cqe_info_golden() {
        let d = CqeInfo::default();
        let cases: [(CqeInfo, u32); 4] = [
            (d, 0),
            (CqeInfo { wq_num: 0xff_ffff, ..d }, 0x00ff_ffff),
            (CqeInfo { is_sq: true, ..d }, 0x0100_0000),
            (CqeInfo { owner_bits: 0x7, ..d }, 0xe000_0000),
        ];
        for (info, v) in cases {
            assert_eq!(info.encode(), v, "{info:?}");
            assert_eq!(CqeInfo::decode(v), info);
        }
    }

    #[test]
    fn cqe_info_masks() {
        let d = CqeInfo::default();
        assert_eq!(CqeInfo { wq_num: u32::MAX, ..d }.encode(), 0x00ff_ffff);
        assert_eq!(CqeInfo { owner_bits: 0xff, ..d }.encode(), 0xe000_0000);
        assert_eq!(CqeInfo::decode(0x1e00_0000), d);
        let mut rng = Rng(5);
        for _ in 0..ROUNDS {
            let v = rng.u32();
            let info = CqeInfo::decode(v);
            assert_eq!(info.encode(), v & 0xe1ff_ffff);
            let raw = CqeInfo { wq_num: rng.u32(), is_sq: rng.bool(), owner_bits: rng.u8() };
            let masked = CqeInfo { wq_num: raw.wq_num & 0xff_ffff, owner_bits: raw.owner_bits & 0x7, ..raw };
            assert_eq!(CqeInfo::decode(raw.encode()), masked);
        }
    }

    #[test]
    fn cqe_encode_split() {
        let mut data = [0u8; 60];
        for (i, x) in data.iter_mut().enumerate() {
            *x = i as u8 + 1;
        }
        let info = CqeInfo { wq_num: 0x12_3456, is_sq: true, owner_bits: 5 };
        let cqe = cqe_encode(&data, info);
        assert_eq!(cqe[..60], data);
        assert_eq!(cqe[60..], [0x56, 0x34, 0x12, 0xa1]);
        let (d, i) = cqe_split(&cqe);
        assert_eq!(*d, data);
        assert_eq!(i, info);
        let (d, i) = cqe_split(&[0xff; 64]);
        assert_eq!(*d, [0xff; 60]);
        assert_eq!(i, CqeInfo { wq_num: 0xff_ffff, is_sq: true, owner_bits: 7 });
    }

    #[test]
    fn rx_comp_golden() {
        let d = RxCompOob::default();
        let mut cases: Vec<(RxCompOob, [u8; 60])> = vec![
            (d, [0; 60]),
            (RxCompOob { cqe_type: 0x3f, ..d }, sparse(&[(0, 0x3f)])),
            (RxCompOob { client_type: 0x3, ..d }, sparse(&[(0, 0xc0)])),
            (RxCompOob { vendor_err: 0xff_ffff, ..d }, sparse(&[(1, 0xff), (2, 0xff), (3, 0xff)])),
            (RxCompOob { rx_vlan_id: 0xfff, ..d }, sparse(&[(4, 0xff), (5, 0x0f)])),
            (RxCompOob { rx_vlantag_present: true, ..d }, sparse(&[(5, 0x10)])),
            (RxCompOob { rx_outer_iphdr_csum_succeed: true, ..d }, sparse(&[(5, 0x20)])),
            (RxCompOob { rx_outer_iphdr_csum_fail: true, ..d }, sparse(&[(5, 0x40)])),
            (RxCompOob { rx_hashtype: 0x1ff, ..d }, sparse(&[(6, 0xff), (7, 0x01)])),
            (RxCompOob { rx_iphdr_csum_succeed: true, ..d }, sparse(&[(7, 0x02)])),
            (RxCompOob { rx_iphdr_csum_fail: true, ..d }, sparse(&[(7, 0x04)])),
            (RxCompOob { rx_tcp_csum_succeed: true, ..d }, sparse(&[(7, 0x08)])),
            (RxCompOob { rx_tcp_csum_fail: true, ..d }, sparse(&[(7, 0x10)])),
            (RxCompOob { rx_udp_csum_succeed: true, ..d }, sparse(&[(7, 0x20)])),
            (RxCompOob { rx_udp_csum_fail: true, ..d }, sparse(&[(7, 0x40)])),
            (RxCompOob { rx_wqe_offset: u32::MAX, ..d }, sparse(&[(56, 0xff), (57, 0xff), (58, 0xff), (59, 0xff)])),
        ];
        // Packet-info slots at 8, 20, 32, 44: pkt_len at +0, pkt_hash at +8.
        let slot_len: [[(usize, u8); 2]; 4] =
            [[(8, 0xff), (9, 0xff)], [(20, 0xff), (21, 0xff)], [(32, 0xff), (33, 0xff)], [(44, 0xff), (45, 0xff)]];
        let slot_hash: [[(usize, u8); 4]; 4] = [
            [(16, 0xff), (17, 0xff), (18, 0xff), (19, 0xff)],
            [(28, 0xff), (29, 0xff), (30, 0xff), (31, 0xff)],
            [(40, 0xff), (41, 0xff), (42, 0xff), (43, 0xff)],
            [(52, 0xff), (53, 0xff), (54, 0xff), (55, 0xff)],
        ];
        for i in 0..4 {
            let mut c = d;
            c.pkts[i].pkt_len = u16::MAX;
            cases.push((c, sparse(&slot_len[i])));
            let mut c = d;
            c.pkts[i].pkt_hash = u32::MAX;
            cases.push((c, sparse(&slot_hash[i])));
        }
        for (oob, bytes) in cases {
            assert_eq!(oob.encode(), bytes, "{oob:?}");
            assert_eq!(RxCompOob::decode(&bytes), oob);
        }
    }

    #[test]
    fn rx_comp_typical() {
        // RX_OKAY, 60-byte TCP/IPv4 packet, hash 0x11223344, checksums good.
        let mut oob = RxCompOob {
            cqe_type: CQE_RX_OKAY,
            client_type: CLIENT_TYPE_ETH,
            rx_hashtype: HASH_TCP_IPV4,
            rx_iphdr_csum_succeed: true,
            rx_tcp_csum_succeed: true,
            ..RxCompOob::default()
        };
        oob.pkts[0] = RxPktInfo { pkt_len: 60, pkt_hash: 0x1122_3344 };
        let expect: [u8; 60] =
            sparse(&[(0, 0x41), (6, 0x02), (7, 0x0a), (8, 60), (16, 0x44), (17, 0x33), (18, 0x22), (19, 0x11)]);
        assert_eq!(oob.encode(), expect);
        assert_eq!(RxCompOob::decode(&expect), oob);
    }

    #[test]
    fn rx_comp_masks() {
        let d = RxCompOob::default();
        let cases: [(RxCompOob, [u8; 60]); 5] = [
            (RxCompOob { cqe_type: 0xff, ..d }, sparse(&[(0, 0x3f)])),
            (RxCompOob { client_type: 0xff, ..d }, sparse(&[(0, 0xc0)])),
            (RxCompOob { vendor_err: u32::MAX, ..d }, sparse(&[(1, 0xff), (2, 0xff), (3, 0xff)])),
            (RxCompOob { rx_vlan_id: u16::MAX, ..d }, sparse(&[(4, 0xff), (5, 0x0f)])),
            (RxCompOob { rx_hashtype: u16::MAX, ..d }, sparse(&[(6, 0xff), (7, 0x01)])),
        ];
        for (oob, bytes) in cases {
            assert_eq!(oob.encode(), bytes, "{oob:?}");
        }
        // Reserved bits and bytes are ignored on decode.
        let reserved: [u8; 60] =
            sparse(&[(5, 0x80), (7, 0x80), (10, 0xff), (11, 0xff), (12, 0xff), (13, 0xff), (14, 0xff), (15, 0xff)]);
        assert_eq!(RxCompOob::decode(&reserved), d);
    }

    #[test]
    fn rx_comp_round_trip() {
        let mut used = [0u8; 60];
        used[..4].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        used[4..8].copy_from_slice(&[0xff, 0x7f, 0xff, 0x7f]);
        for slot in [8, 20, 32, 44] {
            used[slot..slot + 12].copy_from_slice(&[0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        }
        used[56..].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let mut rng = Rng(6);
        for _ in 0..ROUNDS {
            let b: [u8; 60] = rng.bytes();
            let oob = RxCompOob::decode(&b);
            assert_eq!(oob.encode(), and(b, used));
            assert_eq!(RxCompOob::decode(&oob.encode()), oob);
        }
    }

    #[test]
    fn tx_comp_golden() {
        let d = TxCompOob::default();
        let cases: [(TxCompOob, [u8; 60]); 7] = [
            (d, [0; 60]),
            (TxCompOob { cqe_type: 0x3f, ..d }, sparse(&[(0, 0x3f)])),
            (TxCompOob { client_type: 0x3, ..d }, sparse(&[(0, 0xc0)])),
            (TxCompOob { vendor_err: 0xff_ffff, ..d }, sparse(&[(1, 0xff), (2, 0xff), (3, 0xff)])),
            (TxCompOob { tx_data_offset: u32::MAX, ..d }, sparse(&[(4, 0xff), (5, 0xff), (6, 0xff), (7, 0xff)])),
            (TxCompOob { tx_sgl_offset: 0x1f, ..d }, sparse(&[(8, 0x1f)])),
            (TxCompOob { tx_wqe_offset: 0x7ff_ffff, ..d }, sparse(&[(8, 0xe0), (9, 0xff), (10, 0xff), (11, 0xff)])),
        ];
        for (oob, bytes) in cases {
            assert_eq!(oob.encode(), bytes, "{oob:?}");
            assert_eq!(TxCompOob::decode(&bytes), oob);
        }
        let ok = TxCompOob { cqe_type: CQE_TX_OKAY, client_type: CLIENT_TYPE_ETH, tx_wqe_offset: 0x40, ..d };
        assert_eq!(ok.encode(), sparse(&[(0, 0x60), (8, 0x00), (9, 0x08)]));
    }

    #[test]
    fn tx_comp_masks() {
        let d = TxCompOob::default();
        let cases: [(TxCompOob, [u8; 60]); 5] = [
            (TxCompOob { cqe_type: 0xff, ..d }, sparse(&[(0, 0x3f)])),
            (TxCompOob { client_type: 0xff, ..d }, sparse(&[(0, 0xc0)])),
            (TxCompOob { vendor_err: u32::MAX, ..d }, sparse(&[(1, 0xff), (2, 0xff), (3, 0xff)])),
            (TxCompOob { tx_sgl_offset: 0xff, ..d }, sparse(&[(8, 0x1f)])),
            (TxCompOob { tx_wqe_offset: u32::MAX, ..d }, sparse(&[(8, 0xe0), (9, 0xff), (10, 0xff), (11, 0xff)])),
        ];
        for (oob, bytes) in cases {
            assert_eq!(oob.encode(), bytes, "{oob:?}");
        }
        let mut rest = [0xffu8; 60];
        rest[..12].fill(0);
        assert_eq!(TxCompOob::decode(&rest), d);
    }

    #[test]
    fn tx_comp_round_trip() {
        let mut used = [0u8; 60];
        used[..12].fill(0xff);
        let mut rng = Rng(7);
        for _ in 0..ROUNDS {
            let b: [u8; 60] = rng.bytes();
            let oob = TxCompOob::decode(&b);
            assert_eq!(oob.encode(), and(b, used));
            let raw = TxCompOob {
                cqe_type: rng.u8(),
                client_type: rng.u8(),
                vendor_err: rng.u32(),
                tx_data_offset: rng.u32(),
                tx_sgl_offset: rng.u8(),
                tx_wqe_offset: rng.u32(),
            };
            let masked = TxCompOob {
                cqe_type: raw.cqe_type & 0x3f,
                client_type: raw.client_type & 0x3,
                vendor_err: raw.vendor_err & 0xff_ffff,
                tx_sgl_offset: raw.tx_sgl_offset & 0x1f,
                tx_wqe_offset: raw.tx_wqe_offset & 0x7ff_ffff,
                ..raw
            };
            assert_eq!(TxCompOob::decode(&raw.encode()), masked);
        }
    }

    #[test]
    fn tx_cqe_names() {
        let names = [
            (CQE_TX_OKAY, "tx_okay"),
            (CQE_TX_SA_DROP, "tx_sa_drop"),
            (CQE_TX_MTU_DROP, "tx_mtu_drop"),
            (CQE_TX_INVALID_OOB, "tx_invalid_oob"),
            (CQE_TX_INVALID_ETH_TYPE, "tx_invalid_eth_type"),
            (CQE_TX_HDR_PROCESSING_ERROR, "tx_hdr_processing_error"),
            (CQE_TX_VF_DISABLED, "tx_vf_disabled"),
            (CQE_TX_VPORT_IDX_OUT_OF_RANGE, "tx_vport_idx_out_of_range"),
            (CQE_TX_VPORT_DISABLED, "tx_vport_disabled"),
            (CQE_TX_VLAN_TAGGING_VIOLATION, "tx_vlan_tagging_violation"),
        ];
        for (t, name) in names {
            assert_eq!(tx_cqe_type_name(t), name);
        }
        assert_eq!(CQE_TX_OKAY, 32);
        assert_eq!(CQE_TX_VLAN_TAGGING_VIOLATION, 41);
        for t in [CQE_INVALID, CQE_RX_OKAY, CQE_RX_COALESCED_4, CQE_RX_OBJECT_FENCE, CQE_RX_TRUNCATED, 31, 42, 63, 255]
        {
            assert_eq!(tx_cqe_type_name(t), "unknown");
        }
    }

    // ---- EQE ----

    #[test]
    fn eqe_golden() {
        let d = Eqe::default();
        let cases: [(Eqe, [u8; 16]); 5] = [
            (d, [0; 16]),
            (
                Eqe { details: [0xff; 12], ..d },
                [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
            ),
            (Eqe { eqe_type: 0xff, ..d }, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0]),
            (Eqe { client_id: 0x3, ..d }, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0]),
            (Eqe { owner_bits: 0x7, ..d }, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe0]),
        ];
        for (e, bytes) in cases {
            assert_eq!(e.encode(), bytes, "{e:?}");
            assert_eq!(Eqe::decode(&bytes), e);
        }
    }

    #[test]
    fn eqe_masks() {
        let d = Eqe::default();
        assert_eq!(Eqe { client_id: 0xff, ..d }.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0]);
        assert_eq!(Eqe { owner_bits: 0xff, ..d }.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe0]);
        // Reserved bits 8–15 and 18–28 are ignored on decode.
        assert_eq!(Eqe::decode(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfc, 0x1f]), d);
        const USED: [u8; 16] =
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x03, 0xe0];
        let mut rng = Rng(8);
        for _ in 0..ROUNDS {
            let b: [u8; 16] = rng.bytes();
            let e = Eqe::decode(&b);
            assert_eq!(e.encode(), and(b, USED));
            assert_eq!(Eqe::decode(&e.encode()), e);
        }
    }

    #[test]
    fn eqe_completion() {
        let e = Eqe::completion(0x12_3456);
        assert_eq!(e.encode(), [0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0]);
        assert_eq!(e.cq_id(), 0x12_3456);
        assert_eq!(e.eqe_type, EQE_COMPLETION);
        let e = Eqe::completion(u32::MAX);
        assert_eq!(e.encode(), [0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0]);
        assert_eq!(e.cq_id(), 0xff_ffff);
        let decoded = Eqe::decode(&[0x07, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0x20]);
        assert_eq!(decoded.cq_id(), 7);
        assert_eq!(decoded.owner_bits, 1);
    }

    // ---- owner bits ----

    #[test]
    fn owner_values() {
        assert_eq!(owner_to_write(0, 8), 1);
        assert_eq!(owner_to_write(7, 8), 1);
        assert_eq!(owner_to_write(8, 8), 2);
        assert_eq!(owner_to_write(55, 8), 7);
        assert_eq!(owner_to_write(56, 8), 0);
        assert_eq!(owner_to_write(64, 8), 1);
        // A fresh (zeroed) ring: head = n sees owner 0 as empty, 1 as valid.
        assert_eq!(check_owner(0, 8, 8), Slot::Empty);
        assert_eq!(check_owner(1, 8, 8), Slot::Valid);
        assert_eq!(check_owner(2, 8, 8), Slot::Overflow);
        // Generation 7 wraps to 0 for "new"; old is 7.
        assert_eq!(check_owner(7, 64, 8), Slot::Empty);
        assert_eq!(check_owner(0, 64, 8), Slot::Valid);
        // Out-of-range owner bits are never valid.
        assert_eq!(check_owner(9, 8, 8), Slot::Overflow);
        // Degenerate inputs do not panic.
        assert_eq!(owner_to_write(u64::MAX, 1), 0);
        assert_eq!(owner_to_write(5, 0), 6);
        assert_eq!(check_owner(0, 0, 8), Slot::Valid);
        assert_eq!(check_owner(7, 0, 8), Slot::Empty);
        assert_eq!(check_owner(0, u64::MAX, 0), Slot::Overflow);
    }

    #[test]
    fn owner_producer_consumer_agree() {
        for n in [1u32, 4, 8, 64] {
            let mut ring = vec![0u8; n as usize];
            let mut producer = 0u64;
            let mut head = u64::from(n);
            let mut rng = Rng(9 + u64::from(n));
            // Many wraps of the 3-bit generation counter, in uneven batches.
            while producer < u64::from(n) * 40 {
                assert_eq!(check_owner(ring[(head % u64::from(n)) as usize], head, n), Slot::Empty);
                let batch = 1 + rng.next() % u64::from(n);
                for _ in 0..batch {
                    ring[(producer % u64::from(n)) as usize] = owner_to_write(producer, n);
                    producer += 1;
                }
                for _ in 0..batch {
                    let slot = (head % u64::from(n)) as usize;
                    assert_eq!(check_owner(ring[slot], head, n), Slot::Valid, "n={n} head={head}");
                    head += 1;
                }
            }
            // Through the encoded CQE info dword as well.
            let info = CqeInfo { owner_bits: owner_to_write(producer, n), ..CqeInfo::default() };
            let cqe = cqe_encode(&[0; 60], info);
            let (_, seen) = cqe_split(&cqe);
            assert_eq!(check_owner(seen.owner_bits, head, n), Slot::Valid);
        }
    }

    #[test]
    fn owner_overflow_detected() {
        let n = 8u32;
        for start in [0u64, 5, 8, 61, 1000] {
            let mut ring = vec![0u8; n as usize];
            // Bring the ring to a steady state: `start` entries written and consumed.
            let mut head = u64::from(n) + start;
            for p in start.saturating_sub(u64::from(n))..start {
                ring[(p % u64::from(n)) as usize] = owner_to_write(p, n);
            }
            assert_eq!(check_owner(ring[(head % 8) as usize], head, n), Slot::Empty);
            // The producer writes n + 1 entries without the consumer moving.
            for p in start..start + u64::from(n) + 1 {
                ring[(p % u64::from(n)) as usize] = owner_to_write(p, n);
            }
            assert_eq!(check_owner(ring[(head % 8) as usize], head, n), Slot::Overflow, "start={start}");
            // Exactly n entries is full, not overflow: every slot is valid.
            let mut ring = vec![0u8; n as usize];
            for p in start.saturating_sub(u64::from(n))..start + u64::from(n) {
                ring[(p % u64::from(n)) as usize] = owner_to_write(p, n);
            }
            for _ in 0..n {
                assert_eq!(check_owner(ring[(head % 8) as usize], head, n), Slot::Valid);
                head += 1;
            }
            assert_eq!(check_owner(ring[(head % 8) as usize], head, n), Slot::Empty);
        }
    }
}
