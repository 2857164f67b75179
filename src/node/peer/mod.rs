//! The peer port, both halves side by side: [`service`] is what other nodes call on this one
//! (`RaftService`: openraft's messages, and what followers ask of the leader), [`client`] is
//! how this node calls them (forwarded writes, heartbeats, read indexes, hellos). Both share
//! the node's one table of peer channels, `qlm_raft::PeerChannels`, with openraft's network.

pub mod client;
pub mod service;

pub use client::{FORWARD_DEADLINE, PEER_CALL_DEADLINE, Peers};
pub use service::{
    CLUSTER_MISMATCH, CLUSTER_REFUSAL, LEADER_ADDR_METADATA, LEADER_ID_METADATA, LeaderOps,
    PeerService, REFUSAL_LOG_EVERY, REFUSALS_REMEMBERED, not_leader, read_index,
};
