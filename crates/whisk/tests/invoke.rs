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
    // Only the declared length counts: a raw request that announces 2 MB and sends nothing is
    // refused at once (a real client would still be sending, and might miss the answer).
    let head = oversize_request_head(&platform.url, 2_000_000).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        head.contains("Request larger than allowed: 2000000 > 1048576 bytes."),
        "{head}"
    );
    // Three requests counted so far. Within one wall-clock minute the fourth is refused; should
    // a minute begin meanwhile, counting restarts and the first refusal is again the fourth.
    let mut refused = None;
    for _ in 0..8 {
        let reply = platform
            .guest(Method::POST, "/namespaces/_/actions/hello", None)
            .await;
        if reply.status.as_u16() == 429 {
            refused = Some(reply);
            break;
        }
        reply.assert_error(503, SERVICE_UNAVAILABLE);
    }
    refused.expect("a 429 within 8 requests").assert_error(
        429,
        "Too many requests in the last minute (count: 4, allowed: 3).",
    );
    // Nothing was accepted, so nothing is listed.
    let listed = platform
        .guest(Method::GET, "/namespaces/_/activations", None)
        .await;
    assert_eq!(listed.assert_ok(), &json!([]));
}

/// Sends the head of an invoke that declares `length` bytes of body (and sends none), and
/// returns what the server answers.
async fn oversize_request_head(url: &str, length: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let credentials = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(support::GUEST_AUTH)
    };
    let head = format!(
        "POST /api/v1/namespaces/_/actions/hello HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Basic {credentials}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = std::time::Duration::from_secs(30);
    while !String::from_utf8_lossy(&answer).contains("bytes.") {
        let read = tokio::time::timeout(deadline, stream.read(&mut buffer))
            .await
            .expect("an answer within 30 s")
            .expect("read");
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).into_owned()
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

// ---- real containers ------------------------------------------------------------------------------

async fn put_action(platform: &Platform, name: &str, kind: &str, code: &str) {
    platform
        .guest(
            Method::PUT,
            &format!("/namespaces/_/actions/{name}?overwrite=true"),
            Some(json!({"exec": {"kind": kind, "code": code}})),
        )
        .await
        .assert_ok();
}

fn annotation<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|pair| pair["key"] == key)
        .map(|pair| &pair["value"])
}

#[tokio::test]
async fn nodejs_blocking_invoke_returns_the_record_and_reuses_the_warm_container() {
    let Some(platform) = support::platform_with_invoker("node", "", &[]) else {
        return;
    };
    put_action(
        &platform,
        "hello",
        "nodejs:20",
        "const fs = require('fs');\n\
         function main(p) {\n\
           const seen = fs.existsSync('/tmp/marker');\n\
           fs.writeFileSync('/tmp/marker', 'x');\n\
           console.log('hello ' + p.name);\n\
           return {greeting: 'Hello ' + p.name, warm: seen};\n\
         }",
    )
    .await;
    let reply = platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/hello?blocking=true",
            Some(json!({"name": "Ann"})),
        )
        .await;
    let record = reply.assert_ok().clone();
    let id = record["activationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        reply
            .headers
            .get("x-openwhisk-activation-id")
            .and_then(|value| value.to_str().ok()),
        Some(id.as_str())
    );
    assert_eq!(record["namespace"], "guest");
    assert_eq!(record["name"], "hello");
    assert_eq!(record["subject"], "guest");
    assert_eq!(record["response"]["status"], "success");
    assert_eq!(
        record["response"]["result"],
        json!({"greeting": "Hello Ann", "warm": false})
    );
    assert_eq!(annotation(&record, "path"), Some(&json!("guest/hello")));
    assert_eq!(annotation(&record, "kind"), Some(&json!("nodejs:20")));
    assert_eq!(annotation(&record, "timeout"), Some(&json!(false)));
    assert!(annotation(&record, "waitTime").is_some());
    assert!(annotation(&record, "initTime").is_some(), "a cold start");

    let stored = platform.wait_for_record(&id).await;
    let logs = stored["logs"].as_array().cloned().unwrap_or_default();
    assert!(
        logs.iter().any(|line| line
            .as_str()
            .is_some_and(|l| l.ends_with("stdout: hello Ann"))),
        "{logs:?}"
    );
    let result = platform
        .guest(
            Method::GET,
            &format!("/namespaces/_/activations/{id}/result"),
            None,
        )
        .await;
    assert_eq!(
        result.assert_ok(),
        &json!({"result": {"greeting": "Hello Ann", "warm": false}, "success": true, "status": "success", "size": result.body["size"]})
    );

    let warm = platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/hello?blocking=true&result=true",
            Some(json!({"name": "Bob"})),
        )
        .await;
    assert_eq!(
        warm.assert_ok(),
        &json!({"greeting": "Hello Bob", "warm": true}),
        "the second call lands in the same container"
    );
}

#[tokio::test]
async fn python_non_blocking_invoke_is_polled_until_its_record_appears() {
    let Some(platform) = support::platform_with_invoker("python", "", &[]) else {
        return;
    };
    put_action(
        &platform,
        "square",
        "python:3.11",
        "def main(args):\n    return {'square': args.get('n', 0) ** 2}\n",
    )
    .await;
    let reply = platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/square",
            Some(json!({"n": 7})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let id = reply.body["activationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let record = platform.wait_for_record(&id).await;
    assert_eq!(record["response"]["result"], json!({"square": 49}));
    assert_eq!(annotation(&record, "kind"), Some(&json!("python:3.11")));

    let listed = platform
        .guest(Method::GET, "/namespaces/_/activations?name=square", None)
        .await;
    let listed = listed.assert_ok().as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["activationId"], id.as_str());
    assert_eq!(listed[0]["statusCode"], 0);
}

#[tokio::test]
async fn application_errors_are_502_with_just_the_error_under_result_true() {
    let Some(platform) = support::platform_with_invoker("apperr", "", &[]) else {
        return;
    };
    put_action(
        &platform,
        "fail",
        "nodejs:20",
        "function main() { return {error: 'bad input'} }",
    )
    .await;
    let reply = platform
        .guest(
            Method::POST,
            "/namespaces/_/actions/fail?blocking=true&result=true",
            None,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 502, "{}", reply.text);
    assert_eq!(reply.body, json!({"error": "bad input"}));
}

#[tokio::test]
async fn concurrent_throttle_counts_activations_still_running() {
    let Some(platform) = support::platform_with_invoker(
        "throttle",
        "[limits]\ninvocations-per-minute = 100000\nconcurrent-invocations = 1\n",
        &[],
    ) else {
        return;
    };
    put_action(
        &platform,
        "slow",
        "nodejs:20",
        "function main() { return new Promise(r => setTimeout(() => r({}), 3000)) }",
    )
    .await;
    let first = platform
        .guest(Method::POST, "/namespaces/_/actions/slow", None)
        .await;
    assert_eq!(first.status.as_u16(), 202, "{}", first.text);
    platform
        .guest(Method::POST, "/namespaces/_/actions/slow", None)
        .await
        .assert_error(
            429,
            "Too many concurrent requests in flight (count: 1, allowed: 1).",
        );
    let id = first.body["activationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    platform.wait_for_record(&id).await;
    // The completion may trail the record by a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let third = platform
            .guest(Method::POST, "/namespaces/_/actions/slow", None)
            .await;
        if third.status.as_u16() == 202 {
            break;
        }
        third.assert_error(
            429,
            "Too many concurrent requests in flight (count: 1, allowed: 1).",
        );
        assert!(std::time::Instant::now() < deadline, "slot never released");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stopping_the_platform_mid_run_leaves_a_record() {
    let Some(mut platform) = support::platform_with_invoker("stop", "", &[]) else {
        return;
    };
    put_action(
        &platform,
        "sleepy",
        "nodejs:20",
        "function main() { console.log('started'); return new Promise(r => setTimeout(() => r({}), 60000)) }",
    )
    .await;
    let reply = platform
        .guest(Method::POST, "/namespaces/_/actions/sleepy", None)
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let id = reply.body["activationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // A graceful stop records what the invoker cuts short; had the activation not reached the
    // invoker yet, the next start would close it from its pending note. A record either way.
    platform.restart();
    let record = platform.wait_for_record(&id).await;
    assert_eq!(
        record["response"]["status"], "whisk internal error",
        "{record}"
    );
}
