//! The controller reading through its cache: what the API writes, the next invocation runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use whisk_bus::{Bus, InProcessBus};
use whisk_controller::cache::{CacheConfig, Caches};
use whisk_controller::{BalancerConfig, ControllerConfig, Invocations, LoadBalancer};

use common::invoker::{StandIn, echo, wait_healthy};
use common::{GUEST, TestApp};

const HELLO: &str = "/api/v1/namespaces/_/actions/hello";

async fn cached_app() -> (TestApp, Arc<Caches>, StandIn) {
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let balancer = LoadBalancer::new(Arc::clone(&bus), BalancerConfig::default());
    balancer.start().await.unwrap();
    let caches = Caches::new(CacheConfig::default(), None);
    let app = TestApp::build_with(
        ControllerConfig::default(),
        Invocations::new(Arc::clone(&balancer)),
        Some(&caches),
    )
    .await;
    let stand_in = StandIn::start(Arc::clone(&bus), app.store.clone(), 0, 2048, echo()).await;
    wait_healthy(&balancer, 1).await;
    (app, caches, stand_in)
}

async fn put_hello(app: &TestApp, code: &str, overwrite: bool) {
    let path = if overwrite {
        format!("{HELLO}?overwrite=true")
    } else {
        HELLO.to_string()
    };
    let body = json!({"exec": {"kind": "nodejs:20", "code": code}});
    let reply = app.put(&path, GUEST, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Invokes hello blocking and returns the revision the invoker was told to run.
async fn invoke(app: &TestApp, stand_in: &StandIn) -> String {
    let reply = app
        .post(&format!("{HELLO}?blocking=true"), GUEST, Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    stand_in
        .received
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .revision
        .clone()
}

#[tokio::test]
async fn an_update_through_the_api_is_run_by_the_next_invocation() {
    let (app, caches, stand_in) = cached_app().await;
    put_hello(&app, "function main() { return {v: 1} }", false).await;
    let first = invoke(&app, &stand_in).await;
    assert_eq!(invoke(&app, &stand_in).await, first);
    assert!(caches.stats().entity_hits >= 1, "{:?}", caches.stats());

    put_hello(&app, "function main() { return {v: 2} }", true).await;
    let second = invoke(&app, &stand_in).await;
    assert_ne!(second, first, "the update's revision runs at once");
    let stored = app
        .store
        .entities
        .get("guest/hello")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second, stored.revision.to_string());

    // Deleted through the API: the next invocation finds nothing.
    let deleted = app.delete(HELLO, GUEST).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    let reply = app
        .post(&format!("{HELLO}?blocking=true"), GUEST, Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

#[tokio::test]
async fn identities_are_served_from_the_cache_and_a_new_action_is_seen_at_once() {
    let (app, caches, stand_in) = cached_app().await;
    // Missing first: the 404 is not remembered, so the create is seen by the next call.
    let missing = app
        .post(&format!("{HELLO}?blocking=true"), GUEST, Some(json!({})))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    put_hello(&app, "function main() { return {} }", false).await;
    invoke(&app, &stand_in).await;
    let stats = caches.stats();
    assert!(stats.identity_hits >= 2, "{stats:?}");
    assert_eq!(stats.identity_misses, 1, "{stats:?}");
    assert_eq!(
        app.get(HELLO, GUEST).await.json()["name"],
        Value::from("hello")
    );
}
