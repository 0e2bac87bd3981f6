//! A markdown summary for CI step summaries (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab notes, …):
//! the outcome, the servers, a matrix per area, and the failures with expected vs got.
//! Text from servers goes into code blocks or is escaped, so it cannot turn into markup.

use crate::results::{CaseResult, Run, Verdict};
use std::fmt::Write as _;

/// More distinct server pairs than this and the matrix lists problems only (a table would be too wide).
const MAX_TABLE_COLUMNS: usize = 9;
/// Failures shown in full; the rest are listed by name (GitHub caps a step summary at 1 MiB).
const MAX_DETAILED: usize = 40;
/// Characters of failure text per case.
const MAX_TEXT: usize = 6000;

pub fn render(run: &Run) -> String {
    let mut out = String::new();
    let t = run.totals();
    let (passed, failed) = (t.passed(), t.failed());
    let (mark, word) = if run.succeeded() { ("✓", "nothing failed") } else { ("✗", "something failed") };
    let _ = writeln!(
        out,
        "## {mark} plugfest: {word} — {passed} passed, {failed} failed, {} skipped\n",
        t.get(Verdict::Skip)
    );
    let breakdown: Vec<String> =
        Verdict::ALL.iter().filter(|v| t.get(**v) > 0).map(|v| format!("{} {}", badge(*v), t.get(*v))).collect();
    let _ = writeln!(
        out,
        "{} cases in {:.1} s ({}) · run {} · started {} · plugfest {}\n",
        run.cases.len(),
        run.duration_ms as f64 / 1000.0,
        breakdown.join(", "),
        code_span(&run.run_id),
        escape(&super::started(run)),
        escape(&run.plugfest_version)
    );

    out.push_str("| server | domain | software | version (XEP-0092) |\n|---|---|---|---|\n");
    for s in &run.servers {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            escape(&s.name),
            escape(&s.domain),
            escape(s.software.as_deref().unwrap_or("—")),
            escape(s.version.as_deref().unwrap_or("not available"))
        );
    }
    out.push('\n');

    let legend: Vec<String> = Verdict::ALL.iter().map(|v| badge(*v)).collect();
    let _ = writeln!(out, "Legend: {} (rows of a pair are role A → role B)\n", legend.join(" · "));
    matrix(run, &mut out);
    problems(run, &mut out);
    out
}

/// Write `<dir>/summary.md` and return its path.
pub fn write(run: &Run, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join("summary.md");
    std::fs::write(&path, render(run))?;
    Ok(path)
}

/// Symbol plus word: readable without colour or emoji support.
fn badge(v: Verdict) -> String {
    let word = if v.is_failure() { v.as_str().to_uppercase() } else { v.as_str().to_string() };
    format!("{} {word}", v.symbol())
}

/// One table per area: a row per scenario, a column per server pair.
fn matrix(run: &Run, out: &mut String) {
    let mut areas: Vec<String> = Vec::new();
    for c in &run.cases {
        if !areas.contains(&c.area()) {
            areas.push(c.area());
        }
    }
    for area in areas {
        let cases: Vec<&CaseResult> = run.cases.iter().filter(|c| c.area() == area).collect();
        let mut pairs: Vec<String> = Vec::new();
        let mut scenarios: Vec<&str> = Vec::new();
        for c in &cases {
            if !pairs.contains(&c.pair()) {
                pairs.push(c.pair());
            }
            if !scenarios.contains(&c.scenario.as_str()) {
                scenarios.push(&c.scenario);
            }
        }
        let _ = writeln!(out, "### {}\n", escape(&area));
        if pairs.len() > MAX_TABLE_COLUMNS {
            for id in scenarios {
                let mine: Vec<&&CaseResult> = cases.iter().filter(|c| c.scenario == id).collect();
                let bad: Vec<String> = mine
                    .iter()
                    .filter(|c| !matches!(c.verdict, Verdict::Pass | Verdict::Xfail))
                    .map(|c| format!("{} {}", badge(c.verdict), escape(&c.pair())))
                    .collect();
                let list = if bad.is_empty() { "all ok".to_string() } else { bad.join(", ") };
                let _ = writeln!(out, "- {} ({} cases): {list}", code_span(id), mine.len());
            }
            out.push('\n');
            continue;
        }
        let _ = writeln!(out, "| scenario | {} |", pairs.iter().map(|p| escape(p)).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(pairs.len()));
        for id in scenarios {
            let cells: Vec<String> = pairs
                .iter()
                .map(|p| match cases.iter().find(|c| c.scenario == id && &c.pair() == p) {
                    Some(c) => badge(c.verdict),
                    None => "·".to_string(),
                })
                .collect();
            let _ = writeln!(out, "| {} | {} |", code_span(id), cells.join(" | "));
        }
        out.push('\n');
    }
}

/// Every case that is not a pass or an expected failure, the first ones with their failure text.
fn problems(run: &Run, out: &mut String) {
    let bad: Vec<&CaseResult> =
        run.cases.iter().filter(|c| !matches!(c.verdict, Verdict::Pass | Verdict::Xfail)).collect();
    if bad.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Problems ({})\n", bad.len());
    for (i, c) in bad.iter().enumerate() {
        let headline = c.message.as_deref().unwrap_or_else(|| c.verdict.meaning());
        if i >= MAX_DETAILED {
            let _ = writeln!(out, "- {} {}: {}", badge(c.verdict), code_span(&c.name()), escape(headline));
            continue;
        }
        // <summary> is HTML: escape for HTML, not markdown.
        let _ = writeln!(
            out,
            "<details><summary>{} <code>{}</code>: {}</summary>\n",
            badge(c.verdict),
            html_escape(&c.name()),
            html_escape(headline)
        );
        let mut text = super::failure_text(c);
        if text.chars().count() > MAX_TEXT {
            text = text.chars().take(MAX_TEXT).collect::<String>() + "\n… (cut; the HTML report has everything)";
        }
        let _ = writeln!(out, "{}\n\n</details>\n", code_block(&text));
    }
    if bad.len() > MAX_DETAILED {
        let _ = writeln!(out, "\nThe first {MAX_DETAILED} are shown in full; index.html has every one.");
    }
}

/// Escape text for a markdown paragraph or table cell.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\n', " ")
}

/// Inline code that survives backticks in the text; `|` still needs escaping inside tables.
fn code_span(s: &str) -> String {
    let longest = longest_run(s, '`');
    let ticks = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{ticks}{pad}{}{pad}{ticks}", s.replace('|', "\\|").replace('\n', " "))
}

/// A fenced block longer than any backtick run inside, so server text cannot close it.
fn code_block(s: &str) -> String {
    let fence = "`".repeat(longest_run(s, '`').max(2) + 1);
    format!("{fence}text\n{}\n{fence}", s.trim_end())
}

fn longest_run(s: &str, ch: char) -> usize {
    let (mut best, mut current) = (0, 0);
    for c in s.chars() {
        current = if c == ch { current + 1 } else { 0 };
        best = best.max(current);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_matrix_and_problems() {
        let run = crate::report::html::tests::synthetic_run();
        let md = render(&run);
        assert!(md.starts_with("## ✗ plugfest: something failed — 3 passed, 3 failed, 1 skipped"), "{md}");
        assert!(md.contains("| scenario | prosody→prosody | prosody→ejabberd | ejabberd→prosody | ejabberd→ejabberd |"));
        assert!(md.contains("| `msg-evil` | ✓ pass | ✗ FAIL | x xfail | E ERROR |"), "{md}");
        assert!(md.contains("### Problems (5)"));
        assert!(md.contains("expected: <message from='alice@prosody.lab/r1'><body>never</body></message>"));
        // Server text is inert: outside code blocks it is escaped.
        assert!(md.contains("prosody 1.0 &lt;script&gt;alert(\"x\")&lt;/script&gt; it's"), "{md}");
        let outside_code: String = md.split("```").step_by(2).collect();
        assert!(!outside_code.contains("<script"), "{outside_code}");
    }

    #[test]
    fn code_cannot_be_closed_by_the_text() {
        assert_eq!(code_block("a ``` b"), "````text\na ``` b\n````");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(escape("a|b <c> *d*"), "a\\|b &lt;c&gt; \\*d\\*");
    }
}
