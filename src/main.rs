//! The `plugfest` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    plugfest::cli::main()
}
