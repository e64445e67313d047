//! The order service: order numbers, the durable order log, and the buy protocol
//! with the catalog (see [`log`] for the protocol and its recovery).
//!
//! Internal API (the front-end calls it): `POST /orders {"name","quantity"}` with an
//! optional `Idempotency-Key`, its batch form `POST /orders/batch {"orders": [{"name",
//! "quantity","key"}, ...]}` (one reply item per order), and `GET /orders/{number}`.
//!
//! - [`run`]: the service, from its [`OrderConfig`], on a bound listener; its resolver
//!   aborts open buys whenever the catalog answers.
//! - [`api`]: the HTTP routes, and [`OrderError`]'s statuses. [`service`]: placing
//!   orders (the buy protocol's steps).
//! - [`log`]: the durable order log and its recovery; [`table`]: orders in memory.

pub mod api;
pub mod log;
pub mod service;
pub mod table;

pub use log::OrderLog;
pub use service::{OrderError, OrderService};

use crate::http::{self, MetricsExtra, ServerConfig, ShutdownHandle};
use crate::peer::{PeerAddr, PeerConfig};
use crate::periodic::{FirstRound, Periodic};
use std::fmt::Write;
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything the order service is started with.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// Its server's limits, access log and internal token.
    pub server: ServerConfig,
    /// Directory of orders.log.
    pub data_dir: PathBuf,
    /// The catalog.
    pub catalog: PeerAddr,
    /// How it calls the catalog.
    pub peers: PeerConfig,
}

/// Runs the order service on `listener` until `shutdown`: opens the order log, starts
/// the resolver, serves, and stops the resolver (dropped) before it returns.
pub fn run(config: OrderConfig, listener: TcpListener, shutdown: ShutdownHandle) -> io::Result<()> {
    let log = OrderLog::open(&config.data_dir)
        .map_err(|e| crate::store::data_dir_error(&config.data_dir, &e))?;
    let catalog = config.peers.backend("catalog", config.catalog);
    let service = Arc::new(OrderService::new(log, catalog));
    let limits = &config.peers.limits;
    let _resolver = resolver(Arc::clone(&service), limits.resolve_every)?;
    let router = api::router(Arc::clone(&service), limits);
    let extra: MetricsExtra = Box::new(move || metrics(&service));
    http::serve(
        "order",
        listener,
        router,
        &config.server,
        Some(extra),
        shutdown,
    )
}

/// Watches the catalog and aborts open buys whenever it answers.
fn resolver(service: Arc<OrderService>, every: Duration) -> io::Result<Periodic> {
    Periodic::start("order-resolver", every, FirstRound::Now, move || {
        if service.catalog.probe() && !service.log.unresolved().is_empty() {
            let remaining = service.resolve_open();
            if remaining > 0 {
                crate::logging::warn(format!("order: {remaining} buys still unresolved"));
            }
        }
    })
}

/// The order service's own lines for `/metrics`.
fn metrics(service: &OrderService) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP toystore_orders_total Orders committed.\n# TYPE toystore_orders_total counter\ntoystore_orders_total {}", service.log.count());
    let _ = writeln!(out, "# HELP toystore_orders_unresolved Buys whose outcome waits for the catalog.\n# TYPE toystore_orders_unresolved gauge\ntoystore_orders_unresolved {}", service.log.unresolved().len());
    let _ = writeln!(out, "# HELP toystore_journal_fsyncs_total fsyncs of the journal.\n# TYPE toystore_journal_fsyncs_total counter\ntoystore_journal_fsyncs_total{{service=\"order\"}} {}", service.log.journal().fsyncs());
    let _ = writeln!(out, "# HELP toystore_peer_up Whether a peer answered its last probe.\n# TYPE toystore_peer_up gauge\ntoystore_peer_up{{peer=\"catalog\"}} {}", u8::from(service.catalog.is_up()));
    out
}
