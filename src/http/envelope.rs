//! The contract's JSON envelope, which every body a service sends is wrapped in:
//! `{"data": ...}` on success, `{"error": {"code", "message"}}` on failure, and one
//! of either per item of a batch reply.

use serde::{Deserialize, Serialize};

/// Success envelope: every 2xx body is `{"data": ...}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// Failure envelope: `{"error": {"code": 404, "message": "product not found"}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The code and message.
    pub error: ErrorBody,
}

/// The inside of the failure envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The HTTP status, repeated so that a body read alone still says what happened.
    pub code: u16,
    /// A lower-case sentence for people.
    pub message: String,
}

/// One item of a batch reply (`{"data": [item, ...]}`): the item's own success
/// envelope or its own error envelope, as if it had been a request of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item<T> {
    /// Present on success. (A missing `Option` field reads as `None` without
    /// `#[serde(default)]`, which would require `T: Default`.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// Present on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl<T> Item<T> {
    /// A success or a failure (status and message).
    pub fn new(result: Result<T, ErrorBody>) -> Self {
        match result {
            Ok(data) => Item {
                data: Some(data),
                error: None,
            },
            Err(error) => Item {
                data: None,
                error: Some(error),
            },
        }
    }

    /// Back to a result; an item with neither field is a malformed reply (502).
    pub fn into_result(self) -> Result<T, ErrorBody> {
        match (self.data, self.error) {
            (Some(data), _) => Ok(data),
            (None, Some(error)) => Err(error),
            (None, None) => Err(ErrorBody {
                code: 502,
                message: "malformed batch reply".into(),
            }),
        }
    }
}
