//! The C SDK against real 3-process clusters: a C program (`cluster-tests/c/sdk_driver.c`,
//! compiled here with `cc` and linked to the libquorumlm cargo built beside this test) takes
//! one command per line and answers one JSON line, so each test drives it step by step and
//! checks what the program saw against what the cluster holds.
//!
//! The library: `$QLM_CAPI_LIB_DIR`, else `libquorumlm.so` in this test's `target/<profile>`
//! (`deps/` or the profile folder; cluster-tests dev-depends on qlm-capi, so `cargo test -p
//! cluster-tests --test sdk_c` builds it).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use cluster_tests::Cluster;
use serde_json::Value;

const QLM_OK: i64 = 0;
const QLM_ERR_DENIED: i64 = 5;
/// How long one driver command may take (a checkout rides out a leader election).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder with libquorumlm.so.
fn lib_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("QLM_CAPI_LIB_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("this binary's path");
    let deps = exe.parent().expect("target/<profile>/deps").to_path_buf();
    let profile = deps.parent().expect("target/<profile>").to_path_buf();
    [deps, profile]
        .into_iter()
        .find(|dir| dir.join("libquorumlm.so").exists())
        .expect("libquorumlm.so beside this test (cargo build -p qlm-capi, or QLM_CAPI_LIB_DIR)")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// Compiles `source` (relative to the workspace) against libquorumlm, once per binary name.
pub fn compile(source: &str, name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        tempfile::Builder::new().prefix("qlm-sdk-c").tempdir().expect("a temp dir").keep()
    });
    let out = dir.join(name);
    if out.exists() {
        return out;
    }
    let lib = lib_dir();
    let output = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(workspace().join("src/capi/include"))
        .arg(workspace().join(source))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lquorumlm", "-lpthread", "-o"])
        .arg(&out)
        .output()
        .expect("cc runs");
    assert!(output.status.success(), "cc {source}:\n{}", String::from_utf8_lossy(&output.stderr));
    out
}

/// One running C driver; killed on drop.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<Value>,
    /// Lost-callback lines seen so far.
    lost_callbacks: Vec<Value>,
}

impl Driver {
    fn start() -> Driver {
        Driver::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Driver {
        static BUILD: OnceLock<PathBuf> = OnceLock::new();
        let binary = BUILD.get_or_init(|| compile("cluster-tests/c/sdk_driver.c", "sdk_driver"));
        let mut child = Command::new(binary)
            .env_remove("QLM_LICENSE")
            .env_remove("QLM_SERVERS")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the driver starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (send, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("the driver printed {line:?}: {e}"));
                if send.send(value).is_err() {
                    return;
                }
            }
        });
        let mut driver = Driver { child, stdin, answers, lost_callbacks: Vec::new() };
        let ready = driver.next_answer();
        assert_eq!(ready["op"], "ready");
        assert_eq!(ready["version"], "0.1.0");
        driver
    }

    /// Sends a command without waiting for its answer.
    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("the driver reads");
        self.stdin.flush().expect("flush");
    }

    /// The next answer that is not a lost callback (those are kept).
    fn next_answer(&mut self) -> Value {
        loop {
            let value = match self.answers.recv_timeout(ANSWER_TIMEOUT) {
                Ok(value) => value,
                Err(RecvTimeoutError::Timeout) => panic!("no answer within {ANSWER_TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the driver exited"),
            };
            if value["op"] == "lost-callback" {
                self.lost_callbacks.push(value);
            } else {
                return value;
            }
        }
    }

    fn call(&mut self, command: &str) -> Value {
        self.send(command);
        self.next_answer()
    }

    /// Runs `command`, asserting it returned QLM_OK.
    #[track_caller]
    fn ok(&mut self, command: &str) -> Value {
        let answer = self.call(command);
        assert_eq!(answer["status"], QLM_OK, "{command}: {answer}");
        answer
    }

    /// A checkout into `slot`; on a grant, the info that followed it.
    fn checkout(&mut self, slot: u32, feature: &str, wait_ms: i64) -> Value {
        let answer = self.call(&format!("checkout {slot} {feature} 1 {wait_ms}"));
        if answer["status"] == QLM_OK {
            let info = self.next_answer();
            assert_eq!(info["op"], "info", "{info}");
            return info;
        }
        answer
    }

    /// A client of `servers` with a session of `ttl_ms`.
    fn connected(servers: &str, ttl_ms: u32) -> Driver {
        let mut driver = Driver::start();
        driver.ok(&format!("client {servers}"));
        driver.ok(&format!("open {ttl_ms}"));
        driver
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ready_cluster() -> (Cluster, u64) {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready().await;
    (cluster, leader)
}

/// Checkouts of `feature` the cluster holds, as node `id` sees them.
async fn held(cluster: &Cluster, id: u64, feature: &str) -> Vec<u64> {
    let all = cluster.checkouts(id).await.unwrap_or_else(|e| panic!("checkouts of node {id}: {e}"));
    all.iter().filter(|c| c.feature == feature).map(|c| c.handle).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_is_granted_through_any_single_node() {
    let (cluster, _) = ready_cluster().await;
    for id in 1..=3 {
        let addr = cluster.client_addr(id);
        let mut driver = Driver::connected(&addr, 0);
        let info = driver.checkout(0, "vhdl-editor", -1);
        assert_eq!(info["status"], QLM_OK, "through node {id}: {info}");
        assert_eq!(info["feature"], "vhdl-editor");
        assert_eq!(info["count"], 1);
        assert_eq!(info["node_locked"], 0);
        assert!(info["handle"].as_u64().is_some_and(|h| h > 0), "{info}");
        let handle = info["handle"].as_u64().unwrap_or_default();
        assert!(held(&cluster, id, "vhdl-editor").await.contains(&handle));
        driver.ok("checkin 0");
        driver.ok("close");
        driver.ok("free-client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_carries_its_reason_and_holders() {
    let (cluster, _) = ready_cluster().await;
    let servers = cluster.servers();
    let mut holder = Driver::connected(&servers, 0);
    let granted = holder.checkout(0, "synthesis", -1);
    assert_eq!(granted["status"], QLM_OK, "{granted}");
    let handle = granted["handle"].as_u64().unwrap_or_default();
    let mut other = Driver::connected(&servers, 0);
    let denied = other.checkout(0, "synthesis", -1);
    assert_eq!(denied["status"], QLM_ERR_DENIED, "{denied}");
    assert_eq!(denied["reason"], "ALL_IN_USE", "{denied}");
    let holders = denied["holders"].as_array().cloned().unwrap_or_default();
    assert_eq!(holders.len(), 1, "{denied}");
    let line = holders[0].as_str().unwrap_or_default();
    assert!(line.contains(&format!("handle={handle} count=1 since=")), "{line}");
    assert!(denied["error"].as_str().is_some_and(|e| e.contains("QLM_ERR_DENIED")), "{denied}");
    let unknown = other.checkout(1, "no-such-feature", -1);
    assert_eq!(
        (unknown["status"].as_i64(), unknown["reason"].as_str()),
        (Some(QLM_ERR_DENIED), Some("NO_SUCH_FEATURE"))
    );
    assert_eq!(unknown["holders"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_wait_is_granted_when_the_seat_frees() {
    let (cluster, _) = ready_cluster().await;
    let servers = cluster.servers();
    let mut holder = Driver::connected(&servers, 0);
    assert_eq!(holder.checkout(0, "synthesis", -1)["status"], QLM_OK);
    let mut waiter = Driver::connected(&servers, 0);
    let started = Instant::now();
    waiter.send("checkout 0 synthesis 1 20000");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(waiter.answers.try_recv(), Err(_)), "still waiting while the seat is held");
    holder.ok("checkin 0");
    let answer = waiter.next_answer();
    assert_eq!(answer["status"], QLM_OK, "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let info = waiter.next_answer();
    let handle = info["handle"].as_u64().unwrap_or_default();
    assert_eq!(held(&cluster, 1, "synthesis").await, vec![handle], "the waiter holds the one seat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_while_a_seat_is_held_costs_the_program_nothing() {
    let (mut cluster, leader) = ready_cluster().await;
    let mut driver = Driver::connected(&cluster.servers(), 0);
    let info = driver.checkout(0, "vhdl-editor", -1);
    assert_eq!(info["status"], QLM_OK, "{info}");
    let handle = info["handle"].as_u64().unwrap_or_default();
    cluster.kill(leader);
    let new_leader = cluster.wait_ready().await;
    assert_ne!(new_leader, leader);
    let next = driver.checkout(1, "vhdl-editor", -1);
    assert_eq!(next["status"], QLM_OK, "the next checkout after the election: {next}");
    let held = held(&cluster, new_leader, "vhdl-editor").await;
    assert!(held.contains(&handle), "the seat is kept: {held:?} lacks {handle}");
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(driver.ok("lost")["lost"], 0);
    assert!(driver.lost_callbacks.is_empty(), "{:?}", driver.lost_callbacks);
    driver.ok("checkin 0");
    driver.ok("checkin 1");
    driver.ok("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_retried_across_a_dying_node_is_granted_once() {
    let (mut cluster, mut leader) = ready_cluster().await;
    let mut driver = Driver::connected(&cluster.servers(), 0);
    let mut granted = Vec::new();
    for (round, delay_ms) in [5u64, 20, 60].into_iter().enumerate() {
        // The leader dies while the checkout is on its way or being committed.
        driver.send(&format!("checkout {round} chaos-pool 1 -1"));
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        cluster.kill(leader);
        let answer = driver.next_answer();
        assert_eq!(answer["status"], QLM_OK, "round {round}: {answer}");
        granted.push(driver.next_answer()["handle"].as_u64().unwrap_or_default());
        let old = leader;
        leader = cluster.wait_ready().await;
        cluster.spawn(old);
        let held = held(&cluster, leader, "chaos-pool").await;
        let mut expected = granted.clone();
        expected.sort_unstable();
        let mut held_sorted = held.clone();
        held_sorted.sort_unstable();
        assert_eq!(held_sorted, expected, "round {round}: one checkout per grant");
    }
    assert!(driver.lost_callbacks.is_empty(), "{:?}", driver.lost_callbacks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_seat_is_freed_after_its_ttl() {
    let (cluster, _) = ready_cluster().await;
    let servers = cluster.servers();
    let mut holder = Driver::connected(&servers, 2000);
    assert_eq!(holder.checkout(0, "synthesis", -1)["status"], QLM_OK);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(holder.pid(), libc::SIGKILL) };
    let killed = Instant::now();
    let mut other = Driver::connected(&servers, 0);
    let mut slot = 0;
    let granted_after = loop {
        let answer = other.checkout(slot, "synthesis", -1);
        if answer["status"] == QLM_OK {
            break killed.elapsed();
        }
        assert_eq!(answer["reason"], "ALL_IN_USE", "{answer}");
        assert!(killed.elapsed() < Duration::from_secs(20), "the seat was never freed");
        slot = (slot + 1) % 16;
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        granted_after >= Duration::from_millis(1500),
        "freed before the TTL: {granted_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_calls_the_lost_callback_once() {
    let (cluster, _) = ready_cluster().await;
    let mut driver = Driver::connected(&cluster.servers(), 1500);
    assert_eq!(driver.checkout(0, "vhdl-editor", -1)["status"], QLM_OK);
    // Frozen past its TTL, the program's heartbeats stop; the cluster expires the session.
    unsafe { libc::kill(driver.pid(), libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_secs(5)).await;
    unsafe { libc::kill(driver.pid(), libc::SIGCONT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while driver.lost_callbacks.is_empty() && Instant::now() < deadline {
        let answer = driver.call("lost");
        assert_eq!(answer["status"], QLM_OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(driver.lost_callbacks.len(), 1, "{:?}", driver.lost_callbacks);
    assert_eq!(driver.lost_callbacks[0]["reason"], 1, "{:?}", driver.lost_callbacks);
    assert_eq!(driver.lost_callbacks[0]["user_data_ok"], 1);
    assert_eq!(driver.ok("lost")["lost"], 1);
    assert!(driver.lost_callbacks.len() == 1, "called once");
}

/// The example under valgrind against a live cluster: a grant, a checkin, and no definite
/// leak or memory error (skipped, saying so, where valgrind is not installed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_under_valgrind_loses_no_memory() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed: skipped");
        return;
    }
    let (cluster, _) = ready_cluster().await;
    let example = compile("examples/c/checkout.c", "checkout");
    let output = Command::new("valgrind")
        .args(["--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=1"])
        .arg(&example)
        .args(["vhdl-editor", "", "1"])
        .env("QLM_LICENSE", cluster.servers())
        .output()
        .expect("valgrind runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("granted vhdl-editor") && stdout.contains("checked in"), "{stdout}");
    assert!(
        stderr.contains("definitely lost: 0 bytes") || stderr.contains("no leaks are possible"),
        "{stderr}"
    );
    let summary = stderr.lines().filter(|l| l.contains("lost:") || l.contains("ERROR SUMMARY"));
    eprintln!("valgrind: {}", summary.collect::<Vec<_>>().join(" | "));
}
