//! Command-line flags of every binary, and their conversion into each service's
//! config. What a service process does with them (`--healthcheck`, binding, signals)
//! is the binaries' (`src/bin/process/`); what a service does is its `run`.

use crate::catalog::{self, CatalogConfig, BUILTIN_SEED};
use crate::frontend::{self, FrontendConfig};
use crate::http::{Limits, ServerConfig, ShutdownHandle};
use crate::order::{self, OrderConfig};
use crate::peer::{PeerAddr, PeerConfig, PeerLimits};
use crate::{CATALOG_PORT, FRONT_PORT, ORDER_PORT};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser};
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

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

impl ServerArgs {
    /// The address to listen on: `--listen`, else loopback on `default_port`.
    pub fn listen_address(&self, default_port: u16) -> String {
        self.listen
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{default_port}"))
    }

    /// The server's config these flags describe.
    pub fn to_config(&self) -> ServerConfig {
        ServerConfig {
            limits: self.limits.to_limits(),
            access_log: self.access_log,
            internal_token: self.internal_token.clone(),
        }
    }
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
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = PeerLimits::default().timeout.as_millis() as u64)]
    pub backend_timeout_ms: u64,
    /// Calls in flight to one peer at most; more wait up to 1 s for a slot, then get
    /// 503. Bounds how many workers a peer that stops answering can hold.
    #[arg(long, default_value_t = PeerLimits::default().max_in_flight)]
    pub backend_max_in_flight: usize,
}

impl BackendArgs {
    /// How a service with these flags and `server`'s internal token calls its peers.
    pub fn to_config(&self, server: &ServerArgs) -> PeerConfig {
        PeerConfig {
            limits: PeerLimits {
                timeout: Duration::from_millis(self.backend_timeout_ms.max(1)),
                max_in_flight: self.backend_max_in_flight,
                ..PeerLimits::default()
            },
            internal_token: server.internal_token.clone(),
        }
    }
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
    /// Also start a second front-end on this port, on the same catalog and order
    /// service, with its cache off (`CACHE_SIZE=0`): the uncached side of `client
    /// eval --uncached-front 127.0.0.1:PORT`.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub uncached_front_port: Option<u16>,
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
    /// Products kept in memory (least recently used evicted first), kept fresh by the
    /// catalog's push channel; 0 turns the cache off.
    #[arg(long, env = "CACHE_SIZE", default_value_t = frontend::DEFAULT_CACHE_SIZE)]
    pub cache_size: usize,
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

/// A service's flags: which service they start, and how they become its config.
/// The service binaries run any of them the same way (`src/bin/process/`).
pub trait ServiceArgs {
    /// The service's config.
    type Config;
    /// The service's name, in its log lines.
    const NAME: &'static str;
    /// The port it listens on without `--listen`.
    const DEFAULT_PORT: u16;
    /// The flags every service takes.
    fn server(&self) -> &ServerArgs;
    /// The config these flags describe, or why there is none.
    fn into_config(self) -> Result<Self::Config, String>;
    /// The service's `run`.
    const RUN: fn(Self::Config, TcpListener, ShutdownHandle) -> io::Result<()>;
}

impl ServiceArgs for CatalogArgs {
    type Config = CatalogConfig;
    const RUN: fn(CatalogConfig, TcpListener, ShutdownHandle) -> io::Result<()> = catalog::run;
    const NAME: &'static str = "catalog";
    const DEFAULT_PORT: u16 = CATALOG_PORT;

    fn server(&self) -> &ServerArgs {
        &self.server
    }

    fn into_config(self) -> Result<CatalogConfig, String> {
        let seed = match &self.seed {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read seed {}: {e}", path.display()))?,
            None => BUILTIN_SEED.to_string(),
        };
        Ok(CatalogConfig {
            server: self.server.to_config(),
            data_dir: self.data_dir,
            seed,
            admin_token: self.admin_token,
            restock_period: (self.restock_period_ms > 0)
                .then(|| Duration::from_millis(self.restock_period_ms)),
            restock_level: self.restock_level,
            snapshot_every: self.snapshot_every,
        })
    }
}

impl ServiceArgs for OrderArgs {
    type Config = OrderConfig;
    const RUN: fn(OrderConfig, TcpListener, ShutdownHandle) -> io::Result<()> = order::run;
    const NAME: &'static str = "order";
    const DEFAULT_PORT: u16 = ORDER_PORT;

    fn server(&self) -> &ServerArgs {
        &self.server
    }

    fn into_config(self) -> Result<OrderConfig, String> {
        Ok(OrderConfig {
            peers: self.backend.to_config(&self.server),
            server: self.server.to_config(),
            data_dir: self.data_dir,
            catalog: self.catalog,
        })
    }
}

impl ServiceArgs for FrontendArgs {
    type Config = FrontendConfig;
    const RUN: fn(FrontendConfig, TcpListener, ShutdownHandle) -> io::Result<()> = frontend::run;
    const NAME: &'static str = "frontend";
    const DEFAULT_PORT: u16 = FRONT_PORT;

    fn server(&self) -> &ServerArgs {
        &self.server
    }

    fn into_config(self) -> Result<FrontendConfig, String> {
        Ok(FrontendConfig {
            peers: self.backend.to_config(&self.server),
            server: self.server.to_config(),
            catalog: self.catalog,
            order: self.order,
            admin_token: self.admin_token,
            cache_size: self.cache_size,
        })
    }
}
