//! What the hostile-client tests share: raw gRPC clients of one node's client port, hostile
//! values for every string field, the bookkeeping of refusals (codes, field named, short
//! message, leader hint trailers) and the "nothing changed" check around a group of calls.
//!
//! An idle leader proposes a Tick every 5 s, which moves its applied index and digest:
//! "nothing changed" is checked over short groups of calls made right after a Tick
//! ([`Unchanged`]).

#![allow(dead_code)]

pub use cluster_tests::{Cluster, RawSession, TEST_ADMIN_TOKEN};
pub use qlm_proto::v1;
pub use qlm_proto::v1::admin_service_client::AdminServiceClient;
pub use qlm_proto::v1::license_service_client::LicenseServiceClient;
pub use qlm_proto::v1::status_service_client::StatusServiceClient;
pub use std::fmt::Debug;
pub use std::future::Future;
pub use std::pin::Pin;
pub use std::time::{Duration, Instant};
pub use tonic::transport::Channel;
pub use tonic::{Code, Status};

/// Longest error message a refusal may carry (field, limit and a quote of 32 characters).
pub const MAX_MESSAGE: usize = 300;
/// How often an idle leader proposes a Tick; a group of calls checked after one is short.
pub const TICK_EVERY: Duration = Duration::from_secs(5);
pub const QUIET: Duration = Duration::from_millis(2500);
/// A well-formed session id and secret that no session has.
pub const UNKNOWN_ID: &str = "00000000000000000000000000000bad";
pub const WRONG_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// What a refusal must be: one of these codes, naming this field when INVALID_ARGUMENT.
pub type Expect = (&'static [Code], Option<&'static str>);
pub const INVALID: &[Code] = &[Code::InvalidArgument];
/// A field over its limit in a message over 64 KiB: the message limit, once it lands,
/// refuses the message whole with RESOURCE_EXHAUSTED.
pub const OVERSIZE: &[Code] = &[Code::InvalidArgument, Code::ResourceExhausted];
pub const NOT_FOUND: Expect = (&[Code::NotFound], None);
pub const UNAUTHENTICATED: Expect = (&[Code::Unauthenticated], None);
pub const ALREADY_EXISTS: Expect = (&[Code::AlreadyExists], None);
pub const fn inv(field: &'static str) -> Expect {
    (INVALID, Some(field))
}
pub const fn big(field: &'static str) -> Expect {
    (OVERSIZE, Some(field))
}

/// An rpc on its way, its answer shown as text.
pub type Call = Pin<Box<dyn Future<Output = Result<String, Status>> + Send>>;

pub fn rpc<T: Debug>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
) -> Call {
    Box::pin(async move { call.await.map(|answer| format!("{:?}", answer.get_ref())) })
}

pub fn with_token<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer = format!("Bearer {TEST_ADMIN_TOKEN}").parse().expect("ascii");
    request.metadata_mut().insert("authorization", bearer);
    request
}

/// `fn name(&self, request) -> Call` for rpcs, each on a clone of its service's client.
macro_rules! rpcs {
    ($($name:ident($request:ident) => $client:ident.$rpc:ident;)*) => {$(
        pub fn $name(&self, r: v1::$request) -> Call {
            let mut c = self.$client.clone();
            rpc(async move { c.$rpc(r).await })
        }
    )*};
}

/// The three services of one node's client port, over one connection.
#[derive(Clone)]
pub struct Raw {
    pub license: LicenseServiceClient<Channel>,
    pub status: StatusServiceClient<Channel>,
    pub admin: AdminServiceClient<Channel>,
}

impl Raw {
    /// Connects to node `id`, trying again for a few seconds: on two loaded cores a node that
    /// was just elected or restarted may not accept at once.
    pub async fn to(cluster: &Cluster, id: u64) -> Raw {
        let deadline = Instant::now() + Duration::from_secs(10);
        let channel = loop {
            match cluster.client_channel(id).await {
                Ok(channel) => break channel,
                Err(e) if Instant::now() > deadline => panic!("a connection to node {id}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Raw {
            license: LicenseServiceClient::new(channel.clone()),
            status: StatusServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel),
        }
    }
    rpcs! {
        open(OpenSessionRequest) => license.open_session;
        checkout(CheckoutRequest) => license.checkout;
        checkin(CheckinRequest) => license.checkin;
        heartbeat(HeartbeatRequest) => license.heartbeat;
        close(CloseSessionRequest) => license.close_session;
        features(FeaturesRequest) => status.features;
        checkouts(CheckoutsRequest) => status.checkouts;
    }
    pub fn wait(&self, r: v1::WaitQueuedRequest) -> Call {
        let mut c = self.license.clone();
        rpc(async move { c.wait_queued(r).await.map(|_| tonic::Response::new("a stream")) })
    }
    pub fn remove(&self, r: v1::RemoveRequest) -> Call {
        let mut c = self.admin.clone();
        rpc(async move { c.remove(with_token(r)).await })
    }
    pub async fn open_session(&self, user: &str) -> RawSession {
        let answer = self.license.clone().open_session(open_request(user)).await;
        answer.expect("a session").into_inner().into()
    }
    pub async fn grant(&self, request: v1::CheckoutRequest) -> u64 {
        match self.license.clone().checkout(request).await.map(|a| a.into_inner().result) {
            Ok(Some(v1::checkout_response::Result::Granted(granted))) => granted.handle,
            other => panic!("expected a grant: {other:?}"),
        }
    }
    /// A new session of `user` checks a seat out: the node serves.
    pub async fn serves(&self, user: &str) -> u64 {
        let session = self.open_session(user).await;
        self.grant(checkout_request(&session, "serves")).await
    }
}

pub fn open_request(user: &str) -> v1::OpenSessionRequest {
    let (user, host) = (user.into(), "ws1".into());
    v1::OpenSessionRequest { user, host, pid: 7, ttl_ms: 120_000, ..Default::default() }
}

pub fn checkout_request(session: &RawSession, request_id: &str) -> v1::CheckoutRequest {
    v1::CheckoutRequest {
        session_id: session.id.clone(),
        session_secret: session.secret.clone(),
        request_id: request_id.into(),
        feature: "vhdl-editor".into(),
        count: 1,
        ..Default::default()
    }
}

pub fn checkin_request(session: &RawSession, request_id: &str, handle: u64) -> v1::CheckinRequest {
    let (session_id, session_secret) = (session.id.clone(), session.secret.clone());
    v1::CheckinRequest { session_id, session_secret, request_id: request_id.into(), handle }
}

pub fn heartbeat_request(session: &RawSession) -> v1::HeartbeatRequest {
    v1::HeartbeatRequest { session_id: session.id.clone(), session_secret: session.secret.clone() }
}

pub fn wait_request(session: &RawSession, handle: u64) -> v1::WaitQueuedRequest {
    let (session_id, session_secret) = (session.id.clone(), session.secret.clone());
    v1::WaitQueuedRequest { session_id, session_secret, handle }
}

pub fn close_request(session: &RawSession) -> v1::CloseSessionRequest {
    let (session_id, session_secret) = (session.id.clone(), session.secret.clone());
    v1::CloseSessionRequest { session_id, session_secret }
}

pub fn remove_holder(user: &str) -> v1::RemoveRequest {
    let holder = v1::HolderSelector { user: user.into(), ..Default::default() };
    v1::RemoveRequest { target: Some(v1::remove_request::Target::Holder(holder)) }
}

/// A session as someone who read its id in a status view presents it.
pub fn posing_as(session: &RawSession, secret: &str) -> RawSession {
    RawSession { id: session.id.clone(), secret: secret.into() }
}

pub fn a_follower(leader: u64) -> u64 {
    (1..=3).find(|&id| id != leader).expect("a follower")
}

/// A metric's value on node `id`, from its /metrics page.
pub fn metric(cluster: &Cluster, id: u64, name: &str) -> u64 {
    let (code, body) = cluster.http_get(id, "/metrics").expect("the metrics page");
    assert_eq!(code, 200, "GET /metrics on node {id}");
    let value = body
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
    value.unwrap_or_else(|| panic!("no metric {name} on node {id}")) as u64
}

/// The handles checked out in node `id`'s own replica.
pub async fn handles_on(cluster: &Cluster, id: u64) -> Vec<u64> {
    let checkouts = cluster.checkouts(id).await.unwrap_or_else(|e| panic!("node {id}: {e:?}"));
    checkouts.iter().map(|c| c.handle).collect()
}

/// Waits (up to 5 s) until every running node holds `handle`, or (`held` false) none does.
pub async fn held_everywhere(cluster: &Cluster, handle: u64, held: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for id in cluster.running() {
        while handles_on(cluster, id).await.contains(&handle) != held {
            assert!(Instant::now() < deadline, "node {id}: handle {handle} held is not {held}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `text` cut for a failure message.
pub fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}... ({} bytes)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// The longest run of one repeated character in `text`.
pub fn longest_run(text: &str) -> usize {
    let (mut longest, mut run, mut last) = (0, 0, None);
    for c in text.chars() {
        run = if Some(c) == last { run + 1 } else { 1 };
        last = Some(c);
        longest = longest.max(run);
    }
    longest
}

/// A string field of request `R`: its name, whether it is required, and where it is.
pub type Field<R> = (&'static str, bool, fn(&mut R) -> &mut String);

/// A session's id and secret, the fields every request of a session carries.
pub fn session_fields<R>(
    id: fn(&mut R) -> &mut String,
    secret: fn(&mut R) -> &mut String,
) -> [Field<R>; 2] {
    [("session_id", true, id), ("session_secret", true, secret)]
}

/// Hostile values of a string field: empty (when required), over the limit, and with a
/// control or bidirectional formatting character.
pub fn hostile_values(required: bool) -> Vec<(&'static str, String)> {
    let mut values = vec![
        ("257 bytes", "a".repeat(257)),
        ("1 MiB", "b".repeat(1 << 20)),
        ("a NUL", "al\0ice".to_owned()),
        ("a newline", "al\nice".to_owned()),
        ("U+202E", "al\u{202E}ice".to_owned()),
        ("U+2066", "al\u{2066}ice".to_owned()),
    ];
    if required {
        values.insert(0, ("empty", String::new()));
    }
    values
}

/// Checks refusals as a user sees them, and remembers those without the leader hint.
pub struct Refusals {
    pub addrs: Vec<(u64, String)>,
    pub unhinted: Vec<String>,
    pub seen: usize,
}

impl Refusals {
    pub fn new(cluster: &Cluster) -> Refusals {
        let addrs = cluster.ids().into_iter().map(|id| (id, cluster.client_addr(id))).collect();
        Refusals { addrs, unhinted: Vec::new(), seen: 0 }
    }

    /// `answer` is an error with an expected code and a short message that names the field
    /// (when INVALID_ARGUMENT) and repeats no character 100 times.
    pub fn refused(
        &mut self,
        what: &str,
        answer: Result<String, Status>,
        expect: Expect,
    ) -> Status {
        let (codes, field) = expect;
        let status = match answer {
            Ok(answer) => panic!("{what}: answered {}, expected {codes:?}", short(&answer)),
            Err(status) => status,
        };
        let (code, message) = (status.code(), status.message());
        assert!(codes.contains(&code), "{what}: {code:?} `{}`, not {codes:?}", short(message));
        assert!(message.len() < MAX_MESSAGE, "{what}: {} bytes: {}", message.len(), short(message));
        assert!(longest_run(message) < 100, "{what}: the message echoes: {}", short(message));
        if let (Code::InvalidArgument, Some(field)) = (code, field) {
            let named = format!("`{field}`");
            assert!(message.contains(&named), "{what}: names no {named}: {message}");
        }
        self.seen += 1;
        if let Err(why) = self.hint(&status) {
            self.unhinted.push(format!("{what} ({code:?}): {why}"));
        }
        status
    }

    /// Sends each case in turn; each is refused as it expects.
    pub async fn all(&mut self, prefix: &str, cases: Vec<(&str, Expect, Call)>) {
        for (what, expect, call) in cases {
            self.refused(&format!("{prefix}{what}"), call.await, expect);
        }
    }

    /// `base` with each hostile value in each of `fields`, as `send` sends it: refused with
    /// INVALID_ARGUMENT naming the field.
    pub async fn hostile<R: Clone>(
        &mut self,
        base: &R,
        fields: &[Field<R>],
        send: impl Fn(R) -> Call,
    ) {
        for &(field, required, slot) in fields {
            for (label, value) in hostile_values(required) {
                let codes = if value.len() > 64 << 10 { OVERSIZE } else { INVALID };
                let mut request = base.clone();
                *slot(&mut request) = value;
                let what = format!("{} with {label} in `{field}`", std::any::type_name::<R>());
                self.refused(&what, send(request).await, (codes, Some(field)));
            }
        }
    }

    pub fn hint(&self, status: &Status) -> Result<(), String> {
        let text = |key| status.metadata().get(key).and_then(|v| v.to_str().ok());
        let id = text("qlm-leader-id").ok_or("no `qlm-leader-id` trailer")?;
        let addr = text("qlm-leader-addr").ok_or("no `qlm-leader-addr` trailer")?;
        let id: u64 = id.parse().map_err(|_| format!("`qlm-leader-id: {id}` is not an id"))?;
        match self.addrs.iter().find(|(node, _)| *node == id) {
            Some((_, own)) if own == addr => Ok(()),
            _ => Err(format!("`qlm-leader-id: {id}`, `qlm-leader-addr: {addr}` name no node")),
        }
    }

    /// common.proto: an rpc that fails with a status carries the leader hint in the trailing
    /// metadata `qlm-leader-id` and `qlm-leader-addr` when the node knows a leader.
    pub fn assert_leader_hints(&self) {
        assert!(self.seen > 0, "no refusal was checked");
        let first: Vec<&String> = self.unhinted.iter().take(3).collect();
        assert!(
            self.unhinted.is_empty(),
            "{} of {} refused calls carried no leader hint trailers; first: {first:#?}",
            self.unhinted.len(),
            self.seen
        );
    }
}

/// The leader's applied index and state digest, read linearizably from it.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    pub applied: u64,
    pub digest: String,
}

pub async fn leader_state(cluster: &Cluster, leader: u64) -> State {
    let mut status = Raw::to(cluster, leader).await.status;
    let answer = status.cluster(v1::ClusterRequest { stale: false }).await;
    let answer = answer.expect("the leader's state").into_inner();
    assert_eq!(answer.node_id, leader, "answered by the leader");
    State { applied: answer.applied_index, digest: answer.state_digest }
}

/// Checks that groups of calls change nothing: each group runs right after one of the
/// leader's Ticks, so any change of its applied index or digest is the group's.
pub struct Unchanged<'a> {
    pub cluster: &'a Cluster,
    pub leader: u64,
    pub before: State,
    pub since: Instant,
}

impl<'a> Unchanged<'a> {
    pub async fn after_a_tick(cluster: &'a Cluster, leader: u64) -> Unchanged<'a> {
        let deadline = Instant::now() + 2 * TICK_EVERY;
        let first = leader_state(cluster, leader).await;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let before = leader_state(cluster, leader).await;
            if before.applied != first.applied {
                return Unchanged { cluster, leader, before, since: Instant::now() };
            }
            assert!(Instant::now() < deadline, "no Tick of leader {leader} in 10 s");
        }
    }

    pub async fn check(&mut self, what: &str) {
        let elapsed = self.since.elapsed();
        let after = leader_state(self.cluster, self.leader).await;
        assert!(elapsed < TICK_EVERY, "{what}: too slow to check between Ticks ({elapsed:?})");
        assert_eq!(
            after, self.before,
            "{what} changed the leader's state ({elapsed:?} after a Tick)"
        );
        if self.since.elapsed() > QUIET {
            *self = Unchanged::after_a_tick(self.cluster, self.leader).await;
        }
    }
}
