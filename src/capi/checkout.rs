//! `qlm_checkout*` and `qlm_checkin`: asking for seats, reading a grant, giving it back.

use std::ffi::{c_char, c_int};

use ::qlm_client::blocking::{CheckoutRequest, Seat};

use crate::args::{self, QLM_MAX_FEATURE, QLM_MAX_VERSION};
use crate::guard::call;
use crate::registry::Registry;
use crate::session::{lost_or, qlm_session};
use crate::status::Failure;

/// A granted checkout (from a cluster, or a node-locked license line). Opaque: only this
/// library reads it.
pub struct qlm_checkout {
    _opaque: [u8; 0],
}

/// What `qlm_checkout_info` fills in. Strings are NUL-terminated, cut to fit.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct qlm_checkout_info {
    /// The cluster's handle of the checkout; 0 for a node-locked grant.
    pub handle: u64,
    /// The feature granted.
    pub feature: [c_char; 65],
    /// The version of the license line that granted it.
    pub version: [c_char; 33],
    /// Seats (or tokens) granted.
    pub count: u32,
    /// 1 when a node-locked license line granted it (no server involved), else 0.
    pub node_locked: c_int,
    /// Where it came from: `"cluster a:7400,b:7400"` or `"node-locked /path/x.lic line 3"`.
    pub source: [c_char; 256],
}

pub(crate) static CHECKOUTS: Registry<Seat> = Registry::new();

/// Checks `feature` out through the session's search path: each license file or cluster in
/// turn, until one grants. Retries after a failover carry the same request id, so a seat
/// is never granted twice.
///
/// `feature`: UTF-8, 1..=64 bytes. `version`: NULL for any, else the lowest acceptable
/// version, UTF-8 of at most 32 bytes. `count`: 1..=1000000 seats (or tokens).
/// `wait_ms`: negative to be denied at once when every seat is taken; 0..=2678400000 to wait
/// in the feature's queue up to that long. `borrow_until_unix_s`: 0, or the time (unix
/// seconds, up to 253402300799) until which the seat is borrowed (kept without heartbeats).
/// `out`: where the new handle is written (NULL on failure).
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT`; `QLM_ERR_DENIED`
/// (`qlm_last_denial_reason()` and `qlm_last_denial_holder()` say why and who holds the
/// seats); `QLM_ERR_TIMEOUT` (the wait ran out); `QLM_ERR_NODE_LOCKED_REFUSED`;
/// `QLM_ERR_UNREACHABLE`; `QLM_ERR_SESSION_LOST`; `QLM_ERR_REJECTED`.
///
/// Ownership: the caller owns the checkout and ends it with `qlm_checkin` (or
/// `qlm_checkout_free` to keep the seat).
/// Thread-safety: any thread; blocks the calling thread for the checkout (and the wait).
///
/// # Safety
/// Each pointer is NULL or valid as described above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_checkout(
    session: *mut qlm_session,
    feature: *const c_char,
    version: *const c_char,
    count: u32,
    wait_ms: i64,
    borrow_until_unix_s: i64,
    out: *mut *mut qlm_checkout,
) -> c_int {
    call("qlm_checkout", || {
        args::out_pointer(out, "out")?;
        // SAFETY: checked just above.
        unsafe { *out = std::ptr::null_mut() };
        let feature = unsafe { args::non_empty_text(feature, "feature", QLM_MAX_FEATURE) }?;
        let version = unsafe { args::optional_text(version, "version", QLM_MAX_VERSION) }?;
        let request = CheckoutRequest {
            version: version.map(str::to_owned),
            count: args::count(count)?,
            wait: args::wait(wait_ms)?,
            borrow_until: args::borrow_until(borrow_until_unix_s)?,
        };
        let entry = crate::session::session(session)?;
        let seat = entry
            .session
            .checkout(feature, &request)
            .map_err(|error| lost_or(&entry, Failure::from(error)))?;
        // SAFETY: checked above.
        unsafe { *out = CHECKOUTS.insert(seat).cast() };
        Ok(())
    })
}

/// Fills `*out` with what was granted: handle, feature, version, count, whether a
/// node-locked line granted it, and where from.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_INVALID_ARGUMENT` (`out` NULL).
/// Thread-safety: any thread.
///
/// # Safety
/// `out` is NULL or valid for a write of one `qlm_checkout_info`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_checkout_info(
    checkout: *mut qlm_checkout,
    out: *mut qlm_checkout_info,
) -> c_int {
    call("qlm_checkout_info", || {
        args::out_pointer(out, "out")?;
        let seat = CHECKOUTS.get(checkout).ok_or_else(bad_checkout)?;
        // SAFETY: checked above; every field is written below.
        let out = unsafe { &mut *out };
        out.handle = seat.handle();
        args::copy_into(&mut out.feature, seat.feature());
        args::copy_into(&mut out.version, seat.version());
        out.count = seat.count();
        out.node_locked = c_int::from(seat.is_node_locked());
        args::copy_into(&mut out.source, seat.source());
        Ok(())
    })
}

/// Checks the seats in (a node-locked grant needs nothing) and frees the checkout. A call
/// still running on the checkout from another thread finishes first.
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`; `QLM_ERR_UNREACHABLE` (the checkin could not be
/// sent: the seats come back when the session ends or expires); `QLM_ERR_REJECTED` (the
/// cluster no longer knows the checkout: its session was closed or expired). The checkout
/// is freed in every case but `QLM_ERR_BAD_HANDLE`.
///
/// Ownership: `checkout` is invalid afterwards.
/// Thread-safety: any thread.
///
/// # Safety
/// None beyond C's: any pointer value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_checkin(checkout: *mut qlm_checkout) -> c_int {
    call("qlm_checkin", || {
        let seat = CHECKOUTS.take(checkout).ok_or_else(bad_checkout)?;
        seat.checkin()?;
        Ok(())
    })
}

/// Frees the checkout without checking it in: the seat stays held (a borrow, or until the
/// session is closed or expires).
///
/// Returns `QLM_OK`; `QLM_ERR_BAD_HANDLE`.
///
/// Ownership: `checkout` is invalid afterwards.
/// Thread-safety: any thread.
///
/// # Safety
/// None beyond C's: any pointer value is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qlm_checkout_free(checkout: *mut qlm_checkout) -> c_int {
    call("qlm_checkout_free", || {
        let seat = CHECKOUTS.take(checkout).ok_or_else(bad_checkout)?;
        seat.keep();
        Ok(())
    })
}

fn bad_checkout() -> Failure {
    Failure::bad_handle("checkout", "qlm_checkout")
}
