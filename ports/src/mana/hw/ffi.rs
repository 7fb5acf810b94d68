//! Hand-written bindings to libibverbs / libmana (rdma-core ≥ 44) and to
//! the C shim (`shim.c`) that exports the verbs calls `verbs.h` defines as
//! `static inline` or as macros.
//!
//! Only what the back-end uses is declared. Every `#[repr(C)]` struct here
//! mirrors the C definition field by field; the tests at the bottom compare
//! each size and field offset with what the C compiler says (through the
//! `vr_sizeof_*` / `vr_offsetof_*` probes in the shim), and each constant
//! with its C value.
// The mirrors are complete C definitions; not every field or constant is
// read from Rust.
#![allow(non_camel_case_types, dead_code)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

// ---- opaque objects ----------------------------------------------------

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}

opaque! {
    /// `struct ibv_context` (only reached through the shim).
    ibv_context;
    /// `struct ibv_pd`.
    ibv_pd;
    /// `struct ibv_cq`.
    ibv_cq;
    /// `struct ibv_qp`.
    ibv_qp;
    /// `struct ibv_wq`.
    ibv_wq;
    /// `struct ibv_rwq_ind_table`.
    ibv_rwq_ind_table;
    /// `struct ibv_srq`.
    ibv_srq;
    /// `struct ibv_xrcd`.
    ibv_xrcd;
    /// `struct ibv_td`.
    ibv_td;
    /// `struct ibv_comp_channel`.
    ibv_comp_channel;
}

// ---- constants (checked against C in the tests) --------------------------

pub const IBV_SYSFS_NAME_MAX: usize = 64;
pub const IBV_SYSFS_PATH_MAX: usize = 256;

pub const IBV_QPT_RAW_PACKET: c_int = 8;
pub const IBV_WQT_RQ: c_int = 0;
pub const IBV_QP_INIT_ATTR_PD: u32 = 1 << 0;
pub const IBV_QP_INIT_ATTR_IND_TABLE: u32 = 1 << 4;
pub const IBV_QP_INIT_ATTR_RX_HASH: u32 = 1 << 5;
pub const IBV_RX_HASH_FUNC_TOEPLITZ: u8 = 1 << 0;
pub const IBV_RX_HASH_SRC_IPV4: u64 = 1 << 0;
pub const IBV_RX_HASH_DST_IPV4: u64 = 1 << 1;
pub const IBV_RX_HASH_SRC_IPV6: u64 = 1 << 2;
pub const IBV_RX_HASH_DST_IPV6: u64 = 1 << 3;
pub const IBV_RX_HASH_SRC_PORT_TCP: u64 = 1 << 4;
pub const IBV_RX_HASH_DST_PORT_TCP: u64 = 1 << 5;
pub const IBV_RX_HASH_SRC_PORT_UDP: u64 = 1 << 6;
pub const IBV_RX_HASH_DST_PORT_UDP: u64 = 1 << 7;
pub const IBV_PARENT_DOMAIN_INIT_ATTR_PD_CONTEXT: u32 = 1 << 1;
pub const IBV_ACCESS_LOCAL_WRITE: c_int = 1;
pub const IBV_EVENT_DEVICE_FATAL: c_int = 8;
pub const IBV_EVENT_PORT_ACTIVE: c_int = 9;
pub const IBV_EVENT_PORT_ERR: c_int = 10;
pub const IBV_LINK_LAYER_ETHERNET: u8 = 2;
pub const IBV_PORT_ACTIVE: c_int = 4;

pub const MANADV_CTX_ATTR_BUF_ALLOCATORS: c_int = 0;
pub const MANADV_OBJ_QP: u64 = 1 << 0;
pub const MANADV_OBJ_CQ: u64 = 1 << 1;
pub const MANADV_OBJ_RWQ: u64 = 1 << 2;

// ---- structs -------------------------------------------------------------

/// `struct ibv_device`.
#[repr(C)]
pub struct ibv_device {
    /// `struct _ibv_device_ops` (two unused function pointers).
    pub _ops: [*mut c_void; 2],
    pub node_type: c_int,
    pub transport_type: c_int,
    pub name: [c_char; IBV_SYSFS_NAME_MAX],
    pub dev_name: [c_char; IBV_SYSFS_NAME_MAX],
    pub dev_path: [c_char; IBV_SYSFS_PATH_MAX],
    pub ibdev_path: [c_char; IBV_SYSFS_PATH_MAX],
}

/// `struct ibv_device_attr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ibv_device_attr {
    pub fw_ver: [c_char; 64],
    pub node_guid: u64,
    pub sys_image_guid: u64,
    pub max_mr_size: u64,
    pub page_size_cap: u64,
    pub vendor_id: u32,
    pub vendor_part_id: u32,
    pub hw_ver: u32,
    pub max_qp: c_int,
    pub max_qp_wr: c_int,
    pub device_cap_flags: c_uint,
    pub max_sge: c_int,
    pub max_sge_rd: c_int,
    pub max_cq: c_int,
    pub max_cqe: c_int,
    pub max_mr: c_int,
    pub max_pd: c_int,
    pub max_qp_rd_atom: c_int,
    pub max_ee_rd_atom: c_int,
    pub max_res_rd_atom: c_int,
    pub max_qp_init_rd_atom: c_int,
    pub max_ee_init_rd_atom: c_int,
    pub atomic_cap: c_int,
    pub max_ee: c_int,
    pub max_rdd: c_int,
    pub max_mw: c_int,
    pub max_raw_ipv6_qp: c_int,
    pub max_raw_ethy_qp: c_int,
    pub max_mcast_grp: c_int,
    pub max_mcast_qp_attach: c_int,
    pub max_total_mcast_qp_attach: c_int,
    pub max_ah: c_int,
    pub max_fmr: c_int,
    pub max_map_per_fmr: c_int,
    pub max_srq: c_int,
    pub max_srq_wr: c_int,
    pub max_srq_sge: c_int,
    pub max_pkeys: u16,
    pub local_ca_ack_delay: u8,
    pub phys_port_cnt: u8,
}

/// `struct ibv_port_attr`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ibv_port_attr {
    pub state: c_int,
    pub max_mtu: c_int,
    pub active_mtu: c_int,
    pub gid_tbl_len: c_int,
    pub port_cap_flags: u32,
    pub max_msg_sz: u32,
    pub bad_pkey_cntr: u32,
    pub qkey_viol_cntr: u32,
    pub pkey_tbl_len: u16,
    pub lid: u16,
    pub sm_lid: u16,
    pub lmc: u8,
    pub max_vl_num: u8,
    pub sm_sl: u8,
    pub subnet_timeout: u8,
    pub init_type_reply: u8,
    pub active_width: u8,
    pub active_speed: u8,
    pub phys_state: u8,
    pub link_layer: u8,
    pub flags: u8,
    pub port_cap_flags2: u16,
}

/// `struct ibv_async_event`. `element` is a union of object pointers and
/// an `int port_num`; only its size matters here.
#[repr(C)]
pub struct ibv_async_event {
    pub element: *mut c_void,
    pub event_type: c_int,
}

/// `struct ibv_mr`.
#[repr(C)]
pub struct ibv_mr {
    pub context: *mut ibv_context,
    pub pd: *mut ibv_pd,
    pub addr: *mut c_void,
    pub length: usize,
    pub handle: u32,
    pub lkey: u32,
    pub rkey: u32,
}

/// `struct ibv_parent_domain_init_attr`.
#[repr(C)]
pub struct ibv_parent_domain_init_attr {
    pub pd: *mut ibv_pd,
    pub td: *mut ibv_td,
    pub comp_mask: u32,
    pub alloc: Option<unsafe extern "C" fn(*mut ibv_pd, *mut c_void, usize, usize, u64) -> *mut c_void>,
    pub free: Option<unsafe extern "C" fn(*mut ibv_pd, *mut c_void, *mut c_void, u64)>,
    pub pd_context: *mut c_void,
}

/// `struct ibv_qp_cap`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ibv_qp_cap {
    pub max_send_wr: u32,
    pub max_recv_wr: u32,
    pub max_send_sge: u32,
    pub max_recv_sge: u32,
    pub max_inline_data: u32,
}

/// `struct ibv_rx_hash_conf`.
#[repr(C)]
pub struct ibv_rx_hash_conf {
    pub rx_hash_function: u8,
    pub rx_hash_key_len: u8,
    pub rx_hash_key: *mut u8,
    pub rx_hash_fields_mask: u64,
}

/// `struct ibv_qp_init_attr_ex`. Its first fields are `struct
/// ibv_qp_init_attr`, which `ibv_create_qp_ex` relies on when only
/// `IBV_QP_INIT_ATTR_PD` is set.
#[repr(C)]
pub struct ibv_qp_init_attr_ex {
    pub qp_context: *mut c_void,
    pub send_cq: *mut ibv_cq,
    pub recv_cq: *mut ibv_cq,
    pub srq: *mut ibv_srq,
    pub cap: ibv_qp_cap,
    pub qp_type: c_int,
    pub sq_sig_all: c_int,
    pub comp_mask: u32,
    pub pd: *mut ibv_pd,
    pub xrcd: *mut ibv_xrcd,
    pub create_flags: u32,
    pub max_tso_header: u16,
    pub rwq_ind_tbl: *mut ibv_rwq_ind_table,
    pub rx_hash_conf: ibv_rx_hash_conf,
    pub source_qpn: u32,
    pub send_ops_flags: u64,
}

impl ibv_qp_init_attr_ex {
    /// All fields zero / null.
    pub fn zeroed() -> Self {
        ibv_qp_init_attr_ex {
            qp_context: std::ptr::null_mut(),
            send_cq: std::ptr::null_mut(),
            recv_cq: std::ptr::null_mut(),
            srq: std::ptr::null_mut(),
            cap: ibv_qp_cap::default(),
            qp_type: 0,
            sq_sig_all: 0,
            comp_mask: 0,
            pd: std::ptr::null_mut(),
            xrcd: std::ptr::null_mut(),
            create_flags: 0,
            max_tso_header: 0,
            rwq_ind_tbl: std::ptr::null_mut(),
            rx_hash_conf: ibv_rx_hash_conf {
                rx_hash_function: 0,
                rx_hash_key_len: 0,
                rx_hash_key: std::ptr::null_mut(),
                rx_hash_fields_mask: 0,
            },
            source_qpn: 0,
            send_ops_flags: 0,
        }
    }
}

/// `struct ibv_wq_init_attr`.
#[repr(C)]
pub struct ibv_wq_init_attr {
    pub wq_context: *mut c_void,
    pub wq_type: c_int,
    pub max_wr: u32,
    pub max_sge: u32,
    pub pd: *mut ibv_pd,
    pub cq: *mut ibv_cq,
    pub comp_mask: u32,
    pub create_flags: u32,
}

/// `struct ibv_rwq_ind_table_init_attr`.
#[repr(C)]
pub struct ibv_rwq_ind_table_init_attr {
    pub log_ind_tbl_size: u32,
    pub ind_tbl: *mut *mut ibv_wq,
    pub comp_mask: u32,
}

/// `struct manadv_ctx_allocators`: queue memory comes from the caller.
#[repr(C)]
pub struct manadv_ctx_allocators {
    pub alloc: Option<unsafe extern "C" fn(usize, *mut c_void) -> *mut c_void>,
    pub free: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    pub data: *mut c_void,
}

/// `struct manadv_qp`.
#[repr(C)]
pub struct manadv_qp {
    pub sq_buf: *mut c_void,
    pub sq_count: u32,
    pub sq_size: u32,
    pub sq_id: u32,
    pub tx_vp_offset: u32,
    pub db_page: *mut c_void,
}

/// `struct manadv_cq`.
#[repr(C)]
pub struct manadv_cq {
    pub buf: *mut c_void,
    pub count: u32,
    pub cq_id: u32,
}

/// `struct manadv_rwq`.
#[repr(C)]
pub struct manadv_rwq {
    pub buf: *mut c_void,
    pub count: u32,
    pub size: u32,
    pub wq_id: u32,
    pub db_page: *mut c_void,
}

/// One `{ in, out }` pair of `struct manadv_obj`.
#[repr(C)]
pub struct manadv_obj_pair<I, O> {
    pub r#in: *mut I,
    pub out: *mut O,
}

/// `struct manadv_obj`.
#[repr(C)]
pub struct manadv_obj {
    pub qp: manadv_obj_pair<ibv_qp, manadv_qp>,
    pub cq: manadv_obj_pair<ibv_cq, manadv_cq>,
    pub rwq: manadv_obj_pair<ibv_wq, manadv_rwq>,
}

impl manadv_obj {
    /// All pointers null.
    pub fn empty() -> Self {
        use std::ptr::null_mut;
        manadv_obj {
            qp: manadv_obj_pair { r#in: null_mut(), out: null_mut() },
            cq: manadv_obj_pair { r#in: null_mut(), out: null_mut() },
            rwq: manadv_obj_pair { r#in: null_mut(), out: null_mut() },
        }
    }
}

/// Mirrors `struct manadv_qp`/`cq`/`rwq` as all-zero values for out-params.
impl Default for manadv_qp {
    fn default() -> Self {
        manadv_qp {
            sq_buf: std::ptr::null_mut(),
            sq_count: 0,
            sq_size: 0,
            sq_id: 0,
            tx_vp_offset: 0,
            db_page: std::ptr::null_mut(),
        }
    }
}

impl Default for manadv_cq {
    fn default() -> Self {
        manadv_cq { buf: std::ptr::null_mut(), count: 0, cq_id: 0 }
    }
}

impl Default for manadv_rwq {
    fn default() -> Self {
        manadv_rwq { buf: std::ptr::null_mut(), count: 0, size: 0, wq_id: 0, db_page: std::ptr::null_mut() }
    }
}

// ---- functions -----------------------------------------------------------

extern "C" {
    // libibverbs, exported symbols (default symbol versions).
    pub fn ibv_get_device_list(num_devices: *mut c_int) -> *mut *mut ibv_device;
    pub fn ibv_free_device_list(list: *mut *mut ibv_device);
    pub fn ibv_open_device(device: *mut ibv_device) -> *mut ibv_context;
    pub fn ibv_close_device(context: *mut ibv_context) -> c_int;
    pub fn ibv_query_device(context: *mut ibv_context, attr: *mut ibv_device_attr) -> c_int;
    pub fn ibv_alloc_pd(context: *mut ibv_context) -> *mut ibv_pd;
    pub fn ibv_dealloc_pd(pd: *mut ibv_pd) -> c_int;
    pub fn ibv_dereg_mr(mr: *mut ibv_mr) -> c_int;
    pub fn ibv_create_cq(
        context: *mut ibv_context,
        cqe: c_int,
        cq_context: *mut c_void,
        channel: *mut ibv_comp_channel,
        comp_vector: c_int,
    ) -> *mut ibv_cq;
    pub fn ibv_destroy_cq(cq: *mut ibv_cq) -> c_int;
    pub fn ibv_destroy_qp(qp: *mut ibv_qp) -> c_int;
    pub fn ibv_get_async_event(context: *mut ibv_context, event: *mut ibv_async_event) -> c_int;
    pub fn ibv_ack_async_event(event: *mut ibv_async_event);

    // libmana.
    pub fn manadv_set_context_attr(context: *mut ibv_context, attr_type: c_int, attr: *mut c_void) -> c_int;
    pub fn manadv_init_obj(obj: *mut manadv_obj, obj_type: u64) -> c_int;

    // shim.c: static-inline / macro verbs.
    pub fn vr_ibv_alloc_parent_domain(context: *mut ibv_context, attr: *mut ibv_parent_domain_init_attr)
        -> *mut ibv_pd;
    pub fn vr_ibv_create_wq(context: *mut ibv_context, attr: *mut ibv_wq_init_attr) -> *mut ibv_wq;
    pub fn vr_ibv_destroy_wq(wq: *mut ibv_wq) -> c_int;
    pub fn vr_ibv_create_rwq_ind_table(
        context: *mut ibv_context,
        attr: *mut ibv_rwq_ind_table_init_attr,
    ) -> *mut ibv_rwq_ind_table;
    pub fn vr_ibv_destroy_rwq_ind_table(table: *mut ibv_rwq_ind_table) -> c_int;
    pub fn vr_ibv_create_qp_ex(context: *mut ibv_context, attr: *mut ibv_qp_init_attr_ex) -> *mut ibv_qp;
    pub fn vr_ibv_query_port(context: *mut ibv_context, port: u8, attr: *mut ibv_port_attr) -> c_int;
    pub fn vr_ibv_reg_mr(pd: *mut ibv_pd, addr: *mut c_void, len: usize, access: c_int) -> *mut ibv_mr;
    pub fn vr_ibv_context_async_fd(context: *const ibv_context) -> c_int;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Declares the shim's probes for one struct and checks the Rust
    /// mirror's size and field offsets against them.
    macro_rules! check_layout {
        ($ty:ty, $size_fn:ident, { $($field:ident => $off_fn:ident),* $(,)? }) => {{
            extern "C" {
                fn $size_fn() -> usize;
                $(fn $off_fn() -> usize;)*
            }
            // SAFETY: the probes take no arguments and only return a
            // compile-time constant.
            let c_size = unsafe { $size_fn() };
            assert_eq!(size_of::<$ty>(), c_size, "sizeof({})", stringify!($ty));
            $(
                // SAFETY: as above.
                let c_off = unsafe { $off_fn() };
                assert_eq!(offset_of!($ty, $field), c_off, "offsetof({}, {})", stringify!($ty), stringify!($field));
            )*
        }};
    }

    macro_rules! check_consts {
        ($($name:ident => $fn:ident),* $(,)?) => {{
            extern "C" {
                $(fn $fn() -> i64;)*
            }
            $(
                // SAFETY: the probe takes no arguments and returns a constant.
                let c = unsafe { $fn() };
                assert_eq!($name as i64, c, "{}", stringify!($name));
            )*
        }};
    }

    #[test]
    fn layout_ibv_device() {
        check_layout!(ibv_device, vr_sizeof_ibv_device, {
            node_type => vr_offsetof_ibv_device__node_type,
            transport_type => vr_offsetof_ibv_device__transport_type,
            name => vr_offsetof_ibv_device__name,
            dev_name => vr_offsetof_ibv_device__dev_name,
            dev_path => vr_offsetof_ibv_device__dev_path,
            ibdev_path => vr_offsetof_ibv_device__ibdev_path,
        });
    }

    #[test]
    fn layout_ibv_device_attr() {
        check_layout!(ibv_device_attr, vr_sizeof_ibv_device_attr, {
            node_guid => vr_offsetof_ibv_device_attr__node_guid,
            max_mr_size => vr_offsetof_ibv_device_attr__max_mr_size,
            vendor_id => vr_offsetof_ibv_device_attr__vendor_id,
            vendor_part_id => vr_offsetof_ibv_device_attr__vendor_part_id,
            max_qp => vr_offsetof_ibv_device_attr__max_qp,
            max_qp_wr => vr_offsetof_ibv_device_attr__max_qp_wr,
            max_sge => vr_offsetof_ibv_device_attr__max_sge,
            max_cq => vr_offsetof_ibv_device_attr__max_cq,
            max_cqe => vr_offsetof_ibv_device_attr__max_cqe,
            max_mr => vr_offsetof_ibv_device_attr__max_mr,
            atomic_cap => vr_offsetof_ibv_device_attr__atomic_cap,
            max_srq_sge => vr_offsetof_ibv_device_attr__max_srq_sge,
            max_pkeys => vr_offsetof_ibv_device_attr__max_pkeys,
            local_ca_ack_delay => vr_offsetof_ibv_device_attr__local_ca_ack_delay,
            phys_port_cnt => vr_offsetof_ibv_device_attr__phys_port_cnt,
        });
    }

    #[test]
    fn layout_ibv_port_attr() {
        check_layout!(ibv_port_attr, vr_sizeof_ibv_port_attr, {
            state => vr_offsetof_ibv_port_attr__state,
            max_mtu => vr_offsetof_ibv_port_attr__max_mtu,
            active_mtu => vr_offsetof_ibv_port_attr__active_mtu,
            gid_tbl_len => vr_offsetof_ibv_port_attr__gid_tbl_len,
            max_msg_sz => vr_offsetof_ibv_port_attr__max_msg_sz,
            pkey_tbl_len => vr_offsetof_ibv_port_attr__pkey_tbl_len,
            lmc => vr_offsetof_ibv_port_attr__lmc,
            active_speed => vr_offsetof_ibv_port_attr__active_speed,
            phys_state => vr_offsetof_ibv_port_attr__phys_state,
            link_layer => vr_offsetof_ibv_port_attr__link_layer,
            flags => vr_offsetof_ibv_port_attr__flags,
            port_cap_flags2 => vr_offsetof_ibv_port_attr__port_cap_flags2,
        });
    }

    #[test]
    fn layout_ibv_async_event() {
        check_layout!(ibv_async_event, vr_sizeof_ibv_async_event, {
            element => vr_offsetof_ibv_async_event__element,
            event_type => vr_offsetof_ibv_async_event__event_type,
        });
    }

    #[test]
    fn layout_ibv_mr() {
        check_layout!(ibv_mr, vr_sizeof_ibv_mr, {
            context => vr_offsetof_ibv_mr__context,
            pd => vr_offsetof_ibv_mr__pd,
            addr => vr_offsetof_ibv_mr__addr,
            length => vr_offsetof_ibv_mr__length,
            handle => vr_offsetof_ibv_mr__handle,
            lkey => vr_offsetof_ibv_mr__lkey,
            rkey => vr_offsetof_ibv_mr__rkey,
        });
    }

    #[test]
    fn layout_ibv_parent_domain_init_attr() {
        check_layout!(ibv_parent_domain_init_attr, vr_sizeof_ibv_parent_domain_init_attr, {
            pd => vr_offsetof_ibv_parent_domain_init_attr__pd,
            td => vr_offsetof_ibv_parent_domain_init_attr__td,
            comp_mask => vr_offsetof_ibv_parent_domain_init_attr__comp_mask,
            alloc => vr_offsetof_ibv_parent_domain_init_attr__alloc,
            free => vr_offsetof_ibv_parent_domain_init_attr__free,
            pd_context => vr_offsetof_ibv_parent_domain_init_attr__pd_context,
        });
    }

    #[test]
    fn layout_ibv_qp_cap_and_hash_conf() {
        check_layout!(ibv_qp_cap, vr_sizeof_ibv_qp_cap, {
            max_send_wr => vr_offsetof_ibv_qp_cap__max_send_wr,
            max_recv_wr => vr_offsetof_ibv_qp_cap__max_recv_wr,
            max_send_sge => vr_offsetof_ibv_qp_cap__max_send_sge,
            max_recv_sge => vr_offsetof_ibv_qp_cap__max_recv_sge,
            max_inline_data => vr_offsetof_ibv_qp_cap__max_inline_data,
        });
        check_layout!(ibv_rx_hash_conf, vr_sizeof_ibv_rx_hash_conf, {
            rx_hash_function => vr_offsetof_ibv_rx_hash_conf__rx_hash_function,
            rx_hash_key_len => vr_offsetof_ibv_rx_hash_conf__rx_hash_key_len,
            rx_hash_key => vr_offsetof_ibv_rx_hash_conf__rx_hash_key,
            rx_hash_fields_mask => vr_offsetof_ibv_rx_hash_conf__rx_hash_fields_mask,
        });
    }

    #[test]
    fn layout_ibv_qp_init_attr_ex() {
        check_layout!(ibv_qp_init_attr_ex, vr_sizeof_ibv_qp_init_attr_ex, {
            qp_context => vr_offsetof_ibv_qp_init_attr_ex__qp_context,
            send_cq => vr_offsetof_ibv_qp_init_attr_ex__send_cq,
            recv_cq => vr_offsetof_ibv_qp_init_attr_ex__recv_cq,
            srq => vr_offsetof_ibv_qp_init_attr_ex__srq,
            cap => vr_offsetof_ibv_qp_init_attr_ex__cap,
            qp_type => vr_offsetof_ibv_qp_init_attr_ex__qp_type,
            sq_sig_all => vr_offsetof_ibv_qp_init_attr_ex__sq_sig_all,
            comp_mask => vr_offsetof_ibv_qp_init_attr_ex__comp_mask,
            pd => vr_offsetof_ibv_qp_init_attr_ex__pd,
            xrcd => vr_offsetof_ibv_qp_init_attr_ex__xrcd,
            create_flags => vr_offsetof_ibv_qp_init_attr_ex__create_flags,
            max_tso_header => vr_offsetof_ibv_qp_init_attr_ex__max_tso_header,
            rwq_ind_tbl => vr_offsetof_ibv_qp_init_attr_ex__rwq_ind_tbl,
            rx_hash_conf => vr_offsetof_ibv_qp_init_attr_ex__rx_hash_conf,
            source_qpn => vr_offsetof_ibv_qp_init_attr_ex__source_qpn,
            send_ops_flags => vr_offsetof_ibv_qp_init_attr_ex__send_ops_flags,
        });
        // With only IBV_QP_INIT_ATTR_PD set, libibverbs hands the struct to
        // the legacy `ibv_create_qp` as a `struct ibv_qp_init_attr`: its
        // fields must sit at the same offsets.
        extern "C" {
            fn vr_offsetof_ibv_qp_init_attr__send_cq() -> usize;
            fn vr_offsetof_ibv_qp_init_attr__recv_cq() -> usize;
            fn vr_offsetof_ibv_qp_init_attr__cap() -> usize;
            fn vr_offsetof_ibv_qp_init_attr__qp_type() -> usize;
            fn vr_offsetof_ibv_qp_init_attr__sq_sig_all() -> usize;
        }
        // SAFETY: constant probes without arguments.
        unsafe {
            assert_eq!(offset_of!(ibv_qp_init_attr_ex, send_cq), vr_offsetof_ibv_qp_init_attr__send_cq());
            assert_eq!(offset_of!(ibv_qp_init_attr_ex, recv_cq), vr_offsetof_ibv_qp_init_attr__recv_cq());
            assert_eq!(offset_of!(ibv_qp_init_attr_ex, cap), vr_offsetof_ibv_qp_init_attr__cap());
            assert_eq!(offset_of!(ibv_qp_init_attr_ex, qp_type), vr_offsetof_ibv_qp_init_attr__qp_type());
            assert_eq!(offset_of!(ibv_qp_init_attr_ex, sq_sig_all), vr_offsetof_ibv_qp_init_attr__sq_sig_all());
        }
    }

    #[test]
    fn layout_wq_and_ind_table_attrs() {
        check_layout!(ibv_wq_init_attr, vr_sizeof_ibv_wq_init_attr, {
            wq_context => vr_offsetof_ibv_wq_init_attr__wq_context,
            wq_type => vr_offsetof_ibv_wq_init_attr__wq_type,
            max_wr => vr_offsetof_ibv_wq_init_attr__max_wr,
            max_sge => vr_offsetof_ibv_wq_init_attr__max_sge,
            pd => vr_offsetof_ibv_wq_init_attr__pd,
            cq => vr_offsetof_ibv_wq_init_attr__cq,
            comp_mask => vr_offsetof_ibv_wq_init_attr__comp_mask,
            create_flags => vr_offsetof_ibv_wq_init_attr__create_flags,
        });
        check_layout!(ibv_rwq_ind_table_init_attr, vr_sizeof_ibv_rwq_ind_table_init_attr, {
            log_ind_tbl_size => vr_offsetof_ibv_rwq_ind_table_init_attr__log_ind_tbl_size,
            ind_tbl => vr_offsetof_ibv_rwq_ind_table_init_attr__ind_tbl,
            comp_mask => vr_offsetof_ibv_rwq_ind_table_init_attr__comp_mask,
        });
    }

    #[test]
    fn layout_manadv() {
        check_layout!(manadv_ctx_allocators, vr_sizeof_manadv_ctx_allocators, {
            alloc => vr_offsetof_manadv_ctx_allocators__alloc,
            free => vr_offsetof_manadv_ctx_allocators__free,
            data => vr_offsetof_manadv_ctx_allocators__data,
        });
        check_layout!(manadv_qp, vr_sizeof_manadv_qp, {
            sq_buf => vr_offsetof_manadv_qp__sq_buf,
            sq_count => vr_offsetof_manadv_qp__sq_count,
            sq_size => vr_offsetof_manadv_qp__sq_size,
            sq_id => vr_offsetof_manadv_qp__sq_id,
            tx_vp_offset => vr_offsetof_manadv_qp__tx_vp_offset,
            db_page => vr_offsetof_manadv_qp__db_page,
        });
        check_layout!(manadv_cq, vr_sizeof_manadv_cq, {
            buf => vr_offsetof_manadv_cq__buf,
            count => vr_offsetof_manadv_cq__count,
            cq_id => vr_offsetof_manadv_cq__cq_id,
        });
        check_layout!(manadv_rwq, vr_sizeof_manadv_rwq, {
            buf => vr_offsetof_manadv_rwq__buf,
            count => vr_offsetof_manadv_rwq__count,
            size => vr_offsetof_manadv_rwq__size,
            wq_id => vr_offsetof_manadv_rwq__wq_id,
            db_page => vr_offsetof_manadv_rwq__db_page,
        });
        check_layout!(manadv_obj, vr_sizeof_manadv_obj, {
            qp => vr_offsetof_manadv_obj__qp_in,
            cq => vr_offsetof_manadv_obj__cq_in,
            rwq => vr_offsetof_manadv_obj__rwq_in,
        });
        extern "C" {
            fn vr_offsetof_manadv_obj__qp_out() -> usize;
            fn vr_offsetof_manadv_obj__cq_out() -> usize;
            fn vr_offsetof_manadv_obj__rwq_out() -> usize;
        }
        let out = offset_of!(manadv_obj_pair<ibv_qp, manadv_qp>, out);
        // SAFETY: constant probes without arguments.
        unsafe {
            assert_eq!(offset_of!(manadv_obj, qp) + out, vr_offsetof_manadv_obj__qp_out());
            assert_eq!(offset_of!(manadv_obj, cq) + out, vr_offsetof_manadv_obj__cq_out());
            assert_eq!(offset_of!(manadv_obj, rwq) + out, vr_offsetof_manadv_obj__rwq_out());
        }
    }

    #[test]
    fn constants_match_headers() {
        check_consts!(
            IBV_QPT_RAW_PACKET => vr_const_IBV_QPT_RAW_PACKET,
            IBV_WQT_RQ => vr_const_IBV_WQT_RQ,
            IBV_QP_INIT_ATTR_PD => vr_const_IBV_QP_INIT_ATTR_PD,
            IBV_QP_INIT_ATTR_IND_TABLE => vr_const_IBV_QP_INIT_ATTR_IND_TABLE,
            IBV_QP_INIT_ATTR_RX_HASH => vr_const_IBV_QP_INIT_ATTR_RX_HASH,
            IBV_RX_HASH_FUNC_TOEPLITZ => vr_const_IBV_RX_HASH_FUNC_TOEPLITZ,
            IBV_RX_HASH_SRC_IPV4 => vr_const_IBV_RX_HASH_SRC_IPV4,
            IBV_RX_HASH_DST_IPV4 => vr_const_IBV_RX_HASH_DST_IPV4,
            IBV_RX_HASH_SRC_IPV6 => vr_const_IBV_RX_HASH_SRC_IPV6,
            IBV_RX_HASH_DST_IPV6 => vr_const_IBV_RX_HASH_DST_IPV6,
            IBV_RX_HASH_SRC_PORT_TCP => vr_const_IBV_RX_HASH_SRC_PORT_TCP,
            IBV_RX_HASH_DST_PORT_TCP => vr_const_IBV_RX_HASH_DST_PORT_TCP,
            IBV_RX_HASH_SRC_PORT_UDP => vr_const_IBV_RX_HASH_SRC_PORT_UDP,
            IBV_RX_HASH_DST_PORT_UDP => vr_const_IBV_RX_HASH_DST_PORT_UDP,
            IBV_PARENT_DOMAIN_INIT_ATTR_PD_CONTEXT => vr_const_IBV_PARENT_DOMAIN_INIT_ATTR_PD_CONTEXT,
            IBV_ACCESS_LOCAL_WRITE => vr_const_IBV_ACCESS_LOCAL_WRITE,
            IBV_EVENT_DEVICE_FATAL => vr_const_IBV_EVENT_DEVICE_FATAL,
            IBV_EVENT_PORT_ACTIVE => vr_const_IBV_EVENT_PORT_ACTIVE,
            IBV_EVENT_PORT_ERR => vr_const_IBV_EVENT_PORT_ERR,
            IBV_LINK_LAYER_ETHERNET => vr_const_IBV_LINK_LAYER_ETHERNET,
            IBV_PORT_ACTIVE => vr_const_IBV_PORT_ACTIVE,
            MANADV_CTX_ATTR_BUF_ALLOCATORS => vr_const_MANADV_CTX_ATTR_BUF_ALLOCATORS,
            MANADV_OBJ_QP => vr_const_MANADV_OBJ_QP,
            MANADV_OBJ_CQ => vr_const_MANADV_OBJ_CQ,
            MANADV_OBJ_RWQ => vr_const_MANADV_OBJ_RWQ,
        );
    }
}
