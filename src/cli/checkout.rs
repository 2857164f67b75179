//! `qlm checkout FEATURE [--version V] [--count N] [--wait]`: takes seats for a script and
//! holds them until SIGINT (Ctrl-C) or SIGTERM, then checks them in and closes the session.
//!
//! Prints the grant on stdout as soon as it is had. Exit 0 after a clean checkin, 1 on a
//! denial (reason and holders on stderr) or when the cluster drops the session while it is
//! held, 3 when no server answers. A signal while waiting in the queue ends the wait: the
//! session is closed, which withdraws the queued request.

use std::time::Duration;

use clap::Args;
use qlm_client::{Checkout, CheckoutOptions, Client, Session, SessionOptions};
use tokio::signal::unix::{SignalKind, signal};

use crate::connect::{failed, grant_line, print_now};
use crate::{BadInput, Outcome};

/// How often a holding `qlm checkout` looks whether the cluster still knows its session.
const LOST_SESSION_CHECK: Duration = Duration::from_secs(1);

/// What to check out (shared by `checkout` and `run`).
#[derive(Args, Clone, Debug)]
pub struct CheckoutArgs {
    /// The feature, as in the license file.
    pub feature: String,
    /// Lowest acceptable version ("4.0").
    #[arg(long)]
    pub version: Option<String>,
    /// Seats (or tokens) to take.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Wait in the feature's queue when every seat is taken, instead of failing.
    #[arg(long)]
    pub wait: bool,
}

impl CheckoutArgs {
    fn options(&self) -> CheckoutOptions {
        CheckoutOptions {
            version: self.version.clone(),
            count: self.count,
            wait: self.wait,
            borrow_until: None,
        }
    }
}

/// A session holding one checkout; what `checkout` and `run` hold.
pub struct Held {
    pub session: Session,
    pub seat: Checkout,
}

impl Held {
    /// Checks in and closes the session; a failure of either is reported, not fatal.
    pub async fn release(self) {
        if let Err(error) = self.seat.checkin().await {
            eprintln!("qlm: warning: checkin failed: {error}");
        }
        if let Err(error) = self.session.close().await {
            eprintln!("qlm: warning: closing the session failed: {error}");
        }
    }
}

/// Opens a session and checks out, giving up (and closing the session) on SIGINT/SIGTERM.
/// `Err` is the outcome to end the command with.
pub async fn acquire(
    client: &Client,
    args: &CheckoutArgs,
) -> Result<Held, Result<Outcome, BadInput>> {
    let session = client.open_session(SessionOptions::from_process()).await.map_err(failed)?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Err(BadInput(e.to_string())))?;
    let checkout = tokio::select! {
        checkout = session.checkout(&args.feature, args.options()) => checkout,
        _ = tokio::signal::ctrl_c() => return Err(interrupted(session).await),
        _ = terminate.recv() => return Err(interrupted(session).await),
    };
    match checkout {
        Ok(seat) => Ok(Held { session, seat }),
        Err(error) => {
            let _ = session.close().await;
            Err(failed(error))
        }
    }
}

async fn interrupted(session: Session) -> Result<Outcome, BadInput> {
    eprintln!("qlm: interrupted before a grant");
    let _ = session.close().await;
    Ok(Outcome::Refused)
}

pub fn run(servers: Option<&str>, args: CheckoutArgs) -> Result<Outcome, BadInput> {
    let client = crate::connect::client(servers)?;
    crate::connect::runtime()?.block_on(async move {
        let held = match acquire(&client, &args).await {
            Ok(held) => held,
            Err(end) => return end,
        };
        print_now(grant_line(held.seat.granted()));
        print_now("holding; Ctrl-C or SIGTERM checks it in");
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| BadInput(e.to_string()))?;
        let mut check = tokio::time::interval(LOST_SESSION_CHECK);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = check.tick() => if held.session.is_lost() {
                    eprintln!("qlm: the cluster lost the session: the seat is no longer held");
                    return Ok(Outcome::Refused);
                },
            }
        }
        let handle = held.seat.handle();
        held.release().await;
        print_now(format!("checked in handle {handle}"));
        Ok(Outcome::Ok)
    })
}
