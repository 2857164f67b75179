//! A synchronous client for programs that are not async Rust: the C library, the Python
//! package, and through the C library Java, .NET and Go.
//!
//! [`Client`] owns a tokio runtime with one worker thread: the thread the library owns, on
//! which heartbeats, the watch for a lost session and background checkins run. Every method
//! blocks the calling thread until its answer; any number of threads may call at once. Do not
//! call it from inside an async runtime: there, use [`crate::Licenser`].
//!
//! A checkout walks the search path as [`crate::Licenser`] does (node-locked lines, then
//! clusters, in the path's order).
//!
//! - `session`: [`Session`], and the watch that calls the application back when a session
//!   is lost ([`LostReason`])
//! - `seat`: [`Seat`], a grant from a cluster or a node-locked line

mod seat;
mod session;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use qlm_license::TrustedKeys;
use tokio::runtime::Runtime;

use crate::SessionOptions;
use crate::error::ClientError;
use crate::search_path::{Entry, SearchPath, parse_search_path};

pub use crate::licenser::{CheckoutRequest, LostReason, MAX_KEY_TEXT_BYTES, SessionStatus};
pub use seat::Seat;
pub use session::Session;

/// A client of a license search path. `Send + Sync`; share it between threads.
pub struct Client {
    runtime: Arc<Runtime>,
    path: SearchPath,
    failover_budget: Option<Duration>,
    /// Vendor keys every session trusts for node-locked lines.
    keys: Mutex<TrustedKeys>,
}

impl Client {
    /// The search path of the environment: `vendor_var` first when the application names
    /// one (`SIGASI_LICENSE`), then `QLM_LICENSE`, then `QLM_SERVERS`.
    pub fn from_env(vendor_var: Option<&str>) -> Result<Client, ClientError> {
        Client::new(SearchPath::from_env(vendor_var)?)
    }

    /// A search path given as text, read as `QLM_LICENSE` is.
    pub fn from_search_path(text: &str) -> Result<Client, ClientError> {
        Client::new(parse_search_path("search path", text)?)
    }

    /// One cluster: `host1:7400,host2:7400` (or FlexLM's `7400@host1,...`).
    pub fn from_servers(list: &str) -> Result<Client, ClientError> {
        let servers =
            crate::parse_servers(list).map_err(|e| ClientError::NoServers(e.to_string()))?;
        let wants_tls = crate::list_wants_tls(list);
        Client::new(SearchPath { entries: vec![Entry::Cluster(servers)], wants_tls })
    }

    /// A client of `path`; starts the library's thread. TLS settings are read from the
    /// environment when a session is opened.
    pub fn new(path: SearchPath) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("quorumlm")
            .enable_all()
            .build()
            .map_err(|e| {
                ClientError::Protocol(format!("cannot start the library's thread: {e}"))
            })?;
        Ok(Client {
            runtime: Arc::new(runtime),
            path,
            failover_budget: None,
            keys: Mutex::new(TrustedKeys::new()),
        })
    }

    /// Sessions opened from now on retry a cluster for `budget` before the next entry (see
    /// [`crate::Client::with_failover_budget`]).
    pub fn with_failover_budget(mut self, budget: Duration) -> Client {
        self.failover_budget = Some(budget);
        self
    }

    /// Trusts a vendor's public key for node-locked lines, in the sessions opened from now
    /// on: the text of the vendor's key file (`ed25519-public:...`) or the bare base64 key.
    pub fn trust_vendor_key(&self, text: &str) -> Result<(), ClientError> {
        let key = crate::licenser::vendor_key_from_text(text)?;
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
        Ok(())
    }

    /// The search path this client walks.
    pub fn search_path(&self) -> &SearchPath {
        &self.path
    }

    /// Opens a session: who this process is and its TTL. Nothing is sent yet: the session
    /// opens on a cluster when a checkout first reaches it.
    pub fn open_session(&self, options: SessionOptions) -> Result<Session, ClientError> {
        let mut licenser = crate::Licenser::new(self.path.clone(), options)?;
        if let Some(budget) = self.failover_budget {
            licenser = licenser.with_failover_budget(budget);
        }
        licenser.trust_vendor_keys(&self.keys.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Session::new(self.runtime.clone(), licenser))
    }
}

#[cfg(test)]
mod tests;
