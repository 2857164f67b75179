//! A docker compose cluster for tests: `deploy/docker-compose.yml`, started under a project
//! name of its own, with faults a Docker host can make (kill a container, start it again,
//! disconnect it from the cluster's network and reconnect it).
//!
//! [`ComposeCluster::up`] signs a test license with a fresh vendor key in a temporary
//! directory (the files the compose file mounts), picks free host ports for the three client
//! ports, and runs `compose up -d` with a unique project name, so it never touches another
//! project (`make compose-up`'s, or a parallel run). Dropping it runs `compose down --volumes`:
//! containers, network and volumes go, pass or fail.
//!
//! Nodes are named by their compose service (`qlm1`..`qlm3`) and node id (1..3); clients on
//! the host reach node `id` at `127.0.0.1:<port id>`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use qlm_client::{Client, parse_servers};
use qlm_license::{VendorKey, sign_license_text, write_key_pair};
use qlm_proto::v1;

/// The license the compose test cluster serves: the chaos workload's contended feature
/// ([`crate::CHAOS_FEATURE`], [`crate::CHAOS_SEATS`] seats) and the prober's plentiful one.
pub const COMPOSE_TEST_LICENSE: &str = "\
# compose chaos test license
FEATURE chaos-pool vendor=test version=1.0 count=3 expires=permanent
FEATURE vhdl-editor vendor=test version=4.0 count=25 expires=permanent
";

/// How long the cluster may take to be healthy, with a leader serving the license.
pub const COMPOSE_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The node ids of the compose file.
pub const NODE_IDS: [u64; 3] = [1, 2, 3];

/// A running compose project, taken down on drop.
pub struct ComposeCluster {
    /// The compose project name (unique per run).
    pub project: String,
    /// Host port of each node's client port, by node id - 1.
    pub ports: [u16; 3],
    /// The license, key and token files the nodes mount.
    pub files: tempfile::TempDir,
    compose_file: PathBuf,
    image: String,
    /// Whether `docker compose` (v2) exists; else `docker-compose` (v1).
    v2: bool,
}

/// The repository's root (this crate is `cluster-tests/` in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Runs a command; its stdout when it succeeds, else an error with its stderr.
pub async fn run(program: &str, args: &[&str], envs: &[(&str, String)]) -> Result<String, String> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (key, value) in envs {
        command.env(key, value);
    }
    let output =
        command.output().await.map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// True when a Docker daemon answers (`docker info`).
pub async fn docker_works() -> bool {
    run("docker", &["info", "--format", "{{.ServerVersion}}"], &[]).await.is_ok()
}

impl ComposeCluster {
    /// Starts the compose cluster under `project` with the image `image` and waits until
    /// a leader serves the license.
    pub async fn up(project: &str, image: &str) -> Result<ComposeCluster, String> {
        let files = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        write_files(files.path())?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let v2 = run("docker", &["compose", "version"], &[]).await.is_ok();
        let cluster = ComposeCluster {
            project: project.to_owned(),
            ports,
            files,
            compose_file: repo_root().join("deploy/docker-compose.yml"),
            image: image.to_owned(),
            v2,
        };
        // From here on, Drop takes down whatever was made, even if `up` fails half way.
        cluster.compose(&["up", "-d"]).await?;
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("COMPOSE_PROJECT_NAME", self.project.clone()),
            ("QLM_IMAGE", self.image.clone()),
            ("QLM_DEMO_DIR", self.files.path().display().to_string()),
            ("QLM_PORT_1", self.ports[0].to_string()),
            ("QLM_PORT_2", self.ports[1].to_string()),
            ("QLM_PORT_3", self.ports[2].to_string()),
        ]
    }

    /// Runs `compose -f deploy/docker-compose.yml -p PROJECT ARGS`.
    pub async fn compose(&self, args: &[&str]) -> Result<String, String> {
        let file = self.compose_file.display().to_string();
        let mut full: Vec<&str> = Vec::new();
        if self.v2 {
            full.push("compose");
        }
        full.extend(["-f", &file, "-p", &self.project]);
        full.extend(args);
        let program = if self.v2 { "docker" } else { "docker-compose" };
        run(program, &full, &self.env()).await
    }

    /// The container id of node `id`.
    pub async fn container(&self, id: u64) -> Result<String, String> {
        let service = format!("qlm{id}");
        let out = self.compose(&["ps", "-q", &service]).await?;
        out.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("no container for {service}"))
    }

    /// The cluster's network (`<project>_cluster`).
    pub fn network(&self) -> String {
        format!("{}_cluster", self.project)
    }

    /// `127.0.0.1:<port>` of node `id`'s client port.
    pub fn client_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.ports[(id - 1) as usize])
    }

    /// Every node's client address, for a client's server list.
    pub fn servers(&self) -> String {
        NODE_IDS.iter().map(|&id| self.client_addr(id)).collect::<Vec<_>>().join(",")
    }

    /// A client of every node (the workload's).
    pub fn client(&self) -> Result<Client, String> {
        let servers = parse_servers(&self.servers()).map_err(|e| e.to_string())?;
        Client::connect(servers).map_err(|e| e.to_string())
    }

    /// A client of node `id` alone (no failover), for stale per-node reads.
    pub fn node_client(&self, id: u64) -> Result<Client, String> {
        let servers = parse_servers(&self.client_addr(id)).map_err(|e| e.to_string())?;
        Ok(Client::connect(servers)
            .map_err(|e| e.to_string())?
            .with_call_deadline(Duration::from_secs(2)))
    }

    /// Node `id`'s own view of the cluster (a stale read).
    pub async fn cluster_view(&self, id: u64) -> Result<v1::ClusterResponse, String> {
        self.node_client(id)?.cluster(true).await.map_err(|e| e.to_string())
    }

    /// The leader, as a majority of the reachable nodes report it.
    pub async fn leader(&self) -> Option<u64> {
        let mut votes = std::collections::BTreeMap::<u64, usize>::new();
        for id in NODE_IDS {
            if let Ok(view) = self.cluster_view(id).await
                && let Some(leader) = view.leader.filter(|l| l.id != 0)
            {
                *votes.entry(leader.id).or_default() += 1;
            }
        }
        votes.into_iter().filter(|&(_, n)| n >= 2).map(|(id, _)| id).next()
    }

    /// Waits until two nodes agree on a leader and a linearizable read of the features
    /// succeeds with the license loaded.
    pub async fn wait_ready(&self) -> Result<u64, String> {
        let deadline = Instant::now() + COMPOSE_READY_TIMEOUT;
        loop {
            if let Some(leader) = self.leader().await
                && let Ok(client) = self.client()
                && client.features(false).await.is_ok_and(|f| !f.features.is_empty())
            {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                let logs = self.compose(&["logs", "--tail", "40"]).await.unwrap_or_default();
                return Err(format!(
                    "no leader serving the license within {COMPOSE_READY_TIMEOUT:?}\n{logs}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Kills node `id`'s container (SIGKILL, as a crash).
    pub async fn kill(&self, id: u64) -> Result<(), String> {
        let container = self.container(id).await?;
        run("docker", &["kill", "--signal", "KILL", &container], &[]).await.map(drop)
    }

    /// Starts node `id`'s container again (from its volume).
    pub async fn start(&self, id: u64) -> Result<(), String> {
        let container = self.container(id).await?;
        run("docker", &["start", &container], &[]).await.map(drop)
    }

    /// Cuts node `id` off the cluster's network: no peer and no client reaches it.
    pub async fn disconnect(&self, id: u64) -> Result<(), String> {
        let container = self.container(id).await?;
        run("docker", &["network", "disconnect", &self.network(), &container], &[]).await.map(drop)
    }

    /// Connects node `id` again, under its service name.
    pub async fn reconnect(&self, id: u64) -> Result<(), String> {
        let container = self.container(id).await?;
        let alias = format!("qlm{id}");
        run("docker", &["network", "connect", "--alias", &alias, &self.network(), &container], &[])
            .await
            .map(drop)
    }

    /// The last lines of every node's log (for failure messages).
    pub async fn logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail", "60"]).await.unwrap_or_else(|e| e)
    }
}

impl Drop for ComposeCluster {
    fn drop(&mut self) {
        // Blocking on purpose: the project must be gone before the test process ends.
        let file = self.compose_file.display().to_string();
        let mut command = if self.v2 {
            let mut c = std::process::Command::new("docker");
            c.arg("compose");
            c
        } else {
            std::process::Command::new("docker-compose")
        };
        command
            .args(["-f", &file, "-p", &self.project, "down", "--volumes", "--remove-orphans"])
            .args(["--timeout", "5"])
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match command.status() {
            Ok(status) if status.success() => {}
            other => eprintln!("compose down of project {} failed: {other:?}", self.project),
        }
    }
}

/// The vendor key, signed license and admin token the compose file mounts, readable by the
/// nodes' user (uid 10001).
fn write_files(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let key = VendorKey::generate().map_err(|e| fail("vendor key", &e))?;
    let paths = write_key_pair(&dir.join("keys"), &key).map_err(|e| fail("key files", &e))?;
    let signed = sign_license_text("license.lic", COMPOSE_TEST_LICENSE, &key)
        .map_err(|e| fail("signing", &format!("{e:?}")))?;
    std::fs::write(dir.join("license.lic"), signed).map_err(|e| fail("license", &e))?;
    std::fs::write(dir.join("admin.token"), "compose-test-token\n")
        .map_err(|e| fail("token", &e))?;
    for (path, mode) in [
        (dir.to_path_buf(), 0o755),
        (dir.join("keys"), 0o755),
        (paths.public, 0o644),
        (dir.join("license.lic"), 0o644),
        (dir.join("admin.token"), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| fail(&path.display().to_string(), &e))?;
    }
    Ok(())
}
