//! The HTTP layer seen through raw sockets: limits (413, 431), malformed requests
//! (400), framing (keep-alive, pipelining, chunked bodies), request ids, and slow
//! clients. Runs against the front-end in both modes, and against every service when
//! their addresses are known.

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_envelope, connect, raw_ok, read_response, Http, Resp, Stack};

/// Every base URL the stack knows: the front-end, then catalog and order when known.
fn bases(s: &Stack) -> Vec<String> {
    let mut v = vec![s.front.clone()];
    v.extend(s.catalog.clone());
    v.extend(s.order.clone());
    v
}

fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[test]
fn body_over_one_mib_is_413() {
    let s = Stack::new();
    // A route of each service that takes a body.
    let mut targets = vec![
        (s.front.clone(), "POST /orders"),
        (s.front.clone(), "PUT /products/Tux"),
    ];
    targets.extend(s.catalog.clone().map(|c| (c, "PUT /products/Tux")));
    targets.extend(s.order.clone().map(|o| (o, "POST /orders")));
    let token = s.token.clone().unwrap_or_default();
    for (base, route) in targets {
        for len in [1024 * 1024 + 1, 2 * 1024 * 1024, 1u64 << 40] {
            // Only the head: a server must refuse on Content-Length without
            // reading (or waiting for) the body.
            let mut sock = connect(&base);
            write!(
                sock,
                "{route} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
            )
            .unwrap();
            let r = read_response(&mut sock)
                .unwrap_or_else(|e| panic!("{base} {route}: Content-Length {len}: {e}"))
                .unwrap_or_else(|| {
                    panic!("{base} {route}: Content-Length {len}: closed without 413")
                });
            assert_eq!(r.status, 413, "{base} {route}: Content-Length {len}: {r:?}");
            assert_envelope(&r);
        }
    }
}

#[test]
fn body_of_exactly_one_mib_is_not_413() {
    let s = Stack::new();
    // A legal JSON body of exactly 1 MiB whose quantity is bad: the answer is about
    // the content (400), so the size was accepted.
    let head = r#"{"name":"Tux","quantity":0"#;
    let body = format!("{head}{}}}", " ".repeat(1024 * 1024 - head.len() - 1));
    assert_eq!(body.len(), 1024 * 1024);
    s.post("/orders", &body).err(400, None);
}

#[test]
fn chunked_body_over_one_mib_is_413_or_closed() {
    let s = Stack::new();
    let mut req = String::from(
        "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = " ".repeat(64 * 1024);
    for _ in 0..20 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    match send_oversized(&s.front, req.into_bytes()) {
        Ok(Some(r)) => {
            assert_eq!(r.status, 413, "{r:?}");
            assert_envelope(&r);
        }
        Ok(None) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Err(e) => panic!("neither 413 nor closed: {e}"),
    }
    s.get("/health").ok();
}

/// Sends `bytes` from another thread and reads the answer: a limit may close the
/// connection before the whole request is written.
fn send_oversized(base: &str, bytes: Vec<u8>) -> std::io::Result<Option<Resp>> {
    let mut sock = connect(base);
    let mut writer = sock.try_clone().unwrap();
    let t = thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let r = read_response(&mut sock);
    drop(sock);
    let _ = t.join();
    r
}

/// 431 with the envelope, or the connection closed: never a hang or another answer.
#[track_caller]
fn assert_431_or_closed(what: &str, r: std::io::Result<Option<Resp>>) {
    match r {
        Ok(Some(r)) => {
            assert_eq!(r.status, 431, "{what}: {r:?}");
            if !r.text.is_empty() {
                assert_envelope(&r);
            }
        }
        Ok(None) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
            ) => {}
        Err(e) => panic!("{what}: neither 431 nor closed: {e} ({:?})", e.kind()),
    }
}

#[test]
fn headers_over_64_kib_are_431_or_closed() {
    let s = Stack::new();
    for base in bases(&s) {
        let one_big = format!(
            "GET /health HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        );
        assert_431_or_closed(
            &format!("{base} one 70 KiB header"),
            send_oversized(&base, one_big.into_bytes()),
        );

        let mut many = String::from("GET /health HTTP/1.1\r\nHost: test\r\n");
        for i in 0..3000 {
            many.push_str(&format!("X-H{i}: {}\r\n", "b".repeat(20)));
        }
        many.push_str("\r\n");
        assert_431_or_closed(
            &format!("{base} 3000 headers"),
            send_oversized(&base, many.into_bytes()),
        );

        let long_line = format!(
            "GET /products/{} HTTP/1.1\r\nHost: test\r\n\r\n",
            "c".repeat(70 * 1024)
        );
        assert_431_or_closed(
            &format!("{base} 70 KiB request line"),
            send_oversized(&base, long_line.into_bytes()),
        );

        // An endless header block without a blank line is cut off too.
        let mut endless = String::from("GET /health HTTP/1.1\r\nHost: test\r\n");
        while endless.len() < 200 * 1024 {
            endless.push_str("X-More: ddddddddddddddddddddddddddddddd\r\n");
        }
        assert_431_or_closed(
            &format!("{base} endless headers"),
            send_oversized(&base, endless.into_bytes()),
        );

        // The service is still fine.
        Http::default().get(&format!("{base}/health")).ok();
    }
}

#[test]
fn malformed_requests_are_400() {
    let s = Stack::new();
    for base in bases(&s) {
        for req in [
            "this is not http\r\n\r\n",
            "GET\r\n\r\n",
            "GET /health HTTP/1.1 extra\r\nHost: test\r\n\r\n",
            "GET /health HTTP/1.1\r\nHost: test\r\nNo colon in this header\r\n\r\n",
            "GET /health HTTP/1.1\r\nHost: test\r\nBad Name: x\r\n\r\n",
            "\u{1}\u{2}\u{3}\r\n\r\n",
            "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n{}",
            "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Length: -5\r\n\r\n{}",
            "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
        ] {
            let r = raw_ok(&base, req.as_bytes());
            assert_eq!(r.status, 400, "{base}: {req:?}: {r:?}");
            assert_envelope(&r);
        }
        Http::default().get(&format!("{base}/health")).ok();
    }
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let s = Stack::new();
    for base in bases(&s) {
        let mut sock = connect(&base);
        for _ in 0..3 {
            sock.write_all(get_req("/health").as_bytes()).unwrap();
            let r = read_response(&mut sock).unwrap().expect("a response");
            assert_eq!(r.status, 200, "{base}: {r:?}");
        }
        // An error does not end the connection either (the body was fully read).
        sock.write_all(get_req("/no-such-path").as_bytes()).unwrap();
        let r = read_response(&mut sock).unwrap().expect("a response");
        assert_eq!(r.status, 404, "{r:?}");
        sock.write_all(get_req("/health").as_bytes()).unwrap();
        let r = read_response(&mut sock).unwrap().expect("a response");
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = Stack::new();
    let mut sock = connect(&s.front);
    let reqs = format!(
        "{}{}{}",
        get_req("/products/Tux"),
        get_req("/products/Nope"),
        get_req("/products/Whale")
    );
    sock.write_all(reqs.as_bytes()).unwrap();
    let a = read_response(&mut sock).unwrap().expect("first");
    let b = read_response(&mut sock).unwrap().expect("second");
    let c = read_response(&mut sock).unwrap().expect("third");
    assert_eq!(a.ok()["name"], "Tux");
    b.err(404, Some("product not found"));
    assert_eq!(c.ok()["name"], "Whale");
}

#[test]
fn post_body_then_next_request_on_same_connection() {
    // A refused body is consumed, so the next request on the connection is read from
    // the right place.
    let s = Stack::new();
    let body = r#"{"name":"Tux","quantity":0}"#;
    let mut sock = connect(&s.front);
    let req = format!(
        "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}{}",
        body.len(),
        get_req("/products/Tux")
    );
    sock.write_all(req.as_bytes()).unwrap();
    let r = read_response(&mut sock).unwrap().expect("first");
    r.err(400, None);
    let r = read_response(&mut sock).unwrap().expect("second");
    assert_eq!(r.ok()["name"], "Tux", "{r:?}");
}

#[test]
fn chunked_request_body_is_accepted() {
    let s = Stack::new();
    let toy = s.product_with_stock("Tux", 1);
    let before = s.stock(&toy);
    let body = format!(r#"{{"name":"{toy}","quantity":1}}"#);
    let (a, b) = body.split_at(7);
    let req = format!(
        "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let r = raw_ok(&s.front, req.as_bytes());
    common::order_number(&r);
    assert_eq!(s.stock(&toy), before - 1);
}

#[test]
fn http_1_0_and_connection_close_are_answered() {
    let s = Stack::new();
    let r = raw_ok(&s.front, b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    let r = raw_ok(
        &s.front,
        b"GET /products/Tux HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.ok()["name"], "Tux");
}

#[test]
fn request_id_is_echoed() {
    let s = Stack::new();
    for base in bases(&s) {
        let r = raw_ok(
            &base,
            b"GET /health HTTP/1.1\r\nHost: test\r\nX-Request-Id: test-req-42\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            r.header("x-request-id"),
            Some("test-req-42"),
            "{base}: {r:?}"
        );
    }
}

/// Opens `n` connections that each send half a request and then stall.
fn stalled(base: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect(base);
            let partial = if i % 2 == 0 {
                "GET /products HTTP/1.1\r\nHost: te".to_string()
            } else {
                "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"na"
                    .to_string()
            };
            s.write_all(partial.as_bytes()).unwrap();
            s
        })
        .collect()
}

#[test]
fn stalled_clients_do_not_block_others() {
    let s = Stack::new();
    let mut _held = Vec::new();
    for base in bases(&s) {
        _held.extend((0..16).map(|_| connect(&base)));
        _held.extend(stalled(&base, 64));
    }
    let http = Http::with_timeout(Duration::from_secs(10));
    let start = Instant::now();
    for _ in 0..10 {
        let r = http.get(&format!("{}/products/Tux", s.front));
        assert_eq!(r.ok()["name"], "Tux");
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "10 queries took {:?} beside 64 stalled clients on each service",
        start.elapsed()
    );
}

#[test]
fn stalled_request_is_dropped_within_30_s() {
    let s = Stack::new();
    let mut socks: Vec<TcpStream> = bases(&s).iter().flat_map(|b| stalled(b, 2)).collect();
    let start = Instant::now();
    for sock in &mut socks {
        sock.set_read_timeout(Some(Duration::from_secs(45)))
            .unwrap();
        // Either a 408 (or 400) answer or a close; a read timeout means never dropped.
        match read_response(sock) {
            Ok(Some(r)) => assert!(matches!(r.status, 400 | 408), "{r:?}"),
            Ok(None) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) => {}
            Err(e) => panic!(
                "stalled request not dropped: {e} after {:?}",
                start.elapsed()
            ),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "dropped only after {:?}",
        start.elapsed()
    );
}
