//! The services' self-re-exec for the allocator setting (see `toystore::malloc` for
//! why): a service binary started without the thread-cache limit runs itself again
//! with it, once, before it starts any thread or opens any file. Same process id,
//! arguments and environment otherwise. It lives here, in the binaries, because
//! re-executing the process is a binary's business, never a library caller's.

use std::os::unix::process::CommandExt;
use std::process::Command;
use toystore::{logging, malloc};

/// Runs this program again with the thread caches limited, unless they already are
/// (or this is not glibc). Returns only if it did not (or could not) run it again.
pub fn limit_thread_caches() {
    if malloc::tuned() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    if !malloc::tune(&mut command) {
        return;
    }
    let error = command.exec();
    // `exec` returns only when it failed: go on with glibc's default caches.
    logging::warn(format!(
        "could not restart with smaller malloc caches ({error}); going on without"
    ));
}
