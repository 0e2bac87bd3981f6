//! The lab CA (rcgen): a root, an intermediate, and per-domain leaf certificates.
//!
//! Layout of a CA folder (docs/lab-ca.md):
//! ```text
//! root.pem root.key intermediate.pem intermediate.key
//! rogue/root.pem rogue/root.key                       a CA nobody trusts (the `unknownca` fixture)
//! <a-label domain>/cert.pem chain.pem key.pem fullchain-key.pem
//! fixtures/<a-label domain>/<fixture>/…               the same four files per test certificate
//! ```
//! Leaves carry `DNS:d` and `DNS:*.d` only. No id-on-xmppAddr: ejabberd 23.01 crashes on it during s2s
//! certificate checks (LAB.md); such variants are fixtures ([`Fixture`]).

pub mod export;
pub mod fixtures;
pub mod identity;
pub mod inspect;

mod der;
#[cfg(test)]
mod fixture_tests;

pub use fixtures::{Fixture, DEFAULT_FIXTURE_DOMAIN};

use anyhow::{bail, Context, Result};
use der::SanName;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

pub const ROOT_NAME: &str = "plugfest Lab Root CA";
pub const INTERMEDIATE_NAME: &str = "plugfest Lab Intermediate CA";
/// A CA that no trust store holds: it signs the `unknownca` fixture.
pub const ROGUE_NAME: &str = "plugfest Rogue CA";
const ORGANIZATION: &str = "plugfest";
const CA_VALIDITY_DAYS: i64 = 3650;
/// The CA/Browser Forum's old ceiling; long enough that a lab never sees its leaves expire.
const LEAF_VALIDITY_DAYS: i64 = 825;
/// Back-dating absorbs clock differences between the machine that issues and the one that verifies.
const BACKDATE_DAYS: i64 = 1;

/// A folder holding the lab CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaDir {
    pub dir: PathBuf,
}

/// The files of a CA, as written by [`CaDir::init`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFiles {
    pub root_cert: PathBuf,
    pub root_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
}

/// The files of one leaf, as written by [`CaDir::issue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafFiles {
    /// The domain as it appears in the certificate (A-label form).
    pub domain: String,
    /// The leaf certificate alone.
    pub cert: PathBuf,
    /// Leaf + intermediate: what a server presents.
    pub chain: PathBuf,
    /// The leaf's private key (PKCS#8, mode 0600).
    pub key: PathBuf,
    /// Key + leaf + intermediate + root in one PEM (ejabberd's `certfiles`; mode 0600).
    pub fullchain_key: PathBuf,
}

impl LeafFiles {
    /// The four files of a leaf in `dir` (they may not exist yet).
    fn in_dir(domain: &str, dir: &Path) -> LeafFiles {
        LeafFiles {
            domain: domain.to_string(),
            cert: dir.join("cert.pem"),
            chain: dir.join("chain.pem"),
            key: dir.join("key.pem"),
            fullchain_key: dir.join("fullchain-key.pem"),
        }
    }
}

impl CaFiles {
    fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            root_cert: dir.join("root.pem"),
            root_key: dir.join("root.key"),
            intermediate_cert: dir.join("intermediate.pem"),
            intermediate_key: dir.join("intermediate.key"),
        }
    }

    fn all(&self) -> [&Path; 4] {
        [&self.root_cert, &self.root_key, &self.intermediate_cert, &self.intermediate_key]
    }
}

/// What goes into a leaf: the good one and every fixture.
struct LeafSpec {
    /// The domain the leaf is presented for (A-label form), recorded in [`LeafFiles::domain`].
    domain: String,
    /// The subject CN.
    common_name: String,
    /// The subjectAltName entries; empty means no subjectAltName extension at all.
    names: Vec<SanName>,
    extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    signer: Signer,
    /// Where the four leaf files go.
    out_dir: PathBuf,
}

/// Who signs a leaf, and so which certificates travel with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signer {
    /// The lab intermediate; `send_intermediate: false` leaves it out of chain.pem (the `nointermediate` fixture).
    Lab { send_intermediate: bool },
    /// The rogue CA: chain.pem = leaf + rogue root, a complete chain to an anchor nobody trusts.
    Rogue,
    /// The leaf signs itself.
    SelfSigned,
}

impl LeafSpec {
    /// The good leaf: `DNS:d` and `DNS:*.d`, serverAuth + clientAuth, valid now − 1 day … + 825 days.
    fn good(domain: &str, out_dir: PathBuf) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            domain: domain.to_string(),
            common_name: domain.to_string(),
            names: vec![SanName::Dns(domain.to_string()), SanName::Dns(format!("*.{domain}"))],
            // clientAuth too: the initiating server presents this certificate as a TLS client on s2s.
            extended_key_usages: vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            not_before: now - Duration::days(BACKDATE_DAYS),
            not_after: now + Duration::days(LEAF_VALIDITY_DAYS),
            signer: Signer::Lab { send_intermediate: true },
            out_dir,
        }
    }
}

impl CaDir {
    pub fn new(dir: impl Into<PathBuf>) -> CaDir {
        CaDir { dir: dir.into() }
    }

    /// Paths of the CA's own files (they may not exist yet).
    pub fn files(&self) -> CaFiles {
        CaFiles::in_dir(&self.dir)
    }

    /// The trust anchor clients should use.
    pub fn root_cert(&self) -> PathBuf {
        self.files().root_cert
    }

    /// The rogue CA's certificate and key (created by [`CaDir::init`], or on demand by the `unknownca` fixture).
    pub fn rogue_files(&self) -> (PathBuf, PathBuf) {
        let rogue = self.dir.join("rogue");
        (rogue.join("root.pem"), rogue.join("root.key"))
    }

    /// True when all four CA files are present.
    pub fn exists(&self) -> bool {
        self.files().all().iter().all(|p| p.is_file())
    }

    /// Create a new root and intermediate in `dir`. Refuses to replace an existing CA unless `force`.
    pub fn init(dir: impl AsRef<Path>, force: bool) -> Result<CaFiles> {
        let dir = dir.as_ref();
        let files = CaFiles::in_dir(dir);
        if !force {
            if let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
                bail!(
                    "a lab CA already exists in {} ({} is present); keep using it, or pass --force to replace it \
                     (certificates issued by the old CA will no longer be trusted)",
                    dir.display(),
                    existing.display()
                );
            }
        }
        fs::create_dir_all(dir).with_context(|| format!("cannot create the CA folder {}", dir.display()))?;
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = (now - Duration::days(BACKDATE_DAYS), now + Duration::days(CA_VALIDITY_DAYS));

        let root_key = KeyPair::generate().context("cannot generate the root CA key")?;
        let root_params = ca_params(ROOT_NAME, BasicConstraints::Unconstrained, not_before, not_after);
        let root_cert = root_params.self_signed(&root_key).context("cannot sign the root CA certificate")?;
        let root = Issuer::new(root_params, root_key);

        let inter_key = KeyPair::generate().context("cannot generate the intermediate CA key")?;
        // pathlen 0: the intermediate signs leaves only.
        let inter_params = ca_params(INTERMEDIATE_NAME, BasicConstraints::Constrained(0), not_before, not_after);
        let inter_cert =
            inter_params.signed_by(&inter_key, &root).context("cannot sign the intermediate CA certificate")?;

        // Keys first: a folder with certificates but no keys would look like a usable CA.
        write_file(&files.root_key, root.key().serialize_pem().as_bytes(), 0o600)?;
        write_file(&files.intermediate_key, inter_key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&files.root_cert, root_cert.pem().as_bytes(), 0o644)?;
        write_file(&files.intermediate_cert, inter_cert.pem().as_bytes(), 0o644)?;
        CaDir::new(dir).create_rogue_ca()?;
        Ok(files)
    }

    /// A self-signed CA that is in no trust store, under `rogue/`; replaces an existing one.
    fn create_rogue_ca(&self) -> Result<()> {
        let (cert_path, key_path) = self.rogue_files();
        if let Some(parent) = cert_path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let now = OffsetDateTime::now_utc();
        let params = ca_params(
            ROGUE_NAME,
            BasicConstraints::Constrained(0),
            now - Duration::days(BACKDATE_DAYS),
            now + Duration::days(CA_VALIDITY_DAYS),
        );
        let key = KeyPair::generate().context("cannot generate the rogue CA key")?;
        let cert = params.self_signed(&key).context("cannot sign the rogue CA certificate")?;
        write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)
    }

    /// Issue a leaf for `domain` (Unicode or A-label), signed by the intermediate, into `<dir>/<a-label>/`.
    /// An existing leaf for the domain is replaced.
    pub fn issue(&self, domain: &str) -> Result<LeafFiles> {
        let domain = dns_name(domain)?;
        let out_dir = self.dir.join(&domain);
        self.issue_leaf(&LeafSpec::good(&domain, out_dir))
    }

    /// Where [`CaDir::issue`] puts the leaf for `domain` (the files may not exist yet).
    pub fn leaf_files(&self, domain: &str) -> Result<LeafFiles> {
        let domain = dns_name(domain)?;
        Ok(LeafFiles::in_dir(&domain, &self.dir.join(&domain)))
    }

    fn issue_leaf(&self, spec: &LeafSpec) -> Result<LeafFiles> {
        let files = self.files();
        if !self.exists() {
            bail!(
                "no lab CA in {} (expected root.pem, root.key, intermediate.pem, intermediate.key); \
                 create one first with `plugfest ca init`",
                self.dir.display()
            );
        }
        let root_pem = read_text(&files.root_cert)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, spec.common_name.as_str());
        if !spec.names.is_empty() {
            // Written by hand: rcgen cannot encode the SRVName otherName (SRV-ID).
            params.custom_extensions = vec![CustomExtension::from_oid_content(
                &[2, 5, 29, 17], // subjectAltName
                der::subject_alt_name(&spec.names),
            )];
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = spec.extended_key_usages.clone();
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = spec.signer != Signer::SelfSigned;

        let key = KeyPair::generate().context("cannot generate a leaf key")?;
        let what = || format!("cannot sign a leaf for {}", spec.domain);
        // `sent`: what chain.pem holds after the leaf; `extra`: what fullchain-key.pem adds after that.
        let (cert, sent, extra) = match spec.signer {
            Signer::Lab { send_intermediate } => {
                let inter_pem = read_text(&files.intermediate_cert)?;
                let cert = params.signed_by(&key, &self.load_issuer(&inter_pem, &files.intermediate_key)?);
                if send_intermediate {
                    (cert.with_context(what)?, inter_pem, root_pem)
                } else {
                    (cert.with_context(what)?, String::new(), String::new())
                }
            }
            Signer::Rogue => {
                let (rogue_cert, rogue_key) = self.rogue_files();
                if !rogue_cert.is_file() || !rogue_key.is_file() {
                    self.create_rogue_ca()?;
                }
                let rogue_pem = read_text(&rogue_cert)?;
                let cert = params.signed_by(&key, &self.load_issuer(&rogue_pem, &rogue_key)?).with_context(what)?;
                (cert, rogue_pem, String::new())
            }
            Signer::SelfSigned => (params.self_signed(&key).with_context(what)?, String::new(), String::new()),
        };

        let out = &spec.out_dir;
        fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let leaf = LeafFiles::in_dir(&spec.domain, out);
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write_file(&leaf.key, key_pem.as_bytes(), 0o600)?;
        write_file(&leaf.cert, cert_pem.as_bytes(), 0o644)?;
        write_file(&leaf.chain, format!("{cert_pem}{sent}").as_bytes(), 0o644)?;
        write_file(&leaf.fullchain_key, format!("{key_pem}{cert_pem}{sent}{extra}").as_bytes(), 0o600)?;
        Ok(leaf)
    }

    /// A signing CA from its PEM certificate and key file.
    fn load_issuer(&self, cert_pem: &str, key_path: &Path) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&read_text(key_path)?)
            .with_context(|| format!("{} is not a usable private key", key_path.display()))?;
        Issuer::from_ca_cert_pem(cert_pem, key)
            .with_context(|| format!("the certificate for {} is not a usable CA certificate", key_path.display()))
    }
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Check a domain and return its A-label form (lower case), e.g. `bücher.lab` → `xn--bcher-kva.lab`.
pub fn dns_name(domain: &str) -> Result<String> {
    let what_to_do = "give a DNS name such as `prosody.lab` (no scheme, port, path, wildcard or trailing dot)";
    if domain.is_empty()
        || domain.ends_with('.')
        || domain.starts_with('*')
        || domain.parse::<std::net::IpAddr>().is_ok()
    {
        bail!("{domain:?} is not a domain name certificates can be issued for; {what_to_do}");
    }
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| anyhow::anyhow!("{domain:?} is not a valid DNS name; {what_to_do}"))?;
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        bail!("{domain:?} is not a valid DNS name; {what_to_do}");
    }
    Ok(ascii)
}

fn ca_params(
    common_name: &str,
    constraints: BasicConstraints,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, ORGANIZATION);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    params
}

/// 16 random bytes, high bit clear so the DER INTEGER stays positive.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Write atomically (temp file + rename) with the given mode, so a reader never sees half a key.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // The mode given to open() is filtered by the umask and ignored for an existing file: set it explicitly.
    f.set_permissions(fs::Permissions::from_mode(mode)).with_context(|| format!("cannot chmod {}", tmp.display()))?;
    f.write_all(contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    /// All certificates of a PEM file, as DER.
    fn pem_ders(path: &Path) -> Vec<Vec<u8>> {
        let text = fs::read(path).unwrap();
        Pem::iter_from_buffer(&text)
            .map(|p| p.unwrap())
            .filter(|p| p.label == "CERTIFICATE")
            .map(|p| p.contents)
            .collect()
    }

    fn dns_sans(cert: &X509Certificate<'_>) -> Vec<String> {
        let san = cert.subject_alternative_name().unwrap().expect("SAN present");
        san.value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_root_and_intermediate() {
        let tmp = tempfile::tempdir().unwrap();
        let files = CaDir::init(tmp.path(), false).unwrap();
        assert_eq!(mode(&files.root_key), 0o600);
        assert_eq!(mode(&files.intermediate_key), 0o600);
        assert!(CaDir::new(tmp.path()).exists());

        let root_der = pem_ders(&files.root_cert).remove(0);
        let inter_der = pem_ders(&files.intermediate_cert).remove(0);
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        let (_, inter) = X509Certificate::from_der(&inter_der).unwrap();
        assert!(root.subject().to_string().contains(ROOT_NAME));
        assert_eq!(root.subject(), root.issuer());
        assert!(inter.subject().to_string().contains(INTERMEDIATE_NAME));
        assert_eq!(inter.issuer(), root.subject());

        let bc = root.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        let ku = root.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        let years = (root.validity().not_after.timestamp() - root.validity().not_before.timestamp()) / 86400 / 365;
        assert!((9..=11).contains(&years), "root valid for ~10 years, got {years}");
        root.verify_signature(None).unwrap();
        inter.verify_signature(Some(root.public_key())).unwrap();
    }

    #[test]
    fn init_refuses_to_overwrite_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let first = CaDir::init(tmp.path(), false).unwrap();
        let before = fs::read(&first.root_cert).unwrap();
        let err = CaDir::init(tmp.path(), false).unwrap_err().to_string();
        assert!(err.contains("already exists") && err.contains("--force"), "{err}");
        assert_eq!(fs::read(&first.root_cert).unwrap(), before);
        CaDir::init(tmp.path(), true).unwrap();
        assert_ne!(fs::read(&first.root_cert).unwrap(), before);
    }

    #[test]
    fn leaf_has_sans_ekus_validity_and_chains_to_root() {
        let tmp = tempfile::tempdir().unwrap();
        let files = CaDir::init(tmp.path(), false).unwrap();
        let ca = CaDir::new(tmp.path());
        let leaf = ca.issue("prosody.lab").unwrap();
        assert_eq!(leaf.cert, tmp.path().join("prosody.lab/cert.pem"));
        assert_eq!(mode(&leaf.key), 0o600);
        assert_eq!(mode(&leaf.fullchain_key), 0o600);

        let leaf_der = pem_ders(&leaf.cert).remove(0);
        let (_, cert) = X509Certificate::from_der(&leaf_der).unwrap();
        assert_eq!(dns_sans(&cert), ["prosody.lab", "*.prosody.lab"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        assert!(cert.basic_constraints().unwrap().is_none_or(|bc| !bc.value.ca));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let v = cert.validity();
        assert!((now - v.not_before.timestamp() - 86400).abs() < 60);
        assert!((v.not_after.timestamp() - now - 825 * 86400).abs() < 60);
        // No otherName (xmppAddr) anywhere.
        assert!(!cert
            .extensions()
            .iter()
            .any(|e| matches!(e.parsed_extension(), ParsedExtension::SubjectAlternativeName(s)
                if s.general_names.iter().any(|n| matches!(n, GeneralName::OtherName(..))))));

        // chain.pem = leaf + intermediate; fullchain-key.pem = key + leaf + intermediate + root.
        let chain = pem_ders(&leaf.chain);
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0], leaf_der);
        assert_eq!(chain[1], pem_ders(&files.intermediate_cert)[0]);
        let full = fs::read_to_string(&leaf.fullchain_key).unwrap();
        assert!(full.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(pem_ders(&leaf.fullchain_key).len(), 3);

        // rustls (webpki) accepts it as a server and as a client certificate under the lab root.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(pem_ders(&files.root_cert).remove(0))).unwrap();
        let roots = Arc::new(roots);
        let end_entity = CertificateDer::from(leaf_der);
        let intermediates = [CertificateDer::from(chain[1].clone())];
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .unwrap();
        for name in ["prosody.lab", "pubsub.prosody.lab"] {
            let name = ServerName::try_from(name).unwrap();
            server.verify_server_cert(&end_entity, &intermediates, &name, &[], UnixTime::now()).unwrap();
        }
        let other = ServerName::try_from("ejabberd.lab").unwrap();
        assert!(server.verify_server_cert(&end_entity, &intermediates, &other, &[], UnixTime::now()).is_err());
        let client = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build().unwrap();
        client.verify_client_cert(&end_entity, &intermediates, UnixTime::now()).unwrap();
    }

    #[test]
    fn idn_domains_become_a_labels() {
        let tmp = tempfile::tempdir().unwrap();
        CaDir::init(tmp.path(), false).unwrap();
        let leaf = CaDir::new(tmp.path()).issue("bücher.lab").unwrap();
        assert_eq!(leaf.domain, "xn--bcher-kva.lab");
        assert_eq!(leaf.cert, tmp.path().join("xn--bcher-kva.lab/cert.pem"));
        let der = pem_ders(&leaf.cert).remove(0);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(dns_sans(&cert), ["xn--bcher-kva.lab", "*.xn--bcher-kva.lab"]);
    }

    #[test]
    fn bad_domains_are_refused_with_advice() {
        for bad in
            ["", "a..lab", "lab.", "*.lab", "127.0.0.1", "user@host.lab", "host.lab/res", "bad_name.lab", "x:5222"]
        {
            let err = dns_name(bad).unwrap_err().to_string();
            assert!(err.contains("prosody.lab"), "{bad:?}: {err}");
        }
        assert_eq!(dns_name("Prosody.LAB").unwrap(), "prosody.lab");
    }

    #[test]
    fn issue_without_ca_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let err = CaDir::new(tmp.path()).issue("prosody.lab").unwrap_err().to_string();
        assert!(err.contains("plugfest ca init"), "{err}");
    }
}
