//! The lab's evaluation: random mode at every client count and buy probability,
//! written up as `report.md` with four SVG plots.
//!
//! Every point runs closed-loop, as the lab's clients did, so what varies between
//! points is only the number of sessions and how often they buy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::args::{EvalArgs, Stop};
use super::load::{self, Mode, Plan};
use super::plot::{self, Chart, Series};
use super::report::Latency;
use super::session::Session;
use super::stats::{Op, OpStats, Stats};
use super::{toy_names, ClientError};
use crate::peer::PeerAddr;

/// Buy retries during the sweep, as the load command's default.
const RETRIES: u32 = 3;

/// One (clients, p) point of the sweep.
struct Point {
    /// Concurrent sessions.
    clients: usize,
    /// Buy probability.
    p: f64,
    /// What the run measured.
    stats: Stats,
}

impl Point {
    fn latency(&self, op: Op) -> Option<Latency> {
        self.stats
            .ops
            .get(&op)
            .filter(|s| !s.latency.is_empty())
            .map(|s| Latency::of(&s.latency))
    }

    fn count(&self, op: Op) -> u64 {
        self.stats.ops.get(&op).map_or(0, |s| s.count)
    }

    /// Queries and buys per second over the load phase (the read-back is not load).
    fn throughput(&self) -> f64 {
        let mut load = OpStats::default();
        for op in [Op::Query, Op::Buy] {
            if let Some(s) = self.stats.ops.get(&op) {
                load.merge(s);
            }
        }
        load.throughput()
    }
}

/// Runs the sweep against `front` and writes the report; `Ok` holds how many
/// requests failed over the whole sweep.
pub fn run(
    front: &PeerAddr,
    args: &EvalArgs,
    timeout: Duration,
    quiet: bool,
) -> Result<u64, ClientError> {
    let names = toy_names(front, timeout)?;
    fs::create_dir_all(&args.out).map_err(|e| output_error(&args.out, e))?;
    let mut points = Vec::new();
    for &clients in &args.clients_list {
        for &p in &args.ps {
            if let Some(stock) = args.restock {
                restock(
                    front,
                    timeout,
                    &names,
                    stock,
                    args.admin_token.as_deref().unwrap_or_default(),
                );
            }
            let plan = Plan {
                mode: Mode::Random {
                    names: names.clone(),
                    p,
                    quantity: args.quantity,
                },
                clients,
                stop: args.stop(),
                rate: None,
                retries: RETRIES,
                timeout,
                echo: false,
                progress: !quiet && io::stdout().is_terminal(),
            };
            let point = Point {
                clients,
                p,
                stats: load::run(front, &plan).stats,
            };
            if !quiet {
                let ms = |op| {
                    point
                        .latency(op)
                        .map_or("-".to_string(), |l| format!("{:.2}", l.p50 as f64 / 1000.0))
                };
                eprintln!(
                    "eval: clients {clients}, p {p}: query p50 {} ms, buy p50 {} ms, {:.0} req/s, {} failed",
                    ms(Op::Query),
                    ms(Op::Buy),
                    point.throughput(),
                    point.stats.failures()
                );
            }
            points.push(point);
        }
    }
    let failures = points.iter().map(|p| p.stats.failures()).sum();
    let plots = write_plots(&args.out, &points, &args.ps)?;
    let path = args.out.join("report.md");
    fs::write(&path, markdown(front, args, &points, &plots)).map_err(|e| output_error(&path, e))?;
    if !quiet {
        println!("wrote {}", path.display());
    }
    Ok(failures)
}

fn output_error(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Output {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Sets every toy's stock to `stock`, so that one point's buying does not starve
/// the next. A refusal is reported and the sweep goes on: the report shows it.
fn restock(front: &PeerAddr, timeout: Duration, names: &[String], stock: u64, token: &str) {
    let session = Session::new(front, timeout);
    for name in names {
        if let Err(failure) = session.set_stock(name, stock, token) {
            eprintln!("eval: restocking {name} failed: {failure}");
        }
    }
}

/// The four plots, as the lab asks for them; returns the (file, title) of each
/// written (a chart with no data, like buys in a sweep of p = 0 only, is skipped).
fn write_plots(
    out: &Path,
    points: &[Point],
    ps: &[f64],
) -> Result<Vec<(&'static str, String)>, ClientError> {
    let ms = |us: u64| us as f64 / 1000.0;
    let merged = merged_by_clients(points);
    let by_clients = |op: Op| -> Vec<Series> {
        merged
            .keys()
            .enumerate()
            .map(|(i, &clients)| Series {
                label: format!("{clients} client{}", if clients == 1 { "" } else { "s" }),
                points: points
                    .iter()
                    .filter(|pt| pt.clients == clients)
                    .filter_map(|pt| pt.latency(op).map(|l| (pt.p, ms(l.p50))))
                    .collect(),
                color: i,
                dashed: false,
            })
            .collect()
    };
    let vs_clients =
        |op: Op, pick: fn(&Latency) -> u64, label: &str, color: usize, dashed: bool| Series {
            label: format!("{op} {label}"),
            points: merged
                .iter()
                .filter_map(|(&clients, stats)| {
                    let s = stats.ops.get(&op).filter(|s| !s.latency.is_empty())?;
                    Some((clients as f64, ms(pick(&Latency::of(&s.latency)))))
                })
                .collect(),
            color,
            dashed,
        };
    let charts = [
        (
            "query_latency_vs_p.svg",
            Chart {
                title: "Query latency (median) vs buy probability".into(),
                x_label: "buy probability p".into(),
                y_label: "median query latency (ms)".into(),
                series: by_clients(Op::Query),
            },
        ),
        (
            "buy_latency_vs_p.svg",
            Chart {
                title: "Buy latency (median) vs buy probability".into(),
                x_label: "buy probability p".into(),
                y_label: "median buy latency (ms)".into(),
                series: by_clients(Op::Buy),
            },
        ),
        (
            "latency_vs_clients.svg",
            Chart {
                title: "Latency vs concurrent clients (all p merged)".into(),
                x_label: "concurrent clients (sessions)".into(),
                y_label: "latency (ms)".into(),
                series: vec![
                    vs_clients(Op::Query, |l| l.p50, "p50", 0, false),
                    vs_clients(Op::Query, |l| l.p99, "p99", 0, true),
                    vs_clients(Op::Buy, |l| l.p50, "p50", 1, false),
                    vs_clients(Op::Buy, |l| l.p99, "p99", 1, true),
                ],
            },
        ),
        (
            "throughput_vs_clients.svg",
            Chart {
                title: "Throughput vs concurrent clients".into(),
                x_label: "concurrent clients (sessions)".into(),
                y_label: "requests per second (queries + buys)".into(),
                series: ps
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| Series {
                        label: format!("p = {p}"),
                        points: points
                            .iter()
                            .filter(|pt| pt.p == p)
                            .map(|pt| (pt.clients as f64, pt.throughput()))
                            .collect(),
                        color: i,
                        dashed: false,
                    })
                    .collect(),
            },
        ),
    ];
    let mut written = Vec::new();
    for (file, chart) in charts {
        if chart.series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        let path = out.join(file);
        plot::line_chart(&path, &chart).map_err(|e| output_error(&path, e))?;
        written.push((file, chart.title));
    }
    Ok(written)
}

/// Every point of one client count merged into one: latency over all p.
fn merged_by_clients(points: &[Point]) -> BTreeMap<usize, Stats> {
    let mut merged: BTreeMap<usize, Stats> = BTreeMap::new();
    for point in points {
        merged.entry(point.clients).or_default().merge(&point.stats);
    }
    merged
}

/// The report: setup, the table of every point, latency by client count, plots.
fn markdown(
    front: &PeerAddr,
    args: &EvalArgs,
    points: &[Point],
    plots: &[(&str, String)],
) -> String {
    let ms = |us: f64| format!("{:.2}", us / 1000.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let length = match args.stop() {
        Stop::Requests(n) => format!("{n} rounds per session"),
        Stop::After(d) => format!("{} s per point", d.as_secs_f64()),
    };
    let list = |v: Vec<String>| v.join(", ");
    let mut md = String::new();
    let _ = writeln!(md, "# Toy store evaluation\n");
    let _ = writeln!(md, "## Setup\n");
    let _ = writeln!(md, "- Date: {}", httpdate::fmt_http_date(SystemTime::now()));
    let _ = writeln!(md, "- Front-end: {front}");
    let _ = writeln!(
        md,
        "- Machine: {cores} CPUs (`nproc`), shared by the client and the services"
    );
    let _ = writeln!(
        md,
        "- Client counts: {}",
        list(args.clients_list.iter().map(ToString::to_string).collect())
    );
    let _ = writeln!(
        md,
        "- Buy probabilities p: {}",
        list(args.ps.iter().map(ToString::to_string).collect())
    );
    let _ = writeln!(
        md,
        "- Length: {length}; {} unit(s) per order; {RETRIES} retries per buy",
        args.quantity
    );
    let restock = args.restock.map_or("no".to_string(), |n| {
        format!("every toy to {n} before each point")
    });
    let _ = writeln!(md, "- Restock: {restock}");
    let _ = writeln!(
        md,
        "- Load: closed loop; each session is a thread with one keep-alive connection. A round \
         queries a random toy and, if it is in stock, buys it with probability p. Latency is \
         measured per request at the client (HDR histogram, µs resolution); throughput counts \
         queries and buys per second of the run.\n"
    );

    let _ = writeln!(md, "## Results per point\n");
    let _ = writeln!(
        md,
        "| clients | p | queries | buys | query p50 ms | query p99 ms | query mean ms | \
         buy p50 ms | buy p99 ms | buy mean ms | req/s | failed |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for pt in points {
        let cells = |op| match pt.latency(op) {
            Some(l) => format!(
                "{} | {} | {}",
                ms(l.p50 as f64),
                ms(l.p99 as f64),
                ms(l.mean)
            ),
            None => "- | - | -".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} |",
            pt.clients,
            pt.p,
            pt.count(Op::Query),
            pt.count(Op::Buy),
            cells(Op::Query),
            cells(Op::Buy),
            pt.throughput(),
            pt.stats.failures()
        );
    }

    let _ = writeln!(md, "\n## Latency by client count (all p merged)\n");
    let _ = writeln!(
        md,
        "| clients | query p50 ms | query p99 ms | buy p50 ms | buy p99 ms |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    for (clients, stats) in merged_by_clients(points) {
        let cells = |op| match stats.ops.get(&op).filter(|s| !s.latency.is_empty()) {
            Some(s) => {
                let l = Latency::of(&s.latency);
                format!("{} | {}", ms(l.p50 as f64), ms(l.p99 as f64))
            }
            None => "- | -".to_string(),
        };
        let _ = writeln!(
            md,
            "| {clients} | {} | {} |",
            cells(Op::Query),
            cells(Op::Buy)
        );
    }

    let (checked, mismatches) = points
        .iter()
        .filter_map(|pt| pt.stats.verification.as_ref())
        .fold((0, 0), |(c, m), v| (c + v.checked, m + v.mismatches));
    let errors: BTreeMap<String, u64> = points
        .iter()
        .flat_map(|pt| pt.stats.ops.values())
        .flat_map(|s| s.errors.iter())
        .fold(BTreeMap::new(), |mut all, (kind, n)| {
            *all.entry(kind.to_string()).or_default() += n;
            all
        });
    let errors = if errors.is_empty() {
        "none".to_string()
    } else {
        list(
            errors
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect(),
        )
    };
    let _ = writeln!(md, "\n## Correctness\n");
    let _ = writeln!(
        md,
        "- Orders read back with `GET /orders/{{n}}`: {checked}, mismatches: {mismatches}"
    );
    let _ = writeln!(
        md,
        "- Errors by kind over the sweep (409 is a toy sold out between query and buy): {errors}"
    );

    let _ = writeln!(md, "\n## Plots\n");
    for (file, title) in plots {
        let _ = writeln!(md, "![{title}]({file})\n");
    }
    md
}
