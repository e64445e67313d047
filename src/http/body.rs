//! Body framing: reading a request body delimited by Content-Length or chunked coding.

use super::error::ProtocolError;
use super::request::Framing;

/// Longest chunk-size line (size, extensions, CRLF) we accept.
const MAX_CHUNK_LINE: usize = 1024;

/// Tries to take a complete body off the front of `buf` (the bytes after the head).
///
/// Returns `Ok(None)` while more bytes are needed, or the body and how many bytes of
/// `buf` it used. Stateless: it is called again from the start when more bytes arrive,
/// which is simple and cheap at the sizes the limits allow.
pub fn take_body(
    buf: &[u8],
    framing: Framing,
    max_body: usize,
    max_trailers: usize,
) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
    match framing {
        Framing::Length(length) if buf.len() >= length => {
            Ok(Some((buf[..length].to_vec(), length)))
        }
        Framing::Length(_) => Ok(None),
        Framing::Chunked => decode_chunked(buf, max_body, max_trailers),
    }
}

/// Decodes `chunked` transfer coding; trailers are read and dropped.
fn decode_chunked(
    buf: &[u8],
    max_body: usize,
    max_trailers: usize,
) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(line) = next_line(&buf[pos..], MAX_CHUNK_LINE)? else {
            return Ok(None);
        };
        let size = parse_chunk_size(line)?;
        pos += line.len() + 2;
        if size == 0 {
            break;
        }
        if size > max_body.saturating_sub(body.len()) {
            return Err(ProtocolError::BodyTooLarge);
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(ProtocolError::Malformed("chunk data not followed by crlf"));
        }
        pos += size + 2;
    }
    let trailers_start = pos;
    loop {
        let room = max_trailers.saturating_sub(pos - trailers_start);
        let Some(line) = next_line(&buf[pos..], room).map_err(|_| ProtocolError::HeadTooLarge)?
        else {
            return Ok(None);
        };
        pos += line.len() + 2;
        if line.is_empty() {
            return Ok(Some((body, pos)));
        }
    }
}

/// The next CRLF-terminated line (without the CRLF), `None` if incomplete.
fn next_line(buf: &[u8], max_len: usize) -> Result<Option<&[u8]>, ProtocolError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end <= max_len => Ok(Some(&buf[..end])),
        Some(_) => Err(ProtocolError::Malformed("chunk line too long")),
        None if buf.len() > max_len + 1 => Err(ProtocolError::Malformed("chunk line too long")),
        None => Ok(None),
    }
}

/// Parses `1a` or `1a;ext=1` as hex; anything else is malformed.
fn parse_chunk_size(line: &[u8]) -> Result<usize, ProtocolError> {
    let bad = ProtocolError::Malformed("invalid chunk size");
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits)
        .map_err(|_| bad)?
        .trim_end_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad);
    }
    usize::from_str_radix(digits, 16).map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(raw: &str) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
        take_body(raw.as_bytes(), Framing::Chunked, 16, 64)
    }

    #[test]
    fn complete_chunked_bodies() {
        let cases: &[(&str, &str, usize)] = &[
            ("0\r\n\r\n", "", 5),
            ("3\r\nabc\r\n0\r\n\r\n", "abc", 13),
            ("3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT", "abcde", 26),
            (
                "A\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n",
                "0123456789",
                34,
            ),
            ("3 \r\nabc\r\n0\r\n\r\n", "abc", 14),
        ];
        for (raw, body, used) in cases {
            let (got, got_used) = chunked(raw).unwrap().unwrap();
            assert_eq!(
                (got.as_slice(), got_used),
                (body.as_bytes(), *used),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn incomplete_chunked_bodies_wait() {
        for raw in [
            "",
            "3",
            "3\r\nab",
            "3\r\nabc\r\n",
            "3\r\nabc\r\n0\r\n",
            "0\r\nx: 1\r\n",
        ] {
            assert_eq!(chunked(raw).unwrap(), None, "{raw:?}");
        }
    }

    #[test]
    fn bad_chunked_bodies() {
        use ProtocolError::*;
        let long_line = format!("1;{}\r\n", "e".repeat(2000));
        let long_trailer = format!("0\r\nx: {}\r\n\r\n", "t".repeat(100));
        let cases: Vec<(String, ProtocolError)> = vec![
            ("z\r\n".into(), Malformed("invalid chunk size")),
            ("-1\r\n".into(), Malformed("invalid chunk size")),
            ("\r\n".into(), Malformed("invalid chunk size")),
            (
                "fffffffffffffffff\r\n".into(),
                Malformed("invalid chunk size"),
            ),
            (
                "3\r\nabcX\r\n".into(),
                Malformed("chunk data not followed by crlf"),
            ),
            ("11\r\n".into(), BodyTooLarge),
            ("8\r\n12345678\r\n9\r\n".into(), BodyTooLarge),
            (long_line, Malformed("chunk line too long")),
            (long_trailer, HeadTooLarge),
        ];
        for (raw, want) in cases {
            assert_eq!(chunked(&raw).unwrap_err(), want, "{raw:?}");
        }
    }

    #[test]
    fn content_length_bodies() {
        assert_eq!(
            take_body(b"abcNEXT", Framing::Length(3), 16, 0).unwrap(),
            Some((b"abc".to_vec(), 3))
        );
        assert_eq!(take_body(b"ab", Framing::Length(3), 16, 0).unwrap(), None);
    }
}
