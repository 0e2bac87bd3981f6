//! Readiness checks, run from inside the lab's namespace: a DNS answer from dnsmasq, and `<stream:features`
//! from an XMPP server. Small raw probes with deadlines, no fixed sleeps.

use super::process::POLL;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// One attempt's socket timeout: short, so the overall deadline stays meaningful.
const ATTEMPT: Duration = Duration::from_secs(1);

/// Ask `server`:53 for the A record of `name` until it answers with at least one address (true) or `deadline`.
pub(crate) fn wait_for_dns(server: IpAddr, name: &str, deadline: Instant, alive: &dyn Fn() -> bool) -> bool {
    let query = a_query(0x504c, name);
    while Instant::now() < deadline && alive() {
        if dns_answers(server, &query).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

fn dns_answers(server: IpAddr, query: &[u8]) -> std::io::Result<bool> {
    let bind: SocketAddr = if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().expect("literal");
    let sock = UdpSocket::bind(bind)?;
    // Connected, so "port unreachable" (dnsmasq not bound yet) fails at once instead of after the timeout.
    sock.connect((server, 53))?;
    sock.set_read_timeout(Some(ATTEMPT))?;
    sock.send(query)?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf)?;
    // Same id, a response, rcode 0 (NOERROR), at least one answer.
    Ok(n >= 12 && buf[..2] == query[..2] && buf[2] & 0x80 != 0 && buf[3] & 0x0f == 0 && (buf[6] != 0 || buf[7] != 0))
}

/// A minimal DNS query (RFC 1035 §4.1): header with RD, one question `name` IN A.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Open c2s streams to `addr` for `domain` until one answers with `<stream:features` (true), the
/// process dies (`alive` false) or `deadline` passes.
pub(crate) fn wait_for_stream_features(
    addr: SocketAddr,
    domain: &str,
    deadline: Instant,
    alive: &dyn Fn() -> bool,
) -> bool {
    while Instant::now() < deadline && alive() {
        if stream_features(addr, domain).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

/// One attempt: connect, send a stream header, read until `<stream:features` or the attempt times out.
pub(crate) fn stream_features(addr: SocketAddr, domain: &str) -> std::io::Result<bool> {
    let mut sock = TcpStream::connect_timeout(&addr, ATTEMPT)?;
    sock.set_read_timeout(Some(ATTEMPT))?;
    sock.set_write_timeout(Some(ATTEMPT))?;
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    sock.write_all(header.as_bytes())?;
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < ATTEMPT && seen.len() < 65536 {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).contains("<stream:features") {
            let _ = sock.write_all(b"</stream:stream>");
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn query_encodes_labels() {
        let q = a_query(0x1234, "prosody.lab");
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(&q[12..], b"\x07prosody\x03lab\x00\x00\x01\x00\x01");
    }

    #[test]
    fn stream_features_probe_sees_features() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>")
                .unwrap();
            s.write_all(b"<stream:features><starttls/></stream:features>").unwrap();
        });
        assert!(stream_features(addr, "x.lab").unwrap());
        server.join().unwrap();
    }

    #[test]
    fn probe_gives_up_at_the_deadline() {
        // A port that was just free: connections are refused until the deadline.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let started = Instant::now();
        assert!(!wait_for_stream_features(addr, "x.lab", deadline, &|| true));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
