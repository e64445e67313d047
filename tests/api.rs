//! Queries, routing and health: `GET /products`, `GET /products/{name}`, `GET /health`,
//! unknown paths and wrong methods. Runs on a fresh stack (exact seed values) and
//! external (`FRONT=...`, shapes and state-relative checks only).

mod common;

use common::{Stack, SEED};
use serde_json::Value;

/// The lab's first cases: query each toy. On a fresh stack the values are the seed's.
#[test]
fn query_each_toy() {
    let s = Stack::new();
    for (name, price, qty) in SEED {
        let r = s.get(&format!("/products/{name}"));
        let d = r.ok();
        let obj = d.as_object().expect("data is an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["name", "price", "quantity"],
            "exactly three fields: {r:?}"
        );
        assert_eq!(d["name"], *name);
        assert!(d["price"].is_number(), "price is a number: {r:?}");
        assert!(d["quantity"].is_u64(), "quantity is a JSON integer: {r:?}");
        if s.is_fresh() {
            assert_eq!(d["price"].as_f64(), Some(*price), "{r:?}");
            assert_eq!(d["quantity"].as_u64(), Some(*qty), "{r:?}");
        }
    }
}

/// The contract's exact example body, byte for byte up to JSON equality.
#[test]
fn tux_exact_body_on_fresh_stack() {
    let Some(s) = Stack::fresh("tux_exact_body_on_fresh_stack") else {
        return;
    };
    let r = s.get("/products/Tux");
    assert_eq!(r.status, 200, "{r:?}");
    let want: Value =
        serde_json::from_str(r#"{"data":{"name":"Tux","price":25.99,"quantity":80}}"#).unwrap();
    assert_eq!(r.json, want, "body: {}", r.text);
    common::assert_json_content_type(&r);
}

#[test]
fn query_unknown_toy_is_404() {
    let s = Stack::new();
    for path in [
        "/products/Unicorn",
        "/products/Big%20Tux",
        "/products/Tux2",
        "/products/%E2%98%83",
        // An encoded slash is part of the name, not a path separator.
        "/products/T%2Fux",
    ] {
        s.get(path).err(404, Some("product not found"));
    }
}

#[test]
fn names_in_paths_are_percent_decoded() {
    let s = Stack::new();
    let plain = s.get("/products/Tux");
    let plain = plain.ok();
    for path in ["/products/T%75x", "/products/%54%75%78", "/products/%54ux"] {
        let r = s.get(path);
        assert_eq!(r.ok(), plain, "{path} is Tux: {r:?}");
    }
}

#[test]
fn utf8_names_from_a_custom_seed() {
    let seed = "1 Tux 25.99 80 animal\n2 Pingüino 12.5 7 bird\n3 Робот 3.25 2 gadget\n";
    let Some(s) = Stack::in_process()
        .seed(seed)
        .fresh("utf8_names_from_a_custom_seed")
    else {
        return;
    };
    let r = s.get("/products/Ping%C3%BCino");
    let d = r.ok();
    assert_eq!(d["name"], "Pingüino", "{r:?}");
    assert_eq!(d["price"].as_f64(), Some(12.5));
    assert_eq!(d["quantity"].as_u64(), Some(7));
    let r = s.get("/products/%D0%A0%D0%BE%D0%B1%D0%BE%D1%82");
    assert_eq!(r.ok()["name"], "Робот", "{r:?}");

    // The category column is the filter's key.
    let r = s.get("/products?category=bird");
    let names = names(&r);
    assert_eq!(names, ["Pingüino"], "{r:?}");
    let r = s.get("/products?category=gadget");
    assert_eq!(names_of(&r), ["Робот"]);
    // Bought through the lab form, by its encoded name, to the last unit.
    let r = s.post("/Ping%C3%BCino/7", "");
    let n = common::order_number(&r);
    let r = s.get(&format!("/orders/{n}"));
    assert_eq!(r.ok()["name"], "Pingüino", "{r:?}");
    s.post("/Ping%C3%BCino/1", "")
        .err(409, Some("out of stock"));
    assert_eq!(s.stock("Ping%C3%BCino"), 0);

    // The seed decides the table: the built-in toys are not there.
    s.get("/products/Whale").err(404, Some("product not found"));
    assert_eq!(s.get("/products").ok().as_array().unwrap().len(), 3);
}

fn names(r: &common::Resp) -> Vec<String> {
    names_of(r)
}

#[track_caller]
fn names_of(r: &common::Resp) -> Vec<String> {
    let d = r.ok();
    d.as_array()
        .unwrap_or_else(|| panic!("data is not an array: {r:?}"))
        .iter()
        .map(|p| {
            p["name"]
                .as_str()
                .unwrap_or_else(|| panic!("item without name: {p}"))
                .to_string()
        })
        .collect()
}

#[test]
fn list_products() {
    let s = Stack::new();
    let r = s.get("/products");
    let items = r.ok().as_array().unwrap_or_else(|| panic!("array: {r:?}"));
    for item in items {
        assert!(item["name"].is_string(), "{item}");
        assert!(item["price"].is_number(), "{item}");
        assert!(item["quantity"].is_u64(), "{item}");
    }
    let got = names_of(&r);
    for (name, _, _) in SEED {
        assert!(got.iter().any(|n| n == name), "{name} missing from {got:?}");
    }
    if s.is_fresh() {
        // The built-in seed: the lab's four first, then more (Lab 3 asks for 10 or more).
        let seeded = toystore::catalog::store::parse_seed(toystore::catalog::BUILTIN_SEED).unwrap();
        assert_eq!(items.len(), seeded.len(), "{r:?}");
        let lab: Vec<&str> = SEED.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(got[..SEED.len()], lab, "{r:?}");
        for (name, price, qty) in SEED {
            let it = items.iter().find(|i| i["name"] == *name).unwrap();
            assert_eq!(it["price"].as_f64(), Some(*price), "{it}");
            assert_eq!(it["quantity"].as_u64(), Some(*qty), "{it}");
            assert_eq!(it["category"], "animal", "{it}");
        }
    }
    // The list agrees with the single-product view.
    for item in items {
        let name = item["name"].as_str().unwrap();
        let one = s.get(&format!(
            "/products/{}",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        ));
        let one = one.ok();
        assert_eq!(one["price"], item["price"]);
        assert_eq!(one["quantity"], item["quantity"]);
    }
}

#[test]
fn list_filters() {
    let s = Stack::new();
    let all = names_of(&s.get("/products"));

    let animals = names_of(&s.get("/products?category=animal"));
    for (name, _, _) in SEED {
        assert!(
            animals.iter().any(|n| n == name),
            "{name} not an animal: {animals:?}"
        );
    }
    let none = s.get("/products?category=no-such-category");
    assert!(names_of(&none).is_empty(), "{none:?}");

    let ux = names_of(&s.get("/products?q=ux"));
    assert!(ux.contains(&"Tux".to_string()), "{ux:?}");
    assert!(
        ux.iter().all(|n| n.contains("ux")),
        "q filters by name: {ux:?}"
    );
    let ha = names_of(&s.get("/products?q=ha"));
    for n in ["Whale", "Elephant"] {
        assert!(ha.iter().any(|x| x == n), "{n} contains \"ha\": {ha:?}");
    }
    assert!(!ha.iter().any(|x| x == "Tux" || x == "Bird"), "{ha:?}");
    let r = s.get("/products?q=zzzzzz-nothing");
    assert!(names_of(&r).is_empty(), "{r:?}");
    // Filters combine.
    let both = names_of(&s.get("/products?category=animal&q=Bi"));
    assert!(both.contains(&"Bird".to_string()), "{both:?}");
    assert!(both.iter().all(|n| n.contains("Bi")), "{both:?}");

    // Pagination walks the same order as the full list.
    assert!(all.len() >= 4);
    assert_eq!(names_of(&s.get("/products?limit=2")), all[..2]);
    assert_eq!(names_of(&s.get("/products?limit=2&offset=1")), all[1..3]);
    assert_eq!(names_of(&s.get("/products?offset=2")), all[2..]);
    let past = s.get(&format!("/products?offset={}", all.len() + 5));
    assert!(names_of(&past).is_empty(), "offset past the end: {past:?}");
    assert_eq!(names_of(&s.get("/products?limit=1000")), all);

    // Query values are percent-decoded too.
    let r = s.get("/products?q=%75x");
    assert!(names_of(&r).contains(&"Tux".to_string()), "{r:?}");
    let r = s.get("/products?category=%61nimal&limit=%32");
    assert_eq!(names_of(&r).len(), 2, "{r:?}");

    // Huge but valid numbers: an empty page or the whole list (or a 400), never a 500
    // from an overflow.
    let max = u64::MAX;
    for q in [
        format!("offset={max}"),
        format!("offset={max}&limit={max}"),
        format!("limit={max}"),
    ] {
        let r = s.get(&format!("/products?{q}"));
        if r.status == 200 {
            let got = names_of(&r);
            if q.starts_with("offset") {
                assert!(got.is_empty(), "?{q}: {r:?}");
            } else {
                assert_eq!(got, all, "?{q}");
            }
        } else {
            r.err(400, None);
        }
    }

    // An unknown parameter is ignored.
    assert_eq!(names_of(&s.get("/products?color=blue")), all);
}

#[test]
fn list_bad_params_are_400() {
    let s = Stack::new();
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=99999999999999999999999",
        "offset=-1",
        "offset=x",
        "limit=2&offset=-3",
    ] {
        let r = s.get(&format!("/products?{q}"));
        assert_eq!(r.status, 400, "?{q}: {r:?}");
        r.err(400, None);
    }
}

#[test]
fn health_on_every_service() {
    let s = Stack::new();
    let mut urls = vec![s.front.clone()];
    urls.extend(s.catalog.clone());
    urls.extend(s.order.clone());
    for base in urls {
        let r = s.http.get(&format!("{base}/health"));
        let d = r.ok();
        assert_eq!(d["status"], "ok", "{base}: {r:?}");
    }
}

#[test]
fn unknown_path_is_404() {
    let s = Stack::new();
    for path in [
        "/nope",
        "/",
        "/products/Tux/extra/more",
        "/orders/1/2",
        "/healthz",
    ] {
        let r = s.get(path);
        r.err(404, None);
    }
}

#[test]
fn wrong_method_is_405() {
    let s = Stack::new();
    let front = &s.front;
    s.http.delete(&format!("{front}/products")).err(405, None);
    s.http
        .delete(&format!("{front}/products/Tux"))
        .err(405, None);
    s.http.delete(&format!("{front}/orders/0")).err(405, None);
    s.http.post(&format!("{front}/health"), "{}").err(405, None);
    s.http.get(&format!("{front}/orders")).err(405, None);
    // PUT on the collection is not an update of some product.
    s.http
        .put(
            &format!("{front}/products"),
            r#"{"price":1}"#,
            s.token.as_deref(),
        )
        .err(405, None);
    // And nothing changed.
    s.get("/products/Tux").ok();
}

#[test]
fn errors_carry_the_envelope_and_json_type() {
    // Every error path checked here goes through `Resp::err`, which asserts the
    // envelope; this test adds a few unusual ones at once.
    let s = Stack::new();
    s.get("/products/%FF%FE").err_any(&[400, 404]);
    s.get("/products/%ZZ").err_any(&[400, 404]);
    s.get("/products/%").err_any(&[400, 404]);
    s.post("/T%ZZx/1", "").err_any(&[400, 404]);
    s.get("/orders/abc").err_any(&[400, 404]);
    s.post("/orders", "").err(400, None);
    s.post("/orders", "{").err(400, None);
}

#[test]
fn large_catalog_pages() {
    // 1500 products, some without the optional category column. The README fixes
    // `limit` to 1..=1000 with a default of 100.
    let mut seed = String::new();
    for i in 0..1500 {
        if i % 3 == 0 {
            seed.push_str(&format!("{} Toy{i:04} {}.25 {}\n", i + 1, i % 50, i % 7));
        } else {
            seed.push_str(&format!(
                "{} Toy{i:04} {}.25 {} cat{}\n",
                i + 1,
                i % 50,
                i % 7,
                i % 4
            ));
        }
    }
    let Some(s) = Stack::in_process().seed(seed).fresh("large_catalog_pages") else {
        return;
    };
    let first = names_of(&s.get("/products"));
    assert_eq!(first.len(), 100, "default page");
    let a = names_of(&s.get("/products?limit=1000"));
    let b = names_of(&s.get("/products?limit=1000&offset=1000"));
    assert_eq!(a.len(), 1000);
    assert_eq!(b.len(), 500);
    let mut all: Vec<String> = a.into_iter().chain(b).collect();
    assert_eq!(all[..100], first[..]);
    assert_eq!(all[0], "Toy0000", "seed order");
    assert_eq!(all[1499], "Toy1499", "seed order");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1500, "every product exactly once");
    s.get("/products?limit=0").err(400, None);
    s.get("/products?limit=1001").err(400, None);

    // Products without a category are in no category; the others filter exactly.
    let r = s.get("/products?category=cat1&limit=1000");
    let cat1 = names_of(&r);
    let want: Vec<String> = (0..1500)
        .filter(|i| i % 3 != 0 && i % 4 == 1)
        .map(|i| format!("Toy{i:04}"))
        .collect();
    assert_eq!(cat1, want);
    let r = s.get("/products?q=Toy000&limit=1000");
    assert_eq!(names_of(&r).len(), 10, "Toy0000..Toy0009: {r:?}");
    let one = s.get("/products/Toy1234");
    assert_eq!(
        one.ok(),
        &serde_json::json!({"name":"Toy1234","price":34.25,"quantity":2})
    );
}

#[test]
fn reserved_characters_in_names_survive_forwarding() {
    // The front-end decodes the path, then calls the catalog: a name with reserved
    // characters must reach it as the same name, not as a query, fragment or path.
    let seed = "1 a 1.00 5 plain\n2 a?b 2.00 5 odd\n3 c%d 3.00 5 odd\n4 x/y 4.00 5 odd\n\
                5 p#q 5.00 5 odd\n6 m&n=o 6.00 5 odd\n7 plus+sign 7.00 5 odd\n";
    let Some(s) = Stack::in_process()
        .seed(seed)
        .fresh("reserved_characters_in_names_survive_forwarding")
    else {
        return;
    };
    for (path, name, price) in [
        ("a%3Fb", "a?b", 2.0),
        ("c%25d", "c%d", 3.0),
        ("x%2Fy", "x/y", 4.0),
        ("p%23q", "p#q", 5.0),
        ("m%26n%3Do", "m&n=o", 6.0),
        ("plus%2Bsign", "plus+sign", 7.0),
        ("plus+sign", "plus+sign", 7.0),
    ] {
        let r = s.get(&format!("/products/{path}"));
        let d = r.ok();
        assert_eq!(d["name"], name, "/products/{path}: {r:?}");
        assert_eq!(d["price"].as_f64(), Some(price), "/products/{path}: {r:?}");
    }
    for (q, want) in [
        ("%3F", "a?b"),
        ("%25", "c%d"),
        ("%2F", "x/y"),
        ("%23", "p#q"),
        ("%26n%3D", "m&n=o"),
        ("%2B", "plus+sign"),
    ] {
        let r = s.get(&format!("/products?q={q}"));
        assert_eq!(names_of(&r), [want], "?q={q}: {r:?}");
    }
    let r = s.get("/products?category=odd&q=%26");
    assert_eq!(names_of(&r), ["m&n=o"], "{r:?}");

    // Buys and updates reach the right product too.
    let n = s.buy_ok("a?b", 1);
    let m = order_number_of(&s.post("/x%2Fy/2", ""));
    let k = order_number_of(&s.post("/c%25d/3", ""));
    assert_eq!((m, k), (n + 1, n + 2));
    assert_eq!(s.stock("a%3Fb"), 4);
    assert_eq!(s.stock("a"), 5, "the buy of \"a?b\" took from \"a\"");
    assert_eq!(s.stock("x%2Fy"), 3);
    assert_eq!(s.stock("c%25d"), 2);
    let r = s.get(&format!("/orders/{m}"));
    assert_eq!(r.ok()["name"], "x/y", "{r:?}");
    let r = s.admin_put("p%23q", r#"{"price":9.5}"#);
    assert_eq!(r.ok()["name"], "p#q", "{r:?}");
    assert_eq!(s.product("p%23q"), (9.5, 5));
    s.get("/products/p").err(404, Some("product not found"));
}

#[track_caller]
fn order_number_of(r: &common::Resp) -> u64 {
    common::order_number(r)
}
