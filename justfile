# Contributor recipes. Newcomers need none of this: `cargo run -- demo` and `cargo test` are enough.

# Start the local lab (root)
lab:
    cargo run -- lab up

# Bring the lab up and run every scenario
demo:
    cargo run -- demo

# Everything CI runs
test:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo test

# Whole catalog, default concurrency vs --jobs 1: wall times, ratio, plugfest's CPU time
bench:
    cargo bench --bench catalog
