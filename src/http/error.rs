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
    /// An error with any status: for a status passed on from a peer. A status this
    /// code decides on has its named constructor below, so the statuses a service
    /// answers with can be found by name.
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

    /// 401: no credentials where a route needs them.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(401, message)
    }

    /// 403: credentials that do not allow this route.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(403, message)
    }

    /// 404: the thing named does not exist.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(404, message)
    }

    /// 405: the path exists, the method does not (the router adds `Allow`).
    pub fn method_not_allowed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(405, message)
    }

    /// 408: the request did not arrive in time.
    pub fn request_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(408, message)
    }

    /// 409: the request conflicts with the state (out of stock, a voided buy, a key in progress).
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(409, message)
    }

    /// 413: a body too large to take or to forward.
    pub fn payload_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(413, message)
    }

    /// 417: an `Expect` the server does not support.
    pub fn expectation_failed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(417, message)
    }

    /// 422: a well-formed request that cannot be done as asked (a reused idempotency key).
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(422, message)
    }

    /// 431: request line and headers over the limit.
    pub fn headers_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(431, message)
    }

    /// 500: a bug or an impossible state.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(500, message)
    }

    /// 502: a peer answered with something malformed.
    pub fn bad_gateway(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(502, message)
    }

    /// 503: a backend or the storage is unavailable, or the server is saturated.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(503, message)
    }

    /// 504: a backend did not answer in time.
    pub fn gateway_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(504, message)
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
            ProtocolError::HeadTooLarge => ApiError::headers_too_large("request headers too large"),
            ProtocolError::BodyTooLarge => ApiError::payload_too_large("request body too large"),
            ProtocolError::ExpectationFailed => {
                ApiError::expectation_failed("expectation not supported")
            }
            ProtocolError::Timeout => ApiError::request_timeout("request timed out"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_api_error().fmt(f)
    }
}

impl std::error::Error for ProtocolError {}
