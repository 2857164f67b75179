//! AdminService on the client port: lmremove, reload, and membership changes.
//!
//! Every call needs `authorization: Bearer <token>` matching the node's admin token (compared
//! in constant time, never logged); the scheme is case-blind (RFC 7235: `bearer` works too),
//! and a token over [`MAX_ADMIN_TOKEN_BYTES`] is refused as such. A node without a token
//! refuses every admin call (PERMISSION_DENIED): an unconfigured cluster is not an open one.
//! Membership changes run on the leader; another node answers UNAVAILABLE with the leader
//! hint, which the client follows. Every failed call carries the leader hint in its trailing
//! metadata (`ClientServices::hinted`).

use tonic::{Request, Response, Status};
use tracing::info;

use crate::cluster_node::ClusterNode;
use crate::services::ClientServices;
use qlm_engine::secrets_equal;
use qlm_node::node::Node;
use qlm_proto::convert;
use qlm_proto::v1;
use qlm_proto::v1::admin_service_server::AdminService;

/// The admin side of the client services, with the token it accepts.
pub struct AdminServices<N = Node> {
    pub services: ClientServices<N>,
    pub token: Option<String>,
}

impl<N> Clone for AdminServices<N> {
    fn clone(&self) -> Self {
        AdminServices { services: self.services.clone(), token: self.token.clone() }
    }
}

/// Longest admin token a node accepts, in bytes: at start (`--admin-token-file`,
/// `QLM_ADMIN_TOKEN`) and in a call, where a longer one is UNAUTHENTICATED naming this limit
/// before it is compared with anything.
pub const MAX_ADMIN_TOKEN_BYTES: usize = 1024;

/// `Err(reason)` for an admin token longer than [`MAX_ADMIN_TOKEN_BYTES`]: a node configured
/// with one could never be administered. The reason gives lengths, never the token.
pub fn check_token_length(token: &str) -> Result<(), String> {
    if token.len() <= MAX_ADMIN_TOKEN_BYTES {
        return Ok(());
    }
    Err(format!(
        "the admin token is {} bytes; the limit is {MAX_ADMIN_TOKEN_BYTES} bytes",
        token.len()
    ))
}

/// The authentication scheme of the `authorization` metadata, compared without case.
const SCHEME: &[u8] = b"bearer";

/// The token of an `authorization` value `<scheme> <token>` whose scheme is `Bearer` in any
/// case, with the spaces around the token dropped. The refusals name no part of the value.
fn bearer_token(value: Option<&[u8]>) -> Result<&[u8], Status> {
    let value =
        value.ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer <token>`"))?;
    let malformed =
        || Status::unauthenticated("`authorization` is not `Bearer <token>` (any case of Bearer)");
    let space = value.iter().position(|&b| b == b' ').ok_or_else(malformed)?;
    let (scheme, token) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(malformed());
    }
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(malformed());
    }
    if token.len() > MAX_ADMIN_TOKEN_BYTES {
        return Err(Status::unauthenticated(format!(
            "the admin token is over the limit of {MAX_ADMIN_TOKEN_BYTES} bytes"
        )));
    }
    Ok(token)
}

impl<N: ClusterNode> AdminServices<N> {
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Err(Status::permission_denied(
                "admin calls are disabled: start qlmd with --admin-token-file or QLM_ADMIN_TOKEN",
            ));
        };
        let given = bearer_token(request.metadata().get("authorization").map(|v| v.as_bytes()))?;
        if secrets_equal(given, expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("wrong admin token"))
        }
    }

    async fn remove_call(
        &self,
        request: Request<v1::RemoveRequest>,
    ) -> Result<Response<v1::RemoveResponse>, Status> {
        self.authorize(&request)?;
        qlm_proto::validate::remove(request.get_ref())?;
        let command = convert::remove_command(request.into_inner())?;
        let applied = self.services.node.propose(command).await?;
        let mut answer = convert::remove_response(applied.outcome)?;
        answer.leader = self.services.leader_hint();
        Ok(Response::new(answer))
    }

    async fn reload_call(
        &self,
        request: Request<v1::ReloadRequest>,
    ) -> Result<Response<v1::ReloadResponse>, Status> {
        self.authorize(&request)?;
        self.services.must_lead()?;
        let node = &self.services.node;
        let (command, refused) =
            node.licenses_to_serve().await.map_err(Status::failed_precondition)?;
        let applied = node.propose(command).await?;
        let retired = match applied.outcome {
            qlm_engine::Outcome::LicensesLoaded { retired, .. } => retired,
            _ => 0,
        };
        info!(node = node.id(), refused = refused.len(), "licenses reloaded");
        let pools = node
            .read(|engine| {
                let features = engine.features().into_iter();
                features
                    .flat_map(|f| f.pools)
                    .map(|p| convert::pool_status(p, engine.now()))
                    .collect()
            })
            .await;
        Ok(Response::new(v1::ReloadResponse {
            applied: true,
            pools,
            license_refused: refused.iter().map(convert::refused_line).collect(),
            options_refused: Vec::new(),
            retired,
            leader: self.services.leader_hint(),
        }))
    }

    async fn add_node_call(
        &self,
        request: Request<v1::AddNodeRequest>,
    ) -> Result<Response<v1::AddNodeResponse>, Status> {
        self.authorize(&request)?;
        self.services.must_lead()?;
        let request = request.into_inner();
        qlm_proto::validate::add_node(&request)?;
        let node = &self.services.node;
        // Learner first: it catches up without counting toward the quorum.
        let (id, peer_addr) = (request.id, request.peer_addr.clone());
        node.add_learner(id, peer_addr, request.client_addr.clone())
            .await
            .map_err(|e| Status::failed_precondition(format!("adding learner {id}: {e}")))?;
        if !request.learner_only {
            let mut voters = node.raft_view().voters();
            voters.insert(id);
            node.change_voters(voters)
                .await
                .map_err(|e| Status::failed_precondition(format!("making {id} a voter: {e}")))?;
        }
        info!(node = node.id(), added = request.id, "membership changed");
        Ok(Response::new(v1::AddNodeResponse {
            members: self.services.members(),
            leader: self.services.leader_hint(),
        }))
    }

    async fn remove_node_call(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        self.authorize(&request)?;
        self.services.must_lead()?;
        let id = request.into_inner().id;
        let node = &self.services.node;
        let mut voters = node.raft_view().voters();
        if !voters.remove(&id) {
            return Err(Status::not_found(format!("node {id} is not a voter")));
        }
        if voters.is_empty() {
            return Err(Status::failed_precondition("the last voter cannot be removed"));
        }
        node.change_voters(voters)
            .await
            .map_err(|e| Status::failed_precondition(format!("removing {id}: {e}")))?;
        info!(node = node.id(), removed = id, "membership changed");
        Ok(Response::new(v1::RemoveNodeResponse {
            members: self.services.members(),
            leader: self.services.leader_hint(),
        }))
    }
}

/// Every rpc answers from its `_call` above; a failure gets the leader hint.
#[tonic::async_trait]
impl<N: ClusterNode> AdminService for AdminServices<N> {
    async fn remove(
        &self,
        request: Request<v1::RemoveRequest>,
    ) -> Result<Response<v1::RemoveResponse>, Status> {
        self.remove_call(request).await.map_err(|status| self.services.hinted(status))
    }

    async fn reload(
        &self,
        request: Request<v1::ReloadRequest>,
    ) -> Result<Response<v1::ReloadResponse>, Status> {
        self.reload_call(request).await.map_err(|status| self.services.hinted(status))
    }

    async fn add_node(
        &self,
        request: Request<v1::AddNodeRequest>,
    ) -> Result<Response<v1::AddNodeResponse>, Status> {
        self.add_node_call(request).await.map_err(|status| self.services.hinted(status))
    }

    async fn remove_node(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        self.remove_node_call(request).await.map_err(|status| self.services.hinted(status))
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_ADMIN_TOKEN_BYTES, bearer_token, check_token_length};
    use qlm_engine::secrets_equal as constant_time_eq;
    use tonic::Code;

    #[test]
    fn the_bearer_scheme_is_case_blind_and_the_token_trimmed() {
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR   s3cret  "] {
            let token = bearer_token(Some(value.as_bytes()));
            assert_eq!(token.ok(), Some(&b"s3cret"[..]), "{value:?}");
        }
    }

    #[test]
    fn a_missing_malformed_or_oversize_token_is_unauthenticated_without_echo() {
        let refused = |value: Option<&[u8]>| bearer_token(value).expect_err("refused");
        assert!(refused(None).message().contains("missing"));
        for value in ["Basic s3cret", "Bearers3cret", "Bearer", "Bearer   ", "s3cret", ""] {
            let status = refused(Some(value.as_bytes()));
            assert_eq!(status.code(), Code::Unauthenticated, "{value:?}");
            assert!(!status.message().contains("s3cret"), "{value:?}: {}", status.message());
        }
        let long = format!("Bearer {}", "x".repeat(MAX_ADMIN_TOKEN_BYTES + 1));
        let status = refused(Some(long.as_bytes()));
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(status.message().contains(&MAX_ADMIN_TOKEN_BYTES.to_string()), "{status:?}");
        assert!(!status.message().contains("xxx"), "{status:?}");
        let longest = format!("Bearer {}", "x".repeat(MAX_ADMIN_TOKEN_BYTES));
        assert!(bearer_token(Some(longest.as_bytes())).is_ok());
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn a_configured_token_over_the_limit_is_refused_by_length_alone() {
        assert!(check_token_length(&"t".repeat(MAX_ADMIN_TOKEN_BYTES)).is_ok());
        let reason = check_token_length(&"t".repeat(MAX_ADMIN_TOKEN_BYTES + 1)).unwrap_err();
        assert!(reason.contains(&MAX_ADMIN_TOKEN_BYTES.to_string()), "{reason}");
        assert!(!reason.contains("ttt"), "{reason}");
    }
}
