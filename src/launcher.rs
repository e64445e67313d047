//! `cargo run --release`: the whole stack as three processes on the default ports.
//!
//! `cargo run` builds only the `toystore` binary, so the launcher cannot count on the
//! sibling binaries existing: it runs itself again with a subcommand per service.
//!
//! Stopping: each child gets its own process group, so Ctrl-C (SIGINT) and a closed
//! terminal (SIGHUP) reach only the launcher, which then stops the services (as it does
//! on SIGTERM) in the order that lets in-flight buys finish: front-end, order, catalog.
//! A launcher that dies without doing so (SIGKILL, a crash) still takes them along: each
//! child's stdin is a pipe only the launcher holds open, and a service started with
//! `--stop-when-stdin-closes` stops as on SIGTERM when it reads the pipe's end, which the
//! kernel delivers however the launcher ended (no `PR_SET_PDEATHSIG`, no polling).
//!
//! The services share a random internal token (`INTERNAL_TOKEN`), new each run unless
//! the environment sets one, so that only they can call each other's internal routes.
//! The admin token (`--admin-token`, else `ADMIN_TOKEN` from the environment) goes to
//! them through the environment too, where `ps` does not show it.

use crate::cli::LauncherArgs;
use crate::peer::backend::Backend;
use crate::peer::{PeerAddr, PeerLimits};
use crate::{logging, malloc};
use crate::{CATALOG_PORT, FRONT_PORT, ORDER_PORT};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long a service may take to answer `/health` after it starts.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long a service may take to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A service to start: its name in messages, the role it runs, its port, its flags
/// and environment.
struct Start {
    name: &'static str,
    role: &'static str,
    port: u16,
    flags: Vec<String>,
    envs: Vec<(&'static str, &'static str)>,
}

struct Service {
    name: &'static str,
    port: u16,
    child: Child,
}

/// Bytes of randomness in a generated internal token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// Starts catalog, order and front-end (and, with `--uncached-front-port`, a second
/// front-end with its cache off); stops them on SIGINT, SIGTERM or SIGHUP, or when
/// one dies.
pub fn run(args: LauncherArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find my own executable: {e}")),
    };
    let signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let token = match std::env::var("INTERNAL_TOKEN") {
        Ok(token) if !token.is_empty() => token,
        _ => match random_token() {
            Ok(token) => token,
            Err(e) => return fail(&format!("cannot make an internal token: {e}")),
        },
    };
    // The children's stdin; the write end stays here, open until this process ends.
    let (lifeline, _held_open) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return fail(&format!("cannot make a pipe: {e}")),
    };
    let catalog_url = format!("http://127.0.0.1:{CATALOG_PORT}");
    let order_url = format!("http://127.0.0.1:{ORDER_PORT}");
    let front_peers = vec![
        "--catalog".into(),
        catalog_url.clone(),
        "--order".into(),
        order_url,
    ];
    let start = |name, role, port, flags: Vec<String>| Start {
        name,
        role,
        port,
        flags,
        envs: vec![],
    };
    let mut plan = vec![
        start("catalog", "catalog", CATALOG_PORT, vec![]),
        start(
            "order",
            "order",
            ORDER_PORT,
            vec!["--catalog".into(), catalog_url],
        ),
        start("frontend", "frontend", FRONT_PORT, front_peers.clone()),
    ];
    if let Some(port) = args.uncached_front_port {
        // Started last, so stopped first, like the other front-end. The environment
        // rather than a flag: it overrides a CACHE_SIZE the launcher was given.
        plan.push(Start {
            envs: vec![("CACHE_SIZE", "0")],
            ..start("uncached frontend", "frontend", port, front_peers)
        });
    }
    let admin_token = args
        .admin_token
        .or_else(|| std::env::var("ADMIN_TOKEN").ok())
        .filter(|token| !token.is_empty());
    let mut running: Vec<Service> = Vec::new();
    for Start {
        name,
        role,
        port,
        flags,
        envs,
    } in plan
    {
        let spawned = lifeline.try_clone().and_then(|stdin| {
            let mut command = Command::new(&exe);
            command
                .arg(role)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--stop-when-stdin-closes")
                .args(flags)
                .env("INTERNAL_TOKEN", &token)
                .envs(envs)
                .stdin(Stdio::from(stdin))
                .process_group(0);
            // The allocator setting, from the start: no service runs itself again for it.
            malloc::tune(&mut command);
            if let Some(admin_token) = &admin_token {
                command.env("ADMIN_TOKEN", admin_token);
            }
            command.spawn()
        });
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
    drop(lifeline);
    let admin = match admin_token {
        Some(_) => format!(
            "curl -X PUT -H 'Authorization: Bearer <admin token>' -H 'Content-Type: application/json' -d '{{\"quantity\":100}}' http://127.0.0.1:{FRONT_PORT}/products/Tux"
        ),
        None => "off (start with --admin-token or ADMIN_TOKEN set to allow PUT /products/{name})"
            .to_string(),
    };
    let uncached = args.uncached_front_port.map_or(String::new(), |port| {
        format!(
            "  cache off: http://127.0.0.1:{port} (the same stack, uncached)\n  \
             eval:   ADMIN_TOKEN=<admin token> cargo run --release --bin client -- eval --uncached-front 127.0.0.1:{port} --out eval/\n"
        )
    });
    logging::info(format!(
        "\ntoystore is up: http://127.0.0.1:{FRONT_PORT}\n  \
         try:    curl http://127.0.0.1:{FRONT_PORT}/products/Tux\n  \
         buy:    curl -X POST -H 'Content-Type: application/json' -d '{{\"name\":\"Tux\",\"quantity\":1}}' http://127.0.0.1:{FRONT_PORT}/orders\n  \
         admin:  {admin}\n  \
         client: cargo run --release --bin client -- query Tux --requests 5\n{uncached}\
         Ctrl-C stops them all.\n"
    ));

    let died = wait_for_signal_or_death(signals, &mut running);
    stop_all(&mut running);
    match died {
        None => {
            logging::flush(Duration::from_secs(1));
            ExitCode::SUCCESS
        }
        Some(name) => fail(&format!("{name} exited unexpectedly; stopped the others")),
    }
}

/// A new token of [`TOKEN_BYTES`] from the kernel's random source, in hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    }))
}

/// Polls the service's `/health` until it answers, it dies, or the deadline passes.
fn wait_healthy(service: &mut Service) -> Result<(), String> {
    let peer = PeerAddr::parse(&format!("127.0.0.1:{}", service.port), service.port)
        .map_err(|e| e.to_string())?;
    let probe = Backend::new(
        "launcher",
        peer,
        &PeerLimits::probe(Duration::from_millis(500)),
    );
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
    logging::warn(format!("toystore: error: {message}"));
    logging::flush(Duration::from_secs(1));
    ExitCode::FAILURE
}
