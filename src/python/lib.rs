//! `quorumlm`, the QuorumLM client for Python: a PyO3 extension module over
//! `qlm_client::blocking`, built as one abi3 wheel for every CPython from 3.8 on.
//!
//! The Python package (`src/python/quorumlm/`) is a thin layer: its `__init__.py` re-exports
//! `Client` and `Seat` from this module (`quorumlm._native`) and the
//! exception classes from `quorumlm/_errors.py`. The exceptions live in Python so that they
//! have ordinary constructors and can be raised and caught by tests without a server; this
//! module looks them up by name when it raises one (see `errors.rs`).
//!
//! Rules every entry point keeps:
//!
//! - every call that may wait on the network runs with the interpreter released
//!   (`Python::detach`), so other Python threads go on while a checkout waits in a queue;
//! - a panic in the library is caught and raised as `quorumlm.Error`, never as PyO3's
//!   `PanicException`;
//! - arguments are checked here before anything is sent, and a bad one is
//!   `quorumlm.InvalidArgument` (also a `ValueError`) naming the argument.

mod client;
mod errors;
mod seat;
mod validate;

use pyo3::prelude::*;

/// The extension module, `quorumlm._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn quorumlm(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<client::Client>()?;
    module.add_class::<seat::Seat>()?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
