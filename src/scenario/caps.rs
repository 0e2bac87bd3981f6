//! XEP-0115 §5 verification strings: the `ver` of an actor's own caps, and the check that a
//! disco#info result hashes to an advertised `ver` (`pf:caps-ver`).

use crate::xml::{Element, NS_XML};
use base64::Engine;
use sha1::Digest;

/// The disco#info namespace.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0004 data forms (XEP-0128 extended service discovery).
const NS_DATA: &str = "jabber:x:data";

/// One identity: (category, type, xml:lang, name).
pub type Identity = (String, String, String, String);

/// One XEP-0128 extended form: its FORM_TYPE and its other fields, each `(var, values)`.
pub type Form = (String, Vec<(String, Vec<String>)>);

/// The string S of XEP-0115 §5.1 before hashing: identities `category/type/lang/name<` sorted
/// by category, type and xml:lang, then features `var<` sorted, then each extended form (sorted
/// by FORM_TYPE): `FORM_TYPE<`, then its fields sorted by var, each `var<` and its values sorted,
/// each `value<`. Sorting is by octets ("i;octet", RFC 4790), which is how Rust orders strings.
pub fn verification_string(identities: &[Identity], features: &[String], forms: &[Form]) -> String {
    let mut identities: Vec<&Identity> = identities.iter().collect();
    identities.sort();
    let mut features: Vec<&String> = features.iter().collect();
    features.sort();
    let mut forms: Vec<&Form> = forms.iter().collect();
    forms.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = String::new();
    for (category, kind, lang, name) in identities {
        s.push_str(&format!("{category}/{kind}/{lang}/{name}<"));
    }
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    for (form_type, fields) in forms {
        s.push_str(form_type);
        s.push('<');
        let mut fields: Vec<&(String, Vec<String>)> = fields.iter().collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        for (var, values) in fields {
            s.push_str(var);
            s.push('<');
            let mut values: Vec<&String> = values.iter().collect();
            values.sort();
            for v in values {
                s.push_str(v);
                s.push('<');
            }
        }
    }
    s
}

/// XEP-0115 §5.1 step 8-9 with the mandatory-to-implement algorithm: base64(SHA-1(S)).
pub fn hash_sha1(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

/// The verification string S of a disco#info `<query/>` (or any element with the same children):
/// its `<identity/>`, `<feature/>` and XEP-0128 `<x xmlns='jabber:x:data'/>` children. Forms
/// without a FORM_TYPE are left out, as XEP-0115 §5.4 says a receiver does.
pub fn verification_string_of(query: &Element) -> String {
    let ns = query.ns.as_str();
    let identities: Vec<Identity> = query
        .elements()
        .filter(|c| c.is("identity", ns))
        .map(|c| {
            let get = |n: &str| c.attr(n).unwrap_or_default().to_string();
            let lang = c.attr_ns(NS_XML, "lang").unwrap_or_default().to_string();
            (get("category"), get("type"), lang, get("name"))
        })
        .collect();
    let features: Vec<String> =
        query.elements().filter(|c| c.is("feature", ns)).filter_map(|c| c.attr("var").map(str::to_string)).collect();
    let mut forms: Vec<Form> = Vec::new();
    for x in query.elements().filter(|c| c.is("x", NS_DATA)) {
        let mut form_type = None;
        let mut fields = Vec::new();
        for field in x.elements().filter(|c| c.is("field", NS_DATA)) {
            let Some(var) = field.attr("var") else { continue };
            let values: Vec<String> = field.elements().filter(|v| v.is("value", NS_DATA)).map(Element::text).collect();
            if var == "FORM_TYPE" {
                form_type = values.into_iter().next();
            } else {
                fields.push((var.to_string(), values));
            }
        }
        if let Some(t) = form_type {
            forms.push((t, fields));
        }
    }
    verification_string(&identities, &features, &forms)
}

/// The `ver` (SHA-1, base64) a disco#info `<query/>` hashes to (XEP-0115 §5.1).
pub fn ver_of(query: &Element) -> String {
    hash_sha1(&verification_string_of(query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_stanza;

    /// XEP-0115 §5.2, the simple example.
    #[test]
    fn simple_example_of_section_5_2() {
        let q = parse_stanza(
            "<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>\
             <identity category='client' name='Exodus 0.9.1' type='pc'/>\
             <feature var='http://jabber.org/protocol/caps'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='http://jabber.org/protocol/muc'/></query>",
        )
        .unwrap();
        assert_eq!(
            verification_string_of(&q),
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<\
             http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<"
        );
        assert_eq!(ver_of(&q), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    /// XEP-0115 §5.3, the complex example: two identities with xml:lang, an extended form.
    #[test]
    fn complex_example_of_section_5_3() {
        let q = parse_stanza(
            "<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>\
             <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
             <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
             <feature var='http://jabber.org/protocol/caps'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='http://jabber.org/protocol/muc'/>\
             <x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
             <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
             <field var='os'><value>Mac</value></field>\
             <field var='os_version'><value>10.5.1</value></field>\
             <field var='software'><value>Psi</value></field>\
             <field var='software_version'><value>0.11</value></field></x></query>",
        )
        .unwrap();
        assert_eq!(
            verification_string_of(&q),
            "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<\
             os_version<10.5.1<software<Psi<software_version<0.11<"
        );
        assert_eq!(ver_of(&q), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }

    #[test]
    fn order_in_the_stanza_does_not_matter_and_forms_without_form_type_are_ignored() {
        let a = parse_stanza(
            "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='b'/><identity category='server' type='im'/>\
             <feature var='a'/><x xmlns='jabber:x:data' type='result'><field var='x'><value>1</value></field></x></query>",
        )
        .unwrap();
        let b = parse_stanza(
            "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='server' type='im'/><feature var='a'/>\
             <feature var='b'/></query>",
        )
        .unwrap();
        assert_eq!(verification_string_of(&a), "server/im//<a<b<");
        assert_eq!(ver_of(&a), ver_of(&b));
    }
}
