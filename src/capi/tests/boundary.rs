//! The C entry points driven from Rust with what a careless or hostile C program passes:
//! NULL everywhere, bytes that are not UTF-8, strings past their limits (and without a NUL),
//! counts out of range, handles freed, of another kind or forged, many threads at once, and
//! random inputs. Each must answer its documented status with a message naming the argument,
//! and never crash. No license server is needed: the clients name a port nobody listens on.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::{null, null_mut};

use quorumlm::*;

const OK: c_int = qlm_status::QLM_OK as c_int;
const INVALID: c_int = qlm_status::QLM_ERR_INVALID_ARGUMENT as c_int;
const BAD_HANDLE: c_int = qlm_status::QLM_ERR_BAD_HANDLE as c_int;

fn last_error() -> String {
    // SAFETY: the library returns a valid C string, never NULL.
    unsafe { CStr::from_ptr(qlm_last_error()) }.to_string_lossy().into_owned()
}

fn c(text: &str) -> CString {
    CString::new(text).expect("no NUL")
}

/// A client of a server that is not there (nothing is contacted until a session opens).
fn client() -> *mut qlm_client {
    let mut out = null_mut();
    let servers = c("127.0.0.1:1");
    assert_eq!(
        unsafe { qlm_client_new_servers(servers.as_ptr(), &mut out) },
        OK,
        "{}",
        last_error()
    );
    assert!(!out.is_null());
    out
}

fn free(client: *mut qlm_client) {
    assert_eq!(unsafe { qlm_client_free(client) }, OK, "{}", last_error());
}

/// Asserts `status` is `expected` and the thread's message names `argument`.
#[track_caller]
fn refused(status: c_int, expected: c_int, argument: &str) {
    let message = last_error();
    assert_eq!(status, expected, "{message}");
    assert!(message.contains(&format!("`{argument}`")), "names `{argument}`: {message}");
}

#[test]
fn the_version_is_the_crates() {
    let version = unsafe { CStr::from_ptr(qlm_version()) };
    assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_fresh_thread_has_no_error_and_no_denial() {
    std::thread::spawn(|| {
        assert_eq!(last_error(), "");
        assert_eq!(unsafe { CStr::from_ptr(qlm_last_denial_reason()) }.to_bytes(), b"");
        assert_eq!(qlm_last_denial_holder_count(), 0);
        assert!(qlm_last_denial_holder(0).is_null());
        assert!(qlm_last_denial_holder(usize::MAX).is_null());
    })
    .join()
    .expect("no panic");
}

#[test]
fn null_pointers_are_refused_by_name() {
    let client = client();
    let servers = c("127.0.0.1:1");
    let mut out_client = null_mut();
    let mut out_session = null_mut();
    let mut out_seat = null_mut();
    let (mut lost, feature) = (0, c("vhdl-editor"));
    unsafe {
        refused(qlm_client_new(null(), null(), null_mut()), INVALID, "out");
        refused(qlm_client_new_servers(null(), &mut out_client), INVALID, "servers");
        assert!(out_client.is_null(), "a failed call leaves no handle");
        refused(qlm_client_new_servers(servers.as_ptr(), null_mut()), INVALID, "out");
        refused(qlm_client_trust_vendor_key(client, null()), INVALID, "public_key");
        refused(qlm_client_trust_vendor_key(null_mut(), feature.as_ptr()), BAD_HANDLE, "client");
        refused(qlm_session_open(null_mut(), 0, &mut out_session), BAD_HANDLE, "client");
        refused(qlm_session_open(client, 0, null_mut()), INVALID, "out");
        refused(qlm_session_on_lost(null_mut(), None, null_mut()), BAD_HANDLE, "session");
        refused(qlm_session_is_lost(null_mut(), &mut lost), BAD_HANDLE, "session");
        refused(qlm_session_is_lost(null_mut(), null_mut()), INVALID, "lost_out");
        refused(qlm_session_status(null_mut(), null_mut()), INVALID, "out");
        let mut status = std::mem::zeroed::<qlm_session_status>();
        refused(qlm_session_status(null_mut(), &mut status), BAD_HANDLE, "session");
        refused(qlm_session_close(null_mut()), BAD_HANDLE, "session");
        let checkout =
            |session, feature, out| qlm_checkout(session, feature, null(), 1, -1, 0, out);
        refused(checkout(null_mut(), feature.as_ptr(), &mut out_seat), BAD_HANDLE, "session");
        refused(checkout(null_mut(), null(), &mut out_seat), INVALID, "feature");
        refused(checkout(null_mut(), feature.as_ptr(), null_mut()), INVALID, "out");
        let mut info = std::mem::zeroed::<qlm_checkout_info>();
        refused(qlm_checkout_info(null_mut(), &mut info), BAD_HANDLE, "checkout");
        refused(qlm_checkout_info(null_mut(), null_mut()), INVALID, "out");
        refused(qlm_checkin(null_mut()), BAD_HANDLE, "checkout");
        refused(qlm_checkout_free(null_mut()), BAD_HANDLE, "checkout");
        refused(qlm_client_free(null_mut()), BAD_HANDLE, "client");
    }
    assert!(out_session.is_null() && out_seat.is_null());
    free(client);
}

#[test]
fn bytes_that_are_not_utf8_are_refused_without_being_repeated() {
    let bad = b"127.0.0.1:1\xff\xfe\0";
    let mut out = null_mut();
    let status = unsafe { qlm_client_new_servers(bad.as_ptr().cast(), &mut out) };
    refused(status, INVALID, "servers");
    assert!(last_error().contains("not UTF-8"), "{}", last_error());
    assert!(!last_error().contains("127.0.0.1"), "the input is not echoed: {}", last_error());
    let feature = b"vhdl\xc3\0";
    let status = unsafe {
        qlm_checkout(null_mut(), feature.as_ptr().cast(), null(), 1, -1, 0, &mut null_mut())
    };
    refused(status, INVALID, "feature");
}

#[test]
fn strings_past_their_limits_are_refused_naming_the_limit() {
    let cases: [(&str, usize); 3] = [
        ("feature", QLM_MAX_FEATURE),
        ("version", QLM_MAX_VERSION),
        ("servers", QLM_MAX_SEARCH_PATH),
    ];
    for (argument, limit) in cases {
        let long = c(&"x".repeat(limit + 1));
        let at_limit = c(&"x".repeat(limit));
        let feature = c("f");
        let run = |text: &CString| unsafe {
            match argument {
                "feature" => {
                    qlm_checkout(null_mut(), text.as_ptr(), null(), 1, -1, 0, &mut null_mut())
                }
                "version" => qlm_checkout(
                    null_mut(),
                    feature.as_ptr(),
                    text.as_ptr(),
                    1,
                    -1,
                    0,
                    &mut null_mut(),
                ),
                _ => {
                    let mut out = null_mut();
                    let status = qlm_client_new_servers(text.as_ptr(), &mut out);
                    if status == OK {
                        free(out);
                    }
                    status
                }
            }
        };
        refused(run(&long), INVALID, argument);
        assert!(last_error().contains(&format!("{limit} bytes")), "{}", last_error());
        assert!(!last_error().contains("xxxx"), "not echoed: {}", last_error());
        assert_ne!(run(&at_limit), INVALID, "{argument} at its limit: {}", last_error());
    }
}

#[test]
fn a_string_without_its_nul_is_read_no_further_than_the_limit() {
    // limit + 1 bytes and no NUL: the scan stops at the end of this buffer.
    let unterminated = vec![b'x' as c_char; QLM_MAX_FEATURE + 1];
    let status = unsafe {
        qlm_checkout(null_mut(), unterminated.as_ptr(), null(), 1, -1, 0, &mut null_mut())
    };
    refused(status, INVALID, "feature");
    let key = vec![b'k' as c_char; QLM_MAX_KEY_TEXT + 1];
    let client = client();
    refused(unsafe { qlm_client_trust_vendor_key(client, key.as_ptr()) }, INVALID, "public_key");
    free(client);
}

#[test]
fn counts_waits_and_borrows_out_of_range_are_refused() {
    let feature = c("vhdl-editor");
    let run = |count, wait_ms, borrow| unsafe {
        qlm_checkout(null_mut(), feature.as_ptr(), null(), count, wait_ms, borrow, &mut null_mut())
    };
    refused(run(0, -1, 0), INVALID, "count");
    assert!(last_error().contains("1..=1000000"), "{}", last_error());
    refused(run(QLM_MAX_COUNT + 1, -1, 0), INVALID, "count");
    refused(run(u32::MAX, -1, 0), INVALID, "count");
    refused(run(1, QLM_MAX_WAIT_MS + 1, 0), INVALID, "wait_ms");
    refused(run(1, i64::MAX, 0), INVALID, "wait_ms");
    refused(run(1, -1, -1), INVALID, "borrow_until_unix_s");
    refused(run(1, -1, i64::MAX), INVALID, "borrow_until_unix_s");
    // In range, every argument passes: only the forged session is left to refuse.
    refused(run(QLM_MAX_COUNT, i64::MIN, QLM_MAX_BORROW_UNIX_S), BAD_HANDLE, "session");
    refused(run(1, QLM_MAX_WAIT_MS, 1), BAD_HANDLE, "session");
}

#[test]
fn handles_used_after_free_or_forged_are_bad_handles() {
    let client = client();
    free(client);
    let key = c("ed25519-public:AAAA");
    refused(unsafe { qlm_client_trust_vendor_key(client, key.as_ptr()) }, BAD_HANDLE, "client");
    refused(unsafe { qlm_client_free(client) }, BAD_HANDLE, "client");
    refused(unsafe { qlm_session_open(client, 0, &mut null_mut()) }, BAD_HANDLE, "client");
    for forged in [1usize, 0x1234, 0xdead_beef, usize::MAX, client as usize + 16] {
        let forged_client = forged as *mut qlm_client;
        refused(unsafe { qlm_client_free(forged_client) }, BAD_HANDLE, "client");
        let forged_session = forged as *mut qlm_session;
        refused(unsafe { qlm_session_close(forged_session) }, BAD_HANDLE, "session");
        let mut lost = 0;
        refused(unsafe { qlm_session_is_lost(forged_session, &mut lost) }, BAD_HANDLE, "session");
        refused(unsafe { qlm_checkin(forged as *mut _) }, BAD_HANDLE, "checkout");
    }
    // A live handle of one kind is not a handle of another.
    let other = self::client();
    refused(unsafe { qlm_session_close(other.cast()) }, BAD_HANDLE, "session");
    refused(unsafe { qlm_checkout_free(other.cast()) }, BAD_HANDLE, "checkout");
    free(other);
}

#[test]
fn sixteen_threads_at_once_keep_their_own_errors() {
    let threads: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                for round in 0..50 {
                    let client = client();
                    let feature = c(&"f".repeat(QLM_MAX_FEATURE + 1 + i));
                    let status = unsafe {
                        qlm_checkout(
                            null_mut(),
                            feature.as_ptr(),
                            null(),
                            1,
                            -1,
                            0,
                            &mut null_mut(),
                        )
                    };
                    refused(status, INVALID, "feature");
                    let mut out = null_mut();
                    let count = u32::try_from(i).expect("small");
                    let status = unsafe { qlm_session_open(null_mut(), count, &mut out) };
                    refused(status, BAD_HANDLE, "client");
                    free(client);
                    refused(unsafe { qlm_client_free(client) }, BAD_HANDLE, "client");
                    let _ = round;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
}

#[test]
fn a_denial_free_failure_leaves_no_denial_behind() {
    refused(unsafe { qlm_client_free(null_mut()) }, BAD_HANDLE, "client");
    assert_eq!(unsafe { CStr::from_ptr(qlm_last_denial_reason()) }.to_bytes(), b"");
    assert_eq!(qlm_last_denial_holder_count(), 0);
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// A C string of the bytes up to the first NUL (as C would see them).
    fn c_bytes(bytes: &[u8]) -> Vec<u8> {
        let mut text: Vec<u8> = bytes.iter().copied().take_while(|&b| b != 0).collect();
        text.push(0);
        text
    }

    fn defined(status: c_int) -> bool {
        (0..=10).contains(&status) && status != qlm_status::QLM_ERR_INTERNAL as c_int
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_strings_counts_and_handles_get_a_defined_status(
            servers in proptest::collection::vec(any::<u8>(), 0..200),
            feature in proptest::collection::vec(any::<u8>(), 0..100),
            version in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
            count in any::<u32>(),
            wait_ms in any::<i64>(),
            borrow in any::<i64>(),
            handle in any::<usize>(),
        ) {
            let servers = c_bytes(&servers);
            let mut out = null_mut();
            let status = unsafe { qlm_client_new_servers(servers.as_ptr().cast(), &mut out) };
            prop_assert!(defined(status), "qlm_client_new_servers: {status} {}", last_error());
            prop_assert_eq!(status == OK, !out.is_null());
            if status == OK {
                prop_assert_eq!(unsafe { qlm_client_free(out) }, OK);
            }
            let feature = c_bytes(&feature);
            let version = version.map(|v| c_bytes(&v));
            let version_ptr = version.as_ref().map_or(null(), |v| v.as_ptr().cast());
            let mut seat = null_mut();
            let status = unsafe {
                qlm_checkout(handle as *mut _, feature.as_ptr().cast(), version_ptr, count,
                    wait_ms, borrow, &mut seat)
            };
            prop_assert!(status == INVALID || status == BAD_HANDLE, "{status} {}", last_error());
            prop_assert!(seat.is_null());
            prop_assert_eq!(unsafe { qlm_client_free(handle as *mut _) }, BAD_HANDLE);
            prop_assert_eq!(unsafe { qlm_checkin(handle as *mut _) }, BAD_HANDLE);
        }
    }
}
