//! One case: connect the scenario's actors and execute its steps.
//!
//! The executor talks to actors through the small [`Connector`]/[`Outbox`] traits, so its
//! logic (buffering, matching, verdicts) runs the same against real XMPP sessions
//! ([`run_case`]) and against in-memory channels in tests.
//!
//! How a case runs:
//! - gates first: a throwaway login checks that the servers advertise the features the case
//!   needs; if one does not, the case is skipped as unsupported;
//! - actors with `connect_at_start` log in in parallel; then, in declared order, each requests
//!   its roster (if `roster`) and sends its initial presence (if any);
//! - every actor has a pump task that answers the server's XEP-0199 pings (they stay in the
//!   transcript, never in results), acknowledges roster pushes (RFC 6121 §2.1.6; the push
//!   still reaches expects) and forwards everything to the executor, on one channel for all;
//! - stanzas nobody has asked for yet wait in a per-actor buffer: an expect first scans the
//!   buffer, then waits for new stanzas until its deadline; matches are removed, the rest stay;
//! - a failed check at MUST level fails the case and ends it (later steps are `not run`),
//!   SHOULD warns and MAY informs, and the case goes on; anything that stops the case from
//!   being carried out (login, send, a stream the server closed) is an error;
//! - at the end every session is closed, each within a deadline.

use crate::jid::Jid;
use crate::results::{ConnectionRecord, Level, SpecRef, StepOutcome, StepResult, Verdict};
use crate::scenario::pattern::{closest, match_element, start_tag, Captures};
use crate::scenario::{
    fmt_duration, AccountDecl, Action, ActorDecl, Alternative, Barrier, Bindings, Caps, ConnectOutcome, Consistent,
    Expect, ExpectClosed, ExpectFeatures, ExpectMany, ExpectNone, Gate, GateKind, GateTarget, IqStep, RegisterOutcome,
    Scenario, Script, Step, Template, LOCAL, S2S,
};
use crate::servers::Server;
use crate::xml::{Element, NS_CLIENT, NS_STREAM};
use crate::xmpp::{Incoming, Session, StanzaSender, Transcript};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const NS_PING: &str = "urn:xmpp:ping";
const NS_ROSTER: &str = "jabber:iq:roster";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_CAPS: &str = "http://jabber.org/protocol/caps";

/// A provisioned account.
#[derive(Clone, Debug)]
pub struct Account {
    /// Bare JID, e.g. `alice-3f9k2@prosody.lab`.
    pub jid: Jid,
    pub password: String,
}

/// Everything one case needs, already resolved.
pub struct CaseEnv<'a> {
    pub scenario: &'a Scenario,
    /// Role → server.
    pub roles: BTreeMap<String, &'a Server>,
    /// Account name (from the scenario) → provisioned account.
    pub accounts: BTreeMap<String, Account>,
    /// Deadline for each login step.
    pub step_timeout: Duration,
    pub max_stanza: usize,
    /// The run's harness for peer actors (`None`: the servers file configures none).
    pub harness: Option<&'a super::peer::HarnessEnv>,
    /// The case's unique tag (as given to [`account_localpart`]).
    pub tag: String,
}

pub struct CaseOutcome {
    pub verdict: Verdict,
    pub message: Option<String>,
    pub steps: Vec<StepResult>,
    pub connections: Vec<ConnectionRecord>,
}

/// Why a case cannot run on this assignment of servers, before anything connects (e.g. an IDN
/// account on a server that hosts no IDN domain): the message of its `skip` verdict.
pub fn unsupported(scenario: &Scenario, roles: &BTreeMap<String, &Server>) -> Option<String> {
    if let Some(policy) = scenario.s2s_policy {
        for server in roles.values() {
            match server.s2s_policy {
                Some(p) if p == policy => {}
                Some(p) => {
                    return Some(format!(
                        "unsupported: the case assumes the {policy} s2s policy; {} is configured {p} \
                         (servers file `s2s_policy`; the lab: `plugfest lab up --profile {policy}`)",
                        server.name
                    ))
                }
                None => {
                    return Some(format!(
                        "unsupported: the case assumes the {policy} s2s policy; {} declares none \
                         (servers file `s2s_policy`)",
                        server.name
                    ))
                }
            }
        }
    }
    for account in scenario.accounts.iter().filter(|a| a.idn) {
        let server = roles.get(&account.role)?;
        if server.idn_domain.is_none() {
            return Some(format!("unsupported: {} hosts no IDN domain", server.name));
        }
    }
    None
}

/// The expected failures the servers file declares for this case, each as
/// `<server>: <reason> (<link>)`.
pub fn declared_failures(scenario: &Scenario, roles: &BTreeMap<String, &Server>) -> Vec<String> {
    let mut declared = Vec::new();
    for (role, server) in roles {
        for f in server.expected_failures_for(&scenario.id, role) {
            let link = f.link.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
            let text = format!("{}: {}{link}", server.name, f.reason);
            if !declared.contains(&text) {
                declared.push(text);
            }
        }
    }
    declared
}

/// Turn a case's verdict into `xfail`/`xpass` when its failure is declared: a fail or warn is
/// expected (`xfail`, with the reason), a pass is news (`xpass`: the declaration is out of date).
/// Errors and skips say nothing about the declaration and stay as they are.
pub fn judge_expected(verdict: Verdict, message: Option<String>, declared: &[String]) -> (Verdict, Option<String>) {
    if declared.is_empty() {
        return (verdict, message);
    }
    let reasons = declared.join("; ");
    match verdict {
        Verdict::Fail | Verdict::Warn => {
            let what = message.map(|m| format!(": {m}")).unwrap_or_default();
            (Verdict::Xfail, Some(format!("expected failure ({reasons}){what}")))
        }
        Verdict::Pass => (
            Verdict::Xpass,
            Some(format!("passed, but declared as an expected failure ({reasons}): remove the declaration")),
        ),
        other => (other, message),
    }
}

/// The localpart to create for an account in a case with unique tag `tag`: `<name>-<tag>`, or
/// the account's `localpart:` template with `{tag}` replaced by the tag's digits (letters
/// would break the Bidi rules in right-to-left localparts).
pub fn account_localpart(decl: &AccountDecl, tag: &str) -> String {
    match &decl.localpart {
        None => format!("{}-{tag}", decl.name),
        Some(template) => template.replace("{tag}", &digits(tag)),
    }
}

/// The tag as digits: each character's code modulo 10, at least 6 of them.
pub fn digits(tag: &str) -> String {
    let mut d: String = tag.bytes().map(|b| char::from(b'0' + b % 10)).collect();
    while d.len() < 6 {
        d.push('0');
    }
    d
}

/// The server an account lives on: the role's server, on its IDN domain for IDN accounts.
pub fn account_server(server: &Server, idn: bool) -> Server {
    match (&server.idn_domain, idn) {
        (Some(domain), true) => Server { domain: domain.clone(), ..server.clone() },
        _ => server.clone(),
    }
}

/// Execute one case to the end; never panics, never waits without a deadline.
pub async fn run_case(env: CaseEnv<'_>) -> CaseOutcome {
    run_script(&env, &env.scenario.script).await
}

/// Run `script` with real XMPP sessions on the servers of `env`.
async fn run_script(env: &CaseEnv<'_>, script: &Script) -> CaseOutcome {
    let connector = XmppConnector { env, records: Mutex::new(Vec::new()), peer_legs: Default::default() };
    let mut world = World {
        // At least a few seconds: a roster request on a busy server can take a moment.
        setup_timeout: env.step_timeout.max(Duration::from_secs(2)),
        default_within: default_within(&env.roles),
        ..World::default()
    };
    for (role, server) in &env.roles {
        world.bindings.roles.insert(role.clone(), server.domain.clone());
        world.servers.insert(role.clone(), format!("{} ({})", server.name, server.domain));
        world.role_servers.insert(role.clone(), (*server).clone());
    }
    for (name, account) in &env.accounts {
        world.bindings.accounts.insert(name.clone(), account.jid.clone());
    }
    world.bindings.tag = digits(&env.tag);
    for actor in &script.actors {
        if let Some(server) = connector.server_of(actor) {
            world.places.insert(actor.name.clone(), format!("{} ({})", server.name, server.domain));
        }
    }
    let mut outcome = execute(script, &world, &connector).await;
    let peer_legs = std::mem::take(&mut *connector.peer_legs.lock().unwrap_or_else(|p| p.into_inner()));
    outcome.connections = connector.into_records();
    outcome.connections.extend(peer_legs.iter().map(super::peer::PeerLeg::connection));
    outcome
}

/// CATALOG §0.4: `local` when every role is played by one server, `s2s` when traffic may cross servers.
fn default_within(roles: &BTreeMap<String, &Server>) -> Duration {
    let servers: BTreeSet<&str> = roles.values().map(|s| s.name.as_str()).collect();
    if servers.len() <= 1 {
        LOCAL
    } else {
        S2S
    }
}

/// Logs actors in with `xmpp::Session` and keeps a record of every connection attempt.
struct XmppConnector<'a> {
    env: &'a CaseEnv<'a>,
    records: Mutex<Vec<Attempt>>,
    /// Every s2s leg of the case's peer actors, left there as each peer closes.
    peer_legs: super::peer::LegSink,
}

/// One connection attempt; its transcript keeps filling until the session is closed.
struct Attempt {
    actor: String,
    server: String,
    jid: String,
    tls: Option<crate::net::tls::TlsInfo>,
    transcript: Transcript,
}

impl XmppConnector<'_> {
    /// The server the actor's account is on (on its IDN domain for IDN accounts).
    fn server_of(&self, actor: &ActorDecl) -> Option<Server> {
        let decl = self.env.scenario.accounts.iter().find(|a| a.name == actor.account)?;
        self.env.roles.get(&decl.role).map(|s| account_server(s, decl.idn))
    }

    fn into_records(self) -> Vec<ConnectionRecord> {
        let attempts = self.records.into_inner().unwrap_or_else(|p| p.into_inner());
        attempts
            .into_iter()
            .map(|a| ConnectionRecord {
                actor: a.actor,
                server: a.server,
                jid: a.jid,
                tls: a.tls,
                s2s: None,
                transcript: a.transcript.entries(),
            })
            .collect()
    }

    fn record(&self, attempt: Attempt) {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(attempt);
    }

    /// XEP-0077 in-band registration of the scenario account `name` with the localpart its
    /// declaration gives (sent as written: the server, not plugfest, decides whether it is valid).
    async fn register_account(&self, name: &str) -> Result<String, ConnectError> {
        let bug = |what: &str| ConnectError::Failed(format!("{what} (a plugfest bug)"));
        let decl = self.env.scenario.accounts.iter().find(|a| a.name == name).ok_or_else(|| bug("unknown account"))?;
        let role_server = self.env.roles.get(&decl.role).ok_or_else(|| bug("the account's role has no server"))?;
        let server = account_server(role_server, decl.idn);
        let username = account_localpart(decl, &self.env.tag);
        let password = match self.env.accounts.get(name) {
            Some(a) => a.password.clone(),
            None => crate::run::accounts::random_tag(20),
        };
        let domain = Jid::parse(&server.domain).map_err(|e| ConnectError::Failed(e.to_string()))?;
        let params = server.client_params(domain, &password, None, self.env.step_timeout, self.env.max_stanza);
        let transcript = Transcript::new();
        let mut attempt = Attempt {
            actor: format!("register {name}"),
            server: server.name.clone(),
            jid: format!("{username}@{}", server.domain),
            tls: None,
            transcript: transcript.clone(),
        };
        let result = match crate::xmpp::client::connect_until_auth(&params, &transcript).await {
            Err(e) => Err(ConnectError::Failed(e.to_string())),
            Ok((mut stream, _features, tls)) => {
                attempt.tls = tls;
                let result = register_on(&mut stream, &username, &password, self.env.step_timeout).await;
                crate::xmpp::client::close_stream(&mut stream).await;
                result
            }
        };
        self.record(attempt);
        result.map(|()| format!("{username}@{}", server.domain))
    }

    /// A peer actor: the harness as a remote server (`run::peer`).
    async fn connect_peer(&self, actor: &ActorDecl, peer: &crate::scenario::peer::PeerDecl) -> Result<Link, String> {
        let harness = self.env.harness.ok_or(
            "this run has no harness for peer actors (the servers file has no `harness:` section; see \
             docs/servers-file.md)",
        )?;
        let target = peer.connects_to.as_ref().and_then(|role| self.env.roles.get(role).copied());
        super::peer::connect(harness, &actor.name, peer, target, self.env.step_timeout, self.peer_legs.clone()).await
    }
}

impl Connector for XmppConnector<'_> {
    fn register<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<String, ConnectError>> {
        Box::pin(self.register_account(account))
    }

    fn connect<'a>(&'a self, actor: &'a ActorDecl) -> BoxFuture<'a, Result<Link, ConnectError>> {
        Box::pin(async move {
            if let Some(peer) = &actor.peer {
                return self.connect_peer(actor, peer).await.map_err(ConnectError::Failed);
            }
            let server = self
                .server_of(actor)
                .ok_or_else(|| ConnectError::Failed("its account's role has no server (a plugfest bug)".into()))?;
            let account = self.env.accounts.get(&actor.account).ok_or_else(|| {
                ConnectError::Failed(format!("account {} was not provisioned (a plugfest bug)", actor.account))
            })?;
            let mut params = server.client_params(
                account.jid.clone(),
                &account.password,
                actor.resource.clone(),
                self.env.step_timeout,
                self.env.max_stanza,
            );
            if actor.lang.is_some() {
                params.lang = actor.lang.clone();
            }
            if actor.direct_tls {
                // Found by `_xmpps-client._tcp`, not the servers file's STARTTLS port.
                params.tls = crate::net::tls::TlsMode::Direct;
                params.target.port = None;
            }
            let transcript = Transcript::new();
            let result = Session::connect(&params, transcript.clone()).await;
            let mut attempt = Attempt {
                actor: actor.name.clone(),
                server: server.name.clone(),
                jid: account.jid.to_string(),
                tls: None,
                transcript,
            };
            match result {
                Ok(mut session) => {
                    attempt.jid = session.jid.to_string();
                    attempt.tls = session.tls.clone();
                    self.record(attempt);
                    let jid = session.jid.clone();
                    let features = session.features.clone();
                    let (tx, incoming) = mpsc::unbounded_channel();
                    let (close_tx, close_rx) = oneshot::channel();
                    let sender = session.sender();
                    let own_incoming = std::mem::replace(&mut session.incoming, mpsc::unbounded_channel().1);
                    tokio::spawn(drive(session, own_incoming, tx, close_rx));
                    let outbox = SessionOutbox { sender, close: Mutex::new(Some(close_tx)) };
                    Ok(Link { jid, features, outbox: Arc::new(outbox), incoming })
                }
                Err(e) => {
                    self.record(attempt);
                    Err(ConnectError::from_xmpp(&e))
                }
            }
        })
    }
}

/// XEP-0077 §3.1 on a stream ready for it (after STARTTLS, before SASL): ask for the form, then
/// submit `username` (as written) and `password`. An IQ error to either request is a refusal.
async fn register_on(
    stream: &mut crate::xmpp::stream::XmlStream,
    username: &str,
    password: &str,
    step_timeout: Duration,
) -> Result<(), ConnectError> {
    use crate::xmpp::client::{iq_roundtrip, NS_REGISTER};
    let step = "in-band registration";
    let mut early = Vec::new();
    let id = |k: &str| format!("plugfest-reg-{k}-{}", crate::run::accounts::random_tag(6));
    let get = Element::new("iq", NS_CLIENT)
        .with_attr("type", "get")
        .with_attr("id", id("form"))
        .with_child(Element::new("query", NS_REGISTER));
    let set = Element::new("iq", NS_CLIENT).with_attr("type", "set").with_attr("id", id("set")).with_child(
        Element::new("query", NS_REGISTER)
            .with_child(Element::new("username", NS_REGISTER).with_text(username))
            .with_child(Element::new("password", NS_REGISTER).with_text(password)),
    );
    for (what, request) in [("the registration form request", get), ("the registration", set)] {
        let answer = iq_roundtrip(stream, request, step, step_timeout, &mut early)
            .await
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        match answer.attr("type") {
            Some("result") => continue,
            Some("error") => return Err(register_refusal(what, &answer)),
            _ => return Err(ConnectError::Failed(format!("{what} was answered with {}", start_tag(&answer)))),
        }
    }
    Ok(())
}

/// An IQ error to a registration request, as a refusal with its defined condition.
fn register_refusal(what: &str, answer: &Element) -> ConnectError {
    let error = answer.child("error", NS_CLIENT);
    let condition = error
        .and_then(|e| e.elements().find(|c| c.ns == crate::xmpp::client::NS_STANZAS && c.name != "text"))
        .map_or("undefined-condition", |c| c.name.as_str())
        .to_string();
    let said = error.map_or("an error without an <error/> child".to_string(), crate::xmpp::client::describe_error);
    let kind = error.and_then(|e| e.attr("type")).map(|t| format!(" (type {t})")).unwrap_or_default();
    ConnectError::Refused { message: format!("{what} was refused: {said}{kind}"), condition }
}

/// Why a login did not end in a bound session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The server refused it: a SASL failure or a stanza error to the bind request, with the
    /// defined condition (e.g. `not-authorized`, `bad-request`, `conflict`).
    Refused { condition: String, message: String },
    /// Anything else: TCP, TLS, timeouts, stream errors, bad XML. The case cannot go on.
    Failed(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused { message, .. } | ConnectError::Failed(message) => f.write_str(message),
        }
    }
}

/// Conditions a server refuses a login or bind with (RFC 6120 §6.5, §8.3.3).
const REFUSALS: &[&str] = &[
    "aborted",
    "account-disabled",
    "credentials-expired",
    "encryption-required",
    "invalid-authzid",
    "invalid-mechanism",
    "malformed-request",
    "mechanism-too-weak",
    "not-authorized",
    "temporary-auth-failure",
    "bad-request",
    "conflict",
    "forbidden",
    "internal-server-error",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "policy-violation",
    "resource-constraint",
    "service-unavailable",
    "undefined-condition",
];

impl ConnectError {
    /// A SASL failure or a bind error with a defined condition is a refusal; the rest failed.
    pub fn from_xmpp(e: &crate::xmpp::XmppError) -> ConnectError {
        use crate::xmpp::XmppError;
        let refusal = matches!(e, XmppError::Auth { .. } | XmppError::Bind(_));
        match e.condition().filter(|c| refusal && REFUSALS.contains(c)) {
            Some(condition) => ConnectError::Refused { condition: condition.to_string(), message: e.to_string() },
            None => ConnectError::Failed(e.to_string()),
        }
    }
}

/// Owns a session: forwards what it receives until asked to close it, then closes it
/// gracefully (the session's own close is bounded) and says so.
async fn drive(
    mut session: Session,
    mut incoming: mpsc::UnboundedReceiver<Incoming>,
    tx: mpsc::UnboundedSender<Incoming>,
    mut close_rx: oneshot::Receiver<CloseRequest>,
) {
    let mut open = true;
    let done = loop {
        tokio::select! {
            item = incoming.recv(), if open => match item {
                Some(item) => {
                    open = !matches!(item, Incoming::Closed { .. });
                    let _ = tx.send(item);
                }
                None => open = false,
            },
            request = &mut close_rx => break request.ok(),
        }
    };
    match done {
        // Dropping the session drops the socket: the TCP connection closes, the stream stays open.
        Some(CloseRequest { abrupt: true, done }) => {
            drop(session);
            let _ = done.send(());
        }
        Some(CloseRequest { abrupt: false, done }) => {
            // Give the receiver back so `close` can wait for the server's end of the stream.
            session.incoming = incoming;
            session.close().await;
            let _ = done.send(());
        }
        None => {
            session.incoming = incoming;
            session.close().await;
        }
    }
}

/// Asks `drive` to end the session: gracefully, or by closing the TCP connection (`abrupt`).
struct CloseRequest {
    abrupt: bool,
    done: oneshot::Sender<()>,
}

struct SessionOutbox {
    sender: StanzaSender,
    close: Mutex<Option<oneshot::Sender<CloseRequest>>>,
}

impl SessionOutbox {
    fn end(&self, abrupt: bool) -> BoxFuture<'_, ()> {
        let request = self.close.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            let Some(request) = request else { return };
            let (done, finished) = oneshot::channel();
            if request.send(CloseRequest { abrupt, done }).is_ok() {
                let _ = finished.await;
            }
        })
    }
}

impl Outbox for SessionOutbox {
    fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.sender.send(&stanza).await.map_err(|e| e.to_string()) })
    }

    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.sender.send_raw(bytes).await.map_err(|e| e.to_string()) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.end(false)
    }

    fn abort(&self) -> BoxFuture<'_, ()> {
        self.end(true)
    }
}

/// A boxed future, so the connector traits can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the executor reaches actors: real XMPP sessions, or in-memory channels in tests.
pub trait Connector: Sync {
    /// Log `actor` in up to a bound resource. `Err` says why not (refused by the server, or
    /// failed), without naming the actor or server (the executor adds both).
    fn connect<'a>(&'a self, actor: &'a ActorDecl) -> BoxFuture<'a, Result<Link, ConnectError>>;

    /// Try to create the scenario account `account` by XEP-0077 in-band registration; `Ok`
    /// names the JID registered, a refusal is [`ConnectError::Refused`].
    fn register<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<String, ConnectError>> {
        Box::pin(async move { Err(ConnectError::Failed(format!("cannot register account {account} here"))) })
    }
}

/// An established connection of one actor.
pub struct Link {
    /// The full JID the server bound.
    pub jid: Jid,
    /// The stream features after authentication (for stream-feature gates).
    pub features: Element,
    pub outbox: Arc<dyn Outbox>,
    /// Everything the server sends, ending with one `Closed`.
    pub incoming: mpsc::UnboundedReceiver<Incoming>,
}

/// The sending side of a connection.
pub trait Outbox: Send + Sync {
    fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>>;
    /// Send bytes as they are (malformed-input cases).
    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), String>>;
    /// Close the stream gracefully. The executor bounds how long it waits.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Close the connection without closing the stream (an ungraceful disconnect, RFC 6121
    /// §4.5.2). By default: `close`.
    fn abort(&self) -> BoxFuture<'_, ()> {
        self.close()
    }
    /// Authenticate an s2s link now (peer actors only); the outcome lands in the buffer.
    fn authenticate(&self, _method: crate::scenario::peer::PeerAuth) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("only a peer actor (the harness as a server) authenticates a link".to_string()) })
    }
}

/// What the executor knows about the world besides the connections themselves.
#[derive(Clone, Debug)]
pub struct World {
    /// Roles' domains and accounts' JIDs; actors' JIDs and captures are added as the case runs.
    pub bindings: Bindings,
    /// Actor → where it connects, for messages, e.g. `ejabberd (ejabberd.lab)`.
    pub places: BTreeMap<String, String>,
    /// Role → its server, for messages, e.g. `ejabberd (ejabberd.lab)`.
    pub servers: BTreeMap<String, String>,
    /// Deadline for the roster request after login, for gate checks and for closing a stream.
    pub setup_timeout: Duration,
    /// The wait of expect-like steps that do not say (CATALOG §0.4).
    pub default_within: Duration,
    /// Role → its server, for steps that reach a server directly (`tls_probe`).
    pub role_servers: BTreeMap<String, Server>,
}

impl Default for World {
    fn default() -> World {
        World {
            bindings: Bindings::default(),
            places: BTreeMap::new(),
            servers: BTreeMap::new(),
            setup_timeout: Duration::from_secs(2),
            default_within: LOCAL,
            role_servers: BTreeMap::new(),
        }
    }
}

impl World {
    fn who(&self, actor: &str) -> String {
        match self.places.get(actor) {
            Some(place) => format!("{actor} on {place}"),
            None => actor.to_string(),
        }
    }
}

/// Run a script's steps against actors reached through `connector`. The outcome's
/// `connections` are left empty: recording connections is the connector's job.
pub async fn execute(script: &Script, world: &World, connector: &dyn Connector) -> CaseOutcome {
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut ex = Executor {
        script,
        world,
        connector,
        bindings: world.bindings.clone(),
        actors: BTreeMap::new(),
        events_tx,
        events,
        sessions: 0,
        links_seen: BTreeSet::new(),
        ended_early: false,
    };
    let mut steps = Vec::with_capacity(script.steps.len());
    let mut stop: Option<(Verdict, String)> = None;
    match ex.check_gates().await {
        Ok(None) => {}
        Ok(Some(unsupported)) => stop = Some((Verdict::Skip, unsupported)),
        Err(message) => stop = Some((Verdict::Error, message)),
    }
    if stop.is_none() {
        if let Err(message) = ex.start().await {
            stop = Some((Verdict::Error, message));
        }
    }
    let mut first_warning: Option<String> = None;
    for (index, step) in script.steps.iter().enumerate() {
        if stop.is_some() || ex.ended_early {
            steps.push(ex.not_run(index, step));
            continue;
        }
        let started = Instant::now();
        let mut result = match &step.action {
            Action::Consistent(c) => {
                let result = consistent(ex.step_result(index, step), c, &script.steps[..index], &steps);
                against_manifest(result, c, world)
            }
            _ => ex.run_step(index, step).await,
        };
        result.duration_ms = started.elapsed().as_millis() as u64;
        let located = |m: &Option<String>| format!("{}: {}", step.location(), m.as_deref().unwrap_or("failed"));
        match result.outcome {
            StepOutcome::Fail => stop = Some((Verdict::Fail, located(&result.message))),
            StepOutcome::Error => stop = Some((Verdict::Error, located(&result.message))),
            StepOutcome::Warn => {
                first_warning.get_or_insert_with(|| located(&result.message));
            }
            StepOutcome::Pass | StepOutcome::Info | StepOutcome::NotRun => {}
        }
        steps.push(result);
    }
    ex.close_all().await;
    let (verdict, message) = match (stop, first_warning) {
        (Some((v, m)), _) => (v, Some(m)),
        (None, Some(w)) => (Verdict::Warn, Some(w)),
        (None, None) => (Verdict::Pass, None),
    };
    CaseOutcome { verdict, message, steps, connections: Vec::new() }
}

/// A `consistent` step: count the votes of the earlier tallied steps that ran (holding or not) for
/// and against each label; the step holds when some label has votes for it and none against.
/// CATALOG §0.5: the servers file's `jid_profile` is a claim; a consistent behaviour that differs
/// from it warns.
fn against_manifest(mut result: StepResult, c: &Consistent, world: &World) -> StepResult {
    let Some(role) = &c.manifest else { return result };
    let Some(server) = world.role_servers.get(role) else { return result };
    let Some(declared) = &server.jid_profile else { return result };
    let message = result.message.clone().unwrap_or_default();
    let found = message.strip_prefix("consistently ").and_then(|m| m.split(" (").next()).unwrap_or_default();
    if result.outcome != StepOutcome::Pass || found.split(" and ").any(|l| l == declared) {
        return result;
    }
    result.outcome = StepOutcome::Warn;
    result.message = Some(format!(
        "{message}; but the servers file declares jid_profile: {declared} for {} (CATALOG §0.5: the manifest is a \
         claim, checked against behaviour)",
        server.name
    ));
    result
}

fn consistent(mut result: StepResult, c: &Consistent, earlier: &[Step], results: &[StepResult]) -> StepResult {
    // label → (lines voting for, lines voting against)
    let mut votes: BTreeMap<&str, (Vec<usize>, Vec<usize>)> =
        c.labels.iter().map(|l| (l.as_str(), (Vec::new(), Vec::new()))).collect();
    for (step, r) in earlier.iter().zip(results) {
        let Some(t) = &step.tally else { continue };
        let held = match r.outcome {
            StepOutcome::Pass => true,
            StepOutcome::Warn | StepOutcome::Info | StepOutcome::Fail => false,
            StepOutcome::Error | StepOutcome::NotRun => continue,
        };
        if let Some((yes, no)) = votes.get_mut(t.holds.as_str()) {
            if held { yes } else { no }.push(step.line);
        }
        if let Some((yes, no)) = t.fails.as_deref().and_then(|f| votes.get_mut(f)) {
            if held { no } else { yes }.push(step.line);
        }
    }
    let lines = |v: &[usize]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ");
    let counts: Vec<String> = c
        .labels
        .iter()
        .map(|l| {
            let (yes, no) = &votes[l.as_str()];
            let against = match no.len() {
                0 => String::new(),
                1 => format!(" (line {})", lines(no)),
                _ => format!(" (lines {})", lines(no)),
            };
            format!("{l}: {} for, {} against{against}", yes.len(), no.len())
        })
        .collect();
    let clean: Vec<&str> =
        c.labels.iter().map(String::as_str).filter(|l| votes[l].1.is_empty() && !votes[l].0.is_empty()).collect();
    result.received = counts.clone();
    if clean.is_empty() {
        return failed(result, c.spec.as_ref(), format!("mixed: no label has every vote ({})", counts.join("; ")));
    }
    result.message = Some(format!("consistently {} ({})", clean.join(" and "), counts.join("; ")));
    result
}

/// The outcome of a check that did not hold, by the level of the rule it checks (no ref: MUST).
fn outcome_for(spec: Option<&SpecRef>) -> StepOutcome {
    match spec.map_or(Level::MUST, |s| s.level) {
        Level::MUST => StepOutcome::Fail,
        Level::SHOULD => StepOutcome::Warn,
        Level::MAY => StepOutcome::Info,
    }
}

/// Something received by an actor's connection, tagged with the session it came from (so
/// late traffic of a closed session never reaches its successor).
struct Event {
    actor: String,
    session: u64,
    item: Incoming,
}

/// A connected actor.
struct Live {
    outbox: Arc<dyn Outbox>,
    pump: JoinHandle<()>,
    session: u64,
    /// Set once the stream has ended: `Some(reason)` or `None` for a clean close by the server.
    ended: Option<Option<String>>,
    /// The stream features the server offered after authentication (`expect_features`).
    features: Element,
}

#[derive(Default)]
struct ActorState {
    live: Option<Live>,
    /// Stanzas received and not yet matched by any expect, oldest first.
    buffer: VecDeque<Element>,
}

impl ActorState {
    /// Why the actor cannot receive any more: its stream ended or it is not connected.
    fn gone(&self) -> Option<Option<String>> {
        match &self.live {
            None => Some(Some("not connected".into())),
            Some(live) => live.ended.clone(),
        }
    }
}

type Actors = BTreeMap<String, ActorState>;

/// How a wait for stanzas ended.
enum Waited<T> {
    Found(T),
    TimedOut,
    /// The stream of this actor ended while waiting.
    Ended(String, Option<String>),
}

struct Executor<'a> {
    script: &'a Script,
    world: &'a World,
    connector: &'a dyn Connector,
    bindings: Bindings,
    actors: Actors,
    /// Every pump sends here; the executor sorts events into the actors' buffers.
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Sessions started so far (each gets the next number).
    sessions: u64,
    /// (sender's domain, receiver's domain) of every stanza that crossed domains in this case:
    /// once a direction has carried one, that s2s link is up.
    links_seen: BTreeSet<(String, String)>,
    /// Set by an `expect_features` step with `otherwise: end` that found no matching feature:
    /// the remaining steps are not run, the verdict stays as it is.
    ended_early: bool,
}

impl Executor<'_> {
    fn not_run(&self, index: usize, step: &Step) -> StepResult {
        let mut r = self.step_result(index, step);
        r.outcome = StepOutcome::NotRun;
        r
    }

    fn step_result(&self, index: usize, step: &Step) -> StepResult {
        StepResult {
            index,
            kind: step.kind().to_string(),
            line: step.line,
            description: step.description_with(Some(self.default_within(&step.action.receivers()))),
            outcome: StepOutcome::Pass,
            duration_ms: 0,
            spec: step.spec().cloned(),
            expected: None,
            received: Vec::new(),
            message: None,
        }
    }

    /// Check the script's gates with a throwaway login per account. `Ok(Some(why))`: unsupported.
    async fn check_gates(&mut self) -> Result<Option<String>, String> {
        let mut features: BTreeMap<String, Element> = BTreeMap::new();
        let mut verdict = Ok(None);
        for (i, gate) in self.script.gates.iter().enumerate() {
            if gate.kind == GateKind::Srv {
                match self.srv_published(gate).await {
                    Ok(None) => continue,
                    Ok(Some(why)) => verdict = Ok(Some(why)),
                    Err(e) => verdict = Err(e),
                }
                break;
            }
            let name = match gate.kind {
                GateKind::S2sFeature => format!("gate-s2s-{}", gate.role),
                _ => format!("gate:{}", gate.account),
            };
            if !features.contains_key(&name) {
                let decl = match gate.kind {
                    // A throwaway harness peer that stops after TLS: the features it was offered.
                    GateKind::S2sFeature => ActorDecl {
                        name: name.clone(),
                        peer: Some(Box::new(crate::scenario::peer::PeerDecl::probe(&gate.role))),
                        ..ActorDecl::default()
                    },
                    _ => ActorDecl {
                        name: name.clone(),
                        account: gate.account.clone(),
                        resource: Some(format!("plugfest-gate-{}", crate::run::accounts::random_tag(6))),
                        ..ActorDecl::default()
                    },
                };
                match self.connector.connect(&decl).await {
                    Ok(link) => {
                        features.insert(name.clone(), link.features.clone());
                        self.install(&decl, link);
                    }
                    Err(e) => {
                        verdict = Err(format!("gate check: {} on {}: {e}", gate.account, self.server(&gate.role)));
                        break;
                    }
                }
            }
            let supported = match gate.kind {
                GateKind::Srv => true, // checked above
                GateKind::StreamFeature => {
                    features.get(&name).is_some_and(|f| f.elements().any(|c| c.ns == gate.feature))
                }
                // `namespace` or `namespace child`: the feature, with that child element when named
                // (e.g. `urn:xmpp:features:dialback errors`, XEP-0220 §2.4.2).
                GateKind::S2sFeature => {
                    let mut words = gate.feature.split_whitespace();
                    let (ns, child) = (words.next().unwrap_or_default(), words.next());
                    features.get(&name).is_some_and(|f| {
                        f.elements().any(|c| c.ns == ns && child.is_none_or(|n| c.elements().any(|g| g.name == n)))
                    })
                }
                GateKind::DiscoFeature => match self.disco_has(&name, gate, i).await {
                    Ok(has) => has,
                    Err(e) => {
                        verdict = Err(e);
                        break;
                    }
                },
            };
            if !supported {
                let whose = match &gate.on {
                    GateTarget::Account(a) => {
                        format!(" for {}", self.bindings.accounts.get(a).map(|j| j.to_string()).unwrap_or_default())
                    }
                    GateTarget::Role(_) => String::new(),
                };
                verdict = Ok(Some(format!(
                    "unsupported: {} does not advertise {}{whose}",
                    self.server(&gate.role),
                    gate.feature
                )));
                break;
            }
        }
        for name in features.keys() {
            self.disconnect(name).await;
            self.actors.remove(name);
        }
        verdict
    }

    /// Offer only one TLS version in a STARTTLS handshake with the role's server (OpenSSL); the
    /// handshake must complete or be refused, as the step says.
    async fn tls_probe(&mut self, p: &crate::scenario::TlsProbe, mut result: StepResult) -> StepResult {
        use crate::net::resolve::{self, Service, Target};
        use crate::run::tls_probe::{probe, ProbeExpect, ProbeService};
        let Some(server) = self.world.role_servers.get(&p.role).cloned() else {
            return error(result, format!("no server plays role {} (a plugfest bug)", p.role));
        };
        result.expected = Some(format!("{} {}", p.version.name(), p.expect.name()));
        let (target, service) = match p.service {
            ProbeService::C2s => (server.target(), Service::Client),
            ProbeService::S2s => (Target { domain: server.domain.clone(), address: None, port: None }, Service::Server),
        };
        let addr = match resolve::resolve(&target, service).await {
            Ok(addrs) if !addrs.is_empty() => addrs[0],
            Ok(_) => return error(result, format!("{} has no address for {}", self.server(&p.role), p.service.name())),
            Err(e) => return error(result, format!("cannot resolve {}: {e:#}", self.server(&p.role))),
        };
        let timeout = self.world.setup_timeout.max(Duration::from_secs(10));
        let seen = match probe(addr, &server.domain, p.service == ProbeService::S2s, p.version, timeout).await {
            Ok(seen) => seen,
            Err(e) => return error(result, e),
        };
        result.received = vec![seen.summary.clone()];
        let wanted = p.expect == ProbeExpect::Accepted;
        if seen.accepted == wanted {
            return result;
        }
        let message = format!(
            "{} {} a {} handshake offering only {}: {}",
            self.server(&p.role),
            if seen.accepted { "accepted" } else { "refused" },
            p.service.name(),
            p.version.name(),
            seen.summary
        );
        failed(result, p.spec.as_ref(), message)
    }

    /// An SRV gate: `None` when the role's domain publishes the service, else why not.
    async fn srv_published(&self, gate: &Gate) -> Result<Option<String>, String> {
        use crate::net::resolve::{srv_lookup, Service};
        let service = [Service::Client, Service::Server, Service::DirectClient, Service::DirectServer]
            .into_iter()
            .find(|s| s.srv_prefix() == gate.feature)
            .ok_or_else(|| format!("unknown SRV service {} (a plugfest bug: the loader checks it)", gate.feature))?;
        let domain = self.bindings.roles.get(&gate.role).cloned().unwrap_or_default();
        let records = srv_lookup(&domain, service)
            .await
            .map_err(|e| format!("gate check: the SRV lookup for {} failed: {e:#}", self.server(&gate.role)))?;
        Ok(if records.iter().any(|r| r.target != ".") {
            None
        } else {
            Some(format!("unsupported: {} publishes no {}.{domain} SRV record", self.server(&gate.role), gate.feature))
        })
    }

    /// `prosody (prosody.lab)`: the server playing a role, for messages.
    fn server(&self, role: &str) -> String {
        self.world.servers.get(role).cloned().unwrap_or_else(|| format!("the server of {role}"))
    }

    /// Does the gate's disco#info list its feature? An error answer counts as "no".
    async fn disco_has(&mut self, actor: &str, gate: &Gate, index: usize) -> Result<bool, String> {
        let to = match &gate.on {
            GateTarget::Role(role) => self.bindings.roles.get(role).cloned(),
            GateTarget::Account(a) => self.bindings.accounts.get(a).map(|j| j.to_string()),
        }
        .ok_or("the gate's target is unknown (a plugfest bug)")?;
        let id = format!("plugfest-gate-{index}");
        let query = Element::new("iq", NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.as_str())
            .with_attr("to", to.as_str())
            .with_child(Element::new("query", NS_DISCO_INFO));
        self.send(actor, query).await?;
        let timeout = self.world.setup_timeout;
        match self.wait_for(actor, Instant::now() + timeout, |e| is_answer(e, &id)).await {
            Waited::Found(answer) => Ok(answer.attr("type") == Some("result")
                && answer.child("query", NS_DISCO_INFO).is_some_and(|q| {
                    q.elements().any(|f| f.name == "feature" && f.attr("var") == Some(gate.feature.as_str()))
                })),
            Waited::TimedOut => {
                Err(format!("gate check: disco#info to {to} got no answer within {}", fmt_duration(timeout)))
            }
            Waited::Ended(_, why) => Err(format!("gate check: {} during disco#info to {to}", ended_text(&why))),
        }
    }

    /// Log in every actor that connects at start (in parallel), then set each up in declared order.
    async fn start(&mut self) -> Result<(), String> {
        let starting: Vec<&ActorDecl> = self.script.actors.iter().filter(|a| a.connect_at_start).collect();
        let logins = futures_util::future::join_all(starting.iter().map(|a| self.connector.connect(a))).await;
        let mut failures = Vec::new();
        for (decl, login) in starting.iter().zip(logins) {
            match login {
                Ok(link) => self.install(decl, link),
                Err(e) => failures.push(format!("{}: {e}", self.world.who(&decl.name))),
            }
        }
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
        for decl in starting {
            self.set_up(decl).await?;
        }
        Ok(())
    }

    fn install(&mut self, decl: &ActorDecl, link: Link) {
        self.bindings.actors.insert(decl.name.clone(), link.jid.clone());
        self.sessions += 1;
        let session = self.sessions;
        let pump = tokio::spawn(pump(
            link.incoming,
            link.outbox.clone(),
            link.jid,
            decl.caps.clone(),
            decl.name.clone(),
            session,
            self.events_tx.clone(),
        ));
        let state = self.actors.entry(decl.name.clone()).or_default();
        state.buffer.clear();
        state.live = Some(Live { outbox: link.outbox, pump, session, ended: None, features: link.features });
    }

    /// After login: the roster request (which makes the resource "interested") and the
    /// initial presence, as the actor declares.
    async fn set_up(&mut self, decl: &ActorDecl) -> Result<(), String> {
        let who = self.world.who(&decl.name);
        if decl.roster {
            let id = format!("plugfest-roster-{}", decl.name);
            let get = Element::new("iq", NS_CLIENT)
                .with_attr("type", "get")
                .with_attr("id", id.as_str())
                .with_child(Element::new("query", NS_ROSTER));
            self.send(&decl.name, get).await?;
            let timeout = self.world.setup_timeout;
            let answer = match self.wait_for(&decl.name, Instant::now() + timeout, |e| is_answer(e, &id)).await {
                Waited::Found(e) => e,
                Waited::TimedOut => {
                    return Err(format!("{who}: the roster request got no answer within {}", fmt_duration(timeout)))
                }
                Waited::Ended(_, why) => return Err(format!("{who}: {} during the roster request", ended_text(&why))),
            };
            if answer.attr("type") != Some("result") {
                return Err(format!("{who}: the roster request failed: {}", answer.to_xml_in(NS_CLIENT)));
            }
        }
        if let Some(presence) = &decl.presence {
            let mut el = self.build(presence).map_err(|e| format!("{who}: cannot build the initial presence: {e}"))?;
            if let Some(caps) = &decl.caps {
                if el.child("c", NS_CAPS).is_none() {
                    el = el.with_child(caps_element(caps));
                }
            }
            let available = el.attr("type").is_none();
            self.send(&decl.name, el).await?;
            if available {
                self.await_own_presence(decl).await?;
            }
        }
        Ok(())
    }

    /// Wait until the server has processed the actor's initial presence, so the steps never race
    /// it: RFC 6121 §4.2.2 says the server MUST broadcast it to all of the user's available
    /// resources, "including the resource that generated the presence notification". The echo
    /// stays in the buffer for steps that check it.
    async fn await_own_presence(&mut self, decl: &ActorDecl) -> Result<(), String> {
        let who = self.world.who(&decl.name);
        let Some(me) = self.bindings.actors.get(&decl.name).cloned() else { return Ok(()) };
        let echo = move |e: &Element| {
            e.is("presence", NS_CLIENT)
                && e.attr("type").is_none()
                && e.attr("from").and_then(|f| crate::jid::Jid::parse(f).ok()).is_some_and(|f| f == me)
        };
        let timeout = self.world.setup_timeout;
        let seen = self
            .wait_until(Instant::now() + timeout, |actors| {
                let state = actors.get_mut(&decl.name)?;
                if state.buffer.iter().any(&echo) {
                    return Some(Ok(()));
                }
                state.gone().map(Err)
            })
            .await;
        match seen {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(format!("{who}: {} while waiting for its initial presence echo", ended_text(&why))),
            None => Err(format!(
                "{who}: the server did not echo the initial presence within {} (RFC 6121 §4.2.2: it MUST broadcast it to \
                 the user's available resources, including the one that sent it)",
                fmt_duration(timeout)
            )),
        }
    }

    /// Substitute the template's variables and parse the result.
    fn build(&self, template: &Template) -> Result<Element, String> {
        let text = template.render(&self.bindings)?;
        crate::scenario::parse_stanza(&text).map_err(|(_, e)| format!("the XML does not parse: {e}"))
    }

    /// Substitute a pattern's variables and parse it; returns its text (for reports) too.
    fn pattern(&self, template: &Template) -> Result<(String, Element), String> {
        let text = template.render(&self.bindings).map_err(|e| format!("cannot build the expected stanza: {e}"))?;
        let el = crate::scenario::parse_pattern(&text)
            .map_err(|(_, e)| format!("the expected stanza does not parse after substitution: {e}"))?;
        Ok((text.trim().to_string(), el))
    }

    fn outbox(&mut self, actor: &str) -> Result<Arc<dyn Outbox>, String> {
        let who = self.world.who(actor);
        self.drain();
        let Some(live) = self.actors.get(actor).and_then(|s| s.live.as_ref()) else {
            return Err(format!("{who} is not connected"));
        };
        if let Some(why) = &live.ended {
            return Err(format!("{who}: cannot send, {}", ended_text(why)));
        }
        Ok(live.outbox.clone())
    }

    async fn send(&mut self, actor: &str, stanza: Element) -> Result<(), String> {
        let outbox = self.outbox(actor)?;
        outbox.send(stanza).await.map_err(|e| format!("{}: sending failed: {e}", self.world.who(actor)))
    }

    async fn send_raw(&mut self, actor: &str, bytes: Vec<u8>) -> Result<(), String> {
        let outbox = self.outbox(actor)?;
        outbox.send_raw(bytes).await.map_err(|e| format!("{}: sending failed: {e}", self.world.who(actor)))
    }

    /// Sort one event into its actor's buffer (or drop it: its session is over).
    fn absorb(&mut self, event: Event) {
        let Some(state) = self.actors.get_mut(&event.actor) else { return };
        let Some(live) = state.live.as_mut().filter(|l| l.session == event.session) else { return };
        match event.item {
            Incoming::Stanza(e) => {
                let sender = e.attr("from").and_then(|f| Jid::parse(f).ok());
                if let (Some(from), Some(me)) = (sender, self.bindings.actors.get(&event.actor)) {
                    if from.domain() != me.domain() {
                        self.links_seen.insert((from.domain().to_string(), me.domain().to_string()));
                    }
                }
                state.buffer.push_back(e)
            }
            Incoming::Closed { error } => live.ended = Some(error),
        }
    }

    /// The wait of an expect-like step that does not say (CATALOG §0.4): 20 s is for the *first*
    /// stanza over a new s2s link. Once every link *into* the receivers' servers has carried a
    /// stanza in this case, those links are up and delivery is as quick as local delivery.
    fn default_within(&self, receivers: &[&str]) -> Duration {
        if self.world.default_within <= LOCAL || receivers.is_empty() {
            return self.world.default_within;
        }
        let domains: BTreeSet<&String> = self.world.bindings.roles.values().collect();
        let links_up = receivers.iter().all(|actor| {
            let Some(me) = self.bindings.actors.get(*actor) else { return false };
            let to = me.domain().to_string();
            domains.iter().all(|from| **from == to || self.links_seen.contains(&((*from).clone(), to.clone())))
        });
        if links_up {
            LOCAL
        } else {
            self.world.default_within
        }
    }

    /// Sort everything that has already arrived.
    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.absorb(event);
        }
    }

    /// Wait until `check` finds what it looks for in the actors' buffers, at most until `deadline`.
    /// `check` runs on what is there first, then after each arrival, and once more at the deadline.
    async fn wait_until<T>(&mut self, deadline: Instant, mut check: impl FnMut(&mut Actors) -> Option<T>) -> Option<T> {
        loop {
            self.drain();
            if let Some(found) = check(&mut self.actors) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.absorb(event),
                // The channel cannot close (the executor holds a sender); the deadline passed.
                Ok(None) | Err(_) => {
                    self.drain();
                    return check(&mut self.actors);
                }
            }
        }
    }

    /// Take the first stanza (buffered or new) of `actor` that `wanted` accepts.
    async fn wait_for(&mut self, actor: &str, deadline: Instant, wanted: impl Fn(&Element) -> bool) -> Waited<Element> {
        let found = self
            .wait_until(deadline, |actors| {
                let state = actors.get_mut(actor)?;
                if let Some(i) = state.buffer.iter().position(&wanted) {
                    return state.buffer.remove(i).map(Waited::Found);
                }
                state.gone().map(|why| Waited::Ended(actor.to_string(), why))
            })
            .await;
        found.unwrap_or(Waited::TimedOut)
    }

    /// A stream the server ended since we last looked: the case cannot go on as written.
    /// `expecting_close` is the actor whose close the step checks.
    fn check_streams(&mut self, expecting_close: Option<&str>) -> Result<(), String> {
        self.drain();
        for (name, state) in &self.actors {
            if Some(name.as_str()) == expecting_close {
                continue;
            }
            if let Some(Live { ended: Some(why), .. }) = &state.live {
                return Err(format!("{}: {}", self.world.who(name), ended_text(why)));
            }
        }
        Ok(())
    }

    async fn run_step(&mut self, index: usize, step: &Step) -> StepResult {
        let mut result = self.step_result(index, step);
        let closing = match &step.action {
            Action::ExpectClosed(e) => Some(e.actor.as_str()),
            _ => None,
        };
        if let Err(message) = self.check_streams(closing) {
            result.outcome = StepOutcome::Error;
            result.message = Some(message);
            return result;
        }
        let default = self.default_within(&step.action.receivers());
        let done = match &step.action {
            Action::TlsProbe(p) => return self.tls_probe(p, result).await,
            Action::Authenticate { actor, method } => match self.outbox(actor) {
                Ok(outbox) => outbox.authenticate(*method).await.map_err(|e| format!("{}: {e}", self.world.who(actor))),
                Err(e) => Err(e),
            },
            Action::Send { actor, xml, if_open } => match self.build(xml) {
                Ok(el) => match self.send(actor, el).await {
                    // The server ended the peer's link: nothing to send on, which the step records.
                    Err(e) if *if_open && e.contains(super::peer::NO_LINK) => {
                        result.message = Some(format!("not sent: {}", super::peer::NO_LINK));
                        Ok(())
                    }
                    other => other,
                },
                Err(e) => Err(format!("{}: cannot build the stanza to send: {e}", self.world.who(actor))),
            },
            Action::SendRaw { actor, data } => match data.render_bytes(&self.bindings) {
                Ok(bytes) => self.send_raw(actor, bytes).await,
                Err(e) => Err(format!("{}: cannot build the data to send: {e}", self.world.who(actor))),
            },
            Action::Expect(expect) => return self.expect(expect, expect.within.or(default), result).await,
            Action::ExpectNone(e) => return self.expect_none(index, e, e.within.or(default), result).await,
            Action::ExpectUnordered(e) => return self.expect_unordered(e, e.within.or(default), result).await,
            Action::ExpectSequence(e) => return self.expect_sequence(e, e.within.or(default), result).await,
            Action::Iq(iq) => return self.iq(index, iq, iq.within.or(default), result).await,
            Action::ExpectClosed(e) => return self.expect_closed(e, e.within.or(default), result).await,
            Action::Connect { actor, outcome: ConnectOutcome::Connected, spec: None, .. } => self.connect(actor).await,
            Action::Connect { actor, outcome, condition, spec } => {
                return self.connect_graded(actor, *outcome, condition.as_deref(), spec.as_ref(), result).await
            }
            Action::Register { account, outcome, condition, spec } => {
                return self.register(account, *outcome, condition.as_deref(), spec.as_ref(), result).await
            }
            Action::ExpectFeatures(e) => return self.expect_features(e, result),
            // Judged by `execute` from the earlier steps' results.
            Action::Consistent(_) => Ok(()),
            Action::Disconnect { actor, abrupt: false } => {
                self.disconnect(actor).await;
                Ok(())
            }
            Action::Disconnect { actor, abrupt: true } => {
                self.abort(actor).await;
                Ok(())
            }
        };
        if let Err(message) = done {
            result.outcome = StepOutcome::Error;
            result.message = Some(message);
        }
        result
    }

    /// The stanzas an actor has received and nobody matched, serialised.
    fn unmatched(&self, actor: &str) -> Vec<Element> {
        self.actors.get(actor).map(|s| s.buffer.iter().cloned().collect()).unwrap_or_default()
    }

    async fn expect(&mut self, expect: &Expect, within: Duration, mut result: StepResult) -> StepResult {
        let mut patterns: Vec<(usize, Element)> = Vec::new();
        let mut texts = Vec::new();
        let mut closes: Vec<(usize, Option<String>)> = Vec::new();
        for (k, alt) in expect.alternatives.iter().enumerate() {
            match alt {
                Alternative::Stanza(t) => match self.pattern(t) {
                    Ok((text, p)) => {
                        texts.push(text);
                        patterns.push((k, p));
                    }
                    Err(e) => return error(result, e),
                },
                Alternative::Closed(c) => {
                    texts.push(alt.text());
                    closes.push((k, c.clone()));
                }
            }
        }
        let several = expect.alternatives.len() > 1;
        result.expected = Some(if several { texts.join("\n| ") } else { texts.join("") });
        let captures = self.bindings.captures.clone();
        let actor = expect.actor.as_str();
        // A single pattern with a literal id names one stanza: once a stanza of that kind with that
        // id has arrived and does not match, it is the answer, and waiting longer cannot change it.
        let correlated = match (several, patterns.first()) {
            (false, Some((_, p))) => {
                p.attr("id").filter(|id| !id.contains('{')).map(|id| (p.name.clone(), p.ns.clone(), id.to_string()))
            }
            _ => None,
        };
        let is_the_answer = |e: &Element| {
            correlated.as_ref().is_some_and(|(name, ns, id)| e.is(name, ns) && e.attr("id") == Some(id.as_str()))
        };
        let waited = self
            .wait_until(Instant::now() + within, |actors| {
                let state = actors.get_mut(actor)?;
                for (i, e) in state.buffer.iter().enumerate() {
                    for (k, p) in &patterns {
                        if let Ok(c) = match_element(p, e, &captures) {
                            let k = *k;
                            return state.buffer.remove(i).map(|e| Waited::Found(Ok((k, e, c))));
                        }
                    }
                }
                if let Some(answer) = state.buffer.iter().find(|e| is_the_answer(e)) {
                    return Some(Waited::Found(Err(answer.clone())));
                }
                state.gone().map(|why| Waited::Ended(actor.to_string(), why))
            })
            .await
            .unwrap_or(Waited::TimedOut);
        let result = match waited {
            Waited::Found(Ok((k, stanza, captures))) => {
                self.bindings.captures = captures;
                result.received = vec![stanza.to_xml_in(NS_CLIENT)];
                if several {
                    result.message = Some(format!("alternative {} of {} matched", k + 1, expect.alternatives.len()));
                }
                result
            }
            Waited::Found(Err(answer)) => {
                let pattern = patterns.first().map(|(_, p)| p);
                let why = match pattern.map(|p| match_element(p, &answer, &self.bindings.captures)) {
                    Some(Err(mismatch)) => mismatch.reason,
                    _ => "it matches after all".to_string(),
                };
                let message = format!(
                    "{actor} received the {} with id '{}', and it differs: {why}",
                    answer.name,
                    answer.attr("id").unwrap_or_default()
                );
                result.received = serialise(&self.unmatched(actor));
                failed(result, expect.spec.as_ref(), message)
            }
            Waited::Ended(_, why) if !closes.is_empty() => {
                let unmatched = self.unmatched(actor);
                let condition = stream_condition(&unmatched);
                result.received = serialise(&unmatched);
                let hit = closes.iter().find(|(_, want)| want.is_none() || *want == condition);
                match hit {
                    Some((k, _)) => {
                        result.message = Some(format!(
                            "alternative {} of {} matched: {}",
                            k + 1,
                            expect.alternatives.len(),
                            ended_text(&why)
                        ));
                        result
                    }
                    None => {
                        let got = condition.map_or_else(|| ended_text(&why), |c| format!("closed with {c}"));
                        let message = format!("{actor}'s stream ended ({got}), which no alternative allows");
                        failed(result, expect.spec.as_ref(), message)
                    }
                }
            }
            Waited::Ended(_, why) => self.ended_while_waiting(actor, &why, result),
            Waited::TimedOut => {
                let unmatched = self.unmatched(actor);
                let alternatives = if several { " any alternative" } else { "" };
                let mut message = format!(
                    "{actor} received nothing matching{alternatives} within {} ({})",
                    fmt_duration(within),
                    others(unmatched.len())
                );
                let candidates: Vec<String> =
                    patterns.iter().map(|(_, p)| self.closest_text(p, &unmatched)).filter(|t| !t.is_empty()).collect();
                if let Some(c) = candidates.first() {
                    message.push_str(c);
                }
                result.received = serialise(&unmatched);
                failed(result, expect.spec.as_ref(), message)
            }
        };
        // An expect that allows a close leaves the actor disconnected whatever happened (the loader relies on it).
        if !closes.is_empty() {
            self.disconnect(actor).await;
        }
        result
    }

    /// `; closest: <message …> differs: …` when some stanza came close to the pattern.
    fn closest_text(&self, pattern: &Element, candidates: &[Element]) -> String {
        match closest(pattern, candidates, &self.bindings.captures) {
            Some((stanza, why)) => format!("; closest: {} differs: {}", start_tag(stanza), why.reason),
            None => String::new(),
        }
    }

    fn ended_while_waiting(&self, actor: &str, why: &Option<String>, mut result: StepResult) -> StepResult {
        result.received = serialise(&self.unmatched(actor));
        let who = self.world.who(actor);
        error(result, format!("{who}: {} while waiting for this", ended_text(why)))
    }

    /// Nothing matching reaches the actors before their barriers (CATALOG §0.4).
    async fn expect_none(
        &mut self,
        index: usize,
        e: &ExpectNone,
        within: Duration,
        mut result: StepResult,
    ) -> StepResult {
        let pattern = match &e.pattern {
            None => None,
            Some(t) => match self.pattern(t) {
                Ok((text, p)) => {
                    result.expected = Some(format!("none of {text}"));
                    Some(p)
                }
                Err(msg) => return error(result, msg),
            },
        };
        // Send the barriers: each expecting actor gets its own.
        let tag = crate::run::accounts::random_tag(6);
        let mut barriers: Vec<(String, String)> = Vec::new();
        for (k, actor) in e.actors.iter().enumerate() {
            let id = format!("plugfest-barrier-{index}-{k}-{tag}");
            let sent = match &e.barrier {
                Barrier::Marker { from } => match self.bindings.actors.get(actor).cloned() {
                    Some(to) => {
                        let marker = Element::new("message", NS_CLIENT)
                            .with_attr("type", "normal")
                            .with_attr("to", to.to_string())
                            .with_attr("id", id.as_str())
                            .with_child(Element::new("body", NS_CLIENT).with_text(format!("plugfest barrier {id}")));
                        self.send(from, marker).await
                    }
                    None => Err(format!("{actor} has no JID yet (a plugfest bug)")),
                },
                Barrier::Ping => {
                    let ping = Element::new("iq", NS_CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", id.as_str())
                        .with_child(Element::new("ping", NS_PING));
                    self.send(actor, ping).await
                }
            };
            if let Err(message) = sent {
                return error(result, format!("cannot send the barrier: {message}"));
            }
            barriers.push((actor.clone(), id));
        }
        let is_barrier =
            |e: &Element, id: &str| e.attr("id") == Some(id) && (e.is("message", NS_CLIENT) || is_answer(e, id));
        // Wait for every barrier to arrive (or a stream to end).
        let ended = self
            .wait_until(Instant::now() + within, |actors| {
                let mut all = true;
                for (actor, id) in &barriers {
                    let state = actors.get(actor)?;
                    if !state.buffer.iter().any(|e| is_barrier(e, id)) {
                        if let Some(why) = state.gone() {
                            return Some(Some((actor.clone(), why)));
                        }
                        all = false;
                    }
                }
                all.then_some(None)
            })
            .await;
        // Whatever matches before each barrier (or in the whole buffer when it did not come) is a violation.
        let mut violations: Vec<(String, Element)> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for (actor, id) in &barriers {
            let own = self.bindings.actors.get(actor).map(|j| j.bare().to_string()).unwrap_or_default();
            let Some(state) = self.actors.get_mut(actor) else { continue };
            let at = state.buffer.iter().position(|e| is_barrier(e, id));
            let before = at.unwrap_or(state.buffer.len());
            for stanza in state.buffer.iter().take(before) {
                let hit = match &pattern {
                    Some(p) => match_element(p, stanza, &self.bindings.captures).is_ok(),
                    None => !is_ignorable(stanza, &own),
                };
                if hit {
                    violations.push((actor.clone(), stanza.clone()));
                }
            }
            match at {
                Some(i) => {
                    state.buffer.remove(i);
                }
                None => missing.push(actor.clone()),
            }
        }
        result.received = violations.iter().map(|(_, e)| e.to_xml_in(NS_CLIENT)).collect();
        if let Some((actor, stanza)) = violations.first() {
            let more = match violations.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            let barrier = barrier_text(&e.barrier);
            let message = format!("{actor} received {}{more} before {barrier}", start_tag(stanza));
            return failed(result, e.spec.as_ref(), message);
        }
        if let Some(Some((actor, why))) = ended {
            return self.ended_while_waiting(&actor, &why, result);
        }
        if !missing.is_empty() {
            let message = format!(
                "{} did not arrive at {} within {}: whether anything else would have cannot be told",
                barrier_text(&e.barrier),
                missing.join(", "),
                fmt_duration(within)
            );
            return error(result, message);
        }
        result
    }

    /// Every item matches a distinct stanza of its actor, in any order.
    async fn expect_unordered(&mut self, e: &ExpectMany, within: Duration, mut result: StepResult) -> StepResult {
        let mut items: Vec<Item> = Vec::new();
        let mut texts = Vec::new();
        for item in &e.items {
            match self.pattern(&item.pattern) {
                Ok((text, p)) => {
                    let after: Vec<String> = item.after.iter().map(|a| (a + 1).to_string()).collect();
                    let after = if after.is_empty() { String::new() } else { format!(" (after {})", after.join(", ")) };
                    texts.push(format!("{}: {text}{after}", item.actor));
                    items.push((item.actor.as_str(), p, item.after.as_slice()));
                }
                Err(msg) => return error(result, msg),
            }
        }
        result.expected = Some(texts.join("\n"));
        let captures = self.bindings.captures.clone();
        let waited = self
            .wait_until(Instant::now() + within, |actors| {
                let mut picks = Vec::new();
                let mut budget = ASSIGN_BUDGET;
                if let Some(caps) = assign_items(&items, actors, &mut picks, captures.clone(), &mut budget) {
                    return Some(Waited::Found((take(actors, &picks), caps)));
                }
                items
                    .iter()
                    .find_map(|(actor, ..)| actors.get(*actor)?.gone().map(|why| Waited::Ended(actor.to_string(), why)))
            })
            .await
            .unwrap_or(Waited::TimedOut);
        match waited {
            Waited::Found((stanzas, captures)) => {
                self.bindings.captures = captures;
                result.received = serialise(&stanzas);
                result
            }
            Waited::Ended(actor, why) => self.ended_while_waiting(&actor, &why, result),
            Waited::TimedOut => {
                let mut all_unmatched = Vec::new();
                let mut message = None;
                for (k, (actor, pattern, _)) in items.iter().enumerate() {
                    let unmatched = self.unmatched(actor);
                    let any = unmatched.iter().any(|s| match_element(pattern, s, &self.bindings.captures).is_ok());
                    if !any && message.is_none() {
                        message = Some(format!(
                            "{actor} received nothing matching item {} within {}{}",
                            k + 1,
                            fmt_duration(within),
                            self.closest_text(pattern, &unmatched)
                        ));
                    }
                    all_unmatched.extend(unmatched);
                }
                let message = message.unwrap_or_else(|| {
                    let unordered: Vec<Item> = items.iter().map(|(a, p, _)| (*a, p.clone(), &[][..])).collect();
                    let mut picks = Vec::new();
                    let mut budget = ASSIGN_BUDGET;
                    let without_order =
                        assign_items(&unordered, &self.actors, &mut picks, self.bindings.captures.clone(), &mut budget);
                    match (without_order, order_violation(&items, &picks)) {
                        (Some(_), Some((k, a))) => format!(
                            "{} received item {} before item {}, which must come first: the order is wrong",
                            items[k].0,
                            k + 1,
                            a + 1
                        ),
                        _ => format!(
                            "every item matches something, but no stanza may serve two items and that is what it would take (within {})",
                            fmt_duration(within)
                        ),
                    }
                });
                result.received = serialise(&all_unmatched);
                failed(result, e.spec.as_ref(), message)
            }
        }
    }

    /// The items arrive at one actor in this order (other stanzas may come in between).
    async fn expect_sequence(&mut self, e: &ExpectMany, within: Duration, mut result: StepResult) -> StepResult {
        let Some(actor) = e.items.first().map(|i| i.actor.clone()) else { return result };
        let mut patterns = Vec::new();
        let mut texts = Vec::new();
        for item in &e.items {
            match self.pattern(&item.pattern) {
                Ok((text, p)) => {
                    texts.push(text);
                    patterns.push(p);
                }
                Err(msg) => return error(result, msg),
            }
        }
        result.expected = Some(texts.join("\n"));
        let captures = self.bindings.captures.clone();
        let waited = self
            .wait_until(Instant::now() + within, |actors| {
                let state = actors.get_mut(actor.as_str())?;
                let (picks, caps) = in_order(&patterns, &state.buffer, &captures);
                if picks.len() == patterns.len() {
                    let picked: Vec<(String, usize)> = picks.iter().map(|i| (actor.clone(), *i)).collect();
                    return Some(Waited::Found((take(actors, &picked), caps)));
                }
                state.gone().map(|why| Waited::Ended(actor.clone(), why))
            })
            .await
            .unwrap_or(Waited::TimedOut);
        match waited {
            Waited::Found((stanzas, captures)) => {
                self.bindings.captures = captures;
                result.received = serialise(&stanzas);
                result
            }
            Waited::Ended(actor, why) => self.ended_while_waiting(&actor, &why, result),
            Waited::TimedOut => {
                let unmatched = self.unmatched(&actor);
                let (picks, caps) = in_order(&patterns, &unmatched, &self.bindings.captures);
                let k = picks.len();
                let pattern = &patterns[k];
                let earlier = picks
                    .last()
                    .and_then(|last| unmatched[..*last].iter().find(|s| match_element(pattern, s, &caps).is_ok()));
                let message = match earlier {
                    Some(s) => format!(
                        "{actor} received item {} ({}) before item {}: the order is wrong",
                        k + 1,
                        start_tag(s),
                        k
                    ),
                    None => format!(
                        "{actor} received {} of {} items in order within {}; nothing matching item {}{}",
                        k,
                        patterns.len(),
                        fmt_duration(within),
                        k + 1,
                        self.closest_text(pattern, &unmatched)
                    ),
                };
                result.received = serialise(&unmatched);
                failed(result, e.spec.as_ref(), message)
            }
        }
    }

    /// Send the request, then check the answer with its id.
    async fn iq(&mut self, index: usize, iq: &IqStep, within: Duration, mut result: StepResult) -> StepResult {
        let who = self.world.who(&iq.actor);
        let mut request = match self.build(&iq.request) {
            Ok(r) => r,
            Err(e) => return error(result, format!("{who}: cannot build the request: {e}")),
        };
        let id = match request.attr("id") {
            Some(id) => id.to_string(),
            None => {
                let id = format!("plugfest-iq-{index}");
                request.set_attr("id", id.as_str());
                id
            }
        };
        let (text, pattern) = match self.pattern(&iq.expect) {
            Ok(p) => p,
            Err(e) => return error(result, e),
        };
        result.expected = Some(text);
        if let Err(e) = self.send(&iq.actor, request).await {
            return error(result, e);
        }
        match self.wait_for(&iq.actor, Instant::now() + within, |e| is_answer(e, &id)).await {
            Waited::Found(answer) => {
                result.received = vec![answer.to_xml_in(NS_CLIENT)];
                match match_element(&pattern, &answer, &self.bindings.captures) {
                    Ok(captures) => {
                        self.bindings.captures = captures;
                        result
                    }
                    Err(why) => {
                        let message = format!("the answer {} differs: {}", start_tag(&answer), why.reason);
                        failed(result, iq.spec.as_ref(), message)
                    }
                }
            }
            Waited::Ended(actor, why) => self.ended_while_waiting(&actor, &why, result),
            Waited::TimedOut => {
                result.received = serialise(&self.unmatched(&iq.actor));
                let message = format!("{} got no answer to id '{id}' within {}", iq.actor, fmt_duration(within));
                failed(result, iq.spec.as_ref(), message)
            }
        }
    }

    /// A child of the actor's stream features (after authentication) matches the pattern.
    fn expect_features(&mut self, e: &ExpectFeatures, mut result: StepResult) -> StepResult {
        let who = self.world.who(&e.actor);
        let (text, pattern) = match self.pattern(&e.pattern) {
            Ok(p) => p,
            Err(m) => return error(result, m),
        };
        result.expected = Some(text);
        let Some(features) = self.actors.get(&e.actor).and_then(|s| s.live.as_ref()).map(|l| l.features.clone()) else {
            return error(result, format!("{who} is not connected"));
        };
        result.received = vec![features.to_xml_in(NS_CLIENT)];
        for offered in features.elements() {
            if let Ok(captures) = match_element(&pattern, offered, &self.bindings.captures) {
                self.bindings.captures = captures;
                result.received = vec![offered.to_xml_in(NS_CLIENT)];
                return result;
            }
        }
        let closest = self.closest_text(&pattern, &features.elements().cloned().collect::<Vec<_>>());
        let message = format!("{who}: no stream feature after authentication matches{closest}");
        if e.end_if_absent {
            // Graded by the ref when there is one (e.g. SHOULD: a warning), else recorded.
            self.ended_early = true;
            result.outcome = if e.spec.is_some() { outcome_for(e.spec.as_ref()) } else { StepOutcome::Info };
            result.message =
                Some(format!("{message}; the case ends here (otherwise: end), the remaining steps do not apply"));
            return result;
        }
        failed(result, e.spec.as_ref(), message)
    }

    /// The server closes the actor's stream; the actor is disconnected afterwards whatever happened.
    async fn expect_closed(&mut self, e: &ExpectClosed, within: Duration, mut result: StepResult) -> StepResult {
        let actor = e.actor.as_str();
        result.expected = Some(match &e.error {
            Some(c) => format!("<stream:error><{c} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
            None => "</stream:stream>".to_string(),
        });
        let closed = self.wait_until(Instant::now() + within, |actors| actors.get(actor).and_then(|s| s.gone())).await;
        let unmatched = self.unmatched(actor);
        let condition = stream_condition(&unmatched);
        result.received = serialise(&unmatched);
        self.disconnect(actor).await;
        let message = match (closed, &e.error, &condition) {
            (None, _, _) => format!("the server did not close {actor}'s stream within {}", fmt_duration(within)),
            (Some(_), None, _) => return result,
            (Some(_), Some(want), Some(got)) if want == got => return result,
            (Some(_), Some(want), Some(got)) => format!("{actor}'s stream was closed with {got}, not {want}"),
            (Some(why), Some(want), None) => {
                format!("{actor}'s stream ended without a stream error ({}), not with {want}", ended_text(&why))
            }
        };
        failed(result, e.spec.as_ref(), message)
    }

    async fn connect(&mut self, actor: &str) -> Result<(), String> {
        let Some(decl) = self.script.actor(actor) else { return Err(format!("unknown actor {actor}")) };
        let link = self.connector.connect(decl).await.map_err(|e| format!("{}: {e}", self.world.who(actor)))?;
        self.install(decl, link);
        self.set_up(decl).await
    }

    /// A `connect` whose outcome is checked: a refusal by the server is an outcome to grade,
    /// not an error; a login that failed otherwise (network, TLS, stream error) still is one.
    async fn connect_graded(
        &mut self,
        actor: &str,
        outcome: ConnectOutcome,
        condition: Option<&str>,
        spec: Option<&SpecRef>,
        mut result: StepResult,
    ) -> StepResult {
        let Some(decl) = self.script.actor(actor) else { return error(result, format!("unknown actor {actor}")) };
        let who = self.world.who(actor);
        let requested = decl.resource.clone();
        let expected = match (outcome, condition) {
            (ConnectOutcome::Connected, _) => "bound".to_string(),
            (ConnectOutcome::AsRequested, _) => format!("bound as {}", requested.as_deref().unwrap_or("?")),
            (ConnectOutcome::Refused, Some(c)) => format!("refused with {c}"),
            (ConnectOutcome::Refused, None) => "refused".to_string(),
            (ConnectOutcome::RefusedOrRenamed, _) => {
                format!("refused, or bound to another resource than {}", requested.as_deref().unwrap_or("?"))
            }
            (ConnectOutcome::Any, _) => "bound or refused".to_string(),
        };
        result.expected = Some(expected);
        match self.connector.connect(decl).await {
            Err(ConnectError::Failed(e)) => error(result, format!("{who}: {e}")),
            Err(ConnectError::Refused { condition: got, message }) => {
                result.received = vec![format!("refused: {message}")];
                let refusal_wanted =
                    matches!(outcome, ConnectOutcome::Refused | ConnectOutcome::RefusedOrRenamed | ConnectOutcome::Any);
                match condition {
                    _ if !refusal_wanted => failed(result, spec, format!("{who} was refused: {message}")),
                    Some(want) if want != got => {
                        failed(result, spec, format!("{who} was refused with {got}, not {want}: {message}"))
                    }
                    _ => {
                        result.message = Some(format!("{actor} was refused with {got}"));
                        result
                    }
                }
            }
            Ok(link) => {
                let bound = link.jid.clone();
                result.received = vec![format!("bound as {bound}")];
                let as_requested = requested.as_deref().is_some_and(|r| bound.resource() == Some(r));
                self.install(decl, link);
                if let Err(e) = self.set_up(decl).await {
                    return error(result, e);
                }
                let verdict = match outcome {
                    ConnectOutcome::Connected | ConnectOutcome::Any => Ok(()),
                    ConnectOutcome::AsRequested if as_requested => Ok(()),
                    ConnectOutcome::AsRequested => {
                        Err(format!("{who} asked for {:?} and was bound as {bound}", requested.unwrap_or_default()))
                    }
                    ConnectOutcome::Refused => Err(format!("{who} was not refused: bound as {bound}")),
                    ConnectOutcome::RefusedOrRenamed if as_requested => {
                        Err(format!("{who} was bound as {bound}, exactly the resource it asked for"))
                    }
                    ConnectOutcome::RefusedOrRenamed => Ok(()),
                };
                // Only `connected` and `as_requested` leave the actor connected (the loader relies on it).
                if !matches!(outcome, ConnectOutcome::Connected | ConnectOutcome::AsRequested) {
                    self.disconnect(actor).await;
                }
                match verdict {
                    Ok(()) => {
                        result.message = Some(format!("{actor} was bound as {bound}"));
                        result
                    }
                    Err(message) => failed(result, spec, message),
                }
            }
        }
    }

    /// An in-band registration attempt, graded like a `connect`: `registered` must create the
    /// account, `refused` must see an IQ error (with `condition`), `any` records which.
    async fn register(
        &mut self,
        account: &str,
        outcome: RegisterOutcome,
        condition: Option<&str>,
        spec: Option<&SpecRef>,
        mut result: StepResult,
    ) -> StepResult {
        result.expected = Some(match (outcome, condition) {
            (RegisterOutcome::Registered, _) => "registered".to_string(),
            (RegisterOutcome::Refused, Some(c)) => format!("refused with {c}"),
            (RegisterOutcome::Refused, None) => "refused".to_string(),
            (RegisterOutcome::Any, _) => "registered or refused".to_string(),
        });
        match self.connector.register(account).await {
            Err(ConnectError::Failed(e)) => error(result, format!("registering account {account}: {e}")),
            Err(ConnectError::Refused { condition: got, message }) => {
                result.received = vec![format!("refused: {message}")];
                match condition {
                    _ if outcome == RegisterOutcome::Registered => {
                        failed(result, spec, format!("account {account} was not registered: {message}"))
                    }
                    Some(want) if want != got => failed(
                        result,
                        spec,
                        format!("the registration of account {account} was refused with {got}, not {want}: {message}"),
                    ),
                    _ => {
                        result.message = Some(format!("the registration of account {account} was refused with {got}"));
                        result
                    }
                }
            }
            Ok(jid) => {
                result.received = vec![format!("registered as {jid}")];
                if outcome == RegisterOutcome::Refused {
                    failed(result, spec, format!("account {account} was registered as {jid}, not refused"))
                } else {
                    result.message = Some(format!("account {account} was registered as {jid}"));
                    result
                }
            }
        }
    }

    /// Close the actor's TCP connection without closing its stream, and forget what it had buffered.
    async fn abort(&mut self, actor: &str) {
        let Some(state) = self.actors.get_mut(actor) else { return };
        state.buffer.clear();
        if let Some(live) = state.live.take() {
            live.pump.abort();
            let _ = tokio::time::timeout(self.world.setup_timeout, live.outbox.abort()).await;
        }
    }

    /// Close the actor's stream (bounded) and forget what it had buffered.
    async fn disconnect(&mut self, actor: &str) {
        let Some(state) = self.actors.get_mut(actor) else { return };
        state.buffer.clear();
        if let Some(live) = state.live.take() {
            close_live(live, self.world.setup_timeout).await;
        }
    }

    async fn close_all(&mut self) {
        let timeout = self.world.setup_timeout;
        let closing = self.actors.values_mut().filter_map(|s| s.live.take()).map(|live| close_live(live, timeout));
        futures_util::future::join_all(closing).await;
    }
}

/// Most assignments `expect_unordered` tries before giving up on one arrival.
const ASSIGN_BUDGET: usize = 100_000;

/// An item of `expect_unordered`: its actor, pattern, and the earlier items it must follow.
type Item<'a> = (&'a str, Element, &'a [usize]);

/// Pick a distinct buffered stanza for each item (backtracking, items in order so captures flow
/// from one item to the next), each after the stanzas of the items it must follow.
/// `picks` gets (actor, buffer index) per item.
fn assign_items(
    items: &[Item],
    actors: &Actors,
    picks: &mut Vec<(String, usize)>,
    captures: Captures,
    budget: &mut usize,
) -> Option<Captures> {
    let Some(((actor, pattern, after), rest)) = items.split_first() else { return Some(captures) };
    let buffer = &actors.get(*actor)?.buffer;
    // Items name earlier items of the same actor (checked at load), which are picked already.
    let not_before = after.iter().filter_map(|a| picks.get(*a).map(|(_, j)| j + 1)).max().unwrap_or(0);
    for (i, stanza) in buffer.iter().enumerate().skip(not_before) {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        if picks.iter().any(|(a, j)| a == actor && *j == i) {
            continue;
        }
        if let Ok(caps) = match_element(pattern, stanza, &captures) {
            picks.push((actor.to_string(), i));
            if let Some(done) = assign_items(rest, actors, picks, caps, budget) {
                return Some(done);
            }
            picks.pop();
        }
    }
    None
}

/// In an assignment made without the order constraints: an item (k) whose stanza came before that
/// of an item (a) it must follow.
fn order_violation(items: &[Item], picks: &[(String, usize)]) -> Option<(usize, usize)> {
    items.iter().enumerate().find_map(|(k, (_, _, after))| {
        after.iter().find(|a| picks.get(**a).zip(picks.get(k)).is_some_and(|(x, y)| y.1 < x.1)).map(|a| (k, *a))
    })
}

/// The earliest stanzas matching the patterns in order: their indices (as many as could be
/// found) and the captures so far.
fn in_order<'a>(
    patterns: &[Element],
    stanzas: impl IntoIterator<Item = &'a Element>,
    captures: &Captures,
) -> (Vec<usize>, Captures) {
    let stanzas: Vec<&Element> = stanzas.into_iter().collect();
    let mut picks = Vec::new();
    let mut caps = captures.clone();
    let mut from = 0;
    for pattern in patterns {
        let found = stanzas
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(i, s)| match_element(pattern, s, &caps).ok().map(|c| (i, c)));
        let Some((i, c)) = found else { break };
        picks.push(i);
        caps = c;
        from = i + 1;
    }
    (picks, caps)
}

/// Remove the picked stanzas from their buffers; returns them in pick order.
fn take(actors: &mut Actors, picks: &[(String, usize)]) -> Vec<Element> {
    let taken: Vec<Element> =
        picks.iter().filter_map(|(a, i)| actors.get(a).and_then(|s| s.buffer.get(*i)).cloned()).collect();
    let mut by_actor: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (a, i) in picks {
        by_actor.entry(a).or_default().push(*i);
    }
    for (a, mut indices) in by_actor {
        indices.sort_unstable_by(|x, y| y.cmp(x));
        if let Some(state) = actors.get_mut(a) {
            for i in indices {
                state.buffer.remove(i);
            }
        }
    }
    taken
}

/// The condition of the stream error among `stanzas`, if there is one.
fn stream_condition(stanzas: &[Element]) -> Option<String> {
    stanzas
        .iter()
        .find(|s| s.is("error", NS_STREAM))
        .and_then(|s| s.elements().find(|c| c.name != "text").map(|c| c.name.clone()))
}

/// Is `e` the answer (result or error) to the IQ request `id`?
fn is_answer(e: &Element, id: &str) -> bool {
    e.is("iq", NS_CLIENT) && e.attr("id") == Some(id) && matches!(e.attr("type"), Some("result" | "error"))
}

/// Traffic an `expect_none` without a pattern does not count (CATALOG §0.4 "always ignorable"):
/// presence of the actor's own account, the unavailable presence acknowledging a subscription
/// request, and carbon copies.
fn is_ignorable(e: &Element, own_bare: &str) -> bool {
    let from = e.attr("from").and_then(|f| Jid::parse(f).ok());
    if e.is("presence", NS_CLIENT) {
        let own = from.as_ref().is_some_and(|j| j.bare().to_string() == own_bare);
        let ack = e.attr("type") == Some("unavailable") && from.as_ref().is_some_and(|j| j.is_bare());
        return own || ack;
    }
    e.is("message", NS_CLIENT) && e.elements().any(|c| c.ns == NS_CARBONS)
}

fn barrier_text(b: &Barrier) -> String {
    match b {
        Barrier::Marker { from } => format!("the marker from {from}"),
        Barrier::Ping => "the answer to its ping".to_string(),
    }
}

fn serialise(stanzas: &[Element]) -> Vec<String> {
    stanzas.iter().map(|e| e.to_xml_in(NS_CLIENT)).collect()
}

fn error(mut result: StepResult, message: String) -> StepResult {
    result.outcome = StepOutcome::Error;
    result.message = Some(message);
    result
}

fn failed(mut result: StepResult, spec: Option<&SpecRef>, message: String) -> StepResult {
    result.outcome = outcome_for(spec);
    result.message = Some(message);
    result
}

async fn close_live(live: Live, timeout: Duration) {
    live.pump.abort();
    // The close is graceful when the server plays along; it never holds the case up for long.
    let _ = tokio::time::timeout(timeout, live.outbox.close()).await;
}

fn ended_text(why: &Option<String>) -> String {
    match why {
        None => "the server closed the stream".to_string(),
        Some(why) => format!("the stream ended: {why}"),
    }
}

/// "2 other stanzas arrived": everything unmatched in the actor's buffer, whenever it came.
fn others(n: usize) -> String {
    match n {
        0 => "nothing else arrived".to_string(),
        1 => "1 other stanza arrived".to_string(),
        n => format!("{n} other stanzas arrived"),
    }
}

/// Forward an actor's incoming stanzas to the executor, answering the server's pings on the
/// way and acknowledging roster pushes.
async fn pump(
    mut incoming: mpsc::UnboundedReceiver<Incoming>,
    outbox: Arc<dyn Outbox>,
    own: Jid,
    caps: Option<Caps>,
    actor: String,
    session: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    let forward = |item: Incoming| events.send(Event { actor: actor.clone(), session, item }).is_ok();
    while let Some(item) = incoming.recv().await {
        if let Incoming::Stanza(e) = &item {
            if let Some(reply) = ping_reply(e, &own) {
                // A failed reply shows up as the stream ending; nothing to do here.
                let _ = outbox.send(reply).await;
                continue;
            }
            if let Some(ack) = roster_push_ack(e, &own) {
                let _ = outbox.send(ack).await;
            }
            if let Some(answer) = caps.as_ref().and_then(|c| caps_answer(e, c)) {
                let _ = outbox.send(answer).await;
            }
        }
        let last = matches!(item, Incoming::Closed { .. });
        if !forward(item) || last {
            return;
        }
    }
    forward(Incoming::Closed { error: Some("the connection ended".into()) });
}

/// The acknowledgement of a roster push (RFC 6121 §2.1.6: "the client MUST reply with an IQ of
/// type result"). Only genuine pushes: from the account itself or without `from` (a push from
/// elsewhere is to be ignored, §2.1.6).
fn roster_push_ack(e: &Element, own: &Jid) -> Option<Element> {
    if !e.is("iq", NS_CLIENT) || e.attr("type") != Some("set") || e.child("query", NS_ROSTER).is_none() {
        return None;
    }
    let from = e.attr("from");
    if from.is_some_and(|f| Jid::parse(f).map_or(true, |j| j != own.bare())) {
        return None;
    }
    let mut ack = Element::new("iq", NS_CLIENT).with_attr("type", "result").with_attr("id", e.attr("id")?);
    if let Some(from) = from {
        ack.set_attr("to", from);
    }
    Some(ack)
}

/// The `<c/>` an actor with caps puts in its presence (XEP-0115 §4).
fn caps_element(caps: &Caps) -> Element {
    Element::new("c", NS_CAPS)
        .with_attr("hash", "sha-1")
        .with_attr("node", caps.node.as_str())
        .with_attr("ver", caps.ver.as_str())
}

/// The answer to a disco#info query for the actor's caps node (`node#ver`, XEP-0115 §6.2),
/// from anyone: its identity and features, the node mirrored (XEP-0030 §3.2).
fn caps_answer(e: &Element, caps: &Caps) -> Option<Element> {
    if !e.is("iq", NS_CLIENT) || e.attr("type") != Some("get") {
        return None;
    }
    let query = e.child("query", NS_DISCO_INFO)?;
    let node = format!("{}#{}", caps.node, caps.ver);
    if query.attr("node") != Some(node.as_str()) {
        return None;
    }
    let (category, kind, lang, name) = &caps.identity;
    let mut identity = Element::new("identity", NS_DISCO_INFO)
        .with_attr("category", category.as_str())
        .with_attr("type", kind.as_str());
    if !name.is_empty() {
        identity.set_attr("name", name.as_str());
    }
    if !lang.is_empty() {
        identity.attrs.push(crate::xml::Attr {
            ns: crate::xml::NS_XML.into(),
            name: "lang".into(),
            value: lang.clone(),
        });
    }
    let mut answer = Element::new("query", NS_DISCO_INFO).with_attr("node", node.as_str()).with_child(identity);
    for f in &caps.features {
        answer = answer.with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", f.as_str()));
    }
    let mut reply = Element::new("iq", NS_CLIENT).with_attr("type", "result").with_attr("id", e.attr("id")?);
    if let Some(from) = e.attr("from") {
        reply.set_attr("to", from);
    }
    Some(reply.with_child(answer))
}

/// The result for an XEP-0199 ping from the actor's own server (not from other entities:
/// pings between users are test traffic).
fn ping_reply(e: &Element, own: &Jid) -> Option<Element> {
    if !e.is("iq", NS_CLIENT) || e.attr("type") != Some("get") || e.child("ping", NS_PING).is_none() {
        return None;
    }
    let from_server = match e.attr("from") {
        None => true,
        Some(f) => {
            Jid::parse(f).is_ok_and(|j| j.local().is_none() && j.resource().is_none() && j.domain() == own.domain())
        }
    };
    if !from_server {
        return None;
    }
    let mut reply = Element::new("iq", NS_CLIENT).with_attr("type", "result");
    if let Some(id) = e.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(from) = e.attr("from") {
        reply.set_attr("to", from);
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::SpecRef;
    use std::collections::BTreeSet;
    use std::path::Path;

    type Extra = Arc<dyn Fn(&mut NetState, &str, &Element) + Send + Sync>;

    /// A tiny in-memory server: routes stanzas with a `to` by JID (stamping `from`), answers
    /// roster gets, and lets a test add behaviour with `extra`.
    #[derive(Default)]
    struct FakeNet {
        /// Account name → bare JID.
        accounts: BTreeMap<String, String>,
        /// Actors whose login fails.
        refuse: BTreeSet<String>,
        /// Actors whose bind the server refuses, with this condition.
        refuse_bind: BTreeMap<String, String>,
        /// Actors bound to this resource instead of the one they ask for.
        rename: BTreeMap<String, String>,
        /// Answer roster gets with an error instead of a result.
        roster_error: bool,
        /// Called for every stanza an actor sends, after routing.
        extra: Option<Extra>,
        /// Stream features offered after authentication (their namespaces).
        stream_features: Vec<String>,
        /// More stream features offered after authentication, as they are.
        feature_elements: Vec<Element>,
        /// Features listed in disco#info of any domain or account.
        disco: Vec<String>,
        /// Account → what its in-band registration comes to: the JID, or the refusal's condition.
        registrations: BTreeMap<String, Result<String, String>>,
        state: Arc<Mutex<NetState>>,
    }

    #[derive(Default)]
    struct NetState {
        /// Actor → its JID and the sender into its incoming channel.
        live: BTreeMap<String, (Jid, mpsc::UnboundedSender<Incoming>)>,
        /// Every stanza actors sent: (actor, stanza).
        sent: Vec<(String, Element)>,
        connects: Vec<String>,
        closes: Vec<String>,
        /// Every `send_raw`: (actor, bytes as text).
        raw: Vec<(String, String)>,
        /// Lose the barriers' marker messages.
        drop_markers: bool,
        /// Actors whose connection was closed without a stream close.
        aborted: Vec<String>,
    }

    impl NetState {
        fn deliver(&self, actor: &str, e: Element) {
            if let Some((_, tx)) = self.live.get(actor) {
                let _ = tx.send(Incoming::Stanza(e));
            }
        }

        fn end(&mut self, actor: &str, error: Option<&str>) {
            if let Some((_, tx)) = self.live.remove(actor) {
                let _ = tx.send(Incoming::Closed { error: error.map(String::from) });
            }
        }

        fn route(&self, from_actor: &str, e: &Element) {
            let Some((from, _)) = self.live.get(from_actor) else { return };
            let Some(to) = e.attr("to").and_then(|t| Jid::parse(t).ok()) else { return };
            if self.drop_markers && e.attr("id").is_some_and(|id| id.starts_with("plugfest-barrier")) {
                return;
            }
            let mut stamped = e.clone();
            stamped.set_attr("from", from.to_string());
            for (name, (jid, _)) in &self.live {
                if (to.is_bare() && jid.bare() == to) || *jid == to {
                    self.deliver(name, stamped.clone());
                }
            }
        }

        fn sent_by(&self, actor: &str) -> Vec<String> {
            self.sent.iter().filter(|(a, _)| a == actor).map(|(_, e)| e.to_xml_in(NS_CLIENT)).collect()
        }
    }

    struct FakeOutbox {
        actor: String,
        roster_error: bool,
        extra: Option<Extra>,
        disco: Vec<String>,
        state: Arc<Mutex<NetState>>,
    }

    impl FakeOutbox {
        /// The server's own answer to an IQ addressed to it (roster get, ping, disco#info), if any.
        fn answer(&self, stanza: &Element) -> Option<Element> {
            if !stanza.is("iq", NS_CLIENT) || stanza.attr("type") != Some("get") {
                return None;
            }
            let id = stanza.attr("id").unwrap_or_default();
            let reply = |kind: &str| Element::new("iq", NS_CLIENT).with_attr("type", kind).with_attr("id", id);
            if stanza.child("query", NS_ROSTER).is_some() {
                return Some(reply(if self.roster_error { "error" } else { "result" }));
            }
            if stanza.child("ping", NS_PING).is_some() && stanza.attr("to").is_none() {
                return Some(reply("result"));
            }
            // Queries for a node (caps) go to whoever the stanza is addressed to; a domain
            // answers its own (mirroring the node).
            let to_domain = stanza.attr("to").is_some_and(|t| !t.contains('@'));
            if let Some(q) = stanza.child("query", NS_DISCO_INFO).filter(|q| q.attr("node").is_none() || to_domain) {
                let mut query = Element::new("query", NS_DISCO_INFO);
                if let Some(node) = q.attr("node") {
                    query.set_attr("node", node);
                }
                for f in &self.disco {
                    query = query.with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", f.as_str()));
                }
                return Some(reply("result").with_child(query));
            }
            None
        }
    }

    impl Outbox for FakeOutbox {
        fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                let mut net = self.state.lock().unwrap();
                if !net.live.contains_key(&self.actor) {
                    return Err("connection reset".into());
                }
                net.sent.push((self.actor.clone(), stanza.clone()));
                match self.answer(&stanza) {
                    Some(answer) => net.deliver(&self.actor, answer),
                    None => net.route(&self.actor, &stanza),
                }
                // Like a real server (RFC 6121 §4.2.2), echo available broadcast presence to the sender.
                let broadcast = stanza.attr("to").is_none() && stanza.attr("type").is_none();
                if stanza.is("presence", NS_CLIENT) && broadcast {
                    if let Some((jid, _)) = net.live.get(&self.actor) {
                        let echo = stanza.clone().with_attr("from", jid.to_string());
                        net.deliver(&self.actor, echo);
                    }
                }
                if let Some(extra) = &self.extra {
                    extra(&mut net, &self.actor, &stanza);
                }
                Ok(())
            })
        }

        /// Well-formed data is routed like a stanza; anything else ends the stream with not-well-formed.
        fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                let text = String::from_utf8_lossy(&bytes).to_string();
                let parsed = crate::scenario::parse_stanza(&text);
                let utf8 = std::str::from_utf8(&bytes).is_ok();
                let mut net = self.state.lock().unwrap();
                if !net.live.contains_key(&self.actor) {
                    return Err("connection reset".into());
                }
                net.raw.push((self.actor.clone(), text));
                match parsed {
                    Ok(stanza) if utf8 => net.route(&self.actor, &stanza),
                    _ => {
                        let condition = if utf8 { "not-well-formed" } else { "unsupported-encoding" };
                        let error = Element::new("error", NS_STREAM)
                            .with_child(Element::new(condition, "urn:ietf:params:xml:ns:xmpp-streams"));
                        net.deliver(&self.actor, error);
                        net.end(&self.actor, Some(&format!("stream error: {condition}")));
                    }
                }
                Ok(())
            })
        }

        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                let mut net = self.state.lock().unwrap();
                net.closes.push(self.actor.clone());
                net.end(&self.actor, None);
            })
        }

        fn abort(&self) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                let mut net = self.state.lock().unwrap();
                net.aborted.push(self.actor.clone());
                net.live.remove(&self.actor);
            })
        }
    }

    impl Connector for FakeNet {
        fn register<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<String, ConnectError>> {
            Box::pin(async move {
                match self.registrations.get(account) {
                    Some(Ok(jid)) => Ok(jid.clone()),
                    Some(Err(condition)) => Err(ConnectError::Refused {
                        condition: condition.clone(),
                        message: format!("the registration was refused: {condition}"),
                    }),
                    None => Err(ConnectError::Failed("connection refused".into())),
                }
            })
        }

        fn connect<'a>(&'a self, actor: &'a ActorDecl) -> BoxFuture<'a, Result<Link, ConnectError>> {
            Box::pin(async move {
                if self.refuse.contains(&actor.name) {
                    return Err(ConnectError::Failed("cannot connect to 127.0.0.1:5222: connection refused".into()));
                }
                if let Some(condition) = self.refuse_bind.get(&actor.name) {
                    let message = format!("resource binding failed: {condition}");
                    return Err(ConnectError::Refused { condition: condition.clone(), message });
                }
                let bare = &self.accounts[&actor.account];
                let resource = self.rename.get(&actor.name).or(actor.resource.as_ref());
                let jid = Jid::parse(&format!("{bare}/{}", resource.map_or("generated", String::as_str))).unwrap();
                let (tx, incoming) = mpsc::unbounded_channel();
                let mut net = self.state.lock().unwrap();
                net.live.insert(actor.name.clone(), (jid.clone(), tx));
                net.connects.push(actor.name.clone());
                let outbox = FakeOutbox {
                    actor: actor.name.clone(),
                    roster_error: self.roster_error,
                    extra: self.extra.clone(),
                    disco: self.disco.clone(),
                    state: self.state.clone(),
                };
                let mut features = Element::new("features", NS_STREAM);
                for ns in &self.stream_features {
                    features = features.with_child(Element::new("feature", ns.as_str()));
                }
                for e in &self.feature_elements {
                    features = features.with_child(e.clone());
                }
                Ok(Link { jid, features, outbox: Arc::new(outbox), incoming })
            })
        }
    }

    const HEAD: &str = "id: t\ntitle: test\nroles: [A, B]\naccounts:\n  alice: {server: A}\n  bob: {server: B}\n\
                        actors:\n  alice1: {account: alice, resource: r1}\n  bob1: {account: bob, resource: r1}\n";

    fn net() -> FakeNet {
        let mut n = FakeNet::default();
        n.accounts.insert("alice".into(), "alice-x@a.lab".into());
        n.accounts.insert("bob".into(), "bob-x@b.lab".into());
        n
    }

    fn world() -> World {
        let mut w = World { setup_timeout: Duration::from_secs(2), ..World::default() };
        w.bindings.roles.insert("A".into(), "a.lab".into());
        w.bindings.roles.insert("B".into(), "b.lab".into());
        w.bindings.accounts.insert("alice".into(), Jid::parse("alice-x@a.lab").unwrap());
        w.bindings.accounts.insert("bob".into(), Jid::parse("bob-x@b.lab").unwrap());
        w.bindings.tag = "123456".into();
        w.places.insert("alice1".into(), "fake (a.lab)".into());
        w.places.insert("bob1".into(), "fake (b.lab)".into());
        w
    }

    /// Run HEAD + `steps` (YAML list items) against `net`.
    async fn run(net: &FakeNet, steps: &str) -> CaseOutcome {
        run_yaml(net, &format!("{HEAD}steps:\n{steps}")).await
    }

    async fn run_yaml(net: &FakeNet, yaml: &str) -> CaseOutcome {
        let (_, script) = crate::scenario::parse_str(Path::new("t.yaml"), yaml).unwrap();
        execute(&script, &world(), net).await
    }

    fn outcomes(o: &CaseOutcome) -> Vec<StepOutcome> {
        o.steps.iter().map(|s| s.outcome).collect()
    }

    use StepOutcome::{Error as E, Fail as F, Info as I, NotRun as N, Pass as P, Warn as W};

    const CHAT: &str =
        "  - send: {as: alice1, xml: \"<message id='m1' to='${bob.bare}' type='chat'><body>hi ü</body></message>\"}\n";

    #[tokio::test]
    async fn expect_features_captures_and_caps_ver_checks_the_servers_hash() {
        let mut n = net();
        n.disco = vec!["urn:xmpp:ping".into(), "http://jabber.org/protocol/disco#info".into()];
        // What the fake server answers to disco#info, and the ver that hashes it.
        let mut query = Element::new("query", NS_DISCO_INFO);
        for f in &n.disco {
            query = query.with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", f.as_str()));
        }
        let good = crate::scenario::caps::ver_of(&query);
        let caps = |ver: &str| {
            Element::new("c", NS_CAPS)
                .with_attr("hash", "sha-1")
                .with_attr("node", "https://fake")
                .with_attr("ver", ver)
        };
        let steps = "  - expect_features: {actor: alice1, xml: \"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{=node}' ver='{=ver}'/>\", otherwise: end}\n\
                     \x20 - iq: {as: alice1, xml: \"<iq type='get' to='${A}'><query xmlns='http://jabber.org/protocol/disco#info' node='${node}#${ver}'/></iq>\", \
                     expect: \"<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='{ver}'/></iq>\", \
                     ref: {spec: XEP-0115, section: '5', level: SHOULD}}\n";
        n.feature_elements = vec![caps(&good)];
        let o = run(&n, steps).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Pass, vec![P, P]), "{:?}", o.message);
        assert!(o.steps[0].received[0].contains(&good), "{:?}", o.steps[0].received);
        let asked = n.state.lock().unwrap().sent_by("alice1");
        assert!(asked.iter().any(|s| s.contains(&format!("node='https://fake#{good}'"))), "{asked:?}");

        // A ver that does not hash the features: the SHOULD warns, naming both.
        let mut n2 = net();
        n2.disco = n.disco.clone();
        n2.feature_elements = vec![caps("AAAA")];
        let o = run(&n2, steps).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Warn, vec![P, W]), "{:?}", o.message);
        let m = o.message.unwrap();
        assert!(m.contains(&format!("hash to ver '{good}'")) && m.contains("not 'AAAA' (captured as {ver})"), "{m}");

        // No caps feature: `otherwise: end` ends the case here, without a failure.
        let o = run(&net(), steps).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Pass, vec![I, N]), "{:?}", o.message);
        let m = o.steps[0].message.as_deref().unwrap();
        assert!(
            m.contains("no stream feature after authentication matches") && m.contains("the case ends here"),
            "{m}"
        );
        // Without `otherwise: end` it is a failure (MUST without a ref).
        let o = run(&net(), &steps.replace(", otherwise: end", "")).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Fail, vec![F, N]), "{:?}", o.message);
        // With a SHOULD ref, the missing feature warns and the case still ends there.
        let should =
            steps.replace("otherwise: end}", "otherwise: end, ref: {spec: RFC6121, section: '12', level: SHOULD}}");
        let o = run(&net(), &should).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Warn, vec![W, N]), "{:?}", o.message);
    }

    #[tokio::test]
    async fn consistent_warns_when_the_behaviour_differs_from_the_declared_jid_profile() {
        let n = net();
        let may = |tally: &str| format!("ref: {{spec: RFC7622, section: '3.5', level: MAY, tally: {tally}}}");
        let steps = format!(
            "{CHAT}  - expect: {{to: bob1, xml: \"<message id='m1'/>\", {}}}\n\
             \x20 - consistent: {{tallies: [precis], manifest: B, ref: {{spec: RFC7622, section: A, level: SHOULD}}}}\n",
            may("precis")
        );
        let yaml = format!("{HEAD}steps:\n{steps}");
        let (_, script) = crate::scenario::parse_str(Path::new("t.yaml"), &yaml).unwrap();
        let with_profile = |profile: Option<&str>| {
            let mut w = world();
            let mut b = Server::example("b");
            b.jid_profile = profile.map(str::to_string);
            w.role_servers.insert("B".into(), b);
            w
        };
        let o = execute(&script, &with_profile(Some("precis")), &n).await;
        assert_eq!(o.verdict, Verdict::Pass, "{:?}", o.message);
        let o = execute(&script, &with_profile(None), &n).await;
        assert_eq!(o.verdict, Verdict::Pass, "nothing declared, nothing to compare: {:?}", o.message);
        let o = execute(&script, &with_profile(Some("stringprep")), &n).await;
        assert_eq!(o.verdict, Verdict::Warn, "{:?}", o.message);
        assert!(o.message.unwrap().contains("declares jid_profile: stringprep"));
    }

    #[tokio::test]
    async fn consistent_tallies_the_votes_of_earlier_steps() {
        let n = net();
        let may = |tally: &str| format!("ref: {{spec: RFC7622, section: '3.5', level: MAY, tally: {tally}}}");
        let base = format!(
            "{CHAT}  - expect: {{to: bob1, xml: \"<message id='m1'/>\", {}}}\n\
             \x20 - expect: {{to: bob1, within: 100ms, xml: \"<message id='nope'/>\", {}}}\n",
            may("precis"),
            may("{holds: stringprep, fails: precis}")
        );
        let verdict =
            "  - consistent: {tallies: [precis, stringprep], ref: {spec: RFC7622, section: A, level: SHOULD}}\n";
        let o = run(&n, &format!("{base}{verdict}")).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Pass, vec![P, P, I, P]), "{:?}", o.message);
        assert_eq!(
            o.steps[3].message.as_deref(),
            Some("consistently precis (precis: 2 for, 0 against; stringprep: 0 for, 1 against (line 13))")
        );
        // One more precis check that does not hold: mixed, a warning naming the line.
        let mixed = format!(
            "{base}  - expect: {{to: bob1, within: 100ms, xml: \"<message id='nope2'/>\", {}}}\n{verdict}",
            may("precis")
        );
        let o = run(&n, &mixed).await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Warn, vec![P, P, I, I, W]), "{:?}", o.message);
        let m = o.message.unwrap();
        assert!(m.contains("mixed: no label has every vote (precis: 2 for, 1 against (line 14)"), "{m}");
    }

    #[tokio::test]
    async fn a_routed_message_matches_and_the_case_passes() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: bob1, xml: \"<message from='${{alice1.full}}' to='${{bob.bare}}' id='m1'><body>hi ü</body></message>\", \
                 ref: {{spec: RFC6120, section: '8.1.2.1', level: MUST}}}}\n"
            ),
        )
        .await;
        assert_eq!((o.verdict, o.message.as_deref()), (Verdict::Pass, None));
        assert_eq!(outcomes(&o), [P, P]);
        let expect = &o.steps[1];
        assert_eq!(
            expect.expected.as_deref(),
            Some("<message from='alice-x@a.lab/r1' to='bob-x@b.lab' id='m1'><body>hi ü</body></message>")
        );
        assert_eq!(expect.received.len(), 1);
        assert_eq!(expect.spec.as_ref().map(|s: &SpecRef| s.section.as_str()), Some("8.1.2.1"));
        assert_eq!((o.steps[0].line, o.steps[1].line), (11, 12));
        // Set-up: a roster request, then initial presence, per actor in declared order; all closed at the end.
        let net = n.state.lock().unwrap();
        let firsts: Vec<(&str, &str)> = net.sent.iter().take(4).map(|(a, e)| (a.as_str(), e.name.as_str())).collect();
        assert_eq!(firsts, [("alice1", "iq"), ("alice1", "presence"), ("bob1", "iq"), ("bob1", "presence")]);
        assert_eq!(net.closes.len(), 2);
        assert!(net.live.is_empty());
    }

    #[tokio::test]
    async fn unrelated_stanzas_wait_in_the_buffer_for_later_expects() {
        let n = net();
        let o = run(
            &n,
            "  - send: {as: alice1, xml: \"<message id='m1' to='${bob.bare}'/>\"}\n\
               \x20 - send: {as: alice1, xml: \"<message id='m2' to='${bob.bare}'/>\"}\n\
               \x20 - expect: {to: bob1, xml: \"<message id='m2'/>\"}\n\
               \x20 - expect: {to: bob1, xml: \"<message id='m1'/>\"}\n\
               \x20 - send: {as: alice1, xml: \"<message id='m3' to='${bob.bare}'/>\"}\n\
               \x20 - expect: {to: bob1, xml: \"<message id='m3'/>\"}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, P, P, P, P, P]);
        assert_eq!(o.verdict, Verdict::Pass);
    }

    #[tokio::test]
    async fn a_must_mismatch_fails_and_stops_the_case() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: bob1, within: 30s, xml: \"<message from='${{alice1.bare}}' id='m1'/>\", \
                 ref: {{spec: RFC6120, section: '8.1.2.1', level: MUST}}}}\n{CHAT}"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, F, N]);
        assert_eq!(o.verdict, Verdict::Fail);
        let step = &o.steps[1];
        // The message with id m1 is the answer: the step settles on it instead of waiting out its 30s.
        let msg = step.message.as_deref().unwrap();
        assert_eq!(
            msg,
            "bob1 received the message with id 'm1', and it differs: attribute 'from' is 'alice-x@a.lab/r1' not 'alice-x@a.lab'"
        );
        assert_eq!(step.received.len(), 2);
        assert!(step.received.iter().any(|r| r.contains("hi ü")));
        assert_eq!(o.message.as_deref(), Some(&*format!("line 12: {msg}")));
        assert_eq!(o.steps[2].outcome, N);
    }

    #[tokio::test]
    async fn should_warns_may_informs_and_the_case_goes_on() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: bob1, within: 100ms, xml: \"<message id='nope'/>\", ref: {{spec: X, section: '1', level: MAY}}}}\n\
                   \x20 - expect: {{to: bob1, within: 100ms, xml: \"<message id='nope'/>\", ref: {{spec: X, section: '2', level: SHOULD}}}}\n\
                   \x20 - expect: {{to: bob1, xml: \"<message id='m1'/>\"}}\n"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, I, W, P]);
        assert_eq!(o.verdict, Verdict::Warn);
        assert!(o
            .message
            .unwrap()
            .starts_with("line 13: bob1 received nothing matching within 100ms (2 other stanzas arrived)"));
    }

    #[tokio::test]
    async fn an_expect_without_ref_is_must() {
        let o = run(&net(), "  - expect: {to: bob1, within: 50ms, xml: <message/>}\n").await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Fail, vec![F]));
        // Only bob1's own presence echo arrived.
        assert!(o.message.unwrap().contains("(1 other stanza arrived)"));
    }

    #[tokio::test]
    async fn a_login_failure_is_an_error_naming_actor_and_server() {
        let mut n = net();
        n.refuse.insert("bob1".into());
        let o = run(&n, CHAT).await;
        assert_eq!(o.verdict, Verdict::Error);
        assert_eq!(
            o.message.as_deref(),
            Some("bob1 on fake (b.lab): cannot connect to 127.0.0.1:5222: connection refused")
        );
        assert_eq!(outcomes(&o), [N]);
        // alice1 did log in: it is closed all the same.
        assert_eq!(n.state.lock().unwrap().closes, ["alice1"]);
    }

    #[tokio::test]
    async fn a_failed_roster_request_is_an_error() {
        let mut n = net();
        n.roster_error = true;
        let o = run(&n, CHAT).await;
        assert_eq!(o.verdict, Verdict::Error);
        assert!(o.message.unwrap().starts_with("alice1 on fake (a.lab): the roster request failed: <iq type='error'"));
    }

    #[tokio::test]
    async fn a_stream_the_server_closes_is_an_error() {
        let mut n = net();
        n.extra = Some(Arc::new(|net: &mut NetState, _: &str, e: &Element| {
            if e.attr("id") == Some("m1") {
                net.end("bob1", Some("stream error: conflict"));
            }
        }));
        let o = run(&n, &format!("{CHAT}  - expect: {{to: bob1, xml: \"<message id='other'/>\"}}\n{CHAT}")).await;
        assert_eq!(outcomes(&o), [P, E, N]);
        assert_eq!(o.verdict, Verdict::Error);
        // Noticed before the step or while waiting, depending on when the pump forwards it.
        let msg = o.steps[1].message.clone().unwrap();
        assert!(msg.starts_with("bob1 on fake (b.lab): the stream ended: stream error: conflict"), "{msg}");
    }

    #[tokio::test]
    async fn a_send_on_a_broken_connection_is_an_error() {
        let mut n = net();
        n.extra = Some(Arc::new(|net: &mut NetState, actor: &str, e: &Element| {
            if e.attr("id") == Some("m1") {
                net.live.remove(actor); // the connection dies without a word
            }
        }));
        let o = run(&n, &format!("{CHAT}{CHAT}")).await;
        assert_eq!(outcomes(&o), [P, E]);
        let msg = o.steps[1].message.clone().unwrap();
        assert!(msg.starts_with("alice1 on fake (a.lab): "), "{msg}");
    }

    #[tokio::test]
    async fn server_pings_are_answered_and_never_reach_expects() {
        let mut n = net();
        n.extra = Some(Arc::new(|net: &mut NetState, actor: &str, e: &Element| {
            if actor == "alice1" && e.attr("id") == Some("m1") {
                let ping = |id: &str, from: &str| {
                    Element::new("iq", NS_CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", id)
                        .with_attr("from", from)
                        .with_child(Element::new("ping", "urn:xmpp:ping"))
                };
                net.deliver("alice1", ping("srv", "a.lab"));
                net.deliver("alice1", ping("usr", "bob-x@b.lab/r1"));
            }
        }));
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: alice1, xml: \"<iq type='get' id='usr'/>\"}}\n\
                   \x20 - expect: {{to: alice1, within: 100ms, xml: \"<iq id='srv'/>\", ref: {{spec: X, section: '1', level: MAY}}}}\n"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, P, I]);
        let net = n.state.lock().unwrap();
        assert!(
            net.sent_by("alice1").contains(&"<iq type='result' id='srv' to='a.lab'/>".to_string()),
            "{:?}",
            net.sent
        );
        assert!(!net.sent_by("alice1").iter().any(|s| s.contains("id='usr'")));
    }

    #[tokio::test]
    async fn actors_reconnect_and_captures_flow_into_later_steps() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: bob1, xml: \"<message id='{{=mid}}' from='{{=sender}}'/>\"}}\n\
                   \x20 - disconnect: {{actor: bob1}}\n\
                   \x20 - connect: {{actor: bob1}}\n\
                   \x20 - send: {{as: alice1, xml: \"<message id='again-${{mid}}' to='${{bob1.full}}'/>\"}}\n\
                   \x20 - expect: {{to: bob1, xml: \"<message id='again-m1' from='{{sender}}'/>\"}}\n"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, P, P, P, P, P], "{:?}", o.message);
        let net = n.state.lock().unwrap();
        assert_eq!(net.connects.iter().filter(|a| *a == "bob1").count(), 2);
        assert_eq!(net.closes.iter().filter(|a| *a == "bob1").count(), 2);
    }

    #[tokio::test]
    async fn late_actors_and_custom_presence() {
        let n = net();
        let yaml = "id: t\ntitle: test\nroles: [A]\n\
                    actors:\n  alice1: {account: alice, server: A, resource: r1, roster: false, presence: \"<presence><priority>-1</priority></presence>\"}\n\
                    \x20 alice2: {account: alice, resource: r2, connect_at_start: false, presence: false}\n\
                    steps:\n  - connect: {actor: alice2}\n\
                    \x20 - send: {as: alice2, xml: \"<message to='${alice1.full}' id='x'/>\"}\n\
                    \x20 - expect: {to: alice1, xml: \"<message from='${alice2.full}'/>\"}\n";
        let o = run_yaml(&n, yaml).await;
        assert_eq!(outcomes(&o), [P, P, P], "{:?}", o.message);
        let net = n.state.lock().unwrap();
        assert_eq!(net.sent_by("alice1"), ["<presence><priority>-1</priority></presence>"]);
        assert_eq!(
            net.sent_by("alice2")[0],
            "<iq type='get' id='plugfest-roster-alice2'><query xmlns='jabber:iq:roster'/></iq>"
        );
        assert_eq!(net.sent_by("alice2").len(), 2, "no presence for alice2");
    }

    #[tokio::test]
    async fn expect_none_passes_when_only_the_barrier_comes() {
        let n = net();
        let o = run(
            &n,
            "  - send: {as: alice1, xml: \"<message id='m1' to='${bob.bare}' type='headline'/>\"}\n\
               \x20 - expect_none: {to: bob1, xml: \"<message type='chat'/>\", barrier: {marker: alice1}, within: 1s}\n\
               \x20 - expect: {to: bob1, xml: \"<message id='m1'/>\"}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, P, P], "{:?}", o.message);
        // The marker went to bob1's full JID and was taken out of the buffer.
        let net = n.state.lock().unwrap();
        let marker = net.sent_by("alice1").into_iter().find(|s| s.contains("plugfest barrier")).unwrap();
        assert!(marker.contains("to='bob-x@b.lab/r1'") && marker.contains("type='normal'"), "{marker}");
    }

    #[tokio::test]
    async fn expect_none_fails_when_the_stanza_arrives_before_the_barrier() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect_none: {{to: [bob1], xml: \"<message type='chat'/>\", barrier: {{marker: alice1}}, \
                 ref: {{spec: RFC6121, section: '8.5.2.1.1', level: MUST}}}}\n{CHAT}"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, F, N]);
        let step = &o.steps[1];
        let msg = step.message.as_deref().unwrap();
        assert!(msg.starts_with("bob1 received <message "), "{msg}");
        assert!(msg.ends_with("before the marker from alice1"), "{msg}");
        assert_eq!(step.received.len(), 1);
        assert_eq!(step.expected.as_deref(), Some("none of <message type='chat'/>"));
    }

    #[tokio::test]
    async fn expect_none_counts_earlier_unmatched_stanzas_and_ignores_own_presence() {
        let n = net();
        // No pattern: any stanza counts, except the presence echo of bob's own resource.
        let mut extra = net();
        extra.extra = Some(Arc::new(|net: &mut NetState, actor: &str, e: &Element| {
            if actor == "bob1" && e.is("presence", NS_CLIENT) {
                let echo = Element::new("presence", NS_CLIENT).with_attr("from", "bob-x@b.lab/r1");
                net.deliver("bob1", echo);
            }
        }));
        let o = run(&extra, "  - expect_none: {to: bob1, barrier: ping}\n").await;
        assert_eq!(outcomes(&o), [P], "{:?}", o.message);
        let o = run(&n, &format!("{CHAT}  - expect_none: {{to: bob1, barrier: ping}}\n")).await;
        assert_eq!(outcomes(&o), [P, F]);
        assert!(o.steps[1].message.as_deref().unwrap().ends_with("before the answer to its ping"));
    }

    #[tokio::test]
    async fn expect_none_with_a_lost_barrier_is_an_error_and_should_warns() {
        let n = net();
        n.state.lock().unwrap().drop_markers = true;
        let o = run(&n, "  - expect_none: {to: bob1, barrier: {marker: alice1}, within: 200ms}\n").await;
        assert_eq!(outcomes(&o), [E]);
        assert!(o.message.unwrap().contains("the marker from alice1 did not arrive at bob1 within 200ms"));
        let o = run(
            &net(),
            &format!(
                "{CHAT}  - expect_none: {{to: bob1, barrier: ping, ref: {{spec: X, section: '1', level: SHOULD}}}}\n"
            ),
        )
        .await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Warn, vec![P, W]));
    }

    #[tokio::test]
    async fn expect_unordered_matches_distinct_stanzas_across_actors() {
        let n = net();
        let o = run(
            &n,
            "  - send: {as: alice1, xml: \"<message id='b' to='${bob.bare}'/>\"}\n\
               \x20 - send: {as: bob1, xml: \"<message id='a1' to='${alice.bare}'/>\"}\n\
               \x20 - send: {as: bob1, xml: \"<message id='a2' to='${alice.bare}'/>\"}\n\
               \x20 - expect_unordered:\n\
               \x20     items:\n\
               \x20       - {to: alice1, xml: \"<message id='{=first}'/>\"}\n\
               \x20       - {to: alice1, xml: \"<message id='a1'/>\"}\n\
               \x20       - {to: bob1, xml: \"<message id='b'/>\"}\n\
               \x20 - send: {as: alice1, xml: \"<message id='${first}' to='${bob.bare}'/>\"}\n\
               \x20 - expect: {to: bob1, xml: \"<message id='a2'/>\"}\n",
        )
        .await;
        // The first item cannot take a1 (the second needs it): it captures a2.
        assert_eq!(outcomes(&o), [P, P, P, P, P, P], "{:?}", o.message);
        assert_eq!(o.steps[3].received.len(), 3);
        let o = run(
            &net(),
            "  - send: {as: bob1, xml: \"<message id='a1' to='${alice.bare}'/>\"}\n\
               \x20 - expect_unordered:\n\
               \x20     within: 150ms\n\
               \x20     items:\n\
               \x20       - {to: alice1, xml: \"<message id='a1'/>\"}\n\
               \x20       - {to: alice1, xml: \"<message id='a1'/>\"}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, F]);
        assert!(o.message.unwrap().contains("no stanza may serve two items"));
    }

    #[tokio::test]
    async fn expect_sequence_checks_the_order() {
        let send = |id: &str| format!("  - send: {{as: alice1, xml: \"<message id='{id}' to='${{bob1.full}}'/>\"}}\n");
        let seq =
            "  - expect_sequence: {to: bob1, within: 150ms, items: [\"<message id='s1'/>\", \"<message id='s2'/>\"]}\n";
        let o = run(&net(), &format!("{}{}{}{seq}", send("s1"), send("x"), send("s2"))).await;
        assert_eq!(outcomes(&o), [P, P, P, P], "{:?}", o.message);
        let o = run(&net(), &format!("{}{}{seq}", send("s2"), send("s1"))).await;
        assert_eq!(outcomes(&o), [P, P, F]);
        let msg = o.message.unwrap();
        assert!(
            msg.contains("received item 2 (<message") && msg.contains("before item 1: the order is wrong"),
            "{msg}"
        );
        let o = run(&net(), &format!("{}{seq}", send("s1"))).await;
        assert!(o.message.unwrap().contains("received 1 of 2 items in order within 150ms; nothing matching item 2"));
    }

    #[tokio::test]
    async fn absent_attributes_and_children() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: bob1, within: 100ms, xml: \"<message type='{{absent}}'/>\", ref: {{spec: X, section: '1', level: MAY}}}}\n\
                   \x20 - expect: {{to: bob1, within: 100ms, xml: \"<message><body pf:absent=''/></message>\", ref: {{spec: X, section: '1', level: MAY}}}}\n\
                   \x20 - expect: {{to: bob1, xml: \"<message subject='{{absent}}'><thread pf:absent=''/></message>\"}}\n"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, I, I, P], "{:?}", o.message);
        assert!(o.steps[1].message.as_deref().unwrap().contains("attribute 'type' is 'chat' but must be absent"));
        assert!(o.steps[2].message.as_deref().unwrap().contains("child <body> is present but must be absent"));
    }

    #[tokio::test]
    async fn the_default_deadline_is_the_worlds() {
        let (_, script) = crate::scenario::parse_str(
            Path::new("t.yaml"),
            &format!("{HEAD}steps:\n  - expect: {{to: bob1, xml: <message/>}}\n  - expect: {{to: bob1, within: local, xml: <message/>}}\n"),
        )
        .unwrap();
        let w = World { default_within: Duration::from_millis(120), ..world() };
        let started = Instant::now();
        let o = execute(&script, &w, &net()).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(o.message.unwrap().contains("within 120ms"));
        assert_eq!(o.steps[0].description, "bob1 receives <message/> within 120ms");
        assert_eq!(o.steps[1].description, "bob1 receives <message/> within 5s");
        let (p, e) = (Server::example("p"), Server::example("e"));
        let same: BTreeMap<String, &Server> = [("A".to_string(), &p), ("B".to_string(), &p)].into_iter().collect();
        let cross: BTreeMap<String, &Server> = [("A".to_string(), &p), ("B".to_string(), &e)].into_iter().collect();
        assert_eq!((default_within(&same), default_within(&cross)), (LOCAL, S2S));
    }

    #[tokio::test]
    async fn iq_sends_with_an_id_and_checks_the_answer() {
        let mut n = net();
        n.disco = vec!["urn:xmpp:ping".into()];
        let o = run(
            &n,
            "  - iq: {as: alice1, xml: \"<iq type='get' to='${A}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>\", \
             expect: \"<iq type='result' id='{=qid}'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:xmpp:ping'/></query></iq>\"}\n\
             \x20 - iq: {as: alice1, xml: \"<iq type='get' id='mine'><ping xmlns='urn:xmpp:ping'/></iq>\", expect: \"<iq type='error'/>\", \
             ref: {spec: X, section: '1', level: SHOULD}}\n\
             \x20 - iq: {as: alice1, within: 100ms, xml: \"<iq type='set' to='${bob.bare}'><x xmlns='urn:x'/></iq>\", expect: \"<iq type='result'/>\", \
             ref: {spec: X, section: '1', level: MAY}}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, W, I], "{:?}", o.message);
        let net = n.state.lock().unwrap();
        assert!(net.sent_by("alice1").iter().any(|s| s.contains("id='plugfest-iq-0'")), "{:?}", net.sent_by("alice1"));
        assert!(o.steps[1]
            .message
            .as_deref()
            .unwrap()
            .starts_with("the answer <iq type='result' id='mine'> differs: attribute 'type'"));
        assert_eq!(o.steps[2].message.as_deref(), Some("alice1 got no answer to id 'plugfest-iq-2' within 100ms"));
    }

    #[tokio::test]
    async fn send_raw_and_expect_closed() {
        let n = net();
        let o = run(
            &n,
            "  - send_raw: {as: alice1, data: \"<message to='${bob.bare}' id='r1'><body>a&amp;b ${bob.local}</body></message>\"}\n\
             \x20 - expect: {to: bob1, xml: \"<message id='r1'><body>a&amp;b bob-x</body></message>\"}\n\
             \x20 - send_raw: {as: alice1, data: \"<message><body>x</message>\"}\n\
             \x20 - expect_closed: {actor: alice1, error: not-well-formed}\n\
             \x20 - connect: {actor: alice1}\n\
             \x20 - send: {as: alice1, xml: \"<message to='${bob.bare}' id='again'/>\"}\n\
             \x20 - expect: {to: bob1, xml: \"<message id='again'/>\"}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, P, P, P, P, P, P], "{:?}", o.message);
        assert_eq!(n.state.lock().unwrap().raw[1].1, "<message><body>x</message>");
        // The wrong condition, and no close at all.
        let o = run(
            &net(),
            "  - send_raw: {as: alice1, data: \"<x\"}\n  - expect_closed: {actor: alice1, error: policy-violation}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, F]);
        assert_eq!(
            o.message.as_deref(),
            Some("line 12: alice1's stream was closed with not-well-formed, not policy-violation")
        );
        let o = run(&net(), "  - expect_closed: {actor: alice1, within: 100ms}\n").await;
        assert_eq!(o.message.as_deref(), Some("line 11: the server did not close alice1's stream within 100ms"));
        // Without expect_closed, a closed stream is an error at the next step.
        let o = run(&net(), &format!("  - send_raw: {{as: alice1, data: \"<x\"}}\n{CHAT}")).await;
        assert_eq!(outcomes(&o), [P, E]);
    }

    #[tokio::test]
    async fn any_of_passes_on_any_alternative_and_says_which() {
        let n = net();
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect: {{to: bob1, any_of: [\"<message id='m1' type='error'/>\", \"<message id='m1' type='chat'/>\"], ref: {{spec: RFC6120, section: '10.4.3', level: MUST}}}}\n"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        assert_eq!(o.steps[1].message.as_deref(), Some("alternative 2 of 2 matched"));
        assert!(o.steps[1].description.contains("any of: <message id='m1' type='error'/> | <message"));
        // None of them: the failure names the closest stanza.
        let o = run(
            &net(),
            &format!("{CHAT}  - expect: {{to: bob1, within: 200ms, any_of: [\"<message id='m1' type='error'/>\", \"<message id='m1' type='groupchat'/>\"]}}\n"),
        )
        .await;
        assert_eq!(outcomes(&o), [P, F]);
        let m = o.message.unwrap();
        assert!(m.contains("nothing matching any alternative within 200ms") && m.contains("closest"), "{m}");
        // A stream close is an alternative too: raw bytes that are not UTF-8 close the stream.
        let o = run(
            &net(),
            "  - send_raw: {as: alice1, data: '<message id=\"x\"><body>a\\xC0\\xAFb</body></message>'}\n\x20 - expect: {to: alice1, any_of: [\"<message type='error' id='x'/>\", {closed: unsupported-encoding}]}\n\x20 - connect: {actor: alice1}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, P, P], "{:?}", o.message);
        assert_eq!(o.steps[1].message.as_deref().map(|m| m.starts_with("alternative 2 of 2 matched")), Some(true));
        let o = run(
            &net(),
            "  - send_raw: {as: alice1, data: '<x'}\n\x20 - expect: {to: alice1, any_of: [\"<message type='error'/>\", {closed: unsupported-encoding}]}\n",
        )
        .await;
        assert_eq!(outcomes(&o), [P, F]);
        assert!(o.message.unwrap().contains("closed with not-well-formed), which no alternative allows"));
    }

    #[tokio::test]
    async fn raw_bytes_are_sent_as_written() {
        let n = net();
        let o = run(&n, "  - send_raw: {as: alice1, data: '<m>\\xED\\xA0\\x80</m>'}\n  - expect_closed: {actor: alice1, error: unsupported-encoding}\n").await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        assert_eq!(n.state.lock().unwrap().raw[0].1, "<m>\u{fffd}\u{fffd}\u{fffd}</m>");
    }

    #[tokio::test]
    async fn after_orders_items_of_an_unordered_set() {
        let steps = |first: &str, second: &str| {
            format!(
                "  - send: {{as: alice1, xml: \"<message id='{first}' to='${{bob.bare}}'/>\"}}\n\x20 - send: {{as: alice1, xml: \"<message id='{second}' to='${{bob.bare}}'/>\"}}\n\x20 - send: {{as: bob1, xml: \"<message id='c' to='${{alice.bare}}'/>\"}}\n\x20 - expect_unordered:\n      within: 300ms\n      items:\n\x20       - {{to: alice1, xml: \"<message id='c'/>\"}}\n\x20       - {{to: bob1, xml: \"<message id='a'/>\"}}\n\x20       - {{to: bob1, xml: \"<message id='b'/>\", after: 2}}\n"
            )
        };
        let o = run(&net(), &steps("a", "b")).await;
        assert_eq!(outcomes(&o), [P, P, P, P], "{:?}", o.message);
        assert!(o.steps[3].description.contains("<message id='b'/> (after 2)"));
        let o = run(&net(), &steps("b", "a")).await;
        assert_eq!(outcomes(&o), [P, P, P, F]);
        assert!(
            o.message.as_deref().unwrap().contains("bob1 received item 3 before item 2, which must come first"),
            "{:?}",
            o.message
        );
        // `after` names an earlier item of the same actor.
        let bad = format!("{HEAD}steps:\n{}", steps("a", "b").replace("after: 2", "after: 1"));
        let e = crate::scenario::parse_str(Path::new("t.yaml"), &bad).unwrap_err();
        assert!(e.to_string().contains("item 3 cannot come after item 1"), "{e}");
    }

    #[tokio::test]
    async fn connect_grades_refusals_and_renames() {
        let yaml = |connect: &str| {
            format!(
                "id: t\ntitle: test\nroles: [A]\nactors:\n  alice1: {{account: alice, server: A, resource: r1}}\n\x20 alice2: {{account: alice, resource: \"\\U0001F4F1phone\", connect_at_start: false}}\nsteps:\n  - connect: {connect}\n  - send: {{as: alice1, xml: \"<message to='${{alice1.full}}' id='after'/>\"}}\n"
            )
        };
        let refused = || {
            let mut n = net();
            n.refuse_bind.insert("alice2".into(), "bad-request".into());
            n
        };
        let should = "ref: {spec: RFC6120, section: '7.7.1', level: SHOULD}";
        // Refused as required: pass; refused with another condition: fail.
        let o = run_yaml(&refused(), &yaml("{actor: alice2, outcome: refused, condition: bad-request}")).await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        assert_eq!(o.steps[0].message.as_deref(), Some("alice2 was refused with bad-request"));
        let o = run_yaml(&refused(), &yaml("{actor: alice2, outcome: refused, condition: conflict}")).await;
        assert_eq!(outcomes(&o), [F, N]);
        assert!(o.message.unwrap().contains("refused with bad-request, not conflict"));
        // Wanted bound as requested, refused: graded by the ref (a warn here), and the case goes on.
        let o = run_yaml(&refused(), &yaml(&format!("{{actor: alice2, outcome: as_requested, {should}}}"))).await;
        assert_eq!(outcomes(&o), [W, P]);
        // Bound as requested: pass, and it stays connected.
        let o = run_yaml(&net(), &yaml(&format!("{{actor: alice2, outcome: as_requested, {should}}}"))).await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        assert_eq!(o.steps[0].message.as_deref(), Some("alice2 was bound as alice-x@a.lab/\u{1F4F1}phone"));
        // Renamed: what refused_or_renamed wants, what as_requested does not.
        let mut renamed = net();
        renamed.rename.insert("alice2".into(), "server-made".into());
        let o = run_yaml(&renamed, &yaml("{actor: alice2, outcome: refused_or_renamed}")).await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        assert!(renamed.state.lock().unwrap().closes.contains(&"alice2".to_string()), "disconnected afterwards");
        let o = run_yaml(&net(), &yaml("{actor: alice2, outcome: refused_or_renamed}")).await;
        assert_eq!(outcomes(&o), [F, N]);
        assert!(o.message.unwrap().contains("exactly the resource it asked for"));
        // Not refused although it should be.
        let o = run_yaml(&net(), &yaml("{actor: alice2, outcome: refused}")).await;
        assert_eq!(outcomes(&o), [F, N]);
        // A login that fails otherwise stays an error.
        let mut down = net();
        down.refuse.insert("alice2".into());
        let o = run_yaml(&down, &yaml("{actor: alice2, outcome: any}")).await;
        assert_eq!((outcomes(&o), o.verdict), (vec![E, N], Verdict::Error));
        // Which actors are connected after a graded connect is checked at load time.
        let bad = yaml("{actor: alice2, outcome: refused}").replace("alice1, xml", "alice2, xml");
        let e = crate::scenario::parse_str(Path::new("t.yaml"), &bad).unwrap_err();
        assert!(e.to_string().contains("alice2 is not connected at this step"), "{e}");
    }

    #[tokio::test]
    async fn register_grades_the_attempt_like_a_connect() {
        let yaml = |register: &str| {
            format!(
                "id: t\ntitle: test\nroles: [A]\naccounts:\n  alice: {{server: A}}\n  henry: {{server: A, localpart: \"h\\u2163-{{tag}}\", create: false}}\nactors:\n  alice1: {{account: alice, resource: r1}}\nsteps:\n  - register: {register}\n  - send: {{as: alice1, xml: \"<message to='${{alice1.full}}' id='m-${{henry.tag}}'/>\"}}\n"
            )
        };
        let mut n = net();
        n.registrations.insert("henry".into(), Err("not-acceptable".into()));
        let may = "ref: {spec: RFC7622, section: '3.5', level: MAY}";
        // Refused as required (any condition, or this one): pass.
        let o = run_yaml(&n, &yaml("{account: henry, outcome: refused}")).await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        assert_eq!(
            o.steps[0].message.as_deref(),
            Some("the registration of account henry was refused with not-acceptable")
        );
        assert_eq!(o.steps[0].received, ["refused: the registration was refused: not-acceptable"]);
        let o = run_yaml(&n, &yaml("{account: henry, outcome: refused, condition: not-acceptable}")).await;
        assert_eq!(outcomes(&o), [P, P]);
        let o = run_yaml(&n, &yaml("{account: henry, outcome: refused, condition: jid-malformed}")).await;
        assert_eq!(outcomes(&o), [F, N]);
        assert!(o.message.unwrap().contains("refused with not-acceptable, not jid-malformed"));
        // Wanted registered (the default), refused: graded by the ref, the case goes on.
        let o = run_yaml(&n, &yaml(&format!("{{account: henry, {may}}}"))).await;
        assert_eq!(outcomes(&o), [I, P]);
        let o = run_yaml(&n, &yaml("{account: henry, outcome: any}")).await;
        assert_eq!(outcomes(&o), [P, P]);
        // Registered although it should be refused.
        n.registrations.insert("henry".into(), Ok("henryiv-1@a.lab".into()));
        let o = run_yaml(&n, &yaml("{account: henry, outcome: refused}")).await;
        assert_eq!(outcomes(&o), [F, N]);
        assert!(o.message.unwrap().contains("was registered as henryiv-1@a.lab, not refused"));
        let o = run_yaml(&n, &yaml("{account: henry}")).await;
        assert_eq!(outcomes(&o), [P, P]);
        assert_eq!(o.steps[0].description, "account henry is registered in-band");
        // A registration that cannot be attempted is an error.
        let o = run_yaml(&net(), &yaml("{account: henry, outcome: any}")).await;
        assert_eq!((outcomes(&o), o.verdict), (vec![E, N], Verdict::Error));
        // Load time: only accounts, `condition` only with `refused`, and no login at start to an
        // account that is not created.
        let e = crate::scenario::parse_str(Path::new("t.yaml"), &yaml("{account: alice1}")).unwrap_err();
        assert!(e.to_string().contains("'alice1' is not an account of this scenario"), "{e}");
        let e = crate::scenario::parse_str(Path::new("t.yaml"), &yaml("{account: henry, condition: conflict}"))
            .unwrap_err();
        assert!(e.to_string().contains("`condition` is for `outcome: refused`"), "{e}");
        let at_start = yaml("{account: henry}").replace("alice1: {account: alice,", "alice1: {account: henry,");
        let e = crate::scenario::parse_str(Path::new("t.yaml"), &at_start).unwrap_err();
        assert!(e.to_string().contains("account henry is not created at case start"), "{e}");
    }

    #[tokio::test]
    async fn account_tags_are_the_case_tag_in_digits() {
        let mut w = world();
        w.bindings.tag = "508127".into();
        let yaml = format!(
            "{HEAD}steps:\n  - send: {{as: alice1, xml: \"<message to='fussball-${{bob.tag}}@${{B}}' id='t'/>\"}}\n"
        );
        let (_, script) = crate::scenario::parse_str(Path::new("t.yaml"), &yaml).unwrap();
        let n = net();
        let o = execute(&script, &w, &n).await;
        assert_eq!(outcomes(&o), [P], "{:?}", o.message);
        let sent = n.state.lock().unwrap().sent_by("alice1");
        assert!(sent.iter().any(|x| x.contains("to='fussball-508127@b.lab'")), "{sent:?}");
        assert_eq!(digits("k3x9mq"), "710793");
        assert_eq!(digits("ab"), "780000");
    }

    #[tokio::test]
    async fn abrupt_disconnects_close_the_connection_without_the_stream() {
        let n = net();
        let o = run(&n, "  - disconnect: {actor: bob1, abrupt: true}\n  - connect: {actor: bob1}\n").await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        let net = n.state.lock().unwrap();
        assert_eq!(net.aborted, ["bob1"]);
        assert_eq!(o.steps[0].description, "bob1's TCP connection is closed without closing the stream");
    }

    #[test]
    fn caps_ver_follows_xep_0115_section_5() {
        // XEP-0115 §5.2's simple example: one identity, four features.
        let mut caps = Caps::new("http://code.google.com/p/exodus", Vec::new());
        caps.identity = ("client".into(), "pc".into(), String::new(), "Exodus 0.9.1".into());
        let features = [
            "http://jabber.org/protocol/caps",
            "http://jabber.org/protocol/disco#info",
            "http://jabber.org/protocol/disco#items",
            "http://jabber.org/protocol/muc",
        ];
        let s = format!("client/pc//Exodus 0.9.1<{}<", features.join("<"));
        use base64::Engine;
        use sha1::Digest;
        let ver = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()));
        assert_eq!(ver, "QgayPKawpkPSDYmwT/WM94uAlu0=");
        // Ours: the plugfest identity, the features sorted, the same construction.
        let ours = Caps::new(crate::scenario::CAPS_NODE, vec!["urn:xmpp:avatar:metadata+notify".to_string()]);
        let s = "client/bot//plugfest<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<urn:xmpp:avatar:metadata+notify<";
        assert_eq!(ours.ver, base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes())));
    }

    #[tokio::test]
    async fn caps_are_advertised_and_their_disco_queries_answered() {
        let n = net();
        let yaml = format!(
            "{}steps:\n\x20 - expect: {{to: alice1, xml: \"<presence from='${{bob1.full}}'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='${{bob1.caps_node}}' ver='${{bob1.caps_ver}}'/></presence>\"}}\n\x20 - iq: {{as: alice1, xml: \"<iq type='get' to='${{bob1.full}}'><query xmlns='http://jabber.org/protocol/disco#info' node='${{bob1.caps_node}}#${{bob1.caps_ver}}'/></iq>\",              expect: \"<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info' node='${{bob1.caps_node}}#${{bob1.caps_ver}}'><identity category='client' type='bot'/><feature var='urn:xmpp:avatar:metadata+notify'/></query></iq>\"}}\n\x20 - expect: {{to: bob1, xml: \"<iq type='get' from='${{alice1.full}}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>\"}}\n",
            HEAD.replace("bob1: {account: bob, resource: r1}", "bob1: {account: bob, resource: r1, caps: {notify: [urn:xmpp:avatar:metadata]}}")
                .replace("alice1: {account: alice, resource: r1}", "alice1: {account: alice, resource: r1, lang: de}")
        );
        // Presence goes to everyone in this fake: route bob1's broadcast to alice1.
        let mut n2 = n;
        n2.extra = Some(Arc::new(|net: &mut NetState, actor: &str, e: &Element| {
            if actor == "bob1" && e.is("presence", NS_CLIENT) && e.attr("to").is_none() {
                let from = net.live.get("bob1").map(|(j, _)| j.to_string()).unwrap_or_default();
                net.deliver("alice1", e.clone().with_attr("from", from));
            }
        }));
        let (_, script) = crate::scenario::parse_str(Path::new("t.yaml"), &yaml).unwrap();
        assert_eq!(script.actor("alice1").unwrap().lang.as_deref(), Some("de"));
        let o = execute(&script, &world(), &n2).await;
        assert_eq!(outcomes(&o), [P, P, P], "{:?}", o.message);
    }

    #[tokio::test]
    async fn roster_pushes_are_acknowledged_and_still_reach_expects() {
        let mut n = net();
        n.extra = Some(Arc::new(|net: &mut NetState, actor: &str, e: &Element| {
            if actor == "alice1" && e.attr("id") == Some("m1") {
                let push = |id: &str, from: Option<&str>| {
                    let mut iq = Element::new("iq", NS_CLIENT).with_attr("type", "set").with_attr("id", id).with_child(
                        Element::new("query", NS_ROSTER)
                            .with_child(Element::new("item", NS_ROSTER).with_attr("jid", "bob-x@b.lab")),
                    );
                    if let Some(f) = from {
                        iq.set_attr("from", f);
                    }
                    iq
                };
                net.deliver("alice1", push("push1", None));
                net.deliver("alice1", push("push2", Some("alice-x@a.lab")));
                net.deliver("alice1", push("forged", Some("mallory@a.lab")));
            }
        }));
        let o = run(
            &n,
            &format!(
                "{CHAT}  - expect_unordered:\n      items:\n\
                 \x20       - {{to: alice1, xml: \"<iq type='set' id='push1'/>\"}}\n\
                 \x20       - {{to: alice1, xml: \"<iq type='set' id='push2'/>\"}}\n\
                 \x20       - {{to: alice1, xml: \"<iq type='set' id='forged'/>\"}}\n"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, P], "{:?}", o.message);
        let net = n.state.lock().unwrap();
        let sent = net.sent_by("alice1");
        assert!(sent.contains(&"<iq type='result' id='push1'/>".to_string()), "{sent:?}");
        assert!(sent.contains(&"<iq type='result' id='push2' to='alice-x@a.lab'/>".to_string()), "{sent:?}");
        assert!(!sent.iter().any(|s| s.contains("forged")), "{sent:?}");
    }

    #[tokio::test]
    async fn gates_skip_unsupported_cases_with_a_throwaway_login() {
        let gated = |gate: &str| {
            format!(
                "id: t\ntitle: test\nroles: [A, B]\naccounts:\n  alice: {{server: A}}\n  bob: {{server: B}}\n{gate}\
                 actors:\n  alice1: {{account: alice, resource: r1}}\n  bob1: {{account: bob, resource: r1}}\nsteps:\n{CHAT}"
            )
        };
        let mut w = world();
        w.servers.insert("A".into(), "fake (a.lab)".into());
        w.servers.insert("B".into(), "fake (b.lab)".into());
        async fn execute_yaml(n: &FakeNet, w: &World, yaml: &str) -> CaseOutcome {
            let (_, script) = crate::scenario::parse_str(Path::new("t.yaml"), yaml).unwrap();
            execute(&script, w, n).await
        }
        let mut n = net();
        n.disco = vec!["urn:xmpp:carbons:2".into()];
        n.stream_features = vec!["urn:xmpp:features:rosterver".into()];
        let o = execute_yaml(
            &n,
            &w,
            &gated("gate:\n  - {disco_feature: \"urn:xmpp:carbons:2\", on: B}\n  - {stream_feature: \"urn:xmpp:features:rosterver\", on: A}\n"),
        )
        .await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Pass, vec![P]), "{:?}", o.message);
        {
            let net = n.state.lock().unwrap();
            // One throwaway login per account, asked disco#info of the domain, then closed.
            assert!(net.connects.contains(&"gate:bob".to_string()) && net.closes.contains(&"gate:bob".to_string()));
            let asked = net.sent_by("gate:bob");
            assert!(asked[0].contains("to='b.lab'") && asked[0].contains("disco#info"), "{asked:?}");
        }
        let o = execute_yaml(&n, &w, &gated("gate: [{disco_feature: \"urn:xmpp:mam:2\", on: bob}]\n")).await;
        assert_eq!(o.verdict, Verdict::Skip);
        assert_eq!(
            o.message.as_deref(),
            Some("unsupported: fake (b.lab) does not advertise urn:xmpp:mam:2 for bob-x@b.lab")
        );
        assert_eq!(outcomes(&o), [N]);
        let o = execute_yaml(&n, &w, &gated("gate: [{stream_feature: \"urn:xmpp:sm:3\", on: A}]\n")).await;
        assert_eq!(o.message.as_deref(), Some("unsupported: fake (a.lab) does not advertise urn:xmpp:sm:3"));
        n.refuse.insert("gate:alice".into());
        let o = execute_yaml(&n, &w, &gated("gate: [{stream_feature: \"urn:xmpp:sm:3\", on: A}]\n")).await;
        assert_eq!(o.verdict, Verdict::Error);
        assert!(o.message.unwrap().starts_with("gate check: alice on fake (a.lab): cannot connect"));
    }

    #[test]
    fn declared_failures_turn_fail_into_xfail_and_pass_into_xpass() {
        let declared = vec!["ejabberd: pushes ask (RFC 6121 §3.1.6)".to_string()];
        let (v, m) = judge_expected(Verdict::Fail, Some("line 9: bob1 received nothing".into()), &declared);
        assert_eq!(v, Verdict::Xfail);
        assert_eq!(
            m.unwrap(),
            "expected failure (ejabberd: pushes ask (RFC 6121 §3.1.6)): line 9: bob1 received nothing"
        );
        assert_eq!(judge_expected(Verdict::Warn, None, &declared).0, Verdict::Xfail);
        let (v, m) = judge_expected(Verdict::Pass, None, &declared);
        assert_eq!(v, Verdict::Xpass);
        assert!(m.unwrap().ends_with("remove the declaration"));
        assert_eq!(judge_expected(Verdict::Error, Some("e".into()), &declared), (Verdict::Error, Some("e".into())));
        assert_eq!(judge_expected(Verdict::Fail, None, &[]), (Verdict::Fail, None));

        let mut e = Server::example("ejabberd");
        e.expected_failures = vec![crate::servers::ExpectedFailure {
            scenario: "t".into(),
            roles: vec!["B".into()],
            reason: "why".into(),
            link: Some("https://x".into()),
        }];
        let p = Server::example("prosody");
        let (scenario, _) = crate::scenario::parse_str(Path::new("t.yaml"), &format!("{HEAD}steps:\n{CHAT}")).unwrap();
        let roles = |a: &Server, b: &Server| -> Vec<String> {
            let map: BTreeMap<String, &Server> = [("A".to_string(), a), ("B".to_string(), b)].into_iter().collect();
            declared_failures(&scenario, &map)
        };
        assert_eq!(roles(&p, &e), ["ejabberd: why (https://x)"]);
        assert!(roles(&e, &p).is_empty(), "ejabberd plays A here, the declaration is for B");
    }

    #[test]
    fn idn_accounts_need_an_idn_domain() {
        let yaml = "id: t\ntitle: t\nroles: [A]\naccounts:\n  alice: {server: A, idn: true}\n\
                    actors:\n  alice1: {account: alice}\nsteps:\n  - send: {as: alice1, xml: <message/>}\n";
        let (scenario, _) = crate::scenario::parse_str(Path::new("t.yaml"), yaml).unwrap();
        let mut p = Server::example("prosody");
        let roles = |s: &Server| -> BTreeMap<String, Server> { [("A".to_string(), s.clone())].into_iter().collect() };
        let unsupported_on = |s: &Server| {
            let owned = roles(s);
            let map: BTreeMap<String, &Server> = owned.iter().map(|(k, v)| (k.clone(), v)).collect();
            unsupported(&scenario, &map)
        };
        assert_eq!(unsupported_on(&p).as_deref(), Some("unsupported: prosody hosts no IDN domain"));
        p.idn_domain = Some("bücher.lab".into());
        assert_eq!(unsupported_on(&p), None);
        assert_eq!(account_server(&p, true).domain, "bücher.lab");
        assert_eq!(account_server(&p, false).domain, "prosody.lab");
    }

    #[test]
    fn only_the_servers_own_pings_are_answered() {
        let own = Jid::parse("a@a.lab/r1").unwrap();
        let ping = Element::new("iq", NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "p1")
            .with_child(Element::new("ping", "urn:xmpp:ping"));
        assert_eq!(ping_reply(&ping, &own).unwrap().to_xml_in(NS_CLIENT), "<iq type='result' id='p1'/>");
        assert!(ping_reply(&ping.clone().with_attr("from", "a.lab"), &own).is_some());
        assert!(ping_reply(&ping.clone().with_attr("from", "b.lab"), &own).is_none());
        assert!(ping_reply(&ping.clone().with_attr("from", "x@a.lab"), &own).is_none());
        let mut set = ping.clone();
        set.set_attr("type", "set");
        assert!(ping_reply(&set, &own).is_none());
    }

    /// The real path, as far as it goes without a server: every actor's login fails, the case
    /// is an error naming actor and server, and every attempt is recorded with its transcript.
    #[tokio::test]
    async fn run_case_reports_unreachable_servers_and_records_every_attempt() {
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = |name: &str| Server {
            address: Some("127.0.0.1".parse().unwrap()),
            port: Some(port),
            ..Server::example(name)
        };
        let (p, e) = (server("p"), server("e"));
        let (scenario, _) = crate::scenario::parse_str(Path::new("t.yaml"), &format!("{HEAD}steps:\n{CHAT}")).unwrap();
        let account = |jid: &str| Account { jid: Jid::parse(jid).unwrap(), password: "pw".into() };
        let env = CaseEnv {
            scenario: &scenario,
            roles: [("A".to_string(), &p), ("B".to_string(), &e)].into_iter().collect(),
            accounts: [("alice".to_string(), account("alice-1@p.lab")), ("bob".to_string(), account("bob-1@e.lab"))]
                .into_iter()
                .collect(),
            step_timeout: Duration::from_secs(5),
            max_stanza: crate::xml::DEFAULT_MAX_STANZA,
            harness: None,
            tag: "k3x9mq".into(),
        };
        let o = run_case(env).await;
        assert_eq!(o.verdict, Verdict::Error);
        let msg = o.message.unwrap();
        assert!(msg.starts_with("alice1 on p (p.lab): "), "{msg}");
        assert!(msg.contains("; bob1 on e (e.lab): "), "{msg}");
        assert!(o.steps.iter().all(|s| s.outcome == StepOutcome::NotRun));
        let mut recorded: Vec<(&str, &str, &str)> =
            o.connections.iter().map(|c| (c.actor.as_str(), c.server.as_str(), c.jid.as_str())).collect();
        recorded.sort(); // recorded as the attempts end, which may be in either order
        assert_eq!(recorded, [("alice1", "p", "alice-1@p.lab"), ("bob1", "e", "bob-1@e.lab")]);
    }
}
