//! The license search path: where an application looks for its licenses, in the one variable
//! admins already know from FlexLM (`LM_LICENSE_FILE`) and RLM (`RLM_LICENSE`).
//!
//! `QLM_LICENSE` (and, before it, a vendor's own variable such as `SIGASI_LICENSE`, named by
//! the application) holds entries separated by `:` (`;` on Windows). Each entry is one of:
//!
//! | entry | example | what it is |
//! |---|---|---|
//! | a license file | `/opt/sigasi/node.lic` | node-locked lines, checked on this machine |
//! | a directory | `/opt/sigasi/licenses` | every `*.lic` in it, in name order |
//! | a server | `7400@lic1`, `lic1:7400`, `lic1`, `https://lic1:7400` | a cluster of one listed node |
//! | a cluster | `7400@lic1,7400@lic2,7400@lic3` | one cluster: its nodes, comma-joined |
//!
//! Entries are tried in order (see `blocking`): a node-locked line that verifies grants at
//! once; a cluster grants through its nodes; a cluster that cannot be reached, or that denies,
//! hands over to the next entry. `QLM_SERVERS` stays the short form: one cluster, tried last.
//!
//! How an entry is told apart: with `@`, `,` or a scheme it is a cluster; with a `/` (or
//! `\`), a `.lic` ending, or the name of something on disk it is a path; anything else is a
//! server name. On Unix a `:` that starts a port (`:7400` followed by the end, `,`, `/` or
//! `:`), the `://` of a scheme, or a `:` inside `[...]` (IPv6) belongs to its entry, so
//! `lic1:7400:/opt/lic` is a server and then a directory. A file whose name is only digits
//! is written `./1234`.
//!
//! A malformed entry refuses the whole path, naming the variable, the entry's position
//! (counted from one) and the entry: a typo in a license path must not silently send an application to a
//! different server. Empty entries (`a::b`, a leading or trailing separator) are skipped, as
//! in `PATH`, since scripts build these variables by appending.

use std::fmt;
use std::path::PathBuf;

use crate::endpoints::{DEFAULT_CLIENT_PORT, ServerAddr, parse_servers};
use crate::error::ClientError;

/// The search-path variable every QuorumLM application reads.
pub const LICENSE_ENV: &str = "QLM_LICENSE";

/// Longest search path read, in bytes.
pub const MAX_SEARCH_PATH_BYTES: usize = 64 * 1024;

/// Most entries one search path may have.
pub const MAX_ENTRIES: usize = 64;

/// The entry separator: `:` on Unix, `;` on Windows (where `:` follows a drive letter).
pub const SEPARATOR: char = if cfg!(windows) { ';' } else { ':' };

/// One entry of a search path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A license file with node-locked lines.
    File(PathBuf),
    /// A directory: its `*.lic` files.
    Directory(PathBuf),
    /// One cluster: every node the entry named.
    Cluster(Vec<ServerAddr>),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::File(path) => write!(f, "file {}", path.display()),
            Entry::Directory(path) => write!(f, "directory {}", path.display()),
            Entry::Cluster(nodes) => {
                f.write_str("cluster ")?;
                for (i, node) in nodes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{node}")?;
                }
                Ok(())
            }
        }
    }
}

/// A search path, read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPath {
    /// The entries, in the order they are tried.
    pub entries: Vec<Entry>,
    /// Whether an entry asked for TLS (`https://`).
    pub wants_tls: bool,
}

/// A search path that could not be read: which variable, which entry, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: entry {position} `{entry}`: {reason}")]
pub struct SearchPathError {
    /// The variable (or `search path` for text given through the API).
    pub origin: String,
    /// The entry's position, from 1.
    pub position: usize,
    /// The entry as written (cut short when long).
    pub entry: String,
    pub reason: String,
}

impl From<SearchPathError> for ClientError {
    fn from(error: SearchPathError) -> ClientError {
        ClientError::NoServers(error.to_string())
    }
}

/// Reads a search path given as text (`origin` names where it came from in errors).
pub fn parse_search_path(origin: &str, text: &str) -> Result<SearchPath, SearchPathError> {
    let fail = |position: usize, entry: &str, reason: String| SearchPathError {
        origin: origin.to_owned(),
        position,
        entry: qlm_license::fields::shown(entry),
        reason,
    };
    if text.len() > MAX_SEARCH_PATH_BYTES {
        let reason = format!("the path is {} bytes; at most {MAX_SEARCH_PATH_BYTES}", text.len());
        return Err(fail(0, "", reason));
    }
    let mut path = SearchPath::default();
    let pieces = split_entries(text);
    for (i, piece) in pieces.iter().enumerate() {
        let position = i + 1;
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        if path.entries.len() == MAX_ENTRIES {
            return Err(fail(position, piece, format!("more than {MAX_ENTRIES} entries")));
        }
        let entry = classify(piece).map_err(|reason| fail(position, piece, reason))?;
        path.wants_tls |= matches!(entry, Entry::Cluster(_)) && crate::list_wants_tls(piece);
        path.entries.push(entry);
    }
    Ok(path)
}

impl SearchPath {
    /// The search path of this process: `vendor_var` (when the application names one and it
    /// is set), then `QLM_LICENSE`, then `QLM_SERVERS` as one cluster. An error when none is
    /// set, or when one cannot be read.
    pub fn from_env(vendor_var: Option<&str>) -> Result<SearchPath, ClientError> {
        let path = SearchPath::from_env_if_set(vendor_var)?.ok_or_else(|| {
            let names: Vec<&str> =
                vendor_var.into_iter().chain([LICENSE_ENV, crate::SERVERS_ENV]).collect();
            ClientError::NoServers(format!("none of {} is set", names.join(", ")))
        })?;
        if path.entries.is_empty() {
            return Err(ClientError::NoServers("the license search path has no entry".into()));
        }
        Ok(path)
    }

    /// The search path of the environment as [`SearchPath::from_env`] reads it, `None` when
    /// none of the variables is set.
    pub fn from_env_if_set(vendor_var: Option<&str>) -> Result<Option<SearchPath>, ClientError> {
        let mut path = SearchPath::default();
        let mut read = 0;
        for name in vendor_var.into_iter().chain([LICENSE_ENV]) {
            if let Some(text) = env_text(name)? {
                path.append(parse_search_path(name, &text)?);
                read += 1;
            }
        }
        if let Some(list) = env_text(crate::SERVERS_ENV)? {
            let servers =
                parse_servers(&list).map_err(|e| ClientError::NoServers(e.to_string()))?;
            path.wants_tls |= crate::list_wants_tls(&list);
            path.entries.push(Entry::Cluster(servers));
            read += 1;
        }
        Ok((read > 0).then_some(path))
    }

    /// As [`SearchPath::from_env`], but with nothing set, the server on this machine
    /// (`127.0.0.1:7400`), as `qlm` does.
    pub fn from_env_or_local(vendor_var: Option<&str>) -> Result<SearchPath, ClientError> {
        match SearchPath::from_env_if_set(vendor_var)? {
            Some(path) if !path.entries.is_empty() => Ok(path),
            _ => Ok(SearchPath::local()),
        }
    }

    /// The server on this machine's default port.
    pub fn local() -> SearchPath {
        let local = ServerAddr { host: "127.0.0.1".into(), port: DEFAULT_CLIENT_PORT };
        SearchPath { entries: vec![Entry::Cluster(vec![local])], wants_tls: false }
    }

    /// The clusters of the path, in order.
    pub fn clusters(&self) -> impl Iterator<Item = &[ServerAddr]> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Cluster(nodes) => Some(nodes.as_slice()),
            _ => None,
        })
    }

    /// Adds `other`'s entries after this path's.
    pub fn append(&mut self, other: SearchPath) {
        self.wants_tls |= other.wants_tls;
        self.entries.extend(other.entries);
    }
}

/// A variable's text, `None` when unset or blank; an error when it is not UTF-8.
fn env_text(name: &str) -> Result<Option<String>, ClientError> {
    match std::env::var(name) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ClientError::NoServers(format!("{name} is not valid UTF-8")))
        }
    }
}

/// Splits on [`SEPARATOR`], keeping the `:` of ports, schemes and bracketed IPv6 addresses
/// with their entry (see the module documentation).
fn split_entries(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut depth) = (0, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if c == SEPARATOR
                && depth == 0
                && !(SEPARATOR == ':' && colon_is_inside(bytes, i)) =>
            {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// Whether the `:` at `at` starts a port (`:7400` then the end, `,`, `/` or `:`) or a
/// scheme's `://`.
fn colon_is_inside(bytes: &[u8], at: usize) -> bool {
    let rest = &bytes[at + 1..];
    if rest.starts_with(b"//") {
        return true;
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && matches!(rest.get(digits), None | Some(b',' | b'/' | b':'))
}

fn classify(entry: &str) -> Result<Entry, String> {
    let lower = entry.to_ascii_lowercase();
    let scheme = lower.starts_with("http://") || lower.starts_with("https://");
    if scheme || entry.contains('@') || entry.contains(',') {
        return parse_cluster(entry);
    }
    let looks_like_path = entry.contains('/')
        || entry.contains('\\')
        || lower.ends_with(".lic")
        || std::path::Path::new(entry).exists();
    if looks_like_path {
        let path = PathBuf::from(entry);
        return Ok(if path.is_dir() { Entry::Directory(path) } else { Entry::File(path) });
    }
    parse_cluster(entry)
}

fn parse_cluster(entry: &str) -> Result<Entry, String> {
    parse_servers(entry).map(Entry::Cluster).map_err(|e| e.reason)
}

#[cfg(test)]
mod tests;
