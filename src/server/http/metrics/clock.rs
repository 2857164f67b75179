//! The license clock's metrics: each peer's clock offset, whether this node's clock is out of
//! bounds, and the cluster's license time against this node's wall clock.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use qlm_node::node::Node;

type Seconds = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

/// The gauges, refreshed at each scrape.
#[derive(Default)]
pub struct ClockMetrics {
    offset: Family<PeerLabels, Seconds>,
    out_of_bounds: Gauge,
    max_offset: Seconds,
    license_time: Seconds,
    license_time_ahead: Seconds,
}

impl ClockMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "clock_offset",
            "The peer's wall clock less this node's, as last measured (NTP's estimate)",
            Unit::Seconds,
            self.offset.clone(),
        );
        r.register(
            "clock_out_of_bounds",
            "1 when this node's wall clock is further than --max-clock-offset-ms from a majority \
             of the voters' (it then does not lead)",
            self.out_of_bounds.clone(),
        );
        r.register_with_unit(
            "clock_max_offset",
            "The bound of --max-clock-offset-ms",
            Unit::Seconds,
            self.max_offset.clone(),
        );
        r.register_with_unit(
            "license_time",
            "The cluster's license time (the largest stamp applied), as this replica has it",
            Unit::Seconds,
            self.license_time.clone(),
        );
        r.register_with_unit(
            "license_time_ahead",
            "The cluster's license time less this node's wall clock (about 0 in a healthy \
             cluster; a large positive value: a clock pushed it ahead)",
            Unit::Seconds,
            self.license_time_ahead.clone(),
        );
    }

    /// Refreshes the gauges; `license_time_ms` is the replica's engine time.
    pub fn refresh(&self, node: &Node, license_time_ms: u64) {
        self.offset.clear();
        for (peer, m) in node.clock.measurements().into_iter().filter(|(_, m)| !m.clockless) {
            let labels = PeerLabels { peer: peer.to_string() };
            self.offset.get_or_create(&labels).set(m.offset_us as f64 / 1e6);
        }
        self.out_of_bounds.set(i64::from(node.clock.is_out_of_bounds()));
        self.max_offset.set(node.clock.max_offset().as_secs_f64());
        self.license_time.set(license_time_ms as f64 / 1e3);
        let ahead_ms = license_time_ms as f64 - qlm_node::clock::wall_ms() as f64;
        self.license_time_ahead.set(ahead_ms / 1e3);
    }
}
