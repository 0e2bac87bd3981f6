//! Incremental XMPP stream parser over rxml: bytes in arbitrary chunks → header, stanzas, close.
//!
//! rxml's raw parser does the XML 1.0 work (well-formedness, UTF-8, and rejecting DTDs,
//! processing instructions, comments and undeclared entities as RFC 6120 §11.1 requires).
//! Namespace resolution is done here so that attributes keep document order and so that
//! `parse_fragment` can pre-bind the `stream:` prefix.
//!
//! Memory stays bounded: every byte of a top-level child (and of the stream header) is counted
//! as rxml reports it, and the stream fails with `TooLarge` once a child passes the limit, even
//! if its end tag never comes. rxml's own buffer is bounded by its per-token limit.

use rxml::error::EndOrError;
use rxml::parser::CommentMode;
use rxml::{Options, Parse, RawEvent, RawParser, WithOptions};

use super::{Attr, Element, Node, NS_STREAM, NS_XML};

/// Default maximum size of one stanza in bytes (RFC 6120 leaves it to the server; 1 MiB is generous).
pub const DEFAULT_MAX_STANZA: usize = 1 << 20;

/// rxml's per-token limit (one name, attribute value or text chunk). rxml allocates this much
/// per parser up front, so it stays well below the stanza limit; text longer than this is
/// simply delivered in several chunks, which the tree builder joins.
const MAX_TOKEN: usize = 64 * 1024;

#[derive(Clone, Debug, thiserror::Error)]
pub enum XmlError {
    #[error("not well-formed XML at byte {offset}: {message}")]
    NotWellFormed { offset: u64, message: String },
    #[error("restricted XML at byte {offset}: {what} (RFC 6120 §11.1 forbids it)")]
    Restricted { offset: u64, what: String },
    #[error("stanza exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Other(String),
}

/// One event of an XML stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The `<stream:stream …>` opening tag: an element with its attributes and no children.
    Header(Element),
    /// A complete top-level child of the stream (stanza, features, stream error, SASL/TLS element, …).
    Stanza(Element),
    /// `</stream:stream>`.
    Close,
}

pub struct StreamParser {
    max: usize,
    raw: RawParser,
    tree: TreeBuilder,
    /// Bytes of the unit being read: the header's start tag or one top-level child.
    unit_bytes: usize,
    /// Bytes consumed since the stream (re)started: the offset reported in errors.
    offset: u64,
    /// The last few bytes consumed, to recognise a DTD in rxml's generic syntax error.
    recent: Vec<u8>,
    /// The first error; errors are final for the stream.
    failed: Option<XmlError>,
    /// The `xmlns` the stream header declared.
    header_default_ns: Option<String>,
}

impl StreamParser {
    pub fn new(max_stanza: usize) -> Self {
        StreamParser {
            max: max_stanza,
            raw: new_raw_parser(),
            tree: TreeBuilder::new(Mode::Stream, Scope::default()),
            unit_bytes: 0,
            offset: 0,
            recent: Vec::new(),
            failed: None,
            header_default_ns: None,
        }
    }

    /// Feed the next chunk; returns every event completed by it. Errors are final for the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut rest = bytes;
        let mut events = Vec::new();
        while let Some(event) = self.feed_until_event(&mut rest)? {
            events.push(event);
        }
        Ok(events)
    }

    /// Like `feed`, but stops after the first completed event and leaves the bytes after it in
    /// `bytes`. Use it when an event changes how the following bytes must be read (a stream
    /// restart after `<proceed/>` or `<success/>`): call `reset` and feed the rest again.
    /// Returns `None` once every byte is consumed without completing an event.
    pub fn feed_until_event(&mut self, bytes: &mut &[u8]) -> Result<Option<StreamEvent>, XmlError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.next_event(bytes);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Forget all state: a new stream starts (after STARTTLS or SASL success).
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.max);
    }

    /// The default namespace the stream header declared (`jabber:client`, `jabber:server`), if any.
    pub fn stream_default_ns(&self) -> Option<&str> {
        self.header_default_ns.as_deref()
    }

    fn next_event(&mut self, bytes: &mut &[u8]) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            let before = *bytes;
            let result = self.raw.parse(bytes, false);
            self.note_consumed(&before[..before.len() - bytes.len()]);
            let raw_event = match result {
                Ok(Some(ev)) => ev,
                Err(EndOrError::NeedMoreData) => return Ok(None),
                // With at_eof = false rxml never reports the end of the document.
                Ok(None) => return Ok(None),
                Err(EndOrError::Error(e)) => return Err(self.rxml_error(e)),
            };
            let len = raw_event.metrics().len();
            let built = self.tree.on_event(raw_event).map_err(|message| self.not_well_formed(message))?;
            if !matches!(built, Built::TopText(_)) {
                self.unit_bytes = self.unit_bytes.saturating_add(len);
                if self.unit_bytes > self.max {
                    return Err(XmlError::TooLarge { limit: self.max });
                }
            }
            match built {
                Built::Nothing => {}
                Built::TopText(text) => {
                    // Whitespace between stanzas is a keepalive (RFC 6120 §4.6.1), not an event.
                    if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
                        return Err(self.not_well_formed(format!(
                            "text {:?} directly inside <stream:stream>; only elements may appear there",
                            shorten(&text)
                        )));
                    }
                }
                Built::RootOpened(header) => {
                    self.unit_bytes = 0;
                    self.header_default_ns = self.tree.scopes.last().and_then(|s| s.default.clone());
                    if !header.is("stream", NS_STREAM) {
                        return Err(XmlError::Other(format!(
                            "at byte {}: expected the stream header <stream:stream xmlns:stream='{NS_STREAM}'>, \
                             got <{}> in namespace '{}'",
                            self.offset, header.name, header.ns
                        )));
                    }
                    return Ok(Some(StreamEvent::Header(header)));
                }
                Built::TopLevel(element) => {
                    self.unit_bytes = 0;
                    return Ok(Some(StreamEvent::Stanza(element)));
                }
                Built::RootClosed => {
                    self.unit_bytes = 0;
                    return Ok(Some(StreamEvent::Close));
                }
            }
        }
    }

    fn note_consumed(&mut self, consumed: &[u8]) {
        const KEEP: usize = 16;
        self.offset += consumed.len() as u64;
        let tail = &consumed[consumed.len().saturating_sub(KEEP)..];
        self.recent.extend_from_slice(tail);
        let excess = self.recent.len().saturating_sub(KEEP);
        self.recent.drain(..excess);
    }

    fn not_well_formed(&self, message: String) -> XmlError {
        XmlError::NotWellFormed { offset: self.offset, message }
    }

    fn rxml_error(&self, e: rxml::Error) -> XmlError {
        if contains(&self.recent, b"<!D") {
            return XmlError::Restricted { offset: self.offset, what: "document type declaration (DTD)".into() };
        }
        map_rxml_error(e, self.offset)
    }
}

/// Parse one standalone element (as written in a scenario). Unprefixed elements without an
/// `xmlns` get `default_ns`; the `stream:` prefix is pre-bound to NS_STREAM.
pub fn parse_fragment(xml: &str, default_ns: &str) -> Result<Element, XmlError> {
    let preset = Scope {
        default: (!default_ns.is_empty()).then(|| default_ns.to_string()),
        prefixes: vec![("stream".to_string(), NS_STREAM.to_string())],
    };
    // Scenario files often indent the element; rxml allows no whitespace before a root element
    // that has no XML declaration, so skip it here and keep offsets relative to the whole text.
    let skipped = xml.len() - xml.trim_start().len();
    if skipped == xml.len() {
        return Err(XmlError::NotWellFormed { offset: 0, message: "no element found (the text is empty)".into() });
    }
    let mut tree = TreeBuilder::new(Mode::Fragment, preset);
    let mut raw = new_raw_parser();
    let mut rest = &xml.as_bytes()[skipped..];
    let mut root = None;
    loop {
        let offset = (xml.len() - rest.len()) as u64;
        let raw_event = match raw.parse(&mut rest, true) {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(EndOrError::NeedMoreData) => {
                return Err(XmlError::NotWellFormed { offset, message: "the element is incomplete".into() })
            }
            Err(EndOrError::Error(e)) => {
                let consumed = &xml.as_bytes()[..xml.len() - rest.len()];
                let offset = consumed.len() as u64;
                if contains(&consumed[consumed.len().saturating_sub(16)..], b"<!D") {
                    return Err(XmlError::Restricted { offset, what: "document type declaration (DTD)".into() });
                }
                return Err(map_rxml_error(e, offset));
            }
        };
        let offset = (xml.len() - rest.len()) as u64;
        match tree.on_event(raw_event).map_err(|message| XmlError::NotWellFormed { offset, message })? {
            Built::TopLevel(element) => root = Some(element),
            Built::Nothing | Built::TopText(_) | Built::RootOpened(_) | Built::RootClosed => {}
        }
    }
    root.ok_or_else(|| XmlError::NotWellFormed { offset: xml.len() as u64, message: "no element found".into() })
}

fn new_raw_parser() -> RawParser {
    let options = Options { max_token_length: MAX_TOKEN, comments: CommentMode::Reject, ..Options::default() };
    let mut raw = <RawParser as WithOptions>::with_options(options);
    // Deliver text as it arrives: keeps rxml's buffer small and lets keepalive whitespace
    // between stanzas be seen (and dropped) at once instead of counting toward the next stanza.
    raw.set_text_buffering(false);
    raw
}

fn map_rxml_error(e: rxml::Error, offset: u64) -> XmlError {
    match e {
        rxml::Error::RestrictedXml("long name or reference") => XmlError::Other(format!(
            "at byte {offset}: a name, attribute value or entity reference is longer than the parser's \
             {MAX_TOKEN}-byte token limit"
        )),
        rxml::Error::RestrictedXml("comments") => XmlError::Restricted { offset, what: "a comment".into() },
        rxml::Error::RestrictedXml("processing instructions") => {
            XmlError::Restricted { offset, what: "a processing instruction".into() }
        }
        rxml::Error::RestrictedXml(what) => XmlError::Restricted { offset, what: what.to_string() },
        rxml::Error::UndeclaredEntity => XmlError::Restricted {
            offset,
            what: "entity reference other than &lt; &gt; &amp; &quot; &apos; or a character reference".into(),
        },
        rxml::Error::InvalidUtf8Byte(b) => XmlError::NotWellFormed {
            offset,
            message: format!("invalid UTF-8 (byte 0x{b:02X}); XMPP streams must be UTF-8 (RFC 6120 §11.6)"),
        },
        rxml::Error::InvalidEof(_) => XmlError::NotWellFormed {
            offset,
            message: format!("the element is incomplete ({e}): is an end tag or a closing quote missing?"),
        },
        other => XmlError::NotWellFormed { offset, message: other.to_string() },
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Namespace bindings declared on one element.
#[derive(Clone, Debug, Default)]
struct Scope {
    /// `xmlns='…'`; `Some("")` undeclares the default namespace.
    default: Option<String>,
    /// `xmlns:prefix='…'`, in declaration order.
    prefixes: Vec<(String, String)>,
}

/// A start tag being read: rxml reports its name and each attribute as separate events.
struct StartTag {
    prefix: Option<String>,
    name: String,
    scope: Scope,
    /// (prefix, local name, value) of ordinary attributes, in document order.
    attrs: Vec<(Option<String>, String, String)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The root is the stream envelope: reported when its start tag ends, its children one by one.
    Stream,
    /// The root is the element wanted: reported whole when it ends.
    Fragment,
}

/// What one raw event completed.
enum Built {
    Nothing,
    RootOpened(Element),
    /// A complete element at the top level: a stream's child, or a fragment's root.
    TopLevel(Element),
    /// Text directly inside the stream envelope.
    TopText(String),
    RootClosed,
}

/// Turns raw rxml events into namespace-resolved `Element`s.
struct TreeBuilder {
    mode: Mode,
    /// One scope per open element, after the preset one at index 0.
    scopes: Vec<Scope>,
    start: Option<StartTag>,
    /// Elements being built, outermost first (never the stream envelope).
    open: Vec<Element>,
    /// Whether the stream envelope's start tag has been read and its end tag not yet.
    in_envelope: bool,
}

impl TreeBuilder {
    fn new(mode: Mode, preset: Scope) -> Self {
        TreeBuilder { mode, scopes: vec![preset], start: None, open: Vec::new(), in_envelope: false }
    }

    fn on_event(&mut self, event: RawEvent) -> Result<Built, String> {
        match event {
            RawEvent::XmlDeclaration(..) => Ok(Built::Nothing),
            RawEvent::ElementHeadOpen(_, (prefix, name)) => {
                self.start = Some(StartTag {
                    prefix: prefix.map(|p| p.to_string()),
                    name: name.to_string(),
                    scope: Scope::default(),
                    attrs: Vec::new(),
                });
                Ok(Built::Nothing)
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                let tag = self.start.as_mut().ok_or("attribute outside a start tag")?;
                add_attribute(tag, prefix.as_deref().map(|p| p.as_str()), name.as_str(), value)?;
                Ok(Built::Nothing)
            }
            RawEvent::ElementHeadClose(_) => {
                let tag = self.start.take().ok_or("end of a start tag that never began")?;
                self.scopes.push(tag.scope);
                let element = self.resolve(tag.prefix.as_deref(), tag.name, tag.attrs)?;
                if self.mode == Mode::Stream && !self.in_envelope {
                    self.in_envelope = true;
                    return Ok(Built::RootOpened(element));
                }
                self.open.push(element);
                Ok(Built::Nothing)
            }
            RawEvent::ElementFoot(_) => {
                self.scopes.pop();
                match self.open.pop() {
                    Some(element) => match self.open.last_mut() {
                        Some(parent) => {
                            parent.children.push(Node::Element(element));
                            Ok(Built::Nothing)
                        }
                        None => Ok(Built::TopLevel(element)),
                    },
                    None => {
                        self.in_envelope = false;
                        Ok(Built::RootClosed)
                    }
                }
            }
            RawEvent::Text(_, text) => match self.open.last_mut() {
                Some(parent) => {
                    // rxml may split text anywhere; adjacent chunks form one node.
                    match parent.children.last_mut() {
                        Some(Node::Text(previous)) => previous.push_str(&text),
                        _ => parent.children.push(Node::Text(text)),
                    }
                    Ok(Built::Nothing)
                }
                None => Ok(Built::TopText(text)),
            },
        }
    }

    /// Resolve the names of the element whose scope was just pushed.
    fn resolve(
        &self,
        prefix: Option<&str>,
        name: String,
        raw_attrs: Vec<(Option<String>, String, String)>,
    ) -> Result<Element, String> {
        let ns = match prefix {
            None => self.scopes.iter().rev().find_map(|s| s.default.clone()).unwrap_or_default(),
            Some(p) => {
                self.lookup(p).ok_or_else(|| format!("element <{p}:{name}> uses the undeclared prefix '{p}'"))?
            }
        };
        let mut attrs: Vec<Attr> = Vec::with_capacity(raw_attrs.len());
        for (attr_prefix, attr_name, value) in raw_attrs {
            // Unprefixed attributes are in no namespace, whatever the default namespace is.
            let attr_ns = match attr_prefix.as_deref() {
                None => String::new(),
                Some(p) => self
                    .lookup(p)
                    .ok_or_else(|| format!("attribute {p}:{attr_name} uses the undeclared prefix '{p}'"))?,
            };
            if attrs.iter().any(|a| a.ns == attr_ns && a.name == attr_name) {
                return Err(format!("attribute '{attr_name}' appears twice on <{name}>"));
            }
            attrs.push(Attr { ns: attr_ns, name: attr_name, value });
        }
        Ok(Element { name, ns, attrs, children: Vec::new() })
    }

    fn lookup(&self, prefix: &str) -> Option<String> {
        if prefix == "xml" {
            return Some(NS_XML.to_string());
        }
        self.scopes.iter().rev().find_map(|s| s.prefixes.iter().find(|(p, _)| p == prefix).map(|(_, ns)| ns.clone()))
    }
}

/// Sort one attribute of a start tag into a namespace declaration or an ordinary attribute.
fn add_attribute(tag: &mut StartTag, prefix: Option<&str>, name: &str, value: String) -> Result<(), String> {
    match prefix {
        None if name == "xmlns" => {
            if tag.scope.default.is_some() {
                return Err(format!("<{}> declares xmlns twice", tag.name));
            }
            tag.scope.default = Some(value);
        }
        Some("xmlns") => {
            if tag.scope.prefixes.iter().any(|(p, _)| p == name) {
                return Err(format!("<{}> declares xmlns:{name} twice", tag.name));
            }
            tag.scope.prefixes.push((name.to_string(), value));
        }
        _ => tag.attrs.push((prefix.map(str::to_string), name.to_string(), value)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{NS_CLIENT, NS_SERVER};

    const CLIENT_STREAM: &[u8] = include_bytes!("../../tests/data/xml/client-stream.xml");
    const SERVER_STREAM: &[u8] = include_bytes!("../../tests/data/xml/server-stream.xml");
    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                          xmlns:stream='http://etherx.jabber.org/streams' to='a.lab' version='1.0'>";

    fn parse_all(chunks: &[&[u8]]) -> Vec<StreamEvent> {
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.feed(chunk).unwrap_or_else(|e| panic!("feed failed: {e}")));
        }
        events
    }

    fn stanza(event: &StreamEvent) -> &Element {
        match event {
            StreamEvent::Stanza(e) => e,
            other => panic!("expected a stanza, got {other:?}"),
        }
    }

    /// Feed `HEADER` then `body`; return the result of the body's feed.
    fn feed_after_header(body: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        parser.feed(HEADER.as_bytes()).expect("header parses");
        parser.feed(body)
    }

    #[test]
    fn parses_a_recorded_client_stream() {
        let events = parse_all(&[CLIENT_STREAM]);
        assert_eq!(events.len(), 7, "{events:#?}");

        let StreamEvent::Header(header) = &events[0] else { panic!("first event must be the header") };
        assert!(header.is("stream", NS_STREAM));
        assert!(header.children.is_empty());
        assert_eq!(header.attr("from"), Some("b.lab"));
        assert_eq!(header.attr("version"), Some("1.0"));
        assert_eq!(header.attr_ns(NS_XML, "lang"), Some("en"));
        assert!(header.attr("xmlns").is_none(), "namespace declarations are not attributes");

        let features = stanza(&events[1]);
        assert!(features.is("features", NS_STREAM));
        let bind = features.child("bind", "urn:ietf:params:xml:ns:xmpp-bind").expect("bind");
        assert!(bind.child("required", "urn:ietf:params:xml:ns:xmpp-bind").is_some());
        let caps = features.child("c", "http://jabber.org/protocol/caps").expect("caps");
        assert_eq!(caps.attr("ver"), Some("q07IKJEyjvHSyhy//CH0CxmKi8w="));

        let message = stanza(&events[2]);
        assert!(message.is("message", NS_CLIENT));
        assert_eq!(message.attr("from"), Some("j\u{FC}rgen@b\u{FC}cher.lab/\u{1F4F1}phone"));
        assert_eq!(message.attr("id"), Some("m&1"));
        assert_eq!(message.attr_ns(NS_XML, "lang"), Some("de"));
        let attr_names: Vec<&str> = message.attrs.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(attr_names, ["from", "to", "type", "id", "lang"], "document order");
        let body = message.child("body", NS_CLIENT).expect("body");
        assert_eq!(
            body.text(),
            "Gr\u{FC}\u{DF}e \u{1F600} <b> & \"quotes\" 'x' e\u{301} \u{1D11E} \u{1F469}\u{200D}\u{1F467}\n  \
             two spaces  and a tab\t"
        );
        assert_eq!(body.children.len(), 1, "text chunks are joined into one node");
        let x = message.child("x", "urn:example:interop").expect("x");
        assert_eq!(x.attr("v"), Some("\u{5E9}\u{5DC}\u{5D5}\u{5DD}\u{200F} <&>"));
        assert_eq!(x.text(), "<not markup> & friends");

        let iq = stanza(&events[3]);
        assert!(iq.is("iq", NS_CLIENT));
        let query = iq.child("query", "jabber:iq:roster").expect("query");
        let items: Vec<&Element> = query.elements().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is("item", "jabber:iq:roster"));
        assert_eq!(items[0].attr("name"), Some("Bob \u{674E}"));
        assert_eq!(items[0].child("group", "jabber:iq:roster").map(Element::text), Some("Friends".into()));
        let pubsub = iq.child("pubsub", "http://jabber.org/protocol/pubsub").expect("pubsub");
        let metadata = pubsub
            .child("items", "http://jabber.org/protocol/pubsub")
            .and_then(|i| i.child("item", "http://jabber.org/protocol/pubsub"))
            .and_then(|i| i.child("metadata", "urn:xmpp:avatar:metadata"))
            .expect("metadata");
        assert!(metadata.child("info", "urn:xmpp:avatar:metadata").is_some());

        let presence = stanza(&events[4]);
        assert!(presence.is("presence", NS_CLIENT));
        let statuses: Vec<&Element> = presence.elements().filter(|e| e.name == "status").collect();
        assert_eq!(statuses[0].attr_ns(NS_XML, "lang"), Some("fr"));
        assert_eq!(statuses[0].text(), "Parti d\u{E9}jeuner \u{2014} \u{645}\u{631}\u{62D}\u{628}\u{627}");
        assert_eq!(statuses[1].attr_ns(NS_XML, "lang"), None);

        let error = stanza(&events[5]);
        assert!(error.is("error", NS_STREAM));
        assert!(error.child("conflict", "urn:ietf:params:xml:ns:xmpp-streams").is_some());

        assert_eq!(events[6], StreamEvent::Close);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        for stream in [CLIENT_STREAM, SERVER_STREAM] {
            let whole = parse_all(&[stream]);
            for split in 0..=stream.len() {
                let (a, b) = stream.split_at(split);
                assert_eq!(parse_all(&[a, b]), whole, "split at byte {split}");
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(parse_all(&bytes), whole, "byte by byte");
        }
    }

    #[test]
    fn prefixes_declared_on_the_header_reach_the_stanzas() {
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        let events = parser.feed(SERVER_STREAM).expect("parses");
        assert_eq!(parser.stream_default_ns(), Some(NS_SERVER));
        assert!(stanza(&events[2]).is("result", "jabber:server:dialback"));
        assert_eq!(stanza(&events[3]).attr("type"), Some("valid"));
        let message = stanza(&events[4]);
        assert!(message.is("message", NS_SERVER));
        assert_eq!(message.attr_ns("urn:example:ext", "flag"), Some("1"));
        assert_eq!(events.last(), Some(&StreamEvent::Close));
    }

    #[test]
    fn keepalive_whitespace_is_not_an_event_and_never_counts_as_a_stanza() {
        // The limit also bounds the header, so it must be larger than HEADER.
        let mut parser = StreamParser::new(200);
        parser.feed(HEADER.as_bytes()).expect("header");
        for _ in 0..100 {
            assert_eq!(parser.feed(b" \n\t\r\n").expect("keepalive"), []);
        }
        let events = parser.feed(b"<presence/>").expect("presence");
        assert_eq!(events, [StreamEvent::Stanza(Element::new("presence", NS_CLIENT))]);
        let err = feed_after_header(b"<presence/>stray text").unwrap_err();
        assert!(err.to_string().contains("stray text"), "{err}");
    }

    #[test]
    fn stanza_size_limit() {
        let text = "0123456789".repeat(30);
        let stanza = format!("<message><body>{text}</body></message>");
        let limit = stanza.len();
        let mut parser = StreamParser::new(limit);
        parser.feed(HEADER.as_bytes()).expect("header");
        assert_eq!(parser.feed(stanza.as_bytes()).expect("exactly at the limit").len(), 1);
        assert_eq!(parser.feed(stanza.as_bytes()).expect("the count restarts per stanza").len(), 1);
        let bigger = format!("<message><body>{text}!</body></message>");
        assert!(matches!(parser.feed(bigger.as_bytes()), Err(XmlError::TooLarge { limit: l }) if l == limit));
    }

    #[test]
    fn memory_stays_bounded_when_a_tag_never_closes() {
        let limit = 4096;
        let mut parser = StreamParser::new(limit);
        parser.feed(HEADER.as_bytes()).expect("header");
        parser.feed(b"<message><body>").expect("start");
        let mut fed = 0;
        let err = loop {
            match parser.feed(&[b'a'; 100]) {
                Ok(events) => assert!(events.is_empty()),
                Err(e) => break e,
            }
            fed += 100;
            assert!(fed <= limit + 100, "no error after {fed} bytes");
        };
        assert!(matches!(err, XmlError::TooLarge { .. }), "{err}");
        // An endless start tag (attributes never end) is caught the same way.
        let mut parser = StreamParser::new(limit);
        parser.feed(HEADER.as_bytes()).expect("header");
        parser.feed(b"<message").expect("start");
        let mut result = Ok(Vec::new());
        for i in 0..1000 {
            result = parser.feed(format!(" a{i}='xxxxxxxx'").as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(XmlError::TooLarge { .. })), "{result:?}");
    }

    #[test]
    fn header_attributes_are_bounded_too() {
        let mut parser = StreamParser::new(1024);
        let long = format!("<stream:stream xmlns:stream='{NS_STREAM}' x='{}'>", "a".repeat(2000));
        assert!(matches!(parser.feed(long.as_bytes()), Err(XmlError::TooLarge { .. })));
    }

    #[test]
    fn comments_processing_instructions_and_dtds_are_restricted() {
        for body in
            [&b"<!-- hello -->"[..], b"<message><!-- x --></message>", b"<?foo bar?>", b"<message><?x?></message>"]
        {
            let err = feed_after_header(body).unwrap_err();
            assert!(matches!(err, XmlError::Restricted { .. }), "{}: {err}", String::from_utf8_lossy(body));
        }
        let dtd = format!(
            "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]><stream:stream xmlns:stream='{NS_STREAM}'>"
        );
        let err = StreamParser::new(DEFAULT_MAX_STANZA).feed(dtd.as_bytes()).unwrap_err();
        assert!(matches!(&err, XmlError::Restricted { what, .. } if what.contains("DTD")), "{err}");
        let err = feed_after_header(b"<message><body>&x;</body></message>").unwrap_err();
        assert!(matches!(&err, XmlError::Restricted { what, .. } if what.contains("entity")), "{err}");
    }

    #[test]
    fn predefined_entities_and_character_references_are_fine() {
        let events =
            feed_after_header(b"<message><body>&lt;&gt;&amp;&quot;&apos;&#65;&#x1F600;</body></message>").unwrap();
        assert_eq!(stanza(&events[0]).child("body", NS_CLIENT).map(Element::text), Some("<>&\"'A\u{1F600}".into()));
    }

    /// Catalog F02: overlong, surrogate and truncated UTF-8, and references to non-characters.
    #[test]
    fn invalid_utf8_and_non_xml_characters_are_errors() {
        for bad in [&b"\xC0\xAF"[..], b"\xED\xA0\x80", b"\xF0\x9F\x98</body>", b"\xFF"] {
            let mut body = b"<message><body>".to_vec();
            body.extend_from_slice(bad);
            body.extend_from_slice(b"</body></message>");
            let err = feed_after_header(&body).unwrap_err();
            assert!(matches!(&err, XmlError::NotWellFormed { message, .. } if message.contains("UTF-8")), "{err}");
        }
        for reference in ["&#x1;", "&#xFFFE;", "&#0;"] {
            let body = format!("<message><body>{reference}</body></message>");
            let err = feed_after_header(body.as_bytes()).unwrap_err();
            assert!(matches!(err, XmlError::NotWellFormed { .. }), "{reference}: {err}");
        }
    }

    #[test]
    fn errors_are_final_and_report_an_offset() {
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        parser.feed(HEADER.as_bytes()).expect("header");
        let err = parser.feed(b"<message></presence>").unwrap_err();
        match &err {
            XmlError::NotWellFormed { offset, .. } => {
                assert!(*offset > HEADER.len() as u64 && *offset <= (HEADER.len() + 20) as u64, "{err}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parser.feed(b"<presence/>").is_err(), "a failed stream stays failed");
    }

    #[test]
    fn other_root_elements_and_undeclared_prefixes_are_rejected() {
        let err = StreamParser::new(DEFAULT_MAX_STANZA).feed(b"<html>").unwrap_err();
        assert!(err.to_string().contains("expected the stream header"), "{err}");
        let err = feed_after_header(b"<foo:message/>").unwrap_err();
        assert!(err.to_string().contains("undeclared prefix 'foo'"), "{err}");
        let err = feed_after_header(b"<message xmlns:a='urn:x' xmlns:b='urn:x' a:t='1' b:t='2'/>").unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn reset_starts_a_new_stream_with_the_bytes_left_over() {
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        parser.feed(HEADER.as_bytes()).expect("header");
        let chunk = format!("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{HEADER}<stream:features/>");
        let mut rest = chunk.as_bytes();
        let success = parser.feed_until_event(&mut rest).expect("success").expect("an event");
        assert!(stanza(&success).is("success", "urn:ietf:params:xml:ns:xmpp-sasl"));
        assert!(rest.starts_with(b"<?xml"), "bytes after the event are left unread");
        parser.reset();
        let events = parser.feed(rest).expect("the new stream parses");
        assert!(matches!(&events[0], StreamEvent::Header(h) if h.attr("to") == Some("a.lab")));
        assert!(stanza(&events[1]).is("features", NS_STREAM));
        // Without a reset a second header is an error.
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        parser.feed(HEADER.as_bytes()).expect("header");
        assert!(parser.feed(HEADER.as_bytes()).is_err());
    }

    #[test]
    fn fragments_get_the_default_namespace_and_the_stream_prefix() {
        let e = parse_fragment("<message to='bob@b.lab'><body>hi</body><x xmlns='urn:x'><y/></x></message>", NS_CLIENT)
            .expect("parses");
        assert!(e.is("message", NS_CLIENT));
        assert!(e.child("body", NS_CLIENT).is_some());
        let x = e.child("x", "urn:x").expect("x");
        assert!(x.child("y", "urn:x").is_some());
        let f =
            parse_fragment("<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>", "")
                .expect("parses");
        assert!(f.is("features", NS_STREAM));
        assert!(parse_fragment("  <presence/>\n", NS_SERVER).expect("whitespace around").is("presence", NS_SERVER));
        assert!(parse_fragment("<presence/>", "").expect("no namespace").is("presence", ""));
    }

    #[test]
    fn fragment_errors_say_where_and_what() {
        let cases: [(&str, &str); 6] = [
            ("", "no element"),
            ("<message>", "incomplete"),
            ("<message><body></message>", "do not match"),
            ("<a/><b/>", "end"),
            ("<a><!-- c --></a>", "a comment"),
            ("<x:a/>", "undeclared prefix"),
        ];
        for (xml, expected) in cases {
            let err = parse_fragment(xml, NS_CLIENT).unwrap_err().to_string();
            assert!(err.contains(expected), "{xml:?}: {err}");
        }
        let err = parse_fragment("<message><body></message>", NS_CLIENT).unwrap_err();
        assert!(matches!(err, XmlError::NotWellFormed { offset, .. } if (15..=25).contains(&offset)), "{err}");
    }
}
