//! The whole catalog as cargo tests: every scenario × assignment of servers is one trial, named
//! `<area>::<scenario>::<server→server>` (e.g. `roster::roster-remote-add::prosody→ejabberd`), so
//! cargo test's usual flags work:
//!
//! ```sh
//! cargo test --test catalog -- --list                      # every trial, no lab needed
//! cargo test --test catalog -- roster::                    # one area
//! cargo test --test catalog -- --exact 'roster::roster-remote-add::prosody→ejabberd'
//! cargo test --test catalog -- --skip ejabberd
//! ```
//!
//! Trials run against the local lab (brought up first if needed; root required), or against the
//! servers file named by `PLUGFEST_SERVERS`. pass, warn and xfail pass; skip is reported as ignored with
//! its reason; fail, error and xpass fail with the failure text (expected vs got). The results of the
//! trials that ran are written as a normal run's reports (results.json, index.html, junit.xml,
//! summary.md) under `target/tmp/plugfest-catalog/<run-id>/`.

mod support;

use std::process::ExitCode;

fn main() -> ExitCode {
    support::catalog_runner::run(support::catalog_runner::Target {
        lab: Default::default(),
        lab_args: Vec::new(),
        scenarios: vec!["scenarios".into()],
    })
}
