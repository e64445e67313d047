//! One process per data directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// A data directory held by this process: two services writing one journal would
/// interleave their records, and one rebuilding `orders.idx` would empty it under the
/// other. The lock is the kernel's (`flock` on `LOCK` in the directory), so it goes
/// with the process however that ends, `kill -9` included.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the directory `dir` (which must exist), or fails at once if another
    /// process holds it.
    pub fn take(dir: &Path) -> io::Result<DirLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process", dir.display()),
            )),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::take(dir.path()).unwrap();
        let refused = DirLock::take(dir.path()).err().unwrap();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        assert!(refused.to_string().contains("in use by another process"));
        drop(held);
        DirLock::take(dir.path()).unwrap();
    }
}
