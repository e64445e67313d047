//! Responses, and their serialization. The server owns framing: handlers never set
//! Content-Length, Connection or Date themselves.

use super::envelope::{Data, ErrorBody, ErrorEnvelope};
use super::error::ApiError;
use serde::Serialize;
use std::cell::RefCell;
use std::io::Write;
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

/// A response produced by a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Extra headers; framing headers are the server's and are not allowed here.
    pub headers: Vec<(&'static str, String)>,
    /// The body; `Content-Type` is `content_type`.
    pub body: Vec<u8>,
    /// Media type of the body.
    pub content_type: &'static str,
}

impl Response {
    /// `200 {"data": value}`.
    pub fn data<T: Serialize>(value: &T) -> Self {
        Self::json(200, &Data { data: value })
    }

    /// Any status with a JSON body.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        // Serializing our own wire types cannot fail (no maps with non-string keys).
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response {
            status,
            headers: Vec::new(),
            body,
            content_type: "application/json",
        }
    }

    /// A plain-text body (metrics).
    pub fn text(status: u16, content_type: &'static str, body: String) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into_bytes(),
            content_type,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Appends status line, headers and (unless `head_only`) body to `out`.
    pub fn encode(&self, out: &mut Vec<u8>, keep_alive: bool, head_only: bool, request_id: &str) {
        // 1xx, 204 and 304 never carry a body nor its length.
        if self.status < 200 || self.status == 204 || self.status == 304 {
            self.encode_head(out, Framing::Bodiless, keep_alive, request_id);
            return;
        }
        self.encode_head(out, Framing::Length, keep_alive, request_id);
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }

    /// Appends the head of a response whose body is not the server's (a [`Handoff`]):
    /// no Content-Length and `Connection: close`, so the body runs until whoever takes
    /// the connection closes it (HTTP/1.1 allows a close-delimited body).
    pub(crate) fn encode_unframed_head(&self, out: &mut Vec<u8>, request_id: &str) {
        self.encode_head(out, Framing::UntilClose, false, request_id);
    }

    fn encode_head(&self, out: &mut Vec<u8>, framing: Framing, keep_alive: bool, request_id: &str) {
        let status = self.status;
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason(status));
        DATE.with(|date| out.extend_from_slice(date.borrow_mut().now().as_bytes()));
        if framing != Framing::Bodiless {
            let _ = write!(out, "Content-Type: {}\r\n", self.content_type);
        }
        if framing == Framing::Length {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n"
        } else {
            b"Connection: close\r\n"
        });
        if !request_id.is_empty() {
            let _ = write!(out, "X-Request-Id: {request_id}\r\n");
        }
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// How a response's body is delimited.
#[derive(PartialEq)]
enum Framing {
    /// It has none (1xx, 204, 304).
    Bodiless,
    /// By Content-Length.
    Length,
    /// By the close of the connection.
    UntilClose,
}

/// What takes a connection over once a hand-off response's head is written.
pub type TakeConnection = Box<dyn FnOnce(TcpStream) + Send>;

/// A response whose body the server does not write: after the head (status 200,
/// `content_type`, no length, `Connection: close`) the server forgets the connection and
/// hands the socket to `take` (a stream of events, say). Returned by a route added with
/// [`Routes::handoff`](super::router::Routes::handoff).
pub struct Handoff {
    pub(crate) content_type: &'static str,
    pub(crate) take: TakeConnection,
}

impl Handoff {
    /// `take` is called on the worker thread with the blocking socket (no timeouts
    /// set): it must return soon, starting a thread of its own if it keeps the socket.
    /// It is dropped uncalled if the head cannot be written or the request was HEAD.
    pub fn new(content_type: &'static str, take: impl FnOnce(TcpStream) + Send + 'static) -> Self {
        Handoff {
            content_type,
            take: Box::new(take),
        }
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Self {
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: error.status,
                message: error.message.into_owned(),
            },
        };
        Response::json(error.status, &envelope)
    }
}

/// The `Date` header line, formatted once per second per thread.
struct DateCache {
    second: u64,
    line: String,
}

impl DateCache {
    fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.line.is_empty() {
            self.second = second;
            self.line = format!("Date: {}\r\n", httpdate::fmt_http_date(now));
        }
        &self.line
    }
}

thread_local! {
    static DATE: RefCell<DateCache> = const { RefCell::new(DateCache { second: 0, line: String::new() }) };
}

/// The reason phrase of the statuses we send.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(response: &Response, keep_alive: bool, head_only: bool) -> String {
        let mut out = Vec::new();
        response.encode(&mut out, keep_alive, head_only, "r1");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn frames_json_with_length_and_date() {
        let text = encoded(&Response::data(&1), true, false);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text}");
        assert!(
            text.contains(
                "\r\nContent-Length: 10\r\nConnection: keep-alive\r\nX-Request-Id: r1\r\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n{\"data\":1}"), "{text}");
    }

    #[test]
    fn head_and_204_have_no_body() {
        let head = encoded(&Response::data(&1), false, true);
        assert!(
            head.contains("Content-Length: 10\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let empty = Response {
            status: 204,
            ..Response::data(&1)
        };
        let text = encoded(&empty, true, false);
        assert!(
            !text.contains("Content-Length") && text.ends_with("\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn errors_render_the_envelope() {
        let response = Response::from(ApiError::not_found("product not found"));
        assert_eq!(response.status, 404);
        assert_eq!(
            response.body,
            br#"{"error":{"code":404,"message":"product not found"}}"#
        );
    }
}
