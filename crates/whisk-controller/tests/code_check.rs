//! The [`CodeCheck`] seam: an action's code is checked when the action is written, and refused
//! code is a 400 in OpenWhisk's `{error, code}` shape with nothing stored or changed.

#![allow(clippy::unwrap_used)] // a panic is the right way for a test to fail

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::StatusCode;
use common::{GUEST, TestApp};
use serde_json::{Value, json};
use whisk_controller::{CodeCheck, CodeRefused, ControllerConfig, Invocations};
use whisk_model::Exec;

const REFUSAL: &str = "The action's code is not a valid WebAssembly module: bad magic";

/// Refuses `wasm:wasi` code `"bad"` and records the kind and code of every exec it sees.
#[derive(Debug, Default)]
struct Recording {
    seen: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl CodeCheck for Recording {
    async fn check(&self, exec: &Exec) -> Result<(), CodeRefused> {
        let Exec::Code { kind, code, .. } = exec else {
            return Ok(());
        };
        self.seen.lock().unwrap().push((kind.clone(), code.clone()));
        if kind == "wasm:wasi" && code == "bad" {
            Err(CodeRefused(REFUSAL.to_string()))
        } else {
            Ok(())
        }
    }
}

async fn app() -> (TestApp, Arc<Recording>) {
    let check = Arc::new(Recording::default());
    let app = TestApp::build_checked(
        ControllerConfig::default(),
        Invocations::disabled(),
        check.clone(),
    )
    .await;
    (app, check)
}

fn wasm(code: &str) -> Value {
    json!({"exec": {"kind": "wasm:wasi", "code": code, "binary": true}})
}

const PATH: &str = "/api/v1/namespaces/_/actions/module";

#[tokio::test]
async fn refused_code_is_a_400_at_create_and_nothing_is_stored() {
    let (app, check) = app().await;
    let refused = app.put(PATH, GUEST, wasm("bad")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(refused.error(), REFUSAL);
    assert_eq!(app.get(PATH, GUEST).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        *check.seen.lock().unwrap(),
        vec![("wasm:wasi".to_string(), "bad".to_string())]
    );
}

#[tokio::test]
async fn refused_code_is_a_400_at_update_and_the_action_is_unchanged() {
    let (app, check) = app().await;
    let created = app.put(PATH, GUEST, wasm("good")).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let before = app.get(PATH, GUEST).await.json();

    let refused = app
        .put(&format!("{PATH}?overwrite=true"), GUEST, wasm("bad"))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(refused.error(), REFUSAL);
    assert_eq!(app.get(PATH, GUEST).await.json(), before);

    // An update that writes no exec keeps the stored code and does not check it again.
    let limits = app
        .put(
            &format!("{PATH}?overwrite=true"),
            GUEST,
            json!({"limits": {"timeout": 1000}}),
        )
        .await;
    assert_eq!(limits.status, StatusCode::OK, "{}", limits.text);
    assert_eq!(check.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_existing_action_is_a_conflict_before_its_code_is_checked() {
    let (app, check) = app().await;
    assert_eq!(
        app.put(PATH, GUEST, wasm("good")).await.status,
        StatusCode::OK
    );
    let conflict = app.put(PATH, GUEST, wasm("bad")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text);
    assert_eq!(check.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn every_written_exec_is_checked_not_only_wasm() {
    let (app, check) = app().await;
    let body = json!({"exec": {"kind": "nodejs:default", "code": "function main(){}"}});
    assert_eq!(
        app.put("/api/v1/namespaces/_/actions/js", GUEST, body)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(check.seen.lock().unwrap()[0].0, "nodejs:20");
}
