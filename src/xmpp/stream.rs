//! One XML stream over TCP, upgradable to TLS: write elements, read events.
//!
//! Every byte in both directions goes to the connection's [`Transcript`] exactly as written or
//! read (after TLS: the plaintext), plus notes for connection and TLS milestones. After
//! negotiation, [`XmlStream::into_halves`] splits the stream so a reader task and a writer task
//! can run independently.

use crate::net::tls::{self, ClientTls, TlsInfo};
use crate::xml::{stream_close, stream_header, Element, StreamEvent, StreamParser, XmlError};
use crate::xmpp::{Direction, Transcript};
use rustls::ClientConnection;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why no event could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no data before the deadline")]
    Timeout,
    #[error("the peer closed the TCP connection")]
    Eof,
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// The transport under the XML: plain TCP, or TLS over it after STARTTLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the TLS handshake owns the socket; after a failed handshake the stream is dead.
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection was lost during the TLS handshake")
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Reads events from any byte source: the parser plus bytes read but not yet parsed.
struct EventReader {
    parser: StreamParser,
    /// Bytes read but not yet fed: the parser stops after each event so that a stream restart
    /// can re-feed what followed to a fresh parser.
    unparsed: Vec<u8>,
    chunk: Box<[u8]>,
    transcript: Transcript,
}

impl EventReader {
    fn new(max_stanza: usize, transcript: Transcript) -> Self {
        EventReader {
            parser: StreamParser::new(max_stanza),
            unparsed: Vec::new(),
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            transcript,
        }
    }

    async fn next<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        deadline: Option<Instant>,
    ) -> Result<StreamEvent, ReadError> {
        loop {
            if !self.unparsed.is_empty() {
                let mut rest: &[u8] = &self.unparsed;
                let event = self.parser.feed_until_event(&mut rest)?;
                let consumed = self.unparsed.len() - rest.len();
                self.unparsed.drain(..consumed);
                if let Some(event) = event {
                    return Ok(event);
                }
            }
            let n = match deadline {
                Some(d) => {
                    tokio::time::timeout_at(d, io.read(&mut self.chunk)).await.map_err(|_| ReadError::Timeout)??
                }
                None => io.read(&mut self.chunk).await?,
            };
            if n == 0 {
                return Err(ReadError::Eof);
            }
            self.transcript.record(Direction::In, &self.chunk[..n]);
            self.unparsed.extend_from_slice(&self.chunk[..n]);
        }
    }

    fn restart(&mut self) {
        self.parser.reset();
    }
}

/// Record, then write and flush (recorded first so the transcript keeps cause before effect even
/// when the answer is read by another task).
async fn write_recorded<W: AsyncWrite + Unpin>(io: &mut W, transcript: &Transcript, bytes: &[u8]) -> io::Result<()> {
    transcript.record(Direction::Out, bytes);
    let result = async {
        io.write_all(bytes).await?;
        io.flush().await
    }
    .await;
    if let Err(e) = &result {
        transcript.note(format!("write failed: {e}"));
    }
    result
}

/// One XML stream over one TCP connection.
pub struct XmlStream {
    conn: Conn,
    reader: EventReader,
    transcript: Transcript,
    stream_ns: String,
    peer: SocketAddr,
}

impl XmlStream {
    /// Open a TCP connection (TCP_NODELAY on: stanzas are small and latency is measured) within
    /// `timeout`. `stream_ns` is the stream's default namespace (`jabber:client`).
    pub async fn connect(
        addr: SocketAddr,
        stream_ns: &str,
        transcript: Transcript,
        max_stanza: usize,
        timeout: Duration,
    ) -> io::Result<XmlStream> {
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no TCP answer within {timeout:?}"))),
        };
        Self::from_tcp(tcp, stream_ns, transcript, max_stanza)
    }

    /// Wrap an already connected socket.
    pub fn from_tcp(tcp: TcpStream, stream_ns: &str, transcript: Transcript, max_stanza: usize) -> io::Result<Self> {
        tcp.set_nodelay(true)?;
        let peer = tcp.peer_addr()?;
        let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        transcript.note(format!("TCP connected to {peer} from {local}"));
        Ok(XmlStream {
            conn: Conn::Plain(tcp),
            reader: EventReader::new(max_stanza, transcript.clone()),
            transcript,
            stream_ns: stream_ns.to_string(),
            peer,
        })
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// Send `<?xml version='1.0'?><stream:stream xmlns=… xmlns:stream=… attrs…>`.
    pub async fn send_header(&mut self, attrs: &[(&str, &str)]) -> io::Result<()> {
        let header = stream_header(attrs, &self.stream_ns);
        write_recorded(&mut self.conn, &self.transcript, header.as_bytes()).await
    }

    /// Serialise and send one element in the stream's namespace.
    pub async fn send(&mut self, el: &Element) -> io::Result<()> {
        let xml = el.to_xml_in(&self.stream_ns);
        write_recorded(&mut self.conn, &self.transcript, xml.as_bytes()).await
    }

    /// Send bytes exactly as given (malformed input on purpose).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_recorded(&mut self.conn, &self.transcript, bytes).await
    }

    /// Send `</stream:stream>`.
    pub async fn send_close(&mut self) -> io::Result<()> {
        write_recorded(&mut self.conn, &self.transcript, stream_close().as_bytes()).await
    }

    /// The next stream event, or `ReadError::Timeout` at `deadline`. Safe to call again after a
    /// timeout: nothing read is lost.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<StreamEvent, ReadError> {
        self.reader.next(&mut self.conn, Some(deadline)).await
    }

    /// A new stream starts (after TLS or SASL success): the parser forgets the old one.
    pub fn restart(&mut self) {
        self.reader.restart();
    }

    /// Whether bytes were read that no event has consumed yet (after `<proceed/>` there must be none:
    /// anything the server sent before the TLS handshake would be injected plaintext).
    pub fn has_unparsed_input(&self) -> bool {
        !self.reader.unparsed.is_empty()
    }

    /// Run the TLS handshake over the plain connection (after `<proceed/>`), with SNI and the
    /// certificate check for `domain`, and restart the parser. Bounded by `deadline`.
    /// On failure the stream is unusable.
    pub async fn start_tls(&mut self, tls: &ClientTls, domain: &str, deadline: Instant) -> io::Result<TlsInfo> {
        let name =
            tls::server_name(domain).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:#}")))?;
        let tcp = match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Plain(tcp) => tcp,
            other => {
                self.conn = other;
                return Err(io::Error::other("TLS is already established on this stream"));
            }
        };
        let connector = TlsConnector::from(tls.config.clone());
        let stream = match tokio::time::timeout_at(deadline, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.transcript.note(format!("TLS handshake failed: {e}"));
                return Err(e);
            }
            Err(_) => {
                self.transcript.note("TLS handshake timed out");
                return Err(io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time"));
            }
        };
        let info = tls::tls_info(stream.get_ref().1, &tls.seen, domain);
        self.transcript.note(format!(
            "TLS established: {} {}, peer certificate {}",
            info.version,
            info.cipher,
            info.peer_chain.first().map(String::as_str).unwrap_or("(none)")
        ));
        self.conn = Conn::Tls(Box::new(stream));
        self.reader.restart();
        Ok(info)
    }

    /// The TLS session, once established.
    pub fn tls_connection(&self) -> Option<&ClientConnection> {
        match &self.conn {
            Conn::Tls(s) => Some(s.get_ref().1),
            _ => None,
        }
    }

    /// Split into independently usable read and write halves.
    pub fn into_halves(self) -> (StreamReader, StreamWriter) {
        let (read, write) = tokio::io::split(self.conn);
        (
            StreamReader { io: read, reader: self.reader },
            StreamWriter { io: write, transcript: self.transcript, stream_ns: self.stream_ns },
        )
    }
}

/// The reading half of an [`XmlStream`].
pub struct StreamReader {
    io: ReadHalf<Conn>,
    reader: EventReader,
}

impl StreamReader {
    /// The next event; `None` waits without a deadline (the caller bounds it otherwise).
    pub async fn next_event(&mut self, deadline: Option<Instant>) -> Result<StreamEvent, ReadError> {
        self.reader.next(&mut self.io, deadline).await
    }
}

/// The writing half of an [`XmlStream`].
pub struct StreamWriter {
    io: WriteHalf<Conn>,
    transcript: Transcript,
    stream_ns: String,
}

impl StreamWriter {
    pub async fn send(&mut self, el: &Element) -> io::Result<()> {
        let xml = el.to_xml_in(&self.stream_ns);
        write_recorded(&mut self.io, &self.transcript, xml.as_bytes()).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_recorded(&mut self.io, &self.transcript, bytes).await
    }

    /// Close the sending direction (TLS close_notify, then TCP FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }

    pub fn stream_ns(&self) -> &str {
        &self.stream_ns
    }
}
