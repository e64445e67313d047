//! The front-end: the only public service. It validates every request before a backend
//! sees it, routes queries to the catalog and buys to the order service, and passes
//! their answers through; a backend that is down or slow becomes 503/504.

use crate::http::auth::require_bearer;
use crate::http::backend::{Backend, Reply};
use crate::http::{ApiError, HandlerResult, Request, Response, Router};
use crate::order::idempotency_key;
use crate::wire::{quantity_from_text, BuyRequest, ListQuery, ProductUpdate};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::sync::Arc;

/// The front-end's peers and settings.
pub struct Frontend {
    /// Products and stock.
    pub catalog: Backend,
    /// Orders.
    pub order: Backend,
    /// Guards `PUT /products/{name}`.
    pub admin_token: Option<String>,
}

/// A backend's reply, passed through as it is: the backends speak the same envelope.
fn relay(reply: Reply) -> Response {
    Response {
        status: reply.status,
        headers: Vec::new(),
        body: reply.body,
        content_type: "application/json",
    }
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

impl Frontend {
    fn buy(&self, request: &Request, buy: BuyRequest) -> HandlerResult {
        let mut headers = vec![("X-Request-Id", request.request_id.as_str())];
        let key = idempotency_key(request)?;
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        let body = serde_json::to_vec(&buy).unwrap_or_default();
        Ok(relay(self.order.send_json(
            "POST",
            "/orders",
            &body,
            &headers,
            key.is_some(),
        )?))
    }
}

/// The public routes.
pub fn router(frontend: Arc<Frontend>) -> Router {
    let f = |f: &Arc<Frontend>| Arc::clone(f);
    let (health, list, get, put, orders, lab, lookup) = (
        f(&frontend),
        f(&frontend),
        f(&frontend),
        f(&frontend),
        f(&frontend),
        f(&frontend),
        frontend,
    );
    Router::new()
        .route("GET", "/health", move |_, _| {
            let state = |b: &Backend| if b.is_up() { "up" } else { "down" };
            let body = serde_json::json!({"status": "ok", "service": "frontend", "catalog": state(&health.catalog), "order": state(&health.order)});
            Ok(Response::data(&body))
        })
        .route("GET", "/products", move |request: &Request, _| {
            let query = ListQuery::from_pairs(&request.query_pairs()?).map_err(ApiError::bad_request)?;
            let path = format!("/products?{}", query.to_query_string());
            Ok(relay(list.catalog.get(&path, &request.request_id)?))
        })
        .route("GET", "/products/{name}", move |request: &Request, params| {
            let path = format!("/products/{}", encode(params.get(0)));
            Ok(relay(get.catalog.get(&path, &request.request_id)?))
        })
        .route("PUT", "/products/{name}", move |request: &Request, params| {
            require_bearer(request, put.admin_token.as_deref())?;
            let update = ProductUpdate::from_json(&request.body).map_err(ApiError::bad_request)?;
            let body = serde_json::to_vec(&update).unwrap_or_default();
            let authorization = request.header("authorization").unwrap_or_default();
            let headers = [("X-Request-Id", request.request_id.as_str()), ("Authorization", authorization)];
            let path = format!("/products/{}", encode(params.get(0)));
            // Setting a value twice is harmless, so the update may be retried.
            Ok(relay(put.catalog.send_json("PUT", &path, &body, &headers, true)?))
        })
        .route("POST", "/orders", move |request: &Request, _| {
            let buy = BuyRequest::from_json(&request.body).map_err(ApiError::bad_request)?;
            orders.buy(request, buy)
        })
        .route("POST", "/{name}/{quantity}", move |request: &Request, params| {
            let quantity = quantity_from_text(params.get(1)).map_err(ApiError::bad_request)?;
            lab.buy(request, BuyRequest { name: params.get(0).to_string(), quantity })
        })
        .route("GET", "/orders/{number}", move |request: &Request, params| {
            let number = params.get(0).parse::<u64>().map_err(|_| ApiError::bad_request("invalid order number: must be a non-negative integer"))?;
            Ok(relay(lookup.order.get(&format!("/orders/{number}"), &request.request_id)?))
        })
}

/// Probes both backends every `every`, so `/health` reports their state even when no
/// request has gone to them lately; stops when `stop` is sent to or dropped.
pub fn spawn_monitor(
    frontend: Arc<Frontend>,
    every: std::time::Duration,
    stop: crossbeam_channel::Receiver<()>,
) {
    let _ = std::thread::Builder::new()
        .name("frontend-monitor".into())
        .spawn(move || loop {
            frontend.catalog.probe();
            frontend.order.probe();
            if !matches!(
                stop.recv_timeout(every),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            ) {
                return;
            }
        });
}
