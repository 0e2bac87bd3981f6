//! Just enough DER to write the subjectAltName extension ourselves: rcgen cannot encode the SRVName
//! otherName (RFC 4985, IA5String), which XMPP's SRV-ID needs (RFC 6120 §13.7.1.2.1).

/// One name of a subjectAltName extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SanName {
    /// dNSName: a DNS-ID or, with a leading `*.`, a wildcard (A-labels only).
    Dns(String),
    /// otherName id-on-dnsSRV (1.3.6.1.5.5.7.8.7), IA5String such as `_xmpp-server.example.org`.
    SrvName(String),
    /// otherName id-on-xmppAddr (1.3.6.1.5.5.7.8.5), UTF8String; a server's is its domain (U-label allowed).
    XmppAddr(String),
}

/// Content octets of the OIDs, written out once: 1.3.6.1.5.5.7.8.7 and 1.3.6.1.5.5.7.8.5.
const OID_SRV_NAME: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07];
const OID_XMPP_ADDR: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_IA5_STRING: u8 = 0x16;
/// GeneralName choices are context-specific: [0] otherName (constructed), [2] dNSName (primitive).
const TAG_OTHER_NAME: u8 = 0xa0;
const TAG_DNS_NAME: u8 = 0x82;
/// otherName's `value [0] EXPLICIT ANY`.
const TAG_EXPLICIT_0: u8 = 0xa0;

/// The DER value of a subjectAltName extension (`GeneralNames ::= SEQUENCE OF GeneralName`).
pub(crate) fn subject_alt_name(names: &[SanName]) -> Vec<u8> {
    let mut content = Vec::new();
    for name in names {
        match name {
            SanName::Dns(dns) => content.extend(tlv(TAG_DNS_NAME, dns.as_bytes())),
            SanName::SrvName(srv) => content.extend(other_name(OID_SRV_NAME, TAG_IA5_STRING, srv)),
            SanName::XmppAddr(jid) => content.extend(other_name(OID_XMPP_ADDR, TAG_UTF8_STRING, jid)),
        }
    }
    tlv(TAG_SEQUENCE, &content)
}

/// `otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT <string> }`.
fn other_name(oid: &[u8], string_tag: u8, value: &str) -> Vec<u8> {
    let mut content = tlv(TAG_OID, oid);
    content.extend(tlv(TAG_EXPLICIT_0, &tlv(string_tag, value.as_bytes())));
    tlv(TAG_OTHER_NAME, &content)
}

/// Tag, definite length (short or long form), content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_short_and_long_form() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 200]);
        assert_eq!(&long[..3], [0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0; 300]);
        assert_eq!(&longer[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(longer.len(), 304);
    }

    #[test]
    fn srv_name_matches_a_hand_checked_encoding() {
        // SEQUENCE { [0] { OID 1.3.6.1.5.5.7.8.7, [0] { IA5String "_x.a" } } }
        let der = subject_alt_name(&[SanName::SrvName("_x.a".into())]);
        let expected = [
            0x30, 0x14, 0xa0, 0x12, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07, 0xa0, 0x06, 0x16, 0x04,
            b'_', b'x', b'.', b'a',
        ];
        assert_eq!(der, expected);
    }
}
