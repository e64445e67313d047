//! The order service's HTTP routes, and what `POST /orders` checks of an order.

use super::service::{self, OrderError, OrderService};
use crate::http::auth::Access;
use crate::http::envelope::{ErrorBody, Item};
use crate::http::{ApiError, Request, Response, Router};
use crate::peer::batch::{self, Batcher};
use crate::peer::PeerLimits;
use crate::wire::{
    could_be_product_name, order_number_from_text, valid_idempotency_key, BuyRequest, OrderPlaced,
    Placement, Placements, IDEMPOTENCY_KEY,
};
use std::sync::Arc;

/// The one place an order's failure becomes a status.
impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        match error {
            // The contract's answer to a change that could not be made durable.
            OrderError::Storage => ApiError::unavailable(error.to_string()),
            OrderError::KeyInProgress => ApiError::conflict(error.to_string()),
            OrderError::KeyReused => ApiError::unprocessable(error.to_string()),
            OrderError::Catalog(error) => error,
            OrderError::Replayed(refusal) => ApiError::new(refusal.status, refusal.message),
            OrderError::Unsettled | OrderError::SettledTwice => {
                ApiError::internal(error.to_string())
            }
        }
    }
}

/// Orders waiting to be placed together, with the request id of each.
type Placer = Batcher<(Placement, String), Result<u64, ApiError>>;

/// The order service's routes, all but `/health` for the other services only.
/// Concurrent `POST /orders` requests are placed together (one intent fsync, one
/// catalog call, one commit fsync for all; see [`crate::peer::batch`]), in batches
/// within `limits`; `POST /orders/batch` is the same for a batch the front-end
/// already gathered.
pub fn router(service: Arc<OrderService>, limits: &PeerLimits) -> Router {
    let placing = Arc::clone(&service);
    let placer: Placer = Batcher::new(
        limits.order_flights,
        limits.batch_max_items,
        limits.batch_max_bytes,
        Box::new(move |items: Vec<(Placement, String)>| {
            let (orders, request_id) = batch::with_leader_id(items);
            place(&placing, &orders, &request_id)
        }),
    );
    Router::with_state(service)
        .route_for(Access::Public, "GET", "/health", |service: &OrderService, _, _| {
            if !service.log.writable() {
                return Err(OrderError::Storage.into());
            }
            let catalog = if service.catalog.is_up() { "up" } else { "down" };
            let body = serde_json::json!({"status": "ok", "service": "order", "catalog": catalog, "orders": service.log.count(), "unresolved": service.log.unresolved().len()});
            Ok(Response::data(&body))
        })
        .route("POST", "/orders", move |_: &OrderService, request: &Request, _| {
            let buy = BuyRequest::from_json(&request.body)?;
            let key = request.header(IDEMPOTENCY_KEY);
            let order = Placement::from_buy(buy, key)?;
            check_placement(&order)?;
            let bytes = order.batch_bytes();
            let number = placer.submit((order, request.request_id.clone()), bytes)?;
            Ok(Response::data(&OrderPlaced { order_number: number }))
        })
        .route("POST", "/orders/batch", |service: &OrderService, request: &Request, _| {
            let batch: Placements = request.json_body("{\"orders\": [{name, quantity, key?}, ...]}")?;
            let placed = batch::run_checked(batch.orders, check_placement, |orders| place(service, &orders, &request.request_id));
            let items: Vec<Item<OrderPlaced>> = placed
                .into_iter()
                .map(|result| Item::new(result.map(|order_number| OrderPlaced { order_number }).map_err(ErrorBody::from)))
                .collect();
            Ok(Response::data(&items))
        })
        .route("GET", "/orders/{number}", |service: &OrderService, _, params| {
            let number = order_number_from_text(params.get("number"))?;
            let order = service.log.get(number).map_err(service::storage_failure)?;
            order.map(|order| Response::data(&order)).ok_or_else(|| ApiError::not_found("order not found"))
        })
        .into_router()
}

/// Places `orders`, each failure as its status.
fn place(
    service: &OrderService,
    orders: &[Placement],
    request_id: &str,
) -> Vec<Result<u64, ApiError>> {
    let placed = service.place_many(orders, request_id);
    placed
        .into_iter()
        .map(|result| result.map_err(ApiError::from))
        .collect()
}

/// What `POST /orders` checks of its body and key, also for each order of a batch.
fn check_placement(order: &Placement) -> Result<(), ApiError> {
    order.check()?;
    // A name no product can have is refused before anything is logged, so such requests
    // cannot grow the order log; the bound also keeps every intent record under 1 KiB
    // (with the 255-byte key). Other unknown names cost one bounded intent and its abort.
    if !could_be_product_name(&order.name) {
        return Err(ApiError::not_found("product not found"));
    }
    order
        .key
        .as_deref()
        .map_or(Ok(()), |key| valid_idempotency_key(key).map(drop))
        .map_err(ApiError::from)
}
