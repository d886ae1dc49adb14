//! HTTP Basic authentication of REST API callers.
//!
//! The user name is the namespace uuid and the password its 64-character key. Authentication
//! runs before routing for every authenticated path, so an unknown path under
//! `/api/v1/namespaces` answers 401 to an anonymous caller (as OpenWhisk does) and 404 only to
//! an authenticated one.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use whisk_model::{AuthKey, Identity};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Routes that take a `Caller` all sit behind the middleware; reaching one without an
        // identity means credentials were never checked, so refuse rather than guess.
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .map(Caller)
            .ok_or_else(ApiError::authentication_missing)
    }
}

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    /// No Basic credentials at all.
    Missing,
    /// Basic credentials that cannot be a valid key (bad base64, no colon, key not 64 chars).
    Malformed,
    /// A well-formed key to look up.
    Key(AuthKey),
}

fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return Credentials::Missing;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Credentials::Missing;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::Missing;
    }
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return Credentials::Malformed;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Credentials::Malformed;
    };
    match text.parse::<AuthKey>() {
        Ok(key) => Credentials::Key(key),
        Err(_) => Credentials::Malformed,
    }
}

/// The caller's own `uuid:key` from the request's Basic credentials, for actions that call the
/// API back (`__OW_API_KEY`). Only meaningful after the middleware authenticated the request.
pub fn presented_key(headers: &HeaderMap) -> Option<AuthKey> {
    match credentials(headers) {
        Credentials::Key(key) => Some(key),
        Credentials::Missing | Credentials::Malformed => None,
    }
}

/// Paths under `/api/v1` that anyone may call: API info, its swagger document and web actions
/// (which authenticate on their own terms).
fn is_public_api_path(path: &str) -> bool {
    matches!(path, "/api/v1" | "/api/v1/" | "/api/v1/api-docs")
        || path == "/api/v1/web"
        || path.starts_with("/api/v1/web/")
}

/// Whether a path needs a caller identity.
pub fn requires_authentication(path: &str) -> bool {
    path.starts_with("/api/v1/") && !is_public_api_path(path)
}

/// Resolves the caller's identity and stores it in the request extensions; 401 on failure.
pub async fn auth_middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !requires_authentication(request.uri().path()) {
        return next.run(request).await;
    }
    match authenticate(&state, request.headers()).await {
        Ok(identity) => {
            tracing::debug!(namespace = %identity.namespace, subject = %identity.subject, "authenticated");
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Looks the credentials of a request up in the subject store.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Identity, ApiError> {
    match credentials(headers) {
        Credentials::Missing => Err(ApiError::authentication_missing()),
        Credentials::Malformed => {
            tracing::debug!("malformed credentials");
            Err(ApiError::authentication_invalid())
        }
        Credentials::Key(key) => {
            let identity = state.store.subjects.authenticate(&key).await?;
            identity.ok_or_else(|| {
                tracing::debug!(uuid = %key.uuid, "unknown or blocked credentials");
                ApiError::authentication_invalid()
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn basic(user_and_password: &str) -> HeaderMap {
        headers_with(&format!("Basic {}", STANDARD.encode(user_and_password)))
    }

    #[test]
    fn classifies_credentials() {
        assert_eq!(credentials(&HeaderMap::new()), Credentials::Missing);
        assert_eq!(
            credentials(&headers_with("Bearer abc")),
            Credentials::Missing
        );
        assert_eq!(
            credentials(&headers_with("Basic %%%")),
            Credentials::Malformed
        );
        assert_eq!(credentials(&basic("uuid:short")), Credentials::Malformed);
        assert_eq!(credentials(&basic("no-colon")), Credentials::Malformed);
        let key = "k".repeat(64);
        assert_eq!(
            credentials(&basic(&format!("uuid:{key}"))),
            Credentials::Key(AuthKey::new("uuid", key).unwrap())
        );
    }

    #[test]
    fn public_paths_need_no_authentication() {
        assert!(!requires_authentication("/"));
        assert!(!requires_authentication("/ping"));
        assert!(!requires_authentication("/api/v1"));
        assert!(!requires_authentication("/api/v1/"));
        assert!(!requires_authentication("/api/v1/api-docs"));
        assert!(!requires_authentication("/api/v1/web/guest/default/a"));
        assert!(requires_authentication("/api/v1/namespaces"));
        assert!(requires_authentication("/api/v1/namespaces/_/actions"));
        assert!(requires_authentication("/api/v1/unknown"));
    }
}
