//! Judging a peer server's certificate as RFC 6120 §13.7.2 asks: does the chain lead to a trust
//! anchor within its validity period, and which identity in the leaf names the domain the stream
//! claims (the reference identity, §13.7.2.1)? The result is a [`CertCheck`], ready for reports.
//!
//! webpki does the path validation; the XMPP identity forms (DNS-ID, SRV-ID, XmppAddr, wildcard,
//! CN fallback) are matched by `ca::identity`, the one place that knows them.

use crate::ca::identity::{self as ids, IdMatch, PresentedId, XmppService};
use crate::net::tls;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which kind of identity in a certificate matched the reference domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityForm {
    /// `dNSName` equal to the domain.
    DnsId,
    /// `otherName` SRVName `_xmpp-server.<domain>`.
    SrvId,
    /// `otherName` id-on-xmppAddr equal to the domain.
    XmppAddr,
    /// `dNSName` `*.<parent>` matching the domain's first label.
    WildcardDnsId,
    /// The subject's common name, only consulted when the certificate has no identity SAN at all.
    CommonName,
}

impl IdentityForm {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityForm::DnsId => "DNS-ID",
            IdentityForm::SrvId => "SRV-ID",
            IdentityForm::XmppAddr => "XmppAddr",
            IdentityForm::WildcardDnsId => "wildcard DNS-ID",
            IdentityForm::CommonName => "CN",
        }
    }
}

/// The verdict on one presented chain for one reference domain, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertCheck {
    /// The reference identity: the domain the peer claims on the stream.
    pub reference: String,
    /// The chain leads to a trust anchor, every certificate is within its validity period and
    /// the leaf may be used for a TLS server (EKU serverAuth or none).
    pub chain_valid: bool,
    /// Why the chain is not valid, in webpki's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_error: Option<String>,
    /// The identity forms that name the reference, best first; empty = no identity matched.
    pub matched: Vec<IdentityForm>,
    /// Every identity the leaf carries, e.g. `DNS-ID harness.lab`, `SRV-ID _xmpp-server.harness.lab`.
    pub presented: Vec<String>,
    /// Which identity named the reference, or why none did, in plain words.
    pub identity_note: String,
    pub subject: String,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Extended key usage: serverAuth / clientAuth present (both true when there is no EKU extension).
    pub eku_server_auth: bool,
    pub eku_client_auth: bool,
    /// Certificates in the presented chain (leaf included).
    pub chain_len: usize,
}

impl CertCheck {
    /// The best identity that matched, if any.
    pub fn identity(&self) -> Option<IdentityForm> {
        self.matched.first().copied()
    }

    /// Valid chain and some identity names the reference: the peer is authenticated as `reference`.
    pub fn accepted(&self) -> bool {
        self.chain_valid && self.identity().is_some()
    }

    /// One line for transcripts and errors.
    pub fn summary(&self) -> String {
        let chain = match &self.chain_error {
            None => "chain valid".to_string(),
            Some(e) => format!("chain not valid ({e})"),
        };
        format!("{chain}; {}", self.identity_note)
    }

    /// A check for a peer that presented no certificate at all.
    pub fn none_presented(reference: &str) -> CertCheck {
        CertCheck {
            reference: reference.to_string(),
            chain_valid: false,
            chain_error: Some("no certificate presented".into()),
            matched: Vec::new(),
            presented: Vec::new(),
            identity_note: format!("no certificate names {reference}"),
            subject: String::new(),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            eku_server_auth: false,
            eku_client_auth: false,
            chain_len: 0,
        }
    }
}

/// Check `chain` (leaf first, as presented) against `roots` and the `reference` domain at `now`.
pub fn check(chain: &[CertificateDer<'_>], roots: &RootCertStore, reference: &str, now: UnixTime) -> CertCheck {
    let Some((leaf, intermediates)) = chain.split_first() else { return CertCheck::none_presented(reference) };
    let mut out = CertCheck { chain_len: chain.len(), chain_valid: true, ..CertCheck::none_presented(reference) };
    out.chain_error = None;
    if let Err(e) = validate_path(leaf, intermediates, roots, now) {
        out.chain_valid = false;
        out.chain_error = Some(e);
    }
    match X509Certificate::from_der(leaf.as_ref()) {
        Ok((_, cert)) => describe(&cert, reference, &mut out),
        Err(e) => {
            out.chain_valid = false;
            out.chain_error.get_or_insert_with(|| format!("the leaf certificate does not parse: {e}"));
        }
    }
    out
}

fn validate_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    now: UnixTime,
) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(leaf).map_err(|e| e.to_string())?;
    let algorithms = tls::provider().signature_verification_algorithms.all;
    verify_server_cert_signed_by_trust_anchor(&parsed, roots, intermediates, now, algorithms).map_err(|e| e.to_string())
}

/// Fill names, matches, validity and usages from the parsed leaf.
fn describe(cert: &X509Certificate<'_>, reference: &str, out: &mut CertCheck) {
    use time::format_description::well_known::Rfc3339;
    out.subject = cert.subject().to_string();
    out.issuer = cert.issuer().to_string();
    out.not_before = cert.validity().not_before.to_datetime().format(&Rfc3339).unwrap_or_default();
    out.not_after = cert.validity().not_after.to_datetime().format(&Rfc3339).unwrap_or_default();
    match cert.extended_key_usage() {
        Ok(Some(eku)) => {
            out.eku_server_auth = eku.value.server_auth || eku.value.any;
            out.eku_client_auth = eku.value.client_auth || eku.value.any;
        }
        _ => (out.eku_server_auth, out.eku_client_auth) = (true, true),
    }

    out.presented = ids::presented_ids(cert).iter().map(|id| id.to_string()).collect();
    match ids::check_identity(cert, reference, XmppService::Server) {
        Ok(check) => {
            let mut matched: Vec<IdentityForm> = check
                .results
                .iter()
                .filter(|(_, outcome)| *outcome == IdMatch::Matches)
                .filter_map(|(id, _)| form_of(id))
                .collect();
            matched.sort();
            matched.dedup();
            out.matched = matched;
            out.identity_note = check.summary();
        }
        Err(e) => out.identity_note = format!("{reference:?} cannot be compared with a certificate: {e:#}"),
    }
}

fn form_of(id: &PresentedId) -> Option<IdentityForm> {
    match id {
        PresentedId::DnsId(_) => Some(IdentityForm::DnsId),
        PresentedId::SrvId(_) => Some(IdentityForm::SrvId),
        PresentedId::XmppAddr(_) => Some(IdentityForm::XmppAddr),
        PresentedId::Wildcard(_) => Some(IdentityForm::WildcardDnsId),
        PresentedId::CommonName(_) => Some(IdentityForm::CommonName),
        PresentedId::Other(_) => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};

    /// A throw-away CA (root signs leaves directly) for identity tests.
    pub(crate) struct TestCa {
        pub issuer: Issuer<'static, KeyPair>,
        pub root_der: CertificateDer<'static>,
    }

    impl TestCa {
        pub(crate) fn new(name: &str) -> TestCa {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
            let cert = params.self_signed(&key).unwrap();
            TestCa { root_der: cert.der().clone(), issuer: Issuer::new(params, key) }
        }

        pub(crate) fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots.add(self.root_der.clone()).unwrap();
            roots
        }

        /// A leaf with the given SANs (and CN), both EKUs; returns (chain, key PEM).
        pub(crate) fn leaf(&self, cn: &str, sans: Vec<SanType>, extra: Option<CustomExtension>) -> Leaf {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.subject_alt_names = sans;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(30);
            if let Some(ext) = extra {
                params.custom_extensions.push(ext);
            }
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Leaf { der: cert.der().clone(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
        }
    }

    pub(crate) struct Leaf {
        pub der: CertificateDer<'static>,
        pub cert_pem: String,
        pub key_pem: String,
    }

    pub(crate) fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().unwrap())
    }

    /// A subjectAltName extension with one SRVName otherName (rcgen writes otherNames as UTF8String
    /// only, RFC 4985 wants IA5String), encoded by hand.
    pub(crate) fn srv_id_extension(srv_name: &str) -> CustomExtension {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            assert!(content.len() < 128);
            let mut out = vec![tag, content.len() as u8];
            out.extend_from_slice(content);
            out
        }
        let oid = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07]; // 1.3.6.1.5.5.7.8.7
        let value = tlv(0xA0, &tlv(0x16, srv_name.as_bytes()));
        let other_name = tlv(0xA0, &[&oid[..], &value].concat());
        let san = tlv(0x30, &other_name);
        CustomExtension::from_oid_content(&[2, 5, 29, 17], san)
    }

    fn xmpp_addr(domain: &str) -> SanType {
        SanType::OtherName((vec![1, 3, 6, 1, 5, 5, 7, 8, 5], rcgen::OtherNameValue::Utf8String(domain.into())))
    }

    #[test]
    fn dns_id_matches_and_wrong_name_does_not() {
        let ca = TestCa::new("Test CA");
        let leaf = ca.leaf("h.lab", vec![dns("h.lab"), dns("*.h.lab")], None);
        let ok = check(std::slice::from_ref(&leaf.der), &ca.roots(), "h.lab", UnixTime::now());
        assert!(ok.accepted(), "{}", ok.summary());
        assert_eq!(ok.matched, [IdentityForm::DnsId]);
        assert_eq!(ok.presented, ["DNS-ID h.lab", "wildcard *.h.lab", "CN h.lab"]);
        let sub = check(std::slice::from_ref(&leaf.der), &ca.roots(), "pubsub.h.lab", UnixTime::now());
        assert_eq!(sub.matched, [IdentityForm::WildcardDnsId]);
        let other = check(&[leaf.der], &ca.roots(), "x.lab", UnixTime::now());
        assert!(other.chain_valid && !other.accepted());
        assert!(other.summary().contains("no identity names x.lab"), "{}", other.summary());
    }

    #[test]
    fn srv_id_and_xmpp_addr_are_recognised() {
        let ca = TestCa::new("Test CA");
        let srv = ca.leaf("nothing", vec![], Some(srv_id_extension("_xmpp-server.h.lab")));
        let c = check(&[srv.der], &ca.roots(), "h.lab", UnixTime::now());
        assert_eq!(c.matched, [IdentityForm::SrvId], "{c:?}");
        assert!(c.presented.contains(&"SRV-ID _xmpp-server.h.lab".to_string()), "{c:?}");

        let client_srv = ca.leaf("nothing", vec![], Some(srv_id_extension("_xmpp-client.h.lab")));
        assert!(check(&[client_srv.der], &ca.roots(), "h.lab", UnixTime::now()).matched.is_empty());

        let addr = ca.leaf("nothing", vec![xmpp_addr("h.lab")], None);
        let c = check(&[addr.der], &ca.roots(), "h.lab", UnixTime::now());
        assert_eq!(c.matched, [IdentityForm::XmppAddr], "{c:?}");
    }

    #[test]
    fn common_name_counts_only_without_identity_sans() {
        let ca = TestCa::new("Test CA");
        let cn_only = ca.leaf("h.lab", vec![], None);
        assert_eq!(check(&[cn_only.der], &ca.roots(), "h.lab", UnixTime::now()).matched, [IdentityForm::CommonName]);
        let both = ca.leaf("h.lab", vec![dns("x.lab")], None);
        assert!(check(&[both.der], &ca.roots(), "h.lab", UnixTime::now()).matched.is_empty());
    }

    #[test]
    fn untrusted_and_expired_chains_are_not_valid() {
        let ca = TestCa::new("Test CA");
        let rogue = TestCa::new("Rogue CA");
        let leaf = rogue.leaf("h.lab", vec![dns("h.lab")], None);
        let c = check(std::slice::from_ref(&leaf.der), &ca.roots(), "h.lab", UnixTime::now());
        assert!(!c.chain_valid && !c.accepted());
        assert!(c.chain_error.as_deref().unwrap_or("").contains("UnknownIssuer"), "{c:?}");
        assert_eq!(c.matched, [IdentityForm::DnsId], "the name still matches; only the chain fails");

        let good = ca.leaf("h.lab", vec![dns("h.lab")], None);
        let in_a_year = UnixTime::since_unix_epoch(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap()
                + std::time::Duration::from_secs(365 * 86400),
        );
        let c = check(&[good.der], &ca.roots(), "h.lab", in_a_year);
        assert!(!c.chain_valid, "{c:?}");
        assert!(c.chain_error.as_deref().unwrap_or("").to_lowercase().contains("expired"), "{c:?}");
    }

    #[test]
    fn nothing_presented_is_reported() {
        let c = check(&[], &RootCertStore::empty(), "h.lab", UnixTime::now());
        assert!(!c.accepted());
        assert_eq!(c.chain_error.as_deref(), Some("no certificate presented"));
    }
}
