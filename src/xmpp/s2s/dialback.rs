//! Server dialback (XEP-0220): keys (XEP-0185) and the `db:result` / `db:verify` elements.

use crate::xml::Element;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The dialback namespace (`db:` prefix on the stream header).
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// The dialback stream feature (XEP-0220 §2.4), with `<errors/>` for dialback error support.
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

/// The key for one stream (XEP-0185 §3): HMAC-SHA256 keyed with the hex SHA-256 of the secret,
/// over "receiving originating stream-id", as lower-case hex. Whoever holds the secret can check a
/// key later without remembering it.
pub fn key(secret: &str, receiving: &str, originating: &str, stream_id: &str) -> String {
    let keyed = hex(&Sha256::digest(secret.as_bytes()));
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(keyed.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<db:result from to>key</db:result>` (the request), or with `type` and no key (the answer).
pub fn result(from: &str, to: &str, key_or_type: ResultBody<'_>) -> Element {
    let el = Element::new("result", NS_DIALBACK).with_attr("from", from).with_attr("to", to);
    match key_or_type {
        ResultBody::Key(k) => el.with_text(k),
        ResultBody::Type(t) => el.with_attr("type", t),
    }
}

/// What a `db:result` carries.
pub enum ResultBody<'a> {
    Key(&'a str),
    /// `valid`, `invalid` or `error`.
    Type(&'a str),
}

/// `<db:verify from to id>key</db:verify>` (request) or `<db:verify from to id type/>` (answer).
pub fn verify(from: &str, to: &str, id: &str, body: ResultBody<'_>) -> Element {
    let el = Element::new("verify", NS_DIALBACK).with_attr("from", from).with_attr("to", to).with_attr("id", id);
    match body {
        ResultBody::Key(k) => el.with_text(k),
        ResultBody::Type(t) => el.with_attr("type", t),
    }
}

/// A dialback error answer (XEP-0220 §2.4): `<db:result type='error'>` with a stanza error.
pub fn result_error(from: &str, to: &str, error_type: &str, condition: &str) -> Element {
    result(from, to, ResultBody::Type("error")).with_child(
        Element::new("error", crate::xml::NS_SERVER)
            .with_attr("type", error_type)
            .with_child(Element::new(condition, crate::xmpp::client::NS_STANZAS)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_xep_0185() {
        // Expected value from an independent implementation of the XEP-0185 §2 formula (Python:
        // hmac.new(sha256(secret).hexdigest().encode(), b"example.net example.com D60000229F", sha256)).
        let k = key("s3cr3tf0rd14lb4ck", "example.net", "example.com", "D60000229F");
        assert_eq!(k, "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc");
        assert_ne!(k, key("s3cr3tf0rd14lb4ck", "example.net", "example.com", "other"));
    }

    #[test]
    fn elements_serialise_with_the_dialback_namespace() {
        let r = result("h.lab", "a.lab", ResultBody::Key("abc"));
        assert_eq!(
            r.to_xml_in("jabber:server"),
            "<result xmlns='jabber:server:dialback' from='h.lab' to='a.lab'>abc</result>"
        );
        let v = verify("a.lab", "h.lab", "id1", ResultBody::Type("valid"));
        assert_eq!(v.attr("type"), Some("valid"));
        let e = result_error("h.lab", "x.lab", "cancel", "item-not-found");
        assert!(e.to_xml_in("jabber:server").contains("<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"));
    }
}
