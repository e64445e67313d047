//! The lab's evaluation: random mode at every client count and buy probability,
//! written up as `report.md` with four SVG plots.
//!
//! Every point runs closed-loop, as the lab's clients did, so what varies between
//! points is only the number of sessions and how often they buy. Before each point
//! every toy is restocked (an admin `PUT /products/{name}`), so that a point's buys
//! do not depend on what the points before it sold; a point that still lacks a
//! series says why in the report, and no plot is drawn from nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::args::{EvalArgs, Stop, MAX_DURATION_SECS};
use super::load::{self, Mode, Plan};
use super::plot::{self, Chart, Series};
use super::report::Latency;
use super::session::{ErrorKind, Session};
use super::stats::{Op, OpStats, Stats};
use super::{toy_names, ClientError};
use crate::peer::PeerAddr;

/// Buy retries during the sweep, as the load command's default.
const RETRIES: u32 = 3;

/// The stock of every toy before a point of a `--duration` sweep, unless `--restock`
/// says otherwise: a point lasts at most [`MAX_DURATION_SECS`], and selling this many
/// units of one toy in an hour would take over 270,000 buys a second.
const DURATION_RESTOCK: u64 = 1_000_000_000;
const _: () = assert!(DURATION_RESTOCK as f64 / MAX_DURATION_SECS > 270_000.0);

/// One (clients, p) point of the sweep.
struct Point {
    /// Concurrent sessions.
    clients: usize,
    /// Buy probability.
    p: f64,
    /// What the run measured.
    stats: Stats,
    /// Why the restock before this point failed, if it did.
    restock_failed: Option<String>,
}

impl Point {
    /// How the report names the point.
    fn label(&self) -> String {
        let s = if self.clients == 1 { "" } else { "s" };
        format!("{} client{s} at p = {}", self.clients, self.p)
    }

    /// Why a series has no value at this point, one sentence each; empty when the
    /// point has query and buy latency.
    fn gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        if self.latency(Op::Query).is_none() {
            gaps.push("no query latency: no query was answered".to_string());
        }
        if self.latency(Op::Buy).is_none() {
            let rounds = self.count(Op::Query);
            gaps.push(if self.p == 0.0 {
                "no buy latency: p = 0 never buys".to_string()
            } else if self.count(Op::Buy) > 0 {
                format!("no buy latency: none of {} buys was answered", self.count(Op::Buy))
            } else if self.stats.sold_out > 0 {
                format!(
                    "no buy latency: {} of {rounds} rounds found their toy sold out, and no other drew a buy",
                    self.stats.sold_out
                )
            } else {
                format!("no buy latency: none of {rounds} rounds drew a buy at p = {}", self.p)
            });
        }
        gaps
    }

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

    /// Queries and buys per second over the load phase (the read-back is not load);
    /// `None` when the point did neither.
    fn throughput(&self) -> Option<f64> {
        let mut load = OpStats::default();
        for op in [Op::Query, Op::Buy] {
            if let Some(s) = self.stats.ops.get(&op) {
                load.merge(s);
            }
        }
        (load.count > 0).then(|| load.throughput())
    }
}

/// The stock every toy gets before a point of `clients` sessions: `--restock`, or
/// enough for every round of the point to buy.
fn restock_level(args: &EvalArgs, clients: usize) -> u64 {
    args.restock.unwrap_or_else(|| match args.stop() {
        Stop::Requests(rounds) => (clients as u64)
            .saturating_mul(rounds)
            .saturating_mul(args.quantity),
        Stop::After(_) => DURATION_RESTOCK,
    })
}

/// The admin token the restocks use; `None` with `--no-restock`. Refused before
/// anything runs when it is missing: a sweep without restocks measures how fast the
/// store sells out, not what it claims.
fn restock_token(args: &EvalArgs) -> Result<Option<&str>, ClientError> {
    if args.no_restock {
        return Ok(None);
    }
    match args
        .admin_token
        .as_deref()
        .filter(|token| !token.is_empty())
    {
        Some(token) => Ok(Some(token)),
        None => Err(ClientError::Restock(
            "eval restocks every toy before each point (PUT /products/{name}), which needs \
             the admin token the stack was started with: set ADMIN_TOKEN (as in \
             `ADMIN_TOKEN=secret cargo run --release`) or pass --admin-token; or pass \
             --no-restock to measure the store as it is"
                .to_string(),
        )),
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
    let token = restock_token(args)?;
    let names = toy_names(front, timeout)?;
    fs::create_dir_all(&args.out).map_err(|e| output_error(&args.out, e))?;
    let mut points: Vec<Point> = Vec::new();
    for &clients in &args.clients_list {
        for &p in &args.ps {
            let mut restock_failed = None;
            if let Some(token) = token {
                let stock = restock_level(args, clients);
                match restock(front, timeout, &names, stock, token) {
                    Ok(()) => {}
                    // The first restock failing is a setup error (a wrong token, most
                    // likely); a later one costs that point, and the report says so.
                    Err(why) if points.is_empty() => return Err(ClientError::Restock(why)),
                    Err(why) => {
                        eprintln!("eval: {why}");
                        restock_failed = Some(why);
                    }
                }
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
                restock_failed,
            };
            if !quiet {
                let ms = |op| {
                    point
                        .latency(op)
                        .map_or("-".to_string(), |l| format!("{:.2}", l.p50 as f64 / 1000.0))
                };
                let gaps = point.gaps();
                eprintln!(
                    "eval: clients {clients}, p {p}: query p50 {} ms, buy p50 {} ms, {:.0} req/s, {} failed{}{}",
                    ms(Op::Query),
                    ms(Op::Buy),
                    point.throughput().unwrap_or(0.0),
                    point.stats.failures(),
                    if gaps.is_empty() { "" } else { "; " },
                    gaps.join("; ")
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
/// the next; stops at the first refusal, which it returns.
fn restock(
    front: &PeerAddr,
    timeout: Duration,
    names: &[String],
    stock: u64,
    token: &str,
) -> Result<(), String> {
    let session = Session::new(front, timeout);
    for name in names {
        if let Err(failure) = session.set_stock(name, stock, token) {
            let hint = match failure.kind {
                ErrorKind::Status(401 | 403) => {
                    " (is the admin token the one the stack was started with?)"
                }
                _ => "",
            };
            return Err(format!(
                "restocking {name} to {stock} with PUT /products/{name} failed: {failure}{hint}"
            ));
        }
    }
    Ok(())
}

/// A plot of the report: drawn, or not for want of data, and the points it lacks.
struct Plot {
    /// The SVG file, in the output directory.
    file: &'static str,
    /// The chart's title.
    title: String,
    /// Whether there was anything to draw.
    drawn: bool,
    /// What the chart leaves out for want of data.
    left_out: Vec<String>,
}

/// The four plots, as the lab asks for them. A chart with no data at all (buys in a
/// sweep of p = 0 only) is not drawn; every point a chart leaves out is listed.
fn write_plots(out: &Path, points: &[Point], ps: &[f64]) -> Result<Vec<Plot>, ClientError> {
    let ms = |us: u64| us as f64 / 1000.0;
    let merged = merged_by_clients(points);
    let by_clients = |op: Op| -> (Vec<Series>, Vec<String>) {
        let mut left_out = Vec::new();
        let series = merged
            .keys()
            .enumerate()
            .map(|(i, &clients)| {
                let mut line = Vec::new();
                for pt in points.iter().filter(|pt| pt.clients == clients) {
                    match pt.latency(op) {
                        Some(l) => line.push((pt.p, ms(l.p50))),
                        None => left_out.push(pt.label()),
                    }
                }
                Series {
                    label: format!("{clients} client{}", if clients == 1 { "" } else { "s" }),
                    points: line,
                    color: i,
                    dashed: false,
                }
            })
            .collect();
        (series, left_out)
    };
    let merged_without = |op: Op| -> Vec<String> {
        merged
            .iter()
            .filter(|(_, stats)| stats.ops.get(&op).is_none_or(|s| s.latency.is_empty()))
            .map(|(clients, _)| format!("{op} at {clients} clients"))
            .collect()
    };
    let (query_by_p, query_left_out) = by_clients(Op::Query);
    let (buy_by_p, buy_left_out) = by_clients(Op::Buy);
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
                series: query_by_p,
            },
            query_left_out,
        ),
        (
            "buy_latency_vs_p.svg",
            Chart {
                title: "Buy latency (median) vs buy probability".into(),
                x_label: "buy probability p".into(),
                y_label: "median buy latency (ms)".into(),
                series: buy_by_p,
            },
            buy_left_out,
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
            [merged_without(Op::Query), merged_without(Op::Buy)].concat(),
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
                            .filter_map(|pt| Some((pt.clients as f64, pt.throughput()?)))
                            .collect(),
                        color: i,
                        dashed: false,
                    })
                    .collect(),
            },
            points
                .iter()
                .filter(|pt| pt.throughput().is_none())
                .map(Point::label)
                .collect(),
        ),
    ];
    let mut plots = Vec::new();
    for (file, chart, left_out) in charts {
        let drawn = chart.series.iter().any(|s| !s.points.is_empty());
        if drawn {
            let path = out.join(file);
            plot::line_chart(&path, &chart).map_err(|e| output_error(&path, e))?;
        }
        plots.push(Plot {
            file,
            title: chart.title,
            drawn,
            left_out,
        });
    }
    Ok(plots)
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
fn markdown(front: &PeerAddr, args: &EvalArgs, points: &[Point], plots: &[Plot]) -> String {
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
    let restock = if args.no_restock {
        "none (--no-restock): once a toy sells out, rounds that pick it do not buy".to_string()
    } else {
        let level = match (args.restock, args.stop()) {
            (Some(n), _) => format!("{n} units"),
            (None, Stop::Requests(_)) => {
                "enough for every round of the point to buy (clients × rounds × units)".to_string()
            }
            (None, Stop::After(_)) => format!("{DURATION_RESTOCK} units"),
        };
        format!(
            "before each point every toy is set to {level} with `PUT /products/{{name}}` \
             and the admin token"
        )
    };
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
        "| clients | p | queries | buys | sold out | query p50 ms | query p99 ms | query mean ms | \
         buy p50 ms | buy p99 ms | buy mean ms | req/s | failed | notes |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
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
        let notes: Vec<String> = pt
            .restock_failed
            .iter()
            .map(|why| format!("the restock before it failed: {why}"))
            .chain(pt.gaps())
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            pt.clients,
            pt.p,
            pt.count(Op::Query),
            pt.count(Op::Buy),
            pt.stats.sold_out,
            cells(Op::Query),
            cells(Op::Buy),
            pt.throughput()
                .map_or("-".to_string(), |t| format!("{t:.0}")),
            pt.stats.failures(),
            notes.join("; ")
        );
    }
    let lacking = points.iter().filter(|pt| !pt.gaps().is_empty()).count();
    let _ = if lacking == 0 {
        writeln!(md, "\nEvery point has query and buy latency.")
    } else {
        writeln!(
            md,
            "\n{lacking} of {} points lack query or buy latency; the notes say why.",
            points.len()
        )
    };

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
    for plot in plots {
        let (title, file) = (&plot.title, plot.file);
        if !plot.drawn {
            let _ = writeln!(md, "*{title}*: not drawn, no point has data for it.\n");
            continue;
        }
        let _ = writeln!(md, "![{title}]({file})\n");
        if !plot.left_out.is_empty() {
            let _ = writeln!(
                md,
                "Left out for want of data: {} (see the notes above).\n",
                plot.left_out.join(", ")
            );
        }
    }
    md
}
