//! The node's Prometheus metrics: what they are, where each comes from, and the text served on
//! `/metrics` (OpenMetrics text format, which Prometheus scrapes natively).
//!
//! Three kinds of source:
//!
//! - **Read at scrape time** (gauges): seats issued, in use and queued per feature, live
//!   sessions (from this node's replica of the engine), and Raft's term, leadership, indexes,
//!   replication lag and storage sizes (from openraft's metrics and the database). A scrape
//!   therefore shows this node's replica as it stands, never a stale copy of it.
//! - **Counted from applied entries** (counters): checkouts, checkins, denials, expiries and
//!   seat releases, counted by [`AppliedCounters`], an [`ApplyObserver`]: every node counts
//!   the whole cluster's activity from its own log, so any node answers. After a restart
//!   openraft re-applies the log after the last snapshot; entries at or below the committed
//!   index the node had saved before it stopped are not counted again (the counters restart
//!   from 0, as Prometheus expects of a restarted process). Only the few entries committed
//!   but not yet recorded as such at the crash can be counted twice.
//! - **Timed** (histograms): each client-port gRPC call ([`super::grpc_timing`]) and each
//!   fsync of the Raft database (`Disk::sync`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use qlm_engine::{Event, ReleaseCause};
use qlm_node::node::Node;
use qlm_raft::{AppliedEntry, ApplyObserver, StorageStats};

mod clock;

/// Upper bounds, in seconds, of the gRPC latency histogram: a stale read on a LAN takes well
/// under a millisecond, a write a few (fsync on a majority), a call during an election up to
/// the write deadline (5 s).
pub const RPC_BUCKETS_SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// `feature="..."`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct FeatureLabels {
    pub feature: String,
}

/// `feature="...",reason="ALL_IN_USE"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DenialLabels {
    pub feature: String,
    pub reason: String,
}

/// `feature="...",cause="expired"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReleaseLabels {
    pub feature: String,
    pub cause: String,
}

/// `feature="...",version="4.0",pool="<id>"`: one license line.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub feature: String,
    pub version: String,
    pub pool: String,
}

/// `follower="2"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub follower: String,
}

/// `service="LicenseService",method="Checkout"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub service: String,
    pub method: String,
}

/// A family of histograms with the RPC buckets.
pub type RpcHistograms = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn rpc_histogram() -> Histogram {
    Histogram::new(RPC_BUCKETS_SECONDS)
}

/// Counters fed by the applied log (see the module doc).
pub struct AppliedCounters {
    /// Entries at or below this index were counted by an earlier run of this node.
    counted_before: u64,
    checkouts: Family<FeatureLabels, Counter>,
    checkins: Family<FeatureLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    releases: Family<ReleaseLabels, Counter>,
    session_expiries: Counter,
    /// The denials again, by feature and reason, for the dashboard.
    denial_table: Mutex<BTreeMap<DenialLabels, u64>>,
}

impl AppliedCounters {
    /// Counters that skip entries at or below `counted_before` (the committed index saved on
    /// disk when the node started: those were counted by its previous run).
    pub fn new(counted_before: u64) -> AppliedCounters {
        AppliedCounters {
            counted_before,
            checkouts: Family::default(),
            checkins: Family::default(),
            denials: Family::default(),
            releases: Family::default(),
            session_expiries: Counter::default(),
            denial_table: Mutex::new(BTreeMap::new()),
        }
    }

    /// Denials since this node started, by feature and reason.
    pub fn denials(&self) -> Vec<(DenialLabels, u64)> {
        match self.denial_table.lock() {
            Ok(table) => table.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn cause_label(cause: ReleaseCause) -> &'static str {
    match cause {
        ReleaseCause::Expired => "expired",
        ReleaseCause::SessionClosed => "session_closed",
        ReleaseCause::Removed => "removed",
        ReleaseCause::BorrowEnded => "borrow_ended",
    }
}

impl ApplyObserver for AppliedCounters {
    fn applied(&self, entry: AppliedEntry<'_>) {
        if entry.index <= self.counted_before {
            return;
        }
        let feature_labels = |feature: &str| FeatureLabels { feature: feature.to_owned() };
        for event in &entry.applied.events {
            match event {
                Event::CheckedOut { feature, .. } => {
                    self.checkouts.get_or_create(&feature_labels(feature)).inc();
                }
                Event::CheckedIn { feature, .. } => {
                    self.checkins.get_or_create(&feature_labels(feature)).inc();
                }
                Event::Denied { feature, reason, .. } => {
                    let labels = DenialLabels {
                        feature: feature.to_string(),
                        reason: reason.as_str().to_owned(),
                    };
                    self.denials.get_or_create(&labels).inc();
                    if let Ok(mut table) = self.denial_table.lock() {
                        *table.entry(labels).or_default() += 1;
                    }
                }
                Event::Released { feature, cause, .. } => {
                    let labels = ReleaseLabels {
                        feature: feature.to_string(),
                        cause: cause_label(*cause).to_owned(),
                    };
                    self.releases.get_or_create(&labels).inc();
                }
                Event::SessionEnded { expired: true, .. } => {
                    self.session_expiries.inc();
                }
                _ => {}
            }
        }
    }
}

/// Every metric of one node, and the registry that prints them.
pub struct Metrics {
    registry: Registry,
    /// Held while a scrape refreshes the gauges and prints, so two scrapes never interleave.
    scrape: tokio::sync::Mutex<()>,
    pub counters: std::sync::Arc<AppliedCounters>,
    pub rpc_seconds: RpcHistograms,
    seats_issued: Family<FeatureLabels, Gauge>,
    seats_in_use: Family<FeatureLabels, Gauge>,
    seats_queued: Family<FeatureLabels, Gauge>,
    queued_requests: Family<FeatureLabels, Gauge>,
    sessions_live: Gauge,
    license_expiry: Family<PoolLabels, Gauge>,
    raft_term: Gauge,
    raft_is_leader: Gauge,
    raft_has_leader: Gauge,
    raft_leader_changes: Counter,
    /// Commit notices the leader's network held back, and those of them it sent late.
    raft_commit_notices_held: Counter,
    raft_commit_notices_sent_late: Counter,
    raft_commit_index: Gauge,
    raft_applied_index: Gauge,
    raft_last_log_index: Gauge,
    raft_replication_lag: Family<FollowerLabels, Gauge>,
    raft_log_entries: Gauge,
    raft_log_bytes: Gauge,
    raft_snapshot_bytes: Gauge,
    database_bytes: Gauge,
    storage: StorageStats,
    clock: clock::ClockMetrics,
    /// Leader changes already added to `raft_leader_changes` (the node counts them itself).
    leader_changes_seen: AtomicU64,
}

impl Metrics {
    /// The metrics of a node whose database is `storage`; `counted_before` as in
    /// [`AppliedCounters::new`].
    pub fn new(
        storage: StorageStats,
        counted_before: u64,
        replication: &qlm_raft::ReplicationSignal,
    ) -> Metrics {
        let (notices_held, notices_sent) = replication.commit_notice_counters();
        let counters = std::sync::Arc::new(AppliedCounters::new(counted_before));
        let mut metrics = Metrics {
            registry: Registry::with_prefix("qlm"),
            scrape: tokio::sync::Mutex::new(()),
            counters,
            rpc_seconds: Family::new_with_constructor(rpc_histogram),
            seats_issued: Family::default(),
            seats_in_use: Family::default(),
            seats_queued: Family::default(),
            queued_requests: Family::default(),
            sessions_live: Gauge::default(),
            license_expiry: Family::default(),
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_has_leader: Gauge::default(),
            raft_leader_changes: Counter::default(),
            raft_commit_notices_held: notices_held,
            raft_commit_notices_sent_late: notices_sent,
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_replication_lag: Family::default(),
            raft_log_entries: Gauge::default(),
            raft_log_bytes: Gauge::default(),
            raft_snapshot_bytes: Gauge::default(),
            database_bytes: Gauge::default(),
            storage,
            clock: clock::ClockMetrics::default(),
            leader_changes_seen: AtomicU64::new(0),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        self.clock.register(r);
        let c = &self.counters;
        r.register(
            "seats_issued",
            "Seats (or tokens) of the feature's pools that serve now",
            self.seats_issued.clone(),
        );
        r.register(
            "seats_in_use",
            "Seats of the feature taken, lingering ones included",
            self.seats_in_use.clone(),
        );
        r.register(
            "seats_queued",
            "Seats asked for by the requests waiting in the feature's queue",
            self.seats_queued.clone(),
        );
        r.register(
            "queued_requests",
            "Requests waiting in the feature's queue",
            self.queued_requests.clone(),
        );
        r.register(
            "sessions_live",
            "Client sessions alive (heartbeating)",
            self.sessions_live.clone(),
        );
        r.register(
            "license_expiry_timestamp_seconds",
            "When each serving license line that is not permanent stops serving (Unix time)",
            self.license_expiry.clone(),
        );
        r.register(
            "checkouts",
            "Checkouts granted (at request time or from the queue)",
            c.checkouts.clone(),
        );
        r.register("checkins", "Checkouts given back by their holder", c.checkins.clone());
        r.register("denials", "Checkout requests denied, by reason", c.denials.clone());
        r.register(
            "seat_releases",
            "Checkouts ended other than by checkin (expired, removed, session_closed, borrow_ended)",
            c.releases.clone(),
        );
        r.register(
            "session_expiries",
            "Sessions expired for lack of heartbeats",
            c.session_expiries.clone(),
        );
        r.register_with_unit(
            "grpc_request_duration",
            "Client-port gRPC calls, from request to response headers, by method",
            Unit::Seconds,
            self.rpc_seconds.clone(),
        );
        r.register_with_unit(
            "fsync_duration",
            "Flush and fsync of the Raft database before an acknowledgement",
            Unit::Seconds,
            self.storage.sync_seconds(),
        );
        r.register("raft_term", "Current Raft term", self.raft_term.clone());
        r.register("raft_is_leader", "1 when this node is the leader", self.raft_is_leader.clone());
        r.register(
            "raft_has_leader",
            "1 when this node knows a leader",
            self.raft_has_leader.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Leader changes this node has seen (each one postpones session expiries)",
            self.raft_leader_changes.clone(),
        );
        r.register(
            "raft_commit_notices_held",
            "Commit-index-only AppendEntries this leader held back instead of waiting on",
            self.raft_commit_notices_held.clone(),
        );
        r.register(
            "raft_commit_notices_sent_late",
            "Held commit notices sent after their delay (the rest rode on a later message)",
            self.raft_commit_notices_sent_late.clone(),
        );
        r.register(
            "raft_commit_index",
            "Highest log index this node knows to be committed",
            self.raft_commit_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "Highest log index applied to this node's replica",
            self.raft_applied_index.clone(),
        );
        r.register(
            "raft_last_log_index",
            "Highest log index in this node's log",
            self.raft_last_log_index.clone(),
        );
        r.register(
            "raft_replication_lag_entries",
            "On the leader: log entries each follower is behind the leader's log",
            self.raft_replication_lag.clone(),
        );
        r.register(
            "raft_log_entries",
            "Entries in the on-disk log (purged behind snapshots)",
            self.raft_log_entries.clone(),
        );
        r.register_with_unit(
            "raft_log_size",
            "Encoded size of the entries in the on-disk log",
            Unit::Bytes,
            self.raft_log_bytes.clone(),
        );
        r.register_with_unit(
            "raft_snapshot_size",
            "Size of the stored snapshot of the license state",
            Unit::Bytes,
            self.raft_snapshot_bytes.clone(),
        );
        r.register_with_unit(
            "database_size",
            "Size of the node's database on disk (log, snapshot and overhead)",
            Unit::Bytes,
            self.database_bytes.clone(),
        );
    }

    /// Refreshes the scrape-time gauges from `node` and prints every metric.
    pub async fn render(&self, node: &Node) -> String {
        let _scrape = self.scrape.lock().await;
        self.refresh_replica(node).await;
        self.refresh_raft(node).await;
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(node = node.id, error = %e, "encoding the metrics failed");
        }
        text
    }

    async fn refresh_replica(&self, node: &Node) {
        let replica = node.replica.read().await;
        let engine = replica.engine();
        for family in [&self.seats_issued, &self.seats_in_use, &self.seats_queued] {
            family.clear();
        }
        self.queued_requests.clear();
        self.license_expiry.clear();
        for feature in engine.features() {
            let labels = FeatureLabels { feature: feature.name.clone() };
            let queued_seats: u64 =
                engine.queued_requests(&feature.name).iter().map(|q| u64::from(q.count)).sum();
            self.seats_issued.get_or_create(&labels).set(gauge_value(feature.seats_serving));
            self.seats_in_use.get_or_create(&labels).set(gauge_value(feature.seats_in_use));
            self.seats_queued.get_or_create(&labels).set(gauge_value(queued_seats));
            self.queued_requests.get_or_create(&labels).set(i64::from(feature.queued));
            for pool in feature.pools.iter().filter(|p| p.current) {
                if let Some(end) = pool.pool.expires_at() {
                    let labels = PoolLabels {
                        feature: feature.name.clone(),
                        version: pool.pool.version.to_string(),
                        pool: pool.pool.id.0.clone(),
                    };
                    self.license_expiry.get_or_create(&labels).set(gauge_value(end.0 / 1000));
                }
            }
        }
        self.clock.refresh(node, engine.now().0);
        let live = engine.live_sessions().count();
        self.sessions_live.set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    async fn refresh_raft(&self, node: &Node) {
        let metrics = node.raft.metrics().borrow().clone();
        self.raft_term.set(gauge_value(metrics.current_term));
        self.raft_is_leader.set(i64::from(metrics.current_leader == Some(node.id)));
        self.raft_has_leader.set(i64::from(metrics.current_leader.is_some()));
        let changes = node.leader_changes.load(Ordering::Relaxed);
        let seen = self.leader_changes_seen.swap(changes, Ordering::Relaxed);
        self.raft_leader_changes.inc_by(changes.saturating_sub(seen));
        let applied = metrics.last_applied.map_or(0, |l| l.index);
        self.raft_applied_index.set(gauge_value(applied));
        self.raft_commit_index.set(gauge_value(self.storage.committed_index().max(applied)));
        let last_log = metrics.last_log_index.unwrap_or(0);
        self.raft_last_log_index.set(gauge_value(last_log));
        self.raft_replication_lag.clear();
        for (follower, matched) in metrics.replication.iter().flatten() {
            if *follower == node.id {
                continue;
            }
            let lag = last_log.saturating_sub(matched.map_or(0, |m| m.index));
            let labels = FollowerLabels { follower: follower.to_string() };
            self.raft_replication_lag.get_or_create(&labels).set(gauge_value(lag));
        }
        let storage = self.storage.clone();
        let sizes = tokio::task::spawn_blocking(move || {
            let (entries, bytes) = storage.log_size();
            (entries, bytes, storage.snapshot_bytes(), storage.database_bytes())
        })
        .await;
        if let Ok((entries, log_bytes, snapshot_bytes, database_bytes)) = sizes {
            self.raft_log_entries.set(gauge_value(entries));
            self.raft_log_bytes.set(gauge_value(log_bytes));
            self.raft_snapshot_bytes.set(gauge_value(snapshot_bytes));
            self.database_bytes.set(gauge_value(database_bytes));
        }
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qlm_engine::{Applied, Command, DenialReason, Engine, Handle, Outcome};
    use qlm_license::Timestamp;

    fn checked_out(feature: &str) -> Event {
        Event::CheckedOut {
            handle: Handle(1),
            session_id: "s".into(),
            user: "alice".into(),
            host: "ws1".into(),
            feature: feature.into(),
            version: Default::default(),
            count: 2,
            shared: false,
            from_queue: false,
        }
    }

    fn denied(feature: &str, reason: DenialReason) -> Event {
        Event::Denied {
            session_id: "s".into(),
            user: "bob".into(),
            host: "ws2".into(),
            feature: feature.into(),
            count: 1,
            reason,
        }
    }

    fn apply(counters: &AppliedCounters, index: u64, events: Vec<Event>) {
        let engine = Engine::new();
        let applied = Applied { outcome: Outcome::Ticked, events };
        counters.applied(AppliedEntry {
            index,
            stamp: Timestamp(0),
            command: &Command::Tick,
            applied: &applied,
            engine: &engine,
        });
    }

    #[test]
    fn events_are_counted_by_label_and_entries_of_an_earlier_run_are_skipped() {
        let counters = AppliedCounters::new(10);
        apply(&counters, 10, vec![checked_out("vhdl")]);
        let vhdl = FeatureLabels { feature: "vhdl".into() };
        assert_eq!(counters.checkouts.get(&vhdl).map(|c| c.get()), None, "index 10 was counted");

        apply(&counters, 11, vec![checked_out("vhdl"), denied("sim", DenialReason::AllInUse)]);
        apply(&counters, 12, vec![denied("sim", DenialReason::AllInUse)]);
        apply(&counters, 13, vec![Event::SessionEnded { session_id: "s".into(), expired: true }]);
        assert_eq!(counters.checkouts.get(&vhdl).map(|c| c.get()), Some(1));
        assert_eq!(counters.session_expiries.get(), 1);
        let table = counters.denials();
        assert_eq!(table.len(), 1);
        assert_eq!((table[0].0.reason.as_str(), table[0].1), ("ALL_IN_USE", 2));
    }
}
