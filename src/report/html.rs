//! The HTML compatibility report: one self-contained page (inline CSS, a little optional JS) with the
//! server × server matrices, a legend, totals, run metadata, and per case the step timeline, expected
//! vs received as a diff, the spec text, TLS details and the wire log of every connection.
//!
//! The page is built from a view model computed here and laid out by minijinja templates compiled
//! into the binary, with auto-escaping on: every piece of text (most of it came from servers) is
//! escaped by the template engine; nothing is marked safe except our own CSS and JS.

use super::stanza_diff::{self, DiffLine};
use crate::results::{CaseResult, Run, StepOutcome, StepResult, Verdict};
use crate::xmpp::Direction;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

const PAGE: &str = include_str!("templates/report.html");
const CSS: &str = include_str!("templates/report.css");
const JS: &str = include_str!("templates/report.js");

/// Render the whole report page.
pub fn render(run: &Run) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // Escape everything HTML, whatever a template's name; CSS and JS are ours and included raw.
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", PAGE)?;
    env.add_template("report.css", CSS)?;
    env.add_template("report.js", JS)?;
    env.get_template("report.html")?.render(Page::of(run))
}

/// Write `<dir>/index.html` and return its path.
pub fn write(run: &Run, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let html = render(run).map_err(|e| std::io::Error::other(format!("cannot render the HTML report: {e:#}")))?;
    let path = dir.join("index.html");
    std::fs::write(&path, html)?;
    Ok(path)
}

#[derive(Serialize)]
struct Page {
    run_id: String,
    plugfest_version: String,
    started_at: String,
    duration: String,
    servers_file: String,
    servers: Vec<ServerView>,
    case_count: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
    succeeded: bool,
    totals: Vec<Count>,
    legend: Vec<LegendRow>,
    areas: Vec<AreaView>,
    cases: Vec<CaseView>,
}

#[derive(Serialize)]
struct ServerView {
    name: String,
    domain: String,
    software: Option<String>,
    version: Option<String>,
}

/// How a verdict or step outcome looks: CSS class, symbol, word.
#[derive(Clone, Serialize)]
struct Badge {
    class: String,
    symbol: &'static str,
    label: String,
}

fn verdict_badge(v: Verdict) -> Badge {
    let label = if v.is_failure() { v.as_str().to_uppercase() } else { v.as_str().to_string() };
    Badge { class: format!("v-{}", v.as_str()), symbol: v.symbol(), label }
}

fn outcome_badge(o: StepOutcome) -> Badge {
    let (name, symbol) = match o {
        StepOutcome::Pass => ("pass", "✓"),
        StepOutcome::Fail => ("fail", "✗"),
        StepOutcome::Warn => ("warn", "!"),
        StepOutcome::Info => ("info", "i"),
        StepOutcome::Error => ("error", "E"),
        StepOutcome::NotRun => ("not run", "·"),
    };
    Badge { class: format!("o-{}", name.replace(' ', "")), symbol, label: name.to_string() }
}

#[derive(Serialize)]
struct Count {
    badge: Badge,
    count: usize,
}

#[derive(Serialize)]
struct LegendRow {
    badge: Badge,
    meaning: &'static str,
}

#[derive(Serialize)]
struct AreaView {
    name: String,
    anchor: String,
    counts: Vec<Count>,
    /// Server × server, worst verdict of the area's two-role cases; None when it has none.
    matrix: Option<Matrix>,
    scenarios: Vec<ScenarioView>,
}

#[derive(Serialize)]
struct ScenarioView {
    id: String,
    /// Something in it is not a pass or an expected failure.
    problem: bool,
    title: String,
    file: String,
    worst: Badge,
    matrix: Matrix,
}

/// A grid of cells: rows × columns, each labelled.
#[derive(Serialize)]
struct Matrix {
    /// What the corner says, e.g. `A \ B`.
    corner: String,
    columns: Vec<String>,
    rows: Vec<MatrixRow>,
}

#[derive(Serialize)]
struct MatrixRow {
    label: String,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct Cell {
    badge: Option<Badge>,
    /// Extra text, e.g. `3/4 ok` in an area matrix.
    note: String,
    href: Option<String>,
    title: String,
}

#[derive(Serialize)]
struct CaseView {
    anchor: String,
    name: String,
    scenario: String,
    title: String,
    file: String,
    area: String,
    roles: Vec<(String, String)>,
    badge: Badge,
    problem: bool,
    message: Option<String>,
    duration: String,
    specs: Vec<SpecView>,
    steps: Vec<StepView>,
    connections: Vec<ConnectionView>,
}

#[derive(Serialize)]
struct SpecView {
    short: String,
    level: &'static str,
    quote: Option<String>,
    url: Option<String>,
}

#[derive(Serialize)]
struct StepView {
    number: usize,
    line: usize,
    kind: String,
    description: String,
    badge: Badge,
    duration: String,
    spec: Option<SpecView>,
    message: Option<String>,
    /// Show expected/received (for checks that did not hold).
    detailed: bool,
    expected: Option<String>,
    received: Vec<String>,
    /// Expected vs the closest received stanza, and which one that was (1-based).
    diff: Option<Vec<DiffLine>>,
    diff_against: usize,
}

#[derive(Serialize)]
struct ConnectionView {
    actor: String,
    server: String,
    jid: String,
    tls: Option<TlsView>,
    /// For a peer actor's s2s leg: one line per fact (certificate, authentication, outcome).
    s2s: Vec<(String, String)>,
    entries: Vec<EntryView>,
}

#[derive(Serialize)]
struct TlsView {
    version: String,
    cipher: String,
    verified_for: String,
    chain: Vec<String>,
    pem: String,
}

#[derive(Serialize)]
struct EntryView {
    t: String,
    class: &'static str,
    arrow: &'static str,
    text: String,
}

impl Page {
    fn of(run: &Run) -> Page {
        let totals = run.totals();
        let servers = server_names(run);
        let anchors = anchors(&run.cases);
        let cases: Vec<CaseView> = run.cases.iter().zip(&anchors).map(|(c, a)| CaseView::of(c, a)).collect();
        Page {
            run_id: run.run_id.clone(),
            plugfest_version: run.plugfest_version.clone(),
            started_at: super::started(run),
            duration: seconds(run.duration_ms),
            servers_file: run.servers_file.clone(),
            servers: run
                .servers
                .iter()
                .map(|s| ServerView {
                    name: s.name.clone(),
                    domain: s.domain.clone(),
                    software: s.software.clone(),
                    version: s.version.clone(),
                })
                .collect(),
            case_count: run.cases.len(),
            passed: totals.passed(),
            failed: totals.failed(),
            skipped: totals.skipped(),
            succeeded: run.succeeded(),
            totals: Verdict::ALL.iter().map(|&v| Count { badge: verdict_badge(v), count: totals.get(v) }).collect(),
            legend: Verdict::ALL.iter().map(|&v| LegendRow { badge: verdict_badge(v), meaning: v.meaning() }).collect(),
            areas: areas(run, &servers, &anchors),
            cases,
        }
    }
}

/// Server names in servers-file order, then any a case names that the list lacks.
fn server_names(run: &Run) -> Vec<String> {
    let mut names: Vec<String> = run.servers.iter().map(|s| s.name.clone()).collect();
    for c in &run.cases {
        for s in c.roles.values() {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
    }
    names
}

/// A stable, unique element id per case, from its name.
fn anchors(cases: &[CaseResult]) -> Vec<String> {
    let mut seen = HashSet::new();
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let base = format!(
                "case-{}",
                slug(&format!("{}--{}", c.scenario, c.roles.values().cloned().collect::<Vec<_>>().join("--")))
            );
            if seen.insert(base.clone()) {
                base
            } else {
                format!("{base}-{i}")
            }
        })
        .collect()
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn worst<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Option<&'a CaseResult> {
    cases.into_iter().max_by_key(|c| c.verdict.severity())
}

fn counts<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Vec<Count> {
    let mut by: BTreeMap<Verdict, usize> = BTreeMap::new();
    for c in cases {
        *by.entry(c.verdict).or_default() += 1;
    }
    Verdict::ALL.iter().filter_map(|v| by.get(v).map(|&count| Count { badge: verdict_badge(*v), count })).collect()
}

fn areas(run: &Run, servers: &[String], anchors: &[String]) -> Vec<AreaView> {
    let mut order: Vec<String> = Vec::new();
    for c in &run.cases {
        let a = c.area();
        if !order.contains(&a) {
            order.push(a);
        }
    }
    let anchor_of = |c: &CaseResult| -> String {
        let i = run.cases.iter().position(|x| std::ptr::eq(x, c)).unwrap_or(0);
        format!("#{}", anchors[i])
    };
    order
        .into_iter()
        .map(|area| {
            let in_area: Vec<&CaseResult> = run.cases.iter().filter(|c| c.area() == area).collect();
            let pairs: Vec<&CaseResult> = in_area.iter().copied().filter(|c| c.roles.len() == 2).collect();
            let matrix = (!pairs.is_empty()).then(|| {
                pair_matrix("A \\ B".into(), servers, |row, col| {
                    let here: Vec<&CaseResult> = pairs.iter().copied().filter(|c| roles_are(c, &[row, col])).collect();
                    let ok = here.iter().filter(|c| !c.verdict.is_failure()).count();
                    match worst(here.iter().copied()) {
                        Some(w) => Cell {
                            badge: Some(verdict_badge(w.verdict)),
                            note: format!("{ok}/{} ok", here.len()),
                            href: Some(anchor_of(w)),
                            title: here
                                .iter()
                                .map(|c| format!("{}: {}", c.scenario, c.verdict.as_str()))
                                .collect::<Vec<_>>()
                                .join("\n"),
                        },
                        None => empty_cell(),
                    }
                })
            });
            let mut ids: Vec<&str> = Vec::new();
            for c in &in_area {
                if !ids.contains(&c.scenario.as_str()) {
                    ids.push(&c.scenario);
                }
            }
            let scenarios = ids
                .iter()
                .map(|id| {
                    let cases: Vec<&CaseResult> = in_area.iter().copied().filter(|c| c.scenario == *id).collect();
                    scenario_view(&cases, servers, &anchor_of)
                })
                .collect();
            AreaView {
                anchor: format!("area-{}", slug(&area)),
                counts: counts(in_area.iter().copied()),
                name: area,
                matrix,
                scenarios,
            }
        })
        .collect()
}

fn roles_are(c: &CaseResult, servers: &[&String]) -> bool {
    c.roles.values().zip(servers).all(|(a, b)| a == *b) && c.roles.len() == servers.len()
}

fn empty_cell() -> Cell {
    Cell { badge: None, note: "·".into(), href: None, title: "not run in this run".into() }
}

fn case_cell(c: &CaseResult, anchor_of: &dyn Fn(&CaseResult) -> String) -> Cell {
    Cell {
        badge: Some(verdict_badge(c.verdict)),
        note: String::new(),
        href: Some(anchor_of(c)),
        title: format!(
            "{}: {}{}",
            c.name(),
            c.verdict.as_str(),
            c.message.as_ref().map(|m| format!(" — {m}")).unwrap_or_default()
        ),
    }
}

/// One scenario's cases as a matrix: rows A × columns B for two roles, one row for one role,
/// one row per case otherwise.
/// A server × server matrix (rows: role A's server, columns: role B's), one cell per pair.
fn pair_matrix(corner: String, servers: &[String], cell: impl Fn(&String, &String) -> Cell) -> Matrix {
    Matrix {
        corner,
        columns: servers.to_vec(),
        rows: servers
            .iter()
            .map(|row| MatrixRow { label: row.clone(), cells: servers.iter().map(|col| cell(row, col)).collect() })
            .collect(),
    }
}

fn scenario_view(cases: &[&CaseResult], servers: &[String], anchor_of: &dyn Fn(&CaseResult) -> String) -> ScenarioView {
    let first = cases[0];
    let roles: Vec<&String> = first.roles.keys().collect();
    let matrix = match roles.as_slice() {
        [a, b] => pair_matrix(format!("{a} \\ {b}"), servers, |row, col| {
            match cases.iter().find(|c| roles_are(c, &[row, col])) {
                Some(c) => case_cell(c, anchor_of),
                None => empty_cell(),
            }
        }),
        [a] => Matrix {
            corner: String::new(),
            columns: servers.to_vec(),
            rows: vec![MatrixRow {
                label: (*a).clone(),
                cells: servers
                    .iter()
                    .map(|s| match cases.iter().find(|c| roles_are(c, &[s])) {
                        Some(c) => case_cell(c, anchor_of),
                        None => empty_cell(),
                    })
                    .collect(),
            }],
        },
        _ => Matrix {
            corner: roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" · "),
            columns: vec!["verdict".into()],
            rows: cases.iter().map(|c| MatrixRow { label: c.pair(), cells: vec![case_cell(c, anchor_of)] }).collect(),
        },
    };
    let worst = worst(cases.iter().copied()).map(|c| c.verdict).unwrap_or(Verdict::Pass);
    ScenarioView {
        id: first.scenario.clone(),
        problem: !matches!(worst, Verdict::Pass | Verdict::Xfail),
        title: first.title.clone(),
        file: first.file.clone(),
        worst: verdict_badge(worst),
        matrix,
    }
}

impl CaseView {
    fn of(c: &CaseResult, anchor: &str) -> CaseView {
        CaseView {
            anchor: anchor.to_string(),
            name: c.name(),
            scenario: c.scenario.clone(),
            title: c.title.clone(),
            file: c.file.clone(),
            area: c.area(),
            roles: c.roles.iter().map(|(r, s)| (r.clone(), s.clone())).collect(),
            badge: verdict_badge(c.verdict),
            problem: !matches!(c.verdict, Verdict::Pass | Verdict::Xfail),
            // The case message repeats the stopping step's; show it only when no step says more.
            message: c
                .message
                .clone()
                .filter(|_| !c.steps.iter().any(|s| s.message.is_some() && !matches!(s.outcome, StepOutcome::Pass))),
            duration: seconds(c.duration_ms),
            specs: c.spec_refs().into_iter().map(SpecView::of).collect(),
            steps: c.steps.iter().map(StepView::of).collect(),
            connections: c.connections.iter().map(ConnectionView::of).collect(),
        }
    }
}

impl SpecView {
    fn of(s: &crate::results::SpecRef) -> SpecView {
        SpecView { short: s.short(), level: s.level.as_str(), quote: s.quote.clone(), url: s.url() }
    }
}

impl StepView {
    fn of(s: &StepResult) -> StepView {
        let detailed = !matches!(s.outcome, StepOutcome::Pass | StepOutcome::NotRun);
        let closest = match (&s.expected, detailed) {
            (Some(e), true) => stanza_diff::closest(e, &s.received),
            _ => None,
        };
        StepView {
            number: s.index + 1,
            line: s.line,
            kind: s.kind.clone(),
            description: s.description.clone(),
            badge: outcome_badge(s.outcome),
            duration: format!("{} ms", s.duration_ms),
            spec: s.spec.as_ref().map(SpecView::of),
            message: s.message.clone(),
            detailed,
            expected: s.expected.clone(),
            received: s.received.clone(),
            diff_against: closest.as_ref().map(|(i, _)| i + 1).unwrap_or(0),
            diff: closest.map(|(_, d)| d),
        }
    }
}

/// What a peer actor's leg shows above its wire log.
fn s2s_facts(leg: &crate::xmpp::s2s::LegRecord) -> Vec<(String, String)> {
    let mut facts = vec![("direction".to_string(), format!("{:?}", leg.kind).to_lowercase())];
    if let Some(cert) = &leg.cert_presented {
        facts.push(("harness presented".into(), format!("the `{cert}` certificate")));
    }
    if let Some(sni) = &leg.sni {
        facts.push(("SNI asked for".into(), sni.clone()));
    }
    if let Some(check) = &leg.peer_cert {
        facts.push(("server's certificate".into(), check.summary()));
    }
    for auth in &leg.auth {
        let result = if auth.succeeded { "succeeded" } else { "failed" };
        facts.push((
            "authentication".into(),
            format!("{:?} for {}: {result} ({})", auth.method, auth.domain, auth.detail),
        ));
    }
    for verify in &leg.dialback_verifies {
        facts.push(("dialback verify".into(), format!("from {}: answered {}", verify.from, verify.answered)));
    }
    facts.push(("stanzas".into(), format!("{} in, {} out", leg.stanzas_in, leg.stanzas_out)));
    if let Some(outcome) = &leg.outcome {
        facts.push(("outcome".into(), outcome.clone()));
    }
    facts
}

impl ConnectionView {
    fn of(c: &crate::results::ConnectionRecord) -> ConnectionView {
        ConnectionView {
            actor: c.actor.clone(),
            server: c.server.clone(),
            jid: c.jid.clone(),
            tls: c.tls.as_ref().map(|t| TlsView {
                version: t.version.clone(),
                cipher: t.cipher.clone(),
                verified_for: t.verified_for.clone(),
                chain: t.peer_chain.clone(),
                pem: t.peer_chain_pem.join(""),
            }),
            s2s: c.s2s.as_deref().map(s2s_facts).unwrap_or_default(),
            entries: c
                .transcript
                .iter()
                .map(|e| {
                    let (class, arrow) = match e.dir {
                        Direction::Out => ("out", "→"),
                        Direction::In => ("in", "←"),
                        Direction::Note => ("note", "·"),
                    };
                    let text = match (&e.text, &e.base64) {
                        (Some(t), _) => t.clone(),
                        (None, Some(b)) => format!("(not UTF-8; base64) {b}"),
                        (None, None) => String::new(),
                    };
                    EntryView { t: format!("{:.3}", e.t_ms), class, arrow, text }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::{ConnectionRecord, Level, ServerSummary, SpecRef, SCHEMA_VERSION};
    use crate::xmpp::TranscriptEntry;

    /// Server-provided text with markup and both kinds of quotes, as a stanza and as plain text.
    const EVIL_STANZA: &str = "<message from='alice@prosody.lab/r1' id='&apos;&quot;'><script xmlns='urn:evil'>document.body.dataset.pwned=\"1\"</script><body>it's \"quoted\" &lt;b&gt;</body></message>";
    const EVIL_TEXT: &str = "<script>alert(\"x\")</script> it's";

    fn case(verdict: Verdict, pair: [&str; 2]) -> CaseResult {
        CaseResult {
            scenario: "msg-evil".into(),
            title: format!("Title with {EVIL_TEXT}"),
            file: "scenarios/messaging/msg-evil.yaml".into(),
            roles: BTreeMap::from([("A".to_string(), pair[0].to_string()), ("B".to_string(), pair[1].to_string())]),
            verdict,
            message: Some(format!("line 12: bob1 received nothing matching; closest {EVIL_TEXT}")),
            duration_ms: 1234,
            steps: vec![StepResult {
                index: 1,
                kind: "expect".into(),
                line: 12,
                description: format!("bob1 receives {EVIL_TEXT}"),
                outcome: if verdict == Verdict::Pass { StepOutcome::Pass } else { StepOutcome::Fail },
                duration_ms: 5000,
                spec: Some(SpecRef {
                    spec: "RFC6120".into(),
                    section: "8.1.2.1".into(),
                    level: Level::MUST,
                    quote: Some(format!("quote {EVIL_TEXT}")),
                }),
                expected: Some("<message from='alice@prosody.lab/r1'><body>never</body></message>".into()),
                received: vec![EVIL_STANZA.into()],
                message: Some(format!("step message {EVIL_TEXT}")),
            }],
            connections: vec![ConnectionRecord {
                actor: "bob1".into(),
                server: pair[1].into(),
                jid: "bob@ejabberd.lab/r1".into(),
                tls: None,
                s2s: None,
                transcript: vec![TranscriptEntry {
                    t_ms: 1.5,
                    dir: Direction::In,
                    text: Some(EVIL_STANZA.into()),
                    base64: None,
                }],
            }],
            rerun: None,
        }
    }

    pub(crate) fn synthetic_run() -> Run {
        let mut cases = vec![
            case(Verdict::Pass, ["prosody", "prosody"]),
            case(Verdict::Fail, ["prosody", "ejabberd"]),
            case(Verdict::Xfail, ["ejabberd", "prosody"]),
            case(Verdict::Error, ["ejabberd", "ejabberd"]),
        ];
        for (i, v) in [Verdict::Warn, Verdict::Skip, Verdict::Xpass].into_iter().enumerate() {
            let mut c = case(v, ["prosody", "ejabberd"]);
            c.scenario = format!("other-{i}");
            c.file = "scenarios/roster/other.yaml".into();
            cases.push(c);
        }
        Run {
            schema_version: SCHEMA_VERSION,
            run_id: "20261127-000000-test".into(),
            plugfest_version: "0.1.0".into(),
            started_at: "2026-11-27T00:00:00.123Z".into(),
            duration_ms: 4321,
            servers_file: "servers.yaml".into(),
            servers: ["prosody", "ejabberd"]
                .iter()
                .map(|n| ServerSummary {
                    name: n.to_string(),
                    domain: format!("{n}.lab"),
                    software: Some(format!("{n} <b>1.0</b>")),
                    version: Some(format!("{n} 1.0 {EVIL_TEXT}")),
                })
                .collect(),
            cases,
        }
    }

    #[test]
    fn server_text_is_escaped_everywhere() {
        let html = render(&synthetic_run()).expect("renders");
        // No markup from the run survives as markup: the only <script> is our own one.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(!html.contains("<b>1.0</b>"));
        assert!(!html.contains("<body>it's"));
        // It is all there, as text.
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt; it&#x27;s"),
            "escaped text missing"
        );
        assert!(html.contains("&lt;script xmlns=&#x27;urn:evil&#x27;&gt;"), "escaped stanza missing");
    }

    #[test]
    fn every_verdict_has_its_badge_and_the_legend_lists_all() {
        let html = render(&synthetic_run()).expect("renders");
        for v in Verdict::ALL {
            assert!(html.contains(&format!("class=\"badge v-{}\"", v.as_str())), "{v:?}");
            assert!(html.contains(v.meaning()), "legend lacks {v:?}");
        }
        // Matrix cells link to the case details, whose anchors exist.
        assert!(html.contains("href=\"#case-msg-evil--prosody--ejabberd\""));
        assert!(html.contains("id=\"case-msg-evil--prosody--ejabberd\""));
        // The failing step shows the diff and the spec link.
        // (minijinja escapes '/' too; a browser reads the entity back.)
        assert!(html.contains("href=\"https:&#x2f;&#x2f;www.rfc-editor.org&#x2f;rfc&#x2f;rfc6120#section-8.1.2.1\""));
        assert!(html.contains("class=\"diff\""));
    }

    #[test]
    fn the_page_is_self_contained() {
        let html = render(&synthetic_run()).expect("renders");
        for external in ["<link", "src=\"http", "src='http", "@import", "url("] {
            assert!(!html.contains(external), "external reference {external}");
        }
    }
}
