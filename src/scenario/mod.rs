//! Scenarios: YAML files describing actors and steps (docs/scenario-format.md).
//! Knows nothing of sockets. OWNER: scenario helper; the items below are the contract the
//! planner and runner use, the rest is the helper's to design.

use std::path::{Path, PathBuf};

pub use crate::yaml::ConfigError;

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
}

/// An account the scenario uses: created fresh (unique localpart) before each case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDecl {
    /// Name used in the scenario, e.g. `alice`.
    pub name: String,
    /// The role whose server hosts it, e.g. `A`.
    pub role: String,
}

/// Load one scenario file.
pub fn load_file(_path: &Path) -> Result<Scenario, ConfigError> {
    todo!("scenario helper")
}

/// Load every `*.yaml` under the given files or directories (recursively, sorted by path).
/// Returns all scenarios that loaded and all errors (one per bad file), so `check` can list them all.
pub fn load_paths(_paths: &[PathBuf]) -> (Vec<Scenario>, Vec<ConfigError>) {
    todo!("scenario helper")
}
