//! An append-only journal of newline-terminated JSON records, with group commit.
//!
//! A writer appends a record under its own service's lock (so the journal's order is
//! the order of the changes in memory), releases that lock, and then waits until the
//! record is on disk. The first waiter to find nobody flushing becomes the leader: it
//! writes everything appended so far with one `write` and one `fdatasync`, then wakes
//! the others. Writers that arrive while a flush runs are carried by the next one, so
//! under load one fsync serves many records instead of one each.

use parking_lot::{Condvar, Mutex};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How much of the file a read at open asks for.
const READ_BUFFER: usize = 64 << 10;

/// The position of an appended record; wait on it with [`Journal::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// The journal file.
pub struct Journal {
    path: PathBuf,
    /// Written only by the current leader (see `State::flushing`).
    file: File,
    state: Mutex<State>,
    /// Indexed by flush generation parity: who waits for the running flush, who for the next.
    flushed: [Condvar; 2],
    /// fsyncs done, for metrics.
    fsyncs: AtomicU64,
    /// Records appended, for metrics.
    records: AtomicU64,
}

struct State {
    /// Appended, not yet written.
    pending: Vec<u8>,
    /// Ticket of the last appended record.
    appended: u64,
    /// Ticket of the last record known to be on disk.
    durable: u64,
    /// A leader is writing and syncing right now.
    flushing: bool,
    /// Number of the latest flush (the running one, while `flushing`).
    generation: u64,
    /// The last ticket the running flush covers.
    flushing_upto: u64,
    /// After a failed write or fsync nothing can be promised any more: every later
    /// wait fails, and the service answers 500 rather than claim durability.
    failed: bool,
}

/// What [`Journal::open`] found in an existing file.
pub struct Recovered {
    /// Records read (and replayed).
    pub records: u64,
    /// Bytes cut off the end: a record torn by a crash mid-write.
    pub truncated_bytes: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, reads its records with `parse` and
    /// hands each to `replay`, in order (an error from `replay` fails the open).
    ///
    /// The file is read a line at a time, so that opening a long journal costs no more
    /// memory than what `replay` keeps. A crash can leave the last record torn (no
    /// newline, or bytes that do not parse). Such a tail is cut off. A bad record
    /// followed by good ones is not a torn write but corruption, and opening fails
    /// rather than silently drop data.
    pub fn open<T>(
        path: &Path,
        parse: impl Fn(&[u8]) -> Option<T>,
        mut replay: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<(Journal, Recovered)> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if !existed {
            super::snapshot::sync_parent_dir(path)?;
        }
        let mut reader = BufReader::with_capacity(READ_BUFFER, &file);
        let mut line = Vec::new();
        let mut records = 0;
        let mut offset = 0;
        let mut good_end = 0;
        let mut torn_at: Option<u64> = None;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            let next = offset + read as u64;
            let parsed = match line.strip_suffix(b"\n") {
                Some(record) if !record.is_empty() => parse(record),
                _ => None,
            };
            match parsed {
                Some(record) if torn_at.is_none() => {
                    replay(record)?;
                    records += 1;
                    good_end = next;
                }
                Some(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: corrupt record at byte {}",
                            path.display(),
                            torn_at.unwrap_or(0)
                        ),
                    ))
                }
                None => {
                    torn_at.get_or_insert(offset);
                }
            }
            offset = next;
        }
        drop(reader);
        let truncated_bytes = offset - good_end;
        if truncated_bytes > 0 {
            file.set_len(good_end)?;
            file.sync_all()?;
        }
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            state: Mutex::new(State {
                pending: Vec::new(),
                appended: 0,
                durable: 0,
                flushing: false,
                generation: 0,
                flushing_upto: 0,
                failed: false,
            }),
            flushed: [Condvar::new(), Condvar::new()],
            fsyncs: AtomicU64::new(0),
            records: AtomicU64::new(records),
        };
        Ok((
            journal,
            Recovered {
                records,
                truncated_bytes,
            },
        ))
    }

    /// Opens a journal of JSON records of type `T`, handing each to `replay`, and says
    /// on stderr when a torn tail was cut off (what an operator wants to know after a
    /// crash).
    pub fn open_json<T: serde::de::DeserializeOwned>(
        path: &Path,
        replay: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<Journal> {
        let (journal, recovered) =
            Self::open(path, |line| serde_json::from_slice::<T>(line).ok(), replay)?;
        if recovered.truncated_bytes > 0 {
            crate::logging::warn(format!(
                "{}: cut a torn record ({} bytes) off the end",
                path.display(),
                recovered.truncated_bytes
            ));
        }
        Ok(journal)
    }

    /// Appends one record (a JSON object without newlines). Cheap: a copy into memory.
    pub fn append(&self, record: &[u8]) -> Ticket {
        debug_assert!(!record.contains(&b'\n'));
        let mut state = self.state.lock();
        state.pending.extend_from_slice(record);
        state.pending.push(b'\n');
        state.appended += 1;
        self.records.fetch_add(1, Ordering::Relaxed);
        Ticket(state.appended)
    }

    /// Appends a serializable record.
    pub fn append_json<T: serde::Serialize>(&self, record: &T) -> Ticket {
        // Our records are plain structs: serializing them cannot fail.
        self.append(&serde_json::to_vec(record).unwrap_or_default())
    }

    /// The ticket of the last record appended so far: waiting on it makes every change
    /// already made visible also durable (for a reply about a change made by another).
    pub fn tail(&self) -> Ticket {
        Ticket(self.state.lock().appended)
    }

    /// Blocks until the record of `ticket` (and every one before it) is on disk.
    ///
    /// Waiters sleep on the condvar of the flush that will cover them: the one running
    /// (their record is in its batch) or the next. A finished flush wakes exactly its
    /// own waiters, plus one waiter of the next flush to lead it; so each writer wakes
    /// once, instead of every flush waking everyone to find most still uncovered.
    pub fn wait_durable(&self, ticket: Ticket) -> io::Result<()> {
        let mut state = self.state.lock();
        loop {
            if state.failed {
                return Err(io::Error::other(format!(
                    "{}: an earlier write failed",
                    self.path.display()
                )));
            }
            if state.durable >= ticket.0 {
                return Ok(());
            }
            if state.flushing {
                let generation = if ticket.0 <= state.flushing_upto {
                    state.generation
                } else {
                    state.generation + 1
                };
                self.flushed[(generation % 2) as usize].wait(&mut state);
                continue;
            }
            state.flushing = true;
            state.generation += 1;
            let batch = std::mem::take(&mut state.pending);
            let upto = state.appended;
            state.flushing_upto = upto;
            drop(state);
            let result = (&self.file)
                .write_all(&batch)
                .and_then(|()| self.file.sync_data());
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            state = self.state.lock();
            state.flushing = false;
            match result {
                Ok(()) => state.durable = upto,
                Err(_) => state.failed = true,
            }
            if state.pending.capacity() == 0 {
                // Give the buffer back to save an allocation next time.
                let mut batch = batch;
                batch.clear();
                state.pending = batch;
            }
            let generation = state.generation;
            self.flushed[(generation % 2) as usize].notify_all();
            if state.failed {
                self.flushed[((generation + 1) % 2) as usize].notify_all();
            } else {
                self.flushed[((generation + 1) % 2) as usize].notify_one();
            }
        }
    }

    /// Makes everything appended so far durable, then empties the file. The caller
    /// must have saved what the records said elsewhere (a snapshot) and must keep new
    /// appends out while this runs (it holds its own lock).
    pub fn truncate(&self) -> io::Result<()> {
        self.wait_durable(self.tail())?;
        self.file.set_len(0)?;
        self.file.sync_all()
    }

    /// fsyncs done so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Records in the file (since the last truncation).
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Resets the record count after a truncation.
    pub fn reset_records(&self) {
        self.records.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn parse(line: &[u8]) -> Option<u64> {
        serde_json::from_slice::<u64>(line).ok()
    }

    /// Opens the journal at `path`: it, the records replayed, the bytes cut off.
    fn open(path: &Path) -> io::Result<(Journal, Vec<u64>, u64)> {
        let mut records = Vec::new();
        let (journal, recovered) = Journal::open(path, parse, |r| {
            records.push(r);
            Ok(())
        })?;
        assert_eq!(recovered.records, records.len() as u64);
        Ok((journal, records, recovered.truncated_bytes))
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (journal, records, _) = open(&path).unwrap();
        assert!(records.is_empty());
        for n in 1..=3 {
            let ticket = journal.append_json(&n);
            journal.wait_durable(ticket).unwrap();
        }
        drop(journal);
        let (_, records, cut) = open(&path).unwrap();
        assert_eq!(records, vec![1, 2, 3]);
        assert_eq!(cut, 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let cases: &[(&[u8], usize)] = &[
            (b"1\n2\n3", 1),
            (b"1\n2\n{\"x", 3),
            (b"1\n2\n\0\0\0\0", 4),
            (b"1\n2\nzz\n", 3),
        ];
        for (bytes, cut) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            std::fs::write(&path, bytes).unwrap();
            let (journal, records, truncated) = open(&path).unwrap();
            assert_eq!(records, vec![1, 2], "{bytes:?}");
            assert_eq!(truncated, *cut as u64, "{bytes:?}");
            journal.wait_durable(journal.append(b"9")).unwrap();
            drop(journal);
            assert_eq!(std::fs::read(&path).unwrap(), b"1\n2\n9\n", "{bytes:?}");
        }
    }

    #[test]
    fn corruption_in_the_middle_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, b"1\nbad\n3\n").unwrap();
        let error = open(&path).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn concurrent_writers_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let journal = Arc::new(open(&path).unwrap().0);
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        journal
                            .wait_durable(journal.append_json(&(t * 1000 + i)))
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(journal.fsyncs() <= 800, "fsyncs {}", journal.fsyncs());
        drop(journal);
        let (_, records, _) = open(&path).unwrap();
        assert_eq!(records.len(), 800);
    }
}
