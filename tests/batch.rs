//! The batch forms of the internal APIs (README, "Batching between services"): the
//! catalog's `POST /lookup` and `POST /buys`, the order service's `POST /orders/batch`.
//! Every item gets its own outcome, as if it had been a request of its own; a bad item
//! changes nothing and does not spoil the others; a malformed batch is a 400 that
//! changes nothing. Fresh stacks only (the backends are not published in external mode).

mod common;

use common::{Http, Resp, Stack};
use serde_json::{json, Value};
use std::thread;

/// The items of a batch reply, after checking the envelope.
fn items(r: &Resp) -> Vec<Value> {
    r.ok()
        .as_array()
        .unwrap_or_else(|| panic!("batch reply is not a list: {r:?}"))
        .clone()
}

#[track_caller]
fn item_error(item: &Value, code: u16, message: &str) {
    assert_eq!(item["error"]["code"], code, "{item}");
    assert_eq!(item["error"]["message"], message, "{item}");
    assert!(item.get("data").is_none(), "{item}");
}

#[test]
fn catalog_lookup_answers_each_name_in_order() {
    let Some(s) = Stack::fresh("catalog_lookup_answers_each_name_in_order") else {
        return;
    };
    let cat = s.catalog.clone().unwrap();
    let r = Http::default().post(
        &format!("{cat}/lookup"),
        r#"{"names":["Tux","Unicorn","Whale","Tux"]}"#,
    );
    let got = items(&r);
    assert_eq!(got.len(), 4, "{r:?}");
    assert_eq!(
        got[0]["data"],
        json!({"name": "Tux", "price": 25.99, "quantity": 80})
    );
    item_error(&got[1], 404, "product not found");
    assert_eq!(got[2]["data"]["name"], "Whale");
    assert_eq!(got[3], got[0]);
}

#[test]
fn catalog_buys_batch_gives_each_buy_its_own_outcome_once() {
    let Some(s) = Stack::fresh("catalog_buys_batch_gives_each_buy_its_own_outcome_once") else {
        return;
    };
    let url = format!("{}/buys", s.catalog.clone().unwrap());
    let http = Http::default();
    let batch = json!({"buys": [
        {"buy_id": 2001, "name": "Tux", "quantity": 2},
        {"buy_id": 2002, "name": "Unicorn", "quantity": 1},
        {"buy_id": 2003, "name": "Tux", "quantity": 1000},
        {"buy_id": 2004, "name": "Tux", "quantity": 0},
        {"buy_id": 2001, "name": "Tux", "quantity": 2},
        {"buy_id": 2005, "name": "Whale", "quantity": 3},
    ]})
    .to_string();
    let check = |r: &Resp| {
        let got = items(r);
        assert_eq!(got.len(), 6, "{r:?}");
        assert_eq!(got[0]["data"], json!({"state": "applied"}));
        item_error(&got[1], 404, "product not found");
        item_error(&got[2], 409, "out of stock");
        assert_eq!(got[3]["error"]["code"], 400, "{}", got[3]);
        // The same buy id twice in one batch: applied once, the second sees the first.
        assert_eq!(got[4]["data"], json!({"state": "applied"}));
        assert_eq!(got[5]["data"], json!({"state": "applied"}));
    };
    check(&http.post(&url, &batch));
    assert_eq!(s.stock("Tux"), 78);
    assert_eq!(s.stock("Whale"), 97);
    // The whole batch again (a retry after a lost reply): the same outcomes, no more stock.
    check(&http.post(&url, &batch));
    assert_eq!(s.stock("Tux"), 78);
    assert_eq!(s.stock("Whale"), 97);
}

#[test]
fn a_late_duplicate_of_a_settled_buy_takes_nothing() {
    let Some(s) = Stack::fresh("a_late_duplicate_of_a_settled_buy_takes_nothing") else {
        return;
    };
    let url = format!("{}/buys", s.catalog.clone().unwrap());
    let http = Http::default();
    let first =
        json!({"buys": [{"buy_id": 40, "name": "Tux", "quantity": 1, "settled_below": 40}]});
    assert_eq!(
        items(&http.post(&url, &first.to_string()))[0]["data"]["state"],
        "applied"
    );
    // The order log has settled every buy below 50, so the catalog forgets them; a
    // delayed copy of buy 40 must not take stock a second time.
    let later =
        json!({"buys": [{"buy_id": 50, "name": "Whale", "quantity": 1, "settled_below": 50}]});
    http.post(&url, &later.to_string()).ok();
    let late = http.post(&url, &first.to_string());
    assert_eq!(items(&late)[0]["error"]["code"], 409, "{late:?}");
    assert_eq!(s.stock("Tux"), 79);
}

#[test]
fn order_batch_places_each_order_with_its_own_outcome() {
    let Some(s) = Stack::fresh("order_batch_places_each_order_with_its_own_outcome") else {
        return;
    };
    let url = format!("{}/orders/batch", s.order.clone().unwrap());
    let http = Http::default();
    let batch = json!({"orders": [
        {"name": "Tux", "quantity": 1},
        {"name": "Unicorn", "quantity": 1},
        {"name": "Tux", "quantity": 0},
        {"name": "Whale", "quantity": 2, "key": "batch-key-1"},
        {"name": "Whale", "quantity": 2, "key": "batch-key-1"},
        {"name": "", "quantity": 1},
        {"name": "Tux", "quantity": 1000},
        {"name": "Tux", "quantity": 3, "key": "bad key"},
        {"name": "Elephant", "quantity": 1},
    ]});
    let r = http.post(&url, &batch.to_string());
    let got = items(&r);
    assert_eq!(got.len(), 9, "{r:?}");
    // Numbers go to the successes only, in the batch's order.
    assert_eq!(got[0]["data"], json!({"order_number": 0}));
    item_error(&got[1], 404, "product not found");
    assert_eq!(got[2]["error"]["code"], 400, "{}", got[2]);
    assert_eq!(got[3]["data"], json!({"order_number": 1}));
    // The same key again while its first order is still in the same batch.
    assert_eq!(got[4]["error"]["code"], 409, "{}", got[4]);
    assert_eq!(got[5]["error"]["code"], 400, "{}", got[5]);
    item_error(&got[6], 409, "out of stock");
    assert_eq!(got[7]["error"]["code"], 400, "{}", got[7]);
    assert_eq!(got[8]["data"], json!({"order_number": 2}));

    assert_eq!(s.stock("Tux"), 79);
    assert_eq!(s.stock("Whale"), 98);
    assert_eq!(s.stock("Elephant"), 99);
    let read = http.get(&format!("{}/orders/1", s.order.clone().unwrap()));
    assert_eq!(
        read.ok(),
        &json!({"number": 1, "name": "Whale", "quantity": 2})
    );
    // A repeat of the key replays the first outcome and buys nothing more.
    let again = http.post(
        &url,
        r#"{"orders":[{"name":"Whale","quantity":2,"key":"batch-key-1"}]}"#,
    );
    assert_eq!(items(&again)[0]["data"], json!({"order_number": 1}));
    assert_eq!(s.stock("Whale"), 98);
    // The next order takes the next number: nothing was skipped by the refusals.
    assert_eq!(s.buy_ok("Tux", 1), 3);
}

#[test]
fn malformed_batches_are_400_and_change_nothing() {
    let Some(s) = Stack::fresh("malformed_batches_are_400_and_change_nothing") else {
        return;
    };
    let (cat, ord) = (s.catalog.clone().unwrap(), s.order.clone().unwrap());
    let http = Http::default();
    for (url, body) in [
        (format!("{cat}/lookup"), "not json"),
        (format!("{cat}/lookup"), r#"{"names":"Tux"}"#),
        (
            format!("{cat}/buys"),
            r#"{"buys":[{"buy_id":"one","name":"Tux","quantity":1}]}"#,
        ),
        (
            format!("{cat}/buys"),
            r#"{"buys":[{"buy_id":1,"name":"Tux","quantity":-1}]}"#,
        ),
        (
            format!("{cat}/buys"),
            r#"[{"buy_id":1,"name":"Tux","quantity":1}]"#,
        ),
        (
            format!("{ord}/orders/batch"),
            r#"{"orders":[{"name":"Tux","quantity":1.5}]}"#,
        ),
        (
            format!("{ord}/orders/batch"),
            r#"{"orders":[{"name":"Tux"}]}"#,
        ),
        (format!("{ord}/orders/batch"), "{}"),
    ] {
        http.post(&url, body).err(400, None);
    }
    assert_eq!(s.stock("Tux"), 80);
    http.get(&format!("{ord}/orders/0"))
        .err(404, Some("order not found"));
    assert_eq!(s.buy_ok("Tux", 1), 0);
}

/// Concurrent queries through the front-end reach the catalog as fewer, larger
/// lookups, and each still gets its own product.
#[test]
fn concurrent_queries_share_catalog_calls() {
    let Some(s) = Stack::fresh("concurrent_queries_share_catalog_calls") else {
        return;
    };
    const THREADS: usize = 24;
    const EACH: usize = 25;
    let names = ["Tux", "Whale", "Elephant", "Unicorn"];
    thread::scope(|scope| {
        for t in 0..THREADS {
            let front = s.front.clone();
            scope.spawn(move || {
                let http = Http::default();
                for i in 0..EACH {
                    let name = names[(t + i) % names.len()];
                    let r = http.get(&format!("{front}/products/{name}"));
                    if name == "Unicorn" {
                        r.err(404, Some("product not found"));
                    } else {
                        assert_eq!(r.ok()["name"], name, "{r:?}");
                    }
                }
            });
        }
    });
    let metrics = Http::default().get(&format!("{}/metrics", s.catalog.clone().unwrap()));
    let text = metrics.text;
    let calls = |route: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("toystore_http_requests_total")
                    && l.contains(&format!("route=\"{route}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // A batch of one goes as a plain GET; larger ones as POST /lookup.
    let (lookups, gets) = (calls("/lookup"), calls("/products/{name}"));
    let queries = (THREADS * EACH) as u64;
    assert!(
        lookups >= 1,
        "queries did not reach the catalog as lookups:\n{text}"
    );
    assert!(
        lookups + gets < queries,
        "{} catalog calls for {queries} queries: none were shared",
        lookups + gets
    );
}
