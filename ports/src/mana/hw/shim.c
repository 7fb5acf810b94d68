/*
 * Exported wrappers around the verbs calls that <infiniband/verbs.h> defines
 * as static inline (or as macros), so that Rust can call them through plain
 * FFI, plus layout probes (sizeof / offsetof / constant values) that the
 * Rust unit tests compare against the hand-written #[repr(C)] mirrors in
 * ffi.rs.
 *
 * Built by ports/build.rs with the `cc` crate only when the `mana-hw` cargo
 * feature is on; linked with -libverbs -lmana.
 */
#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <infiniband/manadv.h>

/* ---- static inline verbs, exported ------------------------------------ */

struct ibv_pd *vr_ibv_alloc_parent_domain(struct ibv_context *ctx, struct ibv_parent_domain_init_attr *attr)
{
	return ibv_alloc_parent_domain(ctx, attr);
}

struct ibv_wq *vr_ibv_create_wq(struct ibv_context *ctx, struct ibv_wq_init_attr *attr)
{
	return ibv_create_wq(ctx, attr);
}

int vr_ibv_destroy_wq(struct ibv_wq *wq)
{
	return ibv_destroy_wq(wq);
}

struct ibv_rwq_ind_table *vr_ibv_create_rwq_ind_table(struct ibv_context *ctx,
						      struct ibv_rwq_ind_table_init_attr *attr)
{
	return ibv_create_rwq_ind_table(ctx, attr);
}

int vr_ibv_destroy_rwq_ind_table(struct ibv_rwq_ind_table *table)
{
	return ibv_destroy_rwq_ind_table(table);
}

struct ibv_qp *vr_ibv_create_qp_ex(struct ibv_context *ctx, struct ibv_qp_init_attr_ex *attr)
{
	return ibv_create_qp_ex(ctx, attr);
}

/* ibv_query_port is a macro that picks the provider's extended entry point. */
int vr_ibv_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr)
{
	return ibv_query_port(ctx, port, attr);
}

/* ibv_reg_mr is a macro choosing between ibv_reg_mr and ibv_reg_mr_iova2. */
struct ibv_mr *vr_ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	return ibv_reg_mr(pd, addr, len, access);
}

/* struct ibv_context embeds the large ibv_context_ops; read the one field we
 * need here instead of mirroring it. */
int vr_ibv_context_async_fd(const struct ibv_context *ctx)
{
	return ctx->async_fd;
}

/* ---- layout probes for the Rust tests ---------------------------------- */

#define VR_SIZEOF(s) \
	size_t vr_sizeof_##s(void) { return sizeof(struct s); }
#define VR_OFFSETOF(s, f) \
	size_t vr_offsetof_##s##__##f(void) { return offsetof(struct s, f); }
#define VR_OFFSETOF2(s, f, g) \
	size_t vr_offsetof_##s##__##f##_##g(void) { return offsetof(struct s, f.g); }
#define VR_CONST(c) \
	long long vr_const_##c(void) { return (long long)(c); }

VR_SIZEOF(ibv_device)
VR_OFFSETOF(ibv_device, node_type)
VR_OFFSETOF(ibv_device, transport_type)
VR_OFFSETOF(ibv_device, name)
VR_OFFSETOF(ibv_device, dev_name)
VR_OFFSETOF(ibv_device, dev_path)
VR_OFFSETOF(ibv_device, ibdev_path)

VR_SIZEOF(ibv_device_attr)
VR_OFFSETOF(ibv_device_attr, node_guid)
VR_OFFSETOF(ibv_device_attr, max_mr_size)
VR_OFFSETOF(ibv_device_attr, vendor_id)
VR_OFFSETOF(ibv_device_attr, vendor_part_id)
VR_OFFSETOF(ibv_device_attr, max_qp)
VR_OFFSETOF(ibv_device_attr, max_qp_wr)
VR_OFFSETOF(ibv_device_attr, max_sge)
VR_OFFSETOF(ibv_device_attr, max_cq)
VR_OFFSETOF(ibv_device_attr, max_cqe)
VR_OFFSETOF(ibv_device_attr, max_mr)
VR_OFFSETOF(ibv_device_attr, atomic_cap)
VR_OFFSETOF(ibv_device_attr, max_srq_sge)
VR_OFFSETOF(ibv_device_attr, max_pkeys)
VR_OFFSETOF(ibv_device_attr, local_ca_ack_delay)
VR_OFFSETOF(ibv_device_attr, phys_port_cnt)

VR_SIZEOF(ibv_port_attr)
VR_OFFSETOF(ibv_port_attr, state)
VR_OFFSETOF(ibv_port_attr, max_mtu)
VR_OFFSETOF(ibv_port_attr, active_mtu)
VR_OFFSETOF(ibv_port_attr, gid_tbl_len)
VR_OFFSETOF(ibv_port_attr, max_msg_sz)
VR_OFFSETOF(ibv_port_attr, pkey_tbl_len)
VR_OFFSETOF(ibv_port_attr, lmc)
VR_OFFSETOF(ibv_port_attr, active_speed)
VR_OFFSETOF(ibv_port_attr, phys_state)
VR_OFFSETOF(ibv_port_attr, link_layer)
VR_OFFSETOF(ibv_port_attr, flags)
VR_OFFSETOF(ibv_port_attr, port_cap_flags2)

VR_SIZEOF(ibv_async_event)
VR_OFFSETOF(ibv_async_event, element)
VR_OFFSETOF(ibv_async_event, event_type)

VR_SIZEOF(ibv_mr)
VR_OFFSETOF(ibv_mr, context)
VR_OFFSETOF(ibv_mr, pd)
VR_OFFSETOF(ibv_mr, addr)
VR_OFFSETOF(ibv_mr, length)
VR_OFFSETOF(ibv_mr, handle)
VR_OFFSETOF(ibv_mr, lkey)
VR_OFFSETOF(ibv_mr, rkey)

VR_SIZEOF(ibv_parent_domain_init_attr)
VR_OFFSETOF(ibv_parent_domain_init_attr, pd)
VR_OFFSETOF(ibv_parent_domain_init_attr, td)
VR_OFFSETOF(ibv_parent_domain_init_attr, comp_mask)
VR_OFFSETOF(ibv_parent_domain_init_attr, alloc)
VR_OFFSETOF(ibv_parent_domain_init_attr, free)
VR_OFFSETOF(ibv_parent_domain_init_attr, pd_context)

VR_SIZEOF(ibv_qp_cap)
VR_OFFSETOF(ibv_qp_cap, max_send_wr)
VR_OFFSETOF(ibv_qp_cap, max_recv_wr)
VR_OFFSETOF(ibv_qp_cap, max_send_sge)
VR_OFFSETOF(ibv_qp_cap, max_recv_sge)
VR_OFFSETOF(ibv_qp_cap, max_inline_data)

VR_SIZEOF(ibv_rx_hash_conf)
VR_OFFSETOF(ibv_rx_hash_conf, rx_hash_function)
VR_OFFSETOF(ibv_rx_hash_conf, rx_hash_key_len)
VR_OFFSETOF(ibv_rx_hash_conf, rx_hash_key)
VR_OFFSETOF(ibv_rx_hash_conf, rx_hash_fields_mask)

VR_SIZEOF(ibv_qp_init_attr)
VR_OFFSETOF(ibv_qp_init_attr, send_cq)
VR_OFFSETOF(ibv_qp_init_attr, recv_cq)
VR_OFFSETOF(ibv_qp_init_attr, cap)
VR_OFFSETOF(ibv_qp_init_attr, qp_type)
VR_OFFSETOF(ibv_qp_init_attr, sq_sig_all)
VR_SIZEOF(ibv_qp_init_attr_ex)
VR_OFFSETOF(ibv_qp_init_attr_ex, qp_context)
VR_OFFSETOF(ibv_qp_init_attr_ex, send_cq)
VR_OFFSETOF(ibv_qp_init_attr_ex, recv_cq)
VR_OFFSETOF(ibv_qp_init_attr_ex, srq)
VR_OFFSETOF(ibv_qp_init_attr_ex, cap)
VR_OFFSETOF(ibv_qp_init_attr_ex, qp_type)
VR_OFFSETOF(ibv_qp_init_attr_ex, sq_sig_all)
VR_OFFSETOF(ibv_qp_init_attr_ex, comp_mask)
VR_OFFSETOF(ibv_qp_init_attr_ex, pd)
VR_OFFSETOF(ibv_qp_init_attr_ex, xrcd)
VR_OFFSETOF(ibv_qp_init_attr_ex, create_flags)
VR_OFFSETOF(ibv_qp_init_attr_ex, max_tso_header)
VR_OFFSETOF(ibv_qp_init_attr_ex, rwq_ind_tbl)
VR_OFFSETOF(ibv_qp_init_attr_ex, rx_hash_conf)
VR_OFFSETOF(ibv_qp_init_attr_ex, source_qpn)
VR_OFFSETOF(ibv_qp_init_attr_ex, send_ops_flags)

VR_SIZEOF(ibv_wq_init_attr)
VR_OFFSETOF(ibv_wq_init_attr, wq_context)
VR_OFFSETOF(ibv_wq_init_attr, wq_type)
VR_OFFSETOF(ibv_wq_init_attr, max_wr)
VR_OFFSETOF(ibv_wq_init_attr, max_sge)
VR_OFFSETOF(ibv_wq_init_attr, pd)
VR_OFFSETOF(ibv_wq_init_attr, cq)
VR_OFFSETOF(ibv_wq_init_attr, comp_mask)
VR_OFFSETOF(ibv_wq_init_attr, create_flags)

VR_SIZEOF(ibv_rwq_ind_table_init_attr)
VR_OFFSETOF(ibv_rwq_ind_table_init_attr, log_ind_tbl_size)
VR_OFFSETOF(ibv_rwq_ind_table_init_attr, ind_tbl)
VR_OFFSETOF(ibv_rwq_ind_table_init_attr, comp_mask)

VR_SIZEOF(manadv_ctx_allocators)
VR_OFFSETOF(manadv_ctx_allocators, alloc)
VR_OFFSETOF(manadv_ctx_allocators, free)
VR_OFFSETOF(manadv_ctx_allocators, data)

VR_SIZEOF(manadv_qp)
VR_OFFSETOF(manadv_qp, sq_buf)
VR_OFFSETOF(manadv_qp, sq_count)
VR_OFFSETOF(manadv_qp, sq_size)
VR_OFFSETOF(manadv_qp, sq_id)
VR_OFFSETOF(manadv_qp, tx_vp_offset)
VR_OFFSETOF(manadv_qp, db_page)

VR_SIZEOF(manadv_cq)
VR_OFFSETOF(manadv_cq, buf)
VR_OFFSETOF(manadv_cq, count)
VR_OFFSETOF(manadv_cq, cq_id)

VR_SIZEOF(manadv_rwq)
VR_OFFSETOF(manadv_rwq, buf)
VR_OFFSETOF(manadv_rwq, count)
VR_OFFSETOF(manadv_rwq, size)
VR_OFFSETOF(manadv_rwq, wq_id)
VR_OFFSETOF(manadv_rwq, db_page)

VR_SIZEOF(manadv_obj)
VR_OFFSETOF2(manadv_obj, qp, in)
VR_OFFSETOF2(manadv_obj, qp, out)
VR_OFFSETOF2(manadv_obj, cq, in)
VR_OFFSETOF2(manadv_obj, cq, out)
VR_OFFSETOF2(manadv_obj, rwq, in)
VR_OFFSETOF2(manadv_obj, rwq, out)

VR_CONST(IBV_QPT_RAW_PACKET)
VR_CONST(IBV_WQT_RQ)
VR_CONST(IBV_QP_INIT_ATTR_PD)
VR_CONST(IBV_QP_INIT_ATTR_IND_TABLE)
VR_CONST(IBV_QP_INIT_ATTR_RX_HASH)
VR_CONST(IBV_RX_HASH_FUNC_TOEPLITZ)
VR_CONST(IBV_RX_HASH_SRC_IPV4)
VR_CONST(IBV_RX_HASH_DST_IPV4)
VR_CONST(IBV_RX_HASH_SRC_IPV6)
VR_CONST(IBV_RX_HASH_DST_IPV6)
VR_CONST(IBV_RX_HASH_SRC_PORT_TCP)
VR_CONST(IBV_RX_HASH_DST_PORT_TCP)
VR_CONST(IBV_RX_HASH_SRC_PORT_UDP)
VR_CONST(IBV_RX_HASH_DST_PORT_UDP)
VR_CONST(IBV_PARENT_DOMAIN_INIT_ATTR_PD_CONTEXT)
VR_CONST(IBV_ACCESS_LOCAL_WRITE)
VR_CONST(IBV_EVENT_DEVICE_FATAL)
VR_CONST(IBV_EVENT_PORT_ACTIVE)
VR_CONST(IBV_EVENT_PORT_ERR)
VR_CONST(IBV_LINK_LAYER_ETHERNET)
VR_CONST(IBV_PORT_ACTIVE)
VR_CONST(MANADV_CTX_ATTR_BUF_ALLOCATORS)
VR_CONST(MANADV_OBJ_QP)
VR_CONST(MANADV_OBJ_CQ)
VR_CONST(MANADV_OBJ_RWQ)
