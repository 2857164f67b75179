//! A [`Policy`] printed back as options text: how the active policy is shown to admins.
//!
//! The output is a canonical options file: groups first, then the rules by keyword (each kind
//! in its file order), then the per-feature settings, one statement a line, names quoted where
//! the lexer needs it. Parsing it gives the same policy back, line numbers aside (they are the
//! printed file's). That holds for every policy the parser can produce; a policy built by hand
//! with an empty group or a name the parser refuses prints as text the parser refuses too.

use std::fmt::{self, Write};

use crate::{AccessRule, Policy, SeatRule, Who};

/// Width past which a long `GROUP` line is continued on the next line with `\`.
pub(super) const WRAP_COLUMN: usize = 100;

/// Indent of a continued group line.
const CONTINUATION_INDENT: &str = "    ";

impl fmt::Display for Policy {
    /// Prints the policy as an options file that parses back to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, members) in &self.groups {
            group(f, "GROUP", name, members)?;
        }
        for (name, members) in &self.host_groups {
            group(f, "HOST_GROUP", name, members)?;
        }
        for rule in &self.reserves {
            seat_rule(f, "RESERVE", rule)?;
        }
        for rule in &self.maxes {
            seat_rule(f, "MAX", rule)?;
        }
        for rule in &self.includes {
            access_rule(f, "INCLUDE", rule)?;
        }
        for rule in &self.excludes {
            access_rule(f, "EXCLUDE", rule)?;
        }
        for (keyword, settings) in [
            ("TIMEOUT", &self.timeouts),
            ("LINGER", &self.lingers),
            ("MAX_BORROW_HOURS", &self.max_borrow_hours),
        ] {
            for (feature, value) in settings {
                writeln!(f, "{keyword} {feature} {value}")?;
            }
        }
        Ok(())
    }
}

fn group<'a>(
    f: &mut fmt::Formatter<'_>,
    keyword: &str,
    name: &str,
    members: impl IntoIterator<Item = &'a String>,
) -> fmt::Result {
    let mut line = format!("{keyword} {}", Quoted(name));
    // Members on `line`: a line holds at least one, however long.
    let mut on_line = 0;
    for member in members {
        let member = Quoted(member).to_string();
        // Room for " member \".
        if on_line > 0 && line.len() + member.len() + 3 > WRAP_COLUMN {
            writeln!(f, "{line} \\")?;
            line = CONTINUATION_INDENT.to_owned();
            on_line = 0;
        } else {
            line.push(' ');
        }
        line.push_str(&member);
        on_line += 1;
    }
    writeln!(f, "{line}")
}

fn seat_rule(f: &mut fmt::Formatter<'_>, keyword: &str, rule: &SeatRule) -> fmt::Result {
    writeln!(f, "{keyword} {} {} {}", rule.seats, rule.feature, Printed(&rule.who))
}

fn access_rule(f: &mut fmt::Formatter<'_>, keyword: &str, rule: &AccessRule) -> fmt::Result {
    match &rule.feature {
        Some(feature) => writeln!(f, "{keyword} {feature} {}", Printed(&rule.who)),
        None => writeln!(f, "{keyword}ALL {}", Printed(&rule.who)),
    }
}

/// `TYPE name`, the name quoted if need be.
struct Printed<'a>(&'a Who);

impl fmt::Display for Printed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.kind.as_str(), Quoted(&self.0.name))
    }
}

/// A name as the lexer reads it back: in quotes if it has spaces, would start a comment, or
/// would continue the line.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0;
        let needs_quotes = name.is_empty()
            || name.contains(char::is_whitespace)
            || name.starts_with(['#', '"'])
            || name.ends_with('\\');
        if needs_quotes {
            f.write_char('"')?;
            f.write_str(name)?;
            f.write_char('"')
        } else {
            f.write_str(name)
        }
    }
}
