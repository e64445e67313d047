//! Every line the services and the launcher write (the access log included) goes
//! through here, never through `println!` / `eprintln!`.
//!
//! Why: `println!` panics when the write fails (a closed terminal, `/dev/full`, a pipe
//! whose reader is gone) and blocks while the reader does not read (a full pipe). A
//! panic in the signal thread, or a worker stuck on the terminal, keeps a service from
//! stopping on SIGTERM. So a caller only queues its line for one writer thread: queuing
//! never blocks and never fails; a line that finds the queue full is dropped and counted
//! ([`dropped`], shown in `/metrics`), and the writer ignores write errors.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines waiting for the writer at most: about 400 KB of access log, a burst of some
/// tenths of a second at full speed; beyond that a stalled output costs lines, not memory.
const QUEUE_LINES: usize = 4096;

enum Message {
    /// A line for stdout (`true`) or stderr (`false`), without its newline.
    Line(bool, String),
    /// Answered once everything queued before it has been written (or failed).
    Flush(Sender<()>),
}

static QUEUE: OnceLock<Sender<Message>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Queues a line for stdout: the address line, the access log, what a service did.
pub fn info(line: impl Into<String>) {
    queue(Message::Line(true, line.into()));
}

/// Queues a line for stderr: failures, signals, stopping.
pub fn warn(line: impl Into<String>) {
    queue(Message::Line(false, line.into()));
}

/// Lines dropped because the output did not keep up (or no writer could be started).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Waits up to `within` for the lines queued so far to be written: a process calls it
/// before it exits, so its last lines are not lost, and gives up on an output that blocks.
pub fn flush(within: Duration) {
    let (done, written) = crossbeam_channel::bounded(1);
    if writer().try_send(Message::Flush(done)).is_ok() {
        let _ = written.recv_timeout(within);
    }
}

fn queue(message: Message) {
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = writer().try_send(message) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

fn writer() -> &'static Sender<Message> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_LINES);
        // Without a thread the receiver is dropped here and every line counts as dropped.
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_all(&rx));
        tx
    })
}

/// Writes lines as they come, a batch of consecutive stdout lines in one write.
fn write_all(queue: &Receiver<Message>) {
    let mut batch = String::new();
    while let Ok(first) = queue.recv() {
        for message in std::iter::once(first).chain(queue.try_iter().take(1024)) {
            match message {
                Message::Line(true, line) => {
                    batch.push_str(&line);
                    batch.push('\n');
                }
                Message::Line(false, line) => {
                    write_stdout(&mut batch);
                    let _ = io::stderr().write_all(format!("{line}\n").as_bytes());
                }
                Message::Flush(done) => {
                    write_stdout(&mut batch);
                    let _ = done.send(());
                }
            }
        }
        write_stdout(&mut batch);
    }
}

fn write_stdout(batch: &mut String) {
    if !batch.is_empty() {
        let mut out = io::stdout().lock();
        let _ = out.write_all(batch.as_bytes());
        let _ = out.flush();
        batch.clear();
    }
}

/// `text` with everything that is not printable escaped, for a log line: C0 and C1
/// controls and DEL (`\x1b`, `\u{85}`), Unicode format characters such as bidi overrides
/// and zero-width spaces (`\u{202e}`, `\u{200b}`), and whitespace other than the plain
/// space (line separators, no-break spaces). A backslash becomes `\\`, so an escape in
/// the log always means the byte was there. What a client sends can then neither forge
/// a line, nor reorder one on a terminal, nor hide characters from whoever reads it.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || (c.is_whitespace() && c != ' ') || is_format(c)
}

/// Unicode's format characters (general category Cf), which std does not classify.
fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_table() {
        let cases: &[(&str, &str)] = &[
            ("/products/Tux?q=a%20b", "/products/Tux?q=a%20b"),
            ("/products/Caf\u{e9}", "/products/Caf\u{e9}"),
            ("/\u{1f9f8}", "/\u{1f9f8}"),
            ("a b", "a b"),
            // C0, DEL, C1.
            ("/a\u{0}b", "/a\\x00b"),
            ("/\u{1b}[31mred", "/\\x1b[31mred"),
            ("/a\r\nforged 200", "/a\\x0d\\x0aforged 200"),
            ("/\t", "/\\x09"),
            ("/\u{7f}", "/\\x7f"),
            ("/\u{85}\u{9b}31m", "/\\u{85}\\u{9b}31m"),
            // Format characters: bidi overrides and isolates, zero-width, BOM, tags.
            ("/\u{202e}gnp.exe", "/\\u{202e}gnp.exe"),
            ("/\u{2066}x\u{2069}", "/\\u{2066}x\\u{2069}"),
            ("/a\u{200b}b\u{200d}", "/a\\u{200b}b\\u{200d}"),
            ("/\u{feff}\u{ad}\u{61c}", "/\\u{feff}\\u{ad}\\u{61c}"),
            ("/\u{e0041}", "/\\u{e0041}"),
            // Whitespace other than the space: separators, no-break and wide spaces.
            ("/\u{2028}\u{2029}", "/\\u{2028}\\u{2029}"),
            ("/\u{a0}\u{3000}", "/\\u{a0}\\u{3000}"),
            // A backslash is escaped, so `\x1b` in the log was never a raw escape.
            ("/\\x1b", "/\\\\x1b"),
        ];
        for (raw, logged) in cases {
            assert_eq!(escape(raw), *logged, "{raw:?}");
        }
    }
}
