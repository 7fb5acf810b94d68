//! Compiles the control API protos without a system `protoc`: `protox` parses
//! them into a `FileDescriptorSet`, which is written to `OUT_DIR` (for gRPC
//! reflection) and handed to tonic's prost code generator.

use std::env;
use std::error::Error;
use std::fs;
use std::path::PathBuf;

/// Proto files compiled by this crate, relative to the crate root (which is
/// also the import root).
const PROTOS: &[&str] = &["vrouter/v1/vrouter.proto", "google/rpc/status.proto"];

/// Name of the encoded descriptor set in `OUT_DIR`, see `FILE_DESCRIPTOR_SET`.
const DESCRIPTOR_FILE: &str = "vrouter_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?);
    // The generated `VrouterClient::connect` needs tonic's `channel` feature,
    // which the `client` feature turns on.
    let client = env::var_os("CARGO_FEATURE_CLIENT").is_some();

    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true).open_files(PROTOS)?;

    for file in compiler.files() {
        if let Some(path) = file.path() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");

    fs::write(out_dir.join(DESCRIPTOR_FILE), compiler.encode_file_descriptor_set())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(client)
        // google.rpc.Status comes from tonic-types so that it interoperates
        // with tonic's richer error model.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
