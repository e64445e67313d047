//! The server: a listener, a bounded pool of worker threads fed through a
//! crossbeam channel, and a reactor thread that holds idle connections.
//!
//! A worker owns a connection while requests keep coming, waiting at most
//! [`Limits::linger`] for the next one. A connection with nothing to read is handed to
//! the reactor, which waits for it to become readable (epoll, through mio) without a
//! thread, sends it back to the pool when it is, and closes it when its idle or request
//! deadline passes. So a thousand idle keep-alive clients cost a thousand small entries,
//! not a thousand threads, and a slow sender holds a worker only while bytes arrive.
//! A connection whose client is not reading its responses waits in the reactor too,
//! until it is writable, and is closed when its write deadline passes (see `conn`).

use super::conn::{read_slice, Conn, Next};
use super::error::ApiError;
use super::limits::Limits;
use super::metrics::{Metrics, Sampled};
use super::request::Request;
use super::response::Response;
use super::router::{Routed, Router};
use crate::logging;
use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN_TOKEN: usize = 2;
/// Connections the kernel queues before we accept them (capped by net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 4096;
/// How often the reactor looks for connections past their deadline.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Extra Prometheus lines a service adds to `/metrics` (its own gauges).
pub type MetricsExtra = Box<dyn Fn() -> String + Send + Sync>;

/// What every worker and the reactor share.
pub(crate) struct Shared {
    /// The service's name, for logs and metrics.
    pub name: &'static str,
    pub router: Router,
    pub limits: Limits,
    pub metrics: Metrics,
    metrics_extra: Option<MetricsExtra>,
    shutdown: ShutdownHandle,
    /// A receiver kept only to read the queue length.
    jobs: Receiver<Conn>,
    parked: AtomicUsize,
    /// Whether each answered request gets an access-log line.
    access_log: bool,
    request_ids: AtomicU64,
    id_prefix: u32,
}

impl Shared {
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_shutdown()
    }

    /// Connections waiting for a worker.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Whether a connection waits for a worker and no worker is free to take it: then
    /// a worker waiting on a quiet connection should hand it to the reactor.
    pub fn others_waiting(&self) -> bool {
        self.queued() > 0
            && self.metrics.busy_workers.load(Ordering::Relaxed) >= self.limits.workers
    }

    /// The request's id: the client's `X-Request-Id` when it is sane, else a new one.
    pub fn request_id(&self, given: Option<&str>) -> String {
        match given {
            Some(id)
                if (1..=128).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
            {
                id.to_string()
            }
            _ => format!(
                "{:08x}{:06x}",
                self.id_prefix,
                self.request_ids.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Routes a request; `GET /metrics` is answered here for every service.
    pub fn dispatch(&self, request: &Request) -> Routed {
        let metrics = request.head.path() == "/metrics";
        if metrics && !matches!(request.method(), "GET" | "HEAD") {
            // As the router answers a route's other methods: the path exists.
            let response = Response::from(ApiError::method_not_allowed("method not allowed"))
                .with_header("Allow", "GET, HEAD");
            return Routed::response("/metrics", response);
        }
        if metrics {
            let sampled = Sampled {
                workers: self.limits.workers,
                queued: self.queued(),
                parked: self.parked.load(Ordering::Relaxed),
            };
            let mut extra = self.metrics_extra.as_ref().map(|f| f()).unwrap_or_default();
            extra.push_str(&format!("# HELP toystore_log_lines_dropped_total Log lines dropped because the output did not keep up.\n# TYPE toystore_log_lines_dropped_total counter\ntoystore_log_lines_dropped_total {}\n", logging::dropped()));
            let body = self.metrics.render(self.name, sampled, &extra);
            return Routed::response(
                "/metrics",
                Response::text(200, "text/plain; version=0.0.4", body),
            );
        }
        self.router.dispatch(request)
    }

    /// Metrics and the access-log line of one answered request.
    pub fn record(
        &self,
        request: &Request,
        route: &'static str,
        status: u16,
        bytes: usize,
        elapsed: Duration,
    ) {
        self.metrics
            .record(route, request.method(), status, elapsed);
        // Health probes come every second from the front-end's monitor and from
        // container health checks: logged, they would bury every other line.
        if self.access_log && route != "/health" {
            // Everything a client chose is escaped: it must not forge or garble a line.
            logging::info(format!(
                "{} {} {} {} {} {}B {:.3}ms",
                self.name,
                logging::escape(&request.request_id),
                logging::escape(request.method()),
                logging::escape(&request.head.target),
                status,
                bytes,
                elapsed.as_secs_f64() * 1000.0
            ));
        }
    }
}

/// Stops a server: stop accepting, finish in-flight requests, return from `run`.
///
/// Made before the server it stops (a service's caller makes one, hands a clone to
/// [`serve`] and keeps one for its signal handler or test), or taken from a bound
/// [`Server`]. A shutdown asked for before the server runs stops it as soon as it starts.
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    inner: Arc<ShutdownState>,
}

#[derive(Default)]
struct ShutdownState {
    asked: AtomicBool,
    /// The reactors to wake (one per server run with this handle).
    wakers: parking_lot::Mutex<Vec<Arc<Waker>>>,
}

impl ShutdownHandle {
    /// A handle that no server uses yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the server to stop; returns at once.
    pub fn shutdown(&self) {
        self.inner.asked.store(true, Ordering::SeqCst);
        for waker in self.inner.wakers.lock().iter() {
            let _ = waker.wake();
        }
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutdown(&self) -> bool {
        self.inner.asked.load(Ordering::Relaxed)
    }

    /// Wakes `waker` on shutdown (at once, if it was already asked for).
    fn attach(&self, waker: Arc<Waker>) {
        let mut wakers = self.inner.wakers.lock();
        if self.is_shutdown() {
            let _ = waker.wake();
        }
        wakers.push(waker);
    }
}

/// Binds `addr` for a server, with a deep accept queue: std listens with a backlog of
/// 128, and a burst of a thousand connects then overflows the kernel's queue, so
/// clients wait out SYN retransmits (1 s, 3 s, ...).
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(ErrorKind::InvalidInput, format!("{addr} names no address"))
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// What every service's server takes from its flags (see `cli::ServerArgs`).
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Limits and pool sizes.
    pub limits: Limits,
    /// Whether to write one access-log line per request (but `GET /health`) to stdout.
    pub access_log: bool,
    /// The token internal routes require and peer calls send; `None`: they are open.
    pub internal_token: Option<String>,
}

/// Serves `router` as service `name` on `listener` until `shutdown`, then lets
/// in-flight requests finish within the grace period: the last step of every
/// service's `run`.
pub fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    metrics_extra: Option<MetricsExtra>,
    shutdown: ShutdownHandle,
) -> io::Result<()> {
    let options = ServerOptions {
        name,
        limits: config.limits.clone(),
        access_log: config.access_log,
        metrics_extra,
    };
    let router = router.internal_token(config.internal_token.clone());
    Server::from_listener(listener, router, options)?
        .stop_on(shutdown)
        .run()
}

/// Options a service sets on its server.
pub struct ServerOptions {
    /// The service's name (`catalog`), in logs and metrics.
    pub name: &'static str,
    /// Limits and pool sizes.
    pub limits: Limits,
    /// Whether to write one access-log line per request (but `GET /health`) to stdout.
    pub access_log: bool,
    /// Service-specific lines for `/metrics`.
    pub metrics_extra: Option<MetricsExtra>,
}

/// A bound server, not yet running. Binding first lets callers (and tests, on port 0)
/// learn the real address before serving.
pub struct Server {
    listener: TcpListener,
    poll: Poll,
    waker: Arc<Waker>,
    handle: ShutdownHandle,
    router: Router,
    options: ServerOptions,
}

impl Server {
    /// Binds `addr` (see [`bind`]) and prepares the reactor.
    pub fn bind(addr: &str, router: Router, options: ServerOptions) -> io::Result<Server> {
        Self::from_listener(bind(addr)?, router, options)
    }

    /// Uses a listener bound elsewhere.
    pub fn from_listener(
        listener: TcpListener,
        router: Router,
        options: ServerOptions,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            listener,
            poll,
            waker,
            handle: ShutdownHandle::new(),
            router,
            options,
        })
    }

    /// The address really bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops [`Server::run`] from another thread (a signal handler).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Stops on `handle` instead of the server's own.
    pub fn stop_on(mut self, handle: ShutdownHandle) -> Self {
        self.handle = handle;
        self
    }

    /// Serves until shut down, then lets in-flight requests finish within the grace period.
    pub fn run(self) -> io::Result<()> {
        let Server {
            listener,
            mut poll,
            waker,
            handle,
            router,
            options,
        } = self;
        handle.attach(Arc::clone(&waker));
        let limits = options.limits;
        // Each connection is in exactly one place (a worker, this queue, or the reactor),
        // so a queue as large as the connection limit can never overflow.
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Conn>(limits.max_connections + 1);
        let (park_tx, park_rx) = crossbeam_channel::unbounded::<Conn>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
        let shared = Arc::new(Shared {
            name: options.name,
            router,
            metrics: Metrics::default(),
            metrics_extra: options.metrics_extra,
            shutdown: handle,
            jobs: job_rx.clone(),
            parked: AtomicUsize::new(0),
            access_log: options.access_log,
            request_ids: AtomicU64::new(0),
            id_prefix: fastrand::u32(..),
            limits,
        });

        for index in 0..shared.limits.workers.max(1) {
            let (jobs, park, done, waker, shared) = (
                job_rx.clone(),
                park_tx.clone(),
                done_tx.clone(),
                Arc::clone(&waker),
                Arc::clone(&shared),
            );
            thread::Builder::new()
                .name(format!("{}-worker-{index}", shared.name))
                .spawn(move || {
                    work(&jobs, &park, &waker, &shared);
                    drop(done);
                })?;
        }
        drop((job_rx, park_tx, done_tx));

        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        let mut reactor = Reactor {
            listener,
            jobs: job_tx,
            parked: HashMap::new(),
            next_token: FIRST_CONN_TOKEN,
            shared: Arc::clone(&shared),
        };
        let result = reactor.run(&mut poll, &park_rx);
        // Stop accepting and drop idle connections; queued ones are still served.
        drop(reactor);
        drop(park_rx);
        let deadline = Instant::now() + shared.limits.shutdown_grace;
        // Every worker holds a `done` sender; all are gone when the last worker exits.
        while done_rx.recv_deadline(deadline).is_ok() {}
        result
    }
}

/// A worker: serves connections from the queue until the queue is closed.
fn work(jobs: &Receiver<Conn>, park: &Sender<Conn>, waker: &Waker, shared: &Shared) {
    let mut out = Vec::with_capacity(1024);
    for conn in jobs.iter() {
        shared.metrics.busy_workers.fetch_add(1, Ordering::Relaxed);
        let next = conn.serve(shared, &mut out);
        shared.metrics.busy_workers.fetch_sub(1, Ordering::Relaxed);
        if let Next::Park(conn) = next {
            if !shared.shutting_down() && park.send(conn).is_ok() {
                let _ = waker.wake();
            }
        }
    }
}

/// Holds idle connections and accepts new ones.
struct Reactor {
    listener: TcpListener,
    jobs: Sender<Conn>,
    parked: HashMap<usize, Conn>,
    next_token: usize,
    shared: Arc<Shared>,
}

impl Reactor {
    fn run(&mut self, poll: &mut Poll, park_rx: &Receiver<Conn>) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let timeout = next_sweep.saturating_duration_since(Instant::now());
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            if self.shared.shutting_down() {
                return Ok(());
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(token) => {
                        if let Some(conn) = self.parked.remove(&token) {
                            self.dispatch(conn);
                        }
                    }
                }
            }
            for conn in park_rx.try_iter() {
                self.park(poll, conn);
            }
            if Instant::now() >= next_sweep {
                self.sweep();
                // A refused accept (out of file descriptors) is retried here.
                self.accept();
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            self.shared
                .parked
                .store(self.parked.len(), Ordering::Relaxed);
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: all accepted. Anything else (EMFILE): retried at the next sweep.
                Err(_) => return,
            };
            let limits = &self.shared.limits;
            let open = self.shared.metrics.open_connections.load(Ordering::Relaxed);
            if open >= limits.max_connections || self.jobs.len() >= limits.max_queue {
                self.shared
                    .metrics
                    .rejected_connections
                    .fetch_add(1, Ordering::Relaxed);
                refuse(
                    stream,
                    ApiError::unavailable("server is saturated, try again"),
                );
                continue;
            }
            if configure(&stream, limits).is_err() {
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            self.dispatch(Conn::new(stream, token, &self.shared));
        }
    }

    fn dispatch(&mut self, mut conn: Conn) {
        conn.ready_since = Some(Instant::now());
        // Cannot be full (see `run`); if it were, dropping the connection closes it.
        let _ = self.jobs.try_send(conn);
    }

    fn park(&mut self, poll: &Poll, mut conn: Conn) {
        let fd = conn.stream.as_raw_fd();
        let token = Token(conn.token);
        // Re-arming reports the socket at once if bytes arrived since the worker's last read.
        // One with output the client has not taken waits for room to write it, and
        // reads nothing more until then.
        let interest = if conn.wants_write() {
            Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let armed = if conn.registered {
            poll.registry()
                .reregister(&mut SourceFd(&fd), token, interest)
        } else {
            poll.registry()
                .register(&mut SourceFd(&fd), token, interest)
        };
        if armed.is_ok() {
            conn.registered = true;
            self.parked.insert(conn.token, conn);
        }
    }

    /// Closes connections past their deadline: a stalled request gets a 408 first; a
    /// client that has not read its responses in time is cut off.
    fn sweep(&mut self) {
        let limits = &self.shared.limits;
        let now = Instant::now();
        let expired: Vec<usize> = self
            .parked
            .iter()
            .filter(
                |(_, conn)| match (conn.write_deadline, conn.request_started) {
                    (Some(due), _) => now >= due,
                    (None, Some(started)) => now >= started + limits.request_timeout,
                    (None, None) => now >= conn.last_active + limits.idle_timeout,
                },
            )
            .map(|(token, _)| *token)
            .collect();
        for token in expired {
            if let Some(conn) = self.parked.remove(&token) {
                if conn.request_started.is_some() && !conn.wants_write() {
                    self.shared
                        .metrics
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    refuse(conn.stream, ApiError::request_timeout("request timed out"));
                }
            }
        }
    }
}

/// Sets the per-connection socket options.
fn configure(stream: &TcpStream, limits: &Limits) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(read_slice(limits)))?;
    // A write waits at most a slice: output the client does not take waits in the
    // connection's buffer, not in a worker (see `conn`).
    stream.set_write_timeout(Some(read_slice(limits)))
}

/// Answers with an error and closes, without ever blocking the reactor.
fn refuse(mut stream: TcpStream, error: ApiError) {
    let mut out = Vec::new();
    Response::from(error).encode(&mut out, false, false, "");
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(&out);
}
