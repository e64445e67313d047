//! The frontend service binary: flags in [`toystore::cli::FrontendArgs`], the service in
//! [`toystore::frontend::run`].

mod process;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    process::serve(toystore::cli::FrontendArgs::parse())
}
