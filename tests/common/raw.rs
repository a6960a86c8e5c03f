//! Raw HTTP/1.1 over TCP: requests written by hand and responses parsed by hand, so framing
//! mistakes (lengths, chunks, `connection: close`, bytes left over between requests) show up as
//! failures rather than being smoothed over by a client library.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{Client, Sse, TestApp, WAIT};

/// One raw connection and the bytes read from it but not yet consumed.
pub struct Conn {
    pub tcp: TcpStream,
    pub buf: Vec<u8>,
}

/// One response as it came off the wire.
#[derive(Debug)]
pub struct Resp {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The value of header `name` (case-insensitive); panics, showing the head, when absent.
    pub fn header(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Conn {
    pub async fn open(app: &TestApp) -> Conn {
        Conn {
            tcp: TcpStream::connect(app.addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// A client that takes little at a time: a 4 KB receive buffer, so the server's socket fills
    /// as soon as it stops reading.
    pub async fn open_narrow(app: &TestApp) -> Conn {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("receive buffer");
        Conn {
            tcp: socket.connect(app.addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// A tab whose page and stream are on one narrow connection, its stream open (the first
    /// message in); also returns the request for the tab's stream.
    pub async fn narrow_tab(app: &TestApp) -> (Conn, String) {
        let mut conn = Conn::open_narrow(app).await;
        let stream_request = conn.load_page().await;
        conn.send(stream_request.as_bytes()).await;
        conn.wait_for("retry:").await;
        (conn, stream_request)
    }

    /// Loads the page on this connection, as a browser tab does; returns the request for the
    /// tab's stream (its URL from the page, with the session cookie).
    pub async fn load_page(&mut self) -> String {
        self.send(get("/").as_bytes()).await;
        let page = self.response().await;
        let cookie = page
            .header("set-cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let text = page.text();
        let start = text.find("hx-sse:connect=\"").unwrap() + "hx-sse:connect=\"".len();
        let url = text[start..][..text[start..].find('"').unwrap()].replace("&#38;", "&");
        format!("GET {url} HTTP/1.1\r\nHost: herald.test\r\nCookie: {cookie}\r\n\r\n")
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write request");
    }

    /// Reads more bytes into the buffer; `false` at EOF.
    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "nothing more from the server in time; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Takes `n` bytes off the front of the buffer, reading as needed.
    pub async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "EOF after {} of {n} bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    pub async fn line(&mut self) -> String {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line = self.take(at + 2).await;
                return String::from_utf8(line[..at].to_vec()).expect("ASCII line");
            }
            assert!(
                self.fill().await,
                "EOF inside a line: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// The next response to a request that may carry a body.
    pub async fn response(&mut self) -> Resp {
        self.read_response(false).await
    }

    /// The next response to a `HEAD`: its framing headers describe a body that is not sent.
    pub async fn head_response(&mut self) -> Resp {
        self.read_response(true).await
    }

    pub async fn read_response(&mut self, to_head: bool) -> Resp {
        let status_line = self.line().await;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        assert!(version.starts_with("HTTP/1."), "{status_line:?}");
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut resp = Resp {
            version,
            status,
            headers,
            body: Vec::new(),
        };
        if to_head || resp.status < 200 || resp.status == 204 || resp.status == 304 {
            return resp;
        }
        if resp
            .get("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            assert!(
                resp.get("content-length").is_none(),
                "both framings: {resp:?}"
            );
            resp.body = self.chunked().await;
        } else if let Some(len) = resp.get("content-length") {
            let len: usize = len.parse().expect("numeric content-length");
            resp.body = self.take(len).await;
        } else {
            // Delimited by the end of the connection (HTTP/1.0).
            while self.fill().await {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }

    /// Decodes a chunked body, checking every chunk's framing.
    pub async fn chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line().await;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
            if size == 0 {
                assert_eq!(self.line().await, "", "no trailers, then the end");
                return body;
            }
            body.extend(self.take(size).await);
            assert_eq!(self.line().await, "", "CRLF after a chunk of {size}");
        }
    }

    /// Reads until `needle` has arrived (without consuming anything).
    pub async fn wait_for(&mut self, needle: &str) {
        while find(&self.buf, needle.as_bytes()).is_none() {
            assert!(
                self.fill().await,
                "EOF before {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads until the server closes the connection (an orderly close or a reset: both end
    /// it), keeping what arrives in the buffer; panics if it is still open after [`WAIT`].
    pub async fn until_closed(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Err(_) => panic!(
                    "the server kept the connection open; have {} bytes",
                    self.buf.len()
                ),
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Asserts the server closes the connection with nothing more sent.
    pub async fn expect_eof(&mut self) {
        let more = self.fill().await;
        assert!(
            !more && self.buf.is_empty(),
            "expected the server to close; got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A same-origin JSON `POST /send-notification`, which the loop hands to hyper (it has a body).
pub fn notify(json: &str) -> String {
    format!(
        "POST /send-notification HTTP/1.1\r\nHost: herald.test\r\n\
         Content-Type: application/json\r\nSec-Fetch-Site: same-origin\r\n\
         Content-Length: {}\r\n\r\n{json}",
        json.len()
    )
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: herald.test\r\n\r\n")
}

/// Sets `count` board messages of 150 KB (`m0-…`, `m1-…`), far more than the socket buffers of
/// a tab that stopped reading take; `fast`, a tab that reads, gets each before the next is sent,
/// so it is not held up by the one that stopped.
pub async fn flood_board(client: &Client, fast: &mut Sse, count: usize) {
    let padding = "x".repeat(150_000);
    for n in 0..count {
        let sent = client
            .post_form("/send", &[("message", &format!("m{n}-{padding}"))])
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        fast.until(&format!("m{n}-")).await;
    }
}
