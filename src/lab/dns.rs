//! dnsmasq inside the namespace: authoritative for the lab zone (A and SRV records), forwarding nothing.

use super::process::{spawn_detached, ProcRecord};
use super::{prosody, render, Layout, HARNESS, PROSODY, SERVERS};
use anyhow::{Context, Result};
use minijinja::context;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub(crate) const NAME: &str = "dnsmasq";
pub(crate) const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
pub(crate) const ZONE: &str = "lab";
/// The harness's direct TLS name and port (XEP-0368, CATALOG G14 outbound): `_xmpps-server._tcp` points there.
pub(crate) const HARNESS_DIRECT_TLS: (&str, u16) = ("xmpps.harness.lab", 5270);
/// A lab name whose address has nothing listening on 5269 (s2s to it fails fast: connection refused).
pub(crate) const DOWN: (&str, Ipv4Addr) = ("down.lab", Ipv4Addr::new(127, 0, 0, 21));
const TEMPLATE: &str = include_str!("templates/dnsmasq.conf");

fn config_file(lab: &Layout) -> PathBuf {
    lab.component_dir(NAME).join("dnsmasq.conf")
}

/// The config file as written by the last start (empty when there is none).
pub(crate) fn written_config(lab: &Layout) -> String {
    fs::read_to_string(config_file(lab)).unwrap_or_default()
}

pub(crate) fn log_file(lab: &Layout) -> PathBuf {
    lab.component_dir(NAME).join("dnsmasq.log")
}

/// The config file's text.
pub(crate) fn config() -> Result<String> {
    let mut hosts: Vec<_> =
        SERVERS.iter().map(|s| context! { name => s.domain, address => s.address.to_string() }).collect();
    hosts.push(context! { name => HARNESS.0, address => HARNESS.1.to_string() });
    // The error cases of the harness as s2s peer (CATALOG §0.1): `down.lab` has an address where nothing
    // listens on 5269; `nxdomain.lab` has no records at all (`local=/lab/` makes dnsmasq answer NXDOMAIN).
    hosts.push(context! { name => DOWN.0, address => DOWN.1.to_string() });
    let mut servers: Vec<_> = SERVERS.iter().map(|s| context! { domain => s.domain }).collect();
    // Prosody's IDN vhost (CATALOG F08): DNS names are A-labels, so its records are for xn--bcher-kva.lab.
    let idn = crate::ca::dns_name(prosody::IDN_DOMAIN)?;
    hosts.push(context! { name => idn, address => PROSODY.address.to_string() });
    servers.push(context! { domain => idn });
    // The harness serves s2s only: an `_xmpp-server._tcp` SRV record and no client one.
    let s2s_only = [HARNESS.0];
    // Every name under harness.lab is the harness too (`g03-abc123.harness.lab`): a fresh domain per case, so
    // no server reuses s2s state (links, dialback results, retry timers) from an earlier case. No SRV records
    // below harness.lab: servers fall back to the A record and port 5269 (RFC 6120 §3.2.2).
    let wildcards = [context! { name => HARNESS.0, address => HARNESS.1.to_string() }];
    // XEP-0368 direct TLS (CATALOG G14): Prosody listens for it on c2s and s2s; ejabberd publishes none.
    let direct_tls = [context! {
        domain => PROSODY.domain,
        s2s_port => prosody::S2S_DIRECT_TLS_PORT,
        c2s_port => prosody::C2S_DIRECT_TLS_PORT
    }];
    let harness_direct = context! { domain => HARNESS_DIRECT_TLS.0, port => HARNESS_DIRECT_TLS.1 };
    let ctx = context! { zone => ZONE, address => ADDRESS.to_string(), hosts, servers, s2s_only, wildcards, direct_tls, harness_direct };
    render("dnsmasq.conf", TEMPLATE, ctx)
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
        assert!(text.contains("host-record=xn--bcher-kva.lab,127.0.0.11\n"));
        assert!(text.contains("srv-host=_xmpp-client._tcp.xn--bcher-kva.lab,xn--bcher-kva.lab,5222\n"));
        assert!(text.contains("srv-host=_xmpp-server._tcp.xn--bcher-kva.lab,xn--bcher-kva.lab,5269\n"));
        assert!(!text.contains("server="), "must never forward");
        // The harness as s2s peer: SRV for s2s only; the error-case names.
        assert!(text.contains("srv-host=_xmpp-server._tcp.harness.lab,harness.lab,5269\n"));
        assert!(!text.contains("_xmpp-client._tcp.harness.lab"));
        assert!(text.contains("host-record=down.lab,127.0.0.21\n") && !text.contains("down.lab,5269"));
        assert!(!text.contains("nxdomain.lab"), "nxdomain.lab has no records at all");
        // Direct TLS (XEP-0368) for Prosody only.
        assert!(text.contains("srv-host=_xmpps-server._tcp.prosody.lab,prosody.lab,5270\n"), "{text}");
        assert!(text.contains("srv-host=_xmpps-client._tcp.prosody.lab,prosody.lab,5223\n"), "{text}");
        assert!(text.contains("srv-host=_xmpps-server._tcp.xmpps.harness.lab,xmpps.harness.lab,5270\n"), "{text}");
        assert!(!text.contains("_xmpps-server._tcp.ejabberd.lab") && !text.contains("_xmpps-client._tcp.ejabberd"));
    }

    #[test]
    fn every_name_under_harness_lab_is_the_harness() {
        let text = config().unwrap();
        // dnsmasq: `address=/d/ip` answers A queries for d and every name below it.
        assert!(text.contains("address=/harness.lab/127.0.0.20\n"), "{text}");
        // harness.lab keeps its own A and SRV records; subdomains get no SRV (A fallback on 5269).
        assert!(text.contains("host-record=harness.lab,127.0.0.20\n"));
        assert!(text.contains("srv-host=_xmpp-server._tcp.harness.lab,harness.lab,5269\n"));
        assert_eq!(text.matches("address=/").count(), 1, "no other wildcard: {text}");
        assert!(!text.contains("address=/lab/"), "other lab names must stay NXDOMAIN");
    }
}
