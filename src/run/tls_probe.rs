//! Old-TLS probes (CATALOG G02(d), RFC 7525 §3.1.1 via RFC 7590 §3): does a server accept a
//! STARTTLS handshake offering only TLS 1.0 or 1.1? plugfest's own TLS (rustls) cannot speak
//! those versions at all, so the probe runs OpenSSL's `s_client`, which can (at security level 0),
//! with its XMPP STARTTLS support (`-starttls xmpp-server|xmpp`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

/// A TLS protocol version `openssl s_client` can be limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl TlsVersion {
    fn flag(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "-tls1",
            TlsVersion::Tls11 => "-tls1_1",
            TlsVersion::Tls12 => "-tls1_2",
            TlsVersion::Tls13 => "-tls1_3",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// Which stream the probe opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeService {
    C2s,
    S2s,
}

impl ProbeService {
    pub fn name(self) -> &'static str {
        match self {
            ProbeService::C2s => "c2s",
            ProbeService::S2s => "s2s",
        }
    }
}

/// What a `tls_probe` step requires of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeExpect {
    Accepted,
    Refused,
}

impl ProbeExpect {
    pub fn name(self) -> &'static str {
        match self {
            ProbeExpect::Accepted => "accepted",
            ProbeExpect::Refused => "refused",
        }
    }
}

/// What the probe saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The handshake completed with the version asked for.
    pub accepted: bool,
    /// `Cipher is …` and the TLS alert, if any, from s_client's output: the evidence.
    pub summary: String,
}

/// Connect to `addr`, run STARTTLS for `domain` (s2s when `s2s`, else c2s) offering only
/// `version`, and say whether the handshake completed. `Err` when the probe itself could not run.
pub async fn probe(
    addr: SocketAddr,
    domain: &str,
    s2s: bool,
    version: TlsVersion,
    timeout: Duration,
) -> Result<Probe, String> {
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(["-starttls", if s2s { "xmpp-server" } else { "xmpp" }, "-xmpphost", domain])
        .arg(version.flag())
        // Old versions are disabled at the default security level; the probe asks for them on purpose.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        format!(
            "cannot run openssl ({e}): the TLS version probe needs OpenSSL's command line tool (apt install openssl)"
        )
    })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(result) => result.map_err(|e| format!("openssl s_client failed: {e}"))?,
        Err(_) => return Ok(Probe { accepted: false, summary: format!("no handshake within {timeout:?}") }),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok(judge(&text, output.status.success(), version))
}

/// Accepted: s_client says a cipher was agreed for the version asked for.
fn judge(text: &str, exited_ok: bool, version: TlsVersion) -> Probe {
    let cipher = text.lines().find_map(|l| l.split_once("Cipher is ").map(|(_, c)| c.trim().to_string()));
    let protocol = text.lines().find_map(|l| {
        l.trim().strip_prefix("Protocol").and_then(|r| r.split_once(':')).map(|(_, p)| p.trim().to_string())
    });
    let alert = text.lines().find(|l| l.contains("alert")).map(|l| l.trim().to_string());
    let agreed = cipher.as_deref().is_some_and(|c| c != "(NONE)");
    let accepted = exited_ok && agreed && protocol.as_deref() == Some(version.name());
    let mut summary = format!(
        "{} {}: cipher {}",
        version.name(),
        if accepted { "accepted" } else { "refused" },
        cipher.as_deref().unwrap_or("(none)")
    );
    if let Some(alert) = alert {
        summary.push_str(&format!("; {alert}"));
    }
    Probe { accepted, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agreed_cipher_in_the_asked_version_is_acceptance() {
        let ok = "CONNECTED(00000003)\n---\nNew, TLSv1.1, Cipher is ECDHE-RSA-AES256-SHA\nSSL-Session:\n    Protocol  : TLSv1.1\n";
        assert!(judge(ok, true, TlsVersion::Tls11).accepted);
        let refused = "80DB:error:0A00042E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:../ssl/record/rec_layer_s3.c:1601:SSL alert number 70\n---\nNew, (NONE), Cipher is (NONE)\n    Protocol  : TLSv1.1\n";
        let probe = judge(refused, false, TlsVersion::Tls11);
        assert!(!probe.accepted);
        assert!(
            probe.summary.contains("refused") && probe.summary.contains("alert protocol version"),
            "{}",
            probe.summary
        );
        // A cipher in another version than asked for is not acceptance of that version.
        let other = "New, TLSv1.2, Cipher is X\n    Protocol  : TLSv1.2\n";
        assert!(!judge(other, true, TlsVersion::Tls11).accepted);
    }
}
