//! The harness as a remote XMPP server (CATALOG area G, issue 4): `harness.lab` on its own lab
//! address. It accepts the servers' s2s connections (receiving side) and opens its
//! own (initiating side, [`OutboundLink`]), with a chosen certificate and a scripted
//! [`PeerBehaviour`], and records every leg in results-ready form ([`LegRecord`]): transcript,
//! TLS version and cipher, the chain the other server presented and which identity in it matched,
//! and which authentication happened.
//!
//! A hostile server cannot hurt the harness: stanzas are size-limited by the XML parser, a started
//! stanza must complete in time, every step has a deadline, the queue of received stanzas and the
//! transcripts are bounded, and so is the number of connections (see [`Limits`]).
//!
//! Knows nothing of YAML: a scenario's `peer` actor is meant to build a [`PeerConfig`] from its
//! declaration, run [`S2sPeer::start`], script [`OutboundLink`]s and wait on [`S2sPeer::next_event`].

mod behaviour;
pub mod dialback;
mod hub;
pub mod identity;
mod inbound;
mod outbound;
mod record;
pub mod stream;
#[cfg(test)]
mod tests;

pub use behaviour::{DialbackJudge, ExternalOffer, PeerBehaviour, StartTlsOffer, VerifyAnswer};
pub use hub::S2sHub;
pub use identity::{CertCheck, IdentityForm};
pub use outbound::{OutboundAuth, OutboundLink, OutboundOptions};
pub use record::{AuthMethod, AuthRecord, LegKind, LegRecord, VerifyRecord};

use crate::ca::{CaDir, Fixture};
use crate::net::tls::{self, Credentials, Trust};
use crate::xml::{Element, Node, DEFAULT_MAX_STANZA};
use crate::xmpp::Transcript;
use anyhow::Context as _;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The harness's own domain and lab address (it has A and SRV records in the lab DNS).
pub const HARNESS_DOMAIN: &str = crate::lab::HARNESS.0;
/// Where the receiving side listens inside the lab's namespace.
pub fn harness_listen_addr() -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(crate::lab::HARNESS.1), crate::lab::S2S_PORT)
}

/// Bounds that keep a misbehaving server from hurting the harness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest stanza (any top-level element) in bytes; larger ends the leg with `policy-violation`.
    pub max_stanza: usize,
    /// Time a started element may take to complete.
    pub stanza_timeout: Duration,
    /// Time the other side may take to accept our bytes.
    pub write_timeout: Duration,
    /// How long an authenticated leg may stay silent before the harness closes it.
    pub idle_timeout: Duration,
    /// Bytes of transcript kept per connection.
    pub transcript_budget: usize,
    /// Bytes of received stanzas waiting for the caller; beyond it the leg is closed as a flood.
    pub queue_budget: usize,
    /// Stanzas waiting for the caller; beyond it the leg is closed as a flood.
    pub queue_stanzas: usize,
    /// Connections recorded over the peer's life (inbound ones beyond it are refused).
    pub max_legs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza: DEFAULT_MAX_STANZA,
            stanza_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            transcript_budget: 256 << 10,
            queue_budget: 16 << 20,
            queue_stanzas: 10_000,
            max_legs: 256,
        }
    }
}

/// The certificate the harness presents: server certificate on inbound legs, client certificate
/// on outbound legs. `label` names the fixture in reports (`good`, `wrongname`, …).
#[derive(Clone, Debug)]
pub struct PeerCert {
    pub label: String,
    pub credentials: Credentials,
}

impl PeerCert {
    pub fn new(label: impl Into<String>, credentials: Credentials) -> PeerCert {
        PeerCert { label: label.into(), credentials }
    }

    /// From a chain file (leaf first) and a key file, e.g. a fixture of `plugfest ca`.
    pub fn from_files(label: impl Into<String>, chain: &Path, key: &Path) -> anyhow::Result<PeerCert> {
        Ok(PeerCert::new(label, Credentials::from_files(chain, key)?))
    }

    /// A good leaf for `domain` (DNS-ID only, both EKUs) signed by the lab CA in `ca`, labelled
    /// `good`.
    pub fn issue_good(ca: &CaDir, domain: &str) -> anyhow::Result<PeerCert> {
        PeerCert::issue_fixture(ca, domain, Fixture::Good)
    }

    /// A certificate fixture (CATALOG §0.6) for `domain` from the lab CA in `ca`, labelled with
    /// the fixture's name. It is issued in a private copy of the CA folder, so the lab's own files
    /// are never rewritten while servers or other cases read them.
    pub fn issue_fixture(ca: &CaDir, domain: &str, fixture: Fixture) -> anyhow::Result<PeerCert> {
        if !ca.exists() {
            anyhow::bail!("no lab CA in {} (run `plugfest lab up` or `plugfest ca init`)", ca.dir.display());
        }
        let scratch = std::env::temp_dir().join(format!(
            "plugfest-peer-cert-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let result = (|| {
            // 0700: the copy holds the CA's private keys.
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
                .create(&scratch)
                .with_context(|| format!("cannot create {}", scratch.display()))?;
            let files = ca.files();
            let (rogue_cert, rogue_key) = ca.rogue_files();
            for from in [&files.root_cert, &files.root_key, &files.intermediate_cert, &files.intermediate_key] {
                let name = from.file_name().unwrap_or_default();
                std::fs::copy(from, scratch.join(name)).with_context(|| format!("cannot copy {}", from.display()))?;
            }
            // The rogue CA is made on first use; reuse the lab's when it exists.
            let (rogue_cert_copy, rogue_key_copy) = CaDir::new(&scratch).rogue_files();
            if rogue_cert.exists() && rogue_key.exists() {
                if let Some(dir) = rogue_cert_copy.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                for (from, to) in [(&rogue_cert, &rogue_cert_copy), (&rogue_key, &rogue_key_copy)] {
                    std::fs::copy(from, to).with_context(|| format!("cannot copy {}", from.display()))?;
                }
            }
            let leaf = CaDir::new(&scratch).issue_fixture(domain, fixture)?;
            PeerCert::from_files(fixture.name(), &leaf.chain, &leaf.key)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }
}

/// Everything a peer needs.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The harness's domain (`harness.lab`).
    pub domain: String,
    /// Where to accept connections; `None` for a peer that only initiates.
    pub listen: Option<SocketAddr>,
    pub cert: PeerCert,
    /// Trust anchors for judging the other servers' certificates (the lab CA).
    pub trust: Trust,
    pub behaviour: PeerBehaviour,
    pub limits: Limits,
    /// Deadline for each negotiation step (connect, TLS, authentication, a dialback round trip).
    pub step_timeout: Duration,
    /// Addresses for domains that must not be looked up in DNS (tests, static servers files).
    pub static_targets: HashMap<String, SocketAddr>,
}

impl PeerConfig {
    /// `harness.lab` on its lab address with `cert`, trusting `trust`, default behaviour and limits.
    pub fn lab(cert: PeerCert, trust: Trust) -> PeerConfig {
        PeerConfig {
            domain: HARNESS_DOMAIN.to_string(),
            listen: Some(harness_listen_addr()),
            cert,
            trust,
            behaviour: PeerBehaviour::default(),
            limits: Limits::default(),
            step_timeout: Duration::from_secs(10),
            static_targets: HashMap::new(),
        }
    }
}

/// What the receiving side reports, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerEvent {
    /// A new inbound connection.
    LegOpened { leg: u64, peer_addr: SocketAddr },
    /// An inbound leg on the direct TLS port completed its TLS handshake (XEP-0368): the server
    /// name and ALPN protocol the other server asked for.
    DirectTls { leg: u64, sni: Option<String>, alpn: Option<String> },
    /// A domain authenticated on an inbound leg.
    Authenticated { leg: u64, domain: String, method: AuthMethod },
    /// A stanza (message, presence, iq) arrived on an inbound leg. `authenticated_as` is the
    /// domain authenticated on the leg that matches its 'from' (None: unauthenticated, which the
    /// harness also answers with a stream error).
    Stanza { leg: u64, authenticated_as: Option<String>, element: Element },
    /// A leg ended; its record is final.
    LegClosed { leg: u64, outcome: String },
}

#[derive(Debug, thiserror::Error)]
pub enum S2sError {
    #[error("harness s2s setup: {0}")]
    Setup(String),
    #[error("cannot connect to {domain}: {message}")]
    Connect { domain: String, message: String },
    #[error("TLS with {domain} failed: {message}")]
    Tls { domain: String, message: String },
    #[error("{domain} did not authenticate the harness ({method}): {message}")]
    Auth { domain: String, method: String, message: String },
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout { waiting_for: String, after: Duration },
    #[error("{domain}: {message}")]
    Stream { domain: String, message: String },
    #[error("I/O error with {domain}: {message}")]
    Io { domain: String, message: String },
}

/// One leg in the registry: its record and its live transcript.
struct LegEntry {
    record: LegRecord,
    transcript: Transcript,
}

/// State shared by the accept loop, the legs and the outbound links.
struct Shared {
    domain: String,
    cert: PeerCert,
    roots: Arc<rustls::RootCertStore>,
    behaviour: Mutex<PeerBehaviour>,
    limits: Limits,
    step_timeout: Duration,
    /// Dialback secret (XEP-0185): keys are recomputed from it, never stored.
    secret: String,
    static_targets: Mutex<HashMap<String, SocketAddr>>,
    legs: Mutex<Vec<LegEntry>>,
    events: mpsc::UnboundedSender<(PeerEvent, usize)>,
    /// Bytes and count of stanzas queued for the caller (the channel itself is unbounded; these bound it).
    queued_bytes: AtomicUsize,
    queued_stanzas: AtomicUsize,
}

/// Why an event could not be queued.
#[derive(Debug)]
struct Flooded(String);

impl Shared {
    fn static_target(&self, domain: &str) -> Option<SocketAddr> {
        self.static_targets.lock().unwrap_or_else(|p| p.into_inner()).get(domain).copied()
    }

    fn behaviour(&self) -> PeerBehaviour {
        self.behaviour.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Register a new leg; `None` when the peer has recorded `max_legs` already.
    fn new_leg(self: &Arc<Self>, kind: LegKind, transcript: Transcript) -> Option<LegHandle> {
        let mut legs = self.legs.lock().unwrap_or_else(|p| p.into_inner());
        if legs.len() >= self.limits.max_legs {
            return None;
        }
        let id = legs.len() as u64 + 1;
        let record = LegRecord {
            id,
            kind,
            local_addr: String::new(),
            peer_addr: String::new(),
            peer_domain: None,
            stream_ids: Vec::new(),
            cert_presented: None,
            tls: None,
            sni: None,
            peer_cert: None,
            auth: Vec::new(),
            dialback_verifies: Vec::new(),
            stanzas_in: 0,
            stanzas_out: 0,
            outcome: None,
            transcript: Vec::new(),
        };
        legs.push(LegEntry { record, transcript });
        Some(LegHandle { id, shared: self.clone() })
    }

    fn emit(&self, event: PeerEvent) {
        let _ = self.events.send((event, 0));
    }

    /// Queue a stanza for the caller within the queue bounds.
    fn deliver(&self, event: PeerEvent, size: usize) -> Result<(), Flooded> {
        let bytes = self.queued_bytes.fetch_add(size, Ordering::SeqCst) + size;
        let count = self.queued_stanzas.fetch_add(1, Ordering::SeqCst) + 1;
        if bytes > self.limits.queue_budget || count > self.limits.queue_stanzas {
            self.queued_bytes.fetch_sub(size, Ordering::SeqCst);
            self.queued_stanzas.fetch_sub(1, Ordering::SeqCst);
            return Err(Flooded(format!(
                "flood: {count} stanzas ({bytes} bytes) wait unread, over the limit of {} stanzas / {} bytes",
                self.limits.queue_stanzas, self.limits.queue_budget
            )));
        }
        if self.events.send((event, size)).is_err() {
            // Nobody listens any more: forget the accounting.
            self.queued_bytes.fetch_sub(size, Ordering::SeqCst);
            self.queued_stanzas.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn taken(&self, size: usize) {
        if size > 0 {
            self.queued_bytes.fetch_sub(size, Ordering::SeqCst);
            self.queued_stanzas.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A leg's way to update its record.
#[derive(Clone)]
struct LegHandle {
    id: u64,
    shared: Arc<Shared>,
}

impl LegHandle {
    fn update(&self, f: impl FnOnce(&mut LegRecord)) {
        let mut legs = self.shared.legs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = legs.get_mut((self.id - 1) as usize) {
            f(&mut entry.record);
        }
    }

    fn record(&self) -> Option<LegRecord> {
        let legs = self.shared.legs.lock().unwrap_or_else(|p| p.into_inner());
        legs.get((self.id - 1) as usize).map(snapshot)
    }

    /// Record the outcome once (the first word wins: later cleanup must not hide the cause).
    fn finish(&self, outcome: &str) {
        self.update(|r| {
            r.outcome.get_or_insert_with(|| outcome.to_string());
        });
    }
}

fn snapshot(entry: &LegEntry) -> LegRecord {
    let mut record = entry.record.clone();
    record.transcript = entry.transcript.entries();
    record
}

/// A fresh stream id (RFC 6120 §4.7.3: unique and unpredictable).
fn new_stream_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A rough size of an element in bytes (for the queue budget; no serialisation needed).
fn element_size(el: &Element) -> usize {
    let own =
        el.name.len() * 2 + el.ns.len() + el.attrs.iter().map(|a| a.name.len() + a.value.len() + 4).sum::<usize>();
    own + el
        .children
        .iter()
        .map(|c| match c {
            Node::Element(e) => element_size(e),
            Node::Text(t) => t.len(),
        })
        .sum::<usize>()
}

/// The harness as a remote server: a listener (optional) plus the outbound links it opens.
pub struct S2sPeer {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<(PeerEvent, usize)>,
    /// Events set aside by [`S2sPeer::expect_stanza`], delivered first by [`S2sPeer::next_event`].
    pending: VecDeque<PeerEvent>,
    local_addr: Option<SocketAddr>,
    accept_task: Option<JoinHandle<()>>,
    leg_tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The registration on a shared listener ([`S2sPeer::start_on`]), removed on drop.
    _host: Option<hub::HostGuard>,
    /// The registration for the hub's direct TLS port, if this peer took it.
    direct: Option<hub::DirectGuard>,
}

/// Events kept aside by `expect_stanza` before the oldest are dropped.
const MAX_PENDING: usize = 1024;

impl S2sPeer {
    /// Bind the listener (when configured) and start accepting. Fails at once when the address is
    /// taken or cannot be bound (outside the lab's namespace, 127.0.0.20 exists but nothing routes to it).
    pub async fn start(config: PeerConfig) -> Result<S2sPeer, S2sError> {
        let listen = config.listen;
        let (shared, rx) = S2sPeer::shared(config)?;
        let leg_tasks = Arc::new(Mutex::new(Vec::new()));
        let (local_addr, accept_task) = match listen {
            None => (None, None),
            Some(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(|e| {
                    S2sError::Setup(format!(
                        "cannot listen on {addr}: {e} (inside the lab the harness runs in the lab's network \
                         namespace; is another harness already listening there?)"
                    ))
                })?;
                let local = listener.local_addr().map_err(|e| S2sError::Setup(format!("{e}")))?;
                let task = tokio::spawn(accept_loop(listener, shared.clone(), leg_tasks.clone()));
                (Some(local), Some(task))
            }
        };
        Ok(S2sPeer {
            shared,
            events: rx,
            pending: VecDeque::new(),
            local_addr,
            accept_task,
            leg_tasks,
            _host: None,
            direct: None,
        })
    }

    /// Like [`S2sPeer::start`], but receive on `hub`'s shared listener the connections whose
    /// stream header is addressed to this peer's domain (`config.listen` is ignored).
    pub fn start_on(hub: &S2sHub, config: PeerConfig) -> Result<S2sPeer, S2sError> {
        let (shared, rx) = S2sPeer::shared(config)?;
        let leg_tasks = Arc::new(Mutex::new(Vec::new()));
        let host = hub::Host { shared: Arc::downgrade(&shared), tasks: leg_tasks.clone() };
        let guard = hub.register(&shared.domain, host)?;
        let local_addr = Some(hub.local_addr());
        Ok(S2sPeer {
            shared,
            events: rx,
            pending: VecDeque::new(),
            local_addr,
            accept_task: None,
            leg_tasks,
            _host: Some(guard),
            direct: None,
        })
    }

    /// Take the hub's direct TLS port (XEP-0368): its connections come to this peer.
    pub fn take_direct_tls(&mut self, hub: &S2sHub) -> Result<(), S2sError> {
        let host = hub::Host { shared: Arc::downgrade(&self.shared), tasks: self.leg_tasks.clone() };
        self.direct = Some(hub.register_direct(host)?);
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn shared(config: PeerConfig) -> Result<(Arc<Shared>, mpsc::UnboundedReceiver<(PeerEvent, usize)>), S2sError> {
        let roots = tls::root_store(&config.trust).map_err(|e| S2sError::Setup(format!("{e:#}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            domain: config.domain.clone(),
            cert: config.cert,
            roots: Arc::new(roots),
            behaviour: Mutex::new(config.behaviour),
            limits: config.limits,
            step_timeout: config.step_timeout,
            secret: crate::xmpp::sasl::random_nonce(),
            static_targets: Mutex::new(config.static_targets),
            legs: Mutex::new(Vec::new()),
            events: tx,
            queued_bytes: AtomicUsize::new(0),
            queued_stanzas: AtomicUsize::new(0),
        });
        Ok((shared, rx))
    }

    pub fn domain(&self) -> &str {
        &self.shared.domain
    }

    /// Where the listener accepts (useful when it was bound to port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Reach `domain` at `addr` instead of looking it up (for outbound links and dialback checks).
    pub fn add_static_target(&self, domain: &str, addr: SocketAddr) {
        self.shared.static_targets.lock().unwrap_or_else(|p| p.into_inner()).insert(domain.to_string(), addr);
    }

    /// Change the receiving side's behaviour for connections accepted from now on.
    pub fn set_behaviour(&self, behaviour: PeerBehaviour) {
        *self.shared.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = behaviour;
    }

    /// The next event of the receiving side, or `None` at `deadline`.
    pub async fn next_event(&mut self, deadline: Instant) -> Option<PeerEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Ok(Some((event, size))) => {
                self.shared.taken(size);
                Some(event)
            }
            Ok(None) | Err(_) => None,
        }
    }

    /// Wait for a stanza that `wanted` accepts; other events are kept for `next_event`.
    pub async fn expect_stanza(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&Element) -> bool,
    ) -> Result<(u64, Option<String>, Element), S2sError> {
        if let Some(i) =
            self.pending.iter().position(|e| matches!(e, PeerEvent::Stanza { element, .. } if wanted(element)))
        {
            if let Some(PeerEvent::Stanza { leg, authenticated_as, element }) = self.pending.remove(i) {
                return Ok((leg, authenticated_as, element));
            }
        }
        let started = Instant::now();
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((event, size))) => {
                    self.shared.taken(size);
                    event
                }
                Ok(None) | Err(_) => {
                    return Err(S2sError::Timeout {
                        waiting_for: format!("a stanza to {} over s2s", self.shared.domain),
                        after: started.elapsed(),
                    })
                }
            };
            match event {
                PeerEvent::Stanza { leg, authenticated_as, element } if wanted(&element) => {
                    return Ok((leg, authenticated_as, element))
                }
                other => {
                    if self.pending.len() >= MAX_PENDING {
                        self.pending.pop_front();
                    }
                    self.pending.push_back(other);
                }
            }
        }
    }

    /// Open an outbound link to `to` and negotiate it as `options` say (TLS, authentication).
    pub async fn connect(&self, to: &str, options: &OutboundOptions) -> Result<OutboundLink, S2sError> {
        let mut link = OutboundLink::open(self.shared.clone(), to, options).await?;
        if options.starttls {
            link.starttls().await?;
        }
        link.authenticate().await?;
        Ok(link)
    }

    /// Options for an outbound link presenting the peer's own certificate, SASL EXTERNAL or dialback.
    pub fn outbound_options(&self) -> OutboundOptions {
        OutboundOptions::new(Some(self.shared.cert.clone()))
    }

    /// Open an outbound link without negotiating anything beyond the stream header and features,
    /// for cases that misbehave on purpose; continue with its `starttls`, `sasl_external`, … methods.
    pub async fn open(&self, to: &str, options: &OutboundOptions) -> Result<OutboundLink, S2sError> {
        OutboundLink::open(self.shared.clone(), to, options).await
    }

    /// Like [`S2sPeer::open`], but a failure also returns what the other server sent before it
    /// (its stream header, a stream error), for cases that check it.
    pub async fn open_keeping(
        &self,
        to: &str,
        options: &OutboundOptions,
    ) -> Result<OutboundLink, (S2sError, Vec<Element>)> {
        OutboundLink::open_keeping(self.shared.clone(), to, options).await
    }

    /// Records of every leg so far (open ones included, with their transcript up to now).
    pub fn legs(&self) -> Vec<LegRecord> {
        self.shared.legs.lock().unwrap_or_else(|p| p.into_inner()).iter().map(snapshot).collect()
    }

    /// Stop accepting and end every inbound leg; returns the final records.
    pub fn shutdown(mut self) -> Vec<LegRecord> {
        self.stop();
        for leg in self.shared.legs.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
            leg.record.outcome.get_or_insert_with(|| "closed by the harness at the end of the case".into());
        }
        self.legs()
    }

    fn stop(&mut self) {
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
        for task in self.leg_tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl Drop for S2sPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accept connections until aborted; each gets its own task. Beyond `max_legs`, refuse.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    loop {
        let (tcp, addr) = hub::accept(&listener).await;
        let transcript = Transcript::new();
        let Some(leg) = shared.new_leg(LegKind::Inbound, transcript.clone()) else {
            drop(tcp); // over the connection limit: refused
            continue;
        };
        shared.emit(PeerEvent::LegOpened { leg: leg.id, peer_addr: addr });
        hub::keep(&tasks, tokio::spawn(inbound::serve(tcp, leg, transcript)));
    }
}
