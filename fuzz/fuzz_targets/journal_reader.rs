//! Arbitrary bytes as a journal file, opened as the services open theirs.
//!
//! So that good records are common, a line starting with `!` is framed with its correct
//! checksum before the file is written (`!{"a":1}` becomes `<crc> {"a":1}`); everything
//! else is written as it is. Checked: opening never panics; on success exactly the
//! bytes before the cut are kept, each kept line is a record whose checksum holds and
//! whose payload is what was replayed, in order, and the cut holds no record; reopening
//! finds the same records and cuts nothing more; on failure the message names the file
//! and the offset of a line that is not a good record, and the file is left as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use toystore::store::checksum::{frame, unframe};
use toystore::store::Journal;

fn parse(payload: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(payload).ok()
}

/// The file the input describes (see the module doc).
fn build(data: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(data.len() + 64);
    for line in data.split_inclusive(|b| *b == b'\n') {
        match line.strip_prefix(b"!") {
            Some(rest) => {
                let (payload, newline) = match rest.strip_suffix(b"\n") {
                    Some(payload) => (payload, true),
                    None => (rest, false),
                };
                let mut framed = frame(payload);
                if !newline {
                    framed.pop();
                }
                file.extend_from_slice(&framed);
            }
            None => file.extend_from_slice(line),
        }
    }
    file
}

/// A good record: framed, checksum holds, newline-terminated, parses.
fn good(line: &[u8]) -> Option<serde_json::Value> {
    line.strip_suffix(b"\n")
        .and_then(|line| unframe(line).ok())
        .and_then(parse)
}

fn path() -> PathBuf {
    // Memory-backed where there is one: the cut fsyncs.
    let dir = std::path::Path::new("/dev/shm");
    let dir = if dir.is_dir() { dir.to_path_buf() } else { std::env::temp_dir() };
    dir.join(format!("toystore-journal-fuzz-{}", std::process::id()))
}

fn open(path: &PathBuf) -> std::io::Result<(Vec<serde_json::Value>, u64)> {
    let mut replayed = Vec::new();
    let (journal, recovered) = Journal::open(path, parse, |record| {
        replayed.push(record);
        Ok(())
    })?;
    drop(journal);
    assert_eq!(recovered.records, replayed.len() as u64);
    Ok((replayed, recovered.truncated_bytes))
}

fuzz_target!(|data: &[u8]| {
    let file = build(data);
    let path = path();
    std::fs::write(&path, &file).unwrap();
    let opened = open(&path);
    let after = std::fs::read(&path).unwrap();
    match opened {
        Ok((replayed, cut)) => {
            let kept = file.len() - cut as usize;
            assert_eq!(after, &file[..kept], "only a tail is cut");
            let lines: Vec<&[u8]> = after.split_inclusive(|b| *b == b'\n').collect();
            assert_eq!(lines.len(), replayed.len(), "every kept line is a record");
            for (line, record) in lines.iter().zip(&replayed) {
                assert_eq!(good(line).as_ref(), Some(record), "replayed as written, checksum held");
            }
            for line in file[kept..].split_inclusive(|b| *b == b'\n') {
                assert!(good(line).is_none(), "a good record was cut");
            }
            let (again, cut_again) = open(&path).unwrap();
            assert_eq!((again, cut_again), (replayed, 0));
        }
        Err(error) => {
            assert_eq!(after, file, "a refused file is left as it was");
            let message = error.to_string();
            let prefix = format!("{}: damaged record at byte ", path.display());
            let rest = message.strip_prefix(&prefix).unwrap_or_else(|| panic!("{message}"));
            let offset: usize = rest.split(':').next().unwrap().parse().unwrap();
            assert!(offset < file.len());
            assert!(offset == 0 || file[offset - 1] == b'\n', "{message}: not a line start");
            let line = file[offset..].split_inclusive(|b| *b == b'\n').next().unwrap();
            assert!(good(line).is_none(), "{message}: a good record refused");
        }
    }
    let _ = std::fs::remove_file(&path);
});
