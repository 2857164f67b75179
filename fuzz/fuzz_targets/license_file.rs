//! Fuzzes the license file parser, loader and signer with arbitrary bytes.
//!
//! Besides "never panics", it checks the one property that ties the vendor's tool to the
//! server: whatever `sign_license_text` accepts, `load_licenses` serves in full, every line,
//! with no refusal. And every refusal points at a line that exists.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qlm_license::{
    TrustedKeys, VendorKey, load_licenses, parse_license_text, sign_license_text,
};

/// A fixed vendor key: signatures must be reproducible for a crash to be.
const SEED: [u8; 32] = [42; 32];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let key = VendorKey::from_seed(SEED);
    let trusted: TrustedKeys = [key.public_key()].into_iter().collect();

    let lines = text.split('\n').count();
    let parsed = parse_license_text("fuzz.lic", &text);
    let set = load_licenses("fuzz.lic", &text, &trusted);
    assert_eq!(set.pools.len() + set.refused.len(), parsed.len());
    for refusal in &set.refused {
        assert!((1..=lines).contains(&refusal.line), "{refusal}");
    }

    if let Ok(signed) = sign_license_text("fuzz.lic", &text, &key) {
        let reloaded = load_licenses("signed.lic", &signed, &trusted);
        assert!(reloaded.refused.is_empty(), "{:?}\n{signed}", reloaded.refused);
        assert_eq!(reloaded.pools.len(), parsed.len());
    }
});
