//! One case: connect the scenario's actors and execute its steps. OWNER: scenario helper.
//!
//! The executor talks to actors through the small [`Connector`]/[`Outbox`] traits, so its
//! logic (buffering, matching, verdicts) runs the same against real XMPP sessions
//! ([`run_case`]) and against in-memory channels in tests.
//!
//! How a case runs:
//! - actors with `connect_at_start` log in in parallel; then, in declared order, each requests
//!   its roster (if `roster`) and sends its initial presence (if any);
//! - every actor has a pump task that answers the server's XEP-0199 pings (they stay in the
//!   transcript, never in results) and forwards everything else to the actor's inbox;
//! - stanzas nobody has asked for yet wait in a per-actor buffer: an `expect` first scans the
//!   buffer, then waits for new stanzas until its deadline; the match is removed, the rest stay;
//! - a failed expect at MUST level fails the case and ends it (later steps are `not run`),
//!   SHOULD warns and MAY informs, and the case goes on; anything that stops the case from
//!   being carried out (login, send, a stream the server closed) is an error;
//! - at the end every session is closed, each within a deadline.

use crate::jid::Jid;
use crate::results::{ConnectionRecord, Level, StepOutcome, StepResult, Verdict};
use crate::scenario::pattern::{closest, match_element, start_tag, Captures};
use crate::scenario::{fmt_duration, Action, ActorDecl, Bindings, Expect, Scenario, Script, Step};
use crate::servers::Server;
use crate::xml::{Element, NS_CLIENT};
use crate::xmpp::{Incoming, Session, StanzaSender, Transcript};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
}

pub struct CaseOutcome {
    pub verdict: Verdict,
    pub message: Option<String>,
    pub steps: Vec<StepResult>,
    pub connections: Vec<ConnectionRecord>,
}

/// Execute one case to the end; never panics, never waits without a deadline.
pub async fn run_case(env: CaseEnv<'_>) -> CaseOutcome {
    run_script(&env, &env.scenario.script).await
}

/// Run `script` with real XMPP sessions on the servers of `env`.
async fn run_script(env: &CaseEnv<'_>, script: &Script) -> CaseOutcome {
    let connector = XmppConnector { env, records: Mutex::new(Vec::new()) };
    let mut world = World {
        bindings: Bindings::default(),
        places: BTreeMap::new(),
        // At least a few seconds: a roster request on a busy server can take a moment.
        setup_timeout: env.step_timeout.max(Duration::from_secs(2)),
    };
    for (role, server) in &env.roles {
        world.bindings.roles.insert(role.clone(), server.domain.clone());
    }
    for (name, account) in &env.accounts {
        world.bindings.accounts.insert(name.clone(), account.jid.clone());
    }
    for actor in &script.actors {
        if let Some(server) = connector.server_of(actor) {
            world.places.insert(actor.name.clone(), format!("{} ({})", server.name, server.domain));
        }
    }
    let mut outcome = execute(script, &world, &connector).await;
    outcome.connections = connector.into_records();
    outcome
}

/// Logs actors in with `xmpp::Session` and keeps a record of every connection attempt.
struct XmppConnector<'a> {
    env: &'a CaseEnv<'a>,
    records: Mutex<Vec<Attempt>>,
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
    fn server_of(&self, actor: &ActorDecl) -> Option<&Server> {
        let decl = self.env.scenario.accounts.iter().find(|a| a.name == actor.account)?;
        self.env.roles.get(&decl.role).copied()
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
                transcript: a.transcript.entries(),
            })
            .collect()
    }

    fn record(&self, attempt: Attempt) {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(attempt);
    }
}

impl Connector for XmppConnector<'_> {
    fn connect<'a>(&'a self, actor: &'a ActorDecl) -> BoxFuture<'a, Result<Link, String>> {
        Box::pin(async move {
            let server = self.server_of(actor).ok_or("its account's role has no server (a plugfest bug)")?;
            let account = self
                .env
                .accounts
                .get(&actor.account)
                .ok_or_else(|| format!("account {} was not provisioned (a plugfest bug)", actor.account))?;
            let params = server.client_params(
                account.jid.clone(),
                &account.password,
                actor.resource.clone(),
                self.env.step_timeout,
                self.env.max_stanza,
            );
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
                    let (tx, incoming) = mpsc::unbounded_channel();
                    let (close_tx, close_rx) = oneshot::channel();
                    let sender = session.sender();
                    let own_incoming = std::mem::replace(&mut session.incoming, mpsc::unbounded_channel().1);
                    tokio::spawn(drive(session, own_incoming, tx, close_rx));
                    let outbox = SessionOutbox { sender, close: Mutex::new(Some(close_tx)) };
                    Ok(Link { jid, outbox: Arc::new(outbox), incoming })
                }
                Err(e) => {
                    self.record(attempt);
                    Err(e.to_string())
                }
            }
        })
    }
}

/// Owns a session: forwards what it receives until asked to close it, then closes it
/// gracefully (the session's own close is bounded) and says so.
async fn drive(
    mut session: Session,
    mut incoming: mpsc::UnboundedReceiver<Incoming>,
    tx: mpsc::UnboundedSender<Incoming>,
    mut close_rx: oneshot::Receiver<oneshot::Sender<()>>,
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
    // Give the receiver back so `close` can wait for the server's end of the stream.
    session.incoming = incoming;
    session.close().await;
    if let Some(done) = done {
        let _ = done.send(());
    }
}

struct SessionOutbox {
    sender: StanzaSender,
    close: Mutex<Option<oneshot::Sender<oneshot::Sender<()>>>>,
}

impl Outbox for SessionOutbox {
    fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.sender.send(&stanza).await.map_err(|e| e.to_string()) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let request = self.close.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            let Some(request) = request else { return };
            let (done, finished) = oneshot::channel();
            if request.send(done).is_ok() {
                let _ = finished.await;
            }
        })
    }
}

/// A boxed future, so the connector traits can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the executor reaches actors: real XMPP sessions, or in-memory channels in tests.
pub trait Connector: Sync {
    /// Log `actor` in up to a bound resource. `Err` says why not, without naming the actor
    /// or server (the executor adds both).
    fn connect<'a>(&'a self, actor: &'a ActorDecl) -> BoxFuture<'a, Result<Link, String>>;
}

/// An established connection of one actor.
pub struct Link {
    /// The full JID the server bound.
    pub jid: Jid,
    pub outbox: Arc<dyn Outbox>,
    /// Everything the server sends, ending with one `Closed`.
    pub incoming: mpsc::UnboundedReceiver<Incoming>,
}

/// The sending side of a connection.
pub trait Outbox: Send + Sync {
    fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>>;
    /// Close the stream gracefully. The executor bounds how long it waits.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// What the executor knows about the world besides the connections themselves.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Roles' domains and accounts' JIDs; actors' JIDs and captures are added as the case runs.
    pub bindings: Bindings,
    /// Actor → where it connects, for messages, e.g. `ejabberd (ejabberd.lab)`.
    pub places: BTreeMap<String, String>,
    /// Deadline for the roster request after login and for closing a stream.
    pub setup_timeout: Duration,
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
    let mut ex = Executor { script, world, connector, bindings: world.bindings.clone(), actors: BTreeMap::new() };
    let mut steps = Vec::with_capacity(script.steps.len());
    let mut stop: Option<(Verdict, String)> = None;
    if let Err(message) = ex.start().await {
        stop = Some((Verdict::Error, message));
    }
    let mut first_warning: Option<String> = None;
    for (index, step) in script.steps.iter().enumerate() {
        if stop.is_some() {
            steps.push(not_run(index, step));
            continue;
        }
        let started = Instant::now();
        let mut result = ex.run_step(index, step).await;
        result.duration_ms = started.elapsed().as_millis() as u64;
        let located = |m: &Option<String>| format!("line {}: {}", step.line, m.as_deref().unwrap_or("failed"));
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

fn not_run(index: usize, step: &Step) -> StepResult {
    let mut r = step_result(index, step);
    r.outcome = StepOutcome::NotRun;
    r
}

fn step_result(index: usize, step: &Step) -> StepResult {
    StepResult {
        index,
        kind: step.kind().to_string(),
        line: step.line,
        description: step.description(),
        outcome: StepOutcome::Pass,
        duration_ms: 0,
        spec: match &step.action {
            Action::Expect(e) => e.spec.clone(),
            _ => None,
        },
        expected: None,
        received: Vec::new(),
        message: None,
    }
}

/// A connected actor.
struct Live {
    outbox: Arc<dyn Outbox>,
    inbox: mpsc::UnboundedReceiver<Incoming>,
    pump: JoinHandle<()>,
    /// Set once the stream has ended: `Some(reason)` or `None` for a clean close by the server.
    ended: Option<Option<String>>,
}

#[derive(Default)]
struct ActorState {
    live: Option<Live>,
    /// Stanzas received and not yet matched by any expect, oldest first.
    buffer: VecDeque<Element>,
}

/// How a wait for a stanza ended.
enum Waited {
    Found(Element),
    TimedOut,
    /// The stream ended while waiting.
    Ended(Option<String>),
}

struct Executor<'a> {
    script: &'a Script,
    world: &'a World,
    connector: &'a dyn Connector,
    bindings: Bindings,
    actors: BTreeMap<String, ActorState>,
}

impl Executor<'_> {
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
        let (tx, inbox) = mpsc::unbounded_channel();
        let pump = tokio::spawn(pump(link.incoming, link.outbox.clone(), link.jid, tx));
        let state = self.actors.entry(decl.name.clone()).or_default();
        state.buffer.clear();
        state.live = Some(Live { outbox: link.outbox, inbox, pump, ended: None });
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
                .with_child(Element::new("query", "jabber:iq:roster"));
            self.send(&decl.name, get).await?;
            let is_answer = |e: &Element| {
                e.is("iq", NS_CLIENT) && e.attr("id") == Some(id.as_str()) && e.attr("type") != Some("get")
            };
            let answer = match self.wait_for(&decl.name, self.world.setup_timeout, is_answer).await {
                Waited::Found(e) => e,
                Waited::TimedOut => {
                    return Err(format!(
                        "{who}: the roster request got no answer within {}",
                        fmt_duration(self.world.setup_timeout)
                    ))
                }
                Waited::Ended(why) => return Err(format!("{who}: {} during the roster request", ended_text(&why))),
            };
            if answer.attr("type") != Some("result") {
                return Err(format!("{who}: the roster request failed: {}", answer.to_xml_in(NS_CLIENT)));
            }
        }
        if let Some(presence) = &decl.presence {
            let el = self.build(presence).map_err(|e| format!("{who}: cannot build the initial presence: {e}"))?;
            self.send(&decl.name, el).await?;
        }
        Ok(())
    }

    /// Substitute the template's variables and parse the result.
    fn build(&self, template: &crate::scenario::Template) -> Result<Element, String> {
        let text = template.render(&self.bindings)?;
        crate::scenario::parse_stanza(&text).map_err(|(_, e)| format!("the XML does not parse: {e}"))
    }

    async fn send(&mut self, actor: &str, stanza: Element) -> Result<(), String> {
        let who = self.world.who(actor);
        self.collect(actor);
        let state = self.actors.get(actor);
        let Some(live) = state.and_then(|s| s.live.as_ref()) else {
            return Err(format!("{who} is not connected"));
        };
        if let Some(why) = &live.ended {
            return Err(format!("{who}: cannot send, {}", ended_text(why)));
        }
        let outbox = live.outbox.clone();
        outbox.send(stanza).await.map_err(|e| format!("{who}: sending failed: {e}"))
    }

    /// Move everything already in the actor's inbox into its buffer.
    fn collect(&mut self, actor: &str) {
        let Some(state) = self.actors.get_mut(actor) else { return };
        let Some(live) = state.live.as_mut() else { return };
        while let Ok(item) = live.inbox.try_recv() {
            match item {
                Incoming::Stanza(e) => state.buffer.push_back(e),
                Incoming::Closed { error } => live.ended = Some(error),
            }
        }
    }

    /// Take the first stanza (buffered or new) that `wanted` accepts, waiting at most `within`.
    async fn wait_for(&mut self, actor: &str, within: Duration, mut wanted: impl FnMut(&Element) -> bool) -> Waited {
        self.collect(actor);
        let Some(state) = self.actors.get_mut(actor) else { return Waited::Ended(Some("not connected".into())) };
        if let Some(i) = state.buffer.iter().position(&mut wanted) {
            if let Some(e) = state.buffer.remove(i) {
                return Waited::Found(e);
            }
        }
        let Some(live) = state.live.as_mut() else { return Waited::Ended(Some("not connected".into())) };
        if let Some(why) = &live.ended {
            return Waited::Ended(why.clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, live.inbox.recv()).await {
                Err(_) => return Waited::TimedOut,
                Ok(Some(Incoming::Stanza(e))) => {
                    if wanted(&e) {
                        return Waited::Found(e);
                    }
                    state.buffer.push_back(e);
                }
                Ok(Some(Incoming::Closed { error })) => {
                    live.ended = Some(error.clone());
                    return Waited::Ended(error);
                }
                Ok(None) => {
                    let why = Some("the connection ended".to_string());
                    live.ended = Some(why.clone());
                    return Waited::Ended(why);
                }
            }
        }
    }

    /// A stream the server ended since we last looked: the case cannot go on as written.
    fn check_streams(&mut self) -> Result<(), String> {
        let names: Vec<String> = self.actors.keys().cloned().collect();
        for name in names {
            self.collect(&name);
            if let Some(Live { ended: Some(why), .. }) = self.actors.get(&name).and_then(|s| s.live.as_ref()) {
                return Err(format!("{}: {}", self.world.who(&name), ended_text(why)));
            }
        }
        Ok(())
    }

    async fn run_step(&mut self, index: usize, step: &Step) -> StepResult {
        let mut result = step_result(index, step);
        if let Err(message) = self.check_streams() {
            result.outcome = StepOutcome::Error;
            result.message = Some(message);
            return result;
        }
        let done = match &step.action {
            Action::Send { actor, xml } => match self.build(xml) {
                Ok(el) => self.send(actor, el).await,
                Err(e) => Err(format!("{}: cannot build the stanza to send: {e}", self.world.who(actor))),
            },
            Action::Expect(expect) => return self.expect(expect, result).await,
            Action::Connect { actor } => self.connect(actor).await,
            Action::Disconnect { actor } => {
                self.disconnect(actor).await;
                Ok(())
            }
        };
        if let Err(message) = done {
            result.outcome = StepOutcome::Error;
            result.message = Some(message);
        }
        result
    }

    async fn expect(&mut self, expect: &Expect, mut result: StepResult) -> StepResult {
        let who = self.world.who(&expect.actor);
        let text = match expect.pattern.render(&self.bindings) {
            Ok(t) => t,
            Err(e) => {
                result.outcome = StepOutcome::Error;
                result.message = Some(format!("cannot build the expected stanza: {e}"));
                return result;
            }
        };
        result.expected = Some(text.trim().to_string());
        let pattern = match crate::scenario::parse_stanza(&text) {
            Ok(p) => p,
            Err((_, e)) => {
                result.outcome = StepOutcome::Error;
                result.message = Some(format!("the expected stanza does not parse after substitution: {e}"));
                return result;
            }
        };
        let captures = self.bindings.captures.clone();
        let mut matched: Option<Captures> = None;
        let waited = self
            .wait_for(&expect.actor, expect.within, |e| match match_element(&pattern, e, &captures) {
                Ok(c) => {
                    matched = Some(c);
                    true
                }
                Err(_) => false,
            })
            .await;
        let unmatched: Vec<Element> =
            self.actors.get(&expect.actor).map(|s| s.buffer.iter().cloned().collect()).unwrap_or_default();
        match waited {
            Waited::Found(stanza) => {
                if let Some(c) = matched {
                    self.bindings.captures = c;
                }
                result.received = vec![stanza.to_xml_in(NS_CLIENT)];
            }
            Waited::Ended(why) => {
                result.outcome = StepOutcome::Error;
                result.received = unmatched.iter().map(|e| e.to_xml_in(NS_CLIENT)).collect();
                result.message = Some(format!("{who}: {} while waiting for this stanza", ended_text(&why)));
            }
            Waited::TimedOut => {
                let level = expect.spec.as_ref().map_or(Level::MUST, |s| s.level);
                result.outcome = match level {
                    Level::MUST => StepOutcome::Fail,
                    Level::SHOULD => StepOutcome::Warn,
                    Level::MAY => StepOutcome::Info,
                };
                let mut message = format!(
                    "{} received nothing matching within {} ({})",
                    expect.actor,
                    fmt_duration(expect.within),
                    others(unmatched.len())
                );
                if let Some((stanza, why)) = closest(&pattern, &unmatched, &self.bindings.captures) {
                    message.push_str(&format!("; closest: {} differs: {}", start_tag(stanza), why.reason));
                }
                result.received = unmatched.iter().map(|e| e.to_xml_in(NS_CLIENT)).collect();
                result.message = Some(message);
            }
        }
        result
    }

    async fn connect(&mut self, actor: &str) -> Result<(), String> {
        let Some(decl) = self.script.actor(actor) else { return Err(format!("unknown actor {actor}")) };
        let link = self.connector.connect(decl).await.map_err(|e| format!("{}: {e}", self.world.who(actor)))?;
        self.install(decl, link);
        self.set_up(decl).await
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

/// Forward an actor's incoming stanzas to the executor, answering the server's pings on the way.
async fn pump(
    mut incoming: mpsc::UnboundedReceiver<Incoming>,
    outbox: Arc<dyn Outbox>,
    own: Jid,
    inbox: mpsc::UnboundedSender<Incoming>,
) {
    while let Some(item) = incoming.recv().await {
        if let Incoming::Stanza(e) = &item {
            if let Some(reply) = ping_reply(e, &own) {
                // A failed reply shows up as the stream ending; nothing to do here.
                let _ = outbox.send(reply).await;
                continue;
            }
        }
        let last = matches!(item, Incoming::Closed { .. });
        if inbox.send(item).is_err() || last {
            return;
        }
    }
    let _ = inbox.send(Incoming::Closed { error: Some("the connection ended".into()) });
}

/// The result for an XEP-0199 ping from the actor's own server (not from other entities:
/// pings between users are test traffic).
fn ping_reply(e: &Element, own: &Jid) -> Option<Element> {
    if !e.is("iq", NS_CLIENT) || e.attr("type") != Some("get") || e.child("ping", "urn:xmpp:ping").is_none() {
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
        /// Answer roster gets with an error instead of a result.
        roster_error: bool,
        /// Called for every stanza an actor sends, after routing.
        extra: Option<Extra>,
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
        state: Arc<Mutex<NetState>>,
    }

    impl Outbox for FakeOutbox {
        fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                let mut net = self.state.lock().unwrap();
                if !net.live.contains_key(&self.actor) {
                    return Err("connection reset".into());
                }
                net.sent.push((self.actor.clone(), stanza.clone()));
                if stanza.child("query", "jabber:iq:roster").is_some() && stanza.attr("type") == Some("get") {
                    let kind = if self.roster_error { "error" } else { "result" };
                    let answer = Element::new("iq", NS_CLIENT)
                        .with_attr("type", kind)
                        .with_attr("id", stanza.attr("id").unwrap());
                    net.deliver(&self.actor, answer);
                } else {
                    net.route(&self.actor, &stanza);
                }
                if let Some(extra) = &self.extra {
                    extra(&mut net, &self.actor, &stanza);
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
    }

    impl Connector for FakeNet {
        fn connect<'a>(&'a self, actor: &'a ActorDecl) -> BoxFuture<'a, Result<Link, String>> {
            Box::pin(async move {
                if self.refuse.contains(&actor.name) {
                    return Err("cannot connect to 127.0.0.1:5222: connection refused".into());
                }
                let bare = &self.accounts[&actor.account];
                let jid = Jid::parse(&format!("{bare}/{}", actor.resource.as_deref().unwrap_or("generated"))).unwrap();
                let (tx, incoming) = mpsc::unbounded_channel();
                let mut net = self.state.lock().unwrap();
                net.live.insert(actor.name.clone(), (jid.clone(), tx));
                net.connects.push(actor.name.clone());
                let outbox = FakeOutbox {
                    actor: actor.name.clone(),
                    roster_error: self.roster_error,
                    extra: self.extra.clone(),
                    state: self.state.clone(),
                };
                Ok(Link { jid, outbox: Arc::new(outbox), incoming })
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
                "{CHAT}  - expect: {{to: bob1, within: 150ms, xml: \"<message from='${{alice1.bare}}' id='m1'/>\", \
                 ref: {{spec: RFC6120, section: '8.1.2.1', level: MUST}}}}\n{CHAT}"
            ),
        )
        .await;
        assert_eq!(outcomes(&o), [P, F, N]);
        assert_eq!(o.verdict, Verdict::Fail);
        let step = &o.steps[1];
        let msg = step.message.as_deref().unwrap();
        assert!(
            msg.starts_with("bob1 received nothing matching within 150ms (1 other stanza arrived); closest: <message "),
            "{msg}"
        );
        assert!(msg.ends_with("differs: attribute 'from' is 'alice-x@a.lab/r1' not 'alice-x@a.lab'"), "{msg}");
        assert_eq!(step.received.len(), 1);
        assert!(step.received[0].contains("hi ü"));
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
            .starts_with("line 13: bob1 received nothing matching within 100ms (1 other stanza arrived)"));
    }

    #[tokio::test]
    async fn an_expect_without_ref_is_must() {
        let o = run(&net(), "  - expect: {to: bob1, within: 50ms, xml: <message/>}\n").await;
        assert_eq!((o.verdict, outcomes(&o)), (Verdict::Fail, vec![F]));
        assert!(o.message.unwrap().contains("(nothing else arrived)"));
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
        use crate::net::tls::{TlsMode, Trust};
        use crate::servers::Accounts;
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = |name: &str| Server {
            name: name.into(),
            domain: format!("{name}.lab"),
            address: Some("127.0.0.1".parse().unwrap()),
            port: Some(port),
            tls: TlsMode::Required,
            trust: Trust::System,
            accounts: Accounts::InBand,
            software: None,
        };
        let (p, e) = (server("p"), server("e"));
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/messaging/msg-chat-remote-bare.yaml");
        let scenario = crate::scenario::load_file(&file).unwrap();
        let account = |jid: &str| Account { jid: Jid::parse(jid).unwrap(), password: "pw".into() };
        let env = CaseEnv {
            scenario: &scenario,
            roles: [("A".to_string(), &p), ("B".to_string(), &e)].into_iter().collect(),
            accounts: [("alice".to_string(), account("alice-1@p.lab")), ("bob".to_string(), account("bob-1@e.lab"))]
                .into_iter()
                .collect(),
            step_timeout: Duration::from_secs(5),
            max_stanza: crate::xml::DEFAULT_MAX_STANZA,
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
