//! The local lab: a network namespace, dnsmasq, Prosody and ejabberd.
//!
//! `up` builds it (docs/lab.md): namespace `plugfest` with only `lo` up; dnsmasq on 127.0.0.53 authoritative
//! for `lab`; a lab CA under `<state_dir>/ca`; Prosody for prosody.lab on 127.0.0.11 and ejabberd for
//! ejabberd.lab on 127.0.0.12, each as its own user; then writes `<state_dir>/servers.yaml`.
//! Every process it starts is recorded in `<state_dir>/lab-state.json`; `down` stops exactly those.
//! The servers' knowledge lives in `prosody.rs` / `ejabberd.rs`; this file only sequences them.

mod dns;
mod ejabberd;
mod netns;
mod packages;
mod process;
mod prosody;
mod ready;

use crate::ca::CaDir;
pub use crate::ca::Fixture;
pub use crate::servers::S2sPolicy;
use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use process::ProcRecord;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Where and under which namespace name the lab lives. Several labs can run side by side with different values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabConfig {
    pub netns: String,
    pub state_dir: PathBuf,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig { netns: "plugfest".to_string(), state_dir: PathBuf::from("/var/lib/plugfest/lab") }
    }
}

/// One XMPP server of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabServer {
    /// Its name in the servers file and the matrix.
    pub name: &'static str,
    pub domain: &'static str,
    pub address: Ipv4Addr,
    /// Product name for reports, e.g. `Prosody`.
    pub product: &'static str,
    /// The Debian package it comes from (its version goes into the servers file).
    pub package: &'static str,
}

pub const PROSODY: LabServer = LabServer {
    name: "prosody",
    domain: "prosody.lab",
    address: Ipv4Addr::new(127, 0, 0, 11),
    product: "Prosody",
    package: prosody::PACKAGE,
};

pub const EJABBERD: LabServer = LabServer {
    name: "ejabberd",
    domain: "ejabberd.lab",
    address: Ipv4Addr::new(127, 0, 0, 12),
    product: "ejabberd",
    package: ejabberd::PACKAGE,
};

pub const SERVERS: [LabServer; 2] = [PROSODY, EJABBERD];

/// How `up` configures the servers (`plugfest lab up --profile … --server-cert …`, docs/lab.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabOptions {
    /// The s2s policy of both servers (CATALOG §0.7).
    pub profile: S2sPolicy,
    /// Servers that present a certificate fixture (CATALOG §0.6) instead of their good certificate.
    pub server_certs: Vec<ServerCert>,
}

/// One lab server presenting a certificate fixture: `ejabberd.lab=wrongname` (or `ejabberd=wrongname`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerCert {
    pub server: LabServer,
    pub fixture: Fixture,
}

impl FromStr for ServerCert {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let names = || SERVERS.map(|s| s.domain).join(", ");
        let (who, fixture) = s.split_once('=').ok_or_else(|| {
            format!("{s:?} is not SERVER=FIXTURE, e.g. ejabberd.lab=wrongname (servers: {})", names())
        })?;
        let server = SERVERS
            .into_iter()
            .find(|x| x.domain == who.trim() || x.name == who.trim())
            .ok_or_else(|| format!("{who:?} is not a lab server; the lab servers are {}", names()))?;
        Ok(ServerCert { server, fixture: fixture.trim().parse()? })
    }
}

impl LabOptions {
    /// What `server` runs with under these options.
    fn settings(&self, server: &LabServer) -> ServerSettings {
        let fixture = self.server_certs.iter().rev().find(|c| c.server.name == server.name).map(|c| c.fixture);
        ServerSettings { profile: self.profile, fixture: fixture.filter(|f| *f != Fixture::Good) }
    }

    fn check(&self) -> Result<()> {
        for (i, a) in self.server_certs.iter().enumerate() {
            if let Some(b) =
                self.server_certs[..i].iter().find(|b| b.server.name == a.server.name && b.fixture != a.fixture)
            {
                bail!("{} is given two certificates ({} and {}): choose one", a.server.domain, b.fixture, a.fixture);
            }
        }
        Ok(())
    }
}

/// What one lab server runs with: its s2s policy and, instead of its good certificate, a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerSettings {
    pub profile: S2sPolicy,
    pub fixture: Option<Fixture>,
}

/// The name and address kept for the harness's own s2s peer (it has an A record in the lab's DNS).
pub const HARNESS: (&str, Ipv4Addr) = ("harness.lab", Ipv4Addr::new(127, 0, 0, 20));

pub const C2S_PORT: u16 = 5222;
pub const S2S_PORT: u16 = 5269;

const STATE_FILE: &str = "lab-state.json";
const LOCK_FILE: &str = "lab.lock";
const DNS_DEADLINE: Duration = Duration::from_secs(10);
const SERVER_DEADLINE: Duration = Duration::from_secs(30);
/// The health check of an already running lab: everything should answer at once.
const HEALTH_DEADLINE: Duration = Duration::from_secs(3);
const STOP_GRACE: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 20;

/// Component names in start order (stopped in reverse).
const COMPONENTS: [&str; 3] = [dns::NAME, PROSODY.name, EJABBERD.name];

/// Per component of the lab: is it running, where, for which domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentStatus {
    /// `dnsmasq`, `prosody` or `ejabberd`.
    pub name: String,
    pub running: bool,
    /// The recorded PID of the server process (ejabberd: the Erlang VM), when one is recorded.
    pub pid: Option<u32>,
    pub address: SocketAddr,
    /// The domain it serves (`lab` for the DNS server).
    pub domain: String,
}

/// What `up` and `status` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabStatus {
    pub netns: String,
    pub netns_exists: bool,
    pub state_dir: PathBuf,
    pub components: Vec<ComponentStatus>,
    pub servers_file: PathBuf,
    /// Per lab server, as the last `up` configured it (empty when nothing is recorded).
    pub setups: Vec<ServerSetup>,
}

/// How a running lab server is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSetup {
    pub server: String,
    pub profile: S2sPolicy,
    /// The certificate fixture it presents instead of its good certificate.
    pub fixture: Option<String>,
}

impl LabStatus {
    /// The s2s policy profile of the lab's servers, when they all have the same recorded one.
    pub fn profile(&self) -> Option<S2sPolicy> {
        let first = self.setups.first()?.profile;
        self.setups.iter().all(|s| s.profile == first).then_some(first)
    }
}

impl LabStatus {
    /// The namespace exists, every component runs, and the servers file is written.
    pub fn is_up(&self) -> bool {
        self.netns_exists && self.components.iter().all(|c| c.running) && self.servers_file.is_file()
    }

    /// Something of a lab is left (namespace, a running process, a record): `up` must clean it first.
    fn anything_left(&self, lab: &Layout) -> bool {
        self.netns_exists || self.components.iter().any(|c| c.running) || lab.state_file().exists()
    }
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_up() {
            "up"
        } else if self.netns_exists || self.components.iter().any(|c| c.running) {
            "partly up (run `plugfest lab up` to restart it, or `plugfest lab down`)"
        } else {
            "down"
        };
        writeln!(f, "lab in network namespace {}: {verdict}", self.netns)?;
        for c in &self.components {
            let state = if c.running { "running" } else { "stopped" };
            let pid = match (c.running, c.pid) {
                (true, Some(pid)) => format!("pid {pid}"),
                _ => "-".to_string(),
            };
            writeln!(f, "  {:<9} {:<8} {:<10} {:<16} {}", c.name, state, pid, c.address, c.domain)?;
        }
        if !self.setups.is_empty() {
            let profiles: Vec<String> = match self.profile() {
                Some(p) => vec![p.to_string()],
                None => self.setups.iter().map(|s| format!("{} {}", s.server, s.profile)).collect(),
            };
            writeln!(
                f,
                "s2s policy: {} (CATALOG §0.7; `plugfest lab up --profile secure|compat`)",
                profiles.join(", ")
            )?;
            let certs: Vec<String> = self
                .setups
                .iter()
                .map(|s| match &s.fixture {
                    Some(fx) => format!("{} presents the `{fx}` fixture", s.server),
                    None => format!("{} good", s.server),
                })
                .collect();
            let restore = if self.setups.iter().any(|s| s.fixture.is_some()) {
                " (`plugfest lab up` without --server-cert restores the good ones)"
            } else {
                ""
            };
            writeln!(f, "certificates: {}{restore}", certs.join(", "))?;
        }
        write!(f, "servers file: {}", self.servers_file.display())?;
        if !self.servers_file.is_file() {
            write!(f, " (not written)")?;
        }
        Ok(())
    }
}

/// `state_dir/servers.yaml`: the servers file describing the running lab.
pub fn servers_file(cfg: &LabConfig) -> PathBuf {
    cfg.state_dir.join("servers.yaml")
}

/// `state_dir/ca`: the lab's CA; its `root.pem` is the trust anchor for lab clients.
pub fn ca_dir(cfg: &LabConfig) -> PathBuf {
    cfg.state_dir.join("ca")
}

/// Start the lab with the default options (`secure` profile, good certificates): [`up_with`].
pub fn up(cfg: &LabConfig, progress: &dyn Fn(&str)) -> Result<LabStatus> {
    up_with(cfg, &LabOptions::default(), progress)
}

/// Start the lab (installing missing packages first). Idempotent: a healthy lab configured as `opts` say is left
/// alone; a healthy lab configured otherwise (another profile or certificate, changed templates) has the affected
/// components restarted; a partial one (after a reboot, a kill, a failed start) is cleaned up and started again.
/// Needs root.
pub fn up_with(cfg: &LabConfig, opts: &LabOptions, progress: &dyn Fn(&str)) -> Result<LabStatus> {
    let started = Instant::now();
    opts.check()?;
    let lab = Layout::for_config(cfg)?;
    require_root("plugfest lab up")?;
    packages::ensure_installed(progress)?;
    lab.create_state_dir()?;
    let _lock = lab.lock()?;

    let current = status(cfg)?;
    if current.is_up() && lab.is_healthy() {
        if reconfigure(&lab, opts, progress)? {
            progress(&format!("lab reconfigured in {:.1} s", started.elapsed().as_secs_f64()));
        } else {
            progress("the lab is already up and answering");
        }
        return status(cfg);
    }
    if current.anything_left(&lab) {
        progress("cleaning up what is left of an earlier lab");
        stop_all(&lab, progress)?;
    }
    if let Err(e) = start_all(&lab, opts, progress) {
        progress("the lab did not come up: stopping what was started (logs stay in the state folder)");
        if let Err(cleanup) = stop_all(&lab, progress) {
            return Err(e.context(format!("cleaning up failed too: {cleanup:#}")));
        }
        return Err(e);
    }
    progress(&format!("lab up in {:.1} s", started.elapsed().as_secs_f64()));
    status(cfg)
}

/// Stop every process `up` recorded, delete the namespace and /etc/netns/<netns>/. Idempotent. Needs root.
pub fn down(cfg: &LabConfig, progress: &dyn Fn(&str)) -> Result<()> {
    let lab = Layout::for_config(cfg)?;
    require_root("plugfest lab down")?;
    if !cfg.state_dir.exists() && !netns::exists(&lab.netns) && !netns::etc_dir(&lab.netns).exists() {
        progress("the lab is not running");
        return Ok(());
    }
    lab.create_state_dir()?;
    let _lock = lab.lock()?;
    stop_all(&lab, progress)?;
    progress("lab down");
    Ok(())
}

/// What runs now, from the recorded PIDs (works without root; does not probe the servers).
pub fn status(cfg: &LabConfig) -> Result<LabStatus> {
    let lab = Layout::for_config(cfg)?;
    let state = lab.load_state()?;
    let components = COMPONENTS
        .iter()
        .map(|&name| {
            let main = state.component(name).and_then(|c| c.first());
            let (address, domain) = component_address(name);
            ComponentStatus {
                name: name.to_string(),
                running: main.is_some_and(|p| p.is_running()),
                pid: main.map(|p| p.pid),
                address,
                domain,
            }
        })
        .collect();
    Ok(LabStatus {
        netns: lab.netns.clone(),
        netns_exists: netns::exists(&lab.netns),
        state_dir: lab.state_dir.clone(),
        components,
        servers_file: servers_file(cfg),
        setups: state
            .settings
            .iter()
            .map(|s| ServerSetup { server: s.server.clone(), profile: s.profile, fixture: s.fixture.clone() })
            .collect(),
    })
}

fn component_address(name: &str) -> (SocketAddr, String) {
    match SERVERS.iter().find(|s| s.name == name) {
        Some(s) => (SocketAddr::new(IpAddr::V4(s.address), C2S_PORT), s.domain.to_string()),
        None => (SocketAddr::new(dns::ADDRESS, 53), dns::ZONE.to_string()),
    }
}

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("`{what}` needs root (network namespaces, starting servers as their own users): run it with sudo");
    }
    Ok(())
}

/// Build everything, recording each process as soon as it exists so a failure can be cleaned up.
fn start_all(lab: &Layout, opts: &LabOptions, progress: &dyn Fn(&str)) -> Result<()> {
    let ca = CaDir::new(lab.ca_dir());
    if !ca.exists() {
        progress(&format!("creating the lab CA in {}", ca.dir.display()));
        CaDir::init(&ca.dir, false)?;
    }

    progress(&format!("creating network namespace {}", lab.netns));
    let mut state = LabState { netns: lab.netns.clone(), ..LabState::default() };
    lab.save_state(&state)?;
    netns::create(&lab.netns, &hosts_file(), &format!("nameserver {}\n", dns::ADDRESS))?;
    start_dns(lab, &mut state, progress)?;

    // Start both servers before waiting for either: their start-up times overlap.
    let mut waits = Vec::new();
    for server in SERVERS {
        let settings = opts.settings(&server);
        let (record, logs) = spawn_server(lab, &ca, &server, &settings, progress)?;
        state.record(server.name, record.clone());
        state.set_settings(server.name, &settings);
        lab.save_state(&state)?;
        waits.push((server, record, logs, Instant::now()));
    }
    for (server, record, logs, spawned) in waits {
        await_server(lab, &mut state, &server, &record, &logs, spawned, progress)?;
    }
    write_servers_file(lab, &state)?;
    Ok(())
}

/// Start dnsmasq (config written fresh) and wait until it answers.
fn start_dns(lab: &Layout, state: &mut LabState, progress: &dyn Fn(&str)) -> Result<()> {
    progress(&format!("starting dnsmasq on {} for `{}`", dns::ADDRESS, dns::ZONE));
    let dnsmasq = dns::start(lab)?;
    state.record(dns::NAME, dnsmasq.clone());
    lab.save_state(state)?;
    wait_ready(lab, "dnsmasq", &dnsmasq, &[dns::log_file(lab)], DNS_DEADLINE, move |alive| {
        ready::wait_for_dns(dns::ADDRESS, PROSODY.domain, Instant::now() + DNS_DEADLINE, alive)
    })
}

/// Issue its certificates (the good ones, and the fixture `settings` name), write its config, start it.
fn spawn_server(
    lab: &Layout,
    ca: &CaDir,
    server: &LabServer,
    settings: &ServerSettings,
    progress: &dyn Fn(&str),
) -> Result<(ProcRecord, Vec<PathBuf>)> {
    let ca_file = ca.root_cert();
    let leaf = ca.issue(server.domain)?;
    let fixture = match settings.fixture {
        Some(f) => Some(ca.issue_fixture(server.domain, f)?),
        None => None,
    };
    let version = software(server);
    let cert = match settings.fixture {
        Some(f) => format!("the `{f}` certificate fixture ({})", f.description()),
        None => "a good certificate".to_string(),
    };
    progress(&format!(
        "starting {} for {} on {}: s2s policy {}, {cert}",
        version.as_deref().unwrap_or(server.product),
        server.domain,
        server.address,
        settings.profile
    ));
    if server.name == PROSODY.name {
        // Prosody's IDN vhost (CATALOG F08): the certificate names its A-label.
        let idn_leaf = ca.issue(prosody::IDN_DOMAIN)?;
        let record = prosody::start(lab, settings, &leaf, &idn_leaf, fixture.as_ref(), &ca_file)?;
        Ok((record, prosody::log_files(lab)))
    } else {
        let record = ejabberd::start(lab, settings, fixture.as_ref().unwrap_or(&leaf), &ca_file)?;
        Ok((record, ejabberd::log_files(lab)))
    }
}

/// Wait until a spawned server answers; for ejabberd, record its Erlang VM.
fn await_server(
    lab: &Layout,
    state: &mut LabState,
    server: &LabServer,
    record: &ProcRecord,
    logs: &[PathBuf],
    spawned: Instant,
    progress: &dyn Fn(&str),
) -> Result<()> {
    let addr = SocketAddr::new(IpAddr::V4(server.address), C2S_PORT);
    let domain = server.domain;
    wait_ready(lab, server.name, record, logs, SERVER_DEADLINE, move |alive| {
        ready::wait_for_stream_features(addr, domain, spawned + SERVER_DEADLINE, alive)
    })?;
    progress(&format!("{} answers on {addr} ({:.1} s)", server.name, spawned.elapsed().as_secs_f64()));
    if server.name == EJABBERD.name {
        // The VM is the real server: record it first, so status shows it and down stops it.
        let vm = ejabberd::find_vm(lab, record).ok_or_else(|| {
            anyhow!("ejabberd answers, but its Erlang VM (beam.smp) was not found under pid {}", record.pid)
        })?;
        state.record_main(server.name, vm);
        lab.save_state(state)?;
    }
    Ok(())
}

/// `Prosody 0.12.3`, from the installed package.
fn software(server: &LabServer) -> Option<String> {
    let version = packages::installed_version(server.package)?;
    Some(format!("{} {}", server.product, packages::upstream_version(&version)))
}

/// Stop one component's recorded processes and forget them.
fn stop_component(lab: &Layout, state: &mut LabState, name: &str, progress: &dyn Fn(&str)) -> Result<()> {
    if let Some(records) = state.component(name) {
        let records = records.to_vec();
        if name == EJABBERD.name {
            ejabberd::stop(lab, &records, progress)?;
        } else {
            process::stop(&records, STOP_GRACE, progress)?;
        }
    }
    state.components.retain(|c| c.name != name);
    state.settings.retain(|c| c.server != name);
    lab.save_state(state)
}

/// Bring a healthy lab to `opts`: restart dnsmasq if its config changed, and each server whose profile,
/// certificate or config differs from what it runs with. Returns whether anything was restarted.
fn reconfigure(lab: &Layout, opts: &LabOptions, progress: &dyn Fn(&str)) -> Result<bool> {
    let mut state = lab.load_state()?;
    let ca = CaDir::new(lab.ca_dir());
    let mut changed = false;
    if dns::written_config(lab) != dns::config()? {
        progress("the lab's DNS config changed: restarting dnsmasq");
        stop_component(lab, &mut state, dns::NAME, progress)?;
        start_dns(lab, &mut state, progress)?;
        changed = true;
    }
    for server in SERVERS {
        let want = opts.settings(&server);
        let (written, desired) = if server.name == PROSODY.name {
            (prosody::written_config(lab), prosody::desired_config(lab, &want, &ca.root_cert())?)
        } else {
            (ejabberd::written_config(lab), ejabberd::desired_config(lab, &want, &ca.root_cert())?)
        };
        let have = state.settings_of(server.name);
        if have == Some(want) && written == desired {
            continue;
        }
        let why = match have {
            Some(h) if h == want => "its config template changed".to_string(),
            Some(h) => format!("from {} to {}", describe_settings(&h), describe_settings(&want)),
            None => format!("to {} (no configuration recorded)", describe_settings(&want)),
        };
        progress(&format!("restarting {}: {why}", server.name));
        stop_component(lab, &mut state, server.name, progress)?;
        let (record, logs) = spawn_server(lab, &ca, &server, &want, progress)?;
        state.record(server.name, record.clone());
        state.set_settings(server.name, &want);
        lab.save_state(&state)?;
        await_server(lab, &mut state, &server, &record, &logs, Instant::now(), progress)?;
        changed = true;
    }
    write_servers_file(lab, &state)?;
    Ok(changed)
}

fn describe_settings(s: &ServerSettings) -> String {
    match s.fixture {
        Some(f) => format!("{} with the `{f}` certificate", s.profile),
        None => format!("{} with a good certificate", s.profile),
    }
}

/// Write the servers file for what runs (atomically: runs may be reading it).
fn write_servers_file(lab: &Layout, state: &LabState) -> Result<()> {
    let ca = CaDir::new(lab.ca_dir());
    let mut entries = Vec::new();
    for server in SERVERS {
        let settings =
            state.settings_of(server.name).unwrap_or(ServerSettings { profile: S2sPolicy::Secure, fixture: None });
        // ejabberd presents one certificate on c2s and s2s: with a fixture, its clients need anchors that
        // make that certificate's chain valid (where one exists), or no bot could log in to see the failure.
        let ca_file = match settings.fixture {
            Some(f) if server.name == EJABBERD.name => client_trust_bundle(lab, &ca, &server, f)?,
            _ => ca.root_cert(),
        };
        entries.push(ServerEntry { server, software: software(&server), ca_file, profile: settings.profile });
    }
    let text = render_servers_file(&lab.netns, &lab.ca_dir(), &entries);
    let path = lab.servers_file();
    if fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = lab.state_dir.join("servers.yaml.tmp");
    lab.write_config(&tmp, &text, None)?;
    fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

/// `<state>/<server>/client-trust.pem`: the lab root and intermediate, the Rogue CA root when there is one, and
/// the certificates of the fixture's chain, as trust anchors for c2s clients of a server presenting the fixture.
/// Chains that are only untrusted (selfsigned, unknownca, nointermediate) validate with it; a wrong name or
/// validity period still does not.
fn client_trust_bundle(lab: &Layout, ca: &CaDir, server: &LabServer, fixture: Fixture) -> Result<PathBuf> {
    let files = ca.files();
    let leaf = ca.fixture_files(server.domain, fixture)?;
    let mut sources = vec![files.root_cert, files.intermediate_cert, leaf.chain];
    let rogue = ca.rogue_files().0;
    if rogue.is_file() {
        sources.push(rogue);
    }
    let mut pem = String::new();
    for source in &sources {
        let text = fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))?;
        pem.push_str(text.trim_end());
        pem.push('\n');
    }
    let path = lab.component_dir(server.name).join("client-trust.pem");
    lab.write_config(&path, &pem, None)?;
    Ok(path)
}

/// Wait (inside the namespace) until `check` says ready; else fail with the tail of the logs.
fn wait_ready(
    lab: &Layout,
    what: &str,
    record: &ProcRecord,
    logs: &[PathBuf],
    deadline: Duration,
    check: impl FnOnce(&dyn Fn() -> bool) -> bool + Send + 'static,
) -> Result<()> {
    let watched = record.clone();
    let ready = netns::run_inside(&lab.netns, move || check(&|| watched.is_running()))?;
    if ready {
        return Ok(());
    }
    let why = if record.is_running() {
        format!("did not answer within {deadline:?}")
    } else {
        "exited while starting".to_string()
    };
    let mut msg = format!("{what} (pid {}) {why}; its files are in {}", record.pid, lab.component_dir(what).display());
    for log in logs {
        let tail = process::tail_file(log, LOG_TAIL_LINES);
        if !tail.is_empty() {
            msg.push_str(&format!("\n--- last lines of {} ---\n{tail}", log.display()));
        }
    }
    Err(anyhow!(msg))
}

/// Stop recorded processes (reverse start order), then remove the namespace, its /etc overlay, the state
/// file and the servers file. Refuses to delete a namespace that still holds processes it did not start.
fn stop_all(lab: &Layout, progress: &dyn Fn(&str)) -> Result<()> {
    let state = lab.load_state()?;
    let mut errors = Vec::new();
    for name in COMPONENTS.iter().rev() {
        let Some(records) = state.component(name) else { continue };
        let stopped = if *name == EJABBERD.name {
            ejabberd::stop(lab, records, progress)
        } else {
            process::stop(records, STOP_GRACE, progress)
        };
        if let Err(e) = stopped {
            errors.push(format!("{e:#}"));
        }
    }
    // Children of the servers (e.g. Erlang's helpers) exit with them: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = netns::pids_inside(&lab.netns);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(process::POLL);
        left = netns::pids_inside(&lab.netns);
    }
    if !left.is_empty() {
        let list: Vec<String> =
            left.iter().map(|p| format!("{p} ({})", process::cmdline(*p).unwrap_or_default())).collect();
        errors.push(format!(
            "processes plugfest did not start still run inside namespace {}: {}; stop them, then run \
             `plugfest lab down` again",
            lab.netns,
            list.join(", ")
        ));
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    if netns::exists(&lab.netns) {
        progress(&format!("deleting network namespace {}", lab.netns));
    }
    netns::delete(&lab.netns)?;
    for file in [lab.state_file(), lab.servers_file()] {
        if file.exists() {
            fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        }
    }
    Ok(())
}

/// /etc/hosts inside the namespace: the lab names, and this machine's own name (else libc asks DNS for it
/// over and over).
fn hosts_file() -> String {
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut text = format!("127.0.0.1\tlocalhost {}\n::1\tlocalhost ip6-localhost ip6-loopback\n", hostname.trim());
    for s in SERVERS {
        text.push_str(&format!("{}\t{}\n", s.address, s.domain));
    }
    text.push_str(&format!("{}\t{}\n", HARNESS.1, HARNESS.0));
    text
}

/// One server's entry in the lab's servers file.
#[derive(Clone, Debug)]
pub struct ServerEntry {
    pub server: LabServer,
    /// e.g. `Prosody 0.12.3`.
    pub software: Option<String>,
    /// Trust anchors for its certificate (the lab root, or a bundle when it presents a fixture).
    pub ca_file: PathBuf,
    pub profile: S2sPolicy,
}

/// The servers file for the running lab (format: docs/servers-file.md, parsed by `ServersFile::load`).
pub fn render_servers_file(netns: &str, ca_dir: &Path, servers: &[ServerEntry]) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let mut text = String::from(
        "# Written by `plugfest lab up` for the local lab; rewritten on every start, removed by `plugfest lab down`.\n",
    );
    text.push_str(&format!("netns: {}\n", q(netns)));
    // Peer actors: the harness plays `<case>.harness.lab` (lab DNS resolves every subdomain to its address).
    text.push_str(&format!(
        "harness:\n  domain: {}\n  listen: \"{}:{S2S_PORT}\"\n  ca_dir: {}\n",
        q(HARNESS.0),
        HARNESS.1,
        q(&ca_dir.to_string_lossy())
    ));
    // XEP-0368: a fixed name with an `_xmpps-server._tcp` record, for the case where a server connects with direct TLS.
    text.push_str(&format!(
        "  direct_tls: {{domain: {}, listen: \"{}:{}\"}}\n",
        q(dns::HARNESS_DIRECT_TLS.0),
        HARNESS.1,
        dns::HARNESS_DIRECT_TLS.1
    ));
    text.push_str("servers:\n");
    for e in servers {
        let s = &e.server;
        text.push_str(&format!(
            "  - name: {}\n    domain: {}\n    address: {}\n    port: {C2S_PORT}\n    tls: required\n    \
             ca_file: {}\n    accounts: in-band\n    s2s_policy: {}\n",
            q(s.name),
            q(s.domain),
            s.address,
            q(&e.ca_file.to_string_lossy()),
            e.profile
        ));
        if let Some(sw) = &e.software {
            text.push_str(&format!("    software: {}\n", q(sw)));
        }
        if s.name == PROSODY.name {
            text.push_str(&format!("    idn_domain: {}\n", q(prosody::IDN_DOMAIN)));
        }
        // CATALOG §0.5 manifest: both Debian packages prepare JIDs with the stringprep profiles (libidn,
        // erlang stringprep); jid-profile-divergence checks the claim.
        text.push_str("    jid_profile: stringprep\n");
        text.push_str(&render_expected_failures(s.name));
    }
    text
}

/// The lab's declared expected failures (src/lab/expected-failures.yaml), compiled in.
pub const EXPECTED_FAILURES: &str = include_str!("expected-failures.yaml");

/// `expected_failures:` of one lab server, as servers-file YAML. If the compiled-in file does not
/// parse, its error becomes the value, so loading the servers file fails and says why.
fn render_expected_failures(server: &str) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let file = Path::new("src/lab/expected-failures.yaml");
    let declared = match crate::servers::parse_expected_failures(file, EXPECTED_FAILURES) {
        Ok(mut all) => all.remove(server).unwrap_or_default(),
        Err(e) => return format!("    expected_failures: {}\n", q(&format!("{e} (fix it and rebuild plugfest)"))),
    };
    if declared.is_empty() {
        return String::new();
    }
    let mut text = String::from("    expected_failures:\n");
    for f in declared {
        text.push_str(&format!("      - scenario: {}\n        reason: {}\n", q(&f.scenario), q(&f.reason)));
        if !f.roles.is_empty() {
            let roles: Vec<String> = f.roles.iter().map(|r| q(r)).collect();
            text.push_str(&format!("        roles: [{}]\n", roles.join(", ")));
        }
        if let Some(link) = &f.link {
            text.push_str(&format!("        link: {}\n", q(link)));
        }
    }
    text
}

/// Render a config template; unknown variables are errors (a typo must not silently become "").
fn render(name: &str, template: &str, ctx: minijinja::Value) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("lua", |s: String| lua_string(&s));
    env.add_filter("yaml", |s: String| serde_json::Value::from(s).to_string());
    env.add_filter("sh", |s: String| format!("'{}'", s.replace('\'', r"'\''")));
    env.render_str(template, ctx).with_context(|| format!("cannot render the {name} template"))
}

/// A Lua string literal.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The recorded processes of a lab (`<state_dir>/lab-state.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct LabState {
    netns: String,
    components: Vec<ComponentRecord>,
    /// How each server was configured (absent in state files of older plugfest versions).
    #[serde(default)]
    settings: Vec<SettingsRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SettingsRecord {
    server: String,
    profile: S2sPolicy,
    /// The certificate fixture's name; `None`: the good certificate.
    #[serde(default)]
    fixture: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ComponentRecord {
    name: String,
    /// The first is the server process itself (what status shows); the others are helpers (ejabberd's wrapper).
    processes: Vec<ProcRecord>,
}

impl LabState {
    fn component(&self, name: &str) -> Option<&[ProcRecord]> {
        self.components.iter().find(|c| c.name == name).map(|c| c.processes.as_slice())
    }

    fn entry(&mut self, name: &str) -> &mut Vec<ProcRecord> {
        if let Some(i) = self.components.iter().position(|c| c.name == name) {
            return &mut self.components[i].processes;
        }
        self.components.push(ComponentRecord { name: name.to_string(), processes: Vec::new() });
        &mut self.components.last_mut().expect("just pushed").processes
    }

    fn record(&mut self, name: &str, p: ProcRecord) {
        self.entry(name).push(p);
    }

    fn record_main(&mut self, name: &str, p: ProcRecord) {
        self.entry(name).insert(0, p);
    }

    fn set_settings(&mut self, server: &str, s: &ServerSettings) {
        self.settings.retain(|r| r.server != server);
        let fixture = s.fixture.map(|f| f.name().to_string());
        self.settings.push(SettingsRecord { server: server.to_string(), profile: s.profile, fixture });
    }

    /// What `server` was started with; `None` when unknown (or the fixture name is not known any more).
    fn settings_of(&self, server: &str) -> Option<ServerSettings> {
        let r = self.settings.iter().find(|r| r.server == server)?;
        let fixture = match &r.fixture {
            None => None,
            Some(name) => Some(Fixture::from_name(name)?),
        };
        Some(ServerSettings { profile: r.profile, fixture })
    }
}

/// Paths and file helpers for one lab.
pub(crate) struct Layout {
    state_dir: PathBuf,
    netns: String,
}

impl Layout {
    fn new(state_dir: &Path, netns: &str) -> Layout {
        Layout { state_dir: state_dir.to_path_buf(), netns: netns.to_string() }
    }

    fn for_config(cfg: &LabConfig) -> Result<Layout> {
        netns::check_name(&cfg.netns)?;
        if !cfg.state_dir.is_absolute() {
            bail!("the lab's state folder must be an absolute path, not {}", cfg.state_dir.display());
        }
        Ok(Layout::new(&cfg.state_dir, &cfg.netns))
    }

    fn component_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    fn ca_dir(&self) -> PathBuf {
        self.state_dir.join("ca")
    }

    fn state_file(&self) -> PathBuf {
        self.state_dir.join(STATE_FILE)
    }

    fn servers_file(&self) -> PathBuf {
        self.state_dir.join("servers.yaml")
    }

    /// `ip netns exec <ns> [setpriv … as user]` with a clean environment; append the program and its arguments.
    fn exec_in_netns(&self, user: Option<&str>) -> Command {
        let mut cmd = netns::exec(&self.netns);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("LANG", "C.UTF-8");
        if let Some(user) = user {
            // setpriv execs too: the PID stays the server's.
            cmd.args(["setpriv", &format!("--reuid={user}"), &format!("--regid={user}"), "--init-groups", "--"]);
        }
        cmd
    }

    /// The state folder, searchable by the servers' users all the way down (they read their configs in it).
    fn create_state_dir(&self) -> Result<()> {
        if !self.state_dir.exists() {
            fs::create_dir_all(&self.state_dir)
                .with_context(|| format!("cannot create the lab's state folder {}", self.state_dir.display()))?;
            set_mode(&self.state_dir, 0o755)?;
        }
        for dir in self.state_dir.ancestors() {
            let mode =
                fs::metadata(dir).with_context(|| format!("cannot inspect {}", dir.display()))?.permissions().mode();
            if mode & 0o001 == 0 {
                bail!(
                    "the servers run as their own users and cannot reach {}: {} is not searchable by others \
                     (mode {:o}); run `chmod o+x {}` or choose another state folder",
                    self.state_dir.display(),
                    dir.display(),
                    mode & 0o777,
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// One lab command at a time per state folder.
    fn lock(&self) -> Result<Flock<fs::File>> {
        let path = self.state_dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            anyhow!("another `plugfest lab` command is working on {} ({e}); wait for it", self.state_dir.display())
        })
    }

    fn load_state(&self) -> Result<LabState> {
        let path = self.state_file();
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; stop the lab's processes by hand, delete the file and run `plugfest lab down`",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LabState::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save_state(&self, state: &LabState) -> Result<()> {
        let text = serde_json::to_string_pretty(state).context("cannot encode the lab state")?;
        let (path, tmp) = (self.state_file(), self.state_dir.join(format!("{STATE_FILE}.tmp")));
        fs::write(&tmp, text + "\n").with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// A folder owned by root (0755), or by `owner` (0750).
    fn prepare_dir(&self, dir: &Path, owner: Option<&str>) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match owner {
            Some(user) => {
                chown_to(dir, user)?;
                set_mode(dir, 0o750)
            }
            None => set_mode(dir, 0o755),
        }
    }

    /// Like `prepare_dir`, emptied first: a fresh start begins with no accounts, rosters or logs.
    fn fresh_dir(&self, dir: &Path, owner: &str) -> Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        self.prepare_dir(dir, Some(owner))
    }

    /// Copy a certificate or key; a key goes to `owner` with mode 0600, anything else is 0644.
    fn install_file(&self, from: &Path, to: &Path, owner: Option<&str>) -> Result<()> {
        fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        match owner {
            Some(user) => {
                set_mode(to, 0o600)?;
                chown_to(to, user)
            }
            None => set_mode(to, 0o644),
        }
    }

    /// Write a generated file; readable by everyone, or only by root and `group` (0640) when it holds a secret.
    fn write_config(&self, path: &Path, text: &str, group: Option<&str>) -> Result<()> {
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        match group {
            Some(user) => {
                set_mode(path, 0o640)?;
                let gid = lookup_user(user)?.gid;
                nix::unistd::chown(path, None, Some(gid)).with_context(|| format!("cannot chgrp {}", path.display()))
            }
            None => set_mode(path, 0o644),
        }
    }

    /// DNS answers and both servers offer stream features, quickly.
    fn is_healthy(&self) -> bool {
        netns::run_inside(&self.netns, || {
            let deadline = Instant::now() + HEALTH_DEADLINE;
            ready::wait_for_dns(dns::ADDRESS, PROSODY.domain, deadline, &|| true)
                && SERVERS.iter().all(|s| {
                    let addr = SocketAddr::new(IpAddr::V4(s.address), C2S_PORT);
                    ready::wait_for_stream_features(addr, s.domain, deadline, &|| true)
                })
        })
        .unwrap_or(false)
    }
}

fn lookup_user(name: &str) -> Result<nix::unistd::User> {
    nix::unistd::User::from_name(name)
        .with_context(|| format!("cannot look up user {name}"))?
        .ok_or_else(|| anyhow!("user {name} does not exist; is the {name} package installed correctly?"))
}

fn chown_to(path: &Path, user: &str) -> Result<()> {
    let u = lookup_user(user)?;
    nix::unistd::chown(path, Some(u.uid), Some(u.gid))
        .with_context(|| format!("cannot chown {} to {user}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::{Accounts, ServersFile};

    #[test]
    fn servers_file_renders_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca/root.pem");
        fs::create_dir_all(ca.parent().unwrap()).unwrap();
        fs::write(&ca, "").unwrap();
        let entry = |server, software: Option<&str>, profile| ServerEntry {
            server,
            software: software.map(String::from),
            ca_file: ca.clone(),
            profile,
        };
        for name in ["root.key", "intermediate.pem", "intermediate.key"] {
            fs::write(dir.path().join("ca").join(name), "").unwrap();
        }
        let text = render_servers_file(
            "plugfest",
            &dir.path().join("ca"),
            &[entry(PROSODY, Some("Prosody 0.12.3"), S2sPolicy::Secure), entry(EJABBERD, None, S2sPolicy::Compat)],
        );
        let path = dir.path().join("servers.yaml");
        fs::write(&path, text).unwrap();
        let file = ServersFile::load(&path).unwrap();
        assert_eq!(file.netns.as_deref(), Some("plugfest"));
        let harness = file.harness.as_ref().expect("the lab plays remote servers");
        assert_eq!((harness.domain.as_str(), harness.listen.to_string()), ("harness.lab", "127.0.0.20:5269".into()));
        assert_eq!(file.servers.len(), 2);
        let p = file.get("prosody").unwrap();
        assert_eq!(p.domain, "prosody.lab");
        assert_eq!(p.address, Some("127.0.0.11".parse().unwrap()));
        assert_eq!(p.port, Some(5222));
        assert_eq!(p.tls, crate::net::tls::TlsMode::Required);
        assert_eq!(p.trust, crate::net::tls::Trust::CaFile(ca.clone()));
        assert_eq!(p.accounts, Accounts::InBand);
        assert_eq!(p.software.as_deref(), Some("Prosody 0.12.3"));
        let e = file.get("ejabberd").unwrap();
        assert_eq!((e.domain.as_str(), e.software.as_ref()), ("ejabberd.lab", None));
        assert_eq!((p.s2s_policy, e.s2s_policy), (Some(S2sPolicy::Secure), Some(S2sPolicy::Compat)));
    }

    #[test]
    fn server_certs_parse_and_options_give_settings() {
        let c: ServerCert = "ejabberd.lab=wrongname".parse().unwrap();
        assert_eq!((c.server, c.fixture), (EJABBERD, Fixture::WrongName));
        let c: ServerCert = "prosody=selfsigned".parse().unwrap();
        assert_eq!((c.server, c.fixture), (PROSODY, Fixture::SelfSigned));
        assert!("ejabberd.lab".parse::<ServerCert>().unwrap_err().contains("SERVER=FIXTURE"));
        assert!("x.lab=wrongname".parse::<ServerCert>().unwrap_err().contains("not a lab server"));
        assert!("ejabberd=nope".parse::<ServerCert>().unwrap_err().contains("unknown fixture"));

        let opts = LabOptions {
            profile: S2sPolicy::Compat,
            server_certs: vec!["ejabberd=expired".parse().unwrap(), "prosody=good".parse().unwrap()],
        };
        opts.check().unwrap();
        assert_eq!(
            opts.settings(&EJABBERD),
            ServerSettings { profile: S2sPolicy::Compat, fixture: Some(Fixture::Expired) }
        );
        assert_eq!(opts.settings(&PROSODY), ServerSettings { profile: S2sPolicy::Compat, fixture: None });
        let twice = LabOptions {
            server_certs: vec!["ejabberd=expired".parse().unwrap(), "ejabberd.lab=wrongname".parse().unwrap()],
            ..LabOptions::default()
        };
        assert!(twice.check().unwrap_err().to_string().contains("two certificates"));
        assert_eq!(LabOptions::default().settings(&PROSODY).profile, S2sPolicy::Secure);
    }

    #[test]
    fn status_shows_profile_and_certificates() {
        let mut state = LabState::default();
        state.set_settings("prosody", &ServerSettings { profile: S2sPolicy::Compat, fixture: None });
        state.set_settings(
            "ejabberd",
            &ServerSettings { profile: S2sPolicy::Compat, fixture: Some(Fixture::WrongName) },
        );
        assert_eq!(
            state.settings_of("ejabberd"),
            Some(ServerSettings { profile: S2sPolicy::Compat, fixture: Some(Fixture::WrongName) })
        );
        // Older state files have no settings: unknown.
        let old: LabState = serde_json::from_str(r#"{"netns":"plugfest","components":[]}"#).unwrap();
        assert_eq!(old.settings_of("prosody"), None);
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains(r#""profile":"compat""#) && json.contains(r#""fixture":"wrongname""#), "{json}");

        let dir = tempfile::tempdir().unwrap();
        let lab = Layout::new(dir.path(), "plugfest-test-none");
        lab.save_state(&state).unwrap();
        let cfg = LabConfig { netns: "plugfest-test-none".into(), state_dir: dir.path().to_path_buf() };
        let st = status(&cfg).unwrap();
        assert_eq!(st.profile(), Some(S2sPolicy::Compat));
        let text = st.to_string();
        assert!(text.contains("s2s policy: compat"), "{text}");
        assert!(text.contains("ejabberd presents the `wrongname` fixture") && text.contains("prosody good"), "{text}");
        // The component lines come first (tests find a PID by the first line starting with the name).
        let first = text.lines().position(|l| l.trim_start().starts_with("ejabberd")).unwrap();
        assert!(text.lines().nth(first).unwrap().contains("stopped"), "{text}");
    }

    #[test]
    fn templates_refuse_unknown_variables() {
        let err = render("t", "{{ nope }}", minijinja::context! {}).unwrap_err();
        assert!(format!("{err:#}").contains("t template"));
        assert_eq!(
            render("t", "a={{ x|lua }}\n", minijinja::context! { x => "q\"\\\n" }).unwrap(),
            "a=\"q\\\"\\\\\\010\"\n"
        );
    }

    #[test]
    fn status_of_a_lab_that_never_ran_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LabConfig { netns: "plugfest-test-none".into(), state_dir: dir.path().join("lab") };
        let st = status(&cfg).unwrap();
        assert!(!st.is_up());
        assert!(!st.netns_exists);
        assert_eq!(st.components.len(), 3);
        assert!(st.components.iter().all(|c| !c.running && c.pid.is_none()));
        let text = st.to_string();
        assert!(text.contains(": down") && text.contains("127.0.0.11:5222") && text.contains("ejabberd.lab"), "{text}");
    }

    #[test]
    fn config_is_checked() {
        let bad = LabConfig { netns: "a/b".into(), ..LabConfig::default() };
        assert!(status(&bad).is_err());
        let relative = LabConfig { state_dir: "lab".into(), ..LabConfig::default() };
        assert!(status(&relative).is_err());
    }

    #[test]
    fn hosts_file_names_the_lab() {
        let hosts = hosts_file();
        assert!(hosts.contains("127.0.0.11\tprosody.lab\n") && hosts.contains("127.0.0.20\tharness.lab\n"));
        assert!(hosts.starts_with("127.0.0.1\tlocalhost "));
    }
}

/// The real thing, as root: `sudo -E cargo test --lib lab::real -- --ignored --nocapture`.
#[cfg(test)]
mod real {
    use super::*;

    #[test]
    #[ignore = "needs root; starts real servers in a namespace"]
    fn real_lab_up_twice_then_down() {
        let cfg = LabConfig { netns: "plugfest-test".into(), state_dir: "/tmp/plugfest-lab-test".into() };
        let say = |m: &str| eprintln!("  {m}");
        let t = Instant::now();
        let st = up(&cfg, &say).unwrap();
        eprintln!("cold up: {:.2} s\n{st}", t.elapsed().as_secs_f64());
        assert!(st.is_up());
        crate::servers::ServersFile::load(&st.servers_file).unwrap();

        let t = Instant::now();
        let st = up(&cfg, &say).unwrap();
        eprintln!("warm up: {:.2} s", t.elapsed().as_secs_f64());
        assert!(st.is_up());

        let pids: Vec<u32> = st.components.iter().filter_map(|c| c.pid).collect();
        let t = Instant::now();
        down(&cfg, &say).unwrap();
        eprintln!("down: {:.2} s", t.elapsed().as_secs_f64());
        let st = status(&cfg).unwrap();
        eprintln!("{st}");
        assert!(!st.is_up() && !st.netns_exists);
        assert!(!netns::etc_dir(&cfg.netns).exists());
        for pid in pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} survived");
        }
    }
}
