//! The deterministic crash walk (issue 11): for every failpoint of the buy protocol in
//! turn, a service dies exactly at that step, comes back without it, and after recovery
//! the contract's guarantees hold.
//!
//! The points walked are the registry `toystore::failpoint::Point::ALL`, so a point
//! declared there is walked with no change here. For each point, on a fresh stack, and
//! for each shape of buy (plain, with an Idempotency-Key, a `POST /orders/batch`):
//! arm the point (`exit`) in its service, drive steps that together pass every point
//! (a buy, a refused buy, a buy while the catalog is down and then the resolver once it
//! is back) until the service dies there, restart it without the point, wait until no
//! buy is unresolved, and check:
//! - seed stock − current stock = the sum of the orders readable via `GET /orders/{n}`;
//! - every acknowledged order is readable with its content, no number given twice;
//! - a retry with the same key returns the first outcome or buys once;
//! - a new buy takes a number above every earlier one.
//!
//! Relies on the catalog's presumed-abort resolve (`POST /buys/{id}/resolve` gives back
//! the stock of a buy that applied and voids the id): with a catalog that answers
//! "applied" instead, a crash after the catalog applied a buy and before its commit was
//! durable leaves stock taken with no order, and the walk says so.

mod common;

use common::{eventually, Resp, Stack, Svc};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use toystore::failpoint::{Point, EXIT_CODE};

/// How a walk buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plain,
    Keyed,
    Batch,
}

/// The steps driven in turn until the armed service dies; together they pass every
/// point of both services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A buy that succeeds: intent, catalog buy, commit.
    Buy,
    /// A buy the catalog refuses (out of stock): intent, catalog, abort.
    Refused,
    /// A buy while the catalog is down (resolve fails), then the catalog back: the
    /// resolver resolves and aborts it.
    CatalogDown,
}

const STEPS: [Step; 3] = [Step::Buy, Step::Refused, Step::CatalogDown];

/// How long a service may take to die once the request that reaches its point returned.
const DEATH: Duration = Duration::from_secs(2);
/// How long recovery may take (the resolver runs every 500 ms).
const RECOVERY: Duration = Duration::from_secs(20);

/// Whether a reply says that a service failed on the way (the whole or an item 5xx).
fn troubled(reply: &Resp) -> bool {
    let failed = |v: &Value| v["error"]["code"].as_u64().is_some_and(|c| c >= 500);
    reply.status >= 500
        || failed(&reply.json)
        || reply.json["data"]
            .as_array()
            .is_some_and(|items| items.iter().any(failed))
}

/// The service a point belongs to.
fn owner(point: Point) -> Svc {
    if point.name().starts_with("catalog.") {
        Svc::Catalog
    } else {
        Svc::Order
    }
}

/// One stack walked through one point, with what it acknowledged.
struct Walk {
    s: Stack,
    order: String,
    /// Every acknowledged order: (number, name, quantity).
    acked: Vec<(u64, String, u64)>,
}

/// A buy request: path, body, headers.
struct Request {
    path: &'static str,
    body: String,
    key: Option<String>,
}

impl Request {
    fn new(shape: Shape, step: Step) -> Request {
        let (name, quantity) = match step {
            Step::Buy => ("Tux", 1),
            Step::Refused => ("Tux", 1_000_000),
            Step::CatalogDown => ("Whale", 1),
        };
        let key = (shape == Shape::Keyed).then(|| common::unique("walk"));
        match shape {
            Shape::Plain | Shape::Keyed => Request {
                path: "/orders",
                body: json!({"name": name, "quantity": quantity}).to_string(),
                key,
            },
            Shape::Batch => Request {
                path: "/orders/batch",
                body: json!({"orders": [
                    {"name": name, "quantity": quantity},
                    {"name": "Bird", "quantity": 2},
                ]})
                .to_string(),
                key,
            },
        }
    }
}

impl Walk {
    fn new() -> Walk {
        let s = Stack::spawned_only("crash_walk").expect("crash walk needs a spawned stack");
        Walk {
            order: s.order.clone().unwrap(),
            s,
            acked: Vec::new(),
        }
    }

    /// Sends `request` to the order service; `None` when the connection died.
    fn send(&mut self, request: &Request) -> Option<Resp> {
        let headers: Vec<(&str, &str)> = request
            .key
            .iter()
            .map(|k| ("Idempotency-Key", k.as_str()))
            .collect();
        let url = format!("{}{}", self.order, request.path);
        let reply = self.s.http.try_post(&url, &request.body, &headers).ok()?;
        let body: Value = serde_json::from_str(&request.body).unwrap();
        let orders = match body["orders"].as_array() {
            Some(orders) => orders.clone(),
            None => vec![body],
        };
        let items = match (&reply.status, reply.json.get("data")) {
            (200, Some(Value::Array(items))) => items.clone(),
            (200, Some(data)) => vec![json!({ "data": data })],
            _ => Vec::new(),
        };
        for (order, item) in orders.iter().zip(items) {
            if let Some(n) = item["data"]["order_number"].as_u64() {
                let name = order["name"].as_str().unwrap().to_string();
                self.acked
                    .push((n, name, order["quantity"].as_u64().unwrap()));
            }
        }
        assert_ne!(reply.status, 500, "{reply:?}");
        Some(reply)
    }

    /// Drives the steps with `point` armed until its service dies; the step it died
    /// at and the request in flight then.
    fn drive(&mut self, point: Point, shape: Shape) -> (Step, Request) {
        let svc = owner(point);
        self.s.arm(svc, &format!("{}=exit", point.name()));
        for step in STEPS {
            let request = Request::new(shape, step);
            if step == Step::CatalogDown {
                self.s.kill(Svc::Catalog);
            }
            let reply = self.send(&request);
            let died = match &reply {
                // The catalog is down: the buy fails, and once the catalog is back the
                // resolver settles it, or the armed service dies trying.
                Some(reply) if step == Step::CatalogDown => {
                    assert!(matches!(reply.status, 200 | 503 | 504), "{reply:?}");
                    self.s.restart(Svc::Catalog);
                    eventually("the open buy settled or the service dead", RECOVERY, || {
                        if let Some(status) = self.s.exit_status(svc) {
                            return Some(Some(status));
                        }
                        (self.unresolved() == Some(0)).then_some(None)
                    })
                }
                // Every service answered: nobody died on the way.
                Some(reply) if !troubled(reply) => self.s.exit_status(svc),
                _ => self.s.exit_within(svc, DEATH),
            };
            if let Some(status) = died {
                assert_eq!(status.code(), Some(EXIT_CODE), "{}: {status}", point.name());
                return (step, request);
            }
        }
        panic!("{}: never reached with a {shape:?} buy", point.name());
    }

    /// The order service's count of open buys nobody works on (`None` while it does
    /// not answer).
    fn unresolved(&self) -> Option<u64> {
        let r = self
            .s
            .http
            .try_get(&format!("{}/health", self.order))
            .ok()?;
        (r.status == 200).then(|| r.json["data"]["unresolved"].as_u64())?
    }

    /// Restarts what is down, unarmed, and waits until no buy is unresolved.
    fn recover(&mut self, point: Point) {
        self.s.disarm(owner(point));
        self.s.ensure_running(Svc::Catalog);
        self.s.ensure_running(Svc::Order);
        eventually("no buy unresolved", RECOVERY, || {
            (self.unresolved() == Some(0)).then_some(())
        });
    }

    /// The contract's invariant, and every acknowledged order readable (see
    /// [`Stack::check_books`]): the readable order numbers.
    fn check_stock(&self, context: &str) -> BTreeSet<u64> {
        self.s.check_books(&self.acked, context)
    }
}

/// Walks `point` with every shape of buy.
fn walk(point: Point) {
    let mut w = Walk::new();
    for shape in [Shape::Plain, Shape::Keyed, Shape::Batch] {
        let context = format!("{} ({shape:?})", point.name());
        let before = w.check_stock(&context);
        let acked_before = w.acked.len();
        let (step, in_flight) = w.drive(point, shape);
        w.recover(point);
        let after = w.check_stock(&format!("{context}, died at {step:?}"));
        if shape == Shape::Keyed {
            let reply = w.send(&in_flight).expect("the retry got an answer");
            if step == Step::Refused {
                reply.err(409, Some("out of stock"));
            } else {
                let n = common::order_number(&reply);
                let now = w.check_stock(&format!("{context}, retried"));
                let acked: BTreeSet<u64> = w.acked[acked_before..].iter().map(|a| a.0).collect();
                let new: BTreeSet<u64> = now.difference(&before).copied().collect();
                assert_eq!(new, acked, "{context}: the retry (order {n}) bought once");
            }
        }
        let n = common::order_number(&w.s.http.post(
            &format!("{}/orders", w.order),
            r#"{"name":"Elephant","quantity":1}"#,
        ));
        w.acked.push((n, "Elephant".into(), 1));
        assert!(after.iter().all(|&m| m < n), "{context}: number {n} reused");
        w.check_stock(&format!("{context}, bought again"));
    }
}

/// Stacks walked at once: most of a walk is waiting (restarts, the resolver's
/// period), so a few in parallel finish sooner without crowding two cores.
const PARALLEL: usize = 4;

/// Every failpoint of the registry, each on a stack of its own.
#[test]
fn crash_at_every_step_of_the_buy_protocol_loses_nothing() {
    if common::skip_when_external("crash_at_every_step_of_the_buy_protocol_loses_nothing") {
        return;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                while let Some(&point) = Point::ALL.get(next.fetch_add(1, Ordering::Relaxed)) {
                    eprintln!("crash walk: {}", point.name());
                    walk(point);
                }
            });
        }
    });
}
