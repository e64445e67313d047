//! The command line: modes, load shape and evaluation sweep.
//!
//! Every value is checked here, at parse time, so the runner never sees a
//! probability of 1.5 or a rate of zero and `--help` is the one place that lists
//! what can be set.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::peer::PeerAddr;

/// The most sessions one run may open: far above what 2 cores can feed, low enough
/// that a typo (`--clients 10000`) does not exhaust file descriptors.
pub const MAX_CLIENTS: usize = 1024;
/// The longest run allowed, so that no load loop goes on unbounded: `--duration`
/// at most, and the time after which any run stops starting requests.
pub const MAX_DURATION_SECS: f64 = 3600.0;

/// The toy store's client: look toys up, buy them, or run the lab's random
/// session, from one keep-alive connection or many at once, and measure.
///
/// Run with no arguments on a terminal, it asks what to do, like the lab's client.
#[derive(Debug, Parser)]
#[command(name = "client", version, propagate_version = true)]
pub struct Cli {
    /// The front-end: `host`, `host:port` or `http://host:port` (a bare host means port 6060).
    #[arg(long, env = "FRONT", value_name = "ADDR", default_value = "127.0.0.1:6060", value_parser = parse_front, global = true)]
    pub front: PeerAddr,

    /// Give up on one request after this many seconds (connect, send and read).
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = parse_timeout, global = true)]
    pub timeout: f64,

    /// Print neither the replies nor the progress bar, only the summary.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The client's modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Look a toy up again and again: `GET /products/{name}`.
    Query {
        /// The toy's name, e.g. Tux.
        name: String,
        /// How many times, for how long, by how many sessions.
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Buy a toy again and again: `POST /orders`.
    Buy {
        /// The toy's name, e.g. Tux.
        name: String,
        /// Units per order.
        #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        quantity: u64,
        /// How many times, for how long, by how many sessions.
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The lab's session: look up random toys, buy some, check the orders.
    ///
    /// Each round looks up a random toy from the catalog and, if it is in stock,
    /// buys it with probability p. At the end every order the session placed is
    /// read back with `GET /orders/N` and compared with what was bought.
    Random {
        /// Probability of buying a toy that is in stock.
        #[arg(long, env = "p", default_value_t = 0.5, value_parser = parse_probability)]
        p: f64,
        /// Units per order.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        quantity: u64,
        /// How many rounds, for how long, by how many sessions.
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The lab's evaluation: sweep buy probabilities (and client counts), cache on and off.
    ///
    /// Runs random mode at every client count and every p against --front and,
    /// with --uncached-front, against a second front-end on the same backends
    /// started with --cache-size 0, one after the other at each point. Writes
    /// DIR/report.md (setup, cache on vs off, hit ratios, tables) with SVG plots:
    /// query and buy latency vs p (median and p99), the hit ratio, which products were cached over
    /// time (GET /cache every 100 ms), and with several client counts latency and
    /// throughput vs clients. Before each run every toy is restocked, which needs
    /// the admin token (ADMIN_TOKEN), unless --no-restock.
    ///
    /// `toystore --uncached-front-port 6061` starts the stack with both front-ends;
    /// then `client eval --uncached-front 127.0.0.1:6061 --out eval/` is the lab's Part 4.
    Eval(EvalArgs),
}

/// How much load: sessions, when to stop, how fast.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Concurrent sessions, each a thread with its own keep-alive connection.
    #[arg(long, short, value_name = "N", default_value_t = 1, value_parser = parse_clients)]
    pub clients: usize,

    /// Requests per session (rounds in random mode). Default 1, or unbounded with
    /// --duration. Either way no run starts a request past one hour. `--times` is the
    /// lab's word for it.
    #[arg(long, short = 'r', visible_alias = "times", value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Run for this many seconds instead of a fixed number of requests.
    #[arg(long, short, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,

    /// Total requests per second over all sessions (rounds in random mode).
    /// Open loop: each request has an intended start and its latency counts from
    /// there, so a slow server cannot hide its queueing (coordinated omission).
    /// Without it every session sends its next request as soon as the last answers.
    #[arg(long, value_name = "PER_SEC", value_parser = parse_positive)]
    pub rate: Option<f64>,

    /// Retries of a buy that failed transiently (connection refused or reset,
    /// timeout, 503); each retry waits a jittered exponential backoff and resends
    /// the same Idempotency-Key, so a retry never buys twice.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// Print the summary as one JSON object instead of a table (implies no replies
    /// and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many requests (rounds) per session.
    Requests(u64),
    /// After this long: no request is started past it.
    After(Duration),
}

impl LoadArgs {
    /// When to stop: `--duration`, else `--requests` (default 1).
    pub fn stop(&self) -> Stop {
        match self.duration {
            Some(secs) => Stop::After(Duration::from_secs_f64(secs)),
            None => Stop::Requests(self.requests.unwrap_or(1)),
        }
    }
}

/// The evaluation sweep.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Where report.md and the SVG plots go (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Buy probabilities to try, comma-separated.
    #[arg(long, value_name = "P,...", value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8", value_parser = parse_probability)]
    pub ps: Vec<f64>,

    /// Client counts to try, comma-separated (the lab's Part 4 runs 5).
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "5", value_parser = parse_clients)]
    pub clients_list: Vec<usize>,

    /// A second front-end on the same catalog and order service, started with
    /// `--cache-size 0`: each point then runs on --front (cache on) and on this one
    /// (cache off), and the report sets them side by side. Both front-ends' /health
    /// is read first, and a cached --front with capacity 0, or an uncached one
    /// that caches, is refused.
    #[arg(long, value_name = "ADDR", env = "UNCACHED_FRONT", value_parser = parse_front)]
    pub uncached_front: Option<PeerAddr>,

    /// Rounds per session at each point of the sweep.
    #[arg(long, short = 'r', visible_alias = "times", value_name = "N", default_value_t = 200, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,

    /// Seconds per point of the sweep instead of a number of rounds.
    #[arg(long, short, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,

    /// Units per order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub quantity: u64,

    /// The stock every toy is set to before each point. By default each point
    /// gets enough for every one of its rounds to buy (clients × rounds × units;
    /// with --duration, 1,000,000,000), so that no point runs the store dry.
    #[arg(long, value_name = "QUANTITY", requires = "admin_token")]
    pub restock: Option<u64>,

    /// Measure the store as it is: no restock between points (no admin token
    /// needed). Toys that sell out stop the buys; the report says which points
    /// have no buy latency and why.
    #[arg(long, conflicts_with = "restock")]
    pub no_restock: bool,

    /// The admin token the stack was started with (`ADMIN_TOKEN=... cargo run
    /// --release`, or `toystore --admin-token ...`): the restock before each point
    /// is `PUT /products/{name}` through the front-end, an admin update.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

impl EvalArgs {
    /// When each point of the sweep stops.
    pub fn stop(&self) -> Stop {
        match self.duration {
            Some(secs) => Stop::After(Duration::from_secs_f64(secs)),
            None => Stop::Requests(self.requests),
        }
    }
}

/// `--front`: the three accepted forms, a bare host on the front-end's port.
pub fn parse_front(text: &str) -> Result<PeerAddr, String> {
    PeerAddr::parse(text, crate::FRONT_PORT).map_err(|e| e.to_string())
}

/// A probability: a number in [0, 1].
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let p = parse_number(text)?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "{p} is not a probability: expected a number from 0 to 1"
        ))
    }
}

/// A session count from 1 to [`MAX_CLIENTS`].
pub fn parse_clients(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if (1..=MAX_CLIENTS).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} clients: expected 1 to {MAX_CLIENTS}"))
    }
}

/// A rate: a finite number above zero.
fn parse_positive(text: &str) -> Result<f64, String> {
    let x = parse_number(text)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(format!("{x}: expected a number above 0"))
    }
}

/// A run's length in seconds, bounded by [`MAX_DURATION_SECS`].
fn parse_duration(text: &str) -> Result<f64, String> {
    let secs = parse_positive(text)?;
    if secs <= MAX_DURATION_SECS {
        Ok(secs)
    } else {
        Err(format!("{secs} s: at most {MAX_DURATION_SECS} s"))
    }
}

/// A request timeout in seconds: above zero, at most ten minutes.
fn parse_timeout(text: &str) -> Result<f64, String> {
    let secs = parse_positive(text)?;
    if secs <= 600.0 {
        Ok(secs)
    } else {
        Err(format!("{secs} s: at most 600 s"))
    }
}

fn parse_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("{text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
    }

    #[test]
    fn the_lab_modes_parse_with_their_defaults() {
        let cli = parse(&["query", "Tux"]).unwrap();
        assert_eq!(cli.front.url(), "http://127.0.0.1:6060");
        let Command::Query { name, load } = cli.command else {
            panic!("not query")
        };
        assert_eq!(name, "Tux");
        assert_eq!(
            (load.clients, load.stop(), load.rate, load.retries),
            (1, Stop::Requests(1), None, 3)
        );

        let cli = parse(&[
            "buy",
            "Whale",
            "-n",
            "3",
            "--requests",
            "7",
            "--front",
            "localhost:9",
        ])
        .unwrap();
        assert_eq!(cli.front.url(), "http://localhost:9");
        let Command::Buy { quantity, load, .. } = cli.command else {
            panic!("not buy")
        };
        assert_eq!((quantity, load.stop()), (3, Stop::Requests(7)));

        let cli = parse(&[
            "--front",
            "http://127.0.0.1:1",
            "random",
            "--p",
            "0.2",
            "-c",
            "4",
            "-d",
            "1.5",
        ])
        .unwrap();
        let Command::Random { p, quantity, load } = cli.command else {
            panic!("not random")
        };
        assert_eq!((p, quantity, load.clients), (0.2, 1, 4));
        assert_eq!(load.stop(), Stop::After(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_values_are_refused_at_parse_time() {
        let bad: &[&[&str]] = &[
            &["random", "--p", "1.5"],
            &["random", "--p", "-0.1"],
            &["random", "--p", "NaN"],
            &["buy", "Tux", "--quantity", "0"],
            &["query", "Tux", "--clients", "0"],
            &["query", "Tux", "--clients", "5000"],
            &["query", "Tux", "--rate", "0"],
            &["query", "Tux", "--rate", "inf"],
            &["query", "Tux", "--requests", "0"],
            &["query", "Tux", "--requests", "3", "--duration", "2"],
            &["query", "Tux", "--duration", "100000"],
            &["query", "Tux", "--front", "https://x:1"],
            &["query", "Tux", "--timeout", "0"],
            &["query"],
            &["eval"],
            &["eval", "--out", "x", "--ps", "0,2"],
            &["eval", "--out", "x", "--restock", "100"],
            &["eval", "--out", "x", "--uncached-front", "https://x:1"],
            &["eval", "--out", "x", "--uncached-front", ""],
            &["eval", "--out", "x", "--clients-list", "0"],
        ];
        for args in bad {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn times_is_the_labs_word_for_requests() {
        for mode in [&["query", "Tux"][..], &["buy", "Tux"], &["random"]] {
            let args: Vec<&str> = mode.iter().copied().chain(["--times", "7"]).collect();
            let (Command::Query { load, .. }
            | Command::Buy { load, .. }
            | Command::Random { load, .. }) = parse(&args).unwrap().command
            else {
                panic!("{args:?}: not a load mode")
            };
            assert_eq!(load.stop(), Stop::Requests(7), "{args:?}");
        }
        let Command::Eval(eval) = parse(&["eval", "--out", "x", "--times", "9"])
            .unwrap()
            .command
        else {
            panic!("not eval")
        };
        assert_eq!(eval.stop(), Stop::Requests(9));
        // An alias, not a second setting: the two together are one flag given twice.
        assert!(parse(&["query", "Tux", "--times", "2", "--requests", "3"]).is_err());
    }

    #[test]
    fn eval_lists_are_comma_separated() {
        let cli = parse(&[
            "eval",
            "--out",
            "/tmp/x",
            "--ps",
            "0,0.5",
            "--clients-list",
            "1,3",
        ])
        .unwrap();
        let Command::Eval(eval) = cli.command else {
            panic!("not eval")
        };
        assert_eq!(eval.stop(), Stop::Requests(200));
        assert_eq!((eval.ps, eval.clients_list), (vec![0.0, 0.5], vec![1, 3]));
    }

    #[test]
    fn eval_defaults_to_the_labs_part_4_sweep() {
        let cli = parse(&["eval", "--out", "x", "--uncached-front", "localhost:6061"]).unwrap();
        let Command::Eval(eval) = cli.command else {
            panic!("not eval")
        };
        assert_eq!(eval.clients_list, vec![5]);
        assert_eq!(eval.ps, vec![0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(
            eval.uncached_front.map(|f| f.url().to_string()),
            Some("http://localhost:6061".to_string())
        );
    }
}
