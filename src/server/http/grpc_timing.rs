//! A tower layer on the client port's gRPC server that times every call, by service and
//! method, into `qlm_grpc_request_duration_seconds`.
//!
//! The time runs from the request's arrival to the response's headers: the whole call for a
//! unary RPC (tonic sends headers with the answer), the set-up only for a server stream
//! (WaitQueued). Paths outside QuorumLM's own services (health, reflection, anything a
//! stranger sends) are counted under `service="other"`, so a scanner cannot grow the label set.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::Request;

use super::metrics::{RpcHistograms, RpcLabels};

/// The services whose methods get their own label.
const TIMED_SERVICES: [&str; 3] = ["LicenseService", "StatusService", "AdminService"];
/// The package of those services, as it appears in the gRPC path.
const PACKAGE: &str = "quorumlm.v1.";

/// Wraps a gRPC server's routes.
#[derive(Clone)]
pub struct GrpcTimingLayer {
    histograms: RpcHistograms,
}

impl GrpcTimingLayer {
    pub fn new(histograms: RpcHistograms) -> GrpcTimingLayer {
        GrpcTimingLayer { histograms }
    }
}

impl<S> tower::Layer<S> for GrpcTimingLayer {
    type Service = GrpcTiming<S>;

    fn layer(&self, inner: S) -> GrpcTiming<S> {
        GrpcTiming { inner, histograms: self.histograms.clone() }
    }
}

/// The timing service around the routes.
#[derive(Clone)]
pub struct GrpcTiming<S> {
    inner: S,
    histograms: RpcHistograms,
}

/// The labels of a gRPC path `/quorumlm.v1.LicenseService/Checkout`.
pub fn rpc_labels(path: &str) -> RpcLabels {
    let known = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(PACKAGE))
        .and_then(|p| p.split_once('/'))
        .filter(|(service, method)| {
            TIMED_SERVICES.contains(service)
                && !method.is_empty()
                && method.len() <= 64
                && method.chars().all(|c| c.is_ascii_alphanumeric())
        });
    match known {
        Some((service, method)) => {
            RpcLabels { service: service.to_owned(), method: method.to_owned() }
        }
        None => RpcLabels { service: "other".to_owned(), method: "other".to_owned() },
    }
}

impl<S, B> tower::Service<Request<B>> for GrpcTiming<S>
where
    S: tower::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let labels = rpc_labels(request.uri().path());
        let started = Instant::now();
        let call = self.inner.call(request);
        let histograms = self.histograms.clone();
        Box::pin(async move {
            let answer = call.await;
            histograms.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_get_their_labels_and_anything_else_is_other() {
        let l = rpc_labels("/quorumlm.v1.LicenseService/Checkout");
        assert_eq!((l.service.as_str(), l.method.as_str()), ("LicenseService", "Checkout"));
        for path in [
            "/grpc.health.v1.Health/Check",
            "/quorumlm.v1.RaftService/Vote",
            "/quorumlm.v1.LicenseService/",
            "/quorumlm.v1.LicenseService/a{b}",
            "garbage",
        ] {
            assert_eq!(rpc_labels(path).service, "other", "{path}");
        }
    }
}
