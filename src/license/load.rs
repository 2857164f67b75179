//! Whole license files: load (parse + verify) for the server, sign for the vendor.
//!
//! Loading never fails as a whole because of a line: each FEATURE line serves or is refused
//! on its own, with its reason, so a typo or a tampered line costs that line and not the site
//! ([`LicenseSet`]). Only a file that cannot be read at all is an error ([`FileError`]).
//!
//! Signing is the opposite: it refuses the whole file if any line is malformed, listing every
//! bad line, because a vendor must never ship a file in which a line silently does not serve.
//! The signer rewrites each FEATURE line in one normalized layout (keys in a fixed order,
//! values quoted only when needed, long lines continued with `\`, `sig=` on its own line) and
//! keeps comments and blank lines as they are. Reformatting never changes what is signed
//! (see `canonical.rs`), so an admin may re-wrap a signed file freely.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::LineError;
use crate::file::{KNOWN_KEYS, ParsedLine, parse_license_text, parse_statement};
use crate::lexer::{Piece, split_logical_lines};
use crate::pool::{Pool, PoolId};
use crate::read::{Oversize, read_at_most};
use crate::signing::{LicenseSignature, TrustedKeys, VendorKey, VendorPublicKey};

/// Largest license file read, in bytes. The license set travels to every node in one Raft log
/// entry, at most `qlm_raft::MAX_ENTRY_BYTES` (1 MiB) encoded: a pool keeps a line's values but
/// not its keys or signature, so a file of this size gives a set well under it, leaving room
/// for the options file's policy beside it (the exact size is checked before the set is
/// proposed). Real files are kilobytes; the bound also keeps a wrong path (a disk image,
/// `/dev/zero`) from exhausting memory.
pub const MAX_LICENSE_FILE_BYTES: u64 = 1024 * 1024;

/// Width the signer aims for when it wraps a FEATURE line with `\` continuations.
pub const SIGNED_LINE_WIDTH: usize = 100;

/// Indentation of the continuation lines the signer writes.
pub const CONTINUATION_INDENT: &str = "    ";

/// Refusal by a server of a node-locked line (`count=uncounted`).
pub const NODE_LOCKED_NOT_SERVED: &str = "count=uncounted: a node-locked line is checked by the \
    application on its licensed machine, not served as a floating pool";

/// The outcome of loading a license file: the pools that serve and the lines refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LicenseSet {
    /// Verified pools, in file order.
    pub pools: Vec<Pool>,
    /// The line each pool's FEATURE line starts on, in the order of `pools`: a pool refused
    /// later (a server's host-id check) is reported at its line.
    pub lines: Vec<usize>,
    /// Every refused line with its reason, in file order.
    pub refused: Vec<LineError>,
}

/// A FEATURE line that serves: well formed, signed by a trusted key, not a duplicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLine {
    pub parsed: ParsedLine,
    /// The trusted key whose signature verified.
    pub signer: VendorPublicKey,
}

/// A license file that cannot be read at all; names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read license file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("license file {} {oversize}", path.display())]
    TooLarge { path: PathBuf, oversize: Oversize },
    #[error("license file {}: line {line} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
}

/// Parses and verifies every line; each one serves or is refused on its own. A line with the
/// same pool id (the same signed fields) as an earlier serving line is refused: one signed
/// line is one pool, however many times it is pasted.
///
/// There is one result per logical line, in the order of [`parse_license_text`], so the two
/// can be zipped (`qlm license show` does).
pub fn verify_license_text(
    origin: &str,
    text: &str,
    trusted: &TrustedKeys,
) -> Vec<Result<VerifiedLine, LineError>> {
    let mut served: HashMap<PoolId, usize> = HashMap::new();
    parse_license_text(origin, text)
        .into_iter()
        .map(|parsed| {
            let parsed = parsed?;
            let signer = parsed.verify(origin, trusted)?;
            if let Some(first) = served.get(&parsed.pool.id) {
                return Err(LineError::line(
                    origin,
                    parsed.line,
                    format!(
                        "duplicate of line {first} (same signed fields, pool {}); \
                         a signed line counts once",
                        parsed.pool.id
                    ),
                )
                .with_feature(&parsed.pool.feature));
            }
            served.insert(parsed.pool.id.clone(), parsed.line);
            Ok(VerifiedLine { parsed, signer })
        })
        .collect()
}

/// Loads license text for a server: the pools of the lines that verify, and every refused
/// line. A node-locked line (`count=uncounted`) is refused even when it verifies: it is the
/// application's to check on its machine, and served as a pool it would count nothing.
pub fn load_licenses(origin: &str, text: &str, trusted: &TrustedKeys) -> LicenseSet {
    let mut set = LicenseSet::default();
    for line in verify_license_text(origin, text, trusted) {
        match line {
            Ok(verified) if verified.parsed.pool.is_node_locked() => {
                let parsed = verified.parsed;
                set.refused.push(
                    LineError::field(origin, parsed.line, "count", NODE_LOCKED_NOT_SERVED)
                        .with_feature(&parsed.pool.feature),
                );
            }
            Ok(verified) => {
                set.lines.push(verified.parsed.line);
                set.pools.push(verified.parsed.pool);
            }
            Err(refusal) => set.refused.push(refusal),
        }
    }
    set
}

/// Reads a license file as text; errors name the path.
pub fn read_license_file(path: &Path) -> Result<String, FileError> {
    let bytes = read_at_most(path, MAX_LICENSE_FILE_BYTES)
        .map_err(|source| FileError::Read { path: path.to_owned(), source })?
        .map_err(|oversize| FileError::TooLarge { path: path.to_owned(), oversize })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        FileError::NotUtf8 { path: path.to_owned(), line }
    })
}

/// Reads and loads a license file; lines are refused in the set, only unreadable files fail.
pub fn load_license_file(path: &Path, trusted: &TrustedKeys) -> Result<LicenseSet, FileError> {
    let text = read_license_file(path)?;
    Ok(load_licenses(&path.display().to_string(), &text, trusted))
}

/// Signs every FEATURE line of `text` with `key` (replacing any `sig=`), keeping comments and
/// blank lines; refuses with every error if any line is malformed or a duplicate.
pub fn sign_license_text(
    origin: &str,
    text: &str,
    key: &VendorKey,
) -> Result<String, Vec<LineError>> {
    let mut out = String::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<PoolId, usize> = HashMap::new();
    for piece in split_logical_lines(text) {
        match piece {
            Piece::Verbatim(verbatim) => out.push_str(verbatim),
            Piece::Statement(statement) => match parse_statement(origin, &statement) {
                Ok(parsed) => {
                    if let Some(first) = seen.insert(parsed.pool.id.clone(), parsed.line) {
                        errors.push(LineError::line(
                            origin,
                            parsed.line,
                            format!("duplicate of line {first}; a signed line counts once"),
                        ));
                    }
                    let signature = key.sign(parsed.canonical_form().as_bytes());
                    out.push_str(&render_signed_line(&parsed, &signature));
                }
                Err(error) => errors.push(error),
            },
        }
        out.push('\n');
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// A FEATURE line in the signer's layout (without a final newline).
pub fn render_signed_line(parsed: &ParsedLine, signature: &LicenseSignature) -> String {
    let mut fields: Vec<(&String, &String)> = parsed.fields.iter().collect();
    fields.sort_by_key(|(key, _)| KNOWN_KEYS.iter().position(|known| known == key));
    let head = format!("{} {}", parsed.keyword.as_str(), parsed.pool.feature);
    let mut lines = vec![head];
    for (key, value) in fields {
        let token = format!("{key}={}", quoted_if_needed(value));
        match lines.last_mut() {
            // Room for " token \" within the width.
            Some(last) if last.len() + token.len() + 3 <= SIGNED_LINE_WIDTH => {
                last.push(' ');
                last.push_str(&token);
            }
            _ => lines.push(format!("{CONTINUATION_INDENT}{token}")),
        }
    }
    lines.push(format!("{CONTINUATION_INDENT}sig=\"{}\"", signature.to_base64()));
    lines.join(" \\\n")
}

/// A value as the signer writes it: bare when it is plainly one word, else quoted with `"`
/// and `\` escaped. Reading it back gives the same value.
fn quoted_if_needed(value: &str) -> String {
    let bare = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "._-:,/+=@".contains(c));
    if bare {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VendorKey {
        VendorKey::from_seed([5; 32])
    }

    #[test]
    fn signing_keeps_comments_and_the_result_loads() {
        let text = "# site\n\nFEATURE a vendor=v version=1 count=2 expires=permanent \
                    notes=\"say \\\"hi\\\" \\\\o/\" sig=old\n";
        let signed = sign_license_text("in.lic", text, &key()).unwrap();
        assert!(signed.starts_with("# site\n\nFEATURE a vendor=v"), "{signed}");
        assert!(!signed.contains("sig=old"));
        let trusted: TrustedKeys = [key().public_key()].into_iter().collect();
        let set = load_licenses("out.lic", &signed, &trusted);
        assert_eq!(set.refused, vec![]);
        assert_eq!(set.pools[0].notes.as_deref(), Some("say \"hi\" \\o/"));
    }

    #[test]
    fn a_server_refuses_a_node_locked_line_naming_file_line_and_feature() {
        let text = "FEATURE served vendor=v version=1 count=2 expires=permanent\n\
                    FEATURE cad vendor=v version=1 count=uncounted expires=permanent \
                    hostid=\"HOSTNAME=build7 001a2b3c4d5e\"\n";
        let signed = sign_license_text("in.lic", text, &key()).unwrap();
        let trusted: TrustedKeys = [key().public_key()].into_iter().collect();
        let set = load_licenses("site.lic", &signed, &trusted);
        assert_eq!(set.pools.len(), 1);
        assert_eq!((set.pools[0].feature.as_str(), set.lines.as_slice()), ("served", &[1][..]));
        let [refusal] = set.refused.as_slice() else { panic!("{:?}", set.refused) };
        // The signer wrote the first line's `sig=` on a line of its own.
        assert_eq!(
            refusal.to_string(),
            format!("site.lic:3: feature `cad`: field `count`: {NODE_LOCKED_NOT_SERVED}")
        );
        let verified = verify_license_text("site.lic", &signed, &trusted);
        assert!(verified.iter().all(Result::is_ok), "the signature itself is good");
        let tampered = signed.replace("build7", "build8");
        let refused = load_licenses("site.lic", &tampered, &trusted).refused;
        assert!(refused[0].to_string().starts_with("site.lic:3: feature `cad`: field `sig`"));
    }

    #[test]
    fn long_lines_are_wrapped_with_continuations() {
        let text = format!(
            "FEATURE a vendor=v version=1 count=2 expires=permanent notes=\"{}\"",
            "word ".repeat(30)
        );
        let signed = sign_license_text("in.lic", &text, &key()).unwrap();
        assert!(signed.lines().count() >= 3, "{signed}");
        assert!(signed.lines().all(|l| l.len() <= SIGNED_LINE_WIDTH || l.contains("notes=")));
    }

    #[test]
    fn signing_refuses_the_file_and_lists_every_bad_line() {
        let text = "FEATURE a vendor=v\nFEATURE ok vendor=v version=1 count=1 \
                    expires=permanent\nFEATURE b count=x\n";
        let errors = sign_license_text("in.lic", text, &key()).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn quoting_is_only_used_when_needed() {
        assert_eq!(quoted_if_needed("2027-12-31"), "2027-12-31");
        assert_eq!(quoted_if_needed("ACME Corp"), "\"ACME Corp\"");
        assert_eq!(quoted_if_needed("a\\"), "\"a\\\\\"");
        assert_eq!(quoted_if_needed("é"), "\"é\"");
    }
}
