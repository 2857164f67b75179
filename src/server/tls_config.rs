//! A node's TLS settings: which files the client port and the peer port use, checked as a
//! whole so that a half-configured port (a certificate without its key, a peer CA without the
//! node's certificate) is refused at start with a message naming the flags, and a file that
//! cannot be read, or is not what its flag needs, is refused naming the file.
//!
//! - Client port: `--tls-cert` and `--tls-key` together turn TLS on; `--tls-client-ca`
//!   (needs both) makes every client present a certificate from that CA.
//! - Peer port: `--peer-tls-cert`, `--peer-tls-key` and `--peer-tls-ca` together turn mutual
//!   TLS on: the node accepts only peers with a certificate from that CA, and presents its own
//!   certificate when it dials them.
//!
//! Without them a port is plaintext, which `run` announces with a WARN line at start.

use std::path::PathBuf;

use crate::config::ConfigError;
use qlm_net::tls::{CertificateHolder, IdentityFiles, PeerTls, ServerPortTls, TlsFileError};

/// The files of the client port's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPortTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate from this CA.
    pub client_ca: Option<PathBuf>,
}

/// The files of the peer port's mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Both ports' TLS settings; `None` is plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub client: Option<ClientPortTlsFiles>,
    pub peer: Option<PeerTlsFiles>,
}

/// The TLS material, read and checked, ready for tonic.
#[derive(Clone, Debug, Default)]
pub struct LoadedTls {
    pub client: Option<ServerPortTls>,
    pub peer: Option<PeerTls>,
}

/// The TLS flags as given (flag, variable or file), before they are checked.
#[derive(Clone, Debug, Default)]
pub struct TlsFlags {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub peer_tls_cert: Option<PathBuf>,
    pub peer_tls_key: Option<PathBuf>,
    pub peer_tls_ca: Option<PathBuf>,
}

fn error(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { setting: setting.to_owned(), reason: reason.into() }
}

fn file_error(e: TlsFileError) -> ConfigError {
    error(&e.setting, format!("{}: {}", e.path.display(), e.reason))
}

impl TlsSettings {
    /// Checks that each port is configured whole or not at all, then reads every file.
    pub fn resolve(flags: TlsFlags) -> Result<TlsSettings, ConfigError> {
        let client = match (flags.tls_cert, flags.tls_key, flags.tls_client_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), client_ca) => Some(ClientPortTlsFiles { cert, key, client_ca }),
            (cert, key, _) => {
                let (given, missing) = match (cert.is_some(), key.is_some()) {
                    (true, false) => ("--tls-cert", "--tls-key"),
                    (false, true) => ("--tls-key", "--tls-cert"),
                    _ => ("--tls-client-ca", "--tls-cert and --tls-key"),
                };
                return Err(error(
                    given,
                    format!(
                        "client-port TLS is half configured: {given} is given without \
                         {missing}; give --tls-cert and --tls-key (and optionally \
                         --tls-client-ca), or none of them for plaintext"
                    ),
                ));
            }
        };
        let peer = match (flags.peer_tls_cert, flags.peer_tls_key, flags.peer_tls_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => Some(PeerTlsFiles { cert, key, ca }),
            (cert, key, ca) => {
                let names = ["--peer-tls-cert", "--peer-tls-key", "--peer-tls-ca"];
                let given = [cert.is_some(), key.is_some(), ca.is_some()];
                let list = |want: bool| {
                    names
                        .iter()
                        .zip(given)
                        .filter(|(_, g)| *g == want)
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(error(
                    "--peer-tls-cert",
                    format!(
                        "peer mutual TLS is half configured: {} given but {} missing; give \
                         all three, or none for plaintext peer links",
                        list(true),
                        list(false)
                    ),
                ));
            }
        };
        let settings = TlsSettings { client, peer };
        settings.load()?;
        Ok(settings)
    }

    /// Reads and checks every file: PEM contents, and that each key is its certificate's.
    pub fn load(&self) -> Result<LoadedTls, ConfigError> {
        let client = match &self.client {
            None => None,
            Some(files) => {
                let identity =
                    IdentityFiles::read(("--tls-cert", "--tls-key"), &files.cert, &files.key)
                        .map_err(file_error)?;
                let client_ca = match &files.client_ca {
                    None => None,
                    Some(path) => Some((
                        path.clone(),
                        CertificateHolder(
                            qlm_net::tls::read_certificates("--tls-client-ca", path)
                                .map_err(file_error)?,
                        ),
                    )),
                };
                let tls = ServerPortTls { identity, client_ca };
                tonic::transport::Server::builder()
                    .tls_config(tls.server_config())
                    .map_err(|e| mismatch("--tls-cert", &files.cert, &files.key, &e))?;
                Some(tls)
            }
        };
        let peer = match &self.peer {
            None => None,
            Some(files) => {
                let tls = PeerTls::read(&files.cert, &files.key, &files.ca).map_err(file_error)?;
                tonic::transport::Server::builder()
                    .tls_config(tls.server_config())
                    .map_err(|e| mismatch("--peer-tls-cert", &files.cert, &files.key, &e))?;
                Some(tls)
            }
        };
        Ok(LoadedTls { client, peer })
    }
}

fn mismatch(
    setting: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
    e: &tonic::transport::Error,
) -> ConfigError {
    let cause = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
    error(
        setting,
        format!(
            "{} with {} is not a usable identity (is the key that of the certificate?): {cause}",
            cert.display(),
            key.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use qlm_net::tls::certs::{make_ca, make_node_cert};

    #[test]
    fn half_configured_ports_are_refused_naming_the_flags() {
        let some = || Some(PathBuf::from("x.pem"));
        let cases = [
            (TlsFlags { tls_cert: some(), ..TlsFlags::default() }, "--tls-key"),
            (TlsFlags { tls_key: some(), ..TlsFlags::default() }, "--tls-cert"),
            (TlsFlags { tls_client_ca: some(), ..TlsFlags::default() }, "--tls-client-ca"),
            (TlsFlags { peer_tls_cert: some(), ..TlsFlags::default() }, "--peer-tls-key"),
            (
                TlsFlags { peer_tls_cert: some(), peer_tls_key: some(), ..TlsFlags::default() },
                "--peer-tls-ca missing",
            ),
        ];
        for (flags, needle) in cases {
            let err = TlsSettings::resolve(flags).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("half configured"), "{needle}: {err}");
        }
        assert_eq!(TlsSettings::resolve(TlsFlags::default()).unwrap(), TlsSettings::default());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_ca(&dir.path().join("ca"), "CA", 30).unwrap();
        let hosts = ["127.0.0.1".to_owned()];
        let a = make_node_cert(&dir.path().join("ca"), "a", &hosts, dir.path(), 30).unwrap();
        let b = make_node_cert(&dir.path().join("ca"), "b", &hosts, dir.path(), 30).unwrap();
        let flags = TlsFlags {
            peer_tls_cert: Some(a.cert.clone()),
            peer_tls_key: Some(b.key.clone()),
            peer_tls_ca: Some(ca.cert.clone()),
            ..TlsFlags::default()
        };
        let err = TlsSettings::resolve(flags).unwrap_err().to_string();
        assert!(err.contains("--peer-tls-cert") && err.contains("a.pem"), "{err}");
        let good = TlsFlags {
            tls_cert: Some(a.cert.clone()),
            tls_key: Some(a.key.clone()),
            tls_client_ca: Some(ca.cert.clone()),
            peer_tls_cert: Some(a.cert),
            peer_tls_key: Some(a.key),
            peer_tls_ca: Some(ca.cert),
        };
        let settings = TlsSettings::resolve(good).unwrap();
        assert!(settings.client.is_some() && settings.peer.is_some());
    }
}
