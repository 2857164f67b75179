//! QuorumLM's transport, shared by the node and the client library:
//!
//! - [`wire`]: the TCP connection under every gRPC channel QuorumLM dials (writes coalesced).
//! - [`tls`]: PEM files read into what tonic's rustls transport takes, for the node's two ports
//!   and for clients; with the `certs` feature, making a cluster CA and node certificates
//!   (`qlm cert`), which only the command line and tests need.

pub mod tls;
pub mod wire;
