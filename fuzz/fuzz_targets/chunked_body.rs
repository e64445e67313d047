//! Arbitrary bytes as a chunked body, fed to the incremental decoder in arbitrary reads.
//!
//! Layout: the first byte picks the body limit, the second how many reads to cut the
//! rest into, the next ones where to cut (the rest is the body). Checked: the decoder's
//! answer does not depend on how the bytes were split into reads; it never examines a
//! byte twice (its work is linear in the input); and the one-piece answer is sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toystore::http::body::{take_body, ChunkedDecoder};
use toystore::http::request::Framing;

/// Reads of a body a connection may see at most: enough for any split of a short input.
const MAX_READS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    // Small limits so inputs reach them, the defaults, and the extremes of the type.
    let max = match selector {
        0..=249 => usize::from(selector),
        250 => 1024,
        251 => 64 * 1024,
        252 => 1024 * 1024,
        253 => usize::MAX / 2,
        _ => usize::MAX,
    };
    let Some((&reads, data)) = data.split_first() else {
        return;
    };
    let reads = usize::from(reads) % MAX_READS;
    if data.len() < reads {
        return;
    }
    let (cuts, buf) = data.split_at(reads);

    let whole = take_body(buf, Framing::Chunked, max);
    if let Ok(Some((body, used))) = &whole {
        assert!(*used <= buf.len());
        assert!(body.len() <= max);
        // At least "0\r\n\r\n" around the data.
        assert!(body.len() + 5 <= *used);
        // The same body as one chunk decodes to itself.
        let mut one = format!("{:x}\r\n", body.len()).into_bytes();
        one.extend_from_slice(body);
        one.extend_from_slice(b"\r\n0\r\n\r\n");
        let expected = if body.is_empty() { 5 } else { one.len() };
        assert_eq!(
            take_body(&one, Framing::Chunked, max),
            Ok(Some((body.clone(), expected)))
        );
    }

    // The same bytes as a connection receives them: a buffer that grows read by read,
    // cut where the input says.
    let mut ends: Vec<usize> = cuts
        .iter()
        .map(|&cut| usize::from(cut) * buf.len() / 255)
        .collect();
    ends.push(buf.len());
    ends.sort_unstable();
    let mut decoder = ChunkedDecoder::new(max);
    let mut split = Ok(None);
    for &end in &ends {
        split = decoder.advance(&buf[..end]);
        // Never past the bytes given, never back: each byte is examined once.
        assert!(decoder.examined() <= end, "examined past the bytes given");
        if split != Ok(None) {
            break;
        }
    }
    let split = split.map(|done| done.map(|used| (decoder.into_body(), used)));
    assert_eq!(split, whole, "cut at {ends:?}");
});
