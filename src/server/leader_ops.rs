//! What this node answers when a follower asks the leader through the peer port: the node
//! core's side of `qlm_node::peer::LeaderOps`, kept out of start-up so that the peer service
//! and what it calls read together.

use std::sync::Arc;

use qlm_node::node::Node;
use qlm_node::peer::LeaderOps;

use crate::services::ClientServices;

/// The leader-side operations the peer service calls, answered by this node's core and, for
/// the leader's view of the cluster, its client services.
pub(crate) struct NodeLeaderOps {
    pub(crate) node: Arc<Node>,
    /// The client services, for the leader's view of the cluster.
    pub(crate) services: ClientServices,
    pub(crate) client_addr: String,
    pub(crate) http_addr: String,
}

impl LeaderOps for NodeLeaderOps {
    async fn forward(
        &self,
        command: qlm_engine::Command,
    ) -> Result<(qlm_engine::Applied, u64), tonic::Status> {
        let applied = self.node.propose_here(command).await?;
        let index = self.node.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        Ok((applied, index))
    }

    async fn renew(&self, session_id: &str) -> Result<u64, tonic::Status> {
        self.node.renew_here(session_id).await
    }

    async fn read_index(&self) -> Result<u64, tonic::Status> {
        self.node.read_index_here().await
    }

    async fn cluster_view(&self) -> Result<qlm_proto::v1::ClusterResponse, tonic::Status> {
        self.services.leader_view_here().await
    }

    fn hello(&self) -> qlm_proto::v1::HelloResponse {
        qlm_proto::v1::HelloResponse {
            id: self.node.id,
            client_addr: self.client_addr.clone(),
            http_addr: self.http_addr.clone(),
            hostid: self.node.hostid().to_owned(),
            unix_micros: qlm_node::clock::wall_us(),
        }
    }
}
