//! Body framing: reading a request body delimited by Content-Length or chunked coding.
//!
//! A connection reads a body in pieces; [`BodyReader`] keeps its place between them, so
//! every byte is examined once however the body is split (a decoder that restarted on
//! each read cost time quadratic in the number of reads: a 1 MB body sent as 1-byte
//! chunks took seconds of CPU). Everything a chunked body carries besides its framing
//! (data, chunk extensions, trailers) counts toward the body limit.

use super::error::ProtocolError;
use super::request::Framing;

/// Longest chunk-size line (size and extensions, without the CRLF) we accept.
const MAX_CHUNK_LINE: usize = 1024;
/// Hex digits of a chunk size: 15 fit in any usize we run on, and no body is that large.
const MAX_SIZE_DIGITS: usize = 15;

/// One request body being read: call [`advance`](BodyReader::advance) with the bytes
/// after the head each time more arrive (the same buffer, grown), until it says the
/// body is complete; then [`into_body`](BodyReader::into_body) gives the body.
#[derive(Debug)]
pub enum BodyReader {
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkedDecoder),
}

impl BodyReader {
    /// A reader for a body framed as `framing`, refusing one over `max_body` bytes.
    pub fn new(framing: Framing, max_body: usize) -> Self {
        match framing {
            Framing::Length(length) => BodyReader::Length(length),
            Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::new(max_body)),
        }
    }

    /// Reads on through `buf`, the bytes after the head so far (a longer buffer each
    /// time, starting with the bytes of the last call). Returns how many bytes of `buf`
    /// the body used once it is complete, `Ok(None)` while more are needed.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        match self {
            BodyReader::Length(length) => Ok((buf.len() >= *length).then_some(*length)),
            BodyReader::Chunked(decoder) => decoder.advance(buf),
        }
    }

    /// The body, once [`advance`](BodyReader::advance) has said it is complete.
    pub fn into_body(self, buf: &[u8]) -> Vec<u8> {
        match self {
            BodyReader::Length(length) => buf[..length].to_vec(),
            BodyReader::Chunked(decoder) => decoder.into_body(),
        }
    }
}

/// Takes a complete body off the front of `buf` in one go: the body and how many bytes
/// of `buf` it used, or `Ok(None)` while more bytes are needed.
pub fn take_body(
    buf: &[u8],
    framing: Framing,
    max_body: usize,
) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
    let mut reader = BodyReader::new(framing, max_body);
    Ok(reader
        .advance(buf)?
        .map(|used| (reader.into_body(buf), used)))
}

/// Where a chunked decoder is: each state names the byte it waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// The hex digits of a chunk size (`digits` read so far).
    Size { size: usize, digits: usize },
    /// Blanks after the size, before `;`, CR.
    SizeBlanks { size: usize },
    /// A chunk extension, up to CR.
    Extension { size: usize },
    /// The LF that ends a size line.
    SizeLf { size: usize },
    /// Chunk data, this many bytes still to come.
    Data { left: usize },
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// The first byte of a trailer line, or the CR of the empty line ending the body.
    TrailerStart,
    /// Inside a trailer line, up to CR.
    Trailer,
    /// The LF that ends a trailer line.
    TrailerLf,
    /// The LF of the empty line that ends the body.
    EndLf,
    /// The body is complete.
    Done,
}

/// Decodes `chunked` transfer coding incrementally; trailers are read and dropped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: Chunked,
    /// Bytes of the buffer already examined: the next call starts here.
    pos: usize,
    /// The data of the chunks so far.
    body: Vec<u8>,
    /// What counts toward the limit: data, extensions and trailers.
    counted: usize,
    max_body: usize,
    /// Length of the chunk-size line being read.
    line: usize,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` bytes, extensions and trailers included.
    pub fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: Chunked::Size { size: 0, digits: 0 },
            pos: 0,
            body: Vec::new(),
            counted: 0,
            max_body,
            line: 0,
        }
    }

    /// Bytes examined so far, over all calls: never more than the bytes given, which
    /// is what keeps a body's cost in proportion to its size.
    pub fn examined(&self) -> usize {
        self.pos
    }

    /// The data of the chunks, once [`advance`](ChunkedDecoder::advance) said the body is complete.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// See [`BodyReader::advance`].
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        while self.state != Chunked::Done {
            let Some(&byte) = buf.get(self.pos) else {
                return Ok(None);
            };
            if let Chunked::Data { left } = self.state {
                // Data is taken in one piece, as much as has arrived.
                let take = left.min(buf.len() - self.pos);
                self.body.extend_from_slice(&buf[self.pos..self.pos + take]);
                self.pos += take;
                self.state = match left - take {
                    0 => Chunked::DataCr,
                    left => Chunked::Data { left },
                };
                continue;
            }
            self.state = self.step(byte)?;
            self.pos += 1;
        }
        Ok(Some(self.pos))
    }

    /// Counts `n` bytes toward the limit.
    fn count(&mut self, n: usize) -> Result<(), ProtocolError> {
        if n > self.max_body - self.counted {
            return Err(ProtocolError::BodyTooLarge);
        }
        self.counted += n;
        Ok(())
    }

    /// One byte of framing, extension or trailer; the state after it.
    fn step(&mut self, byte: u8) -> Result<Chunked, ProtocolError> {
        use Chunked::*;
        let bad_size = ProtocolError::Malformed("invalid chunk size");
        let size_line = matches!(
            self.state,
            Size { .. } | SizeBlanks { .. } | Extension { .. }
        );
        if size_line {
            self.line += 1;
            if self.line > MAX_CHUNK_LINE + 1 {
                return Err(ProtocolError::Malformed("chunk line too long"));
            }
        }
        Ok(match (self.state, byte) {
            (Size { size, digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(bad_size);
                }
                let digit = (byte as char).to_digit(16).unwrap_or_default() as usize;
                let size = size.checked_mul(16).ok_or(bad_size)? + digit;
                Size {
                    size,
                    digits: digits + 1,
                }
            }
            (Size { digits: 0, .. }, _) => return Err(bad_size),
            (Size { size, .. } | SizeBlanks { size }, b' ' | b'\t') => SizeBlanks { size },
            (Size { size, .. } | SizeBlanks { size }, b';') => {
                self.count(1)?;
                Extension { size }
            }
            (Size { size, .. } | SizeBlanks { size } | Extension { size }, b'\r') => {
                SizeLf { size }
            }
            (Size { .. } | SizeBlanks { .. }, _) => return Err(bad_size),
            (Extension { .. }, b'\n') => {
                return Err(ProtocolError::Malformed("bare lf in a chunk line"))
            }
            (Extension { size }, _) => {
                self.count(1)?;
                Extension { size }
            }
            (SizeLf { size }, b'\n') => {
                self.line = 0;
                if size == 0 {
                    TrailerStart
                } else {
                    // Refused before the data arrives: the chunk would not fit.
                    self.count(size)?;
                    Data { left: size }
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { size: 0, digits: 0 },
            (DataCr | DataLf, _) => {
                return Err(ProtocolError::Malformed("chunk data not followed by crlf"))
            }
            (TrailerStart, b'\r') => EndLf,
            (EndLf, b'\n') => Done,
            (Trailer, b'\r') => {
                self.count(1)?;
                TrailerLf
            }
            (TrailerStart | Trailer, b'\n') => {
                return Err(ProtocolError::Malformed("bare lf in a trailer"))
            }
            (TrailerStart | Trailer, _) => {
                self.count(1)?;
                Trailer
            }
            (TrailerLf, b'\n') => {
                self.count(1)?;
                TrailerStart
            }
            (SizeLf { .. } | TrailerLf | EndLf, _) => {
                return Err(ProtocolError::Malformed("cr not followed by lf"))
            }
            (Data { .. } | Done, _) => unreachable!("data and the end are not stepped"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What decoding gives: the body and the bytes it used, once complete.
    type Decoded = Result<Option<(Vec<u8>, usize)>, ProtocolError>;

    fn chunked(raw: &str) -> Decoded {
        take_body(raw.as_bytes(), Framing::Chunked, 16)
    }

    #[test]
    fn complete_chunked_bodies() {
        let cases: &[(&str, &str, usize)] = &[
            ("0\r\n\r\n", "", 5),
            ("3\r\nabc\r\n0\r\n\r\n", "abc", 13),
            ("3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT", "abcde", 26),
            ("A\r\n0123456789\r\n0\r\nx: 1\r\n\r\n", "0123456789", 26),
            ("3 \r\nabc\r\n0\r\n\r\n", "abc", 14),
            ("3\t;e\r\nabc\r\n0;f\r\n\r\n", "abc", 18),
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
            "3\r",
            "3\r\nab",
            "3\r\nabc\r\n",
            "3\r\nabc\r\n0\r\n",
            "0\r\nx: 1\r\n",
            "0\r\n\r",
        ] {
            assert_eq!(chunked(raw).unwrap(), None, "{raw:?}");
        }
    }

    #[test]
    fn bad_chunked_bodies() {
        use ProtocolError::*;
        let cases: Vec<(String, ProtocolError)> = vec![
            ("z\r\n".into(), Malformed("invalid chunk size")),
            ("-1\r\n".into(), Malformed("invalid chunk size")),
            ("\r\n".into(), Malformed("invalid chunk size")),
            ("3 x\r\n".into(), Malformed("invalid chunk size")),
            ("3\n".into(), Malformed("invalid chunk size")),
            (
                "fffffffffffffff0\r\n".into(),
                Malformed("invalid chunk size"),
            ),
            ("3\rx".into(), Malformed("cr not followed by lf")),
            ("3;a\nb".into(), Malformed("bare lf in a chunk line")),
            (
                "3\r\nabcX\r\n".into(),
                Malformed("chunk data not followed by crlf"),
            ),
            ("0\r\nx\n".into(), Malformed("bare lf in a trailer")),
            ("11\r\n".into(), BodyTooLarge),
            ("8\r\n12345678\r\n9\r\n".into(), BodyTooLarge),
        ];
        for (raw, want) in cases {
            assert_eq!(chunked(&raw).unwrap_err(), want, "{raw:?}");
        }
        let long_line = format!("1;{}\r\n", "e".repeat(2000));
        assert_eq!(
            take_body(long_line.as_bytes(), Framing::Chunked, 1 << 20).unwrap_err(),
            Malformed("chunk line too long")
        );
    }

    /// Issue 11: chunk extensions and trailers were free (only the data was counted), so
    /// a body of empty chunks with 1 KiB extensions cost a megabyte of input per byte of
    /// limit. Now everything but the framing counts.
    #[test]
    fn extensions_and_trailers_count_toward_the_limit() {
        use ProtocolError::BodyTooLarge;
        let cases: &[(&str, Result<usize, ProtocolError>)] = &[
            // 16 bytes in all: 10 of data, 6 of extension.
            ("5;abcde\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n", Ok(31)),
            (
                "5;abcdef\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n",
                Err(BodyTooLarge),
            ),
            (
                "1;aaaa\r\nx\r\n1;bbbb\r\ny\r\n1;cccc\r\nz\r\n0\r\n\r\n",
                Err(BodyTooLarge),
            ),
            // "x: 12345678901\r\n" is 16 bytes of trailer.
            ("0\r\nx: 12345678901\r\n\r\n", Ok(21)),
            ("0\r\nx: 123456789012\r\n\r\n", Err(BodyTooLarge)),
            ("8\r\n12345678\r\n0\r\nx: 123456\r\n\r\n", Err(BodyTooLarge)),
        ];
        for (raw, want) in cases {
            let got = chunked(raw).map(|done| done.map(|(_, used)| used));
            assert_eq!(got, want.map(Some), "{raw:?}");
        }
    }

    /// Feeds `raw` as a connection receives it: the buffer grows by `step` bytes a read.
    fn decode_in_reads(raw: &[u8], step: usize, max: usize) -> (Decoded, usize) {
        let mut reader = ChunkedDecoder::new(max);
        let mut end = 0;
        loop {
            end = (end + step).min(raw.len());
            match reader.advance(&raw[..end]) {
                Ok(None) if end < raw.len() => continue,
                Ok(Some(used)) => {
                    let examined = reader.examined();
                    return (Ok(Some((reader.into_body(), used))), examined);
                }
                other => return (other.map(|_| None), reader.examined()),
            }
        }
    }

    /// Issue 11: the decoder restarted on every read, so a 1 MB body of 1-byte chunks
    /// cost 3.2 s of CPU. Each byte is now examined once, however the body is split.
    #[test]
    fn work_is_linear_in_the_bytes_however_they_arrive() {
        let body: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut raw = Vec::with_capacity(body.len() * 6);
        for byte in &body {
            raw.extend_from_slice(b"1\r\n");
            raw.push(*byte);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        for step in [7, 4096] {
            let (got, examined) = decode_in_reads(&raw, step, 1 << 20);
            assert_eq!(got, Ok(Some((body.clone(), raw.len()))), "reads of {step}");
            assert_eq!(examined, raw.len(), "reads of {step}: bytes examined");
        }
    }

    /// Any split into reads gives the answer decoding in one piece gives.
    #[test]
    fn splits_do_not_change_the_answer() {
        let cases = [
            "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx: 1\r\n\r\nNEXT",
            "5;abcdef\r\n12345\r\n0\r\n\r\n",
            "3\r\nabcX",
            "0\r\nx\n",
            "fffffffffffffff0\r\n",
        ];
        for raw in cases {
            let whole = chunked(raw);
            for step in 1..raw.len() {
                let (got, _) = decode_in_reads(raw.as_bytes(), step, 16);
                assert_eq!(got, whole, "{raw:?} in reads of {step}");
            }
        }
    }

    /// Found by `cargo fuzz run chunked_body`: with a limit of `usize::MAX` the limit
    /// arithmetic overflowed.
    #[test]
    fn limits_at_the_top_of_the_range() {
        let cases: &[(&str, Option<(&str, usize)>)] = &[
            ("0\r\n", None),
            ("0\r\nx", None),
            ("0\r\nx: 1\r\n", None),
            ("0\r\nx: 1\r\n\r\n", Some(("", 11))),
            ("3\r\nabc\r\n0\r\n\r\n", Some(("abc", 13))),
        ];
        for max in [usize::MAX, usize::MAX - 1] {
            for (raw, want) in cases {
                let got = take_body(raw.as_bytes(), Framing::Chunked, max).unwrap();
                let got = got.as_ref().map(|(b, n)| (b.as_slice(), *n));
                let want = want.map(|(b, n)| (b.as_bytes(), n));
                assert_eq!(got, want, "{raw:?} with limit {max}");
            }
        }
    }

    #[test]
    fn content_length_bodies() {
        assert_eq!(
            take_body(b"abcNEXT", Framing::Length(3), 16).unwrap(),
            Some((b"abc".to_vec(), 3))
        );
        assert_eq!(take_body(b"ab", Framing::Length(3), 16).unwrap(), None);
    }
}
