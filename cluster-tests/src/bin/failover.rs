//! Failover benchmark: kill -9 of the leader of a real 3-process cluster, and the time until a
//! client on a surviving node is granted a checkout again; then the killed node restarted from
//! its data, and the time until it serves. Several runs; prints each, the median and the worst.
//!
//! `make bench-failover` (release build). docs/BENCHMARKS.md records the figures.

use std::time::{Duration, Instant};

use cluster_tests::Cluster;
use quorumlm::proto::v1;
use quorumlm::proto::v1::license_service_client::LicenseServiceClient;
use quorumlm::proto::v1::status_service_client::StatusServiceClient;

/// Runs measured (each with a fresh cluster).
const RUNS: usize = 7;
/// Give up on a run after this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between a client's attempts while the cluster has no leader.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

fn checkout(session_id: &str, request_id: String) -> v1::CheckoutRequest {
    v1::CheckoutRequest {
        session_id: session_id.into(),
        request_id,
        feature: "simulator".into(),
        version: String::new(),
        count: 1,
        wait: false,
        borrow_until_unix_ms: None,
    }
}

async fn one_run(run: usize) -> Result<(Duration, Duration), String> {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let survivor = (1..=3).find(|&id| id != leader).ok_or("no survivor")?;
    let mut client =
        LicenseServiceClient::connect(format!("http://{}", cluster.client_addr(survivor)))
            .await
            .map_err(|e| e.to_string())?;
    let open = v1::OpenSessionRequest {
        user: "bench".into(),
        host: "bench".into(),
        pid: 1,
        display: String::new(),
        ttl_ms: 60_000,
        request_id: String::new(),
    };
    let session =
        client.open_session(open).await.map_err(|e| e.to_string())?.into_inner().session_id;
    client.checkout(checkout(&session, "warm".into())).await.map_err(|e| e.to_string())?;

    cluster.kill(leader);
    let killed = Instant::now();
    let mut attempt = 0;
    let granted_after = loop {
        attempt += 1;
        let mut request = tonic::Request::new(checkout(&session, format!("r{attempt}")));
        request.set_timeout(Duration::from_secs(2));
        if let Ok(answer) = client.checkout(request).await
            && matches!(answer.into_inner().result, Some(v1::checkout_response::Result::Granted(_)))
        {
            break killed.elapsed();
        }
        if killed.elapsed() > RUN_TIMEOUT {
            return Err(format!("run {run}: no grant within {RUN_TIMEOUT:?}"));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    };

    cluster.spawn(leader);
    let restarted = Instant::now();
    let serving_after = loop {
        if let Ok(mut status) =
            StatusServiceClient::connect(format!("http://{}", cluster.client_addr(leader))).await
        {
            let request = v1::FeaturesRequest { stale: false, feature: "simulator".into() };
            if let Ok(answer) = status.features(request).await
                && answer.into_inner().features.first().is_some_and(|f| f.seats_in_use >= 2)
            {
                break restarted.elapsed();
            }
        }
        if restarted.elapsed() > RUN_TIMEOUT {
            return Err(format!(
                "run {run}: the restarted node did not serve within {RUN_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    };
    Ok((granted_after, serving_after))
}

fn summary(name: &str, mut values: Vec<Duration>) {
    values.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let all: Vec<String> = values.iter().map(|d| format!("{:.0}", ms(d))).collect();
    let median = values.get(values.len() / 2).map_or(0.0, ms);
    let worst = values.last().map_or(0.0, ms);
    println!(
        "{name:<44} median {median:>6.0} ms  worst {worst:>6.0} ms  (runs: {})",
        all.join(", ")
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("failover: kill -9 of the leader of 3 qlmd processes on loopback, {RUNS} runs");
    let (mut grants, mut serving) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        match one_run(run).await {
            Ok((granted, served)) => {
                println!(
                    "run {run}: next grant after {granted:?}; restarted node serving after {served:?}"
                );
                grants.push(granted);
                serving.push(served);
            }
            Err(e) => println!("{e}"),
        }
    }
    summary("kill -9 leader -> next granted checkout", grants);
    summary("restart of the killed node -> serving", serving);
}
