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

/// The three scenarios of the first slice: messaging, roster and presence across domains.
/// Verdicts that do not fail a run on the healthy lab.
const ACCEPTABLE: [&str; 3] = ["pass", "warn", "xfail"];

const SEEDS: [&str; 3] = [
    "scenarios/messaging/msg-chat-remote-bare.yaml",
    "scenarios/roster/roster-remote-add.yaml",
    "scenarios/presence/presence-show-status-priority.yaml",
];

#[test]
fn seed_scenarios_pass_on_every_pair() {
    let _lab = lab();
    let (out, json, _) = run(&SEEDS);
    let v = verdicts(&json);
    // Green means pass, a SHOULD-level warning, or a failure the lab declares as expected (with evidence).
    let bad: Vec<_> = v.iter().filter(|(_, _, verdict)| !ACCEPTABLE.contains(&verdict.as_str())).collect();
    assert!(bad.is_empty(), "cases failed: {bad:?}\n{}", text(&out));
    assert!(v.iter().any(|(_, _, verdict)| verdict == "pass"));
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

/// A scenario whose expectation can never hold turns exactly its cells red, with a message that
/// says what was expected, that nothing matching arrived, and where the step is.
#[test]
fn a_wrong_expectation_fails_exactly_its_cells_with_a_clear_message() {
    let _lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong-body.yaml");
    std::fs::write(
        &file,
        "id: wrong-body\n\
         title: expects a body that is never sent\n\
         roles: [A, B]\n\
         accounts:\n  alice: {server: A}\n  bob: {server: B}\n\
         actors:\n  alice1: {account: alice, resource: r1}\n  bob1: {account: bob, resource: r1}\n\
         steps:\n\
         \x20 - send: {as: alice1, xml: \"<message to='${bob.bare}' type='chat'><body>sent</body></message>\"}\n\
         \x20 - expect:\n\
         \x20     to: bob1\n\
         \x20     within: 3s\n\
         \x20     xml: \"<message type='chat'><body>never sent</body></message>\"\n\
         \x20     ref: {spec: RFC6120, section: '8.4', level: MUST}\n",
    )
    .unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/messaging/msg-chat-remote-bare.yaml");
    let (out, json, _) = run(&[file.to_str().unwrap(), seed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = verdicts(&json);
    let wrong: Vec<_> = v.iter().filter(|(s, _, _)| s == "wrong-body").collect();
    assert_eq!(wrong.len(), 4);
    assert!(wrong.iter().all(|(_, _, verdict)| verdict == "fail"), "{wrong:?}");
    let seed_cases: Vec<_> = v.iter().filter(|(s, _, _)| s == "msg-chat-remote-bare").collect();
    assert!(seed_cases.iter().all(|(_, _, verdict)| ACCEPTABLE.contains(&verdict.as_str())), "{seed_cases:?}");

    let case = json["cases"].as_array().unwrap().iter().find(|c| c["scenario"] == "wrong-body").unwrap();
    let step = case["steps"].as_array().unwrap().iter().find(|s| s["outcome"] == "fail").unwrap();
    assert_eq!(step["line"], 12);
    assert!(step["expected"].as_str().unwrap().contains("never sent"));
    assert!(step["received"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().contains("<body>sent</body>")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("wrong-body.yaml:12"), "{stdout}");
    assert!(stdout.contains("4 passed, 4 failed, 0 skipped"), "{stdout}");
}

/// PID of a running lab component, from `plugfest lab status`.
fn lab_pid(component: &str) -> u32 {
    let out = plugfest().args(["lab", "status"]).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    status
        .lines()
        .find(|l| l.trim_start().starts_with(component))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "pid").nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid for {component} in:\n{status}"))
}

/// A server dying in the middle of a run: its cells end with a clear error within their
/// deadlines, the other server's own cells still pass, results.json is written, and
/// `lab up` brings the lab back.
#[test]
fn a_server_killed_during_a_run_fails_only_its_cells() {
    use std::io::{BufRead, BufReader};
    let _lab = lab();
    let reports = tempfile::tempdir().unwrap();
    let mut child = plugfest()
        .args(["run", "--reports"])
        .arg(reports.path())
        .args(SEEDS)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill ejabberd (the Erlang VM, SIGKILL: no goodbye) as soon as the first case finished.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("[1/") {
            break;
        }
    }
    let pid = lab_pid("ejabberd");
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", String::from_utf8_lossy(&out.stdout), rest.join("\n"));

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(find_results(reports.path()).unwrap()).unwrap()).unwrap();
    let v = verdicts(&json);
    assert_eq!(v.len(), 12);
    for (scenario, pair, verdict) in &v {
        if pair == "prosody→prosody" {
            assert!(ACCEPTABLE.contains(&verdict.as_str()), "{scenario}[{pair}]: {verdict}");
        }
    }
    let broken: Vec<_> = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !ACCEPTABLE.contains(&c["verdict"].as_str().unwrap()))
        .collect();
    assert!(!broken.is_empty(), "killing ejabberd changed nothing: {v:?}");
    for c in &broken {
        assert!(c["roles"].as_object().unwrap().values().any(|s| s == "ejabberd"), "{c}");
        let said = format!("{} {}", c["message"], c["steps"]);
        assert!(said.contains("ejabberd") || said.contains("remote-server"), "unclear failure: {said}");
    }

    // The lab notices and recovers.
    let status = plugfest().args(["lab", "status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("partly up"));
    let up = plugfest().args(["lab", "up"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(String::from_utf8_lossy(&plugfest().args(["lab", "status"]).output().unwrap().stdout).contains(": up"));
}
