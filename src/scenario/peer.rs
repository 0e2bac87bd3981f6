//! Peer actors: the harness as a remote XMPP server inside a scenario (CATALOG area G).
//! Declared under `peers:`; each is an actor whose "connection" is an s2s peer with its own
//! domain (`<name>-<tag>.<harness domain>`), a certificate fixture, a scripted receiving side
//! and, with `connects_to`, an outbound s2s link to a role's server. docs/scenario-format.md
//! ("Peers") describes what such an actor sends and receives.

use crate::ca::Fixture;
use crate::xmpp::s2s::PeerBehaviour;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Namespace of the elements plugfest itself puts in a peer actor's buffer (negotiation
/// outcome, link and leg events), so scenarios can check them like stanzas.
pub const NS_PEER: &str = "urn:plugfest:s2s";

/// A peer as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    /// The role whose server the peer opens an s2s link to; without it the peer only receives.
    #[serde(default)]
    pub connects_to: Option<Spanned<String>>,
    /// The certificate fixture it presents (CATALOG §0.6), default `good`.
    #[serde(default)]
    pub cert: Option<Spanned<String>>,
    #[serde(default)]
    pub auth: Option<PeerAuth>,
    /// SASL EXTERNAL authorization identity: default the peer's domain; `"="` sends none.
    #[serde(default)]
    pub authzid: Option<String>,
    /// Negotiate STARTTLS on the outbound link (default true).
    #[serde(default)]
    pub starttls: Option<bool>,
    /// Declare the dialback namespace on the outbound stream header (default true).
    #[serde(default)]
    pub declare_dialback: Option<bool>,
    /// Stop the outbound link unless the server's certificate is valid (default false: record it).
    #[serde(default)]
    pub require_valid_cert: Option<bool>,
    /// The receiving side's behaviour (`starttls`, `offer_external`, `dialback_result`, …).
    #[serde(default)]
    pub behaviour: Option<PeerBehaviour>,
    /// The outbound stream header's 'to', when it must differ from the server's domain (G02: a
    /// domain the server does not serve).
    #[serde(default)]
    pub stream_to: Option<String>,
    /// Ask for a bidirectional stream (XEP-0288) when the server offers it, before authenticating.
    #[serde(default)]
    pub bidi: Option<bool>,
    /// XEP-0368 direct TLS: reach the server by its `_xmpps-server._tcp` SRV record and start
    /// with TLS (SNI = its domain, ALPN `xmpp-server`) instead of STARTTLS.
    #[serde(default)]
    pub direct_tls: Option<bool>,
    /// Play `<subdomain>.<the peer's domain>`, with the certificate still issued for the peer's
    /// domain (G09: a `wildcard-only` certificate `*.<domain>` then names the subdomain).
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Play the harness's fixed direct TLS domain and take its direct TLS port (XEP-0368; the
    /// servers file's `harness.direct_tls`): the server under test may reach it with TLS first.
    #[serde(default)]
    pub listen_direct_tls: Option<bool>,
    /// Localpart of `${name.bare}` (default `u`).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub connect_at_start: Option<bool>,
}

/// How the outbound link authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerAuth {
    /// SASL EXTERNAL when offered, else dialback.
    #[default]
    Auto,
    /// SASL EXTERNAL, offered or not.
    External,
    Dialback,
    /// Stop after the stream (and TLS): the case scripts the rest, or tests what happens without.
    None,
}

/// A checked peer.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerDecl {
    pub connects_to: Option<String>,
    pub cert: Fixture,
    pub auth: PeerAuth,
    /// `None`: send `=` (no authorization identity); `Some("")`: the peer's own domain.
    pub authzid: Option<String>,
    pub starttls: bool,
    pub declare_dialback: bool,
    pub require_valid_cert: bool,
    pub behaviour: PeerBehaviour,
    pub stream_to: Option<String>,
    pub bidi: bool,
    pub direct_tls: bool,
    pub subdomain: Option<String>,
    pub listen_direct_tls: bool,
    pub user: String,
}

impl PeerDecl {
    /// A peer that connects to `role`'s server with a good certificate and stops after TLS:
    /// what an s2s-feature gate looks at.
    pub fn probe(role: &str) -> PeerDecl {
        PeerDecl {
            connects_to: Some(role.to_string()),
            cert: Fixture::Good,
            auth: PeerAuth::None,
            authzid: None,
            starttls: true,
            declare_dialback: true,
            require_valid_cert: false,
            behaviour: PeerBehaviour::default(),
            stream_to: None,
            bidi: false,
            direct_tls: false,
            subdomain: None,
            listen_direct_tls: false,
            user: "u".to_string(),
        }
    }

    pub fn from_raw(raw: &RawPeer, cert: Fixture, connects_to: Option<String>) -> PeerDecl {
        PeerDecl {
            connects_to,
            cert,
            auth: raw.auth.unwrap_or_default(),
            authzid: match raw.authzid.as_deref() {
                None => Some(String::new()),
                Some("=") => None,
                Some(id) => Some(id.to_string()),
            },
            starttls: raw.starttls.unwrap_or(true),
            declare_dialback: raw.declare_dialback.unwrap_or(true),
            require_valid_cert: raw.require_valid_cert.unwrap_or(false),
            behaviour: raw.behaviour.clone().unwrap_or_default(),
            stream_to: raw.stream_to.clone(),
            bidi: raw.bidi.unwrap_or(false),
            direct_tls: raw.direct_tls.unwrap_or(false),
            subdomain: raw.subdomain.clone(),
            listen_direct_tls: raw.listen_direct_tls.unwrap_or(false),
            user: raw.user.clone().unwrap_or_else(|| "u".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ca::Fixture;
    use std::path::Path;

    fn load(peers: &str) -> Result<crate::scenario::Scenario, crate::scenario::ConfigError> {
        let text = format!(
            "id: p\ntitle: t\nroles: [A]\nactors:\n  alice1: {{account: alice, server: A}}\npeers:\n{peers}\nsteps:\n  \
             - send: {{as: h, xml: \"<message from='${{h.bare}}' to='${{alice1.bare}}'/>\"}}\n"
        );
        crate::scenario::parse_str(Path::new("p.yaml"), &text).map(|(s, _)| s)
    }

    #[test]
    fn a_peer_is_an_actor_with_its_declaration() {
        let s = load("  h: {connects_to: A, cert: wrongname, auth: dialback, authzid: \"=\", bidi: true}").unwrap();
        let h = s.script.actor("h").unwrap();
        let peer = h.peer.as_ref().unwrap();
        assert_eq!(peer.connects_to.as_deref(), Some("A"));
        assert_eq!(peer.cert, Fixture::WrongName);
        assert_eq!(peer.auth, super::PeerAuth::Dialback);
        assert_eq!(peer.authzid, None, "\"=\" sends no authorization identity");
        assert!(peer.bidi && peer.starttls && !peer.direct_tls && h.connect_at_start);
        let defaults = load("  h: {}").unwrap();
        let d = defaults.script.actor("h").unwrap().peer.clone().unwrap();
        assert_eq!(
            (d.cert, d.auth, d.authzid.as_deref(), d.user.as_str()),
            (Fixture::Good, super::PeerAuth::Auto, Some(""), "u")
        );
        assert_eq!(d.connects_to, None, "without connects_to a peer only receives");
    }

    #[test]
    fn a_bad_peer_declaration_is_an_error_at_its_line() {
        let e = load("  h: {cert: nosuchcert}").unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.to_string().contains("unknown certificate fixture") && e.hint.unwrap().contains("wrongname"));
        let e = load("  h: {connects_to: C}").unwrap_err();
        assert!(e.to_string().contains("unknown role 'C'"), "{e}");
        let e = load("  alice1: {}").unwrap_err();
        assert!(e.to_string().contains("already used"), "{e}");
        let e = load("  h: {behaviour: {starttls: sometimes}}").unwrap_err();
        assert!(e.line == 7 && e.to_string().contains("sometimes"), "{e}");
    }

    #[test]
    fn authenticate_takes_external_or_dialback() {
        let text = |method: &str| {
            format!(
                "id: p\ntitle: t\nroles: [A]\nactors:\n  alice1: {{account: alice, server: A}}\npeers:\n  \
                 h: {{connects_to: A, auth: none}}\nsteps:\n  - authenticate: {{peer: h, method: {method}}}\n"
            )
        };
        let (_, script) = crate::scenario::parse_str(Path::new("p.yaml"), &text("dialback")).unwrap();
        assert!(matches!(
            &script.steps[0].action,
            crate::scenario::Action::Authenticate { actor, method: super::PeerAuth::Dialback } if actor == "h"
        ));
        let e = crate::scenario::parse_str(Path::new("p.yaml"), &text("none")).unwrap_err();
        assert!(e.line == 9 && e.to_string().contains("external or dialback"), "{e}");
    }
}
