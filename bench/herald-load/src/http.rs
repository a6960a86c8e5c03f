//! A deliberately small HTTP/1.1 client over raw tokio sockets: enough to load a page, keep a
//! connection alive, and follow a chunked SSE body. An idle stream costs one socket and one
//! read buffer, so one process can hold 19,000 of them. httparse reads the heads and chunk sizes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use httparse::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Read buffer per connection; an SSE message of Herald's is well under this.
const READ_BUF: usize = 4096;
/// A response head larger than this is not one of ours.
const MAX_HEAD: usize = 64 * 1024;
/// Nor is one with more headers than this (Herald's have about ten).
const MAX_HEADERS: usize = 32;

/// Connects to `server` from `source` (one of 127.0.0.x), so that many streams do not run out of
/// ephemeral ports on a single source address.
pub async fn connect(server: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    connect_with(server, source, None).await
}

/// [`connect`], with a receive buffer of `receive_buffer` bytes if given: a reader that stops
/// reading then stalls the server's writes after a few messages rather than megabytes.
pub async fn connect_with(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
    receive_buffer: Option<u32>,
) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    }
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The status line and headers of a response.
#[derive(Debug, Default)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn framing(&self) -> Framing {
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            Framing::Chunked(Chunked::default())
        } else if let Some(len) = self.header("content-length").and_then(|v| v.parse().ok()) {
            Framing::Length(len)
        } else if self.status == 204 || self.status == 304 {
            Framing::Length(0)
        } else {
            Framing::UntilClose
        }
    }

    /// Whether the connection may carry another request after this response.
    pub fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            && !matches!(self.framing(), Framing::UntilClose)
    }
}

/// One connection and the bytes read from it but not consumed yet.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    /// Reads from the socket so far (each one system call).
    pub reads: u64,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(READ_BUF),
            start: 0,
            reads: 0,
        }
    }

    pub async fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.stream.write_all(request).await
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_BUF / 4 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve(READ_BUF);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        self.reads += 1;
        Ok(n)
    }

    pub async fn read_head(&mut self) -> io::Result<Head> {
        loop {
            if let Some((head, len)) = parse_head(&self.buf[self.start..])? {
                self.start += len;
                return Ok(head);
            }
            if self.buf.len() - self.start > MAX_HEAD {
                return Err(bad("response head too large"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads a body as `head` frames it, giving each decoded piece to `sink`, until it ends (or
    /// until `sink` returns `false`).
    pub async fn read_body(
        &mut self,
        head: &Head,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<()> {
        let mut framing = head.framing();
        loop {
            let available = &self.buf[self.start..];
            let (used, done, more) = match &mut framing {
                Framing::Length(left) => {
                    let n = available.len().min(*left as usize);
                    *left -= n as u64;
                    let more = n == 0 || sink(&available[..n]);
                    (n, *left == 0, more)
                }
                Framing::UntilClose => (available.len(), false, sink(available)),
                Framing::Chunked(chunked) => {
                    let mut more = true;
                    let (used, done) = chunked.feed(available, &mut |piece| {
                        more = more && sink(piece);
                    })?;
                    (used, done, more)
                }
            };
            self.start += used;
            if done || !more {
                return Ok(());
            }
            if self.fill().await? == 0 {
                return match framing {
                    Framing::UntilClose => Ok(()),
                    _ => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
        }
    }

    /// Reads a whole body into memory (pages and publish answers; never a stream).
    pub async fn read_full_body(&mut self, head: &Head, limit: usize) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        self.read_body(head, |piece| {
            body.extend_from_slice(piece);
            body.len() <= limit
        })
        .await?;
        if body.len() > limit {
            return Err(bad("response body too large"));
        }
        Ok(body)
    }
}

enum Framing {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// Decoder for `Transfer-Encoding: chunked`, fed whatever bytes arrive. A size line or trailer
/// cut short is left unused, to be fed again with the bytes that follow it.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, PartialEq)]
enum ChunkState {
    /// Reading the size line.
    #[default]
    Size,
    /// Inside a chunk's data: the bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailer,
    Done,
}

impl Chunked {
    /// Decodes as much of `input` as it can; returns the bytes used and whether the body ended.
    pub fn feed(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> io::Result<(usize, bool)> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let (n, next) = match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(rest) {
                    Ok(Status::Complete((n, 0))) => (n, ChunkState::Trailer),
                    Ok(Status::Complete((n, size))) => (n, ChunkState::Data(size)),
                    Ok(Status::Partial) => break,
                    Err(_) => return Err(bad("bad chunk size")),
                },
                ChunkState::Data(_) if rest.is_empty() => break,
                ChunkState::Data(left) => {
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&rest[..n]);
                    let left = left - n as u64;
                    let next = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    (n, next)
                }
                ChunkState::DataEnd => match rest.get(..2) {
                    Some(b"\r\n") => (2, ChunkState::Size),
                    Some(_) => return Err(bad("chunk data not followed by CRLF")),
                    None => break,
                },
                ChunkState::Trailer => {
                    let mut trailers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(rest, &mut trailers) {
                        Ok(Status::Complete((n, _))) => (n, ChunkState::Done),
                        Ok(Status::Partial) => break,
                        Err(_) => return Err(bad("bad chunked trailer")),
                    }
                }
                ChunkState::Done => break,
            };
            used += n;
            self.state = next;
        }
        Ok((used, self.state == ChunkState::Done))
    }
}

/// The head at the start of `bytes` and its length, or `None` while it is incomplete.
fn parse_head(bytes: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(&format!("bad response head: {e}"))),
    };
    let headers = response
        .headers
        .iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value).map_err(|_| bad("header is not UTF-8"))?;
            Ok((h.name.to_string(), value.trim().to_string()))
        })
        .collect::<io::Result<_>>()?;
    let head = Head {
        status: response.code.unwrap_or_default(),
        headers,
    };
    Ok(Some((head, len)))
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// A request with the headers every one of ours carries.
pub fn request(
    method: &str,
    target: &str,
    host: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` as `Conn` does, the bytes left unused in front of the next piece; returns
    /// the decoded body, whether it ended, and the bytes after it.
    fn decode(pieces: &[&[u8]]) -> (Vec<u8>, bool, Vec<u8>) {
        let mut chunked = Chunked::default();
        let mut out = Vec::new();
        let mut pending = Vec::new();
        let mut done = false;
        for piece in pieces {
            pending.extend_from_slice(piece);
            let (used, ended) = chunked
                .feed(&pending, &mut |b| out.extend_from_slice(b))
                .unwrap();
            pending.drain(..used);
            done = ended;
        }
        (out, done, pending)
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            let (out, done, rest) = decode(&[a, b]);
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(done, "split at {split}");
            assert_eq!(
                rest, b"NEXT",
                "split at {split}: stops at the end of the body"
            );
        }
    }

    #[test]
    fn an_open_stream_is_not_done() {
        let (out, done, rest) = decode(&[b"1a\r\ndata: abcdefghijklmnopqr\n\n\r\n1"]);
        assert_eq!(out, b"data: abcdefghijklmnopqr\n\n");
        assert!(!done);
        assert_eq!(rest, b"1", "a size line cut short waits for its end");
    }

    #[test]
    fn rejects_garbage_sizes() {
        let mut chunked = Chunked::default();
        assert!(chunked.feed(b"zz\r\n", &mut |_| {}).is_err());
        let mut chunked = Chunked::default();
        assert!(chunked.feed(b"2\r\nabXY", &mut |_| {}).is_err());
    }

    #[test]
    fn parses_status_and_headers() {
        let text =
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b; Path=/\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (head, len) = parse_head(text).unwrap().unwrap();
        assert_eq!(len, text.len());
        assert_eq!(head.status, 200);
        assert_eq!(head.header("set-cookie"), Some("a=b; Path=/"));
        assert!(matches!(head.framing(), Framing::Chunked(_)));
        assert!(head.keep_alive());
        assert!(parse_head(&text[..text.len() - 1]).unwrap().is_none());
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }
}
