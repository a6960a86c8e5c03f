//! Herald's HTTP/1.1 response writer, for the connections it serves itself.
//!
//! The writer owns the framing, as hyper does: a handler's `Content-Length`,
//! `Transfer-Encoding`, `Connection` and `Keep-Alive` headers are dropped, the body's own size
//! decides between a length and chunks, exactly the announced length is written (a body that
//! yields more or less closes the connection, so the client sees an incomplete response and
//! never reads the excess as a response of its own), and an informational (1xx) status is
//! never sent as the final answer. So no handler can smuggle a response, by mistake or not.

use std::io::{self, Write as _};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::response::Parts;
use axum::http::{HeaderName, Response, StatusCode, header};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::net::TcpStream;

use super::connection::{MAX_HEAD, read_ready};
use super::wire::{self, Stop};
use crate::hub::stats::Writer;

/// Ready frames of a streamed body are gathered up to this size before one write.
pub(super) const MAX_WRITE: usize = 64 * 1024;

/// How a body is delimited on the wire.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// The body ends when the connection closes: a stream that owns its connection.
    Close,
}

/// Headers that only the writer may set: it frames the body and manages the connection.
fn is_framing(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::CONNECTION
        || name.as_str() == "keep-alive"
}

/// Writes `response`; `Err` when the client went away or stalled, or the body failed or did
/// not match its length part-way (the connection must then close, so the client sees an
/// incomplete response and not a short one). Bytes the client sends meanwhile are kept in
/// `read`: they are its next request.
pub(super) async fn respond(
    tcp: &TcpStream,
    read: &mut Vec<u8>,
    response: Response<Body>,
    close: bool,
    send_timeout: Duration,
    stop: &mut Stop,
) -> io::Result<()> {
    let (mut parts, mut body) = response.into_parts();
    if parts.status.is_informational() {
        tracing::error!(status = %parts.status, "a handler's final answer was informational");
        (parts, body) = Response::new(Body::empty()).into_parts();
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
    }
    let framing = match parts.status {
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED => Framing::None,
        _ => match body.size_hint().exact() {
            Some(len) => Framing::Length(len),
            None => Framing::Chunked,
        },
    };
    let mut out = head(&parts, framing, close);
    drop(parts);
    let mut left = match framing {
        Framing::None => {
            return wire::write_all(tcp, &out, send_timeout, stop, Writer::Response).await;
        }
        Framing::Length(len) => len,
        _ => u64::MAX,
    };
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    wire::write_all(tcp, &out, send_timeout, stop, Writer::Response).await?;
                }
                // An idle stream keeps no write buffer.
                out = Vec::new();
                next_frame(tcp, read, &mut body, stop).await?
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        match framing {
            Framing::Chunked => {
                write!(out, "{:x}\r\n", data.len())?;
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            _ => {
                left = left
                    .checked_sub(data.len() as u64)
                    .ok_or_else(|| io::Error::other("the body is longer than its length"))?;
                out.extend_from_slice(&data);
            }
        }
        if out.len() >= MAX_WRITE {
            wire::write_all(tcp, &out, send_timeout, stop, Writer::Response).await?;
            out.clear();
        }
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(_) if left > 0 => {
            wire::write_all(tcp, &out, send_timeout, stop, Writer::Response).await?;
            return Err(io::Error::other("the body is shorter than its length"));
        }
        _ => {}
    }
    wire::write_all(tcp, &out, send_timeout, stop, Writer::Response).await
}

type Frame = Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>;

/// Waits for the body's next frame while noticing a client that closes the connection (which
/// ends the response, and with it the stream behind the body). Bytes the client sends meanwhile
/// are its next request; past [`MAX_HEAD`] they are left unread until the response ends. At the
/// shutdown deadline the response ends unfinished.
async fn next_frame(
    tcp: &TcpStream,
    read: &mut Vec<u8>,
    body: &mut Body,
    stop: &mut Stop,
) -> io::Result<Frame> {
    loop {
        tokio::select! {
            biased;
            frame = body.frame() => return Ok(frame),
            ready = tcp.readable(), if read.len() < MAX_HEAD => {
                ready?;
                read_ready(tcp, read)?;
            }
            () = wire::deadline(stop) => return Err(wire::shutdown_deadline()),
        }
    }
}

/// The status line and the handler's headers (less the framing ones), with `date`, the
/// framing headers and `connection: close` added.
pub(super) fn head(parts: &Parts, framing: Framing, close: bool) -> Vec<u8> {
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
    for (name, value) in parts.headers.iter().filter(|(name, _)| !is_framing(name)) {
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
        Framing::Length(len) => put_header(&mut out, "content-length", len.to_string().as_bytes()),
        Framing::Chunked => put_header(&mut out, "transfer-encoding", b"chunked"),
        Framing::None | Framing::Close => {}
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

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use hyper::body::{Frame as BodyFrame, SizeHint};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::sync::watch;

    use super::*;

    /// A body that says it is `claimed` bytes long and yields `chunks`.
    struct Claimed {
        claimed: u64,
        chunks: Vec<&'static str>,
    }

    impl hyper::body::Body for Claimed {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<BodyFrame<Bytes>, Self::Error>>> {
            if self.chunks.is_empty() {
                return Poll::Ready(None);
            }
            let chunk = self.chunks.remove(0);
            Poll::Ready(Some(Ok(BodyFrame::data(Bytes::from_static(
                chunk.as_bytes(),
            )))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.claimed)
        }
    }

    /// What the writer puts on the wire for `response`, and whether it kept the connection.
    async fn written(response: Response<Body>) -> (String, io::Result<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_tx, mut stop) = watch::channel(None);
        let result = respond(
            &server,
            &mut Vec::new(),
            response,
            false,
            Duration::from_secs(5),
            &mut stop,
        )
        .await;
        drop(server);
        let mut wire = String::new();
        client.read_to_string(&mut wire).await.unwrap();
        (wire, result)
    }

    fn claimed(claimed: u64, chunks: Vec<&'static str>) -> Response<Body> {
        Response::new(Body::new(Claimed { claimed, chunks }))
    }

    #[tokio::test]
    async fn a_handlers_framing_headers_are_replaced_by_the_writers_own() {
        let mut response = Response::new(Body::from("hello"));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, "999".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::CONNECTION, "close".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-kept", "yes".parse().unwrap());
        let (wire, result) = written(response).await;
        assert!(result.is_ok(), "{result:?}");
        let (head, body) = wire.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert_eq!(body, "hello");
        assert!(head.contains("\r\ncontent-length: 5"), "{head}");
        assert!(head.contains("\r\nx-kept: yes"), "{head}");
        for absent in ["999", "transfer-encoding", "connection", "keep-alive"] {
            assert!(!head.contains(absent), "{absent} in {head}");
        }
    }

    #[tokio::test]
    async fn a_body_shorter_or_longer_than_its_length_closes_the_connection() {
        let (wire, result) = written(claimed(10, vec!["short"])).await;
        assert!(result.is_err(), "a short body is an error");
        assert!(wire.contains("content-length: 10\r\n"), "{wire}");
        assert!(wire.ends_with("\r\n\r\nshort"), "{wire}");

        let (wire, result) = written(claimed(3, vec!["ab", "cdef"])).await;
        assert!(result.is_err(), "a long body is an error");
        assert!(!wire.contains("cdef"), "nothing past the length: {wire}");
    }

    #[tokio::test]
    async fn an_informational_status_is_never_the_final_answer() {
        let mut response = Response::new(Body::from("early"));
        *response.status_mut() = StatusCode::EARLY_HINTS;
        let (wire, result) = written(response).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            wire.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{wire}"
        );
        assert!(wire.contains("content-length: 0\r\n"), "{wire}");
        assert!(!wire.contains("early"), "{wire}");
    }
}
