//! JIDs per RFC 7622: PRECIS UsernameCaseMapped localpart, OpaqueString resourcepart,
//! IDNA2008 domainpart. The only place where JIDs are prepared or compared.
//! OWNER: jid helper. Contract below is fixed; bodies are to be written.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    #[error("{0}")]
    Invalid(String),
}

/// A prepared JID (localpart and resourcepart enforced, domainpart as a U-label string).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parse and prepare `[local@]domain[/resource]`.
    pub fn parse(_s: &str) -> Result<Jid, JidError> {
        todo!("jid helper")
    }

    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    pub fn bare(&self) -> Jid {
        Jid { resource: None, ..self.clone() }
    }
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.local {
            write!(f, "{l}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(r) = &self.resource {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::parse(s)
    }
}
