//! The rules API over a real SQLite store, including the bookkeeping in the trigger's `rules`
//! map.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{GUEST, OTHER, TestApp};
use serde_json::{Value, json};

async fn put_ok(app: &TestApp, path: &str, credentials: &str, body: Value) -> Value {
    let response = app.put(path, credentials, body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    response.json()
}

async fn action(app: &TestApp, path: &str, credentials: &str) {
    put_ok(
        app,
        path,
        credentials,
        json!({"exec": {"kind": "nodejs:20", "code": "function main(){}"}}),
    )
    .await;
}

/// A trigger `t` and an action `hello` in the guest namespace.
async fn app_with_trigger_and_action() -> TestApp {
    let app = TestApp::new().await;
    put_ok(&app, "/api/v1/namespaces/_/triggers/t", GUEST, json!({})).await;
    action(&app, "/api/v1/namespaces/_/actions/hello", GUEST).await;
    app
}

async fn trigger_rules(app: &TestApp, trigger: &str) -> Value {
    let response = app
        .get(&format!("/api/v1/namespaces/_/triggers/{trigger}"), GUEST)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.json()["rules"].clone()
}

async fn status_of(app: &TestApp, rule: &str) -> Value {
    let response = app
        .get(&format!("/api/v1/namespaces/_/rules/{rule}"), GUEST)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    response.json()["status"].clone()
}

async fn set_status(app: &TestApp, rule: &str, status: &str) -> common::TestResponse {
    app.post(
        &format!("/api/v1/namespaces/_/rules/{rule}"),
        GUEST,
        Some(json!({ "status": status })),
    )
    .await
}

#[tokio::test]
async fn create_answers_an_active_rule_and_records_it_in_the_trigger() {
    let app = app_with_trigger_and_action().await;
    let created = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello",
               "annotations": [{"key": "a", "value": 1}]}),
    )
    .await;
    assert_eq!(created["namespace"], "guest");
    assert_eq!(created["name"], "r");
    assert_eq!(created["status"], "active");
    assert_eq!(created["trigger"], json!({"path": "guest", "name": "t"}));
    assert_eq!(created["action"], json!({"path": "guest", "name": "hello"}));
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["publish"], false);
    assert_eq!(created["annotations"], json!([{"key": "a", "value": 1}]));
    assert!(created["updated"].is_u64());

    assert_eq!(
        trigger_rules(&app, "t").await,
        json!({"guest/r": {"action": {"path": "guest", "name": "hello"}, "status": "active"}})
    );
    let read = app.get("/api/v1/namespaces/guest/rules/r", GUEST).await;
    assert_eq!(read.json(), created);

    let again = app
        .put(
            "/api/v1/namespaces/_/rules/r",
            GUEST,
            json!({"trigger": "/_/t", "action": "/_/hello"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error(), "resource already exists");
}

#[tokio::test]
async fn object_references_and_packaged_actions_through_bindings_are_accepted() {
    let app = app_with_trigger_and_action().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/utils",
        GUEST,
        json!({}),
    )
    .await;
    action(&app, "/api/v1/namespaces/_/actions/utils/split", GUEST).await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/bound",
        GUEST,
        json!({"binding": {"namespace": "_", "name": "utils"}}),
    )
    .await;

    let packaged = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r1",
        GUEST,
        json!({"trigger": {"path": "_", "name": "t"}, "action": {"path": "guest/utils", "name": "split"}}),
    )
    .await;
    assert_eq!(
        packaged["action"],
        json!({"path": "guest/utils", "name": "split"})
    );
    let bound = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r2",
        GUEST,
        json!({"trigger": "/guest/t", "action": "/_/bound/split"}),
    )
    .await;
    assert_eq!(
        bound["action"],
        json!({"path": "guest/bound", "name": "split"})
    );
    assert_eq!(
        trigger_rules(&app, "t").await["guest/r2"]["action"],
        json!({"path": "guest/bound", "name": "split"})
    );

    let missing_in_binding = app
        .put(
            "/api/v1/namespaces/_/rules/r3",
            GUEST,
            json!({"trigger": "/_/t", "action": "/_/bound/nothing"}),
        )
        .await;
    assert_eq!(missing_in_binding.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing_in_binding.error(),
        "action /guest/bound/nothing does not exist"
    );
}

#[tokio::test]
async fn trigger_and_action_are_required_and_must_exist() {
    let app = app_with_trigger_and_action().await;
    for body in [
        json!({}),
        json!({"trigger": "/_/t"}),
        json!({"action": "/_/hello"}),
    ] {
        let response = app
            .put("/api/v1/namespaces/_/rules/r", GUEST, body.clone())
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            response.error(),
            "rule requires a valid trigger and a valid action"
        );
    }
    let cases = [
        (
            json!({"trigger": "/_/nothing", "action": "/_/hello"}),
            "trigger /guest/nothing does not exist",
        ),
        (
            json!({"trigger": "/_/t", "action": "/_/nothing"}),
            "action /guest/nothing does not exist",
        ),
        (
            json!({"trigger": "/_/hello", "action": "/_/hello"}),
            "trigger /guest/hello does not exist",
        ),
        (
            json!({"trigger": "/_/t", "action": "/_/nopkg/a"}),
            "action /guest/nopkg/a does not exist",
        ),
    ];
    for (body, message) in cases {
        let response = app.put("/api/v1/namespaces/_/rules/r", GUEST, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(response.error(), message);
    }
    let malformed = app
        .put(
            "/api/v1/namespaces/_/rules/r",
            GUEST,
            json!({"trigger": "t", "action": "/_/hello"}),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.error(),
        "The request content was malformed:\nrequirement failed: The fully qualified name of the entity must contain at least the namespace and the name of the entity."
    );
    let none = app.get("/api/v1/namespaces/_/rules/r", GUEST).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(trigger_rules(&app, "t").await, Value::Null);
}

#[tokio::test]
async fn referenced_entities_must_be_readable() {
    let app = app_with_trigger_and_action().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/triggers/theirs",
        OTHER,
        json!({}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/private",
        OTHER,
        json!({}),
    )
    .await;
    action(&app, "/api/v1/namespaces/_/actions/private/a", OTHER).await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/packages/shared",
        OTHER,
        json!({"publish": true}),
    )
    .await;
    action(&app, "/api/v1/namespaces/_/actions/shared/a", OTHER).await;
    action(&app, "/api/v1/namespaces/_/actions/plain", OTHER).await;

    let foreign_trigger = app
        .put(
            "/api/v1/namespaces/_/rules/r",
            GUEST,
            json!({"trigger": "/other/theirs", "action": "/other/plain"}),
        )
        .await;
    assert_eq!(foreign_trigger.status, StatusCode::FORBIDDEN);
    assert_eq!(
        foreign_trigger.error(),
        "The supplied authentication is not authorized to access 'other/plain, other/theirs'."
    );
    let private_action = app
        .put(
            "/api/v1/namespaces/_/rules/r",
            GUEST,
            json!({"trigger": "/_/t", "action": "/other/private/a"}),
        )
        .await;
    assert_eq!(private_action.status, StatusCode::FORBIDDEN);
    assert_eq!(
        private_action.error(),
        "The supplied authentication is not authorized to access 'other/private/a'."
    );

    let shared = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/other/shared/a"}),
    )
    .await;
    assert_eq!(shared["status"], "active");
}

#[tokio::test]
async fn status_changes_are_recorded_in_the_trigger() {
    let app = app_with_trigger_and_action().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;

    let disabled = set_status(&app, "r", "inactive").await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(status_of(&app, "r").await, "inactive");
    assert_eq!(
        trigger_rules(&app, "t").await["guest/r"]["status"],
        "inactive"
    );
    let version_before = app
        .get("/api/v1/namespaces/_/triggers/t", GUEST)
        .await
        .json()["updated"]
        .clone();
    let repeated = set_status(&app, "r", "inactive").await;
    assert_eq!(repeated.status, StatusCode::OK);
    let version_after = app
        .get("/api/v1/namespaces/_/triggers/t", GUEST)
        .await
        .json()["updated"]
        .clone();
    assert_eq!(version_before, version_after, "no-op changes write nothing");

    assert_eq!(set_status(&app, "r", "active").await.status, StatusCode::OK);
    assert_eq!(status_of(&app, "r").await, "active");

    let unknown = set_status(&app, "r", "paused").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.error(),
        "The request content was malformed:\n'paused' is not a recognized rule state, must be one of ['active', 'inactive']"
    );
    let no_status = app
        .post("/api/v1/namespaces/_/rules/r", GUEST, Some(json!({})))
        .await;
    assert_eq!(no_status.status, StatusCode::BAD_REQUEST);

    let missing_rule = set_status(&app, "nothing", "active").await;
    assert_eq!(missing_rule.status, StatusCode::NOT_FOUND);

    app.delete("/api/v1/namespaces/_/triggers/t", GUEST).await;
    assert_eq!(status_of(&app, "r").await, "inactive");
    let orphan = set_status(&app, "r", "active").await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    assert_eq!(
        orphan.error(),
        "Only rules with existing triggers can be activated"
    );
}

#[tokio::test]
async fn update_keeps_the_status_and_moves_the_entry_to_a_new_trigger() {
    let app = app_with_trigger_and_action().await;
    put_ok(&app, "/api/v1/namespaces/_/triggers/t2", GUEST, json!({})).await;
    action(&app, "/api/v1/namespaces/_/actions/other", GUEST).await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello", "annotations": [{"key": "k", "value": 1}]}),
    )
    .await;
    set_status(&app, "r", "inactive").await;

    let same_trigger = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r?overwrite=true",
        GUEST,
        json!({"action": "/_/other"}),
    )
    .await;
    assert_eq!(same_trigger["status"], "inactive");
    assert_eq!(same_trigger["version"], "0.0.2");
    assert_eq!(
        same_trigger["annotations"],
        json!([{"key": "k", "value": 1}])
    );
    assert_eq!(
        trigger_rules(&app, "t").await,
        json!({"guest/r": {"action": {"path": "guest", "name": "other"}, "status": "inactive"}})
    );

    let moved = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r?overwrite=true",
        GUEST,
        json!({"trigger": {"path": "_", "name": "t2"}, "annotations": []}),
    )
    .await;
    assert_eq!(moved["status"], "inactive");
    assert_eq!(moved["trigger"], json!({"path": "guest", "name": "t2"}));
    assert_eq!(moved["action"], json!({"path": "guest", "name": "other"}));
    assert_eq!(moved["annotations"], json!([]));
    assert_eq!(trigger_rules(&app, "t").await, json!({}));
    assert_eq!(
        trigger_rules(&app, "t2").await,
        json!({"guest/r": {"action": {"path": "guest", "name": "other"}, "status": "inactive"}})
    );

    let bad_trigger = app
        .put(
            "/api/v1/namespaces/_/rules/r?overwrite=true",
            GUEST,
            json!({"trigger": "/_/gone"}),
        )
        .await;
    assert_eq!(bad_trigger.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_trigger.error(), "trigger /guest/gone does not exist");
    assert_eq!(
        app.get("/api/v1/namespaces/_/rules/r", GUEST).await.json()["version"],
        "0.0.3"
    );
}

#[tokio::test]
async fn overwrite_on_a_new_rule_creates_it_active() {
    let app = app_with_trigger_and_action().await;
    let created = put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r?overwrite=true",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;
    assert_eq!(created["status"], "active");
    assert_eq!(created["version"], "0.0.1");
}

#[tokio::test]
async fn delete_detaches_the_rule_and_answers_it_inactive() {
    let app = app_with_trigger_and_action().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/keep",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;

    let deleted = app.delete("/api/v1/namespaces/_/rules/r", GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let deleted = deleted.json();
    assert_eq!(deleted["status"], "inactive");
    assert_eq!(deleted["name"], "r");
    let rules = trigger_rules(&app, "t").await;
    assert!(rules.get("guest/r").is_none());
    assert_eq!(rules["guest/keep"]["status"], "active");

    let again = app.delete("/api/v1/namespaces/_/rules/r", GUEST).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    app.delete("/api/v1/namespaces/_/triggers/t", GUEST).await;
    let orphan = app.delete("/api/v1/namespaces/_/rules/keep", GUEST).await;
    assert_eq!(orphan.status, StatusCode::OK);
    assert_eq!(orphan.json()["status"], "inactive");
}

#[tokio::test]
async fn list_returns_full_documents_without_status() {
    let app = app_with_trigger_and_action().await;
    for name in ["r1", "r2"] {
        put_ok(
            &app,
            &format!("/api/v1/namespaces/_/rules/{name}"),
            GUEST,
            json!({"trigger": "/_/t", "action": "/_/hello"}),
        )
        .await;
    }
    let list = app.get("/api/v1/namespaces/_/rules", GUEST).await.json();
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["name"], "r2");
    assert_eq!(entries[1]["name"], "r1");
    assert!(entries[0].get("status").is_none());
    assert_eq!(entries[0]["trigger"], json!({"path": "guest", "name": "t"}));
    assert_eq!(
        entries[0]["action"],
        json!({"path": "guest", "name": "hello"})
    );
    let count = app
        .get("/api/v1/namespaces/_/rules?count=true", GUEST)
        .await;
    assert_eq!(count.json(), json!({"rules": 2}));
}

#[tokio::test]
async fn other_namespaces_get_403() {
    let app = app_with_trigger_and_action().await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;
    for response in [
        app.get("/api/v1/namespaces/guest/rules/r", OTHER).await,
        app.delete("/api/v1/namespaces/guest/rules/r", OTHER).await,
        app.post(
            "/api/v1/namespaces/guest/rules/r",
            OTHER,
            Some(json!({"status": "inactive"})),
        )
        .await,
        app.put(
            "/api/v1/namespaces/guest/rules/r?overwrite=true",
            OTHER,
            json!({}),
        )
        .await,
    ] {
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert_eq!(
            response.error(),
            "The supplied authentication is not authorized to access 'guest/r'."
        );
    }
    let list = app.get("/api/v1/namespaces/guest/rules", OTHER).await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&app, "r").await, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rule_creates_all_land_in_the_trigger() {
    let app = Arc::new(app_with_trigger_and_action().await);
    let names = ["c1", "c2", "c3", "c4", "c5"];
    let mut tasks = Vec::new();
    for name in names {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            app.put(
                &format!("/api/v1/namespaces/_/rules/{name}"),
                GUEST,
                json!({"trigger": "/_/t", "action": "/_/hello"}),
            )
            .await
        }));
    }
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    }
    let rules = trigger_rules(&app, "t").await;
    let mut recorded: Vec<&String> = rules.as_object().unwrap().keys().collect();
    recorded.sort();
    assert_eq!(
        recorded,
        vec!["guest/c1", "guest/c2", "guest/c3", "guest/c4", "guest/c5"]
    );
}
