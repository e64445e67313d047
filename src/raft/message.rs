//! What the core persists and sends: entries, snapshots, the hard state and the messages
//! between nodes. All of it derives serde so a transport can send it as JSON and a driver
//! can write it as it likes; the core never encodes anything itself.

use serde::{Deserialize, Serialize};

/// A node's id in the group. 0 is never a node (it is "nobody" on the wire).
pub type NodeId = u64;

/// One log entry. An entry with empty `data` is the no-op a new leader appends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 1.
    pub index: u64,
    /// Term of the leader that created it.
    pub term: u64,
    /// The application's command, opaque to the core.
    pub data: Vec<u8>,
}

/// Where a snapshot ends: everything up to and including `index` is in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub index: u64,
    /// Term of that entry (the log check of the entry after it needs it).
    pub term: u64,
}

/// The application's state up to `meta.index`, opaque to the core.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Where it ends.
    pub meta: SnapshotMeta,
    /// The application's encoding of its state.
    pub data: Vec<u8>,
}

/// What must survive a crash besides the log: without the term and vote, a restarted node
/// could vote twice in one term; without the commit index it would only re-learn it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// Whom it voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
    /// The highest index it knows committed.
    pub commit: u64,
}

/// One message between two nodes of the group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term it would campaign in).
    pub term: u64,
    /// What it says.
    pub body: Body,
}

/// The kinds of message, as in the Raft paper plus pre-vote and heartbeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// "Vote for me": `pre_vote` asks whether a vote would be granted without anyone
    /// changing term, so a node cut off from the group cannot disrupt it when it returns.
    RequestVote {
        /// A pre-vote (nobody changes term) or a real vote.
        pre_vote: bool,
        /// The candidate's last log index, for the up-to-date check.
        last_index: u64,
        /// The candidate's last log term.
        last_term: u64,
    },
    /// The answer to a `RequestVote`.
    Vote {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// Granted or not.
        granted: bool,
    },
    /// Entries following (`prev_index`, `prev_term`); empty when only probing.
    Append {
        /// Index of the entry just before `entries`.
        prev_index: u64,
        /// Its term, which the follower must have at `prev_index`.
        prev_term: u64,
        /// The entries, possibly none.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: u64,
    },
    /// The answer to an `Append` or `InstallSnapshot`.
    AppendReply {
        /// Accepted: the follower's log matches the leader's up to `index`.
        /// Rejected: the `prev_index` that did not match.
        index: u64,
        /// `Some` when rejected, with where the leader should try next.
        reject: Option<RejectHint>,
    },
    /// "I am the leader": resets the follower's election timer and passes on the commit
    /// index (never above what the follower is known to hold).
    Heartbeat {
        /// min(leader's commit, follower's match).
        commit: u64,
    },
    /// The answer to a heartbeat, which also tells the leader the follower is alive.
    HeartbeatReply,
    /// The leader's snapshot, for a follower that needs entries the leader compacted away.
    InstallSnapshot {
        /// The snapshot, data included.
        snapshot: Snapshot,
    },
}

/// The follower's hint on a rejected append, for backtracking a term at a time instead of
/// an entry at a time (etcd-raft's `findConflictByTerm`, the paper's §5.3 optimisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// The largest index at which the follower's entry has a term ≤ `term`
    /// (or its last index when its log is shorter than the probe).
    pub index: u64,
    /// The follower's term at `index` (0 when it cannot tell, under its snapshot).
    pub term: u64,
}
