//! SASL mechanisms written here (a conformance tool must also send wrong proofs):
//! SCRAM-SHA-1/256(-PLUS), PLAIN.
//!
//! Pure message logic only (no sockets): every piece of SCRAM (RFC 5802, RFC 7677) is a public
//! function, so a test can build a client-final message with a wrong proof, a foreign nonce or
//! a lying gs2 header. The XMPP exchange (`<auth/>`, `<challenge/>`, …) lives in `client`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Namespace of the SASL stream feature and its elements (RFC 6120 §6.4).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// XEP-0440: which channel-binding types the server supports.
pub const NS_SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// The channel-binding type plugfest implements (RFC 9266).
pub const CB_TLS_EXPORTER: &str = "tls-exporter";
/// Refuse server-first messages asking for more PBKDF2 rounds than this (a hostile or broken
/// server would otherwise stall the harness).
pub const MAX_ITERATIONS: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(msg.into()))
}

/// The SASL mechanisms plugfest can use, declared in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    ScramSha256Plus,
    ScramSha256,
    ScramSha1Plus,
    ScramSha1,
    Plain,
}

impl Mechanism {
    /// Most preferred first.
    pub const PREFERENCE: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::PREFERENCE.into_iter().find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The hash of a SCRAM mechanism; `None` for PLAIN.
    pub fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha256Plus | Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha1Plus | Mechanism::ScramSha1 => Some(ScramHash::Sha1),
            Mechanism::Plain => None,
        }
    }

    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus)
    }
}

/// What the connection allows when choosing a mechanism.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// The stream is protected by TLS (PLAIN is never used otherwise).
    pub tls: bool,
    /// `tls-exporter` channel-binding data is available (TLS 1.3).
    pub exporter: bool,
    /// The channel-binding types the server listed (XEP-0440), when it listed any.
    pub server_cb_types: Option<Vec<String>>,
}

impl Capabilities {
    /// Whether a -PLUS mechanism can bind with `tls-exporter` here: only when the server lists
    /// `tls-exporter` (XEP-0440). Offering -PLUS says nothing about the type: ejabberd 23.01 offers
    /// SCRAM-SHA-1-PLUS over TLS 1.3 and answers `p=tls-exporter` with "Invalid channel binding".
    pub fn can_bind(&self) -> bool {
        self.exporter && self.server_cb_types.as_ref().is_some_and(|types| types.iter().any(|t| t == CB_TLS_EXPORTER))
    }
}

/// Pick the most preferred offered mechanism that the connection allows
/// (SCRAM-SHA-256-PLUS > SCRAM-SHA-256 > SCRAM-SHA-1-PLUS > SCRAM-SHA-1 > PLAIN).
pub fn choose_mechanism(offered: &[String], caps: &Capabilities) -> Option<Mechanism> {
    Mechanism::PREFERENCE.into_iter().find(|m| {
        let usable = match m {
            Mechanism::Plain => caps.tls,
            m if m.is_plus() => caps.can_bind(),
            _ => true,
        };
        usable && offered.iter().any(|o| o.trim().eq_ignore_ascii_case(m.name()))
    })
}

/// The channel-binding flag of the GS2 header (RFC 5802 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelBinding {
    /// `n`: the client does not support channel binding (here: no TLS 1.3).
    Unsupported,
    /// `y`: the client supports channel binding but the server offered no -PLUS mechanism
    /// (the server must fail the exchange if it did offer one: downgrade protection).
    ServerDoesNotSupport,
    /// `p=<kind>`: bind to this channel; `data` is appended to the GS2 header in `c=`.
    Bound { kind: String, data: Vec<u8> },
}

impl ChannelBinding {
    /// The flag to use with `mechanism` given what the connection and server allow.
    pub fn for_mechanism(
        mechanism: Mechanism,
        caps: &Capabilities,
        offered: &[String],
        exporter: Option<&[u8]>,
    ) -> Self {
        match exporter {
            Some(data) if mechanism.is_plus() => {
                ChannelBinding::Bound { kind: CB_TLS_EXPORTER.into(), data: data.to_vec() }
            }
            Some(_) if !offered.iter().any(|o| o.trim().to_ascii_uppercase().ends_with("-PLUS")) && caps.exporter => {
                ChannelBinding::ServerDoesNotSupport
            }
            _ => ChannelBinding::Unsupported,
        }
    }

    /// `gs2-header` = cb-flag "," [authzid] "," (RFC 5802 §7).
    pub fn gs2_header(&self, authzid: Option<&str>) -> String {
        let flag = match self {
            ChannelBinding::Unsupported => "n".to_string(),
            ChannelBinding::ServerDoesNotSupport => "y".to_string(),
            ChannelBinding::Bound { kind, .. } => format!("p={kind}"),
        };
        match authzid {
            Some(a) => format!("{flag},a={},", escape_saslname(a)),
            None => format!("{flag},,"),
        }
    }

    /// The channel-binding data appended to the GS2 header in `c=` (empty unless bound).
    pub fn data(&self) -> &[u8] {
        match self {
            ChannelBinding::Bound { data, .. } => data,
            _ => &[],
        }
    }
}

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so new_from_slice cannot fail; the fallbacks keep this panic-free.
        match self {
            ScramHash::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            ScramHash::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    /// `Hi(password, salt, i)` of RFC 5802 §2.2 (PBKDF2 with HMAC).
    pub fn pbkdf2(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, iterations).to_vec(),
            ScramHash::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
        }
    }
}

/// `saslname` escaping (RFC 5802 §5.1): `=` → `=3D`, `,` → `=2C`.
pub fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// SASLprep the password (RFC 5802 §2.2 `Normalize`); a password SASLprep rejects is used as is,
/// which is what a server would see from a non-preparing client.
pub fn normalize_password(password: &str) -> String {
    stringprep::saslprep(password).map(|p| p.into_owned()).unwrap_or_else(|_| password.to_string())
}

/// A printable nonce without `,` (RFC 5802 §5.1 `r=`).
pub fn random_nonce() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    (0..24).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// `SaltedPassword := Hi(Normalize(password), salt, i)`.
pub fn salted_password(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    hash.pbkdf2(normalize_password(password).as_bytes(), salt, iterations)
}

/// `ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage)`.
pub fn client_proof(hash: ScramHash, salted: &[u8], auth_message: &str) -> Vec<u8> {
    let client_key = hash.hmac(salted, b"Client Key");
    let stored_key = hash.hash(&client_key);
    let signature = hash.hmac(&stored_key, auth_message.as_bytes());
    client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect()
}

/// `ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)`.
pub fn server_signature(hash: ScramHash, salted: &[u8], auth_message: &str) -> Vec<u8> {
    let server_key = hash.hmac(salted, b"Server Key");
    hash.hmac(&server_key, auth_message.as_bytes())
}

/// `client-final-message` = without-proof ",p=" base64(proof); any proof, right or wrong.
pub fn client_final_with_proof(without_proof: &str, proof: &[u8]) -> String {
    format!("{without_proof},p={}", B64.encode(proof))
}

/// A parsed `server-first-message` (RFC 5802 §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFirst {
    /// The combined nonce (client nonce + server part).
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// The message as received (part of AuthMessage).
    pub raw: String,
}

impl ServerFirst {
    pub fn parse(msg: &str) -> Result<ServerFirst, SaslError> {
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for (i, part) in msg.split(',').enumerate() {
            let (key, value) = match part.split_once('=') {
                Some(kv) => kv,
                None => return err(format!("server-first-message {msg:?}: attribute {part:?} has no '='")),
            };
            match key {
                "m" if i == 0 => {
                    return err(format!(
                        "server-first-message {msg:?} has a mandatory extension plugfest does not know"
                    ))
                }
                "r" => nonce = Some(value.to_string()),
                "s" => {
                    salt =
                        Some(B64.decode(value).map_err(|e| {
                            SaslError(format!("server-first-message salt {value:?} is not base64: {e}"))
                        })?)
                }
                "i" => {
                    iterations = Some(value.parse::<u32>().map_err(|_| {
                        SaslError(format!("server-first-message iteration count {value:?} is not a number"))
                    })?)
                }
                _ => {} // extensions: ignored (RFC 5802 §7 reserves them)
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return err(format!("server-first-message {msg:?} lacks r=, s= or i="));
        };
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return err(format!("server-first-message iteration count {iterations} is outside 1..={MAX_ITERATIONS}"));
        }
        Ok(ServerFirst { nonce, salt, iterations, raw: msg.to_string() })
    }
}

/// The client-final message and what it takes to check the server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFinal {
    /// `client-final-message-without-proof` ("c=…,r=…").
    pub without_proof: String,
    pub proof: Vec<u8>,
    /// What the server's `v=` must be.
    pub expected_server_signature: Vec<u8>,
    pub auth_message: String,
    pub salted_password: Vec<u8>,
}

impl ClientFinal {
    /// The complete `client-final-message`.
    pub fn message(&self) -> String {
        client_final_with_proof(&self.without_proof, &self.proof)
    }

    /// Check the `server-final-message`: `v=` must equal the expected server signature (mutual
    /// authentication, RFC 5802 §9); `e=` is the server's error.
    pub fn verify_server_final(&self, msg: &str) -> Result<(), SaslError> {
        let msg = msg.trim();
        if let Some(error) = msg.strip_prefix("e=") {
            return err(format!("the server reported a SCRAM error: {error}"));
        }
        let Some(value) = msg.split(',').find_map(|p| p.strip_prefix("v=")) else {
            return err(format!("server-final-message {msg:?} has no v= (server signature)"));
        };
        let signature =
            B64.decode(value).map_err(|e| SaslError(format!("server signature {value:?} is not base64: {e}")))?;
        if signature != self.expected_server_signature {
            return err(
                "the server's signature is wrong: it does not know the password (mutual authentication failed)",
            );
        }
        Ok(())
    }
}

/// One SCRAM exchange from the client side. Fields are public so a test can tamper with them.
#[derive(Clone, Debug)]
pub struct Scram {
    pub hash: ScramHash,
    /// The username as sent (before `saslname` escaping).
    pub username: String,
    pub password: String,
    pub client_nonce: String,
    pub binding: ChannelBinding,
    pub authzid: Option<String>,
}

impl Scram {
    pub fn new(hash: ScramHash, username: &str, password: &str, binding: ChannelBinding) -> Scram {
        Scram {
            hash,
            username: username.to_string(),
            password: password.to_string(),
            client_nonce: random_nonce(),
            binding,
            authzid: None,
        }
    }

    pub fn gs2_header(&self) -> String {
        self.binding.gs2_header(self.authzid.as_deref())
    }

    /// `client-first-message-bare` = "n=" saslname ",r=" c-nonce.
    pub fn client_first_bare(&self) -> String {
        format!("n={},r={}", escape_saslname(&self.username), self.client_nonce)
    }

    /// `client-first-message` = gs2-header client-first-message-bare.
    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header(), self.client_first_bare())
    }

    /// Compute the client-final message for this server-first message. Refuses a server nonce
    /// that does not start with the client's nonce (RFC 5802 §5.1).
    pub fn client_final(&self, server_first: &ServerFirst) -> Result<ClientFinal, SaslError> {
        if !server_first.nonce.starts_with(&self.client_nonce) || server_first.nonce.len() <= self.client_nonce.len() {
            return err(format!(
                "the server nonce {:?} does not extend the client nonce {:?}",
                server_first.nonce, self.client_nonce
            ));
        }
        let mut cbind_input = self.gs2_header().into_bytes();
        cbind_input.extend_from_slice(self.binding.data());
        let without_proof = format!("c={},r={}", B64.encode(&cbind_input), server_first.nonce);
        let auth_message = format!("{},{},{}", self.client_first_bare(), server_first.raw, without_proof);
        let salted = salted_password(self.hash, &self.password, &server_first.salt, server_first.iterations);
        Ok(ClientFinal {
            without_proof,
            proof: client_proof(self.hash, &salted, &auth_message),
            expected_server_signature: server_signature(self.hash, &salted, &auth_message),
            auth_message,
            salted_password: salted,
        })
    }
}

/// PLAIN's single message (RFC 4616): authzid NUL authcid NUL password.
pub fn plain_message(authzid: Option<&str>, authcid: &str, password: &str) -> Vec<u8> {
    format!("{}\0{authcid}\0{password}", authzid.unwrap_or("")).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rfc5802_sha1_vector() {
        let mut scram = Scram::new(ScramHash::Sha1, "user", "pencil", ChannelBinding::Unsupported);
        scram.client_nonce = "fyko+d2lbbFgONRv9qkxdawL".into();
        assert_eq!(scram.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let sf = ServerFirst::parse("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        let cf = scram.client_final(&sf).unwrap();
        assert_eq!(cf.message(), "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
        cf.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert!(cf.verify_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let mut scram = Scram::new(ScramHash::Sha256, "user", "pencil", ChannelBinding::Unsupported);
        scram.client_nonce = "rOprNGfwEbeRWgbNEkqO".into();
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let sf = ServerFirst::parse(
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        )
        .unwrap();
        let cf = scram.client_final(&sf).unwrap();
        assert_eq!(
            cf.message(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        cf.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(cf.verify_server_final("e=invalid-proof").unwrap_err().0.contains("invalid-proof"));
    }

    #[test]
    fn wrong_proof_can_be_sent() {
        assert_eq!(client_final_with_proof("c=biws,r=abc", &[0, 0, 0]), "c=biws,r=abc,p=AAAA");
    }

    #[test]
    fn foreign_server_nonce_is_refused() {
        let mut scram = Scram::new(ScramHash::Sha1, "user", "pencil", ChannelBinding::Unsupported);
        scram.client_nonce = "abc".into();
        let sf = ServerFirst::parse("r=xyzabc,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        assert!(scram.client_final(&sf).is_err());
        let sf = ServerFirst::parse("r=abc,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        assert!(scram.client_final(&sf).is_err(), "the server must add its own part");
    }

    #[test]
    fn bad_server_first_messages() {
        assert!(ServerFirst::parse("m=ext,r=a,s=QQ==,i=1").is_err());
        assert!(ServerFirst::parse("r=a,s=QQ==").is_err());
        assert!(ServerFirst::parse("r=a,s=!!,i=1").is_err());
        assert!(ServerFirst::parse("r=a,s=QQ==,i=0").is_err());
        assert!(ServerFirst::parse("r=a,s=QQ==,i=4000000000").is_err());
        assert!(ServerFirst::parse("r=a,s=QQ==,i=12,x=ext").is_ok());
    }

    #[test]
    fn usernames_are_escaped() {
        let mut scram = Scram::new(ScramHash::Sha1, "a=b,c", "p", ChannelBinding::Unsupported);
        scram.client_nonce = "n".into();
        assert_eq!(scram.client_first_bare(), "n=a=3Db=2Cc,r=n");
    }

    #[test]
    fn gs2_headers_and_channel_binding() {
        assert_eq!(ChannelBinding::Unsupported.gs2_header(None), "n,,");
        assert_eq!(ChannelBinding::ServerDoesNotSupport.gs2_header(None), "y,,");
        let bound = ChannelBinding::Bound { kind: "tls-exporter".into(), data: vec![1, 2, 3] };
        assert_eq!(bound.gs2_header(Some("u=x@d")), "p=tls-exporter,a=u=3Dx@d,");
        let mut scram = Scram::new(ScramHash::Sha256, "user", "pencil", bound);
        scram.client_nonce = "abc".into();
        let sf = ServerFirst::parse("r=abcdef,s=QSXCR+Q6sek8bf92,i=1").unwrap();
        let cf = scram.client_final(&sf).unwrap();
        let mut expected = b"p=tls-exporter,,".to_vec();
        expected.extend([1, 2, 3]);
        assert_eq!(cf.without_proof, format!("c={},r=abcdef", B64.encode(expected)));
    }

    #[test]
    fn mechanism_preference() {
        let all = names(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]);
        let exporter_listed = Some(names(&["tls-exporter"]));
        let tls13 = Capabilities { tls: true, exporter: true, server_cb_types: exporter_listed.clone() };
        let tls12 = Capabilities { tls: true, exporter: false, server_cb_types: exporter_listed };
        let clear = Capabilities::default();
        assert_eq!(choose_mechanism(&all, &tls13), Some(Mechanism::ScramSha256Plus));
        let unlisted = Capabilities { server_cb_types: None, ..tls13.clone() };
        assert_eq!(choose_mechanism(&all, &unlisted), Some(Mechanism::ScramSha256), "-PLUS only with XEP-0440");
        assert_eq!(choose_mechanism(&all, &tls12), Some(Mechanism::ScramSha256));
        assert_eq!(
            choose_mechanism(&names(&["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]), &tls13),
            Some(Mechanism::ScramSha1Plus)
        );
        assert_eq!(choose_mechanism(&names(&["PLAIN"]), &tls12), Some(Mechanism::Plain));
        assert_eq!(choose_mechanism(&names(&["PLAIN"]), &clear), None, "never PLAIN in the clear");
        assert_eq!(choose_mechanism(&names(&["DIGEST-MD5"]), &tls13), None);
        let unique_only = Capabilities { server_cb_types: Some(names(&["tls-unique"])), ..tls13.clone() };
        assert_eq!(choose_mechanism(&all, &unique_only), Some(Mechanism::ScramSha256));
    }

    #[test]
    fn cb_flag_follows_the_offer() {
        let tls13 = Capabilities { tls: true, exporter: true, server_cb_types: None };
        let data = [9u8; 32];
        let plus = names(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let plain = names(&["SCRAM-SHA-256"]);
        let pick = |m, offered: &[String], ex: Option<&[u8]>| ChannelBinding::for_mechanism(m, &tls13, offered, ex);
        assert!(matches!(pick(Mechanism::ScramSha256Plus, &plus, Some(&data)), ChannelBinding::Bound { .. }));
        // The server offers -PLUS but we did not pick it (e.g. it lacks tls-exporter): "n", not "y".
        assert_eq!(pick(Mechanism::ScramSha256, &plus, Some(&data)), ChannelBinding::Unsupported);
        assert_eq!(pick(Mechanism::ScramSha256, &plain, Some(&data)), ChannelBinding::ServerDoesNotSupport);
        assert_eq!(pick(Mechanism::ScramSha256, &plain, None), ChannelBinding::Unsupported);
    }

    #[test]
    fn plain_message_layout() {
        assert_eq!(plain_message(None, "juliet", "pw"), b"\0juliet\0pw".to_vec());
    }
}
