//! Sequences through the router, the balancer and an in-process bus, with a scripted stand-in
//! invoker: `inc` adds one to `n`, `fail` answers an application error.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use whisk_controller::{ControllerConfig, LoadBalancer};
use whisk_model::ActivationResponse;
use whisk_model::bus::ActivationMessage;

use common::invoker::{Reply, StandIn, app_with_stand_in};
use common::{GUEST, TestApp};

fn script(message: &ActivationMessage) -> Reply {
    match message.action.name.as_str() {
        "inc" => {
            let n = message
                .content
                .get("n")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            Reply::Finish(ActivationResponse::success(json!({"n": n + 1}), None))
        }
        "fail" => Reply::Finish(ActivationResponse::application_error(json!("stop here"))),
        _ => Reply::Finish(ActivationResponse::success(json!(message.content), None)),
    }
}

async fn app() -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with_stand_in(ControllerConfig::default(), Box::new(script)).await
}

async fn action(app: &TestApp, name: &str) {
    let response = app
        .put(
            &format!("/api/v1/namespaces/_/actions/{name}"),
            GUEST,
            json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

async fn sequence(app: &TestApp, name: &str, components: &[&str]) {
    let components: Vec<String> = components.iter().map(|c| format!("/_/{c}")).collect();
    let response = app
        .put(
            &format!("/api/v1/namespaces/_/actions/{name}"),
            GUEST,
            json!({"exec": {"kind": "sequence", "components": components}}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
}

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

#[tokio::test]
async fn each_output_feeds_the_next_and_the_record_lists_the_components() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "inc").await;
    sequence(&app, "three", &["inc", "inc", "inc"]).await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/three?blocking=true",
            GUEST,
            Some(json!({"n": 10})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    assert_eq!(body["response"]["result"], json!({"n": 13}));
    assert_eq!(body["name"], "three");
    let id = body["activationId"].as_str().unwrap().to_string();
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 3);
    let annotations = body["annotations"].as_array().unwrap();
    let annotation = |key: &str| {
        annotations
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    assert_eq!(annotation("kind"), Some(json!("sequence")));
    assert_eq!(annotation("topmost"), Some(json!(true)));
    assert_eq!(annotation("path"), Some(json!("guest/three")));

    let received = stand_in.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    for (message, logged) in received.iter().zip(logs) {
        assert_eq!(message.cause.as_ref().unwrap().as_str(), id);
        assert_eq!(message.caused_by.as_deref(), Some("sequence"));
        assert_eq!(message.activation_id.as_str(), logged.as_str().unwrap());
    }
    assert!(app.store.activations.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_chain_stops_at_the_first_error() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "inc").await;
    action(&app, "fail").await;
    sequence(&app, "broken", &["inc", "fail", "inc"]).await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/broken?blocking=true&result=true",
            GUEST,
            Some(json!({})),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.json(), json!({"error": "stop here"}));
    assert_eq!(stand_in.received.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn nested_sequences_run_inline_and_get_their_own_records() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    sequence(&app, "inner", &["inc", "inc"]).await;
    sequence(&app, "outer", &["inc", "inner"]).await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/outer?blocking=true",
            GUEST,
            Some(json!({"n": 0})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    assert_eq!(body["response"]["result"], json!({"n": 3}));
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "the atomic action and the inner sequence");
    let inner = record(&app, logs[1].as_str().unwrap()).await;
    assert_eq!(inner["name"], "inner");
    assert_eq!(inner["cause"], body["activationId"]);
    assert_eq!(inner["logs"].as_array().unwrap().len(), 2);
    let topmost = inner["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "topmost")
        .unwrap()["value"]
        .clone();
    assert_eq!(topmost, json!(false));
}

#[tokio::test]
async fn non_blocking_answers_the_sequence_id_and_the_record_follows() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    sequence(&app, "two", &["inc", "inc"]).await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/two",
            GUEST,
            Some(json!({"n": 1})),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    let id = response.json()["activationId"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = record(&app, &id).await;
    assert_eq!(stored["response"]["result"], json!({"n": 3}));
}

#[tokio::test]
async fn a_component_deleted_after_create_is_an_application_error() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "inc").await;
    action(&app, "gone").await;
    sequence(&app, "holey", &["inc", "gone"]).await;
    let deleted = app.delete("/api/v1/namespaces/_/actions/gone", GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/holey?blocking=true&result=true",
            GUEST,
            Some(json!({})),
        )
        .await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.json(),
        json!({"error": "Sequence component does not exist."})
    );
    assert_eq!(stand_in.received.lock().unwrap().len(), 1);
}
