//! The Python package against real 3-process clusters: the wheel from `make python-wheel`
//! (`target/wheels/`, or `$QLM_PYTHON_WHEEL`) installed with pip into a fresh venv, and the
//! scenarios of `src/python/tests/scenarios.py` run there as a program would run them. The
//! script asserts what the program sees; this side kills, pauses and reads the cluster.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use cluster_tests::Cluster;
use qlm_client::hostid::local_host_ids;
use qlm_license::{VendorKey, sign_license_text};

/// How long one step of a scenario may take before the test gives up on it.
const STEP: Duration = Duration::from_secs(60);

/// The target directory this test was built into (`target/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let profile = deps.parent().expect("target/<profile>");
    profile.parent().expect("target").to_path_buf()
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/python")
}

/// The wheel to test: `$QLM_PYTHON_WHEEL`, or the one `make python-wheel` left in
/// `<target>/wheels`. Its absence fails the test with what to do.
fn wheel() -> PathBuf {
    if let Ok(path) = std::env::var("QLM_PYTHON_WHEEL") {
        return PathBuf::from(path);
    }
    let wheels = target_dir().join("wheels");
    let found: Vec<PathBuf> = std::fs::read_dir(&wheels)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    name.starts_with("quorumlm-") && name.ends_with(".whl")
                })
                .collect()
        })
        .unwrap_or_default();
    match found.as_slice() {
        [one] => one.clone(),
        [] => panic!(
            "no quorumlm wheel in {}: build it with `make python-wheel` (make test does), or \
             point QLM_PYTHON_WHEEL at one",
            wheels.display()
        ),
        many => panic!("more than one quorumlm wheel in {}: {many:?}", wheels.display()),
    }
}

/// A fresh venv (made once per run of this test binary, under the target directory) with the
/// wheel installed by pip; its python.
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = target_dir().join("sdk-python-venv");
        let _ = std::fs::remove_dir_all(&venv);
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run(Command::new(&python).args(["-m", "venv"]).arg(&venv), "python3 -m venv");
        let inside = venv.join("bin/python");
        run(
            Command::new(&inside)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                .arg(wheel()),
            "pip install of the wheel",
        );
        inside
    })
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A scenario running in its own Python process; killed when dropped.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Script {
    /// `python scenarios.py <scenario> <servers>`, as user `user` (so that its checkouts can
    /// be told apart in the cluster's list).
    fn start(scenario: &str, servers: &[String], user: &str) -> Script {
        let mut child = Command::new(venv_python())
            .arg(source_dir().join("tests/scenarios.py"))
            .args([scenario, &servers.join(",")])
            // Out of the source tree, so that `import quorumlm` is the installed wheel.
            .current_dir(std::env::temp_dir())
            .env("USER", user)
            .env("LOGNAME", user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the venv's python starts");
        let (to_test, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if to_test.send(line).is_err() {
                    break;
                }
            }
        });
        let (to_test, stderr) = channel();
        let mut err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = to_test.send(text);
        });
        let stdin = child.stdin.take();
        Script { child, stdin, lines, stderr, seen: Vec::new() }
    }

    /// The next line the script prints; fails the test when it exits or takes too long.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(STEP) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(_) => {
                let _ = self.child.kill();
                let stderr = self.stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!(
                    "the script printed no further line; so far {:?}; stderr:\n{stderr}",
                    self.seen
                )
            }
        }
    }

    /// The next line, which must start with `word`; the rest of it.
    fn expect(&mut self, word: &str) -> String {
        let line = self.line();
        let rest = line.strip_prefix(word).unwrap_or_else(|| {
            panic!("expected {word}, the script printed {line:?} (so far {:?})", self.seen)
        });
        rest.trim().to_owned()
    }

    /// The handle of a `HELD <handle>` line.
    fn held(&mut self) -> u64 {
        self.expect("HELD").parse().expect("a handle")
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(b"go\n").and_then(|()| stdin.flush()).expect("the script reads stdin");
    }

    /// Waits for `OK` and a clean exit with nothing on stderr: no exception, no warning.
    fn finishes_cleanly(mut self) -> Vec<String> {
        while self.line() != "OK" {}
        self.stdin.take();
        let status = self.child.wait().expect("the script exits");
        let stderr = self.stderr.recv_timeout(STEP).unwrap_or_default();
        assert!(status.success(), "the script failed ({status}); stderr:\n{stderr}");
        assert_eq!(stderr, "", "the program saw errors or warnings");
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addrs(cluster: &Cluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|&id| cluster.client_addr(id)).collect()
}

/// Handles of `user`'s checkouts of `feature` as node `id` sees them.
async fn handles_of(cluster: &Cluster, id: u64, user: &str, feature: &str) -> Vec<u64> {
    let checkouts = cluster.checkouts(id).await.unwrap_or_else(|e| panic!("node {id}: {e}"));
    checkouts.iter().filter(|c| c.user == user && c.feature == feature).map(|c| c.handle).collect()
}

/// Polls node `id` until `user`'s checkouts of `feature` are `wanted`; how long it took.
async fn until_handles(
    cluster: &Cluster,
    id: u64,
    (user, feature): (&str, &str),
    wanted: &[u64],
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = handles_of(cluster, id, user, feature).await;
        if now == wanted {
            return started.elapsed();
        }
        assert!(now.len() <= 1, "node {id} shows {user} holding {now:?}: granted twice");
        assert!(
            started.elapsed() < within,
            "node {id} still shows {now:?} for {user} after {within:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn the_package_works_without_a_server() {
    let output = Command::new(venv_python())
        .arg(source_dir().join("tests/test_offline.py"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the venv's python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the offline tests failed:\n{stderr}");
    assert!(stderr.contains("OK"), "unittest's summary:\n{stderr}");
}

#[test]
fn a_node_locked_line_is_granted_with_no_server_and_another_hosts_is_refused() {
    const FEATURE: &str = "cad-suite";
    let vendor = VendorKey::generate().expect("a vendor key");
    let dir = tempfile::tempdir().expect("a temp dir");
    let this_machine = local_host_ids();
    let id = this_machine.first().expect("this machine has a host id to bind a line to");
    let write = |name: &str, hostid: &str| {
        let text = format!(
            "# node-locked\nFEATURE {FEATURE} vendor=acme version=2.0 count=uncounted \
             hostid=\"{hostid}\" expires=2999-12-31\n"
        );
        let path = dir.path().join(name);
        let signed = sign_license_text(name, &text, &vendor).expect("the line signs");
        std::fs::write(&path, signed).expect("the license file is written");
        path
    };
    let mine = write("mine.lic", id);
    let other = write("other.lic", "0a:0b:0c:0d:0e:0f");
    let public_key = dir.path().join("vendor.pub");
    std::fs::write(&public_key, vendor.public_key().to_key_file_text()).expect("key written");

    let output = Command::new(venv_python())
        .arg(source_dir().join("tests/node_locked.py"))
        .arg(FEATURE)
        .args([&mine, &other, &public_key])
        .current_dir(std::env::temp_dir())
        // Nothing from the environment may add a server to try.
        .env_remove("QLM_LICENSE")
        .env_remove("QLM_SERVERS")
        .output()
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the script failed:\n{stdout}\n{stderr}");
    let granted = format!("GRANTED node-locked {} line 2", mine.display());
    assert!(stdout.lines().any(|l| l == granted), "{granted}: {stdout}");
    let refused = format!(
        "REFUSED no node-locked license for this machine: {}:2: feature `{FEATURE}`",
        other.display()
    );
    assert!(stdout.lines().any(|l| l.starts_with(&refused)), "{refused}: {stdout}");
    assert_eq!(stdout.lines().last(), Some("OK"), "{stdout}");
    assert_eq!(stderr, "", "the program saw errors or warnings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_granted_through_any_node() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let script = Script::start("grant_through_any_node", &addrs(&cluster, &[1, 2, 3]), "py-any");
    let lines = script.finishes_cleanly();
    for id in 1..=3 {
        let granted = format!("GRANTED {}", cluster.client_addr(id));
        assert!(lines.iter().any(|l| l.starts_with(&granted)), "{granted}: {lines:?}");
    }
    until_handles(&cluster, 1, ("py-any", "vhdl-editor"), &[], Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_carries_its_reason_and_holders() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let script =
        Script::start("denial_with_reason_and_holders", &addrs(&cluster, &[2, 3, 1]), "py-deny");
    let lines = script.finishes_cleanly();
    assert!(lines.iter().any(|l| l.starts_with("DENIED ALL_IN_USE py-deny ")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_wait_is_granted_when_a_seat_frees() {
    let cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let script = Script::start(
        "queued_wait_granted_when_a_seat_frees",
        &addrs(&cluster, &[1, 2, 3]),
        "py-queue",
    );
    let lines = script.finishes_cleanly();
    assert!(lines.iter().any(|l| l.starts_with("QUEUED-GRANTED ")), "{lines:?}");
    until_handles(&cluster, 1, ("py-queue", "synthesis"), &[], Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_while_a_seat_is_held_reaches_no_error() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    // The leader first in the list: the program is talking to it when it dies.
    let mut order = vec![leader];
    order.extend((1..=3).filter(|&id| id != leader));
    let mut script = Script::start("leader_killed_while_held", &addrs(&cluster, &order), "py-kill");
    let handle = script.held();
    cluster.kill(leader);
    let new_leader = cluster.wait_ready().await;
    assert_ne!(new_leader, leader);
    // The seat is kept through the election (the program's heartbeats fail over).
    tokio::time::sleep(Duration::from_secs(6)).await; // longer than the session's TTL
    assert_eq!(handles_of(&cluster, new_leader, "py-kill", "vhdl-editor").await, vec![handle]);
    script.go();
    let lines = script.finishes_cleanly();
    assert!(lines.iter().any(|l| l.starts_with("GRANTED ")), "{lines:?}");
    until_handles(&cluster, new_leader, ("py-kill", "vhdl-editor"), &[], Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_checkout_is_granted_once() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let mut order = vec![leader];
    order.extend((1..=3).filter(|&id| id != leader));
    let mut script =
        Script::start("retry_never_grants_twice", &addrs(&cluster, &order), "py-retry");
    script.expect("READY");
    // The leader stops answering with the program's next checkout on its way to it: the
    // client's deadline passes and it sends the same request (same id) to the others.
    cluster.pause(leader);
    script.go();
    let handle = script.held();
    cluster.resume(leader);
    // Every node, the old leader too once it has caught up, shows exactly the one grant.
    let user = ("py-retry", "vhdl-editor");
    for id in 1..=3 {
        until_handles(&cluster, id, user, &[handle], Duration::from_secs(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in 1..=3 {
        assert_eq!(handles_of(&cluster, id, user.0, user.1).await, vec![handle], "node {id}");
    }
    script.go();
    script.finishes_cleanly();
    let leader = cluster.wait_ready().await;
    until_handles(&cluster, leader, user, &[], Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_raises_once_then_a_new_session_is_opened() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    let user = ("py-lost", "vhdl-editor");
    let mut script =
        Script::start("session_lost_then_renewed", &addrs(&cluster, &[1, 2, 3]), user.0);
    let handle = script.held();
    // No node answers for longer than the session's TTL (2 s): the client's session is lost.
    for id in 1..=3 {
        cluster.pause(id);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for id in 1..=3 {
        cluster.resume(id);
    }
    let leader = cluster.wait_ready().await;
    script.go();
    assert_eq!(script.expect("SESSION-LOST"), "unreachable");
    let renewed: u64 = script.expect("RENEWED").parse().expect("a handle");
    assert_ne!(renewed, handle);
    script.finishes_cleanly();
    // Neither the lost session's seat nor the new one is left held.
    until_handles(&cluster, leader, user, &[], Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_holders_seat_is_freed_after_its_ttl() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    let servers = addrs(&cluster, &[1, 2, 3]);
    let mut holder = Script::start("holder_sigkilled", &servers, "py-crash");
    let handle = holder.held();
    let user = ("py-crash", "synthesis");
    assert_eq!(handles_of(&cluster, leader, user.0, user.1).await, vec![handle]);
    // SIGKILL: no checkin, no CloseSession; the heartbeats stop.
    drop(holder);
    let freed_after = until_handles(&cluster, leader, user, &[], Duration::from_secs(12)).await;
    // The session's TTL is 2 s and it heartbeats every third of it.
    assert!(freed_after >= Duration::from_millis(1000), "freed after {freed_after:?}");
    // The one seat of the feature is free again for the next program.
    let next = Script::start("grant_once", &servers, "py-next");
    next.finishes_cleanly();
}
