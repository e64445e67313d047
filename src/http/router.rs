//! A small router: method + path pattern (`/products/{name}`) → handler.

use super::error::ApiError;
use super::request::{decode_component, Request};
use super::response::Response;

/// The result a handler returns; the error side is rendered as the envelope.
pub type HandlerResult = Result<Response, ApiError>;

type HandlerFn = Box<dyn Fn(&Request, &Params) -> HandlerResult + Send + Sync>;

/// The percent-decoded values of a route's `{...}` segments, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<String>);

impl Params {
    /// The `index`-th parameter of the pattern.
    pub fn get(&self, index: usize) -> &str {
        self.0.get(index).map_or("", String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param,
}

struct Route {
    method: &'static str,
    pattern: &'static str,
    segments: Vec<Segment>,
    handler: HandlerFn,
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
                    Segment::Param => !part.is_empty(),
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
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// What dispatching a request produced: the response and the pattern that matched
/// (the label metrics use, so that `/products/Tux` and `/products/Bird` count as one route).
pub struct Routed {
    /// The matched pattern, or a fixed label for 404/405.
    pub route: &'static str,
    /// The response to send.
    pub response: Response,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route. `pattern` is `/`-separated; `{anything}` captures one segment.
    pub fn route(
        mut self,
        method: &'static str,
        pattern: &'static str,
        handler: impl Fn(&Request, &Params) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        let segments = pattern
            .trim_start_matches('/')
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s)
                }
            })
            .collect();
        self.routes.push(Route {
            method,
            pattern,
            segments,
            handler: Box::new(handler),
        });
        self
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
            Err(error) => {
                return Routed {
                    route: "bad-path",
                    response: error.into(),
                }
            }
        };
        let best = self
            .routes
            .iter()
            .filter(|r| r.matches(&path))
            .map(Route::literal_count)
            .max();
        let Some(best) = best else {
            return Routed {
                route: "not-found",
                response: ApiError::not_found("not found").into(),
            };
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
            let response = Response::from(ApiError::new(405, "method not allowed"))
                .with_header("Allow", allowed.join(", "));
            return Routed {
                route: "method-not-allowed",
                response,
            };
        };
        let params = Params(
            route
                .segments
                .iter()
                .zip(path)
                .filter(|(s, _)| **s == Segment::Param)
                .map(|(_, part)| part)
                .collect(),
        );
        let response = (route.handler)(request, &params).unwrap_or_else(Response::from);
        Routed {
            route: route.pattern,
            response,
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
                Ok(Response::data(&format!("{tag}:{}:{}", p.get(0), p.get(1))))
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
}
