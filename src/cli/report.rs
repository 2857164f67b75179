//! `qlm report [--from T] [--to T] [--feature F] [--csv|--json] FILE|DIR...`: the usage
//! summary of report log files, as FlexLM's report tools give it (the maths is in
//! `qlm_report::summary`). Offline: it reads files, it does not ask the cluster.
//!
//! A line that is not a report line is named on stderr (`file:line: why`) and skipped; a file
//! that cannot be read, or a bad `--from`/`--to`, is bad input (exit 2).

use std::path::PathBuf;

use clap::Args;
use qlm_report::summary::{Summary, SummaryOptions, read_lines, report_files, summarize};
use qlm_report::time::parse_instant;

use crate::{BadInput, Outcome, Report};

#[derive(Args)]
pub struct ReportArgs {
    /// Start of the period, UTC (2026-11-01 or 2026-11-01T08:00Z) [default: the first line].
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the period, exclusive, UTC [default: the last line].
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Only this feature.
    #[arg(long, value_name = "FEATURE")]
    feature: Option<String>,
    /// Print CSV (one table; the `record` column says feature, denial or user).
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Report log files, or directories holding them (usage.jsonl and its rotations). Files
    /// of several nodes may be given together: each event counts once.
    #[arg(required = true, value_name = "FILE|DIR")]
    files: Vec<PathBuf>,
}

pub fn run(args: ReportArgs, out: &mut Report) -> Result<Outcome, BadInput> {
    let instant = |flag: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(parse_instant)
            .transpose()
            .map_err(|e| BadInput(format!("{flag}: {e}")))
    };
    let options = SummaryOptions {
        from: instant("--from", &args.from)?,
        to: instant("--to", &args.to)?,
        feature: args.feature,
    };
    if let (Some(from), Some(to)) = (options.from, options.to)
        && to <= from
    {
        return Err(BadInput(format!("--to ({to}) is not after --from ({from})")));
    }
    let files = report_files(&args.files).map_err(BadInput)?;
    if files.is_empty() {
        return Err(BadInput("no report log file (*.jsonl, *.jsonl.N) in the paths given".into()));
    }
    let lines = read_lines(&files, &mut |warning| eprintln!("qlm: warning: {warning}"))
        .map_err(BadInput)?;
    let summary = summarize(lines, &options);
    for gap in &summary.gaps {
        eprintln!(
            "qlm: warning: node {} did not write log entries {}..={} (see its `gap` line at {}); \
             give another node's files too for those events",
            gap.node, gap.from_index, gap.to_index, gap.time
        );
    }
    if args.json {
        let json = serde_json::to_string_pretty(&summary).map_err(BadInput::from)?;
        out.line(json);
    } else if args.csv {
        csv(&summary, out);
    } else {
        table(&summary, out);
    }
    Ok(Outcome::Ok)
}

fn table(summary: &Summary, out: &mut Report) {
    out.line(format!(
        "Usage from {} to {} ({} lines read)",
        summary.from, summary.to, summary.lines
    ));
    out.line("");
    let rows: Vec<Vec<String>> = summary
        .features
        .iter()
        .map(|f| {
            vec![
                f.feature.clone(),
                f.peak_in_use.to_string(),
                f.peak_at.clone(),
                format!("{:.2}", f.seat_hours),
                f.checkouts.to_string(),
                f.denials.to_string(),
                f.expiries.to_string(),
                f.removals.to_string(),
            ]
        })
        .collect();
    let header = [
        "FEATURE",
        "PEAK",
        "PEAK AT",
        "SEAT-HOURS",
        "CHECKOUTS",
        "DENIALS",
        "EXPIRIES",
        "REMOVALS",
    ];
    print_table(&header, &rows, out);

    let denials: Vec<Vec<String>> = summary
        .features
        .iter()
        .flat_map(|f| {
            f.denials_by_reason
                .iter()
                .map(|(reason, n)| vec![f.feature.clone(), reason.clone(), n.to_string()])
        })
        .collect();
    if !denials.is_empty() {
        out.line("");
        out.line("Denials by reason");
        print_table(&["FEATURE", "REASON", "DENIALS"], &denials, out);
    }

    out.line("");
    out.line("Usage by user");
    let users: Vec<Vec<String>> = summary
        .users
        .iter()
        .map(|u| {
            vec![
                u.user.clone(),
                u.feature.clone(),
                u.checkouts.to_string(),
                u.denials.to_string(),
                format!("{:.2}", u.hours),
                format!("{:.2}", u.seat_hours),
            ]
        })
        .collect();
    print_table(&["USER", "FEATURE", "CHECKOUTS", "DENIALS", "HOURS", "SEAT-HOURS"], &users, out);
}

/// Columns padded to their widest cell; numbers right-aligned.
fn print_table(header: &[&str], rows: &[Vec<String>], out: &mut Report) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let numeric = |column: usize| {
        !rows.is_empty()
            && rows.iter().all(|r| r[column].chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    let render = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if numeric(i) {
                    format!("{cell:>w$}", w = widths[i])
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    out.line(render(header.to_vec()));
    for row in rows {
        out.line(render(row.iter().map(String::as_str).collect()));
    }
}

fn csv(summary: &Summary, out: &mut Report) {
    out.line(
        "record,feature,user,reason,peak_in_use,peak_at,seat_hours,hours,checkouts,denials,\
         expiries,removals",
    );
    for f in &summary.features {
        out.line(format!(
            "feature,{},,,{},{},{:.4},,{},{},{},{}",
            field(&f.feature),
            f.peak_in_use,
            f.peak_at,
            f.seat_hours,
            f.checkouts,
            f.denials,
            f.expiries,
            f.removals
        ));
        for (reason, n) in &f.denials_by_reason {
            out.line(format!("denial,{},,{},,,,,,{n},,", field(&f.feature), field(reason)));
        }
    }
    for u in &summary.users {
        out.line(format!(
            "user,{},{},,,,{:.4},{:.4},{},{},,",
            field(&u.feature),
            field(&u.user),
            u.seat_hours,
            u.hours,
            u.checkouts,
            u.denials
        ));
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
