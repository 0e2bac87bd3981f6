//! One s2s XML stream over TCP, upgradable to TLS on either side: the harness is the TLS client on
//! connections it opens and the TLS server on connections it accepts.
//!
//! A hostile peer cannot make it grow or wait without bound: a stanza is capped by the parser's
//! size limit, a started stanza must complete within `stanza_timeout`, every read and write and
//! the TLS handshake have deadlines, and the transcript records at most `transcript_budget` bytes.
//! (`xmpp::stream` is the c2s counterpart; it only knows the TLS client side.)

use super::Limits;
use crate::net::tls::{self, ClientTls, ServerTls, TlsInfo};
use crate::xml::{stream_close, stream_header, Element, StreamEvent, StreamParser, XmlError, NS_SERVER};
use crate::xmpp::{Direction, Transcript};
use rustls::CommonState;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why no event could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no data before the deadline")]
    Timeout,
    #[error("the peer started an element and sent nothing more for {0:?}")]
    Stalled(Duration),
    #[error("the peer closed the TCP connection")]
    Eof,
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a TLS handshake owns the socket; after a failed handshake the stream is dead.
    Gone,
}

/// One XML stream of the s2s protocol (`jabber:server`) over one TCP connection.
pub struct S2sStream {
    io: Transport,
    parser: StreamParser,
    /// Bytes read but not yet parsed (the parser stops after each event so a restart can re-feed them).
    unparsed: Vec<u8>,
    chunk: Box<[u8]>,
    transcript: Transcript,
    recorded: usize,
    truncated: bool,
    limits: Limits,
    /// When the peer began an element that is not complete yet.
    partial_since: Option<Instant>,
    /// The bytes of the current stream header while it is being read (the parser keeps no
    /// namespace declarations, and `xmlns:db` on the header is how dialback is announced).
    header_bytes: Option<Vec<u8>>,
    declared: Vec<u8>,
    peer: SocketAddr,
    local: SocketAddr,
}

impl S2sStream {
    /// Wrap a connected socket (TCP_NODELAY: stanzas are small and latency is measured).
    pub fn new(tcp: TcpStream, transcript: Transcript, limits: Limits) -> io::Result<S2sStream> {
        tcp.set_nodelay(true)?;
        let peer = tcp.peer_addr()?;
        let local = tcp.local_addr()?;
        Ok(S2sStream {
            io: Transport::Plain(tcp),
            parser: StreamParser::new(limits.max_stanza),
            unparsed: Vec::new(),
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            transcript,
            recorded: 0,
            truncated: false,
            limits,
            partial_since: None,
            header_bytes: Some(Vec::new()),
            declared: Vec::new(),
            peer,
            local,
        })
    }

    /// Open a TCP connection within `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        transcript: Transcript,
        limits: Limits,
    ) -> io::Result<S2sStream> {
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no TCP answer within {timeout:?}"))),
        };
        let stream = S2sStream::new(tcp, transcript, limits)?;
        stream.transcript.note(format!("TCP connected to {addr} from {}", stream.local));
        Ok(stream)
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Record bytes within the transcript budget; past it, one note says how the rest was dropped.
    fn record(&mut self, dir: Direction, bytes: &[u8]) {
        let room = self.limits.transcript_budget.saturating_sub(self.recorded);
        if bytes.len() <= room {
            self.recorded += bytes.len();
            self.transcript.record(dir, bytes);
            return;
        }
        if room > 0 {
            // Cut at a character boundary when the bytes are text, so the entry stays readable.
            let mut cut = room;
            if let Ok(text) = std::str::from_utf8(bytes) {
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
            }
            self.recorded += cut;
            self.transcript.record(dir, &bytes[..cut]);
        }
        if !self.truncated {
            self.truncated = true;
            self.transcript.note(format!(
                "transcript budget of {} bytes used up: further traffic on this connection is not recorded",
                self.limits.transcript_budget
            ));
        }
    }

    /// Write all bytes (recorded first, so cause precedes effect), bounded by the write timeout.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.record(Direction::Out, bytes);
        let timeout = self.limits.write_timeout;
        let write = async {
            match &mut self.io {
                Transport::Plain(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Transport::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Transport::Gone => Err(gone()),
            }
        };
        let result = match tokio::time::timeout(timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer did not take our bytes within {timeout:?}"),
            )),
        };
        if let Err(e) = &result {
            self.transcript.note(format!("write failed: {e}"));
        }
        result
    }

    /// `<?xml?><stream:stream xmlns='jabber:server' xmlns:stream=… attrs…>`. Pass
    /// `("xmlns:db", NS_DIALBACK)` among `attrs` to declare dialback support.
    pub async fn send_header(&mut self, attrs: &[(&str, &str)]) -> io::Result<()> {
        let header = stream_header(attrs, NS_SERVER);
        self.send_raw(header.as_bytes()).await
    }

    /// Serialise and send one element in the `jabber:server` stream.
    pub async fn send(&mut self, el: &Element) -> io::Result<()> {
        // Dialback with its conventional prefix: ejabberd 23.01 ignores `<result xmlns='jabber:server:dialback'>`.
        let xml = if el.ns == super::dialback::NS_DIALBACK {
            el.to_xml_prefixed("db", NS_SERVER)
        } else {
            el.to_xml_in(NS_SERVER)
        };
        self.send_raw(xml.as_bytes()).await
    }

    /// `</stream:stream>`.
    pub async fn send_close(&mut self) -> io::Result<()> {
        self.send_raw(stream_close().as_bytes()).await
    }

    /// The next stream event, or an error at `deadline`, or `Stalled` when a started element does
    /// not complete within the stanza timeout. Safe to cancel: nothing read is lost.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<StreamEvent, ReadError> {
        loop {
            if !self.unparsed.is_empty() {
                let mut rest: &[u8] = &self.unparsed;
                let event = self.parser.feed_until_event(&mut rest)?;
                let consumed = self.unparsed.len() - rest.len();
                let started_element = self.unparsed[..consumed].iter().any(|b| !b.is_ascii_whitespace());
                if let Some(header) = &mut self.header_bytes {
                    header.extend_from_slice(&self.unparsed[..consumed]);
                }
                self.unparsed.drain(..consumed);
                if let Some(event) = event {
                    self.partial_since = None;
                    if let (StreamEvent::Header(_), Some(header)) = (&event, self.header_bytes.take()) {
                        self.declared = header;
                    }
                    return Ok(event);
                }
                if started_element && self.partial_since.is_none() {
                    self.partial_since = Some(Instant::now());
                }
            }
            let stall_deadline = self.partial_since.map(|t| t + self.limits.stanza_timeout);
            let effective = match stall_deadline {
                Some(s) if s < deadline => s,
                _ => deadline,
            };
            let read = async {
                match &mut self.io {
                    Transport::Plain(s) => s.read(&mut self.chunk).await,
                    Transport::Tls(s) => s.read(&mut self.chunk).await,
                    Transport::Gone => Err(gone()),
                }
            };
            let n = match tokio::time::timeout_at(effective, read).await {
                Ok(result) => result?,
                Err(_) if Some(effective) == stall_deadline => {
                    return Err(ReadError::Stalled(self.limits.stanza_timeout));
                }
                Err(_) => return Err(ReadError::Timeout),
            };
            if n == 0 {
                return Err(ReadError::Eof);
            }
            let chunk = std::mem::take(&mut self.chunk);
            self.record(Direction::In, &chunk[..n]);
            self.unparsed.extend_from_slice(&chunk[..n]);
            self.chunk = chunk;
        }
    }

    /// The default namespace the current stream header declared (`jabber:server` expected).
    pub fn stream_ns(&self) -> Option<&str> {
        self.parser.stream_default_ns()
    }

    /// Whether the current stream header declares namespace `ns` (e.g. `xmlns:db='jabber:server:dialback'`).
    pub fn stream_declares(&self, ns: &str) -> bool {
        let text = String::from_utf8_lossy(&self.declared);
        text.contains(&format!("'{ns}'")) || text.contains(&format!("\"{ns}\""))
    }

    /// A new stream starts (after TLS or SASL success): the parser forgets the old one.
    pub fn restart(&mut self) {
        self.parser.reset();
        self.header_bytes = Some(Vec::new());
        self.declared.clear();
    }

    /// Bytes read that no event has consumed (after `<proceed/>` there must be none).
    pub fn has_unparsed_input(&self) -> bool {
        !self.unparsed.is_empty()
    }

    fn take_plain(&mut self) -> io::Result<TcpStream> {
        match std::mem::replace(&mut self.io, Transport::Gone) {
            Transport::Plain(tcp) => Ok(tcp),
            other => {
                self.io = other;
                Err(io::Error::other("TLS is already established on this stream"))
            }
        }
    }

    /// TLS client handshake (SNI = `domain`), then a parser restart. Bounded by `deadline`.
    pub async fn tls_connect(&mut self, tls: &ClientTls, domain: &str, deadline: Instant) -> io::Result<()> {
        let name =
            tls::server_name(domain).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:#}")))?;
        let tcp = self.take_plain()?;
        let connector = TlsConnector::from(tls.config.clone());
        let stream = self.handshake(tokio::time::timeout_at(deadline, connector.connect(name, tcp))).await?;
        self.io = Transport::Tls(Box::new(TlsStream::Client(stream)));
        self.restart();
        Ok(())
    }

    /// TLS server handshake, then a parser restart. Bounded by `deadline`.
    pub async fn tls_accept(&mut self, tls: &ServerTls, deadline: Instant) -> io::Result<()> {
        let tcp = self.take_plain()?;
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let stream = self.handshake(tokio::time::timeout_at(deadline, acceptor.accept(tcp))).await?;
        self.io = Transport::Tls(Box::new(TlsStream::Server(stream)));
        self.restart();
        Ok(())
    }

    async fn handshake<T>(
        &mut self,
        attempt: impl std::future::Future<Output = Result<io::Result<T>, tokio::time::error::Elapsed>>,
    ) -> io::Result<T> {
        match attempt.await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => {
                self.transcript.note(format!("TLS handshake failed: {e}"));
                Err(e)
            }
            Err(_) => {
                self.transcript.note("TLS handshake did not finish in time");
                Err(io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time"))
            }
        }
    }

    /// The TLS session, once established.
    pub fn tls_state(&self) -> Option<&CommonState> {
        match &self.io {
            Transport::Tls(s) => Some(s.get_ref().1),
            _ => None,
        }
    }

    /// Version, cipher and peer chain of the TLS session, once established.
    pub fn tls_info(&self, seen: &tls::SeenChain, verified_for: &str) -> Option<TlsInfo> {
        self.tls_state().map(|state| tls::session_info(state, seen, verified_for))
    }

    /// The ALPN protocol agreed in the TLS handshake, if any.
    pub fn alpn(&self) -> Option<String> {
        self.tls_state().and_then(|s| s.alpn_protocol()).map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The SNI the peer sent (inbound TLS only).
    pub fn sni(&self) -> Option<String> {
        match &self.io {
            Transport::Tls(s) => match s.as_ref() {
                TlsStream::Server(server) => server.get_ref().1.server_name().map(str::to_string),
                TlsStream::Client(_) => None,
            },
            _ => None,
        }
    }

    /// Close our sending direction (TLS close_notify, then FIN), bounded by the write timeout.
    pub async fn shutdown(&mut self) {
        let timeout = self.limits.write_timeout;
        let shutdown = async {
            match &mut self.io {
                Transport::Plain(s) => s.shutdown().await,
                Transport::Tls(s) => s.shutdown().await,
                Transport::Gone => Ok(()),
            }
        };
        let _ = tokio::time::timeout(timeout, shutdown).await;
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection was lost during the TLS handshake")
}
