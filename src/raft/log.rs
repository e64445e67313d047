//! The log as one node holds it in memory: the latest snapshot, the entries after it, and
//! three marks — committed, applied (handed to the application) and stable (handed to the
//! driver to persist). The driver's disk mirrors it through `Ready`; nothing here does IO.

use super::message::{Entry, Snapshot};

/// A node's log. Entries are contiguous from `snapshot.meta.index + 1`.
#[derive(Debug, Default)]
pub(crate) struct RaftLog {
    /// Everything up to `snapshot.meta.index`; kept whole because a leader sends it to a
    /// follower that needs entries compacted away.
    pub snapshot: Snapshot,
    /// The entries after the snapshot.
    entries: Vec<Entry>,
    /// Highest index known committed (on a majority, in the current leader's sense).
    pub committed: u64,
    /// Highest index the application has been given (by entry or by snapshot).
    pub applied: u64,
    /// Highest index handed to the driver to persist; later ones go in the next `Ready`.
    stable: u64,
    /// A snapshot received from a leader that the driver has not yet been handed.
    pub pending_snapshot: bool,
}

impl RaftLog {
    /// The log a restarted node rebuilds from what it persisted. Entries that are not
    /// contiguous after the snapshot are dropped: the driver wrote them, so that is its bug,
    /// and keeping a gapped log would break every index computation here.
    pub fn restore_from(snapshot: Snapshot, entries: Vec<Entry>, commit: u64) -> RaftLog {
        let first = snapshot.meta.index + 1;
        let entries: Vec<Entry> = entries
            .into_iter()
            .skip_while(|e| e.index < first)
            .enumerate()
            .take_while(|(i, e)| e.index == first + *i as u64)
            .map(|(_, e)| e)
            .collect();
        let last = snapshot.meta.index + entries.len() as u64;
        let base = snapshot.meta.index;
        RaftLog {
            snapshot,
            entries,
            // The commit index was persisted with the entries it covers; the clamp only
            // guards against a driver that kept one without the other.
            committed: commit.clamp(base, last),
            applied: base,
            stable: last,
            pending_snapshot: false,
        }
    }

    pub fn first_index(&self) -> u64 {
        self.snapshot.meta.index + 1
    }

    pub fn last_index(&self) -> u64 {
        self.snapshot.meta.index + self.entries.len() as u64
    }

    /// The term of the entry at `index`, if this log can tell: the snapshot's last entry
    /// and every entry after it, not what lies under the snapshot.
    pub fn term(&self, index: u64) -> Option<u64> {
        let base = self.snapshot.meta.index;
        if index == base {
            return Some(self.snapshot.meta.term);
        }
        if index < base || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - base - 1) as usize].term)
    }

    pub fn last_term(&self) -> u64 {
        self.term(self.last_index()).unwrap_or(0)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries `lo..=hi` that the log holds (those under the snapshot are not).
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        let base = self.snapshot.meta.index;
        let lo = lo.max(base + 1);
        let hi = hi.min(self.last_index());
        if lo > hi {
            return &[];
        }
        &self.entries[(lo - base - 1) as usize..(hi - base) as usize]
    }

    /// Up to `max_entries` entries from `lo`, stopping before `max_bytes` of data (but always
    /// at least one, so an entry bigger than the limit still gets through).
    pub fn batch_from(&self, lo: u64, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        let mut bytes = 0;
        let mut out = Vec::new();
        for e in self.slice(lo, self.last_index()).iter().take(max_entries) {
            bytes += e.data.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// The entries not yet handed to the driver to persist.
    pub fn unstable(&self) -> &[Entry] {
        self.slice(self.stable + 1, self.last_index())
    }

    /// The driver has persisted up to (`index`, `term`). If the log was truncated and
    /// rewritten meanwhile, that entry is gone and the new one still has to be written.
    pub fn stable_to(&mut self, index: u64, term: u64) {
        if self.term(index) == Some(term) {
            self.stable = self.stable.max(index);
        }
    }

    /// §5.4.1: a candidate's log is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        let ours = self.last_term();
        last_term > ours || (last_term == ours && last_index >= self.last_index())
    }

    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// A leader's append after (`prev_index`, `prev_term`): `None` if our log does not hold
    /// that entry, else the index of the last entry the leader sent. Only a conflicting
    /// suffix is cut — a late, shorter append must not cut entries a newer one added, or a
    /// follower could take back an entry it already acknowledged.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        entries: &[Entry],
    ) -> Option<u64> {
        if self.term(prev_index) != Some(prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        let conflict = entries
            .iter()
            .position(|e| self.term(e.index) != Some(e.term));
        if let Some(at) = conflict {
            let from = entries[at].index;
            // The leader holds every committed entry (leader completeness), so it never
            // contradicts one; if it did, this is where the log would lose it.
            debug_assert!(from > self.committed, "conflict at committed index {from}");
            self.entries.truncate((from - self.first_index()) as usize);
            self.stable = self.stable.min(from - 1);
            self.entries.extend_from_slice(&entries[at..]);
        }
        Some(last_new)
    }

    /// etcd-raft's `findConflictByTerm`: the largest index ≤ `index` whose term is ≤ `term`,
    /// with that term. Every entry above it has a larger term than the leader's probe, so
    /// cannot match; the leader skips them all in one round trip. Under the snapshot the term
    /// is unknown (0), but those entries are committed, so they match.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term => i -= 1,
                Some(t) => return (i, t),
                None => return (i, 0),
            }
        }
    }

    pub fn commit_to(&mut self, index: u64) {
        self.committed = self.committed.max(index.min(self.last_index()));
    }

    /// A leader's snapshot: `false` if it adds nothing (we have committed that far, or hold
    /// its last entry, in which case we only learn it is committed).
    pub fn restore(&mut self, snapshot: Snapshot) -> bool {
        let meta = snapshot.meta;
        if meta.index <= self.committed {
            return false;
        }
        if self.term(meta.index) == Some(meta.term) {
            self.commit_to(meta.index);
            return false;
        }
        self.entries.clear();
        self.snapshot = snapshot;
        self.committed = meta.index;
        self.applied = meta.index;
        self.stable = meta.index;
        self.pending_snapshot = true;
        true
    }

    /// The application's snapshot at `index`: the entries up to it go.
    pub fn compact(&mut self, index: u64, term: u64, data: Vec<u8>) {
        let drop = (index - self.snapshot.meta.index) as usize;
        self.entries.drain(..drop);
        self.snapshot = Snapshot {
            meta: super::SnapshotMeta { index, term },
            data,
        };
        self.pending_snapshot = false;
    }
}
