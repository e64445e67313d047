//! The checksummed framing of every record on disk (journal lines and snapshots).
//!
//! A framed record is `<crc> <payload>\n`: `crc` is the CRC32C of `payload` as exactly 8
//! lower-case hex digits, then one space, then the payload (JSON, never a newline). Text,
//! so a journal stays readable with `less`; the checksum first, so a record torn anywhere
//! (its end missing) or changed anywhere (a flipped digit) no longer matches.

/// Bytes before the payload: 8 hex digits and a space.
const HEADER: usize = 9;

/// Why a line is not a good framed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// It does not start with 8 hex digits and a space: not a framed record at all
    /// (a torn write, zeros, or a file written before records had checksums).
    Unframed,
    /// Framed, but the payload is not what was checksummed: the record was changed.
    Mismatch,
}

impl FrameError {
    /// A lower-case phrase for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            FrameError::Unframed => "no checksum",
            FrameError::Mismatch => "checksum mismatch",
        }
    }
}

/// `payload` framed, newline included.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(payload.len() + HEADER + 1);
    frame_into(&mut framed, payload);
    framed
}

/// Appends `payload`, framed and newline-terminated, to `out`.
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(!payload.contains(&b'\n'));
    out.extend_from_slice(format!("{:08x} ", crc32c::crc32c(payload)).as_bytes());
    out.extend_from_slice(payload);
    out.push(b'\n');
}

/// The payload of a framed record (`line` without its newline), if its checksum holds.
pub fn unframe(line: &[u8]) -> Result<&[u8], FrameError> {
    let (header, payload) = line.split_at_checked(HEADER).ok_or(FrameError::Unframed)?;
    let (hex, space) = header.split_at(HEADER - 1);
    if space != b" " || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(FrameError::Unframed);
    }
    // Eight lower-case hex digits always parse.
    let expected = std::str::from_utf8(hex)
        .ok()
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or(FrameError::Unframed)?;
    if crc32c::crc32c(payload) == expected {
        Ok(payload)
    } else {
        Err(FrameError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_record_reads_back_and_any_change_is_caught() {
        let framed = frame(br#"{"op":"buy","qty":1}"#);
        let line = framed.strip_suffix(b"\n").unwrap();
        assert_eq!(unframe(line), Ok(&br#"{"op":"buy","qty":1}"#[..]));
        for at in 0..line.len() {
            let mut changed = line.to_vec();
            changed[at] = if changed[at] == b'1' { b'2' } else { b'1' };
            assert!(unframe(&changed).is_err(), "byte {at} changed");
        }
        assert_eq!(unframe(&line[..line.len() - 1]), Err(FrameError::Mismatch));
        for unframed in [
            &b""[..],
            b"{\"op\":1}",
            b"0000000",
            b"0000000g {}",
            b"00000000{}",
        ] {
            assert_eq!(unframe(unframed), Err(FrameError::Unframed), "{unframed:?}");
        }
    }
}
