//! Multi-process QuorumLM clusters for integration, chaos and load tests.
//!
//! [`Cluster::start`] makes a vendor key and a signed license in a temporary directory, picks
//! free loopback ports, and starts one real `qlmd` process per node with its own data
//! directory. Nodes can be killed with SIGKILL and restarted from their data. Every child is
//! killed when the `Cluster` is dropped, pass or fail, so no test leaves a process behind.
//!
//! The `qlmd` binary is the one cargo built next to this test binary (`target/<profile>/qlmd`;
//! `cargo test --workspace` builds it), or `$QLMD_BIN`.

pub mod compose;
pub mod compose_check;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quorumlm::license::{VendorKey, sign_license_text, write_key_pair};
use quorumlm::proto::v1;
use quorumlm::proto::v1::status_service_client::StatusServiceClient;

/// The license every test cluster serves, before signing.
pub const TEST_LICENSE: &str = "\
# test license
FEATURE vhdl-editor vendor=test version=4.0 count=25 expires=permanent
FEATURE simulator vendor=test version=2.1 tokens=100 expires=permanent
FEATURE synthesis vendor=test version=1.0 count=1 expires=permanent
FEATURE bound-to-two vendor=test version=1.0 count=5 expires=permanent hostid=node1-host,node2-host
FEATURE bound-to-one vendor=test version=1.0 count=5 expires=permanent hostid=node3-host
";

/// The admin token every test node accepts.
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token";

/// How long a cluster may take to elect a leader and load its licenses.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One `qlmd` process and its addresses.
pub struct NodeProcess {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    pub http_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// A running test cluster.
pub struct Cluster {
    pub nodes: Vec<NodeProcess>,
    pub dir: tempfile::TempDir,
    initial_cluster: String,
    license: PathBuf,
    pubkey: PathBuf,
}

fn free_addr() -> String {
    // Bind port 0 and release it: the OS picks a port no other test holds right now.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .expect("a free loopback port")
}

/// The `qlmd` binary built next to this test.
pub fn qlmd_binary() -> PathBuf {
    if let Ok(path) = std::env::var("QLMD_BIN") {
        return PathBuf::from(path);
    }
    // A test binary lives in target/<profile>/deps, a bin in target/<profile>.
    let exe = std::env::current_exe().expect("this binary's path");
    let dir = exe.parent().expect("target/<profile>[/deps]");
    let beside = dir.join("qlmd");
    if beside.exists() {
        return beside;
    }
    dir.parent().map_or(beside.clone(), |profile| profile.join("qlmd"))
}

impl Cluster {
    /// Starts `n` nodes serving [`TEST_LICENSE`].
    pub fn start(n: u64) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = VendorKey::generate().expect("randomness for a key");
        let paths = write_key_pair(&dir.path().join("keys"), &key).expect("key files");
        let signed = sign_license_text("test.lic", TEST_LICENSE, &key).expect("a signable license");
        let license = dir.path().join("test.lic");
        std::fs::write(&license, signed).expect("the license file");
        let mut nodes = Vec::new();
        for id in 1..=n {
            nodes.push(NodeProcess {
                id,
                client_addr: free_addr(),
                peer_addr: free_addr(),
                http_addr: free_addr(),
                data_dir: dir.path().join(format!("node{id}")),
                log: dir.path().join(format!("node{id}.log")),
                child: None,
            });
        }
        let initial_cluster =
            nodes.iter().map(|n| format!("{}={}", n.id, n.peer_addr)).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster { nodes, dir, initial_cluster, license, pubkey: paths.public };
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProcess {
        self.nodes.iter_mut().find(|n| n.id == id).expect("a node of this cluster")
    }

    /// Starts (or restarts, from its data directory) node `id`.
    pub fn spawn(&mut self, id: u64) {
        let (initial, license, pubkey) =
            (self.initial_cluster.clone(), self.license.clone(), self.pubkey.clone());
        let node = self.node_mut(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("the node's log file");
        let child = Command::new(qlmd_binary())
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--listen", &node.client_addr, "--peer-listen", &node.peer_addr])
            .args(["--http-listen", &node.http_addr, "--initial-cluster", &initial])
            .arg("--license")
            .arg(&license)
            .arg("--vendor-pubkey")
            .arg(&pubkey)
            .env("QLM_ADMIN_TOKEN", TEST_ADMIN_TOKEN)
            .args(["--hostid", &format!("node{id}-host")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("qlmd starts (was it built? cargo build --bins)");
        node.child = Some(child);
    }

    /// Kills node `id` with SIGKILL, as a crash would.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `host:port,...` of every node's client port.
    pub fn servers(&self) -> String {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect::<Vec<_>>().join(",")
    }

    /// The client address of node `id`.
    pub fn client_addr(&self, id: u64) -> String {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.client_addr.clone()).unwrap_or_default()
    }

    /// What node `id` logged so far (for failure messages).
    pub fn log_of(&self, id: u64) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| std::fs::read_to_string(&n.log).ok())
            .unwrap_or_default()
    }

    /// Asks node `id` for the cluster's state (stale read: this node's own view).
    pub async fn cluster_status(&self, id: u64) -> Result<v1::ClusterResponse, tonic::Status> {
        let addr = format!("http://{}", self.client_addr(id));
        let mut client = StatusServiceClient::connect(addr)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
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
        let addr = format!("http://{}", self.client_addr(id));
        let Ok(mut client) = StatusServiceClient::connect(addr).await else { return false };
        let request = v1::FeaturesRequest { stale: true, feature: String::new() };
        client.features(request).await.is_ok_and(|r| !r.into_inner().features.is_empty())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
