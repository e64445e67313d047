//! A backend down or too slow: the front-end answers 503/504 with the envelope, fast,
//! and the other backend's routes keep working; after a restart everything works
//! again. Killing and restarting needs process control (spawned services); a peer
//! that never answers or fails late is a fake one given to an in-process stack.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, order_number, Metrics, Resp, Stack, Svc};
use toystore::peer::PeerAddr;

/// Runs `f`, asserts it answered 503 or 504 with the envelope within `bound`.
#[track_caller]
fn fails_fast(what: &str, bound: Duration, f: impl FnOnce() -> Resp) {
    let start = Instant::now();
    let r = f();
    let took = start.elapsed();
    assert!(
        matches!(r.status, 503 | 504),
        "{what}: expected 503/504, got {r:?}"
    );
    r.err_any(&[503, 504]);
    assert!(
        took < bound,
        "{what}: answered after {took:?}, bound {bound:?}"
    );
}

#[test]
fn order_service_down() {
    let Some(mut s) = Stack::spawned_only("order_service_down") else {
        return;
    };
    let n = s.buy_ok("Tux", 2);
    s.kill(Svc::Order);

    // Queries go to the catalog only: they keep working.
    assert_eq!(s.product("Tux"), (25.99, 78));
    s.get("/products").ok();
    s.get("/products?q=ux").ok();

    let fast = Duration::from_secs(2);
    fails_fast("POST /orders", fast, || s.buy("Tux", 1));
    fails_fast("POST /Tux/1", fast, || s.post("/Tux/1", ""));
    fails_fast("GET /orders/{n}", fast, || s.get(&format!("/orders/{n}")));
    // Validation that needs no backend may answer 400 first; either way no 500.
    let r = s.post("/orders", r#"{"name":"Tux","quantity":0}"#);
    r.err_any(&[400, 503, 504]);
    assert_eq!(s.stock("Tux"), 78, "a failed buy took stock");
    s.get("/health").ok();

    s.restart(Svc::Order);
    assert_eq!(
        s.buy_ok("Tux", 1),
        n + 1,
        "numbering resumes; failed buys took no number"
    );
    let r = s.get(&format!("/orders/{n}"));
    assert_eq!(r.ok()["quantity"], 2, "{r:?}");
    assert_eq!(s.stock("Tux"), 77);
}

#[test]
fn catalog_down() {
    let Some(mut s) = Stack::spawned_only("catalog_down") else {
        return;
    };
    let n = s.buy_ok("Whale", 3);
    s.kill(Svc::Catalog);

    let fast = Duration::from_secs(2);
    fails_fast("GET /products", fast, || s.get("/products"));
    fails_fast("GET /products/Tux", fast, || s.get("/products/Tux"));
    fails_fast("PUT /products/Tux", fast, || {
        s.admin_put("Tux", r#"{"price":1}"#)
    });

    // Order look-ups need only the order service.
    let r = s.get(&format!("/orders/{n}"));
    assert_eq!(
        r.ok(),
        &serde_json::json!({"number": n, "name": "Whale", "quantity": 3}),
        "{r:?}"
    );
    s.get(&format!("/orders/{}", n + 100))
        .err(404, Some("order not found"));

    // A buy cannot complete without the catalog: a clear failure, within the
    // backend-call bound.
    fails_fast("POST /orders", Duration::from_secs(6), || s.buy("Whale", 1));
    s.get("/health").ok();

    s.restart(Svc::Catalog);
    assert_eq!(s.stock("Whale"), 97, "stock after restart");
    let m = order_number(&s.buy("Whale", 1));
    assert_eq!(m, n + 1, "the failed buy took no order number");
    assert_eq!(s.stock("Whale"), 96);
    s.admin_put("Tux", r#"{"price":20}"#).ok();
    assert_eq!(s.product("Tux"), (20.0, 80));
}

#[test]
fn both_backends_down_then_back() {
    let Some(mut s) = Stack::spawned_only("both_backends_down_then_back") else {
        return;
    };
    let n = s.buy_ok("Bird", 1);
    s.kill(Svc::Order);
    s.kill(Svc::Catalog);
    let fast = Duration::from_secs(2);
    fails_fast("GET /products/Bird", fast, || s.get("/products/Bird"));
    fails_fast("POST /orders", fast, || s.buy("Bird", 1));
    fails_fast("GET /orders/{n}", fast, || s.get(&format!("/orders/{n}")));
    s.get("/health").ok();
    s.restart(Svc::Catalog);
    s.restart(Svc::Order);
    assert_eq!(s.stock("Bird"), 99);
    assert_eq!(s.buy_ok("Bird", 1), n + 1);
}

#[test]
fn order_restarts_while_catalog_is_down() {
    let Some(mut s) = Stack::spawned_only("order_restarts_while_catalog_is_down") else {
        return;
    };
    let n = s.buy_ok("Elephant", 2);
    s.kill(Svc::Catalog);
    s.kill(Svc::Order);
    // Its recovery may want the catalog, but it must come up and serve look-ups.
    s.restart(Svc::Order);
    let r = s.get(&format!("/orders/{n}"));
    assert_eq!(r.ok()["quantity"], 2, "{r:?}");
    fails_fast("POST /orders", Duration::from_secs(6), || {
        s.buy("Elephant", 1)
    });
    s.restart(Svc::Catalog);
    assert_eq!(s.stock("Elephant"), 98);
    assert_eq!(s.buy_ok("Elephant", 1), n + 1);
    assert_eq!(s.stock("Elephant"), 97);
}

#[test]
fn frontend_starts_while_backends_are_down() {
    let Some(mut s) = Stack::spawned_only("frontend_starts_while_backends_are_down") else {
        return;
    };
    s.kill(Svc::Catalog);
    s.kill(Svc::Order);
    s.kill(Svc::Frontend);
    s.restart(Svc::Frontend);
    fails_fast("GET /products", Duration::from_secs(2), || {
        s.get("/products")
    });
    fails_fast("POST /orders", Duration::from_secs(2), || s.buy("Tux", 1));
    s.restart(Svc::Catalog);
    s.restart(Svc::Order);
    assert_eq!(s.buy_ok("Tux", 1), 0);
}

/// A "catalog" that accepts connections and never answers.
fn black_hole() -> PeerAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            // Read what comes, never answer.
            let mut c2 = c.try_clone().unwrap();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(c2.read(&mut buf), Ok(n) if n > 0) {}
            });
            c.set_nodelay(true).ok();
            held.push(c);
        }
    });
    peer(addr)
}

/// A "catalog" that reads each request and closes the connection `after`, unanswered:
/// the failure a vanished peer reports late (no reply, then a reset).
fn late_dropper(after: Duration) -> PeerAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                // The delay is the behaviour under test: a peer that fails late.
                thread::sleep(after);
            });
        }
    });
    peer(addr)
}

fn peer(addr: std::net::SocketAddr) -> PeerAddr {
    PeerAddr::parse(&format!("http://{addr}"), addr.port()).unwrap()
}

#[test]
fn a_call_that_fails_late_is_not_retried_past_its_timeout() {
    let catalog = late_dropper(Duration::from_millis(2500));
    let Some(s) = Stack::in_process()
        .frontend(|config| config.catalog = catalog)
        .fresh("a_call_that_fails_late_is_not_retried_past_its_timeout")
    else {
        return;
    };
    // The backend timeout is 4 s. Retried (a GET may be), each attempt would fail after
    // 2.5 s: 7.5 s in all. Not retried, the query fails after one, in time for the
    // contract's 5 s.
    fails_fast("GET /products/Tux", Duration::from_millis(4500), || {
        s.get("/products/Tux")
    });
}

#[test]
fn catalog_that_never_answers_times_out() {
    let catalog = black_hole();
    let Some(s) = Stack::in_process()
        .frontend(|config| config.catalog = catalog)
        .fresh("catalog_that_never_answers_times_out")
    else {
        return;
    };
    // The contract: a backend call that gets no answer fails within 5 s. Slack for a
    // loaded machine.
    let bound = Duration::from_secs(9);
    let (a, b) = thread::scope(|sc| {
        let a = sc.spawn(|| fails_fast("GET /products/Tux", bound, || s.get("/products/Tux")));
        let b = sc.spawn(|| fails_fast("GET /products", bound, || s.get("/products")));
        // Meanwhile the order service's routes work (its own catalog is the real one).
        s.get("/orders/0").err(404, Some("order not found"));
        s.get("/health").ok();
        (a.join(), b.join())
    });
    a.unwrap();
    b.unwrap();
}

#[test]
fn order_service_with_a_catalog_that_never_answers() {
    let catalog = black_hole();
    let Some(s) = Stack::in_process()
        .order(|config| config.catalog = catalog)
        .fresh("order_service_with_a_catalog_that_never_answers")
    else {
        return;
    };
    fails_fast("POST /orders", Duration::from_secs(9), || s.buy("Tux", 1));
    // No order came of it, and queries (front-end to the real catalog) still work.
    s.get("/orders/0").err(404, Some("order not found"));
    assert_eq!(s.stock("Tux"), 80);
}

#[test]
fn a_flood_on_a_silent_catalog_does_not_starve_order_routes() {
    // The contract: a slow backend fails within 5 s, and the other backend's routes
    // keep working. Many clients waiting on a silent catalog must not take every
    // front-end worker from the order routes.
    let catalog = black_hole();
    let Some(s) = Stack::in_process()
        .frontend(|config| config.catalog = catalog)
        .fresh("a_flood_on_a_silent_catalog_does_not_starve_order_routes")
    else {
        return;
    };
    let n = s.buy_ok("Tux", 1);
    let http = common::Http::with_timeout(Duration::from_secs(30));
    const FLOOD: u64 = 100;
    thread::scope(|sc| {
        for _ in 0..FLOOD {
            let (http, front) = (&http, &s.front);
            sc.spawn(move || {
                let r = http.get(&format!("{front}/products"));
                r.err_any(&[503, 504]);
            });
        }
        // Wait until the whole flood has reached the front-end: each request answered or
        // inside a handler (the scrape's own request is one of those in flight).
        eventually(
            "the flood at the front-end",
            Duration::from_secs(20),
            || {
                let m = Metrics::scrape(&s.http, &s.front);
                let answered = m.sum("toystore_http_requests_total", &[r#"route="/products""#]);
                let in_flight = m.value("toystore_http_in_flight_requests");
                (answered + in_flight > FLOOD).then_some(())
            },
        );
        for _ in 0..3 {
            let start = Instant::now();
            let r = s.get(&format!("/orders/{n}"));
            let took = start.elapsed();
            assert_eq!(r.ok()["name"], "Tux", "{r:?}");
            assert!(
                took < Duration::from_secs(2),
                "an order look-up took {took:?} during the flood"
            );
        }
    });
}
