//! The lab's client, grown into a load generator and an evaluation harness.
//!
//! ```text
//!   args ──▶ load::run ──▶ N × Session (thread, keep-alive connection) ──▶ front-end
//!                │                 └─ Stats (own histograms, no shared lock)
//!                └─ merge ──▶ report (table or JSON)
//!   eval ──▶ load::run for every (clients, p), cache on and off ──▶ report.md + plot (SVG)
//!              └─ watch: GET /cache every 100 ms during the cached runs
//! ```
//!
//! ## Layout
//! - [`args`]: the command line, validated at parse time; [`prompt`] asks for
//!   the same when started on a terminal with no arguments.
//! - [`session`]: one keep-alive connection and the public API's calls.
//! - [`load`]: sessions on threads, open- or closed-loop, retries with one
//!   idempotency key per buy, read-back of orders.
//! - [`stats`] and [`report`]: HDR histograms per operation, merged at the end,
//!   printed as a table or JSON.
//! - [`eval`] and [`plot`]: the lab's sweep over client counts and buy
//!   probabilities on a cached and an uncached front-end, written up as Markdown
//!   with SVG plots; [`watch`] records which products were cached meanwhile.

mod args;
mod eval;
mod load;
mod plot;
mod prompt;
mod report;
mod session;
mod stats;
mod watch;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use self::args::{Cli, Command, LoadArgs};
use self::load::{Mode, Plan};
use self::report::Report;
use self::session::{ErrorKind, Failure, Session};
use crate::peer::PeerAddr;

/// Exit status for a run that went through but saw failures (transport errors,
/// 5xx, orders that did not read back) or could not start.
const EXIT_FAILED: u8 = 1;
/// Exit status for a command line that could not be understood, as clap uses.
const EXIT_USAGE: u8 = 2;

/// Runs the client with `args` (argv\[0\] included); what `client` and
/// `toystore client` call.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = if args.len() <= 1 {
        if !io::stdin().is_terminal() {
            // Ignore a closed stderr: there is nobody left to tell.
            let _ = writeln!(io::stderr(), "{}", Cli::command().render_help());
            return ExitCode::from(EXIT_USAGE);
        }
        match prompt::ask() {
            Some(cli) => cli,
            None => return ExitCode::from(EXIT_USAGE),
        }
    } else {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => {
                // --help and --version land here too, with exit code 0.
                let _ = e.print();
                return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
            }
        }
    };
    match run(cli) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Why the client could not do what it was asked.
#[derive(Debug)]
enum ClientError {
    /// The front-end did not answer at all.
    Unreachable {
        /// Its URL.
        front: String,
        /// What the transport said.
        failure: Failure,
    },
    /// `GET /products` failed or listed nothing, so random mode has no toy to pick.
    NoToys(String),
    /// The evaluation cannot restock between its points.
    Restock(String),
    /// The evaluation's front-ends are not what it needs (a cached one that does
    /// not cache, the same one twice, ...).
    Fronts(String),
    /// A report or plot could not be written.
    Output {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { front, failure } => write!(
                f,
                "cannot reach the front-end at {front} ({failure}); is it running? (set it with --front or FRONT)"
            ),
            ClientError::NoToys(why) => write!(f, "no toys to pick from: {why}"),
            ClientError::Restock(why) | ClientError::Fronts(why) => f.write_str(why),
            ClientError::Output { path, detail } => write!(f, "cannot write {}: {detail}", path.display()),
        }
    }
}

impl std::error::Error for ClientError {}

/// Runs the parsed command; `Ok` holds how many requests failed.
fn run(cli: Cli) -> Result<u64, ClientError> {
    let timeout = Duration::from_secs_f64(cli.timeout);
    let (mode, load) = match cli.command {
        Command::Query { name, load } => (Mode::Query { name }, load),
        Command::Buy {
            name,
            quantity,
            load,
        } => (Mode::Buy { name, quantity }, load),
        Command::Random { p, quantity, load } => (
            Mode::Random {
                names: toy_names(&cli.front, timeout)?,
                p,
                quantity,
            },
            load,
        ),
        Command::Eval(eval) => return eval::run(&cli.front, &eval, timeout, cli.quiet),
    };
    if !matches!(mode, Mode::Random { .. }) {
        // Random mode has already reached the front-end for the toys' names.
        check_front(&cli.front, timeout)?;
    }
    let plan = plan(mode, &load, timeout, cli.quiet);
    let outcome = load::run(&cli.front, &plan);
    let report = Report::new(
        plan.mode.name(),
        cli.front.url(),
        plan.clients,
        outcome.elapsed,
        &outcome.stats,
    );
    if load.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(report.failures)
}

/// The run `load` asks for. Replies are printed for one session only, where
/// lines cannot interleave; many sessions get a progress bar on a terminal.
fn plan(mode: Mode, load: &LoadArgs, timeout: Duration, quiet: bool) -> Plan {
    let talk = !quiet && !load.json;
    let echo = talk && load.clients == 1;
    Plan {
        mode,
        clients: load.clients,
        stop: load.stop(),
        rate: load.rate,
        retries: load.retries,
        timeout,
        echo,
        progress: talk && !echo && io::stdout().is_terminal(),
    }
}

/// Fails fast with one clear line when nothing answers at `front`; a server
/// that answers at all (even 404 for `/health`) is there.
fn check_front(front: &PeerAddr, timeout: Duration) -> Result<(), ClientError> {
    match Session::new(front, timeout).health() {
        Err(failure) if !matches!(failure.kind, ErrorKind::Status(_)) => {
            Err(ClientError::Unreachable {
                front: front.url().to_string(),
                failure,
            })
        }
        _ => Ok(()),
    }
}

/// The catalog's toy names, for random mode to pick from.
fn toy_names(front: &PeerAddr, timeout: Duration) -> Result<Vec<String>, ClientError> {
    let products =
        Session::new(front, timeout)
            .products()
            .map_err(|failure| match failure.kind {
                ErrorKind::Status(_) | ErrorKind::Protocol => {
                    ClientError::NoToys(format!("GET /products: {failure}"))
                }
                _ => ClientError::Unreachable {
                    front: front.url().to_string(),
                    failure,
                },
            })?;
    let names: Vec<String> = products.into_iter().map(|p| p.name).collect();
    if names.is_empty() {
        return Err(ClientError::NoToys("the catalog is empty".to_string()));
    }
    Ok(names)
}
