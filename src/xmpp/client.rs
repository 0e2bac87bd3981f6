//! A c2s client session: connect, STARTTLS, SASL, bind; then a reader and a writer task so
//! the runner can wait on many actors at once. OWNER: xmpp helper.

use crate::jid::Jid;
use crate::net::resolve::Target;
use crate::net::tls::{TlsInfo, TlsMode, Trust};
use crate::xml::Element;
use crate::xmpp::Transcript;
use std::time::Duration;
use tokio::sync::mpsc;

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

/// Cheap-to-clone handle for sending on an established session.
#[derive(Clone)]
pub struct StanzaSender {
    _priv: (),
}

impl StanzaSender {
    /// Serialise and send one element (in the stream's namespace).
    pub async fn send(&self, _el: &Element) -> Result<(), XmppError> {
        todo!("xmpp helper")
    }
    /// Send bytes as they are (for malformed-input cases).
    pub async fn send_raw(&self, _bytes: Vec<u8>) -> Result<(), XmppError> {
        todo!("xmpp helper")
    }
}

/// An established, bound c2s session.
pub struct Session {
    /// The full JID the server bound.
    pub jid: Jid,
    /// The stream features after binding's stream restart (for gates such as rosterver).
    pub features: Element,
    pub tls: Option<TlsInfo>,
    /// Stanzas from the server, in order, ending with one `Closed`.
    pub incoming: mpsc::UnboundedReceiver<Incoming>,
    sender: StanzaSender,
}

impl Session {
    /// Connect and negotiate up to a bound resource. Every step has `params.step_timeout`.
    pub async fn connect(_params: &ClientParams, _transcript: Transcript) -> Result<Session, XmppError> {
        todo!("xmpp helper")
    }

    pub fn sender(&self) -> StanzaSender {
        self.sender.clone()
    }

    /// Send `</stream:stream>` and wait (bounded) for the server's close.
    pub async fn close(self) {
        todo!("xmpp helper")
    }
}

/// Create the account `params.jid` with `params.password` by XEP-0077 in-band registration.
pub async fn register(_params: &ClientParams, _transcript: Transcript) -> Result<(), XmppError> {
    todo!("xmpp helper")
}
