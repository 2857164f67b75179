//! The client port's limits on what a caller sends, and a tower layer that answers tonic's own
//! refusals of a request message with the codes the contract lists (common.proto).
//!
//! tonic refuses a request message before any handler runs when it is over the service's
//! `max_decoding_message_size` (OUT_OF_RANGE) or does not decode (INTERNAL, which reads as a
//! fault of the server). No rpc lists either code, and prost's decode error names tags and
//! wire types of the bytes received. Both refusals are trailers-only responses (grpc-status in
//! the headers), so [`RefusalLayer`] rewrites them in the headers: RESOURCE_EXHAUSTED naming
//! [`MAX_CLIENT_MESSAGE_BYTES`], and INVALID_ARGUMENT, each with a fixed message that echoes
//! nothing of the request, and with the leader hint when the node knows a leader.
//!
//! Why a layer and not a custom codec (tonic-prost-build's `codec_path`): the size check is
//! tonic's own (its `Streaming` reads the 5-byte frame header and refuses before a codec sees
//! a byte), and so are a message cut short and a call with no message; a codec would reach only
//! the protobuf decode failure, and an unlimited size in its place would let tonic buffer
//! whatever length a frame header claims. The layer sees every one of those refusals in one
//! place, for every service of the port (health and reflection too), and touches no handler.
//! It recognizes them by code and message as tonic 0.14 and prost 0.14 write them; the unit
//! tests below make them through a real tonic service, so an upgrade that changes them fails
//! there instead of letting the old codes through.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use tonic::{Code, Status};

/// Largest request message (protobuf bytes, before any compression) a client-port service
/// decodes. The largest valid request is a few KiB (strings are at most 256 bytes), so this
/// leaves room for growth while a caller cannot make a node buffer megabytes per call.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest request metadata (the HTTP/2 header list: every header's name and value plus 32
/// bytes each, as RFC 7541 counts it) the client port reads. Anything up to this reaches the
/// services, which refuse what is too long for them by name (an admin token over
/// [`crate::admin::MAX_ADMIN_TOKEN_BYTES`] is UNAUTHENTICATED); above it, HTTP/2
/// itself refuses the call before gRPC sees it (common.proto says what a client sees).
pub const MAX_REQUEST_METADATA_BYTES: u32 = 256 * 1024;

/// The start of tonic 0.14's refusal of a message over the limit (OUT_OF_RANGE).
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";
/// The start of prost's decode error, which tonic-prost answers with INTERNAL.
const PROST_UNDECODABLE: &str = "failed to decode Protobuf message";
/// tonic's refusal of a message cut short by the end of the request (INTERNAL).
const TONIC_TRUNCATED: &str = "Unexpected EOF decoding stream";
/// tonic's refusal of a unary or server-streaming call whose request holds no message
/// (INTERNAL).
const TONIC_NO_MESSAGE: &str = "Missing request message";

/// What a client is told instead of tonic's own refusal in `code` with `message`, if it is
/// one; `None` for anything else (a handler's answer passes unchanged).
pub fn replacement(code: Code, message: &str) -> Option<Status> {
    match code {
        Code::OutOfRange if message.starts_with(TONIC_TOO_LARGE) => {
            Some(Status::resource_exhausted(format!(
                "the request message is over the server's limit of {MAX_CLIENT_MESSAGE_BYTES} \
                 bytes (common.proto); the same request will be refused again"
            )))
        }
        Code::Internal
            if [PROST_UNDECODABLE, TONIC_TRUNCATED, TONIC_NO_MESSAGE]
                .iter()
                .any(|start| message.starts_with(start)) =>
        {
            Some(Status::invalid_argument(
                "the request message does not decode as the rpc's request type (malformed or \
                 truncated protobuf, or no message); the same request will be refused again",
            ))
        }
        _ => None,
    }
}

/// The gRPC status a trailers-only response carries in `headers`, as (code, message).
fn status_in(headers: &HeaderMap) -> Option<(Code, String)> {
    let code = Code::from_bytes(headers.get(Status::GRPC_STATUS)?.as_bytes());
    let message = headers
        .get(Status::GRPC_MESSAGE)
        .map(|m| percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some((code, message))
}

/// Wraps the client port's routes; `hint` adds the leader hint to a status
/// (`ClientServices::hinted`).
#[derive(Clone)]
pub struct RefusalLayer<H> {
    hint: H,
}

impl<H> RefusalLayer<H> {
    pub fn new(hint: H) -> RefusalLayer<H> {
        RefusalLayer { hint }
    }
}

impl<S, H: Clone> tower::Layer<S> for RefusalLayer<H> {
    type Service = Refusals<S, H>;

    fn layer(&self, inner: S) -> Refusals<S, H> {
        Refusals { inner, hint: self.hint.clone() }
    }
}

/// The rewriting service around the routes.
#[derive(Clone)]
pub struct Refusals<S, H> {
    inner: S,
    hint: H,
}

impl<S, H, B, R> tower::Service<http::Request<B>> for Refusals<S, H>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    H: Fn(Status) -> Status + Clone + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.inner.call(request);
        let hint = self.hint.clone();
        Box::pin(async move {
            let mut response = call.await?;
            let Some(status) = status_in(response.headers())
                .and_then(|(code, message)| replacement(code, &message))
            else {
                return Ok(response);
            };
            let status = hint(status);
            let headers = response.headers_mut();
            headers.remove(Status::GRPC_MESSAGE);
            headers.remove(Status::GRPC_STATUS_DETAILS);
            if let Err(e) = status.add_header(headers) {
                // Only a hint that is no header value can fail here; the code still stands.
                tracing::warn!(error = %e, "a rewritten refusal lost part of its metadata");
                headers.insert(Status::GRPC_STATUS, http::HeaderValue::from(status.code() as i32));
            }
            response.extensions_mut().insert(status);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, ServiceExt};

    /// The size limit of the service under test.
    const LIMIT: usize = 64;

    /// `frame` sent as a unary health check to a real tonic health service with a decoding
    /// limit of [`LIMIT`] bytes, through the layer or not: the answer's code and message.
    async fn health_check(frame: &[u8], through_layer: bool) -> (Code, String) {
        let (_reporter, server) = tonic_health::server::health_reporter();
        let server = server.max_decoding_message_size(LIMIT);
        let body = String::from_utf8(frame.to_vec()).expect("test frames are UTF-8");
        let request = http::Request::builder()
            .method("POST")
            .uri("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(body)
            .expect("a request");
        let response = if through_layer {
            let hint = |status: Status| status;
            RefusalLayer::new(hint).layer(server).oneshot(request).await
        } else {
            server.oneshot(request).await
        };
        let response = response.expect("infallible");
        status_in(response.headers()).expect("a trailers-only refusal")
    }

    /// A gRPC frame: no compression, the length, the bytes.
    fn frame(declared_len: u32, bytes: &[u8]) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&declared_len.to_be_bytes());
        frame.extend_from_slice(bytes);
        frame
    }

    /// Invalid protobuf: field 1 with wire type 7, which does not exist.
    const GARBAGE: &[u8] = &[0x0f, 0x0f, 0x0f, 0x0f];

    #[tokio::test]
    async fn tonic_refusals_are_recognized_as_tonic_and_prost_write_them() {
        let oversize = frame(LIMIT as u32 + 1, &[]);
        let (code, message) = health_check(&oversize, false).await;
        assert_eq!(code, Code::OutOfRange, "{message}");
        assert!(replacement(code, &message).is_some(), "{message}");
        for undecodable in
            [frame(GARBAGE.len() as u32, GARBAGE), frame(10, b"\x0a\x02"), Vec::new()]
        {
            let (code, message) = health_check(&undecodable, false).await;
            assert_eq!(code, Code::Internal, "{message}");
            assert!(replacement(code, &message).is_some(), "{undecodable:?}: {message}");
        }
    }

    #[tokio::test]
    async fn the_layer_answers_the_contracts_codes_and_echoes_nothing() {
        let (code, message) = health_check(&frame(70_000, &[]), true).await;
        assert_eq!(code, Code::ResourceExhausted, "{message}");
        assert!(message.contains(&MAX_CLIENT_MESSAGE_BYTES.to_string()), "{message}");
        assert!(!message.contains("70000"), "the declared length is not echoed: {message}");
        let (code, message) = health_check(&frame(GARBAGE.len() as u32, GARBAGE), true).await;
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(!message.contains("wire type") && !message.contains('7'), "{message}");
    }

    #[tokio::test]
    async fn a_handlers_own_status_passes_unchanged() {
        // service "x" is not registered: the health handler answers NOT_FOUND itself.
        let (code, _) = health_check(&frame(3, b"\x0a\x01x"), true).await;
        assert_eq!(code, Code::NotFound);
        for (code, message) in [
            (Code::Internal, "OpenSession answered Denied"),
            (Code::OutOfRange, "handle out of range"),
            (Code::InvalidArgument, "`feature` is empty"),
        ] {
            assert!(replacement(code, message).is_none(), "{code:?} {message}");
        }
    }
}
