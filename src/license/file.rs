//! The license file format: FEATURE lines, parsed into unverified [`ParsedLine`]s.
//!
//! A license file is line based, like FlexLM's and RLM's, so admins recognise it:
//!
//! ```text
//! # QuorumLM license file
//! FEATURE vhdl-editor vendor=sigasi version=4.0 count=25 start=2026-11-01 \
//!     expires=2027-12-31 customer="ACME Corp" hostid=ANY dup_group=user_host \
//!     sig="<base64 ed25519>"
//! INCREMENT simulator vendor=sigasi version=2.1 tokens=100 expires=permanent sig="..."
//! ```
//!
//! Comments, blank lines, `\` continuations and quoting are described in `lexer.rs`. A
//! logical line is `FEATURE <name> key=value...` (`INCREMENT` is a synonym: both add a pool;
//! lines of one feature add up). The feature name is `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
//! 64 characters. The keys:
//!
//! | key | required | value |
//! |---|---|---|
//! | `vendor` | yes | the vendor's name, same rule as feature names |
//! | `version` | yes | dotted version (`4.0`); serves requests up to it |
//! | `count` / `tokens` | exactly one | whole number 1..=1000000 of seats / tokens; or `count=uncounted` (node-locked) |
//! | `start` | no | first valid day, `YYYY-MM-DD` (UTC) |
//! | `expires` | yes | last valid day, `YYYY-MM-DD`, or `permanent` |
//! | `issued` | no | day of issue, for the record |
//! | `hostid` | no; yes for `uncounted` | `ANY` (default) or host ids separated by spaces or commas (`hostid.rs`): an ethernet address (`001a2b3c4d5e`), `HOSTNAME=name`, `MACHINE_ID=hex`, or a server's `--hostid` word |
//! | `dup_group` | no | `none` (default), `user`, `host`, `user_host` |
//! | `borrow` | no | `no`, or the longest borrow in hours 1..=8760 (default 168) |
//! | `customer`, `notes` | no | free text, signed like the rest |
//! | `sig` | to serve | base64 ed25519 signature of the canonical form (`canonical.rs`) |
//!
//! A node-locked line (`count=uncounted`, FlexLM's spelling) grants unlimited use on the
//! machines its `hostid=` names, and only there: the application checks it on its own
//! machine (`qlm_client::nodelocked`), with the vendor key it is built with, this machine's
//! host ids and its clock. It needs a `hostid=` list of machine ids (not `ANY`, not a server's
//! word). `uncounted` is a value like any other, so the signature covers it. Servers do not
//! serve such a line as a floating pool, and say so ([`crate::load_licenses`]).
//!
//! Unknown keys, duplicate keys, empty values and control characters in values are refused:
//! the signature covers what is written, so nothing may be written that the reader ignores or
//! reads loosely. Every refusal is a [`LineError`] naming the file, the line, the field and,
//! once the line got as far as naming it, the feature.
//!
//! Parsing checks form only; whether a line may serve (its signature) is decided by
//! [`ParsedLine::verify`], and for whole files by `load.rs`.

use std::collections::BTreeMap;

use crate::canonical::{canonical_form, pool_id};
use crate::error::LineError;
use crate::fields::{build_pool, check_name, shown};
use crate::lexer::{Piece, Statement, Token, split_logical_lines, tokenize};
use crate::pool::Pool;
use crate::signing::{LicenseSignature, TrustedKeys, VendorPublicKey};

/// Every key a FEATURE line may carry, in the order the signer writes them.
pub const KNOWN_KEYS: [&str; 13] = [
    "vendor",
    "version",
    "count",
    "tokens",
    "start",
    "expires",
    "issued",
    "hostid",
    "dup_group",
    "borrow",
    "customer",
    "notes",
    "sig",
];

/// Longest value of any key, in characters (free text included).
pub const MAX_VALUE_CHARS: usize = 1024;

/// Refusal of a line without `sig=`.
pub const NOT_SIGNED: &str = "line is not signed (no sig=)";

/// Refusal of a line whose signature no trusted key verifies.
pub const NOT_VERIFIED: &str = "signature does not verify with any trusted vendor key: the line \
    was changed after signing, or signed by a vendor this server does not trust";

/// Refusal of every signed line when the server trusts no key at all.
pub const NO_TRUSTED_KEY: &str = "no vendor public key is trusted, so no signature can be verified";

/// The keyword a line starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Keyword {
    Feature,
    /// FlexLM's synonym: adds a pool exactly as FEATURE does.
    Increment,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Feature => "FEATURE",
            Keyword::Increment => "INCREMENT",
        }
    }

    fn from_word(word: &str) -> Option<Keyword> {
        match word {
            "FEATURE" => Some(Keyword::Feature),
            "INCREMENT" => Some(Keyword::Increment),
            _ => None,
        }
    }
}

/// A well-formed FEATURE line whose signature is not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLine {
    /// 1-based line the logical line starts on.
    pub line: usize,
    /// As written; the canonical form does not depend on it.
    pub keyword: Keyword,
    /// Every key except `sig`, with its value as written (unquoted).
    pub fields: BTreeMap<String, String>,
    /// The `sig=` value as written, if any.
    pub sig: Option<String>,
    /// What the line grants, if its signature verifies; `pool.id` is already its digest.
    pub pool: Pool,
}

impl ParsedLine {
    /// The bytes the vendor signs (see `canonical.rs`).
    pub fn canonical_form(&self) -> String {
        canonical_form(&self.pool.feature, &self.fields)
    }

    /// The trusted key that signed this line, or why the line may not serve.
    pub fn verify(
        &self,
        origin: &str,
        trusted: &TrustedKeys,
    ) -> Result<VendorPublicKey, LineError> {
        let refuse = |message: String| {
            LineError::field(origin, self.line, "sig", message).with_feature(&self.pool.feature)
        };
        let sig = self.sig.as_deref().ok_or_else(|| refuse(NOT_SIGNED.to_owned()))?;
        let signature =
            LicenseSignature::from_base64(sig).map_err(|e| refuse(format!("the signature {e}")))?;
        if trusted.is_empty() {
            return Err(refuse(NO_TRUSTED_KEY.to_owned()));
        }
        trusted
            .signer_of(self.canonical_form().as_bytes(), &signature)
            .copied()
            .ok_or_else(|| refuse(NOT_VERIFIED.to_owned()))
    }
}

/// Parses every logical line of a license file, in order; comments and blank lines are
/// skipped. Signatures are not checked (see [`ParsedLine::verify`]).
pub fn parse_license_text(origin: &str, text: &str) -> Vec<Result<ParsedLine, LineError>> {
    split_logical_lines(text)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Statement(statement) => Some(parse_statement(origin, &statement)),
            Piece::Verbatim(_) => None,
        })
        .collect()
}

/// Parses one logical line.
pub(crate) fn parse_statement(
    origin: &str,
    statement: &Statement,
) -> Result<ParsedLine, LineError> {
    let line = statement.line;
    let at = |field: &str, message: String| LineError::field(origin, line, field, message);
    if let Some(problem) = &statement.problem {
        return Err(LineError::line(origin, line, problem.clone()));
    }
    let mut tokens = tokenize(&statement.text)
        .map_err(|e| LineError {
            origin: origin.to_owned(),
            line,
            // The line could not be split, but its second word is most likely its feature.
            feature: statement
                .text
                .split_whitespace()
                .nth(1)
                .filter(|word| check_name("feature", word).is_ok())
                .map(str::to_owned),
            field: e.field.as_deref().map(shown),
            message: e.message,
        })?
        .into_iter();
    let expected_keyword = "a license line starts with FEATURE or INCREMENT";
    let keyword = match tokens.next() {
        Some(Token::Word(word)) => Keyword::from_word(&word).ok_or_else(|| {
            at("keyword", format!("unknown keyword `{}`: {expected_keyword}", shown(&word)))
        })?,
        Some(Token::Pair { key, .. }) => {
            return Err(at("keyword", format!("`{}=` found: {expected_keyword}", shown(&key))));
        }
        None => return Err(at("keyword", format!("empty line: {expected_keyword}"))),
    };
    let feature = match tokens.next() {
        Some(Token::Word(word)) => check_name("feature", &word).map_err(|e| at("feature", e))?,
        _ => return Err(at("feature", format!("missing feature name after {}", keyword.as_str()))),
    };
    let at = |field: &str, message: String| at(field, message).with_feature(&feature);
    let mut fields = BTreeMap::new();
    let mut sig = None;
    for token in tokens {
        let (key, value) = match token {
            Token::Pair { key, value } => (key, value),
            Token::Word(word) => {
                let word = shown(&word);
                return Err(at(&word, format!("`{word}` is not key=value (missing `=`)")));
            }
        };
        let shown_key = shown(&key);
        if !KNOWN_KEYS.contains(&key.as_str()) {
            return Err(at(
                &shown_key,
                format!("unknown key `{shown_key}` (known keys: {})", KNOWN_KEYS.join(", ")),
            ));
        }
        if fields.contains_key(&key) || (key == "sig" && sig.is_some()) {
            return Err(at(&key, format!("`{key}` is given twice")));
        }
        check_value(&value).map_err(|e| at(&key, e))?;
        if key == "sig" {
            sig = Some(value);
        } else {
            fields.insert(key, value);
        }
    }
    let id = pool_id(&canonical_form(&feature, &fields));
    let pool = build_pool(id, &feature, &fields).map_err(|(field, e)| at(field, e))?;
    Ok(ParsedLine { line, keyword, fields, sig, pool })
}

/// What every value must be, whatever its key: non-empty, one line of printable text.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("the value is empty (leave the key out instead)".to_owned());
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{}` contains a control character", shown(value)));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(format!("the value is longer than {MAX_VALUE_CHARS} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{DupGroup, Expiry, HostId, SeatUnit};

    const LINE: &str = "FEATURE vhdl-editor vendor=sigasi version=4.0 count=25 \
        start=2026-11-01 expires=2027-12-31 customer=\"ACME Corp\" hostid=ANY \
        dup_group=user_host";

    fn parse_one(text: &str) -> Result<ParsedLine, LineError> {
        parse_license_text("t.lic", text).remove(0)
    }

    #[test]
    fn the_design_example_parses_into_its_pool() {
        let parsed = parse_one(LINE).unwrap();
        let pool = &parsed.pool;
        assert_eq!((pool.feature.as_str(), pool.vendor.as_str()), ("vhdl-editor", "sigasi"));
        assert_eq!((pool.seats, pool.unit), (25, SeatUnit::Seats));
        assert_eq!(pool.start.unwrap().to_string(), "2026-11-01");
        assert!(matches!(pool.expires, Expiry::On(d) if d.to_string() == "2027-12-31"));
        assert_eq!(pool.customer.as_deref(), Some("ACME Corp"));
        assert_eq!((pool.hostid.clone(), pool.dup_group), (HostId::Any, DupGroup::UserHost));
        assert_eq!(pool.max_borrow_hours, crate::pool::DEFAULT_MAX_BORROW_HOURS);
        assert_eq!(parsed.sig, None);
    }

    #[test]
    fn increment_is_a_synonym_with_the_same_pool_id() {
        let feature = parse_one(LINE).unwrap();
        let increment = parse_one(&LINE.replacen("FEATURE", "INCREMENT", 1)).unwrap();
        assert_eq!(increment.keyword, Keyword::Increment);
        assert_eq!(increment.pool, feature.pool);
    }

    #[test]
    fn refusals_name_the_field() {
        let base = "FEATURE f vendor=v version=1 count=1 expires=permanent";
        for (text, field) in [
            ("LICENSE f vendor=v", "keyword"),
            ("FEATURE", "feature"),
            ("FEATURE -f vendor=v", "feature"),
            (&format!("{base} colour=red") as &str, "colour"),
            (&format!("{base} vendor=w"), "vendor"),
            (&format!("{base} notes=\"\""), "notes"),
            (&format!("{base} sig=a sig=b"), "sig"),
            ("FEATURE f version=1 count=1 expires=permanent", "vendor"),
            ("FEATURE f vendor=v version=1 count=uncounted expires=permanent", "hostid"),
            ("FEATURE f vendor=v version=1 count=uncounted hostid=ANY expires=permanent", "hostid"),
            ("FEATURE f vendor=v version=1 tokens=uncounted expires=permanent", "tokens"),
            ("FEATURE f vendor=v count=1 expires=permanent", "version"),
            ("FEATURE f vendor=v version=1 count=1", "expires"),
        ] {
            let e = parse_one(text).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert_eq!((e.origin.as_str(), e.line), ("t.lic", 1));
            let feature = e.feature.as_deref();
            assert_eq!(feature, (!["keyword", "feature"].contains(&field)).then_some("f"), "{e}");
        }
    }

    #[test]
    fn an_uncounted_line_with_quoted_host_ids_is_node_locked() {
        let text = "FEATURE cad vendor=v version=2 count=uncounted expires=permanent \
                    hostid=\"HOSTNAME=build7 001a2b3c4d5e\"";
        let parsed = parse_one(text).unwrap();
        assert!(parsed.pool.is_node_locked());
        assert_eq!((parsed.pool.seats, parsed.pool.unit), (0, SeatUnit::Uncounted));
        let ids = ["001a2b3c4d5e", "HOSTNAME=build7"].map(String::from);
        assert_eq!(parsed.pool.hostid, HostId::List(ids.into()));
        assert!(parsed.canonical_form().contains("\ncount=uncounted\n"));
        assert!(parsed.canonical_form().contains("\nhostid=HOSTNAME=build7 001a2b3c4d5e\n"));
    }

    #[test]
    fn an_unsigned_line_is_refused_as_such() {
        let parsed = parse_one(LINE).unwrap();
        let e = parsed.verify("t.lic", &TrustedKeys::new()).unwrap_err();
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("sig"), NOT_SIGNED));
    }
}
