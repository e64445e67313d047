//! Where a peer service lives: `host`, `host:port` or `http://host:port`.
//!
//! The lab named peers by bare host in env vars (`CATALOG=catalog`); containers and
//! scripts often write a URL. All three forms are accepted and turned into one base URL.

use std::fmt;

/// The base URL of a peer service, without a trailing slash (`http://catalog:10086`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr(String);

/// Why a peer address could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddrError(String);

impl fmt::Display for PeerAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid peer address {:?}: expected host, host:port or http://host:port",
            self.0
        )
    }
}

impl std::error::Error for PeerAddrError {}

impl PeerAddr {
    /// Parses `text`; a bare host gets `default_port`.
    pub fn parse(text: &str, default_port: u16) -> Result<Self, PeerAddrError> {
        let bad = || PeerAddrError(text.to_string());
        let trimmed = text.trim();
        let rest = match trimmed.split_once("://") {
            Some(("http", rest)) => rest,
            Some(_) => return Err(bad()),
            None => trimmed,
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
            return Err(bad());
        }
        // `[::1]:80` and `[::1]` are IPv6 literals; otherwise the last colon splits host and port.
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (format!("[{addr}]"), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.parse::<u16>().map_err(|_| bad())?),
                None => (rest.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(PeerAddr(format!("http://{host}:{port}")))
    }

    /// The base URL, e.g. `http://127.0.0.1:10086`.
    pub fn url(&self) -> &str {
        &self.0
    }

    /// `host:port`, for name resolution.
    pub fn authority(&self) -> &str {
        self.0.trim_start_matches("http://")
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_forms() {
        let cases = [
            ("catalog", "http://catalog:10086"),
            ("catalog:9000", "http://catalog:9000"),
            ("http://catalog:9000", "http://catalog:9000"),
            ("http://catalog:9000/", "http://catalog:9000"),
            ("http://catalog", "http://catalog:10086"),
            ("127.0.0.1:1", "http://127.0.0.1:1"),
            ("[::1]:5", "http://[::1]:5"),
            ("[::1]", "http://[::1]:10086"),
        ];
        for (input, want) in cases {
            assert_eq!(
                PeerAddr::parse(input, 10086).unwrap().url(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_the_rest() {
        for input in [
            "",
            "https://x:1",
            "x:notaport",
            "x:70000",
            "http://x/path",
            ":80",
            "a b",
        ] {
            assert!(PeerAddr::parse(input, 1).is_err(), "{input}");
        }
    }
}
