//! The order service: order numbers, the durable order log, and the buy protocol
//! with the catalog (see [`log`] for the protocol and its recovery).
//!
//! Internal API (the front-end calls it): `POST /orders {"name","quantity"}` with an
//! optional `Idempotency-Key`, its batch form `POST /orders/batch {"orders": [{"name",
//! "quantity","key"}, ...]}` (one reply item per order), and `GET /orders/{number}`.

pub mod log;
pub mod service;
pub mod table;

pub use log::OrderLog;
pub use service::OrderService;

use crate::batch::{self, Batcher};
use crate::http::auth::Access;
use crate::http::{ApiError, Request, Response, Router};
use crate::wire::{
    could_be_product_name, order_number_from_text, BuyRequest, ErrorBody, Item, OrderPlaced,
    Placement, Placements,
};
use std::fmt::Write;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Orders waiting to be placed together, with the request id of each.
type Placer = Batcher<(Placement, String), Result<u64, ApiError>>;

/// Batches of orders placed at once: while one waits for its fsyncs and the catalog,
/// the next is gathered and started.
const FLIGHTS: usize = 2;

/// The order service's routes, all but `/health` for the other services only. Concurrent `POST /orders` requests are placed together
/// (one intent fsync, one catalog call, one commit fsync for all; see [`crate::batch`]);
/// `POST /orders/batch` is the same for a batch the front-end already gathered.
pub fn router(service: Arc<OrderService>) -> Router {
    let (s1, s2, s3) = (service.clone(), service.clone(), service.clone());
    let placer: Placer = Batcher::new(
        FLIGHTS,
        batch::MAX_ITEMS,
        batch::MAX_BYTES,
        Box::new(move |items: Vec<(Placement, String)>| {
            let (orders, request_id) = batch::with_leader_id(items);
            service.place_many(&orders, &request_id)
        }),
    );
    Router::new()
        .route_for(Access::Public, "GET", "/health", move |_, _| {
            if !s1.log.writable() {
                return Err(ApiError::new(503, "storage unavailable"));
            }
            let catalog = if s1.catalog.is_up() { "up" } else { "down" };
            let body = serde_json::json!({"status": "ok", "service": "order", "catalog": catalog, "orders": s1.log.count(), "unresolved": s1.log.unresolved().len()});
            Ok(Response::data(&body))
        })
        .route("POST", "/orders", move |request: &Request, _| {
            let buy = BuyRequest::from_json(&request.body).map_err(ApiError::bad_request)?;
            let order = placement(request, buy)?;
            check_placement(&order)?;
            let bytes = order.batch_bytes();
            let number = placer.submit((order, request.request_id.clone()), bytes)?;
            Ok(Response::data(&OrderPlaced { order_number: number }))
        })
        .route("POST", "/orders/batch", move |request: &Request, _| {
            let batch: Placements = request.json_body("{\"orders\": [{name, quantity, key?}, ...]}")?;
            let placed = batch::run_checked(batch.orders, check_placement, |orders| s2.place_many(&orders, &request.request_id));
            let items: Vec<Item<OrderPlaced>> = placed
                .into_iter()
                .map(|result| Item::new(result.map(|order_number| OrderPlaced { order_number }).map_err(ErrorBody::from)))
                .collect();
            Ok(Response::data(&items))
        })
        .route("GET", "/orders/{number}", move |_, params| {
            let number = order_number_from_text(params.get(0)).map_err(ApiError::bad_request)?;
            let order = s3.log.get(number).map_err(service::storage_failure)?;
            order.map(|order| Response::data(&order)).ok_or_else(|| ApiError::not_found("order not found"))
        })
}

/// What `POST /orders` checks of its body and key, also for each order of a batch.
fn check_placement(order: &Placement) -> Result<(), ApiError> {
    order.check().map_err(ApiError::bad_request)?;
    // A name no product can have is refused before anything is logged, so such requests
    // cannot grow the order log; the bound also keeps every intent record under 1 KiB
    // (with the 255-byte key). Other unknown names cost one bounded intent and its abort.
    if !could_be_product_name(&order.name) {
        return Err(ApiError::not_found("product not found"));
    }
    order
        .key
        .as_deref()
        .map_or(Ok(()), |key| valid_key(key).map(drop))
}

/// A buy and its `Idempotency-Key` header as an order to place (the front-end's and
/// the order service's `POST /orders` alike).
pub fn placement(request: &Request, buy: BuyRequest) -> Result<Placement, ApiError> {
    Ok(Placement {
        name: buy.name,
        quantity: buy.quantity,
        key: idempotency_key(request)?.map(str::to_string),
    })
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(request: &Request) -> Result<Option<&str>, ApiError> {
    request.header("idempotency-key").map(valid_key).transpose()
}

fn valid_key(key: &str) -> Result<&str, ApiError> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key)
    } else {
        Err(ApiError::bad_request(
            "invalid idempotency-key: 1 to 255 visible ascii characters",
        ))
    }
}

/// Watches the catalog and aborts open buys whenever it answers; stops when `stop` is
/// sent to or dropped.
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
                    crate::logging::warn(format!("order: {remaining} buys still unresolved"));
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
