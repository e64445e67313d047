//! Command-line flags of the services, and the code every service binary shares:
//! bind, print the address, stop on SIGTERM/SIGINT/SIGHUP (or when the launcher is
//! gone), `--healthcheck`.

use crate::catalog::{self, Catalog, BUILTIN_SEED};
use crate::frontend::{self, Frontend};
use crate::http::backend::Backend;
use crate::http::server::MetricsExtra;
use crate::http::{Limits, Router, Server, ServerOptions};
use crate::logging;
use crate::order::{self, OrderLog, OrderService};
use crate::peer::PeerAddr;
use crate::{CATALOG_PORT, FRONT_PORT, ORDER_PORT};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long a service that stops waits for its last lines to be written: an output
/// that blocks (a full pipe nobody reads) must not keep it from exiting.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// Server settings every service takes.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on, HOST:PORT; port 0 picks a free port. The address really
    /// bound is printed as `<service> listening on http://HOST:PORT`.
    #[arg(long, env = "LISTEN")]
    pub listen: Option<String>,
    /// Probe the running service's /health at its listen address and exit 0 if it
    /// answers 200 within 2 s, else 1 (for container health checks).
    #[arg(long)]
    pub healthcheck: bool,
    /// Write one access-log line per request to stdout. `GET /health` is not logged:
    /// the front-end probes its peers every second, as do container health checks
    /// (`/metrics` still counts those requests).
    #[arg(long, env = "ACCESS_LOG", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub access_log: bool,
    /// The token the services share (visible ASCII): every route but the public ones,
    /// `/health` and `/metrics` then requires `Authorization: Bearer TOKEN`, and every
    /// call to a peer sends it. Unset or empty: those routes are open. Prefer the
    /// environment: a flag shows in `ps`.
    #[arg(long, env = "INTERNAL_TOKEN", hide_env_values = true, value_parser = internal_token)]
    pub internal_token: Option<String>,
    /// Stop, as on SIGTERM, when stdin reaches its end: the launcher gives each service
    /// a pipe it holds open, so the services go with it however it ends.
    #[arg(long, hide = true)]
    pub stop_when_stdin_closes: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The server's limits (see `Limits` for why each default is what it is).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Worker threads.
    #[arg(long, env = "TOYSTORE_WORKERS", default_value_t = Limits::default().workers)]
    pub workers: usize,
    /// Open connections at most.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Connections waiting for a worker before new ones get 503.
    #[arg(long, default_value_t = Limits::default().max_queue)]
    pub max_queue: usize,
    /// Request line + headers, bytes (431 beyond).
    #[arg(long, default_value_t = Limits::default().max_head_bytes)]
    pub max_head_bytes: usize,
    /// Header count (431 beyond).
    #[arg(long, default_value_t = Limits::default().max_headers)]
    pub max_headers: usize,
    /// Body, bytes (413 beyond).
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Milliseconds from a request's first byte to its last (408 beyond).
    #[arg(long, default_value_t = Limits::default().request_timeout.as_millis() as u64)]
    pub request_timeout_ms: u64,
    /// Milliseconds an idle keep-alive connection is kept.
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_millis() as u64)]
    pub idle_timeout_ms: u64,
    /// Milliseconds a response may take to write.
    #[arg(long, default_value_t = Limits::default().write_timeout.as_millis() as u64)]
    pub write_timeout_ms: u64,
    /// Response bytes a connection may hold unwritten before its further requests wait.
    #[arg(long, default_value_t = Limits::default().max_unwritten_bytes)]
    pub max_unwritten_bytes: usize,
    /// Milliseconds a worker waits for a connection's next request before parking it.
    #[arg(long, default_value_t = Limits::default().linger.as_millis() as u64)]
    pub linger_ms: u64,
    /// Requests served on one connection before it is closed.
    #[arg(long, default_value_t = Limits::default().max_requests_per_connection)]
    pub max_requests_per_connection: usize,
    /// Milliseconds in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = Limits::default().shutdown_grace.as_millis() as u64)]
    pub shutdown_grace_ms: u64,
}

impl LimitArgs {
    /// The limits these flags describe.
    pub fn to_limits(&self) -> Limits {
        Limits {
            max_head_bytes: self.max_head_bytes,
            max_headers: self.max_headers.max(1),
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_requests_per_connection: self.max_requests_per_connection.max(1),
            write_timeout: Duration::from_millis(self.write_timeout_ms.max(1)),
            max_unwritten_bytes: self.max_unwritten_bytes,
            linger: Duration::from_millis(self.linger_ms),
            workers: self.workers.max(1),
            max_connections: self.max_connections.max(1),
            max_queue: self.max_queue,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }
}

/// Settings of calls to a peer service.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Milliseconds a call to a peer may take before it fails as 504 (the contract allows 5 s).
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 4000)]
    pub backend_timeout_ms: u64,
    /// Calls in flight to one peer at most; more wait up to 1 s for a slot, then get
    /// 503. Bounds how many workers a peer that stops answering can hold.
    #[arg(long, default_value_t = 64)]
    pub backend_max_in_flight: usize,
}

/// The launcher's flags (`toystore` with no subcommand).
#[derive(Debug, Clone, Args)]
pub struct LauncherArgs {
    /// Token that `PUT /products/{name}` must carry as `Authorization: Bearer ...`,
    /// given to the catalog and the front-end it starts; unset, they take
    /// `ADMIN_TOKEN` from the environment, and without either admin updates are off.
    /// Prefer the environment: a flag shows in `ps`.
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
}

/// The catalog service.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "catalog",
    version,
    about = "The toy store's catalog: products, stock, buys (default 127.0.0.1:10086)."
)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Directory of catalog.snapshot and catalog.journal.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Seed file (`id name price quantity [category]` per line), read on first start
    /// only; default: the repository's database.txt, built into the binary.
    #[arg(long, env = "SEED")]
    pub seed: Option<PathBuf>,
    /// Token that `PUT /products/{name}` must carry as `Authorization: Bearer ...`;
    /// unset disables admin updates.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Milliseconds between restocks of sold-out products; 0 never restocks.
    #[arg(long, env = "RESTOCK_PERIOD_MS", default_value_t = 10_000)]
    pub restock_period_ms: u64,
    /// Stock a sold-out product is restocked to.
    #[arg(long, env = "RESTOCK_LEVEL", default_value_t = 100)]
    pub restock_level: u64,
    /// Journal records between snapshots.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
}

/// The order service.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "order",
    version,
    about = "The toy store's order service: order numbers and the order log (default 127.0.0.1:10010)."
)]
pub struct OrderArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Directory of orders.log.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The catalog: host, host:port or http://host:port.
    #[arg(long, env = "CATALOG", default_value = "127.0.0.1", value_parser = catalog_addr)]
    pub catalog: PeerAddr,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The front-end.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "frontend",
    version,
    about = "The toy store's public front-end (default 127.0.0.1:6060)."
)]
pub struct FrontendArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The catalog: host, host:port or http://host:port.
    #[arg(long, env = "CATALOG", default_value = "127.0.0.1", value_parser = catalog_addr)]
    pub catalog: PeerAddr,
    /// The order service: host, host:port or http://host:port.
    #[arg(long, env = "ORDER", default_value = "127.0.0.1", value_parser = order_addr)]
    pub order: PeerAddr,
    /// Token that `PUT /products/{name}` must carry; unset disables admin updates.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

fn internal_token(text: &str) -> Result<String, String> {
    if text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_string())
    } else {
        Err("the internal token must be visible ascii characters (it is sent in a header)".into())
    }
}

fn catalog_addr(text: &str) -> Result<PeerAddr, String> {
    PeerAddr::parse(text, CATALOG_PORT).map_err(|e| e.to_string())
}

fn order_addr(text: &str) -> Result<PeerAddr, String> {
    PeerAddr::parse(text, ORDER_PORT).map_err(|e| e.to_string())
}

/// Runs the catalog until SIGTERM/SIGINT.
pub fn run_catalog(args: CatalogArgs) -> ExitCode {
    let listen = listen_address(&args.server, CATALOG_PORT);
    if args.server.healthcheck {
        return healthcheck(&listen);
    }
    crate::malloc::limit_thread_caches();
    let seed = match &args.seed {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                return fail(
                    "catalog",
                    format!("cannot read seed {}: {e}", path.display()),
                )
            }
        },
        None => BUILTIN_SEED.to_string(),
    };
    let catalog = match Catalog::open(&args.data_dir, &seed, args.snapshot_every) {
        Ok(catalog) => Arc::new(catalog),
        Err(e) => return fail("catalog", data_dir_error(&args.data_dir, &e)),
    };
    let (stop_restock, stopped) = crossbeam_channel::bounded::<()>(0);
    if args.restock_period_ms > 0 {
        catalog::spawn_restocker(
            Arc::clone(&catalog),
            Duration::from_millis(args.restock_period_ms),
            args.restock_level,
            stopped,
        );
    }
    let router = catalog::api::router(Arc::clone(&catalog), args.admin_token);
    let extra: MetricsExtra = Box::new(move || catalog::metrics(&catalog));
    let code = serve("catalog", &listen, router, &args.server, Some(extra));
    drop(stop_restock);
    code
}

/// Runs the order service until SIGTERM/SIGINT.
pub fn run_order(args: OrderArgs) -> ExitCode {
    let listen = listen_address(&args.server, ORDER_PORT);
    if args.server.healthcheck {
        return healthcheck(&listen);
    }
    crate::malloc::limit_thread_caches();
    let log = match OrderLog::open(&args.data_dir) {
        Ok(log) => log,
        Err(e) => return fail("order", data_dir_error(&args.data_dir, &e)),
    };
    let catalog = backend("catalog", args.catalog, &args.backend, &args.server);
    let service = Arc::new(OrderService::new(log, catalog));
    let (stop_resolver, stopped) = crossbeam_channel::bounded::<()>(0);
    order::spawn_resolver(Arc::clone(&service), Duration::from_millis(500), stopped);
    let router = order::router(Arc::clone(&service));
    let extra: MetricsExtra = Box::new(move || order::metrics(&service));
    let code = serve("order", &listen, router, &args.server, Some(extra));
    drop(stop_resolver);
    code
}

/// Runs the front-end until SIGTERM/SIGINT.
pub fn run_frontend(args: FrontendArgs) -> ExitCode {
    let listen = listen_address(&args.server, FRONT_PORT);
    if args.server.healthcheck {
        return healthcheck(&listen);
    }
    crate::malloc::limit_thread_caches();
    let frontend = Arc::new(Frontend {
        catalog: backend("catalog", args.catalog, &args.backend, &args.server),
        order: backend("order", args.order, &args.backend, &args.server),
        admin_token: args.admin_token,
    });
    let (stop_monitor, stopped) = crossbeam_channel::bounded::<()>(0);
    frontend::spawn_monitor(Arc::clone(&frontend), Duration::from_secs(1), stopped);
    let code = serve(
        "frontend",
        &listen,
        frontend::router(frontend),
        &args.server,
        None,
    );
    drop(stop_monitor);
    code
}

/// The user the container images run as (`USER` in `dockerfiles/*.Dockerfile`).
pub const IMAGE_UID: u32 = 10001;

/// Why a service could not open its data directory. A refusal names the user this
/// process runs as: the usual cause is a Docker bind mount owned by root, which the
/// image's unprivileged user cannot write.
fn data_dir_error(dir: &Path, e: &io::Error) -> String {
    let mut message = format!("cannot open the data directory {}: {e}", dir.display());
    if matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    ) {
        let user = running_user().unwrap_or_else(|| "an unknown user".to_string());
        message.push_str(&format!(
            "; this process runs as {user} and must be able to create and write files there \
             (the container images run as uid {IMAGE_UID}: for a bind mount, \
             `chown -R {IMAGE_UID}:{IMAGE_UID}` the host directory, or use a named volume)"
        ));
    }
    message
}

/// `uid U, gid G` of this process (effective ids), from `/proc/self/status`: std has
/// no getuid, and this crate has no unsafe code to call libc with.
fn running_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // "Uid:\treal\teffective\tsaved\tfs": the effective id decides access.
    let effective = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .map(str::to_string)
    };
    Some(format!(
        "uid {}, gid {}",
        effective("Uid:")?,
        effective("Gid:")?
    ))
}

/// A pooled client for a peer, sending the internal token.
fn backend(name: &'static str, addr: PeerAddr, args: &BackendArgs, server: &ServerArgs) -> Backend {
    let timeout = Duration::from_millis(args.backend_timeout_ms.max(1));
    Backend::new(name, addr, timeout, args.backend_max_in_flight, 2)
        .with_internal_token(server.internal_token.as_deref())
}

fn listen_address(server: &ServerArgs, default_port: u16) -> String {
    server
        .listen
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{default_port}"))
}

/// Binds, prints the address, serves until a signal (or the end of stdin, with
/// `--stop-when-stdin-closes`), and exits 0 after a clean stop.
fn serve(
    name: &'static str,
    listen: &str,
    router: Router,
    args: &ServerArgs,
    metrics_extra: Option<MetricsExtra>,
) -> ExitCode {
    let options = ServerOptions {
        name,
        limits: args.limits.to_limits(),
        access_log: args.access_log,
        metrics_extra,
    };
    let router = router.internal_token(args.internal_token.clone());
    let server = match Server::bind(listen, router, options) {
        Ok(server) => server,
        Err(e) => return fail(name, format!("cannot listen on {listen}: {e}")),
    };
    let addr = match server.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(name, format!("cannot read the bound address: {e}")),
    };
    let handle = server.shutdown_handle();
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(mut signals) => {
            let handle = handle.clone();
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    handle.shutdown();
                    logging::warn(format!("{name}: signal {signal}, shutting down"));
                }
            });
        }
        Err(e) => return fail(name, format!("cannot install signal handlers: {e}")),
    }
    if args.stop_when_stdin_closes {
        std::thread::spawn(move || {
            // Nothing is ever written: the read returns when the launcher is gone.
            let _ = std::io::stdin().read(&mut [0u8; 64]);
            handle.shutdown();
            logging::warn(format!("{name}: the launcher is gone, shutting down"));
        });
    }
    logging::info(format!("{name} listening on http://{addr}"));
    let code = match server.run() {
        Ok(()) => {
            logging::warn(format!("{name}: stopped"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(name, format!("server failed: {e}")),
    };
    logging::flush(LAST_LINES_WAIT);
    code
}

/// `--healthcheck`: GET /health on our own address (an unspecified address means loopback).
fn healthcheck(listen: &str) -> ExitCode {
    let Some(mut addr) = listen.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return fail("healthcheck", format!("cannot resolve {listen}"));
    };
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        addr = SocketAddr::new(loopback, addr.port());
    }
    let peer = PeerAddr::parse(&addr.to_string(), addr.port())
        .expect("a socket address is a valid peer address");
    if Backend::new("self", peer, Duration::from_secs(2), 1, 0).probe() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(name: &str, message: String) -> ExitCode {
    logging::warn(format!("{name}: error: {message}"));
    logging::flush(LAST_LINES_WAIT);
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_data_dir_names_the_directory_and_the_user() {
        let dir = Path::new("/data");
        let refused = data_dir_error(dir, &io::Error::from(io::ErrorKind::PermissionDenied));
        let me = running_user().expect("/proc/self/status names the user");
        for part in ["/data", me.as_str(), "uid 10001", "chown -R 10001:10001"] {
            assert!(refused.contains(part), "{part:?} missing from {refused:?}");
        }
        // Other failures are not about the user: no advice that would mislead.
        let corrupt = data_dir_error(dir, &io::Error::other("bad checksum"));
        assert!(
            corrupt.contains("/data") && !corrupt.contains("uid"),
            "{corrupt}"
        );
    }

    #[test]
    fn the_image_uid_is_the_dockerfiles_user() {
        let dockerfiles = concat!(env!("CARGO_MANIFEST_DIR"), "/dockerfiles");
        for service in ["catalog", "order", "frontend"] {
            let path = format!("{dockerfiles}/{service}.Dockerfile");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&format!("USER {IMAGE_UID}:{IMAGE_UID}")),
                "{path} does not run as uid {IMAGE_UID}"
            );
        }
    }
}
