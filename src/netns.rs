//! Entering the network namespace a servers file names (the lab's), so that plugfest's bots
//! resolve names with the lab's DNS and reach the lab's loopback addresses.
//!
//! We re-execute ourselves under `ip netns exec`, which also overlays /etc/netns/<ns>/resolv.conf
//! and hosts on /etc for the new process, exactly as for the servers it started. Doing it before
//! any thread or runtime exists keeps it simple and safe.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

/// Set in the re-executed process, so it knows it is already inside.
const ENV_INSIDE: &str = "PLUGFEST_NETNS";

/// Whether this process already runs inside namespace `ns` (entered by us).
pub fn inside(ns: &str) -> bool {
    std::env::var(ENV_INSIDE).is_ok_and(|v| v == ns)
}

/// Make sure we run inside `ns`: returns Ok if we already are; otherwise replaces this process
/// with itself under `ip netns exec` (and only returns on failure, with the exit code to use).
pub fn enter(ns: &str) -> Result<(), ExitCode> {
    if inside(ns) {
        return Ok(());
    }
    let say = |msg: String| {
        eprintln!("{} {msg}", console::style("error:").red().bold());
        Err(ExitCode::from(2))
    };
    if !Path::new("/run/netns").join(ns).exists() {
        return say(format!(
            "the servers file asks for network namespace {ns:?}, which does not exist\n  hint: start the lab with `plugfest lab up`"
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return say(format!(
            "entering network namespace {ns:?} needs root\n  hint: run plugfest as root (e.g. with sudo)"
        ));
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return say(format!("cannot find plugfest's own executable to re-run it in {ns:?}: {e}")),
    };
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV_INSIDE, ns)
        .exec();
    say(format!("cannot run `ip netns exec {ns}`: {err}\n  hint: install iproute2"))
}
