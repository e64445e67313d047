//! The front-end: the only public service. It validates every request before a backend
//! sees it, routes queries to the catalog and buys to the order service, and passes
//! their answers through; a backend that is down or slow becomes 503/504.
//!
//! Each request has one deadline for all its backend work, the backend timeout from when
//! it arrived ([`Request::started`]): time spent waiting for a worker or queued behind a
//! batch in flight comes out of it, so a request never waits out another's timeout and
//! then runs its own. A name no product can have ([`could_be_product_name`]) is answered
//! here (404; no match for a filter).

use crate::batch::{self, Batcher};
use crate::http::auth::Access;
use crate::http::backend::{Backend, BackendError, Reply};
use crate::http::{ApiError, HandlerResult, Request, Response, Router};
use crate::order::placement;
use crate::wire::{
    could_be_product_name, order_number_from_text, quantity_from_text, BuyRequest, ListQuery,
    Lookup, OrderPlaced, Placement, Placements, ProductListItem, ProductUpdate, ProductView,
};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::sync::Arc;
use std::time::Instant;

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

/// What a request brings to a batch besides its item. A batch travels under its
/// leader's (its oldest item's): that request id, and that deadline, the earliest.
#[derive(Default)]
struct Call {
    request_id: String,
    deadline: Option<Instant>,
}

/// Concurrent requests of one kind, gathered into one backend call (see
/// [`crate::batch`]).
type Gathered<T> = Batcher<(T, Call), HandlerResult>;

/// Runs `item` in a batch of `batcher`'s by the request's deadline against `backend`.
/// An item too large for any batch is 413; one whose deadline passes while it waits is
/// the backend's timeout.
fn gather<T: serde::Serialize>(
    batcher: &Gathered<T>,
    backend: &Backend,
    request: &Request,
    item: T,
    deadline: Instant,
) -> HandlerResult {
    let bytes =
        batch::share(&item).ok_or_else(|| ApiError::new(413, "request too large to forward"))?;
    let call = Call {
        request_id: request.request_id.clone(),
        deadline: Some(deadline),
    };
    batcher
        .submit_by((item, call), bytes, deadline)
        .unwrap_or_else(|| Err(BackendError::Timeout(backend.name()).into()))
}

/// 404 for a name longer than any product's, before it goes anywhere.
fn could_be_product(name: &str) -> Result<(), ApiError> {
    if !could_be_product_name(name) {
        return Err(ApiError::not_found("product not found"));
    }
    Ok(())
}

/// The API reference (`docs/openapi.json`, generated from `docs/openapi.yaml`), built
/// into the binary so that a container needs no file.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Lookups in flight at once: one, since a lookup is quick and CPU, not the round
/// trip, is what limits queries; a second flight would only make batches smaller.
const QUERY_FLIGHTS: usize = 1;
/// Buys in flight at once: a buy batch spends most of its time waiting for fsyncs, so
/// a second batch can be gathered and sent meanwhile.
const BUY_FLIGHTS: usize = 2;

impl Frontend {
    /// Looks many products up in one catalog call. A batch of one (a quiet moment) is
    /// a plain `GET` whose reply is passed through: no lookup body to build and parse.
    fn lookup_many(&self, queries: Vec<(String, Call)>) -> Vec<HandlerResult> {
        let (names, call) = batch::with_leader_id(queries);
        let deadline = call
            .deadline
            .unwrap_or_else(|| self.catalog.deadline(Instant::now()));
        if let [name] = &names[..] {
            let path = format!("/products/{}", encode(name));
            return vec![self
                .catalog
                .get_by(&path, &call.request_id, deadline)
                .map(relay)
                .map_err(ApiError::from)];
        }
        let count = names.len();
        let lookup = Lookup { names };
        let found = self.catalog.send_batch::<ProductView>(
            "/lookup",
            &lookup,
            count,
            &call.request_id,
            true,
            deadline,
        );
        split(found, count, |view| Response::data(&view))
    }

    /// Places many orders in one call to the order service. It may be retried after a
    /// lost reply only when every order in it carries an idempotency key.
    fn place_many(&self, buys: Vec<(Placement, Call)>) -> Vec<HandlerResult> {
        let (orders, call) = batch::with_leader_id(buys);
        let deadline = call
            .deadline
            .unwrap_or_else(|| self.order.deadline(Instant::now()));
        let count = orders.len();
        let idempotent = orders.iter().all(|order| order.key.is_some());
        let body = Placements { orders };
        let placed = self.order.send_batch::<OrderPlaced>(
            "/orders/batch",
            &body,
            count,
            &call.request_id,
            idempotent,
            deadline,
        );
        split(placed, count, |placed| Response::data(&placed))
    }
}

/// One handler result per item of a batch call, or the call's failure for each.
fn split<T>(
    batch: Result<Vec<Result<T, ApiError>>, ApiError>,
    count: usize,
    respond: impl Fn(T) -> Response,
) -> Vec<HandlerResult> {
    match batch {
        Ok(items) => items.into_iter().map(|item| item.map(&respond)).collect(),
        Err(error) => vec![Err(error); count],
    }
}

fn buy(
    frontend: &Frontend,
    buys: &Gathered<Placement>,
    request: &Request,
    buy: BuyRequest,
) -> HandlerResult {
    let deadline = frontend.order.deadline(request.started);
    let order = placement(request, buy)?;
    could_be_product(&order.name)?;
    gather(buys, &frontend.order, request, order, deadline)
}

/// The public routes. Single-product queries and buys that arrive together go to
/// their backend as one batch; the rarer routes are passed through one by one.
pub fn router(frontend: Arc<Frontend>) -> Router {
    let f = |f: &Arc<Frontend>| Arc::clone(f);
    let (health, list, put, lookup) = (f(&frontend), f(&frontend), f(&frontend), f(&frontend));
    let (query, buyer, lab_buyer) = (f(&frontend), f(&frontend), f(&frontend));
    let frontend_admin_token = frontend.admin_token.clone();
    let queries: Gathered<String> = {
        let frontend = f(&frontend);
        Batcher::new(
            QUERY_FLIGHTS,
            batch::MAX_ITEMS,
            batch::MAX_BYTES,
            Box::new(move |q| frontend.lookup_many(q)),
        )
    };
    let buys: Arc<Gathered<Placement>> = Arc::new(Batcher::new(
        BUY_FLIGHTS,
        batch::MAX_ITEMS,
        batch::MAX_BYTES,
        Box::new(move |b| frontend.place_many(b)),
    ));
    let lab_buys = Arc::clone(&buys);
    Router::new()
        .route_for(Access::Public, "GET", "/health", move |_, _| {
            let state = |b: &Backend| if b.is_up() { "up" } else { "down" };
            let body = serde_json::json!({"status": "ok", "service": "frontend", "catalog": state(&health.catalog), "order": state(&health.order)});
            Ok(Response::data(&body))
        })
        .route_for(Access::Public, "GET", "/openapi.json", |_, _| {
            Ok(Response::text(200, "application/json", OPENAPI_JSON.into()))
        })
        .route_for(Access::Public, "GET", "/products", move |request: &Request, _| {
            let query = ListQuery::from_pairs(&request.query_pairs()?).map_err(ApiError::bad_request)?;
            if query.matches_nothing() {
                return Ok(Response::data(&Vec::<ProductListItem>::new()));
            }
            let path = format!("/products?{}", query.to_query_string());
            let deadline = list.catalog.deadline(request.started);
            Ok(relay(list.catalog.get_by(&path, &request.request_id, deadline)?))
        })
        .route_for(Access::Public, "GET", "/products/{name}", move |request: &Request, params| {
            let deadline = query.catalog.deadline(request.started);
            could_be_product(params.get(0))?;
            gather(&queries, &query.catalog, request, params.get(0).to_string(), deadline)
        })
        .route_for(Access::Admin(frontend_admin_token), "PUT", "/products/{name}", move |request: &Request, params| {
            let update = ProductUpdate::from_json(&request.body).map_err(ApiError::bad_request)?;
            could_be_product(params.get(0))?;
            let body = serde_json::to_vec(&update).unwrap_or_default();
            // The catalog checks the admin token again only where there is no internal
            // token: with one, the backend sends it in place of this header.
            let authorization = request.header("authorization").unwrap_or_default();
            let headers = [("X-Request-Id", request.request_id.as_str()), ("Authorization", authorization)];
            let path = format!("/products/{}", encode(params.get(0)));
            let deadline = put.catalog.deadline(request.started);
            Ok(relay(put.catalog.put_by(&path, &body, &headers, deadline)?))
        })
        .route_for(Access::Public, "POST", "/orders", move |request: &Request, _| {
            let order = BuyRequest::from_json(&request.body).map_err(ApiError::bad_request)?;
            buy(&buyer, &buys, request, order)
        })
        .route_for(Access::Public, "POST", "/{name}/{quantity}", move |request: &Request, params| {
            let quantity = quantity_from_text(params.get(1)).map_err(ApiError::bad_request)?;
            buy(&lab_buyer, &lab_buys, request, BuyRequest { name: params.get(0).to_string(), quantity })
        })
        .route_for(Access::Public, "GET", "/orders/{number}", move |request: &Request, params| {
            let number = order_number_from_text(params.get(0)).map_err(ApiError::bad_request)?;
            let deadline = lookup.order.deadline(request.started);
            Ok(relay(lookup.order.get_by(&format!("/orders/{number}"), &request.request_id, deadline)?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::PeerAddr;
    use std::collections::BTreeSet;
    use std::time::Duration;

    /// `GET /metrics` is answered by the server for every service, not by a route.
    const SERVER_ROUTES: [(&str, &str); 1] = [("GET", "/metrics")];

    /// The served reference is OpenAPI 3.1 and describes exactly the public routes,
    /// so a route added or removed without the document fails here.
    #[test]
    fn the_api_reference_lists_every_public_route() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(spec["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().unwrap().keys();
                methods
                    .filter(|method| *method != "parameters")
                    .map(|method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let backend = |port| {
            let addr = PeerAddr::parse(&format!("127.0.0.1:{port}"), port).unwrap();
            Backend::new("peer", addr, Duration::from_secs(1), 1, 0)
        };
        let router = router(Arc::new(Frontend {
            catalog: backend(1),
            order: backend(2),
            admin_token: None,
        }));
        let served: BTreeSet<(String, String)> = router
            .public_routes()
            .chain(SERVER_ROUTES)
            .map(|(method, pattern)| (method.to_string(), pattern.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
}
