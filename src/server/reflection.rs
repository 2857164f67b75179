//! Server reflection on the client port, so `grpcurl` and friends list and call the
//! services without the .proto files.

/// Server reflection (v1) for the client port: it describes every file of the contract plus
/// `grpc.health.v1`, and lists the client-port services, the health service and itself, but
/// not the internal RaftService.
pub fn client_port_reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(qlm_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(tonic_health::pb::health_server::SERVICE_NAME)
        .with_service_name(tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME);
    qlm_proto::CLIENT_PORT_SERVICES
        .iter()
        .fold(builder, |b, name| b.with_service_name(*name))
        .build_v1()
}
