//! Conductor actions (REFERENCE §14) through the router, the balancer and an in-process bus,
//! with a scripted stand-in invoker playing both the conductors and their components:
//! * `inc` adds one to `n`; `fail` answers an application error; `slow` is held (never ends);
//! * `cond` asks for `inc` twice (keeping its step in `state`), then ends with `{done: n}`;
//! * `probe` asks for whatever `target` names, then ends with the input it got back;
//! * `greedy` asks for `inc` whatever happens;
//! * `outer` runs `cond` as its component, then ends with what came back;
//! * `broken` (a conductor) fails itself.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use whisk_controller::{ControllerConfig, LoadBalancer};
use whisk_model::bus::ActivationMessage;
use whisk_model::{ActivationResponse, SystemLimits};

use common::invoker::{Reply, StandIn, app_with_stand_in};
use common::{GUEST, OTHER, TestApp};

fn ok(result: Value) -> Reply {
    Reply::Finish(ActivationResponse::success(result, None))
}

fn script(message: &ActivationMessage) -> Reply {
    let input = &message.content;
    let n = input.get("n").and_then(Value::as_i64).unwrap_or(0);
    match message.action.name.as_str() {
        "inc" => ok(json!({"n": n + 1})),
        "fail" => Reply::Finish(ActivationResponse::application_error(json!("stop here"))),
        "slow" => Reply::Hold,
        "cond" => match input.get("$step").and_then(Value::as_i64) {
            None => ok(json!({"action": "inc", "params": {"n": n}, "state": {"$step": 1}})),
            Some(1) => ok(json!({"action": "/_/inc", "params": {"n": n}, "state": {"$step": 2}})),
            Some(_) => ok(json!({"params": {"done": n}})),
        },
        "probe" => match input.get("$step") {
            None => ok(json!({
                "action": input.get("target").cloned().unwrap_or(Value::Null),
                "params": input.get("with").cloned().unwrap_or(json!({})),
                "state": {"$step": 1}
            })),
            Some(_) => ok(json!({"params": input})),
        },
        "greedy" => ok(json!({"action": "inc", "params": {"n": n}})),
        "outer" => match input.get("$outer") {
            None => ok(json!({"action": "cond", "params": {"n": n}, "state": {"$outer": true}})),
            Some(_) => ok(json!({"params": input})),
        },
        "broken" => Reply::Finish(ActivationResponse::application_error(json!(
            "conductor failed"
        ))),
        _ => ok(json!(input)),
    }
}

async fn app_with(config: ControllerConfig) -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with_stand_in(config, Box::new(script)).await
}

async fn app() -> (TestApp, Arc<LoadBalancer>, StandIn) {
    app_with(ControllerConfig::default()).await
}

async fn put_ok(app: &TestApp, path: &str, credentials: &str, body: Value) {
    let response = app.put(path, credentials, body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
}

async fn action(app: &TestApp, name: &str) {
    put_ok(
        app,
        &format!("/api/v1/namespaces/_/actions/{name}"),
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"}}),
    )
    .await;
}

async fn conductor(app: &TestApp, name: &str) {
    put_ok(
        app,
        &format!("/api/v1/namespaces/_/actions/{name}"),
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"},
            "annotations": [{"key": "conductor", "value": true}]
        }),
    )
    .await;
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

fn annotation(record: &Value, key: &str) -> Option<Value> {
    record["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| a["value"].clone())
}

async fn invoke_blocking(app: &TestApp, name: &str, body: Value) -> common::TestResponse {
    app.post(
        &format!("/api/v1/namespaces/_/actions/{name}?blocking=true"),
        GUEST,
        Some(body),
    )
    .await
}

fn ids(record: &Value) -> Vec<String> {
    record["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_conductor_and_its_components_alternate_and_the_record_lists_every_step() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "inc").await;
    conductor(&app, "cond").await;
    let response = invoke_blocking(&app, "cond", json!({"n": 10})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    assert_eq!(body["response"]["result"], json!({"done": 12}));
    assert_eq!(body["name"], "cond");
    assert_eq!(annotation(&body, "conductor"), Some(json!(true)));
    assert_eq!(annotation(&body, "kind"), Some(json!("sequence")));
    assert_eq!(annotation(&body, "topmost"), Some(json!(true)));
    assert_eq!(annotation(&body, "path"), Some(json!("guest/cond")));
    assert_eq!(annotation(&body, "causedBy"), None);
    assert_eq!(body["duration"], 25, "five steps of 5 ms each");
    let id = body["activationId"].as_str().unwrap().to_owned();
    assert_eq!(
        response.header("x-openwhisk-activation-id"),
        Some(id.as_str())
    );

    let received = stand_in.received.lock().unwrap().clone();
    let names: Vec<&str> = received.iter().map(|m| m.action.name.as_str()).collect();
    assert_eq!(names, ["cond", "inc", "cond", "inc", "cond"]);
    assert_eq!(
        ids(&body),
        received
            .iter()
            .map(|m| m.activation_id.to_string())
            .collect::<Vec<_>>()
    );
    for message in &received {
        assert_eq!(message.cause.as_ref().unwrap().as_str(), id);
        assert_eq!(message.caused_by.as_deref(), Some("sequence"));
        assert!(message.blocking);
    }
    // The conductor's params are the component's input; the component's result, with the kept
    // state merged in, is the conductor's next input.
    assert_eq!(json!(received[0].content), json!({"n": 10}));
    assert_eq!(json!(received[1].content), json!({"n": 10}));
    assert_eq!(json!(received[2].content), json!({"n": 11, "$step": 1}));
    assert_eq!(json!(received[4].content), json!({"n": 12, "$step": 2}));
    assert!(app.store.activations.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn non_blocking_answers_the_composition_id_and_the_record_follows() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    conductor(&app, "cond").await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/cond",
            GUEST,
            Some(json!({"n": 1})),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    let id = response.json()["activationId"].as_str().unwrap().to_owned();
    let stored = record(&app, &id).await;
    assert_eq!(stored["response"]["result"], json!({"done": 3}));
    assert_eq!(ids(&stored).len(), 5);

    let result_only = app
        .post(
            "/api/v1/namespaces/_/actions/cond?blocking=true&result=true",
            GUEST,
            Some(json!({"n": 5})),
        )
        .await;
    assert_eq!(result_only.status, StatusCode::OK);
    assert_eq!(result_only.json(), json!({"done": 7}));
}

#[tokio::test]
async fn names_that_cannot_be_parsed_resolved_or_used_are_fed_back_as_errors() {
    let (app, _balancer, stand_in) = app().await;
    conductor(&app, "probe").await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/private",
        OTHER,
        json!({"exec": {"kind": "nodejs:20", "code": "x"}}),
    )
    .await;
    let cases = [
        (
            json!(7),
            "Failed to parse action name from json value 7 during composition.",
        ),
        (
            json!("a/b/c/d"),
            "Failed to parse action name from json value \"a/b/c/d\" during composition.",
        ),
        (
            json!("missing"),
            "Failed to resolve action with name 'missing' during composition.",
        ),
        (
            json!("/other/private"),
            "Failed entitlement check for action with name '/other/private' during composition.",
        ),
    ];
    for (target, message) in cases {
        let response = invoke_blocking(&app, "probe", json!({"target": target})).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        let body = response.json();
        assert_eq!(
            body["response"]["result"],
            json!({"error": message, "$step": 1}),
            "{target}"
        );
        assert_eq!(ids(&body).len(), 2, "two conductor runs, no component");
    }
    assert!(
        stand_in
            .received
            .lock()
            .unwrap()
            .iter()
            .all(|m| m.action.name.as_str() == "probe")
    );
}

#[tokio::test]
async fn a_failing_component_is_fed_back_and_a_failing_conductor_ends_the_composition() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "fail").await;
    conductor(&app, "probe").await;
    conductor(&app, "broken").await;
    let response = invoke_blocking(&app, "probe", json!({"target": "fail"})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.json()["response"]["result"],
        json!({"error": "stop here", "$step": 1})
    );

    let broken = invoke_blocking(&app, "broken", json!({})).await;
    assert_eq!(broken.status, StatusCode::BAD_GATEWAY);
    let body = broken.json();
    assert_eq!(body["response"]["status"], "application error");
    assert_eq!(
        body["response"]["result"],
        json!({"error": "conductor failed"})
    );
    assert_eq!(ids(&body).len(), 1);
}

#[tokio::test]
async fn params_that_are_not_objects_are_boxed_for_the_component() {
    let (app, _balancer, stand_in) = app().await;
    action(&app, "echo").await;
    conductor(&app, "probe").await;
    let response = invoke_blocking(&app, "probe", json!({"target": "echo", "with": [1, 2]})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let received = stand_in.received.lock().unwrap().clone();
    assert_eq!(received[1].action.name.as_str(), "echo");
    assert_eq!(json!(received[1].content), json!({"value": [1, 2]}));
}

#[tokio::test]
async fn components_and_conductor_runs_are_limited() {
    let limits = SystemLimits {
        sequence_max_length: 2,
        ..SystemLimits::default()
    };
    let config = ControllerConfig::new(limits, ControllerConfig::default().manifest);
    let (app, _balancer, stand_in) = app_with(config).await;
    action(&app, "inc").await;
    conductor(&app, "greedy").await;
    let response = invoke_blocking(&app, "greedy", json!({"n": 0})).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        response.text
    );
    let body = response.json();
    assert_eq!(body["response"]["status"], "application error");
    assert_eq!(
        body["response"]["result"],
        json!({"error": "Too many actions in the composition."})
    );
    let received = stand_in.received.lock().unwrap().clone();
    let names: Vec<&str> = received.iter().map(|m| m.action.name.as_str()).collect();
    // Two components at most, four conductor runs at most: the third run's request for a
    // third component was refused, and the fourth run got the error instead.
    assert_eq!(
        names,
        ["greedy", "inc", "greedy", "inc", "greedy", "greedy"]
    );
    assert_eq!(json!(received[4].content), json!({"n": 2}));
    assert_eq!(
        json!(received[5].content),
        json!({"error": "Too many actions in the composition."})
    );
    assert_eq!(ids(&body).len(), 6);
}

#[tokio::test]
async fn nested_compositions_get_their_own_records_and_share_the_limits() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    conductor(&app, "cond").await;
    conductor(&app, "outer").await;
    let response = invoke_blocking(&app, "outer", json!({"n": 0})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    assert_eq!(
        body["response"]["result"],
        json!({"done": 2, "$outer": true})
    );
    let logs = ids(&body);
    assert_eq!(logs.len(), 3, "outer, the inner composition, outer");
    let inner = record(&app, &logs[1]).await;
    assert_eq!(inner["name"], "cond");
    assert_eq!(inner["cause"], body["activationId"]);
    assert_eq!(annotation(&inner, "topmost"), Some(json!(false)));
    assert_eq!(annotation(&inner, "causedBy"), Some(json!("sequence")));
    assert_eq!(annotation(&inner, "conductor"), Some(json!(true)));
    assert_eq!(ids(&inner).len(), 5);
    assert_eq!(
        body["duration"], 35,
        "two outer runs and the inner five steps"
    );

    // Shared with the enclosing composition: with a limit of 2 components, the inner
    // composition (one component of the outer) may run one more.
    let limits = SystemLimits {
        sequence_max_length: 2,
        ..SystemLimits::default()
    };
    let config = ControllerConfig::new(limits, ControllerConfig::default().manifest);
    let (small, _balancer, _stand_in) = app_with(config).await;
    action(&small, "inc").await;
    conductor(&small, "cond").await;
    conductor(&small, "outer").await;
    let response = invoke_blocking(&small, "outer", json!({"n": 0})).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        response.text
    );
    let body = response.json();
    // outer, then the inner composition; a third outer run would be the fifth of at most four.
    assert_eq!(
        body["response"]["result"],
        json!({"error": "Too many actions in the composition."})
    );
    let inner = record(&small, &ids(&body)[1]).await;
    // The inner conductor's second component was refused (the inner composition itself was
    // the first), so its last run got the error without `n`.
    assert_eq!(inner["response"]["result"], json!({"done": 0}), "{inner}");
    assert_eq!(
        ids(&inner).len(),
        4,
        "three conductor runs and one component"
    );
}

#[tokio::test]
async fn a_conductor_inside_a_sequence_runs_its_composition() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    conductor(&app, "cond").await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/seq",
        GUEST,
        json!({"exec": {"kind": "sequence", "components": ["/_/inc", "/_/cond"]}}),
    )
    .await;
    let response = invoke_blocking(&app, "seq", json!({"n": 0})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = response.json();
    assert_eq!(body["response"]["result"], json!({"done": 3}));
    let logs = ids(&body);
    assert_eq!(logs.len(), 2);
    let composition = record(&app, &logs[1]).await;
    assert_eq!(annotation(&composition, "conductor"), Some(json!(true)));
    assert_eq!(composition["cause"], body["activationId"]);
}

#[tokio::test]
async fn a_conductor_fired_by_a_rule_runs_its_composition() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    conductor(&app, "cond").await;
    put_ok(&app, "/api/v1/namespaces/_/triggers/t", GUEST, json!({})).await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/cond"}),
    )
    .await;
    let fired = app
        .post(
            "/api/v1/namespaces/_/triggers/t",
            GUEST,
            Some(json!({"n": 40})),
        )
        .await;
    assert_eq!(fired.status, StatusCode::ACCEPTED);
    let trigger = record(&app, fired.json()["activationId"].as_str().unwrap()).await;
    let line: Value = serde_json::from_str(trigger["logs"][0].as_str().unwrap()).unwrap();
    assert_eq!(line["statusCode"], 0);
    let composition = record(&app, line["activationId"].as_str().unwrap()).await;
    assert_eq!(composition["response"]["result"]["done"], 42);
    assert_eq!(annotation(&composition, "conductor"), Some(json!(true)));
}

#[tokio::test]
async fn a_step_that_never_ends_is_a_timeout_whisk_error() {
    let (app, _balancer, stand_in) = app().await;
    conductor(&app, "probe").await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/slow",
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": "x"},
            "limits": {"timeout": 100}
        }),
    )
    .await;
    // The wait for the record is bounded by the step's time limit plus the blocking margin.
    let response = invoke_blocking(&app, "probe", json!({"target": "slow"})).await;
    assert_eq!(
        response.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        response.text
    );
    let body = response.json();
    let logs = ids(&body);
    assert_eq!(logs.len(), 2);
    assert_eq!(
        body["response"]["result"],
        json!({"error": format!(
            "Timeout reached when retrieving activation {} during composition.",
            logs[1]
        )})
    );
    assert_eq!(body["response"]["status"], "whisk internal error");
    assert_eq!(stand_in.held_count(), 1);
}

#[tokio::test]
async fn a_step_that_cannot_start_is_an_activation_failure() {
    // No invocation path: the composition is accepted, its first conductor run is not.
    let app = TestApp::new().await;
    conductor(&app, "cond").await;
    let response = invoke_blocking(&app, "cond", json!({})).await;
    assert_eq!(
        response.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        response.text
    );
    let body = response.json();
    assert_eq!(
        body["response"]["result"],
        json!({"error": "Activation failure during composition."})
    );
    assert_eq!(ids(&body), Vec::<String>::new());
    assert!(app.store.activations.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_conductor_web_action_answers_with_the_composition_result() {
    let (app, _balancer, _stand_in) = app().await;
    action(&app, "inc").await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/cond",
        GUEST,
        json!({
            "exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"},
            "annotations": [
                {"key": "conductor", "value": true},
                {"key": "web-export", "value": true}
            ]
        }),
    )
    .await;
    let response = app
        .call(
            axum::http::Method::POST,
            "/api/v1/web/guest/default/cond.json",
            None,
            Some(json!({"n": 1})),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json(), json!({"done": 3}));
    let id = response.header("x-openwhisk-activation-id").unwrap();
    let stored = record(&app, id).await;
    assert_eq!(annotation(&stored, "conductor"), Some(json!(true)));
    assert_eq!(ids(&stored).len(), 5);
}

#[tokio::test]
async fn a_running_composition_is_noted_as_pending_until_its_record_is_stored() {
    let (app, _balancer, stand_in) = app().await;
    conductor(&app, "probe").await;
    action(&app, "slow").await;
    let response = app
        .post(
            "/api/v1/namespaces/_/actions/probe",
            GUEST,
            Some(json!({"target": "slow"})),
        )
        .await;
    assert_eq!(response.status, StatusCode::ACCEPTED);
    let id = response.json()["activationId"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stand_in.held_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "slow never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pending = app.store.activations.pending().await.unwrap();
    let note = pending
        .iter()
        .find(|note| note.activation_id == id)
        .expect("the composition is noted while its component runs");
    assert_eq!(note.document["name"], "probe");
    assert!(
        note.document["annotations"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "conductor", "value": true}))
    );

    stand_in
        .release(ActivationResponse::success(json!({"late": true}), None))
        .await;
    let stored = record(&app, &id).await;
    assert_eq!(
        stored["response"]["result"],
        json!({"late": true, "$step": 1})
    );
    let pending = app.store.activations.pending().await.unwrap();
    assert!(pending.iter().all(|note| note.activation_id != id));
}
