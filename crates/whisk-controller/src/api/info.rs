//! Unauthenticated information endpoints: controller info, liveness, API info and the
//! swagger document.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use crate::state::AppState;

/// OpenWhisk's API description, served verbatim; it is data describing the API we implement.
const SWAGGER_DOCUMENT: &str = include_str!("../../resources/apiv1swagger.json");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(controller_info))
        .route("/ping", get(ping))
        .route("/api/v1", get(api_info))
        .route("/api/v1/", get(api_info))
        .route("/api/v1/api-docs", get(api_docs))
}

/// `GET /`: what this deployment supports, with limits and runtimes.
async fn controller_info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "description": "OpenWhisk",
        "support": {
            "github": "https://github.com/apache/openwhisk/issues",
            "slack": "http://slack.openwhisk.org",
        },
        "api_paths": ["/api/v1"],
        "limits": state.config.limits.info_json(),
        "runtimes": state.config.manifest.info_json(),
    }))
}

/// `GET /ping`: liveness, as plain text.
async fn ping() -> &'static str {
    "pong"
}

/// `GET /api/v1`: API version and build.
async fn api_info(State(state): State<AppState>) -> Json<Value> {
    let build = &state.config.build_info;
    Json(json!({
        "description": "OpenWhisk API",
        "api_version": "1.0.0",
        "api_version_path": "v1",
        "build": build.build,
        "buildno": build.build_number,
        "swagger_paths": { "ui": "/docs", "api-docs": "/api-docs" },
    }))
}

/// `GET /api/v1/api-docs`: the swagger description of the API.
async fn api_docs() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        SWAGGER_DOCUMENT,
    )
}
