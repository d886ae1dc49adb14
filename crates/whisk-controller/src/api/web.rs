//! `/api/v1/web/{namespace}/{package|default}/{action}{.ext}{/extra}`: web actions (§11).
//!
//! A web action runs as the owner of the namespace in the URL, whoever calls it: the owner's
//! throttles apply and the record is the owner's. Anything that does not lead to an exported
//! action — a missing namespace, package or action, or one without `web-export` — is the same
//! `404`, so the endpoint tells strangers nothing.

use std::collections::HashSet;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use whisk_model::activation::ActivationStatus;
use whisk_model::{Identity, WhiskAction, WhiskActivation};

use crate::api::actions::{ActionAddress, ResolvedAction};
use crate::auth;
use crate::compose::{self, SequenceCall};
use crate::cors::ALLOWED_HEADERS;
use crate::entitlement::{self, Privilege};
use crate::error::{ApiError, ApiResult, messages};
use crate::extract;
use crate::invoke::{self, ACTIVATION_ID_HEADER, Activation};
use crate::state::AppState;
use crate::transaction::TransactionId;
use crate::web::{Extension, WebAddress, WebRequest, request_parameters, shape};

/// How long a web request waits for its activation (OpenWhisk's blocking maximum).
const WEB_WAIT: Duration = Duration::from_secs(60);

/// Methods advertised to browsers for web actions.
const WEB_ALLOWED_METHODS: &str = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH";

/// Annotation names that shape web behaviour.
const RAW_HTTP: &str = "raw-http";
const REQUIRE_WHISK_AUTH: &str = "require-whisk-auth";
const WEB_CUSTOM_OPTIONS: &str = "web-custom-options";
const REQUIRE_WHISK_AUTH_HEADER: &str = "x-require-whisk-auth";

/// The answer when the activation is not done within the wait.
pub const RESPONSE_NOT_READY: &str = "Response not yet ready.";
/// The answer for developer and platform errors: no details leak to the web.
pub const PROCESSING_ERROR: &str = "There was an error processing your request.";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/web", any(web_action))
        .route("/api/v1/web/{*path}", any(web_action))
}

async fn web_action(
    State(state): State<AppState>,
    tid: TransactionId,
    request: Request,
) -> Response {
    let address = request
        .uri()
        .path()
        .strip_prefix("/api/v1/web/")
        .and_then(WebAddress::parse);
    answer(&state, &tid, address, request).await
}

/// Runs the web action at `address` for `request` and answers as a web action does, CORS
/// included. The API gateway's routes call this too, so a routed request behaves exactly like
/// a direct one; `None` (no action named) is the usual `404`.
pub(crate) async fn answer(
    state: &AppState,
    tid: &TransactionId,
    address: Option<WebAddress>,
    request: Request,
) -> Response {
    let mut custom_options = false;
    let request_headers = request.headers().clone();
    let served = match address {
        Some(address) => serve(state, tid, &address, request, &mut custom_options).await,
        None => Err(does_not_exist()),
    };
    let mut response = match served {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if !custom_options {
        add_cors_headers(response.headers_mut(), &request_headers);
    }
    response
}

fn add_cors_headers(headers: &mut HeaderMap, request_headers: &HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(WEB_ALLOWED_METHODS),
    );
    let allowed = request_headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(ALLOWED_HEADERS));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
}

fn does_not_exist() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, messages::RESOURCE_DOES_NOT_EXIST)
}

async fn serve(
    state: &AppState,
    tid: &TransactionId,
    address: &WebAddress,
    request: Request,
    custom_options: &mut bool,
) -> ApiResult<Response> {
    let accepted_at = state.clock.now_millis();
    let owner = state
        .store
        .subjects
        .identity_for_namespace(&address.namespace)
        .await?
        .ok_or_else(does_not_exist)?;
    // Credentials are optional: valid ones make the caller known, anything else is anonymous.
    let caller = auth::authenticate(state, request.headers()).await.ok();
    state.invocations.throttle(state, &owner).await?;
    let (resolved, action) = exported_action(state, &owner, address).await?;
    let annotations = &action.annotations;
    let custom = annotations.get_bool(WEB_CUSTOM_OPTIONS) == Some(true);
    *custom_options = custom;
    if request.method() == Method::OPTIONS && !custom {
        return Ok(StatusCode::OK.into_response());
    }
    if !(request.method() == Method::OPTIONS && custom) {
        check_whisk_auth(
            annotations.get(REQUIRE_WHISK_AUTH),
            request.headers(),
            caller.as_ref(),
        )?;
    }
    let max_payload = state.config.limits.max_payload_size;
    if let Some(length) = extract::declared_length(request.headers())
        && length > max_payload
    {
        return Err(ApiError::too_large("Request", length, max_payload));
    }
    let method = request.method().clone();
    let headers = request.headers().clone();
    let query = request.uri().query().map(str::to_owned);
    let body = axum::body::to_bytes(
        request.into_body(),
        usize::try_from(max_payload).unwrap_or(usize::MAX),
    )
    .await
    .map_err(|_| ApiError::too_large("Request", max_payload + 1, max_payload))?;
    let immutable: HashSet<String> = if action.is_final() {
        action
            .parameters
            .iter()
            .filter(|parameter| !parameter.value.is_null())
            .map(|parameter| parameter.key.clone())
            .collect()
    } else {
        HashSet::new()
    };
    let web_request = WebRequest {
        method: &method,
        headers: &headers,
        extra_path: &address.extra_path,
        query: query.as_deref(),
        body: &body,
        user: caller.as_ref().map(|identity| identity.namespace.as_str()),
    };
    let raw = annotations.get_bool(RAW_HTTP) == Some(true);
    let payload = request_parameters(&web_request, raw, &immutable)
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let binding = resolved
        .access
        .as_ref()
        .and_then(entitlement::PackageAccess::binding_path);
    let (activation_id, record) = if compose::runs_in_controller(&action) {
        let (activation_id, finished) = compose::start_sequence(
            state,
            SequenceCall {
                caller: owner.clone(),
                presented_key: None,
                sequence: action,
                revision: resolved.action.revision.to_string(),
                binding,
                payload,
                blocking: true,
                result_only: true,
                wait_ms: u64::try_from(WEB_WAIT.as_millis()).unwrap_or(u64::MAX),
                transaction_id: tid.as_str().to_owned(),
                accepted_at,
            },
        )
        .await?;
        let record = match tokio::time::timeout(WEB_WAIT, finished).await {
            Ok(Ok(record)) => record,
            _ => None,
        };
        (activation_id, record)
    } else {
        let started = invoke::start(
            state,
            Activation {
                caller: &owner,
                api_key: None,
                action: &action,
                revision: resolved.action.revision.to_string(),
                binding,
                payload,
                blocking: true,
                result_only: true,
                wait_ms: u64::try_from(WEB_WAIT.as_millis()).unwrap_or(u64::MAX),
                transaction_id: tid.as_str().to_owned(),
                accepted_at,
                cause: None,
                caused_by: None,
            },
        )
        .await?;
        let activation_id = started.activation_id.clone();
        let record = invoke::wait_for_record(state, started, WEB_WAIT).await?;
        (activation_id, record)
    };
    let mut response = match record {
        None => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"error": RESPONSE_NOT_READY, "code": tid.as_str()})),
        )
            .into_response(),
        Some(record) => respond(&record, address.extension),
    };
    if let Ok(value) = HeaderValue::from_str(activation_id.as_str()) {
        response.headers_mut().insert(ACTIVATION_ID_HEADER, value);
    }
    Ok(response)
}

/// The exported action the address names, as its owner sees it, or the one `404`.
async fn exported_action(
    state: &AppState,
    owner: &Identity,
    address: &WebAddress,
) -> ApiResult<(ResolvedAction, WhiskAction)> {
    let action_address = ActionAddress::parse(
        owner,
        &address.namespace,
        address.package.as_deref(),
        &address.action,
    )
    .map_err(|_| does_not_exist())?;
    let store = state.store.entities.as_ref();
    let access = entitlement::check(
        store,
        owner,
        Privilege::Activate,
        &action_address.resource(),
    )
    .await
    .map_err(|_| does_not_exist())?;
    let resolved = ResolvedAction::fetch(store, &action_address, access)
        .await
        .map_err(|_| does_not_exist())?;
    let action = resolved.merged();
    if !action.is_web_action() {
        return Err(does_not_exist());
    }
    Ok((resolved, action))
}

/// §11.2: `true` needs any valid credentials; a string or number must match the
/// `X-Require-Whisk-Auth` header; anything else denies.
fn check_whisk_auth(
    requirement: Option<&Value>,
    headers: &HeaderMap,
    caller: Option<&Identity>,
) -> ApiResult<()> {
    let allowed = match requirement {
        None | Some(Value::Bool(false)) => true,
        Some(Value::Bool(true)) => caller.is_some(),
        Some(Value::String(secret)) => presented_secret(headers).as_deref() == Some(secret),
        Some(Value::Number(number)) => {
            presented_secret(headers).as_deref() == Some(number.to_string().as_str())
        }
        Some(_) => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::authentication_missing())
    }
}

fn presented_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUIRE_WHISK_AUTH_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// §11.4: success and application errors are shaped; everything else is one opaque 400.
fn respond(record: &WhiskActivation, extension: Extension) -> Response {
    let result = record.response.result.clone().unwrap_or(Value::Null);
    let shaped = match record.response.status() {
        ActivationStatus::Success => shape(extension, &result),
        ActivationStatus::ApplicationError => {
            let error = result.get("error").cloned().unwrap_or(Value::Null);
            shape(extension, &error)
        }
        ActivationStatus::DeveloperError | ActivationStatus::WhiskInternalError => {
            return ApiError::bad_request(PROCESSING_ERROR).into_response();
        }
    };
    match shaped {
        Ok(response) => response.map(Body::new),
        Err(error) => ApiError::new(error.status(), error.to_string()).into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with_secret(secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            REQUIRE_WHISK_AUTH_HEADER,
            HeaderValue::from_str(secret).unwrap(),
        );
        headers
    }

    fn someone() -> Identity {
        Identity {
            subject: "guest".into(),
            namespace: "guest".into(),
            uuid: "u".into(),
            limits: Default::default(),
        }
    }

    #[test]
    fn require_whisk_auth_rules() {
        let none = HeaderMap::new();
        assert!(check_whisk_auth(None, &none, None).is_ok());
        assert!(check_whisk_auth(Some(&json!(false)), &none, None).is_ok());
        assert!(check_whisk_auth(Some(&json!(true)), &none, None).is_err());
        assert!(check_whisk_auth(Some(&json!(true)), &none, Some(&someone())).is_ok());
        assert!(check_whisk_auth(Some(&json!("s3cret")), &with_secret("s3cret"), None).is_ok());
        assert!(check_whisk_auth(Some(&json!("s3cret")), &with_secret("other"), None).is_err());
        assert!(check_whisk_auth(Some(&json!(1234)), &with_secret("1234"), None).is_ok());
        let denied = check_whisk_auth(Some(&json!([1])), &with_secret("[1]"), Some(&someone()));
        assert_eq!(denied.unwrap_err().status(), StatusCode::UNAUTHORIZED);
    }
}
