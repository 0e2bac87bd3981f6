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
    servers: Vec<RawServer>,
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
}

/// A loaded, validated servers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServersFile {
    pub path: PathBuf,
    /// Network namespace the servers live in; plugfest enters it before connecting.
    pub netns: Option<String>,
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
            servers.push(Server {
                name,
                domain,
                address: s.address,
                port: s.port,
                tls: s.tls,
                trust,
                accounts: s.accounts,
                software: s.software,
            });
        }
        Ok(ServersFile { path: path.to_path_buf(), netns: raw.netns, servers })
    }

    pub fn get(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }
}

impl Server {
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
