//! Variables in scenario text: `${A}`, `${alice.bare}`, `${alice1.full}`, `${capture}`,
//! `${str.NAME}` (a sample string from `fixtures/strings.yaml`).
//!
//! A [`Template`] keeps the text as written plus the variables it refers to, resolved against
//! the scenario's names at load time (so a typo is a load error, not a run-time surprise) and
//! substituted at run time, when JIDs are known. Substituted values are XML-escaped, because
//! templates are XML text and a value such as a resource may contain `&`, `<` or quotes.

use crate::jid::Jid;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The name that introduces sample strings: `${str.NAME}`.
pub const SAMPLES: &str = "str";

/// Sample strings by name (`fixtures/strings.yaml`), and where they come from (for messages).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    pub values: BTreeMap<String, String>,
    /// The file they were read from, or why there is none.
    pub origin: String,
}

/// What a `${…}` refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `${A}`: the domain of the server playing role A.
    Domain { role: String },
    /// `${alice.bare}`, `${alice.local}`, `${alice.domain}`.
    Account { name: String, part: JidPart },
    /// `${alice1.full}` etc.: the JID the server bound for the actor's connection.
    Actor { name: String, part: JidPart },
    /// `${name}`: a value captured earlier by `{=name}` in an expected stanza.
    Capture { name: String },
    /// `${str.NAME}`: a sample string, known at load time.
    Sample { name: String, value: String },
    /// `${alice.tag}`: the case's unique tag, in digits, as `{tag}` in a `localpart:` template
    /// (to spell a neighbouring localpart, e.g. `fussball-${eszett.tag}`).
    Tag,
}

/// Which piece of a JID a variable stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JidPart {
    Full,
    Bare,
    Local,
    Domain,
    Resource,
}

impl JidPart {
    fn parse(s: &str) -> Option<JidPart> {
        Some(match s {
            "full" => JidPart::Full,
            "bare" => JidPart::Bare,
            "local" => JidPart::Local,
            "domain" => JidPart::Domain,
            "resource" => JidPart::Resource,
            _ => return None,
        })
    }

    fn of(self, jid: &Jid) -> String {
        match self {
            JidPart::Full => jid.to_string(),
            JidPart::Bare => jid.bare().to_string(),
            JidPart::Local => jid.local().unwrap_or_default().to_string(),
            JidPart::Domain => jid.domain().to_string(),
            JidPart::Resource => jid.resource().unwrap_or_default().to_string(),
        }
    }
}

/// What kind of thing a scenario name denotes (for resolving variables at load time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Role,
    Account,
    /// `connected` is false while no earlier step has connected the actor: its JID is unknown then.
    Actor {
        connected: bool,
    },
    Capture,
}

/// The names visible at one point of a scenario (or of a fixture, whose parameters stand for
/// the scenario's actors).
#[derive(Clone, Debug, Default)]
pub struct Scope {
    names: BTreeMap<String, NameKind>,
    /// Fixture parameter → the scenario actor it is bound to.
    aliases: BTreeMap<String, String>,
    samples: Option<Arc<Samples>>,
    /// Values known at load time under a dotted name, e.g. `bob1.caps_ver`.
    constants: BTreeMap<String, String>,
}

impl Scope {
    pub fn insert(&mut self, name: &str, kind: NameKind) {
        self.names.insert(name.to_string(), kind);
    }

    /// `name` stands for the scenario's actor `target` (a fixture parameter).
    pub fn alias(&mut self, name: &str, target: &str, kind: NameKind) {
        self.names.insert(name.to_string(), kind);
        self.aliases.insert(name.to_string(), target.to_string());
    }

    /// The scenario name `name` stands for (itself unless it is a fixture parameter).
    pub fn target<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map_or(name, String::as_str)
    }

    pub fn set_samples(&mut self, samples: Arc<Samples>) {
        self.samples = Some(samples);
    }

    pub fn samples(&self) -> Option<Arc<Samples>> {
        self.samples.clone()
    }

    /// `${name}` stands for `value`, known at load time (e.g. `${bob1.caps_ver}`).
    pub fn set_constant(&mut self, name: &str, value: &str) {
        self.constants.insert(name.to_string(), value.to_string());
    }

    pub fn get(&self, name: &str) -> Option<NameKind> {
        self.names.get(name).copied()
    }

    /// Every name of the given kind.
    pub fn names(&self, pred: impl Fn(NameKind) -> bool) -> Vec<String> {
        self.names.iter().filter(|(_, k)| pred(**k)).map(|(n, _)| n.clone()).collect()
    }

    fn sample(&self, inner: &str, key: Option<&str>) -> Result<Var, VarError> {
        let error = |message: String, hint: String| VarError { offset: 0, message, hint: Some(hint) };
        let Some(samples) = &self.samples else {
            return Err(error(
                format!("${{{inner}}}: no sample strings are available here"),
                "sample strings come from fixtures/strings.yaml in a folder above the scenario".into(),
            ));
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(error(format!("${{{inner}}}: which sample string?"), "write ${str.NAME}".into()));
        };
        match samples.values.get(key) {
            Some(value) => Ok(Var::Sample { name: key.to_string(), value: value.clone() }),
            None => {
                let known: Vec<&str> = samples.values.keys().map(String::as_str).collect();
                Err(error(
                    format!("unknown sample string ${{{inner}}}"),
                    format!(
                        "{} defines: {}",
                        samples.origin,
                        if known.is_empty() { "nothing".to_string() } else { known.join(", ") }
                    ),
                ))
            }
        }
    }

    fn names_of(&self, pred: impl Fn(NameKind) -> bool) -> String {
        let v: Vec<&str> = self.names.iter().filter(|(_, k)| pred(**k)).map(|(n, _)| n.as_str()).collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }

    /// Resolve the inside of `${…}`.
    fn resolve(&self, inner: &str) -> Result<Var, VarError> {
        if let Some(value) = self.constants.get(inner) {
            return Ok(Var::Sample { name: inner.to_string(), value: value.clone() });
        }
        let (name, part) = match inner.split_once('.') {
            Some((n, p)) => (n, Some(p)),
            None => (inner, None),
        };
        let unknown = || VarError {
            offset: 0,
            message: format!("unknown variable ${{{inner}}}: nothing in this scenario is named '{name}'"),
            hint: Some(format!(
                "roles: {}; accounts: {}; actors: {}; captures so far: {}",
                self.names_of(|k| k == NameKind::Role),
                self.names_of(|k| k == NameKind::Account),
                self.names_of(|k| matches!(k, NameKind::Actor { .. })),
                self.names_of(|k| k == NameKind::Capture),
            )),
        };
        if name == SAMPLES && self.get(name).is_none() {
            return self.sample(inner, part);
        }
        let kind = self.get(name).ok_or_else(unknown)?;
        let target = self.target(name);
        let bad_part = |allowed: &str| VarError {
            offset: 0,
            message: format!("${{{inner}}}: '{name}' has no part '{}'", part.unwrap_or("")),
            hint: Some(format!("write one of {allowed}")),
        };
        match kind {
            NameKind::Role | NameKind::Capture => {
                if part.is_some() {
                    let what = if kind == NameKind::Role { "a role" } else { "a capture" };
                    return Err(VarError {
                        offset: 0,
                        message: format!("${{{inner}}}: '{name}' is {what} and has no parts"),
                        hint: Some(format!("write ${{{name}}}")),
                    });
                }
                Ok(if kind == NameKind::Role {
                    Var::Domain { role: target.into() }
                } else {
                    Var::Capture { name: target.into() }
                })
            }
            NameKind::Account => {
                let allowed = format!("${{{name}.bare}}, ${{{name}.local}}, ${{{name}.domain}}, ${{{name}.tag}}");
                if part == Some("tag") {
                    return Ok(Var::Tag);
                }
                match part.and_then(JidPart::parse) {
                    Some(p @ (JidPart::Bare | JidPart::Local | JidPart::Domain)) => {
                        Ok(Var::Account { name: target.into(), part: p })
                    }
                    _ => Err(bad_part(&allowed)),
                }
            }
            NameKind::Actor { connected } => {
                let allowed = format!(
                    "${{{name}.full}}, ${{{name}.bare}}, ${{{name}.local}}, ${{{name}.domain}}, ${{{name}.resource}}"
                );
                let part = part.and_then(JidPart::parse).ok_or_else(|| bad_part(&allowed))?;
                if !connected {
                    return Err(VarError {
                        offset: 0,
                        message: format!("${{{inner}}} is used before actor {name} has connected"),
                        hint: Some(format!(
                            "an actor's JID is known once it is connected; connect {name} at start or with a `connect` step first"
                        )),
                    });
                }
                Ok(Var::Actor { name: target.into(), part })
            }
        }
    }
}

/// A load-time problem with a variable, at a byte offset into the template text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The variable, the spelling transforms after it (`${alice.local|upper|nfd}`), and the
    /// length of its `${…}` in the source.
    Var(Var, Vec<Transform>, usize),
}

/// A spelling transform applied to a variable's value: `${alice.local|upper}`. Spellings of the
/// same JID that a server must treat as equal (CATALOG F04, F08).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Unicode upper case (`ü` → `Ü`).
    Upper,
    /// Unicode lower case.
    Lower,
    /// Normalisation form C (composed).
    Nfc,
    /// Normalisation form D (decomposed: `ü` → `u` U+0308).
    Nfd,
    /// Normalisation form KC (compatibility composed: fullwidth `ｊ` → `j`).
    Nfkc,
    /// ASCII `!`…`~` to their fullwidth forms U+FF01…U+FF5E.
    Fullwidth,
    /// The domain (of a domain, or of a JID's domainpart) as A-labels (IDNA2008 ToASCII).
    Alabel,
    /// The domain as U-labels (IDNA2008 ToUnicode).
    Ulabel,
}

/// Every transform's name, for hints.
pub const TRANSFORMS: &str = "upper, lower, nfc, nfd, nfkc, fullwidth, alabel, ulabel";

impl Transform {
    fn parse(s: &str) -> Option<Transform> {
        Some(match s {
            "upper" => Transform::Upper,
            "lower" => Transform::Lower,
            "nfc" => Transform::Nfc,
            "nfd" => Transform::Nfd,
            "nfkc" => Transform::Nfkc,
            "fullwidth" => Transform::Fullwidth,
            "alabel" => Transform::Alabel,
            "ulabel" => Transform::Ulabel,
            _ => return None,
        })
    }

    /// Apply the transform; `Err` when the value cannot be written that way (e.g. no A-label).
    pub fn apply(self, value: &str) -> Result<String, String> {
        use unicode_normalization::UnicodeNormalization;
        Ok(match self {
            Transform::Upper => value.to_uppercase(),
            Transform::Lower => value.to_lowercase(),
            Transform::Nfc => value.nfc().collect(),
            Transform::Nfd => value.nfd().collect(),
            Transform::Nfkc => value.nfkc().collect(),
            Transform::Fullwidth => value
                .chars()
                .map(|c| match c {
                    '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
                    c => c,
                })
                .collect(),
            Transform::Alabel => map_domain(value, |d| {
                idna::domain_to_ascii(d).map_err(|e| format!("{d:?} has no A-label form: {e:?}"))
            })?,
            Transform::Ulabel => map_domain(value, |d| {
                let (u, result) = idna::domain_to_unicode(d);
                result.map(|()| u).map_err(|e| format!("{d:?} has no U-label form: {e:?}"))
            })?,
        })
    }
}

/// Apply `f` to the domain of `value`: the domainpart when it is a JID (`local@domain/resource`),
/// else the whole value.
fn map_domain(value: &str, f: impl Fn(&str) -> Result<String, String>) -> Result<String, String> {
    let (local, rest) = match value.split_once('@') {
        Some((l, r)) => (Some(l), r),
        None => (None, value),
    };
    let (domain, resource) = match rest.split_once('/') {
        Some((d, r)) => (d, Some(r)),
        None => (rest, None),
    };
    let mut out = String::new();
    if let Some(l) = local {
        out.push_str(l);
        out.push('@');
    }
    out.push_str(&f(domain)?);
    if let Some(r) = resource {
        out.push('/');
        out.push_str(r);
    }
    Ok(out)
}

/// The value of `var` with `transforms` applied in order.
fn transformed(bindings: &Bindings, var: &Var, transforms: &[Transform]) -> Result<String, String> {
    let mut value = bindings.value(var)?;
    for t in transforms {
        value = t.apply(&value)?;
    }
    Ok(value)
}

/// Scenario text with its variables resolved, ready to be substituted at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The text as written in the file.
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Split `text` into literals and variables, resolving each variable in `scope`.
    /// `$${` stands for a literal `${`.
    pub fn compile(text: &str, scope: &Scope) -> Result<Template, VarError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(after_escape) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = after_escape;
                offset += i + 3;
            } else if let Some(body) = after.strip_prefix("${") {
                let Some(end) = body.find('}') else {
                    return Err(VarError {
                        offset: offset + i,
                        message: "`${` without a closing `}`".into(),
                        hint: Some("variables look like ${alice.bare}; write $${ for a literal ${".into()),
                    });
                };
                let mut pieces = body[..end].split('|');
                let inner = pieces.next().unwrap_or_default().trim();
                let var = scope.resolve(inner).map_err(|e| VarError { offset: offset + i, ..e })?;
                let mut transforms = Vec::new();
                for t in pieces {
                    let t = t.trim();
                    transforms.push(Transform::parse(t).ok_or_else(|| VarError {
                        offset: offset + i,
                        message: format!("unknown transform |{t} in ${{{}}}", &body[..end]),
                        hint: Some(format!("transforms: {TRANSFORMS}, e.g. ${{alice.local|upper}}")),
                    })?);
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Var(var, transforms, 2 + end + 1));
                rest = &body[end + 1..];
                offset += i + 2 + end + 1;
            } else {
                literal.push('$');
                rest = &after[1..];
                offset += i + 1;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { source: text.to_string(), parts })
    }

    /// Text without variables (used as is).
    pub fn literal(text: &str) -> Template {
        Template { source: text.to_string(), parts: vec![Part::Literal(text.to_string())] }
    }

    /// The text as written in the scenario file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables this template uses, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v, _, _) => Some(v),
            Part::Literal(_) => None,
        })
    }

    /// Substitute every variable (XML-escaped). Fails with a readable message when a value
    /// is not known yet (e.g. a capture that did not happen).
    pub fn render(&self, bindings: &Bindings) -> Result<String, String> {
        self.render_with(|v, t| transformed(bindings, v, t))
    }

    /// Substitute every variable without XML escaping (for `send_raw`, whose bytes are sent as written).
    pub fn render_raw(&self, bindings: &Bindings) -> Result<String, String> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(v, t, _) => out.push_str(&transformed(bindings, v, t)?),
            }
        }
        Ok(out)
    }

    /// The bytes `send_raw` sends: variables substituted as is, and in the text as written
    /// `\xNN` is the byte 0xNN (any byte, so invalid UTF-8 can be sent) and `\\` a backslash;
    /// any other backslash is itself.
    pub fn render_bytes(&self, bindings: &Bindings) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend(unescape_bytes(s).map_err(|(_, e)| e)?),
                Part::Var(v, t, _) => out.extend(transformed(bindings, v, t)?.into_bytes()),
            }
        }
        Ok(out)
    }

    /// A malformed `\x` escape in the text as written, with its byte offset in the source.
    pub fn byte_escape_error(&self) -> Option<(usize, String)> {
        unescape_bytes(&self.source).err()
    }

    /// Substitute each variable with as many `x` as its `${…}` is long, to check at load time
    /// that the XML is well-formed: byte offsets in the result are offsets in the source (up to
    /// `$${` escapes), so a parse error can be located in the file.
    pub fn render_placeholder(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(_, _, len) => out.extend(std::iter::repeat_n('x', *len)),
            }
        }
        out
    }

    fn render_with(&self, value: impl Fn(&Var, &[Transform]) -> Result<String, String>) -> Result<String, String> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(v, t, _) => out.push_str(&escape(&value(v, t)?)),
            }
        }
        Ok(out)
    }
}

/// The values known at one moment of a running case.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    /// Role → domain.
    pub roles: BTreeMap<String, String>,
    /// Account name → bare JID.
    pub accounts: BTreeMap<String, Jid>,
    /// Actor name → the full JID last bound for it (kept after a disconnect: stanzas about
    /// the old session, such as its unavailable presence, name that JID).
    pub actors: BTreeMap<String, Jid>,
    /// Capture name → value.
    pub captures: BTreeMap<String, String>,
    /// The case's unique tag in digits (`${alice.tag}`, `{tag}` in `localpart:`).
    pub tag: String,
}

impl Bindings {
    pub fn value(&self, var: &Var) -> Result<String, String> {
        match var {
            Var::Domain { role } => {
                self.roles.get(role).cloned().ok_or_else(|| format!("no server is assigned to role {role}"))
            }
            Var::Account { name, part } => {
                self.accounts.get(name).map(|j| part.of(j)).ok_or_else(|| format!("account {name} was not provisioned"))
            }
            Var::Actor { name, part } => {
                self.actors.get(name).map(|j| part.of(j)).ok_or_else(|| format!("actor {name} has not connected yet"))
            }
            Var::Capture { name } => {
                self.captures.get(name).cloned().ok_or_else(|| format!("nothing was captured as '{name}' yet"))
            }
            Var::Sample { value, .. } => Ok(value.clone()),
            Var::Tag if self.tag.is_empty() => Err("the case has no tag (a plugfest bug)".to_string()),
            Var::Tag => Ok(self.tag.clone()),
        }
    }
}

/// `\xNN` → byte NN, `\\` → `\`, other characters as their UTF-8. `Err` gives the offset of a
/// `\x` not followed by two hex digits.
fn unescape_bytes(s: &str) -> Result<Vec<u8>, (usize, String)> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = s.get(i + 2..i + 4).filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
            let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Err((i, "\\x must be followed by two hex digits, e.g. \\xC0".to_string()));
            };
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Escape a value for XML text or a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.insert("A", NameKind::Role);
        s.insert("B", NameKind::Role);
        s.insert("alice", NameKind::Account);
        s.insert("alice1", NameKind::Actor { connected: true });
        s.insert("later1", NameKind::Actor { connected: false });
        s.insert("sid", NameKind::Capture);
        s
    }

    fn bindings() -> Bindings {
        let mut b = Bindings::default();
        b.roles.insert("A".into(), "a.lab".into());
        b.accounts.insert("alice".into(), Jid::parse("alice-x1@a.lab").unwrap());
        b.actors.insert("alice1".into(), Jid::parse("alice-x1@a.lab/r1&<'\"").unwrap());
        b.captures.insert("sid".into(), "s-1".into());
        b
    }

    #[test]
    fn substitutes_every_kind_of_variable() {
        let t = Template::compile(
            "<m to='${alice.bare}' from='${alice1.full}' d='${A}' l='${alice.local}' s='${ sid }'/>",
            &scope(),
        )
        .unwrap();
        assert_eq!(
            t.render(&bindings()).unwrap(),
            "<m to='alice-x1@a.lab' from='alice-x1@a.lab/r1&amp;&lt;&apos;&quot;' d='a.lab' l='alice-x1' s='s-1'/>"
        );
        assert_eq!(t.vars().count(), 5);
    }

    #[test]
    fn actor_parts() {
        let b = bindings();
        let t = Template::compile("${alice1.bare} ${alice1.resource} ${alice1.domain}", &scope()).unwrap();
        assert_eq!(t.render(&b).unwrap(), "alice-x1@a.lab r1&amp;&lt;&apos;&quot; a.lab");
    }

    #[test]
    fn dollar_escape_and_lone_dollars_stay_literal() {
        let t = Template::compile("costs $5, $${A} is literal, ${A}", &scope()).unwrap();
        assert_eq!(t.render(&bindings()).unwrap(), "costs $5, ${A} is literal, a.lab");
    }

    #[test]
    fn unknown_name_is_reported_with_offset_and_the_known_names() {
        let e = Template::compile("<m to='${carol.bare}'/>", &scope()).unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("carol"), "{}", e.message);
        assert!(e.hint.unwrap().contains("accounts: alice"));
    }

    #[test]
    fn wrong_parts_are_load_errors() {
        for (text, needle) in [
            ("${alice.full}", "no part 'full'"),
            ("${alice}", "no part ''"),
            ("${A.bare}", "is a role"),
            ("${alice1.nick}", "no part 'nick'"),
            ("${later1.full}", "before actor later1 has connected"),
            ("x ${A", "without a closing"),
        ] {
            let e = Template::compile(text, &scope()).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn transforms_spell_values_differently() {
        let mut s = scope();
        s.insert("str", NameKind::Role);
        let mut b = bindings();
        b.accounts.insert("alice".into(), Jid::parse("j\u{fc}rgen-1@b\u{fc}cher.lab").unwrap());
        let t = Template::compile(
            "${alice.local|upper} ${alice.local|nfd} ${alice.local|upper|nfd} ${alice.bare|alabel} ${A|upper}",
            &scope(),
        )
        .unwrap();
        assert_eq!(
            t.render(&b).unwrap(),
            "J\u{dc}RGEN-1 ju\u{308}rgen-1 JU\u{308}RGEN-1 j\u{fc}rgen-1@xn--bcher-kva.lab A.LAB"
        );
        assert_eq!(Transform::Ulabel.apply("u@xn--bcher-kva.lab/r").unwrap(), "u@b\u{fc}cher.lab/r");
        assert_eq!(
            Transform::Fullwidth.apply("juergen").unwrap(),
            "\u{ff4a}\u{ff55}\u{ff45}\u{ff52}\u{ff47}\u{ff45}\u{ff4e}"
        );
        assert_eq!(Transform::Nfkc.apply("\u{ff4a}").unwrap(), "j");
        assert_eq!(Transform::Lower.apply("\u{dc}").unwrap(), "\u{fc}");
        let e = Template::compile("${alice.local|shout}", &s).unwrap_err();
        assert!(e.message.contains("unknown transform |shout"), "{}", e.message);
        assert!(e.hint.unwrap().contains("upper, lower"));
    }

    #[test]
    fn raw_bytes_escapes() {
        let t = Template::compile("<b>a\\xC0\\xafb \\\\x ${A} \\n</b>", &scope()).unwrap();
        assert_eq!(t.render_bytes(&bindings()).unwrap(), b"<b>a\xC0\xAFb \\x a.lab \\n</b>".to_vec());
        assert_eq!(t.byte_escape_error(), None);
        let bad = Template::compile("ab\\xZ1", &scope()).unwrap();
        assert_eq!(bad.byte_escape_error().map(|(at, _)| at), Some(2));
    }

    #[test]
    fn missing_values_at_run_time_are_errors_not_panics() {
        let mut s = scope();
        s.insert("bob1", NameKind::Actor { connected: true });
        let t = Template::compile("${bob1.full}", &s).unwrap();
        assert!(t.render(&bindings()).unwrap_err().contains("bob1"));
    }

    #[test]
    fn placeholder_rendering_keeps_offsets() {
        let t = Template::compile("<a x='${alice.bare}'>\n${A}</a>", &scope()).unwrap();
        assert_eq!(t.render_placeholder(), "<a x='xxxxxxxxxxxxx'>\nxxxx</a>");
    }
}
