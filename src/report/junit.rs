//! JUnit XML for CI systems: one `<testsuite>` per server pair (e.g. `prosody→ejabberd`), one
//! `<testcase>` per case, named as `plugfest run --list` names it, with classname `<area>.<scenario>`.
//!
//! Verdicts: pass, warn and xfail are successes (a warning or the expected failure is kept in
//! `system-out`); fail and xpass are `<failure>`; error is `<error>`; skip is `<skipped>`. The failure
//! text is expected vs got (see `report::failure_text`). Spec references are suite properties
//! (`spec:<scenario>`), since the common JUnit schema has no properties on test cases.
//! The output validates against the Jenkins/Ant `junit-10.xsd` shape (tests/data/junit-10.xsd).

use crate::results::{CaseResult, Run, Verdict};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite, XmlString};
use std::time::Duration;

/// The report as XML text.
pub fn render(run: &Run) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new(format!("plugfest {}", run.run_id));
    report.set_time(Duration::from_millis(run.duration_ms));
    let mut pairs: Vec<String> = Vec::new();
    for c in &run.cases {
        if !pairs.contains(&c.pair()) {
            pairs.push(c.pair());
        }
    }
    for pair in pairs {
        let cases: Vec<&CaseResult> = run.cases.iter().filter(|c| c.pair() == pair).collect();
        report.add_test_suite(suite(run, &pair, &cases));
    }
    Ok(drop_root_skipped(report.to_string()?))
}

/// Write `<dir>/junit.xml` and return its path.
pub fn write(run: &Run, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let xml = render(run).map_err(|e| std::io::Error::other(format!("cannot render the JUnit report: {e}")))?;
    let path = dir.join("junit.xml");
    std::fs::write(&path, xml)?;
    Ok(path)
}

fn suite(run: &Run, pair: &str, cases: &[&CaseResult]) -> TestSuite {
    let mut suite = TestSuite::new(pair);
    suite.extra.insert(XmlString::new("timestamp"), XmlString::new(&run.started_at));
    suite.set_time(Duration::from_millis(cases.iter().map(|c| c.duration_ms).sum()));
    // Which server played which role, and what it is.
    if let Some(first) = cases.first() {
        for (role, name) in &first.roles {
            let server = run.servers.iter().find(|s| &s.name == name);
            let mut value = name.clone();
            if let Some(s) = server {
                value.push_str(&format!(" ({})", s.domain));
                if let Some(v) = s.version.as_ref().or(s.software.as_ref()) {
                    value.push_str(&format!(", {v}"));
                }
            }
            suite.add_property(Property::new(format!("role:{role}"), value));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in cases {
        if seen.contains(&c.scenario.as_str()) {
            continue;
        }
        seen.push(&c.scenario);
        let refs: Vec<String> = c
            .spec_refs()
            .iter()
            .map(|r| match r.url() {
                Some(u) => format!("{} <{u}>", r.short()),
                None => r.short(),
            })
            .collect();
        if !refs.is_empty() {
            suite.add_property(Property::new(format!("spec:{}", c.scenario), refs.join("; ")));
        }
    }
    suite.add_test_cases(cases.iter().map(|c| test_case(c)));
    suite
}

fn test_case(c: &CaseResult) -> TestCase {
    let text = super::failure_text(c);
    let headline = c.message.clone().unwrap_or_else(|| c.verdict.meaning().to_string());
    let status = match c.verdict {
        // Flaky passes on its rerun; its text (both runs) goes to system-out below.
        Verdict::Pass | Verdict::Warn | Verdict::Xfail | Verdict::Flaky => TestCaseStatus::success(),
        Verdict::Skip => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(headline.clone());
            s
        }
        Verdict::Fail | Verdict::Xpass | Verdict::Error => {
            let kind = if c.verdict == Verdict::Error { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(headline.clone()).set_type(c.verdict.as_str()).set_description(text.clone());
            s
        }
    };
    let mut tc = TestCase::new(c.name(), status);
    tc.set_classname(format!("{}.{}", c.area(), c.scenario));
    tc.set_time(Duration::from_millis(c.duration_ms));
    // Successes that still say something (a warning, the expected failure) keep it visible.
    if matches!(c.verdict, Verdict::Warn | Verdict::Xfail | Verdict::Flaky) && !text.is_empty() {
        tc.set_system_out(format!("{}: {text}", c.verdict.as_str()));
    }
    tc
}

/// quick-junit always writes a `skipped` count on `<testsuites>`; the Jenkins/Ant schema has none there
/// (skips are counted per suite), so remove it from the root tag only.
fn drop_root_skipped(xml: String) -> String {
    let Some(start) = xml.find("<testsuites") else { return xml };
    let Some(len) = xml[start..].find('>') else { return xml };
    let tag = &xml[start..start + len];
    let Some(attr) = tag.find(" skipped=\"") else { return xml };
    let value_start = attr + " skipped=\"".len();
    let Some(value_len) = tag[value_start..].find('"') else { return xml };
    let (from, to) = (start + attr, start + value_start + value_len + 1);
    format!("{}{}", &xml[..from], &xml[to..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_suite_per_pair_with_names_classnames_and_failures() {
        let run = crate::report::html::tests::synthetic_run();
        let xml = render(&run).unwrap();
        assert!(xml.starts_with("<?xml"));
        let root = &xml[xml.find("<testsuites").unwrap()..];
        let root = &root[..root.find('>').unwrap()];
        assert!(!root.contains("skipped="), "{root}");
        assert!(root.contains("tests=\"7\""), "{root}");
        // Pairs: prosody→prosody, prosody→ejabberd, ejabberd→prosody, ejabberd→ejabberd.
        assert_eq!(xml.matches("<testsuite ").count(), 4, "{xml}");
        assert!(
            xml.contains("<testsuite name=\"prosody→ejabberd\" tests=\"4\" skipped=\"1\" errors=\"0\" failures=\"2\"")
        );
        assert_eq!(xml.matches("<testcase ").count(), 7);
        assert_eq!(xml.matches("classname=\"").count(), 7);
        assert!(xml.contains("name=\"msg-evil[prosody→ejabberd]\" classname=\"messaging.msg-evil\""));
        assert!(xml.contains("<property name=\"spec:msg-evil\" value=\"MUST RFC6120 §8.1.2.1"));
        assert!(xml.contains("<property name=\"role:A\" value=\"prosody (prosody.lab), prosody 1.0"));
        // Failure text: expected vs got, escaped as XML.
        assert!(xml.contains("<failure message="), "{xml}");
        assert!(xml.contains("type=\"xpass\""));
        assert!(xml.contains("<error message="));
        assert!(xml.contains("<skipped message="));
        assert!(
            xml.contains("expected: &lt;message from=&apos;alice@prosody.lab/r1&apos;&gt;")
                || xml.contains("expected: &lt;message from='alice@prosody.lab/r1'&gt;"),
            "{xml}"
        );
        assert!(!xml.contains("<script"));
    }

    #[test]
    fn root_skipped_is_removed_and_nothing_else() {
        let xml =
            "<?xml?>\n<testsuites name=\"x\" tests=\"2\" skipped=\"1\" failures=\"0\">\n<testsuite skipped=\"1\"/>"
                .to_string();
        assert_eq!(
            drop_root_skipped(xml),
            "<?xml?>\n<testsuites name=\"x\" tests=\"2\" failures=\"0\">\n<testsuite skipped=\"1\"/>"
        );
    }
}
