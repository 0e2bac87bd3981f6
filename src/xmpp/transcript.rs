//! A byte-exact, timestamped record of both directions of one connection.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Bytes plugfest sent.
    Out,
    /// Bytes plugfest received.
    In,
    /// A note from plugfest itself (TLS established, connection closed, …).
    Note,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Milliseconds since the transcript was created.
    pub t_ms: f64,
    pub dir: Direction,
    /// The bytes as UTF-8 text, when they are valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes, base64-encoded, when they are not valid UTF-8 (byte-exactness over readability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// Shared handle: the reader and writer tasks append, the runner reads at the end.
#[derive(Clone)]
pub struct Transcript {
    start: Instant,
    entries: Arc<Mutex<Vec<TranscriptEntry>>>,
}

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcript {
    pub fn new() -> Self {
        Transcript { start: Instant::now(), entries: Arc::default() }
    }

    pub fn record(&self, dir: Direction, bytes: &[u8]) {
        use base64::Engine as _;
        let (text, base64) = match std::str::from_utf8(bytes) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(bytes))),
        };
        let entry = TranscriptEntry { t_ms: self.elapsed_ms(), dir, text, base64 };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }

    pub fn note(&self, text: impl Into<String>) {
        let entry =
            TranscriptEntry { t_ms: self.elapsed_ms(), dir: Direction::Note, text: Some(text.into()), base64: None };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }

    pub fn entries(&self) -> Vec<TranscriptEntry> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn elapsed_ms(&self) -> f64 {
        (self.start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
    }
}
