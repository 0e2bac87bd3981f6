//! The scenario file as written: serde types with source positions, checked by `load`.
//!
//! Steps are an externally tagged enum (`- send: {…}`): internally tagged enums lose the
//! positions that `Spanned` records. Every struct denies unknown fields, so a misspelt key is
//! an error at its line instead of being silently ignored.

use crate::results::Level;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub id: Spanned<String>,
    pub title: Spanned<String>,
    #[serde(default)]
    pub catalog: Option<Spanned<String>>,
    pub roles: Spanned<Vec<Spanned<String>>>,
    /// The s2s policy (CATALOG §0.7) the case assumes of its servers; others skip it.
    #[serde(default)]
    pub s2s_policy: Option<Spanned<String>>,
    #[serde(default)]
    pub accounts: Entries<RawAccount>,
    #[serde(default)]
    pub gate: Option<Spanned<Vec<Spanned<RawGate>>>>,
    pub actors: Spanned<Entries<RawActor>>,
    /// The harness as remote servers (`scenario::peer`).
    #[serde(default)]
    pub peers: Entries<super::peer::RawPeer>,
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub server: Spanned<String>,
    /// On the server's IDN domain.
    #[serde(default)]
    pub idn: Option<bool>,
    /// The localpart as a template: `${str.…}` sample strings and `{tag}` (the case's unique
    /// tag, digits only), e.g. `"${str.jurgen_nfc}-{tag}"`. Default: `<name>-<tag>`.
    #[serde(default)]
    pub localpart: Option<Spanned<String>>,
    /// `false`: not created at case start (a `register` step may try to create it).
    #[serde(default)]
    pub create: Option<bool>,
}

/// `{disco_feature: "…", on: A}` or `{stream_feature: "…", on: A}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    #[serde(default)]
    pub disco_feature: Option<Spanned<String>>,
    #[serde(default)]
    pub stream_feature: Option<Spanned<String>>,
    /// A feature of the server's s2s stream after TLS, seen by a throwaway harness peer.
    #[serde(default)]
    pub s2s_feature: Option<Spanned<String>>,
    /// An SRV record the server's domain must publish, e.g. `_xmpps-server._tcp` (XEP-0368).
    #[serde(default)]
    pub srv: Option<Spanned<String>>,
    pub on: Spanned<String>,
}

/// A fixture file: reusable steps (`scenarios/_fixtures/<name>.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFixture {
    pub fixture: Spanned<String>,
    pub title: Spanned<String>,
    #[serde(default)]
    pub params: Option<Spanned<Vec<Spanned<String>>>>,
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActor {
    pub account: Spanned<String>,
    /// Optional: the role of the account's server (CATALOG §0.8 puts it on the actor).
    #[serde(default)]
    pub server: Option<Spanned<String>>,
    #[serde(default)]
    pub resource: Option<Spanned<String>>,
    #[serde(default)]
    pub presence: Option<Spanned<RawPresence>>,
    #[serde(default)]
    pub roster: Option<bool>,
    #[serde(default)]
    pub connect_at_start: Option<bool>,
    /// The c2s stream's `xml:lang` (default `en`).
    #[serde(default)]
    pub lang: Option<Spanned<String>>,
    /// XEP-0115 entity capabilities: advertised in the initial presence, and disco#info queries
    /// for node#ver are answered automatically.
    #[serde(default)]
    pub caps: Option<Spanned<RawCaps>>,
    /// Log in with XEP-0368 direct TLS (`_xmpps-client._tcp`) instead of STARTTLS.
    #[serde(default)]
    pub direct_tls: Option<bool>,
}

/// `caps: {features: [...], notify: [urn:xmpp:avatar:metadata], node: "…"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaps {
    #[serde(default)]
    pub node: Option<Spanned<String>>,
    #[serde(default)]
    pub features: Vec<Spanned<String>>,
    /// Namespaces whose `+notify` feature is advertised (XEP-0163 filtered notifications).
    #[serde(default)]
    pub notify: Vec<Spanned<String>>,
}

/// `presence: true`, `presence: false` or `presence: "<presence>…</presence>"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPresence {
    Flag(bool),
    Xml(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawStep {
    Send(RawSend),
    SendRaw(RawSendRaw),
    // Boxed: expects are much larger than the other steps.
    Expect(Box<RawExpect>),
    ExpectNone(Box<RawExpectNone>),
    ExpectUnordered(Box<RawUnordered>),
    ExpectSequence(Box<RawSequence>),
    Iq(Box<RawIq>),
    ExpectClosed(Box<RawExpectClosed>),
    Use(Box<RawUse>),
    Connect(RawConnect),
    Disconnect(RawDisconnect),
    Register(RawRegister),
    TlsProbe(Box<RawTlsProbe>),
    Authenticate(RawAuthenticate),
    ExpectFeatures(Box<RawExpectFeatures>),
    Consistent(Box<RawConsistent>),
}

impl RawStep {
    /// The step's `ref`, if it has one.
    pub fn spec(&self) -> Option<&Spanned<RawRef>> {
        match self {
            RawStep::Expect(e) => e.spec.as_ref(),
            RawStep::ExpectNone(e) => e.spec.as_ref(),
            RawStep::ExpectUnordered(e) => e.spec.as_ref(),
            RawStep::ExpectSequence(e) => e.spec.as_ref(),
            RawStep::Iq(e) => e.spec.as_ref(),
            RawStep::ExpectClosed(e) => e.spec.as_ref(),
            RawStep::Connect(e) => e.spec.as_ref(),
            RawStep::Register(e) => e.spec.as_ref(),
            RawStep::TlsProbe(e) => e.spec.as_ref(),
            RawStep::ExpectFeatures(e) => e.spec.as_ref(),
            RawStep::Consistent(e) => e.spec.as_ref(),
            RawStep::Send(_)
            | RawStep::SendRaw(_)
            | RawStep::Use(_)
            | RawStep::Disconnect(_)
            | RawStep::Authenticate(_) => None,
        }
    }
}

/// `expect_features: {actor: alice1, xml: "<c xmlns='http://jabber.org/protocol/caps' ver='{=ver}'/>"}`:
/// a child of the actor's stream features after authentication.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpectFeatures {
    pub actor: Spanned<String>,
    pub xml: Spanned<String>,
    /// `end`: no matching feature ends the case here, without a failure.
    #[serde(default)]
    pub otherwise: Option<Spanned<RawOtherwise>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

/// What an `expect_features` step does when no feature matches, besides failing.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOtherwise {
    /// The case ends here; the remaining steps are not run and the verdict stays what it was.
    End,
}

/// `register: {account: henry, outcome: refused, condition: jid-malformed, ref: …}`: an
/// XEP-0077 in-band registration attempt for an account declared with `create: false`.
/// `tls_probe: {on: A, service: s2s, version: TLSv1.1, expect: refused, ref: …}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsProbe {
    pub on: Spanned<String>,
    pub service: Spanned<crate::run::tls_probe::ProbeService>,
    pub version: Spanned<crate::run::tls_probe::TlsVersion>,
    pub expect: Spanned<crate::run::tls_probe::ProbeExpect>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegister {
    pub account: Spanned<String>,
    #[serde(default)]
    pub outcome: Option<Spanned<RegisterOutcome>>,
    /// For a refusal: the defined condition it must carry.
    #[serde(default)]
    pub condition: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

/// What a `register` step expects of the registration attempt.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutcome {
    /// The server creates the account (an IQ result to the registration set; the default).
    #[default]
    Registered,
    /// The server refuses: an IQ error to the registration form request or to the set.
    Refused,
    /// Either; recorded.
    Any,
}

/// `connect: {actor: a, outcome: refused, condition: bad-request, ref: …}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnect {
    pub actor: Spanned<String>,
    #[serde(default)]
    pub outcome: Option<Spanned<ConnectOutcome>>,
    /// For a refusal: the defined condition it must carry.
    #[serde(default)]
    pub condition: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

/// What a `connect` step expects of the login.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOutcome {
    /// Logged in and bound (the default).
    #[default]
    Connected,
    /// Logged in and bound to exactly the resource requested (compared as a string).
    AsRequested,
    /// Refused by the server: authentication failure or a bind error.
    Refused,
    /// Refused, or bound to a resource other than the one requested (never bound as requested).
    RefusedOrRenamed,
    /// Either; recorded.
    Any,
}

/// `disconnect: {actor: a}` or `disconnect: {actor: a, abrupt: true}` (TCP closed, no stream close).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthenticate {
    pub peer: Spanned<String>,
    /// `external` (default) or `dialback`.
    #[serde(default)]
    pub method: Option<Spanned<super::peer::PeerAuth>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisconnect {
    pub actor: Spanned<String>,
    #[serde(default)]
    pub abrupt: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSendRaw {
    #[serde(rename = "as")]
    pub actor: Spanned<String>,
    pub data: Spanned<String>,
}

/// `to: bob1` or `to: [bob1, bob2]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<String> {
        match self {
            OneOrMany::One(n) => vec![n.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpectNone {
    pub to: Spanned<OneOrMany>,
    #[serde(default)]
    pub xml: Option<Spanned<String>>,
    pub barrier: Spanned<RawBarrier>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

/// `barrier: {marker: alice1}` or `barrier: ping`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawBarrier {
    Marker(Spanned<String>),
    Ping,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnordered {
    pub items: Spanned<Vec<Spanned<RawItem>>>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawItem {
    pub to: Spanned<String>,
    pub xml: Spanned<String>,
    /// Item numbers (1-based, earlier items to the same actor) whose stanzas must arrive first.
    #[serde(default)]
    pub after: Option<Spanned<OneOrManyNumbers>>,
}

/// `after: 1` or `after: [1, 2]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrManyNumbers {
    One(usize),
    Many(Vec<usize>),
}

/// One alternative of an `expect`'s `any_of`: a pattern, or `{closed: condition}` (the server
/// closes the stream, with that stream error condition or `any`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAlternative {
    Xml(String),
    Closed(RawClosedAlt),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClosedAlt {
    pub closed: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSequence {
    pub to: Spanned<String>,
    pub items: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIq {
    #[serde(rename = "as")]
    pub actor: Spanned<String>,
    pub xml: Spanned<String>,
    pub expect: Spanned<String>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpectClosed {
    pub actor: Spanned<String>,
    #[serde(default)]
    pub error: Option<Spanned<String>>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

/// `use: {fixture: name, with: {param: actor, …}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUse {
    pub fixture: Spanned<String>,
    #[serde(default, rename = "with")]
    pub bind: Option<Spanned<Entries<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSend {
    #[serde(rename = "as")]
    pub actor: Spanned<String>,
    pub xml: Spanned<String>,
    /// For a peer: send only if the server has not ended its link (else the step records that it did).
    #[serde(default)]
    pub if_open: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub to: Spanned<String>,
    /// The pattern; or `any_of`.
    #[serde(default)]
    pub xml: Option<Spanned<String>>,
    /// Alternatives: the step passes when one of them happens (the first to match is reported).
    #[serde(default)]
    pub any_of: Option<Spanned<Vec<Spanned<RawAlternative>>>>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRef {
    pub spec: String,
    pub section: String,
    pub level: Level,
    #[serde(default)]
    pub quote: Option<String>,
    /// The step is a vote in a `consistent` step's tally (e.g. which JID profile a server follows).
    #[serde(default)]
    pub tally: Option<Spanned<RawTally>>,
}

/// `tally: precis` (holding votes for precis, not holding against it), or
/// `tally: {holds: precis, fails: stringprep}` (not holding also votes for stringprep, holding
/// against it).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTally {
    Label(String),
    Both(RawTallyBoth),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTallyBoth {
    pub holds: String,
    pub fails: String,
}

/// `consistent: {tallies: [precis, stringprep], ref: …}`: the votes of the earlier steps tallied
/// under these labels agree on (at least) one label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsistent {
    pub tallies: Spanned<Vec<Spanned<String>>>,
    /// A role whose servers-file `jid_profile` (CATALOG §0.5 manifest) the label found must equal.
    #[serde(default)]
    pub manifest: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

/// A YAML mapping kept in file order, with each key's position (for `accounts:` and `actors:`,
/// whose order is the declared order). Duplicate keys are rejected by the YAML reader.
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor(PhantomData))
    }
}
