//! What `/proc` tells about processes the tests started: their children, whether they
//! still run, and the port a service listens on when its output is not readable
//! (stdout on `/dev/full` or a closed pipe, so the address line is lost), and what
//! became of a TCP connection (listening, accepted).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The state letter and parent pid in `/proc/PID/stat`; `None` once the process is gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` runs (a zombie has stopped running: only its parent's wait is left).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat(child).is_some_and(|(_, ppid)| ppid == pid))
        .collect()
}

/// Waits up to `within` for `pid` to stop running.
pub fn gone_within(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The TCP port `pid` listens on on 127.0.0.1, once it does: its socket inodes matched
/// against the listening sockets in `/proc/net/tcp`.
pub fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.ok()?.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    tcp_sockets().into_iter().find_map(|socket| {
        if socket.state != LISTEN || !inodes.contains(&socket.inode) {
            return None;
        }
        u16::from_str_radix(socket.local.split_once(':')?.1, 16).ok()
    })
}

/// Whether a socket listens on `addr` (IPv4).
pub fn listens(addr: SocketAddr) -> bool {
    let local = hex(addr);
    tcp_sockets()
        .iter()
        .any(|socket| socket.local == local && socket.state == LISTEN)
}

/// Whether the server at `server` has accepted the connection that `client` opened to
/// it (both IPv4). A connection still in the listener's queue belongs to no process
/// yet, so `/proc/net/tcp` shows it with inode 0; `accept` gives it one.
pub fn accepted(server: SocketAddr, client: SocketAddr) -> bool {
    let (local, remote) = (hex(server), hex(client));
    tcp_sockets().iter().any(|socket| {
        socket.local == local
            && socket.remote == remote
            && socket.state == ESTABLISHED
            && socket.inode != "0"
    })
}

/// `/proc/net/tcp`'s state codes.
const ESTABLISHED: &str = "01";
const LISTEN: &str = "0A";

/// One row of `/proc/net/tcp`, as written there (addresses in hex).
struct TcpSocket {
    local: String,
    remote: String,
    state: String,
    inode: String,
}

fn tcp_sockets() -> Vec<TcpSocket> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                local: fields.get(1)?.to_string(),
                remote: fields.get(2)?.to_string(),
                state: fields.get(3)?.to_string(),
                inode: fields.get(9)?.to_string(),
            })
        })
        .collect()
}

/// An IPv4 address as `/proc/net/tcp` writes it: the address as a number in host
/// byte order (little-endian here), the port in big-endian, both in hex.
fn hex(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        panic!("/proc/net/tcp lists IPv4 sockets only, not {addr}");
    };
    let ip = u32::from_le_bytes(v4.ip().octets());
    format!("{ip:08X}:{:04X}", v4.port())
}
