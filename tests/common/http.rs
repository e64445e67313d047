//! The test client: a small blocking HTTP client (ureq 3) that hands every status back
//! as a [`Resp`] instead of turning 4xx/5xx into errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::Resp;

/// Per-request timeout of the test client: a hang fails the test instead of blocking it.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A small blocking client on ureq 3 that never turns a status into an error.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Self::with_timeout(REQUEST_TIMEOUT)
    }
}

impl Http {
    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        Http { agent }
    }

    /// `GET url`, or the transport error.
    pub fn try_get(&self, url: &str) -> Result<Resp, ureq::Error> {
        finish(self.agent.get(url).call())
    }

    /// `GET url`; a transport error fails the test.
    #[track_caller]
    pub fn get(&self, url: &str) -> Resp {
        self.try_get(url)
            .unwrap_or_else(|e| panic!("GET {url}: transport error {e}"))
    }

    /// `POST url` with a JSON body (sent as is) and extra headers, or the transport error.
    pub fn try_post(
        &self,
        url: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, ureq::Error> {
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_empty() {
            finish(req.send_empty())
        } else {
            finish(req.send(body))
        }
    }

    /// `POST url` with a JSON body; a transport error fails the test.
    #[track_caller]
    pub fn post(&self, url: &str, body: &str) -> Resp {
        self.post_h(url, body, &[])
    }

    /// `POST url` with a JSON body and extra headers; a transport error fails the test.
    #[track_caller]
    pub fn post_h(&self, url: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        self.try_post(url, body, headers)
            .unwrap_or_else(|e| panic!("POST {url} {body}: transport error {e}"))
    }

    /// `PUT url` with a JSON body and, when given, `Authorization: Bearer TOKEN`.
    #[track_caller]
    pub fn put(&self, url: &str, body: &str, token: Option<&str>) -> Resp {
        let mut req = self
            .agent
            .put(url)
            .header("Content-Type", "application/json");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        finish(req.send(body)).unwrap_or_else(|e| panic!("PUT {url} {body}: transport error {e}"))
    }

    /// `PUT url` with an arbitrary `Authorization` header value.
    #[track_caller]
    pub fn put_auth(&self, url: &str, body: &str, authorization: &str) -> Resp {
        let req = self
            .agent
            .put(url)
            .header("Content-Type", "application/json")
            .header("Authorization", authorization);
        finish(req.send(body)).unwrap_or_else(|e| panic!("PUT {url} {body}: transport error {e}"))
    }

    /// `DELETE url`.
    #[track_caller]
    pub fn delete(&self, url: &str) -> Resp {
        finish(self.agent.delete(url).call())
            .unwrap_or_else(|e| panic!("DELETE {url}: transport error {e}"))
    }
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Resp, ureq::Error> {
    let mut resp = r?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone());
    let text = resp.body_mut().read_to_string()?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        content_type,
        text,
        json,
        headers,
    })
}

/// A string that no other run or test uses (idempotency keys, nonces).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
