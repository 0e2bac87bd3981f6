//! Reading scenario files and checking them. Every problem is a `ConfigError` at the
//! file:line:col to fix, with a hint when there is something useful to say.

use super::model::{RawActor, RawPresence, RawRef, RawScenario, RawStep};
use super::pattern::{capture_uses, is_capture_name, CaptureUse};
use super::vars::{NameKind, Scope, Template, VarError};
use super::{AccountDecl, Action, ActorDecl, Expect, Scenario, Script, Step, DEFAULT_WITHIN};
use crate::results::SpecRef;
use crate::xml::{Element, XmlError, NS_CLIENT};
use crate::yaml::ConfigError;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest `within:` accepted; CATALOG's longest wait is 60 s.
const MAX_WITHIN: Duration = Duration::from_secs(600);

const DOCS: &str = "docs/scenario-format.md";

/// A scenario with its steps and the position of its id (for duplicate-id errors).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub scenario: Scenario,
    id_at: (u64, u64),
}

/// Load one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ConfigError> {
    load(path).map(|l| l.scenario)
}

pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(path, 0, 0, format!("cannot read: {e}"))
            .with_hint("check the path; relative paths are taken from the current directory")
    })?;
    parse(path, &text)
}

/// Load every `*.yaml` under the given files or directories (recursively, sorted by path).
/// Returns all scenarios that loaded and all errors (one per bad file), so `check` can list them all.
pub fn load_paths(paths: &[PathBuf]) -> (Vec<Scenario>, Vec<ConfigError>) {
    let (loaded, errors) = load_all(paths);
    (loaded.into_iter().map(|l| l.scenario).collect(), errors)
}

pub(crate) fn load_all(paths: &[PathBuf]) -> (Vec<Loaded>, Vec<ConfigError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_yaml(p, &mut files, &mut errors);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            errors.push(
                ConfigError::new(p, 0, 0, "no such file or directory")
                    .with_hint("give scenario files or folders, e.g. `scenarios/`"),
            );
        }
    }
    files.sort();
    files.dedup();
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut seen: BTreeMap<String, (PathBuf, u64)> = BTreeMap::new();
    for f in files {
        match load(&f) {
            Ok(l) => {
                if let Some((other, line)) = seen.get(&l.scenario.id) {
                    let (line_here, col) = l.id_at;
                    errors.push(
                        ConfigError::new(&f, line_here, col, format!("duplicate id '{}'", l.scenario.id)).with_hint(
                            format!("{}:{line} already uses it; ids are unique across all scenarios", other.display()),
                        ),
                    );
                } else {
                    seen.insert(l.scenario.id.clone(), (f.clone(), l.id_at.0));
                    loaded.push(l);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (loaded, errors)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<ConfigError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(ConfigError::new(dir, 0, 0, format!("cannot read the folder: {e}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_yaml(&path, files, errors);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
}

/// Parse and check scenario text that came from `path` (whose file name must match the id).
pub(crate) fn parse(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let raw: RawScenario = crate::yaml::parse(path, text).map_err(explain_yaml_error)?;
    Checker { path, text }.check(raw)
}

/// Make the YAML reader's messages read well and add what to do about them.
fn explain_yaml_error(mut e: ConfigError) -> ConfigError {
    let m = e.message.clone();
    let hint = if m.contains("unknown variant") && m.contains("send") {
        Some("steps are `send`, `expect`, `connect` and `disconnect`".to_string())
    } else if m.contains("unknown variant") && m.contains("MUST") {
        Some("levels are written in capitals: MUST, SHOULD or MAY".to_string())
    } else if m.contains("unknown field") || m.contains("missing field") {
        Some(format!("{DOCS} lists every key"))
    } else if m.contains("duplicate mapping key") {
        e.message = m.split(", set DuplicateKeyPolicy").next().unwrap_or(&m).to_string();
        Some("a key may appear only once in a mapping (names of accounts and actors must be unique)".to_string())
    } else if m.contains("RawPresence") {
        e.message = "presence must be true, false or a <presence/> stanza".into();
        None
    } else if m.contains("end of mapping after enum variant") {
        Some("each step is its own list item: start the next one with `- `".to_string())
    } else {
        None
    };
    e.hint = e.hint.or(hint);
    e
}

/// Names in scenarios: a letter, then letters, digits, `_` or `-`.
fn is_name(s: &str) -> bool {
    is_capture_name(s)
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn err(&self, loc: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, loc, message)
    }

    /// An error at byte `offset` inside the scalar `value`, which the file has at `loc`.
    fn err_in(&self, loc: Location, value: &str, offset: usize, message: impl Into<String>) -> ConfigError {
        let mut offset = offset.min(value.len());
        while !value.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &value[..offset];
        let lines_before = before.matches('\n').count() as u64;
        let col_in_line = before.rsplit('\n').next().unwrap_or("").chars().count() as u64;
        // A quoted scalar's position is its opening quote; a block scalar's is its first character.
        let quoted = self
            .text
            .lines()
            .nth(loc.line().saturating_sub(1) as usize)
            .and_then(|l| l.chars().nth(loc.column().saturating_sub(1) as usize))
            .is_some_and(|c| c == '\'' || c == '"');
        let column = loc.column() + col_in_line + u64::from(quoted && lines_before == 0);
        ConfigError::new(self.path, loc.line() + lines_before, column, message)
    }

    fn var_err(&self, at: &Spanned<String>, e: VarError) -> ConfigError {
        let err = self.err_in(at.referenced, &at.value, e.offset, e.message);
        match e.hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }

    fn check(&self, raw: RawScenario) -> Result<Loaded, ConfigError> {
        let id = raw.id.value.trim().to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
            return Err(self
                .err(raw.id.referenced, format!("id {id:?} must be letters, digits, '-', '_' or '.'"))
                .with_hint("ids name files and report rows, e.g. `msg-chat-remote-bare`"));
        }
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if id != stem {
            return Err(self
                .err(raw.id.referenced, format!("id '{id}' does not match the file name '{stem}.yaml'"))
                .with_hint(format!("rename the file to {id}.yaml or change the id to {stem}")));
        }
        let title = raw.title.value.trim().to_string();
        if title.is_empty() {
            return Err(self.err(raw.title.referenced, "title is empty").with_hint("say in one line what is checked"));
        }
        let catalog = raw.catalog.map(|c| c.value.trim().to_string()).filter(|c| !c.is_empty());

        let mut scope = Scope::default();
        let roles = self.check_roles(&raw.roles, &mut scope)?;
        let mut accounts = Vec::new();
        for (name, acc) in &raw.accounts.0 {
            self.check_new_name(name, &scope, "account")?;
            let role = self.check_role_ref(&acc.server, &roles)?;
            scope.insert(&name.value, NameKind::Account);
            accounts.push(AccountDecl { name: name.value.clone(), role });
        }
        let actors = self.check_actors(&raw.actors, &roles, &mut accounts, &mut scope)?;
        let steps = self.check_steps(&raw.steps, &actors, scope)?;
        let script = Script { catalog, actors, steps };
        let scenario = Scenario { id, title, file: self.path.to_path_buf(), roles, accounts, script };
        Ok(Loaded { scenario, id_at: (raw.id.referenced.line(), raw.id.referenced.column()) })
    }

    fn check_roles(&self, raw: &Spanned<Vec<Spanned<String>>>, scope: &mut Scope) -> Result<Vec<String>, ConfigError> {
        if raw.value.is_empty() {
            return Err(self.err(raw.referenced, "roles is empty").with_hint("e.g. `roles: [A, B]`"));
        }
        let mut roles = Vec::new();
        for r in &raw.value {
            self.check_new_name(r, scope, "role")?;
            scope.insert(&r.value, NameKind::Role);
            roles.push(r.value.clone());
        }
        Ok(roles)
    }

    /// A new name must be well-formed and not already name something else (variables would clash).
    fn check_new_name(&self, name: &Spanned<String>, scope: &Scope, what: &str) -> Result<(), ConfigError> {
        if !is_name(&name.value) {
            return Err(self.err(
                name.referenced,
                format!("{what} name {:?} must start with a letter, then letters, digits, '_' or '-'", name.value),
            ));
        }
        if scope.get(&name.value).is_some() {
            return Err(self
                .err(name.referenced, format!("{what} name '{}' is already used in this scenario", name.value))
                .with_hint("roles, accounts, actors and captures share one namespace (they are all ${…} variables)"));
        }
        Ok(())
    }

    fn check_role_ref(&self, role: &Spanned<String>, roles: &[String]) -> Result<String, ConfigError> {
        if roles.contains(&role.value) {
            Ok(role.value.clone())
        } else {
            Err(self
                .err(role.referenced, format!("unknown role '{}'", role.value))
                .with_hint(format!("roles of this scenario: {}", roles.join(", "))))
        }
    }

    fn check_actors(
        &self,
        raw: &Spanned<super::model::Entries<RawActor>>,
        roles: &[String],
        accounts: &mut Vec<AccountDecl>,
        scope: &mut Scope,
    ) -> Result<Vec<ActorDecl>, ConfigError> {
        if raw.value.0.is_empty() {
            return Err(self
                .err(raw.referenced, "no actors")
                .with_hint("declare at least one, e.g. `alice1: {account: alice, resource: r1}`"));
        }
        let mut actors = Vec::new();
        for (name, a) in &raw.value.0 {
            self.check_new_name(name, scope, "actor")?;
            let account = self.check_actor_account(a, roles, accounts, scope)?;
            let resource = match &a.resource {
                None => None,
                Some(r) => {
                    let res = r.value.clone();
                    if let Err(e) = crate::jid::Jid::new(Some("user"), "example.lab", Some(&res)) {
                        return Err(
                            self.err(r.referenced, format!("resource {res:?} is not a valid resourcepart: {e}"))
                        );
                    }
                    Some(res)
                }
            };
            let connect_at_start = a.connect_at_start.unwrap_or(true);
            scope.insert(&name.value, NameKind::Actor { connected: connect_at_start });
            actors.push(ActorDecl {
                name: name.value.clone(),
                account,
                resource,
                roster: a.roster.unwrap_or(true),
                presence: None,
                connect_at_start,
            });
        }
        // Presence stanzas may name any actor that is connected at start, so check them last.
        for (decl, (_, a)) in actors.iter_mut().zip(&raw.value.0) {
            decl.presence = match &a.presence {
                None => Some(default_presence()),
                Some(p) => match &p.value {
                    RawPresence::Flag(true) => Some(default_presence()),
                    RawPresence::Flag(false) => None,
                    RawPresence::Xml(xml) => {
                        let at = Spanned::new(xml.clone(), p.referenced, p.defined);
                        let (t, el) = self.check_xml(&at, scope)?;
                        if el.name != "presence" || el.ns != NS_CLIENT {
                            return Err(self
                                .err(p.referenced, format!("presence must be a <presence/> stanza, not <{}>", el.name))
                                .with_hint("e.g. presence: \"<presence><priority>5</priority></presence>\""));
                        }
                        Some(t)
                    }
                },
            };
        }
        Ok(actors)
    }

    /// The actor's account, declaring it from the actor's `server` when `accounts:` does not.
    fn check_actor_account(
        &self,
        a: &RawActor,
        roles: &[String],
        accounts: &mut Vec<AccountDecl>,
        scope: &mut Scope,
    ) -> Result<String, ConfigError> {
        let name = &a.account;
        let server = match &a.server {
            Some(s) => Some(self.check_role_ref(s, roles)?),
            None => None,
        };
        if let Some(decl) = accounts.iter().find(|d| d.name == name.value) {
            if let (Some(s), Some(role)) = (&a.server, &server) {
                if *role != decl.role {
                    return Err(
                        self.err(s.referenced, format!("account {} is on server {}, not {role}", decl.name, decl.role))
                    );
                }
            }
            return Ok(decl.name.clone());
        }
        match server {
            Some(role) => {
                self.check_new_name(name, scope, "account")?;
                scope.insert(&name.value, NameKind::Account);
                accounts.push(AccountDecl { name: name.value.clone(), role });
                Ok(name.value.clone())
            }
            None => {
                let known: Vec<&str> = accounts.iter().map(|d| d.name.as_str()).collect();
                Err(self.err(name.referenced, format!("unknown account '{}'", name.value)).with_hint(format!(
                    "declare it under `accounts:` (e.g. `{}: {{server: A}}`) or give the actor a `server:`; accounts: {}",
                    name.value,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )))
            }
        }
    }

    fn check_steps(
        &self,
        raw: &Spanned<Vec<Spanned<RawStep>>>,
        actors: &[ActorDecl],
        mut scope: Scope,
    ) -> Result<Vec<Step>, ConfigError> {
        if raw.value.is_empty() {
            return Err(self.err(raw.referenced, "no steps").with_hint(format!("{DOCS} describes the step types")));
        }
        // Which actors are connected at each point, and where each went offline (for messages).
        let mut online: BTreeSet<String> =
            actors.iter().filter(|a| a.connect_at_start).map(|a| a.name.clone()).collect();
        let mut offline_since: BTreeMap<String, u64> = BTreeMap::new();
        let mut steps = Vec::new();
        for s in &raw.value {
            let line = s.referenced.line();
            let action = match &s.value {
                RawStep::Send(send) => {
                    let actor = self.check_actor_ref(&send.actor, actors)?;
                    self.check_online(&send.actor, &online, &offline_since)?;
                    let (xml, _) = self.check_xml(&send.xml, &scope)?;
                    Action::Send { actor, xml }
                }
                RawStep::Expect(exp) => {
                    let actor = self.check_actor_ref(&exp.to, actors)?;
                    self.check_online(&exp.to, &online, &offline_since)?;
                    let (pattern, el) = self.check_xml(&exp.xml, &scope)?;
                    self.check_captures(&exp.xml, &el, &mut scope)?;
                    let within = match &exp.within {
                        Some(w) => self.check_duration(w)?,
                        None => DEFAULT_WITHIN,
                    };
                    let spec = exp.spec.as_ref().map(|r| self.check_ref(r)).transpose()?;
                    Action::Expect(Expect { actor, pattern, within, spec })
                }
                RawStep::Connect(c) => {
                    let actor = self.check_actor_ref(&c.actor, actors)?;
                    if online.contains(&actor) {
                        return Err(self
                            .err(c.actor.referenced, format!("{actor} is already connected at this step"))
                            .with_hint("disconnect it first, or give it `connect_at_start: false`"));
                    }
                    online.insert(actor.clone());
                    scope.insert(&actor, NameKind::Actor { connected: true });
                    Action::Connect { actor }
                }
                RawStep::Disconnect(d) => {
                    let actor = self.check_actor_ref(&d.actor, actors)?;
                    self.check_online(&d.actor, &online, &offline_since)?;
                    online.remove(&actor);
                    offline_since.insert(actor.clone(), line);
                    Action::Disconnect { actor }
                }
            };
            steps.push(Step { line: line as usize, action });
        }
        Ok(steps)
    }

    fn check_actor_ref(&self, name: &Spanned<String>, actors: &[ActorDecl]) -> Result<String, ConfigError> {
        if actors.iter().any(|a| a.name == name.value) {
            return Ok(name.value.clone());
        }
        let known: Vec<&str> = actors.iter().map(|a| a.name.as_str()).collect();
        Err(self
            .err(name.referenced, format!("unknown actor '{}'", name.value))
            .with_hint(format!("actors of this scenario: {}", known.join(", "))))
    }

    fn check_online(
        &self,
        name: &Spanned<String>,
        online: &BTreeSet<String>,
        offline_since: &BTreeMap<String, u64>,
    ) -> Result<(), ConfigError> {
        if online.contains(name.value.as_str()) {
            return Ok(());
        }
        let hint = match offline_since.get(name.value.as_str()) {
            Some(line) => format!("it was disconnected at line {line}; add a `connect` step before this one"),
            None => {
                format!("it has `connect_at_start: false`; add `- connect: {{actor: {}}}` before this step", name.value)
            }
        };
        Err(self.err(name.referenced, format!("{} is not connected at this step", name.value)).with_hint(hint))
    }

    /// Compile the template and check that it is one well-formed XML element.
    fn check_xml(&self, xml: &Spanned<String>, scope: &Scope) -> Result<(Template, Element), ConfigError> {
        let template = Template::compile(&xml.value, scope).map_err(|e| self.var_err(xml, e))?;
        let rendered = template.render_placeholder();
        let element = parse_stanza(&rendered).map_err(|(offset, e)| {
            let what = match e {
                XmlError::NotWellFormed { message, .. } => format!("the XML is not well-formed: {message}"),
                XmlError::Restricted { what, .. } => format!("the XML uses {what}, which RFC 6120 §11.1 forbids"),
                other => format!("the XML does not parse: {other}"),
            };
            self.err_in(xml.referenced, &xml.value, offset, what)
                .with_hint("write one element; quote attribute values; escape & and < in text as &amp; and &lt;")
        })?;
        Ok((template, element))
    }

    /// Captures are defined by `{=name}`; `{name}` must refer to one defined before it.
    fn check_captures(&self, xml: &Spanned<String>, pattern: &Element, scope: &mut Scope) -> Result<(), ConfigError> {
        for u in capture_uses(pattern) {
            match u {
                CaptureUse::Define(name) => match scope.get(&name) {
                    None | Some(NameKind::Capture) => scope.insert(&name, NameKind::Capture),
                    Some(_) => {
                        let offset = xml.value.find(&format!("{{={name}}}")).unwrap_or(0);
                        return Err(self
                            .err_in(
                                xml.referenced,
                                &xml.value,
                                offset,
                                format!("capture name '{name}' is already used"),
                            )
                            .with_hint("roles, accounts, actors and captures share one namespace; pick another name"));
                    }
                },
                CaptureUse::Refer(name) => {
                    if scope.get(&name) != Some(NameKind::Capture) {
                        let offset = xml.value.find(&format!("{{{name}}}")).unwrap_or(0);
                        return Err(self
                            .err_in(
                                xml.referenced,
                                &xml.value,
                                offset,
                                format!("{{{name}}} refers to no earlier capture"),
                            )
                            .with_hint(format!(
                                "capture a value first with {{={name}}} in an earlier pattern; {{*}} accepts any value"
                            )));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_duration(&self, w: &Spanned<String>) -> Result<Duration, ConfigError> {
        let text = w.value.trim();
        let hint = "write a number and a unit, e.g. 500ms, 5s, 1m";
        let d = humantime::parse_duration(text)
            .map_err(|e| self.err(w.referenced, format!("bad duration {text:?}: {e}")).with_hint(hint))?;
        if d.is_zero() || d > MAX_WITHIN {
            return Err(self
                .err(w.referenced, format!("duration {text:?} is out of range"))
                .with_hint("waits are between 1ms and 10m (CATALOG §0.4: 5s local, 20s first s2s, 60s bounces)"));
        }
        Ok(d)
    }

    fn check_ref(&self, r: &Spanned<RawRef>) -> Result<SpecRef, ConfigError> {
        let v = &r.value;
        if v.spec.trim().is_empty() || v.section.trim().is_empty() {
            return Err(self
                .err(r.referenced, "ref needs a spec and a section")
                .with_hint("e.g. ref: {spec: RFC6120, section: \"8.1.2.1\", level: MUST, quote: \"…\"}"));
        }
        Ok(SpecRef {
            spec: v.spec.trim().to_string(),
            section: v.section.trim().to_string(),
            level: v.level,
            quote: v.quote.as_ref().map(|q| q.trim().to_string()).filter(|q| !q.is_empty()),
        })
    }
}

fn default_presence() -> Template {
    Template::literal("<presence/>")
}

/// Parse a stanza written in a scenario (surrounding whitespace allowed). On failure returns
/// the byte offset of the problem in `xml`.
pub fn parse_stanza(xml: &str) -> Result<Element, (usize, XmlError)> {
    let lead = xml.len() - xml.trim_start().len();
    crate::xml::parse_fragment(xml.trim(), NS_CLIENT).map_err(|e| {
        let offset = match &e {
            XmlError::NotWellFormed { offset, .. } | XmlError::Restricted { offset, .. } => *offset as usize,
            _ => 0,
        };
        (lead + offset, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Level;

    const GOOD: &str = r#"id: msg-test
title: A chat message arrives
catalog: D01
roles: [A, B]
accounts:
  alice: {server: A}
  bob: {server: B}
actors:
  alice1: {account: alice, resource: r1}
  bob1: {account: bob, resource: r1, presence: "<presence><priority>5</priority></presence>"}
  bob2: {account: bob, roster: false, presence: false, connect_at_start: false}
  carol1: {account: carol, server: B}
steps:
  - send:
      as: alice1
      xml: |
        <message id='m1' to='${bob.bare}' type='chat'><body>hi ü 🎸</body></message>
  - expect:
      to: bob1
      within: 20s
      xml: <message from='${alice1.full}' to='${bob.bare}' id='{=mid}' type='chat'><body>hi ü 🎸</body></message>
      ref: {spec: RFC6120, section: "8.1.2.1", level: MUST, quote: "the server MUST add a 'from' attribute"}
  - connect: {actor: bob2}
  - send: {as: bob2, xml: "<message to='${alice1.full}' id='${mid}'/>"}
  - expect: {to: alice1, xml: "<message from='${bob2.full}' id='{mid}'/>", ref: {spec: RFC6120, section: "8.1.3", level: SHOULD}}
  - disconnect: {actor: bob2}
"#;

    fn parse_as(name: &str, text: &str) -> Result<Loaded, ConfigError> {
        parse(Path::new(&format!("scenarios/x/{name}.yaml")), text)
    }

    /// Replace `from` by `to` in GOOD (which must contain it) and return the error.
    fn error_with(from: &str, to: &str) -> ConfigError {
        assert!(GOOD.contains(from), "test bug: {from:?} is not in GOOD");
        match parse_as("msg-test", &GOOD.replacen(from, to, 1)) {
            Ok(_) => panic!("{from:?} → {to:?} should not load"),
            Err(e) => e,
        }
    }

    fn at(e: &ConfigError) -> (u64, u64) {
        (e.line, e.column)
    }

    #[test]
    fn good_file_loads_completely() {
        let l = parse_as("msg-test", GOOD).unwrap();
        let s = &l.scenario;
        assert_eq!(s.id, "msg-test");
        assert_eq!(s.roles, ["A", "B"]);
        let accounts: Vec<(&str, &str)> = s.accounts.iter().map(|a| (a.name.as_str(), a.role.as_str())).collect();
        assert_eq!(accounts, [("alice", "A"), ("bob", "B"), ("carol", "B")]);
        let sc = &l.scenario.script;
        assert_eq!(sc.catalog.as_deref(), Some("D01"));
        let names: Vec<&str> = sc.actors.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice1", "bob1", "bob2", "carol1"]);
        let bob2 = sc.actor("bob2").unwrap();
        assert!(!bob2.roster && bob2.presence.is_none() && !bob2.connect_at_start && bob2.resource.is_none());
        let alice1 = sc.actor("alice1").unwrap();
        assert!(alice1.roster && alice1.connect_at_start);
        assert_eq!(alice1.presence.as_ref().unwrap().source(), "<presence/>");
        assert_eq!(
            sc.actor("bob1").unwrap().presence.as_ref().unwrap().source(),
            "<presence><priority>5</priority></presence>"
        );

        let lines: Vec<usize> = sc.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [14, 18, 23, 24, 25, 26]);
        let kinds: Vec<&str> = sc.steps.iter().map(|s| s.kind()).collect();
        assert_eq!(kinds, ["send", "expect", "connect", "send", "expect", "disconnect"]);
        let Action::Expect(e) = &sc.steps[1].action else { panic!("not an expect") };
        assert_eq!(e.actor, "bob1");
        assert_eq!(e.within, Duration::from_secs(20));
        let spec = e.spec.as_ref().unwrap();
        assert_eq!((spec.spec.as_str(), spec.section.as_str(), spec.level), ("RFC6120", "8.1.2.1", Level::MUST));
        let Action::Expect(e) = &sc.steps[4].action else { panic!("not an expect") };
        assert_eq!(e.within, DEFAULT_WITHIN);
        assert_eq!(e.spec.as_ref().unwrap().quote, None);
        assert_eq!(
            sc.steps[0].description(),
            "alice1 sends <message id='m1' to='${bob.bare}' type='chat'><body>hi ü 🎸</body></message>"
        );
        assert_eq!(sc.steps[1].description().split(" within ").nth(1), Some("20s"));
    }

    #[test]
    fn id_must_match_the_file_name() {
        let e = parse_as("other", GOOD).unwrap_err();
        assert_eq!(at(&e), (1, 5));
        assert!(e.message.contains("does not match the file name 'other.yaml'"), "{e}");
    }

    #[test]
    fn yaml_errors_have_positions_and_hints() {
        let e = error_with("  - connect: {actor: bob2}", "  - conect: {actor: bob2}");
        assert_eq!(at(&e), (23, 5));
        assert!(e.message.starts_with("unknown variant `conect`"), "{}", e.message);
        assert!(e.hint.unwrap().contains("`disconnect`"));

        let e = error_with("within: 20s", "within: 20s\n      timeout: 3s");
        assert_eq!(at(&e), (21, 7));
        assert!(e.message.contains("unknown field `timeout`"), "{e}");

        let e = error_with("  bob: {server: B}", "  bob: {server: B}\n  bob: {server: A}");
        assert_eq!(at(&e), (8, 3));
        assert_eq!(e.message, "duplicate mapping key: bob");

        let e = error_with("level: MUST", "level: must");
        assert!(e.hint.unwrap().contains("capitals"), "{}", e.message);
    }

    #[test]
    fn unknown_names_are_reported_where_they_are_written() {
        let e = error_with("to: bob1", "to: bob9");
        assert_eq!((at(&e), e.message.as_str()), ((19, 11), "unknown actor 'bob9'"));
        assert!(e.hint.unwrap().contains("alice1, bob1, bob2, carol1"));

        let e = error_with("alice1: {account: alice,", "alice1: {account: alicia,");
        assert_eq!((at(&e), e.message.as_str()), ((9, 21), "unknown account 'alicia'"));

        let e = error_with("bob: {server: B}", "bob: {server: C}");
        assert_eq!((at(&e), e.message.as_str()), ((7, 17), "unknown role 'C'"));

        let e = error_with("carol1: {account: carol, server: B}", "carol1: {account: bob, server: A}");
        assert!(e.message.contains("account bob is on server B, not A"), "{e}");

        let e = error_with("  bob2: {", "  alice: {");
        assert!(e.message.contains("'alice' is already used"), "{e}");
    }

    #[test]
    fn unknown_variables_point_into_the_xml() {
        // Block scalar: the XML starts on line 17, column 9.
        let e = error_with("to='${bob.bare}' type='chat'><body>", "to='${bobby.bare}' type='chat'><body>");
        assert_eq!(at(&e), (17, 30));
        assert!(e.message.contains("unknown variable ${bobby.bare}"), "{e}");
        // Quoted flow scalar: the position is the quote, the variable one further.
        let e = error_with("<message to='${alice1.full}' id='${mid}'/>", "<message to='${alice1.fool}'/>");
        assert_eq!(at(&e), (24, 41));
        assert!(e.message.contains("no part 'fool'"), "{e}");
        // Plain scalar.
        let e = error_with("xml: <message from='${alice1.full}'", "xml: <message from='${alice2.full}'");
        assert_eq!(at(&e), (21, 27));
    }

    #[test]
    fn actor_jids_are_known_only_after_connecting() {
        let e = error_with("  - connect: {actor: bob2}\n", "");
        assert_eq!(at(&e), (23, 16));
        assert!(e.message.contains("bob2 is not connected"), "{e}");
        assert!(e.hint.unwrap().contains("connect_at_start: false"));

        let e = error_with("  - connect: {actor: bob2}\n", "  - send: {as: alice1, xml: '<m x=\"${bob2.full}\"/>'}\n");
        assert!(e.message.contains("used before actor bob2 has connected"), "{e}");

        let e = error_with(
            "  - disconnect: {actor: bob2}\n",
            "  - disconnect: {actor: bob2}\n  - send: {as: bob2, xml: <a/>}\n",
        );
        assert_eq!(at(&e), (27, 16));
        assert!(e.hint.unwrap().contains("disconnected at line 26"));

        let e = error_with("  - connect: {actor: bob2}\n", "  - connect: {actor: bob1}\n");
        assert!(e.message.contains("bob1 is already connected"), "{e}");
    }

    #[test]
    fn xml_that_does_not_parse_is_a_load_error() {
        let e = error_with("<body>hi ü 🎸</body></message>\n  - expect", "<body>hi ü 🎸</message>\n  - expect");
        assert_eq!(e.line, 17);
        assert!(e.message.starts_with("the XML is not well-formed"), "{e}");
        let e = error_with("presence: \"<presence><priority>5</priority></presence>\"", "presence: \"<message/>\"");
        assert!(e.message.contains("must be a <presence/> stanza"), "{e}");
        let e = error_with("presence: false", "presence: 3");
        assert_eq!(e.message, "presence must be true, false or a <presence/> stanza");
    }

    #[test]
    fn captures_must_be_defined_before_use() {
        let e = error_with("id='{=mid}'", "id='{*}'");
        assert!(e.message.contains("unknown variable ${mid}"), "{e}");
        let text = GOOD.replacen("id='{=mid}'", "id='{mid2}'", 1);
        let e = parse_as("msg-test", &text).unwrap_err();
        assert!(e.message.contains("{mid2} refers to no earlier capture"), "{e}");
        assert_eq!(e.line, 21);
        let text = GOOD.replacen("id='{=mid}'", "id='{=bob}'", 1);
        let e = parse_as("msg-test", &text).unwrap_err();
        assert!(e.message.contains("capture name 'bob' is already used"), "{e}");
    }

    #[test]
    fn durations_and_refs_are_checked() {
        let e = error_with("within: 20s", "within: 20");
        assert_eq!(at(&e), (20, 15));
        assert!(e.message.starts_with("bad duration \"20\""), "{e}");
        assert!(e.hint.unwrap().contains("5s"));
        let e = error_with("within: 20s", "within: 0s");
        assert!(e.message.contains("out of range"), "{e}");
        let e = error_with("section: \"8.1.2.1\"", "section: \"\"");
        assert!(e.message.contains("ref needs a spec and a section"), "{e}");
    }

    #[test]
    fn empty_sections_are_errors() {
        let e = parse_as("t", "id: t\ntitle: x\nroles: []\nactors: {}\nsteps: []\n").unwrap_err();
        assert_eq!((at(&e), e.message.as_str()), ((3, 8), "roles is empty"));
        let e = parse_as("t", "id: t\ntitle: x\nroles: [A]\nactors: {}\nsteps: []\n").unwrap_err();
        assert_eq!(e.message, "no actors");
        let e = parse_as("t", "id: t\ntitle: x\nroles: [A]\nactors: {a1: {account: a, server: A}}\nsteps: []\n")
            .unwrap_err();
        assert_eq!((at(&e), e.message.as_str()), ((5, 8), "no steps"));
    }

    #[test]
    fn load_paths_collects_every_error_and_duplicate_ids() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("msg-test.yaml"), GOOD).unwrap();
        std::fs::write(b.join("msg-test.yaml"), GOOD).unwrap();
        std::fs::write(b.join("broken.yaml"), "id: broken\n").unwrap();
        std::fs::write(b.join("notes.txt"), "not a scenario").unwrap();
        let (ok, errors) = load_paths(&[dir.path().to_path_buf(), dir.path().join("missing")]);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].file, a.join("msg-test.yaml"));
        assert_eq!(errors.len(), 3, "{errors:?}");
        let dup = errors.iter().find(|e| e.message.contains("duplicate id")).unwrap();
        assert_eq!((dup.file.clone(), dup.line, dup.column), (b.join("msg-test.yaml"), 1, 5));
        assert!(errors.iter().any(|e| e.file == b.join("broken.yaml") && e.message.contains("missing field")));
        assert!(errors.iter().any(|e| e.message == "no such file or directory"));
    }

    #[test]
    fn the_seed_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let (loaded, errors) = load_all(&[dir]);
        assert!(errors.is_empty(), "{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
        let ids: Vec<&str> = loaded.iter().map(|l| l.scenario.id.as_str()).collect();
        for id in ["msg-chat-remote-bare", "roster-remote-add", "presence-show-status-priority"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        for l in &loaded {
            for step in &l.scenario.script.steps {
                if let Action::Expect(e) = &step.action {
                    assert!(e.spec.is_some(), "{}:{} has no ref", l.scenario.file.display(), step.line);
                }
            }
        }
    }
}
