//! The gRPC wire contract: code generated from `proto/quorumlm/v1/*.proto`, and the
//! conversions between it and the engine's types.
//!
//! The .proto files are the contract (documented field by field, for clients in any
//! language); this module only brings the generated Rust into the crate:
//!
//! - [`v1`]: messages, enums, and for each service a `*_server` module (the trait a node
//!   implements and the tonic service that wraps it) and a `*_client` module.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of every file, for gRPC server
//!   reflection (`grpcurl` and friends list and call the services without the .proto files).
//! - [`convert`]: wire requests into engine commands, engine outcomes and views into wire
//!   messages, and the one table from failures to gRPC status codes.

pub mod convert;
pub mod validate;

/// Generated code, in a module tree that mirrors the protobuf package `quorumlm.v1`.
pub mod quorumlm {
    /// Package `quorumlm.v1`: every message, enum and service of the wire contract.
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("quorumlm.v1");
    }
}

pub use quorumlm::v1;

/// The encoded `FileDescriptorSet` of every .proto file of the contract, for
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/quorumlm_v1_descriptor.bin"));

/// The services of the contract a node serves on its client port, by full name. RaftService
/// is not among them: it is served on the peer port only.
pub const CLIENT_PORT_SERVICES: [&str; 3] = [
    v1::license_service_server::SERVICE_NAME,
    v1::status_service_server::SERVICE_NAME,
    v1::admin_service_server::SERVICE_NAME,
];
