//! plugfest: an XMPP interoperability conformance harness.
//!
//! Data flow (see docs/architecture.md): scenarios + servers file → `plan` → cases →
//! `run` (client bots over `xmpp`) → `results::Run` → `report::*`.

pub mod ca;
pub mod cli;
pub mod jid;
pub mod lab;
pub mod net;
pub mod netns;
pub mod plan;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod servers;
pub mod xml;
pub mod xmpp;
pub mod yaml;
