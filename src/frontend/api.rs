//! The front-end's public routes, and how it gathers concurrent queries and buys into
//! one backend call.

use super::cache::Cache;
use super::Frontend;
use crate::http::auth::Access;
use crate::http::{ApiError, HandlerResult, Request, Response, Router};
use crate::peer::backend::{Backend, BackendError, Reply};
use crate::peer::batch::{self, Batcher};
use crate::wire::{
    could_be_product_name, order_number_from_text, quantity_from_text, BuyRequest, ListQuery,
    Lookup, OrderPlaced, Placement, Placements, ProductListItem, ProductUpdate, ProductView,
    IDEMPOTENCY_KEY,
};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::sync::Arc;
use std::time::Instant;

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
/// [`crate::peer::batch`]).
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
    let bytes = batcher
        .share_of(&item)
        .ok_or_else(|| ApiError::payload_too_large("request too large to forward"))?;
    let call = Call {
        request_id: request.request_id.clone(),
        deadline: Some(deadline),
    };
    batcher
        .submit_by((item, call), bytes, deadline)
        .unwrap_or_else(|| Err(BackendError::Timeout(backend.name()).into()))
}

/// The API reference (`docs/openapi.json`, generated from `docs/openapi.yaml`), built
/// into the binary so that a container needs no file.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// 404 for a name longer than any product's, before it goes anywhere.
fn could_be_product(name: &str) -> Result<(), ApiError> {
    if !could_be_product_name(name) {
        return Err(ApiError::not_found("product not found"));
    }
    Ok(())
}

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
    let key = request.header(IDEMPOTENCY_KEY);
    let order = Placement::from_buy(buy, key)?;
    could_be_product(&order.name)?;
    let name = order.name.clone();
    let placed = gather(buys, &frontend.order, request, order, deadline);
    // Before the buyer hears back, whatever the outcome (a buy that failed or timed
    // out may still have been applied): its next query here asks the catalog.
    frontend.cache.invalidate(&name);
    placed
}

/// A product query: from the cache when it holds the product, else from the catalog
/// in a batch with the queries that arrive with it, and then cached. The fill's ticket
/// is drawn before the catalog is asked, so a change that overtakes the reply keeps
/// it out of the cache.
fn query(
    frontend: &Frontend,
    queries: &Gathered<String>,
    request: &Request,
    name: &str,
) -> HandlerResult {
    if let Some(body) = frontend.cache.get(name) {
        return Ok(relay(Reply { status: 200, body }));
    }
    let ticket = frontend.cache.begin_fill();
    let deadline = frontend.catalog.deadline(request.started);
    let answer = gather(
        queries,
        &frontend.catalog,
        request,
        name.to_string(),
        deadline,
    )?;
    // A 404 is not cached: a product the catalog does not have is not a product.
    if answer.status == 200 {
        frontend.cache.fill(name, ticket, &answer.body);
    }
    Ok(answer)
}

/// `/health`'s view of the cache.
fn cache_health(cache: &Cache) -> serde_json::Value {
    let stats = cache.stats();
    serde_json::json!({
        "capacity": stats.capacity,
        "entries": stats.entries,
        "hits": stats.hits,
        "misses": stats.misses,
        "evictions": stats.evictions,
        "push": if stats.serving { "up" } else { "down" },
    })
}

/// `GET /cache`: the cached products, most recently used first.
fn cache_contents(cache: &Cache) -> serde_json::Value {
    let products: Vec<serde_json::Value> = cache
        .products()
        .into_iter()
        .map(|(name, idle)| serde_json::json!({"name": name, "last_used_ms_ago": idle.as_millis() as u64}))
        .collect();
    serde_json::json!({"capacity": cache.capacity(), "products": products})
}

/// The public routes. Single-product queries and buys that arrive together go to
/// their backend as one batch; the rarer routes are passed through one by one.
pub fn router(frontend: Arc<Frontend>) -> Router {
    let admin_token = frontend.admin_token.clone();
    let queries: Gathered<String> = {
        let frontend = Arc::clone(&frontend);
        Batcher::new(
            frontend.limits.query_flights,
            frontend.limits.batch_max_items,
            frontend.limits.batch_max_bytes,
            Box::new(move |q| frontend.lookup_many(q)),
        )
    };
    let buys: Arc<Gathered<Placement>> = {
        let frontend = Arc::clone(&frontend);
        Arc::new(Batcher::new(
            frontend.limits.buy_flights,
            frontend.limits.batch_max_items,
            frontend.limits.batch_max_bytes,
            Box::new(move |b| frontend.place_many(b)),
        ))
    };
    let lab_buys = Arc::clone(&buys);
    Router::with_state(frontend)
        .route_for(Access::Public, "GET", "/health", |frontend: &Frontend, _, _| {
            let state = |b: &Backend| if b.is_up() { "up" } else { "down" };
            let body = serde_json::json!({"status": "ok", "service": "frontend", "catalog": state(&frontend.catalog), "order": state(&frontend.order), "cache": cache_health(&frontend.cache)});
            Ok(Response::data(&body))
        })
        .route_for(Access::Public, "GET", "/cache", |frontend: &Frontend, _, _| {
            Ok(Response::data(&cache_contents(&frontend.cache)))
        })
        .route_for(Access::Public, "GET", "/openapi.json", |_, _, _| {
            Ok(Response::text(200, "application/json", OPENAPI_JSON.into()))
        })
        .route_for(Access::Public, "GET", "/products", |frontend: &Frontend, request: &Request, _| {
            let query = ListQuery::from_pairs(&request.query_pairs()?)?;
            if query.matches_nothing() {
                return Ok(Response::data(&Vec::<ProductListItem>::new()));
            }
            let path = format!("/products?{}", query.to_query_string());
            let deadline = frontend.catalog.deadline(request.started);
            Ok(relay(frontend.catalog.get_by(&path, &request.request_id, deadline)?))
        })
        .route_for(Access::Public, "GET", "/products/{name}", move |frontend: &Frontend, request: &Request, params| {
            let name = params.get("name");
            could_be_product(name)?;
            query(frontend, &queries, request, name)
        })
        .route_for(Access::Admin(admin_token), "PUT", "/products/{name}", |frontend: &Frontend, request: &Request, params| {
            let update = ProductUpdate::from_json(&request.body)?;
            let name = params.get("name");
            could_be_product(name)?;
            let body = serde_json::to_vec(&update).unwrap_or_default();
            // The catalog checks the admin token again only where there is no internal
            // token: with one, the backend sends it in place of this header.
            let authorization = request.header("authorization").unwrap_or_default();
            let headers = [("X-Request-Id", request.request_id.as_str()), ("Authorization", authorization)];
            let path = format!("/products/{}", encode(name));
            let deadline = frontend.catalog.deadline(request.started);
            let updated = frontend.catalog.put_by(&path, &body, &headers, deadline);
            // Whatever the outcome: a timed-out update may still have been applied.
            frontend.cache.invalidate(name);
            Ok(relay(updated?))
        })
        .route_for(Access::Public, "POST", "/orders", move |frontend: &Frontend, request: &Request, _| {
            let order = BuyRequest::from_json(&request.body)?;
            buy(frontend, &buys, request, order)
        })
        .route_for(Access::Public, "POST", "/{name}/{quantity}", move |frontend: &Frontend, request: &Request, params| {
            let quantity = quantity_from_text(params.get("quantity"))?;
            buy(frontend, &lab_buys, request, BuyRequest { name: params.get("name").to_string(), quantity })
        })
        .route_for(Access::Public, "GET", "/orders/{number}", |frontend: &Frontend, request: &Request, params| {
            let number = order_number_from_text(params.get("number"))?;
            let deadline = frontend.order.deadline(request.started);
            Ok(relay(frontend.order.get_by(&format!("/orders/{number}"), &request.request_id, deadline)?))
        })
        .into_router()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{PeerAddr, PeerLimits};
    use std::collections::BTreeSet;

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
        let limits = PeerLimits::probe(std::time::Duration::from_secs(1));
        let backend = |port| {
            let addr = PeerAddr::parse(&format!("127.0.0.1:{port}"), port).unwrap();
            Backend::new("peer", addr, &limits)
        };
        let router = router(Arc::new(Frontend {
            catalog: backend(1),
            order: backend(2),
            admin_token: None,
            limits: PeerLimits::default(),
            cache: Arc::new(Cache::new(0, std::time::Duration::ZERO)),
        }));
        let served: BTreeSet<(String, String)> = router
            .public_routes()
            .chain(SERVER_ROUTES)
            .map(|(method, pattern)| (method.to_string(), pattern.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
}
