//! Calls between services: where a peer lives, the pooled client that calls it, and
//! the batching that gathers concurrent calls into one round trip.
//!
//! - [`addr`]: [`PeerAddr`], a peer's base URL from `host`, `host:port` or a URL.
//! - [`backend`]: [`Backend`], a pooled client with a deadline per call, retries of
//!   idempotent calls, a bulkhead, and the statuses its failures become.
//! - [`batch`]: concurrent calls gathered into one round trip (the front-end's queries
//!   and buys, the order service's catalog buys).

pub mod addr;
pub mod backend;
pub mod batch;

pub use addr::{PeerAddr, PeerAddrError};
pub use backend::{Backend, BackendError, Reply};

use std::time::Duration;

/// How a service calls its peers (see `cli::BackendArgs` for the defaults' reasons).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// How long a call may take before it fails as 504.
    pub timeout: Duration,
    /// Calls in flight to one peer at most (the bulkhead), and its idle connections.
    pub max_in_flight: usize,
    /// Sent as `Authorization: Bearer` on every call; `None`: calls carry none.
    pub internal_token: Option<String>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            timeout: Duration::from_millis(4000),
            max_in_flight: 64,
            internal_token: None,
        }
    }
}

impl PeerConfig {
    /// A pooled client for the peer `name` at `addr`.
    pub fn backend(&self, name: &'static str, addr: PeerAddr) -> Backend {
        Backend::new(
            name,
            addr,
            self.timeout.max(Duration::from_millis(1)),
            self.max_in_flight,
            2,
        )
        .with_internal_token(self.internal_token.as_deref())
    }
}
