//! A stand-in node for client tests: LicenseService, StatusService and AdminService backed by
//! one engine behind a mutex (no Raft), on a real port of 127.0.0.1. It counts heartbeats
//! and checkout calls, and can be told to lose the answer of the next checkout after
//! applying it (the "outcome unknown" case a client must retry with the same request id), or
//! to hold that answer back (a client that gives up before it comes).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qlm_engine::{Command, Engine, Handle, Outcome};
use qlm_license::{Policy, Timestamp};
use qlm_proto::convert;
use qlm_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use qlm_proto::v1::license_service_server::{LicenseService, LicenseServiceServer};
use qlm_proto::v1::status_service_server::{StatusService, StatusServiceServer};
use qlm_proto::v1::{self, queue_update::Update};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use qlm_engine::testkit::pool;

/// Session TTL the stand-in gives a session that asks for the default.
pub const DEFAULT_TTL_MS: u64 = 30_000;

/// The admin token the stand-in accepts.
pub const ADMIN_TOKEN: &str = "s3cret";

/// How often a WaitQueued stream looks at the engine.
const WAIT_POLL: Duration = Duration::from_millis(20);

#[derive(Default)]
pub struct StandIn {
    engine: Arc<Mutex<Engine>>,
    /// Session ids handed out, by OpenSession request id (so a retried open gets the same).
    opened: Mutex<HashMap<String, (String, String)>>,
    next_session: AtomicU64,
    /// This node's address, for the leader hint.
    addr: Mutex<String>,
    pub heartbeats: AtomicU64,
    pub checkout_calls: AtomicU64,
    /// When set, the next checkout is applied and then answered UNAVAILABLE.
    pub lose_next_checkout_answer: AtomicBool,
    /// Checkouts to answer UNAVAILABLE after applying them, from now on (0: none).
    pub lose_checkout_answers: AtomicU64,
    /// Milliseconds the next checkout's answer is held back after it is applied (0: none).
    pub delay_next_checkout_answer_ms: AtomicU64,
}

impl StandIn {
    pub fn with_seats(feature: &str, seats: u32) -> StandIn {
        let node = StandIn::default();
        let load =
            Command::LoadLicenses { pools: vec![pool(feature, seats)], policy: Policy::default() };
        assert!(matches!(node.apply(load), Outcome::LicensesLoaded { serving: 1, .. }));
        node
    }

    fn apply(&self, command: Command) -> Outcome {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        self.engine.lock().unwrap().apply(command, Timestamp(now)).outcome
    }

    fn leader(&self) -> Option<v1::LeaderHint> {
        Some(v1::LeaderHint { id: 1, client_addr: self.addr.lock().unwrap().clone() })
    }

    /// Handles of every checkout held now.
    pub fn held(&self) -> Vec<u64> {
        self.engine.lock().unwrap().checkouts().iter().map(|c| c.handle.0).collect()
    }

    /// Sessions still open.
    pub fn live_sessions(&self) -> usize {
        self.engine.lock().unwrap().live_sessions().count()
    }
}

/// Where a handle stands: `Some(Ok(granted))`, `Some(Err(position))` when queued, `None` when
/// neither.
fn handle_state(engine: &Mutex<Engine>, handle: Handle) -> Option<Result<v1::Granted, u32>> {
    convert::queued_handle_state(&engine.lock().unwrap(), handle)
}

/// A running stand-in; dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    pub node: Arc<StandIn>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Running {
    /// `host:port`, as QLM_SERVERS spells it.
    pub fn servers(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `node` on an ephemeral port of 127.0.0.1.
pub async fn start(node: StandIn) -> Running {
    let node = Arc::new(node);
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    *node.addr.lock().unwrap() = addr.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .add_service(LicenseServiceServer::from_arc(node.clone()))
        .add_service(StatusServiceServer::from_arc(node.clone()))
        .add_service(AdminServiceServer::from_arc(node.clone()))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    tokio::spawn(server);
    Running { addr, node, stop: Some(stop) }
}

/// A port of 127.0.0.1 nothing listens on (bound, then closed).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl StandIn {
    /// UNAUTHENTICATED when `secret` is not the session's, as a node answers.
    fn authenticate(&self, session_id: &str, secret: &str) -> Result<(), Status> {
        match self.engine.lock().unwrap().admit(session_id, secret, None) {
            qlm_engine::Admission::WrongSecret => {
                Err(Status::unauthenticated("not the session's secret"))
            }
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl LicenseService for StandIn {
    async fn open_session(
        &self,
        request: Request<v1::OpenSessionRequest>,
    ) -> Result<Response<v1::OpenSessionResponse>, Status> {
        let request = request.into_inner();
        if let Some((session_id, secret)) = self.opened.lock().unwrap().get(&request.request_id) {
            let ttl_ms = self.engine.lock().unwrap().session_ttl_ms(session_id).unwrap_or(0);
            return Ok(Response::new(v1::OpenSessionResponse {
                session_id: session_id.clone(),
                session_secret: secret.clone(),
                ttl_ms,
                heartbeat_interval_ms: ttl_ms / 3,
                leader: self.leader(),
            }));
        }
        let n = self.next_session.fetch_add(1, Ordering::SeqCst) + 1;
        let (session_id, secret) = (format!("s{n}"), format!("secret-of-s{n}"));
        let request_id = request.request_id.clone();
        let command = convert::open_session_command(request, session_id, secret, DEFAULT_TTL_MS);
        let Command::OpenSession { ttl_ms, .. } = command else { unreachable!() };
        match self.apply(command) {
            Outcome::SessionOpened { session_id, secret } => {
                let secret = secret.expose().to_owned();
                if !request_id.is_empty() {
                    let opened = (session_id.clone(), secret.clone());
                    self.opened.lock().unwrap().insert(request_id, opened);
                }
                Ok(Response::new(v1::OpenSessionResponse {
                    session_id,
                    session_secret: secret,
                    ttl_ms,
                    heartbeat_interval_ms: ttl_ms / 3,
                    leader: self.leader(),
                }))
            }
            Outcome::Rejected(rejection) => Err(convert::rejection_status(&rejection)),
            other => Err(Status::internal(format!("{other:?}"))),
        }
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let session_id = &request.get_ref().session_id;
        self.authenticate(session_id, &request.get_ref().session_secret)?;
        let ttl_ms = self.engine.lock().unwrap().session_ttl_ms(session_id);
        let Some(ttl_ms) = ttl_ms else { return Err(Status::not_found("no such session")) };
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(v1::HeartbeatResponse {
            ttl_ms,
            heartbeat_interval_ms: ttl_ms / 3,
            leader: self.leader(),
        }))
    }

    async fn checkout(
        &self,
        request: Request<v1::CheckoutRequest>,
    ) -> Result<Response<v1::CheckoutResponse>, Status> {
        self.checkout_calls.fetch_add(1, Ordering::SeqCst);
        self.authenticate(&request.get_ref().session_id, &request.get_ref().session_secret)?;
        let command = convert::checkout_command(request.into_inner())?;
        let mut response = convert::checkout_response(self.apply(command))?;
        if self.lose_next_checkout_answer.swap(false, Ordering::SeqCst) {
            return Err(Status::unavailable("answer lost on the way back (test)"));
        }
        let lose = self.lose_checkout_answers.load(Ordering::SeqCst);
        if lose > 0 {
            self.lose_checkout_answers.store(lose - 1, Ordering::SeqCst);
            return Err(Status::unavailable("answer lost on the way back (test)"));
        }
        let delay = self.delay_next_checkout_answer_ms.swap(0, Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        response.leader = self.leader();
        Ok(Response::new(response))
    }

    async fn checkin(
        &self,
        request: Request<v1::CheckinRequest>,
    ) -> Result<Response<v1::CheckinResponse>, Status> {
        self.authenticate(&request.get_ref().session_id, &request.get_ref().session_secret)?;
        let command = convert::checkin_command(request.into_inner());
        let mut response = convert::checkin_response(self.apply(command))?;
        response.leader = self.leader();
        Ok(Response::new(response))
    }

    type WaitQueuedStream = ReceiverStream<Result<v1::QueueUpdate, Status>>;

    async fn wait_queued(
        &self,
        request: Request<v1::WaitQueuedRequest>,
    ) -> Result<Response<Self::WaitQueuedStream>, Status> {
        self.authenticate(&request.get_ref().session_id, &request.get_ref().session_secret)?;
        let handle = Handle(request.get_ref().handle);
        if handle_state(&self.engine, handle).is_none() {
            return Err(Status::not_found(format!("handle {handle} is neither queued nor held")));
        }
        let (send, receive) = tokio::sync::mpsc::channel(4);
        let (engine, leader) = (self.engine.clone(), self.leader());
        tokio::spawn(async move {
            let mut last_position = 0;
            loop {
                let update = match handle_state(&engine, handle) {
                    Some(Ok(granted)) => Update::Granted(granted),
                    Some(Err(position)) if position == last_position => {
                        tokio::time::sleep(WAIT_POLL).await;
                        continue;
                    }
                    Some(Err(position)) => {
                        last_position = position;
                        Update::Position(v1::QueuePosition { handle: handle.0, position })
                    }
                    None => Update::Left(v1::Left {
                        handle: handle.0,
                        cause: v1::LeftCause::Cancelled.into(),
                    }),
                };
                let last = !matches!(update, Update::Position(_));
                let message = v1::QueueUpdate { update: Some(update), leader: leader.clone() };
                if send.send(Ok(message)).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receive)))
    }

    async fn close_session(
        &self,
        request: Request<v1::CloseSessionRequest>,
    ) -> Result<Response<v1::CloseSessionResponse>, Status> {
        self.authenticate(&request.get_ref().session_id, &request.get_ref().session_secret)?;
        let command = convert::close_session_command(request.into_inner());
        let mut response = convert::close_session_response(self.apply(command))?;
        response.leader = self.leader();
        Ok(Response::new(response))
    }
}

#[tonic::async_trait]
impl StatusService for StandIn {
    async fn features(
        &self,
        request: Request<v1::FeaturesRequest>,
    ) -> Result<Response<v1::FeaturesResponse>, Status> {
        let mut response = {
            let engine = self.engine.lock().unwrap();
            convert::features_response(&engine, &request.get_ref().feature)
        };
        response.leader = self.leader();
        Ok(Response::new(response))
    }

    async fn checkouts(
        &self,
        request: Request<v1::CheckoutsRequest>,
    ) -> Result<Response<v1::CheckoutsResponse>, Status> {
        let mut response = {
            let engine = self.engine.lock().unwrap();
            convert::checkouts_response(&engine, request.get_ref())
        };
        response.leader = self.leader();
        Ok(Response::new(response))
    }

    async fn cluster(
        &self,
        _: Request<v1::ClusterRequest>,
    ) -> Result<Response<v1::ClusterResponse>, Status> {
        let addr = self.addr.lock().unwrap().clone();
        Ok(Response::new(v1::ClusterResponse {
            node_id: 1,
            applied_index: 7,
            term: 2,
            commit_index: 7,
            last_log_index: 7,
            members: vec![v1::Member {
                id: 1,
                peer_addr: "127.0.0.1:7401".into(),
                client_addr: addr,
                role: v1::MemberRole::Voter.into(),
                applied_index: Some(7),
                matched_index: Some(7),
                lag: Some(0),
                reachable: true,
            }],
            leader: self.leader(),
            state_digest: String::new(),
        }))
    }
}

fn authorize<T>(request: &Request<T>) -> Result<(), Status> {
    let expected = format!("Bearer {ADMIN_TOKEN}");
    match request.metadata().get("authorization").and_then(|v| v.to_str().ok()) {
        Some(given) if given == expected => Ok(()),
        _ => Err(Status::unauthenticated("a valid admin token is required")),
    }
}

#[tonic::async_trait]
impl AdminService for StandIn {
    async fn remove(
        &self,
        request: Request<v1::RemoveRequest>,
    ) -> Result<Response<v1::RemoveResponse>, Status> {
        authorize(&request)?;
        let command = convert::remove_command(request.into_inner())?;
        let mut response = convert::remove_response(self.apply(command))?;
        response.leader = self.leader();
        Ok(Response::new(response))
    }

    async fn reload(
        &self,
        request: Request<v1::ReloadRequest>,
    ) -> Result<Response<v1::ReloadResponse>, Status> {
        authorize(&request)?;
        Ok(Response::new(v1::ReloadResponse {
            applied: true,
            leader: self.leader(),
            ..Default::default()
        }))
    }

    async fn add_node(
        &self,
        request: Request<v1::AddNodeRequest>,
    ) -> Result<Response<v1::AddNodeResponse>, Status> {
        authorize(&request)?;
        Err(Status::failed_precondition("the stand-in is a one-node cluster"))
    }

    async fn remove_node(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        authorize(&request)?;
        Err(Status::failed_precondition("the stand-in is a one-node cluster"))
    }
}
