//! What every command that talks to the cluster shares: the client from `--servers` (or
//! `QLM_SERVERS`, or the first cluster of `QLM_LICENSE`, or 127.0.0.1:7400), the licenser of
//! `qlm checkout` and `qlm run` (the whole search path, node-locked lines included), the runtime, printing while a command is still running, and the one table
//! from [`ClientError`] to the exit codes of the contract (0 ok, 1 denied or refused, 2 bad
//! usage or input, 3 cluster unreachable). TLS settings (`--tls-ca`, `--tls-cert`,
//! `--tls-key`) are global flags, recorded once by `main` with [`set_tls`].

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use qlm_client::search_path::{Entry, LICENSE_ENV, SearchPath};
use qlm_client::{Client, ClientError, Licenser, SessionOptions, list_wants_tls, parse_servers};
use qlm_license::{Timestamp, TrustedKeys, VendorPublicKey};
use qlm_net::tls::ClientTls;
use qlm_proto::v1;

use crate::{BadInput, Outcome};

/// How `qlm` talks TLS to the servers (global flags).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// CA certificate (PEM) to trust for the servers' certificates; turns TLS on (as does an
    /// `https://` server entry, which without --tls-ca trusts the system's CAs).
    #[arg(long, global = true, env = "QLM_TLS_CA", value_name = "CA.pem")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for servers started with --tls-client-ca.
    #[arg(long, global = true, env = "QLM_CLIENT_CERT", value_name = "FILE.pem")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "QLM_CLIENT_KEY", value_name = "FILE.key")]
    pub tls_key: Option<PathBuf>,
}

static TLS: OnceLock<TlsArgs> = OnceLock::new();

/// Records the global TLS flags for [`client`].
pub fn set_tls(args: TlsArgs) {
    let _ = TLS.set(args);
}

/// The client of the servers given (`--servers`, `QLM_SERVERS`), else of the first cluster of
/// `QLM_LICENSE`, else of this machine's server (127.0.0.1:7400). Exit 2 when the list cannot
/// be read or the TLS files cannot be used.
pub fn client(servers: Option<&str>) -> Result<Client, BadInput> {
    let (servers, wants_tls) = match servers.filter(|list| !list.trim().is_empty()) {
        Some(list) => (parse_servers(list)?, list_wants_tls(list)),
        None => {
            let path = SearchPath::from_env_or_local(None).map_err(|e| BadInput(e.to_string()))?;
            let Some(first) = path.clusters().next() else {
                return Err(BadInput(format!(
                    "no license server: {LICENSE_ENV} names only license files; give --servers \
                     host:7400,... or set QLM_SERVERS"
                )));
            };
            (first.to_vec(), path.wants_tls)
        }
    };
    let client = Client::connect(servers).map_err(|e| BadInput(e.to_string()))?;
    Ok(match tls(wants_tls)? {
        Some(files) => client.with_tls(&files),
        None => client,
    })
}

/// The command line's TLS settings when TLS is wanted (an `https://` entry or a TLS flag).
fn tls(wants_tls: bool) -> Result<Option<ClientTls>, BadInput> {
    let tls = TLS.get().cloned().unwrap_or_default();
    if !wants_tls && tls.tls_ca.is_none() && tls.tls_cert.is_none() && tls.tls_key.is_none() {
        return Ok(None);
    }
    ClientTls::read(tls.tls_ca.as_deref(), tls.tls_cert.as_deref(), tls.tls_key.as_deref())
        .map(Some)
        .map_err(|e| BadInput(e.to_string()))
}

/// Where `qlm checkout` and `qlm run` look for a license: the servers given with `--servers`
/// first (when they are not just `QLM_SERVERS`, which the environment's path ends with), then
/// the search path of the environment (`QLM_LICENSE`, `QLM_SERVERS`), else this machine's
/// server.
pub fn licenser(servers: Option<&str>, vendor_keys: &[PathBuf]) -> Result<Licenser, BadInput> {
    let from_env = std::env::var(qlm_client::SERVERS_ENV).ok();
    let explicit =
        servers.filter(|list| !list.trim().is_empty() && Some(*list) != from_env.as_deref());
    let mut path = SearchPath::default();
    if let Some(list) = explicit {
        path = SearchPath {
            entries: vec![Entry::Cluster(parse_servers(list)?)],
            wants_tls: list_wants_tls(list),
        };
    }
    match SearchPath::from_env_if_set(None).map_err(|e| BadInput(e.to_string()))? {
        Some(env_path) => path.append(env_path),
        None if path.entries.is_empty() => path = SearchPath::local(),
        None => {}
    }
    let mut licenser = Licenser::new(path.clone(), SessionOptions::from_process())
        .map_err(|e| BadInput(e.to_string()))?;
    if let Some(files) = tls(path.wants_tls)? {
        licenser = licenser.with_tls(&files);
    }
    for file in vendor_keys {
        let key = VendorPublicKey::read_file(file)?;
        licenser.trust_vendor_keys(&TrustedKeys::from_iter([key]));
    }
    Ok(licenser)
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
        ClientError::Unreachable { ref last, .. } => {
            eprintln!("qlm: error: {error}");
            let plaintext = TLS.get().is_none_or(|tls| tls.tls_ca.is_none());
            if plaintext && last.contains("h2 protocol error") {
                eprintln!(
                    "qlm: hint: the servers may be using TLS: give --tls-ca CA.pem (or set QLM_TLS_CA)"
                );
            }
            Ok(Outcome::Unreachable)
        }
        ClientError::NoServers(_)
        | ClientError::InvalidArgument(_)
        | ClientError::AdminToken(_)
        | ClientError::Tls(_) => Err(BadInput(error.to_string())),
        ClientError::Denied { reason, message, holders } => {
            eprintln!("qlm: denied: {}: {message}", reason_name(reason));
            for holder in holders {
                eprintln!("  held by {}", holder_line(&holder));
            }
            Ok(Outcome::Refused)
        }
        ClientError::Left { .. }
        | ClientError::Rejected { .. }
        | ClientError::Protocol(_)
        | ClientError::NodeLocked(_)
        | ClientError::WaitTimedOut(_)
        | ClientError::SessionLost(_) => {
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
