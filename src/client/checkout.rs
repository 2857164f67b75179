//! Checking out and in: [`CheckoutOptions`], and [`Checkout`], the guard of a grant.
//!
//! Each checkout gets one request id (the session's random prefix and a counter), and every
//! failover retry of it sends that same id, so the cluster grants it at most once however
//! many nodes the client had to try (common.proto, Idempotency). With `wait`, a Queued answer
//! is followed with WaitQueued until the request is Granted (the checkout then keeps the
//! queued handle), Denied or Left; a broken stream is opened again on any node.
//!
//! The guard's semantics:
//!
//! - [`Checkout::checkin`] gives the seats back and reports the answer.
//! - Dropping a guard that was not checked in sends the Checkin from a spawned task,
//!   best-effort: nothing reports its failure, and a runtime that is shutting down may never
//!   run it. Closing the session (or its expiry) releases the seats in any case.
//! - A wait given up (the checkout's future dropped, say by a timeout around it) or failed
//!   (the stream to follow it could not be kept) takes the request out of its queue the same
//!   way: a Checkin of the queued handle, sent from a spawned task. Without it, the queue
//!   would later grant the session seats that nobody knows it holds.
//! - A checkout dropped before its answer came, or failed as
//!   [`ClientError::Unreachable`] (the outcome unknown), is settled from a spawned task: the
//!   same request again (same request id, so nothing is granted twice) tells what the cluster
//!   did, and whatever it granted or queued is checked in; while the cluster cannot be
//!   reached it tries again for up to the session's TTL. The application may simply check
//!   out again: it never holds a seat it was not handed.
//! - The guard does not keep its session alive: when the [`crate::Session`] is
//!   closed or dropped, the cluster releases the checkout, and a later checkin answers
//!   NOT_FOUND.
//! - A borrowed checkout (`borrow_until`) is meant to outlive the process: use
//!   [`Checkout::keep`] so that dropping the guard does not check it in.

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{ClientError, is_retryable};
use crate::session::SessionCore;
use qlm_proto::v1;
use qlm_proto::v1::checkout_response::Result as Answer;
use qlm_proto::v1::license_service_client::LicenseServiceClient;
use qlm_proto::v1::queue_update::Update;

/// Pause between the tries of a checkout whose outcome is being settled (see `InFlight`).
const UNSETTLED_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Times in a row a WaitQueued stream may break or end early before the wait gives up.
pub const MAX_WAIT_RECONNECTS: u32 = 10;

/// What to ask for besides the feature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// Lowest acceptable version ("4.0"); `None` for any.
    pub version: Option<String>,
    /// Seats (or tokens); 0 is read as 1.
    pub count: u32,
    /// Wait in the feature's queue when every seat is taken, instead of being denied.
    pub wait: bool,
    /// Borrow until this instant: no heartbeat needed until then (offline use).
    pub borrow_until: Option<SystemTime>,
}

/// A granted checkout. Check it in with [`Checkout::checkin`]; dropping it checks it in
/// best-effort (see the module documentation).
#[must_use = "dropping a Checkout checks it in at once"]
pub struct Checkout {
    core: Arc<SessionCore>,
    granted: v1::Granted,
    /// False once checked in or kept: the drop then does nothing.
    armed: bool,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("session", &self.core.id)
            .field("granted", &self.granted)
            .finish()
    }
}

impl Checkout {
    /// The checkout's handle.
    pub fn handle(&self) -> u64 {
        self.granted.handle
    }

    /// The grant as the cluster sent it: feature, pool, version, count, since.
    pub fn granted(&self) -> &v1::Granted {
        &self.granted
    }

    /// Gives the seats back (with the feature's LINGER they stay taken a while). Retried on
    /// failover under one request id.
    pub async fn checkin(mut self) -> Result<(), ClientError> {
        self.armed = false;
        checkin(&self.core, self.granted.handle).await
    }

    /// Leaves the checkout held after the guard is gone (a borrow); returns the grant.
    pub fn keep(mut self) -> v1::Granted {
        self.armed = false;
        self.granted.clone()
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if self.armed {
            checkin_in_background(&self.core, self.granted.handle);
        }
    }
}

/// Sends a Checkin of `handle` from a spawned task, best-effort (nothing reports a failure,
/// and without a runtime nothing is sent).
fn checkin_in_background(core: &Arc<SessionCore>, handle: u64) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let core = core.clone();
        runtime.spawn(async move { checkin_quietly(&core, handle).await });
    }
}

/// A Checkin nobody waits for: a failure is only logged (at debug).
async fn checkin_quietly(core: &SessionCore, handle: u64) {
    if let Err(error) = checkin(core, handle).await {
        tracing::debug!(session = %core.id, handle, %error, "checkin on drop failed");
    }
}

/// A request waiting in a queue, while the client follows it. Dropped armed (the
/// application gave up the wait, or following it failed), it checks the handle in, which
/// takes the request out of its queue, or gives the seats back if they were granted
/// meanwhile: otherwise the queue could grant the session seats nobody knows it holds, for
/// as long as the session lives.
struct Waiting {
    core: Arc<SessionCore>,
    handle: u64,
    armed: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.armed {
            checkin_in_background(&self.core, self.handle);
        }
    }
}

/// Checks out; with `options.wait`, follows the queue until a grant or, when `limit` is set,
/// until `limit` has passed since the call began ([`ClientError::WaitTimedOut`]).
pub(crate) async fn checkout(
    core: &Arc<SessionCore>,
    feature: &str,
    options: CheckoutOptions,
    limit: Option<std::time::Duration>,
) -> Result<Checkout, ClientError> {
    let deadline = limit.map(|limit| (tokio::time::Instant::now() + limit, limit));
    let borrow_until_unix_ms = options
        .borrow_until
        .map(|at| at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64));
    let request = v1::CheckoutRequest {
        session_id: core.id.clone(),
        session_secret: core.secret.clone(),
        request_id: core.next_request_id(),
        feature: feature.to_owned(),
        version: options.version.unwrap_or_default(),
        count: options.count,
        wait: options.wait,
        borrow_until_unix_ms,
    };
    let mut in_flight = InFlight { core: core.clone(), request, armed: true };
    let answer = send_checkout(core, &in_flight.request).await;
    // An answer, or a definite refusal, settles it. Unreachable leaves the outcome unknown to
    // the application, which will act as if nothing was granted: the guard settles it later.
    in_flight.armed = matches!(&answer, Err(error) if error.is_unreachable());
    let answer = answer?;
    let granted = match answer.result {
        Some(Answer::Granted(granted)) => granted,
        Some(Answer::Denied(denied)) => return Err(denial(denied)),
        Some(Answer::Left(left)) => return Err(left_error(&left)),
        Some(Answer::Queued(queued)) if options.wait => {
            let mut waiting = Waiting { core: core.clone(), handle: queued.handle, armed: true };
            let outcome = match deadline {
                None => wait_queued(core, queued.handle).await,
                Some((at, limit)) => {
                    match tokio::time::timeout_at(at, wait_queued(core, queued.handle)).await {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            // Out of the queue before the application hears of it, so that a
                            // checkout it makes next does not meet its own queued request.
                            waiting.armed = checkin(core, queued.handle).await.is_err();
                            return Err(ClientError::WaitTimedOut(limit));
                        }
                    }
                }
            };
            // Granted: the Checkout guard takes the handle over. Denied or Left: the request
            // is out of the queue already. Anything else: cancel it on the way out.
            waiting.armed = !matches!(
                outcome,
                Ok(_) | Err(ClientError::Denied { .. } | ClientError::Left { .. })
            );
            outcome?
        }
        Some(Answer::Queued(queued)) => {
            return Err(ClientError::Protocol(format!(
                "Checkout without wait answered Queued (handle {})",
                queued.handle
            )));
        }
        None => return Err(ClientError::Protocol("Checkout answered no result".into())),
    };
    Ok(Checkout { core: core.clone(), granted, armed: true })
}

async fn send_checkout(
    core: &SessionCore,
    request: &v1::CheckoutRequest,
) -> Result<v1::CheckoutResponse, ClientError> {
    let client = &core.client;
    client
        .call("Checkout", |channel| {
            let request = client.request(request.clone());
            async move { LicenseServiceClient::new(channel).checkout(request).await }
        })
        .await
}

/// A Checkout whose outcome the application does not know: sent and not yet answered, or
/// failed with [`ClientError::Unreachable`]. Dropped armed (the application gave up before the
/// answer came, or got the error), it learns the outcome from a spawned task by sending the
/// same request again (the same request id: the cluster answers what it did the first time,
/// or does it now) and checks in whatever was granted or queued. While the cluster cannot be
/// reached it tries again, for as long as the session's TTL: a session that cannot reach the
/// cluster for that long is expired there, and its seats come back anyway.
struct InFlight {
    core: Arc<SessionCore>,
    request: v1::CheckoutRequest,
    armed: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let request = std::mem::take(&mut self.request);
        let core = self.core.clone();
        runtime.spawn(async move {
            let give_up = tokio::time::Instant::now() + core.ttl();
            let handle = loop {
                match send_checkout(&core, &request).await.map(|a| a.result) {
                    Ok(Some(Answer::Granted(granted))) => break granted.handle,
                    Ok(Some(Answer::Queued(queued))) => break queued.handle,
                    Ok(_) => return,
                    Err(error) if error.is_unreachable() && tokio::time::Instant::now() < give_up => {
                        tokio::time::sleep(UNSETTLED_RETRY).await;
                    }
                    Err(error) => {
                        let id = &request.request_id;
                        tracing::debug!(session = %core.id, request = %id, %error, "abandoned checkout");
                        return;
                    }
                }
            };
            checkin_quietly(&core, handle).await;
        });
    }
}

/// Follows a queued request until it is granted, denied or leaves its queue.
async fn wait_queued(core: &SessionCore, handle: u64) -> Result<v1::Granted, ClientError> {
    let request = v1::WaitQueuedRequest {
        session_id: core.id.clone(),
        session_secret: core.secret.clone(),
        handle,
    };
    let client = &core.client;
    let mut breaks = 0;
    loop {
        let mut stream = client
            .call("WaitQueued", |channel| {
                // No deadline on the request: the stream lasts as long as the wait.
                let request = tonic::Request::new(request.clone());
                async move { LicenseServiceClient::new(channel).wait_queued(request).await }
            })
            .await?;
        loop {
            match stream.message().await {
                Ok(Some(message)) => match message.update {
                    Some(Update::Position(position)) => {
                        tracing::debug!(handle, position = position.position, "still queued");
                    }
                    Some(Update::Granted(granted)) => return Ok(granted),
                    Some(Update::Denied(denied)) => return Err(denial(denied)),
                    Some(Update::Left(left)) => return Err(left_error(&left)),
                    None => {}
                },
                Ok(None) => break,
                Err(status) if is_retryable(&status) => break,
                Err(status) => return Err(ClientError::from_status(&status)),
            }
        }
        breaks += 1;
        if breaks >= MAX_WAIT_RECONNECTS {
            return Err(ClientError::Unreachable {
                tried: client.servers().iter().map(ToString::to_string).collect(),
                last: format!("the wait for queued request {handle} broke {breaks} times"),
            });
        }
    }
}

pub(crate) async fn checkin(core: &SessionCore, handle: u64) -> Result<(), ClientError> {
    let request = v1::CheckinRequest {
        session_id: core.id.clone(),
        session_secret: core.secret.clone(),
        request_id: core.next_request_id(),
        handle,
    };
    let client = &core.client;
    client
        .call("Checkin", |channel| {
            let request = client.request(request.clone());
            async move { LicenseServiceClient::new(channel).checkin(request).await }
        })
        .await?;
    Ok(())
}

fn denial(denied: v1::Denied) -> ClientError {
    ClientError::Denied {
        reason: v1::DenialReason::try_from(denied.reason).unwrap_or(v1::DenialReason::Unspecified),
        message: denied.message,
        holders: denied.holders,
    }
}

fn left_error(left: &v1::Left) -> ClientError {
    ClientError::Left {
        handle: left.handle,
        cause: v1::LeftCause::try_from(left.cause).unwrap_or(v1::LeftCause::Unspecified),
    }
}
