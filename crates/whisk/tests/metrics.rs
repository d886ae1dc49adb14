//! Operator metrics and JSON logs of the real `whisk standalone` binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use support::Platform;

/// The value of the sample line of `series` (name and labels as encoded) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_on_the_api_port_count_throttled_requests() {
    let platform = Platform::start_with_config(
        "[limits]\ninvocations-per-minute = 1\n[invoker]\nenabled = false\n",
    );
    let metrics_url = format!("{}/metrics", platform.url);
    let before = platform.raw().get(&metrics_url).send().await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(
        before.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        before.headers()
    );
    let text = before.text().await.unwrap();
    // Label-less metrics are there from the start; families appear with their first sample.
    assert!(
        text.contains("# TYPE whisk_controller_in_flight_activations gauge"),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"whisk_throttled_requests_total{throttle="rate"}"#),
        None,
        "nothing refused yet: {text}"
    );
    // The per-minute throttle counts before the action is looked up, so a missing action does.
    // With one request allowed a minute, the second is refused (or the third, should a minute
    // begin in between).
    let mut refused = 0;
    for _ in 0..3 {
        let reply = platform
            .guest(Method::POST, "/namespaces/_/actions/missing", None)
            .await;
        if reply.status.as_u16() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 1, "no request was throttled");
    let text = platform
        .raw()
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&text, r#"whisk_throttled_requests_total{throttle="rate"}"#),
        Some(f64::from(refused)),
        "{text}"
    );
    assert!(
        text.contains("# TYPE whisk_throttled_requests_total counter"),
        "{text}"
    );
}

#[test]
fn json_logs_carry_the_transaction_id() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(data_dir.path())
        .env("WHISK_INVOKER_ENABLED", "false")
        .env("WHISK_LOG", "info")
        .env("WHISK_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdout = BufReader::new(stdout).lines();
    let first = stdout.next().unwrap().unwrap();
    let url = first.rsplit(' ').next().unwrap().to_owned();
    std::thread::spawn(move || for _ in stdout {});

    let tid = format!("metrics-test-{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/api/v1/namespaces"))
            .basic_auth(
                "23bc46b1-71f6-4ed5-8c54-816aa4f8c502",
                Some("123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"),
            )
            .header("X-Request-ID", &tid)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines_rx.recv_timeout(left) else {
            break None;
        };
        let parsed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("log line is not JSON ({error}): {line}"));
        if parsed["span"]["tid"] == tid.as_str() {
            break Some(parsed);
        }
        seen.push(line);
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let line = found.unwrap_or_else(|| panic!("no log line with tid {tid} in {seen:#?}"));
    assert_eq!(line["span"]["name"], "request");
    assert!(line["level"].is_string(), "{line}");
    assert!(line["fields"]["message"].is_string(), "{line}");
}
