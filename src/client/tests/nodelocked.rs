//! Node-locked lines checked by the client library alone, with no server running: real lines
//! signed with a generated vendor key into temporary files, and this machine's real host ids.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use qlm_client::hostid::local_host_ids;
use qlm_client::nodelocked::{NodeLockedGrant, check, license_files_in};
use qlm_license::{Date, TrustedKeys, VendorKey, sign_license_text};
use tempfile::TempDir;

const FEATURE: &str = "cad-suite";

struct Vendor {
    key: VendorKey,
    dir: TempDir,
}

impl Vendor {
    fn new() -> Vendor {
        Vendor { key: VendorKey::generate().unwrap(), dir: tempfile::tempdir().unwrap() }
    }

    /// The keys the vendor builds into its application.
    fn trusted(&self) -> TrustedKeys {
        [self.key.public_key()].into_iter().collect()
    }

    /// `name` with `text`'s lines signed by `key`.
    fn file_signed_by(&self, key: &VendorKey, name: &str, text: &str) -> PathBuf {
        let signed = sign_license_text(name, text, key).unwrap();
        let path = self.dir.path().join(name);
        fs::write(&path, signed).unwrap();
        path
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        self.file_signed_by(&self.key, name, text)
    }
}

/// A node-locked line of FEATURE; `extra` is the rest of its fields.
fn line(hostid: &str, extra: &str) -> String {
    format!(
        "# node-locked\nFEATURE {FEATURE} vendor=acme version=2.0 count=uncounted \
         hostid=\"{hostid}\" {extra}\n"
    )
}

fn this_machine() -> Vec<String> {
    let ids = local_host_ids();
    assert!(!ids.is_empty(), "this machine has no host id to test with");
    ids
}

fn run(
    files: &[PathBuf],
    version: Option<&str>,
    keys: &TrustedKeys,
) -> Result<NodeLockedGrant, Vec<String>> {
    check(files, FEATURE, version, keys, &this_machine(), SystemTime::now())
}

/// The one refusal, checked to name the file, the line (2: after the comment) and the feature.
fn only_refusal(result: Result<NodeLockedGrant, Vec<String>>, file: &Path) -> String {
    let refusals = result.expect_err("refused");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let refusal = refusals[0].clone();
    let at = format!("{}:2: feature `{FEATURE}`: ", file.display());
    assert!(refusal.starts_with(&at), "{refusal}");
    refusal
}

#[test]
fn a_line_bound_to_this_machine_is_granted_with_no_server() {
    let vendor = Vendor::new();
    for (i, id) in this_machine().iter().enumerate() {
        let file = vendor.file(
            &format!("mine{i}.lic"),
            &line(&format!("HOSTNAME=elsewhere {id}"), "expires=2999-12-31"),
        );
        let grant = run(std::slice::from_ref(&file), Some("1.5"), &vendor.trusted())
            .unwrap_or_else(|refusals| panic!("bound to {id}: {refusals:?}"));
        assert_eq!(
            grant,
            NodeLockedGrant {
                feature: FEATURE.into(),
                version: "2.0".into(),
                file: file.clone(),
                line: 2,
                expires: "2999-12-31".into(),
            }
        );
    }
}

#[test]
fn a_line_for_another_host_is_refused_naming_its_ids_and_this_machines() {
    let vendor = Vendor::new();
    let file = vendor.file(
        "other.lic",
        &line("HOSTNAME=not-this-machine 0a:0b:0c:0d:0e:0f", "expires=permanent"),
    );
    let refusal = only_refusal(run(std::slice::from_ref(&file), None, &vendor.trusted()), &file);
    assert!(
        refusal.contains("field `hostid`: locked to 0a:0b:0c:0d:0e:0f,HOSTNAME=not-this-machine"),
        "{refusal}"
    );
    assert!(
        refusal.contains(&format!("this machine is {}", this_machine().join(", "))),
        "{refusal}"
    );
}

#[test]
fn a_tampered_line_is_refused_for_its_signature() {
    let vendor = Vendor::new();
    let id = &this_machine()[0];
    let file = vendor.file("tampered.lic", &line(id, "expires=2020-01-31"));
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text.replace("expires=2020-01-31", "expires=2999-12-31")).unwrap();
    let refusal = only_refusal(run(std::slice::from_ref(&file), None, &vendor.trusted()), &file);
    assert!(refusal.contains("field `sig`: signature does not verify"), "{refusal}");
    assert!(refusal.contains(&vendor.key.public_key().fingerprint()), "{refusal}");
}

#[test]
fn an_expired_line_is_refused_with_its_date() {
    let vendor = Vendor::new();
    let file = vendor.file("old.lic", &line(&this_machine()[0], "expires=2020-01-31"));
    let refusal = only_refusal(run(std::slice::from_ref(&file), None, &vendor.trusted()), &file);
    assert!(refusal.contains("field `expires`: expired on 2020-01-31"), "{refusal}");
}

#[test]
fn a_line_signed_by_an_untrusted_key_is_refused() {
    let vendor = Vendor::new();
    let stranger = VendorKey::generate().unwrap();
    let file = vendor.file_signed_by(
        &stranger,
        "stranger.lic",
        &line(&this_machine()[0], "expires=permanent"),
    );
    let refusal = only_refusal(run(std::slice::from_ref(&file), None, &vendor.trusted()), &file);
    assert!(
        refusal.contains("field `sig`: signature does not verify with the vendor key"),
        "{refusal}"
    );
    let refusal = only_refusal(run(std::slice::from_ref(&file), None, &TrustedKeys::new()), &file);
    assert!(refusal.contains("no vendor public key is trusted"), "{refusal}");
}

#[test]
fn a_version_too_low_or_a_start_to_come_is_refused() {
    let vendor = Vendor::new();
    let id = &this_machine()[0];
    let file = vendor.file("low.lic", &line(id, "expires=permanent"));
    let refusal =
        only_refusal(run(std::slice::from_ref(&file), Some("3.0"), &vendor.trusted()), &file);
    assert!(
        refusal.contains("field `version`: version 2.0 is lower than the 3.0 asked for"),
        "{refusal}"
    );
    let file = vendor.file("future.lic", &line(id, "start=2999-01-01 expires=permanent"));
    let refusal = only_refusal(run(std::slice::from_ref(&file), None, &vendor.trusted()), &file);
    assert!(refusal.contains("field `start`: starts on 2999-01-01"), "{refusal}");
    let started = Date::new(2999, 1, 1).unwrap().start_of_day();
    let then = SystemTime::UNIX_EPOCH + Duration::from_millis(started.0);
    let grant = check(&[file], FEATURE, None, &vendor.trusted(), &this_machine(), then);
    assert!(grant.is_ok(), "granted once the local clock reaches the start: {grant:?}");
}

#[test]
fn every_refusal_is_listed_until_a_line_grants() {
    let vendor = Vendor::new();
    let id = &this_machine()[0];
    let missing = vendor.dir.path().join("missing.lic");
    let other = vendor.file("a.lic", &line("HOSTNAME=not-this-machine", "expires=permanent"));
    let counted = vendor.file(
        "b.lic",
        &format!("FEATURE {FEATURE} vendor=acme version=2.0 count=5 expires=permanent\n"),
    );
    let refusals = run(&[missing.clone(), other.clone(), counted.clone()], None, &vendor.trusted())
        .unwrap_err();
    assert_eq!(refusals.len(), 2, "a counted line is a server's, not a refusal: {refusals:?}");
    assert!(
        refusals[0].contains(&missing.display().to_string()) && refusals[0].contains(FEATURE),
        "{refusals:?}"
    );
    assert!(refusals[1].starts_with(&format!("{}:2: feature `{FEATURE}`", other.display())));
    let mine = vendor.file("c.lic", &line(id, "expires=permanent"));
    let grant = run(&[missing, other, counted, mine.clone()], None, &vendor.trusted()).unwrap();
    assert_eq!(grant.file, mine);
    let nothing = check(
        &[mine],
        "another-feature",
        None,
        &vendor.trusted(),
        &this_machine(),
        SystemTime::now(),
    );
    assert_eq!(nothing, Err(vec![]), "no node-locked line of the feature: nothing refused");
}

#[test]
fn a_directory_entry_gives_its_license_files() {
    let vendor = Vendor::new();
    let b = vendor.file("b.lic", &line(&this_machine()[0], "expires=permanent"));
    let a = vendor.file("a.lic", &line("HOSTNAME=not-this-machine", "expires=permanent"));
    fs::write(vendor.dir.path().join("readme.txt"), "not a license").unwrap();
    let files = license_files_in(vendor.dir.path());
    assert_eq!(files, [a, b.clone()]);
    assert_eq!(run(&files, None, &vendor.trusted()).unwrap().file, b);
}
