//! rustls configuration, and what a TLS session looked like (for reports).
//! The only place TLS is configured. OWNER: xmpp helper.

use anyhow::{anyhow, bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

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

/// The peer chain a [`RecordingVerifier`] saw, shared with whoever reports on the connection.
/// Filled even when verification fails, so a failed handshake can still say what was presented.
#[derive(Clone, Debug, Default)]
pub struct SeenChain(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl SeenChain {
    pub fn get(&self) -> Vec<CertificateDer<'static>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, chain: Vec<CertificateDer<'static>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = chain;
    }

    /// Subjects of the chain, leaf first (for error messages).
    pub fn subjects(&self) -> Vec<String> {
        self.get().iter().map(|c| cert_subject(c)).collect()
    }
}

/// Verifies like webpki (chain to the trust anchors, DNS-ID = the server name) and records the
/// chain it was shown.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: SeenChain,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        self.seen.set(chain);
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client configuration for one connection, and the chain its verifier will record.
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub seen: SeenChain,
}

/// Build the TLS client configuration for one connection: TLS 1.2 and 1.3 (ring), trust anchors
/// from `trust`, no client certificate.
///
/// The parsed trust anchors are cached per trust source (keyed by the CA file's path, size and
/// modification time, so a regenerated lab CA is picked up). The `ClientConfig` itself is per
/// connection and has resumption disabled: every handshake is a full one, so every connection's
/// chain is verified and recorded.
pub fn client_config(trust: &Trust) -> anyhow::Result<ClientTls> {
    let seen = SeenChain::default();
    let verifier = Arc::new(RecordingVerifier { inner: webpki_verifier(trust)?, seen: seen.clone() });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the ring provider does not support TLS 1.2 and 1.3")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(ClientTls { config: Arc::new(config), seen })
}

/// The ring crypto provider (one place, so every config agrees).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server name for SNI and certificate verification: the domain as an A-label.
pub fn server_name(domain: &str) -> anyhow::Result<ServerName<'static>> {
    let ascii = crate::net::resolve::ascii_domain(domain)?;
    ServerName::try_from(ascii.clone()).map_err(|e| anyhow!("{ascii:?} cannot be a TLS server name: {e}"))
}

/// Describe an established client connection for reports.
pub fn tls_info(conn: &ClientConnection, seen: &SeenChain, verified_for: &str) -> TlsInfo {
    let chain: Vec<CertificateDer<'static>> = match conn.peer_certificates() {
        Some(certs) if !certs.is_empty() => certs.to_vec(),
        _ => seen.get(),
    };
    TlsInfo {
        version: conn.protocol_version().map(version_name).unwrap_or_else(|| "unknown".into()),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|s| s.suite().as_str().map(str::to_string).unwrap_or_else(|| format!("{:?}", s.suite())))
            .unwrap_or_else(|| "unknown".into()),
        peer_chain: chain.iter().map(|c| cert_subject(c)).collect(),
        peer_chain_pem: chain.iter().map(|c| to_pem(c)).collect(),
        verified_for: verified_for.to_string(),
    }
}

/// "TLSv1.3" rather than rustls's `TLSv1_3`.
pub fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        ProtocolVersion::TLSv1_1 => "TLSv1.1".into(),
        ProtocolVersion::TLSv1_0 => "TLSv1.0".into(),
        other => format!("{other:?}"),
    }
}

/// The certificate's subject as an RFC 4514-style string, or a note when it does not parse.
pub fn cert_subject(der: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => {
            let subject = cert.subject().to_string();
            if subject.is_empty() {
                "(empty subject)".into()
            } else {
                subject
            }
        }
        Err(e) => format!("(unparsable certificate: {e})"),
    }
}

/// PEM text of one DER certificate.
pub fn to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// What identifies a trust source in the cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TrustKey {
    CaFile { path: PathBuf, len: u64, modified: Option<SystemTime> },
    System,
}

fn webpki_verifier(trust: &Trust) -> anyhow::Result<Arc<WebPkiServerVerifier>> {
    static CACHE: OnceLock<Mutex<HashMap<TrustKey, Arc<WebPkiServerVerifier>>>> = OnceLock::new();
    let key = match trust {
        Trust::System => TrustKey::System,
        Trust::CaFile(path) => {
            let meta = std::fs::metadata(path).with_context(|| {
                format!("cannot read CA file {} (check the servers file's ca_file)", path.display())
            })?;
            TrustKey::CaFile { path: path.clone(), len: meta.len(), modified: meta.modified().ok() }
        }
    };
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let roots = Arc::new(root_store(trust)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| anyhow!("cannot build a certificate verifier: {e}"))?;
    cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, verifier.clone());
    Ok(verifier)
}

/// Trust anchors from a PEM file or from the operating system.
pub fn root_store(trust: &Trust) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::CaFile(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read CA file {}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("CA file {} is not valid PEM", path.display()))?;
            if certs.is_empty() {
                bail!("CA file {} holds no CERTIFICATE blocks", path.display());
            }
            for cert in certs {
                roots.add(cert).with_context(|| format!("CA file {} holds an unusable certificate", path.display()))?;
            }
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
                bail!("no usable system CA certificates found ({why}); give the server a ca_file instead");
            }
        }
    }
    Ok(roots)
}

/// Channel-binding data of type `tls-exporter` (RFC 9266): 32 bytes of keying material with the
/// label "EXPORTER-Channel-Binding" and no context. Only for TLS 1.3 (RFC 9266 §3 would allow
/// TLS 1.2 with extended master secret, which plugfest does not rely on); `None` otherwise.
pub fn tls_exporter(conn: &ClientConnection) -> Option<Vec<u8>> {
    if conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
        return None;
    }
    conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None).ok()
}
