//! The scenario file as written: serde types with source positions, checked by `load`.
//!
//! Steps are an externally tagged enum (`- send: {…}`): internally tagged enums lose the
//! positions that `Spanned` records. Every struct denies unknown fields, so a misspelt key is
//! an error at its line instead of being silently ignored.

use crate::results::Level;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub id: Spanned<String>,
    pub title: Spanned<String>,
    #[serde(default)]
    pub catalog: Option<Spanned<String>>,
    pub roles: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub accounts: Entries<RawAccount>,
    pub actors: Spanned<Entries<RawActor>>,
    pub steps: Spanned<Vec<Spanned<RawStep>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub server: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActor {
    pub account: Spanned<String>,
    /// Optional: the role of the account's server (CATALOG §0.8 puts it on the actor).
    #[serde(default)]
    pub server: Option<Spanned<String>>,
    #[serde(default)]
    pub resource: Option<Spanned<String>>,
    #[serde(default)]
    pub presence: Option<Spanned<RawPresence>>,
    #[serde(default)]
    pub roster: Option<bool>,
    #[serde(default)]
    pub connect_at_start: Option<bool>,
}

/// `presence: true`, `presence: false` or `presence: "<presence>…</presence>"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPresence {
    Flag(bool),
    Xml(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawStep {
    Send(RawSend),
    // Boxed: an expect is much larger than the other steps.
    Expect(Box<RawExpect>),
    Connect(RawActorRef),
    Disconnect(RawActorRef),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSend {
    #[serde(rename = "as")]
    pub actor: Spanned<String>,
    pub xml: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub to: Spanned<String>,
    pub xml: Spanned<String>,
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default, rename = "ref")]
    pub spec: Option<Spanned<RawRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRef {
    pub spec: String,
    pub section: String,
    pub level: Level,
    #[serde(default)]
    pub quote: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActorRef {
    pub actor: Spanned<String>,
}

/// A YAML mapping kept in file order, with each key's position (for `accounts:` and `actors:`,
/// whose order is the declared order). Duplicate keys are rejected by the YAML reader.
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor(PhantomData))
    }
}
