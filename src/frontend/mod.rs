//! The front-end: the only public service. It validates every request before a backend
//! sees it, routes queries to the catalog and buys to the order service, and passes
//! their answers through; a backend that is down or slow becomes 503/504.
//!
//! Each request has one deadline for all its backend work, the backend timeout from
//! when it arrived ([`crate::http::Request::started`]): time spent waiting for a worker
//! or queued behind a batch in flight comes out of it, so a request never waits out
//! another's timeout and then runs its own. A name no product can have
//! ([`crate::wire::could_be_product_name`]) is answered here (404; no match for a filter).
//!
//! - [`run`]: the service, from its [`FrontendConfig`], on a bound listener; its
//!   monitor probes both backends every second for `/health`.
//! - [`api`]: the public routes, and the batches they gather.

pub mod api;

use crate::http::{self, ServerConfig, ShutdownHandle};
use crate::peer::backend::Backend;
use crate::peer::{PeerAddr, PeerConfig, PeerLimits};
use crate::periodic::{FirstRound, Periodic};
use std::io;
use std::net::TcpListener;
use std::sync::Arc;

/// Everything the front-end is started with.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// Its server's limits, access log and internal token.
    pub server: ServerConfig,
    /// The catalog.
    pub catalog: PeerAddr,
    /// The order service.
    pub order: PeerAddr,
    /// How it calls both.
    pub peers: PeerConfig,
    /// Token `PUT /products/{name}` must carry; `None` disables admin updates.
    pub admin_token: Option<String>,
}

/// The front-end's peers and settings.
pub struct Frontend {
    /// Products and stock.
    pub catalog: Backend,
    /// Orders.
    pub order: Backend,
    /// Guards `PUT /products/{name}`.
    pub admin_token: Option<String>,
    /// Its batches' caps and flights, its probes' interval.
    pub limits: PeerLimits,
}

/// Runs the front-end on `listener` until `shutdown`: starts the monitor, serves, and
/// stops the monitor (dropped) before it returns.
pub fn run(
    config: FrontendConfig,
    listener: TcpListener,
    shutdown: ShutdownHandle,
) -> io::Result<()> {
    let frontend = Arc::new(Frontend {
        catalog: config.peers.backend("catalog", config.catalog),
        order: config.peers.backend("order", config.order),
        admin_token: config.admin_token,
        limits: config.peers.limits,
    });
    let _monitor = monitor(Arc::clone(&frontend))?;
    http::serve(
        "frontend",
        listener,
        api::router(frontend),
        &config.server,
        None,
        shutdown,
    )
}

/// Probes both backends every `limits.probe_every`, so `/health` reports their state
/// even when no request has gone to them lately.
fn monitor(frontend: Arc<Frontend>) -> io::Result<Periodic> {
    let every = frontend.limits.probe_every;
    Periodic::start("frontend-monitor", every, FirstRound::Now, move || {
        frontend.catalog.probe();
        frontend.order.probe();
    })
}
