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
}

impl Verdict {
    /// Does this verdict make the run's exit code non-zero?
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Error | Verdict::Xpass)
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

/// RFC 2119 level of a check: decides what a violation does to the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    MUST,
    SHOULD,
    MAY,
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
        let text = std::fs::read_to_string(path)?;
        Ok(serde_json::from_str(&text)?)
    }
}
