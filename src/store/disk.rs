//! The file operations the journal and the snapshot make, behind a small trait: the seam
//! through which tests inject disk faults (see [`super::fault::FaultyDisk`]).
//!
//! Reading at open is not behind the seam: it goes to the real file, which is what a
//! restarted process would find.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Where durable files live.
pub trait Disk: Send + Sync {
    /// Opens `path` for appending, creating it (and making the creation durable).
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;

    /// Replaces the whole file at `path` with `bytes`, so that a crash leaves the old
    /// content or the new one, never a mix.
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Called when a file may hold bytes that must never be read back (a failed write
    /// that could not be cut off): the process must not go on. Exits with status 1, so
    /// that a supervisor restarts the service, which then finds the file as it is on
    /// disk and answers nothing it could not keep.
    fn unrecoverable(&self, message: &str) -> ! {
        crate::logging::warn(format!("{message}; exiting"));
        crate::logging::flush(std::time::Duration::from_millis(500));
        std::process::exit(1)
    }
}

/// A file written at its end.
pub trait AppendFile: Send + Sync {
    /// Writes all of `bytes` at the end of the file (not yet durable).
    fn append(&self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes and makes that durable.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let existed = path.exists();
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        if !existed {
            super::snapshot::sync_parent_dir(path)?;
        }
        Ok(Box::new(file))
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        super::snapshot::write_atomically(path, bytes)
    }
}

impl AppendFile for File {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        (&mut &*self).write_all(bytes)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)?;
        self.sync_all()
    }
}
