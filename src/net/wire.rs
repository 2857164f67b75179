//! The TCP connection under every gRPC channel this crate dials (the client library's, and a
//! node's to its peers): writes made within one turn of the scheduler leave as one segment.
//!
//! Why: hyper's HTTP/2 client writes a unary request in two pieces. The request's HEADERS go
//! out when the connection task first runs; the body waits until that task has opened the
//! stream and granted it flow-control capacity, then wakes the body's own task, which hands
//! the DATA over and wakes the connection task again: a second write. An AppendEntries takes
//! three. On loopback every write runs the receiver's TCP input on the sender's core and may
//! wake the receiver once per piece, so a request in two writes costs both machines twice
//! (docs/BENCHMARKS.md, "Seventh stop: one write per message").
//!
//! [`Coalesced`] buffers what is written and, when asked to flush, first lets every other
//! task that is ready run (`tokio::task::yield_now`, which tokio wakes only after the tasks
//! already queued), so that the body's task adds its DATA to the same buffer; then writes the
//! buffer in one call. Netty's flush consolidation does the same on its event loop. The wait is
//! one turn of the scheduler, not a timer: an idle process writes at once.
//!
//! TLS (tonic's, on top of this) writes its records here too, so they coalesce the same way;
//! its handshake must come back to a flush that was pending, which tokio-rustls does from 0.26.6
//! (hence the direct requirement in Cargo.toml). Of the endpoint's settings, the connect
//! timeout (over resolution, TCP and TLS, the addresses a name resolves to tried in turn) and
//! TLS apply; `tcp_keepalive` and `local_address` would not, and the crate sets neither.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// Past this many buffered bytes a write drains the buffer first, and a write this large goes
/// straight through: coalescing is for small messages.
const MAX_BUFFERED: usize = 64 * 1024;

/// A flush waits its turn only while less than this is buffered. h2 hands over a large body
/// one DATA frame (16 KiB by default) at a time and flushes after each: a full frame needs no
/// company, and waiting a turn per frame would slow a snapshot chunk down.
const HOLD_BELOW: usize = 16 * 1024;

/// A lazily connected channel to `endpoint` over a [`Coalesced`] TCP connection with
/// `TCP_NODELAY`. The endpoint's connect timeout and TLS settings apply as with
/// `Endpoint::connect_lazy`.
pub fn connect_lazy(endpoint: &Endpoint) -> Channel {
    endpoint.connect_with_connector_lazy(tower::service_fn(connect))
}

/// Dials the URI's host and port (port 80 or 443 by scheme when it has none).
async fn connect(uri: http::Uri) -> io::Result<TokioIo<Coalesced<TcpStream>>> {
    let host = uri.host().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("no host in address {uri}"))
    })?;
    // A bracketed IPv6 literal is given to the resolver without its brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(Coalesced::new(stream)))
}

/// Reads pass through; writes are buffered until a flush, which waits one scheduler turn and
/// then writes the buffer whole (see the module's comment).
pub struct Coalesced<S> {
    io: S,
    buf: Vec<u8>,
    /// How much of `buf` has been written (a write may take part of it).
    written: usize,
    /// The turn a flush is waiting out, once it has started to.
    turn: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The buffer is being written out (its turn is over): a flush goes on at once.
    draining: bool,
}

impl<S> Coalesced<S> {
    pub fn new(io: S) -> Coalesced<S> {
        Coalesced { io, buf: Vec::new(), written: 0, turn: None, draining: false }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        self.draining = false;
        self.turn = None;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: drains when the buffer would pass [`MAX_BUFFERED`].
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if !self.buf.is_empty() && self.buf.len() + len > MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(me.poll_room(cx, len))?;
        if me.buf.is_empty() && len >= MAX_BUFFERED {
            return Pin::new(&mut me.io).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            me.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.written < me.buf.len() {
            // One turn per buffer; a drain the socket held up goes on without another.
            if !me.draining && me.buf.len() < HOLD_BELOW {
                let turn = me.turn.get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
                ready!(turn.as_mut().poll(cx));
            }
            me.turn = None;
            me.draining = true;
            ready!(me.poll_drain(cx))?;
        }
        Pin::new(&mut me.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.turn = None;
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Records each write it is given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            d: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().expect("recorder").push(d.to_vec());
            Poll::Ready(Ok(d.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What hyper's HTTP/2 client does with a request: HEADERS written and flushed, then,
    /// while that flush waits its turn, the DATA written and flushed. One write leaves.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_made_while_a_flush_waits_its_turn_leaves_with_it() {
        let recorder = Recorder::default();
        let mut io = Coalesced::new(recorder.clone());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut io = Pin::new(&mut io);
        assert!(matches!(io.as_mut().poll_write(&mut cx, b"HEADERS "), Poll::Ready(Ok(8))));
        assert!(io.as_mut().poll_flush(&mut cx).is_pending(), "the first flush waits a turn");
        assert!(recorder.0.lock().expect("recorder").is_empty());
        assert!(matches!(io.as_mut().poll_write(&mut cx, b"DATA"), Poll::Ready(Ok(4))));
        assert!(matches!(io.as_mut().poll_flush(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(*recorder.0.lock().expect("recorder"), vec![b"HEADERS DATA".to_vec()]);
        // Nothing buffered: a flush does not wait.
        assert!(matches!(io.as_mut().poll_flush(&mut cx), Poll::Ready(Ok(()))));
    }

    /// A large body's frames, flushed one by one by h2, do not wait a turn each.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_frame_is_written_without_waiting_a_turn() {
        let recorder = Recorder::default();
        let mut io = Coalesced::new(recorder.clone());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut io = Pin::new(&mut io);
        let frame = vec![1u8; HOLD_BELOW];
        for _ in 0..3 {
            assert!(matches!(io.as_mut().poll_write(&mut cx, &frame), Poll::Ready(Ok(_))));
            assert!(matches!(io.as_mut().poll_flush(&mut cx), Poll::Ready(Ok(()))));
        }
        assert_eq!(recorder.0.lock().expect("recorder").len(), 3);
    }

    /// A flush waits until the tasks already ready have run, and no longer.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_lets_the_ready_tasks_run_first() {
        let recorder = Recorder::default();
        let mut io = Coalesced::new(recorder.clone());
        io.write_all(b"x").await.expect("write");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        io.flush().await.expect("flush");
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst), "the ready task ran first");
        assert_eq!(*recorder.0.lock().expect("recorder"), vec![b"x".to_vec()]);
    }

    /// Over real TCP: small writes arrive whole and in order; a write larger than the buffer
    /// goes through after what was buffered before it.
    #[tokio::test]
    async fn everything_written_arrives_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let uri: http::Uri = format!("http://{addr}").parse().expect("uri");
        let mut io = connect(uri).await.expect("connect").into_inner();
        let mut server = accept.await.expect("join").expect("accept");
        let big = vec![7u8; MAX_BUFFERED * 3];
        let mut sent = b"first second ".to_vec();
        sent.extend_from_slice(&big);
        io.write_all(b"first ").await.expect("write");
        io.flush().await.expect("flush");
        io.write_all(b"second ").await.expect("write");
        io.write_all(&big).await.expect("write big");
        io.flush().await.expect("flush");
        let mut got = vec![0u8; sent.len()];
        tokio::time::timeout(std::time::Duration::from_secs(10), server.read_exact(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert!(got == sent, "the bytes arrive as written");
    }

    /// An address without a host is refused with a message naming it.
    #[tokio::test]
    async fn an_address_without_a_host_is_named() {
        let uri = http::Uri::from_static("/no/host");
        let err = connect(uri).await.err().expect("refused");
        assert!(err.to_string().contains("/no/host"), "{err}");
    }
}
