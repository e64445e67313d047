//! A response as the tests look at it, and the contract's checks on it: the success
//! envelope `{"data": ...}` and the failure envelope `{"error": {"code", "message"}}`.

use serde_json::Value;

/// A response as the tests look at it.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The raw body.
    pub text: String,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
    /// All headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Resp {
    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a 200 with the success envelope and JSON content type; returns `data`.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "expected 200, got {self:?}");
        assert_json_content_type(self);
        let obj = self
            .json
            .as_object()
            .unwrap_or_else(|| panic!("success body is not a JSON object: {self:?}"));
        assert!(
            !obj.contains_key("error"),
            "success body carries an error: {self:?}"
        );
        obj.get("data")
            .unwrap_or_else(|| panic!("success body has no \"data\": {self:?}"))
    }

    /// Asserts the error envelope with `code == status`, a non-empty lower-case
    /// message, and, when given, the exact message.
    #[track_caller]
    pub fn err(&self, status: u16, message: Option<&str>) {
        assert_eq!(self.status, status, "expected {status}, got {self:?}");
        assert_envelope(self);
        if let Some(m) = message {
            assert_eq!(
                self.json["error"]["message"], m,
                "wrong error message in {self:?}"
            );
        }
    }

    /// Asserts an error envelope whose status is one of `statuses`.
    #[track_caller]
    pub fn err_any(&self, statuses: &[u16]) {
        assert!(
            statuses.contains(&self.status),
            "expected one of {statuses:?}, got {self:?}"
        );
        assert_envelope(self);
    }
}

/// Asserts `Content-Type: application/json` (parameters such as charset allowed).
#[track_caller]
pub fn assert_json_content_type(r: &Resp) {
    let ct = r
        .content_type
        .as_deref()
        .unwrap_or_else(|| panic!("no Content-Type in {r:?}"));
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "Content-Type is not application/json: {r:?}"
    );
}

/// Asserts the failure envelope: exactly `{"error":{"code":status,"message":"..."}}`
/// with a non-empty lower-case message, and the JSON content type.
#[track_caller]
pub fn assert_envelope(r: &Resp) {
    assert_json_content_type(r);
    let obj = r
        .json
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {r:?}"));
    assert!(!obj.contains_key("data"), "error body carries data: {r:?}");
    let e = obj
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("error body has no \"error\" object: {r:?}"));
    assert_eq!(
        e.get("code").and_then(Value::as_u64),
        Some(u64::from(r.status)),
        "error.code is not the HTTP status: {r:?}"
    );
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error.message is not a string: {r:?}"));
    assert!(!msg.trim().is_empty(), "empty error message: {r:?}");
    assert_eq!(
        msg,
        msg.to_lowercase(),
        "error message is not lower-case: {r:?}"
    );
}

/// Asserts `{"data":{"order_number":N}}` with N a JSON integer; returns N.
#[track_caller]
pub fn order_number(r: &Resp) -> u64 {
    let d = r.ok();
    let obj = d
        .as_object()
        .unwrap_or_else(|| panic!("data is not an object: {r:?}"));
    assert_eq!(obj.len(), 1, "data has fields besides order_number: {r:?}");
    let n = &obj["order_number"];
    assert!(n.is_u64(), "order_number is not a JSON integer: {r:?}");
    n.as_u64().unwrap()
}
