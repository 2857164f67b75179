//! `qlm status`, `qlm checkout`, `qlm run` and `qlm admin` as scripts drive them: the real
//! binary against the real client services over an in-process node (`qlm_server::testkit`)
//! on a real port, exit codes and output checked.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};

use qlm_server::testkit::{ADMIN_TOKEN, InProcessNode, closed_port, serve};

fn qlm(servers: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qlm"));
    for name in ["QLM_SERVERS", "QLM_LICENSE", "QLM_VENDOR_PUBKEY", "QLM_ADMIN_TOKEN"] {
        command.env_remove(name);
    }
    command.env("USER", "ann");
    if let Some(servers) = servers {
        command.env("QLM_SERVERS", servers);
    }
    command
}

/// Runs a command to its end off the async workers (the node serves on them meanwhile).
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_holds_until_sigterm_then_checks_in_and_exits_0() {
    let node = serve(InProcessNode::with_seats("vhdl", 2)).await;
    let mut child = qlm(Some(&node.servers()))
        .args(["checkout", "vhdl", "--count", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().take(2).map(Result::unwrap).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(first_lines[0].starts_with("granted vhdl 1.0 (2 seats)"), "{first_lines:?}");
    assert_eq!(node.node.held().len(), 1);

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(node.node.held().is_empty(), "checked in");
    assert_eq!(node.node.live_sessions(), 0, "session closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_denied_exits_1_with_reason_and_holders() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let mut first = qlm(Some(&node.servers()))
        .args(["checkout", "vhdl"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = first.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let mut second = qlm(Some(&node.servers()));
    second.args(["checkout", "vhdl"]);
    let denied = output(second).await;
    assert_eq!(denied.status.code(), Some(1), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("ALL_IN_USE"), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("held by ann@"), "{}", stderr(&denied));

    let _ = first.kill();
    let _ = first.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_against_a_closed_port_exits_3() {
    let mut command = qlm(Some(&format!("127.0.0.1:{}", closed_port())));
    command.args(["checkout", "vhdl"]);
    let unreachable = output(command).await;
    assert_eq!(unreachable.status.code(), Some(3), "{}", stderr(&unreachable));
    assert!(stderr(&unreachable).contains("no license server answered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_with_nothing_set_tries_the_server_on_this_machine() {
    // As etcdctl does: no QLM_SERVERS, no QLM_LICENSE, no --servers: 127.0.0.1:7400. (Nothing
    // listens there on a test machine; a local cluster started by `make run` would answer.)
    let mut command = qlm(None);
    command.args(["checkout", "vhdl"]);
    let missing = output(command).await;
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("127.0.0.1:7400"), "{}", stderr(&missing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_walks_qlm_license_past_a_dead_cluster_to_a_live_one() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let dead = format!("7400@127.0.0.2,{}@127.0.0.1", closed_port());
    let mut child = qlm(None)
        .env("QLM_LICENSE", format!("{dead}:{}", node.servers()))
        .args(["checkout", "vhdl"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.starts_with("granted vhdl"), "{line}");
    assert_eq!(node.node.held().len(), 1);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_qlm_license_entry_exits_2_naming_it() {
    let mut command = qlm(None);
    command.env("QLM_LICENSE", "/opt/x.lic:7400@:a:7400").args(["checkout", "vhdl"]);
    let refused = output(command).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("QLM_LICENSE: entry 2 `7400@`"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_lists_features_holders_and_the_cluster() {
    let node = serve(InProcessNode::with_seats("vhdl", 25)).await;
    let mut holder = qlm(Some(&node.servers()))
        .args(["checkout", "vhdl"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = holder.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next()).await.unwrap();

    let mut command = qlm(Some(&node.servers()));
    command.args(["status", "--json"]);
    let status = output(command).await;
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let feature = &json["features"][0];
    assert_eq!(feature["name"], "vhdl");
    assert_eq!((feature["issued"].as_u64(), feature["in_use"].as_u64()), (Some(25), Some(1)));
    assert_eq!(feature["holders"][0]["user"], "ann");
    assert_eq!(json["cluster"]["leader"]["id"], 1);
    assert_eq!(json["cluster"]["members"][0]["role"], "voter");

    let mut text = qlm(Some(&node.servers()));
    text.arg("status");
    let text = output(text).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Users of vhdl: (Total of 25 licenses issued; Total of 1 licenses in use")
    );
    assert!(text.contains("Cluster: leader 1"), "{text}");

    let _ = holder.kill();
    let _ = holder.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_holds_while_the_command_runs_and_exits_with_its_code() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let mut command = qlm(Some(&node.servers()));
    command.args(["run", "vhdl", "--", "sh", "-c", "exit 7"]);
    let ran = output(command).await;
    assert_eq!(ran.status.code(), Some(7), "{}", stderr(&ran));
    assert!(node.node.held().is_empty());
    assert_eq!(node.node.live_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_remove_needs_the_token_and_releases_the_users_checkouts() {
    let node = serve(InProcessNode::with_seats("vhdl", 1)).await;
    let mut holder = qlm(Some(&node.servers()))
        .args(["checkout", "vhdl"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = holder.stdout.take().unwrap();
    tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next()).await.unwrap();

    let mut without = qlm(Some(&node.servers()));
    without.args(["admin", "remove", "--user", "ann"]);
    assert_eq!(output(without).await.status.code(), Some(2));

    let mut remove = qlm(Some(&node.servers()));
    remove.env("QLM_ADMIN_TOKEN", ADMIN_TOKEN).args(["admin", "remove", "--user", "ann"]);
    let removed = output(remove).await;
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
    assert!(node.node.held().is_empty());

    let _ = holder.kill();
    let _ = holder.wait();
}
