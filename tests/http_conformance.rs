//! Raw-socket conformance and bad-input battery for our HTTP server.
//!
//! The server runs in-process on 127.0.0.1:0 with a small test router and millisecond
//! limits. Every case asserts the status (or the close) *and* that the server still
//! serves afterwards.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use toystore::http::{
    ApiError, Limits, Request, Response, Router, Server, ServerOptions, ShutdownHandle,
};

struct TestServer {
    addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
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

fn router() -> Router {
    Router::new()
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
        .route("GET", "/slow", |_, _| {
            thread::sleep(Duration::from_millis(300));
            Ok(Response::data(&"slow"))
        })
        .route("GET", "/panic", |_, _| -> Result<Response, ApiError> {
            panic!("handler panicked on purpose")
        })
}

fn start(limits: Limits) -> TestServer {
    let options = ServerOptions {
        name: "test",
        limits,
        access_log: false,
        metrics_extra: None,
    };
    let server = Server::bind("127.0.0.1:0", router(), options).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.shutdown_handle();
    let thread = Some(thread::spawn(move || server.run().unwrap()));
    TestServer {
        addr,
        handle,
        thread,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// One parsed response: status, lower-cased headers, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length framed, or none for 1xx/204/HEAD).
fn read_reply(reader: &mut BufReader<TcpStream>, head_only: bool) -> Option<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { length }];
    reader.read_exact(&mut body).ok()?;
    Some(Reply {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    })
}

/// Sends `raw` on a new connection and reads one response.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut stream = connect(addr);
    stream.write_all(raw).unwrap();
    read_reply(&mut BufReader::new(stream), false).expect("a response")
}

/// Whether the server closed the connection (EOF) within the stream's read timeout.
fn closed(reader: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).is_ok()
}

/// The server still answers a fresh, ordinary request.
fn assert_serving(addr: SocketAddr) {
    let reply = exchange(addr, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, r#"{"data":"hello"}"#)
    );
}

fn assert_envelope(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{reply:?}");
    let value: serde_json::Value =
        serde_json::from_str(&reply.body).unwrap_or_else(|_| panic!("json body: {reply:?}"));
    assert_eq!(value["error"]["code"], status, "{reply:?}");
    let message = value["error"]["message"].as_str().unwrap();
    assert!(
        !message.is_empty() && message == message.to_lowercase(),
        "{reply:?}"
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
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
        reply.body, r#"{"data":"abc-123"}"#,
        "a sane client id is kept"
    );
    let reply = exchange(
        server.addr,
        b"GET /id HTTP/1.1\r\nX-Request-Id: bad id!\r\n\r\n",
    );
    assert!(
        !reply.body.contains("bad id"),
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
        thread::sleep(Duration::from_millis(2));
    }
    let reply = read_reply(&mut BufReader::new(stream), false).unwrap();
    assert_eq!(reply.body, r#"{"data":"hello"}"#);
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = start(test_limits());
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /name/a HTTP/1.1\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nbbGET /name/c HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let bodies: Vec<String> = (0..3)
        .map(|_| read_reply(&mut reader, false).unwrap().body)
        .collect();
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
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let reply = read_reply(&mut reader, false).unwrap();
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
            assert_eq!(read_reply(&mut reader, false).unwrap().status, 200);
        } else {
            assert!(closed(&mut reader));
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
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let interim = read_reply(&mut reader, true).unwrap();
    assert_eq!(interim.status, 100);
    stream.write_all(b"abc").unwrap();
    assert_eq!(
        read_reply(&mut reader, false).unwrap().body,
        r#"{"data":"abc"}"#
    );

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
    let mut reader = BufReader::new(stream);
    let head = read_reply(&mut reader, true).unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("16"))
    );
    let empty = read_reply(&mut reader, false).unwrap();
    assert_eq!(
        (
            empty.status,
            empty.header("content-length"),
            empty.body.as_str()
        ),
        (204, None, "")
    );
    // If either had sent a body, this would read it instead of the next response.
    assert_eq!(
        read_reply(&mut reader, false).unwrap().body,
        r#"{"data":"hello"}"#
    );
}

#[test]
fn chunked_bodies_are_decoded_and_bad_ones_refused() {
    let server = start(test_limits());
    let reply = exchange(server.addr, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n");
    assert_eq!(reply.body, r#"{"data":"abcde"}"#);
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
        let mut reader = BufReader::new(stream);
        let reply = read_reply(&mut reader, false).unwrap();
        assert_envelope(&reply, 400);
        assert_eq!(
            reply.header("connection"),
            Some("close"),
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert!(
            closed(&mut reader),
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
    let stream = connect(server.addr);
    let mut raw = b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 100_000));
    // Write from another thread: the server answers before it has read everything.
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&raw);
    });
    let reply = read_reply(&mut BufReader::new(stream.try_clone().unwrap()), false).unwrap();
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
        reply.body,
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
    assert_eq!(reply.body, r#"{"data":"ok"}"#);
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
    let mut reader = BufReader::new(stream);
    let reply = read_reply(&mut reader, false).unwrap();
    assert_envelope(&reply, 408);
    assert!(closed(&mut reader));
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
    let mut reader = BufReader::new(stream);
    assert_eq!(read_reply(&mut reader, false).unwrap().status, 200);
    assert!(
        closed(&mut reader),
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
        let mut reader = BufReader::new(stream);
        assert_eq!(read_reply(&mut reader, false).unwrap().status, 200);
        idle.push(reader);
    }
    // 1,000 kept-alive connections, 4 workers: every one is parked, none holds a worker.
    assert_serving(server.addr);
    let reader = &mut idle[500];
    reader
        .get_mut()
        .write_all(b"GET /hello HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_reply(reader, false).unwrap().status,
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
    busy.write_all(b"GET /slow HTTP/1.1\r\n\r\n").unwrap();
    thread::sleep(Duration::from_millis(50));
    let mut queued = connect(server.addr);
    queued.write_all(b"GET /hello HTTP/1.1\r\n\r\n").unwrap();
    thread::sleep(Duration::from_millis(50));
    let reply = exchange(server.addr, b"GET /hello HTTP/1.1\r\n\r\n");
    assert_envelope(&reply, 503);
    assert_eq!(
        read_reply(&mut BufReader::new(busy), false).unwrap().status,
        200
    );
    assert_eq!(
        read_reply(&mut BufReader::new(queued), false)
            .unwrap()
            .status,
        200
    );
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
    let mut reader = BufReader::new(stream);
    assert_eq!(
        read_reply(&mut reader, false).unwrap().header("connection"),
        Some("keep-alive")
    );
    assert_eq!(
        read_reply(&mut reader, false).unwrap().header("connection"),
        Some("close")
    );
    assert!(closed(&mut reader));
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
            reply.body.lines().any(|l| l == line),
            "missing {line}\n{}",
            reply.body
        );
    }
}

#[test]
fn shutdown_lets_in_flight_requests_finish_then_stops_accepting() {
    let mut server = start(test_limits());
    let mut stream = connect(server.addr);
    stream.write_all(b"GET /slow HTTP/1.1\r\n\r\n").unwrap();
    thread::sleep(Duration::from_millis(50));
    server.handle.shutdown();
    let reply = read_reply(&mut BufReader::new(stream), false).unwrap();
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
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(
        read_reply(&mut reader, false).unwrap().body,
        r#"{"data":"a"}"#
    );
    assert_eq!(
        read_reply(&mut reader, false).unwrap().body,
        r#"{"data":"b"}"#
    );
    // The connection was parked in between; it is served again when it speaks.
    thread::sleep(Duration::from_millis(20));
    stream.write_all(b"GET /name/c HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_reply(&mut reader, false).unwrap().body,
        r#"{"data":"c"}"#
    );
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
                let stream = connect(addr);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                for i in 0..10 {
                    stream
                        .write_all(format!("GET /name/{client}-{i} HTTP/1.1\r\n\r\n").as_bytes())
                        .unwrap();
                    let reply = read_reply(&mut reader, false)
                        .expect("an answer before the 5 s read timeout");
                    assert_eq!(reply.body, format!(r#"{{"data":"{client}-{i}"}}"#));
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
