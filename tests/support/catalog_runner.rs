//! The catalog runner shared by the catalog test binaries (tests/catalog.rs: the default lab;
//! tests/catalog_compat.rs: area G on a lab in the `compat` s2s profile).

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use plugfest::plan::{self, Case};
use plugfest::results::{area_of, CaseResult, Verdict};
use plugfest::run::{self, RunOptions};
use plugfest::scenario::{self, Scenario};
use plugfest::servers::ServersFile;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Cases are mostly waiting on the network: run more at once than there are cores.
const DEFAULT_THREADS: usize = 8;

/// Which lab a catalog test binary runs against.
pub struct Target {
    /// The lab when no `PLUGFEST_SERVERS` is given (brought up with `plugfest lab up` and these flags).
    pub lab: plugfest::lab::LabConfig,
    /// Extra `plugfest lab up` arguments, e.g. `--profile compat`.
    pub lab_args: Vec<String>,
    /// Scenario files or folders.
    pub scenarios: Vec<PathBuf>,
}

/// Load the scenarios, plan the trials and run them (libtest-mimic: cargo test's usual flags work).
pub fn run(target: Target) -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() && std::env::var_os("RUST_TEST_THREADS").is_none() {
        args.test_threads = Some(DEFAULT_THREADS);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Err(e) = std::env::set_current_dir(root) {
        eprintln!("cannot enter {}: {e}", root.display());
        return ExitCode::from(2);
    }

    let (scenarios, load_errors) = scenario::load_paths(&target.scenarios);
    let scenarios = Arc::new(scenarios);
    let chosen = std::env::var_os("PLUGFEST_SERVERS").map(PathBuf::from);
    let servers_path = chosen.clone().unwrap_or_else(|| plugfest::lab::servers_file(&target.lab));

    // Names first: they decide whether anything will run (and so whether the lab is needed).
    let names_from = |servers: &ServersFile| -> Vec<(String, Case)> {
        plan::expand(&scenarios, servers, None).into_iter().map(|c| (trial_name(&scenarios, servers, &c), c)).collect()
    };
    let listing_servers = ServersFile::load(&servers_path).unwrap_or_else(|_| lab_servers());
    let will_run = !args.list
        && names_from(&listing_servers).iter().any(|(name, _)| !args.is_filtered_out(&Trial::test(name, || Ok(()))));

    let mut setup: Result<Arc<ServersFile>, String> = Ok(Arc::new(listing_servers));
    if will_run {
        setup = prepare(&target, chosen.is_some(), &servers_path).map(Arc::new);
        if let Ok(servers) = &setup {
            if let Some(ns) = &servers.netns {
                // Re-runs this test binary inside the namespace (same arguments); returns only on failure.
                if let Err(code) = plugfest::netns::enter(ns) {
                    return code;
                }
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => Arc::new(rt),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };

    let listing = setup.as_ref().map(|s| s.as_ref().clone()).unwrap_or_else(|_| lab_servers());
    let cases = names_from(&listing);
    let collected: Arc<Mutex<Vec<Option<CaseResult>>>> = Arc::new(Mutex::new(vec![None; cases.len()]));
    let run_id = run::new_run_id();
    let started_at =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let started = Instant::now();

    // One harness (the listener for peer actors) for every trial: only one can hold its address.
    let harness = setup.as_ref().ok().map(|servers| Arc::new(run::Harness::new(servers)));
    let mut trials: Vec<Trial> = load_errors
        .iter()
        .map(|e| {
            let message = e.to_string();
            Trial::test(format!("load::{}", e.file.display()), move || Err(message.into()))
        })
        .collect();
    for (index, (name, case)) in cases.into_iter().enumerate() {
        let (setup, scenarios, runtime, collected, harness) =
            (setup.clone(), scenarios.clone(), runtime.clone(), collected.clone(), harness.clone());
        let run_id = run_id.clone();
        trials.push(Trial::ignorable_test(name, move || {
            let servers = setup.map_err(Failed::from)?;
            let opts = RunOptions { jobs: 1, ask_versions: false, run_id, ..RunOptions::default() };
            let harness = harness.ok_or("no servers to run against")?;
            let run = run::run_cases_with(scenarios, servers, harness, vec![case], &opts, |_| {});
            let mut run = runtime.block_on(run);
            let result = run.cases.pop().ok_or("the run returned no result for the case")?;
            let outcome = judge(&result);
            collected.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
            outcome
        }));
    }

    let conclusion = libtest_mimic::run(&args, trials);

    let results: Vec<CaseResult> =
        collected.lock().unwrap_or_else(|p| p.into_inner()).iter_mut().filter_map(Option::take).collect();
    if let (Ok(servers), false) = (&setup, results.is_empty()) {
        let versions = runtime.block_on(ask_versions(servers));
        let run = run::assemble(&run_id, started_at, started.elapsed(), servers, &versions, results);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugfest-catalog").join(&run_id);
        match plugfest::report::write_all(&run, &dir) {
            Ok(paths) => {
                eprintln!("reports of this run: {} (also results.json, junit.xml, summary.md)", paths.html.display())
            }
            Err(e) => eprintln!("could not write the reports to {}: {e}", dir.display()),
        }
    }
    conclusion.exit_code()
}

/// `roster::roster-remote-add::prosody→ejabberd`
fn trial_name(scenarios: &[Scenario], servers: &ServersFile, case: &Case) -> String {
    let sc = &scenarios[case.scenario];
    let who: Vec<&str> = sc.roles.iter().map(|r| servers.servers[case.roles[r]].name.as_str()).collect();
    format!("{}::{}::{}", area_of(&sc.file.to_string_lossy()), sc.id, who.join("→"))
}

/// A case's verdict as a trial outcome.
fn judge(result: &CaseResult) -> Result<Completion, Failed> {
    match result.verdict {
        // Flaky: the rerun passed; the verdict and both runs are in the reports, never hidden.
        Verdict::Pass | Verdict::Warn | Verdict::Xfail | Verdict::Flaky => Ok(Completion::Completed),
        Verdict::Skip => Ok(Completion::ignored_with(result.message.clone().unwrap_or_else(|| "skipped".into()))),
        Verdict::Fail | Verdict::Error | Verdict::Xpass => {
            let text = plugfest::report::failure_text(result);
            Err(format!("{}: {}\n{text}", result.verdict.as_str(), result.name()).into())
        }
    }
}

/// The servers to run against: the file named by PLUGFEST_SERVERS, or the local lab's (brought up if
/// it is not). Errors say what to do.
fn prepare(target: &Target, chosen: bool, servers_path: &Path) -> Result<ServersFile, String> {
    let inside_lab = plugfest::netns::inside(&target.lab.netns);
    if !chosen && !inside_lab {
        if !is_root() {
            return Err("the catalog runs against the local lab, which needs root (network namespaces, apt): \
                        run `cargo test` as root, or set PLUGFEST_SERVERS to a servers file"
                .into());
        }
        let out = Command::new(env!("CARGO_BIN_EXE_plugfest"))
            .args(["lab", "up", "--netns", &target.lab.netns, "--state-dir"])
            .arg(&target.lab.state_dir)
            .args(&target.lab_args)
            .output()
            .map_err(|e| format!("cannot run `plugfest lab up`: {e}"))?;
        if !out.status.success() {
            return Err(format!("`plugfest lab up` failed:\n{}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    ServersFile::load(servers_path).map_err(|e| e.to_string())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The lab's servers by name, so `--list` works before the lab was ever started: a minimal servers
/// file (docs/servers-file.md) written to a temporary folder.
fn lab_servers() -> ServersFile {
    let mut yaml = String::from("servers:\n");
    for s in plugfest::lab::SERVERS {
        yaml.push_str(&format!("  - {{name: {}, domain: {}, accounts: in-band}}\n", s.name, s.domain));
    }
    let dir = tempfile::tempdir().expect("a temporary folder for the lab's servers list");
    let path = dir.path().join("lab-servers.yaml");
    std::fs::write(&path, yaml).expect("write the lab's servers list");
    ServersFile::load(&path).expect("the lab's servers list is a valid servers file")
}

/// Each server's XEP-0092 answer for the report's metadata; a few seconds at most.
async fn ask_versions(servers: &ServersFile) -> Vec<Option<String>> {
    let opts = RunOptions::default();
    let asks = servers.servers.iter().map(|s| run::server_version::ask(s, opts.step_timeout, opts.max_stanza));
    tokio::time::timeout(opts.step_timeout, futures_util::future::join_all(asks))
        .await
        .unwrap_or_else(|_| vec![None; servers.servers.len()])
}
