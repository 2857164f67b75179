//! `qlm health`: the standard gRPC health check (`grpc.health.v1.Health/Check`) of each
//! server, for container healthchecks, systemd and scripts (the image has no shell, no curl and
//! no grpc_health_probe: this is its probe).
//!
//! Each server listed is asked on its own (no failover: a healthcheck is about one node):
//! exit 0 when every one answers SERVING, 1 when one answers but is not serving, 3 when one
//! cannot be reached within the deadline. One line per server says what it answered.

use std::time::Duration;

use clap::Args;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use qlm_client::{ServerAddr, parse_servers};

use crate::connect::runtime;
use crate::{BadInput, Outcome, Report};

/// How long a health check waits by default for each server (connect and answer).
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 2_000;

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The service to check; empty (the default) is the whole server.
    #[arg(long, default_value = "")]
    service: String,
    /// Milliseconds to wait for each server.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_HEALTH_TIMEOUT_MS)]
    timeout_ms: u64,
}

/// What one server answered.
enum Answer {
    Serving,
    NotServing(String),
    Unreachable(String),
}

pub fn run(
    servers: Option<&str>,
    args: HealthArgs,
    report: &mut Report,
) -> Result<Outcome, BadInput> {
    let Some(list) = servers.filter(|list| !list.trim().is_empty()) else {
        return Err(BadInput(
            "no license servers: give --servers host:7400,... or set QLM_SERVERS".into(),
        ));
    };
    let servers = parse_servers(list)?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let answers = runtime()?.block_on(async {
        let mut answers = Vec::new();
        for server in &servers {
            answers.push(check(server, &args.service, timeout).await);
        }
        answers
    });
    let mut outcome = Outcome::Ok;
    for (server, answer) in servers.iter().zip(answers) {
        match answer {
            Answer::Serving => report.line(format!("{server}: SERVING")),
            Answer::NotServing(status) => {
                report.line(format!("{server}: {status}"));
                if outcome == Outcome::Ok {
                    outcome = Outcome::Refused;
                }
            }
            Answer::Unreachable(why) => {
                report.line(format!("{server}: UNREACHABLE ({why})"));
                outcome = Outcome::Unreachable;
            }
        }
    }
    Ok(outcome)
}

async fn check(server: &ServerAddr, service: &str, timeout: Duration) -> Answer {
    let endpoint = match tonic::transport::Endpoint::from_shared(server.uri()) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Answer::Unreachable(e.to_string()),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return Answer::Unreachable(error_chain(&e)),
        Err(_) => return Answer::Unreachable(format!("no connection within {timeout:?}")),
    };
    let request = HealthCheckRequest { service: service.to_owned() };
    match tokio::time::timeout(timeout, HealthClient::new(channel).check(request)).await {
        Err(_) => Answer::Unreachable(format!("no answer within {timeout:?}")),
        Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
            Answer::NotServing(format!("SERVICE_UNKNOWN ({})", status.message()))
        }
        Ok(Err(status)) => {
            Answer::Unreachable(format!("{:?}: {}", status.code(), status.message()))
        }
        Ok(Ok(reply)) => match ServingStatus::try_from(reply.into_inner().status) {
            Ok(ServingStatus::Serving) => Answer::Serving,
            Ok(other) => Answer::NotServing(other.as_str_name().to_owned()),
            Err(_) => Answer::NotServing("an unknown status".to_owned()),
        },
    }
}

/// An error with its causes (tonic's transport errors say little at the top).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Layers often repeat their cause's words; say each once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
