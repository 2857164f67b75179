//! Vendor keys and license signatures: ed25519 over the canonical form of each FEATURE line.
//!
//! A vendor holds a [`VendorKey`] (the 32-byte ed25519 seed) and signs the canonical form of
//! every FEATURE line with it (see `canonical.rs`); the server holds the [`TrustedKeys`], the
//! vendors' [`VendorPublicKey`]s, and serves a line only if one of them verifies its
//! signature. Why ed25519: small keys and signatures that fit on a license line, deterministic
//! signatures (re-signing the same line gives the same `sig=`), and no parameters to get
//! wrong.
//!
//! Verification is strict (`verify_strict`): weak public keys and malleable signatures are
//! refused, so one line has exactly one valid signature per key.
//!
//! How keys are stored on disk is in `keyfile.rs`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Bytes of an ed25519 secret seed and of a public key.
pub const KEY_BYTES: usize = 32;

/// Bytes of an ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;

/// Bytes of a key's SHA-256 shown as its fingerprint (enough for a person to tell keys
/// apart, short enough to read aloud).
pub const FINGERPRINT_BYTES: usize = 8;

/// A vendor's secret signing key. Whoever holds it can mint licenses: it lives in a file of
/// mode 0600 and is never printed (its `Debug` shows only the public half).
pub struct VendorKey {
    signing: SigningKey,
}

impl VendorKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<VendorKey, getrandom::Error> {
        let mut seed = [0u8; KEY_BYTES];
        getrandom::fill(&mut seed)?;
        Ok(VendorKey::from_seed(seed))
    }

    /// The key with this 32-byte seed (tests use fixed seeds; vendors use [`generate`]).
    ///
    /// [`generate`]: VendorKey::generate
    pub fn from_seed(seed: [u8; KEY_BYTES]) -> VendorKey {
        VendorKey { signing: SigningKey::from_bytes(&seed) }
    }

    /// The seed, for writing the key file.
    pub(crate) fn seed(&self) -> [u8; KEY_BYTES] {
        self.signing.to_bytes()
    }

    /// The public half, to hand to servers.
    pub fn public_key(&self) -> VendorPublicKey {
        VendorPublicKey { verifying: self.signing.verifying_key() }
    }

    /// Signs `message` (a canonical form).
    pub fn sign(&self, message: &[u8]) -> LicenseSignature {
        LicenseSignature(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorKey").field("public", &self.public_key()).finish_non_exhaustive()
    }
}

/// A vendor's public key: verifies the vendor's signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VendorPublicKey {
    verifying: VerifyingKey,
}

impl VendorPublicKey {
    /// The key with these 32 bytes; refuses bytes that are not a point on the curve and weak
    /// (small-order) keys, under which forged signatures would verify.
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> Result<VendorPublicKey, String> {
        let verifying = VerifyingKey::from_bytes(bytes)
            .map_err(|_| "the bytes are not a valid ed25519 public key".to_owned())?;
        if verifying.is_weak() {
            return Err(
                "the key is a weak ed25519 key, which would accept forged signatures".to_owned()
            );
        }
        Ok(VendorPublicKey { verifying })
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; KEY_BYTES] {
        self.verifying.to_bytes()
    }

    /// The key bytes in standard base64, as in the key file.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.to_bytes())
    }

    /// A short hex digest of the key, to tell keys apart in messages.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.to_bytes());
        digest[..FINGERPRINT_BYTES].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &LicenseSignature) -> bool {
        let signature = Signature::from_bytes(&signature.0);
        self.verifying.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for VendorPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendorPublicKey({})", self.fingerprint())
    }
}

/// The `sig=` of a FEATURE line: an ed25519 signature, written in standard base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LicenseSignature(pub [u8; SIGNATURE_BYTES]);

impl LicenseSignature {
    /// Decodes a `sig=` value; the message says what is wrong.
    pub fn from_base64(text: &str) -> Result<LicenseSignature, String> {
        let bytes = BASE64.decode(text).map_err(|e| format!("is not valid base64 ({e})"))?;
        let array: [u8; SIGNATURE_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            format!("decodes to {} bytes; an ed25519 signature has {SIGNATURE_BYTES}", bytes.len())
        })?;
        Ok(LicenseSignature(array))
    }

    /// The signature in standard base64 (88 characters).
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

/// The vendor public keys a server trusts: a line serves if any of them verifies it.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<VendorPublicKey>,
}

impl TrustedKeys {
    /// No key: nothing verifies.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a key (once; adding it again changes nothing).
    pub fn insert(&mut self, key: VendorPublicKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// The trusted keys, in the order they were added.
    pub fn keys(&self) -> &[VendorPublicKey] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted key whose signature of `message` this is, if any.
    pub fn signer_of(
        &self,
        message: &[u8],
        signature: &LicenseSignature,
    ) -> Option<&VendorPublicKey> {
        self.keys.iter().find(|key| key.verify(message, signature))
    }
}

impl FromIterator<VendorPublicKey> for TrustedKeys {
    fn from_iter<I: IntoIterator<Item = VendorPublicKey>>(iter: I) -> TrustedKeys {
        let mut trusted = TrustedKeys::new();
        for key in iter {
            trusted.insert(key);
        }
        trusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let key = VendorKey::from_seed([1; KEY_BYTES]);
        let other = VendorKey::from_seed([2; KEY_BYTES]);
        let sig = key.sign(b"count=25");
        assert!(key.public_key().verify(b"count=25", &sig));
        assert!(!key.public_key().verify(b"count=26", &sig));
        assert!(!other.public_key().verify(b"count=25", &sig));
        let trusted: TrustedKeys = [other.public_key(), key.public_key()].into_iter().collect();
        assert_eq!(trusted.signer_of(b"count=25", &sig), Some(&key.public_key()));
    }

    #[test]
    fn signatures_round_trip_through_base64_and_bad_ones_say_why() {
        let sig = VendorKey::from_seed([3; KEY_BYTES]).sign(b"x");
        let text = sig.to_base64();
        assert_eq!(text.len(), 88);
        assert_eq!(LicenseSignature::from_base64(&text).unwrap(), sig);
        assert!(LicenseSignature::from_base64("not base64!").unwrap_err().contains("base64"));
        assert!(LicenseSignature::from_base64("AAAA").unwrap_err().contains("3 bytes"));
    }

    #[test]
    fn generated_keys_differ_and_debug_hides_the_secret() {
        let a = VendorKey::generate().unwrap();
        let b = VendorKey::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
        let shown = format!("{a:?}");
        assert!(!shown.contains(&BASE64.encode(a.seed())));
        assert!(shown.contains(&a.public_key().fingerprint()));
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point (y = 1) has small order.
        let mut identity = [0u8; KEY_BYTES];
        identity[0] = 1;
        assert!(VendorPublicKey::from_bytes(&identity).unwrap_err().contains("weak"));
    }
}
