//! The toy store's client: the lab's modes, load and evaluation.
use std::process::ExitCode;

fn main() -> ExitCode {
    toystore::client::main_with_args(std::env::args_os())
}
