//! What a tab's stream costs over Herald's own HTTPS and HTTP/2, beside plain HTTP/1.1 measured
//! the same way (BENCHMARKS.md, "TLS and HTTP/2"). herald-load speaks plain HTTP/1.1 only; this
//! small client opens tabs the way a browser does on each protocol and measures the server.
//!
//! ```sh
//! cargo build --release && cargo run --release --example stream_cost -- --streams 2000
//! cargo run --release --example stream_cost -- --streams 2000 --plain
//! ```
//!
//! It starts `target/release/herald` (the binary beside `examples/`) on a free loopback port
//! with a fresh database and, unless `--plain`, a certificate made now; loads one page and
//! publishes once to warm up; opens the streams (over HTTPS: HTTP/2 connections carrying
//! `--per-connection` tabs each, every tab a page load and its stream on one connection, as a
//! browser does; plain: a connection per tab); waits `--settle` seconds; then publishes
//! `--messages` board messages at `--rate` a second and waits until every stream has every one.
//! It prints one JSON line: server RSS per stream (after the streams minus before, over the
//! streams), server CPU per delivery (utime + stime over the publish phase, over deliveries),
//! the client's own CPU per delivery, and deliveries lost.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Parser)]
struct Args {
    /// Tabs, each with its stream
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Board messages published once the streams are open
    #[arg(long, default_value_t = 50)]
    messages: u64,
    /// Messages a second
    #[arg(long, default_value_t = 10)]
    rate: u64,
    /// Tabs per HTTP/2 connection (a browser has one per origin)
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    /// Seconds between opening the streams and measuring memory
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Plain HTTP/1.1, a connection per tab, instead of HTTPS and HTTP/2
    #[arg(long)]
    plain: bool,
}

/// One way to send requests: an HTTP/2 connection, or an HTTP/1.1 one (a request at a time).
enum Conn {
    H2(http2::SendRequest<Empty<Bytes>>),
    H1(http1::SendRequest<Empty<Bytes>>),
}

impl Conn {
    async fn get(&mut self, path: &str, cookie: Option<&str>) -> Response<Incoming> {
        let mut req = Request::get(format!("https://localhost{path}"));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let req = req.body(Empty::new()).unwrap();
        match self {
            Conn::H2(send) => send.send_request(req).await.expect("an answer"),
            Conn::H1(send) => {
                send.ready().await.expect("the connection is ready");
                send.send_request(req).await.expect("an answer")
            }
        }
    }
}

struct Client {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

impl Client {
    async fn connect(&self) -> Conn {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let Some(tls) = &self.tls else {
            let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.expect("HTTP/1.1");
            tokio::spawn(conn);
            return Conn::H1(send);
        };
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tls.connect(name, tcp).await.expect("TLS");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2");
        tokio::spawn(conn);
        Conn::H2(send)
    }
}

/// Loads a page on `conn` and opens its tab's stream; returns the stream's body.
async fn open_tab(conn: &mut Conn) -> Incoming {
    let page = conn.get("/", None).await;
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8_lossy(&html);
    let start = html.find("hx-sse:connect=\"").expect("a stream URL") + 16;
    let url = html[start..start + html[start..].find('"').unwrap()].replace("&#38;", "&");
    let stream = conn.get(&url, Some(&cookie)).await;
    assert_eq!(stream.status(), 200);
    stream.into_body()
}

/// Counts the lines of `body` that carry a published message, into `seen`.
async fn count(mut body: Incoming, seen: Arc<AtomicU64>) {
    let mut tail = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        tail.extend_from_slice(&data);
        let mut start = 0;
        while let Some(end) = tail[start..].iter().position(|b| *b == b'\n') {
            if tail[start..start + end].windows(3).any(|w| w == b"HLM") {
                seen.fetch_add(1, Ordering::Relaxed);
            }
            start += end + 1;
        }
        tail.drain(..start);
    }
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap();
    kb * 1024
}

/// utime + stime of a process, in seconds.
fn cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let herald: PathBuf = exe.parent().unwrap().parent().unwrap().join("herald");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = Command::new(&herald);
    command
        .args(["--addr", &addr.to_string(), "--db"])
        .arg(dir.path().join("herald.db"))
        .args(["--drain-secs", "0", "--history-messages", "100000"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    let mut tls = None;
    if !args.plain {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("c.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), made.signing_key.serialize_pem()).unwrap();
        command
            .arg("--tls-cert")
            .arg(dir.path().join("c.pem"))
            .arg("--tls-key")
            .arg(dir.path().join("k.pem"));
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(made.cert.der().to_vec()))
            .unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        tls = Some(TlsConnector::from(Arc::new(config)));
    }
    let server = Server(command.spawn().expect("target/release/herald runs"));
    let pid = server.0.id();
    while TcpStream::connect(addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = Client { addr, tls };
    let mut publisher = client.connect().await;
    let publish = async |conn: &mut Conn, n: u64| {
        let answer = conn.get(&format!("/send?message=HLM{n}"), None).await;
        assert!(answer.status().is_success(), "{}", answer.status());
        answer.into_body().collect().await.unwrap();
    };
    // Warm up: a page and a publish, so first-use costs are not counted per stream.
    let _warm = open_tab(&mut client.connect().await).await;
    publish(&mut publisher, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let before = rss(pid);
    let seen = Arc::new(AtomicU64::new(0));
    let per_connection = if args.plain { 1 } else { args.per_connection };
    let mut conns = Vec::new();
    for tab in 0..args.streams {
        if tab % per_connection == 0 {
            conns.push(client.connect().await);
        }
        let body = open_tab(conns.last_mut().unwrap()).await;
        tokio::spawn(count(body, seen.clone()));
    }
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let after = rss(pid);

    let wanted = args.streams as u64 * args.messages;
    let (server_cpu, client_cpu) = (cpu(&pid.to_string()), cpu("self"));
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    for n in 1..=args.messages {
        tick.tick().await;
        publish(&mut publisher, n).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.load(Ordering::Relaxed) < wanted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let delivered = seen.load(Ordering::Relaxed);
    let server_cpu = cpu(&pid.to_string()) - server_cpu;
    let client_cpu = cpu("self") - client_cpu;
    let per = |secs: f64| secs * 1e6 / delivered.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "protocol": if args.plain { "http/1.1" } else { "h2+tls" },
            "streams": args.streams,
            "connections": conns.len(),
            "messages": args.messages,
            "rate": args.rate,
            "rss_per_stream_bytes": (after.saturating_sub(before)) / args.streams as u64,
            "server_cpu_per_delivery_us": per(server_cpu),
            "client_cpu_per_delivery_us": per(client_cpu),
            "delivered": delivered,
            "lost": wanted.saturating_sub(delivered),
            "seconds": took.as_secs_f64(),
        })
    );
}
