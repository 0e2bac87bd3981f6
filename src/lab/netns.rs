//! The lab's network namespace: only `lo` up, so all of 127.0.0.0/8 is local and nothing leaves it.
//! `ip netns exec` overlays /etc/netns/<name>/{hosts,resolv.conf} on /etc for the processes it starts.

use super::process::{self, run_ok};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `ip netns add` mounts a namespace (/var/run is a link to /run on Debian).
pub(crate) fn handle(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Where `ip netns exec` takes overlay files for /etc from.
pub(crate) fn etc_dir(name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(name)
}

pub(crate) fn exists(name: &str) -> bool {
    handle(name).exists()
}

/// Namespace names become file names under /run/netns and /etc/netns: keep them plain.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("network namespace name {name:?} must be 1-64 letters, digits, '-' or '_' (e.g. `plugfest`)");
    }
    Ok(())
}

/// Create the namespace with `lo` up and write its /etc overlay files.
pub(crate) fn create(name: &str, hosts: &str, resolv_conf: &str) -> Result<()> {
    run_ok(Command::new("ip").args(["netns", "add", name]), IP_TIMEOUT)?;
    run_ok(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]), IP_TIMEOUT)?;
    let etc = etc_dir(name);
    fs::create_dir_all(&etc).with_context(|| format!("cannot create {}", etc.display()))?;
    for (file, text) in [("hosts", hosts), ("resolv.conf", resolv_conf)] {
        let path = etc.join(file);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Delete the namespace and its /etc overlay. Missing pieces are fine (idempotent).
pub(crate) fn delete(name: &str) -> Result<()> {
    if exists(name) {
        run_ok(Command::new("ip").args(["netns", "delete", name]), IP_TIMEOUT)?;
    }
    let etc = etc_dir(name);
    if etc.exists() {
        fs::remove_dir_all(&etc).with_context(|| format!("cannot remove {}", etc.display()))?;
    }
    Ok(())
}

/// `ip netns exec <name>`: the start of a command line that runs inside the namespace.
/// `ip` execs the program, so the spawned PID becomes the program's PID.
pub(crate) fn exec(name: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", name]);
    cmd
}

/// Run `f` on a fresh thread that has entered the namespace (setns affects only the calling thread; the
/// thread ends with `f`, so nothing else in this process changes namespace).
pub(crate) fn run_inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let ns = fs::File::open(handle(name))
        .with_context(|| format!("cannot open network namespace {name}; is the lab up (`plugfest lab up`)?"))?;
    let worker = std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("cannot enter the lab's network namespace (setns needs root)")?;
        Ok(f())
    });
    worker.join().map_err(|_| anyhow::anyhow!("a check inside namespace {name} panicked"))?
}

/// PIDs of processes living inside the namespace (compared by the namespace's inode).
/// Used to refuse deleting a namespace that still holds processes nobody recorded. Our own process is left
/// out (a harness may have entered the namespace itself).
pub(crate) fn pids_inside(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(ns) = fs::metadata(handle(name)) else { return Vec::new() };
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ns.ino() && m.dev() == ns.dev())
        })
        .filter(|&pid| process::ProcStat::read(pid).is_some_and(|s| s.state != 'Z'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("plugfest").is_ok());
        assert!(check_name("lab-2_b").is_ok());
        for bad in ["", "../etc", "a b", "x/y", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
