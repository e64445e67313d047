//! Concurrent buyers never oversell, and order numbers stay unique and contiguous.
//!
//! Stock is set through the admin API (so this runs in external mode too when
//! `ADMIN_TOKEN` is known); on a fresh stack the numbers must be exactly 0..k-1.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;

use common::{Http, Resp, Stack};
use serde_json::json;

const THREADS: usize = 32;

/// Outcome of one storm: order numbers (with quantity) of the successes, count of 409s.
struct Storm {
    won: Vec<(u64, String, u64)>,
    out_of_stock: usize,
}

/// `THREADS` threads each buy `per_thread` times, cycling through `items`.
fn storm(s: &Stack, items: &[(&str, u64)], per_thread: usize) -> Storm {
    let won = Mutex::new(Vec::new());
    let oos = Mutex::new(0usize);
    let url = format!("{}/orders", s.front);
    thread::scope(|sc| {
        for t in 0..THREADS {
            let (won, oos, url) = (&won, &oos, &url);
            sc.spawn(move || {
                let http = Http::default();
                for i in 0..per_thread {
                    let (name, q) = items[(t + i) % items.len()];
                    let body = json!({"name": name, "quantity": q}).to_string();
                    let r: Resp = http.post(url, &body);
                    match r.status {
                        200 => {
                            let n = common::order_number(&r);
                            won.lock().unwrap().push((n, name.to_string(), q));
                        }
                        409 => {
                            r.err(409, Some("out of stock"));
                            *oos.lock().unwrap() += 1;
                        }
                        _ => panic!("concurrent buy of {name} x{q}: {r:?}"),
                    }
                }
            });
        }
    });
    Storm {
        won: won.into_inner().unwrap(),
        out_of_stock: oos.into_inner().unwrap(),
    }
}

/// Numbers are distinct and contiguous; on a fresh stack they start at 0.
#[track_caller]
fn assert_numbering(s: &Stack, won: &[(u64, String, u64)]) {
    let mut numbers: Vec<u64> = won.iter().map(|w| w.0).collect();
    numbers.sort_unstable();
    let first = numbers.first().copied().unwrap_or(0);
    if s.is_fresh() {
        assert_eq!(first, 0, "a fresh stack numbers from 0");
    }
    let want: Vec<u64> = (first..first + numbers.len() as u64).collect();
    assert_eq!(numbers, want, "order numbers are not unique and contiguous");
}

fn needs_token(s: &Stack, test: &str) -> bool {
    if s.token.is_none() {
        common::skip(test, "needs a fresh stack or ADMIN_TOKEN");
        return false;
    }
    true
}

#[test]
fn thirty_two_buyers_never_oversell() {
    let s = Stack::new();
    if !needs_token(&s, "thirty_two_buyers_never_oversell") {
        return;
    }
    let stock = 60;
    s.admin_put("Tux", &format!(r#"{{"quantity":{stock}}}"#))
        .ok();

    // A reader watches the stock go down, never up and never below zero.
    let done = AtomicBool::new(false);
    let storm = thread::scope(|sc| {
        let reader = sc.spawn(|| {
            let mut last = stock;
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                let now = s.stock("Tux");
                assert!(now <= last, "stock went up from {last} to {now}");
                last = now;
                reads += 1;
            }
            reads
        });
        let storm = storm(&s, &[("Tux", 1)], 4);
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        storm
    });
    assert_eq!(
        storm.won.len() as u64,
        stock,
        "successes with demand 128 > stock {stock}"
    );
    assert_eq!(storm.out_of_stock, THREADS * 4 - stock as usize);
    assert_eq!(s.stock("Tux"), 0);
    assert_numbering(&s, &storm.won);
    // Each success is readable as bought.
    for (n, name, q) in storm.won.iter().take(10) {
        let r = s.get(&format!("/orders/{n}"));
        assert_eq!(r.ok(), &json!({"number": n, "name": name, "quantity": q}));
    }
    if !s.is_fresh() {
        s.admin_put("Tux", r#"{"quantity":80}"#).ok();
    }
}

#[test]
fn buyers_of_three_never_oversell() {
    let s = Stack::new();
    if !needs_token(&s, "buyers_of_three_never_oversell") {
        return;
    }
    let stock = 80u64;
    s.admin_put("Whale", &format!(r#"{{"quantity":{stock}}}"#))
        .ok();
    let storm = storm(&s, &[("Whale", 3)], 2);
    let k = storm.won.len() as u64;
    // Demand (192) exceeds stock, so buyers stop only when fewer than 3 are left.
    assert_eq!(k, stock / 3, "successes");
    assert_eq!(s.stock("Whale"), stock - 3 * k);
    assert_eq!(s.stock("Whale"), stock % 3);
    assert_eq!(storm.out_of_stock, THREADS * 2 - k as usize);
    assert_numbering(&s, &storm.won);
    if !s.is_fresh() {
        s.admin_put("Whale", r#"{"quantity":100}"#).ok();
    }
}

#[test]
fn mixed_buyers_account_for_every_unit() {
    let s = Stack::new();
    if !needs_token(&s, "mixed_buyers_account_for_every_unit") {
        return;
    }
    let start: HashMap<&str, u64> = [("Elephant", 50), ("Bird", 30), ("Tux", 40)].into();
    for (name, q) in &start {
        s.admin_put(name, &format!(r#"{{"quantity":{q}}}"#)).ok();
    }
    let items = [("Elephant", 1), ("Bird", 2), ("Tux", 3), ("Elephant", 2)];
    let storm = storm(&s, &items, 6);
    let mut sold: HashMap<&str, u64> = HashMap::new();
    for (_, name, q) in &storm.won {
        let key = start.keys().find(|k| **k == name.as_str()).unwrap();
        *sold.entry(key).or_default() += q;
    }
    for (name, q0) in &start {
        let now = s.stock(name);
        assert_eq!(
            q0 - now,
            sold.get(name).copied().unwrap_or(0),
            "{name}: stock {q0} -> {now}"
        );
    }
    assert_numbering(&s, &storm.won);
    // The log agrees with what the buyers were told.
    for (n, name, q) in &storm.won {
        let r = s.get(&format!("/orders/{n}"));
        assert_eq!(r.ok(), &json!({"number": n, "name": name, "quantity": q}));
    }
    if !s.is_fresh() {
        for name in start.keys() {
            s.admin_put(name, r#"{"quantity":100}"#).ok();
        }
    }
}
