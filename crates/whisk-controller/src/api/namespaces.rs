//! The namespaces collection: the caller's namespace list and its effective limits.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use whisk_model::EffectiveLimits;

use crate::auth::Caller;
use crate::entitlement;
use crate::error::{ApiError, ApiResult, messages};
use crate::extract::PathSegments;
use crate::names;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/namespaces", get(list_namespaces))
        .route("/api/v1/namespaces/", get(list_namespaces))
        .route("/api/v1/namespaces/{namespace}/limits", get(get_limits))
        .route("/api/v1/namespaces/{namespace}/limits/", get(get_limits))
        .route(
            "/api/v1/namespaces/{namespace}/limits/{*rest}",
            get(limits_subresource),
        )
}

/// `GET /namespaces`: only the caller's own namespace is listed.
async fn list_namespaces(Caller(caller): Caller) -> Json<Vec<String>> {
    Json(vec![caller.namespace])
}

/// `GET /namespaces/{ns}/limits`: the caller's limits, system defaults filled in (owner only).
async fn get_limits(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments(namespace): PathSegments<String>,
) -> ApiResult<Json<EffectiveLimits>> {
    let namespace = names::resolve_namespace(&caller, &namespace)?;
    entitlement::require_owner(&caller, &namespace, namespace.as_str())?;
    // Authentication already loaded the namespace's overrides into the identity.
    Ok(Json(state.config.limits.effective(&caller.limits)))
}

/// `GET /namespaces/{ns}/limits/<anything>`: individual limits are not addressable (OpenWhisk
/// rejects these while matching the path, before any rights check).
async fn limits_subresource() -> ApiError {
    ApiError::bad_request(messages::LIMITS_ENTITY_NOT_IMPLEMENTED)
}
