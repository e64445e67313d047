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
use super::session::{CacheCounters, ErrorKind, Session};
use super::stats::{Op, OpStats, Stats};
use super::watch::{self, Watch, POLL_EVERY};
use super::{toy_names, ClientError};
use crate::peer::PeerAddr;

/// Buy retries during the sweep, as the load command's default.
const RETRIES: u32 = 3;

/// The stock of every toy before a point of a `--duration` sweep, unless `--restock`
/// says otherwise: a point lasts at most [`MAX_DURATION_SECS`], and selling this many
/// units of one toy in an hour would take over 270,000 buys a second.
const DURATION_RESTOCK: u64 = 1_000_000_000;
const _: () = assert!(DURATION_RESTOCK as f64 / MAX_DURATION_SECS > 270_000.0);

/// A front-end the sweep measures, and what its cache was at the start.
struct Column {
    /// Its address.
    front: PeerAddr,
    /// Its cache's capacity; `None` when its `/health` reports no cache.
    capacity: Option<u64>,
}

impl Column {
    /// How the report names it.
    fn name(&self) -> &'static str {
        match self.capacity {
            Some(0) => "cache off",
            Some(_) => "cache on",
            None => "no cache",
        }
    }

    fn caches(&self) -> bool {
        self.capacity.is_some_and(|c| c > 0)
    }
}

/// One run of the sweep: a (clients, p) point on one front-end.
struct Point {
    /// Concurrent sessions.
    clients: usize,
    /// Buy probability.
    p: f64,
    /// Which front-end ([`Column`]) it ran on.
    column: usize,
    /// The front-end's name when the sweep compares two, for labels.
    tag: Option<&'static str>,
    /// What the run measured.
    stats: Stats,
    /// Why the restock before this point failed, if it did.
    restock_failed: Option<String>,
    /// How the front-end's cache counters moved over the run (capacity and
    /// entries as after it); `None` without a cache or when `/health` failed.
    cache: Option<CacheCounters>,
    /// What `GET /cache` showed over the run, on a front-end that caches.
    watch: Option<Watch>,
}

impl Point {
    /// How the report names the point.
    fn label(&self) -> String {
        let s = if self.clients == 1 { "" } else { "s" };
        let tag = self.tag.map_or(String::new(), |t| format!(", {t}"));
        format!("{} client{s} at p = {}{tag}", self.clients, self.p)
    }

    /// The share of the run's queries answered from the cache.
    fn hit_ratio(&self) -> Option<f64> {
        let c = self
            .cache
            .filter(|c| c.capacity > 0 && c.hits + c.misses > 0)?;
        Some(c.hits as f64 / (c.hits + c.misses) as f64)
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

/// Runs the sweep against `front` (and `--uncached-front`) and writes the report;
/// `Ok` holds how many requests failed over the whole sweep.
pub fn run(
    front: &PeerAddr,
    args: &EvalArgs,
    timeout: Duration,
    quiet: bool,
) -> Result<u64, ClientError> {
    let token = restock_token(args)?;
    let names = toy_names(front, timeout)?;
    let columns = columns(front, args, timeout, &names)?;
    fs::create_dir_all(&args.out).map_err(|e| output_error(&args.out, e))?;
    let compared = columns.len() > 1;
    let mut points: Vec<Point> = Vec::new();
    for &clients in &args.clients_list {
        for &p in &args.ps {
            // Both front-ends at one point, one after the other, so that a noisy
            // moment of the machine spoils one point, not one whole column.
            for (column, side) in columns.iter().enumerate() {
                let mut restock_failed = None;
                if let Some(token) = token {
                    let stock = restock_level(args, clients);
                    match restock(&side.front, timeout, &names, stock, token) {
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
                let session = Session::new(&side.front, timeout);
                let counters = || session.cache_counters().ok().flatten();
                let before = counters();
                let (outcome, watch) = if side.caches() {
                    let label = match args.clients_list.len() {
                        1 => format!("p = {p}"),
                        _ => format!("{clients} c, p = {p}"),
                    };
                    let (outcome, watch) = watch::during(&side.front, timeout, label, || {
                        load::run(&side.front, &plan)
                    });
                    (outcome, Some(watch))
                } else {
                    (load::run(&side.front, &plan), None)
                };
                let cache = before.zip(counters()).map(|(b, a)| CacheCounters {
                    capacity: a.capacity,
                    entries: a.entries,
                    hits: a.hits.saturating_sub(b.hits),
                    misses: a.misses.saturating_sub(b.misses),
                    evictions: a.evictions.saturating_sub(b.evictions),
                });
                let point = Point {
                    clients,
                    p,
                    column,
                    tag: compared.then(|| side.name()),
                    stats: outcome.stats,
                    restock_failed,
                    cache,
                    watch,
                };
                if !quiet {
                    progress_line(&point);
                }
                points.push(point);
            }
        }
    }
    let failures = points.iter().map(|p| p.stats.failures()).sum();
    let mut plots = write_plots(&args.out, &points, args, &columns)?;
    plots.push(write_timeline(&args.out, &points, &names)?);
    let path = args.out.join("report.md");
    let md = markdown(args, &columns, &points, &plots);
    fs::write(&path, md).map_err(|e| output_error(&path, e))?;
    if !quiet {
        println!("wrote {}", path.display());
    }
    Ok(failures)
}

/// One line on stderr per run, as the sweep goes.
fn progress_line(point: &Point) {
    let p50 = |op| point.latency(op).map_or("-".to_string(), |l| ms(l.p50));
    let hits = point
        .hit_ratio()
        .map_or(String::new(), |r| format!(", {:.0} % hits", r * 100.0));
    let gaps = point.gaps();
    eprintln!(
        "eval: {}: query p50 {} ms, buy p50 {} ms, {:.0} req/s{hits}, {} failed{}{}",
        point.label(),
        p50(Op::Query),
        p50(Op::Buy),
        point.throughput().unwrap_or(0.0),
        point.stats.failures(),
        if gaps.is_empty() { "" } else { "; " },
        gaps.join("; ")
    );
}

/// The front-ends to measure: `front`, and with `--uncached-front` the second one,
/// after checking from their `/health` that the first caches and the second does
/// not, and that both list the same toys (`names`, as `front` lists them).
fn columns(
    front: &PeerAddr,
    args: &EvalArgs,
    timeout: Duration,
    names: &[String],
) -> Result<Vec<Column>, ClientError> {
    let cached = Column {
        front: front.clone(),
        capacity: capacity(front, timeout)?,
    };
    let mut columns = vec![];
    if let Some(other) = &args.uncached_front {
        let refuse = |why: String| Err(ClientError::Fronts(why));
        if other == front {
            return refuse(format!(
                "--front and --uncached-front are both {front}: the comparison needs two \
                 front-ends on the same backends, the second started with --cache-size 0"
            ));
        }
        match cached.capacity {
            None => {
                return refuse(format!(
                    "the front-end at {front} (--front) reports no cache in GET /health: the \
                     cached run needs a front-end with a cache (--cache-size above 0)"
                ))
            }
            Some(0) => {
                return refuse(format!(
                    "the front-end at {front} (--front) has cache capacity 0 (--cache-size 0), \
                     so it cannot be the cached run; swap --front and --uncached-front?"
                ))
            }
            Some(_) => {}
        }
        let uncached = Column {
            front: other.clone(),
            capacity: capacity(other, timeout)?,
        };
        if let Some(c) = uncached.capacity.filter(|&c| c > 0) {
            return refuse(format!(
                "the front-end at {other} (--uncached-front) caches up to {c} products: the \
                 uncached run needs one started with --cache-size 0 (or CACHE_SIZE=0)"
            ));
        }
        if toy_names(other, timeout)? != names {
            return refuse(format!(
                "{front} and {other} list different toys (GET /products): the comparison \
                 needs both front-ends on the same catalog"
            ));
        }
        columns.push(uncached);
    }
    if cached.caches() {
        // The timeline reads GET /cache all along: better to learn now that it fails.
        if let Err(failure) = Session::new(front, timeout).cached_products() {
            return Err(ClientError::Fronts(format!(
                "GET /cache at {front} failed ({failure}): the timeline of cached products needs it"
            )));
        }
    }
    columns.insert(0, cached);
    Ok(columns)
}

/// The capacity `front`'s `/health` reports for its cache, `None` when it reports
/// none.
fn capacity(front: &PeerAddr, timeout: Duration) -> Result<Option<u64>, ClientError> {
    match Session::new(front, timeout).cache_counters() {
        Ok(counters) => Ok(counters.map(|c| c.capacity)),
        Err(failure) if matches!(failure.kind, ErrorKind::Status(_) | ErrorKind::Protocol) => Err(
            ClientError::Fronts(format!("GET /health at {front} failed: {failure}")),
        ),
        Err(failure) => Err(ClientError::Unreachable {
            front: front.url().to_string(),
            failure,
        }),
    }
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

/// A plot of the report: drawn, or not and why, and the points it lacks.
struct Plot {
    /// The SVG file, in the output directory.
    file: &'static str,
    /// The chart's title.
    title: String,
    /// Why it was not drawn, if it was not.
    skipped: Option<String>,
    /// What the chart leaves out for want of data.
    left_out: Vec<String>,
}

/// The line plots. A chart with no data at all (buys in a sweep of p = 0 only) is
/// not drawn, nor one over client counts when the sweep has one; every point a
/// chart leaves out is listed.
fn write_plots(
    out: &Path,
    points: &[Point],
    args: &EvalArgs,
    columns: &[Column],
) -> Result<Vec<Plot>, ClientError> {
    let millis = |us: u64| us as f64 / 1000.0;
    let several_counts = args.clients_list.len() > 1;
    // A line per client count and front-end, named by what tells them apart.
    let groups: Vec<(usize, usize, String)> = args
        .clients_list
        .iter()
        .flat_map(|&clients| {
            columns.iter().enumerate().map(move |(column, side)| {
                let mut name = Vec::new();
                if several_counts {
                    name.push(format!("{clients} client{}", plural(clients)));
                }
                if columns.len() > 1 {
                    name.push(side.name().to_string());
                }
                (clients, column, name.join(", "))
            })
        })
        .collect();
    let in_group = |clients: usize, column: usize| {
        points
            .iter()
            .filter(move |pt| pt.clients == clients && pt.column == column)
    };
    // One chart per operation and percentile: on one scale the p99s flatten the
    // medians, which are what the cache moves.
    let vs_p = |file: &'static str, op: Op, noun: &str, what: &str, pick: fn(&Latency) -> u64| {
        let mut left_out = Vec::new();
        let mut series = Vec::new();
        for (color, (clients, column, name)) in groups.iter().enumerate() {
            let mut line = Vec::new();
            for pt in in_group(*clients, *column) {
                match pt.latency(op) {
                    Some(l) => line.push((pt.p, millis(pick(&l)))),
                    None => left_out.push(pt.label()),
                }
            }
            series.push(Series {
                label: format!("{name} {what}").trim().to_string(),
                points: line,
                color,
                dashed: false,
            });
        }
        let chart = Chart {
            title: format!("{noun} latency ({what}) vs buy probability"),
            x_label: "buy probability p".into(),
            y_label: format!("{op} latency, {what} (ms)"),
            series,
        };
        (file, chart, None, left_out)
    };
    let hit_ratio = groups
        .iter()
        .enumerate()
        .filter(|(_, (_, column, _))| columns[*column].caches())
        .map(|(color, (clients, column, name))| Series {
            label: format!("{name} hit ratio").trim().to_string(),
            points: in_group(*clients, *column)
                .filter_map(|pt| Some((pt.p, pt.hit_ratio()? * 100.0)))
                .collect(),
            color,
            dashed: false,
        })
        .collect();
    let hit_ratio_left_out = points
        .iter()
        .filter(|pt| columns[pt.column].caches() && pt.hit_ratio().is_none())
        .map(Point::label)
        .collect();
    let merged = merged_by_clients(points);
    let vs_clients = |column: usize, op: Op, pick: fn(&Latency) -> u64, label: &str| {
        let tag = match columns.len() {
            1 => String::new(),
            _ => format!("{} ", columns[column].name()),
        };
        Series {
            label: format!("{tag}{op} {label}"),
            points: merged
                .iter()
                .filter(|((_, c), _)| *c == column)
                .filter_map(|(&(clients, _), stats)| {
                    let s = stats.ops.get(&op).filter(|s| !s.latency.is_empty())?;
                    Some((clients as f64, millis(pick(&Latency::of(&s.latency)))))
                })
                .collect(),
            color: column * 2 + usize::from(op == Op::Buy),
            dashed: label == "p99",
        }
    };
    let merged_without = |op: Op| -> Vec<String> {
        merged
            .iter()
            .filter(|(_, stats)| stats.ops.get(&op).is_none_or(|s| s.latency.is_empty()))
            .map(|((clients, column), _)| {
                format!("{op} at {clients} clients, {}", columns[*column].name())
            })
            .collect()
    };
    let latency_vs_clients = (0..columns.len())
        .flat_map(|column| {
            [
                vs_clients(column, Op::Query, |l| l.p50, "p50"),
                vs_clients(column, Op::Query, |l| l.p99, "p99"),
                vs_clients(column, Op::Buy, |l| l.p50, "p50"),
                vs_clients(column, Op::Buy, |l| l.p99, "p99"),
            ]
        })
        .collect();
    let throughput = args
        .ps
        .iter()
        .enumerate()
        .flat_map(|(i, &p)| {
            columns
                .iter()
                .enumerate()
                .map(move |(column, side)| Series {
                    label: match columns.len() {
                        1 => format!("p = {p}"),
                        _ => format!("p = {p}, {}", side.name()),
                    },
                    points: points
                        .iter()
                        .filter(|pt| pt.p == p && pt.column == column)
                        .filter_map(|pt| Some((pt.clients as f64, pt.throughput()?)))
                        .collect(),
                    color: i,
                    dashed: column > 0,
                })
        })
        .collect();
    let one_count = (!several_counts).then(|| "the sweep has one client count".to_string());
    let no_cache = (!columns.iter().any(Column::caches))
        .then(|| "no front-end of the sweep reports a cache".to_string());
    let charts = [
        vs_p("query_latency_vs_p.svg", Op::Query, "Query", "p50", |l| {
            l.p50
        }),
        vs_p("query_p99_vs_p.svg", Op::Query, "Query", "p99", |l| l.p99),
        vs_p("buy_latency_vs_p.svg", Op::Buy, "Buy", "p50", |l| l.p50),
        vs_p("buy_p99_vs_p.svg", Op::Buy, "Buy", "p99", |l| l.p99),
        (
            "hit_ratio_vs_p.svg",
            Chart {
                title: "Cache hit ratio vs buy probability".into(),
                x_label: "buy probability p".into(),
                y_label: "queries answered from the cache (%)".into(),
                series: hit_ratio,
            },
            no_cache,
            hit_ratio_left_out,
        ),
        (
            "latency_vs_clients.svg",
            Chart {
                title: "Latency vs concurrent clients (all p merged)".into(),
                x_label: "concurrent clients (sessions)".into(),
                y_label: "latency (ms)".into(),
                series: latency_vs_clients,
            },
            one_count.clone(),
            [merged_without(Op::Query), merged_without(Op::Buy)].concat(),
        ),
        (
            "throughput_vs_clients.svg",
            Chart {
                title: "Throughput vs concurrent clients".into(),
                x_label: "concurrent clients (sessions)".into(),
                y_label: "requests per second (queries + buys)".into(),
                series: throughput,
            },
            one_count,
            points
                .iter()
                .filter(|pt| pt.throughput().is_none())
                .map(Point::label)
                .collect(),
        ),
    ];
    let mut plots = Vec::new();
    for (file, chart, skipped, left_out) in charts {
        let skipped = skipped.or_else(|| {
            (!chart.series.iter().any(|s| !s.points.is_empty()))
                .then(|| "no point has data for it".to_string())
        });
        if skipped.is_none() {
            let path = out.join(file);
            plot::line_chart(&path, &chart).map_err(|e| output_error(&path, e))?;
        }
        plots.push(Plot {
            file,
            title: chart.title,
            skipped,
            left_out,
        });
    }
    Ok(plots)
}

/// The timeline of the products the cached front-end held during its runs.
fn write_timeline(out: &Path, points: &[Point], names: &[String]) -> Result<Plot, ClientError> {
    const FILE: &str = "cache_timeline.svg";
    let watches: Vec<&Watch> = points.iter().filter_map(|pt| pt.watch.as_ref()).collect();
    let timeline = watch::timeline(
        &watches,
        names,
        "Products in the cache over time (GET /cache every 100 ms)".into(),
    );
    let skipped = if watches.is_empty() {
        Some("no front-end of the sweep reports a cache".to_string())
    } else if timeline.bars.is_empty() {
        Some("GET /cache never showed a product cached".to_string())
    } else {
        let path = out.join(FILE);
        plot::timeline_chart(&path, &timeline).map_err(|e| output_error(&path, e))?;
        None
    };
    Ok(Plot {
        file: FILE,
        title: timeline.title,
        skipped,
        left_out: Vec::new(),
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Every point of one client count and front-end merged into one: latency over all p.
fn merged_by_clients(points: &[Point]) -> BTreeMap<(usize, usize), Stats> {
    let mut merged: BTreeMap<(usize, usize), Stats> = BTreeMap::new();
    for point in points {
        merged
            .entry((point.clients, point.column))
            .or_default()
            .merge(&point.stats);
    }
    merged
}

/// Milliseconds with two decimals, from microseconds.
fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The report: setup, cache on vs off, the table of every run, latency by client
/// count, the cache's timeline, plots.
fn markdown(args: &EvalArgs, columns: &[Column], points: &[Point], plots: &[Plot]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let length = match args.stop() {
        Stop::Requests(n) => format!("{n} rounds per session"),
        Stop::After(d) => format!("{} s per point", d.as_secs_f64()),
    };
    let list = |v: Vec<String>| v.join(", ");
    let compared = columns.len() > 1;
    let mut md = String::new();
    let _ = writeln!(md, "# Toy store evaluation\n");
    let _ = writeln!(md, "## Setup\n");
    let _ = writeln!(md, "- Date: {}", httpdate::fmt_http_date(SystemTime::now()));
    for (i, side) in columns.iter().enumerate() {
        let flag = if i == 0 {
            "--front"
        } else {
            "--uncached-front"
        };
        let capacity = side
            .capacity
            .map_or("its /health reports no cache".to_string(), |c| {
                format!("cache capacity {c}")
            });
        let _ = writeln!(
            md,
            "- Front-end, {} (`{flag}`): {} ({capacity})",
            side.name(),
            side.front
        );
    }
    if compared {
        let _ = writeln!(
            md,
            "- Order: at each point the cached front-end runs first, then the uncached one, \
             each after its own restock; both use the same catalog and order service"
        );
    }
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
            "before each run every toy is set to {level} with `PUT /products/{{name}}` \
             and the admin token"
        )
    };
    let _ = writeln!(md, "- Restock: {restock}");
    let _ = writeln!(
        md,
        "- Load: closed loop; each session is a thread with one keep-alive connection. A round \
         queries a random toy and, if it is in stock, buys it with probability p. Latency is \
         measured per request at the client (HDR histogram, µs resolution); throughput counts \
         queries and buys per second of the run."
    );
    let _ = writeln!(
        md,
        "- Hit ratio: hits / (hits + misses) of the front-end's `/health` cache counters, \
         read before and after each run (the restock is before).\n"
    );

    if compared {
        cache_on_vs_off(&mut md, points);
    }

    let _ = writeln!(md, "## Results per run\n");
    let _ = writeln!(
        md,
        "| clients | p | cache | queries | buys | sold out | query p50 ms | query p99 ms | query mean ms | \
         buy p50 ms | buy p99 ms | buy mean ms | req/s | failed | hit ratio | evictions | notes |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for pt in points {
        let cells = |op| match pt.latency(op) {
            Some(l) => format!("{} | {} | {:.2}", ms(l.p50), ms(l.p99), l.mean / 1000.0),
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
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            pt.clients,
            pt.p,
            columns[pt.column].name(),
            pt.count(Op::Query),
            pt.count(Op::Buy),
            pt.stats.sold_out,
            cells(Op::Query),
            cells(Op::Buy),
            pt.throughput()
                .map_or("-".to_string(), |t| format!("{t:.0}")),
            pt.stats.failures(),
            percent(pt.hit_ratio()),
            pt.cache
                .filter(|c| c.capacity > 0)
                .map_or("-".to_string(), |c| c.evictions.to_string()),
            notes.join("; ")
        );
    }
    let lacking = points.iter().filter(|pt| !pt.gaps().is_empty()).count();
    let _ = if lacking == 0 {
        writeln!(md, "\nEvery run has query and buy latency.")
    } else {
        writeln!(
            md,
            "\n{lacking} of {} runs lack query or buy latency; the notes say why.",
            points.len()
        )
    };

    if args.clients_list.len() > 1 {
        let _ = writeln!(md, "\n## Latency by client count (all p merged)\n");
        let _ = writeln!(
            md,
            "| clients | cache | query p50 ms | query p99 ms | buy p50 ms | buy p99 ms |"
        );
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|");
        for ((clients, column), stats) in merged_by_clients(points) {
            let cells = |op| match stats.ops.get(&op).filter(|s| !s.latency.is_empty()) {
                Some(s) => {
                    let l = Latency::of(&s.latency);
                    format!("{} | {}", ms(l.p50), ms(l.p99))
                }
                None => "- | -".to_string(),
            };
            let _ = writeln!(
                md,
                "| {clients} | {} | {} | {} |",
                columns[column].name(),
                cells(Op::Query),
                cells(Op::Buy)
            );
        }
    }

    if points.iter().any(|pt| pt.watch.is_some()) {
        cache_contents(&mut md, points);
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
        if let Some(why) = &plot.skipped {
            let _ = writeln!(md, "*{title}*: not drawn, {why}.\n");
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

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0))
}

/// The headline table: each point's cached and uncached runs side by side.
fn cache_on_vs_off(md: &mut String, points: &[Point]) {
    let _ = writeln!(md, "## Cache on vs off\n");
    let _ = writeln!(
        md,
        "| clients | p | query p50 ms on | query p50 ms off | query p99 ms on | query p99 ms off | \
         buy p50 ms on | buy p50 ms off | buy p99 ms on | buy p99 ms off | query p50 off / on | hit ratio |"
    );
    let _ = writeln!(
        md,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for on in points.iter().filter(|pt| pt.column == 0) {
        let Some(off) = points
            .iter()
            .find(|pt| pt.column == 1 && pt.clients == on.clients && pt.p == on.p)
        else {
            continue;
        };
        let pick = |pt: &Point, op, p99: bool| {
            pt.latency(op)
                .map_or("-".to_string(), |l| ms(if p99 { l.p99 } else { l.p50 }))
        };
        let mut cells = Vec::new();
        for (op, p99) in [
            (Op::Query, false),
            (Op::Query, true),
            (Op::Buy, false),
            (Op::Buy, true),
        ] {
            cells.push(pick(on, op, p99));
            cells.push(pick(off, op, p99));
        }
        let speedup = on
            .latency(Op::Query)
            .zip(off.latency(Op::Query))
            .filter(|(on, _)| on.p50 > 0)
            .map_or("-".to_string(), |(on, off)| {
                format!("{:.2}×", off.p50 as f64 / on.p50 as f64)
            });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {speedup} | {} |",
            on.clients,
            on.p,
            cells.join(" | "),
            percent(on.hit_ratio())
        );
    }
    let _ = writeln!(
        md,
        "\n\"off / on\" above 1 is how many times faster the median query is with the cache.\n"
    );
}

/// What the timeline shows, run by run: how much of the cache was seen used.
fn cache_contents(md: &mut String, points: &[Point]) {
    let _ = writeln!(md, "\n## Which products were cached\n");
    let _ = writeln!(
        md,
        "During each run of the cached front-end `GET /cache` was read every {} ms \
         (`cache_timeline.svg` below: a row per product, a bar while it is cached, the runs \
         end to end). A bar ends where a product left the cache: evicted to make room (LRU), \
         or dropped on an invalidation pushed by the catalog.\n",
        POLL_EVERY.as_millis()
    );
    let _ = writeln!(
        md,
        "| run | reads of GET /cache | failed reads | products seen cached | entries at the end | evictions |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for (pt, watch) in points
        .iter()
        .filter_map(|pt| Some((pt, pt.watch.as_ref()?)))
    {
        let seen: std::collections::BTreeSet<&String> =
            watch.samples.iter().flat_map(|(_, names)| names).collect();
        let (entries, evictions) = pt.cache.map_or(("-".to_string(), "-".to_string()), |c| {
            (c.entries.to_string(), c.evictions.to_string())
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {entries} | {evictions} |",
            pt.label(),
            watch.samples.len(),
            watch.failed,
            seen.len()
        );
    }
}
