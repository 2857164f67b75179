//! The usage report log: what it says (one JSON object a line, [`mod@line`]) and what `qlm report`
//! makes of it ([`summary`]).
//!
//! Every node writes the log from the entries it applies (the writer is
//! `qlm_server::report_log`), so each node's file tells the whole cluster's usage: checkouts,
//! checkins, denials, expiries, removals, reloads, queue moves, linger ends. Each line carries
//! the log index of the entry that produced it and its place in that entry (`seq`), so the
//! same event has the same `(index, seq)` on every node: a reader can merge the files of
//! several nodes and drop duplicates, and a writer that restarts skips what it already wrote.
//!
//! This module is plain data and arithmetic (no I/O but reading the files given), so the
//! summary maths is tested directly. See docs/REPORT_LOG.md for the format an admin relies on.

pub mod line;
pub mod summary;
pub mod time;

pub use line::{EventKind, ReportLine};
pub use summary::{Summary, SummaryOptions, read_lines, summarize};
