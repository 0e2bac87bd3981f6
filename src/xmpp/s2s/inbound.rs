//! The receiving side: one connection another server opened to the harness, served with the
//! behaviour in force when it arrived. The harness answers as a correct server would (RFC 6120,
//! XEP-0178, XEP-0220) unless the behaviour says otherwise, and reports what it saw.

use super::dialback::{self, ResultBody, NS_DIALBACK, NS_DIALBACK_FEATURE};
use super::identity::{self, CertCheck};
use super::stream::{ReadError, S2sStream};
use super::{
    element_size, outbound, AuthMethod, AuthRecord, DialbackJudge, ExternalOffer, LegHandle, PeerBehaviour, PeerEvent,
    Shared, StartTlsOffer, VerifyAnswer, VerifyRecord,
};
use crate::net::tls;
use crate::xml::{Element, StreamEvent, XmlError, NS_SERVER, NS_STREAM};
use crate::xmpp::client::{describe_error, NS_STREAMS, NS_TLS};
use crate::xmpp::sasl::NS_SASL;
use crate::xmpp::Transcript;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Why a leg ended, and the stream error condition to send first (None: just close).
struct LegEnd {
    condition: Option<&'static str>,
    message: String,
}

impl LegEnd {
    fn with_error(condition: &'static str, message: impl Into<String>) -> LegEnd {
        LegEnd { condition: Some(condition), message: message.into() }
    }

    fn quiet(message: impl Into<String>) -> LegEnd {
        LegEnd { condition: None, message: message.into() }
    }
}

/// Serve one accepted connection to its end, then record the outcome.
pub(super) async fn serve(tcp: TcpStream, leg: LegHandle, transcript: Transcript) {
    let shared = leg.shared.clone();
    match S2sStream::new(tcp, transcript, shared.limits.clone()) {
        Err(e) => {
            let outcome = format!("socket error before the stream began: {e}");
            leg.finish(&outcome);
            shared.emit(PeerEvent::LegClosed { leg: leg.id, outcome });
        }
        Ok(stream) => {
            let note = format!("TCP connection from {} accepted on {}", stream.peer_addr(), stream.local_addr());
            stream.transcript().note(note);
            serve_stream(stream, leg, Start::Plain(None)).await
        }
    }
}

/// How a connection reaches `serve_stream`.
pub(super) enum Start {
    /// Plain TCP; the first stream header may already have been read (by the hub, to route it).
    Plain(Option<Element>),
    /// On the direct TLS port (XEP-0368): the TLS handshake first, then the stream, whose features
    /// offer no STARTTLS.
    DirectTls,
}

/// Serve a connection to its end, then record the outcome.
pub(super) async fn serve_stream(stream: S2sStream, leg: LegHandle, start: Start) {
    let shared = leg.shared.clone();
    let (local, peer) = (stream.local_addr(), stream.peer_addr());
    leg.update(|r| {
        r.local_addr = local.to_string();
        r.peer_addr = peer.to_string();
        r.cert_presented = Some(shared.cert.label.clone());
    });
    let mut conn = Inbound::new(stream, leg.clone());
    let opened = match start {
        Start::Plain(Some(header)) => conn.on_header(&header).await,
        Start::Plain(None) => Ok(()),
        Start::DirectTls => conn.accept_tls(Some(b"xmpp-server")).await.map(|()| {
            let (sni, alpn) = (conn.stream.sni(), conn.stream.alpn());
            shared.emit(PeerEvent::DirectTls { leg: leg.id, sni, alpn });
        }),
    };
    let result = match opened {
        Ok(()) => conn.run().await,
        Err(end) => Err(end),
    };
    let outcome = match result {
        Ok(()) => "closed".to_string(),
        Err(end) => {
            conn.end(&end).await;
            end.message
        }
    };
    leg.finish(&outcome);
    shared.emit(PeerEvent::LegClosed { leg: leg.id, outcome });
}

struct Inbound {
    stream: S2sStream,
    leg: LegHandle,
    shared: Arc<Shared>,
    behaviour: PeerBehaviour,
    header_sent: bool,
    stream_id: String,
    /// The 'from' of the first stream header: the domain the peer claims.
    claimed: Option<String>,
    tls: bool,
    /// The chain the peer presented as TLS client (empty: none).
    chain: Vec<CertificateDer<'static>>,
    external_offered: bool,
    sasl_done: bool,
    /// Domains authenticated on this leg (EXTERNAL or dialback; dialback may add several).
    authenticated: Vec<String>,
}

impl Inbound {
    fn new(stream: S2sStream, leg: LegHandle) -> Inbound {
        let shared = leg.shared.clone();
        Inbound {
            stream,
            behaviour: shared.behaviour(),
            shared,
            leg,
            header_sent: false,
            stream_id: String::new(),
            claimed: None,
            tls: false,
            chain: Vec::new(),
            external_offered: false,
            sasl_done: false,
            authenticated: Vec::new(),
        }
    }

    async fn run(&mut self) -> Result<(), LegEnd> {
        loop {
            let wait =
                if self.authenticated.is_empty() { self.shared.step_timeout } else { self.shared.limits.idle_timeout };
            let event = self.stream.next_event(Instant::now() + wait).await.map_err(|e| self.read_failed(e))?;
            match event {
                StreamEvent::Header(header) => self.on_header(&header).await?,
                StreamEvent::Stanza(el) => self.on_element(el).await?,
                StreamEvent::Close => {
                    self.stream.transcript().note("the peer closed the stream");
                    let _ = self.stream.send_close().await;
                    self.stream.shutdown().await;
                    return Ok(());
                }
            }
        }
    }

    fn read_failed(&self, e: ReadError) -> LegEnd {
        match e {
            ReadError::Timeout if self.authenticated.is_empty() => LegEnd::with_error(
                "connection-timeout",
                format!("the peer sent nothing for {:?} during negotiation", self.shared.step_timeout),
            ),
            ReadError::Timeout => LegEnd::with_error(
                "connection-timeout",
                format!("the leg was idle for {:?}", self.shared.limits.idle_timeout),
            ),
            ReadError::Stalled(after) => LegEnd::with_error(
                "connection-timeout",
                format!("the peer began an element and then sent nothing for {after:?}"),
            ),
            ReadError::Eof => LegEnd::quiet("the peer closed the TCP connection without closing the stream"),
            ReadError::Xml(XmlError::TooLarge { limit }) => {
                LegEnd::with_error("policy-violation", format!("the peer sent a stanza over the {limit}-byte limit"))
            }
            ReadError::Xml(e) => LegEnd::with_error("not-well-formed", format!("bad XML from the peer: {e}")),
            ReadError::Io(e) => LegEnd::quiet(format!("I/O error: {e}")),
        }
    }

    /// Send the stream error (after a header of our own if none was sent yet), close, and shut down.
    async fn end(&mut self, end: &LegEnd) {
        if let Some(condition) = end.condition {
            if !self.header_sent {
                let domain = self.shared.domain.clone();
                let _ = self.stream.send_header(&[("from", &domain), ("version", "1.0")]).await;
            }
            let error = Element::new("error", NS_STREAM)
                .with_child(Element::new(condition, NS_STREAMS))
                .with_child(Element::new("text", NS_STREAMS).with_text(end.message.clone()));
            let _ = self.stream.send(&error).await;
            let _ = self.stream.send_close().await;
        }
        self.stream.shutdown().await;
    }

    async fn send(&mut self, el: &Element) -> Result<(), LegEnd> {
        self.stream.send(el).await.map_err(|e| LegEnd::quiet(format!("cannot write to the peer: {e}")))
    }

    async fn on_header(&mut self, header: &Element) -> Result<(), LegEnd> {
        let from = header.attr("from").map(str::to_string);
        let to = header.attr("to").unwrap_or_default().to_string();
        let version = header.attr("version") == Some("1.0");
        self.stream_id = super::new_stream_id();
        let our = self.shared.domain.clone();
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if self.behaviour.offer_dialback {
            attrs.push(("xmlns:db", NS_DIALBACK));
        }
        attrs.push(("from", &our));
        if let Some(from) = &from {
            attrs.push(("to", from));
        }
        attrs.push(("id", &self.stream_id));
        if version {
            attrs.push(("version", "1.0"));
        }
        self.stream.send_header(&attrs).await.map_err(|e| LegEnd::quiet(format!("cannot write to the peer: {e}")))?;
        self.header_sent = true;
        if self.claimed.is_none() {
            self.claimed.clone_from(&from);
            // Direct TLS: the client certificate arrived before the stream said whose it is.
            if self.tls {
                let check = self.cert_check(from.as_deref().unwrap_or_default());
                self.leg.update(|r| r.peer_cert = Some(check));
            }
        }
        let id = self.stream_id.clone();
        self.leg.update(|r| {
            r.stream_ids.push(id);
            if r.peer_domain.is_none() {
                r.peer_domain.clone_from(&from);
            }
        });
        if !same_domain(&to, &our) {
            return Err(LegEnd::with_error(
                "host-unknown",
                format!("the peer opened a stream to {to:?}, which the harness ({our}) does not serve"),
            ));
        }
        if self.stream.stream_ns() != Some(NS_SERVER) {
            return Err(LegEnd::with_error(
                "invalid-namespace",
                format!("the stream's default namespace is {:?}, not {NS_SERVER}", self.stream.stream_ns()),
            ));
        }
        if !version {
            // A pre-RFC 3920 peer: no features; only dialback is possible.
            return Ok(());
        }
        let features = self.features();
        self.send(&features).await
    }

    fn features(&mut self) -> Element {
        let mut features = Element::new("features", NS_STREAM);
        if !self.tls {
            let starttls = Element::new("starttls", NS_TLS);
            match self.behaviour.starttls {
                StartTlsOffer::Required => {
                    features = features.with_child(starttls.with_child(Element::new("required", NS_TLS)))
                }
                StartTlsOffer::Optional | StartTlsOffer::Fail => features = features.with_child(starttls),
                StartTlsOffer::Omitted => {}
            }
        }
        let tls_done_or_optional = self.tls || self.behaviour.starttls != StartTlsOffer::Required;
        self.external_offered = false;
        if self.tls && !self.sasl_done {
            let offer = match self.behaviour.offer_external {
                ExternalOffer::Always => true,
                ExternalOffer::Never => false,
                ExternalOffer::WhenValid => self.claimed.as_deref().is_some_and(|d| self.cert_check(d).accepted()),
            };
            if offer {
                self.external_offered = true;
                features = features.with_child(
                    Element::new("mechanisms", NS_SASL)
                        .with_child(Element::new("mechanism", NS_SASL).with_text("EXTERNAL")),
                );
            }
        }
        if self.behaviour.offer_dialback && !self.sasl_done && tls_done_or_optional {
            features = features.with_child(
                Element::new("dialback", NS_DIALBACK_FEATURE).with_child(Element::new("errors", NS_DIALBACK_FEATURE)),
            );
        }
        features
    }

    fn cert_check(&self, domain: &str) -> CertCheck {
        if self.chain.is_empty() {
            return CertCheck::none_presented(domain);
        }
        identity::check(&self.chain, &self.shared.roots, domain, UnixTime::now())
    }

    async fn on_element(&mut self, el: Element) -> Result<(), LegEnd> {
        if el.is("starttls", NS_TLS) {
            self.on_starttls().await
        } else if el.is("auth", NS_SASL) {
            self.on_auth(&el).await
        } else if el.is("result", NS_DIALBACK) {
            self.on_db_result(&el).await
        } else if el.is("verify", NS_DIALBACK) {
            self.on_db_verify(&el).await
        } else if el.is("error", NS_STREAM) {
            Err(LegEnd::quiet(format!("stream error from the peer: {}", describe_error(&el))))
        } else if el.ns == NS_SERVER && ["message", "presence", "iq"].contains(&el.name.as_str()) {
            self.on_stanza(el).await
        } else {
            Err(LegEnd::with_error(
                "unsupported-stanza-type",
                format!("unexpected <{}> in namespace {:?}", el.name, el.ns),
            ))
        }
    }

    async fn on_starttls(&mut self) -> Result<(), LegEnd> {
        if self.tls {
            return Err(LegEnd::with_error("policy-violation", "STARTTLS on a stream that already has TLS"));
        }
        match self.behaviour.starttls {
            StartTlsOffer::Fail | StartTlsOffer::Omitted => {
                // RFC 6120 §5.4.2.2: <failure/>, then close the stream.
                self.send(&Element::new("failure", NS_TLS)).await?;
                let _ = self.stream.send_close().await;
                self.stream.shutdown().await;
                return Err(LegEnd::quiet(format!(
                    "answered STARTTLS with <failure/> as scripted (starttls: {:?})",
                    self.behaviour.starttls
                )));
            }
            StartTlsOffer::Required | StartTlsOffer::Optional => {}
        }
        self.send(&Element::new("proceed", NS_TLS)).await?;
        if self.stream.has_unparsed_input() {
            return Err(LegEnd::quiet("the peer sent data after <starttls/> without waiting for <proceed/>"));
        }
        self.accept_tls(None).await
    }

    /// The TLS server handshake (after `<proceed/>`, or first thing on the direct TLS port with
    /// ALPN `xmpp-server`), recording version, cipher, SNI and the client's chain.
    async fn accept_tls(&mut self, alpn: Option<&[u8]>) -> Result<(), LegEnd> {
        let mut config = tls::s2s_server_config(&self.shared.cert.credentials, self.behaviour.request_client_cert)
            .map_err(|e| LegEnd::quiet(format!("{e:#}")))?;
        if let Some(protocol) = alpn {
            let mut with_alpn = (*config.config).clone();
            with_alpn.alpn_protocols = vec![protocol.to_vec()];
            config.config = Arc::new(with_alpn);
        }
        let deadline = Instant::now() + self.shared.step_timeout;
        if let Err(e) = self.stream.tls_accept(&config, deadline).await {
            return Err(LegEnd::quiet(format!("TLS handshake failed: {e}")));
        }
        self.tls = true;
        self.chain = config.seen.get();
        let reference = self.claimed.clone().unwrap_or_default();
        let check = self.cert_check(&reference);
        let info = self.stream.tls_info(&config.seen, &reference);
        let sni = self.stream.sni();
        if let Some(info) = &info {
            self.stream.transcript().note(format!(
                "TLS established: {} {}, SNI {:?}; client certificate: {}",
                info.version,
                info.cipher,
                sni.as_deref().unwrap_or("(none)"),
                check.summary()
            ));
        }
        self.leg.update(|r| {
            r.tls = info;
            r.sni = sni;
            r.peer_cert = Some(check);
        });
        Ok(())
    }

    fn record_auth(&self, method: AuthMethod, domain: &str, succeeded: bool, detail: String) {
        self.stream
            .transcript()
            .note(format!("{method:?} for {domain}: {} ({detail})", if succeeded { "accepted" } else { "refused" }));
        let record = AuthRecord { method, domain: domain.to_string(), succeeded, detail };
        self.leg.update(|r| r.auth.push(record));
        if succeeded {
            self.shared.emit(PeerEvent::Authenticated { leg: self.leg.id, domain: domain.to_string(), method });
        }
    }

    async fn sasl_failure(&mut self, condition: &str, detail: String, domain: &str) -> Result<(), LegEnd> {
        self.record_auth(AuthMethod::SaslExternal, domain, false, format!("{condition}: {detail}"));
        let failure = Element::new("failure", NS_SASL).with_child(Element::new(condition, NS_SASL));
        self.send(&failure).await
    }

    /// SASL EXTERNAL (XEP-0178 §3): the certificate must be valid for the authorization identity
    /// (or, without one, for the stream's 'from').
    async fn on_auth(&mut self, auth: &Element) -> Result<(), LegEnd> {
        let claimed = self.claimed.clone().unwrap_or_default();
        let mechanism = auth.attr("mechanism").unwrap_or_default().to_string();
        if mechanism != "EXTERNAL" || !self.external_offered || self.sasl_done {
            let why = format!("mechanism {mechanism:?} was not offered on this stream");
            return self.sasl_failure("invalid-mechanism", why, &claimed).await;
        }
        let text = auth.text();
        let text = text.trim();
        let authzid = if text.is_empty() || text == "=" {
            None
        } else {
            match B64.decode(text).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(id) => Some(id),
                None => {
                    return self.sasl_failure("incorrect-encoding", format!("{text:?} is not base64"), &claimed).await
                }
            }
        };
        if let Some(id) = &authzid {
            if !same_domain(id, &claimed) {
                let why = format!("authzid {id:?} differs from the stream's 'from' {claimed:?}");
                return self.sasl_failure("invalid-authzid", why, &claimed).await;
            }
        }
        let domain = authzid.unwrap_or(claimed);
        let check = self.cert_check(&domain);
        if !check.accepted() {
            return self.sasl_failure("not-authorized", check.summary(), &domain).await;
        }
        self.send(&Element::new("success", NS_SASL)).await?;
        self.stream.restart();
        self.sasl_done = true;
        self.authenticated.push(domain.clone());
        self.record_auth(AuthMethod::SaslExternal, &domain, true, check.summary());
        Ok(())
    }

    /// A dialback request (XEP-0220 §2.1.1): the harness is the receiving server and judges the key.
    async fn on_db_result(&mut self, el: &Element) -> Result<(), LegEnd> {
        let our = self.shared.domain.clone();
        let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
            return Err(LegEnd::with_error("improper-addressing", "a db:result without 'from' or 'to'"));
        };
        let (from, to) = (from.to_string(), to.to_string());
        if let Some(kind) = el.attr("type") {
            // An answer nobody asked for on a stream where the harness never sent a request.
            self.stream.transcript().note(format!("ignored an unsolicited db:result type={kind:?} from {from}"));
            return Ok(());
        }
        if !same_domain(&to, &our) {
            // XEP-0220 §2.4: a dialback error; the stream stays open.
            return self.send(&dialback::result_error(&to, &from, "cancel", "item-not-found")).await;
        }
        if !self.tls && self.behaviour.starttls == StartTlsOffer::Required {
            return Err(LegEnd::with_error(
                "policy-violation",
                format!("dialback from {from} before STARTTLS, which the harness requires (XEP-0220 §2.5)"),
            ));
        }
        let key = el.text().trim().to_string();
        let (valid, method, detail) = match self.behaviour.dialback_result {
            DialbackJudge::Valid => (true, AuthMethod::DialbackUnchecked, "answered valid unchecked".to_string()),
            DialbackJudge::Invalid => (false, AuthMethod::DialbackUnchecked, "answered invalid as scripted".into()),
            DialbackJudge::CertificateOrVerify if self.cert_check(&from).accepted() => {
                // XEP-0344 "dialback without dialing back": a certificate valid for the domain proves it.
                (true, AuthMethod::DialbackWithoutDialingBack, "the TLS certificate is valid for the domain".into())
            }
            DialbackJudge::CertificateOrVerify | DialbackJudge::Verify => {
                match outbound::verify_key(self.shared.clone(), &from, &self.stream_id, &key).await {
                    Ok((valid, detail)) => (valid, AuthMethod::Dialback, detail),
                    Err(e) => {
                        let detail = format!("cannot ask {from}'s authoritative server: {e}");
                        self.record_auth(AuthMethod::Dialback, &from, false, detail);
                        let answer = dialback::result_error(&our, &from, "cancel", "remote-server-not-found");
                        return self.send(&answer).await;
                    }
                }
            }
        };
        let kind = if valid { "valid" } else { "invalid" };
        self.send(&dialback::result(&our, &from, ResultBody::Type(kind))).await?;
        self.record_auth(method, &from, valid, detail);
        if !valid {
            return Err(LegEnd::quiet(format!("dialback for {from} was answered invalid; stream closed")));
        }
        self.authenticated.push(from);
        Ok(())
    }

    /// A verify request (XEP-0220 §2.1.2): the harness is the authoritative server for its domain.
    async fn on_db_verify(&mut self, el: &Element) -> Result<(), LegEnd> {
        let our = self.shared.domain.clone();
        let from = el.attr("from").unwrap_or_default().to_string();
        let to = el.attr("to").unwrap_or_default().to_string();
        let id = el.attr("id").unwrap_or_default().to_string();
        if el.attr("type").is_some() {
            self.stream.transcript().note(format!("ignored an unsolicited db:verify answer from {from}"));
            return Ok(());
        }
        let key = el.text().trim().to_string();
        let key_matches = same_domain(&to, &our) && key == dialback::key(&self.shared.secret, &from, &our, &id);
        let valid = match self.behaviour.dialback_verify {
            VerifyAnswer::Honest => key_matches,
            VerifyAnswer::Valid => true,
            VerifyAnswer::Invalid => false,
        };
        let answer = if valid { "valid" } else { "invalid" };
        // XEP-0220 §2.2.2: 'from' and 'to' swapped, 'id' copied.
        self.send(&dialback::verify(&to, &from, &id, ResultBody::Type(answer))).await?;
        self.stream.transcript().note(format!(
            "answered db:verify from {from} for stream {id}: {answer} (the key {} the one the harness issued)",
            if key_matches { "is" } else { "is not" }
        ));
        let record = VerifyRecord { from, stream_id: id, key_matches, answered: answer.to_string() };
        self.leg.update(|r| r.dialback_verifies.push(record));
        Ok(())
    }

    /// A stanza: handed to the caller with its authentication context; from an unauthenticated
    /// domain it is then answered with the stream error RFC 6120 requires.
    async fn on_stanza(&mut self, el: Element) -> Result<(), LegEnd> {
        let from_domain = el.attr("from").map(domain_of);
        let authenticated_as = from_domain.as_ref().and_then(|d| self.authenticated.iter().find(|a| same_domain(a, d)));
        let authenticated_as = authenticated_as.cloned();
        self.leg.update(|r| r.stanzas_in += 1);
        let size = element_size(&el);
        let event = PeerEvent::Stanza { leg: self.leg.id, authenticated_as: authenticated_as.clone(), element: el };
        if let Err(flood) = self.shared.deliver(event, size) {
            return Err(LegEnd::with_error("policy-violation", flood.0));
        }
        if authenticated_as.is_some() {
            return Ok(());
        }
        if self.authenticated.is_empty() {
            Err(LegEnd::with_error(
                "not-authorized",
                "a stanza arrived before the peer authenticated (RFC 6120 §4.3.5, §8.1.2.2)",
            ))
        } else {
            Err(LegEnd::with_error(
                "invalid-from",
                format!(
                    "a stanza from {:?} on a leg authenticated for {:?} (RFC 6120 §8.1.2.2)",
                    from_domain.unwrap_or_default(),
                    self.authenticated
                ),
            ))
        }
    }
}

/// The domain part of a JID as sent (no preparation: this is for comparing with a stream domain).
pub(super) fn domain_of(jid: &str) -> String {
    let bare = jid.split('/').next().unwrap_or_default();
    bare.rsplit('@').next().unwrap_or_default().to_string()
}

/// Domains compare case-insensitively, as A-labels.
pub(super) fn same_domain(a: &str, b: &str) -> bool {
    let norm = |d: &str| crate::net::resolve::ascii_domain(d).unwrap_or_else(|_| d.to_string()).to_ascii_lowercase();
    !a.is_empty() && norm(a) == norm(b)
}
