//! What survives a stop: SIGTERM and SIGKILL of catalog and order, restarted with the
//! same data directories on the same ports. Nothing acknowledged is lost, numbering
//! resumes after the last order, and after a crash under load the contract's
//! invariant holds: seed stock − current stock = the sum of the readable orders.
//! Needs process control, so spawned mode only.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, Http, Stack, Svc, SEED};
use serde_json::json;

/// Buys a fixed mix and returns the orders it made: (number, name, quantity).
fn buy_mix(s: &Stack) -> Vec<(u64, &'static str, u64)> {
    let mut made = Vec::new();
    for (name, q) in [("Tux", 3), ("Whale", 2), ("Tux", 1), ("Bird", 4)] {
        made.push((s.buy_ok(name, q), name, q));
    }
    let r = s.post("/Elephant/5", "");
    made.push((common::order_number(&r), "Elephant", 5));
    made
}

fn assert_orders(s: &Stack, made: &[(u64, &str, u64)]) {
    for (n, name, q) in made {
        let r = s.get(&format!("/orders/{n}"));
        assert_eq!(
            r.ok(),
            &json!({"number": n, "name": name, "quantity": q}),
            "order {n} after restart: {r:?}"
        );
    }
}

/// Products as (price, quantity) by name.
fn table(s: &Stack) -> BTreeMap<String, (f64, u64)> {
    let r = s.get("/products");
    r.ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                (
                    p["price"].as_f64().unwrap(),
                    p["quantity"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn restart_keeps_everything(test: &str, graceful: bool) {
    let Some(mut s) = Stack::spawned_only(test) else {
        return;
    };
    let made = buy_mix(&s);
    assert_eq!(
        made.iter().map(|m| m.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4],
        "fresh numbering"
    );
    s.admin_put("Elephant", r#"{"price":11.5}"#).ok();
    let before = table(&s);
    assert_eq!(before["Tux"], (25.99, 76));
    assert_eq!(before["Elephant"], (11.5, 95));

    for svc in [Svc::Catalog, Svc::Order] {
        if graceful {
            let status = s.stop(svc);
            assert!(
                status.success(),
                "{svc:?} exit status after SIGTERM: {status}"
            );
        } else {
            s.kill(svc);
        }
    }
    s.restart(Svc::Catalog);
    s.restart(Svc::Order);

    assert_eq!(table(&s), before, "the table after restart");
    assert_orders(&s, &made);
    s.get("/orders/5").err(404, Some("order not found"));
    assert_eq!(
        s.buy_ok("Whale", 1),
        5,
        "numbering resumes after the last order"
    );
    assert_eq!(s.stock("Whale"), 97);

    // A second restart, of each alone, changes nothing either.
    for svc in [Svc::Order, Svc::Catalog] {
        if graceful {
            assert!(s.stop(svc).success());
        } else {
            s.kill(svc);
        }
        s.restart(svc);
    }
    assert_eq!(s.stock("Whale"), 97);
    assert_eq!(s.buy_ok("Whale", 1), 6);
    assert_orders(&s, &made);
}

#[test]
fn sigterm_restart_keeps_stock_and_orders() {
    restart_keeps_everything("sigterm_restart_keeps_stock_and_orders", true);
}

#[test]
fn sigkill_restart_keeps_stock_and_orders() {
    restart_keeps_everything("sigkill_restart_keeps_stock_and_orders", false);
}

#[test]
fn frontend_sigterm_exits_zero_and_restarts() {
    let Some(mut s) = Stack::spawned_only("frontend_sigterm_exits_zero_and_restarts") else {
        return;
    };
    let n = s.buy_ok("Tux", 1);
    let status = s.stop(Svc::Frontend);
    assert!(
        status.success(),
        "frontend exit status after SIGTERM: {status}"
    );
    s.restart(Svc::Frontend);
    assert_eq!(s.buy_ok("Tux", 1), n + 1);
    assert_eq!(s.stock("Tux"), 78);
}

#[test]
fn torn_tail_after_crash_is_ignored_and_cut() {
    let Some(mut s) = Stack::spawned_only("torn_tail_after_crash_is_ignored_and_cut") else {
        return;
    };
    let made = buy_mix(&s);
    let before = table(&s);
    s.kill(Svc::Catalog);
    s.kill(Svc::Order);
    // A kill in the middle of an append leaves a partial record at the end of the
    // journals (INTERFACE.md: catalog.journal, orders.log).
    for (svc, file) in [
        (Svc::Catalog, "catalog.journal"),
        (Svc::Order, "orders.log"),
    ] {
        let path = s.data_dir(svc).join(file);
        assert!(path.exists(), "{} missing", path.display());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"\x01\x02\x03").unwrap();
    }
    s.restart(Svc::Catalog);
    s.restart(Svc::Order);
    assert_eq!(table(&s), before, "the table after a torn tail");
    assert_orders(&s, &made);
    // New records after recovery must not land behind the garbage, where the next
    // recovery would stop reading.
    assert_eq!(s.buy_ok("Bird", 2), 5);
    s.admin_put("Tux", r#"{"price":2.5}"#).ok();
    s.kill(Svc::Catalog);
    s.kill(Svc::Order);
    s.restart(Svc::Catalog);
    s.restart(Svc::Order);
    assert_orders(&s, &[(5, "Bird", 2)]);
    assert_eq!(s.stock("Bird"), 94);
    assert_eq!(s.product("Tux"), (2.5, 76));
    assert_eq!(s.buy_ok("Bird", 1), 6);
}

#[test]
fn idempotency_key_survives_order_crash() {
    let Some(mut s) = Stack::spawned_only("idempotency_key_survives_order_crash") else {
        return;
    };
    let url = format!("{}/orders", s.front);
    let body = r#"{"name":"Tux","quantity":2}"#;
    let n = common::order_number(
        &s.http
            .post_h(&url, body, &[("Idempotency-Key", "crash-key")]),
    );
    s.kill(Svc::Order);
    s.restart(Svc::Order);
    let again = s
        .http
        .post_h(&url, body, &[("Idempotency-Key", "crash-key")]);
    assert_eq!(
        common::order_number(&again),
        n,
        "the key was forgotten in the crash"
    );
    assert_eq!(s.stock("Tux"), 78, "stock taken once");
}

/// Buys from several threads, stops `victim` in the middle (SIGKILL, or SIGTERM when
/// `graceful`), restarts it, and checks the contract's invariant and that every
/// acknowledged order is there.
fn crash_under_load(test: &str, victim: Svc, graceful: bool) {
    let Some(mut s) = Stack::spawned_only(test) else {
        return;
    };
    let acked: Mutex<Vec<(u64, String, u64)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let other_errors = AtomicUsize::new(0);
    let front = s.front.clone();
    thread::scope(|sc| {
        for t in 0..6u64 {
            let (acked, stop, other_errors, front) = (&acked, &stop, &other_errors, &front);
            sc.spawn(move || {
                let http = Http::with_timeout(Duration::from_secs(15));
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let (name, _, _) = SEED[(i % 4) as usize];
                    let q = 1 + i % 2;
                    i += 1;
                    let body = json!({"name": name, "quantity": q}).to_string();
                    match http.try_post(&format!("{front}/orders"), &body, &[]) {
                        Ok(r) if r.status == 200 => {
                            let n = common::order_number(&r);
                            acked.lock().unwrap().push((n, name.to_string(), q));
                        }
                        Ok(r) => {
                            // While the victim is down: 503/504 with the envelope.
                            assert!(
                                matches!(r.status, 503 | 504 | 409),
                                "buy during the crash: {r:?}"
                            );
                            r.err_any(&[503, 504, 409]);
                            other_errors.fetch_add(1, Ordering::Relaxed);
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("transport error from the front-end: {e}"),
                    }
                }
            });
        }
        // Let the buyers get going, then kill in the middle of the traffic.
        let start = Instant::now();
        while acked.lock().unwrap().len() < 40 && start.elapsed() < Duration::from_secs(20) {
            thread::sleep(Duration::from_millis(10));
        }
        if graceful {
            let status = s.stop(victim);
            assert!(
                status.success(),
                "{victim:?} exit status after SIGTERM under load: {status}"
            );
        } else {
            s.kill(victim);
        }
        // Some requests meet the dead service.
        let killed_at = Instant::now();
        while other_errors.load(Ordering::Relaxed) < 6
            && killed_at.elapsed() < Duration::from_secs(5)
        {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() >= 40,
        "only {} buys succeeded before the kill",
        acked.len()
    );
    let mut numbers: Vec<u64> = acked.iter().map(|a| a.0).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        acked.len(),
        "an order number was given twice"
    );

    s.restart(victim);

    // Every acknowledged order survives, exactly.
    for (n, name, q) in &acked {
        let r = s.get(&format!("/orders/{n}"));
        assert_eq!(
            r.ok(),
            &json!({"number": n, "name": name, "quantity": q}),
            "acknowledged order {n} after the crash: {r:?}"
        );
    }
    let max_acked = *numbers.last().unwrap();

    // seed − current = sum of readable orders, per product. Recovery may need a
    // moment to reconcile with the other service, so poll with a deadline.
    let seed: HashMap<&str, u64> = SEED.iter().map(|(n, _, q)| (*n, *q)).collect();
    let mut last = String::new();
    let readable = eventually(
        "the stock invariant after the crash",
        Duration::from_secs(20),
        || {
            let mut sums: HashMap<String, u64> = HashMap::new();
            let mut readable = Vec::new();
            for n in 0..=max_acked + 64 {
                let r = s.get(&format!("/orders/{n}"));
                match r.status {
                    200 => {
                        let d = r.ok();
                        assert_eq!(d["number"], n, "{r:?}");
                        let name = d["name"].as_str().unwrap().to_string();
                        *sums.entry(name).or_default() += d["quantity"].as_u64().unwrap();
                        readable.push(n);
                    }
                    _ => r.err(404, Some("order not found")),
                }
            }
            let stock = table(&s);
            let mut ok = true;
            last.clear();
            for (name, seeded) in &seed {
                let now = stock[*name].1;
                let sold = sums.get(*name).copied().unwrap_or(0);
                if seeded - now != sold {
                    ok = false;
                }
                last.push_str(&format!("{name}: seed {seeded} now {now} orders {sold}; "));
            }
            eprintln!("{test}: {last}");
            ok.then_some(readable)
        },
    );
    // Numbering goes on after every readable number: none is reused.
    let next = s.buy_ok("Tux", 1);
    assert!(
        readable.iter().all(|&n| n < next),
        "new order {next} reuses or precedes a readable number (max readable {:?})",
        readable.last()
    );
}

#[test]
fn kill_order_under_load_loses_nothing() {
    crash_under_load("kill_order_under_load_loses_nothing", Svc::Order, false);
}

#[test]
fn sigterm_order_under_load_loses_nothing() {
    crash_under_load("sigterm_order_under_load_loses_nothing", Svc::Order, true);
}

#[test]
fn sigterm_catalog_under_load_loses_nothing() {
    crash_under_load(
        "sigterm_catalog_under_load_loses_nothing",
        Svc::Catalog,
        true,
    );
}

#[test]
fn kill_catalog_under_load_loses_nothing() {
    crash_under_load("kill_catalog_under_load_loses_nothing", Svc::Catalog, false);
}
