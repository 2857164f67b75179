//! What the client port's services need of the node they run on: the [`ClusterNode`] trait,
//! and its implementation for the replicated node ([`Node`]).
//!
//! The services (`services`, `edge`, `admin`, `cluster_view`) decide every answer: they check
//! requests, turn them into engine commands and turn outcomes into answers. What they ask of
//! the node is a short list of operations (propose, wait for a read barrier, read the replica,
//! renew a lease, who leads, what Raft says of the members), and that list is the trait. So the
//! same handlers run over a real node in `qlmd` and over the one-process node of
//! [`crate::testkit`], where tests drive them without Raft, disks or peers.
//!
//! The futures are `Send` and the services generic over the trait, so the real node's calls
//! stay direct calls.

use std::collections::BTreeSet;
use std::future::Future;

use openraft::BasicNode;
use tonic::Status;

use qlm_engine::{Applied, Command, Engine};
use qlm_license::LineError;
use qlm_node::node::{Consistency, Node, READ_DEADLINE};
use qlm_proto::v1;
use qlm_raft::NodeId;

/// The node under the client port's services. Every method exists because a handler needs it;
/// an implementation answers the way a node of a cluster would (UNAVAILABLE without a
/// leader, NOT_FOUND for a lease it does not hold).
pub trait ClusterNode: Send + Sync + 'static {
    /// This node's id: a leader hint that names it points at this node's own client address,
    /// and its cluster view says whose view it is.
    fn id(&self) -> NodeId;

    /// The leader this node knows of now, without waiting: every answer carries it as the
    /// leader hint, so a client can go straight there next time.
    fn leader(&self) -> Option<NodeId>;

    /// Whether this node leads now: reloads and membership changes run on the leader only.
    fn is_leader(&self) -> bool {
        self.leader() == Some(self.id())
    }

    /// The client address member `id` told this node, for a leader hint naming that member.
    fn client_addr_of(&self, id: NodeId) -> Option<String>;

    /// The leader, waiting (within the caller's deadline) while an election is under way: a
    /// linearizable cluster view must be asked of it.
    fn known_leader(&self) -> impl Future<Output = Result<NodeId, Status>> + Send;

    /// Proposes `command` through the leader, wherever it is, and answers what applying it
    /// produced: every write of every service goes through here.
    fn propose(&self, command: Command) -> impl Future<Output = Result<Applied, Status>> + Send;

    /// Waits until this replica reflects every write acknowledged before the call, for a
    /// linearizable read (a stale one goes on at once). Reads, and "no such session"
    /// answers, wait for it.
    fn read_barrier(
        &self,
        consistency: Consistency,
    ) -> impl Future<Output = Result<(), Status>> + Send;

    /// As the leader: confirms with a majority that this node still leads, then waits until
    /// this replica has applied everything committed before the call. The leader's own
    /// cluster view is made after it, so it never passes a deposed leader's view off as the
    /// leader's.
    fn leader_barrier(&self) -> impl Future<Output = Result<(), Status>> + Send;

    /// Runs `read` on this replica's engine and the index of the last entry it applied, both
    /// under one lock so they describe one state (the cluster view's state digest needs both).
    /// `read` must not block: entries wait to be applied meanwhile.
    fn read_at<R>(
        &self,
        read: impl FnOnce(&Engine, u64) -> R + Send,
    ) -> impl Future<Output = R> + Send;

    /// [`ClusterNode::read_at`] without the applied index: what most handlers read.
    fn read<R>(&self, read: impl FnOnce(&Engine) -> R + Send) -> impl Future<Output = R> + Send {
        self.read_at(move |engine, _| read(engine))
    }

    /// Renews the lease of session `session_id` on the leader (a heartbeat: nothing is
    /// logged) and answers its TTL in milliseconds; NOT_FOUND when the session has no lease.
    fn renew_lease(&self, session_id: &str) -> impl Future<Output = Result<u64, Status>> + Send;

    /// What this node's Raft says of the cluster now: StatusService.Cluster describes it, and
    /// a membership change starts from its voters.
    fn raft_view(&self) -> RaftView;

    /// Asks member `leader` for its cluster view over the peer port: status.proto promises
    /// that a linearizable view is the leader's, whichever node is asked.
    fn ask_cluster_view(
        &self,
        leader: NodeId,
    ) -> impl Future<Output = Result<v1::ClusterResponse, Status>> + Send;

    /// The license set and policy this node would serve, as a `LoadLicenses` command, with the
    /// license lines refused: what AdminService.Reload proposes.
    fn licenses_to_serve(
        &self,
    ) -> impl Future<Output = Result<(Command, Vec<LineError>), String>> + Send;

    /// As the leader: adds member `id` at `peer_addr` as a learner, once it has caught up,
    /// remembering its client address (when not empty) for leader hints. `Err` says why not.
    fn add_learner(
        &self,
        id: NodeId,
        peer_addr: String,
        client_addr: String,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// As the leader: makes `voters` the voting members (learners stay learners). `Err` says
    /// why not.
    fn change_voters(
        &self,
        voters: BTreeSet<NodeId>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Raft's view of the cluster from one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftView {
    pub term: u64,
    /// The last log index this node applied.
    pub applied_index: u64,
    pub last_log_index: u64,
    /// Every member of the membership in force, voters and learners, by id.
    pub members: Vec<MemberView>,
}

/// One member, as [`RaftView`] sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    pub id: NodeId,
    pub peer_addr: String,
    pub voter: bool,
    /// The last log index the leader knows this member holds: `Some` only when this node
    /// leads and has heard from the member.
    pub matched_index: Option<u64>,
}

impl RaftView {
    /// The ids of the voting members.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.members.iter().filter(|m| m.voter).map(|m| m.id).collect()
    }
}

impl ClusterNode for Node {
    fn id(&self) -> NodeId {
        self.id
    }

    fn leader(&self) -> Option<NodeId> {
        Node::leader(self)
    }

    fn client_addr_of(&self, id: NodeId) -> Option<String> {
        self.peers.client_addr(id)
    }

    async fn known_leader(&self) -> Result<NodeId, Status> {
        Node::known_leader(self).await
    }

    async fn propose(&self, command: Command) -> Result<Applied, Status> {
        Node::propose(self, command).await
    }

    async fn read_barrier(&self, consistency: Consistency) -> Result<(), Status> {
        Node::read_barrier(self, consistency).await
    }

    async fn leader_barrier(&self) -> Result<(), Status> {
        let index = self.read_index_here().await?;
        self.raft
            .wait(Some(READ_DEADLINE))
            .applied_index_at_least(Some(index), "leader barrier")
            .await
            .map_err(|e| Status::unavailable(format!("the leader did not catch up: {e}")))?;
        Ok(())
    }

    async fn read_at<R>(&self, read: impl FnOnce(&Engine, u64) -> R + Send) -> R {
        let replica = self.replica.read().await;
        read(replica.engine(), replica.last_applied().map_or(0, |l| l.index))
    }

    async fn renew_lease(&self, session_id: &str) -> Result<u64, Status> {
        self.heartbeat(session_id).await
    }

    fn raft_view(&self) -> RaftView {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched = |id: &NodeId| {
            let replication = metrics.replication.as_ref()?;
            replication.get(id).copied().flatten().map(|log| log.index)
        };
        let members = membership
            .nodes()
            .map(|(id, node)| MemberView {
                id: *id,
                peer_addr: node.addr.clone(),
                voter: voters.contains(id),
                matched_index: matched(id),
            })
            .collect();
        RaftView {
            term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            members,
        }
    }

    async fn ask_cluster_view(&self, leader: NodeId) -> Result<v1::ClusterResponse, Status> {
        self.peers.cluster_view(leader).await
    }

    async fn licenses_to_serve(&self) -> Result<(Command, Vec<LineError>), String> {
        Node::licenses_to_serve(self).await
    }

    async fn add_learner(
        &self,
        id: NodeId,
        peer_addr: String,
        client_addr: String,
    ) -> Result<(), String> {
        self.peers.set_addr(id, peer_addr.clone());
        if !client_addr.is_empty() {
            self.peers.set_client_addr(id, client_addr);
        }
        // Blocking: the learner has caught up when this returns, so making it a voter next
        // does not stall the quorum behind its catching up.
        self.raft
            .add_learner(id, BasicNode { addr: peer_addr }, true)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), String> {
        self.raft.change_membership(voters, false).await.map(drop).map_err(|e| e.to_string())
    }
}
