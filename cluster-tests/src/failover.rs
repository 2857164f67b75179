//! What the failover benchmark (`src/bin/failover/`) measures, from what its clients did.
//!
//! Every client records each call it makes (open, checkout, checkin) with when it started,
//! when it ended and how it ended, on one clock shared with the moment the leader was killed.
//! The measures are then plain functions of that record, so they can be checked on made-up
//! histories without a cluster:
//!
//! - next grant: from the kill to the end of the first granted checkout that *started* after
//!   the kill (a call that was under way at the kill and is granted later was retried by the
//!   library into the new term; it does not show that a new call is served);
//! - all served: from the kill until every client has had such a grant;
//! - longest gap: per client, the time between the last successful call that ended before the
//!   kill and the first that ended after it; the longest of any client (what an application
//!   that does one thing after another sees as a pause);
//! - failed calls: every call that ended in an error the application saw.
//!
//! [`Votes`] counts openraft's election lines in the nodes' logs (candidacies, and why votes
//! were refused), which the benchmark turns on with [`QLM_LOG`].

use std::time::Duration;

/// Which call a client made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Open,
    Checkout,
    Checkin,
}

/// How a call ended, as the application saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Granted (a checkout) or done (an open or a checkin).
    Done,
    /// A checkout denied: an answer, not a failure (none expected: more seats than clients).
    Denied,
    /// An error from the client library (its message).
    Failed(String),
}

/// One call of one client; times since the start of the run.
#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub call: Call,
    pub started: Duration,
    pub ended: Duration,
    pub ending: Ending,
}

impl Op {
    fn done(&self) -> bool {
        self.ending == Ending::Done
    }

    fn granted_after(&self, kill: Duration) -> bool {
        self.call == Call::Checkout && self.done() && self.started > kill
    }
}

/// The measures of one run (times from the kill; `None` when it never happened in the run).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measures {
    pub next_grant: Option<Duration>,
    pub all_served: Option<Duration>,
    pub longest_gap: Option<Duration>,
    /// The client that saw the longest gap.
    pub longest_gap_client: Option<usize>,
    pub failed: usize,
    pub denied: usize,
    /// Calls that were under way at the kill.
    pub in_flight_at_kill: usize,
    /// Successful calls that ended before the kill (the warm-up's work).
    pub done_before_kill: usize,
    /// The first failure's message, for the report.
    pub first_failure: Option<String>,
}

/// The measures of `ops` made by clients `0..clients`, the leader killed at `kill`, the run
/// (and the record) ending at `end`. A client with no success after the kill counts its gap
/// up to `end`.
pub fn measure(ops: &[Op], clients: usize, kill: Duration, end: Duration) -> Measures {
    let next_grant = ops.iter().filter(|op| op.granted_after(kill)).map(|op| op.ended - kill).min();
    let served: Vec<Option<Duration>> = (0..clients)
        .map(|client| {
            let own = ops.iter().filter(|op| op.client == client);
            own.filter(|op| op.granted_after(kill)).map(|op| op.ended - kill).min()
        })
        .collect();
    let all_served = served
        .iter()
        .copied()
        .collect::<Option<Vec<_>>>()
        .and_then(|served| if served.is_empty() { None } else { served.into_iter().max() });
    let mut longest: Option<(Duration, usize)> = None;
    for client in 0..clients {
        let done = || ops.iter().filter(|op| op.client == client && op.done());
        let Some(before) = done().filter(|op| op.ended <= kill).map(|op| op.ended).max() else {
            continue;
        };
        let after = done().filter(|op| op.ended > kill).map(|op| op.ended).min().unwrap_or(end);
        let gap = after.saturating_sub(before);
        if longest.is_none_or(|(worst, _)| gap > worst) {
            longest = Some((gap, client));
        }
    }
    let failures: Vec<&Op> =
        ops.iter().filter(|op| matches!(op.ending, Ending::Failed(_))).collect();
    Measures {
        next_grant,
        all_served,
        longest_gap: longest.map(|(gap, _)| gap),
        longest_gap_client: longest.map(|(_, client)| client),
        failed: failures.len(),
        denied: ops.iter().filter(|op| op.ending == Ending::Denied).count(),
        in_flight_at_kill: ops.iter().filter(|op| op.started <= kill && op.ended > kill).count(),
        done_before_kill: ops.iter().filter(|op| op.done() && op.ended <= kill).count(),
        first_failure: failures.iter().min_by_key(|op| op.ended).and_then(|op| match &op.ending {
            Ending::Failed(message) => Some(message.clone()),
            _ => None,
        }),
    }
}

/// The nodes' log filter for the benchmark: qlmd's default, plus openraft's engine at info
/// (its election and vote lines, which [`Votes::count`] reads; nothing per request).
pub const QLM_LOG: &str = "info,openraft=warn,openraft::engine::engine_impl=info";

/// What nodes logged about an election (with [`QLM_LOG`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Votes {
    /// Elections started ("new candidate"): 1 when the first candidate won.
    pub candidacies: usize,
    /// Vote requests refused because the refuser still counted a leader's lease.
    pub lease_refusals: usize,
    /// Vote requests refused because the refuser's log was ahead of the candidate's.
    pub log_refusals: usize,
}

impl Votes {
    /// Counts openraft 0.9's election lines in `log`.
    pub fn count(log: &str) -> Votes {
        let lines = |needle: &str| log.lines().filter(|line| line.contains(needle)).count();
        Votes {
            candidacies: lines("new candidate"),
            lease_refusals: lines("reject vote-request: leader lease"),
            log_refusals: lines("reject vote-request: by last_log_id"),
        }
    }
}

/// The median (upper middle) and the worst (largest) of `values`.
pub fn median_and_worst(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some((*sorted.get(sorted.len() / 2)?, *sorted.last()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn op(client: usize, call: Call, started: u64, ended: u64, ending: Ending) -> Op {
        Op { client, call, started: ms(started), ended: ms(ended), ending }
    }

    /// Two clients; the leader is killed at 1 000 ms.
    fn history() -> Vec<Op> {
        use Call::*;
        use Ending::*;
        vec![
            op(0, Checkout, 990, 995, Done),
            op(0, Checkin, 995, 1_800, Done), // under way at the kill, retried to the end
            op(0, Checkout, 1_800, 1_805, Done),
            op(1, Checkin, 990, 998, Done),
            op(1, Checkout, 998, 1_500, Done), // under way at the kill: granted, but not new
            op(1, Checkin, 1_500, 1_510, Failed("no license server answered".into())),
            op(1, Checkout, 1_510, 1_700, Done),
        ]
    }

    #[test]
    fn a_grant_of_a_call_under_way_at_the_kill_does_not_count_as_served_again() {
        let measures = measure(&history(), 2, ms(1_000), ms(3_000));
        assert_eq!(measures.next_grant, Some(ms(700)), "client 1's checkout from 1 510");
        assert_eq!(measures.all_served, Some(ms(805)), "client 0's checkout from 1 800");
    }

    #[test]
    fn the_gap_runs_from_the_last_success_before_the_kill_to_the_first_after() {
        let measures = measure(&history(), 2, ms(1_000), ms(3_000));
        assert_eq!(measures.longest_gap, Some(ms(805)), "client 0: 995 -> 1 800");
        assert_eq!(measures.longest_gap_client, Some(0));
        assert_eq!((measures.failed, measures.denied), (1, 0));
        assert_eq!(measures.in_flight_at_kill, 2);
        assert_eq!(measures.done_before_kill, 2);
        assert_eq!(measures.first_failure.as_deref(), Some("no license server answered"));
    }

    #[test]
    fn a_client_never_served_again_leaves_all_served_unset_and_its_gap_open() {
        let ops: Vec<Op> = history().into_iter().filter(|op| op.client == 1).collect();
        let measures = measure(&ops, 2, ms(1_000), ms(3_000));
        assert_eq!(measures.all_served, None, "client 0 made no call at all");
        let ops: Vec<Op> = history().into_iter().filter(|op| op.ended < ms(1_000)).collect();
        let measures = measure(&ops, 2, ms(1_000), ms(3_000));
        assert_eq!(measures.next_grant, None);
        assert_eq!(measures.longest_gap, Some(ms(2_005)), "client 0: 995 -> the end");
    }

    #[test]
    fn openraft_election_lines_are_counted() {
        let log = "\
INFO openraft::engine::engine_impl: Engine<_>::elect, new candidate: {T2-N2:uncommitted}
INFO openraft::engine::engine_impl: reject vote-request: by last_log_id: !(req.last_log_id(..))
INFO openraft::engine::engine_impl: Engine<_>::elect, new candidate: {T2-N3:uncommitted}
INFO openraft::engine::engine_impl: reject vote-request: leader lease has not yet expire; now
INFO qlm_node::node: leading: every session's lease starts afresh node=3 sessions=8
";
        let votes = Votes { candidacies: 2, lease_refusals: 1, log_refusals: 1 };
        assert_eq!(Votes::count(log), votes);
    }

    #[test]
    fn the_median_is_the_middle_and_the_worst_the_largest() {
        assert_eq!(median_and_worst(&[3.0, 1.0, 2.0]), Some((2.0, 3.0)));
        assert_eq!(median_and_worst(&[]), None);
    }
}
