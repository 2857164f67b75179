use super::*;

/// An hour in milliseconds, and the start of the test day.
const H: u64 = 3_600_000;
const T0: u64 = 1_795_478_400_000; // 2026-11-24T00:00:00Z

struct Log {
    lines: Vec<ReportLine>,
}

impl Log {
    fn new() -> Log {
        Log { lines: Vec::new() }
    }

    fn push(
        &mut self,
        hour: f64,
        event: EventKind,
        user: &str,
        handle: u64,
        in_use: u64,
    ) -> &mut ReportLine {
        let unix_ms = T0 + (hour * H as f64) as u64;
        let index = self.lines.len() as u64 + 1;
        self.lines.push(ReportLine {
            time: Timestamp(unix_ms).to_string(),
            unix_ms,
            event,
            feature: Some("cad".into()),
            count: Some(1),
            user: Some(user.into()),
            handle: Some(handle),
            in_use: Some(in_use),
            index,
            node: 1,
            ..ReportLine::default()
        });
        self.lines.last_mut().unwrap()
    }

    /// alice holds 0h..3h, bob 1h..5h: two seats in use from 1h to 3h.
    fn two_overlapping() -> Log {
        let mut log = Log::new();
        log.push(0.0, EventKind::Checkout, "alice", 1, 1);
        log.push(1.0, EventKind::Checkout, "bob", 2, 2);
        log.push(3.0, EventKind::Checkin, "alice", 1, 1).since_ms = Some(T0);
        log.push(5.0, EventKind::Checkin, "bob", 2, 0).since_ms = Some(T0 + H);
        log
    }
}

fn at(hour: f64) -> Option<Timestamp> {
    Some(Timestamp(T0 + (hour * H as f64) as u64))
}

fn user<'a>(summary: &'a Summary, name: &str) -> &'a UserUsage {
    summary.users.iter().find(|u| u.user == name).unwrap_or_else(|| panic!("{name}: {summary:?}"))
}

#[test]
fn the_whole_log_gives_peak_seat_hours_and_hours_per_user() {
    let summary = summarize(Log::two_overlapping().lines, &SummaryOptions::default());
    let cad = &summary.features[0];
    assert_eq!((cad.peak_in_use, cad.peak_at_ms), (2, T0 + H));
    assert_eq!(cad.peak_at, "2026-11-24T01:00:00.000Z");
    assert_eq!(cad.seat_hours, 1.0 + 2.0 * 2.0 + 2.0);
    assert_eq!(cad.checkouts, 2);
    assert_eq!((user(&summary, "alice").hours, user(&summary, "bob").hours), (3.0, 4.0));
    assert_eq!((summary.from_ms, summary.to_ms), (T0, T0 + 5 * H));
}

#[test]
fn seats_held_at_from_count_from_from_and_seats_held_at_to_count_until_to() {
    let options = SummaryOptions { from: at(2.0), to: at(4.0), feature: None };
    let summary = summarize(Log::two_overlapping().lines, &options);
    let cad = &summary.features[0];
    // 2h..3h two seats, 3h..4h one seat.
    assert_eq!(cad.seat_hours, 3.0);
    assert_eq!((cad.peak_in_use, cad.peak_at_ms), (2, T0 + 2 * H), "in force at --from");
    assert_eq!(cad.checkouts, 0, "both checkouts were before the period");
    assert_eq!(user(&summary, "alice").hours, 1.0);
    assert_eq!(user(&summary, "bob").hours, 2.0);
}

#[test]
fn a_checkout_still_held_at_the_end_counts_until_the_end() {
    let mut log = Log::new();
    log.push(1.0, EventKind::Checkout, "carol", 7, 3).count = Some(3);
    log.push(2.0, EventKind::Denial, "dave", 0, 3).reason = Some("ALL_IN_USE".into());
    let options = SummaryOptions { to: at(4.0), ..Default::default() };
    let summary = summarize(log.lines, &options);
    let carol = user(&summary, "carol");
    assert_eq!((carol.hours, carol.seat_hours, carol.checkouts), (3.0, 9.0, 1));
    assert_eq!(summary.features[0].seat_hours, 9.0);
    assert_eq!(summary.features[0].denials_by_reason["ALL_IN_USE"], 1);
    assert_eq!(user(&summary, "dave").denials, 1);
}

#[test]
fn events_at_or_after_to_and_before_from_are_not_counted() {
    let mut log = Log::new();
    log.push(0.0, EventKind::Denial, "a", 0, 0).reason = Some("EXCLUDED".into());
    log.push(1.0, EventKind::Denial, "a", 0, 0).reason = Some("EXCLUDED".into());
    log.push(2.0, EventKind::Denial, "a", 0, 0).reason = Some("EXCLUDED".into());
    let options = SummaryOptions { from: at(1.0), to: at(2.0), feature: None };
    let summary = summarize(log.lines, &options);
    assert_eq!(summary.features[0].denials, 1, "[from, to) holds only the 1h denial");
}

#[test]
fn the_same_lines_from_several_nodes_count_once() {
    let one = Log::two_overlapping().lines;
    let mut three = one.clone();
    for node in [2, 3] {
        three.extend(one.iter().cloned().map(|l| ReportLine { node, ..l }));
    }
    let options = SummaryOptions::default();
    assert_eq!(summarize(three, &options), summarize(one, &options));
}

#[test]
fn an_end_whose_checkout_line_is_gone_counts_from_its_since() {
    let mut log = Log::new();
    // The checkout line was in a rotated-away file; the checkin says when it started.
    log.push(3.0, EventKind::Expiry, "erin", 9, 0).since_ms = Some(T0);
    let options = SummaryOptions { from: at(1.0), ..Default::default() };
    let summary = summarize(log.lines, &options);
    assert_eq!(user(&summary, "erin").hours, 2.0, "from --from (1h) to the expiry (3h)");
    assert_eq!(summary.features[0].expiries, 1);
}

#[test]
fn the_feature_filter_keeps_one_feature() {
    let mut log = Log::two_overlapping();
    log.push(1.5, EventKind::Checkout, "zed", 3, 1).feature = Some("sim".into());
    let options = SummaryOptions { feature: Some("sim".into()), ..Default::default() };
    let summary = summarize(log.lines, &options);
    assert_eq!(summary.features.len(), 1);
    assert_eq!(summary.features[0].feature, "sim");
    assert_eq!(summary.users.len(), 1);
}

#[test]
fn gaps_are_listed_once_and_unknown_events_ignored() {
    let mut log = Log::two_overlapping();
    let gap =
        ReportLine { event: EventKind::Gap, from: Some(1), to: Some(40), ..log.lines[0].clone() };
    log.lines.push(gap.clone());
    log.lines.push(gap);
    log.lines.push(ReportLine { event: EventKind::Other, index: 99, ..log.lines[0].clone() });
    let summary = summarize(log.lines, &SummaryOptions::default());
    assert_eq!(summary.gaps.len(), 1);
    assert_eq!((summary.gaps[0].from_index, summary.gaps[0].to_index), (1, 40));
    assert_eq!(summary.features[0].checkouts, 2);
}

#[test]
fn bad_lines_are_named_by_file_and_line_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_string(&Log::two_overlapping().lines[0]).unwrap();
    std::fs::write(dir.path().join("usage.jsonl.1"), format!("{good}\n")).unwrap();
    std::fs::write(dir.path().join("usage.jsonl"), format!("not json\n\n{good}\n{{\"time\":1}}\n"))
        .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored\n").unwrap();
    let files = report_files(&[dir.path().to_path_buf()]).unwrap();
    let names: Vec<_> =
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["usage.jsonl.1", "usage.jsonl"], "oldest first, other files left out");
    let mut warnings = Vec::new();
    let lines = read_lines(&files, &mut |w| warnings.push(w)).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("usage.jsonl:1:"), "{warnings:?}");
    assert!(warnings[1].contains("usage.jsonl:4:"), "{warnings:?}");
    let missing = report_files(&[dir.path().join("nope")]).unwrap_err();
    assert!(missing.contains("nope"), "{missing}");
}
