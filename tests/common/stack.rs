//! The [`Stack`]: the three services, spawned fresh for one test or already running
//! (external mode), with shortcuts for the requests most tests make.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard};
use std::thread;

use super::inproc::InProcess;
use super::service::{Proc, Svc, TEST_TOKEN};
use super::{order_number, skip, Http, Resp};

/// The lab's four toys, the first products of the seed every spawned stack starts
/// from unless a test brings its own (the built-in `database.txt`, which has more,
/// each with a category: `toystore::catalog::BUILTIN_SEED`).
pub const SEED: &[(&str, f64, u64)] = &[
    ("Tux", 25.99, 80),
    ("Whale", 34.99, 100),
    ("Elephant", 29.99, 100),
    ("Bird", 39.99, 100),
];

/// Serialises the tests of one test binary in external mode: they share one server,
/// and stock deltas and order numbers are only exact when no other test buys meanwhile.
static EXTERNAL: Mutex<()> = Mutex::new(());

/// Options for a spawned stack.
#[derive(Default)]
pub struct Options {
    /// Seed file contents for the catalog (`--seed`), instead of the built-in one.
    pub seed: Option<String>,
    /// Start the frontend against this catalog URL instead of the real one.
    pub frontend_catalog: Option<String>,
    /// Start the order service against this catalog URL instead of the real one.
    pub order_catalog: Option<String>,
    /// Extra environment for the catalog. By default the harness turns the periodic
    /// restock of sold-out products off (`RESTOCK_PERIOD_MS=0`, the service's
    /// documented knob) so that stock counts are exact; a test can set it here.
    pub catalog_env: Vec<(String, String)>,
}

/// The three services, spawned or external.
pub struct Stack {
    /// The front-end's base URL, `http://host:port`.
    pub front: String,
    /// The catalog's base URL, if known.
    pub catalog: Option<String>,
    /// The order service's base URL, if known.
    pub order: Option<String>,
    /// The admin token, if known.
    pub token: Option<String>,
    /// The client.
    pub http: Http,
    /// The spawned processes, in start order (catalog, order, frontend); empty when external.
    procs: Vec<Proc>,
    /// The services run in this process, when started by [`Stack::in_process`].
    pub(super) in_process: Option<InProcess>,
    /// Held for the whole test in external mode.
    _guard: Option<MutexGuard<'static, ()>>,
    /// The seed file, kept alive for restarts.
    _seed: Option<tempfile::NamedTempFile>,
}

/// Whether the tests run against already running servers.
pub fn external() -> bool {
    std::env::var("FRONT").is_ok_and(|v| !v.trim().is_empty())
}

/// For a test that starts services of its own: whether it must skip because the
/// tests run against someone else's servers (then it has said so).
pub fn skip_when_external(test: &str) -> bool {
    let skipping = external();
    if skipping {
        skip(test, "needs a spawned stack (FRONT is set)");
    }
    skipping
}

/// Normalises `host`, `host:port` or `http://host:port` to `http://host:port`.
pub fn normalize(addr: &str, default_port: u16) -> String {
    let a = addr.trim().trim_end_matches('/');
    let a = a.strip_prefix("http://").unwrap_or(a);
    let has_port = a
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        format!("http://{a}")
    } else {
        format!("http://{a}:{default_port}")
    }
}

impl Stack {
    /// The stack every test uses: external when `FRONT` is set, otherwise a fresh one
    /// in this process ([`Stack::in_process`]).
    pub fn new() -> Stack {
        if external() {
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
            let guard = EXTERNAL.lock().unwrap_or_else(|p| p.into_inner());
            Stack {
                front: normalize(&env("FRONT").unwrap(), 6060),
                catalog: env("CATALOG").map(|c| normalize(&c, 10086)),
                order: env("ORDER").map(|o| normalize(&o, 10010)),
                token: env("ADMIN_TOKEN"),
                http: Http::default(),
                procs: Vec::new(),
                in_process: None,
                _guard: Some(guard),
                _seed: None,
            }
        } else {
            Stack::in_process().start()
        }
    }

    /// A fresh stack in this process for a test that needs fresh state; `None` (after
    /// printing why) in external mode. With options: `Stack::in_process()...fresh(test)`.
    pub fn fresh(test: &str) -> Option<Stack> {
        Stack::in_process().fresh(test)
    }

    /// A spawned stack for a test about the services' processes (signals, restarts,
    /// output, flags, environment); `None` (after printing why) in external mode.
    pub fn spawned_only(test: &str) -> Option<Stack> {
        Self::spawned_only_with(test, Options::default())
    }

    /// Like [`Stack::spawned_only`], with options.
    pub fn spawned_only_with(test: &str, opts: Options) -> Option<Stack> {
        (!skip_when_external(test)).then(|| Stack::spawn(opts))
    }

    /// Starts catalog, order and frontend as child processes.
    pub fn spawn(opts: Options) -> Stack {
        let seed = opts.seed.map(|text| {
            let mut f = tempfile::NamedTempFile::new().expect("seed file");
            f.write_all(text.as_bytes()).expect("write seed");
            f.flush().unwrap();
            f
        });
        let mut catalog_args = Vec::new();
        if let Some(f) = &seed {
            catalog_args.push("--seed".to_string());
            catalog_args.push(f.path().display().to_string());
        }
        let mut catalog = Proc::new(Svc::Catalog, catalog_args, true);
        catalog.envs = vec![("RESTOCK_PERIOD_MS".into(), "0".into())];
        catalog.envs.extend(opts.catalog_env);
        catalog.launch("127.0.0.1:0");
        let order_catalog = opts.order_catalog.unwrap_or_else(|| catalog.url.clone());
        let mut order = Proc::new(Svc::Order, vec!["--catalog".into(), order_catalog], true);
        let mut stack = Stack {
            front: String::new(),
            catalog: Some(catalog.url.clone()),
            order: None,
            token: Some(TEST_TOKEN.to_string()),
            http: Http::default(),
            procs: vec![catalog],
            in_process: None,
            _guard: None,
            _seed: seed,
        };
        order.launch("127.0.0.1:0");
        stack.order = Some(order.url.clone());
        let front_catalog = opts
            .frontend_catalog
            .unwrap_or_else(|| stack.catalog.clone().unwrap());
        let mut frontend = Proc::new(
            Svc::Frontend,
            vec![
                "--catalog".into(),
                front_catalog,
                "--order".into(),
                order.url.clone(),
            ],
            false,
        );
        stack.procs.push(order);
        frontend.launch("127.0.0.1:0");
        stack.front = frontend.url.clone();
        stack.procs.push(frontend);
        stack
    }

    /// The stack of services running in this process, its first front-end at `front`.
    pub(super) fn from_in_process(
        front: String,
        services: InProcess,
        token: Option<String>,
    ) -> Stack {
        Stack {
            front,
            catalog: Some(services.catalog_url()),
            order: Some(services.order_url()),
            token,
            http: Http::default(),
            procs: Vec::new(),
            in_process: Some(services),
            _guard: None,
            _seed: None,
        }
    }

    /// Whether the harness started this stack, as processes or in this process: its
    /// state is fresh (stock as seeded, no orders). Only spawned ones have process control.
    pub fn is_fresh(&self) -> bool {
        !self.procs.is_empty() || self.in_process.is_some()
    }

    pub(super) fn proc_mut(&mut self, svc: Svc) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.svc == svc)
            .expect("process control needs a spawned stack")
    }

    /// The data directory of a spawned catalog or order service.
    pub fn data_dir(&mut self, svc: Svc) -> PathBuf {
        self.proc_mut(svc)
            .data_dir
            .as_ref()
            .expect("service has no data dir")
            .path()
            .to_path_buf()
    }

    /// The port a spawned service listens on.
    pub fn port(&mut self, svc: Svc) -> u16 {
        self.proc_mut(svc).port()
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self, svc: Svc) -> ExitStatus {
        self.proc_mut(svc).terminate("TERM")
    }

    /// SIGINT (Ctrl-C), and wait for the exit.
    pub fn interrupt(&mut self, svc: Svc) -> ExitStatus {
        self.proc_mut(svc).terminate("INT")
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(&mut self, svc: Svc) {
        self.proc_mut(svc).reap().expect("service was not running");
    }

    /// Starts a stopped service again with the same data dir, on the same port.
    pub fn restart(&mut self, svc: Svc) {
        let p = self.proc_mut(svc);
        assert!(p.child.is_none(), "{svc:?} is still running");
        let listen = format!("127.0.0.1:{}", p.port());
        let old = p.url.clone();
        p.launch(&listen);
        assert_eq!(p.url, old, "restarted {svc:?} is not on its old address");
        // Pooled connections to the old process are dead: start a fresh pool.
        self.http = Http::default();
    }

    /// The recent output of a spawned service.
    pub fn logs(&mut self, svc: Svc) -> String {
        self.proc_mut(svc)
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    // --- requests on the front-end -------------------------------------------------

    /// `GET {front}{path}`.
    #[track_caller]
    pub fn get(&self, path: &str) -> Resp {
        self.http.get(&format!("{}{path}", self.front))
    }

    /// `POST {front}{path}` with a JSON body.
    #[track_caller]
    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.http.post(&format!("{}{path}", self.front), body)
    }

    /// `PUT {front}/products/{name}` with the admin token.
    #[track_caller]
    pub fn admin_put(&self, name: &str, body: &str) -> Resp {
        let token = self.token.as_deref().expect("admin token needed");
        self.http.put(
            &format!("{}/products/{name}", self.front),
            body,
            Some(token),
        )
    }

    /// The product as `GET /products/{name}` shows it: `(price, quantity)`.
    #[track_caller]
    pub fn product(&self, name: &str) -> (f64, u64) {
        let r = self.get(&format!("/products/{name}"));
        let d = r.ok();
        (
            d["price"]
                .as_f64()
                .unwrap_or_else(|| panic!("price in {r:?}")),
            d["quantity"]
                .as_u64()
                .unwrap_or_else(|| panic!("quantity in {r:?}")),
        )
    }

    /// The stock of a product.
    #[track_caller]
    pub fn stock(&self, name: &str) -> u64 {
        self.product(name).1
    }

    /// Buys through `POST /orders`; returns the raw response.
    #[track_caller]
    pub fn buy(&self, name: &str, quantity: u64) -> Resp {
        self.post(
            "/orders",
            &serde_json::json!({"name": name, "quantity": quantity}).to_string(),
        )
    }

    /// Buys and asserts success; returns the order number.
    #[track_caller]
    pub fn buy_ok(&self, name: &str, quantity: u64) -> u64 {
        let r = self.buy(name, quantity);
        order_number(&r)
    }

    /// A product with at least `min` units in stock: the named one, restocked through
    /// the admin API when it runs low and the token is known; otherwise the listed
    /// product with the most stock. Panics when none has enough.
    #[track_caller]
    pub fn product_with_stock(&self, preferred: &str, min: u64) -> String {
        if self.stock(preferred) >= min {
            return preferred.to_string();
        }
        if self.token.is_some() {
            self.admin_put(preferred, &format!("{{\"quantity\":{}}}", min + 100))
                .ok();
            return preferred.to_string();
        }
        let r = self.get("/products");
        let best = r
            .ok()
            .as_array()
            .expect("product list")
            .iter()
            .max_by_key(|p| p["quantity"].as_u64().unwrap_or(0))
            .cloned()
            .expect("no products");
        assert!(
            best["quantity"].as_u64().unwrap_or(0) >= min,
            "no product has {min} units in stock and ADMIN_TOKEN is not set: {best}"
        );
        best["name"].as_str().unwrap().to_string()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let failing = thread::panicking();
        // Frontend first, so that it does not log errors about its peers going away.
        for p in self.procs.iter_mut().rev() {
            p.reap();
            if failing {
                let logs = p.logs.lock().unwrap_or_else(|e| e.into_inner());
                let tail = &logs[logs.len().saturating_sub(40)..];
                eprintln!(
                    "--- {} ({}) last output ---\n{}",
                    p.svc.name(),
                    p.url,
                    tail.join("\n")
                );
            }
        }
    }
}
