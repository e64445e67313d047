//! Durable state on disk, shared by the catalog and the order service.
//!
//! - [`journal`]: an append-only file of JSON-line records with group commit.
//! - [`snapshot`]: whole-file replacement that a crash can never leave half-written.
//! - [`lock`]: one catalog and one order service per data directory.

pub mod journal;
pub mod lock;
pub mod snapshot;

pub use journal::{Journal, Recovered, Ticket};
pub use lock::DirLock;
