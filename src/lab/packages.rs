//! The Debian packages the lab needs: checked with dpkg-query, installed with apt-get when missing (root on
//! Debian/Ubuntu only), and the stock services a fresh install may have started are stopped.

use super::process::{output_text, run, run_ok};
use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Package → a program it provides (checked too, in case the package is installed but broken).
pub(crate) const REQUIRED: &[(&str, &str)] = &[
    ("iproute2", "/usr/sbin/ip"),
    ("util-linux", "/usr/bin/setpriv"),
    ("dnsmasq-base", "/usr/sbin/dnsmasq"),
    ("prosody", "/usr/bin/prosody"),
    ("ejabberd", "/usr/sbin/ejabberdctl"),
    // `ca export --format pkcs12` and the `tls_probe` step (TLS 1.0/1.1, which rustls cannot speak).
    ("openssl", "/usr/bin/openssl"),
];

/// Packages whose install starts a stock service listening on 0.0.0.0 outside the lab.
const WITH_SERVICES: &[&str] = &["prosody", "ejabberd"];

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Downloads can be slow; still, never wait forever.
const APT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The installed version of a package (e.g. `0.12.3-1+deb12u1`), if it is installed.
pub(crate) fn installed_version(package: &str) -> Option<String> {
    installed_versions(&[package]).pop().flatten()
}

/// Installed versions of several packages, in order, with one dpkg-query call (`None`: not installed).
fn installed_versions(packages: &[&str]) -> Vec<Option<String>> {
    let mut cmd = Command::new("dpkg-query");
    cmd.args(["-W", "-f=${Package} ${db:Status-Status} ${Version}\\n"]).args(packages);
    // dpkg-query exits 1 when some package is unknown, but still lists the others: read stdout regardless.
    let listed =
        run(&mut cmd, QUERY_TIMEOUT).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    packages
        .iter()
        .map(|pkg| {
            listed.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                let (name, status, version) = (words.next()?, words.next()?, words.next()?);
                // Multi-arch packages are listed as name:arch.
                let same = name == *pkg || name.split(':').next() == Some(pkg);
                (same && status == "installed").then(|| version.to_string())
            })
        })
        .collect()
}

/// The upstream part of a Debian version: `1:0.12.3-1+deb12u1` → `0.12.3`.
pub(crate) fn upstream_version(debian_version: &str) -> &str {
    let no_epoch = debian_version.split_once(':').map_or(debian_version, |(_, v)| v);
    no_epoch.rsplit_once('-').map_or(no_epoch, |(v, _)| v)
}

/// Install what is missing. Needs root on a Debian-like system; elsewhere says what to install by hand.
pub(crate) fn ensure_installed(progress: &dyn Fn(&str)) -> Result<()> {
    let names: Vec<&str> = REQUIRED.iter().map(|(pkg, _)| *pkg).collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .zip(installed_versions(&names))
        .filter(|((_, program), version)| version.is_none() || !Path::new(program).exists())
        .map(|((pkg, _), _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_debian_like() {
        bail!(
            "the lab needs {list}, and this is not a Debian/Ubuntu system plugfest can install them on; \
             install the equivalents (Prosody 0.12, ejabberd 23.01, dnsmasq, iproute2, setpriv) or test against \
             your own servers with a servers file (docs/servers-file.md)"
        );
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs {list}: run `sudo apt-get install {list}`, or run `plugfest lab up` as root");
    }
    progress(&format!("installing {list} (apt-get install --no-install-recommends)"));
    if !has_package_lists() {
        progress("apt package lists are empty: running apt-get update");
        apt(&["update"])?;
    }
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    if apt(&install).is_err() {
        // Stale lists are the usual cause ("Unable to locate package", 404s): refresh once and retry.
        progress("apt-get install failed: running apt-get update and trying again");
        apt(&["update"])?;
        apt(&install)?;
    }
    stop_stock_services(&missing, progress)
}

fn apt(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_ok(&mut cmd, APT_TIMEOUT)?;
    Ok(())
}

fn is_debian_like() -> bool {
    Path::new("/etc/debian_version").exists() && Path::new("/usr/bin/apt-get").exists()
}

fn has_package_lists() -> bool {
    std::fs::read_dir("/var/lib/apt/lists")
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().contains("_Packages")))
        .unwrap_or(false)
}

/// With systemd running, installing prosody/ejabberd starts their stock services on 0.0.0.0 (5222, 5269, …)
/// outside the lab. Only services of packages we just installed are touched: a server the user ran before
/// is theirs.
fn stop_stock_services(installed_now: &[&str], progress: &dyn Fn(&str)) -> Result<()> {
    if !Path::new("/run/systemd/system").exists() {
        return Ok(());
    }
    for service in WITH_SERVICES.iter().filter(|s| installed_now.contains(s)) {
        let active = run(Command::new("systemctl").args(["is-active", "--quiet", service]), QUERY_TIMEOUT)
            .is_ok_and(|o| o.status.success());
        let enabled = run(Command::new("systemctl").args(["is-enabled", "--quiet", service]), QUERY_TIMEOUT)
            .is_ok_and(|o| o.status.success());
        if active || enabled {
            progress(&format!(
                "the {service} package started its stock service (it listens on all addresses, outside the lab): \
                 running `systemctl disable --now {service}`"
            ));
            let out = run(Command::new("systemctl").args(["disable", "--now", service]), Duration::from_secs(120))?;
            if !out.status.success() {
                progress(&format!("warning: could not stop {service}: {}", output_text(&out)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_version_drops_epoch_and_revision() {
        assert_eq!(upstream_version("0.12.3-1+deb12u1"), "0.12.3");
        assert_eq!(upstream_version("23.01-1"), "23.01");
        assert_eq!(upstream_version("1:2.3-4-5"), "2.3-4");
        assert_eq!(upstream_version("2.90"), "2.90");
    }

    #[test]
    fn installed_versions_reads_dpkg() {
        // dpkg itself is always installed on a Debian system; elsewhere nothing is.
        let found = installed_versions(&["dpkg", "no-such-package-plugfest"]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].is_some(), Path::new("/var/lib/dpkg/status").exists());
        assert_eq!(found[1], None);
    }
}
