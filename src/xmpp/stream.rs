//! One XML stream over TCP, upgradable to TLS: write elements, read events. OWNER: xmpp helper.
