//! The vocabulary of options files: statement keywords, their forms, and rule TYPEs.
//!
//! Keywords and TYPEs are compared case-insensitively, as FlexLM admins write both. FlexLM
//! words that QuorumLM does not implement are listed so that the error says "not supported"
//! rather than "unknown": the admin then knows the line is not a typo.

use crate::WhoKind;

use super::shown;

/// A statement's first word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Keyword {
    Group,
    HostGroup,
    Reserve,
    Max,
    Include,
    Exclude,
    IncludeAll,
    ExcludeAll,
    Timeout,
    Linger,
    MaxBorrowHours,
}

impl Keyword {
    const ALL: [Keyword; 11] = [
        Keyword::Group,
        Keyword::HostGroup,
        Keyword::Reserve,
        Keyword::Max,
        Keyword::Include,
        Keyword::Exclude,
        Keyword::IncludeAll,
        Keyword::ExcludeAll,
        Keyword::Timeout,
        Keyword::Linger,
        Keyword::MaxBorrowHours,
    ];

    pub(super) fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Keyword::Group => "GROUP",
            Keyword::HostGroup => "HOST_GROUP",
            Keyword::Reserve => "RESERVE",
            Keyword::Max => "MAX",
            Keyword::Include => "INCLUDE",
            Keyword::Exclude => "EXCLUDE",
            Keyword::IncludeAll => "INCLUDEALL",
            Keyword::ExcludeAll => "EXCLUDEALL",
            Keyword::Timeout => "TIMEOUT",
            Keyword::Linger => "LINGER",
            Keyword::MaxBorrowHours => "MAX_BORROW_HOURS",
        }
    }

    /// The statement's form, as error messages show it.
    pub(super) fn form(self) -> &'static str {
        match self {
            Keyword::Group => "GROUP name user...",
            Keyword::HostGroup => "HOST_GROUP name host...",
            Keyword::Reserve => "RESERVE n feature TYPE name",
            Keyword::Max => "MAX n feature TYPE name",
            Keyword::Include => "INCLUDE feature TYPE name",
            Keyword::Exclude => "EXCLUDE feature TYPE name",
            Keyword::IncludeAll => "INCLUDEALL TYPE name",
            Keyword::ExcludeAll => "EXCLUDEALL TYPE name",
            Keyword::Timeout => "TIMEOUT feature secs",
            Keyword::Linger => "LINGER feature secs",
            Keyword::MaxBorrowHours => "MAX_BORROW_HOURS feature hours",
        }
    }
}

/// FlexLM options keywords that QuorumLM does not implement; named so the error says so
/// rather than calling them unknown.
pub(super) const FLEXLM_ONLY_KEYWORDS: [&str; 14] = [
    "ACTIVATION_EXPIRY_DAYS",
    "ACTIVATION_LOWWATER",
    "BORROW_LOWWATER",
    "DEBUGLOG",
    "EXCLUDE_BORROW",
    "EXCLUDE_ENTITLEMENT",
    "FQDN_MATCHING",
    "GROUPCASEINSENSITIVE",
    "INCLUDE_BORROW",
    "INCLUDE_ENTITLEMENT",
    "MAX_OVERDRAFT",
    "NOLOG",
    "REPORTLOG",
    "TIMEOUTALL",
];

/// FlexLM rule TYPEs that QuorumLM does not implement.
const FLEXLM_ONLY_TYPES: [&str; 3] = ["DISPLAY", "INTERNET", "PROJECT"];

/// The TYPE of a rule, `USER`, `GROUP`, `HOST` or `HOST_GROUP`, in any case.
pub(super) fn parse_kind(word: &str) -> Result<WhoKind, String> {
    let kinds = [WhoKind::User, WhoKind::Group, WhoKind::Host, WhoKind::HostGroup];
    if let Some(kind) = kinds.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(word)) {
        return Ok(kind);
    }
    let upper = word.to_ascii_uppercase();
    Err(if FLEXLM_ONLY_TYPES.contains(&upper.as_str()) {
        format!("{} is a FlexLM TYPE that QuorumLM does not support", shown(word))
    } else {
        format!("{} is not a TYPE; expected USER, GROUP, HOST or HOST_GROUP", shown(word))
    })
}
