//! ejabberd 23.01 in the lab: config from templates, started as the `ejabberd` user inside the namespace via
//! `ejabberdctl … foreground`. That wrapper is a shell script that runs the Erlang VM (beam.smp) as its
//! child, so both PIDs are recorded; stopping asks the node to stop (`ejabberdctl stop`) before signalling.

use super::process::{self, children_of, cmdline, run, spawn_detached, ProcRecord};
use super::{render, LabServer, Layout, ServerSettings, EJABBERD};
use crate::ca::LeafFiles;
use crate::servers::S2sPolicy;
use anyhow::Result;
use minijinja::context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(crate) const USER: &str = "ejabberd";
pub(crate) const PACKAGE: &str = "ejabberd";
const CONFIG_TEMPLATE: &str = include_str!("templates/ejabberd.yml");
const CTL_TEMPLATE: &str = include_str!("templates/ejabberdctl.cfg");
const INETRC: &str = include_str!("templates/inetrc");
const SERVER: &LabServer = &EJABBERD;
/// `ejabberdctl stop` boots a second Erlang VM to deliver the request: slow, so give it time.
const CTL_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// After a successful `stop`, how long the node may take to exit.
const STOP_GRACE: Duration = Duration::from_secs(15);

fn dir(lab: &Layout) -> PathBuf {
    lab.component_dir(SERVER.name)
}

/// Where the server's own files go (Mnesia spool, logs, pid, HOME): owned by its user, emptied on every fresh
/// start.
pub(crate) fn var_dir(lab: &Layout) -> PathBuf {
    dir(lab).join("var")
}

/// Logs worth showing when it fails: its own log, and its console (stdout/stderr: the VM's and the wrapper's
/// complaints that never reach the log).
pub(crate) fn log_files(lab: &Layout) -> Vec<PathBuf> {
    vec![var_dir(lab).join("log").join("ejabberd.log"), dir(lab).join("console.log")]
}

/// `profile` chooses the s2s policy (CATALOG §0.7): `secure` leaves out mod_s2s_dialback, so every peer must
/// authenticate with its certificate; `compat` loads it, so peers with untrusted certificates may use dialback.
pub(crate) fn config(certfile: &Path, ca_file: &Path, profile: S2sPolicy) -> Result<String> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    render(
        "ejabberd.yml",
        CONFIG_TEMPLATE,
        context! {
            domain => SERVER.domain,
            address => SERVER.address.to_string(),
            certfile => path(certfile),
            ca_file => path(ca_file),
            dialback => profile == S2sPolicy::Compat,
            profile => profile.name(),
        },
    )
}

/// `certs/fullchain-key.pem`: key + chain (+ root) of the certificate it presents, on c2s and s2s alike
/// (ejabberd picks one certificate per domain).
fn certfile(lab: &Layout) -> PathBuf {
    dir(lab).join("certs").join("fullchain-key.pem")
}

/// The config `settings` give (what [`start`] writes), for telling whether a running ejabberd needs a restart.
pub(crate) fn desired_config(lab: &Layout, settings: &ServerSettings, ca_file: &Path) -> Result<String> {
    config(&certfile(lab), ca_file, settings.profile)
}

/// The config file as written by the last start (empty when there is none).
pub(crate) fn written_config(lab: &Layout) -> String {
    std::fs::read_to_string(dir(lab).join("ejabberd.yml")).unwrap_or_default()
}

pub(crate) fn ctl_config(lab: &Layout, cookie: &str) -> Result<String> {
    let pidfile = var_dir(lab).join("ejabberd.pid");
    render(
        "ejabberdctl.cfg",
        CTL_TEMPLATE,
        context! {
            erl_options => format!("-setcookie {cookie} -kernel inet_dist_use_interface {{127,0,0,1}}"),
            pidfile => pidfile.to_string_lossy().into_owned(),
        },
    )
}

/// `ip netns exec … setpriv … ejabberdctl <our folders> COMMAND…`: every ejabberdctl call must name the same
/// config, spool and node, or it talks to nothing.
fn ejabberdctl(lab: &Layout, command: &[&str]) -> Command {
    let dir = dir(lab);
    let var = var_dir(lab);
    let mut cmd = lab.exec_in_netns(Some(USER));
    cmd.env("HOME", &var)
        .arg("/usr/sbin/ejabberdctl")
        .arg("--config-dir")
        .arg(&dir)
        .arg("--ctl-config")
        .arg(dir.join("ejabberdctl.cfg"))
        .arg("--config")
        .arg(dir.join("ejabberd.yml"))
        .arg("--logs")
        .arg(var.join("log"))
        .arg("--spool")
        .arg(var.join("db"))
        .args(command);
    cmd
}

/// Set up its folder (configs, a copy of key+chain it can read, a fresh spool) and start it. `leaf` is what it
/// presents (a fixture when `settings.fixture` says so: ejabberd uses one certificate for c2s and s2s).
/// Returns the wrapper's record; [`find_vm`] adds the VM's once the server answers.
pub(crate) fn start(lab: &Layout, settings: &ServerSettings, leaf: &LeafFiles, ca_file: &Path) -> Result<ProcRecord> {
    let dir = dir(lab);
    lab.prepare_dir(&dir, None)?;
    let certs = dir.join("certs");
    lab.prepare_dir(&certs, None)?;
    let certfile = certfile(lab);
    lab.install_file(&leaf.fullchain_key, &certfile, Some(USER))?;
    let var = var_dir(lab);
    lab.fresh_dir(&var, USER)?;
    for sub in ["db", "log"] {
        lab.prepare_dir(&var.join(sub), Some(USER))?;
    }
    lab.write_config(&dir.join("ejabberd.yml"), &config(&certfile, ca_file, settings.profile)?, None)?;
    // ejabberdctl points Erlang at <config dir>/inetrc; without one Erlang logs an error at every start.
    lab.write_config(&dir.join("inetrc"), INETRC, None)?;
    // The cookie guards the node's control port; only ejabberd (and root) may read it.
    let cookie = format!("{:032x}", rand::random::<u128>());
    lab.write_config(&dir.join("ejabberdctl.cfg"), &ctl_config(lab, &cookie)?, Some(USER))?;

    let pid = spawn_detached(ejabberdctl(lab, &["foreground"]), &log_files(lab)[1])?;
    ProcRecord::capture("ejabberd (ejabberdctl)", pid, &dir.to_string_lossy())
}

/// The Erlang VM started by the wrapper (its child or grandchild named beam.smp), once it runs.
pub(crate) fn find_vm(lab: &Layout, wrapper: &ProcRecord) -> Option<ProcRecord> {
    let marker = dir(lab).to_string_lossy().into_owned();
    let mut candidates = children_of(wrapper.pid);
    candidates.extend(candidates.clone().into_iter().flat_map(children_of));
    candidates.into_iter().find_map(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let is_vm = comm.trim() == "beam.smp" && cmdline(pid)?.contains(&marker);
        is_vm.then(|| ProcRecord::capture("ejabberd (beam.smp)", pid, &marker).ok()).flatten()
    })
}

/// Ask the node to stop, wait for it, then TERM/KILL whatever of `records` still runs.
pub(crate) fn stop(lab: &Layout, records: &[ProcRecord], progress: &dyn Fn(&str)) -> Result<()> {
    let running: Vec<&ProcRecord> = records.iter().filter(|r| r.is_running()).collect();
    if running.is_empty() {
        return Ok(());
    }
    progress("stopping ejabberd (ejabberdctl stop)");
    match run(&mut ejabberdctl(lab, &["stop"]), CTL_STOP_TIMEOUT) {
        Ok(out) if out.status.success() => {
            if !process::wait_until_gone(&running, STOP_GRACE) {
                progress(&format!("ejabberd did not exit within {STOP_GRACE:?} of `ejabberdctl stop`"));
            }
        }
        Ok(out) => progress(&format!("`ejabberdctl stop` failed: {}", process::output_text(&out))),
        Err(e) => progress(&format!("`ejabberdctl stop` failed: {e:#}")),
    }
    process::stop(records, Duration::from_secs(10), progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_lab_essentials() {
        let text = config(Path::new("/e/fullchain-key.pem"), Path::new("/ca/root.pem"), S2sPolicy::Secure).unwrap();
        for option in [
            "  - \"ejabberd.lab\"\n",
            "  - \"/e/fullchain-key.pem\"\n",
            "ca_file: \"/ca/root.pem\"\n",
            "    ip: \"127.0.0.12\"\n",
            "    starttls_required: true\n",
            "s2s_use_starttls: required\n",
            "outgoing_s2s_ipv4_address: \"127.0.0.12\"\n",
            "s2s_max_retry_delay: 5\n",
            "registration_timeout: infinity\n",
            "    ip_access: all\n",
            "    backlog: 1024\n",
        ] {
            assert!(text.contains(option), "missing {option:?}\n{text}");
        }
        assert!(!text.contains("  mod_s2s_dialback:"), "certificate-only s2s");
        assert!(text.contains("  mod_mam:\n") && text.contains("    default: always\n"), "{text}");
        let compat = config(Path::new("/e/fullchain-key.pem"), Path::new("/ca/root.pem"), S2sPolicy::Compat).unwrap();
        assert!(compat.contains("s2s_use_starttls: required\n"), "TLS stays mandatory");
        assert!(compat.contains("  mod_s2s_dialback: {}\n"), "{compat}");
    }

    #[test]
    fn ctl_config_quotes_for_sh() {
        let lab = Layout::new(Path::new("/srv/it's"), "plugfest");
        let text = ctl_config(&lab, "abc").unwrap();
        assert!(text.contains("ERL_OPTIONS='-setcookie abc -kernel inet_dist_use_interface {127,0,0,1}'\n"), "{text}");
        assert!(text.contains("EJABBERD_PID_PATH='/srv/it'\\''s/ejabberd/var/ejabberd.pid'\n"), "{text}");
        assert!(text.contains("ERL_DIST_PORT=5210\n"));
    }
}
