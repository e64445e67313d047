//! The admin update `PUT /products/{name}`: authorisation, validation, effect.
//!
//! The success cases need the token: fresh stacks have it; in external mode they
//! run only when `ADMIN_TOKEN` is set. Every test restores what it changed.

mod common;

use common::Stack;
use serde_json::json;

#[test]
fn put_without_token_is_401_and_changes_nothing() {
    let s = Stack::new();
    let before = s.product("Tux");
    let url = format!("{}/products/Tux", s.front);
    s.http
        .put(&url, r#"{"price":1.25,"quantity":3}"#, None)
        .err(401, None);
    // An Authorization header that is not a bearer token is no token either.
    let r = s
        .http
        .put_auth(&url, r#"{"price":1.25}"#, "Basic dXNlcjpwYXNz");
    r.err_any(&[401, 403]);
    let r = s.http.put_auth(&url, r#"{"price":1.25}"#, "Bearer");
    r.err_any(&[401, 403]);
    assert_eq!(s.product("Tux"), before);
}

#[test]
fn put_with_wrong_token_is_403_and_changes_nothing() {
    let s = Stack::new();
    let before = s.product("Tux");
    let url = format!("{}/products/Tux", s.front);
    s.http
        .put(
            &url,
            r#"{"price":1.25,"quantity":3}"#,
            Some("definitely-not-the-token"),
        )
        .err(403, None);
    if let Some(t) = &s.token {
        // A prefix of the right token is still wrong.
        let short = &t[..t.len() - 1];
        s.http
            .put(&url, r#"{"price":1.25}"#, Some(short))
            .err(403, None);
        let longer = format!("{t}x");
        s.http
            .put(&url, r#"{"price":1.25}"#, Some(&longer))
            .err(403, None);
    }
    assert_eq!(s.product("Tux"), before);
}

fn needs_token(s: &Stack, test: &str) -> bool {
    if s.token.is_none() {
        common::skip(test, "needs ADMIN_TOKEN");
        return false;
    }
    true
}

#[test]
fn put_updates_price_and_quantity() {
    let s = Stack::new();
    if !needs_token(&s, "put_updates_price_and_quantity") {
        return;
    }
    let (price0, qty0) = s.product("Whale");

    // Price only: the quantity stays.
    let r = s.admin_put("Whale", r#"{"price":12.5}"#);
    let d = r.ok();
    assert_eq!(d["name"], "Whale", "{r:?}");
    assert_eq!(d["price"].as_f64(), Some(12.5), "{r:?}");
    assert_eq!(d["quantity"].as_u64(), Some(qty0), "{r:?}");
    assert_eq!(s.product("Whale"), (12.5, qty0));

    // Quantity only: the price stays.
    let r = s.admin_put("Whale", r#"{"quantity":7}"#);
    assert_eq!(r.ok()["quantity"].as_u64(), Some(7), "{r:?}");
    assert_eq!(s.product("Whale"), (12.5, 7));

    // Both, and the list shows it too.
    let r = s.admin_put("Whale", r#"{"price":3,"quantity":11}"#);
    r.ok();
    assert_eq!(s.product("Whale"), (3.0, 11));
    let list = s.get("/products");
    let item = list
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Whale")
        .cloned()
        .expect("Whale listed");
    assert_eq!(item["price"].as_f64(), Some(3.0));
    assert_eq!(item["quantity"].as_u64(), Some(11));

    // Restore.
    s.admin_put(
        "Whale",
        &json!({"price": price0, "quantity": qty0}).to_string(),
    )
    .ok();
    assert_eq!(s.product("Whale"), (price0, qty0));
}

#[test]
fn put_quantity_zero_then_buy_is_out_of_stock() {
    let s = Stack::new();
    if !needs_token(&s, "put_quantity_zero_then_buy_is_out_of_stock") {
        return;
    }
    let qty0 = s.stock("Bird");
    s.admin_put("Bird", r#"{"quantity":0}"#).ok();
    s.buy("Bird", 1).err(409, Some("out of stock"));
    // A restock makes it buyable again.
    s.admin_put("Bird", r#"{"quantity":1}"#).ok();
    s.buy_ok("Bird", 1);
    assert_eq!(s.stock("Bird"), 0);
    s.admin_put("Bird", &format!(r#"{{"quantity":{qty0}}}"#))
        .ok();
}

#[test]
fn put_bad_body_is_400_and_changes_nothing() {
    let s = Stack::new();
    if !needs_token(&s, "put_bad_body_is_400_and_changes_nothing") {
        return;
    }
    let before = s.product("Tux");
    for body in [
        r#"{"price":-1}"#,
        r#"{"price":"cheap"}"#,
        r#"{"price":null,"quantity":null}"#,
        r#"{"quantity":1.5}"#,
        r#"{"quantity":-3}"#,
        r#"{"quantity":"7"}"#,
        r#"{"quantity":18446744073709551616}"#,
        r#"{"price":1,"quantity":-1}"#,
        r#"{"price":-5,"quantity":1}"#,
        r#"{}"#,
        r#"[1]"#,
        "{",
        "",
    ] {
        let r = s.admin_put("Tux", body);
        assert_eq!(r.status, 400, "PUT body {body:?}: {r:?}");
        r.err(400, None);
    }
    assert_eq!(
        s.product("Tux"),
        before,
        "a refused update changed the product"
    );
}

#[test]
fn put_unknown_product_is_404_and_creates_nothing() {
    let s = Stack::new();
    let url = format!("{}/products/Dragon", s.front);
    if let Some(t) = &s.token {
        s.http
            .put(&url, r#"{"price":9.5,"quantity":5}"#, Some(t))
            .err(404, Some("product not found"));
    }
    s.get("/products/Dragon")
        .err(404, Some("product not found"));
    let list = s.get("/products");
    assert!(
        !list
            .ok()
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Dragon"),
        "{list:?}"
    );
    s.buy("Dragon", 1).err(404, Some("product not found"));
}
