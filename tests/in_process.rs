//! The three services in this process: each one's `run` on a listener bound to port 0,
//! in a thread, the way its binary calls it. No process boundary, so this is the shape
//! to copy for a test that is about a service's behaviour, not about its process.

mod common;

use common::{eventually, Http};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use toystore::catalog::{self, CatalogConfig, BUILTIN_SEED};
use toystore::frontend::{self, FrontendConfig};
use toystore::http::{ServerConfig, ShutdownHandle};
use toystore::order::{self, OrderConfig};
use toystore::peer::{PeerAddr, PeerConfig};

/// How long a test waits for something that comes well before.
const PATIENCE: Duration = Duration::from_secs(10);

/// A service running in a thread of this process.
struct Running {
    addr: SocketAddr,
    shutdown: ShutdownHandle,
    thread: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Binds port 0 and calls `run` with the listener in a new thread.
    fn start<C: Send + 'static>(
        config: C,
        run: fn(C, TcpListener, ShutdownHandle) -> io::Result<()>,
    ) -> Running {
        let listener = toystore::http::bind("127.0.0.1:0").expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let shutdown = ShutdownHandle::new();
        let handle = shutdown.clone();
        let thread = thread::spawn(move || run(config, listener, handle));
        Running {
            addr,
            shutdown,
            thread,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn peer(&self) -> PeerAddr {
        PeerAddr::parse(&self.addr.to_string(), self.addr.port()).unwrap()
    }

    /// Stops the service; its `run` returns `Ok` and the port is closed.
    fn stop(self) {
        self.shutdown.shutdown();
        self.thread
            .join()
            .expect("run does not panic")
            .expect("run returns Ok after a shutdown");
        assert!(
            TcpStream::connect(self.addr).is_err(),
            "{} still accepts after run returned",
            self.addr
        );
    }
}

#[test]
fn a_buy_through_the_three_services_run_in_process_then_a_clean_shutdown() {
    let catalog_dir = tempfile::tempdir().unwrap();
    let order_dir = tempfile::tempdir().unwrap();
    let server = ServerConfig::default();
    let catalog = Running::start(
        CatalogConfig {
            server: server.clone(),
            data_dir: catalog_dir.path().to_path_buf(),
            seed: BUILTIN_SEED.to_string(),
            admin_token: None,
            restock_period: Some(Duration::from_secs(10)),
            restock_level: 100,
            snapshot_every: 10_000,
        },
        catalog::run,
    );
    let order = Running::start(
        OrderConfig {
            server: server.clone(),
            data_dir: order_dir.path().to_path_buf(),
            catalog: catalog.peer(),
            peers: PeerConfig::default(),
        },
        order::run,
    );
    let front = Running::start(
        FrontendConfig {
            server,
            catalog: catalog.peer(),
            order: order.peer(),
            peers: PeerConfig::default(),
            admin_token: None,
            cache_size: frontend::DEFAULT_CACHE_SIZE,
        },
        frontend::run,
    );

    let http = Http::default();
    // The front-end's monitor runs inside `run`: it finds both backends up.
    eventually("the front-end to see both backends up", PATIENCE, || {
        let health = http.try_get(&format!("{}/health", front.url())).ok()?;
        let body = &health.json["data"];
        (body["catalog"] == "up" && body["order"] == "up").then_some(())
    });
    let before = http.get(&format!("{}/products/Tux", front.url()));
    let stock = before.ok()["quantity"].as_u64().unwrap();
    let placed = http.post(
        &format!("{}/orders", front.url()),
        r#"{"name":"Tux","quantity":2}"#,
    );
    let number = common::order_number(&placed);
    let order_body = http.get(&format!("{}/orders/{number}", front.url()));
    assert_eq!(order_body.ok()["name"], "Tux");
    let after = http.get(&format!("{}/products/Tux", front.url()));
    assert_eq!(after.ok()["quantity"].as_u64(), Some(stock - 2));

    // Front to back, as the launcher stops them, so no buy is cut off.
    front.stop();
    order.stop();
    catalog.stop();
}
