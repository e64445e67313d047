//! Process control for fault tests: arming failpoints (`TOYSTORE_FAILPOINTS`, see
//! `src/failpoint.rs`) in a spawned service and noticing when it died at one.

use super::{Stack, Svc, SEED};
use std::collections::BTreeSet;
use std::process::ExitStatus;
use std::time::Duration;

/// An acknowledged order: number, product, quantity.
pub type Acked = (u64, String, u64);

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

    /// Checks the books against the order service and the catalog directly: no number
    /// acknowledged twice, every acknowledged order readable as acknowledged, and, per
    /// product of [`SEED`], seed stock − current stock = the units of the orders
    /// readable via `GET /orders/{n}`. Returns the readable order numbers.
    #[track_caller]
    pub fn check_books(&self, acked: &[Acked], context: &str) -> BTreeSet<u64> {
        let order = self.order.as_deref().expect("order service address");
        let catalog = self.catalog.as_deref().expect("catalog address");
        let mut numbers: Vec<u64> = acked.iter().map(|a| a.0).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            acked.len(),
            "{context}: a number given twice"
        );
        let last_acked = numbers.last().copied().unwrap_or(0);
        let mut readable: Vec<Acked> = Vec::new();
        let mut n = 0;
        // Past the last acknowledged number only orders whose reply a crash lost can be
        // readable: a few, with no long gap.
        while n <= last_acked || readable.last().is_some_and(|r| r.0 + 8 > n) {
            let r = self.http.get(&format!("{order}/orders/{n}"));
            match r.status {
                200 => {
                    let d = r.ok();
                    let name = d["name"].as_str().unwrap().to_string();
                    readable.push((n, name, d["quantity"].as_u64().unwrap()));
                }
                _ => r.err(404, Some("order not found")),
            }
            n += 1;
        }
        for a in acked {
            assert!(
                readable.contains(a),
                "{context}: acknowledged {a:?} not readable"
            );
        }
        for (name, _, seeded) in SEED {
            let r = self.http.get(&format!("{catalog}/products/{name}"));
            let now = r.ok()["quantity"].as_u64().unwrap();
            let sold: u64 = readable.iter().filter(|o| o.1 == *name).map(|o| o.2).sum();
            assert_eq!(
                seeded - now,
                sold,
                "{context}: {name}: seed {seeded}, now {now}, readable orders {readable:?}"
            );
        }
        readable.iter().map(|r| r.0).collect()
    }
}
