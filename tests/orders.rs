//! Buying and order look-up: `POST /orders`, the lab's `POST /{name}/{quantity}`,
//! `GET /orders/{number}`, every bad quantity, and `Idempotency-Key`.
//!
//! In external mode (`FRONT=...`) the checks are relative to the state found: stock
//! deltas and order numbers that go up by exactly one between this test's own buys
//! (the harness runs the tests of a binary one at a time there, and assumes no other
//! client buys meanwhile).

mod common;

use common::{order_number, unique, Stack};
use serde_json::{json, Value};
use std::time::Duration;

/// Asserts `GET /orders/{n}` is exactly `{"number":n,"name":..,"quantity":..}`.
#[track_caller]
fn assert_order(s: &Stack, n: u64, name: &str, quantity: u64) {
    let r = s.get(&format!("/orders/{n}"));
    assert_eq!(
        r.ok(),
        &json!({"number": n, "name": name, "quantity": quantity}),
        "order {n}: {r:?}"
    );
}

#[test]
fn buy_success_takes_stock_and_is_readable() {
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 5);
    let before = s.stock(&toy);
    let r = s.buy(&toy, 2);
    let n = order_number(&r);
    assert_eq!(s.stock(&toy), before - 2, "stock after buying 2");
    assert_order(&s, n, &toy, 2);
}

#[test]
fn order_numbers_start_at_zero_on_a_fresh_stack() {
    let Some(s) = Stack::fresh("order_numbers_start_at_zero_on_a_fresh_stack") else {
        return;
    };
    s.get("/orders/0").err(404, Some("order not found"));
    assert_eq!(s.buy_ok("Tux", 1), 0);
    assert_eq!(s.buy_ok("Whale", 3), 1);
    let r = s.post("/Elephant/2", "");
    assert_eq!(order_number(&r), 2, "the lab form shares the numbering");
    assert_order(&s, 0, "Tux", 1);
    assert_order(&s, 1, "Whale", 3);
    assert_order(&s, 2, "Elephant", 2);
    s.get("/orders/3").err(404, Some("order not found"));
    assert_eq!(s.stock("Tux"), 79);
    assert_eq!(s.stock("Whale"), 97);
    assert_eq!(s.stock("Elephant"), 98);
    assert_eq!(s.stock("Bird"), 100);
}

#[test]
fn consecutive_orders_are_numbered_by_one() {
    let s = Stack::new();
    let toy = s.product_with_stock("Bird", 3);
    let a = s.buy_ok(&toy, 1);
    let b = s.buy_ok(&toy, 1);
    let c = s.buy_ok(&toy, 1);
    assert_eq!((b, c), (a + 1, a + 2), "numbers {a}, {b}, {c}");
    for n in [a, b, c] {
        assert_order(&s, n, &toy, 1);
    }
}

#[test]
fn buy_unknown_toy_is_404_and_takes_no_number() {
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 2);
    let a = s.buy_ok(&toy, 1);
    s.buy("Unicorn", 1).err(404, Some("product not found"));
    s.post("/Unicorn/1", "").err(404, Some("product not found"));
    s.buy("tux-but-not-quite", 1)
        .err(404, Some("product not found"));
    let b = s.buy_ok(&toy, 1);
    assert_eq!(b, a + 1, "a failed buy consumed an order number");
    // And it did not appear.
    s.get("/products/Unicorn")
        .err(404, Some("product not found"));
}

#[test]
fn buy_out_of_stock_is_409_and_changes_nothing() {
    let s = Stack::new();
    let toy = s.product_with_stock("Whale", 2);
    let a = s.buy_ok(&toy, 1);
    let stock = s.stock(&toy);
    s.buy(&toy, stock + 1).err(409, Some("out of stock"));
    s.post(&format!("/{toy}/{}", stock + 1), "")
        .err(409, Some("out of stock"));
    // A valid integer larger than any stock is out of stock (or refused as too large).
    s.buy(&toy, 1_000_000_000_000).err_any(&[400, 409]);
    assert_eq!(s.stock(&toy), stock, "a failed buy took stock");
    let b = s.buy_ok(&toy, 1);
    assert_eq!(b, a + 1, "a failed buy consumed an order number");
}

#[test]
fn buying_the_last_units_then_out_of_stock() {
    let s = Stack::new();
    if !s.is_fresh() && s.token.is_none() {
        common::skip(
            "buying_the_last_units_then_out_of_stock",
            "needs a fresh stack or ADMIN_TOKEN",
        );
        return;
    }
    let toy = "Elephant";
    if !s.is_fresh() {
        s.admin_put(toy, r#"{"quantity":7}"#).ok();
    }
    let stock = s.stock(toy);
    let a = s.buy_ok(toy, stock);
    assert_eq!(s.stock(toy), 0, "all units bought");
    s.buy(toy, 1).err(409, Some("out of stock"));
    s.post(&format!("/{toy}/1"), "")
        .err(409, Some("out of stock"));
    assert_eq!(s.stock(toy), 0);
    assert_order(&s, a, toy, stock);
    if !s.is_fresh() {
        // Leave the shared server usable.
        s.admin_put(toy, r#"{"quantity":100}"#).ok();
    }
}

/// Bodies that must be refused with 400 and change nothing.
const BAD_BODIES: &[&str] = &[
    r#"{"name":"Tux","quantity":0}"#,
    r#"{"name":"Tux","quantity":-1}"#,
    r#"{"name":"Tux","quantity":1.5}"#,
    r#"{"name":"Tux","quantity":"2"}"#,
    r#"{"name":"Tux","quantity":null}"#,
    r#"{"name":"Tux","quantity":true}"#,
    r#"{"name":"Tux","quantity":[1]}"#,
    r#"{"name":"Tux"}"#,
    r#"{"quantity":1}"#,
    r#"{"name":null,"quantity":1}"#,
    r#"{"name":1,"quantity":1}"#,
    r#"{"name":"Tux","quantity":1,}"#,
    r#"{"name":"Tux","quantity":"#,
    r#"[{"name":"Tux","quantity":1}]"#,
    r#""Tux""#,
    "null",
    "not json at all",
    "{}",
    "",
];

/// Too large for any stock: 400 (too large for the stock type) or 409 (out of stock).
const HUGE_BODIES: &[&str] = &[
    r#"{"name":"Tux","quantity":1e30}"#,
    r#"{"name":"Tux","quantity":18446744073709551616}"#,
    r#"{"name":"Tux","quantity":99999999999999999999999999999999}"#,
];

#[test]
fn bad_quantities_are_400_and_change_nothing() {
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 2);
    assert_eq!(toy, "Tux", "the bad bodies name Tux");
    let a = s.buy_ok("Tux", 1);
    let stock = s.stock("Tux");

    for body in BAD_BODIES {
        let r = s.post("/orders", body);
        assert_eq!(r.status, 400, "body {body:?}: {r:?}");
        r.err(400, None);
    }
    for body in HUGE_BODIES {
        let r = s.post("/orders", body);
        assert!(matches!(r.status, 400 | 409), "body {body:?}: {r:?}");
        r.err_any(&[400, 409]);
    }
    // The largest u64 is a valid integer larger than any stock.
    let r = s.post(
        "/orders",
        r#"{"name":"Tux","quantity":18446744073709551615}"#,
    );
    r.err_any(&[400, 409]);

    // A large but legal body with a bad quantity is a 400, not a 413.
    let padded = format!(r#"{{"name":"Tux",{}"quantity":0}}"#, " ".repeat(300 * 1024));
    s.post("/orders", &padded).err(400, None);

    assert_eq!(s.stock("Tux"), stock, "a refused body took stock");
    let b = s.buy_ok("Tux", 1);
    assert_eq!(b, a + 1, "a refused body consumed an order number");
}

#[test]
fn lab_form_buys() {
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 4);
    assert_eq!(toy, "Tux");
    let before = s.stock("Tux");
    let r = s.post("/Tux/2", "");
    let a = order_number(&r);
    // Percent-decoded like every name in a path.
    let b = order_number(&s.post("/T%75x/1", ""));
    assert_eq!(b, a + 1);
    assert_eq!(s.stock("Tux"), before - 3);
    assert_order(&s, a, "Tux", 2);
    assert_order(&s, b, "Tux", 1);
}

#[test]
fn lab_form_bad_quantities_are_400() {
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 2);
    assert_eq!(toy, "Tux");
    let a = s.buy_ok("Tux", 1);
    let stock = s.stock("Tux");
    for path in [
        "/Tux/0",
        "/Tux/abc",
        "/Tux/-1",
        "/Tux/1.5",
        "/Tux/%20",
        "/Tux/1e3",
        "/Tux/0x10",
        "/Tux/18446744073709551616",
    ] {
        let r = s.post(path, "");
        if path.ends_with("18446744073709551616") {
            r.err_any(&[400, 409]);
        } else {
            assert_eq!(r.status, 400, "POST {path}: {r:?}");
            r.err(400, None);
        }
    }
    assert_eq!(s.stock("Tux"), stock);
    assert_eq!(s.buy_ok("Tux", 1), a + 1);
}

#[test]
fn order_lookup_errors() {
    let s = Stack::new();
    s.get("/orders/1000000000000")
        .err(404, Some("order not found"));
    s.get("/orders/18446744073709551615").err_any(&[400, 404]);
    for bad in ["abc", "-1", "1.5", "%20", "1e3", "18446744073709551616"] {
        let r = s.get(&format!("/orders/{bad}"));
        assert!(matches!(r.status, 400 | 404), "/orders/{bad}: {r:?}");
        r.err_any(&[400, 404]);
    }
}

#[test]
fn idempotency_key_buys_once() {
    let s = Stack::new();
    let toy = s.product_with_stock("Bird", 5);
    let before = s.stock(&toy);
    let key = unique("idem");
    let body = json!({"name": toy, "quantity": 2}).to_string();
    let url = format!("{}/orders", s.front);
    let first = s.http.post_h(&url, &body, &[("Idempotency-Key", &key)]);
    let n = order_number(&first);
    let again = s.http.post_h(&url, &body, &[("Idempotency-Key", &key)]);
    assert_eq!(order_number(&again), n, "same key, same order: {again:?}");
    assert_eq!(s.stock(&toy), before - 2, "stock taken once");
    assert_order(&s, n, &toy, 2);

    // Another key is another order, and the replay did not consume a number.
    let other = s
        .http
        .post_h(&url, &body, &[("Idempotency-Key", &unique("idem"))]);
    assert_eq!(order_number(&other), n + 1, "{other:?}");
    assert_eq!(s.stock(&toy), before - 4);
    // Without a key, every request is a new order.
    assert_eq!(s.buy_ok(&toy, 1), n + 2);
}

#[test]
fn idempotency_key_concurrent_replays_buy_once() {
    let s = Stack::new();
    let toy = s.product_with_stock("Elephant", 3);
    let before = s.stock(&toy);
    let key = unique("idem-race");
    let body = json!({"name": toy, "quantity": 3}).to_string();
    let url = format!("{}/orders", s.front);
    // Replays racing the first request may be told to retry (the key's request is
    // still in progress: an error envelope); none may create a second order.
    let results: Vec<common::Resp> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (s, key, body, url) = (&s, &key, &body, &url);
                sc.spawn(move || s.http.post_h(url, body, &[("Idempotency-Key", key)]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut numbers = Vec::new();
    for r in &results {
        if r.status == 200 {
            numbers.push(order_number(r));
        } else {
            r.err_any(&[409, 429, 503]);
        }
    }
    assert!(!numbers.is_empty(), "no request succeeded: {results:?}");
    assert!(
        numbers.iter().all(|&n| n == numbers[0]),
        "one key, several orders: {numbers:?}"
    );
    // Once settled, a replay gives the same order.
    let again = s.http.post_h(&url, &body, &[("Idempotency-Key", &key)]);
    assert_eq!(order_number(&again), numbers[0], "{again:?}");
    assert_eq!(s.stock(&toy), before - 3, "stock taken once");
    assert_eq!(
        s.buy_ok(&toy, 1),
        numbers[0] + 1,
        "replays consumed order numbers"
    );
}

#[test]
fn bad_idempotency_keys_are_400() {
    // README: a key is 1-255 visible ASCII characters.
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 1);
    let before = s.stock(&toy);
    let url = format!("{}/orders", s.front);
    let body = json!({"name": toy, "quantity": 1}).to_string();
    for key in ["k".repeat(256), "has space".to_string(), String::new()] {
        let r = s.http.post_h(&url, &body, &[("Idempotency-Key", &key)]);
        assert_eq!(r.status, 400, "key {key:?}: {r:?}");
        r.err(400, None);
    }
    assert_eq!(s.stock(&toy), before);
}

#[test]
fn order_view_is_exact() {
    let s = Stack::new();
    let toy = s.product_with_stock("Whale", 1);
    let n = s.buy_ok(&toy, 1);
    let r = s.get(&format!("/orders/{n}"));
    let d = r.ok();
    let obj = d.as_object().expect("object");
    assert_eq!(obj.len(), 3, "exactly number, name, quantity: {r:?}");
    assert!(d["number"].is_u64() && d["quantity"].is_u64(), "{r:?}");
    assert_eq!(d["number"], Value::from(n));
}

#[test]
fn sold_out_product_is_restocked() {
    // The lab's catalog restocks sold-out products periodically (README:
    // RESTOCK_PERIOD_MS, RESTOCK_LEVEL default 100); here every 200 ms.
    let Some(s) = Stack::in_process()
        .restock(Duration::from_millis(200))
        .fresh("sold_out_product_is_restocked")
    else {
        return;
    };
    assert_eq!(s.buy_ok("Bird", 100), 0);
    let stock = common::eventually("Bird restocked", Duration::from_secs(15), || {
        Some(s.stock("Bird")).filter(|&q| q > 0)
    });
    assert_eq!(stock, 100, "restocked to the default level");
    assert_eq!(s.stock("Tux"), 80, "only sold-out products are restocked");
    assert_eq!(s.buy_ok("Bird", 1), 1, "a restock takes no order number");
    assert_order(&s, 0, "Bird", 100);
}
