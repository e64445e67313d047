//! Errors of the HTTP layer, and the one type every handler error becomes: [`ApiError`].

use super::envelope::ErrorBody;
use std::borrow::Cow;
use std::fmt;

/// A failure a handler (or the server itself) answers with: an HTTP status and a
/// lower-case sentence, rendered as the contract's envelope
/// `{"error":{"code":<status>,"message":"..."}}` by [`crate::http::Response::from`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub message: Cow<'static, str>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, message)
    }

    /// 404: the thing named does not exist.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(404, message)
    }

    /// 503: a backend is down or refused.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(503, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for ErrorBody {
    fn from(error: ApiError) -> Self {
        ErrorBody {
            code: error.status,
            message: error.message.into_owned(),
        }
    }
}

impl From<ErrorBody> for ApiError {
    fn from(error: ErrorBody) -> Self {
        ApiError::new(error.code, error.message)
    }
}

/// Why a request could not be read off the wire. Each maps to the status sent
/// (where a response can still be written) before the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not HTTP/1.x, a bad request line or header, or ambiguous framing (smuggling shapes).
    Malformed(&'static str),
    /// Request line + headers over the limit, or too many headers.
    HeadTooLarge,
    /// Declared or received body over the limit.
    BodyTooLarge,
    /// `Expect` other than `100-continue`.
    ExpectationFailed,
    /// The request did not complete within the request timeout.
    Timeout,
}

impl ProtocolError {
    /// The error the client is told about.
    pub fn to_api_error(self) -> ApiError {
        match self {
            ProtocolError::Malformed(why) => ApiError::bad_request(why),
            ProtocolError::HeadTooLarge => ApiError::new(431, "request headers too large"),
            ProtocolError::BodyTooLarge => ApiError::new(413, "request body too large"),
            ProtocolError::ExpectationFailed => ApiError::new(417, "expectation not supported"),
            ProtocolError::Timeout => ApiError::new(408, "request timed out"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_api_error().fmt(f)
    }
}

impl std::error::Error for ProtocolError {}
