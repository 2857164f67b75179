//! What the node crate's tests share.
#![allow(dead_code)]

use qlm_engine::{Command, Outcome};

/// Opens sessions `s0` .. `s{writers - 1}` through `proposer`, all at once, and checks that
/// each write is answered within `wait` with its own session opened; the log indexes of the
/// entries that carried them.
pub async fn open_sessions_at_once(
    proposer: &std::sync::Arc<qlm_node::proposer::Proposer>,
    writers: usize,
    wait: std::time::Duration,
) -> std::collections::BTreeSet<u64> {
    let writes: Vec<_> = (0..writers)
        .map(|i| {
            let proposer = proposer.clone();
            let open = Command::OpenSession {
                session_id: format!("s{i}").as_str().into(),
                secret: "s3cret".into(),
                user: "alice".into(),
                host: "ws1".into(),
                pid: 7,
                display: ":0".into(),
                ttl_ms: 30_000,
            };
            tokio::spawn(async move { proposer.propose(open).await })
        })
        .collect();
    let mut indexes = std::collections::BTreeSet::new();
    for (i, write) in writes.into_iter().enumerate() {
        let (applied, index) = tokio::time::timeout(wait, write)
            .await
            .expect("answered in time: queued writes were proposed")
            .expect("the writer finishes")
            .expect("the write is applied");
        match applied.outcome {
            Outcome::SessionOpened { session_id, .. } => assert_eq!(session_id, format!("s{i}")),
            other => panic!("write {i}: {other:?}"),
        }
        indexes.insert(index);
    }
    indexes
}
