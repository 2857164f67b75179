//! The Rust client library an application links (built with the server, issue 4).
//!
//! - `endpoints`: the server list (`QLM_SERVERS`), in QuorumLM's and FlexLM's spellings.

pub mod endpoints;

pub use endpoints::{ServerAddr, ServerListError, parse_servers};
