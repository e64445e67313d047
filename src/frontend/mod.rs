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
//! - [`cache`]: the products it answers from memory, never stale; [`push`]: the
//!   catalog's push channel that keeps it so.

pub mod api;
pub mod cache;
pub mod push;

use crate::http::{self, MetricsExtra, ServerConfig, ShutdownHandle};
use crate::peer::backend::Backend;
use crate::peer::{PeerAddr, PeerConfig, PeerLimits};
use crate::periodic::{FirstRound, Periodic};
use cache::Cache;
use std::fmt::Write as _;
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
    /// Products cached; 0 turns the cache (and the push subscription) off.
    pub cache_size: usize,
}

/// Products cached when nothing says otherwise: above 0 and below the default seed's
/// count, so that the lab's evaluation sees evictions.
pub const DEFAULT_CACHE_SIZE: usize = 8;

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
    /// Products answered from memory.
    pub cache: Arc<Cache>,
}

/// Runs the front-end on `listener` until `shutdown`: starts the monitor and, with a
/// cache, its push subscription; serves; and stops both (dropped) before it returns.
pub fn run(
    config: FrontendConfig,
    listener: TcpListener,
    shutdown: ShutdownHandle,
) -> io::Result<()> {
    let frontend = Arc::new(Frontend {
        catalog: config.peers.backend("catalog", config.catalog.clone()),
        order: config.peers.backend("order", config.order),
        admin_token: config.admin_token,
        limits: config.peers.limits,
        cache: Arc::new(Cache::new(config.cache_size, push::SILENCE_LIMIT)),
    });
    let _monitor = monitor(Arc::clone(&frontend))?;
    let _subscriber = match config.cache_size {
        0 => None,
        _ => Some(push::subscribe(
            Arc::clone(&frontend.cache),
            config.catalog,
            config.peers.internal_token.as_deref(),
        )?),
    };
    let cache = Arc::clone(&frontend.cache);
    let extra: MetricsExtra = Box::new(move || metrics(&cache));
    http::serve(
        "frontend",
        listener,
        api::router(frontend),
        &config.server,
        Some(extra),
        shutdown,
    )
}

/// The cache's lines of `/metrics`.
fn metrics(cache: &Cache) -> String {
    let stats = cache.stats();
    let mut out = String::new();
    let lines: [(&str, &str, &str, u64); 4] = [
        (
            "toystore_cache_hits_total",
            "counter",
            "Product queries answered from the cache.",
            stats.hits,
        ),
        (
            "toystore_cache_misses_total",
            "counter",
            "Product queries that asked the catalog.",
            stats.misses,
        ),
        (
            "toystore_cache_evictions_total",
            "counter",
            "Cached products dropped to make room.",
            stats.evictions,
        ),
        (
            "toystore_cache_entries",
            "gauge",
            "Products in the cache.",
            stats.entries as u64,
        ),
    ];
    for (name, kind, help, value) in lines {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
    out
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
