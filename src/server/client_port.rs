//! The client port's gRPC services as one set of routes: health, reflection, LicenseService,
//! StatusService and AdminService, each refusing a request over the client message limit.
//! `qlmd` serves them (`run`), and so does [`crate::testkit`], so a test reaches the services
//! a node serves, set up as the node sets them up.

use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::admin::AdminServices;
use crate::cluster_node::ClusterNode;
use crate::refusals::MAX_CLIENT_MESSAGE_BYTES;
use crate::services::ClientServices;
use qlm_proto::v1::admin_service_server::AdminServiceServer;
use qlm_proto::v1::license_service_server::LicenseServiceServer;
use qlm_proto::v1::status_service_server::StatusServiceServer;

/// The client port's routes over `services`, the admin calls checked against `admin_token`
/// (none refuses them all). The health service reports the node and every service serving.
pub async fn client_port_routes<N: ClusterNode>(
    services: ClientServices<N>,
    admin_token: Option<String>,
) -> Result<Routes, String> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("", ServingStatus::Serving).await;
    health_reporter.set_serving::<LicenseServiceServer<ClientServices<N>>>().await;
    health_reporter.set_serving::<StatusServiceServer<ClientServices<N>>>().await;
    health_reporter.set_serving::<AdminServiceServer<AdminServices<N>>>().await;
    let reflection =
        crate::reflection::client_port_reflection().map_err(|e| format!("reflection: {e}"))?;
    let admin = AdminServices { services: services.clone(), token: admin_token };
    let routes = Routes::new(health_service.max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES))
        .add_service(reflection.max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES))
        .add_service(
            LicenseServiceServer::new(services.clone())
                .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES),
        )
        .add_service(
            StatusServiceServer::new(services).max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES),
        )
        .add_service(
            AdminServiceServer::new(admin).max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES),
        );
    Ok(routes)
}
