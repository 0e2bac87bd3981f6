//! Scenarios: YAML files describing actors and steps (docs/scenario-format.md).
//! Knows nothing of sockets: `run::case` executes what this module loads.
//!
//! - `model`: the file as written (serde types with positions);
//! - `load`: reading and validating it into the types below, errors with file:line:col;
//! - `steps`: checking the steps in order, expanding fixtures (`use:`);
//! - `vars`: `${…}` variables, resolved at load time, substituted at run time;
//! - `pattern`: matching received stanzas against expected ones.

pub mod caps;
mod load;
mod model;
pub mod pattern;
pub mod peer;
mod steps;
pub mod vars;

use crate::results::SpecRef;
use std::path::PathBuf;
use std::time::Duration;
pub use vars::{Bindings, Template};

pub use crate::yaml::ConfigError;
pub use load::{load_file, load_paths, parse_pattern, parse_stanza, FIXTURES_DIR, STRINGS_FILE};

/// Parse scenario text as if it came from `path` (whose file name must match the id).
/// For tests: returns the script beside the scenario.
#[cfg(test)]
pub(crate) fn parse_str(path: &std::path::Path, text: &str) -> Result<(Scenario, Script), ConfigError> {
    load::parse(path, text).map(|l| {
        let script = l.scenario.script.clone();
        (l.scenario, script)
    })
}

/// A loaded, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Unique id, e.g. `msg-chat-remote-bare` (the file name without `.yaml`).
    pub id: String,
    pub title: String,
    pub file: PathBuf,
    /// Server roles it needs, in order, e.g. `["A", "B"]` or `["A"]`.
    pub roles: Vec<String>,
    /// The s2s policy the case assumes of every server it runs on (CATALOG §0.7); `None`: any.
    pub s2s_policy: Option<crate::servers::S2sPolicy>,
    /// Accounts to provision fresh for every case.
    pub accounts: Vec<AccountDecl>,
    /// Its actors and steps.
    pub script: Script,
}

/// An account the scenario uses: created fresh (unique localpart) before each case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDecl {
    /// Name used in the scenario, e.g. `alice`.
    pub name: String,
    /// The role whose server hosts it, e.g. `A`.
    pub role: String,
    /// On the server's IDN domain (servers file `idn_domain`) instead of its main domain.
    pub idn: bool,
    /// The localpart with `{tag}` where the case's unique tag (digits) goes, sample strings
    /// already substituted; `None`: `<name>-<tag>`.
    pub localpart: Option<String>,
    /// Created at case start (`create: false`: only a `register` step may create it).
    pub create: bool,
}

/// What a scenario does: its actors and steps.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// CATALOG.md id, e.g. `D01`.
    pub catalog: Option<String>,
    /// In declared order: the order of initial roster requests and presences at case start.
    pub actors: Vec<ActorDecl>,
    pub steps: Vec<Step>,
    /// Optional features the case needs; checked at case start (unsupported → skip).
    pub gates: Vec<Gate>,
}

/// A feature a server must advertise for the case to make sense.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    pub kind: GateKind,
    /// The feature's name, e.g. `urn:xmpp:carbons:2`.
    pub feature: String,
    /// Whose server, and for a disco gate on an account: disco#info to that account's bare JID.
    pub on: GateTarget,
    /// The role of that server.
    pub role: String,
    /// The scenario account that logs in (a throwaway session) to check it.
    pub account: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateKind {
    /// Listed as `<feature var='…'/>` in disco#info.
    DiscoFeature,
    /// A child of the c2s stream features after authentication (e.g. `urn:xmpp:features:rosterver`),
    /// written as `namespace` or `namespace name`.
    StreamFeature,
    /// A child of the s2s stream features the server offers a harness peer after TLS (e.g.
    /// `urn:xmpp:features:bidi`), by namespace. Needs the servers file's `harness:`.
    S2sFeature,
    /// An SRV record of the server's domain (`_xmpps-client._tcp`, `_xmpps-server._tcp`, …): present
    /// and not ".", i.e. the service is offered (XEP-0368 §3, RFC 2782).
    Srv,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateTarget {
    /// The server playing this role (disco#info to its domain).
    Role(String),
    /// This account's server (disco#info to the account's bare JID).
    Account(String),
}

impl Script {
    pub fn actor(&self, name: &str) -> Option<&ActorDecl> {
        self.actors.iter().find(|a| a.name == name)
    }
}

/// One client connection of a scenario (a resource of an account).
#[derive(Clone, Debug, Default)]
pub struct ActorDecl {
    /// e.g. `alice1`.
    pub name: String,
    /// Account name, e.g. `alice`.
    pub account: String,
    /// Resource to request at bind; `None` lets the server choose.
    pub resource: Option<String>,
    /// Request the roster after connecting (makes the resource "interested", RFC 6121 §2.1.6).
    pub roster: bool,
    /// Initial presence sent after connecting (and after the roster request); `None` = stay unavailable.
    pub presence: Option<Template>,
    /// Connect when the case starts; otherwise a `connect` step does it.
    pub connect_at_start: bool,
    /// The c2s stream's `xml:lang`; `None`: the default (`en`).
    pub lang: Option<String>,
    /// XEP-0115 capabilities the actor advertises (and answers disco#info queries for).
    pub caps: Option<Caps>,
    /// Log in with XEP-0368 direct TLS instead of STARTTLS.
    pub direct_tls: bool,
    /// A peer actor (`peers:`): the harness as a remote server instead of a client login.
    pub peer: Option<Box<peer::PeerDecl>>,
}

/// An actor's XEP-0115 entity capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// e.g. `https://plugfest.lab/harness`.
    pub node: String,
    /// `category/type/lang/name` of its one identity.
    pub identity: (String, String, String, String),
    /// Every feature it lists in disco#info (`+notify` ones included), sorted.
    pub features: Vec<String>,
    /// The verification string (XEP-0115 §5.1, SHA-1, base64).
    pub ver: String,
}

/// The node of caps that do not name one.
pub const CAPS_NODE: &str = "https://plugfest.lab/harness";

impl Caps {
    /// Caps with a `client/bot` identity named plugfest and these features (disco#info and
    /// caps are always included), the verification string computed per XEP-0115 §5.1.
    pub fn new(node: &str, features: impl IntoIterator<Item = String>) -> Caps {
        let mut features: Vec<String> = features.into_iter().collect();
        features.push("http://jabber.org/protocol/disco#info".into());
        features.push("http://jabber.org/protocol/caps".into());
        features.sort();
        features.dedup();
        let identity = ("client".to_string(), "bot".to_string(), String::new(), "plugfest".to_string());
        let s = caps::verification_string(std::slice::from_ref(&identity), &features, &[]);
        let ver = caps::hash_sha1(&s);
        Caps { node: node.to_string(), identity, features, ver }
    }
}

/// One step, with where it is written.
#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based line of the step in the scenario file (for a fixture's step: the line of the `use` step).
    pub line: usize,
    /// The step's vote in a `consistent` step's tally (its ref's `tally`).
    pub tally: Option<Tally>,
    /// For a step that comes from a fixture: which one and where in it.
    pub origin: Option<Origin>,
    pub action: Action,
}

/// What a step's outcome says for a `consistent` step: holding votes for `holds` (and against
/// `fails`), not holding votes against `holds` (and for `fails`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub holds: String,
    pub fails: Option<String>,
}

/// The earlier steps tallied under `labels` agree on one label: some label has votes for it and
/// none against it (CATALOG F05: "each server behaves consistently as one profile").
#[derive(Clone, Debug)]
pub struct Consistent {
    pub labels: Vec<String>,
    /// Compare the label found with this role's declared `jid_profile` (a mismatch warns).
    pub manifest: Option<String>,
    pub spec: Option<SpecRef>,
}

/// Where a fixture's step is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The fixture's name, e.g. `mutual-subscription`.
    pub fixture: String,
    pub file: PathBuf,
    /// 1-based line of the step in the fixture file.
    pub line: usize,
}

#[derive(Clone, Debug)]
pub enum Action {
    /// An actor sends a stanza.
    Send { actor: String, xml: Template, if_open: bool },
    /// An actor sends bytes as written (variables substituted without XML escaping).
    SendRaw { actor: String, data: Template },
    /// An actor must receive a stanza matching a pattern.
    Expect(Expect),
    /// Nothing matching may reach the actors before a barrier.
    ExpectNone(ExpectNone),
    /// Several stanzas, in any order, each matching a distinct stanza.
    ExpectUnordered(ExpectMany),
    /// Several stanzas to one actor, in this order.
    ExpectSequence(ExpectMany),
    /// An IQ request and the check of its answer.
    Iq(IqStep),
    /// The server closes the actor's stream (optionally with a given stream error).
    ExpectClosed(ExpectClosed),
    /// (Re)connect an actor: log in, then its roster request and initial presence as declared.
    /// `outcome` says what the login must come to; a refusal may be checked (`spec`).
    Connect { actor: String, outcome: ConnectOutcome, condition: Option<String>, spec: Option<SpecRef> },
    /// Close an actor's stream gracefully, or (`abrupt`) close the TCP connection without
    /// closing the stream.
    Disconnect { actor: String, abrupt: bool },
    /// Try to create an account (`create: false`) by XEP-0077 in-band registration; `outcome`
    /// says what the attempt must come to, a refusal is a result to check (`spec`).
    Register { account: String, outcome: RegisterOutcome, condition: Option<String>, spec: Option<SpecRef> },
    /// A STARTTLS handshake with a role's server offering only one TLS version (OpenSSL), which
    /// must be accepted or refused.
    TlsProbe(TlsProbe),
    /// Authenticate a peer's outbound link now (one declared `auth: none`, e.g. after asking for bidi).
    Authenticate { actor: String, method: peer::PeerAuth },
    /// A child of the actor's c2s stream features (after authentication) must match a pattern.
    ExpectFeatures(ExpectFeatures),
    /// The tallied outcomes of earlier steps agree on one label.
    Consistent(Consistent),
}

/// A child of an actor's `<stream:features/>` offered after authentication matches `pattern`
/// (captures work as in `expect`).
#[derive(Clone, Debug)]
pub struct ExpectFeatures {
    pub actor: String,
    pub pattern: Template,
    /// `otherwise: end`: when no feature matches, the case ends here without a failure (the
    /// remaining steps need what the feature would have given), the step recording why.
    pub end_if_absent: bool,
    pub spec: Option<SpecRef>,
}

pub use model::{ConnectOutcome, RegisterOutcome};

/// One alternative of an expect: a stanza pattern, or the server closing the stream.
#[derive(Clone, Debug)]
pub enum Alternative {
    Stanza(Template),
    /// The server closes the actor's stream, with this stream error condition (`None`: any close).
    Closed(Option<String>),
}

impl Alternative {
    /// For descriptions.
    pub fn text(&self) -> String {
        match self {
            Alternative::Stanza(t) => one_line(t.source()),
            Alternative::Closed(Some(c)) => format!("the stream closed with {c}"),
            Alternative::Closed(None) => "the stream closed".to_string(),
        }
    }
}

impl Action {
    /// The actors whose incoming stanzas the step waits for (empty for steps that wait for nothing).
    pub fn receivers(&self) -> Vec<&str> {
        match self {
            Action::Expect(e) => vec![e.actor.as_str()],
            Action::ExpectNone(e) => e.actors.iter().map(String::as_str).collect(),
            Action::ExpectUnordered(m) | Action::ExpectSequence(m) => {
                m.items.iter().map(|i| i.actor.as_str()).collect()
            }
            Action::Iq(iq) => vec![iq.actor.as_str()],
            Action::ExpectClosed(e) => vec![e.actor.as_str()],
            Action::Send { .. }
            | Action::SendRaw { .. }
            | Action::Connect { .. }
            | Action::Disconnect { .. }
            | Action::Register { .. }
            | Action::TlsProbe(_)
            | Action::Authenticate { .. }
            | Action::ExpectFeatures(_)
            | Action::Consistent(_) => vec![],
        }
    }
}

/// A `tls_probe` step.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsProbe {
    pub role: String,
    pub service: crate::run::tls_probe::ProbeService,
    pub version: crate::run::tls_probe::TlsVersion,
    pub expect: crate::run::tls_probe::ProbeExpect,
    pub spec: Option<SpecRef>,
}

/// How long an expect-like step waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Within {
    /// Not written: the case's default, `local` when all its roles are on one server, else `s2s`.
    Default,
    Fixed(Duration),
}

impl Within {
    /// The wait for a case whose default is `default`.
    pub fn or(self, default: Duration) -> Duration {
        match self {
            Within::Default => default,
            Within::Fixed(d) => d,
        }
    }
}

/// CATALOG §0.4 deadlines, also written by name in `within:`.
pub const LOCAL: Duration = Duration::from_secs(5);
pub const S2S: Duration = Duration::from_secs(20);
pub const BOUNCE: Duration = Duration::from_secs(60);

/// Default wait for an expected stanza when the case does not say (CATALOG §0.4: local delivery).
pub const DEFAULT_WITHIN: Duration = LOCAL;

/// An expected stanza.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The receiving actor.
    pub actor: String,
    /// The pattern (docs/scenario-format.md, "Matching"); with `any_of`, each alternative.
    pub alternatives: Vec<Alternative>,
    /// How long to wait for it.
    pub within: Within,
    /// The normative text it checks; its level decides what a mismatch does to the verdict.
    pub spec: Option<SpecRef>,
}

/// Nothing matching reaches `actors` before the barrier.
#[derive(Clone, Debug)]
pub struct ExpectNone {
    pub actors: Vec<String>,
    /// `None`: any stanza, always-ignorable traffic excepted.
    pub pattern: Option<Template>,
    pub barrier: Barrier,
    /// How long to wait for the barrier.
    pub within: Within,
    pub spec: Option<SpecRef>,
}

/// What proves that everything sent before it has arrived (CATALOG §0.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// This actor sends a marker message to each expecting actor's full JID.
    Marker { from: String },
    /// Each expecting actor pings its own server and waits for the answer.
    Ping,
}

/// One expected stanza of an `expect_unordered` or `expect_sequence`.
#[derive(Clone, Debug)]
pub struct Expected {
    pub actor: String,
    pub pattern: Template,
    /// (`expect_unordered`) indices of earlier items to the same actor whose stanzas must arrive first.
    pub after: Vec<usize>,
}

/// Several expected stanzas (unordered, or a sequence to one actor).
#[derive(Clone, Debug)]
pub struct ExpectMany {
    pub items: Vec<Expected>,
    pub within: Within,
    pub spec: Option<SpecRef>,
}

/// Send an IQ request and check its answer (matched by id).
#[derive(Clone, Debug)]
pub struct IqStep {
    pub actor: String,
    /// The request; an `id` is added when it has none.
    pub request: Template,
    /// The pattern its answer must match.
    pub expect: Template,
    pub within: Within,
    pub spec: Option<SpecRef>,
}

/// The server ends the actor's stream.
#[derive(Clone, Debug)]
pub struct ExpectClosed {
    pub actor: String,
    /// The stream error condition required, e.g. `not-well-formed`; `None`: any close.
    pub error: Option<String>,
    pub within: Within,
    pub spec: Option<SpecRef>,
}

impl Step {
    /// The key used in the file: `send`, `expect`, `expect_none`, …
    pub fn kind(&self) -> &'static str {
        match self.action {
            Action::Send { .. } => "send",
            Action::SendRaw { .. } => "send_raw",
            Action::Expect(_) => "expect",
            Action::ExpectNone(_) => "expect_none",
            Action::ExpectUnordered(_) => "expect_unordered",
            Action::ExpectSequence(_) => "expect_sequence",
            Action::Iq(_) => "iq",
            Action::ExpectClosed(_) => "expect_closed",
            Action::Connect { .. } => "connect",
            Action::Disconnect { .. } => "disconnect",
            Action::Register { .. } => "register",
            Action::TlsProbe(_) => "tls_probe",
            Action::Authenticate { .. } => "authenticate",
            Action::ExpectFeatures(_) => "expect_features",
            Action::Consistent(_) => "consistent",
        }
    }

    /// The normative text the step checks, if any.
    pub fn spec(&self) -> Option<&SpecRef> {
        match &self.action {
            Action::Expect(e) => e.spec.as_ref(),
            Action::ExpectNone(e) => e.spec.as_ref(),
            Action::ExpectUnordered(e) | Action::ExpectSequence(e) => e.spec.as_ref(),
            Action::Iq(e) => e.spec.as_ref(),
            Action::ExpectClosed(e) => e.spec.as_ref(),
            Action::Connect { spec, .. } | Action::Register { spec, .. } => spec.as_ref(),
            Action::TlsProbe(p) => p.spec.as_ref(),
            Action::ExpectFeatures(e) => e.spec.as_ref(),
            Action::Consistent(e) => e.spec.as_ref(),
            Action::Send { .. } | Action::SendRaw { .. } | Action::Disconnect { .. } | Action::Authenticate { .. } => {
                None
            }
        }
    }

    /// One line for reports, e.g. "alice1 sends <message id='m1' to='${bob.bare}' type='chat'><body>hi</body></message>".
    pub fn description(&self) -> String {
        self.description_with(None)
    }

    /// The description, with the case's default deadline filled in when it is known.
    pub fn description_with(&self, default_within: Option<Duration>) -> String {
        let within = |w: Within| match (w, default_within) {
            (Within::Fixed(d), _) | (Within::Default, Some(d)) => fmt_duration(d),
            (Within::Default, None) => "the default deadline".to_string(),
        };
        let text = match &self.action {
            Action::Send { actor, xml, if_open: false } => format!("{actor} sends {}", one_line(xml.source())),
            Action::Send { actor, xml, if_open: true } => {
                format!("{actor} sends {} if its link is still open", one_line(xml.source()))
            }
            Action::SendRaw { actor, data } => format!("{actor} sends raw {}", one_line(data.source())),
            Action::Expect(e) => {
                let what: Vec<String> = e.alternatives.iter().map(Alternative::text).collect();
                let what = if what.len() == 1 { what.join("") } else { format!("any of: {}", what.join(" | ")) };
                format!("{} receives {what} within {}", e.actor, within(e.within))
            }
            Action::ExpectNone(e) => {
                let what = e.pattern.as_ref().map_or("any stanza".to_string(), |p| one_line(p.source()));
                let barrier = match &e.barrier {
                    Barrier::Marker { from } => format!("a marker from {from}"),
                    Barrier::Ping => "a ping to its server".to_string(),
                };
                format!("{} receives no {what} before {barrier} (within {})", e.actors.join(", "), within(e.within))
            }
            Action::ExpectUnordered(e) => {
                let items: Vec<String> = e
                    .items
                    .iter()
                    .map(|i| {
                        let after: Vec<String> = i.after.iter().map(|a| (a + 1).to_string()).collect();
                        let after =
                            if after.is_empty() { String::new() } else { format!(" (after {})", after.join(", ")) };
                        format!("{}: {}{after}", i.actor, one_line(i.pattern.source()))
                    })
                    .collect();
                format!("in any order within {}: {}", within(e.within), items.join("; "))
            }
            Action::ExpectSequence(e) => {
                let actor = e.items.first().map_or("", |i| i.actor.as_str());
                let items: Vec<String> = e.items.iter().map(|i| one_line(i.pattern.source())).collect();
                format!("{actor} receives in this order within {}: {}", within(e.within), items.join(", "))
            }
            Action::Iq(e) => format!(
                "{} sends {} and gets {} within {}",
                e.actor,
                one_line(e.request.source()),
                one_line(e.expect.source()),
                within(e.within)
            ),
            Action::ExpectClosed(e) => match &e.error {
                Some(cond) => format!("the server closes {}'s stream with {cond} within {}", e.actor, within(e.within)),
                None => format!("the server closes {}'s stream within {}", e.actor, within(e.within)),
            },
            Action::Connect { actor, outcome, condition, .. } => match (outcome, condition) {
                (ConnectOutcome::Connected, _) => format!("{actor} connects"),
                (ConnectOutcome::AsRequested, _) => {
                    format!("{actor} connects and is bound to the resource it asked for")
                }
                (ConnectOutcome::Refused, Some(c)) => format!("{actor} connects and is refused with {c}"),
                (ConnectOutcome::Refused, None) => format!("{actor} connects and is refused"),
                (ConnectOutcome::RefusedOrRenamed, _) => {
                    format!("{actor} connects and is refused or bound to another resource than requested")
                }
                (ConnectOutcome::Any, _) => format!("{actor} connects (a refusal is recorded, not an error)"),
            },
            Action::Disconnect { actor, abrupt: false } => format!("{actor} disconnects"),
            Action::Disconnect { actor, abrupt: true } => {
                format!("{actor}'s TCP connection is closed without closing the stream")
            }
            Action::Authenticate { actor, method } => format!("{actor} authenticates its s2s link ({method:?})"),
            Action::TlsProbe(p) => format!(
                "a {} STARTTLS handshake with {} offering only {} is {}",
                p.service.name(),
                p.role,
                p.version.name(),
                p.expect.name()
            ),
            Action::Register { account, outcome, condition, .. } => match (outcome, condition) {
                (RegisterOutcome::Registered, _) => format!("account {account} is registered in-band"),
                (RegisterOutcome::Refused, Some(c)) => {
                    format!("in-band registration of account {account} is refused with {c}")
                }
                (RegisterOutcome::Refused, None) => format!("in-band registration of account {account} is refused"),
                (RegisterOutcome::Any, _) => {
                    format!("account {account} is registered in-band (a refusal is recorded, not an error)")
                }
            },
            Action::ExpectFeatures(e) => {
                let otherwise = if e.end_if_absent { " (otherwise the case ends here)" } else { "" };
                format!("{}'s stream features offer {}{otherwise}", e.actor, one_line(e.pattern.source()))
            }
            Action::Consistent(e) => {
                format!("the steps tallied as {} agree on one of them", e.labels.join(" or "))
            }
        };
        match &self.origin {
            Some(o) => format!("[{} line {}] {text}", o.fixture, o.line),
            None => text,
        }
    }

    /// Where the step is written, for case messages: `line 12` or `line 12 (fixture f line 3)`.
    pub fn location(&self) -> String {
        match &self.origin {
            Some(o) => format!("line {} (fixture {} line {})", self.line, o.fixture, o.line),
            None => format!("line {}", self.line),
        }
    }
}

/// Some XML text on one line (whitespace runs collapsed), shortened for descriptions.
fn one_line(xml: &str) -> String {
    let line = xml.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 140 {
        let short: String = line.chars().take(139).collect();
        format!("{short}…")
    } else {
        line
    }
}

/// `5s`, `1m 30s`, `500ms`: how durations are written in scenario files.
pub fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
