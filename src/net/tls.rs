//! rustls configuration, and what a TLS session looked like (for reports).
//! The only place TLS is configured.

use anyhow::{anyhow, bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, ClientConnection, CommonState, DigitallySignedStruct, DistinguishedName, ProtocolVersion,
    RootCertStore, ServerConfig, SignatureScheme,
};
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
    /// XEP-0368 direct TLS: reach the server by `_xmpps-client._tcp` (or the static address and
    /// port) and start with TLS (SNI = the domain, ALPN `xmpp-client`); no STARTTLS.
    Direct,
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

// ---- s2s: the harness as a server. Its verifiers record what the peer presents and accept it;
// the judgement (chain, validity, which XMPP identity matched) is made afterwards by
// `xmpp::s2s::identity`, so a bad certificate is reported in detail instead of ending the handshake.

/// A certificate chain (leaf first, as sent) and its private key: what the harness presents as a
/// TLS server (inbound s2s) or as a TLS client (outbound s2s).
#[derive(Debug)]
pub struct Credentials {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Credentials { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Credentials {
    /// From PEM text: every CERTIFICATE block of `chain_pem` (leaf first) and the first private key of `key_pem`.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Credentials> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("the certificate chain is not valid PEM")?;
        if chain.is_empty() {
            bail!("the certificate chain holds no CERTIFICATE blocks");
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).context("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM)")?;
        Ok(Credentials { chain, key })
    }

    /// From a chain file (leaf first, e.g. the lab CA's `chain.pem`) and a key file.
    pub fn from_files(chain: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Credentials> {
        let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        Credentials::from_pem(&read(chain)?, &read(key)?)
            .with_context(|| format!("{} / {}", chain.display(), key.display()))
    }
}

/// Accepts any client certificate chain and records it; the handshake signature is still checked,
/// so a recorded chain is one whose key the peer holds. Client certificates are requested, not required.
#[derive(Debug)]
struct RecordAnyClientCert {
    seen: SeenChain,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RecordAnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Empty: "the client should always provide a client certificate if it has one".
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        self.seen.set(chain);
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Accepts any server certificate chain and records it (handshake signatures are still checked).
#[derive(Debug)]
struct RecordAnyServerCert {
    seen: SeenChain,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordAnyServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        self.seen.set(chain);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A server configuration for one connection, and the client chain its verifier will record.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub seen: SeenChain,
}

/// TLS server configuration for the harness's inbound s2s: presents `creds`, asks for (but does
/// not require) a client certificate when `request_client_cert`, records whatever chain comes.
/// TLS 1.2 and 1.3; no session resumption, so every connection's chains are exchanged and recorded.
pub fn s2s_server_config(creds: &Credentials, request_client_cert: bool) -> anyhow::Result<ServerTls> {
    let seen = SeenChain::default();
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the ring provider does not support TLS 1.2 and 1.3")?;
    let builder = if request_client_cert {
        builder.with_client_cert_verifier(Arc::new(RecordAnyClientCert { seen: seen.clone(), provider }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(creds.chain.clone(), creds.key.clone_key())
        .context("the harness's certificate and key do not fit together")?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(ServerTls { config: Arc::new(config), seen })
}

/// TLS client configuration for the harness's outbound s2s: presents `creds` as client
/// certificate (none when `None`), records the server's chain and accepts it; the caller judges it.
pub fn s2s_client_config(creds: Option<&Credentials>) -> anyhow::Result<ClientTls> {
    let seen = SeenChain::default();
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the ring provider does not support TLS 1.2 and 1.3")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordAnyServerCert { seen: seen.clone(), provider }));
    let mut config = match creds {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .context("the harness's certificate and key do not fit together")?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok(ClientTls { config: Arc::new(config), seen })
}

/// Describe an established connection of either side for reports (`seen` is the peer chain a
/// recording verifier saw: used when the session does not expose one).
pub fn session_info(state: &CommonState, seen: &SeenChain, verified_for: &str) -> TlsInfo {
    let chain: Vec<CertificateDer<'static>> = match state.peer_certificates() {
        Some(certs) if !certs.is_empty() => certs.to_vec(),
        _ => seen.get(),
    };
    TlsInfo {
        version: state.protocol_version().map(version_name).unwrap_or_else(|| "unknown".into()),
        cipher: state
            .negotiated_cipher_suite()
            .map(|s| s.suite().as_str().map(str::to_string).unwrap_or_else(|| format!("{:?}", s.suite())))
            .unwrap_or_else(|| "unknown".into()),
        peer_chain: chain.iter().map(|c| cert_subject(c)).collect(),
        peer_chain_pem: chain.iter().map(|c| to_pem(c)).collect(),
        verified_for: verified_for.to_string(),
    }
}
