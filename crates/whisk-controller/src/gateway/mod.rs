//! The built-in API gateway: route management and the routes themselves, on the API's own port.
//!
//! OpenWhisk runs route management as Node.js web actions (`whisk.system/apimgmt`) in front of
//! a separate gateway. whisk-rs answers the same URLs natively, with the same request and
//! response shapes, so `wsk api` and the `openwhisk` npm client's `routes` work unchanged:
//! * `POST /api/v1/web/whisk.system/apimgmt/createApi[.http]` with `{"apidoc": ...}`
//!   (`?responsetype=`) adds a route or imports a swagger document;
//! * `GET .../getApi.http` (`?basepath=` base path or API name) lists or reads APIs;
//! * `DELETE .../deleteApi.http` (`?basepath=&relpath=&operation=`) removes an API or a route.
//!
//! They act for the namespace of the Basic credentials, as OpenWhisk's `__ow_user` does.
//! Failures answer `502` with `{"error": ...}`, as the actions' web responses do.
//!
//! The routes are served at `/api/<namespace>/<basePath><relPath>`: the method picks the
//! operation and the request is then served exactly as a request to its web action, with the
//! route's response type as the extension.

pub mod openapi;
pub mod registry;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use serde_json::{Value, json};
use whisk_model::Identity;
use whisk_store::StoreError;

use crate::api::web;
use crate::auth;
use crate::error::{ApiError, ApiResult, messages};
use crate::extract::{self, QueryParams};
use crate::state::AppState;
use crate::transaction::TransactionId;
use openapi::{ApiDocError, NewApi};
use registry::StoredApi;

/// Where OpenWhisk's route-management web actions live.
const MANAGEMENT: &str = "/api/v1/web/whisk.system/apimgmt";

pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new();
    // `wsk` calls `.http`, the npm client no extension (a web action's default, `.http` too);
    // `.json` answers the same for older clients.
    for extension in ["", ".http", ".json"] {
        router = router
            .route(
                &format!("{MANAGEMENT}/createApi{extension}"),
                post(create_api),
            )
            .route(&format!("{MANAGEMENT}/getApi{extension}"), get(get_api))
            .route(
                &format!("{MANAGEMENT}/deleteApi{extension}"),
                delete(delete_api),
            );
    }
    router
        .route("/api/{tenant}", any(serve_route))
        .route("/api/{tenant}/{*path}", any(serve_route))
}

/// A route-management failure, as the management actions report it.
fn failure(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, message)
}

fn doc_failure(prefix: &str, error: &ApiDocError) -> ApiError {
    failure(format!("{prefix}{error}"))
}

/// `scheme://host` this request reached, for URLs shown to clients when no better one is known.
fn request_origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// The URL a client calls an API's routes under (its routes' relative paths follow).
fn api_url(origin: &str, namespace: &str, base_path: &str) -> String {
    format!(
        "{}/api/{namespace}{}",
        origin.trim_end_matches('/'),
        base_path.trim_end_matches('/')
    )
}

/// An API as the management actions return it (`value` of a list entry, or a create answer).
fn cli_value(namespace: &str, api: &Value, origin: &str) -> Value {
    let base_path = api.get("basePath").and_then(Value::as_str).unwrap_or("/");
    json!({
        "namespace": namespace,
        "gwApiActivated": true,
        "tenantId": namespace,
        "gwApiUrl": api_url(origin, namespace, base_path),
        "apidoc": api,
    })
}

/// The origin an API's URL is shown with: the scheme it was created through and the host this
/// request reached, so a platform that moved to another address shows where it is now.
fn shown_origin(stored: &str, headers: &HeaderMap) -> String {
    let scheme = stored
        .split_once("://")
        .map_or("http", |(scheme, _)| scheme);
    match headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    {
        Some(host) => format!("{scheme}://{host}"),
        None => stored.to_owned(),
    }
}

fn list_entry(namespace: &str, api: &StoredApi, headers: &HeaderMap) -> Value {
    json!({
        "id": format!("API:{namespace}:{}", api.base_path()),
        "key": namespace,
        "value": cli_value(namespace, &api.apidoc, &shown_origin(&api.origin, headers)),
    })
}

/// How often a read-modify-write of one API is tried when another request changed it first.
/// Every round lets at least one writer through, so this many writers at once all land.
const WRITE_ATTEMPTS: usize = 16;

/// Whether a failed write lost a race with another writer of the same API (and may be redone
/// on a fresh read).
fn lost_race(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Conflict(_) | StoreError::AlreadyExists(_) | StoreError::NotFound(_)
    )
}

async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Identity> {
    auth::authenticate(state, headers).await
}

async fn create_api(
    State(state): State<AppState>,
    query: QueryParams,
    request: Request,
) -> ApiResult<Json<Value>> {
    let identity = caller(&state, request.headers()).await?;
    let namespace = identity.namespace.as_str();
    let origin = request_origin(request.headers());
    let body: Value = extract::read_json(request, state.config.max_request_body).await?;
    let response_type = query.get("responsetype").unwrap_or("json");
    let new_api = openapi::parse_create(&body, namespace, response_type, &origin)
        .map_err(|error| doc_failure("API creation failure: ", &error))?;
    let store = state.store.entities.as_ref();
    for attempt in 1..=WRITE_ATTEMPTS {
        let existing = registry::find(store, namespace, new_api.base_path()).await?;
        let (apidoc, origin) = match &new_api {
            NewApi::Swagger(doc) => (doc.clone(), origin.clone()),
            NewApi::Endpoint(endpoint) => {
                let mut doc = existing.as_ref().map_or_else(
                    || openapi::base_document(&endpoint.base_path, endpoint.api_name.as_deref()),
                    |api| api.apidoc.clone(),
                );
                openapi::add_endpoint(&mut doc, endpoint);
                (doc, endpoint.origin.clone())
            }
        };
        let revision = existing.as_ref().map(|api| api.revision);
        let now = state.clock.now_millis();
        match registry::save(store, namespace, &apidoc, &origin, revision, now).await {
            Ok(_) => {
                tracing::info!(%namespace, base_path = new_api.base_path(), "API saved");
                return Ok(Json(cli_value(namespace, &apidoc, &origin)));
            }
            Err(error) if lost_race(&error) && attempt < WRITE_ATTEMPTS => {
                tracing::debug!(%namespace, attempt, %error, "API changed meanwhile, redoing");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::concurrent_modification())
}

async fn get_api(
    State(state): State<AppState>,
    query: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let identity = caller(&state, &headers).await?;
    let namespace = identity.namespace.as_str();
    let store = state.store.entities.as_ref();
    let apis = match query.get("basepath").filter(|value| !value.is_empty()) {
        Some(wanted) => registry::find(store, namespace, wanted)
            .await?
            .into_iter()
            .collect(),
        None => {
            let skip = number(&query, "skip")?.unwrap_or(0);
            let limit = number(&query, "limit")?.filter(|limit| *limit > 0);
            let all = registry::list(store, namespace).await?;
            let page = all.into_iter().skip(skip);
            match limit {
                Some(limit) => page.take(limit).collect(),
                None => page.collect::<Vec<_>>(),
            }
        }
    };
    let entries: Vec<Value> = apis
        .iter()
        .map(|api| list_entry(namespace, api, &headers))
        .collect();
    Ok(Json(json!({ "apis": entries })))
}

fn number(query: &QueryParams, name: &str) -> ApiResult<Option<usize>> {
    query
        .get(name)
        .map(|text| {
            text.parse::<usize>()
                .map_err(|error| ApiError::malformed_query_parameter(name, error))
        })
        .transpose()
}

async fn delete_api(
    State(state): State<AppState>,
    query: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let identity = caller(&state, &headers).await?;
    let namespace = identity.namespace.as_str();
    let base_path = query
        .get("basepath")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| failure("basepath is required."))?;
    let rel_path = query.get("relpath").filter(|value| !value.is_empty());
    let operation = query.get("operation").filter(|value| !value.is_empty());
    if rel_path.is_none() && operation.is_some() {
        return Err(failure(
            "When specifying an operation, the path is required.",
        ));
    }
    let store = state.store.entities.as_ref();
    for attempt in 1..=WRITE_ATTEMPTS {
        let api = registry::find(store, namespace, base_path)
            .await?
            .ok_or_else(|| {
                failure(format!(
                    "API deletion failure: API '{base_path}' does not exist."
                ))
            })?;
        let written = match rel_path {
            None => registry::remove(store, namespace, &api).await,
            Some(rel_path) => {
                let mut apidoc = api.apidoc.clone();
                openapi::remove_endpoint(&mut apidoc, rel_path, operation)
                    .map_err(|error| doc_failure("API deletion failure: ", &error))?;
                if openapi::is_empty(&apidoc) {
                    registry::remove(store, namespace, &api).await
                } else {
                    let now = state.clock.now_millis();
                    registry::save(
                        store,
                        namespace,
                        &apidoc,
                        &api.origin,
                        Some(api.revision),
                        now,
                    )
                    .await
                    .map(|_| ())
                }
            }
        };
        match written {
            Ok(()) => {
                tracing::info!(%namespace, %base_path, rel_path = rel_path.unwrap_or(""), "API route deleted");
                return Ok(Json(json!({})));
            }
            Err(error) if lost_race(&error) && attempt < WRITE_ATTEMPTS => {
                tracing::debug!(%namespace, attempt, %error, "API changed meanwhile, redoing");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::concurrent_modification())
}

/// A request to a route: find the namespace's API whose base path holds the path, then the
/// operation for the method, and serve it as its web action.
async fn serve_route(
    State(state): State<AppState>,
    tid: TransactionId,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/api/") else {
        return ApiError::route_not_found().into_response();
    };
    let (namespace, route_path) = match rest.split_once('/') {
        Some((namespace, route_path)) => (namespace, format!("/{route_path}")),
        None => (rest, "/".to_owned()),
    };
    // `/api/v1/...` paths no API route matched are the REST API's unknown routes.
    if namespace == "v1" {
        return ApiError::route_not_found().into_response();
    }
    let target = match route_target(&state, namespace, &route_path, request.method().as_str()).await
    {
        Ok(Some(target)) => target,
        Ok(None) => {
            tracing::debug!(%namespace, path = %route_path, "no API route");
            return ApiError::new(StatusCode::NOT_FOUND, messages::RESOURCE_DOES_NOT_EXIST)
                .into_response();
        }
        Err(error) => return error.into_response(),
    };
    let (target, rel_path) = target;
    web::answer(&state, &tid, Some(target.address(&rel_path)), request).await
}

async fn route_target(
    state: &AppState,
    namespace: &str,
    route_path: &str,
    method: &str,
) -> ApiResult<Option<(openapi::Target, String)>> {
    let apis = registry::list(state.store.entities.as_ref(), namespace).await?;
    // The most specific base path wins when several hold the path.
    let mut candidates: Vec<(&StoredApi, &str)> = apis
        .iter()
        .filter_map(|api| {
            openapi::relative_path(api.base_path(), route_path).map(|relative| (api, relative))
        })
        .collect();
    candidates.sort_by_key(|(api, _)| std::cmp::Reverse(api.base_path().len()));
    Ok(candidates.into_iter().find_map(|(api, relative)| {
        openapi::find_operation(&api.apidoc, relative, method)
            .map(|target| (target, relative.to_owned()))
    }))
}
