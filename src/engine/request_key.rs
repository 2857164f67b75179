//! What a request asks, reduced to a number: a retry of a request (the same request id) must
//! ask the same, or it is a request id reused for another request and is refused rather than
//! answered with the first request's outcome ([`retried`] gives the answer to a retry).
//!
//! The key is kept beside each remembered outcome, in every replica's state and in snapshots,
//! and a retry's key may be computed on another replica than the one that stored it: so it is
//! a fixed function of the request's fields (FNV-1a over their little-endian bytes), never a
//! hasher with random keys or machine-dependent byte order.

use crate::{Command, Handle, Outcome, RejectKind};
use qlm_license::{Timestamp, Version};

/// A digest of the fields of a request that a retry must repeat.
pub type RequestKey = u64;

/// FNV-1a, 64 bits: deterministic, fast on the few dozen bytes a request has.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new(kind: u8) -> Fnv {
        let mut fnv = Fnv(Fnv::OFFSET);
        fnv.bytes(&[kind]);
        fnv
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Fnv::PRIME);
        }
    }

    /// A string, preceded by its length so that two fields cannot run into each other.
    fn text(&mut self, text: &str) {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
    }
}

/// The key of a checkout: what it asks for, with the version normalized ("4" is "4.0").
pub fn checkout_key(
    feature: &str,
    version: &Version,
    count: u32,
    wait: bool,
    borrow_until: Option<Timestamp>,
) -> RequestKey {
    let mut fnv = Fnv::new(1);
    fnv.text(feature);
    for part in version.parts() {
        fnv.bytes(&part.to_le_bytes());
    }
    fnv.bytes(&count.to_le_bytes());
    fnv.bytes(&[u8::from(wait)]);
    match borrow_until {
        Some(until) => {
            fnv.bytes(&[1]);
            fnv.bytes(&until.0.to_le_bytes());
        }
        None => fnv.bytes(&[0]),
    }
    fnv.0
}

/// The key of a checkin: the handle it gives back.
pub fn checkin_key(handle: Handle) -> RequestKey {
    let mut fnv = Fnv::new(2);
    fnv.bytes(&handle.0.to_le_bytes());
    fnv.0
}

impl Command {
    /// For a request a client may retry (Checkout, Checkin): its session, its request id and
    /// its key.
    pub fn retry_identity(&self) -> Option<(&str, &str, RequestKey)> {
        match self {
            Command::Checkout {
                session_id,
                request_id,
                feature,
                version,
                count,
                wait,
                borrow_until,
                ..
            } => Some((
                session_id,
                request_id,
                checkout_key(feature, version, *count, *wait, *borrow_until),
            )),
            Command::Checkin { session_id, request_id, handle } => {
                Some((session_id, request_id, checkin_key(*handle)))
            }
            _ => None,
        }
    }
}

/// The answer to a request whose id the session used before: the first outcome when the
/// request is the same, a refusal when the id was reused for a different request (answering
/// it with another request's outcome would tell a client it holds what it never asked for).
pub(crate) fn retried((key, previous): (RequestKey, &Outcome), asked: RequestKey) -> Outcome {
    if key == asked {
        previous.clone()
    } else {
        Outcome::rejected(
            RejectKind::InvalidArgument,
            "`request_id` was used by this session for a different request; make a new \
             request id for each request (only a retry of the same request may repeat one)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn equal_requests_have_equal_keys_and_any_difference_changes_the_key() {
        let base = checkout_key("vhdl", &v("4.0"), 1, false, None);
        assert_eq!(base, checkout_key("vhdl", &v("4"), 1, false, None));
        for other in [
            checkout_key("vhdl2", &v("4.0"), 1, false, None),
            checkout_key("vhdl", &v("4.1"), 1, false, None),
            checkout_key("vhdl", &v("4.0"), 2, false, None),
            checkout_key("vhdl", &v("4.0"), 1, true, None),
            checkout_key("vhdl", &v("4.0"), 1, false, Some(Timestamp(0))),
            checkin_key(Handle(1)),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(checkin_key(Handle(1)), checkin_key(Handle(2)));
    }

    #[test]
    fn the_key_is_a_fixed_function_of_the_fields() {
        // Replicas on other machines compare keys stored in snapshots: the value may not
        // depend on the process, the build or the byte order.
        assert_eq!(checkin_key(Handle(7)), 12_675_618_483_291_568_002);
    }
}
