//! Making a cluster CA and node certificates (`qlm cert`), with rcgen.
//!
//! A small cluster needs one private CA: it signs one certificate per node, and every node
//! trusts only that CA on its peer port. A node certificate is good for both ends of a TLS
//! connection (server and client authentication), since a node both accepts and dials peers,
//! and names every host name and IP address the node is reached by (subject alternative
//! names; clients and peers check the name they dialed against them).
//!
//! Keys are ECDSA P-256. Key files are written with mode 0600, certificates 0644; nothing is
//! ever overwritten: when any file to be written exists, nothing is written at all.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

/// The CA certificate's file name in a CA directory: give it to nodes (`--peer-tls-ca`) and
/// clients (`--tls-ca`).
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key's file name: keep it off the nodes.
pub const CA_KEY_FILE: &str = "ca.key";
/// Days a CA is valid by default.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Days a node certificate is valid by default (the longest validity public CAs have allowed
/// for server certificates).
pub const DEFAULT_NODE_DAYS: u32 = 825;
/// Mode of private key files.
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files.
pub const CERT_FILE_MODE: u32 = 0o644;
/// Certificates start being valid this long before they are made, so a node whose clock is a
/// little behind accepts them.
const BACKDATE_SECS: i64 = 3600;

/// Why a certificate could not be made, naming the file or the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(pub String);

/// The files of a CA or of a node certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a new CA in `out` (created if missing): `ca.pem` and `ca.key`.
pub fn make_ca(out: &Path, common_name: &str, days: u32) -> Result<CertFiles, CertError> {
    let files = CertFiles { cert: out.join(CA_CERT_FILE), key: out.join(CA_KEY_FILE) };
    refuse_existing(out, &files)?;
    let key = KeyPair::generate().map_err(|e| CertError(format!("making a key: {e}")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, days)?;
    let cert = params.self_signed(&key).map_err(|e| CertError(format!("signing the CA: {e}")))?;
    write_pair(&files, &cert.pem(), &key.serialize_pem())?;
    Ok(files)
}

/// Makes a certificate for node `name`, valid for `hosts` (IP addresses and DNS names),
/// signed by the CA in `ca_dir`, into `out`: `NAME.pem` and `NAME.key`.
pub fn make_node_cert(
    ca_dir: &Path,
    name: &str,
    hosts: &[String],
    out: &Path,
    days: u32,
) -> Result<CertFiles, CertError> {
    check_name(name)?;
    if hosts.is_empty() {
        return Err(CertError("--host: give at least one host name or IP address".into()));
    }
    for host in hosts {
        check_host(host)?;
    }
    let files =
        CertFiles { cert: out.join(format!("{name}.pem")), key: out.join(format!("{name}.key")) };
    let issuer = read_ca(ca_dir)?;
    let mut params = CertificateParams::new(hosts.to_vec())
        .map_err(|e| CertError(format!("--host {}: {e}", hosts.join(","))))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days)?;
    refuse_existing(out, &files)?;
    let key = KeyPair::generate().map_err(|e| CertError(format!("making a key: {e}")))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| CertError(format!("signing the certificate of {name}: {e}")))?;
    write_pair(&files, &cert.pem(), &key.serialize_pem())?;
    Ok(files)
}

/// The CA of `dir`, checked: its key must be the one its certificate names.
fn read_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let read = |path: &Path| {
        fs::read_to_string(path)
            .map_err(|e| CertError(format!("--ca: cannot read {}: {e}", path.display())))
    };
    let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
    let key = KeyPair::from_pem(&key_pem).map_err(|e| {
        CertError(format!("--ca: {} is not a usable PEM private key: {e}", key_path.display()))
    })?;
    let not_a_cert = |e: String| {
        CertError(format!("--ca: {} is not a PEM certificate: {e}", cert_path.display()))
    };
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .map(|der: rustls_pki_types::CertificateDer<'static>| der)
        .map_err(|e| not_a_cert(e.to_string()))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| not_a_cert(e.to_string()))?;
    if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(CertError(format!(
            "--ca: {} is not the key of {}",
            key_path.display(),
            cert_path.display()
        )));
    }
    if !parsed.is_ca() {
        return Err(CertError(format!("--ca: {} is not a CA certificate", cert_path.display())));
    }
    Issuer::from_ca_cert_der(&der, key).map_err(|e| not_a_cert(e.to_string()))
}

/// A host is an IP address or a DNS name (letters, digits, `-` in dot-separated labels; a
/// leading `*.` for a wildcard).
fn check_host(host: &str) -> Result<(), CertError> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(CertError(format!("--host `{host}` is neither an IP address nor a DNS name")))
    }
}

/// A node name is a file name too: letters, digits, `.`, `-`, `_`.
fn check_name(name: &str) -> Result<(), CertError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CertError(format!("--name `{name}`: use letters, digits, `.`, `-` and `_`")))
    }
}

fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), CertError> {
    if days == 0 {
        return Err(CertError("--days must be at least 1".into()));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let at = |secs: i64| {
        OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| CertError(format!("--days {days}: {e}")))
    };
    params.not_before = at(now - BACKDATE_SECS)?;
    params.not_after = at(now + i64::from(days) * 86_400)?;
    Ok(())
}

/// Creates `out` and refuses when a file to be written is already there.
fn refuse_existing(out: &Path, files: &CertFiles) -> Result<(), CertError> {
    fs::create_dir_all(out)
        .map_err(|e| CertError(format!("--out: cannot create {}: {e}", out.display())))?;
    for path in [&files.cert, &files.key] {
        if path.symlink_metadata().is_ok() {
            return Err(CertError(format!(
                "{} exists; nothing was written (remove it, or choose another --out)",
                path.display()
            )));
        }
    }
    Ok(())
}

fn write_pair(files: &CertFiles, cert_pem: &str, key_pem: &str) -> Result<(), CertError> {
    write_new(&files.key, key_pem, KEY_FILE_MODE)?;
    if let Err(e) = write_new(&files.cert, cert_pem, CERT_FILE_MODE) {
        // Leave no key without its certificate.
        let _ = fs::remove_file(&files.key);
        return Err(e);
    }
    Ok(())
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), CertError> {
    let fail = |e: std::io::Error| CertError(format!("cannot write {}: {e}", path.display()));
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(fail)
}
