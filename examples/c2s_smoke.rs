//! Ad-hoc check of the c2s stack against a real server (run inside the lab namespace):
//! `ip netns exec plugfest target/debug/examples/c2s_smoke prosody.lab /var/lib/plugfest/lab/ca/root.pem [address]`
use plugfest::jid::Jid;
use plugfest::net::resolve::{self, Service, Target};
use plugfest::net::tls::{TlsMode, Trust};
use plugfest::xmpp::{register, ClientParams, Incoming, Session, Transcript};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "resolve" {
        for name in &args[2..] {
            for service in [Service::Client, Service::Server] {
                let t = Target { domain: name.clone(), address: None, port: None };
                for _ in 0..3 {
                    let r = resolve::resolve(&t, service).await.map_err(|e| format!("{e:#}"));
                    println!("{name} {service:?}: {r:?}");
                }
            }
        }
        return;
    }
    let domain = &args[1];
    let ca = &args[2];
    let address = args.get(3).map(|a| a.parse().unwrap());
    let target = Target { domain: domain.clone(), address, port: None };
    println!("resolve: {:?}", resolve::resolve(&target, Service::Client).await);
    println!("resolve s2s: {:?}", resolve::resolve(&target, Service::Server).await);
    let user = std::env::var("XUSER").unwrap_or_else(|_| format!("smoke{}", std::process::id()));
    let params = ClientParams {
        jid: Jid::parse(&format!("{user}@{domain}")).unwrap(),
        password: "secret-pw".into(),
        resource: Some("r1".into()),
        target,
        tls: TlsMode::Required,
        trust: Trust::CaFile(ca.into()),
        lang: Some("en".into()),
        step_timeout: Duration::from_secs(5),
        max_stanza: 1 << 20,
    };
    let t = Transcript::new();
    println!("register: {:?}", register(&params, t.clone()).await.map_err(|e| e.to_string()));
    let t2 = Transcript::new();
    println!("register again: {:?}", register(&params, t2.clone()).await.map_err(|e| e.to_string()));
    let t3 = Transcript::new();
    match Session::connect(&params, t3.clone()).await {
        Ok(mut s) => {
            println!(
                "bound {} via {:?}, tls {:?}",
                s.jid,
                s.mechanism,
                s.tls.as_ref().map(|t| (&t.version, &t.cipher, &t.peer_chain))
            );
            let ping = plugfest::xml::parse_fragment(
                &format!("<iq type='get' id='p1' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"),
                "jabber:client",
            )
            .unwrap();
            s.sender().send(&ping).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), s.incoming.recv()).await;
            println!(
                "ping answer: {:?}",
                got.map(|g| g.map(|i| match i {
                    Incoming::Stanza(e) => e.to_xml(),
                    Incoming::Closed { error } => format!("closed {error:?}"),
                }))
            );
            s.close().await;
        }
        Err(e) => println!("connect failed: {e}"),
    }
    if let Ok(mut s1) = Session::connect(&params, Transcript::new()).await {
        let s2 = Session::connect(&params, Transcript::new()).await.map_err(|e| e.to_string());
        println!("second r1 session: {:?}", s2.as_ref().map(|s| s.jid.to_string()));
        for _ in 0..3 {
            match tokio::time::timeout(Duration::from_secs(3), s1.incoming.recv()).await {
                Ok(Some(Incoming::Stanza(e))) => println!("  s1 got {}", e.to_xml()),
                Ok(Some(Incoming::Closed { error })) => {
                    println!("  s1 closed: {error:?}");
                    break;
                }
                other => {
                    println!("  s1: {other:?}");
                    break;
                }
            }
        }
        if let Ok(mut s2) = s2 {
            s2.sender().send_raw(b"<message><body>x</message>".to_vec()).await.unwrap();
            for _ in 0..3 {
                match tokio::time::timeout(Duration::from_secs(3), s2.incoming.recv()).await {
                    Ok(Some(Incoming::Stanza(e))) => println!("  s2 got {}", e.to_xml()),
                    Ok(Some(Incoming::Closed { error })) => {
                        println!("  s2 closed: {error:?}");
                        break;
                    }
                    other => {
                        println!("  s2: {other:?}");
                        break;
                    }
                }
            }
            s2.close().await;
        }
    }
    let bad = ClientParams { password: "wrong".into(), ..params.clone() };
    println!("wrong password: {:?}", Session::connect(&bad, Transcript::new()).await.err().map(|e| e.to_string()));
    let nobody = ClientParams { jid: Jid::parse(&format!("nobody-{user}@{domain}")).unwrap(), ..params.clone() };
    println!("unknown user: {:?}", Session::connect(&nobody, Transcript::new()).await.err().map(|e| e.to_string()));
    if std::env::var("SHOW").is_ok() {
        for e in t3.entries() {
            println!("{:>9.3} {:?} {}", e.t_ms, e.dir, e.text.unwrap_or_default());
        }
    }
}
