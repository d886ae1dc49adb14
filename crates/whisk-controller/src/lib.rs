//! The OpenWhisk-compatible REST API.
//!
//! [`router`] assembles every route with the layers all of them share; [`serve`] runs it.
//! Request handling is split in three layers, outermost first:
//! 1. [`transaction`]: assigns the transaction id, completes error bodies, logs the outcome;
//! 2. [`cors`]: CORS headers and pre-flight answers;
//! 3. [`auth`]: Basic authentication of everything under `/api/v1` except the public paths.
//!
//! Handlers live in [`api`], one module per collection; they return [`ApiError`] for every
//! failure, and [`entitlement`] decides who may do what.

pub mod api;
pub mod auth;
pub mod balancer;
pub mod cache;
pub mod compose;
pub mod config;
pub mod cors;
pub mod documents;
pub mod edge;
pub mod entitlement;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod invoke;
pub mod names;
pub mod state;
pub mod throttle;
pub mod transaction;
pub mod web;

use std::future::Future;
use std::io;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};

pub use balancer::{BalancerConfig, BalancerError, LoadBalancer, publisher_key};
pub use config::{BuildInfo, ControllerConfig};
pub use error::{ApiError, ApiResult};
pub use invoke::{Invocations, close_lost, close_unfinished};
pub use state::{
    AcceptAnyCode, AppState, Clock, CodeCheck, CodeRefused, IdSource, RandomIds, SystemClock,
};
pub use transaction::TransactionId;

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    let routes = api::routes()
        .fallback(api::route_not_found)
        .with_state(state.clone());
    // The shared layers wrap the routed application as a whole (rather than each route, which
    // is what `Router::layer` does) so they run before routing and see the router's final
    // answers, e.g. the `Allow` header of a 405.
    let api = Router::new()
        .fallback_service(routes)
        // Bodies are read by our own extractors, which enforce `max_request_body` with
        // OpenWhisk's message; axum's generic 2 MB cap would cut in first otherwise.
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), auth::auth_middleware))
        .layer(from_fn(cors::cors_middleware))
        // Before authentication and routing: an over-long URI is refused whoever sends it.
        .layer(from_fn(edge::uri_limit_middleware))
        .layer(from_fn_with_state(
            state,
            transaction::transaction_middleware,
        ));
    // The scrape endpoint sits outside the API's layers: Prometheus sends no credentials and
    // needs no transaction id, and `/metrics` is no OpenWhisk path a client could mean.
    whisk_metrics::router().fallback_service(api)
}

/// Serves the API on `listener` (plain HTTP, default edge limits) until `shutdown` completes,
/// then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(listener, state, edge::EdgeConfig::default(), shutdown).await
}

/// Like [`serve`], with the edge's TLS and limits chosen by the caller.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    edge: edge::EdgeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    edge::serve(listener, router(state), edge, shutdown).await
}
