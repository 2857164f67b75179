//! `qlm`: the QuorumLM command line, for vendors (`qlm license ...`), admins (`status`,
//! `admin`, `cluster`) and scripts (`checkout`, `run`).
//!
//! Exit codes are a contract scripts rely on (docs/DESIGN.md, "Command line"): see [`Outcome`] and
//! [`EXIT_BAD_INPUT`]: 0 ok, 1 denied or refused, 2 bad usage or input (clap's own usage
//! errors too, and a missing server list), 3 cluster unreachable. `qlm run` exits with its
//! command's code.
//!
//! - `license`: vendor tools, offline
//! - `hostid`: this machine's host ids for node-locked lines (lmutil lmhostid), offline
//! - `status`: lmstat -a
//! - `checkout`, `run`: hold seats for a script
//! - `admin`, `cluster`: lmremove, reload, membership
//! - `report`: the usage summary of report log files (offline)
//! - `health`: the gRPC health check of each server (container healthchecks)
//! - `connect`: the client, the runtime, and the table from client errors to exit codes
//! - `cert`: a cluster CA and node certificates for TLS

mod admin;
mod cert;
mod checkout;
mod cluster;
mod connect;
mod health;
mod hostid;
mod license;
mod report;
mod run;
mod status;

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for bad usage or unreadable input (a missing file, a bad key file). Messages go
/// to stderr and name the file.
pub const EXIT_BAD_INPUT: u8 = 2;

/// How a command that ran ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: everything checked is valid, or the work is done.
    Ok,
    /// Exit 1: something was denied or refused (the output says what and why).
    Refused,
    /// Exit 3: no server of the cluster answered.
    Unreachable,
    /// Exit with this code (`qlm run`: the command's own).
    Exit(u8),
}

impl Outcome {
    fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Refused => 1,
            Outcome::Unreachable => 3,
            Outcome::Exit(code) => code,
        }
    }
}

/// A command that could not do its work because of its input: exit 2, message on stderr.
#[derive(Debug)]
pub struct BadInput(pub String);

impl<E: std::error::Error> From<E> for BadInput {
    fn from(error: E) -> BadInput {
        BadInput(error.to_string())
    }
}

/// What a command prints on stdout. It is collected and written at the end, so a closed pipe
/// (`qlm license show x.lic | head`) ends the output quietly instead of panicking in
/// `println!`.
#[derive(Debug, Default)]
pub struct Report(String);

impl Report {
    /// Adds one line.
    pub fn line(&mut self, text: impl fmt::Display) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "{text}");
    }

    /// Adds text as it is (a whole file).
    pub fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }
}

#[derive(Parser)]
#[command(name = "qlm", version, about = "QuorumLM floating-license command line")]
struct Cli {
    /// License servers to talk to, comma separated (host:7400, or FlexLM's 7400@host).
    #[arg(long, global = true, env = "QLM_SERVERS", value_name = "HOST:PORT,...")]
    servers: Option<String>,

    #[command(flatten)]
    tls: connect::TlsArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Vendor tools: generate keys, sign, verify and show license files.
    #[command(subcommand)]
    License(license::LicenseCommand),
    /// Print this machine's host ids, for a node-locked license line (lmutil lmhostid).
    Hostid {
        /// Print JSON instead of one id per line.
        #[arg(long)]
        json: bool,
    },
    /// Show features, seats in use, holders, queues and the cluster (lmstat -a).
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Read the answering node's replica at once (works without a leader; may lag).
        #[arg(long)]
        stale: bool,
    },
    /// Check a feature out and hold it until Ctrl-C or SIGTERM, then check it in.
    Checkout(checkout::CheckoutArgs),
    /// Hold a checkout while COMMAND runs; exit with its exit code.
    Run {
        #[command(flatten)]
        checkout: checkout::CheckoutArgs,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Administration: remove checkouts, reload the license files (needs the admin token).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Cluster membership: list, add and remove nodes.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Make a cluster CA and node certificates for TLS (docs/TLS.md).
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Summarize usage report log files: peak seats, seat-hours, denials, use per user.
    Report(report::ReportArgs),
    /// Ask each server's gRPC health service: exit 0 all SERVING, 1 one not serving, 3 one
    /// unreachable.
    Health(health::HealthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    connect::set_tls(cli.tls);
    let mut report = Report::default();
    let result = match cli.command {
        Command::License(command) => license::run(command, &mut report),
        Command::Hostid { json } => hostid::run(json, &mut report),
        Command::Status { json, stale } => {
            status::run(cli.servers.as_deref(), json, stale, &mut report)
        }
        Command::Checkout(args) => checkout::run(cli.servers.as_deref(), args),
        Command::Run { checkout, command } => run::run(cli.servers.as_deref(), checkout, command),
        Command::Admin(command) => admin::run(cli.servers.as_deref(), command, &mut report),
        Command::Cluster(command) => cluster::run(cli.servers.as_deref(), command, &mut report),
        Command::Cert(command) => cert::run(command, &mut report),
        Command::Report(args) => report::run(args, &mut report),
        Command::Health(args) => health::run(cli.servers.as_deref(), args, &mut report),
    };
    if let Err(error) = io::stdout().lock().write_all(report.0.as_bytes())
        && error.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("qlm: error: cannot write to standard output: {error}");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(BadInput(message)) => {
            eprintln!("qlm: error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
