//! `quorumlm.Seat`: a granted checkout, a context manager that checks in on exit.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::errors::{Failure, guarded, to_py};
use qlm_client::blocking;

/// A granted checkout. `with client.checkout(...) as seat:` checks it in when the block ends;
/// outside a `with`, call [`Seat::checkin`]. What the grant said stays readable after the
/// checkin.
#[pyclass(module = "quorumlm._native", name = "Seat", frozen)]
pub struct Seat {
    /// `None` once checked in.
    held: Mutex<Option<blocking::Seat>>,
    handle: u64,
    feature: String,
    version: String,
    count: u32,
    node_locked: bool,
    source: String,
}

impl Seat {
    pub(crate) fn new(seat: blocking::Seat) -> Seat {
        Seat {
            handle: seat.handle(),
            feature: seat.feature().to_owned(),
            version: seat.version().to_owned(),
            count: seat.count(),
            node_locked: seat.is_node_locked(),
            source: seat.source().to_owned(),
            held: Mutex::new(Some(seat)),
        }
    }

    fn take(&self) -> Option<blocking::Seat> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[pymethods]
impl Seat {
    /// The checkout's handle (0 for a node-locked grant).
    #[getter]
    fn handle(&self) -> u64 {
        self.handle
    }

    #[getter]
    fn feature(&self) -> &str {
        &self.feature
    }

    /// The version the license line grants (which may be higher than the one asked).
    #[getter]
    fn version(&self) -> &str {
        &self.version
    }

    #[getter]
    fn count(&self) -> u32 {
        self.count
    }

    /// True when a node-locked license file granted it (no server involved).
    #[getter]
    fn node_locked(&self) -> bool {
        self.node_locked
    }

    /// Where the grant came from: `"cluster host:port,..."` or the node-locked file and line.
    #[getter]
    fn source(&self) -> &str {
        &self.source
    }

    /// True once checked in.
    #[getter]
    fn checked_in(&self) -> bool {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).is_none()
    }

    /// Gives the seats back. A second call does nothing.
    fn checkin(&self, py: Python<'_>) -> PyResult<()> {
        let Some(seat) = self.take() else { return Ok(()) };
        py.detach(|| guarded(|| seat.checkin().map_err(Failure::from)))
            .map_err(|failure| to_py(py, failure))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Checks in. When the block ended with an exception, a failed checkin is not raised over
    /// it (the cluster frees the seat with the session anyway); otherwise it is.
    #[pyo3(signature = (kind=None, _value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        kind: Option<&Bound<'_, PyType>>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match self.checkin(py) {
            Err(error) if kind.is_none() => Err(error),
            _ => Ok(false),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Seat(feature={:?}, version={:?}, count={}, handle={}, source={:?}{})",
            self.feature,
            self.version,
            self.count,
            self.handle,
            self.source,
            if self.checked_in() { ", checked in" } else { "" }
        )
    }
}
