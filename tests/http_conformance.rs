//! Raw-socket conformance and bad-input battery for our HTTP server.
//!
//! The server runs in-process on 127.0.0.1:0 with a small test router and millisecond
//! limits. Every case asserts the status (or the close) *and* that the server still
//! serves afterwards.

mod common;

use common::{
    closed, eventually, expect_response, procfs, read_head_response, read_response, Metrics, Resp,
};
use crossbeam_channel::{Receiver, Sender};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use toystore::http::{
    ApiError, Limits, Request, Response, Router, Server, ServerOptions, ShutdownHandle,
};

/// How long a test waits for an answer, a close or a condition: every one comes well
/// before.
const PATIENCE: Duration = Duration::from_secs(5);

struct TestServer {
    addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
    held: Held,
}

/// The test's side of `GET /held`, a handler that keeps its worker until the test lets
/// it go: a worker busy for exactly as long as a test needs, with no guessed sleep.
struct Held {
    /// A message each time a `/held` request has entered the handler.
    entered: Receiver<()>,
    /// A message lets one `/held` request finish.
    release: Sender<()>,
}

impl TestServer {
    /// Waits until a `/held` request is inside its handler.
    #[track_caller]
    fn wait_until_held(&self) {
        self.held
            .entered
            .recv_timeout(PATIENCE)
            .expect("GET /held reached its handler");
    }

    /// Lets one `/held` request finish.
    fn release_held(&self) {
        self.held.release.send(()).unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn test_limits() -> Limits {
    Limits {
        max_head_bytes: 2048,
        max_headers: 20,
        max_body_bytes: 1024,
        request_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(600),
        write_timeout: Duration::from_millis(1000),
        workers: 4,
        max_queue: 64,
        shutdown_grace: Duration::from_secs(3),
        ..Limits::default()
    }
}

/// The routes every test server has. `/held` waits for the test (see [`Held`]), at most
/// [`PATIENCE`] twice over, so that a failing test does not leave a worker stuck.
fn router() -> (Router, Held) {
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded::<()>();
    let router = Router::new()
        .route("GET", "/hello", |_, _| Ok(Response::data(&"hello")))
        .route("POST", "/echo", |r: &Request, _| {
            Ok(Response::data(&String::from_utf8_lossy(&r.body)))
        })
        .route("GET", "/id", |r: &Request, _| {
            Ok(Response::data(&r.request_id))
        })
        .route("GET", "/name/{name}", |_, p| Ok(Response::data(&p.get(0))))
        .route("GET", "/empty", |_, _| {
            Ok(Response {
                status: 204,
                ..Response::data(&())
            })
        })
        .route("GET", "/held", move |_, _| {
            let _ = entered_tx.send(());
            let _ = release_rx.recv_timeout(2 * PATIENCE);
            Ok(Response::data(&"held"))
        })
        .route("GET", "/panic", |_, _| -> Result<Response, ApiError> {
            panic!("handler panicked on purpose")
        });
    (router, Held { entered, release })
}

fn start(limits: Limits) -> TestServer {
    let options = ServerOptions {
        name: "test",
        limits,
        access_log: false,
        metrics_extra: None,
    };
    let (router, held) = router();
    let server = Server::bind("127.0.0.1:0", router, options).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.shutdown_handle();
    let thread = Some(thread::spawn(move || server.run().unwrap()));
    TestServer {
        addr,
        handle,
        thread,
        held,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    common::connect_with_timeout(&addr.to_string(), PATIENCE)
}

/// Sends `raw` on a new connection and reads one response.
#[track_caller]
fn exchange(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut stream = connect(addr);
    stream.write_all(raw).unwrap();
    expect_response(&mut stream)
}

/// The server still answers a fresh, ordinary request.
#[track_caller]
fn assert_serving(addr: SocketAddr) {
    let reply = exchange(addr, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (200, r#"{"data":"hello"}"#)
    );
}

/// The error envelope with `status`, as exactly `application/json`.
#[track_caller]
fn assert_envelope(reply: &Resp, status: u16) {
    reply.err(status, None);
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

/// A gauge of the server's `/metrics`, scraped on a connection that asks to be closed
/// (so the scrape itself is never a parked connection).
fn gauge(addr: SocketAddr, name: &str) -> u64 {
    let reply = exchange(addr, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    Metrics::parse(&reply.text).value(name)
}

#[test]
fn every_response_is_framed_with_length_date_and_request_id() {
    let server = start(test_limits());
    let reply = exchange(server.addr, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(reply.header("content-length"), Some("16"));
    assert!(reply.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    assert!(reply
        .header("x-request-id")
        .is_some_and(|id| !id.is_empty()));
    let reply = exchange(
        server.addr,
        b"GET /id HTTP/1.1\r\nX-Request-Id: abc-123\r\n\r\n",
    );
    assert_eq!(
        reply.text, r#"{"data":"abc-123"}"#,
        "a sane client id is kept"
    );
    let reply = exchange(
        server.addr,
        b"GET /id HTTP/1.1\r\nX-Request-Id: bad id!\r\n\r\n",
    );
    assert!(
        !reply.text.contains("bad id"),
        "an odd client id is replaced: {reply:?}"
    );
}

#[test]
fn fragmented_writes_are_reassembled() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    stream.set_nodelay(true).unwrap();
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    for byte in raw.chunks(3) {
        stream.write_all(byte).unwrap();
        // The pause is the point: each piece arrives on its own.
        thread::sleep(Duration::from_millis(2));
    }
    let reply = expect_response(&mut stream);
    assert_eq!(reply.text, r#"{"data":"hello"}"#);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /name/a HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nbbGET /name/c HTTP/1.1\r\n\r\n")
        .unwrap();
    let bodies: Vec<String> = (0..3).map(|_| expect_response(&mut stream).text).collect();
    assert_eq!(
        bodies,
        [r#"{"data":"a"}"#, r#"{"data":"bb"}"#, r#"{"data":"c"}"#]
    );
}

#[test]
fn keep_alive_follows_version_and_connection_header() {
    let server = start(test_limits());
    // (request, stays open)
    let cases: &[(&[u8], bool)] = &[
        (b"GET /hello HTTP/1.0\r\n\r\n", false),
        (
            b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        (b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        (b"GET /hello HTTP/1.1\r\n\r\n", true),
    ];
    for (raw, stays_open) in cases {
        let mut stream = connect(server.addr);
        stream.write_all(raw).unwrap();
        let reply = expect_response(&mut stream);
        assert_eq!(reply.status, 200);
        let want = if *stays_open { "keep-alive" } else { "close" };
        assert_eq!(
            reply.header("connection"),
            Some(want),
            "{}",
            String::from_utf8_lossy(raw)
        );
        if *stays_open {
            stream.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(expect_response(&mut stream).status, 200);
        } else {
            assert!(closed(&mut stream));
        }
    }
}

#[test]
fn expect_100_continue_and_other_expectations() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let interim = expect_response(&mut stream);
    assert_eq!(interim.status, 100);
    stream.write_all(b"abc").unwrap();
    assert_eq!(expect_response(&mut stream).text, r#"{"data":"abc"}"#);

    let reply = exchange(
        server.addr,
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nExpect: tea\r\n\r\nabc",
    );
    assert_envelope(&reply, 417);
    assert_serving(server.addr);
}

#[test]
fn head_and_204_carry_no_body() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    stream
        .write_all(
            b"HEAD /hello HTTP/1.1\r\n\r\nGET /empty HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n",
        )
        .unwrap();
    let head = read_head_response(&mut stream)
        .unwrap()
        .expect("a response to HEAD");
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("16"))
    );
    let empty = expect_response(&mut stream);
    assert_eq!(
        (
            empty.status,
            empty.header("content-length"),
            empty.text.as_str()
        ),
        (204, None, "")
    );
    // If either had sent a body, this would read it instead of the next response.
    assert_eq!(expect_response(&mut stream).text, r#"{"data":"hello"}"#);
}

#[test]
fn chunked_bodies_are_decoded_and_bad_ones_refused() {
    let server = start(test_limits());
    let reply = exchange(server.addr, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n");
    assert_eq!(reply.text, r#"{"data":"abcde"}"#);
    let cases: &[(&[u8], u16)] = &[
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n",
            413,
        ),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
            400,
        ),
    ];
    for (raw, status) in cases {
        assert_envelope(&exchange(server.addr, raw), *status);
    }
    assert_serving(server.addr);
}

#[test]
fn smuggling_shapes_are_refused() {
    let server = start(test_limits());
    let cases: &[&[u8]] = &[
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc",
    ];
    for raw in cases {
        let mut stream = connect(server.addr);
        stream.write_all(raw).unwrap();
        let reply = expect_response(&mut stream);
        assert_envelope(&reply, 400);
        assert_eq!(
            reply.header("connection"),
            Some("close"),
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert!(
            closed(&mut stream),
            "closed after {}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_serving(server.addr);
}

#[test]
fn malformed_and_oversized_requests_get_their_status() {
    let server = start(test_limits());
    let big_header = format!("GET /hello HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(3000));
    let many_headers = format!("GET /hello HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(25));
    let endless_head = format!("GET /hello HTTP/1.1\r\nX-Big: {}", "a".repeat(3000));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (b"GET /hello HTTP/9.9\r\n\r\n".to_vec(), 400),
        (b"GET hello HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET /hello HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), 400),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
        ),
        (big_header.into_bytes(), 431),
        (many_headers.into_bytes(), 431),
        (endless_head.into_bytes(), 431),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
            413,
        ),
        (b"GET /nowhere HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"DELETE /hello HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"GET /name/%FF HTTP/1.1\r\n\r\n".to_vec(), 400),
    ];
    for (raw, status) in cases {
        let reply = exchange(server.addr, &raw);
        assert_envelope(&reply, status);
    }
    assert_serving(server.addr);
}

#[test]
fn a_body_over_the_limit_sent_in_full_still_gets_413_not_a_reset() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    let mut raw = b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 100_000));
    // Write from another thread: the server answers before it has read everything.
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&raw);
    });
    let reply = expect_response(&mut stream);
    assert_envelope(&reply, 413);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    assert_serving(server.addr);
}

#[test]
fn percent_decoded_path_segments() {
    let server = start(test_limits());
    let reply = exchange(server.addr, b"GET /name/T%75x%20%C3%A9 HTTP/1.1\r\n\r\n");
    assert_eq!(
        reply.text,
        r#"{"data":"Tux \u00e9"}"#.replace("\\u00e9", "é")
    );
}

#[test]
fn header_names_are_case_insensitive() {
    let server = start(test_limits());
    let reply = exchange(
        server.addr,
        b"POST /echo HTTP/1.1\r\ncOnTeNt-LeNgTh: 2\r\n\r\nok",
    );
    assert_eq!(reply.text, r#"{"data":"ok"}"#);
}

#[test]
fn a_panicking_handler_is_a_500_and_the_worker_survives() {
    let mut limits = test_limits();
    limits.workers = 1;
    let server = start(limits);
    for _ in 0..3 {
        let reply = exchange(server.addr, b"GET /panic HTTP/1.1\r\n\r\n");
        assert_envelope(&reply, 500);
    }
    // With one worker, this only answers if the worker lived through the panics.
    assert_serving(server.addr);
}

#[test]
fn abrupt_disconnect_mid_body_leaves_the_server_serving() {
    let server = start(test_limits());
    for _ in 0..5 {
        let mut stream = connect(server.addr);
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
            .unwrap();
        drop(stream);
    }
    assert_serving(server.addr);
}

#[test]
fn a_stalled_request_gets_408_and_is_closed() {
    let server = start(test_limits());
    let started = Instant::now();
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let reply = expect_response(&mut stream);
    assert_envelope(&reply, 408);
    assert!(closed(&mut stream));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "dropped within the request timeout, not the read timeout"
    );
    assert_serving(server.addr);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    stream.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(expect_response(&mut stream).status, 200);
    assert!(
        closed(&mut stream),
        "closed by the server, not by our 5 s read timeout"
    );
}

#[test]
fn slowloris_senders_do_not_hold_up_other_clients() {
    let server = start(test_limits());
    let mut slow: Vec<TcpStream> = (0..50).map(|_| connect(server.addr)).collect();
    for round in 0..3 {
        for stream in &mut slow {
            let _ = stream.write_all(&[b"GET /hello HTTP/1.1\r\n"[round]]);
        }
        // Four workers, fifty trickling senders: a fresh client still gets through.
        assert_serving(server.addr);
        // The pause is the point: the senders trickle.
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn many_idle_connections_do_not_starve_new_clients() {
    let mut limits = test_limits();
    limits.idle_timeout = Duration::from_secs(30);
    limits.linger = Duration::from_millis(5);
    let server = start(limits);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut stream = connect(server.addr);
        stream.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(expect_response(&mut stream).status, 200);
        idle.push(stream);
    }
    // 1,000 kept-alive connections, 4 workers: every one is parked, none holds a worker.
    assert_serving(server.addr);
    let stream = &mut idle[500];
    stream.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        expect_response(stream).status,
        200,
        "a parked connection is served again when it speaks"
    );
}

#[test]
fn a_saturated_server_answers_503_at_once() {
    let mut limits = test_limits();
    limits.workers = 1;
    limits.max_queue = 1;
    let server = start(limits);
    let mut busy = connect(server.addr);
    busy.write_all(b"GET /held HTTP/1.1\r\n\r\n").unwrap();
    server.wait_until_held(); // the only worker is taken
    let mut queued = connect(server.addr);
    queued.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    // Accepted means queued: the acceptor queues a connection before it accepts the next.
    let queued_from = queued.local_addr().unwrap();
    eventually("the second connection accepted", PATIENCE, || {
        procfs::accepted(server.addr, queued_from).then_some(())
    });
    let reply = exchange(server.addr, b"GET /hello HTTP/1.1\r\n\r\n");
    assert_envelope(&reply, 503);
    server.release_held();
    assert_eq!(expect_response(&mut busy).status, 200);
    assert_eq!(expect_response(&mut queued).status, 200);
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    let mut limits = test_limits();
    limits.max_requests_per_connection = 2;
    let server = start(limits);
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        expect_response(&mut stream).header("connection"),
        Some("keep-alive")
    );
    assert_eq!(
        expect_response(&mut stream).header("connection"),
        Some("close")
    );
    assert!(closed(&mut stream));
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let server = start(test_limits());
    exchange(server.addr, b"GET /name/a HTTP/1.1\r\n\r\n");
    exchange(server.addr, b"GET /name/b HTTP/1.1\r\n\r\n");
    exchange(server.addr, b"GET /nowhere HTTP/1.1\r\n\r\n");
    let reply = exchange(server.addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(reply.status, 200);
    for line in [
        r#"toystore_http_requests_total{service="test",route="/name/{name}",method="GET",status="200"} 2"#,
        r#"toystore_http_requests_total{service="test",route="not-found",method="GET",status="404"} 1"#,
        r#"toystore_http_workers{service="test"} 4"#,
    ] {
        assert!(
            reply.text.lines().any(|l| l == line),
            "missing {line}\n{}",
            reply.text
        );
    }
}

#[test]
fn shutdown_lets_in_flight_requests_finish_then_stops_accepting() {
    let mut server = start(test_limits());
    let mut stream = connect(server.addr);
    stream.write_all(b"GET /held HTTP/1.1\r\n\r\n").unwrap();
    server.wait_until_held();
    server.handle.shutdown();
    // The request finishes only once the server has stopped listening, so it is answered
    // during the shutdown, as the last one on its connection.
    eventually("the listener closed", PATIENCE, || {
        (!procfs::listens(server.addr)).then_some(())
    });
    server.release_held();
    let reply = expect_response(&mut stream);
    assert_eq!(
        (reply.status, reply.header("connection")),
        (200, Some("close"))
    );
    server.thread.take().unwrap().join().unwrap();
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn a_zero_linger_still_serves_keep_alive_and_pipelined_requests() {
    let mut limits = test_limits();
    limits.linger = Duration::ZERO;
    let server = start(limits);
    assert_serving(server.addr);
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /name/a HTTP/1.1\r\n\r\nGET /name/b HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(expect_response(&mut stream).text, r#"{"data":"a"}"#);
    assert_eq!(expect_response(&mut stream).text, r#"{"data":"b"}"#);
    // The connection is parked in between; it is served again when it speaks. Wait
    // until it is parked: first until the connection `assert_serving` used is gone
    // (open: this one and the scrape's), so that this one is the only one that can be.
    eventually("only this connection open", PATIENCE, || {
        (gauge(server.addr, "toystore_http_open_connections") == 2).then_some(())
    });
    eventually("this connection parked", PATIENCE, || {
        (gauge(server.addr, "toystore_http_idle_connections") == 1).then_some(())
    });
    stream.write_all(b"GET /name/c HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(expect_response(&mut stream).text, r#"{"data":"c"}"#);
}

#[test]
fn every_connection_progresses_when_the_pool_is_saturated() {
    // Far more busy keep-alive connections than workers: each must still get all its
    // answers (a parked connection handed back by the reactor is always read, never
    // parked again unread while others wait).
    let mut limits = test_limits();
    limits.workers = 2;
    limits.max_queue = 1000; // all of them queue; none is refused as saturation
    let server = start(limits);
    let started = Instant::now();
    thread::scope(|scope| {
        for client in 0..300 {
            let addr = server.addr;
            scope.spawn(move || {
                let mut stream = connect(addr);
                for i in 0..10 {
                    stream
                        .write_all(format!("GET /name/{client}-{i} HTTP/1.1\r\n\r\n").as_bytes())
                        .unwrap();
                    let reply = read_response(&mut stream)
                        .ok()
                        .flatten()
                        .expect("an answer before the 5 s read timeout");
                    assert_eq!(reply.text, format!(r#"{{"data":"{client}-{i}"}}"#));
                }
            });
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "3,000 requests took {:?}",
        started.elapsed()
    );
}
