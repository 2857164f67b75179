//! `qlm license show`: what a license file grants, as a table an admin reads like `lmstat`'s
//! feature list, or as JSON for scripts.
//!
//! Without `--pubkey` the signatures are not checked (the admin may not have the vendor key
//! at hand) and the output says so; with it, each row says whether the line serves.

use std::path::{Path, PathBuf};

use qlm_license::{
    LineError, ParsedLine, TrustedKeys, parse_license_text, read_license_file, verify_license_text,
};
use serde::Serialize;

use super::seats;
use crate::{BadInput, Outcome, Report};

/// Whether a row's line serves.
enum Status {
    /// No public key given: signature not checked.
    Unchecked,
    /// Signed by the trusted key with this fingerprint.
    Valid(String),
    /// Refused for this reason.
    Refused(LineError),
}

impl Status {
    fn word(&self) -> &'static str {
        match self {
            Status::Unchecked => "unchecked",
            Status::Valid(_) => "valid",
            Status::Refused(_) => "REFUSED",
        }
    }
}

struct Row {
    parsed: ParsedLine,
    status: Status,
}

pub fn show(
    file: &Path,
    pubkeys: &[PathBuf],
    json: bool,
    out: &mut Report,
) -> Result<Outcome, BadInput> {
    let trusted = if pubkeys.is_empty() { None } else { Some(TrustedKeys::read_files(pubkeys)?) };
    let text = read_license_file(file)?;
    let origin = file.display().to_string();
    // One verdict per logical line, in the same order as the parse (verify_license_text's
    // contract), so the two can be zipped.
    let verdicts = trusted.as_ref().map(|t| verify_license_text(&origin, &text, t));
    let mut rows = Vec::new();
    let mut malformed = Vec::new();
    for (index, parsed) in parse_license_text(&origin, &text).into_iter().enumerate() {
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                malformed.push(error);
                continue;
            }
        };
        let status = match verdicts.as_ref().and_then(|v| v.get(index)) {
            None => Status::Unchecked,
            Some(Ok(verified)) => Status::Valid(verified.signer.fingerprint()),
            Some(Err(error)) => Status::Refused(error.clone()),
        };
        rows.push(Row { parsed, status });
    }
    if json {
        print_json(&origin, trusted.is_some(), &rows, &malformed, out)?;
    } else {
        print_table(&origin, trusted.is_some(), &rows, &malformed, out);
    }
    let any_refused = rows.iter().any(|r| matches!(r.status, Status::Refused(_)));
    Ok(if any_refused || !malformed.is_empty() { Outcome::Refused } else { Outcome::Ok })
}

fn print_table(
    origin: &str,
    checked: bool,
    rows: &[Row],
    malformed: &[LineError],
    out: &mut Report,
) {
    let mut header = vec!["LINE"];
    if checked {
        header.push("STATUS");
    }
    header.extend([
        "FEATURE",
        "VERSION",
        "VENDOR",
        "COUNT",
        "START",
        "EXPIRES",
        "HOSTID",
        "DUP_GROUP",
        "CUSTOMER",
    ]);
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let pool = &row.parsed.pool;
        let mut cells = vec![row.parsed.line.to_string()];
        if checked {
            cells.push(row.status.word().to_owned());
        }
        cells.extend([
            pool.feature.clone(),
            pool.version.to_string(),
            pool.vendor.clone(),
            seats(pool),
            pool.start.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            pool.expires.to_string(),
            pool.hostid.to_string(),
            pool.dup_group.as_str().to_owned(),
            pool.customer
                .as_deref()
                .map_or_else(|| "-".to_owned(), |c| c.escape_debug().to_string()),
        ]);
        table.push(cells);
    }
    out.line(format_args!("{origin}: {} FEATURE line(s)", rows.len() + malformed.len()));
    if !rows.is_empty() {
        let widths: Vec<usize> = (0..table[0].len())
            .map(|col| table.iter().map(|r| r[col].chars().count()).max().unwrap_or(0))
            .collect();
        for cells in &table {
            let line: Vec<String> =
                cells.iter().zip(&widths).map(|(cell, &w)| format!("{cell:<w$}")).collect();
            out.line(line.join("  ").trim_end());
        }
    }
    if !checked && !rows.is_empty() {
        out.line("(signatures not checked; add --pubkey vendor.pub to check them)");
    }
    let refused: Vec<&LineError> = rows
        .iter()
        .filter_map(|r| match &r.status {
            Status::Refused(error) => Some(error),
            _ => None,
        })
        .chain(malformed)
        .collect();
    if !refused.is_empty() {
        out.line("refused:");
        for error in refused {
            out.line(format_args!("  {error}"));
        }
    }
}

#[derive(Serialize)]
struct JsonShow<'a> {
    file: &'a str,
    signatures_checked: bool,
    lines: Vec<JsonLine<'a>>,
    malformed: &'a [LineError],
}

#[derive(Serialize)]
struct JsonLine<'a> {
    line: usize,
    status: &'static str,
    feature: &'a str,
    vendor: &'a str,
    version: String,
    seats: u32,
    unit: &'static str,
    /// `count=uncounted`: checked by the application on a machine of `hostid`.
    node_locked: bool,
    start: Option<String>,
    expires: String,
    issued: Option<String>,
    hostid: String,
    dup_group: &'static str,
    customer: Option<&'a str>,
    notes: Option<&'a str>,
    max_borrow_hours: u32,
    pool_id: &'a str,
    signer: Option<&'a str>,
    refused: Option<&'a LineError>,
}

fn print_json(
    origin: &str,
    checked: bool,
    rows: &[Row],
    malformed: &[LineError],
    out: &mut Report,
) -> Result<(), BadInput> {
    let lines = rows
        .iter()
        .map(|row| {
            let pool = &row.parsed.pool;
            JsonLine {
                line: row.parsed.line,
                status: match row.status {
                    Status::Refused(_) => "refused",
                    _ => row.status.word(),
                },
                feature: &pool.feature,
                vendor: &pool.vendor,
                version: pool.version.to_string(),
                seats: pool.seats,
                unit: pool.unit.as_str(),
                node_locked: pool.is_node_locked(),
                start: pool.start.map(|d| d.to_string()),
                expires: pool.expires.to_string(),
                issued: pool.issued.map(|d| d.to_string()),
                hostid: pool.hostid.to_string(),
                dup_group: pool.dup_group.as_str(),
                customer: pool.customer.as_deref(),
                notes: pool.notes.as_deref(),
                max_borrow_hours: pool.max_borrow_hours,
                pool_id: &pool.id.0,
                signer: match &row.status {
                    Status::Valid(fingerprint) => Some(fingerprint),
                    _ => None,
                },
                refused: match &row.status {
                    Status::Refused(error) => Some(error),
                    _ => None,
                },
            }
        })
        .collect();
    let doc = JsonShow { file: origin, signatures_checked: checked, lines, malformed };
    let text = serde_json::to_string_pretty(&doc)?;
    out.line(text);
    Ok(())
}
