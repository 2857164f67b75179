//! Bad configuration gets a clear message at start, from the real `qlmd`: a node whose
//! `--initial-cluster` disagrees with its peers', a missing license file, a data directory it
//! cannot use, a port in use. Each names the problem and the setting, and exits 2.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use cluster_tests::{Cluster, qlmd_binary};

fn free_addr() -> String {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// Runs a one-node qlmd with `cluster`'s vendor key to its end; `license` is `cluster`'s
/// when `None`.
fn qlmd(cluster: &Cluster, data_dir: &Path, listen: &str, license: Option<&str>) -> Output {
    qlmd_with(cluster, data_dir, listen, license, &[])
}

/// [`qlmd`] with more flags.
fn qlmd_with(
    cluster: &Cluster,
    data_dir: &Path,
    listen: &str,
    license: Option<&str>,
    extra: &[&str],
) -> Output {
    let license =
        license.map_or_else(|| cluster.dir.path().join("test.lic"), std::path::PathBuf::from);
    let peer = free_addr();
    Command::new(qlmd_binary())
        .args(["--id", "1", "--listen", listen, "--peer-listen", &peer])
        .args(["--http-listen", &free_addr(), "--initial-cluster", &format!("1={peer}")])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--license")
        .arg(license)
        .arg("--vendor-pubkey")
        .arg(cluster.dir.path().join("keys/vendor.pub"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("qlmd runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn zero_worker_threads_is_refused_naming_the_flag_and_the_node_exits_2() {
    let cluster = Cluster::start(0);
    let data = cluster.dir.path().join("data");
    let output = qlmd_with(&cluster, &data, &free_addr(), None, &["--worker-threads", "0"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--worker-threads must be at least 1"), "{text}");
    assert!(!data.exists(), "the database was not touched");
}

#[test]
fn a_missing_license_file_is_named_and_the_node_exits_2() {
    let cluster = Cluster::start(0);
    let data = cluster.dir.path().join("data");
    let output = qlmd(&cluster, &data, &free_addr(), Some("/nonexistent/site.lic"));
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("cannot read license file /nonexistent/site.lic"), "{text}");
    assert!(!data.exists(), "the database was not touched");
}

#[test]
fn a_data_dir_that_is_not_a_usable_directory_is_named_and_the_node_exits_2() {
    let cluster = Cluster::start(0);
    let file = cluster.dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let output = qlmd(&cluster, &file, &free_addr(), None);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--data-dir") && text.contains("is not a directory"), "{text}");
    assert!(text.contains(&file.display().to_string()), "names the path: {text}");
}

#[test]
fn a_client_port_in_use_is_named_and_the_node_exits_2() {
    let cluster = Cluster::start(0);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = qlmd(&cluster, &cluster.dir.path().join("data"), &addr, None);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("cannot listen on {addr} (--listen)")), "{text}");
    assert!(text.contains("Address already in use"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_initial_cluster_disagrees_with_its_peers_names_both_lists_and_exits_2() {
    let mut cluster = Cluster::start(3);
    cluster.wait_ready().await;
    cluster.kill(3);
    let node = &cluster.nodes[2];
    let right: Vec<String> =
        cluster.nodes.iter().map(|n| format!("{}={}", n.id, n.peer_addr)).collect();
    // The admin added a member to node 3's list only.
    let wrong = format!("{},4=127.0.0.1:9", right.join(","));
    let output = Command::new(qlmd_binary())
        .args(["--id", "3", "--listen", &node.client_addr, "--peer-listen", &node.peer_addr])
        .args(["--http-listen", &node.http_addr, "--initial-cluster", &wrong])
        .arg("--data-dir")
        .arg(&node.data_dir)
        .arg("--license")
        .arg(cluster.dir.path().join("test.lic"))
        .arg("--vendor-pubkey")
        .arg(cluster.dir.path().join("keys/vendor.pub"))
        .stdin(Stdio::null())
        .output()
        .expect("qlmd runs");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--initial-cluster"), "{text}");
    assert!(text.contains(&wrong), "names this node's list: {text}");
    // The peers' refusal names nothing of their cluster: the message points at their logs,
    // where each names its own list.
    assert!(text.contains("`refused node 3`"), "points at the peers' logs: {text}");
    assert!(text.contains("Start every node with the same --initial-cluster"), "{text}");
    let peer_log = cluster.log_of(1);
    assert!(
        peer_log.contains("refused node 3") && peer_log.contains("ERROR"),
        "the peer logs the refusal at ERROR: {peer_log}"
    );
    assert!(peer_log.contains(&right.join(",")), "the peer logs its own list: {peer_log}");
    // Node 3, started again with the right list, rejoins.
    cluster.spawn(3);
    cluster.wait_ready().await;
}
