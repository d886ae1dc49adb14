//! Sequences (REFERENCE §10): run in the controller, one component activation after another,
//! each a full activation of its own through the balancer.
//!
//! A sequence gets its own activation id at once; its record is written when the chain ends
//! (and a pending note until then, so a platform stopped mid-sequence still leaves a record).
//! The chain runs in its own task, so a caller who stops waiting (non-blocking, or a blocking
//! wait that ran out) does not stop the sequence.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use whisk_model::activation::annotation_keys;
use whisk_model::{
    ActivationId, ActivationResponse, Annotations, AuthKey, EntityName, EntityPath,
    FullyQualifiedEntityName, Identity, WhiskAction, WhiskActivation,
};

use crate::api::actions::{ActionAddress, ResolvedAction};
use crate::api::activations::activation_entry;
use crate::entitlement::{self, PackageAccess, Privilege};
use crate::error::{ApiError, ApiResult};
use crate::invoke::{self, Activation};
use crate::state::AppState;

/// The most atomic actions one sequence may run, nested sequences included.
pub const MAX_SEQUENCE_ACTIONS: usize = 50;

pub const TOO_MANY_ACTIONS: &str = "Too many actions in the sequence.";
pub const COMPONENT_MISSING: &str = "Sequence component does not exist.";
pub const SEQUENCE_FAILED: &str = "Sequence failed.";

/// How much longer than a component's own time limit the sequence waits for its record.
const COMPONENT_MARGIN: Duration = Duration::from_secs(60);

/// A sequence invocation the handler has checked.
#[derive(Debug)]
pub(crate) struct SequenceCall {
    pub caller: Identity,
    /// The key the caller presented, offered to components that want one.
    pub presented_key: Option<AuthKey>,
    pub sequence: WhiskAction,
    pub binding: Option<EntityPath>,
    pub payload: Map<String, Value>,
    pub blocking: bool,
    pub result_only: bool,
    pub wait_ms: u64,
    pub transaction_id: String,
    pub accepted_at: u64,
}

/// Starts the sequence and answers as an action invoke does (§7.5).
pub(crate) async fn invoke_sequence(state: &AppState, call: SequenceCall) -> ApiResult<Response> {
    let blocking = call.blocking;
    let result_only = call.result_only;
    let wait = Duration::from_millis(call.wait_ms);
    let (sequence_id, finished) = start_sequence(state, call).await?;
    if !blocking {
        return Ok(invoke::accepted(&sequence_id));
    }
    match tokio::time::timeout(wait, finished).await {
        Ok(Ok(Some(record))) => Ok(invoke::record_response(&record, result_only)),
        _ => Ok(invoke::accepted(&sequence_id)),
    }
}

/// Notes the sequence as pending and starts its chain in a task of its own; the receiver gets
/// the stored record (or `None` if it could not be stored) when the chain ends.
pub(crate) async fn start_sequence(
    state: &AppState,
    call: SequenceCall,
) -> ApiResult<(ActivationId, oneshot::Receiver<Option<WhiskActivation>>)> {
    let sequence_id = state.ids.activation_id();
    let lost = sequence_record(
        &call,
        &sequence_id,
        None,
        true,
        ActivationResponse::whisk_error(json!(invoke::LOST_ACTIVATION)),
        &[],
        0,
        call.accepted_at,
    )?;
    let note = activation_entry(&lost).map_err(|error| {
        tracing::error!(%error, "sequence pending note does not encode");
        ApiError::internal()
    })?;
    state.store.activations.put_pending(note).await?;
    let (done, finished) = oneshot::channel();
    let task_state = state.clone();
    let task_id = sequence_id.clone();
    tokio::spawn(async move {
        let record = run_topmost(&task_state, call, task_id).await;
        let _ = done.send(record);
    });
    Ok((sequence_id, finished))
}

/// Runs the whole chain and stores the sequence's record; `None` if it could not be stored.
async fn run_topmost(
    state: &AppState,
    call: SequenceCall,
    sequence_id: ActivationId,
) -> Option<WhiskActivation> {
    let mut counter = 0;
    let outcome = run_components(
        state,
        &call,
        call.sequence.exec.components(),
        call.payload.clone(),
        &sequence_id,
        &mut counter,
    )
    .await;
    let end = state.clock.now_millis();
    let record = sequence_record(
        &call,
        &sequence_id,
        None,
        true,
        outcome.response,
        &outcome.logs,
        outcome.duration,
        end,
    )
    .ok()?;
    store_record(state, &record).await.then_some(record)
}

async fn store_record(state: &AppState, record: &WhiskActivation) -> bool {
    let entry = match activation_entry(record) {
        Ok(entry) => entry,
        Err(error) => {
            tracing::error!(%error, activation_id = %record.activation_id, "sequence record does not encode");
            return false;
        }
    };
    match state.store.activations.put(entry).await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(%error, activation_id = %record.activation_id, "cannot store the sequence record");
            false
        }
    }
}

/// What running a list of components produced.
#[derive(Debug)]
struct ChainOutcome {
    response: ActivationResponse,
    /// Ids of the activations the chain created, in order.
    logs: Vec<String>,
    duration: u64,
}

type ChainFuture<'a> = Pin<Box<dyn Future<Output = ChainOutcome> + Send + 'a>>;

/// Runs `components` one after another, each getting the previous result as input. Nested
/// sequences recurse (with their own records); `counter` counts atomic actions across them.
fn run_components<'a>(
    state: &'a AppState,
    call: &'a SequenceCall,
    components: &'a [FullyQualifiedEntityName],
    payload: Map<String, Value>,
    cause: &'a ActivationId,
    counter: &'a mut usize,
) -> ChainFuture<'a> {
    Box::pin(async move {
        let mut input = payload;
        let mut logs = Vec::new();
        let mut duration = 0;
        let mut response = ActivationResponse::success(json!(input.clone()), None);
        for component in components {
            let Some((resolved, action)) = resolve_component(state, &call.caller, component).await
            else {
                return ChainOutcome {
                    response: ActivationResponse::application_error(json!(COMPONENT_MISSING)),
                    logs,
                    duration,
                };
            };
            let step = if action.exec.is_sequence() {
                run_nested(
                    state,
                    call,
                    &action,
                    resolved.access.as_ref(),
                    input,
                    cause,
                    counter,
                )
                .await
            } else {
                *counter += 1;
                if *counter > MAX_SEQUENCE_ACTIONS {
                    return ChainOutcome {
                        response: ActivationResponse::application_error(json!(TOO_MANY_ACTIONS)),
                        logs,
                        duration,
                    };
                }
                run_atomic(state, call, &resolved, &action, input, cause).await
            };
            let Step {
                activation_id,
                record_response,
                took,
            } = step;
            if let Some(activation_id) = activation_id {
                logs.push(activation_id.to_string());
            }
            duration += took;
            response = record_response;
            if !response.is_success() {
                break;
            }
            input = match &response.result {
                Some(Value::Object(object)) => object.clone(),
                // Arrays and scalars cannot be an action's input object: the next one gets none.
                _ => Map::new(),
            };
        }
        ChainOutcome {
            response,
            logs,
            duration,
        }
    })
}

/// One component's part in the chain.
struct Step {
    activation_id: Option<ActivationId>,
    record_response: ActivationResponse,
    took: u64,
}

async fn resolve_component(
    state: &AppState,
    caller: &Identity,
    component: &FullyQualifiedEntityName,
) -> Option<(ResolvedAction, WhiskAction)> {
    let address = ActionAddress::of(component);
    let store = state.store.entities.as_ref();
    let access = entitlement::check(store, caller, Privilege::Activate, &address.resource())
        .await
        .ok()?;
    let resolved = ResolvedAction::fetch(store, &address, access).await.ok()?;
    let action = resolved.merged();
    Some((resolved, action))
}

async fn run_atomic(
    state: &AppState,
    call: &SequenceCall,
    resolved: &ResolvedAction,
    action: &WhiskAction,
    input: Map<String, Value>,
    cause: &ActivationId,
) -> Step {
    let api_key = call
        .presented_key
        .as_ref()
        .filter(|_| action.provides_api_key())
        .map(ToString::to_string);
    let wait = Duration::from_millis(action.limits.timeout) + COMPONENT_MARGIN;
    let started = invoke::start(
        state,
        Activation {
            caller: &call.caller,
            api_key,
            action,
            revision: resolved.action.revision.to_string(),
            binding: resolved
                .access
                .as_ref()
                .and_then(PackageAccess::binding_path),
            payload: input,
            blocking: true,
            result_only: false,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            transaction_id: call.transaction_id.clone(),
            accepted_at: state.clock.now_millis(),
            cause: Some(cause.clone()),
            caused_by: Some("sequence".into()),
        },
    )
    .await;
    let started = match started {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(%error, component = %action.fqn(), "sequence component not started");
            return Step {
                activation_id: None,
                record_response: ActivationResponse::whisk_error(json!(SEQUENCE_FAILED)),
                took: 0,
            };
        }
    };
    let activation_id = started.activation_id.clone();
    match invoke::wait_for_record(state, started, wait + invoke::BLOCKING_MARGIN).await {
        Ok(Some(record)) => Step {
            took: record.effective_duration().unwrap_or(0),
            record_response: record.response,
            activation_id: Some(activation_id),
        },
        Ok(None) => Step {
            record_response: ActivationResponse::whisk_error(json!(format!(
                "Timeout reached when retrieving activation {activation_id} for sequence component."
            ))),
            activation_id: Some(activation_id),
            took: 0,
        },
        Err(error) => {
            tracing::warn!(%error, %activation_id, "sequence component record unreadable");
            Step {
                activation_id: Some(activation_id),
                record_response: ActivationResponse::whisk_error(json!(SEQUENCE_FAILED)),
                took: 0,
            }
        }
    }
}

/// A sequence inside a sequence: its components run here, and it gets its own record
/// (`topmost: false`, `cause` = the enclosing sequence).
async fn run_nested(
    state: &AppState,
    call: &SequenceCall,
    inner: &WhiskAction,
    access: Option<&PackageAccess>,
    input: Map<String, Value>,
    cause: &ActivationId,
    counter: &mut usize,
) -> Step {
    let inner_id = state.ids.activation_id();
    let start = state.clock.now_millis();
    let inner_call = SequenceCall {
        caller: call.caller.clone(),
        presented_key: call.presented_key.clone(),
        sequence: inner.clone(),
        binding: access.and_then(PackageAccess::binding_path),
        payload: Map::new(),
        blocking: true,
        result_only: false,
        wait_ms: 0,
        transaction_id: call.transaction_id.clone(),
        accepted_at: start,
    };
    let outcome = run_components(
        state,
        &inner_call,
        inner.exec.components(),
        input,
        &inner_id,
        counter,
    )
    .await;
    let end = state.clock.now_millis();
    let record = sequence_record(
        &inner_call,
        &inner_id,
        Some(cause),
        false,
        outcome.response.clone(),
        &outcome.logs,
        outcome.duration,
        end,
    );
    if let Ok(record) = &record {
        store_record(state, record).await;
    }
    Step {
        activation_id: Some(inner_id),
        record_response: outcome.response,
        took: outcome.duration,
    }
}

/// The record of a sequence (§10): logs are the component ids, duration their sum.
#[allow(clippy::too_many_arguments)]
fn sequence_record(
    call: &SequenceCall,
    activation_id: &ActivationId,
    cause: Option<&ActivationId>,
    topmost: bool,
    response: ActivationResponse,
    logs: &[String],
    duration: u64,
    end: u64,
) -> ApiResult<WhiskActivation> {
    let namespace = EntityName::namespace(call.caller.namespace.clone())
        .map(EntityPath::namespace)
        .map_err(|error| {
            tracing::error!(%error, "caller namespace is not a valid name");
            ApiError::internal()
        })?;
    let sequence = &call.sequence;
    let fqn = sequence.fqn();
    let mut annotations = Annotations::new();
    annotations.insert(annotation_keys::TOPMOST, json!(topmost));
    annotations.insert(
        annotation_keys::PATH,
        json!(format!("{}/{}", fqn.path, fqn.name)),
    );
    annotations.insert(annotation_keys::KIND, json!("sequence"));
    annotations.insert(annotation_keys::LIMITS, json!(sequence.limits));
    annotations.insert(annotation_keys::WAIT_TIME, json!(0));
    if !topmost {
        annotations.insert(annotation_keys::CAUSED_BY, json!("sequence"));
    }
    if let Some(binding) = &call.binding {
        annotations.insert(annotation_keys::BINDING, json!(binding.to_string()));
    }
    Ok(WhiskActivation {
        namespace,
        name: sequence.name.clone(),
        subject: call.caller.subject.clone(),
        activation_id: activation_id.clone(),
        start: call.accepted_at,
        end: end.max(call.accepted_at),
        duration: Some(duration),
        cause: cause.cloned(),
        response,
        logs: logs.to_vec(),
        version: sequence.version,
        publish: false,
        annotations,
    })
}
