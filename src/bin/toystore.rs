//! `toystore`: with no arguments, the whole stack as three processes (the launcher);
//! with a subcommand, one role (how the launcher starts each service).

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;
use toystore::cli::{self, CatalogArgs, FrontendArgs, LauncherArgs, OrderArgs};

/// The toy store: catalog, order service and front-end.
#[derive(Parser)]
#[command(
    name = "toystore",
    version,
    about = "The toy store. With no subcommand: start catalog, order and front-end on the default ports; Ctrl-C stops them.",
    // The launcher's flags mean nothing to a role: refuse them there rather than ignore them.
    args_conflicts_with_subcommands = true
)]
struct Toystore {
    #[command(flatten)]
    launch: LauncherArgs,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum Role {
    /// Run the catalog service.
    Catalog(CatalogArgs),
    /// Run the order service.
    Order(OrderArgs),
    /// Run the front-end.
    Frontend(FrontendArgs),
    /// Run the client (see `toystore client --help`).
    #[command(disable_help_flag = true)]
    Client {
        /// The client's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let toystore = Toystore::parse();
    match toystore.role {
        None => toystore::launcher::run(toystore.launch),
        Some(Role::Catalog(args)) => cli::run_catalog(args),
        Some(Role::Order(args)) => cli::run_order(args),
        Some(Role::Frontend(args)) => cli::run_frontend(args),
        Some(Role::Client { args }) => {
            toystore::client::main_with_args(std::iter::once(OsString::from("client")).chain(args))
        }
    }
}
