//! Scenarios: YAML files describing actors and steps (docs/scenario-format.md).
//! Knows nothing of sockets: `run::case` executes what this module loads.
//!
//! - `model`: the file as written (serde types with positions);
//! - `load`: reading and validating it into the types below, errors with file:line:col;
//! - `vars`: `${…}` variables, resolved at load time, substituted at run time;
//! - `pattern`: matching received stanzas against expected ones.

mod load;
mod model;
pub mod pattern;
pub mod vars;

use crate::results::SpecRef;
use std::path::PathBuf;
use std::time::Duration;
pub use vars::{Bindings, Template};

pub use crate::yaml::ConfigError;
pub use load::{load_file, load_paths, parse_stanza};

/// Parse scenario text as if it came from `path` (whose file name must match the id).
/// For tests: returns the script beside the scenario.
#[cfg(test)]
pub(crate) fn parse_str(path: &std::path::Path, text: &str) -> Result<(Scenario, Script), ConfigError> {
    load::parse(path, text).map(|l| {
        let script = l.scenario.script.clone();
        (l.scenario, script)
    })
}

/// A loaded, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Unique id, e.g. `msg-chat-remote-bare` (the file name without `.yaml`).
    pub id: String,
    pub title: String,
    pub file: PathBuf,
    /// Server roles it needs, in order, e.g. `["A", "B"]` or `["A"]`.
    pub roles: Vec<String>,
    /// Accounts to provision fresh for every case.
    pub accounts: Vec<AccountDecl>,
    /// Its actors and steps.
    pub script: Script,
}

/// An account the scenario uses: created fresh (unique localpart) before each case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDecl {
    /// Name used in the scenario, e.g. `alice`.
    pub name: String,
    /// The role whose server hosts it, e.g. `A`.
    pub role: String,
}

/// What a scenario does: its actors and steps.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// CATALOG.md id, e.g. `D01`.
    pub catalog: Option<String>,
    /// In declared order: the order of initial roster requests and presences at case start.
    pub actors: Vec<ActorDecl>,
    pub steps: Vec<Step>,
}

impl Script {
    pub fn actor(&self, name: &str) -> Option<&ActorDecl> {
        self.actors.iter().find(|a| a.name == name)
    }
}

/// One client connection of a scenario (a resource of an account).
#[derive(Clone, Debug)]
pub struct ActorDecl {
    /// e.g. `alice1`.
    pub name: String,
    /// Account name, e.g. `alice`.
    pub account: String,
    /// Resource to request at bind; `None` lets the server choose.
    pub resource: Option<String>,
    /// Request the roster after connecting (makes the resource "interested", RFC 6121 §2.1.6).
    pub roster: bool,
    /// Initial presence sent after connecting (and after the roster request); `None` = stay unavailable.
    pub presence: Option<Template>,
    /// Connect when the case starts; otherwise a `connect` step does it.
    pub connect_at_start: bool,
}

/// One step, with where it is written.
#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based line of the step in the scenario file.
    pub line: usize,
    pub action: Action,
}

#[derive(Clone, Debug)]
pub enum Action {
    /// An actor sends a stanza.
    Send { actor: String, xml: Template },
    /// An actor must receive a stanza matching a pattern.
    Expect(Expect),
    /// (Re)connect an actor: log in, then its roster request and initial presence as declared.
    Connect { actor: String },
    /// Close an actor's stream gracefully.
    Disconnect { actor: String },
}

/// An expected stanza.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The receiving actor.
    pub actor: String,
    /// The pattern (docs/scenario-format.md, "Matching").
    pub pattern: Template,
    /// How long to wait for it.
    pub within: Duration,
    /// The normative text it checks; its level decides what a mismatch does to the verdict.
    pub spec: Option<SpecRef>,
}

/// Default wait for an expected stanza (CATALOG §0.4: local delivery).
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(5);

impl Step {
    /// `send`, `expect`, `connect`, `disconnect`: the key used in the file.
    pub fn kind(&self) -> &'static str {
        match self.action {
            Action::Send { .. } => "send",
            Action::Expect(_) => "expect",
            Action::Connect { .. } => "connect",
            Action::Disconnect { .. } => "disconnect",
        }
    }

    /// One line for reports, e.g. "alice1 sends <message id='m1' to='${bob.bare}' type='chat'><body>hi</body></message>".
    pub fn description(&self) -> String {
        match &self.action {
            Action::Send { actor, xml } => format!("{actor} sends {}", one_line(xml.source())),
            Action::Expect(e) => {
                format!("{} receives {} within {}", e.actor, one_line(e.pattern.source()), fmt_duration(e.within))
            }
            Action::Connect { actor } => format!("{actor} connects"),
            Action::Disconnect { actor } => format!("{actor} disconnects"),
        }
    }
}

/// Some XML text on one line (whitespace runs collapsed), shortened for descriptions.
fn one_line(xml: &str) -> String {
    let line = xml.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 140 {
        let short: String = line.chars().take(139).collect();
        format!("{short}…")
    } else {
        line
    }
}

/// `5s`, `1m 30s`, `500ms`: how durations are written in scenario files.
pub fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
