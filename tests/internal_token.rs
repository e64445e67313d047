//! `INTERNAL_TOKEN` (issue 11, finding 9): with a token, every route only services call
//! (on the catalog and the order service, everything but `/health` and `/metrics`)
//! answers 401 without it and 403 with a wrong one, in the envelope, and changes
//! nothing; the services send it to each other, so the stack works end to end; the
//! catalog's admin update takes the admin token or the internal one. Fresh stacks only.

mod common;

use common::{Http, Resp, Stack, TEST_TOKEN};
use serde_json::json;

const TOKEN: &str = "internal-token-for-tests-8c1e";

/// Catalog, order service and front-end sharing `TOKEN` (and the harness's admin
/// token); `None` (after saying so) in external mode, where the backends are not ours.
fn guarded(test: &str) -> Option<Stack> {
    Stack::in_process().internal_token(TOKEN).fresh(test)
}

/// Tux's stock as the catalog has it (asked with the token).
fn stock(s: &Stack) -> u64 {
    let r = call("GET", catalog(s), "/products/Tux", Some(TOKEN));
    r.ok()["quantity"].as_u64().unwrap()
}

fn catalog(s: &Stack) -> &str {
    s.catalog.as_deref().unwrap()
}

/// `method base+path` with `Authorization: Bearer token` when given, and a JSON body
/// that the internal route would accept.
fn call(method: &str, base: &str, path: &str, token: Option<&str>) -> Resp {
    let body = match path {
        "/buy" => json!({"buy_id": 900, "name": "Tux", "quantity": 3}),
        "/buys" => json!({"buys": [{"buy_id": 901, "name": "Tux", "quantity": 3}]}),
        "/lookup" => json!({"names": ["Tux"]}),
        "/orders/batch" => json!({"orders": [{"name": "Tux", "quantity": 3}]}),
        _ => json!({"name": "Tux", "quantity": 3}),
    }
    .to_string();
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    common::raw_ok(base, request.as_bytes())
}

#[test]
fn internal_routes_refuse_calls_without_the_token_and_change_nothing() {
    let Some(s) = guarded("internal_routes_refuse_calls_without_the_token_and_change_nothing")
    else {
        return;
    };
    let (catalog, order) = (catalog(&s), s.order.as_deref().unwrap());
    let internal = [
        ("GET", catalog, "/products"),
        ("GET", catalog, "/products/Tux"),
        ("POST", catalog, "/buy"),
        ("POST", catalog, "/buys"),
        ("POST", catalog, "/lookup"),
        // A future buy id voided in advance would refuse that buy when it comes.
        ("POST", catalog, "/buys/0/resolve"),
        ("POST", catalog, "/buys/5/resolve"),
        ("POST", order, "/orders"),
        ("POST", order, "/orders/batch"),
        ("GET", order, "/orders/0"),
    ];
    for (method, base, path) in internal {
        let r = call(method, base, path, None);
        r.err(401, None);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{r:?}");
        call(method, base, path, Some("wrong-token")).err(403, None);
        // The admin token is no internal token.
        call(method, base, path, Some(TEST_TOKEN)).err(403, None);
    }
    assert_eq!(stock(&s), 80, "a refused call changed the stock");
    // Public everywhere: /health and /metrics.
    for base in [catalog, order, &s.front] {
        for path in ["/health", "/metrics"] {
            let r = Http::default().get(&format!("{base}{path}"));
            assert_eq!(r.status, 200, "{base}{path}: {r:?}");
        }
    }
    // Buy ids 0 and 5 were not voided in advance: the stack hands them out and they buy.
    let front = &s.front;
    let http = Http::default();
    for expected in 0..6 {
        let r = http.post(&format!("{front}/Tux/1"), "");
        assert_eq!(common::order_number(&r), expected, "{r:?}");
    }
    assert_eq!(stock(&s), 74);
    let r = http.get(&format!("{front}/orders/5"));
    assert_eq!(r.ok()["quantity"], 1, "{r:?}");
}

#[test]
fn with_the_token_the_stack_works_end_to_end() {
    let Some(s) = guarded("with_the_token_the_stack_works_end_to_end") else {
        return;
    };
    let (front, catalog) = (s.front.as_str(), catalog(&s));
    let http = Http::default();
    // Queries, one and many at once (the front-end batches lookups), buys, orders.
    assert_eq!(
        http.get(&format!("{front}/products/Tux")).ok()["quantity"],
        80
    );
    let list = http.get(&format!("{front}/products?limit=2"));
    assert_eq!(list.ok().as_array().map(Vec::len), Some(2), "{list:?}");
    let r = http.post(&format!("{front}/orders"), r#"{"name":"Tux","quantity":2}"#);
    let number = common::order_number(&r);
    let r = http.get(&format!("{front}/orders/{number}"));
    assert_eq!(r.ok()["quantity"], 2, "{r:?}");
    let lookups: Vec<_> = (0..8)
        .map(|_| {
            let url = format!("{front}/products/Tux");
            std::thread::spawn(move || Http::default().get(&url))
        })
        .collect();
    for lookup in lookups {
        let r = lookup.join().unwrap();
        assert_eq!(r.ok()["quantity"], 78, "{r:?}");
    }
    // The admin update through the front-end: the user's admin token is checked there,
    // the catalog gets the internal token.
    let put = |base: &str, token: Option<&str>, quantity: u64| {
        http.put(
            &format!("{base}/products/Tux"),
            &json!({ "quantity": quantity }).to_string(),
            token,
        )
    };
    put(front, None, 5).err(401, Some("missing admin token"));
    // The public port takes no internal token: nothing there may test guesses of it.
    put(front, Some(TOKEN), 5).err(403, Some("invalid admin token"));
    put(front, Some("wrong"), 5).err(403, Some("invalid admin token"));
    assert_eq!(put(front, Some(TEST_TOKEN), 50).ok()["quantity"], 50);
    // The catalog's own update takes either token.
    assert_eq!(put(catalog, Some(TEST_TOKEN), 40).ok()["quantity"], 40);
    assert_eq!(put(catalog, Some(TOKEN), 30).ok()["quantity"], 30);
    put(catalog, None, 1).err(401, None);
    put(catalog, Some("wrong"), 1).err(403, None);
    assert_eq!(stock(&s), 30);
}
