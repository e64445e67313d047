//! The catalog service binary: flags in [`toystore::cli::CatalogArgs`], the service in
//! [`toystore::catalog::run`].

mod process;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    process::serve(toystore::cli::CatalogArgs::parse())
}
