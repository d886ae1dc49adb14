//! The official `openwhisk` npm client, unmodified, against a real `whisk standalone`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{GUEST_AUTH, Platform, repo_path};

/// Node.js is part of the machines this project targets; a developer machine without it skips
/// this test loudly, but CI (CI=true) must have it and fails instead.
fn node_available() -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Node.js for the npm client test"
        );
        eprintln!("SKIPPED: node is not installed, the npm client test did not run");
    }
    found
}

#[test]
fn official_npm_client_manages_every_entity_type() {
    if !node_available() {
        return;
    }
    let dir = repo_path("tests/npm-client");
    let install = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("run npm ci");
    assert!(install.success(), "npm ci failed in {}", dir.display());

    let platform = Platform::start();
    let output = Command::new("node")
        .arg("client.mjs")
        .arg(&platform.url)
        .arg(GUEST_AUTH)
        .current_dir(&dir)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "npm client checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
