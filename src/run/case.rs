//! One case: connect the scenario's actors and execute its steps. OWNER: scenario helper.

use crate::jid::Jid;
use crate::results::{ConnectionRecord, StepResult, Verdict};
use crate::scenario::Scenario;
use crate::servers::Server;
use std::collections::BTreeMap;
use std::time::Duration;

/// A provisioned account.
#[derive(Clone, Debug)]
pub struct Account {
    /// Bare JID, e.g. `alice-3f9k2@prosody.lab`.
    pub jid: Jid,
    pub password: String,
}

/// Everything one case needs, already resolved.
pub struct CaseEnv<'a> {
    pub scenario: &'a Scenario,
    /// Role → server.
    pub roles: BTreeMap<String, &'a Server>,
    /// Account name (from the scenario) → provisioned account.
    pub accounts: BTreeMap<String, Account>,
    /// Deadline for each login step.
    pub step_timeout: Duration,
    pub max_stanza: usize,
}

pub struct CaseOutcome {
    pub verdict: Verdict,
    pub message: Option<String>,
    pub steps: Vec<StepResult>,
    pub connections: Vec<ConnectionRecord>,
}

/// Execute one case to the end; never panics, never waits without a deadline.
pub async fn run_case(_env: CaseEnv<'_>) -> CaseOutcome {
    todo!("scenario helper")
}
