//! `StatusService.Cluster`'s answers: one node's view of the cluster, and the leader's.
//!
//! status.proto promises that a linearizable answer is the leader's view (only the leader knows
//! how far each member has replicated), whichever node is asked. So a node that is not the
//! leader asks the leader over the peer port (`RaftService.ClusterView`, [`Peers::cluster_view`])
//! and relays its answer unchanged; the leader confirms its leadership with a majority and
//! catches up with everything committed before it describes itself ([`leader_view_here`]).
//! A stale answer is the asked node's own view, at once.
//!
//! [`Peers::cluster_view`]: qlm_node::peer::Peers::cluster_view
//! [`leader_view_here`]: ClientServices::leader_view_here

use sha2::{Digest, Sha256};
use tonic::Status;

use crate::cluster_node::ClusterNode;
use crate::services::ClientServices;
use qlm_node::node::{Consistency, READ_DEADLINE};
use qlm_proto::v1;

impl<N: ClusterNode> ClientServices<N> {
    /// This node's own view: its applied index and state digest (read together), its term,
    /// log and members as it sees them, `node_id` its own id.
    pub async fn own_cluster_view(&self) -> v1::ClusterResponse {
        // The applied index and the digest under one read lock, so they describe one state.
        let (applied_index, state_digest, license_time_unix_ms) = self
            .node
            .read_at(|engine, applied_index| {
                let digest = Sha256::digest(engine.snapshot());
                let digest = digest.iter().map(|b| format!("{b:02x}")).collect::<String>();
                (applied_index, digest, engine.now().0)
            })
            .await;
        let view = self.node.raft_view();
        v1::ClusterResponse {
            node_id: self.node.id(),
            state_digest,
            applied_index,
            term: view.term,
            commit_index: view.applied_index,
            last_log_index: view.last_log_index,
            members: self.members_in(&view),
            leader: self.leader_hint(),
            license_time_unix_ms,
        }
    }

    /// The leader's view, linearizable: made here when this node leads, asked of the leader
    /// otherwise (a leader too old to answer gets this node's own view after a read
    /// barrier). UNAVAILABLE when no leader answers within [`READ_DEADLINE`].
    pub async fn leader_cluster_view(&self) -> Result<v1::ClusterResponse, Status> {
        let view = async {
            let leader = self.node.known_leader().await?;
            if leader == self.node.id() {
                return self.leader_view_here().await;
            }
            match self.node.ask_cluster_view(leader).await {
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    // A leader of an earlier release, during a rolling upgrade: the best
                    // linearizable answer left is this node's own view once it has caught up;
                    // `node_id` says whose view it is.
                    tracing::debug!(node = self.node.id(), leader, "the leader has no ClusterView");
                    self.node.read_barrier(Consistency::Linearizable).await?;
                    Ok(self.own_cluster_view().await)
                }
                answer => answer,
            }
        };
        match tokio::time::timeout(READ_DEADLINE, view).await {
            Ok(answer) => answer,
            Err(_) => Err(Status::unavailable(format!(
                "no leader answered within {READ_DEADLINE:?}: the cluster may have lost its \
                 quorum (ask with stale=true for this node's view)"
            ))),
        }
    }

    /// As the leader: confirms leadership with a majority, waits until this node has applied
    /// everything committed before the call, then answers its own view (what
    /// `RaftService.ClusterView` answers). A node that does not lead answers UNAVAILABLE with
    /// the leader hint: it never passes its own view off as the leader's.
    pub async fn leader_view_here(&self) -> Result<v1::ClusterResponse, Status> {
        self.must_lead()?;
        self.node.leader_barrier().await?;
        Ok(self.own_cluster_view().await)
    }
}
