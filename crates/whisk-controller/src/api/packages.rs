//! The packages collection (REFERENCE §9.1, §3.4): packages and package bindings.
//!
//! A package groups actions and may be published for other namespaces to read; a binding is a
//! package that points at another (own or public) package and adds its own parameters on top
//! of the bound package's. Reads of a binding show the bound package's actions and feeds.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use whisk_model::{
    Binding, EntityName, EntityPath, EntityType, Identity, PackagePut, WhiskAction, WhiskPackage,
    messages,
};
use whisk_store::{EntityQuery, EntityScope, EntityStore, StoreError};

use crate::api::Listing;
use crate::auth::Caller;
use crate::documents::{self, Stored, package_document};
use crate::entitlement::{self, Collection, Privilege, Resource};
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, PathSegments, QueryParams};
use crate::names;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/packages",
            get(list_packages),
        )
        .route(
            "/api/v1/namespaces/{namespace}/packages/",
            get(list_packages),
        )
        .route(
            "/api/v1/namespaces/{namespace}/packages/{name}",
            get(get_package).put(put_package).delete(delete_package),
        )
}

/// A package addressed by the URL, namespace resolved from `_`.
#[derive(Debug, Clone)]
struct PackageAddress {
    namespace: EntityName,
    name: EntityName,
}

impl PackageAddress {
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
        Resource::entity(Collection::Packages, self.path(), self.name.clone())
    }

    fn doc_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Every action stored directly under `contents_path` (`ns/pkg`), newest first.
async fn package_contents(
    store: &dyn EntityStore,
    contents_path: &EntityPath,
) -> ApiResult<Vec<Stored<WhiskAction>>> {
    let query = EntityQuery::new(
        EntityType::Action,
        EntityScope::Exact(contents_path.to_string()),
    );
    let mut actions = Vec::new();
    for stored in store.list(&query).await? {
        actions.push(documents::decode::<WhiskAction>(
            stored,
            EntityType::Action,
        )?);
    }
    Ok(actions)
}

// ---- GET ----------------------------------------------------------------------------------------

/// The package with its `actions` and `feeds`; for a binding, the bound package's contents and
/// the bound package's parameters overlaid by the binding's.
async fn get_package(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address = PackageAddress::parse(&caller, &namespace, &name)?;
    let store = state.store.entities.as_ref();
    let access = entitlement::check(store, &caller, Privilege::Read, &address.resource())
        .await?
        // A package READ always consults the package; no access record is a framework bug.
        .ok_or_else(ApiError::internal)?;
    let contents_path = access.actions_package().contents_path();
    let contents: Vec<WhiskAction> = package_contents(store, &contents_path)
        .await?
        .into_iter()
        .map(|stored| stored.entity)
        .collect();
    let document = match &access.bound {
        Some(bound) => access
            .package
            .entity
            .binding_api_json(&bound.entity, &contents),
        None => access.package.entity.to_api_json(&contents),
    };
    Ok(Json(document))
}

// ---- PUT ----------------------------------------------------------------------------------------

/// Create, or with `overwrite=true` update, a package or binding. Checks run in OpenWhisk's
/// order: rights on the package, reserved name, body, sizes, READ on a binding's target,
/// existence, then the binding's target must be a plain package.
async fn put_package(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let address = PackageAddress::parse(&caller, &namespace, &name)?;
    let store = state.store.entities.as_ref();
    entitlement::check(store, &caller, Privilege::Put, &address.resource()).await?;
    EntityName::package(address.name.as_str())?;
    let overwrite = query.boolean("overwrite", false)?;
    let mut put: PackagePut = extract::read_json(request, state.config.max_request_body).await?;
    put.validate(&state.config.limits)?;
    put.binding = put
        .binding
        .map(|binding| binding.resolve_namespace(&address.namespace));
    if let Some(binding) = &put.binding {
        check_binding_target(store, &caller, binding).await?;
    }

    let doc_id = address.doc_id();
    let existing: Option<Stored<WhiskPackage>> =
        documents::fetch(store, &doc_id, EntityType::Package).await?;
    let now = state.clock.now_millis();
    let (package, expected_revision) = match existing {
        Some(_) if !overwrite => return Err(ApiError::entity_exists()),
        Some(stored) => (stored.entity.update(put, now)?, Some(stored.revision)),
        None => (
            WhiskPackage::create(address.path(), address.name.clone(), put, now)?,
            None,
        ),
    };
    store
        .put(package_document(&package)?, expected_revision)
        .await?;
    tracing::info!(
        package = %doc_id,
        version = %package.version,
        binding = package.is_binding(),
        "package written"
    );
    Ok(Json(json!(package)))
}

/// A binding may only point at a package the caller can read that is not itself a binding.
///
/// The READ check's own answers are reworded the way OpenWhisk does for bindings: a missing
/// target is a 400, a target of another entity type a 409; a 403 stays a 403.
async fn check_binding_target(
    store: &dyn EntityStore,
    caller: &Identity,
    binding: &Binding,
) -> ApiResult<()> {
    let target = binding.doc_id();
    let access =
        entitlement::check_package_read(store, caller, &binding.namespace, &binding.name, &target)
            .await
            .map_err(|error| match error.status() {
                StatusCode::NOT_FOUND => ApiError::bad_request(messages::BINDING_DOES_NOT_EXIST),
                StatusCode::CONFLICT => {
                    ApiError::new(StatusCode::CONFLICT, messages::BINDING_TARGET_NOT_A_PACKAGE)
                }
                _ => error,
            })?;
    if access.is_binding() {
        return Err(ApiError::bad_request(
            messages::BINDING_CANNOT_REFERENCE_BINDING,
        ));
    }
    Ok(())
}

// ---- DELETE -------------------------------------------------------------------------------------

/// Deletes a package or binding and answers with it. A package that still holds actions is
/// refused with 409 unless `force=true`, which deletes those actions first; a binding holds
/// nothing and is always deletable.
async fn delete_package(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments((namespace, name)): PathSegments<(String, String)>,
) -> ApiResult<Json<Value>> {
    let address = PackageAddress::parse(&caller, &namespace, &name)?;
    let store = state.store.entities.as_ref();
    entitlement::check(store, &caller, Privilege::Delete, &address.resource()).await?;
    let force = query.boolean("force", false)?;
    let doc_id = address.doc_id();
    let stored: Stored<WhiskPackage> =
        documents::fetch_existing(store, &doc_id, EntityType::Package).await?;
    if !stored.entity.is_binding() {
        let contents = package_contents(store, &stored.entity.contents_path()).await?;
        if !contents.is_empty() && !force {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                messages::package_not_empty(contents.len()),
            ));
        }
        for action in contents {
            let action_id = action.entity.doc_id();
            match store.delete(&action_id, action.revision).await {
                // Someone else removed it meanwhile: the goal is reached all the same.
                Ok(()) | Err(StoreError::NotFound(_)) => {
                    tracing::info!(action = %action_id, package = %doc_id, "action deleted with its package");
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    store.delete(&doc_id, stored.revision).await?;
    tracing::info!(package = %doc_id, force, "package deleted");
    Ok(Json(json!(stored.entity)))
}

// ---- list ---------------------------------------------------------------------------------------

/// The caller's own packages and bindings, or only the public (published, non-binding)
/// packages of another namespace.
async fn list_packages(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
    PathSegments(namespace): PathSegments<String>,
) -> ApiResult<Json<Value>> {
    let namespace = entitlement::check_collection_read(
        state.store.entities.as_ref(),
        &caller,
        &namespace,
        Collection::Packages,
    )
    .await?;
    let listing = Listing {
        collection: Collection::Packages,
        entity_type: EntityType::Package,
        public_only: !names::is_owner(&caller, &namespace),
        scope: EntityScope::Exact(namespace.into_string()),
    };
    listing
        .respond(&state, &query, |package: &WhiskPackage| {
            package.to_summary_json()
        })
        .await
}
