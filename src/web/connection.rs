//! One client connection: GETs without a body are answered here, everything else by hyper.
//!
//! An SSE stream is a GET that stays open for hours, and an instance holds tens of thousands.
//! Served by hyper, each would keep hyper's connection state for its whole life: an 8 KB read
//! buffer and an 8 KB buffer for response heads, which hyper does not let an application shrink
//! (14.6 KB of RSS per idle stream, BENCHMARKS.md). A GET without a body is the simple part of
//! HTTP/1.1: a head in, a head and a body out. So this loop reads request heads itself (with
//! httparse, hyper's own parser), asks the router, and writes the response straight to the
//! socket; between writes a stream holds only its socket and its response body. Whatever a
//! streamed body has ready is written with one system call, so messages queued while a stream
//! waited for a CPU leave together.
//!
//! Anything else (a request with a body, `HEAD`, HTTP/1.0, `Expect`, `Upgrade`, a malformed or
//! very large head) hands the connection, with the bytes already read, to hyper for the rest of
//! its life: hyper stays the implementation of the hard parts of HTTP, and the one that answers
//! a head over `HERALD_MAX_HEADER_BYTES` with 431.
//!
//! Both paths keep the same limits: a head must arrive within the header timeout (408 if part
//! of one did), a kept-alive connection waits at most the idle timeout for its next request,
//! and a client that takes nothing of a response for the send timeout is cut off
//! (`wire.rs`). At shutdown idle connections close at once, and any still open at the end of
//! the grace are closed then.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, header};
use axum::middleware::AddExtension;
use axum::{Extension, Router};
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower::Layer as _;

use super::client::Peer;
use super::respond::{Framing, head, respond};
use super::serve::Slot;
use super::sse;
use super::tls::Tls;
use super::wire::{self, Stop};
use crate::config::ConnectionLimits;

/// Request heads larger than this (or than the configured limit, if lower) go to hyper, which
/// serves them up to the configured limit and answers 431 past it.
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed here at most (on the stack); a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// Read this much at a time; the buffer is given back as soon as a head is parsed, so an idle
/// stream holds none.
const READ_SIZE: usize = 2048;

pub(super) type Service = TowerToHyperService<AddExtension<Router, Peer>>;

/// What every connection shares: the app, the limits it serves under, and HTTPS if configured.
pub struct Shared {
    pub router: Router,
    pub limits: ConnectionLimits,
    pub tls: Option<Tls>,
}

/// The app as one connection serves it: every request, on any path, says who the
/// connection's peer is (`web::client`).
pub(super) fn service(shared: &Shared, peer: Peer) -> Service {
    TowerToHyperService::new(Extension(peer).layer(shared.router.clone()))
}

/// Serves one connection until the client closes it, a limit closes it, or shutdown does; a
/// tab's stream is handed, with `slot`, to a task of its own.
pub(super) async fn serve(mut tcp: TcpStream, shared: Arc<Shared>, mut stop: Stop, slot: Slot) {
    // Gone already (a client that connected and reset at once).
    let Ok(addr) = tcp.peer_addr() else { return };
    let service = service(&shared, Peer { addr, tls: false });
    let limits = &shared.limits;
    let mut read = Vec::new();
    let mut first = true;
    loop {
        let (request, close) = match next_request(&tcp, &mut read, limits, &mut stop, first).await {
            // Out of its box here, so the box is freed now and not when an open stream ends.
            Next::Native { request, close } => (*request, close),
            Next::Hyper => {
                return Box::pin(hyper_for_the_rest(tcp, read, service, limits, stop)).await;
            }
            Next::TimedOut => return request_timeout(&mut tcp).await,
            Next::Closed => return,
        };
        first = false;
        // Boxed, like `respond` below: a future awaited inline makes the connection's task as
        // large as the largest, for as long as a kept-alive connection waits.
        let Ok(response) = Box::pin(service.call(request)).await;
        if let Some(live) = response
            .extensions()
            .get::<sse::Takeover>()
            .and_then(sse::Takeover::take)
        {
            // A tab's stream owns its connection from here on; the response's headers and
            // unused body go now rather than live as long as the stream.
            let (parts, body) = response.into_parts();
            drop(body);
            let head = head(&parts, Framing::Close, true);
            drop(parts);
            // The stream gets a task sized for it alone (about 1 KB): this one's size is set by
            // the request loop's largest state, and an open stream would keep it for its whole
            // life (2.3 KB more per idle tab, BENCHMARKS.md). The router, the read buffer and
            // this task go now (the client has nothing more to send).
            tokio::spawn(sse::serve(
                tcp,
                head,
                Box::new(live),
                limits.send_timeout,
                stop,
                slot,
            ));
            return;
        }
        let close = close || stop.borrow().is_some();
        let sent = Box::pin(respond(
            &tcp,
            &mut read,
            response,
            close,
            limits.send_timeout,
            &mut stop,
        ))
        .await;
        if sent.is_err() || close {
            let _ = tcp.shutdown().await;
            return;
        }
    }
}

enum Next {
    Native {
        request: Box<Request<Body>>,
        close: bool,
    },
    Hyper,
    /// Part of a head arrived, the rest not within the header timeout.
    TimedOut,
    Closed,
}

/// Reads until a whole request head is in `read`, and takes it out.
///
/// A head must arrive within the header timeout: on a new connection from its start, on a
/// kept-alive one from the head's first byte, before which the idle timeout runs.
async fn next_request(
    tcp: &TcpStream,
    read: &mut Vec<u8>,
    limits: &ConnectionLimits,
    stop: &mut Stop,
    first: bool,
) -> Next {
    let mut in_head = first || !read.is_empty();
    let wait = match in_head {
        true => limits.header_timeout,
        false => limits.idle_timeout,
    };
    let mut deadline = Instant::now() + wait;
    loop {
        if stop.borrow().is_some() && read.is_empty() {
            return Next::Closed;
        }
        if !read.is_empty() {
            match parse(read, limits.max_header_bytes) {
                Parsed::Native {
                    request,
                    len,
                    close,
                } => {
                    // The rest gets its own allocation (none when empty) and the head's goes.
                    *read = read.split_off(len);
                    return Next::Native { request, close };
                }
                Parsed::Partial if read.len() < MAX_HEAD.min(limits.max_header_bytes) => {}
                Parsed::Partial | Parsed::Other => return Next::Hyper,
            }
            if !in_head {
                in_head = true;
                deadline = Instant::now() + limits.header_timeout;
            }
        }
        tokio::select! {
            ready = tcp.readable() => if ready.is_err() {
                return Next::Closed;
            },
            () = wire::stopping(stop) => return Next::Closed,
            () = tokio::time::sleep_until(deadline) => {
                return if read.is_empty() { Next::Closed } else { Next::TimedOut };
            }
        }
        if read_ready(tcp, read).is_err() {
            return Next::Closed;
        }
    }
}

/// The answer to a head that did not arrive in time.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\
Content-Length: 42\r\n\r\nThe request head did not arrive in time.\r\n";

/// Answers a head that did not arrive in time with 408, and closes.
async fn request_timeout(tcp: &mut TcpStream) {
    // Best effort, and never a wait: the client has shown it is slow.
    let _ = tcp.try_write(REQUEST_TIMEOUT);
    let _ = tcp.shutdown().await;
}

/// Appends what a readable socket holds to `read`; `Err` when the client closed it or it failed.
pub(super) fn read_ready(tcp: &TcpStream, read: &mut Vec<u8>) -> io::Result<()> {
    read.reserve(READ_SIZE);
    match tcp.try_read_buf(read) {
        Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

enum Parsed {
    Native {
        request: Box<Request<Body>>,
        len: usize,
        close: bool,
    },
    Partial,
    Other,
}

/// A complete HTTP/1.1 GET without a body, with a head of at most `max_head` bytes, becomes a
/// request for the router; anything else is hyper's (which answers 431 past `max_head`).
fn parse(bytes: &[u8], max_head: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => len,
        Ok(httparse::Status::Complete(_)) => return Parsed::Other,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if head.method != Some("GET") || head.version != Some(1) {
        return Parsed::Other;
    }
    let Some(Ok(uri)) = head.path.map(Uri::try_from) else {
        return Parsed::Other;
    };
    let mut map = HeaderMap::with_capacity(head.headers.len());
    let mut close = false;
    for h in head.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        match name {
            header::CONTENT_LENGTH if h.value != b"0" => return Parsed::Other,
            // Repeated, it is the same "0": kept once, as hyper does.
            header::CONTENT_LENGTH if map.contains_key(header::CONTENT_LENGTH) => continue,
            header::TRANSFER_ENCODING | header::EXPECT | header::UPGRADE => return Parsed::Other,
            header::CONNECTION => close |= has_token(h.value, "close"),
            _ => {}
        }
        map.append(name, value);
    }
    // `Request::new` is a GET over HTTP/1.1.
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = uri;
    *request.headers_mut() = map;
    Parsed::Native {
        request: Box::new(request),
        len,
        close,
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Hands the connection to hyper, replaying what was read of it, and serves it until it
/// closes. Hyper gets the same limits: the header timeout (which on a kept-alive connection runs
/// from the end of the last response, so it is also the idle limit there), the largest head,
/// and the send timeout through the socket ([`Replay`]). On `stop`, hyper finishes the response
/// in flight and closes, or is closed at the shutdown deadline.
async fn hyper_for_the_rest(
    tcp: TcpStream,
    read: Vec<u8>,
    service: Service,
    limits: &ConnectionLimits,
    mut stop: Stop,
) {
    let mut io = TokioIo::new(Replay::new(tcp, read, limits.send_timeout));
    let ended = {
        let conn = hyper_builder(limits).serve_connection(&mut io, service);
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => Some(result),
            () = wire::stopping(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    result = conn.as_mut() => Some(result),
                    () = wire::deadline(&mut stop) => None,
                }
            }
        }
    };
    match ended {
        // Hyper closes silently when a head is late; part of one arrived, so answer it.
        Some(Err(e)) if e.is_timeout() && io.inner().read_since_write => {
            request_timeout(&mut io.into_inner().tcp).await;
        }
        Some(Err(e)) => tracing::trace!(error = %e, "connection ended with an error"),
        _ => {}
    }
}

/// Hyper as connections handed over get it: with Herald's header timeout and largest head.
pub(super) fn hyper_builder(limits: &ConnectionLimits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF));
    builder
}

/// The least `max_buf_size` hyper accepts.
const HYPER_MIN_BUF: usize = 8192;

/// The socket as hyper sees it: its first reads return bytes that were already read from it,
/// and a write the client takes nothing of for the send timeout fails.
pub(super) struct Replay {
    read: Vec<u8>,
    at: usize,
    tcp: TcpStream,
    send_timeout: Duration,
    /// Running while writes wait for the client (made only then).
    stalled: Option<Pin<Box<Sleep>>>,
    /// Whether bytes came in since the last write: a head that times out then was begun.
    read_since_write: bool,
}

impl Replay {
    /// `tcp`, whose first reads give `read` back.
    pub(super) fn new(tcp: TcpStream, read: Vec<u8>, send_timeout: Duration) -> Replay {
        Replay {
            read,
            at: 0,
            tcp,
            send_timeout,
            stalled: None,
            read_since_write: false,
        }
    }

    /// After a write: pending starts (or continues) the send timeout, progress ends it.
    fn timed(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Pending => {
                let send_timeout = self.send_timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(send_timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(wire::send_timed_out())),
                    Poll::Pending => Poll::Pending,
                }
            }
            done => {
                self.stalled = None;
                if matches!(done, Poll::Ready(Ok(n)) if n > 0) {
                    self.read_since_write = false;
                }
                done
            }
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.read.len() {
            let n = buf.remaining().min(self.read.len() - self.at);
            buf.put_slice(&self.read[self.at..self.at + n]);
            self.at += n;
            if self.at == self.read.len() {
                self.read = Vec::new();
                self.at = 0;
            }
            self.read_since_write = true;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read_since_write = true;
        }
        read
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.timed(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.timed(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(super) mod tests;
