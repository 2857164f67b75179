//! Calls of AdminService (`qlm admin`, `qlm cluster`). Each needs the admin token, set with
//! [`Client::with_admin_token`] (see [`crate::admin_token_from_env`]); it travels as
//! `authorization: Bearer <token>`. A client without a token fails before sending anything.

use crate::connection::Client;
use crate::error::ClientError;
use qlm_proto::v1;
use qlm_proto::v1::admin_service_client::AdminServiceClient;

/// What [`Client::remove`] releases (FlexLM's lmremove).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveTarget {
    /// One checkout, by handle.
    Handle(u64),
    /// Every checkout of a user, narrowed by host and feature when given.
    Holder { user: String, host: Option<String>, feature: Option<String> },
}

impl Client {
    /// Releases checkouts at once, without linger; returns the handles released.
    pub async fn remove(&self, target: RemoveTarget) -> Result<Vec<u64>, ClientError> {
        use v1::remove_request::Target;
        let target = match target {
            RemoveTarget::Handle(handle) => Target::Handle(handle),
            RemoveTarget::Holder { user, host, feature } => Target::Holder(v1::HolderSelector {
                user,
                host: host.unwrap_or_default(),
                feature: feature.unwrap_or_default(),
            }),
        };
        let request = v1::RemoveRequest { target: Some(target) };
        self.require_token()?;
        let removed = self
            .call("Remove", |channel| {
                let request = self.request(request.clone());
                async move { AdminServiceClient::new(channel).remove(request).await }
            })
            .await?;
        Ok(removed.released)
    }

    /// Makes the leader re-read its license and options files.
    pub async fn reload(&self) -> Result<v1::ReloadResponse, ClientError> {
        self.require_token()?;
        self.call("Reload", |channel| {
            let request = self.request(v1::ReloadRequest {});
            async move { AdminServiceClient::new(channel).reload(request).await }
        })
        .await
    }

    /// Adds a member (learner first, then voter unless `learner_only`); returns the
    /// membership after the change.
    pub async fn add_node(
        &self,
        id: u64,
        peer_addr: &str,
        client_addr: &str,
        learner_only: bool,
    ) -> Result<Vec<v1::Member>, ClientError> {
        self.require_token()?;
        let request = v1::AddNodeRequest {
            id,
            peer_addr: peer_addr.to_owned(),
            client_addr: client_addr.to_owned(),
            learner_only,
        };
        let added = self
            .call("AddNode", |channel| {
                let request = self.request(request.clone());
                async move { AdminServiceClient::new(channel).add_node(request).await }
            })
            .await?;
        Ok(added.members)
    }

    /// Removes a member; returns the membership after the change.
    pub async fn remove_node(&self, id: u64) -> Result<Vec<v1::Member>, ClientError> {
        self.require_token()?;
        let request = v1::RemoveNodeRequest { id };
        let removed = self
            .call("RemoveNode", |channel| {
                let request = self.request(request);
                async move { AdminServiceClient::new(channel).remove_node(request).await }
            })
            .await?;
        Ok(removed.members)
    }

    fn require_token(&self) -> Result<(), ClientError> {
        if self.has_admin_token() {
            Ok(())
        } else {
            Err(ClientError::AdminToken("no admin token set for an admin call".into()))
        }
    }
}
