//! A license set travels to every node in one Raft log entry: the license and options files
//! are read only up to their size limits, and a set that would still not fit in an entry is
//! refused before it is proposed. Each refusal names the file, its size and the limit.

use std::path::{Path, PathBuf};

use qlm_license::load::MAX_LICENSE_FILE_BYTES;
use qlm_license::options::{MAX_OPTIONS_FILE_BYTES, load_options_file};
use qlm_license::{TrustedKeys, VendorKey, load_license_file, sign_license_text};
use qlm_node::licenses::load_licenses_command;
use qlm_raft::MAX_ENTRY_BYTES;
use qlm_server::config::{NodeConfig, NodeFlags};

/// Characters of `customer=` and of `notes=` text per license line: long values, each within
/// a field's limit, so that a line's pool takes nearly as many bytes as its text.
const TEXT_CHARS: usize = 1000;

fn vendor_key() -> VendorKey {
    VendorKey::from_seed([23; 32])
}

/// A signed license file of `lines` FEATURE lines, each with [`TEXT_CHARS`] of customer and
/// of notes.
fn signed_license(lines: usize) -> String {
    let (customer, notes) = ("c".repeat(TEXT_CHARS), "n".repeat(TEXT_CHARS));
    let text: String = (0..lines)
        .map(|i| {
            format!(
                "FEATURE f{i} vendor=v version=1 count=1 expires=permanent \
                 customer={customer} notes={notes}\n"
            )
        })
        .collect();
    sign_license_text("big.lic", &text, &vendor_key()).expect("sign")
}

/// An options file of about `bytes` bytes: GROUP lines of distinct user names.
fn options_text(bytes: usize) -> String {
    let mut text = String::new();
    let mut user = 0;
    while text.len() < bytes {
        text.push_str(&format!("GROUP g{user}"));
        for _ in 0..100 {
            text.push_str(&format!(" user{user:07}"));
            user += 1;
        }
        text.push('\n');
    }
    text
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// A node's configuration serving `license` and `options`, trusting [`vendor_key`] (whose key
/// files are written in `dir` the first time).
fn config(dir: &Path, license: PathBuf, options: Option<PathBuf>) -> NodeConfig {
    let keys = dir.join("keys");
    let public = match qlm_license::write_key_pair(&keys, &vendor_key()) {
        Ok(paths) => paths.public,
        Err(_) => keys.join(qlm_license::keyfile::PUBLIC_KEY_FILE),
    };
    NodeConfig::resolve(NodeFlags {
        id: Some(1),
        data_dir: Some(dir.join("data")),
        listen: Some("127.0.0.1:7400".parse().expect("addr")),
        peer_listen: Some("127.0.0.1:7401".parse().expect("addr")),
        http_listen: Some("127.0.0.1:7402".parse().expect("addr")),
        initial_cluster: Some("1=127.0.0.1:7401".into()),
        license: Some(license),
        vendor_pubkey: vec![public],
        options,
        ..NodeFlags::default()
    })
    .expect("config")
}

#[test]
fn a_license_file_over_its_limit_is_refused_with_its_size_and_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = usize::try_from(MAX_LICENSE_FILE_BYTES).expect("a size") + 1;
    let path = write(dir.path(), "huge.lic", &"#".repeat(bytes));
    let trusted: TrustedKeys = [vendor_key().public_key()].into_iter().collect();
    let message = load_license_file(&path, &trusted).expect_err("too large").to_string();
    assert!(message.contains("huge.lic"), "{message}");
    assert!(message.contains(&format!("is {bytes} bytes")), "{message}");
    assert!(message.contains(&MAX_LICENSE_FILE_BYTES.to_string()), "{message}");
}

#[test]
fn an_options_file_over_its_limit_is_refused_with_its_size_and_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = usize::try_from(MAX_OPTIONS_FILE_BYTES).expect("a size") + 7;
    let path = write(dir.path(), "huge.opt", &"#".repeat(bytes));
    let message = load_options_file(&path).expect_err("too large").to_string();
    assert!(message.contains("huge.opt"), "{message}");
    assert!(message.contains(&format!("is {bytes} bytes")), "{message}");
    assert!(message.contains(&MAX_OPTIONS_FILE_BYTES.to_string()), "{message}");
}

#[test]
fn a_license_set_larger_than_one_log_entry_is_refused_before_it_is_proposed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Each file within its own limit, together more than one entry holds.
    let lines = MAX_ENTRY_BYTES * 3 / 5 / signed_license(1).len();
    let license = write(dir.path(), "site.lic", &signed_license(lines));
    let options = options_text(usize::try_from(MAX_OPTIONS_FILE_BYTES).expect("a size") - 4096);
    let options = write(dir.path(), "site.opt", &options);

    let alone = config(dir.path(), license.clone(), None);
    let (command, refused) =
        load_licenses_command(&alone.node_settings()).expect("the license file alone fits");
    assert!(refused.is_empty(), "{refused:?}");
    drop(command);

    let both = config(dir.path(), license, Some(options));
    let message = load_licenses_command(&both.node_settings()).expect_err("too large together");
    assert!(message.contains("site.lic") && message.contains("site.opt"), "{message}");
    assert!(message.contains(&MAX_ENTRY_BYTES.to_string()), "{message}");
    assert!(message.contains("bytes encoded"), "{message}");
}
