//! The load runner: N sessions on N threads, each its own keep-alive connection.
//!
//! With `--rate` the load is open-loop: request k of session i has an intended
//! start fixed in advance ([`Schedule`]), and its latency counts from that moment,
//! so when the server stalls, the requests that queue behind the stall show it
//! (no coordinated omission). Without a rate, each session sends its next request
//! as soon as the last one answers, as the lab's client did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::args::{Stop, MAX_DURATION_SECS};
use super::session::{Failure, Session};
use super::stats::{Mismatch, Op, Stats, Verification};
use crate::peer::PeerAddr;
use crate::wire::ProductView;

/// What each session does, round after round.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Look up one toy.
    Query { name: String },
    /// Buy one toy, `quantity` units per order.
    Buy { name: String, quantity: u64 },
    /// Look up a random toy among `names`; if in stock, buy it with probability `p`.
    Random {
        names: Vec<String>,
        p: f64,
        quantity: u64,
    },
}

impl Mode {
    /// The mode's name in the summary.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Query { .. } => "query",
            Mode::Buy { .. } => "buy",
            Mode::Random { .. } => "random",
        }
    }
}

/// One run: what to do, how many sessions, when to stop, how fast.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What every round does.
    pub mode: Mode,
    /// Concurrent sessions.
    pub clients: usize,
    /// When each session stops starting rounds.
    pub stop: Stop,
    /// Total rounds per second over all sessions; `None` is closed-loop.
    pub rate: Option<f64>,
    /// Extra attempts for a buy that failed transiently.
    pub retries: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Print one line per reply (one session only, so lines never interleave).
    pub echo: bool,
    /// Show a progress bar on the terminal.
    pub progress: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Every session's measurements, merged.
    pub stats: Stats,
    /// Wall time of the whole run, read-back included.
    pub elapsed: Duration,
}

/// When each request of one session is due, under an open-loop rate.
///
/// The sessions interleave: with C sessions at R requests/s in total, session i
/// sends its k-th request at `(i + k·C) / R` seconds after the start, so the
/// merged stream is evenly spaced at 1/R.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Seconds between two requests of this session: C / R.
    period: f64,
    /// This session's first request: i / R.
    offset: f64,
}

impl Schedule {
    /// The schedule of session `index` of `clients` sharing `rate` requests/s.
    pub fn new(rate: f64, clients: usize, index: usize) -> Schedule {
        Schedule {
            period: clients as f64 / rate,
            offset: index as f64 / rate,
        }
    }

    /// When request `k` (from 0) is due, after the run's start.
    pub fn due(&self, k: u64) -> Duration {
        // Beyond what a Duration holds is "never", which no run allows.
        Duration::try_from_secs_f64(self.offset + self.period * k as f64).unwrap_or(Duration::MAX)
    }
}

impl Stop {
    /// Whether round `k`, starting `at` after the run's start, is still in the run.
    /// No run starts anything past [`MAX_DURATION_SECS`], however many requests
    /// it was asked for, so that a huge count or a tiny rate still ends.
    fn allows(&self, k: u64, at: Duration) -> bool {
        let limit = match *self {
            Stop::Requests(n) if k >= n => return false,
            Stop::Requests(_) => Duration::from_secs_f64(MAX_DURATION_SECS),
            Stop::After(limit) => limit,
        };
        at < limit
    }
}

/// How long to wait before retry `attempt` (from 0): exponential from 50 ms,
/// capped at 2 s, with "equal jitter" (half fixed, half random, `unit` in [0, 1))
/// so that sessions that failed together do not retry together.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    let ceiling = (50u64 << attempt.min(10)).min(2_000) as f64;
    Duration::from_secs_f64((ceiling / 2.0) * (1.0 + unit) / 1000.0)
}

/// Counters the progress bar reads while sessions run; atomics, never a lock.
#[derive(Default)]
struct Progress {
    /// Rounds done over all sessions.
    rounds: AtomicU64,
    /// Operations that failed as a service failure.
    failed: AtomicU64,
}

/// Runs `plan` against `front` and returns the merged measurements.
pub fn run(front: &PeerAddr, plan: &Plan) -> Outcome {
    let progress = Progress::default();
    let bar = plan.progress.then(|| progress_bar(plan));
    let start = Instant::now();
    let (stats, ended) = thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.clients)
            .map(|index| {
                let worker = Worker::new(front, plan, &progress);
                thread::Builder::new()
                    .name(format!("session-{index}"))
                    .spawn_scoped(scope, move || worker.run(index, start))
                    .expect("spawning a session thread")
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            if let Some(bar) = &bar {
                let done = progress.rounds.load(Ordering::Relaxed);
                bar.set_position(match plan.stop {
                    Stop::Requests(_) => done,
                    Stop::After(_) => start.elapsed().as_millis() as u64,
                });
                bar.set_message(format!(
                    "{done} rounds, {} failed",
                    progress.failed.load(Ordering::Relaxed)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        handles
            .into_iter()
            .fold((Stats::default(), start), |(mut all, last), h| {
                let (stats, ended) = h
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                all.merge(&stats);
                (all, last.max(ended))
            })
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // From the sessions' own ends, not from this thread's coarse polling.
    Outcome {
        stats,
        elapsed: ended - start,
    }
}

/// A bar in rounds for a fixed count, in milliseconds for a fixed duration.
fn progress_bar(plan: &Plan) -> ProgressBar {
    let (len, template) = match plan.stop {
        Stop::Requests(n) => (
            n * plan.clients as u64,
            "{bar:40} {percent:>3}% {elapsed} {msg}",
        ),
        Stop::After(d) => (d.as_millis() as u64, "{bar:40} {elapsed}/{len_s} {msg}"),
    };
    let template = template.replace("{len_s}", &format!("{}s", (len as f64 / 1000.0).round()));
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(&template).expect("the template is valid"));
    bar
}

/// An order this session placed, to read back at the end.
struct Placed {
    /// The number the front-end returned.
    number: u64,
    /// The toy.
    name: String,
    /// Units.
    quantity: u64,
}

/// One session's state: its connection, its random numbers and what it measured.
struct Worker<'a> {
    /// The keep-alive connection.
    session: Session,
    /// The run it belongs to.
    plan: &'a Plan,
    /// Counters for the progress bar.
    progress: &'a Progress,
    /// Picks toys, buy decisions, idempotency keys and backoff jitter.
    rng: fastrand::Rng,
    /// This session's measurements, merged by the runner at the end.
    stats: Stats,
    /// Orders placed in random mode, read back at the end.
    placed: Vec<Placed>,
}

impl<'a> Worker<'a> {
    fn new(front: &PeerAddr, plan: &'a Plan, progress: &'a Progress) -> Worker<'a> {
        Worker {
            session: Session::new(front, plan.timeout),
            plan,
            progress,
            rng: fastrand::Rng::new(),
            stats: Stats::default(),
            placed: Vec::new(),
        }
    }

    /// Runs rounds until the plan's stop, then reads back the orders placed;
    /// returns what it measured and when it ended.
    fn run(mut self, index: usize, start: Instant) -> (Stats, Instant) {
        let schedule = self
            .plan
            .rate
            .map(|rate| Schedule::new(rate, self.plan.clients, index));
        for k in 0.. {
            let due = schedule.map(|s| s.due(k));
            if !self
                .plan
                .stop
                .allows(k, due.unwrap_or_else(|| start.elapsed()))
            {
                break;
            }
            let began = match due {
                Some(due) => {
                    let at = start + due;
                    thread::sleep(at.saturating_duration_since(Instant::now()));
                    at
                }
                None => Instant::now(),
            };
            self.round(began);
            self.progress.rounds.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(self.plan.mode, Mode::Random { .. }) {
            self.read_back();
        }
        (self.stats, Instant::now())
    }

    fn round(&mut self, began: Instant) {
        match &self.plan.mode {
            Mode::Query { name } => {
                self.query(name, began);
            }
            Mode::Buy { name, quantity } => {
                self.buy(name, *quantity, began);
            }
            Mode::Random { names, p, quantity } => {
                let name = &names[self.rng.usize(..names.len())];
                let Some(toy) = self.query(name, began) else {
                    return;
                };
                if toy.quantity < *quantity {
                    self.stats.sold_out += 1;
                } else if self.rng.f64() < *p {
                    // The buy follows the query at once: it is timed from its own start.
                    if let Some(number) = self.buy(name, *quantity, Instant::now()) {
                        self.placed.push(Placed {
                            number,
                            name: name.clone(),
                            quantity: *quantity,
                        });
                    }
                }
            }
        }
    }

    /// Looks `name` up, timed from `began`.
    fn query(&mut self, name: &str, began: Instant) -> Option<ProductView> {
        let result = self.session.query(name);
        let latency = self.record(Op::Query, began, &result);
        self.echo(latency, || match &result {
            Ok(toy) => format!(
                "query {name}: price {}, quantity {}",
                toy.price, toy.quantity
            ),
            Err(failure) => format!("query {name}: {failure}"),
        });
        result.ok()
    }

    /// Buys `quantity` of `name`, retrying transient failures with one idempotency
    /// key, timed from `began` to the last attempt's end. Returns the order number.
    fn buy(&mut self, name: &str, quantity: u64, began: Instant) -> Option<u64> {
        let key = format!("{:032x}", self.rng.u128(..));
        let mut attempt = 0;
        let result = loop {
            match self.session.buy(name, quantity, &key) {
                Err(failure) if failure.kind.is_transient() && attempt < self.plan.retries => {
                    thread::sleep(backoff(attempt, self.rng.f64()));
                    attempt += 1;
                }
                result => break result,
            }
        };
        self.stats.op(Op::Buy).retries += u64::from(attempt);
        let latency = self.record(Op::Buy, began, &result);
        self.echo(latency, || {
            let retried = match attempt {
                0 => String::new(),
                n => format!(" after {n} retr{}", if n == 1 { "y" } else { "ies" }),
            };
            match &result {
                Ok(placed) => format!(
                    "buy {name} x {quantity}: order {}{retried}",
                    placed.order_number
                ),
                Err(failure) => format!("buy {name} x {quantity}: {failure}{retried}"),
            }
        });
        result.ok().map(|placed| placed.order_number)
    }

    /// Reads back every order this session placed and notes those that differ.
    fn read_back(&mut self) {
        let mut verification = Verification::default();
        for placed in std::mem::take(&mut self.placed) {
            let began = Instant::now();
            let result = self.session.order(placed.number);
            let latency = self.record(Op::Lookup, began, &result);
            let expected = format!("{} x {}", placed.name, placed.quantity);
            let found = match &result {
                Ok(order) if order.name == placed.name && order.quantity == placed.quantity => None,
                Ok(order) => Some(format!("{} x {}", order.name, order.quantity)),
                Err(failure) => Some(failure.to_string()),
            };
            self.echo(latency, || match &found {
                None => format!("order {}: {expected}, matches", placed.number),
                Some(found) => format!("order {}: bought {expected}, found {found}", placed.number),
            });
            verification.record(found.map(|found| Mismatch {
                number: placed.number,
                expected,
                found,
            }));
        }
        self.stats.verification = Some(verification);
    }

    /// Counts one operation that ends now and returns its latency.
    fn record<T>(&mut self, op: Op, began: Instant, result: &Result<T, Failure>) -> Duration {
        let outcome = result.as_ref().map(|_| ()).map_err(|failure| failure.kind);
        if outcome.is_err_and(|kind| kind.is_failure()) {
            self.progress.failed.fetch_add(1, Ordering::Relaxed);
        }
        let ended = Instant::now();
        self.stats.op(op).record(began, ended, outcome);
        ended.saturating_duration_since(began)
    }

    /// Prints one reply line with its latency, when the plan asks for replies.
    fn echo(&self, latency: Duration, line: impl FnOnce() -> String) {
        if self.plan.echo {
            println!("{}  ({:.2} ms)", line(), latency.as_secs_f64() * 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn sessions_interleave_into_one_even_stream() {
        // 4 sessions at 100/s in total: every 10 ms one of them is due.
        let mut all: Vec<f64> = (0..4)
            .flat_map(|i| (0..25).map(move |k| secs(Schedule::new(100.0, 4, i).due(k))))
            .collect();
        all.sort_by(f64::total_cmp);
        for (n, t) in all.iter().enumerate() {
            assert!((t - n as f64 * 0.01).abs() < 1e-9, "request {n} due at {t}");
        }
        // Session 1's third request: (1 + 2·4) / 100 s.
        assert!((secs(Schedule::new(100.0, 4, 1).due(2)) - 0.09).abs() < 1e-9);
    }

    #[test]
    fn a_timed_run_starts_nothing_past_its_end() {
        let stop = Stop::After(Duration::from_secs(1));
        let schedule = Schedule::new(10.0, 1, 0);
        let started = (0..100)
            .take_while(|&k| stop.allows(k, schedule.due(k)))
            .count();
        assert_eq!(started, 10);
        assert!(Stop::Requests(3).allows(2, Duration::from_secs(10)));
        assert!(!Stop::Requests(3).allows(3, Duration::ZERO));
        // A count that would take a year at this rate still stops after the cap.
        let slow = Schedule::new(1e-6, 1, 0);
        assert!(!Stop::Requests(u64::MAX).allows(1, slow.due(1)));
        assert_eq!(Schedule::new(1e-300, 1, 0).due(u64::MAX), Duration::MAX);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let ms = |attempt, unit| backoff(attempt, unit).as_secs_f64() * 1000.0;
        assert!((ms(0, 0.0) - 25.0).abs() < 1e-6);
        assert!((ms(0, 0.999) - 49.975).abs() < 1e-6);
        assert!((ms(1, 0.0) - 50.0).abs() < 1e-6);
        assert!((ms(3, 0.5) - 300.0).abs() < 1e-6);
        // Capped at 2 s however many attempts, and no overflow.
        assert!((ms(30, 1.0) - 2000.0).abs() < 1e-6);
    }
}
