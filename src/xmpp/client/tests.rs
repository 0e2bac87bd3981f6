//! Client negotiation against a scripted fake server on 127.0.0.1 (framing and error paths;
//! real servers are exercised by the lab tests).

use super::*;
use crate::xml::StreamParser;
use crate::xmpp::Direction;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const PASSWORD: &str = "pencil";
const SALT: &[u8] = b"fake-salt-1234";
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='fake.lab' id='s1' version='1.0'>";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The server side of one connection, driven step by step by a test.
struct Peer {
    io: Box<dyn Io>,
    parser: StreamParser,
    unparsed: Vec<u8>,
    /// Every byte the peer sent (plaintext), to compare with the client's transcript.
    sent: Vec<u8>,
    exporter: Option<Vec<u8>>,
}

impl Peer {
    async fn accept(listener: &TcpListener) -> Peer {
        let (tcp, _) = listener.accept().await.unwrap();
        Peer {
            io: Box::new(tcp),
            parser: StreamParser::new(1 << 20),
            unparsed: Vec::new(),
            sent: Vec::new(),
            exporter: None,
        }
    }

    async fn send(&mut self, s: &str) {
        self.sent.extend_from_slice(s.as_bytes());
        self.io.write_all(s.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }

    async fn next(&mut self) -> StreamEvent {
        let mut buf = [0u8; 4096];
        loop {
            let mut rest: &[u8] = &self.unparsed;
            let event = self.parser.feed_until_event(&mut rest).unwrap();
            let consumed = self.unparsed.len() - rest.len();
            self.unparsed.drain(..consumed);
            if let Some(event) = event {
                return event;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "client closed the connection");
            self.unparsed.extend_from_slice(&buf[..n]);
        }
    }

    async fn expect_header(&mut self) -> Element {
        match self.next().await {
            StreamEvent::Header(h) => h,
            other => panic!("expected a stream header, got {other:?}"),
        }
    }

    async fn expect(&mut self, name: &str) -> Element {
        match self.next().await {
            StreamEvent::Stanza(el) if el.name == name => el,
            other => panic!("expected <{name}/>, got {other:?}"),
        }
    }

    /// Answer a new stream header with ours and `features`.
    async fn open(&mut self, features: &str) -> Element {
        self.parser.reset();
        let header = self.expect_header().await;
        self.send(&format!("{HEADER}<stream:features>{features}</stream:features>")).await;
        header
    }

    async fn starttls(mut self) -> Peer {
        self.expect("starttls").await;
        self.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await;
        let (acceptor, _) = tls_fixture();
        let tls = acceptor.accept(self.io).await.unwrap();
        let exporter =
            tls.get_ref().1.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None).unwrap();
        Peer { io: Box::new(tls), exporter: Some(exporter), ..self }
    }

    /// Server side of SCRAM; `forge` sends a wrong server signature.
    async fn scram(&mut self, forge: bool) -> String {
        let auth = self.expect("auth").await;
        let mechanism = auth.attr("mechanism").unwrap().to_string();
        let hash = Mechanism::from_name(&mechanism).unwrap().scram_hash().unwrap();
        let client_first = String::from_utf8(B64.decode(auth.text()).unwrap()).unwrap();
        let mut parts = client_first.splitn(3, ',');
        let gs2 = format!("{},{},", parts.next().unwrap(), parts.next().unwrap());
        let bare = parts.next().unwrap().to_string();
        let cnonce = bare.split(",r=").nth(1).unwrap();
        let server_first = format!("r={cnonce}srv,s={},i=4096", B64.encode(SALT));
        self.send(&format!("<challenge xmlns='{NS_SASL}'>{}</challenge>", B64.encode(&server_first))).await;

        let response = self.expect("response").await;
        let client_final = String::from_utf8(B64.decode(response.text()).unwrap()).unwrap();
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let mut cbind = gs2.clone().into_bytes();
        if gs2.starts_with("p=tls-exporter") {
            cbind.extend(self.exporter.clone().expect("channel binding without TLS"));
        }
        assert_eq!(without_proof, format!("c={},r={cnonce}srv", B64.encode(&cbind)), "channel binding data");
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let salted = sasl::salted_password(hash, PASSWORD, SALT, 4096);
        if B64.decode(proof).unwrap() != sasl::client_proof(hash, &salted, &auth_message) {
            self.send(&format!("<failure xmlns='{NS_SASL}'><not-authorized/><text>bad proof</text></failure>")).await;
            return mechanism;
        }
        let mut signature = sasl::server_signature(hash, &salted, &auth_message);
        if forge {
            signature[0] ^= 1;
        }
        let server_final = format!("v={}", B64.encode(signature));
        self.send(&format!("<success xmlns='{NS_SASL}'>{}</success>", B64.encode(server_final))).await;
        mechanism
    }

    async fn bind(&mut self) -> String {
        let iq = self.expect("iq").await;
        let id = iq.attr("id").unwrap().to_string();
        let resource = iq.child("bind", NS_BIND).unwrap().child("resource", NS_BIND).map(|r| r.text());
        let jid = format!("user@fake.lab/{}", resource.unwrap_or_else(|| "generated-1".into()));
        self.send(&format!("<iq type='result' id='{id}'><bind xmlns='{NS_BIND}'><jid>{jid}</jid></bind></iq>")).await;
        jid
    }
}

/// A self-signed certificate for fake.lab, its PEM file (as the client's trust) and an acceptor.
fn tls_fixture() -> (tokio_rustls::TlsAcceptor, std::path::PathBuf) {
    use std::sync::OnceLock;
    static FIXTURE: OnceLock<(Arc<rustls::ServerConfig>, std::path::PathBuf, tempfile::TempDir)> = OnceLock::new();
    let (config, path, _) = FIXTURE.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["fake.lab".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ck.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        (Arc::new(config), path, dir)
    });
    (tokio_rustls::TlsAcceptor::from(config.clone()), path.clone())
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn params(addr: SocketAddr, tls: TlsMode) -> ClientParams {
    let (_, ca) = tls_fixture();
    ClientParams {
        jid: Jid::parse("user@fake.lab").unwrap(),
        password: PASSWORD.into(),
        resource: Some("r1".into()),
        target: Target { domain: "fake.lab".into(), address: Some(addr.ip()), port: Some(addr.port()) },
        tls,
        trust: Trust::CaFile(ca),
        lang: Some("en".into()),
        step_timeout: Duration::from_secs(5),
        max_stanza: 1 << 20,
    }
}

const MECHS: &str = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>\
    <mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-256</mechanism>\
    <mechanism>SCRAM-SHA-256-PLUS</mechanism></mechanisms>\
    <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding>";
const STARTTLS: &str = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>";
const BIND: &str = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>";

fn received(transcript: &Transcript) -> Vec<u8> {
    transcript
        .entries()
        .iter()
        .filter(|e| e.dir == Direction::In)
        .flat_map(|e| e.text.clone().unwrap().into_bytes())
        .collect()
}

#[tokio::test]
async fn full_session_over_tls_with_channel_binding() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        let first = peer.open(STARTTLS).await;
        assert_eq!(first.attr("to"), Some("fake.lab"));
        assert_eq!(first.attr("from"), None, "no JID in the clear");
        let mut peer = peer.starttls().await;
        let second = peer.open(MECHS).await;
        assert_eq!(second.attr("from"), Some("user@fake.lab"));
        assert_eq!(second.attr_ns(crate::xml::NS_XML, "lang"), Some("en"));
        let mechanism = peer.scram(false).await;
        peer.open(BIND).await;
        peer.bind().await;
        peer.send("<message from='x@fake.lab' type='chat'><body>hi</body></message>").await;
        let reply = peer.expect("message").await;
        assert_eq!(reply.child("body", NS_CLIENT).unwrap().text(), "back");
        assert!(matches!(peer.next().await, StreamEvent::Close));
        peer.send("</stream:stream>").await;
        (mechanism, peer.sent)
    });

    let transcript = Transcript::new();
    let mut session = Session::connect(&params(addr, TlsMode::Required), transcript.clone()).await.unwrap();
    assert_eq!(session.jid.to_string(), "user@fake.lab/r1");
    assert_eq!(session.mechanism, Mechanism::ScramSha256Plus);
    let tls = session.tls.clone().unwrap();
    assert_eq!(tls.version, "TLSv1.3");
    assert_eq!(tls.verified_for, "fake.lab");
    assert_eq!(tls.peer_chain_pem.len(), 1);
    assert!(session.features.child("bind", NS_BIND).is_some());

    match session.incoming.recv().await.unwrap() {
        Incoming::Stanza(m) => assert_eq!(m.child("body", NS_CLIENT).unwrap().text(), "hi"),
        other => panic!("expected the message, got {other:?}"),
    }
    let reply = Element::new("message", NS_CLIENT)
        .with_attr("to", "x@fake.lab")
        .with_child(Element::new("body", NS_CLIENT).with_text("back"));
    session.sender().send(&reply).await.unwrap();
    session.close().await;

    let (mechanism, sent) = server.await.unwrap();
    assert_eq!(mechanism, "SCRAM-SHA-256-PLUS");
    assert_eq!(received(&transcript), sent, "the transcript holds exactly the bytes the server sent");
    let notes: Vec<String> =
        transcript.entries().into_iter().filter(|e| e.dir == Direction::Note).filter_map(|e| e.text).collect();
    assert!(notes.iter().any(|n| n.starts_with("TLS established: TLSv1.3")), "{notes:?}");
}

#[tokio::test]
async fn missing_starttls_is_an_error_when_required() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open(MECHS).await;
        let _ = peer.next().await;
    });
    let err = Session::connect(&params(addr, TlsMode::Required), Transcript::new()).await.err().unwrap();
    assert!(matches!(err, XmppError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("does not offer STARTTLS"), "{err}");
}

#[tokio::test]
async fn sasl_failure_names_the_condition() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open(
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>",
        )
        .await;
        let auth = peer.expect("auth").await;
        assert_eq!(auth.attr("mechanism"), Some("SCRAM-SHA-1"));
        peer.send(&format!(
            "<failure xmlns='{NS_SASL}'><not-authorized/><text>Invalid username or password</text></failure>"
        ))
        .await;
        let _ = peer.next().await;
    });
    let err = Session::connect(&params(addr, TlsMode::Optional), Transcript::new()).await.err().unwrap();
    assert!(matches!(err, XmppError::Auth { .. }), "{err}");
    assert_eq!(err.condition(), Some("not-authorized"));
    assert!(err.to_string().contains("Invalid username or password"), "{err}");
}

#[tokio::test]
async fn forged_server_signature_is_refused() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open(
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>",
        )
        .await;
        peer.scram(true).await;
        let _ = peer.next().await;
    });
    let err = Session::connect(&params(addr, TlsMode::Optional), Transcript::new()).await.err().unwrap();
    assert!(err.to_string().contains("mutual authentication"), "{err}");
}

#[tokio::test]
async fn plain_is_never_used_in_the_clear() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>")
            .await;
        let _ = peer.next().await;
    });
    let err = Session::connect(&params(addr, TlsMode::Optional), Transcript::new()).await.err().unwrap();
    assert!(err.to_string().contains("no usable mechanism"), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_naming_the_step() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.expect_header().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let mut p = params(addr, TlsMode::Required);
    p.step_timeout = Duration::from_millis(300);
    let err = Session::connect(&p, Transcript::new()).await.err().unwrap();
    match err {
        XmppError::Timeout { waiting_for, .. } => assert_eq!(waiting_for, "the stream header"),
        other => panic!("expected a timeout, got {other}"),
    }
    server.abort();
}

#[tokio::test]
async fn stream_error_at_open_is_reported() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.expect_header().await;
        peer.send(&format!(
            "{HEADER}<stream:error><host-unknown xmlns='{NS_STREAMS}'/></stream:error></stream:stream>"
        ))
        .await;
    });
    let err = Session::connect(&params(addr, TlsMode::Required), Transcript::new()).await.err().unwrap();
    assert!(matches!(err, XmppError::StreamError(_)), "{err}");
    assert_eq!(err.condition(), Some("host-unknown"));
}

/// Negotiate in the clear up to bind, then hand the peer to `after_bind`.
async fn bound_session<F, Fut>(after_bind: F) -> Session
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open(
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>",
        )
        .await;
        peer.scram(false).await;
        peer.open(BIND).await;
        peer.bind().await;
        after_bind(peer).await;
    });
    Session::connect(&params(addr, TlsMode::Optional), Transcript::new()).await.unwrap()
}

#[tokio::test]
async fn stream_error_after_bind_is_delivered_then_closed() {
    let mut session = bound_session(|mut peer| async move {
        peer.send("<message><body>1</body></message>").await;
        peer.send(&format!(
            "<stream:error><conflict xmlns='{NS_STREAMS}'/><text xmlns='{NS_STREAMS}'>Replaced</text>\
             </stream:error></stream:stream>"
        ))
        .await;
    })
    .await;
    assert!(matches!(session.incoming.recv().await, Some(Incoming::Stanza(m)) if m.name == "message"));
    assert!(matches!(session.incoming.recv().await, Some(Incoming::Stanza(e)) if e.is("error", NS_STREAM)));
    match session.incoming.recv().await {
        Some(Incoming::Closed { error: Some(why) }) => {
            assert!(why.contains("conflict") && why.contains("Replaced"), "{why}")
        }
        other => panic!("expected Closed with the condition, got {other:?}"),
    }
    assert!(session.incoming.recv().await.is_none(), "exactly one Closed");
}

#[tokio::test]
async fn tcp_close_after_bind_is_reported() {
    let mut session = bound_session(|peer| async move { drop(peer) }).await;
    match session.incoming.recv().await {
        Some(Incoming::Closed { error: Some(why) }) => assert!(why.contains("without closing the stream"), "{why}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    // The write may still land in the socket buffer; it must return either way, not hang.
    let _ = session.sender().send_raw(b"<presence/>".to_vec()).await;
}

#[tokio::test]
async fn split_stanzas_are_reassembled() {
    let mut session = bound_session(|mut peer| async move {
        let msg = "<message from='a@b'><body>h\u{e9}llo \u{1F600}</body></message>";
        for byte in msg.as_bytes() {
            peer.io.write_all(&[*byte]).await.unwrap();
            peer.io.flush().await.unwrap();
        }
        peer.send("</stream:stream>").await;
    })
    .await;
    match session.incoming.recv().await {
        Some(Incoming::Stanza(m)) => assert_eq!(m.child("body", NS_CLIENT).unwrap().text(), "h\u{e9}llo \u{1F600}"),
        other => panic!("expected the message, got {other:?}"),
    }
    assert!(matches!(session.incoming.recv().await, Some(Incoming::Closed { error: None })));
}

async fn registration_server(listener: TcpListener, answer: &'static str) {
    let mut peer = Peer::accept(&listener).await;
    peer.open("<register xmlns='http://jabber.org/features/iq-register'/>").await;
    let get = peer.expect("iq").await;
    assert_eq!(get.attr("type"), Some("get"));
    let id = get.attr("id").unwrap();
    peer.send(&format!(
        "<iq type='result' id='{id}'><query xmlns='jabber:iq:register'><username/><password/></query></iq>"
    ))
    .await;
    let set = peer.expect("iq").await;
    let query = set.child("query", NS_REGISTER).unwrap();
    assert_eq!(query.child("username", NS_REGISTER).unwrap().text(), "user");
    assert_eq!(query.child("password", NS_REGISTER).unwrap().text(), PASSWORD);
    let id = set.attr("id").unwrap();
    peer.send(&answer.replace("ID", id)).await;
    assert!(matches!(peer.next().await, StreamEvent::Close));
    peer.send("</stream:stream>").await;
}

#[tokio::test]
async fn registration_succeeds() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(registration_server(listener, "<iq type='result' id='ID'/>"));
    register(&params(addr, TlsMode::Optional), Transcript::new()).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn registration_conflict_is_reported() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(registration_server(
        listener,
        "<iq type='error' id='ID'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User already exists</text></error></iq>",
    ));
    let err = register(&params(addr, TlsMode::Optional), Transcript::new()).await.err().unwrap();
    assert!(matches!(err, XmppError::Register { .. }), "{err}");
    assert_eq!(err.condition(), Some("conflict"));
    assert!(err.to_string().contains("User already exists"), "{err}");
    server.await.unwrap();
}

#[tokio::test]
async fn certificate_for_another_name_fails_and_says_what_was_presented() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open(STARTTLS).await;
        peer.expect("starttls").await;
        peer.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await;
        let (acceptor, _) = tls_fixture();
        let _ = acceptor.accept(peer.io).await;
    });
    let mut p = params(addr, TlsMode::Required);
    p.jid = Jid::parse("user@other.lab").unwrap();
    let err = Session::connect(&p, Transcript::new()).await.err().unwrap();
    assert!(matches!(err, XmppError::Tls { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("other.lab") && text.contains("rcgen self signed cert"), "{text}");
}

#[tokio::test]
async fn plus_without_xep0440_falls_back_to_scram_with_n_flag() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.open(STARTTLS).await;
        let mut peer = peer.starttls().await;
        peer.open(
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1-PLUS</mechanism>\
             <mechanism>SCRAM-SHA-1</mechanism></mechanisms>",
        )
        .await;
        let mechanism = peer.scram(false).await;
        peer.open(BIND).await;
        peer.bind().await;
        mechanism
    });
    let transcript = Transcript::new();
    let session = Session::connect(&params(addr, TlsMode::Required), transcript.clone()).await.unwrap();
    assert_eq!(session.mechanism, Mechanism::ScramSha1);
    assert_eq!(server.await.unwrap(), "SCRAM-SHA-1");
    // "n": the server offered -PLUS, so claiming "y" (client thinks server cannot bind) would be wrong.
    let auth = transcript.entries().into_iter().filter_map(|e| e.text).find(|t| t.starts_with("<auth")).unwrap();
    let data = auth.split('>').nth(1).unwrap().split('<').next().unwrap();
    assert!(B64.decode(data).unwrap().starts_with(b"n,,"), "{auth}");
}
