//! A controller over a real SQLite store in a temporary directory, with a stepping clock and
//! predictable ids, driven in-process with `tower::ServiceExt::oneshot`.

#![allow(dead_code, clippy::unwrap_used)]

pub mod invoker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;
use whisk_bus::{Bus, InProcessBus};
use whisk_controller::{
    AcceptAnyCode, AppState, BalancerConfig, Clock, CodeCheck, ControllerConfig, IdSource,
    Invocations, LoadBalancer, router,
};
use whisk_model::{ActivationId, AuthKey};
use whisk_store::Store;

/// The well-known guest credentials.
pub const GUEST: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
/// A second namespace, `other`.
pub const OTHER: &str = "11111111-2222-3333-4444-555555555555:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";
/// A third namespace, `blocked`, whose subject is blocked.
pub const BLOCKED: &str = "99999999-2222-3333-4444-555555555555:xyzzO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// Epoch ms the test clock starts at.
pub const START_MILLIS: u64 = 1_717_000_000_000;

/// Every reading is one millisecond later than the previous one, so "newest first" is
/// deterministic.
#[derive(Debug)]
pub struct SteppingClock(AtomicU64);

impl Clock for SteppingClock {
    fn now_millis(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// Transaction ids `tid00000000000000000000000000001`, ... and counting activation ids.
#[derive(Debug, Default)]
pub struct CountingIds(AtomicU64);

impl IdSource for CountingIds {
    fn transaction_id(&self) -> String {
        format!("tid{:029}", self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn activation_id(&self) -> ActivationId {
        let next = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&next.to_be_bytes());
        ActivationId::from_bytes(bytes)
    }
}

pub struct TestApp {
    pub store: Store,
    pub router: Router,
    _dir: TempDir,
}

/// A decoded response.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// The `error` of an error body, after checking `code` is the transaction id.
    pub fn error(&self) -> String {
        let body = self.json();
        let code = body["code"].as_str().expect("error body has a code");
        assert_eq!(Some(code), self.header("x-request-id"));
        body["error"]
            .as_str()
            .expect("error body has an error")
            .to_owned()
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_config(ControllerConfig::default()).await
    }

    pub async fn with_config(config: ControllerConfig) -> TestApp {
        Self::build(config, Invocations::disabled()).await
    }

    /// A controller whose invocations go over an in-process bus through a balancer (started,
    /// controller 0). Pair it with [`invoker::StandIn`] on `balancer.bus()`.
    pub async fn with_balancer(config: ControllerConfig) -> (TestApp, Arc<LoadBalancer>) {
        Self::with_balancer_config(config, BalancerConfig::default()).await
    }

    pub async fn with_balancer_config(
        config: ControllerConfig,
        balancer_config: BalancerConfig,
    ) -> (TestApp, Arc<LoadBalancer>) {
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
        let balancer = LoadBalancer::new(bus, balancer_config);
        balancer.start().await.unwrap();
        let app = Self::build(config, Invocations::new(Arc::clone(&balancer))).await;
        (app, balancer)
    }

    pub async fn build(config: ControllerConfig, invocations: Invocations) -> TestApp {
        Self::build_checked(config, invocations, Arc::new(AcceptAnyCode)).await
    }

    /// A controller whose actions' code is checked by `code_check` when written.
    pub async fn build_checked(
        config: ControllerConfig,
        invocations: Invocations,
        code_check: Arc<dyn CodeCheck>,
    ) -> TestApp {
        Self::build_full(config, invocations, code_check, None).await
    }

    /// [`TestApp::build`] with the API reading through `caches` (as the binaries do); `store`
    /// stays the uncached store, for writes behind the cache's back.
    pub async fn build_with(
        config: ControllerConfig,
        invocations: Invocations,
        caches: Option<&Arc<whisk_controller::cache::Caches>>,
    ) -> TestApp {
        Self::build_full(config, invocations, Arc::new(AcceptAnyCode), caches).await
    }

    async fn build_full(
        config: ControllerConfig,
        invocations: Invocations,
        code_check: Arc<dyn CodeCheck>,
        caches: Option<&Arc<whisk_controller::cache::Caches>>,
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        for (subject, credentials) in [("guest", GUEST), ("other", OTHER), ("blocked", BLOCKED)] {
            let key = AuthKey::parse(credentials).unwrap();
            store
                .subjects
                .create_subject(subject, subject, &key)
                .await
                .unwrap();
        }
        store.subjects.set_blocked("blocked", true).await.unwrap();
        let served = match caches {
            Some(caches) => whisk_controller::cache::cached(store.clone(), caches),
            None => store.clone(),
        };
        let state = AppState {
            store: served,
            config: Arc::new(config),
            clock: Arc::new(SteppingClock(AtomicU64::new(START_MILLIS))),
            ids: Arc::new(CountingIds::default()),
            invocations: Arc::new(invocations),
            code_check,
        };
        TestApp {
            store,
            router: router(state),
            _dir: dir,
        }
    }

    /// Sends a request; `body` is sent as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credentials: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(credentials) = credentials {
            builder = builder.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(credentials)),
            );
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub async fn get(&self, path: &str, credentials: &str) -> TestResponse {
        self.call(Method::GET, path, Some(credentials), None).await
    }

    pub async fn put(&self, path: &str, credentials: &str, body: Value) -> TestResponse {
        self.call(Method::PUT, path, Some(credentials), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, credentials: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(credentials), None)
            .await
    }

    pub async fn post(&self, path: &str, credentials: &str, body: Option<Value>) -> TestResponse {
        self.call(Method::POST, path, Some(credentials), body).await
    }
}
