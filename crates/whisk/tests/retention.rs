//! `[retention]`: a platform configured with an activation time-to-live purges older records in
//! the background and keeps the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use support::Platform;
use whisk_model::WhiskActivation;

fn record(id: &str, start: u64) -> WhiskActivation {
    serde_json::from_value(json!({
        "namespace": "guest",
        "name": "hello",
        "subject": "guest",
        "activationId": id,
        "start": start,
        "end": start + 5,
        "response": {"statusCode": 0, "result": {}},
        "logs": [],
        "version": "0.0.1",
        "publish": false,
        "annotations": []
    }))
    .unwrap()
}

#[tokio::test]
async fn records_older_than_the_ttl_are_purged_and_newer_ones_kept() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let old_id = "0".repeat(31) + "1";
    let new_id = "0".repeat(31) + "2";
    let platform = Platform::start_with_config(
        "[invoker]\nenabled = false\n\n[retention]\nactivation-ttl-hours = 1\n",
    );
    {
        // The platform's own store file, written beside it (SQLite allows a second writer).
        let store = whisk_store::open_sqlite(platform.data_dir()).unwrap();
        for (id, start) in [(&old_id, now - 2 * 3_600_000), (&new_id, now - 60_000)] {
            let entry =
                whisk_controller::api::activations::activation_entry(&record(id, start)).unwrap();
            store.activations.put(entry).await.unwrap();
        }
    }
    let get = |id: String| {
        let platform = &platform;
        async move {
            platform
                .guest(
                    Method::GET,
                    &format!("/namespaces/_/activations/{id}"),
                    None,
                )
                .await
                .status
        }
    };
    assert_eq!(get(new_id.clone()).await, 200);
    // The purge runs at start and then every interval: restart so the new records are seen by a
    // purge that runs now, rather than waiting an hour.
    let mut platform = platform;
    platform.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let old = platform
            .guest(
                Method::GET,
                &format!("/namespaces/_/activations/{old_id}"),
                None,
            )
            .await
            .status;
        if old == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old record is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let kept = platform
        .guest(
            Method::GET,
            &format!("/namespaces/_/activations/{new_id}"),
            None,
        )
        .await;
    assert_eq!(kept.status, 200, "the recent record is kept");
}

#[test]
fn a_zero_ttl_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("whisk.toml");
    std::fs::write(&config, "[retention]\nactivation-ttl-hours = 0\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .env("WHISK_INVOKER_ENABLED", "false")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("activation-ttl-hours must be at least 1"),
        "{stderr}"
    );
}
