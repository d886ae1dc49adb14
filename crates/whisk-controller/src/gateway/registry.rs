//! Where the gateway keeps its APIs: in the entity store, one document per namespace and base
//! path, so they survive restarts on every store backend without a new store trait.
//!
//! The documents live under the namespace path `~apis/<namespace>`. No namespace can be named
//! `~apis` (names start with a letter, digit or underscore), so these documents never share an
//! id, a list or a count with a namespace's own entities. The name is the base path made safe
//! for an entity name (`/` is not allowed in one), percent-encoded.

use serde_json::{Value, json};
use whisk_model::EntityType;
use whisk_store::{EntityDocument, EntityQuery, EntityScope, EntityStore, Revision, StoreResult};

/// The first segment of every gateway document's namespace path.
const ROOT: &str = "~apis";

/// The entity type the documents are filed under; only their namespace path sets them apart.
const FILED_AS: EntityType = EntityType::Package;

/// One API as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredApi {
    /// The OpenAPI document.
    pub apidoc: Value,
    /// `scheme://host[:port]` the routes were created through, for the URLs shown to clients.
    pub origin: String,
    pub revision: Revision,
}

impl StoredApi {
    pub fn base_path(&self) -> &str {
        self.apidoc
            .get("basePath")
            .and_then(Value::as_str)
            .unwrap_or("/")
    }

    /// `info.title`, which clients call the API name.
    pub fn title(&self) -> Option<&str> {
        self.apidoc.pointer("/info/title").and_then(Value::as_str)
    }
}

fn scope(namespace: &str) -> String {
    format!("{ROOT}/{namespace}")
}

fn entity_name(base_path: &str) -> String {
    form_urlencoded::byte_serialize(base_path.as_bytes()).collect()
}

fn decode(document: Value, revision: Revision) -> Option<StoredApi> {
    let apidoc = document.get("apidoc")?.clone();
    let origin = document.get("origin")?.as_str()?.to_owned();
    Some(StoredApi {
        apidoc,
        origin,
        revision,
    })
}

/// Every API of a namespace, newest first.
pub async fn list(store: &dyn EntityStore, namespace: &str) -> StoreResult<Vec<StoredApi>> {
    let query = EntityQuery::new(FILED_AS, EntityScope::Exact(scope(namespace)));
    let mut apis = Vec::new();
    for stored in store.list(&query).await? {
        let doc_id = stored.doc_id.clone();
        match decode(stored.document, stored.revision) {
            Some(api) => apis.push(api),
            None => tracing::error!(%doc_id, "skipping undecodable API document"),
        }
    }
    Ok(apis)
}

/// The API at a base path (`/...`) or with that name (anything else), as clients look them up.
pub async fn find(
    store: &dyn EntityStore,
    namespace: &str,
    base_path_or_name: &str,
) -> StoreResult<Option<StoredApi>> {
    if base_path_or_name.starts_with('/') {
        let doc_id = format!("{}/{}", scope(namespace), entity_name(base_path_or_name));
        return Ok(store
            .get(&doc_id)
            .await?
            .and_then(|stored| decode(stored.document, stored.revision)));
    }
    Ok(list(store, namespace)
        .await?
        .into_iter()
        .find(|api| api.title() == Some(base_path_or_name)))
}

/// Creates (`expected == None`) or replaces an API.
pub async fn save(
    store: &dyn EntityStore,
    namespace: &str,
    apidoc: &Value,
    origin: &str,
    expected: Option<Revision>,
    now: u64,
) -> StoreResult<Revision> {
    let base_path = apidoc
        .get("basePath")
        .and_then(Value::as_str)
        .unwrap_or("/");
    let namespace_path = scope(namespace);
    let name = entity_name(base_path);
    let document = EntityDocument {
        doc_id: format!("{namespace_path}/{name}"),
        entity_type: FILED_AS,
        namespace: namespace_path,
        name,
        updated: now,
        publish: false,
        binding: false,
        document: json!({"apidoc": apidoc, "origin": origin}),
    };
    store.put(document, expected).await
}

/// Deletes an API read earlier.
pub async fn remove(store: &dyn EntityStore, namespace: &str, api: &StoredApi) -> StoreResult<()> {
    let doc_id = format!("{}/{}", scope(namespace), entity_name(api.base_path()));
    store.delete(&doc_id, api.revision).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_no_slash() {
        assert_eq!(entity_name("/hello/v1"), "%2Fhello%2Fv1");
        assert_eq!(entity_name("/"), "%2F");
    }

    #[test]
    fn documents_without_origin_are_not_apis() {
        let revision: Revision = "1".parse().unwrap();
        assert!(decode(json!({"apidoc": {}}), revision).is_none());
        let api = decode(
            json!({"apidoc": {"basePath": "/a", "info": {"title": "A"}}, "origin": "http://h"}),
            revision,
        )
        .unwrap();
        assert_eq!(api.base_path(), "/a");
        assert_eq!(api.title(), Some("A"));
    }
}
