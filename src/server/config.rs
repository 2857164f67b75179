//! `qlmd`'s configuration: flags, `QLM_*` environment variables and a TOML file.
//!
//! Every key can be given three ways; a flag wins over its environment variable, which wins over
//! the file (`--config qlmd.toml`, keys spelled as the flags with `_`: `data_dir`,
//! `initial_cluster`, ...), which wins over the default. [`NodeConfig::resolve`] merges them and
//! checks the whole, so a node refuses to start with a message that names the setting at fault,
//! rather than half-start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::tls_config::{TlsFlags, TlsSettings};

/// Raft heartbeat interval by default, in milliseconds (see `qlm_raft::HEARTBEAT_INTERVAL_MS`).
pub const DEFAULT_HEARTBEAT_MS: u64 = qlm_raft::HEARTBEAT_INTERVAL_MS;
/// `--max-clock-offset-ms` when not set: well above what NTP keeps machines to (milliseconds),
/// well below what hurts license time (lingers and borrows are set in minutes and days).
pub const DEFAULT_MAX_CLOCK_OFFSET_MS: u64 = 1_000;
/// The bound's limits: below the lower, measuring over a busy network would flag good clocks.
const MIN_CLOCK_OFFSET_MS: u64 = 100;
const MAX_CLOCK_OFFSET_MS: u64 = 3_600_000;
/// Election timeout range by default, in milliseconds (see `qlm_raft::ELECTION_TIMEOUT_MIN_MS`).
pub const DEFAULT_ELECTION_MIN_MS: u64 = qlm_raft::ELECTION_TIMEOUT_MIN_MS;
pub const DEFAULT_ELECTION_MAX_MS: u64 = qlm_raft::ELECTION_TIMEOUT_MAX_MS;
/// Session TTL a client gets when it asks for none, in milliseconds.
pub const DEFAULT_SESSION_TTL_MS: u64 = qlm_node::settings::DEFAULT_SESSION_TTL_MS;

/// The command-line and environment side of the configuration (every field optional: what is
/// missing comes from the file or the default).
#[derive(Args, Debug, Default, Clone)]
pub struct NodeFlags {
    /// This node's id in --initial-cluster (a positive number).
    #[arg(long, env = "QLM_ID")]
    pub id: Option<u64>,
    /// Take the id from the host name's trailing number, plus one, when --id is not given: a
    /// StatefulSet's pod `qlm-0` is node 1, `qlm-2` node 3.
    #[arg(long, env = "QLM_ID_FROM_HOSTNAME")]
    pub id_from_hostname: bool,
    /// Directory of this node's Raft log, state and snapshots (created if missing).
    #[arg(long, env = "QLM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for clients (gRPC: licenses, status, admin, health).
    #[arg(long, env = "QLM_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The client address other nodes and clients are told to use for this node (leader
    /// hints, `qlm status`) when it differs from --listen: a published port, a DNS name
    /// [default: the --listen address].
    #[arg(long, env = "QLM_ADVERTISE_CLIENT", value_name = "HOST:PORT")]
    pub advertise_client: Option<String>,
    /// Address for the other nodes (Raft).
    #[arg(long, env = "QLM_PEER_LISTEN", value_name = "ADDR")]
    pub peer_listen: Option<SocketAddr>,
    /// Address for HTTP: the dashboard (/), /metrics (Prometheus), /healthz, /readyz.
    #[arg(long, env = "QLM_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// Every member's peer address, the same on every node: 1=host1:7401,2=host2:7401,...
    #[arg(long, env = "QLM_INITIAL_CLUSTER", value_name = "ID=HOST:PORT,...")]
    pub initial_cluster: Option<String>,
    /// The signed license file.
    #[arg(long, env = "QLM_LICENSE", value_name = "FILE.lic")]
    pub license: Option<PathBuf>,
    /// A vendor public key to trust (repeat for several vendors).
    #[arg(long, env = "QLM_VENDOR_PUBKEY", value_name = "vendor.pub", value_delimiter = ',')]
    pub vendor_pubkey: Vec<PathBuf>,
    /// The options (policy) file.
    #[arg(long, env = "QLM_OPTIONS", value_name = "FILE.opt")]
    pub options: Option<PathBuf>,
    /// File holding the admin token that AdminService and `qlm admin|cluster` need (or set
    /// QLM_ADMIN_TOKEN to the token itself). Without one, admin calls are refused.
    #[arg(long, env = "QLM_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// This node's host id, matched against `hostid=` of license lines [default: the host name].
    #[arg(long, env = "QLM_HOSTID", value_name = "ID")]
    pub hostid: Option<String>,
    /// A TOML file with any of these settings.
    #[arg(long, env = "QLM_CONFIG", value_name = "qlmd.toml")]
    pub config: Option<PathBuf>,
    /// Raft heartbeat interval, milliseconds [default: 50].
    #[arg(long, env = "QLM_HEARTBEAT_MS", value_name = "MS")]
    pub heartbeat_ms: Option<u64>,
    /// How far this node's wall clock may be from a majority of the voters' before it stops
    /// standing for election and leading, milliseconds [default: 1000].
    #[arg(long, env = "QLM_MAX_CLOCK_OFFSET_MS", value_name = "MS")]
    pub max_clock_offset_ms: Option<u64>,
    /// Shortest election timeout, milliseconds [default: 200].
    #[arg(long, env = "QLM_ELECTION_MIN_MS", value_name = "MS")]
    pub election_min_ms: Option<u64>,
    /// Longest election timeout, milliseconds [default: 400].
    #[arg(long, env = "QLM_ELECTION_MAX_MS", value_name = "MS")]
    pub election_max_ms: Option<u64>,
    /// Certificate chain (PEM) of the client port; with --tls-key, clients must use TLS
    /// [default: plaintext].
    #[arg(long, env = "QLM_TLS_CERT", value_name = "FILE.pem")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "QLM_TLS_KEY", value_name = "FILE.key")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose certificate every client must present on the client port [default: no
    /// client certificate needed].
    #[arg(long, env = "QLM_TLS_CLIENT_CA", value_name = "CA.pem")]
    pub tls_client_ca: Option<PathBuf>,
    /// This node's certificate (PEM) for mutual TLS between peers (with --peer-tls-key and
    /// --peer-tls-ca) [default: plaintext peer links].
    #[arg(long, env = "QLM_PEER_TLS_CERT", value_name = "FILE.pem")]
    pub peer_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --peer-tls-cert.
    #[arg(long, env = "QLM_PEER_TLS_KEY", value_name = "FILE.key")]
    pub peer_tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): peers must present a certificate from it, and it is the only CA
    /// this node trusts when it dials them.
    #[arg(long, env = "QLM_PEER_TLS_CA", value_name = "CA.pem")]
    pub peer_tls_ca: Option<PathBuf>,
    /// The usage report log (JSON lines), or `none` to write none
    /// [default: report/usage.jsonl in the data directory].
    #[arg(long, env = "QLM_REPORT_LOG", value_name = "PATH|none")]
    pub report_log: Option<PathBuf>,
    /// Rotate the report log when it reaches this size, in MiB [default: 64].
    #[arg(long, env = "QLM_REPORT_MAX_MB", value_name = "MB")]
    pub report_max_mb: Option<u64>,
    /// Where this node dials a peer instead of the peer address the membership advertises
    /// (behind NAT, a proxy or a port forward): 2=10.0.0.2:17401,3=... Peers not listed are
    /// dialed at their advertised address.
    #[arg(long, env = "QLM_PEER_ROUTE", value_name = "ID=HOST:PORT,...")]
    pub peer_route: Option<String>,
    /// Build a Raft snapshot (and purge the log behind it) after this many applied entries
    /// [default: 5000]. Small values are for tests that need snapshots to happen.
    #[arg(long, env = "QLM_SNAPSHOT_EVERY", value_name = "ENTRIES")]
    pub snapshot_every: Option<u64>,
    /// Also build a snapshot when the log entries written since the last one take more than
    /// this many MiB [default: 64], so a log of large batched entries stays bounded.
    #[arg(long, env = "QLM_SNAPSHOT_LOG_MB", value_name = "MIB")]
    pub snapshot_log_mb: Option<u64>,
    /// This node joins a running cluster: its --id is not in --initial-cluster (which stays the
    /// cluster's original list), it never forms a cluster, and it waits for `qlm cluster add`.
    /// No effect on an original member (so one setting fits every pod of a StatefulSet).
    #[arg(long, env = "QLM_JOIN")]
    pub join: bool,
}

/// The TOML file: the same keys as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    #[serde(default)]
    id_from_hostname: bool,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    advertise_client: Option<String>,
    peer_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    initial_cluster: Option<String>,
    license: Option<PathBuf>,
    #[serde(default)]
    vendor_pubkey: Vec<PathBuf>,
    options: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    hostid: Option<String>,
    heartbeat_ms: Option<u64>,
    max_clock_offset_ms: Option<u64>,
    election_min_ms: Option<u64>,
    election_max_ms: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    peer_tls_cert: Option<PathBuf>,
    peer_tls_key: Option<PathBuf>,
    peer_tls_ca: Option<PathBuf>,
    report_log: Option<PathBuf>,
    report_max_mb: Option<u64>,
    peer_route: Option<String>,
    snapshot_every: Option<u64>,
    snapshot_log_mb: Option<u64>,
    #[serde(default)]
    join: bool,
}

/// A complete, checked node configuration. Its `Debug` never shows the admin token.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub id: u64,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The client address announced to peers and clients (`--advertise-client`), if not
    /// the listen address.
    pub advertise_client: Option<String>,
    pub peer_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Peer address of every founding member, by id (the cluster's identity).
    pub initial_cluster: BTreeMap<u64, String>,
    pub license: PathBuf,
    pub vendor_pubkeys: Vec<PathBuf>,
    pub options: Option<PathBuf>,
    /// The admin token (from `--admin-token-file` or `QLM_ADMIN_TOKEN`); never logged.
    pub admin_token: Option<String>,
    /// This node's host id (`--hostid`, else the host name).
    pub hostid: String,
    pub heartbeat_ms: u64,
    /// `--max-clock-offset-ms`: the license clock's bound (qlm_node::clock).
    pub max_clock_offset_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Dial addresses that replace peers' advertised ones, by id (`--peer-route`).
    pub peer_route: BTreeMap<u64, String>,
    /// Entries applied between two snapshots (`--snapshot-every`).
    pub snapshot_every: u64,
    /// Log bytes written since the last snapshot that call for another (`--snapshot-log-mb`).
    pub snapshot_log_bytes: u64,
    /// Not an original member: waits to be added (`--join`; no effect on an original one).
    pub join: bool,
    /// Where the usage report log goes; None when turned off (`--report-log none`).
    pub report_log: Option<PathBuf>,
    /// Size at which the report log rotates, in bytes.
    pub report_max_bytes: u64,
    /// Certificate files of the client port and the peer port (`None`: plaintext).
    pub tls: TlsSettings,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("id", &self.id)
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("peer_listen", &self.peer_listen)
            .field("http_listen", &self.http_listen)
            .field("initial_cluster", &self.initial_cluster)
            .field("license", &self.license)
            .field("vendor_pubkeys", &self.vendor_pubkeys)
            .field("options", &self.options)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("hostid", &self.hostid)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("max_clock_offset_ms", &self.max_clock_offset_ms)
            .field("election_min_ms", &self.election_min_ms)
            .field("election_max_ms", &self.election_max_ms)
            .field("tls", &self.tls)
            .field("report_log", &self.report_log)
            .field("report_max_bytes", &self.report_max_bytes)
            .field("peer_route", &self.peer_route)
            .field("snapshot_every", &self.snapshot_every)
            .field("snapshot_log_bytes", &self.snapshot_log_bytes)
            .field("join", &self.join)
            .field("advertise_client", &self.advertise_client)
            .finish()
    }
}

/// A configuration that cannot run, with the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {setting}: {reason}")]
pub struct ConfigError {
    /// The flag (`--initial-cluster`) or file key at fault.
    pub setting: String,
    pub reason: String,
}

fn config_error(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.to_owned(), reason: reason.into() }
}

impl NodeConfig {
    /// What the replicated core needs of this configuration.
    pub fn node_settings(&self) -> qlm_node::NodeSettings {
        qlm_node::NodeSettings {
            id: self.id,
            initial_cluster: self.initial_cluster.clone(),
            hostid: self.hostid.clone(),
            license: self.license.clone(),
            vendor_pubkeys: self.vendor_pubkeys.clone(),
            options: self.options.clone(),
            max_clock_offset: std::time::Duration::from_millis(self.max_clock_offset_ms),
        }
    }

    /// Merges flags (with their environment variables) over the `--config` file over the
    /// defaults, and checks the result.
    pub fn resolve(mut flags: NodeFlags) -> Result<NodeConfig, ConfigError> {
        let mut file = match &flags.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let Membership { id, initial_cluster, join, peer_route } =
            Membership::resolve(&mut flags, &mut file)?;
        let Storage { data_dir, snapshot_every, snapshot_log_bytes, report_log, report_max_bytes } =
            Storage::resolve(&mut flags, &mut file)?;
        let vendor_pubkeys =
            if flags.vendor_pubkey.is_empty() { file.vendor_pubkey } else { flags.vendor_pubkey };
        if vendor_pubkeys.is_empty() {
            return Err(required("--vendor-pubkey"));
        }
        let config = NodeConfig {
            id,
            data_dir,
            listen: flags.listen.or(file.listen).ok_or_else(|| required("--listen"))?,
            advertise_client: flags.advertise_client.or(file.advertise_client),
            peer_listen: flags
                .peer_listen
                .or(file.peer_listen)
                .ok_or_else(|| required("--peer-listen"))?,
            http_listen: flags
                .http_listen
                .or(file.http_listen)
                .ok_or_else(|| required("--http-listen"))?,
            initial_cluster,
            license: flags.license.or(file.license).ok_or_else(|| required("--license"))?,
            vendor_pubkeys,
            options: flags.options.or(file.options),
            admin_token: admin_token(flags.admin_token_file.or(file.admin_token_file))?,
            hostid: flags.hostid.or(file.hostid).unwrap_or_else(host_name),
            heartbeat_ms: flags.heartbeat_ms.or(file.heartbeat_ms).unwrap_or(DEFAULT_HEARTBEAT_MS),
            max_clock_offset_ms: flags
                .max_clock_offset_ms
                .or(file.max_clock_offset_ms)
                .unwrap_or(DEFAULT_MAX_CLOCK_OFFSET_MS),
            election_min_ms: flags
                .election_min_ms
                .or(file.election_min_ms)
                .unwrap_or(DEFAULT_ELECTION_MIN_MS),
            election_max_ms: flags
                .election_max_ms
                .or(file.election_max_ms)
                .unwrap_or(DEFAULT_ELECTION_MAX_MS),
            tls: TlsSettings::resolve(TlsFlags {
                tls_cert: flags.tls_cert.or(file.tls_cert),
                tls_key: flags.tls_key.or(file.tls_key),
                tls_client_ca: flags.tls_client_ca.or(file.tls_client_ca),
                peer_tls_cert: flags.peer_tls_cert.or(file.peer_tls_cert),
                peer_tls_key: flags.peer_tls_key.or(file.peer_tls_key),
                peer_tls_ca: flags.peer_tls_ca.or(file.peer_tls_ca),
            })?,
            report_log,
            report_max_bytes,
            peer_route,
            snapshot_every,
            snapshot_log_bytes,
            join,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ms == 0 || self.election_min_ms <= self.heartbeat_ms {
            return Err(config_error(
                "--election-min-ms",
                format!(
                    "{} ms must be longer than the heartbeat ({} ms, itself above 0)",
                    self.election_min_ms, self.heartbeat_ms
                ),
            ));
        }
        if !(MIN_CLOCK_OFFSET_MS..=MAX_CLOCK_OFFSET_MS).contains(&self.max_clock_offset_ms) {
            return Err(config_error(
                "--max-clock-offset-ms",
                format!(
                    "{} ms is outside {MIN_CLOCK_OFFSET_MS}..={MAX_CLOCK_OFFSET_MS} (below, the \
                     noise of measuring a clock over the network would stop every leader)",
                    self.max_clock_offset_ms
                ),
            ));
        }
        if self.election_max_ms <= self.election_min_ms {
            return Err(config_error(
                "--election-max-ms",
                format!("{} ms must be above --election-min-ms", self.election_max_ms),
            ));
        }
        if let Some(addr) = &self.advertise_client {
            let port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                return Err(config_error(
                    "--advertise-client",
                    format!("`{addr}` is not HOST:PORT"),
                ));
            }
        }
        let addrs = [
            ("--listen", self.listen),
            ("--peer-listen", self.peer_listen),
            ("--http-listen", self.http_listen),
        ];
        for (i, (name, addr)) in addrs.iter().enumerate() {
            if addr.port() != 0 && addrs[..i].iter().any(|(_, other)| other == addr) {
                return Err(config_error(name, format!("{addr} is used by another listener")));
            }
        }
        Ok(())
    }
}

/// The error for a setting given nowhere.
fn required(setting: &str) -> ConfigError {
    config_error(setting, "missing: give the flag, its QLM_ variable or a --config key")
}

/// Who this node is and which cluster it belongs to.
struct Membership {
    id: u64,
    initial_cluster: BTreeMap<u64, String>,
    join: bool,
    peer_route: BTreeMap<u64, String>,
}

impl Membership {
    fn resolve(flags: &mut NodeFlags, file: &mut FileConfig) -> Result<Membership, ConfigError> {
        let id = match flags.id.or(file.id) {
            Some(id) => id,
            None if flags.id_from_hostname || file.id_from_hostname => {
                id_from_host_name(&host_name())?
            }
            None => return Err(required("--id")),
        };
        let initial = flags
            .initial_cluster
            .take()
            .or(file.initial_cluster.take())
            .ok_or_else(|| required("--initial-cluster"))?;
        let initial_cluster = parse_initial_cluster(&initial)?;
        let join = flags.join || file.join;
        if !initial_cluster.contains_key(&id) && !join {
            return Err(config_error(
                "--id",
                format!(
                    "{id} is not a member of --initial-cluster ({initial}); a node that joins \
                     a running cluster needs --join"
                ),
            ));
        }
        let peer_route = match flags.peer_route.take().or(file.peer_route.take()) {
            Some(list) if !list.trim().is_empty() => parse_id_addrs(&list, "--peer-route")?,
            _ => BTreeMap::new(),
        };
        Ok(Membership { id, initial_cluster, join, peer_route })
    }
}

/// Where the node keeps its data, and how much of it.
struct Storage {
    data_dir: PathBuf,
    snapshot_every: u64,
    snapshot_log_bytes: u64,
    report_log: Option<PathBuf>,
    report_max_bytes: u64,
}

impl Storage {
    fn resolve(flags: &mut NodeFlags, file: &mut FileConfig) -> Result<Storage, ConfigError> {
        let snapshot_every = flags
            .snapshot_every
            .or(file.snapshot_every)
            .unwrap_or(qlm_raft::SNAPSHOT_EVERY_ENTRIES);
        if snapshot_every == 0 {
            return Err(config_error("--snapshot-every", "must be at least 1"));
        }
        let snapshot_log_mb =
            flags.snapshot_log_mb.or(file.snapshot_log_mb).unwrap_or(qlm_raft::SNAPSHOT_LOG_MIB);
        if snapshot_log_mb == 0 {
            return Err(config_error("--snapshot-log-mb", "must be at least 1"));
        }
        let data_dir =
            flags.data_dir.take().or(file.data_dir.take()).ok_or_else(|| required("--data-dir"))?;
        let report_log = match flags.report_log.take().or(file.report_log.take()) {
            Some(path) if path.as_os_str() == "none" => None,
            Some(path) => Some(path),
            None => Some(data_dir.join("report").join("usage.jsonl")),
        };
        let report_max_mb = flags
            .report_max_mb
            .or(file.report_max_mb)
            .unwrap_or(crate::report_log::DEFAULT_REPORT_MAX_MB);
        if report_max_mb == 0 {
            return Err(config_error("--report-max-mb", "0 MiB: give at least 1"));
        }
        Ok(Storage {
            data_dir,
            snapshot_every,
            snapshot_log_bytes: snapshot_log_mb.saturating_mul(1024 * 1024),
            report_log,
            report_max_bytes: report_max_mb.saturating_mul(1024 * 1024),
        })
    }
}

/// The machine's host name (the default host id).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The node id of a StatefulSet pod: `qlm-0` is 1, `qlm-2` is 3 (the trailing number + 1).
pub fn id_from_host_name(name: &str) -> Result<u64, ConfigError> {
    let digits: String = name.chars().rev().take_while(char::is_ascii_digit).collect();
    let ordinal = digits.chars().rev().collect::<String>().parse::<u64>().map_err(|_| {
        config_error(
            "--id-from-hostname",
            format!("the host name `{name}` does not end in a number (a StatefulSet pod's does)"),
        )
    })?;
    ordinal.checked_add(1).ok_or_else(|| {
        config_error("--id-from-hostname", format!("the host name `{name}`: number too large"))
    })
}

/// The admin token: the first line of the token file, else `QLM_ADMIN_TOKEN`.
fn admin_token(file: Option<PathBuf>) -> Result<Option<String>, ConfigError> {
    let token = match &file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                config_error("--admin-token-file", format!("cannot read {}: {e}", path.display()))
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        None => std::env::var("QLM_ADMIN_TOKEN").unwrap_or_default().trim().to_owned(),
    };
    // A token no call could present is refused at start, not at every call.
    crate::admin::check_token_length(&token).map_err(|reason| {
        config_error(if file.is_some() { "--admin-token-file" } else { "QLM_ADMIN_TOKEN" }, reason)
    })?;
    Ok((!token.is_empty()).then_some(token))
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_error("--config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| config_error("--config", format!("{}: {e}", path.display())))
}

/// Parses `1=host1:7401,2=host2:7401,3=host3:7401`.
pub fn parse_initial_cluster(list: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    parse_id_addrs(list, "--initial-cluster")
}

/// Parses an `ID=HOST:PORT,...` list given as `setting`.
fn parse_id_addrs(list: &str, setting: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let fail = |reason: String| config_error(setting, reason);
    let mut members = BTreeMap::new();
    for entry in list.split(',').map(str::trim) {
        let (id, addr) =
            entry.split_once('=').ok_or_else(|| fail(format!("`{entry}` is not ID=HOST:PORT")))?;
        let id: u64 = match id.trim().parse() {
            Ok(0) | Err(_) => {
                return Err(fail(format!("`{id}` in `{entry}` is not an id (1, 2, ...)")));
            }
            Ok(id) => id,
        };
        let addr = addr.trim();
        let port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(fail(format!("`{addr}` in `{entry}` is not HOST:PORT")));
        }
        if members.insert(id, addr.to_owned()).is_some() {
            return Err(fail(format!("id {id} appears twice")));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests;
