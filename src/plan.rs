//! Scenarios × servers → cases.
