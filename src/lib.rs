//! # toystore
//!
//! A three-tier microservices toy store on a small, hand-rolled HTTP/1.1 server.
//!
//! ```text
//!   client ──HTTP──▶ frontend :6060 ──▶ catalog :10086   (products, stock, write-through journal)
//!                   (product cache) ◀── push: every change (GET /changes)
//!                              └─────▶ order   :10010 ──▶ catalog  (order numbers, durable order log)
//! ```
//!
//! ## Layout
//! - [`http`]: the server every service runs on (limits, connection loop, worker
//!   pool, idle-connection reactor, request parsing, body framing, responses, router,
//!   [`http::ApiError`], the JSON envelope). It depends on nothing above it.
//! - [`peer`]: calls between services: a peer's address (its name looked up within a
//!   call's deadline), the pooled client with its deadlines, retries and bulkhead, and
//!   the batching of concurrent calls into one round trip.
//! - Limits, each with its reason: [`http::Limits`] for a server (sizes, timeouts,
//!   pool, queue), [`peer::PeerLimits`] for calls to peers (timeouts, retries,
//!   bulkhead, batch caps and flights, background intervals, buffer sizes). Both sit in
//!   each service's config; the command line sets the ones it has flags for.
//! - Errors, an enum per layer, each mapped to a status in one place:
//!   [`http::error::ProtocolError`] (framing, in `http/error.rs`),
//!   [`wire::WireError`] (always 400, in `wire.rs`), [`peer::BackendError`] (503/504,
//!   in `peer/backend.rs`), [`catalog::CatalogError`] and [`order::OrderError`] (in
//!   each service's `api.rs`). All become [`http::ApiError`], named by status
//!   (`ApiError::conflict`, `ApiError::unavailable`, ...), and then the envelope.
//! - [`store`]: the durable append-only journal with group commit, shared by the
//!   catalog's table and the order log.
//! - [`catalog`], [`order`], [`frontend`]: one module per service, each the same
//!   shape: `mod.rs` wires it and has its `Config` and its
//!   `run(config, listener, shutdown)` (takes a bound listener, starts and stops its
//!   background thread), `api.rs` holds its routes, the domain files sit beside them. A service
//!   never reaches into another's internals; they meet only over HTTP and [`wire`]. The
//!   catalog streams its changes (`catalog/push.rs`); the front-end caches products
//!   and stays fresh by subscribing to that stream (`frontend/cache.rs`, `push.rs`).
//! - [`wire`]: the bodies that cross the wire and their validation (the shapes, the
//!   quantity and order-number parsers, the idempotency key).
//! - [`client`]: the lab's client (query, buy and random modes, load and evaluation).
//! - [`launcher`]: `cargo run --release` starts the three services as processes.
//! - [`cli`]: the command-line flags of every binary and their conversion into each
//!   service's config. The binaries (`src/bin/`, sharing `src/bin/process/`) answer
//!   `--healthcheck`, bind, print the address, turn signals into a shutdown and call
//!   the service's `run`; the tests' in-process stack (`tests/common/inproc.rs`) calls the same `run`s in threads.
//! - [`logging`]: every line the services write, queued so that a dead or stalled output
//!   never panics or blocks a service.
//! - [`periodic`]: each service's background thread (restock, resolve, monitor).
//! - [`raft`]: the replication core (Raft, sans-IO: stepped by ticks and messages, the
//!   caller persists and sends what its `Ready` says); not wired into a service yet.
//! - [`failpoint`]: named faults between the steps of the buy protocol, for tests.
//! - [`malloc`]: the services' one allocator setting (smaller per-thread caches), set
//!   where processes start (launcher, images, compose), never by re-executing from here.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod cli;
pub mod client;
pub mod failpoint;
pub mod frontend;
pub mod http;
pub mod launcher;
pub mod logging;
pub mod malloc;
pub mod order;
pub mod peer;
pub mod periodic;
pub mod raft;
pub mod store;
pub mod wire;

/// The front-end's default port, the only public one.
pub const FRONT_PORT: u16 = 6060;
/// The catalog's default port.
pub const CATALOG_PORT: u16 = 10086;
/// The order service's default port.
pub const ORDER_PORT: u16 = 10010;
