//! Does a certificate name an XMPP domain, and by which identity? RFC 6120 §13.7.1.2 and §13.7.2 with the
//! matching rules of RFC 6125 §6: DNS-ID, SRV-ID, XmppAddr, a left-most `*` wildcard, and the subject CN
//! only as a last resort. webpki knows DNS-IDs only, so the s2s peer and `plugfest ca inspect` use this.

use anyhow::{Context, Result};
use std::fmt;
use x509_parser::asn1_rs::Any;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

/// id-on-dnsSRV (RFC 4985): the SRVName otherName that carries an SRV-ID.
pub const OID_SRV_NAME: &str = "1.3.6.1.5.5.7.8.7";
/// id-on-xmppAddr (RFC 6120 §13.7.1.4).
pub const OID_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";

/// Which XMPP service an SRV-ID must name: a peer server (s2s) or a server clients connect to (c2s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmppService {
    Server,
    Client,
}

impl XmppService {
    pub fn srv_label(self) -> &'static str {
        match self {
            XmppService::Server => "_xmpp-server",
            XmppService::Client => "_xmpp-client",
        }
    }
}

/// An identity a certificate presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresentedId {
    DnsId(String),
    /// A dNSName containing `*`.
    Wildcard(String),
    /// `_service.domain` from an SRVName otherName.
    SrvId(String),
    XmppAddr(String),
    /// The subject's commonName (only consulted when no subjectAltName identity is present).
    CommonName(String),
    /// Any other subjectAltName (e-mail, URI, IP address, unknown otherName): never an XMPP domain identity.
    Other(String),
}

impl PresentedId {
    /// The kind, as RFC 6125 names it.
    pub fn kind(&self) -> &'static str {
        match self {
            PresentedId::DnsId(_) => "DNS-ID",
            PresentedId::Wildcard(_) => "wildcard",
            PresentedId::SrvId(_) => "SRV-ID",
            PresentedId::XmppAddr(_) => "xmppAddr",
            PresentedId::CommonName(_) => "CN",
            PresentedId::Other(_) => "other",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            PresentedId::DnsId(v)
            | PresentedId::Wildcard(v)
            | PresentedId::SrvId(v)
            | PresentedId::XmppAddr(v)
            | PresentedId::CommonName(v)
            | PresentedId::Other(v) => v,
        }
    }

    /// A subjectAltName identity of a type XMPP validators support (its presence turns the CN fallback off).
    fn is_xmpp_san(&self) -> bool {
        matches!(
            self,
            PresentedId::DnsId(_) | PresentedId::Wildcard(_) | PresentedId::SrvId(_) | PresentedId::XmppAddr(_)
        )
    }
}

impl fmt::Display for PresentedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.value())
    }
}

/// The outcome for one presented identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdMatch {
    Matches,
    /// Compared, and it does not name the domain; the text says why.
    NoMatch(String),
    /// Not compared at all; the text says why.
    NotConsulted(String),
}

/// Every presented identity with its outcome for one reference domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityCheck {
    /// The reference identity, A-label form.
    pub reference: String,
    pub service: XmppService,
    pub results: Vec<(PresentedId, IdMatch)>,
}

impl IdentityCheck {
    /// The first identity that names the reference domain (a CN can match only when no SAN identity exists).
    pub fn matched(&self) -> Option<&PresentedId> {
        self.results.iter().find(|(_, m)| *m == IdMatch::Matches).map(|(id, _)| id)
    }

    /// True when only the subject CN names the domain: accepted by RFC 6125 §6.4.4 validators, refused by
    /// RFC 9525 ones.
    pub fn matched_by_cn_only(&self) -> bool {
        matches!(self.matched(), Some(PresentedId::CommonName(_)))
    }

    /// One sentence: which identity matched, or why none did.
    pub fn summary(&self) -> String {
        match self.matched() {
            Some(id @ PresentedId::CommonName(_)) => format!(
                "only the subject {id} names {}: a fallback RFC 6125 §6.4.4 allows and RFC 9525 removed",
                self.reference
            ),
            Some(id) => format!("{} is named by {id}", self.reference),
            None if self.results.is_empty() => {
                format!("no identity names {}: the certificate has no subjectAltName and no CN", self.reference)
            }
            None => {
                // The identities that were compared explain the refusal; the skipped ones only if nothing was.
                let compared: Vec<String> = self
                    .results
                    .iter()
                    .filter_map(|(id, m)| match m {
                        IdMatch::NoMatch(why) => Some(format!("{id}: {why}")),
                        _ => None,
                    })
                    .collect();
                let reasons = if compared.is_empty() {
                    self.results
                        .iter()
                        .filter_map(|(id, m)| match m {
                            IdMatch::NotConsulted(why) => Some(format!("{id}: {why}")),
                            _ => None,
                        })
                        .collect()
                } else {
                    compared
                };
                format!("no identity names {} ({})", self.reference, reasons.join("; "))
            }
        }
    }
}

/// Check a DER certificate against `domain` (Unicode or A-label).
pub fn check_identity_der(der: &[u8], domain: &str, service: XmppService) -> Result<IdentityCheck> {
    let (_, cert) = X509Certificate::from_der(der).context("not a DER X.509 certificate")?;
    check_identity(&cert, domain, service)
}

/// Check a certificate against `domain` (Unicode or A-label) as RFC 6120 §13.7.2.1 describes: the reference
/// identity is the peer's domain; DNS-ID, SRV-ID (for `service`) and XmppAddr count; a wildcard covers one
/// left-most label; the CN only when no subjectAltName identity is present (RFC 6125 §6.4.4).
pub fn check_identity(cert: &X509Certificate<'_>, domain: &str, service: XmppService) -> Result<IdentityCheck> {
    let reference = super::dns_name(domain).context("the domain to check against is not a DNS name")?;
    let presented = presented_ids(cert);
    let has_san_ids = presented.iter().any(PresentedId::is_xmpp_san);
    let results = presented
        .into_iter()
        .map(|id| {
            let outcome = compare(&id, &reference, service, has_san_ids);
            (id, outcome)
        })
        .collect();
    Ok(IdentityCheck { reference, service, results })
}

/// Every identity in the certificate: subjectAltName entries in order, then the subject's CNs.
pub fn presented_ids(cert: &X509Certificate<'_>) -> Vec<PresentedId> {
    let mut ids = Vec::new();
    match cert.subject_alternative_name() {
        Ok(Some(san)) => ids.extend(san.value.general_names.iter().map(general_name_id)),
        Ok(None) => {}
        Err(e) => ids.push(PresentedId::Other(format!("unreadable subjectAltName ({e})"))),
    }
    for cn in cert.subject().iter_common_name() {
        match cn.as_str() {
            Ok(text) => ids.push(PresentedId::CommonName(text.to_string())),
            Err(_) => ids.push(PresentedId::Other("a CN that is not a string".into())),
        }
    }
    ids
}

fn general_name_id(name: &GeneralName<'_>) -> PresentedId {
    match name {
        GeneralName::DNSName(dns) if dns.contains('*') => PresentedId::Wildcard(dns.to_string()),
        GeneralName::DNSName(dns) => PresentedId::DnsId(dns.to_string()),
        GeneralName::OtherName(oid, value) => {
            let oid = oid.to_id_string();
            match (oid.as_str(), other_name_string(value)) {
                (OID_SRV_NAME, Some(srv)) => PresentedId::SrvId(srv),
                (OID_XMPP_ADDR, Some(jid)) => PresentedId::XmppAddr(jid),
                (OID_SRV_NAME, None) => PresentedId::Other("SRVName that is not an IA5String".into()),
                (OID_XMPP_ADDR, None) => PresentedId::Other("xmppAddr that is not a UTF8String".into()),
                (other, _) => PresentedId::Other(format!("otherName {other}")),
            }
        }
        GeneralName::RFC822Name(mail) => PresentedId::Other(format!("e-mail {mail}")),
        GeneralName::URI(uri) => PresentedId::Other(format!("URI {uri}")),
        GeneralName::IPAddress(ip) => PresentedId::Other(format!("IP address {}", ip_text(ip))),
        other => PresentedId::Other(format!("{other:?}")),
    }
}

/// The string inside an otherName's `[0] EXPLICIT` value (IA5String or UTF8String).
fn other_name_string(value: &[u8]) -> Option<String> {
    let (_, explicit) = Any::from_der(value).ok()?;
    let (_, inner) = Any::from_der(explicit.data).ok()?;
    // 0x16 IA5String, 0x0c UTF8String.
    match inner.tag().0 {
        0x16 | 0x0c => String::from_utf8(inner.data.to_vec()).ok(),
        _ => None,
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => format!("{bytes:02x?}"),
    }
}

fn compare(id: &PresentedId, reference: &str, service: XmppService, has_san_ids: bool) -> IdMatch {
    match id {
        PresentedId::DnsId(dns) => same_domain(dns, reference, "names another domain"),
        PresentedId::Wildcard(pattern) => compare_wildcard(pattern, reference),
        PresentedId::SrvId(srv) => {
            let Some((label, name)) = srv.split_once('.') else {
                return IdMatch::NoMatch("not of the form _service.domain".into());
            };
            if !label.eq_ignore_ascii_case(service.srv_label()) {
                return IdMatch::NoMatch(format!(
                    "names the {label} service, and this check is for {} (RFC 6120 §13.7.1.2.1)",
                    service.srv_label()
                ));
            }
            same_domain(name, reference, "names another domain")
        }
        PresentedId::XmppAddr(jid) => {
            if jid.contains('@') || jid.contains('/') {
                return IdMatch::NoMatch("names an account or resource, not a server domain".into());
            }
            // Any notation (U-label, A-label, mixed case) must be accepted (RFC 6120 §13.7.1.4): compare A-labels.
            match idna::domain_to_ascii(jid) {
                Ok(ascii) => same_domain(&ascii, reference, "names another domain"),
                Err(_) => IdMatch::NoMatch("not a valid domain name".into()),
            }
        }
        PresentedId::CommonName(_) if has_san_ids => IdMatch::NotConsulted(
            "not consulted: the certificate has subjectAltName identities (RFC 6125 §6.4.4)".into(),
        ),
        PresentedId::CommonName(cn) => same_domain(cn, reference, "names another domain"),
        PresentedId::Other(_) => IdMatch::NotConsulted("not an identity type XMPP uses".into()),
    }
}

fn same_domain(presented: &str, reference: &str, otherwise: &str) -> IdMatch {
    if presented.trim_end_matches('.').eq_ignore_ascii_case(reference) {
        IdMatch::Matches
    } else {
        IdMatch::NoMatch(otherwise.into())
    }
}

/// Only a complete left-most `*` label is honoured, and it covers exactly one label (RFC 6120 §13.7.1.2.1,
/// RFC 6125 §6.4.3): `*.d` covers `muc.d`, not `d` and not `a.b.d`.
fn compare_wildcard(pattern: &str, reference: &str) -> IdMatch {
    let Some(base) = pattern.strip_prefix("*.").filter(|b| !b.contains('*')) else {
        return IdMatch::NoMatch(
            "a partial or embedded wildcard; only a complete left-most `*` label is honoured (RFC 6125 §6.4.3)".into(),
        );
    };
    if base.eq_ignore_ascii_case(reference) {
        return IdMatch::NoMatch(format!("covers names one label below {base}, not {base} itself (RFC 6125 §6.4.3)"));
    }
    match reference.split_once('.') {
        Some((first, rest)) if !first.is_empty() && rest.eq_ignore_ascii_case(base) => IdMatch::Matches,
        _ => IdMatch::NoMatch(format!("covers exactly one label to the left of {base}")),
    }
}
