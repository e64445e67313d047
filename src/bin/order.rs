//! The order service binary: flags in [`toystore::cli::OrderArgs`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    toystore::cli::run_order(toystore::cli::OrderArgs::parse())
}
