//! A pool: one signed, validated FEATURE line, as the engine counts it.
//!
//! The parser (`file.rs`) turns text into [`Pool`]s only after every field is valid and the
//! signature verifies, so everything downstream can trust a `Pool` without checking again.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::{Date, Timestamp};
use crate::version::Version;

/// Largest seat or token count one pool may carry. Larger numbers are typos or attacks, and
/// this bound keeps every sum of seats far from overflowing a `u64`.
pub const MAX_POOL_SEATS: u32 = 1_000_000;

/// Borrow cap, in hours, when the FEATURE line does not set `borrow=` (FlexLM's default
/// BORROW period is one week).
pub const DEFAULT_MAX_BORROW_HOURS: u32 = 168;

/// Stable identity of a pool: a digest of its canonical form. The same signed line keeps the
/// same id across reloads, so seats held on it stay counted against it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PoolId(pub String);

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a pool counts: seats (`count=`) or tokens (`tokens=`). Both are consumed the same way
/// (a checkout of N takes N); the unit is kept so status shows what the vendor sold.
///
/// `Uncounted` (`count=uncounted`) counts nothing: the line is node-locked, checked by the
/// application on its machine, and servers refuse it (`load.rs`), so the engine never sees
/// one. It is the last variant because pools are stored in the Raft log and snapshots by
/// variant index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SeatUnit {
    Seats,
    Tokens,
    Uncounted,
}

impl SeatUnit {
    /// The plural word for the unit, as status output shows it (`25 seats`, `100 tokens`).
    pub fn as_str(self) -> &'static str {
        match self {
            SeatUnit::Seats => "seats",
            SeatUnit::Tokens => "tokens",
            SeatUnit::Uncounted => "uncounted",
        }
    }
}

/// When a pool stops serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Expiry {
    /// Valid through the end of this UTC day.
    On(Date),
    /// Never expires (`expires=permanent`).
    Permanent,
}

impl fmt::Display for Expiry {
    /// As in license files: `2027-12-31` or `permanent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::On(date) => write!(f, "{date}"),
            Expiry::Permanent => f.write_str("permanent"),
        }
    }
}

/// Which machines may serve a pool (`hostid=`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HostId {
    /// `hostid=ANY`: any machine.
    Any,
    /// `hostid="id1 id2"` (or comma separated): only these machines.
    List(BTreeSet<String>),
}

impl fmt::Display for HostId {
    /// `ANY`, or the host ids comma separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostId::Any => f.write_str("ANY"),
            HostId::List(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(id)?;
                }
                Ok(())
            }
        }
    }
}

/// How checkouts of one feature share seats (FlexLM's DUP_GROUP).
///
/// With `User`, every checkout of the feature by the same user shares one set of seats; with
/// `Host`, by the same host; with `UserHost`, by the same user on the same host; with `None`,
/// every checkout takes its own seats.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum DupGroup {
    #[default]
    None,
    User,
    Host,
    UserHost,
}

impl DupGroup {
    /// The spelling used in license files.
    pub fn as_str(self) -> &'static str {
        match self {
            DupGroup::None => "none",
            DupGroup::User => "user",
            DupGroup::Host => "host",
            DupGroup::UserHost => "user_host",
        }
    }
}

/// One valid, verified FEATURE line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Digest of the canonical form; stable across reloads.
    pub id: PoolId,
    /// The feature this pool licenses (`vhdl-editor`).
    pub feature: String,
    /// The software maker that signed it.
    pub vendor: String,
    /// Serves requests for this version and lower.
    pub version: Version,
    /// Seats or tokens, 1..=[`MAX_POOL_SEATS`]; 0 for an uncounted (node-locked) line.
    pub seats: u32,
    /// Whether `seats` came from `count=` or `tokens=`, or the line is `count=uncounted`.
    pub unit: SeatUnit,
    /// First day of validity (UTC); `None` means valid from the start of time.
    pub start: Option<Date>,
    /// Last day of validity.
    pub expires: Expiry,
    /// Day the vendor issued the line, for the record.
    pub issued: Option<Date>,
    /// Machines that may serve this pool.
    pub hostid: HostId,
    /// Seat sharing between checkouts of one user or host.
    pub dup_group: DupGroup,
    /// The licensee, for display (`customer="ACME Corp"`).
    pub customer: Option<String>,
    /// Free text the vendor signed with the line.
    pub notes: Option<String>,
    /// Longest borrow the vendor allows, in hours; `0` means borrowing is not allowed.
    pub max_borrow_hours: u32,
}

impl Pool {
    /// Whether the line is node-locked (`count=uncounted`): checked by the application on a
    /// machine its `hostid=` names, not served by a server.
    pub fn is_node_locked(&self) -> bool {
        self.unit == SeatUnit::Uncounted
    }

    /// First instant the pool serves.
    pub fn starts_at(&self) -> Timestamp {
        self.start.map(Date::start_of_day).unwrap_or_default()
    }

    /// First instant the pool no longer serves, or `None` if permanent.
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self.expires {
            Expiry::On(date) => Some(date.end_of_day()),
            Expiry::Permanent => None,
        }
    }

    /// Whether the pool has started serving at `now`.
    pub fn is_started(&self, now: Timestamp) -> bool {
        now >= self.starts_at()
    }

    /// Whether the pool has stopped serving at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at().is_some_and(|end| now >= end)
    }
}
