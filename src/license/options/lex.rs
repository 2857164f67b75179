//! Cutting an options file into statements: physical lines, comments, quotes, continuations.
//!
//! The rules, line by line:
//!
//! - Words are separated by whitespace. A word that starts with `"` runs to the next `"` on
//!   the same line and may hold spaces; there are no escapes, so a name cannot hold `"`.
//! - A word that starts with `#` (outside quotes) starts a comment, to the end of the line.
//! - A line whose last word, before any comment, ends in an unquoted `\` continues on the next
//!   line; the `\` counts as a space. A statement is numbered by the line it starts on.
//!
//! A line that breaks these rules makes its whole statement an error; the statement is not
//! parsed further.

use crate::LineError;

/// One logical line with its words, numbered by the physical line it starts on.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Statement {
    /// 1-based line the statement starts on.
    pub line: usize,
    /// The words, quotes removed; never empty.
    pub words: Vec<String>,
}

/// The marker that continues a line.
const CONTINUATION: char = '\\';

/// Cuts `text` into statements. Lines that break the lexical rules come back as errors,
/// each on the line its statement starts on, in file order.
pub(super) fn statements(origin: &str, text: &str) -> Vec<Result<Statement, LineError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    // The statement being assembled: start line, words, first lexical error.
    let mut open: Option<(usize, Vec<String>, Option<LineError>)> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut words, mut error) = open.take().unwrap_or((number, Vec::new(), None));
        let continues = match split_line(raw) {
            Ok(line) => {
                words.extend(line.words);
                line.continues
            }
            Err(message) => {
                if error.is_none() {
                    let message = if number == start {
                        message
                    } else {
                        format!("{message} (in its continuation on line {number})")
                    };
                    error = Some(LineError::line(origin, start, message));
                }
                // The line could not be read, so guess its continuation from its last byte.
                raw.trim_end().ends_with(CONTINUATION)
            }
        };
        if continues {
            open = Some((start, words, error));
        } else {
            finish(&mut out, start, words, error);
        }
    }
    if let Some((start, words, error)) = open {
        let error = error.or_else(|| {
            Some(LineError::line(
                origin,
                start,
                "the statement's last line ends in `\\` but the file ends there",
            ))
        });
        finish(&mut out, start, words, error);
    }
    out
}

fn finish(
    out: &mut Vec<Result<Statement, LineError>>,
    line: usize,
    words: Vec<String>,
    error: Option<LineError>,
) {
    match error {
        Some(error) => out.push(Err(error)),
        None if words.is_empty() => {}
        None => out.push(Ok(Statement { line, words })),
    }
}

/// One physical line, cut into words.
struct PhysicalLine {
    words: Vec<String>,
    /// Whether the line ended in `\`, which has been removed from `words`.
    continues: bool,
}

fn split_line(line: &str) -> Result<PhysicalLine, String> {
    let mut words = Vec::new();
    let mut last_quoted = false;
    let mut rest = line.trim_start();
    while let Some(first) = rest.chars().next() {
        if first == '#' {
            break;
        }
        let (word, after) = if first == '"' {
            let inner = &rest[1..];
            let end = inner.find('"').ok_or("a quoted name has no closing `\"` on its line")?;
            let after = &inner[end + 1..];
            if after.starts_with(|c: char| !c.is_whitespace()) {
                return Err("a closing `\"` must be followed by a space".to_owned());
            }
            (&inner[..end], after)
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            if word.contains('"') {
                return Err(format!(
                    "`\"` inside the word `{}`; quote the whole name",
                    word.escape_debug()
                ));
            }
            (word, &rest[end..])
        };
        last_quoted = first == '"';
        words.push(word.to_owned());
        rest = after.trim_start();
    }
    let mut continues = false;
    if !last_quoted
        && let Some(last) = words.last_mut()
        && let Some(kept) = last.strip_suffix(CONTINUATION)
    {
        continues = true;
        if kept.is_empty() {
            words.pop();
        } else {
            *last = kept.to_owned();
        }
    }
    Ok(PhysicalLine { words, continues })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(usize, Vec<String>)> {
        statements("t", text)
            .into_iter()
            .map(|s| {
                let s = s.expect("no lexical error");
                (s.line, s.words)
            })
            .collect()
    }

    fn owned(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn comments_blank_lines_and_quotes() {
        let text = "\u{feff}# header\n\n  GROUP eng \"Ann Lee\" bob # trailing\r\nHOST ws#1\n";
        assert_eq!(
            words(text),
            vec![(3, owned(&["GROUP", "eng", "Ann Lee", "bob"])), (4, owned(&["HOST", "ws#1"]))]
        );
    }

    #[test]
    fn continuations_join_lines_and_keep_the_first_line_number() {
        let text = "GROUP eng alice \\\n   bob\\\n carol \\ # more below\n dave\nMAX 1 f USER x";
        assert_eq!(
            words(text),
            vec![
                (1, owned(&["GROUP", "eng", "alice", "bob", "carol", "dave"])),
                (5, owned(&["MAX", "1", "f", "USER", "x"])),
            ]
        );
    }

    #[test]
    fn a_quoted_backslash_does_not_continue() {
        assert_eq!(
            words("USER \"DOM\\\"\nX"),
            vec![(1, owned(&["USER", "DOM\\"])), (2, owned(&["X"]))]
        );
    }

    #[test]
    fn lexical_errors_are_reported_on_the_statements_first_line() {
        let out = statements("t", "GROUP g a \\\n \"b\nGROUP h a\"b\nGROUP k \"x\"y\nLAST \\");
        let errors: Vec<_> = out.into_iter().map(|s| s.expect_err("lexical error")).collect();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 3, 4, 5]);
        assert!(errors[0].message.contains("no closing `\"`"), "{}", errors[0]);
        assert!(errors[0].message.contains("continuation on line 2"), "{}", errors[0]);
        assert!(errors[1].message.contains("quote the whole name"), "{}", errors[1]);
        assert!(errors[2].message.contains("followed by a space"), "{}", errors[2]);
        assert!(errors[3].message.contains("file ends there"), "{}", errors[3]);
    }
}
