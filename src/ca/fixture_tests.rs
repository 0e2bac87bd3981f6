//! Tests of the fixtures, the identity check, `inspect` and `export`: each fixture has exactly the property
//! that makes it what it is, and webpki, openssl and our RFC 6120 check judge it for the right reason.

use super::export::{export, ExportFormat};
use super::identity::{check_identity, check_identity_der, PresentedId, XmppService};
use super::inspect::{inspect_file, validity_text, Verdict};
use super::*;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::process::Command;
use std::sync::Arc;
use x509_parser::prelude::*;

const D: &str = DEFAULT_FIXTURE_DOMAIN;

/// A fresh CA with every fixture for harness.lab.
struct Lab {
    _tmp: tempfile::TempDir,
    ca: CaDir,
    fixtures: Vec<(Fixture, LeafFiles)>,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        CaDir::init(tmp.path(), false).unwrap();
        let ca = CaDir::new(tmp.path());
        let fixtures = ca.issue_all_fixtures(D).unwrap();
        Lab { _tmp: tmp, ca, fixtures }
    }

    fn leaf(&self, fixture: Fixture) -> &LeafFiles {
        &self.fixtures.iter().find(|(f, _)| *f == fixture).unwrap().1
    }
}

fn pem_ders(path: &Path) -> Vec<Vec<u8>> {
    let text = fs::read(path).unwrap();
    Pem::iter_from_buffer(&text).map(|p| p.unwrap()).filter(|p| p.label == "CERTIFICATE").map(|p| p.contents).collect()
}

fn with_cert<T>(path: &Path, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let der = pem_ders(path).remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    f(&cert)
}

fn cn(cert: &X509Certificate<'_>) -> String {
    cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string()
}

fn sans(cert: &X509Certificate<'_>) -> Vec<PresentedId> {
    identity::presented_ids(cert).into_iter().filter(|id| !matches!(id, PresentedId::CommonName(_))).collect()
}

fn dns(v: &str) -> PresentedId {
    PresentedId::DnsId(v.into())
}
fn srv(v: &str) -> PresentedId {
    PresentedId::SrvId(v.into())
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn fixture_names_round_trip_and_descriptions_are_one_line() {
    let mut names = std::collections::HashSet::new();
    for f in Fixture::ALL {
        assert!(names.insert(f.name()), "duplicate name {}", f.name());
        assert_eq!(f.name().parse::<Fixture>().unwrap(), f);
        assert_eq!(f.to_string(), f.name());
        assert!(!f.description().is_empty() && !f.description().contains('\n'));
    }
    let err = "nope".parse::<Fixture>().unwrap_err();
    assert!(err.contains("srvid-only") && err.contains("wrongname"), "{err}");
}

#[test]
fn every_fixture_has_its_defining_property() {
    let lab = Lab::new();
    let root = pem_ders(&lab.ca.root_cert()).remove(0);
    let inter = pem_ders(&lab.ca.files().intermediate_cert).remove(0);
    let (rogue_path, _) = lab.ca.rogue_files();
    let rogue = pem_ders(&rogue_path).remove(0);
    let t = now();
    for (fixture, leaf) in &lab.fixtures {
        assert_eq!(leaf.cert, lab.ca.dir.join("fixtures/harness.lab").join(fixture.name()).join("cert.pem"));
        assert_eq!(&lab.ca.fixture_files(D, *fixture).unwrap(), leaf);
        assert_eq!(mode(&leaf.key), 0o600);
        assert_eq!(mode(&leaf.fullchain_key), 0o600);
        let chain = pem_ders(&leaf.chain);
        assert_eq!(chain[0], pem_ders(&leaf.cert)[0], "{fixture}: chain.pem starts with the leaf");
        with_cert(&leaf.cert, |cert| {
            let v = cert.validity();
            let (from, until) = (v.not_before.timestamp(), v.not_after.timestamp());
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            let issuer_cn = cert.issuer().iter_common_name().next().unwrap().as_str().unwrap().to_string();
            // Everything but the property under test stays as in the good leaf.
            let good_names = [dns(D), PresentedId::Wildcard(format!("*.{D}"))];
            match fixture {
                Fixture::Good => {
                    assert_eq!(sans(cert), good_names);
                    assert_eq!(cn(cert), D);
                    assert!(eku.server_auth && eku.client_auth);
                    assert_eq!(chain, [pem_ders(&leaf.cert)[0].clone(), inter.clone()]);
                    assert!((from - (t - 86400)).abs() < 60 && (until - (t + 825 * 86400)).abs() < 60);
                    assert_eq!(pem_ders(&leaf.fullchain_key)[2], root);
                }
                Fixture::WrongName => {
                    assert_eq!(sans(cert), [dns("x.lab")]);
                    assert_eq!(cn(cert), "x.lab");
                    assert_eq!(chain.len(), 2);
                }
                Fixture::Expired => {
                    assert!((until - (t - 86400)).abs() < 60, "notAfter = now - 1 day");
                    assert!(from < until);
                    assert_eq!(sans(cert), good_names);
                }
                Fixture::NotYet => {
                    assert!((from - (t + 86400)).abs() < 60, "notBefore = now + 1 day");
                    assert_eq!(sans(cert), good_names);
                }
                Fixture::SelfSigned => {
                    assert_eq!(cert.subject(), cert.issuer());
                    cert.verify_signature(None).unwrap();
                    assert_eq!(chain.len(), 1);
                    assert_eq!(sans(cert), good_names);
                }
                Fixture::UnknownCa => {
                    assert_eq!(issuer_cn, ROGUE_NAME);
                    assert_eq!(chain, [pem_ders(&leaf.cert)[0].clone(), rogue.clone()]);
                    let (_, rogue_cert) = X509Certificate::from_der(&rogue).unwrap();
                    cert.verify_signature(Some(rogue_cert.public_key())).unwrap();
                    assert_ne!(rogue, root);
                }
                Fixture::NoIntermediate => {
                    assert_eq!(issuer_cn, INTERMEDIATE_NAME);
                    assert_eq!(chain.len(), 1, "the intermediate is left out");
                    assert_eq!(pem_ders(&leaf.fullchain_key).len(), 1);
                }
                Fixture::SrvIdOnly => {
                    assert_eq!(sans(cert), [srv("_xmpp-server.harness.lab"), srv("_xmpp-client.harness.lab")]);
                    assert_eq!(cn(cert), "plugfest fixture srvid-only");
                }
                Fixture::DnsIdOnly => assert_eq!(sans(cert), [dns(D)]),
                Fixture::XmppAddrOnly => assert_eq!(sans(cert), [PresentedId::XmppAddr(D.into())]),
                Fixture::WildcardOnly => assert_eq!(sans(cert), [PresentedId::Wildcard("*.harness.lab".into())]),
                Fixture::CnOnly => {
                    assert!(cert.subject_alternative_name().unwrap().is_none(), "no subjectAltName at all");
                    assert_eq!(cn(cert), D);
                }
                Fixture::ServerAuthOnly => {
                    assert!(eku.server_auth && !eku.client_auth);
                    assert_eq!(sans(cert), good_names);
                }
                Fixture::Idn => {
                    assert_eq!(leaf.domain, "xn--bcher-kva.lab");
                    assert_eq!(
                        sans(cert),
                        [
                            dns("xn--bcher-kva.lab"),
                            srv("_xmpp-server.xn--bcher-kva.lab"),
                            srv("_xmpp-client.xn--bcher-kva.lab"),
                            PresentedId::XmppAddr("bücher.lab".into()),
                        ]
                    );
                }
                Fixture::FullIds => assert_eq!(
                    sans(cert),
                    [
                        dns(D),
                        PresentedId::Wildcard(format!("*.{D}")),
                        srv("_xmpp-server.harness.lab"),
                        srv("_xmpp-client.harness.lab"),
                        PresentedId::XmppAddr(D.into()),
                    ]
                ),
            }
            if *fixture != Fixture::Idn {
                assert_eq!(leaf.domain, D);
            }
            if !matches!(fixture, Fixture::ServerAuthOnly) {
                assert!(eku.server_auth && eku.client_auth, "{fixture}: EKU unchanged");
            }
        });
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// webpki's name for a refusal, or "ok".
fn webpki_outcome(result: Result<(), rustls::Error>) -> &'static str {
    use rustls::CertificateError as C;
    match result {
        Ok(()) => "ok",
        Err(rustls::Error::InvalidCertificate(e)) => match e {
            C::Expired | C::ExpiredContext { .. } => "Expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "NotValidYet",
            C::UnknownIssuer => "UnknownIssuer",
            C::NotValidForName | C::NotValidForNameContext { .. } => "NotValidForName",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "InvalidPurpose",
            other => panic!("unexpected {other:?}"),
        },
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn webpki_accepts_the_good_chains_and_refuses_each_bad_fixture_for_its_reason() {
    let lab = Lab::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pem_ders(&lab.ca.root_cert()).remove(0))).unwrap();
    let roots = Arc::new(roots);
    let server =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build().unwrap();
    let client = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build().unwrap();
    for (fixture, leaf) in &lab.fixtures {
        let chain: Vec<CertificateDer<'static>> = pem_ders(&leaf.chain).into_iter().map(CertificateDer::from).collect();
        let as_server = |name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            webpki_outcome(server.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now()).map(|_| ()))
        };
        let as_client = webpki_outcome(client.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()).map(|_| ()));
        // webpki knows DNS-IDs only: SRV-ID, xmppAddr and CN fixtures fail its name check, which is why the
        // harness checks identities with `identity::check_identity` (tested below).
        let (expected_server, expected_client) = match fixture {
            Fixture::Good | Fixture::DnsIdOnly | Fixture::FullIds => ("ok", "ok"),
            Fixture::WrongName => ("NotValidForName", "ok"),
            Fixture::Expired => ("Expired", "Expired"),
            Fixture::NotYet => ("NotValidYet", "NotValidYet"),
            Fixture::SelfSigned | Fixture::UnknownCa | Fixture::NoIntermediate => ("UnknownIssuer", "UnknownIssuer"),
            Fixture::SrvIdOnly | Fixture::XmppAddrOnly | Fixture::CnOnly => ("NotValidForName", "ok"),
            Fixture::WildcardOnly => {
                assert_eq!(as_server("muc.harness.lab"), "ok");
                assert_eq!(as_server("a.muc.harness.lab"), "NotValidForName");
                ("NotValidForName", "ok")
            }
            Fixture::ServerAuthOnly => ("ok", "InvalidPurpose"),
            Fixture::Idn => {
                assert_eq!(as_server("xn--bcher-kva.lab"), "ok");
                ("NotValidForName", "ok")
            }
        };
        assert_eq!(as_server(D), expected_server, "{fixture} as server for {D}");
        assert_eq!(as_client, expected_client, "{fixture} as client");
    }
}

#[test]
fn identity_check_follows_rfc6120() {
    let lab = Lab::new();
    let matched = |fixture: Fixture, domain: &str, service: XmppService| {
        let der = pem_ders(&lab.leaf(fixture).cert).remove(0);
        check_identity_der(&der, domain, service).unwrap().matched().cloned()
    };
    for fixture in Fixture::ALL {
        let expected = match fixture {
            Fixture::WrongName | Fixture::WildcardOnly | Fixture::Idn => None,
            Fixture::SrvIdOnly => Some(srv("_xmpp-server.harness.lab")),
            Fixture::XmppAddrOnly => Some(PresentedId::XmppAddr(D.into())),
            Fixture::CnOnly => Some(PresentedId::CommonName(D.into())),
            _ => Some(dns(D)),
        };
        assert_eq!(matched(fixture, D, XmppService::Server), expected, "{fixture}");
    }
    // The forms that depend on the domain or the service.
    assert_eq!(
        matched(Fixture::WildcardOnly, "muc.harness.lab", XmppService::Server),
        Some(PresentedId::Wildcard("*.harness.lab".into()))
    );
    assert_eq!(matched(Fixture::WildcardOnly, "a.muc.harness.lab", XmppService::Server), None);
    assert_eq!(matched(Fixture::SrvIdOnly, D, XmppService::Client), Some(srv("_xmpp-client.harness.lab")));
    assert_eq!(matched(Fixture::SrvIdOnly, "other.lab", XmppService::Server), None);
    for spelling in ["bücher.lab", "xn--bcher-kva.lab", "BÜCHER.lab"] {
        assert_eq!(matched(Fixture::Idn, spelling, XmppService::Server), Some(dns("xn--bcher-kva.lab")), "{spelling}");
    }
    assert_eq!(matched(Fixture::Good, "HARNESS.lab", XmppService::Server), Some(dns(D)), "case-insensitive");

    // Why nothing matched, in words.
    let der = pem_ders(&lab.leaf(Fixture::WildcardOnly).cert).remove(0);
    let check = check_identity_der(&der, D, XmppService::Server).unwrap();
    assert!(check.summary().contains("not harness.lab itself"), "{}", check.summary());
    let der = pem_ders(&lab.leaf(Fixture::SrvIdOnly).cert).remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let check = check_identity(&cert, D, XmppService::Server).unwrap();
    assert!(check.results.iter().any(|(id, m)| id == &srv("_xmpp-client.harness.lab")
        && matches!(m, identity::IdMatch::NoMatch(why) if why.contains("_xmpp-client"))));
    // The CN is not consulted when SAN identities exist.
    let der = pem_ders(&lab.leaf(Fixture::WrongName).cert).remove(0);
    let check = check_identity_der(&der, "x.lab", XmppService::Server).unwrap();
    assert!(matches!(check.results.last(), Some((PresentedId::CommonName(_), identity::IdMatch::NotConsulted(_)))));
    assert!(check_identity_der(&der, "not a domain", XmppService::Server).is_err());
}

#[test]
fn fixtures_work_for_unicode_domains_and_recreate_a_missing_rogue_ca() {
    let tmp = tempfile::tempdir().unwrap();
    CaDir::init(tmp.path(), false).unwrap();
    let ca = CaDir::new(tmp.path());
    let (rogue_cert, rogue_key) = ca.rogue_files();
    assert!(rogue_cert.is_file() && rogue_key.is_file(), "init creates the rogue CA");
    assert_eq!(mode(&rogue_key), 0o600);
    fs::remove_dir_all(rogue_cert.parent().unwrap()).unwrap();
    let leaf = ca.issue_fixture("bücher.lab", Fixture::UnknownCa).unwrap();
    assert!(rogue_cert.is_file(), "created on demand");
    assert_eq!(leaf.cert, tmp.path().join("fixtures/xn--bcher-kva.lab/unknownca/cert.pem"));
    // An IDN domain keeps its own name in the idn fixture.
    let idn = ca.issue_fixture("bücher.lab", Fixture::Idn).unwrap();
    assert_eq!(idn.domain, "xn--bcher-kva.lab");
    assert!(ca.issue_fixture("*.lab", Fixture::Good).is_err());
    let empty = tempfile::tempdir().unwrap();
    let err = CaDir::new(empty.path()).issue_fixture(D, Fixture::Good).unwrap_err().to_string();
    assert!(err.contains("plugfest ca init"), "{err}");
}

#[test]
fn inspect_explains_each_kind_of_fixture() {
    let lab = Lab::new();
    let root = lab.ca.root_cert();
    let inspect = |fixture: Fixture, domain: &str| {
        let leaf = lab.leaf(fixture);
        // Inspect what a peer presents: the chain file.
        inspect_file(&leaf.chain, Some(domain), Some(&root)).unwrap()
    };

    let good = inspect(Fixture::Good, D);
    let text = good.to_string();
    assert_eq!(good.verdict, Verdict::Accepted { identity: dns(D), as_client: Ok(()) });
    for expected in [
        "2 certificates",
        "DNS-ID    harness.lab",
        "wildcard  *.harness.lab",
        "digitalSignature, keyEncipherment",
        "serverAuth (TLS server), clientAuth",
        "key         EC prime256v1, 256 bits; signed with ecdsa-with-SHA256",
        "valid now; expires in 82", // 825 days, or 824 once a second has passed
        "= certificate 2 (signature verified)",
        "issued by CN=plugfest Lab Root CA, O=plugfest, a given trust anchor (signature verified)",
        "as a TLS server certificate (receiving server, c2s): trusted",
        "Verdict: accepted for harness.lab",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let expired = inspect(Fixture::Expired, D);
    assert_eq!(expired.verdict, Verdict::Rejected("expired 1 day ago".into()), "{expired}");
    // notBefore = now + 1 day: "1 day" within the second it was issued, "23 hours" after.
    let notyet = inspect(Fixture::NotYet, D);
    assert!(
        matches!(&notyet.verdict, Verdict::Rejected(why)
            if why == "not valid for another 23 hours" || why == "not valid for another 1 day"),
        "{notyet}"
    );

    for (fixture, why) in [
        (Fixture::SelfSigned, "untrusted: the leaf is self-signed (webpki: UnknownIssuer)"),
        (
            Fixture::UnknownCa,
            "untrusted: the chain ends at the self-signed CN=plugfest Rogue CA, O=plugfest, which is not a trusted CA \
             (webpki: UnknownIssuer)",
        ),
        (
            Fixture::NoIntermediate,
            "untrusted: its issuer CN=plugfest Lab Intermediate CA, O=plugfest is neither in the file nor a trust \
             anchor (a missing intermediate?) (webpki: UnknownIssuer)",
        ),
    ] {
        assert_eq!(inspect(fixture, D).verdict, Verdict::Rejected(why.into()), "{fixture}");
    }
    let nointer = inspect(Fixture::NoIntermediate, D).to_string();
    assert!(nointer.contains("neither in the file nor a given trust anchor"), "{nointer}");
    assert!(inspect(Fixture::SelfSigned, D).to_string().contains("self-signed (signature verified; not a given"));

    let wrong = inspect(Fixture::WrongName, D);
    assert_eq!(
        wrong.verdict,
        Verdict::Rejected("no identity names harness.lab (DNS-ID x.lab: names another domain)".into())
    );

    let srv_only = inspect(Fixture::SrvIdOnly, D);
    assert_eq!(srv_only.verdict, Verdict::Accepted { identity: srv("_xmpp-server.harness.lab"), as_client: Ok(()) });
    assert!(srv_only.to_string().contains("SRV-ID    _xmpp-server.harness.lab  (server-to-server)"));

    let wildcard = inspect(Fixture::WildcardOnly, D);
    assert!(matches!(&wildcard.verdict, Verdict::Rejected(why) if why.contains("not harness.lab itself")));
    let muc = inspect(Fixture::WildcardOnly, "muc.harness.lab");
    assert!(matches!(muc.verdict, Verdict::Accepted { identity: PresentedId::Wildcard(_), .. }));

    assert_eq!(inspect(Fixture::CnOnly, D).verdict, Verdict::AcceptedByCnFallback);
    let server_only = inspect(Fixture::ServerAuthOnly, D);
    assert!(
        matches!(&server_only.verdict, Verdict::Accepted { as_client: Err(why), .. } if why.contains("InvalidPurpose")),
        "{server_only}"
    );
    assert!(inspect(Fixture::Idn, "bücher.lab").to_string().contains("xmppAddr  bücher.lab"));

    // Without a domain, without a CA, and on a CA certificate, it says what is missing.
    let leaf = lab.leaf(Fixture::Good);
    let no_domain = inspect_file(&leaf.chain, None, Some(&root)).unwrap();
    assert!(matches!(&no_domain.verdict, Verdict::NotChecked(why) if why.contains("--domain")));
    let no_ca = inspect_file(&leaf.chain, Some(D), None).unwrap();
    assert!(matches!(&no_ca.verdict, Verdict::NotChecked(why) if why.contains("--ca")));
    assert!(no_ca.trust.is_none());
    let ca_cert = inspect_file(&root, Some(D), Some(&root)).unwrap();
    assert!(matches!(&ca_cert.verdict, Verdict::NotChecked(why) if why.contains("CA certificate")));
    // A key in the file is noticed; DER input works; garbage is an error that says what was expected.
    assert!(inspect_file(&leaf.fullchain_key, None, None).unwrap().to_string().contains("a private key"));
    let der_file = lab.ca.dir.join("leaf.der");
    fs::write(&der_file, pem_ders(&leaf.cert).remove(0)).unwrap();
    assert_eq!(inspect_file(&der_file, Some(D), Some(&root)).unwrap().certificates, 1);
    let err = inspect_file(&leaf.key, None, None).unwrap_err().to_string();
    assert!(err.contains("holds no certificate"), "{err}");
}

#[test]
fn validity_is_said_in_words() {
    assert_eq!(validity_text(0, 100, 200), "expired 1 minute ago");
    assert_eq!(validity_text(0, 100, 100 + 86_400 + 5), "expired 1 day ago");
    assert_eq!(validity_text(86_400, 200_000, 10), "not valid for another 23 hours");
    assert_eq!(validity_text(0, 3 * 86_400, 0), "valid now; expires in 3 days");
    assert_eq!(validity_text(0, 10, 9), "valid now; expires in 1 second");
}

fn openssl_available() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

/// `openssl verify` on what a peer presenting the fixture sends: (success, output).
fn openssl_verify(ca: &CaDir, leaf: &LeafFiles, extra: &[&str]) -> (bool, String) {
    // Everything after the leaf in chain.pem is what the peer sends besides it.
    let chain = fs::read_to_string(&leaf.chain).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let rest = &chain[chain.find(end).unwrap() + end.len()..];
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(ca.root_cert()).args(extra);
    if !rest.trim().is_empty() {
        let untrusted = leaf.cert.parent().unwrap().join("untrusted.pem");
        fs::write(&untrusted, rest).unwrap();
        cmd.arg("-untrusted").arg(untrusted);
    }
    let out = cmd.arg(&leaf.cert).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn openssl_verify_agrees() {
    if !openssl_available() {
        eprintln!("openssl not installed: skipping the openssl cross-check");
        return;
    }
    let lab = Lab::new();
    for (fixture, leaf) in &lab.fixtures {
        let (ok, text) = openssl_verify(&lab.ca, leaf, &[]);
        let (expect_ok, expect_text) = match fixture {
            Fixture::Expired => (false, "certificate has expired"),
            Fixture::NotYet => (false, "certificate is not yet valid"),
            Fixture::SelfSigned => (false, "self-signed certificate"),
            Fixture::UnknownCa => (false, "self-signed certificate in certificate chain"),
            Fixture::NoIntermediate => (false, "unable to get local issuer certificate"),
            _ => (true, ": OK"),
        };
        assert_eq!(ok, expect_ok, "{fixture}: {text}");
        assert!(text.contains(expect_text), "{fixture}: expected {expect_text:?} in {text}");
    }
    // Names: openssl checks DNS-IDs, and the CN when there is no DNS SAN (unlike webpki).
    for (fixture, expect_ok) in [
        (Fixture::Good, true),
        (Fixture::WrongName, false),
        (Fixture::SrvIdOnly, false),
        (Fixture::WildcardOnly, false),
        (Fixture::CnOnly, true),
    ] {
        let (ok, text) = openssl_verify(&lab.ca, lab.leaf(fixture), &["-verify_hostname", D]);
        assert_eq!(ok, expect_ok, "{fixture} -verify_hostname: {text}");
    }
    // serverAuth only: refused as a TLS client (ejabberd, on Erlang's ssl, says "unsupported certificate purpose").
    let (ok, text) = openssl_verify(&lab.ca, lab.leaf(Fixture::ServerAuthOnly), &["-purpose", "sslclient"]);
    assert!(!ok && text.contains("unsuitable certificate purpose"), "{text}");
    let (ok, _) = openssl_verify(&lab.ca, lab.leaf(Fixture::Good), &["-purpose", "sslclient"]);
    assert!(ok);
    // openssl decodes our hand-written SRVName and the xmppAddr otherName.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&lab.leaf(Fixture::FullIds).cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SRVName") && text.contains("_xmpp-server.harness.lab"), "{text}");
    assert!(text.contains("harness.lab"), "{text}");
}

#[test]
fn export_writes_a_pem_bundle_and_pkcs12() {
    let lab = Lab::new();
    let leaf = lab.leaf(Fixture::Good);
    let bundle = export(leaf, ExportFormat::PemBundle, None, None).unwrap();
    assert_eq!(bundle, leaf.cert.parent().unwrap().join("harness.lab.pem"));
    assert_eq!(mode(&bundle), 0o600);
    let text = fs::read_to_string(&bundle).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(pem_ders(&bundle).len(), 3, "leaf, intermediate, root");
    assert!(export(leaf, ExportFormat::PemBundle, Some("x"), None).unwrap_err().to_string().contains("pkcs12"));
    assert_eq!("p12".parse::<ExportFormat>().unwrap(), ExportFormat::Pkcs12);
    assert!("jks".parse::<ExportFormat>().unwrap_err().contains("pem-bundle"));

    if !openssl_available() {
        eprintln!("openssl not installed: skipping the PKCS#12 export");
        return;
    }
    let out = lab.ca.dir.join("out.p12");
    assert_eq!(export(leaf, ExportFormat::Pkcs12, Some("s3cret"), Some(&out)).unwrap(), out);
    assert_eq!(mode(&out), 0o600);
    let read = |password: &str| {
        Command::new("openssl")
            .args(["pkcs12", "-nodes", "-passin", &format!("pass:{password}"), "-in"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let ok = read("s3cret");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 3, "{text}");
    assert!(text.contains("PRIVATE KEY") && text.contains("friendlyName: harness.lab"), "{text}");
    assert!(!read("wrong").status.success());
    // The default password is Java's.
    let default = export(leaf, ExportFormat::Pkcs12, None, None).unwrap();
    assert_eq!(default.file_name().unwrap(), "harness.lab.p12");
    let out = default;
    let ok = Command::new("openssl")
        .args(["pkcs12", "-nodes", "-noout", "-passin", "pass:changeit", "-in"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(ok.status.success());
}
