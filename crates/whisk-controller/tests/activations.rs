//! The activations read API over a real SQLite store. Activations cannot be produced through
//! the API yet, so records are written straight into the activation store.

#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{GUEST, OTHER, TestApp};
use serde_json::{Value, json};
use whisk_controller::api::activations::activation_entry;
use whisk_model::{
    ActivationId, ActivationResponse, Annotations, EntityName, EntityPath, SemVer, WhiskActivation,
};

fn id(n: u8) -> ActivationId {
    ActivationId::from_bytes([n; 16])
}

/// An action activation of `name` in `namespace`, started at `start`, ran 5 ms.
fn record(namespace: &str, name: &str, n: u8, start: u64, path: &str) -> WhiskActivation {
    WhiskActivation {
        namespace: EntityPath::parse(namespace).unwrap(),
        name: EntityName::new(name).unwrap(),
        subject: namespace.to_owned(),
        activation_id: id(n),
        start,
        end: start + 5,
        duration: None,
        cause: None,
        response: ActivationResponse::success(json!({"n": n}), Some(8)),
        logs: vec![format!("2024-05-29T16:26:40.123456Z    stdout: run {n}")],
        version: SemVer::default(),
        publish: false,
        annotations: Annotations::single("path", json!(path)),
    }
}

async fn store(app: &TestApp, activation: &WhiskActivation) {
    app.store
        .activations
        .put(activation_entry(activation).unwrap())
        .await
        .unwrap();
}

/// guest: hello@1000 (1), hello@2000 (2), utils/split@3000 (3), trigger t@4000 (4),
/// developer error boom@5000 (5); other: hello@1500 (9).
async fn seeded_app() -> TestApp {
    let app = TestApp::new().await;
    store(&app, &record("guest", "hello", 1, 1000, "guest/hello")).await;
    store(&app, &record("guest", "hello", 2, 2000, "guest/hello")).await;
    store(
        &app,
        &record("guest", "split", 3, 3000, "guest/utils/split"),
    )
    .await;
    let trigger = WhiskActivation {
        end: 0,
        annotations: Annotations::new(),
        logs: vec![
            r#"{"statusCode":0,"success":true,"activationId":"x","rule":"guest/r","action":"guest/hello"}"#
                .to_owned(),
        ],
        ..record("guest", "t", 4, 4000, "")
    };
    store(&app, &trigger).await;
    let failed = WhiskActivation {
        response: ActivationResponse::developer_error(json!("boom")),
        cause: Some(id(2)),
        ..record("guest", "boom", 5, 5000, "guest/boom")
    };
    store(&app, &failed).await;
    store(&app, &record("other", "hello", 9, 1500, "other/hello")).await;
    app
}

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["activationId"].as_str().unwrap().to_owned())
        .collect()
}

fn hex(n: u8) -> String {
    id(n).to_string()
}

#[tokio::test]
async fn list_gives_summaries_newest_first() {
    let app = seeded_app().await;
    let list = app.get("/api/v1/namespaces/_/activations", GUEST).await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(ids_of(&list), vec![hex(5), hex(4), hex(3), hex(2), hex(1)]);

    let failed = &list[0];
    assert_eq!(failed["name"], "boom");
    assert_eq!(failed["statusCode"], 2);
    assert_eq!(failed["cause"], hex(2));
    assert_eq!(failed["start"], 5000);
    assert_eq!(failed["end"], 5005);
    assert_eq!(failed["duration"], 5);
    assert!(failed.get("response").is_none());
    assert!(failed.get("logs").is_none());

    let trigger = &list[1];
    assert_eq!(trigger["name"], "t");
    for absent in ["end", "duration", "statusCode", "cause"] {
        assert!(
            trigger.get(absent).is_none(),
            "{absent} on a trigger record"
        );
    }
    assert_eq!(trigger["annotations"], json!([]));
}

#[tokio::test]
async fn docs_gives_full_records_and_count_counts() {
    let app = seeded_app().await;
    let docs = app
        .get("/api/v1/namespaces/_/activations?docs=true&limit=1", GUEST)
        .await
        .json();
    assert_eq!(docs.as_array().unwrap().len(), 1);
    assert_eq!(
        docs[0]["response"],
        json!({"status": "action developer error", "success": false, "result": {"error": "boom"}})
    );
    assert_eq!(docs[0]["logs"].as_array().unwrap().len(), 1);

    let count = app
        .get("/api/v1/namespaces/_/activations?count=true", GUEST)
        .await;
    assert_eq!(count.json(), json!({"activations": 5}));
    let skipped = app
        .get("/api/v1/namespaces/_/activations?count=true&skip=2", GUEST)
        .await;
    assert_eq!(skipped.json(), json!({"activations": 3}));

    let both = app
        .get(
            "/api/v1/namespaces/_/activations?count=true&docs=true",
            GUEST,
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        both.error(),
        "The parameter 'docs' is not permitted with 'count'."
    );
}

#[tokio::test]
async fn paging_and_filters() {
    let app = seeded_app().await;
    let get_ids = |query: &'static str| {
        let app = &app;
        async move {
            let response = app
                .get(&format!("/api/v1/namespaces/_/activations?{query}"), GUEST)
                .await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{query}: {}",
                response.text
            );
            ids_of(&response.json())
        }
    };
    assert_eq!(get_ids("limit=2&skip=1").await, vec![hex(4), hex(3)]);
    assert_eq!(get_ids("name=hello").await, vec![hex(2), hex(1)]);
    assert_eq!(get_ids("name=utils/split").await, vec![hex(3)]);
    assert_eq!(get_ids("name=split").await, vec![hex(3)]);
    assert_eq!(get_ids("name=nothing").await, Vec::<String>::new());
    assert_eq!(get_ids("name=").await.len(), 5);
    assert_eq!(
        get_ids("since=2000&upto=4000").await,
        vec![hex(4), hex(3), hex(2)]
    );
    assert_eq!(get_ids("since=4001").await, vec![hex(5)]);
    assert_eq!(get_ids("upto=-1").await, Vec::<String>::new());
    assert_eq!(get_ids("since=-100").await.len(), 5);
    assert_eq!(
        get_ids("name=hello&since=1500&upto=2500").await,
        vec![hex(2)]
    );
    let counted = app
        .get(
            "/api/v1/namespaces/_/activations?count=true&name=hello",
            GUEST,
        )
        .await;
    assert_eq!(counted.json(), json!({"activations": 2}));
}

#[tokio::test]
async fn bad_query_parameters_have_exact_messages() {
    let app = TestApp::new().await;
    let cases = [
        (
            "limit=201",
            "The query parameter 'limit' was malformed:\nThe value '201' is not in the range of 0 to 200 for activations.",
        ),
        (
            "limit=x",
            "The query parameter 'limit' was malformed:\nThe value 'x' is not an integer for activations.",
        ),
        (
            "skip=-1",
            "The query parameter 'skip' was malformed:\nThe value '-1' is not greater than or equal to 0 for activations.",
        ),
        (
            "name=a/b/c",
            "The query parameter 'name' was malformed:\nParameter may be a 'simple' name or 'package-name/simple' name: a/b/c",
        ),
        (
            "since=yesterday",
            "The query parameter 'since' was malformed:\nParameter is not a valid value for epoch seconds: yesterday",
        ),
        (
            "upto=1.5",
            "The query parameter 'upto' was malformed:\nParameter is not a valid value for epoch seconds: 1.5",
        ),
    ];
    for (query, message) in cases {
        let response = app
            .get(&format!("/api/v1/namespaces/_/activations?{query}"), GUEST)
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(response.error(), message);
    }
}

#[tokio::test]
async fn get_result_and_logs_of_one_activation() {
    let app = seeded_app().await;
    let path = format!("/api/v1/namespaces/_/activations/{}", hex(2));
    let record = app.get(&path, GUEST).await;
    assert_eq!(record.status, StatusCode::OK);
    let record = record.json();
    assert_eq!(record["activationId"], hex(2));
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["name"], "hello");
    assert_eq!(record["subject"], "guest");
    assert_eq!(record["duration"], 5);
    assert_eq!(
        record["response"],
        json!({"status": "success", "success": true, "result": {"n": 2}, "size": 8})
    );
    assert_eq!(
        record["annotations"],
        json!([{"key": "path", "value": "guest/hello"}])
    );
    let with_slash = app.get(&format!("{path}/"), GUEST).await;
    assert_eq!(with_slash.json(), record);

    let result = app.get(&format!("{path}/result"), GUEST).await;
    assert_eq!(
        result.json(),
        json!({"result": {"n": 2}, "success": true, "status": "success", "size": 8})
    );
    let logs = app.get(&format!("{path}/logs"), GUEST).await;
    assert_eq!(
        logs.json(),
        json!({"logs": ["2024-05-29T16:26:40.123456Z    stdout: run 2"]})
    );

    let trigger = app
        .get(
            &format!("/api/v1/namespaces/guest/activations/{}", hex(4)),
            GUEST,
        )
        .await
        .json();
    assert!(trigger.get("end").is_none());
    assert!(trigger.get("duration").is_none());
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = seeded_app().await;
    for suffix in ["", "/result", "/logs"] {
        let response = app
            .get(
                &format!("/api/v1/namespaces/_/activations/{}{suffix}", hex(7)),
                GUEST,
            )
            .await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{suffix}");
        assert_eq!(response.error(), "The requested resource does not exist.");
    }
    let short = app.get("/api/v1/namespaces/_/activations/abc", GUEST).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert_eq!(short.error(), "Activation id length is 3 but must be 32.");
    let upper = app
        .get(
            &format!("/api/v1/namespaces/_/activations/{}", "AB".repeat(16)),
            GUEST,
        )
        .await;
    assert_eq!(upper.status, StatusCode::BAD_REQUEST);
    assert_eq!(upper.error(), "The activation id is not valid.");
    let unknown_part = app
        .get(
            &format!("/api/v1/namespaces/_/activations/{}/other", hex(1)),
            GUEST,
        )
        .await;
    assert_eq!(unknown_part.status, StatusCode::NOT_FOUND);
    let wrong_method = app
        .delete(
            &format!("/api/v1/namespaces/_/activations/{}", hex(1)),
            GUEST,
        )
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn only_the_invoking_namespace_sees_its_activations() {
    let app = seeded_app().await;
    let own = app.get("/api/v1/namespaces/_/activations", OTHER).await;
    assert_eq!(ids_of(&own.json()), vec![hex(9)]);

    let foreign_list = app.get("/api/v1/namespaces/guest/activations", OTHER).await;
    assert_eq!(foreign_list.status, StatusCode::FORBIDDEN);
    assert_eq!(
        foreign_list.error(),
        "The supplied authentication is not authorized to access 'guest'."
    );
    let foreign_record = app
        .get(
            &format!("/api/v1/namespaces/guest/activations/{}", hex(1)),
            OTHER,
        )
        .await;
    assert_eq!(foreign_record.status, StatusCode::FORBIDDEN);
    assert_eq!(
        foreign_record.error(),
        format!(
            "The supplied authentication is not authorized to access 'guest/{}'.",
            hex(1)
        )
    );
    let not_in_mine = app
        .get(
            &format!("/api/v1/namespaces/_/activations/{}", hex(1)),
            OTHER,
        )
        .await;
    assert_eq!(not_in_mine.status, StatusCode::NOT_FOUND);
}
