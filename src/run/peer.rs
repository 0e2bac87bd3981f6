//! Peer actors at run time: a scenario's `peers:` entry becomes an [`S2sPeer`] on the run's
//! shared listener ([`S2sHub`]) with its own domain and certificate fixture, plus, with
//! `connects_to`, an outbound s2s link to that role's server. To the executor it is an actor like
//! any other: `send` goes out over the outbound link, and its buffer receives
//! - what the server sent while the link was negotiated (stream headers, features, TLS, SASL and
//!   dialback answers), then `<negotiated xmlns='urn:plugfest:s2s'/>` saying how it ended;
//! - stanzas the servers deliver to the peer's domain over their own (inbound) connections, in
//!   `jabber:client` like a client's, or wrapped in `<unauthenticated/>` when the leg they came
//!   on had not authenticated their domain;
//! - `<authenticated/>`, `<leg-opened/>` and `<leg-closed/>` for inbound legs, and the stream
//!   error and `<link-closed/>` when the server ends the outbound link.
//!
//! A peer's link ending is something to check, not a broken case, so it never ends the actor.

use super::case::{BoxFuture, Link, Outbox};
use crate::ca::CaDir;
use crate::jid::Jid;
use crate::net::tls::Trust;
use crate::results::ConnectionRecord;
use crate::scenario::peer::{PeerAuth, PeerDecl, NS_PEER};
use crate::servers::Server;
use crate::xml::{Element, Node, StreamEvent, NS_CLIENT, NS_SERVER, NS_STREAM};
use crate::xmpp::s2s::{
    AuthMethod, LegRecord, OutboundAuth, OutboundLink, OutboundOptions, PeerCert, PeerConfig, PeerEvent, S2sError,
    S2sHub, S2sPeer,
};
use crate::xmpp::Incoming;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What a run needs to play peers: the shared listener and the lab CA that issues their
/// certificates (and whose root judges the servers' certificates).
pub struct HarnessEnv {
    pub hub: S2sHub,
    pub ca: CaDir,
    pub trust: Trust,
    /// Peers get `<actor>-<tag>.<parent_domain>`, e.g. `h-4k2x9q.harness.lab`.
    pub parent_domain: String,
    /// The fixed domain of the direct TLS port (`listen_direct_tls` peers), if the hub has one.
    pub direct_domain: Option<String>,
    /// One `listen_direct_tls` peer at a time (the domain is fixed): cases that need it take turns.
    pub direct_turn: Arc<tokio::sync::Mutex<()>>,
}

/// How long a case waits for its turn on the direct TLS domain.
const DIRECT_TURN_WAIT: Duration = Duration::from_secs(120);

/// One s2s connection a peer actor saw, for results.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerLeg {
    /// The peer actor's name in the scenario.
    pub actor: String,
    /// The peer's domain in this case.
    pub domain: String,
    #[serde(flatten)]
    pub leg: LegRecord,
}

impl PeerLeg {
    /// The leg as a connection of the case, so reports show its wire log beside the clients'.
    pub fn connection(&self) -> ConnectionRecord {
        let kind = match self.leg.kind {
            crate::xmpp::s2s::LegKind::Inbound => "inbound s2s",
            crate::xmpp::s2s::LegKind::Outbound => "outbound s2s",
            crate::xmpp::s2s::LegKind::DialbackVerify => "dialback verify",
        };
        ConnectionRecord {
            actor: format!("{} ({kind} leg {})", self.actor, self.leg.id),
            server: self.leg.peer_domain.clone().unwrap_or_default(),
            jid: self.domain.clone(),
            tls: self.leg.tls.clone(),
            s2s: Some(Box::new(LegRecord { transcript: Vec::new(), ..self.leg.clone() })),
            transcript: self.leg.transcript.clone(),
        }
    }
}

/// Where peers leave their legs when they are closed.
pub type LegSink = Arc<Mutex<Vec<PeerLeg>>>;

/// Start the peer, open and negotiate its outbound link (when it has one), and hand the
/// executor a [`Link`]. `Err` only when the peer cannot be played at all (certificate, listener,
/// no TCP connection to the server); everything the server answers is in the buffer.
pub async fn connect(
    env: &HarnessEnv,
    actor: &str,
    decl: &PeerDecl,
    target: Option<&Server>,
    step_timeout: Duration,
    sink: LegSink,
) -> Result<Link, String> {
    let tag = crate::run::accounts::random_tag(6);
    // A DNS label: actor names may hold '_' (and capitals), which host names may not.
    let label: String =
        actor.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let turn = match decl.listen_direct_tls {
        false => None,
        true => Some(
            tokio::time::timeout(DIRECT_TURN_WAIT, env.direct_turn.clone().lock_owned())
                .await
                .map_err(|_| format!("the harness's direct TLS domain stayed taken for {DIRECT_TURN_WAIT:?}"))?,
        ),
    };
    let base = match (&env.direct_domain, decl.listen_direct_tls) {
        (Some(direct), true) => direct.clone(),
        (None, true) => {
            return Err(
                "`listen_direct_tls` needs the servers file's `harness.direct_tls` (docs/servers-file.md)".into()
            )
        }
        (_, false) => format!("{label}-{tag}.{}", env.parent_domain).to_ascii_lowercase(),
    };
    let domain = match &decl.subdomain {
        Some(sub) => format!("{}.{base}", sub.to_ascii_lowercase()),
        None => base.clone(),
    };
    // The certificate is for the peer's own domain, also when it plays a subdomain of it.
    let (ca, fixture, cert_domain) = (env.ca.clone(), decl.cert, base);
    let cert = tokio::task::spawn_blocking(move || PeerCert::issue_fixture(&ca, &cert_domain, fixture))
        .await
        .map_err(|e| format!("issuing the {} certificate failed: {e}", fixture.name()))?
        .map_err(|e| format!("cannot issue the {} certificate for {domain}: {e:#}", fixture.name()))?;
    let config = PeerConfig {
        domain: domain.clone(),
        listen: None,
        cert: cert.clone(),
        trust: env.trust.clone(),
        behaviour: decl.behaviour.clone(),
        limits: Default::default(),
        step_timeout,
        static_targets: Default::default(),
    };
    let mut peer = S2sPeer::start_on(&env.hub, config).map_err(|e| e.to_string())?;
    if decl.listen_direct_tls {
        peer.take_direct_tls(&env.hub).map_err(|e| e.to_string())?;
    }
    let jid = Jid::new(Some(&decl.user), &domain, None).map_err(|e| format!("peer JID for {domain}: {e}"))?;
    let (tx, incoming) = mpsc::unbounded_channel();
    let mut features = Element::new("features", NS_STREAM);
    let link = match (target, &decl.connects_to) {
        (Some(server), Some(_)) => {
            let (link, received) = negotiate(&peer, decl, &cert, &domain, &server.domain).await?;
            if let Some(f) = link.as_ref().and_then(|l| l.features()) {
                features = f.clone();
            }
            for el in received {
                let _ = tx.send(Incoming::Stanza(el));
            }
            link
        }
        _ => None,
    };
    let (cmds_tx, cmds) = mpsc::unbounded_channel();
    let driver = Driver {
        peer,
        link,
        negotiating: Default::default(),
        barriers: Vec::new(),
        _turn: turn,
        tx,
        actor: actor.to_string(),
        domain,
        sink,
    };
    tokio::spawn(drive(driver, cmds));
    Ok(Link { jid, features, outbox: Arc::new(PeerOutbox { cmds: cmds_tx }), incoming })
}

/// Open, secure and authenticate the outbound link as declared. Returns the link (None when
/// the server ended it) and what the server said, ending with `<negotiated/>`.
async fn negotiate(
    peer: &S2sPeer,
    decl: &PeerDecl,
    cert: &PeerCert,
    our: &str,
    to: &str,
) -> Result<(Option<OutboundLink>, Vec<Element>), String> {
    let options = OutboundOptions {
        client_cert: Some(cert.clone()),
        starttls: decl.starttls,
        auth: match decl.auth {
            PeerAuth::Auto => OutboundAuth::Auto,
            PeerAuth::External => OutboundAuth::External {
                authzid: decl.authzid.as_ref().map(|id| if id.is_empty() { our.to_string() } else { id.clone() }),
            },
            PeerAuth::Dialback => OutboundAuth::Dialback,
            PeerAuth::None => OutboundAuth::None,
        },
        require_valid_cert: decl.require_valid_cert,
        declare_dialback: decl.declare_dialback,
        address: None,
        stream_to: decl.stream_to.clone(),
        bidi: decl.bidi,
        direct_tls: decl.direct_tls,
    };
    let mut link = match peer.open_keeping(to, &options).await {
        Ok(link) => link,
        Err((e @ (S2sError::Connect { .. } | S2sError::Setup(_)), _)) => return Err(e.to_string()),
        // The server answered, but not with a usable stream (e.g. host-unknown): a result.
        Err((e, mut received)) => {
            let condition = received.iter().find(|el| el.is("error", NS_STREAM)).and_then(condition_of);
            received.push(link_closed(condition, &e.to_string()));
            received.push(negotiated(false, None, "none", "refused", &e.to_string()));
            return Ok((None, received));
        }
    };
    // The first step that failed (the server refused), if any.
    let mut refused: Option<String> = None;
    if decl.starttls && !decl.direct_tls {
        refused = link.starttls().await.err().map(|e| e.to_string());
    }
    if refused.is_none() {
        refused = link.authenticate().await.err().map(|e| e.to_string());
    }
    let method = match link.authenticated() {
        Some(AuthMethod::SaslExternal) => "sasl-external",
        Some(_) => "dialback",
        None => "none",
    };
    let (result, detail) = match refused {
        Some(why) => ("refused", why),
        None if decl.auth == PeerAuth::None => ("not-attempted", String::new()),
        None => ("authenticated", String::new()),
    };
    // From the record: TLS may have been established even when a later step failed.
    let record = link.record();
    let tls = record.as_ref().is_some_and(|r| r.tls.is_some());
    let server_cert = record.and_then(|r| r.peer_cert).map(|c| if c.accepted() { "valid" } else { "invalid" });
    let mut received = link.take_received();
    received.push(negotiated(tls, server_cert, method, result, &detail));
    // The server ended the stream during negotiation: say so, like the driver does later.
    if let Some(error) = received.iter().find(|el| el.is("error", NS_STREAM)) {
        let closed = link_closed(condition_of(error), &crate::xmpp::client::describe_error(error));
        received.push(closed);
        return Ok((None, received));
    }
    // A link whose negotiation failed may still be open (e.g. a SASL failure): keep it, so the
    // case can see what the server does next.
    Ok((Some(link), received))
}

/// `<negotiated xmlns='urn:plugfest:s2s' tls='yes' server-cert='valid' auth='sasl-external'
/// result='authenticated'>detail</negotiated>`.
fn negotiated(tls: bool, server_cert: Option<&str>, auth: &str, result: &str, detail: &str) -> Element {
    let mut el = Element::new("negotiated", NS_PEER)
        .with_attr("tls", if tls { "yes" } else { "no" })
        .with_attr("auth", auth)
        .with_attr("result", result);
    if let Some(c) = server_cert {
        el.set_attr("server-cert", c);
    }
    if !detail.is_empty() {
        el = el.with_text(detail);
    }
    el
}

/// `<link-closed xmlns='urn:plugfest:s2s' condition='not-authorized'>detail</link-closed>`.
fn link_closed(condition: Option<String>, detail: &str) -> Element {
    let mut el = Element::new("link-closed", NS_PEER).with_text(detail);
    if let Some(c) = condition {
        el.set_attr("condition", c);
    }
    el
}

/// The defined condition of a stream error.
fn condition_of(error: &Element) -> Option<String> {
    error.elements().find(|c| c.name != "text").map(|c| c.name.clone())
}

enum Command {
    Send(Element, oneshot::Sender<Result<(), String>>),
    Authenticate(PeerAuth, oneshot::Sender<Result<(), String>>),
    SendRaw(Vec<u8>, oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<()>),
}

struct PeerOutbox {
    cmds: mpsc::UnboundedSender<Command>,
}

impl PeerOutbox {
    fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Command,
    ) -> BoxFuture<'_, Result<(), String>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.cmds.send(make(reply)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err("the peer has stopped".to_string());
            }
            answer.await.unwrap_or_else(|_| Err("the peer has stopped".to_string()))
        })
    }
}

impl Outbox for PeerOutbox {
    fn send(&self, stanza: Element) -> BoxFuture<'_, Result<(), String>> {
        self.ask(|reply| Command::Send(stanza, reply))
    }

    fn send_raw(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<(), String>> {
        self.ask(|reply| Command::SendRaw(bytes, reply))
    }

    fn authenticate(&self, method: PeerAuth) -> BoxFuture<'_, Result<(), String>> {
        self.ask(|reply| Command::Authenticate(method, reply))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let (done, finished) = oneshot::channel();
        let sent = self.cmds.send(Command::Close(done)).is_ok();
        Box::pin(async move {
            if sent {
                let _ = finished.await;
            }
        })
    }
}

const NS_PING: &str = "urn:xmpp:ping";

/// What sending on a peer without an open outbound link says (`send: {if_open: true}` looks for it).
pub const NO_LINK: &str = "the peer has no open outbound link (no `connects_to`, or the server ended it)";

/// How long closing the outbound link may take at the end of a case.
const CLOSE_LINK: Duration = Duration::from_secs(2);
/// The driver wakes at least this often (the waits it selects over have no natural deadline).
const TICK: Duration = Duration::from_secs(3600);

struct Driver {
    peer: S2sPeer,
    link: Option<OutboundLink>,
    /// Inbound legs still negotiating: opened, neither authenticated nor closed.
    negotiating: std::collections::BTreeSet<u64>,
    /// Ids of barrier pings waiting for every inbound leg to close.
    barriers: Vec<String>,
    /// This peer's turn on the direct TLS domain, released when the driver ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    tx: mpsc::UnboundedSender<Incoming>,
    actor: String,
    domain: String,
    sink: LegSink,
}

impl Driver {
    fn forward(&self, el: Element) {
        let _ = self.tx.send(Incoming::Stanza(el));
    }

    /// The server ended the outbound link: report how, and stop using it.
    fn link_ended(&mut self, condition: Option<String>, detail: String) {
        self.forward(link_closed(condition, &detail));
        self.link = None;
    }

    fn on_link_event(&mut self, event: Result<StreamEvent, S2sError>) {
        match event {
            Ok(StreamEvent::Stanza(el)) if el.is("error", NS_STREAM) => {
                let condition = condition_of(&el);
                let detail = crate::xmpp::client::describe_error(&el);
                self.forward(el);
                self.link_ended(condition, detail);
            }
            Ok(StreamEvent::Stanza(el)) => {
                let stanza = to_namespace(el, NS_SERVER, NS_CLIENT);
                let authenticated = self.link.as_ref().is_some_and(|l| l.authenticated().is_some());
                let is_stanza = ["message", "presence", "iq"].contains(&stanza.name.as_str()) && stanza.ns == NS_CLIENT;
                if is_stanza && !authenticated {
                    // Over a bidirectional link that has not authenticated yet (XEP-0288 §2.2: MUST NOT).
                    self.forward(
                        Element::new("unauthenticated", NS_PEER).with_attr("link", "outbound").with_child(stanza),
                    );
                } else {
                    self.forward(stanza);
                }
            }
            Ok(StreamEvent::Header(header)) => self.forward(header),
            Ok(StreamEvent::Close) => self.link_ended(None, "the server closed the stream".into()),
            Err(e) => self.link_ended(None, e.to_string()),
        }
    }

    /// A barrier ping (`expect_none` with `barrier: ping` on a peer): answered once every inbound
    /// leg opened so far has authenticated or closed. A stanza from an unauthenticated domain ends
    /// its leg, so by then every such stanza (and every authentication) is in the buffer.
    fn barrier(&mut self, el: &Element) -> bool {
        let is_ping = el.name == "iq"
            && el.attr("type") == Some("get")
            && el.attr("to").is_none()
            && el.elements().any(|c| c.name == "ping" && c.ns == NS_PING);
        if is_ping {
            self.barriers.push(el.attr("id").unwrap_or_default().to_string());
            self.answer_barriers();
        }
        is_ping
    }

    fn answer_barriers(&mut self) {
        if !self.negotiating.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.barriers) {
            self.forward(Element::new("iq", NS_CLIENT).with_attr("type", "result").with_attr("id", id));
        }
    }

    fn on_peer_event(&mut self, event: PeerEvent) {
        let leg = |id: u64| id.to_string();
        let settled = match &event {
            PeerEvent::LegOpened { leg, .. } => {
                self.negotiating.insert(*leg);
                false
            }
            PeerEvent::Authenticated { leg, .. } | PeerEvent::LegClosed { leg, .. } => self.negotiating.remove(leg),
            PeerEvent::Stanza { .. } | PeerEvent::DirectTls { .. } => false,
        };
        match event {
            PeerEvent::LegOpened { leg: id, peer_addr } => self.forward(
                Element::new("leg-opened", NS_PEER).with_attr("leg", leg(id)).with_attr("from", peer_addr.to_string()),
            ),
            PeerEvent::Authenticated { leg: id, domain, method } => {
                let method = match method {
                    AuthMethod::SaslExternal => "sasl-external",
                    AuthMethod::Dialback => "dialback",
                    AuthMethod::DialbackWithoutDialingBack => "dialback-without-dialing-back",
                    AuthMethod::DialbackUnchecked => "dialback-unchecked",
                };
                self.forward(
                    Element::new("authenticated", NS_PEER)
                        .with_attr("leg", leg(id))
                        .with_attr("domain", domain)
                        .with_attr("method", method),
                )
            }
            PeerEvent::Stanza { leg: id, authenticated_as, element } => {
                let stanza = to_namespace(element, NS_SERVER, NS_CLIENT);
                match authenticated_as {
                    Some(_) => self.forward(stanza),
                    None => self
                        .forward(Element::new("unauthenticated", NS_PEER).with_attr("leg", leg(id)).with_child(stanza)),
                }
            }
            PeerEvent::DirectTls { leg: id, sni, alpn } => {
                let mut el = Element::new("direct-tls", NS_PEER).with_attr("leg", leg(id));
                if let Some(sni) = sni {
                    el.set_attr("sni", sni);
                }
                if let Some(alpn) = alpn {
                    el.set_attr("alpn", alpn);
                }
                self.forward(el)
            }
            PeerEvent::LegClosed { leg: id, outcome } => {
                self.forward(Element::new("leg-closed", NS_PEER).with_attr("leg", leg(id)).with_text(outcome))
            }
        }
        if settled {
            self.answer_barriers();
        }
    }

    async fn send(&mut self, el: Element) -> Result<(), String> {
        if self.barrier(&el) {
            return Ok(());
        }
        let Some(link) = self.link.as_mut() else {
            return Err(NO_LINK.to_string());
        };
        link.send(&to_namespace(el, NS_CLIENT, NS_SERVER)).await.map_err(|e| e.to_string())
    }

    /// Authenticate the outbound link now; what the server answered, then `<negotiated/>`, go to
    /// the buffer. A refusal is a result to check, not an error.
    async fn authenticate(&mut self, method: PeerAuth) -> Result<(), String> {
        let Some(link) = self.link.as_mut() else {
            return Err(NO_LINK.to_string());
        };
        let outcome = match method {
            PeerAuth::Dialback => link.dialback().await,
            _ => {
                let ours = self.domain.clone();
                link.sasl_external(Some(&ours)).await
            }
        };
        let (auth, result, detail) = match (&outcome, method) {
            (Ok(()), PeerAuth::Dialback) => ("dialback", "authenticated", String::new()),
            (Ok(()), _) => ("sasl-external", "authenticated", String::new()),
            (Err(e), _) => ("none", "refused", e.to_string()),
        };
        let record = link.record();
        let tls = record.as_ref().is_some_and(|r| r.tls.is_some());
        let server_cert = record.and_then(|r| r.peer_cert).map(|c| if c.accepted() { "valid" } else { "invalid" });
        for el in link.take_received() {
            self.forward(el);
        }
        self.forward(negotiated(tls, server_cert, auth, result, &detail));
        Ok(())
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some(link) = self.link.as_mut() else {
            return Err(NO_LINK.to_string());
        };
        link.send_raw(bytes).await.map_err(|e| e.to_string())
    }

    /// Close the link (bounded), stop the peer, and leave every leg in the sink.
    async fn finish(mut self) {
        if let Some(link) = self.link.take() {
            let _ = tokio::time::timeout(CLOSE_LINK, link.close()).await;
        }
        let legs = self.peer.shutdown();
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        sink.extend(legs.into_iter().map(|leg| PeerLeg {
            actor: self.actor.clone(),
            domain: self.domain.clone(),
            leg,
        }));
    }
}

async fn drive(mut d: Driver, mut cmds: mpsc::UnboundedReceiver<Command>) {
    loop {
        let deadline = Instant::now() + TICK;
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Command::Send(el, reply)) => {
                    let _ = reply.send(d.send(el).await);
                }
                Some(Command::SendRaw(bytes, reply)) => {
                    let _ = reply.send(d.send_raw(&bytes).await);
                }
                Some(Command::Authenticate(method, reply)) => {
                    let _ = reply.send(d.authenticate(method).await);
                }
                Some(Command::Close(done)) => {
                    d.finish().await;
                    let _ = done.send(());
                    return;
                }
                None => return d.finish().await,
            },
            event = next_on_link(&mut d.link, deadline) => d.on_link_event(event),
            event = d.peer.next_event(deadline) => if let Some(event) = event { d.on_peer_event(event) },
        }
    }
}

/// The outbound link's next event; never, when there is no link.
async fn next_on_link(link: &mut Option<OutboundLink>, deadline: Instant) -> Result<StreamEvent, S2sError> {
    match link {
        Some(link) => link.next_event(deadline).await,
        None => std::future::pending().await,
    }
}

/// The same element with `from` namespaces replaced by `to`, recursively: s2s stanzas are in
/// `jabber:server`, scenarios write `jabber:client` (the default namespace is the stream's).
pub fn to_namespace(mut el: Element, from: &str, to: &str) -> Element {
    if el.ns == from {
        el.ns = to.to_string();
    }
    el.children = el
        .children
        .into_iter()
        .map(|n| match n {
            Node::Element(e) => Node::Element(to_namespace(e, from, to)),
            text => text,
        })
        .collect();
    el
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_change_their_stream_namespace_and_keep_the_rest() {
        let el = Element::new("message", NS_SERVER)
            .with_attr("to", "a@b")
            .with_child(Element::new("body", NS_SERVER).with_text("hi"))
            .with_child(Element::new("x", "urn:other").with_child(Element::new("y", "urn:other")));
        let client = to_namespace(el.clone(), NS_SERVER, NS_CLIENT);
        assert_eq!(client.ns, NS_CLIENT);
        assert_eq!(client.child("body", NS_CLIENT).map(|b| b.text()).as_deref(), Some("hi"));
        assert!(client.child("x", "urn:other").is_some_and(|x| x.child("y", "urn:other").is_some()));
        assert_eq!(to_namespace(client, NS_CLIENT, NS_SERVER), el, "the round trip is lossless");
    }

    #[test]
    fn negotiation_and_closes_are_reported_as_elements() {
        let n = negotiated(true, Some("valid"), "sasl-external", "authenticated", "");
        assert_eq!(
            n.to_xml(),
            "<negotiated xmlns='urn:plugfest:s2s' tls='yes' auth='sasl-external' result='authenticated' server-cert='valid'/>"
        );
        let error = Element::new("error", NS_STREAM)
            .with_child(Element::new("not-authorized", crate::xmpp::client::NS_STREAMS))
            .with_child(Element::new("text", crate::xmpp::client::NS_STREAMS).with_text("no"));
        assert_eq!(condition_of(&error).as_deref(), Some("not-authorized"));
        let closed = link_closed(condition_of(&error), "why");
        assert_eq!(closed.attr("condition"), Some("not-authorized"));
        assert_eq!(closed.text(), "why");
    }
}
