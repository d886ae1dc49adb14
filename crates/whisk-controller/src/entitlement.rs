//! Who may do what: OpenWhisk's implicit rights model (REFERENCE §3.4).
//!
//! The caller owns a resource when the resource's root namespace is the caller's namespace.
//! Owners may do everything in their namespace. Other namespaces may only *read* (and
//! activate the actions of) packages that are published and not bindings. Answers never leak
//! whether something exists in another namespace: a missing package there is a 403, exactly
//! like a private one, while an owner gets the honest 404.
//!
//! Entry points:
//! * [`check`] — the general check for a [`Resource`] and [`Privilege`]; when the decision
//!   needed a package it returns the [`PackageAccess`] it read, so handlers do not read it again;
//! * [`check_package_read`] — READ on one package, following a binding to its target (what
//!   the packages API and binding creation need directly);
//! * [`check_collection_read`] — READ on a whole collection of the namespace a path's `{ns}`
//!   segment names (what the list handlers need);
//! * [`require_owner`] — the plain ownership test.

use std::collections::HashSet;
use std::fmt;

use axum::http::StatusCode;
use whisk_model::entities::Binding;
use whisk_model::{
    EntityName, EntityPath, EntityType, Identity, Parameters, WhiskPackage, messages,
};
use whisk_store::EntityStore;

use crate::documents::{Stored, decode};
use crate::error::{ApiError, ApiResult};
use crate::names::{is_owner, resolve_namespace};

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// GET of an entity or a list.
    Read,
    /// Create or update.
    Put,
    /// Delete.
    Delete,
    /// POST on an entity: invoke an action, fire a trigger, change a rule's status.
    Activate,
}

/// The collections rights are decided for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Actions, in the default package or in a package.
    Actions,
    /// Packages and bindings.
    Packages,
    /// Triggers.
    Triggers,
    /// Rules.
    Rules,
    /// Activation records.
    Activations,
    /// The namespace's limits.
    Limits,
}

impl Collection {
    /// The collection's path segment, as used in list messages (`for actions.`).
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Actions => "actions",
            Collection::Packages => "packages",
            Collection::Triggers => "triggers",
            Collection::Rules => "rules",
            Collection::Activations => "activations",
            Collection::Limits => "limits",
        }
    }
}

/// A resource of a request: a whole collection (`entity == None`) or one entity in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Which collection.
    pub collection: Collection,
    /// `ns`, or `ns/pkg` for actions inside a package (namespace already resolved from `_`).
    pub namespace: EntityPath,
    /// The entity, if the request addresses one.
    pub entity: Option<EntityName>,
}

impl Resource {
    /// An entity of a collection.
    pub fn entity(collection: Collection, namespace: EntityPath, entity: EntityName) -> Self {
        Self {
            collection,
            namespace,
            entity: Some(entity),
        }
    }

    /// A whole collection.
    pub fn collection(collection: Collection, namespace: EntityPath) -> Self {
        Self {
            collection,
            namespace,
            entity: None,
        }
    }

    /// `ns[/pkg][/name]`, the form 403 messages name.
    pub fn fqname(&self) -> String {
        match &self.entity {
            Some(entity) => format!("{}/{}", self.namespace, entity),
            None => self.namespace.to_string(),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.fqname())
    }
}

/// A package the caller may read, as read from the store.
#[derive(Debug, Clone)]
pub struct PackageAccess {
    /// The package or binding the request named.
    pub package: Stored<WhiskPackage>,
    /// For a binding, the package it is bound to (also readable by the caller).
    pub bound: Option<Stored<WhiskPackage>>,
}

impl PackageAccess {
    /// Whether the named package is a binding.
    pub fn is_binding(&self) -> bool {
        self.bound.is_some()
    }

    /// The package whose actions the named one exposes: the bound package for a binding,
    /// the package itself otherwise.
    pub fn actions_package(&self) -> &WhiskPackage {
        &self.bound.as_ref().unwrap_or(&self.package).entity
    }

    /// Parameters an action inherits from its package: the bound package's overlaid by the
    /// binding's (§9.2, lowest two levels).
    pub fn inherited_parameters(&self) -> Parameters {
        match &self.bound {
            Some(bound) => bound
                .entity
                .parameters
                .merge(&self.package.entity.parameters),
            None => self.package.entity.parameters.clone(),
        }
    }

    /// `ns/binding` when the named package is a binding.
    pub fn binding_path(&self) -> Option<EntityPath> {
        self.bound
            .as_ref()
            .map(|_| self.package.entity.contents_path())
    }
}

/// Decides whether `caller` may exercise `privilege` on `resource`.
///
/// Returns the package consulted when the decision depended on one (READ/ACTIVATE of
/// packaged actions, READ of a package), `None` otherwise. Errors are the answers to send:
/// 403 naming the resource, 404 for an owner's missing package, 409 when the package name is
/// taken by another entity type, 422 for a binding that refers to itself.
pub async fn check(
    store: &dyn EntityStore,
    caller: &Identity,
    privilege: Privilege,
    resource: &Resource,
) -> ApiResult<Option<PackageAccess>> {
    let namespace = resource.namespace.root();
    let owner = is_owner(caller, namespace);
    let denied = || ApiError::not_authorized([resource.fqname()]);
    let owner_only = |allowed: bool| {
        if owner && allowed {
            Ok(None)
        } else {
            Err(denied())
        }
    };
    match resource.collection {
        Collection::Actions => match (resource.namespace.package(), privilege) {
            (Some(package), Privilege::Read | Privilege::Activate) => {
                let access =
                    check_package_read(store, caller, namespace, package, &resource.fqname())
                        .await?;
                Ok(Some(access))
            }
            (Some(_), Privilege::Put | Privilege::Delete) => owner_only(resource.entity.is_some()),
            (None, Privilege::Read) => owner_only(true),
            (None, _) => owner_only(resource.entity.is_some()),
        },
        Collection::Packages => match (&resource.entity, privilege) {
            (Some(package), Privilege::Read) => {
                let access =
                    check_package_read(store, caller, namespace, package, &resource.fqname())
                        .await?;
                Ok(Some(access))
            }
            (Some(_), Privilege::Put | Privilege::Delete) => owner_only(true),
            (Some(_), Privilege::Activate) => Err(denied()),
            // Anyone may list packages; the handler filters other namespaces to public ones.
            (None, Privilege::Read) => Ok(None),
            (None, _) => Err(denied()),
        },
        Collection::Triggers | Collection::Rules => match privilege {
            Privilege::Read => owner_only(true),
            _ => owner_only(resource.entity.is_some()),
        },
        Collection::Activations | Collection::Limits => owner_only(privilege == Privilege::Read),
    }
}

/// READ on the whole `collection` of the namespace named by the `{ns}` path segment.
///
/// Resolves the segment (`_` is the caller's own namespace; a bad name is a 400), then runs
/// [`check`] on the collection resource, and returns the resolved namespace. This is the
/// common prologue of the list handlers.
pub async fn check_collection_read(
    store: &dyn EntityStore,
    caller: &Identity,
    segment: &str,
    collection: Collection,
) -> ApiResult<EntityName> {
    let namespace = resolve_namespace(caller, segment)?;
    let resource = Resource::collection(collection, EntityPath::namespace(namespace.clone()));
    check(store, caller, Privilege::Read, &resource).await?;
    Ok(namespace)
}

/// 403 naming `resource` unless the caller owns `namespace`.
pub fn require_owner(
    caller: &Identity,
    namespace: &EntityName,
    resource: impl fmt::Display,
) -> ApiResult<()> {
    if is_owner(caller, namespace) {
        Ok(())
    } else {
        Err(ApiError::not_authorized([resource.to_string()]))
    }
}

/// READ on package `namespace/package`, following a binding to its target.
///
/// `resource` is what the request is about (the package itself, or an action in it) and is
/// what a 403 names. Owners may read their packages and bindings, provided a binding's target
/// is readable too; others may read published packages that are not bindings.
pub async fn check_package_read(
    store: &dyn EntityStore,
    caller: &Identity,
    namespace: &EntityName,
    package: &EntityName,
    resource: &str,
) -> ApiResult<PackageAccess> {
    let denied = || ApiError::not_authorized([resource.to_owned()]);
    let mut visited: HashSet<String> = HashSet::new();
    let mut current = Binding::new(namespace.clone(), package.clone());
    let mut named: Option<Stored<WhiskPackage>> = None;
    loop {
        let doc_id = current.doc_id();
        let owner = is_owner(caller, &current.namespace);
        let Some(stored) = readable_package(store, &doc_id, owner).await? else {
            return Err(denied());
        };
        match stored.entity.binding.clone() {
            None if !owner && !stored.entity.publish => return Err(denied()),
            None => {
                return Ok(match named {
                    None => PackageAccess {
                        package: stored,
                        bound: None,
                    },
                    Some(binding) => PackageAccess {
                        package: binding,
                        bound: Some(stored),
                    },
                });
            }
            // Another namespace's binding is never readable, even when published.
            Some(_) if !owner => return Err(denied()),
            Some(target) => {
                visited.insert(doc_id);
                if visited.contains(&target.doc_id()) {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        messages::binding_circular_reference(target.doc_id()),
                    ));
                }
                if named.is_none() {
                    named = Some(stored);
                }
                current = target;
            }
        }
    }
}

/// Reads a package for a READ check. `Ok(None)` means "deny without saying why": a
/// non-owner asking about something missing, of another type, or unreadable.
async fn readable_package(
    store: &dyn EntityStore,
    doc_id: &str,
    owner: bool,
) -> ApiResult<Option<Stored<WhiskPackage>>> {
    let found = match store.get(doc_id).await {
        Ok(found) => found,
        Err(error) if owner => return Err(error.into()),
        Err(error) => {
            tracing::warn!(%doc_id, %error, "package read failed during entitlement check");
            return Ok(None);
        }
    };
    let Some(found) = found else {
        return if owner {
            Err(ApiError::not_found_named(doc_id))
        } else {
            Ok(None)
        };
    };
    match decode::<WhiskPackage>(found, EntityType::Package) {
        Ok(stored) => Ok(Some(stored)),
        Err(error) if owner => Err(error.into()),
        Err(error) => {
            tracing::debug!(%error, "foreign package not readable");
            Ok(None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use whisk_model::{NamespaceLimits, PackagePut};
    use whisk_store::Store;

    use super::*;
    use crate::documents::package_document;

    fn identity(namespace: &str) -> Identity {
        Identity {
            subject: namespace.into(),
            namespace: namespace.into(),
            uuid: format!("{namespace}-uuid"),
            limits: NamespaceLimits::default(),
        }
    }

    fn name(text: &str) -> EntityName {
        EntityName::new(text).unwrap()
    }

    fn path(text: &str) -> EntityPath {
        EntityPath::parse(text).unwrap()
    }

    async fn store_with_packages() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = whisk_store::open_sqlite(dir.path()).unwrap();
        let packages = [
            ("owner", "private", PackagePut::default()),
            (
                "owner",
                "public",
                PackagePut {
                    publish: Some(true),
                    ..PackagePut::default()
                },
            ),
            (
                "owner",
                "public-binding",
                PackagePut {
                    publish: Some(true),
                    binding: Some(Binding::new(name("owner"), name("public"))),
                    ..PackagePut::default()
                },
            ),
            (
                "owner",
                "dangling",
                PackagePut {
                    binding: Some(Binding::new(name("owner"), name("gone"))),
                    ..PackagePut::default()
                },
            ),
        ];
        for (namespace, package, put) in packages {
            let package = WhiskPackage::create(path(namespace), name(package), put, 1).unwrap();
            store
                .entities
                .put(package_document(&package).unwrap(), None)
                .await
                .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn namespace_collections_are_owner_only() {
        let (_dir, store) = store_with_packages().await;
        let store = store.entities.as_ref();
        for collection in [
            Collection::Triggers,
            Collection::Rules,
            Collection::Activations,
            Collection::Limits,
            Collection::Actions,
        ] {
            let resource = Resource::collection(collection, path("owner"));
            assert!(
                check(store, &identity("owner"), Privilege::Read, &resource)
                    .await
                    .is_ok()
            );
            let error = check(store, &identity("stranger"), Privilege::Read, &resource)
                .await
                .unwrap_err();
            assert_eq!(error.status(), StatusCode::FORBIDDEN);
            assert_eq!(
                error.message(),
                "The supplied authentication is not authorized to access 'owner'."
            );
        }
        let activation = Resource::entity(Collection::Activations, path("owner"), name("x"));
        let error = check(store, &identity("owner"), Privilege::Put, &activation)
            .await
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::FORBIDDEN);
        let trigger = Resource::entity(Collection::Triggers, path("owner"), name("t"));
        assert!(
            check(store, &identity("owner"), Privilege::Activate, &trigger)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn anyone_may_list_packages_but_only_owners_write_them() {
        let (_dir, store) = store_with_packages().await;
        let store = store.entities.as_ref();
        let listing = Resource::collection(Collection::Packages, path("owner"));
        assert!(
            check(store, &identity("stranger"), Privilege::Read, &listing)
                .await
                .unwrap()
                .is_none()
        );
        let package = Resource::entity(Collection::Packages, path("owner"), name("public"));
        for privilege in [Privilege::Put, Privilege::Delete] {
            assert!(
                check(store, &identity("owner"), privilege, &package)
                    .await
                    .is_ok()
            );
            assert!(
                check(store, &identity("stranger"), privilege, &package)
                    .await
                    .is_err()
            );
        }
    }

    #[tokio::test]
    async fn package_reads_follow_publish_and_binding_rules() {
        let (_dir, store) = store_with_packages().await;
        let store = store.entities.as_ref();
        let read = |caller: &'static str, package: &'static str| {
            let resource = format!("owner/{package}");
            async move {
                check_package_read(
                    store,
                    &identity(caller),
                    &name("owner"),
                    &name(package),
                    &resource,
                )
                .await
            }
        };
        let access = read("stranger", "public").await.unwrap();
        assert!(!access.is_binding());
        assert_eq!(access.actions_package().name, "public");

        let access = read("owner", "public-binding").await.unwrap();
        assert!(access.is_binding());
        assert_eq!(access.actions_package().name, "public");
        assert_eq!(
            access.binding_path().unwrap().to_string(),
            "owner/public-binding"
        );

        for (caller, package, status) in [
            ("stranger", "private", StatusCode::FORBIDDEN),
            ("stranger", "public-binding", StatusCode::FORBIDDEN),
            ("stranger", "missing", StatusCode::FORBIDDEN),
            ("owner", "missing", StatusCode::NOT_FOUND),
            ("owner", "dangling", StatusCode::NOT_FOUND),
        ] {
            let error = read(caller, package).await.unwrap_err();
            assert_eq!(error.status(), status, "{caller} reading {package}");
        }
        let error = read("owner", "missing").await.unwrap_err();
        assert_eq!(
            error.message(),
            "The requested resource 'owner/missing' does not exist."
        );
        let error = read("stranger", "private").await.unwrap_err();
        assert_eq!(
            error.message(),
            "The supplied authentication is not authorized to access 'owner/private'."
        );
    }

    #[test]
    fn inherited_parameters_put_the_binding_over_the_package() {
        let mut package =
            WhiskPackage::create(path("o"), name("p"), PackagePut::default(), 1).unwrap();
        package.parameters.insert("a", serde_json::json!("package"));
        package.parameters.insert("b", serde_json::json!("package"));
        let mut binding =
            WhiskPackage::create(path("o"), name("b"), PackagePut::default(), 1).unwrap();
        binding.parameters.insert("b", serde_json::json!("binding"));
        let stored = |entity| Stored {
            entity,
            revision: "1".parse().unwrap(),
        };
        let access = PackageAccess {
            package: stored(binding),
            bound: Some(stored(package)),
        };
        let merged = access.inherited_parameters();
        assert_eq!(merged.get("a"), Some(&serde_json::json!("package")));
        assert_eq!(merged.get("b"), Some(&serde_json::json!("binding")));
    }
}
