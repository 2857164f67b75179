//! Commit notices held back (the rules are in [`GrpcNetwork`]'s documentation).

use std::sync::Arc;
use std::time::Duration;

use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use prometheus_client::metrics::counter::Counter;

use super::{GrpcNetwork, PeerLink, RpcResult};
use crate::{LogId, NodeId, TypeConfig, Vote};

/// How long a commit notice is held for a message that would carry its commit index anyway.
pub const NOTICE_DELAY: Duration = Duration::from_millis(2);

/// A follower's commit notice held back (see [`GrpcNetwork`]).
#[derive(Default)]
pub(super) struct HeldNotice {
    /// The newest notice not yet sent or superseded.
    pub(super) request: Option<(AppendEntriesRequest<TypeConfig>, RPCOption)>,
    /// A task will wake after [`NOTICE_DELAY`] and send `request` if it is still there.
    scheduled: bool,
    /// A notice sent late failed; notices are sent and awaited until a message is answered.
    pub(super) failed: bool,
}

impl GrpcNetwork {
    /// The held notice; a poisoned lock (a panic elsewhere while holding it) still holds
    /// consistent data, as every update is a single assignment.
    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, HeldNotice> {
        self.notice.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `rpc` back if it is a commit notice that may be (the rules are in the type's
    /// documentation): no entry, the same leader as the answer just received, and a
    /// prev_log_id that is what that answer confirmed, with no notice failed since. Gives it
    /// back when it must be sent now.
    pub(super) fn hold_notice(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
        confirmed: Option<(Vote, Option<LogId>)>,
    ) -> Option<(AppendEntriesRequest<TypeConfig>, RPCOption)> {
        let Some((vote, last)) = confirmed else {
            return Some((rpc, option));
        };
        if !rpc.entries.is_empty() || rpc.vote != vote || rpc.prev_log_id != last {
            return Some((rpc, option));
        }
        let mut held = self.held();
        if held.failed {
            return Some((rpc, option));
        }
        held.request = Some((rpc, option));
        self.replicated.notices_held.inc();
        if !held.scheduled {
            held.scheduled = true;
            let link = self.link.clone();
            let notice = Arc::clone(&self.notice);
            let sent = self.replicated.notices_sent.clone();
            tokio::spawn(send_held_notice(link, notice, sent));
        }
        None
    }
}

/// Waits [`NOTICE_DELAY`], then sends the held notice if no other message superseded it.
async fn send_held_notice(
    link: PeerLink,
    notice: Arc<std::sync::Mutex<HeldNotice>>,
    sent: Counter,
) {
    tokio::time::sleep(NOTICE_DELAY).await;
    let request = {
        let mut held = notice.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        held.scheduled = false;
        held.request.take()
    };
    let Some((rpc, option)) = request else {
        return;
    };
    sent.inc();
    let answer: RpcResult<AppendEntriesResponse<NodeId>> =
        link.call(RPCTypes::AppendEntries, &rpc, &option).await;
    if !matches!(answer, Ok(AppendEntriesResponse::Success)) {
        tracing::debug!(
            node = link.node_id,
            target = link.target,
            "commit notice sent late not accepted: {answer:?}"
        );
        notice.lock().unwrap_or_else(std::sync::PoisonError::into_inner).failed = true;
    }
}
