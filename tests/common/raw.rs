//! Raw sockets: send exact bytes and read exactly one response, for what a well-behaved
//! client cannot send (malformed requests, pipelining, half-closed connections).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::http::REQUEST_TIMEOUT;
use super::Resp;

/// `host:port` of an `http://host:port` base URL.
pub fn host_port(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Opens a socket to `base` (`http://host:port` or `host:port`) whose reads and writes
/// give up after the test client's request timeout.
pub fn connect(base: &str) -> TcpStream {
    connect_with_timeout(base, REQUEST_TIMEOUT)
}

/// Like [`connect`], with reads and writes that give up after `timeout`: a test that
/// waits for the server to close a connection uses a bound shorter than its own deadline.
pub fn connect_with_timeout(base: &str, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(host_port(base)).unwrap_or_else(|e| panic!("connect {base}: {e}"));
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s
}

/// Reads one HTTP/1.1 response from a socket (framed by Content-Length, chunked, or read
/// to EOF without either). `Ok(None)` means the peer closed before sending a byte.
pub fn read_response(s: &mut TcpStream) -> std::io::Result<Option<Resp>> {
    read_framed(s, false)
}

/// Reads the response to a `HEAD` request: its headers describe a body that is not sent.
pub fn read_head_response(s: &mut TcpStream) -> std::io::Result<Option<Resp>> {
    read_framed(s, true)
}

/// Reads one response; an I/O error (the read timeout included) or a close without a
/// response fails the test.
#[track_caller]
pub fn expect_response(s: &mut TcpStream) -> Resp {
    match read_response(s) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("connection closed without a response"),
        Err(e) => panic!("no response: {e}"),
    }
}

/// Whether the peer closes the connection (EOF, after any bytes still to come) before
/// the socket's read timeout.
pub fn closed(s: &mut TcpStream) -> bool {
    s.read_to_end(&mut Vec::new()).is_ok()
}

fn read_framed(s: &mut TcpStream, head_only: bool) -> std::io::Result<Option<Resp>> {
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
    let body = if head_only {
        Vec::new()
    } else if let Some(cl) = find("content-length") {
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
