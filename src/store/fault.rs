//! A [`Disk`] for tests that injects faults on purpose: failed writes (EIO), a full disk
//! (ENOSPC), short writes, failed or held fsyncs, and a crash that loses every byte not
//! yet fsynced. It writes real files, so after a crash a test reopens the directory with
//! [`super::RealDisk`] (or a new `FaultyDisk`) and sees what a restarted process would.
//!
//! Every fault is switched on and off by the test, so a run is deterministic: no timing.
//! Clones share their faults; hand one clone to the code under test, keep one to steer.

use super::disk::{AppendFile, Disk, RealDisk};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Linux's errno for an I/O error.
const EIO: i32 = 5;
/// Linux's errno for a full disk.
const ENOSPC: i32 = 28;

/// An error a write or an fsync can be made to fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// EIO: the device failed.
    Io,
    /// ENOSPC: the disk is full.
    NoSpace,
}

impl Fault {
    fn error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Fault::Io => EIO,
            Fault::NoSpace => ENOSPC,
        })
    }
}

/// A way a write can fail: its name, and the switch that turns it on (`true`) or off.
pub type WriteFault = (&'static str, fn(&FaultyDisk, bool));

/// Every way a write can fail, for tests that check each: EIO, ENOSPC, a short write
/// (3 bytes written, then ENOSPC) and a failed fsync.
pub const WRITE_FAULTS: [WriteFault; 4] = [
    ("EIO", |disk, on| disk.fail_writes(on.then_some(Fault::Io))),
    ("ENOSPC", |disk, on| {
        disk.fail_writes(on.then_some(Fault::NoSpace))
    }),
    ("short write", |disk, on| disk.short_writes(on.then_some(3))),
    ("fsync error", |disk, on| {
        disk.fail_syncs(on.then_some(Fault::Io))
    }),
];

/// The switches, shared by every clone and every file opened through them.
#[derive(Default)]
struct Switches {
    /// Every write (and replace) fails with this, writing nothing.
    writes: Option<Fault>,
    /// Every write writes only its first this-many bytes, then fails with ENOSPC.
    short_writes: Option<usize>,
    /// Every fsync fails with this.
    syncs: Option<Fault>,
    /// Every cut (`set_len`) fails with EIO.
    cuts_fail: bool,
    /// Every replace (a snapshot) fails with this, the journal's writes unaffected.
    replaces: Option<Fault>,
    /// fsyncs block until released.
    hold_syncs: bool,
    /// fsyncs blocked right now.
    syncs_held: usize,
    /// After a crash every operation fails.
    crashed: bool,
    /// Length each file had at its last fsync: what a crash leaves.
    synced_len: HashMap<PathBuf, u64>,
}

#[derive(Default)]
struct Shared {
    switches: Mutex<Switches>,
    /// Signalled when `hold_syncs` or `syncs_held` change.
    changed: Condvar,
}

/// A disk that fails when told to. See the module doc.
#[derive(Clone, Default)]
pub struct FaultyDisk {
    shared: Arc<Shared>,
}

impl FaultyDisk {
    /// A disk that works until told otherwise.
    pub fn new() -> FaultyDisk {
        FaultyDisk::default()
    }

    /// Makes every write fail with `fault` (None: writes work again).
    pub fn fail_writes(&self, fault: Option<Fault>) {
        self.shared.switches.lock().writes = fault;
    }

    /// Makes every write write only its first `bytes` bytes and then fail with ENOSPC,
    /// as a disk that fills up mid-write does (None: writes work again).
    pub fn short_writes(&self, bytes: Option<usize>) {
        self.shared.switches.lock().short_writes = bytes;
    }

    /// Makes every fsync fail with `fault` (None: fsyncs work again).
    pub fn fail_syncs(&self, fault: Option<Fault>) {
        self.shared.switches.lock().syncs = fault;
    }

    /// Makes every whole-file replace (a snapshot) fail with `fault`, and nothing else.
    pub fn fail_replaces(&self, fault: Option<Fault>) {
        self.shared.switches.lock().replaces = fault;
    }

    /// Makes every cut of a file (`set_len`) fail.
    pub fn fail_cuts(&self, fail: bool) {
        self.shared.switches.lock().cuts_fail = fail;
    }

    /// Holds every fsync until [`release_syncs`](Self::release_syncs): a slow disk,
    /// slowed exactly as long as the test wants.
    pub fn hold_syncs(&self) {
        self.shared.switches.lock().hold_syncs = true;
    }

    /// Lets held fsyncs (and later ones) go on.
    pub fn release_syncs(&self) {
        self.shared.switches.lock().hold_syncs = false;
        self.shared.changed.notify_all();
    }

    /// Blocks until at least `count` fsyncs are held.
    ///
    /// # Panics
    /// After 10 s: the code under test never got to its fsync.
    pub fn wait_for_held_syncs(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut switches = self.shared.switches.lock();
        while switches.syncs_held < count {
            let timed_out = self
                .shared
                .changed
                .wait_until(&mut switches, deadline)
                .timed_out();
            assert!(!timed_out, "no fsync was held within 10 s");
        }
    }

    /// Crashes the machine: every file opened through this disk loses the bytes written
    /// since its last fsync, and every later operation fails with EIO.
    pub fn crash(&self) {
        let mut switches = self.shared.switches.lock();
        switches.crashed = true;
        for (path, len) in &switches.synced_len {
            // The test owns these files; if one is gone, there is nothing to lose.
            if let Ok(file) = OpenOptions::new().write(true).open(path) {
                let _ = file.set_len(*len);
            }
        }
        drop(switches);
        self.shared.changed.notify_all();
    }

    fn check(&self, fault: impl Fn(&Switches) -> Option<Fault>) -> io::Result<()> {
        let switches = self.shared.switches.lock();
        if switches.crashed {
            return Err(Fault::Io.error());
        }
        fault(&switches).map_or(Ok(()), |f| Err(f.error()))
    }
}

impl Disk for FaultyDisk {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        self.check(|_| None)?;
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        let len = file.metadata()?.len();
        self.shared
            .switches
            .lock()
            .synced_len
            .insert(path.to_path_buf(), len);
        Ok(Box::new(FaultyFile {
            disk: self.clone(),
            path: path.to_path_buf(),
            file,
        }))
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.check(|s| {
            s.replaces
                .or(s.writes)
                .or(s.syncs)
                .or(s.short_writes.map(|_| Fault::NoSpace))
        })?;
        RealDisk.replace(path, bytes)
    }

    /// A test cannot let the process exit: the thread that would have exited panics
    /// with `message` instead.
    fn unrecoverable(&self, message: &str) -> ! {
        panic!("unrecoverable: {message}")
    }
}

/// A file opened through a [`FaultyDisk`].
struct FaultyFile {
    disk: FaultyDisk,
    path: PathBuf,
    file: File,
}

impl AppendFile for FaultyFile {
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        self.disk.check(|s| s.writes)?;
        let short = self.disk.shared.switches.lock().short_writes;
        match short {
            Some(limit) if limit < bytes.len() => {
                (&self.file).write_all(&bytes[..limit])?;
                Err(Fault::NoSpace.error())
            }
            _ => (&self.file).write_all(bytes),
        }
    }

    fn sync(&self) -> io::Result<()> {
        let shared = &self.disk.shared;
        let mut switches = shared.switches.lock();
        if switches.hold_syncs {
            switches.syncs_held += 1;
            shared.changed.notify_all();
            while switches.hold_syncs && !switches.crashed {
                shared.changed.wait(&mut switches);
            }
            switches.syncs_held -= 1;
        }
        drop(switches);
        self.disk.check(|s| s.syncs)?;
        self.file.sync_data()?;
        self.synced(self.file.metadata()?.len());
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk.check(|s| s.cuts_fail.then_some(Fault::Io))?;
        // Not subject to `fail_syncs`: a test of a failed fsync wants the cut after it
        // to work (as it does on a full disk); `fail_cuts` is the switch for cuts.
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.synced(len);
        Ok(())
    }
}

impl FaultyFile {
    /// Records what a crash would leave of this file.
    fn synced(&self, len: u64) {
        self.disk
            .shared
            .switches
            .lock()
            .synced_len
            .insert(self.path.clone(), len);
    }
}
