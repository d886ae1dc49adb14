//! Typed reads and writes of entity documents.
//!
//! The store keeps each entity as its API JSON next to a few indexed columns. These helpers
//! decode a stored document into a model type (with the revision needed to write it back) and
//! build the document to store from a model value, so handlers never touch raw JSON and every
//! collection reports type mismatches and corrupt documents the same way.

use serde::Serialize;
use serde::de::DeserializeOwned;
use whisk_model::{EntityType, WhiskAction, WhiskPackage};
use whisk_store::{EntityDocument, EntityStore, Revision, StoredEntity};

use crate::error::{ApiError, ApiResult};

/// An entity read from the store, with the revision to hand back on update or delete.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    /// The decoded entity.
    pub entity: T,
    /// Its current revision.
    pub revision: Revision,
}

/// Why a stored record could not be used as the requested entity type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The id is held by an entity of another type.
    #[error("document '{doc_id}' is a {found}, not a {expected}")]
    WrongType {
        doc_id: String,
        expected: EntityType,
        found: EntityType,
    },
    /// The document does not decode as its type.
    #[error("document '{doc_id}' does not decode: {detail}")]
    Corrupt { doc_id: String, detail: String },
}

impl From<FetchError> for ApiError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::WrongType { .. } => ApiError::conformance(),
            FetchError::Corrupt { doc_id, detail } => {
                tracing::error!(%doc_id, %detail, "stored entity does not decode");
                ApiError::corrupted_entity()
            }
        }
    }
}

/// Decodes a stored record as `expected`.
pub fn decode<T: DeserializeOwned>(
    stored: StoredEntity,
    expected: EntityType,
) -> Result<Stored<T>, FetchError> {
    if stored.entity_type != expected {
        return Err(FetchError::WrongType {
            doc_id: stored.doc_id,
            expected,
            found: stored.entity_type,
        });
    }
    match serde_json::from_value(stored.document) {
        Ok(entity) => Ok(Stored {
            entity,
            revision: stored.revision,
        }),
        Err(error) => Err(FetchError::Corrupt {
            doc_id: stored.doc_id,
            detail: error.to_string(),
        }),
    }
}

/// Reads and decodes one entity: `Ok(None)` when the id is free, 409 when another type holds
/// it, 500 when it does not decode.
pub async fn fetch<T: DeserializeOwned>(
    store: &dyn EntityStore,
    doc_id: &str,
    expected: EntityType,
) -> ApiResult<Option<Stored<T>>> {
    match store.get(doc_id).await? {
        None => Ok(None),
        Some(stored) => Ok(Some(decode(stored, expected)?)),
    }
}

/// Like [`fetch`], with a plain 404 when the id is free.
pub async fn fetch_existing<T: DeserializeOwned>(
    store: &dyn EntityStore,
    doc_id: &str,
    expected: EntityType,
) -> ApiResult<Stored<T>> {
    fetch(store, doc_id, expected)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// The columns the store indexes, besides the document itself.
#[derive(Debug, Clone)]
pub struct DocumentColumns {
    /// Which collection.
    pub entity_type: EntityType,
    /// `ns` or `ns/pkg`.
    pub namespace: String,
    /// The entity's own name.
    pub name: String,
    /// Epoch ms of this write.
    pub updated: u64,
    /// Published (packages).
    pub publish: bool,
    /// A package binding.
    pub binding: bool,
}

/// Builds the document to store.
pub fn to_document<T: Serialize>(
    columns: DocumentColumns,
    entity: &T,
) -> ApiResult<EntityDocument> {
    let document = serde_json::to_value(entity).map_err(|error| {
        tracing::error!(%error, "entity does not serialize");
        ApiError::internal()
    })?;
    Ok(EntityDocument {
        doc_id: format!("{}/{}", columns.namespace, columns.name),
        entity_type: columns.entity_type,
        namespace: columns.namespace,
        name: columns.name,
        updated: columns.updated,
        publish: columns.publish,
        binding: columns.binding,
        document,
    })
}

/// The stored form of an action.
pub fn action_document(action: &WhiskAction) -> ApiResult<EntityDocument> {
    to_document(
        DocumentColumns {
            entity_type: EntityType::Action,
            namespace: action.namespace.to_string(),
            name: action.name.to_string(),
            updated: action.updated,
            publish: action.publish,
            binding: false,
        },
        action,
    )
}

/// The stored form of a package or binding.
pub fn package_document(package: &WhiskPackage) -> ApiResult<EntityDocument> {
    to_document(
        DocumentColumns {
            entity_type: EntityType::Package,
            namespace: package.namespace.to_string(),
            name: package.name.to_string(),
            updated: package.updated,
            publish: package.publish,
            binding: package.binding.is_some(),
        },
        package,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use whisk_model::{EntityName, EntityPath, PackagePut};

    use super::*;

    fn stored(entity_type: EntityType, document: serde_json::Value) -> StoredEntity {
        let package = WhiskPackage::create(
            EntityPath::parse("guest").unwrap(),
            EntityName::new("p").unwrap(),
            PackagePut::default(),
            5,
        )
        .unwrap();
        let (mut stored_document, _) = (package_document(&package).unwrap(), ());
        stored_document.entity_type = entity_type;
        stored_document.document = document;
        StoredEntity {
            doc_id: stored_document.doc_id,
            entity_type: stored_document.entity_type,
            namespace: stored_document.namespace,
            name: stored_document.name,
            updated: stored_document.updated,
            publish: stored_document.publish,
            binding: stored_document.binding,
            revision: "7".parse().unwrap(),
            document: stored_document.document,
        }
    }

    #[test]
    fn package_documents_round_trip_with_their_columns() {
        let package = WhiskPackage::create(
            EntityPath::parse("guest").unwrap(),
            EntityName::new("p").unwrap(),
            PackagePut {
                publish: Some(true),
                ..PackagePut::default()
            },
            42,
        )
        .unwrap();
        let document = package_document(&package).unwrap();
        assert_eq!(document.doc_id, "guest/p");
        assert_eq!(document.namespace, "guest");
        assert!(document.publish);
        assert!(!document.binding);
        assert_eq!(document.updated, 42);
        let decoded: Stored<WhiskPackage> = decode(
            stored(EntityType::Package, document.document),
            EntityType::Package,
        )
        .unwrap();
        assert_eq!(decoded.entity, package);
        assert_eq!(decoded.revision.to_string(), "7");
    }

    #[test]
    fn wrong_types_are_conflicts_and_bad_documents_are_corrupt() {
        let error = decode::<WhiskPackage>(
            stored(EntityType::Trigger, serde_json::json!({})),
            EntityType::Package,
        )
        .unwrap_err();
        assert!(matches!(error, FetchError::WrongType { .. }));
        assert_eq!(ApiError::from(error).status().as_u16(), 409);

        let error = decode::<WhiskPackage>(
            stored(EntityType::Package, serde_json::json!({"name": 3})),
            EntityType::Package,
        )
        .unwrap_err();
        assert!(matches!(error, FetchError::Corrupt { .. }));
        let api_error = ApiError::from(error);
        assert_eq!(api_error.status().as_u16(), 500);
        assert_eq!(
            api_error.message(),
            "Resource is corrupted and cannot be read."
        );
    }
}
