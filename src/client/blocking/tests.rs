use super::*;

#[test]
fn vendor_keys_are_read_from_a_key_file_or_bare_base64() {
    let key = qlm_license::VendorKey::from_seed([7; 32]).public_key();
    let client = Client::from_servers("127.0.0.1:1").unwrap();
    client.trust_vendor_key(&key.to_key_file_text()).unwrap();
    client.trust_vendor_key(&key.to_base64()).unwrap();
    for (bad, needle) in [
        ("", "no key given"),
        ("# only a comment:", "no key line"),
        ("ed25519-public:AAAA", "bytes"),
        ("ed25519-secret:AAAA", "secret key"),
        ("not base64!", "base64"),
    ] {
        let error = client.trust_vendor_key(bad).unwrap_err().to_string();
        assert!(error.contains(needle), "{bad:?}: {error}");
    }
    let huge = "#".repeat(MAX_KEY_TEXT_BYTES + 1);
    assert!(client.trust_vendor_key(&huge).unwrap_err().to_string().contains("at most"));
}

#[test]
fn a_search_path_names_its_bad_entry() {
    let Err(error) = Client::from_search_path("/a.lic:7400@") else { panic!("accepted") };
    let message = error.to_string();
    assert!(message.contains("entry 2") && message.contains("7400@"), "{message}");
}
