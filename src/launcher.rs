//! `cargo run --release`: the whole stack as three processes on the default ports.
//!
//! `cargo run` builds only the `toystore` binary, so the launcher cannot count on the
//! sibling binaries existing: it runs itself again with a subcommand per service.
//! Each child gets its own process group, so Ctrl-C reaches only the launcher, which
//! then stops the services in the order that lets in-flight buys finish: front-end,
//! order, catalog.

use crate::http::backend::Backend;
use crate::peer::PeerAddr;
use crate::{CATALOG_PORT, FRONT_PORT, ORDER_PORT};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

/// How long a service may take to answer `/health` after it starts.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long a service may take to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

struct Service {
    name: &'static str,
    port: u16,
    child: Child,
}

/// Starts catalog, order and front-end; stops them on SIGINT/SIGTERM or when one dies.
pub fn run() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find my own executable: {e}")),
    };
    let signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ]) {
        Ok(signals) => signals,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let catalog_url = format!("http://127.0.0.1:{CATALOG_PORT}");
    let order_url = format!("http://127.0.0.1:{ORDER_PORT}");
    let plan: [(&'static str, u16, Vec<String>); 3] = [
        ("catalog", CATALOG_PORT, vec![]),
        (
            "order",
            ORDER_PORT,
            vec!["--catalog".into(), catalog_url.clone()],
        ),
        (
            "frontend",
            FRONT_PORT,
            vec!["--catalog".into(), catalog_url, "--order".into(), order_url],
        ),
    ];
    let mut running: Vec<Service> = Vec::new();
    for (name, port, extra) in plan {
        let spawned = Command::new(&exe)
            .arg(name)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .process_group(0)
            .spawn();
        match spawned {
            Ok(child) => running.push(Service { name, port, child }),
            Err(e) => {
                stop_all(&mut running);
                return fail(&format!("cannot start {name}: {e}"));
            }
        }
        if let Err(message) = wait_healthy(running.last_mut().expect("just pushed")) {
            stop_all(&mut running);
            return fail(&message);
        }
    }
    println!();
    println!("toystore is up: http://127.0.0.1:{FRONT_PORT}");
    println!("  try:    curl http://127.0.0.1:{FRONT_PORT}/products/Tux");
    println!("  buy:    curl -X POST -H 'Content-Type: application/json' -d '{{\"name\":\"Tux\",\"quantity\":1}}' http://127.0.0.1:{FRONT_PORT}/orders");
    println!("  client: cargo run --release --bin client -- query Tux --requests 5");
    println!("Ctrl-C stops all three.");
    println!();

    let died = wait_for_signal_or_death(signals, &mut running);
    stop_all(&mut running);
    match died {
        None => ExitCode::SUCCESS,
        Some(name) => fail(&format!("{name} exited unexpectedly; stopped the others")),
    }
}

/// Polls the service's `/health` until it answers, it dies, or the deadline passes.
fn wait_healthy(service: &mut Service) -> Result<(), String> {
    let peer = PeerAddr::parse(&format!("127.0.0.1:{}", service.port), service.port)
        .map_err(|e| e.to_string())?;
    let probe = Backend::new("launcher", peer, Duration::from_millis(500), 1, 0);
    let deadline = Instant::now() + START_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = service.child.try_wait() {
            return Err(format!(
                "{} exited during start ({status}); is port {} in use?",
                service.name, service.port
            ));
        }
        if probe.probe() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} did not answer /health within {:?}",
        service.name, START_DEADLINE
    ))
}

/// Returns the name of a service that died, or `None` after a signal.
fn wait_for_signal_or_death(
    mut signals: signal_hook::iterator::Signals,
    running: &mut [Service],
) -> Option<&'static str> {
    loop {
        if signals.pending().next().is_some() {
            return None;
        }
        for service in running.iter_mut() {
            if let Ok(Some(_)) = service.child.try_wait() {
                return Some(service.name);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM each service, last started first, and wait for it (SIGKILL after the deadline).
fn stop_all(running: &mut Vec<Service>) {
    while let Some(mut service) = running.pop() {
        if let Ok(Some(_)) = service.child.try_wait() {
            continue;
        }
        // std can only SIGKILL; `kill` asks politely so the service drains.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(service.child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = service.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = service.child.try_wait() {
            let _ = service.child.kill();
            let _ = service.child.wait();
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("toystore: error: {message}");
    ExitCode::FAILURE
}
