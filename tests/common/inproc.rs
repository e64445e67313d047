//! The three services in this process: each one's `run` on a listener bound to port 0,
//! in a thread, the way its binary calls it. No process boundary: the stack for a test
//! about a service's behaviour, not about its process (no signals, restarts, output
//! lines, flags or environment). Started by [`Stack::in_process`] and its [`Builder`];
//! the same [`Stack`] shortcuts (`get`, `buy`, `admin_put`, ...) work on it. Dropping
//! the stack stops every service, front to back, and joins its thread.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use toystore::catalog::{self, CatalogConfig, BUILTIN_SEED};
use toystore::frontend::{self, FrontendConfig};
use toystore::http::{ServerConfig, ShutdownHandle};
use toystore::order::{self, OrderConfig};
use toystore::peer::{PeerAddr, PeerConfig};

use super::{eventually, skip_when_external, Http, Stack, TEST_TOKEN};

/// How long a service started in this process may take to answer `/health`: it binds
/// before its thread starts, so this only covers opening its data directory (and a
/// loaded machine).
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// A config change before a service starts: a field a test wants different (a limit,
/// a peer, a cache).
type Tweak<C> = Box<dyn FnOnce(&mut C)>;

/// A service running in a thread of this process.
pub struct Running {
    name: &'static str,
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Binds port 0, calls `run` with the listener in a new thread, and waits until
    /// the service answers `GET /health` with 200 (alone, for a test of one service).
    pub fn start<C: Send + 'static>(
        name: &'static str,
        config: C,
        run: fn(C, TcpListener, ShutdownHandle) -> io::Result<()>,
    ) -> Running {
        let listener = toystore::http::bind("127.0.0.1:0").expect("bind port 0");
        let addr = listener.local_addr().expect("bound address");
        let shutdown = ShutdownHandle::new();
        let handle = shutdown.clone();
        let thread = thread::Builder::new()
            .name(format!("inproc-{name}"))
            .spawn(move || run(config, listener, handle))
            .expect("spawn a service thread");
        let mut running = Running {
            name,
            addr,
            shutdown,
            thread: Some(thread),
        };
        let http = Http::with_timeout(Duration::from_secs(2));
        let health = format!("{}/health", running.url());
        eventually(
            &format!("{name} to answer /health"),
            STARTUP_DEADLINE,
            || {
                if running.thread.as_ref().is_some_and(|t| t.is_finished()) {
                    let result = running.join();
                    panic!("{name}: run returned before serving: {result:?}");
                }
                http.try_get(&health).ok().filter(|r| r.status == 200)
            },
        );
        running
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its address as a peer's config takes it.
    pub fn peer(&self) -> PeerAddr {
        PeerAddr::parse(&self.url(), self.addr.port()).expect("a bound address is a peer")
    }

    /// Asks the service to stop and waits for its `run` to return: what it returned
    /// (a panic in `run` becomes an error). `Ok` again once stopped.
    fn join(&mut self) -> io::Result<()> {
        self.shutdown.shutdown();
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other(format!("{}: run panicked", self.name))),
        }
    }

    /// Stops the service; fails the test unless its `run` returned `Ok` and the port
    /// is closed.
    #[track_caller]
    pub fn stop(&mut self) {
        if let Err(e) = self.join() {
            panic!("{}: run did not return Ok after a shutdown: {e}", self.name);
        }
        assert!(
            TcpStream::connect(self.addr).is_err(),
            "{} at {} still accepts after run returned",
            self.name,
            self.addr
        );
    }
}

impl Drop for Running {
    /// Stops and joins: no service thread outlives its test.
    fn drop(&mut self) {
        let result = self.join();
        if !thread::panicking() {
            result.unwrap_or_else(|e| panic!("{}: run failed: {e}", self.name));
        }
    }
}

/// The services of an in-process stack and what it takes to start another front-end.
pub struct InProcess {
    /// The front-ends, the first one the stack's `front`. Fields drop in order: the
    /// front-ends stop first, so that none calls a backend that is gone.
    fronts: Vec<Running>,
    order: Running,
    catalog: Running,
    /// The config every front-end starts from, before a test's tweak.
    frontend: FrontendConfig,
    _catalog_dir: tempfile::TempDir,
    _order_dir: tempfile::TempDir,
}

impl InProcess {
    /// Stops every service front to back, as the launcher does (so no buy is cut off),
    /// checking each `run` returned `Ok` and closed its port.
    #[track_caller]
    pub fn stop(&mut self) {
        for front in self.fronts.iter_mut().rev() {
            front.stop();
        }
        self.order.stop();
        self.catalog.stop();
    }

    pub(super) fn catalog_url(&self) -> String {
        self.catalog.url()
    }

    pub(super) fn order_url(&self) -> String {
        self.order.url()
    }

    fn start_frontend(&mut self, tweak: impl FnOnce(&mut FrontendConfig)) -> String {
        let mut config = self.frontend.clone();
        tweak(&mut config);
        let front = Running::start("frontend", config, frontend::run);
        let url = front.url();
        self.fronts.push(front);
        url
    }
}

/// What an in-process stack starts with; the defaults are those of a spawned stack:
/// the built-in seed, no restock (stock counts stay exact), [`TEST_TOKEN`] as the admin
/// token, internal routes open.
pub struct Builder {
    seed: Option<String>,
    restock_period: Option<Duration>,
    admin_token: Option<String>,
    internal_token: Option<String>,
    order: Tweak<OrderConfig>,
    frontend: Tweak<FrontendConfig>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            seed: None,
            restock_period: None,
            admin_token: Some(TEST_TOKEN.to_string()),
            internal_token: None,
            order: Box::new(|_| {}),
            frontend: Box::new(|_| {}),
        }
    }
}

impl Builder {
    /// The catalog's seed text (`id name price quantity [category]` per line).
    pub fn seed(mut self, text: impl Into<String>) -> Self {
        self.seed = Some(text.into());
        self
    }

    /// Restock sold-out products every `period` (off by default).
    pub fn restock(mut self, period: Duration) -> Self {
        self.restock_period = Some(period);
        self
    }

    /// The admin token of the catalog and the front-end; `None` turns admin updates off.
    pub fn admin_token(mut self, token: Option<&str>) -> Self {
        self.admin_token = token.map(str::to_string);
        self
    }

    /// The token every service's internal routes require and its peer calls send.
    pub fn internal_token(mut self, token: &str) -> Self {
        self.internal_token = Some(token.to_string());
        self
    }

    /// Changes the first front-end's config before it starts (extra front-ends get
    /// their own tweak, [`Stack::start_frontend`]).
    pub fn frontend(mut self, tweak: impl FnOnce(&mut FrontendConfig) + 'static) -> Self {
        self.frontend = Box::new(tweak);
        self
    }

    /// Changes the order service's config before it starts.
    pub fn order(mut self, tweak: impl FnOnce(&mut OrderConfig) + 'static) -> Self {
        self.order = Box::new(tweak);
        self
    }

    /// For a test that needs fresh state: the started stack, or `None` (after saying
    /// why) in external mode, where the servers are someone else's.
    pub fn fresh(self, test: &str) -> Option<Stack> {
        (!skip_when_external(test)).then(|| self.start())
    }

    /// Starts catalog, order and front-end, each waited for until it answers `/health`.
    pub fn start(self) -> Stack {
        let server = ServerConfig {
            internal_token: self.internal_token.clone(),
            ..ServerConfig::default()
        };
        let peers = PeerConfig {
            internal_token: self.internal_token,
            ..PeerConfig::default()
        };
        let catalog_dir = data_dir("catalog");
        let order_dir = data_dir("order");
        let catalog = Running::start(
            "catalog",
            CatalogConfig {
                server: server.clone(),
                data_dir: catalog_dir.path().to_path_buf(),
                seed: self.seed.unwrap_or_else(|| BUILTIN_SEED.to_string()),
                admin_token: self.admin_token.clone(),
                restock_period: self.restock_period,
                restock_level: 100,
                snapshot_every: 10_000,
            },
            catalog::run,
        );
        let mut order_config = OrderConfig {
            server: server.clone(),
            data_dir: order_dir.path().to_path_buf(),
            catalog: catalog.peer(),
            peers: peers.clone(),
        };
        (self.order)(&mut order_config);
        let order = Running::start("order", order_config, order::run);
        let mut services = InProcess {
            fronts: Vec::new(),
            frontend: FrontendConfig {
                server,
                catalog: catalog.peer(),
                order: order.peer(),
                peers,
                admin_token: self.admin_token.clone(),
                cache_size: frontend::DEFAULT_CACHE_SIZE,
            },
            order,
            catalog,
            _catalog_dir: catalog_dir,
            _order_dir: order_dir,
        };
        let front = services.start_frontend(self.frontend);
        Stack::from_in_process(front, services, self.admin_token)
    }
}

fn data_dir(service: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("toystore-inproc-{service}-"))
        .tempdir()
        .expect("temp dir")
}

impl Stack {
    /// A fresh stack of the three services in this process (see [`Builder`]); start it
    /// with `.start()`, or `.fresh(test)` for a test that also runs in external mode.
    pub fn in_process() -> Builder {
        Builder::default()
    }

    /// Starts one more front-end against this in-process stack's catalog and order
    /// service, its config changed by `tweak`; returns its base URL. It stops with
    /// the stack.
    pub fn start_frontend(&mut self, tweak: impl FnOnce(&mut FrontendConfig)) -> String {
        self.services_mut().start_frontend(tweak)
    }

    /// Stops every service of an in-process stack, front to back, and checks each
    /// `run` returned `Ok` and closed its port (dropping the stack stops them too).
    #[track_caller]
    pub fn stop_all(&mut self) {
        self.services_mut().stop();
    }

    fn services_mut(&mut self) -> &mut InProcess {
        self.in_process
            .as_mut()
            .expect("an in-process stack (Stack::in_process)")
    }
}
