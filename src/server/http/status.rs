//! `/api/status`: what the dashboard shows, as JSON, and `/readyz`'s rule.
//!
//! Features, holders and queues come from this node's replica as it stands (a stale read: the
//! dashboard must answer while the cluster has no quorum, which is when an admin looks). The
//! cluster part is this node's Raft view plus each other member's own view, asked over its
//! client port (`StatusService.Cluster`, stale) with a short deadline, so every node's
//! dashboard shows every node's applied index and health.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use qlm_node::node::Node;
use qlm_proto::v1;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use qlm_raft::{NodeId, StorageStats};

use super::metrics::AppliedCounters;
use super::usage::{UsageHistory, UsageSeries};

/// Longest the dashboard waits for another node's view of the cluster.
pub const PEER_VIEW_DEADLINE: Duration = Duration::from_millis(800);

/// Why a node is not ready, or `Ok`. The rule: Raft runs, this node's clock is within bounds,
/// it is a member of a cluster, it knows a leader (a leader itself must have heard from a quorum within
/// `quorum_silence`), and it has applied every entry it knows to be committed.
pub fn readiness(
    node: &Node,
    storage: &StorageStats,
    quorum_silence: Duration,
) -> Result<(), String> {
    let metrics = node.raft.metrics().borrow().clone();
    if let Err(e) = &metrics.running_state {
        return Err(format!("raft stopped: {e}"));
    }
    if node.clock.is_out_of_bounds() {
        return Err(format!(
            "clock out of bounds: this node's wall clock is further than {:?} from a majority \
             of the voters' (it does not lead; fix its clock)",
            node.clock.max_offset()
        ));
    }
    let member = metrics.membership_config.membership().nodes().any(|(id, _)| *id == node.id);
    if !member {
        return Err("not a member of a cluster yet".to_owned());
    }
    let Some(leader) = metrics.current_leader else {
        return Err("no leader known: an election is under way or the quorum is lost".to_owned());
    };
    if leader == node.id {
        let silence = metrics.millis_since_quorum_ack;
        let limit = u64::try_from(quorum_silence.as_millis()).unwrap_or(u64::MAX);
        if silence.is_none_or(|ms| ms > limit) {
            let since = silence.map_or("ever".to_owned(), |ms| format!("{ms} ms"));
            return Err(format!("leader without a quorum acknowledgement for {since}"));
        }
    }
    let applied = metrics.last_applied.map_or(0, |l| l.index);
    let committed = storage.committed_index();
    if applied < committed {
        return Err(format!("applied index {applied} is behind the committed index {committed}"));
    }
    Ok(())
}

/// The whole dashboard payload.
#[derive(Serialize)]
pub struct StatusPayload {
    pub node: NodeView,
    /// This node's wall clock (what "ago" is measured from).
    pub now_unix_ms: u64,
    /// The cluster's license time as this replica has applied it (the largest stamp), which is
    /// what licenses, lingers and borrows run on; far from `now_unix_ms`, a clock is wrong.
    pub license_time_unix_ms: u64,
    pub cluster: ClusterView,
    pub features: Vec<FeatureView>,
    pub denials: Vec<DenialCount>,
    pub usage: UsageSeries,
}

#[derive(Serialize)]
pub struct NodeView {
    pub id: NodeId,
    pub client_addr: String,
    pub role: String,
    pub ready: bool,
    pub not_ready_reason: Option<String>,
}

#[derive(Serialize)]
pub struct ClusterView {
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit_index: u64,
    pub members: Vec<MemberView>,
}

#[derive(Serialize)]
pub struct MemberView {
    pub id: NodeId,
    pub voter: bool,
    pub leader: bool,
    pub peer_addr: String,
    pub client_addr: String,
    pub applied_index: Option<u64>,
    /// On the leader: entries this member is behind.
    pub lag: Option<u64>,
    /// `ok`, `no leader`, `unreachable`, `address unknown`.
    pub health: String,
    pub term: Option<u64>,
}

#[derive(Serialize)]
pub struct FeatureView {
    pub name: String,
    pub issued: u64,
    pub in_use: u64,
    pub lingering: u64,
    pub queued: u64,
    pub queued_requests: u32,
    pub pools: Vec<PoolView>,
    pub holders: Vec<HolderView>,
    pub queue: Vec<QueuedView>,
}

#[derive(Serialize)]
pub struct PoolView {
    pub version: String,
    pub seats: u32,
    pub in_use: u32,
    pub expires: String,
    pub serving: bool,
}

#[derive(Serialize)]
pub struct HolderView {
    pub handle: u64,
    pub user: String,
    pub host: String,
    pub display: String,
    pub version: String,
    pub count: u32,
    pub seats: u32,
    pub since_unix_ms: u64,
    pub borrow_until_unix_ms: Option<u64>,
}

#[derive(Serialize)]
pub struct QueuedView {
    pub position: u32,
    pub handle: u64,
    pub user: String,
    pub host: String,
    pub count: u32,
    pub since_unix_ms: u64,
}

#[derive(Serialize)]
pub struct DenialCount {
    pub feature: String,
    pub reason: String,
    pub count: u64,
}

/// Channels to the other nodes' client ports, by address, reused across requests.
#[derive(Default)]
pub struct PeerViews {
    channels: Mutex<BTreeMap<String, Channel>>,
}

impl PeerViews {
    fn channel(&self, addr: &str) -> Option<Channel> {
        let mut channels = self.channels.lock().ok()?;
        if let Some(channel) = channels.get(addr) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .ok()?
            .connect_timeout(PEER_VIEW_DEADLINE);
        let channel = qlm_net::wire::connect_lazy(&endpoint);
        channels.insert(addr.to_owned(), channel.clone());
        Some(channel)
    }

    /// Node `addr`'s own view of the cluster, or `None` when it does not answer in time.
    async fn view(&self, addr: &str) -> Option<v1::ClusterResponse> {
        let mut client = StatusServiceClient::new(self.channel(addr)?);
        let mut request = tonic::Request::new(v1::ClusterRequest { stale: true });
        request.set_timeout(PEER_VIEW_DEADLINE);
        let call = tokio::time::timeout(PEER_VIEW_DEADLINE, client.cluster(request));
        call.await.ok()?.ok().map(|r| r.into_inner())
    }
}

/// Each other member's client address and, when it answered, its own view of the cluster.
type PeerAnswers = BTreeMap<NodeId, (Option<String>, Option<v1::ClusterResponse>)>;
/// A membership as openraft keeps it.
type Membership = openraft::Membership<NodeId, openraft::BasicNode>;

/// Everything the dashboard needs, from this node.
pub async fn status(
    node: &Node,
    client_addr: &str,
    ready: Result<(), String>,
    storage: &StorageStats,
    counters: &AppliedCounters,
    history: &UsageHistory,
    peers: &PeerViews,
) -> StatusPayload {
    let metrics = node.raft.metrics().borrow().clone();
    let role = match metrics.state {
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Follower => "follower",
        openraft::ServerState::Candidate => "candidate",
        openraft::ServerState::Learner => "learner",
        openraft::ServerState::Shutdown => "shut down",
    };
    let applied = metrics.last_applied.map_or(0, |l| l.index);
    let membership = metrics.membership_config.membership().clone();

    let answers = ask_peers(node, &membership, peers).await;
    let members = member_views(node, client_addr, &metrics, &membership, &answers);

    let (features, now, license_time_unix_ms) = {
        let replica = node.replica.read().await;
        let engine = replica.engine();
        (feature_views(engine), super::usage::sample_engine(engine), engine.now().0)
    };
    let denials = counters
        .denials()
        .into_iter()
        .map(|(labels, count)| DenialCount {
            feature: labels.feature,
            reason: labels.reason,
            count,
        })
        .collect();
    StatusPayload {
        node: NodeView {
            id: node.id,
            client_addr: client_addr.to_owned(),
            role: role.to_owned(),
            ready: ready.is_ok(),
            not_ready_reason: ready.err(),
        },
        now_unix_ms: super::usage::unix_ms_now(),
        license_time_unix_ms,
        cluster: ClusterView {
            leader: metrics.current_leader,
            term: metrics.current_term,
            commit_index: storage.committed_index().max(applied),
            members,
        },
        features,
        denials,
        usage: history.series(Some(now)),
    }
}

/// What each other member says of itself (client address and cluster view), asked at once.
async fn ask_peers(node: &Node, membership: &Membership, peers: &PeerViews) -> PeerAnswers {
    let asks = membership.nodes().filter(|(id, _)| **id != node.id).map(|(&id, _)| async move {
        let mut addr = node.peers.client_addr(id);
        if addr.as_deref().is_none_or(str::is_empty) {
            // Not learned yet (the node started after this one asked): ask it now.
            let hello = tokio::time::timeout(PEER_VIEW_DEADLINE, node.peers.hello(id));
            addr = hello.await.ok().and_then(Result::ok);
        }
        let view = match &addr {
            Some(addr) if !addr.is_empty() => peers.view(addr).await,
            _ => None,
        };
        (id, addr, view)
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .map(|(id, addr, view)| (id, (addr, view)))
        .collect()
}

/// One row per member: this node from its own metrics, the others from their answers.
fn member_views(
    node: &Node,
    client_addr: &str,
    metrics: &openraft::RaftMetrics<NodeId, openraft::BasicNode>,
    membership: &Membership,
    answers: &PeerAnswers,
) -> Vec<MemberView> {
    let applied = metrics.last_applied.map_or(0, |l| l.index);
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    let replication = metrics.replication.clone().unwrap_or_default();
    let last_log = metrics.last_log_index.unwrap_or(0);
    membership
        .nodes()
        .map(|(&id, peer)| {
            let lag = replication
                .get(&id)
                .map(|matched| last_log.saturating_sub(matched.map_or(0, |m| m.index)));
            let (client_addr, applied_index, health, term) = if id == node.id {
                let health = if metrics.current_leader.is_some() { "ok" } else { "no leader" };
                (
                    client_addr.to_owned(),
                    Some(applied),
                    health.to_owned(),
                    Some(metrics.current_term),
                )
            } else {
                match answers.get(&id) {
                    Some((addr, Some(view))) => {
                        let health = if view.leader.is_some() { "ok" } else { "no leader" };
                        (
                            addr.clone().unwrap_or_default(),
                            Some(view.applied_index),
                            health.to_owned(),
                            Some(view.term),
                        )
                    }
                    Some((Some(addr), None)) if !addr.is_empty() => {
                        (addr.clone(), None, "unreachable".to_owned(), None)
                    }
                    _ => (String::new(), None, "address unknown".to_owned(), None),
                }
            };
            MemberView {
                id,
                voter: voters.contains(&id),
                leader: metrics.current_leader == Some(id),
                peer_addr: peer.addr.clone(),
                client_addr,
                applied_index,
                lag,
                health,
                term,
            }
        })
        .collect()
}

fn feature_views(engine: &qlm_engine::Engine) -> Vec<FeatureView> {
    engine
        .features()
        .into_iter()
        .map(|feature| {
            let holders = engine
                .checkouts()
                .into_iter()
                .filter(|c| *c.feature == *feature.name)
                .map(|c| HolderView {
                    handle: c.handle.0,
                    user: c.user.to_string(),
                    host: c.host.to_string(),
                    display: c.display.to_string(),
                    version: c.version.to_string(),
                    count: c.count,
                    seats: c.seats,
                    since_unix_ms: c.since.0,
                    borrow_until_unix_ms: c.borrow_until.map(|t| t.0),
                })
                .collect();
            let queue: Vec<QueuedView> = engine
                .queued_requests(&feature.name)
                .into_iter()
                .map(|q| QueuedView {
                    position: q.position,
                    handle: q.handle.0,
                    user: q.user.to_string(),
                    host: q.host.to_string(),
                    count: q.count,
                    since_unix_ms: q.since.0,
                })
                .collect();
            let now = engine.now();
            FeatureView {
                issued: feature.seats_serving,
                in_use: feature.seats_in_use,
                lingering: feature.pools.iter().map(|p| u64::from(p.lingering)).sum(),
                queued: queue.iter().map(|q| u64::from(q.count)).sum(),
                queued_requests: feature.queued,
                pools: feature
                    .pools
                    .iter()
                    .map(|p| PoolView {
                        version: p.pool.version.to_string(),
                        seats: p.pool.seats,
                        in_use: p.in_use,
                        expires: p.pool.expires.to_string(),
                        serving: p.current && p.pool.is_started(now) && !p.pool.is_expired(now),
                    })
                    .collect(),
                holders,
                queue,
                name: feature.name,
            }
        })
        .collect()
}
