//! The reports of a real lab run, checked the way their readers use them: the HTML page in a real
//! browser (headless Chromium: what is on the page, that server text stays text, a screenshot), the
//! JUnit XML against the common JUnit schema (xmllint), and `plugfest diff` between two real runs.
//!
//! Needs root (the lab; Debian packages `chromium` and `libxml2-utils` are installed with apt when
//! missing).
//!
//! docs/report.png (shown in the README) is the same kind of screenshot, of a whole-catalog lab run:
//! `plugfest run`, then `chromium --headless --no-sandbox --hide-scrollbars --window-size=1280,1700
//! --screenshot=docs/report.png file://$PWD/reports/latest/index.html` (plus the flags below).

#[path = "support/apt.rs"]
mod apt;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SEED: &str = "scenarios/messaging/msg-chat-remote-bare.yaml";

/// A message whose stanza carries markup and quotes: a `<script>` extension element (servers must
/// route unknown children unmodified, RFC 6120 §8.4), quotes in an attribute, escaped markup in the
/// body. `{EXPECT}` is the body the scenario expects.
const MARKUP_SCENARIO: &str = r#"id: msg-markup-shown-as-text
title: "Markup from a server, <script> and \"quotes\", is shown as text"
roles: [A, B]
accounts:
  alice: {server: A}
  bob: {server: B}
actors:
  alice1: {account: alice, resource: r1}
  bob1: {account: bob, resource: r1}
steps:
  - send:
      as: alice1
      xml: >-
        <message to='${bob.bare}' type='chat' id='q&apos;&quot;1'><body>it's "quoted" &lt;b&gt;bold&lt;/b&gt;</body><script xmlns='urn:example:evil'>document.body.setAttribute("data-pwned", "yes")</script></message>
  - expect:
      to: bob1
      within: 3s
      xml: <message type='chat'><body>{EXPECT}</body></message>
      ref: {spec: RFC6120, section: '8.4', level: MUST, quote: "it MUST route the stanza unmodified"}
"#;
const BODY_SENT: &str = "it's \"quoted\" &lt;b&gt;bold&lt;/b&gt;";
const BODY_NEVER_SENT: &str = "never sent";

fn plugfest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plugfest"));
    cmd.current_dir(ROOT);
    cmd
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The lab is brought up once per test binary; runs go one at a time.
fn lab() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static UP: OnceLock<()> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    UP.get_or_init(|| {
        assert!(is_root(), "these tests need root (the lab, apt); run `cargo test` as root");
        let out = plugfest().args(["lab", "up"]).output().expect("run plugfest lab up");
        assert!(out.status.success(), "plugfest lab up failed:\n{}", text(&out));
    });
    guard
}

/// The folder a run wrote, with its four reports.
struct RunDir {
    dir: PathBuf,
    output: Output,
}

/// `plugfest run` of the markup scenario (expecting `body`) and the seed scenario, in a private
/// reports folder.
fn run_markup(body: &str) -> RunDir {
    let _lab = lab();
    let scratch = tempfile::tempdir().expect("tempdir").keep();
    // The folder name is the scenario's area in the reports.
    let area = scratch.join("messaging");
    std::fs::create_dir_all(&area).unwrap();
    let scenario = area.join("msg-markup-shown-as-text.yaml");
    std::fs::write(&scenario, MARKUP_SCENARIO.replace("{EXPECT}", body)).unwrap();
    let reports = scratch.join("reports");
    let output = plugfest()
        .args(["run", "--reports"])
        .arg(&reports)
        .arg(&scenario)
        .arg(SEED)
        .output()
        .expect("run plugfest run");
    let dir = std::fs::read_dir(&reports)
        .ok()
        .and_then(|entries| {
            // `latest` is a link to the same folder; take the folder by its run id.
            entries.flatten().map(|e| e.path()).find(|p| !p.ends_with("latest") && p.join("results.json").is_file())
        })
        .unwrap_or_else(|| panic!("no report folder written\n{}", text(&output)));
    RunDir { dir, output }
}

/// The run whose markup cases fail (so the page shows what arrived), shared by the tests below.
fn failing_run() -> &'static RunDir {
    static RUN: OnceLock<RunDir> = OnceLock::new();
    RUN.get_or_init(|| run_markup(BODY_NEVER_SENT))
}

/// Run a command to completion within `deadline`, killing it (by its PID) when it overstays.
/// Output goes to files, so a large page cannot fill a pipe nobody reads yet.
fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Output {
    let files = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (files.path().join("stdout"), files.path().join("stderr"));
    let stdout = std::fs::File::create(&out_path).expect("create stdout file");
    let stderr = std::fs::File::create(&err_path).expect("create stderr file");
    let mut child = cmd.stdout(stdout).stderr(stderr).stdin(Stdio::null()).spawn().expect("start the command");
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for the command") {
            Some(status) => break status,
            None if started.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{cmd:?} did not finish within {deadline:?}\nstderr:\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// Headless Chromium with the flags this machine needs (no sandbox as root, no background traffic
/// on a closed network) and a fresh profile.
fn chromium(profile: &Path) -> Command {
    let mut cmd = Command::new(apt::ensure_installed("chromium", "chromium"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn a_run_writes_every_report_and_says_where() {
    let run = failing_run();
    assert_eq!(run.output.status.code(), Some(1), "{}", text(&run.output));
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    for (label, file) in
        [("results:", "results.json"), ("report:", "index.html"), ("junit:", "junit.xml"), ("summary:", "summary.md")]
    {
        let path = run.dir.join(file);
        assert!(path.is_file(), "{file} missing");
        assert!(stdout.lines().any(|l| l.starts_with(label) && l.ends_with(&*path.to_string_lossy())), "{stdout}");
    }
    let summary = std::fs::read_to_string(run.dir.join("summary.md")).unwrap();
    assert!(summary.starts_with("## ✗ plugfest: something failed — 4 passed, 4 failed, 0 skipped"), "{summary}");
    assert!(summary.contains("| `msg-markup-shown-as-text` | ✗ FAIL | ✗ FAIL | ✗ FAIL | ✗ FAIL |"), "{summary}");
    assert!(summary.contains("expected: <message type='chat'><body>never sent</body></message>"), "{summary}");
}

#[test]
fn the_html_report_renders_in_chromium_with_server_text_as_text() {
    let run = failing_run();
    let page = run.dir.join("index.html");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());

    let mut dump = chromium(profile.path());
    dump.arg("--dump-dom").arg(&url);
    let out = run_with_deadline(dump, Duration::from_secs(60));
    assert!(out.status.success(), "chromium --dump-dom failed\n{}", text(&out));
    let dom = String::from_utf8_lossy(&out.stdout);

    // Our own script ran (it un-hides the filter bar), so a script of the server's would have too.
    assert!(dom.contains("<nav id=\"controls\">"), "the page's script did not run:\n{dom}");
    // The server's <script> stayed text: one script element (ours), the payload never ran, and the
    // stanza is on the page as characters.
    assert_eq!(dom.matches("<script").count(), 1, "a second script element:\n{dom}");
    assert!(!dom.contains("data-pwned=\"yes\""), "server-provided script ran");
    assert!(
        dom.contains(
            "&lt;script xmlns='urn:example:evil'&gt;document.body.setAttribute(\"data-pwned\", \"yes\")&lt;/script&gt;"
        ),
        "the received stanza is not shown as text"
    );
    assert!(dom.contains("Markup from a server, &lt;script&gt; and \"quotes\", is shown as text"));
    assert!(dom.contains("it's \"quoted\" &amp;lt;b&amp;gt;bold"), "escaped body text not shown as received");

    // What a reader needs is on the page: outcome, metadata, legend, matrices, details.
    assert!(dom.contains("Something failed"));
    assert!(dom.contains("4 passed, 4 failed, 0 skipped"));
    assert!(dom.contains("Prosody 0.12.3") && dom.contains("ejabberd 23.01"), "server software missing");
    for meaning in ["every check held", "a MUST was violated", "declared as an expected failure, but passed"] {
        assert!(dom.contains(meaning), "legend lacks {meaning:?}");
    }
    assert!(dom.contains("id=\"area-messaging\""));
    for pair in ["prosody--prosody", "prosody--ejabberd", "ejabberd--prosody", "ejabberd--ejabberd"] {
        let anchor = format!("case-msg-markup-shown-as-text--{pair}");
        assert!(dom.contains(&format!("<a href=\"#{anchor}\">")), "no matrix link to {anchor}");
        assert!(dom.contains(&format!("id=\"{anchor}\"")), "no case {anchor}");
    }
    assert!(dom.contains("<span class=\"sym\" aria-hidden=\"true\">✗</span> FAIL"));
    assert!(dom.contains("<span class=\"sym\" aria-hidden=\"true\">✓</span> pass"));
    // The failing case is open, with its diff, spec link and wire log.
    assert!(
        dom.contains("id=\"case-msg-markup-shown-as-text--prosody--ejabberd\" data-name=\"msg-markup-shown-as-text[prosody→ejabberd] messaging\" open=\"\""),
        "the failing case is not open"
    );
    assert!(dom.contains("<span class=\"dl missing\">−   &lt;body&gt;never sent&lt;/body&gt;</span>"), "no diff");
    assert!(dom.contains("href=\"https://www.rfc-editor.org/rfc/rfc6120#section-8.4\""));
    assert!(dom.contains("TLSv1.3"));
    assert!(dom.contains("<table class=\"wire\">"));

    // A screenshot of the real page.
    let shot = profile.path().join("report.png");
    let mut screenshot = chromium(profile.path());
    screenshot.arg("--window-size=1280,1700").arg(format!("--screenshot={}", shot.display())).arg(&url);
    let out = run_with_deadline(screenshot, Duration::from_secs(60));
    assert!(out.status.success(), "chromium --screenshot failed\n{}", text(&out));
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "not a real screenshot ({} bytes)", png.len());
}

#[test]
fn junit_validates_against_the_junit_schema() {
    let run = failing_run();
    let junit = run.dir.join("junit.xml");
    let xmllint = apt::ensure_installed("xmllint", "libxml2-utils");
    let schema = Path::new(ROOT).join("tests/data/junit-10.xsd");
    let out = Command::new(xmllint).arg("--noout").arg("--schema").arg(&schema).arg(&junit).output().unwrap();
    assert!(out.status.success(), "junit.xml does not validate:\n{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validates"));

    let xml = std::fs::read_to_string(&junit).unwrap();
    // One suite per ordered server pair, every case with a name and a classname.
    for pair in ["prosody→prosody", "prosody→ejabberd", "ejabberd→prosody", "ejabberd→ejabberd"] {
        assert!(xml.contains(&format!("<testsuite name=\"{pair}\" tests=\"2\"")), "suite {pair}:\n{xml}");
    }
    let testcases: Vec<&str> = xml.split("<testcase ").skip(1).collect();
    assert_eq!(testcases.len(), 8);
    for tc in &testcases {
        assert!(tc.starts_with("name=\"") && tc.contains(" classname=\""), "{tc}");
    }
    assert!(xml.contains("classname=\"messaging.msg-markup-shown-as-text\""));
    assert!(xml.contains("<property name=\"spec:msg-markup-shown-as-text\" value=\"MUST RFC6120 §8.4"));
    // The failure says expected vs got.
    assert_eq!(xml.matches("<failure ").count(), 4);
    assert!(xml.contains("expected: &lt;message type=&apos;chat&apos;&gt;&lt;body&gt;never sent"), "{xml}");
    assert!(xml.contains("got (") && xml.contains("urn:example:evil"));
}

#[test]
fn diff_of_two_real_runs_finds_the_regressions() {
    let good = run_markup(BODY_SENT);
    assert!(good.output.status.success(), "{}", text(&good.output));
    let bad = failing_run();
    let old = good.dir.join("results.json");
    let new = bad.dir.join("results.json");

    let out = plugfest().arg("diff").arg(&old).arg(&new).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("REGRESSIONS (4):"), "{stdout}");
    assert!(stdout.contains("msg-markup-shown-as-text[prosody→ejabberd]: pass → fail"), "{stdout}");
    assert!(stdout.contains("4 regressions, 0 fixes, 0 other changes, 0 new, 0 removed, 4 unchanged"), "{stdout}");

    // The other way round these are fixes; folders work as well as files.
    let out = plugfest().arg("diff").arg(&bad.dir).arg(&good.dir).arg("--markdown").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let markdown = String::from_utf8_lossy(&out.stdout);
    assert!(markdown.contains("### Fixes (4)"), "{markdown}");

    let out = plugfest().arg("diff").arg(&old).arg("/nonexistent/results.json").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/results.json"));
}
