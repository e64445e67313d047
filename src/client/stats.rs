//! What a run measured: per operation, a latency histogram and counts of errors.
//!
//! Each session records into its own [`Stats`] with no lock on the hot path; the
//! runner merges them once every session has finished.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::session::ErrorKind;

/// The longest latency a histogram holds, in microseconds: an hour. Longer ones
/// are recorded as an hour rather than lost.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The operations a run times separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `GET /products/{name}`.
    Query,
    /// `POST /orders`, retries included.
    Buy,
    /// `GET /orders/{n}`, reading back what a session bought.
    Lookup,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Query => "query",
            Op::Buy => "buy",
            Op::Lookup => "order look-up",
        })
    }
}

/// One operation's measurements.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of every request that got an HTTP answer (any status), in µs.
    pub latency: Histogram<u64>,
    /// Operations done, whatever their outcome.
    pub count: u64,
    /// Operations that did not succeed, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Extra attempts spent on transient failures.
    pub retries: u64,
    /// From the first operation's start to the last one's end: the time over which
    /// throughput is counted, right for a read-back that runs after the load too.
    pub window: Option<(Instant, Instant)>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            // Three significant digits: 1 µs resolution up to 1 ms, 1 ms up to 1 s.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            count: 0,
            errors: BTreeMap::new(),
            retries: 0,
            window: None,
        }
    }
}

impl OpStats {
    /// Counts one operation that started at `began` (its intended start, under a
    /// rate) and ended at `ended`. Its latency counts only if the server answered,
    /// so that a timeout does not pass for a slow success (timeouts are counted apart).
    pub fn record(&mut self, began: Instant, ended: Instant, outcome: Result<(), ErrorKind>) {
        self.count += 1;
        self.widen(Some((began, ended)));
        let latency = ended.saturating_duration_since(began);
        if let Err(kind) = outcome {
            *self.errors.entry(kind).or_default() += 1;
        }
        if matches!(outcome, Ok(()) | Err(ErrorKind::Status(_))) {
            let us = u64::try_from(latency.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            self.latency.saturating_record(us);
        }
    }

    /// Operations that succeeded.
    pub fn ok(&self) -> u64 {
        self.count - self.errors.values().sum::<u64>()
    }

    /// Operations that failed as a service failure (transport error or 5xx).
    pub fn failures(&self) -> u64 {
        self.errors
            .iter()
            .filter(|(kind, _)| kind.is_failure())
            .map(|(_, n)| n)
            .sum()
    }

    /// Operations per second over [`OpStats::window`].
    pub fn throughput(&self) -> f64 {
        let secs = self
            .window
            .map_or(0.0, |(first, last)| (last - first).as_secs_f64());
        if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        }
    }

    fn widen(&mut self, other: Option<(Instant, Instant)>) {
        self.window = match (self.window, other) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (mine, theirs) => mine.or(theirs),
        };
    }

    /// Adds another session's measurements to these.
    pub fn merge(&mut self, other: &OpStats) {
        self.widen(other.window);
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        self.count += other.count;
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
        self.retries += other.retries;
    }
}

/// An order that did not read back as it was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The order number the buy returned.
    pub number: u64,
    /// What the session bought, as `name x quantity`.
    pub expected: String,
    /// What `GET /orders/{n}` said.
    pub found: String,
}

/// How many mismatches a run keeps to show; the rest are only counted.
const MISMATCHES_SHOWN: usize = 5;

/// The read-back of a session's orders at the end of a random run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Orders read back.
    pub checked: u64,
    /// Orders that were missing or differed.
    pub mismatches: u64,
    /// The first few of those.
    pub first: Vec<Mismatch>,
}

impl Verification {
    /// Notes one order read back, `None` if it matched.
    pub fn record(&mut self, mismatch: Option<Mismatch>) {
        self.checked += 1;
        if let Some(m) = mismatch {
            self.mismatches += 1;
            if self.first.len() < MISMATCHES_SHOWN {
                self.first.push(m);
            }
        }
    }

    /// Adds another session's read-back to this one.
    pub fn merge(&mut self, other: &Verification) {
        self.checked += other.checked;
        self.mismatches += other.mismatches;
        let room = MISMATCHES_SHOWN.saturating_sub(self.first.len());
        self.first.extend(other.first.iter().take(room).cloned());
    }
}

/// Everything one session (or, merged, one run) measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Per operation, only those that happened.
    pub ops: BTreeMap<Op, OpStats>,
    /// The read-back of orders, in random mode.
    pub verification: Option<Verification>,
    /// Rounds of random mode whose toy had too few units for one order, so that
    /// they did not buy: what explains a point with few or no buys.
    pub sold_out: u64,
}

impl Stats {
    /// The measurements of `op`, created on first use.
    pub fn op(&mut self, op: Op) -> &mut OpStats {
        self.ops.entry(op).or_default()
    }

    /// Adds another session's measurements to these.
    pub fn merge(&mut self, other: &Stats) {
        for (op, stats) in &other.ops {
            self.op(*op).merge(stats);
        }
        if let Some(theirs) = &other.verification {
            self.verification
                .get_or_insert_with(Verification::default)
                .merge(theirs);
        }
        self.sold_out += other.sold_out;
    }

    /// Service failures plus orders that did not read back: non-zero fails the run.
    pub fn failures(&self) -> u64 {
        let mismatches = self.verification.as_ref().map_or(0, |v| v.mismatches);
        self.ops.values().map(OpStats::failures).sum::<u64>() + mismatches
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Records an operation of `ms` milliseconds starting at `at_ms` after `t0`.
    fn rec(s: &mut OpStats, t0: Instant, at_ms: u64, ms: u64, outcome: Result<(), ErrorKind>) {
        let began = t0 + Duration::from_millis(at_ms);
        s.record(began, began + Duration::from_millis(ms), outcome);
    }

    #[test]
    fn records_and_counts_by_kind() {
        let (t0, mut s) = (Instant::now(), OpStats::default());
        rec(&mut s, t0, 0, 1, Ok(()));
        rec(&mut s, t0, 1, 2, Err(ErrorKind::Status(404)));
        rec(&mut s, t0, 3, 5000, Err(ErrorKind::Timeout));
        rec(&mut s, t0, 5003, 3, Err(ErrorKind::Status(503)));
        assert_eq!((s.count, s.ok(), s.failures()), (4, 1, 2));
        // Four operations over the 5006 ms from the first start to the last end.
        assert!((s.throughput() - 4.0 / 5.006).abs() < 1e-9);
        // The timeout's 5 s is not a latency: the server never answered.
        assert_eq!(s.latency.len(), 3);
        assert!(s.latency.max() < 4_000);
    }

    #[test]
    fn merging_sessions_adds_everything() {
        let (t0, mut a, mut b) = (Instant::now(), Stats::default(), Stats::default());
        for i in 1..=100 {
            rec(a.op(Op::Query), t0, 0, i, Ok(()));
            rec(b.op(Op::Query), t0, 1000, 100 + i, Ok(()));
        }
        rec(b.op(Op::Buy), t0, 0, 1, Err(ErrorKind::Status(409)));
        b.op(Op::Buy).retries = 2;
        a.merge(&b);
        let q = &a.ops[&Op::Query];
        assert_eq!(q.count, 200);
        // 200 queries from t0 to the last one's end at 1200 ms.
        assert!((q.throughput() - 200.0 / 1.2).abs() < 1e-9);
        // The median of 1..=200 ms, within the histogram's 3 significant digits.
        let p50 = q.latency.value_at_quantile(0.5);
        assert!((99_900..=100_100).contains(&p50), "{p50}");
        assert_eq!(a.ops[&Op::Buy].errors[&ErrorKind::Status(409)], 1);
        assert_eq!(a.ops[&Op::Buy].retries, 2);
        assert_eq!(a.failures(), 0);
    }

    #[test]
    fn verification_keeps_the_first_few_mismatches() {
        let bad = |n| {
            Some(Mismatch {
                number: n,
                expected: "Tux x 1".into(),
                found: "order not found".into(),
            })
        };
        let mut a = Verification::default();
        let mut b = Verification::default();
        for n in 0..4 {
            a.record(bad(n));
            b.record(bad(10 + n));
        }
        b.record(None);
        let mut merged = Stats {
            verification: Some(a),
            ..Stats::default()
        };
        merged.merge(&Stats {
            verification: Some(b),
            ..Stats::default()
        });
        let v = merged.verification.as_ref().unwrap();
        assert_eq!((v.checked, v.mismatches, v.first.len()), (9, 8, 5));
        assert_eq!(v.first.last().unwrap().number, 10);
        assert_eq!(merged.failures(), 8);
    }
}
