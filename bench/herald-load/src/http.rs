//! A deliberately small HTTP/1.1 client over raw tokio sockets: enough to load a page, keep a
//! connection alive, and follow a chunked SSE body. An idle stream costs one socket and one
//! read buffer, so one process can hold 19,000 of them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Read buffer per connection; an SSE message of Herald's is well under this.
const READ_BUF: usize = 4096;
/// A response head larger than this is not one of ours.
const MAX_HEAD: usize = 64 * 1024;

/// Connects to `server` from `source` (one of 127.0.0.x), so that many streams do not run out of
/// ephemeral ports on a single source address.
pub async fn connect(server: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
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
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(READ_BUF),
            start: 0,
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
        self.stream.read_buf(&mut self.buf).await
    }

    pub async fn read_head(&mut self) -> io::Result<Head> {
        loop {
            if let Some(end) = find(&self.buf[self.start..], b"\r\n\r\n") {
                let text = std::str::from_utf8(&self.buf[self.start..self.start + end])
                    .map_err(|_| bad("response head is not UTF-8"))?;
                let head = parse_head(text)?;
                self.start += end + 4;
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

/// Decoder for `Transfer-Encoding: chunked`, fed whatever bytes arrive.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, PartialEq)]
enum ChunkState {
    /// Reading the hex size line (the size so far).
    Size(u64),
    /// Skipping a chunk extension up to the end of the size line.
    SizeExtension(u64),
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: `true` while the current trailer line is still empty.
    Trailer(bool),
    Done,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState::Size(0)
    }
}

impl Chunked {
    /// Decodes as much of `input` as it can; returns the bytes used and whether the body ended.
    pub fn feed(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> io::Result<(usize, bool)> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            let b = input[i];
            self.state = match self.state {
                ChunkState::Size(size) => match b {
                    b'\n' => size_done(size),
                    b'\r' => ChunkState::Size(size),
                    b';' => ChunkState::SizeExtension(size),
                    _ => {
                        let digit = (b as char)
                            .to_digit(16)
                            .ok_or_else(|| bad("bad chunk size"))?;
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit.into()))
                            .ok_or_else(|| bad("chunk size overflows"))?;
                        ChunkState::Size(size)
                    }
                },
                ChunkState::SizeExtension(size) if b == b'\n' => size_done(size),
                ChunkState::SizeExtension(size) => ChunkState::SizeExtension(size),
                ChunkState::Data(left) => {
                    let n = (input.len() - i).min(left as usize);
                    out(&input[i..i + n]);
                    i += n;
                    self.state = if left == n as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                    continue;
                }
                ChunkState::DataEnd if b == b'\n' => ChunkState::Size(0),
                ChunkState::DataEnd => ChunkState::DataEnd,
                ChunkState::Trailer(empty) => match b {
                    b'\n' if empty => ChunkState::Done,
                    b'\n' => ChunkState::Trailer(true),
                    b'\r' => ChunkState::Trailer(empty),
                    _ => ChunkState::Trailer(false),
                },
                ChunkState::Done => ChunkState::Done,
            };
            i += 1;
        }
        Ok((i, self.state == ChunkState::Done))
    }
}

fn size_done(size: u64) -> ChunkState {
    if size == 0 {
        ChunkState::Trailer(true)
    } else {
        ChunkState::Data(size)
    }
}

fn parse_head(text: &str) -> io::Result<Head> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x response"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Head { status, headers })
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

    fn decode(pieces: &[&[u8]]) -> (Vec<u8>, bool, usize) {
        let mut chunked = Chunked::default();
        let mut out = Vec::new();
        let mut done = false;
        let mut used = 0;
        for piece in pieces {
            let (n, d) = chunked
                .feed(piece, &mut |b| out.extend_from_slice(b))
                .unwrap();
            used = n;
            done = d;
        }
        (out, done, used)
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nNEXT";
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            let (out, done, _) = decode(&[a, b]);
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(done || split > body.len() - 4, "split at {split}");
        }
        let (_, done, used) = decode(&[body]);
        assert!(done);
        assert_eq!(&body[used..], b"NEXT", "stops at the end of the body");
    }

    #[test]
    fn an_open_stream_is_not_done() {
        let (out, done, _) = decode(&[b"1a\r\ndata: abcdefghijklmnopqr\n\n\r\n"]);
        assert_eq!(out, b"data: abcdefghijklmnopqr\n\n");
        assert!(!done);
    }

    #[test]
    fn rejects_garbage_sizes() {
        let mut chunked = Chunked::default();
        assert!(chunked.feed(b"zz\r\n", &mut |_| {}).is_err());
    }

    #[test]
    fn parses_status_and_headers() {
        let head =
            parse_head("HTTP/1.1 200 OK\r\nSet-Cookie: a=b; Path=/\r\nTransfer-Encoding: chunked")
                .unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("set-cookie"), Some("a=b; Path=/"));
        assert!(matches!(head.framing(), Framing::Chunked(_)));
        assert!(head.keep_alive());
        assert!(parse_head("SSH-2.0").is_err());
    }
}
