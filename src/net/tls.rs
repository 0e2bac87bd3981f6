//! rustls configuration, and what a TLS session looked like (for reports).
//! The only place TLS is configured. OWNER: xmpp helper.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Whether a client insists on STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// STARTTLS must be offered and succeed (the default).
    #[default]
    Required,
    /// Use STARTTLS when offered, continue in the clear otherwise.
    Optional,
    /// Never start TLS (only for servers that have none; PLAIN is then refused).
    Disabled,
}

/// Where trust anchors come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// A PEM file with one or more CA certificates (the lab CA).
    CaFile(PathBuf),
    /// The operating system's roots.
    System,
}

/// What a TLS session looked like, recorded for every connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TlsInfo {
    /// e.g. "TLSv1.3"
    pub version: String,
    /// e.g. "TLS13_AES_256_GCM_SHA384"
    pub cipher: String,
    /// Subjects of the peer's chain, leaf first.
    pub peer_chain: Vec<String>,
    /// The peer chain as PEM, leaf first.
    pub peer_chain_pem: Vec<String>,
    /// The reference identity that was checked (e.g. the domain).
    pub verified_for: String,
}
