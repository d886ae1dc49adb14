//! The official `openwhisk` npm client, unmodified, against a real `whisk standalone`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{GUEST_AUTH, Platform, platform_with_invoker, repo_path};

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

/// Installs the pinned `openwhisk` package once. Tests run in parallel processes and `npm ci`
/// empties `node_modules` first, so installing is done under an exclusive lock on the directory,
/// and only when the pinned version is not there yet (a reinstall could pull the package from
/// under a client another test is starting).
fn install_client() -> std::path::PathBuf {
    let dir = repo_path("tests/npm-client");
    let lock = std::fs::File::open(&dir).expect("open the npm-client directory");
    lock.lock().expect("lock the npm-client directory");
    if !pinned_client_installed(&dir) {
        let install = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci");
        assert!(install.success(), "npm ci failed in {}", dir.display());
    }
    lock.unlock().expect("unlock the npm-client directory");
    dir
}

/// Whether `node_modules` holds the `openwhisk` version `package.json` pins.
fn pinned_client_installed(dir: &std::path::Path) -> bool {
    let read = |path: std::path::PathBuf| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let wanted = read(dir.join("package.json")).map(|p| p["dependencies"]["openwhisk"].clone());
    let installed =
        read(dir.join("node_modules/openwhisk/package.json")).map(|p| p["version"].clone());
    wanted.is_some() && wanted == installed
}

/// Runs `client.mjs` in `mode` against `url` and asserts that every check passed.
fn run_client(dir: &std::path::Path, url: &str, mode: &str) {
    let output = Command::new("node")
        .arg("client.mjs")
        .arg(url)
        .arg(GUEST_AUTH)
        .arg(mode)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "npm client {mode} checks failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("all {mode} checks passed")),
        "{stdout}"
    );
}

#[test]
fn official_npm_client_manages_every_entity_type() {
    if !node_available() {
        return;
    }
    let dir = install_client();
    let platform = Platform::start();
    run_client(&dir, &platform.url, "entities");
}

/// Issue 4: the client invokes actions in real containers, blocking and non-blocking, and reads
/// back their activations, results, logs and lists.
#[test]
fn official_npm_client_invokes_actions_and_reads_their_activations() {
    if !node_available() {
        return;
    }
    let Some(platform) = platform_with_invoker("npm", "", &[]) else {
        return;
    };
    let dir = install_client();
    run_client(&dir, &platform.url, "invoke");
}
