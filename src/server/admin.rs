//! AdminService on the client port: lmremove, reload, and membership changes.
//!
//! Every call needs `authorization: Bearer <token>` matching the node's admin token (compared
//! in constant time, never logged). A node without a token refuses every admin call
//! (PERMISSION_DENIED): an unconfigured cluster is not an open one. Membership changes run on
//! the leader; another node answers UNAVAILABLE with the leader hint, which the client follows.

use std::collections::BTreeSet;

use openraft::BasicNode;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::proto::convert;
use crate::proto::v1;
use crate::proto::v1::admin_service_server::AdminService;
use crate::server::services::ClientServices;

/// The admin side of the client services, with the token it accepts.
#[derive(Clone)]
pub struct AdminServices {
    pub services: ClientServices,
    pub token: Option<String>,
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl AdminServices {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Err(Status::permission_denied(
                "admin calls are disabled: start qlmd with --admin-token-file or QLM_ADMIN_TOKEN",
            ));
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer <token>`"))?;
        if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("wrong admin token"))
        }
    }

    fn must_lead(&self) -> Result<(), Status> {
        let node = &self.services.node;
        if node.is_leader() {
            return Ok(());
        }
        let leader = node.leader();
        let addr = leader.and_then(|id| node.peers.client_addr(id));
        Err(crate::server::peer::not_leader(leader, addr.as_deref()))
    }
}

#[tonic::async_trait]
impl AdminService for AdminServices {
    async fn remove(
        &self,
        request: Request<v1::RemoveRequest>,
    ) -> Result<Response<v1::RemoveResponse>, Status> {
        self.authorize(&request)?;
        crate::proto::validate::remove(request.get_ref())?;
        let command = convert::remove_command(request.into_inner())?;
        let applied = self.services.node.propose(command).await?;
        let mut answer = convert::remove_response(applied.outcome)?;
        answer.leader = self.services.leader_hint();
        Ok(Response::new(answer))
    }

    async fn reload(
        &self,
        request: Request<v1::ReloadRequest>,
    ) -> Result<Response<v1::ReloadResponse>, Status> {
        self.authorize(&request)?;
        self.must_lead()?;
        let node = &self.services.node;
        let (command, refused) =
            node.licenses_to_serve().await.map_err(Status::failed_precondition)?;
        let applied = node.propose(command).await?;
        let retired = match applied.outcome {
            crate::engine::Outcome::LicensesLoaded { retired, .. } => retired,
            _ => 0,
        };
        info!(node = node.id, refused = refused.len(), "licenses reloaded");
        let pools = {
            let replica = node.replica.read().await;
            let engine = replica.engine();
            engine
                .features()
                .into_iter()
                .flat_map(|f| f.pools)
                .map(|p| convert::pool_status(p, engine.now()))
                .collect()
        };
        Ok(Response::new(v1::ReloadResponse {
            applied: true,
            pools,
            license_refused: refused.iter().map(convert::refused_line).collect(),
            options_refused: Vec::new(),
            retired,
            leader: self.services.leader_hint(),
        }))
    }

    async fn add_node(
        &self,
        request: Request<v1::AddNodeRequest>,
    ) -> Result<Response<v1::AddNodeResponse>, Status> {
        self.authorize(&request)?;
        self.must_lead()?;
        let request = request.into_inner();
        crate::proto::validate::add_node(&request)?;
        let node = &self.services.node;
        node.peers.set_addr(request.id, request.peer_addr.clone());
        if !request.client_addr.is_empty() {
            node.peers.set_client_addr(request.id, request.client_addr.clone());
        }
        // Learner first: it catches up without counting toward the quorum.
        node.raft
            .add_learner(request.id, BasicNode { addr: request.peer_addr.clone() }, true)
            .await
            .map_err(|e| {
                Status::failed_precondition(format!("adding learner {}: {e}", request.id))
            })?;
        if !request.learner_only {
            let mut voters: BTreeSet<u64> =
                node.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
            voters.insert(request.id);
            node.raft.change_membership(voters, false).await.map_err(|e| {
                Status::failed_precondition(format!("making {} a voter: {e}", request.id))
            })?;
        }
        info!(node = node.id, added = request.id, "membership changed");
        Ok(Response::new(v1::AddNodeResponse {
            members: self.services.members(),
            leader: self.services.leader_hint(),
        }))
    }

    async fn remove_node(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        self.authorize(&request)?;
        self.must_lead()?;
        let id = request.into_inner().id;
        let node = &self.services.node;
        let mut voters: BTreeSet<u64> =
            node.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        if !voters.remove(&id) {
            return Err(Status::not_found(format!("node {id} is not a voter")));
        }
        if voters.is_empty() {
            return Err(Status::failed_precondition("the last voter cannot be removed"));
        }
        node.raft
            .change_membership(voters, false)
            .await
            .map_err(|e| Status::failed_precondition(format!("removing {id}: {e}")))?;
        info!(node = node.id, removed = id, "membership changed");
        Ok(Response::new(v1::RemoveNodeResponse {
            members: self.services.members(),
            leader: self.services.leader_hint(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
