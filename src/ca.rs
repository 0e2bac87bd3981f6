//! The lab CA (rcgen): a root, and per-domain leaf certificates. OWNER: ca/lab helper.
