//! The run model: `reports/<run-id>/results.json`, the one source of truth every report reads.
//! Renderers never re-derive verdicts; they read these types.

use crate::net::tls::TlsInfo;
use crate::xmpp::TranscriptEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on any incompatible change to this file's shape (docs/results-schema.md).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub schema_version: u32,
    pub run_id: String,
    pub plugfest_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    /// The servers file the run used.
    pub servers_file: String,
    pub servers: Vec<ServerSummary>,
    pub cases: Vec<CaseResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerSummary {
    pub name: String,
    pub domain: String,
    /// What the servers file says the server is, e.g. `Prosody 0.12.3` (optional, added in schema 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
    /// What the server itself answered to XEP-0092 (jabber:iq:version), e.g. `Prosody 0.12.3 (Linux)`;
    /// absent when it did not answer (optional, added in schema 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The outcome of a case (one scenario on one assignment of servers to roles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check held.
    Pass,
    /// A SHOULD-level check did not hold; no MUST-level check failed.
    Warn,
    /// A MUST-level check did not hold.
    Fail,
    /// The case could not be carried out (server unreachable, account creation failed, …).
    Error,
    /// Not run, with a reason (e.g. "unsupported: the server does not advertise …").
    Skip,
    /// Failed as the servers file declares it is expected to.
    Xfail,
    /// Declared as an expected failure, but passed.
    Xpass,
    /// Failed, then did not fail when run again (or the other way round for a declared
    /// failure): the server's behaviour is not deterministic. Both runs are in the record.
    Flaky,
}

impl Verdict {
    /// Does this verdict make the run's exit code non-zero?
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Error | Verdict::Xpass)
    }

    /// Every verdict, in legend order.
    pub const ALL: [Verdict; 8] = [
        Verdict::Pass,
        Verdict::Warn,
        Verdict::Fail,
        Verdict::Error,
        Verdict::Skip,
        Verdict::Xfail,
        Verdict::Xpass,
        Verdict::Flaky,
    ];

    /// A symbol that tells the verdicts apart without colour (reports show it next to the word).
    pub fn symbol(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Warn => "!",
            Verdict::Fail => "✗",
            Verdict::Error => "E",
            Verdict::Skip => "–",
            Verdict::Xfail => "x",
            Verdict::Xpass => "X",
            Verdict::Flaky => "~",
        }
    }

    /// One line for a legend.
    pub fn meaning(self) -> &'static str {
        match self {
            Verdict::Pass => "every check held",
            Verdict::Warn => "a SHOULD was not followed; no MUST failed",
            Verdict::Fail => "a MUST was violated",
            Verdict::Error => "the case could not be carried out (server unreachable, account creation failed, …)",
            Verdict::Skip => "not run, with the reason (e.g. the feature is not advertised)",
            Verdict::Xfail => "failed, as the servers file declares it is expected to",
            Verdict::Xpass => "declared as an expected failure, but passed: update the declaration",
            Verdict::Flaky => "failed on one run and not on the rerun: not deterministic (both runs recorded)",
        }
    }

    /// Higher is worse: the verdict a group of cases shows is its worst one.
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Xfail => 1,
            Verdict::Skip => 2,
            Verdict::Warn => 3,
            Verdict::Flaky => 3,
            Verdict::Xpass => 4,
            Verdict::Fail => 5,
            Verdict::Error => 6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
            Verdict::Xfail => "xfail",
            Verdict::Xpass => "xpass",
            Verdict::Flaky => "flaky",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    /// Scenario id, e.g. `msg-chat-remote-bare`.
    pub scenario: String,
    pub title: String,
    /// Path of the scenario file.
    pub file: String,
    /// Role → server name, e.g. {A: prosody, B: ejabberd}.
    pub roles: BTreeMap<String, String>,
    pub verdict: Verdict,
    /// One line saying why, for anything but a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: u64,
    pub steps: Vec<StepResult>,
    pub connections: Vec<ConnectionRecord>,
    /// When a failing case was run again (`plugfest run --reruns`): the rerun's own result.
    /// The fields above are the first run's, so the failure's evidence is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun: Option<Box<CaseResult>>,
}

/// The catalog area of a scenario file: its folder under `scenarios/` (`scenarios/roster/x.yaml` → `roster`).
pub fn area_of(file: &str) -> String {
    std::path::Path::new(file)
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "scenarios")
        .unwrap_or_else(|| "misc".to_string())
}

impl CaseResult {
    /// The catalog area, from the scenario file's folder.
    pub fn area(&self) -> String {
        area_of(&self.file)
    }

    /// Servers in role order, e.g. `prosody→ejabberd`.
    pub fn pair(&self) -> String {
        self.roles.values().map(String::as_str).collect::<Vec<_>>().join("→")
    }

    /// The case's stable name, as `plugfest run --list` prints it: `roster-remote-add[prosody→ejabberd]`.
    pub fn name(&self) -> String {
        format!("{}[{}]", self.scenario, self.pair())
    }

    /// The distinct spec references of the case's steps, in step order.
    pub fn spec_refs(&self) -> Vec<&SpecRef> {
        let mut refs: Vec<&SpecRef> = Vec::new();
        for r in self.steps.iter().filter_map(|s| s.spec.as_ref()) {
            if !refs.iter().any(|seen| seen.spec == r.spec && seen.section == r.section && seen.level == r.level) {
                refs.push(r);
            }
        }
        refs
    }
}

/// The normative text a check enforces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRef {
    /// e.g. `RFC6121`, `XEP-0030`.
    pub spec: String,
    pub section: String,
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
}

impl SpecRef {
    /// Where the text can be read: the RFC section on rfc-editor.org, or the XEP's page on xmpp.org.
    /// None for other documents.
    pub fn url(&self) -> Option<String> {
        let spec = self.spec.trim().to_ascii_uppercase().replace([' ', '-'], "");
        let section = self.section.trim().trim_start_matches('§');
        if let Some(number) = spec.strip_prefix("RFC").filter(|n| is_number(n)) {
            let anchor = if is_section(section) { format!("#section-{section}") } else { String::new() };
            return Some(format!("https://www.rfc-editor.org/rfc/rfc{number}{anchor}"));
        }
        if let Some(number) = spec.strip_prefix("XEP").filter(|n| is_number(n)) {
            return Some(format!("https://xmpp.org/extensions/xep-{number:0>4}.html"));
        }
        None
    }

    /// `MUST RFC6121 §2.3.2`
    pub fn short(&self) -> String {
        format!("{} {} §{}", self.level.as_str(), self.spec, self.section)
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `8.1.2.1`, `2`, `A.1`: safe to put into a URL fragment.
fn is_section(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// RFC 2119 level of a check: decides what a violation does to the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    MUST,
    SHOULD,
    MAY,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::MUST => "MUST",
            Level::SHOULD => "SHOULD",
            Level::MAY => "MAY",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Pass,
    /// A MUST check failed.
    Fail,
    /// A SHOULD check failed.
    Warn,
    /// A MAY check did not hold: recorded, never red.
    Info,
    /// The step could not be carried out (connection lost, send failed, …).
    Error,
    /// Not reached because an earlier step ended the case.
    NotRun,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepResult {
    /// 0-based position in the scenario's steps.
    pub index: usize,
    /// `send`, `expect`, `expect_none`, …
    pub kind: String,
    /// 1-based line of the step in the scenario file.
    pub line: usize,
    /// Short human description, e.g. "alice1 sends <message to=bob@b.lab>".
    pub description: String,
    pub outcome: StepOutcome,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecRef>,
    /// The pattern(s) expected, with variables substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What arrived (serialised stanzas) while waiting; empty when nothing did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One connection plugfest made during a case, with its wire log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// Actor name from the scenario (or `provisioning` for account creation).
    pub actor: String,
    pub server: String,
    pub jid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// For a connection of a peer actor (the harness as a remote server): what it saw — direction,
    /// stream ids, the certificate it presented, the other server's chain and which identity in
    /// it matched, authentication attempts, dialback verifies, outcome. Its `transcript` is empty
    /// (the connection's own is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s2s: Option<Box<crate::xmpp::s2s::LegRecord>>,
    pub transcript: Vec<TranscriptEntry>,
}

/// Totals by verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub counts: BTreeMap<Verdict, usize>,
}

impl Totals {
    pub fn of(cases: &[CaseResult]) -> Totals {
        let mut counts = BTreeMap::new();
        for c in cases {
            *counts.entry(c.verdict).or_insert(0) += 1;
        }
        Totals { counts }
    }
    pub fn get(&self, v: Verdict) -> usize {
        self.counts.get(&v).copied().unwrap_or(0)
    }

    /// Cases that do not fail the run and were run: pass, warn, xfail and flaky (its rerun passed).
    pub fn passed(&self) -> usize {
        [Verdict::Pass, Verdict::Warn, Verdict::Xfail, Verdict::Flaky].iter().map(|&v| self.get(v)).sum()
    }

    /// Cases that fail the run (exit code 1).
    pub fn failed(&self) -> usize {
        Verdict::ALL.iter().filter(|v| v.is_failure()).map(|&v| self.get(v)).sum()
    }

    pub fn skipped(&self) -> usize {
        self.get(Verdict::Skip)
    }
}

impl Run {
    pub fn totals(&self) -> Totals {
        Totals::of(&self.cases)
    }
    /// True when nothing failed, errored or unexpectedly passed: exit code 0.
    pub fn succeeded(&self) -> bool {
        !self.cases.iter().any(|c| c.verdict.is_failure())
    }
}

impl Run {
    /// Write `<dir>/results.json` (pretty, so a human can read it too) and return its path.
    pub fn write_json(&self, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("results.json");
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        // Write then rename, so an interrupted write never leaves a truncated results file.
        let tmp = dir.join(".results.json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    pub fn read_json(path: &std::path::Path) -> anyhow::Result<Run> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let run: Run = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a plugfest results file (docs/results-schema.md)", path.display()))?;
        if run.schema_version > SCHEMA_VERSION {
            anyhow::bail!(
                "{} has results schema version {}, this plugfest reads up to {SCHEMA_VERSION}: use a newer plugfest",
                path.display(),
                run.schema_version
            );
        }
        Ok(run)
    }
}
