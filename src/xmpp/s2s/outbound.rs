//! The initiating side: the harness connects to another server as `harness.lab` — stream header,
//! STARTTLS presenting a chosen client certificate, SASL EXTERNAL (XEP-0178) or dialback
//! (XEP-0220) — and then sends scripted stanzas. Each step is a method, so a case can stop after
//! any of them and misbehave on purpose; [`super::S2sPeer::connect`] runs them all.
//!
//! Also the harness's dialback verification as receiving server ([`verify_key`]).

use super::dialback::{self, ResultBody, NS_DIALBACK, NS_DIALBACK_FEATURE};
use super::identity::{self, CertCheck};
use super::stream::{ReadError, S2sStream};
use super::{AuthMethod, AuthRecord, LegHandle, LegKind, LegRecord, PeerCert, S2sError, Shared};
use crate::net::resolve::{self, Service, Target};
use crate::net::tls;
use crate::xml::{Element, StreamEvent, NS_SERVER, NS_STREAM};
use crate::xmpp::client::{describe_error, NS_TLS};
use crate::xmpp::sasl::NS_SASL;
use crate::xmpp::Transcript;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::pki_types::UnixTime;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// XEP-0288: the feature, and the request that turns it on.
const NS_BIDI_FEATURE: &str = "urn:xmpp:features:bidi";
const NS_BIDI: &str = "urn:xmpp:bidi";

/// How long [`OutboundLink::close`] waits for the other side's `</stream:stream>`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How the harness authenticates on an outbound link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundAuth {
    /// SASL EXTERNAL when offered (authzid = the harness's domain), else dialback when the other
    /// server declares it.
    Auto,
    /// SASL EXTERNAL only. `authzid: None` sends `=` (XEP-0178 allows it); `Some(d)` sends `d`.
    External { authzid: Option<String> },
    /// Dialback only, even when EXTERNAL is offered.
    Dialback,
    /// Nothing: the caller authenticates by hand, or tests what happens without it.
    None,
}

/// How one outbound link is negotiated.
#[derive(Clone, Debug)]
pub struct OutboundOptions {
    /// The TLS client certificate to present (`None`: none at all).
    pub client_cert: Option<PeerCert>,
    /// Run STARTTLS in [`super::S2sPeer::connect`] (false: stay in cleartext on purpose, G02).
    pub starttls: bool,
    pub auth: OutboundAuth,
    /// Stop with an error unless the other server's certificate validates for its domain.
    pub require_valid_cert: bool,
    /// Declare the dialback namespace on the stream header (servers offer dialback only then).
    pub declare_dialback: bool,
    /// Connect here instead of resolving `_xmpp-server._tcp` of the domain.
    pub address: Option<SocketAddr>,
    /// Put this in the stream header's 'to' instead of the domain connected to (a domain the
    /// server does not serve, CATALOG G02(c)).
    pub stream_to: Option<String>,
    /// Request a bidirectional stream (XEP-0288 `<bidi/>`) before authenticating, when offered.
    pub bidi: bool,
    /// XEP-0368 direct TLS: find the server by `_xmpps-server._tcp` and start with TLS (no STARTTLS).
    pub direct_tls: bool,
}

impl OutboundOptions {
    /// STARTTLS presenting `client_cert`, automatic authentication, valid certificate required.
    pub fn new(client_cert: Option<PeerCert>) -> OutboundOptions {
        OutboundOptions {
            client_cert,
            starttls: true,
            auth: OutboundAuth::Auto,
            require_valid_cert: true,
            declare_dialback: true,
            address: None,
            stream_to: None,
            bidi: false,
            direct_tls: false,
        }
    }
}

/// One connection the harness opened to another server.
pub struct OutboundLink {
    shared: Arc<Shared>,
    leg: LegHandle,
    stream: S2sStream,
    options: OutboundOptions,
    to: String,
    header: Option<Element>,
    features: Option<Element>,
    tls: bool,
    authenticated: Option<AuthMethod>,
    /// The last failed step, for the leg's outcome.
    last_error: Option<String>,
    /// What the other server sent during negotiation (headers, features, answers), oldest first,
    /// for cases that check it; taken with [`OutboundLink::take_received`].
    received: Vec<Element>,
}

impl OutboundLink {
    /// Resolve `to`, connect, send the stream header, read the other side's header and features.
    pub(super) async fn open(
        shared: Arc<Shared>,
        to: &str,
        options: &OutboundOptions,
    ) -> Result<OutboundLink, S2sError> {
        OutboundLink::open_kind(shared, to, options, LegKind::Outbound).await.map_err(|(e, _)| e)
    }

    /// Like `open`, but a failure also returns what the other server sent (e.g. its stream error).
    pub(super) async fn open_keeping(
        shared: Arc<Shared>,
        to: &str,
        options: &OutboundOptions,
    ) -> Result<OutboundLink, (S2sError, Vec<Element>)> {
        OutboundLink::open_kind(shared, to, options, LegKind::Outbound).await
    }

    async fn open_kind(
        shared: Arc<Shared>,
        to: &str,
        options: &OutboundOptions,
        kind: LegKind,
    ) -> Result<OutboundLink, (S2sError, Vec<Element>)> {
        let mut link = OutboundLink::connect_tcp(shared, to, options, kind).await.map_err(|e| (e, Vec::new()))?;
        if options.direct_tls {
            // XEP-0368 §3: TLS first, SNI = the domain, ALPN `xmpp-server`; no STARTTLS afterwards.
            if let Err(e) = link.tls_handshake(Some(b"xmpp-server")).await {
                link.last_error = Some(e.to_string());
                return Err((e, link.take_received()));
            }
        }
        if let Err(e) = link.open_stream().await {
            link.last_error = Some(e.to_string());
            return Err((e, link.take_received()));
        }
        Ok(link)
    }

    /// Resolve and connect; the stream is not opened yet.
    async fn connect_tcp(
        shared: Arc<Shared>,
        to: &str,
        options: &OutboundOptions,
        kind: LegKind,
    ) -> Result<OutboundLink, S2sError> {
        let connect_error = |message: String| S2sError::Connect { domain: to.to_string(), message };
        let transcript = Transcript::new();
        let Some(leg) = shared.new_leg(kind, transcript.clone()) else {
            return Err(S2sError::Setup(format!("the peer already recorded {} connections", shared.limits.max_legs)));
        };
        leg.update(|r| {
            r.peer_domain = Some(to.to_string());
            r.cert_presented = options.client_cert.as_ref().map(|c| c.label.clone());
        });
        let service = if options.direct_tls { Service::DirectServer } else { Service::Server };
        let addrs = match resolve_server(&shared, to, options.address, service).await {
            Ok(addrs) => addrs,
            Err(message) => {
                transcript.note(format!("cannot resolve {to}: {message}"));
                leg.finish(&format!("cannot resolve {to}: {message}"));
                return Err(connect_error(message));
            }
        };
        let mut failures = Vec::new();
        let mut connected = None;
        for addr in addrs {
            match S2sStream::connect(addr, shared.step_timeout, transcript.clone(), shared.limits.clone()).await {
                Ok(stream) => {
                    connected = Some(stream);
                    break;
                }
                Err(e) => {
                    transcript.note(format!("TCP connect to {addr} failed: {e}"));
                    failures.push(format!("{addr}: {e}"));
                }
            }
        }
        let Some(stream) = connected else {
            let message = format!("no address accepted a TCP connection ({})", failures.join("; "));
            leg.finish(&message);
            return Err(connect_error(message));
        };
        leg.update(|r| {
            r.local_addr = stream.local_addr().to_string();
            r.peer_addr = stream.peer_addr().to_string();
        });
        let link = OutboundLink {
            shared,
            leg,
            stream,
            options: options.clone(),
            to: to.to_string(),
            header: None,
            features: None,
            tls: false,
            authenticated: None,
            last_error: None,
            received: Vec::new(),
        };
        Ok(link)
    }

    /// Remember a failed step: the leg's outcome names it when the link ends.
    fn noted<T>(&mut self, result: Result<T, S2sError>) -> Result<T, S2sError> {
        if let Err(e) = &result {
            self.stream.transcript().note(format!("step failed: {e}"));
            self.last_error = Some(e.to_string());
        }
        result
    }

    pub fn domain(&self) -> &str {
        &self.to
    }

    /// The other server's current stream header.
    pub fn header(&self) -> Option<&Element> {
        self.header.as_ref()
    }

    /// The current stream features (`None` for a pre-1.0 stream).
    pub fn features(&self) -> Option<&Element> {
        self.features.as_ref()
    }

    /// The id of the current stream, as the other server gave it.
    pub fn stream_id(&self) -> Option<&str> {
        self.header.as_ref().and_then(|h| h.attr("id"))
    }

    pub fn authenticated(&self) -> Option<AuthMethod> {
        self.authenticated
    }

    /// This leg's record so far.
    pub fn record(&self) -> Option<LegRecord> {
        self.leg.record()
    }

    pub fn transcript(&self) -> &Transcript {
        self.stream.transcript()
    }

    fn stream_error(&self, message: String) -> S2sError {
        S2sError::Stream { domain: self.to.clone(), message }
    }

    fn read_failed(&self, e: ReadError, step: &str) -> S2sError {
        match e {
            ReadError::Timeout => {
                S2sError::Timeout { waiting_for: format!("{step} from {}", self.to), after: self.shared.step_timeout }
            }
            other => self.stream_error(format!("during {step}: {other}")),
        }
    }

    fn write_failed(&self, e: std::io::Error, step: &str) -> S2sError {
        S2sError::Io { domain: self.to.clone(), message: format!("sending during {step}: {e}") }
    }

    /// The next top-level element before `deadline`; stream errors and closes become errors.
    pub async fn next_element(&mut self, step: &str, deadline: Instant) -> Result<Element, S2sError> {
        match self.stream.next_event(deadline).await.map_err(|e| self.read_failed(e, step))? {
            StreamEvent::Stanza(el) if el.is("error", NS_STREAM) => {
                let message = format!("stream error during {step}: {}", describe_error(&el));
                self.keep(el);
                Err(self.stream_error(message))
            }
            StreamEvent::Stanza(el) => {
                self.keep(el.clone());
                Ok(el)
            }
            StreamEvent::Close => Err(self.stream_error(format!("the stream was closed during {step}"))),
            StreamEvent::Header(_) => Err(self.stream_error(format!("a second stream header during {step}"))),
        }
    }

    /// Keep an element of the negotiation for [`OutboundLink::take_received`] (bounded: a
    /// negotiation has a handful).
    fn keep(&mut self, el: Element) {
        if self.received.len() < 64 {
            self.received.push(el);
        }
    }

    /// What the other server sent during negotiation (stream headers as `<stream:stream>`
    /// elements without children, features, TLS, SASL and dialback answers), oldest first.
    pub fn take_received(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.received)
    }

    /// The next raw stream event (header, element, close) before `deadline`.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<StreamEvent, S2sError> {
        self.stream.next_event(deadline).await.map_err(|e| self.read_failed(e, "the next event"))
    }

    /// Send our header, read theirs and (for version 1.0) the features.
    async fn open_stream(&mut self) -> Result<(), S2sError> {
        let our = self.shared.domain.clone();
        let to = self.options.stream_to.clone().unwrap_or_else(|| self.to.clone());
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if self.options.declare_dialback {
            attrs.push(("xmlns:db", NS_DIALBACK));
        }
        attrs.extend([("from", our.as_str()), ("to", to.as_str()), ("version", "1.0")]);
        self.stream.send_header(&attrs).await.map_err(|e| self.write_failed(e, "the stream header"))?;
        let deadline = Instant::now() + self.shared.step_timeout;
        let header =
            match self.stream.next_event(deadline).await.map_err(|e| self.read_failed(e, "the stream header"))? {
                StreamEvent::Header(h) => h,
                StreamEvent::Stanza(el) if el.is("error", NS_STREAM) => {
                    let message = format!("stream error instead of a header: {}", describe_error(&el));
                    self.keep(el);
                    return Err(self.stream_error(message));
                }
                StreamEvent::Stanza(el) => {
                    return Err(self.stream_error(format!("expected a stream header, got <{}>", el.name)))
                }
                StreamEvent::Close => return Err(self.stream_error("the stream was closed at once".into())),
            };
        if let Some(id) = header.attr("id") {
            let id = id.to_string();
            self.leg.update(|r| r.stream_ids.push(id));
        }
        let version = header.attr("version") == Some("1.0");
        self.keep(header.clone());
        self.header = Some(header);
        self.features = None;
        if version {
            let features = self.next_element("stream features", deadline).await?;
            if !features.is("features", NS_STREAM) {
                return Err(self.stream_error(format!("expected <stream:features/>, got <{}>", features.name)));
            }
            self.features = Some(features);
        }
        Ok(())
    }

    /// Whether the current features offer STARTTLS.
    pub fn offers_starttls(&self) -> bool {
        self.features.as_ref().is_some_and(|f| f.child("starttls", NS_TLS).is_some())
    }

    /// STARTTLS presenting the options' client certificate; judges the other server's certificate
    /// for its domain and restarts the stream.
    pub async fn starttls(&mut self) -> Result<CertCheck, S2sError> {
        let result = self.starttls_inner().await;
        self.noted(result)
    }

    async fn starttls_inner(&mut self) -> Result<CertCheck, S2sError> {
        let domain = self.to.clone();
        let tls_error = |message: String| S2sError::Tls { domain: domain.clone(), message };
        if self.tls {
            return Err(tls_error("TLS is already established on this link".into()));
        }
        if !self.offers_starttls() {
            return Err(tls_error("the server does not offer STARTTLS".into()));
        }
        let step = "STARTTLS";
        self.stream.send(&Element::new("starttls", NS_TLS)).await.map_err(|e| self.write_failed(e, step))?;
        let answer = self.next_element(step, Instant::now() + self.shared.step_timeout).await?;
        if !answer.is("proceed", NS_TLS) {
            return Err(tls_error(format!("the server answered <starttls/> with <{}>", answer.name)));
        }
        if self.stream.has_unparsed_input() {
            return Err(tls_error("the server sent data after <proceed/> before the TLS handshake".into()));
        }
        let check = self.tls_handshake(None).await?;
        self.open_stream().await?;
        Ok(check)
    }

    /// The TLS client handshake on the current connection (ALPN as given), judging the server's
    /// certificate for its domain. The stream is not reopened.
    async fn tls_handshake(&mut self, alpn: Option<&[u8]>) -> Result<CertCheck, S2sError> {
        let domain = self.to.clone();
        let tls_error = |message: String| S2sError::Tls { domain: domain.clone(), message };
        let creds = self.options.client_cert.as_ref().map(|c| &c.credentials);
        let mut config = tls::s2s_client_config(creds).map_err(|e| tls_error(format!("{e:#}")))?;
        if let Some(protocol) = alpn {
            let mut with_alpn = (*config.config).clone();
            with_alpn.alpn_protocols = vec![protocol.to_vec()];
            config.config = Arc::new(with_alpn);
        }
        let deadline = Instant::now() + self.shared.step_timeout;
        if let Err(e) = self.stream.tls_connect(&config, &self.to, deadline).await {
            return Err(tls_error(format!("handshake failed: {e}")));
        }
        self.tls = true;
        let chain = config.seen.get();
        let check = identity::check(&chain, &self.shared.roots, &self.to, UnixTime::now());
        let info = self.stream.tls_info(&config.seen, &self.to);
        if let Some(info) = &info {
            self.stream.transcript().note(format!(
                "TLS established: {} {}; server certificate: {}",
                info.version,
                info.cipher,
                check.summary()
            ));
        }
        let recorded = check.clone();
        self.leg.update(|r| {
            r.tls = info;
            r.peer_cert = Some(recorded);
        });
        if self.options.require_valid_cert && !check.accepted() {
            return Err(tls_error(format!("its certificate is not acceptable: {}", check.summary())));
        }
        Ok(check)
    }

    /// Authenticate as the options say (after requesting bidi, when asked and offered).
    pub async fn authenticate(&mut self) -> Result<(), S2sError> {
        let our = self.shared.domain.clone();
        if self.options.bidi && self.offers_bidi() {
            // XEP-0288 §2.1: after TLS, before SASL or dialback; no answer is sent.
            self.stream.send(&Element::new("bidi", NS_BIDI)).await.map_err(|e| self.write_failed(e, "bidi"))?;
        }
        match self.options.auth.clone() {
            OutboundAuth::None => Ok(()),
            OutboundAuth::External { authzid } => self.sasl_external(authzid.as_deref()).await,
            OutboundAuth::Dialback => self.dialback().await,
            OutboundAuth::Auto if self.offers_external() => self.sasl_external(Some(&our)).await,
            OutboundAuth::Auto if self.offers_dialback() => self.dialback().await,
            OutboundAuth::Auto => {
                let message = "the server offers neither SASL EXTERNAL nor dialback".to_string();
                let result = Err(S2sError::Auth { domain: self.to.clone(), method: "any".into(), message });
                self.noted(result)
            }
        }
    }

    /// Whether the current features offer bidirectional streams (XEP-0288 §2.1).
    pub fn offers_bidi(&self) -> bool {
        self.features.as_ref().is_some_and(|f| f.child("bidi", NS_BIDI_FEATURE).is_some())
    }

    pub fn offers_external(&self) -> bool {
        self.features.as_ref().and_then(|f| f.child("mechanisms", NS_SASL)).is_some_and(|m| {
            m.elements().any(|e| e.name == "mechanism" && e.text().trim().eq_ignore_ascii_case("EXTERNAL"))
        })
    }

    /// Dialback is possible when the server declares the namespace on its header or offers the feature.
    pub fn offers_dialback(&self) -> bool {
        let declared = self.stream.stream_declares(NS_DIALBACK);
        declared || self.features.as_ref().is_some_and(|f| f.child("dialback", NS_DIALBACK_FEATURE).is_some())
    }

    fn record_auth(&self, method: AuthMethod, succeeded: bool, detail: String) {
        let domain = self.shared.domain.clone();
        self.stream
            .transcript()
            .note(format!("{method:?} as {domain}: {} ({detail})", if succeeded { "succeeded" } else { "failed" }));
        self.leg.update(|r| r.auth.push(AuthRecord { method, domain, succeeded, detail }));
    }

    /// SASL EXTERNAL (XEP-0178 §3), whether or not it is offered; on success the stream restarts.
    pub async fn sasl_external(&mut self, authzid: Option<&str>) -> Result<(), S2sError> {
        let authzid = authzid.map(str::to_string);
        let result = self.sasl_external_inner(authzid).await;
        self.noted(result)
    }

    async fn sasl_external_inner(&mut self, authzid: Option<String>) -> Result<(), S2sError> {
        let step = "SASL EXTERNAL";
        let data = match &authzid {
            Some(id) => B64.encode(id.as_bytes()),
            None => "=".to_string(),
        };
        let auth = Element::new("auth", NS_SASL).with_attr("mechanism", "EXTERNAL").with_text(data);
        self.stream.send(&auth).await.map_err(|e| self.write_failed(e, step))?;
        let answer = self.next_element(step, Instant::now() + self.shared.step_timeout).await?;
        if answer.is("success", NS_SASL) {
            self.record_auth(AuthMethod::SaslExternal, true, format!("authzid {authzid:?}"));
            self.authenticated = Some(AuthMethod::SaslExternal);
            self.stream.restart();
            return self.open_stream().await;
        }
        let why = if answer.is("failure", NS_SASL) {
            describe_error(&answer)
        } else {
            format!("unexpected <{}> in namespace {}", answer.name, answer.ns)
        };
        self.record_auth(AuthMethod::SaslExternal, false, why.clone());
        Err(S2sError::Auth { domain: self.to.clone(), method: "SASL EXTERNAL".into(), message: why })
    }

    /// Dialback (XEP-0220 §2.1): send the key for the current stream and wait for the verdict,
    /// answering the other server's verify connection on the harness's listener meanwhile.
    pub async fn dialback(&mut self) -> Result<(), S2sError> {
        let result = self.dialback_inner().await;
        self.noted(result)
    }

    async fn dialback_inner(&mut self) -> Result<(), S2sError> {
        let step = "dialback";
        let our = self.shared.domain.clone();
        let Some(id) = self.stream_id().map(str::to_string) else {
            return Err(self.stream_error("the server's stream header has no id to key dialback on".into()));
        };
        let key = dialback::key(&self.shared.secret, &self.to, &our, &id);
        let request = dialback::result(&our, &self.to, ResultBody::Key(&key));
        self.stream.send(&request).await.map_err(|e| self.write_failed(e, step))?;
        // The verdict needs the other server's round trip to the harness's listener.
        let deadline = Instant::now() + self.shared.step_timeout * 2;
        loop {
            let el = self.next_element(step, deadline).await?;
            if !el.is("result", NS_DIALBACK) {
                self.stream.transcript().note(format!("ignored <{}> while waiting for the dialback verdict", el.name));
                continue;
            }
            let verdict = el.attr("type").unwrap_or_default().to_string();
            if verdict == "valid" {
                self.record_auth(AuthMethod::Dialback, true, "db:result type='valid'".into());
                self.authenticated = Some(AuthMethod::Dialback);
                return Ok(());
            }
            let detail = match el.child("error", NS_SERVER) {
                Some(error) => format!("type={verdict:?}: {}", describe_error(error)),
                None => format!("type={verdict:?}"),
            };
            self.record_auth(AuthMethod::Dialback, false, detail.clone());
            return Err(S2sError::Auth { domain: self.to.clone(), method: "dialback".into(), message: detail });
        }
    }

    /// Send one element (a stanza, or anything a case wants to send on purpose).
    pub async fn send(&mut self, el: &Element) -> Result<(), S2sError> {
        self.stream.send(el).await.map_err(|e| self.write_failed(e, "sending a stanza"))?;
        if el.ns == NS_SERVER {
            self.leg.update(|r| r.stanzas_out += 1);
        }
        Ok(())
    }

    /// Send bytes exactly as given (malformed input on purpose).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), S2sError> {
        self.stream.send_raw(bytes).await.map_err(|e| self.write_failed(e, "sending raw bytes"))
    }

    /// Close the stream, wait briefly for the other side's close, and return the final record.
    pub async fn close(mut self) -> Option<LegRecord> {
        if self.stream.send_close().await.is_ok() {
            let deadline = Instant::now() + CLOSE_WAIT;
            loop {
                match self.stream.next_event(deadline).await {
                    Ok(StreamEvent::Close) => break,
                    Ok(_) => continue,
                    Err(ReadError::Timeout) => {
                        self.stream
                            .transcript()
                            .note(format!("the server did not close its stream within {CLOSE_WAIT:?}"));
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        self.stream.shutdown().await;
        let outcome = match &self.last_error {
            Some(e) => format!("closed after a failed step: {e}"),
            None => "closed".to_string(),
        };
        self.leg.finish(&outcome);
        self.leg.record()
    }
}

impl Drop for OutboundLink {
    fn drop(&mut self) {
        let outcome = match &self.last_error {
            Some(e) => e.clone(),
            None => "dropped by the harness without closing the stream".to_string(),
        };
        self.leg.finish(&outcome);
    }
}

/// Addresses for `domain`'s s2s service: an explicit address, a static target, or DNS.
async fn resolve_server(
    shared: &Shared,
    domain: &str,
    address: Option<SocketAddr>,
    service: Service,
) -> Result<Vec<SocketAddr>, String> {
    if let Some(addr) = address.or_else(|| shared.static_target(domain)) {
        return Ok(vec![addr]);
    }
    let target = Target { domain: domain.to_string(), address: None, port: None };
    match tokio::time::timeout(shared.step_timeout, resolve::resolve(&target, service)).await {
        Err(_) => Err(format!("name resolution took longer than {:?}", shared.step_timeout)),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Ok(Ok(addrs)) => Ok(addrs),
    }
}

/// As receiving server: ask `domain`'s authoritative server whether `key` is valid for the
/// harness's stream `stream_id` (XEP-0220 §2.1.2), over a new connection. Returns the verdict and
/// a description.
pub(super) async fn verify_key(
    shared: Arc<Shared>,
    domain: &str,
    stream_id: &str,
    key: &str,
) -> Result<(bool, String), S2sError> {
    let mut options = OutboundOptions::new(Some(shared.cert.clone()));
    options.auth = OutboundAuth::None;
    options.require_valid_cert = false;
    let our = shared.domain.clone();
    let mut link =
        OutboundLink::open_kind(shared, domain, &options, LegKind::DialbackVerify).await.map_err(|(e, _)| e)?;
    if link.offers_starttls() {
        link.starttls().await?;
    }
    let request = dialback::verify(&our, domain, stream_id, ResultBody::Key(key));
    link.send(&request).await?;
    let deadline = Instant::now() + link.shared.step_timeout;
    let verdict = loop {
        let el = link.next_element("the db:verify answer", deadline).await?;
        if el.is("verify", NS_DIALBACK) && el.attr("id") == Some(stream_id) {
            break el.attr("type").unwrap_or_default().to_string();
        }
        link.stream.transcript().note(format!("ignored <{}> while waiting for the db:verify answer", el.name));
    };
    let _ = link.close().await;
    Ok((verdict == "valid", format!("{domain}'s authoritative server answered db:verify type={verdict:?}")))
}
