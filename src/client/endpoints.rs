//! The list of license servers a client talks to: `QLM_SERVERS`, or `--servers`.
//!
//! Admins write it the way they know: `host1:7400,host2:7400,host3:7400`, or FlexLM's
//! `7400@host1,7400@host2` (also with `:` between entries, as in `LM_LICENSE_FILE`, only when
//! every entry uses `@`). IPv6 literals go in brackets (`[::1]:7400`). A bad entry is refused
//! with its position and the reason; order is kept (the client tries them in order after the
//! leader it last heard of) and duplicates are dropped. An entry may start with `https://`
//! (the cluster speaks TLS: see [`list_wants_tls`]) or `http://`; the scheme is not part of
//! the address.

use std::fmt;

/// Port a server listens on for clients when an entry names only a host.
pub const DEFAULT_CLIENT_PORT: u16 = 7400;

/// Most entries a list may have; a longer one is a mistake, not a cluster.
pub const MAX_SERVERS: usize = 64;

/// One server: host and client port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
}

impl ServerAddr {
    /// The `http://host:port` URI a gRPC channel connects to.
    pub fn uri(&self) -> String {
        format!("http://{self}")
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A server list that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("server list `{list}`: {reason}")]
pub struct ServerListError {
    pub list: String,
    pub reason: String,
}

/// Parses a server list (see the module documentation).
pub fn parse_servers(list: &str) -> Result<Vec<ServerAddr>, ServerListError> {
    let fail = |reason: String| ServerListError { list: list.to_owned(), reason };
    let trimmed = list.trim();
    if trimmed.is_empty() {
        return Err(fail("no server given (set QLM_SERVERS or --servers)".to_owned()));
    }
    // `7400@a:7400@b` (LM_LICENSE_FILE style) splits on `:` only when every part has an `@`.
    let colon_separated = !trimmed.contains(',')
        && trimmed.contains('@')
        && trimmed.split(':').all(|part| part.contains('@'));
    let entries: Vec<&str> =
        if colon_separated { trimmed.split(':').collect() } else { trimmed.split(',').collect() };
    let mut servers: Vec<ServerAddr> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let server = parse_one(entry.trim())
            .map_err(|reason| fail(format!("entry {} `{}`: {reason}", i + 1, entry.trim())))?;
        if !servers.contains(&server) {
            servers.push(server);
        }
    }
    if servers.len() > MAX_SERVERS {
        return Err(fail(format!("{} servers; at most {MAX_SERVERS}", servers.len())));
    }
    Ok(servers)
}

/// True when an entry of `list` starts with `https://`: the client must use TLS.
pub fn list_wants_tls(list: &str) -> bool {
    list.split(',').any(|entry| entry.trim().to_ascii_lowercase().starts_with("https://"))
}

fn strip_scheme(entry: &str) -> &str {
    for scheme in ["https://", "http://"] {
        // `get`, not indexing: the cut may fall inside a multi-byte character of bad input.
        if entry.get(..scheme.len()).is_some_and(|head| head.eq_ignore_ascii_case(scheme)) {
            return entry[scheme.len()..].trim_end_matches('/');
        }
    }
    entry
}

fn parse_one(entry: &str) -> Result<ServerAddr, String> {
    let entry = strip_scheme(entry);
    if entry.is_empty() {
        return Err("empty entry".to_owned());
    }
    if let Some((port, host)) = entry.split_once('@') {
        return Ok(ServerAddr { host: check_host(host)?, port: parse_port(port)? });
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("`[` without `]`")?;
        let port = match after.strip_prefix(':') {
            Some(port) => parse_port(port)?,
            None if after.is_empty() => DEFAULT_CLIENT_PORT,
            None => return Err(format!("unexpected `{after}` after `]`")),
        };
        return Ok(ServerAddr { host: check_host(host)?, port });
    }
    match entry.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("an IPv6 address must be written in brackets: [::1]:7400".to_owned())
        }
        Some((host, port)) => Ok(ServerAddr { host: check_host(host)?, port: parse_port(port)? }),
        None => Ok(ServerAddr { host: check_host(entry)?, port: DEFAULT_CLIENT_PORT }),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{port}` is not a port (1..=65535)")),
        Ok(port) => Ok(port),
    }
}

fn check_host(host: &str) -> Result<String, String> {
    let host = host.trim();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if valid { Ok(host.to_owned()) } else { Err(format!("`{host}` is not a host name or address")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, port: u16) -> ServerAddr {
        ServerAddr { host: host.into(), port }
    }

    #[test]
    fn host_port_and_flexlm_port_at_host_are_both_accepted() {
        let list = parse_servers("a:7400, 7401@b ,c").unwrap();
        assert_eq!(list, [addr("a", 7400), addr("b", 7401), addr("c", DEFAULT_CLIENT_PORT)]);
        let lm = parse_servers("7400@a:7400@b:27000@c").unwrap();
        assert_eq!(lm, [addr("a", 7400), addr("b", 7400), addr("c", 27000)]);
    }

    #[test]
    fn ipv6_needs_brackets_and_duplicates_are_dropped() {
        assert_eq!(parse_servers("[::1]:7400,[::1]:7400").unwrap(), [addr("::1", 7400)]);
        assert_eq!(addr("::1", 7400).to_string(), "[::1]:7400");
        assert!(parse_servers("::1:7400").unwrap_err().reason.contains("brackets"));
    }

    #[test]
    fn a_scheme_is_accepted_and_https_asks_for_tls() {
        let list = "https://a:7400,HTTPS://b:7400/";
        assert_eq!(parse_servers(list).unwrap(), [addr("a", 7400), addr("b", 7400)]);
        assert!(list_wants_tls(list));
        assert!(!list_wants_tls("http://a:7400,b:7400"));
        assert_eq!(parse_servers("http://[::1]:7400").unwrap(), [addr("::1", 7400)]);
    }

    #[test]
    fn bad_entries_are_refused_with_their_position() {
        for (bad, needle) in [
            ("", "no server"),
            ("a:7400,,b", "entry 2"),
            ("a:0", "not a port"),
            ("a:99999", "not a port"),
            ("x@a", "not a port"),
            ("a b:7400", "not a host"),
            ("[::1", "without `]`"),
        ] {
            let err = parse_servers(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }
}
