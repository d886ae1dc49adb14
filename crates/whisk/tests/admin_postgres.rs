//! `whisk admin --store postgres://…`: users and limits on a cluster's PostgreSQL store (the test
//! server `.ci/run` starts, found through `WHISK_TEST_POSTGRES_URL`), each test in a schema of
//! its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn postgres() -> Option<String> {
    let url = std::env::var("WHISK_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!("SKIPPED: WHISK_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL)");
    }
    url
}

/// A schema no other test uses.
fn fresh_schema(name: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("adm_{name}_{}_{n}", std::process::id())
}

fn admin(store: &str, schema: &str, args: &[&str]) -> Output {
    let data_dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_whisk"))
        .arg("admin")
        .args(["--store", store, "--store-schema", schema])
        .arg("--data-dir")
        .arg(data_dir.path())
        .args(args)
        .env_remove("WHISK_STORE_CA")
        .env_remove("WHISK_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run whisk admin")
}

#[track_caller]
fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "whisk admin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

#[test]
fn users_and_limits_live_in_the_cluster_store() {
    let Some(store) = postgres() else {
        return;
    };
    let schema = fresh_schema("users");
    let key = stdout_of(&admin(&store, &schema, &["user", "create", "alice-admin"]));
    let (uuid, secret) = key.trim().split_once(':').expect("uuid:key");
    assert_eq!(secret.len(), 64, "{key}");

    // A second process sees what the first wrote: it is in PostgreSQL, not in a data directory.
    let got = stdout_of(&admin(&store, &schema, &["user", "get", "alice-admin"]));
    assert_eq!(got.trim(), format!("alice-admin\t{uuid}"));
    let list = stdout_of(&admin(&store, &schema, &["user", "list"]));
    assert!(
        list.lines().any(|line| line == "alice-admin\talice-admin"),
        "{list}"
    );

    let set = stdout_of(&admin(
        &store,
        &schema,
        &[
            "limits",
            "set",
            "alice-admin",
            "--invocations-per-minute",
            "5",
        ],
    ));
    assert_eq!(set.trim(), "Limits successfully set for \"alice-admin\"");
    let limits = stdout_of(&admin(&store, &schema, &["limits", "get", "alice-admin"]));
    let limits: serde_json::Value = serde_json::from_str(&limits).expect("limits JSON");
    assert_eq!(limits["invocationsPerMinute"], 5, "{limits}");
    stdout_of(&admin(
        &store,
        &schema,
        &["limits", "delete", "alice-admin"],
    ));
    assert_eq!(
        stdout_of(&admin(&store, &schema, &["limits", "get", "alice-admin"])).trim(),
        "No limits found, default system limits apply"
    );

    stdout_of(&admin(&store, &schema, &["user", "delete", "alice-admin"]));
    let missing = admin(&store, &schema, &["user", "get", "alice-admin"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("subject 'alice-admin' does not exist"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[test]
fn an_unreachable_store_is_an_error_naming_it() {
    // A port nothing listens on: bound, read back, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://whisk@127.0.0.1:{port}/whisk");
    let output = admin(&url, "adm_unreachable", &["user", "list"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the cluster store"), "{stderr}");
}

#[test]
fn a_schema_without_a_store_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_whisk"))
        .args(["admin", "--store-schema", "adm_alone", "user", "list"])
        .env_remove("WHISK_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run whisk admin");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("required arguments were not provided") && stderr.contains("--store <"),
        "{stderr}"
    );
}
