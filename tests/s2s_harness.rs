//! The harness as a remote XMPP server (`harness.lab`) against the real lab servers: trusted
//! federation with SASL EXTERNAL in both directions (CATALOG G01/G04 shape), dialback with the
//! harness as authoritative server, the DNS error names, and bad certificates that both servers
//! must refuse (G05/G07/G08 shape).
//!
//! How it runs: the harness must live inside the lab's network namespace — the servers resolve
//! harness.lab to 127.0.0.20 there and connect to it, and the harness resolves their names with the
//! lab's DNS. Each test therefore re-runs this test binary, filtered to itself, under
//! `ip netns exec <ns>` (which also overlays the namespace's resolv.conf and hosts on /etc); the
//! inner run does the work in-process. Tests run one at a time: they all listen on 127.0.0.20:5269.
//!
//! Which lab: `PLUGFEST_S2S_NETNS` and `PLUGFEST_S2S_STATE_DIR` (default: the shared lab, namespace
//! `plugfest`, state in /var/lib/plugfest/lab). When the namespace does not exist the lab is started
//! with `plugfest lab up` (idempotent). Needs root. Example with a private lab:
//! `PLUGFEST_S2S_NETNS=plugfest-s2s PLUGFEST_S2S_STATE_DIR=/var/lib/plugfest/lab-s2s cargo test --test s2s_harness`

use plugfest::ca::CaDir;
use plugfest::jid::Jid;
use plugfest::net::resolve::{self, Service, Target};
use plugfest::net::tls::{Credentials, Trust};
use plugfest::servers::{Server, ServersFile};
use plugfest::xml::{Element, NS_CLIENT, NS_SERVER};
use plugfest::xmpp::s2s::{
    AuthMethod, DialbackJudge, ExternalOffer, IdentityForm, LegKind, LegRecord, OutboundAuth, PeerCert, PeerConfig,
    S2sError, S2sPeer, StartTlsOffer, HARNESS_DOMAIN,
};
use plugfest::xmpp::{register, Incoming, Session, Transcript};
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const ENV_INSIDE: &str = "PLUGFEST_S2S_INSIDE";
const STEP: Duration = Duration::from_secs(10);
/// CATALOG §0.4: the first stanza over a new s2s link (DNS + TLS + authentication).
const FIRST_S2S: Duration = Duration::from_secs(20);
/// How long a refused link is watched for a stanza that must not arrive.
const REFUSAL_WATCH: Duration = Duration::from_secs(8);

fn lab_names() -> (String, PathBuf) {
    let netns = std::env::var("PLUGFEST_S2S_NETNS").unwrap_or_else(|_| "plugfest".into());
    let state = std::env::var("PLUGFEST_S2S_STATE_DIR").unwrap_or_else(|_| "/var/lib/plugfest/lab".into());
    (netns, PathBuf::from(state))
}

/// Run `body` inside the lab's namespace: directly when this process already is the inner run,
/// otherwise by re-running this test binary for `test` under `ip netns exec`.
fn in_lab<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Lab) -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(ENV_INSIDE).is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(body(Lab::load()));
        return;
    }
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (netns, state) = lab_names();
    assert!(is_root(), "the s2s harness tests need root (network namespaces); run `cargo test` as root");
    if !PathBuf::from("/run/netns").join(&netns).exists() {
        let out = Command::new(env!("CARGO_BIN_EXE_plugfest"))
            .args(["lab", "up", "--netns", &netns, "--state-dir"])
            .arg(&state)
            .output()
            .expect("run plugfest lab up");
        assert!(out.status.success(), "plugfest lab up failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_INSIDE, "1")
        .output()
        .expect("run ip netns exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(out.status.success(), "{test} failed inside namespace {netns} (output above)");
    assert!(stdout.contains("1 passed"), "{test} did not run inside namespace {netns}: {stdout}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The lab as seen from inside its namespace.
struct Lab {
    servers: ServersFile,
    ca: CaDir,
    trust: Trust,
}

impl Lab {
    fn load() -> Lab {
        let (_, state) = lab_names();
        let servers = ServersFile::load(&state.join("servers.yaml")).expect("the lab's servers file");
        let ca = CaDir::new(state.join("ca"));
        let trust = Trust::CaFile(ca.root_cert());
        Lab { servers, ca, trust }
    }

    fn server(&self, name: &str) -> &Server {
        self.servers.get(name).unwrap_or_else(|| panic!("no {name} in the lab's servers file"))
    }

    fn good_cert(&self) -> PeerCert {
        PeerCert::issue_good(&self.ca, HARNESS_DOMAIN).expect("a harness.lab certificate from the lab CA")
    }

    /// A chain-valid lab certificate for x.lab: the wrong name for harness.lab (fixture `wrongname`).
    fn wrongname_cert(&self) -> PeerCert {
        let mut cert = PeerCert::issue_good(&self.ca, "x.lab").expect("an x.lab certificate");
        cert.label = "wrongname".into();
        cert
    }

    async fn peer(&self, cert: PeerCert) -> S2sPeer {
        let mut config = PeerConfig::lab(cert, self.trust.clone());
        config.step_timeout = STEP;
        S2sPeer::start(config).await.expect("the harness listens on 127.0.0.20:5269")
    }

    /// A fresh account on `server`, logged in with initial presence sent.
    async fn user(&self, server: &Server) -> Session {
        let local = format!("s2s-{:08x}", rand::random::<u32>());
        let jid = Jid::new(Some(&local), &server.domain, None).expect("a valid JID");
        let params = server.client_params(jid, "s2s-secret-pw", Some("r1".into()), STEP, 1 << 20);
        register(&params, Transcript::new()).await.expect("in-band registration");
        let session = Session::connect(&params, Transcript::new()).await.expect("c2s login");
        session.sender().send(&Element::new("presence", NS_CLIENT)).await.expect("initial presence");
        session
    }
}

/// A self-signed certificate for harness.lab (fixture `selfsigned`).
fn selfsigned_cert() -> PeerCert {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![HARNESS_DOMAIN.to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, HARNESS_DOMAIN);
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let creds = Credentials::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    PeerCert::new("selfsigned", creds)
}

fn message(from: &str, to: &str, body: &str, ns: &str) -> Element {
    Element::new("message", ns)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_attr("id", format!("m-{:08x}", rand::random::<u32>()))
        .with_child(Element::new("body", ns).with_text(body))
}

fn body_is(el: &Element, ns: &str, text: &str) -> bool {
    el.child("body", ns).is_some_and(|b| b.text() == text)
}

/// The next stanza on a c2s session that `wanted` accepts, or `None` at the deadline.
async fn receive(session: &mut Session, within: Duration, wanted: impl Fn(&Element) -> bool) -> Option<Element> {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, session.incoming.recv()).await {
            Ok(Some(Incoming::Stanza(el))) if wanted(&el) => return Some(el),
            Ok(Some(Incoming::Stanza(_))) => continue,
            Ok(Some(Incoming::Closed { error })) => panic!("the c2s session closed: {error:?}"),
            Ok(None) | Err(_) => return None,
        }
    }
}

fn show(legs: &[LegRecord]) -> String {
    legs.iter()
        .map(|l| {
            format!(
                "leg {} {:?} {:?} tls={:?} cert={:?} auth={:?} outcome={:?}",
                l.id,
                l.kind,
                l.peer_domain,
                l.tls.as_ref().map(|t| &t.version),
                l.peer_cert.as_ref().map(|c| c.summary()),
                l.auth,
                l.outcome
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SERVERS: [&str; 2] = ["prosody", "ejabberd"];

/// `user` sends `body` to someone@harness.lab; returns what the harness received (leg, authenticated
/// domain, stanza). A server that failed to reach harness.lab moments ago (an earlier test refused it
/// on purpose) may still bounce for its retry delay (ejabberd: `s2s_max_retry_delay: 5` in the lab):
/// after such a bounce the message is sent once more.
async fn send_to_harness(peer: &mut S2sPeer, user: &mut Session, body: &str) -> (u64, Option<String>, Element) {
    for attempt in 1..=2 {
        let stanza = message(&user.jid.to_string(), "someone@harness.lab", body, NS_CLIENT);
        user.sender().send(&stanza).await.unwrap();
        let deadline = Instant::now() + FIRST_S2S;
        tokio::select! {
            got = peer.expect_stanza(deadline, |el| body_is(el, NS_SERVER, body)) => {
                return got.unwrap_or_else(|e| panic!("{}: {e}\n{}", user.jid, show(&peer.legs())));
            }
            bounce = receive(user, FIRST_S2S, |el| el.attr("type") == Some("error")) => {
                let Some(bounce) = bounce else { continue };
                assert!(attempt == 1, "{} bounced twice: {}", user.jid, bounce.to_xml());
                eprintln!("{}: bounced once (server retry delay), sending again in 6 s", user.jid);
                tokio::time::sleep(Duration::from_secs(6)).await;
            }
        }
    }
    panic!("{}: nothing reached the harness\n{}", user.jid, show(&peer.legs()));
}

#[test]
fn harness_to_server_with_sasl_external() {
    in_lab("harness_to_server_with_sasl_external", |lab| async move {
        let peer = lab.peer(lab.good_cert()).await;
        for name in SERVERS {
            let server = lab.server(name);
            let mut user = lab.user(server).await;
            let started = Instant::now();
            let mut link = peer.connect(&server.domain, &peer.outbound_options()).await.unwrap_or_else(|e| {
                panic!("{name}: the harness could not federate: {e}\n{}", show(&peer.legs()));
            });
            assert_eq!(link.authenticated(), Some(AuthMethod::SaslExternal), "{name}");
            let body = format!("hello {name} from the harness");
            link.send(&message("h1@harness.lab/r", &user.jid.to_string(), &body, NS_SERVER)).await.unwrap();
            let got = receive(&mut user, FIRST_S2S, |el| body_is(el, NS_CLIENT, &body)).await;
            let got = got.unwrap_or_else(|| panic!("{name}: the message never reached {}", user.jid));
            assert_eq!(got.attr("from"), Some("h1@harness.lab/r"), "{name}");
            eprintln!("{name}: harness → {} in {:?}", user.jid, started.elapsed());

            let leg = link.close().await.expect("a record");
            let check = leg.peer_cert.as_ref().expect("the server's certificate was judged");
            assert!(check.accepted(), "{name}: {}", check.summary());
            assert_eq!(check.identity(), Some(IdentityForm::DnsId), "{name}");
            let tls = leg.tls.as_ref().expect("TLS");
            eprintln!("{name}: {} {}, {}", tls.version, tls.cipher, check.summary());
            let auth = leg.authenticated().expect("authenticated");
            assert_eq!((auth.method, auth.domain.as_str()), (AuthMethod::SaslExternal, HARNESS_DOMAIN));
            user.close().await;
        }
    });
}

#[test]
fn server_to_harness_with_sasl_external() {
    in_lab("server_to_harness_with_sasl_external", |lab| async move {
        let mut peer = lab.peer(lab.good_cert()).await;
        for name in SERVERS {
            let server = lab.server(name);
            let mut user = lab.user(server).await;
            let body = format!("hello harness from {name}");
            let started = Instant::now();
            let (leg_id, authenticated_as, el) = send_to_harness(&mut peer, &mut user, &body).await;
            eprintln!("{name}: {} → someone@harness.lab in {:?}", user.jid, started.elapsed());
            assert_eq!(authenticated_as.as_deref(), Some(server.domain.as_str()), "{name}");
            assert_eq!(el.attr("from"), Some(user.jid.to_string().as_str()));

            let legs = peer.legs();
            let leg = legs.iter().find(|l| l.id == leg_id).expect("the leg's record");
            assert_eq!(leg.kind, LegKind::Inbound);
            // SNI is optional with STARTTLS (RFC 7590 §3.5: the stream 'to' names the domain): recorded only.
            eprintln!("{name}: SNI {:?}", leg.sni);
            let check = leg.peer_cert.as_ref().expect("the client certificate was judged");
            assert!(check.accepted(), "{name}: {}", check.summary());
            let auth = leg.authenticated().expect("authenticated");
            eprintln!("{name}: inbound {:?}, {}", auth.method, check.summary());
            assert_eq!(auth.method, AuthMethod::SaslExternal, "{name} authenticates with its certificate");
            user.close().await;
        }
        peer.shutdown();
    });
}

#[test]
fn harness_to_prosody_with_dialback() {
    in_lab("harness_to_prosody_with_dialback", |lab| async move {
        // The harness listens as authoritative server for harness.lab while it asks for dialback.
        let peer = lab.peer(lab.good_cert()).await;
        let server = lab.server("prosody");
        let mut user = lab.user(server).await;
        let mut options = peer.outbound_options();
        options.auth = OutboundAuth::Dialback;
        let mut link = peer
            .connect(&server.domain, &options)
            .await
            .unwrap_or_else(|e| panic!("dialback failed: {e}\n{}", show(&peer.legs())));
        let body = "hello prosody over dialback";
        link.send(&message("h1@harness.lab/r", &user.jid.to_string(), body, NS_SERVER)).await.unwrap();
        assert!(receive(&mut user, FIRST_S2S, |el| body_is(el, NS_CLIENT, body)).await.is_some());
        let legs = peer.legs();
        let verified_by_dialing_back = legs.iter().any(|l| l.dialback_verifies.iter().any(|v| v.key_matches));
        eprintln!(
            "prosody accepted dialback {}\n{}",
            if verified_by_dialing_back {
                "after a verify round trip"
            } else {
                "without dialing back (valid certificate)"
            },
            show(&legs)
        );
        user.close().await;
    });
}

#[test]
fn prosody_to_harness_with_dialback() {
    in_lab("prosody_to_harness_with_dialback", |lab| async move {
        // The harness withholds EXTERNAL and checks the key by dialing back to prosody.lab
        // (XEP-0220 §2.1.2): the harness is the receiving server, prosody the authoritative one.
        let mut config = PeerConfig::lab(lab.good_cert(), lab.trust.clone());
        config.step_timeout = STEP;
        config.behaviour.offer_external = ExternalOffer::Never;
        config.behaviour.dialback_result = DialbackJudge::Verify;
        let mut peer = S2sPeer::start(config).await.expect("the harness listens on 127.0.0.20:5269");
        let server = lab.server("prosody");
        let mut user = lab.user(server).await;
        let body = "hello harness over dialback";
        let (leg_id, authenticated_as, _) = send_to_harness(&mut peer, &mut user, body).await;
        assert_eq!(authenticated_as.as_deref(), Some("prosody.lab"));
        let legs = peer.legs();
        let leg = legs.iter().find(|l| l.id == leg_id).expect("the leg's record");
        let auth = leg.authenticated().expect("authenticated");
        assert_eq!(auth.method, AuthMethod::Dialback, "{}", show(&legs));
        let verify = legs.iter().find(|l| l.kind == LegKind::DialbackVerify).expect("a verify connection");
        eprintln!("prosody: {}; verify leg: {:?}\n{}", auth.detail, verify.outcome, show(&legs));
        user.close().await;
    });
}

#[test]
fn harness_names_for_error_cases_resolve_as_designed() {
    in_lab("harness_names_for_error_cases_resolve_as_designed", |lab| async move {
        let target = |d: &str| Target { domain: d.into(), address: None, port: None };
        let harness = resolve::resolve(&target(HARNESS_DOMAIN), Service::Server).await.unwrap();
        assert_eq!(harness, vec!["127.0.0.20:5269".parse().unwrap()]);
        let down = resolve::resolve(&target("down.lab"), Service::Server).await.unwrap_or_else(|e| {
            panic!(
                "down.lab does not resolve ({e:#}): this lab's DNS predates the harness's names; restart it \
                 with `plugfest lab down` and `plugfest lab up` (same --netns/--state-dir)"
            )
        });
        assert_eq!(down, vec!["127.0.0.21:5269".parse().unwrap()]);
        let err = resolve::resolve(&target("nxdomain.lab"), Service::Server).await.unwrap_err();
        assert!(format!("{err:#}").contains("no A or AAAA record"), "{err:#}");

        let mut config = PeerConfig::lab(lab.good_cert(), lab.trust.clone());
        config.listen = None;
        let peer = S2sPeer::start(config).await.unwrap();
        for (domain, why) in [("down.lab", "refused"), ("nxdomain.lab", "no A or AAAA record")] {
            let started = Instant::now();
            match peer.connect(domain, &peer.outbound_options()).await {
                Err(S2sError::Connect { message, .. }) => {
                    assert!(message.contains(why), "{domain}: {message}");
                    assert!(started.elapsed() < STEP, "{domain} took {:?}", started.elapsed());
                }
                Err(other) => panic!("{domain}: expected a connect error, got {other}"),
                Ok(_) => panic!("{domain}: connected to a name that has no server"),
            }
        }
    });
}

#[test]
fn servers_refuse_a_harness_with_a_bad_client_certificate() {
    in_lab("servers_refuse_a_harness_with_a_bad_client_certificate", |lab| async move {
        // The listener presents the good certificate, so a dialback verify connection to harness.lab
        // would succeed: only the initiating link's certificate is bad (secure policy, CATALOG §0.7).
        let peer = lab.peer(lab.good_cert()).await;
        for bad in [lab.wrongname_cert(), selfsigned_cert()] {
            for name in SERVERS {
                let server = lab.server(name);
                let mut user = lab.user(server).await;
                let mut options = peer.outbound_options();
                options.client_cert = Some(bad.clone());
                let body = format!("{} certificate to {name}", bad.label);
                let refusal = match peer.connect(&server.domain, &options).await {
                    Err(e) => format!("refused while negotiating: {e}"),
                    Ok(mut link) => {
                        // Authenticated anyway: the stanza must still not be delivered.
                        let _ = link.send(&message("h1@harness.lab/r", &user.jid.to_string(), &body, NS_SERVER)).await;
                        let leaked = receive(&mut user, REFUSAL_WATCH, |el| body_is(el, NS_CLIENT, &body)).await;
                        assert!(
                            leaked.is_none(),
                            "{name} delivered a stanza from a harness with a {} certificate",
                            bad.label
                        );
                        format!("link authenticated with {:?}, but nothing delivered", link.authenticated())
                    }
                };
                eprintln!("{name} / {}: {refusal}", bad.label);
                let legs = peer.legs();
                let last = legs.iter().rev().find(|l| l.kind == LegKind::Outbound).expect("an outbound leg");
                assert!(
                    last.authenticated().is_none(),
                    "{name} authenticated harness.lab with a {} certificate:\n{}",
                    bad.label,
                    show(&legs)
                );
                user.close().await;
            }
        }
    });
}

#[test]
fn servers_refuse_a_harness_with_a_bad_server_certificate() {
    in_lab("servers_refuse_a_harness_with_a_bad_server_certificate", |lab| async move {
        // G08 shape: the server initiates to harness.lab, which presents a self-signed certificate.
        let mut peer = lab.peer(selfsigned_cert()).await;
        for name in SERVERS {
            let server = lab.server(name);
            let mut user = lab.user(server).await;
            let body = format!("to a self-signed harness from {name}");
            user.sender().send(&message(&user.jid.to_string(), "someone@harness.lab", &body, NS_CLIENT)).await.unwrap();
            let got = peer.expect_stanza(Instant::now() + REFUSAL_WATCH, |el| body_is(el, NS_SERVER, &body)).await;
            assert!(got.is_err(), "{name} sent a stanza to a harness.lab with a self-signed certificate");
            // The sender should hear about it (RFC 6120 §10.4.3); recorded, not asserted here.
            let bounce = receive(&mut user, FIRST_S2S, |el| el.attr("type") == Some("error")).await;
            let condition = bounce
                .as_ref()
                .and_then(|b| b.child("error", NS_CLIENT))
                .and_then(|e| e.elements().next().map(|c| c.name.clone()));
            eprintln!("{name}: refused; the sender got {}", condition.as_deref().unwrap_or("no error within 20 s"));
            user.close().await;
        }
        let legs = peer.shutdown();
        eprintln!("{}", show(&legs));
        assert!(legs.iter().all(|l| l.stanzas_in == 0), "no stanza may cross: {}", show(&legs));
    });
}

#[test]
fn servers_do_not_fall_back_to_cleartext_when_starttls_is_stripped() {
    in_lab("servers_do_not_fall_back_to_cleartext_when_starttls_is_stripped", |lab| async move {
        // G03(a) shape: harness.lab's features omit STARTTLS, as a stripping attacker would.
        let mut config = PeerConfig::lab(lab.good_cert(), lab.trust.clone());
        config.step_timeout = STEP;
        config.behaviour.starttls = StartTlsOffer::Omitted;
        let mut peer = S2sPeer::start(config).await.expect("the harness listens on 127.0.0.20:5269");
        for name in SERVERS {
            let server = lab.server(name);
            let mut user = lab.user(server).await;
            let body = format!("cleartext test from {name}");
            user.sender().send(&message(&user.jid.to_string(), "someone@harness.lab", &body, NS_CLIENT)).await.unwrap();
            let got = peer.expect_stanza(Instant::now() + REFUSAL_WATCH, |el| body_is(el, NS_SERVER, &body)).await;
            assert!(got.is_err(), "{name} sent a stanza in cleartext after STARTTLS was stripped");
            let bounce = receive(&mut user, FIRST_S2S, |el| el.attr("type") == Some("error")).await;
            let condition = bounce
                .as_ref()
                .and_then(|b| b.child("error", NS_CLIENT))
                .and_then(|e| e.elements().next().map(|c| c.name.clone()));
            eprintln!(
                "{name}: no cleartext; the sender got {}",
                condition.as_deref().unwrap_or("no error within 20 s")
            );
            user.close().await;
        }
        let legs = peer.shutdown();
        eprintln!("{}", show(&legs));
        for leg in &legs {
            let received: String = leg
                .transcript
                .iter()
                .filter(|e| e.dir == plugfest::xmpp::Direction::In)
                .filter_map(|e| e.text.clone())
                .collect();
            for forbidden in ["<message", "<presence", "<iq", "<db:result", "<result"] {
                assert!(!received.contains(forbidden), "cleartext {forbidden} on leg {}: {received}", leg.id);
            }
        }
    });
}
