//! Processes the lab starts: spawning them detached, recording them, telling whether a recorded PID is still
//! ours, stopping them by PID, and running short commands with a deadline.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// One process the lab started, as recorded in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcRecord {
    /// What it is, e.g. `prosody`, `ejabberd (beam.smp)`.
    pub label: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22): a reused PID has another one.
    pub start_ticks: u64,
    /// A string its command line must contain (a path under the lab's state folder).
    pub marker: String,
}

impl ProcRecord {
    /// Record a process that runs now.
    pub fn capture(label: &str, pid: u32, marker: &str) -> Result<ProcRecord> {
        let stat = ProcStat::read(pid).with_context(|| format!("{label} (pid {pid}) exited right after it started"))?;
        Ok(ProcRecord { label: label.to_string(), pid, start_ticks: stat.start_ticks, marker: marker.to_string() })
    }

    /// True when the PID still names the process we started (same start time, our marker in its command line)
    /// and it has not exited.
    pub fn is_running(&self) -> bool {
        reap(self.pid);
        let Some(stat) = ProcStat::read(self.pid) else { return false };
        if stat.state == 'Z' || stat.start_ticks != self.start_ticks {
            return false;
        }
        cmdline(self.pid).is_some_and(|c| c.contains(&self.marker))
    }
}

/// The parts of /proc/PID/stat the lab needs.
pub(crate) struct ProcStat {
    pub state: char,
    pub ppid: u32,
    pub start_ticks: u64,
}

impl ProcStat {
    pub fn read(pid: u32) -> Option<ProcStat> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(ProcStat {
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }
}

/// The command line of a process, arguments joined by spaces.
pub(crate) fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
}

/// Live processes whose parent is `pid`.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| ProcStat::read(p).is_some_and(|s| s.ppid == pid && s.state != 'Z'))
        .collect()
}

/// Collect the exit status of a child of ours that has exited, so it does not linger as a zombie.
/// Not our child (the usual case after the CLI that started it has exited): nothing happens.
fn reap(pid: u32) {
    let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
}

/// Start a long-running process detached from our terminal and process group (Ctrl-C on the CLI must not reach
/// it), with stdin from /dev/null and stdout+stderr written to `log` (emptied first: it tells about this run).
/// Returns its PID.
pub(crate) fn spawn_detached(mut cmd: Command, log: &Path) -> Result<u32> {
    let out = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(log)
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    let err = out.try_clone().with_context(|| format!("cannot open the log file {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    // The Child handle is dropped on purpose: the process outlives us; `reap` collects it if it exits early.
    Ok(child.id())
}

/// Stop recorded processes: SIGTERM to those still ours, wait up to `grace`, then SIGKILL. Records whose PID no
/// longer names our process are skipped (never signal a stranger).
pub(crate) fn stop(records: &[ProcRecord], grace: Duration, progress: &dyn Fn(&str)) -> Result<()> {
    let running: Vec<&ProcRecord> = records.iter().filter(|r| r.is_running()).collect();
    for r in &running {
        progress(&format!("stopping {} (pid {})", r.label, r.pid));
        let _ = kill(Pid::from_raw(r.pid as i32), Signal::SIGTERM);
    }
    if wait_until_gone(&running, grace) {
        return Ok(());
    }
    for r in running.iter().filter(|r| r.is_running()) {
        progress(&format!("{} (pid {}) ignored SIGTERM for {grace:?}: sending SIGKILL", r.label, r.pid));
        let _ = kill(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
    }
    if wait_until_gone(&running, Duration::from_secs(5)) {
        return Ok(());
    }
    let left: Vec<String> =
        running.iter().filter(|r| r.is_running()).map(|r| format!("{} (pid {})", r.label, r.pid)).collect();
    bail!("could not stop {}; check them with `ps -p PID -o pid,stat,cmd`", left.join(", "))
}

/// Wait until none of the records is running; false at the deadline.
pub(crate) fn wait_until_gone(records: &[&ProcRecord], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !records.iter().any(|r| r.is_running()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Run a short command to completion, capturing its output; killed (and an error) after `timeout`.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{what}`"))?;
    // Read both pipes on threads so a chatty command cannot block on a full pipe while we wait.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("cannot wait for `{what}`"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{what}` did not finish within {timeout:?} and was killed");
        }
        thread::sleep(POLL);
    };
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// Like [`run`], but a non-zero exit is an error quoting the command's output.
pub(crate) fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    let output = run(cmd, timeout)?;
    if !output.status.success() {
        bail!("`{what}` failed ({}): {}", output.status, tail_text(&output_text(&output), 15));
    }
    Ok(output)
}

/// stdout and stderr of a finished command, as text.
pub(crate) fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.trim().to_string()
}

/// A command as a shell-like string, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `lines` lines of a file, for error messages ("" when unreadable).
pub(crate) fn tail_file(path: &Path, lines: usize) -> String {
    fs::read(path).map(|b| tail_text(&String::from_utf8_lossy(&b), lines)).unwrap_or_default()
}

pub(crate) fn tail_text(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_tell_our_process_from_a_stranger() {
        let me = std::process::id();
        let marker = cmdline(me).unwrap();
        let rec = ProcRecord::capture("test", me, &marker).unwrap();
        assert!(rec.is_running());
        assert!(!ProcRecord { start_ticks: rec.start_ticks + 1, ..rec.clone() }.is_running());
        assert!(!ProcRecord { marker: "/no/such/marker".into(), ..rec.clone() }.is_running());
    }

    #[test]
    fn stop_terminates_a_spawned_process_and_reaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let mut cmd = Command::new("sleep");
        cmd.arg("37.5");
        let pid = spawn_detached(cmd, &log).unwrap();
        let rec = ProcRecord::capture("sleep", pid, "37.5").unwrap();
        assert!(rec.is_running());
        stop(std::slice::from_ref(&rec), Duration::from_secs(5), &|_| {}).unwrap();
        assert!(!rec.is_running());
    }

    #[test]
    fn run_kills_at_the_deadline_and_reports_failures() {
        let err = run(Command::new("sleep").arg("10"), Duration::from_millis(200)).unwrap_err().to_string();
        assert!(err.contains("did not finish"), "{err}");
        let err = run_ok(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]), Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("oops"), "{err}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_text("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_text("a", 5), "a");
    }
}
