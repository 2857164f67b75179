//! The canonical form of a FEATURE line: the exact bytes a vendor signs, and the bytes a
//! [`PoolId`] is a digest of.
//!
//! A license file is written by people and tools that differ in spacing, quoting, key order
//! and line continuation; the signature must not care about any of that, and must care about
//! every value. So the signature covers a canonical form built from the *meaning* of the line,
//! which a vendor can reimplement from this description alone:
//!
//! ```text
//! quorumlm-license-v1\n
//! FEATURE\n
//! <feature name>\n
//! <key>=<value>\n        one line per key, every key of the line except `sig`,
//! ...                    sorted by key (byte order), values exactly as written
//! ```
//!
//! - The first line is the version tag [`CANONICAL_TAG`]; a future format gets a new tag, so
//!   a signature of one format can never be replayed as another.
//! - The keyword is always `FEATURE`: `INCREMENT` is a synonym and means the same pool.
//! - A value is the text after `=`, with the quotes removed and `\"` / `\\` unescaped; it is
//!   *not* normalized further (`count=07` and `count=7` are different lines, both valid).
//! - In the feature name, keys and values, `\` is written as `\\` and a newline as `\n`, so
//!   every field is one line and no two different lines have the same canonical form. (The
//!   parser refuses control characters in values, so this only matters for other tools.)
//! - Every line, the last included, ends with one `\n`; the text is UTF-8; there is no other
//!   whitespace.
//!
//! The [`PoolId`] is the first [`POOL_ID_BYTES`] bytes of the SHA-256 of these bytes, in
//! lowercase hex: it changes with any signed field and survives reformatting and re-signing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::pool::PoolId;

/// First line of every canonical form: names the format the signature covers.
pub const CANONICAL_TAG: &str = "quorumlm-license-v1";

/// Bytes of the SHA-256 digest kept in a [`PoolId`] (128 bits: collisions are not a concern
/// among the lines of any real license set).
pub const POOL_ID_BYTES: usize = 16;

/// The canonical form of a FEATURE line with this feature name and these fields (`sig`, if
/// present among them, is left out).
pub fn canonical_form(feature: &str, fields: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    out.push_str(CANONICAL_TAG);
    out.push('\n');
    out.push_str("FEATURE\n");
    push_escaped(&mut out, feature);
    out.push('\n');
    for (key, value) in fields.iter().filter(|(key, _)| key.as_str() != "sig") {
        push_escaped(&mut out, key);
        out.push('=');
        push_escaped(&mut out, value);
        out.push('\n');
    }
    out
}

/// The pool id of a canonical form.
pub fn pool_id(canonical: &str) -> PoolId {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(POOL_ID_BYTES * 2);
    for byte in &digest[..POOL_ID_BYTES] {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    PoolId(hex)
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn canonical_form_sorts_keys_and_leaves_out_sig() {
        let f = fields(&[("version", "4.0"), ("sig", "abc"), ("count", "25"), ("notes", "a\\b")]);
        assert_eq!(
            canonical_form("vhdl-editor", &f),
            "quorumlm-license-v1\nFEATURE\nvhdl-editor\ncount=25\nnotes=a\\\\b\nversion=4.0\n"
        );
    }

    #[test]
    fn newline_and_backslash_escapes_keep_fields_apart() {
        let a = canonical_form("f", &fields(&[("notes", "x\ncount=9")]));
        let b = canonical_form("f", &fields(&[("notes", "x"), ("count", "9")]));
        assert_ne!(a, b);
        let c = canonical_form("f", &fields(&[("notes", "x\\n")]));
        assert_ne!(a, c);
    }

    #[test]
    fn pool_id_is_32_lowercase_hex_digits_and_follows_the_bytes() {
        let id = pool_id("quorumlm-license-v1\nFEATURE\nf\n");
        assert_eq!(id.0.len(), 2 * POOL_ID_BYTES);
        assert!(id.0.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(id, pool_id("quorumlm-license-v1\nFEATURE\ng\n"));
    }
}
