//! One process of a kind per data directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// A service's files in a data directory, held by this process: two catalogs (or two
/// order services) writing one journal would interleave their records, and a second
/// order service rebuilding `orders.idx` would empty it under the first. Different
/// services may share a directory (the launcher gives them one): each holds its own
/// lock file. The lock is the kernel's (`flock`), so it goes with the process however
/// that ends, `kill -9` included.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes `dir/name` (creating the directory if needed), or fails at once if another
    /// process holds it.
    pub fn take(dir: &Path, name: &str) -> io::Result<DirLock> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another process ({} is locked)",
                    dir.display(),
                    path.display()
                ),
            )),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_until_released_and_others_in_the_directory_are_free() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::take(dir.path(), "catalog.lock").unwrap();
        let refused = DirLock::take(dir.path(), "catalog.lock").err().unwrap();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        assert!(refused.to_string().contains("in use by another process"));
        let _other = DirLock::take(dir.path(), "orders.lock").unwrap();
        drop(held);
        DirLock::take(dir.path(), "catalog.lock").unwrap();
    }
}
