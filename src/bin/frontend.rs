//! The frontend service binary: flags in [`toystore::cli::FrontendArgs`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    toystore::cli::run_frontend(toystore::cli::FrontendArgs::parse())
}
