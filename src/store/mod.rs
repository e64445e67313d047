//! Durable state on disk, shared by the catalog and the order service.
//!
//! - [`journal`]: an append-only file of checksummed records with group commit, and the
//!   storage-failure rule (a record refused to its writer never reappears).
//! - [`snapshot`]: whole-file replacement that a crash can never leave half-written.
//! - [`checksum`]: the framing that gives every record on disk its CRC32C.
//! - [`disk`]: the file operations behind a trait, the seam for fault injection;
//!   [`fault`]: the test disk that injects EIO, ENOSPC, short writes, held or failed
//!   fsyncs and crashes.
//! - [`lock`]: one catalog and one order service per data directory.

pub mod checksum;
pub mod disk;
pub mod fault;
pub mod journal;
pub mod lock;
pub mod snapshot;

pub use disk::{AppendFile, Disk, RealDisk};
pub use fault::{Fault, FaultyDisk, WRITE_FAULTS};
pub use journal::{Durability, Journal, Recovered, Ticket};
pub use lock::DirLock;
