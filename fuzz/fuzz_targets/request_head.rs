//! Arbitrary bytes as a connection's read buffer: heads, bodies, pipelined requests.
//!
//! Run with the default limits and with tiny ones (so the size limits are reached by short
//! inputs), the way `conn.rs` does it: parse a head, take its body, drain, repeat.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toystore::http::body::take_body;
use toystore::http::request::{decode_component, parse_head, Framing, Head, Request, Version};
use toystore::http::Limits;
use toystore::wire::ListQuery;

/// Requests taken off one buffer at most; enough to exercise pipelining.
const MAX_PIPELINED: usize = 8;

fuzz_target!(|data: &[u8]| {
    let tiny = Limits {
        max_head_bytes: 64,
        max_headers: 3,
        max_body_bytes: 16,
        ..Limits::default()
    };
    connection(data, &Limits::default());
    connection(data, &tiny);
});

/// Takes requests off `buf` as the connection loop does, checking each step.
fn connection(mut buf: &[u8], limits: &Limits) {
    for _ in 0..MAX_PIPELINED {
        let Some((head, head_len)) = head(buf, limits) else {
            return;
        };
        let Some(body_len) = body(&buf[head_len..], &head, limits) else {
            return;
        };
        buf = &buf[head_len + body_len..];
    }
}

/// `parse_head` with its invariants; the head and its length when complete.
fn head(buf: &[u8], limits: &Limits) -> Option<(Head, usize)> {
    match parse_head(buf, limits) {
        Ok(None) => {
            // Waiting is only allowed while within the limit.
            assert!(buf.len() <= limits.max_head_bytes);
            None
        }
        Err(_) => None,
        Ok(Some((head, len))) => {
            assert!(len > 0 && len <= buf.len() && len <= limits.max_head_bytes);
            check_head(&head, limits);
            // A head is complete exactly when its last byte arrives: every shorter prefix
            // waits (the server re-parses as bytes trickle in, so an error here would be a
            // 400 for a request that was merely split), and the bytes after it do not matter.
            for cut in cuts(len) {
                assert!(
                    matches!(parse_head(&buf[..cut], limits), Ok(None)),
                    "prefix of {cut} bytes of a {len}-byte head did not wait"
                );
            }
            let (again, again_len) = parse_head(&buf[..len], limits).unwrap().unwrap();
            assert_eq!(again_len, len);
            assert_same(&head, &again);
            query(&head);
            Some((head, len))
        }
    }
}

/// What must hold of every parsed head.
fn check_head(head: &Head, limits: &Limits) {
    assert!(!head.method.is_empty());
    assert!(head.target.starts_with('/'), "{:?}", head.target);
    assert!(!head.path().contains('?'));
    assert!(head.headers.len() <= limits.max_headers);
    for (name, value) in &head.headers {
        assert_eq!(*name, name.to_ascii_lowercase());
        assert_eq!(value.trim(), value);
    }
    match head.framing {
        Framing::Length(n) => {
            assert!(n <= limits.max_body_bytes);
            assert!(head.header("transfer-encoding").is_none());
            let declared = head.header("content-length").map(|v| v.parse::<usize>());
            match declared {
                Some(Ok(declared)) => assert_eq!(declared, n),
                Some(Err(_)) => panic!("a bad content-length was accepted"),
                None => assert_eq!(n, 0),
            }
        }
        Framing::Chunked => {
            assert_eq!(head.version, Version::Http11);
            assert!(head.header("content-length").is_none());
            assert!(head
                .header("transfer-encoding")
                .is_some_and(|te| te.eq_ignore_ascii_case("chunked")));
        }
    }
    if head.version == Version::Http10 && head.keep_alive {
        assert!(head.header("connection").is_some());
    }
}

/// Query decoding, and the list filters: a valid filter survives its own query string.
fn query(head: &Head) {
    let request = Request {
        started: std::time::Instant::now(),
        head: head.clone(),
        body: Vec::new(),
        request_id: String::new(),
    };
    // The router's first step: path segments decode or fail cleanly.
    for segment in head.path().split('/') {
        let _ = decode_component(segment, false);
    }
    let Ok(pairs) = request.query_pairs() else {
        return;
    };
    let Ok(filter) = ListQuery::from_pairs(&pairs) else {
        return;
    };
    assert!((1..=ListQuery::MAX_LIMIT).contains(&filter.limit));
    let mut forwarded = request;
    forwarded.head.target = format!("/products?{}", filter.to_query_string());
    let pairs = forwarded
        .query_pairs()
        .expect("our own query string decodes");
    assert_eq!(ListQuery::from_pairs(&pairs).as_ref(), Ok(&filter));
}

/// `take_body` on the bytes after a head; how many it used when complete.
fn body(rest: &[u8], head: &Head, limits: &Limits) -> Option<usize> {
    let take = |bytes: &[u8]| {
        take_body(bytes, head.framing, limits.max_body_bytes)
    };
    match take(rest) {
        Ok(None) => {
            if let Framing::Length(n) = head.framing {
                assert!(rest.len() < n);
            }
            None
        }
        Err(_) => {
            assert_eq!(head.framing, Framing::Chunked, "a length body cannot fail");
            None
        }
        Ok(Some((body, used))) => {
            assert!(used <= rest.len());
            assert!(body.len() <= limits.max_body_bytes);
            match head.framing {
                Framing::Length(n) => {
                    assert_eq!(used, n);
                    assert_eq!(body, &rest[..n]);
                }
                // At least "0\r\n\r\n" around the data.
                Framing::Chunked => assert!(body.len() + 5 <= used),
            }
            for cut in cuts(used) {
                assert_eq!(take(&rest[..cut]), Ok(None), "prefix of {cut} of {used}");
            }
            assert_eq!(take(&rest[..used]), Ok(Some((body, used))));
            Some(used)
        }
    }
}

/// Prefix lengths below `len` worth trying: all of them for short inputs, else a sample.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    let step = if len <= 64 { 1 } else { len / 32 };
    (0..len).step_by(step.max(1)).chain(len.checked_sub(1))
}

fn assert_same(a: &Head, b: &Head) {
    assert_eq!(a.method, b.method);
    assert_eq!(a.target, b.target);
    assert_eq!(a.version, b.version);
    assert_eq!(a.headers, b.headers);
    assert_eq!(a.framing, b.framing);
    assert_eq!(a.expects_continue, b.expects_continue);
    assert_eq!(a.keep_alive, b.keep_alive);
}
