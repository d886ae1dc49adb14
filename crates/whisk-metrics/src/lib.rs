//! Operator metrics of whisk-rs in Prometheus' text format.
//!
//! One [`Metrics`] registry per process, reached through [`global`]: the controller and the
//! invoker record into it where things happen (a throttle refusing, an activation ending, a
//! container being taken) without a handle being threaded through every constructor, which
//! would touch every crate's wiring for what is a side channel. Tests make their own
//! [`Metrics`] so that their counts are not shared with anything else in the process.
//!
//! Names follow Prometheus' conventions (`whisk_` prefix, base units: seconds, `_total` on
//! counters), so dashboards can be written against them without reading this code.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use whisk_model::WhiskActivation;

/// Path of the scrape endpoint on every role.
pub const METRICS_PATH: &str = "/metrics";

/// Content type of Prometheus' classic text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
    #[error("cannot serve the metrics: {0}")]
    Serve(#[from] std::io::Error),
}

/// An activation's outcome, as OpenWhisk's four statuses (`success`, `application error`,
/// `action developer error`, `whisk internal error`), and the runtime kind it ran on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivationLabels {
    kind: String,
    status: String,
}

/// How a container was obtained for an activation.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Start {
    /// A new container, created and initialized for this activation.
    Cold,
    /// A container already initialized with this action's code.
    Warm,
    /// A stem cell (started ahead without code), initialized for this activation.
    Prewarm,
}

impl Start {
    fn as_str(self) -> &'static str {
        match self {
            Start::Cold => "cold",
            Start::Warm => "warm",
            Start::Prewarm => "prewarm",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    start: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Which throttle refused a request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Throttle {
    /// The per-minute invocation rate of the namespace.
    Rate,
    /// The namespace's activations in flight.
    Concurrency,
}

impl Throttle {
    fn as_str(self) -> &'static str {
        match self {
            Throttle::Rate => "rate",
            Throttle::Concurrency => "concurrency",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    throttle: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// The sizes of an invoker's container pool at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSizes {
    /// Containers bound to an action and running at least one activation.
    pub busy: u64,
    /// Containers bound to an action, idle (warm or frozen).
    pub idle: u64,
    /// Stem cells ready for any action of their kind and memory.
    pub prewarm: u64,
    /// Activations waiting for a container.
    pub waiting: u64,
}

fn time_histogram() -> Histogram {
    // 1 ms to about 65 s: warm runs sit at the low end, cold starts of the JVM kinds and
    // actions near their time limit at the high end.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn call_histogram() -> Histogram {
    // 100 µs to about 3 s: a store or bus call slower than that is an outage, not latency.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// The registry and every metric of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    activations: Family<ActivationLabels, Counter>,
    starts: Family<StartLabels, Counter>,
    wait: Family<KindLabels, Histogram, fn() -> Histogram>,
    init: Family<KindLabels, Histogram, fn() -> Histogram>,
    run: Family<KindLabels, Histogram, fn() -> Histogram>,
    containers: Family<StateLabels, Gauge>,
    pool_waiting: Gauge,
    in_flight: Gauge,
    throttled: Family<ThrottleLabels, Counter>,
    store_calls: Family<OperationLabels, Histogram, fn() -> Histogram>,
    bus_calls: Family<OperationLabels, Histogram, fn() -> Histogram>,
    wasm_compiles: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every whisk-rs metric registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("whisk");
        let activations = Family::<ActivationLabels, Counter>::default();
        registry.register(
            "activations",
            "Activations ended, by runtime kind and status",
            activations.clone(),
        );
        let starts = Family::<StartLabels, Counter>::default();
        registry.register(
            "container_starts",
            "Containers taken for an activation: cold (created), warm (reused) or prewarm (stem cell)",
            starts.clone(),
        );
        let histogram = |registry: &mut Registry, name: &str, help: &str| {
            let family: Family<KindLabels, Histogram, fn() -> Histogram> =
                Family::new_with_constructor(time_histogram);
            registry.register(name, help, family.clone());
            family
        };
        let wait = histogram(
            &mut registry,
            "activation_wait_seconds",
            "Time from the controller accepting an activation to the invoker starting it",
        );
        let init = histogram(
            &mut registry,
            "activation_init_seconds",
            "Time initializing a container with the action's code (cold and prewarm starts)",
        );
        let run = histogram(
            &mut registry,
            "activation_run_seconds",
            "Time running the action (the record's duration)",
        );
        let containers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "containers",
            "Containers of this invoker's pool by state (busy, idle, prewarm)",
            containers.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "pool_waiting_activations",
            "Activations of this invoker waiting for a container",
            pool_waiting.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "controller_in_flight_activations",
            "Activations this controller published and has not seen completed",
            in_flight.clone(),
        );
        let throttled = Family::<ThrottleLabels, Counter>::default();
        registry.register(
            "throttled_requests",
            "Requests refused with 429 by a namespace throttle (rate or concurrency)",
            throttled.clone(),
        );
        let store_calls: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "store_call_seconds",
            "Latency of store calls, by operation",
            store_calls.clone(),
        );
        let bus_calls: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "bus_call_seconds",
            "Latency of bus calls, by operation",
            bus_calls.clone(),
        );
        let wasm_compiles = time_histogram();
        registry.register(
            "wasm_compile_seconds",
            "Compilations of WebAssembly modules, by time taken: an engine's cache misses, and the checks of actions written to a controller without an engine",
            wasm_compiles.clone(),
        );
        Self {
            registry,
            activations,
            starts,
            wait,
            init,
            run,
            containers,
            pool_waiting,
            in_flight,
            throttled,
            store_calls,
            bus_calls,
            wasm_compiles,
        }
    }

    /// Counts one ended activation of `kind` with `status` (the record's status text).
    pub fn activation(&self, kind: &str, status: &str) {
        self.activations
            .get_or_create(&ActivationLabels {
                kind: kind.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// Counts one container taken for an activation.
    pub fn container_start(&self, start: Start) {
        self.starts
            .get_or_create(&StartLabels {
                start: start.as_str(),
            })
            .inc();
    }

    /// Observes the times of one activation of `kind`; `init` only when it had to initialize.
    pub fn activation_times(
        &self,
        kind: &str,
        wait: Option<Duration>,
        init: Option<Duration>,
        run: Option<Duration>,
    ) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        for (family, time) in [(&self.wait, wait), (&self.init, init), (&self.run, run)] {
            if let Some(time) = time {
                family.get_or_create(&labels).observe(time.as_secs_f64());
            }
        }
    }

    /// Counts and times one activation from its record: the status, the `kind` annotation
    /// (`unknown` without one, e.g. a record written for an action that could not be read), the
    /// `waitTime` and `initTime` annotations and the duration.
    pub fn activation_record(&self, record: &WhiskActivation) {
        let kind = record
            .annotations
            .get_str("kind")
            .unwrap_or("unknown")
            .to_owned();
        self.activation(&kind, record.response.status().as_str());
        let millis = |key: &str| {
            record
                .annotations
                .get(key)
                .and_then(|value| value.as_u64())
                .map(Duration::from_millis)
        };
        self.activation_times(
            &kind,
            millis("waitTime"),
            millis("initTime"),
            record.effective_duration().map(Duration::from_millis),
        );
    }

    /// Sets the container pool gauges.
    pub fn pool_sizes(&self, sizes: PoolSizes) {
        for (state, count) in [
            ("busy", sizes.busy),
            ("idle", sizes.idle),
            ("prewarm", sizes.prewarm),
        ] {
            self.containers
                .get_or_create(&StateLabels { state })
                .set(saturating_i64(count));
        }
        self.pool_waiting.set(saturating_i64(sizes.waiting));
    }

    /// Sets the number of activations the controller has in flight.
    pub fn in_flight(&self, count: u64) {
        self.in_flight.set(saturating_i64(count));
    }

    /// Counts one request refused by `throttle`.
    pub fn throttled(&self, throttle: Throttle) {
        self.throttled
            .get_or_create(&ThrottleLabels {
                throttle: throttle.as_str(),
            })
            .inc();
    }

    /// Observes one store call of `operation` that took `elapsed`.
    pub fn store_call(&self, operation: &'static str, elapsed: Duration) {
        self.store_calls
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Observes one bus call of `operation` that took `elapsed`.
    pub fn bus_call(&self, operation: &'static str, elapsed: Duration) {
        self.bus_calls
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Observes one compilation of a WebAssembly module that took `elapsed` (its count is how
    /// many modules this process compiled, which tells whether invocations found them ready).
    pub fn wasm_compile(&self, elapsed: Duration) {
        self.wasm_compiles.observe(elapsed.as_secs_f64());
    }

    /// Everything in Prometheus' text exposition format.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The registry of this process.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// `GET /metrics` of the process registry.
pub async fn handler() -> Response {
    respond(global())
}

fn respond(metrics: &Metrics) -> Response {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics not served");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A router with just `GET /metrics`, to merge into an application or serve alone.
pub fn router() -> Router {
    Router::new().route(METRICS_PATH, get(handler))
}

/// Serves `/metrics` alone on `listener` until `shutdown` completes: the scrape endpoint of a
/// process without an API of its own (`whisk invoker --metrics-port`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MetricsError> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The value of the sample line starting with `series` (name and labels as encoded).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    #[test]
    fn counts_activations_by_kind_and_status() {
        let metrics = Metrics::new();
        metrics.activation("nodejs:20", "success");
        metrics.activation("nodejs:20", "success");
        metrics.activation("python:3", "action developer error");
        let text = metrics.encode().unwrap();
        assert_eq!(
            sample(
                &text,
                r#"whisk_activations_total{kind="nodejs:20",status="success"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"whisk_activations_total{kind="python:3",status="action developer error"}"#
            ),
            Some(1.0)
        );
        assert!(
            text.contains("# TYPE whisk_activations_total counter"),
            "{text}"
        );
    }

    #[test]
    fn counts_and_times_wasm_compilations() {
        let metrics = Metrics::new();
        let text = metrics.encode().unwrap();
        assert_eq!(sample(&text, "whisk_wasm_compile_seconds_count"), Some(0.0));
        metrics.wasm_compile(Duration::from_millis(3));
        metrics.wasm_compile(Duration::from_millis(5));
        let text = metrics.encode().unwrap();
        assert_eq!(sample(&text, "whisk_wasm_compile_seconds_count"), Some(2.0));
        assert_eq!(sample(&text, "whisk_wasm_compile_seconds_sum"), Some(0.008));
    }

    #[test]
    fn counts_starts_and_throttles() {
        let metrics = Metrics::new();
        metrics.container_start(Start::Cold);
        metrics.container_start(Start::Warm);
        metrics.container_start(Start::Warm);
        metrics.container_start(Start::Prewarm);
        metrics.throttled(Throttle::Rate);
        metrics.throttled(Throttle::Concurrency);
        metrics.throttled(Throttle::Concurrency);
        let text = metrics.encode().unwrap();
        for (series, value) in [
            (r#"whisk_container_starts_total{start="cold"}"#, 1.0),
            (r#"whisk_container_starts_total{start="warm"}"#, 2.0),
            (r#"whisk_container_starts_total{start="prewarm"}"#, 1.0),
            (r#"whisk_throttled_requests_total{throttle="rate"}"#, 1.0),
            (
                r#"whisk_throttled_requests_total{throttle="concurrency"}"#,
                2.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in {text}");
        }
    }

    #[test]
    fn observes_times_in_seconds_and_skips_missing_ones() {
        let metrics = Metrics::new();
        metrics.activation_times(
            "nodejs:20",
            Some(Duration::from_millis(3)),
            None,
            Some(Duration::from_millis(1500)),
        );
        let text = metrics.encode().unwrap();
        assert_eq!(
            sample(
                &text,
                r#"whisk_activation_wait_seconds_sum{kind="nodejs:20"}"#
            ),
            Some(0.003)
        );
        assert_eq!(
            sample(
                &text,
                r#"whisk_activation_run_seconds_count{kind="nodejs:20"}"#
            ),
            Some(1.0)
        );
        // 1.5 s is above the 1.024 s bucket and within the 2.048 s one.
        assert_eq!(
            sample(
                &text,
                r#"whisk_activation_run_seconds_bucket{le="1.024",kind="nodejs:20"}"#
            )
            .or_else(|| sample(
                &text,
                r#"whisk_activation_run_seconds_bucket{kind="nodejs:20",le="1.024"}"#
            )),
            Some(0.0),
            "{text}"
        );
        assert!(
            !text.contains(r#"whisk_activation_init_seconds_count{kind="nodejs:20"}"#),
            "no init was observed: {text}"
        );
    }

    #[test]
    fn gauges_follow_the_last_value() {
        let metrics = Metrics::new();
        metrics.pool_sizes(PoolSizes {
            busy: 3,
            idle: 2,
            prewarm: 1,
            waiting: 4,
        });
        metrics.pool_sizes(PoolSizes {
            busy: 1,
            idle: 2,
            prewarm: 0,
            waiting: 0,
        });
        metrics.in_flight(7);
        metrics.store_call("activation_put", Duration::from_millis(2));
        metrics.bus_call("publish", Duration::from_millis(1));
        let text = metrics.encode().unwrap();
        for (series, value) in [
            (r#"whisk_containers{state="busy"}"#, 1.0),
            (r#"whisk_containers{state="idle"}"#, 2.0),
            (r#"whisk_containers{state="prewarm"}"#, 0.0),
            ("whisk_pool_waiting_activations", 0.0),
            ("whisk_controller_in_flight_activations", 7.0),
            (
                r#"whisk_store_call_seconds_count{operation="activation_put"}"#,
                1.0,
            ),
            (r#"whisk_bus_call_seconds_count{operation="publish"}"#, 1.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in {text}");
        }
    }

    fn record(status_code: u8, annotations: serde_json::Value) -> WhiskActivation {
        serde_json::from_value(serde_json::json!({
            "namespace": "guest",
            "name": "hello",
            "subject": "guest",
            "activationId": "0123456789abcdef0123456789abcdef",
            "start": 1_000,
            "end": 1_250,
            "response": {"statusCode": status_code, "result": {}},
            "annotations": annotations,
        }))
        .unwrap()
    }

    #[test]
    fn records_give_status_kind_and_times() {
        let metrics = Metrics::new();
        metrics.activation_record(&record(
            0,
            serde_json::json!([
                {"key": "kind", "value": "python:3"},
                {"key": "waitTime", "value": 40},
                {"key": "initTime", "value": 120},
            ]),
        ));
        metrics.activation_record(&record(3, serde_json::json!([])));
        let text = metrics.encode().unwrap();
        for (series, value) in [
            (
                r#"whisk_activations_total{kind="python:3",status="success"}"#,
                1.0,
            ),
            (
                r#"whisk_activations_total{kind="unknown",status="whisk internal error"}"#,
                1.0,
            ),
            (
                r#"whisk_activation_wait_seconds_sum{kind="python:3"}"#,
                0.04,
            ),
            (
                r#"whisk_activation_init_seconds_sum{kind="python:3"}"#,
                0.12,
            ),
            (r#"whisk_activation_run_seconds_sum{kind="python:3"}"#, 0.25),
            (r#"whisk_activation_run_seconds_count{kind="unknown"}"#, 1.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in {text}");
        }
        assert!(
            !text.contains(r#"whisk_activation_wait_seconds_count{kind="unknown"}"#),
            "{text}"
        );
    }

    #[test]
    fn huge_gauge_values_saturate() {
        assert_eq!(saturating_i64(u64::MAX), i64::MAX);
        assert_eq!(saturating_i64(5), 5);
    }

    #[tokio::test]
    async fn serves_the_process_registry_over_http() {
        global().throttled(Throttle::Rate);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        let response = reqwest::get(format!("http://{address}{METRICS_PATH}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            CONTENT_TYPE
        );
        let text = response.text().await.unwrap();
        let count = sample(&text, r#"whisk_throttled_requests_total{throttle="rate"}"#).unwrap();
        assert!(count >= 1.0, "{text}");
        let missing = reqwest::get(format!("http://{address}/other"))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn errors_say_what_failed() {
        let error = MetricsError::from(std::io::Error::other("gone"));
        assert!(error.to_string().contains("cannot serve the metrics"));
        let error = MetricsError::from(std::fmt::Error);
        assert!(error.to_string().contains("cannot encode"));
    }
}
