//! A c2s client session: connect, STARTTLS, SASL, bind; then a reader and a writer task so
//! the runner can wait on many actors at once.
//!
//! The negotiation steps are public functions over an [`XmlStream`] ([`open_tcp`],
//! [`open_stream`], [`negotiate_tls`], [`authenticate`], [`bind`]) so a conformance case can
//! stop after any of them and continue by hand; [`Session::connect`] runs them all.
//! After binding the session is a raw conduit: nothing is answered automatically.

use crate::jid::Jid;
use crate::net::resolve::{self, Service, Target};
use crate::net::tls::{self, TlsInfo, TlsMode, Trust};
use crate::xml::{stream_close, Element, StreamEvent, NS_CLIENT, NS_STREAM};
use crate::xmpp::sasl::{self, Capabilities, ChannelBinding, Mechanism, Scram, ServerFirst, NS_SASL, NS_SASL_CB};
use crate::xmpp::stream::{ReadError, StreamReader, StreamWriter, XmlStream};
use crate::xmpp::Transcript;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::io;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_REGISTER: &str = "jabber:iq:register";
/// How long `close` waits for the server's `</stream:stream>`.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Everything needed to log in one client.
#[derive(Clone, Debug)]
pub struct ClientParams {
    /// The account's bare JID.
    pub jid: Jid,
    pub password: String,
    /// Resource to request at bind; `None` lets the server generate one.
    pub resource: Option<String>,
    pub target: Target,
    pub tls: TlsMode,
    pub trust: Trust,
    /// The stream's `xml:lang`.
    pub lang: Option<String>,
    /// Deadline for each negotiation step (connect, TLS, SASL, bind).
    pub step_timeout: Duration,
    pub max_stanza: usize,
}

/// What the reader task delivers.
#[derive(Clone, Debug)]
pub enum Incoming {
    Stanza(Element),
    /// The stream ended: `error` says why (stream error condition, TCP reset, XML error…),
    /// `None` for a clean `</stream:stream>`.
    Closed {
        error: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum XmppError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("TLS with {domain} failed: {message}")]
    Tls { domain: String, message: String },
    #[error("authentication as {jid} failed: {condition}")]
    Auth { jid: String, condition: String },
    #[error("resource binding failed: {0}")]
    Bind(String),
    #[error("in-band registration of {jid} failed: {condition}")]
    Register { jid: String, condition: String },
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout { waiting_for: String, after: Duration },
    #[error("stream error from server: {0}")]
    StreamError(String),
    #[error("the server closed the stream during {0}")]
    Closed(String),
    #[error("bad XML from server: {0}")]
    Xml(#[from] crate::xml::XmlError),
    #[error("{0}")]
    Protocol(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl XmppError {
    /// The defined condition the server gave, when the error carries one (`conflict`,
    /// `not-authorized`, `host-unknown`, …): the first word of the condition text.
    pub fn condition(&self) -> Option<&str> {
        let text = match self {
            XmppError::Auth { condition, .. } | XmppError::Register { condition, .. } => condition,
            XmppError::Bind(c) | XmppError::StreamError(c) => c,
            _ => return None,
        };
        text.split_whitespace().next()
    }
}

/// What a server's error element says: its defined condition and optional `<text/>`, as
/// `condition` or `condition (text: "…")`. Works for stanza errors, stream errors and SASL failures.
pub fn describe_error(error: &Element) -> String {
    let condition = error.elements().find(|e| e.name != "text").map(|e| e.name.as_str()).unwrap_or("(no condition)");
    match error.elements().find(|e| e.name == "text").map(|t| t.text()) {
        Some(text) if !text.trim().is_empty() => format!("{condition} (text: {:?})", text.trim()),
        _ => condition.to_string(),
    }
}

/// A cheap description of an element for error messages, cut to a readable length.
fn show(el: &Element) -> String {
    let xml = el.to_xml_in(NS_CLIENT);
    if xml.chars().count() > 400 {
        format!("{}…", xml.chars().take(400).collect::<String>())
    } else {
        xml
    }
}

/// Turn a failed read into an error naming the step.
fn read_failed(e: ReadError, step: &str, after: Duration) -> XmppError {
    match e {
        ReadError::Timeout => XmppError::Timeout { waiting_for: step.to_string(), after },
        ReadError::Eof => XmppError::Closed(format!("{step} (TCP connection closed)")),
        ReadError::Xml(x) => XmppError::Protocol(format!("bad XML from server during {step}: {x}")),
        ReadError::Io(e) => XmppError::Io(io::Error::new(e.kind(), format!("during {step}: {e}"))),
    }
}

fn write_failed(e: io::Error, step: &str) -> XmppError {
    XmppError::Io(io::Error::new(e.kind(), format!("sending during {step}: {e}")))
}

/// The next top-level element; stream errors, closes and new headers become errors naming `step`.
pub async fn read_element(
    stream: &mut XmlStream,
    step: &str,
    deadline: Instant,
    after: Duration,
) -> Result<Element, XmppError> {
    match stream.next_event(deadline).await.map_err(|e| read_failed(e, step, after))? {
        StreamEvent::Stanza(el) if el.is("error", NS_STREAM) => {
            Err(XmppError::StreamError(format!("{} during {step}", describe_error(&el))))
        }
        StreamEvent::Stanza(el) => Ok(el),
        StreamEvent::Close => Err(XmppError::Closed(step.to_string())),
        StreamEvent::Header(_) => {
            Err(XmppError::Protocol(format!("the server sent a second stream header during {step}")))
        }
    }
}

/// Try the resolved candidates in order; the first TCP connection wins.
pub async fn open_tcp(params: &ClientParams, transcript: &Transcript) -> Result<XmlStream, XmppError> {
    let target = &params.target;
    let connect_error = |message: String| XmppError::Connect { target: target.domain.clone(), message };
    let service = if params.tls == TlsMode::Direct { Service::DirectClient } else { Service::Client };
    let addrs = match tokio::time::timeout(params.step_timeout, resolve::resolve(target, service)).await {
        Err(_) => return Err(connect_error(format!("name resolution took longer than {:?}", params.step_timeout))),
        Ok(Err(e)) => return Err(connect_error(format!("{e:#}"))),
        Ok(Ok(addrs)) => addrs,
    };
    let mut failures = Vec::new();
    for addr in addrs {
        match XmlStream::connect(addr, NS_CLIENT, transcript.clone(), params.max_stanza, params.step_timeout).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                transcript.note(format!("TCP connect to {addr} failed: {e}"));
                failures.push(format!("{addr}: {e}"));
            }
        }
    }
    Err(connect_error(format!("no candidate address accepted a TCP connection ({})", failures.join("; "))))
}

/// Send a stream header (to = `domain`, version 1.0, optional `from` and `xml:lang`) and read the
/// server's header and `<stream:features/>`. Returns (header, features).
pub async fn open_stream(
    stream: &mut XmlStream,
    domain: &str,
    from: Option<&str>,
    lang: Option<&str>,
    step_timeout: Duration,
) -> Result<(Element, Element), XmppError> {
    let mut attrs: Vec<(&str, &str)> = vec![("to", domain)];
    if let Some(from) = from {
        attrs.push(("from", from));
    }
    attrs.push(("version", "1.0"));
    if let Some(lang) = lang {
        attrs.push(("xml:lang", lang));
    }
    stream.send_header(&attrs).await.map_err(|e| write_failed(e, "opening the stream"))?;
    let deadline = Instant::now() + step_timeout;
    let header =
        match stream.next_event(deadline).await.map_err(|e| read_failed(e, "the stream header", step_timeout))? {
            StreamEvent::Header(h) => h,
            StreamEvent::Stanza(el) if el.is("error", NS_STREAM) => {
                return Err(XmppError::StreamError(format!("{} before the stream header", describe_error(&el))))
            }
            StreamEvent::Stanza(el) => {
                return Err(XmppError::Protocol(format!("expected a stream header, got {}", show(&el))))
            }
            StreamEvent::Close => return Err(XmppError::Closed("opening the stream".into())),
        };
    let features = read_element(stream, "stream features", deadline, step_timeout).await?;
    if !features.is("features", NS_STREAM) {
        return Err(XmppError::Protocol(format!("expected <stream:features/>, got {}", show(&features))));
    }
    Ok((header, features))
}

/// STARTTLS as `mode` asks, given the pre-TLS `features`. Returns `None` when the stream stays
/// in the clear; on success the stream is restarted and the new features are returned with the
/// TLS description.
pub async fn negotiate_tls(
    stream: &mut XmlStream,
    features: &Element,
    params: &ClientParams,
) -> Result<Option<(TlsInfo, Element)>, XmppError> {
    let domain = params.jid.domain();
    let tls_error = |message: String| XmppError::Tls { domain: domain.to_string(), message };
    let offered = features.child("starttls", NS_TLS);
    match (offered, params.tls) {
        (None, TlsMode::Required) => {
            return Err(tls_error(format!(
                "the server does not offer STARTTLS (its features: {}); if this server really has no TLS, \
                 set `tls: optional` for it in the servers file",
                show(features)
            )))
        }
        (Some(st), TlsMode::Disabled) if st.child("required", NS_TLS).is_some() => {
            return Err(tls_error(
                "the server requires STARTTLS but the servers file says `tls: disabled`; use `tls: required`".into(),
            ))
        }
        // Direct TLS is established before the stream (`direct_tls`); nothing to negotiate here.
        (None, _) | (Some(_), TlsMode::Disabled | TlsMode::Direct) => return Ok(None),
        (Some(_), TlsMode::Required | TlsMode::Optional) => {}
    }

    let step = "STARTTLS";
    let deadline = Instant::now() + params.step_timeout;
    stream.send(&Element::new("starttls", NS_TLS)).await.map_err(|e| write_failed(e, step))?;
    let answer = read_element(stream, step, deadline, params.step_timeout).await?;
    if answer.is("failure", NS_TLS) {
        return Err(tls_error(format!("the server answered <starttls/> with {}", show(&answer))));
    }
    if !answer.is("proceed", NS_TLS) {
        return Err(XmppError::Protocol(format!("expected <proceed/> after <starttls/>, got {}", show(&answer))));
    }
    if stream.has_unparsed_input() {
        return Err(tls_error("the server sent data after <proceed/> before the TLS handshake".into()));
    }
    let client_tls = tls::client_config(&params.trust).map_err(|e| tls_error(format!("{e:#}")))?;
    let info = match stream.start_tls(&client_tls, domain, Instant::now() + params.step_timeout).await {
        Ok(info) => info,
        Err(e) => {
            let presented = client_tls.seen.subjects();
            let presented =
                if presented.is_empty() { String::new() } else { format!("; the server presented {presented:?}") };
            return Err(tls_error(format!("handshake failed: {e}{presented}")));
        }
    };
    let from = params.jid.bare().to_string();
    let (_, features) = open_stream(stream, domain, Some(&from), params.lang.as_deref(), params.step_timeout).await?;
    Ok(Some((info, features)))
}

/// The mechanisms listed in `<mechanisms/>`, as sent.
pub fn offered_mechanisms(features: &Element) -> Vec<String> {
    features
        .child("mechanisms", NS_SASL)
        .map(|m| m.elements().filter(|e| e.name == "mechanism").map(|e| e.text().trim().to_string()).collect())
        .unwrap_or_default()
}

/// What this stream allows for mechanism choice (TLS, tls-exporter, XEP-0440 types).
pub fn capabilities(stream: &XmlStream, features: &Element) -> Capabilities {
    let conn = stream.tls_connection();
    Capabilities {
        tls: conn.is_some(),
        exporter: conn.and_then(tls::tls_exporter).is_some(),
        server_cb_types: features.child("sasl-channel-binding", NS_SASL_CB).map(|cb| {
            cb.elements()
                .filter(|e| e.name == "channel-binding")
                .filter_map(|e| e.attr("type"))
                .map(str::to_string)
                .collect()
        }),
    }
}

fn sasl_element(name: &str, data: &[u8]) -> Element {
    // RFC 6120 §6.4.2: empty data is sent as "=".
    let text = if data.is_empty() { "=".to_string() } else { B64.encode(data) };
    Element::new(name, NS_SASL).with_text(text)
}

fn sasl_data(el: &Element, step: &str) -> Result<Vec<u8>, XmppError> {
    let text = el.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text).map_err(|e| XmppError::Protocol(format!("{step}: <{}> data is not base64: {e}", el.name)))
}

/// SASL with the preferred mechanism the server offers in `features`. Returns the mechanism used.
/// On `<success/>` the caller restarts the stream.
pub async fn authenticate(
    stream: &mut XmlStream,
    features: &Element,
    params: &ClientParams,
) -> Result<Mechanism, XmppError> {
    let auth_error = |condition: String| XmppError::Auth { jid: params.jid.bare().to_string(), condition };
    let offered = offered_mechanisms(features);
    if offered.is_empty() {
        return Err(auth_error(format!("the server offers no SASL mechanisms (its features: {})", show(features))));
    }
    let Some(mechanism) = sasl::choose_mechanism(&offered, &capabilities(stream, features)) else {
        return Err(auth_error(format!(
            "no usable mechanism: the server offers {offered:?}; plugfest speaks SCRAM-SHA-256(-PLUS), \
             SCRAM-SHA-1(-PLUS) and PLAIN (PLAIN only over TLS)"
        )));
    };
    authenticate_with(stream, features, params, mechanism).await?;
    Ok(mechanism)
}

/// SASL with a given mechanism (a case may insist on SCRAM-SHA-1, say), whether or not the
/// server offers it. SCRAM verifies the server's signature (mutual authentication).
pub async fn authenticate_with(
    stream: &mut XmlStream,
    features: &Element,
    params: &ClientParams,
    mechanism: Mechanism,
) -> Result<(), XmppError> {
    let exchange = SaslExchange {
        jid: params.jid.bare().to_string(),
        step: format!("SASL {}", mechanism.name()),
        mechanism,
        deadline: Instant::now() + params.step_timeout,
        after: params.step_timeout,
    };
    let Some(username) = params.jid.local() else {
        return Err(exchange.failed("the JID has no localpart to authenticate with".into()));
    };
    let Some(hash) = mechanism.scram_hash() else {
        let message = sasl::plain_message(None, username, &params.password);
        exchange.send(stream, sasl_element("auth", &message).with_attr("mechanism", mechanism.name())).await?;
        exchange.expect(stream, "success").await?;
        return Ok(());
    };

    let offered = offered_mechanisms(features);
    let exporter = stream.tls_connection().and_then(tls::tls_exporter);
    let binding =
        ChannelBinding::for_mechanism(mechanism, &capabilities(stream, features), &offered, exporter.as_deref());
    let scram = Scram::new(hash, username, &params.password, binding);
    let auth = sasl_element("auth", scram.client_first().as_bytes()).with_attr("mechanism", mechanism.name());
    exchange.send(stream, auth).await?;

    let challenge = exchange.expect(stream, "challenge").await?;
    let server_first = String::from_utf8(sasl_data(&challenge, &exchange.step)?)
        .map_err(|_| XmppError::Protocol(format!("{}: server-first-message is not UTF-8", exchange.step)))?;
    let client_final =
        ServerFirst::parse(&server_first).and_then(|sf| scram.client_final(&sf)).map_err(|e| exchange.failed(e.0))?;
    exchange.send(stream, sasl_element("response", client_final.message().as_bytes())).await?;

    let mut answer = exchange.next(stream).await?;
    let mut verified = false;
    if answer.name == "challenge" {
        // Some servers send server-final in a challenge and expect an empty response.
        let data = String::from_utf8_lossy(&sasl_data(&answer, &exchange.step)?).into_owned();
        client_final.verify_server_final(&data).map_err(|e| exchange.failed(e.0))?;
        verified = true;
        exchange.send(stream, sasl_element("response", b"")).await?;
        answer = exchange.expect(stream, "success").await?;
    }
    let data = sasl_data(&answer, &exchange.step)?;
    if !data.is_empty() {
        client_final.verify_server_final(&String::from_utf8_lossy(&data)).map_err(|e| exchange.failed(e.0))?;
        verified = true;
    }
    if !verified {
        return Err(exchange.failed(
            "the server sent <success/> without a server signature (v=): it did not prove it knows the password".into(),
        ));
    }
    Ok(())
}

/// The context of one SASL exchange, for sending, reading and naming errors.
struct SaslExchange {
    jid: String,
    step: String,
    mechanism: Mechanism,
    deadline: Instant,
    after: Duration,
}

impl SaslExchange {
    fn failed(&self, condition: String) -> XmppError {
        XmppError::Auth {
            jid: self.jid.clone(),
            condition: format!("{condition} (mechanism {})", self.mechanism.name()),
        }
    }

    async fn send(&self, stream: &mut XmlStream, el: Element) -> Result<(), XmppError> {
        stream.send(&el).await.map_err(|e| write_failed(e, &self.step))
    }

    /// The server's next SASL element: `<challenge/>` or `<success/>`; `<failure/>` becomes an
    /// authentication error with its condition.
    async fn next(&self, stream: &mut XmlStream) -> Result<Element, XmppError> {
        let el = read_element(stream, &self.step, self.deadline, self.after).await?;
        if el.is("failure", NS_SASL) {
            return Err(self.failed(describe_error(&el)));
        }
        if el.ns != NS_SASL || !["challenge", "success"].contains(&el.name.as_str()) {
            return Err(XmppError::Protocol(format!("{}: unexpected {}", self.step, show(&el))));
        }
        Ok(el)
    }

    async fn expect(&self, stream: &mut XmlStream, name: &str) -> Result<Element, XmppError> {
        let el = self.next(stream).await?;
        if el.name != name {
            return Err(XmppError::Protocol(format!("{}: expected <{name}/>, got {}", self.step, show(&el))));
        }
        Ok(el)
    }
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}-{}", sasl::random_nonce().replace(['+', '/'], "x").chars().take(10).collect::<String>())
}

/// Send an IQ and wait for the result or error with its id. Other elements that arrive meanwhile
/// are kept in `early` (they belong to the session, not to this step).
pub async fn iq_roundtrip(
    stream: &mut XmlStream,
    iq: Element,
    step: &str,
    step_timeout: Duration,
    early: &mut Vec<Element>,
) -> Result<Element, XmppError> {
    let id = iq.attr("id").unwrap_or_default().to_string();
    stream.send(&iq).await.map_err(|e| write_failed(e, step))?;
    let deadline = Instant::now() + step_timeout;
    loop {
        let el = read_element(stream, step, deadline, step_timeout).await?;
        if el.is("iq", NS_CLIENT) && el.attr("id") == Some(id.as_str()) {
            return Ok(el);
        }
        early.push(el);
    }
}

/// The error an IQ of type 'error' carries, described.
fn iq_error(iq: &Element) -> String {
    match iq.child("error", NS_CLIENT) {
        Some(e) => describe_error(e),
        None if iq.attr("type") == Some("error") => "(error without an <error/> child)".into(),
        None => format!("unexpected answer {}", show(iq)),
    }
}

/// Resource binding (RFC 6120 §7), requesting `resource` or letting the server choose.
/// Returns the full JID the server bound.
pub async fn bind(
    stream: &mut XmlStream,
    features: &Element,
    resource: Option<&str>,
    step_timeout: Duration,
    early: &mut Vec<Element>,
) -> Result<Jid, XmppError> {
    if features.child("bind", NS_BIND).is_none() {
        return Err(XmppError::Bind(format!(
            "the server offers no resource binding after authentication (its features: {})",
            show(features)
        )));
    }
    let mut request = Element::new("bind", NS_BIND);
    if let Some(r) = resource {
        request = request.with_child(Element::new("resource", NS_BIND).with_text(r));
    }
    let iq =
        Element::new("iq", NS_CLIENT).with_attr("type", "set").with_attr("id", random_id("bind")).with_child(request);
    let answer = iq_roundtrip(stream, iq, "resource binding", step_timeout, early).await?;
    if answer.attr("type") != Some("result") {
        return Err(XmppError::Bind(iq_error(&answer)));
    }
    let Some(jid_text) = answer.child("bind", NS_BIND).and_then(|b| b.child("jid", NS_BIND)).map(|j| j.text()) else {
        return Err(XmppError::Bind(format!("the bind result has no <jid/>: {}", show(&answer))));
    };
    Jid::parse(jid_text.trim())
        .map_err(|e| XmppError::Bind(format!("the server bound an invalid JID {jid_text:?}: {e}")))
}

/// RFC 3921 session establishment, only when the server advertises it as not optional
/// (RFC 6121 §1.4 made it optional; XEP-0206-era servers mark it with `<optional/>`).
pub async fn establish_session_if_required(
    stream: &mut XmlStream,
    features: &Element,
    step_timeout: Duration,
    early: &mut Vec<Element>,
) -> Result<(), XmppError> {
    match features.child("session", NS_SESSION) {
        Some(s) if s.child("optional", NS_SESSION).is_none() => {}
        _ => return Ok(()),
    }
    let iq = Element::new("iq", NS_CLIENT)
        .with_attr("type", "set")
        .with_attr("id", random_id("sess"))
        .with_child(Element::new("session", NS_SESSION));
    let answer = iq_roundtrip(stream, iq, "session establishment", step_timeout, early).await?;
    if answer.attr("type") != Some("result") {
        return Err(XmppError::Protocol(format!("session establishment failed: {}", iq_error(&answer))));
    }
    Ok(())
}

/// Connect and negotiate up to (but excluding) SASL: TCP, stream, STARTTLS per `params.tls`.
/// Returns the stream, the current features and the TLS description.
pub async fn connect_until_auth(
    params: &ClientParams,
    transcript: &Transcript,
) -> Result<(XmlStream, Element, Option<TlsInfo>), XmppError> {
    let mut stream = open_tcp(params, transcript).await?;
    let domain = params.jid.domain();
    if params.tls == TlsMode::Direct {
        return direct_tls(stream, params).await;
    }
    let (_, features) = open_stream(&mut stream, domain, None, params.lang.as_deref(), params.step_timeout).await?;
    match negotiate_tls(&mut stream, &features, params).await? {
        Some((info, features)) => Ok((stream, features, Some(info))),
        None => Ok((stream, features, None)),
    }
}

/// XEP-0368 §3: TLS first (SNI = the domain, ALPN `xmpp-client`), then the stream, whose features
/// must not offer STARTTLS any more.
async fn direct_tls(
    mut stream: XmlStream,
    params: &ClientParams,
) -> Result<(XmlStream, Element, Option<TlsInfo>), XmppError> {
    let domain = params.jid.domain();
    let tls_error = |message: String| XmppError::Tls { domain: domain.to_string(), message };
    let mut client_tls = tls::client_config(&params.trust).map_err(|e| tls_error(format!("{e:#}")))?;
    let mut config = (*client_tls.config).clone();
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    client_tls.config = std::sync::Arc::new(config);
    let info = stream
        .start_tls(&client_tls, domain, Instant::now() + params.step_timeout)
        .await
        .map_err(|e| tls_error(format!("direct TLS handshake failed: {e}")))?;
    let (_, features) = open_stream(&mut stream, domain, None, params.lang.as_deref(), params.step_timeout).await?;
    if features.child("starttls", NS_TLS).is_some() {
        return Err(XmppError::Protocol(format!(
            "the server offers STARTTLS inside direct TLS ({}); XEP-0368 §3: STARTTLS MUST NOT be used over direct TLS",
            show(&features)
        )));
    }
    Ok((stream, features, Some(info)))
}

/// One request to the writer task.
enum WriteRequest {
    Bytes { bytes: Vec<u8>, done: oneshot::Sender<io::Result<()>> },
    Shutdown { done: oneshot::Sender<io::Result<()>> },
}

/// Cheap-to-clone handle for sending on an established session.
#[derive(Clone)]
pub struct StanzaSender {
    tx: mpsc::UnboundedSender<WriteRequest>,
}

impl StanzaSender {
    /// Serialise and send one element (in the stream's namespace).
    pub async fn send(&self, el: &Element) -> Result<(), XmppError> {
        self.send_raw(el.to_xml_in(NS_CLIENT).into_bytes()).await
    }

    /// Send bytes as they are (for malformed-input cases).
    /// Returns once they are written to the socket (or writing failed or timed out).
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), XmppError> {
        let (done, result) = oneshot::channel();
        self.tx.send(WriteRequest::Bytes { bytes, done }).map_err(|_| session_gone())?;
        result.await.map_err(|_| session_gone())?.map_err(XmppError::Io)
    }

    async fn shutdown(&self) -> Result<(), XmppError> {
        let (done, result) = oneshot::channel();
        self.tx.send(WriteRequest::Shutdown { done }).map_err(|_| session_gone())?;
        result.await.map_err(|_| session_gone())?.map_err(XmppError::Io)
    }
}

fn session_gone() -> XmppError {
    XmppError::Io(io::Error::new(io::ErrorKind::NotConnected, "the session is closed; nothing was sent"))
}

/// Writes requests in order; each write is bounded by `write_timeout`. After a failure every
/// later request fails too (the connection is broken).
async fn writer_task(mut writer: StreamWriter, mut rx: mpsc::UnboundedReceiver<WriteRequest>, write_timeout: Duration) {
    let mut broken: Option<String> = None;
    while let Some(request) = rx.recv().await {
        let (result, done) = match request {
            WriteRequest::Bytes { bytes, done } => {
                let result = match &broken {
                    Some(why) => Err(io::Error::new(io::ErrorKind::BrokenPipe, why.clone())),
                    None => match tokio::time::timeout(write_timeout, writer.send_raw(&bytes)).await {
                        Ok(r) => r,
                        Err(_) => Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the server did not take the bytes within {write_timeout:?}"),
                        )),
                    },
                };
                (result, done)
            }
            WriteRequest::Shutdown { done } => {
                let result = tokio::time::timeout(write_timeout, writer.shutdown())
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "shutdown timed out")));
                (result, done)
            }
        };
        if let Err(e) = &result {
            broken.get_or_insert_with(|| format!("an earlier write failed: {e}"));
        }
        let _ = done.send(result); // the caller may have given up waiting
    }
}

/// Delivers every top-level element, then exactly one `Closed`.
async fn reader_task(mut reader: StreamReader, tx: mpsc::UnboundedSender<Incoming>, transcript: Transcript) {
    let error = loop {
        match reader.next_event(None).await {
            Ok(StreamEvent::Stanza(el)) if el.is("error", NS_STREAM) => {
                let why = format!("stream error: {}", describe_error(&el));
                let _ = tx.send(Incoming::Stanza(el));
                // Read the close (and record it) for a moment, but never wait long for it.
                let _ = reader.next_event(Some(Instant::now() + CLOSE_WAIT)).await;
                break Some(why);
            }
            Ok(StreamEvent::Stanza(el)) => {
                if tx.send(Incoming::Stanza(el)).is_err() {
                    return; // nobody listens any more
                }
            }
            Ok(StreamEvent::Close) => break None,
            Ok(StreamEvent::Header(_)) => break Some("the server sent a second stream header".to_string()),
            Err(ReadError::Eof) => {
                break Some("the server closed the TCP connection without closing the stream".into())
            }
            Err(ReadError::Xml(e)) => break Some(format!("bad XML from server: {e}")),
            Err(ReadError::Io(e)) => break Some(format!("I/O error: {e}")),
            Err(ReadError::Timeout) => break Some("read timed out".into()),
        }
    };
    transcript.note(match &error {
        None => "the server closed the stream".to_string(),
        Some(why) => format!("stream ended: {why}"),
    });
    let _ = tx.send(Incoming::Closed { error });
}

/// An established, bound c2s session.
pub struct Session {
    /// The full JID the server bound.
    pub jid: Jid,
    /// The stream features after binding's stream restart (for gates such as rosterver).
    pub features: Element,
    pub tls: Option<TlsInfo>,
    /// Stanzas from the server, in order, ending with one `Closed`. A stream error arrives as
    /// its `<stream:error/>` element, then `Closed` with the condition.
    pub incoming: mpsc::UnboundedReceiver<Incoming>,
    sender: StanzaSender,
    /// The SASL mechanism that authenticated the session.
    pub mechanism: Mechanism,
    transcript: Transcript,
    tasks: Vec<JoinHandle<()>>,
}

impl Session {
    /// Connect and negotiate up to a bound resource. Every step has `params.step_timeout`.
    pub async fn connect(params: &ClientParams, transcript: Transcript) -> Result<Session, XmppError> {
        let (mut stream, features, tls) = connect_until_auth(params, &transcript).await?;
        let mechanism = authenticate(&mut stream, &features, params).await?;
        stream.restart();
        let domain = params.jid.domain();
        let from = params.jid.bare().to_string();
        let (_, features) =
            open_stream(&mut stream, domain, Some(&from), params.lang.as_deref(), params.step_timeout).await?;
        let mut early = Vec::new();
        let jid = bind(&mut stream, &features, params.resource.as_deref(), params.step_timeout, &mut early).await?;
        establish_session_if_required(&mut stream, &features, params.step_timeout, &mut early).await?;
        transcript.note(format!("bound as {jid} (authenticated with {})", mechanism.name()));
        Ok(Session::start(stream, jid, features, tls, mechanism, early, params.step_timeout))
    }

    /// Turn a negotiated stream into a session: spawn the reader and writer tasks.
    /// `early` holds elements that arrived during negotiation; they are delivered first.
    pub fn start(
        stream: XmlStream,
        jid: Jid,
        features: Element,
        tls: Option<TlsInfo>,
        mechanism: Mechanism,
        early: Vec<Element>,
        write_timeout: Duration,
    ) -> Session {
        let transcript = stream.transcript().clone();
        let (reader, writer) = stream.into_halves();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        for el in early {
            let _ = in_tx.send(Incoming::Stanza(el));
        }
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(reader_task(reader, in_tx, transcript.clone())),
            tokio::spawn(writer_task(writer, out_rx, write_timeout)),
        ];
        Session { jid, features, tls, incoming, sender: StanzaSender { tx: out_tx }, mechanism, transcript, tasks }
    }

    pub fn sender(&self) -> StanzaSender {
        self.sender.clone()
    }

    /// Send `</stream:stream>` and wait (bounded) for the server's close.
    pub async fn close(mut self) {
        if let Err(e) = self.sender.send_raw(stream_close().as_bytes().to_vec()).await {
            self.transcript.note(format!("could not send the stream close: {e}"));
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(Incoming::Stanza(_))) => continue, // late stanzas: the caller no longer wants them
                Ok(Some(Incoming::Closed { .. })) | Ok(None) => break,
                Err(_) => {
                    self.transcript.note(format!("the server did not close its stream within {CLOSE_WAIT:?}"));
                    break;
                }
            }
        }
        let _ = self.sender.shutdown().await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the tasks drops both halves of the socket: the connection closes.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Create the account `params.jid` with `params.password` by XEP-0077 in-band registration.
pub async fn register(params: &ClientParams, transcript: Transcript) -> Result<(), XmppError> {
    let (mut stream, _features, _tls) = connect_until_auth(params, &transcript).await?;
    let result = register_on(&mut stream, params).await;
    close_stream(&mut stream).await;
    result
}

/// XEP-0077 on a stream that is ready for it (after STARTTLS, before SASL): ask for the form,
/// then submit username and password.
pub async fn register_on(stream: &mut XmlStream, params: &ClientParams) -> Result<(), XmppError> {
    let reg_error = |condition: String| XmppError::Register { jid: params.jid.bare().to_string(), condition };
    let Some(username) = params.jid.local() else {
        return Err(reg_error("the JID has no localpart to register".into()));
    };
    let step = "in-band registration";
    let mut early = Vec::new();
    let get = Element::new("iq", NS_CLIENT)
        .with_attr("type", "get")
        .with_attr("id", random_id("reg"))
        .with_child(Element::new("query", NS_REGISTER));
    let form = iq_roundtrip(stream, get, step, params.step_timeout, &mut early).await?;
    if form.attr("type") != Some("result") {
        return Err(reg_error(format!("asking for the registration form: {}", iq_error(&form))));
    }
    let set = Element::new("iq", NS_CLIENT).with_attr("type", "set").with_attr("id", random_id("reg")).with_child(
        Element::new("query", NS_REGISTER)
            .with_child(Element::new("username", NS_REGISTER).with_text(username))
            .with_child(Element::new("password", NS_REGISTER).with_text(params.password.clone())),
    );
    let answer = iq_roundtrip(stream, set, step, params.step_timeout, &mut early).await?;
    if answer.attr("type") != Some("result") {
        return Err(reg_error(iq_error(&answer)));
    }
    Ok(())
}

/// Send `</stream:stream>` and wait up to [`CLOSE_WAIT`] for the server's close (or the end of
/// the connection); a slow close is only noted, since the caller's outcome is already known.
pub async fn close_stream(stream: &mut XmlStream) {
    if stream.send_close().await.is_err() {
        return;
    }
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match stream.next_event(deadline).await {
            Ok(StreamEvent::Close) => return,
            Ok(_) => continue,
            Err(ReadError::Timeout) => {
                stream.transcript().note(format!("the server did not close its stream within {CLOSE_WAIT:?}"));
                return;
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests;
