//! The replication core: Raft as a state machine with no IO (sans-IO), in the style of
//! tikv/raft-rs. A driver owns the clock, the disk and the network: it calls
//! [`Node::tick`] on a timer, [`Node::step`] for each message that arrives and
//! [`Node::propose`] for commands, and after any of them takes a [`Ready`]: persist its
//! snapshot, entries and hard state (fsync), then send its messages, then apply its
//! committed entries, then [`Node::advance`]. Because nothing here owns a socket, a thread
//! or a clock, one thread can run a whole group under a seeded network and replay any run
//! (`tests/raft_sim.rs`).
//!
//! Nothing uses it yet; the replicated order service of issue 14 will.
//!
//! - `message`: what crosses the wire and the disk (serde, so JSON works).
//! - `log`: the in-memory log with its committed, applied and stable marks.
//! - `node`: elections, replication, commit, snapshots, `Ready`.

mod log;
mod message;
mod node;
#[cfg(test)]
mod tests;

pub use message::{Body, Entry, HardState, Message, NodeId, RejectHint, Snapshot, SnapshotMeta};
pub use node::{CompactError, Config, Node, NotLeader, Persisted, Ready, Role};
