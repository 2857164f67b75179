//! Replacing a dead node and growing the cluster, as docs/DEPLOY.md tells an admin to: a node
//! that was not a founder starts with the founders' `--initial-cluster` and `--join`, then
//! `qlm cluster add` makes it a voter. Real `qlmd` processes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_tests::{Cluster, TEST_ADMIN_TOKEN, qlmd_binary};
use qlm_client::{CheckoutOptions, Client, SessionOptions, parse_servers};
use qlm_proto::v1;

fn free_addr() -> String {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// A node started with --join; killed on drop.
struct Joiner {
    id: u64,
    client_addr: String,
    peer_addr: String,
    log: PathBuf,
    child: Child,
}

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_joiner(cluster: &Cluster, id: u64) -> Joiner {
    let founders: Vec<String> =
        cluster.nodes.iter().map(|n| format!("{}={}", n.id, n.peer_addr)).collect();
    let (client_addr, peer_addr) = (free_addr(), free_addr());
    let log = cluster.dir.path().join(format!("node{id}.log"));
    let child = Command::new(qlmd_binary())
        .args(["--id", &id.to_string(), "--join", "--initial-cluster", &founders.join(",")])
        .args(["--listen", &client_addr, "--peer-listen", &peer_addr])
        .args(["--http-listen", &free_addr()])
        .arg("--data-dir")
        .arg(cluster.dir.path().join(format!("node{id}")))
        .arg("--license")
        .arg(cluster.dir.path().join("test.lic"))
        .arg("--vendor-pubkey")
        .arg(cluster.dir.path().join("keys/vendor.pub"))
        .env("QLM_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("qlmd starts");
    Joiner { id, client_addr, peer_addr, log, child }
}

fn client(servers: &str) -> Client {
    Client::connect(parse_servers(servers).unwrap()).unwrap().with_admin_token(TEST_ADMIN_TOKEN)
}

fn voters(members: &[v1::Member]) -> Vec<u64> {
    members.iter().filter(|m| m.role() == v1::MemberRole::Voter).map(|m| m.id).collect()
}

/// Waits until node `addr` (a stale read of its own view) has applied what the leader has.
async fn caught_up(addr: &str, leader: &Client) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let (Ok(own), Ok(lead)) = (client(addr).cluster(true).await, leader.cluster(false).await)
            && own.applied_index >= lead.commit_index
            && own.applied_index > 0
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_and_a_fourth_and_fifth_join_as_voters() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let admin = client(&cluster.servers());

    // Node 3 dies for good: remove it, then add node 4 in its place.
    cluster.kill(3);
    let members = admin.remove_node(3).await.expect("node 3 removed");
    assert_eq!(voters(&members), vec![1, 2]);
    let four = start_joiner(&cluster, 4);
    let members =
        admin.add_node(4, &four.peer_addr, &four.client_addr, false).await.unwrap_or_else(|e| {
            panic!("node 4 added: {e}\n{}", std::fs::read_to_string(&four.log).unwrap_or_default())
        });
    assert_eq!(voters(&members), vec![1, 2, 4]);
    assert!(caught_up(&four.client_addr, &admin).await, "node 4 caught up");

    // Growing to five: node 5 joins the same way.
    let five = start_joiner(&cluster, 5);
    let members = admin.add_node(5, &five.peer_addr, &five.client_addr, false).await.unwrap();
    assert_eq!(voters(&members), vec![1, 2, 4, 5]);
    assert!(caught_up(&five.client_addr, &admin).await, "node 5 caught up");

    // A client of the new nodes alone is served (its write is forwarded to the leader).
    let newcomers = client(&format!("{},{}", four.client_addr, five.client_addr));
    let session = newcomers
        .open_session(SessionOptions::from_process())
        .await
        .expect("a session through the new nodes");
    let checkout = session
        .checkout("vhdl-editor", CheckoutOptions { count: 1, ..CheckoutOptions::default() })
        .await
        .expect("a grant through the new nodes");
    assert!(checkout.handle() > 0);
    checkout.checkin().await.expect("checked in");
    session.close().await.expect("closed");

    // A founder dies too: 4 of the 5 members listed are voters; with 1, 2, 4, 5 voting, losing
    // node 1 leaves 3 of 4, a majority, and the cluster keeps granting.
    cluster.kill(1);
    let rest =
        client(&format!("{},{},{}", cluster.client_addr(2), four.client_addr, five.client_addr));
    let deadline = Instant::now() + Duration::from_secs(20);
    let session = loop {
        match rest.open_session(SessionOptions::from_process()).await {
            Ok(session) => break session,
            Err(e) if Instant::now() > deadline => panic!(
                "not served without node 1: {e}\n--- node 4:\n{}",
                std::fs::read_to_string(&four.log).unwrap_or_default()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    session.close().await.expect("closed");
    assert_eq!((four.id, five.id), (4, 5));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn handles(client: &Client) -> Vec<u64> {
    let listing = client.checkouts(false).await.expect("a listing");
    listing.checkouts.iter().map(|c| c.handle).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_one_stopped_nodes_data_restores_the_whole_cluster() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let users = client(&cluster.servers());
    let session = users
        .open_session(SessionOptions::from_process().with_ttl(Duration::from_secs(600)))
        .await
        .unwrap();
    let before = session.checkout("vhdl-editor", CheckoutOptions::default()).await.unwrap().keep();

    // The backup (docs/DEPLOY.md): stop one node, copy its data directory, start it again.
    let leader = cluster.wait_ready().await;
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    // A follower's copy holds what it has: wait until it has caught up (lag 0).
    assert!(caught_up(&cluster.client_addr(follower), &users).await, "the follower caught up");
    cluster.kill(follower);
    let backup = cluster.dir.path().join("backup");
    copy_dir(&cluster.nodes[(follower - 1) as usize].data_dir, &backup);
    cluster.spawn(follower);
    cluster.wait_ready().await;
    let after = session.checkout("vhdl-editor", CheckoutOptions::default()).await.unwrap().keep();
    assert_eq!(handles(&users).await, vec![before.handle, after.handle]);

    // Disaster: every node's data is lost. Restore: the backup into every data directory.
    for id in 1..=3 {
        cluster.kill(id);
    }
    for node in &cluster.nodes {
        std::fs::remove_dir_all(&node.data_dir).unwrap();
        copy_dir(&backup, &node.data_dir);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.wait_ready().await;
    // Every node's copy votes for the old leader, and openraft 0.9 restores a leader whose
    // vote is committed at once, in its old term, with no blank entry (Engine::startup): until
    // its first write, its read index may be from before the backup's last entries. One write
    // commits them all.
    users.open_session(SessionOptions::from_process()).await.unwrap().close().await.unwrap();
    assert_eq!(
        handles(&users).await,
        vec![before.handle],
        "the cluster is back as it was at the backup: what came after is gone"
    );
    drop(session);
}
