//! Running cases: provisioning accounts, executing steps against real servers, in parallel.
//! Each case runs in its own task with its own fresh accounts, so cases are independent
//! and a panic or hang in one cannot take the others (or the results file) with it.

pub mod accounts;
pub mod case;
pub mod peer;
pub mod server_version;
pub mod tls_probe;

use crate::plan::Case;
use crate::results::{CaseResult, ConnectionRecord, Run, ServerSummary, Verdict, SCHEMA_VERSION};
use crate::scenario::Scenario;
use crate::servers::ServersFile;
use case::{CaseEnv, CaseOutcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cases in flight at once by default. Cases mostly wait on the network, not the CPU: on the
/// 2-core lab, 32 runs the catalog in about 27 s (16: 37 s; `cargo bench --bench catalog`).
pub const DEFAULT_JOBS: usize = 32;

/// How a run behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Cases in flight at once.
    pub jobs: usize,
    /// Deadline for each login/registration step.
    pub step_timeout: Duration,
    /// Hard cap for one whole case; past it the case is an error (a guard against bugs, not a test deadline).
    pub case_timeout: Duration,
    pub max_stanza: usize,
    pub run_id: String,
    /// Ask every server its software version (XEP-0092) for the report, alongside the cases.
    pub ask_versions: bool,
    /// Run failing cases again this many times; a verdict that changes makes the case `flaky`.
    pub reruns: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: DEFAULT_JOBS,
            step_timeout: Duration::from_secs(10),
            case_timeout: Duration::from_secs(300),
            max_stanza: crate::xml::DEFAULT_MAX_STANZA,
            run_id: new_run_id(),
            ask_versions: true,
            reruns: 1,
        }
    }
}

/// `20261127-013045-k3x9`: sortable by time, unique per run.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    format!("{}-{}", now.format(fmt).unwrap_or_default(), accounts::random_tag(4))
}

/// Told to the caller as each case finishes, for progress display.
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub case_name: &'a str,
    pub result: &'a CaseResult,
    /// 0 for the first run of a case, then the rerun's number.
    pub attempt: usize,
}

/// Run every case (at most `opts.jobs` at a time) and collect the run. Results come back in
/// plan order whatever order the cases finish in.
pub async fn run_cases(
    scenarios: Arc<Vec<Scenario>>,
    servers: Arc<ServersFile>,
    cases: Vec<Case>,
    opts: &RunOptions,
    on_progress: impl FnMut(Progress<'_>),
) -> Run {
    let harness = Arc::new(Harness::new(&servers));
    run_cases_with(scenarios, servers, harness, cases, opts, on_progress).await
}

/// [`run_cases`] with a harness shared beyond this run (the catalog test runs every case as its
/// own run, and only one listener can hold the harness address).
pub async fn run_cases_with(
    scenarios: Arc<Vec<Scenario>>,
    servers: Arc<ServersFile>,
    harness: Arc<Harness>,
    cases: Vec<Case>,
    opts: &RunOptions,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Run {
    let started = Instant::now();
    let started_at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let total = cases.len();
    // Run metadata only: asked alongside the cases, never waited for long (see below).
    let versions = opts.ask_versions.then(|| {
        let (servers, step_timeout, max_stanza) = (servers.clone(), opts.step_timeout, opts.max_stanza);
        tokio::spawn(async move {
            let asks = servers.servers.iter().map(|s| server_version::ask(s, step_timeout, max_stanza));
            futures_util::future::join_all(asks).await
        })
    });
    let all: Vec<usize> = (0..total).collect();
    let mut results = run_batch(&scenarios, &servers, &harness, &cases, &all, opts, 0, &mut on_progress).await;
    for attempt in 1..=opts.reruns {
        let failing: Vec<usize> = (0..total).filter(|&i| results[i].verdict.is_failure()).collect();
        if failing.is_empty() {
            break;
        }
        let reruns = run_batch(&scenarios, &servers, &harness, &cases, &failing, opts, attempt, &mut on_progress).await;
        for (i, rerun) in failing.into_iter().zip(reruns) {
            judge_rerun(&mut results[i], rerun);
        }
    }
    let cases = results;
    // A server that has not answered one step timeout after the last case is left out of the metadata.
    let versions: Vec<Option<String>> = match versions {
        Some(task) => {
            let abort = task.abort_handle();
            let answered = tokio::time::timeout(opts.step_timeout, task).await.ok().and_then(Result::ok);
            abort.abort();
            answered.unwrap_or_default()
        }
        None => Vec::new(),
    };
    assemble(&opts.run_id, started_at, started.elapsed(), &servers, &versions, cases)
}

/// The run record: metadata (plugfest, servers with the versions they advertised, in servers-file
/// order; missing versions are `None`) around the case results.
pub fn assemble(
    run_id: &str,
    started_at: String,
    duration: Duration,
    servers: &ServersFile,
    versions: &[Option<String>],
    cases: Vec<CaseResult>,
) -> Run {
    Run {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.to_string(),
        plugfest_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        duration_ms: duration.as_millis() as u64,
        servers_file: servers.path.display().to_string(),
        servers: servers
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| ServerSummary {
                name: s.name.clone(),
                domain: s.domain.clone(),
                software: s.software.clone(),
                version: versions.get(i).cloned().flatten(),
            })
            .collect(),
        cases,
    }
}

/// Run the cases at `indices` (at most `opts.jobs` at a time); results in the order of `indices`.
#[allow(clippy::too_many_arguments)]
async fn run_batch(
    scenarios: &Arc<Vec<Scenario>>,
    servers: &Arc<ServersFile>,
    harness: &Arc<Harness>,
    cases: &[Case],
    indices: &[usize],
    opts: &RunOptions,
    attempt: usize,
    on_progress: &mut impl FnMut(Progress<'_>),
) -> Vec<CaseResult> {
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (slot, &index) in indices.iter().enumerate() {
        let (scenarios, servers, limit, opts) = (scenarios.clone(), servers.clone(), limit.clone(), opts.clone());
        let (case, harness) = (cases[index].clone(), harness.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let result = run_one(&scenarios, &servers, &harness, &case, &opts).await;
            (slot, result)
        });
    }
    let mut results: Vec<Option<CaseResult>> = vec![None; indices.len()];
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        // A panicking case loses only itself: its slot stays empty and becomes an error below.
        let Ok((slot, result)) = joined else { continue };
        done += 1;
        let name = cases[indices[slot]].name(scenarios, servers);
        on_progress(Progress { done, total: indices.len(), case_name: &name, result: &result, attempt });
        results[slot] = Some(result);
    }
    results
        .into_iter()
        .zip(indices)
        .map(|(r, &i)| {
            r.unwrap_or_else(|| {
                let message = "plugfest crashed while running this case (a bug: please report it)".to_string();
                skeleton(scenarios, servers, &cases[i], Verdict::Error, message)
            })
        })
        .collect()
}

/// Fold a rerun into the first run's result: the same failure again keeps the verdict; anything
/// else means the server did not behave the same twice, and the case is `flaky`. The first run's
/// evidence stays in place, the rerun is attached.
fn judge_rerun(first: &mut CaseResult, rerun: CaseResult) {
    let said = |c: &CaseResult| match &c.message {
        Some(m) => format!("{} ({m})", c.verdict.as_str()),
        None => c.verdict.as_str().to_string(),
    };
    if rerun.verdict.is_failure() {
        if let Some(m) = &mut first.message {
            m.push_str(&format!(" [failed again on the rerun: {}]", rerun.verdict.as_str()));
        }
    } else {
        first.message = Some(format!("flaky: first run {}; rerun {}", said(first), said(&rerun)));
        first.verdict = Verdict::Flaky;
    }
    first.rerun = Some(Box::new(rerun));
}

/// Provision the case's accounts, run it, and turn the outcome into a result.
async fn run_one(
    scenarios: &[Scenario],
    servers: &ServersFile,
    harness: &Harness,
    case: &Case,
    opts: &RunOptions,
) -> CaseResult {
    let started = Instant::now();
    let scenario = &scenarios[case.scenario];
    let roles: BTreeMap<String, &crate::servers::Server> =
        case.roles.iter().map(|(role, &i)| (role.clone(), &servers.servers[i])).collect();
    let tag = accounts::random_tag(6);
    // A case its servers cannot serve (an IDN account on a server without an IDN domain) is skipped.
    if let Some(message) = case::unsupported(scenario, &roles) {
        return skeleton(scenarios, servers, case, Verdict::Skip, message);
    }
    let declared = case::declared_failures(scenario, &roles);
    let has_peers = scenario.script.actors.iter().any(|a| a.peer.is_some())
        || scenario.script.gates.iter().any(|g| g.kind == crate::scenario::GateKind::S2sFeature);
    let harness = match harness.get().await {
        _ if !has_peers => None,
        Some(Ok(env)) => Some(env),
        None => {
            let message = "unsupported: the case plays a remote server (peer actor), and the servers file has no \
                           `harness:` section (docs/servers-file.md)";
            return skeleton(scenarios, servers, case, Verdict::Skip, message.to_string());
        }
        Some(Err(why)) => return skeleton(scenarios, servers, case, Verdict::Error, why),
    };

    let mut connections: Vec<ConnectionRecord> = Vec::new();
    let mut provisioned = BTreeMap::new();
    let tag = &tag;
    // Accounts with `create: false` are left to a `register` step; their JID is known when it parses.
    for decl in scenario.accounts.iter().filter(|d| !d.create) {
        let server = case::account_server(roles[&decl.role], decl.idn);
        let localpart = case::account_localpart(decl, tag);
        if let Ok(jid) = crate::jid::Jid::parse(&format!("{localpart}@{}", server.domain)) {
            provisioned.insert(decl.name.clone(), case::Account { jid, password: accounts::random_tag(20) });
        }
    }
    let to_create: Vec<_> = scenario.accounts.iter().filter(|d| d.create).collect();
    let jobs = to_create.iter().map(|decl| {
        let server = case::account_server(roles[&decl.role], decl.idn);
        let localpart = case::account_localpart(decl, tag);
        async move { accounts::provision(&server, &decl.name, &localpart, opts.step_timeout, opts.max_stanza).await }
    });
    let created = futures_util::future::join_all(jobs).await;
    let mut failure = None;
    for (decl, (result, record)) in to_create.iter().zip(created) {
        connections.extend(record);
        match result {
            Ok(account) => {
                provisioned.insert(decl.name.clone(), account);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(message) = failure {
        let mut r = skeleton(scenarios, servers, case, Verdict::Error, message);
        r.connections = connections;
        r.duration_ms = started.elapsed().as_millis() as u64;
        return r;
    }

    let env = CaseEnv {
        scenario,
        roles,
        accounts: provisioned,
        step_timeout: opts.step_timeout,
        max_stanza: opts.max_stanza,
        harness,
        tag: tag.clone(),
    };
    let outcome = match tokio::time::timeout(opts.case_timeout, case::run_case(env)).await {
        Ok(outcome) => outcome,
        Err(_) => CaseOutcome {
            verdict: Verdict::Error,
            message: Some(format!("the case did not finish within {:?} (plugfest's safety cap)", opts.case_timeout)),
            steps: vec![],
            connections: vec![],
        },
    };
    connections.extend(outcome.connections);
    let (verdict, message) = case::judge_expected(outcome.verdict, outcome.message, &declared);
    let mut r = skeleton(scenarios, servers, case, verdict, message.unwrap_or_default());
    r.message = r.message.filter(|m| !m.is_empty());
    r.steps = outcome.steps;
    r.connections = connections;
    r.duration_ms = started.elapsed().as_millis() as u64;
    r
}

/// The run's harness for peer actors: started by the first case that has a peer, then shared.
pub struct Harness {
    config: Option<crate::servers::HarnessConfig>,
    started: tokio::sync::OnceCell<Result<peer::HarnessEnv, String>>,
}

/// How long a run waits for the harness address while another plugfest run holds it.
const HARNESS_WAIT: Duration = Duration::from_secs(180);

impl Harness {
    pub fn new(servers: &ServersFile) -> Harness {
        Harness { config: servers.harness.clone(), started: tokio::sync::OnceCell::new() }
    }

    /// The listener, bound on first use. One address serves every peer domain, so two runs in
    /// one lab cannot both listen: a run waits (bounded) for another to finish with it.
    async fn get(&self) -> Option<Result<&peer::HarnessEnv, String>> {
        let config = self.config.as_ref()?;
        let started = self.started.get_or_init(|| async { listen(config).await }).await;
        Some(started.as_ref().map_err(Clone::clone))
    }
}

async fn listen(config: &crate::servers::HarnessConfig) -> Result<peer::HarnessEnv, String> {
    let ca = crate::ca::CaDir::new(&config.ca_dir);
    let waited = Instant::now();
    loop {
        match crate::xmpp::s2s::S2sHub::bind(config.listen).await {
            Ok(mut hub) => {
                if let Some((_, addr)) = &config.direct_tls {
                    hub.listen_direct_tls(*addr)
                        .await
                        .map_err(|e| format!("the harness cannot play remote servers: {e}"))?;
                }
                return Ok(peer::HarnessEnv {
                    hub,
                    trust: crate::net::tls::Trust::CaFile(ca.root_cert()),
                    ca,
                    parent_domain: config.domain.clone(),
                    direct_domain: config.direct_tls.as_ref().map(|(d, _)| d.clone()),
                    direct_turn: Default::default(),
                });
            }
            Err(e) if e.to_string().contains("in use") && waited.elapsed() < HARNESS_WAIT => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(format!(
                    "the harness cannot play remote servers: {e} (waited {:?} for the address)",
                    waited.elapsed()
                ))
            }
        }
    }
}

/// A result with the case's identity filled in and nothing else.
fn skeleton(
    scenarios: &[Scenario],
    servers: &ServersFile,
    case: &Case,
    verdict: Verdict,
    message: String,
) -> CaseResult {
    let sc = &scenarios[case.scenario];
    CaseResult {
        scenario: sc.id.clone(),
        title: sc.title.clone(),
        file: sc.file.display().to_string(),
        roles: case.roles.iter().map(|(r, &i)| (r.clone(), servers.servers[i].name.clone())).collect(),
        verdict,
        message: Some(message),
        duration_ms: 0,
        steps: vec![],
        connections: vec![],
        rerun: None,
    }
}
