//! An append-only journal of checksummed records, with group commit.
//!
//! **On disk** each record is one line `<crc> <json>\n`, `crc` being the CRC32C of the
//! JSON as 8 lower-case hex digits (see [`super::checksum`]). At open every line is
//! checked:
//! - a line that is framed, newline-terminated and whose checksum holds is a record;
//! - a framed, newline-terminated line whose checksum fails (or that does not parse)
//!   was changed after it was written: the open is refused, naming the file and the
//!   line's byte offset;
//! - anything else (no newline, no frame: zeros, half a record) is what a crash leaves
//!   at the end of a write: if nothing but such lines follows the last record, they are
//!   a torn tail and are cut off; if a record follows, it is damage and refused the same.
//! - A line that is a bare JSON record (a journal from before checksums) is refused too:
//!   this version reads no record it cannot check.
//!
//! A kill can only leave a prefix of a write, so its tail is never a complete framed
//! line with a bad checksum; such a line is refused even at the end, for an operator to
//! look at, rather than guessed to be torn.
//!
//! **Group commit.** A writer appends a record under its own service's lock (so the
//! journal's order is the order of the changes), releases that lock, and then waits
//! until the record is on disk. The first waiter to find nobody flushing becomes the
//! leader: it writes everything appended so far with one `write` and one `fdatasync`,
//! then wakes the others. Writers that arrive while a flush runs are carried by the next
//! one, so under load one fsync serves many records instead of one each.
//!
//! **Failures.** [`Journal::wait_durable`] answers `Ok` only for a record that is on
//! disk, and `Err` only for one that is not and never will be. When a write or fsync
//! fails, every record not yet on disk (the failed batch and everything appended
//! meanwhile) is lost: its waiters get `Err`, and the file is cut back to the last byte
//! known durable before anyone is answered, so a record refused to its writer can never
//! reappear after a restart. If even that cut fails, [`Disk::unrecoverable`] ends the
//! process (status 1): going on would risk serving, after a restart, a change that was
//! refused. The journal is not broken for good: the next append tries the disk again,
//! and [`Journal::is_failed`] says whether the last attempt failed; [`Journal::probe`]
//! lets a service find out, without a client's write, when the disk accepts writes again.

use super::checksum::{self, FrameError};
use super::disk::{AppendFile, Disk, RealDisk};
use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much of the file a read at open asks for.
const READ_BUFFER: usize = 64 << 10;

/// What [`Journal::probe`] writes (and cuts off again): enough to need fresh blocks on a
/// full disk, where a write that fits in the last, partly used block would succeed.
const PROBE_BYTES: usize = 64 << 10;
/// How often a healthy journal's [`Journal::probe`] writes: `/health` may be asked
/// many times a second, and a disk that fills up is noticed within this.
pub const HEALTHY_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The position of an appended record; wait on it with [`Journal::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk.
    OnDisk,
    /// Its write failed: not on disk and never will be.
    Lost,
    /// Not written yet, or being written.
    InFlight,
}

/// The journal file.
pub struct Journal {
    path: PathBuf,
    disk: Arc<dyn Disk>,
    /// Written only by whoever holds `State::flushing`.
    file: Box<dyn AppendFile>,
    state: Mutex<State>,
    /// Indexed by flush generation parity: who waits for the running flush, who for the next.
    flushed: [Condvar; 2],
    /// fsyncs done, for metrics.
    fsyncs: AtomicU64,
    /// Records appended, for metrics.
    records: AtomicU64,
}

struct State {
    /// Appended, not yet written (framed).
    pending: Vec<u8>,
    /// Ticket of the last appended record.
    appended: u64,
    /// Every ticket up to this one is settled: on disk, or in `lost`.
    settled: u64,
    /// Tickets whose write failed, as inclusive ranges in ascending order (one per
    /// failure that followed a success: consecutive failures extend the last range).
    lost: Vec<(u64, u64)>,
    /// Bytes of the file known to be on disk: where a failed write is cut back to.
    durable_len: u64,
    /// The file is being written (a flush, a probe or a truncation) right now.
    flushing: bool,
    /// Number of the latest flush (the running one, while `flushing`).
    generation: u64,
    /// The last ticket the running flush covers.
    flushing_upto: u64,
    /// The last write or fsync failed and none has succeeded since.
    failed: bool,
    /// When a probe last tried the disk while the journal was healthy.
    last_healthy_probe: Option<Instant>,
}

impl State {
    fn durability(&self, ticket: u64) -> Durability {
        if ticket > self.settled {
            Durability::InFlight
        } else if self
            .lost
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&ticket))
        {
            Durability::Lost
        } else {
            Durability::OnDisk
        }
    }

    /// Every ticket appended so far and not on disk is lost.
    fn lose_unwritten(&mut self) {
        self.pending.clear();
        let from = self.settled + 1;
        if from <= self.appended {
            match self.lost.last_mut() {
                Some((_, to)) if *to + 1 == from => *to = self.appended,
                _ => self.lost.push((from, self.appended)),
            }
        }
        self.settled = self.appended;
        self.failed = true;
    }
}

/// What [`Journal::open`] found in an existing file.
pub struct Recovered {
    /// Records read (and replayed).
    pub records: u64,
    /// Bytes cut off the end: a record torn by a crash mid-write.
    pub truncated_bytes: u64,
}

/// What one line of the file is.
enum Line<T> {
    Record(T),
    /// Complete and framed, but changed (or unreadable): never a crash's doing.
    Damaged(&'static str),
    /// What a torn write leaves: acceptable only at the end.
    Torn,
}

fn classify<T>(line: &[u8], parse: &impl Fn(&[u8]) -> Option<T>) -> Line<T> {
    let Some(line) = line.strip_suffix(b"\n") else {
        return Line::Torn;
    };
    match checksum::unframe(line) {
        Ok(payload) => parse(payload).map_or(Line::Damaged("record does not parse"), Line::Record),
        Err(FrameError::Mismatch) => Line::Damaged(FrameError::Mismatch.describe()),
        Err(FrameError::Unframed) if parse(line).is_some() => {
            Line::Damaged("record without a checksum (written by a version before checksums)")
        }
        Err(FrameError::Unframed) => Line::Torn,
    }
}

fn damaged(path: &Path, offset: u64, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: damaged record at byte {offset}: {why}", path.display()),
    )
}

impl Journal {
    /// Opens (or creates) the journal at `path` on the real disk, reads its records
    /// with `parse` and hands each to `replay`, in order (an error from `replay` fails
    /// the open). See the module doc for what is cut and what is refused.
    pub fn open<T>(
        path: &Path,
        parse: impl Fn(&[u8]) -> Option<T>,
        replay: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<(Journal, Recovered)> {
        Self::open_with(Arc::new(RealDisk), path, parse, replay)
    }

    /// [`open`](Self::open) with the journal's writes going to `disk` (the seam tests
    /// inject faults through).
    ///
    /// The file is read a line at a time, so that opening a long journal costs no more
    /// memory than what `replay` keeps.
    pub fn open_with<T>(
        disk: Arc<dyn Disk>,
        path: &Path,
        parse: impl Fn(&[u8]) -> Option<T>,
        mut replay: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<(Journal, Recovered)> {
        let file = disk.open_append(path)?;
        let mut reader = BufReader::with_capacity(READ_BUFFER, File::open(path)?);
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
            match classify(&line, &parse) {
                Line::Torn => {
                    torn_at.get_or_insert(offset);
                }
                Line::Damaged(why) => return Err(damaged(path, offset, why)),
                Line::Record(_) if torn_at.is_some() => {
                    return Err(damaged(path, torn_at.unwrap_or(offset), "not a record"))
                }
                Line::Record(record) => {
                    replay(record)?;
                    records += 1;
                    good_end = offset + read as u64;
                }
            }
            offset += read as u64;
        }
        drop(reader);
        let truncated_bytes = offset - good_end;
        if truncated_bytes > 0 {
            file.set_len(good_end)?;
        }
        let journal = Journal {
            path: path.to_path_buf(),
            disk,
            file,
            state: Mutex::new(State {
                pending: Vec::new(),
                appended: 0,
                settled: 0,
                lost: Vec::new(),
                durable_len: good_end,
                flushing: false,
                generation: 0,
                flushing_upto: 0,
                failed: false,
                last_healthy_probe: None,
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
        Self::open_json_with(Arc::new(RealDisk), path, replay)
    }

    /// [`open_json`](Self::open_json) with the writes going to `disk`.
    pub fn open_json_with<T: serde::de::DeserializeOwned>(
        disk: Arc<dyn Disk>,
        path: &Path,
        replay: impl FnMut(T) -> io::Result<()>,
    ) -> io::Result<Journal> {
        let (journal, recovered) = Self::open_with(
            disk,
            path,
            |line| serde_json::from_slice::<T>(line).ok(),
            replay,
        )?;
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
        let mut state = self.state.lock();
        checksum::frame_into(&mut state.pending, record);
        state.appended += 1;
        self.records.fetch_add(1, Ordering::Relaxed);
        Ticket(state.appended)
    }

    /// Appends a serializable record.
    pub fn append_json<T: serde::Serialize>(&self, record: &T) -> Ticket {
        // Our records are plain structs: serializing them cannot fail.
        self.append(&serde_json::to_vec(record).unwrap_or_default())
    }

    /// The ticket of the last record appended so far.
    pub fn tail(&self) -> Ticket {
        Ticket(self.state.lock().appended)
    }

    /// Where the record of `ticket` stands, without waiting.
    pub fn durability(&self, ticket: Ticket) -> Durability {
        self.state.lock().durability(ticket.0)
    }

    /// The last write or fsync failed and none has succeeded since: the service cannot
    /// make changes durable right now (its `/health` says so).
    pub fn is_failed(&self) -> bool {
        self.state.lock().failed
    }

    /// Blocks until the record of `ticket` is settled: `Ok` once it is on disk, `Err`
    /// if its write failed (it is not on disk and never will be). Records before it
    /// are settled too, each either way.
    ///
    /// Waiters sleep on the condvar of the flush that will cover them: the one running
    /// (their record is in its batch) or the next. A finished flush wakes exactly its
    /// own waiters, plus one waiter of the next flush to lead it; so each writer wakes
    /// once, instead of every flush waking everyone to find most still uncovered.
    pub fn wait_durable(&self, ticket: Ticket) -> io::Result<()> {
        let mut state = self.state.lock();
        loop {
            match state.durability(ticket.0) {
                Durability::OnDisk => return Ok(()),
                Durability::Lost => {
                    return Err(io::Error::other(format!(
                        "{}: the write failed",
                        self.path.display()
                    )))
                }
                Durability::InFlight => {}
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
            let durable_len = state.durable_len;
            drop(state);
            let result = self.file.append(&batch).and_then(|()| self.file.sync());
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = &result {
                self.cut_back(durable_len, e);
            }
            state = self.state.lock();
            state.flushing = false;
            match result {
                Ok(()) => {
                    state.settled = upto;
                    state.durable_len += batch.len() as u64;
                    state.failed = false;
                }
                Err(_) => state.lose_unwritten(),
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

    /// After a failed write: cuts the file back to `durable_len`, so that no byte of the
    /// failed batch is read back after a restart; ends the process if it cannot.
    fn cut_back(&self, durable_len: u64, error: &io::Error) {
        if let Err(cut) = self.file.set_len(durable_len) {
            self.disk.unrecoverable(&format!(
                "{}: a write failed ({error}) and cutting it off at byte {durable_len} failed too ({cut})",
                self.path.display()
            ));
        }
    }

    /// Tries whether the disk takes writes: writes a block of zeros past the end and
    /// cuts it off. While the journal [is failed](Self::is_failed) it fsyncs too, and
    /// success ends the failure, so a service notices recovery without waiting for a
    /// client's write. While healthy it tries at most once per [`HEALTHY_PROBE_EVERY`]
    /// (no fsync: a full disk refuses the write itself), and a refusal makes the journal
    /// failed, so an idle service on a full disk says so before a client's change fails.
    /// Returns whether the journal is healthy now. For a service's `/health`.
    pub fn probe(&self) -> bool {
        let (durable_len, was_failed) = {
            let mut state = self.state.lock();
            let due = state.failed
                || state
                    .last_healthy_probe
                    .is_none_or(|at| at.elapsed() >= HEALTHY_PROBE_EVERY);
            if !due || state.flushing {
                // Healthy and probed lately, or a flush is finding out right now.
                return !state.failed;
            }
            if !state.failed {
                state.last_healthy_probe = Some(Instant::now());
            }
            state.flushing = true;
            (state.durable_len, state.failed)
        };
        let result = self.file.append(&[0; PROBE_BYTES]).and_then(|()| {
            if was_failed {
                self.file.sync()
            } else {
                Ok(())
            }
        });
        // Cut the zeros off either way (a crash before this leaves them as a torn tail,
        // which the next open cuts).
        let cut = self.file.set_len(durable_len);
        if let Err(e) = &cut {
            self.disk.unrecoverable(&format!(
                "{}: cutting a probe off at byte {durable_len} failed ({e})",
                self.path.display()
            ));
        }
        let mut state = self.state.lock();
        state.flushing = false;
        state.failed = result.is_err();
        // Whoever waited for the file may lead the next flush now.
        for flushed in &self.flushed {
            flushed.notify_all();
        }
        !state.failed
    }

    /// Settles everything appended so far (on disk, or lost and cut off), then empties
    /// the file. The caller must have saved what the records on disk said elsewhere (a
    /// snapshot) and must keep new appends out while this runs (it holds its own lock).
    pub fn truncate(&self) -> io::Result<()> {
        // Either way the file then holds exactly the records on disk.
        let _ = self.wait_durable(self.tail());
        let mut state = self.state.lock();
        while state.flushing {
            // A probe; flushes cannot run with no appends.
            self.flushed[0].wait(&mut state);
        }
        self.file.set_len(0)?;
        state.durable_len = 0;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
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
    use crate::store::fault::{Fault, FaultyDisk, WRITE_FAULTS};
    use std::sync::Arc;

    fn parse(line: &[u8]) -> Option<u64> {
        serde_json::from_slice::<u64>(line).ok()
    }

    /// Opens the journal at `path` on `disk`: it, the records replayed, the bytes cut off.
    fn open_on(disk: Arc<dyn Disk>, path: &Path) -> io::Result<(Journal, Vec<u64>, u64)> {
        let mut records = Vec::new();
        let (journal, recovered) = Journal::open_with(disk, path, parse, |r| {
            records.push(r);
            Ok(())
        })?;
        assert_eq!(recovered.records, records.len() as u64);
        Ok((journal, records, recovered.truncated_bytes))
    }

    fn open(path: &Path) -> io::Result<(Journal, Vec<u64>, u64)> {
        open_on(Arc::new(RealDisk), path)
    }

    /// The records `numbers`, framed as the journal writes them.
    fn framed(numbers: &[u64]) -> Vec<u8> {
        numbers
            .iter()
            .flat_map(|n| checksum::frame(n.to_string().as_bytes()))
            .collect()
    }

    fn write(journal: &Journal, record: u64) -> io::Result<()> {
        journal.wait_durable(journal.append_json(&record))
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (journal, records, _) = open(&path).unwrap();
        assert!(records.is_empty());
        for n in 1..=3 {
            write(&journal, n).unwrap();
        }
        drop(journal);
        assert_eq!(std::fs::read(&path).unwrap(), framed(&[1, 2, 3]));
        let (_, records, cut) = open(&path).unwrap();
        assert_eq!(records, vec![1, 2, 3]);
        assert_eq!(cut, 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let third = framed(&[3]);
        let tails: &[&[u8]] = &[
            &third[..third.len() - 1],
            &third[..4],
            b"{\"x",
            b"\0\0\0\0",
            b"\0\0\n\0\0\n",
            b"zz\n",
        ];
        for tail in tails {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            std::fs::write(&path, [framed(&[1, 2]), tail.to_vec()].concat()).unwrap();
            let (journal, records, truncated) = open(&path).unwrap();
            assert_eq!(records, vec![1, 2], "{tail:?}");
            assert_eq!(truncated, tail.len() as u64, "{tail:?}");
            write(&journal, 9).unwrap();
            drop(journal);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                framed(&[1, 2, 9]),
                "{tail:?}"
            );
        }
    }

    #[test]
    fn a_changed_record_is_refused_with_the_file_and_its_offset() {
        let good = framed(&[10, 20, 30, 40]);
        let second = framed(&[10]).len();
        // A digit of the second record's payload, its checksum, and the last record's.
        for (at, offset) in [
            (second + 10, second),
            (second + 2, second),
            (good.len() - 2, good.len() - framed(&[40]).len()),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let mut bytes = good.clone();
            bytes[at] = if bytes[at] == b'1' { b'7' } else { b'1' };
            std::fs::write(&path, &bytes).unwrap();
            let error = open(&path).err().unwrap();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            let message = error.to_string();
            assert!(
                message.contains(&format!(
                    "{}: damaged record at byte {offset}",
                    path.display()
                )),
                "{message}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing is cut");
        }
    }

    #[test]
    fn garbage_followed_by_a_record_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let bytes = [framed(&[1]), b"\0\0\0\n".to_vec(), framed(&[2])].concat();
        std::fs::write(&path, &bytes).unwrap();
        let message = open(&path).err().unwrap().to_string();
        let offset = framed(&[1]).len();
        assert!(
            message.contains(&format!("damaged record at byte {offset}")),
            "{message}"
        );
    }

    #[test]
    fn a_journal_from_before_checksums_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, b"1\n2\n").unwrap();
        let message = open(&path).err().unwrap().to_string();
        assert!(
            message.contains(&format!(
                "{}: damaged record at byte 0: record without a checksum",
                path.display()
            )),
            "{message}"
        );
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
                        write(&journal, t * 1000 + i).unwrap();
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

    /// Each way a write can fail: the record is refused, never read back, and the
    /// journal works again once the disk does.
    #[test]
    fn a_failed_write_is_refused_cut_off_and_the_journal_recovers() {
        for (name, inject) in WRITE_FAULTS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let disk = FaultyDisk::new();
            let (journal, _, _) = open_on(Arc::new(disk.clone()), &path).unwrap();
            write(&journal, 1).unwrap();
            assert!(!journal.is_failed());
            inject(&disk, true);
            let refused = journal.append_json(&2);
            assert!(journal.wait_durable(refused).is_err(), "{name}");
            assert_eq!(journal.durability(refused), Durability::Lost, "{name}");
            assert!(journal.is_failed(), "{name}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                framed(&[1]),
                "{name}: cut back"
            );
            assert!(!journal.probe(), "{name}: the probe writes and fails too");
            inject(&disk, false);
            write(&journal, 3).unwrap();
            assert!(!journal.is_failed(), "{name}");
            assert!(
                journal.wait_durable(refused).is_err(),
                "{name}: lost for good"
            );
            drop(journal);
            let (_, records, cut) = open(&path).unwrap();
            assert_eq!((records, cut), (vec![1, 3], 0), "{name}");
        }
    }

    #[test]
    fn a_failed_flush_fails_every_record_not_yet_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let disk = FaultyDisk::new();
        let journal = Arc::new(open_on(Arc::new(disk.clone()), &path).unwrap().0);
        disk.hold_syncs();
        let leader = {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || write(&journal, 1))
        };
        disk.wait_for_held_syncs(1);
        // Appended while the first flush is in its fsync: carried by the next one.
        let follower = journal.append_json(&2);
        disk.fail_syncs(Some(Fault::Io));
        disk.release_syncs();
        assert!(leader.join().unwrap().is_err());
        assert!(journal.wait_durable(follower).is_err());
        disk.fail_syncs(None);
        write(&journal, 3).unwrap();
        drop(journal);
        assert_eq!(open(&path).unwrap().1, vec![3]);
    }

    #[test]
    fn a_crash_loses_what_was_not_fsynced_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let disk = FaultyDisk::new();
        let journal = Arc::new(open_on(Arc::new(disk.clone()), &path).unwrap().0);
        write(&journal, 1).unwrap();
        disk.hold_syncs();
        let writer = {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || write(&journal, 2))
        };
        disk.wait_for_held_syncs(1);
        assert!(
            std::fs::read(&path).unwrap().len() > framed(&[1]).len(),
            "written"
        );
        disk.crash();
        // The writer gets an error or dies with the "machine" (its cut fails too).
        assert!(!matches!(writer.join(), Ok(Ok(()))), "never acknowledged");
        drop(journal);
        let (_, records, cut) = open(&path).unwrap();
        assert_eq!((records, cut), (vec![1], 0));
    }

    #[test]
    fn a_probe_finds_the_disk_writable_again_without_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let disk = FaultyDisk::new();
        let (journal, _, _) = open_on(Arc::new(disk.clone()), &path).unwrap();
        assert!(journal.probe(), "healthy: nothing to do");
        write(&journal, 1).unwrap();
        disk.short_writes(Some(2));
        assert!(write(&journal, 2).is_err());
        assert!(!journal.probe());
        disk.short_writes(None);
        assert!(journal.probe());
        assert!(!journal.is_failed());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            framed(&[1]),
            "the probe is cut off"
        );
    }

    /// An idle service on a disk that filled up says so at its first `/health`, not
    /// only after a client's change has failed.
    #[test]
    fn a_probe_finds_a_full_disk_before_any_record_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let disk = FaultyDisk::new();
        let (journal, _, _) = open_on(Arc::new(disk.clone()), &path).unwrap();
        write(&journal, 1).unwrap();
        disk.fail_writes(Some(Fault::NoSpace));
        assert!(!journal.probe(), "the full disk is noticed");
        assert!(journal.is_failed());
        disk.fail_writes(None);
        assert!(journal.probe(), "and its recovery, at the next probe");
        assert_eq!(std::fs::read(&path).unwrap(), framed(&[1]), "cut off");
        write(&journal, 2).unwrap();
    }

    #[test]
    fn a_failed_write_that_cannot_be_cut_off_ends_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let disk = FaultyDisk::new();
        let journal = Arc::new(open_on(Arc::new(disk.clone()), &path).unwrap().0);
        disk.fail_syncs(Some(Fault::Io));
        disk.fail_cuts(true);
        let writer = {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || write(&journal, 1))
        };
        // FaultyDisk panics where the real disk exits: the writer is never answered.
        let panic = writer.join().unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("cutting it off at byte 0 failed"),
            "{message}"
        );
    }
}
