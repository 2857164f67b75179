//! `qlm health`, the container healthcheck (the image has no shell): exit 0 and SERVING for a
//! node that serves, 3 and UNREACHABLE for an address where nothing listens.

use std::net::TcpListener;
use std::process::Command;

use cluster_tests::{Cluster, qlmd_binary};

fn qlm(servers: &str) -> (Option<i32>, String) {
    let qlm = qlmd_binary().with_file_name("qlm");
    let output =
        Command::new(qlm).args(["--servers", servers, "health"]).output().expect("qlm runs");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qlm_health_exits_0_for_a_serving_node_and_3_for_an_unreachable_one() {
    let cluster = Cluster::start(1);
    cluster.wait_ready().await;
    let node = cluster.client_addr(1);
    let (code, out) = qlm(&node);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), format!("{node}: SERVING"));

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (code, out) = qlm(&format!("{node},{closed}"));
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains(&format!("{closed}: UNREACHABLE")), "{out}");
}
