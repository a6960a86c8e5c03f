//! The real `herald` binary as an operator runs it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::WAIT;

/// The binary with none of the test runner's environment, so no stray HERALD_* applies.
pub fn herald(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A started `herald`, killed if a test fails before it is stopped.
pub struct Running(Option<Child>);

impl Running {
    pub fn start(mut command: Command) -> Running {
        Running(Some(command.spawn().expect("herald starts")))
    }

    /// Sends SIGTERM, as a deploy does.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named (`HUP`, `TERM`, …), as `kill` does.
    pub fn signal(&self, name: &str) {
        let pid = self.0.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Waits up to [`WAIT`] for it to exit by itself.
    pub fn exited(mut self) -> Output {
        let deadline = Instant::now() + WAIT;
        let child = self.0.as_mut().expect("running");
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "herald did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop()
    }

    /// Kills it (if still running) and returns what it printed.
    pub fn stop(mut self) -> Output {
        let mut child = self.0.take().expect("running");
        let _ = child.kill();
        child.wait_with_output().expect("output")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a command that is expected to exit by itself.
pub fn finish(command: Command) -> Output {
    Running::start(command).exited()
}

/// A loopback address nothing listens on now, for a `herald` to be started on.
pub fn free_addr() -> SocketAddr {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    free.local_addr().expect("its address")
}

/// Waits up to [`WAIT`] until something accepts connections at `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    // A free port is an ephemeral one, so a connect before the server listens can pick that
    // very port as its source and connect to itself (TCP simultaneous open): not a listener.
    let listening =
        || std::net::TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != Some(addr));
    while !listening() {
        assert!(
            Instant::now() < deadline,
            "nothing listening on {addr} in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `herald` with a fresh database in `dir`, on a free loopback port, with `args` and `env`
/// beside them; returns once it listens.
pub fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let db = dir.join("herald.db");
    let addr = free_addr();
    let addr_text = addr.to_string();
    let mut all = vec![
        "--db",
        db.to_str().expect("a UTF-8 path"),
        "--addr",
        &addr_text,
    ];
    all.extend_from_slice(args);
    let server = Running::start(herald(&all, env));
    wait_listening(addr);
    (server, addr)
}
