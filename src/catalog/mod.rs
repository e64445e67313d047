//! The catalog service: products, stock, buys, admin updates and restocking.
//!
//! - [`store`]: the table in memory, its journal and snapshot (the domain).
//! - [`api`]: the HTTP routes over it.
//!
//! Internal API (the order service and the front-end call it):
//! `GET /products`, `GET /products/{name}`, `PUT /products/{name}` (admin),
//! `POST /buy {"buy_id","name","quantity","settled_below"}` (idempotent on `buy_id`),
//! `POST /buys/{id}/resolve` (applied, or voided for good), and the batch forms
//! `POST /lookup {"names"}` and `POST /buys {"buys"}` (one reply item per entry).

pub mod api;
pub mod store;

pub use store::{Catalog, CatalogError, Product, BUILTIN_SEED};

use std::fmt::Write;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Every `period`, restocks the products sold out for at least a period, until `stop`
/// is dropped or sent to.
pub fn spawn_restocker(
    catalog: Arc<Catalog>,
    period: Duration,
    level: u64,
    stop: crossbeam_channel::Receiver<()>,
) {
    let _ = thread::Builder::new()
        .name("catalog-restock".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(period)
            {
                match catalog.restock(level, period) {
                    Ok(names) if !names.is_empty() => crate::logging::info(format!(
                        "catalog: restocked {} to {level}",
                        names.join(", ")
                    )),
                    Ok(_) => {}
                    Err(e) => crate::logging::warn(format!("catalog: restock failed: {e}")),
                }
            }
        });
}

/// The catalog's own lines for `/metrics`: stock per product and journal activity.
pub fn metrics(catalog: &Catalog) -> String {
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
    let journal = catalog.journal();
    let _ = writeln!(out, "# HELP toystore_journal_fsyncs_total fsyncs of the journal.\n# TYPE toystore_journal_fsyncs_total counter\ntoystore_journal_fsyncs_total{{service=\"catalog\"}} {}", journal.fsyncs());
    out
}
