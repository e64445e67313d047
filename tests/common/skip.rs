//! How a test that cannot run here says so.
//!
//! libtest has no "skipped" outcome: a test that returns early counts as passed. So a
//! test that cannot run where it is (external mode, which has no process control; not
//! root, so no tmpfs; a default port taken) calls [`skip`] and returns. That prints one
//! line, `SKIPPED: <test>: <why>`, on the real stderr, which the harness does not
//! capture. `test_func.sh` counts these lines and reports those tests as skipped, not
//! passed; under plain `cargo test`, `cargo test 2>&1 | grep SKIPPED:` lists them.

use std::io::Write;

/// The start of every skip line: `test_func.sh` counts the lines that carry it.
pub const SKIPPED: &str = "SKIPPED: ";

/// Says that `test` did not run here, and why. The caller returns right after.
pub fn skip(test: &str, why: &str) {
    // Not `eprintln!`: the harness captures it for a passing test, which would hide the
    // skip. One write of the whole line, so that tests printing at the same time (and
    // libtest on stdout) do not cut it.
    let line = format!("{SKIPPED}{test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}
