//! `qlm license ...` driven as a vendor and an admin drive it: the real binary, real files in
//! a temporary directory, exit codes and output checked.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const UNSIGNED: &str = "\
# ACME site license
FEATURE vhdl-editor vendor=sigasi version=4.0 count=25 expires=2027-12-31 customer=\"ACME Corp\"
INCREMENT simulator vendor=sigasi version=2.1 tokens=100 expires=permanent
";

fn qlm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qlm"))
        .args(args)
        .current_dir(dir)
        .env_remove("QLM_SERVERS")
        .output()
        .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory with a key pair in `keys/`, `site.lic` unsigned and `signed.lic` signed.
fn vendor_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let keygen = qlm(dir.path(), &["license", "keygen", "--out", "keys"]);
    assert_eq!(code(&keygen), 0, "{}", stderr(&keygen));
    fs::write(dir.path().join("site.lic"), UNSIGNED).unwrap();
    let sign = qlm(
        dir.path(),
        &["license", "sign", "--key", "keys/vendor.key", "site.lic", "-o", "signed.lic"],
    );
    assert_eq!(code(&sign), 0, "{}", stderr(&sign));
    dir
}

fn path(dir: &TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn keygen_sign_verify_succeeds_with_exit_0() {
    let dir = vendor_dir();
    let verify =
        qlm(dir.path(), &["license", "verify", "--pubkey", "keys/vendor.pub", "signed.lic"]);
    assert_eq!(code(&verify), 0, "{}{}", stdout(&verify), stderr(&verify));
    let out = stdout(&verify);
    assert!(out.contains("vhdl-editor") && out.contains("simulator"), "{out}");
    assert!(out.contains("2 line(s) valid, 0 refused"), "{out}");
}

#[test]
fn the_secret_key_file_is_private() {
    let dir = vendor_dir();
    let mode = fs::metadata(path(&dir, "keys/vendor.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = fs::read_to_string(path(&dir, "keys/vendor.pub")).unwrap();
    assert!(public.contains("ed25519-public:"));
}

#[test]
fn a_tampered_line_exits_1_and_is_listed() {
    let dir = vendor_dir();
    let signed = fs::read_to_string(path(&dir, "signed.lic")).unwrap();
    fs::write(path(&dir, "signed.lic"), signed.replacen("count=25", "count=2500", 1)).unwrap();
    let verify =
        qlm(dir.path(), &["license", "verify", "--pubkey", "keys/vendor.pub", "signed.lic"]);
    assert_eq!(code(&verify), 1);
    let out = stdout(&verify);
    assert!(
        out.contains(
            "REFUSED  signed.lic:2: feature `vhdl-editor`: field `sig`: signature does not verify"
        ),
        "{out}"
    );
    assert!(out.contains("valid    signed.lic:4: simulator"), "{out}");
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let dir = vendor_dir();
    let verify = qlm(dir.path(), &["license", "verify", "--pubkey", "keys/vendor.pub", "nope.lic"]);
    assert_eq!(code(&verify), 2);
    assert!(stderr(&verify).contains("nope.lic"), "{}", stderr(&verify));
    let bad_key =
        qlm(dir.path(), &["license", "verify", "--pubkey", "keys/none.pub", "signed.lic"]);
    assert_eq!(code(&bad_key), 2);
    assert!(stderr(&bad_key).contains("keys/none.pub"));
}

#[test]
fn the_secret_key_is_not_accepted_as_a_public_key() {
    let dir = vendor_dir();
    let verify =
        qlm(dir.path(), &["license", "verify", "--pubkey", "keys/vendor.key", "signed.lic"]);
    assert_eq!(code(&verify), 2);
    assert!(stderr(&verify).contains("holds a secret key"), "{}", stderr(&verify));
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = vendor_dir();
    let before = fs::read(path(&dir, "keys/vendor.key")).unwrap();
    let again = qlm(dir.path(), &["license", "keygen", "--out", "keys"]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    assert_eq!(fs::read(path(&dir, "keys/vendor.key")).unwrap(), before);
}

#[test]
fn sign_refuses_a_file_with_a_bad_line_and_lists_it() {
    let dir = vendor_dir();
    let bad = format!("{UNSIGNED}FEATURE x vendor=v version=1 expires=permanent count=0\n");
    fs::write(path(&dir, "bad.lic"), bad).unwrap();
    let sign = qlm(dir.path(), &["license", "sign", "--key", "keys/vendor.key", "bad.lic"]);
    assert_eq!(code(&sign), 1);
    assert!(stderr(&sign).contains("bad.lic:4: feature `x`: field `count`"), "{}", stderr(&sign));
    assert_eq!(stdout(&sign), "", "nothing signed is printed");
}

#[test]
fn sign_without_output_writes_to_stdout() {
    let dir = vendor_dir();
    let sign = qlm(dir.path(), &["license", "sign", "--key", "keys/vendor.key", "site.lic"]);
    assert_eq!(code(&sign), 0);
    assert_eq!(stdout(&sign), fs::read_to_string(path(&dir, "signed.lic")).unwrap());
}

#[test]
fn show_prints_the_features_and_with_a_key_their_validity() {
    let dir = vendor_dir();
    let show = qlm(dir.path(), &["license", "show", "signed.lic"]);
    assert_eq!(code(&show), 0);
    let out = stdout(&show);
    for needle in ["FEATURE", "EXPIRES", "vhdl-editor", "25 seats", "100 tokens", "ACME Corp"] {
        assert!(out.contains(needle), "{needle} in {out}");
    }
    assert!(out.contains("signatures not checked"));
    let checked =
        qlm(dir.path(), &["license", "show", "signed.lic", "--pubkey", "keys/vendor.pub"]);
    assert_eq!(code(&checked), 0);
    assert!(stdout(&checked).contains("valid"));
    let json = qlm(dir.path(), &["license", "show", "signed.lic", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["lines"][1]["feature"], "simulator");
    assert_eq!(doc["lines"][1]["unit"], "tokens");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(code(&qlm(dir.path(), &["license", "verify", "x.lic"])), 2, "no --pubkey");
    assert_eq!(code(&qlm(dir.path(), &["license", "frobnicate"])), 2);
    assert_eq!(code(&qlm(dir.path(), &[])), 2);
}

#[test]
fn signing_with_a_key_readable_by_others_warns() {
    let dir = vendor_dir();
    let key = path(&dir, "keys/vendor.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let sign = qlm(dir.path(), &["license", "sign", "--key", "keys/vendor.key", "site.lic"]);
    assert_eq!(code(&sign), 0);
    assert!(stderr(&sign).contains("readable by others"), "{}", stderr(&sign));
}

#[test]
fn a_node_locked_line_verifies_and_shows_as_node_locked() {
    let dir = vendor_dir();
    let text = "FEATURE cad vendor=sigasi version=2.0 count=uncounted expires=permanent \
                hostid=\"HOSTNAME=build7 00:1A:2B:3C:4D:5E\"\n";
    fs::write(path(&dir, "node.lic"), text).unwrap();
    let sign = qlm(
        dir.path(),
        &["license", "sign", "--key", "keys/vendor.key", "node.lic", "-o", "node-signed.lic"],
    );
    assert_eq!(code(&sign), 0, "{}", stderr(&sign));
    let verify =
        qlm(dir.path(), &["license", "verify", "--pubkey", "keys/vendor.pub", "node-signed.lic"]);
    let out = stdout(&verify);
    assert_eq!(code(&verify), 0, "{out}");
    assert!(
        out.contains("valid    node-signed.lic:1: cad 2.0 (sigasi), node-locked (hostid 00:1A:2B:3C:4D:5E,HOSTNAME=build7), permanent"),
        "{out}"
    );
    assert!(out.contains("servers do not serve it"), "{out}");
    let show = qlm(dir.path(), &["license", "show", "node-signed.lic"]);
    assert!(stdout(&show).contains("node-locked (hostid 00:1A:2B:3C:4D:5E,HOSTNAME=build7)"));
    let json = qlm(dir.path(), &["license", "show", "--json", "node-signed.lic"]);
    assert!(stdout(&json).contains("\"node_locked\": true"), "{}", stdout(&json));

    let signed = fs::read_to_string(path(&dir, "node-signed.lic")).unwrap();
    fs::write(path(&dir, "node-signed.lic"), signed.replace("build7", "build8")).unwrap();
    let verify =
        qlm(dir.path(), &["license", "verify", "--pubkey", "keys/vendor.pub", "node-signed.lic"]);
    assert_eq!(code(&verify), 1);
    assert!(
        stdout(&verify).contains("REFUSED  node-signed.lic:1: feature `cad`: field `sig`"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn an_uncounted_line_for_any_host_cannot_be_signed() {
    let dir = vendor_dir();
    fs::write(
        path(&dir, "any.lic"),
        "FEATURE cad vendor=sigasi version=2.0 count=uncounted expires=permanent\n",
    )
    .unwrap();
    let sign = qlm(dir.path(), &["license", "sign", "--key", "keys/vendor.key", "any.lic"]);
    assert_eq!(code(&sign), 1);
    let err = stderr(&sign);
    assert!(err.contains("any.lic:1: feature `cad`: field `hostid`: count=uncounted"), "{err}");
}
