//! The client's evaluation (`client eval`) against a fresh stack whose store is one
//! toy of one unit: with the restock between points every point has buy latency;
//! without it the report says which points have none and why, and leaves them out of
//! the plots. The client runs as a process (its command line is the point), the stack
//! in this one. Fresh stacks only.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Stack, TEST_TOKEN};

/// `client eval` against `front` into `out`, with `args` after the sweep's shape.
fn eval(front: &str, out: &Path, args: &[&str], admin_token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command
        .args(["--front", front, "--quiet", "eval", "--out"])
        .arg(out)
        .args(["--ps", "0,1", "--clients-list", "1,2", "--times", "5"])
        .args(args)
        .env_remove("ADMIN_TOKEN")
        .env_remove("FRONT");
    if let Some(token) = admin_token {
        command.env("ADMIN_TOKEN", token);
    }
    command.output().expect("run client eval")
}

/// The rows of the report's per-point table, by (clients, p): cell by column name.
fn points(report: &str) -> Vec<std::collections::HashMap<String, String>> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = report
        .lines()
        .skip_while(|l| !l.starts_with("| clients | p |"));
    let header = cells(lines.next().expect("the per-point table"));
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
        report.contains("2 of 4 points lack query or buy latency"),
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
        report.contains("3 of 4 points lack query or buy latency"),
        "{report}"
    );
    assert!(
        report.contains(
            "Left out for want of data: 1 client at p = 0, 2 clients at p = 0, 2 clients at p = 1"
        ),
        "{report}"
    );
}
