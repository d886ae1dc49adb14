//! The second half of an invocation (REFERENCE §7.5): once the handler has checked rights,
//! sizes, the action and its `final` parameters, this module throttles, builds the activation
//! message, notes it as pending, hands it to the balancer and answers: `202` at once for a
//! non-blocking call, else the record (or just its result) when it comes back in time.
//!
//! Nothing accepted may vanish without a record: a *pending* note is written to the store
//! before the activation is published, the record written by the invoker clears it in the same
//! transaction, and [`close_unfinished`] turns the notes a stopped platform left behind into
//! `whisk internal error` records at the next start.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use whisk_model::activation::annotation_keys;
use whisk_model::bus::ActivationMessage;
use whisk_model::{
    ActivationId, ActivationResponse, ActivationStatus, Annotations, EntityName, EntityPath,
    FullyQualifiedEntityName, Identity, WhiskAction, WhiskActivation,
};
use whisk_store::{ActivationEntry, ActivationStore, Store, StoreError};

use crate::api::activations::{ActivationEncodeError, activation_entry};
use crate::balancer::{BalancerError, LoadBalancer, Published};
use crate::error::{ApiError, ApiResult, messages};
use crate::state::AppState;
use crate::throttle::{RateThrottle, check_concurrent};

/// The header every answer about an accepted activation carries.
pub const ACTIVATION_ID_HEADER: HeaderName = HeaderName::from_static("x-openwhisk-activation-id");

/// The result of an activation that was in flight when the platform stopped.
pub const LOST_ACTIVATION: &str =
    "The activation was lost because the platform stopped while it was in flight.";

/// How much longer than the action's time limit a blocking call waits for the record: the
/// invoker still has to start or resume a container, collect logs and store the record.
pub const BLOCKING_MARGIN: Duration = Duration::from_secs(5);

/// How often a blocking call looks in the store when the completion carried no record.
const STORE_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The invocation machinery a controller runs with: the balancer (absent when this process
/// runs no invocations at all) and the per-minute throttles of invocations and trigger fires.
#[derive(Debug, Default)]
pub struct Invocations {
    balancer: Option<Arc<LoadBalancer>>,
    rate: RateThrottle,
    /// `firesPerMinute` has its own count: fires and invocations do not use up each other's quota.
    fires: RateThrottle,
    /// The cluster's store when the throttles are counted there (see [`crate::throttle`]).
    shared: Option<Arc<dyn ActivationStore>>,
}

impl Invocations {
    /// No balancer: every check still runs, then invocations answer 503.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Invocations go through `balancer`; the throttles count in this process (one controller).
    pub fn new(balancer: Arc<LoadBalancer>) -> Self {
        Self {
            balancer: Some(balancer),
            rate: RateThrottle::new(),
            fires: RateThrottle::new(),
            shared: None,
        }
    }

    /// Invocations go through `balancer`; the throttles count in `activations`, the store every
    /// controller of the cluster shares: per-minute counters there, and the namespace's open
    /// pending notes as its concurrent activations. `activations` must see every controller's
    /// notes in [`ActivationStore::pending_count`].
    pub fn shared(balancer: Arc<LoadBalancer>, activations: Arc<dyn ActivationStore>) -> Self {
        Self {
            balancer: Some(balancer),
            rate: RateThrottle::shared(Arc::clone(&activations), "invocations"),
            fires: RateThrottle::shared(Arc::clone(&activations), "fires"),
            shared: Some(activations),
        }
    }

    pub fn balancer(&self) -> Option<&Arc<LoadBalancer>> {
        self.balancer.as_ref()
    }

    /// The two namespace throttles of an action invocation, per minute first, then concurrent.
    /// Runs before the action is looked up, so even invocations of missing actions count.
    pub async fn throttle(&self, state: &AppState, caller: &Identity) -> ApiResult<()> {
        let limits = &state.config.limits;
        self.rate
            .check(
                &caller.uuid,
                limits.invocations_per_minute_for(&caller.limits),
                state.clock.now_millis(),
            )
            .await?;
        let in_flight = match (&self.shared, &self.balancer) {
            (Some(activations), _) => activations.pending_count(&caller.namespace).await?,
            (None, Some(balancer)) => balancer.in_flight_for(&caller.uuid),
            (None, None) => 0,
        };
        check_concurrent(in_flight, limits.concurrent_invocations_for(&caller.limits))
    }

    /// The `firesPerMinute` throttle of a trigger fire (§6.3), counted before the trigger is
    /// looked up like the invocation throttles.
    pub async fn throttle_fire(&self, state: &AppState, caller: &Identity) -> ApiResult<()> {
        let limit = caller
            .limits
            .fires_per_minute
            .unwrap_or(state.config.limits.fires_per_minute);
        self.fires
            .check(&caller.uuid, limit, state.clock.now_millis())
            .await
    }
}

/// What the handler resolved for one invocation.
#[derive(Debug)]
pub(crate) struct Activation<'a> {
    pub caller: &'a Identity,
    /// `uuid:key` for `__OW_API_KEY`, already filtered by `provide-api-key`.
    pub api_key: Option<String>,
    /// The action with its package's (and binding's) parameters merged under its own.
    pub action: &'a WhiskAction,
    pub revision: String,
    /// The binding the action was reached through.
    pub binding: Option<EntityPath>,
    pub payload: Map<String, Value>,
    pub blocking: bool,
    pub result_only: bool,
    /// The caller's longest wait, in ms.
    pub wait_ms: u64,
    pub transaction_id: String,
    pub accepted_at: u64,
    /// The enclosing sequence, composition or trigger activation.
    pub cause: Option<ActivationId>,
    /// `causedBy` annotation of the record (e.g. `sequence`).
    pub caused_by: Option<String>,
}

/// An activation handed to an invoker, not yet finished.
#[derive(Debug)]
pub(crate) struct Started {
    pub activation_id: ActivationId,
    /// The namespace the record will be stored in.
    pub namespace: String,
    published: Published,
    run_limit: Duration,
}

/// Publishes the activation and answers as §7.5 says.
pub(crate) async fn activate(state: &AppState, activation: Activation<'_>) -> ApiResult<Response> {
    let blocking = activation.blocking;
    let result_only = activation.result_only;
    let wait = Duration::from_millis(activation.wait_ms);
    let started = start(state, activation).await?;
    if !blocking {
        return Ok(accepted(&started.activation_id));
    }
    let activation_id = started.activation_id.clone();
    match wait_for_record(state, started, wait).await? {
        Some(record) => Ok(record_response(&record, result_only)),
        None => Ok(accepted(&activation_id)),
    }
}

/// Everything up to and including the hand-over to an invoker: the pending note, the message,
/// the balancer. Callers that compose activations (sequences, rules, web actions) use it with
/// [`wait_for_record`].
pub(crate) async fn start(state: &AppState, activation: Activation<'_>) -> ApiResult<Started> {
    let Some(balancer) = state.invocations.balancer() else {
        tracing::warn!(action = %activation.action.doc_id(), "no invocation path in this process");
        return Err(ApiError::unavailable(messages::SERVICE_UNAVAILABLE));
    };
    let action = activation.action;
    let activation_id = state.ids.activation_id();
    let (content, init_args) = split_parameters(action, activation.payload);
    let message = ActivationMessage {
        transaction_id: activation.transaction_id,
        activation_id: activation_id.clone(),
        action: action.fqn(),
        revision: activation.revision,
        user: activation.caller.clone(),
        api_key: activation.api_key,
        content,
        init_args,
        blocking: activation.blocking,
        completion_topic: balancer.completion_topic(),
        cause: activation.cause.clone(),
        caused_by: activation.caused_by.clone(),
        binding: activation.binding.clone(),
        invoked_as: None,
        accepted_at: activation.accepted_at,
    };

    let mut lost = lost_record_template(
        activation.caller,
        action,
        activation.binding.as_ref(),
        &activation_id,
        activation.accepted_at,
    )?;
    lost.cause = activation.cause;
    let note = activation_entry(&lost).map_err(internal("pending note does not encode"))?;
    let activations = &state.store.activations;
    activations.put_pending(note.clone()).await?;

    let run_limit = Duration::from_millis(action.limits.timeout);
    let published = match balancer
        .publish(&message, action.limits.memory, run_limit)
        .await
    {
        Ok(published) => published,
        Err(error) => {
            if let Err(cleanup) = activations
                .remove_pending(&note.namespace, &note.activation_id)
                .await
            {
                tracing::error!(%cleanup, %activation_id, "cannot remove the pending note of an activation never published");
            }
            return Err(publish_error(&error));
        }
    };
    tracing::info!(
        %activation_id,
        action = %message.action,
        invoker = published.invoker,
        blocking = activation.blocking,
        "activation accepted"
    );
    Ok(Started {
        activation_id,
        namespace: activation.caller.namespace.clone(),
        published,
        run_limit,
    })
}

/// Waits up to `wait` (at most the action's time limit plus [`BLOCKING_MARGIN`]) for the
/// record of a started activation; `None` when it is not there in time.
pub(crate) async fn wait_for_record(
    state: &AppState,
    started: Started,
    wait: Duration,
) -> ApiResult<Option<WhiskActivation>> {
    let wait = wait.min(started.run_limit + BLOCKING_MARGIN);
    let deadline = Instant::now() + wait;
    if let Ok(Ok(completion)) =
        tokio::time::timeout_at(deadline, started.published.completion).await
        && let Some(record) = completion.record
    {
        return Ok(Some(record));
    }
    // The completion came without a record, or the slots were released without one: the
    // store is the only witness left until the caller's wait is over.
    let activation_id = started.activation_id;
    let activations = &state.store.activations;
    loop {
        if let Some(document) = activations
            .get(&started.namespace, activation_id.as_str())
            .await?
        {
            let record: WhiskActivation = serde_json::from_value(document).map_err(|error| {
                tracing::error!(%error, %activation_id, "stored activation does not decode");
                ApiError::internal()
            })?;
            return Ok(Some(record));
        }
        if Instant::now() + STORE_POLL_INTERVAL >= deadline {
            tracing::info!(%activation_id, wait_ms = wait.as_millis(), "wait for the record over");
            return Ok(None);
        }
        tokio::time::sleep(STORE_POLL_INTERVAL).await;
    }
}

/// Merges the request body over the (already merged) action parameters, then moves the
/// parameters the action marks `init` out of the run input into the `/init` environment.
fn split_parameters(
    action: &WhiskAction,
    payload: Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut content = action.parameters.to_object();
    content.extend(payload);
    let mut init_args = Map::new();
    for key in action.parameters.init_keys() {
        if let Some(value) = content.remove(key) {
            init_args.insert(key.to_owned(), value);
        }
    }
    (content, init_args)
}

/// The record stored if this activation is lost: everything known at acceptance, and the
/// platform's error as its result.
fn lost_record_template(
    caller: &Identity,
    action: &WhiskAction,
    binding: Option<&EntityPath>,
    activation_id: &ActivationId,
    start: u64,
) -> ApiResult<WhiskActivation> {
    let namespace = EntityName::namespace(caller.namespace.clone())
        .map(EntityPath::namespace)
        .map_err(internal("caller namespace is not a valid name"))?;
    let fqn: FullyQualifiedEntityName = action.fqn();
    let mut annotations = Annotations::new();
    annotations.insert(
        annotation_keys::PATH,
        json!(format!("{}/{}", fqn.path, fqn.name)),
    );
    annotations.insert(annotation_keys::KIND, json!(action.exec.kind()));
    annotations.insert(annotation_keys::LIMITS, json!(action.limits));
    if let Some(binding) = binding {
        annotations.insert(annotation_keys::BINDING, json!(binding.to_string()));
    }
    Ok(WhiskActivation {
        namespace,
        name: action.name.clone(),
        subject: caller.subject.clone(),
        activation_id: activation_id.clone(),
        start,
        end: 0,
        duration: None,
        cause: None,
        response: ActivationResponse::whisk_error(json!(LOST_ACTIVATION)),
        logs: Vec::new(),
        version: action.version,
        publish: false,
        annotations,
    })
}

fn internal<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ApiError {
    move |error| {
        tracing::error!(%error, "{what}");
        ApiError::internal()
    }
}

fn publish_error(error: &BalancerError) -> ApiError {
    match error {
        BalancerError::NoInvokers => ApiError::unavailable(messages::SERVICE_UNAVAILABLE),
        BalancerError::Encode(_) | BalancerError::Bus(_) => {
            tracing::error!(%error, "activation not published");
            ApiError::unavailable(messages::SERVICE_UNAVAILABLE)
        }
    }
}

/// `202 {"activationId": id}`.
pub(crate) fn accepted(activation_id: &ActivationId) -> Response {
    with_activation_id(
        StatusCode::ACCEPTED,
        Json(json!({ "activationId": activation_id })),
        activation_id,
    )
}

/// A finished activation: `200` success, `502` application or developer error, `500` platform
/// error; the body is the record, or with `result=true` its result, and a JSON array result
/// is always sent bare.
pub fn record_response(record: &WhiskActivation, result_only: bool) -> Response {
    let status = match record.response.status() {
        ActivationStatus::Success => StatusCode::OK,
        ActivationStatus::ApplicationError | ActivationStatus::DeveloperError => {
            StatusCode::BAD_GATEWAY
        }
        ActivationStatus::WhiskInternalError => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = match &record.response.result {
        Some(array @ Value::Array(_)) => array.clone(),
        Some(result) if result_only => result.clone(),
        None if result_only => json!({}),
        _ => record.to_api_json(),
    };
    with_activation_id(status, Json(body), &record.activation_id)
}

fn with_activation_id(
    status: StatusCode,
    body: impl IntoResponse,
    activation_id: &ActivationId,
) -> Response {
    let mut response = (status, body).into_response();
    if let Ok(value) = HeaderValue::from_str(activation_id.as_str()) {
        response.headers_mut().insert(ACTIVATION_ID_HEADER, value);
    }
    response
}

/// Why the leftovers of a previous run could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Encode(#[from] ActivationEncodeError),
}

/// Writes a `whisk internal error` record for every activation a previous run accepted and
/// never finished. Call it at start, before the API accepts invocations; returns how many were
/// closed. A note whose document no longer decodes is dropped (and logged): there is nothing
/// trustworthy to write.
pub async fn close_unfinished(store: &Store, now_millis: u64) -> Result<usize, CloseError> {
    let mut closed = 0;
    for note in store.activations.pending().await? {
        let (namespace, activation_id) = (note.namespace.clone(), note.activation_id.clone());
        if close_lost(store, note, now_millis).await?.is_some() {
            tracing::warn!(%namespace, %activation_id, "closed an activation lost by the previous run");
            closed += 1;
        }
    }
    Ok(closed)
}

/// Writes the `whisk internal error` record of one pending note whose activation is known to
/// be lost (its invoker died, or the previous run did), ending at `now_millis`. Returns the
/// record written; `None` when there was nothing to write: a record already exists (the note
/// is then dropped) or the note no longer decodes (dropped and logged).
pub async fn close_lost(
    store: &Store,
    note: ActivationEntry,
    now_millis: u64,
) -> Result<Option<WhiskActivation>, CloseError> {
    let ActivationEntry {
        namespace,
        activation_id,
        document,
        ..
    } = note;
    let mut record: WhiskActivation = match serde_json::from_value(document) {
        Ok(record) => record,
        Err(error) => {
            tracing::error!(%error, %namespace, %activation_id, "dropping an unreadable pending note");
            store
                .activations
                .remove_pending(&namespace, &activation_id)
                .await?;
            return Ok(None);
        }
    };
    record.end = now_millis.max(record.start.saturating_add(1));
    record.duration = None;
    record.response = ActivationResponse::whisk_error(json!(LOST_ACTIVATION));
    match store.activations.put(activation_entry(&record)?).await {
        Ok(()) => Ok(Some(record)),
        Err(StoreError::AlreadyExists(_)) => {
            store
                .activations
                .remove_pending(&namespace, &activation_id)
                .await?;
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use whisk_model::Parameter;
    use whisk_model::names::ActivationId;

    fn record(response: ActivationResponse) -> WhiskActivation {
        serde_json::from_value(json!({
            "namespace": "guest", "name": "hello", "subject": "guest",
            "activationId": ActivationId::from_bytes([1; 16]),
            "start": 1, "end": 3,
            "response": response,
            "logs": [], "version": "0.0.1", "publish": false, "annotations": []
        }))
        .unwrap()
    }

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn statuses_follow_the_outcome_and_carry_the_id() {
        let cases = [
            (ActivationResponse::success(json!({"a": 1}), None), 200),
            (ActivationResponse::application_error(json!("no")), 502),
            (ActivationResponse::developer_error(json!("bad")), 502),
            (ActivationResponse::whisk_error(json!("oops")), 500),
        ];
        for (response, status) in cases {
            let record = record(response.clone());
            let full = record_response(&record, false);
            assert_eq!(full.status().as_u16(), status);
            assert_eq!(
                full.headers()[&ACTIVATION_ID_HEADER],
                record.activation_id.as_str()
            );
            assert_eq!(body(full).await, record.to_api_json());
            let result = record_response(&record, true);
            assert_eq!(result.status().as_u16(), status);
            assert_eq!(body(result).await, response.result.unwrap());
        }
    }

    #[tokio::test]
    async fn array_results_are_sent_bare_even_without_result_only() {
        let record = record(ActivationResponse::success(json!([1, 2]), None));
        assert_eq!(body(record_response(&record, false)).await, json!([1, 2]));
        let missing = record_from_missing_result();
        assert_eq!(body(record_response(&missing, true)).await, json!({}));
    }

    fn record_from_missing_result() -> WhiskActivation {
        let mut record = record(ActivationResponse::success(json!({}), None));
        record.response.result = None;
        record
    }

    #[test]
    fn request_overrides_parameters_and_init_ones_move_to_init_args() {
        let mut action: WhiskAction = serde_json::from_value(json!({
            "namespace": "guest", "name": "hello",
            "exec": {"kind": "nodejs:20", "code": "x", "binary": false},
            "limits": {"timeout": 60000, "memory": 256}
        }))
        .unwrap();
        action.parameters.insert("a", json!(1));
        action.parameters.insert("b", json!(2));
        let mut secret = Parameter::new("secret", json!("s"));
        secret.init = true;
        action.parameters.insert_parameter(secret);
        let payload = json!({"b": 3, "c": 4, "secret": "override"});
        let (content, init) = split_parameters(&action, payload.as_object().unwrap().clone());
        assert_eq!(Value::Object(content), json!({"a": 1, "b": 3, "c": 4}));
        assert_eq!(Value::Object(init), json!({"secret": "override"}));
    }
}
