//! Fault-injecting TCP proxies on the peer links: the chaos suite's network.
//!
//! Every directed peer link `from -> to` (the connections node `from` dials to node `to`) gets
//! its own proxy: node `from` is started with `--peer-route to=<proxy>`, and the proxy forwards
//! to `to`'s real peer port. A link is in one [`LinkMode`] at a time, and a change applies at
//! once to new and existing connections:
//!
//! - [`LinkMode::Pass`]: bytes flow both ways.
//! - [`LinkMode::Drop`]: new connections are closed at once and existing ones are shut (as a
//!   firewall that rejects, or a peer that restarted): the dialer sees errors quickly.
//! - [`LinkMode::BlackHole`]: connections are accepted and kept, and every byte is discarded
//!   (as a cable pulled mid-flight): the dialer sees nothing but its own deadlines.
//! - [`LinkMode::Delay`]: every chunk waits this long before it is forwarded.
//!
//! Because gRPC answers travel back on the connection the caller dialed, cutting `a -> b` but
//! not `b -> a` is a one-way partition: `a` can neither ask `b` nor hear its answers, while `b`'s
//! own calls to `a` go through.
//!
//! The proxies run on their own thread and runtime, so they keep working whatever the test's
//! runtime does, and they stop (closing every socket) when the [`ProxyNet`] is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a link does with its traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    Pass,
    Drop,
    BlackHole,
    Delay(Duration),
}

/// Size of one forwarded chunk.
const CHUNK_BYTES: usize = 16 * 1024;

/// One directed link: its listening address and its mode.
struct Link {
    listen_addr: String,
    mode: watch::Sender<LinkMode>,
}

/// Every proxy of a test cluster, by directed link `(from, to)`.
pub struct ProxyNet {
    runtime: Option<tokio::runtime::Runtime>,
    links: Mutex<BTreeMap<(u64, u64), Link>>,
}

impl Default for ProxyNet {
    fn default() -> Self {
        ProxyNet::new()
    }
}

impl ProxyNet {
    /// A proxy network with no links yet, on its own small runtime.
    pub fn new() -> ProxyNet {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chaos-proxy")
            .enable_all()
            .build()
            .expect("a runtime for the proxies");
        ProxyNet { runtime: Some(runtime), links: Mutex::new(BTreeMap::new()) }
    }

    /// Makes the proxy of link `from -> to`, forwarding to `target` (node `to`'s real peer
    /// address); returns the address node `from` must dial.
    pub fn add_link(&self, from: u64, to: u64, target: String) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let listen_addr = listener.local_addr().expect("the proxy's address").to_string();
        let (mode, watcher) = watch::channel(LinkMode::Pass);
        let runtime = self.runtime.as_ref().expect("the proxy runtime");
        runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else { return };
            accept_loop(listener, target, watcher).await;
        });
        let link = Link { listen_addr: listen_addr.clone(), mode };
        self.links.lock().unwrap_or_else(PoisonError::into_inner).insert((from, to), link);
        listen_addr
    }

    /// The address node `from` dials to reach node `to`, if that link exists.
    pub fn route(&self, from: u64, to: u64) -> Option<String> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links.get(&(from, to)).map(|l| l.listen_addr.clone())
    }

    /// Puts link `from -> to` in `mode` (no effect if there is no such link).
    pub fn set(&self, from: u64, to: u64, mode: LinkMode) {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = links.get(&(from, to)) {
            link.mode.send_replace(mode);
        }
    }

    /// Every link back to [`LinkMode::Pass`].
    pub fn heal_all(&self) {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        for link in links.values() {
            link.mode.send_replace(LinkMode::Pass);
        }
    }

    /// The links not in [`LinkMode::Pass`].
    pub fn faulty_links(&self) -> Vec<((u64, u64), LinkMode)> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .iter()
            .map(|(&key, link)| (key, *link.mode.borrow()))
            .filter(|(_, mode)| *mode != LinkMode::Pass)
            .collect()
    }
}

impl Drop for ProxyNet {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: String, mode: watch::Receiver<LinkMode>) {
    let target = Arc::new(target);
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *mode.borrow() == LinkMode::Drop {
            drop(inbound);
            continue;
        }
        let (target, mode) = (target.clone(), mode.clone());
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target.as_str()).await else { return };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            // Either direction ending (or the link dropping) ends the connection.
            tokio::select! {
                _ = pump(in_read, out_write, mode.clone()) => {}
                _ = pump(out_read, in_write, mode.clone()) => {}
                _ = dropped(mode) => {}
            }
        });
    }
}

/// Resolves when the link is set to [`LinkMode::Drop`].
async fn dropped(mut mode: watch::Receiver<LinkMode>) {
    while *mode.borrow_and_update() != LinkMode::Drop {
        if mode.changed().await.is_err() {
            return;
        }
    }
}

/// Copies one direction as the link's mode says, until either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<LinkMode>,
) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = *mode.borrow();
        match now {
            LinkMode::Pass => {}
            LinkMode::Drop => return,
            LinkMode::BlackHole => continue,
            LinkMode::Delay(by) => tokio::time::sleep(by).await,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
