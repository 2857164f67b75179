//! A TCP proxy in front of one node's client port whose delay can be turned on mid-connection:
//! a request sent while it is on reaches the node only after the client's own deadline, so
//! the client retries it elsewhere while the first copy is still on its way.
//!
//! The cluster's harness proxies only peer links and takes its target when made; this one is
//! bound before the cluster starts (so that every node can advertise it) and is pointed at its
//! node afterwards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    target: Mutex<String>,
    delay: Mutex<Duration>,
    stop: AtomicBool,
    /// Bytes clients sent while a delay was on, forwarded to the node since.
    delayed_bytes: AtomicU64,
    /// Chunks clients sent while a delay was on, not forwarded yet.
    delayed_pending: AtomicU64,
}

pub struct DelayProxy {
    pub addr: String,
    shared: Arc<Shared>,
}

impl DelayProxy {
    /// Binds a loopback port; nothing is accepted until [`DelayProxy::forward_to`].
    pub fn bind() -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a proxy port");
        let addr = listener.local_addr().expect("its address").to_string();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::spawn(move || accept_loop(&listener, &accepting));
        DelayProxy { addr, shared }
    }

    pub fn forward_to(&self, target: &str) {
        *self.shared.target.lock().unwrap_or_else(PoisonError::into_inner) = target.into();
    }

    /// Every chunk, either way, waits this long before it is forwarded (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Bytes that reached the node from clients late (sent while a delay was on).
    pub fn delayed_bytes(&self) -> u64 {
        self.shared.delayed_bytes.load(Ordering::SeqCst)
    }

    /// Chunks sent while a delay was on that have not reached the node yet.
    pub fn delayed_pending(&self) -> u64 {
        self.shared.delayed_pending.load(Ordering::SeqCst)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for inbound in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(inbound) = inbound else { continue };
        let target = shared.target.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let Ok(outbound) = TcpStream::connect(&target) else { continue };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let (Ok(in2), Ok(out2)) = (inbound.try_clone(), outbound.try_clone()) else { continue };
        let (up, down) = (shared.clone(), shared.clone());
        std::thread::spawn(move || pump(inbound, outbound, &up, true));
        std::thread::spawn(move || pump(out2, in2, &down, false));
    }
}

/// Copies one direction: a reader stamps each chunk with when it is due (its arrival plus the
/// delay then in force), a writer forwards it then, so that chunks queued behind a delayed
/// one are not delayed again.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Arc<Shared>, to_node: bool) {
    let (send, chunks) = std::sync::mpsc::channel::<(Instant, bool, Vec<u8>)>();
    let reader = shared.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = *reader.delay.lock().unwrap_or_else(PoisonError::into_inner);
            let delayed = to_node && !delay.is_zero();
            if delayed {
                reader.delayed_pending.fetch_add(1, Ordering::SeqCst);
            }
            if send.send((Instant::now() + delay, delayed, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = from.shutdown(std::net::Shutdown::Both);
    });
    for (due, delayed, chunk) in chunks {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let written = to.write_all(&chunk);
        if delayed {
            shared.delayed_bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            shared.delayed_pending.fetch_sub(1, Ordering::SeqCst);
        }
        if written.is_err() || shared.stop.load(Ordering::SeqCst) {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
