//! The one error type every handler returns, and the one place store and model errors
//! become OpenWhisk statuses and messages.
//!
//! An [`ApiError`] turned into a response carries its message in a response extension; the
//! transaction middleware (see [`crate::transaction`]) then writes the final
//! `{"error": <message>, "code": <tid>}` body, because only it knows the transaction id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use whisk_model::{ErrorClass, ExecError, ModelError, NameError};
use whisk_store::StoreError;

/// The exact message strings this crate sends. Those OpenWhisk defines are re-exported from
/// `whisk_model::messages` (the single home of wire texts); the rest are the controller's own.
pub mod messages {
    use whisk_model::messages as model;

    /// Unknown route.
    pub const RESOURCE_NOT_FOUND: &str = model::NOT_FOUND_ROUTE;
    /// Entity missing (no name given).
    pub const RESOURCE_DOES_NOT_EXIST: &str = model::RESOURCE_DOES_NOT_EXIST;
    /// No `Authorization` header.
    pub const AUTHENTICATION_MISSING: &str = model::MISSING_AUTH;
    /// Unknown, blocked or malformed credentials.
    pub const AUTHENTICATION_INVALID: &str = model::INVALID_AUTH;
    /// Value of `WWW-Authenticate` on every 401.
    pub const AUTHENTICATION_CHALLENGE: &str = model::AUTH_CHALLENGE;
    /// PUT without `overwrite=true` on an existing entity.
    pub const ENTITY_EXISTS: &str = model::RESOURCE_EXISTS;
    /// Revision mismatch on write.
    pub const CONCURRENT_MODIFICATION: &str = model::CONCURRENT_MODIFICATION;
    /// The document id belongs to another entity type.
    pub const CONFORMANCE: &str = model::CONFLICTING_TYPE;
    /// A stored document that no longer parses.
    pub const CORRUPTED_ENTITY: &str = model::CORRUPTED_ENTITY;
    /// Generic 503.
    pub const SERVICE_UNAVAILABLE: &str = model::SERVICE_UNAVAILABLE;
    /// Actions cannot be written into a binding.
    pub const OPERATION_NOT_PERMITTED_ON_BINDING: &str = model::NOT_ALLOWED_ON_BINDING;
    /// Generic 500; details stay in the log.
    pub const INTERNAL_SERVER_ERROR: &str = "There was an internal server error.";
    /// Individual limits (`/limits/<x>`) are not addressable in OpenWhisk either.
    pub const LIMITS_ENTITY_NOT_IMPLEMENTED: &str =
        "Inner entity level routes for limits are not yet implemented.";
}

/// An HTTP error answer: a status and the message placed in `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

/// Marker left in the response extensions so the transaction middleware can complete the body.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub(crate) String);

impl ApiError {
    /// Any status with any message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The text placed in the `error` field.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400 with the given message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 for a body that failed to parse or validate while being read.
    pub fn malformed_content(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(whisk_model::messages::malformed_body(&detail.to_string()))
    }

    /// 400 for a query parameter whose value does not parse or is out of range.
    pub fn malformed_query_parameter(name: &str, detail: impl std::fmt::Display) -> Self {
        Self::bad_request(whisk_model::messages::malformed_query(
            name,
            &detail.to_string(),
        ))
    }

    /// 401 when no credentials were sent.
    pub fn authentication_missing() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, messages::AUTHENTICATION_MISSING)
    }

    /// 401 when the credentials do not identify an active subject.
    pub fn authentication_invalid() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, messages::AUTHENTICATION_INVALID)
    }

    /// 403 naming the resources the caller may not access; names are sorted, deduplicated
    /// and comma-joined like OpenWhisk does.
    pub fn not_authorized<I, N>(fully_qualified_names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        let names: Vec<String> = fully_qualified_names.into_iter().map(Into::into).collect();
        Self::new(
            StatusCode::FORBIDDEN,
            whisk_model::messages::not_authorized(&names),
        )
    }

    /// 404 without naming the resource.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, messages::RESOURCE_DOES_NOT_EXIST)
    }

    /// 404 naming the missing resource (`ns[/pkg]/name`).
    pub fn not_found_named(fully_qualified_name: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            whisk_model::messages::does_not_exist_named(fully_qualified_name),
        )
    }

    /// 404 for a path no route matches.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, messages::RESOURCE_NOT_FOUND)
    }

    /// 405 listing the methods the route accepts.
    pub fn method_not_allowed(supported: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            whisk_model::messages::method_not_allowed(supported),
        )
    }

    /// 409 for a PUT without `overwrite=true` on an existing entity.
    pub fn entity_exists() -> Self {
        Self::new(StatusCode::CONFLICT, messages::ENTITY_EXISTS)
    }

    /// 409 when the revision changed between read and write.
    pub fn concurrent_modification() -> Self {
        Self::new(StatusCode::CONFLICT, messages::CONCURRENT_MODIFICATION)
    }

    /// 409 when the name is taken by an entity of another collection.
    pub fn conformance() -> Self {
        Self::new(StatusCode::CONFLICT, messages::CONFORMANCE)
    }

    /// 413 for a field or request larger than allowed.
    pub fn too_large(what: &str, actual: u64, allowed: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            whisk_model::messages::too_large(what, actual, allowed),
        )
    }

    /// 415 for a body that is not JSON. Like OpenWhisk's HTTP layer, the message names the
    /// content type that was received, when there was one.
    pub fn unsupported_content_type(received: Option<&str>) -> Self {
        let message = match received {
            None => whisk_model::messages::UNSUPPORTED_CONTENT_TYPE.to_owned(),
            Some(content_type) => format!(
                "The request's Content-Type [{content_type}] is not supported. Expected:\napplication/json"
            ),
        };
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 500 for a stored document that cannot be decoded.
    pub fn corrupted_entity() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            messages::CORRUPTED_ENTITY,
        )
    }

    /// 500 without details (details go to the log, not to the client).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            messages::INTERNAL_SERVER_ERROR,
        )
    }

    /// 503 with the given message.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 400 for writes that target a package binding.
    pub fn operation_not_permitted_on_binding() -> Self {
        Self::bad_request(messages::OPERATION_NOT_PERMITTED_ON_BINDING)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body written here is provisional: the transaction middleware replaces it with one
        // that also carries the transaction id.
        let mut response =
            (self.status, Json(json!({ "error": self.message.as_str() }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(messages::AUTHENTICATION_CHALLENGE),
            );
        }
        response.extensions_mut().insert(ErrorMessage(self.message));
        response
    }
}

/// Handler result type.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<StoreError> for ApiError {
    /// The single mapping of store failures to OpenWhisk answers. Details of server-side
    /// failures are logged here and never sent to the client.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists(_) => ApiError::entity_exists(),
            StoreError::Conflict(_) => ApiError::concurrent_modification(),
            StoreError::NotFound(_) => ApiError::not_found(),
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "corrupt record in store");
                ApiError::corrupted_entity()
            }
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "store unavailable");
                ApiError::unavailable(messages::SERVICE_UNAVAILABLE)
            }
            other @ (StoreError::InvalidInput(_)
            | StoreError::SchemaTooNew { .. }
            | StoreError::Backend(_)) => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl From<NameError> for ApiError {
    /// A bad name in a URL is a bare 400; names inside bodies arrive as [`ModelError`] instead
    /// and get the "malformed" prefix.
    fn from(error: NameError) -> Self {
        ApiError::bad_request(error.to_string())
    }
}

impl From<ModelError> for ApiError {
    /// The model says what kind of failure it is; the status is chosen here, once.
    fn from(error: ModelError) -> Self {
        let status = match error.class() {
            ErrorClass::MalformedContent | ErrorClass::BadRequest => StatusCode::BAD_REQUEST,
            ErrorClass::Conflict => StatusCode::CONFLICT,
            ErrorClass::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        };
        ApiError::new(status, error.api_message())
    }
}

impl From<ExecError> for ApiError {
    fn from(error: ExecError) -> Self {
        ApiError::from(ModelError::from(error))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_openwhisk_answers() {
        let cases = [
            (
                StoreError::AlreadyExists("x".into()),
                409,
                "resource already exists",
            ),
            (
                StoreError::Conflict("x".into()),
                409,
                "Concurrent modification to resource detected.",
            ),
            (
                StoreError::NotFound("x".into()),
                404,
                "The requested resource does not exist.",
            ),
            (
                StoreError::Corrupt("x".into()),
                500,
                "Resource is corrupted and cannot be read.",
            ),
            (
                StoreError::Backend("secret detail".into()),
                500,
                messages::INTERNAL_SERVER_ERROR,
            ),
            (
                StoreError::Unavailable("x".into()),
                503,
                messages::SERVICE_UNAVAILABLE,
            ),
        ];
        for (store_error, status, message) in cases {
            let api_error = ApiError::from(store_error);
            assert_eq!(api_error.status().as_u16(), status);
            assert_eq!(api_error.message(), message);
        }
    }

    #[test]
    fn forbidden_names_are_sorted_and_deduplicated() {
        let error = ApiError::not_authorized(["b/y", "a/x", "b/y"]);
        assert_eq!(error.status().as_u16(), 403);
        assert_eq!(
            error.message(),
            "The supplied authentication is not authorized to access 'a/x, b/y'."
        );
    }
}
