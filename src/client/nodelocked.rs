//! Node-locked licenses: a `count=uncounted` FEATURE line with a `hostid=` list, checked by
//! the application alone, with no server.
//!
//! A line grants when its signature verifies with a vendor key the application trusts (the
//! public key the vendor builds into it), one of this machine's host ids is on its list
//! ([`crate::hostid::local_host_ids`]), its version is at least the one asked for, and the
//! local clock is within its dates. Everything else is a refusal that names the file, the
//! line, the feature and the reason, so a user who is refused can tell the vendor exactly
//! which line does not fit this machine.
//!
//! The local clock decides the dates: there is no server to ask, and a node-locked line is
//! the vendor's promise to one machine, whose owner controls its clock anyway.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use qlm_license::file::NOT_VERIFIED;
use qlm_license::{
    LineError, ParsedLine, Timestamp, TrustedKeys, Version, parse_license_text, read_license_file,
};

/// Most license files taken from one directory: a directory of thousands is a mistake, and
/// reading it would delay every checkout.
pub const MAX_FILES_IN_DIR: usize = 256;

/// Extension of the license files of a directory entry of the search path.
pub const LICENSE_FILE_EXTENSION: &str = "lic";

/// A node-locked line that grants on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLockedGrant {
    /// The feature granted.
    pub feature: String,
    /// The line's version (it serves requests up to it).
    pub version: String,
    /// The license file the line is in.
    pub file: PathBuf,
    /// The line it starts on, from 1.
    pub line: usize,
    /// The line's last valid day (`YYYY-MM-DD`, UTC), or `permanent`.
    pub expires: String,
}

/// Checks the node-locked lines of `feature` in `files`, in order, and grants the first that
/// verifies with one of `keys`, names one of `host_ids`, has a version of at least `version`
/// (any when `None`) and is within its dates at `now`.
///
/// Otherwise every refusal, in order, each naming the file, the line, the feature and the
/// reason; a file that cannot be read is a refusal naming the file. Lines of other features,
/// and counted lines (a server's), are not considered. An empty list means the files hold no
/// node-locked line of `feature` and nothing was refused.
pub fn check(
    files: &[PathBuf],
    feature: &str,
    version: Option<&str>,
    keys: &TrustedKeys,
    host_ids: &[String],
    now: SystemTime,
) -> Result<NodeLockedGrant, Vec<String>> {
    let wanted = match version.map(str::parse::<Version>).transpose() {
        Ok(wanted) => wanted,
        Err(e) => return Err(vec![format!("feature `{feature}`: version asked for: {e}")]),
    };
    let now = Timestamp(
        now.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
    );
    let mut refusals = Vec::new();
    for file in files {
        let origin = file.display().to_string();
        let text = match read_license_file(file) {
            Ok(text) => text,
            Err(e) => {
                refusals.push(format!("{e} (looking for node-locked feature `{feature}`)"));
                continue;
            }
        };
        for parsed in parse_license_text(&origin, &text) {
            let parsed = match parsed {
                Ok(parsed) => parsed,
                // A malformed line of this feature may well be the one the user needs.
                Err(e) if e.feature.as_deref() == Some(feature) => {
                    refusals.push(e.to_string());
                    continue;
                }
                Err(_) => continue,
            };
            if parsed.pool.feature != feature || !parsed.pool.is_node_locked() {
                continue;
            }
            let checks = Checks { origin: &origin, keys, host_ids, wanted: wanted.as_ref(), now };
            match checks.refusal(&parsed) {
                Some(refusal) => refusals.push(refusal.to_string()),
                None => {
                    return Ok(NodeLockedGrant {
                        feature: parsed.pool.feature.clone(),
                        version: parsed.pool.version.to_string(),
                        file: file.clone(),
                        line: parsed.line,
                        expires: parsed.pool.expires.to_string(),
                    });
                }
            }
        }
    }
    Err(refusals)
}

/// What one line is checked against.
struct Checks<'a> {
    origin: &'a str,
    keys: &'a TrustedKeys,
    host_ids: &'a [String],
    wanted: Option<&'a Version>,
    now: Timestamp,
}

impl Checks<'_> {
    /// Why `parsed` does not grant here, if it does not. The signature comes first: the other
    /// fields of a line that does not verify mean nothing.
    fn refusal(&self, parsed: &ParsedLine) -> Option<LineError> {
        let pool = &parsed.pool;
        let at = |field: &str, message: String| {
            LineError::field(self.origin, parsed.line, field, message).with_feature(&pool.feature)
        };
        if let Err(error) = parsed.verify(self.origin, self.keys) {
            // The server's wording speaks of the server's keys; here they are the application's.
            if error.message != NOT_VERIFIED {
                return Some(error);
            }
            let fingerprints: Vec<String> =
                self.keys.keys().iter().map(|key| key.fingerprint()).collect();
            return Some(at(
                "sig",
                format!(
                    "signature does not verify with the vendor key this application trusts \
                     ({}): the line was changed after signing, or signed with another key",
                    fingerprints.join(", ")
                ),
            ));
        }
        if !pool.hostid.matches(self.host_ids) {
            let this = match self.host_ids.is_empty() {
                true => "this machine has no host id that can be read".to_owned(),
                false => format!("this machine is {}", self.host_ids.join(", ")),
            };
            return Some(at("hostid", format!("locked to {}; {this}", pool.hostid)));
        }
        if let Some(wanted) = self.wanted.filter(|&wanted| &pool.version < wanted) {
            return Some(at(
                "version",
                format!("version {} is lower than the {wanted} asked for", pool.version),
            ));
        }
        if !pool.is_started(self.now) {
            let start = pool.start.map(|d| d.to_string()).unwrap_or_default();
            let today = self.now.date();
            return Some(at("start", format!("starts on {start}; this machine's date is {today}")));
        }
        if pool.is_expired(self.now) {
            let today = self.now.date();
            return Some(at(
                "expires",
                format!("expired on {}; this machine's date is {today}", pool.expires),
            ));
        }
        None
    }
}

/// The license files (`*.lic`) of a directory, sorted by name, at most [`MAX_FILES_IN_DIR`];
/// none when the directory cannot be read.
pub fn license_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == LICENSE_FILE_EXTENSION) && path.is_file()
        })
        .collect();
    files.sort();
    files.truncate(MAX_FILES_IN_DIR);
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_gives_its_license_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.lic", "a.lic", "notes.txt", "c.lic.bak"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        fs::create_dir(dir.path().join("d.lic")).unwrap();
        let names: Vec<String> = license_files_in(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.lic", "b.lic"]);
        assert!(license_files_in(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn a_bad_version_asked_for_is_named() {
        let refusals = check(&[], "cad", Some("x.y"), &TrustedKeys::new(), &[], SystemTime::now())
            .unwrap_err();
        assert!(refusals[0].contains("cad") && refusals[0].contains("x.y"), "{refusals:?}");
    }
}
