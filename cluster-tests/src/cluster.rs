//! A test cluster of real `qlmd` processes: starting the nodes, killing, pausing and
//! restarting them, and their addresses. Every child is killed when the [`Cluster`] is
//! dropped.

mod status;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use qlm_license::{VendorKey, sign_license_text, write_key_pair};

use crate::certs::ClusterTls;
use crate::http::http_get;
use crate::{TEST_ADMIN_TOKEN, TEST_LICENSE, proxy};

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
    /// Environment variables of one node only: (node id, name, value).
    pub node_env: Vec<(u64, String, String)>,
    /// The license to serve (unsigned, `vendor=test`), instead of [`TEST_LICENSE`].
    pub license: Option<String>,
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

/// The `qlmd` binary built next to this test (`target/<profile>/qlmd`), or `$QLMD_BIN`.
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
        let tls = options.tls.then(|| ClusterTls::make(dir.path(), total));
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
        let mut env = self.options.env.clone();
        let own_env = self.options.node_env.iter().filter(|(node, _, _)| *node == id);
        env.extend(own_env.map(|(_, name, value)| (name.clone(), value.clone())));
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

    /// Node `id`'s exit status if its process has ended by itself (it is then no longer
    /// running, and `spawn` starts it again); None while it runs or was never started.
    pub fn exit_status(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        let node = self.node_mut(id);
        let status = node.child.as_mut()?.try_wait().ok()??;
        node.child = None;
        Some(status)
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
