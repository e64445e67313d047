//! The catalog service binary: flags in [`toystore::cli::CatalogArgs`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    toystore::cli::run_catalog(toystore::cli::CatalogArgs::parse())
}
