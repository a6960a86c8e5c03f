//! The server under load: started here (Herald on a temp DB, nginx with a private prefix, Node)
//! or attached to by address and pid; and what /proc says about its memory and CPU.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::args::{Args, Target};
use crate::pin;
use crate::report::Report;

pub struct Server {
    pub addr: SocketAddr,
    /// A spawned Herald's send timeout in seconds, when the tool set one (`--soak`).
    pub send_timeout: Option<u64>,
    /// The processes whose memory and CPU count (an nginx master stands for its workers).
    pids: Vec<u32>,
    child: Option<Child>,
    dir: Option<TempDir>,
}

impl Server {
    /// A server started by hand; with `--pin`, moved to the server's CPU with its threads and
    /// child processes.
    fn attach(addr: SocketAddr, args: &Args) -> io::Result<Server> {
        let server = Server {
            addr,
            send_timeout: None,
            pids: args.pids.clone(),
            child: None,
            dir: None,
        };
        if args.pin == Some(true) {
            for pid in args.pids.iter().copied().chain(server.measured()) {
                pin::pin_running(pid)?;
            }
        }
        Ok(server)
    }

    /// The server a run measures: the one at `--url`, or `target` spawned.
    pub async fn start(target: Target, args: &Args) -> io::Result<Server> {
        match args.url {
            Some(addr) => Server::attach(addr, args),
            None => Server::spawn(target, args).await,
        }
    }

    /// [`Server::start`], or `None` with the reason in `report`'s error.
    pub async fn start_or_report(
        target: Target,
        args: &Args,
        report: &mut Report,
    ) -> Option<Server> {
        match Server::start(target, args).await {
            Ok(s) => Some(s),
            Err(e) => {
                report.error = Some(e.to_string());
                None
            }
        }
    }

    /// Starts `target` on a free loopback port and waits until it accepts connections; tries
    /// another port if the first was taken in between.
    pub async fn spawn(target: Target, args: &Args) -> io::Result<Server> {
        match Server::spawn_once(target, args).await {
            Err(e) if e.to_string().contains("in use") => Server::spawn_once(target, args).await,
            other => other,
        }
    }

    async fn spawn_once(target: Target, args: &Args) -> io::Result<Server> {
        let dir = TempDir::new(target.name())?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.0.join("server.log"))?;
        let pin = args.pin == Some(true);
        let mut send_timeout = None;
        let mut command = match target {
            Target::Herald => {
                let bin = match &args.herald_bin {
                    Some(bin) => bin.clone(),
                    None => sibling("herald")?,
                };
                let mut extra = herald_args(args);
                if args.soak.is_some()
                    && !extra.iter().any(|a| a.starts_with(SEND_TIMEOUT))
                    && lists(&bin, SEND_TIMEOUT)
                {
                    extra.extend([SEND_TIMEOUT.to_string(), args.send_timeout.to_string()]);
                    send_timeout = Some(args.send_timeout);
                }
                let mut c = program(bin, pin);
                c.arg("--addr")
                    .arg(addr.to_string())
                    .arg("--db")
                    .arg(dir.0.join("herald.db"))
                    .args(extra)
                    .env("RUST_LOG", "warn");
                c
            }
            Target::Nchan => {
                let conf = std::fs::read_to_string(args.peers_dir.join("nginx.conf"))?
                    .replace("0.0.0.0:8081", &format!("0.0.0.0:{port}"))
                    .replace(
                        "worker_processes 1;",
                        &format!("worker_processes {};", args.nginx_workers),
                    );
                std::fs::write(dir.0.join("nginx.conf"), conf)?;
                std::fs::create_dir_all(dir.0.join("logs"))?;
                let mut prefix = dir.0.clone().into_os_string();
                prefix.push("/");
                let mut c = program("nginx", pin);
                c.arg("-p")
                    .arg(prefix)
                    .arg("-c")
                    .arg(dir.0.join("nginx.conf"));
                c
            }
            Target::Node => {
                let mut c = program("node", pin);
                c.arg(args.peers_dir.join("server.js"))
                    .env("PORT", port.to_string());
                c
            }
            Target::Floor => {
                if !args.floor_bin.exists() {
                    return Err(io::Error::other(format!(
                        "{} not found: cargo build --release --manifest-path \
                         ../shared/peers/floor/Cargo.toml --target-dir target/peers, or give --floor-bin",
                        args.floor_bin.display()
                    )));
                }
                let mut c = program(&args.floor_bin, pin);
                c.arg(port.to_string());
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", target.name())))?;
        let pid = child.id().unwrap_or(0);
        let mut server = Server {
            addr,
            send_timeout,
            pids: vec![pid],
            child: Some(child),
            dir: Some(dir),
        };
        server.wait_ready(target).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, target: Target) -> io::Result<()> {
        for _ in 0..300 {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "{} exited ({status}) before listening; its log:\n{}",
                    target.name(),
                    self.log_tail()
                )));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(io::Error::other(format!(
            "{} did not listen on {} in 15 s",
            target.name(),
            self.addr
        )))
    }

    /// The end of a spawned server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let log = std::fs::read_to_string(dir.0.join("server.log")).unwrap_or_default();
        let mut start = log.len().saturating_sub(2000);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    /// The processes measured: each given pid, or its children when it has some (nginx).
    fn measured(&self) -> Vec<u32> {
        self.pids
            .iter()
            .flat_map(|&pid| {
                let kids = children(pid);
                if kids.is_empty() { vec![pid] } else { kids }
            })
            .collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.measured()
    }

    /// Resident memory of the server's processes, in bytes.
    pub fn rss(&self) -> u64 {
        self.measured().into_iter().map(rss_bytes).sum()
    }

    /// CPU time (user + system) the server's processes have used, in seconds.
    pub fn cpu(&self) -> f64 {
        self.measured().into_iter().map(cpu_secs).sum()
    }

    /// Time the server's threads have spent runnable but waiting for a CPU, in seconds.
    pub fn waited(&self) -> f64 {
        self.measured().into_iter().map(wait_secs).sum()
    }

    /// Stops a spawned server with SIGTERM (a clean shutdown), then SIGKILL if it lingers.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // Our own child, not reaped yet: the pid is still its.
            let _ = signal(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// A command running `bin`, pinned to the server's CPU when `pin` holds.
fn program(bin: impl AsRef<std::ffi::OsStr>, pin: bool) -> Command {
    if pin {
        let [taskset, rest @ ..] = pin::server_prefix();
        let mut c = Command::new(taskset);
        c.args(rest).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// `--herald-arg`s, and with `--payload` a message limit that lets the padded text through.
fn herald_args(args: &Args) -> Vec<String> {
    let mut all = args.herald_args.clone();
    let given = all.iter().any(|a| a.starts_with("--max-message-chars"));
    if let Some(bytes) = args.payload
        && !given
    {
        all.extend(["--max-message-chars".to_string(), bytes.to_string()]);
    }
    all
}

/// Herald's option for closing a stream whose client has taken nothing for that long.
const SEND_TIMEOUT: &str = "--send-timeout-secs";

/// Whether `bin --help` lists `option` (a Herald without it would refuse to start).
fn lists(bin: &std::path::Path, option: &str) -> bool {
    std::process::Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(option))
}

/// A binary built next to this one (`target/release/herald` beside `herald-load`).
fn sibling(name: &str) -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(io::Error::other(format!(
            "{} not found: build it first (cargo build --release --workspace), or give --herald-bin",
            path.display()
        )))
    }
}

/// A port nothing uses on any address: nginx listens on 0.0.0.0, which conflicts with client
/// sockets bound to any 127.0.0.x (the previous run's, in TIME_WAIT).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("0.0.0.0:0")?.local_addr()?.port())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("herald-load-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes no pointers; whichever process the pid names, memory is untouched.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_kb(&status, "VmRSS:") * 1024
}

fn status_kb(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let ticks = stat_fields(&stat).map_or(0, |f| {
        // utime and stime are fields 14 and 15; the slice starts at field 3.
        f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    });
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

/// Time every thread of `pid` has spent runnable but waiting for a CPU (the run queue), in
/// seconds: the second field of `/proc/<pid>/task/<tid>/schedstat`. On a machine shared with
/// other work, this is how much of a run's latency is the machine's.
pub fn wait_secs(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// Whether process `pid` is running: it exists and has not exited (a zombie has).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is field 3, the first after the command name.
    stat_fields(&stat)
        .and_then(|f| f.first().copied())
        .is_some_and(|state| !matches!(state, "Z" | "X"))
}

/// The fields of /proc/<pid>/stat after the command name (which may hold spaces).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // The parent pid is field 4, the second after the command name.
            stat_fields(&stat).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}

/// This machine, for the results table.
pub fn machine() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    // The machine's, not this process's: --pin leaves the tool fewer than there are.
    let cpuinfo = read("/proc/cpuinfo");
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_gb = status_kb(&read("/proc/meminfo"), "MemTotal:") as f64 / (1024.0 * 1024.0);
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{cores} cores, {mem_gb:.0} GB, {cpu}, Linux {}",
        read("/proc/sys/kernel/osrelease")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_from_proc() {
        let me = std::process::id();
        assert!(rss_bytes(me) > 0);
        assert!(cpu_secs(me) >= 0.0);
        assert!(
            wait_secs(me) > 0.0,
            "a process has waited for a CPU at least once"
        );
        assert!(children(me).is_empty() || !children(me).contains(&me));
    }

    #[test]
    fn stat_fields_skip_a_command_name_with_spaces() {
        let stat = "42 (a b) S 7 42 42 0 -1 0 0 0 0 0 150 25 0 0";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[1], "7");
        assert_eq!((f[11], f[12]), ("150", "25"));
    }

    #[test]
    fn this_process_is_alive_and_an_unused_pid_is_not() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
