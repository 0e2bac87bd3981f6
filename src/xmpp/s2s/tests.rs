//! In-process tests: two harness peers federating over loopback, and fake hostile peers speaking
//! raw bytes. No lab needed (tests/s2s_harness.rs runs against the real servers).

use super::identity::tests::{dns, Leaf, TestCa};
use super::*;
use crate::xml::NS_SERVER;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct World {
    ca: TestCa,
    _dir: tempfile::TempDir,
    trust: Trust,
}

impl World {
    fn new() -> World {
        World::with_ca("Test Lab CA")
    }

    fn with_ca(name: &str) -> World {
        let ca = TestCa::new(name);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, tls::to_pem(&ca.root_der)).unwrap();
        World { ca, _dir: dir, trust: Trust::CaFile(root) }
    }

    fn cert(&self, label: &str, names: &[&str]) -> PeerCert {
        let leaf: Leaf =
            self.ca.leaf(names.first().copied().unwrap_or("none"), names.iter().map(|n| dns(n)).collect(), None);
        PeerCert::new(label, Credentials::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap())
    }

    fn config(&self, domain: &str) -> PeerConfig {
        PeerConfig {
            domain: domain.to_string(),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            cert: self.cert("good", &[domain]),
            trust: self.trust.clone(),
            behaviour: PeerBehaviour::default(),
            limits: Limits::default(),
            step_timeout: Duration::from_secs(5),
            static_targets: HashMap::new(),
        }
    }
}

/// Two peers that know where the other listens.
async fn pair(world: &World, a: PeerConfig, b: PeerConfig) -> (S2sPeer, S2sPeer) {
    let (a_domain, b_domain) = (a.domain.clone(), b.domain.clone());
    let a = S2sPeer::start(a).await.unwrap();
    let b = S2sPeer::start(b).await.unwrap();
    a.add_static_target(&b_domain, b.local_addr().unwrap());
    b.add_static_target(&a_domain, a.local_addr().unwrap());
    let _ = world;
    (a, b)
}

fn message(from: &str, to: &str, body: &str) -> Element {
    Element::new("message", NS_SERVER)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new("body", NS_SERVER).with_text(body))
}

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// The outcome of the first inbound leg, once it is closed.
async fn closed_outcome(peer: &mut S2sPeer, deadline: Instant) -> String {
    while let Some(event) = peer.next_event(deadline).await {
        if let PeerEvent::LegClosed { outcome, .. } = event {
            return outcome;
        }
    }
    panic!("no leg closed before the deadline; legs: {:#?}", peer.legs());
}

#[tokio::test]
async fn external_federation_between_two_peers() {
    let world = World::new();
    let (mut a, b) = pair(&world, world.config("a.test"), world.config("b.test")).await;
    let mut link = b.connect("a.test", &b.outbound_options()).await.expect("b connects to a");
    assert_eq!(link.authenticated(), Some(AuthMethod::SaslExternal));
    link.send(&message("u@b.test/r", "someone@a.test", "hi")).await.unwrap();

    let (_, authenticated_as, el) = a.expect_stanza(soon(5), |e| e.name == "message").await.unwrap();
    assert_eq!(authenticated_as.as_deref(), Some("b.test"));
    assert_eq!(el.child("body", NS_SERVER).map(|b| b.text()).as_deref(), Some("hi"));

    let out = link.close().await.unwrap();
    assert_eq!(out.kind, LegKind::Outbound);
    assert_eq!(out.outcome.as_deref(), Some("closed"));
    assert_eq!(out.stream_ids.len(), 3, "header, after TLS, after SASL: {:?}", out.stream_ids);
    let check = out.peer_cert.as_ref().unwrap();
    assert!(check.accepted() && check.identity() == Some(IdentityForm::DnsId), "{check:?}");
    assert!(out.tls.as_ref().unwrap().version.starts_with("TLSv1."));

    assert_eq!(closed_outcome(&mut a, soon(5)).await, "closed");
    let inbound = &a.legs()[0];
    assert_eq!(inbound.kind, LegKind::Inbound);
    assert_eq!(inbound.peer_domain.as_deref(), Some("b.test"));
    assert_eq!(inbound.cert_presented.as_deref(), Some("good"));
    assert_eq!(inbound.sni.as_deref(), Some("a.test"));
    assert_eq!(inbound.peer_cert.as_ref().and_then(|c| c.identity()), Some(IdentityForm::DnsId));
    let auth = inbound.authenticated().unwrap();
    assert_eq!((auth.method, auth.domain.as_str()), (AuthMethod::SaslExternal, "b.test"));
    assert_eq!(inbound.stanzas_in, 1);
    let text: String = inbound.transcript.iter().filter_map(|e| e.text.clone()).collect();
    assert!(text.contains("<auth") && text.contains("mechanism='EXTERNAL'") && text.contains(">hi</body>"), "{text}");
    // Results-ready: the record serialises.
    serde_json::to_string(inbound).unwrap();
}

#[tokio::test]
async fn dialback_with_a_verify_round_trip() {
    let world = World::new();
    let mut a_cfg = world.config("a.test");
    a_cfg.behaviour.offer_external = ExternalOffer::Never;
    a_cfg.behaviour.dialback_result = DialbackJudge::Verify;
    let (mut a, b) = pair(&world, a_cfg, world.config("b.test")).await;
    let mut link = b.connect("a.test", &b.outbound_options()).await.expect("dialback succeeds");
    assert_eq!(link.authenticated(), Some(AuthMethod::Dialback));
    link.send(&message("u@b.test", "someone@a.test", "via dialback")).await.unwrap();
    let (_, authenticated_as, _) = a.expect_stanza(soon(5), |e| e.name == "message").await.unwrap();
    assert_eq!(authenticated_as.as_deref(), Some("b.test"));

    // a dialled back to b: one DialbackVerify leg on a, answered honestly by b's listener.
    let a_legs = a.legs();
    let verify_leg = a_legs.iter().find(|l| l.kind == LegKind::DialbackVerify).expect("a verify leg");
    assert_eq!(verify_leg.peer_domain.as_deref(), Some("b.test"));
    let auth = a_legs[0].authenticated().unwrap();
    assert_eq!(auth.method, AuthMethod::Dialback);
    let b_inbound = b.legs().into_iter().find(|l| l.kind == LegKind::Inbound).expect("b's listener answered");
    assert_eq!(b_inbound.dialback_verifies.len(), 1);
    assert!(b_inbound.dialback_verifies[0].key_matches);
    assert_eq!(b_inbound.dialback_verifies[0].answered, "valid");
}

#[tokio::test]
async fn dialback_answered_invalid_fails_the_link() {
    let world = World::new();
    let mut a_cfg = world.config("a.test");
    a_cfg.behaviour.offer_external = ExternalOffer::Never;
    a_cfg.behaviour.dialback_result = DialbackJudge::Verify;
    let mut b_cfg = world.config("b.test");
    b_cfg.behaviour.dialback_verify = VerifyAnswer::Invalid;
    let (a, b) = pair(&world, a_cfg, b_cfg).await;
    let err = match b.connect("a.test", &b.outbound_options()).await {
        Ok(_) => panic!("dialback must fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("dialback") && err.contains("invalid"), "{err}");
    let auth = &a.legs()[0].auth;
    assert!(auth.iter().any(|r| r.method == AuthMethod::Dialback && !r.succeeded), "{auth:?}");
}

#[tokio::test]
async fn a_certificate_for_another_name_does_not_authenticate() {
    let world = World::new();
    let mut a_cfg = world.config("a.test");
    a_cfg.behaviour.offer_dialback = false;
    let mut b_cfg = world.config("b.test");
    b_cfg.cert = world.cert("wrongname", &["x.test"]);
    let (a, b) = pair(&world, a_cfg, b_cfg).await;

    // Nothing offered: EXTERNAL needs a certificate for b.test, dialback is off.
    let err = b.connect("a.test", &b.outbound_options()).await.err().expect("no authentication possible");
    assert!(err.to_string().contains("neither SASL EXTERNAL nor dialback"), "{err}");

    // EXTERNAL offered and tried anyway: refused with not-authorized, and the record says why.
    a.set_behaviour(PeerBehaviour {
        offer_external: ExternalOffer::Always,
        offer_dialback: false,
        ..Default::default()
    });
    let mut options = b.outbound_options();
    options.auth = OutboundAuth::External { authzid: Some("b.test".into()) };
    let err = b.connect("a.test", &options).await.err().expect("EXTERNAL refused");
    assert!(err.to_string().contains("not-authorized"), "{err}");
    let refused = a.legs().into_iter().flat_map(|l| l.auth).find(|r| !r.succeeded).expect("a refusal recorded");
    assert!(refused.detail.contains("no identity names b.test"), "{refused:?}");
}

#[tokio::test]
async fn outbound_refuses_an_untrusted_server_certificate_unless_told_otherwise() {
    let world = World::new();
    let rogue = World::with_ca("Rogue CA"); // a's certificate comes from a CA b does not know
    let mut a_cfg = world.config("a.test");
    a_cfg.cert = rogue.cert("unknownca", &["a.test"]);
    let (_a, b) = pair(&world, a_cfg, world.config("b.test")).await;
    let err = b.connect("a.test", &b.outbound_options()).await.err().expect("refused");
    assert!(err.to_string().contains("not acceptable") && err.to_string().contains("UnknownIssuer"), "{err}");
    let leg = b.legs().into_iter().next().unwrap();
    assert!(!leg.peer_cert.unwrap().chain_valid);
    assert!(leg.outcome.unwrap().contains("not acceptable"));
}

// ---- hostile peers: raw bytes over loopback ----

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='evil.test' to='a.test' version='1.0'>";

async fn hostile_target(limits: Limits, step_timeout: Duration, starttls: StartTlsOffer) -> (S2sPeer, TcpStream) {
    let world = World::new();
    let mut cfg = world.config("a.test");
    cfg.limits = limits;
    cfg.step_timeout = step_timeout;
    cfg.behaviour.starttls = starttls;
    let peer = S2sPeer::start(cfg).await.unwrap();
    let tcp = TcpStream::connect(peer.local_addr().unwrap()).await.unwrap();
    (peer, tcp)
}

/// Read what the harness sends until it closes (bounded).
async fn read_all(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_stanza_over_the_size_limit_ends_the_leg() {
    let limits = Limits { max_stanza: 4096, ..Limits::default() };
    let (mut peer, mut tcp) = hostile_target(limits, Duration::from_secs(5), StartTlsOffer::Optional).await;
    let started = Instant::now();
    tcp.write_all(HEADER.as_bytes()).await.unwrap();
    let huge = format!("<message to='x@a.test'><body>{}</body></message>", "a".repeat(64 * 1024));
    let _ = tcp.write_all(huge.as_bytes()).await; // the harness may close before taking it all
    let outcome = closed_outcome(&mut peer, soon(5)).await;
    assert!(outcome.contains("over the 4096-byte limit"), "{outcome}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(read_all(&mut tcp).await.contains("<policy-violation"));
}

#[tokio::test]
async fn a_peer_that_stops_mid_stanza_is_cut_off() {
    let limits = Limits { stanza_timeout: Duration::from_millis(300), ..Limits::default() };
    let (mut peer, mut tcp) = hostile_target(limits, Duration::from_secs(30), StartTlsOffer::Optional).await;
    let started = Instant::now();
    tcp.write_all(HEADER.as_bytes()).await.unwrap();
    tcp.write_all(b"<message to='x@a.test'><body>hal").await.unwrap();
    let outcome = closed_outcome(&mut peer, soon(5)).await;
    let elapsed = started.elapsed();
    assert!(outcome.contains("began an element and then sent nothing"), "{outcome}");
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(read_all(&mut tcp).await.contains("<connection-timeout"));
}

#[tokio::test]
async fn a_peer_that_never_completes_tls_is_cut_off() {
    let (mut peer, mut tcp) =
        hostile_target(Limits::default(), Duration::from_millis(500), StartTlsOffer::Required).await;
    let started = Instant::now();
    tcp.write_all(HEADER.as_bytes()).await.unwrap();
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await.unwrap();
    // Wait for <proceed/>, then say nothing: no ClientHello ever comes.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("<proceed") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before <proceed/>");
        seen.extend_from_slice(&buf[..n]);
    }
    let outcome = closed_outcome(&mut peer, soon(5)).await;
    assert!(outcome.contains("TLS handshake failed") && outcome.contains("in time"), "{outcome}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_silent_peer_times_out_during_negotiation() {
    let (mut peer, _tcp) = hostile_target(Limits::default(), Duration::from_millis(300), StartTlsOffer::Required).await;
    let outcome = closed_outcome(&mut peer, soon(5)).await;
    assert!(outcome.contains("sent nothing for"), "{outcome}");
}

#[tokio::test]
async fn a_flooding_peer_is_cut_off_and_the_queue_stays_bounded() {
    let world = World::new();
    let mut a_cfg = world.config("a.test");
    a_cfg.limits.queue_stanzas = 100;
    a_cfg.limits.transcript_budget = 64 * 1024;
    let (mut a, b) = pair(&world, a_cfg, world.config("b.test")).await;
    let mut link = b.connect("a.test", &b.outbound_options()).await.unwrap();
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..20_000 {
        if link.send(&message("u@b.test", "someone@a.test", &format!("flood {i}"))).await.is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent > 100, "the harness took at least the queue's worth ({sent})");
    // Nobody consumed: the leg ends as a flood with at most 100 stanzas queued.
    let mut stanzas = 0;
    let mut outcome = None;
    while let Some(event) = a.next_event(soon(5)).await {
        match event {
            PeerEvent::Stanza { .. } => stanzas += 1,
            PeerEvent::LegClosed { outcome: o, .. } => {
                outcome = Some(o);
                break;
            }
            _ => {}
        }
    }
    let outcome = outcome.expect("the flooding leg closed");
    assert!(outcome.starts_with("flood"), "{outcome}");
    assert!(stanzas <= 100, "{stanzas} stanzas were queued");
    assert!(started.elapsed() < Duration::from_secs(10));
    let leg = &a.legs()[0];
    let recorded: usize = leg.transcript.iter().filter_map(|e| e.text.as_ref()).map(|t| t.len()).sum();
    assert!(recorded < 64 * 1024 + 4096, "transcript bounded, got {recorded} bytes");

    // The harness still works for everyone else.
    let mut again = b.connect("a.test", &b.outbound_options()).await.unwrap();
    again.send(&message("u@b.test", "someone@a.test", "after the flood")).await.unwrap();
    let (_, _, el) = a
        .expect_stanza(soon(5), |e| e.child("body", NS_SERVER).is_some_and(|b| b.text() == "after the flood"))
        .await
        .unwrap();
    assert_eq!(el.attr("to"), Some("someone@a.test"));
}

#[tokio::test]
async fn an_unauthenticated_stanza_is_reported_and_refused() {
    let (mut peer, mut tcp) = hostile_target(Limits::default(), Duration::from_secs(5), StartTlsOffer::Optional).await;
    tcp.write_all(HEADER.as_bytes()).await.unwrap();
    tcp.write_all(b"<message from='u@evil.test' to='x@a.test'><body>cleartext</body></message>").await.unwrap();
    let (_, authenticated_as, el) = peer.expect_stanza(soon(5), |e| e.name == "message").await.unwrap();
    assert_eq!(authenticated_as, None);
    assert_eq!(el.attr("from"), Some("u@evil.test"));
    assert!(read_all(&mut tcp).await.contains("<not-authorized"));
}

#[tokio::test]
async fn outbound_to_a_server_that_never_completes_tls_fails_in_time() {
    // A fake server: header, features with STARTTLS, <proceed/>, then silence.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
            xmlns:stream='http://etherx.jabber.org/streams' from='mute.test' id='s1' version='1.0'>\
            <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>";
        tcp.write_all(header.as_bytes()).await.unwrap();
        let _ = tcp.read(&mut buf).await;
        tcp.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(tcp);
    });
    let world = World::new();
    let mut cfg = world.config("b.test");
    cfg.listen = None;
    cfg.step_timeout = Duration::from_millis(500);
    let b = S2sPeer::start(cfg).await.unwrap();
    b.add_static_target("mute.test", addr);
    let started = Instant::now();
    let err = b.connect("mute.test", &b.outbound_options()).await.err().expect("must fail");
    assert!(err.to_string().contains("handshake failed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    server.abort();
}

#[tokio::test]
async fn the_leg_limit_refuses_extra_connections() {
    let world = World::new();
    let mut cfg = world.config("a.test");
    cfg.limits.max_legs = 1;
    cfg.step_timeout = Duration::from_millis(300);
    let peer = S2sPeer::start(cfg).await.unwrap();
    let _first = TcpStream::connect(peer.local_addr().unwrap()).await.unwrap();
    let mut second = TcpStream::connect(peer.local_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the second connection is closed at once");
    assert_eq!(peer.legs().len(), 1);
}

#[test]
fn peers_and_links_can_move_between_tasks() {
    fn send<T: Send>() {}
    send::<S2sPeer>();
    send::<OutboundLink>();
    send::<LegRecord>();
}

#[test]
fn behaviour_reads_from_yaml_like_data() {
    let b: PeerBehaviour =
        serde_json::from_str(r#"{"starttls":"omitted","offer_external":"never","dialback_verify":"invalid"}"#).unwrap();
    assert_eq!(b.starttls, StartTlsOffer::Omitted);
    assert!(b.offer_dialback && b.request_client_cert, "unset fields keep their defaults");
    assert!(serde_json::from_str::<PeerBehaviour>(r#"{"startls":"omitted"}"#).is_err(), "typos are refused");
}

#[tokio::test]
async fn a_hub_routes_each_connection_to_the_peer_serving_its_to_domain() {
    let world = World::new();
    let hub = S2sHub::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let one_cfg = PeerConfig { listen: None, ..world.config("one.test") };
    let two_cfg = PeerConfig { listen: None, ..world.config("two.test") };
    let mut one = S2sPeer::start_on(&hub, one_cfg).unwrap();
    let mut two = S2sPeer::start_on(&hub, two_cfg).unwrap();
    // A second peer for a domain already served is refused while the first lives.
    let again = S2sPeer::start_on(&hub, PeerConfig { listen: None, ..world.config("one.test") });
    assert!(matches!(again, Err(S2sError::Setup(_))), "a domain is served once");

    let sender = S2sPeer::start(PeerConfig { listen: None, ..world.config("sender.test") }).await.unwrap();
    for domain in ["one.test", "two.test"] {
        sender.add_static_target(domain, hub.local_addr());
    }
    let mut to_one = sender.connect("one.test", &sender.outbound_options()).await.expect("routed to one");
    let mut to_two = sender.connect("two.test", &sender.outbound_options()).await.expect("routed to two");
    to_one.send(&message("u@sender.test", "x@one.test", "to one")).await.unwrap();
    to_two.send(&message("u@sender.test", "x@two.test", "to two")).await.unwrap();
    let (_, _, got_one) = one.expect_stanza(soon(5), |e| e.name == "message").await.unwrap();
    let (_, _, got_two) = two.expect_stanza(soon(5), |e| e.name == "message").await.unwrap();
    assert_eq!(got_one.attr("to"), Some("x@one.test"));
    assert_eq!(got_two.attr("to"), Some("x@two.test"));
    // Each peer recorded only its own leg, presenting its own certificate.
    assert_eq!(one.legs().len(), 1);
    assert_eq!(two.legs().len(), 1);

    // A domain nobody serves (any more) is answered with host-unknown.
    drop(one);
    let err = sender.connect("one.test", &sender.outbound_options()).await.err().expect("one.test is gone");
    assert!(err.to_string().contains("host-unknown"), "{err}");
}

#[tokio::test]
async fn a_hostile_connection_on_the_hub_does_not_hold_up_other_peers() {
    let world = World::new();
    let hub = S2sHub::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut good = S2sPeer::start_on(&hub, PeerConfig { listen: None, ..world.config("good.test") }).unwrap();
    // Connections that stall before their header is complete, or send garbage, while a real one federates.
    let mut stalled = TcpStream::connect(hub.local_addr()).await.unwrap();
    stalled.write_all(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' to='good.te").await.unwrap();
    let mut garbage = TcpStream::connect(hub.local_addr()).await.unwrap();
    garbage.write_all(b"\x16\x03\x01 not xml at all <<<<").await.unwrap();

    let sender = S2sPeer::start(PeerConfig { listen: None, ..world.config("sender.test") }).await.unwrap();
    sender.add_static_target("good.test", hub.local_addr());
    let started = Instant::now();
    let mut link = sender.connect("good.test", &sender.outbound_options()).await.expect("federates meanwhile");
    link.send(&message("u@sender.test", "x@good.test", "still served")).await.unwrap();
    good.expect_stanza(soon(5), |e| e.name == "message").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // The garbage connection is dropped at once; neither hostile connection became a leg of the peer.
    assert!(read_all(&mut garbage).await.is_empty());
    assert_eq!(good.legs().len(), 1);
}

#[tokio::test]
async fn the_hub_takes_direct_tls_for_the_registered_peer_and_reports_sni_and_alpn() {
    let world = World::new();
    let mut hub = S2sHub::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let direct = hub.listen_direct_tls("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut xmpps = S2sPeer::start_on(&hub, PeerConfig { listen: None, ..world.config("xmpps.test") }).unwrap();
    xmpps.take_direct_tls(&hub).unwrap();
    // A second peer cannot take the port while the first has it.
    let mut other = S2sPeer::start_on(&hub, PeerConfig { listen: None, ..world.config("other.test") }).unwrap();
    assert!(matches!(other.take_direct_tls(&hub), Err(S2sError::Setup(_))));

    let sender = S2sPeer::start(PeerConfig { listen: None, ..world.config("sender.test") }).await.unwrap();
    let mut options = sender.outbound_options();
    options.direct_tls = true;
    options.address = Some(direct);
    let mut link = sender.open("xmpps.test", &options).await.expect("direct TLS, then the stream");
    assert!(!link.offers_starttls(), "no STARTTLS inside direct TLS");
    link.authenticate().await.expect("EXTERNAL over direct TLS");
    link.send(&message("u@sender.test", "x@xmpps.test", "direct")).await.unwrap();
    let mut seen = None;
    while let Some(event) = xmpps.next_event(soon(5)).await {
        match event {
            PeerEvent::DirectTls { sni, alpn, .. } => seen = Some((sni, alpn)),
            PeerEvent::Stanza { authenticated_as, .. } => {
                assert_eq!(authenticated_as.as_deref(), Some("sender.test"));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, Some((Some("xmpps.test".to_string()), Some("xmpp-server".to_string()))));
    let leg = &xmpps.legs()[0];
    assert_eq!(leg.sni.as_deref(), Some("xmpps.test"));
    assert!(leg.peer_cert.as_ref().is_some_and(|c| c.accepted()), "the client certificate judged for sender.test");
}
