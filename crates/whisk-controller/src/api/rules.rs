//! The rules collection (REFERENCE §12.2).
//!
//! A rule links a trigger to an action. Its status is not stored in the rule: the trigger's
//! `rules` map (rule doc id → action and status) is the single source of truth, because that
//! is what a fire reads. Every rule write therefore also edits its trigger's map, under the
//! store's optimistic concurrency: the trigger is re-read and the edit retried when another
//! writer got there first, and only after several lost races does the request fail with 409.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;
use whisk_model::{
    EntityName, EntityPath, EntityType, FullyQualifiedEntityName, Identity, ModelError, RulePut,
    RuleStatus, RuleStatusChange, WhiskAction, WhiskPackage, WhiskRule, WhiskTrigger, messages,
};
use whisk_store::{EntityDocument, EntityScope, EntityStore, Revision, StoreError};

use crate::api::Listing;
use crate::api::triggers::trigger_document;
use crate::auth::Caller;
use crate::documents::{self, DocumentColumns, Stored};
use crate::entitlement::{self, Collection, Privilege, Resource};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, PathSegments, QueryParams};
use crate::names;
use crate::state::AppState;

/// How often a trigger's `rules` map edit is retried after losing a race with another writer.
const TRIGGER_UPDATE_ATTEMPTS: usize = 5;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/namespaces/{namespace}/rules", get(list_rules))
        .route("/api/v1/namespaces/{namespace}/rules/", get(list_rules))
        .route(
            "/api/v1/namespaces/{namespace}/rules/{name}",
            get(get_rule)
                .put(put_rule)
                .delete(delete_rule)
                .post(change_rule_status),
        )
}

/// The stored form of a rule, with the columns the store indexes.
pub fn rule_document(rule: &WhiskRule) -> ApiResult<EntityDocument> {
    documents::to_document(
        DocumentColumns {
            entity_type: EntityType::Rule,
            namespace: rule.namespace.to_string(),
            name: rule.name.to_string(),
            updated: rule.updated,
            publish: rule.publish,
            binding: false,
        },
        rule,
    )
}

/// A rule addressed by the URL, namespace resolved from `_`.
#[derive(Debug, Clone)]
struct RuleAddress {
    namespace: EntityName,
    name: EntityName,
}

impl RuleAddress {
    /// Parses the address and checks `privilege` (rules are owner-only).
    async fn authorize(
        state: &AppState,
        caller: &Identity,
        namespace: &str,
        name: &str,
        privilege: Privilege,
    ) -> ApiResult<Self> {
        let address = Self {
            namespace: names::resolve_namespace(caller, namespace)?,
            name: names::entity_name(name)?,
        };
        let resource = Resource::entity(Collection::Rules, address.path(), address.name.clone());
        entitlement::check(state.store.entities.as_ref(), caller, privilege, &resource).await?;
        Ok(address)
    }

    fn path(&self) -> EntityPath {
        EntityPath::namespace(self.namespace.clone())
    }

    fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

// ---- the trigger side ---------------------------------------------------------------------------

/// Reads the trigger a rule points to; `None` when it is gone or no longer a readable trigger
/// (a rule then simply reports `inactive`, as in OpenWhisk).
async fn read_trigger(
    store: &dyn EntityStore,
    trigger: &FullyQualifiedEntityName,
) -> ApiResult<Option<Stored<WhiskTrigger>>> {
    let Some(found) = store.get(&trigger.doc_id()).await? else {
        return Ok(None);
    };
    match documents::decode::<WhiskTrigger>(found, EntityType::Trigger) {
        Ok(stored) => Ok(Some(stored)),
        Err(error) => {
            tracing::warn!(%error, "rule points at something that is not a readable trigger");
            Ok(None)
        }
    }
}

/// The status of `rule_id` as its trigger records it; `inactive` without trigger or entry.
async fn rule_status(
    store: &dyn EntityStore,
    trigger: &FullyQualifiedEntityName,
    rule_id: &str,
) -> ApiResult<RuleStatus> {
    Ok(read_trigger(store, trigger)
        .await?
        .map_or(RuleStatus::Inactive, |stored| {
            stored.entity.rule_status(rule_id)
        }))
}

/// Applies `edit` to the trigger's current document and writes it back, starting over from a
/// fresh read when another writer changed the trigger in between. `edit` answers whether it
/// changed anything (nothing is written otherwise). `Ok(None)` when there is no trigger;
/// 409 after [`TRIGGER_UPDATE_ATTEMPTS`] lost races.
async fn edit_trigger(
    store: &dyn EntityStore,
    now: u64,
    trigger: &FullyQualifiedEntityName,
    mut edit: impl FnMut(&mut WhiskTrigger) -> bool + Send,
) -> ApiResult<Option<WhiskTrigger>> {
    for attempt in 1..=TRIGGER_UPDATE_ATTEMPTS {
        let Some(Stored {
            entity: mut current,
            revision,
        }) = read_trigger(store, trigger).await?
        else {
            return Ok(None);
        };
        if !edit(&mut current) {
            return Ok(Some(current));
        }
        current.updated = now;
        match store.put(trigger_document(&current)?, Some(revision)).await {
            Ok(_) => return Ok(Some(current)),
            // Changed or deleted since the read: read again and redo the edit.
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {
                tracing::debug!(trigger = %trigger.doc_id(), attempt, "trigger changed concurrently, retrying");
            }
            Err(error) => return Err(error.into()),
        }
    }
    tracing::warn!(trigger = %trigger.doc_id(), "giving up on trigger update after repeated conflicts");
    Err(ApiError::concurrent_modification())
}

/// Records `rule` in its trigger's map with `status` (replacing any previous entry).
async fn attach_rule(
    store: &dyn EntityStore,
    now: u64,
    rule: &WhiskRule,
    status: RuleStatus,
) -> ApiResult<Option<WhiskTrigger>> {
    let rule_id = rule.doc_id();
    let entry = rule.reduced(status);
    edit_trigger(store, now, &rule.trigger, |trigger| {
        let unchanged =
            trigger.rules.as_ref().and_then(|rules| rules.get(&rule_id)) == Some(&entry);
        if !unchanged {
            trigger.add_rule(rule_id.clone(), entry.action.clone(), entry.status);
        }
        !unchanged
    })
    .await
}

/// Removes `rule_id` from the map of `trigger`, if both still exist.
async fn detach_rule(
    store: &dyn EntityStore,
    now: u64,
    trigger: &FullyQualifiedEntityName,
    rule_id: &str,
) -> ApiResult<()> {
    edit_trigger(store, now, trigger, |trigger| {
        trigger.remove_rule(rule_id).is_some()
    })
    .await?;
    Ok(())
}

// ---- references ---------------------------------------------------------------------------------

/// READ on the trigger and action a rule refers to; one 403 names every refused reference.
/// An owner's missing package (or a name held by another entity type) is not an entitlement
/// matter here: the existence checks that follow report it as the rule's 400.
async fn check_references_readable(
    store: &dyn EntityStore,
    caller: &Identity,
    trigger: Option<&FullyQualifiedEntityName>,
    action: Option<&FullyQualifiedEntityName>,
) -> ApiResult<()> {
    let references = [
        (Collection::Triggers, trigger),
        (Collection::Actions, action),
    ];
    let mut refused = Vec::new();
    for (collection, reference) in references {
        let Some(reference) = reference else {
            continue;
        };
        let resource = Resource::entity(collection, reference.path.clone(), reference.name.clone());
        match entitlement::check(store, caller, Privilege::Read, &resource).await {
            Ok(_) => {}
            Err(error) if error.status() == StatusCode::FORBIDDEN => {
                refused.push(resource.fqname());
            }
            Err(error)
                if matches!(error.status(), StatusCode::NOT_FOUND | StatusCode::CONFLICT) => {}
            Err(error) => return Err(error),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::not_authorized(refused))
    }
}

/// Reads an entity for an existence check: `None` when the id is free or held by another type.
async fn fetch_if_kind<T: serde::de::DeserializeOwned>(
    store: &dyn EntityStore,
    doc_id: &str,
    entity_type: EntityType,
) -> ApiResult<Option<Stored<T>>> {
    match documents::fetch(store, doc_id, entity_type).await {
        Err(error) if error.status() == StatusCode::CONFLICT => Ok(None),
        other => other,
    }
}

/// 400 `trigger /ns/t does not exist` unless the trigger exists.
async fn require_trigger(
    store: &dyn EntityStore,
    trigger: &FullyQualifiedEntityName,
) -> ApiResult<()> {
    match fetch_if_kind::<WhiskTrigger>(store, &trigger.doc_id(), EntityType::Trigger).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::bad_request(messages::trigger_does_not_exist(
            trigger,
        ))),
    }
}

/// 400 `action /ns[/pkg]/a does not exist` unless the action exists; an action addressed
/// through a package binding is looked up in the bound package.
async fn require_action(
    store: &dyn EntityStore,
    action: &FullyQualifiedEntityName,
) -> ApiResult<()> {
    let missing = || ApiError::bad_request(messages::action_does_not_exist(action));
    let doc_id = match action.path.segments() {
        [_] => action.doc_id(),
        [namespace, package] => {
            let package_id = format!("{namespace}/{package}");
            let Some(package) =
                fetch_if_kind::<WhiskPackage>(store, &package_id, EntityType::Package).await?
            else {
                return Err(missing());
            };
            match package.entity.binding {
                Some(binding) => format!("{}/{}", binding.doc_id(), action.name),
                None => action.doc_id(),
            }
        }
        _ => return Err(missing()),
    };
    match fetch_if_kind::<WhiskAction>(store, &doc_id, EntityType::Action).await? {
        Some(_) => Ok(()),
        None => Err(missing()),
    }
}

// ---- GET ----------------------------------------------------------------------------------------

async fn get_rule(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address =
        RuleAddress::authorize(&state, &caller, &namespace, &name, Privilege::Read).await?;
    let store = state.store.entities.as_ref();
    let stored: Stored<WhiskRule> =
        documents::fetch_existing(store, &address.doc_id(), EntityType::Rule).await?;
    let rule = stored.entity;
    let status = rule_status(store, &rule.trigger, &rule.doc_id()).await?;
    Ok(Json(rule.to_api_json(status)))
}

// ---- PUT ----------------------------------------------------------------------------------------

/// Create, or with `overwrite=true` update, in OpenWhisk's order: rights on the rule, body,
/// sizes, READ on the referenced trigger and action, existence of the rule, then (on create)
/// both references required, and both must exist.
async fn put_rule(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let address =
        RuleAddress::authorize(&state, &caller, &namespace, &name, Privilege::Put).await?;
    let overwrite = query.boolean("overwrite", false)?;
    let mut put: RulePut = extract::read_json(request, state.config.max_request_body).await?;
    put.validate(&state.config.limits)?;
    put.trigger = put
        .trigger
        .map(|trigger| trigger.resolve_namespace(&address.namespace));
    put.action = put
        .action
        .map(|action| action.resolve_namespace(&address.namespace));
    let store = state.store.entities.as_ref();
    check_references_readable(store, &caller, put.trigger.as_ref(), put.action.as_ref()).await?;

    let existing: Option<Stored<WhiskRule>> =
        documents::fetch(store, &address.doc_id(), EntityType::Rule).await?;
    let now = state.clock.now_millis();
    let (rule, status) = match existing {
        Some(_) if !overwrite => return Err(ApiError::entity_exists()),
        Some(stored) => update_rule(store, stored, put, now).await?,
        None => create_rule(store, &address, put, now).await?,
    };
    Ok(Json(rule.to_api_json(status)))
}

/// A new rule starts `active`. The rule is written first so a concurrent create of the same
/// name fails before any trigger is touched; if the trigger cannot be updated, the rule is
/// removed again.
async fn create_rule(
    store: &dyn EntityStore,
    address: &RuleAddress,
    put: RulePut,
    now: u64,
) -> ApiResult<(WhiskRule, RuleStatus)> {
    let rule = WhiskRule::create(address.path(), address.name.clone(), put, now)?;
    require_trigger(store, &rule.trigger).await?;
    require_action(store, &rule.action).await?;
    let revision = store.put(rule_document(&rule)?, None).await?;
    let attached = attach_rule(store, now, &rule, RuleStatus::Active).await;
    let failure = match attached {
        Ok(Some(_)) => {
            tracing::info!(rule = %rule.doc_id(), trigger = %rule.trigger.doc_id(), "rule created");
            return Ok((rule, RuleStatus::Active));
        }
        Ok(None) => ApiError::bad_request(messages::trigger_does_not_exist(&rule.trigger)),
        Err(error) => error,
    };
    roll_back_create(store, &rule, revision).await;
    Err(failure)
}

/// Undoes the write of a rule whose trigger could not record it.
async fn roll_back_create(store: &dyn EntityStore, rule: &WhiskRule, revision: Revision) {
    if let Err(error) = store.delete(&rule.doc_id(), revision).await {
        tracing::error!(rule = %rule.doc_id(), %error, "could not roll back rule after failed trigger update");
    }
}

/// An update keeps the rule's current status; when the trigger changes, the entry moves from
/// the old trigger's map to the new one's.
async fn update_rule(
    store: &dyn EntityStore,
    stored: Stored<WhiskRule>,
    put: RulePut,
    now: u64,
) -> ApiResult<(WhiskRule, RuleStatus)> {
    let old = stored.entity;
    let rule_id = old.doc_id();
    let status = rule_status(store, &old.trigger, &rule_id).await?;
    let rule = old.update(put, now);
    require_trigger(store, &rule.trigger).await?;
    require_action(store, &rule.action).await?;
    store
        .put(rule_document(&rule)?, Some(stored.revision))
        .await?;
    if rule.trigger != old.trigger {
        detach_rule(store, now, &old.trigger, &rule_id).await?;
    }
    let attached = attach_rule(store, now, &rule, status).await?;
    let status = attached.map_or(RuleStatus::Inactive, |trigger| {
        trigger.rule_status(&rule_id)
    });
    tracing::info!(rule = %rule_id, trigger = %rule.trigger.doc_id(), %status, "rule updated");
    Ok((rule, status))
}

// ---- POST (status) ------------------------------------------------------------------------------

/// `{"status": "active" | "inactive"}`: 200 once the rule is in that state (also when it
/// already was); 404 when its trigger is gone.
async fn change_rule_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<StatusCode> {
    let address =
        RuleAddress::authorize(&state, &caller, &namespace, &name, Privilege::Activate).await?;
    let change: RuleStatusChange =
        extract::read_json(request, state.config.max_request_body).await?;
    let requested = change.requested().map_err(ModelError::from)?;
    let store = state.store.entities.as_ref();
    let stored: Stored<WhiskRule> =
        documents::fetch_existing(store, &address.doc_id(), EntityType::Rule).await?;
    let rule = stored.entity;
    let rule_id = rule.doc_id();
    let now = state.clock.now_millis();
    let changed = edit_trigger(store, now, &rule.trigger, |trigger| {
        if trigger.rule_status(&rule_id) == requested {
            return false;
        }
        trigger.add_rule(rule_id.clone(), rule.action.clone(), requested);
        true
    })
    .await?;
    match changed {
        Some(_) => {
            tracing::info!(rule = %rule_id, status = %requested, "rule status set");
            Ok(StatusCode::OK)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            messages::RULE_NEEDS_EXISTING_TRIGGER,
        )),
    }
}

// ---- DELETE -------------------------------------------------------------------------------------

/// Deletes a rule (active or not), removing it from its trigger first; answers with the rule
/// as `inactive`.
async fn delete_rule(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address =
        RuleAddress::authorize(&state, &caller, &namespace, &name, Privilege::Delete).await?;
    let store = state.store.entities.as_ref();
    let doc_id = address.doc_id();
    let stored: Stored<WhiskRule> =
        documents::fetch_existing(store, &doc_id, EntityType::Rule).await?;
    let now = state.clock.now_millis();
    detach_rule(store, now, &stored.entity.trigger, &doc_id).await?;
    store.delete(&doc_id, stored.revision).await?;
    tracing::info!(rule = %doc_id, "rule deleted");
    Ok(Json(stored.entity.to_api_json(RuleStatus::Inactive)))
}

// ---- list ---------------------------------------------------------------------------------------

/// The namespace's rules as full documents without `status`, newest first.
async fn list_rules(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments(namespace): PathSegments<String>,
) -> ApiResult<Json<Value>> {
    let namespace = entitlement::check_collection_read(
        state.store.entities.as_ref(),
        &caller,
        &namespace,
        Collection::Rules,
    )
    .await?;
    let listing = Listing {
        collection: Collection::Rules,
        entity_type: EntityType::Rule,
        scope: EntityScope::Exact(namespace.into_string()),
        public_only: false,
    };
    listing
        .respond(&state, &query, |rule: &WhiskRule| rule.to_summary_json())
        .await
}
