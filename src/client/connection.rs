//! [`Client`]: the server list, one lazy gRPC channel per server, the admin token and TLS.
//!
//! Every rpc goes through `Client::call`, whose failover (the retry rules of common.proto) is
//! in `failover`.
//!
//! Channels connect lazily: building a client does no I/O, and a server that is down costs
//! only the attempts that reach it.

mod failover;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::Request;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::endpoints::{ServerAddr, list_wants_tls, parse_servers};
use crate::error::ClientError;

pub use failover::{FAILOVER_BUDGET, LEADER_ADDR_METADATA, RETRY_BACKOFF_FIRST, RETRY_BACKOFF_MAX};

/// How long one attempt of a unary rpc may take before the client tries the next server.
/// Writes go through Raft (an fsync on a majority), so this leaves room for a slow disk and
/// one leader election (well under 2 s), not for a hung node.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// How long opening a TCP connection to one server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Environment variable with the server list.
pub const SERVERS_ENV: &str = "QLM_SERVERS";

/// Environment variable with the admin token.
pub const ADMIN_TOKEN_ENV: &str = "QLM_ADMIN_TOKEN";

/// Environment variable naming a file that holds the admin token (used when
/// [`ADMIN_TOKEN_ENV`] is not set).
pub const ADMIN_TOKEN_FILE_ENV: &str = "QLM_ADMIN_TOKEN_FILE";

/// Environment variable naming the CA file (PEM) to trust for the servers' certificates.
pub const TLS_CA_ENV: &str = "QLM_TLS_CA";

/// Environment variable naming a client certificate (PEM), for servers that require one.
pub const TLS_CLIENT_CERT_ENV: &str = "QLM_CLIENT_CERT";

/// Environment variable naming the private key (PEM) of [`TLS_CLIENT_CERT_ENV`].
pub const TLS_CLIENT_KEY_ENV: &str = "QLM_CLIENT_KEY";

/// A handle to the cluster. Cheap to clone: clones share channels and the leader hint.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Shared>,
}

struct Shared {
    /// The servers as the admin listed them; the failover order after the leader.
    servers: Vec<ServerAddr>,
    /// One channel per server, made on first use (a leader hint may add a server that is not
    /// in the list).
    channels: Mutex<HashMap<ServerAddr, Channel>>,
    /// The leader as last reported by any answer; tried first.
    leader: Mutex<Option<ServerAddr>>,
    /// Sent as `authorization: Bearer <token>` on every call when set.
    admin_token: Option<String>,
    /// Deadline of one attempt.
    call_deadline: Duration,
    /// How long a call keeps failing over ([`FAILOVER_BUDGET`] by default).
    failover_budget: Duration,
    /// TLS for every channel (`https://`); `None` is plaintext.
    tls: Option<ClientTlsConfig>,
}

impl Client {
    /// A client of the cluster at `servers` (see [`parse_servers`]). Makes no connection
    /// yet: channels open on first use.
    pub fn connect(servers: Vec<ServerAddr>) -> Result<Client, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers("the server list is empty".into()));
        }
        Ok(Client {
            inner: Arc::new(Shared {
                servers,
                channels: Mutex::new(HashMap::new()),
                leader: Mutex::new(None),
                admin_token: None,
                call_deadline: CALL_DEADLINE,
                failover_budget: FAILOVER_BUDGET,
                tls: None,
            }),
        })
    }

    /// A client of the servers in `QLM_SERVERS`, with TLS when an entry is `https://` or
    /// `QLM_TLS_CA` (the CA to trust) is set; `QLM_CLIENT_CERT` and `QLM_CLIENT_KEY` name a
    /// client certificate for servers that require one.
    pub fn from_env() -> Result<Client, ClientError> {
        let list = std::env::var(SERVERS_ENV)
            .map_err(|_| ClientError::NoServers(format!("{SERVERS_ENV} is not set")))?;
        let servers = parse_servers(&list).map_err(|e| ClientError::NoServers(e.to_string()))?;
        let client = Client::connect(servers)?;
        Ok(match tls_from_env(list_wants_tls(&list))? {
            Some(tls) => client.with_tls(&tls),
            None => client,
        })
    }

    /// The same cluster over TLS (`https://`), trusting and presenting what `tls` says.
    pub fn with_tls(&self, tls: &qlm_net::tls::ClientTls) -> Client {
        self.rebuilt(|shared| {
            shared.tls = Some(tls.client_config());
            shared.channels = Mutex::new(HashMap::new());
        })
    }

    /// True when this client talks TLS.
    pub fn uses_tls(&self) -> bool {
        self.inner.tls.is_some()
    }

    /// The same cluster, sending `token` as the admin token (needed by the admin calls).
    pub fn with_admin_token(&self, token: impl Into<String>) -> Client {
        self.rebuilt(|shared| shared.admin_token = Some(token.into()))
    }

    /// The same cluster with another deadline per attempt (default [`CALL_DEADLINE`]).
    pub fn with_call_deadline(&self, deadline: Duration) -> Client {
        self.rebuilt(|shared| shared.call_deadline = deadline)
    }

    /// The same cluster with another failover budget (default [`FAILOVER_BUDGET`]): how long
    /// a call keeps trying the servers again before it ends with
    /// [`ClientError::Unreachable`]. `Duration::ZERO` makes one pass over the list.
    pub fn with_failover_budget(&self, budget: Duration) -> Client {
        self.rebuilt(|shared| shared.failover_budget = budget)
    }

    /// The servers, as given.
    pub fn servers(&self) -> &[ServerAddr] {
        &self.inner.servers
    }

    /// The leader as last reported, if any.
    pub fn leader(&self) -> Option<ServerAddr> {
        lock(&self.inner.leader).clone()
    }

    fn rebuilt(&self, change: impl FnOnce(&mut Shared)) -> Client {
        let mut shared = Shared {
            servers: self.inner.servers.clone(),
            channels: Mutex::new(lock(&self.inner.channels).clone()),
            leader: Mutex::new(self.leader()),
            admin_token: self.inner.admin_token.clone(),
            call_deadline: self.inner.call_deadline,
            failover_budget: self.inner.failover_budget,
            tls: self.inner.tls.clone(),
        };
        change(&mut shared);
        Client { inner: Arc::new(shared) }
    }

    /// `message` as a request with this client's deadline and admin token.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.inner.call_deadline);
        if let Some(token) = &self.inner.admin_token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// True when an admin token is set.
    pub(crate) fn has_admin_token(&self) -> bool {
        self.inner.admin_token.is_some()
    }

    fn channel(&self, server: &ServerAddr) -> Result<Channel, tonic::transport::Error> {
        let mut channels = lock(&self.inner.channels);
        if let Some(channel) = channels.get(server) {
            return Ok(channel.clone());
        }
        let endpoint = match &self.inner.tls {
            None => Endpoint::from_shared(server.uri())?,
            Some(tls) => {
                Endpoint::from_shared(format!("https://{server}"))?.tls_config(tls.clone())?
            }
        };
        let channel = qlm_net::wire::connect_lazy(&endpoint.connect_timeout(CONNECT_TIMEOUT));
        channels.insert(server.clone(), channel.clone());
        Ok(channel)
    }
}

/// The TLS settings of the environment: `QLM_TLS_CA` (the CA to trust), `QLM_CLIENT_CERT` and
/// `QLM_CLIENT_KEY` (a client certificate). `None` (plaintext) when none is set and the server
/// list did not ask for TLS (`wants_tls`: an `https://` entry).
pub fn tls_from_env(wants_tls: bool) -> Result<Option<qlm_net::tls::ClientTls>, ClientError> {
    let path = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from);
    let (ca, cert, key) = (path(TLS_CA_ENV), path(TLS_CLIENT_CERT_ENV), path(TLS_CLIENT_KEY_ENV));
    if !wants_tls && ca.is_none() && cert.is_none() && key.is_none() {
        return Ok(None);
    }
    qlm_net::tls::ClientTls::read(ca.as_deref(), cert.as_deref(), key.as_deref())
        .map(Some)
        .map_err(|e| ClientError::Tls(e.to_string()))
}

/// The admin token: `QLM_ADMIN_TOKEN`, or the first line of the file `QLM_ADMIN_TOKEN_FILE`
/// names.
pub fn admin_token_from_env() -> Result<String, ClientError> {
    if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
        return non_empty_token(token.trim(), ADMIN_TOKEN_ENV);
    }
    let path = std::env::var(ADMIN_TOKEN_FILE_ENV).map_err(|_| {
        ClientError::AdminToken(format!("set {ADMIN_TOKEN_ENV} or {ADMIN_TOKEN_FILE_ENV}"))
    })?;
    admin_token_from_file(std::path::Path::new(&path))
}

/// The admin token in the first line of `path`.
pub fn admin_token_from_file(path: &std::path::Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::AdminToken(format!("{}: {e}", path.display())))?;
    non_empty_token(text.lines().next().unwrap_or("").trim(), &path.display().to_string())
}

fn non_empty_token(token: &str, source: &str) -> Result<String, ClientError> {
    if token.is_empty() {
        return Err(ClientError::AdminToken(format!("{source} is empty")));
    }
    Ok(token.to_owned())
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
