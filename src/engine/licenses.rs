//! Loading a license set and a policy (start-up and reload).
//!
//! A pool keeps its number while its line stays in the set, so the seats held on it stay
//! counted against it. A pool whose line disappears is retired: it grants nothing more, its
//! seats move to a current pool of the feature where they fit (a renewed line), and it is
//! forgotten when its last seat comes back; seats that cannot move still occupy the feature's
//! capacity (see `holds.rs`). The policy's RESERVE and MAX counters are counted
//! again from the holds, since the rules (or the groups they name) may have changed.

use std::collections::BTreeSet;

use crate::state::{PoolState, RuleCount};
use crate::{Effects, Engine, Event, Name, Outcome};
use qlm_license::{Policy, Pool, Timestamp};

impl Engine {
    pub(super) fn load_licenses(
        &mut self,
        pools: Vec<Pool>,
        policy: Policy,
        fx: &mut Effects,
    ) -> Outcome {
        for state in self.pools.values_mut() {
            state.current = false;
        }
        let mut seen = BTreeSet::new();
        for pool in pools {
            if !seen.insert(pool.id.clone()) {
                continue;
            }
            match self.pool_numbers.get(&pool.id) {
                Some(number) => {
                    if let Some(state) = self.pools.get_mut(number) {
                        state.current = true;
                        state.pool = pool;
                    }
                }
                None => {
                    self.last_pool += 1;
                    self.pool_numbers.insert(pool.id.clone(), self.last_pool);
                    self.pools.insert(self.last_pool, PoolState { pool, in_use: 0, current: true });
                }
            }
        }
        self.policy = policy;
        self.rebuild_features();
        let serving = self.pools.values().filter(|p| p.current).count() as u32;
        let retired = self.pools.len() as u32 - serving;
        self.mark_all_queues_dirty(fx);
        fx.events.push(Event::LicensesLoaded { serving, retired });
        Outcome::LicensesLoaded { serving, retired }
    }

    /// Recomputes each feature's pool order and rule counters from the pools, the policy and
    /// the holds.
    fn rebuild_features(&mut self) {
        for state in self.features.values_mut() {
            state.pools.clear();
            state.retired.clear();
        }
        for (&number, state) in &self.pools {
            let feature = self.features.entry(Name::from(state.pool.feature.as_str())).or_default();
            if state.current {
                feature.pools.push(number);
            } else {
                feature.retired.push(number);
            }
        }
        for state in self.features.values_mut() {
            // Expiring first, then the older line; permanent pools last.
            state.pools.sort_by_key(|n| {
                let expires = self.pools.get(n).and_then(|p| p.pool.expires_at());
                (expires.unwrap_or(Timestamp(u64::MAX)), *n)
            });
        }
        for (name, state) in self.features.iter_mut() {
            state.reserves = rule_counts(self.policy.reserves.iter().map(|r| &r.feature), name);
            state.maxes = rule_counts(self.policy.maxes.iter().map(|r| &r.feature), name);
        }
        let holds: Vec<_> = self.holds.keys().copied().collect();
        for &id in &holds {
            if let Some(hold) = self.holds.get_mut(&id) {
                hold.reserve = None;
            }
            self.count_rules(id, true);
        }
        self.migrate_retired_holds();
        let empty: Vec<u32> = self
            .pools
            .iter()
            .filter(|(_, p)| !p.current && p.in_use == 0)
            .map(|(&n, _)| n)
            .collect();
        for number in empty {
            self.forget_pool_if_retired_and_empty(number);
        }
        let unused: Vec<Name> =
            self.features.iter().filter(|(_, f)| f.is_unused()).map(|(n, _)| n.clone()).collect();
        for name in unused {
            self.features.remove(&name);
        }
    }
}

/// Zeroed counters for the rules (given by their features) that are about `feature`.
fn rule_counts<'a>(features: impl Iterator<Item = &'a String>, feature: &str) -> Vec<RuleCount> {
    features
        .enumerate()
        .filter(|(_, f)| *f == feature)
        .map(|(rule, _)| RuleCount { rule, held: 0 })
        .collect()
}
