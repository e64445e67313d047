//! Who may call a route, checked by the router before any handler runs: anyone, only
//! the other services (`Authorization: Bearer $INTERNAL_TOKEN`), or an admin
//! (`Authorization: Bearer $ADMIN_TOKEN`).
//!
//! The admin token and the internal token meet on one call: the front-end checks a
//! user's admin token for `PUT /products/{name}` itself, then calls the catalog with the
//! internal token, like every call between services. So the catalog's update accepts
//! either token: the admin's (an operator calling the catalog directly) or the internal
//! one (a service that checked the admin's). Without an internal token the front-end
//! passes the user's header on and the catalog checks the admin token again.

use super::error::ApiError;
use super::request::Request;

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the front-end's API and every service's `/health` (and `/metrics`,
    /// which the server answers itself).
    Public,
    /// Only the other services: the request must carry the internal token when one is
    /// configured; without one the route is open (tests and labs on a private machine).
    Internal,
    /// An admin with this token; none configured: nobody (the front-end's update).
    Admin(Option<String>),
    /// An admin with this token, or a service with the internal token (the catalog's
    /// update, which the front-end calls after checking the admin token itself).
    AdminOrService(Option<String>),
}

/// Passes when `request` may use a route of `access`; `internal` is the internal token,
/// if one is configured. 401 when the token is missing, 403 when it is wrong.
pub fn check(access: &Access, request: &Request, internal: Option<&str>) -> Result<(), ApiError> {
    let internal = internal.filter(|t| !t.is_empty());
    let given = request.header("authorization").map(bearer);
    match access {
        Access::Public => Ok(()),
        Access::Internal => match (internal, given) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(ApiError::unauthorized(
                "missing internal token: this route is for the store's services",
            )),
            (Some(expected), Some(given)) if same(given, expected) => Ok(()),
            (Some(_), Some(_)) => Err(ApiError::forbidden("invalid internal token")),
        },
        Access::Admin(admin) | Access::AdminOrService(admin) => {
            let admin = admin.as_deref().filter(|t| !t.is_empty());
            let internal = internal.filter(|_| matches!(access, Access::AdminOrService(_)));
            let Some(given) = given else {
                return Err(ApiError::unauthorized("missing admin token"));
            };
            // Both comparisons always run, so the time taken tells nothing about which.
            let by_service = internal.is_some_and(|expected| same(given, expected));
            let by_admin = admin.is_some_and(|expected| same(given, expected));
            match (by_service | by_admin, admin) {
                (true, _) => Ok(()),
                (false, None) => Err(ApiError::forbidden(
                    "admin updates are disabled: no admin token is configured",
                )),
                (false, Some(_)) => Err(ApiError::forbidden("invalid admin token")),
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header; another scheme gives "".
fn bearer(header: &str) -> &str {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("")
        .trim()
}

/// Compares in the same time wherever the first difference is, so that a token cannot
/// be guessed byte by byte from timings (its length is no secret).
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
