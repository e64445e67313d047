//! The black-box harness shared by every test file.
//!
//! A [`Stack`] is the three services seen from outside, in one of two modes:
//!
//! - **spawned** (the default): the real binaries are started as child processes,
//!   each on `127.0.0.1:0` with a fresh temporary data directory. The harness reads
//!   the `<service> listening on http://HOST:PORT` line to learn each port, waits
//!   for `GET /health`, and kills the children when the stack is dropped. It can
//!   stop (SIGTERM), kill (SIGKILL) and restart a service on the same port with the
//!   same data directory.
//! - **external**: when `FRONT` is set (and optionally `CATALOG`, `ORDER`,
//!   `ADMIN_TOKEN`), the tests talk to servers that are already running. Their state
//!   is not fresh, so the shared tests are written relative to the state they find;
//!   tests that need fresh state or process control skip themselves there.
//!
//! Everything here is written against the outside contract (`shared/CONTRACT.md`),
//! never against the implementation: only HTTP, the command line and stdout.
#![allow(dead_code)]

pub mod faults;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod procfs;

/// The admin token the harness gives the services it spawns.
pub const TEST_TOKEN: &str = "test-admin-token-5f1c";

/// How long a spawned service may take to print its address and answer `/health`.
/// Generous: the machine is small and shared, and a debug build starts slowly under load.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// How long a graceful stop may take before the test calls it a hang.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Per-request timeout of the test client: a hang fails the test instead of blocking it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The seed every spawned stack starts from unless a test brings its own.
pub const SEED: &[(&str, f64, u64)] = &[
    ("Tux", 25.99, 80),
    ("Whale", 34.99, 100),
    ("Elephant", 29.99, 100),
    ("Bird", 39.99, 100),
];

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
    fn name(self) -> &'static str {
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

// ---------------------------------------------------------------------------------------
// Responses and the HTTP client
// ---------------------------------------------------------------------------------------

/// A response as the tests look at it.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The raw body.
    pub text: String,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
    /// All headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Resp {
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a 200 with the success envelope and JSON content type; returns `data`.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200, got {self:?}");
        assert_json_content_type(self);
        let obj = self
            .json
            .as_object()
            .unwrap_or_else(|| panic!("success body is not a JSON object: {self:?}"));
        assert!(
            !obj.contains_key("error"),
            "success body carries an error: {self:?}"
        );
        obj.get("data")
            .unwrap_or_else(|| panic!("success body has no \"data\": {self:?}"))
    }

    /// Asserts the error envelope with `code == status`, a non-empty lower-case
    /// message, and, when given, the exact message.
    #[track_caller]
    pub fn err(&self, status: u16, message: Option<&str>) {
        assert_eq!(self.status, status, "expected {status}, got {self:?}");
        assert_envelope(self);
        if let Some(m) = message {
            assert_eq!(
                self.json["error"]["message"], m,
                "wrong error message in {self:?}"
            );
        }
    }

    /// Asserts an error envelope whose status is one of `statuses`.
    #[track_caller]
    pub fn err_any(&self, statuses: &[u16]) {
        assert!(
            statuses.contains(&self.status),
            "expected one of {statuses:?}, got {self:?}"
        );
        assert_envelope(self);
    }
}

/// Asserts `Content-Type: application/json` (parameters such as charset allowed).
#[track_caller]
pub fn assert_json_content_type(r: &Resp) {
    let ct = r
        .content_type
        .as_deref()
        .unwrap_or_else(|| panic!("no Content-Type in {r:?}"));
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "Content-Type is not application/json: {r:?}"
    );
}

/// Asserts the failure envelope: exactly `{"error":{"code":status,"message":"..."}}`
/// with a non-empty lower-case message, and the JSON content type.
#[track_caller]
pub fn assert_envelope(r: &Resp) {
    assert_json_content_type(r);
    let obj = r
        .json
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {r:?}"));
    assert!(!obj.contains_key("data"), "error body carries data: {r:?}");
    let e = obj
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("error body has no \"error\" object: {r:?}"));
    assert_eq!(
        e.get("code").and_then(Value::as_u64),
        Some(u64::from(r.status)),
        "error.code is not the HTTP status: {r:?}"
    );
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error.message is not a string: {r:?}"));
    assert!(!msg.trim().is_empty(), "empty error message: {r:?}");
    assert_eq!(
        msg,
        msg.to_lowercase(),
        "error message is not lower-case: {r:?}"
    );
}

/// A small blocking client on ureq 3 that never turns a status into an error.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Self::with_timeout(REQUEST_TIMEOUT)
    }
}

impl Http {
    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        Http { agent }
    }

    /// `GET url`, or the transport error.
    pub fn try_get(&self, url: &str) -> Result<Resp, ureq::Error> {
        finish(self.agent.get(url).call())
    }

    /// `GET url`; a transport error fails the test.
    #[track_caller]
    pub fn get(&self, url: &str) -> Resp {
        self.try_get(url)
            .unwrap_or_else(|e| panic!("GET {url}: transport error {e}"))
    }

    /// `POST url` with a JSON body (sent as is) and extra headers, or the transport error.
    pub fn try_post(
        &self,
        url: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, ureq::Error> {
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_empty() {
            finish(req.send_empty())
        } else {
            finish(req.send(body))
        }
    }

    /// `POST url` with a JSON body; a transport error fails the test.
    #[track_caller]
    pub fn post(&self, url: &str, body: &str) -> Resp {
        self.post_h(url, body, &[])
    }

    /// `POST url` with a JSON body and extra headers; a transport error fails the test.
    #[track_caller]
    pub fn post_h(&self, url: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        self.try_post(url, body, headers)
            .unwrap_or_else(|e| panic!("POST {url} {body}: transport error {e}"))
    }

    /// `PUT url` with a JSON body and, when given, `Authorization: Bearer TOKEN`.
    #[track_caller]
    pub fn put(&self, url: &str, body: &str, token: Option<&str>) -> Resp {
        let mut req = self
            .agent
            .put(url)
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        finish(req.send(body)).unwrap_or_else(|e| panic!("PUT {url} {body}: transport error {e}"))
    }

    /// `PUT url` with an arbitrary `Authorization` header value.
    #[track_caller]
    pub fn put_auth(&self, url: &str, body: &str, authorization: &str) -> Resp {
        let req = self
            .agent
            .put(url)
            .header("Content-Type", "application/json")
            .header("Authorization", authorization);
        finish(req.send(body)).unwrap_or_else(|e| panic!("PUT {url} {body}: transport error {e}"))
    }

    /// `DELETE url`.
    #[track_caller]
    pub fn delete(&self, url: &str) -> Resp {
        finish(self.agent.delete(url).call())
            .unwrap_or_else(|e| panic!("DELETE {url}: transport error {e}"))
    }
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Resp, ureq::Error> {
    let mut resp = r?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone());
    let text = resp.body_mut().read_to_string()?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        content_type,
        text,
        json,
        headers,
    })
}

// ---------------------------------------------------------------------------------------
// Raw sockets
// ---------------------------------------------------------------------------------------

/// `host:port` of an `http://host:port` base URL.
pub fn host_port(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Opens a socket to `base` with read and write timeouts.
pub fn connect(base: &str) -> TcpStream {
    let s = TcpStream::connect(host_port(base)).unwrap_or_else(|e| panic!("connect {base}: {e}"));
    s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    s
}

/// Reads one HTTP/1.1 response from a socket (framed by Content-Length, or read to
/// EOF without one). `Ok(None)` means the peer closed before sending a byte.
pub fn read_response(s: &mut TcpStream) -> std::io::Result<Option<Resp>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the blank line, so that pipelined responses stay in the socket.
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte)? {
            0 if buf.is_empty() => return Ok(None),
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("eof inside headers: {:?}", String::from_utf8_lossy(&buf)),
                ))
            }
            _ => buf.push(byte[0]),
        }
        assert!(buf.len() < 1 << 20, "response headers over 1 MiB");
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    assert!(
        version.starts_with("HTTP/1."),
        "bad status line {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if let Some(cl) = find("content-length") {
        let n: usize = cl.parse().expect("numeric Content-Length");
        let mut body = vec![0u8; n];
        s.read_exact(&mut body)?;
        body
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        read_chunked(s)?
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        let mut body = Vec::new();
        s.read_to_end(&mut body)?;
        body
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    Ok(Some(Resp {
        status,
        content_type: find("content-type"),
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        headers,
    }))
}

fn read_chunked(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = read_line(s)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            // Trailers up to the blank line.
            while !read_line(s)?.is_empty() {}
            return Ok(out);
        }
        let mut chunk = vec![0u8; size];
        s.read_exact(&mut chunk)?;
        out.extend_from_slice(&chunk);
        read_line(s)?;
    }
}

fn read_line(s: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Sends `bytes` on a new connection, half-closes it, and reads one response.
pub fn raw(base: &str, bytes: &[u8]) -> std::io::Result<Option<Resp>> {
    let mut s = connect(base);
    s.write_all(bytes)?;
    s.flush()?;
    let _ = s.shutdown(Shutdown::Write);
    read_response(&mut s)
}

/// Sends `bytes` on a new connection and reads one response; any I/O problem or a
/// close without an answer fails the test.
#[track_caller]
pub fn raw_ok(base: &str, bytes: &[u8]) -> Resp {
    match raw(base, bytes) {
        Ok(Some(r)) => r,
        Ok(None) => panic!(
            "connection closed without a response to {:?}",
            preview(bytes)
        ),
        Err(e) => panic!("I/O error {e} on {:?}", preview(bytes)),
    }
}

fn preview(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    if bytes.len() > 200 {
        format!("{s}... ({} bytes)", bytes.len())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A spawned service and what it takes to start it again.
struct Proc {
    /// Which service.
    svc: Svc,
    /// The running child, if it runs.
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` once known.
    url: String,
    /// The data directory (catalog and order), kept across restarts.
    data_dir: Option<tempfile::TempDir>,
    /// Extra command-line arguments (peers, seed).
    args: Vec<String>,
    /// The last lines the service wrote, shown when a test fails.
    logs: Arc<Mutex<Vec<String>>>,
    /// Extra environment; a `LISTEN` here replaces the `--listen` flag.
    envs: Vec<(String, String)>,
    /// Working directory, when not the test's.
    cwd: Option<PathBuf>,
    /// Run this program with these leading arguments instead of the service's binary
    /// (`toystore catalog ...`).
    program: Option<(String, Vec<String>)>,
}

impl Proc {
    fn new(svc: Svc, args: Vec<String>, with_data: bool) -> Self {
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
    fn launch(&mut self, listen: &str) {
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
    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }

    /// Kills (SIGKILL) and reaps the child, if any.
    fn reap(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Sends SIGTERM and waits for the exit.
    fn terminate(&mut self, signal: &str) -> ExitStatus {
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

// ---------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------

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
    /// Held for the whole test in external mode.
    _guard: Option<MutexGuard<'static, ()>>,
    /// The seed file, kept alive for restarts.
    _seed: Option<tempfile::NamedTempFile>,
}

/// Whether the tests run against already running servers.
pub fn external() -> bool {
    std::env::var("FRONT").is_ok_and(|v| !v.trim().is_empty())
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
    /// The stack every test uses: external when `FRONT` is set, otherwise a fresh spawned one.
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
                _guard: Some(guard),
                _seed: None,
            }
        } else {
            Stack::spawn(Options::default())
        }
    }

    /// A stack for a test that needs fresh state or process control; `None` (after
    /// printing why) in external mode.
    pub fn spawned_only(test: &str) -> Option<Stack> {
        Self::spawned_only_with(test, Options::default())
    }

    /// Like [`Stack::spawned_only`], with options.
    pub fn spawned_only_with(test: &str, opts: Options) -> Option<Stack> {
        if external() {
            skip(&format!("{test}: skipped: needs spawned stack"));
            None
        } else {
            Some(Stack::spawn(opts))
        }
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

    /// Whether this stack was spawned by the harness (fresh state, process control).
    pub fn is_spawned(&self) -> bool {
        !self.procs.is_empty()
    }

    fn proc_mut(&mut self, svc: Svc) -> &mut Proc {
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

/// Asserts `{"data":{"order_number":N}}` with N a JSON integer; returns N.
#[track_caller]
pub fn order_number(r: &Resp) -> u64 {
    let d = r.ok();
    let obj = d
        .as_object()
        .unwrap_or_else(|| panic!("data is not an object: {r:?}"));
    assert_eq!(obj.len(), 1, "data has fields besides order_number: {r:?}");
    let n = &obj["order_number"];
    assert!(n.is_u64(), "order_number is not a JSON integer: {r:?}");
    n.as_u64().unwrap()
}

/// Says that a test skipped itself, on the real stderr: the test harness captures
/// `println!`, which would hide the skip of a passing test.
pub fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "{why}");
}

/// A string that no other run or test uses (idempotency keys, nonces).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` until it returns `Some`, or fails the test after `deadline`.
#[track_caller]
pub fn eventually<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
