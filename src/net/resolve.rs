//! Where to connect: SRV `_xmpp-client._tcp` (RFC 6120 §3.2, ordered per RFC 2782), then
//! A/AAAA, unless the servers file gives a static address; `_xmpps-*` for XEP-0368 direct TLS.
//! The only place names are resolved.

use anyhow::{anyhow, bail};
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use rand::Rng;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Deadline for one DNS lookup (the lab resolver answers in microseconds; a real one in well under this).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which service to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Client,
    Server,
    /// XEP-0368 direct TLS (`_xmpps-client._tcp`): only ever found by SRV.
    DirectClient,
    /// XEP-0368 direct TLS (`_xmpps-server._tcp`): only ever found by SRV.
    DirectServer,
}

impl Service {
    /// The SRV service label (RFC 6120 §3.2.1).
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Service::Client => "_xmpp-client._tcp",
            Service::Server => "_xmpp-server._tcp",
            Service::DirectClient => "_xmpps-client._tcp",
            Service::DirectServer => "_xmpps-server._tcp",
        }
    }

    /// Direct TLS services have no fallback: without an SRV record they are not offered (XEP-0368 §3).
    pub fn is_direct_tls(self) -> bool {
        matches!(self, Service::DirectClient | Service::DirectServer)
    }

    /// The port used when there is no SRV record and no static port (RFC 6120 §14.7).
    pub fn default_port(self) -> u16 {
        match self {
            Service::Client => 5222,
            Service::Server => 5269,
            // Conventional only: direct TLS is found by SRV, never by a default port.
            Service::DirectClient => 5223,
            Service::DirectServer => 5270,
        }
    }
}

/// A connection target: a domain plus optional static overrides from the servers file.
#[derive(Clone, Debug)]
pub struct Target {
    pub domain: String,
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
}

/// One SRV answer, as far as ordering and connecting need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Target host name without the trailing dot; "." when the service is decidedly not available.
    pub target: String,
}

/// Candidate socket addresses in the order they should be tried.
///
/// - `address` set: that address, on `port` or the service's default port (no DNS at all).
/// - only `port` set: A/AAAA of the domain on that port (a port override means "no SRV").
/// - otherwise: SRV, ordered per RFC 2782, each target's A/AAAA in turn; no SRV records (or a
///   failed SRV lookup, RFC 6120 §3.2.2) falls back to A/AAAA of the domain on the default port.
///
/// IDN domains are looked up by their A-label.
pub async fn resolve(target: &Target, service: Service) -> anyhow::Result<Vec<SocketAddr>> {
    if let Some(ip) = target.address {
        return Ok(vec![SocketAddr::new(ip, target.port.unwrap_or(service.default_port()))]);
    }
    // An IP literal as the domain needs no DNS (RFC 7622 §3.2 allows them).
    if let Some(ip) = ip_literal(&target.domain) {
        return Ok(vec![SocketAddr::new(ip, target.port.unwrap_or(service.default_port()))]);
    }
    let ascii = ascii_domain(&target.domain)?;
    let resolver = system_resolver()?;
    if let Some(port) = target.port {
        return host_addrs(&resolver, &ascii, port).await;
    }

    let srv = match srv_records(&resolver, &ascii, service).await {
        Ok(records) if records.is_empty() && service.is_direct_tls() => {
            bail!("{}.{ascii} has no SRV record: the domain offers no direct TLS (XEP-0368 §3)", service.srv_prefix())
        }
        Ok(records) => records,
        Err(e) if service.is_direct_tls() => return Err(e),
        Err(e) => {
            // RFC 6120 §3.2.2: no SRV answer → fall back to the domain's address records.
            return host_addrs(&resolver, &ascii, service.default_port())
                .await
                .map_err(|a| anyhow!("{a:#} (and the SRV lookup failed: {e:#})"));
        }
    };
    if srv.is_empty() {
        return host_addrs(&resolver, &ascii, service.default_port())
            .await
            .map_err(|e| anyhow!("{e:#} (and there is no {}.{ascii} SRV record)", service.srv_prefix()));
    }
    if srv.iter().all(|r| r.target == ".") {
        bail!(
            "{}.{ascii} has target \".\": the domain says this service is not available (RFC 2782, RFC 6120 §3.2.1)",
            service.srv_prefix()
        );
    }

    let ordered = order_srv(srv, &mut rand::thread_rng());
    let mut addrs = Vec::new();
    let mut errors = Vec::new();
    for record in ordered.iter().filter(|r| r.target != ".") {
        match host_addrs(&resolver, &record.target, record.port).await {
            Ok(found) => {
                for addr in found {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if addrs.is_empty() {
        bail!("none of the SRV targets of {}.{ascii} has an address: {}", service.srv_prefix(), errors.join("; "));
    }
    Ok(addrs)
}

/// Order SRV records per RFC 2782: ascending priority; within one priority, a weighted random
/// permutation (weight-0 records are placed first in the running sum, so they are chosen rarely).
pub fn order_srv(mut records: Vec<SrvRecord>, rng: &mut impl Rng) -> Vec<SrvRecord> {
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let group_len = records.iter().take_while(|r| r.priority == priority).count();
        let mut group: Vec<SrvRecord> = records.drain(..group_len).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.gen_range(0..=total);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

/// The domain as DNS wants it: A-labels, no trailing dot.
pub fn ascii_domain(domain: &str) -> anyhow::Result<String> {
    // Targets come from the servers file as plain strings, so the conversion happens here;
    // `Jid::domain_ascii` does the same for prepared JIDs.
    let trimmed = domain.trim_end_matches('.');
    idna::domain_to_ascii(trimmed).map_err(|e| anyhow!("{domain:?} is not a valid domain name for DNS: {e}"))
}

fn ip_literal(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')).unwrap_or(domain);
    inner.parse().ok()
}

fn system_resolver() -> anyhow::Result<TokioResolver> {
    // Built per call: it reads /etc/resolv.conf (inside a lab namespace, the lab's dnsmasq), and a
    // resolver must not outlive the tokio runtime its background tasks run on.
    let mut builder = TokioResolver::builder_tokio()
        .map_err(|e| anyhow!("cannot read the system DNS configuration (/etc/resolv.conf): {e}"))?;
    // A first, AAAA only when there is no A: with both in parallel, an /etc/hosts answer for A
    // still waits for the AAAA query to time out when DNS is unreachable.
    builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    builder.build().map_err(|e| anyhow!("cannot build a DNS resolver from /etc/resolv.conf: {e}"))
}

/// The SRV records of `service` for `domain` (empty: none), as published.
pub async fn srv_lookup(domain: &str, service: Service) -> anyhow::Result<Vec<SrvRecord>> {
    let ascii = ascii_domain(domain)?;
    srv_records(&system_resolver()?, &ascii, service).await
}

async fn srv_records(resolver: &TokioResolver, ascii: &str, service: Service) -> anyhow::Result<Vec<SrvRecord>> {
    // Trailing dot: a fully qualified name, so resolv.conf search domains are never appended.
    let name = format!("{}.{ascii}.", service.srv_prefix());
    let lookup = match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup(name.as_str(), RecordType::SRV)).await {
        Err(_) => bail!("SRV lookup of {name} timed out after {LOOKUP_TIMEOUT:?}"),
        Ok(Err(e)) if e.is_no_records_found() => return Ok(Vec::new()),
        Ok(Err(e)) => bail!("SRV lookup of {name} failed: {e}"),
        Ok(Ok(lookup)) => lookup,
    };
    let records = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => Some(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: if srv.target.is_root() {
                    ".".to_string()
                } else {
                    srv.target.to_ascii().trim_end_matches('.').to_string()
                },
            }),
            _ => None,
        })
        .collect();
    Ok(records)
}

async fn host_addrs(resolver: &TokioResolver, host: &str, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let name = format!("{host}.");
    let lookup = match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(name.as_str())).await {
        Err(_) => bail!("address lookup of {host} timed out after {LOOKUP_TIMEOUT:?}"),
        Ok(Err(e)) if e.is_no_records_found() => bail!("{host} has no A or AAAA record"),
        Ok(Err(e)) => bail!("address lookup of {host} failed: {e}"),
        Ok(Ok(lookup)) => lookup,
    };
    let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
    if addrs.is_empty() {
        bail!("{host} has no A or AAAA record");
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord { priority, weight, port: 5222, target: target.to_string() }
    }

    #[test]
    fn lower_priority_always_comes_first() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let out = order_srv(vec![rec(20, 100, "c"), rec(10, 0, "a"), rec(10, 5, "b"), rec(30, 1, "d")], &mut rng);
            let prios: Vec<u16> = out.iter().map(|r| r.priority).collect();
            assert_eq!(prios, vec![10, 10, 20, 30]);
            assert_eq!(out.len(), 4);
        }
    }

    #[test]
    fn weights_bias_the_first_choice() {
        let mut rng = StdRng::seed_from_u64(42);
        let mut heavy_first = 0;
        for _ in 0..2000 {
            let out = order_srv(vec![rec(0, 1, "light"), rec(0, 9, "heavy")], &mut rng);
            if out[0].target == "heavy" {
                heavy_first += 1;
            }
        }
        // RFC 2782 picks from 0..=sum, so "light" wins for 0 and 1: heavy first ~9/11 of the time.
        assert!((1500..=1800).contains(&heavy_first), "heavy first {heavy_first} of 2000");
    }

    #[test]
    fn zero_weights_still_all_appear() {
        let mut rng = StdRng::seed_from_u64(1);
        let out = order_srv(vec![rec(0, 0, "a"), rec(0, 0, "b"), rec(0, 0, "c")], &mut rng);
        let mut names: Vec<&str> = out.iter().map(|r| r.target.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["a", "b", "c"]);
    }

    #[tokio::test]
    async fn static_address_needs_no_dns() {
        let t = Target { domain: "prosody.lab".into(), address: Some("127.0.0.11".parse().unwrap()), port: None };
        assert_eq!(resolve(&t, Service::Client).await.unwrap(), vec!["127.0.0.11:5222".parse().unwrap()]);
        assert_eq!(resolve(&t, Service::Server).await.unwrap(), vec!["127.0.0.11:5269".parse().unwrap()]);
        let t = Target { port: Some(15222), ..t };
        assert_eq!(resolve(&t, Service::Client).await.unwrap(), vec!["127.0.0.11:15222".parse().unwrap()]);
    }

    #[tokio::test]
    async fn ip_literal_domains_need_no_dns() {
        let t = Target { domain: "[::1]".into(), address: None, port: None };
        assert_eq!(resolve(&t, Service::Client).await.unwrap(), vec!["[::1]:5222".parse().unwrap()]);
    }

    #[test]
    fn idn_domains_become_a_labels() {
        assert_eq!(ascii_domain("bücher.lab").unwrap(), "xn--bcher-kva.lab");
        assert_eq!(ascii_domain("Prosody.Lab.").unwrap(), "prosody.lab");
    }
}
