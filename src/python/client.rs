//! `quorumlm.Client`: the search path (or servers) to use, and the one session the process
//! holds along it, opened at the first checkout.
//!
//! A lost session is not reused: the checkout that finds it lost raises `SessionLost` (the
//! program learns that its seats may be gone), the client drops it, and the checkout after
//! that opens a fresh session. Until then `client.lost` stays true.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};
use qlm_client::blocking::{self, LostReason};
use qlm_client::{ClientError, SessionOptions};

use crate::errors::{Failure, guarded, invalid, to_py};
use crate::seat::Seat;
use crate::validate;

/// The client's session, as far as it got.
enum Slot {
    NotOpened,
    Open {
        session: Arc<blocking::Session>,
        lost: Arc<Lost>,
    },
    /// The last session was lost and a checkout has said so (`SessionLost`); the next
    /// checkout opens a new one. Holds the reason the program reads in `client.lost_reason`.
    Dropped(&'static str),
    Closed,
}

/// The Python callbacks of `client.on_lost`, kept across sessions.
type Callbacks = Arc<Mutex<Vec<Py<PyAny>>>>;

/// What one session's watch tells the Python side when that session is lost.
struct Lost {
    reason: Mutex<Option<&'static str>>,
    callbacks: Callbacks,
}

/// The reason as Python sees it.
fn reason_code(reason: &LostReason) -> &'static str {
    match reason {
        LostReason::Expired => "expired",
        LostReason::Unreachable { .. } => "unreachable",
    }
}

impl Lost {
    /// Called once, from the library's thread: records the loss and calls every callback
    /// with the interpreter attached. A callback's exception is reported as unraisable (it
    /// has no caller to go to); at interpreter shutdown nothing is called.
    fn happened(&self, reason: &LostReason) {
        let code = reason_code(reason);
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(code);
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
                    if let Err(error) = callback.call1(py, (code,)) {
                        error.write_unraisable(py, Some(callback.bind(py)));
                    }
                }
            });
            Ok(())
        });
    }
}

/// A client of a license search path (or a cluster) and the process's session along it.
#[pyclass(module = "quorumlm._native", name = "Client", frozen)]
pub struct Client {
    inner: blocking::Client,
    ttl: Option<Duration>,
    session: Mutex<Slot>,
    callbacks: Callbacks,
}

/// How a [`Client`] is made: `ttl` and `failover_budget` as Python gave them.
struct Settings {
    ttl: Option<f64>,
    failover_budget: Option<f64>,
}

impl Client {
    fn made(
        py: Python<'_>,
        make: impl FnOnce() -> Result<blocking::Client, ClientError> + Send,
        settings: Settings,
    ) -> PyResult<Client> {
        let positive = |what: &str, value: Option<f64>| {
            value
                .map(|value| validate::seconds(what, value, true))
                .transpose()
                .map_err(|message| invalid(py, message))
        };
        let ttl = positive("ttl", settings.ttl)?;
        let budget = positive("failover_budget", settings.failover_budget)?;
        let mut inner = py
            .detach(|| guarded(|| make().map_err(Failure::from)))
            .map_err(|failure| to_py(py, failure))?;
        if let Some(budget) = budget {
            inner = inner.with_failover_budget(budget);
        }
        Ok(Client { inner, ttl, session: Mutex::new(Slot::NotOpened), callbacks: Arc::default() })
    }

    /// The session, opened now if there is none (the first checkout, or the one after a lost
    /// session was dropped). Runs without the interpreter.
    fn session(&self) -> Result<Arc<blocking::Session>, Failure> {
        let mut slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Slot::Open { session, .. } => Ok(session.clone()),
            Slot::Closed => Err(Failure::Usage("the client is closed".into())),
            Slot::NotOpened | Slot::Dropped(_) => {
                let mut options = SessionOptions::from_process();
                options.ttl = self.ttl;
                let session = Arc::new(self.inner.open_session(options)?);
                let lost =
                    Arc::new(Lost { reason: Mutex::new(None), callbacks: self.callbacks.clone() });
                let told = lost.clone();
                session.on_lost(Box::new(move |reason| told.happened(reason)));
                *slot = Slot::Open { session: session.clone(), lost };
                Ok(session)
            }
        }
    }

    /// A checkout in the session; a lost session is dropped (after it said so, once).
    fn checkout_seat(
        &self,
        feature: &str,
        request: &blocking::CheckoutRequest,
    ) -> Result<blocking::Seat, Failure> {
        let session = self.session()?;
        match session.checkout(feature, request) {
            Err(ClientError::SessionLost(message)) => {
                let code = session.lost_reason().as_ref().map_or("expired", reason_code);
                self.drop_lost(&session, code);
                Err(Failure::SessionLost { message, reason: code })
            }
            answer => Ok(answer?),
        }
    }

    /// Takes the lost `session` out of the slot (unless another thread already did) and
    /// drops it outside the lock: dropping closes it, which may wait on the network.
    fn drop_lost(&self, session: &Arc<blocking::Session>, code: &'static str) {
        let taken = {
            let mut slot = self.session.lock().unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                Slot::Open { session: open, .. } if Arc::ptr_eq(open, session) => {
                    Some(std::mem::replace(&mut *slot, Slot::Dropped(code)))
                }
                _ => None,
            }
        };
        drop(taken);
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
    /// `Client(servers=[...])` (one cluster), `Client(search_path="...")` (a search path
    /// read as `QLM_LICENSE` is: license files, directories and clusters), or with neither,
    /// from the environment as [`Client::from_env`] without a vendor variable.
    #[new]
    #[pyo3(signature = (servers=None, *, search_path=None, ttl=None, failover_budget=None))]
    fn new(
        py: Python<'_>,
        servers: Option<&Bound<'_, PyAny>>,
        search_path: Option<String>,
        ttl: Option<f64>,
        failover_budget: Option<f64>,
    ) -> PyResult<Client> {
        let settings = Settings { ttl, failover_budget };
        match (servers, search_path) {
            (Some(_), Some(_)) => Err(invalid(py, "give servers or search_path, not both".into())),
            (Some(servers), None) => {
                let list = server_list(py, servers)?;
                Client::made(py, move || blocking::Client::from_servers(&list), settings)
            }
            (None, Some(path)) => {
                validate::text("search_path", &path, validate::MAX_SEARCH_PATH_BYTES)
                    .map_err(|message| invalid(py, message))?;
                let make = move || {
                    let client = blocking::Client::from_search_path(&path)?;
                    // An empty path would only fail at the first checkout.
                    if client.search_path().entries.is_empty() {
                        return Err(ClientError::NoServers("the search path has no entry".into()));
                    }
                    Ok(client)
                };
                Client::made(py, make, settings)
            }
            (None, None) => Client::made(py, || blocking::Client::from_env(None), settings),
        }
    }

    /// From the environment: `vendor_var` (a vendor's own variable, such as
    /// `"VHDLTOOL_LICENSE"`) if set, then `QLM_LICENSE`, then `QLM_SERVERS`.
    #[classmethod]
    #[pyo3(signature = (vendor_var=None, *, ttl=None, failover_budget=None))]
    fn from_env(
        _class: &Bound<'_, PyType>,
        py: Python<'_>,
        vendor_var: Option<String>,
        ttl: Option<f64>,
        failover_budget: Option<f64>,
    ) -> PyResult<Client> {
        let settings = Settings { ttl, failover_budget };
        if let Some(name) = &vendor_var {
            validate::text("vendor_var", name, 256).map_err(|message| invalid(py, message))?;
        }
        Client::made(py, move || blocking::Client::from_env(vendor_var.as_deref()), settings)
    }

    /// Trusts a vendor's public key (`"ed25519-public:..."` or a key file's text) for
    /// node-locked license files. Sessions opened from now on trust it: call it before the
    /// first checkout.
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
            .detach(|| guarded(|| self.checkout_seat(feature, &request)))
            .map_err(|failure| to_py(py, failure))?;
        Ok(Seat::new(seat))
    }

    /// True once the session was lost (the cluster expired it, an admin ended it, or no
    /// server answered for longer than its TTL): the seats it held may be gone. Stays true
    /// until a checkout after the one that raised `SessionLost` opens a new session.
    #[getter]
    fn lost(&self) -> bool {
        self.lost_reason().is_some()
    }

    /// Why the session was lost (`"expired"` or `"unreachable"`), or `None`.
    #[getter]
    fn lost_reason(&self) -> Option<&'static str> {
        match &*self.session.lock().unwrap_or_else(PoisonError::into_inner) {
            Slot::Open { session, lost } => {
                let told = *lost.reason.lock().unwrap_or_else(PoisonError::into_inner);
                told.or_else(|| session.lost_reason().as_ref().map(reason_code))
            }
            Slot::Dropped(code) => Some(code),
            Slot::NotOpened | Slot::Closed => None,
        }
    }

    /// Where the session stands: a dict of `session_id` (empty until a cluster granted),
    /// `servers` (that cluster), `leader`, `heartbeats` and `lost`; `None` before the first
    /// checkout opened a session (and after a lost one was dropped, or `close`).
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let session = match &*self.session.lock().unwrap_or_else(PoisonError::into_inner) {
            Slot::Open { session, .. } => session.clone(),
            _ => return Ok(None),
        };
        let status =
            py.detach(|| guarded(|| Ok(session.status()))).map_err(|failure| to_py(py, failure))?;
        let dict = PyDict::new(py);
        dict.set_item("session_id", status.session_id)?;
        dict.set_item("servers", status.servers)?;
        dict.set_item("leader", status.leader)?;
        dict.set_item("heartbeats", status.heartbeats)?;
        dict.set_item("lost", status.lost)?;
        Ok(Some(dict))
    }

    /// Calls `callback(reason)` from the library's thread when a session is lost (once per
    /// session: again if a new session opened after a loss is lost too).
    fn on_lost(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        if !callback.bind(py).is_callable() {
            return Err(invalid(py, "on_lost takes a callable".into()));
        }
        self.callbacks.lock().unwrap_or_else(PoisonError::into_inner).push(callback);
        Ok(())
    }

    /// Closes the session (its seats are released) and the client. A second call does
    /// nothing; a checkout after it raises `quorumlm.Error`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = std::mem::replace(
            &mut *self.session.lock().unwrap_or_else(PoisonError::into_inner),
            Slot::Closed,
        );
        let Slot::Open { session, .. } = taken else { return Ok(()) };
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
