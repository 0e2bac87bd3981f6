//! `plugfest ca export`: a leaf in the formats servers other than Prosody and ejabberd want — one PEM bundle
//! (Tigase's `certs/<domain>.pem`, MongooseIM before OTP 28.1) or PKCS#12 (Openfire and other Java servers).
//! PKCS#12 is written by `openssl pkcs12 -export`: no pure-Rust PKCS#12 writer is among our dependencies.

use super::{write_file, LeafFiles};
use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

/// Java's keystore default, which Openfire uses too.
pub const DEFAULT_PKCS12_PASSWORD: &str = "changeit";
/// How the password reaches openssl: through the environment, never on a command line others can read.
const PASSWORD_ENV: &str = "PLUGFEST_PKCS12_PASSWORD";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Key, leaf, the rest of the chain, then the lab root (when the chain reaches it), in one PEM file.
    PemBundle,
    /// The same contents as a password-protected PKCS#12 file, the friendly name being the domain.
    Pkcs12,
}

impl ExportFormat {
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::PemBundle => "pem-bundle",
            ExportFormat::Pkcs12 => "pkcs12",
        }
    }

    /// The file name servers expect: `<domain>.pem` (Tigase) or `<domain>.p12`.
    pub fn default_file_name(self, domain: &str) -> String {
        match self {
            ExportFormat::PemBundle => format!("{domain}.pem"),
            ExportFormat::Pkcs12 => format!("{domain}.p12"),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pem-bundle" | "pem" => Ok(ExportFormat::PemBundle),
            "pkcs12" | "p12" | "pfx" => Ok(ExportFormat::Pkcs12),
            _ => Err(format!("unknown format {s:?}; use pem-bundle or pkcs12")),
        }
    }
}

/// Write `leaf` in `format` to `out` (default: next to the leaf, [`ExportFormat::default_file_name`]).
/// `password` protects PKCS#12 files ([`DEFAULT_PKCS12_PASSWORD`] when `None`); a PEM bundle is not encrypted.
/// Returns the file written (mode 0600: it holds the private key).
pub fn export(leaf: &LeafFiles, format: ExportFormat, password: Option<&str>, out: Option<&Path>) -> Result<PathBuf> {
    for file in [&leaf.fullchain_key, &leaf.cert] {
        if !file.is_file() {
            bail!(
                "{} is missing; issue it first: `plugfest ca issue {}` (with --fixture NAME for a test certificate)",
                file.display(),
                leaf.domain
            );
        }
    }
    let out = match out {
        Some(path) => path.to_path_buf(),
        None => {
            let dir = leaf.cert.parent().unwrap_or(Path::new("."));
            dir.join(format.default_file_name(&leaf.domain))
        }
    };
    match format {
        ExportFormat::PemBundle => {
            if password.is_some() {
                bail!("a PEM bundle is not encrypted; --password applies to pkcs12 only");
            }
            let bundle = std::fs::read(&leaf.fullchain_key)
                .with_context(|| format!("cannot read {}", leaf.fullchain_key.display()))?;
            write_file(&out, &bundle, 0o600)?;
        }
        ExportFormat::Pkcs12 => {
            let password = password.unwrap_or(DEFAULT_PKCS12_PASSWORD);
            write_pkcs12(&leaf.fullchain_key, &leaf.domain, password, &out)?;
        }
    }
    Ok(out)
}

/// `openssl pkcs12 -export` with the key and every certificate of `bundle` (key first, leaf next).
fn write_pkcs12(bundle: &Path, name: &str, password: &str, out: &Path) -> Result<()> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = Command::new("openssl")
        .args(["pkcs12", "-export", "-name", name, "-passout"])
        .arg(format!("env:{PASSWORD_ENV}"))
        .arg("-in")
        .arg(bundle)
        .arg("-out")
        .arg(&tmp)
        .env(PASSWORD_ENV, password)
        .stdin(Stdio::null())
        .output();
    let output = match result {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "PKCS#12 export needs the `openssl` command, which is not installed (Debian: `apt-get install openssl`); \
             or use --format pem-bundle"
        ),
        Err(e) => bail!("cannot run openssl: {e}"),
    };
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("openssl pkcs12 -export failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    // Re-written through write_file for mode 0600 and an atomic replace.
    let bytes = std::fs::read(&tmp).with_context(|| format!("cannot read {}", tmp.display()))?;
    let _ = std::fs::remove_file(&tmp);
    write_file(out, &bytes, 0o600)
}
