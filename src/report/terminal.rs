//! The terminal report: one matrix per scenario, the failures in detail, and a summary line.

use crate::results::{CaseResult, Run, StepOutcome, Verdict};
use console::Style;
use std::fmt::Write as _;

/// Short cell text for a verdict; the word itself, so the matrix reads without colour.
fn cell(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Warn => "warn",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
        Verdict::Skip => "skip",
        Verdict::Xfail => "xfail",
        Verdict::Xpass => "XPASS",
        Verdict::Flaky => "flaky",
    }
}

pub fn style(v: Verdict) -> Style {
    match v {
        Verdict::Pass => Style::new().green(),
        Verdict::Warn | Verdict::Flaky => Style::new().yellow(),
        Verdict::Fail | Verdict::Error | Verdict::Xpass => Style::new().red().bold(),
        Verdict::Skip | Verdict::Xfail => Style::new().dim(),
    }
}

/// The whole report as text (colour codes only if `console` decides the terminal wants them).
pub fn render(run: &Run) -> String {
    let mut out = String::new();
    let server_names: Vec<&str> = run.servers.iter().map(|s| s.name.as_str()).collect();
    let width = server_names.iter().map(|n| n.len()).max().unwrap_or(4).max(6) + 2;

    // Scenarios in order of first appearance.
    let mut scenario_ids: Vec<&str> = Vec::new();
    for c in &run.cases {
        if !scenario_ids.contains(&c.scenario.as_str()) {
            scenario_ids.push(&c.scenario);
        }
    }
    for id in &scenario_ids {
        let cases: Vec<&CaseResult> = run.cases.iter().filter(|c| c.scenario == *id).collect();
        let roles: Vec<&String> = cases[0].roles.keys().collect();
        let _ =
            writeln!(out, "\n{}  {}", Style::new().bold().apply_to(id), Style::new().dim().apply_to(&cases[0].title));
        match roles.as_slice() {
            [a, b] => {
                let _ = write!(out, "  {:>width$} ", format!("{a}\\{b}"));
                for col in &server_names {
                    let _ = write!(out, "{col:^width$}");
                }
                out.push('\n');
                for row in &server_names {
                    let _ = write!(out, "  {row:>width$} ");
                    for col in &server_names {
                        let found = cases.iter().find(|c| c.roles[*a] == *row && c.roles[*b] == *col);
                        let text = match found {
                            Some(c) => style(c.verdict).apply_to(format!("{:^width$}", cell(c.verdict))).to_string(),
                            None => format!("{:^width$}", "·"),
                        };
                        out.push_str(&text);
                    }
                    out.push('\n');
                }
            }
            _ => {
                for c in &cases {
                    let who: Vec<String> = c.roles.iter().map(|(r, s)| format!("{r}={s}")).collect();
                    let _ = writeln!(out, "  {:<24} {}", who.join(" "), style(c.verdict).apply_to(cell(c.verdict)));
                }
            }
        }
    }

    let problems: Vec<&CaseResult> =
        run.cases.iter().filter(|c| !matches!(c.verdict, Verdict::Pass | Verdict::Xfail)).collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\n{}", Style::new().bold().apply_to("Details"));
        for c in problems {
            out.push_str(&describe(c));
        }
    }
    out.push('\n');
    out.push_str(&summary(run));
    out
}

fn pair(c: &CaseResult) -> String {
    c.roles.values().cloned().collect::<Vec<_>>().join("→")
}

/// What went wrong in one case, pointing at the step's file:line.
pub fn describe(c: &CaseResult) -> String {
    let mut out = String::new();
    let head = format!("{} {}[{}]", cell(c.verdict), c.scenario, pair(c));
    let _ = writeln!(out, "\n{}", style(c.verdict).apply_to(head));
    let bad_steps: Vec<_> =
        c.steps.iter().filter(|s| !matches!(s.outcome, StepOutcome::Pass | StepOutcome::NotRun)).collect();
    // The case message repeats the failing step's; print it only when no step says more, or when it
    // says what the steps cannot (a flaky case names both runs' verdicts).
    let says_more = c.verdict == Verdict::Flaky || bad_steps.iter().all(|s| s.message.is_none());
    if let (Some(m), true) = (&c.message, says_more) {
        let _ = writeln!(out, "  {m}");
    }
    for s in bad_steps {
        let _ = writeln!(out, "  at {}:{} step {} ({}): {}", c.file, s.line, s.index + 1, s.kind, s.description);
        if let Some(m) = &s.message {
            let _ = writeln!(out, "    {m}");
        }
        if let Some(spec) = &s.spec {
            let _ = writeln!(
                out,
                "    {} {} §{}{}",
                spec_level(spec.level),
                spec.spec,
                spec.section,
                spec.quote.as_ref().map(|q| format!(": \"{q}\"")).unwrap_or_default()
            );
        }
        if let Some(e) = &s.expected {
            let _ = writeln!(out, "    expected: {}", one_line(e));
        }
        if s.received.is_empty() && s.expected.is_some() {
            let _ = writeln!(out, "    received: nothing");
        }
        for r in &s.received {
            let _ = writeln!(out, "    received: {}", one_line(r));
        }
    }
    out
}

fn spec_level(l: crate::results::Level) -> &'static str {
    match l {
        crate::results::Level::MUST => "MUST",
        crate::results::Level::SHOULD => "SHOULD",
        crate::results::Level::MAY => "MAY",
    }
}

/// Collapse whitespace runs between tags so a stanza fits on a line.
fn one_line(xml: &str) -> String {
    xml.lines().map(str::trim).collect::<Vec<_>>().join("")
}

/// The closing lines: a breakdown by verdict, then `N passed, N failed, N skipped`.
pub fn summary(run: &Run) -> String {
    let t = run.totals();
    let (passed, failed, skipped) = (t.passed(), t.failed(), t.skipped());
    let breakdown: Vec<String> =
        t.counts.iter().filter(|(_, n)| **n > 0).map(|(v, n)| format!("{n} {}", v.as_str())).collect();
    format!(
        "{} case{} in {:.1}s ({})\n{passed} passed, {failed} failed, {skipped} skipped\n",
        run.cases.len(),
        if run.cases.len() == 1 { "" } else { "s" },
        run.duration_ms as f64 / 1000.0,
        if breakdown.is_empty() { "none".to_string() } else { breakdown.join(", ") },
    )
}
