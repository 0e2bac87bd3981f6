//! `plugfest ca inspect`: a certificate file explained in plain words — names by kind, usages, validity, the
//! chain the file holds, whether it chains to a CA (webpki, as rustls peers decide), and whether it would be
//! accepted for an XMPP domain (RFC 6120 §13.7.2, via [`super::identity`]).

use super::identity::{check_identity, presented_ids, IdMatch, IdentityCheck, PresentedId, XmppService};
use ::time::OffsetDateTime;
use anyhow::{bail, Context, Result};
use rustls::pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// The outcome of an inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Trusted chain and an identity that names the domain. `as_client` says whether the same certificate
    /// also works as a TLS client certificate (the initiating server on s2s, SASL EXTERNAL).
    Accepted {
        identity: PresentedId,
        as_client: Result<(), String>,
    },
    /// Trusted chain, but only the subject CN names the domain.
    AcceptedByCnFallback,
    Rejected(String),
    /// Not enough to decide (no domain, no CA, or not a server certificate); the text says what is missing.
    NotChecked(String),
}

/// Trust as two rustls peers would decide it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// The file the trust anchors came from.
    pub anchors: PathBuf,
    /// As a TLS server certificate (EKU serverAuth): a client, or the initiating server on s2s, checks this.
    pub as_server: Result<(), String>,
    /// As a TLS client certificate (EKU clientAuth): the receiving server on s2s checks this.
    pub as_client: Result<(), String>,
}

/// What `inspect` found; `Display` prints the report.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub certificates: usize,
    pub identity: Option<IdentityCheck>,
    pub trust: Option<Trust>,
    pub verdict: Verdict,
    text: String,
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Explain the certificates in `path` (PEM, possibly with a key, or DER). With `domain`, say whether the
/// leaf would be accepted for it; with `anchors` (a PEM file of CA certificates), whether it chains to them.
pub fn inspect_file(path: &Path, domain: Option<&str>, anchors: Option<&Path>) -> Result<Inspection> {
    let (ders, keys) = read_certificates(path)?;
    if ders.is_empty() {
        bail!(
            "{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks or one DER certificate)",
            path.display()
        );
    }
    let certs = parse_all(&ders, path)?;
    let anchor_ders = match anchors {
        Some(a) => {
            let (found, _) = read_certificates(a)?;
            if found.is_empty() {
                bail!("{} holds no CA certificate; give the lab root, e.g. `--ca ca/root.pem`", a.display());
            }
            Some((a.to_path_buf(), found))
        }
        None => None,
    };
    let anchor_certs = match &anchor_ders {
        Some((a, found)) => parse_all(found, a)?,
        None => Vec::new(),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let leaf = &certs[0];
    let leaf_is_ca = leaf.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);

    let mut out = String::new();
    let key_note = if keys > 0 { ", and a private key (never hand this file out)" } else { "" };
    let plural = if certs.len() == 1 { "" } else { "s" };
    let _ = writeln!(out, "{}: {} certificate{plural}{key_note}", path.display(), certs.len());
    let _ = writeln!(out);
    let role = if leaf_is_ca { "a CA certificate" } else { "the leaf: it identifies the server" };
    let _ = writeln!(out, "Certificate 1 ({role})");
    describe_certificate(&mut out, leaf, &ders[0], now);
    let _ = writeln!(out);
    describe_chain(&mut out, &certs, &anchor_certs, now);

    let trust = match &anchor_ders {
        Some((file, found)) if !leaf_is_ca => Some(verify_trust(file, &ders, found)),
        _ => None,
    };
    if let Some(t) = &trust {
        let names: Vec<String> = anchor_certs.iter().map(|c| c.subject().to_string()).collect();
        let _ = writeln!(out);
        let _ = writeln!(out, "Trust (anchors from {}: {})", t.anchors.display(), names.join("; "));
        let _ = writeln!(out, "  as a TLS server certificate (receiving server, c2s): {}", outcome(&t.as_server));
        let _ = writeln!(out, "  as a TLS client certificate (initiating server on s2s): {}", outcome(&t.as_client));
    }

    let identity = match domain {
        Some(d) if !leaf_is_ca => Some(check_identity(leaf, d, XmppService::Server)?),
        _ => None,
    };
    if let Some(id) = &identity {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Identity for {} (RFC 6120 §13.7.2: DNS-ID, SRV-ID _xmpp-server, xmppAddr; CN only without those)",
            id.reference
        );
        for (presented, result) in &id.results {
            let text = match result {
                IdMatch::Matches => "matches".to_string(),
                IdMatch::NoMatch(why) => format!("no: {why}"),
                IdMatch::NotConsulted(why) => why.clone(),
            };
            let _ = writeln!(out, "  {:<34} {text}", presented.to_string());
        }
        if id.results.is_empty() {
            let _ = writeln!(out, "  (the certificate presents no identity at all)");
        }
    }

    let path_hint = path_problem(&certs, &anchor_certs);
    let verdict = decide(leaf, leaf_is_ca, now, domain, trust.as_ref(), path_hint.as_deref(), identity.as_ref());
    let _ = writeln!(out);
    let _ = writeln!(out, "Verdict: {}", verdict_text(&verdict, identity.as_ref()));
    Ok(Inspection { certificates: certs.len(), identity, trust, verdict, text: out })
}

/// Certificates (DER) in a PEM or DER file, and how many private keys the PEM holds.
fn read_certificates(path: &Path) -> Result<(Vec<Vec<u8>>, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Ok((vec![bytes], 0));
    }
    let (mut certs, mut keys) = (Vec::new(), 0);
    for block in Pem::iter_from_buffer(&bytes) {
        let block = block.with_context(|| format!("{} is not a readable PEM file", path.display()))?;
        match block.label.as_str() {
            "CERTIFICATE" => certs.push(block.contents),
            label if label.contains("PRIVATE KEY") => keys += 1,
            _ => {}
        }
    }
    Ok((certs, keys))
}

fn parse_all<'a>(ders: &'a [Vec<u8>], path: &Path) -> Result<Vec<X509Certificate<'a>>> {
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der)
                .map(|(_, cert)| cert)
                .map_err(|e| anyhow::anyhow!("certificate {} in {} is not valid X.509: {e}", i + 1, path.display()))
        })
        .collect()
}

fn describe_certificate(out: &mut String, cert: &X509Certificate<'_>, der: &[u8], now: i64) {
    let field = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "  {name:<12}{value}");
    };
    field(out, "subject", &cert.subject().to_string());
    field(out, "issuer", &cert.issuer().to_string());
    field(out, "serial", &cert.raw_serial_as_string());
    field(out, "SHA-256", &fingerprint(der));
    let signature = oid_name(&cert.signature_algorithm.algorithm);
    field(out, "key", &format!("{}; signed with {signature}", key_text(cert)));

    let ids = presented_ids(cert);
    let sans: Vec<&PresentedId> = ids.iter().filter(|id| !matches!(id, PresentedId::CommonName(_))).collect();
    if sans.is_empty() {
        field(out, "names", "no subjectAltName: only the subject CN names anything");
    }
    for (i, id) in sans.iter().enumerate() {
        let label = if i == 0 { "names" } else { "" };
        field(out, label, &format!("{:<9} {}{}", id.kind(), id.value(), name_note(id)));
    }

    let key_usage = match cert.key_usage() {
        Ok(Some(ku)) => key_usage_text(ku.value),
        Ok(None) => "none (any use)".into(),
        Err(e) => format!("unreadable ({e})"),
    };
    field(out, "key usage", &key_usage);
    let ext_usage = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku_text(eku.value),
        Ok(None) => "none (any use)".into(),
        Err(e) => format!("unreadable ({e})"),
    };
    field(out, "ext. usage", &ext_usage);
    let ca = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => match bc.value.path_len_constraint {
            Some(n) => format!("yes, path length {n}"),
            None => "yes".into(),
        },
        Ok(_) => "no".into(),
        Err(e) => format!("unreadable ({e})"),
    };
    field(out, "CA", &ca);
    let v = cert.validity();
    let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
    field(out, "validity", &format!("{} … {}", date(from), date(until)));
    field(out, "", &validity_text(from, until, now));
}

fn name_note(id: &PresentedId) -> &'static str {
    match id {
        PresentedId::Wildcard(_) => "  (covers one label below, not the domain itself)",
        PresentedId::SrvId(v) if v.starts_with("_xmpp-server.") => "  (server-to-server)",
        PresentedId::SrvId(v) if v.starts_with("_xmpp-client.") => "  (client-to-server)",
        PresentedId::Other(_) => "  (not an XMPP identity)",
        _ => "",
    }
}

/// Each certificate of the file and what signed it.
fn describe_chain(out: &mut String, certs: &[X509Certificate<'_>], anchors: &[X509Certificate<'_>], now: i64) {
    let _ = writeln!(out, "Chain in the file (what a peer presenting it sends)");
    for (i, cert) in certs.iter().enumerate() {
        let ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        let kind = if i == 0 {
            "leaf"
        } else if ca {
            "CA"
        } else {
            "not a CA"
        };
        let v = cert.validity();
        let validity = validity_text(v.not_before.timestamp(), v.not_after.timestamp(), now);
        let _ = writeln!(out, "  {}. {} ({kind}; {validity})", i + 1, cert.subject());
        let _ = writeln!(out, "     {}", issuer_text(i, cert, certs, anchors));
    }
}

fn issuer_text(
    i: usize,
    cert: &X509Certificate<'_>,
    certs: &[X509Certificate<'_>],
    anchors: &[X509Certificate<'_>],
) -> String {
    let signature = |issuer: &X509Certificate<'_>| match cert.verify_signature(Some(issuer.public_key())) {
        Ok(()) => "signature verified",
        Err(_) => "signature does NOT verify",
    };
    if cert.subject() == cert.issuer() {
        let trusted = if anchors.iter().any(|a| a.subject() == cert.subject() && a.public_key() == cert.public_key()) {
            "it is one of the given trust anchors"
        } else {
            "not a given trust anchor"
        };
        return format!("self-signed ({}; {trusted})", signature(cert));
    }
    if let Some((j, issuer)) = certs.iter().enumerate().find(|(j, c)| *j != i && c.subject() == cert.issuer()) {
        return format!("issued by {} = certificate {} ({})", cert.issuer(), j + 1, signature(issuer));
    }
    if let Some(anchor) = anchors.iter().find(|a| a.subject() == cert.issuer()) {
        return format!("issued by {}, a given trust anchor ({})", cert.issuer(), signature(anchor));
    }
    let advice = if anchors.is_empty() { " (give --ca to check trust)" } else { "" };
    format!(
        "issued by {}, which is neither in the file nor a given trust anchor: a peer cannot build the path \
         unless it already holds that certificate{advice}",
        cert.issuer()
    )
}

/// webpki's decision with `anchors` as the trust store and the rest of the file as intermediates.
fn verify_trust(file: &Path, chain: &[Vec<u8>], anchors: &[Vec<u8>]) -> Trust {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let mut anchor_error = None;
    for der in anchors {
        if let Err(e) = roots.add(CertificateDer::from(der.clone())) {
            anchor_error = Some(format!("a certificate in {} cannot be a trust anchor ({e})", file.display()));
        }
    }
    let end_entity = CertificateDer::from(chain[0].clone());
    let intermediates: Vec<CertificateDer<'_>> = chain[1..].iter().map(|d| CertificateDer::from(d.clone())).collect();
    let now = UnixTime::now();
    let as_server = match &anchor_error {
        Some(e) => Err(e.clone()),
        None => rustls::server::ParsedCertificate::try_from(&end_entity)
            .and_then(|parsed| {
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    &roots,
                    &intermediates,
                    now,
                    provider.signature_verification_algorithms.all,
                )
            })
            .map_err(|e| plain_error(&e)),
    };
    let as_client = match &anchor_error {
        Some(e) => Err(e.clone()),
        None => rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot build a verifier from {} ({e})", file.display()))
            .and_then(|verifier| {
                verifier.verify_client_cert(&end_entity, &intermediates, now).map(|_| ()).map_err(|e| plain_error(&e))
            }),
    };
    Trust { anchors: file.to_path_buf(), as_server, as_client }
}

const UNKNOWN_ISSUER: &str = "webpki: UnknownIssuer";

/// A webpki refusal in plain words, with webpki's own name for it.
fn plain_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert_error) = e else {
        return e.to_string();
    };
    let (words, name) = match cert_error {
        C::Expired | C::ExpiredContext { .. } => ("a certificate in the chain has expired", "Expired"),
        C::NotValidYet | C::NotValidYetContext { .. } => ("a certificate in the chain is not valid yet", "NotValidYet"),
        C::UnknownIssuer => (
            "no path to a trusted CA: self-signed, issued by another CA, or an intermediate is missing",
            "UnknownIssuer",
        ),
        C::BadSignature => ("a signature in the chain does not verify", "BadSignature"),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            ("its extended key usage does not allow this use", "InvalidPurpose")
        }
        C::UnhandledCriticalExtension => {
            ("it has a critical extension the verifier does not know", "UnhandledCriticalExtension")
        }
        other => return format!("refused ({other:?})"),
    };
    format!("{words} (webpki: {name})")
}

/// Why the path from the leaf does not reach a trust anchor, following issuers through the file.
fn path_problem(certs: &[X509Certificate<'_>], anchors: &[X509Certificate<'_>]) -> Option<String> {
    let is_anchor = |c: &X509Certificate<'_>| {
        anchors.iter().any(|a| a.subject() == c.subject() && a.public_key() == c.public_key())
    };
    let mut current = certs.first()?;
    // At most one step per certificate: a file with an issuer loop ends here too.
    for _ in 0..certs.len() {
        if is_anchor(current) || anchors.iter().any(|a| a.subject() == current.issuer()) {
            return None;
        }
        if current.subject() == current.issuer() {
            return Some(if std::ptr::eq(current, &certs[0]) {
                "the leaf is self-signed".to_string()
            } else {
                format!("the chain ends at the self-signed {}, which is not a trusted CA", current.subject())
            });
        }
        match certs.iter().find(|c| c.subject() == current.issuer() && !std::ptr::eq(*c, current)) {
            Some(issuer) => current = issuer,
            None => {
                return Some(format!(
                    "its issuer {} is neither in the file nor a trust anchor (a missing intermediate?)",
                    current.issuer()
                ))
            }
        }
    }
    None
}

fn decide(
    leaf: &X509Certificate<'_>,
    leaf_is_ca: bool,
    now: i64,
    domain: Option<&str>,
    trust: Option<&Trust>,
    path_hint: Option<&str>,
    identity: Option<&IdentityCheck>,
) -> Verdict {
    if leaf_is_ca {
        return Verdict::NotChecked(
            "this is a CA certificate (a trust anchor or intermediate), not a server certificate".into(),
        );
    }
    let v = leaf.validity();
    let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
    if now < from || now > until {
        return Verdict::Rejected(validity_text(from, until, now));
    }
    if let Some(Trust { as_server: Err(e), .. }) = trust {
        return match path_hint {
            // webpki only says "unknown issuer"; the chain walk says which of the three cases it is.
            Some(hint) if e.contains(UNKNOWN_ISSUER) => {
                Verdict::Rejected(format!("untrusted: {hint} ({UNKNOWN_ISSUER})"))
            }
            _ => Verdict::Rejected(format!("untrusted: {e}")),
        };
    }
    let Some(identity) = identity else {
        return Verdict::NotChecked("no domain given: pass --domain D to check the names".into());
    };
    let Some(matched) = identity.matched() else {
        return Verdict::Rejected(identity.summary());
    };
    let Some(trust) = trust else {
        let name = domain.unwrap_or_default();
        return Verdict::NotChecked(format!(
            "the names fit {name}, but trust was not checked: pass --ca root.pem (or run `plugfest ca init` in --dir)"
        ));
    };
    if identity.matched_by_cn_only() {
        return Verdict::AcceptedByCnFallback;
    }
    Verdict::Accepted { identity: matched.clone(), as_client: trust.as_client.clone() }
}

fn verdict_text(verdict: &Verdict, identity: Option<&IdentityCheck>) -> String {
    let domain = identity.map_or("", |i| i.reference.as_str());
    match verdict {
        Verdict::Accepted { identity, as_client: Ok(()) } => {
            format!("accepted for {domain}: trusted chain, named by {identity}; usable as TLS server and client")
        }
        Verdict::Accepted { identity, as_client: Err(e) } => format!(
            "accepted for {domain} as a TLS server certificate (trusted chain, named by {identity}); as a TLS \
             client certificate on s2s it is refused: {e}"
        ),
        Verdict::AcceptedByCnFallback => format!(
            "depends on the validator: the chain is trusted, but only the subject CN names {domain}; RFC 6125 \
             §6.4.4 allowed that fallback, RFC 9525 removed it"
        ),
        Verdict::Rejected(why) => format!("rejected: {why}"),
        Verdict::NotChecked(why) => format!("not decided: {why}"),
    }
}

fn outcome(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "trusted".into(),
        Err(e) => format!("refused: {e}"),
    }
}

/// "valid now; expires in 824 days", "expired 1 day ago", "not valid for another 23 hours".
pub fn validity_text(not_before: i64, not_after: i64, now: i64) -> String {
    if now < not_before {
        format!("not valid for another {}", span(not_before - now))
    } else if now > not_after {
        format!("expired {} ago", span(now - not_after))
    } else {
        format!("valid now; expires in {}", span(not_after - now))
    }
}

/// The largest whole unit: 1 day, 23 hours, 5 minutes, 3 seconds.
fn span(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3_600 => (s / 3_600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn date(timestamp: i64) -> String {
    let format = ::time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::from_unix_timestamp(timestamp)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("@{timestamp}"))
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn oid_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    oid2sn(oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_string)
}

fn key_text(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map_or_else(|| "unknown curve".to_string(), |oid| oid_name(&oid));
            format!("EC {curve}, {} bits", point.key_size())
        }
        Ok(PublicKey::RSA(rsa)) => format!("RSA, {} bits", rsa.key_size()),
        _ => oid_name(&spki.algorithm.algorithm),
    }
}

fn key_usage_text(ku: &KeyUsage) -> String {
    let flags = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ];
    let set: Vec<&str> = flags.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(", ")
    }
}

fn eku_text(eku: &ExtendedKeyUsage<'_>) -> String {
    let mut parts = Vec::new();
    if eku.server_auth {
        parts.push("serverAuth (TLS server)".to_string());
    }
    if eku.client_auth {
        parts.push("clientAuth (TLS client: needed to present it on outgoing s2s)".to_string());
    }
    if !eku.client_auth && !eku.any {
        parts.push("no clientAuth: a strict s2s receiver refuses it as a client certificate".to_string());
    }
    for (on, name) in [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ] {
        if on {
            parts.push(name.to_string());
        }
    }
    parts.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    parts.join(", ")
}
