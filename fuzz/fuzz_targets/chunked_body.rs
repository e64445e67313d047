//! Arbitrary bytes as a chunked body; the first byte picks the body and trailer limit.
//!
//! `take_body` is stateless and re-run from the start as bytes arrive, so its answer on
//! any prefix must be "wait" or the same answer as on the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toystore::http::body::take_body;
use toystore::http::request::Framing;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, buf)) = data.split_first() else {
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
    let take = |bytes: &[u8]| take_body(bytes, Framing::Chunked, max, max);
    let whole = take(buf);
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
        assert_eq!(take(&one), Ok(Some((body.clone(), expected))));
    }
    // Bytes arriving in two pieces: the first piece waits or already says what the whole says.
    let step = if buf.len() <= 128 { 1 } else { buf.len() / 64 };
    for cut in (0..buf.len()).step_by(step) {
        let early = take(&buf[..cut]);
        assert!(
            early == Ok(None) || early == whole,
            "prefix of {cut}: {early:?}, whole: {whole:?}"
        );
        if let Ok(Some((_, used))) = &whole {
            if cut >= *used {
                assert_eq!(early, whole, "prefix of {cut} holds the whole body");
            } else {
                assert_eq!(early, Ok(None), "prefix of {cut} ends before the body does");
            }
        }
    }
});
