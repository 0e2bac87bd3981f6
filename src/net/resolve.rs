//! Where to connect: SRV `_xmpp-client._tcp` (RFC 6120 §3.2, ordered per RFC 2782), then
//! A/AAAA, unless the servers file gives a static address. The only place names are resolved.
//! OWNER: xmpp helper.

use std::net::{IpAddr, SocketAddr};

/// Which service to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Client,
    Server,
}

/// A connection target: a domain plus optional static overrides from the servers file.
#[derive(Clone, Debug)]
pub struct Target {
    pub domain: String,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
}

/// Candidate socket addresses in the order they should be tried.
pub async fn resolve(_target: &Target, _service: Service) -> anyhow::Result<Vec<SocketAddr>> {
    todo!("xmpp helper")
}
