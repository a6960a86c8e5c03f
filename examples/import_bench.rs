//! Imports a generated CSV (1,000,000 rows by default) into a real Herald server and prints
//! the import's rows per second and the server's memory growth.
//!
//! `cargo run --release --example import_bench [-- ROWS]`
//!
//! The server runs in a child process (this binary with `--serve`), so its memory is measured
//! alone: VmRSS before the upload, the highest VmRSS sampled during it, and VmHWM. The CSV is
//! the `/csv` generator's, produced while it is uploaded, like a client streaming a file.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use herald::config::Config;
use herald::import::mock;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BOUNDARY: &str = "herald-bench-boundary";
const ROWS_PER_CHUNK: u64 = 1000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        serve(&args[1]);
        return;
    }
    let rows: u64 = args
        .first()
        .map_or(1_000_000, |r| r.parse().expect("ROWS is a number"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(rows));
}

/// The server side: the real app on an ephemeral port, announced on stdout.
fn serve(db: &str) {
    let flags = [
        "--db",
        db,
        "--max-upload-bytes",
        "1000000000",
        "--max-import-rows",
        "10000000",
    ];
    let config = Config::parse(flags.iter().map(|s| s.to_string()), &HashMap::new()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = herald::build(config).expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        herald::serve(listener, app, std::future::pending())
            .await
            .unwrap();
    });
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::TempDir::new().unwrap();
    let db = dir.path().join("bench.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(&db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Server {
        child,
        addr: line.trim().parse().expect("server prints its address"),
        _dir: dir,
    }
}

/// A `/proc/<pid>/status` field in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds the process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which ends with ')'); utime and stime are 14th and 15th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

async fn send<B>(addr: SocketAddr, req: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Empty<Bytes>> {
    let mut req = Request::get(path).header("host", "bench");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.body(Empty::new()).unwrap()
}

/// The CSV's pieces: multipart preamble, rows chunk by chunk, closing boundary.
fn pieces(rows: u64) -> impl Iterator<Item = Bytes> {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{}",
        mock::HEADER
    );
    let chunks = (0..rows.div_ceil(ROWS_PER_CHUNK)).map(move |i| {
        let from = i * ROWS_PER_CHUNK + 1;
        Bytes::from(mock::chunk(from, (from + ROWS_PER_CHUNK - 1).min(rows)))
    });
    std::iter::once(Bytes::from(head))
        .chain(chunks)
        .chain(std::iter::once(Bytes::from(format!(
            "\r\n--{BOUNDARY}--\r\n"
        ))))
}

async fn bench(rows: u64) {
    let server = start_server();
    let pid = server.child.id();
    let addr = server.addr;

    let page = send(addr, get("/", None)).await;
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let start = html.find("hx-sse:connect=\"").unwrap() + 16;
    let stream_url = html[start..start + html[start..].find('"').unwrap()].replace("&#38;", "&");
    let client = stream_url
        .trim_start_matches("/sse/")
        .split('?')
        .next()
        .unwrap()
        .to_string();

    // The tab's stream, read to its end-of-import toast.
    let sse = send(addr, get(&stream_url, Some(&cookie))).await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<(Instant, String)>();
    tokio::spawn(async move {
        let mut body = sse.into_body();
        let mut text = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
                if let Some(at) = text.find("toast-title\">Import finished") {
                    let line = text[at..].lines().nth(1).unwrap_or("");
                    let summary = line.trim_start_matches("data:").trim().to_string();
                    let _ = done_tx.send((Instant::now(), summary));
                    return;
                }
                // Keep only the tail: the stream itself is not what is measured.
                if text.len() > 1 << 16 {
                    text.drain(..text.len() - 4096);
                }
            }
        }
    });

    let file_bytes: u64 = pieces(rows).map(|b| b.len() as u64).sum();
    let baseline = proc_kb(pid, "VmRSS:");
    let cpu_before = cpu_secs(pid);
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(proc_kb(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    println!(
        "importing {rows} rows ({:.1} MB) into the server (pid {pid})…",
        file_bytes as f64 / 1e6
    );
    let body = StreamBody::new(
        futures_util::stream::iter(pieces(rows)).map(|b| Ok::<_, Infallible>(Frame::data(b))),
    );
    let upload = Request::post(format!("/upload/{client}"))
        .header("host", "bench")
        .header("cookie", &cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header("content-length", file_bytes)
        .body(body)
        .unwrap();
    let began = Instant::now();
    let answer = send(addr, upload).await;
    let answered = began.elapsed();
    let status = answer.status();
    let text = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "upload refused: {status} {}",
        String::from_utf8_lossy(&text)
    );
    let (finished, summary) = tokio::time::timeout(Duration::from_secs(600), done_rx)
        .await
        .expect("import finishes")
        .expect("stream reports the end");
    let elapsed = finished - began;
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let hwm = proc_kb(pid, "VmHWM:");
    let cpu = cpu_secs(pid) - cpu_before;

    println!(
        "upload answered after     {:.2} s ({status})",
        answered.as_secs_f64()
    );
    println!(
        "import finished after     {:.2} s: {}",
        elapsed.as_secs_f64(),
        summary
            .trim()
            .trim_start_matches("<p>")
            .trim_end_matches("</p>")
    );
    println!(
        "rows per second           {:.0}",
        rows as f64 / elapsed.as_secs_f64()
    );
    println!(
        "server CPU time           {cpu:.2} s ({:.0} rows per CPU second)",
        rows as f64 / cpu
    );
    println!(
        "server VmRSS before       {:.1} MB",
        baseline as f64 / 1024.0
    );
    println!(
        "server VmRSS peak         {:.1} MB (sampled every 5 ms)",
        peak as f64 / 1024.0
    );
    println!(
        "server memory growth      {:.1} MB",
        (peak.saturating_sub(baseline)) as f64 / 1024.0
    );
    println!("server VmHWM              {:.1} MB", hwm as f64 / 1024.0);
}
