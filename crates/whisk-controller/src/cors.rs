//! CORS headers and pre-flight answers.
//!
//! The REST API (`/api/v1`, except web actions which shape their own CORS answers) allows any
//! origin so browser tools can call it; `OPTIONS` anywhere under it is answered 200 without
//! authentication or routing, as pre-flight requests carry no credentials. The controller's
//! root routes (`/`, `/ping`) advertise a smaller method set.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Methods advertised for the REST API.
pub const API_ALLOWED_METHODS: &str = "GET, DELETE, POST, PUT, HEAD";
/// Methods advertised for the controller's root routes.
pub const ROOT_ALLOWED_METHODS: &str = "OPTIONS, GET, POST";
/// Request headers a browser may send.
pub const ALLOWED_HEADERS: &str =
    "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent";

/// Which CORS policy a path falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CorsPolicy {
    RestApi,
    Root,
    /// Web actions (their own rules) and unknown paths outside the API.
    None,
}

fn policy_for(path: &str) -> CorsPolicy {
    let under_api = path == "/api/v1" || path.starts_with("/api/v1/");
    let web_action = path == "/api/v1/web" || path.starts_with("/api/v1/web/");
    if under_api && !web_action {
        CorsPolicy::RestApi
    } else if path == "/" || path == "/ping" {
        CorsPolicy::Root
    } else {
        CorsPolicy::None
    }
}

fn insert_cors_headers(headers: &mut HeaderMap, allowed_methods: &'static str) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(allowed_methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
}

/// Adds CORS headers and short-circuits pre-flight `OPTIONS` requests.
pub async fn cors_middleware(request: Request, next: Next) -> Response {
    let allowed_methods = match policy_for(request.uri().path()) {
        CorsPolicy::RestApi => API_ALLOWED_METHODS,
        CorsPolicy::Root => ROOT_ALLOWED_METHODS,
        CorsPolicy::None => return next.run(request).await,
    };
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        response
    } else {
        next.run(request).await
    };
    insert_cors_headers(response.headers_mut(), allowed_methods);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_api_paths_get_the_api_policy_but_web_actions_do_not() {
        assert_eq!(policy_for("/api/v1"), CorsPolicy::RestApi);
        assert_eq!(
            policy_for("/api/v1/namespaces/_/actions"),
            CorsPolicy::RestApi
        );
        assert_eq!(policy_for("/api/v1/web/guest/default/a"), CorsPolicy::None);
        assert_eq!(policy_for("/api/v1x"), CorsPolicy::None);
        assert_eq!(policy_for("/"), CorsPolicy::Root);
        assert_eq!(policy_for("/ping"), CorsPolicy::Root);
        assert_eq!(policy_for("/elsewhere"), CorsPolicy::None);
    }
}
