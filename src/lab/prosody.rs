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

/// The config file's text.
pub(crate) fn config(lab: &Layout, cert: &Path, key: &Path, ca_file: &Path) -> Result<String> {
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
            cert_file => path(cert),
            key_file => path(key),
            ca_file => path(ca_file),
        },
    )
}

/// Set up its folder (config, a copy of the key it can read, fresh data) and start it.
pub(crate) fn start(lab: &Layout, leaf: &LeafFiles, ca_file: &Path) -> Result<ProcRecord> {
    let dir = dir(lab);
    lab.prepare_dir(&dir, None)?;
    let certs = dir.join("certs");
    lab.prepare_dir(&certs, None)?;
    let (cert, key) = (certs.join("chain.pem"), certs.join("key.pem"));
    lab.install_file(&leaf.chain, &cert, None)?;
    lab.install_file(&leaf.key, &key, Some(USER))?;
    lab.fresh_dir(&var_dir(lab), USER)?;
    lab.prepare_dir(&var_dir(lab).join("data"), Some(USER))?;
    lab.write_config(&config_file(lab), &config(lab, &cert, &key, ca_file)?, None)?;

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
        let text = config(&lab, Path::new("/c/chain.pem"), Path::new("/c/key.pem"), Path::new("/ca/root.pem")).unwrap();
        let (globals, host) = text.split_once("\nVirtualHost \"prosody.lab\"").expect("VirtualHost line");
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
    }
}
