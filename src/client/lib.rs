//! The Rust client library an application links.
//!
//! An application lists every node (`QLM_SERVERS=host1:7400,host2:7400,host3:7400`), opens
//! one [`Session`] for its process, and checks features out; the library heartbeats in the
//! background, fails over between nodes, and checks in when a [`Checkout`] guard is dropped.
//!
//! ```no_run
//! use qlm_client::{CheckoutOptions, Client, ClientError, SessionOptions};
//!
//! # async fn run() -> Result<(), ClientError> {
//! let client = Client::from_env()?; // QLM_SERVERS
//! let session = client.open_session(SessionOptions::from_process()).await?;
//! let options = CheckoutOptions { version: Some("4.0".into()), ..Default::default() };
//! match session.checkout("vhdl-editor", options).await {
//!     Ok(seat) => {
//!         // ... the licensed work ...
//!         seat.checkin().await?;
//!     }
//!     Err(ClientError::Denied { reason, message, holders }) => {
//!         eprintln!("{reason:?}: {message}; held by {} checkouts", holders.len());
//!     }
//!     Err(other) => return Err(other),
//! }
//! session.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Guarantees and limits:
//!
//! - Every rpc has a deadline ([`CALL_DEADLINE`]); on UNAVAILABLE, a transport failure or a
//!   deadline the same request goes to the next node: the leader first (from answers'
//!   leader hints), then the list in order, pass after pass (short pauses, growing to a cap)
//!   for up to [`FAILOVER_BUDGET`], enough to ride out a leader election. Then the call fails
//!   with [`ClientError::Unreachable`]. An answer that is not a failover reason (a denial,
//!   INVALID_ARGUMENT, NOT_FOUND, ...) is returned at once.
//! - Writes carry a request id that stays the same across retries, so a checkout retried on
//!   another node is granted once.
//! - A denial is [`ClientError::Denied`] with the server's reason, message and holders.
//!
//! The parts:
//!
//! - `endpoints`: the server list (`QLM_SERVERS`), in QuorumLM's and FlexLM's spellings
//! - `connection`: [`Client`], lazy channels per server, failover, deadlines, admin token,
//!   TLS (`https://`, [`Client::with_tls`] with a [`qlm_net::tls::ClientTls`])
//! - `session`: [`Session`] and its heartbeat task
//! - `checkout`: [`CheckoutOptions`], the [`Checkout`] guard, waiting in a queue
//! - `status`, `admin`: StatusService and AdminService calls
//! - [`hostid`]: this machine's host ids; [`nodelocked`]: node-locked (`count=uncounted`)
//!   lines checked here, with no server
//! - `error`: [`ClientError`]
//! - `licenser`: [`Licenser`], the walk down a search path every client uses
//! - [`search_path`]: `QLM_LICENSE`, FlexLM's license search path: files, directories,
//!   servers and clusters, tried in order
//! - [`blocking`]: the synchronous client the C library and the Python package sit on: it
//!   owns a runtime thread, walks the search path, and reports a lost session

mod admin;
pub mod blocking;
mod checkout;
mod connection;
pub mod endpoints;
mod error;
pub mod hostid;
mod licenser;
pub mod nodelocked;
pub mod search_path;
mod session;
mod status;

pub use admin::RemoveTarget;
pub use checkout::{Checkout, CheckoutOptions, MAX_WAIT_RECONNECTS};
pub use connection::{
    ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV, CALL_DEADLINE, CONNECT_TIMEOUT, Client, FAILOVER_BUDGET,
    LEADER_ADDR_METADATA, RETRY_BACKOFF_FIRST, RETRY_BACKOFF_MAX, SERVERS_ENV, TLS_CA_ENV,
    TLS_CLIENT_CERT_ENV, TLS_CLIENT_KEY_ENV, admin_token_from_env, admin_token_from_file,
    tls_from_env,
};
pub use endpoints::{ServerAddr, ServerListError, list_wants_tls, parse_servers};
pub use error::ClientError;
pub use licenser::{
    CheckoutRequest, Grant, Licenser, LostReason, SessionStatus, vendor_key_from_text,
};
pub use session::{MIN_HEARTBEAT_INTERVAL, Session, SessionOptions};
