//! The command line of the services: the address line, `LISTEN`, the peer address
//! forms (`host:port`, `http://host:port`, flags or env), `--healthcheck`, and a
//! catalog that keeps its state across restarts instead of seeding again, one catalog
//! and one order service per data directory, and the services' smaller malloc caches (set by running
//! themselves again).
//! Spawned mode only.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exit_within, procfs, skip_when_external, Extra, Http, Stack, Svc};

#[test]
fn listen_from_env_and_peers_without_scheme() {
    if skip_when_external("listen_from_env_and_peers_without_scheme") {
        return;
    }
    let s = Stack::spawn(Default::default());
    let catalog = common::host_port(s.catalog.as_deref().unwrap());
    let order = s.order.clone().unwrap();
    // Peers by env: a bare host:port and a full URL; the address from LISTEN.
    let f = Extra::start(
        Svc::Frontend,
        &[],
        &[
            ("LISTEN", "127.0.0.1:0"),
            ("CATALOG", &catalog),
            ("ORDER", &order),
        ],
    );
    let http = Http::default();
    let r = http.get(&format!("{}/products/Tux", f.url()));
    assert_eq!(r.ok()["name"], "Tux", "{r:?}\n{}", f.logs());
    let r = http.post(
        &format!("{}/orders", f.url()),
        r#"{"name":"Tux","quantity":1}"#,
    );
    assert_eq!(common::order_number(&r), 0, "{r:?}\n{}", f.logs());

    // The same by flags, with a bare host:port for the order service.
    let order_hp = common::host_port(&order);
    let g = Extra::start(
        Svc::Frontend,
        &["--catalog", &catalog, "--order", &order_hp],
        &[],
    );
    let r = http.post(&format!("{}/Tux/2", g.url()), "");
    assert_eq!(common::order_number(&r), 1, "{r:?}\n{}", g.logs());
    assert_eq!(s.stock("Tux"), 77);
}

/// `--cache-size` and `CACHE_SIZE` set the front-end's cache; 0 turns it off.
#[test]
fn cache_size_from_the_flag_or_env() {
    if skip_when_external("cache_size_from_the_flag_or_env") {
        return;
    }
    let s = Stack::spawn(Default::default());
    let (catalog, order) = (s.catalog.clone().unwrap(), s.order.clone().unwrap());
    let peers = ["--catalog", &catalog, "--order", &order];
    let http = Http::default();
    let cache_of =
        |front: &Extra| http.get(&format!("{}/health", front.url())).ok()["cache"].clone();
    let flagged = Extra::start(
        Svc::Frontend,
        &[&peers[..], &["--cache-size", "3"]].concat(),
        &[],
    );
    assert_eq!(cache_of(&flagged)["capacity"], 3, "{}", flagged.logs());
    let off = Extra::start(Svc::Frontend, &peers, &[("CACHE_SIZE", "0")]);
    assert_eq!(cache_of(&off)["capacity"], 0, "{}", off.logs());
    assert_eq!(cache_of(&off)["push"], "down");
}

fn healthcheck(bin: &str, listen: &str) -> (bool, Duration) {
    let start = Instant::now();
    let status = Command::new(bin)
        .arg("--healthcheck")
        .arg("--listen")
        .arg(listen)
        .env_remove("LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run --healthcheck");
    (status.success(), start.elapsed())
}

#[test]
fn healthcheck_flag() {
    if skip_when_external("healthcheck_flag") {
        return;
    }
    let mut s = Stack::spawn(Default::default());
    let bins = [
        (Svc::Catalog, env!("CARGO_BIN_EXE_catalog")),
        (Svc::Order, env!("CARGO_BIN_EXE_order")),
        (Svc::Frontend, env!("CARGO_BIN_EXE_frontend")),
    ];
    for (svc, bin) in bins {
        let listen = format!("127.0.0.1:{}", s.port(svc));
        let (ok, took) = healthcheck(bin, &listen);
        assert!(ok, "{svc:?} --healthcheck on a live service failed");
        assert!(
            took < Duration::from_secs(5),
            "{svc:?} --healthcheck took {took:?}"
        );
    }
    // Down: exit non-zero, within its 2 s bound (plus slack).
    let listen = format!("127.0.0.1:{}", s.port(Svc::Catalog));
    s.kill(Svc::Catalog);
    let (ok, took) = healthcheck(bins[0].1, &listen);
    assert!(!ok, "--healthcheck on a dead catalog succeeded");
    assert!(took < Duration::from_secs(5), "--healthcheck took {took:?}");
}

#[test]
fn catalog_does_not_reseed_on_restart() {
    if skip_when_external("catalog_does_not_reseed_on_restart") {
        return;
    }
    let mut s = Stack::spawn(Default::default());
    s.admin_put("Tux", r#"{"quantity":3,"price":1.5}"#).ok();
    assert!(s.stop(Svc::Catalog).success());
    s.restart(Svc::Catalog);
    assert_eq!(
        s.product("Tux"),
        (1.5, 3),
        "the catalog seeded again over its state"
    );
}

#[test]
fn default_seed_is_built_in() {
    if skip_when_external("default_seed_is_built_in") {
        return;
    }
    // Run the catalog from a directory without database.txt: the seed is in the binary.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cwd_probe = Extra::start_in(Svc::Catalog, &["--data-dir", data], &[], Some(dir.path()));
    let r = Http::default().get(&format!("{}/products/Tux", cwd_probe.url()));
    assert_eq!(
        r.json,
        serde_json::json!({"data":{"name":"Tux","price":25.99,"quantity":80}}),
        "{r:?}"
    );
}

#[test]
fn toystore_binary_runs_each_role() {
    if skip_when_external("toystore_binary_runs_each_role") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_toystore");
    let dir = tempfile::tempdir().unwrap();
    let cdir = dir.path().join("c");
    let odir = dir.path().join("o");
    let c = Extra::start_as(
        Svc::Catalog,
        bin,
        &["catalog"],
        &["--data-dir", cdir.to_str().unwrap()],
    );
    let o = Extra::start_as(
        Svc::Order,
        bin,
        &["order"],
        &["--data-dir", odir.to_str().unwrap(), "--catalog", c.url()],
    );
    let f = Extra::start_as(
        Svc::Frontend,
        bin,
        &["frontend"],
        &["--catalog", c.url(), "--order", o.url()],
    );
    let http = Http::default();
    let r = http.post(&format!("{}/Whale/4", f.url()), "");
    assert_eq!(common::order_number(&r), 0, "{r:?}");
    let r = http.get(&format!("{}/products/Whale", f.url()));
    assert_eq!(r.ok()["quantity"], 96, "{r:?}");
}

/// The environment variable `name` as the running process `pid` sees it.
fn env_of(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    let prefix = format!("{name}=");
    environ
        .split(|&b| b == 0)
        .filter_map(|var| std::str::from_utf8(var).ok())
        .find_map(|var| var.strip_prefix(prefix.as_str()))
        .map(str::to_string)
}

#[test]
fn services_limit_their_malloc_caches_and_keep_an_operators_setting() {
    if skip_when_external("services_limit_their_malloc_caches_and_keep_an_operators_setting") {
        return;
    }
    // (GLIBC_TUNABLES given, whether the service runs itself again to add the limit).
    // What /proc shows of the variable ends at its first `:`, where glibc cut it in
    // place while parsing; the value passed is checked by the unit tests in `malloc`.
    let cases = [
        ("", true),
        ("glibc.malloc.arena_max=4", true),
        ("glibc.malloc.tcache_count=3", false),
    ];
    for (given, restarts) in cases {
        // Started, it answers (Extra waits for /health) under the same process id.
        let service = Extra::start(Svc::Frontend, &[], &[("GLIBC_TUNABLES", given)]);
        let pid = service.pid();
        let seen = env_of(pid, "GLIBC_TUNABLES").unwrap_or_default();
        assert_eq!(
            env_of(pid, "TOYSTORE_MALLOC_TUNED").is_some(),
            restarts,
            "given {given:?}"
        );
        if given.is_empty() {
            assert_eq!(seen, "glibc.malloc.tcache_max=128");
        } else {
            assert!(seen.starts_with(given), "given {given:?}, seen {seen:?}");
        }
    }
}

#[test]
fn a_second_service_of_a_kind_on_a_data_dir_in_use_is_refused() {
    if skip_when_external("a_second_service_of_a_kind_on_a_data_dir_in_use_is_refused") {
        return;
    }
    // One directory for both, as the launcher gives them: different services may share.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let bins = [
        (Svc::Catalog, env!("CARGO_BIN_EXE_catalog")),
        (Svc::Order, env!("CARGO_BIN_EXE_order")),
    ];
    let firsts: Vec<Extra> = bins
        .iter()
        .map(|&(svc, _)| Extra::start(svc, &["--data-dir", data], &[]))
        .collect();
    for ((svc, bin), first) in bins.into_iter().zip(&firsts) {
        let mut second = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data-dir", data])
            .env_remove("LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the second service");
        let status = exit_within(&mut second, Duration::from_secs(10)).unwrap_or_else(|| {
            let _ = second.kill();
            panic!("{svc:?}: a second service on {data} is still running")
        });
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "{svc:?}: the second service exited 0");
        assert!(
            stderr.contains("in use by another process"),
            "{svc:?}: {stderr}"
        );
        let health = Http::default().get(&format!("{}/health", first.url()));
        assert_eq!(
            health.status, 200,
            "{svc:?}: the first service stopped serving"
        );
    }
}

/// Stops the launcher with SIGINT (as Ctrl-C does) if a test leaves it running, so that
/// its services, in process groups of their own, are stopped with it; SIGKILLs any of
/// them that outlived it.
struct Launcher {
    child: std::process::Child,
    /// Its working directory, where it keeps `data/`.
    dir: tempfile::TempDir,
    /// The services it started, once known.
    services: Vec<u32>,
    /// The default ports are the launcher's: one launcher test at a time.
    _ports: std::sync::MutexGuard<'static, ()>,
}

/// The ports the launcher uses, fixed by the contract.
const LAUNCHER_PORTS: [u16; 3] = [6060, 10086, 10010];
static LAUNCHER_PORTS_IN_USE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Launcher {
    /// Starts `toystore` in a new directory and waits until its front-end answers and
    /// its three services are known; `None` (after saying so) in external mode or when a
    /// default port is taken.
    fn start(test: &str) -> Option<Launcher> {
        Self::start_with(test, &[], &[])
    }

    /// Like [`Launcher::start`], with these arguments and environment.
    fn start_with(test: &str, args: &[&str], envs: &[(&str, &str)]) -> Option<Launcher> {
        if skip_when_external(test) {
            return None;
        }
        let ports = LAUNCHER_PORTS_IN_USE
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if LAUNCHER_PORTS
            .iter()
            .any(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err())
        {
            common::skip(test, "a default port is in use");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_toystore"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("DATA_DIR")
            .env_remove("LISTEN")
            .env_remove("INTERNAL_TOKEN")
            .env_remove("ADMIN_TOKEN")
            .envs(envs.iter().copied())
            .env("ACCESS_LOG", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the launcher");
        let mut launcher = Launcher {
            child,
            dir,
            services: Vec::new(),
            _ports: ports,
        };
        let http = Http::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.try_get("http://127.0.0.1:6060/health").is_err() {
            assert!(Instant::now() < deadline, "the stack did not come up");
            assert!(
                launcher.child.try_wait().unwrap().is_none(),
                "the launcher exited during start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A second front-end, when asked for, starts after the first answers.
        let expected = if args.contains(&"--uncached-front-port") {
            4
        } else {
            3
        };
        loop {
            launcher.services = procfs::children_of(launcher.child.id());
            if launcher.services.len() >= expected || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(launcher.services.len(), expected, "the launcher's children");
        Some(launcher)
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
    }

    /// Asserts that every service the launcher started has stopped.
    fn assert_services_gone(&self, after: &str) {
        for &pid in &self.services {
            assert!(
                procfs::gone_within(pid, Duration::from_secs(15)),
                "service {pid} still runs after {after}"
            );
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal("INT");
            if exit_within(&mut self.child, Duration::from_secs(15)).is_none() {
                let _ = self.child.kill();
            }
        }
        // Left over after a failure: gone before the next test looks at the ports.
        for &pid in &self.services {
            if procfs::alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                procfs::gone_within(pid, Duration::from_secs(5));
            }
        }
    }
}

/// The README's first command: `toystore` alone starts the stack on the default ports,
/// sharing one data directory, and Ctrl-C stops it all. Its services share an internal
/// token: a call to an internal route without it is refused.
#[test]
fn the_launcher_starts_the_stack_and_ctrl_c_stops_it() {
    let Some(mut launcher) = Launcher::start("the_launcher_starts_the_stack_and_ctrl_c_stops_it")
    else {
        return;
    };
    let http = Http::default();
    let front = "http://127.0.0.1:6060";
    let r = http.post(&format!("{front}/orders"), r#"{"name":"Tux","quantity":1}"#);
    assert_eq!(common::order_number(&r), 0, "{r:?}");
    let r = http.get(&format!("{front}/products/Tux"));
    assert_eq!(r.ok()["quantity"], 79, "{r:?}");
    // Issue 11, finding 9: the launcher's stack sets an internal token.
    http.post(
        "http://127.0.0.1:10086/buy",
        r#"{"buy_id":900,"name":"Tux","quantity":5}"#,
    )
    .err(401, None);
    http.get("http://127.0.0.1:10010/orders/0").err(401, None);
    let r = http.get(&format!("{front}/products/Tux"));
    assert_eq!(r.ok()["quantity"], 79, "{r:?}");
    // The front-end's cache subscribes to the catalog with the stack's internal token.
    common::eventually(
        "the front-end's push channel to be up",
        Duration::from_secs(15),
        || {
            let cache = http.get(&format!("{front}/health")).ok()["cache"].clone();
            (cache["push"] == "up" && cache["capacity"] == 8).then_some(())
        },
    );
    // Both services keep their files in the one default directory.
    for file in ["catalog.journal", "orders.log"] {
        assert!(
            launcher.dir.path().join("data").join(file).exists(),
            "no data/{file}"
        );
    }
    launcher.signal("INT");
    let status = exit_within(&mut launcher.child, Duration::from_secs(20))
        .expect("the launcher did not stop on SIGINT");
    assert!(status.success(), "the launcher exited with {status}");
    for port in LAUNCHER_PORTS {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still answers after the launcher stopped"
        );
    }
}

/// Issue 13: the evaluation compares the cache on and off on one stack. With
/// `--uncached-front-port` the launcher starts a second front-end there, with its cache
/// off whatever CACHE_SIZE the first gets, on the same catalog and order service; Ctrl-C
/// stops it with the rest.
#[test]
fn the_launcher_starts_an_uncached_front_end_beside_the_cached_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let Some(mut launcher) = Launcher::start_with(
        "the_launcher_starts_an_uncached_front_end_beside_the_cached_one",
        &["--uncached-front-port", &port],
        &[("CACHE_SIZE", "3")],
    ) else {
        return;
    };
    let http = Http::default();
    let (cached, uncached) = (
        "http://127.0.0.1:6060".to_string(),
        format!("http://127.0.0.1:{port}"),
    );
    let capacity = |front: &str| {
        common::eventually("the front-end to answer", Duration::from_secs(15), || {
            let health = http.try_get(&format!("{front}/health")).ok()?;
            (health.status == 200).then(|| health.json["data"]["cache"]["capacity"].clone())
        })
    };
    assert_eq!(capacity(&cached), 3);
    assert_eq!(capacity(&uncached), 0);
    // One order service behind both.
    let r = http.post(
        &format!("{uncached}/orders"),
        r#"{"name":"Tux","quantity":1}"#,
    );
    let number = common::order_number(&r);
    let r = http.get(&format!("{cached}/orders/{number}"));
    assert_eq!(r.ok()["name"], "Tux", "{r:?}");
    launcher.signal("INT");
    let status = exit_within(&mut launcher.child, Duration::from_secs(20))
        .expect("the launcher did not stop on SIGINT");
    assert!(status.success(), "the launcher exited with {status}");
    launcher.assert_services_gone("SIGINT to the launcher");
}

/// Issue 11, finding 10: a closed terminal (SIGHUP) left the services running, in
/// process groups of their own, after the launcher died of it.
#[test]
fn sighup_to_the_launcher_stops_every_service() {
    let Some(mut launcher) = Launcher::start("sighup_to_the_launcher_stops_every_service") else {
        return;
    };
    launcher.signal("HUP");
    let status = exit_within(&mut launcher.child, Duration::from_secs(20))
        .expect("the launcher did not stop on SIGHUP");
    assert!(status.success(), "the launcher exited with {status}");
    launcher.assert_services_gone("SIGHUP to the launcher");
}

/// Issue 11, finding 10: services must not outlive a launcher that could not stop them.
#[test]
fn services_stop_when_the_launcher_is_killed() {
    let Some(mut launcher) = Launcher::start("services_stop_when_the_launcher_is_killed") else {
        return;
    };
    launcher.child.kill().unwrap();
    launcher.child.wait().unwrap();
    launcher.assert_services_gone("SIGKILL of the launcher");
}

/// Issue 12: `toystore --admin-token` was refused, and nothing said that `ADMIN_TOKEN`
/// in the launcher's environment reaches its services. Either way the catalog and the
/// front-end take the token: an admin update with it passes, through the front-end and
/// on the catalog directly.
#[test]
fn the_launcher_gives_its_services_the_admin_token() {
    let test = "the_launcher_gives_its_services_the_admin_token";
    let token = "launcher-admin-token-7e2";
    let ways = [
        (vec!["--admin-token", token], vec![]),
        (vec![], vec![("ADMIN_TOKEN", token)]),
    ];
    for (args, envs) in ways {
        let Some(_launcher) = Launcher::start_with(test, &args, &envs) else {
            return;
        };
        let http = Http::default();
        let body = r#"{"quantity":7}"#;
        for base in ["http://127.0.0.1:6060", "http://127.0.0.1:10086"] {
            let url = format!("{base}/products/Tux");
            http.put(&url, body, None).err(401, None);
            http.put(&url, body, Some("not-the-token")).err(403, None);
            let r = http.put(&url, body, Some(token));
            assert_eq!(r.ok()["quantity"], 7, "{args:?} {envs:?} {base}: {r:?}");
        }
    }
}

/// Issue 12: editing the seed after the first start changed nothing, silently. A
/// catalog that finds state in its data directory says that the seed is ignored and
/// how to start again; a first start, which reads the seed, does not.
#[test]
fn a_catalog_on_existing_state_says_the_seed_is_ignored() {
    if skip_when_external("a_catalog_on_existing_state_says_the_seed_is_ignored") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--data-dir", data.to_str().unwrap()];
    let said = |catalog: &Extra| {
        let logs = catalog.logs();
        logs.contains(&format!("using the state already in '{}'", data.display()))
            && logs.contains("the seed is read only on first start")
            && logs.contains(&format!("remove '{}'", data.display()))
    };
    // The line comes before the address line, which `Extra` has waited for.
    let first = Extra::start(Svc::Catalog, &args, &[]);
    assert!(!said(&first), "on a first start:\n{}", first.logs());
    drop(first);
    let again = Extra::start(Svc::Catalog, &args, &[]);
    assert!(said(&again), "on a restart:\n{}", again.logs());
}

/// Issue 12: a Docker bind mount owned by root failed with a bare `Permission denied`.
/// A service that may not write its data directory names it, the user it runs as, and
/// the images' user. Root may write anywhere, so as root the service runs as `nobody`.
#[test]
fn a_data_dir_the_service_may_not_write_names_the_user() {
    if skip_when_external("a_data_dir_the_service_may_not_write_names_the_user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 0700: only the owner may enter, so another user cannot create `data` in it.
    let data = dir.path().join("data");
    let my_uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    let as_root = my_uid == 0;
    if as_root && Command::new("setpriv").arg("--version").output().is_err() {
        common::skip(
            "a_data_dir_the_service_may_not_write_names_the_user",
            "root without setpriv",
        );
        return;
    }
    if !as_root {
        let read_only = std::os::unix::fs::PermissionsExt::from_mode(0o500);
        std::fs::set_permissions(dir.path(), read_only).unwrap();
    }
    let uid = if as_root { 65534 } else { my_uid };
    for (svc, bin) in [
        (Svc::Catalog, env!("CARGO_BIN_EXE_catalog")),
        (Svc::Order, env!("CARGO_BIN_EXE_order")),
    ] {
        let mut command = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
            c
        } else {
            Command::new(bin)
        };
        let output = command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .env_remove("LISTEN")
            .stdin(Stdio::null())
            .output()
            .expect("start the service");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{svc:?}: {stderr}");
        for part in [
            format!("cannot open the data directory {}", data.display()),
            "ermission denied".to_string(),
            format!("this process runs as uid {uid},"),
            "the container images run as uid 10001".to_string(),
        ] {
            assert!(
                stderr.contains(&part),
                "{svc:?}: {part:?} missing: {stderr}"
            );
        }
    }
}
