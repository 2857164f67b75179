//! One line of the usage report log.
//!
//! The line is a flat JSON object; fields that do not apply to an event are left out, so a
//! reader must treat every field but `time`, `unix_ms`, `event`, `index`, `seq` and `node` as
//! optional. Readers ignore fields they do not know and events they do not know
//! ([`EventKind::Other`]), so a newer writer's lines do not break an older `qlm report`.

use serde::{Deserialize, Serialize};

/// What happened. The JSON spelling is the snake_case name (`checkout`, `linger_end`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Seats granted (at request time, or from the queue: `from_queue`).
    Checkout,
    /// Seats given back by their holder; `reason` is `SESSION_CLOSED` when the client closed
    /// its session instead of checking in.
    Checkin,
    /// A checkout refused; `reason` says why (`ALL_IN_USE`, ...).
    Denial,
    /// A session stopped heartbeating and was expired: its checkout is released.
    Expiry,
    /// An admin removed the checkout (`qlm admin remove`, FlexLM's lmremove).
    Removal,
    /// A borrowed checkout reached its end.
    BorrowEnd,
    /// A request joined a feature's queue.
    Queued,
    /// A queued request left the queue without a grant; `reason` says why.
    Dequeued,
    /// Seats kept after a checkin (LINGER) were freed.
    LingerEnd,
    /// The license set and policy were (re)loaded.
    Reload,
    /// This node did not write the events of the entries `from..=to` (it received a snapshot
    /// instead, or its file started late): another node's file has them.
    Gap,
    /// An event this reader does not know (written by a newer version).
    #[default]
    #[serde(other)]
    Other,
}

impl EventKind {
    /// Whether the event ends a checkout (its seats are no longer the holder's).
    pub fn ends_checkout(self) -> bool {
        matches!(
            self,
            EventKind::Checkin | EventKind::Expiry | EventKind::Removal | EventKind::BorrowEnd
        )
    }
}

/// One line of the report log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLine {
    /// When, in RFC 3339 UTC with milliseconds: the leader's stamp on the entry (the engine's
    /// clock, which never goes back).
    pub time: String,
    /// The same instant, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The version granted (checkout and its end) or asked for (denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Seats (or tokens) of the checkout, request or linger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The client session's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The checkout's (or queued request's) handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// Why: the denial reason, why a checkout ended other than by checkin, why a request left
    /// the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On the end of a checkout: when it was granted (Unix milliseconds), so the line alone
    /// tells how long the seats were held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Seats of the feature in use after the entry, lingering ones included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<u64>,
    /// The checkout shares seats already held by its user or host (dup_group): it took none.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
    /// The checkout was granted from the queue.
    #[serde(default, skip_serializing_if = "is_false")]
    pub from_queue: bool,
    /// Place in the queue (1 is the head) of a queued request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Reload: pools serving, and pools retired that still carry seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<u32>,
    /// Gap: the first log index not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Gap: the last log index not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// The Raft log index of the entry.
    pub index: u64,
    /// The line's place among the lines of its entry (0, 1, ...).
    #[serde(default)]
    pub seq: u32,
    /// The id of the node that wrote the line.
    pub node: u64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_leaves_out_what_does_not_apply_and_reads_back_the_same() {
        let line = ReportLine {
            time: "2026-11-24T09:30:00.250Z".into(),
            unix_ms: 1_795_512_600_250,
            event: EventKind::Denial,
            feature: Some("vhdl-editor".into()),
            count: Some(1),
            reason: Some("ALL_IN_USE".into()),
            index: 42,
            node: 2,
            ..ReportLine::default()
        };
        let json = serde_json::to_string(&line).unwrap();
        assert!(!json.contains("handle") && !json.contains("shared"), "{json}");
        assert!(json.contains(r#""event":"denial""#), "{json}");
        assert_eq!(serde_json::from_str::<ReportLine>(&json).unwrap(), line);
    }

    #[test]
    fn unknown_events_and_fields_from_a_newer_writer_are_read() {
        let json =
            r#"{"time":"t","unix_ms":1,"event":"teleport","index":3,"node":1,"colour":"red"}"#;
        let line: ReportLine = serde_json::from_str(json).unwrap();
        assert_eq!(line.event, EventKind::Other);
    }
}
