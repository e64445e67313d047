//! Durable state on disk, shared by the catalog and the order service.
//!
//! - [`journal`]: an append-only file of checksummed records with group commit, and the
//!   storage-failure rule (a record refused to its writer never reappears).
//! - [`snapshot`]: whole-file replacement that a crash can never leave half-written.
//! - [`checksum`]: the framing that gives every record on disk its CRC32C.
//! - [`disk`]: the file operations behind a trait, the seam for fault injection;
//!   [`fault`]: the test disk that injects EIO, ENOSPC, short writes, held or failed
//!   fsyncs and crashes.
//! - [`lock`]: one catalog and one order service per data directory.
//! - [`data_dir_error`]: what a service says when it cannot open its data directory.

pub mod checksum;
pub mod disk;
pub mod fault;
pub mod journal;
pub mod lock;
pub mod snapshot;

pub use disk::{AppendFile, Disk, RealDisk};
pub use fault::{Fault, FaultyDisk, WRITE_FAULTS};
pub use journal::{Durability, Journal, Recovered, Ticket};
pub use lock::DirLock;

use std::io;
use std::path::Path;

/// The user the container images run as (`USER` in `dockerfiles/*.Dockerfile`).
pub const IMAGE_UID: u32 = 10001;

/// Why a service could not open its data directory `dir`. A refusal names the user
/// this process runs as: the usual cause is a Docker bind mount owned by root, which
/// the image's unprivileged user cannot write.
pub fn data_dir_error(dir: &Path, e: &io::Error) -> io::Error {
    let mut message = format!("cannot open the data directory {}: {e}", dir.display());
    if matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    ) {
        let user = running_user().unwrap_or_else(|| "an unknown user".to_string());
        message.push_str(&format!(
            "; this process runs as {user} and must be able to create and write files there \
             (the container images run as uid {IMAGE_UID}: for a bind mount, \
             `chown -R {IMAGE_UID}:{IMAGE_UID}` the host directory, or use a named volume)"
        ));
    }
    io::Error::new(e.kind(), message)
}

/// `uid U, gid G` of this process (effective ids), from `/proc/self/status`: std has
/// no getuid, and this crate has no unsafe code to call libc with.
fn running_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // "Uid:\treal\teffective\tsaved\tfs": the effective id decides access.
    let effective = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .map(str::to_string)
    };
    Some(format!(
        "uid {}, gid {}",
        effective("Uid:")?,
        effective("Gid:")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_data_dir_names_the_directory_and_the_user() {
        let dir = Path::new("/data");
        let refused =
            data_dir_error(dir, &io::Error::from(io::ErrorKind::PermissionDenied)).to_string();
        let me = running_user().expect("/proc/self/status names the user");
        for part in ["/data", me.as_str(), "uid 10001", "chown -R 10001:10001"] {
            assert!(refused.contains(part), "{part:?} missing from {refused:?}");
        }
        // Other failures are not about the user: no advice that would mislead.
        let corrupt = data_dir_error(dir, &io::Error::other("bad checksum")).to_string();
        assert!(
            corrupt.contains("/data") && !corrupt.contains("uid"),
            "{corrupt}"
        );
    }

    #[test]
    fn the_image_uid_is_the_dockerfiles_user() {
        let dockerfiles = concat!(env!("CARGO_MANIFEST_DIR"), "/dockerfiles");
        for service in ["catalog", "order", "frontend"] {
            let path = format!("{dockerfiles}/{service}.Dockerfile");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&format!("USER {IMAGE_UID}:{IMAGE_UID}")),
                "{path} does not run as uid {IMAGE_UID}"
            );
        }
    }
}
