//! The three services in this process (`Stack::in_process`, tests/common/inproc.rs):
//! each one's `run` on a listener bound to port 0, in a thread, the way its binary
//! calls it. No process boundary, so this is the shape to copy for a test that is
//! about a service's behaviour, not about its process.

mod common;

use common::{eventually, Stack};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a test waits for something that comes well before.
const PATIENCE: Duration = Duration::from_secs(10);

/// Serialises this file's tests: one of them counts this process's threads.
static ALONE: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's threads that a service started: named after their service, or
/// unnamed and so named after the thread that started them (Linux copies the name),
/// all of which descend from the harness's `inproc-<service>` threads.
fn service_threads() -> Vec<String> {
    let prefixes = ["inproc-", "catalog-", "order-", "frontend-"];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|comm| comm.trim().to_string())
        .filter(|comm| prefixes.iter().any(|p| comm.starts_with(p)))
        .collect()
}

#[test]
fn a_buy_through_the_three_services_run_in_process_then_a_clean_shutdown() {
    let _alone = alone();
    let mut s = Stack::in_process().restock(Duration::from_secs(10)).start();

    // The front-end's monitor runs inside `run`: it finds both backends up.
    eventually("the front-end to see both backends up", PATIENCE, || {
        let health = s.http.try_get(&format!("{}/health", s.front)).ok()?;
        let body = &health.json["data"];
        (body["catalog"] == "up" && body["order"] == "up").then_some(())
    });
    let stock = s.stock("Tux");
    let number = s.buy_ok("Tux", 2);
    let order_body = s.get(&format!("/orders/{number}"));
    assert_eq!(order_body.ok()["name"], "Tux");
    assert_eq!(s.stock("Tux"), stock - 2);

    // Front to back, as the launcher stops them, so no buy is cut off; each `run`
    // returns Ok and its port is closed.
    s.stop_all();
}

#[test]
fn an_extra_front_end_shares_the_backends_and_takes_its_own_config() {
    let _alone = alone();
    let mut s = Stack::in_process().start();
    let second = s.start_frontend(|config| config.admin_token = None);
    let number = s.buy_ok("Whale", 3);
    let seen = s.http.get(&format!("{second}/orders/{number}"));
    assert_eq!(seen.ok()["name"], "Whale");
    let product = s.http.get(&format!("{second}/products/Whale"));
    assert_eq!(product.ok()["quantity"].as_u64(), Some(s.stock("Whale")));
    // Its tweak applies to it alone: admin updates are off there, on at the first.
    let token = s.token.clone();
    let put = |front: &str| {
        let url = format!("{front}/products/Whale");
        s.http.put(&url, r#"{"quantity":7}"#, token.as_deref())
    };
    put(&second).err(403, None);
    put(&s.front).ok();
    assert_eq!(s.stock("Whale"), 7);
}

#[test]
fn a_dropped_stack_leaves_no_thread_behind() {
    let _alone = alone();
    let mut s = Stack::in_process().start();
    s.start_frontend(|_| {});
    s.buy_ok("Tux", 1);
    assert!(
        !service_threads().is_empty(),
        "the services run in threads of this process"
    );
    drop(s);
    // Joined threads leave /proc a moment after they return.
    eventually("the services' threads to be gone", PATIENCE, || {
        let left = service_threads();
        left.is_empty().then_some(()).or_else(|| {
            eprintln!("still running: {left:?}");
            None
        })
    });
}
