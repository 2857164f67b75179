//! What every command that talks to the cluster shares: the client from `--servers` (or
//! `QLM_SERVERS`), the runtime, printing while a command is still running, and the one table
//! from [`ClientError`] to the exit codes of the contract (0 ok, 1 denied or refused, 2 bad
//! usage or input, 3 cluster unreachable).

use std::io::Write as _;

use quorumlm::client::{Client, ClientError, parse_servers};
use quorumlm::license::Timestamp;
use quorumlm::proto::v1;

use crate::{BadInput, Outcome};

/// The client of the servers given, or exit 2 when none are.
pub fn client(servers: Option<&str>) -> Result<Client, BadInput> {
    let Some(list) = servers.filter(|list| !list.trim().is_empty()) else {
        return Err(BadInput(
            "no license servers: give --servers host:7400,... or set QLM_SERVERS".into(),
        ));
    };
    let servers = parse_servers(list)?;
    Client::connect(servers).map_err(|error| BadInput(error.to_string()))
}

/// A runtime for one command: one thread is plenty for one session and its heartbeat.
pub fn runtime() -> Result<tokio::runtime::Runtime, BadInput> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| BadInput(format!("cannot start the async runtime: {error}")))
}

/// Writes a line to stdout at once (for commands that keep running). A closed stdout is not
/// a reason to give the seat back, so write errors are ignored.
pub fn print_now(line: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// How a failed call ends the command: the message on stderr, and the exit code.
pub fn failed(error: ClientError) -> Result<Outcome, BadInput> {
    match error {
        ClientError::Unreachable { .. } => {
            eprintln!("qlm: error: {error}");
            Ok(Outcome::Unreachable)
        }
        ClientError::NoServers(_)
        | ClientError::InvalidArgument(_)
        | ClientError::AdminToken(_) => Err(BadInput(error.to_string())),
        ClientError::Denied { reason, message, holders } => {
            eprintln!("qlm: denied: {}: {message}", reason_name(reason));
            for holder in holders {
                eprintln!("  held by {}", holder_line(&holder));
            }
            Ok(Outcome::Refused)
        }
        ClientError::Left { .. } | ClientError::Rejected { .. } | ClientError::Protocol(_) => {
            eprintln!("qlm: refused: {error}");
            Ok(Outcome::Refused)
        }
    }
}

/// `ALL_IN_USE` for `DENIAL_REASON_ALL_IN_USE`.
pub fn reason_name(reason: v1::DenialReason) -> &'static str {
    reason.as_str_name().trim_start_matches("DENIAL_REASON_")
}

/// `ann@ws1 :0, 1 seat since ..., handle 3`.
pub fn holder_line(holder: &v1::Holder) -> String {
    let display =
        if holder.display.is_empty() { String::new() } else { format!(" {}", holder.display) };
    format!(
        "{}@{}{display}, {} since {}, handle {}",
        holder.user,
        holder.host,
        seats(holder.count),
        Timestamp(holder.since_unix_ms),
        holder.handle
    )
}

pub fn seats(count: u32) -> String {
    if count == 1 { "1 seat".into() } else { format!("{count} seats") }
}

/// A one-line description of a grant.
pub fn grant_line(granted: &v1::Granted) -> String {
    format!(
        "granted {} {} ({}), handle {}, since {}",
        granted.feature,
        granted.version,
        seats(granted.count),
        granted.handle,
        Timestamp(granted.since_unix_ms)
    )
}
