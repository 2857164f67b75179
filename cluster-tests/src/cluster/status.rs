//! The harness's own calls to its nodes: channels to the client port (TLS when the cluster
//! runs it), cluster status, checkouts, the leader, and waiting until the cluster serves.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use qlm_proto::v1;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::Cluster;
use crate::READY_TIMEOUT;

impl Cluster {
    /// Every checkout node `id` holds (stale read: its own replica).
    pub async fn checkouts(&self, id: u64) -> Result<Vec<v1::CheckoutStatus>, tonic::Status> {
        let addr = format!("http://{}", self.client_addr(id));
        let mut client = StatusServiceClient::connect(addr)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(v1::CheckoutsRequest {
            stale: true,
            ..v1::CheckoutsRequest::default()
        });
        request.set_timeout(Duration::from_secs(2));
        Ok(client.checkouts(request).await?.into_inner().checkouts)
    }

    /// The leader as the first live node that names one sees it, if any answers.
    pub async fn leader(&self) -> Option<u64> {
        for id in self.live() {
            if let Ok(status) = self.cluster_status(id).await
                && let Some(leader) = status.leader
                && leader.id != 0
            {
                return Some(leader.id);
            }
        }
        None
    }

    /// A connected channel to node `id`'s client port: TLS trusting the cluster CA when the
    /// cluster runs TLS, plaintext otherwise.
    pub async fn client_channel(&self, id: u64) -> Result<Channel, tonic::Status> {
        let unavailable = |e: tonic::transport::Error| tonic::Status::unavailable(e.to_string());
        let endpoint = match &self.tls {
            None => Endpoint::from_shared(format!("http://{}", self.client_addr(id)))
                .map_err(unavailable)?,
            Some(tls) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|e| tonic::Status::internal(e.to_string()))
                };
                let mut config = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(&tls.ca.cert)?));
                if self.options.require_client_certs {
                    let own = &tls.nodes[0];
                    config = config.identity(Identity::from_pem(read(&own.cert)?, read(&own.key)?));
                }
                Endpoint::from_shared(format!("https://{}", self.client_addr(id)))
                    .map_err(unavailable)?
                    .tls_config(config)
                    .map_err(unavailable)?
            }
        };
        endpoint.connect().await.map_err(unavailable)
    }

    /// Asks node `id` for the cluster's state (stale read: this node's own view).
    pub async fn cluster_status(&self, id: u64) -> Result<v1::ClusterResponse, tonic::Status> {
        let mut client = StatusServiceClient::new(self.client_channel(id).await?);
        let mut request = tonic::Request::new(v1::ClusterRequest { stale: true });
        request.set_timeout(Duration::from_secs(2));
        Ok(client.cluster(request).await?.into_inner())
    }

    /// Waits until the running nodes agree on a leader and it serves the test license;
    /// returns the leader's id.
    pub async fn wait_ready(&self) -> u64 {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Ok(status) = self.cluster_status(node.id).await
                    && let Some(leader) = status.leader
                    && self.serves_license(leader.id).await
                {
                    return leader.id;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- node {}:\n{}", n.id, self.log_of(n.id)))
                    .collect();
                panic!(
                    "no leader serving the license within {READY_TIMEOUT:?}\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn serves_license(&self, id: u64) -> bool {
        let Ok(channel) = self.client_channel(id).await else { return false };
        let mut client = StatusServiceClient::new(channel);
        let request = v1::FeaturesRequest { stale: true, feature: String::new() };
        client.features(request).await.is_ok_and(|r| !r.into_inner().features.is_empty())
    }
}
