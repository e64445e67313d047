//! A small router: method + path pattern (`/products/{name}`) → handler, and who may
//! call it ([`Access`]).

use super::auth::{self, Access};
use super::error::ApiError;
use super::request::{decode_component, Request};
use super::response::{Handoff, Response, TakeConnection};
use std::sync::Arc;

/// The result a handler returns; the error side is rendered as the envelope.
pub type HandlerResult = Result<Response, ApiError>;

type HandlerFn = Box<dyn Fn(&Request, &Params) -> HandlerResult + Send + Sync>;
type HandoffFn = Box<dyn Fn(&Request, &Params) -> Result<Handoff, ApiError> + Send + Sync>;

/// What a route runs: a handler that answers, or one that takes the connection over.
enum Handler {
    Respond(HandlerFn),
    HandOff(HandoffFn),
}

/// The percent-decoded values of a route's `{name}` segments, by name.
#[derive(Debug, Default)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The value of the pattern's `{name}` segment.
    ///
    /// # Panics
    ///
    /// If the pattern has no `{name}`: a handler asking for a parameter its route
    /// does not have is a bug (the panic is that request's 500), never an empty value.
    pub fn get(&self, name: &str) -> &str {
        self.find(name)
            .unwrap_or_else(|| panic!("the route has no parameter {{{name}}}"))
    }

    /// The value of `{name}`, if the pattern has one.
    pub fn find(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    /// `{name}`: one segment, any value but empty.
    Param(&'static str),
}

struct Route {
    /// Who may call it, checked before the handler runs.
    access: Access,
    method: &'static str,
    pattern: &'static str,
    segments: Vec<Segment>,
    handler: Handler,
}

impl Route {
    fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    fn matches(&self, path: &[String]) -> bool {
        self.segments.len() == path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(segment, part)| match segment {
                    Segment::Literal(literal) => literal == part,
                    Segment::Param(_) => !part.is_empty(),
                })
    }
}

/// Routes of one service.
///
/// A path with an empty segment (`//products/Tux`, `/products/Tux/`) matches no route:
/// 404, as for any unknown path.
///
/// When several patterns match a path, the one with the most literal segments wins, so
/// `POST /products/Tux` is a 405 on `/products/{name}` rather than the lab's buy form
/// `/{name}/{quantity}`.
///
/// A route is internal unless it says otherwise ([`Router::route_for`]), so a new route
/// is for services only by default, and the one check of the internal token is here,
/// before any handler runs.
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    /// The token internal routes require; `None`: they are open.
    internal_token: Option<String>,
}

/// A router whose handlers share one state, `S`: each handler is given `&S` (as axum's
/// `State`) instead of capturing a clone of it. [`Routes::into_router`] ends it.
pub struct Routes<S> {
    router: Router,
    state: Arc<S>,
}

impl<S: Send + Sync + 'static> Routes<S> {
    /// Adds a route only the other services call (see [`Router::route`]).
    pub fn route(
        self,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&S, &Request, &Params) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        self.route_for(Access::Internal, method, pattern, handler)
    }

    /// Adds a route that `access` says who may call (see [`Router::route_for`]).
    pub fn route_for(
        mut self,
        access: Access,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&S, &Request, &Params) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::clone(&self.state);
        self.router = self
            .router
            .route_for(access, method, pattern, move |request, params| {
                handler(&state, request, params)
            });
        self
    }

    /// Adds a route, only the other services call, whose handler takes the connection
    /// over (see [`Handoff`]).
    pub fn handoff(
        mut self,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&S, &Request, &Params) -> Result<Handoff, ApiError> + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::clone(&self.state);
        self.router = self.router.add(
            Access::Internal,
            method,
            pattern,
            Handler::HandOff(Box::new(move |request, params| {
                handler(&state, request, params)
            })),
        );
        self
    }

    /// The routes, ready to serve.
    pub fn into_router(self) -> Router {
        self.router
    }
}

/// What dispatching a request produced: the response and the pattern that matched
/// (the label metrics use, so that `/products/Tux` and `/products/Bird` count as one route).
pub struct Routed {
    /// The matched pattern, or a fixed label for 404/405.
    pub route: &'static str,
    /// The response to send.
    pub response: Response,
    /// For a hand-off route: what takes the connection once the response's head is
    /// written (the response then has no body of its own).
    pub handoff: Option<TakeConnection>,
}

impl Routed {
    /// An ordinary response.
    pub fn response(route: &'static str, response: Response) -> Routed {
        Routed {
            route,
            response,
            handoff: None,
        }
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty router whose handlers share `state` (see [`Routes`]).
    pub fn with_state<S: Send + Sync + 'static>(state: Arc<S>) -> Routes<S> {
        Routes {
            router: Router::new(),
            state,
        }
    }

    /// Requires `token` on every internal and admin route (`None`: internal routes are
    /// open, admin routes need the admin token).
    pub fn internal_token(mut self, token: Option<String>) -> Self {
        self.internal_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Adds a route only the other services call. `pattern` is `/`-separated;
    /// `{anything}` captures one segment.
    pub fn route(
        self,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&Request, &Params) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        self.route_for(Access::Internal, method, pattern, handler)
    }

    /// Adds a route that `access` says who may call.
    pub fn route_for(
        self,
        access: Access,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&Request, &Params) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        self.add(access, method, pattern, Handler::Respond(Box::new(handler)))
    }

    fn add(
        mut self,
        access: Access,
        method: &'static str,
        pattern: &'static str,
        handler: Handler,
    ) -> Self {
        let segments: Vec<Segment> = pattern
            .trim_start_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name),
                    None => Segment::Literal(s),
                },
            )
            .collect();
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(*name),
                Segment::Literal(_) => None,
            })
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert!(
            names.len() == count && !names.contains(&""),
            "{pattern}: every {{parameter}} needs a name of its own"
        );
        self.routes.push(Route {
            access,
            method,
            pattern,
            segments,
            handler,
        });
        self
    }

    /// Method and pattern of every route anyone may call, not only the services
    /// (the API reference is checked against them).
    pub fn public_routes(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.routes
            .iter()
            .filter(|route| route.access != Access::Internal)
            .map(|route| (route.method, route.pattern))
    }

    /// Finds the route for `request` and runs it. HEAD is served by the GET route.
    pub fn dispatch(&self, request: &Request) -> Routed {
        // Only the one leading slash goes: `//products/Tux` has an empty first segment,
        // which no route matches (404), rather than being read as `/products/Tux`.
        let path = match request
            .head
            .path()
            .strip_prefix('/')
            .unwrap_or_default()
            .split('/')
            .map(|s| decode_component(s, false))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(path) => path,
            Err(error) => return Routed::response("bad-path", error.into()),
        };
        let best = self
            .routes
            .iter()
            .filter(|r| r.matches(&path))
            .map(Route::literal_count)
            .max();
        let Some(best) = best else {
            return Routed::response("not-found", ApiError::not_found("not found").into());
        };
        let candidates: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| r.matches(&path) && r.literal_count() == best)
            .collect();
        let method = match request.method() {
            "HEAD" => "GET",
            other => other,
        };
        let Some(route) = candidates.iter().find(|r| r.method == method) else {
            let mut allowed: Vec<&str> = candidates.iter().map(|r| r.method).collect();
            if allowed.contains(&"GET") {
                allowed.push("HEAD");
            }
            let response = Response::from(ApiError::method_not_allowed("method not allowed"))
                .with_header("Allow", allowed.join(", "));
            return Routed::response("method-not-allowed", response);
        };
        if let Err(error) = auth::check(&route.access, request, self.internal_token.as_deref()) {
            let mut response = Response::from(error);
            if response.status == 401 {
                response = response.with_header("WWW-Authenticate", "Bearer");
            }
            return Routed::response(route.pattern, response);
        }
        let params = Params(
            route
                .segments
                .iter()
                .zip(path)
                .filter_map(|(segment, part)| match segment {
                    Segment::Param(name) => Some((*name, part)),
                    Segment::Literal(_) => None,
                })
                .collect(),
        );
        let (response, handoff) = match &route.handler {
            Handler::Respond(handler) => (
                handler(request, &params).unwrap_or_else(Response::from),
                None,
            ),
            Handler::HandOff(handler) => match handler(request, &params) {
                Ok(Handoff { content_type, take }) => (
                    Response {
                        status: 200,
                        headers: Vec::new(),
                        body: Vec::new(),
                        content_type,
                    },
                    Some(take),
                ),
                Err(error) => (error.into(), None),
            },
        };
        Routed {
            route: route.pattern,
            response,
            handoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse_head;
    use crate::http::Limits;

    fn request(method: &str, target: &str) -> Request {
        let raw = format!("{method} {target} HTTP/1.1\r\n\r\n");
        let (head, _) = parse_head(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        Request {
            started: std::time::Instant::now(),
            head,
            body: Vec::new(),
            request_id: String::new(),
        }
    }

    fn router() -> Router {
        let echo = |tag: &'static str| {
            move |_: &Request, p: &Params| {
                let param = |name| p.find(name).unwrap_or_default();
                Ok(Response::data(&format!(
                    "{tag}:{}:{}",
                    param("name"),
                    param("quantity")
                )))
            }
        };
        Router::new()
            .route("GET", "/products", echo("list"))
            .route("GET", "/products/{name}", echo("get"))
            .route("PUT", "/products/{name}", echo("put"))
            .route("POST", "/{name}/{quantity}", echo("lab"))
    }

    #[test]
    fn dispatch_table() {
        let cases: &[(&str, &str, u16, &str)] = &[
            ("GET", "/products", 200, r#"{"data":"list::"}"#),
            ("GET", "/products/T%75x", 200, r#"{"data":"get:Tux:"}"#),
            ("HEAD", "/products/Tux", 200, r#"{"data":"get:Tux:"}"#),
            ("PUT", "/products/Tux", 200, r#"{"data":"put:Tux:"}"#),
            ("POST", "/Tux/2", 200, r#"{"data":"lab:Tux:2"}"#),
            (
                "POST",
                "/products/Tux",
                405,
                r#"{"error":{"code":405,"message":"method not allowed"}}"#,
            ),
            (
                "GET",
                "/Tux/2",
                405,
                r#"{"error":{"code":405,"message":"method not allowed"}}"#,
            ),
            (
                "GET",
                "/nope",
                404,
                r#"{"error":{"code":404,"message":"not found"}}"#,
            ),
            (
                "GET",
                "/products/",
                404,
                r#"{"error":{"code":404,"message":"not found"}}"#,
            ),
            // Issue 11: empty segments were squeezed out of the front of the path.
            (
                "GET",
                "//products/Tux",
                404,
                r#"{"error":{"code":404,"message":"not found"}}"#,
            ),
            (
                "POST",
                "//Tux/2",
                404,
                r#"{"error":{"code":404,"message":"not found"}}"#,
            ),
            (
                "GET",
                "/products//Tux",
                404,
                r#"{"error":{"code":404,"message":"not found"}}"#,
            ),
            (
                "GET",
                "/products/%FF",
                400,
                r#"{"error":{"code":400,"message":"path or query is not valid utf-8 after percent-decoding"}}"#,
            ),
        ];
        let router = router();
        for (method, target, status, body) in cases {
            let routed = router.dispatch(&request(method, target));
            assert_eq!(routed.response.status, *status, "{method} {target}");
            assert_eq!(
                String::from_utf8_lossy(&routed.response.body),
                *body,
                "{method} {target}"
            );
        }
    }

    #[test]
    fn method_not_allowed_lists_the_allowed() {
        let routed = router().dispatch(&request("DELETE", "/products/Tux"));
        assert_eq!(
            routed.response.headers,
            vec![("Allow", "GET, PUT, HEAD".to_string())]
        );
    }

    #[test]
    fn routes_are_internal_unless_marked_public() {
        let ok = |_: &Request, _: &Params| Ok(Response::data(&"ok"));
        let router = Router::new()
            .route_for(Access::Public, "GET", "/health", ok)
            .route("POST", "/buy", ok)
            .internal_token(Some("svc".into()));
        let with = |method: &str, target: &str, authorization: Option<&str>| {
            let routed = router.dispatch(&with_authorization(method, target, authorization));
            (routed.response.status, routed.response.headers)
        };
        assert_eq!(with("GET", "/health", None).0, 200);
        assert_eq!(
            with("POST", "/buy", None),
            (401, vec![("WWW-Authenticate", "Bearer".to_string())])
        );
        assert_eq!(with("POST", "/buy", Some("Bearer nope")).0, 403);
        assert_eq!(with("POST", "/buy", Some("Bearer svc")).0, 200);
    }

    fn with_authorization(method: &str, target: &str, authorization: Option<&str>) -> Request {
        let mut request = request(method, target);
        if let Some(value) = authorization {
            request
                .head
                .headers
                .push(("authorization".into(), value.into()));
        }
        request
    }

    #[test]
    fn access_table() {
        let admin = Access::AdminOrService(Some("adm".into()));
        let no_admin = Access::AdminOrService(None);
        let admin_only = Access::Admin(Some("adm".into()));
        // (access, internal token configured, Authorization sent, status or 0 for a pass)
        let cases: &[(&Access, Option<&str>, Option<&str>, u16)] = &[
            (&Access::Public, Some("svc"), None, 0),
            (&Access::Internal, None, None, 0),
            (&Access::Internal, Some(""), None, 0),
            (&Access::Internal, Some("svc"), None, 401),
            (&Access::Internal, Some("svc"), Some("Bearer svc"), 0),
            (&Access::Internal, Some("svc"), Some("bearer svc"), 0),
            (&Access::Internal, Some("svc"), Some("Bearer sv"), 403),
            (&Access::Internal, Some("svc"), Some("Bearer svd"), 403),
            (&Access::Internal, Some("svc"), Some("Basic svc"), 403),
            (&admin, None, None, 401),
            (&admin, None, Some("Bearer adm"), 0),
            (&admin, None, Some("Bearer svc"), 403),
            (&admin, Some("svc"), Some("Bearer svc"), 0),
            (&admin, Some("svc"), Some("Bearer adm"), 0),
            (&admin, Some("svc"), Some("Bearer nope"), 403),
            (&no_admin, None, Some("Bearer adm"), 403),
            (&no_admin, Some("svc"), Some("Bearer svc"), 0),
            (&no_admin, Some("svc"), Some("Bearer adm"), 403),
            (&admin_only, Some("svc"), Some("Bearer adm"), 0),
            (&admin_only, Some("svc"), Some("Bearer svc"), 403),
            (&admin_only, Some("svc"), None, 401),
            (&Access::Admin(None), Some("svc"), Some("Bearer svc"), 403),
        ];
        for (access, internal, authorization, status) in cases {
            let result = auth::check(
                access,
                &with_authorization("PUT", "/x", *authorization),
                *internal,
            );
            assert_eq!(
                result.map_err(|e| e.status).err().unwrap_or(0),
                *status,
                "{access:?} internal {internal:?} given {authorization:?}"
            );
        }
    }
}
