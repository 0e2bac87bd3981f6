//! The servers file: which XMPP servers to test and how to reach them (docs/servers-file.md).
//! plugfest runs against any servers described here; the local lab writes one for itself.

use crate::jid::Jid;
use crate::net::resolve::Target;
use crate::net::tls::{TlsMode, Trust};
use crate::xmpp::ClientParams;
use crate::yaml::ConfigError;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// As written in the file (positions kept for error messages).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    netns: Option<String>,
    #[serde(default)]
    harness: Option<Spanned<RawHarness>>,
    servers: Vec<RawServer>,
}

/// `harness: {domain: harness.lab, listen: "127.0.0.20:5269", ca_dir: ca}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHarness {
    domain: String,
    listen: std::net::SocketAddr,
    ca_dir: PathBuf,
    #[serde(default)]
    direct_tls: Option<RawDirectTls>,
}

/// `direct_tls: {domain: xmpps.harness.lab, listen: "127.0.0.20:5270"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectTls {
    domain: String,
    listen: std::net::SocketAddr,
}

/// Where plugfest plays remote servers for peer actors (CATALOG area G): each case's peer gets a
/// subdomain of `domain`, which must resolve to `listen`'s address for the servers under test;
/// `ca_dir` is the lab CA (`plugfest ca init`) that issues the peers' certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarnessConfig {
    pub domain: String,
    pub listen: std::net::SocketAddr,
    pub ca_dir: PathBuf,
    /// A fixed domain whose `_xmpps-server._tcp` SRV record points at `listen` (XEP-0368 direct
    /// TLS), for the one peer per run that receives direct TLS connections.
    pub direct_tls: Option<(String, std::net::SocketAddr)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Spanned<String>,
    domain: Spanned<String>,
    #[serde(default)]
    address: Option<IpAddr>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: TlsMode,
    #[serde(default)]
    ca_file: Option<Spanned<PathBuf>>,
    accounts: Accounts,
    #[serde(default)]
    software: Option<String>,
    #[serde(default)]
    idn_domain: Option<Spanned<String>>,
    #[serde(default)]
    s2s_policy: Option<Spanned<String>>,
    #[serde(default)]
    jid_profile: Option<Spanned<String>>,
    #[serde(default)]
    expected_failures: Vec<Spanned<ExpectedFailure>>,
}

/// How a server treats other servers on s2s (CATALOG §0.7), as the servers file declares it (§0.5 manifest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum S2sPolicy {
    /// TLS mandatory; a peer is accepted only with a valid certificate for its domain (SASL EXTERNAL, or
    /// dialback without dialing back on a valid certificate); no dialback fallback on an untrusted one.
    #[default]
    Secure,
    /// TLS mandatory; dialback (XEP-0220) allowed when the certificate is untrusted (RFC 7590 §3.4).
    Compat,
}

impl S2sPolicy {
    pub const ALL: [S2sPolicy; 2] = [S2sPolicy::Secure, S2sPolicy::Compat];

    /// The name in servers files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            S2sPolicy::Secure => "secure",
            S2sPolicy::Compat => "compat",
        }
    }
}

impl std::fmt::Display for S2sPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for S2sPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        S2sPolicy::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| format!("unknown s2s policy {s:?}; the policies are: secure, compat"))
    }
}

/// A case declared to fail on a server, with the evidence (docs/servers-file.md): it reports
/// `xfail` instead of `fail`/`warn`, and `xpass` (a failure of the run) when it passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// Scenario id.
    pub scenario: String,
    /// Only when the server plays one of these roles; empty: any role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Why it fails, with the spec text it violates: shown in the case message.
    pub reason: String,
    /// Evidence: a bug report, a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl ExpectedFailure {
    /// Does it apply to `scenario` when the server plays `role`?
    pub fn applies(&self, scenario: &str, role: &str) -> bool {
        self.scenario == scenario && (self.roles.is_empty() || self.roles.iter().any(|r| r == role))
    }
}

/// How plugfest creates the fresh accounts each case needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accounts {
    /// XEP-0077 in-band registration (the server must allow it).
    InBand,
    /// Run a command; `{user}`, `{domain}` and `{password}` in its arguments are replaced.
    Command(Vec<String>),
}

/// One server under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Short name used in the matrix, e.g. `prosody`.
    pub name: String,
    /// The XMPP domain it serves, e.g. `prosody.lab`.
    pub domain: String,
    /// Connect here instead of resolving the domain.
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub tls: TlsMode,
    pub trust: Trust,
    pub accounts: Accounts,
    /// Free text shown in reports, e.g. `Prosody 0.12.3`.
    pub software: Option<String>,
    /// A second, internationalised domain the server hosts (e.g. `bücher.lab`), for scenario
    /// accounts with `idn: true`.
    pub idn_domain: Option<String>,
    /// Its s2s policy (CATALOG §0.5, §0.7); `None`: not declared (unknown).
    pub s2s_policy: Option<S2sPolicy>,
    /// The JID preparation it claims (CATALOG §0.5: `precis` or `stringprep`); `None`: not declared.
    pub jid_profile: Option<String>,
    /// Cases known to fail on this server.
    pub expected_failures: Vec<ExpectedFailure>,
}

/// A loaded, validated servers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServersFile {
    pub path: PathBuf,
    /// Network namespace the servers live in; plugfest enters it before connecting.
    pub netns: Option<String>,
    /// The harness as remote servers (peer actors); `None`: cases with peers are skipped.
    pub harness: Option<HarnessConfig>,
    pub servers: Vec<Server>,
}

impl ServersFile {
    pub fn load(path: &Path) -> Result<ServersFile, ConfigError> {
        let raw: RawFile = crate::yaml::load(path).map_err(|e| {
            if e.hint.is_none() && e.line > 0 {
                e.with_hint("docs/servers-file.md lists every key and its values")
            } else {
                e
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut servers: Vec<Server> = Vec::new();
        if raw.servers.is_empty() {
            return Err(ConfigError::new(path, 0, 0, "no servers listed under `servers:`"));
        }
        for s in raw.servers {
            let name = s.name.value.trim().to_string();
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) {
                return Err(ConfigError::at(
                    path,
                    s.name.referenced,
                    format!("server name {name:?} must be letters, digits, '-', '_' or '.'"),
                ));
            }
            if servers.iter().any(|o| o.name == name) {
                return Err(ConfigError::at(path, s.name.referenced, format!("server name {name:?} is used twice"))
                    .with_hint("each server needs its own name: it labels rows and columns of the matrix"));
            }
            let domain = s.domain.value.trim().to_string();
            match Jid::parse(&domain) {
                Ok(j) if j.local().is_none() && j.resource().is_none() => {}
                Ok(_) => {
                    return Err(ConfigError::at(
                        path,
                        s.domain.referenced,
                        format!("domain {domain:?} must be a bare domain, without '@' or '/'"),
                    ))
                }
                Err(e) => {
                    return Err(ConfigError::at(
                        path,
                        s.domain.referenced,
                        format!("domain {domain:?} is not a valid XMPP domain: {e}"),
                    ))
                }
            }
            let trust = match s.ca_file {
                None => Trust::System,
                Some(f) => {
                    let p = if f.value.is_absolute() { f.value.clone() } else { base.join(&f.value) };
                    if !p.is_file() {
                        return Err(ConfigError::at(path, f.referenced, format!("ca_file {} does not exist", p.display()))
                            .with_hint("relative paths are taken from the servers file's folder; `plugfest ca init` makes a lab CA"));
                    }
                    Trust::CaFile(p)
                }
            };
            if let Accounts::Command(args) = &s.accounts {
                if args.is_empty() {
                    return Err(ConfigError::at(
                        path,
                        s.name.referenced,
                        format!("server {name}: accounts.command is empty"),
                    ));
                }
            }
            let idn_domain = match &s.idn_domain {
                None => None,
                Some(d) => Some(check_idn_domain(path, d, &domain)?),
            };
            let s2s_policy = match &s.s2s_policy {
                None => None,
                Some(p) => Some(p.value.parse::<S2sPolicy>().map_err(|e| {
                    ConfigError::at(path, p.referenced, e)
                        .with_hint("secure: certificates only; compat: dialback allowed on untrusted certificates (docs/servers-file.md)")
                })?),
            };
            let jid_profile = match &s.jid_profile {
                None => None,
                Some(p) if ["precis", "stringprep"].contains(&p.value.trim()) => Some(p.value.trim().to_string()),
                Some(p) => {
                    return Err(ConfigError::at(path, p.referenced, format!("jid_profile {:?} is not known", p.value))
                        .with_hint("precis (RFC 7622) or stringprep (RFC 6122 / RFC 3920)"))
                }
            };
            let mut expected_failures = Vec::new();
            for f in s.expected_failures {
                expected_failures.push(check_expected_failure(path, f)?);
            }
            servers.push(Server {
                name,
                domain,
                address: s.address,
                port: s.port,
                tls: s.tls,
                trust,
                accounts: s.accounts,
                software: s.software,
                idn_domain,
                s2s_policy,
                jid_profile,
                expected_failures,
            });
        }
        let harness = match raw.harness {
            None => None,
            Some(h) => {
                let ca_dir =
                    if h.value.ca_dir.is_absolute() { h.value.ca_dir.clone() } else { base.join(&h.value.ca_dir) };
                if !crate::ca::CaDir::new(&ca_dir).exists() {
                    return Err(ConfigError::at(
                        path,
                        h.referenced,
                        format!("harness.ca_dir {} holds no lab CA", ca_dir.display()),
                    )
                    .with_hint(
                        "relative paths are taken from the servers file's folder; `plugfest ca init DIR` makes one",
                    ));
                }
                let domain = h.value.domain.trim().trim_end_matches('.').to_ascii_lowercase();
                if Jid::parse(&domain).map_or(true, |j| j.local().is_some() || j.resource().is_some()) {
                    return Err(ConfigError::at(
                        path,
                        h.referenced,
                        format!("harness.domain {domain:?} is not a domain"),
                    ));
                }
                let direct_tls = h.value.direct_tls.as_ref().map(|d| (d.domain.trim().to_ascii_lowercase(), d.listen));
                Some(HarnessConfig { domain, listen: h.value.listen, ca_dir, direct_tls })
            }
        };
        Ok(ServersFile { path: path.to_path_buf(), netns: raw.netns, harness, servers })
    }

    pub fn get(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Expected-failure declarations that name no given scenario, or a role it does not have:
    /// one line each, for `plugfest check` (a warning: the scenarios checked may be a subset).
    pub fn stray_declarations(&self, scenarios: &[crate::scenario::Scenario]) -> Vec<String> {
        let mut stray = Vec::new();
        for server in &self.servers {
            for f in &server.expected_failures {
                let Some(sc) = scenarios.iter().find(|sc| sc.id == f.scenario) else {
                    stray.push(format!("{}: expected failure of {}: no such scenario", server.name, f.scenario));
                    continue;
                };
                for role in f.roles.iter().filter(|r| !sc.roles.contains(r)) {
                    stray.push(format!(
                        "{}: expected failure of {}: the scenario has no role {role} (roles: {})",
                        server.name,
                        f.scenario,
                        sc.roles.join(", ")
                    ));
                }
            }
        }
        stray
    }
}

fn check_idn_domain(path: &Path, d: &Spanned<String>, domain: &str) -> Result<String, ConfigError> {
    let idn = d.value.trim().to_string();
    match Jid::parse(&idn) {
        Ok(j) if j.local().is_none() && j.resource().is_none() && j.domain() != domain => Ok(idn),
        Ok(j) if j.domain() == domain => Err(ConfigError::at(path, d.referenced, "idn_domain is the server's domain")
            .with_hint("idn_domain names a second domain the server hosts, e.g. bücher.lab")),
        Ok(_) => Err(ConfigError::at(path, d.referenced, format!("idn_domain {idn:?} must be a bare domain"))),
        Err(e) => {
            Err(ConfigError::at(path, d.referenced, format!("idn_domain {idn:?} is not a valid XMPP domain: {e}")))
        }
    }
}

fn check_expected_failure(path: &Path, f: Spanned<ExpectedFailure>) -> Result<ExpectedFailure, ConfigError> {
    let mut v = f.value;
    v.scenario = v.scenario.trim().to_string();
    v.reason = v.reason.trim().to_string();
    let id_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_ok(&v.scenario) {
        return Err(ConfigError::at(
            path,
            f.referenced,
            format!("expected failure: {:?} is not a scenario id", v.scenario),
        )
        .with_hint("scenario: the id of the scenario, e.g. roster-remote-add"));
    }
    if v.reason.is_empty() {
        return Err(ConfigError::at(
            path,
            f.referenced,
            format!("expected failure of {}: the reason is empty", v.scenario),
        )
        .with_hint("say what the server does wrong and which spec text says otherwise; reports show it"));
    }
    if let Some(r) = v.roles.iter().find(|r| r.trim().is_empty()) {
        return Err(ConfigError::at(
            path,
            f.referenced,
            format!("expected failure of {}: role {r:?} is empty", v.scenario),
        ));
    }
    Ok(v)
}

/// Parse a mapping of server name → expected failures (the lab's src/lab/expected-failures.yaml).
pub fn parse_expected_failures(
    path: &Path,
    text: &str,
) -> Result<std::collections::BTreeMap<String, Vec<ExpectedFailure>>, ConfigError> {
    let raw: std::collections::BTreeMap<String, Vec<Spanned<ExpectedFailure>>> = crate::yaml::parse(path, text)?;
    let mut out = std::collections::BTreeMap::new();
    for (server, list) in raw {
        let checked: Result<Vec<_>, _> = list.into_iter().map(|f| check_expected_failure(path, f)).collect();
        out.insert(server, checked?);
    }
    Ok(out)
}

impl Server {
    /// A server `<name>` for `<name>.lab` with every optional setting at its default (for tests).
    #[cfg(test)]
    pub(crate) fn example(name: &str) -> Server {
        Server {
            name: name.into(),
            domain: format!("{name}.lab"),
            address: None,
            port: None,
            tls: TlsMode::Required,
            trust: Trust::System,
            accounts: Accounts::InBand,
            software: None,
            idn_domain: None,
            s2s_policy: None,
            jid_profile: None,
            expected_failures: vec![],
        }
    }

    /// The declared expected failures for `scenario` when this server plays `role`.
    pub fn expected_failures_for<'a>(
        &'a self,
        scenario: &'a str,
        role: &'a str,
    ) -> impl Iterator<Item = &'a ExpectedFailure> {
        self.expected_failures.iter().filter(move |f| f.applies(scenario, role))
    }

    pub fn target(&self) -> Target {
        Target { domain: self.domain.clone(), address: self.address, port: self.port }
    }

    /// Login parameters for an account on this server.
    pub fn client_params(
        &self,
        jid: Jid,
        password: &str,
        resource: Option<String>,
        step_timeout: Duration,
        max_stanza: usize,
    ) -> ClientParams {
        ClientParams {
            jid,
            password: password.to_string(),
            resource,
            target: self.target(),
            tls: self.tls,
            trust: self.trust.clone(),
            lang: Some("en".to_string()),
            step_timeout,
            max_stanza,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<ServersFile, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("servers.yaml");
        std::fs::write(&path, text).unwrap();
        ServersFile::load(&path)
    }

    const HEAD: &str = "servers:\n  - name: prosody\n    domain: prosody.lab\n    accounts: in-band\n";

    #[test]
    fn idn_domain_and_expected_failures_load() {
        let f = load_text(&format!(
            "{HEAD}    idn_domain: bücher.lab\n    expected_failures:\n\
             \x20     - {{scenario: roster-remote-add, roles: [A], reason: \" pushes ask (RFC 6121 §3.1.6) \"}}\n\
             \x20     - scenario: msg-x\n        reason: r\n        link: https://example.org/1\n"
        ))
        .unwrap();
        let p = &f.servers[0];
        assert_eq!(p.idn_domain.as_deref(), Some("bücher.lab"));
        assert_eq!(p.expected_failures.len(), 2);
        assert_eq!(p.expected_failures[0].reason, "pushes ask (RFC 6121 §3.1.6)");
        assert_eq!(p.expected_failures_for("roster-remote-add", "A").count(), 1);
        assert_eq!(p.expected_failures_for("roster-remote-add", "B").count(), 0);
        assert_eq!(p.expected_failures_for("msg-x", "B").count(), 1);
        assert_eq!(p.expected_failures[1].link.as_deref(), Some("https://example.org/1"));
    }

    #[test]
    fn bad_declarations_are_errors_at_their_line() {
        let e = load_text(&format!("{HEAD}    idn_domain: prosody.lab\n")).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (5, "idn_domain is the server's domain"));
        let e = load_text(&format!("{HEAD}    idn_domain: a@b.lab\n")).unwrap_err();
        assert!(e.message.contains("must be a bare domain"), "{e}");
        let e =
            load_text(&format!("{HEAD}    expected_failures:\n      - {{scenario: x, reason: \"\"}}\n")).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.message.contains("the reason is empty"), "{e}");
        let e = load_text(&format!("{HEAD}    expected_failures:\n      - {{scenario: x, reason: r, why: y}}\n"))
            .unwrap_err();
        assert!(e.message.contains("unknown field `why`"), "{e}");
    }

    #[test]
    fn jid_profile_loads_and_bad_values_are_errors_at_their_line() {
        assert_eq!(load_text(HEAD).unwrap().servers[0].jid_profile, None);
        let f = load_text(&format!("{HEAD}    jid_profile: stringprep\n")).unwrap();
        assert_eq!(f.servers[0].jid_profile.as_deref(), Some("stringprep"));
        let e = load_text(&format!("{HEAD}    jid_profile: nameprep\n")).unwrap_err();
        assert!(e.line > 0 && e.to_string().contains("nameprep"), "{e}");
    }

    #[test]
    fn s2s_policy_loads_and_bad_values_are_errors_at_their_line() {
        assert_eq!(load_text(HEAD).unwrap().servers[0].s2s_policy, None);
        let f = load_text(&format!("{HEAD}    s2s_policy: compat\n")).unwrap();
        assert_eq!(f.servers[0].s2s_policy, Some(S2sPolicy::Compat));
        let f = load_text(&format!("{HEAD}    s2s_policy: secure\n")).unwrap();
        assert_eq!(f.servers[0].s2s_policy, Some(S2sPolicy::Secure));
        let e = load_text(&format!("{HEAD}    s2s_policy: strict\n")).unwrap_err();
        assert_eq!((e.line, e.column), (5, 17), "{e}");
        assert!(e.message.contains("unknown s2s policy \"strict\""), "{e}");
        assert!(e.hint.as_deref().unwrap_or("").contains("dialback"), "{e}");
        assert_eq!("compat".parse::<S2sPolicy>(), Ok(S2sPolicy::Compat));
        assert_eq!(S2sPolicy::Secure.to_string(), "secure");
        assert_eq!(serde_json::to_string(&S2sPolicy::Compat).unwrap(), "\"compat\"");
    }

    #[test]
    fn stray_declarations_are_listed() {
        let f = load_text(&format!(
            "{HEAD}    expected_failures:\n      - {{scenario: t, roles: [A, C], reason: r}}\n      - {{scenario: gone, reason: r}}\n"
        ))
        .unwrap();
        let yaml = "id: t\ntitle: t\nroles: [A]\nactors:\n  a1: {account: a, server: A}\nsteps:\n  - send: {as: a1, xml: <message/>}\n";
        let (scenario, _) = crate::scenario::parse_str(Path::new("t.yaml"), yaml).unwrap();
        assert_eq!(
            f.stray_declarations(&[scenario]),
            [
                "prosody: expected failure of t: the scenario has no role C (roles: A)",
                "prosody: expected failure of gone: no such scenario"
            ]
        );
    }

    #[test]
    fn the_labs_declarations_parse_and_name_lab_servers() {
        let path = Path::new("src/lab/expected-failures.yaml");
        let all = parse_expected_failures(path, crate::lab::EXPECTED_FAILURES).unwrap();
        for server in all.keys() {
            assert!(crate::lab::SERVERS.iter().any(|s| s.name == server), "{server} is not a lab server");
        }
        let e = parse_expected_failures(path, "ejabberd:\n  - {scenario: x}\n").unwrap_err();
        assert!(e.message.contains("missing field `reason`"), "{e}");
    }
}
