//! Every area's scenarios can fail: for one scenario per area, a deliberately wrong expectation
//! (the server behaves as before; the scenario now asks for something else) turns every cell of
//! that scenario red, with a message that names the step's line and what differs. Runs against
//! the real lab, through the `plugfest` binary, on a copy of the scenarios.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (scenario file under scenarios/, text in one expectation, wrong text, a phrase the failure must say)
const BREAKAGES: [(&str, &str, &str, &str); 7] = [
    (
        "roster/roster-get-empty.yaml",
        "expect: \"<iq type='result' id='g1'>",
        "expect: \"<iq type='error' id='g1'>",
        "attribute 'type' is 'result' not 'error'",
    ),
    (
        "presence/presence-directed-crossdomain.yaml",
        "id='dp1' type='{absent}'><show>chat</show>",
        "id='dp1' type='{absent}'><show>dnd</show>",
        "text is 'chat' not 'dnd'",
    ),
    (
        "messaging/msg-chat-remote-bare.yaml",
        "xml: <message from='${alice1.full}' id='m1' type='chat'/>",
        "xml: <message from='${alice1.full}' id='m1' type='headline'/>",
        "attribute 'type' is 'chat' not 'headline'",
    ),
    (
        "avatars/avatar-vcard-hash-presence.yaml",
        "xml: <presence from='${alice1.full}' id='av1'><x xmlns='vcard-temp:x:update'><photo>5de3df5ff7587c95f622b5d1812fb69d32cba609",
        "xml: <presence from='${alice1.full}' id='av1'><x xmlns='vcard-temp:x:update'><photo>0000000000000000000000000000000000000000",
        "text is '5de3df5ff7587c95f622b5d1812fb69d32cba609' not '000000",
    ),
    (
        "unicode/utf8-body-roundtrip.yaml",
        "xml: <message from='${alice1.full}' id='b1' type='chat'><body>${str.body_set}</body>",
        "xml: <message from='${alice1.full}' id='b1' type='chat'><body>${str.body_set}\u{301}</body>",
        "text is '",
    ),
    (
        "s2s/s2s-inbound-external-valid.yaml",
        "xml: \"<negotiated xmlns='urn:plugfest:s2s' tls='yes' auth='sasl-external' result='authenticated'/>\"",
        "xml: \"<negotiated xmlns='urn:plugfest:s2s' tls='yes' auth='sasl-external' result='refused'/>\"",
        "attribute 'result' is 'authenticated' not 'refused'",
    ),
    (
        "disco/disco-remote-server.yaml",
        "<feature var='http://jabber.org/protocol/disco#info'/></query></iq>",
        "<feature var='urn:example:no-such-feature'/></query></iq>",
        "urn:example:no-such-feature",
    ),
];

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_wrong_expectation_turns_each_area_red() {
    assert!(is_root(), "needs root for the lab (network namespaces, apt); run `cargo test` as root");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plugfest = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_plugfest"));
        c.current_dir(root);
        c
    };
    let up = plugfest().args(["lab", "up"]).output().unwrap();
    assert!(up.status.success(), "lab up: {}", String::from_utf8_lossy(&up.stderr));

    // A copy of the scenarios (with their fixtures and sample strings) to break.
    let work = tempfile::tempdir().unwrap();
    copy_dir(&root.join("scenarios"), &work.path().join("scenarios"));
    copy_dir(&root.join("fixtures"), &work.path().join("fixtures"));
    let mut files: Vec<PathBuf> = Vec::new();
    for (file, good, bad, _) in BREAKAGES {
        let path = work.path().join("scenarios").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(good), "{file} no longer contains {good:?}: update this test");
        std::fs::write(&path, text.replacen(good, bad, 1)).unwrap();
        files.push(path);
    }

    let reports = tempfile::tempdir().unwrap();
    let out = plugfest().args(["run", "--reruns", "0", "--reports"]).arg(reports.path()).args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let results = std::fs::read_dir(reports.path())
        .unwrap()
        .flatten()
        .map(|e| e.path().join("results.json"))
        .find(|p| p.is_file())
        .unwrap();
    let run: Value = serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    for (file, _, _, phrase) in BREAKAGES {
        let id = Path::new(file).file_stem().unwrap().to_str().unwrap();
        let cases: Vec<&Value> = run["cases"].as_array().unwrap().iter().filter(|c| c["scenario"] == id).collect();
        assert!(!cases.is_empty(), "{id} did not run");
        for c in cases {
            let name = format!("{id}{}", c["roles"]);
            // Broken on purpose: red (a declared expected failure may absorb it as xfail — not here:
            // each broken step is one the lab's servers pass).
            assert_eq!(c["verdict"], "fail", "{name}: {}", c["message"]);
            let step = c["steps"].as_array().unwrap().iter().find(|s| s["outcome"] == "fail").unwrap();
            let message = step["message"].as_str().unwrap();
            assert!(message.contains(phrase), "{name}: {message:?} does not say {phrase:?}");
            assert!(stdout.contains(&format!("{id}.yaml:{}", step["line"])), "{name}: no file:line in the report");
        }
    }
}
