use super::*;

fn flags() -> NodeFlags {
    NodeFlags {
        id: Some(2),
        data_dir: Some("/var/lib/qlm".into()),
        listen: Some("127.0.0.1:7400".parse().unwrap()),
        peer_listen: Some("127.0.0.1:7401".parse().unwrap()),
        http_listen: Some("127.0.0.1:7402".parse().unwrap()),
        initial_cluster: Some("1=a:7401, 2=b:7401,3=c:7401".into()),
        license: Some("site.lic".into()),
        vendor_pubkey: vec!["vendor.pub".into()],
        ..NodeFlags::default()
    }
}

#[test]
fn flags_alone_make_a_node_with_the_default_timings() {
    let config = NodeConfig::resolve(flags()).unwrap();
    assert_eq!(config.initial_cluster.len(), 3);
    assert_eq!(config.initial_cluster[&2], "b:7401");
    assert_eq!(
        (config.heartbeat_ms, config.election_min_ms, config.election_max_ms),
        (50, 200, 400)
    );
    assert_eq!(config.report_log, Some("/var/lib/qlm/report/usage.jsonl".into()));
    assert_eq!(config.report_max_bytes, 64 << 20);
}

#[test]
fn the_report_log_can_be_moved_or_turned_off() {
    let moved = NodeFlags { report_log: Some("/var/log/qlm.jsonl".into()), ..flags() };
    assert_eq!(NodeConfig::resolve(moved).unwrap().report_log, Some("/var/log/qlm.jsonl".into()));
    let off = NodeFlags { report_log: Some("none".into()), ..flags() };
    assert_eq!(NodeConfig::resolve(off).unwrap().report_log, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qlmd.toml");
    std::fs::write(&path, "report_log = \"none\"\nreport_max_mb = 8\n").unwrap();
    let config = NodeConfig::resolve(NodeFlags { config: Some(path), ..flags() }).unwrap();
    assert_eq!((config.report_log, config.report_max_bytes), (None, 8 << 20));
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qlmd.toml");
    std::fs::write(
        &path,
        "id = 3\nheartbeat_ms = 50\nelection_min_ms = 300\noptions = \"site.opt\"\n",
    )
    .unwrap();
    let config = NodeConfig::resolve(NodeFlags { config: Some(path), ..flags() }).unwrap();
    assert_eq!(config.id, 2, "the flag wins");
    assert_eq!(config.heartbeat_ms, 50, "the file fills what flags leave out");
    assert_eq!(config.options, Some("site.opt".into()));
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let cases: Vec<(NodeFlags, &str)> = vec![
        (NodeFlags { id: Some(9), ..flags() }, "--join"),
        (NodeFlags { id: None, ..flags() }, "--id"),
        (NodeFlags { initial_cluster: Some("1=a:7401,1=b:7401".into()), ..flags() }, "twice"),
        (NodeFlags { initial_cluster: Some("1=a".into()), ..flags() }, "HOST:PORT"),
        (NodeFlags { initial_cluster: Some("x=a:1".into()), ..flags() }, "not an id"),
        (NodeFlags { vendor_pubkey: vec![], ..flags() }, "--vendor-pubkey"),
        (NodeFlags { election_min_ms: Some(40), ..flags() }, "--election-min-ms"),
        (NodeFlags { election_max_ms: Some(150), ..flags() }, "--election-max-ms"),
        (
            NodeFlags { http_listen: Some("127.0.0.1:7400".parse().unwrap()), ..flags() },
            "another listener",
        ),
        (NodeFlags { config: Some("/nonexistent/qlmd.toml".into()), ..flags() }, "cannot read"),
        (NodeFlags { report_max_mb: Some(0), ..flags() }, "--report-max-mb"),
        (NodeFlags { peer_route: Some("2=nowhere".into()), ..flags() }, "--peer-route"),
        (NodeFlags { snapshot_every: Some(0), ..flags() }, "--snapshot-every"),
        (NodeFlags { snapshot_log_mb: Some(0), ..flags() }, "--snapshot-log-mb"),
    ];
    for (flags, needle) in cases {
        let err = NodeConfig::resolve(flags).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn the_admin_token_never_shows_in_debug_output() {
    let mut config = NodeConfig::resolve(flags()).unwrap();
    config.admin_token = Some("s3cret-token-value".into());
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains("s3cret-token-value"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn an_admin_token_over_the_limit_is_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "t".repeat(crate::admin::MAX_ADMIN_TOKEN_BYTES + 1)).unwrap();
    let err = admin_token(Some(path)).unwrap_err().to_string();
    assert!(err.contains("--admin-token-file") && !err.contains("ttt"), "{err}");
}

#[test]
fn tls_files_come_from_the_file_too_and_half_a_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qlmd.toml");
    std::fs::write(&path, "peer_tls_cert = \"node.pem\"\n").unwrap();
    let err = NodeConfig::resolve(NodeFlags { config: Some(path), ..flags() }).unwrap_err();
    assert!(err.to_string().contains("--peer-tls-key"), "{err}");
}

#[test]
fn the_id_from_a_statefulset_host_name_is_its_ordinal_plus_one() {
    assert_eq!(id_from_host_name("qlm-0").unwrap(), 1);
    assert_eq!(id_from_host_name("quorumlm-12").unwrap(), 13);
    let err = id_from_host_name("qlm").unwrap_err();
    assert_eq!(err.setting, "--id-from-hostname");
    assert!(err.reason.contains("`qlm`"), "{err}");
}

#[test]
fn a_joining_node_may_be_outside_the_initial_cluster_and_routes_parse() {
    let joining = NodeFlags {
        id: Some(4),
        join: true,
        peer_route: Some("1=127.0.0.1:9001, 3=proxy:9003".into()),
        ..flags()
    };
    let config = NodeConfig::resolve(joining).unwrap();
    assert!(config.join && !config.initial_cluster.contains_key(&4));
    let founder = NodeConfig::resolve(NodeFlags { join: true, ..flags() }).unwrap();
    assert_eq!(founder.id, 2, "--join on an original member changes nothing (StatefulSets)");
    assert_eq!(config.peer_route[&3], "proxy:9003");
    assert_eq!(config.snapshot_every, qlm_raft::SNAPSHOT_EVERY_ENTRIES);
    assert_eq!(config.snapshot_log_bytes, 64 * 1024 * 1024);
}

#[test]
fn unknown_file_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qlmd.toml");
    std::fs::write(&path, "data_dri = \"/tmp\"\n").unwrap();
    let err = NodeConfig::resolve(NodeFlags { config: Some(path), ..flags() }).unwrap_err();
    assert!(err.to_string().contains("data_dri"), "{err}");
}
