//! License files, their signatures, and the policy (options) file.
//!
//! A vendor signs each FEATURE line of a license file with its ed25519 key; the server trusts
//! a set of vendor public keys and serves only the lines whose signature verifies. A line that
//! is malformed, unsigned, tampered with or signed by an untrusted key is refused with its
//! reason (file, line, field), and the other lines still serve: one bad line never takes a
//! whole site down. The options file is the other way round: one bad line refuses the whole
//! file and the current policy stays, since a half-applied policy gives reserved seats away.
//!
//! This module knows nothing of Raft, gRPC or the clock; the engine consumes its [`Pool`]s and
//! [`Policy`].
//!
//! - `error`: [`LineError`], one located problem in a file
//! - `names`: the rule for feature names, shared by both kinds of file
//! - `time`: UTC dates of license files and the engine's millisecond timestamps
//! - `version`: dotted feature versions
//! - `pool`: a validated FEATURE line ([`Pool`])
//! - `policy`: the parsed options file ([`Policy`]) and who its rules name
//! - `options`: the options file parser ([`parse_options`]), all or nothing, and its printer

pub mod error;
pub mod names;
pub mod options;
pub mod policy;
pub mod pool;
pub mod time;
pub mod version;

pub use error::LineError;
pub use options::parse_options;
pub use policy::{AccessRule, Policy, SeatRule, Who, WhoKind};
pub use pool::{DupGroup, Expiry, HostId, Pool, PoolId, SeatUnit};
pub use time::{Date, Timestamp};
pub use version::Version;
