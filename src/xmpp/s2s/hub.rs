//! One listener for many harness domains. Cases run in parallel and each has its own harness
//! domain (`<case>.harness.lab`), so servers never reuse one case's s2s connection, cached
//! failures or authentication for the next; they all connect to the same lab address and port.
//! The hub reads each connection's first stream header and hands the connection to the peer
//! registered for its 'to' domain, like a server hosting many virtual hosts. A 'to' nobody
//! serves is answered with `host-unknown` (RFC 6120 §4.9.3.6).

use super::inbound;
use super::stream::S2sStream;
use super::{Limits, S2sError, Shared};
use crate::xml::{Element, StreamEvent, NS_STREAM};
use crate::xmpp::client::NS_STREAMS;
use crate::xmpp::Transcript;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a new connection may take to send its stream header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections waiting for their header at once; more are refused (a flood of idle sockets).
const MAX_UNROUTED: usize = 256;

/// A peer registered on the hub: where its connections go and the tasks serving them.
pub(super) struct Host {
    pub(super) shared: Weak<Shared>,
    pub(super) tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

#[derive(Default)]
struct Registry {
    hosts: Mutex<HashMap<String, Host>>,
    /// The one peer that takes connections on the direct TLS port (XEP-0368): they are TLS from
    /// the first byte, so there is no stream header to route by before the handshake.
    direct: Mutex<Option<Host>>,
    unrouted: std::sync::atomic::AtomicUsize,
}

/// The shared listener. Peers join with [`super::S2sPeer::start_on`] and leave when dropped.
pub struct S2sHub {
    registry: Arc<Registry>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
    direct_task: Option<JoinHandle<()>>,
}

impl S2sHub {
    /// Listen on `addr` (in the lab: the harness address, port 5269).
    pub async fn bind(addr: SocketAddr) -> Result<S2sHub, S2sError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            S2sError::Setup(format!(
                "cannot listen on {addr}: {e} (inside the lab the harness runs in the lab's network namespace; \
                 is another plugfest run or harness test already listening there?)"
            ))
        })?;
        let local_addr = listener.local_addr().map_err(|e| S2sError::Setup(e.to_string()))?;
        let registry = Arc::new(Registry::default());
        let task = tokio::spawn(accept_loop(listener, registry.clone()));
        Ok(S2sHub { registry, local_addr, task, direct_task: None })
    }

    /// Also accept direct TLS s2s connections (XEP-0368) on `addr`, for the peer registered with
    /// [`S2sHub::register_direct`].
    /// Returns the address bound.
    pub async fn listen_direct_tls(&mut self, addr: SocketAddr) -> Result<SocketAddr, S2sError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| S2sError::Setup(format!("cannot listen for direct TLS on {addr}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| S2sError::Setup(e.to_string()))?;
        self.direct_task = Some(tokio::spawn(direct_accept_loop(listener, self.registry.clone())));
        Ok(bound)
    }

    /// Hand the direct TLS port's connections to `host` (one peer at a time).
    pub(super) fn register_direct(&self, host: Host) -> Result<DirectGuard, S2sError> {
        let mut direct = self.registry.direct.lock().unwrap_or_else(|p| p.into_inner());
        if direct.as_ref().is_some_and(|h| h.shared.strong_count() > 0) {
            return Err(S2sError::Setup("another peer takes the direct TLS port in this run".into()));
        }
        *direct = Some(host);
        Ok(DirectGuard { registry: Arc::downgrade(&self.registry) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Route connections for `domain` to `shared`; fails when another live peer has the domain.
    pub(super) fn register(&self, domain: &str, host: Host) -> Result<HostGuard, S2sError> {
        let key = key(domain);
        let mut hosts = self.registry.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts.get(&key).is_some_and(|h| h.shared.strong_count() > 0) {
            return Err(S2sError::Setup(format!("the harness already serves {domain} in this run")));
        }
        hosts.insert(key.clone(), host);
        Ok(HostGuard { registry: Arc::downgrade(&self.registry), key })
    }
}

impl Drop for S2sHub {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(task) = &self.direct_task {
            task.abort();
        }
    }
}

/// Removes the direct TLS registration when the peer goes away.
pub(super) struct DirectGuard {
    registry: Weak<Registry>,
}

impl Drop for DirectGuard {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            *registry.direct.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// Direct TLS connections go to the registered peer (none registered: refused).
async fn direct_accept_loop(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let (tcp, _) = accept(&listener).await;
        let host = {
            let direct = registry.direct.lock().unwrap_or_else(|p| p.into_inner());
            direct.as_ref().and_then(|h| Some((h.shared.upgrade()?, h.tasks.clone())))
        };
        let Some((shared, tasks)) = host else { continue };
        let transcript = Transcript::new();
        let Ok(stream) = S2sStream::new(tcp, transcript.clone(), Limits::default()) else { continue };
        transcript.note(format!(
            "direct TLS connection from {} accepted on {}",
            stream.peer_addr(),
            stream.local_addr()
        ));
        let Some(leg) = shared.new_leg(super::LegKind::Inbound, transcript) else { continue };
        shared.emit(super::PeerEvent::LegOpened { leg: leg.id, peer_addr: stream.peer_addr() });
        let task = tokio::spawn(inbound::serve_stream(stream, leg, inbound::Start::DirectTls));
        keep(&tasks, task);
    }
}

/// Removes a peer's registration when the peer goes away.
pub(super) struct HostGuard {
    registry: Weak<Registry>,
    key: String,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.hosts.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
        }
    }
}

/// The next connection; accept errors (out of file descriptors and the like) wait instead of spinning.
pub(super) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => return conn,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Keep a leg's task so the peer can end it, forgetting the finished ones.
pub(super) fn keep(tasks: &Mutex<Vec<JoinHandle<()>>>, task: JoinHandle<()>) {
    let mut tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
    tasks.retain(|t| !t.is_finished());
    tasks.push(task);
}

fn key(domain: &str) -> String {
    crate::net::resolve::ascii_domain(domain).unwrap_or_else(|_| domain.to_string()).to_ascii_lowercase()
}

async fn accept_loop(listener: TcpListener, registry: Arc<Registry>) {
    use std::sync::atomic::Ordering;
    loop {
        let (tcp, _) = accept(&listener).await;
        if registry.unrouted.fetch_add(1, Ordering::SeqCst) >= MAX_UNROUTED {
            registry.unrouted.fetch_sub(1, Ordering::SeqCst);
            drop(tcp);
            continue;
        }
        let registry = registry.clone();
        tokio::spawn(async move {
            route(tcp, &registry).await;
            registry.unrouted.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Read the stream header and hand the connection to the peer serving its 'to'.
async fn route(tcp: TcpStream, registry: &Registry) {
    let transcript = Transcript::new();
    let Ok(mut stream) = S2sStream::new(tcp, transcript.clone(), Limits::default()) else { return };
    transcript.note(format!("TCP connection from {} accepted on {}", stream.peer_addr(), stream.local_addr()));
    let header = match stream.next_event(Instant::now() + HEADER_TIMEOUT).await {
        Ok(StreamEvent::Header(header)) => header,
        _ => {
            stream.shutdown().await;
            return;
        }
    };
    let to = header.attr("to").unwrap_or_default().to_string();
    let host = {
        let hosts = registry.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.get(&key(&to)).and_then(|h| Some((h.shared.upgrade()?, h.tasks.clone())))
    };
    let Some((shared, tasks)) = host else {
        // RFC 6120 §4.9.3.6: a 'to' the harness does not serve.
        let _ = stream.send_header(&[("version", "1.0")]).await;
        let error = Element::new("error", NS_STREAM)
            .with_child(Element::new("host-unknown", NS_STREAMS))
            .with_child(Element::new("text", NS_STREAMS).with_text(format!("no harness peer serves {to:?} now")));
        let _ = stream.send(&error).await;
        let _ = stream.send_close().await;
        stream.shutdown().await;
        return;
    };
    let Some(leg) = shared.new_leg(super::LegKind::Inbound, transcript) else {
        stream.shutdown().await;
        return;
    };
    shared.emit(super::PeerEvent::LegOpened { leg: leg.id, peer_addr: stream.peer_addr() });
    let task = tokio::spawn(inbound::serve_stream(stream, leg, inbound::Start::Plain(Some(header))));
    keep(&tasks, task);
}
