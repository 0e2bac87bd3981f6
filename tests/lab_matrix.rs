//! End-to-end tests against the real local lab (Prosody + ejabberd federating over verified TLS),
//! driven through the `plugfest` binary exactly as a user would. They need root: the lab lives in
//! a network namespace and its packages come from apt. The lab is brought up once (idempotently)
//! and left running; `plugfest lab down` stops it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

fn plugfest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plugfest"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// Tests that use the lab run one at a time: some of them stop and restart a server.
fn lab() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    UP.get_or_init(|| {
        assert!(nix_is_root(), "the lab tests need root (network namespaces, apt); run `cargo test` as root");
        let out = plugfest().args(["lab", "up"]).output().expect("run plugfest lab up");
        assert!(out.status.success(), "plugfest lab up failed:\n{}", text(&out));
    });
    guard
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Run `plugfest run` with a private reports folder; returns the output and the parsed results.json.
fn run(args: &[&str]) -> (Output, Value, PathBuf) {
    let reports = tempfile::tempdir().expect("tempdir").keep();
    let out = plugfest().arg("run").arg("--reports").arg(&reports).args(args).output().expect("run plugfest");
    let results = find_results(&reports).unwrap_or_else(|| panic!("no results.json written\n{}", text(&out)));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    (out, json, reports)
}

fn find_results(reports: &Path) -> Option<PathBuf> {
    std::fs::read_dir(reports).ok()?.flatten().map(|e| e.path().join("results.json")).find(|p| p.is_file())
}

fn verdicts(json: &Value) -> Vec<(String, String, String)> {
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let pair = c["roles"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect::<Vec<_>>();
            (c["scenario"].as_str().unwrap().to_string(), pair.join("→"), c["verdict"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn seed_scenarios_pass_on_every_pair() {
    let _lab = lab();
    let (out, json, _) = run(&[]);
    let v = verdicts(&json);
    let bad: Vec<_> = v.iter().filter(|(_, _, verdict)| verdict != "pass").collect();
    assert!(bad.is_empty(), "not all cases passed: {bad:?}\n{}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    // Every seed scenario ran on all four ordered pairs.
    for id in ["msg-chat-remote-bare", "roster-remote-add", "presence-show-status-priority"] {
        let pairs: Vec<_> = v.iter().filter(|(s, _, _)| s == id).map(|(_, p, _)| p.as_str()).collect();
        assert_eq!(pairs.len(), 4, "{id}: {pairs:?}");
        for p in ["prosody→prosody", "prosody→ejabberd", "ejabberd→prosody", "ejabberd→ejabberd"] {
            assert!(pairs.contains(&p), "{id} missing {p}");
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("12 passed, 0 failed, 0 skipped"), "{stdout}");
    // Every case carries the wire log of its connections, with TLS details.
    let case = &json["cases"][0];
    let conn = &case["connections"].as_array().unwrap().iter().find(|c| c["tls"].is_object()).unwrap().clone();
    assert!(conn["tls"]["version"].as_str().unwrap().starts_with("TLS"));
    assert!(!conn["transcript"].as_array().unwrap().is_empty());
}
