//! Read calls of StatusService: what `lmstat -a` shows.
//!
//! By default each read is linearizable (the leader confirms it is still the leader before it
//! answers); `stale = true` asks the answering node's own replica, which answers at once even
//! without a leader but may be behind by a few entries.

use crate::connection::Client;
use crate::error::ClientError;
use qlm_proto::v1;
use qlm_proto::v1::status_service_client::StatusServiceClient;

impl Client {
    /// Every feature: pools, seats serving and in use, queue, reservations.
    pub async fn features(&self, stale: bool) -> Result<v1::FeaturesResponse, ClientError> {
        let request = v1::FeaturesRequest { stale, feature: String::new() };
        self.call("Features", |channel| {
            let request = self.request(request.clone());
            async move { StatusServiceClient::new(channel).features(request).await }
        })
        .await
    }

    /// Every checkout with its holder.
    pub async fn checkouts(&self, stale: bool) -> Result<v1::CheckoutsResponse, ClientError> {
        let request = v1::CheckoutsRequest { stale, ..Default::default() };
        self.call("Checkouts", |channel| {
            let request = self.request(request.clone());
            async move { StatusServiceClient::new(channel).checkouts(request).await }
        })
        .await
    }

    /// The cluster: members, leader, term, applied index per node.
    pub async fn cluster(&self, stale: bool) -> Result<v1::ClusterResponse, ClientError> {
        let request = v1::ClusterRequest { stale };
        self.call("Cluster", |channel| {
            let request = self.request(request);
            async move { StatusServiceClient::new(channel).cluster(request).await }
        })
        .await
    }
}
