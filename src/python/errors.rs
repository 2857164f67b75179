//! From the library's errors (and panics) to the Python exceptions of `quorumlm._errors`.
//!
//! The exception classes are Python code; they are looked up in `quorumlm._errors` each time
//! one is raised (a dictionary lookup: the module is imported with the package), so that a
//! missing module is an `ImportError` and never a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::prelude::*;
use pyo3::types::PyList;
use qlm_client::ClientError;

/// What a call that ran without the interpreter failed with: a library error, or a panic
/// caught before it could unwind into Python.
pub(crate) enum Failure {
    Client(ClientError),
    Panic(String),
    /// A failure of this module's own (a closed client): raised as `quorumlm.Error`.
    Usage(String),
    /// The client's session was lost (and has been dropped); `reason` is `"expired"` or
    /// `"unreachable"`.
    SessionLost {
        message: String,
        reason: &'static str,
    },
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        Failure::Client(error)
    }
}

/// Runs `work` and turns a panic into [`Failure::Panic`].
pub(crate) fn guarded<T>(work: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(Failure::Panic(text))
        }
    }
}

/// An instance of `quorumlm._errors.<class>` made with `args`, as a `PyErr`.
pub(crate) fn raise<'py>(
    py: Python<'py>,
    class: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyErr {
    let made = py
        .import("quorumlm._errors")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1(args));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(error) => error,
    }
}

/// `quorumlm.InvalidArgument(message)`.
pub(crate) fn invalid(py: Python<'_>, message: String) -> PyErr {
    raise(py, "InvalidArgument", (message,))
}

/// The Python exception for a failure.
pub(crate) fn to_py(py: Python<'_>, failure: Failure) -> PyErr {
    match failure {
        Failure::Client(error) => client_error(py, error),
        Failure::Panic(text) => {
            raise(py, "Error", (format!("internal error in quorumlm: {text}"),))
        }
        Failure::Usage(text) => raise(py, "Error", (text,)),
        Failure::SessionLost { message, reason } => {
            let text = ClientError::SessionLost(message).to_string();
            raise(py, "SessionLost", (text, reason))
        }
    }
}

fn client_error(py: Python<'_>, error: ClientError) -> PyErr {
    let text = error.to_string();
    match error {
        ClientError::Denied { reason, message, holders } => {
            let reason = reason.as_str_name().trim_start_matches("DENIAL_REASON_").to_owned();
            // Holder(user, host, count, display, since_unix_ms, handle), as _errors.py has it.
            let made: PyResult<Vec<Bound<'_, PyAny>>> = py
                .import("quorumlm._errors")
                .and_then(|module| module.getattr("Holder"))
                .and_then(|class| {
                    holders
                        .iter()
                        .map(|h| {
                            let since = h.since_unix_ms;
                            class.call1((&h.user, &h.host, h.count, &h.display, since, h.handle))
                        })
                        .collect()
                });
            match made.and_then(|holders| PyList::new(py, holders)) {
                Ok(holders) => raise(py, "Denied", (reason, message, holders)),
                Err(error) => error,
            }
        }
        ClientError::Unreachable { tried, .. } => raise(py, "Unreachable", (text, tried)),
        ClientError::InvalidArgument(message) => raise(py, "InvalidArgument", (message,)),
        ClientError::NoServers(_) => raise(py, "NoServers", (text,)),
        ClientError::WaitTimedOut(_) => raise(py, "WaitTimeout", (text,)),
        ClientError::NodeLocked(_) => raise(py, "NodeLockedRefused", (text,)),
        // A checkout's comes as `Failure::SessionLost`, with its reason; any other has none.
        ClientError::SessionLost(_) => raise(py, "SessionLost", (text, py.None())),
        _ => raise(py, "Error", (text,)),
    }
}
