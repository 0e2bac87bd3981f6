//! The local lab: a network namespace, dnsmasq, Prosody and ejabberd. OWNER: ca/lab helper.
