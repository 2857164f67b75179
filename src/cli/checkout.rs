//! `qlm checkout FEATURE [--version V] [--count N] [--wait] [--vendor-pubkey vendor.pub]`:
//! takes seats for a script and holds them until SIGINT (Ctrl-C) or SIGTERM, then checks them
//! in and closes the session.
//!
//! The license is looked for along the search path (`--servers`, then `QLM_LICENSE`, then
//! `QLM_SERVERS`, else 127.0.0.1:7400): a node-locked line of a license file on it grants
//! when it verifies with a `--vendor-pubkey` (or `QLM_VENDOR_PUBKEY`) key on this machine.
//! Prints the grant on stdout as soon as it is had. Exit 0 after a clean checkin, 1 on a
//! denial (reason and holders on stderr) or when the cluster drops the session while it is
//! held, 3 when no server answers. A signal while waiting in the queue ends the wait: the
//! session is closed, which withdraws the queued request.

use std::time::Duration;

use std::path::PathBuf;

use clap::Args;
use qlm_client::{CheckoutRequest, Grant, Licenser};
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
    /// A vendor's public key file, trusted for node-locked lines on the search path (repeat
    /// for several vendors).
    #[arg(long = "vendor-pubkey", env = "QLM_VENDOR_PUBKEY", value_name = "vendor.pub")]
    pub vendor_pubkeys: Vec<PathBuf>,
}

impl CheckoutArgs {
    fn request(&self) -> CheckoutRequest {
        CheckoutRequest {
            version: self.version.clone(),
            count: self.count,
            // As long as it takes: a signal ends the wait.
            wait: self.wait.then_some(Duration::MAX),
            borrow_until: None,
        }
    }
}

/// A grant and the licenser that holds it; what `checkout` and `run` hold.
pub struct Held {
    pub licenser: Licenser,
    pub grant: Grant,
}

impl Held {
    /// Checks in and closes the sessions; a failure of either is reported, not fatal.
    pub async fn release(self) {
        if let Grant::Floating { checkout, .. } = self.grant
            && let Err(error) = checkout.checkin().await
        {
            eprintln!("qlm: warning: checkin failed: {error}");
        }
        if let Err(error) = self.licenser.close().await {
            eprintln!("qlm: warning: closing the session failed: {error}");
        }
    }

    /// `granted ...` for the grant.
    pub fn line(&self) -> String {
        match &self.grant {
            Grant::Floating { checkout, .. } => grant_line(checkout.granted()),
            Grant::NodeLocked(line) => format!(
                "granted {} {} node-locked ({} line {}), expires {}",
                line.feature,
                line.version,
                line.file.display(),
                line.line,
                line.expires
            ),
        }
    }
}

/// Checks out along the search path, giving up (and closing the session) on SIGINT/SIGTERM.
/// `Err` is the outcome to end the command with.
pub async fn acquire(
    licenser: Licenser,
    args: &CheckoutArgs,
) -> Result<Held, Result<Outcome, BadInput>> {
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Err(BadInput(e.to_string())))?;
    let request = args.request();
    let grant = tokio::select! {
        grant = licenser.checkout(&args.feature, &request) => grant,
        _ = tokio::signal::ctrl_c() => return Err(interrupted(licenser).await),
        _ = terminate.recv() => return Err(interrupted(licenser).await),
    };
    match grant {
        Ok(grant) => Ok(Held { licenser, grant }),
        Err(error) => {
            let _ = licenser.close().await;
            Err(failed(error))
        }
    }
}

async fn interrupted(licenser: Licenser) -> Result<Outcome, BadInput> {
    eprintln!("qlm: interrupted before a grant");
    let _ = licenser.close().await;
    Ok(Outcome::Refused)
}

pub fn run(servers: Option<&str>, args: CheckoutArgs) -> Result<Outcome, BadInput> {
    let licenser = crate::connect::licenser(servers, &args.vendor_pubkeys)?;
    crate::connect::runtime()?.block_on(async move {
        let held = match acquire(licenser, &args).await {
            Ok(held) => held,
            Err(end) => return end,
        };
        print_now(held.line());
        print_now("holding; Ctrl-C or SIGTERM checks it in");
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| BadInput(e.to_string()))?;
        let mut check = tokio::time::interval(LOST_SESSION_CHECK);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = check.tick() => if let Some(reason) = held.licenser.lost().await {
                    eprintln!("qlm: the session was lost ({reason}): the seat is no longer held");
                    return Ok(Outcome::Refused);
                },
            }
        }
        let handle = match &held.grant {
            Grant::Floating { checkout, .. } => Some(checkout.handle()),
            Grant::NodeLocked(_) => None,
        };
        held.release().await;
        if let Some(handle) = handle {
            print_now(format!("checked in handle {handle}"));
        }
        Ok(Outcome::Ok)
    })
}
