//! The license set a leader proposes: the files named in its settings, less the pools bound to
//! host ids that a majority of the voters do not have.

use qlm_engine::Command;
use qlm_license::{HostId, LineError, Policy, TrustedKeys};
use qlm_raft::network::payload_len;
use qlm_raft::{MAX_ENTRY_BYTES, NodeId};

use crate::node::Node;
use crate::settings::NodeSettings;

impl Node {
    /// This node's host id.
    pub fn hostid(&self) -> &str {
        &self.config.hostid
    }

    /// The license set and policy from this node's files (see [`load_licenses_command`]),
    /// less the pools bound to host ids that a majority of the voters do not have: a copy of
    /// the license file on another cluster does not double the count. Those pools are
    /// returned as refused, with the reason.
    pub async fn licenses_to_serve(&self) -> Result<(Command, Vec<LineError>), String> {
        let (command, mut refused) = load_licenses_command(&self.config)?;
        let Command::LoadLicenses { pools, policy } = command else {
            return Ok((command, refused));
        };
        let voters: Vec<NodeId> =
            self.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        let mut hostids = Vec::new();
        for &voter in &voters {
            let hostid = if voter == self.id {
                Some(self.config.hostid.clone())
            } else {
                match self.peers.hostid(voter) {
                    Some(hostid) => Some(hostid),
                    None => {
                        self.peers.hello(voter).await.ok().and_then(|_| self.peers.hostid(voter))
                    }
                }
            };
            hostids.extend(hostid);
        }
        let (served, unserved): (Vec<_>, Vec<_>) =
            pools.into_iter().partition(|pool| match &pool.hostid {
                HostId::Any => true,
                HostId::List(allowed) => {
                    let matching = hostids.iter().filter(|h| allowed.contains(h.as_str())).count();
                    matching * 2 > voters.len()
                }
            });
        for pool in unserved {
            refused.push(LineError::field(
                &self.config.license.display().to_string(),
                0,
                "hostid",
                format!(
                    "`{}` (pool {}) is bound to hosts that fewer than a majority of the {} \
                     voting nodes have (known host ids: {})",
                    pool.feature,
                    pool.id,
                    voters.len(),
                    hostids.join(", ")
                ),
            ));
        }
        Ok((Command::LoadLicenses { pools: served, policy }, refused))
    }
}

/// The license set and policy from a node's files, as a `LoadLicenses` command, with the
/// license lines refused (a bad options file refuses the whole reload). A command too large
/// for one log entry is refused here, naming the files, at start, on a reload and when a node
/// takes over, rather than by the proposer.
pub fn load_licenses_command(config: &NodeSettings) -> Result<(Command, Vec<LineError>), String> {
    let trusted = TrustedKeys::read_files(&config.vendor_pubkeys).map_err(|e| e.to_string())?;
    let set =
        qlm_license::load_license_file(&config.license, &trusted).map_err(|e| e.to_string())?;
    let policy = match &config.options {
        Some(path) => qlm_license::options::load_options_file(path).map_err(|e| e.to_string())?,
        None => Policy::default(),
    };
    let command = Command::LoadLicenses { pools: set.pools, policy };
    let bytes = payload_len(&command).map_err(|e| format!("cannot encode the license set: {e}"))?;
    if bytes > MAX_ENTRY_BYTES {
        let files = match &config.options {
            Some(options) => format!("{} and {}", config.license.display(), options.display()),
            None => config.license.display().to_string(),
        };
        return Err(format!(
            "the license set and policy from {files} take {bytes} bytes encoded, more than the \
             {MAX_ENTRY_BYTES} bytes one replicated log entry holds: serve fewer license lines, or \
             a shorter policy, from this cluster"
        ));
    }
    Ok((command, set.refused))
}
