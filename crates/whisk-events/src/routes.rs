//! The feed provider's HTTP side: the routes the feed actions call with the user's key
//! (`/api/v1/feeds/...`) and the public webhook URLs (`/api/v1/webhooks/<64 hex>`).
//!
//! They sit in front of the controller's application, so they do their own authentication
//! (the same subject lookup the controller uses) and answer `{"error": ...}` bodies the feed
//! actions hand back as their application error.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};
use tower::ServiceExt;
use whisk_controller::api::triggers::{Fired, fire_with_identity};
use whisk_model::EntityName;
use whisk_model::identity::Identity;

use crate::Events;
use crate::schedule::{AlarmKind, AlarmSpec, DeleteAfterFire};
use crate::signature::Verifier;
use crate::store::{AlarmRegistration, WebhookRegistration};

/// Path prefix of the public webhook URLs.
pub const WEBHOOK_PATH: &str = "/api/v1/webhooks/";

/// The routes, to be merged in front of the controller's application.
pub fn router(events: Events) -> Router {
    Router::new()
        .route("/api/v1/feeds/alarms/{kind}", post(alarm_feed))
        .route("/api/v1/feeds/webhooks", post(webhook_feed))
        .route("/api/v1/webhooks/{token}", post(webhook_fire))
        .with_state(events)
}

/// A failure, answered as `{"error": message}`.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl Failure {
    fn bad_request(message: impl Into<String>) -> Self {
        Failure(StatusCode::BAD_REQUEST, message.into())
    }
    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "feed provider failure");
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the feed provider failed".into(),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Response, Failure>;

fn ok(body: Value) -> Answer {
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// A feed call: who, which event, which trigger, and the rest of the parameters.
struct FeedCall {
    identity: Identity,
    event: String,
    namespace: String,
    name: String,
    params: Map<String, Value>,
}

impl FeedCall {
    fn trigger(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Authenticates the caller and reads `lifecycleEvent` and `triggerName` (`/ns/t`, `/_/t`,
/// `ns/t` or `t`); the trigger must be in the caller's namespace.
async fn feed_call(
    events: &Events,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<FeedCall, Failure> {
    let identity = whisk_controller::auth::authenticate(&events.app, headers)
        .await
        .map_err(|error| Failure(error.status(), error.message().to_owned()))?;
    let mut params = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(params)) => params,
        _ => {
            return Err(Failure::bad_request(
                "the request body must be a JSON object",
            ));
        }
    };
    params.remove("authKey");
    let event = match params.remove("lifecycleEvent") {
        Some(Value::String(event)) => event.to_ascii_uppercase(),
        _ => return Err(Failure::bad_request("lifecycleEvent is required")),
    };
    let trigger_name = match params.remove("triggerName") {
        Some(Value::String(name)) => name,
        _ => return Err(Failure::bad_request("triggerName is required")),
    };
    let parts: Vec<&str> = trigger_name.trim_start_matches('/').split('/').collect();
    let (namespace, name) = match parts.as_slice() {
        [name] => (identity.namespace.clone(), (*name).to_owned()),
        [namespace, name] if *namespace == "_" => (identity.namespace.clone(), (*name).to_owned()),
        [namespace, name] => ((*namespace).to_owned(), (*name).to_owned()),
        _ => {
            return Err(Failure::bad_request(format!(
                "triggerName '{trigger_name}' is not valid"
            )));
        }
    };
    if EntityName::new(name.clone()).is_err() {
        return Err(Failure::bad_request(format!(
            "triggerName '{trigger_name}' is not valid"
        )));
    }
    if namespace != identity.namespace {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            format!("the trigger /{namespace}/{name} is not in your namespace"),
        ));
    }
    Ok(FeedCall {
        identity,
        event,
        namespace,
        name,
        params,
    })
}

/// Checks the trigger exists and the caller may read it, by asking the controller with the
/// caller's own credentials (as the alarms provider GETs the trigger with the user's key).
async fn check_trigger(
    events: &Events,
    headers: &HeaderMap,
    call: &FeedCall,
) -> Result<(), Failure> {
    let mut request = Request::builder().method(Method::GET).uri(format!(
        "/api/v1/namespaces/{}/triggers/{}",
        call.namespace, call.name
    ));
    if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let request = request.body(Body::empty()).map_err(Failure::internal)?;
    let response = events
        .controller
        .clone()
        .oneshot(request)
        .await
        .map_err(Failure::internal)?;
    match response.status() {
        StatusCode::OK => Ok(()),
        StatusCode::NOT_FOUND => Err(Failure::bad_request(format!(
            "trigger /{} does not exist",
            call.trigger()
        ))),
        status => Err(Failure(
            status,
            format!("trigger /{} cannot be read with this key", call.trigger()),
        )),
    }
}

async fn alarm_feed(
    State(events): State<Events>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    alarm_event(&events, &kind, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn alarm_event(events: &Events, kind: &str, headers: &HeaderMap, body: &Bytes) -> Answer {
    let kind = AlarmKind::from_name(kind)
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no alarm feed '{kind}'")))?;
    let call = feed_call(events, headers, body).await?;
    let now = events.clock.now_millis();
    let trigger = call.trigger();
    match call.event.as_str() {
        "CREATE" | "UPDATE" => {
            check_trigger(events, headers, &call).await?;
            let params = if call.event == "UPDATE" {
                let existing = events
                    .feeds
                    .get_alarm(&trigger)
                    .await
                    .map_err(Failure::internal)?
                    .ok_or_else(|| not_registered(&trigger))?;
                let mut merged = spec_params(&existing.spec);
                merged.extend(call.params.clone());
                merged
            } else {
                call.params.clone()
            };
            let spec = AlarmSpec::from_params(kind, &params, now)
                .map_err(|error| Failure::bad_request(error.to_string()))?;
            let next_fire = spec
                .next_after(now)
                .map_err(|error| Failure::bad_request(error.to_string()))?
                .ok_or_else(|| {
                    Failure::bad_request("the schedule has no fire time in the future")
                })?;
            events
                .feeds
                .put_alarm(&AlarmRegistration {
                    trigger: trigger.clone(),
                    namespace: call.namespace.clone(),
                    name: call.name.clone(),
                    owner_uuid: call.identity.uuid.clone(),
                    spec,
                    next_fire: Some(next_fire),
                    active: true,
                    reason: None,
                    changed: now,
                    last_fire: None,
                })
                .await
                .map_err(Failure::internal)?;
            events.scheduler.wake();
            tracing::info!(%trigger, event = %call.event, next_fire, "alarm registered");
            ok(json!({"status": "success"}))
        }
        "READ" => {
            let alarm = events
                .feeds
                .get_alarm(&trigger)
                .await
                .map_err(Failure::internal)?
                .ok_or_else(|| not_registered(&trigger))?;
            let mut config = spec_params(&alarm.spec);
            config.insert("name".into(), json!(alarm.name));
            config.insert("namespace".into(), json!(alarm.namespace));
            config.insert("payload".into(), Value::Object(alarm.spec.payload.clone()));
            config.remove("trigger_payload");
            ok(json!({
                "config": config,
                "status": {
                    "active": alarm.active,
                    "dateChanged": alarm.changed,
                    "dateChangedISO": iso(alarm.changed),
                    "reason": alarm.reason,
                    "nextFire": alarm.next_fire,
                },
            }))
        }
        "DELETE" => {
            if !events
                .feeds
                .delete_alarm(&trigger)
                .await
                .map_err(Failure::internal)?
            {
                return Err(not_registered(&trigger));
            }
            events.scheduler.wake();
            tracing::info!(%trigger, "alarm removed");
            ok(json!({"status": "success"}))
        }
        "PAUSE" | "UNPAUSE" => {
            let mut alarm = events
                .feeds
                .get_alarm(&trigger)
                .await
                .map_err(Failure::internal)?
                .ok_or_else(|| not_registered(&trigger))?;
            if call.event == "PAUSE" {
                alarm.active = false;
                alarm.reason = Some("paused".into());
            } else {
                alarm.next_fire = alarm
                    .spec
                    .next_after(now)
                    .map_err(|error| Failure::bad_request(error.to_string()))?;
                alarm.active = alarm.next_fire.is_some();
                alarm.reason = (!alarm.active).then(|| "schedule finished".to_owned());
            }
            alarm.changed = now;
            events
                .feeds
                .put_alarm(&alarm)
                .await
                .map_err(Failure::internal)?;
            events.scheduler.wake();
            ok(json!({"status": "success"}))
        }
        other => Err(Failure::bad_request(format!(
            "unsupported lifecycleEvent {other}"
        ))),
    }
}

fn not_registered(trigger: &str) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!("no feed is registered for trigger /{trigger}"),
    )
}

/// A stored spec as the feed parameters it came from (for UPDATE merges and READ).
fn spec_params(spec: &AlarmSpec) -> Map<String, Value> {
    let mut params = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            params.insert(key.to_owned(), value);
        }
    };
    put("cron", spec.cron.clone().map(Value::String));
    put("timezone", spec.timezone.clone().map(Value::String));
    put("minutes", spec.minutes.map(Value::from));
    put("date", spec.date.map(Value::from));
    put("startDate", spec.start_date.map(Value::from));
    put("stopDate", spec.stop_date.map(Value::from));
    put(
        "deleteAfterFire",
        match spec.delete_after_fire {
            DeleteAfterFire::No => None,
            DeleteAfterFire::Trigger => Some(json!("true")),
            DeleteAfterFire::Rules => Some(json!("rules")),
        },
    );
    put("trigger_payload", Some(Value::Object(spec.payload.clone())));
    params
}

fn iso(millis: u64) -> Option<String> {
    let millis = i64::try_from(millis).ok()?;
    Utc.timestamp_millis_opt(millis)
        .single()
        .map(|date| date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

async fn webhook_feed(State(events): State<Events>, headers: HeaderMap, body: Bytes) -> Response {
    webhook_event(&events, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn webhook_event(events: &Events, headers: &HeaderMap, body: &Bytes) -> Answer {
    let call = feed_call(events, headers, body).await?;
    match call.event.as_str() {
        "CREATE" | "UPDATE" => {
            check_trigger(events, headers, &call).await?;
            let verifier = verifier_param(&call.params)?;
            let existing = events
                .feeds
                .webhook_for(&call.namespace, &call.name)
                .await
                .map_err(Failure::internal)?;
            let token = match (&existing, call.event.as_str()) {
                (Some(existing), "UPDATE") => existing.token.clone(),
                (None, "UPDATE") => return Err(not_registered(&call.trigger())),
                _ => new_token(),
            };
            events
                .feeds
                .put_webhook(&WebhookRegistration {
                    token: token.clone(),
                    namespace: call.namespace.clone(),
                    name: call.name.clone(),
                    owner_uuid: call.identity.uuid.clone(),
                    verifier: verifier.clone(),
                })
                .await
                .map_err(Failure::internal)?;
            tracing::info!(trigger = %call.trigger(), provider = verifier.provider(), "webhook registered");
            ok(json!({
                "status": "success",
                "url": events.webhook_url(&token),
                "provider": verifier.provider(),
            }))
        }
        "READ" => {
            let webhook = events
                .feeds
                .webhook_for(&call.namespace, &call.name)
                .await
                .map_err(Failure::internal)?
                .ok_or_else(|| not_registered(&call.trigger()))?;
            ok(json!({
                "config": {
                    "name": webhook.name,
                    "namespace": webhook.namespace,
                    "provider": webhook.verifier.provider(),
                    "url": events.webhook_url(&webhook.token),
                },
                "status": {"active": true},
            }))
        }
        "DELETE" => {
            if !events
                .feeds
                .delete_webhook(&call.namespace, &call.name)
                .await
                .map_err(Failure::internal)?
            {
                return Err(not_registered(&call.trigger()));
            }
            ok(json!({"status": "success"}))
        }
        other => Err(Failure::bad_request(format!(
            "unsupported lifecycleEvent {other}"
        ))),
    }
}

/// `github_secret` or `slack_signing_secret` (at most one); neither is an unsigned webhook.
fn verifier_param(params: &Map<String, Value>) -> Result<Verifier, Failure> {
    let secret = |name: &str| -> Result<Option<String>, Failure> {
        match params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(secret)) if !secret.is_empty() => Ok(Some(secret.clone())),
            Some(_) => Err(Failure::bad_request(format!(
                "{name} must be a non-empty string"
            ))),
        }
    };
    match (secret("github_secret")?, secret("slack_signing_secret")?) {
        (Some(_), Some(_)) => Err(Failure::bad_request(
            "give either github_secret or slack_signing_secret, not both",
        )),
        (Some(secret), None) => Ok(Verifier::GitHub { secret }),
        (None, Some(secret)) => Ok(Verifier::Slack { secret }),
        (None, None) => Ok(Verifier::None),
    }
}

/// 32 random bytes as 64 hex digits: the URL is the capability, so it must not be guessable.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn is_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

async fn webhook_fire(
    State(events): State<Events>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fire_webhook(&events, &token, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn fire_webhook(events: &Events, token: &str, headers: &HeaderMap, body: &Bytes) -> Answer {
    let unknown = || Failure(StatusCode::NOT_FOUND, "no such webhook".to_owned());
    if !is_token(token) {
        return Err(unknown());
    }
    let webhook = events
        .feeds
        .webhook_by_token(token)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(unknown)?;
    let now_seconds = events.clock.now_millis() / 1000;
    if let Err(error) = webhook.verifier.verify(headers, body, now_seconds) {
        tracing::warn!(trigger = %format!("{}/{}", webhook.namespace, webhook.name), %error, "webhook signature refused");
        return Err(Failure(StatusCode::UNAUTHORIZED, error.to_string()));
    }
    let mut payload = webhook_payload(headers, body);
    // Slack checks a new Events API URL with a challenge it expects back; nothing fires.
    if payload.get("type").and_then(Value::as_str) == Some("url_verification")
        && let Some(challenge) = payload.get("challenge")
    {
        return ok(json!({ "challenge": challenge }));
    }
    payload.insert(
        "__ow_headers".into(),
        Value::Object(forwarded_headers(headers)),
    );
    let identity = events
        .owner(&webhook.namespace, &webhook.owner_uuid)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(|| {
            Failure(
                StatusCode::FORBIDDEN,
                "the webhook's owner key is no longer valid".to_owned(),
            )
        })?;
    let namespace = EntityName::namespace(webhook.namespace.clone())
        .map_err(|error| Failure::internal(error.to_string()))?;
    let name = EntityName::new(webhook.name.clone())
        .map_err(|error| Failure::internal(error.to_string()))?;
    let transaction = events.app.ids.transaction_id();
    match fire_with_identity(
        &events.app,
        &identity,
        &namespace,
        &name,
        payload,
        &transaction,
    )
    .await
    {
        Ok(Fired::Activation(id)) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"activationId": id.as_str()})),
        )
            .into_response()),
        Ok(Fired::NoActiveRule) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(error) => Err(Failure(error.status(), error.message().to_owned())),
    }
}

/// The body as the fire payload: a JSON object as it is, a form (Slack's slash commands) as
/// its fields, anything else as `{"payload": text}`.
fn webhook_payload(headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) {
        return object;
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if form {
        return form_urlencoded::parse(body)
            .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
            .collect();
    }
    let mut payload = Map::new();
    if !body.is_empty() {
        payload.insert(
            "payload".into(),
            Value::String(String::from_utf8_lossy(body).into_owned()),
        );
    }
    payload
}

/// The request's headers (lower-cased), less credentials, for the rules' actions.
fn forwarded_headers(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "cookie"))
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|value| (name.as_str().to_owned(), Value::String(value.to_owned())))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_lowercase_hex_and_differ() {
        let token = new_token();
        assert!(is_token(&token));
        assert_ne!(token, new_token());
        assert!(!is_token(&token.to_uppercase()));
        assert!(!is_token(&token[1..]));
    }

    #[test]
    fn webhook_bodies_become_objects() {
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert_eq!(
            Value::Object(webhook_payload(&HeaderMap::new(), br#"{"a":1}"#)),
            json!({"a": 1})
        );
        assert_eq!(
            Value::Object(webhook_payload(&form, b"text=hi+there&user=x")),
            json!({"text": "hi there", "user": "x"})
        );
        assert_eq!(
            Value::Object(webhook_payload(&HeaderMap::new(), b"plain")),
            json!({"payload": "plain"})
        );
        assert_eq!(
            Value::Object(webhook_payload(&HeaderMap::new(), b"")),
            json!({})
        );
    }

    #[test]
    fn forwarded_headers_leave_credentials_out() {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        headers.insert(header::COOKIE, "a=b".parse().unwrap());
        assert_eq!(
            Value::Object(forwarded_headers(&headers)),
            json!({"x-github-event": "push"})
        );
    }

    #[test]
    fn verifier_parameters() {
        let params = |value: Value| value.as_object().unwrap().clone();
        assert_eq!(verifier_param(&Map::new()).unwrap(), Verifier::None);
        assert_eq!(
            verifier_param(&params(json!({"github_secret": "g"}))).unwrap(),
            Verifier::GitHub { secret: "g".into() }
        );
        assert_eq!(
            verifier_param(&params(json!({"slack_signing_secret": "s"}))).unwrap(),
            Verifier::Slack { secret: "s".into() }
        );
        for bad in [
            json!({"github_secret": "g", "slack_signing_secret": "s"}),
            json!({"github_secret": ""}),
            json!({"github_secret": 3}),
        ] {
            assert_eq!(
                verifier_param(&params(bad)).unwrap_err().0,
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn stored_specs_read_back_as_their_parameters() {
        let params = json!({"cron": "0 * * * *", "timezone": "UTC", "trigger_payload": {"x": 1}});
        let spec =
            AlarmSpec::from_params(AlarmKind::Alarm, params.as_object().unwrap(), 0).unwrap();
        let back = spec_params(&spec);
        let again = AlarmSpec::from_params(AlarmKind::Alarm, &back, 0).unwrap();
        assert_eq!(again, spec);
    }
}
