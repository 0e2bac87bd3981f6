//! CATALOG G01, the part a scenario cannot see: a packet capture of the lab's s2s traffic shows that
//! the two servers negotiate TLS before anything else on port 5269, and that no stanza or dialback
//! element ever crosses it in cleartext. Runs on its own freshly started lab (so every s2s link in
//! the capture is new), captures the loopback interface of that lab's network namespace with
//! tcpdump (installed with apt when missing) while the trusted-federation scenario runs, then reads
//! the capture back as text. TLS records are binary: any stanza start tag in the text was sent in
//! the clear.
//!
//! Which lab: `PLUGFEST_CAPTURE_NETNS` / `PLUGFEST_CAPTURE_STATE_DIR` (default `plugfest-capture`,
//! /var/lib/plugfest/lab-capture). Needs root.

#[path = "support/apt.rs"]
mod apt;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn plugfest() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_plugfest"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn s2s_between_the_lab_servers_is_never_cleartext() {
    assert!(is_root(), "needs root (network namespaces, apt, packet capture); run `cargo test` as root");
    apt::ensure_installed("tcpdump", "tcpdump");
    let netns = std::env::var("PLUGFEST_CAPTURE_NETNS").unwrap_or_else(|_| "plugfest-capture".into());
    let state = std::env::var("PLUGFEST_CAPTURE_STATE_DIR").unwrap_or_else(|_| "/var/lib/plugfest/lab-capture".into());
    let lab_args = ["--netns", netns.as_str(), "--state-dir", state.as_str()];
    // A fresh lab: servers restarted, so no s2s link exists before the capture starts.
    let _ = plugfest().args(["lab", "down"]).args(lab_args).output();
    let up = plugfest().args(["lab", "up"]).args(lab_args).output().unwrap();
    assert!(up.status.success(), "lab up: {}", String::from_utf8_lossy(&up.stderr));

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("s2s.pcap");
    let mut capture = Command::new("ip")
        .args(["netns", "exec", &netns, "tcpdump", "-i", "lo", "-n", "-U", "-w"])
        .arg(&pcap)
        .arg("tcp port 5269")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    // tcpdump says "listening on lo" once it captures; wait for that (bounded by its own exit).
    let mut stderr = BufReader::new(capture.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !line.contains("listening on") {
        line.clear();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0 && Instant::now() < deadline, "tcpdump did not start capturing: {line}");
    }

    let servers = PathBuf::from(&state).join("servers.yaml");
    let run = plugfest()
        .args(["run", "--reruns", "0", "--filter", "s2s-trusted-federation", "--servers"])
        .arg(&servers)
        .arg("--reports")
        .arg(dir.path())
        .output()
        .unwrap();
    // Stop the capture we started (SIGINT: tcpdump flushes and closes the file), by its PID.
    let _ = Command::new("kill").args(["-INT", &capture.id().to_string()]).status();
    let _ = capture.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "the trusted-federation cases must pass first:\n{stdout}");

    let read = Command::new("tcpdump").args(["-n", "-A", "-r"]).arg(&pcap).output().unwrap();
    assert!(read.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&read.stderr));
    let text = String::from_utf8_lossy(&read.stdout);
    // The capture saw the links being set up: stream headers and STARTTLS, both directions.
    assert!(text.contains("jabber:server") && text.contains("<starttls"), "nothing captured on 5269:\n{text}");
    assert!(text.contains("<proceed"), "no STARTTLS completed in the capture");
    for tag in ["<message", "<presence", "<iq", "<db:result", "<db:verify", "<result xmlns='jabber:server:dialback"] {
        let hit = text.lines().find(|l| l.contains(tag));
        assert!(hit.is_none(), "{tag} crossed port 5269 in cleartext (RFC 6120 §5.4.3.1, §13.14): {}", hit.unwrap());
    }
    let _ = plugfest().args(["lab", "down"]).args(lab_args).output();
}
