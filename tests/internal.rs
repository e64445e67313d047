//! The internal APIs between services, as INTERFACE.md and the README fix them: the catalog's
//! `POST /buy` (idempotent by `buy_id`, the base of crash recovery), its admin `PUT`,
//! and the order service's own routes. Fresh stacks only (the backends are not
//! published in external mode); the request id in the logs needs spawned services.

mod common;

use common::{Http, Stack, TEST_TOKEN};
use serde_json::json;

#[test]
fn catalog_buy_is_idempotent_by_buy_id() {
    let Some(s) = Stack::fresh("catalog_buy_is_idempotent_by_buy_id") else {
        return;
    };
    let cat = s.catalog.clone().unwrap();
    let http = Http::default();
    let buy = |id: u64, name: &str, q: u64| {
        http.post(
            &format!("{cat}/buy"),
            &json!({"buy_id": id, "name": name, "quantity": q}).to_string(),
        )
    };
    let stock = |name: &str| {
        let r = http.get(&format!("{cat}/products/{name}"));
        r.ok()["quantity"].as_u64().unwrap()
    };

    let first = buy(1001, "Tux", 2);
    first.ok();
    assert_eq!(stock("Tux"), 78);
    // The same buy_id again: the first outcome, and nothing changes.
    let again = buy(1001, "Tux", 2);
    assert_eq!(again.ok(), first.ok(), "{again:?}");
    assert_eq!(stock("Tux"), 78);

    buy(1002, "Unicorn", 1).err(404, Some("product not found"));
    buy(1003, "Tux", 79).err(409, Some("out of stock"));
    assert_eq!(stock("Tux"), 78);
    // A refusal changed nothing and is not remembered: the same id is evaluated
    // afresh (README, internal APIs) ...
    s.admin_put("Tux", r#"{"quantity":200}"#).ok();
    buy(1003, "Tux", 79).ok();
    assert_eq!(stock("Tux"), 121);
    // ... and once applied it stays applied: a repeat takes nothing more.
    buy(1003, "Tux", 79).ok();
    assert_eq!(stock("Tux"), 121);

    // Through the front-end, the catalog's stock is the one shown.
    assert_eq!(s.stock("Tux"), 121);
}

/// The reply of an applied buy, as the README documents it: `{"data":{"state":"applied"}}`
/// (INTERFACE.md first said `{"data":{"applied":true}}`; the README supersedes it).
#[test]
fn catalog_buy_reply_shape_matches_readme() {
    let Some(s) = Stack::fresh("catalog_buy_reply_shape_matches_readme") else {
        return;
    };
    let r = Http::default().post(
        &format!("{}/buy", s.catalog.as_deref().unwrap()),
        r#"{"buy_id":7,"name":"Tux","quantity":1}"#,
    );
    assert_eq!(r.ok(), &json!({"state": "applied"}), "{r:?}");
}

#[test]
fn catalog_admin_put_needs_the_token() {
    let Some(s) = Stack::fresh("catalog_admin_put_needs_the_token") else {
        return;
    };
    let url = format!("{}/products/Bird", s.catalog.as_deref().unwrap());
    let http = Http::default();
    http.put(&url, r#"{"quantity":5}"#, None).err(401, None);
    http.put(&url, r#"{"quantity":5}"#, Some("wrong"))
        .err(403, None);
    let r = http.put(&url, r#"{"quantity":5}"#, Some(TEST_TOKEN));
    assert_eq!(r.ok()["quantity"], 5, "{r:?}");
    assert_eq!(s.stock("Bird"), 5);
}

#[test]
fn order_service_routes() {
    let Some(s) = Stack::fresh("order_service_routes") else {
        return;
    };
    let ord = s.order.clone().unwrap();
    let http = Http::default();
    let r = http.post(
        &format!("{ord}/orders"),
        r#"{"name":"Elephant","quantity":4}"#,
    );
    assert_eq!(common::order_number(&r), 0);
    let r = http.get(&format!("{ord}/orders/0"));
    assert_eq!(
        r.ok(),
        &json!({"number": 0, "name": "Elephant", "quantity": 4})
    );
    http.get(&format!("{ord}/orders/1"))
        .err(404, Some("order not found"));
    http.post(
        &format!("{ord}/orders"),
        r#"{"name":"Elephant","quantity":0}"#,
    )
    .err(400, None);
    http.post(&format!("{ord}/orders"), r#"{"name":"Nope","quantity":1}"#)
        .err(404, Some("product not found"));
    assert_eq!(s.stock("Elephant"), 96);
    assert_eq!(s.buy_ok("Elephant", 1), 1);
}

#[test]
fn request_id_reaches_the_backends() {
    // README: every hop carries X-Request-Id and the backends log it.
    let Some(mut s) = Stack::spawned_only("request_id_reaches_the_backends") else {
        return;
    };
    let url = format!("{}/orders", s.front);
    let r = s.http.post_h(
        &url,
        r#"{"name":"Tux","quantity":1}"#,
        &[("X-Request-Id", "trace-4f2a9c")],
    );
    assert_eq!(r.header("x-request-id"), Some("trace-4f2a9c"), "{r:?}");
    common::order_number(&r);
    for svc in [common::Svc::Order, common::Svc::Catalog] {
        let logs = common::eventually(
            "the request id in the logs",
            std::time::Duration::from_secs(5),
            || {
                let l = s.logs(svc);
                l.contains("trace-4f2a9c").then_some(l)
            },
        );
        assert!(logs.contains("trace-4f2a9c"));
    }
}
