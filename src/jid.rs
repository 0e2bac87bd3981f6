//! JIDs per RFC 7622: PRECIS UsernameCaseMapped localpart, OpaqueString resourcepart,
//! IDNA2008 domainpart. The only place where JIDs are prepared or compared.
//!
//! A `Jid` only exists in prepared (enforced) form, so `==` is the RFC 7622 comparison.
//! The domainpart is kept as U-labels (RFC 7622 §3.2.1); `domain_ascii` gives the A-label form
//! used for DNS and certificate matching. The old stringprep profiles (RFC 6122) are available as
//! `legacy_nodeprep` / `legacy_resourceprep` for interop comparisons (catalog F05) only.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use precis_core::profile::Profile;
use precis_profiles::{OpaqueString, UsernameCaseMapped};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    #[error("{0}")]
    Invalid(String),
}

/// RFC 7622 §3.2-3.4: each part is 1..=1023 octets after preparation.
pub const MAX_PART_BYTES: usize = 1023;

/// Characters RFC 7622 §3.3.1 forbids in a localpart (on top of the PRECIS rules).
const LOCALPART_FORBIDDEN: &[char] = &['"', '&', '\'', '/', ':', '<', '>', '@'];

/// A prepared JID (localpart and resourcepart enforced, domainpart as a U-label string).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parse and prepare `[local@]domain[/resource]`.
    ///
    /// Split as RFC 7622 §3.1 says: the first `/` starts the resourcepart (which may itself
    /// contain `/` and `@`), then the first `@` before it ends the localpart.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        if s.is_empty() {
            return Err(invalid("JID is empty: expected [localpart@]domainpart[/resourcepart]".into()));
        }
        let (bare, resource) = match s.split_once('/') {
            Some((bare, resource)) => (bare, Some(resource)),
            None => (s, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, bare),
        };
        Jid::new(local, domain, resource).map_err(|JidError::Invalid(why)| invalid(format!("JID {s:?}: {why}")))
    }

    /// Build a JID from its parts, preparing each one. `None` means the part is absent;
    /// `Some("")` is an error (RFC 7622 forbids empty parts).
    pub fn new(local: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Jid, JidError> {
        Ok(Jid {
            local: local.map(prepare_localpart).transpose()?,
            domain: prepare_domainpart(domain)?,
            resource: resource.map(prepare_resourcepart).transpose()?,
        })
    }

    /// The same bare JID with this resource (prepared).
    pub fn with_resource(&self, resource: &str) -> Result<Jid, JidError> {
        Ok(Jid { resource: Some(prepare_resourcepart(resource)?), ..self.clone() })
    }

    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    pub fn bare(&self) -> Jid {
        Jid { resource: None, ..self.clone() }
    }
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }

    /// The domainpart as A-labels (`xn--bcher-kva.lab`), for DNS and certificate matching
    /// (RFC 6125 §6.4.2). IP literals and ASCII domains come back unchanged.
    pub fn domain_ascii(&self) -> String {
        // The stored domain already passed this conversion in `prepare_domainpart`, so it cannot
        // fail here; falling back to the stored form keeps this infallible without a panic.
        domain_to_ascii(&self.domain).unwrap_or_else(|_| self.domain.clone())
    }
}

fn invalid(message: String) -> JidError {
    JidError::Invalid(message)
}

/// RFC 7622 §3.3: UsernameCaseMapped, then the §3.3.1 forbidden characters and length.
fn prepare_localpart(local: &str) -> Result<String, JidError> {
    if local.is_empty() {
        return Err(invalid("localpart is empty: drop the '@' or put a name before it".into()));
    }
    let prepared = UsernameCaseMapped::new()
        .enforce(local)
        .map_err(|e| precis_error("localpart", "UsernameCaseMapped (RFC 7622 §3.3)", &e))?
        .into_owned();
    if let Some(c) = prepared.chars().find(|c| LOCALPART_FORBIDDEN.contains(c)) {
        return Err(invalid(format!(
            "localpart contains '{c}', which RFC 7622 §3.3.1 forbids (none of \" & ' / : < > @ may appear)"
        )));
    }
    check_length("localpart", &prepared)?;
    Ok(prepared)
}

/// RFC 7622 §3.4: OpaqueString (no case or width mapping; non-ASCII spaces become U+0020).
fn prepare_resourcepart(resource: &str) -> Result<String, JidError> {
    if resource.is_empty() {
        return Err(invalid("resourcepart is empty: drop the '/' or put a resource after it".into()));
    }
    let prepared = OpaqueString::new()
        .enforce(resource)
        .map_err(|e| precis_error("resourcepart", "OpaqueString (RFC 7622 §3.4)", &e))?
        .into_owned();
    check_length("resourcepart", &prepared)?;
    Ok(prepared)
}

/// RFC 7622 §3.2: IP literal, IPv4 address, or an IDNA2008 name stored as U-labels, lowercase,
/// with one trailing dot stripped.
fn prepare_domainpart(domain: &str) -> Result<String, JidError> {
    if domain.is_empty() {
        return Err(invalid("domainpart is empty: a JID needs a domain, e.g. a.lab".into()));
    }
    if let Some(inner) = domain.strip_prefix('[') {
        let literal = inner.strip_suffix(']').ok_or_else(|| {
            invalid(format!("domainpart {domain:?} opens an IPv6 literal with '[' but does not close it with ']'"))
        })?;
        let addr: Ipv6Addr = literal
            .parse()
            .map_err(|_| invalid(format!("domainpart {domain:?} is not a valid IPv6 literal (e.g. [::1])")))?;
        return Ok(format!("[{addr}]"));
    }
    if let Ok(addr) = domain.parse::<Ipv4Addr>() {
        return Ok(addr.to_string());
    }
    for (c, name) in [('@', "'@'"), ('/', "'/'"), (' ', "a space")] {
        if domain.contains(c) {
            return Err(invalid(format!("domainpart {domain:?} contains {name}, which no domain name may contain")));
        }
    }
    let ascii = domain_to_ascii(domain)?;
    let (unicode, result) = Uts46::new().to_unicode(ascii.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast);
    if result.is_err() {
        return Err(invalid(format!("domainpart {domain:?} has a label that is not a valid IDNA2008 U-label")));
    }
    check_length("domainpart", &unicode)?;
    Ok(unicode.into_owned())
}

/// IDNA (UTS #46 non-transitional mapping, STD3 rules) to A-labels, lowercase, one trailing dot
/// stripped, no empty labels.
fn domain_to_ascii(domain: &str) -> Result<String, JidError> {
    let ascii = Uts46::new()
        .to_ascii(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast, DnsLength::Ignore)
        .map_err(|_| {
            invalid(format!(
                "domainpart {domain:?} is not a valid domain name under IDNA2008: only letters, digits and \
                 hyphens (not at a label's start or end) are allowed, and non-ASCII labels must be valid U-labels"
            ))
        })?;
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
    if ascii.is_empty() {
        return Err(invalid(format!("domainpart {domain:?} is empty once the trailing dot is removed")));
    }
    if ascii.split('.').any(str::is_empty) {
        return Err(invalid(format!("domainpart {domain:?} has an empty label (two dots in a row, or a leading dot)")));
    }
    Ok(ascii.to_string())
}

fn check_length(part: &str, prepared: &str) -> Result<(), JidError> {
    if prepared.len() > MAX_PART_BYTES {
        return Err(invalid(format!(
            "{part} is {} bytes long after preparation; RFC 7622 allows at most {MAX_PART_BYTES}",
            prepared.len()
        )));
    }
    Ok(())
}

/// `profile` names the PRECIS profile and where RFC 7622 requires it, e.g. "OpaqueString (RFC 7622 §3.4)".
fn precis_error(part: &str, profile: &str, e: &precis_core::Error) -> JidError {
    match e {
        precis_core::Error::BadCodepoint(info) => invalid(format!(
            "{part} contains U+{:04X} (character {}), which the PRECIS profile {profile} disallows \
             (derived property {})",
            info.cp,
            info.position + 1,
            info.property.to_string().trim()
        )),
        // precis reports both "empty after mapping" and "fails the Bidi rule" as Invalid.
        precis_core::Error::Invalid => invalid(format!(
            "{part} is not valid under the PRECIS profile {profile}: it is empty after mapping or breaks \
             the Bidi rule (RFC 5893)"
        )),
        precis_core::Error::Unexpected(why) => {
            invalid(format!("{part} could not be prepared with the PRECIS profile {profile}: {why}"))
        }
    }
}

/// RFC 6122 Nodeprep (stringprep), the localpart profile older servers use. For comparisons only.
pub fn legacy_nodeprep(local: &str) -> Result<String, JidError> {
    stringprep::nodeprep(local)
        .map(|s| s.into_owned())
        .map_err(|e| invalid(format!("localpart {local:?} is invalid under RFC 6122 Nodeprep: {e}")))
}

/// RFC 6122 Resourceprep (stringprep), the resourcepart profile older servers use. For comparisons only.
pub fn legacy_resourceprep(resource: &str) -> Result<String, JidError> {
    stringprep::resourceprep(resource)
        .map(|s| s.into_owned())
        .map_err(|e| invalid(format!("resourcepart {resource:?} is invalid under RFC 6122 Resourceprep: {e}")))
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.local {
            write!(f, "{l}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::parse(s)
    }
}

/// Serialised as its string form.
impl serde::Serialize for Jid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Deserialised through `Jid::parse`, so a stored JID is always prepared.
impl<'de> serde::Deserialize<'de> for Jid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Jid::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn error(s: &str) -> String {
        match Jid::parse(s) {
            Ok(j) => panic!("{s:?} should be rejected, got {j}"),
            Err(JidError::Invalid(why)) => why,
        }
    }

    #[test]
    fn splits_parts_per_rfc7622_section_3_1() {
        let j = jid("alice@a.lab/phone/with@signs");
        assert_eq!(j.local(), Some("alice"));
        assert_eq!(j.domain(), "a.lab");
        assert_eq!(j.resource(), Some("phone/with@signs"));
        assert!(!j.is_bare());
        assert_eq!(j.bare().to_string(), "alice@a.lab");
        assert_eq!(jid("a.lab").to_string(), "a.lab");
        assert_eq!(jid("a.lab/r").to_string(), "a.lab/r");
    }

    /// F03/F04: case folding, NFC, width mapping of the localpart; domain case and trailing dot.
    #[test]
    fn equivalent_spellings_prepare_to_one_jid() {
        let canonical = jid("j\u{FC}rgen@b.lab");
        assert_eq!(canonical.local(), Some("j\u{FC}rgen"));
        for spelling in [
            "J\u{DC}RGEN@b.lab",
            "J\u{FC}rgen@b.lab",
            "ju\u{308}rgen@b.lab",      // NFD
            "JU\u{308}RGEN@b.lab",      // NFD upper case
            "j\u{FC}rgen@B.LAB",        // upper-case domain
            "j\u{FC}rgen@b.lab.",       // trailing dot
            "j\u{FC}rgen@\u{FF42}.lab", // fullwidth domain letter
        ] {
            assert_eq!(jid(spelling), canonical, "{spelling:?}");
        }
        assert_eq!(jid("\u{FF4A}\u{FF55}\u{FF45}\u{FF52}\u{FF47}\u{FF45}\u{FF4E}@b.lab").local(), Some("juergen"));
        for local in [
            "\u{434}\u{43C}\u{438}\u{442}\u{440}\u{438}\u{439}",
            "\u{674E}\u{5C0F}\u{9F8D}",
            "\u{5E9}\u{5DC}\u{5D5}\u{5DD}",
        ] {
            assert_eq!(jid(&format!("{local}@b.lab")).local(), Some(local));
        }
    }

    /// F05: where PRECIS differs from stringprep.
    #[test]
    fn precis_differs_from_stringprep_where_the_catalog_says() {
        assert_ne!(jid("fu\u{DF}ball@b.lab"), jid("fussball@b.lab"));
        assert_eq!(legacy_nodeprep("fu\u{DF}ball").unwrap(), "fussball");
        assert!(error("henry\u{2163}@b.lab").contains("localpart"));
        assert_eq!(legacy_nodeprep("henry\u{2163}").unwrap(), "henryiv");
        assert!(error("\u{265A}@b.lab").contains("U+265A"));
        // Resource: no width mapping, non-ASCII space mapped to U+0020.
        assert_eq!(jid("a@b.lab/\u{FF42}\u{FF41}\u{FF4C}").resource(), Some("\u{FF42}\u{FF41}\u{FF4C}"));
        assert_eq!(jid("a@b.lab/my\u{A0}phone").resource(), Some("my phone"));
        // The catalog's F05 table says Resourceprep prohibits U+00A0 (C.1.2), but NFKC maps it to
        // U+0020 before the prohibition check, so both profiles agree here.
        assert_eq!(legacy_resourceprep("my\u{A0}phone").unwrap(), "my phone");
        assert_eq!(legacy_resourceprep("\u{FF42}\u{FF41}\u{FF4C}").unwrap(), "bal");
        // Bidi: Arabic then a digit is valid under RFC 5893.
        assert!(Jid::parse("\u{645}\u{631}\u{62D}\u{628}\u{627}1@b.lab").is_ok());
    }

    /// F06: localparts both profiles forbid.
    #[test]
    fn forbidden_localparts_are_rejected_with_reasons() {
        for (input, expected) in [
            ("foo bar@b.lab", "U+0020"),
            ("\"juliet\"@b.lab", "'\"'"),
            ("o'neil@b.lab", "'''"),
            ("a&b@b.lab", "'&'"),
            ("a:b@b.lab", "':'"),
            ("<x>@b.lab", "'<'"),
            ("@b.lab", "localpart is empty"),
            ("foo\u{A0}bar@b.lab", "U+00A0"),
            ("a\u{0}b@b.lab", "U+0000"),
            ("a\u{FFFD}@b.lab", "U+FFFD"),
            ("\u{FF20}x@b.lab", "'@'"), // fullwidth @ maps to @
        ] {
            let why = error(input);
            assert!(why.contains("localpart"), "{input:?}: {why}");
            assert!(why.contains(expected), "{input:?}: {why}");
        }
        let why = error("a@b@b.lab");
        assert!(why.contains("domainpart") && why.contains("'@'"), "{why}");
        let why = Jid::new(Some("a@b"), "b.lab", None).unwrap_err().to_string();
        assert!(why.contains("localpart contains '@'"), "{why}");
    }

    /// F07: resourceparts.
    #[test]
    fn resourceparts_are_enforced_with_opaque_string() {
        assert_eq!(jid("alice@a.lab/\u{1F4F1}phone").resource(), Some("\u{1F4F1}phone"));
        assert!(error("alice@a.lab/res\u{E000}").contains("U+E000"));
        assert!(error("alice@a.lab/").contains("resourcepart is empty"));
        let base = jid("alice@a.lab");
        assert_eq!(base.with_resource("Phone").unwrap().to_string(), "alice@a.lab/Phone");
        assert!(base.with_resource("").is_err());
    }

    #[test]
    fn part_length_limits() {
        let ok = "a".repeat(1023);
        assert!(Jid::parse(&format!("{ok}@b.lab/{ok}")).is_ok());
        let long = "a".repeat(1024);
        assert!(error(&format!("{long}@b.lab")).contains("localpart is 1024 bytes"));
        assert!(error(&format!("a@b.lab/{long}")).contains("resourcepart is 1024 bytes"));
        let long_domain = vec!["abcdefghi"; 103].join(".");
        assert!(error(&long_domain).contains("domainpart is 1029 bytes"));
        // Length counts bytes, not characters: 512 two-byte characters are 1024 bytes.
        assert!(error(&format!("{}@b.lab", "\u{E9}".repeat(512))).contains("1024 bytes"));
    }

    /// F08: U-label storage, A-label view, equivalence of both spellings.
    #[test]
    fn idn_domains_are_stored_as_u_labels() {
        let u = jid("u@b\u{FC}cher.lab");
        assert_eq!(u.domain(), "b\u{FC}cher.lab");
        assert_eq!(u.domain_ascii(), "xn--bcher-kva.lab");
        for spelling in ["u@xn--bcher-kva.lab", "u@B\u{DC}CHER.lab", "u@b\u{FC}cher.lab.", "u@XN--BCHER-KVA.LAB"] {
            assert_eq!(jid(spelling), u, "{spelling:?}");
        }
        assert_eq!(jid("a.lab").domain_ascii(), "a.lab");
    }

    #[test]
    fn ip_literals_and_bad_domains() {
        assert_eq!(jid("a@[::1]/r").domain(), "[::1]");
        assert_eq!(jid("a@[0:0::1]").domain(), "[::1]");
        assert_eq!(jid("a@127.0.0.1").domain(), "127.0.0.1");
        assert_eq!(jid("[::1]").domain_ascii(), "[::1]");
        for (input, expected) in [
            ("", "JID is empty"),
            ("a@", "domainpart is empty"),
            ("/r", "domainpart is empty"),
            ("a@[::1", "does not close"),
            ("a@[nope]", "not a valid IPv6"),
            ("a@b..lab", "empty label"),
            ("a@.", "empty once the trailing dot"),
            ("a@b.lab..", "empty label"),
            ("a@-b.lab", "IDNA2008"),
            ("a@b_c.lab", "IDNA2008"),
            ("a@b c.lab", "a space"),
            ("a@xn--zz.lab", "IDNA2008"),
        ] {
            let why = error(input);
            assert!(why.contains(expected), "{input:?}: {why}");
        }
    }

    #[test]
    fn serde_round_trips_through_the_string_form() {
        let j = jid("J\u{DC}RGEN@B\u{DC}CHER.lab/\u{1F4F1}");
        let json = serde_json::to_string(&j).unwrap();
        assert_eq!(json, "\"j\u{FC}rgen@b\u{FC}cher.lab/\u{1F4F1}\"");
        assert_eq!(serde_json::from_str::<Jid>(&json).unwrap(), j);
        // Deserialisation prepares the string.
        assert_eq!(serde_json::from_str::<Jid>("\"ALICE@A.LAB\"").unwrap(), jid("alice@a.lab"));
        let err = serde_json::from_str::<Jid>("\"foo bar@a.lab\"").unwrap_err().to_string();
        assert!(err.contains("localpart"), "{err}");
    }
}
