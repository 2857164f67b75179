//! `quorumlm.Client`: the servers (or search path) to use, and the one session the process
//! holds on them, opened at the first checkout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};
use qlm_client::SessionOptions;

use crate::blocking_shim as blocking;
use crate::errors::{Failure, guarded, invalid, to_py};
use crate::seat::Seat;
use crate::validate;

/// The client's session, as far as it got.
enum Slot {
    NotOpened,
    Open(Arc<blocking::Session>),
    Closed,
}

/// What the library's thread tells the Python side when the session is lost.
#[derive(Default)]
struct Lost {
    lost: AtomicBool,
    reason: Mutex<Option<String>>,
    callbacks: Mutex<Vec<Py<PyAny>>>,
}

impl Lost {
    /// Called once, from the library's thread: records the loss and calls every callback
    /// with the interpreter attached. A callback's exception is reported as unraisable (it
    /// has no caller to go to); at interpreter shutdown nothing is called.
    fn happened(&self, reason: &blocking::LostReason) {
        let text = match reason {
            blocking::LostReason::Expired => "expired",
            blocking::LostReason::Unreachable { .. } => "unreachable",
        };
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.into());
        self.lost.store(true, Ordering::SeqCst);
        let _ = guarded(|| {
            Python::try_attach(|py| {
                let callbacks: Vec<Py<PyAny>> = self
                    .callbacks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|callback| callback.clone_ref(py))
                    .collect();
                for callback in callbacks {
                    if let Err(error) = callback.call1(py, (text,)) {
                        error.write_unraisable(py, Some(callback.bind(py)));
                    }
                }
            });
            Ok(())
        });
    }
}

/// A connection to a QuorumLM cluster (or a license search path) and the process's session.
#[pyclass(module = "quorumlm._native", name = "Client", frozen)]
pub struct Client {
    inner: blocking::Client,
    ttl: Option<Duration>,
    session: Mutex<Slot>,
    lost: Arc<Lost>,
}

impl Client {
    fn made(
        py: Python<'_>,
        make: impl FnOnce() -> Result<blocking::Client, qlm_client::ClientError> + Send,
        ttl: Option<f64>,
    ) -> PyResult<Client> {
        let ttl = ttl
            .map(|ttl| validate::seconds("ttl", ttl, true))
            .transpose()
            .map_err(|message| invalid(py, message))?;
        let inner = py
            .detach(|| guarded(|| make().map_err(Failure::from)))
            .map_err(|failure| to_py(py, failure))?;
        Ok(Client { inner, ttl, session: Mutex::new(Slot::NotOpened), lost: Arc::default() })
    }

    /// The session, opened now if this is the first call. Runs without the interpreter.
    fn session(&self) -> Result<Arc<blocking::Session>, Failure> {
        let mut slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Slot::Open(session) => Ok(session.clone()),
            Slot::Closed => Err(Failure::Usage("the client is closed".into())),
            Slot::NotOpened => {
                let mut options = SessionOptions::from_process();
                options.ttl = self.ttl;
                let session = Arc::new(self.inner.open_session(options)?);
                let lost = self.lost.clone();
                session.on_lost(Box::new(move |reason| lost.happened(reason)));
                *slot = Slot::Open(session.clone());
                Ok(session)
            }
        }
    }
}

/// The server list as the library takes it: a string as it is, a list joined with commas.
fn server_list(py: Python<'_>, servers: &Bound<'_, PyAny>) -> PyResult<String> {
    let list = if let Ok(text) = servers.cast::<PyString>() {
        text.extract::<String>()?
    } else {
        let entries: Vec<String> = servers.extract().map_err(|_| {
            invalid(py, "servers must be a string or a list of \"host:port\" strings".into())
        })?;
        if let Some(bad) = entries.iter().find(|e| e.trim().is_empty() || e.contains(',')) {
            return Err(invalid(py, format!("servers: {bad:?} is not one \"host:port\"")));
        }
        entries.join(",")
    };
    if list.trim().is_empty() {
        return Err(invalid(py, "servers must name at least one server".into()));
    }
    validate::text("servers", &list, validate::MAX_SEARCH_PATH_BYTES)
        .map_err(|message| invalid(py, message))?;
    Ok(list)
}

#[pymethods]
impl Client {
    /// `Client(servers=[...])`, `Client(search_path="...")`, or with neither, from the
    /// environment as [`Client::from_env`] without a vendor variable.
    #[new]
    #[pyo3(signature = (servers=None, *, search_path=None, ttl=None))]
    fn new(
        py: Python<'_>,
        servers: Option<&Bound<'_, PyAny>>,
        search_path: Option<String>,
        ttl: Option<f64>,
    ) -> PyResult<Client> {
        match (servers, search_path) {
            (Some(_), Some(_)) => Err(invalid(py, "give servers or search_path, not both".into())),
            (Some(servers), None) => {
                let list = server_list(py, servers)?;
                Client::made(py, move || blocking::Client::from_servers(&list), ttl)
            }
            (None, Some(path)) => {
                validate::text("search_path", &path, validate::MAX_SEARCH_PATH_BYTES)
                    .map_err(|message| invalid(py, message))?;
                Client::made(py, move || blocking::Client::from_search_path(&path), ttl)
            }
            (None, None) => Client::made(py, || blocking::Client::from_env(None), ttl),
        }
    }

    /// From the environment: `vendor_var` (a vendor's own variable, such as
    /// `"VHDLTOOL_LICENSE"`) if set, then `QLM_LICENSE`, then `QLM_SERVERS`.
    #[classmethod]
    #[pyo3(signature = (vendor_var=None, *, ttl=None))]
    fn from_env(
        _class: &Bound<'_, PyType>,
        py: Python<'_>,
        vendor_var: Option<String>,
        ttl: Option<f64>,
    ) -> PyResult<Client> {
        if let Some(name) = &vendor_var {
            validate::text("vendor_var", name, 256).map_err(|message| invalid(py, message))?;
        }
        Client::made(py, move || blocking::Client::from_env(vendor_var.as_deref()), ttl)
    }

    /// Trusts a vendor's public key (`"ed25519-public:..."` or a key file's text) for
    /// node-locked license files.
    fn trust_vendor_key(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        validate::text("key", key, validate::MAX_KEY_BYTES)
            .map_err(|message| invalid(py, message))?;
        py.detach(|| guarded(|| self.inner.trust_vendor_key(key).map_err(Failure::from)))
            .map_err(|failure| to_py(py, failure))
    }

    /// Checks `feature` out and returns the [`Seat`]. `wait`: `None` to be denied at once
    /// when every seat is taken, or seconds to wait in the queue (then `WaitTimeout`).
    #[pyo3(signature = (feature, version=None, count=1, *, wait=None, borrow_until=None))]
    fn checkout(
        &self,
        py: Python<'_>,
        feature: &str,
        version: Option<&str>,
        count: i64,
        wait: Option<f64>,
        borrow_until: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Seat> {
        let checked = || -> Result<blocking::CheckoutRequest, String> {
            validate::feature(feature)?;
            Ok(blocking::CheckoutRequest {
                version: validate::version(version)?,
                count: validate::count(count)?,
                wait: wait.map(|w| validate::seconds("wait", w, false)).transpose()?,
                borrow_until: None,
            })
        };
        let mut request = checked().map_err(|message| invalid(py, message))?;
        if let Some(until) = borrow_until {
            request.borrow_until = Some(borrow_instant(py, until)?);
        }
        let seat = py
            .detach(|| {
                guarded(|| self.session()?.checkout(feature, &request).map_err(Failure::from))
            })
            .map_err(|failure| to_py(py, failure))?;
        Ok(Seat::new(seat))
    }

    /// True once the cluster lost the session (it expired, or was ended by an admin): the
    /// seats it held are gone.
    #[getter]
    fn lost(&self) -> bool {
        let slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let polled = matches!(&*slot, Slot::Open(session) if session.is_lost());
        polled || self.lost.lost.load(Ordering::SeqCst)
    }

    /// Why the session was lost (`"expired"` or `"unreachable"`), or `None`.
    #[getter]
    fn lost_reason(&self) -> Option<String> {
        self.lost.reason.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Calls `callback(reason)` once, from the library's thread, when the session is lost.
    fn on_lost(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        if !callback.bind(py).is_callable() {
            return Err(invalid(py, "on_lost takes a callable".into()));
        }
        self.lost.callbacks.lock().unwrap_or_else(PoisonError::into_inner).push(callback);
        Ok(())
    }

    /// Closes the session (its seats are released) and the client. A second call does
    /// nothing; a checkout after it raises `quorumlm.Error`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = std::mem::replace(
            &mut *self.session.lock().unwrap_or_else(PoisonError::into_inner),
            Slot::Closed,
        );
        let Slot::Open(session) = taken else { return Ok(()) };
        py.detach(|| {
            guarded(|| match Arc::try_unwrap(session) {
                Ok(session) => session.close().map_err(Failure::from),
                // A checkout in another thread still holds it: the last one out drops it,
                // which ends the session as well.
                Err(_shared) => Ok(()),
            })
        })
        .map_err(|failure| to_py(py, failure))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (kind=None, _value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        kind: Option<&Bound<'_, PyType>>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        match self.close(py) {
            Err(error) if kind.is_none() => Err(error),
            _ => Ok(false),
        }
    }
}

/// `borrow_until` (a `datetime`; a naive one is local time, as `datetime.timestamp` reads it)
/// as an instant.
fn borrow_instant(py: Python<'_>, until: &Bound<'_, PyAny>) -> PyResult<std::time::SystemTime> {
    let datetime = py.import("datetime")?.getattr("datetime")?;
    if !until.is_instance(&datetime)? {
        return Err(invalid(py, "borrow_until must be a datetime.datetime".into()));
    }
    let seconds: f64 = until.call_method0("timestamp")?.extract()?;
    validate::instant("borrow_until", seconds).map_err(|message| invalid(py, message))
}
