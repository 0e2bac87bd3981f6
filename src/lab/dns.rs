//! dnsmasq inside the namespace: authoritative for the lab zone (A and SRV records), forwarding nothing.

use super::process::{spawn_detached, ProcRecord};
use super::{render, Layout, HARNESS, SERVERS};
use anyhow::{Context, Result};
use minijinja::context;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub(crate) const NAME: &str = "dnsmasq";
pub(crate) const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
pub(crate) const ZONE: &str = "lab";
const TEMPLATE: &str = include_str!("templates/dnsmasq.conf");

fn config_file(lab: &Layout) -> PathBuf {
    lab.component_dir(NAME).join("dnsmasq.conf")
}

pub(crate) fn log_file(lab: &Layout) -> PathBuf {
    lab.component_dir(NAME).join("dnsmasq.log")
}

/// The config file's text.
pub(crate) fn config() -> Result<String> {
    let mut hosts: Vec<_> =
        SERVERS.iter().map(|s| context! { name => s.domain, address => s.address.to_string() }).collect();
    hosts.push(context! { name => HARNESS.0, address => HARNESS.1.to_string() });
    let servers: Vec<_> = SERVERS.iter().map(|s| context! { domain => s.domain }).collect();
    render("dnsmasq.conf", TEMPLATE, context! { zone => ZONE, address => ADDRESS.to_string(), hosts, servers })
}

/// Write the config and start dnsmasq in the foreground (so the recorded PID is the daemon's).
/// It starts as root to bind port 53, then drops to its unprivileged user by itself.
pub(crate) fn start(lab: &Layout) -> Result<ProcRecord> {
    let dir = lab.component_dir(NAME);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conf = config_file(lab);
    fs::write(&conf, config()?).with_context(|| format!("cannot write {}", conf.display()))?;
    let mut cmd = lab.exec_in_netns(None);
    cmd.arg("/usr/sbin/dnsmasq").arg("--keep-in-foreground").arg(format!("--conf-file={}", conf.display()));
    let pid = spawn_detached(cmd, &log_file(lab))?;
    ProcRecord::capture(NAME, pid, &dir.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_records_for_every_server_and_no_upstream() {
        let text = config().unwrap();
        assert!(text.contains("listen-address=127.0.0.53\n"));
        assert!(text.contains("no-resolv\n") && text.contains("local=/lab/\n"));
        assert!(text.contains("host-record=prosody.lab,127.0.0.11\n"));
        assert!(text.contains("host-record=ejabberd.lab,127.0.0.12\n"));
        assert!(text.contains("host-record=harness.lab,127.0.0.20\n"));
        assert!(text.contains("srv-host=_xmpp-client._tcp.prosody.lab,prosody.lab,5222\n"));
        assert!(text.contains("srv-host=_xmpp-server._tcp.ejabberd.lab,ejabberd.lab,5269\n"));
        assert!(!text.contains("server="), "must never forward");
    }
}
