//! The catalog service: products, stock, buys, admin updates and restocking.
//!
//! - [`run`]: the service, from its [`CatalogConfig`], on a bound listener.
//! - [`store`]: the table in memory, its journal and snapshot (the domain).
//! - [`push`]: the change stream the front-ends' caches subscribe to.
//! - [`api`]: the HTTP routes over it, and [`CatalogError`]'s statuses.
//!
//! Internal API (the order service and the front-end call it):
//! `GET /products`, `GET /products/{name}`, `PUT /products/{name}` (admin),
//! `POST /buy {"buy_id","name","quantity","settled_below"}` (idempotent on `buy_id`),
//! `POST /buys/{id}/resolve` (applied, or voided for good), and the batch forms
//! `POST /lookup {"names"}` and `POST /buys {"buys"}` (one reply item per entry), and
//! `GET /changes`, the stream of every change ([`push`]).

pub mod api;
pub mod push;
pub mod store;

pub use store::{Catalog, CatalogError, Product, BUILTIN_SEED};

use crate::http::{self, MetricsExtra, ServerConfig, ShutdownHandle};
use crate::periodic::{FirstRound, Periodic};
use std::fmt::Write;
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything the catalog is started with.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Its server's limits, access log and internal token.
    pub server: ServerConfig,
    /// Directory of catalog.snapshot and catalog.journal.
    pub data_dir: PathBuf,
    /// The seed's text (`id name price quantity [category]` per line), used on first
    /// start only.
    pub seed: String,
    /// Token `PUT /products/{name}` must carry; `None` disables admin updates.
    pub admin_token: Option<String>,
    /// How often sold-out products are restocked; `None`: never.
    pub restock_period: Option<Duration>,
    /// Stock a sold-out product is restocked to.
    pub restock_level: u64,
    /// Journal records between snapshots.
    pub snapshot_every: u64,
}

/// Runs the catalog on `listener` until `shutdown`: opens its data directory, starts
/// the restocker, serves, and stops the restocker (dropped) before it returns.
pub fn run(
    config: CatalogConfig,
    listener: TcpListener,
    shutdown: ShutdownHandle,
) -> io::Result<()> {
    let catalog = Catalog::open(&config.data_dir, &config.seed, config.snapshot_every)
        .map_err(|e| crate::store::data_dir_error(&config.data_dir, &e))?;
    let catalog = Arc::new(catalog);
    let _restocker = match config.restock_period {
        Some(period) => Some(restocker(
            Arc::clone(&catalog),
            period,
            config.restock_level,
        )?),
        None => None,
    };
    let changes = Arc::clone(catalog.changes());
    let router = api::router(Arc::clone(&catalog), config.admin_token);
    let extra: MetricsExtra = Box::new(move || metrics(&catalog));
    let served = http::serve(
        "catalog",
        listener,
        router,
        &config.server,
        Some(extra),
        shutdown,
    );
    // The server has forgotten the change streams it handed over: they end here.
    changes.close();
    served
}

/// Every `period`, restocks the products sold out for at least a period.
fn restocker(catalog: Arc<Catalog>, period: Duration, level: u64) -> io::Result<Periodic> {
    Periodic::start(
        "catalog-restock",
        period,
        FirstRound::AfterPeriod,
        move || match catalog.restock(level, period) {
            Ok(names) if !names.is_empty() => crate::logging::info(format!(
                "catalog: restocked {} to {level}",
                names.join(", ")
            )),
            Ok(_) => {}
            Err(e) => crate::logging::warn(format!("catalog: restock failed: {e}")),
        },
    )
}

/// The catalog's own lines for `/metrics`: stock per product and journal activity.
fn metrics(catalog: &Catalog) -> String {
    let mut out = String::from(
        "# HELP toystore_catalog_stock Units in stock.\n# TYPE toystore_catalog_stock gauge\n",
    );
    for (name, quantity) in catalog.stock() {
        let _ = writeln!(
            out,
            "toystore_catalog_stock{{product=\"{}\"}} {quantity}",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    let changes = catalog.changes();
    let _ = write!(
        out,
        "# HELP toystore_catalog_push_subscribers Subscribers to GET /changes.\n# TYPE toystore_catalog_push_subscribers gauge\ntoystore_catalog_push_subscribers {}\n\
         # HELP toystore_catalog_push_lines_total Lines written to subscribers (hellos, changes, heartbeats).\n# TYPE toystore_catalog_push_lines_total counter\ntoystore_catalog_push_lines_total {}\n\
         # HELP toystore_catalog_push_dropped_total Subscribers cut off for falling behind or a failed write.\n# TYPE toystore_catalog_push_dropped_total counter\ntoystore_catalog_push_dropped_total {}\n",
        changes.subscribers(),
        changes.lines_sent(),
        changes.dropped()
    );
    let journal = catalog.journal();
    let _ = writeln!(out, "# HELP toystore_journal_fsyncs_total fsyncs of the journal.\n# TYPE toystore_journal_fsyncs_total counter\ntoystore_journal_fsyncs_total{{service=\"catalog\"}} {}", journal.fsyncs());
    out
}
