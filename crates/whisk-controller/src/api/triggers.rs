//! The triggers collection (REFERENCE §12.1, §12.3).
//!
//! A trigger is a named event channel of one namespace. Its `rules` map (rule doc id → action
//! and status) belongs to the rules API: trigger writes never take it from the client and an
//! update keeps whatever rules are attached.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value};
use whisk_model::{EntityName, EntityPath, EntityType, Identity, TriggerPut, WhiskTrigger};
use whisk_store::{EntityDocument, EntityScope};

use crate::api::Listing;
use crate::auth::Caller;
use crate::documents::{self, DocumentColumns, Stored};
use crate::entitlement::{self, Collection, Privilege, Resource};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, PathSegments, QueryParams};
use crate::names;
use crate::state::AppState;

/// The answer to a fire that would start rule actions, until activations can be published.
pub const FIRING_UNAVAILABLE: &str = "Trigger firing is not available yet.";

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

/// Fires a trigger, up to the point where rule actions would be invoked: rights, payload
/// (a JSON object of at most the payload limit, or nothing), existence. A trigger without an
/// active rule does nothing and answers 204, as OpenWhisk does; one with active rules answers
/// 503 until activations can be published.
async fn fire_trigger(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let address =
        TriggerAddress::authorize(&state, &caller, &namespace, &name, Privilege::Activate).await?;
    // Read now so a bad body is refused before the lookup; the arguments for the rule
    // actions will be built from it once firing exists.
    let _payload = fire_payload(request, state.config.limits.max_payload_size).await?;
    let stored: Stored<WhiskTrigger> = documents::fetch_existing(
        state.store.entities.as_ref(),
        &address.doc_id(),
        EntityType::Trigger,
    )
    .await?;
    if stored.entity.active_rules().next().is_none() {
        tracing::debug!(trigger = %address.doc_id(), "fired without active rules");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    tracing::warn!(trigger = %address.doc_id(), "trigger fire requested but not available");
    Err(ApiError::unavailable(FIRING_UNAVAILABLE))
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
