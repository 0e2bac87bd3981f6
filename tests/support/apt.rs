//! Debian packages a test needs, installed with apt when missing (the tests install what they use,
//! so `cargo test` works on a fresh machine).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// `/usr/bin/<binary>`, installing `package` with apt first when it is missing.
pub fn ensure_installed(binary: &str, package: &str) -> PathBuf {
    static APT: Mutex<()> = Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|p| p.into_inner());
    let path = Path::new("/usr/bin").join(binary);
    if path.is_file() {
        return path;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run apt-get")
    };
    let mut out = install();
    if !out.status.success() {
        // A fresh machine may not have package lists yet.
        let _ = Command::new("apt-get").arg("update").output();
        out = install();
    }
    assert!(
        out.status.success() && path.is_file(),
        "could not install {package} with apt:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}
