//! Trigger firing (REFERENCE §12.3) through the router, the balancer and an in-process bus, with
//! a scripted stand-in invoker that echoes each activation's input.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use whisk_bus::{Bus, InProcessBus};
use whisk_controller::api::triggers::{self, Fired};
use whisk_controller::{
    AcceptAnyCode, AppState, BalancerConfig, ControllerConfig, Invocations, LoadBalancer,
    RandomIds, SystemClock,
};
use whisk_model::{AuthKey, EntityName, NamespaceLimits, SystemLimits};

use common::invoker::{StandIn, app_with_stand_in, echo, wait_healthy};
use common::{GUEST, OTHER, TestApp};

async fn app_with(config: ControllerConfig) -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with_stand_in(config, echo()).await
}

async fn app() -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with(ControllerConfig::default()).await
}

async fn put_ok(app: &TestApp, path: &str, credentials: &str, body: Value) {
    let response = app.put(path, credentials, body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
}

async fn action(app: &TestApp, path: &str) {
    put_ok(
        app,
        &format!("/api/v1/namespaces/_/actions/{path}"),
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"}}),
    )
    .await;
}

async fn trigger(app: &TestApp, name: &str, parameters: Value) {
    put_ok(
        app,
        &format!("/api/v1/namespaces/_/triggers/{name}"),
        GUEST,
        json!({"parameters": parameters}),
    )
    .await;
}

async fn rule(app: &TestApp, name: &str, trigger: &str, action: &str) {
    put_ok(
        app,
        &format!("/api/v1/namespaces/_/rules/{name}"),
        GUEST,
        json!({"trigger": format!("/_/{trigger}"), "action": format!("/_/{action}")}),
    )
    .await;
}

/// Polls until the record exists (the trigger record is written in the background).
async fn record(app: &TestApp, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = app
            .get(&format!("/api/v1/namespaces/_/activations/{id}"), GUEST)
            .await;
        if response.status == StatusCode::OK {
            return response.json();
        }
        assert!(tokio::time::Instant::now() < deadline, "no record {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_lines(record: &Value) -> Vec<Value> {
    record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| serde_json::from_str(line.as_str().unwrap()).unwrap())
        .collect()
}

fn fired_id(response: &common::TestResponse) -> String {
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    let id = response.json()["activationId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(response.header("x-openwhisk-activation-id"), Some(&*id));
    id
}

#[tokio::test]
async fn each_active_rule_starts_its_action_and_the_record_logs_one_line_per_rule() {
    let (app, _balancer, mut stand_in) = app().await;
    action(&app, "hello").await;
    put_ok(&app, "/api/v1/namespaces/_/packages/pkg", GUEST, json!({})).await;
    action(&app, "pkg/inner").await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/chain",
        GUEST,
        json!({"exec": {"kind": "sequence", "components": ["/_/hello", "/_/pkg/inner"]}}),
    )
    .await;
    trigger(
        &app,
        "t",
        json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}]),
    )
    .await;
    rule(&app, "r1", "t", "hello").await;
    rule(&app, "r2", "t", "pkg/inner").await;
    rule(&app, "r3", "t", "chain").await;

    let response = app
        .post(
            "/api/v1/namespaces/_/triggers/t",
            GUEST,
            Some(json!({"b": 20, "c": 30})),
        )
        .await;
    let id = fired_id(&response);
    let record = record(&app, &id).await;
    assert_eq!(record["name"], "t");
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["subject"], "guest");
    assert_eq!(record["response"]["result"], json!({"b": 20, "c": 30}));
    assert_eq!(record["response"]["success"], json!(true));
    assert_eq!(record["annotations"], json!([]));
    assert!(record.get("end").is_none(), "trigger records have no end");
    assert!(record.get("duration").is_none());

    let lines = log_lines(&record);
    assert_eq!(lines.len(), 3);
    let by_rule = |rule: &str| {
        lines
            .iter()
            .find(|line| line["rule"] == rule)
            .unwrap_or_else(|| panic!("no line for {rule}: {lines:?}"))
            .clone()
    };
    let plain = by_rule("guest/r1");
    assert_eq!(plain["action"], "guest/hello");
    assert_eq!(plain["statusCode"], 0);
    assert_eq!(plain["success"], true);
    assert_eq!(by_rule("guest/r2")["action"], "guest/pkg/inner");
    let sequence = by_rule("guest/r3");
    assert_eq!(sequence["statusCode"], 0);
    let sequence_record = record_of(&app, &sequence).await;
    assert_eq!(sequence_record["name"], "chain");
    assert!(sequence_record.get("cause").is_none());

    // hello, pkg/inner and the sequence's two components.
    let mut messages = Vec::new();
    for _ in 0..4 {
        messages.push(stand_in.next_arrival().await);
    }
    let direct = messages
        .iter()
        .find(|m| m.activation_id.as_str() == plain["activationId"].as_str().unwrap())
        .unwrap();
    assert_eq!(direct.action.to_string(), "/guest/hello");
    assert!(!direct.blocking);
    assert!(direct.cause.is_none(), "no cause links back to the trigger");
    assert_eq!(direct.content["a"], 1);
    assert_eq!(
        direct.content["b"], 20,
        "the body wins over trigger parameters"
    );
    assert_eq!(direct.content["c"], 30);
    let headers = direct.content["__ow_headers"].as_object().unwrap();
    assert_eq!(headers["content-type"], "application/json");
    assert!(!headers.contains_key("authorization"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !app.store.activations.pending().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "pending notes left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn record_of(app: &TestApp, line: &Value) -> Value {
    record(app, line["activationId"].as_str().unwrap()).await
}

#[tokio::test]
async fn without_an_active_rule_the_answer_is_204_and_nothing_is_recorded() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "hello").await;
    trigger(&app, "quiet", json!([])).await;
    let none = app
        .post("/api/v1/namespaces/_/triggers/quiet", GUEST, None)
        .await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
    assert!(none.text.is_empty());

    rule(&app, "r", "quiet", "hello").await;
    let disabled = app
        .post(
            "/api/v1/namespaces/_/rules/r",
            GUEST,
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    let inactive = app
        .post(
            "/api/v1/namespaces/_/triggers/quiet",
            GUEST,
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(inactive.status, StatusCode::NO_CONTENT);

    let listed = app.get("/api/v1/namespaces/_/activations", GUEST).await;
    assert_eq!(listed.json(), json!([]));
    assert!(app.store.activations.pending().await.unwrap().is_empty());
    assert!(stand_in.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn fires_per_minute_has_its_own_count_with_openwhisks_429() {
    let limits = SystemLimits {
        fires_per_minute: 2,
        invocations_per_minute: 100,
        ..SystemLimits::default()
    };
    let config = ControllerConfig::new(limits, ControllerConfig::default().manifest);
    let (app, _balancer, _stand_in) = app_with(config).await;
    trigger(&app, "t", json!([])).await;
    for _ in 0..2 {
        let fired = app
            .post("/api/v1/namespaces/_/triggers/t", GUEST, None)
            .await;
        assert_eq!(fired.status, StatusCode::NO_CONTENT);
    }
    let refused = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, None)
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.error(),
        "Too many requests in the last minute (count: 3, allowed: 2)."
    );
    // Counted before the lookup: a missing trigger still uses up quota.
    let missing = app
        .post("/api/v1/namespaces/_/triggers/nope", GUEST, None)
        .await;
    assert_eq!(missing.status, StatusCode::TOO_MANY_REQUESTS);
    // Another namespace and action invocations have their own counts.
    put_ok(&app, "/api/v1/namespaces/_/triggers/t", OTHER, json!({})).await;
    let other = app
        .post("/api/v1/namespaces/_/triggers/t", OTHER, None)
        .await;
    assert_eq!(other.status, StatusCode::NO_CONTENT);
    action(&app, "hello").await;
    let invoked = app
        .post("/api/v1/namespaces/_/actions/hello", GUEST, None)
        .await;
    assert_eq!(invoked.status, StatusCode::ACCEPTED, "{}", invoked.text);
}

#[tokio::test]
async fn refusals_before_anything_runs() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "hello").await;
    trigger(&app, "t", json!([])).await;
    rule(&app, "r", "t", "hello").await;

    let missing = app
        .post("/api/v1/namespaces/_/triggers/nope", GUEST, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "The requested resource does not exist.");

    let foreign = app
        .post("/api/v1/namespaces/guest/triggers/t", OTHER, None)
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);

    let big = "x".repeat(1024 * 1024);
    let oversized = app
        .post(
            "/api/v1/namespaces/_/triggers/t",
            GUEST,
            Some(json!({"big": big})),
        )
        .await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        oversized.error(),
        "Request larger than allowed: 1048586 > 1048576 bytes."
    );

    let not_object = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, Some(json!([1])))
        .await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);

    let listed = app.get("/api/v1/namespaces/_/activations", GUEST).await;
    assert_eq!(listed.json(), json!([]));
    assert!(stand_in.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_rule_action_is_logged_with_status_1_and_the_others_still_run() {
    let limits = SystemLimits {
        invocations_per_minute: 1,
        ..SystemLimits::default()
    };
    let config = ControllerConfig::new(limits, ControllerConfig::default().manifest);
    let (app, _balancer, _stand_in) = app_with(config).await;
    action(&app, "hello").await;
    action(&app, "gone").await;
    trigger(&app, "t", json!([])).await;
    rule(&app, "a-gone", "t", "gone").await;
    rule(&app, "b-hello", "t", "hello").await;
    rule(&app, "c-hello", "t", "hello").await;
    let deleted = app.delete("/api/v1/namespaces/_/actions/gone", GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK);

    let id = fired_id(
        &app.post("/api/v1/namespaces/_/triggers/t", GUEST, None)
            .await,
    );
    let record = record(&app, &id).await;
    let lines = log_lines(&record);
    // Rules run in rule id order: the missing action (which still uses up the one invocation of
    // this minute), then two that the per-minute invocation throttle refuses.
    assert_eq!(
        lines[0],
        json!({"statusCode": 1, "success": false, "rule": "guest/a-gone", "action": "guest/gone",
               "error": "The requested resource does not exist."})
    );
    assert_eq!(
        lines[1],
        json!({"statusCode": 1, "success": false, "rule": "guest/b-hello", "action": "guest/hello",
               "error": "Too many requests in the last minute (count: 2, allowed: 1)."})
    );
    assert_eq!(lines[2]["statusCode"], 1);
    assert_eq!(lines.len(), 3);
}

#[tokio::test]
async fn a_platform_failure_is_logged_with_status_3() {
    // No invocation path at all: every start is a 503.
    let app = TestApp::new().await;
    action(&app, "hello").await;
    trigger(&app, "t", json!([])).await;
    rule(&app, "r", "t", "hello").await;
    let id = fired_id(
        &app.post("/api/v1/namespaces/_/triggers/t", GUEST, None)
            .await,
    );
    let record = record(&app, &id).await;
    assert_eq!(
        log_lines(&record),
        vec![json!({
            "statusCode": 3, "success": false, "rule": "guest/r", "action": "guest/hello",
            "error": "The server is currently unavailable (because it is overloaded or down for maintenance)."
        })]
    );
    assert!(app.store.activations.pending().await.unwrap().is_empty());
}

/// A controller state built here (rather than through [`TestApp`]) so the test can call the
/// library function next to the router.
async fn state_with_stand_in() -> (AppState, StandIn, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = whisk_store::open_sqlite(dir.path()).unwrap();
    store
        .subjects
        .create_subject("guest", "guest", &AuthKey::parse(GUEST).unwrap())
        .await
        .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
    balancer.start().await.unwrap();
    let stand_in = StandIn::start(bus, store.clone(), 0, 2048, echo()).await;
    wait_healthy(&balancer, 1).await;
    let state = AppState {
        store,
        config: Arc::new(ControllerConfig::default()),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        invocations: Arc::new(Invocations::new(balancer)),
        code_check: Arc::new(AcceptAnyCode),
    };
    (state, stand_in, dir)
}

#[tokio::test]
async fn fire_with_identity_fires_without_http_and_applies_the_same_checks() {
    let (state, mut stand_in, _dir) = state_with_stand_in().await;
    let router = whisk_controller::router(state.clone());
    let request = |method: &str, path: &str, body: Value| {
        use base64::Engine;
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(GUEST)
                ),
            )
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    };
    use tower::ServiceExt;
    for (path, body) in [
        (
            "/api/v1/namespaces/_/actions/hello",
            json!({"exec": {"kind": "nodejs:20", "code": "x"}}),
        ),
        (
            "/api/v1/namespaces/_/triggers/tick",
            json!({"parameters": [{"key": "p", "value": "trigger"}]}),
        ),
        (
            "/api/v1/namespaces/_/rules/r",
            json!({"trigger": "/_/tick", "action": "/_/hello"}),
        ),
    ] {
        let response = router
            .clone()
            .oneshot(request("PUT", path, body))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let identity = state
        .store
        .subjects
        .authenticate(&AuthKey::parse(GUEST).unwrap())
        .await
        .unwrap()
        .unwrap();
    let guest = EntityName::namespace("guest".to_string()).unwrap();
    let tick = EntityName::new("tick").unwrap();
    let payload = json!({"p": "payload", "q": 1}).as_object().unwrap().clone();
    let fired =
        triggers::fire_with_identity(&state, &identity, &guest, &tick, payload, "tid-alarm")
            .await
            .unwrap();
    let Fired::Activation(id) = fired else {
        panic!("expected an activation, got {fired:?}");
    };
    let message = stand_in.next_arrival().await;
    assert_eq!(message.content["p"], "payload");
    assert_eq!(message.content["q"], 1);
    assert!(
        message.content.get("__ow_headers").is_none(),
        "no HTTP request, no headers"
    );
    assert_eq!(message.transaction_id, "tid-alarm");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stored = loop {
        if let Some(stored) = state
            .store
            .activations
            .get("guest", id.as_str())
            .await
            .unwrap()
        {
            break stored;
        }
        assert!(tokio::time::Instant::now() < deadline, "no trigger record");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stored["name"], "tick");
    assert_eq!(stored["end"], 0);
    assert_eq!(stored["logs"].as_array().unwrap().len(), 1);

    let missing = EntityName::new("nope").unwrap();
    let error = triggers::fire_with_identity(
        &state,
        &identity,
        &guest,
        &missing,
        Default::default(),
        "tid",
    )
    .await
    .unwrap_err();
    assert_eq!(error.status(), StatusCode::NOT_FOUND);
    let big = json!({"big": "x".repeat(1024 * 1024)})
        .as_object()
        .unwrap()
        .clone();
    let error = triggers::fire_with_identity(&state, &identity, &guest, &tick, big, "tid")
        .await
        .unwrap_err();
    assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let other = EntityName::namespace("other".to_string()).unwrap();
    let error =
        triggers::fire_with_identity(&state, &identity, &other, &tick, Default::default(), "tid")
            .await
            .unwrap_err();
    assert_eq!(error.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_rule_action_is_invoked_with_the_firing_users_rights() {
    let (app, _balancer, stand_in) = app().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/shared",
        OTHER,
        json!({"publish": true}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/shared/act",
        OTHER,
        json!({"exec": {"kind": "nodejs:20", "code": "x"}}),
    )
    .await;
    trigger(&app, "t", json!([])).await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/other/shared/act"}),
    )
    .await;
    // Public: the firing user may invoke it, in their own namespace.
    let id = fired_id(
        &app.post("/api/v1/namespaces/_/triggers/t", GUEST, None)
            .await,
    );
    let line = log_lines(&record(&app, &id).await).remove(0);
    assert_eq!(line["statusCode"], 0, "{line}");
    assert_eq!(line["action"], "other/shared/act");
    let invoked = record_of(&app, &line).await;
    assert_eq!(invoked["namespace"], "guest");
    assert_eq!(stand_in.received.lock().unwrap()[0].user.subject, "guest");

    // No longer shared: refused like a direct invoke would be.
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/shared?overwrite=true",
        OTHER,
        json!({"publish": false}),
    )
    .await;
    let id = fired_id(
        &app.post("/api/v1/namespaces/_/triggers/t", GUEST, None)
            .await,
    );
    let record = record(&app, &id).await;
    assert_eq!(
        record["response"]["result"],
        json!({}),
        "no body, no result"
    );
    let line = log_lines(&record).remove(0);
    assert_eq!(line["statusCode"], 1, "{line}");
    assert_eq!(line["success"], false);
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .starts_with("The supplied authentication is not authorized to access"),
        "{line}"
    );
    assert_eq!(stand_in.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_namespace_limit_on_fires_per_minute_wins_over_the_system_one() {
    let (app, _balancer, _stand_in) = app().await;
    app.store
        .subjects
        .set_limits(
            "guest",
            &NamespaceLimits {
                fires_per_minute: Some(1),
                ..NamespaceLimits::default()
            },
        )
        .await
        .unwrap();
    trigger(&app, "t", json!([])).await;
    let first = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, None)
        .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    let second = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, None)
        .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        second.error(),
        "Too many requests in the last minute (count: 2, allowed: 1)."
    );
}
