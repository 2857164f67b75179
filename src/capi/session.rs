//! `qlm_session_*`: opening a session, its lost callback, its status, closing it.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::qlm_client::SessionOptions;
use ::qlm_client::blocking::{LostReason, Session};

use crate::args;
use crate::client::client;
use crate::guard::call;
use crate::last_error::c_text;
use crate::registry::Registry;
use crate::status::{Failure, qlm_status};

/// A session: this process as the license servers see it, heartbeated by the library's
/// thread. Opaque: only this library reads it.
pub struct qlm_session {
    _opaque: [u8; 0],
}

/// Called once when a session is lost: `user_data` as given to `qlm_session_on_lost`,
/// `reason` 1 (expired: the cluster no longer knows the session) or 2 (unreachable: no
/// server answered for longer than the session's TTL), and a message valid during the
/// call only. Called from the library's thread: it must not block for long, and must not
/// call `qlm_session_close` on the same session.
#[allow(non_camel_case_types)]
pub type qlm_lost_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, reason: c_int, message: *const c_char)>;

/// What `qlm_session_status` fills in. Strings are NUL-terminated, cut to fit.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct qlm_session_status {
    /// The session's id on the cluster; `""` until a cluster was used.
    pub session_id: [c_char; 64],
    /// The cluster entry the session is open on (`"a:7400,b:7400"`, cut to fit); `""` when
    /// none yet.
    pub server: [c_char; 128],
    /// The leader as last reported; `""` when unknown.
    pub leader: [c_char; 128],
    /// Heartbeats the cluster has answered.
    pub heartbeats: u64,
    /// 1 when the session is lost, else 0.
    pub lost: c_int,
}

/// A registered session.
pub(crate) struct SessionEntry {
    pub(crate) session: Session,
}

pub(crate) static SESSIONS: Registry<SessionEntry> = Registry::new();

pub(crate) fn session(session: *const qlm_session) -> Result<Arc<SessionEntry>, Failure> {
    SESSIONS.get(session).ok_or_else(|| Failure::bad_handle("session", "qlm_session"))
}

/// Opens a session for this process (user, host, pid, display from the environment).
/// Nothing is sent yet: the session opens on a cluster when a checkout first reaches it, and
/// is heartbeated from then on by the library's thread.
///
/// `client`: a live client. `ttl_ms`: how long the cluster keeps the session without a
/// heartbeat; 0 for the server's default (servers accept 1000..=86400000). `out`: where the
/// new handle is written (NULL on failure).
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT`.
///
/// Ownership: the caller owns the session and ends it with `qlm_session_close`.
/// Thread-safety: any thread; the session may be used from many threads at once.
///
/// # Safety
/// `out` is NULL or valid for a write of one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_session_open(
    client: *mut crate::client::qlm_client,
    ttl_ms: u32,
    out: *mut *mut qlm_session,
) -> c_int {
    call("qlm_session_open", || {
        args::out_pointer(out, "out")?;
        // SAFETY: checked just above.
        unsafe { *out = std::ptr::null_mut() };
        let client = self::client(client)?;
        let mut options = SessionOptions::from_process();
        if ttl_ms > 0 {
            options = options.with_ttl(Duration::from_millis(u64::from(ttl_ms)));
        }
        let session = client.open_session(options)?;
        let entry = SessionEntry { session };
        // SAFETY: checked above.
        unsafe { *out = SESSIONS.insert(entry).cast() };
        Ok(())
    })
}

/// `user_data`, moved to the library's thread: C promised it may be used from there.
struct UserData(*mut c_void);

// SAFETY: the pointer is only handed back to the C callback, whose caller promised (by
// registering it) that it may be called from the library's thread with it.
unsafe impl Send for UserData {}
// SAFETY: as above; the library never dereferences it.
unsafe impl Sync for UserData {}

/// Registers `callback`, called once, from the library's thread, when the session is lost
/// (see `qlm_lost_callback`), with `user_data`. A later call replaces the callback (it is
/// still called at most once in all). On a session already lost it is called at once, from
/// the calling thread.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT` (`callback` NULL).
///
/// Ownership: `user_data` stays the caller's; it must stay valid until the callback ran or
/// the session was closed.
/// Thread-safety: any thread.
///
/// # Safety
/// `callback` is a function that may be called from another thread with `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_session_on_lost(
    session: *mut qlm_session,
    callback: qlm_lost_callback,
    user_data: *mut c_void,
) -> c_int {
    call("qlm_session_on_lost", || {
        let entry = self::session(session)?;
        let Some(callback) = callback else {
            return Err(Failure::invalid("`callback` is NULL"));
        };
        let user_data = UserData(user_data);
        let called = AtomicBool::new(false);
        entry.session.on_lost(Box::new(move |reason: &LostReason| {
            if called.swap(true, Ordering::AcqRel) {
                return;
            }
            let (code, message) = match reason {
                LostReason::Expired => (1, "the cluster no longer knows the session".to_owned()),
                LostReason::Unreachable { silent_for } => {
                    (2, format!("no license server answered for {} ms", silent_for.as_millis()))
                }
            };
            let message = c_text(&message, 512);
            let user_data = &user_data;
            // SAFETY: the C caller registered this function for this use.
            unsafe { callback(user_data.0, code, message.as_ptr()) };
        }));
        Ok(())
    })
}

/// Writes 1 to `*lost_out` when the session is lost (the cluster expired it, or no server
/// answered for longer than its TTL), else 0.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT` (`lost_out` NULL).
/// Thread-safety: any thread.
///
/// # Safety
/// `lost_out` is NULL or valid for a write of one int.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_session_is_lost(
    session: *mut qlm_session,
    lost_out: *mut c_int,
) -> c_int {
    call("qlm_session_is_lost", || {
        args::out_pointer(lost_out, "lost_out")?;
        let lost = self::session(session)?.session.is_lost();
        // SAFETY: checked above.
        unsafe { *lost_out = c_int::from(lost) };
        Ok(())
    })
}

/// Fills `*out` with the session's state: its id, the server in use, the leader, the
/// heartbeats answered, whether it is lost.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT` (`out` NULL).
/// Thread-safety: any thread.
///
/// # Safety
/// `out` is NULL or valid for a write of one `qlm_session_status`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_session_status(
    session: *mut qlm_session,
    out: *mut qlm_session_status,
) -> c_int {
    call("qlm_session_status", || {
        args::out_pointer(out, "out")?;
        let status = self::session(session)?.session.status();
        // SAFETY: checked above; every field is written below.
        let out = unsafe { &mut *out };
        args::copy_into(&mut out.session_id, &status.session_id);
        args::copy_into(&mut out.server, &status.servers);
        args::copy_into(&mut out.leader, &status.leader);
        out.heartbeats = status.heartbeats;
        out.lost = c_int::from(status.lost);
        Ok(())
    })
}

/// Closes the session on every cluster it opened (its checkouts there are released, borrowed
/// ones excepted) and frees it. Calls still running on the session from other threads
/// (a checkout waiting in a queue) finish first. Checkouts of the session stay valid
/// handles: free them with `qlm_checkout_free` (or `qlm_checkin`, which then reports the
/// server's answer).
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_UNREACHABLE` (the close could not be
/// sent: the cluster expires the session after its TTL). The session is freed in every case
/// but `QLM_ERR_BAD_HANDLE`.
///
/// Ownership: `session` is invalid afterwards.
/// Thread-safety: any thread.
///
/// # Safety
/// None beyond C's: any pointer value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_session_close(session: *mut qlm_session) -> c_int {
    call("qlm_session_close", || {
        let entry =
            SESSIONS.take(session).ok_or_else(|| Failure::bad_handle("session", "qlm_session"))?;
        entry.session.close()?;
        Ok(())
    })
}

/// `QLM_ERR_SESSION_LOST` when the session is lost, else the failure as it is.
pub(crate) fn lost_or(entry: &SessionEntry, failure: Failure) -> Failure {
    if entry.session.is_lost() && failure.status != qlm_status::QLM_ERR_DENIED {
        return Failure::new(
            qlm_status::QLM_ERR_SESSION_LOST,
            format!("the session is lost (open a new one): {}", failure.message),
        );
    }
    failure
}
