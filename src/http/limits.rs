//! Every limit the server enforces, in one place, with the reason for each default.

use std::time::Duration;

/// The default body limit (→ 413): the contract's 1 MiB. Peers are sized from it too: a
/// batch between services stays well under it ([`crate::batch::MAX_BYTES`]).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Limits and sizes of one server. `Limits::default()` holds the contract's defaults;
/// every field can be set from the command line (see [`crate::cli::LimitArgs`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line + headers. 64 KiB is the contract's bound (→ 431); real clients send < 8 KiB.
    pub max_head_bytes: usize,
    /// Header count (→ 431). httparse needs a fixed slot array; 100 is far above what clients send.
    pub max_headers: usize,
    /// Request body (→ 413). Our bodies are a few dozen bytes; 1 MiB is the contract's bound.
    pub max_body_bytes: usize,
    /// From a request's first byte to its last (→ 408 and close). Bounds slowloris senders.
    pub request_timeout: Duration,
    /// How long an idle keep-alive connection is kept before it is closed quietly.
    pub idle_timeout: Duration,
    /// Requests served on one connection before it is closed, so no client holds one forever.
    pub max_requests_per_connection: usize,
    /// A response the client has not taken in full within this of its being due (a client
    /// that does not read, or reads a trickle) closes the connection. One deadline per
    /// response, not per write, so a trickle cannot stretch it.
    pub write_timeout: Duration,
    /// Response bytes a connection may hold unwritten before its further pipelined
    /// requests are left unread until the client reads: 64 KiB is many responses of ours,
    /// and a client that does not read then costs that buffer, not a worker.
    pub max_unwritten_bytes: usize,
    /// How long a worker waits on its connection for the next request before handing the
    /// connection to the reactor. A busy keep-alive client sends its next request within
    /// a few milliseconds even on a loaded machine; keeping the worker on it saves two
    /// thread hand-offs and an epoll round trip per request. The worker gives the
    /// connection up sooner when another one is waiting and no worker is free.
    pub linger: Duration,
    /// Worker threads. Handlers block (on a backend call or on a group-commit fsync), so the
    /// pool is sized for concurrent requests, not for cores: twice the default cap of calls
    /// to one backend, so a backend that stops answering leaves half the pool to the rest.
    pub workers: usize,
    /// Open connections; beyond this new ones are closed at accept. Idle ones cost a
    /// buffer and a slot in the reactor, not a thread.
    pub max_connections: usize,
    /// Connections ready to be served but waiting for a worker. Past this the server is
    /// saturated and answers new connections 503 at once instead of queueing without bound.
    pub max_queue: usize,
    /// On shutdown, how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_requests_per_connection: 100_000,
            write_timeout: Duration::from_secs(10),
            max_unwritten_bytes: 64 * 1024,
            linger: Duration::from_millis(50),
            workers: 128,
            max_connections: 10_000,
            max_queue: 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
