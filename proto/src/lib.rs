//! vrouter control API: the protobuf definitions in `vrouter/v1/*.proto`,
//! compiled with prost + tonic (no system `protoc` needed), plus small helpers.
//!
//! * [`vrouter::v1`] holds the messages, the server
//!   ([`vrouter::v1::vrouter_server::VrouterServer`] /
//!   [`vrouter::v1::vrouter_server::Vrouter`]) and the client
//!   ([`vrouter::v1::vrouter_client::VrouterClient`]).
//! * [`google::rpc::Status`] is the standard rich error payload (from
//!   `tonic-types`).
//! * [`FILE_DESCRIPTOR_SET`] feeds gRPC reflection.
//! * `connect_unix` (feature `client`, on by default) opens a client
//!   channel over a Unix domain socket.

/// Package `vrouter.*`.
pub mod vrouter {
    /// Package `vrouter.v1`: version 1 of the control API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("vrouter.v1");
    }
}

/// Package `google.*`: the Google API types the control API may use.
pub mod google {
    /// Package `google.rpc`.
    pub mod rpc {
        pub use tonic_types::pb::Status;
    }
}

/// Version of the control API defined by this crate (semver). A daemon
/// reports it in `CapabilitiesResponse.api_version`.
pub const API_VERSION: &str = "1.0.0-alpha";

/// Fully qualified name of the control service, as seen by gRPC reflection and
/// health checking.
pub const SERVICE_NAME: &str = vrouter::v1::vrouter_server::SERVICE_NAME;

/// Encoded `google.protobuf.FileDescriptorSet` of every proto file of this
/// crate and their imports (with source comments), for gRPC reflection, e.g.
/// `tonic_reflection::server::Builder::configure()
/// .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vrouter_descriptor.bin"));

#[cfg(all(feature = "client", unix))]
mod client;
#[cfg(all(feature = "client", unix))]
pub use client::connect_unix;
