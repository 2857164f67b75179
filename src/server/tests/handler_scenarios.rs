//! Scenarios of the real client-port handlers over an in-process node whose clock stands still
//! (`qlm_server::testkit`): each is a script of requests, one a line, with the answer expected
//! after `->`. The handlers are called directly, without a port, so every answer is the same
//! on every run.
//!
//! A step is `<who>: <request>` for a client's request (`who` names the session it opened)
//! or the admin's (`admin: ...`), or a bare `<command>` for the node or its clock:
//!
//! - `<who>: open [ttl=<ms>] [pid=<n>] [id=<request id>]`
//! - `<who>: checkout <feature> <request id> [count=<n>] [wait] [secret=<secret>]`
//! - `<who>: checkin <handle> <request id>`, `<who>: heartbeat`, `<who>: close`
//! - `<who>: wait-queued <handle>` (the stream's first update), `<who>: next <handle>` (its next)
//! - `admin: remove user=<user> [token=<token>]`, `admin: reload`, `admin: add-node <id>`,
//!   `admin: remove-node <id>`
//! - `advance <ms>`, `expire`, `features`, `proposed`

use std::collections::HashMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status};

use qlm_engine::testkit::{T0, pool};
use qlm_license::{Policy, Timestamp};
use qlm_proto::v1::admin_service_server::AdminService;
use qlm_proto::v1::license_service_server::LicenseService;
use qlm_proto::v1::status_service_server::StatusService;
use qlm_proto::v1::{self, checkout_response, queue_update};
use qlm_server::admin::AdminServices;
use qlm_server::services::ClientServices;
use qlm_server::testkit::{ADMIN_TOKEN, InProcessNode};

type Updates = Pin<Box<dyn Stream<Item = Result<v1::QueueUpdate, Status>> + Send>>;

/// A script's state: the services over one node, and what the clients hold.
struct Script {
    node: Arc<InProcessNode>,
    services: ClientServices<InProcessNode>,
    admin: AdminServices<InProcessNode>,
    /// Each client's session, by the name the script gives it.
    sessions: HashMap<String, v1::OpenSessionResponse>,
    /// WaitQueued streams, by handle.
    streams: HashMap<u64, Updates>,
}

/// Runs `script` against a node serving `seats` seats of `feature` at `T0`; fails with the
/// whole transcript, each wrong answer marked, when an answer is not the one expected.
async fn run(feature: &str, seats: u32, script: &str) {
    let node = InProcessNode::at(Timestamp(T0), vec![pool(feature, seats)], Policy::default());
    let node = Arc::new(node);
    let services = ClientServices { node: node.clone(), client_addr: "127.0.0.1:7400".into() };
    let admin = AdminServices { services: services.clone(), token: Some(ADMIN_TOKEN.into()) };
    let mut state =
        Script { node, services, admin, sessions: HashMap::new(), streams: HashMap::new() };
    let mut transcript = String::new();
    let mut wrong = false;
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (step, expected) = line.split_once("->").expect("a step is `request -> answer`");
        let (step, expected) = (step.trim(), expected.trim());
        let answer = state.step(step).await;
        write!(transcript, "{step} -> {answer}").unwrap();
        if answer != expected {
            wrong = true;
            write!(transcript, "    <- expected: {expected}").unwrap();
        }
        transcript.push('\n');
    }
    assert!(!wrong, "the scenario went otherwise:\n{transcript}");
}

/// `key=value` options and bare flags after a step's positional words.
struct Options<'a>(Vec<&'a str>);

impl<'a> Options<'a> {
    fn value(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.value(key).map(|v| v.parse().expect("a number"))
    }

    fn flag(&self, flag: &str) -> bool {
        self.0.contains(&flag)
    }
}

fn error(status: Status) -> String {
    format!("error {:?}", status.code())
}

impl Script {
    async fn step(&mut self, step: &str) -> String {
        let (who, request) = match step.split_once(':') {
            Some((who, request)) => (who.trim(), request.trim()),
            None => ("", step),
        };
        let words: Vec<&str> = request.split_whitespace().collect();
        let options = Options(words.clone());
        let number = |i: usize| -> u64 { words[i].parse().expect("a number") };
        match (who, words[0]) {
            ("", "advance") => {
                self.node.advance(Duration::from_millis(number(1)));
                "ok".into()
            }
            ("", "expire") => match self.node.expire_silent().await {
                Ok(expired) => format!("expired {expired}"),
                Err(status) => error(status),
            },
            ("", "proposed") => format!("{} checkouts proposed", self.node.checkout_proposals()),
            ("", "features") => self.features().await,
            ("admin", _) => self.admin(&words, &options).await,
            (who, "open") => self.open(who, &options).await,
            (who, "checkout") => self.checkout(who, words[1], words[2], &options).await,
            (who, "checkin") => {
                let session = &self.sessions[who];
                let request = v1::CheckinRequest {
                    session_id: session.session_id.clone(),
                    session_secret: session.session_secret.clone(),
                    request_id: words[2].into(),
                    handle: number(1),
                };
                match self.services.checkin(Request::new(request)).await {
                    Ok(answer) => format!("checked in handle={}", answer.into_inner().handle),
                    Err(status) => error(status),
                }
            }
            (who, "heartbeat") => {
                let session = &self.sessions[who];
                let request = v1::HeartbeatRequest {
                    session_id: session.session_id.clone(),
                    session_secret: session.session_secret.clone(),
                };
                match self.services.heartbeat(Request::new(request)).await {
                    Ok(answer) => format!("renewed ttl={}", answer.into_inner().ttl_ms),
                    Err(status) => error(status),
                }
            }
            (who, "close") => {
                let session = &self.sessions[who];
                let request = v1::CloseSessionRequest {
                    session_id: session.session_id.clone(),
                    session_secret: session.session_secret.clone(),
                };
                match self.services.close_session(Request::new(request)).await {
                    Ok(answer) => format!("closed released={:?}", answer.into_inner().released),
                    Err(status) => error(status),
                }
            }
            (who, "wait-queued") => {
                let session = &self.sessions[who];
                let request = v1::WaitQueuedRequest {
                    session_id: session.session_id.clone(),
                    session_secret: session.session_secret.clone(),
                    handle: number(1),
                };
                match self.services.wait_queued(Request::new(request)).await {
                    Ok(stream) => {
                        self.streams.insert(number(1), stream.into_inner());
                        self.next_update(number(1)).await
                    }
                    Err(status) => error(status),
                }
            }
            (_, "next") => self.next_update(number(1)).await,
            _ => panic!("no such step: {step}"),
        }
    }

    async fn open(&mut self, who: &str, options: &Options<'_>) -> String {
        let request = v1::OpenSessionRequest {
            user: who.into(),
            host: "ws1".into(),
            pid: u32::try_from(options.number("pid").unwrap_or(100)).expect("a pid"),
            display: String::new(),
            ttl_ms: options.number("ttl").unwrap_or(0),
            request_id: options.value("id").unwrap_or_default().into(),
        };
        match self.services.open_session(Request::new(request)).await {
            Ok(answer) => {
                let answer = answer.into_inner();
                let mut said = format!(
                    "opened ttl={} interval={}",
                    answer.ttl_ms, answer.heartbeat_interval_ms
                );
                // A session id made from a request id is the same on every run.
                if options.value("id").is_some() {
                    write!(said, " session={}", &answer.session_id[..8]).unwrap();
                }
                self.sessions.insert(who.into(), answer);
                said
            }
            Err(status) => error(status),
        }
    }

    async fn checkout(
        &mut self,
        who: &str,
        feature: &str,
        request_id: &str,
        options: &Options<'_>,
    ) -> String {
        let session = &self.sessions[who];
        let request = v1::CheckoutRequest {
            session_id: session.session_id.clone(),
            session_secret: options.value("secret").unwrap_or(&session.session_secret).into(),
            request_id: request_id.into(),
            feature: feature.into(),
            version: String::new(),
            count: u32::try_from(options.number("count").unwrap_or(0)).expect("a count"),
            wait: options.flag("wait"),
            borrow_until_unix_ms: None,
        };
        let answer = match self.services.checkout(Request::new(request)).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => return error(status),
        };
        match answer.result {
            Some(checkout_response::Result::Granted(granted)) => granted_line(&granted),
            Some(checkout_response::Result::Queued(queued)) => {
                format!("queued handle={} position={}", queued.handle, queued.position)
            }
            Some(checkout_response::Result::Denied(denied)) => denied_line(&denied),
            Some(checkout_response::Result::Left(left)) => left_line(&left),
            None => "no result".into(),
        }
    }

    async fn next_update(&mut self, handle: u64) -> String {
        let stream = self.streams.get_mut(&handle).expect("wait-queued before next");
        let update = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        match update {
            Err(_) => "no update within 5 s".into(),
            Ok(None) => "stream ended".into(),
            Ok(Some(Err(status))) => error(status),
            Ok(Some(Ok(update))) => match update.update {
                Some(queue_update::Update::Position(p)) => format!("position {}", p.position),
                Some(queue_update::Update::Granted(granted)) => granted_line(&granted),
                Some(queue_update::Update::Left(left)) => left_line(&left),
                Some(queue_update::Update::Denied(denied)) => denied_line(&denied),
                None => "empty update".into(),
            },
        }
    }

    async fn features(&self) -> String {
        let request = v1::FeaturesRequest::default();
        let answer = match self.services.features(Request::new(request)).await {
            Ok(answer) => answer.into_inner(),
            Err(status) => return error(status),
        };
        let features = answer.features.iter().map(|f| {
            format!("{} {}/{} queued={}", f.name, f.seats_in_use, f.seats_serving, f.queued)
        });
        features.collect::<Vec<_>>().join("; ")
    }

    async fn admin(&self, words: &[&str], options: &Options<'_>) -> String {
        let token = options.value("token").unwrap_or(ADMIN_TOKEN);
        let admin = &self.admin;
        match words[0] {
            "remove" => {
                let user = options.value("user").expect("remove user=<user>").into();
                let holder = v1::HolderSelector { user, ..Default::default() };
                let target = Some(v1::remove_request::Target::Holder(holder));
                let request = authorized(v1::RemoveRequest { target }, token);
                match admin.remove(request).await {
                    Ok(answer) => format!("removed {:?}", answer.into_inner().released),
                    Err(status) => error(status),
                }
            }
            "reload" => match admin.reload(authorized(v1::ReloadRequest {}, token)).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    format!("reloaded pools={} retired={}", answer.pools.len(), answer.retired)
                }
                Err(status) => error(status),
            },
            "add-node" => {
                let request = v1::AddNodeRequest {
                    id: words[1].parse().expect("a node id"),
                    peer_addr: "127.0.0.1:7401".into(),
                    client_addr: String::new(),
                    learner_only: false,
                };
                match admin.add_node(authorized(request, token)).await {
                    Ok(answer) => format!("members {}", answer.into_inner().members.len()),
                    Err(status) => error(status),
                }
            }
            "remove-node" => {
                let request = v1::RemoveNodeRequest { id: words[1].parse().expect("a node id") };
                match admin.remove_node(authorized(request, token)).await {
                    Ok(answer) => format!("members {}", answer.into_inner().members.len()),
                    Err(status) => error(status),
                }
            }
            other => panic!("no such admin step: {other}"),
        }
    }
}

/// `message` with the admin token `token` in its metadata, as `qlm admin` sends it.
fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().expect("a metadata value");
    request.metadata_mut().insert("authorization", value);
    request
}

fn denied_line(denied: &v1::Denied) -> String {
    let reason =
        v1::DenialReason::try_from(denied.reason).map_or("unknown reason", |r| r.as_str_name());
    let holders: Vec<&str> = denied.holders.iter().map(|h| h.user.as_str()).collect();
    format!("denied {reason} holders={}", holders.join(","))
}

fn left_line(left: &v1::Left) -> String {
    let cause = v1::LeftCause::try_from(left.cause).map_or("unknown cause", |c| c.as_str_name());
    format!("left {cause}")
}

fn granted_line(granted: &v1::Granted) -> String {
    format!("granted handle={} count={}", granted.handle, granted.count)
}

#[tokio::test]
async fn a_wrong_secret_is_refused_before_anything_is_proposed() {
    run(
        "vhdl",
        1,
        "
        ann: open -> opened ttl=30000 interval=10000
        ann: checkout vhdl r1 secret=guess -> error Unauthenticated
        proposed -> 0 checkouts proposed
        features -> vhdl 0/1 queued=0
        ann: checkout vhdl r1 -> granted handle=1 count=1
        proposed -> 1 checkouts proposed
        ann: heartbeat -> renewed ttl=30000
        ",
    )
    .await;
}

#[tokio::test]
async fn a_retried_request_id_gets_the_same_grant_and_a_reused_one_is_refused() {
    run(
        "vhdl",
        2,
        "
        ann: open -> opened ttl=30000 interval=10000
        ann: checkout vhdl r1 -> granted handle=1 count=1
        ann: checkout vhdl r1 -> granted handle=1 count=1
        features -> vhdl 1/2 queued=0
        ann: checkout vhdl r1 count=2 -> error InvalidArgument
        ann: checkout vhdl r2 -> granted handle=2 count=1
        features -> vhdl 2/2 queued=0
        ",
    )
    .await;
}

#[tokio::test]
async fn a_queued_checkout_is_granted_when_the_seat_comes_back() {
    run(
        "vhdl",
        1,
        "
        ann: open -> opened ttl=30000 interval=10000
        bob: open -> opened ttl=30000 interval=10000
        ann: checkout vhdl r1 -> granted handle=1 count=1
        bob: checkout vhdl r1 -> denied DENIAL_REASON_ALL_IN_USE holders=ann
        bob: checkout vhdl r2 wait -> queued handle=2 position=1
        features -> vhdl 1/1 queued=1
        bob: wait-queued 2 -> position 1
        ann: checkin 1 r2 -> checked in handle=1
        bob: next 2 -> granted handle=2 count=1
        bob: next 2 -> stream ended
        features -> vhdl 1/1 queued=0
        ",
    )
    .await;
}

#[tokio::test]
async fn a_session_whose_heartbeats_stop_expires_and_its_seat_comes_back() {
    run(
        "vhdl",
        1,
        "
        ann: open ttl=1000 -> opened ttl=1000 interval=333
        ann: checkout vhdl r1 -> granted handle=1 count=1
        advance 900 -> ok
        ann: heartbeat -> renewed ttl=1000
        advance 900 -> ok
        expire -> expired 0
        advance 200 -> ok
        expire -> expired 1
        features -> vhdl 0/1 queued=0
        ann: heartbeat -> error NotFound
        ann: checkout vhdl r2 -> error NotFound
        ann: close -> closed released=[]
        ",
    )
    .await;
}

#[tokio::test]
async fn a_retried_open_finds_its_session_and_another_process_is_refused() {
    run(
        "vhdl",
        1,
        "
        ann: open id=o1 -> opened ttl=30000 interval=10000 session=10de35be
        ann: open id=o1 -> opened ttl=30000 interval=10000 session=10de35be
        ann: open id=o1 pid=101 -> error AlreadyExists
        ann: checkout vhdl r1 -> granted handle=1 count=1
        ",
    )
    .await;
}

#[tokio::test]
async fn the_admin_removes_with_the_token_and_a_cluster_of_one_keeps_its_member() {
    run(
        "vhdl",
        1,
        "
        ann: open -> opened ttl=30000 interval=10000
        ann: checkout vhdl r1 -> granted handle=1 count=1
        admin: remove user=ann token=guess -> error Unauthenticated
        admin: remove user=ann -> removed [1]
        features -> vhdl 0/1 queued=0
        admin: reload -> reloaded pools=1 retired=0
        admin: add-node 2 -> error FailedPrecondition
        admin: remove-node 2 -> error NotFound
        admin: remove-node 1 -> error FailedPrecondition
        ",
    )
    .await;
}
