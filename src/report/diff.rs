//! `plugfest diff OLD.json NEW.json`: what changed between two runs, case by case (cases are matched
//! by name, `scenario[server→server]`).
//!
//! - regression: the case did not fail before and fails now (fail, error or xpass);
//! - fix: the case failed before and does not now;
//! - other change: any other verdict change (pass → warn, pass → skip, …), reported, never fatal;
//! - new / removed: cases in only one of the runs (a new failing case is not a regression: there is
//!   nothing to compare it with; it shows up in the new run's own exit code).

use crate::results::{CaseResult, Run, Verdict};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A case whose verdict differs between the runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub old: Verdict,
    pub new: Verdict,
    /// The new run's message for the case (why it fails now, for a regression).
    pub message: Option<String>,
}

/// A case present in only one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Only {
    pub name: String,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunDiff {
    pub old_run: String,
    pub new_run: String,
    pub regressions: Vec<Change>,
    pub fixes: Vec<Change>,
    pub other_changes: Vec<Change>,
    pub added: Vec<Only>,
    pub removed: Vec<Only>,
    pub unchanged: usize,
}

/// Compare two runs. Cases keep the new run's order (removed ones: the old run's).
pub fn compare(old: &Run, new: &Run) -> RunDiff {
    let old_cases: HashMap<String, &CaseResult> = old.cases.iter().map(|c| (c.name(), c)).collect();
    let new_names: std::collections::HashSet<String> = new.cases.iter().map(|c| c.name()).collect();
    let mut d = RunDiff { old_run: old.run_id.clone(), new_run: new.run_id.clone(), ..RunDiff::default() };
    for c in &new.cases {
        let name = c.name();
        let Some(before) = old_cases.get(&name) else {
            d.added.push(Only { name, verdict: c.verdict });
            continue;
        };
        if before.verdict == c.verdict {
            d.unchanged += 1;
            continue;
        }
        let change = Change { name, old: before.verdict, new: c.verdict, message: c.message.clone() };
        match (before.verdict.is_failure(), c.verdict.is_failure()) {
            (false, true) => d.regressions.push(change),
            (true, false) => d.fixes.push(change),
            _ => d.other_changes.push(change),
        }
    }
    d.removed = old
        .cases
        .iter()
        .filter(|c| !new_names.contains(&c.name()))
        .map(|c| Only { name: c.name(), verdict: c.verdict })
        .collect();
    d
}

impl RunDiff {
    pub fn has_regressions(&self) -> bool {
        !self.regressions.is_empty()
    }

    /// For a terminal or a CI log.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "plugfest diff {} → {}", self.old_run, self.new_run);
        let section = |out: &mut String, title: &str, changes: &[Change]| {
            if changes.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title} ({}):", changes.len());
            for c in changes {
                let _ = writeln!(out, "  {}: {} → {}", c.name, c.old.as_str(), c.new.as_str());
                if let (Some(m), true) = (&c.message, c.new.is_failure()) {
                    let _ = writeln!(out, "      {m}");
                }
            }
        };
        section(&mut out, "REGRESSIONS", &self.regressions);
        section(&mut out, "fixes", &self.fixes);
        section(&mut out, "other changes", &self.other_changes);
        for (title, cases) in [("new cases", &self.added), ("removed cases", &self.removed)] {
            if !cases.is_empty() {
                let _ = writeln!(out, "\n{title} ({}):", cases.len());
                for c in cases {
                    let _ = writeln!(out, "  {}: {}", c.name, c.verdict.as_str());
                }
            }
        }
        let _ = writeln!(out, "\n{}", self.totals_line());
        out
    }

    /// For a CI step summary.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let mark = if self.has_regressions() { "✗" } else { "✓" };
        let _ = writeln!(out, "## {mark} plugfest diff: {}\n", self.totals_line());
        let _ = writeln!(out, "`{}` → `{}`\n", self.old_run, self.new_run);
        let mut table = |title: &str, rows: Vec<(String, String, String)>| {
            if rows.is_empty() {
                return;
            }
            let _ = writeln!(out, "### {title} ({})\n\n| case | before | now |\n|---|---|---|", rows.len());
            for (name, before, now) in rows {
                let _ = writeln!(out, "| `{}` | {before} | {now} |", name.replace('|', "\\|").replace('`', "'"));
            }
            out.push('\n');
        };
        let changes = |cs: &[Change]| -> Vec<(String, String, String)> {
            cs.iter().map(|c| (c.name.clone(), badge(c.old), badge(c.new))).collect()
        };
        table("Regressions", changes(&self.regressions));
        table("Fixes", changes(&self.fixes));
        table("Other changes", changes(&self.other_changes));
        table("New cases", self.added.iter().map(|c| (c.name.clone(), "—".into(), badge(c.verdict))).collect());
        table("Removed cases", self.removed.iter().map(|c| (c.name.clone(), badge(c.verdict), "—".into())).collect());
        out
    }

    fn totals_line(&self) -> String {
        format!(
            "{} regression{}, {} fix{}, {} other change{}, {} new, {} removed, {} unchanged",
            self.regressions.len(),
            plural(self.regressions.len(), "s"),
            self.fixes.len(),
            plural(self.fixes.len(), "es"),
            self.other_changes.len(),
            plural(self.other_changes.len(), "s"),
            self.added.len(),
            self.removed.len(),
            self.unchanged
        )
    }
}

fn plural(n: usize, suffix: &'static str) -> &'static str {
    if n == 1 {
        ""
    } else {
        suffix
    }
}

fn badge(v: Verdict) -> String {
    let word = if v.is_failure() { v.as_str().to_uppercase() } else { v.as_str().to_string() };
    format!("{} {word}", v.symbol())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, cases: &[(&str, Verdict)]) -> Run {
        let mut r = crate::report::html::tests::synthetic_run();
        r.run_id = id.into();
        let template = r.cases[0].clone();
        r.cases = cases
            .iter()
            .map(|(scenario, v)| {
                let mut c = template.clone();
                c.scenario = scenario.to_string();
                c.verdict = *v;
                c
            })
            .collect();
        r
    }

    #[test]
    fn classifies_every_kind_of_change() {
        use Verdict::*;
        let old = run("old", &[("a", Pass), ("b", Fail), ("c", Pass), ("d", Xfail), ("e", Pass), ("gone", Pass)]);
        let new = run("new", &[("a", Fail), ("b", Pass), ("c", Warn), ("d", Xpass), ("e", Pass), ("fresh", Fail)]);
        let d = compare(&old, &new);
        let names = |cs: &[Change]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.regressions), ["a[prosody→prosody]", "d[prosody→prosody]"]);
        assert_eq!(names(&d.fixes), ["b[prosody→prosody]"]);
        assert_eq!(names(&d.other_changes), ["c[prosody→prosody]"]);
        assert_eq!(d.added, [Only { name: "fresh[prosody→prosody]".into(), verdict: Fail }]);
        assert_eq!(d.removed, [Only { name: "gone[prosody→prosody]".into(), verdict: Pass }]);
        assert_eq!(d.unchanged, 1);
        assert!(d.has_regressions());
        let text = d.to_text();
        assert!(text.contains("REGRESSIONS (2):\n  a[prosody→prosody]: pass → fail\n"), "{text}");
        assert!(text.contains("2 regressions, 1 fix, 1 other change, 1 new, 1 removed, 1 unchanged"), "{text}");
        let md = d.to_markdown();
        assert!(md.contains("| `a[prosody→prosody]` | ✓ pass | ✗ FAIL |"), "{md}");
    }

    #[test]
    fn identical_runs_have_no_regressions() {
        let r = run("x", &[("a", Verdict::Pass), ("b", Verdict::Fail)]);
        let d = compare(&r, &r);
        assert!(!d.has_regressions());
        assert_eq!(d.unchanged, 2);
    }
}
