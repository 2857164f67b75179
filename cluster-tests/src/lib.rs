//! Multi-process QuorumLM clusters for integration, chaos and load tests.
//!
//! [`Cluster::start`] makes a vendor key and a signed license in a temporary directory, picks
//! free loopback ports, and starts one real `qlmd` process per node with its own data
//! directory. Nodes can be killed with SIGKILL and restarted from their data. Every child is
//! killed when the `Cluster` is dropped, pass or fail, so no test leaves a process behind.
//!
//! [`Cluster::start_with`] takes [`ClusterOptions`]: extra flags and environment for every
//! node, and `tls`, which makes a cluster CA and one certificate per node and starts every
//! node with TLS on the client port and mutual TLS between peers (the harness's own status
//! calls then trust that CA).
//!
//! The `qlmd` binary is the one cargo built next to this test binary (`target/<profile>/qlmd`;
//! `cargo test --workspace` builds it), or `$QLMD_BIN`.
//!
//! For the chaos suite, [`Cluster::start_with`] also puts a fault-injecting proxy on every
//! directed peer link (see [`proxy`]), keeps spare node ids that can join later with `--join`,
//! and can pause nodes (SIGSTOP) and resume them. The parts:
//!
//! - `proxy`: the peer-link proxies and their modes (pass, drop, black-hole, delay)
//! - `history`: what every client asked and was told, with times
//! - `workload`: client sessions through the real client library that record a history
//! - `checker`: the rules a history and the nodes' final states must keep
//! - `scenario`: the fault scenarios, shared by `tests/chaos.rs` and the `chaos` binary

pub mod checker;
pub mod history;
pub mod proxy;
pub mod rng;
pub mod scenario;
pub mod workload;

pub mod compose;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qlm_license::{VendorKey, sign_license_text, write_key_pair};
use qlm_net::tls::certs::{CertFiles, make_ca, make_node_cert};
use qlm_proto::v1;
use qlm_proto::v1::status_service_client::StatusServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub mod bench;
pub mod failover;
pub mod fleet;

/// The license every test cluster serves, before signing.
pub const TEST_LICENSE: &str = "\
# test license
FEATURE vhdl-editor vendor=test version=4.0 count=25 expires=permanent
FEATURE simulator vendor=test version=2.1 tokens=100 expires=permanent
FEATURE synthesis vendor=test version=1.0 count=1 expires=permanent
FEATURE bound-to-two vendor=test version=1.0 count=5 expires=permanent hostid=node1-host,node2-host
FEATURE bound-to-one vendor=test version=1.0 count=5 expires=permanent hostid=node3-host
FEATURE chaos-pool vendor=test version=1.0 count=3 expires=permanent
";

/// The chaos workload's feature: few seats, so that an over-grant shows.
pub const CHAOS_FEATURE: &str = "chaos-pool";
/// Seats of [`CHAOS_FEATURE`] in [`TEST_LICENSE`].
pub const CHAOS_SEATS: u32 = 3;

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
    /// Stopped with SIGSTOP and not resumed yet.
    paused: bool,
    /// Started at least once.
    started: bool,
    /// Removed from the membership for good: never restarted.
    retired: bool,
}

/// How to start a test cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Original members, ids 1..=nodes, in `--initial-cluster`.
    pub nodes: u64,
    /// Extra ids (nodes+1..) that are not started; [`Cluster::spawn`] starts them with `--join`.
    pub spare: u64,
    /// A proxy on every directed peer link, each node dialing its peers through them.
    pub proxied: bool,
    /// `--snapshot-every` for every node.
    pub snapshot_every: Option<u64>,
    /// TLS on every client port and mutual TLS between peers, with a CA made for the cluster.
    pub tls: bool,
    /// With `tls`: every client must present a certificate from the cluster CA
    /// (`--tls-client-ca`); the harness presents node 1's.
    pub require_client_certs: bool,
    /// Flags added to every node's command line.
    pub extra_args: Vec<String>,
    /// Environment variables set for every node (`QLM_LOG=debug`, ...).
    pub env: Vec<(String, String)>,
    /// The license to serve (unsigned, `vendor=test`), instead of [`TEST_LICENSE`].
    pub license: Option<String>,
}

/// The certificate files of a TLS test cluster.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    /// The CA directory (`ca.pem`, `ca.key`).
    pub ca_dir: PathBuf,
    pub ca: CertFiles,
    /// Each node's certificate, by id (index id - 1).
    pub nodes: Vec<CertFiles>,
}

/// A running test cluster.
pub struct Cluster {
    pub nodes: Vec<NodeProcess>,
    pub dir: tempfile::TempDir,
    /// The certificates, when started with `tls`.
    pub tls: Option<ClusterTls>,
    initial_cluster: String,
    license: PathBuf,
    pubkey: PathBuf,
    /// Ids of the original members.
    original: u64,
    options: ClusterOptions,
    /// The peer-link proxies (empty unless `proxied`).
    pub net: proxy::ProxyNet,
}

/// A free loopback port, held until the holder is dropped, so that the ports picked for one
/// cluster are all different (a port released at once may be handed out again).
fn free_addr(holders: &mut Vec<TcpListener>) -> String {
    // Bind port 0: the OS picks a port no other test holds right now.
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = listener.local_addr().map(|a| a.to_string()).expect("a bound address");
    holders.push(listener);
    addr
}

/// The `qlmd` binary built next to this test.
/// A session opened through the raw gRPC API: its public id and the secret its requests
/// present. Derefs to the id, which is what status views and report lines show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSession {
    pub id: String,
    pub secret: String,
}

impl std::ops::Deref for RawSession {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl From<v1::OpenSessionResponse> for RawSession {
    fn from(opened: v1::OpenSessionResponse) -> RawSession {
        RawSession { id: opened.session_id, secret: opened.session_secret }
    }
}

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
        Cluster::start_with(ClusterOptions { nodes: n, ..ClusterOptions::default() })
    }

    /// Starts `n` nodes serving `license` (unsigned text, `vendor=test`; signed here).
    pub fn start_serving(n: u64, license: &str) -> Cluster {
        Cluster::start_with(ClusterOptions {
            nodes: n,
            license: Some(license.into()),
            ..Default::default()
        })
    }

    /// Starts the original members of `options`, serving [`TEST_LICENSE`] (or
    /// `options.license`).
    pub fn start_with(options: ClusterOptions) -> Cluster {
        let n = options.nodes;
        let total = n + options.spare;
        let license = options.license.clone();
        let license = license.as_deref().unwrap_or(TEST_LICENSE);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = VendorKey::generate().expect("randomness for a key");
        let paths = write_key_pair(&dir.path().join("keys"), &key).expect("key files");
        let signed = sign_license_text("test.lic", license, &key).expect("a signable license");
        let license = dir.path().join("test.lic");
        std::fs::write(&license, signed).expect("the license file");
        let mut nodes = Vec::new();
        let mut holders = Vec::new();
        for id in 1..=total {
            nodes.push(NodeProcess {
                id,
                client_addr: free_addr(&mut holders),
                peer_addr: free_addr(&mut holders),
                http_addr: free_addr(&mut holders),
                data_dir: dir.path().join(format!("node{id}")),
                log: dir.path().join(format!("node{id}.log")),
                child: None,
                paused: false,
                started: false,
                retired: false,
            });
        }
        let tls = options.tls.then(|| {
            let ca_dir = dir.path().join("tls-ca");
            let ca = make_ca(&ca_dir, "test cluster CA", 2).expect("a test CA");
            let hosts = ["127.0.0.1".to_owned(), "localhost".to_owned()];
            let nodes = (1..=total)
                .map(|id| {
                    make_node_cert(
                        &ca_dir,
                        &format!("node{id}"),
                        &hosts,
                        &dir.path().join("tls"),
                        2,
                    )
                    .expect("a node certificate")
                })
                .collect();
            ClusterTls { ca_dir, ca, nodes }
        });
        let initial_cluster = nodes
            .iter()
            .filter(|node| node.id <= n)
            .map(|n| format!("{}={}", n.id, n.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        let net = proxy::ProxyNet::new();
        if options.proxied {
            for from in &nodes {
                for to in nodes.iter().filter(|to| to.id != from.id) {
                    net.add_link(from.id, to.id, to.peer_addr.clone());
                }
            }
        }
        // The proxies have their ports; the nodes may now take theirs.
        drop(holders);
        let mut cluster = Cluster {
            nodes,
            dir,
            tls,
            initial_cluster,
            license,
            pubkey: paths.public,
            original: n,
            options,
            net,
        };
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
        let mut extra: Vec<std::ffi::OsString> =
            self.options.extra_args.iter().map(Into::into).collect();
        if let Some(tls) = &self.tls {
            let own = &tls.nodes[(id - 1) as usize];
            for (flag, path) in [
                ("--tls-cert", &own.cert),
                ("--tls-key", &own.key),
                ("--peer-tls-cert", &own.cert),
                ("--peer-tls-key", &own.key),
                ("--peer-tls-ca", &tls.ca.cert),
            ] {
                extra.push(flag.into());
                extra.push(path.into());
            }
            if self.options.require_client_certs {
                extra.push("--tls-client-ca".into());
                extra.push((&tls.ca.cert).into());
            }
        }
        let env = self.options.env.clone();
        if self.options.proxied {
            let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).filter(|&to| to != id).collect();
            let routes: Vec<String> = ids
                .iter()
                .filter_map(|&to| self.net.route(id, to).map(|addr| format!("{to}={addr}")))
                .collect();
            extra.extend(["--peer-route".into(), routes.join(",").into()]);
        }
        if let Some(every) = self.options.snapshot_every {
            extra.extend(["--snapshot-every".into(), every.to_string().into()]);
        }
        if id > self.original {
            extra.push("--join".into());
        }
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
            .args(&extra)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("qlmd starts (was it built? cargo build --bins)");
        node.child = Some(child);
        node.paused = false;
        node.started = true;
    }

    /// Kills node `id` with SIGKILL, as a crash would.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            // A stopped process dies of SIGKILL too; SIGCONT first so nothing lingers.
            if node.paused {
                signal(&child, libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Stops node `id` with SIGSTOP: it keeps its sockets but answers nothing (a VM that
    /// froze, a long GC pause).
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            signal(child, libc::SIGSTOP);
            node.paused = true;
        }
    }

    /// Resumes a paused node with SIGCONT.
    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child
            && node.paused
        {
            signal(child, libc::SIGCONT);
        }
        node.paused = false;
    }

    /// Marks node `id` as removed from the membership: [`Cluster::restart_stopped`] leaves it.
    pub fn retire(&mut self, id: u64) {
        self.node_mut(id).retired = true;
    }

    pub fn is_retired(&self, id: u64) -> bool {
        self.nodes.iter().any(|n| n.id == id && n.retired)
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.nodes.iter().any(|n| n.id == id && n.paused)
    }

    /// Resumes every paused node and starts every node that was started before, is not
    /// retired and is not running.
    pub fn restart_stopped(&mut self) {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for id in ids {
            let node = self.node_mut(id);
            if node.paused {
                self.resume(id);
            } else if node.started && !node.retired && node.child.is_none() {
                self.spawn(id);
            }
        }
    }

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

    /// Ids of the nodes whose process runs (paused ones included).
    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect()
    }

    /// Ids of the nodes that run and are not paused.
    pub fn live(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.child.is_some() && !n.paused).map(|n| n.id).collect()
    }

    /// Cuts (or restores) link `from -> to` with `mode`.
    pub fn link(&self, from: u64, to: u64, mode: proxy::LinkMode) {
        self.net.set(from, to, mode);
    }

    /// Cuts every link between the two sides, both ways, with `mode`.
    pub fn partition(&self, side_a: &[u64], side_b: &[u64], mode: proxy::LinkMode) {
        for &a in side_a {
            for &b in side_b {
                self.net.set(a, b, mode);
                self.net.set(b, a, mode);
            }
        }
    }

    /// Every link back to passing traffic.
    pub fn heal(&self) {
        self.net.heal_all();
    }

    /// Every node id this cluster knows (started or spare).
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The peer address node `id` listens on.
    pub fn peer_addr(&self, id: u64) -> String {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.peer_addr.clone()).unwrap_or_default()
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

    /// The client addresses of the given nodes, as the client library takes them.
    pub fn server_list(&self, ids: &[u64]) -> Vec<qlm_client::ServerAddr> {
        let list: Vec<String> = ids.iter().map(|&id| self.client_addr(id)).collect();
        qlm_client::parse_servers(&list.join(",")).expect("loopback addresses parse")
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes.iter().find(|n| n.id == id).and_then(|n| n.child.as_ref()).map(Child::id)
    }

    /// `host:port,...` of every node's client port.
    pub fn servers(&self) -> String {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect::<Vec<_>>().join(",")
    }

    /// The client address of node `id`.
    pub fn client_addr(&self, id: u64) -> String {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.client_addr.clone()).unwrap_or_default()
    }

    /// The HTTP address (dashboard, metrics, probes) of node `id`.
    pub fn http_addr(&self, id: u64) -> String {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.http_addr.clone()).unwrap_or_default()
    }

    /// `GET path` on node `id`'s HTTP port: the status code and the body.
    pub fn http_get(&self, id: u64, path: &str) -> Result<(u16, String), String> {
        http_get(&self.http_addr(id), path)
    }

    /// What node `id` logged so far (for failure messages).
    pub fn log_of(&self, id: u64) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .and_then(|n| std::fs::read_to_string(&n.log).ok())
            .unwrap_or_default()
    }

    /// The initial cluster list every node was started with (`1=addr,2=addr,...`).
    pub fn initial_cluster(&self) -> &str {
        &self.initial_cluster
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

/// How long a test waits for an HTTP answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain HTTP/1.1 `GET` over a `TcpStream` (`Connection: close`, so the body runs to the end
/// of the stream): the status code and the body. Enough for the node's own small answers.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read from {addr}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in `{head}`"))?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((code, dechunk(body)?));
    }
    Ok((code, body.to_owned()))
}

/// The body of a chunked HTTP answer.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk size")?;
        let size =
            usize::from_str_radix(size.trim(), 16).map_err(|e| format!("chunk size: {e}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).ok_or("truncated chunk")?;
        body.push_str(chunk);
        rest = after.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Sends `sig` to a child process.
fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid has no memory effects; an error (the child
        // already gone) is harmless and ignored.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                if node.paused {
                    signal(&child, libc::SIGCONT);
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
