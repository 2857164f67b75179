//! Fuzzes the client port's request decoding and validation with arbitrary bytes.
//!
//! The first byte picks one of the requests a client can send (every LicenseService,
//! StatusService and AdminService request that carries strings); the rest is decoded as that
//! protobuf message, as tonic would. Besides "never panics", it checks what the server relies
//! on: a request the checks accept becomes an engine command no larger than
//! `MAX_COMMAND_BYTES` (so a log entry's size is bounded whatever clients send), and a
//! refusal's message stays under `MAX_ERROR_BYTES` whatever the input (so it fits a trailer).

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use qlm_engine::Command;
use qlm_proto::convert::{self, ConvertError};
use qlm_proto::v1;
use qlm_proto::validate::{self, MAX_COMMAND_BYTES, MAX_ERROR_BYTES};
use qlm_raft::network::encode_payload;

/// A server-made session id or secret: 32 hex digits.
fn server_made() -> String {
    "0123456789abcdef".repeat(2)
}

fn bounded(command: Command) {
    let bytes = encode_payload(&command).expect("an engine command encodes").len();
    assert!(bytes <= MAX_COMMAND_BYTES, "{bytes} bytes: {command:?}");
}

fn refused(error: ConvertError) {
    let message = error.to_string();
    assert!(message.len() <= MAX_ERROR_BYTES, "{} bytes: {message}", message.len());
}

/// Decodes `bytes` as `M`; checks it; on success hands it to `accepted`.
fn check<M: Message + Default>(
    bytes: &[u8],
    validate: fn(&M) -> Result<(), ConvertError>,
    accepted: fn(M),
) {
    let Ok(request) = M::decode(bytes) else { return };
    match validate(&request) {
        Ok(()) => accepted(request),
        Err(error) => refused(error),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    match kind % 10 {
        0 => check(bytes, validate::open_session, |r: v1::OpenSessionRequest| {
            bounded(convert::open_session_command(r, server_made(), server_made(), 30_000))
        }),
        1 => check(bytes, validate::checkout, |r: v1::CheckoutRequest| {
            match convert::checkout_command(r) {
                Ok(command) => bounded(command),
                Err(error) => refused(error),
            }
        }),
        2 => check(bytes, validate::checkin, |r: v1::CheckinRequest| {
            bounded(convert::checkin_command(r))
        }),
        3 => check(bytes, validate::close_session, |r: v1::CloseSessionRequest| {
            bounded(convert::close_session_command(r))
        }),
        4 => check(bytes, validate::heartbeat, |_: v1::HeartbeatRequest| {}),
        5 => check(bytes, validate::wait_queued, |_: v1::WaitQueuedRequest| {}),
        6 => check(bytes, validate::features, |_: v1::FeaturesRequest| {}),
        7 => check(bytes, validate::checkouts, |_: v1::CheckoutsRequest| {}),
        8 => check(bytes, validate::remove, |r: v1::RemoveRequest| {
            match convert::remove_command(r) {
                Ok(command) => bounded(command),
                Err(error) => refused(error),
            }
        }),
        _ => check(bytes, validate::add_node, |_: v1::AddNodeRequest| {}),
    }
});
