//! The license set a leader proposes: the files named in its settings, less the pools bound to
//! host ids that a majority of the voters do not have.

use qlm_engine::Command;
use qlm_license::{HostId, LicenseSet, LineError, Policy, Pool, TrustedKeys};
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
    /// returned as refused, with their line and the reason. Host ids match in any spelling
    /// ([`HostId::matches`]).
    pub async fn licenses_to_serve(&self) -> Result<(Command, Vec<LineError>), String> {
        let (set, policy) = read_license_files(&self.config)?;
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
        let origin = self.config.license.display().to_string();
        let mut refused = set.refused;
        let mut pools = Vec::with_capacity(set.pools.len());
        for (pool, line) in set.pools.into_iter().zip(set.lines) {
            let matching =
                hostids.iter().filter(|h| pool.hostid.matches(std::slice::from_ref(*h))).count();
            if matches!(pool.hostid, HostId::Any) || matching * 2 > voters.len() {
                pools.push(pool);
                continue;
            }
            let message = format!(
                "bound to hosts that fewer than a majority of the {} voting nodes have \
                 (pool {}; known host ids: {})",
                voters.len(),
                pool.id,
                hostids.join(", ")
            );
            refused.push(
                LineError::field(&origin, line, "hostid", message).with_feature(&pool.feature),
            );
        }
        let command = license_command(config_files(&self.config), pools, policy)?;
        Ok((command, refused))
    }
}

/// The license set and policy from a node's files, as a `LoadLicenses` command, with the
/// license lines refused (a bad options file refuses the whole reload). A command too large
/// for one log entry is refused here, naming the files, at start, on a reload and when a node
/// takes over, rather than by the proposer.
pub fn load_licenses_command(config: &NodeSettings) -> Result<(Command, Vec<LineError>), String> {
    let (set, policy) = read_license_files(config)?;
    Ok((license_command(config_files(config), set.pools, policy)?, set.refused))
}

/// The license set (every line served or refused with its reason) and the policy of a node's
/// files; an error names a file that cannot be read, or the options file's errors.
fn read_license_files(config: &NodeSettings) -> Result<(LicenseSet, Policy), String> {
    let trusted = TrustedKeys::read_files(&config.vendor_pubkeys).map_err(|e| e.to_string())?;
    let set =
        qlm_license::load_license_file(&config.license, &trusted).map_err(|e| e.to_string())?;
    let policy = match &config.options {
        Some(path) => qlm_license::options::load_options_file(path).map_err(|e| e.to_string())?,
        None => Policy::default(),
    };
    Ok((set, policy))
}

/// The files a license set comes from, as an error message names them.
fn config_files(config: &NodeSettings) -> String {
    match &config.options {
        Some(options) => format!("{} and {}", config.license.display(), options.display()),
        None => config.license.display().to_string(),
    }
}

/// The `LoadLicenses` command, unless it is too large for one log entry.
fn license_command(files: String, pools: Vec<Pool>, policy: Policy) -> Result<Command, String> {
    let command = Command::LoadLicenses { pools, policy };
    let bytes = payload_len(&command).map_err(|e| format!("cannot encode the license set: {e}"))?;
    if bytes > MAX_ENTRY_BYTES {
        return Err(format!(
            "the license set and policy from {files} take {bytes} bytes encoded, more than the \
             {MAX_ENTRY_BYTES} bytes one replicated log entry holds: serve fewer license lines, or \
             a shorter policy, from this cluster"
        ));
    }
    Ok(command)
}
