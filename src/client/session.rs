//! [`Session`]: one client process as the cluster sees it, kept alive by a background task.
//!
//! Opening a session sends who the process is (user, host, pid, display) and the TTL it wants;
//! the server answers with the session id and how often to heartbeat. A tokio task owned by
//! the [`Session`] then sends a Heartbeat at that interval (the server may change it in any
//! heartbeat answer; without a hint, a third of the TTL). The task stops when the session is
//! closed or dropped, or when the server says the session is gone (NOT_FOUND: it expired or
//! an admin ended it), which [`Session::is_lost`] then reports.
//!
//! Ending: [`Session::close`] sends CloseSession and waits for the answer; dropping a session
//! sends it best-effort from a spawned task, which a runtime that is shutting down (the end
//! of `main`) may never run. The server's TTL is the backstop: a session that stops
//! heartbeating is expired and its seats come back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::checkout::CheckoutOptions;
use crate::connection::Client;
use crate::error::ClientError;
use qlm_proto::v1;
use qlm_proto::v1::license_service_client::LicenseServiceClient;

/// Shortest heartbeat interval the client accepts from a server, so that a bad hint cannot
/// turn the task into a busy loop.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Who the process is and how long it may go silent, for OpenSession.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// Login name; `$USER` (or `$LOGNAME`) by default.
    pub user: String,
    /// Host name; the kernel's host name by default.
    pub host: String,
    /// Process id; this process's by default.
    pub pid: u32,
    /// X11 display or terminal; `$DISPLAY` by default, empty when unset.
    pub display: String,
    /// Time without heartbeat after which the cluster may expire the session; `None` asks
    /// for the server's default.
    pub ttl: Option<Duration>,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions::from_process()
    }
}

impl SessionOptions {
    /// This process: `$USER`, the host name, the pid, `$DISPLAY`, the server's default TTL.
    pub fn from_process() -> SessionOptions {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        SessionOptions {
            user: env("USER").or_else(|| env("LOGNAME")).unwrap_or_else(|| "unknown".into()),
            host: host_name(),
            pid: std::process::id(),
            display: env("DISPLAY").unwrap_or_default(),
            ttl: None,
        }
    }

    /// The same, with a TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> SessionOptions {
        self.ttl = Some(ttl);
        self
    }
}

fn host_name() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    from_kernel
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// An open session. Its heartbeat task runs until it is closed or dropped.
pub struct Session {
    core: Arc<SessionCore>,
    heartbeat: JoinHandle<()>,
    closed: bool,
}

/// What a session's checkouts and its heartbeat task share.
pub(crate) struct SessionCore {
    pub(crate) client: Client,
    pub(crate) id: String,
    /// What every request of the session presents besides its id; never logged or shown.
    pub(crate) secret: String,
    /// Random per session, so that request ids of two sessions (or two runs) never meet.
    request_prefix: String,
    next_request: AtomicU64,
    ttl: Duration,
    heartbeat_interval: Mutex<Duration>,
    /// Set when the server answered a heartbeat with NOT_FOUND.
    lost: AtomicBool,
    /// Heartbeats answered, for [`Session::heartbeats_sent`].
    heartbeats: AtomicU64,
    /// When the cluster last answered for the session (the open, then each heartbeat).
    last_heard: Mutex<Instant>,
}

impl Client {
    /// Opens a session and starts heartbeating it. Needs a tokio runtime (the heartbeat is
    /// a spawned task). The open is retried on failover under one request id, so a retry
    /// gets the same session.
    pub async fn open_session(&self, options: SessionOptions) -> Result<Session, ClientError> {
        let request_prefix = random_prefix();
        let request = v1::OpenSessionRequest {
            user: options.user,
            host: options.host,
            pid: options.pid,
            display: options.display,
            ttl_ms: options.ttl.map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(0)),
            request_id: format!("{request_prefix}-open"),
        };
        let opened = self
            .call("OpenSession", |channel| {
                let request = self.request(request.clone());
                async move { LicenseServiceClient::new(channel).open_session(request).await }
            })
            .await?;
        if opened.session_id.is_empty() || opened.session_secret.is_empty() {
            return Err(ClientError::Protocol(
                "OpenSession answered no session_id or no session_secret (a server older than \
                 this client?)"
                    .into(),
            ));
        }
        let ttl = Duration::from_millis(opened.ttl_ms);
        let core = Arc::new(SessionCore {
            client: self.clone(),
            id: opened.session_id,
            secret: opened.session_secret,
            request_prefix,
            next_request: AtomicU64::new(1),
            ttl,
            heartbeat_interval: Mutex::new(interval(opened.heartbeat_interval_ms, ttl)),
            lost: AtomicBool::new(false),
            heartbeats: AtomicU64::new(0),
            last_heard: Mutex::new(Instant::now()),
        });
        let heartbeat = tokio::spawn(heartbeat_loop(core.clone()));
        Ok(Session { core, heartbeat, closed: false })
    }
}

impl Session {
    /// The id the server gave the session.
    pub fn id(&self) -> &str {
        &self.core.id
    }

    /// The TTL in force when the session opened.
    pub fn ttl(&self) -> Duration {
        self.core.ttl
    }

    /// How often the heartbeat task sends, as the server last said.
    pub fn heartbeat_interval(&self) -> Duration {
        *self.core.heartbeat_interval.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Heartbeats the server has answered so far.
    pub fn heartbeats_sent(&self) -> u64 {
        self.core.heartbeats.load(Ordering::Relaxed)
    }

    /// True when the server no longer knows the session (it expired, or was ended by an
    /// admin): its checkouts are gone; open a new session.
    pub fn is_lost(&self) -> bool {
        self.core.lost.load(Ordering::Relaxed)
    }

    /// How long since the cluster last answered for the session (its open, or a heartbeat).
    /// Past the TTL, the cluster may have expired it without this client hearing so.
    pub fn silent_for(&self) -> Duration {
        self.core.last_heard.lock().unwrap_or_else(PoisonError::into_inner).elapsed()
    }

    /// Checks `feature` out; see [`CheckoutOptions`] and [`crate::Checkout`].
    pub async fn checkout(
        &self,
        feature: &str,
        options: CheckoutOptions,
    ) -> Result<crate::Checkout, ClientError> {
        crate::checkout::checkout(&self.core, feature, options).await
    }

    /// Sends one heartbeat now (besides the background task's) and returns the TTL the
    /// server answered with. NOT_FOUND means the session is gone: [`Session::is_lost`] is then
    /// true.
    pub async fn heartbeat(&self) -> Result<Duration, ClientError> {
        match self.core.heartbeat().await {
            Ok(answer) => {
                self.core.heard();
                Ok(Duration::from_millis(answer.ttl_ms))
            }
            Err(error) => {
                if matches!(&error, ClientError::Rejected { code: tonic::Code::NotFound, .. }) {
                    self.core.lost.store(true, Ordering::Relaxed);
                }
                Err(error)
            }
        }
    }

    /// Stops heartbeating without closing, as a process that crashed or hung would: the
    /// cluster expires the session (and frees its seats) one TTL after its last heartbeat.
    pub fn abandon(mut self) {
        self.closed = true;
        self.heartbeat.abort();
    }

    /// Ends the session: stops the heartbeat and sends CloseSession, which releases every
    /// checkout the session still holds (borrowed ones excepted). Returns the handles
    /// released.
    pub async fn close(mut self) -> Result<Vec<u64>, ClientError> {
        self.closed = true;
        self.heartbeat.abort();
        self.core.close().await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.closed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let core = self.core.clone();
            runtime.spawn(async move {
                if let Err(error) = core.close().await {
                    tracing::debug!(session = %core.id, %error, "closing a dropped session failed");
                }
            });
        }
    }
}

impl SessionCore {
    /// The TTL in force when the session opened.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records an answered heartbeat.
    fn heard(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
        *self.last_heard.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// A fresh request id: the session's random prefix and a counter.
    pub(crate) fn next_request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.request_prefix)
    }

    async fn close(&self) -> Result<Vec<u64>, ClientError> {
        let request = v1::CloseSessionRequest {
            session_id: self.id.clone(),
            session_secret: self.secret.clone(),
        };
        let closed = self
            .client
            .call("CloseSession", |channel| {
                let request = self.client.request(request.clone());
                async move { LicenseServiceClient::new(channel).close_session(request).await }
            })
            .await?;
        Ok(closed.released)
    }

    async fn heartbeat(&self) -> Result<v1::HeartbeatResponse, ClientError> {
        let request = v1::HeartbeatRequest {
            session_id: self.id.clone(),
            session_secret: self.secret.clone(),
        };
        self.client
            .call("Heartbeat", |channel| {
                let request = self.client.request(request.clone());
                async move { LicenseServiceClient::new(channel).heartbeat(request).await }
            })
            .await
    }
}

/// The session's heartbeat task: one Heartbeat per interval until the session is gone. A
/// cluster that cannot be reached is tried again at the next tick (no session expires while
/// there is no leader).
async fn heartbeat_loop(core: Arc<SessionCore>) {
    loop {
        let wait = *core.heartbeat_interval.lock().unwrap_or_else(PoisonError::into_inner);
        tokio::time::sleep(wait).await;
        match core.heartbeat().await {
            Ok(answer) => {
                core.heard();
                let next =
                    interval(answer.heartbeat_interval_ms, Duration::from_millis(answer.ttl_ms));
                *core.heartbeat_interval.lock().unwrap_or_else(PoisonError::into_inner) = next;
            }
            Err(ClientError::Rejected { code: tonic::Code::NotFound, message }) => {
                tracing::warn!(session = %core.id, %message, "the cluster lost the session");
                core.lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(error) => tracing::warn!(session = %core.id, %error, "heartbeat failed"),
        }
    }
}

/// The interval to heartbeat at: the server's hint, or a third of the TTL, never below
/// [`MIN_HEARTBEAT_INTERVAL`].
fn interval(hint_ms: u64, ttl: Duration) -> Duration {
    let chosen = if hint_ms > 0 { Duration::from_millis(hint_ms) } else { ttl / 3 };
    chosen.max(MIN_HEARTBEAT_INTERVAL)
}

/// 64 random bits as hex; falls back to the pid and the clock if the OS has no randomness.
fn random_prefix() -> String {
    // 128 bits: the open's request id, made from this prefix, is what a retried OpenSession
    // presents to get the session's secret back, so it must be as hard to guess as the secret.
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_follows_the_hint_or_a_third_of_the_ttl_with_a_floor() {
        assert_eq!(interval(2_000, Duration::from_secs(30)), Duration::from_secs(2));
        assert_eq!(interval(0, Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(interval(1, Duration::from_secs(30)), MIN_HEARTBEAT_INTERVAL);
        assert_eq!(interval(0, Duration::ZERO), MIN_HEARTBEAT_INTERVAL);
    }

    #[test]
    fn request_prefixes_differ_between_sessions() {
        let (a, b) = (random_prefix(), random_prefix());
        assert_eq!(a.len(), 32, "128 bits, as hex");
        assert_ne!(a, b);
    }
}
