//! What every service process does around its service's `run`, shared by the service
//! binaries and `toystore`'s roles: answer `--healthcheck`, bind, print the address,
//! stop on SIGTERM/SIGINT/SIGHUP (or when the launcher is gone), and exit 0 after a
//! clean stop. First of all, a service started without the allocator setting runs
//! itself again with it ([`malloc`]).

mod malloc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;
use toystore::cli::ServiceArgs;
use toystore::http::ShutdownHandle;
use toystore::logging;
use toystore::peer::backend::Backend;
use toystore::peer::{PeerAddr, PeerLimits};

/// How long a service that stops waits for its last lines to be written: an output
/// that blocks (a full pipe nobody reads) must not keep it from exiting.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// Runs the service `args` start until a signal (or the end of stdin, with
/// `--stop-when-stdin-closes`); with `--healthcheck`, probes it instead.
pub fn serve<A: ServiceArgs>(args: A) -> ExitCode {
    let name = A::NAME;
    let listen = args.server().listen_address(A::DEFAULT_PORT);
    if args.server().healthcheck {
        return healthcheck(&listen);
    }
    malloc::limit_thread_caches();
    let stop_when_stdin_closes = args.server().stop_when_stdin_closes;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => return fail(name, message),
    };
    let listener = match toystore::http::bind(&listen) {
        Ok(listener) => listener,
        Err(e) => return fail(name, format!("cannot listen on {listen}: {e}")),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(name, format!("cannot read the bound address: {e}")),
    };
    let shutdown = ShutdownHandle::new();
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(mut signals) => {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    shutdown.shutdown();
                    logging::warn(format!("{name}: signal {signal}, shutting down"));
                }
            });
        }
        Err(e) => return fail(name, format!("cannot install signal handlers: {e}")),
    }
    if stop_when_stdin_closes {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            // Nothing is ever written: the read returns when the launcher is gone.
            let _ = std::io::stdin().read(&mut [0u8; 64]);
            shutdown.shutdown();
            logging::warn(format!("{name}: the launcher is gone, shutting down"));
        });
    }
    logging::info(format!("{name} listening on http://{addr}"));
    let code = match A::RUN(config, listener, shutdown) {
        Ok(()) => {
            logging::warn(format!("{name}: stopped"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(name, e.to_string()),
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
    if Backend::new("self", peer, &PeerLimits::probe(Duration::from_secs(2))).probe() {
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
