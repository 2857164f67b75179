//! The generated gRPC contract works with the rest of the tonic 0.14 stack: every service of
//! the .proto files exists under its full name, the descriptor set registers with server
//! reflection, the health reporter runs (docs/DESIGN.md, trap 11), and a client reaches a node that
//! serves them all on one port, answers built by `proto::convert` from a real engine.
//!
//! The node here is the real client services over an in-process node (`qlm_server::testkit`:
//! one engine, no Raft), served as `qlmd` serves its client port.

use qlm_engine::DenialReason;
use qlm_engine::testkit::{T0, pool};
use qlm_license::{Policy, Timestamp};
use qlm_node::node::DEFAULT_SESSION_TTL_MS;
use qlm_proto::convert::denial_reason_from_wire;
use qlm_proto::v1::admin_service_server::AdminServiceServer;
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use qlm_proto::v1::license_service_server::LicenseServiceServer;
use qlm_proto::v1::raft_service_server::RaftServiceServer;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use qlm_proto::v1::status_service_server::StatusServiceServer;
use qlm_proto::v1::{self, checkout_response};
use qlm_proto::{CLIENT_PORT_SERVICES, FILE_DESCRIPTOR_SET};
use qlm_server::admin::AdminServices;
use qlm_server::reflection::client_port_reflection;
use qlm_server::services::{ClientServices, HEARTBEATS_PER_TTL};
use qlm_server::testkit::{InProcessNode, Serving, serve};
use tonic::Code;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

type Services = ClientServices<InProcessNode>;

/// A node serving `seats` seats of `feature`, its clock standing at `T0`.
fn with_seats(feature: &str, seats: u32) -> InProcessNode {
    InProcessNode::at(Timestamp(T0), vec![pool(feature, seats)], Policy::default())
}

#[test]
fn every_service_of_the_contract_has_its_full_name() {
    assert_eq!(
        [
            <LicenseServiceServer<Services> as NamedService>::NAME,
            <StatusServiceServer<Services> as NamedService>::NAME,
            <AdminServiceServer<AdminServices<InProcessNode>> as NamedService>::NAME,
            // The name does not depend on the service under it (the peer port's is qlm_node's).
            <RaftServiceServer<()> as NamedService>::NAME,
        ],
        [
            "quorumlm.v1.LicenseService",
            "quorumlm.v1.StatusService",
            "quorumlm.v1.AdminService",
            "quorumlm.v1.RaftService",
        ]
    );
    assert!(!CLIENT_PORT_SERVICES.contains(&"quorumlm.v1.RaftService"));
}

#[test]
fn the_descriptor_set_registers_with_server_reflection() {
    assert!(!FILE_DESCRIPTOR_SET.is_empty());
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1();
    assert!(v1.is_ok(), "{:?}", v1.err());
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    assert!(v1alpha.is_ok(), "{:?}", v1alpha.err());
    assert!(client_port_reflection().is_ok());
}

#[tokio::test]
async fn a_health_reporter_reports_the_client_port_services() {
    let (reporter, _service) = tonic_health::server::health_reporter();
    reporter.set_serving::<LicenseServiceServer<Services>>().await;
    reporter.set_not_serving::<AdminServiceServer<AdminServices<InProcessNode>>>().await;
}

/// Serves the client-port services, health and reflection over `node` on an ephemeral port;
/// returns a channel to it and the server, which stops when dropped.
async fn start_node(node: InProcessNode) -> (Channel, Serving) {
    let serving = serve(node).await;
    let endpoint = Endpoint::from_shared(format!("http://{}", serving.addr)).unwrap();
    (endpoint.connect().await.unwrap(), serving)
}

#[tokio::test]
async fn a_node_serves_health_and_reflection_beside_the_contract() {
    let (channel, serving) = start_node(InProcessNode::new(Vec::new(), Policy::default())).await;

    let mut health = HealthClient::new(channel.clone());
    for (service, expected) in [
        ("", ServingStatus::Serving),
        ("quorumlm.v1.LicenseService", ServingStatus::Serving),
        ("quorumlm.v1.StatusService", ServingStatus::Serving),
    ] {
        let request = HealthCheckRequest { service: service.into() };
        let status = health.check(request).await.unwrap().into_inner().status;
        assert_eq!(status, expected as i32, "{service}");
    }

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers =
        reflection.server_reflection_info(tokio_stream::iter([list])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(listed)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let mut names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "quorumlm.v1.AdminService",
            "quorumlm.v1.LicenseService",
            "quorumlm.v1.StatusService",
        ]
    );

    let find = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "quorumlm.v1.CheckoutRequest".into(),
        )),
    };
    let mut answers =
        reflection.server_reflection_info(tokio_stream::iter([find])).await.unwrap().into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a file descriptor")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    drop(serving);
}

#[tokio::test]
async fn a_client_checks_out_is_denied_and_checks_in_over_grpc() {
    let (channel, serving) = start_node(with_seats("vhdl", 1)).await;
    let mut license = LicenseServiceClient::new(channel.clone());
    let open = |user: &str| v1::OpenSessionRequest {
        user: user.into(),
        host: "ws1".into(),
        pid: 7,
        display: String::new(),
        ttl_ms: 0,
        request_id: String::new(),
    };
    let ann = license.open_session(open("ann")).await.unwrap().into_inner();
    let ttl_ms = DEFAULT_SESSION_TTL_MS;
    assert_eq!((ann.ttl_ms, ann.heartbeat_interval_ms), (ttl_ms, ttl_ms / HEARTBEATS_PER_TTL));
    let bob = license.open_session(open("bob")).await.unwrap().into_inner();

    let checkout = |session: &v1::OpenSessionResponse, request_id: &str| v1::CheckoutRequest {
        session_id: session.session_id.clone(),
        session_secret: session.session_secret.clone(),
        request_id: request_id.into(),
        feature: "vhdl".into(),
        version: String::new(),
        count: 0,
        wait: false,
        borrow_until_unix_ms: None,
    };
    let granted = license.checkout(checkout(&ann, "r1")).await.unwrap().into_inner();
    assert_eq!(granted.leader.as_ref().map(|l| l.id), Some(1));
    let Some(checkout_response::Result::Granted(grant)) = granted.result else {
        panic!("{granted:?}")
    };
    assert_eq!((grant.feature.as_str(), grant.count, grant.version.as_str()), ("vhdl", 1, "1.0"));

    let retried = license.checkout(checkout(&ann, "r1")).await.unwrap().into_inner();
    assert_eq!(retried.result, Some(checkout_response::Result::Granted(grant.clone())));

    let denied = license.checkout(checkout(&bob, "r1")).await.unwrap().into_inner();
    let Some(checkout_response::Result::Denied(denial)) = denied.result else {
        panic!("{denied:?}")
    };
    assert_eq!(denial_reason_from_wire(denial.reason), Ok(DenialReason::AllInUse));
    assert_eq!(denial.holders.iter().map(|h| h.user.as_str()).collect::<Vec<_>>(), ["ann"]);

    let bad = v1::CheckoutRequest { version: "four".into(), ..checkout(&bob, "r2") };
    let status = license.checkout(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`version`"), "{}", status.message());
    let nobody = v1::OpenSessionResponse {
        session_id: "s-nobody".into(),
        session_secret: "secret-of-s-nobody".into(),
        ..Default::default()
    };
    let nobody = license.checkout(checkout(&nobody, "r1")).await.unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound);

    let mut status = StatusServiceClient::new(channel.clone());
    let held = status.checkouts(v1::CheckoutsRequest::default()).await.unwrap().into_inner();
    assert_eq!(held.checkouts.iter().map(|c| c.handle).collect::<Vec<_>>(), [grant.handle]);

    let checkin = v1::CheckinRequest {
        session_id: ann.session_id.clone(),
        session_secret: ann.session_secret.clone(),
        request_id: "r2".into(),
        handle: grant.handle,
    };
    assert_eq!(license.checkin(checkin).await.unwrap().into_inner().handle, grant.handle);
    let features = status.features(v1::FeaturesRequest::default()).await.unwrap().into_inner();
    assert_eq!(features.features[0].seats_in_use, 0);
    let close = v1::CloseSessionRequest {
        session_id: bob.session_id.clone(),
        session_secret: bob.session_secret.clone(),
    };
    assert!(license.close_session(close).await.unwrap().into_inner().released.is_empty());

    let heartbeat =
        v1::HeartbeatRequest { session_id: ann.session_id, session_secret: ann.session_secret };
    let renewed = license.heartbeat(heartbeat).await.unwrap().into_inner();
    assert_eq!(
        (renewed.ttl_ms, renewed.heartbeat_interval_ms),
        (ttl_ms, ttl_ms / HEARTBEATS_PER_TTL)
    );
    drop(serving);
}
