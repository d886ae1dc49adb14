//! The invoke path through the router, the balancer and an in-process bus, with a scripted
//! stand-in invoker in place of containers.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use whisk_controller::invoke::LOST_ACTIVATION;
use whisk_controller::{BalancerConfig, ControllerConfig, LoadBalancer, close_unfinished};
use whisk_model::ActivationResponse;

use common::invoker::{Reply, Script, StandIn, app_with_stand_in, echo, wait_healthy};
use common::{GUEST, OTHER, TestApp};

const HELLO: &str = "/api/v1/namespaces/_/actions/hello";

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_hello(app: &TestApp, extra: Value) {
    let mut body = json!({
        "exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"},
        "parameters": [{"key": "fixed", "value": "action"}, {"key": "shared", "value": "action"}]
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let created = app.put(HELLO, GUEST, body).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
}

async fn app_with_invoker(
    config: ControllerConfig,
    script: Box<Script>,
) -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with_stand_in(config, script).await
}

#[tokio::test]
async fn blocking_invoke_answers_with_the_record_and_its_id() {
    let (app, _balancer, stand_in) = app_with_invoker(ControllerConfig::default(), echo()).await;
    create_hello(&app, json!({})).await;

    let response = app
        .post(
            &format!("{HELLO}?blocking=true"),
            GUEST,
            Some(json!({"shared": "request", "extra": 1})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let record = response.json();
    let id = record["activationId"].as_str().unwrap().to_owned();
    assert_eq!(
        response.header("x-openwhisk-activation-id"),
        Some(id.as_str())
    );
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["name"], "hello");
    assert_eq!(record["response"]["status"], "success");
    assert_eq!(record["response"]["success"], true);
    // The request overrides the action's parameters; the action's others come along.
    assert_eq!(
        record["response"]["result"],
        json!({"fixed": "action", "shared": "request", "extra": 1})
    );

    let message = stand_in.received.lock().unwrap()[0].clone();
    assert_eq!(message.action.to_string(), "/guest/hello");
    assert!(message.blocking);
    assert_eq!(message.completion_topic, "completed0");
    assert_eq!(message.user.namespace, "guest");
    assert_eq!(
        message.api_key, None,
        "actions created through the API are annotated provide-api-key: false"
    );
    assert_eq!(
        message.transaction_id,
        response.header("x-request-id").unwrap()
    );

    // The record is in the store, readable through the activation API.
    let stored = app
        .get(&format!("/api/v1/namespaces/_/activations/{id}"), GUEST)
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.json()["activationId"], id.as_str());
    assert!(app.store.activations.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn result_only_statuses_and_bare_arrays() {
    let script = Box::new(|message: &whisk_model::bus::ActivationMessage| {
        match message.content.get("outcome").and_then(Value::as_str) {
            Some("application") => {
                Reply::Finish(ActivationResponse::application_error(json!("app failed")))
            }
            Some("developer") => {
                Reply::Finish(ActivationResponse::developer_error(json!("dev failed")))
            }
            Some("whisk") => Reply::Finish(ActivationResponse::whisk_error(json!("platform"))),
            Some("array") => Reply::Finish(ActivationResponse::success(json!([1, 2]), None)),
            _ => Reply::Finish(ActivationResponse::success(json!({"ok": true}), None)),
        }
    });
    let (app, _balancer, _stand_in) = app_with_invoker(ControllerConfig::default(), script).await;
    create_hello(&app, json!({})).await;
    let call = |outcome: &'static str, query: &'static str| {
        let app = &app;
        async move {
            app.post(
                &format!("{HELLO}?blocking=true{query}"),
                GUEST,
                Some(json!({ "outcome": outcome })),
            )
            .await
        }
    };

    let ok = call("ok", "&result=true").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json(), json!({"ok": true}));
    assert!(ok.header("x-openwhisk-activation-id").is_some());

    let application = call("application", "&result=true").await;
    assert_eq!(application.status, StatusCode::BAD_GATEWAY);
    assert_eq!(application.json(), json!({"error": "app failed"}));

    let developer = call("developer", "").await;
    assert_eq!(developer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        developer.json()["response"]["status"],
        "action developer error"
    );

    let whisk = call("whisk", "").await;
    assert_eq!(whisk.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(whisk.json()["response"]["result"]["error"], "platform");

    let array = call("array", "").await;
    assert_eq!(array.status, StatusCode::OK);
    assert_eq!(array.json(), json!([1, 2]), "an array result is sent bare");
}

#[tokio::test]
async fn non_blocking_answers_202_and_the_record_follows() {
    let (app, _balancer, _stand_in) = app_with_invoker(ControllerConfig::default(), echo()).await;
    create_hello(&app, json!({})).await;
    let response = app.post(HELLO, GUEST, None).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    let body = response.json();
    let id = body["activationId"].as_str().unwrap().to_owned();
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_eq!(
        response.header("x-openwhisk-activation-id"),
        Some(id.as_str())
    );

    let path = format!("/api/v1/namespaces/_/activations/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let fetched = app.get(&path, GUEST).await;
        if fetched.status == StatusCode::OK {
            assert_eq!(fetched.json()["response"]["success"], true);
            break;
        }
        assert_eq!(fetched.status, StatusCode::NOT_FOUND);
        assert!(
            tokio::time::Instant::now() < deadline,
            "record never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_completion_without_record_falls_back_to_the_store() {
    let script = Box::new(|_: &whisk_model::bus::ActivationMessage| {
        Reply::FinishLate(ActivationResponse::success(json!({"late": true}), None))
    });
    let (app, _balancer, _stand_in) = app_with_invoker(ControllerConfig::default(), script).await;
    create_hello(&app, json!({})).await;
    let response = app
        .post(&format!("{HELLO}?blocking=true&result=true"), GUEST, None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json(), json!({"late": true}));
}

#[tokio::test]
async fn blocking_wait_over_answers_202_and_the_activation_keeps_running() {
    let script = Box::new(|_: &whisk_model::bus::ActivationMessage| Reply::Hold);
    let (app, balancer, mut stand_in) = app_with_invoker(ControllerConfig::default(), script).await;
    create_hello(&app, json!({})).await;
    let response = app
        .post(&format!("{HELLO}?blocking=true&timeout=50"), GUEST, None)
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    let id = response.json()["activationId"].as_str().unwrap().to_owned();
    stand_in.next_arrival().await;
    assert_eq!(
        balancer.in_flight_for("23bc46b1-71f6-4ed5-8c54-816aa4f8c502"),
        1
    );

    stand_in
        .release(ActivationResponse::success(json!({}), None))
        .await;
    wait_until("slots released", || {
        balancer.in_flight_for("23bc46b1-71f6-4ed5-8c54-816aa4f8c502") == 0
    })
    .await;
    let fetched = app
        .get(&format!("/api/v1/namespaces/_/activations/{id}"), GUEST)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
}

#[tokio::test]
async fn no_healthy_invoker_is_503_and_leaves_no_pending_note() {
    let (app, _balancer) = TestApp::with_balancer(ControllerConfig::default()).await;
    create_hello(&app, json!({})).await;
    let response = app.post(HELLO, GUEST, None).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.error(),
        "The server is currently unavailable (because it is overloaded or down for maintenance)."
    );
    assert!(app.store.activations.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_a_balancer_invocations_are_503() {
    let app = TestApp::new().await;
    create_hello(&app, json!({})).await;
    let response = app.post(HELLO, GUEST, None).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn an_invoker_that_stops_beating_is_down() {
    let (app, balancer) = TestApp::with_balancer_config(
        ControllerConfig::default(),
        BalancerConfig {
            down_after: Duration::from_millis(300),
            ..BalancerConfig::default()
        },
    )
    .await;
    let stand_in = StandIn::start(
        Arc::clone(balancer.bus()),
        app.store.clone(),
        0,
        2048,
        echo(),
    )
    .await;
    wait_healthy(&balancer, 1).await;
    create_hello(&app, json!({})).await;
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::ACCEPTED
    );

    stand_in.set_beating(false);
    wait_healthy(&balancer, 0).await;
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    stand_in.set_beating(true);
    wait_healthy(&balancer, 1).await;
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn per_minute_throttle_counts_before_the_lookup() {
    let mut config = ControllerConfig::default();
    config.limits.invocations_per_minute = 2;
    let (app, _balancer, _stand_in) = app_with_invoker(config, echo()).await;
    create_hello(&app, json!({})).await;
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::ACCEPTED
    );
    let missing = app
        .post("/api/v1/namespaces/_/actions/missing", GUEST, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let throttled = app.post(HELLO, GUEST, None).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled.error(),
        "Too many requests in the last minute (count: 3, allowed: 2)."
    );
    // Another namespace has its own count.
    let other = app
        .post("/api/v1/namespaces/guest/actions/hello", OTHER, None)
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn concurrent_throttle_counts_what_is_in_flight() {
    let mut config = ControllerConfig::default();
    config.limits.concurrent_invocations = 1;
    let script = Box::new(|_: &whisk_model::bus::ActivationMessage| Reply::Hold);
    let (app, balancer, mut stand_in) = app_with_invoker(config, script).await;
    create_hello(&app, json!({})).await;
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::ACCEPTED
    );
    stand_in.next_arrival().await;
    let throttled = app.post(HELLO, GUEST, None).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled.error(),
        "Too many concurrent requests in flight (count: 1, allowed: 1)."
    );
    stand_in
        .release(ActivationResponse::success(json!({}), None))
        .await;
    wait_until("slots released", || {
        balancer.in_flight_for("23bc46b1-71f6-4ed5-8c54-816aa4f8c502") == 0
    })
    .await;
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn provide_api_key_true_passes_the_key_and_init_parameters_move() {
    let (app, _balancer, stand_in) = app_with_invoker(ControllerConfig::default(), echo()).await;
    create_hello(
        &app,
        json!({
            "annotations": [{"key": "provide-api-key", "value": true}],
            "parameters": [{"key": "secret", "value": "s", "init": true}, {"key": "plain", "value": 1}]
        }),
    )
    .await;
    let response = app
        .post(&format!("{HELLO}?blocking=true&result=true"), GUEST, None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json(), json!({"plain": 1}));
    let message = stand_in.received.lock().unwrap()[0].clone();
    assert_eq!(message.api_key.as_deref(), Some(GUEST));
    assert_eq!(Value::Object(message.init_args), json!({"secret": "s"}));
}

#[tokio::test]
async fn oversize_payload_is_413_before_anything_is_published() {
    let (app, _balancer, stand_in) = app_with_invoker(ControllerConfig::default(), echo()).await;
    create_hello(&app, json!({})).await;
    let big = "x".repeat(1_048_577);
    let response = app.post(HELLO, GUEST, Some(json!({ "big": big }))).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response
            .error()
            .starts_with("Request larger than allowed: "),
        "{}",
        response.text
    );
    assert!(stand_in.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn activations_lost_in_flight_are_closed_at_start() {
    let script = Box::new(|_: &whisk_model::bus::ActivationMessage| Reply::Hold);
    let (app, _balancer, mut stand_in) =
        app_with_invoker(ControllerConfig::default(), script).await;
    create_hello(&app, json!({})).await;
    let response = app.post(HELLO, GUEST, None).await;
    let id = response.json()["activationId"].as_str().unwrap().to_owned();
    stand_in.next_arrival().await;
    assert_eq!(app.store.activations.pending().await.unwrap().len(), 1);

    // The platform stops here; the next start closes what was left.
    let closed = close_unfinished(&app.store, 1_717_000_100_000)
        .await
        .unwrap();
    assert_eq!(closed, 1);
    assert!(app.store.activations.pending().await.unwrap().is_empty());
    let record = app
        .get(&format!("/api/v1/namespaces/_/activations/{id}"), GUEST)
        .await
        .json();
    assert_eq!(record["response"]["status"], "whisk internal error");
    assert_eq!(record["response"]["result"]["error"], LOST_ACTIVATION);
    assert_eq!(record["end"], 1_717_000_100_000u64);
    let annotations = record["annotations"].as_array().unwrap();
    assert!(annotations.contains(&json!({"key": "path", "value": "guest/hello"})));
    assert!(annotations.contains(&json!({"key": "kind", "value": "nodejs:20"})));
    assert_eq!(
        close_unfinished(&app.store, 1_717_000_200_000)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn home_invoker_is_stable_and_a_full_one_is_stepped_over() {
    let (app, balancer) = TestApp::with_balancer(ControllerConfig::default()).await;
    let mut stand_ins = Vec::new();
    for invoker in 0..3 {
        let script = Box::new(|_: &whisk_model::bus::ActivationMessage| Reply::Hold);
        stand_ins.push(
            StandIn::start(
                Arc::clone(balancer.bus()),
                app.store.clone(),
                invoker,
                256,
                script,
            )
            .await,
        );
    }
    wait_healthy(&balancer, 3).await;
    create_hello(&app, json!({})).await;
    // Each invoker holds one 256 MB activation; three calls fill all three, each once.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app.post(HELLO, GUEST, None).await;
        assert_eq!(response.status, StatusCode::ACCEPTED);
        ids.push(response.json()["activationId"].as_str().unwrap().to_owned());
    }
    wait_until("three arrivals", || {
        stand_ins.iter().map(|s| s.held_count()).sum::<usize>() == 3
    })
    .await;
    for stand_in in &stand_ins {
        assert_eq!(stand_in.held_count(), 1, "invoker {}", stand_in.invoker);
    }
    let (home, _) = whisk_controller::balancer::home_and_step("guest", "guest/hello", 3);
    assert_eq!(
        stand_ins[home].received.lock().unwrap()[0]
            .activation_id
            .as_str(),
        ids[0],
        "the first call goes to the home invoker"
    );
    // All full: the next one overloads a healthy invoker rather than failing.
    assert_eq!(
        app.post(HELLO, GUEST, None).await.status,
        StatusCode::ACCEPTED
    );
    wait_until("four arrivals", || {
        stand_ins.iter().map(|s| s.held_count()).sum::<usize>() == 4
    })
    .await;
}

#[tokio::test]
async fn unreadable_pending_notes_are_dropped_without_a_record() {
    let app = TestApp::new().await;
    let mut note = whisk_store::ActivationEntry {
        namespace: "guest".into(),
        activation_id: "0123456789abcdef0123456789abcdef".into(),
        name: "hello".into(),
        path_name: None,
        start: 1,
        document: json!({"not": "an activation"}),
    };
    app.store
        .activations
        .put_pending(note.clone())
        .await
        .unwrap();
    note.activation_id = "fedcba9876543210fedcba9876543210".into();
    note.document = json!({
        "namespace": "guest", "name": "hello", "subject": "guest",
        "activationId": note.activation_id, "start": 1, "end": 0,
        "response": {"statusCode": 3}, "logs": [], "version": "0.0.1",
        "publish": false, "annotations": []
    });
    app.store.activations.put_pending(note).await.unwrap();

    assert_eq!(close_unfinished(&app.store, 10).await.unwrap(), 1);
    assert!(app.store.activations.pending().await.unwrap().is_empty());
    assert_eq!(
        app.store
            .activations
            .get("guest", "0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
        None
    );
    let closed = app
        .get(
            "/api/v1/namespaces/_/activations/fedcba9876543210fedcba9876543210",
            GUEST,
        )
        .await
        .json();
    assert_eq!(closed["end"], 10);
    assert_eq!(closed["response"]["result"]["error"], LOST_ACTIVATION);
}
