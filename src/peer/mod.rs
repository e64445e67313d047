//! Calls between services: where a peer lives, the pooled client that calls it, and
//! the batching that gathers concurrent calls into one round trip.
//!
//! - [`addr`]: [`PeerAddr`], a peer's base URL from `host`, `host:port` or a URL.
//! - [`backend`]: [`Backend`], a pooled client with a deadline per call, retries of
//!   idempotent calls, a bulkhead, and the statuses its failures become.
//! - [`batch`]: concurrent calls gathered into one round trip (the front-end's queries
//!   and buys, the order service's catalog buys).
//! - [`limits`]: [`PeerLimits`], every limit of those calls, with its reason.
//! - [`resolve`]: a peer's address by name, looked up within a call's deadline.

pub mod addr;
pub mod backend;
pub mod batch;
pub mod limits;
pub mod resolve;

pub use addr::{PeerAddr, PeerAddrError};
pub use backend::{Backend, BackendError, Reply};
pub use limits::PeerLimits;

/// How a service calls its peers.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// Timeouts, retries, bulkhead, batches, background intervals.
    pub limits: PeerLimits,
    /// Sent as `Authorization: Bearer` on every call; `None`: calls carry none.
    pub internal_token: Option<String>,
}

impl PeerConfig {
    /// A pooled client for the peer `name` at `addr`.
    pub fn backend(&self, name: &'static str, addr: PeerAddr) -> Backend {
        Backend::new(name, addr, &self.limits).with_internal_token(self.internal_token.as_deref())
    }
}
