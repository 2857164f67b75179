//! The generated gRPC contract works with the rest of the tonic 0.14 stack: every service of
//! the .proto files exists under its full name, the descriptor set registers with server
//! reflection, the health reporter runs (docs/DESIGN.md, trap 11), and a client reaches a node that
//! serves them all on one port, answers built by `proto::convert` from a real engine.
//!
//! The node here is a test stand-in (one engine behind a mutex, no Raft); the real services
//! live in `src/server/`.

use std::sync::Mutex;

use qlm_engine::DenialReason;
use qlm_engine::testkit::{T0, pool};
use qlm_engine::{Command, Engine, Outcome};
use qlm_license::{Policy, Timestamp};
use qlm_proto::convert::{self, denial_reason_from_wire};
use qlm_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use qlm_proto::v1::license_service_server::{LicenseService, LicenseServiceServer};
use qlm_proto::v1::raft_service_server::{RaftService, RaftServiceServer};
use qlm_proto::v1::status_service_client::StatusServiceClient;
use qlm_proto::v1::status_service_server::{StatusService, StatusServiceServer};
use qlm_proto::v1::{self, checkout_response};
use qlm_proto::{CLIENT_PORT_SERVICES, FILE_DESCRIPTOR_SET};
use qlm_server::reflection::client_port_reflection;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// Session TTL the stand-in gives a session that asks for the default.
const DEFAULT_TTL_MS: u64 = 30_000;

/// A node without Raft: one engine, every command applied at once at `T0`.
#[derive(Default)]
struct TestNode {
    engine: Mutex<Engine>,
}

impl TestNode {
    fn with_seats(feature: &str, seats: u32) -> TestNode {
        let node = TestNode::default();
        let load =
            Command::LoadLicenses { pools: vec![pool(feature, seats)], policy: Policy::default() };
        assert!(matches!(node.apply(load), Outcome::LicensesLoaded { serving: 1, .. }));
        node
    }

    fn apply(&self, command: Command) -> Outcome {
        self.engine.lock().unwrap().apply(command, Timestamp(T0)).outcome
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test node"))
}

#[tonic::async_trait]
impl LicenseService for TestNode {
    async fn open_session(
        &self,
        request: Request<v1::OpenSessionRequest>,
    ) -> Result<Response<v1::OpenSessionResponse>, Status> {
        let request = request.into_inner();
        let session_id = format!("s-{}-{}", request.user, request.pid);
        let secret = format!("secret-of-{session_id}");
        let command = convert::open_session_command(request, session_id, secret, DEFAULT_TTL_MS);
        let Command::OpenSession { ttl_ms, .. } = command else { unreachable!() };
        match self.apply(command) {
            Outcome::SessionOpened { session_id, secret } => {
                Ok(Response::new(v1::OpenSessionResponse {
                    session_id,
                    session_secret: secret.expose().to_owned(),
                    ttl_ms,
                    heartbeat_interval_ms: ttl_ms / 3,
                    leader: None,
                }))
            }
            Outcome::Rejected(rejection) => Err(convert::rejection_status(&rejection)),
            other => Err(Status::internal(format!("{other:?}"))),
        }
    }

    async fn heartbeat(
        &self,
        _: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        unimplemented()
    }

    async fn checkout(
        &self,
        request: Request<v1::CheckoutRequest>,
    ) -> Result<Response<v1::CheckoutResponse>, Status> {
        let command = convert::checkout_command(request.into_inner())?;
        let mut response = convert::checkout_response(self.apply(command))?;
        response.leader = Some(v1::LeaderHint { id: 1, client_addr: "node1:7400".into() });
        Ok(Response::new(response))
    }

    async fn checkin(
        &self,
        request: Request<v1::CheckinRequest>,
    ) -> Result<Response<v1::CheckinResponse>, Status> {
        let command = convert::checkin_command(request.into_inner());
        Ok(Response::new(convert::checkin_response(self.apply(command))?))
    }

    type WaitQueuedStream = tokio_stream::Empty<Result<v1::QueueUpdate, Status>>;

    async fn wait_queued(
        &self,
        _: Request<v1::WaitQueuedRequest>,
    ) -> Result<Response<Self::WaitQueuedStream>, Status> {
        unimplemented()
    }

    async fn close_session(
        &self,
        request: Request<v1::CloseSessionRequest>,
    ) -> Result<Response<v1::CloseSessionResponse>, Status> {
        let command = convert::close_session_command(request.into_inner());
        Ok(Response::new(convert::close_session_response(self.apply(command))?))
    }
}

#[tonic::async_trait]
impl StatusService for TestNode {
    async fn features(
        &self,
        request: Request<v1::FeaturesRequest>,
    ) -> Result<Response<v1::FeaturesResponse>, Status> {
        let engine = self.engine.lock().unwrap();
        Ok(Response::new(convert::features_response(&engine, &request.get_ref().feature)))
    }

    async fn checkouts(
        &self,
        request: Request<v1::CheckoutsRequest>,
    ) -> Result<Response<v1::CheckoutsResponse>, Status> {
        let engine = self.engine.lock().unwrap();
        Ok(Response::new(convert::checkouts_response(&engine, request.get_ref())))
    }

    async fn cluster(
        &self,
        _: Request<v1::ClusterRequest>,
    ) -> Result<Response<v1::ClusterResponse>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl AdminService for TestNode {
    async fn remove(
        &self,
        _: Request<v1::RemoveRequest>,
    ) -> Result<Response<v1::RemoveResponse>, Status> {
        unimplemented()
    }

    async fn reload(
        &self,
        _: Request<v1::ReloadRequest>,
    ) -> Result<Response<v1::ReloadResponse>, Status> {
        unimplemented()
    }

    async fn add_node(
        &self,
        _: Request<v1::AddNodeRequest>,
    ) -> Result<Response<v1::AddNodeResponse>, Status> {
        unimplemented()
    }

    async fn remove_node(
        &self,
        _: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl RaftService for TestNode {
    async fn append_entries(
        &self,
        _: Request<v1::RaftRequest>,
    ) -> Result<Response<v1::RaftResponse>, Status> {
        unimplemented()
    }

    async fn vote(
        &self,
        _: Request<v1::RaftRequest>,
    ) -> Result<Response<v1::RaftResponse>, Status> {
        unimplemented()
    }

    async fn install_snapshot(
        &self,
        _: Request<v1::RaftRequest>,
    ) -> Result<Response<v1::RaftResponse>, Status> {
        unimplemented()
    }

    async fn forward(
        &self,
        _: Request<v1::ForwardRequest>,
    ) -> Result<Response<v1::ForwardResponse>, Status> {
        unimplemented()
    }

    async fn renew(
        &self,
        _: Request<v1::RenewRequest>,
    ) -> Result<Response<v1::RenewResponse>, Status> {
        unimplemented()
    }

    async fn read_index(
        &self,
        _: Request<v1::ReadIndexRequest>,
    ) -> Result<Response<v1::ReadIndexResponse>, Status> {
        unimplemented()
    }

    async fn cluster_view(
        &self,
        _: Request<v1::ClusterViewRequest>,
    ) -> Result<Response<v1::ClusterResponse>, Status> {
        unimplemented()
    }

    async fn hello(
        &self,
        _: Request<v1::HelloRequest>,
    ) -> Result<Response<v1::HelloResponse>, Status> {
        unimplemented()
    }
}

#[test]
fn every_service_of_the_contract_has_its_full_name() {
    assert_eq!(
        [
            <LicenseServiceServer<TestNode> as NamedService>::NAME,
            <StatusServiceServer<TestNode> as NamedService>::NAME,
            <AdminServiceServer<TestNode> as NamedService>::NAME,
            <RaftServiceServer<TestNode> as NamedService>::NAME,
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
    reporter.set_serving::<LicenseServiceServer<TestNode>>().await;
    reporter.set_not_serving::<AdminServiceServer<TestNode>>().await;
}

/// Serves the client-port services, health and reflection on an ephemeral port; returns a
/// channel to it and the sender that stops it.
async fn start_node(node: TestNode) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let node = std::sync::Arc::new(node);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<LicenseServiceServer<TestNode>>().await;
    reporter.set_serving::<StatusServiceServer<TestNode>>().await;
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .add_service(health)
        .add_service(client_port_reflection().unwrap())
        .add_service(LicenseServiceServer::from_arc(node.clone()))
        .add_service(StatusServiceServer::from_arc(node.clone()))
        .add_service(AdminServiceServer::from_arc(node))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    tokio::spawn(server);
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    (channel, stop)
}

#[tokio::test]
async fn a_node_serves_health_and_reflection_beside_the_contract() {
    let (channel, stop) = start_node(TestNode::default()).await;

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

    stop.send(()).unwrap();
}

#[tokio::test]
async fn a_client_checks_out_is_denied_and_checks_in_over_grpc() {
    let (channel, stop) = start_node(TestNode::with_seats("vhdl", 1)).await;
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
    assert_eq!((ann.ttl_ms, ann.heartbeat_interval_ms), (DEFAULT_TTL_MS, DEFAULT_TTL_MS / 3));
    let bob = license.open_session(open("bob")).await.unwrap().into_inner();

    let checkout = |session_id: &str, request_id: &str| v1::CheckoutRequest {
        session_id: session_id.into(),
        session_secret: format!("secret-of-{session_id}"),
        request_id: request_id.into(),
        feature: "vhdl".into(),
        version: String::new(),
        count: 0,
        wait: false,
        borrow_until_unix_ms: None,
    };
    let granted = license.checkout(checkout(&ann.session_id, "r1")).await.unwrap().into_inner();
    assert_eq!(granted.leader.as_ref().map(|l| l.id), Some(1));
    let Some(checkout_response::Result::Granted(grant)) = granted.result else {
        panic!("{granted:?}")
    };
    assert_eq!((grant.feature.as_str(), grant.count, grant.version.as_str()), ("vhdl", 1, "1.0"));

    let retried = license.checkout(checkout(&ann.session_id, "r1")).await.unwrap().into_inner();
    assert_eq!(retried.result, Some(checkout_response::Result::Granted(grant.clone())));

    let denied = license.checkout(checkout(&bob.session_id, "r1")).await.unwrap().into_inner();
    let Some(checkout_response::Result::Denied(denial)) = denied.result else {
        panic!("{denied:?}")
    };
    assert_eq!(denial_reason_from_wire(denial.reason), Ok(DenialReason::AllInUse));
    assert_eq!(denial.holders.iter().map(|h| h.user.as_str()).collect::<Vec<_>>(), ["ann"]);

    let bad = v1::CheckoutRequest { version: "four".into(), ..checkout(&bob.session_id, "r2") };
    let status = license.checkout(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`version`"), "{}", status.message());
    let nobody = license.checkout(checkout("s-nobody", "r1")).await.unwrap_err();
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
    assert_eq!(license.heartbeat(heartbeat).await.unwrap_err().code(), Code::Unimplemented);
    stop.send(()).unwrap();
}
