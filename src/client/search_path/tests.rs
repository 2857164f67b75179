use super::*;
use proptest::prelude::*;

fn node(host: &str, port: u16) -> ServerAddr {
    ServerAddr { host: host.into(), port }
}

fn parse(text: &str) -> Vec<Entry> {
    parse_search_path("QLM_LICENSE", text).unwrap().entries
}

#[test]
fn files_directories_servers_and_clusters_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().display().to_string();
    let text = format!("/opt/x/node.lic:{dir_path}:7400@a:b:7401:c,d:27000@e,27001@f:local.lic:g");
    assert_eq!(
        parse(&text),
        [
            Entry::File("/opt/x/node.lic".into()),
            Entry::Directory(dir.path().to_path_buf()),
            Entry::Cluster(vec![node("a", 7400)]),
            Entry::Cluster(vec![node("b", 7401)]),
            Entry::Cluster(vec![node("c", DEFAULT_CLIENT_PORT), node("d", DEFAULT_CLIENT_PORT)]),
            Entry::Cluster(vec![node("e", 27000), node("f", 27001)]),
            Entry::File("local.lic".into()),
            Entry::Cluster(vec![node("g", DEFAULT_CLIENT_PORT)]),
        ]
    );
}

#[test]
fn ports_schemes_and_ipv6_keep_their_colons() {
    assert_eq!(
        parse("a:7400,b:7401,c:7402:/etc/lic"),
        [
            Entry::Cluster(vec![node("a", 7400), node("b", 7401), node("c", 7402)]),
            Entry::File("/etc/lic".into()),
        ]
    );
    let tls = parse_search_path("QLM_LICENSE", "https://a:7400/:[::1]:7401").unwrap();
    assert_eq!(
        tls.entries,
        [Entry::Cluster(vec![node("a", 7400)]), Entry::Cluster(vec![node("::1", 7401)])]
    );
    assert!(tls.wants_tls);
    assert!(!parse_search_path("x", "a:7400").unwrap().wants_tls);
}

#[test]
fn empty_entries_are_skipped_as_in_path() {
    assert_eq!(parse(":a:7400::/x.lic:"), parse("a:7400:/x.lic"));
    assert!(parse("").is_empty());
}

#[test]
fn a_malformed_entry_is_named_with_its_position_and_origin() {
    for (text, position, needle) in [
        ("/x.lic:7400@:b", 2, "not a host"),
        ("a:7400:x@y", 2, "not a port"),
        ("a,b c", 1, "not a host"),
        ("[::1:7400", 1, "without `]`"),
        ("/a.lic:https://a:0", 2, "not a port"),
    ] {
        let error = parse_search_path("SIGASI_LICENSE", text).unwrap_err();
        assert_eq!(error.position, position, "{text}: {error}");
        let message = error.to_string();
        assert!(message.starts_with("SIGASI_LICENSE: entry "), "{message}");
        assert!(message.contains(needle), "{text}: {message}");
    }
}

#[test]
fn bounds_refuse_a_path_too_long_or_with_too_many_entries() {
    let long = "a".repeat(MAX_SEARCH_PATH_BYTES + 1);
    assert!(parse_search_path("x", &long).unwrap_err().reason.contains("bytes"));
    let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("/l{i}.lic")).collect();
    let error = parse_search_path("x", &many.join(":")).unwrap_err();
    assert_eq!(error.position, MAX_ENTRIES + 1);
    let shown = parse_search_path("x", &format!("{}@@", "h".repeat(500))).unwrap_err();
    assert!(shown.entry.chars().count() <= qlm_license::fields::MAX_SHOWN_CHARS + 1);
}

proptest! {
    /// Any list of well-formed entries joined with the separator reads back as those entries,
    /// in order.
    #[test]
    fn joined_entries_read_back_in_order(
        entries in prop::collection::vec(
            prop_oneof![
                "[a-z]{1,8}".prop_map(|d| (format!("/opt/{d}/x.lic"), None)),
                ("[a-z]{1,8}", 1u16..).prop_map(|(h, p)| (format!("{p}@{h}"), Some((h, p)))),
                ("[a-z]{1,8}", 1u16..).prop_map(|(h, p)| (format!("{h}:{p}"), Some((h, p)))),
            ],
            1..12,
        )
    ) {
        let text: Vec<&str> = entries.iter().map(|(text, _)| text.as_str()).collect();
        let read = parse(&text.join(":"));
        prop_assert_eq!(read.len(), entries.len());
        for (entry, (text, server)) in read.iter().zip(&entries) {
            match server {
                Some((host, port)) => {
                    prop_assert_eq!(entry, &Entry::Cluster(vec![node(host, *port)]))
                }
                None => prop_assert_eq!(entry, &Entry::File(text.into())),
            }
        }
    }

    /// No input makes the reader panic, and every refusal names a position inside the path.
    #[test]
    fn any_text_is_read_or_refused_with_a_position(text in ".{0,200}") {
        if let Err(error) = parse_search_path("QLM_LICENSE", &text) {
            prop_assert!(error.position <= text.len() + 1);
            prop_assert!(error.to_string().starts_with("QLM_LICENSE: entry"));
        }
    }
}
