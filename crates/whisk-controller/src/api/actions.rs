//! The actions collection (REFERENCE §7): create/update, read, delete, list, and the checks of
//! the invoke route before [`crate::invoke`] publishes the activation.
//!
//! Actions live in a namespace's default package (`/namespaces/{ns}/actions/{name}`) or in a
//! package (`/namespaces/{ns}/actions/{pkg}/{name}`). Reads and invocations through a package
//! binding reach the bound package's actions, with the package's and the binding's parameters
//! merged underneath the action's own.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};
use whisk_model::{
    ActionPut, EntityName, EntityPath, EntityType, Exec, FullyQualifiedEntityName, Identity,
    WhiskAction, WhiskPackage, messages,
};
use whisk_store::{EntityScope, EntityStore};

use crate::api::Listing;
use crate::auth::{self, Caller};
use crate::compose::{self, SequenceCall};
use crate::documents::{self, Stored, action_document};
use crate::entitlement::{self, Collection, PackageAccess, Privilege, Resource};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, PathSegments, QueryParams};
use crate::invoke::{self, Activation};
use crate::names;
use crate::state::AppState;
use crate::transaction::TransactionId;

/// The longest a blocking invoke may wait, in ms (OpenWhisk's
/// `controller.activation.max-wait-for-blocking-activation`, 60 s); also the default wait.
pub const MAX_BLOCKING_WAIT_MS: u64 = 60_000;

/// Guards the walk through nested sequences against pathological stored data: more nested
/// sequences than this cannot be part of a valid sequence of at most 50 actions anyway.
const MAX_NESTED_SEQUENCES: usize = 1_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/namespaces/{namespace}/actions", get(list_actions))
        .route("/api/v1/namespaces/{namespace}/actions/", get(list_actions))
        .route(
            "/api/v1/namespaces/{namespace}/actions/{name}",
            get(get_action)
                .put(put_action)
                .delete(delete_action)
                .post(invoke_action),
        )
        .route(
            "/api/v1/namespaces/{namespace}/actions/{name}/",
            get(list_package_actions),
        )
        .route(
            "/api/v1/namespaces/{namespace}/actions/{name}/{inner}",
            get(get_packaged_action)
                .put(put_packaged_action)
                .delete(delete_packaged_action)
                .post(invoke_packaged_action),
        )
}

/// Where an action lives, as addressed by the URL (namespace already resolved from `_`).
#[derive(Debug, Clone)]
pub(crate) struct ActionAddress {
    namespace: EntityName,
    package: Option<EntityName>,
    name: EntityName,
}

impl ActionAddress {
    /// Validates the segments in URL order: namespace, package, name.
    pub(crate) fn parse(
        caller: &Identity,
        namespace: &str,
        package: Option<&str>,
        name: &str,
    ) -> ApiResult<Self> {
        let namespace = names::resolve_namespace(caller, namespace)?;
        let package = package.map(names::entity_name).transpose()?;
        let name = names::entity_name(name)?;
        Ok(Self {
            namespace,
            package,
            name,
        })
    }

    /// The address of a fully qualified name (a sequence component, a rule's action).
    pub(crate) fn of(name: &FullyQualifiedEntityName) -> Self {
        Self {
            namespace: name.path.root().clone(),
            package: name.path.package().cloned(),
            name: name.name.clone(),
        }
    }

    /// `ns` or `ns/pkg`.
    fn path(&self) -> EntityPath {
        let root = EntityPath::namespace(self.namespace.clone());
        match &self.package {
            Some(package) => root.child(package),
            None => root,
        }
    }

    pub(crate) fn resource(&self) -> Resource {
        Resource::entity(Collection::Actions, self.path(), self.name.clone())
    }

    fn doc_id(&self) -> String {
        format!("{}/{}", self.path(), self.name)
    }
}

/// An action found for a read or an invocation, with the package it was reached through.
#[derive(Debug)]
pub(crate) struct ResolvedAction {
    pub(crate) action: Stored<WhiskAction>,
    pub(crate) access: Option<PackageAccess>,
}

impl ResolvedAction {
    /// Reads the action `address` names once its rights are checked: through the package
    /// `access` when the check consulted one (a binding leads to the bound package's
    /// contents), else at the address itself. A missing action is a 404.
    pub(crate) async fn fetch(
        store: &dyn EntityStore,
        address: &ActionAddress,
        access: Option<PackageAccess>,
    ) -> ApiResult<Self> {
        let doc_id = match &access {
            Some(access) => format!(
                "{}/{}",
                access.actions_package().contents_path(),
                address.name
            ),
            None => address.doc_id(),
        };
        let action = documents::fetch_existing(store, &doc_id, EntityType::Action).await?;
        Ok(Self { action, access })
    }

    /// The action with its package's (and binding's) parameters merged underneath its own.
    pub(crate) fn merged(&self) -> WhiskAction {
        let mut action = self.action.entity.clone();
        if let Some(access) = &self.access {
            action.parameters = access.inherited_parameters().merge(&action.parameters);
        }
        action
    }

    /// The `GET` document. Without code, an action read through a binding names the binding,
    /// like OpenWhisk's metadata form does.
    fn api_json(&self, include_code: bool) -> Value {
        let mut document = self.merged().to_api_json(include_code);
        let binding = self.access.as_ref().and_then(PackageAccess::binding_path);
        if let (false, Some(binding), Some(object)) =
            (include_code, binding, document.as_object_mut())
        {
            object.insert("binding".into(), json!(binding));
        }
        document
    }
}

/// Checks `privilege` and reads the action, following a package binding.
async fn resolve_action(
    state: &AppState,
    caller: &Identity,
    address: &ActionAddress,
    privilege: Privilege,
) -> ApiResult<ResolvedAction> {
    let store = state.store.entities.as_ref();
    let access = entitlement::check(store, caller, privilege, &address.resource()).await?;
    ResolvedAction::fetch(store, address, access).await
}

/// Actions can only be written into an existing package that is not a binding.
async fn require_writable_package(
    state: &AppState,
    namespace: &EntityName,
    package: &EntityName,
) -> ApiResult<()> {
    let doc_id = format!("{namespace}/{package}");
    let package: Stored<WhiskPackage> =
        documents::fetch_existing(state.store.entities.as_ref(), &doc_id, EntityType::Package)
            .await?;
    if package.entity.is_binding() {
        return Err(ApiError::operation_not_permitted_on_binding());
    }
    Ok(())
}

// ---- GET ----------------------------------------------------------------------------------------

async fn get_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address = ActionAddress::parse(&caller, &namespace, None, &name)?;
    read_action(&state, &caller, &query, &address).await
}

async fn get_packaged_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, package, name)): PathSegments<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let address = ActionAddress::parse(&caller, &namespace, Some(&package), &name)?;
    read_action(&state, &caller, &query, &address).await
}

async fn read_action(
    state: &AppState,
    caller: &Identity,
    query: &QueryParams,
    address: &ActionAddress,
) -> ApiResult<Json<Value>> {
    let include_code = query.boolean("code", true)?;
    let resolved = resolve_action(state, caller, address, Privilege::Read).await?;
    Ok(Json(resolved.api_json(include_code)))
}

// ---- PUT ----------------------------------------------------------------------------------------

async fn put_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let address = ActionAddress::parse(&caller, &namespace, None, &name)?;
    write_action(&state, &caller, &query, &address, request).await
}

async fn put_packaged_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, package, name)): PathSegments<(String, String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let address = ActionAddress::parse(&caller, &namespace, Some(&package), &name)?;
    write_action(&state, &caller, &query, &address, request).await
}

/// Create, or with `overwrite=true` update, in OpenWhisk's order of checks: rights, package,
/// body, sizes and limits, exec, kind restriction, rights on sequence components, existence,
/// sequence structure.
async fn write_action(
    state: &AppState,
    caller: &Identity,
    query: &QueryParams,
    address: &ActionAddress,
    request: Request,
) -> ApiResult<Json<Value>> {
    let store = state.store.entities.as_ref();
    entitlement::check(store, caller, Privilege::Put, &address.resource()).await?;
    if let Some(package) = &address.package {
        require_writable_package(state, &address.namespace, package).await?;
    }
    let overwrite = query.boolean("overwrite", false)?;
    let put: ActionPut = extract::read_json(request, state.config.max_request_body).await?;
    let system = &state.config.limits;
    put.validate(system, &system.bounds_for(&caller.limits))?;
    let exec = put
        .exec
        .clone()
        .map(|input| input.resolve(&state.config.manifest))
        .transpose()?
        .map(|exec| exec.resolve_namespace(&address.namespace));
    if let Some(exec) = &exec {
        check_kind_allowed(caller, exec)?;
        check_components_readable(state, caller, exec).await?;
    }

    let doc_id = address.doc_id();
    let existing: Option<Stored<WhiskAction>> =
        documents::fetch(store, &doc_id, EntityType::Action).await?;
    let now = state.clock.now_millis();
    let manifest = &state.config.manifest;
    let (action, expected_revision) = match existing {
        Some(_) if !overwrite => return Err(ApiError::entity_exists()),
        Some(stored) => (
            stored.entity.update(put, manifest, now)?,
            Some(stored.revision),
        ),
        None => (
            WhiskAction::create_with_limits(
                address.path(),
                address.name.clone(),
                put,
                manifest,
                &system.action_defaults,
                now,
            )?,
            None,
        ),
    };
    if exec.is_some() && action.exec.is_sequence() {
        check_sequence_structure(state, &action).await?;
    }
    // Last of the checks, because it can be the costliest (compiling a WebAssembly module).
    if exec.is_some() {
        state
            .code_check
            .check(&action.exec)
            .await
            .map_err(|refused| ApiError::bad_request(refused.0))?;
    }
    store
        .put(action_document(&action)?, expected_revision)
        .await?;
    tracing::info!(action = %doc_id, version = %action.version, "action written");
    Ok(Json(action.to_api_json(true)))
}

/// 403 when the namespace is restricted to other runtime kinds. Sequences run no runtime of
/// their own, so the restriction applies to their components when those are written.
fn check_kind_allowed(caller: &Identity, exec: &Exec) -> ApiResult<()> {
    let Some(allowed) = &caller.limits.allowed_kinds else {
        return Ok(());
    };
    if exec.is_sequence() || allowed.iter().any(|kind| kind == exec.kind()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            messages::not_authorized_kind(exec.kind()),
        ))
    }
}

/// READ on every component of a sequence; one 403 names all refused components.
async fn check_components_readable(
    state: &AppState,
    caller: &Identity,
    exec: &Exec,
) -> ApiResult<()> {
    check_components(state, caller, exec.components(), Privilege::Read).await
}

pub(crate) async fn check_components(
    state: &AppState,
    caller: &Identity,
    components: &[FullyQualifiedEntityName],
    privilege: Privilege,
) -> ApiResult<()> {
    let store = state.store.entities.as_ref();
    let mut refused = Vec::new();
    for component in components {
        let resource = Resource::entity(
            Collection::Actions,
            component.path.clone(),
            component.name.clone(),
        );
        match entitlement::check(store, caller, privilege, &resource).await {
            Ok(_) => {}
            Err(error) if error.status() == StatusCode::FORBIDDEN => {
                refused.push(resource.fqname());
            }
            Err(error) => return Err(error),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::not_authorized(refused))
    }
}

/// §10's create-time rules: not too many components, none (transitively) the sequence itself,
/// every one existing, and at most the sequence limit of atomic actions once nested sequences
/// are inlined.
async fn check_sequence_structure(state: &AppState, sequence: &WhiskAction) -> ApiResult<()> {
    let limit = usize::try_from(state.config.limits.sequence_max_length).unwrap_or(usize::MAX);
    let too_long = || ApiError::bad_request(messages::SEQUENCE_TOO_LONG);
    let components = sequence.exec.components();
    if components.len() > limit {
        return Err(too_long());
    }
    let own_doc_id = sequence.doc_id();
    let mut pending: Vec<FullyQualifiedEntityName> = components.iter().rev().cloned().collect();
    let mut atomic_actions = 0usize;
    let mut nested_sequences = 0usize;
    while let Some(component) = pending.pop() {
        let Some(component_action) = find_component(state, &component, &own_doc_id).await? else {
            return Err(ApiError::bad_request(
                messages::SEQUENCE_COMPONENT_NOT_FOUND,
            ));
        };
        if component_action.exec.is_sequence() {
            nested_sequences += 1;
            if nested_sequences > MAX_NESTED_SEQUENCES {
                return Err(too_long());
            }
            pending.extend(component_action.exec.components().iter().rev().cloned());
        } else {
            atomic_actions += 1;
            if atomic_actions > limit {
                return Err(too_long());
            }
        }
    }
    Ok(())
}

/// Reads a sequence component, following a package binding; 400 when it is the sequence
/// being written, `None` when it does not exist (or is not an action).
async fn find_component(
    state: &AppState,
    component: &FullyQualifiedEntityName,
    sequence_doc_id: &str,
) -> ApiResult<Option<WhiskAction>> {
    let cyclic = || ApiError::bad_request(messages::SEQUENCE_CYCLIC);
    if component.doc_id() == sequence_doc_id {
        return Err(cyclic());
    }
    let store = state.store.entities.as_ref();
    let doc_id = match component.path.segments() {
        [_] => component.doc_id(),
        [namespace, package] => {
            let package_id = format!("{namespace}/{package}");
            let package: Option<Stored<WhiskPackage>> =
                documents::fetch(store, &package_id, EntityType::Package)
                    .await
                    .ok()
                    .flatten();
            match package.and_then(|stored| stored.entity.binding) {
                Some(binding) => format!("{}/{}", binding.doc_id(), component.name),
                None => component.doc_id(),
            }
        }
        _ => return Ok(None),
    };
    if doc_id == sequence_doc_id {
        return Err(cyclic());
    }
    match documents::fetch::<WhiskAction>(store, &doc_id, EntityType::Action).await {
        Ok(found) => Ok(found.map(|stored| stored.entity)),
        Err(error) if error.status() == StatusCode::CONFLICT => Ok(None),
        Err(error) => Err(error),
    }
}

// ---- DELETE -------------------------------------------------------------------------------------

async fn delete_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address = ActionAddress::parse(&caller, &namespace, None, &name)?;
    remove_action(&state, &caller, &address).await
}

async fn delete_packaged_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, package, name)): PathSegments<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let address = ActionAddress::parse(&caller, &namespace, Some(&package), &name)?;
    remove_action(&state, &caller, &address).await
}

/// Deletes an action and answers with it, code included.
async fn remove_action(
    state: &AppState,
    caller: &Identity,
    address: &ActionAddress,
) -> ApiResult<Json<Value>> {
    let store = state.store.entities.as_ref();
    entitlement::check(store, caller, Privilege::Delete, &address.resource()).await?;
    if let Some(package) = &address.package {
        require_writable_package(state, &address.namespace, package).await?;
    }
    let doc_id = address.doc_id();
    let stored: Stored<WhiskAction> =
        documents::fetch_existing(store, &doc_id, EntityType::Action).await?;
    store.delete(&doc_id, stored.revision).await?;
    tracing::info!(action = %doc_id, "action deleted");
    Ok(Json(stored.entity.to_api_json(true)))
}

// ---- lists --------------------------------------------------------------------------------------

/// `GET /namespaces/{ns}/actions`: the namespace's actions, including those in its packages.
async fn list_actions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments(namespace): PathSegments<String>,
) -> ApiResult<Json<Value>> {
    let namespace = entitlement::check_collection_read(
        state.store.entities.as_ref(),
        &caller,
        &namespace,
        Collection::Actions,
    )
    .await?;
    list(
        &state,
        &query,
        EntityScope::Namespace(namespace.into_string()),
    )
    .await
}

/// `GET /namespaces/{ns}/actions/{pkg}/`: the actions of a package, or of a binding's target.
async fn list_package_actions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, package)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let namespace = names::resolve_namespace(&caller, &namespace)?;
    let package = names::entity_name(&package)?;
    let resource = Resource::collection(
        Collection::Actions,
        names::package_path(&namespace, &package),
    );
    let access = entitlement::check(
        state.store.entities.as_ref(),
        &caller,
        Privilege::Read,
        &resource,
    )
    .await?
    .ok_or_else(ApiError::internal)?;
    let contents = access.actions_package().contents_path().to_string();
    list(&state, &query, EntityScope::Exact(contents)).await
}

/// Newest first, paged, or just counted with `count=true`.
async fn list(state: &AppState, query: &QueryParams, scope: EntityScope) -> ApiResult<Json<Value>> {
    let listing = Listing {
        collection: Collection::Actions,
        entity_type: EntityType::Action,
        scope,
        public_only: false,
    };
    listing
        .respond(state, query, |action: &WhiskAction| {
            action.to_summary_json()
        })
        .await
}

// ---- POST (invoke) ------------------------------------------------------------------------------

async fn invoke_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    tid: TransactionId,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let address = ActionAddress::parse(&caller, &namespace, None, &name)?;
    invoke(&state, &caller, &tid, &address, request).await
}

async fn invoke_packaged_action(
    State(state): State<AppState>,
    Caller(caller): Caller,
    tid: TransactionId,
    PathSegments((namespace, package, name)): PathSegments<(String, String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let address = ActionAddress::parse(&caller, &namespace, Some(&package), &name)?;
    invoke(&state, &caller, &tid, &address, request).await
}

/// Runs every check of an invocation in OpenWhisk's order (throttles, rights, payload size,
/// query, action lookup, rights on sequence components, immutable parameters), then hands the
/// activation to [`invoke::activate`], or to [`compose`] for sequences and conductor actions.
async fn invoke(
    state: &AppState,
    caller: &Identity,
    tid: &TransactionId,
    address: &ActionAddress,
    request: Request,
) -> ApiResult<Response> {
    let accepted_at = state.clock.now_millis();
    state.invocations.throttle(state, caller).await?;
    let store = state.store.entities.as_ref();
    let access =
        entitlement::check(store, caller, Privilege::Activate, &address.resource()).await?;
    let max_payload = state.config.limits.max_payload_size;
    if let Some(length) = extract::declared_length(request.headers())
        && length > max_payload
    {
        return Err(ApiError::too_large("Request", length, max_payload));
    }
    let query = QueryParams::parse(request.uri().query());
    let options = InvokeOptions::parse(&query)?;
    let presented_key = auth::presented_key(request.headers());
    let payload = invocation_payload(request, max_payload).await?;
    let resolved = ResolvedAction::fetch(store, address, access).await?;
    let merged = resolved.merged();
    if merged.exec.is_sequence() {
        check_components(state, caller, merged.exec.components(), Privilege::Activate).await?;
    }
    check_final_parameters(&merged, &payload)?;
    let binding = resolved
        .access
        .as_ref()
        .and_then(PackageAccess::binding_path);
    if compose::runs_in_controller(&merged) {
        return compose::invoke_sequence(
            state,
            SequenceCall {
                caller: caller.clone(),
                presented_key,
                sequence: merged,
                revision: resolved.action.revision.to_string(),
                binding,
                payload,
                blocking: options.blocking,
                result_only: options.result,
                wait_ms: options.timeout_ms,
                transaction_id: tid.as_str().to_owned(),
                accepted_at,
            },
        )
        .await;
    }
    let api_key = presented_key
        .filter(|_| merged.provides_api_key())
        .map(|key| key.to_string());
    invoke::activate(
        state,
        Activation {
            caller,
            api_key,
            action: &merged,
            revision: resolved.action.revision.to_string(),
            binding,
            payload,
            blocking: options.blocking,
            result_only: options.result,
            wait_ms: options.timeout_ms,
            transaction_id: tid.as_str().to_owned(),
            accepted_at,
            cause: None,
            caused_by: None,
        },
    )
    .await
}

/// The query parameters of an invoke (§7.5), validated before the body is read and before the
/// action is looked up, as OpenWhisk's `parameter(...)` directive does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InvokeOptions {
    blocking: bool,
    result: bool,
    timeout_ms: u64,
}

impl InvokeOptions {
    fn parse(query: &QueryParams) -> ApiResult<Self> {
        let blocking = query.boolean("blocking", false)?;
        let result = query.boolean("result", false)?;
        let timeout_ms = match query.get("timeout") {
            None => MAX_BLOCKING_WAIT_MS,
            Some(raw) => raw
                .parse::<i32>()
                .ok()
                .and_then(|value| u64::try_from(value).ok())
                .filter(|value| (1..=MAX_BLOCKING_WAIT_MS).contains(value))
                .ok_or_else(|| {
                    ApiError::malformed_query_parameter(
                        "timeout",
                        messages::invalid_timeout(MAX_BLOCKING_WAIT_MS),
                    )
                })?,
        };
        Ok(InvokeOptions {
            blocking,
            result,
            timeout_ms,
        })
    }
}

/// The invocation body: a JSON object, or nothing.
async fn invocation_payload(request: Request, max_bytes: u64) -> ApiResult<Map<String, Value>> {
    match extract::read_optional_json::<Value>(request, max_bytes).await? {
        None => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(ApiError::malformed_content("JSON object expected")),
    }
}

/// §9.3: with `final: true`, a defined (non-null) parameter may not be overridden.
pub(crate) fn check_final_parameters(
    action: &WhiskAction,
    payload: &Map<String, Value>,
) -> ApiResult<()> {
    if !action.is_final() {
        return Ok(());
    }
    let overrides_fixed = payload.keys().any(|key| {
        action
            .parameters
            .get(key)
            .is_some_and(|value| !value.is_null())
    });
    if overrides_fixed {
        Err(ApiError::bad_request(messages::PARAMETERS_NOT_ALLOWED))
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options(query: &str) -> ApiResult<InvokeOptions> {
        InvokeOptions::parse(&QueryParams::parse(Some(query)))
    }

    #[test]
    fn invoke_options_default_to_non_blocking_with_the_maximum_wait() {
        assert_eq!(
            options("").unwrap(),
            InvokeOptions {
                blocking: false,
                result: false,
                timeout_ms: 60_000
            }
        );
        let parsed = options("blocking=true&result=yes&timeout=1").unwrap();
        assert!(parsed.blocking && parsed.result);
        assert_eq!(parsed.timeout_ms, 1);
        assert_eq!(options("timeout=60000").unwrap().timeout_ms, 60_000);
    }

    #[test]
    fn invoke_timeout_outside_1_to_60000_ms_is_rejected_with_openwhisk_message() {
        for bad in ["0", "-5", "60001", "abc", "1.5", "99999999999"] {
            let error = options(&format!("timeout={bad}")).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "timeout={bad}");
            assert_eq!(
                error.message(),
                "The query parameter 'timeout' was malformed:\nTimeout must be number of milliseconds up to 60000."
            );
        }
    }

    #[test]
    fn invoke_booleans_are_validated() {
        assert_eq!(
            options("blocking=maybe").unwrap_err().message(),
            "The query parameter 'blocking' was malformed:\n'maybe' is not a valid Boolean value"
        );
        assert_eq!(
            options("result=2").unwrap_err().message(),
            "The query parameter 'result' was malformed:\n'2' is not a valid Boolean value"
        );
    }
}
