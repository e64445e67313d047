//! A parsed request, and the parser of its head (request line + headers).

use super::error::{ApiError, ProtocolError};
use super::limits::Limits;
use percent_encoding::percent_decode_str;
use std::time::Instant;

/// HTTP version of a request; decides the keep-alive default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: closes after each response unless the client asks for keep-alive.
    Http10,
    /// HTTP/1.1: keep-alive unless either side says `Connection: close`.
    Http11,
}

/// How the body of a request is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow the head (0 when neither header is present).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The head of a request, as parsed off the wire.
#[derive(Debug, Clone)]
pub struct Head {
    /// Method, as sent (methods are case-sensitive).
    pub method: String,
    /// Request target, raw: path and optional `?query`.
    pub target: String,
    /// HTTP/1.0 or 1.1.
    pub version: Version,
    /// Header names lower-cased, values as sent (trimmed).
    pub headers: Vec<(String, String)>,
    /// How the body is framed.
    pub framing: Framing,
    /// Whether the client sent `Expect: 100-continue`.
    pub expects_continue: bool,
    /// Whether the connection should stay open after the response, as far as the client is concerned.
    pub keep_alive: bool,
}

/// A complete request handed to a handler.
#[derive(Debug, Clone)]
pub struct Request {
    /// The parsed head.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Correlates the access-log lines of one request across services (`X-Request-Id`).
    pub request_id: String,
    /// When its first byte arrived (or, if it waited for a worker, when its connection
    /// became ready): where its deadlines run from.
    pub started: Instant,
}

impl Head {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path part of the target, still percent-encoded.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query string, if any, still percent-encoded.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

impl Request {
    /// The body as a `T`, or 400 saying what was `expected`.
    pub fn json_body<T: serde::de::DeserializeOwned>(&self, expected: &str) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|_| ApiError::bad_request(format!("invalid request: expected {expected}")))
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// Query parameters, percent-decoded (`+` is a space, as forms send it).
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, ApiError> {
        let Some(query) = self.head.query() else {
            return Ok(Vec::new());
        };
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode_component(key, true)?, decode_component(value, true)?))
            })
            .collect()
    }
}

/// Percent-decodes one path segment or query component into UTF-8.
pub fn decode_component(raw: &str, plus_is_space: bool) -> Result<String, ApiError> {
    let spaced;
    let raw = if plus_is_space && raw.contains('+') {
        spaced = raw.replace('+', " ");
        &spaced
    } else {
        raw
    };
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request("path or query is not valid utf-8 after percent-decoding")
        })
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete (and still within limits), or the head
/// and its length in bytes. Framing is strict, because a proxy in front of us may read an
/// ambiguous request differently (request smuggling): duplicate or non-numeric
/// Content-Length, Content-Length with Transfer-Encoding, and any transfer-coding other
/// than a lone `chunked` are refused.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, ProtocolError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head_bytes {
                Err(ProtocolError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ProtocolError::HeadTooLarge),
        Err(httparse::Error::Version) => {
            return Err(ProtocolError::Malformed("unsupported http version"))
        }
        Err(_) => return Err(ProtocolError::Malformed("malformed request")),
    };
    if head_len > limits.max_head_bytes {
        return Err(ProtocolError::HeadTooLarge);
    }
    let version = match parsed.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let method = parsed.method.unwrap_or_default().to_string();
    let target = parsed.path.unwrap_or_default().to_string();
    if !target.starts_with('/') {
        return Err(ProtocolError::Malformed(
            "request target must be an absolute path",
        ));
    }

    let mut headers = Vec::with_capacity(parsed.headers.len());
    let mut content_length: Option<usize> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut expects_continue = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for header in parsed.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = std::str::from_utf8(header.value)
            .map_err(|_| ProtocolError::Malformed("header value is not valid utf-8"))?
            .trim()
            .to_string();
        match name.as_str() {
            "content-length" => {
                if content_length.is_some() {
                    return Err(ProtocolError::Malformed("duplicate content-length"));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ProtocolError::Malformed("invalid content-length"));
                }
                // Too many digits to fit is certainly too large a body.
                let length = value
                    .parse::<usize>()
                    .map_err(|_| ProtocolError::BodyTooLarge)?;
                content_length = Some(length);
            }
            "transfer-encoding" => {
                if transfer_encoding.is_some() {
                    return Err(ProtocolError::Malformed("duplicate transfer-encoding"));
                }
                transfer_encoding = Some(value.to_ascii_lowercase());
            }
            "expect" => {
                if value.eq_ignore_ascii_case("100-continue") {
                    expects_continue = true;
                } else {
                    return Err(ProtocolError::ExpectationFailed);
                }
            }
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    connection_close |= token.eq_ignore_ascii_case("close");
                    connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            _ => {}
        }
        headers.push((name, value));
    }

    let framing = match (content_length, transfer_encoding) {
        (Some(_), Some(_)) => {
            return Err(ProtocolError::Malformed(
                "content-length together with transfer-encoding",
            ))
        }
        (None, Some(coding)) if coding == "chunked" && version == Version::Http11 => {
            Framing::Chunked
        }
        (None, Some(_)) => return Err(ProtocolError::Malformed("unsupported transfer-encoding")),
        (Some(length), None) if length > limits.max_body_bytes => {
            return Err(ProtocolError::BodyTooLarge)
        }
        (Some(length), None) => Framing::Length(length),
        (None, None) => Framing::Length(0),
    };
    let keep_alive = match version {
        Version::Http11 => !connection_close,
        Version::Http10 => connection_keep_alive && !connection_close,
    };
    let head = Head {
        method,
        target,
        version,
        headers,
        framing,
        expects_continue,
        keep_alive,
    };
    Ok(Some((head, head_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(Head, usize)>, ProtocolError> {
        parse_head(raw.as_bytes(), &Limits::default())
    }

    #[test]
    fn framing_table() {
        use Framing::*;
        let ok: &[(&str, Framing, bool)] = &[
            ("GET / HTTP/1.1\r\n\r\n", Length(0), true),
            ("GET / HTTP/1.0\r\n\r\n", Length(0), false),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                Length(0),
                true,
            ),
            (
                "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
                Length(0),
                false,
            ),
            (
                "GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n",
                Length(0),
                false,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Length(5),
                true,
            ),
            (
                "POST / HTTP/1.1\r\ncontent-length:  007 \r\n\r\n",
                Length(7),
                true,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Chunked,
                true,
            ),
        ];
        for (raw, framing, keep_alive) in ok {
            let (head, len) = parse(raw).unwrap().unwrap();
            assert_eq!(head.framing, *framing, "{raw:?}");
            assert_eq!(head.keep_alive, *keep_alive, "{raw:?}");
            assert_eq!(len, raw.len());
        }
    }

    #[test]
    fn refusals_table() {
        use ProtocolError::*;
        let too_many = format!("GET / HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(101));
        let too_long = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(70 * 1024));
        let cases: Vec<(String, ProtocolError)> = vec![
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n".into(), Malformed("duplicate content-length")),
            ("GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\n".into(), Malformed("invalid content-length")),
            ("GET / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n".into(), Malformed("invalid content-length")),
            ("GET / HTTP/1.1\r\nContent-Length: \r\n\r\n".into(), Malformed("invalid content-length")),
            ("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".into(), BodyTooLarge),
            ("GET / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n".into(), BodyTooLarge),
            ("GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".into(), Malformed("content-length together with transfer-encoding")),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(), Malformed("unsupported transfer-encoding")),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n".into(), Malformed("duplicate transfer-encoding")),
            ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(), Malformed("unsupported transfer-encoding")),
            ("GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n".into(), ExpectationFailed),
            ("GET / HTTP/2.0\r\n\r\n".into(), Malformed("unsupported http version")),
            ("GET\r\n\r\n".into(), Malformed("malformed request")),
            ("GET http://x/ HTTP/1.1\r\n\r\n".into(), Malformed("request target must be an absolute path")),
            ("G(T / HTTP/1.1\r\n\r\n".into(), Malformed("malformed request")),
            (too_many, HeadTooLarge),
            (too_long, HeadTooLarge),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(&raw).unwrap_err(), want, "{raw:?}");
        }
    }

    #[test]
    fn partial_heads_wait_until_the_limit() {
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let endless = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(70 * 1024));
        assert_eq!(parse(&endless).unwrap_err(), ProtocolError::HeadTooLarge);
    }

    #[test]
    fn path_query_and_decoding() {
        let (head, _) = parse("GET /products/T%75x?q=a+b&limit=2 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.path(), "/products/T%75x");
        assert_eq!(head.query(), Some("q=a+b&limit=2"));
        let request = Request {
            started: Instant::now(),
            head,
            body: Vec::new(),
            request_id: String::new(),
        };
        let pairs = request.query_pairs().unwrap();
        assert_eq!(
            pairs,
            vec![("q".into(), "a b".into()), ("limit".into(), "2".into())]
        );
        assert_eq!(decode_component("T%75x", false).unwrap(), "Tux");
        assert_eq!(decode_component("%C3%A9", false).unwrap(), "é");
        assert!(decode_component("%FF", false).is_err());
    }
}
