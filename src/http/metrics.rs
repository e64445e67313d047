//! Counters and gauges of one server, rendered in Prometheus text format at `GET /metrics`.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets: 50 µs to 10 s.
const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Per-route counters are split into shards picked by thread, so that workers recording
/// at the same time rarely touch the same lock; a scrape merges them.
const SHARDS: usize = 16;

/// Requests and latency of one route.
#[derive(Default, Clone)]
struct RouteStats {
    /// Answered requests by (method, status).
    by_status: HashMap<(&'static str, u16), u64>,
    /// Cumulative-per-bucket counts are derived at render time; these are per bucket (+Inf last).
    buckets: [u64; BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

/// The server's metrics. Gauges are plain atomics; per-route stats live in shards.
#[derive(Default)]
pub struct Metrics {
    /// Connections accepted and not yet closed.
    pub open_connections: AtomicUsize,
    /// Requests inside a handler right now.
    pub in_flight: AtomicUsize,
    /// Workers serving a connection right now.
    pub busy_workers: AtomicUsize,
    /// Connections refused because the server was saturated or at its connection limit.
    pub rejected_connections: AtomicU64,
    /// Requests that could not be parsed or broke a limit.
    pub protocol_errors: AtomicU64,
    shards: [Mutex<HashMap<&'static str, RouteStats>>; SHARDS],
}

/// Gauges the server samples at scrape time (they live elsewhere).
pub struct Sampled {
    /// Worker threads.
    pub workers: usize,
    /// Connections waiting for a worker.
    pub queued: usize,
    /// Idle connections parked in the reactor.
    pub parked: usize,
}

/// The method as a metric label: one of a fixed set, so that neither a request costs an
/// allocation nor a client inventing methods (`FOO1`, `FOO2`, ...) grows the table.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("OTHER")
}

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: &'static str, method: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        let mut shard = self.shards[SHARD.with(|s| *s)].lock();
        let stats = shard.entry(route).or_default();
        *stats
            .by_status
            .entry((method_label(method), status))
            .or_default() += 1;
        stats.buckets[bucket] += 1;
        stats.sum_seconds += seconds;
        stats.count += 1;
    }

    /// Renders everything in Prometheus text format, `extra` appended as is.
    pub fn render(&self, service: &str, sampled: Sampled, extra: &str) -> String {
        let mut merged: HashMap<&'static str, RouteStats> = HashMap::new();
        for shard in &self.shards {
            for (route, stats) in shard.lock().iter() {
                let into = merged.entry(route).or_default();
                for (key, count) in &stats.by_status {
                    *into.by_status.entry(*key).or_default() += count;
                }
                for (i, n) in stats.buckets.iter().enumerate() {
                    into.buckets[i] += n;
                }
                into.sum_seconds += stats.sum_seconds;
                into.count += stats.count;
            }
        }
        let mut routes: Vec<_> = merged.into_iter().collect();
        routes.sort_by_key(|(route, _)| *route);

        let mut out = String::new();
        let s = service;
        out.push_str(
            "# HELP toystore_http_requests_total Requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE toystore_http_requests_total counter\n");
        for (route, stats) in &routes {
            let mut keys: Vec<_> = stats.by_status.iter().collect();
            keys.sort();
            for ((method, status), count) in keys {
                let _ = writeln!(out, "toystore_http_requests_total{{service=\"{s}\",route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {count}");
            }
        }
        out.push_str("# HELP toystore_http_request_duration_seconds Time from a complete request to its response written.\n");
        out.push_str("# TYPE toystore_http_request_duration_seconds histogram\n");
        for (route, stats) in &routes {
            let mut cumulative = 0;
            for (i, n) in stats.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                let _ = writeln!(out, "toystore_http_request_duration_seconds_bucket{{service=\"{s}\",route=\"{route}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "toystore_http_request_duration_seconds_sum{{service=\"{s}\",route=\"{route}\"}} {}", stats.sum_seconds);
            let _ = writeln!(out, "toystore_http_request_duration_seconds_count{{service=\"{s}\",route=\"{route}\"}} {}", stats.count);
        }
        let gauges: [(&str, &str, &str, u64); 8] = [
            (
                "toystore_http_in_flight_requests",
                "gauge",
                "Requests inside a handler.",
                self.in_flight.load(Ordering::Relaxed) as u64,
            ),
            (
                "toystore_http_open_connections",
                "gauge",
                "Connections open.",
                self.open_connections.load(Ordering::Relaxed) as u64,
            ),
            (
                "toystore_http_idle_connections",
                "gauge",
                "Idle connections parked in the reactor.",
                sampled.parked as u64,
            ),
            (
                "toystore_http_queued_connections",
                "gauge",
                "Connections ready and waiting for a worker.",
                sampled.queued as u64,
            ),
            (
                "toystore_http_busy_workers",
                "gauge",
                "Workers serving a connection.",
                self.busy_workers.load(Ordering::Relaxed) as u64,
            ),
            (
                "toystore_http_workers",
                "gauge",
                "Worker threads in the pool.",
                sampled.workers as u64,
            ),
            (
                "toystore_http_rejected_connections_total",
                "counter",
                "Connections refused: saturated or at the connection limit.",
                self.rejected_connections.load(Ordering::Relaxed),
            ),
            (
                "toystore_http_protocol_errors_total",
                "counter",
                "Requests refused as malformed or over a limit.",
                self.protocol_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{service=\"{s}\"}} {value}"
            );
        }
        out.push_str(extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record("/products/{name}", "GET", 200, Duration::from_micros(70));
        metrics.record("/products/{name}", "GET", 200, Duration::from_millis(2));
        metrics.record("/products/{name}", "GET", 404, Duration::from_secs(20));
        metrics.record("not-found", "FOO1", 404, Duration::from_micros(1));
        metrics.record("not-found", "FOO2", 404, Duration::from_micros(1));
        let text = metrics.render(
            "catalog",
            Sampled {
                workers: 4,
                queued: 1,
                parked: 2,
            },
            "extra 1\n",
        );
        for line in [
            "toystore_http_requests_total{service=\"catalog\",route=\"/products/{name}\",method=\"GET\",status=\"200\"} 2",
            "toystore_http_requests_total{service=\"catalog\",route=\"/products/{name}\",method=\"GET\",status=\"404\"} 1",
            "toystore_http_request_duration_seconds_bucket{service=\"catalog\",route=\"/products/{name}\",le=\"0.0001\"} 1",
            "toystore_http_request_duration_seconds_bucket{service=\"catalog\",route=\"/products/{name}\",le=\"0.0025\"} 2",
            "toystore_http_request_duration_seconds_bucket{service=\"catalog\",route=\"/products/{name}\",le=\"+Inf\"} 3",
            "toystore_http_request_duration_seconds_count{service=\"catalog\",route=\"/products/{name}\"} 3",
            "toystore_http_requests_total{service=\"catalog\",route=\"not-found\",method=\"OTHER\",status=\"404\"} 2",
            "toystore_http_workers{service=\"catalog\"} 4",
            "toystore_http_idle_connections{service=\"catalog\"} 2",
            "extra 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
