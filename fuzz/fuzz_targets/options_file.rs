//! Fuzzes the options (policy) file parser with arbitrary bytes.
//!
//! Besides "never panics", it checks that every error points at a line that exists, and that
//! whatever parses prints back (`Display for Policy`) to text that parses to the same policy:
//! what an admin is shown is what the server enforces.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qlm_license::{Policy, parse_options};

/// The policy without the line numbers its rules were read from (printing renumbers them).
fn without_lines(mut policy: Policy) -> Policy {
    for rule in policy.reserves.iter_mut().chain(policy.maxes.iter_mut()) {
        rule.line = 0;
    }
    for rule in policy.includes.iter_mut().chain(policy.excludes.iter_mut()) {
        rule.line = 0;
    }
    policy
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    match parse_options("fuzz.opt", &text) {
        Ok(policy) => {
            let printed = policy.to_string();
            let again = parse_options("printed.opt", &printed).map(without_lines);
            assert_eq!(again.ok(), Some(without_lines(policy)), "printed form:\n{printed}");
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in &errors {
                assert!((1..=lines).contains(&error.line), "{error}");
            }
        }
    }
});
