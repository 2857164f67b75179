//! Node-locked license files through the C ABI, with no server: a search path naming a file
//! whose `count=uncounted` line is signed by a vendor key the program trusts and bound to
//! this machine grants at once; a line bound elsewhere, or signed by a key not trusted, is
//! `QLM_ERR_NODE_LOCKED_REFUSED` with the file and feature named.

use std::ffi::{CStr, CString, c_int};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use qlm_license::{VendorKey, sign_license_text, write_key_pair};
use quorumlm::*;

const OK: c_int = qlm_status::QLM_OK as c_int;
const REFUSED: c_int = qlm_status::QLM_ERR_NODE_LOCKED_REFUSED as c_int;
const FEATURE: &str = "cad-suite";

fn last_error() -> String {
    // SAFETY: the library returns a valid C string.
    unsafe { CStr::from_ptr(qlm_last_error()) }.to_string_lossy().into_owned()
}

fn c(text: &str) -> CString {
    CString::new(text).expect("no NUL")
}

struct Vendor {
    key: VendorKey,
    public_text: String,
    dir: tempfile::TempDir,
}

impl Vendor {
    fn new() -> Vendor {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = VendorKey::generate().expect("randomness");
        let paths = write_key_pair(&dir.path().join("keys"), &key).expect("key files");
        let public_text = std::fs::read_to_string(paths.public).expect("the public key file");
        Vendor { key, public_text, dir }
    }

    /// A license file with one node-locked line of FEATURE bound to `hostid`.
    fn file(&self, name: &str, hostid: &str) -> PathBuf {
        let text = format!(
            "FEATURE {FEATURE} vendor=acme version=2.0 count=uncounted expires=permanent \
             hostid=\"{hostid}\"\n"
        );
        let signed = sign_license_text(name, &text, &self.key).expect("signable");
        let path = self.dir.path().join(name);
        std::fs::write(&path, signed).expect("the license file");
        path
    }
}

/// This machine's first host id, as the client library reads it.
fn this_machine() -> String {
    let ids = ::qlm_client::hostid::local_host_ids();
    ids.into_iter().next().expect("this machine has a host id to test with")
}

/// Checks FEATURE out through a client of `file`, trusting `key` when given.
fn checkout(file: &Path, key: Option<&str>) -> (c_int, Option<qlm_checkout_info>) {
    let path = c(&file.display().to_string());
    let mut client = null_mut();
    assert_eq!(
        unsafe { qlm_client_new(path.as_ptr(), null(), &mut client) },
        OK,
        "{}",
        last_error()
    );
    if let Some(key) = key {
        let key = c(key);
        assert_eq!(
            unsafe { qlm_client_trust_vendor_key(client, key.as_ptr()) },
            OK,
            "{}",
            last_error()
        );
    }
    let mut session = null_mut();
    assert_eq!(unsafe { qlm_session_open(client, 0, &mut session) }, OK, "{}", last_error());
    let feature = c(FEATURE);
    let mut seat = null_mut();
    let status = unsafe { qlm_checkout(session, feature.as_ptr(), null(), 1, -1, 0, &mut seat) };
    let mut info = None;
    if status == OK {
        let mut filled = unsafe { std::mem::zeroed::<qlm_checkout_info>() };
        assert_eq!(unsafe { qlm_checkout_info(seat, &mut filled) }, OK, "{}", last_error());
        info = Some(filled);
        assert_eq!(unsafe { qlm_checkin(seat) }, OK, "{}", last_error());
    }
    let message = last_error();
    assert_eq!(unsafe { qlm_session_close(session) }, OK, "{}", last_error());
    assert_eq!(unsafe { qlm_client_free(client) }, OK, "{}", last_error());
    if status != OK {
        // The close and free succeeded, so the checkout's message is still the last one.
        assert_eq!(message, last_error());
    }
    (status, info)
}

fn text(field: &[std::ffi::c_char]) -> String {
    // SAFETY: the library NUL-terminates every field.
    unsafe { CStr::from_ptr(field.as_ptr()) }.to_string_lossy().into_owned()
}

#[test]
fn a_line_bound_to_this_machine_and_signed_by_a_trusted_key_is_granted() {
    let vendor = Vendor::new();
    let file = vendor.file("mine.lic", &this_machine());
    let (status, info) = checkout(&file, Some(&vendor.public_text));
    assert_eq!(status, OK, "{}", last_error());
    let info = info.expect("the grant's info");
    assert_eq!(info.node_locked, 1);
    assert_eq!(text(&info.feature), FEATURE);
    assert_eq!(text(&info.version), "2.0");
    assert_eq!(info.count, 1);
    let source = text(&info.source);
    assert!(source.starts_with("node-locked ") && source.contains("mine.lic"), "{source}");
}

#[test]
fn a_line_bound_elsewhere_is_refused_naming_file_and_feature() {
    let vendor = Vendor::new();
    let file = vendor.file("theirs.lic", "HOSTNAME=not-this-machine-at-all");
    let (status, _) = checkout(&file, Some(&vendor.public_text));
    assert_eq!(status, REFUSED, "{}", last_error());
    let message = last_error();
    assert!(message.contains("theirs.lic") && message.contains(FEATURE), "{message}");
}

#[test]
fn a_line_signed_by_an_untrusted_key_is_refused() {
    let vendor = Vendor::new();
    let file = vendor.file("mine.lic", &this_machine());
    let (status, _) = checkout(&file, None);
    assert_eq!(status, REFUSED, "{}", last_error());
    let other = Vendor::new();
    let (status, _) = checkout(&file, Some(&other.public_text));
    assert_eq!(status, REFUSED, "{}", last_error());
}
