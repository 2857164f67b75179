//! The wrapper around every entry point's body: no panic crosses into C, and a failure is
//! recorded for `qlm_last_error` before its status is returned.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::last_error;
use crate::status::{Failure, qlm_status};

/// Runs `body` for the entry point `function`: `QLM_OK` when it succeeds; otherwise its
/// failure is recorded and its status returned. A panic becomes `QLM_ERR_INTERNAL`.
pub fn call(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    // Unwind safety: a body that panics leaves the registries consistent (every lock is
    // taken for one map operation), and nothing else is shared.
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(Failure::new(
            qlm_status::QLM_ERR_INTERNAL,
            format!("internal error in {function} (please report it): {what}"),
        ))
    });
    match outcome {
        Ok(()) => qlm_status::QLM_OK.code(),
        Err(failure) => {
            // Recording may itself not unwind into C.
            let status = failure.status;
            let _ = catch_unwind(AssertUnwindSafe(|| last_error::record(&failure)));
            status.code()
        }
    }
}
