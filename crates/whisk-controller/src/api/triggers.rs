//! The triggers collection (REFERENCE §12.1, §12.3).
//!
//! A trigger is a named event channel of one namespace. Its `rules` map (rule doc id → action
//! and status) belongs to the rules API: trigger writes never take it from the client and an
//! update keeps whatever rules are attached.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use whisk_model::{
    ActivationId, ActivationResponse, Annotations, AuthKey, EntityName, EntityPath, EntityType,
    FullyQualifiedEntityName, Identity, RuleFiring, TriggerPut, WhiskActivation, WhiskTrigger,
};
use whisk_store::{EntityDocument, EntityScope};

use crate::api::Listing;
use crate::api::actions::{self, ActionAddress, ResolvedAction};
use crate::api::activations::activation_entry;
use crate::auth::{self, Caller};
use crate::compose::{self, SequenceCall};
use crate::documents::{self, DocumentColumns, Stored};
use crate::entitlement::{self, Collection, PackageAccess, Privilege, Resource};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, PathSegments, QueryParams};
use crate::invoke::{self, Activation};
use crate::names;
use crate::state::AppState;
use crate::transaction::TransactionId;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/triggers",
            get(list_triggers),
        )
        .route(
            "/api/v1/namespaces/{namespace}/triggers/",
            get(list_triggers),
        )
        .route(
            "/api/v1/namespaces/{namespace}/triggers/{name}",
            get(get_trigger)
                .put(put_trigger)
                .delete(delete_trigger)
                .post(fire_trigger),
        )
}

/// The stored form of a trigger, with the columns the store indexes.
pub fn trigger_document(trigger: &WhiskTrigger) -> ApiResult<EntityDocument> {
    documents::to_document(
        DocumentColumns {
            entity_type: EntityType::Trigger,
            namespace: trigger.namespace.to_string(),
            name: trigger.name.to_string(),
            updated: trigger.updated,
            publish: trigger.publish,
            binding: false,
        },
        trigger,
    )
}

/// A trigger addressed by the URL, namespace resolved from `_`.
#[derive(Debug, Clone)]
struct TriggerAddress {
    namespace: EntityName,
    name: EntityName,
}

impl TriggerAddress {
    fn parse(caller: &Identity, namespace: &str, name: &str) -> ApiResult<Self> {
        Ok(Self {
            namespace: names::resolve_namespace(caller, namespace)?,
            name: names::entity_name(name)?,
        })
    }

    fn path(&self) -> EntityPath {
        EntityPath::namespace(self.namespace.clone())
    }

    fn resource(&self) -> Resource {
        Resource::entity(Collection::Triggers, self.path(), self.name.clone())
    }

    fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Checks `privilege` (owner only for triggers) and parses the address.
    async fn authorize(
        state: &AppState,
        caller: &Identity,
        namespace: &str,
        name: &str,
        privilege: Privilege,
    ) -> ApiResult<Self> {
        let address = Self::parse(caller, namespace, name)?;
        entitlement::check(
            state.store.entities.as_ref(),
            caller,
            privilege,
            &address.resource(),
        )
        .await?;
        Ok(address)
    }
}

async fn get_trigger(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address =
        TriggerAddress::authorize(&state, &caller, &namespace, &name, Privilege::Read).await?;
    let stored: Stored<WhiskTrigger> = documents::fetch_existing(
        state.store.entities.as_ref(),
        &address.doc_id(),
        EntityType::Trigger,
    )
    .await?;
    Ok(Json(stored.entity.to_api_json()))
}

/// Create, or with `overwrite=true` update: parameters and annotations are replaced when
/// given, the attached rules are kept, a `feed` annotation must name an entity.
async fn put_trigger(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let address =
        TriggerAddress::authorize(&state, &caller, &namespace, &name, Privilege::Put).await?;
    let overwrite = query.boolean("overwrite", false)?;
    let put: TriggerPut = extract::read_json(request, state.config.max_request_body).await?;
    put.validate(&state.config.limits)?;
    let store = state.store.entities.as_ref();
    let doc_id = address.doc_id();
    let existing: Option<Stored<WhiskTrigger>> =
        documents::fetch(store, &doc_id, EntityType::Trigger).await?;
    let now = state.clock.now_millis();
    let (trigger, expected_revision) = match existing {
        Some(_) if !overwrite => return Err(ApiError::entity_exists()),
        Some(stored) => (stored.entity.update(put, now), Some(stored.revision)),
        None => (
            WhiskTrigger::create(address.path(), address.name.clone(), put, now),
            None,
        ),
    };
    store
        .put(trigger_document(&trigger)?, expected_revision)
        .await?;
    tracing::info!(trigger = %doc_id, version = %trigger.version, "trigger written");
    Ok(Json(trigger.to_api_json()))
}

/// Deletes a trigger and answers with it. Rules pointing at it are left alone; they report
/// `inactive` from then on.
async fn delete_trigger(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address =
        TriggerAddress::authorize(&state, &caller, &namespace, &name, Privilege::Delete).await?;
    let store = state.store.entities.as_ref();
    let doc_id = address.doc_id();
    let stored: Stored<WhiskTrigger> =
        documents::fetch_existing(store, &doc_id, EntityType::Trigger).await?;
    store.delete(&doc_id, stored.revision).await?;
    tracing::info!(trigger = %doc_id, "trigger deleted");
    Ok(Json(stored.entity.to_api_json()))
}

/// Fires a trigger (§12.3): throttle and rights, payload (a JSON object of at most the payload
/// limit, or nothing), existence. Without an active rule nothing happens and the answer is 204;
/// otherwise 202 with the trigger activation's id at once, while the rules' actions are started
/// in the background.
async fn fire_trigger(
    State(state): State<AppState>,
    Caller(caller): Caller,
    tid: TransactionId,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let address = TriggerAddress::parse(&caller, &namespace, &name)?;
    admit_fire(&state, &caller, &address).await?;
    let presented_key = auth::presented_key(request.headers());
    let headers = fire_headers(request.headers());
    let payload = fire_payload(request, state.config.limits.max_payload_size).await?;
    let fired = fire_admitted(
        &state,
        FireRequest {
            caller: &caller,
            address: &address,
            payload,
            headers: Some(headers),
            presented_key,
            transaction_id: tid.as_str().to_owned(),
        },
    )
    .await?;
    Ok(match fired {
        Fired::NoActiveRule => StatusCode::NO_CONTENT.into_response(),
        Fired::Activation(activation_id) => invoke::accepted(&activation_id),
    })
}

/// What a fire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// The trigger has no active rule: nothing ran and no record is written.
    NoActiveRule,
    /// The trigger activation; its record is written once every rule's action was started.
    Activation(ActivationId),
}

/// Fires `namespace/name` as `identity` with `payload`, without an HTTP request: for event
/// sources inside the platform (alarm schedules, webhooks) that fire on a trigger owner's
/// behalf. The same checks as `POST .../triggers/{name}` apply, in the same order: the
/// `firesPerMinute` throttle, rights, payload size, existence.
pub async fn fire_with_identity(
    state: &AppState,
    identity: &Identity,
    namespace: &EntityName,
    name: &EntityName,
    payload: Map<String, Value>,
    transaction_id: &str,
) -> ApiResult<Fired> {
    let address = TriggerAddress {
        namespace: namespace.clone(),
        name: name.clone(),
    };
    admit_fire(state, identity, &address).await?;
    let max = state.config.limits.max_payload_size;
    let size = u64::try_from(Value::Object(payload.clone()).to_string().len()).unwrap_or(u64::MAX);
    if size > max {
        return Err(ApiError::too_large("Request", size, max));
    }
    fire_admitted(
        state,
        FireRequest {
            caller: identity,
            address: &address,
            payload,
            headers: None,
            presented_key: None,
            transaction_id: transaction_id.to_owned(),
        },
    )
    .await
}

/// The checks before a fire's body is read: `firesPerMinute` (counted even for triggers that
/// turn out not to exist, as OpenWhisk does), then the right to activate.
async fn admit_fire(
    state: &AppState,
    caller: &Identity,
    address: &TriggerAddress,
) -> ApiResult<()> {
    state.invocations.throttle_fire(state, caller).await?;
    entitlement::check(
        state.store.entities.as_ref(),
        caller,
        Privilege::Activate,
        &address.resource(),
    )
    .await?;
    Ok(())
}

/// A fire that passed throttle, rights and size.
struct FireRequest<'a> {
    caller: &'a Identity,
    address: &'a TriggerAddress,
    payload: Map<String, Value>,
    /// The fire request's headers (lower-cased names), handed to the rules' actions as
    /// `__ow_headers`; `None` for fires that did not come over HTTP.
    headers: Option<Map<String, Value>>,
    /// The key the caller presented, offered to rule actions that want one.
    presented_key: Option<AuthKey>,
    transaction_id: String,
}

/// Looks the trigger up and, when it has active rules, notes its activation as pending and
/// starts the rules' actions in a task of its own, which writes the trigger record at the end.
async fn fire_admitted(state: &AppState, request: FireRequest<'_>) -> ApiResult<Fired> {
    let doc_id = request.address.doc_id();
    let stored: Stored<WhiskTrigger> =
        documents::fetch_existing(state.store.entities.as_ref(), &doc_id, EntityType::Trigger)
            .await?;
    let trigger = stored.entity;
    let rules: Vec<(String, FullyQualifiedEntityName)> = trigger
        .active_rules()
        .map(|(rule, reduced)| (rule.clone(), reduced.action.clone()))
        .collect();
    if rules.is_empty() {
        tracing::debug!(trigger = %doc_id, "fired without active rules");
        return Ok(Fired::NoActiveRule);
    }
    let fired_at = state.clock.now_millis();
    let activation_id = state.ids.activation_id();
    let mut record = trigger_record(
        request.caller,
        &trigger,
        &activation_id,
        fired_at,
        ActivationResponse::whisk_error(json!(invoke::LOST_ACTIVATION)),
    )?;
    let note = activation_entry(&record).map_err(|error| {
        tracing::error!(%error, "trigger pending note does not encode");
        ApiError::internal()
    })?;
    state.store.activations.put_pending(note).await?;
    record.response = ActivationResponse::success(json!(request.payload), None);

    let mut arguments = trigger.parameters.to_object();
    if let Some(headers) = request.headers {
        arguments.insert(OW_HEADERS.into(), Value::Object(headers));
    }
    arguments.extend(request.payload);
    let firing = RuleFiringContext {
        caller: request.caller.clone(),
        presented_key: request.presented_key,
        transaction_id: request.transaction_id,
    };
    tracing::info!(trigger = %doc_id, %activation_id, rules = rules.len(), "trigger fired");
    let task_state = state.clone();
    tokio::spawn(async move {
        let mut logs = Vec::with_capacity(rules.len());
        for (rule, action) in rules {
            let outcome = firing
                .start_rule(&task_state, &rule, &action, &arguments)
                .await;
            logs.push(outcome.to_log_line());
        }
        record.logs = logs;
        store_trigger_record(&task_state, &record).await;
    });
    Ok(Fired::Activation(activation_id))
}

/// The key under which a rule's action finds the fire request's headers.
const OW_HEADERS: &str = "__ow_headers";

/// The fire request's headers with lower-cased names, as rule actions receive them. The
/// credentials are left out: a rule may name another namespace's shared action, which must not
/// learn the firing user's key this way.
fn fire_headers(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((name.as_str().to_ascii_lowercase(), json!(value)))
        })
        .collect()
}

/// Who fires, for the rules' invocations.
struct RuleFiringContext {
    caller: Identity,
    presented_key: Option<AuthKey>,
    transaction_id: String,
}

impl RuleFiringContext {
    /// Invokes one rule's action as the firing user would with a non-blocking `POST` on it:
    /// their invocation throttles and rights apply, and a refusal (4xx) or a platform failure
    /// becomes the rule's log line instead of failing the fire.
    async fn start_rule(
        &self,
        state: &AppState,
        rule: &str,
        action: &FullyQualifiedEntityName,
        arguments: &Map<String, Value>,
    ) -> RuleFiring {
        let rule = rule.to_owned();
        let action_name = action.to_string();
        let action_name = action_name.trim_start_matches('/').to_owned();
        match self.invoke(state, action, arguments.clone()).await {
            Ok(activation_id) => RuleFiring::Invoked {
                rule,
                action: action_name,
                activation_id,
            },
            Err(error) if error.status().is_client_error() => {
                tracing::info!(%rule, action = %action_name, error = error.message(), "rule action refused");
                RuleFiring::Rejected {
                    rule,
                    action: action_name,
                    error: error.message().to_owned(),
                }
            }
            Err(error) => {
                tracing::warn!(%rule, action = %action_name, error = error.message(), "rule action failed");
                RuleFiring::Failed {
                    rule,
                    action: action_name,
                    error: error.message().to_owned(),
                }
            }
        }
    }

    /// The checks of an action invoke in its order, then the start of a plain action, a
    /// sequence or a conductor action (its composition), without waiting for it.
    async fn invoke(
        &self,
        state: &AppState,
        action: &FullyQualifiedEntityName,
        payload: Map<String, Value>,
    ) -> ApiResult<ActivationId> {
        let accepted_at = state.clock.now_millis();
        let caller = &self.caller;
        state.invocations.throttle(state, caller).await?;
        let address = ActionAddress::of(action);
        let store = state.store.entities.as_ref();
        let access =
            entitlement::check(store, caller, Privilege::Activate, &address.resource()).await?;
        let resolved = ResolvedAction::fetch(store, &address, access).await?;
        let merged = resolved.merged();
        if merged.exec.is_sequence() {
            actions::check_components(state, caller, merged.exec.components(), Privilege::Activate)
                .await?;
        }
        actions::check_final_parameters(&merged, &payload)?;
        let binding = resolved
            .access
            .as_ref()
            .and_then(PackageAccess::binding_path);
        if compose::runs_in_controller(&merged) {
            let (activation_id, _finished) = compose::start_sequence(
                state,
                SequenceCall {
                    caller: caller.clone(),
                    presented_key: self.presented_key.clone(),
                    sequence: merged,
                    revision: resolved.action.revision.to_string(),
                    binding,
                    payload,
                    blocking: false,
                    result_only: false,
                    wait_ms: 0,
                    transaction_id: self.transaction_id.clone(),
                    accepted_at,
                },
            )
            .await?;
            return Ok(activation_id);
        }
        let api_key = self
            .presented_key
            .as_ref()
            .filter(|_| merged.provides_api_key())
            .map(ToString::to_string);
        let started = invoke::start(
            state,
            Activation {
                caller,
                api_key,
                action: &merged,
                revision: resolved.action.revision.to_string(),
                binding,
                payload,
                blocking: false,
                result_only: false,
                wait_ms: 0,
                transaction_id: self.transaction_id.clone(),
                accepted_at,
                cause: None,
                caused_by: None,
            },
        )
        .await?;
        Ok(started.activation_id)
    }
}

/// The trigger activation (§12.3): the firing identity's namespace and subject, no end (so no
/// `end` or `duration` in the API), no annotations, the trigger's version.
fn trigger_record(
    caller: &Identity,
    trigger: &WhiskTrigger,
    activation_id: &ActivationId,
    start: u64,
    response: ActivationResponse,
) -> ApiResult<WhiskActivation> {
    let namespace = EntityName::namespace(caller.namespace.clone())
        .map(EntityPath::namespace)
        .map_err(|error| {
            tracing::error!(%error, "caller namespace is not a valid name");
            ApiError::internal()
        })?;
    Ok(WhiskActivation {
        namespace,
        name: trigger.name.clone(),
        subject: caller.subject.clone(),
        activation_id: activation_id.clone(),
        start,
        end: 0,
        duration: None,
        cause: None,
        response,
        logs: Vec::new(),
        version: trigger.version,
        publish: false,
        annotations: Annotations::new(),
    })
}

/// Stores the trigger record, which clears its pending note; a failure is logged and the note
/// stays, so the next start closes it as lost rather than losing it silently.
async fn store_trigger_record(state: &AppState, record: &WhiskActivation) {
    let entry = match activation_entry(record) {
        Ok(entry) => entry,
        Err(error) => {
            tracing::error!(%error, activation_id = %record.activation_id, "trigger record does not encode");
            return;
        }
    };
    if let Err(error) = state.store.activations.put(entry).await {
        tracing::error!(%error, activation_id = %record.activation_id, "cannot store the trigger record");
    }
}

/// The fire body: a JSON object, or nothing (an empty object).
async fn fire_payload(request: Request, max_bytes: u64) -> ApiResult<Map<String, Value>> {
    if let Some(length) = extract::declared_length(request.headers())
        && length > max_bytes
    {
        return Err(ApiError::too_large("Request", length, max_bytes));
    }
    match extract::read_optional_json::<Value>(request, max_bytes).await? {
        None => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(ApiError::malformed_content("JSON object expected")),
    }
}

/// Summaries of the namespace's triggers, newest first.
async fn list_triggers(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments(namespace): PathSegments<String>,
) -> ApiResult<Json<Value>> {
    let namespace = entitlement::check_collection_read(
        state.store.entities.as_ref(),
        &caller,
        &namespace,
        Collection::Triggers,
    )
    .await?;
    let listing = Listing {
        collection: Collection::Triggers,
        entity_type: EntityType::Trigger,
        scope: EntityScope::Exact(namespace.into_string()),
        public_only: false,
    };
    listing
        .respond(&state, &query, |trigger: &WhiskTrigger| {
            trigger.to_summary_json()
        })
        .await
}
