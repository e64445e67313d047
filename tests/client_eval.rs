//! The client's evaluation (`client eval`) against a fresh stack. With a store of one
//! toy of one unit: with the restock between points every point has buy latency;
//! without it the report says which points have none and why, and leaves them out of
//! the plots. With a second front-end whose cache is off: the report sets cache on and
//! off side by side, with hit ratios and the timeline of cached products, and front-ends
//! that cannot be compared are refused before anything runs. The client runs as a
//! process (its command line is the point), the stack in this one. Fresh stacks only.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Stack, TEST_TOKEN};

/// `client eval` against `front` into `out`, with `args` after the sweep's shape.
fn eval(front: &str, out: &Path, args: &[&str], admin_token: Option<&str>) -> Output {
    eval_sweep(
        front,
        out,
        &["--ps", "0,1", "--clients-list", "1,2", "--times", "5"],
        args,
        admin_token,
    )
}

/// `client eval` against `front` into `out` with the sweep `shape`, then `args`.
fn eval_sweep(
    front: &str,
    out: &Path,
    shape: &[&str],
    args: &[&str],
    admin_token: Option<&str>,
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command
        .args(["--front", front, "--quiet", "eval", "--out"])
        .arg(out)
        .args(shape)
        .args(args)
        .env_remove("ADMIN_TOKEN")
        .env_remove("UNCACHED_FRONT")
        .env_remove("FRONT");
    if let Some(token) = admin_token {
        command.env("ADMIN_TOKEN", token);
    }
    command.output().expect("run client eval")
}

/// The rows of the report's table of every run: cell by column name.
fn points(report: &str) -> Vec<std::collections::HashMap<String, String>> {
    table(report, "| clients | p | cache |")
}

/// The rows of the report's table whose header starts with `header`.
fn table(report: &str, header: &str) -> Vec<std::collections::HashMap<String, String>> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = report.lines().skip_while(|l| !l.starts_with(header));
    let header = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("no table {header:?}:\n{report}")),
    );
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| header.iter().cloned().zip(cells(l)).collect())
        .collect()
}

fn one_unit_store(test: &str) -> Option<Stack> {
    Stack::in_process().seed("1 Tux 25.99 1\n").fresh(test)
}

/// Issue 12: `client eval --out eval/` sold the store out in the first points, and
/// most points silently had no buy latency.
#[test]
fn eval_restocks_so_every_point_that_buys_has_buy_latency() {
    let Some(s) = one_unit_store("eval_restocks_so_every_point_that_buys_has_buy_latency") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let run = eval(&s.front, out.path(), &[], Some(TEST_TOKEN));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let rows = points(&report);
    assert_eq!(rows.len(), 4, "{report}");
    for row in rows {
        if row["p"] == "1" {
            // Every round buys: none found the toy sold out, each has a latency.
            assert_eq!(row["buys"], row["queries"], "{row:?}\n{report}");
            assert_eq!(row["sold out"], "0", "{row:?}\n{report}");
            assert_ne!(row["buy p50 ms"], "-", "{row:?}\n{report}");
            assert_eq!(row["notes"], "", "{row:?}\n{report}");
        } else {
            assert_eq!(row["notes"], "no buy latency: p = 0 never buys", "{row:?}");
        }
    }
    assert!(
        report.contains("2 of 4 runs lack query or buy latency"),
        "{report}"
    );
    assert!(
        report.contains("Orders read back with `GET /orders/{n}`: 15, mismatches: 0"),
        "{report}"
    );
    assert!(out.path().join("buy_latency_vs_p.svg").exists());
}

/// Without the restock (`--no-restock`) the one unit sells in the first point that
/// buys; the report says which points then have no buy latency, and why.
#[test]
fn eval_without_restock_says_which_points_have_no_buys() {
    let Some(s) = one_unit_store("eval_without_restock_says_which_points_have_no_buys") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    // The restock needs the admin token: refused at once without it, nothing written.
    let refused = eval(&s.front, out.path(), &[], None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    for part in ["admin token", "ADMIN_TOKEN", "--no-restock"] {
        assert!(stderr.contains(part), "{part:?} missing: {stderr}");
    }
    assert!(!out.path().join("report.md").exists());

    let run = eval(&s.front, out.path(), &["--no-restock"], None);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let rows = points(&report);
    let sold_out_row = rows
        .iter()
        .find(|r| r["clients"] == "2" && r["p"] == "1")
        .unwrap_or_else(|| panic!("no row for 2 clients at p = 1:\n{report}"));
    assert_eq!(sold_out_row["buys"], "0", "{report}");
    assert_eq!(
        sold_out_row["notes"],
        "no buy latency: 10 of 10 rounds found their toy sold out, and no other drew a buy",
        "{report}"
    );
    assert!(
        report.contains("3 of 4 runs lack query or buy latency"),
        "{report}"
    );
    assert!(
        report.contains(
            "Left out for want of data: 1 client at p = 0, 2 clients at p = 0, 2 clients at p = 1"
        ),
        "{report}"
    );
}

/// Six toys, more than a small cache holds.
const SIX_TOYS: &str = "1 Tux 25.99 100\n2 Whale 34.99 100\n3 Elephant 29.99 100\n\
                        4 Bird 39.99 100\n5 Lego 9.99 100\n6 Kite 14.99 100\n";

/// Issue 13: the lab's Part 4 compares the cache on and off, with hit ratios and a
/// picture of what was cached when.
#[test]
fn eval_sets_cache_on_and_off_side_by_side_with_a_timeline() {
    let Some(mut s) = Stack::in_process()
        .seed(SIX_TOYS)
        .fresh("eval_sets_cache_on_and_off_side_by_side_with_a_timeline")
    else {
        return;
    };
    let cached = s.start_frontend(|config| config.cache_size = 3);
    let uncached = s.start_frontend(|config| config.cache_size = 0);
    let out = tempfile::tempdir().unwrap();
    let run = eval_sweep(
        cached.as_str(),
        out.path(),
        &["--ps", "0,0.5", "--clients-list", "2", "--times", "30"],
        &["--uncached-front", uncached.as_str()],
        Some(TEST_TOKEN),
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(report.contains("(cache capacity 3)"), "{report}");
    assert!(report.contains("(cache capacity 0)"), "{report}");

    let side_by_side = table(&report, "| clients | p | query p50 ms on |");
    let ps: Vec<&str> = side_by_side.iter().map(|r| r["p"].as_str()).collect();
    assert_eq!(ps, ["0", "0.5"], "{report}");
    for row in &side_by_side {
        for column in [
            "query p50 ms on",
            "query p50 ms off",
            "query p99 ms on",
            "query p99 ms off",
        ] {
            assert_ne!(row[column], "-", "{column}: {row:?}\n{report}");
        }
        // 60 queries over six toys and three places: some must hit, some miss.
        let ratio: f64 = row["hit ratio"]
            .trim_end_matches(" %")
            .parse()
            .unwrap_or_else(|_| panic!("hit ratio {:?}\n{report}", row["hit ratio"]));
        assert!(ratio > 0.0 && ratio < 100.0, "{row:?}\n{report}");
    }
    assert_ne!(side_by_side[1]["buy p50 ms on"], "-", "{report}");
    assert_ne!(side_by_side[1]["buy p50 ms off"], "-", "{report}");

    let runs = points(&report);
    let sides: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r["p"].as_str(), r["cache"].as_str()))
        .collect();
    assert_eq!(
        sides,
        [
            ("0", "cache on"),
            ("0", "cache off"),
            ("0.5", "cache on"),
            ("0.5", "cache off")
        ],
        "{report}"
    );
    for row in &runs {
        assert_eq!(row["failed"], "0", "{row:?}\n{report}");
        // The hit ratio is the cached front-end's alone.
        assert_eq!(
            row["hit ratio"] == "-",
            row["cache"] == "cache off",
            "{row:?}"
        );
    }

    let svg = |file: &str| std::fs::read_to_string(out.path().join(file)).unwrap();
    for (file, what) in [
        ("query_latency_vs_p.svg", "p50"),
        ("query_p99_vs_p.svg", "p99"),
    ] {
        let latency = svg(file);
        for side in ["cache on", "cache off"] {
            let label = format!("{side} {what}");
            assert!(latency.contains(&label), "{label} missing from {file}");
        }
    }
    assert!(svg("hit_ratio_vs_p.svg").contains("hit ratio"));
    // A row per toy, a bar for each stretch a toy was cached, a mark per cached run.
    let timeline = svg("cache_timeline.svg");
    for text in ["Tux", "Kite", "p = 0", "p = 0.5"] {
        assert!(timeline.contains(text), "{text} missing from the timeline");
    }
    assert!(
        timeline.matches("<rect").count() > 1,
        "no bar in the timeline"
    );
    assert!(
        report.contains("![Products in the cache over time"),
        "{report}"
    );
    let contents = table(&report, "| run | reads of GET /cache |");
    assert_eq!(contents.len(), 2, "{report}");
    for row in contents {
        let seen: usize = row["products seen cached"].parse().unwrap();
        assert!((1..=6).contains(&seen), "{row:?}");
    }
}

/// Front-ends that cannot be compared are refused with a sentence that says why,
/// before anything is measured or written.
#[test]
fn eval_refuses_front_ends_it_cannot_compare() {
    let Some(mut s) = Stack::in_process().fresh("eval_refuses_front_ends_it_cannot_compare") else {
        return;
    };
    let cached = s.start_frontend(|config| config.cache_size = 2);
    let uncached = s.start_frontend(|config| config.cache_size = 0);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let cases: &[(&str, &str, &[&str])] = &[
        (
            uncached.as_str(),
            cached.as_str(),
            &["cache capacity 0", "swap --front and --uncached-front"],
        ),
        (
            cached.as_str(),
            cached.as_str(),
            &["both", "--cache-size 0"],
        ),
        (
            cached.as_str(),
            s.front.as_str(),
            &["--uncached-front", "caches up to"],
        ),
        (cached.as_str(), closed.as_str(), &["cannot reach", &closed]),
    ];
    for (front, other, says) in cases {
        let out = tempfile::tempdir().unwrap();
        let run = eval_sweep(
            front,
            out.path(),
            &["--ps", "0", "--times", "1"],
            &["--uncached-front", other],
            Some(TEST_TOKEN),
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{front} vs {other}: {stderr}");
        for part in *says {
            assert!(stderr.contains(part), "{part:?} missing: {stderr}");
        }
        assert!(!out.path().join("report.md").exists(), "{front} vs {other}");
    }
    // Bad flags: usage errors (2) naming the flag.
    for bad in [
        &["--uncached-front", "https://x:1"][..],
        &["--clients-list", "0"],
    ] {
        let out = tempfile::tempdir().unwrap();
        let run = eval_sweep(cached.as_str(), out.path(), bad, &[], Some(TEST_TOKEN));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains(bad[0]), "{bad:?}: {stderr}");
    }
}
