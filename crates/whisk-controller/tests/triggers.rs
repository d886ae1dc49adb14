//! The triggers API over a real SQLite store.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{GUEST, OTHER, TestApp};
use serde_json::{Value, json};

async fn put_ok(app: &TestApp, path: &str, credentials: &str, body: Value) -> Value {
    let response = app.put(path, credentials, body).await;
    assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.text);
    response.json()
}

#[tokio::test]
async fn create_get_and_delete_answer_the_trigger() {
    let app = TestApp::new().await;
    let created = put_ok(
        &app,
        "/api/v1/namespaces/_/triggers/t",
        GUEST,
        json!({"parameters": [{"key": "type", "value": "webhook"}],
               "annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}],
               "rules": {"guest/forged": {"action": {"path": "guest", "name": "a"}, "status": "active"}}}),
    )
    .await;
    assert_eq!(created["namespace"], "guest");
    assert_eq!(created["name"], "t");
    assert_eq!(created["version"], "0.0.1");
    assert_eq!(created["publish"], false);
    assert_eq!(created["limits"], json!({}));
    assert_eq!(
        created["parameters"],
        json!([{"key": "type", "value": "webhook"}])
    );
    assert!(created.get("rules").is_none(), "client rules are ignored");

    let read = app.get("/api/v1/namespaces/guest/triggers/t", GUEST).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), created);

    let deleted = app.delete("/api/v1/namespaces/_/triggers/t", GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json(), created);

    for response in [
        app.get("/api/v1/namespaces/_/triggers/t", GUEST).await,
        app.delete("/api/v1/namespaces/_/triggers/t", GUEST).await,
    ] {
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.error(), "The requested resource does not exist.");
    }
}

#[tokio::test]
async fn update_replaces_parameters_and_annotations_wholesale_and_keeps_rules() {
    let app = TestApp::new().await;
    let path = "/api/v1/namespaces/_/triggers/t";
    put_ok(
        &app,
        path,
        GUEST,
        json!({"parameters": [{"key": "a", "value": 1}, {"key": "b", "value": 2}],
               "annotations": [{"key": "x", "value": 1}]}),
    )
    .await;
    let again = app.put(path, GUEST, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error(), "resource already exists");

    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "function main(){}"}}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;

    let updated = put_ok(
        &app,
        &format!("{path}?overwrite=true"),
        GUEST,
        json!({"parameters": [{"key": "c", "value": 3}], "rules": {}}),
    )
    .await;
    assert_eq!(updated["version"], "0.0.2");
    assert_eq!(updated["parameters"], json!([{"key": "c", "value": 3}]));
    assert_eq!(updated["annotations"], json!([{"key": "x", "value": 1}]));
    assert_eq!(
        updated["rules"],
        json!({"guest/r": {"action": {"path": "guest", "name": "hello"}, "status": "active"}})
    );

    let cleared = put_ok(
        &app,
        &format!("{path}?overwrite=true"),
        GUEST,
        json!({"annotations": []}),
    )
    .await;
    assert_eq!(cleared["annotations"], json!([]));
    assert_eq!(cleared["parameters"], json!([{"key": "c", "value": 3}]));
    assert_eq!(cleared["version"], "0.0.3");
}

#[tokio::test]
async fn feed_annotations_must_name_an_entity() {
    let app = TestApp::new().await;
    for feed in [json!("bad!feed"), json!(true), json!("")] {
        let response = app
            .put(
                "/api/v1/namespaces/_/triggers/t",
                GUEST,
                json!({"annotations": [{"key": "feed", "value": feed}]}),
            )
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{feed}");
        assert_eq!(response.error(), "Feed name is not valid");
    }
    let missing = app.get("/api/v1/namespaces/_/triggers/t", GUEST).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_trigger_leaves_its_rules_inactive() {
    let app = TestApp::new().await;
    put_ok(&app, "/api/v1/namespaces/_/triggers/t", GUEST, json!({})).await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "function main(){}"}}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;
    let deleted = app.delete("/api/v1/namespaces/_/triggers/t", GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json()["rules"]["guest/r"]["status"], "active");

    let rule = app.get("/api/v1/namespaces/_/rules/r", GUEST).await;
    assert_eq!(rule.status, StatusCode::OK);
    assert_eq!(rule.json()["status"], "inactive");
}

#[tokio::test]
async fn list_gives_summaries_newest_first_with_paging_and_count() {
    let app = TestApp::new().await;
    for name in ["t1", "t2", "t3"] {
        put_ok(
            &app,
            &format!("/api/v1/namespaces/_/triggers/{name}"),
            GUEST,
            json!({"parameters": [{"key": "p", "value": 1}]}),
        )
        .await;
    }
    let list = app.get("/api/v1/namespaces/_/triggers", GUEST).await.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["t3", "t2", "t1"]);
    let mut keys: Vec<&str> = list[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "annotations",
            "name",
            "namespace",
            "publish",
            "updated",
            "version"
        ]
    );

    let page = app
        .get("/api/v1/namespaces/_/triggers?limit=1&skip=2", GUEST)
        .await;
    assert_eq!(page.json()[0]["name"], "t1");
    assert_eq!(page.json().as_array().unwrap().len(), 1);
    let count = app
        .get("/api/v1/namespaces/_/triggers?count=true", GUEST)
        .await;
    assert_eq!(count.json(), json!({"triggers": 3}));
    let bad = app
        .get("/api/v1/namespaces/_/triggers?skip=-1", GUEST)
        .await;
    assert_eq!(
        bad.error(),
        "The query parameter 'skip' was malformed:\nThe value '-1' is not greater than or equal to 0 for triggers."
    );
}

#[tokio::test]
async fn other_namespaces_get_403_on_everything() {
    let app = TestApp::new().await;
    put_ok(&app, "/api/v1/namespaces/_/triggers/t", GUEST, json!({})).await;
    let denied = "The supplied authentication is not authorized to access 'guest/t'.";
    for response in [
        app.get("/api/v1/namespaces/guest/triggers/t", OTHER).await,
        app.put(
            "/api/v1/namespaces/guest/triggers/t?overwrite=true",
            OTHER,
            json!({}),
        )
        .await,
        app.delete("/api/v1/namespaces/guest/triggers/t", OTHER)
            .await,
        app.post("/api/v1/namespaces/guest/triggers/t", OTHER, None)
            .await,
        app.get("/api/v1/namespaces/guest/triggers/missing", OTHER)
            .await,
    ] {
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert!(
            response
                .error()
                .starts_with("The supplied authentication is not authorized to access 'guest/")
        );
    }
    let read = app.get("/api/v1/namespaces/guest/triggers/t", OTHER).await;
    assert_eq!(read.error(), denied);
    let list = app.get("/api/v1/namespaces/guest/triggers", OTHER).await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    assert_eq!(
        list.error(),
        "The supplied authentication is not authorized to access 'guest'."
    );
}

#[tokio::test]
async fn fire_checks_rights_body_and_existence_before_answering() {
    let app = TestApp::new().await;
    let missing = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, Some(json!({})))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    put_ok(&app, "/api/v1/namespaces/_/triggers/t", GUEST, json!({})).await;
    let no_rules = app
        .post(
            "/api/v1/namespaces/_/triggers/t",
            GUEST,
            Some(json!({"x": 1})),
        )
        .await;
    assert_eq!(no_rules.status, StatusCode::NO_CONTENT);
    assert_eq!(no_rules.text, "");

    let array = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, Some(json!([1])))
        .await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
    assert!(
        array
            .error()
            .starts_with("The request content was malformed:\n")
    );

    let oversized = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/namespaces/_/triggers/t")
        .header(
            header::AUTHORIZATION,
            format!("Basic {}", base64_credentials(GUEST)),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            "{{\"x\":\"{}\"}}",
            "y".repeat(1_048_576)
        )))
        .unwrap();
    let oversized = app.send(oversized).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        oversized.error(),
        "Request larger than allowed: 1048584 > 1048576 bytes."
    );

    put_ok(
        &app,
        "/api/v1/namespaces/_/actions/hello",
        GUEST,
        json!({"exec": {"kind": "nodejs:20", "code": "function main(){}"}}),
    )
    .await;
    put_ok(
        &app,
        "/api/v1/namespaces/_/rules/r",
        GUEST,
        json!({"trigger": "/_/t", "action": "/_/hello"}),
    )
    .await;
    let with_rule = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, None)
        .await;
    // Accepted even though this controller cannot run the rule's action (tests/firing.rs
    // covers the record).
    assert_eq!(with_rule.status, StatusCode::ACCEPTED, "{}", with_rule.text);
    assert!(with_rule.json()["activationId"].is_string());

    let disabled = app
        .post(
            "/api/v1/namespaces/_/rules/r",
            GUEST,
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    let inactive = app
        .post("/api/v1/namespaces/_/triggers/t", GUEST, None)
        .await;
    assert_eq!(inactive.status, StatusCode::NO_CONTENT);
}

fn base64_credentials(credentials: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(credentials)
}
