//! `qlm cluster members [--stale] [--json]`, `qlm cluster add ID PEER_ADDR CLIENT_ADDR
//! [--learner-only]`, `qlm cluster remove ID`. Listing members is a status read; adding and
//! removing need the admin token (see `admin`).

use std::path::PathBuf;

use clap::Subcommand;
use qlm_proto::v1;

use crate::admin::admin_client;
use crate::connect::{failed, runtime};
use crate::status::{cluster_json, role_name};
use crate::{BadInput, Outcome, Report};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// List the members, the leader and each node's applied index.
    Members {
        /// Ask the answering node's own view (works without a leader).
        #[arg(long)]
        stale: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a node (learner first, then voter). Start it with empty data first.
    Add {
        /// The new node's id (its --id).
        id: u64,
        /// Its peer address, host:port (its --peer-listen).
        peer_addr: String,
        /// Its client address, host:port (its --listen).
        client_addr: String,
        /// Keep it a learner (no vote).
        #[arg(long)]
        learner_only: bool,
        /// File holding the admin token (default: QLM_ADMIN_TOKEN, QLM_ADMIN_TOKEN_FILE).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
    /// Remove a node from the cluster.
    Remove {
        /// The member's id.
        id: u64,
        /// File holding the admin token (default: QLM_ADMIN_TOKEN, QLM_ADMIN_TOKEN_FILE).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
}

pub fn run(
    servers: Option<&str>,
    command: ClusterCommand,
    out: &mut Report,
) -> Result<Outcome, BadInput> {
    match command {
        ClusterCommand::Members { stale, json } => {
            let client = crate::connect::client(servers)?;
            runtime()?.block_on(async move {
                let cluster = match client.cluster(stale).await {
                    Ok(cluster) => cluster,
                    Err(error) => return failed(error),
                };
                if json {
                    out.line(
                        serde_json::to_string_pretty(&cluster_json(&cluster)).unwrap_or_default(),
                    );
                } else {
                    let leader = cluster.leader.as_ref().map_or(0, |l| l.id);
                    out.line(format!(
                        "term {}, leader {}, as node {} sees it",
                        cluster.term, leader, cluster.node_id
                    ));
                    members(&cluster.members, out);
                }
                Ok(Outcome::Ok)
            })
        }
        ClusterCommand::Add { id, peer_addr, client_addr, learner_only, token_file } => {
            let client = admin_client(servers, token_file.as_deref())?;
            runtime()?.block_on(async move {
                match client.add_node(id, &peer_addr, &client_addr, learner_only).await {
                    Ok(after) => members(&after, out),
                    Err(error) => return failed(error),
                }
                Ok(Outcome::Ok)
            })
        }
        ClusterCommand::Remove { id, token_file } => {
            let client = admin_client(servers, token_file.as_deref())?;
            runtime()?.block_on(async move {
                match client.remove_node(id).await {
                    Ok(after) => members(&after, out),
                    Err(error) => return failed(error),
                }
                Ok(Outcome::Ok)
            })
        }
    }
}

fn members(members: &[v1::Member], out: &mut Report) {
    for member in members {
        let applied = member.applied_index.map_or("?".to_owned(), |i| i.to_string());
        out.line(format!(
            "node {} {}: client {}, peer {}, applied {applied}{}",
            member.id,
            role_name(member.role),
            member.client_addr,
            member.peer_addr,
            if member.reachable { "" } else { ", UNREACHABLE" }
        ));
    }
}
