//! [`Seat`]: what a checkout of the synchronous client hands the application.

use std::sync::Arc;

use tokio::runtime::Runtime;

use crate::error::ClientError;
use crate::licenser::Grant;

/// A granted checkout: from a cluster (checked in on [`Seat::checkin`] or drop) or from a
/// node-locked line (nothing to give back). `Send + Sync`.
pub struct Seat {
    kind: Kind,
    handle: u64,
    feature: String,
    version: String,
    count: u32,
    source: String,
}

enum Kind {
    /// `None` once checked in or kept.
    Floating {
        runtime: Arc<Runtime>,
        checkout: Option<crate::Checkout>,
    },
    NodeLocked,
}

impl Seat {
    pub(super) fn new(runtime: Arc<Runtime>, grant: Grant, asked: u32) -> Seat {
        match grant {
            Grant::Floating { checkout, source } => {
                let granted = checkout.granted();
                Seat {
                    handle: granted.handle,
                    feature: granted.feature.clone(),
                    version: granted.version.clone(),
                    count: granted.count,
                    source,
                    kind: Kind::Floating { runtime, checkout: Some(checkout) },
                }
            }
            Grant::NodeLocked(grant) => Seat {
                handle: 0,
                source: format!("node-locked {} line {}", grant.file.display(), grant.line),
                feature: grant.feature,
                version: grant.version,
                count: asked,
                kind: Kind::NodeLocked,
            },
        }
    }

    /// The cluster's handle of the checkout; 0 for a node-locked grant.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The feature granted.
    pub fn feature(&self) -> &str {
        &self.feature
    }

    /// The version of the pool (or line) that granted.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Seats or tokens held.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True for a grant from a node-locked line of a license file.
    pub fn is_node_locked(&self) -> bool {
        matches!(self.kind, Kind::NodeLocked)
    }

    /// Where the grant came from: `cluster a:7400,b:7400` or `node-locked FILE line N`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Gives the seats back (retried on failover under one request id). A node-locked grant
    /// has nothing to give back.
    pub fn checkin(mut self) -> Result<(), ClientError> {
        match &mut self.kind {
            Kind::Floating { runtime, checkout } => match checkout.take() {
                Some(checkout) => runtime.block_on(checkout.checkin()),
                None => Ok(()),
            },
            Kind::NodeLocked => Ok(()),
        }
    }

    /// Leaves the checkout held when the seat is dropped (a borrow that outlives the
    /// process).
    pub fn keep(mut self) {
        if let Kind::Floating { checkout, .. } = &mut self.kind
            && let Some(checkout) = checkout.take()
        {
            let _ = checkout.keep();
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Kind::Floating { runtime, checkout } = &mut self.kind
            && let Some(checkout) = checkout.take()
        {
            // The checkin of a dropped guard is spawned on the current runtime: the library's.
            let _entered = runtime.enter();
            drop(checkout);
        }
    }
}

impl std::fmt::Debug for Seat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seat")
            .field("feature", &self.feature)
            .field("handle", &self.handle)
            .field("count", &self.count)
            .field("source", &self.source)
            .finish()
    }
}
