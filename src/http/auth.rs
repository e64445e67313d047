//! The admin check: `Authorization: Bearer <token>`.

use super::error::ApiError;
use super::request::Request;

/// Passes when the request carries the expected bearer token. No token configured
/// means admin updates are off. The comparison takes the same time wherever the
/// first difference is, so the token cannot be guessed byte by byte from timings.
pub fn require_bearer(request: &Request, expected: Option<&str>) -> Result<(), ApiError> {
    let Some(given) = request.header("authorization") else {
        return Err(ApiError::new(401, "missing admin token"));
    };
    let Some(expected) = expected.filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            403,
            "admin updates are disabled: no admin token is configured",
        ));
    };
    let token = given
        .strip_prefix("Bearer ")
        .or_else(|| given.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    let same = token.len() == expected.len()
        && token
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(403, "invalid admin token"))
    }
}
