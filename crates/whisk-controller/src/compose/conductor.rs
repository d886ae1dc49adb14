//! Conductor actions (REFERENCE §14): an action annotated `conductor` decides, step by step,
//! which action runs next. The controller runs the conductor with the input, reads the
//! `action`/`params`/`state` of its result, runs the named component with `params`, and runs the
//! conductor again with the component's result and the kept `state`, until a conductor result
//! names no action.
//!
//! The whole run is one *composition* activation with an id of its own (answered to the caller
//! at once when non-blocking), noted as pending until its record is stored, like a sequence.
//! Every conductor run and every component is a full activation of its own whose `cause` is
//! the composition. Nested compositions share the limits of the outermost one.

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use whisk_model::activation::annotation_keys;
use whisk_model::{
    ActivationId, ActivationResponse, EntityName, FullyQualifiedEntityName, WhiskAction,
    WhiskActivation,
};

use crate::api::actions::{ActionAddress, ResolvedAction};
use crate::compose::{
    self, Blocking, ChainFuture, ChainOutcome, Component, SequenceCall, Step, put_pending,
    sequence_record, store_record,
};
use crate::entitlement::{self, PackageAccess, Privilege};
use crate::error::ApiResult;
use crate::invoke;
use crate::state::AppState;

/// More components than the limit, or more than twice as many conductor runs.
pub const TOO_MANY_ACTIONS: &str = "Too many actions in the composition.";
/// A step that could not be run, or whose record cannot be read.
pub const ACTIVATION_FAILURE: &str = "Activation failure during composition.";

/// True for an action (not a sequence) whose `conductor` annotation is truthy.
pub(crate) fn is_conductor(action: &WhiskAction) -> bool {
    !action.exec.is_sequence() && action.annotations.is_truthy(annotation_keys::CONDUCTOR)
}

/// Notes the composition as pending and runs it in a task of its own; the receiver gets the
/// stored record (or `None` if it could not be stored) when it ends.
pub(crate) async fn start_composition(
    state: &AppState,
    call: SequenceCall,
) -> ApiResult<(ActivationId, oneshot::Receiver<Option<WhiskActivation>>)> {
    let composition_id = state.ids.activation_id();
    let lost = composition_record(
        &call,
        &composition_id,
        None,
        ChainOutcome {
            response: ActivationResponse::whisk_error(json!(invoke::LOST_ACTIVATION)),
            logs: Vec::new(),
            duration: 0,
        },
        call.accepted_at,
    )?;
    put_pending(state, &lost).await?;
    let (done, finished) = oneshot::channel();
    let task_state = state.clone();
    let task_id = composition_id.clone();
    tokio::spawn(async move {
        let mut counters = Counters::default();
        let payload = call.payload.clone();
        let outcome = run_composition(&task_state, &call, payload, &task_id, &mut counters).await;
        let end = task_state.clock.now_millis();
        let record = match composition_record(&call, &task_id, None, outcome, end) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(%error, composition = %task_id, "composition record not built");
                let _ = done.send(None);
                return;
            }
        };
        let stored = store_record(&task_state, &record).await;
        let _ = done.send(stored.then_some(record));
    });
    tracing::info!(%composition_id, conductor = %lost.name, "composition started");
    Ok((composition_id, finished))
}

/// A conductor action met as a component (of a sequence or of another composition): its
/// composition runs here with its own record (`topmost: false`, `cause` = the enclosing one).
pub(crate) async fn run_nested_composition(
    state: &AppState,
    outer: &SequenceCall,
    resolved: &ResolvedAction,
    conductor: WhiskAction,
    input: Map<String, Value>,
    cause: &ActivationId,
) -> Step {
    let mut counters = Counters::default();
    run_inner(
        state,
        outer,
        resolved,
        conductor,
        input,
        cause,
        &mut counters,
    )
    .await
}

async fn run_inner(
    state: &AppState,
    outer: &SequenceCall,
    resolved: &ResolvedAction,
    conductor: WhiskAction,
    input: Map<String, Value>,
    cause: &ActivationId,
    counters: &mut Counters,
) -> Step {
    let inner_id = state.ids.activation_id();
    let inner = SequenceCall {
        caller: outer.caller.clone(),
        presented_key: outer.presented_key.clone(),
        sequence: conductor,
        revision: resolved.action.revision.to_string(),
        binding: resolved
            .access
            .as_ref()
            .and_then(PackageAccess::binding_path),
        payload: Map::new(),
        blocking: true,
        result_only: false,
        wait_ms: 0,
        transaction_id: outer.transaction_id.clone(),
        accepted_at: state.clock.now_millis(),
    };
    let outcome = run_composition(state, &inner, input, &inner_id, counters).await;
    let response = outcome.response.clone();
    let took = outcome.duration;
    let end = state.clock.now_millis();
    match composition_record(&inner, &inner_id, Some(cause), outcome, end) {
        Ok(record) => {
            store_record(state, &record).await;
        }
        Err(error) => {
            tracing::error!(%error, composition = %inner_id, "nested composition record not built");
        }
    }
    Step {
        activation_id: Some(inner_id),
        record_response: response,
        took,
    }
}

/// The counts one composition (with everything nested in it) may not exceed.
#[derive(Debug, Default)]
struct Counters {
    components: usize,
    conductor_runs: usize,
}

/// Runs the conductor of `call` with `payload`, then components and conductor in turn.
fn run_composition<'a>(
    state: &'a AppState,
    call: &'a SequenceCall,
    payload: Map<String, Value>,
    composition_id: &'a ActivationId,
    counters: &'a mut Counters,
) -> ChainFuture<'a> {
    Box::pin(async move {
        let limit = usize::try_from(state.config.limits.sequence_max_length).unwrap_or(usize::MAX);
        let mut logs = Vec::new();
        let mut duration = 0;
        let mut params = payload;
        let mut session: Option<Map<String, Value>> = None;
        let end = |response, logs, duration| ChainOutcome {
            response,
            logs,
            duration,
        };
        loop {
            counters.conductor_runs += 1;
            if counters.conductor_runs > limit.saturating_mul(2) {
                let response = ActivationResponse::application_error(json!(TOO_MANY_ACTIONS));
                return end(response, logs, duration);
            }
            let mut input = params;
            if let Some(kept) = session.take() {
                input.extend(kept);
            }
            let component = Component {
                action: &call.sequence,
                revision: call.revision.clone(),
                binding: call.binding.clone(),
            };
            let record =
                match compose::run_blocking(state, call, component, input, composition_id).await {
                    Blocking::Finished(record) => *record,
                    other => {
                        let (id, response) = step_failure(other);
                        logs.extend(id.map(|id| id.to_string()));
                        return end(response, logs, duration);
                    }
                };
            logs.push(record.activation_id.to_string());
            duration += record.effective_duration().unwrap_or(0);
            if !record.response.is_success() {
                return end(record.response, logs, duration);
            }
            let Some(Value::Object(result)) = &record.response.result else {
                // An array (or nothing) names no next action: it is the composition's result.
                return end(record.response, logs, duration);
            };
            let next = Directive::of(result);
            session = next.state;
            let Some(action) = next.action else {
                let result = next.params.map_or_else(|| json!(result), Value::Object);
                let response = ActivationResponse::new(
                    record.response.status(),
                    Some(result),
                    record.response.size,
                );
                return end(response, logs, duration);
            };
            let component_input = next.params.unwrap_or_default();
            params = match run_component(
                state,
                call,
                &action,
                component_input,
                composition_id,
                counters,
                limit,
            )
            .await
            {
                ComponentOutcome::Refused(message) => error_object(message),
                ComponentOutcome::Ran(step) => {
                    logs.extend(step.activation_id.map(|id| id.to_string()));
                    duration += step.took;
                    match step.record_response.result {
                        Some(Value::Object(result)) => result,
                        _ => Map::new(),
                    }
                }
                ComponentOutcome::Aborted(id, response) => {
                    logs.extend(id.map(|id| id.to_string()));
                    return end(response, logs, duration);
                }
            };
        }
    })
}

/// What a conductor's result asks for.
struct Directive {
    action: Option<Value>,
    /// Boxed as `{"value": v}` when not an object.
    params: Option<Map<String, Value>>,
    /// Boxed as `{"state": v}` when not an object.
    state: Option<Map<String, Value>>,
}

impl Directive {
    fn of(result: &Map<String, Value>) -> Self {
        Self {
            action: result.get("action").cloned(),
            params: result.get("params").map(|value| boxed(value, "value")),
            state: result.get("state").map(|value| boxed(value, "state")),
        }
    }
}

fn boxed(value: &Value, key: &str) -> Map<String, Value> {
    match value {
        Value::Object(object) => object.clone(),
        other => {
            let mut object = Map::new();
            object.insert(key.to_owned(), other.clone());
            object
        }
    }
}

fn error_object(message: String) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("error".into(), Value::String(message));
    object
}

/// The whisk error a conductor run or a component that did not finish ends the composition with.
fn step_failure(outcome: Blocking) -> (Option<ActivationId>, ActivationResponse) {
    match outcome {
        Blocking::TimedOut(id) => {
            let message =
                format!("Timeout reached when retrieving activation {id} during composition.");
            (Some(id), ActivationResponse::whisk_error(json!(message)))
        }
        Blocking::Unreadable(id) => (
            Some(id),
            ActivationResponse::whisk_error(json!(ACTIVATION_FAILURE)),
        ),
        Blocking::NotStarted | Blocking::Finished(_) => (
            None,
            ActivationResponse::whisk_error(json!(ACTIVATION_FAILURE)),
        ),
    }
}

/// How a component named by the conductor went.
enum ComponentOutcome {
    /// Not run: the conductor is run again with `{"error": message}`.
    Refused(String),
    /// It ran (whatever its status): its result goes back to the conductor.
    Ran(Step),
    /// It did not finish: the composition ends with this response.
    Aborted(Option<ActivationId>, ActivationResponse),
}

/// Parses, counts, checks and runs the component `name` (a plain action, a sequence or another
/// conductor action) with `input`.
async fn run_component(
    state: &AppState,
    call: &SequenceCall,
    name: &Value,
    input: Map<String, Value>,
    composition_id: &ActivationId,
    counters: &mut Counters,
    limit: usize,
) -> ComponentOutcome {
    let Some(fqn) = parse_component(&call.caller.namespace, name) else {
        return ComponentOutcome::Refused(format!(
            "Failed to parse action name from json value {name} during composition."
        ));
    };
    let shown = name.as_str().unwrap_or_default();
    if counters.components >= limit {
        return ComponentOutcome::Refused(TOO_MANY_ACTIONS.to_owned());
    }
    counters.components += 1;
    let address = ActionAddress::of(&fqn);
    let store = state.store.entities.as_ref();
    let access = match entitlement::check(
        store,
        &call.caller,
        Privilege::Activate,
        &address.resource(),
    )
    .await
    {
        Ok(access) => access,
        Err(error) => {
            tracing::info!(%error, component = %fqn, "composition component not entitled");
            return ComponentOutcome::Refused(format!(
                "Failed entitlement check for action with name '{shown}' during composition."
            ));
        }
    };
    let resolved = match ResolvedAction::fetch(store, &address, access).await {
        Ok(resolved) => resolved,
        Err(error) => {
            tracing::info!(%error, component = %fqn, "composition component not found");
            return ComponentOutcome::Refused(format!(
                "Failed to resolve action with name '{shown}' during composition."
            ));
        }
    };
    let action = resolved.merged();
    if is_conductor(&action) {
        let step = Box::pin(run_inner(
            state,
            call,
            &resolved,
            action,
            input,
            composition_id,
            counters,
        ))
        .await;
        return ComponentOutcome::Ran(step);
    }
    if action.exec.is_sequence() {
        let mut atomic = 0;
        let step = compose::run_nested(
            state,
            call,
            &action,
            resolved.access.as_ref(),
            input,
            composition_id,
            &mut atomic,
        )
        .await;
        return ComponentOutcome::Ran(step);
    }
    let component = Component {
        action: &action,
        revision: resolved.action.revision.to_string(),
        binding: resolved
            .access
            .as_ref()
            .and_then(PackageAccess::binding_path),
    };
    match compose::run_blocking(state, call, component, input, composition_id).await {
        Blocking::Finished(record) => ComponentOutcome::Ran(Step {
            took: record.effective_duration().unwrap_or(0),
            activation_id: Some(record.activation_id.clone()),
            record_response: record.response,
        }),
        other => {
            let (id, response) = step_failure(other);
            ComponentOutcome::Aborted(id, response)
        }
    }
}

/// §4 resolution of a conductor's `action` value against the caller's namespace.
fn parse_component(namespace: &str, name: &Value) -> Option<FullyQualifiedEntityName> {
    let Value::String(name) = name else {
        return None;
    };
    let namespace = EntityName::namespace(namespace.to_owned()).ok()?;
    FullyQualifiedEntityName::resolve(name, &namespace).ok()
}

/// The composition record (§14): a sequence record (`kind: sequence`, logs = every step's id,
/// duration = their sum, `topmost`, `causedBy` when nested) marked `conductor: true`.
fn composition_record(
    call: &SequenceCall,
    composition_id: &ActivationId,
    cause: Option<&ActivationId>,
    outcome: ChainOutcome,
    end: u64,
) -> ApiResult<WhiskActivation> {
    let mut record = sequence_record(
        call,
        composition_id,
        cause,
        cause.is_none(),
        outcome.response,
        &outcome.logs,
        outcome.duration,
        end,
    )?;
    record
        .annotations
        .insert(annotation_keys::CONDUCTOR, json!(true));
    Ok(record)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn params_and_state_that_are_not_objects_are_boxed() {
        let result = json!({"action": "a", "params": 3, "state": [1]});
        let directive = Directive::of(result.as_object().unwrap());
        assert_eq!(
            Value::Object(directive.params.unwrap()),
            json!({"value": 3})
        );
        assert_eq!(
            Value::Object(directive.state.unwrap()),
            json!({"state": [1]})
        );
        let kept = json!({"params": {"x": 1}, "state": {"s": 2}});
        let directive = Directive::of(kept.as_object().unwrap());
        assert_eq!(Value::Object(directive.params.unwrap()), json!({"x": 1}));
        assert_eq!(Value::Object(directive.state.unwrap()), json!({"s": 2}));
        assert!(directive.action.is_none());
    }

    #[test]
    fn component_names_resolve_as_section_4_says() {
        let resolve = |name: Value| parse_component("guest", &name).map(|fqn| fqn.to_string());
        assert_eq!(resolve(json!("a")).as_deref(), Some("/guest/a"));
        assert_eq!(resolve(json!("p/a")).as_deref(), Some("/guest/p/a"));
        assert_eq!(resolve(json!("/other/a")).as_deref(), Some("/other/a"));
        assert_eq!(resolve(json!("/_/p/a")).as_deref(), Some("/guest/p/a"));
        assert_eq!(resolve(json!(7)), None);
        assert_eq!(resolve(json!("/a")), None);
        assert_eq!(resolve(json!("a/b/c/d")), None);
    }

    #[test]
    fn conductor_annotation_must_be_truthy_and_not_on_a_sequence() {
        let action = |annotation: Value, exec: Value| -> WhiskAction {
            serde_json::from_value(json!({
                "namespace": "guest", "name": "c", "exec": exec,
                "annotations": [{"key": "conductor", "value": annotation}],
                "limits": {"timeout": 60000, "memory": 256}
            }))
            .unwrap()
        };
        let code = json!({"kind": "nodejs:20", "code": "x", "binary": false});
        assert!(is_conductor(&action(json!(true), code.clone())));
        assert!(is_conductor(&action(json!("yes"), code.clone())));
        for falsy in [json!(false), json!(0), json!(""), Value::Null] {
            assert!(!is_conductor(&action(falsy, code.clone())));
        }
        let sequence = json!({"kind": "sequence", "components": ["/guest/a"]});
        assert!(!is_conductor(&action(json!(true), sequence)));
    }
}
