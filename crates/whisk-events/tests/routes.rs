//! The feed provider's routes over a real SQLite store, driven in process.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tower::ServiceExt;
use whisk_controller::{AppState, ControllerConfig};
use whisk_events::{Events, FeedStore};
use whisk_model::identity::AuthKey;

const GUEST: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
const SYSTEM: &str = "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

struct Fixture {
    app: Router,
    events: Events,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = whisk_store::open_sqlite(dir.path()).unwrap();
    for (subject, key) in [("guest", GUEST), ("whisk.system", SYSTEM)] {
        store
            .subjects
            .create_subject(subject, subject, &AuthKey::parse(key).unwrap())
            .await
            .unwrap();
    }
    let state = AppState::new(store, ControllerConfig::default());
    let events = Events::new(
        state,
        FeedStore::open(dir.path()).unwrap(),
        "http://example.test:3233/",
    );
    let app = events.app();
    call(
        &app,
        Method::PUT,
        "/api/v1/namespaces/_/triggers/t",
        Some(json!({})),
    )
    .await;
    Fixture {
        app,
        events,
        _dir: dir,
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    send(
        app,
        method,
        path,
        Some(GUEST),
        body.map(|body| body.to_string()),
    )
    .await
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        request = request.header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(auth)),
        );
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(body.map_or_else(Body::empty, Body::from))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn alarm(fixture: &Fixture, body: Value) -> (StatusCode, Value) {
    call(
        &fixture.app,
        Method::POST,
        "/api/v1/feeds/alarms/alarm",
        Some(body),
    )
    .await
}

#[tokio::test]
async fn update_merges_into_the_registration_and_read_reports_it() {
    let fixture = fixture().await;
    let (status, _) = alarm(
        &fixture,
        json!({"lifecycleEvent": "CREATE", "triggerName": "/_/t", "cron": "0 * * * *",
               "trigger_payload": {"a": 1}, "authKey": GUEST}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = alarm(
        &fixture,
        json!({"lifecycleEvent": "update", "triggerName": "t", "timezone": "Europe/Paris"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, read) = alarm(
        &fixture,
        json!({"lifecycleEvent": "READ", "triggerName": "/guest/t"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["config"]["cron"], "0 * * * *");
    assert_eq!(read["config"]["timezone"], "Europe/Paris");
    assert_eq!(read["config"]["payload"], json!({"a": 1}));
    assert_eq!(read["config"]["name"], "t");
    assert_eq!(read["status"]["active"], true);

    let (status, body) = alarm(
        &fixture,
        json!({"lifecycleEvent": "UPDATE", "triggerName": "t", "timezone": "Nowhere/Else"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "timezone 'Nowhere/Else' is not a known IANA time zone"
    );
}

#[tokio::test]
async fn malformed_feed_calls_are_400_and_unknown_things_404() {
    let fixture = fixture().await;
    let cases: [(&str, Option<String>, StatusCode, &str); 6] = [
        (
            "/api/v1/feeds/alarms/alarm",
            Some("not json".into()),
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON object",
        ),
        (
            "/api/v1/feeds/alarms/alarm",
            Some(json!({"triggerName": "t"}).to_string()),
            StatusCode::BAD_REQUEST,
            "lifecycleEvent is required",
        ),
        (
            "/api/v1/feeds/alarms/alarm",
            Some(json!({"lifecycleEvent": "CREATE"}).to_string()),
            StatusCode::BAD_REQUEST,
            "triggerName is required",
        ),
        (
            "/api/v1/feeds/alarms/alarm",
            Some(json!({"lifecycleEvent": "CREATE", "triggerName": "/a/b/c"}).to_string()),
            StatusCode::BAD_REQUEST,
            "triggerName '/a/b/c' is not valid",
        ),
        (
            "/api/v1/feeds/alarms/hourly",
            Some(json!({"lifecycleEvent": "CREATE", "triggerName": "t"}).to_string()),
            StatusCode::NOT_FOUND,
            "no alarm feed 'hourly'",
        ),
        (
            "/api/v1/feeds/webhooks",
            Some(json!({"lifecycleEvent": "PAUSE", "triggerName": "t"}).to_string()),
            StatusCode::BAD_REQUEST,
            "unsupported lifecycleEvent PAUSE",
        ),
    ];
    for (path, body, status, message) in cases {
        let (got, answer) = send(&fixture.app, Method::POST, path, Some(GUEST), body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(message)),
            "{path}"
        );
    }
    let (status, _) = send(
        &fixture.app,
        Method::POST,
        "/api/v1/feeds/alarms/alarm",
        Some("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:wrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwron"),
        Some(json!({"lifecycleEvent": "CREATE", "triggerName": "t"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for event in ["DELETE", "PAUSE", "UNPAUSE"] {
        let (status, _) = alarm(
            &fixture,
            json!({"lifecycleEvent": event, "triggerName": "t"}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{event}");
    }
}

#[tokio::test]
async fn webhook_update_keeps_the_url_and_changes_the_check() {
    let fixture = fixture().await;
    let path = "/api/v1/feeds/webhooks";
    let (status, created) = call(
        &fixture.app,
        Method::POST,
        path,
        Some(json!({"lifecycleEvent": "CREATE", "triggerName": "t"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["provider"], "none");
    let url = created["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("http://example.test:3233/api/v1/webhooks/"),
        "{url}"
    );

    let (status, updated) = call(
        &fixture.app,
        Method::POST,
        path,
        Some(json!({"lifecycleEvent": "UPDATE", "triggerName": "t", "slack_signing_secret": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["url"], url);
    let (_, read) = call(
        &fixture.app,
        Method::POST,
        path,
        Some(json!({"lifecycleEvent": "READ", "triggerName": "t"})),
    )
    .await;
    assert_eq!(read["config"]["provider"], "slack");

    // Unsigned requests are now refused.
    let token_path = url.trim_start_matches("http://example.test:3233");
    let (status, body) = send(
        &fixture.app,
        Method::POST,
        token_path,
        None,
        Some("{}".into()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["error"],
        "the X-Slack-Request-Timestamp header is missing"
    );

    // UPDATE of a trigger without a webhook is 404.
    call(
        &fixture.app,
        Method::PUT,
        "/api/v1/namespaces/_/triggers/u",
        Some(json!({})),
    )
    .await;
    let (status, _) = call(
        &fixture.app,
        Method::POST,
        path,
        Some(json!({"lifecycleEvent": "UPDATE", "triggerName": "u"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unsigned_webhook_to_a_trigger_without_rules_is_204() {
    let fixture = fixture().await;
    let (_, created) = call(
        &fixture.app,
        Method::POST,
        "/api/v1/feeds/webhooks",
        Some(json!({"lifecycleEvent": "CREATE", "triggerName": "t"})),
    )
    .await;
    let url = created["url"].as_str().unwrap();
    let token_path = url.trim_start_matches("http://example.test:3233");
    let (status, _) = send(
        &fixture.app,
        Method::POST,
        token_path,
        None,
        Some("{}".into()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A Slack URL check is answered with its challenge.
    let (status, body) = send(
        &fixture.app,
        Method::POST,
        token_path,
        None,
        Some(json!({"type": "url_verification", "challenge": "abc"}).to_string()),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"challenge": "abc"}))
    );
}

#[tokio::test]
async fn shipped_packages_install_once_and_the_controller_still_answers_behind_the_routes() {
    let fixture = fixture().await;
    // With a key that is not whisk.system's the install is refused, not skipped silently.
    let refused = whisk_events::install(fixture.events.controller(), GUEST).await;
    assert!(
        matches!(refused, Err(whisk_events::InstallError::Refused { .. })),
        "{refused:?}"
    );
    let written = whisk_events::install(fixture.events.controller(), SYSTEM)
        .await
        .unwrap();
    assert_eq!(written, ["alarms", "webhooks", "utils"]);
    let again = whisk_events::install(fixture.events.controller(), SYSTEM)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let (status, _) = call(
        &fixture.app,
        Method::GET,
        "/api/v1/namespaces/whisk.system/actions/utils/echo",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controllers_installing_at_once_all_succeed_and_leave_the_packages_current() {
    let fixture = fixture().await;
    // A refusal other than a conflict is not retried.
    let refused =
        whisk_events::install_shared(fixture.events.controller(), GUEST, 20, Default::default())
            .await;
    assert!(
        matches!(
            refused,
            Err(whisk_events::InstallError::Refused { status, .. }) if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED
        ),
        "{refused:?}"
    );
    let installs: Vec<_> = (0..4)
        .map(|_| {
            let api = fixture.events.controller().clone();
            tokio::spawn(async move {
                whisk_events::install_shared(&api, SYSTEM, 20, std::time::Duration::from_millis(10))
                    .await
            })
        })
        .collect();
    for install in installs {
        install.await.unwrap().unwrap();
    }
    let again = whisk_events::install(fixture.events.controller(), SYSTEM)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}
