//! `qlm run FEATURE [--version V] [--count N] [--wait] -- COMMAND ARGS...`: holds a checkout
//! while COMMAND runs, then checks it in and exits with COMMAND's exit code (128 + the signal
//! when it was killed by one).
//!
//! SIGINT from a terminal reaches COMMAND directly (same process group); `qlm` keeps waiting
//! for it. SIGTERM sent to `qlm` is passed on to COMMAND. A denial exits 1 and an unreachable
//! cluster 3 without running COMMAND; a COMMAND that cannot be started exits 2.

use std::os::unix::process::ExitStatusExt as _;

use tokio::signal::unix::{SignalKind, signal};

use crate::checkout::{CheckoutArgs, acquire};
use crate::connect::{licenser, runtime};
use crate::{BadInput, Outcome};

pub fn run(
    servers: Option<&str>,
    args: CheckoutArgs,
    command: Vec<String>,
) -> Result<Outcome, BadInput> {
    let licenser = licenser(servers, &args.vendor_pubkeys)?;
    let Some((program, program_args)) = command.split_first() else {
        return Err(BadInput("no command given after `--`".into()));
    };
    runtime()?.block_on(async move {
        let held = match acquire(licenser, &args).await {
            Ok(held) => held,
            Err(end) => return end,
        };
        let spawned = tokio::process::Command::new(program).args(program_args).spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                held.release().await;
                return Err(BadInput(format!("cannot run `{program}`: {error}")));
            }
        };
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| BadInput(e.to_string()))?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| BadInput(e.to_string()))?;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = terminate.recv() => forward_term(child.id()),
                _ = interrupt.recv() => {}
            }
        };
        held.release().await;
        let status =
            status.map_err(|error| BadInput(format!("waiting for `{program}`: {error}")))?;
        let code =
            status.code().or_else(|| status.signal().map(|signal| 128 + signal)).unwrap_or(1);
        Ok(Outcome::Exit(u8::try_from(code).unwrap_or(1)))
    })
}

/// Sends SIGTERM to the child (through kill(1): the crate has no libc binding).
fn forward_term(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }
}
