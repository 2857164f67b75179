//! The failover benchmark's output: each run's line, the table of medians and worsts, and the
//! JSON report.

use std::time::Duration;

use serde_json::json;

use crate::{CLIENTS, RunResult, SEATS};
use cluster_tests::failover::median_and_worst;

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

/// One table line: median, worst and every run's value (runs where it did not happen show
/// `-` and count as the worst).
fn table_line(name: &str, unit: &str, values: &[Option<f64>]) -> serde_json::Value {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let missing = values.len() - known.len();
    let raw: Vec<String> =
        values.iter().map(|v| v.map_or("-".into(), |v| format!("{v:.0}"))).collect();
    let (median, worst) = median_and_worst(&known).unwrap_or((f64::NAN, f64::NAN));
    let worst_text = if missing > 0 { "never".to_owned() } else { format!("{worst:.0} {unit}") };
    println!(
        "{name:<48} median {median:>6.0} {unit:<5} worst {worst_text:>10}  (runs: {})",
        raw.join(", ")
    );
    json!({
        "measure": name,
        "unit": unit,
        "median": median,
        "worst": if missing > 0 { serde_json::Value::Null } else { json!(worst) },
        "runs": values,
    })
}

/// Prints what run `run` measured.
pub(crate) fn print_run(run: usize, result: &RunResult) {
    let m = &result.measures;
    let show = |d: Option<Duration>| {
        d.map_or("never".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
    };
    let votes = &result.votes;
    println!(
        "run {run}: killed node {}; new leader {} named after {} ({} candidacies, \
         {} vote(s) refused for the lease, {} for the log; term +{}); next grant {}; \
         all served {}; longest gap {} (client {}); failed {}, denied {}; {} calls, \
         {} done before the kill, {} under way at it; restarted node serving after \
         {} ({} candidacies); {} spurious candidacies before the kill",
        result.killed,
        result.election.new_leader.map_or("?".into(), |id| id.to_string()),
        show(result.election.new_leader_after),
        votes.candidacies,
        votes.lease_refusals,
        votes.log_refusals,
        result.election.term_rise.map_or("?".into(), |t| t.to_string()),
        show(m.next_grant),
        show(m.all_served),
        show(m.longest_gap),
        m.longest_gap_client.map_or("-".into(), |c| c.to_string()),
        m.failed,
        m.denied,
        result.calls,
        m.done_before_kill,
        m.in_flight_at_kill,
        show(result.serving_after),
        result.restart_candidacies,
        result.spurious,
    );
    if let Some(failure) = &m.first_failure {
        println!("  first failure: {failure}");
    }
    if let Some(failure) = &result.marker_error {
        println!("  the marker failed, so the restart was not timed: {failure}");
    }
}

/// Prints the table of every measure over the runs; returns its lines for the report.
pub(crate) fn measure_lines(results: &[RunResult]) -> Vec<serde_json::Value> {
    let column = |f: &dyn Fn(&RunResult) -> Option<f64>| results.iter().map(f).collect::<Vec<_>>();
    vec![
        table_line(
            "kill -9 leader -> new leader named (survivor)",
            "ms",
            &column(&|r| ms(r.election.new_leader_after)),
        ),
        table_line(
            "kill -9 leader -> next granted checkout",
            "ms",
            &column(&|r| ms(r.measures.next_grant)),
        ),
        table_line(
            "kill -9 leader -> all 8 clients served again",
            "ms",
            &column(&|r| ms(r.measures.all_served)),
        ),
        table_line(
            "longest gap of a client across the kill",
            "ms",
            &column(&|r| ms(r.measures.longest_gap)),
        ),
        table_line(
            "failed calls (errors the application saw)",
            "calls",
            &column(&|r| Some(r.measures.failed as f64)),
        ),
        table_line(
            "restart of the killed node -> serving",
            "ms",
            &column(&|r| ms(r.serving_after)),
        ),
        table_line(
            "candidacies (1 = the first candidate won)",
            "",
            &column(&|r| Some(r.votes.candidacies as f64)),
        ),
    ]
}

/// The JSON report: the settings, the table and every run's figures.
pub(crate) fn json_report(
    args: &[String],
    budget: Duration,
    warmup: Duration,
    runs: usize,
    results: &[RunResult],
    lines: Vec<serde_json::Value>,
) -> serde_json::Value {
    json!({
        "benchmark": "failover: kill -9 of the leader under 8 closed-loop clients",
        "clients": CLIENTS,
        "seats": SEATS,
        "qlmd_args": args,
        "client_failover_budget_ms": budget.as_millis() as u64,
        "warmup_ms": warmup.as_millis() as u64,
        "runs_asked": runs,
        "runs_done": results.len(),
        "measures": lines,
        "runs": results.iter().map(|r| json!({
            "killed": r.killed,
            "new_leader": r.election.new_leader,
            "new_leader_named_ms": ms(r.election.new_leader_after),
            "term_rise": r.election.term_rise,
            "candidacies": r.votes.candidacies,
            "vote_refusals_lease": r.votes.lease_refusals,
            "vote_refusals_log": r.votes.log_refusals,
            "restart_candidacies": r.restart_candidacies,
            "spurious_candidacies_before_kill": r.spurious,
            "next_grant_ms": ms(r.measures.next_grant),
            "all_served_ms": ms(r.measures.all_served),
            "longest_gap_ms": ms(r.measures.longest_gap),
            "failed_calls": r.measures.failed,
            "denied_calls": r.measures.denied,
            "calls": r.calls,
            "in_flight_at_kill": r.measures.in_flight_at_kill,
            "first_failure": r.measures.first_failure,
            "restarted_serving_ms": ms(r.serving_after),
            "marker_error": r.marker_error,
        })).collect::<Vec<_>>(),
    })
}

/// Writes `report` to `out` (its directory made if needed).
pub(crate) fn write(out: &str, report: &serde_json::Value) {
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(out, format!("{report:#}\n")) {
        Ok(()) => println!("wrote {out}"),
        Err(e) => println!("cannot write {out}: {e}"),
    }
}
