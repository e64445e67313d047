//! The catalog's storage guarantees, on the real binary: a full disk (a real tmpfs)
//! and a damaged journal.
//!
//! The disk-full test mounts a small tmpfs, so it needs root; elsewhere (or when the
//! mount fails) it says it skipped and passes. CI runs as root.

mod common;

use common::{exit_within, skip, Extra, Http, Svc};
use serde_json::json;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot (not root, no mount).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if !mounted.status.success() {
            return Err(String::from_utf8_lossy(&mounted.stderr).into_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros into `name` until the file system is full.
    fn fill(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let mut file = File::create(&path).expect("create the filler");
        let block = vec![0u8; 64 << 10];
        while file.write_all(&block).is_ok() {}
        // Single pages may still fit after a block does not.
        while file.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Starts a catalog on `data` (no restocks: the test alone changes the stock).
fn catalog(data: &Path) -> Extra {
    let data = data.to_str().expect("utf-8 path");
    Extra::start(
        Svc::Catalog,
        &["--data-dir", data, "--restock-period-ms", "0"],
        &[],
    )
}

fn buy(http: &Http, url: &str, id: u64, quantity: u64) -> common::Resp {
    let body = json!({"buy_id": id, "name": "Tux", "quantity": quantity, "settled_below": 0});
    http.post(&format!("{url}/buy"), &body.to_string())
}

fn product(http: &Http, url: &str, name: &str) -> (f64, u64) {
    let r = http.get(&format!("{url}/products/{name}"));
    let data = r.ok();
    (
        data["price"].as_f64().unwrap(),
        data["quantity"].as_u64().unwrap(),
    )
}

/// Finding 3: on a full disk a change is refused with 503 and not applied, reads keep
/// working, `/health` is 503; once space is freed the catalog recovers by itself, and
/// after a restart exactly the acknowledged changes are there.
#[test]
fn a_full_disk_refuses_changes_applies_none_and_recovers_by_itself() {
    let tmpfs = match Tmpfs::mount("2m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            return skip(
                "a_full_disk_refuses_changes_applies_none_and_recovers_by_itself",
                &format!("cannot mount a tmpfs ({why})"),
            )
        }
    };
    let data = tmpfs.path().join("data");
    let http = Http::default();
    let service = catalog(&data);
    let url = service.url().to_string();
    let filler = tmpfs.fill("filler");
    // Before any change is refused, `/health` notices the full disk (its probe runs at
    // most once a second while the journal is healthy).
    common::eventually(
        "/health to see the full disk",
        Duration::from_secs(10),
        || (http.get(&format!("{url}/health")).status == 503).then_some(()),
    );

    // The journal's last page may still take a few records: buy until one is refused.
    let mut taken = 0;
    let mut id = 0;
    let refused = loop {
        let r = buy(&http, &url, id, 1);
        id += 1;
        if r.status != 200 {
            break r;
        }
        taken += 1;
        assert!(id < 200, "the full disk took {id} records");
    };
    refused.err(503, Some("storage unavailable"));
    for _ in 0..5 {
        buy(&http, &url, id, 1).err(503, Some("storage unavailable"));
        id += 1;
    }
    let put = http.put(
        &format!("{url}/products/Whale"),
        r#"{"price": 1.5}"#,
        Some(common::TEST_TOKEN),
    );
    put.err(503, Some("storage unavailable"));
    assert_eq!(
        product(&http, &url, "Tux"),
        (25.99, 80 - taken),
        "reads work, nothing refused applied"
    );
    assert_eq!(product(&http, &url, "Whale"), (34.99, 100));
    http.get(&format!("{url}/health"))
        .err(503, Some("storage unavailable"));

    fs::remove_file(filler).unwrap();
    common::eventually("/health to recover", Duration::from_secs(10), || {
        (http.get(&format!("{url}/health")).status == 200).then_some(())
    });
    buy(&http, &url, id, 2).ok();
    taken += 2;
    assert_eq!(product(&http, &url, "Tux").1, 80 - taken);

    drop(service);
    let service = catalog(&data);
    assert_eq!(
        product(&http, service.url(), "Tux"),
        (25.99, 80 - taken),
        "after a restart: every acknowledged buy, nothing else"
    );
    assert_eq!(product(&http, service.url(), "Whale"), (34.99, 100));
}

/// Issue 11 finding 12 (checksums): a changed digit in a journal record is refused at
/// start, naming the file and the record's byte offset.
#[test]
fn a_changed_digit_in_the_journal_refuses_to_start_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = Http::default();
    let service = catalog(&data);
    for (id, quantity) in [(0, 1), (1, 2), (2, 3)] {
        buy(&http, service.url(), id, quantity).ok();
    }
    drop(service);
    let journal = data.join("catalog.journal");
    let bytes = fs::read(&journal).unwrap();
    let second = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let digit = second
        + bytes[second..]
            .windows(7)
            .position(|w| w == b"\"qty\":2")
            .unwrap()
        + 6;
    let mut changed = bytes.clone();
    changed[digit] = b'1';
    fs::write(&journal, &changed).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--restock-period-ms",
            "0",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exit_within(&mut child, Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    assert!(
        status.is_some_and(|s| !s.success()),
        "the catalog started on a changed journal: {status:?} {stderr}"
    );
    assert!(
        stderr.contains(&format!("catalog.journal: damaged record at byte {second}")),
        "{stderr}"
    );
    assert_eq!(fs::read(&journal).unwrap(), changed, "nothing cut");
}
