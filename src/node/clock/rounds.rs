//! The rounds that measure each peer's clock and act on the judgement: once a second, a
//! `Hello` to every other member. A node stands for election only after a round in which a
//! majority of the voters agreed with its clock; an out-of-bounds leader stops heartbeating
//! (openraft's runtime switches), so that the others elect a successor.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{Judgement, wall_ms, wall_us};
use crate::node::Node;
use qlm_raft::NodeId;

/// How often a node measures its peers' clocks.
pub const ROUND_EVERY: Duration = Duration::from_secs(1);

impl Node {
    /// Measures the peers' clocks every [`ROUND_EVERY`] until `shutdown` changes.
    pub async fn run_clock_rounds(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(ROUND_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.clock_round().await;
        }
    }

    /// One round: measure every other member, judge, and switch elections and heartbeats.
    pub async fn clock_round(&self) {
        let (voters, members) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let members: Vec<(NodeId, String)> =
                membership.nodes().map(|(id, node)| (*id, node.addr.clone())).collect();
            (voters, members)
        };
        // A member added at run time is in no node's --initial-cluster: its peer address comes
        // from the membership (as `Node::leader_with_addr` does for the leader).
        let members: Vec<NodeId> = members
            .into_iter()
            .filter(|(id, _)| *id != self.id)
            .map(|(id, addr)| {
                self.peers.set_addr(id, addr);
                id
            })
            .collect();
        let (round_wall, round_at) = (wall_ms(), Instant::now());
        let probes = members.into_iter().map(|peer| async move {
            let (sent_wall, sent) = (wall_us(), Instant::now());
            if let Ok(reply) = self.peers.hello_reply(peer).await {
                self.clock.record(peer, sent_wall, sent, Instant::now(), reply.unix_micros);
            }
        });
        futures_util::future::join_all(probes).await;
        let judgement = self.clock.judge(self.id, &voters, round_at, Instant::now());
        let changed = self.clock.conclude_round(&judgement, voters.len(), round_wall, round_at);
        let out = self.clock.is_out_of_bounds();
        let runtime = self.raft.runtime_config();
        runtime.elect(self.clock.may_stand());
        runtime.heartbeat(!out);
        if changed {
            self.log_clock_change(&judgement);
        }
    }

    fn log_clock_change(&self, judgement: &Judgement) {
        let bound = self.clock.max_offset();
        match judgement {
            Judgement::OutOfBounds { disagreeing, typical_offset_us } => {
                let ahead_s = -(*typical_offset_us as f64) / 1e6;
                warn!(node = self.id, ahead_s, disagreeing, bound = ?bound,
                    "this node's wall clock is out of bounds: {ahead_s:.3} s ahead of a majority \
                     of the voters (negative: behind); it does not stand for election and, \
                     leading, steps down; fix its clock (NTP)");
            }
            Judgement::InBounds { agreeing } => {
                info!(node = self.id, agreeing, bound = ?bound,
                    "this node's wall clock is within bounds of a majority of the voters again");
            }
        }
    }
}
