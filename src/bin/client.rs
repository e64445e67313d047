//! The lab's client: see `client --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    toystore::client::main_with_args(std::env::args_os())
}
