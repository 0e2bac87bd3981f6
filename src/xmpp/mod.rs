//! XMPP client streams: STARTTLS, SASL, resource binding, in-band registration, and a
//! byte-exact transcript of every connection. Knows nothing of scenarios or YAML.

pub mod client;
pub mod s2s;
pub mod sasl;
pub mod stream;
pub mod transcript;

pub use client::{register, ClientParams, Incoming, Session, StanzaSender, XmppError};
pub use transcript::{Direction, Transcript, TranscriptEntry};
