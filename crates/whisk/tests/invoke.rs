//! Invocations through the real `whisk standalone` binary over HTTP.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::Platform;

const SERVICE_UNAVAILABLE: &str =
    "The server is currently unavailable (because it is overloaded or down for maintenance).";

async fn create_hello(platform: &Platform) {
    platform
        .guest(
            Method::PUT,
            "/namespaces/_/actions/hello",
            Some(json!({"exec": {"kind": "nodejs:20", "code": "function main(p) { return p }"}})),
        )
        .await
        .assert_ok();
}

#[tokio::test]
async fn without_an_invoker_invocations_answer_503_after_every_check() {
    let platform = Platform::start_with_config(
        "[limits]\ninvocations-per-minute = 3\n[invoker]\nenabled = false\n",
    );
    create_hello(&platform).await;
    platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/hello?blocking=true",
            None,
        )
        .await
        .assert_error(503, SERVICE_UNAVAILABLE);
    platform
        .guest(Method::POST, "/namespaces/_/actions/missing", None)
        .await
        .assert_error(404, "The requested resource does not exist.");
    let big = "x".repeat(1_048_577);
    platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/hello",
            Some(json!({ "big": big })),
        )
        .await
        .assert_error(413, "Request larger than allowed: 1048587 > 1048576 bytes.");
    platform
        .guest(Method::POST, "/namespaces/_/actions/hello", None)
        .await
        .assert_error(
            429,
            "Too many requests in the last minute (count: 4, allowed: 3).",
        );
    // Nothing was accepted, so nothing is listed.
    let listed = platform
        .guest(Method::GET, "/namespaces/_/activations", None)
        .await;
    assert_eq!(listed.assert_ok(), &json!([]));
}

/// An activation accepted before the platform stopped, whose record was never written, gets a
/// `whisk internal error` record at the next start.
#[tokio::test]
async fn an_activation_lost_in_flight_is_closed_at_the_next_start() {
    let mut platform = Platform::start_with_config("[invoker]\nenabled = false\n");
    create_hello(&platform).await;
    platform.stop();

    // What the controller notes before publishing; the process "died" before the invoker
    // stored the record.
    let id = "0123456789abcdef0123456789abcdef";
    let document = json!({
        "namespace": "guest", "name": "hello", "subject": "guest",
        "activationId": id, "start": 1_717_000_000_000u64, "end": 0,
        "response": {"statusCode": 3, "result": {"error": "placeholder"}},
        "logs": [], "version": "0.0.1", "publish": false,
        "annotations": [{"key": "path", "value": "guest/hello"}, {"key": "kind", "value": "nodejs:20"}]
    });
    {
        let store = whisk_store::open_sqlite(platform.data_dir()).expect("open store");
        store
            .activations
            .put_pending(whisk_store::ActivationEntry {
                namespace: "guest".into(),
                activation_id: id.into(),
                name: "hello".into(),
                path_name: None,
                start: 1_717_000_000_000,
                document,
            })
            .await
            .expect("note");
    }

    platform.restart();
    let record = platform
        .guest(
            Method::GET,
            &format!("/namespaces/_/activations/{id}"),
            None,
        )
        .await;
    let record = record.assert_ok();
    assert_eq!(record["response"]["status"], "whisk internal error");
    assert_eq!(
        record["response"]["result"]["error"],
        "The activation was lost because the platform stopped while it was in flight."
    );
    assert!(record["end"].as_u64().unwrap_or(0) > 1_717_000_000_000);
    let annotations = record["annotations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(annotations.contains(&json!({"key": "path", "value": "guest/hello"})));

    // Closed once: a second restart leaves it as it is.
    platform.restart();
    let listed = platform
        .guest(Method::GET, "/namespaces/_/activations", None)
        .await;
    let ids: Vec<Value> = listed
        .assert_ok()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|summary| summary["activationId"].clone())
        .collect();
    assert_eq!(ids, vec![json!(id)]);
}
