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
//! `GLIBC_TUNABLES` environment variable as a process starts, so it is set where the
//! services are started: by the launcher ([`tune`] on each child's `Command`), in each
//! image (`ENV` in `dockerfiles/*.Dockerfile`) and in `docker-compose.yml`. A service
//! binary started any other way runs itself again with it, once, first thing in its
//! `main` (`src/bin/process/`): nothing in this library re-executes a process. An
//! operator's own `glibc.malloc.tcache_*` setting is kept as it is (to restore glibc's
//! default: `GLIBC_TUNABLES=glibc.malloc.tcache_max=1032`).

use std::ffi::OsString;
use std::process::Command;

/// Largest freed block, in bytes, a thread keeps for itself.
pub const THREAD_CACHE_MAX: usize = 128;
/// Set on a process started with the limit, so that it never starts itself again:
/// glibc cuts `GLIBC_TUNABLES` in place at the first `:` as it parses it (so the
/// process may not see the limit it was given), and a setuid start drops the variable.
const TUNED: &str = "TOYSTORE_MALLOC_TUNED";

/// Whether this process was started with the limit (by [`tune`]).
pub fn tuned() -> bool {
    std::env::var_os(TUNED).is_some()
}

/// Gives `command` the thread-cache limit: this process's `GLIBC_TUNABLES` with the
/// limit added, and the mark that it was. Whether it did: not when this is not glibc,
/// nor when the operator's `GLIBC_TUNABLES` sets the caches already.
pub fn tune(command: &mut Command) -> bool {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return false;
    }
    let Some(tunables) = with_cache_limit(std::env::var_os("GLIBC_TUNABLES")) else {
        return false;
    };
    command.env("GLIBC_TUNABLES", tunables).env(TUNED, "1");
    true
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
