//! Every limit of the calls between services, in one place, with the reason for each
//! default: the peer-side twin of the server's [`crate::http::Limits`].

use crate::http::limits::DEFAULT_MAX_BODY_BYTES;
use std::time::Duration;

/// Limits of one service's calls to its peers. `PeerLimits::default()` holds the
/// defaults; `timeout` and `max_in_flight` are set from the command line
/// (`cli::BackendArgs`), the rest where a service's config is built.
#[derive(Debug, Clone)]
pub struct PeerLimits {
    /// How long a call may take, retries included (→ 504 beyond): under the contract's
    /// 5 s, so a client sees our 504 before it gives up itself.
    pub timeout: Duration,
    /// How long a connection may take: a peer that is up accepts within milliseconds,
    /// and one that does not is down, not slow (nothing was sent, so the call may be
    /// retried).
    pub connect_timeout: Duration,
    /// Extra attempts after a transport failure (never after a timeout), while at least
    /// half of `timeout` is left: two ride out a peer's restart or a reset connection
    /// without tripling the load on a peer that is really down.
    pub retries: u32,
    /// Calls in flight to one peer at most (the bulkhead), and the idle connections
    /// kept for it: half the default worker pool, so a peer that stops answering holds
    /// at most half the workers and the other peer's routes keep theirs.
    pub max_in_flight: usize,
    /// How long a call waits for a free slot when the cap is reached (→ 503 beyond). A
    /// healthy peer frees slots within milliseconds, a busy one within a few hundred;
    /// one that has stopped answering never does, and the call fails well before the
    /// peer's timeout instead of tying up one more worker for all of it.
    pub bulkhead_wait: Duration,
    /// How long an idle connection to a peer is kept for reuse.
    pub idle_connection_age: Duration,
    /// Bytes of a reply read at once. ureq's default is 128 KiB each way per
    /// connection; with a pool as large as the worker count that is tens of MB for
    /// bodies of a few hundred bytes.
    pub input_buffer_bytes: usize,
    /// ureq's buffer for a request's head (bodies go through it in pieces). Our heads
    /// carry at most a product name or a name filter, bounded by
    /// [`crate::wire::MAX_NAME_BYTES`]: a few KiB percent-encoded. A head that would not
    /// fit is refused before it is sent ([`super::BackendError::Unsendable`]); ureq
    /// would fail it as if the peer had.
    pub output_buffer_bytes: usize,
    /// Room in `output_buffer_bytes` for the lines ureq adds to a head (request line
    /// framing, Host, User-Agent, Accept, Content-Type, Content-Length): about 200 bytes.
    pub head_reserve_bytes: usize,
    /// Items a batch between services carries at most.
    pub batch_max_items: usize,
    /// Bytes of JSON items a batch carries at most: a quarter of the peers' body limit,
    /// which leaves room for the envelope and for the order service passing a batch on
    /// to the catalog with larger items (a buy id and more per item, at most
    /// `batch_max_items`).
    pub batch_max_bytes: usize,
    /// The front-end's lookups in flight at once: one, since a lookup is quick and CPU,
    /// not the round trip, is what limits queries; a second flight would only make
    /// batches smaller.
    pub query_flights: usize,
    /// The front-end's buy batches in flight at once: a buy batch spends most of its
    /// time waiting for fsyncs, so a second one can be gathered and sent meanwhile.
    pub buy_flights: usize,
    /// The order service's batches of orders placed at once: while one waits for its
    /// fsyncs and the catalog, the next is gathered and started.
    pub order_flights: usize,
    /// How often the front-end probes its backends, so `/health` reports their state
    /// even when no request has gone to them lately.
    pub probe_every: Duration,
    /// How often the order service looks for buys whose outcome waits for the catalog:
    /// soon after the catalog is back, without a steady stream of probes.
    pub resolve_every: Duration,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            timeout: Duration::from_millis(4000),
            connect_timeout: Duration::from_millis(500),
            retries: 2,
            max_in_flight: 64,
            bulkhead_wait: Duration::from_secs(1),
            idle_connection_age: Duration::from_secs(30),
            input_buffer_bytes: 16 * 1024,
            output_buffer_bytes: 16 * 1024,
            head_reserve_bytes: 1024,
            batch_max_items: 256,
            batch_max_bytes: DEFAULT_MAX_BODY_BYTES / 4,
            query_flights: 1,
            buy_flights: 2,
            order_flights: 2,
            probe_every: Duration::from_secs(1),
            resolve_every: Duration::from_millis(500),
        }
    }
}

impl PeerLimits {
    /// One call at a time, `timeout` each, no retry: a probe of a service's `/health`
    /// from outside it (`--healthcheck`, the launcher).
    pub fn probe(timeout: Duration) -> Self {
        PeerLimits {
            timeout,
            max_in_flight: 1,
            retries: 0,
            ..PeerLimits::default()
        }
    }
}
