//! Prosody 0.12 in the lab: config from a template, started as the `prosody` user inside the namespace.

use super::process::{spawn_detached, ProcRecord};
use super::{render, LabServer, Layout, PROSODY};
use crate::ca::LeafFiles;
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

/// The config file's text: `main` is the certificate of prosody.lab, `idn` the one of the IDN vhost.
pub(crate) fn config(lab: &Layout, main: &CertPaths, idn: &CertPaths, ca_file: &Path) -> Result<String> {
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
            ca_file => path(ca_file),
            idn_domain => IDN_DOMAIN,
            idn_ascii => crate::ca::dns_name(IDN_DOMAIN)?,
            idn_cert_file => path(&idn.cert),
            idn_key_file => path(&idn.key),
        },
    )
}

/// Copy a leaf's chain and key where the server reads them (`<name>-chain.pem`, `<name>-key.pem`; the key
/// readable by the server's user only).
fn install_leaf(lab: &Layout, certs: &Path, name: &str, leaf: &LeafFiles) -> Result<CertPaths> {
    let paths = CertPaths { cert: certs.join(format!("{name}chain.pem")), key: certs.join(format!("{name}key.pem")) };
    lab.install_file(&leaf.chain, &paths.cert, None)?;
    lab.install_file(&leaf.key, &paths.key, Some(USER))?;
    Ok(paths)
}

/// Set up its folder (config, copies of the keys it can read, fresh data) and start it. `leaf` is the
/// certificate of prosody.lab, `idn_leaf` the one of [`IDN_DOMAIN`].
pub(crate) fn start(lab: &Layout, leaf: &LeafFiles, idn_leaf: &LeafFiles, ca_file: &Path) -> Result<ProcRecord> {
    let dir = dir(lab);
    lab.prepare_dir(&dir, None)?;
    let certs = dir.join("certs");
    lab.prepare_dir(&certs, None)?;
    let main = install_leaf(lab, &certs, "", leaf)?;
    let idn = install_leaf(lab, &certs, "idn-", idn_leaf)?;
    lab.fresh_dir(&var_dir(lab), USER)?;
    lab.prepare_dir(&var_dir(lab).join("data"), Some(USER))?;
    lab.write_config(&config_file(lab), &config(lab, &main, &idn, ca_file)?, None)?;

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
        let text = config(&lab, &main, &idn, Path::new("/ca/root.pem")).unwrap();
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
    }
}
