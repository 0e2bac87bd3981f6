//! Test certificates for the TLS cases (CATALOG §0.6, area G): one good leaf and every way to be wrong.
//! Each lands in `<ca dir>/fixtures/<a-label domain>/<fixture name>/` with the same four files as a good leaf.

use super::der::SanName;
use super::{dns_name, CaDir, LeafFiles, LeafSpec, Signer, LEAF_VALIDITY_DAYS};
use anyhow::Result;
use rcgen::ExtendedKeyUsagePurpose;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use time::{Duration, OffsetDateTime};

/// The harness's own domain in the lab (CATALOG's `h.lab`).
pub const DEFAULT_FIXTURE_DOMAIN: &str = "harness.lab";
/// The only name in the `wrongname` fixture (CATALOG §0.1).
pub const WRONG_NAME: &str = "x.lab";
/// The first label of the IDN sibling used by the `idn` fixture for an ASCII domain (CATALOG F08: bücher.lab).
const IDN_LABEL: &str = "bücher";

/// One test certificate. [`Fixture::ALL`] lists them; [`Fixture::description`] says what each is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fixture {
    Good,
    WrongName,
    Expired,
    NotYet,
    SelfSigned,
    UnknownCa,
    NoIntermediate,
    SrvIdOnly,
    DnsIdOnly,
    XmppAddrOnly,
    WildcardOnly,
    CnOnly,
    ServerAuthOnly,
    Idn,
    FullIds,
}

impl Fixture {
    pub const ALL: [Fixture; 15] = [
        Fixture::Good,
        Fixture::WrongName,
        Fixture::Expired,
        Fixture::NotYet,
        Fixture::SelfSigned,
        Fixture::UnknownCa,
        Fixture::NoIntermediate,
        Fixture::SrvIdOnly,
        Fixture::DnsIdOnly,
        Fixture::XmppAddrOnly,
        Fixture::WildcardOnly,
        Fixture::CnOnly,
        Fixture::ServerAuthOnly,
        Fixture::Idn,
        Fixture::FullIds,
    ];

    /// The name used on the command line and as the folder name.
    pub fn name(self) -> &'static str {
        match self {
            Fixture::Good => "good",
            Fixture::WrongName => "wrongname",
            Fixture::Expired => "expired",
            Fixture::NotYet => "notyet",
            Fixture::SelfSigned => "selfsigned",
            Fixture::UnknownCa => "unknownca",
            Fixture::NoIntermediate => "nointermediate",
            Fixture::SrvIdOnly => "srvid-only",
            Fixture::DnsIdOnly => "dnsid-only",
            Fixture::XmppAddrOnly => "xmppaddr-only",
            Fixture::WildcardOnly => "wildcard-only",
            Fixture::CnOnly => "cn-only",
            Fixture::ServerAuthOnly => "serverauth-only",
            Fixture::Idn => "idn",
            Fixture::FullIds => "full-ids",
        }
    }

    /// One line: what the certificate is and what a validator must do with it.
    pub fn description(self) -> &'static str {
        match self {
            Fixture::Good => "DNS:d and DNS:*.d, serverAuth+clientAuth, sent with the intermediate: must be accepted",
            Fixture::WrongName => "valid chain, but names x.lab only: must not authenticate d (G05, G08)",
            Fixture::Expired => "notAfter = now - 1 day: must be refused (G06, G08)",
            Fixture::NotYet => "notBefore = now + 1 day: must be refused (G06)",
            Fixture::SelfSigned => "signed by its own key: must be refused (G07, G08)",
            Fixture::UnknownCa => {
                "complete chain to \"plugfest Rogue CA\", which no trust store holds: must be refused (G07, G08)"
            }
            Fixture::NoIntermediate => "signed by the lab intermediate, sent without it: must be refused (G07, G08)",
            Fixture::SrvIdOnly => "only SRV-IDs _xmpp-server.d and _xmpp-client.d: must be accepted (G09)",
            Fixture::DnsIdOnly => "only DNS:d: must be accepted (G09)",
            Fixture::XmppAddrOnly => "only xmppAddr d: should be accepted (G09)",
            Fixture::WildcardOnly => "only DNS:*.d: refused for d, accepted for muc.d (G09)",
            Fixture::CnOnly => "no subjectAltName, CN=d: accepted only by validators with the old CN fallback (G09)",
            Fixture::ServerAuthOnly => {
                "EKU serverAuth without clientAuth: fine as a TLS server, debatable as s2s client (G04)"
            }
            Fixture::Idn => {
                "for bücher.<parent> (or d if IDN): DNS-ID and SRV-IDs as A-labels, xmppAddr as U-label (F08)"
            }
            Fixture::FullIds => {
                "DNS-ID, wildcard, both SRV-IDs and xmppAddr (RFC 6120 §13.7.1.2.2); crashes ejabberd 23.01"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Fixture> {
        Fixture::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The domain the certificate is meant to be presented for (A-label form): `domain` itself, except for
    /// `idn` on an ASCII domain, which is for the IDN sibling `bücher.<parent>` (`harness.lab` → `xn--bcher-kva.lab`).
    pub fn presented_domain(self, domain: &str) -> Result<String> {
        let domain = dns_name(domain)?;
        if self != Fixture::Idn || domain.split('.').any(|label| label.starts_with("xn--")) {
            return Ok(domain);
        }
        let parent = domain.split_once('.').map_or(domain.as_str(), |(_, parent)| parent);
        dns_name(&format!("{IDN_LABEL}.{parent}"))
    }

    fn spec(self, domain: &str, out_dir: PathBuf) -> Result<LeafSpec> {
        let d = self.presented_domain(domain)?;
        let mut spec = LeafSpec::good(&d, out_dir);
        let now = OffsetDateTime::now_utc();
        // Identity-form fixtures get a CN that is not a domain, so a CN fallback cannot rescue them.
        let neutral_cn = format!("plugfest fixture {}", self.name());
        let srv_ids = || [SanName::SrvName(format!("_xmpp-server.{d}")), SanName::SrvName(format!("_xmpp-client.{d}"))];
        match self {
            Fixture::Good => {}
            Fixture::WrongName => {
                spec.common_name = WRONG_NAME.to_string();
                spec.names = vec![SanName::Dns(WRONG_NAME.to_string())];
            }
            Fixture::Expired => {
                spec.not_before = now - Duration::days(90);
                spec.not_after = now - Duration::days(1);
            }
            Fixture::NotYet => {
                spec.not_before = now + Duration::days(1);
                spec.not_after = now + Duration::days(LEAF_VALIDITY_DAYS);
            }
            Fixture::SelfSigned => spec.signer = Signer::SelfSigned,
            Fixture::UnknownCa => spec.signer = Signer::Rogue,
            Fixture::NoIntermediate => spec.signer = Signer::Lab { send_intermediate: false },
            Fixture::SrvIdOnly => {
                spec.common_name = neutral_cn;
                spec.names = srv_ids().to_vec();
            }
            Fixture::DnsIdOnly => {
                spec.common_name = neutral_cn;
                spec.names = vec![SanName::Dns(d.clone())];
            }
            Fixture::XmppAddrOnly => {
                spec.common_name = neutral_cn;
                spec.names = vec![SanName::XmppAddr(u_label(&d))];
            }
            Fixture::WildcardOnly => {
                spec.common_name = neutral_cn;
                spec.names = vec![SanName::Dns(format!("*.{d}"))];
            }
            Fixture::CnOnly => spec.names.clear(),
            Fixture::ServerAuthOnly => spec.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth],
            Fixture::Idn => {
                spec.names = vec![SanName::Dns(d.clone())];
                spec.names.extend(srv_ids());
                spec.names.push(SanName::XmppAddr(u_label(&d)));
            }
            Fixture::FullIds => {
                spec.names.extend(srv_ids());
                spec.names.push(SanName::XmppAddr(u_label(&d)));
            }
        }
        Ok(spec)
    }
}

/// The Unicode form of an A-label domain (xmppAddr carries internationalized labels as U-labels, RFC 6120 §13.7.1.4).
fn u_label(ascii: &str) -> String {
    let (unicode, result) = idna::domain_to_unicode(ascii);
    if result.is_ok() {
        unicode
    } else {
        ascii.to_string()
    }
}

impl fmt::Display for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fixture {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fixture::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Fixture::ALL.iter().map(|f| f.name()).collect();
            format!("unknown fixture {s:?}; the fixtures are: {}", names.join(", "))
        })
    }
}

impl CaDir {
    /// `<dir>/fixtures/<a-label domain>/<fixture>/`.
    pub fn fixture_dir(&self, domain: &str, fixture: Fixture) -> Result<PathBuf> {
        Ok(self.dir.join("fixtures").join(dns_name(domain)?).join(fixture.name()))
    }

    /// Where [`CaDir::issue_fixture`] puts a fixture (the files may not exist yet).
    pub fn fixture_files(&self, domain: &str, fixture: Fixture) -> Result<LeafFiles> {
        Ok(LeafFiles::in_dir(&fixture.presented_domain(domain)?, &self.fixture_dir(domain, fixture)?))
    }

    /// Issue one fixture for `domain` (Unicode or A-label) into [`CaDir::fixture_dir`], replacing an earlier one.
    /// [`LeafFiles::domain`] is [`Fixture::presented_domain`]. `chain.pem` is what a peer presenting the
    /// fixture sends; `fullchain-key.pem` is the key, that chain, and the lab root when the chain reaches it.
    pub fn issue_fixture(&self, domain: &str, fixture: Fixture) -> Result<LeafFiles> {
        let out_dir = self.fixture_dir(domain, fixture)?;
        self.issue_leaf(&fixture.spec(domain, out_dir)?)
    }

    /// Issue every fixture for `domain`, in [`Fixture::ALL`] order.
    pub fn issue_all_fixtures(&self, domain: &str) -> Result<Vec<(Fixture, LeafFiles)>> {
        Fixture::ALL.into_iter().map(|f| Ok((f, self.issue_fixture(domain, f)?))).collect()
    }
}
