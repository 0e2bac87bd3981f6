//! Reading scenario files and checking them. Every problem is a `ConfigError` at the
//! file:line:col to fix, with a hint when there is something useful to say.
//!
//! This file checks a scenario's head (id, roles, accounts, actors, gates) and holds the shared
//! checks of values (XML, patterns, durations, refs); `steps` checks the steps and expands fixtures.

use super::model::{RawActor, RawFixture, RawGate, RawPresence, RawRef, RawScenario};
use super::pattern::{capture_uses, check_instructions, is_capture_name, CaptureUse, NS_PATTERN};
use super::steps::{Flow, Frame};
use super::vars::{NameKind, Samples, Scope, Template, VarError, SAMPLES};
use super::{AccountDecl, ActorDecl, Gate, GateKind, GateTarget, Scenario, Script, Within, BOUNCE, LOCAL, S2S};
use crate::results::SpecRef;
use crate::xml::{Element, XmlError, NS_CLIENT};
use crate::yaml::ConfigError;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest `within:` accepted; CATALOG's longest wait is 60 s.
const MAX_WITHIN: Duration = Duration::from_secs(600);

pub(super) const DOCS: &str = "docs/scenario-format.md";

/// The folder of reusable step lists, beside the scenarios: not scenarios itself.
pub const FIXTURES_DIR: &str = "_fixtures";

/// Where sample strings live, relative to a folder above the scenario.
pub const STRINGS_FILE: &str = "fixtures/strings.yaml";

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
    parse(path, &read(path)?)
}

pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(path, 0, 0, format!("cannot read: {e}"))
            .with_hint("check the path; relative paths are taken from the current directory")
    })
}

/// Load every `*.yaml` under the given files or directories (recursively, sorted by path).
/// Returns all scenarios that loaded and all errors (one per bad file), so `check` can list them all.
/// Files in `_fixtures` folders are fixtures, not scenarios: they are checked on their own too.
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
    let (fixtures, files): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|f| is_fixture_file(f));
    for f in fixtures {
        if let Err(e) = super::steps::check_fixture_file(&f) {
            errors.push(e);
        }
    }
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

/// Is this file in a `_fixtures` folder?
fn is_fixture_file(path: &Path) -> bool {
    path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == FIXTURES_DIR)
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
pub(super) fn explain_yaml_error(mut e: ConfigError) -> ConfigError {
    let m = e.message.clone();
    let hint = if m.contains("unknown variant") && m.contains("send") {
        Some(
            "steps are send, send_raw, expect, expect_none, expect_unordered, expect_sequence, iq, expect_closed, \
             expect_features, consistent, use, connect, disconnect and register"
                .to_string(),
        )
    } else if m.contains("unknown variant") && m.contains("marker") {
        Some("barrier: {marker: <actor>} or barrier: ping".to_string())
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
    } else if m.contains("OneOrMany") {
        e.message = "`to` must be an actor or a list of actors".into();
        Some("e.g. to: bob1 or to: [bob1, bob2]".to_string())
    } else if m.contains("end of mapping after enum variant") {
        Some("each step is its own list item: start the next one with `- `".to_string())
    } else {
        None
    };
    e.hint = e.hint.or(hint);
    e
}

/// A defined condition's element name, e.g. `not-well-formed`.
pub(super) fn is_condition(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

/// Names in scenarios: a letter, then letters, digits, `_` or `-`.
pub(super) fn is_name(s: &str) -> bool {
    is_capture_name(s)
}

/// Checks of one file's values, reporting at positions in that file.
#[derive(Clone, Copy)]
pub(super) struct Checker<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Checker<'_> {
    pub fn err(&self, loc: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, loc, message)
    }

    /// An error at byte `offset` inside the scalar `value`, which the file has at `loc`.
    pub fn err_in(&self, loc: Location, value: &str, offset: usize, message: impl Into<String>) -> ConfigError {
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

    pub fn var_err(&self, at: &Spanned<String>, e: VarError) -> ConfigError {
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
        let samples = load_samples(self.path, self.text)?;
        scope.set_samples(samples.clone());
        let roles = self.check_roles(&raw.roles, &mut scope)?;
        let mut accounts = Vec::new();
        for (name, acc) in &raw.accounts.0 {
            self.check_new_name(name, &scope, "account")?;
            let role = self.check_role_ref(&acc.server, &roles)?;
            scope.insert(&name.value, NameKind::Account);
            let localpart = match &acc.localpart {
                Some(lp) => Some(self.check_localpart(lp, &samples)?),
                None => None,
            };
            let create = acc.create.unwrap_or(true);
            accounts.push(AccountDecl {
                name: name.value.clone(),
                role,
                idn: acc.idn.unwrap_or(false),
                localpart,
                create,
            });
        }
        let mut actors = self.check_actors(&raw.actors, &roles, &mut accounts, &mut scope)?;
        // An account that is not created at case start cannot be logged in to at case start.
        for (decl, (name, _)) in actors.iter().zip(&raw.actors.value.0) {
            let not_created = accounts.iter().any(|a| a.name == decl.account && !a.create);
            if not_created && decl.connect_at_start {
                return Err(self
                    .err(
                        name.referenced,
                        format!("account {} is not created at case start (`create: false`)", decl.account),
                    )
                    .with_hint(format!(
                        "give {} `connect_at_start: false` and connect it after a `register` step",
                        name.value
                    )));
            }
        }
        actors.extend(self.check_peers(&raw.peers, &roles, &mut scope)?);
        let gates = match &raw.gate {
            Some(g) => self.check_gates(g, &roles, &accounts)?,
            None => Vec::new(),
        };
        if raw.steps.value.is_empty() {
            return Err(self
                .err(raw.steps.referenced, "no steps")
                .with_hint(format!("{DOCS} describes the step types")));
        }
        let mut flow = Flow::new(self.path, &actors, samples, false);
        let mut frame = Frame::scenario(*self, scope);
        flow.walk(&mut frame, &raw.steps.value)?;
        let steps = flow.steps;
        let script = Script { catalog, actors, steps, gates };
        let s2s_policy = match &raw.s2s_policy {
            None => None,
            Some(p) => Some(p.value.parse::<crate::servers::S2sPolicy>().map_err(|e| {
                self.err(p.referenced, e).with_hint("the profiles of CATALOG §0.7 (docs/scenario-format.md, \"Peers\")")
            })?),
        };
        let scenario = Scenario { id, title, file: self.path.to_path_buf(), roles, s2s_policy, accounts, script };
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
    pub fn check_new_name(&self, name: &Spanned<String>, scope: &Scope, what: &str) -> Result<(), ConfigError> {
        if !is_name(&name.value) {
            return Err(self.err(
                name.referenced,
                format!("{what} name {:?} must start with a letter, then letters, digits, '_' or '-'", name.value),
            ));
        }
        if name.value == SAMPLES {
            return Err(self
                .err(name.referenced, format!("{what} name '{SAMPLES}' is reserved"))
                .with_hint("${str.NAME} stands for the sample strings of fixtures/strings.yaml; pick another name"));
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
            // Any string, including ones the server should refuse (CATALOG F07): sent as written.
            let resource = match &a.resource {
                None => None,
                Some(r) => {
                    let res = self.samples_only(r, scope)?;
                    if res.is_empty() {
                        return Err(self
                            .err(r.referenced, "the resource is empty")
                            .with_hint("leave `resource` out to let the server choose one"));
                    }
                    Some(res)
                }
            };
            let lang = match &a.lang {
                None => None,
                Some(l) => {
                    let lang = l.value.trim();
                    let ok = !lang.is_empty() && lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                    if !ok {
                        return Err(self
                            .err(l.referenced, format!("{lang:?} is not a language tag"))
                            .with_hint("e.g. lang: de, lang: cs, lang: zh-Hant (RFC 5646)"));
                    }
                    Some(lang.to_string())
                }
            };
            let caps = match &a.caps {
                None => None,
                Some(c) => Some(self.check_caps(c)?),
            };
            let connect_at_start = a.connect_at_start.unwrap_or(true);
            scope.insert(&name.value, NameKind::Actor { connected: connect_at_start });
            if let Some(c) = &caps {
                scope.set_constant(&format!("{}.caps_ver", name.value), &c.ver);
                scope.set_constant(&format!("{}.caps_node", name.value), &c.node);
            }
            actors.push(ActorDecl {
                name: name.value.clone(),
                account,
                resource,
                roster: a.roster.unwrap_or(true),
                presence: None,
                connect_at_start,
                lang,
                caps,
                peer: None,
                direct_tls: a.direct_tls.unwrap_or(false),
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

    /// Peer actors (`peers:`): the harness as a remote server, named like actors.
    fn check_peers(
        &self,
        raw: &super::model::Entries<super::peer::RawPeer>,
        roles: &[String],
        scope: &mut Scope,
    ) -> Result<Vec<ActorDecl>, ConfigError> {
        let mut peers = Vec::new();
        for (name, p) in &raw.0 {
            self.check_new_name(name, scope, "peer")?;
            let connects_to = match &p.connects_to {
                Some(role) => Some(self.check_role_ref(role, roles)?),
                None => None,
            };
            let cert = match &p.cert {
                None => crate::ca::Fixture::Good,
                Some(c) => crate::ca::Fixture::from_name(&c.value).ok_or_else(|| {
                    let names: Vec<&str> = crate::ca::Fixture::ALL.iter().map(|f| f.name()).collect();
                    self.err(c.referenced, format!("unknown certificate fixture {:?}", c.value))
                        .with_hint(format!("the fixtures (docs/lab-ca.md): {}", names.join(", ")))
                })?,
            };
            let connect_at_start = p.connect_at_start.unwrap_or(true);
            scope.insert(&name.value, NameKind::Actor { connected: connect_at_start });
            peers.push(ActorDecl {
                name: name.value.clone(),
                connect_at_start,
                peer: Some(Box::new(super::peer::PeerDecl::from_raw(p, cert, connects_to))),
                ..ActorDecl::default()
            });
        }
        Ok(peers)
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
                accounts.push(AccountDecl {
                    name: name.value.clone(),
                    role,
                    idn: false,
                    localpart: None,
                    create: true,
                });
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

    /// A text in which only `${str.…}` sample strings may appear, with them substituted.
    fn samples_only(&self, text: &Spanned<String>, scope: &Scope) -> Result<String, ConfigError> {
        let mut samples = Scope::default();
        if let Some(s) = scope.samples() {
            samples.set_samples(s);
        }
        let t = Template::compile(&text.value, &samples).map_err(|e| self.var_err(text, e))?;
        t.render_raw(&super::vars::Bindings::default()).map_err(|e| self.err(text.referenced, e))
    }

    /// An account's `localpart:` template: sample strings substituted, `{tag}` required.
    fn check_localpart(&self, lp: &Spanned<String>, samples: &Arc<Samples>) -> Result<String, ConfigError> {
        let mut scope = Scope::default();
        scope.set_samples(samples.clone());
        let text = self.samples_only(lp, &scope)?;
        if !text.contains("{tag}") {
            return Err(self
                .err(lp.referenced, "the localpart has no {tag}: accounts must be fresh for every case")
                .with_hint("e.g. localpart: \"${str.jurgen_nfc}-{tag}\" ({tag} is the case's unique tag, digits)"));
        }
        if text.replace("{tag}", "").contains(['@', '/']) {
            return Err(self.err(lp.referenced, "a localpart cannot contain '@' or '/'"));
        }
        Ok(text)
    }

    /// An actor's `caps:`, with its verification string.
    fn check_caps(&self, c: &Spanned<super::model::RawCaps>) -> Result<super::Caps, ConfigError> {
        let mut features = Vec::new();
        for f in &c.value.features {
            features.push(f.value.trim().to_string());
        }
        for n in &c.value.notify {
            features.push(format!("{}+notify", n.value.trim()));
        }
        if let Some(empty) = c.value.features.iter().chain(&c.value.notify).find(|f| f.value.trim().is_empty()) {
            return Err(self.err(empty.referenced, "an empty feature"));
        }
        let node = c.value.node.as_ref().map_or(super::CAPS_NODE.to_string(), |n| n.value.trim().to_string());
        Ok(super::Caps::new(&node, features))
    }

    fn check_gates(
        &self,
        raw: &Spanned<Vec<Spanned<RawGate>>>,
        roles: &[String],
        accounts: &[AccountDecl],
    ) -> Result<Vec<Gate>, ConfigError> {
        let example = "e.g. gate: [{disco_feature: \"urn:xmpp:carbons:2\", on: A}]";
        let mut gates = Vec::new();
        for g in &raw.value {
            let at = g.referenced;
            let g = &g.value;
            let named = [
                (GateKind::DiscoFeature, &g.disco_feature),
                (GateKind::StreamFeature, &g.stream_feature),
                (GateKind::S2sFeature, &g.s2s_feature),
                (GateKind::Srv, &g.srv),
            ];
            let mut given = named.iter().filter_map(|(k, f)| f.as_ref().map(|f| (*k, f)));
            let (kind, feature) = match (given.next(), given.next()) {
                (Some(one), None) => one,
                _ => {
                    return Err(self
                        .err(at, "a gate names one thing: disco_feature, stream_feature, s2s_feature or srv")
                        .with_hint(example))
                }
            };
            if kind == GateKind::Srv && !SRV_GATES.contains(&feature.value.trim()) {
                return Err(self
                    .err(feature.referenced, format!("unknown SRV service {:?}", feature.value))
                    .with_hint(format!("one of: {}", SRV_GATES.join(", "))));
            }
            if matches!(kind, GateKind::S2sFeature | GateKind::Srv) {
                // Checked by a harness peer or DNS, not a login: no account needed, only a role.
                let on = &g.on;
                let role = self.check_role_ref(on, roles)?;
                let feature = feature.value.trim().to_string();
                gates.push(Gate { kind, feature, on: GateTarget::Role(role.clone()), role, account: String::new() });
                continue;
            }
            if feature.value.trim().is_empty() {
                return Err(self.err(feature.referenced, "the gate's feature is empty").with_hint(example));
            }
            let on = &g.on;
            let (target, role, account) = if roles.contains(&on.value) {
                let Some(account) = accounts.iter().find(|a| a.role == on.value && !a.idn && a.create) else {
                    return Err(self
                        .err(
                            on.referenced,
                            format!("no account of this scenario is on {} to check the gate with", on.value),
                        )
                        .with_hint(format!(
                            "a gate is checked by logging in with one of the scenario's accounts on that server; \
                             declare one, e.g. `accounts: {{dave: {{server: {}}}}}`",
                            on.value
                        )));
                };
                (GateTarget::Role(on.value.clone()), on.value.clone(), account.name.clone())
            } else if let Some(account) = accounts.iter().find(|a| a.name == on.value) {
                (GateTarget::Account(on.value.clone()), account.role.clone(), account.name.clone())
            } else {
                let accounts: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
                return Err(self.err(on.referenced, format!("unknown role or account '{}'", on.value)).with_hint(
                    format!("`on` names a role ({}) or an account ({})", roles.join(", "), accounts.join(", ")),
                ));
            };
            if kind == GateKind::StreamFeature && matches!(target, GateTarget::Account(_)) {
                return Err(self
                    .err(on.referenced, "stream features belong to a server: put a role in `on`")
                    .with_hint("e.g. {stream_feature: \"urn:xmpp:features:rosterver\", on: A}"));
            }
            gates.push(Gate { kind, feature: feature.value.trim().to_string(), on: target, role, account });
        }
        Ok(gates)
    }

    /// Compile the template and check that it is one well-formed XML element.
    pub fn check_xml(&self, xml: &Spanned<String>, scope: &Scope) -> Result<(Template, Element), ConfigError> {
        self.check_element(xml, scope, false)
    }

    /// Compile a pattern (the `pf` prefix is bound) and check its matching instructions and captures.
    pub fn check_pattern(&self, xml: &Spanned<String>, scope: &mut Scope) -> Result<(Template, Element), ConfigError> {
        let (template, element) = self.check_element(xml, scope, true)?;
        if let Err(message) = check_instructions(&element) {
            return Err(self
                .err(xml.referenced, message)
                .with_hint(format!("{DOCS}, \"Matching\", lists {{absent}}, pf:absent and pf:strict")));
        }
        self.check_captures(xml, &element, scope)?;
        Ok((template, element))
    }

    fn check_element(
        &self,
        xml: &Spanned<String>,
        scope: &Scope,
        pattern: bool,
    ) -> Result<(Template, Element), ConfigError> {
        let template = Template::compile(&xml.value, scope).map_err(|e| self.var_err(xml, e))?;
        let rendered = template.render_placeholder();
        let parsed = if pattern { parse_pattern(&rendered) } else { parse_stanza(&rendered) };
        let element = parsed.map_err(|(offset, e)| {
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

    /// Compile a text whose variables are substituted as is (`send_raw`'s data), with its
    /// `\xNN` byte escapes checked.
    pub fn check_raw(&self, data: &Spanned<String>, scope: &Scope) -> Result<Template, ConfigError> {
        let t = Template::compile(&data.value, scope).map_err(|e| self.var_err(data, e))?;
        if let Some((at, message)) = t.byte_escape_error() {
            return Err(self
                .err_in(data.referenced, &data.value, at, message)
                .with_hint("in send_raw data, \\xNN sends the byte NN and \\\\ a backslash; quote the YAML with '…'"));
        }
        Ok(t)
    }

    /// Captures are defined by `{=name}`; `{name}` must refer to one defined before it.
    fn check_captures(&self, xml: &Spanned<String>, pattern: &Element, scope: &mut Scope) -> Result<(), ConfigError> {
        for u in capture_uses(pattern) {
            match u {
                CaptureUse::Define(name) => match scope.get(&name) {
                    None | Some(NameKind::Capture) if name != SAMPLES => scope.insert(&name, NameKind::Capture),
                    _ => {
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

    /// `within:`: a duration or a CATALOG §0.4 name; absent → the case's default.
    pub fn check_within(&self, w: Option<&Spanned<String>>) -> Result<Within, ConfigError> {
        let Some(w) = w else { return Ok(Within::Default) };
        let text = w.value.trim();
        let named = match text {
            "local" => Some(LOCAL),
            "s2s" => Some(S2S),
            "bounce" => Some(BOUNCE),
            _ => None,
        };
        if let Some(d) = named {
            return Ok(Within::Fixed(d));
        }
        let hint = "write local (5s), s2s (20s), bounce (60s), or a number and a unit, e.g. 500ms, 5s, 1m";
        let d = humantime::parse_duration(text)
            .map_err(|e| self.err(w.referenced, format!("bad duration {text:?}: {e}")).with_hint(hint))?;
        if d.is_zero() || d > MAX_WITHIN {
            return Err(self
                .err(w.referenced, format!("duration {text:?} is out of range"))
                .with_hint("waits are between 1ms and 10m (CATALOG §0.4: 5s local, 20s first s2s, 60s bounces)"));
        }
        Ok(Within::Fixed(d))
    }

    pub fn check_ref(&self, r: Option<&Spanned<RawRef>>) -> Result<Option<SpecRef>, ConfigError> {
        let Some(r) = r else { return Ok(None) };
        let v = &r.value;
        if v.spec.trim().is_empty() || v.section.trim().is_empty() {
            return Err(self
                .err(r.referenced, "ref needs a spec and a section")
                .with_hint("e.g. ref: {spec: RFC6120, section: \"8.1.2.1\", level: MUST, quote: \"…\"}"));
        }
        Ok(Some(SpecRef {
            spec: v.spec.trim().to_string(),
            section: v.section.trim().to_string(),
            level: v.level,
            quote: v.quote.as_ref().map(|q| q.trim().to_string()).filter(|q| !q.is_empty()),
        }))
    }

    /// Check a fixture file's head; returns its name and parameters.
    pub fn check_fixture_head(&self, raw: &RawFixture) -> Result<(String, Vec<Spanned<String>>), ConfigError> {
        let name = raw.fixture.value.trim().to_string();
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if name != stem {
            return Err(self
                .err(raw.fixture.referenced, format!("fixture '{name}' does not match the file name '{stem}.yaml'"))
                .with_hint(format!("rename the file to {name}.yaml or the fixture to {stem}")));
        }
        if raw.title.value.trim().is_empty() {
            return Err(self.err(raw.title.referenced, "title is empty").with_hint("say in one line what it sets up"));
        }
        if raw.steps.value.is_empty() {
            return Err(self.err(raw.steps.referenced, "no steps"));
        }
        let params = raw.params.as_ref().map(|p| p.value.clone()).unwrap_or_default();
        let mut seen = Scope::default();
        for p in &params {
            self.check_new_name(p, &seen, "parameter")?;
            seen.insert(&p.value, NameKind::Account);
        }
        Ok((name, params))
    }
}

fn default_presence() -> Template {
    Template::literal("<presence/>")
}

/// The sample strings for a scenario at `path`: `fixtures/strings.yaml` in the nearest folder
/// above it that has one. Read only when the text uses `${str.…}`.
pub(super) fn load_samples(path: &Path, text: &str) -> Result<Arc<Samples>, ConfigError> {
    if !text.contains(&format!("${{{SAMPLES}.")) {
        return Ok(Arc::new(Samples::default()));
    }
    let start = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let Some(file) = start.ancestors().skip(1).map(|d| d.join(STRINGS_FILE)).find(|f| f.is_file()) else {
        return Ok(Arc::new(Samples {
            values: BTreeMap::new(),
            origin: format!("no {STRINGS_FILE} was found in the folders above {}, so nothing", path.display()),
        }));
    };
    let text = read(&file)?;
    let raw: super::model::Entries<Spanned<String>> = crate::yaml::parse(&file, &text).map_err(|e| {
        let hint = e.hint.clone().unwrap_or_else(|| "it is a flat mapping: name: \"string\"".to_string());
        e.with_hint(hint)
    })?;
    let mut values = BTreeMap::new();
    for (name, value) in raw.0 {
        if !is_name(&name.value) {
            return Err(ConfigError::at(&file, name.referenced, format!("sample name {:?} is not a name", name.value))
                .with_hint("names start with a letter, then letters, digits, '_' or '-'"));
        }
        values.insert(name.value, value.value);
    }
    Ok(Arc::new(Samples { values, origin: file.display().to_string() }))
}

/// Parse a stanza written in a scenario (surrounding whitespace allowed). On failure returns
/// the byte offset of the problem in `xml`.
pub fn parse_stanza(xml: &str) -> Result<Element, (usize, XmlError)> {
    let lead = xml.len() - xml.trim_start().len();
    crate::xml::parse_fragment(xml.trim(), NS_CLIENT).map_err(|e| (lead + error_offset(&e), e))
}

fn error_offset(e: &XmlError) -> usize {
    match e {
        XmlError::NotWellFormed { offset, .. } | XmlError::Restricted { offset, .. } => *offset as usize,
        _ => 0,
    }
}

/// The SRV services a `srv` gate may name (RFC 6120 §3.2.1, XEP-0368 §3).
const SRV_GATES: [&str; 4] = ["_xmpp-client._tcp", "_xmpp-server._tcp", "_xmpps-client._tcp", "_xmpps-server._tcp"];

/// Parse a pattern: a stanza in which the prefix `pf` is bound to the matching instructions'
/// namespace. Offsets in errors are offsets in `xml`.
pub fn parse_pattern(xml: &str) -> Result<Element, (usize, XmlError)> {
    let text = xml.trim();
    let lead = xml.len() - xml.trim_start().len();
    // Declare `pf` on the top element, right after its name, and map error offsets back.
    let name_end = text
        .char_indices()
        .skip(1)
        .find(|(_, c)| c.is_whitespace() || *c == '/' || *c == '>')
        .map_or(text.len(), |(i, _)| i);
    if !text.starts_with('<') || !text.contains("pf:") || text.contains("xmlns:pf=") {
        return parse_stanza(xml);
    }
    let declaration = format!(" xmlns:pf='{NS_PATTERN}'");
    let bound = format!("{}{declaration}{}", &text[..name_end], &text[name_end..]);
    crate::xml::parse_fragment(&bound, NS_CLIENT).map_err(|e| {
        let at = error_offset(&e);
        let at = if at >= name_end + declaration.len() { at - declaration.len() } else { at.min(name_end) };
        (lead + at, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Level;
    use crate::scenario::{Action, DEFAULT_WITHIN};

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
        assert_eq!(e.within, Within::Fixed(Duration::from_secs(20)));
        let spec = e.spec.as_ref().unwrap();
        assert_eq!((spec.spec.as_str(), spec.section.as_str(), spec.level), ("RFC6120", "8.1.2.1", Level::MUST));
        let Action::Expect(e) = &sc.steps[4].action else { panic!("not an expect") };
        assert_eq!(e.within, Within::Default);
        assert_eq!(e.within.or(DEFAULT_WITHIN), Duration::from_secs(5));
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
        assert!(e.hint.unwrap().contains("connect, disconnect and register"));

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

    /// GOOD's head with other steps.
    fn with_steps(steps: &str) -> Result<Loaded, ConfigError> {
        let head = &GOOD[..GOOD.find("steps:\n").unwrap()];
        parse_as("msg-test", &format!("{head}steps:\n{steps}"))
    }

    #[test]
    fn round_two_steps_load() {
        let l = with_steps(
            "  - expect_none: {to: [bob1, carol1], xml: \"<message type='chat'/>\", barrier: {marker: alice1}, within: s2s}\n\
             \x20 - expect_none: {to: bob1, barrier: ping}\n\
             \x20 - expect_unordered:\n      within: bounce\n      items:\n\
             \x20       - {to: alice1, xml: \"<presence from='${bob.bare}' type='{=t}'/>\"}\n\
             \x20       - {to: bob1, xml: \"<presence type='{t}' ask='{absent}'><show pf:absent=''/></presence>\"}\n\
             \x20 - expect_sequence: {to: alice1, items: [\"<message id='s1'/>\", \"<message id='s2' pf:strict=''/>\"]}\n\
             \x20 - iq: {as: alice1, xml: \"<iq type='get' to='${A}'><query xmlns='jabber:iq:version'/></iq>\", expect: \"<iq type='result'/>\"}\n\
             \x20 - send_raw: {as: alice1, data: \"<message><body>${alice.bare}</message>\"}\n\
             \x20 - expect_closed: {actor: alice1, error: not-well-formed, within: 5s}\n\
             \x20 - connect: {actor: alice1}\n",
        )
        .unwrap();
        let steps = &l.scenario.script.steps;
        let kinds: Vec<&str> = steps.iter().map(|s| s.kind()).collect();
        assert_eq!(
            kinds,
            [
                "expect_none",
                "expect_none",
                "expect_unordered",
                "expect_sequence",
                "iq",
                "send_raw",
                "expect_closed",
                "connect"
            ]
        );
        let Action::ExpectNone(e) = &steps[0].action else { panic!() };
        assert_eq!(e.actors, ["bob1", "carol1"]);
        assert_eq!(e.barrier, super::super::Barrier::Marker { from: "alice1".into() });
        assert_eq!(e.within, Within::Fixed(Duration::from_secs(20)));
        let Action::ExpectUnordered(u) = &steps[2].action else { panic!() };
        assert_eq!(u.within, Within::Fixed(Duration::from_secs(60)));
        assert_eq!(u.items[1].actor, "bob1");
    }

    #[test]
    fn round_two_mistakes_are_load_errors() {
        let bad = |steps: &str| with_steps(steps).unwrap_err();
        let e = bad("  - expect_none: {to: bob1, barrier: wall}\n");
        assert!(e.hint.unwrap().contains("barrier: ping"), "{}", e.message);
        let e = bad("  - expect_none: {to: [bob1, bob9], barrier: ping}\n");
        assert_eq!(e.message, "unknown actor 'bob9'");
        let e = bad("  - expect_none: {to: bob1, barrier: {marker: bob2}}\n");
        assert!(e.message.contains("bob2 is not connected"), "{e}");
        let e = bad("  - expect_none: {to: bob1, xml: \"<message id='{=x}'/>\", barrier: ping}\n");
        assert!(e.message.contains("cannot capture"), "{e}");
        let e = bad("  - expect: {to: bob1, xml: \"<message pf:strikt=''/>\"}\n");
        assert!(e.message.contains("unknown instruction pf:strikt"), "{e}");
        let e = bad("  - expect: {to: bob1, xml: \"<message pf:absent=''/>\"}\n");
        assert!(e.message.contains("use expect_none"), "{e}");
        let e = bad("  - expect: {to: bob1, xml: \"<message><body>{absent}</body></message>\"}\n");
        assert!(e.message.contains("{absent} is for attribute values"), "{e}");
        let e = bad("  - expect: {to: bob1, within: soon, xml: <message/>}\n");
        assert!(e.hint.unwrap().contains("local (5s), s2s (20s), bounce (60s)"));
        let e = bad("  - expect_sequence: {to: bob1, items: [\"<message/>\"]}\n");
        assert!(e.message.contains("at least two items"), "{e}");
        let e = bad("  - iq: {as: alice1, xml: \"<message/>\", expect: \"<iq/>\"}\n");
        assert!(e.message.contains("an iq step sends"), "{e}");
        let e = bad("  - iq: {as: alice1, xml: \"<iq type='get'/>\", expect: \"<message/>\"}\n");
        assert!(e.message.contains("the answer to an iq is an <iq/>"), "{e}");
        let e = bad("  - expect_closed: {actor: alice1, error: Not Well Formed}\n");
        assert!(e.message.contains("is not a stream error condition"), "{e}");
        let e = bad("  - expect_closed: {actor: alice1}\n  - send: {as: alice1, xml: <message/>}\n");
        assert!(e.message.contains("alice1 is not connected"), "{e}");
        assert!(e.hint.unwrap().contains("disconnected at line 14"));
        let e = bad("  - send_raw: {as: alice1, data: \"${nobody}\"}\n");
        assert!(e.message.contains("unknown variable ${nobody}"), "{e}");
        // expect_features: a known `otherwise`, captures defined before pf:caps-ver uses them.
        let e = bad("  - expect_features: {actor: alice1, xml: \"<c xmlns='http://jabber.org/protocol/caps'/>\", otherwise: skip}\n");
        assert!(e.message.contains("unknown variant `skip`"), "{e}");
        let e = bad("  - iq: {as: alice1, xml: \"<iq type='get'/>\", expect: \"<iq><query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='{v}'/></iq>\"}\n");
        assert!(e.message.contains("{v}"), "{e}");
        let e = bad("  - iq: {as: alice1, xml: \"<iq type='get'/>\", expect: \"<iq><query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='{*}'/></iq>\"}\n");
        assert!(e.message.contains("pf:caps-ver takes the ver"), "{e}");
        // consistent: only labels earlier steps are tallied with.
        let e = bad("  - consistent: {tallies: [precis]}\n");
        assert!(e.message.contains("no earlier step is tallied as 'precis'"), "{e}");
        let e = bad("  - expect: {to: bob1, xml: <message/>, ref: {spec: X, section: '1', level: MAY, tally: {holds: a, fails: a}}}\n");
        assert!(e.message.contains("holds differs from fails"), "{e}");
        with_steps(
            "  - expect: {to: bob1, xml: <message/>, ref: {spec: X, section: '1', level: MAY, tally: {holds: a, fails: b}}}\n\
             \x20 - consistent: {tallies: [a, b], ref: {spec: X, section: '1', level: SHOULD}}\n",
        )
        .unwrap();
        with_steps(
            "  - expect_features: {actor: alice1, xml: \"<c xmlns='http://jabber.org/protocol/caps' ver='{=v}'/>\", otherwise: end}\n\
             \x20 - iq: {as: alice1, xml: \"<iq type='get'/>\", expect: \"<iq><query xmlns='http://jabber.org/protocol/disco#info' pf:caps-ver='{v}'/></iq>\"}\n",
        )
        .unwrap();
    }

    #[test]
    fn strict_and_absent_patterns_parse_with_the_pf_prefix() {
        let p = parse_pattern("  <message pf:strict=''><body pf:absent=''/></message>").unwrap();
        assert_eq!(p.attr_ns(NS_PATTERN, "strict"), Some(""));
        // Errors point into the text as written, not into the rewritten one.
        let (offset, _) = parse_pattern("<message pf:strict=''><body></message>").unwrap_err();
        assert_eq!(offset, "<message pf:strict=''><body></message>".len());
        let (offset, _) = parse_pattern("<message pf:strict=''><body x=></body></message>").unwrap_err();
        assert!((28..=31).contains(&offset), "{offset}");
        assert!(parse_stanza("<message pf:strict=''/>").is_err());
    }

    #[test]
    fn sample_strings_come_from_the_nearest_strings_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fixtures")).unwrap();
        std::fs::create_dir_all(dir.path().join("scenarios/unicode")).unwrap();
        std::fs::write(dir.path().join(STRINGS_FILE), "astral: \"🎸𝄞\"\nrtl: \"שלום\"\namp: \"a&b\"\n").unwrap();
        let head = &GOOD[..GOOD.find("steps:\n").unwrap()].replace("id: msg-test", "id: s");
        let file = dir.path().join("scenarios/unicode/s.yaml");
        let write = |steps: &str| {
            std::fs::write(&file, format!("{head}steps:\n{steps}")).unwrap();
            load(&file)
        };
        let l = write("  - send: {as: alice1, xml: \"<message><body>${str.astral} ${str.amp}</body></message>\"}\n  - send_raw: {as: alice1, data: \"${str.amp}\"}\n").unwrap();
        let b = crate::scenario::Bindings::default();
        let Action::Send { xml, .. } = &l.scenario.script.steps[0].action else { panic!() };
        assert_eq!(xml.render(&b).unwrap(), "<message><body>🎸𝄞 a&amp;b</body></message>");
        let Action::SendRaw { data, .. } = &l.scenario.script.steps[1].action else { panic!() };
        assert_eq!(data.render_raw(&b).unwrap(), "a&b");

        let e = write("  - send: {as: alice1, xml: \"<message><body>${str.nope}</body></message>\"}\n").unwrap_err();
        assert_eq!(e.message, "unknown sample string ${str.nope}");
        assert!(e.hint.unwrap().ends_with("strings.yaml defines: amp, astral, rtl"));
        let e = write("  - send: {as: alice1, xml: \"<message><body>${str}</body></message>\"}\n").unwrap_err();
        assert!(e.message.contains("which sample string?"), "{e}");
        // Without a strings file: every name is unknown, and the hint says why.
        std::fs::remove_file(dir.path().join(STRINGS_FILE)).unwrap();
        let e = write("  - send: {as: alice1, xml: \"<message><body>${str.astral}</body></message>\"}\n").unwrap_err();
        assert!(e.hint.unwrap().contains("no fixtures/strings.yaml was found"), "{}", e.message);
        // `str` cannot name anything else.
        let e = parse_as("msg-test", &GOOD.replace("bob: {server: B}", "str: {server: B}")).unwrap_err();
        assert!(e.message.contains("'str' is reserved"), "{e}");
    }

    #[test]
    fn the_projects_strings_file_loads() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(STRINGS_FILE);
        let text = std::fs::read_to_string(&file).unwrap();
        let samples = load_samples(&file, "${str.").unwrap();
        assert!(!samples.values.is_empty(), "{} has no strings", file.display());
        assert!(!text.is_empty());
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
    fn the_projects_scenarios_and_fixtures_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let (loaded, errors) = load_all(&[dir]);
        assert!(errors.is_empty(), "{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"));
        let ids: Vec<&str> = loaded.iter().map(|l| l.scenario.id.as_str()).collect();
        for id in ["msg-chat-remote-bare", "roster-remote-add", "presence-show-status-priority"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
    }
}
