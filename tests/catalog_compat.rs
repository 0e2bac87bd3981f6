//! Area G (s2s security) under the `compat` s2s policy (CATALOG §0.7): the same trials as
//! tests/catalog.rs, on a second lab in its own network namespace (`plugfest-compat`) brought up
//! with `plugfest lab up --profile compat`. Cases that assume the `secure` policy are reported as
//! ignored (skipped, unsupported); the default lab (tests/catalog.rs) runs them.
//!
//! ```sh
//! cargo test --test catalog_compat -- --list
//! ```

mod support;

use std::process::ExitCode;

fn main() -> ExitCode {
    support::catalog_runner::run(support::catalog_runner::Target {
        lab: plugfest::lab::LabConfig {
            netns: "plugfest-compat".into(),
            state_dir: "/var/lib/plugfest/lab-compat".into(),
        },
        lab_args: vec!["--profile".into(), "compat".into()],
        scenarios: vec!["scenarios/s2s".into()],
    })
}
