//! Serialising elements and stream envelopes with correct escaping.
//!
//! Output is always well-formed for any attribute value or text: markup characters are escaped,
//! whitespace in attribute values is written as character references (so that attribute-value
//! normalisation does not turn it into spaces), and the few characters XML 1.0 cannot carry at
//! all (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF) become U+FFFD. A test that needs to
//! send such bytes on purpose (catalog F02) must write raw bytes instead.

use super::{Element, Node, NS_STREAM, NS_XML};

impl Element {
    /// Serialise for a stream whose default namespace is `stream_ns` (`jabber:client` or
    /// `jabber:server`): elements in that namespace carry no `xmlns`, others declare theirs.
    /// Elements in the stream namespace use the `stream:` prefix the stream header declares.
    pub fn to_xml_in(&self, stream_ns: &str) -> String {
        let mut out = String::new();
        // Inside a stream (stream_ns given) the header has already bound `stream:`.
        write_element(&mut out, self, stream_ns, !stream_ns.is_empty());
        out
    }

    /// Serialise standalone (root declares its namespace).
    pub fn to_xml(&self) -> String {
        self.to_xml_in("")
    }

    /// Serialise inside a stream with this element's namespace bound to `prefix` on the element
    /// itself, e.g. `<db:result xmlns:db='jabber:server:dialback' …>`; children as [`Element::to_xml_in`]
    /// would write them. The same infoset, but some servers (ejabberd 23.01) recognise dialback
    /// elements only when written with the conventional `db:` prefix.
    pub fn to_xml_prefixed(&self, prefix: &str, stream_ns: &str) -> String {
        let mut out = String::new();
        out.push('<');
        out.push_str(prefix);
        out.push(':');
        out.push_str(&self.name);
        write_attr(&mut out, &format!("xmlns:{prefix}"), &self.ns);
        for attr in &self.attrs {
            let name = if attr.ns == NS_XML { format!("xml:{}", attr.name) } else { attr.name.clone() };
            write_attr(&mut out, &name, &attr.value);
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return out;
        }
        out.push('>');
        for child in &self.children {
            match child {
                Node::Element(e) => write_element(&mut out, e, stream_ns, true),
                Node::Text(t) => escape_text(&mut out, t),
            }
        }
        out.push_str(&format!("</{prefix}:{}>", self.name));
        out
    }
}

/// `<?xml version='1.0'?><stream:stream …>` with the given attributes (values escaped), in order.
pub fn stream_header(attrs: &[(&str, &str)], default_ns: &str) -> String {
    let mut out = String::from("<?xml version='1.0'?><stream:stream");
    if !default_ns.is_empty() {
        write_attr(&mut out, "xmlns", default_ns);
    }
    write_attr(&mut out, "xmlns:stream", NS_STREAM);
    for (name, value) in attrs {
        write_attr(&mut out, name, value);
    }
    out.push('>');
    out
}

pub fn stream_close() -> &'static str {
    "</stream:stream>"
}

/// `default_ns`: the default namespace in scope; `stream_bound`: whether `stream:` is bound.
fn write_element(out: &mut String, element: &Element, default_ns: &str, stream_bound: bool) {
    let prefix = if element.ns == NS_STREAM { "stream:" } else { "" };
    out.push('<');
    out.push_str(prefix);
    out.push_str(&element.name);

    let mut child_default = default_ns;
    let mut child_stream_bound = stream_bound;
    if element.ns == NS_STREAM {
        if !stream_bound {
            write_attr(out, "xmlns:stream", NS_STREAM);
            child_stream_bound = true;
        }
    } else if element.ns != default_ns {
        write_attr(out, "xmlns", &element.ns);
        child_default = &element.ns;
    }

    // Namespaced attributes other than xml:* get prefixes ns1, ns2, … declared on this element.
    let mut attr_namespaces: Vec<&str> = Vec::new();
    for attr in &element.attrs {
        let qualified = if attr.ns.is_empty() {
            attr.name.clone()
        } else if attr.ns == NS_XML {
            format!("xml:{}", attr.name)
        } else if attr.ns == NS_STREAM && child_stream_bound {
            format!("stream:{}", attr.name)
        } else {
            let index = match attr_namespaces.iter().position(|ns| *ns == attr.ns) {
                Some(i) => i,
                None => {
                    attr_namespaces.push(&attr.ns);
                    attr_namespaces.len() - 1
                }
            };
            format!("ns{}:{}", index + 1, attr.name)
        };
        write_attr(out, &qualified, &attr.value);
    }
    for (i, ns) in attr_namespaces.iter().enumerate() {
        write_attr(out, &format!("xmlns:ns{}", i + 1), ns);
    }

    if element.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for child in &element.children {
        match child {
            Node::Element(e) => write_element(out, e, child_default, child_stream_bound),
            Node::Text(t) => escape_text(out, t),
        }
    }
    out.push_str("</");
    out.push_str(prefix);
    out.push_str(&element.name);
    out.push('>');
}

fn write_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    escape_attr(out, value);
    out.push('\'');
}

fn escape_attr(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Literal whitespace in attribute values is normalised to spaces by any reader.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(xml_char(c)),
        }
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A literal CR would be read back as LF (XML end-of-line handling).
            '\r' => out.push_str("&#13;"),
            c => out.push(xml_char(c)),
        }
    }
}

/// `c` if XML 1.0 allows it (Char production), else U+FFFD.
fn xml_char(c: char) -> char {
    match c {
        '\t' | '\n' | '\r' => c,
        '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse_fragment, Attr, StreamEvent, StreamParser, DEFAULT_MAX_STANZA, NS_CLIENT, NS_SERVER};

    const CLIENT_STREAM: &[u8] = include_bytes!("../../tests/data/xml/client-stream.xml");

    /// Write `element` inside a stream whose default namespace is `ns` and parse it back.
    fn round_trip(element: &Element, ns: &str) -> Element {
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        let header = stream_header(&[("to", "a.lab"), ("version", "1.0")], ns);
        let xml = element.to_xml_in(ns);
        let events = parser
            .feed(format!("{header}{xml}").as_bytes())
            .unwrap_or_else(|e| panic!("writer output does not parse: {e}\n{xml}"));
        match events.as_slice() {
            [StreamEvent::Header(_), StreamEvent::Stanza(parsed)] => parsed.clone(),
            other => panic!("unexpected events {other:?} for {xml}"),
        }
    }

    #[test]
    fn namespaces_are_declared_only_where_they_change() {
        let message = Element::new("message", NS_CLIENT)
            .with_attr("to", "bob@b.lab")
            .with_child(Element::new("body", NS_CLIENT).with_text("hi"))
            .with_child(Element::new("x", "urn:x").with_child(Element::new("y", "urn:x")))
            .with_child(Element::new("none", ""));
        assert_eq!(
            message.to_xml_in(NS_CLIENT),
            "<message to='bob@b.lab'><body>hi</body><x xmlns='urn:x'><y/></x><none xmlns=''/></message>"
        );
        assert_eq!(
            message.to_xml(),
            "<message xmlns='jabber:client' to='bob@b.lab'><body>hi</body><x xmlns='urn:x'><y/></x>\
             <none xmlns=''/></message>"
        );
    }

    #[test]
    fn stream_elements_use_the_stream_prefix() {
        let features =
            Element::new("features", NS_STREAM).with_child(Element::new("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
        assert_eq!(
            features.to_xml_in(NS_SERVER),
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
        );
        assert_eq!(
            features.to_xml(),
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
        );
        assert_eq!(parse_fragment(&features.to_xml(), "").expect("parses"), features);
    }

    #[test]
    fn namespaced_attributes() {
        let mut status = Element::new("status", NS_CLIENT).with_text("salut");
        status.attrs.push(Attr { ns: NS_XML.into(), name: "lang".into(), value: "fr".into() });
        status.attrs.push(Attr { ns: "urn:a".into(), name: "one".into(), value: "1".into() });
        status.attrs.push(Attr { ns: "urn:b".into(), name: "two".into(), value: "2".into() });
        status.attrs.push(Attr { ns: "urn:a".into(), name: "three".into(), value: "3".into() });
        assert_eq!(
            status.to_xml_in(NS_CLIENT),
            "<status xml:lang='fr' ns1:one='1' ns2:two='2' ns1:three='3' xmlns:ns1='urn:a' xmlns:ns2='urn:b'>salut</status>"
        );
        assert_eq!(round_trip(&status, NS_CLIENT), status);
    }

    #[test]
    fn escaping() {
        let e = Element::new("x", "urn:x").with_attr("v", "a&b<c>d\"e'f\tg\nh\ri").with_text("1 & 2 < 3 > 0 \"'\r\n");
        assert_eq!(
            e.to_xml_in(NS_CLIENT),
            "<x xmlns='urn:x' v='a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;g&#10;h&#13;i'>1 &amp; 2 &lt; 3 &gt; 0 \"'&#13;\n</x>"
        );
        assert_eq!(round_trip(&e, NS_CLIENT), e);
        // Characters XML 1.0 cannot carry become U+FFFD instead of ill-formed output.
        let bad = Element::new("x", "urn:x").with_attr("v", "a\u{0}b\u{1B}").with_text("\u{FFFE}c\u{7}");
        let parsed = round_trip(&bad, NS_CLIENT);
        assert_eq!(parsed.attr("v"), Some("a\u{FFFD}b\u{FFFD}"));
        assert_eq!(parsed.text(), "\u{FFFD}c\u{FFFD}");
    }

    #[test]
    fn stream_header_and_close() {
        assert_eq!(
            stream_header(&[("to", "b\u{FC}cher.lab"), ("xml:lang", "en"), ("id", "a'b")], NS_CLIENT),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='b\u{FC}cher.lab' xml:lang='en' id='a&apos;b'>"
        );
        let mut parser = StreamParser::new(DEFAULT_MAX_STANZA);
        let header = stream_header(&[("xml:lang", "en")], NS_SERVER);
        let events = parser.feed(format!("{header}{}", stream_close()).as_bytes()).expect("parses");
        assert!(matches!(&events[0], StreamEvent::Header(h) if h.attr_ns(NS_XML, "lang") == Some("en")));
        assert_eq!(events[1], StreamEvent::Close);
        assert_eq!(parser.stream_default_ns(), Some(NS_SERVER));
    }

    #[test]
    fn recorded_stanzas_round_trip() {
        let events = StreamParser::new(DEFAULT_MAX_STANZA).feed(CLIENT_STREAM).expect("parses");
        let mut count = 0;
        for event in &events {
            if let StreamEvent::Stanza(stanza) = event {
                assert_eq!(&round_trip(stanza, NS_CLIENT), stanza);
                assert_eq!(&round_trip(stanza, NS_SERVER), stanza, "in a stream with another default namespace");
                assert_eq!(&parse_fragment(&stanza.to_xml(), "").expect("standalone"), stanza);
                count += 1;
            }
        }
        assert_eq!(count, 5);
    }

    /// Deterministic pseudo-random strings from a pool of awkward characters always round-trip.
    #[test]
    fn any_string_round_trips() {
        let pool: Vec<char> =
            "a &<>\"'\t\n\r;#x]]>\u{A0}\u{FC}\u{301}\u{200F}\u{FEFF}\u{2028}\u{1F600}\u{1D11E}\u{0}\u{1}\u{FFFE}"
                .chars()
                .collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for _ in 0..500 {
            let mut random_string = || (0..next() % 12).map(|_| pool[next() % pool.len()]).collect::<String>();
            let value = random_string();
            let text = random_string();
            let e = Element::new("x", "urn:x").with_attr("v", value.clone()).with_text(text.clone());
            let parsed = round_trip(&e, NS_CLIENT);
            let clean = |s: &str| s.chars().map(xml_char).collect::<String>();
            assert_eq!(parsed.attr("v"), Some(clean(&value).as_str()), "{value:?}");
            assert_eq!(parsed.text(), clean(&text), "{text:?}");
        }
    }
}

#[cfg(test)]
mod prefixed_tests {
    use super::*;
    use crate::xml::NS_SERVER;

    #[test]
    fn dialback_is_written_with_its_prefix_and_children_in_the_stream_namespace() {
        let el = Element::new("result", "jabber:server:dialback")
            .with_attr("from", "a<b")
            .with_attr("type", "error")
            .with_child(Element::new("error", NS_SERVER).with_attr("type", "cancel"));
        assert_eq!(
            el.to_xml_prefixed("db", NS_SERVER),
            "<db:result xmlns:db='jabber:server:dialback' from='a&lt;b' type='error'><error type='cancel'/></db:result>"
        );
        let key = Element::new("verify", "jabber:server:dialback").with_text("k&y");
        assert_eq!(
            key.to_xml_prefixed("db", NS_SERVER),
            "<db:verify xmlns:db='jabber:server:dialback'>k&amp;y</db:verify>"
        );
    }
}
