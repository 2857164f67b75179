//! The policy (FlexLM's options file) as data: who may use which feature, and how much.
//!
//! The parser of the options file lives in `options.rs`; this module is the parsed form that
//! the engine consults, and the one question it asks of it: does this rule name this client?
//! A `Policy` prints back as options text through its `Display` (in `options/print.rs`).
//!
//! | keyword | meaning |
//! |---|---|
//! | `GROUP name user...` | a named set of users (lines with the same name add up) |
//! | `HOST_GROUP name host...` | a named set of hosts |
//! | `RESERVE n feature TYPE name` | n seats of the feature only for the named |
//! | `MAX n feature TYPE name` | the named together hold at most n seats of the feature |
//! | `INCLUDE feature TYPE name` | the feature is only for the listed (all INCLUDE lines) |
//! | `EXCLUDE feature TYPE name` | the named may not use the feature; wins over INCLUDE |
//! | `INCLUDEALL` / `EXCLUDEALL TYPE name` | the same for every feature |
//! | `TIMEOUT feature secs` | a session that holds or waits for the feature expires after this long without a heartbeat (its TTL is shortened), and with it all its seats |
//! | `LINGER feature secs` | a seat stays taken this long after checkin |
//! | `MAX_BORROW_HOURS feature h` | longest borrow (lowers the vendor's cap, never raises it) |
//!
//! TYPE is `USER`, `GROUP`, `HOST` or `HOST_GROUP`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of name a rule names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WhoKind {
    User,
    Group,
    Host,
    HostGroup,
}

impl WhoKind {
    /// The keyword used in options files.
    pub fn as_str(self) -> &'static str {
        match self {
            WhoKind::User => "USER",
            WhoKind::Group => "GROUP",
            WhoKind::Host => "HOST",
            WhoKind::HostGroup => "HOST_GROUP",
        }
    }
}

/// The client a rule names: `USER alice`, `GROUP designers`, `HOST ws12`, `HOST_GROUP lab`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Who {
    pub kind: WhoKind,
    pub name: String,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.name)
    }
}

/// `RESERVE seats feature who`, or `MAX seats feature who`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeatRule {
    pub seats: u32,
    pub feature: String,
    pub who: Who,
    /// Line of the options file, for messages.
    pub line: usize,
}

/// `INCLUDE feature who` / `EXCLUDE feature who`; `feature: None` is INCLUDEALL / EXCLUDEALL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessRule {
    pub feature: Option<String>,
    pub who: Who,
    pub line: usize,
}

impl AccessRule {
    /// Whether the rule is about `feature`.
    pub fn covers(&self, feature: &str) -> bool {
        self.feature.as_deref().is_none_or(|f| f == feature)
    }
}

/// The whole options file, parsed. The default policy restricts nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `GROUP name users...`, by group name.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// `HOST_GROUP name hosts...`, by group name.
    pub host_groups: BTreeMap<String, BTreeSet<String>>,
    /// `RESERVE` lines, in file order.
    pub reserves: Vec<SeatRule>,
    /// `MAX` lines, in file order.
    pub maxes: Vec<SeatRule>,
    /// `INCLUDE` / `INCLUDEALL` lines.
    pub includes: Vec<AccessRule>,
    /// `EXCLUDE` / `EXCLUDEALL` lines.
    pub excludes: Vec<AccessRule>,
    /// `TIMEOUT feature secs`, by feature.
    pub timeouts: BTreeMap<String, u32>,
    /// `LINGER feature secs`, by feature.
    pub lingers: BTreeMap<String, u32>,
    /// `MAX_BORROW_HOURS feature hours`, by feature.
    pub max_borrow_hours: BTreeMap<String, u32>,
}

impl Policy {
    /// Whether `who` names the client `user` on `host`. Names compare exactly (FlexLM
    /// compares user names case-sensitively on Unix); a group that is not defined names
    /// nobody.
    pub fn names(&self, who: &Who, user: &str, host: &str) -> bool {
        match who.kind {
            WhoKind::User => who.name == user,
            WhoKind::Host => who.name == host,
            WhoKind::Group => self.groups.get(&who.name).is_some_and(|g| g.contains(user)),
            WhoKind::HostGroup => self.host_groups.get(&who.name).is_some_and(|g| g.contains(host)),
        }
    }

    /// Whether the client may use `feature` at all: not excluded, and included if the feature
    /// has any INCLUDE rule. EXCLUDE wins over INCLUDE.
    pub fn allows(&self, feature: &str, user: &str, host: &str) -> bool {
        let named = |r: &AccessRule| r.covers(feature) && self.names(&r.who, user, host);
        if self.excludes.iter().any(named) {
            return false;
        }
        let mut includes = self.includes.iter().filter(|r| r.covers(feature)).peekable();
        includes.peek().is_none() || includes.any(|r| self.names(&r.who, user, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(kind: WhoKind, name: &str) -> Who {
        Who { kind, name: name.into() }
    }

    #[test]
    fn exclude_wins_over_include() {
        let mut p = Policy::default();
        p.groups.insert("eng".into(), ["alice".into(), "bob".into()].into());
        p.includes.push(AccessRule {
            feature: Some("sim".into()),
            who: who(WhoKind::Group, "eng"),
            line: 1,
        });
        p.excludes.push(AccessRule { feature: None, who: who(WhoKind::User, "bob"), line: 2 });
        assert!(p.allows("sim", "alice", "h"));
        assert!(!p.allows("sim", "bob", "h"), "EXCLUDEALL bob wins over INCLUDE eng");
        assert!(!p.allows("sim", "carol", "h"), "INCLUDE makes sim exclusive to eng");
        assert!(p.allows("editor", "carol", "h"), "no INCLUDE on editor");
    }

    #[test]
    fn undefined_groups_name_nobody() {
        let p = Policy::default();
        assert!(!p.names(&who(WhoKind::Group, "ghosts"), "alice", "h"));
        assert!(!p.names(&who(WhoKind::HostGroup, "lab"), "alice", "h"));
        assert!(p.names(&who(WhoKind::Host, "h"), "alice", "h"));
    }
}
