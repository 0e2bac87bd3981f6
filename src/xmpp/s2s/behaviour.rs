//! What the harness does as receiving and authoritative server: the scriptable part of a peer
//! (a scenario's `peer` actor will read it from YAML, hence serde with defaults and no unknown keys).

use serde::{Deserialize, Serialize};

/// How the receiving side offers STARTTLS (G03 strips or refuses it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartTlsOffer {
    /// `<starttls><required/></starttls>` (RFC 6120 §5.4.1).
    #[default]
    Required,
    /// `<starttls/>` without `<required/>`.
    Optional,
    /// No STARTTLS feature at all (a stripping attacker).
    Omitted,
    /// Offered, but answered with `<failure/>` and a closed stream.
    Fail,
}

/// When the receiving side offers SASL EXTERNAL after TLS (XEP-0178 §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExternalOffer {
    /// Only when the presented certificate is valid for the stream's 'from' domain (XEP-0178 SHOULD).
    #[default]
    WhenValid,
    /// Always (EXTERNAL then still fails for a bad certificate).
    Always,
    /// Never: the connecting server must use dialback.
    Never,
}

/// How the receiving side judges a `db:result` key from a connecting server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialbackJudge {
    /// Valid without dialing back when the TLS certificate is valid for the domain (XEP-0344
    /// "dialback without dialing back"), otherwise ask the authoritative server.
    #[default]
    CertificateOrVerify,
    /// Always ask the authoritative server over a new connection (XEP-0220 §2.1.2).
    Verify,
    /// Answer `valid` without checking.
    Valid,
    /// Answer `invalid`.
    Invalid,
}

/// How the harness, as authoritative server, answers `db:verify` requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyAnswer {
    /// `valid` exactly when the key is the one the harness issued.
    #[default]
    Honest,
    Valid,
    Invalid,
}

/// What the receiving side does (the initiating side is scripted per link with [`OutboundOptions`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerBehaviour {
    pub starttls: StartTlsOffer,
    /// Ask the connecting server for a TLS client certificate (needed for SASL EXTERNAL).
    pub request_client_cert: bool,
    pub offer_external: ExternalOffer,
    /// Declare and offer dialback (XEP-0220 §2.4: namespace on the header, feature with `<errors/>`).
    pub offer_dialback: bool,
    pub dialback_result: DialbackJudge,
    pub dialback_verify: VerifyAnswer,
}

impl Default for PeerBehaviour {
    fn default() -> Self {
        PeerBehaviour {
            starttls: StartTlsOffer::default(),
            request_client_cert: true,
            offer_external: ExternalOffer::default(),
            offer_dialback: true,
            dialback_result: DialbackJudge::default(),
            dialback_verify: VerifyAnswer::default(),
        }
    }
}
