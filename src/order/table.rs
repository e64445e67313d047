//! Committed orders by number, in a file of fixed-size records beside the log.
//!
//! The service answers `GET /orders/{n}` for every order it ever took, so this table
//! grows with use. Kept in memory it was the largest thing in the service (12 bytes an
//! order: 9 MB after one benchmark run). Kept in `orders.idx`, record `n` at byte
//! `12 n`, it costs the page cache instead, and a look-up one `pread`.
//!
//! The file is derived: the log is the truth. It is rebuilt from the log at every open
//! and never fsynced, so a crash can never leave it saying something the log does not.
//! For the same reason a failed write of it never fails a commit: records that could
//! not be written stay in memory, are served from there, and are written again at the
//! next flush. Every error names the file.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of one record: the product id plus one (0: no order, a gap) and the quantity,
/// little-endian.
const RECORD: usize = 12;
/// Records written at once, at most, when placements come in number order (a batch
/// of commits, the replay at open).
const WRITE_BATCH: usize = 4096;

/// Orders by number: the names in memory (one copy of each product ordered), the
/// records in the file.
pub struct OrderTable {
    path: PathBuf,
    file: File,
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    len: u64,
    /// Orders placed (numbers reserved and never placed are not counted).
    placed: u64,
    /// Records of consecutive numbers from `pending_from`, not yet written.
    pending: Vec<u8>,
    pending_from: u64,
    /// Records a write failed for, by number: served from here until written.
    unwritten: BTreeMap<u64, [u8; RECORD]>,
}

impl OrderTable {
    /// An empty table in the file at `path` (emptied if it exists).
    pub fn create(path: &Path) -> io::Result<OrderTable> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| named(path, e))?;
        Ok(OrderTable {
            path: path.to_path_buf(),
            file,
            names: Vec::new(),
            ids: HashMap::new(),
            len: 0,
            placed: 0,
            pending: Vec::new(),
            pending_from: 0,
            unwritten: BTreeMap::new(),
        })
    }

    /// Numbers taken so far: the next order's number.
    pub fn taken(&self) -> u64 {
        self.len
    }

    /// Orders placed so far.
    pub fn placed(&self) -> u64 {
        self.placed
    }

    /// Takes the next number, not yet readable (a gap until [`place`](Self::place)).
    pub fn reserve(&mut self) -> u64 {
        self.len += 1;
        self.len - 1
    }

    /// Makes order `number` readable (reserving the numbers up to it if needed). Its
    /// record is written at the latest by the next [`flush`](Self::flush); until then,
    /// and for as long as writing fails, it is served from memory.
    pub fn place(&mut self, number: u64, name: &str, quantity: u64) {
        self.len = self.len.max(number + 1);
        self.placed += 1;
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                let shared: Arc<str> = Arc::from(name);
                self.names.push(Arc::clone(&shared));
                self.ids.insert(shared, id);
                id
            }
        };
        let follows = self.pending_from + (self.pending.len() / RECORD) as u64 == number;
        if !follows || self.pending.len() == WRITE_BATCH * RECORD {
            // A failure keeps the records in memory; the caller's flush reports it.
            let _ = self.flush();
            self.pending_from = number;
        }
        self.pending.extend_from_slice(&(id + 1).to_le_bytes());
        self.pending.extend_from_slice(&quantity.to_le_bytes());
    }

    /// Writes the placed records to the file. On failure they stay readable from
    /// memory and are tried again at the next flush.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let from = self.pending_from;
            let written = self.file.write_all_at(&self.pending, from * RECORD as u64);
            if written.is_err() {
                for (i, record) in self.pending.chunks_exact(RECORD).enumerate() {
                    let record = record.try_into().expect("chunks of RECORD bytes");
                    self.unwritten.insert(from + i as u64, record);
                }
            }
            self.pending.clear();
            written.map_err(|e| named(&self.path, e))?;
        }
        while let Some((&number, record)) = self.unwritten.first_key_value() {
            self.file
                .write_all_at(record, number * RECORD as u64)
                .map_err(|e| named(&self.path, e))?;
            self.unwritten.remove(&number);
        }
        Ok(())
    }

    /// Order `number`: its product and quantity, if it is readable.
    pub fn get(&self, number: u64) -> io::Result<Option<(&Arc<str>, u64)>> {
        if number >= self.len {
            return Ok(None);
        }
        let mut record = [0; RECORD];
        if let Some(unwritten) = self.unwritten.get(&number) {
            record = *unwritten;
        } else {
            // Past the end of the file (numbers reserved, none placed after them) is a gap.
            match self.file.read_exact_at(&mut record, number * RECORD as u64) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(named(&self.path, e)),
            }
        }
        let (id, quantity) = record.split_at(4);
        let id = u32::from_le_bytes(id.try_into().expect("4 bytes"));
        let quantity = u64::from_le_bytes(quantity.try_into().expect("8 bytes"));
        Ok(id
            .checked_sub(1)
            .and_then(|id| self.names.get(id as usize))
            .map(|name| (name, quantity)))
    }
}

/// `error` with the file it is about, for the operator reading the log line.
fn named(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_gaps_in_and_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = OrderTable::create(&dir.path().join("orders.idx")).unwrap();
        let tux: Arc<str> = Arc::from("Tux");
        let whale: Arc<str> = Arc::from("Whale");
        assert_eq!(table.reserve(), 0);
        table.place(0, "Tux", 3);
        assert_eq!(table.reserve(), 1); // never placed: a gap
        let far = WRITE_BATCH as u64 * 3 + 5;
        table.place(far, "Whale", u64::MAX);
        table.place(2, "Tux", 1); // a batch that committed later
        table.flush().unwrap();
        assert_eq!(table.taken(), far + 1);
        assert_eq!(table.get(0).unwrap(), Some((&tux, 3)));
        assert_eq!(table.get(1).unwrap(), None);
        assert_eq!(table.get(2).unwrap(), Some((&tux, 1)));
        assert_eq!(table.get(far - 1).unwrap(), None);
        assert_eq!(table.get(far).unwrap(), Some((&whale, u64::MAX)));
        assert_eq!(table.get(far + 1).unwrap(), None);
        assert_eq!(table.reserve(), far + 1);
        assert_eq!(table.get(far + 1).unwrap(), None, "reserved past the file");
    }

    #[test]
    fn long_runs_are_written_in_batches_and_reopening_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.idx");
        let mut table = OrderTable::create(&path).unwrap();
        let count = WRITE_BATCH as u64 * 2 + 7;
        for number in 0..count {
            table.place(number, "Tux", number + 1);
        }
        table.flush().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            count * RECORD as u64
        );
        for number in [0, WRITE_BATCH as u64, count - 1] {
            assert_eq!(table.get(number).unwrap().map(|(_, q)| q), Some(number + 1));
        }
        drop(table);
        let table = OrderTable::create(&path).unwrap();
        assert_eq!(table.taken(), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    /// Finding 3 of issue 11: a failed write of the derived file fails nothing; the
    /// order stays readable from memory, the error names the file, and the next flush
    /// that can write catches up.
    #[test]
    fn orders_whose_record_cannot_be_written_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.idx");
        let mut table = OrderTable::create(&path).unwrap();
        let tux: Arc<str> = Arc::from("Tux");
        table.place(0, "Tux", 2);
        table.flush().unwrap();
        let writable = std::mem::replace(&mut table.file, File::open(&path).unwrap());
        table.place(1, "Tux", 3);
        let error = table.flush().unwrap_err();
        assert!(error.to_string().contains("orders.idx"), "{error}");
        assert_eq!(table.get(1).unwrap(), Some((&tux, 3)));
        assert_eq!(table.placed(), 2);
        table.file = writable;
        table.place(2, "Tux", 4);
        table.flush().unwrap();
        assert!(table.unwritten.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * RECORD as u64);
        assert_eq!(table.get(1).unwrap(), Some((&tux, 3)));
    }
}
