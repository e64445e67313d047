//! Arbitrary bytes as a request through a router shaped like the front end's, whose
//! handlers run the same validators the real ones do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use toystore::http::body::take_body;
use toystore::http::request::parse_head;
use toystore::http::{ApiError, Limits, Request, Response, Router};
use toystore::wire::{quantity_from_text, BuyRequest, ListQuery, ProductUpdate};

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new()
            .route("GET", "/health", |_, _| Ok(Response::data(&"ok")))
            .route("GET", "/products", |request: &Request, _| {
                let filter = ListQuery::from_pairs(&request.query_pairs()?).map_err(bad)?;
                Ok(Response::data(&filter.to_query_string()))
            })
            .route("GET", "/products/{name}", |_, params| {
                Ok(Response::data(&params.get(0)))
            })
            .route("PUT", "/products/{name}", |request: &Request, _| {
                let update = ProductUpdate::from_json(&request.body).map_err(bad)?;
                Ok(Response::data(&update))
            })
            .route("POST", "/orders", |request: &Request, _| {
                let buy = BuyRequest::from_json(&request.body).map_err(bad)?;
                Ok(Response::data(&buy))
            })
            .route("POST", "/{name}/{quantity}", |_, params| {
                let quantity = quantity_from_text(params.get(1)).map_err(bad)?;
                Ok(Response::data(&(params.get(0), quantity)))
            })
            .route("GET", "/orders/{number}", |_, params| {
                let number = params
                    .get(0)
                    .parse::<u64>()
                    .map_err(|_| bad("bad number".into()))?;
                Ok(Response::data(&number))
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(Some((head, head_len))) = parse_head(data, &limits) else {
        return;
    };
    let rest = &data[head_len..];
    let body = match take_body(rest, head.framing, limits.max_body_bytes) {
        Ok(Some((body, _))) => body,
        // Dispatch what we have anyway: handlers must not care how the body was framed.
        _ => rest.to_vec(),
    };
    let request = Request {
        started: std::time::Instant::now(),
        head,
        body,
        request_id: String::new(),
    };
    let routed = router().dispatch(&request);
    let response = routed.response;
    assert!((200..600).contains(&response.status), "{}", response.status);
    if response.status == 405 {
        assert!(response.headers.iter().any(|(name, _)| *name == "Allow"));
    }
    let mut out = Vec::new();
    response.encode(&mut out, request.head.keep_alive, false, "id");
    assert!(out.starts_with(b"HTTP/1.1 "));
});
