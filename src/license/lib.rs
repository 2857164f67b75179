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
//! - `hostid`: the forms of `hostid=` entries and [`HostId::matches`]
//! - `policy`: the parsed options file ([`Policy`]) and who its rules name
//! - `options`: the options file parser ([`parse_options`]), all or nothing, and its printer
//! - `lexer`: physical lines into logical lines (`\` continuations, comments), and tokens
//! - `file`: the FEATURE line format, parsed into unverified [`ParsedLine`]s
//! - `fields`: what each key's value accepts, and the [`Pool`] a line makes
//! - `canonical`: the exact bytes a vendor signs, and the [`PoolId`] digest of them
//! - `signing`: ed25519 [`VendorKey`], [`VendorPublicKey`], [`TrustedKeys`]
//! - `keyfile`: the text files vendor keys are kept in
//! - `load`: whole files: [`load_licenses`] for servers, [`sign_license_text`] for vendors

pub mod canonical;
pub mod error;
pub mod fields;
pub mod file;
pub mod hostid;
pub mod keyfile;
mod lexer;
pub mod load;
pub mod names;
pub mod options;
pub mod policy;
pub mod pool;
pub mod read;
pub mod signing;
pub mod time;
pub mod version;

pub use canonical::{CANONICAL_TAG, canonical_form, pool_id};
pub use error::LineError;
pub use file::{Keyword, ParsedLine, parse_license_text};
pub use hostid::{HostIdKind, check_host_id, ethernet_address};
pub use keyfile::{KeyFileError, KeyPairPaths, write_key_pair};
pub use lexer::MAX_LOGICAL_LINE_BYTES;
pub use load::{
    FileError, LicenseSet, NODE_LOCKED_NOT_SERVED, VerifiedLine, load_license_file, load_licenses,
    read_license_file, sign_license_text, verify_license_text,
};
pub use options::parse_options;
pub use policy::{AccessRule, Policy, SeatRule, Who, WhoKind};
pub use pool::{DupGroup, Expiry, HostId, Pool, PoolId, SeatUnit};
pub use read::Oversize;
pub use signing::{LicenseSignature, TrustedKeys, VendorKey, VendorPublicKey};
pub use time::{Date, Timestamp};
pub use version::Version;
