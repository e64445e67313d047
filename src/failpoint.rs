//! Named failpoints: deterministic faults between the steps of the buy protocol.
//!
//! Each [`Point`] marks one step boundary (order side and catalog side). A process arms
//! points from the environment at its first check:
//!
//! ```text
//! TOYSTORE_FAILPOINTS="order.after_intent_durable=exit;order.before_commit=1*error"
//! ```
//!
//! Actions:
//! - `exit`: the process ends on the spot with [`EXIT_CODE`], as `kill -9` would leave
//!   it: nothing of ours is flushed (records still in the journal's memory are lost).
//! - `error`: only at the points that write a record ([`Point::fallible`]): the write
//!   fails before anything is appended, as a write the journal cut back would.
//! - `N*action`: the action fires on the first `N` hits only, then the point is off.
//!
//! Unset, a check costs one atomic load. An unknown name, or `error` on a point that
//! cannot fail, ends the process at the first check with exit status 2 and a message:
//! a typo must not turn a fault test into a test of nothing.
//!
//! [`Point::ALL`] is the registry: the crash walk (`tests/crash_walk.rs`) iterates it,
//! so a new point is walked as soon as it is declared here.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms failpoints.
pub const ENV: &str = "TOYSTORE_FAILPOINTS";

/// The exit status of a process stopped by an `exit` failpoint.
pub const EXIT_CODE: i32 = 86;

macro_rules! points {
    ($($(#[$doc:meta])* $point:ident = $name:literal, $fallible:literal;)*) => {
        /// A step boundary of the buy protocol where a fault can be injected.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Point {
            $($(#[$doc])* $point,)*
        }

        impl Point {
            /// Every point, in protocol order: the registry the crash walk iterates.
            pub const ALL: &'static [Point] = &[$(Point::$point,)*];

            /// The point's name in [`ENV`].
            pub fn name(self) -> &'static str {
                match self {
                    $(Point::$point => $name,)*
                }
            }

            /// Whether `error` is allowed here: the point precedes a record's append,
            /// and its caller handles the append failing.
            pub fn fallible(self) -> bool {
                match self {
                    $(Point::$point => $fallible,)*
                }
            }
        }
    };
}

points! {
    /// Order: a buy is about to be logged (nothing written yet).
    OrderBeforeIntent = "order.before_intent", true;
    /// Order: the intent is appended, not yet durable.
    OrderIntentAppended = "order.intent_appended", false;
    /// Order: the intent is durable; the catalog has not been asked.
    OrderAfterIntentDurable = "order.after_intent_durable", false;
    /// Order: the catalog's answer (or failure) to the buys is in hand.
    OrderAfterCatalog = "order.after_catalog", false;
    /// Order: about to append commits (numbers not yet taken).
    OrderBeforeCommit = "order.before_commit", true;
    /// Order: commits appended, not yet durable.
    OrderCommitAppended = "order.commit_appended", false;
    /// Order: commits durable, the reply not yet sent.
    OrderAfterCommitDurable = "order.after_commit_durable", false;
    /// Order: about to append aborts (refusals, voided buys).
    OrderBeforeAbort = "order.before_abort", true;
    /// Order: aborts appended, not yet durable.
    OrderAbortAppended = "order.abort_appended", false;
    /// Order: aborts durable, the reply not yet sent.
    OrderAfterAbortDurable = "order.after_abort_durable", false;
    /// Order: about to ask the catalog to resolve an open buy.
    OrderBeforeResolve = "order.before_resolve", false;
    /// Order: the catalog answered the resolve; the abort is not yet appended.
    OrderAfterResolve = "order.after_resolve", false;
    /// Catalog: buys applied and journaled, not yet durable.
    CatalogBuyJournaled = "catalog.buy_journaled", false;
    /// Catalog: buys durable, the reply not yet sent.
    CatalogBuyDurable = "catalog.buy_durable", false;
    /// Catalog: a resolve journaled (or nothing to journal), not yet durable.
    CatalogResolveJournaled = "catalog.resolve_journaled", false;
    /// Catalog: a resolve durable, the reply not yet sent.
    CatalogResolveDurable = "catalog.resolve_durable", false;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Exit,
    Error,
}

struct Armed {
    action: Action,
    /// Hits left before the point turns off (`u64::MAX`: always).
    left: AtomicU64,
}

/// The armed points, read from [`ENV`] once; `None` when nothing is armed.
static ARMED: OnceLock<Option<HashMap<Point, Armed>>> = OnceLock::new();

/// Marks a step that cannot fail: an armed `exit` ends the process here.
pub fn crash(point: Point) {
    debug_assert!(!point.fallible(), "{} can fail: use `fail`", point.name());
    // Parsing refused `error` for points that cannot fail.
    let _ = fire(point);
}

/// Marks a step before a record is appended: `Err` when an `error` is armed here (the
/// caller then behaves as if the append had failed); an armed `exit` ends the process.
pub fn fail(point: Point) -> io::Result<()> {
    debug_assert!(
        point.fallible(),
        "{} cannot fail: use `crash`",
        point.name()
    );
    fire(point)
}

fn fire(point: Point) -> io::Result<()> {
    let Some(armed) = ARMED.get_or_init(from_env) else {
        return Ok(());
    };
    let Some(armed) = armed.get(&point) else {
        return Ok(());
    };
    let counted = armed
        .left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
                .map(|l| if left == u64::MAX { left } else { l })
        })
        .is_ok();
    if !counted {
        return Ok(());
    }
    match armed.action {
        Action::Exit => {
            // A write to stderr that fails must not keep the process alive.
            let _ = writeln!(io::stderr(), "failpoint {}: exit", point.name());
            std::process::exit(EXIT_CODE)
        }
        Action::Error => Err(io::Error::other(format!(
            "failpoint {}: injected write error",
            point.name()
        ))),
    }
}

fn from_env() -> Option<HashMap<Point, Armed>> {
    let spec = std::env::var(ENV).ok().filter(|s| !s.trim().is_empty())?;
    match parse(&spec) {
        Ok(armed) => Some(armed),
        Err(why) => {
            let _ = writeln!(io::stderr(), "{ENV}: {why}");
            std::process::exit(2)
        }
    }
}

/// Parses `name=[N*]action;...` (`,` separates too).
fn parse(spec: &str) -> Result<HashMap<Point, Armed>, String> {
    let mut armed = HashMap::new();
    for item in spec
        .split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (name, action) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected name=action"))?;
        let point = Point::ALL
            .iter()
            .copied()
            .find(|p| p.name() == name.trim())
            .ok_or_else(|| format!("{name:?}: no such failpoint"))?;
        let (count, action) = match action.trim().split_once('*') {
            Some((count, action)) => (
                count
                    .parse::<u64>()
                    .map_err(|_| format!("{item:?}: bad count"))?,
                action,
            ),
            None => (u64::MAX, action.trim()),
        };
        let action = match action {
            "exit" => Action::Exit,
            "error" if point.fallible() => Action::Error,
            "error" => return Err(format!("{name}: cannot fail, only exit")),
            other => return Err(format!("{item:?}: unknown action {other:?}")),
        };
        armed.insert(
            point,
            Armed {
                action,
                left: AtomicU64::new(count),
            },
        );
    }
    Ok(armed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse() {
        let mut names: Vec<_> = Point::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Point::ALL.len());
        for point in Point::ALL {
            let armed = parse(&format!("{}=exit", point.name())).unwrap();
            assert_eq!(armed[point].action, Action::Exit);
        }
    }

    #[test]
    fn counts_and_errors() {
        let armed = parse(" order.before_commit=2*error ; order.after_catalog=exit").unwrap();
        assert_eq!(armed[&Point::OrderBeforeCommit].action, Action::Error);
        assert_eq!(
            armed[&Point::OrderBeforeCommit].left.load(Ordering::SeqCst),
            2
        );
        assert_eq!(
            armed[&Point::OrderAfterCatalog].left.load(Ordering::SeqCst),
            u64::MAX
        );
        for bad in [
            "nope=exit",
            "order.after_catalog=error",
            "order.before_commit=boom",
            "order.before_commit",
            "order.before_commit=x*exit",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
