//! The fault injector of one chaos run: each scenario's rounds of kills, pauses and
//! partitions, and the heal at the end.

use std::time::{Duration, Instant};

use super::{MINORITY, SMALL_SNAPSHOT_EVERY, Scenario};
use crate::history::Recorder;
use crate::proxy::LinkMode;
use crate::rng::Rng;
use crate::{Cluster, TEST_ADMIN_TOKEN};

/// The fault injector of one run.
pub(super) struct Faults<'a> {
    pub(super) cluster: &'a mut Cluster,
    pub(super) recorder: &'a Recorder,
    pub(super) rng: &'a mut Rng,
    /// Rounds injected so far.
    pub(super) round: u64,
}

impl Faults<'_> {
    pub(super) async fn inject(&mut self, scenario: Scenario, deadline: Instant) {
        match scenario {
            Scenario::MembershipChange => self.membership_change(deadline).await,
            Scenario::SnapshotInstallKill => self.snapshot_install_kill(deadline).await,
            _ => {
                while Instant::now() < deadline {
                    self.one_round(scenario).await;
                }
            }
        }
    }

    async fn sleep_ms(&mut self, lo: u64, hi: u64) {
        tokio::time::sleep(Duration::from_millis(self.rng.range(lo, hi))).await;
    }

    async fn leader(&self) -> u64 {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(leader) = self.cluster.leader().await {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.cluster.live().first().copied().unwrap_or(1)
    }

    async fn one_round(&mut self, scenario: Scenario) {
        let leader = self.leader().await;
        let nodes = self.cluster.running();
        let followers: Vec<u64> = nodes.iter().copied().filter(|&n| n != leader).collect();
        match scenario {
            Scenario::LeaderKillLoop => {
                self.recorder.fault("kill-leader", format!("node {leader}"));
                self.cluster.kill(leader);
                self.sleep_ms(1_000, 2_500).await;
                self.cluster.spawn(leader);
                self.sleep_ms(1_000, 2_000).await;
            }
            Scenario::FollowerKill => {
                let victim = self.rng.pick(&followers);
                self.recorder.fault("kill-follower", format!("node {victim}"));
                self.cluster.kill(victim);
                self.sleep_ms(1_000, 3_000).await;
                self.cluster.spawn(victim);
                self.sleep_ms(500, 1_500).await;
            }
            Scenario::RollingRestart => self.rolling_restart(nodes).await,
            Scenario::WholeClusterRestart => self.whole_cluster_restart(nodes).await,
            Scenario::LeaderPause => {
                self.recorder.fault("pause-leader", format!("node {leader}"));
                self.cluster.pause(leader);
                // Shorter and longer than the clients' 2 s deadline: requests queued at the
                // paused leader are served when it resumes, before it hears of its successor.
                self.sleep_ms(1_000, 3_000).await;
                self.cluster.resume(leader);
                self.sleep_ms(1_000, 2_000).await;
            }
            Scenario::MinorityPartition => self.minority_partition(leader, nodes, followers).await,
            Scenario::AsymmetricPartition => {
                self.asymmetric_partition(leader, nodes, followers).await
            }
            Scenario::MembershipChange | Scenario::SnapshotInstallKill => {}
        }
    }

    /// Kills and restarts every node in turn, waiting for a leader after each.
    async fn rolling_restart(&mut self, nodes: Vec<u64>) {
        for id in nodes {
            let kind = if self.cluster.leader().await == Some(id) {
                "kill-leader"
            } else {
                "kill-follower"
            };
            self.recorder.fault(kind, format!("rolling restart of node {id}"));
            self.cluster.kill(id);
            self.sleep_ms(300, 800).await;
            self.cluster.spawn(id);
            self.cluster.wait_ready().await;
            self.sleep_ms(500, 1_000).await;
        }
    }

    /// Kills every node, then starts them all again.
    async fn whole_cluster_restart(&mut self, nodes: Vec<u64>) {
        self.recorder.fault("kill-all", format!("nodes {nodes:?}"));
        for &id in &nodes {
            self.cluster.kill(id);
        }
        self.sleep_ms(200, 1_500).await;
        // Failover is measured from here: the processes start again.
        self.recorder.fault("restart-all", format!("nodes {nodes:?}"));
        for &id in &nodes {
            self.cluster.spawn(id);
        }
        self.cluster.wait_ready().await;
        self.sleep_ms(1_000, 2_000).await;
    }

    /// Cuts a minority off from the majority for a while, then heals.
    async fn minority_partition(&mut self, leader: u64, nodes: Vec<u64>, followers: Vec<u64>) {
        // Alternately: nodes 1 and 2 (where half the clients are attached) cut off
        // from the other three, and the leader with one follower cut off.
        self.round += 1;
        let minority = if self.round % 2 == 1 {
            MINORITY.to_vec()
        } else {
            vec![leader, self.rng.pick(&followers)]
        };
        let majority: Vec<u64> = nodes.iter().copied().filter(|n| !minority.contains(n)).collect();
        let mode = self.cut_mode();
        let kind =
            if minority.contains(&leader) { "partition-leader" } else { "partition-minority" };
        self.recorder.fault(kind, format!("{minority:?} | {majority:?} ({mode:?})"));
        self.cluster.partition(&minority, &majority, mode);
        self.sleep_ms(2_000, 4_000).await;
        self.recorder.fault("heal", String::new());
        self.cluster.heal();
        self.sleep_ms(1_000, 2_000).await;
    }

    /// Cuts links one way only (from the leader, to it, or around a follower), then heals.
    async fn asymmetric_partition(&mut self, leader: u64, nodes: Vec<u64>, followers: Vec<u64>) {
        let mode = self.cut_mode();
        let others = followers.clone();
        match self.rng.range(0, 3) {
            0 => {
                self.recorder
                    .fault("partition-leader", format!("{leader} -> {others:?} ({mode:?})"));
                for &f in &others {
                    self.cluster.link(leader, f, mode);
                }
            }
            1 => {
                self.recorder
                    .fault("partition-leader", format!("{others:?} -> {leader} ({mode:?})"));
                for &f in &others {
                    self.cluster.link(f, leader, mode);
                }
            }
            _ => {
                let victim = self.rng.pick(&others);
                let delay = LinkMode::Delay(Duration::from_millis(self.rng.range(50, 300)));
                self.recorder.fault(
                    "cut-follower",
                    format!("{victim} -> others ({mode:?}), {leader} -> {victim} {delay:?}"),
                );
                for &n in nodes.iter().filter(|&&n| n != victim) {
                    self.cluster.link(victim, n, mode);
                }
                self.cluster.link(leader, victim, delay);
            }
        }
        self.sleep_ms(2_000, 4_000).await;
        self.recorder.fault("heal", String::new());
        self.cluster.heal();
        self.sleep_ms(1_000, 2_000).await;
    }

    fn cut_mode(&mut self) -> LinkMode {
        if self.rng.chance(50) { LinkMode::Drop } else { LinkMode::BlackHole }
    }

    /// An admin client of the running members.
    fn admin(&self) -> qlm_client::Client {
        let servers = self.cluster.server_list(&self.cluster.live());
        qlm_client::Client::connect(servers)
            .expect("a server list")
            .with_admin_token(TEST_ADMIN_TOKEN)
    }

    async fn membership_change(&mut self, deadline: Instant) {
        let spare = *self.cluster.ids().last().expect("a spare id");
        self.recorder.fault("add-node", format!("node {spare}"));
        self.cluster.spawn(spare);
        let (peer, client) = (self.cluster.peer_addr(spare), self.cluster.client_addr(spare));
        let mut added = false;
        for _ in 0..20 {
            if self.admin().add_node(spare, &peer, &client, false).await.is_ok() {
                added = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(added, "node {spare} could not be added");
        self.sleep_ms(1_000, 2_000).await;
        // Remove an original member, sometimes the leader, then stop it.
        let leader = self.leader().await;
        let victim = if self.rng.chance(50) { leader } else { self.rng.pick(&[1, 2, 3]) };
        self.recorder.fault("remove-node", format!("node {victim} (leader {leader})"));
        let mut removed = false;
        for _ in 0..20 {
            if self.admin().remove_node(victim).await.is_ok() {
                removed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(removed, "node {victim} could not be removed");
        self.sleep_ms(500, 1_000).await;
        self.cluster.kill(victim);
        self.cluster.retire(victim);
        // Under the new membership, kill followers now and then until the time is up.
        while Instant::now() < deadline {
            self.sleep_ms(1_000, 2_000).await;
            let leader = self.leader().await;
            let followers: Vec<u64> =
                self.cluster.running().into_iter().filter(|&n| n != leader).collect();
            if let Some(&victim) = followers.first() {
                self.recorder.fault("kill-follower", format!("node {victim}"));
                self.cluster.kill(victim);
                self.sleep_ms(500, 1_500).await;
                self.cluster.spawn(victim);
            }
        }
    }

    async fn snapshot_install_kill(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            let leader = self.leader().await;
            let follower = self.rng.pick(
                &self.cluster.running().into_iter().filter(|&n| n != leader).collect::<Vec<_>>(),
            );
            self.recorder.fault("kill-follower", format!("node {follower} falls behind"));
            self.cluster.kill(follower);
            // Enough entries for the leader to snapshot and purge past the follower.
            let start = self.applied(leader).await;
            let wait_until = Instant::now() + Duration::from_secs(30);
            while self.applied(leader).await < start + 2 * SMALL_SNAPSHOT_EVERY
                && Instant::now() < wait_until
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for _ in 0..self.rng.range(2, 4) {
                self.cluster.spawn(follower);
                self.sleep_ms(30, 400).await;
                self.recorder.fault("kill-installing", format!("node {follower}"));
                self.cluster.kill(follower);
                self.sleep_ms(100, 400).await;
            }
            self.cluster.spawn(follower);
            self.sleep_ms(1_000, 2_000).await;
        }
    }

    async fn applied(&self, id: u64) -> u64 {
        self.cluster.cluster_status(id).await.map_or(0, |s| s.applied_index)
    }

    pub(super) async fn heal_everything(&mut self) {
        self.cluster.heal();
        self.cluster.restart_stopped();
        self.recorder.fault("healed", String::new());
    }

    /// The members as the leader sees them (every one running after the heal).
    pub(super) async fn members(&mut self) -> Vec<u64> {
        let leader = self.leader().await;
        match self.cluster.cluster_status(leader).await {
            Ok(status) => status.members.iter().map(|m| m.id).collect(),
            Err(_) => self.cluster.running(),
        }
    }
}
