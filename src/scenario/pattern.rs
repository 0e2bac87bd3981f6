//! Matching a received stanza against an expected pattern (non-strict, on the parsed infoset).
//!
//! Rules (docs/scenario-format.md, "Matching"):
//! - names and namespaces must be equal;
//! - every attribute in the pattern must be present and equal; `from`, `to` and `jid` are
//!   compared as JIDs when both sides parse (so `Bob@B` equals `bob@b`, but a bare JID never
//!   equals a full one);
//! - every child element in the pattern must match a distinct child of the stanza, recursively;
//! - text in the pattern (other than whitespace between elements) must equal the element's text;
//! - anything the pattern does not mention is ignored.
//!
//! A whole attribute value or text may be `{*}` (present, any value), `{=name}` (capture) or
//! `{name}` (must equal the earlier capture) or `{!a !b}` / `{=name !a}` (must differ from the
//! earlier captures a and b, optionally captured); an attribute value may be `{absent}` (the
//! attribute must not be there).
//!
//! Attributes in the `urn:plugfest:pattern` namespace (prefix `pf`, pre-bound in patterns) are
//! instructions, never compared: `pf:absent=''` on a child (no child may match it) and
//! `pf:strict=''` (exactly the listed attributes and children, always-ignorable additions excepted)
//! and `pf:exact='from jid'` (these attributes are compared as strings, not as JIDs) and
//! `pf:caps-ver='{ver}'` (the element's identities, features and forms hash to that XEP-0115 `ver`).

use crate::jid::Jid;
use crate::xml::{Element, NS_XML};
use std::collections::BTreeMap;

/// Captured values by name.
pub type Captures = BTreeMap<String, String>;

/// The namespace of matching instructions in patterns (prefix `pf`).
pub const NS_PATTERN: &str = "urn:plugfest:pattern";

/// Children a strict element may have beyond those listed (CATALOG §0.4 "always ignorable"):
/// delay stamps, stanza ids and entity capabilities.
const IGNORABLE_CHILDREN: [(&str, &str); 4] = [
    ("delay", "urn:xmpp:delay"),
    ("x", "jabber:x:delay"),
    ("stanza-id", "urn:xmpp:sid:0"),
    ("c", "http://jabber.org/protocol/caps"),
];

fn is_ignorable_child(e: &Element) -> bool {
    IGNORABLE_CHILDREN.iter().any(|(name, ns)| e.name == *name && e.ns == *ns)
}

fn is_strict(p: &Element) -> bool {
    p.attr_ns(NS_PATTERN, "strict").is_some()
}

/// Is this attribute named by the element's `pf:exact` (compared as a string, not as a JID)?
fn is_exact(p: &Element, ns: &str, name: &str) -> bool {
    ns.is_empty() && p.attr_ns(NS_PATTERN, "exact").is_some_and(|names| names.split_whitespace().any(|n| n == name))
}

/// The instruction `pf:caps-ver`: the XEP-0115 §5.1 verification string (SHA-1) the element's
/// identities, features and extended forms must hash to.
const CAPS_VER: &str = "caps-ver";

fn is_absent(p: &Element) -> bool {
    p.attr_ns(NS_PATTERN, "absent").is_some()
}

/// What is wrong with a pattern's matching instructions, if anything: unknown `pf:` attributes,
/// `pf:absent` on the top element, `{absent}` used as text.
pub fn check_instructions(pattern: &Element) -> Result<(), String> {
    check_el(pattern, true)
}

fn check_el(p: &Element, top: bool) -> Result<(), String> {
    for a in p.attrs.iter().filter(|a| a.ns == NS_PATTERN) {
        if a.name != "strict" && a.name != "absent" && a.name != "exact" && a.name != CAPS_VER {
            return Err(format!(
                "unknown instruction pf:{} on <{}>: pf:strict, pf:absent, pf:exact and pf:caps-ver exist",
                a.name, p.name
            ));
        }
        if a.name == CAPS_VER {
            match ValueMatch::parse(&a.value) {
                ValueMatch::Backref(_) => {}
                ValueMatch::Literal(v) if !v.trim().is_empty() => {}
                _ => {
                    return Err(format!(
                        "pf:caps-ver takes the ver to compare with: a captured value such as '{{ver}}' or a literal, \
                         not '{}'",
                        a.value
                    ))
                }
            }
            continue;
        }
        if a.name == "exact" {
            let names: Vec<&str> = a.value.split_whitespace().collect();
            if names.is_empty() {
                return Err("pf:exact names the attributes to compare as strings, e.g. pf:exact='from jid'".into());
            }
            if let Some(n) = names.iter().find(|n| p.attr(n).is_none()) {
                return Err(format!("pf:exact names '{n}', which the pattern's <{}> does not have", p.name));
            }
            continue;
        }
        if !a.value.is_empty() {
            return Err(format!("pf:{} takes no value: write pf:{}=''", a.name, a.name));
        }
    }
    if top && is_absent(p) {
        return Err("pf:absent is for children: the stanza itself cannot be absent (use expect_none)".into());
    }
    if pattern_text(p).is_some_and(|t| ValueMatch::parse(&t) == ValueMatch::Absent) {
        return Err(format!(
            "{{absent}} is for attribute values, not the text of <{}>; for a child element write pf:absent=''",
            p.name
        ));
    }
    p.elements().try_for_each(|c| check_el(c, false))
}

/// How one attribute value or text of a pattern is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch<'a> {
    /// `{*}`
    Any,
    /// `{absent}`: the attribute must not be there.
    Absent,
    /// `{=name}`
    Capture(&'a str),
    /// `{name}`
    Backref(&'a str),
    /// `{!a !b}` or `{=name !a !b}`: differs from every capture named, captured as `name`.
    Differs {
        capture: Option<&'a str>,
        from: Vec<&'a str>,
    },
    Literal(&'a str),
}

impl<'a> ValueMatch<'a> {
    pub fn parse(s: &'a str) -> ValueMatch<'a> {
        let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
            return ValueMatch::Literal(s);
        };
        if inner == "*" {
            return ValueMatch::Any;
        }
        if inner == "absent" {
            return ValueMatch::Absent;
        }
        if inner.contains('!') {
            return Self::parse_differs(inner).unwrap_or(ValueMatch::Literal(s));
        }
        let (capture, name) = match inner.strip_prefix('=') {
            Some(n) => (true, n),
            None => (false, inner),
        };
        if !is_capture_name(name) {
            return ValueMatch::Literal(s);
        }
        if capture {
            ValueMatch::Capture(name)
        } else {
            ValueMatch::Backref(name)
        }
    }
}

impl<'a> ValueMatch<'a> {
    /// `!a !b` or `=name !a !b` (the inside of the braces).
    fn parse_differs(inner: &'a str) -> Option<ValueMatch<'a>> {
        let mut capture = None;
        let mut from = Vec::new();
        for (i, token) in inner.split_whitespace().enumerate() {
            match (token.strip_prefix('='), token.strip_prefix('!')) {
                (Some(n), _) if i == 0 && is_capture_name(n) => capture = Some(n),
                (_, Some(n)) if is_capture_name(n) => from.push(n),
                _ => return None,
            }
        }
        (!from.is_empty()).then_some(ValueMatch::Differs { capture, from })
    }
}

/// Capture names: letters, digits, `_` and `-`, starting with a letter.
pub fn is_capture_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Why a stanza does not match. `score` counts the pattern's checks that did hold before the
/// first that did not, so the closest of several stanzas can be named in a failure report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub score: usize,
    pub reason: String,
}

/// A capture definition or use found in a pattern, in matching order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureUse {
    Define(String),
    Refer(String),
}

/// Every `{=name}` and `{name}` in a pattern, in the order matching meets them
/// (attributes, then text, then children), for load-time checks.
pub fn capture_uses(pattern: &Element) -> Vec<CaptureUse> {
    let mut out = Vec::new();
    collect_uses(pattern, &mut out);
    out
}

fn collect_uses(p: &Element, out: &mut Vec<CaptureUse>) {
    let text = pattern_text(p);
    let values = p.attrs.iter().filter(|a| a.ns != NS_PATTERN).map(|a| a.value.as_str()).chain(text.as_deref());
    for v in values {
        match ValueMatch::parse(v) {
            // Captures under an absent child never happen: nothing can be captured from it.
            ValueMatch::Capture(n) if !is_absent(p) => out.push(CaptureUse::Define(n.into())),
            ValueMatch::Capture(_) => {}
            ValueMatch::Backref(n) => out.push(CaptureUse::Refer(n.into())),
            ValueMatch::Differs { capture, from } => {
                out.extend(from.iter().map(|n| CaptureUse::Refer(n.to_string())));
                if let Some(n) = capture.filter(|_| !is_absent(p)) {
                    out.push(CaptureUse::Define(n.into()));
                }
            }
            ValueMatch::Any | ValueMatch::Absent | ValueMatch::Literal(_) => {}
        }
    }
    for c in p.elements() {
        collect_uses(c, out);
    }
    // pf:caps-ver='{ver}' refers to a capture, checked after the element's children.
    if let Some(ValueMatch::Backref(n)) = p.attr_ns(NS_PATTERN, CAPS_VER).map(ValueMatch::parse) {
        out.push(CaptureUse::Refer(n.into()));
    }
}

/// Upper bound on element comparisons for one match: patterns with many similar children
/// against a large stanza could otherwise take exponential time.
const BUDGET: usize = 100_000;

/// Does `stanza` match `pattern`? On success returns `captures` extended with new captures.
pub fn match_element(pattern: &Element, stanza: &Element, captures: &Captures) -> Result<Captures, Mismatch> {
    let mut budget = BUDGET;
    match_el(pattern, stanza, captures, &mut budget).map(|(c, _)| c)
}

/// Among `candidates` that do not match, the one that came closest (same element name and the
/// most checks satisfied), with why it does not match. `None` when none even has the right name.
pub fn closest<'a>(
    pattern: &Element,
    candidates: impl IntoIterator<Item = &'a Element>,
    captures: &Captures,
) -> Option<(&'a Element, Mismatch)> {
    let mut best: Option<(&Element, Mismatch)> = None;
    for c in candidates {
        if let Err(m) = match_element(pattern, c, captures) {
            if m.score > 0 && best.as_ref().is_none_or(|(_, b)| m.score > b.score) {
                best = Some((c, m));
            }
        }
    }
    best
}

/// `<message from='…' to='…' type='chat'>`: an element's start tag, for messages.
pub fn start_tag(e: &Element) -> String {
    let mut s = format!("<{}", e.name);
    if !e.ns.is_empty() && e.ns != crate::xml::NS_CLIENT {
        s.push_str(&format!(" xmlns='{}'", e.ns));
    }
    for a in &e.attrs {
        s.push_str(&format!(" {}='{}'", attr_name(&a.ns, &a.name), a.value));
    }
    s.push('>');
    s
}

fn attr_name(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else if ns == NS_XML {
        format!("xml:{name}")
    } else {
        format!("{{{ns}}}{name}")
    }
}

/// Attributes whose values are JIDs: compared after JID preparation.
fn is_jid_attr(ns: &str, name: &str) -> bool {
    ns.is_empty() && matches!(name, "from" | "to" | "jid")
}

fn same_value(expected: &str, actual: &str, as_jid: bool) -> bool {
    if expected == actual {
        return true;
    }
    if !as_jid {
        return false;
    }
    match (Jid::parse(expected), Jid::parse(actual)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The text a pattern element requires, if any. Whitespace-only text is indentation, not a
/// requirement; text next to child elements is compared without the surrounding whitespace.
fn pattern_text(p: &Element) -> Option<String> {
    let text = p.text();
    if text.trim().is_empty() {
        None
    } else if is_mixed(p) {
        Some(text.trim().to_string())
    } else {
        Some(text)
    }
}

fn is_mixed(e: &Element) -> bool {
    e.elements().next().is_some()
}

/// Check one value; on success, record a capture. `Err` carries what was expected, for messages.
fn check_value(expected: &str, actual: &str, as_jid: bool, captures: &mut Captures) -> Result<(), String> {
    match ValueMatch::parse(expected) {
        ValueMatch::Any => Ok(()),
        ValueMatch::Absent => Err("absent".to_string()),
        ValueMatch::Capture(name) => {
            captures.insert(name.to_string(), actual.to_string());
            Ok(())
        }
        ValueMatch::Backref(name) => match captures.get(name) {
            Some(v) if same_value(v, actual, as_jid) => Ok(()),
            Some(v) => Err(format!("'{v}' (captured as {{{name}}})")),
            None => Err(format!("the value of {{{name}}}, which was never captured")),
        },
        ValueMatch::Differs { capture, from } => {
            for name in from {
                match captures.get(name) {
                    Some(v) if same_value(v, actual, as_jid) => {
                        return Err(format!("a value other than '{v}' (captured as {{{name}}})"))
                    }
                    Some(_) => {}
                    None => return Err(format!("a value other than {{{name}}}, which was never captured")),
                }
            }
            if let Some(name) = capture {
                captures.insert(name.to_string(), actual.to_string());
            }
            Ok(())
        }
        ValueMatch::Literal(v) if same_value(v, actual, as_jid) => Ok(()),
        ValueMatch::Literal(v) => Err(format!("'{v}'")),
    }
}

/// Returns the captures and the number of checks the pattern holds (its size).
fn match_el(p: &Element, e: &Element, captures: &Captures, budget: &mut usize) -> Result<(Captures, usize), Mismatch> {
    if *budget == 0 {
        return Err(Mismatch { score: 0, reason: "the pattern is too ambiguous to check against this stanza".into() });
    }
    *budget -= 1;
    if p.name != e.name || p.ns != e.ns {
        return Err(Mismatch { score: 0, reason: format!("element is {} not {}", bare_tag(e), bare_tag(p)) });
    }
    let mut caps = captures.clone();
    let mut score = 1;
    for a in p.attrs.iter().filter(|a| a.ns != NS_PATTERN) {
        let label = attr_name(&a.ns, &a.name);
        let absent = ValueMatch::parse(&a.value) == ValueMatch::Absent;
        let Some(actual) = e.attr_ns(&a.ns, &a.name) else {
            if absent {
                score += 1;
                continue;
            }
            return Err(Mismatch { score, reason: format!("attribute '{label}' is missing") });
        };
        if absent {
            return Err(Mismatch { score, reason: format!("attribute '{label}' is '{actual}' but must be absent") });
        }
        let as_jid = is_jid_attr(&a.ns, &a.name) && !is_exact(p, &a.ns, &a.name);
        check_value(&a.value, actual, as_jid, &mut caps).map_err(|expected| Mismatch {
            score,
            reason: format!("attribute '{label}' is '{actual}' not {expected}"),
        })?;
        score += 1;
    }
    if let Some(expected) = pattern_text(p) {
        let actual = e.text();
        let actual = if is_mixed(p) { actual.trim() } else { actual.as_str() };
        check_value(&expected, actual, false, &mut caps)
            .map_err(|exp| Mismatch { score, reason: format!("text is '{actual}' not {exp}") })?;
        score += 1;
    }
    let strict = is_strict(p);
    if strict {
        let extra = e.attrs.iter().find(|a| {
            let listed = p.attr_ns(&a.ns, &a.name).is_some();
            let lang = a.ns == NS_XML && a.name == "lang";
            !listed && !lang
        });
        if let Some(a) = extra {
            let label = attr_name(&a.ns, &a.name);
            return Err(Mismatch { score, reason: format!("extra attribute '{label}' (the pattern is strict)") });
        }
    }
    let available: Vec<&Element> = e.elements().collect();
    for absent in p.elements().filter(|c| is_absent(c)) {
        if let Some(found) = available.iter().find(|c| match_el(absent, c, &caps, budget).is_ok()) {
            return Err(Mismatch { score, reason: format!("child {} is present but must be absent", bare_tag(found)) });
        }
        score += 1;
    }
    let wanted: Vec<&Element> = p.elements().filter(|c| !is_absent(c)).collect();
    let mut used = vec![false; available.len()];
    let (caps, size) = match assign(&wanted, &available, &mut used, strict, caps, budget) {
        Ok((caps, s)) => (caps, score + s),
        Err(m) => return Err(Mismatch { score: score + m.score, reason: m.reason }),
    };
    if let Some(expected) = p.attr_ns(NS_PATTERN, CAPS_VER) {
        let actual = super::caps::ver_of(e);
        let mut scratch = caps.clone();
        check_value(expected, &actual, false, &mut scratch).map_err(|wanted| Mismatch {
            score: size,
            reason: format!(
                "its identities, features and forms hash to ver '{actual}' (XEP-0115 §5.1, SHA-1), not {wanted}; \
                 hashed: \"{}\"",
                super::caps::verification_string_of(e)
            ),
        })?;
        return Ok((caps, size + 1));
    }
    Ok((caps, size))
}

/// Match each wanted child to a distinct available child (backtracking), returning captures
/// and the summed size of the matched children.
/// With `strict`, every stanza child left over must be ignorable.
fn assign(
    wanted: &[&Element],
    available: &[&Element],
    used: &mut [bool],
    strict: bool,
    captures: Captures,
    budget: &mut usize,
) -> Result<(Captures, usize), Mismatch> {
    let Some((first, rest)) = wanted.split_first() else {
        let extra = available.iter().zip(used.iter()).find(|(c, used)| strict && !**used && !is_ignorable_child(c));
        return match extra {
            Some((c, _)) => {
                Err(Mismatch { score: 0, reason: format!("extra child {} (the pattern is strict)", bare_tag(c)) })
            }
            None => Ok((captures, 0)),
        };
    };
    let mut best: Option<Mismatch> = None;
    let mut keep = |m: Mismatch| {
        if best.as_ref().is_none_or(|b| m.score > b.score) {
            best = Some(m);
        }
    };
    for i in 0..available.len() {
        if used[i] {
            continue;
        }
        match match_el(first, available[i], &captures, budget) {
            Ok((caps, size)) => {
                used[i] = true;
                let result = assign(rest, available, used, strict, caps, budget);
                used[i] = false;
                match result {
                    Ok((caps, s)) => return Ok((caps, size + s)),
                    Err(m) => keep(Mismatch { score: size + m.score, reason: m.reason }),
                }
            }
            Err(m) if m.score > 0 => {
                keep(Mismatch { score: m.score, reason: format!("{}: {}", bare_tag(first), m.reason) })
            }
            Err(_) => {}
        }
    }
    Err(best.unwrap_or_else(|| Mismatch { score: 0, reason: format!("child {} is missing", bare_tag(first)) }))
}

/// `<item>` or `<query xmlns='jabber:iq:roster'>`: the name, with the namespace when it is not
/// the stream's.
fn bare_tag(e: &Element) -> String {
    if e.ns.is_empty() || e.ns == crate::xml::NS_CLIENT {
        format!("<{}>", e.name)
    } else {
        format!("<{} xmlns='{}'>", e.name, e.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::NS_CLIENT;

    const ROSTER: &str = "jabber:iq:roster";

    fn msg() -> Element {
        Element::new("message", NS_CLIENT)
            .with_attr("from", "alice@a.lab/r1")
            .with_attr("to", "bob@b.lab")
            .with_attr("id", "m1")
            .with_attr("type", "chat")
            .with_child(Element::new("body", NS_CLIENT).with_text("hi ü 🎸"))
            .with_child(Element::new("x", "urn:example:interop").with_attr("a", "ä"))
    }

    fn push(items: &[(&str, &str)]) -> Element {
        let mut q = Element::new("query", ROSTER);
        for (jid, sub) in items {
            q = q.with_child(Element::new("item", ROSTER).with_attr("jid", *jid).with_attr("subscription", *sub));
        }
        Element::new("iq", NS_CLIENT).with_attr("type", "set").with_attr("id", "push1").with_child(q)
    }

    fn ok(p: &Element, e: &Element) -> bool {
        match_element(p, e, &Captures::new()).is_ok()
    }

    fn reason(p: &Element, e: &Element) -> String {
        match_element(p, e, &Captures::new()).unwrap_err().reason
    }

    #[test]
    fn listed_attributes_must_be_equal_extras_are_ignored() {
        let p = Element::new("message", NS_CLIENT).with_attr("type", "chat").with_attr("id", "m1");
        assert!(ok(&p, &msg()));
        let p = Element::new("message", NS_CLIENT).with_attr("type", "normal");
        assert_eq!(reason(&p, &msg()), "attribute 'type' is 'chat' not 'normal'");
        let p = Element::new("message", NS_CLIENT).with_attr("lang", "en");
        assert_eq!(reason(&p, &msg()), "attribute 'lang' is missing");
    }

    #[test]
    fn names_and_namespaces_must_be_equal() {
        assert!(!ok(&Element::new("presence", NS_CLIENT), &msg()));
        assert!(!ok(&Element::new("message", "jabber:server"), &msg()));
        assert!(ok(&Element::new("message", NS_CLIENT), &msg()));
    }

    #[test]
    fn from_and_to_compare_as_jids_and_bare_is_not_full() {
        let p = Element::new("message", NS_CLIENT).with_attr("from", "Alice@A.lab/r1").with_attr("to", "BOB@b.lab");
        assert!(ok(&p, &msg()));
        let p = Element::new("message", NS_CLIENT).with_attr("from", "alice@a.lab");
        assert_eq!(reason(&p, &msg()), "attribute 'from' is 'alice@a.lab/r1' not 'alice@a.lab'");
        let p = Element::new("message", NS_CLIENT).with_attr("to", "bob@b.lab/r1");
        assert!(!ok(&p, &msg()));
        // Other attributes are plain strings.
        let p = Element::new("message", NS_CLIENT).with_attr("id", "M1");
        assert!(!ok(&p, &msg()));
    }

    #[test]
    fn pf_exact_compares_jid_attributes_as_strings() {
        let pat = |xml: &str| crate::scenario::parse_pattern(xml).unwrap();
        assert!(ok(&pat("<message from='alice@a.lab/r1' pf:exact='from'/>"), &msg()));
        assert_eq!(
            reason(&pat("<message from='Alice@A.lab/r1' pf:exact='from'/>"), &msg()),
            "attribute 'from' is 'alice@a.lab/r1' not 'Alice@A.lab/r1'"
        );
        // Other JID attributes of the element stay JID comparisons.
        assert!(ok(&pat("<message from='alice@a.lab/r1' to='BOB@b.lab' pf:exact='from'/>"), &msg()));
        assert!(check_instructions(&pat("<message from='x' pf:exact='from'/>")).is_ok());
        let unknown = check_instructions(&pat("<message pf:exact='jid'/>")).unwrap_err();
        assert!(unknown.contains("does not have"), "{unknown}");
        let empty = check_instructions(&pat("<message pf:exact=''/>")).unwrap_err();
        assert!(empty.contains("names the attributes"), "{empty}");
    }

    #[test]
    fn children_match_recursively_and_text_must_be_equal() {
        let p = Element::new("message", NS_CLIENT)
            .with_child(Element::new("x", "urn:example:interop").with_attr("a", "ä"))
            .with_child(Element::new("body", NS_CLIENT).with_text("hi ü 🎸"));
        assert!(ok(&p, &msg()));
        let p = Element::new("message", NS_CLIENT).with_child(Element::new("body", NS_CLIENT).with_text("hi"));
        assert_eq!(reason(&p, &msg()), "<body>: text is 'hi ü 🎸' not 'hi'");
        let p = Element::new("message", NS_CLIENT).with_child(Element::new("thread", NS_CLIENT));
        assert_eq!(reason(&p, &msg()), "child <thread> is missing");
        let p = Element::new("message", NS_CLIENT).with_child(Element::new("x", "urn:other"));
        assert_eq!(reason(&p, &msg()), "child <x xmlns='urn:other'> is missing");
    }

    #[test]
    fn whitespace_between_pattern_children_is_not_text() {
        let p = Element::new("message", NS_CLIENT)
            .with_text("\n  ")
            .with_child(Element::new("body", NS_CLIENT))
            .with_text("\n");
        assert!(ok(&p, &msg()));
    }

    #[test]
    fn each_pattern_child_needs_a_distinct_stanza_child() {
        let item = |sub: &str| Element::new("item", ROSTER).with_attr("subscription", sub);
        let p = Element::new("iq", NS_CLIENT)
            .with_child(Element::new("query", ROSTER).with_child(item("none")).with_child(item("none")));
        assert!(!ok(&p, &push(&[("bob@b.lab", "none")])));
        assert!(ok(&p, &push(&[("bob@b.lab", "none"), ("carol@b.lab", "none")])));
        // Backtracking: the first pattern child must not greedily take the only stanza child
        // the second one can match.
        let p = Element::new("iq", NS_CLIENT).with_child(
            Element::new("query", ROSTER)
                .with_child(Element::new("item", ROSTER))
                .with_child(item("both").with_attr("jid", "dave@b.lab")),
        );
        assert!(ok(&p, &push(&[("dave@b.lab", "both"), ("carol@b.lab", "none")])));
    }

    #[test]
    fn nested_differences_name_the_path() {
        let p = Element::new("iq", NS_CLIENT).with_attr("type", "set").with_child(
            Element::new("query", ROSTER).with_child(
                Element::new("item", ROSTER).with_attr("jid", "bob@b.lab").with_attr("subscription", "both"),
            ),
        );
        assert_eq!(
            reason(&p, &push(&[("bob@b.lab", "none")])),
            "<query xmlns='jabber:iq:roster'>: <item xmlns='jabber:iq:roster'>: attribute 'subscription' is 'none' not 'both'"
        );
    }

    #[test]
    fn wildcard_capture_and_backreference() {
        let p = Element::new("message", NS_CLIENT).with_attr("id", "{*}").with_attr("from", "{=sender}");
        let caps = match_element(&p, &msg(), &Captures::new()).unwrap();
        assert_eq!(caps["sender"], "alice@a.lab/r1");
        assert!(!ok(&Element::new("message", NS_CLIENT).with_attr("thread", "{*}"), &msg()));

        let p = Element::new("message", NS_CLIENT).with_attr("from", "{sender}");
        assert!(match_element(&p, &msg(), &caps).is_ok());
        let mut other = Captures::new();
        other.insert("sender".into(), "carol@a.lab/r1".into());
        let m = match_element(&p, &msg(), &other).unwrap_err();
        assert!(m.reason.contains("captured as {sender}"), "{}", m.reason);
        // Text can be captured too.
        let p = Element::new("message", NS_CLIENT).with_child(Element::new("body", NS_CLIENT).with_text("{=b}"));
        assert_eq!(match_element(&p, &msg(), &Captures::new()).unwrap()["b"], "hi ü 🎸");
    }

    fn pf(e: Element, name: &str) -> Element {
        let mut e = e;
        e.attrs.push(crate::xml::Attr { ns: NS_PATTERN.into(), name: name.into(), value: String::new() });
        e
    }

    #[test]
    fn absent_attributes_and_children() {
        let p = Element::new("message", NS_CLIENT).with_attr("subject", "{absent}");
        assert!(ok(&p, &msg()));
        let p = Element::new("message", NS_CLIENT).with_attr("type", "{absent}");
        assert_eq!(reason(&p, &msg()), "attribute 'type' is 'chat' but must be absent");
        let p = Element::new("message", NS_CLIENT).with_child(pf(Element::new("thread", NS_CLIENT), "absent"));
        assert!(ok(&p, &msg()));
        let p = Element::new("message", NS_CLIENT).with_child(pf(Element::new("body", NS_CLIENT), "absent"));
        assert_eq!(reason(&p, &msg()), "child <body> is present but must be absent");
        // An absent child with attributes: only a child matching all of it counts.
        let p = Element::new("message", NS_CLIENT)
            .with_child(pf(Element::new("x", "urn:example:interop").with_attr("a", "b"), "absent"));
        assert!(ok(&p, &msg()));
        assert_eq!(ValueMatch::parse("{absent}"), ValueMatch::Absent);
    }

    #[test]
    fn strict_elements_allow_nothing_unlisted_but_ignorable_additions() {
        let body = || Element::new("body", NS_CLIENT).with_text("hi ü 🎸");
        let x = || Element::new("x", "urn:example:interop");
        let full = Element::new("message", NS_CLIENT)
            .with_attr("from", "{*}")
            .with_attr("to", "{*}")
            .with_attr("id", "m1")
            .with_attr("type", "chat")
            .with_child(body())
            .with_child(x());
        assert!(ok(&pf(full.clone(), "strict"), &msg()));
        let no_type = Element::new("message", NS_CLIENT)
            .with_attr("from", "{*}")
            .with_attr("to", "{*}")
            .with_attr("id", "m1")
            .with_child(body())
            .with_child(x());
        assert_eq!(reason(&pf(no_type, "strict"), &msg()), "extra attribute 'type' (the pattern is strict)");
        let mut no_x = full.clone();
        no_x.children.pop();
        assert_eq!(
            reason(&pf(no_x, "strict"), &msg()),
            "extra child <x xmlns='urn:example:interop'> (the pattern is strict)"
        );
        // Delay, stanza-id, caps and an unmentioned xml:lang are always allowed.
        let mut stamped = msg()
            .with_child(Element::new("delay", "urn:xmpp:delay").with_attr("stamp", "2026-01-01T00:00:00Z"))
            .with_child(Element::new("stanza-id", "urn:xmpp:sid:0"));
        stamped.attrs.push(crate::xml::Attr { ns: NS_XML.into(), name: "lang".into(), value: "en".into() });
        assert!(ok(&pf(full.clone(), "strict"), &stamped));
        // Children of a strict element are not strict themselves.
        let loose_child = pf(full.clone(), "strict");
        let mut with_attr = msg();
        let replaced = Element::new("body", NS_CLIENT).with_attr("extra", "1").with_text("hi ü 🎸");
        with_attr.children[0] = crate::xml::Node::Element(replaced);
        assert!(ok(&loose_child, &with_attr));
        // pf: attributes are never compared, nor captured from.
        assert!(capture_uses(&pf(Element::new("message", NS_CLIENT), "strict")).is_empty());
    }

    #[test]
    fn instructions_are_checked() {
        assert!(check_instructions(&pf(Element::new("message", NS_CLIENT), "strict")).is_ok());
        let e = check_instructions(&pf(Element::new("message", NS_CLIENT), "absent")).unwrap_err();
        assert!(e.contains("pf:absent is for children"), "{e}");
        let e = check_instructions(&pf(Element::new("message", NS_CLIENT), "loose")).unwrap_err();
        assert!(e.contains("unknown instruction pf:loose"), "{e}");
        let mut valued = Element::new("message", NS_CLIENT);
        valued.attrs.push(crate::xml::Attr { ns: NS_PATTERN.into(), name: "strict".into(), value: "yes".into() });
        assert!(check_instructions(&valued).unwrap_err().contains("takes no value"));
    }

    #[test]
    fn value_forms() {
        assert_eq!(ValueMatch::parse("{*}"), ValueMatch::Any);
        assert_eq!(ValueMatch::parse("{=id1}"), ValueMatch::Capture("id1"));
        assert_eq!(ValueMatch::parse("{id1}"), ValueMatch::Backref("id1"));
        assert_eq!(ValueMatch::parse("{\"a\": 1}"), ValueMatch::Literal("{\"a\": 1}"));
        assert_eq!(ValueMatch::parse("x{*}"), ValueMatch::Literal("x{*}"));
    }

    #[test]
    fn capture_uses_in_matching_order() {
        let p = Element::new("iq", NS_CLIENT)
            .with_attr("id", "{=a}")
            .with_child(Element::new("x", "urn:x").with_attr("v", "{a}").with_text("{=b}"));
        assert_eq!(
            capture_uses(&p),
            vec![CaptureUse::Define("a".into()), CaptureUse::Refer("a".into()), CaptureUse::Define("b".into())]
        );
    }

    #[test]
    fn closest_prefers_the_most_similar_stanza() {
        let p = Element::new("message", NS_CLIENT).with_attr("type", "chat").with_attr("from", "carol@a.lab/r1");
        let a = Element::new("presence", NS_CLIENT);
        let b = msg();
        let c = Element::new("message", NS_CLIENT).with_attr("type", "headline");
        let (best, m) = closest(&p, [&a, &b, &c], &Captures::new()).unwrap();
        assert_eq!(best, &b);
        assert!(m.reason.starts_with("attribute 'from'"), "{}", m.reason);
        assert!(closest(&p, [&a], &Captures::new()).is_none());
    }

    #[test]
    fn differs_from_earlier_captures_and_may_capture() {
        assert_eq!(ValueMatch::parse("{!a}"), ValueMatch::Differs { capture: None, from: vec!["a"] });
        assert_eq!(ValueMatch::parse("{=v2 !a !b}"), ValueMatch::Differs { capture: Some("v2"), from: vec!["a", "b"] });
        // Not placeholders: ordinary text.
        for literal in ["{!}", "{=v2}x", "{!a =b}", "{hello!}", "{=a}!"] {
            assert!(matches!(ValueMatch::parse(literal), ValueMatch::Literal(_) | ValueMatch::Capture(_)), "{literal}");
        }
        let mut caps = Captures::new();
        caps.insert("a".into(), "1".into());
        caps.insert("b".into(), "2".into());
        let p = Element::new("query", ROSTER).with_attr("ver", "{=c !a !b}");
        let got = match_element(&p, &Element::new("query", ROSTER).with_attr("ver", "3"), &caps).unwrap();
        assert_eq!(got.get("c").map(String::as_str), Some("3"));
        let why = match_element(&p, &Element::new("query", ROSTER).with_attr("ver", "2"), &caps).unwrap_err().reason;
        assert_eq!(why, "attribute 'ver' is '2' not a value other than '2' (captured as {b})");
        // JID attributes compare as JIDs here too.
        caps.insert("j".into(), "bob@b.lab".into());
        let p = Element::new("item", ROSTER).with_attr("jid", "{!j}");
        assert!(match_element(&p, &Element::new("item", ROSTER).with_attr("jid", "Bob@B.lab"), &caps).is_err());
        assert_eq!(
            capture_uses(&Element::new("x", "urn:x").with_attr("v", "{=c !a !b}")),
            vec![CaptureUse::Refer("a".into()), CaptureUse::Refer("b".into()), CaptureUse::Define("c".into())]
        );
    }

    #[test]
    fn caps_ver_checks_the_xep_0115_hash_of_the_element() {
        let parse = |s: &str| crate::scenario::parse_pattern(s).unwrap();
        // XEP-0115 §5.2's example.
        let answer = parse(
            "<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='client' name='Exodus 0.9.1' type='pc'/>\
             <feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>\
             </query></iq>",
        );
        let p =
            parse("<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='{ver}'/></iq>");
        assert_eq!(check_instructions(&p), Ok(()));
        assert_eq!(capture_uses(&p), vec![CaptureUse::Refer("ver".into())]);
        let mut captured = Captures::new();
        captured.insert("ver".into(), "QgayPKawpkPSDYmwT/WM94uAlu0=".into());
        assert!(match_element(&p, &answer, &captured).is_ok());
        let literal = parse(
            "<iq><query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></iq>",
        );
        assert!(match_element(&literal, &answer, &Captures::new()).is_ok());
        captured.insert("ver".into(), "AAAA".into());
        let why = match_element(&p, &answer, &captured).unwrap_err().reason;
        assert!(
            why.contains(
                "hash to ver 'QgayPKawpkPSDYmwT/WM94uAlu0=' (XEP-0115 §5.1, SHA-1), not 'AAAA' (captured as {ver})"
            ),
            "{why}"
        );
        assert!(why.contains("client/pc//Exodus 0.9.1<"), "{why}");
        // Captures and wildcards make no sense as the value.
        for bad in ["{=ver}", "{*}", "{absent}", ""] {
            let p = parse(&format!("<query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='{bad}'/>"));
            assert!(check_instructions(&p).unwrap_err().contains("pf:caps-ver"), "{bad}");
        }
    }

    #[test]
    fn start_tag_summarises() {
        assert_eq!(start_tag(&msg()), "<message from='alice@a.lab/r1' to='bob@b.lab' id='m1' type='chat'>");
    }
}
