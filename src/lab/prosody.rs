//! Prosody 0.12 in the lab: config from a template, started as the `prosody` user inside the namespace.

use super::process::{spawn_detached, ProcRecord};
use super::{render, LabServer, Layout, ServerSettings, PROSODY};
use crate::ca::LeafFiles;
use crate::servers::S2sPolicy;
use anyhow::Result;
use minijinja::context;
use std::path::{Path, PathBuf};

pub(crate) const USER: &str = "prosody";
pub(crate) const PACKAGE: &str = "prosody";
const TEMPLATE: &str = include_str!("templates/prosody.cfg.lua");
const SERVER: &LabServer = &PROSODY;
/// The IDN vhost Prosody hosts next to its own domain (CATALOG §0.1, F08), written as a U-label; its certificate
/// and DNS records use the A-label (`crate::ca::dns_name`).
pub(crate) const IDN_DOMAIN: &str = "bücher.lab";
/// Where Prosody accepts s2s with direct TLS (XEP-0368; `_xmpps-server._tcp` in the lab DNS).
pub(crate) const S2S_DIRECT_TLS_PORT: u16 = 5270;
/// Where Prosody accepts clients with direct TLS (XEP-0368; `_xmpps-client._tcp` in the lab DNS).
pub(crate) const C2S_DIRECT_TLS_PORT: u16 = 5223;

fn dir(lab: &Layout) -> PathBuf {
    lab.component_dir(SERVER.name)
}

fn config_file(lab: &Layout) -> PathBuf {
    dir(lab).join("prosody.cfg.lua")
}

/// Where the server's own files go (data, log, pid): owned by its user, emptied on every fresh start.
pub(crate) fn var_dir(lab: &Layout) -> PathBuf {
    dir(lab).join("var")
}

/// Logs worth showing when it fails: its own log, and its console (stdout/stderr).
pub(crate) fn log_files(lab: &Layout) -> Vec<PathBuf> {
    vec![var_dir(lab).join("prosody.log"), dir(lab).join("console.log")]
}

/// A certificate and its key, as installed for the server.
pub(crate) struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where its certificates go: prosody.lab's, the IDN vhost's, and the s2s-only fixture (`lab up --server-cert`).
fn cert_paths(lab: &Layout) -> [CertPaths; 3] {
    let certs = dir(lab).join("certs");
    let pair = |prefix: &str| CertPaths {
        cert: certs.join(format!("{prefix}chain.pem")),
        key: certs.join(format!("{prefix}key.pem")),
    };
    [pair(""), pair("idn-"), pair("s2s-")]
}

/// The config file's text: `main` is the certificate of prosody.lab, `idn` the one of the IDN vhost; `s2s`, when
/// given, replaces `main` on s2s only (a certificate fixture), so clients still see the good one.
pub(crate) fn config(
    lab: &Layout,
    main: &CertPaths,
    idn: &CertPaths,
    s2s: Option<&CertPaths>,
    ca_file: &Path,
    profile: S2sPolicy,
) -> Result<String> {
    let var = var_dir(lab);
    let path = |p: &Path| p.to_string_lossy().into_owned();
    render(
        "prosody.cfg.lua",
        TEMPLATE,
        context! {
            domain => SERVER.domain,
            address => SERVER.address.to_string(),
            pidfile => path(&var.join("prosody.pid")),
            data_dir => path(&var.join("data")),
            log_file => path(&log_files(lab)[0]),
            cert_file => path(&main.cert),
            key_file => path(&main.key),
            s2s_cert_file => s2s.map(|c| path(&c.cert)),
            s2s_key_file => s2s.map(|c| path(&c.key)),
            ca_file => path(ca_file),
            idn_domain => IDN_DOMAIN,
            idn_ascii => crate::ca::dns_name(IDN_DOMAIN)?,
            idn_cert_file => path(&idn.cert),
            idn_key_file => path(&idn.key),
            secure => profile == S2sPolicy::Secure,
            profile => profile.name(),
            s2s_direct_tls_port => S2S_DIRECT_TLS_PORT,
            c2s_direct_tls_port => C2S_DIRECT_TLS_PORT,
        },
    )
}

/// The config `settings` give (what [`start`] writes), for telling whether a running Prosody needs a restart.
pub(crate) fn desired_config(lab: &Layout, settings: &ServerSettings, ca_file: &Path) -> Result<String> {
    let [main, idn, s2s] = cert_paths(lab);
    config(lab, &main, &idn, settings.fixture.map(|_| &s2s), ca_file, settings.profile)
}

/// The config file as written by the last start (empty when there is none).
pub(crate) fn written_config(lab: &Layout) -> String {
    std::fs::read_to_string(config_file(lab)).unwrap_or_default()
}

/// Copy a leaf's chain and key where the server reads them (the key readable by the server's user only).
fn install_leaf(lab: &Layout, to: &CertPaths, leaf: &LeafFiles) -> Result<()> {
    lab.install_file(&leaf.chain, &to.cert, None)?;
    lab.install_file(&leaf.key, &to.key, Some(USER))
}

/// Set up its folder (config, copies of the keys it can read, fresh data) and start it. `leaf` is the
/// certificate of prosody.lab, `idn_leaf` the one of [`IDN_DOMAIN`], `s2s_leaf` a fixture it presents on s2s
/// instead of `leaf` (`settings.fixture` names it).
pub(crate) fn start(
    lab: &Layout,
    settings: &ServerSettings,
    leaf: &LeafFiles,
    idn_leaf: &LeafFiles,
    s2s_leaf: Option<&LeafFiles>,
    ca_file: &Path,
) -> Result<ProcRecord> {
    let dir = dir(lab);
    lab.prepare_dir(&dir, None)?;
    lab.prepare_dir(&dir.join("certs"), None)?;
    let [main, idn, s2s] = cert_paths(lab);
    install_leaf(lab, &main, leaf)?;
    install_leaf(lab, &idn, idn_leaf)?;
    if let Some(bad) = s2s_leaf {
        install_leaf(lab, &s2s, bad)?;
    }
    lab.fresh_dir(&var_dir(lab), USER)?;
    lab.prepare_dir(&var_dir(lab).join("data"), Some(USER))?;
    let s2s = s2s_leaf.map(|_| &s2s);
    lab.write_config(&config_file(lab), &config(lab, &main, &idn, s2s, ca_file, settings.profile)?, None)?;

    // -F: stay in the foreground, so the PID we record is Prosody's (ip and setpriv both exec).
    let mut cmd = lab.exec_in_netns(Some(USER));
    cmd.arg("/usr/bin/prosody").arg("-F").arg("--config").arg(config_file(lab));
    let pid = spawn_detached(cmd, &log_files(lab)[1])?;
    ProcRecord::capture(SERVER.name, pid, &dir.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sets_lab_essentials_before_the_virtualhost() {
        let lab = Layout::new(Path::new("/srv/lab \"x\""), "plugfest");
        let main = CertPaths { cert: "/c/chain.pem".into(), key: "/c/key.pem".into() };
        let idn = CertPaths { cert: "/c/idn-chain.pem".into(), key: "/c/idn-key.pem".into() };
        let text = config(&lab, &main, &idn, None, Path::new("/ca/root.pem"), S2sPolicy::Secure).unwrap();
        let (globals, hosts) = text.split_once("\nVirtualHost \"prosody.lab\"").expect("VirtualHost line");
        let (host, idn_host) = hosts.split_once("\nVirtualHost \"bücher.lab\"").expect("IDN VirtualHost line");
        for option in [
            "interfaces = { \"127.0.0.11\" }",
            "c2s_ports = { 5222 }",
            "s2s_ports = { 5269 }",
            "allow_registration = true",
            "c2s_require_encryption = true",
            "s2s_require_encryption = true",
            "s2s_secure_auth = true",
            "data_path = \"/srv/lab \\\"x\\\"/prosody/var/data\"",
            "cafile = \"/ca/root.pem\";",
        ] {
            assert!(globals.contains(option), "missing global {option}\n{globals}");
        }
        assert!(host.contains("certificate = \"/c/chain.pem\";") && host.contains("key = \"/c/key.pem\";"));
        assert!(idn_host.contains("certificate = \"/c/idn-chain.pem\";"), "{idn_host}");
        assert!(idn_host.contains("key = \"/c/idn-key.pem\";") && idn_host.contains("cafile = \"/ca/root.pem\";"));
        assert!(globals.contains("\"dialback\"") && globals.contains("\"mam\""), "{globals}");
        assert!(!text.contains("s2s_ssl"), "no fixture: one certificate for c2s and s2s");
    }

    #[test]
    fn compat_allows_dialback_on_untrusted_certificates_and_a_fixture_is_s2s_only() {
        let lab = Layout::new(Path::new("/srv/lab"), "plugfest");
        let main = CertPaths { cert: "/c/chain.pem".into(), key: "/c/key.pem".into() };
        let idn = CertPaths { cert: "/c/idn-chain.pem".into(), key: "/c/idn-key.pem".into() };
        let bad = CertPaths { cert: "/c/s2s-chain.pem".into(), key: "/c/s2s-key.pem".into() };
        let text = config(&lab, &main, &idn, Some(&bad), Path::new("/ca/root.pem"), S2sPolicy::Compat).unwrap();
        let (globals, hosts) = text.split_once("\nVirtualHost \"prosody.lab\"").expect("VirtualHost line");
        assert!(globals.contains("s2s_require_encryption = true"), "{globals}");
        assert!(globals.contains("s2s_secure_auth = false") && !globals.contains("s2s_secure_auth = true"));
        assert!(globals.contains("\"dialback\""), "{globals}");
        let host = hosts.split_once("\nVirtualHost").unwrap().0;
        let s2s = host.split_once("s2s_ssl = {").expect("s2s_ssl in the host").1;
        assert!(s2s.contains("certificate = \"/c/s2s-chain.pem\";") && s2s.contains("key = \"/c/s2s-key.pem\";"));
        assert!(host.contains("certificate = \"/c/chain.pem\";"), "c2s keeps the good certificate: {host}");
    }
}
