//! TLS material: reading PEM files into what tonic's rustls transport takes, for the node's
//! two ports and for clients, and making a cluster CA and node certificates (`certs`).
//!
//! Two uses, two shapes:
//!
//! - The client port ([`ServerPortTls`]): the node presents a certificate; clients verify it
//!   against the CA they were given (`qlm --tls-ca`). With a client CA configured, every client
//!   must present a certificate from that CA too.
//! - The peer port ([`PeerTls`]): mutual TLS. Every node presents its certificate and accepts
//!   only peers whose certificate chains to the cluster CA, both ways: the server side refuses a
//!   handshake without such a certificate, and the client side (a node dialing a peer) verifies
//!   the peer's certificate against the same CA. A stranger never gets as far as a gRPC call, so
//!   it cannot send a Raft message, a forwarded write, a heartbeat or a hello.
//!
//! Invariants:
//!
//! - A file that cannot be read, or that holds no usable PEM item of the kind asked for, is an
//!   error naming the setting and the file; nothing starts half-configured.
//! - Private keys never reach a log: every type here that holds one has a `Debug` that prints
//!   the file paths only (tonic's own `Identity` prints its key bytes, so it is never exposed
//!   through `Debug`).
//! - The crypto provider is `ring` (tonic's `tls-ring` feature): no C toolchain beyond the one
//!   `ring` itself needs, no cmake or nasm.

#[cfg(feature = "certs")]
pub mod certs;

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Longest a TLS handshake may take before the connection is dropped, on either side. A peer
/// that opens a connection and says nothing must not hold a server task for long.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A TLS file that could not be used: the setting that named it, the file, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {}: {reason}", path.display())]
pub struct TlsFileError {
    /// The flag (`--peer-tls-ca`) that named the file.
    pub setting: String,
    pub path: PathBuf,
    pub reason: String,
}

fn file_error(setting: &str, path: &Path, reason: impl Into<String>) -> TlsFileError {
    TlsFileError { setting: setting.to_owned(), path: path.to_owned(), reason: reason.into() }
}

fn read(setting: &str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| file_error(setting, path, format!("cannot read: {e}")))
}

/// Reads a PEM file of one or more certificates (a chain, or a CA bundle).
pub fn read_certificates(setting: &str, path: &Path) -> Result<Certificate, TlsFileError> {
    let pem = read(setting, path)?;
    let mut count = 0;
    for item in CertificateDer::pem_slice_iter(&pem) {
        item.map_err(|e| file_error(setting, path, format!("not valid PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(file_error(setting, path, "holds no `BEGIN CERTIFICATE` block"));
    }
    Ok(Certificate::from_pem(pem))
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(setting: &str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let pem = read(setting, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| file_error(setting, path, format!("holds no usable PEM private key ({e})")))?;
    Ok(pem)
}

/// A certificate chain and its private key, read from two files.
#[derive(Clone)]
pub struct IdentityFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    identity: Identity,
}

impl IdentityFiles {
    /// Reads `cert` and `key`; `settings` names the two flags for messages.
    pub fn read(
        settings: (&str, &str),
        cert: &Path,
        key: &Path,
    ) -> Result<IdentityFiles, TlsFileError> {
        let chain = read_certificates(settings.0, cert)?;
        let key_pem = read_private_key(settings.1, key)?;
        Ok(IdentityFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            identity: Identity::from_pem(chain.into_inner(), key_pem),
        })
    }

    pub fn identity(&self) -> Identity {
        self.identity.clone()
    }
}

impl fmt::Debug for IdentityFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// TLS of the client port: the node's certificate, and optionally the CA whose certificates
/// clients must present.
#[derive(Clone, Debug)]
pub struct ServerPortTls {
    pub identity: IdentityFiles,
    /// When set, a client without a certificate from this CA is refused at the handshake.
    pub client_ca: Option<(PathBuf, CertificateHolder)>,
}

impl ServerPortTls {
    /// What tonic's server takes.
    pub fn server_config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(self.identity.identity()).timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca {
            Some((_, ca)) => config.client_ca_root(ca.0.clone()),
            None => config,
        }
    }
}

/// A certificate (public data) kept for a config; `Debug` shows its size only.
#[derive(Clone)]
pub struct CertificateHolder(pub Certificate);

impl fmt::Debug for CertificateHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({} bytes of PEM)", self.0.get_ref().len())
    }
}

/// Mutual TLS of the peer port: this node's certificate (presented both as a server and when
/// dialing peers) and the cluster CA (required of every peer, both ways).
#[derive(Clone, Debug)]
pub struct PeerTls {
    pub identity: IdentityFiles,
    pub ca_path: PathBuf,
    ca: CertificateHolder,
}

impl PeerTls {
    /// Reads the three files; the messages name `--peer-tls-cert`, `--peer-tls-key` and
    /// `--peer-tls-ca`.
    pub fn read(cert: &Path, key: &Path, ca: &Path) -> Result<PeerTls, TlsFileError> {
        Ok(PeerTls {
            identity: IdentityFiles::read(("--peer-tls-cert", "--peer-tls-key"), cert, key)?,
            ca_path: ca.to_owned(),
            ca: CertificateHolder(read_certificates("--peer-tls-ca", ca)?),
        })
    }

    /// The peer port's server side: a client certificate from the cluster CA is required.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.identity())
            .client_ca_root(self.ca.0.clone())
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The dialing side: trust only the cluster CA, and present this node's certificate.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.0.clone())
            .identity(self.identity.identity())
            .timeout(HANDSHAKE_TIMEOUT)
    }
}

/// TLS of a client of the client port (the client library, `qlm`): the CA to trust (else the
/// system's roots) and optionally a client certificate.
#[derive(Clone, Default)]
pub struct ClientTls {
    ca: Option<Certificate>,
    identity: Option<Identity>,
}

impl ClientTls {
    /// Reads the files given; the messages name `--tls-ca`, `--tls-cert` and `--tls-key`.
    /// A certificate without its key (or the reverse) is refused.
    pub fn read(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<ClientTls, TlsFileError> {
        let ca = ca.map(|path| read_certificates("--tls-ca", path)).transpose()?;
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some(IdentityFiles::read(("--tls-cert", "--tls-key"), cert, key)?.identity())
            }
            (Some(cert), None) => {
                return Err(file_error("--tls-cert", cert, "is given without --tls-key"));
            }
            (None, Some(key)) => {
                return Err(file_error("--tls-key", key, "is given without --tls-cert"));
            }
        };
        Ok(ClientTls { ca, identity })
    }

    /// What tonic's channel takes: the given CA, or the system's roots when none is given.
    pub fn client_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        let config = match &self.ca {
            Some(ca) => config.ca_certificate(ca.clone()),
            None => config.with_native_roots(),
        };
        match &self.identity {
            Some(identity) => config.identity(identity.clone()),
            None => config,
        }
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

// The tests make their certificates with `certs`, which `cargo test --workspace` enables (the
// command line depends on it).
#[cfg(all(test, feature = "certs"))]
mod tests;
