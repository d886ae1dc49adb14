//! `/api/v1/web/...`: web actions. They need the invocation engine, so until it lands every web
//! request gets a clear `503` in OpenWhisk's error shape instead of a misleading `404`.

use axum::Router;
use axum::routing::any;

use crate::error::ApiError;
use crate::state::AppState;

/// Why a web action request cannot be served yet.
pub const WEB_ACTIONS_UNAVAILABLE: &str = "Web actions are not available yet.";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/web", any(web_action))
        .route("/api/v1/web/{*path}", any(web_action))
}

async fn web_action() -> ApiError {
    ApiError::unavailable(WEB_ACTIONS_UNAVAILABLE)
}
