//! Renderers of `results::Run`. They read results only; they never re-derive verdicts.

pub mod terminal;
