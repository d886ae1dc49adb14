//! Transaction ids and the outermost middleware that assigns them.
//!
//! Every request gets a transaction id: the client's `X-Request-ID` when it sent one (unless it
//! starts with `sid_`, a prefix OpenWhisk reserves for its own system ids), otherwise a fresh one.
//! The id is echoed in `X-Request-ID` on every response and placed in the `code` field of every
//! error body, so a client report can be matched with the server log.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use tracing::Instrument;

use crate::error::{ApiError, ErrorMessage};
use crate::state::AppState;

/// Header carrying the transaction id in both directions.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Prefix of OpenWhisk's internal system transaction ids; never adopted from a client.
const RESERVED_PREFIX: &str = "sid_";

/// The id of the transaction a request belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionId(Arc<str>);

impl TransactionId {
    /// Wraps an id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TransactionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware always inserts it; a missing one means the router was assembled
        // without it, which is a programming error reported as a 500.
        parts
            .extensions
            .get::<TransactionId>()
            .cloned()
            .ok_or_else(ApiError::internal)
    }
}

/// The client's id, if it may be adopted.
fn client_transaction_id(request: &Request) -> Option<TransactionId> {
    let value = request.headers().get(&REQUEST_ID_HEADER)?.to_str().ok()?;
    let value = value.trim();
    if value.is_empty() || value.starts_with(RESERVED_PREFIX) {
        None
    } else {
        Some(TransactionId::new(value))
    }
}

/// Assigns the transaction id, runs the request inside a span carrying it, completes error
/// bodies with `code`, and stamps `X-Request-ID` on the response.
pub async fn transaction_middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let tid = client_transaction_id(&request)
        .unwrap_or_else(|| TransactionId::new(state.ids.transaction_id()));
    request.extensions_mut().insert(tid.clone());
    let span = tracing::info_span!(
        "request",
        tid = %tid,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let response = next.run(request).instrument(span.clone()).await;
    let mut response = complete_error_body(response, &tid);
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), "request completed");
    });
    if let Ok(value) = HeaderValue::from_str(tid.as_str()) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// Rewrites error responses into OpenWhisk's `{"error", "code"}` shape. Errors raised by our
/// own code carry their message in [`ErrorMessage`]; a bare 405 from the router is given the
/// "supported methods" message built from its `Allow` header.
fn complete_error_body(response: Response, tid: &TransactionId) -> Response {
    let message = match response.extensions().get::<ErrorMessage>() {
        Some(ErrorMessage(message)) => message.clone(),
        None if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
            method_not_allowed_message(&response)
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<ErrorMessage>();
    let body = json!({ "error": message, "code": tid.as_str() }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The 405 message from the router's `Allow` header; `HEAD` is implied by `GET` and not listed.
fn method_not_allowed_message(response: &Response) -> String {
    let allowed = response
        .headers()
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let methods: Vec<&str> = allowed
        .split(',')
        .map(str::trim)
        .filter(|method| !method.is_empty() && *method != "HEAD")
        .collect();
    ApiError::method_not_allowed(&methods).message().to_owned()
}
