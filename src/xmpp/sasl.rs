//! SASL mechanisms written here (a conformance tool must also send wrong proofs):
//! SCRAM-SHA-1/256(-PLUS), PLAIN. OWNER: xmpp helper.
