//! The order service binary: flags in [`toystore::cli::OrderArgs`], the service in
//! [`toystore::order::run`].

mod process;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    process::serve(toystore::cli::OrderArgs::parse())
}
