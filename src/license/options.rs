//! The options file: FlexLM's words for who may use which feature, parsed into a [`Policy`].
//!
//! Admins who ran FlexLM know this file; QuorumLM reads the same statements with the same
//! meaning (see the keyword table in [`crate::policy`]):
//!
//! ```text
//! # /etc/quorumlm/site.opt
//! GROUP    designers alice bob "Ann Lee"
//! GROUP    designers carol            # GROUP lines with one name add up
//! HOST_GROUP lab ws01 ws02 \
//!              ws03                   # a line ending in \ continues
//! RESERVE 2 vhdl-editor GROUP designers
//! MAX     5 simulator   HOST_GROUP lab
//! INCLUDE   simulator   GROUP designers
//! EXCLUDE   simulator   USER  mallory
//! EXCLUDEALL            HOST  kiosk
//! TIMEOUT   vhdl-editor 3600
//! LINGER    simulator   120
//! MAX_BORROW_HOURS vhdl-editor 72
//! ```
//!
//! One statement per line; `#` starts a comment; a line ending in `\` continues on the next,
//! and errors name the line the statement starts on. Keywords and TYPEs (`USER`, `GROUP`,
//! `HOST`, `HOST_GROUP`) are case-insensitive, since FlexLM admins write both; names are
//! case-sensitive; a name with spaces is written in double quotes. The lexical details are in
//! `options/lex.rs`.
//!
//! # All or nothing
//!
//! A file with any bad line is refused whole, and every bad line is reported, each with its
//! line number, keyword or field, and what is wrong. A half-applied policy is worse than the
//! old one: a dropped `RESERVE` gives reserved seats away, a dropped `EXCLUDE` lets in whom it
//! kept out, a dropped `GROUP` line shrinks every rule that names the group. So the server
//! keeps its current policy until the whole file is right, and the admin fixes every line in
//! one round.
//!
//! # What is checked, and what is not
//!
//! - Counts: `RESERVE` and `MAX` take 1 to [`MAX_POOL_SEATS`] seats; `TIMEOUT` takes
//!   [`MIN_TIMEOUT_SECS`] to [`MAX_TIMEOUT_SECS`] seconds. FlexLM refuses timeouts under
//!   900 s; QuorumLM does not, so tests and labs can use short ones, but in production a
//!   `TIMEOUT` under 900 s takes seats from clients whose heartbeats are merely late (a
//!   network blip, a laptop waking up). `LINGER` takes 0 to [`MAX_LINGER_SECS`],
//!   `MAX_BORROW_HOURS` 0 to [`MAX_BORROW_HOURS_SETTING`].
//! - Feature names follow the license file's rule ([`check_feature_name`]); FlexLM's
//!   qualifiers (`feature:VERSION=2.0`) are refused, not ignored, since ignoring one would
//!   widen the rule to every version. User, host and group names are checked by
//!   [`check_principal_name`].
//! - A `GROUP` or `HOST_GROUP` named by a rule must be defined somewhere in the file (before
//!   or after the rule): an undefined group would silently name nobody, and is almost always a
//!   typo.
//! - `TIMEOUT`, `LINGER` and `MAX_BORROW_HOURS` may be set once per feature.
//! - The sum of `RESERVE` seats of one feature is not checked against its license count,
//!   which this parser does not know (and which changes with the license file). The engine
//!   reads reservations beyond the count as "every seat is reserved": unreserved clients get
//!   none, and the owners share the seats there are.
//! - Features the license file does not sell are not an error here: the options file often
//!   outlives a license file, and the rule simply has nothing to act on.
//!
//! The parsed [`Policy`] prints back as options text through its `Display` (in
//! `options/print.rs`), which is how the active policy is shown to admins; printing and
//! parsing again gives the same policy.

mod keyword;
mod lex;
mod print;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::names::check_feature_name;
use crate::pool::MAX_POOL_SEATS;
use crate::read::{Oversize, read_at_most};
use crate::{AccessRule, LineError, Policy, SeatRule, Who, WhoKind};

use self::keyword::{FLEXLM_ONLY_KEYWORDS, Keyword, parse_kind};

/// Shortest `TIMEOUT`, in seconds. FlexLM's minimum is 900; see the module doc.
pub const MIN_TIMEOUT_SECS: u32 = 1;

/// Longest `TIMEOUT`, in seconds: 31 days. A longer one is a typo (or a wish to never time
/// out, which is what leaving TIMEOUT out says).
pub const MAX_TIMEOUT_SECS: u32 = 31 * SECS_PER_DAY;

/// Longest `LINGER`, in seconds: 31 days. Longer lingers are typos that would hold seats for
/// months.
pub const MAX_LINGER_SECS: u32 = 31 * SECS_PER_DAY;

/// Largest `MAX_BORROW_HOURS`: one year. It can only lower the vendor's cap, so this is a
/// sanity bound, not a policy.
pub const MAX_BORROW_HOURS_SETTING: u32 = 365 * 24;

/// Longest user, host or group name, in bytes. Unix user names and DNS host names are far
/// shorter; longer names are garbage.
pub const MAX_PRINCIPAL_NAME_LEN: usize = 256;

/// Largest options file [`load_options_file`] reads. The policy travels to every node in one
/// Raft log entry with the license set, at most `qlm_raft::MAX_ENTRY_BYTES` encoded: a
/// policy keeps the names and numbers but not the keywords, so a file of this size leaves room
/// for the license set (the exact size is checked before they are proposed). A real site's
/// file is a few kilobytes.
pub const MAX_OPTIONS_FILE_BYTES: u64 = 512 * 1024;

/// Most characters of a bad word quoted back in an error message.
const MAX_SHOWN_CHARS: usize = 40;

const SECS_PER_DAY: u32 = 24 * 60 * 60;

/// Why an options file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum OptionsFileError {
    /// The file could not be read.
    #[error("cannot read options file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The file is larger than [`MAX_OPTIONS_FILE_BYTES`].
    #[error("options file {} {oversize}", path.display())]
    TooLarge { path: PathBuf, oversize: Oversize },
    /// Some lines are bad; nothing of the file was applied. Each error names the file.
    #[error("{}", BadLines(.0))]
    Lines(Vec<LineError>),
}

/// Reads and parses the options file at `path`; errors name the file as `path` shows it.
pub fn load_options_file(path: &Path) -> Result<Policy, OptionsFileError> {
    let read_error = |source| OptionsFileError::Read { path: path.to_owned(), source };
    let bytes = read_at_most(path, MAX_OPTIONS_FILE_BYTES)
        .map_err(read_error)?
        .map_err(|oversize| OptionsFileError::TooLarge { path: path.to_owned(), oversize })?;
    let origin = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        OptionsFileError::Lines(vec![LineError::line(&origin, line, "the text is not UTF-8")])
    })?;
    parse_options(&origin, &text).map_err(OptionsFileError::Lines)
}

/// Parses the text of an options file. `origin` names the file in errors (`site.opt`,
/// `<stdin>`). Either every statement is valid and the whole policy comes back, or every bad
/// line comes back, in line order, and nothing else.
///
/// ```
/// use qlm_license::parse_options;
///
/// let policy = parse_options("site.opt", "GROUP eng alice bob\nRESERVE 1 sim GROUP eng\n")
///     .expect("valid");
/// assert_eq!(policy.reserves[0].seats, 1);
///
/// let errors = parse_options("site.opt", "RESERVE 0 sim GROUP eng\nLINGR sim 5\n")
///     .expect_err("refused whole");
/// let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
/// assert_eq!(shown, [
///     "site.opt:1: field `RESERVE n`: `0` is out of range: RESERVE takes 1 to 1000000 seats",
///     "site.opt:1: field `RESERVE name`: GROUP `eng` is not defined in this file",
///     "site.opt:2: field `LINGR`: unknown keyword `LINGR`",
/// ]);
/// ```
pub fn parse_options(origin: &str, text: &str) -> Result<Policy, Vec<LineError>> {
    let mut parser = Parser::new(origin);
    for statement in lex::statements(origin, text) {
        match statement {
            Ok(statement) => parser.statement(statement.line, &statement.words),
            Err(error) => parser.errors.push(error),
        }
    }
    parser.finish()
}

/// Checks a user, host or group name: not empty, at most [`MAX_PRINCIPAL_NAME_LEN`] bytes, no
/// control characters, no `"`, no spaces at either end. Spaces inside are allowed (Windows
/// user names have them; write them in quotes).
pub fn check_principal_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.len() > MAX_PRINCIPAL_NAME_LEN {
        return Err(format!(
            "{} is {} bytes long; the most is {MAX_PRINCIPAL_NAME_LEN}",
            shown(name),
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|&c| c.is_control() || c == '"') {
        return Err(format!("{} contains `{}`", shown(name), bad.escape_debug()));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(format!("{} starts or ends with a space", shown(name)));
    }
    Ok(())
}

/// The values a number may take, and what it counts.
#[derive(Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
    unit: &'static str,
}

const SEATS: Bounds = Bounds { min: 1, max: MAX_POOL_SEATS, unit: "seats" };
const TIMEOUT_SECS: Bounds =
    Bounds { min: MIN_TIMEOUT_SECS, max: MAX_TIMEOUT_SECS, unit: "seconds" };
const LINGER_SECS: Bounds = Bounds { min: 0, max: MAX_LINGER_SECS, unit: "seconds" };
const BORROW_HOURS: Bounds = Bounds { min: 0, max: MAX_BORROW_HOURS_SETTING, unit: "hours" };

/// A `GROUP` or `HOST_GROUP` named by a rule, checked once the whole file is read.
struct GroupReference {
    who: Who,
    line: usize,
    keyword: Keyword,
}

/// The state of one parse: the policy so far, and what the whole-file checks need.
struct Parser<'a> {
    origin: &'a str,
    policy: Policy,
    errors: Vec<LineError>,
    /// Names on any `GROUP` line, even a bad one, so one bad line gives one error.
    group_names: BTreeSet<String>,
    /// Names on any `HOST_GROUP` line, even a bad one.
    host_group_names: BTreeSet<String>,
    group_references: Vec<GroupReference>,
    /// Line of each `TIMEOUT`, `LINGER`, `MAX_BORROW_HOURS` by keyword and feature.
    settings_seen: BTreeMap<(Keyword, String), usize>,
}

impl<'a> Parser<'a> {
    fn new(origin: &'a str) -> Self {
        Parser {
            origin,
            policy: Policy::default(),
            errors: Vec::new(),
            group_names: BTreeSet::new(),
            host_group_names: BTreeSet::new(),
            group_references: Vec::new(),
            settings_seen: BTreeMap::new(),
        }
    }

    fn statement(&mut self, line: usize, words: &[String]) {
        let Some((first, args)) = words.split_first() else { return };
        let Some(keyword) = Keyword::parse(first) else {
            let upper = first.to_ascii_uppercase();
            let message = if FLEXLM_ONLY_KEYWORDS.contains(&upper.as_str()) {
                format!("{} is a FlexLM keyword that QuorumLM does not support", shown(first))
            } else {
                format!("unknown keyword {}", shown(first))
            };
            let field = truncated(first).escape_debug().to_string();
            self.errors.push(LineError::field(self.origin, line, field, message));
            return;
        };
        match keyword {
            Keyword::Group | Keyword::HostGroup => self.group(keyword, line, args),
            Keyword::Reserve | Keyword::Max => self.seat_rule(keyword, line, args),
            Keyword::Include | Keyword::Exclude | Keyword::IncludeAll | Keyword::ExcludeAll => {
                self.access_rule(keyword, line, args)
            }
            Keyword::Timeout | Keyword::Linger | Keyword::MaxBorrowHours => {
                self.setting(keyword, line, args)
            }
        }
    }

    /// `GROUP name user...` / `HOST_GROUP name host...`
    fn group(&mut self, keyword: Keyword, line: usize, args: &[String]) {
        let Some((name, members)) = args.split_first() else {
            return self.wrong_form(keyword, line);
        };
        if keyword == Keyword::Group {
            self.group_names.insert(name.clone());
        } else {
            self.host_group_names.insert(name.clone());
        }
        if members.is_empty() {
            return self.wrong_form(keyword, line);
        }
        let mut valid = self.principal(keyword, "name", line, name);
        for member in members {
            valid &= self.principal(keyword, "member", line, member);
        }
        if valid {
            let groups = match keyword {
                Keyword::Group => &mut self.policy.groups,
                _ => &mut self.policy.host_groups,
            };
            groups.entry(name.clone()).or_default().extend(members.iter().cloned());
        }
    }

    /// `RESERVE n feature TYPE name` / `MAX n feature TYPE name`
    fn seat_rule(&mut self, keyword: Keyword, line: usize, args: &[String]) {
        let [seats, feature, kind, name] = args else {
            return self.wrong_form(keyword, line);
        };
        let seats = self.number(keyword, "n", line, seats, SEATS);
        let feature = self.feature(keyword, line, feature);
        let who = self.who(keyword, line, kind, name);
        let (Some(seats), Some(feature), Some(who)) = (seats, feature, who) else { return };
        let rule = SeatRule { seats, feature, who, line };
        match keyword {
            Keyword::Reserve => self.policy.reserves.push(rule),
            _ => self.policy.maxes.push(rule),
        }
    }

    /// `INCLUDE feature TYPE name`, `EXCLUDE ...`, `INCLUDEALL TYPE name`, `EXCLUDEALL ...`
    fn access_rule(&mut self, keyword: Keyword, line: usize, args: &[String]) {
        let (feature, kind, name) = match (keyword, args) {
            (Keyword::Include | Keyword::Exclude, [feature, kind, name]) => {
                let Some(feature) = self.feature(keyword, line, feature) else {
                    // Still check the rest, so every fault of the line is reported.
                    self.who(keyword, line, kind, name);
                    return;
                };
                (Some(feature), kind, name)
            }
            (Keyword::IncludeAll | Keyword::ExcludeAll, [kind, name]) => (None, kind, name),
            _ => return self.wrong_form(keyword, line),
        };
        let Some(who) = self.who(keyword, line, kind, name) else { return };
        let rule = AccessRule { feature, who, line };
        match keyword {
            Keyword::Include | Keyword::IncludeAll => self.policy.includes.push(rule),
            _ => self.policy.excludes.push(rule),
        }
    }

    /// `TIMEOUT feature secs`, `LINGER feature secs`, `MAX_BORROW_HOURS feature hours`
    fn setting(&mut self, keyword: Keyword, line: usize, args: &[String]) {
        let [feature, value] = args else {
            return self.wrong_form(keyword, line);
        };
        let (field, bounds) = match keyword {
            Keyword::Timeout => ("secs", TIMEOUT_SECS),
            Keyword::Linger => ("secs", LINGER_SECS),
            _ => ("hours", BORROW_HOURS),
        };
        let value = self.number(keyword, field, line, value, bounds);
        let Some(feature) = self.feature(keyword, line, feature) else { return };
        if let Some(&first) = self.settings_seen.get(&(keyword, feature.clone())) {
            let message = format!(
                "{} for `{feature}` is already set on line {first}; set it once",
                keyword.as_str()
            );
            return self.errors.push(LineError::field(
                self.origin,
                line,
                keyword.as_str(),
                message,
            ));
        }
        self.settings_seen.insert((keyword, feature.clone()), line);
        let Some(value) = value else { return };
        let settings = match keyword {
            Keyword::Timeout => &mut self.policy.timeouts,
            Keyword::Linger => &mut self.policy.lingers,
            _ => &mut self.policy.max_borrow_hours,
        };
        settings.insert(feature, value);
    }

    fn wrong_form(&mut self, keyword: Keyword, line: usize) {
        let message = format!("expected `{}`", keyword.form());
        self.errors.push(LineError::field(self.origin, line, keyword.as_str(), message));
    }

    fn field_error(&mut self, keyword: Keyword, field: &str, line: usize, message: String) {
        let field = format!("{} {field}", keyword.as_str());
        self.errors.push(LineError::field(self.origin, line, field, message));
    }

    /// A whole number within `bounds`.
    fn number(
        &mut self,
        keyword: Keyword,
        field: &str,
        line: usize,
        word: &str,
        bounds: Bounds,
    ) -> Option<u32> {
        let Bounds { min, max, unit } = bounds;
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
            let message = format!("{} is not a whole number", shown(word));
            self.field_error(keyword, field, line, message);
            return None;
        }
        match word.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let message = format!(
                    "{} is out of range: {} takes {min} to {max} {unit}",
                    shown(word),
                    keyword.as_str()
                );
                self.field_error(keyword, field, line, message);
                None
            }
        }
    }

    fn feature(&mut self, keyword: Keyword, line: usize, word: &str) -> Option<String> {
        if let Some((name, _)) = word.split_once(':') {
            let message = format!(
                "feature qualifiers like {} are not supported; name the feature alone{}",
                shown(word),
                if name.is_empty() { String::new() } else { format!(" ({})", shown(name)) }
            );
            self.field_error(keyword, "feature", line, message);
            return None;
        }
        match check_feature_name(word) {
            Ok(()) => Some(word.to_owned()),
            Err(message) => {
                self.field_error(keyword, "feature", line, message);
                None
            }
        }
    }

    /// `TYPE name`; records group references for the whole-file check.
    fn who(&mut self, keyword: Keyword, line: usize, kind: &str, name: &str) -> Option<Who> {
        let kind = match parse_kind(kind) {
            Ok(kind) => Some(kind),
            Err(message) => {
                self.field_error(keyword, "TYPE", line, message);
                None
            }
        };
        let name_ok = self.principal(keyword, "name", line, name);
        let who = Who { kind: kind?, name: name.to_owned() };
        if !name_ok {
            return None;
        }
        if matches!(who.kind, WhoKind::Group | WhoKind::HostGroup) {
            self.group_references.push(GroupReference { who: who.clone(), line, keyword });
        }
        Some(who)
    }

    fn principal(&mut self, keyword: Keyword, field: &str, line: usize, name: &str) -> bool {
        match check_principal_name(name) {
            Ok(()) => true,
            Err(message) => {
                self.field_error(keyword, field, line, message);
                false
            }
        }
    }

    /// The whole-file checks, then the verdict.
    fn finish(mut self) -> Result<Policy, Vec<LineError>> {
        for reference in std::mem::take(&mut self.group_references) {
            let (defined, other, other_kind) = match reference.who.kind {
                WhoKind::Group => (&self.group_names, &self.host_group_names, WhoKind::HostGroup),
                _ => (&self.host_group_names, &self.group_names, WhoKind::Group),
            };
            let name = &reference.who.name;
            if defined.contains(name) {
                continue;
            }
            let hint = if other.contains(name) {
                format!(" (there is a {} {})", other_kind.as_str(), shown(name))
            } else {
                String::new()
            };
            let message = format!(
                "{} {} is not defined in this file{hint}",
                reference.who.kind.as_str(),
                shown(name)
            );
            self.field_error(reference.keyword, "name", reference.line, message);
        }
        if self.errors.is_empty() {
            Ok(self.policy)
        } else {
            self.errors.sort_by_key(|e| e.line);
            Err(self.errors)
        }
    }
}

/// A word from the file, quoted back in a message: escaped, and cut short if long.
fn shown(word: &str) -> String {
    format!("`{}`", truncated(word).escape_debug())
}

fn truncated(word: &str) -> String {
    match word.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &word[..end]),
        None => word.to_owned(),
    }
}

/// The errors of [`OptionsFileError::Lines`], one a line.
struct BadLines<'a>(&'a [LineError]);

impl fmt::Display for BadLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "options file refused ({n} error{}); nothing applied",
            if n == 1 { "" } else { "s" }
        )?;
        for error in self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}
