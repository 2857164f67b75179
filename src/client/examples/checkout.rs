//! Checks a feature out of a QuorumLM cluster, works, and checks it back in.
//!
//! ```text
//! make run                                   # a local 3-node cluster, in another terminal
//! QLM_SERVERS=127.0.0.1:7400,127.0.0.1:7410,127.0.0.1:7420 \
//!     cargo run -p qlm-client --example checkout -- vhdl-editor 4.0
//! ```
//!
//! Exits 0 once the seat is checked in, 1 when the checkout is denied (the reason and the
//! holders are printed), 3 when no node answers.

use std::process::ExitCode;
use std::time::Duration;

use qlm_client::{CheckoutOptions, Client, ClientError, SessionOptions};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let feature = args.next().unwrap_or_else(|| "vhdl-editor".to_owned());
    let version = args.next();
    match run(&feature, version).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(ClientError::Denied { reason, message, holders }) => {
            eprintln!("denied ({reason:?}): {message}");
            for holder in holders {
                eprintln!("  held by {holder:?}");
            }
            ExitCode::from(1)
        }
        Err(e @ ClientError::Unreachable { .. }) => {
            eprintln!("{e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn run(feature: &str, version: Option<String>) -> Result<(), ClientError> {
    let client = Client::from_env()?;
    let session = client.open_session(SessionOptions::from_process()).await?;
    let seat = session.checkout(feature, CheckoutOptions { version, ..Default::default() }).await?;
    println!("checked out {feature}; working for a second");
    // The session heartbeats in the background meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    seat.checkin().await?;
    println!("checked in");
    session.close().await?;
    Ok(())
}
