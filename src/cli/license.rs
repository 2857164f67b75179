//! `qlm license ...`: the vendor's tools, and the admin's way to check a license file before
//! installing it.
//!
//! - `keygen --out DIR`: DIR/vendor.key (secret, mode 0600) and DIR/vendor.pub; never
//!   overwrites a key.
//! - `sign --key vendor.key IN.lic [-o OUT.lic]`: signs every FEATURE line; refuses the whole
//!   file (exit 1, every bad line on stderr) if any line is malformed.
//! - `verify --pubkey vendor.pub FILE.lic`: exit 0 when every line serves, 1 when any line is
//!   refused (each listed on stdout with its reason) or the file has no FEATURE line. A
//!   node-locked line (`count=uncounted`) is valid when its signature verifies; the output says
//!   that the application checks it on its machine and servers do not serve it.
//! - `show FILE.lic [--pubkey vendor.pub] [--json]`: what the file grants, one row per line.
//!
//! Unreadable input (a missing file, a bad key file) exits 2 with a message naming the file.

mod show;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use qlm_license::{
    Expiry, Pool, TrustedKeys, VendorKey, VerifiedLine, parse_license_text, read_license_file,
    sign_license_text, verify_license_text, write_key_pair,
};

use crate::{BadInput, Outcome, Report};

#[derive(Subcommand)]
pub enum LicenseCommand {
    /// Generate a vendor key pair: DIR/vendor.key (secret, mode 0600) and DIR/vendor.pub.
    Keygen {
        /// Directory to write the key files into (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign every FEATURE line of a license file (replacing any sig=).
    Sign {
        /// The vendor's secret key file.
        #[arg(long, value_name = "vendor.key")]
        key: PathBuf,
        /// The license file to sign.
        #[arg(value_name = "IN.lic")]
        input: PathBuf,
        /// Where to write the signed file (default: standard output).
        #[arg(short = 'o', long, value_name = "OUT.lic")]
        output: Option<PathBuf>,
    },
    /// Check every line of a license file: exit 0 if all serve, 1 if any is refused.
    Verify {
        /// A trusted vendor public key file (repeat for several vendors).
        #[arg(long = "pubkey", value_name = "vendor.pub", required = true)]
        pubkeys: Vec<PathBuf>,
        /// The license file to check.
        #[arg(value_name = "FILE.lic")]
        file: PathBuf,
    },
    /// Print what a license file grants; with --pubkey, whether each line serves (exit 1 if
    /// any line is refused).
    Show {
        /// The license file to show.
        #[arg(value_name = "FILE.lic")]
        file: PathBuf,
        /// Check signatures with this vendor public key file (repeatable).
        #[arg(long = "pubkey", value_name = "vendor.pub")]
        pubkeys: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: LicenseCommand, out: &mut Report) -> Result<Outcome, BadInput> {
    match command {
        LicenseCommand::Keygen { out: out_dir } => keygen(&out_dir, out),
        LicenseCommand::Sign { key, input, output } => sign(&key, &input, output.as_deref(), out),
        LicenseCommand::Verify { pubkeys, file } => verify(&pubkeys, &file, out),
        LicenseCommand::Show { file, pubkeys, json } => show::show(&file, &pubkeys, json, out),
    }
}

fn keygen(dir: &Path, out: &mut Report) -> Result<Outcome, BadInput> {
    let key = VendorKey::generate()
        .map_err(|e| BadInput(format!("cannot get random bytes from the system: {e}")))?;
    let paths = write_key_pair(dir, &key)?;
    out.line(format_args!(
        "wrote {} (secret: keep it private; it signs licenses)",
        paths.secret.display()
    ));
    out.line(format_args!("wrote {} (public: give it to license servers)", paths.public.display()));
    out.line(format_args!("key fingerprint {}", key.public_key().fingerprint()));
    Ok(Outcome::Ok)
}

fn sign(
    key: &Path,
    input: &Path,
    output: Option<&Path>,
    out: &mut Report,
) -> Result<Outcome, BadInput> {
    warn_if_readable_by_others(key);
    let key = VendorKey::read_file(key)?;
    let text = read_license_file(input)?;
    let origin = input.display().to_string();
    let signed = match sign_license_text(&origin, &text, &key) {
        Ok(signed) => signed,
        Err(errors) => {
            eprintln!("{origin}: not signed: {} line(s) must be fixed first:", errors.len());
            for error in errors {
                eprintln!("  {error}");
            }
            return Ok(Outcome::Refused);
        }
    };
    let lines = parse_license_text(&origin, &signed).len();
    match output {
        Some(path) => {
            fs::write(path, &signed).map_err(|e| {
                BadInput(format!("cannot write signed license file {}: {e}", path.display()))
            })?;
            eprintln!("signed {lines} FEATURE line(s) into {}", path.display());
        }
        None => out.raw(&signed),
    }
    Ok(Outcome::Ok)
}

/// Warns (as ssh does, without refusing) when a secret key file is readable by others.
fn warn_if_readable_by_others(key: &Path) {
    if let Ok(metadata) = fs::metadata(key) {
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "qlm: warning: {} is readable by others (mode {:o}); chmod 600 it",
                key.display(),
                mode & 0o777
            );
        }
    }
}

fn verify(pubkeys: &[PathBuf], file: &Path, out: &mut Report) -> Result<Outcome, BadInput> {
    let trusted = TrustedKeys::read_files(pubkeys)?;
    let text = read_license_file(file)?;
    let origin = file.display().to_string();
    let results = verify_license_text(&origin, &text, &trusted);
    if results.is_empty() {
        out.line(format_args!("{origin}: no FEATURE lines: the file grants nothing"));
        return Ok(Outcome::Refused);
    }
    let refused = results.iter().filter(|r| r.is_err()).count();
    for result in &results {
        match result {
            Ok(verified) => {
                out.line(format_args!("valid    {}", describe_valid(&origin, verified)))
            }
            Err(error) => out.line(format_args!("REFUSED  {error}")),
        }
    }
    out.line(format_args!(
        "{origin}: {} line(s) valid, {refused} refused",
        results.len() - refused
    ));
    Ok(if refused == 0 { Outcome::Ok } else { Outcome::Refused })
}

fn describe_valid(origin: &str, verified: &VerifiedLine) -> String {
    let pool = &verified.parsed.pool;
    let served_by = match pool.is_node_locked() {
        true => " (checked by the application on that machine; servers do not serve it)",
        false => "",
    };
    format!(
        "{origin}:{}: {} {} ({}), {}, {}, signed by key {}{served_by}",
        verified.parsed.line,
        pool.feature,
        pool.version,
        pool.vendor,
        seats(pool),
        validity(pool),
        verified.signer.fingerprint()
    )
}

/// `25 seats` / `100 tokens` / `node-locked (hostid 001a2b3c4d5e,HOSTNAME=build7)`.
pub(crate) fn seats(pool: &Pool) -> String {
    match pool.is_node_locked() {
        true => format!("node-locked (hostid {})", pool.hostid),
        false => format!("{} {}", pool.seats, pool.unit.as_str()),
    }
}

/// `expires 2027-12-31`, `from 2026-11-01, permanent`.
fn validity(pool: &Pool) -> String {
    let start = pool.start.map(|d| format!("from {d}, ")).unwrap_or_default();
    match pool.expires {
        Expiry::On(date) => format!("{start}expires {date}"),
        Expiry::Permanent => format!("{start}permanent"),
    }
}
