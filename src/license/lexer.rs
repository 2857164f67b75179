//! The lexical layer of license files: physical lines into logical lines, and a logical line
//! into words and `key=value` pairs.
//!
//! Rules (the same a vendor's own tools would follow):
//!
//! - Lines end with `\n`; a `\r` before it and any trailing spaces or tabs are ignored.
//! - A line whose first non-blank character is `#` is a comment; a blank line is blank. Both
//!   are kept verbatim by the signer and mean nothing to the parser. A comment never continues.
//! - A line whose last non-blank character is `\` continues on the next physical line: the `\`
//!   is dropped, the next line's leading blanks are dropped, and the two are joined with one
//!   space. The next line is taken whatever it is (a `#` there starts no comment). Errors name
//!   the physical line the logical line *starts* on.
//! - A UTF-8 byte order mark at the start of the file (Windows editors write one) is ignored.
//! - Within a logical line, tokens are separated by spaces or tabs. A token is a bare word
//!   (`FEATURE`, `vhdl-editor`) or a pair `key=value`. A value is bare (up to the next blank)
//!   or quoted (`key="ACME Corp"`), and inside quotes only `\"` and `\\` are escapes, so any
//!   text can be written and read back exactly. There are no blanks around `=`.
//!
//! Lexing never panics and never allocates more than [`MAX_LOGICAL_LINE_BYTES`] per line,
//! whatever the input: license files come from customers' disks and are not trusted.

/// Longest logical line accepted, in bytes. A real FEATURE line is a few hundred bytes; this
/// bound keeps a hostile file (one endless continued line) from using unbounded memory.
pub const MAX_LOGICAL_LINE_BYTES: usize = 64 * 1024;

/// Written by some editors at the start of a UTF-8 file; not part of the text.
const BYTE_ORDER_MARK: char = '\u{feff}';

/// One piece of a license file, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A blank or comment physical line, exactly as written (without its line ending).
    Verbatim(&'a str),
    /// A logical line to parse.
    Statement(Statement),
}

/// A logical line: one or more physical lines joined at their `\`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// 1-based physical line the logical line starts on.
    pub line: usize,
    /// The joined text, trimmed at both ends.
    pub text: String,
    /// What is wrong with the line as a whole (continued past the end of the file, too
    /// long), if anything.
    pub problem: Option<String>,
}

/// Splits `text` into comments, blank lines and logical lines.
pub fn split_logical_lines(text: &str) -> Vec<Piece<'_>> {
    let text = text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(text);
    let mut pieces = Vec::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let physical = raw.trim_end();
        let content = physical.trim_start();
        if content.is_empty() {
            // `split` yields an empty last piece after a final newline; it is no line.
            if lines.peek().is_some() || !raw.is_empty() {
                pieces.push(Piece::Verbatim(physical));
            }
            continue;
        }
        if content.starts_with('#') {
            pieces.push(Piece::Verbatim(physical));
            continue;
        }
        let mut statement = Statement { line: index + 1, text: String::new(), problem: None };
        let mut current = content;
        loop {
            let (body, continues) = match current.strip_suffix('\\') {
                Some(body) => (body.trim_end(), true),
                None => (current, false),
            };
            append_bounded(&mut statement, body);
            if !continues {
                break;
            }
            match lines.next() {
                Some((_, next)) => current = next.trim(),
                None => {
                    statement.problem.get_or_insert_with(|| {
                        "the line ends with `\\` (continues) but the file ends there".to_owned()
                    });
                    break;
                }
            }
        }
        statement.text = statement.text.trim().to_owned();
        pieces.push(Piece::Statement(statement));
    }
    pieces
}

/// Appends one physical line's content to a statement, one space apart, up to the limit.
fn append_bounded(statement: &mut Statement, body: &str) {
    if statement.problem.is_some() {
        return;
    }
    let extra = usize::from(!statement.text.is_empty()) + body.len();
    if statement.text.len() + extra > MAX_LOGICAL_LINE_BYTES {
        statement.problem = Some(format!("the line is longer than {MAX_LOGICAL_LINE_BYTES} bytes"));
        statement.text.clear();
        return;
    }
    if !statement.text.is_empty() {
        statement.text.push(' ');
    }
    statement.text.push_str(body);
}

/// One token of a logical line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A bare word: the keyword, the feature name, or a mistake (a key without `=`).
    Word(String),
    /// `key=value`, with the value unquoted and unescaped.
    Pair { key: String, value: String },
}

/// Why a logical line could not be split into tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    /// The key whose value is malformed, when known.
    pub field: Option<String>,
    pub message: String,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits a logical line into tokens; stops at the first malformed one.
pub fn tokenize(text: &str) -> Result<Vec<Token>, TokenError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|&c| is_blank(c)).is_some() {}
        if chars.peek().is_none() {
            return Ok(tokens);
        }
        let mut run = String::new();
        while let Some(c) = chars.next_if(|&c| !is_blank(c) && c != '=' && c != '"') {
            run.push(c);
        }
        match chars.peek() {
            Some('=') => {
                chars.next();
                if run.is_empty() {
                    return Err(TokenError {
                        field: None,
                        message: "`=` with no key before it".to_owned(),
                    });
                }
                let value = match chars.peek() {
                    Some('"') => {
                        chars.next();
                        read_quoted(&mut chars, &run)?
                    }
                    Some(&c) if !is_blank(c) => read_bare(&mut chars, &run)?,
                    _ => {
                        return Err(TokenError {
                            message: format!("`{run}=` has no value (write `{run}=value`)"),
                            field: Some(run),
                        });
                    }
                };
                tokens.push(Token::Pair { key: run, value });
            }
            Some('"') => {
                return Err(TokenError {
                    message: "a quote outside a value: only values may be quoted \
                              (key=\"...\")"
                        .to_owned(),
                    field: (!run.is_empty()).then_some(run),
                });
            }
            _ => tokens.push(Token::Word(run)),
        }
    }
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Reads a quoted value after its opening quote, through its closing quote.
fn read_quoted(chars: &mut Chars<'_>, key: &str) -> Result<String, TokenError> {
    let fail = |message: String| TokenError { field: Some(key.to_owned()), message };
    let mut value = String::new();
    loop {
        match chars.next() {
            None => return Err(fail("unterminated quoted value (no closing `\"`)".to_owned())),
            Some('"') => break,
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => value.push(c),
                Some(c) => {
                    return Err(fail(format!(
                        "unknown escape `\\{}` in a quoted value (only \\\" and \\\\ are escapes)",
                        c.escape_debug()
                    )));
                }
                None => {
                    return Err(fail("unterminated quoted value (no closing `\"`)".to_owned()));
                }
            },
            Some(c) => value.push(c),
        }
    }
    match chars.peek() {
        Some(&c) if !is_blank(c) => {
            Err(fail("text right after the closing quote; separate fields with a space".into()))
        }
        _ => Ok(value),
    }
}

/// Reads a bare value up to the next blank.
fn read_bare(chars: &mut Chars<'_>, key: &str) -> Result<String, TokenError> {
    let mut value = String::new();
    while let Some(c) = chars.next_if(|&c| !is_blank(c)) {
        if c == '"' {
            return Err(TokenError {
                field: Some(key.to_owned()),
                message: "a quote inside an unquoted value; quote the whole value \
                          (key=\"...\")"
                    .to_owned(),
            });
        }
        value.push(c);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(text: &str) -> Vec<Statement> {
        split_logical_lines(text)
            .into_iter()
            .filter_map(|p| match p {
                Piece::Statement(s) => Some(s),
                Piece::Verbatim(_) => None,
            })
            .collect()
    }

    #[test]
    fn continued_lines_join_and_report_their_first_line() {
        let text = "\u{feff}# head\n\nFEATURE a \\\n   b=1 \\\r\n\tc=2  \nFEATURE z\n";
        let s = statements(text);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].line, s[0].text.as_str()), (3, "FEATURE a b=1 c=2"));
        assert_eq!((s[1].line, s[1].text.as_str()), (6, "FEATURE z"));
        let pieces = split_logical_lines(text);
        assert_eq!(pieces[0], Piece::Verbatim("# head"));
        assert_eq!(pieces[1], Piece::Verbatim(""));
        assert_eq!(pieces.len(), 4, "the final newline adds no blank line");
    }

    #[test]
    fn a_continuation_at_the_end_of_the_file_is_a_problem() {
        let s = statements("FEATURE a b=1 \\");
        assert!(s[0].problem.as_deref().unwrap().contains("file ends"));
    }

    #[test]
    fn an_endless_line_is_cut_off_with_a_problem() {
        let text = "FEATURE a \\\n".to_owned() + &"x=1 \\\n".repeat(MAX_LOGICAL_LINE_BYTES);
        let s = statements(&text);
        assert_eq!(s.len(), 1);
        assert!(s[0].problem.as_deref().unwrap().contains("longer than"));
    }

    #[test]
    fn tokens_are_words_and_pairs_with_quotes_unescaped() {
        let t = tokenize(r#"FEATURE f a=1 b="x y" c="q\"\\" d=ab=c"#).unwrap();
        let pair = |k: &str, v: &str| Token::Pair { key: k.into(), value: v.into() };
        assert_eq!(
            t,
            vec![
                Token::Word("FEATURE".into()),
                Token::Word("f".into()),
                pair("a", "1"),
                pair("b", "x y"),
                pair("c", "q\"\\"),
                pair("d", "ab=c"),
            ]
        );
    }

    #[test]
    fn malformed_tokens_name_their_key() {
        for (text, field, needle) in [
            (r#"a="open"#, Some("a"), "unterminated"),
            (r#"a="x\n""#, Some("a"), "unknown escape"),
            (r#"a="x"y"#, Some("a"), "after the closing quote"),
            (r#"a=x"y"#, Some("a"), "quote inside"),
            ("a= b", Some("a"), "no value"),
            ("=b", None, "no key"),
            (r#"a"b"#, Some("a"), "outside a value"),
        ] {
            let e = tokenize(text).unwrap_err();
            assert_eq!(e.field.as_deref(), field, "{text}");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }
}
