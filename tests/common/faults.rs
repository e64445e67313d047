//! Process control for fault tests: arming failpoints (`TOYSTORE_FAILPOINTS`, see
//! `src/failpoint.rs`) in a spawned service and noticing when it died at one.

use super::{Stack, Svc, SEED};
use serde_json::json;
use std::collections::BTreeSet;
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

/// An acknowledged order: number, product, quantity.
pub type Acked = (u64, String, u64);

/// Past the last acknowledged order, how far apart readable orders can be: those a crash
/// lost the reply of, at most one per buyer in flight (the crash drill has 12).
const MAX_GAP: u64 = 64;

/// The environment variable the services read their failpoints from.
const FAILPOINTS: &str = "TOYSTORE_FAILPOINTS";

impl Stack {
    /// Starts `svc` again (killing it first if it runs) with the failpoints `spec`.
    pub fn arm(&mut self, svc: Svc, spec: &str) {
        self.set_failpoints(svc, Some(spec));
    }

    /// Starts `svc` again (killing it first if it runs) with no failpoints.
    pub fn disarm(&mut self, svc: Svc) {
        self.set_failpoints(svc, None);
    }

    fn set_failpoints(&mut self, svc: Svc, spec: Option<&str>) {
        let p = self.proc_mut(svc);
        p.envs.retain(|(k, _)| k != FAILPOINTS);
        if let Some(spec) = spec {
            p.envs.push((FAILPOINTS.into(), spec.into()));
        }
        p.reap();
        self.restart(svc);
    }

    /// Whether `svc` runs; a child that exited is reaped (so it can be restarted).
    pub fn is_running(&mut self, svc: Svc) -> bool {
        self.exit_status(svc).is_none() && self.proc_mut(svc).child.is_some()
    }

    /// The exit status of `svc` if it exited since the harness last looked.
    pub fn exit_status(&mut self, svc: Svc) -> Option<ExitStatus> {
        self.exit_within(svc, Duration::ZERO)
    }

    /// Waits up to `within` for `svc` to exit: its status (the child reaped), or
    /// `None` if it still runs or was not running.
    pub fn exit_within(&mut self, svc: Svc, within: Duration) -> Option<ExitStatus> {
        let p = self.proc_mut(svc);
        let status = super::exit_within(p.child.as_mut()?, within)?;
        p.child = None;
        Some(status)
    }

    /// Starts `svc` if it is not running (after a kill or a failpoint exit).
    pub fn ensure_running(&mut self, svc: Svc) {
        if !self.is_running(svc) {
            self.restart(svc);
        }
    }

    /// [`Stack::check_books_of`] for a stack started from [`SEED`], at once (no wait).
    #[track_caller]
    pub fn check_books(&self, acked: &[Acked], context: &str) -> BTreeSet<u64> {
        let seed: Vec<(&str, u64)> = SEED.iter().map(|(name, _, q)| (*name, *q)).collect();
        self.check_books_of(acked, context, &seed, Duration::ZERO)
    }

    /// Checks the books against the order service and the catalog directly: no number
    /// acknowledged twice, every acknowledged order readable as acknowledged (each
    /// readable order exactly `{"number","name","quantity"}`), and, per product of
    /// `seed` (name, seeded stock), seed stock − current stock = the units of the
    /// orders readable via `GET /orders/{n}`. The invariant is polled for up to
    /// `within` (recovery may need a moment to reconcile the two services). Returns the
    /// readable order numbers.
    #[track_caller]
    pub fn check_books_of(
        &self,
        acked: &[Acked],
        context: &str,
        seed: &[(&str, u64)],
        within: Duration,
    ) -> BTreeSet<u64> {
        let mut numbers: Vec<u64> = acked.iter().map(|a| a.0).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            acked.len(),
            "{context}: a number given twice"
        );
        let last_acked = numbers.last().copied().unwrap_or(0);
        let deadline = Instant::now() + within;
        loop {
            let readable = self.readable_orders(last_acked);
            for a in acked {
                assert!(
                    readable.contains(a),
                    "{context}: acknowledged {a:?} not readable"
                );
            }
            let mut books = String::new();
            let mut balanced = true;
            for (name, seeded) in seed {
                let now = self.catalog_stock(name);
                let sold: u64 = readable.iter().filter(|o| o.1 == *name).map(|o| o.2).sum();
                balanced &= seeded - now == sold;
                books.push_str(&format!("{name}: seed {seeded}, now {now}, sold {sold}; "));
            }
            if balanced {
                return readable.iter().map(|r| r.0).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{context}: {books}readable orders {readable:?}"
            );
            eprintln!("{context}: not yet: {books}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The orders readable from the order service, from 0 to past `last_acked`. Past
    /// it only orders whose reply a crash lost can be readable: a few, no long gap
    /// between them (at most one a buyer in flight).
    #[track_caller]
    fn readable_orders(&self, last_acked: u64) -> Vec<Acked> {
        let order = self.order.as_deref().expect("order service address");
        let mut readable: Vec<Acked> = Vec::new();
        let mut n = 0;
        while n <= last_acked || readable.last().is_some_and(|r| r.0 + MAX_GAP > n) {
            let r = self.http.get(&format!("{order}/orders/{n}"));
            match r.status {
                200 => {
                    let d = r.ok();
                    let name = d["name"].as_str().unwrap().to_string();
                    let order = (n, name, d["quantity"].as_u64().unwrap());
                    let want = json!({"number": order.0, "name": order.1, "quantity": order.2});
                    assert_eq!(d, &want, "order {n}: {r:?}");
                    readable.push(order);
                }
                _ => r.err(404, Some("order not found")),
            }
            n += 1;
        }
        readable
    }

    /// A product's stock as the catalog has it.
    #[track_caller]
    fn catalog_stock(&self, name: &str) -> u64 {
        let catalog = self.catalog.as_deref().expect("catalog address");
        let r = self.http.get(&format!("{catalog}/products/{name}"));
        r.ok()["quantity"].as_u64().unwrap()
    }
}
