//! Vendor key files: how [`VendorKey`]s and [`VendorPublicKey`]s are stored on disk.
//!
//! Both are small text files, so they can be inspected, diffed and pasted into configuration
//! management: comment lines (`#`) and blank lines, then exactly one key line:
//!
//! ```text
//! # QuorumLM vendor secret key (ed25519) ...
//! ed25519-secret:<standard base64 of the 32-byte seed>
//!
//! # QuorumLM vendor public key (ed25519) ...
//! ed25519-public:<standard base64 of the 32-byte public key>
//! ```
//!
//! The tag says which kind of key a file holds, so handing a server the secret key by mistake
//! (or a signer the public one) is a clear error, not a confusing verification failure. A
//! secret key file is created with mode 0600 and a key file is never overwritten: losing a
//! vendor key means re-issuing every license signed with it.

use std::fs::{self, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::signing::{KEY_BYTES, TrustedKeys, VendorKey, VendorPublicKey};

/// Tag of the key line in a secret key file.
pub const SECRET_KEY_TAG: &str = "ed25519-secret:";
/// Tag of the key line in a public key file.
pub const PUBLIC_KEY_TAG: &str = "ed25519-public:";
/// Name of the secret key file `qlm license keygen` writes.
pub const SECRET_KEY_FILE: &str = "vendor.key";
/// Name of the public key file `qlm license keygen` writes.
pub const PUBLIC_KEY_FILE: &str = "vendor.pub";
/// Largest key file read; a key file is under 200 bytes, so anything this big is not one.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Permissions of a new secret key file: owner read/write only.
pub const SECRET_KEY_MODE: u32 = 0o600;
/// Permissions of a new public key file: anyone may read it.
pub const PUBLIC_KEY_MODE: u32 = 0o644;

/// A key file that cannot be read, written or understood; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write key file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{} already exists; refusing to overwrite a key file", path.display())]
    Exists { path: PathBuf },
    #[error("key file {}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

/// Where [`write_key_pair`] put the two halves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairPaths {
    pub secret: PathBuf,
    pub public: PathBuf,
}

impl VendorKey {
    /// The text of a secret key file.
    pub fn to_key_file_text(&self) -> String {
        format!(
            "# QuorumLM vendor secret key (ed25519), public key fingerprint {}.\n\
             # Keep it private: whoever has this file can sign licenses.\n\
             {SECRET_KEY_TAG}{}\n",
            self.public_key().fingerprint(),
            BASE64.encode(self.seed())
        )
    }

    /// Reads a secret key file.
    pub fn read_file(path: &Path) -> Result<VendorKey, KeyFileError> {
        let text = read_key_text(path)?;
        let seed =
            key_bytes(&text, KeyKind::Secret).map_err(|message| format_error(path, message))?;
        Ok(VendorKey::from_seed(seed))
    }

    /// Writes a new secret key file, mode 0600; refuses to overwrite an existing file.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyFileError> {
        write_new(path, &self.to_key_file_text(), SECRET_KEY_MODE)
    }
}

impl VendorPublicKey {
    /// The text of a public key file.
    pub fn to_key_file_text(&self) -> String {
        format!(
            "# QuorumLM vendor public key (ed25519), fingerprint {}.\n\
             # Give it to license servers (qlmd --vendor-pubkey) to verify licenses.\n\
             {PUBLIC_KEY_TAG}{}\n",
            self.fingerprint(),
            self.to_base64()
        )
    }

    /// Reads a public key file.
    pub fn read_file(path: &Path) -> Result<VendorPublicKey, KeyFileError> {
        let text = read_key_text(path)?;
        key_bytes(&text, KeyKind::Public)
            .and_then(|bytes| VendorPublicKey::from_bytes(&bytes))
            .map_err(|message| format_error(path, message))
    }

    /// The key in the text of a public key file (what an application builds in). The
    /// message says what is wrong with the text.
    pub fn from_key_file_text(text: &str) -> Result<VendorPublicKey, String> {
        key_bytes(text, KeyKind::Public).and_then(|bytes| VendorPublicKey::from_bytes(&bytes))
    }

    /// Writes a new public key file; refuses to overwrite an existing file.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyFileError> {
        write_new(path, &self.to_key_file_text(), PUBLIC_KEY_MODE)
    }
}

impl TrustedKeys {
    /// The keys of these public key files; fails on the first file that cannot be read.
    pub fn read_files<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<TrustedKeys, KeyFileError> {
        let mut trusted = TrustedKeys::new();
        for path in paths {
            trusted.insert(VendorPublicKey::read_file(path.as_ref())?);
        }
        Ok(trusted)
    }
}

/// Writes `dir/vendor.key` (mode 0600) and `dir/vendor.pub`, creating `dir` if needed.
/// Refuses, writing nothing, if either file already exists.
pub fn write_key_pair(dir: &Path, key: &VendorKey) -> Result<KeyPairPaths, KeyFileError> {
    let paths =
        KeyPairPaths { secret: dir.join(SECRET_KEY_FILE), public: dir.join(PUBLIC_KEY_FILE) };
    fs::create_dir_all(dir)
        .map_err(|source| KeyFileError::Write { path: dir.to_owned(), source })?;
    for path in [&paths.secret, &paths.public] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyFileError::Exists { path: path.clone() });
        }
    }
    key.write_new_file(&paths.secret)?;
    key.public_key().write_new_file(&paths.public)?;
    Ok(paths)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Secret,
    Public,
}

fn format_error(path: &Path, message: String) -> KeyFileError {
    KeyFileError::Format { path: path.to_owned(), message }
}

fn read_key_text(path: &Path) -> Result<String, KeyFileError> {
    let read_error = |source| KeyFileError::Read { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format_error(
            path,
            format!("is larger than {MAX_KEY_FILE_BYTES} bytes; not a key file"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| format_error(path, "is not a text key file".into()))
}

/// The 32 key bytes of a key file's text, checked to be of the `wanted` kind.
fn key_bytes(text: &str, wanted: KeyKind) -> Result<[u8; KEY_BYTES], String> {
    let (tag, other_tag, other_hint) = match wanted {
        KeyKind::Secret => (
            SECRET_KEY_TAG,
            PUBLIC_KEY_TAG,
            "holds a public key, not a secret key; signing needs the vendor.key file",
        ),
        KeyKind::Public => (
            PUBLIC_KEY_TAG,
            SECRET_KEY_TAG,
            "holds a secret key, not a public key; give servers the vendor.pub file \
             and keep this one private",
        ),
    };
    let mut key_lines =
        text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'));
    let line = key_lines.next().ok_or_else(|| format!("has no key line (`{tag}<base64>`)"))?;
    if key_lines.next().is_some() {
        return Err("has more than one key line".to_owned());
    }
    let encoded = match line.strip_prefix(tag) {
        Some(encoded) => encoded,
        None if line.starts_with(other_tag) => return Err(other_hint.to_owned()),
        None => return Err(format!("is not a QuorumLM key file (expected `{tag}<base64>`)")),
    };
    let bytes =
        BASE64.decode(encoded.trim()).map_err(|e| format!("the key is not valid base64 ({e})"))?;
    bytes.as_slice().try_into().map_err(|_| {
        format!("the key decodes to {} bytes; an ed25519 key has {KEY_BYTES}", bytes.len())
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(
        |source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: path.to_owned() },
            _ => KeyFileError::Write { path: path.to_owned(), source },
        },
    )?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn key_files_round_trip_and_the_secret_one_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = VendorKey::from_seed([9; KEY_BYTES]);
        let paths = write_key_pair(dir.path(), &key).unwrap();
        let mode = fs::metadata(&paths.secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, SECRET_KEY_MODE);
        let read = VendorKey::read_file(&paths.secret).unwrap();
        assert_eq!(read.public_key(), key.public_key());
        assert_eq!(VendorPublicKey::read_file(&paths.public).unwrap(), key.public_key());
        let again = write_key_pair(dir.path(), &key).unwrap_err();
        assert!(matches!(again, KeyFileError::Exists { .. }), "{again}");
    }

    #[test]
    fn the_wrong_kind_of_key_is_named() {
        let key = VendorKey::from_seed([9; KEY_BYTES]);
        let secret = key.to_key_file_text();
        let public = key.public_key().to_key_file_text();
        assert!(key_bytes(&secret, KeyKind::Public).unwrap_err().contains("secret key"));
        assert!(key_bytes(&public, KeyKind::Secret).unwrap_err().contains("public key"));
    }

    #[test]
    fn malformed_key_files_say_what_is_wrong() {
        for (text, needle) in [
            ("# only a comment\n", "no key line"),
            ("ed25519-public:!!!\n", "base64"),
            ("ed25519-public:AAAA\n", "3 bytes"),
            ("ssh-ed25519 AAAA\n", "not a QuorumLM key file"),
            ("ed25519-public:AAAA\ned25519-public:AAAA\n", "more than one"),
        ] {
            let e = key_bytes(text, KeyKind::Public).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_missing_key_file_names_the_path() {
        let e = VendorPublicKey::read_file(Path::new("/nonexistent/vendor.pub")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/vendor.pub"), "{e}");
    }
}
