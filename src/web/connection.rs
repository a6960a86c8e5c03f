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
//! its life: hyper stays the implementation of the hard parts of HTTP.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::response::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use axum::middleware::AddExtension;
use axum::{Extension, Router};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower_layer::Layer as _;

use super::client::Peer;
use super::sse;

/// Request heads larger than this go to hyper, which has the limits and the answers for them.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed here at most (on the stack); a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// Read this much at a time; the buffer is given back as soon as a head is parsed, so an idle
/// stream holds none.
const READ_SIZE: usize = 2048;
/// Ready frames of a streamed body are gathered up to this size before one write.
pub(super) const MAX_WRITE: usize = 64 * 1024;

type Service = TowerToHyperService<AddExtension<Router, Peer>>;

/// Serves one connection until the client closes it, or until `stop` once it is idle.
pub async fn serve(mut tcp: TcpStream, router: Router, mut stop: watch::Receiver<bool>) {
    // Gone already (a client that connected and reset at once).
    let Ok(addr) = tcp.peer_addr() else { return };
    // Every request, on either path, says who the connection's peer is (`web::client`).
    let peer = Peer { addr, tls: false };
    let service = TowerToHyperService::new(Extension(peer).layer(router));
    let mut read = Vec::new();
    loop {
        let (request, close) = match next_request(&mut tcp, &mut read, &mut stop).await {
            // Out of its box here, so the box is freed now and not when an open stream ends.
            Next::Native { request, close } => (*request, close),
            Next::Hyper => return Box::pin(hyper_for_the_rest(tcp, read, service, stop)).await,
            Next::Closed => return,
        };
        // Boxed, like `respond` below: a future awaited inline makes the connection's task as
        // large as the largest, and an open stream would keep that size for its whole life
        // (about 2.5 KB per stream instead of what `sse::serve` needs, heap profile).
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
            let head = head(&parts, Framing::Close, None, true);
            drop(parts);
            return sse::serve(tcp, head, live).await;
        }
        let close = close || *stop.borrow();
        if Box::pin(respond(&mut tcp, &mut read, response, close))
            .await
            .is_err()
            || close
        {
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
    Closed,
}

/// Reads until a whole request head is in `read`, and takes it out.
async fn next_request(
    tcp: &mut TcpStream,
    read: &mut Vec<u8>,
    stop: &mut watch::Receiver<bool>,
) -> Next {
    loop {
        if *stop.borrow() && read.is_empty() {
            return Next::Closed;
        }
        if !read.is_empty() {
            match parse(read) {
                Parsed::Native {
                    request,
                    len,
                    close,
                } => {
                    // The rest gets its own allocation (none when empty) and the head's goes.
                    *read = read.split_off(len);
                    return Next::Native { request, close };
                }
                Parsed::Partial if read.len() < MAX_HEAD => {}
                Parsed::Partial | Parsed::Other => return Next::Hyper,
            }
        }
        tokio::select! {
            ready = tcp.readable() => if ready.is_err() {
                return Next::Closed;
            },
            () = stopped(stop) => return Next::Closed,
        }
        if read_ready(tcp, read).is_err() {
            return Next::Closed;
        }
    }
}

/// Appends what a readable socket holds to `read`; `Err` when the client closed it or it failed.
fn read_ready(tcp: &TcpStream, read: &mut Vec<u8>) -> io::Result<()> {
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

/// A complete HTTP/1.1 GET without a body becomes a request for the router; anything else is
/// hyper's.
fn parse(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
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

/// How a body is delimited on the wire.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Framing {
    None,
    Length,
    Chunked,
    /// The body ends when the connection closes: a stream that owns its connection.
    Close,
}

/// Writes `response`; `Err` when the client went away or the body failed part-way (the
/// connection must then close, so the client sees an incomplete response and not a short one).
async fn respond(
    tcp: &mut TcpStream,
    read: &mut Vec<u8>,
    response: Response<Body>,
    close: bool,
) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let framing = if status.is_informational() || status.as_u16() == 204 || status.as_u16() == 304 {
        Framing::None
    } else if parts.headers.contains_key(header::CONTENT_LENGTH)
        || body.size_hint().exact().is_some()
    {
        Framing::Length
    } else {
        Framing::Chunked
    };
    let mut out = head(&parts, framing, body.size_hint().exact(), close);
    if framing == Framing::None {
        return tcp.write_all(&out).await;
    }
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    tcp.write_all(&out).await?;
                }
                // An idle stream keeps no write buffer.
                out = Vec::new();
                next_frame(tcp, read, &mut body).await?
            }
        };
        match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                if framing == Framing::Chunked {
                    write!(out, "{:x}\r\n", data.len())?;
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(&data);
                }
                if out.len() >= MAX_WRITE {
                    tcp.write_all(&out).await?;
                    out.clear();
                }
            }
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    tcp.write_all(&out).await
}

/// The status line and headers, with `date`, the framing headers and `connection: close` added.
pub(super) fn head(parts: &Parts, framing: Framing, len: Option<u64>, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let status = parts.status;
    for piece in [
        "HTTP/1.1 ",
        status.as_str(),
        " ",
        status.canonical_reason().unwrap_or(""),
        "\r\n",
    ] {
        out.extend_from_slice(piece.as_bytes());
    }
    for (name, value) in &parts.headers {
        put_header(&mut out, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        put_header(
            &mut out,
            "date",
            httpdate::fmt_http_date(SystemTime::now()).as_bytes(),
        );
    }
    match framing {
        Framing::Length if !parts.headers.contains_key(header::CONTENT_LENGTH) => {
            put_header(
                &mut out,
                "content-length",
                len.unwrap_or(0).to_string().as_bytes(),
            );
        }
        Framing::Chunked => put_header(&mut out, "transfer-encoding", b"chunked"),
        _ => {}
    }
    if close || framing == Framing::Close {
        put_header(&mut out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

type Frame = Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>;

/// Waits for the body's next frame while noticing a client that closes the connection (which
/// ends the response, and with it the stream behind the body). Bytes the client sends meanwhile
/// are its next request; past [`MAX_HEAD`] they are left unread until the response ends.
async fn next_frame(tcp: &mut TcpStream, read: &mut Vec<u8>, body: &mut Body) -> io::Result<Frame> {
    loop {
        tokio::select! {
            biased;
            frame = body.frame() => return Ok(frame),
            ready = tcp.readable(), if read.len() < MAX_HEAD => {
                ready?;
                read_ready(tcp, read)?;
            }
        }
    }
}

/// Hands the connection to hyper, replaying what was read of it, and serves it until it
/// closes; on `stop`, hyper finishes the response in flight and closes.
async fn hyper_for_the_rest(
    tcp: TcpStream,
    read: Vec<u8>,
    service: Service,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Replay { read, at: 0, tcp });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

/// Resolves once the server stops (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A socket whose first reads return bytes that were already read from it.
struct Replay {
    read: Vec<u8>,
    at: usize,
    tcp: TcpStream,
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
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
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
