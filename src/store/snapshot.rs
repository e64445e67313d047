//! Replacing a whole file so that a crash leaves either the old or the new one, and
//! reading back a file whose content is one checksummed record (see [`super::checksum`]).

use super::checksum;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path`
/// and fsyncs the directory, so that the rename itself is durable. On failure the
/// temporary file is removed: on a full disk it would hold the space a retry needs.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    sync_parent_dir(path)
}

/// The payload of the file at `path`, written as one framed record: an error naming
/// the file when its checksum does not hold (or it has none).
pub fn read_framed(path: &Path) -> io::Result<Vec<u8>> {
    let bytes = fs::read(path)?;
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    match checksum::unframe(line) {
        Ok(payload) => Ok(payload.to_vec()),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: damaged ({}){}",
                path.display(),
                e.describe(),
                if e == checksum::FrameError::Unframed {
                    "; written by a version before checksums?"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// fsyncs the directory holding `path`, making a create or rename in it durable.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_framed_file_reads_back_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        write_atomically(&path, &checksum::frame(b"{\"seq\":12}")).unwrap();
        assert_eq!(read_framed(&path).unwrap(), b"{\"seq\":12}");
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 4;
        bytes[at] = b'3';
        fs::write(&path, &bytes).unwrap();
        let error = read_framed(&path).unwrap_err().to_string();
        assert!(
            error.contains("snap: damaged (checksum mismatch)"),
            "{error}"
        );
        fs::write(&path, b"{\"seq\":12}").unwrap();
        let error = read_framed(&path).unwrap_err().to_string();
        assert!(error.contains("snap: damaged (no checksum)"), "{error}");
    }
}
