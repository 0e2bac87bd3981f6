//! Renderers of `results::Run`. They read results only; they never re-derive verdicts.
//!
//! Every run writes four files next to each other (see [`write_all`]): `results.json` (the one
//! source of truth), `index.html`, `junit.xml` and `summary.md`.

pub mod diff;
pub mod html;
pub mod junit;
pub mod stanza_diff;
pub mod summary;
pub mod terminal;

use crate::results::{CaseResult, Run, StepOutcome};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where [`write_all`] put each report.
#[derive(Clone, Debug)]
pub struct ReportPaths {
    pub results: PathBuf,
    pub html: PathBuf,
    pub junit: PathBuf,
    pub summary: PathBuf,
}

/// Write results.json, index.html, junit.xml and summary.md into `dir` (created if missing).
/// results.json comes first: if a renderer fails, the source of truth is already on disk.
pub fn write_all(run: &Run, dir: &Path) -> std::io::Result<ReportPaths> {
    let results = run.write_json(dir)?;
    let html = html::write(run, dir)?;
    let junit = junit::write(run, dir)?;
    let summary = summary::write(run, dir)?;
    Ok(ReportPaths { results, html, junit, summary })
}

/// What went wrong in one case, as plain text: the case's message, then per step that did not hold
/// its place in the scenario file, the spec text, and expected vs got (with a diff against the
/// closest stanza). Empty for a case whose steps all held and that has no message.
pub fn failure_text(c: &CaseResult) -> String {
    let mut out = String::new();
    let bad: Vec<_> =
        c.steps.iter().filter(|s| !matches!(s.outcome, StepOutcome::Pass | StepOutcome::NotRun)).collect();
    // The case message repeats the stopping step's; print it only when no step says more.
    if let (Some(m), true) = (&c.message, bad.iter().all(|s| s.message.is_none())) {
        let _ = writeln!(out, "{m}");
    }
    for s in bad {
        let _ = writeln!(out, "at {}:{} step {} ({}): {}", c.file, s.line, s.index + 1, s.kind, s.description);
        if let Some(m) = &s.message {
            let _ = writeln!(out, "  {m}");
        }
        if let Some(spec) = &s.spec {
            let _ = write!(out, "  {}", spec.short());
            if let Some(q) = &spec.quote {
                let _ = write!(out, ": \"{q}\"");
            }
            if let Some(u) = spec.url() {
                let _ = write!(out, " <{u}>");
            }
            out.push('\n');
        }
        if let Some(e) = &s.expected {
            let _ = writeln!(out, "  expected: {}", one_line(e));
            match s.received.len() {
                0 => {
                    let _ = writeln!(out, "  got: nothing");
                }
                n => {
                    let _ = writeln!(out, "  got ({n} stanza{} not matched):", if n == 1 { "" } else { "s" });
                    for r in &s.received {
                        let _ = writeln!(out, "    {}", one_line(r));
                    }
                }
            }
            if let Some((i, d)) = stanza_diff::closest(e, &s.received) {
                let _ = writeln!(out, "  diff, expected (-) vs received stanza {} (+):", i + 1);
                for line in stanza_diff::to_text(&d).lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
    out
}

/// When the run started, for people: `2026-11-27 01:02:53 UTC` (results.json keeps full RFC 3339).
pub(crate) fn started(run: &Run) -> String {
    match run.started_at.split_once('T') {
        Some((date, time)) => {
            let time = time.trim_end_matches('Z').split(['.', '+']).next().unwrap_or_default();
            format!("{date} {time} UTC")
        }
        None => run.started_at.clone(),
    }
}

/// Collapse the indentation between tags so a stanza fits on a line.
fn one_line(xml: &str) -> String {
    xml.lines().map(str::trim).collect::<Vec<_>>().join("")
}
