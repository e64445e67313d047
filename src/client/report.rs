//! The closing summary: one table for people, the same numbers as JSON for machines.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::stats::{Op, OpStats, Stats, Verification};

/// A run's summary, built once and then either printed or serialized.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The mode: query, buy or random.
    pub mode: String,
    /// The front-end's URL.
    pub front: String,
    /// Concurrent sessions.
    pub clients: usize,
    /// Wall time of the whole run, read-back included, in seconds.
    pub elapsed_secs: f64,
    /// One row per operation that happened.
    pub operations: Vec<OpRow>,
    /// Read-back of the orders placed (random mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Service failures and mismatches: non-zero means the run failed.
    pub failures: u64,
}

/// One operation's line of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct OpRow {
    /// The operation.
    pub op: Op,
    /// Operations done.
    pub count: u64,
    /// Operations that succeeded.
    pub ok: u64,
    /// Failed operations by kind: an HTTP status (`"404"`), `timeout`, `connect`, `io`, `protocol`.
    pub errors: BTreeMap<String, u64>,
    /// Extra attempts spent on transient failures.
    pub retries: u64,
    /// Operations per second, from the first one's start to the last one's end.
    pub throughput: f64,
    /// Latency of the answered ones.
    pub latency_us: Latency,
}

/// A latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds; zeros when it is empty.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl OpRow {
    /// One operation's line.
    pub fn new(op: Op, stats: &OpStats) -> OpRow {
        OpRow {
            op,
            count: stats.count,
            ok: stats.ok(),
            errors: stats
                .errors
                .iter()
                .map(|(kind, n)| (kind.to_string(), *n))
                .collect(),
            retries: stats.retries,
            throughput: stats.throughput(),
            latency_us: Latency::of(&stats.latency),
        }
    }
}

impl Report {
    /// The summary of a run's merged measurements.
    pub fn new(
        mode: &str,
        front: &str,
        clients: usize,
        elapsed: Duration,
        stats: &Stats,
    ) -> Report {
        Report {
            mode: mode.to_string(),
            front: front.to_string(),
            clients,
            elapsed_secs: elapsed.as_secs_f64(),
            operations: stats.ops.iter().map(|(op, s)| OpRow::new(*op, s)).collect(),
            verification: stats.verification.clone(),
            failures: stats.failures(),
        }
    }

    /// The summary as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

/// Microseconds as milliseconds with two decimals, the unit people read.
fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} against {}: {} session{}, {:.2} s; latency in ms",
            self.mode,
            self.front,
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.elapsed_secs
        )?;
        let header = [
            "operation",
            "count",
            "ok",
            "errors",
            "retries",
            "req/s",
            "mean",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
        ];
        let rows: Vec<[String; 12]> = self
            .operations
            .iter()
            .map(|r| {
                let l = r.latency_us;
                let errors = if r.errors.is_empty() {
                    "-".to_string()
                } else {
                    r.errors.iter().fold(String::new(), |mut s, (kind, n)| {
                        let sep = if s.is_empty() { "" } else { " " };
                        let _ = write!(s, "{sep}{kind}:{n}");
                        s
                    })
                };
                [
                    r.op.to_string(),
                    r.count.to_string(),
                    r.ok.to_string(),
                    errors,
                    r.retries.to_string(),
                    format!("{:.1}", r.throughput),
                    ms(l.mean),
                    ms(l.p50 as f64),
                    ms(l.p90 as f64),
                    ms(l.p99 as f64),
                    ms(l.p999 as f64),
                    ms(l.max as f64),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[&str]| -> String {
            let mut out = format!("{:<w$}", cells[0], w = widths[0]);
            for (cell, w) in cells.iter().zip(&widths).skip(1) {
                let _ = write!(out, "  {cell:>w$}");
            }
            out
        };
        writeln!(f, "{}", line(&header))?;
        for row in &rows {
            writeln!(f, "{}", line(&row.each_ref().map(String::as_str)))?;
        }
        if let Some(v) = &self.verification {
            writeln!(
                f,
                "orders read back: {}, mismatches: {}",
                v.checked, v.mismatches
            )?;
            for m in &v.first {
                writeln!(
                    f,
                    "  order {}: bought {}, found {}",
                    m.number, m.expected, m.found
                )?;
            }
        }
        if self.failures > 0 {
            writeln!(
                f,
                "FAILED: {} request(s) failed or orders did not match",
                self.failures
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::client::session::ErrorKind;
    use crate::client::stats::Mismatch;

    /// 1000 queries of 1..=1000 µs over about 2 s, three buys, one bad order.
    fn sample() -> Stats {
        let t0 = Instant::now();
        let mut stats = Stats::default();
        for i in 1..=1000 {
            let began = t0 + Duration::from_millis(2 * (i - 1));
            stats
                .op(Op::Query)
                .record(began, began + Duration::from_micros(i), Ok(()));
        }
        let buy = stats.op(Op::Buy);
        buy.record(t0, t0 + Duration::from_millis(2), Ok(()));
        buy.record(
            t0,
            t0 + Duration::from_millis(1),
            Err(ErrorKind::Status(409)),
        );
        buy.record(t0, t0 + Duration::from_secs(10), Err(ErrorKind::Timeout));
        stats.op(Op::Buy).retries = 3;
        let mut v = Verification::default();
        v.record(None);
        v.record(Some(Mismatch {
            number: 7,
            expected: "Tux x 1".into(),
            found: "404 order not found".into(),
        }));
        stats.verification = Some(v);
        stats
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let report = Report::new(
            "random",
            "http://127.0.0.1:6060",
            2,
            Duration::from_secs(2),
            &sample(),
        );
        let q = &report.operations[0];
        assert_eq!((q.op, q.count, q.ok), (Op::Query, 1000, 1000));
        // 1000 queries between t0 and 1.999 s.
        assert!(
            (q.throughput - 1000.0 / 1.999).abs() < 1e-6,
            "{}",
            q.throughput
        );
        let l = q.latency_us;
        assert_eq!(
            (l.p50, l.p90, l.p99, l.p999, l.max),
            (500, 900, 990, 999, 1000)
        );
        assert!((l.mean - 500.5).abs() < 1.0);
        // Empty histograms give zeros, not a panic.
        assert_eq!(Latency::of(&OpStats::default().latency), Latency::default());
    }

    #[test]
    fn json_has_the_documented_shape() {
        let report = Report::new(
            "random",
            "http://127.0.0.1:6060",
            2,
            Duration::from_secs(2),
            &sample(),
        );
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["mode"], "random");
        assert_eq!(json["clients"], 2);
        assert_eq!(json["elapsed_secs"], 2.0);
        // Timeout and mismatch fail the run; 409 is an answer.
        assert_eq!(json["failures"], 2);
        let buy = &json["operations"][1];
        assert_eq!(buy["op"], "buy");
        assert_eq!(buy["count"], 3);
        assert_eq!(buy["ok"], 1);
        assert_eq!(buy["retries"], 3);
        assert_eq!(buy["errors"], serde_json::json!({"409": 1, "timeout": 1}));
        let mut keys: Vec<&str> = buy["latency_us"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["max", "mean", "p50", "p90", "p99", "p999"]);
        assert_eq!(json["verification"]["mismatches"], 1);
        assert_eq!(json["verification"]["first"][0]["number"], 7);
    }

    #[test]
    fn the_table_lines_up() {
        let text =
            Report::new("random", "http://x:1", 1, Duration::from_secs(1), &sample()).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "random against http://x:1: 1 session, 1.00 s; latency in ms"
        );
        assert!(lines[1].starts_with("operation"));
        assert!(lines[3].contains("409:1 timeout:1"), "{text}");
        assert_eq!(lines[1].len(), lines[2].len());
        assert!(text.contains("order 7: bought Tux x 1, found 404 order not found"));
        assert!(text.ends_with("FAILED: 2 request(s) failed or orders did not match\n"));
    }
}
