//! What differs between the servers: how a browser opens a stream, and how a message is
//! published. Everything else (counting, timing) is the same for all of them.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::args::{Args, PublishPath, Target};
use crate::http::{self, Conn, Head, bad};
use crate::sse::Marker;

/// A server to load: which kind, where, and the publish path or channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub target: Target,
    pub addr: SocketAddr,
    pub publish: PublishPath,
    pub channel: String,
    /// Length the published text is padded to (`--payload` less this server's framing); the
    /// marker alone when shorter.
    pub text_len: usize,
}

/// The longest text sent in a `GET /send` query: a longer one goes as JSON in `POST /send`,
/// since Herald refuses request heads over 16 KB (`HERALD_MAX_HEADER_BYTES`).
const MAX_QUERY: usize = 8 * 1024;

/// The largest page or publish answer read into memory.
const MAX_BODY: usize = 4 << 20;

impl Endpoint {
    /// `target` at `addr`, publishing as `args` say, the text not padded yet.
    pub fn new(target: Target, addr: SocketAddr, args: &Args) -> Endpoint {
        Endpoint {
            target,
            addr,
            publish: args.publish,
            channel: args.channel.clone(),
            text_len: 0,
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Opens one stream the way a browser does, from `source` and with `receive_buffer` bytes
    /// of socket receive buffer if given; returns the connection positioned at the start of the
    /// event-stream body.
    pub async fn subscribe(
        &self,
        source: Option<Ipv4Addr>,
        receive_buffer: Option<u32>,
    ) -> io::Result<(Conn, Head)> {
        let (conn, head, _) = self.subscribe_tab(source, receive_buffer).await?;
        Ok((conn, head))
    }

    /// [`Endpoint::subscribe`], also returning the stream's [`Tab`], to reopen it with.
    pub async fn subscribe_tab(
        &self,
        source: Option<Ipv4Addr>,
        receive_buffer: Option<u32>,
    ) -> io::Result<(Conn, Head, Tab)> {
        let connect = || http::connect_with(self.addr, source, receive_buffer);
        let mut conn = Conn::new(connect().await?);
        let (path, cookie) = match self.target {
            Target::Herald => {
                let (path, cookie, reusable) = self.load_page(&mut conn).await?;
                if !reusable {
                    conn = Conn::new(connect().await?);
                }
                (path, cookie)
            }
            Target::Nchan | Target::Floor => (format!("/sub/{}", self.channel), None),
            Target::Node => ("/sub".to_string(), None),
        };
        let tab = Tab {
            path,
            cookie,
            source,
        };
        let head = self.open_stream(&mut conn, &tab, None).await?;
        Ok((conn, head, tab))
    }

    /// Opens `tab`'s stream on a new connection; reopens it as a browser's `EventSource` does
    /// given the last id received (`Last-Event-ID`).
    pub async fn open_tab(&self, tab: &Tab, last_id: Option<&str>) -> io::Result<(Conn, Head)> {
        let mut conn = Conn::new(http::connect(self.addr, tab.source).await?);
        let head = self.open_stream(&mut conn, tab, last_id).await?;
        Ok((conn, head))
    }

    /// Requests `tab`'s event stream on `conn` and checks that one started.
    async fn open_stream(
        &self,
        conn: &mut Conn,
        tab: &Tab,
        last_id: Option<&str>,
    ) -> io::Result<Head> {
        conn.send(&self.stream_request(tab, last_id)).await?;
        let path = &tab.path;
        let head = conn.read_head().await?;
        let is_sse = head
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if head.status != 200 || !is_sse {
            return Err(bad(&format!(
                "GET {path}: status {} ({})",
                head.status,
                head.header("content-type").unwrap_or("no content type")
            )));
        }
        Ok(head)
    }

    /// The request for `tab`'s event stream, as an `EventSource` sends it: the tab's URL and
    /// cookie, and `Last-Event-ID` when resuming after that id.
    fn stream_request(&self, tab: &Tab, last_id: Option<&str>) -> Vec<u8> {
        let mut headers = vec![
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
        ];
        if let Some(cookie) = &tab.cookie {
            headers.push(("Cookie", cookie));
        }
        if let Some(id) = last_id {
            headers.push(("Last-Event-ID", id));
        }
        http::request("GET", &tab.path, &self.host(), &headers, b"")
    }

    /// `GET /` on Herald: the tab's stream URL (from `hx-sse:connect`), the session cookie, and
    /// whether the connection can carry the stream request next, as a browser would reuse it.
    pub async fn load_page(&self, conn: &mut Conn) -> io::Result<(String, Option<String>, bool)> {
        let headers = [("Accept", "text/html")];
        conn.send(&http::request("GET", "/", &self.host(), &headers, b""))
            .await?;
        let head = conn.read_head().await?;
        let body = conn.read_full_body(&head, MAX_BODY).await?;
        if head.status != 200 {
            return Err(bad(&format!("GET /: status {}", head.status)));
        }
        let path = stream_url(&String::from_utf8_lossy(&body))
            .ok_or_else(|| bad("GET /: no hx-sse:connect in the page"))?;
        let cookie = head
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        Ok((path, cookie, head.keep_alive()))
    }

    /// The text published for `marker`: the marker, padded to `text_len` with characters that
    /// no server escapes or encodes.
    pub fn text(&self, marker: Marker) -> String {
        let mut text = marker.text();
        let pad = self.text_len.saturating_sub(text.len());
        text.extend(std::iter::repeat_n('x', pad));
        text
    }

    /// The request that publishes `marker` through the server's normal publish path.
    pub fn publish_request(&self, marker: Marker) -> Vec<u8> {
        let host = self.host();
        let text = self.text(marker);
        match (self.target, self.publish) {
            (Target::Herald, PublishPath::Board) if text.len() <= MAX_QUERY => {
                http::request("GET", &format!("/send?message={text}"), &host, &[], b"")
            }
            (Target::Herald, PublishPath::Board) => {
                let body = serde_json::json!({ "message": text });
                let json = [("Content-Type", "application/json")];
                http::request("POST", "/send", &host, &json, body.to_string().as_bytes())
            }
            (Target::Herald, PublishPath::Notify) => {
                let body = serde_json::json!({"type": "info", "title": text, "body": "load test"});
                let json = [("Content-Type", "application/json")];
                http::request(
                    "POST",
                    "/send-notification",
                    &host,
                    &json,
                    body.to_string().as_bytes(),
                )
            }
            (Target::Nchan | Target::Floor, _) => {
                let plain = [("Content-Type", "text/plain")];
                http::request(
                    "POST",
                    &format!("/pub/{}", self.channel),
                    &host,
                    &plain,
                    text.as_bytes(),
                )
            }
            (Target::Node, _) => {
                let plain = [("Content-Type", "text/plain")];
                http::request("POST", "/pub", &host, &plain, text.as_bytes())
            }
        }
    }
}

/// Where a browser tab's stream is: its URL (a Herald tab's names the tab), the session cookie,
/// and the source address it connects from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tab {
    pub path: String,
    pub cookie: Option<String>,
    pub source: Option<Ipv4Addr>,
}

/// The stream URL a Herald page names in its one `hx-sse:connect` attribute.
pub fn stream_url(page: &str) -> Option<String> {
    let start = page.find("hx-sse:connect=\"")? + "hx-sse:connect=\"".len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].replace("&amp;", "&"))
}

/// Sends a request on a kept-alive connection and reads the whole answer.
pub async fn exchange(conn: &mut Conn, request: &[u8]) -> io::Result<(Head, Vec<u8>)> {
    conn.send(request).await?;
    let head = conn.read_head().await?;
    let body = conn.read_full_body(&head, MAX_BODY).await?;
    Ok((head, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pages_stream_url() {
        let page = r#"<main id="live" hx-sse:connect="/sse/ab-cd?cursor=1f-0-0" hx-swap="none">"#;
        assert_eq!(
            stream_url(page).as_deref(),
            Some("/sse/ab-cd?cursor=1f-0-0")
        );
        assert_eq!(stream_url("<main>"), None);
    }

    #[test]
    fn publishes_through_each_servers_normal_path() {
        let marker = Marker { seq: 3, sent_us: 9 };
        let ep = |target, publish| Endpoint {
            target,
            addr: "127.0.0.1:1".parse().unwrap(),
            publish,
            channel: "bench".into(),
            text_len: 0,
        };
        let text = |r: Vec<u8>| String::from_utf8(r).unwrap();
        let board = text(ep(Target::Herald, PublishPath::Board).publish_request(marker));
        assert!(board.starts_with("GET /send?message=HLM3.9 HTTP/1.1\r\n"));
        let notify = text(ep(Target::Herald, PublishPath::Notify).publish_request(marker));
        assert!(
            notify.starts_with("POST /send-notification ")
                && notify.contains("\"title\":\"HLM3.9\"")
        );
        let nchan = text(ep(Target::Nchan, PublishPath::Board).publish_request(marker));
        assert!(nchan.starts_with("POST /pub/bench ") && nchan.ends_with("\r\n\r\nHLM3.9"));
        let floor = text(ep(Target::Floor, PublishPath::Board).publish_request(marker));
        assert!(floor.starts_with("POST /pub/bench ") && floor.ends_with("\r\n\r\nHLM3.9"));
        let node = text(ep(Target::Node, PublishPath::Board).publish_request(marker));
        assert!(node.starts_with("POST /pub ") && node.contains("Content-Length: 6\r\n"));
    }

    #[test]
    fn a_tab_reopens_its_own_stream_with_the_last_id() {
        let ep = Endpoint {
            target: Target::Herald,
            addr: "127.0.0.1:1".parse().unwrap(),
            publish: PublishPath::Board,
            channel: "bench".into(),
            text_len: 0,
        };
        let tab = Tab {
            path: "/sse/ab-cd?cursor=1f-0-0".into(),
            cookie: Some("herald_session=s1".into()),
            source: None,
        };
        let text = |r: Vec<u8>| String::from_utf8(r).unwrap();
        let first = text(ep.stream_request(&tab, None));
        assert!(
            first.starts_with("GET /sse/ab-cd?cursor=1f-0-0 HTTP/1.1\r\n"),
            "{first}"
        );
        assert!(
            first.contains("\r\nCookie: herald_session=s1\r\n"),
            "{first}"
        );
        assert!(!first.contains("Last-Event-ID"), "{first}");
        let again = text(ep.stream_request(&tab, Some("1f-42-0")));
        assert_eq!(
            again,
            first.replace("\r\n\r\n", "\r\nLast-Event-ID: 1f-42-0\r\n\r\n"),
            "the same request, resuming after the last id"
        );
    }

    #[test]
    fn pads_the_text_to_the_length_asked() {
        let marker = Marker { seq: 3, sent_us: 9 };
        let mut ep = Endpoint {
            target: Target::Herald,
            addr: "127.0.0.1:1".parse().unwrap(),
            publish: PublishPath::Board,
            channel: "bench".into(),
            text_len: 40,
        };
        let text = ep.text(marker);
        assert_eq!(text.len(), 40);
        assert_eq!(crate::sse::Marker::find(text.as_bytes()), Some(marker));
        ep.text_len = 2;
        assert_eq!(ep.text(marker), "HLM3.9", "never shorter than the marker");
        ep.text_len = 20_000;
        let big = String::from_utf8(ep.publish_request(marker)).unwrap();
        assert!(
            big.starts_with("POST /send HTTP/1.1\r\n"),
            "a long text goes in a body"
        );
        assert!(big.ends_with(&format!("{{\"message\":\"{}\"}}", ep.text(marker))));
    }
}
