//! XML for XMPP: an element tree, an incremental stream parser over rxml, and a writer.
//!
//! `xml` knows nothing of XMPP semantics beyond the stream envelope (RFC 6120 §4).

mod element;
mod parser;
mod writer;

pub use element::{Attr, Element, Node};
pub use parser::{parse_fragment, StreamEvent, StreamParser, XmlError, DEFAULT_MAX_STANZA};
pub use writer::{stream_close, stream_header};

/// Namespace of the `xml:` prefix (e.g. `xml:lang`).
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The stream envelope namespace (`stream:` prefix).
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
pub const NS_CLIENT: &str = "jabber:client";
pub const NS_SERVER: &str = "jabber:server";
