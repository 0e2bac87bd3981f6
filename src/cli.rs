//! The command line: parse arguments, call the library, turn outcomes into exit codes.
//! Exit codes: 0 nothing failed, 1 something failed, 2 usage or configuration error.

use crate::plan;
use crate::report;
use crate::results::Run;
use crate::run::{self, RunOptions, DEFAULT_JOBS};
use crate::scenario;
use crate::servers::ServersFile;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  plugfest demo              # lab up (Prosody + ejabberd), run everything
  plugfest lab up            # only start the lab; `plugfest lab status` shows it
  plugfest run               # run scenarios/ against the lab
  plugfest run --servers my-servers.yaml scenarios/messaging
  plugfest run --filter roster --jobs 4
  plugfest run --list        # show the cases a run would execute
  plugfest ca init && plugfest ca issue example.org
  plugfest diff reports/OLD/results.json reports/latest/results.json   # regressions between runs
  plugfest report reports/latest     # re-make index.html, junit.xml, summary.md from results.json

Exit codes: 0 nothing failed, 1 something failed, 2 usage or configuration error.
Docs: README.md, docs/scenario-format.md, docs/servers-file.md, docs/lab.md, docs/lab-ca.md";

#[derive(Parser, Debug)]
#[command(
    name = "plugfest",
    version,
    about = "XMPP interoperability conformance harness: scenarios on every pair of real servers, as a pass/fail matrix",
    long_about = "plugfest runs YAML scenarios (scripted client bots sending and expecting stanzas, each check carrying \
its RFC/XEP reference) against real XMPP servers. A two-role scenario runs on every ordered pair of servers: the \
diagonal is same-server, the rest is federation. Results land in reports/<run-id>/results.json.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios against servers and print a pass/fail matrix per scenario.
    Run(RunArgs),
    /// Start the local lab if it is not up, run every scenario against it, say where the results are.
    Demo(DemoArgs),
    /// Validate scenario files (and a servers file) without running anything.
    Check(CheckArgs),
    /// The local lab: Prosody and ejabberd federating over verified TLS in a network namespace (needs root).
    #[command(subcommand, after_help = "The lab's servers file is the default for `plugfest run`. Docs: docs/lab.md")]
    Lab(LabCommand),
    /// A private lab CA: a root, an intermediate and server certificates for interop events.
    #[command(subcommand, after_help = "Docs: docs/lab-ca.md")]
    Ca(CaCommand),
    /// Compare two runs' results.json: regressions, fixes, new and removed cases (exit 1 on regressions).
    #[command(after_help = "Exit codes: 0 no regressions, 1 regressions, 2 a file cannot be read. Docs: docs/ci.md")]
    Diff(DiffArgs),
    /// Re-make a run's reports (index.html, junit.xml, summary.md) from its results.json.
    #[command(after_help = "Docs: docs/results-schema.md")]
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// A results.json, or a run's report folder.
    #[arg(value_name = "RUN")]
    run: PathBuf,
    /// Write the reports here instead of next to results.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// The earlier run: a results.json, or a run's report folder.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The later run: a results.json, or a run's report folder.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Print markdown (for a CI step summary) instead of text.
    #[arg(long)]
    markdown: bool,
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Install missing packages (apt), then start dnsmasq, Prosody and ejabberd. Safe to repeat: a lab that is up
    /// is reconfigured (affected servers restarted) when --profile or --server-cert differ from what it runs.
    Up(LabUpArgs),
    /// Stop exactly the processes `up` started and remove the network namespace.
    Down(LabArgs),
    /// Show what runs, where, and the servers file (no root needed).
    Status(LabArgs),
}

#[derive(Args, Debug)]
struct LabArgs {
    /// Name of the network namespace (several labs can run side by side).
    #[arg(long, value_name = "NAME", default_value = "plugfest")]
    netns: String,
    /// Where the lab keeps its configs, certificates, data, logs and servers file.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/plugfest/lab")]
    state_dir: PathBuf,
}

#[derive(Args, Debug)]
struct LabUpArgs {
    #[command(flatten)]
    lab: LabArgs,
    /// s2s policy of both servers (CATALOG §0.7): secure = valid certificates only; compat = dialback allowed
    /// when a peer's certificate is untrusted. TLS is mandatory in both.
    #[arg(long, value_name = "secure|compat", default_value = "secure")]
    profile: crate::servers::S2sPolicy,
    /// Have a server present a certificate fixture instead of its good certificate, e.g.
    /// `ejabberd.lab=wrongname` (fixtures: `plugfest ca fixtures --list`). Repeatable; without it, good certificates.
    #[arg(long, value_name = "SERVER=FIXTURE")]
    server_cert: Vec<crate::lab::ServerCert>,
}

impl LabUpArgs {
    fn options(&self) -> crate::lab::LabOptions {
        crate::lab::LabOptions { profile: self.profile, server_certs: self.server_cert.clone() }
    }
}

impl LabArgs {
    fn config(&self) -> crate::lab::LabConfig {
        crate::lab::LabConfig { netns: self.netns.clone(), state_dir: self.state_dir.clone() }
    }
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create a root CA and an intermediate in DIR (refuses to overwrite without --force).
    Init {
        #[arg(long, value_name = "DIR", default_value = "ca")]
        dir: PathBuf,
        /// Replace an existing CA (every certificate it issued stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue a server certificate for each DOMAIN (DNS names DOMAIN and *.DOMAIN, serverAuth + clientAuth),
    /// or with --fixture a test certificate into DIR/fixtures/DOMAIN/NAME/.
    Issue {
        #[arg(long, value_name = "DIR", default_value = "ca")]
        dir: PathBuf,
        /// A test certificate instead of the good leaf: wrongname, expired, srvid-only, … (`ca fixtures --list`).
        #[arg(long, value_name = "NAME")]
        fixture: Option<crate::ca::Fixture>,
        #[arg(value_name = "DOMAIN", required = true)]
        domains: Vec<String>,
    },
    /// Issue every test certificate (good, expired, wrong name, unknown CA, identity forms, …) for DOMAIN
    /// into DIR/fixtures/DOMAIN/NAME/.
    Fixtures {
        #[arg(long, value_name = "DIR", default_value = "ca")]
        dir: PathBuf,
        #[arg(value_name = "DOMAIN", default_value = crate::ca::DEFAULT_FIXTURE_DOMAIN)]
        domain: String,
        /// Only list the fixtures and what each one tests.
        #[arg(long)]
        list: bool,
    },
    /// Explain a certificate file: names, usages, validity, the chain, trust, and whether a server would
    /// accept it for --domain (RFC 6120 §13.7.2). Exit code 1 when it would be rejected.
    Inspect {
        /// PEM (a chain, a bundle with key, `openssl s_client -showcerts` output) or DER.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The XMPP domain the certificate is presented for.
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        /// Trust anchors (PEM) [default: DIR/root.pem when it exists].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// The lab CA folder, whose root.pem is the default trust anchor.
        #[arg(long, value_name = "DIR", default_value = "ca")]
        dir: PathBuf,
    },
    /// Write DOMAIN's key and certificates as one PEM bundle (Tigase) or PKCS#12 (Openfire, Java servers).
    Export {
        #[arg(long, value_name = "DIR", default_value = "ca")]
        dir: PathBuf,
        #[arg(value_name = "DOMAIN")]
        domain: String,
        /// pem-bundle or pkcs12.
        #[arg(long, value_name = "FORMAT")]
        format: crate::ca::export::ExportFormat,
        /// Export a test certificate instead of the good leaf.
        #[arg(long, value_name = "NAME")]
        fixture: Option<crate::ca::Fixture>,
        /// PKCS#12 password [default: changeit, Java's default].
        #[arg(long, value_name = "PASSWORD")]
        password: Option<String>,
        /// Output file [default: DOMAIN.pem or DOMAIN.p12 next to the certificate].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Servers file describing the servers under test [default: the local lab's, once `plugfest lab up` ran].
    #[arg(long, short = 's', value_name = "FILE")]
    servers: Option<PathBuf>,
    /// Scenario files or folders (searched recursively for *.yaml).
    #[arg(value_name = "SCENARIOS", default_value = "scenarios")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    opts: RunFlags,
}

#[derive(Args, Debug)]
struct RunFlags {
    /// Only cases whose name contains this text, e.g. `roster` or `[prosody→ejabberd]`.
    #[arg(long, short = 'f', value_name = "TEXT")]
    filter: Option<String>,
    /// List the cases that would run, then exit.
    #[arg(long)]
    list: bool,
    /// Cases to run at once (each has its own fresh accounts).
    #[arg(long, short = 'j', value_name = "N", default_value_t = DEFAULT_JOBS)]
    jobs: usize,
    /// Folder for reports; each run writes <DIR>/<run-id>/results.json.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    reports: PathBuf,
    /// Deadline for each login step (connect, TLS, SASL, bind), e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    step_timeout: Duration,
    /// Run failing cases again N times; a case whose verdict changes is reported `flaky` (0: never).
    #[arg(long, value_name = "N", default_value_t = 1)]
    reruns: usize,
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    opts: RunFlags,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Also validate this servers file.
    #[arg(long, short = 's', value_name = "FILE")]
    servers: Option<PathBuf>,
    /// Scenario files or folders.
    #[arg(value_name = "SCENARIOS", default_value = "scenarios")]
    paths: Vec<PathBuf>,
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => cmd_run(args.servers, &args.paths, &args.opts),
        Command::Demo(args) => cmd_demo(&args.opts),
        Command::Check(args) => cmd_check(args.servers.as_deref(), &args.paths),
        Command::Lab(cmd) => cmd_lab(cmd),
        Command::Ca(cmd) => cmd_ca(cmd),
        Command::Diff(args) => cmd_diff(&args),
        Command::Report(args) => cmd_report(&args),
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{} {message}", console::style("error:").red().bold());
    ExitCode::from(2)
}

fn failure(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{} {message}", console::style("error:").red().bold());
    ExitCode::from(1)
}

/// Load scenarios; on errors print them all and return None.
fn load_scenarios(paths: &[PathBuf]) -> Option<Vec<scenario::Scenario>> {
    for p in paths {
        if !p.exists() {
            eprintln!("{} {} does not exist", console::style("error:").red().bold(), p.display());
            if p == Path::new("scenarios") {
                eprintln!("  hint: run plugfest from the project folder, or name scenario files or folders");
            }
            return None;
        }
    }
    let (scenarios, errors) = scenario::load_paths(paths);
    for e in &errors {
        eprintln!("{} {e}", console::style("error:").red().bold());
    }
    if !errors.is_empty() {
        return None;
    }
    if scenarios.is_empty() {
        eprintln!("{} no scenarios (*.yaml) under {paths:?}", console::style("error:").red().bold());
        return None;
    }
    Some(scenarios)
}

fn cmd_run(servers: Option<PathBuf>, paths: &[PathBuf], flags: &RunFlags) -> ExitCode {
    let servers_path = match servers {
        Some(p) => p,
        None => match default_servers_file() {
            Some(p) => p,
            None => {
                return usage_error(
                    "no servers file given and the local lab is not up\n  hint: run `plugfest lab up` (or `plugfest demo`), \
                     or pass --servers FILE (docs/servers-file.md)",
                )
            }
        },
    };
    let servers = match ServersFile::load(&servers_path) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let Some(scenarios) = load_scenarios(paths) else { return ExitCode::from(2) };
    let cases = plan::expand(&scenarios, &servers, flags.filter.as_deref());
    if flags.list {
        for c in &cases {
            println!("{}", c.name(&scenarios, &servers));
        }
        eprintln!("{} cases", cases.len());
        return ExitCode::SUCCESS;
    }
    if cases.is_empty() {
        return usage_error(format!("no cases match the filter {:?}", flags.filter.as_deref().unwrap_or("")));
    }
    if let Some(ns) = &servers.netns {
        if let Err(code) = crate::netns::enter(ns) {
            return code;
        }
    }
    execute(scenarios, servers, cases, flags)
}

/// Where the local lab writes its servers file, if the lab has written one.
fn default_servers_file() -> Option<PathBuf> {
    let p = crate::lab::servers_file(&crate::lab::LabConfig::default());
    p.is_file().then_some(p)
}

fn execute(
    scenarios: Vec<scenario::Scenario>,
    servers: ServersFile,
    cases: Vec<plan::Case>,
    flags: &RunFlags,
) -> ExitCode {
    let opts = RunOptions {
        jobs: flags.jobs.max(1),
        step_timeout: flags.step_timeout,
        reruns: flags.reruns,
        ..RunOptions::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return failure(format!("cannot start the async runtime: {e}")),
    };
    let total = cases.len();
    eprintln!(
        "running {total} cases from {} scenarios on {} servers ({} at a time); run id {}",
        scenarios.len(),
        servers.servers.len(),
        opts.jobs,
        opts.run_id
    );
    let started = Instant::now();
    let progress = Progress::new(total);
    let run: Run = runtime.block_on(run::run_cases(Arc::new(scenarios), Arc::new(servers), cases, &opts, |p| {
        progress.case_done(&p, started.elapsed())
    }));
    progress.finish();

    let dir = flags.reports.join(&run.run_id);
    let written = report::write_all(&run, &dir);
    print!("{}", report::terminal::render(&run));
    match written {
        Ok(paths) => {
            link_latest(&flags.reports, &run.run_id);
            println!("results: {}", paths.results.display());
            println!("report:  {}", paths.html.display());
            println!("junit:   {}", paths.junit.display());
            println!("summary: {}", paths.summary.display());
        }
        Err(e) => return failure(format!("cannot write the reports to {}: {e}", dir.display())),
    }
    if run.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `reports/latest` → the newest run, for people and scripts that want "the last one".
fn link_latest(reports: &Path, run_id: &str) {
    let link = reports.join("latest");
    let _ = std::fs::remove_file(&link);
    let _ = std::os::unix::fs::symlink(run_id, &link);
}

/// Progress on stderr: a bar on a terminal, one line per case otherwise (CI logs).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    first: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = console::Term::stderr().is_term().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { bar, first: std::sync::atomic::AtomicBool::new(true) }
    }

    fn case_done(&self, p: &run::Progress<'_>, elapsed: Duration) {
        let verdict = report::terminal::style(p.result.verdict).apply_to(p.result.verdict.as_str());
        let rerun = if p.attempt > 0 { format!("rerun {} ", p.attempt) } else { String::new() };
        let line = format!(
            "[{rerun}{}/{}] {verdict} {} ({:.1}s)",
            p.done,
            p.total,
            p.case_name,
            p.result.duration_ms as f64 / 1000.0
        );
        if self.first.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let msg = format!("first result after {:.1}s", elapsed.as_secs_f64());
            match &self.bar {
                Some(bar) => bar.println(msg),
                None => eprintln!("{msg}"),
            }
        }
        match &self.bar {
            Some(bar) => {
                bar.set_message(p.case_name.to_string());
                if p.attempt == 0 {
                    bar.inc(1);
                }
                if p.result.verdict.is_failure() {
                    bar.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn cmd_demo(flags: &RunFlags) -> ExitCode {
    let cfg = crate::lab::LabConfig::default();
    // After re-entering the namespace (see `netns::enter`) this runs a second time: the lab is up then.
    if !crate::netns::inside(&cfg.netns) {
        eprintln!("bringing the local lab up (Prosody + ejabberd)…");
        match crate::lab::up(&cfg, &|m| eprintln!("  {m}")) {
            Ok(status) => eprintln!("{status}"),
            Err(e) => return failure(format!("the lab did not come up: {e:#}")),
        }
    }
    let servers = crate::lab::servers_file(&cfg);
    let code = cmd_run(Some(servers), &[PathBuf::from("scenarios")], flags);
    eprintln!("\nthe lab stays up for more runs: `plugfest run`; stop it with `plugfest lab down`");
    code
}

fn cmd_lab(cmd: LabCommand) -> ExitCode {
    let say = |m: &str| eprintln!("{m}");
    let outcome = match &cmd {
        LabCommand::Up(a) => crate::lab::up_with(&a.lab.config(), &a.options(), &say).map(|s| println!("{s}")),
        LabCommand::Down(a) => crate::lab::down(&a.config(), &say),
        LabCommand::Status(a) => crate::lab::status(&a.config()).map(|s| println!("{s}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(format!("{e:#}")),
    }
}

fn cmd_ca(cmd: CaCommand) -> ExitCode {
    match cmd {
        CaCommand::Init { dir, force } => match crate::ca::CaDir::init(&dir, force) {
            Ok(files) => {
                println!("lab CA created in {}", dir.display());
                println!("  trust anchor (give this to every server and client): {}", files.root_cert.display());
                println!("  intermediate: {}", files.intermediate_cert.display());
                println!("next: plugfest ca issue --dir {} DOMAIN…", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => failure(format!("{e:#}")),
        },
        CaCommand::Issue { dir, fixture, domains } => {
            let ca = match open_ca(&dir) {
                Ok(ca) => ca,
                Err(code) => return code,
            };
            for d in &domains {
                if let Err(e) = crate::ca::dns_name(d) {
                    return usage_error(format!("{d}: {e:#}"));
                }
            }
            for d in &domains {
                let issued = match fixture {
                    Some(f) => ca.issue_fixture(d, f),
                    None => ca.issue(d),
                };
                match issued {
                    Ok(leaf) => {
                        match fixture {
                            Some(f) => println!("{}, fixture {f}: {}", leaf.domain, f.description()),
                            None => println!("{}:", leaf.domain),
                        }
                        println!("  certificate chain (what the server presents): {}", leaf.chain.display());
                        println!("  private key: {}", leaf.key.display());
                        println!(
                            "  key + chain (+ root) in one file (ejabberd certfiles): {}",
                            leaf.fullchain_key.display()
                        );
                    }
                    Err(e) => return failure(format!("{d}: {e:#}")),
                }
            }
            ExitCode::SUCCESS
        }
        CaCommand::Fixtures { dir, domain, list } => {
            if list {
                for f in crate::ca::Fixture::ALL {
                    println!("{:<16} {}", f.name(), f.description());
                }
                return ExitCode::SUCCESS;
            }
            let ca = match open_ca(&dir) {
                Ok(ca) => ca,
                Err(code) => return code,
            };
            match ca.issue_all_fixtures(&domain) {
                Ok(all) => {
                    let folders: Vec<String> = all
                        .iter()
                        .map(|(_, leaf)| format!("{}/", leaf.cert.parent().unwrap_or(&dir).display()))
                        .collect();
                    let width = folders.iter().map(|f| f.chars().count()).max().unwrap_or(0);
                    for ((f, _), folder) in all.iter().zip(&folders) {
                        println!("{:<16} {folder:<width$}  {}", f.name(), f.description());
                    }
                    println!("each folder: cert.pem chain.pem key.pem fullchain-key.pem (docs/lab-ca.md)");
                    println!("next: plugfest ca inspect --dir {} --domain {domain} FOLDER/chain.pem", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => failure(format!("{domain}: {e:#}")),
            }
        }
        CaCommand::Inspect { file, domain, ca, dir } => {
            let anchors = ca.or_else(|| Some(dir.join("root.pem")).filter(|p| p.is_file()));
            match crate::ca::inspect::inspect_file(&file, domain.as_deref(), anchors.as_deref()) {
                Ok(report) => {
                    print!("{report}");
                    match report.verdict {
                        crate::ca::inspect::Verdict::Rejected(_) => ExitCode::from(1),
                        _ => ExitCode::SUCCESS,
                    }
                }
                Err(e) => usage_error(format!("{e:#}")),
            }
        }
        CaCommand::Export { dir, domain, format, fixture, password, out } => {
            let ca = crate::ca::CaDir::new(&dir);
            let leaf = match fixture {
                Some(f) => ca.fixture_files(&domain, f),
                None => ca.leaf_files(&domain),
            };
            let written =
                leaf.and_then(|leaf| crate::ca::export::export(&leaf, format, password.as_deref(), out.as_deref()));
            match written {
                Ok(path) => {
                    println!("{format}: {}", path.display());
                    if format == crate::ca::export::ExportFormat::Pkcs12 && password.is_none() {
                        println!("  password: {}", crate::ca::export::DEFAULT_PKCS12_PASSWORD);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => failure(format!("{e:#}")),
            }
        }
    }
}

/// The CA in `dir`, or a usage error saying how to create one.
fn open_ca(dir: &Path) -> Result<crate::ca::CaDir, ExitCode> {
    let ca = crate::ca::CaDir::new(dir);
    if ca.exists() {
        Ok(ca)
    } else {
        Err(usage_error(format!(
            "no CA in {}\n  hint: create one with `plugfest ca init --dir {}`",
            dir.display(),
            dir.display()
        )))
    }
}

/// A run's results.json, given as the file or as its report folder.
fn load_run(path: &Path) -> Result<Run, String> {
    let file = if path.is_dir() { path.join("results.json") } else { path.to_path_buf() };
    Run::read_json(&file).map_err(|e| format!("{e:#}"))
}

/// `plugfest report RUN`: the reports are functions of results.json, so they can be re-made.
fn cmd_report(args: &ReportArgs) -> ExitCode {
    let run = match load_run(&args.run) {
        Ok(run) => run,
        Err(e) => return usage_error(e),
    };
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None if args.run.is_dir() => args.run.clone(),
        None => args.run.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        Ok([report::html::write(&run, &dir)?, report::junit::write(&run, &dir)?, report::summary::write(&run, &dir)?])
    });
    match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => failure(format!("cannot write the reports to {}: {e}", dir.display())),
    }
}

/// `plugfest diff OLD NEW`: exit 1 when a case that did not fail before fails now.
fn cmd_diff(args: &DiffArgs) -> ExitCode {
    let (old, new) = match (load_run(&args.old), load_run(&args.new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => return usage_error(e),
    };
    let diff = report::diff::compare(&old, &new);
    if args.markdown {
        print!("{}", diff.to_markdown());
    } else {
        print!("{}", diff.to_text());
    }
    if diff.has_regressions() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn cmd_check(servers: Option<&Path>, paths: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    let mut servers_file = None;
    if let Some(s) = servers {
        match ServersFile::load(s) {
            Ok(f) => {
                eprintln!("{}: {} servers OK", s.display(), f.servers.len());
                servers_file = Some(f);
            }
            Err(e) => {
                eprintln!("{} {e}", console::style("error:").red().bold());
                ok = false;
            }
        }
    }
    match load_scenarios(paths) {
        Some(sc) => {
            eprintln!("{} scenarios OK", sc.len());
            // Declarations for scenarios not checked here may be fine (a subset was given): warn only.
            for stray in servers_file.map(|f| f.stray_declarations(&sc)).unwrap_or_default() {
                eprintln!("{} {stray}", console::style("warning:").yellow().bold());
            }
        }
        None => ok = false,
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
