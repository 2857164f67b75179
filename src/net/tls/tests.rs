use std::os::unix::fs::PermissionsExt as _;

use super::certs::{CA_CERT_FILE, CA_KEY_FILE, make_ca, make_node_cert};
use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_ca_and_a_node_certificate_are_made_with_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(&dir.path().join("ca"), "test CA", 30).unwrap();
    assert_eq!(mode(&ca.key), 0o600);
    assert_eq!(mode(&ca.cert), 0o644);
    let hosts = vec!["127.0.0.1".to_owned(), "node1.example".to_owned()];
    let node =
        make_node_cert(&dir.path().join("ca"), "node1", &hosts, &dir.path().join("n"), 30).unwrap();
    assert_eq!(mode(&node.key), 0o600);
    // What a node loads at start reads them back.
    let peer = PeerTls::read(&node.cert, &node.key, &ca.cert).unwrap();
    assert!(format!("{peer:?}").contains("node1.key"));
    let der = std::fs::read(&node.cert).unwrap();
    let der = CertificateDer::from_pem_slice(&der).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let sans = format!("{:?}", parsed.subject_alternative_name().unwrap().unwrap().value);
    assert!(sans.contains("[127, 0, 0, 1]") && sans.contains("node1.example"), "{sans}");
}

#[test]
fn nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "test CA", 30).unwrap();
    let before = std::fs::read(&ca.key).unwrap();
    let err = make_ca(dir.path(), "test CA", 30).unwrap_err();
    assert!(err.0.contains(CA_CERT_FILE) && err.0.contains("exists"), "{err}");
    assert_eq!(std::fs::read(&ca.key).unwrap(), before);
    let hosts = vec!["127.0.0.1".to_owned()];
    make_node_cert(dir.path(), "n1", &hosts, dir.path(), 30).unwrap();
    let again = make_node_cert(dir.path(), "n1", &hosts, dir.path(), 30).unwrap_err();
    assert!(again.0.contains("n1.pem") && again.0.contains("exists"), "{again}");
}

#[test]
fn a_ca_whose_key_is_not_its_own_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(&dir.path().join("a"), "A", 30).unwrap();
    make_ca(&dir.path().join("b"), "B", 30).unwrap();
    std::fs::copy(dir.path().join("b").join(CA_KEY_FILE), dir.path().join("mixed.key")).unwrap();
    std::fs::create_dir(dir.path().join("mixed")).unwrap();
    std::fs::copy(dir.path().join("a").join(CA_CERT_FILE), dir.path().join("mixed/ca.pem"))
        .unwrap();
    std::fs::copy(dir.path().join("mixed.key"), dir.path().join("mixed/ca.key")).unwrap();
    let err =
        make_node_cert(&dir.path().join("mixed"), "n1", &["localhost".to_owned()], dir.path(), 30)
            .unwrap_err();
    assert!(err.0.contains("is not the key of"), "{err}");
    let bad_name = make_node_cert(&dir.path().join("a"), "../x", &[], dir.path(), 30);
    assert!(bad_name.unwrap_err().0.contains("--name"));
    for bad in ["bad host", "a..b", "-a.example", "x_y"] {
        let err = make_node_cert(&dir.path().join("a"), "n2", &[bad.to_owned()], dir.path(), 30);
        assert!(err.unwrap_err().0.contains(&format!("`{bad}`")), "{bad}");
    }
    assert!(!dir.path().join("n2.key").exists(), "nothing written for a bad host");
}

#[test]
fn unusable_files_are_named_with_their_setting() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not pem at all\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let ca = make_ca(dir.path(), "CA", 30).unwrap();

    let err = PeerTls::read(&ca.cert, &ca.key, &junk).unwrap_err();
    assert_eq!(err.setting, "--peer-tls-ca");
    assert!(err.to_string().contains("junk.pem") && err.to_string().contains("no `BEGIN"));
    let err = PeerTls::read(&missing, &ca.key, &ca.cert).unwrap_err();
    assert!(err.to_string().contains("--peer-tls-cert") && err.to_string().contains("cannot read"));
    let err = PeerTls::read(&ca.cert, &ca.cert, &ca.cert).unwrap_err();
    assert_eq!(err.setting, "--peer-tls-key", "a certificate is not a key: {err}");

    let err = ClientTls::read(None, Some(&ca.cert), None).unwrap_err();
    assert!(err.to_string().contains("without --tls-key"), "{err}");
    let err = ClientTls::read(Some(&junk), None, None).unwrap_err();
    assert_eq!(err.setting, "--tls-ca");
}

#[test]
fn debug_output_never_shows_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "CA", 30).unwrap();
    let key_text = std::fs::read_to_string(&ca.key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    let peer = PeerTls::read(&ca.cert, &ca.key, &ca.cert).unwrap();
    let client = ClientTls::read(Some(&ca.cert), Some(&ca.cert), Some(&ca.key)).unwrap();
    for shown in [format!("{peer:?}"), format!("{client:?}")] {
        assert!(!shown.contains(key_line), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }
}
