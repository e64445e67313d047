//! The one allocator setting the services make: smaller per-thread malloc caches.
//!
//! glibc's malloc keeps, in every thread, a cache of freed blocks up to 1 KiB (7 of
//! each size). A service has 128 worker threads, and each request may run on any of
//! them, so under load every worker fills its cache with the sizes a request frees:
//! at 64 connections those caches were most of the order service's memory (29 MB after
//! 400k buys, 16 MB with only blocks up to 128 bytes cached, at the same throughput;
//! `docs/PERFORMANCE.md`, *Memory*).
//!
//! glibc reads this setting (the `glibc.malloc.tcache_max` tunable) only from the
//! `GLIBC_TUNABLES` environment variable as a process starts. So a service started
//! without it runs itself again with it added, once, before it starts any thread or
//! opens any file: same process id, arguments and environment otherwise. An operator's
//! own `glibc.malloc.tcache_*` setting is kept as it is (to restore glibc's default:
//! `GLIBC_TUNABLES=glibc.malloc.tcache_max=1032`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Largest freed block, in bytes, a thread keeps for itself.
pub const THREAD_CACHE_MAX: usize = 128;
/// Set by the second start, so that it never starts a third: glibc cuts
/// `GLIBC_TUNABLES` in place at the first `:` as it parses it (so the second start may
/// not see the limit it was given), and a setuid start drops the variable.
const RESTARTED: &str = "TOYSTORE_MALLOC_TUNED";

/// Runs this program again with the thread caches limited, unless they already are
/// (or this is not glibc). Returns only if it did not (or could not) run it again.
pub fn limit_thread_caches() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) || std::env::var_os(RESTARTED).is_some()
    {
        return;
    }
    let Some(tunables) = with_cache_limit(std::env::var_os("GLIBC_TUNABLES")) else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let error = command
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .env(RESTARTED, "1")
        .exec();
    // `exec` returns only when it failed: go on with glibc's default caches.
    crate::logging::warn(format!(
        "could not restart with smaller malloc caches ({error}); going on without"
    ));
}

/// `GLIBC_TUNABLES` with the cache limit added, or `None` if it sets the cache already.
fn with_cache_limit(current: Option<OsString>) -> Option<OsString> {
    let limit = format!("glibc.malloc.tcache_max={THREAD_CACHE_MAX}");
    match current {
        Some(current) if current.to_string_lossy().contains("glibc.malloc.tcache") => None,
        Some(current) if !current.is_empty() => {
            let mut joined = current;
            joined.push(":");
            joined.push(limit);
            Some(joined)
        }
        _ => Some(limit.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_added_to_other_tunables_and_an_operators_own_is_kept() {
        let limit = format!("glibc.malloc.tcache_max={THREAD_CACHE_MAX}");
        assert_eq!(with_cache_limit(None), Some(limit.clone().into()));
        assert_eq!(
            with_cache_limit(Some("".into())),
            Some(limit.clone().into())
        );
        assert_eq!(
            with_cache_limit(Some("glibc.malloc.arena_max=2".into())),
            Some(format!("glibc.malloc.arena_max=2:{limit}").into())
        );
        assert_eq!(
            with_cache_limit(Some("glibc.malloc.tcache_count=0".into())),
            None
        );
    }
}
