//! The REST API routes, one module per collection.
//!
//! Each collection module exposes `pub(crate) fn routes() -> Router<AppState>` with its full
//! paths (`/api/v1/namespaces/{ns}/<collection>...`); [`routes`] merges them. Handlers take
//! [`crate::auth::Caller`] for the identity, resolve the `{ns}` segment with
//! [`crate::names::resolve_namespace`], check rights through [`crate::entitlement`], and
//! return [`crate::ApiError`] for every failure.

pub mod actions;
pub mod info;
pub mod namespaces;

use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route of the application, without the shared layers.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(info::routes())
        .merge(namespaces::routes())
        .merge(actions::routes())
}

/// Answer for paths no route matches.
pub(crate) async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}
