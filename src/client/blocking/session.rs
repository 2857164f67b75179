//! [`Session`]: a [`Licenser`] driven from the caller's thread, and the watch that tells the
//! application when its licenses were lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Runtime;

use super::seat::Seat;
use crate::Licenser;
use crate::error::ClientError;
use crate::licenser::{CheckoutRequest, LostReason, SessionStatus};

/// How often the watch looks whether the session was lost.
const LOST_WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// How long closing a dropped session may hold the dropping thread.
const CLOSE_ON_DROP_LIMIT: Duration = Duration::from_secs(3);

type LostCallback = Box<dyn Fn(&LostReason) + Send + Sync>;

/// A process's session along the search path: opened on each cluster a checkout reaches,
/// heartbeated on the library's thread, closed on [`Session::close`] or drop. `Send + Sync`.
pub struct Session {
    runtime: Arc<Runtime>,
    state: Arc<State>,
    watch: tokio::task::JoinHandle<()>,
    closed: bool,
}

/// What the session and its watch share.
struct State {
    licenser: Licenser,
    /// Set once, by the watch.
    lost: Mutex<Option<LostReason>>,
    /// Whether the callback ran.
    told: AtomicBool,
    callback: Mutex<Option<LostCallback>>,
}

impl Session {
    pub(super) fn new(runtime: Arc<Runtime>, licenser: Licenser) -> Session {
        let state = Arc::new(State {
            licenser,
            lost: Mutex::new(None),
            told: AtomicBool::new(false),
            callback: Mutex::new(None),
        });
        let watch = runtime.spawn(watch_lost(state.clone()));
        Session { runtime, state, watch, closed: false }
    }

    /// Checks `feature` out from the first entry of the search path that grants it. A lost
    /// session refuses ([`ClientError::SessionLost`]): open a new one.
    pub fn checkout(&self, feature: &str, request: &CheckoutRequest) -> Result<Seat, ClientError> {
        if let Some(reason) = self.lost_reason() {
            return Err(ClientError::SessionLost(reason.to_string()));
        }
        let grant = self.runtime.block_on(self.state.licenser.checkout(feature, request))?;
        Ok(Seat::new(self.runtime.clone(), grant, request.count.max(1)))
    }

    /// True once the session was lost; a poll for programs that prefer it to
    /// [`Session::on_lost`].
    pub fn is_lost(&self) -> bool {
        self.lost_reason().is_some()
    }

    /// Why the session was lost, if it was.
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.state.lost.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Calls `callback` once, from the library's thread, when the session is lost (from this
    /// thread, at once, if it already was). A later call replaces the callback.
    pub fn on_lost(&self, callback: Box<dyn Fn(&LostReason) + Send + Sync>) {
        *self.state.callback.lock().unwrap_or_else(PoisonError::into_inner) = Some(callback);
        self.state.tell();
    }

    /// Where the session stands.
    pub fn status(&self) -> SessionStatus {
        let mut status = self.runtime.block_on(self.state.licenser.status());
        status.lost = self.is_lost();
        status
    }

    /// Closes the session on every cluster it was opened on, which gives back the seats it
    /// holds there (borrowed ones excepted).
    pub fn close(mut self) -> Result<(), ClientError> {
        self.closed = true;
        self.watch.abort();
        self.runtime.block_on(self.state.licenser.close())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.watch.abort();
        // A thread inside an async runtime cannot block on this one; the TTL frees the seats.
        if self.closed || tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let licenser = &self.state.licenser;
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(CLOSE_ON_DROP_LIMIT, licenser.close()).await });
    }
}

impl State {
    /// Calls the callback once, if the session is lost and there is one.
    fn tell(&self) {
        let reason = self.lost.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let callback = self.callback.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(reason), Some(callback)) = (reason, callback.as_ref())
            && !self.told.swap(true, Ordering::SeqCst)
        {
            callback(&reason);
        }
    }
}

/// Marks the session lost when a cluster expired it or stayed silent for longer than its
/// TTL, and tells the application.
async fn watch_lost(state: Arc<State>) {
    let mut tick = tokio::time::interval(LOST_WATCH_INTERVAL);
    loop {
        tick.tick().await;
        if let Some(reason) = state.licenser.lost().await {
            tracing::warn!(%reason, "license session lost");
            *state.lost.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
            state.tell();
            return;
        }
    }
}
