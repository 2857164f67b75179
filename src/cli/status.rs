//! `qlm status [--json] [--stale]`: what `lmstat -a` shows. Per feature: seats issued (of the
//! pools serving now), in use and queued; each holder with user, host, display, seats, since
//! and handle; the queue. Then the cluster: who answered, the leader, the term, and every
//! member with its role, addresses and applied index.
//!
//! `--stale` reads the answering node's replica (works without a leader). `--json` prints one
//! JSON object with the same content. A cluster view that cannot be had (a node without it)
//! is reported in place and does not fail the command; an unreachable cluster exits 3.

use qlm_client::{Client, ClientError};
use qlm_license::Timestamp;
use qlm_proto::v1;
use serde_json::{Value, json};

use crate::connect::{failed, runtime, seats};
use crate::{BadInput, Outcome, Report};

pub fn run(
    servers: Option<&str>,
    json: bool,
    stale: bool,
    out: &mut Report,
) -> Result<Outcome, BadInput> {
    let client = crate::connect::client(servers)?;
    runtime()?.block_on(async move {
        let (features, checkouts) = match fetch(&client, stale).await {
            Ok(both) => both,
            Err(error) => return failed(error),
        };
        let cluster = match client.cluster(stale).await {
            Err(error @ ClientError::Unreachable { .. }) => return failed(error),
            other => other,
        };
        if json {
            let document = json!({
                "now_unix_ms": features.now_unix_ms,
                "features": features.features.iter().map(|f| feature_json(f, &checkouts)).collect::<Vec<_>>(),
                "cluster": match &cluster { Ok(c) => cluster_json(c), Err(_) => Value::Null },
                "cluster_error": match &cluster { Ok(_) => Value::Null, Err(e) => json!(e.to_string()) },
            });
            out.line(serde_json::to_string_pretty(&document).unwrap_or_default());
        } else {
            print_features(&features, &checkouts, out);
            match &cluster {
                Ok(cluster) => print_cluster(cluster, out),
                Err(error) => out.line(format!("Cluster: not available: {error}")),
            }
        }
        Ok(Outcome::Ok)
    })
}

async fn fetch(
    client: &Client,
    stale: bool,
) -> Result<(v1::FeaturesResponse, v1::CheckoutsResponse), ClientError> {
    Ok((client.features(stale).await?, client.checkouts(stale).await?))
}

fn holders<'a>(
    feature: &'a str,
    checkouts: &'a v1::CheckoutsResponse,
) -> impl Iterator<Item = &'a v1::CheckoutStatus> {
    checkouts.checkouts.iter().filter(move |c| c.feature == feature)
}

fn print_features(
    features: &v1::FeaturesResponse,
    checkouts: &v1::CheckoutsResponse,
    out: &mut Report,
) {
    out.line(format!("License status at {}", Timestamp(features.now_unix_ms)));
    if features.features.is_empty() {
        out.line("No features.");
    }
    for feature in &features.features {
        out.line("");
        out.line(format!(
            "Users of {}: (Total of {} licenses issued; Total of {} licenses in use; {} queued)",
            feature.name, feature.seats_serving, feature.seats_in_use, feature.queued
        ));
        for pool in &feature.pools {
            let state = if pool.serving {
                "serving"
            } else if pool.current {
                "not serving"
            } else {
                "retired"
            };
            out.line(format!(
                "  pool {} v{}: {} of {} in use ({} lingering), expires {}, {state}",
                pool.id, pool.version, pool.in_use, pool.seats, pool.lingering, pool.expires
            ));
        }
        for c in holders(&feature.name, checkouts) {
            let display =
                if c.display.is_empty() { String::new() } else { format!(" {}", c.display) };
            let borrow = c
                .borrow_until_unix_ms
                .map_or(String::new(), |t| format!(", borrowed until {}", Timestamp(t)));
            out.line(format!(
                "    {} {}{display} (v{}) (handle {}), start {}, {}{borrow}",
                c.user,
                c.host,
                c.version,
                c.handle,
                Timestamp(c.since_unix_ms),
                seats(c.count)
            ));
        }
        for q in &feature.queue {
            out.line(format!(
                "    queued #{}: {} {} (handle {}), since {}, {}",
                q.position,
                q.user,
                q.host,
                q.handle,
                Timestamp(q.since_unix_ms),
                seats(q.count)
            ));
        }
    }
}

fn print_cluster(cluster: &v1::ClusterResponse, out: &mut Report) {
    out.line("");
    let leader = cluster.leader.as_ref().filter(|l| l.id != 0);
    out.line(format!(
        "Cluster: leader {}, term {}, as node {} sees it (applied {}, committed {})",
        leader.map_or("none".to_owned(), |l| format!("{} ({})", l.id, l.client_addr)),
        cluster.term,
        cluster.node_id,
        cluster.applied_index,
        cluster.commit_index
    ));
    if cluster.license_time_unix_ms != 0 {
        // The cluster's time (the last stamp applied, which an idle leader's ticks renew), next
        // to this machine's: a large gap means some clock was wrong.
        let here = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_millis()).unwrap_or(i128::MAX));
        let off_s = (i128::from(cluster.license_time_unix_ms) - here) / 1000;
        out.line(format!(
            "License time: {} ({off_s:+} s from this machine's clock)",
            Timestamp(cluster.license_time_unix_ms)
        ));
    }
    for member in &cluster.members {
        let role = role_name(member.role);
        let applied = member.applied_index.map_or("?".to_owned(), |i| i.to_string());
        let lag = member.lag.map_or(String::new(), |lag| format!(", lag {lag}"));
        let reach = if member.reachable { "reachable" } else { "UNREACHABLE" };
        let is_leader = if leader.is_some_and(|l| l.id == member.id) { " leader" } else { "" };
        out.line(format!(
            "  node {} {role}{is_leader}: client {}, peer {}, applied {applied}{lag}, {reach}",
            member.id, member.client_addr, member.peer_addr
        ));
    }
}

pub fn role_name(role: i32) -> &'static str {
    match v1::MemberRole::try_from(role) {
        Ok(v1::MemberRole::Voter) => "voter",
        Ok(v1::MemberRole::Learner) => "learner",
        _ => "unknown",
    }
}

fn feature_json(feature: &v1::FeatureStatus, checkouts: &v1::CheckoutsResponse) -> Value {
    json!({
        "name": feature.name,
        "issued": feature.seats_serving,
        "in_use": feature.seats_in_use,
        "queued": feature.queued,
        "pools": feature.pools.iter().map(|p| json!({
            "id": p.id, "version": p.version, "seats": p.seats, "in_use": p.in_use,
            "lingering": p.lingering, "expires": p.expires, "serving": p.serving,
            "current": p.current,
        })).collect::<Vec<_>>(),
        "holders": holders(&feature.name, checkouts).map(|c| json!({
            "handle": c.handle, "user": c.user, "host": c.host, "display": c.display,
            "version": c.version, "count": c.count, "seats": c.seats, "shared": c.shared,
            "session_id": c.session_id, "since_unix_ms": c.since_unix_ms,
            "borrow_until_unix_ms": c.borrow_until_unix_ms,
        })).collect::<Vec<_>>(),
        "queue": feature.queue.iter().map(|q| json!({
            "position": q.position, "handle": q.handle, "user": q.user, "host": q.host,
            "display": q.display, "count": q.count, "version": q.version,
            "since_unix_ms": q.since_unix_ms,
        })).collect::<Vec<_>>(),
    })
}

pub fn cluster_json(cluster: &v1::ClusterResponse) -> Value {
    json!({
        "node_id": cluster.node_id,
        "term": cluster.term,
        "applied_index": cluster.applied_index,
        "commit_index": cluster.commit_index,
        "last_log_index": cluster.last_log_index,
        "license_time_unix_ms": cluster.license_time_unix_ms,
        "leader": cluster.leader.as_ref().map(|l| json!({"id": l.id, "client_addr": l.client_addr})),
        "members": cluster.members.iter().map(|m| json!({
            "id": m.id, "role": role_name(m.role), "client_addr": m.client_addr,
            "peer_addr": m.peer_addr, "applied_index": m.applied_index,
            "matched_index": m.matched_index, "lag": m.lag, "reachable": m.reachable,
        })).collect::<Vec<_>>(),
    })
}
