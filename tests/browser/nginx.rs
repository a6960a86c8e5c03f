//! A real nginx (Debian's `nginx`) running `docs/deploy/nginx.conf` in front of Herald, in a
//! prefix of its own: only the addresses, ports and certificate paths of the shipped file are
//! replaced, each of which must be found exactly where the file says.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::common::tls;

pub const NGINX: &str = "/usr/sbin/nginx";
const SHIPPED: &str = include_str!("../../docs/deploy/nginx.conf");

/// nginx in the foreground; stopped (fast shutdown, then killed) on drop.
pub struct Nginx {
    dir: TempDir,
    child: Child,
    /// Where browsers reach it: `https://localhost:<port>`.
    pub port: u16,
}

impl Nginx {
    /// nginx with the shipped configuration, proxying to Herald at `herald`.
    pub async fn start(herald: SocketAddr) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: apt-get install -y nginx (tests/run does)"
        );
        let dir = TempDir::new().expect("nginx prefix");
        let cert = tls::self_signed(dir.path(), "nginx");
        let (port, redirect_port) = (free_port(), free_port());
        let site = site(&cert, herald, port, redirect_port);
        std::fs::write(dir.path().join("herald.conf"), site).expect("site written");
        std::fs::write(dir.path().join("nginx.conf"), main_conf(dir.path())).expect("conf");
        let child = Command::new(NGINX)
            .args(prefix_args(dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx { dir, child, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx not listening in time:\n{}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// `nginx -s reload`, as an operator does after editing the configuration; returns once
    /// the new workers run (the old ones finish their connections meanwhile).
    pub async fn reload(&self) {
        let before = self.error_log().matches("start worker process").count();
        let status = Command::new(NGINX)
            .args(prefix_args(self.dir.path()))
            .args(["-s", "reload"])
            .status()
            .expect("nginx -s reload runs");
        assert!(status.success(), "reload: {}", self.error_log());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.error_log().matches("start worker process").count() <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no new workers after the reload:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown: workers close their connections and exit.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prefix_args(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        "-p".into(),
        path(""),
        "-c".into(),
        path("nginx.conf"),
        "-e".into(),
        path("error.log"),
    ]
}

/// The shipped site with this test's addresses and files: every replaced piece must be there.
fn site(cert: &tls::TestCert, herald: SocketAddr, port: u16, redirect_port: u16) -> String {
    let replacements = [
        ("server 127.0.0.1:3000;", format!("server {herald};")),
        ("listen 80;", format!("listen 127.0.0.1:{redirect_port};")),
        ("listen [::]:80;", String::new()),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{port} ssl http2;"),
        ),
        ("listen [::]:443 ssl http2;", String::new()),
        (
            "/etc/ssl/herald/fullchain.pem",
            cert.cert.display().to_string(),
        ),
        (
            "/etc/ssl/herald/privkey.pem",
            cert.key.display().to_string(),
        ),
    ];
    let mut site = SHIPPED.to_string();
    for (from, to) in replacements {
        assert_eq!(
            site.matches(from).count(),
            1,
            "docs/deploy/nginx.conf should have {from:?} once"
        );
        site = site.replace(from, &to);
    }
    site
}

/// The main configuration around the site: everything in the prefix, in the foreground.
fn main_conf(dir: &Path) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    // As root, nginx's workers would run as `nobody`, who cannot read the temporary prefix.
    // SAFETY: geteuid only reads the process's effective user id.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    format!(
        "{user}\n\
         daemon off;\n\
         worker_processes 1;\n\
         error_log {error} notice;\n\
         pid {pid};\n\
         events {{ worker_connections 512; }}\n\
         http {{\n\
             access_log {access};\n\
             client_body_temp_path {body};\n\
             proxy_temp_path {proxy};\n\
             fastcgi_temp_path {fastcgi};\n\
             uwsgi_temp_path {uwsgi};\n\
             scgi_temp_path {scgi};\n\
             include {site};\n\
         }}\n",
        pid = path("nginx.pid"),
        error = path("error.log"),
        access = path("access.log"),
        body = path("body"),
        proxy = path("proxy"),
        fastcgi = path("fastcgi"),
        uwsgi = path("uwsgi"),
        scgi = path("scgi"),
        site = path("herald.conf"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
