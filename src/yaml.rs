//! Reading YAML input files (scenarios, servers files) with errors that name file:line:col.

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// An error in an input file, pointing at the place to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when unknown.
    pub line: u64,
    /// 1-based; 0 when unknown.
    pub column: u64,
    pub message: String,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        ConfigError { file: file.to_path_buf(), line, column, message: message.into(), hint: None }
    }

    pub fn at(file: &Path, loc: serde_saphyr::Location, message: impl Into<String>) -> Self {
        Self::new(file, loc.line(), loc.column(), message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Read and deserialise a YAML file. Duplicate keys and unknown fields are errors.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(path, 0, 0, format!("cannot read: {e}"))
            .with_hint("check the path; relative paths are taken from the current directory")
    })?;
    parse(path, &text)
}

/// Deserialise YAML text that came from `path` (used for error positions only).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_saphyr::from_str::<T>(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        // saphyr's rendering repeats the source snippet; keep the first line as the message.
        let rendered = e.to_string();
        let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
        // The reader repeats the position in its message ("error: line 3 column 5: …"); we print it once.
        let message = first
            .strip_prefix("error: line ")
            .and_then(|rest| rest.split_once(": "))
            .map(|(_, msg)| msg)
            .unwrap_or(first)
            .to_string();
        ConfigError::new(path, line, column, message)
    })
}
