//! Checking a scenario's steps, in order: actors are connected where they are used, variables
//! and captures are defined before use, and `use` steps are replaced by their fixture's steps
//! (with the fixture's parameters bound to the scenario's actors).

use super::load::{explain_yaml_error, read, Checker, FIXTURES_DIR};
use super::model::{OneOrManyNumbers, RawAlternative, RawBarrier, RawFixture, RawStep, RawUse};
use super::vars::{NameKind, Samples, Scope};
use super::{
    Action, ActorDecl, Alternative, Barrier, ConnectOutcome, Consistent, Expect, ExpectClosed, ExpectFeatures,
    ExpectMany, ExpectNone, Expected, IqStep, Origin, RegisterOutcome, Step, Tally,
};
use crate::xml::NS_CLIENT;
use crate::yaml::ConfigError;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep fixtures may use fixtures.
const MAX_FIXTURE_DEPTH: usize = 8;

/// The state that runs through all steps, across fixtures: who is connected, and the steps so far.
pub(super) struct Flow<'a> {
    /// The scenario file (fixtures are looked up from its folder upwards).
    file: &'a Path,
    actors: &'a [ActorDecl],
    /// Actors connected at this point.
    online: BTreeSet<String>,
    /// Actors whose JID is known (they have been connected at some point).
    known: BTreeSet<String>,
    /// Where each disconnected actor went offline, for hints.
    offline_since: BTreeMap<String, String>,
    samples: Arc<Samples>,
    /// Checking a fixture on its own: which actors are connected is not known, so it is not checked.
    lenient: bool,
    /// Fixtures being expanded, outermost first (to report cycles).
    stack: Vec<String>,
    pub steps: Vec<Step>,
}

/// One file being walked: the scenario, or a fixture used by it.
pub(super) struct Frame<'a> {
    checker: Checker<'a>,
    scope: Scope,
    fixture: Option<FixtureFrame>,
}

struct FixtureFrame {
    name: String,
    /// The line of the outermost `use` step in the scenario.
    use_line: usize,
    params: Vec<String>,
}

impl<'a> Frame<'a> {
    pub fn scenario(checker: Checker<'a>, scope: Scope) -> Frame<'a> {
        Frame { checker, scope, fixture: None }
    }

    fn origin(&self, line: usize) -> (usize, Option<Origin>) {
        match &self.fixture {
            None => (line, None),
            Some(f) => {
                (f.use_line, Some(Origin { fixture: f.name.clone(), file: self.checker.path.to_path_buf(), line }))
            }
        }
    }

    /// Where a step is, for hints: `line 12` or `fixture f line 3`.
    fn place(&self, line: u64) -> String {
        match &self.fixture {
            None => format!("line {line}"),
            Some(f) => format!("fixture {} line {line}", f.name),
        }
    }
}

impl<'a> Flow<'a> {
    pub fn new(file: &'a Path, actors: &'a [ActorDecl], samples: Arc<Samples>, lenient: bool) -> Flow<'a> {
        let online: BTreeSet<String> = actors.iter().filter(|a| a.connect_at_start).map(|a| a.name.clone()).collect();
        Flow {
            file,
            actors,
            known: online.clone(),
            online,
            offline_since: BTreeMap::new(),
            samples,
            lenient,
            stack: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Check `raw` steps in `frame`, appending the checked steps.
    pub fn walk(&mut self, frame: &mut Frame, raw: &[Spanned<RawStep>]) -> Result<(), ConfigError> {
        for s in raw {
            self.step(frame, s)?;
        }
        Ok(())
    }

    /// Actors' JIDs are variables once they have connected: bring the frame's scope up to date.
    fn sync(&self, frame: &mut Frame) {
        for name in frame.scope.names(|k| matches!(k, NameKind::Actor { .. })) {
            let connected = self.lenient || self.known.contains(frame.scope.target(&name));
            let target = frame.scope.target(&name).to_string();
            if target == name {
                frame.scope.insert(&name, NameKind::Actor { connected });
            } else {
                frame.scope.alias(&name, &target, NameKind::Actor { connected });
            }
        }
    }

    fn step(&mut self, frame: &mut Frame, s: &Spanned<RawStep>) -> Result<(), ConfigError> {
        let line = s.referenced.line();
        self.sync(frame);
        let c = frame.checker;
        let action = match &s.value {
            RawStep::Send(send) => {
                let actor = self.online_actor(frame, &send.actor)?;
                let (xml, _) = c.check_xml(&send.xml, &frame.scope)?;
                Action::Send { actor, xml, if_open: send.if_open.unwrap_or(false) }
            }
            RawStep::SendRaw(send) => {
                let actor = self.online_actor(frame, &send.actor)?;
                if send.data.value.is_empty() {
                    return Err(c.err(send.data.referenced, "send_raw has no data"));
                }
                Action::SendRaw { actor, data: c.check_raw(&send.data, &frame.scope)? }
            }
            RawStep::Expect(exp) => {
                let actor = self.online_actor(frame, &exp.to)?;
                let alternatives = match (&exp.xml, &exp.any_of) {
                    (Some(xml), None) => vec![Alternative::Stanza(c.check_pattern(xml, &mut frame.scope)?.0)],
                    (None, Some(any_of)) => self.check_any_of(frame, any_of)?,
                    _ => {
                        return Err(c
                            .err(exp.to.referenced, "an expect has either `xml` or `any_of`")
                            .with_hint("any_of: [\"<pattern 1/>\", \"<pattern 2/>\", {closed: any}]"))
                    }
                };
                // Whichever alternative happens, a `closed` one leaves the actor disconnected.
                if alternatives.iter().any(|a| matches!(a, Alternative::Closed(_))) {
                    self.online.remove(&actor);
                    self.offline_since.insert(actor.clone(), frame.place(line));
                }
                let within = c.check_within(exp.within.as_ref())?;
                Action::Expect(Expect { actor, alternatives, within, spec: c.check_ref(exp.spec.as_ref())? })
            }
            RawStep::ExpectNone(exp) => {
                let names = exp.to.value.names();
                if names.is_empty() {
                    return Err(c.err(exp.to.referenced, "`to` names no actor").with_hint("e.g. to: [bob1, bob2]"));
                }
                let mut actors = Vec::new();
                for n in names {
                    let at = Spanned::new(n, exp.to.referenced, exp.to.defined);
                    let actor = self.online_actor(frame, &at)?;
                    if actors.contains(&actor) {
                        return Err(c.err(exp.to.referenced, format!("{} is listed twice", at.value)));
                    }
                    actors.push(actor);
                }
                let pattern = match &exp.xml {
                    Some(xml) => {
                        let (p, _) = c.check_pattern(xml, &mut frame.scope)?;
                        let defines = p.source().contains("{=");
                        if defines {
                            return Err(c
                                .err(xml.referenced, "expect_none cannot capture: nothing is supposed to match")
                                .with_hint("use {*} for any value"));
                        }
                        Some(p)
                    }
                    None => None,
                };
                let barrier = match &exp.barrier.value {
                    RawBarrier::Ping => Barrier::Ping,
                    RawBarrier::Marker(from) => Barrier::Marker { from: self.online_actor(frame, from)? },
                };
                let within = c.check_within(exp.within.as_ref())?;
                Action::ExpectNone(ExpectNone {
                    actors,
                    pattern,
                    barrier,
                    within,
                    spec: c.check_ref(exp.spec.as_ref())?,
                })
            }
            RawStep::ExpectUnordered(exp) => {
                if exp.items.value.len() < 2 {
                    return Err(c
                        .err(exp.items.referenced, "expect_unordered needs at least two items")
                        .with_hint("for one stanza, write an `expect`"));
                }
                let mut items: Vec<Expected> = Vec::new();
                for (k, item) in exp.items.value.iter().enumerate() {
                    let actor = self.online_actor(frame, &item.value.to)?;
                    let (pattern, _) = c.check_pattern(&item.value.xml, &mut frame.scope)?;
                    let mut after = Vec::new();
                    if let Some(a) = &item.value.after {
                        let numbers = match &a.value {
                            OneOrManyNumbers::One(n) => vec![*n],
                            OneOrManyNumbers::Many(v) => v.clone(),
                        };
                        for n in numbers {
                            let earlier = n >= 1 && n <= k && items[n - 1].actor == actor;
                            if !earlier {
                                return Err(c
                                    .err(a.referenced, format!("item {} cannot come after item {n}", k + 1))
                                    .with_hint(
                                        "`after` names earlier items (numbered from 1) to the same actor: only the \
                                         stanzas one actor receives have an order",
                                    ));
                            }
                            after.push(n - 1);
                        }
                    }
                    items.push(Expected { actor, pattern, after });
                }
                let within = c.check_within(exp.within.as_ref())?;
                Action::ExpectUnordered(ExpectMany { items, within, spec: c.check_ref(exp.spec.as_ref())? })
            }
            RawStep::ExpectSequence(exp) => {
                let actor = self.online_actor(frame, &exp.to)?;
                if exp.items.value.len() < 2 {
                    return Err(c
                        .err(exp.items.referenced, "expect_sequence needs at least two items")
                        .with_hint("for one stanza, write an `expect`"));
                }
                let mut items = Vec::new();
                for xml in &exp.items.value {
                    let (pattern, _) = c.check_pattern(xml, &mut frame.scope)?;
                    items.push(Expected { actor: actor.clone(), pattern, after: Vec::new() });
                }
                let within = c.check_within(exp.within.as_ref())?;
                Action::ExpectSequence(ExpectMany { items, within, spec: c.check_ref(exp.spec.as_ref())? })
            }
            RawStep::Iq(iq) => {
                let actor = self.online_actor(frame, &iq.actor)?;
                let (request, el) = c.check_xml(&iq.xml, &frame.scope)?;
                if !el.is("iq", NS_CLIENT) || !matches!(el.attr("type"), Some("get" | "set")) {
                    return Err(c
                        .err(iq.xml.referenced, "an iq step sends an <iq type='get'/> or <iq type='set'/>")
                        .with_hint("for other stanzas, use send and expect"));
                }
                let (expect, answer) = c.check_pattern(&iq.expect, &mut frame.scope)?;
                if !answer.is("iq", NS_CLIENT) {
                    return Err(c
                        .err(iq.expect.referenced, format!("the answer to an iq is an <iq/>, not <{}>", answer.name))
                        .with_hint("e.g. expect: \"<iq type='result'/>\""));
                }
                let within = c.check_within(iq.within.as_ref())?;
                Action::Iq(IqStep { actor, request, expect, within, spec: c.check_ref(iq.spec.as_ref())? })
            }
            RawStep::ExpectClosed(exp) => {
                let actor = self.online_actor(frame, &exp.actor)?;
                let error = match &exp.error {
                    None => None,
                    Some(e) if super::load::is_condition(&e.value) => Some(e.value.trim().to_string()),
                    Some(e) => {
                        return Err(c
                            .err(e.referenced, format!("{:?} is not a stream error condition", e.value))
                            .with_hint("write the condition's element name, e.g. not-well-formed (RFC 6120 §4.9.3)"))
                    }
                };
                let within = c.check_within(exp.within.as_ref())?;
                self.online.remove(&actor);
                self.offline_since.insert(actor.clone(), frame.place(line));
                Action::ExpectClosed(ExpectClosed { actor, error, within, spec: c.check_ref(exp.spec.as_ref())? })
            }
            RawStep::Use(u) => return self.expand(frame, u, line),
            RawStep::Connect(conn) => {
                let actor = self.actor_ref(frame, &conn.actor)?;
                if self.online.contains(&actor) && !self.lenient {
                    return Err(c
                        .err(conn.actor.referenced, format!("{} is already connected at this step", conn.actor.value))
                        .with_hint("disconnect it first, or give it `connect_at_start: false`"));
                }
                let outcome = conn.outcome.as_ref().map(|o| o.value).unwrap_or_default();
                let condition = match &conn.condition {
                    None => None,
                    Some(cond) if outcome != ConnectOutcome::Refused => {
                        return Err(c
                            .err(cond.referenced, "`condition` is for `outcome: refused`")
                            .with_hint("the condition a refusal must carry, e.g. bad-request or not-authorized"))
                    }
                    Some(cond) if super::load::is_condition(&cond.value) => Some(cond.value.trim().to_string()),
                    Some(cond) => {
                        return Err(c
                            .err(cond.referenced, format!("{:?} is not a defined condition", cond.value))
                            .with_hint("write the condition's element name, e.g. bad-request, not-authorized"))
                    }
                };
                let renames = matches!(outcome, ConnectOutcome::AsRequested | ConnectOutcome::RefusedOrRenamed);
                let requested = self.actors.iter().find(|a| a.name == actor).is_some_and(|a| a.resource.is_some());
                if renames && !requested {
                    return Err(c
                        .err(
                            conn.actor.referenced,
                            format!("{actor} requests no resource, so none can be kept or changed"),
                        )
                        .with_hint("give the actor a `resource:`"));
                }
                self.known.insert(actor.clone());
                // Only an actor that must end up connected stays connected after the step.
                if matches!(outcome, ConnectOutcome::Connected | ConnectOutcome::AsRequested) {
                    self.online.insert(actor.clone());
                } else {
                    self.offline_since.insert(actor.clone(), frame.place(line));
                }
                Action::Connect { actor, outcome, condition, spec: c.check_ref(conn.spec.as_ref())? }
            }
            RawStep::TlsProbe(probe) => {
                if frame.scope.get(&probe.on.value) != Some(NameKind::Role) {
                    return Err(c
                        .err(probe.on.referenced, format!("'{}' is not a role of this scenario", probe.on.value))
                        .with_hint("`on` names the role whose server is probed, e.g. `on: A`"));
                }
                let role = probe.on.value.clone();
                Action::TlsProbe(super::TlsProbe {
                    role,
                    service: probe.service.value,
                    version: probe.version.value,
                    expect: probe.expect.value,
                    spec: c.check_ref(probe.spec.as_ref())?,
                })
            }
            RawStep::Register(reg) => {
                let name = &reg.account;
                if frame.fixture.is_some() || frame.scope.get(&name.value) != Some(NameKind::Account) {
                    return Err(c
                        .err(name.referenced, format!("'{}' is not an account of this scenario", name.value))
                        .with_hint("`register` names an account of the scenario (not in a fixture), usually one with `create: false`"));
                }
                let outcome = reg.outcome.as_ref().map(|o| o.value).unwrap_or_default();
                let condition = match &reg.condition {
                    None => None,
                    Some(cond) if outcome != RegisterOutcome::Refused => {
                        return Err(c
                            .err(cond.referenced, "`condition` is for `outcome: refused`")
                            .with_hint("the condition a refusal must carry, e.g. jid-malformed or not-acceptable"))
                    }
                    Some(cond) if super::load::is_condition(&cond.value) => Some(cond.value.trim().to_string()),
                    Some(cond) => {
                        return Err(c
                            .err(cond.referenced, format!("{:?} is not a defined condition", cond.value))
                            .with_hint("write the condition's element name, e.g. jid-malformed, not-acceptable"))
                    }
                };
                Action::Register {
                    account: name.value.clone(),
                    outcome,
                    condition,
                    spec: c.check_ref(reg.spec.as_ref())?,
                }
            }
            RawStep::ExpectFeatures(exp) => {
                let actor = self.online_actor(frame, &exp.actor)?;
                if self.actors.iter().any(|a| a.name == actor && a.peer.is_some()) {
                    return Err(c
                        .err(
                            exp.actor.referenced,
                            format!("{} is a peer: it has no c2s stream features", exp.actor.value),
                        )
                        .with_hint("expect_features checks a client actor's <stream:features/> after authentication"));
                }
                let (pattern, _) = c.check_pattern(&exp.xml, &mut frame.scope)?;
                let end_if_absent = exp.otherwise.as_ref().is_some_and(|o| o.value == super::model::RawOtherwise::End);
                Action::ExpectFeatures(ExpectFeatures {
                    actor,
                    pattern,
                    end_if_absent,
                    spec: c.check_ref(exp.spec.as_ref())?,
                })
            }
            RawStep::Consistent(cons) => {
                let mut labels: Vec<String> = Vec::new();
                for l in &cons.tallies.value {
                    let label = l.value.trim().to_string();
                    let used = self
                        .steps
                        .iter()
                        .filter_map(|s| s.tally.as_ref())
                        .any(|t| t.holds == label || t.fails.as_deref() == Some(label.as_str()));
                    if !used {
                        return Err(c.err(l.referenced, format!("no earlier step is tallied as '{label}'")).with_hint(
                            "tally steps with their ref: ref: {spec: …, section: …, level: MAY, tally: precis}",
                        ));
                    }
                    if labels.contains(&label) {
                        return Err(c.err(l.referenced, format!("'{label}' is listed twice")));
                    }
                    labels.push(label);
                }
                if labels.is_empty() {
                    return Err(c
                        .err(cons.tallies.referenced, "`tallies` names no label")
                        .with_hint("e.g. tallies: [precis, stringprep]"));
                }
                let manifest = match &cons.manifest {
                    None => None,
                    Some(role) if frame.scope.get(&role.value) == Some(NameKind::Role) => Some(role.value.clone()),
                    Some(role) => {
                        return Err(c
                            .err(role.referenced, format!("'{}' is not a role of this scenario", role.value))
                            .with_hint("`manifest` names the role whose servers-file jid_profile is compared, e.g. B"))
                    }
                };
                Action::Consistent(Consistent { labels, manifest, spec: c.check_ref(cons.spec.as_ref())? })
            }
            RawStep::Authenticate(a) => {
                let actor = self.online_actor(frame, &a.peer)?;
                let method = a.method.as_ref().map_or(super::peer::PeerAuth::External, |m| m.value);
                if matches!(method, super::peer::PeerAuth::None | super::peer::PeerAuth::Auto) {
                    let at = a.method.as_ref().map_or(a.peer.referenced, |m| m.referenced);
                    return Err(c.err(at, "`method` is external or dialback"));
                }
                Action::Authenticate { actor, method }
            }
            RawStep::Disconnect(d) => {
                let actor = self.online_actor(frame, &d.actor)?;
                self.online.remove(&actor);
                self.offline_since.insert(actor.clone(), frame.place(line));
                Action::Disconnect { actor, abrupt: d.abrupt.unwrap_or(false) }
            }
        };
        let tally = match s.value.spec().and_then(|r| r.value.tally.as_ref()) {
            None => None,
            Some(t) => {
                let tally = match &t.value {
                    super::model::RawTally::Label(l) => Tally { holds: l.trim().to_string(), fails: None },
                    super::model::RawTally::Both(b) => {
                        Tally { holds: b.holds.trim().to_string(), fails: Some(b.fails.trim().to_string()) }
                    }
                };
                let bad = |l: &str| !super::pattern::is_capture_name(l);
                if bad(&tally.holds)
                    || tally.fails.as_deref().is_some_and(bad)
                    || tally.fails.as_ref() == Some(&tally.holds)
                {
                    return Err(c
                        .err(
                            t.referenced,
                            "a tally label is a name (letters, digits, - and _), and holds differs from fails",
                        )
                        .with_hint("e.g. tally: precis, or tally: {holds: precis, fails: stringprep}"));
                }
                Some(tally)
            }
        };
        let (line, origin) = frame.origin(line as usize);
        self.steps.push(Step { line, tally, origin, action });
        Ok(())
    }

    /// An expect's `any_of`: at least two alternatives, at least one of them a stanza.
    fn check_any_of(
        &self,
        frame: &mut Frame,
        any_of: &Spanned<Vec<Spanned<RawAlternative>>>,
    ) -> Result<Vec<Alternative>, ConfigError> {
        let c = frame.checker;
        let hint = "e.g. any_of: [\"<message type='error'/>\", {closed: any}]";
        if any_of.value.len() < 2 {
            return Err(c.err(any_of.referenced, "any_of needs at least two alternatives").with_hint(hint));
        }
        let mut alternatives = Vec::new();
        for alt in &any_of.value {
            alternatives.push(match &alt.value {
                RawAlternative::Xml(xml) => {
                    let at = Spanned::new(xml.clone(), alt.referenced, alt.defined);
                    Alternative::Stanza(c.check_pattern(&at, &mut frame.scope)?.0)
                }
                RawAlternative::Closed(closed) => match closed.closed.trim() {
                    "any" => Alternative::Closed(None),
                    cond if super::load::is_condition(cond) => Alternative::Closed(Some(cond.to_string())),
                    other => {
                        return Err(c
                            .err(alt.referenced, format!("{other:?} is not a stream error condition"))
                            .with_hint("{closed: any} or {closed: not-well-formed} (RFC 6120 §4.9.3)"))
                    }
                },
            });
        }
        if !alternatives.iter().any(|a| matches!(a, Alternative::Stanza(_))) {
            return Err(c.err(any_of.referenced, "any_of has no stanza pattern: use expect_closed").with_hint(hint));
        }
        Ok(alternatives)
    }

    /// The scenario actor a name in `frame` refers to (a fixture's parameters stand for actors).
    fn actor_ref(&self, frame: &Frame, name: &Spanned<String>) -> Result<String, ConfigError> {
        match &frame.fixture {
            Some(f) => {
                if f.params.contains(&name.value) {
                    return Ok(frame.scope.target(&name.value).to_string());
                }
                Err(frame
                    .checker
                    .err(name.referenced, format!("unknown actor '{}'", name.value))
                    .with_hint(format!("a fixture names actors by its params: {}", list(&f.params))))
            }
            None => {
                if self.actors.iter().any(|a| a.name == name.value) {
                    return Ok(name.value.clone());
                }
                let known: Vec<String> = self.actors.iter().map(|a| a.name.clone()).collect();
                Err(frame
                    .checker
                    .err(name.referenced, format!("unknown actor '{}'", name.value))
                    .with_hint(format!("actors of this scenario: {}", known.join(", "))))
            }
        }
    }

    /// An actor that must be connected at this step.
    fn online_actor(&self, frame: &Frame, name: &Spanned<String>) -> Result<String, ConfigError> {
        let actor = self.actor_ref(frame, name)?;
        if self.lenient || self.online.contains(&actor) {
            return Ok(actor);
        }
        let alias = if actor == name.value { String::new() } else { format!(" ({actor})") };
        let hint = match self.offline_since.get(&actor) {
            Some(place) => format!("it was disconnected at {place}; add a `connect` step before this one"),
            None => format!("it has `connect_at_start: false`; add `- connect: {{actor: {actor}}}` before this step"),
        };
        Err(frame
            .checker
            .err(name.referenced, format!("{}{alias} is not connected at this step", name.value))
            .with_hint(hint))
    }

    /// Replace a `use` step by the fixture's steps.
    fn expand(&mut self, frame: &mut Frame, u: &RawUse, line: u64) -> Result<(), ConfigError> {
        let c = frame.checker;
        let name = u.fixture.value.trim();
        if !super::load::is_name(name) {
            return Err(c.err(u.fixture.referenced, format!("fixture name {name:?} is not a name")));
        }
        if self.stack.iter().any(|n| n == name) || self.stack.len() >= MAX_FIXTURE_DEPTH {
            let chain = [self.stack.clone(), vec![name.to_string()]].concat().join(" → ");
            return Err(c
                .err(u.fixture.referenced, format!("fixtures use each other in a loop or too deeply: {chain}"))
                .with_hint(format!(
                    "fixtures may use other fixtures up to {MAX_FIXTURE_DEPTH} deep, never in a loop"
                )));
        }
        let Some(path) = find_fixture(self.file, name) else {
            return Err(c.err(u.fixture.referenced, format!("no fixture '{name}'")).with_hint(format!(
                "fixtures are {FIXTURES_DIR}/{name}.yaml in the scenario's folder or a folder above it (e.g. scenarios/{FIXTURES_DIR}/)"
            )));
        };
        let text = read(&path)?;
        let raw: RawFixture = crate::yaml::parse(&path, &text).map_err(explain_yaml_error)?;
        let fc = Checker { path: &path, text: &text };
        let (fixture_name, params) = fc.check_fixture_head(&raw)?;
        // Bind every parameter to an actor of the using frame.
        let bindings: Vec<(Spanned<String>, Spanned<String>)> = u
            .bind
            .as_ref()
            .map(|b| b.value.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let param_names: Vec<String> = params.iter().map(|p| p.value.clone()).collect();
        let mut scope = Scope::default();
        scope.set_samples(self.samples.clone());
        for (param, actor) in &bindings {
            if !param_names.contains(&param.value) {
                return Err(c
                    .err(param.referenced, format!("fixture {fixture_name} has no parameter '{}'", param.value))
                    .with_hint(format!("its params: {}", list(&param_names))));
            }
            let target = self.actor_ref(frame, actor)?;
            scope.alias(&param.value, &target, NameKind::Actor { connected: false });
        }
        if let Some(missing) = param_names.iter().find(|p| !bindings.iter().any(|(k, _)| &k.value == *p)) {
            let at = u.bind.as_ref().map_or(u.fixture.referenced, |b| b.referenced);
            return Err(c
                .err(at, format!("parameter '{missing}' of fixture {fixture_name} is not bound"))
                .with_hint(format!("bind every param to an actor: with: {{{}}}", example_binding(&param_names))));
        }
        let use_line = frame.fixture.as_ref().map_or(line as usize, |f| f.use_line);
        let mut inner = Frame {
            checker: fc,
            scope,
            fixture: Some(FixtureFrame { name: fixture_name.clone(), use_line, params: param_names }),
        };
        self.stack.push(fixture_name.clone());
        let walked = self.walk(&mut inner, &raw.steps.value);
        self.stack.pop();
        walked?;
        // The fixture's captures are the scenario's from here on.
        for capture in inner.scope.names(|k| k == NameKind::Capture) {
            match frame.scope.get(&capture) {
                None | Some(NameKind::Capture) => frame.scope.insert(&capture, NameKind::Capture),
                Some(_) => {
                    return Err(c
                        .err(
                            u.fixture.referenced,
                            format!("fixture {fixture_name} captures '{capture}', a name used here"),
                        )
                        .with_hint("rename the capture in the fixture or the name in this file"))
                }
            }
        }
        Ok(())
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn example_binding(params: &[String]) -> String {
    params.iter().enumerate().map(|(i, p)| format!("{p}: actor{}", i + 1)).collect::<Vec<_>>().join(", ")
}

/// `_fixtures/<name>.yaml` in the scenario's folder or the nearest folder above it that has it.
fn find_fixture(scenario: &Path, name: &str) -> Option<PathBuf> {
    let start = scenario.canonicalize().unwrap_or_else(|_| scenario.to_path_buf());
    start.ancestors().skip(1).map(|d| d.join(FIXTURES_DIR).join(format!("{name}.yaml"))).find(|f| f.is_file())
}

/// Check a fixture file on its own (for `plugfest check`): its head, and its steps with each
/// parameter taken as a connected actor (which actors are connected depends on where it is used,
/// and is checked there).
pub(super) fn check_fixture_file(path: &Path) -> Result<(), ConfigError> {
    let text = read(path)?;
    let raw: RawFixture = crate::yaml::parse(path, &text).map_err(explain_yaml_error)?;
    let checker = Checker { path, text: &text };
    let (name, params) = checker.check_fixture_head(&raw)?;
    let samples = super::load::load_samples(path, &text)?;
    let actors: Vec<ActorDecl> = params
        .iter()
        .map(|p| ActorDecl {
            name: p.value.clone(),
            account: p.value.clone(),
            roster: true,
            connect_at_start: true,
            ..ActorDecl::default()
        })
        .collect();
    let param_names: Vec<String> = params.iter().map(|p| p.value.clone()).collect();
    let mut scope = Scope::default();
    scope.set_samples(samples.clone());
    for p in &param_names {
        scope.alias(p, p, NameKind::Actor { connected: true });
    }
    let mut flow = Flow::new(path, &actors, samples, true);
    flow.stack.push(name.clone());
    let mut frame = Frame { checker, scope, fixture: Some(FixtureFrame { name, use_line: 0, params: param_names }) };
    flow.walk(&mut frame, &raw.steps.value)
}

#[cfg(test)]
mod tests {
    use crate::scenario::load::load_all;
    use crate::scenario::{Action, Origin};
    use std::path::{Path, PathBuf};

    const FIXTURE: &str = r#"fixture: mutual-subscription
title: user and contact subscribe to each other
params: [user, contact]
steps:
  - send: {as: user, xml: "<presence to='${contact.bare}' type='subscribe'/>"}
  - expect: {to: contact, xml: "<presence from='${user.bare}' type='subscribe' id='{=sub_id}'/>"}
  - send: {as: contact, xml: "<presence to='${user.bare}' type='subscribed'/>"}
"#;

    const SCENARIO: &str = r#"id: uses-fixture
title: a scenario that uses a fixture
roles: [A, B]
actors:
  alice1: {account: alice, server: A, resource: r1}
  bob1: {account: bob, server: B, resource: r1}
steps:
  - use: {fixture: mutual-subscription, with: {user: alice1, contact: bob1}}
  - send: {as: alice1, xml: "<message to='${bob1.full}' id='${sub_id}'/>"}
"#;

    /// A scenarios folder with the fixture, the scenario (in an area folder) and more files.
    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scenarios");
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        (dir, root)
    }

    fn errors_of(root: &Path) -> Vec<String> {
        load_all(&[root.to_path_buf()]).1.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_use_step_becomes_the_fixtures_steps_with_actors_bound() {
        let (_dir, root) =
            tree(&[("_fixtures/mutual-subscription.yaml", FIXTURE), ("roster/uses-fixture.yaml", SCENARIO)]);
        let (loaded, errors) = load_all(std::slice::from_ref(&root));
        assert!(errors.is_empty(), "{errors:?}");
        // The fixture folder holds no scenarios.
        assert_eq!(loaded.len(), 1);
        let steps = &loaded[0].scenario.script.steps;
        assert_eq!(steps.len(), 4);
        let Action::Send { actor, xml, .. } = &steps[0].action else { panic!() };
        assert_eq!(actor, "alice1");
        assert_eq!(xml.source(), "<presence to='${contact.bare}' type='subscribe'/>");
        let Action::Expect(e) = &steps[1].action else { panic!() };
        assert_eq!(e.actor, "bob1");
        // Lines: the `use` step's line, and where in the fixture.
        assert_eq!(steps[1].line, 8);
        let origin = steps[1].origin.clone().unwrap();
        let fixture_file = root.join("_fixtures/mutual-subscription.yaml").canonicalize().unwrap();
        assert_eq!(origin, Origin { fixture: "mutual-subscription".into(), file: fixture_file, line: 6 });
        assert_eq!(steps[1].location(), "line 8 (fixture mutual-subscription line 6)");
        assert!(steps[1].description().starts_with("[mutual-subscription line 6] bob1 receives"));
        assert_eq!((steps[3].line, steps[3].origin.is_none()), (9, true));
        // Variables resolve to the bound actors' JIDs.
        let mut b = crate::scenario::Bindings::default();
        b.actors.insert("bob1".into(), crate::jid::Jid::parse("bob@b.lab/r1").unwrap());
        b.actors.insert("alice1".into(), crate::jid::Jid::parse("alice@a.lab/r1").unwrap());
        let Action::Send { xml, .. } = &steps[0].action else { panic!() };
        assert_eq!(xml.render(&b).unwrap(), "<presence to='bob@b.lab' type='subscribe'/>");
    }

    #[test]
    fn fixture_mistakes_are_reported_in_the_right_file() {
        let bad_fixture = FIXTURE.replace("to: contact,", "to: carol,");
        let (_dir, root) =
            tree(&[("_fixtures/mutual-subscription.yaml", &bad_fixture), ("roster/uses-fixture.yaml", SCENARIO)]);
        let errors = errors_of(&root);
        // Once on its own, once where it is used.
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.contains("mutual-subscription.yaml:6:18: unknown actor 'carol'")),
            "{errors:?}"
        );
        assert!(errors[0].contains("params: user, contact"), "{errors:?}");

        for (scenario, needle) in [
            (SCENARIO.replace("mutual-subscription,", "mutual-subscriptions,"), "no fixture 'mutual-subscriptions'"),
            (
                SCENARIO.replace(", contact: bob1", ""),
                "parameter 'contact' of fixture mutual-subscription is not bound",
            ),
            (SCENARIO.replace("contact: bob1", "contact: bob1, friend: bob1"), "has no parameter 'friend'"),
            (SCENARIO.replace("contact: bob1", "contact: bob9"), "unknown actor 'bob9'"),
            (SCENARIO.replace("id='${sub_id}'", "id='${sub}'"), "unknown variable ${sub}"),
        ] {
            let (_dir, root) =
                tree(&[("_fixtures/mutual-subscription.yaml", FIXTURE), ("roster/uses-fixture.yaml", &scenario)]);
            let errors = errors_of(&root);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("uses-fixture.yaml:") && errors[0].contains(needle), "{needle}: {errors:?}");
        }
    }

    #[test]
    fn connection_state_runs_through_fixtures_and_loops_are_caught() {
        let disconnecting = FIXTURE
            .replace("  - send: {as: contact, xml", "  - disconnect: {actor: contact}\n  - send: {as: contact, xml");
        let (_dir, root) =
            tree(&[("_fixtures/mutual-subscription.yaml", &disconnecting), ("roster/uses-fixture.yaml", SCENARIO)]);
        let errors = errors_of(&root);
        // On its own the fixture is fine (connections depend on the scenario); where it is used, it is not.
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("contact (bob1) is not connected"), "{errors:?}");
        assert!(errors[0].contains("disconnected at fixture mutual-subscription line 7"), "{errors:?}");

        let looping = FIXTURE.replace(
            "steps:\n",
            "steps:\n  - use: {fixture: mutual-subscription, with: {user: user, contact: contact}}\n",
        );
        let (_dir, root) = tree(&[("_fixtures/mutual-subscription.yaml", &looping)]);
        let errors = errors_of(&root);
        assert!(errors[0].contains("in a loop or too deeply: mutual-subscription → mutual-subscription"), "{errors:?}");

        let wrong_name = FIXTURE.replace("fixture: mutual-subscription", "fixture: other");
        let (_dir, root) = tree(&[("_fixtures/mutual-subscription.yaml", &wrong_name)]);
        assert!(errors_of(&root)[0].contains("fixture 'other' does not match the file name"));
    }
}
