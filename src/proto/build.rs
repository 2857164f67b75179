//! Generates the gRPC code of `proto/quorumlm/v1/*.proto` (tonic 0.14 with prost) and the
//! file descriptor set that server reflection serves.
//!
//! protoc comes from `protoc-bin-vendored`, so a build needs no system protoc. Its path is
//! handed to prost's `Config` rather than through the `PROTOC` environment variable:
//! `std::env::set_var` is unsafe in edition 2024 (docs/DESIGN.md, trap 10).

use std::path::PathBuf;

/// Where the .proto files live; the package path below it is part of every import.
const PROTO_ROOT: &str = "../../proto";

/// Every file of the wire contract, relative to this crate.
const PROTOS: &[&str] = &[
    "../../proto/quorumlm/v1/common.proto",
    "../../proto/quorumlm/v1/license.proto",
    "../../proto/quorumlm/v1/status.proto",
    "../../proto/quorumlm/v1/admin.proto",
    "../../proto/quorumlm/v1/raft.proto",
];

/// The descriptor set's file name in `OUT_DIR`; `lib.rs` includes it by this name.
const DESCRIPTOR_FILE: &str = "quorumlm_v1_descriptor.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join(DESCRIPTOR_FILE))
        .compile_with_config(config, PROTOS, &[PROTO_ROOT])?;
    Ok(())
}
