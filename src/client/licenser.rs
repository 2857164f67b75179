//! [`Licenser`]: one process's licenses along a search path, the walk every client uses
//! (the async API, the synchronous one under C, Python and Java, and `qlm`).
//!
//! A checkout tries the entries in order: a file or directory grants at once when a
//! node-locked line verifies on this machine (`nodelocked`); a cluster grants through its
//! nodes, in a session opened on it at the first checkout that reaches it, with the failover,
//! retries under one request id and heartbeats of [`crate::Session`]; a cluster that cannot
//! be reached, or that denies, hands over to the next entry. The error of a checkout nothing
//! granted is the first denial (one that is not `NO_SUCH_FEATURE` first), else the
//! node-locked refusals, else the last cluster's unreachability.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use qlm_license::TrustedKeys;
use qlm_proto::v1::DenialReason;

use crate::error::ClientError;
use crate::nodelocked::NodeLockedGrant;
use crate::search_path::{Entry, SearchPath};
use crate::{Checkout, CheckoutOptions, Client, Session, SessionOptions};

/// Longest vendor public key text [`Licenser::trust_vendor_key`] reads.
pub const MAX_KEY_TEXT_BYTES: usize = 4096;

/// What to check out besides the feature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Lowest acceptable version; `None` for any.
    pub version: Option<String>,
    /// Seats or tokens; 0 is read as 1.
    pub count: u32,
    /// `None`: a checkout that cannot be granted now is denied. `Some(t)`: it waits in the
    /// feature's queue for up to `t`, then fails with [`ClientError::WaitTimedOut`] (and
    /// leaves the queue).
    pub wait: Option<Duration>,
    /// Borrow until this instant (no heartbeat needed until then).
    pub borrow_until: Option<SystemTime>,
}

/// A grant along the search path.
#[derive(Debug)]
pub enum Grant {
    /// From a cluster; `source` is `cluster a:7400,b:7400`.
    Floating { checkout: Checkout, source: String },
    /// From a node-locked line of a license file.
    NodeLocked(NodeLockedGrant),
}

/// Why a session was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The cluster answered that it no longer knows the session (expired, or ended by an
    /// admin).
    Expired,
    /// No node of the cluster answered for longer than the session's TTL: the cluster may
    /// have expired it and given its seats away.
    Unreachable { silent_for: Duration },
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::Expired => {
                f.write_str("the cluster expired the session, or an admin ended it")
            }
            LostReason::Unreachable { silent_for } => write!(
                f,
                "no license server answered for {:.1} s, longer than the session's TTL",
                silent_for.as_secs_f64()
            ),
        }
    }
}

/// Where a session stands, for status displays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    /// The session id on the first cluster it is open on; empty until a cluster granted.
    pub session_id: String,
    /// That cluster's entry (`a:7400,b:7400`); empty if none.
    pub servers: String,
    /// That cluster's leader as last heard; empty if unknown.
    pub leader: String,
    /// Heartbeats answered so far.
    pub heartbeats: u64,
    /// Whether the session was lost.
    pub lost: bool,
}

/// A process's licenses along a search path (see the module documentation).
pub struct Licenser {
    path: SearchPath,
    /// One client per entry that is a cluster (`None` for files).
    clusters: Vec<Option<Client>>,
    options: SessionOptions,
    keys: Mutex<TrustedKeys>,
    /// This machine's host ids, read when a node-locked line is first checked.
    host_ids: OnceLock<Vec<String>>,
    /// The session on each cluster entry (by index), opened on first use.
    opened: tokio::sync::Mutex<HashMap<usize, Arc<Session>>>,
}

impl Licenser {
    /// A licenser of `path` for the process `options` describes, with the environment's
    /// TLS settings (`https://` entries, `QLM_TLS_CA`, `QLM_CLIENT_CERT`, `QLM_CLIENT_KEY`).
    /// Makes no connection yet.
    pub fn new(path: SearchPath, options: SessionOptions) -> Result<Licenser, ClientError> {
        let tls = crate::connection::tls_from_env(path.wants_tls)?;
        let mut clusters = Vec::with_capacity(path.entries.len());
        for entry in &path.entries {
            clusters.push(match entry {
                Entry::Cluster(servers) => {
                    let client = Client::connect(servers.clone())?;
                    Some(match &tls {
                        Some(tls) => client.with_tls(tls),
                        None => client,
                    })
                }
                Entry::File(_) | Entry::Directory(_) => None,
            });
        }
        Ok(Licenser {
            path,
            clusters,
            options,
            keys: Mutex::new(TrustedKeys::new()),
            host_ids: OnceLock::new(),
            opened: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The same, each cluster with another failover budget (see
    /// [`Client::with_failover_budget`]): how long a cluster is retried before the next entry.
    pub fn with_failover_budget(mut self, budget: Duration) -> Licenser {
        for client in self.clusters.iter_mut().flatten() {
            *client = client.with_failover_budget(budget);
        }
        self
    }

    /// The same, each cluster over TLS with `tls` (the command line's TLS flags).
    pub fn with_tls(mut self, tls: &qlm_net::tls::ClientTls) -> Licenser {
        for client in self.clusters.iter_mut().flatten() {
            *client = client.with_tls(tls);
        }
        self
    }

    /// Trusts a vendor's public key for node-locked lines: the text of the vendor's key file
    /// (`ed25519-public:...`, comments allowed) or the bare base64 key.
    pub fn trust_vendor_key(&self, text: &str) -> Result<(), ClientError> {
        let key = vendor_key_from_text(text)?;
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
        Ok(())
    }

    /// Trusts every key of `keys` besides those trusted already.
    pub fn trust_vendor_keys(&self, keys: &TrustedKeys) {
        let mut trusted = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys.keys() {
            trusted.insert(*key);
        }
    }

    /// The search path walked.
    pub fn search_path(&self) -> &SearchPath {
        &self.path
    }

    /// Checks `feature` out from the first entry of the search path that grants it.
    pub async fn checkout(
        &self,
        feature: &str,
        request: &CheckoutRequest,
    ) -> Result<Grant, ClientError> {
        let mut walk = Walk::default();
        for (index, entry) in self.path.entries.iter().enumerate() {
            let files = match entry {
                Entry::Cluster(_) => {
                    match self.checkout_on_cluster(index, feature, request).await {
                        Ok(grant) => return Ok(grant),
                        Err(error) => walk.failed(error)?,
                    }
                    continue;
                }
                Entry::File(path) => vec![path.clone()],
                Entry::Directory(dir) => crate::nodelocked::license_files_in(dir),
            };
            match self.node_locked(&files, feature, request) {
                Ok(grant) => return Ok(Grant::NodeLocked(grant)),
                Err(refusals) => walk.refusals.extend(refusals),
            }
        }
        Err(walk.into_error(feature))
    }

    async fn checkout_on_cluster(
        &self,
        index: usize,
        feature: &str,
        request: &CheckoutRequest,
    ) -> Result<Grant, ClientError> {
        let session = self.on_cluster(index).await?;
        let options = CheckoutOptions {
            version: request.version.clone(),
            count: request.count,
            wait: request.wait.is_some(),
            borrow_until: request.borrow_until,
        };
        let checkout = match request.wait {
            None => session.checkout(feature, options).await,
            Some(limit) => tokio::time::timeout(limit, session.checkout(feature, options))
                .await
                .unwrap_or(Err(ClientError::WaitTimedOut(limit))),
        }?;
        Ok(Grant::Floating { checkout, source: format!("{}", self.path.entries[index]) })
    }

    /// The session on cluster entry `index`, opened now if it is not yet.
    async fn on_cluster(&self, index: usize) -> Result<Arc<Session>, ClientError> {
        let mut opened = self.opened.lock().await;
        if let Some(session) = opened.get(&index) {
            return Ok(session.clone());
        }
        let Some(Some(client)) = self.clusters.get(index) else {
            return Err(ClientError::NoServers(format!("entry {} is not a cluster", index + 1)));
        };
        let session = Arc::new(client.open_session(self.options.clone()).await?);
        opened.insert(index, session.clone());
        Ok(session)
    }

    fn node_locked(
        &self,
        files: &[PathBuf],
        feature: &str,
        request: &CheckoutRequest,
    ) -> Result<NodeLockedGrant, Vec<String>> {
        let host_ids = self.host_ids.get_or_init(crate::hostid::local_host_ids);
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let version = request.version.as_deref();
        crate::nodelocked::check(files, feature, version, &keys, host_ids, SystemTime::now())
    }

    /// Whether a session this licenser opened was lost, and why: the cluster answered that it
    /// is gone, or stayed silent for longer than its TTL.
    pub async fn lost(&self) -> Option<LostReason> {
        let opened = self.opened.lock().await;
        opened.values().find_map(|session| {
            if session.is_lost() {
                return Some(LostReason::Expired);
            }
            let silent_for = session.silent_for();
            (silent_for > session.ttl()).then_some(LostReason::Unreachable { silent_for })
        })
    }

    /// The session on the first cluster it is open on.
    pub async fn status(&self) -> SessionStatus {
        let opened = self.opened.lock().await;
        let mut status = SessionStatus::default();
        if let Some((index, session)) = opened.iter().min_by_key(|(index, _)| **index) {
            status.session_id = session.id().to_owned();
            status.heartbeats = session.heartbeats_sent();
            if let Entry::Cluster(servers) = &self.path.entries[*index] {
                let names: Vec<String> = servers.iter().map(ToString::to_string).collect();
                status.servers = names.join(",");
            }
            if let Some(Some(client)) = self.clusters.get(*index) {
                status.leader = client.leader().map(|l| l.to_string()).unwrap_or_default();
            }
        }
        status
    }

    /// Closes the session on every cluster it was opened on, which gives back every seat it
    /// holds there (borrowed ones excepted). Every session is closed; the first failure is
    /// returned.
    pub async fn close(&self) -> Result<(), ClientError> {
        let sessions: Vec<_> = self.opened.lock().await.drain().map(|(_, s)| s).collect();
        let mut first_error = None;
        for session in sessions {
            // Only this licenser holds its sessions (checkouts hold the session's core).
            let Ok(session) = Arc::try_unwrap(session) else { continue };
            if let Err(error) = session.close().await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A vendor public key from a key file's text (`ed25519-public:...`, comments allowed) or a
/// bare base64 key; the error says what is wrong with the text without echoing it.
pub fn vendor_key_from_text(text: &str) -> Result<qlm_license::VendorPublicKey, ClientError> {
    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(ClientError::InvalidArgument(format!(
            "vendor key: {} bytes; a public key file is at most {MAX_KEY_TEXT_BYTES}",
            text.len()
        )));
    }
    if text.trim().is_empty() {
        return Err(ClientError::InvalidArgument("vendor key: no key given".into()));
    }
    let file_text = if text.contains(':') {
        text.to_owned()
    } else {
        format!("{}{}", qlm_license::keyfile::PUBLIC_KEY_TAG, text.trim())
    };
    qlm_license::VendorPublicKey::from_key_file_text(&file_text)
        .map_err(|e| ClientError::InvalidArgument(format!("vendor key: the text {e}")))
}

/// What the walk down the search path met, for the error when nothing granted.
#[derive(Default)]
struct Walk {
    denial: Option<ClientError>,
    unreachable: Option<ClientError>,
    refusals: Vec<String>,
}

impl Walk {
    /// Keeps a failure that hands over to the next entry; any other ends the walk.
    fn failed(&mut self, error: ClientError) -> Result<(), ClientError> {
        match &error {
            ClientError::Denied { reason, .. } => {
                let kept_is_weaker = match &self.denial {
                    Some(ClientError::Denied { reason: kept, .. }) => {
                        *kept == DenialReason::NoSuchFeature
                            && *reason != DenialReason::NoSuchFeature
                    }
                    _ => true,
                };
                if kept_is_weaker {
                    self.denial = Some(error);
                }
                Ok(())
            }
            ClientError::Unreachable { .. } => {
                self.unreachable = Some(error);
                Ok(())
            }
            _ => Err(error),
        }
    }

    fn into_error(self, feature: &str) -> ClientError {
        if let Some(denial) = self.denial {
            return denial;
        }
        if !self.refusals.is_empty() {
            let mut message = self.refusals.join("; ");
            if let Some(unreachable) = self.unreachable {
                message.push_str(&format!("; and {unreachable}"));
            }
            return ClientError::NodeLocked(message);
        }
        self.unreachable.unwrap_or_else(|| {
            ClientError::NoServers(format!("no entry of the search path grants `{feature}`"))
        })
    }
}
