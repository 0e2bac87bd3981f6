//! What the harness records about every s2s leg, ready for results.json.

use super::CertCheck;
use crate::net::tls::TlsInfo;
use crate::xmpp::TranscriptEntry;
use serde::{Deserialize, Serialize};

/// Which way a leg goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegKind {
    /// The other server connected to the harness.
    Inbound,
    /// The harness connected to the other server to send stanzas.
    Outbound,
    /// The harness connected to the other server to check a dialback key (XEP-0220 §2.1.2).
    DialbackVerify,
}

/// How a peer was (or was not) authenticated on a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    SaslExternal,
    /// Dialback with a verify round trip to the authoritative server.
    Dialback,
    /// Dialback accepted on the strength of the TLS certificate (XEP-0344).
    DialbackWithoutDialingBack,
    /// Dialback answered by behaviour without any check (`dialback_result: valid`).
    DialbackUnchecked,
}

/// One authentication attempt on a leg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRecord {
    pub method: AuthMethod,
    /// The domain being authenticated (inbound: the other server; outbound: the harness).
    pub domain: String,
    pub succeeded: bool,
    /// What was said, e.g. the SASL failure condition or the dialback type.
    pub detail: String,
}

/// One `db:verify` request answered by the harness as authoritative server (XEP-0220 §2.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// The receiving server that asked.
    pub from: String,
    /// The stream id the key was for.
    pub stream_id: String,
    /// Whether the key is the one the harness issued for that stream.
    pub key_matches: bool,
    /// `valid` or `invalid`, as answered.
    pub answered: String,
}

/// Everything recorded about one s2s connection, ready for results.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegRecord {
    /// Unique within the peer, in creation order.
    pub id: u64,
    pub kind: LegKind,
    pub local_addr: String,
    pub peer_addr: String,
    /// The other server's domain: the stream 'from' it claimed (inbound) or the target (outbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_domain: Option<String>,
    /// Stream ids, one per stream (restarts after TLS and SASL start new ones).
    pub stream_ids: Vec<String>,
    /// The fixture the harness presented (`good`, `wrongname`, …), when it presented one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_presented: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// The server name the other server asked for in TLS (inbound legs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The harness's judgement of the other server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_cert: Option<CertCheck>,
    pub auth: Vec<AuthRecord>,
    /// `db:verify` requests the harness answered as authoritative server on this leg.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dialback_verifies: Vec<VerifyRecord>,
    pub stanzas_in: usize,
    pub stanzas_out: usize,
    /// `None` while the leg is open; then "closed" or the error that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub transcript: Vec<TranscriptEntry>,
}

impl LegRecord {
    /// The successful authentication, if any.
    pub fn authenticated(&self) -> Option<&AuthRecord> {
        self.auth.iter().find(|a| a.succeeded)
    }
}
