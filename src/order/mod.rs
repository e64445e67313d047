//! The order service: order numbers, the durable order log, and the buy protocol
//! with the catalog (see [`log`] for the protocol and its recovery).
//!
//! Internal API (the front-end calls it): `POST /orders {"name","quantity"}` with an
//! optional `Idempotency-Key`, `GET /orders/{number}`.

pub mod log;
pub mod service;

pub use log::OrderLog;
pub use service::OrderService;

use crate::http::{ApiError, Request, Response, Router};
use crate::wire::{BuyRequest, OrderPlaced};
use std::fmt::Write;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The order service's routes.
pub fn router(service: Arc<OrderService>) -> Router {
    let (s1, s2, s3) = (service.clone(), service.clone(), service);
    Router::new()
        .route("GET", "/health", move |_, _| {
            let catalog = if s1.catalog.is_up() { "up" } else { "down" };
            let body = serde_json::json!({"status": "ok", "service": "order", "catalog": catalog, "orders": s1.log.count(), "unresolved": s1.log.unresolved().len()});
            Ok(Response::data(&body))
        })
        .route("POST", "/orders", move |request: &Request, _| {
            let buy = BuyRequest::from_json(&request.body).map_err(ApiError::bad_request)?;
            let key = idempotency_key(request)?;
            let number = s2.place(&buy.name, buy.quantity, key, &request.request_id)?;
            Ok(Response::data(&OrderPlaced { order_number: number }))
        })
        .route("GET", "/orders/{number}", move |_, params| {
            let number = params.get(0).parse::<u64>().map_err(|_| ApiError::bad_request("invalid order number: must be a non-negative integer"))?;
            s3.log.get(number).map(|order| Response::data(&order)).ok_or_else(|| ApiError::not_found("order not found"))
        })
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(request: &Request) -> Result<Option<&str>, ApiError> {
    match request.header("idempotency-key") {
        None => Ok(None),
        Some(key)
            if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid idempotency-key: 1 to 255 visible ascii characters",
        )),
    }
}

/// Watches the catalog and settles open buys whenever it answers; stops when `stop`
/// is sent to or dropped.
pub fn spawn_resolver(
    service: Arc<OrderService>,
    every: Duration,
    stop: crossbeam_channel::Receiver<()>,
) {
    let _ = thread::Builder::new()
        .name("order-resolver".into())
        .spawn(move || loop {
            if service.catalog.probe() && !service.log.unresolved().is_empty() {
                let remaining = service.resolve_open();
                if remaining > 0 {
                    eprintln!("order: {remaining} buys still unresolved");
                }
            }
            if !matches!(
                stop.recv_timeout(every),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            ) {
                return;
            }
        });
}

/// The order service's own lines for `/metrics`.
pub fn metrics(service: &OrderService) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP toystore_orders_total Orders committed.\n# TYPE toystore_orders_total counter\ntoystore_orders_total {}", service.log.count());
    let _ = writeln!(out, "# HELP toystore_orders_unresolved Buys whose outcome waits for the catalog.\n# TYPE toystore_orders_unresolved gauge\ntoystore_orders_unresolved {}", service.log.unresolved().len());
    let _ = writeln!(out, "# HELP toystore_journal_fsyncs_total fsyncs of the journal.\n# TYPE toystore_journal_fsyncs_total counter\ntoystore_journal_fsyncs_total{{service=\"order\"}} {}", service.log.journal().fsyncs());
    let _ = writeln!(out, "# HELP toystore_peer_up Whether a peer answered its last probe.\n# TYPE toystore_peer_up gauge\ntoystore_peer_up{{peer=\"catalog\"}} {}", u8::from(service.catalog.is_up()));
    out
}
