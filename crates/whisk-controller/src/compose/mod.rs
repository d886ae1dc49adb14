//! Sequences (REFERENCE §10) and conductor actions (§14, in [`conductor`]): run in the
//! controller, one component activation after another, each a full activation of its own
//! through the balancer.
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

pub mod conductor;

/// The most atomic actions one sequence may run, nested sequences included.
pub const MAX_SEQUENCE_ACTIONS: usize = 50;

pub const TOO_MANY_ACTIONS: &str = "Too many actions in the sequence.";
pub const COMPONENT_MISSING: &str = "Sequence component does not exist.";
pub const SEQUENCE_FAILED: &str = "Sequence failed.";

/// How much longer than a component's own time limit the sequence waits for its record.
pub(crate) const COMPONENT_MARGIN: Duration = Duration::from_secs(60);

/// A sequence (or conductor action) invocation the handler has checked.
#[derive(Debug)]
pub(crate) struct SequenceCall {
    pub caller: Identity,
    /// The key the caller presented, offered to components that want one.
    pub presented_key: Option<AuthKey>,
    /// The sequence, or the conductor action, with its package's parameters merged in.
    pub sequence: WhiskAction,
    /// The stored revision of `sequence`: a conductor action is itself run at every step.
    pub revision: String,
    pub binding: Option<EntityPath>,
    pub payload: Map<String, Value>,
    pub blocking: bool,
    pub result_only: bool,
    pub wait_ms: u64,
    pub transaction_id: String,
    pub accepted_at: u64,
}

/// True for the actions whose invocation runs here rather than in one activation on an
/// invoker: sequences and conductor actions.
pub(crate) fn runs_in_controller(action: &WhiskAction) -> bool {
    action.exec.is_sequence() || conductor::is_conductor(action)
}

/// Starts the sequence (or composition) and answers as an action invoke does (§7.5).
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
/// the stored record (or `None` if it could not be stored) when the chain ends. A conductor
/// action starts its composition the same way.
pub(crate) async fn start_sequence(
    state: &AppState,
    call: SequenceCall,
) -> ApiResult<(ActivationId, oneshot::Receiver<Option<WhiskActivation>>)> {
    if conductor::is_conductor(&call.sequence) {
        return conductor::start_composition(state, call).await;
    }
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
    put_pending(state, &lost).await?;
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

/// Notes `lost` (the record to keep if the platform stops first) as pending.
pub(crate) async fn put_pending(state: &AppState, lost: &WhiskActivation) -> ApiResult<()> {
    let note = activation_entry(lost).map_err(|error| {
        tracing::error!(%error, activation_id = %lost.activation_id, "pending note does not encode");
        ApiError::internal()
    })?;
    state.store.activations.put_pending(note).await?;
    Ok(())
}

/// Stores a sequence or composition record (which clears its pending note); false when that
/// failed, which is logged.
pub(crate) async fn store_record(state: &AppState, record: &WhiskActivation) -> bool {
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

/// What running a list of components (or a composition) produced.
#[derive(Debug)]
pub(crate) struct ChainOutcome {
    pub response: ActivationResponse,
    /// Ids of the activations the chain created, in order.
    pub logs: Vec<String>,
    pub duration: u64,
}

pub(crate) type ChainFuture<'a> = Pin<Box<dyn Future<Output = ChainOutcome> + Send + 'a>>;

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
            let step = if conductor::is_conductor(&action) {
                *counter += 1;
                if *counter > MAX_SEQUENCE_ACTIONS {
                    return ChainOutcome {
                        response: ActivationResponse::application_error(json!(TOO_MANY_ACTIONS)),
                        logs,
                        duration,
                    };
                }
                conductor::run_nested_composition(state, call, &resolved, action, input, cause)
                    .await
            } else if action.exec.is_sequence() {
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
pub(crate) struct Step {
    pub activation_id: Option<ActivationId>,
    pub record_response: ActivationResponse,
    pub took: u64,
}

/// The component `component` names, if the caller may activate it and it exists.
pub(crate) async fn resolve_component(
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
    let component = Component {
        action,
        revision: resolved.action.revision.to_string(),
        binding: resolved
            .access
            .as_ref()
            .and_then(PackageAccess::binding_path),
    };
    match run_blocking(state, call, component, input, cause).await {
        Blocking::Finished(record) => Step {
            took: record.effective_duration().unwrap_or(0),
            activation_id: Some(record.activation_id.clone()),
            record_response: record.response,
        },
        Blocking::NotStarted => Step {
            activation_id: None,
            record_response: ActivationResponse::whisk_error(json!(SEQUENCE_FAILED)),
            took: 0,
        },
        Blocking::TimedOut(activation_id) => Step {
            record_response: ActivationResponse::whisk_error(json!(format!(
                "Timeout reached when retrieving activation {activation_id} for sequence component."
            ))),
            activation_id: Some(activation_id),
            took: 0,
        },
        Blocking::Unreadable(activation_id) => Step {
            activation_id: Some(activation_id),
            record_response: ActivationResponse::whisk_error(json!(SEQUENCE_FAILED)),
            took: 0,
        },
    }
}

/// An atomic action to run as one step of a sequence or composition.
pub(crate) struct Component<'a> {
    /// With its package's parameters merged in.
    pub action: &'a WhiskAction,
    pub revision: String,
    pub binding: Option<EntityPath>,
}

/// How one blocking step ended.
pub(crate) enum Blocking {
    Finished(Box<WhiskActivation>),
    /// It could not be handed to an invoker (the reason is logged).
    NotStarted,
    /// Its record did not come within its time limit and the margins.
    TimedOut(ActivationId),
    /// Its record exists but does not decode (logged).
    Unreadable(ActivationId),
}

/// Runs one atomic action as a step of the sequence or composition `cause`, as the caller of
/// `call`, and waits for its record; callers turn the failures into their own messages.
pub(crate) async fn run_blocking(
    state: &AppState,
    call: &SequenceCall,
    component: Component<'_>,
    input: Map<String, Value>,
    cause: &ActivationId,
) -> Blocking {
    let action = component.action;
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
            revision: component.revision,
            binding: component.binding,
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
            tracing::warn!(%error, component = %action.fqn(), %cause, "component not started");
            return Blocking::NotStarted;
        }
    };
    let activation_id = started.activation_id.clone();
    match invoke::wait_for_record(state, started, wait + invoke::BLOCKING_MARGIN).await {
        Ok(Some(record)) => Blocking::Finished(Box::new(record)),
        Ok(None) => Blocking::TimedOut(activation_id),
        Err(error) => {
            tracing::warn!(%error, %activation_id, "component record unreadable");
            Blocking::Unreadable(activation_id)
        }
    }
}

/// A sequence inside a sequence: its components run here, and it gets its own record
/// (`topmost: false`, `cause` = the enclosing sequence).
pub(crate) async fn run_nested(
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
        // Only conductor actions are run under their own name; a sequence never is.
        revision: String::new(),
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
pub(crate) fn sequence_record(
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
