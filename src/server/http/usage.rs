//! Usage over time for the dashboard's plot: seats in use per feature, sampled from this
//! node's replica every [`SAMPLE_EVERY`] into a ring buffer of [`KEPT_SAMPLES`] (8 hours).
//!
//! The history lives in memory only: a restarted node starts a new one (the report log, not
//! this, is the record of usage). Every node keeps its own; they agree up to replication lag.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use qlm_node::node::Node;

/// How often the replica is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: 8 hours at one per [`SAMPLE_EVERY`].
pub const KEPT_SAMPLES: usize = 8 * 3600 / 10;

/// One sample: when, and seats in use and issued per feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageSample {
    pub unix_ms: u64,
    pub in_use: BTreeMap<String, (u64, u64)>,
}

/// The history as the dashboard draws it: one time axis, one series per feature.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct UsageSeries {
    pub interval_ms: u64,
    /// Sample times, Unix milliseconds, oldest first.
    pub t: Vec<u64>,
    /// Seats in use per feature, one value per time (0 before the feature existed).
    pub in_use: BTreeMap<String, Vec<u64>>,
    /// Seats issued per feature at the latest sample.
    pub issued: BTreeMap<String, u64>,
}

/// The ring buffer.
#[derive(Default)]
pub struct UsageHistory {
    samples: Mutex<VecDeque<UsageSample>>,
}

impl UsageHistory {
    pub fn new() -> Arc<UsageHistory> {
        Arc::new(UsageHistory::default())
    }

    /// Adds a sample, dropping the oldest beyond [`KEPT_SAMPLES`].
    pub fn record(&self, sample: UsageSample) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() == KEPT_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// The history, with `now` (a sample taken at request time) appended so the plot ends
    /// at the present.
    pub fn series(&self, now: Option<UsageSample>) -> UsageSeries {
        let samples: Vec<UsageSample> = match self.samples.lock() {
            Ok(samples) => samples.iter().cloned().chain(now).collect(),
            Err(_) => now.into_iter().collect(),
        };
        let mut series = UsageSeries {
            interval_ms: u64::try_from(SAMPLE_EVERY.as_millis()).unwrap_or(u64::MAX),
            ..UsageSeries::default()
        };
        let features: std::collections::BTreeSet<&String> =
            samples.iter().flat_map(|s| s.in_use.keys()).collect();
        for feature in features {
            let values = samples.iter().map(|s| s.in_use.get(feature).map_or(0, |v| v.0));
            series.in_use.insert(feature.clone(), values.collect());
        }
        if let Some(last) = samples.last() {
            series.issued = last.in_use.iter().map(|(f, v)| (f.clone(), v.1)).collect();
        }
        series.t = samples.iter().map(|s| s.unix_ms).collect();
        series
    }
}

/// This node's replica now, as a sample.
pub async fn sample(node: &Node) -> UsageSample {
    sample_engine(node.replica.read().await.engine())
}

/// An engine's seats in use and issued per feature, now.
pub fn sample_engine(engine: &qlm_engine::Engine) -> UsageSample {
    let in_use = engine
        .features()
        .into_iter()
        .map(|f| (f.name, (f.seats_in_use, f.seats_serving)))
        .collect();
    UsageSample { unix_ms: unix_ms_now(), in_use }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Samples the replica every [`SAMPLE_EVERY`] until `stop` changes.
pub async fn run_sampler(
    node: Arc<Node>,
    history: Arc<UsageHistory>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        history.record(sample(&node).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_ms: u64, values: &[(&str, u64)]) -> UsageSample {
        let in_use = values.iter().map(|(f, n)| (f.to_string(), (*n, 10))).collect();
        UsageSample { unix_ms, in_use }
    }

    #[test]
    fn the_ring_keeps_the_latest_samples_and_aligns_series() {
        let history = UsageHistory::default();
        for i in 0..(KEPT_SAMPLES as u64 + 5) {
            history.record(at(i, &[("a", i % 3)]));
        }
        history.record(at(99_999, &[("a", 1), ("b", 2)]));
        let series = history.series(Some(at(100_000, &[("b", 4)])));
        assert_eq!(series.t.len(), KEPT_SAMPLES + 1, "capped, plus the request-time sample");
        assert_eq!(series.t[0], 6, "the oldest were dropped");
        assert_eq!(series.in_use["a"].len(), series.t.len());
        assert_eq!(series.in_use["b"][..3], [0, 0, 0], "absent before it appeared");
        assert_eq!(series.in_use["b"].last(), Some(&4));
        assert_eq!(series.issued.get("a"), None, "issued is the latest sample's");
    }
}
