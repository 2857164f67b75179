//! The rule for feature (and vendor) names, shared by license files and options files.
//!
//! One rule in one place, so that every feature a license file can sell is a feature an
//! options file can name, and the other way round. Names are ASCII so that they read the same
//! in every terminal, log and URL, and so that two names that look alike are alike.

/// Longest feature name, in characters. FlexLM allows 30; 64 leaves room for descriptive
/// names while keeping status tables and log lines readable.
pub const MAX_FEATURE_NAME_LEN: usize = 64;

/// Checks that `name` is a feature name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// [`MAX_FEATURE_NAME_LEN`] characters. The error says what is wrong, in words fit for an
/// admin; the caller adds where (file, line, field).
pub fn check_feature_name(name: &str) -> Result<(), String> {
    check_identifier("feature", name)
}

/// The same rule for the other names a license line carries (`vendor`); `what` names the kind
/// of name in the message.
pub fn check_identifier(what: &str, name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len == 0 {
        return Err(format!("the {what} name is empty"));
    }
    if len > MAX_FEATURE_NAME_LEN {
        let start: String = name.chars().take(MAX_FEATURE_NAME_LEN).collect();
        return Err(format!(
            "{what} name `{}…` is {len} characters long; the most is {MAX_FEATURE_NAME_LEN}",
            start.escape_debug()
        ));
    }
    let shown = name.escape_debug();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("{what} name `{shown}` must start with a letter or a digit"));
    }
    if let Some(bad) = name.chars().find(|&c| !is_feature_char(c)) {
        return Err(format!(
            "{what} name `{shown}` contains `{}`; only letters, digits, `_`, `.` and `-` \
             are allowed",
            bad.escape_debug()
        ));
    }
    Ok(())
}

fn is_feature_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_follow_one_rule() {
        for good in ["sim", "vhdl-editor", "A1", "9lives", "x.y_z-2", &"f".repeat(64)] {
            assert_eq!(check_feature_name(good), Ok(()), "{good}");
        }
        let cases = [
            ("", "empty"),
            ("-sim", "must start with a letter or a digit"),
            ("_sim", "must start with a letter or a digit"),
            ("sim editor", "contains ` `"),
            ("sim:VERSION=2", "contains `:`"),
            ("caf\u{e9}", "contains `\u{e9}`"),
            ("a\u{0}", "contains `\\0`"),
        ];
        for (bad, why) in cases {
            let err = check_feature_name(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn long_feature_names_are_refused_without_echoing_them_whole() {
        let long = "f".repeat(10_000);
        let err = check_feature_name(&long).expect_err("too long");
        assert!(err.contains("10000 characters long; the most is 64"), "{err}");
        assert!(err.len() < 200, "the message stays short: {err}");
    }
}
