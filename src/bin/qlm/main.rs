//! `qlm`: the QuorumLM command line, for vendors (`qlm license ...`) and, as the server side
//! lands, for admins and scripts (`status`, `checkout`, `run`, `admin`, `cluster`).
//!
//! Exit codes are a contract scripts rely on (DESIGN.md, "Command line"): see [`Outcome`] and
//! [`EXIT_BAD_INPUT`]. clap's own usage errors exit with 2 as well.

mod license;

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
}

impl Outcome {
    fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Refused => 1,
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

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Vendor tools: generate keys, sign, verify and show license files.
    #[command(subcommand)]
    License(license::LicenseCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut report = Report::default();
    let result = match cli.command {
        Command::License(command) => license::run(command, &mut report),
    };
    if let Err(error) = io::stdout().lock().write_all(report.0.as_bytes()) {
        if error.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("qlm: error: cannot write to standard output: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(BadInput(message)) => {
            eprintln!("qlm: error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
