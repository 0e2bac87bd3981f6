//! Networking below XMPP: name resolution and TLS configuration.
pub mod resolve;
pub mod tls;
