//! One service as a child process: start it on a port, learn its address from its first
//! line of output, wait for `/health`, keep its recent output, stop or kill it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::Http;

/// The admin token the harness gives the services it spawns.
pub const TEST_TOKEN: &str = "test-admin-token-5f1c";

/// How long a spawned service may take to print its address and answer `/health`.
/// Generous: the machine is small and shared, and a debug build starts slowly under load.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the test calls it a hang.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// One of the three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Svc {
    /// The product table.
    Catalog,
    /// The order log.
    Order,
    /// The public gateway.
    Frontend,
}

impl Svc {
    pub(super) fn name(self) -> &'static str {
        match self {
            Svc::Catalog => "catalog",
            Svc::Order => "order",
            Svc::Frontend => "frontend",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Svc::Catalog => env!("CARGO_BIN_EXE_catalog"),
            Svc::Order => env!("CARGO_BIN_EXE_order"),
            Svc::Frontend => env!("CARGO_BIN_EXE_frontend"),
        }
    }
}

/// A spawned service and what it takes to start it again.
pub(super) struct Proc {
    /// Which service.
    pub(super) svc: Svc,
    /// The running child, if it runs.
    pub(super) child: Option<Child>,
    /// `http://127.0.0.1:PORT` once known.
    pub(super) url: String,
    /// The data directory (catalog and order), kept across restarts.
    pub(super) data_dir: Option<tempfile::TempDir>,
    /// Extra command-line arguments (peers, seed).
    pub(super) args: Vec<String>,
    /// The last lines the service wrote, shown when a test fails.
    pub(super) logs: Arc<Mutex<Vec<String>>>,
    /// Extra environment; a `LISTEN` here replaces the `--listen` flag.
    pub(super) envs: Vec<(String, String)>,
    /// Working directory, when not the test's.
    pub(super) cwd: Option<PathBuf>,
    /// Run this program with these leading arguments instead of the service's binary
    /// (`toystore catalog ...`).
    pub(super) program: Option<(String, Vec<String>)>,
}

impl Proc {
    pub(super) fn new(svc: Svc, args: Vec<String>, with_data: bool) -> Self {
        let data_dir = with_data.then(|| {
            tempfile::Builder::new()
                .prefix(&format!("toystore-{}-", svc.name()))
                .tempdir()
                .expect("temp dir")
        });
        Proc {
            svc,
            child: None,
            url: String::new(),
            data_dir,
            args,
            logs: Arc::new(Mutex::new(Vec::new())),
            envs: Vec::new(),
            cwd: None,
            program: None,
        }
    }

    /// Starts the child on `listen`, learns its address, and waits for `/health`.
    pub(super) fn launch(&mut self, listen: &str) {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let result = self.try_launch(listen, deadline);
            if result.is_err() {
                self.reap();
            }
            match result {
                Ok(()) => return,
                // A restart on a fixed port can lose a race for the port; try again.
                Err(e) if Instant::now() < deadline && !listen.ends_with(":0") => {
                    eprintln!("{} restart failed ({e}); retrying", self.svc.name());
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!(
                    "{} did not start: {e}\n--- its output ---\n{}",
                    self.svc.name(),
                    self.logs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .join("\n")
                ),
            }
        }
    }

    fn try_launch(&mut self, listen: &str, deadline: Instant) -> Result<(), String> {
        let mut cmd = match &self.program {
            Some((program, lead)) => {
                let mut c = Command::new(program);
                c.args(lead);
                c
            }
            None => Command::new(self.svc.binary()),
        };
        if !self.envs.iter().any(|(k, _)| k == "LISTEN") {
            cmd.arg("--listen").arg(listen);
        }
        if let Some(d) = &self.data_dir {
            cmd.arg("--data-dir").arg(d.path());
        }
        cmd.args(&self.args);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for var in ["LISTEN", "DATA_DIR", "SEED", "CATALOG", "ORDER", "FRONT"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd.env("ADMIN_TOKEN", TEST_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.svc.binary()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        drain_stdout(stdout, tx, Arc::clone(&self.logs));
        drain(stderr, Arc::clone(&self.logs));
        self.child = Some(child);

        let wait = deadline.saturating_duration_since(Instant::now());
        let line: String = match rx.recv_timeout(wait) {
            Ok(line) => line,
            Err(_) => {
                let status = self.reap();
                return Err(format!("no address line on stdout (exit: {status:?})"));
            }
        };
        let prefix = format!("{} listening on ", self.svc.name());
        let url = line
            .trim()
            .strip_prefix(&prefix)
            .ok_or_else(|| {
                format!("first stdout line is {line:?}, expected \"{prefix}http://HOST:PORT\"")
            })?
            .trim()
            .to_string();
        if !url.starts_with("http://") {
            return Err(format!("address {url:?} is not http://HOST:PORT"));
        }
        self.url = url;
        let http = Http::with_timeout(Duration::from_secs(2));
        loop {
            if let Ok(r) = http.try_get(&format!("{}/health", self.url)) {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("exited with {status} before answering /health"));
            }
            if Instant::now() > deadline {
                self.reap();
                return Err("GET /health never answered 200".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port the service is bound to.
    pub(super) fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }

    /// Kills (SIGKILL) and reaps the child, if any.
    pub(super) fn reap(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Sends SIGTERM and waits for the exit.
    pub(super) fn terminate(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("service is not running");
        let pid = child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} {pid} failed");
        exit_within(&mut child, STOP_DEADLINE).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not exit within {STOP_DEADLINE:?} of SIGTERM",
                self.svc.name()
            )
        })
    }
}

/// Waits up to `within` for `child` to exit: its status, or `None` if it still runs.
pub fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One extra service started by a test with its own arguments and environment
/// (no `--data-dir` unless given in `args`); killed on drop.
pub struct Extra {
    proc: Proc,
}

impl Extra {
    /// Starts `svc` with `args` and `envs`; with `LISTEN` among `envs` no `--listen`
    /// flag is passed. Waits for its address line and `/health`.
    pub fn start(svc: Svc, args: &[&str], envs: &[(&str, &str)]) -> Extra {
        Self::start_in(svc, args, envs, None)
    }

    /// Like [`Extra::start`], in the working directory `cwd`.
    pub fn start_in(
        svc: Svc,
        args: &[&str],
        envs: &[(&str, &str)],
        cwd: Option<&std::path::Path>,
    ) -> Extra {
        let mut proc = Proc::new(svc, args.iter().map(|a| a.to_string()).collect(), false);
        proc.envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        proc.cwd = cwd.map(|d| d.to_path_buf());
        proc.launch("127.0.0.1:0");
        Extra { proc }
    }

    /// Starts `svc` as a role of another program: `program lead... --listen ... args...`.
    pub fn start_as(svc: Svc, program: &str, lead: &[&str], args: &[&str]) -> Extra {
        let mut proc = Proc::new(svc, args.iter().map(|a| a.to_string()).collect(), false);
        proc.program = Some((
            program.to_string(),
            lead.iter().map(|a| a.to_string()).collect(),
        ));
        proc.launch("127.0.0.1:0");
        Extra { proc }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.proc.url
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.as_ref().map_or(0, |child| child.id())
    }

    /// Its recent output.
    pub fn logs(&self) -> String {
        self.proc
            .logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Forwards the first stdout line to `first`, then keeps reading so the child never
/// blocks on a full pipe.
fn drain_stdout(out: ChildStdout, first: mpsc::Sender<String>, logs: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        if matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            push_log(&logs, line.trim_end());
            let _ = first.send(line);
        }
        drop(first);
        for l in reader.lines() {
            match l {
                Ok(l) => push_log(&logs, &l),
                Err(_) => break,
            }
        }
    });
}

fn drain<R: Read + Send + 'static>(r: R, logs: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            match l {
                Ok(l) => push_log(&logs, &l),
                Err(_) => break,
            }
        }
    });
}

fn push_log(logs: &Mutex<Vec<String>>, line: &str) {
    let mut logs = logs.lock().unwrap_or_else(|p| p.into_inner());
    if logs.len() >= 400 {
        logs.drain(..200);
    }
    logs.push(line.to_string());
}
