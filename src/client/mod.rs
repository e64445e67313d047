//! The lab's client (being written on its own branch).

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the client with `args` (argv[0] included).
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let _ = args.into_iter().count();
    eprintln!("client: not built yet");
    ExitCode::FAILURE
}
