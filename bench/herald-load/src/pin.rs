//! `--pin`: the server on CPU 0, the tool on the others. On a 2-core machine a server that burns
//! more CPU otherwise slows the tool that measures it, and latency then measures the two
//! competing for a core (issue 14: unpinned, this tool reported nchan's p99 three times what an
//! independent tool measured). `taskset` (util-linux) does the pinning, so no unsafe code here.

use std::io;
use std::process::Command;

/// Where the server runs.
pub const SERVER_CPUS: &str = "0";

/// Where the tool and its worker processes run: every CPU but the server's.
pub fn tool_cpus() -> String {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    match n {
        0..=1 => SERVER_CPUS.to_string(),
        2 => "1".to_string(),
        n => format!("1-{}", n - 1),
    }
}

/// Pins this process to the tool's CPUs. Call it before any thread starts: threads and child
/// processes inherit the affinity of the thread that creates them.
pub fn pin_self() -> io::Result<()> {
    taskset(&["-p", "-c", &tool_cpus(), &std::process::id().to_string()])
}

/// Pins a running process, every thread of it, and its children (an nginx master's workers):
/// for a server attached to with `--url`/`--pid`.
pub fn pin_running(pid: u32) -> io::Result<()> {
    taskset(&["-a", "-p", "-c", SERVER_CPUS, &pid.to_string()])
}

/// The program and arguments that run `program` pinned to the server's CPU.
pub fn server_prefix() -> [&'static str; 3] {
    ["taskset", "-c", SERVER_CPUS]
}

fn taskset(args: &[&str]) -> io::Result<()> {
    let out = Command::new("taskset")
        .args(args)
        .output()
        .map_err(|e| io::Error::other(format!("--pin needs taskset (util-linux): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "taskset {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_never_shares_the_servers_cpu_when_there_is_another() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let tool = tool_cpus();
        assert_eq!(tool == SERVER_CPUS, n == 1, "{tool} on {n} CPUs");
    }

    #[test]
    fn pins_a_child_process_and_reads_it_back() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        pin_running(child.id()).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(allowed, SERVER_CPUS);
    }
}
