//! Security of a real cluster: TLS on the client port and mutual TLS between peers, the admin
//! token, and what the logs never show.
//!
//! - A TLS cluster elects a leader and serves a client that trusts its CA; a client that does
//!   not (no CA, another CA, the system's roots) gets no answer (exit 3).
//! - A peer with a certificate from another CA, or with none, or speaking plaintext, cannot
//!   send a Raft vote, an append, a forwarded write or a hello: each call fails, and the
//!   cluster's term, membership and seats stay as they were.
//! - AdminService without the token, or with a wrong one, answers UNAUTHENTICATED and removes
//!   nothing; the token never appears in any node's log, even at debug level.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cluster_tests::{Cluster, ClusterOptions, ClusterTls, TEST_ADMIN_TOKEN, qlmd_binary};
use openraft::{CommittedLeaderId, LogId, Vote};
use qlm_client::{CheckoutOptions, Client, Session, SessionOptions, parse_servers};
use qlm_engine::{Command as EngineCommand, RemoveTarget};
use qlm_net::tls::ClientTls;
use qlm_proto::v1;
use qlm_proto::v1::admin_service_client::AdminServiceClient;
use qlm_proto::v1::raft_service_client::RaftServiceClient;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use qlm_raft::TypeConfig;
use qlm_raft::network::{PAYLOAD_FORMAT, encode_payload};
use qlm_server::config::{NodeConfig, NodeFlags};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

fn qlm_binary() -> PathBuf {
    qlmd_binary().with_file_name("qlm")
}

fn qlm(args: &[&str]) -> Output {
    Command::new(qlm_binary())
        .args(args)
        .env_remove("QLM_SERVERS")
        .env_remove("QLM_TLS_CA")
        .env_remove("QLM_CLIENT_CERT")
        .env_remove("QLM_CLIENT_KEY")
        .env("QLM_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
        .output()
        .expect("qlm runs (was it built? cargo build --bins)")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// A library client of `cluster`, over TLS with the cluster CA when it runs TLS.
fn library_client(cluster: &Cluster) -> Client {
    let client = Client::connect(parse_servers(&cluster.servers()).unwrap()).unwrap();
    match &cluster.tls {
        Some(tls) => client.with_tls(&ClientTls::read(Some(&tls.ca.cert), None, None).unwrap()),
        None => client,
    }
}

/// Opens a session of `user` and checks one vhdl-editor seat out; the session is returned so
/// it keeps heartbeating while the test runs.
async fn hold_a_seat(client: &Client, user: &str) -> Session {
    let options =
        SessionOptions { user: user.into(), host: "ws1".into(), ..SessionOptions::default() };
    let session = client.open_session(options).await.expect("a session");
    let seat = session.checkout("vhdl-editor", CheckoutOptions::default()).await.expect("a seat");
    seat.keep();
    session
}

/// The users holding vhdl-editor seats, as the cluster answers (linearizable read).
async fn holders(client: &Client) -> Vec<String> {
    let checkouts = client.checkouts(false).await.expect("the checkouts").checkouts;
    checkouts.into_iter().filter(|c| c.feature == "vhdl-editor").map(|c| c.user).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_clients_that_trust_its_ca_and_no_others() {
    let cluster = Cluster::start_with(ClusterOptions { nodes: 3, tls: true, ..Default::default() });
    cluster.wait_ready().await;
    let tls = cluster.tls.clone().expect("TLS files");
    let ca = path(&tls.ca.cert);
    for id in 1..=3 {
        let log = cluster.log_of(id);
        assert!(!log.contains("PLAINTEXT"), "node {id} must not warn of plaintext:\n{log}");
    }

    // The library checks a seat out over TLS; `qlm` with --tls-ca sees it and runs a job.
    let client = library_client(&cluster);
    let _session = hold_a_seat(&client, "tls-user").await;
    let servers = cluster.servers();
    let status = qlm(&["--servers", &servers, "--tls-ca", ca, "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("Total of 1 licenses in use") && shown.contains("tls-user"), "{shown}");
    let https: Vec<String> = servers.split(',').map(|s| format!("https://{s}")).collect();
    let run =
        qlm(&["--servers", &https.join(","), "--tls-ca", ca, "run", "synthesis", "--", "true"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));

    // A client that does not trust the CA gets no answer: exit 3, the cluster unreachable.
    let foreign = tempfile::tempdir().unwrap();
    let made = qlm(&["cert", "ca", "--out", path(foreign.path())]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let foreign_ca = foreign.path().join("ca.pem");
    for args in [
        vec!["--servers", &servers, "status"],
        vec!["--servers", &servers, "--tls-ca", path(&foreign_ca), "status"],
        vec!["--servers", &https.join(","), "status"],
    ] {
        let refused = qlm(&args);
        assert_eq!(refused.status.code(), Some(3), "{args:?}: {}", text(&refused));
    }
    let untrusting = Client::connect(parse_servers(&servers).unwrap())
        .unwrap()
        .with_tls(&ClientTls::read(Some(&foreign_ca), None, None).unwrap());
    let error = untrusting.features(true).await.expect_err("no answer without the CA");
    assert!(error.is_unreachable(), "{error:?}");
}

/// A raw RaftService client of the peer port at `addr`, as an intruder would make it.
async fn raw_peer(
    addr: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<RaftServiceClient<Channel>, String> {
    let endpoint = match tls {
        None => Endpoint::from_shared(format!("http://{addr}")).map_err(|e| e.to_string())?,
        Some(tls) => Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?,
    };
    let channel = endpoint.connect().await.map_err(|e| format!("connect: {e}"))?;
    Ok(RaftServiceClient::new(channel))
}

/// Sends every kind of peer message an intruder could use; answers what went through.
async fn peer_messages_accepted(
    client: &mut RaftServiceClient<Channel>,
    cluster_id: &str,
    target: u64,
    forged_term: u64,
) -> Vec<String> {
    let raft = |payload: Vec<u8>| v1::RaftRequest {
        cluster_id: cluster_id.into(),
        sender_id: 2,
        target_id: target,
        format: PAYLOAD_FORMAT.into(),
        payload,
    };
    let last = Some(LogId::new(CommittedLeaderId::new(forged_term, 2), 1_000_000));
    let vote = openraft::raft::VoteRequest::new(Vote::new(forged_term, 2), last);
    let append = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(forged_term, 2),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let remove = EngineCommand::Remove {
        target: RemoveTarget::Holder { user: "victim".into(), host: None, feature: None },
    };
    let mut accepted = Vec::new();
    match client.vote(raft(encode_payload(&vote).unwrap())).await {
        Ok(_) => accepted.push("Vote".to_owned()),
        Err(status) => {
            eprintln!("node {target}: Vote refused: {:?}: {}", status.code(), status.message());
            // Refused by the transport (the TLS handshake), not answered by the service.
            let transport = [Code::Unknown, Code::Cancelled, Code::Unavailable, Code::Internal];
            assert!(transport.contains(&status.code()), "node {target}: {status:?}");
        }
    }
    if client.append_entries(raft(encode_payload(&append).unwrap())).await.is_ok() {
        accepted.push("AppendEntries".to_owned());
    }
    let forward = v1::ForwardRequest {
        cluster_id: cluster_id.into(),
        sender_id: 2,
        format: PAYLOAD_FORMAT.into(),
        command: encode_payload(&remove).unwrap(),
    };
    if client.forward(forward).await.is_ok() {
        accepted.push("Forward".to_owned());
    }
    let hello = v1::HelloRequest { cluster_id: cluster_id.into(), sender_id: 2 };
    if client.hello(hello).await.is_ok() {
        accepted.push("Hello".to_owned());
    }
    accepted
}

/// The cluster id the nodes put in their peer messages, resolved from the cluster's flags as
/// a node does.
fn cluster_id_of(cluster: &Cluster) -> String {
    let flags = NodeFlags {
        id: Some(1),
        data_dir: Some("unused".into()),
        listen: Some("127.0.0.1:1".parse().unwrap()),
        peer_listen: Some("127.0.0.1:2".parse().unwrap()),
        http_listen: Some("127.0.0.1:3".parse().unwrap()),
        initial_cluster: Some(cluster.initial_cluster().to_owned()),
        license: Some("unused".into()),
        vendor_pubkey: vec!["unused".into()],
        ..NodeFlags::default()
    };
    qlm_server::run::cluster_id(&NodeConfig::resolve(flags).unwrap())
}

/// A TLS client configuration that trusts the cluster's CA.
fn trusting(tls: &ClusterTls) -> ClientTlsConfig {
    let cluster_ca = Certificate::from_pem(std::fs::read(&tls.ca.cert).unwrap());
    ClientTlsConfig::new().ca_certificate(cluster_ca)
}

/// An intruder with a certificate from another CA (made with `qlm cert`), one with no
/// certificate, and one speaking plaintext. Each trusts the cluster's CA, so the only thing
/// missing is a client certificate the cluster accepts.
fn intruders(tls: &ClusterTls) -> [(&'static str, Option<ClientTlsConfig>); 3] {
    let foreign = tempfile::tempdir().unwrap();
    let dir = path(foreign.path());
    assert_eq!(qlm(&["cert", "ca", "--out", dir]).status.code(), Some(0));
    let made = qlm(&[
        "cert",
        "node",
        "--ca",
        dir,
        "--name",
        "intruder",
        "--host",
        "127.0.0.1",
        "--out",
        dir,
    ]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let foreign_identity = Identity::from_pem(
        std::fs::read(foreign.path().join("intruder.pem")).unwrap(),
        std::fs::read(foreign.path().join("intruder.key")).unwrap(),
    );
    [
        ("a certificate from another CA", Some(trusting(tls).identity(foreign_identity))),
        ("no certificate", Some(trusting(tls))),
        ("plaintext", None),
    ]
}

/// Every intruder tries every kind of peer message on every node: none goes through.
async fn no_intruder_gets_through(cluster: &Cluster, cluster_id: &str, forged_term: u64) {
    let intruders = intruders(cluster.tls.as_ref().expect("TLS files"));
    for node in &cluster.nodes {
        for (who, config) in &intruders {
            match raw_peer(&node.peer_addr, config.clone()).await {
                Err(refused) => eprintln!("node {}: {who}: refused at connect: {refused}", node.id),
                Ok(mut peer) => {
                    let accepted =
                        peer_messages_accepted(&mut peer, cluster_id, node.id, forged_term).await;
                    assert!(accepted.is_empty(), "node {} took {accepted:?} from {who}", node.id);
                }
            }
        }
    }
}

/// The same message with the cluster's own certificate goes through: what refused the
/// intruders is their certificate, not the form of their messages.
async fn a_members_hello_is_answered(cluster: &Cluster, cluster_id: &str, leader: u64) {
    let tls = cluster.tls.as_ref().expect("TLS files");
    let member = Identity::from_pem(
        std::fs::read(&tls.nodes[1].cert).unwrap(),
        std::fs::read(&tls.nodes[1].key).unwrap(),
    );
    let target = cluster.nodes.iter().find(|n| n.id == leader).unwrap();
    let mut peer = raw_peer(&target.peer_addr, Some(trusting(tls).identity(member))).await.unwrap();
    let hello = v1::HelloRequest { cluster_id: cluster_id.to_owned(), sender_id: 2 };
    let answer = peer.hello(hello).await.expect("a member's hello is answered");
    assert_eq!(answer.into_inner().id, leader);
}

/// Nothing changed since `before`: no node took the forged term, the membership is the same,
/// the seat is still held.
async fn nothing_changed(
    cluster: &Cluster,
    client: &Client,
    before: v1::ClusterResponse,
    forged_term: u64,
) {
    for id in 1..=3 {
        // A follower may still be catching up with the log (its own view lists no members
        // before it applied the first entry): wait for it, within a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let after = loop {
            let after = cluster.cluster_status(id).await.expect("the node's state");
            if !after.members.is_empty() || std::time::Instant::now() > deadline {
                break after;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(after.term < forged_term, "node {id} took the forged term: {after:?}");
        let ids: Vec<u64> = after.members.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3], "node {id}");
    }
    let after = client.cluster(false).await.expect("the cluster's state");
    assert_eq!(
        (after.term, after.leader.map(|l| l.id)),
        (before.term, before.leader.map(|l| l.id)),
        "term and leader"
    );
    assert_eq!(holders(client).await, ["victim"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_a_certificate_from_the_cluster_ca_cannot_send_raft_messages() {
    let cluster = Cluster::start_with(ClusterOptions { nodes: 3, tls: true, ..Default::default() });
    let leader = cluster.wait_ready().await;
    let client = library_client(&cluster);
    let _session = hold_a_seat(&client, "victim").await;
    let before = client.cluster(false).await.expect("the cluster's state");
    let forged_term = before.term + 100;
    let cluster_id = cluster_id_of(&cluster);

    no_intruder_gets_through(&cluster, &cluster_id, forged_term).await;
    a_members_hello_is_answered(&cluster, &cluster_id, leader).await;
    nothing_changed(&cluster, &client, before, forged_term).await;
}

/// `message` with `authorization: AUTH` when given.
fn with<T>(auth: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(auth) = auth {
        request.metadata_mut().insert("authorization", auth.parse().unwrap());
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_without_the_right_token_are_refused_and_the_token_is_never_logged() {
    let debug = [("QLM_LOG", "debug"), ("RUST_LOG", "debug")];
    let options = ClusterOptions {
        env: debug.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    let cluster = Cluster::start_with(ClusterOptions { nodes: 3, ..options });
    let leader = cluster.wait_ready().await;
    let client = library_client(&cluster);
    let _session = hold_a_seat(&client, "victim").await;

    let mut admin = AdminServiceClient::new(cluster.client_channel(leader).await.unwrap());
    let remove = || v1::RemoveRequest {
        target: Some(v1::remove_request::Target::Holder(v1::HolderSelector {
            user: "victim".into(),
            host: String::new(),
            feature: String::new(),
        })),
    };
    for auth in [None, Some("Bearer wrong-token-4711"), Some("Bearer "), Some("test-admin-token")] {
        let status = admin.remove(with(auth, remove())).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{auth:?}: {status:?}");
        let status = admin.reload(with(auth, v1::ReloadRequest {})).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{auth:?}: {status:?}");
        let request = v1::RemoveNodeRequest { id: 3 };
        let status = admin.remove_node(with(auth, request)).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{auth:?}: {status:?}");
        let stranger = cluster.nodes[0].peer_addr.clone();
        let request = v1::AddNodeRequest {
            id: 9,
            peer_addr: stranger,
            client_addr: String::new(),
            learner_only: true,
        };
        let status = admin.add_node(with(auth, request)).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{auth:?}: {status:?}");
    }
    // The library and `qlm` with a wrong token: refused too (exit 1), nothing removed.
    let wrong = client.with_admin_token("wrong-token-4711");
    let error = wrong.remove_node(3).await.expect_err("refused");
    assert!(format!("{error:?}").contains("Unauthenticated"), "{error:?}");
    let servers = cluster.servers();
    let refused = Command::new(qlm_binary())
        .args(["--servers", &servers, "admin", "remove", "--user", "victim"])
        .env("QLM_ADMIN_TOKEN", "wrong-token-4711")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert_eq!(holders(&client).await, ["victim"], "the seat is still held");
    let members = client.cluster(false).await.unwrap().members;
    assert_eq!(members.len(), 3, "no node was removed");

    // The right token removes the seat (so the token did travel to the nodes).
    let removed = qlm(&["--servers", &servers, "admin", "remove", "--user", "victim"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed));
    assert!(holders(&client).await.is_empty(), "the right token removes the seat");

    // Every node logged at debug level, said it runs plaintext, and never wrote the token.
    let mut status = StatusServiceClient::new(cluster.client_channel(leader).await.unwrap());
    status.cluster(v1::ClusterRequest { stale: false }).await.unwrap();
    for id in 1..=3 {
        let log = cluster.log_of(id);
        assert!(log.contains("DEBUG"), "node {id} logs at debug level");
        assert!(
            log.contains("PLAINTEXT MODE")
                && log.contains("client port")
                && log.contains("peer port"),
            "node {id} warns of plaintext ports:\n{}",
            log.lines().take(20).collect::<Vec<_>>().join("\n")
        );
        assert!(!log.contains(TEST_ADMIN_TOKEN), "node {id} logged the admin token");
        assert!(!log.contains("wrong-token-4711"), "node {id} logged a presented token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_port_with_a_client_ca_serves_only_clients_with_its_certificates() {
    let options = ClusterOptions { tls: true, require_client_certs: true, ..Default::default() };
    let cluster = Cluster::start_with(ClusterOptions { nodes: 3, ..options });
    cluster.wait_ready().await;
    let tls = cluster.tls.clone().expect("TLS files");
    let (servers, ca_dir, ca) = (cluster.servers(), path(&tls.ca_dir), path(&tls.ca.cert));
    let certs = tempfile::tempdir().unwrap();
    let out = path(certs.path());
    let made = qlm(&[
        "cert",
        "node",
        "--ca",
        ca_dir,
        "--name",
        "alice",
        "--host",
        "localhost",
        "--out",
        out,
    ]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let foreign = certs.path().join("foreign");
    assert_eq!(qlm(&["cert", "ca", "--out", path(&foreign)]).status.code(), Some(0));
    let made = qlm(&[
        "cert",
        "node",
        "--ca",
        path(&foreign),
        "--name",
        "mallory",
        "--host",
        "localhost",
        "--out",
        out,
    ]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let (alice, alice_key) = (certs.path().join("alice.pem"), certs.path().join("alice.key"));
    let (mallory, mallory_key) =
        (certs.path().join("mallory.pem"), certs.path().join("mallory.key"));

    let with_cert = qlm(&[
        "--servers",
        &servers,
        "--tls-ca",
        ca,
        "--tls-cert",
        path(&alice),
        "--tls-key",
        path(&alice_key),
        "status",
    ]);
    assert_eq!(with_cert.status.code(), Some(0), "{}", text(&with_cert));
    let without = qlm(&["--servers", &servers, "--tls-ca", ca, "status"]);
    assert_eq!(without.status.code(), Some(3), "no client certificate: {}", text(&without));
    let foreign_cert = qlm(&[
        "--servers",
        &servers,
        "--tls-ca",
        ca,
        "--tls-cert",
        path(&mallory),
        "--tls-key",
        path(&mallory_key),
        "status",
    ]);
    assert_eq!(foreign_cert.status.code(), Some(3), "another CA's: {}", text(&foreign_cert));
    let half = qlm(&["--servers", &servers, "--tls-ca", ca, "--tls-cert", path(&alice), "status"]);
    assert_eq!(half.status.code(), Some(2), "a certificate without its key: {}", text(&half));
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"), "{}", text(&half));
}

#[test]
fn a_node_with_half_its_tls_configured_refuses_to_start_naming_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let made = qlm(&["cert", "ca", "--out", path(dir.path())]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let again = qlm(&["cert", "ca", "--out", path(dir.path())]);
    assert_eq!(again.status.code(), Some(2), "never overwrites: {}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"), "{}", text(&again));
    let cert = dir.path().join("ca.pem");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let common = [
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--peer-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--initial-cluster",
        "1=127.0.0.1:1",
        "--license",
        "x.lic",
        "--vendor-pubkey",
        "x.pub",
    ];
    let cases: [(Vec<&str>, &[&str]); 3] = [
        (vec!["--tls-cert", path(&cert)], &["--tls-key", "half configured"]),
        (vec!["--peer-tls-cert", path(&cert), "--peer-tls-ca", path(&cert)], &["--peer-tls-key"]),
        (
            vec![
                "--peer-tls-cert",
                path(&junk),
                "--peer-tls-key",
                path(&junk),
                "--peer-tls-ca",
                path(&cert),
            ],
            &["--peer-tls-cert", "junk.pem"],
        ),
    ];
    for (flags, needles) in cases {
        let output = Command::new(qlmd_binary())
            .args(common)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(&flags)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        for needle in needles {
            assert!(stderr.contains(needle), "{flags:?}: `{needle}` in {stderr}");
        }
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
