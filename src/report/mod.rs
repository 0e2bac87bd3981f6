//! Renderers of `results::Run`.
